"""guest_cpu(), ensure_nested() and recommend(): the guest CPU configuration that gives guests
VT-x/AMD-V, by vendor and from a fixture host's report."""

from __future__ import annotations

import json
import pickle

import pytest

import nestcore
from conftest import REPO

HOSTS = REPO / "tests" / "fixtures" / "hosts"


def fixture_report(name: str) -> nestcore.Report:
    cpuid = HOSTS / name / "cpuid.txt"
    return nestcore.check(HOSTS / name / "root", cpuid if cpuid.exists() else None)


def test_guest_cpu_formats_by_vendor():
    assert nestcore.guest_cpu(vendor="intel") == "<cpu mode='host-passthrough'/>\n"
    assert nestcore.guest_cpu("qemu", vendor="amd") == "host\n"
    assert nestcore.guest_cpu("nova", vendor="intel") == "[libvirt]\ncpu_mode = host-passthrough\n"
    assert nestcore.guest_cpu(vendor="amd", model="EPYC-Rome") == (
        "<cpu mode='custom' match='exact' check='partial'>\n"
        "  <model fallback='forbid'>EPYC-Rome</model>\n"
        "  <feature policy='require' name='svm'/>\n"
        "</cpu>\n"
    )
    assert nestcore.guest_cpu("qemu", vendor="amd", model="EPYC-Rome") == "EPYC-Rome,svm=on\n"
    assert nestcore.guest_cpu("nova", vendor="intel", model="Skylake-Server-v4") == (
        "[libvirt]\ncpu_mode = custom\ncpu_models = Skylake-Server-v4\ncpu_model_extra_flags = vmx\n"
    )


def test_guest_cpu_mode_features_topology():
    xml = nestcore.guest_cpu(mode="host-model", features=["disable:pcid"], topology="1,4,2", vendor="intel")
    assert xml.startswith("<cpu mode='host-model'")
    assert "<feature policy='disable' name='pcid'/>" in xml
    assert "<feature policy='require' name='vmx'/>" in xml
    assert "<topology sockets='1'" in xml and "cores='4'" in xml and "threads='2'" in xml
    # The guest's extension forbidden on purpose: taken as asked, not required behind one's back.
    xml = nestcore.guest_cpu(model="Haswell", features=("forbid:vmx",), vendor="intel")
    assert "<feature policy='forbid' name='vmx'/>" in xml and "require" not in xml


@pytest.mark.parametrize(
    "kwargs",
    [
        {"format": "yaml", "vendor": "intel"},
        {"vendor": "arm"},
        {"mode": "sideways", "vendor": "intel"},
        {"mode": "custom", "vendor": "intel"},
        {"features": ["maybe:vmx"], "vendor": "intel"},
        {"topology": "0,1,1", "vendor": "intel"},
    ],
)
def test_guest_cpu_bad_arguments(kwargs):
    with pytest.raises(ValueError) as info:
        nestcore.guest_cpu(**kwargs)
    assert isinstance(info.value, nestcore.NestcoreError)


def test_guest_cpu_from_a_fixture_report():
    report = fixture_report("intel-nested-off")
    assert report.cpu.vendor == "intel"
    assert nestcore.guest_cpu(report=report) == "<cpu mode='host-passthrough'/>\n"
    assert nestcore.guest_cpu("qemu", model="Haswell", report=report) == "Haswell,vmx=on\n"
    # A vendor given with a report overrides the report's vendor, not the extension it detected
    # (as `nestcore guest-cpu --for-host --vendor`).
    assert nestcore.guest_cpu("qemu", model="EPYC", report=report, vendor="amd") == "EPYC,vmx=on\n"
    # An unpickled report gives the same facts.
    again = pickle.loads(pickle.dumps(report))
    assert nestcore.guest_cpu("nova", model="Haswell", report=again) == nestcore.guest_cpu(
        "nova", model="Haswell", report=report
    )
    assert nestcore.recommend(report=again) == nestcore.recommend(report=report)


def test_no_vendor_extension_is_refused():
    report = fixture_report("aarch64-no-cpuid")
    with pytest.raises(nestcore.NestcoreInvalidInput) as info:
        nestcore.guest_cpu(report=report)
    assert info.value.message == (
        "Invalid input: cannot tell whether guests need vmx or svm on this CPU: pass --vendor intel|amd"
    )
    assert nestcore.guest_cpu(report=report, vendor="amd") == "<cpu mode='host-passthrough'/>\n"


