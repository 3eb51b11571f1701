"""check() on recorded hosts: the answers, the attribute types, and str enumerations."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import nestcore


def test_intel_nested_off(intel_nested_off):
    r = nestcore.check(intel_nested_off.root, cpuid=intel_nested_off.cpuid)
    assert r.host.live is False
    assert r.host.root == str(intel_nested_off.root)
    assert r.host.cpuid_source == "recorded"
    assert r.host.kernel == "6.1.0-18-amd64"
    assert r.cpu.vendor_id == "GenuineIntel"
    assert r.cpu.vendor == "intel"
    assert (r.cpu.family, r.cpu.model, r.cpu.stepping) == (6, 58, 9)
    assert r.cpu.extension == "vmx"
    assert r.cpu.cpuid_vmx is True and r.cpu.flags_vmx is True
    assert r.cpu.hypervisor_bit is False
    assert r.virtualization.hypervisor == "none"
    assert r.kvm.backend == "kvm_intel"
    assert r.kvm.nested == "disabled"
    assert r.kvm.device.state == "present"
    assert r.kvm.probe is None
    intel = [m for m in r.kvm.modules if m.name == "kvm_intel"][0]
    assert intel.state == "loaded"
    assert intel.parameters["nested"] is False
    assert intel.parameters["ept"] is True
    assert r.verdict.nested_for_guests == "disabled"
    off = r.verdict.finding("kvm.nested_off")
    assert off is not None and off.level == "fail"
    assert "nested=1" in (off.remedy or "")
    assert any(e.source == "/sys/module/kvm_intel" and "nested=off" in e.detail for e in off.evidence)
    assert [f.code for f in r.verdict.at_least("fail")] == ["kvm.nested_off"]
    assert r.exit_code == 1


def test_amd_nested_on(amd_nested_on):
    r = nestcore.check(amd_nested_on.root, amd_nested_on.cpuid)
    assert r.cpu.vendor == "amd"
    assert r.cpu.extension == "svm"
    assert r.cpu.svm_features is not None
    assert r.cpu.svm_features.npt is True
    assert r.cpu.svm_features.asids == 32768
    assert r.kvm.nested == "enabled"
    assert [(p.name, p.value) for p in r.cmdline.relevant] == [("kvm_amd.nested", "1")]
    assert r.verdict.kvm_usable is True
    assert r.verdict.nested_for_guests == "available"
    assert r.verdict.at_least("warn") == []
    assert r.exit_code == 0


def test_empty_root_is_unknown_not_an_error(empty_root):
    r = nestcore.check(empty_root)
    assert r.host.cpuid_source == "none"
    assert r.cpu.extension == "unknown"
    assert r.cpu.family is None
    assert r.cmdline.present is False
    assert r.verdict.nested_for_guests in ("unknown", "unsupported")
    assert r.exit_code == 1


def test_pathlike_and_str_paths_agree(intel_nested_off):
    a = nestcore.check(intel_nested_off.root, intel_nested_off.cpuid)
    b = nestcore.check(str(intel_nested_off.root), str(intel_nested_off.cpuid))
    assert a == b


def test_probe_is_ignored_for_recorded_roots(intel_nested_off):
    a = nestcore.check(intel_nested_off.root, intel_nested_off.cpuid, probe=True)
    b = nestcore.check(intel_nested_off.root, intel_nested_off.cpuid, probe=False)
    assert a == b
    assert a.kvm.probe is None


def test_enumerations_are_plain_str(intel_nested_off):
    r = nestcore.check(intel_nested_off.root, intel_nested_off.cpuid)
    for v in (r.cpu.extension, r.cpu.vendor, r.kvm.nested, r.verdict.nested_for_guests, r.verdict.findings[0].level):
        assert type(v) is str


def test_to_dict_and_to_json_agree(amd_nested_on):
    r = nestcore.check(amd_nested_on.root, amd_nested_on.cpuid)
    d = r.to_dict()
    assert json.loads(r.to_json()) == d
    assert d["schema_version"] == nestcore.SCHEMA_VERSION == r.schema_version == 1
    assert d["nestcore_version"] == nestcore.__version__ == r.nestcore_version
    # Field order is the contract's, as the CLI prints it.
    assert list(d) == ["schema_version", "nestcore_version", "host", "cpu", "virtualization", "kvm", "vmm", "cmdline", "verdict"]
    assert r.cpu.to_dict() == d["cpu"]
    assert json.loads(r.verdict.to_json()) == d["verdict"]
    assert r.verdict.findings[0].to_dict() == d["verdict"]["findings"][0]


# Every class with the name of its attribute on the parent, to compare attributes with JSON keys.
def _objects(r: nestcore.Report):
    yield r
    yield r.host
    yield r.cpu
    if r.cpu.svm_features is not None:
        yield r.cpu.svm_features
    yield from r.cpu.evidence
    yield r.virtualization
    yield from r.virtualization.signatures
    yield r.kvm
    yield r.kvm.device
    if r.kvm.device.capabilities is not None:
        yield r.kvm.device.capabilities
    yield from r.kvm.modules
    if r.kvm.probe is not None:
        yield r.kvm.probe
    if r.kvm.device.access is not None:
        yield r.kvm.device.access
    yield r.vmm
    yield from r.vmm.vmms
    yield r.cmdline
    yield from r.cmdline.relevant
    yield r.verdict
    yield from r.verdict.findings


def _attributes(obj) -> set:
    cls = type(obj)
    return {
        n
        for n in dir(cls)
        if not n.startswith("_") and not callable(getattr(obj, n)) and n != "exit_code"
    }


def test_attributes_mirror_the_json_keys(amd_nested_on, intel_nested_off):
    """A field added to the Rust report must get an attribute here (and a stub) too."""
    for host in (amd_nested_on, intel_nested_off):
        r = nestcore.check(host.root, host.cpuid)
        seen = set()
        for obj in _objects(r):
            seen.add(type(obj).__name__)
            assert _attributes(obj) == set(obj.to_dict()), type(obj).__name__
            for name, value in obj.to_dict().items():
                attr = getattr(obj, name)
                if hasattr(attr, "to_dict"):
                    assert attr.to_dict() == value
                elif isinstance(attr, list) and attr and hasattr(attr[0], "to_dict"):
                    assert [a.to_dict() for a in attr] == value
                else:
                    assert attr == value, f"{type(obj).__name__}.{name}"


def test_verdict_at_least_rejects_unknown_levels(amd_nested_on):
    r = nestcore.check(amd_nested_on.root, amd_nested_on.cpuid)
    with pytest.raises(ValueError, match="Invalid level"):
        r.verdict.at_least("severe")
    assert r.verdict.finding("no.such.code") is None
    assert len(r.verdict.at_least("pass")) == len(r.verdict.findings)


def test_text_is_the_cli_text(intel_nested_off):
    r = nestcore.check(intel_nested_off.root, intel_nested_off.cpuid)
    text = r.text()
    assert text.startswith(f"Host:        recorded root {intel_nested_off.root}\n")
    assert "\x1b[" not in text
    assert "code: kvm.nested_off" in text
    assert text.endswith("Verdict: KVM usable: yes; nested virtualization for guests: disabled\n")
    colored = r.text(color=True)
    assert "\x1b[31mFAIL\x1b[0m" in colored
    assert colored.replace("\x1b[31m", "").replace("\x1b[32m", "").replace("\x1b[36m", "").replace(
        "\x1b[33m", ""
    ).replace("\x1b[0m", "") == text


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX only")
def test_results_are_read_only(intel_nested_off):
    r = nestcore.check(intel_nested_off.root, intel_nested_off.cpuid)
    with pytest.raises(AttributeError):
        r.cpu = None  # type: ignore[misc]
    cpu = r.cpu
    with pytest.raises(AttributeError):
        cpu.family = 7  # type: ignore[misc]
    with pytest.raises(AttributeError):
        cpu.new_attribute = 1  # type: ignore[attr-defined]
    # Lists are fresh copies: changing one does not change the report.
    cpu.evidence.clear()
    assert cpu.evidence
    with pytest.raises(TypeError):
        nestcore.CpuReport()  # type: ignore[call-arg]


def test_module_layout():
    assert nestcore.check is nestcore._nestcore.check
    assert nestcore.Report.__module__ == "nestcore"
    assert isinstance(nestcore.__version__, str) and nestcore.__version__.count(".") == 2
    for name in nestcore.__all__:
        assert hasattr(nestcore, name), name
    assert (Path(nestcore.__file__).parent / "py.typed").exists()
    assert (Path(nestcore.__file__).parent / "_nestcore.pyi").exists()
