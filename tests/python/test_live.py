"""The live host: invariants only (never this machine's answer). Reads, changes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import nestcore

CPUINFO = Path("/proc/cpuinfo")


@pytest.fixture(scope="module")
def live() -> nestcore.Report:
    if not CPUINFO.exists():
        pytest.skip("no /proc/cpuinfo: not a Linux host (or /proc is not mounted)")
    return nestcore.check(probe=False)


def _first_flags() -> set:
    for line in CPUINFO.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
        if not line.strip():
            break
    return set()


def test_live_host(live):
    assert live.host.live is True
    assert live.host.root == "/"
    assert live.schema_version == 1
    assert live.kvm.probe is None  # probe=False
    assert live.exit_code == (0 if live.verdict.kvm_usable is True and live.verdict.nested_for_guests == "available" else 1)


def test_agrees_with_proc_cpuinfo_flags(live):
    flags = _first_flags()
    if not flags:
        pytest.skip("/proc/cpuinfo has no flags line (not x86)")
    assert live.cpu.flags_vmx == ("vmx" in flags)
    assert live.cpu.flags_svm == ("svm" in flags)
    assert live.cpu.flags_hypervisor == ("hypervisor" in flags)
    if "vmx" in flags:
        assert live.cpu.extension == "vmx"
    if "svm" in flags:
        assert live.cpu.extension == "svm"


def test_vendor_agrees_with_proc_cpuinfo(live):
    for line in CPUINFO.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id":
            assert live.cpu.vendor_id == value.strip()
            break
    else:
        pytest.skip("/proc/cpuinfo has no vendor_id (not x86)")


def test_dev_kvm_state_agrees_with_the_filesystem(live):
    state = live.kvm.device.state
    if not os.path.exists("/dev/kvm"):
        assert state in ("absent", "blocked", "error")
    else:
        assert state != "absent"
    if state == "usable":
        assert live.kvm.device.api_version == 12
        assert live.verdict.kvm_usable is True


def test_findings_are_well_formed(live):
    for f in live.verdict.findings:
        assert f.level in ("pass", "info", "warn", "fail")
        assert f.code and f.check and f.message
        if f.level in ("warn", "fail"):
            assert f.remedy, f.code
    assert live.text().endswith(f"nested virtualization for guests: {live.verdict.nested_for_guests}\n")
