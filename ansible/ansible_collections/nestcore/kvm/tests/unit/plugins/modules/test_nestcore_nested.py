"""nestcore_nested: arguments, the plan's blockers (failures that name the host, the reason and
the remedy; the real planner on copies of recorded hosts), warnings as module warnings and
notes as data, idempotence (empty plan => no change), check mode, diffs, apply failures, undo.
Most plans are fakes with the documented attributes; the reports are the real ones of recorded
hosts."""

from __future__ import annotations

import shutil
import socket

import pytest

nestcore = pytest.importorskip("nestcore")

from ansible_collections.nestcore.kvm.plugins.module_utils.nestcore_common import NestcoreModuleFailure  # noqa: E402
from ansible_collections.nestcore.kvm.plugins.modules import nestcore_nested  # noqa: E402

from fakes import FakeNestcore, FakePlan  # noqa: E402

DROPIN = "/etc/modprobe.d/nestcore-kvm.conf"
DROPIN_DIFF = "--- /dev/null\n+++ %s\n@@ -0,0 +1 @@\n+options kvm_intel nested=1\n" % DROPIN


def params(root, **kw):
    p = {"state": "enabled", "persist": ["modprobe"], "root": str(root), "neutralise_conflicts": False, "force": False}
    p.update(kw)
    return p


def copy_root(fixtures, tmp_path, kind, name):
    dst = tmp_path / name
    shutil.copytree(fixtures / kind / name / "root", dst, symlinks=True)
    return dst


def dropin_plan(root, **kw):
    def write():
        (root / "etc" / "modprobe.d").mkdir(parents=True, exist_ok=True)
        (root / "etc" / "modprobe.d" / "nestcore-kvm.conf").write_text("options kvm_intel nested=1\n")

    return FakePlan(
        actions=[("write", "create the drop-in", DROPIN, DROPIN_DIFF), ("command", "regenerate", None, None)],
        timeline=[("after_reload", "kvm_intel loads with nested=1")],
        reboot_required=True,
        on_apply=write,
        **kw,
    )


def fails(p, nc, check_mode=False):
    with pytest.raises(NestcoreModuleFailure) as e:
        nestcore_nested.run(p, nc, check_mode=check_mode)
    assert socket.gethostname() in e.value.msg
    return e.value


def test_argument_spec():
    spec = nestcore_nested.ARGUMENT_SPEC
    assert set(spec) == {"state", "persist", "root", "cpuid", "neutralise_conflicts", "force"}
    assert spec["state"]["choices"] == ["enabled", "disabled", "undone"] and spec["state"]["default"] == "enabled"
    assert spec["force"] == {"type": "bool", "default": False}
    assert spec["persist"]["default"] == ["modprobe"]
    assert spec["persist"]["choices"] == ["modprobe", "cmdline", "runtime"]
    assert spec["persist"]["type"] == "list" and spec["persist"]["elements"] == "str"


@pytest.mark.parametrize(
    "args,word",
    [({"persist": ["reboot"]}, "persist"), ({"state": "on"}, "state"), ({"neutralise_conflicts": "maybe"}, "neutralise")],
)
def test_main_rejects_bad_arguments(run_main, args, word):
    status, result = run_main(nestcore_nested, args)
    assert status == "fail" and word in result["msg"]


def test_empty_persist_fails(fixtures):
    e = fails(params(fixtures / "hosts/intel-nested-off/root", persist=[]), FakeNestcore())
    assert e.extra["reason"] == "invalid"