def test_guest_cpu_live_host_vendor():
    # Neither report nor vendor: this machine's vendor (no probe); x86 answers, others refuse.
    vendor = nestcore.check(probe=False).cpu.vendor
    if vendor in ("intel", "amd", "hygon", "zhaoxin", "centaur"):
        assert nestcore.guest_cpu("qemu") == "host\n"
    else:
        with pytest.raises(nestcore.NestcoreInvalidInput):
            nestcore.guest_cpu()


def domain(cpu: str) -> str:
    return (
        "<?xml version='1.0'?>\n<!-- keep me -->\n<domain type='kvm'>\n  <name>vm1</name>\n"
        "  <memory unit='KiB'>1048576</memory>\n  <os>\n    <type arch=\"x86_64\">hvm</type>\n  </os>\n"
        f"  {cpu}\n  <devices>\n    <disk type='file' device='disk'/>   <!-- odd  spacing -->\n  </devices>\n"
        "</domain>\n"
    )


def test_ensure_nested_keeps_the_rest_byte_for_byte():
    before = domain("<cpu mode='host-model' check='partial'/>")
    after = nestcore.ensure_nested(before, vendor="amd")
    assert after == domain(
        "<cpu mode='host-model' check='partial'>\n    <feature policy='require' name='svm'/>\n  </cpu>"
    )
    # Idempotent; disable takes it away again.
    assert nestcore.ensure_nested(after, vendor="amd") == after
    off = nestcore.ensure_nested(after, vendor="amd", disable=True)
    assert "name='svm'" in off and "policy='disable'" in off or "svm" not in off
    custom = domain(
        '<cpu match="exact" mode="custom">\n    <model fallback=\'allow\'>Haswell</model>\n'
        '    <feature name=\'vmx\' policy="disable"/><!-- x -->\n  </cpu>'
    )
    report = fixture_report("intel-nested-off")
    edited = nestcore.ensure_nested(custom, report=report)
    assert edited == custom.replace('policy="disable"', 'policy="require"')
    assert nestcore.ensure_nested(edited, report=report, disable=True) == custom


def test_ensure_nested_bad_xml():
    with pytest.raises(ValueError) as info:
        nestcore.ensure_nested("<domain><cpu", vendor="intel")
    assert isinstance(info.value, nestcore.NestcoreError)


def test_recommend_single_host_and_migratable():
    rec = nestcore.recommend(vendor="amd")
    assert rec.libvirt_xml == "<cpu mode='host-passthrough'/>"
    assert rec.qemu_cpu == "host"
    assert rec.nova_ini == "[libvirt]\ncpu_mode = host-passthrough\n"
    assert isinstance(rec.rationale, tuple) and rec.rationale
    assert any("saved" in c for c in rec.caveats)

    mig = nestcore.recommend(vendor="intel", migratable=True)
    assert mig.libvirt_xml.startswith("<cpu mode='host-model'")
    assert "<feature policy='require' name='vmx'/>" in mig.libvirt_xml
    assert mig.qemu_cpu == "qemu64,vmx=on"
    assert "cpu_mode = host-model" in mig.nova_ini

    named = nestcore.recommend(vendor="amd", migratable=True, model="EPYC-Rome")
    assert named.qemu_cpu == "EPYC-Rome,svm=on"
    assert "cpu_models = EPYC-Rome" in named.nova_ini and "cpu_model_extra_flags = svm" in named.nova_ini
    with pytest.raises(nestcore.NestcoreInvalidInput):
        nestcore.recommend(vendor="amd", model="EPYC-Rome")


def test_recommend_from_report_names_the_remedy():
    rec = nestcore.recommend(report=fixture_report("intel-nested-off"))
    assert rec.qemu_cpu == "host"
    assert any("nested=1" in c and "kvm_intel" in c for c in rec.caveats)


def test_recommendation_value_semantics():
    rec = nestcore.recommend(vendor="intel", migratable=True)
    assert rec == nestcore.recommend(vendor="intel", migratable=True)
    assert rec != nestcore.recommend(vendor="amd", migratable=True)
    assert hash(rec) == hash(pickle.loads(pickle.dumps(rec)))
    assert pickle.loads(pickle.dumps(rec)) == rec
    d = rec.to_dict()
    assert list(d) == ["libvirt_xml", "qemu_cpu", "nova_ini", "rationale", "caveats"]
    assert d["rationale"] == list(rec.rationale)
    assert json.loads(rec.to_json()) == d
    assert repr(rec).startswith(f"Recommendation(libvirt_xml={rec.libvirt_xml!r}, qemu_cpu='qemu64,vmx=on', ")
    with pytest.raises(AttributeError):
        rec.qemu_cpu = "host"  # type: ignore[misc]
