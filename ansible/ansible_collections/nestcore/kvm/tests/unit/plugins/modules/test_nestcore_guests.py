"""nestcore_guests: facts and fixes on copies of the repository's guest fixtures (the real nestcore
package), check mode (diffs, nothing written), fail_on_missing, a failed fix, an old package."""

from __future__ import annotations

import shutil
import socket

import pytest

nestcore = pytest.importorskip("nestcore")

from ansible_collections.nestcore.kvm.plugins.module_utils.nestcore_common import NestcoreModuleFailure  # noqa: E402
from ansible_collections.nestcore.kvm.plugins.modules import nestcore_guests  # noqa: E402


def guest_root(fixtures, tmp_path, name):
    host = (fixtures / "guests" / name / "host").read_text().strip()
    root = tmp_path / name
    shutil.copytree(fixtures / "hosts" / host / "root", root, symlinks=True)
    shutil.copytree(fixtures / "guests" / name / "root", root, symlinks=True, dirs_exist_ok=True)
    return root, fixtures / "hosts" / host / "cpuid.txt"


def params(root, cpuid, **kw):
    p = {"fix": False, "root": str(root), "cpuid": str(cpuid), "virsh": None, "fail_on_missing": False}
    p.update(kw)
    return p


def test_argument_spec():
    spec = nestcore_guests.ARGUMENT_SPEC
    assert set(spec) == {"fix", "root", "cpuid", "virsh", "fail_on_missing"}
    assert spec["fix"]["default"] is False and spec["fail_on_missing"]["default"] is False


def test_facts_only_change_nothing(fixtures, tmp_path):
    root, cpuid = guest_root(fixtures, tmp_path, "libvirt-amd")
    before = (root / "etc/libvirt/qemu/epyc.xml").read_text()
    r = nestcore_guests.run(params(root, cpuid), nestcore)
    assert r["changed"] is False and r["exit_code"] == 1
    assert {g["name"]: g["reason"]["code"] for g in r["guests"]}["epyc"] == "model_lacks"
    assert r["summary"]["total"] == 5 and r["summary"]["fixable"] == 3
    assert r["ansible_facts"]["nestcore_guests"]["guests"] == r["guests"]
    assert any(m.startswith("libvirt epyc: ") for m in r["missing"])
    assert (root / "etc/libvirt/qemu/epyc.xml").read_text() == before


def test_check_mode_shows_the_diffs_and_writes_nothing(fixtures, tmp_path):
    root, cpuid = guest_root(fixtures, tmp_path, "libvirt-amd")
    before = (root / "etc/libvirt/qemu/epyc.xml").read_text()
    r = nestcore_guests.run(params(root, cpuid, fix=True, fail_on_missing=True), nestcore, check_mode=True)
    assert r["changed"] is True
    paths = sorted(d["before_header"] for d in r["diff"])
    assert paths == ["/etc/libvirt/qemu/epyc.xml", "/etc/libvirt/qemu/hostmodel.xml", "/etc/libvirt/qemu/nocpu.xml"]
    assert all("name='svm'" in d["prepared"] for d in r["diff"])
    assert (root / "etc/libvirt/qemu/epyc.xml").read_text() == before


def test_fix_applies_and_is_idempotent(fixtures, tmp_path):
    root, cpuid = guest_root(fixtures, tmp_path, "proxmox")
    r = nestcore_guests.run(params(root, cpuid, fix=True), nestcore)
    # Proxmox's fixes are `qm set` commands: listed (recorded root), the host's files unchanged.
    assert r["changed"] is False
    assert "qm set 100 --cpu host" in r["deferred"]
    root, cpuid = guest_root(fixtures, tmp_path, "libvirt-intel")
    r = nestcore_guests.run(params(root, cpuid, fix=True), nestcore)
    assert r["changed"] is True
    assert "virsh -c qemu:///system define /etc/libvirt/qemu/nocpu.xml" in r["deferred"]
    assert sorted(m.split(":")[0] for m in r["missing"]) == ["libvirt broken", "libvirt network"]
    again = nestcore_guests.run(params(root, cpuid, fix=True), nestcore)
    assert again["changed"] is False and again.get("applied") == []


def test_fail_on_missing_names_the_host_and_the_guests(fixtures, tmp_path):
    root, cpuid = guest_root(fixtures, tmp_path, "host-nested-off")
    with pytest.raises(NestcoreModuleFailure) as e:
        nestcore_guests.run(params(root, cpuid, fix=True, fail_on_missing=True), nestcore)
    assert socket.gethostname() in e.value.msg
    assert e.value.extra["reason"] == "missing_extension"
    assert "host_nested_disabled" in e.value.msg


def test_a_failed_fix_fails_with_the_reason(fixtures, tmp_path):
    root, cpuid = guest_root(fixtures, tmp_path, "libvirt-amd")
    q = root / "etc/libvirt/qemu"
    (q / "epyc.xml").rename(root / "epyc.xml")
    (q / "epyc.xml").symlink_to("/epyc.xml")
    with pytest.raises(NestcoreModuleFailure) as e:
        nestcore_guests.run(params(root, cpuid, fix=True), nestcore)
    assert e.value.extra["reason"] == "fix_failed" and "libvirt epyc" in e.value.msg


def test_old_package_and_bad_root(fixtures, tmp_path):
    class Old:
        __version__ = "0.0.1"
        NestcoreError = nestcore.NestcoreError

    with pytest.raises(NestcoreModuleFailure) as e:
        nestcore_guests.run(params(tmp_path, tmp_path), Old())
    assert e.value.extra["reason"] == "nestcore_too_old"
    with pytest.raises(NestcoreModuleFailure) as e:
        nestcore_guests.run(params(tmp_path / "missing", tmp_path / "x"), nestcore)
    assert e.value.extra["reason"] == "error"


def test_main_rejects_bad_arguments(run_main):
    status, result = run_main(nestcore_guests, {"fix": "maybe"})
    assert status == "fail" and "fix" in result["msg"]