@pytest.mark.parametrize(
    "name,reason,words",
    [
        ("no-extension", "no_extension", "neither VMX (VT-x) nor SVM"),
        ("xen-pv-guest", "hidden_by_hypervisor", "does not pass"),
        ("aarch64-no-cpuid", "unsupported_cpu", "no x86 vendor_id"),
        ("intel-firmware-disabled", "firmware_disabled", "firmware disabled it"),
        ("pvm-guest", "pvm_backend", "kvm_pvm"),
    ],
)
def test_hosts_where_nesting_cannot_work_fail_with_the_blocker(fixtures, tmp_path, name, reason, words):
    """The real planner: nestcore's check is the judge (issue 13), the module only reports."""
    root = copy_root(fixtures, tmp_path, "hosts", name)
    cpuid = fixtures / "hosts" / name / "cpuid.txt"
    e = fails(params(root, cpuid=str(cpuid) if cpuid.exists() else None), nestcore)
    assert e.extra["reason"] == reason, e.msg
    assert words in e.msg and str(root) in e.msg
    assert e.extra["blockers"][0]["reason"] in e.msg
    if reason != "unsupported_cpu":
        # The remedy, in Ansible's words.
        assert "force: true" in e.msg and "--force" not in e.msg
    assert not (root / "etc/modprobe.d/nestcore-kvm.conf").exists()  # nothing applied


def test_force_plans_it_anyway_and_warns(fixtures, tmp_path):
    root = copy_root(fixtures, tmp_path, "hosts", "no-extension")
    warned = []
    r = nestcore_nested.run(params(root, force=True), nestcore, warn=warned.append)
    assert r["changed"] is True and r["blockers"] == []
    assert any(w.startswith("forced past (force: true): ") for w in warned), warned
    assert "warnings" not in r  # exit_json(warnings=...) is deprecated in ansible-core 2.19


def test_busy_module_fails_for_runtime_only(fixtures, tmp_path):
    root = copy_root(fixtures, tmp_path, "enable", "busy-module")
    e = fails(params(root, persist=["runtime"]), nestcore)
    assert e.extra["reason"] == "module_busy"
    assert "kvm_intel" in e.msg and "in use" in e.msg and "refcnt 3" in e.msg
    # modprobe.d does not need the module unloaded: planned as usual.
    nc = FakeNestcore(plan=FakePlan())
    assert nestcore_nested.run(params(root), nc)["changed"] is False
    assert len(nc.plan_calls) == 1


def test_builtin_module_fails_for_runtime(fixtures, tmp_path):
    root = copy_root(fixtures, tmp_path, "enable", "wsl2-builtin")
    e = fails(params(root, persist=["runtime", "modprobe"]), nestcore)
    assert e.extra["reason"] == "module_builtin" and "built into the kernel" in e.msg and "cmdline" in e.msg


def test_disabling_is_not_judged_by_the_check(fixtures):
    nc = FakeNestcore()
    r = nestcore_nested.run(params(fixtures / "hosts/no-extension/root", state="disabled"), nc)
    assert r["changed"] is False and nc.plan_calls[0]["want"] == "off"


def test_notes_are_data_and_warnings_are_warnings(fixtures):
    plan = FakePlan(notes=["kvm_intel chosen from /proc/cpuinfo vendor_id \"GenuineIntel\""],
                    warnings=["the running kernel's command line sets kvm-intel.nested=0"])
    warned = []
    r = nestcore_nested.run(params(fixtures / "hosts/intel-nested-on/root"), FakeNestcore(plan=plan), warn=warned.append)
    assert r["notes"] == list(plan.notes)
    assert warned == list(plan.warnings)
    assert "warnings" not in r


def test_planner_error_names_the_host_and_reason(fixtures):
    err = nestcore.NestcoreUnsupported("kvm_intel is in use (refcnt 3, holders []): stop the virtual machines first")
    nc = FakeNestcore(plan_error=err)
    e = fails(params(fixtures / "hosts/intel-nested-off/root", persist=["runtime"]), nc)
    assert e.extra["reason"] == "module_busy" and e.extra["kind"] == "unsupported"
    assert "in use" in e.msg


def test_options_reach_the_planner(fixtures):
    nc = FakeNestcore()
    root = fixtures / "hosts/intel-nested-off/root"
    nestcore_nested.run(params(root, persist=["cmdline", "modprobe"], neutralise_conflicts=True), nc)
    assert nc.plan_calls == [
        dict(root=str(root), want="on", persist=("cmdline", "modprobe"), neutralise_conflicts=True, force=False,
             cpuid=None, dialect="ansible")
    ]


