"""python -m nestcore: the same output and exit status as the Rust CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nestcore
from conftest import REPO


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
    # Every subcommand of the binary is there (the same program: nestcore::cli::main).
    for sub in ("check", "snapshot", "cpuid", "enable", "kargs", "guest-cpu", "completions", "man"):
        h = run(sub, "--help")
        assert h.returncode == 0 and h.stdout.startswith(("Check", "Record", "Print", "Plan", "Edit", "Generate", "Write")), sub
        assert f"Usage: python -m nestcore {sub}" in h.stdout, h.stdout
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
    h = intel_nested_off
    fmt = ["--format", "prometheus"] if not extra else ["--format", "json"]
    _same(rust_cli, ["check", "--root", str(h.root), "--cpuid", str(h.cpuid), *fmt])


def _same(rust_cli, args, cwd=None, stdin=None):
    """Runs `nestcore ARGS` and `python -m nestcore ARGS`; asserts the same status, stdout and stderr."""
    rust = subprocess.run(
        [str(rust_cli), *args], capture_output=True, text=True, timeout=120, cwd=cwd, input=stdin
    )
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    py = subprocess.run(
        [sys.executable, "-m", "nestcore", *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=e, input=stdin
    )
    assert (py.returncode, py.stdout, py.stderr) == (rust.returncode, rust.stdout, rust.stderr), args
    return rust


def _tree(root: Path):
    """Every file under root with its bytes (symlinks as their target), for comparing two applies."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_file():
            out[rel] = ("file", p.read_bytes())
    return out


ENABLE_FIXTURES = REPO / "tests" / "fixtures" / "enable"


@pytest.mark.parametrize("case", ["debian-grub2", "centos6-grub-legacy", "conflict-distro", "fedora-bls", "amd-host"])
def test_enable_same_as_rust_cli(rust_cli, tmp_path, case):
    root = ENABLE_FIXTURES / case / "root"
    for extra in ([], ["--json"], ["--persist", "modprobe,cmdline"], ["--off"], ["--neutralise-conflicts"],
                  ["--persist", "bogus"]):
        _same(rust_cli, ["enable", "--root", str(root), *extra])
    # --apply on two copies of the root: the same output, and the same files afterwards.
    trees = []
    for who in ("rust", "python"):
        copy = tmp_path / who
        shutil.copytree(root, copy, symlinks=True)
        trees.append(copy)
    args = ["enable", "--persist", "modprobe,cmdline", "--apply"]
    rust = subprocess.run([str(rust_cli), *args, "--root", str(trees[0])], capture_output=True, text=True, timeout=120)
    py = run(*args, "--root", str(trees[1]))
    assert py.returncode == rust.returncode, (py.stderr, rust.stderr)
    assert py.stdout.replace(str(trees[1]), "ROOT") == rust.stdout.replace(str(trees[0]), "ROOT")
    assert py.stderr.replace(str(trees[1]), "ROOT") == rust.stderr.replace(str(trees[0]), "ROOT")
    assert _tree(trees[1]) == _tree(trees[0])


