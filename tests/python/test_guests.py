"""guests() and guests_cli(): which guests of a recorded host will get VMX/SVM, why, and the fix;
the same answers as the Rust fixtures (tests/fixtures/guests/*/expect.json), fixes applied to a
copy, pickling, and `python -m nestcore guests`."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nestcore
from conftest import REPO

GUESTS = REPO / "tests" / "fixtures" / "guests"
HOSTS = REPO / "tests" / "fixtures" / "hosts"


def fixture_root(name: str, tmp_path: Path):
    """A writable root: the host fixture named in `host`, the guest definitions laid over it."""
    host = (GUESTS / name / "host").read_text().strip()
    root = tmp_path / name
    shutil.copytree(HOSTS / host / "root", root, symlinks=True)
    shutil.copytree(GUESTS / name / "root", root, symlinks=True, dirs_exist_ok=True)
    return root, HOSTS / host / "cpuid.txt"


@pytest.mark.parametrize("name", sorted(p.name for p in GUESTS.iterdir()))
def test_fixture_verdicts_match_the_hand_decided_ones(name, tmp_path):
    root, cpuid = fixture_root(name, tmp_path)
    want = json.loads((GUESTS / name / "expect.json").read_text())
    r = nestcore.guests(root, cpuid)
    assert r.exit_code == want["exit_code"]
    assert len(r.guests) == len(want["guests"])
    by = {(g.source, g.name): g for g in r.guests}
    for w in want["guests"]:
        g = by[(w.get("source", "libvirt"), w["name"])]
        assert g.gets_extension is w["gets_extension"], (name, g)
        assert g.reason.code == w["code"], (name, g.reason)
        assert (g.fix is not None) is w["fix"], (name, g.fix)
    assert r.summary.total == len(r.guests)
    assert r.applied is None and r.after is None


def test_objects_mirror_the_json_and_pickle(tmp_path):
    root, cpuid = fixture_root("libvirt-intel", tmp_path)
    r = nestcore.guests(root, cpuid)
    assert r.host.extension == "vmx" and r.host.nested_for_guests == "available"
    assert [s.source for s in r.sources] == ["libvirt", "nova", "proxmox"]
    assert r.sources[0].read == "files"
    nocpu = next(g for g in r.guests if g.name == "nocpu")
    assert nocpu.fix is not None
    kinds = [a.kind for a in nocpu.fix.actions]
    assert kinds == ["write_file", "run"]
    assert "+    <feature policy='require' name='vmx'/>" in nocpu.fix.actions[0].diff
    assert nocpu.fix.actions[1].description.startswith("run `virsh -c qemu:///system define /etc/libvirt/qemu/nocpu.xml`")
    assert nocpu.fix.actions[0].when == "after_restart"
    assert ("after_restart", "nocpu gets vmx at its next full stop and start") in nocpu.fix.timeline
    d = r.to_dict()
    assert d["guests"][0]["reason"]["code"] == r.guests[0].reason.code
    assert json.loads(r.to_json()) == d
    again = pickle.loads(pickle.dumps(r))
    assert again == r and hash(again) == hash(r)
    assert pickle.loads(pickle.dumps(nocpu)) == nocpu
    assert "Guest(source='libvirt', name='broken'" in repr(r.guests[0])


def test_apply_fixes_a_copy_and_finds_the_guests_again(tmp_path):
    root, cpuid = fixture_root("nova-custom", tmp_path)
    before = (root / "etc/nova/nova.conf").read_text()
    r = nestcore.guests(root, cpuid)
    assert (root / "etc/nova/nova.conf").read_text() == before, "nothing changes without apply"
    assert r.guests[0].gets_extension is False
    r = nestcore.guests(root, cpuid, apply=True)
    assert r.applied is not None and len(r.applied) == 1
    a = r.applied[0]
    assert a.error is None and a.report is not None
    assert a.report.written == ("/etc/nova/nova.conf",)
    assert a.report.deferred == ("systemctl restart nova-compute",)
    assert r.after is not None and r.after.guests[0].gets_extension is True
    assert r.exit_code == 0 and r.after.exit_code == 0
    assert "cpu_model_extra_flags = vmx" in (root / "etc/nova/nova.conf").read_text()


def test_guests_cli_and_python_m(tmp_path):
    root, cpuid = fixture_root("proxmox", tmp_path)
    text, code = nestcore.guests_cli(root, cpuid)
    assert code == 1
    assert "qm set 100 --cpu host" in text
    out, code2 = nestcore.guests_cli(root, cpuid, json=True)
    assert json.loads(out)["exit_code"] == code2 == 1
    p = subprocess.run(
        [sys.executable, "-m", "nestcore", "guests", "--root", str(root), "--cpuid", str(cpuid), "--json"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1
    assert json.loads(p.stdout)["guests"][0]["source"] == "proxmox"


def test_errors_are_exceptions_and_bad_definitions_are_guests(tmp_path):
    with pytest.raises(nestcore.NestcoreNotFoundError):
        nestcore.guests(tmp_path / "missing")
    q = tmp_path / "r" / "etc" / "libvirt" / "qemu"
    q.mkdir(parents=True)
    (q / "bad.xml").write_text("<domain type='kvm'><name>bad")
    r = nestcore.guests(tmp_path / "r")
    assert [(g.name, g.reason.code, g.gets_extension) for g in r.guests] == [("bad", "malformed", None)]