def test_blockers_fail_and_nothing_is_applied(fixtures):
    plan = FakePlan(
        actions=[("write", "drop-in", DROPIN, DROPIN_DIFF)],
        blockers=[("plan.modprobe_conflict", "/usr/lib/modprobe.d/x.conf:2 wins", "neutralise_conflicts: true")],
    )
    e = fails(params(fixtures / "enable/conflict-distro/root"), FakeNestcore(plan=plan))
    assert e.extra["reason"] == "blocked"
    assert e.extra["blockers"] == [
        {"code": "plan.modprobe_conflict", "reason": "/usr/lib/modprobe.d/x.conf:2 wins", "remedy": "neutralise_conflicts: true"}
    ]
    assert "x.conf:2 wins (remedy: neutralise_conflicts: true)" in e.msg and plan.applied == 0


def test_real_conflict_speaks_ansible(fixtures, tmp_path):
    root = copy_root(fixtures, tmp_path, "enable", "conflict-distro")
    e = fails(params(root), nestcore)
    assert e.extra["reason"] == "blocked" and e.extra["blockers"][0]["code"] == "plan.modprobe_conflict"
    assert "neutralise_conflicts: true" in e.msg and "--neutralise-conflicts" not in e.msg


def test_empty_plan_is_no_change(fixtures):
    plan = FakePlan()
    r = nestcore_nested.run(params(fixtures / "hosts/intel-nested-on/root"), FakeNestcore(plan=plan))
    assert r["changed"] is False and r["reboot_required"] is False and plan.applied == 0
    assert r["plan"] == "PLAN: 0 actions" and r["diff"] == [] and r["blockers"] == []
    assert r["nested_before"] == r["nested_after"] == "enabled"


def test_empty_plan_but_kernel_differs_means_reboot_pending(fixtures):
    r = nestcore_nested.run(params(fixtures / "hosts/intel-nested-off/root"), FakeNestcore(plan=FakePlan()))
    assert r["changed"] is False and r["reboot_required"] is True


def test_check_mode_plans_only(fixtures, tmp_path):
    root = copy_root(fixtures, tmp_path, "hosts", "intel-nested-off")
    plan = dropin_plan(root)
    r = nestcore_nested.run(params(root), FakeNestcore(plan=plan), check_mode=True)
    assert r["changed"] is True and r["reboot_required"] is True and plan.applied == 0
    assert r["diff"] == [{"before_header": DROPIN, "after_header": DROPIN, "prepared": DROPIN_DIFF}]
    assert [a["kind"] for a in r["actions"]] == ["write", "command"]
    assert r["timeline"] == [{"when": "after_reload", "what": "kvm_intel loads with nested=1"}]
    assert not (root / DROPIN.lstrip("/")).exists()


def test_apply_reports_before_and_after(fixtures, tmp_path):
    root = copy_root(fixtures, tmp_path, "hosts", "intel-nested-off")
    plan = dropin_plan(root)
    r = nestcore_nested.run(params(root), FakeNestcore(plan=plan))
    assert plan.applied == 1 and r["changed"] is True
    assert r["diff"] == [
        {"before_header": DROPIN, "after_header": DROPIN, "before": "", "after": "options kvm_intel nested=1\n"}
    ]
    assert r["written"] == [DROPIN] and r["deferred"] == ["modprobe -r kvm_intel"]
    assert r["commands"] == [{"cmd": "update-grub", "status": 0}]
    # The running kernel still has nested off: a reboot (or reload) is needed.
    assert r["reboot_required"] is True and r["nested_after"] == "disabled"


def test_apply_that_changes_nothing_is_no_change(fixtures, tmp_path):
    root = copy_root(fixtures, tmp_path, "hosts", "intel-nested-on")
    plan = FakePlan(actions=[("write", "drop-in", DROPIN, DROPIN_DIFF)], changed=False, reboot_required=True)
    r = nestcore_nested.run(params(root), FakeNestcore(plan=plan))
    assert r["changed"] is False and r["reboot_required"] is False


