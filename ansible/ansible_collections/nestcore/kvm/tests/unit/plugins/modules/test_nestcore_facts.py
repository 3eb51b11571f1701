"""nestcore_facts: arguments, the facts it sets, and failures that name the host."""

from __future__ import annotations

import socket

import pytest

nestcore = pytest.importorskip("nestcore")

from ansible_collections.nestcore.kvm.plugins.modules import nestcore_facts  # noqa: E402


def _host(fixtures, name):
    d = fixtures / "hosts" / name
    return str(d / "root"), str(d / "cpuid.txt")


def test_argument_spec_defaults():
    spec = nestcore_facts.ARGUMENT_SPEC
    assert set(spec) == {"root", "cpuid", "probe"}
    assert spec["probe"] == {"type": "bool", "default": False}
    assert spec["root"]["type"] == "path" and spec["cpuid"]["type"] == "path"


def test_facts_for_a_recorded_host(run_main, fixtures):
    root, cpuid = _host(fixtures, "intel-nested-off")
    status, result = run_main(nestcore_facts, {"root": root, "cpuid": cpuid})
    assert status == "exit"
    assert result["changed"] is False
    facts = result["ansible_facts"]["nestcore"]
    # The whole report, as to_dict() gives it ...
    expected = nestcore.check(root, cpuid=cpuid, probe=False).to_dict()
    assert {k: v for k, v in facts.items() if k != "summary"} == expected
    # ... plus the short answers.
    s = facts["summary"]
    assert s["kvm_usable"] is True
    assert s["nested_for_guests"] == "disabled"
    assert s["extension"] == "vmx"
    assert s["vendor_id"] == "GenuineIntel"
    assert s["nested"] == "disabled"
    assert "kvm.nested_off" in s["problems"]
    assert s["root"] == root and root in s["host"]


@pytest.mark.parametrize(
    "name,nested,extension",
    [("intel-nested-on", "available", "vmx"), ("amd-nested-on", "available", "svm"), ("no-extension", "unsupported", "none")],
)
def test_summary_per_host(run_main, fixtures, name, nested, extension):
    root, cpuid = _host(fixtures, name)
    status, result = run_main(nestcore_facts, {"root": root, "cpuid": cpuid})
    assert status == "exit"
    s = result["ansible_facts"]["nestcore"]["summary"]
    assert (s["nested_for_guests"], s["extension"]) == (nested, extension)


def test_check_mode_is_supported(run_main, fixtures):
    root, cpuid = _host(fixtures, "intel-nested-on")
    status, result = run_main(nestcore_facts, {"root": root, "cpuid": cpuid, "_ansible_check_mode": True})
    assert status == "exit" and result["changed"] is False
    assert result["ansible_facts"]["nestcore"]["summary"]["nested_for_guests"] == "available"


def test_missing_root_fails_naming_the_host(run_main, tmp_path):
    missing = str(tmp_path / "nope")
    status, result = run_main(nestcore_facts, {"root": missing})
    assert status == "fail"
    assert socket.gethostname() in result["msg"] and missing in result["msg"]
    assert result["kind"] == "not_found"


def test_unknown_option_is_rejected(run_main):
    status, result = run_main(nestcore_facts, {"rooot": "/"})
    assert status == "fail"
    assert "rooot" in result["msg"]


def test_probe_must_be_a_bool(run_main):
    status, result = run_main(nestcore_facts, {"probe": "sometimes"})
    assert status == "fail"
    assert "probe" in result["msg"]


def test_run_passes_the_options_to_check():
    calls = []

    class Fake:
        NestcoreError = Exception

        @staticmethod
        def check(root=None, cpuid=None, probe=True):
            calls.append((root, cpuid, probe))
            return _FakeReport()

    nestcore_facts.run({"root": "/r", "cpuid": "/c", "probe": True}, Fake)
    nestcore_facts.run({"root": None, "cpuid": None, "probe": False}, Fake)
    assert calls == [("/r", "/c", True), (None, None, False)]


class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _FakeReport:
    def __init__(self):
        self.verdict = _Obj(kvm_usable=True, nested_for_guests="available", at_least=lambda level: [])
        self.cpu = _Obj(vendor_id="GenuineIntel", extension="vmx", firmware="enabled")
        self.virtualization = _Obj(hypervisor="none")
        self.kvm = _Obj(nested="enabled", modules=[])
        self.exit_code = 0

    def to_dict(self):
        return {"verdict": {"nested_for_guests": "available"}}
