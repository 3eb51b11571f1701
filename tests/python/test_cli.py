"""python -m nestcore: the same output and exit status as the Rust CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import nestcore


def run(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "nestcore", *args], capture_output=True, text=True, cwd=cwd, env=e, timeout=120
    )


def test_json_equals_to_dict(intel_nested_off):
    h = intel_nested_off
    p = run("check", "--root", str(h.root), "--cpuid", str(h.cpuid), "--json")
    assert p.returncode == 1, p.stderr
    assert p.stderr == ""
    assert json.loads(p.stdout) == nestcore.check(h.root, h.cpuid).to_dict()
    assert p.stdout == nestcore.check(h.root, h.cpuid).to_json() + "\n"


def test_text_and_exit_status(amd_nested_on, intel_nested_off):
    h = amd_nested_on
    p = run("check", "--root", str(h.root), "--cpuid", str(h.cpuid))
    assert p.returncode == 0, p.stderr
    # Not a terminal: no colours.
    assert p.stdout == nestcore.check(h.root, h.cpuid).text()
    p = run("check", "--root", str(intel_nested_off.root), "--cpuid", str(intel_nested_off.cpuid))
    assert p.returncode == 1
    assert "code: kvm.nested_off" in p.stdout


def test_error_exit_status_and_message(tmp_path):
    p = run("check", "--root", str(tmp_path / "missing"))
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr == f"nestcore: Cannot access {tmp_path / 'missing'}: No such file or directory (os error 2)\n"


def test_usage_errors_exit_2():
    assert run().returncode == 2
    assert run("check", "--bogus").returncode == 2
    v = run("--version")
    assert v.returncode == 0 and v.stdout.strip() == f"nestcore {nestcore.__version__}"


def test_live_json_no_probe():
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("no /proc: not a Linux host")
    p = run("check", "--json", "--no-probe")
    assert p.returncode in (0, 1), p.stderr
    d = json.loads(p.stdout)
    assert d["host"]["live"] is True and d["kvm"]["probe"] is None
    assert d["cpu"] == nestcore.check(probe=False).to_dict()["cpu"]


# The Rust CLI, when scripts/test-all built it: byte for byte the same output and status.
@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_same_as_rust_cli(rust_cli, intel_nested_off, amd_nested_on, tmp_path, extra):
    cases = [
        ["check", "--root", str(intel_nested_off.root), "--cpuid", str(intel_nested_off.cpuid)],
        ["check", "--root", str(amd_nested_on.root), "--cpuid", str(amd_nested_on.cpuid)],
        ["check", "--root", str(amd_nested_on.root)],
        ["check", "--root", str(tmp_path / "missing")],
        ["check", "--root", str(amd_nested_on.root), "--cpuid", str(amd_nested_on.root / "proc/cmdline")],
    ]
    for args in cases:
        args = args + extra
        rust = subprocess.run([str(rust_cli), *args], capture_output=True, text=True, timeout=120)
        py = run(*args)
        assert (py.returncode, py.stdout, py.stderr) == (rust.returncode, rust.stdout, rust.stderr), args


def test_openstack_example(intel_nested_off):
    from conftest import REPO

    h = intel_nested_off
    p = subprocess.run(
        [sys.executable, str(REPO / "examples/python/openstack_compute_check.py"), "--root", str(h.root), "--cpuid", str(h.cpuid)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1, p.stderr
    assert "Nested for guests:  disabled" in p.stdout
    assert "[FAIL] kvm.nested_off:" in p.stdout
    assert ("nestcore.guest_cpu" in p.stdout) != hasattr(nestcore, "guest_cpu")
