"""snapshot(): records the live host into a folder under tmp_path (nothing else is written), and
the recording reproduces the live CPU answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import nestcore


@pytest.fixture(scope="module")
def linux():
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("no /proc: not a Linux host")


def test_snapshot_reproduces_the_cpu(linux, tmp_path):
    target = tmp_path / "snap"
    snap = nestcore.snapshot(target)
    assert type(snap) is nestcore.Snapshot
    assert snap.dir == str(target)
    assert "/proc/cpuinfo" in snap.files
    assert all((target / f.lstrip("/")).exists() for f in snap.files)
    assert all(Path(w).is_file() and w.startswith(str(target)) for w in snap.written)
    assert str(target / "proc/cpuinfo") in snap.written and str(target / "nestcore-report.json") in snap.written
    recorded = nestcore.check(snap.dir, snap.cpuid)
    live = nestcore.check(probe=False)
    for attr in ("vendor_id", "family", "model", "stepping", "extension", "flags_vmx", "flags_svm"):
        assert getattr(recorded.cpu, attr) == getattr(live.cpu, attr), attr
    assert recorded.host.live is False
    assert snap == nestcore.Snapshot.__reduce__(snap)[0](*nestcore.Snapshot.__reduce__(snap)[1])


def test_cli_snapshot_says_how_to_reproduce(linux, tmp_path):
    target = tmp_path / "snap"
    p = subprocess.run(
        [sys.executable, "-m", "nestcore", "snapshot", str(target)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("Recorded ") and lines[0].endswith(f" files into {target}:")
    listed = [l[2:] for l in lines[1:] if l.startswith("  ")]
    on_disk = sorted(str(f) for f in Path(target).rglob("*") if f.is_file())
    assert sorted(listed) == on_disk  # every file it wrote, and nothing else (issue 13)
    assert lines[0] == f"Recorded {len(listed)} files into {target}:"
    assert lines[1 + len(listed)].startswith(f"Reproduce with: nestcore check --root {target}")
    assert Path(target, "nestcore-report.json").is_file()