def test_apply_failure_carries_the_rollback(fixtures, tmp_path):
    root = copy_root(fixtures, tmp_path, "hosts", "intel-nested-off")
    err = nestcore.NestcoreUnsupported("verifying /sys/module/kvm_intel/parameters/nested failed")
    err.rolled_back = [DROPIN]
    e = fails(params(root), FakeNestcore(plan=dropin_plan(root, apply_error=err)))
    assert e.extra["reason"] == "apply_failed" and e.extra["rolled_back"] == [DROPIN]
    assert "rolled back: %s" % DROPIN in e.msg


def test_main_check_mode_end_to_end(run_main, fixtures, monkeypatch, tmp_path):
    root = copy_root(fixtures, tmp_path, "hosts", "intel-nested-off")
    plan = dropin_plan(root)
    monkeypatch.setattr(nestcore_nested, "nestcore", FakeNestcore(plan=plan))
    status, result = run_main(nestcore_nested, {"root": str(root), "_ansible_check_mode": True})
    assert status == "exit" and result["changed"] is True and plan.applied == 0


@pytest.mark.skipif(not hasattr(nestcore, "plan_nested"), reason="nestcore.plan_nested() not in this build yet")
def test_real_plan_is_idempotent(run_main, fixtures, tmp_path):
    root = copy_root(fixtures, tmp_path, "enable", "debian-grub2")
    args = {"root": str(root), "persist": ["modprobe", "cmdline"]}
    status, first = run_main(nestcore_nested, dict(args, _ansible_check_mode=True))
    assert status == "exit" and first["changed"] is True and first["diff"]
    status, first = run_main(nestcore_nested, args)
    assert status == "exit" and first["changed"] is True, first
    assert any(d["after_header"] == DROPIN for d in first["diff"])
    status, second = run_main(nestcore_nested, args)
    assert status == "exit" and second["changed"] is False, second


@pytest.mark.skipif(not hasattr(nestcore, "plan_undo"), reason="nestcore.plan_undo() not in this build yet")
def test_undone_puts_back_the_last_apply(run_main, fixtures, tmp_path):
    root = copy_root(fixtures, tmp_path, "enable", "debian-grub2")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    status, r = run_main(nestcore_nested, {"root": str(root), "persist": ["modprobe", "cmdline"]})
    assert status == "exit" and r["changed"] is True and r["transaction"].endswith("/0001/manifest.json"), r
    status, r = run_main(nestcore_nested, {"root": str(root), "state": "undone", "_ansible_check_mode": True})
    assert status == "exit" and r["changed"] is True and r["diff"]
    status, r = run_main(nestcore_nested, {"root": str(root), "state": "undone"})
    assert status == "exit" and r["changed"] is True, r
    assert r["removed"] == [DROPIN]
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "var/lib/nestcore" not in str(p)}
    assert after == before
    status, r = run_main(nestcore_nested, {"root": str(root), "state": "undone"})
    assert status == "exit" and r["changed"] is False, r


@pytest.mark.skipif(not hasattr(nestcore, "plan_undo"), reason="nestcore.plan_undo() not in this build yet")
def test_undone_is_declarative_with_two_applies(run_main, fixtures, tmp_path):
    """nestcore's undo walks back one apply a call; state=undone undoes the last apply once."""
    root = copy_root(fixtures, tmp_path, "enable", "debian-grub2")
    status, r = run_main(nestcore_nested, {"root": str(root), "persist": ["modprobe", "cmdline"]})
    assert status == "exit" and r["changed"] is True, r
    on = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "var/lib/nestcore" not in str(p)}
    status, r = run_main(nestcore_nested, {"root": str(root), "state": "disabled"})
    assert status == "exit" and r["changed"] is True, r
    status, r = run_main(nestcore_nested, {"root": str(root), "state": "undone"})
    assert status == "exit" and r["changed"] is True, r
    status, r = run_main(nestcore_nested, {"root": str(root), "state": "undone"})
    assert status == "exit" and r["changed"] is False, r
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "var/lib/nestcore" not in str(p)}
    assert after == on