def test_kargs_same_as_rust_cli(rust_cli, tmp_path):
    grub_conf = ENABLE_FIXTURES / "centos6-grub-legacy" / "root" / "boot" / "grub" / "grub.conf"
    default_grub = ENABLE_FIXTURES / "debian-grub2" / "root" / "etc" / "default" / "grub"
    cases = [
        ["--config", str(grub_conf), "--loader", "grub", "--args", "kvm-intel.nested=1"],
        ["--config", str(grub_conf), "--loader", "grub", "--update-kernel", "DEFAULT", "--remove-args", "quiet"],
        ["--config", str(grub_conf), "--loader", "grub", "--remove-args", "kvm-intel.nested"],
        ["--config", str(default_grub), "--loader", "grub2", "--args", "kvm-intel.nested=1 quiet"],
        ["--config", str(grub_conf), "--loader", "lilo", "--args", "x=1"],
        ["--config", str(tmp_path / "missing"), "--loader", "grub", "--args", "x=1"],
    ]
    for args in cases:
        _same(rust_cli, ["kargs", *args])
    # --in-place: the same message and the same file.
    copies = []
    for who in ("rust", "python"):
        c = tmp_path / who / "grub.conf"
        c.parent.mkdir()
        shutil.copy(grub_conf, c)
        copies.append(c)
    args = ["--loader", "grub", "--args", "kvm-intel.nested=1", "--in-place"]
    rust = subprocess.run([str(rust_cli), "kargs", "--config", str(copies[0]), *args], capture_output=True, text=True)
    py = run("kargs", "--config", str(copies[1]), *args)
    assert (py.returncode, py.stdout) == (rust.returncode, rust.stdout) == (0, "")
    assert py.stderr.replace(str(copies[1]), "F") == rust.stderr.replace(str(copies[0]), "F")
    assert copies[0].read_bytes() == copies[1].read_bytes() != grub_conf.read_bytes()


def test_guest_cpu_same_as_rust_cli(rust_cli, intel_nested_off, amd_nested_on, tmp_path):
    domain = tmp_path / "domain.xml"
    domain.write_text(
        "<domain type='kvm'>\n  <name>g</name>\n  <memory>1048576</memory>\n"
        "  <cpu mode='custom' match='exact'>\n    <model>qemu64</model>\n  </cpu>\n</domain>\n"
    )
    i, a = intel_nested_off, amd_nested_on
    cases = [
        ["--vendor", "amd", "--format", "qemu", "--model", "EPYC-Rome"],
        ["--vendor", "intel", "--format", "nova", "--mode", "host-model"],
        ["--vendor", "intel", "--feature", "require:vmx", "--model", "Skylake-Server", "--topology", "1,2,1"],
        ["--root", str(i.root), "--cpuid", str(i.cpuid), "--for-host"],
        ["--root", str(a.root), "--cpuid", str(a.cpuid), "--for-host", "--format", "qemu"],
        ["--vendor", "intel", "--ensure-nested", str(domain)],
        ["--vendor", "amd", "--ensure-nested", str(domain), "--disable"],
        ["--vendor", "intel", "--feature", "bogus"],
        ["--vendor", "intel", "--ensure-nested", str(tmp_path / "missing.xml")],
    ]
    for args in cases:
        _same(rust_cli, ["guest-cpu", *args])
    # The domain on standard input.
    _same(rust_cli, ["guest-cpu", "--vendor", "intel", "--ensure-nested", "-"], stdin=domain.read_text())


def test_every_other_subcommand_same_as_rust_cli(rust_cli, tmp_path):
    for shell in ("bash", "zsh", "fish"):
        _same(rust_cli, ["completions", shell])
    for args in (["--version"], ["--help"], ["check", "--help"], ["enable", "--help"]):
        rust = subprocess.run([str(rust_cli), *args], capture_output=True, text=True)
        py = run(*args)
        # Only the program's name differs in help texts.
        assert py.returncode == rust.returncode == 0
        assert py.stdout.replace("python -m nestcore", "nestcore") == rust.stdout, args
    # Usage errors: status 2 and the same message but for the program's name.
    for args in (["check", "--bogus"], ["frobnicate"], ["check", "--json", "--format", "text"], []):
        rust = subprocess.run([str(rust_cli), *args], capture_output=True, text=True)
        py = run(*args)
        assert py.returncode == rust.returncode == 2, args
        assert py.stderr.replace("python -m nestcore", "nestcore") == rust.stderr, args
    pages = []
    for who, cmd in (("rust", [str(rust_cli)]), ("python", [sys.executable, "-m", "nestcore"])):
        out = tmp_path / who
        p = subprocess.run([*cmd, "man", str(out)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        pages.append({f.name: f.read_bytes() for f in out.iterdir()})
    assert pages[0] == pages[1] and "nestcore-enable.1" in pages[0]


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
