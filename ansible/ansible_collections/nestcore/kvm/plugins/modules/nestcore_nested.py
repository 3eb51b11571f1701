#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nestcore developers
# SPDX-License-Identifier: Apache-2.0 OR MIT

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nestcore_nested
short_description: Turn nested virtualization on or off on a KVM host
version_added: "0.1.0"
description:
  - Plans the change with C(nestcore.plan_nested()) (a modprobe.d drop-in, the kernel command
    line of every boot loader configuration found, a reload of the vendor module) and applies
    it, with backups and a rollback when a step fails.
  - Idempotent. A host already as wanted gets an empty plan and the module reports no change.
  - In check mode the module plans only; with C(--diff) it shows every file edit.
  - The module reads the host's report first, and fails naming the host and the reason when
    nesting cannot be had there (no VMX/SVM, virtualization disabled in the firmware), when
    the vendor module is in use or built into the kernel and O(persist) asks for a runtime
    reload, and when the plan is blocked (for instance a modprobe.d line that would win over
    nestcore's drop-in, see O(neutralise_conflicts)).
author:
  - nestcore developers (!UNKNOWN)
requirements:
  - the C(nestcore) Python package on the target (see the C(nestcore.kvm.nested) role)
options:
  state:
    description:
      - Whether nested virtualization should be on (V(enabled)) or off (V(disabled)).
    type: str
    choices: [enabled, disabled]
    default: enabled
  persist:
    description:
      - The layers to change.
      - V(modprobe) writes C(/etc/modprobe.d/nestcore-kvm.conf) (and regenerates the initramfs
        when the modules load from it); it takes effect when the module next loads.
      - V(cmdline) puts C(kvm-intel.nested=1) or C(kvm-amd.nested=1) on the kernel command line
        of every boot loader configuration found; it takes effect after a reboot.
      - V(runtime) reloads the vendor module now; no virtual machine may be running, and it is
        impossible when the module is built into the kernel.
    type: list
    elements: str
    choices: [modprobe, cmdline, runtime]
    default: [modprobe]
  root:
    description:
      - A recorded host to change instead of the live one, a folder laid out like C(/).
      - Commands (C(modprobe), C(update-grub), ...) are listed in RV(deferred), not run, for a
        recorded root.
    type: path
  cpuid:
    description:
      - A recorded CPUID dump for the report of a recorded O(root), read before planning
        (without it the CPU is judged from the root's C(/proc/cpuinfo)).
    type: path
  neutralise_conflicts:
    description:
      - Comment out (or override in C(/etc/modprobe.d)) the modprobe.d lines that set the
        opposite value and would win over nestcore's drop-in, instead of failing on them.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Plans only; RV(changed) says whether applying would change the host.
  diff_mode:
    support: full
    description: Before and after of every file written, or the planned unified diffs in check mode.
notes:
  - RV(reboot_required) is true while the running kernel's nested parameter differs from the
    wanted state (also on later runs, until the host reboots), so that a playbook reboots only
    the hosts that need it.
seealso:
  - module: nestcore.kvm.nestcore_facts
  - module: nestcore.kvm.nestcore_guest_cpu
"""

EXAMPLES = r"""
- name: Nested virtualization on, now and after reboots
  nestcore.kvm.nestcore_nested:
    state: enabled
    persist: [runtime, modprobe]

- name: On the kernel command line too, overriding distribution modprobe.d files
  nestcore.kvm.nestcore_nested:
    persist: [modprobe, cmdline]
    neutralise_conflicts: true
  register: nested

- name: Reboot the hosts that need it
  ansible.builtin.reboot:
  when: nested.reboot_required

- name: What would change (plan only)
  nestcore.kvm.nestcore_nested:
    persist: [cmdline]
  check_mode: true
  diff: true
"""

RETURN = r"""
changed:
  description: Whether the host was changed (in check mode, whether it would be).
  returned: always
  type: bool
reboot_required:
  description:
    - Whether a reboot (or a reload of the vendor module) is needed for the running kernel
      to have the wanted state. False when the running kernel already has it, even if what
      was persisted (say the kernel command line) takes effect at the next boot.
  returned: always
  type: bool
plan_reboot_required:
  description: Whether the plan's changes take full effect only after a reboot (the planner's view).
  returned: always
  type: bool
plan:
  description: The plan as C(nestcore enable) prints it, every action with its reason and diff.
  returned: always
  type: str
actions:
  description: The planned actions.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: The kind of action (a file write, a command, a module reload).
      type: str
    description:
      description: What the action does and why.
      type: str
    path:
      description: The file, for file actions.
      type: str
    diff:
      description: The unified diff, for file actions.
      type: str
timeline:
  description: When each change takes effect.
  returned: always
  type: list
  elements: dict
  sample: [{"when": "after_reboot", "what": "the kernel boots with kvm-intel.nested=1"}]
blockers:
  description: Why the plan cannot be applied (the module fails when there are any).
  returned: always
  type: list
  elements: str
warnings:
  description: The planner's warnings (which module, which boot loaders were found).
  returned: always
  type: list
  elements: str
written:
  description: The files written.
  returned: when applied
  type: list
  elements: str
backups:
  description: The backups made of the files written.
  returned: when applied
  type: list
  elements: str
commands:
  description: The commands run, each with its exit status.
  returned: when applied
  type: list
  elements: dict
deferred:
  description: The commands listed, not run (for a recorded root).
  returned: when applied
  type: list
  elements: str
verified:
  description: Whether nestcore verified the runtime value after a reload (null when not applicable).
  returned: when applied
  type: bool
nested_before:
  description: The vendor module's nested parameter before the run (C(enabled), C(disabled), C(unknown)).
  returned: always
  type: str
nested_after:
  description: The vendor module's nested parameter after the run.
  returned: always
  type: str
host:
  description: The machine's name, with the recorded root if one was used.
  returned: always
  type: str
reason:
  description: Why the module failed, as a short code.
  returned: failure
  type: str
  sample: module_busy
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nestcore.kvm.plugins.module_utils.nestcore_common import (
    HAS_NESTCORE,
    NESTCORE_IMPORT_ERROR,
    NestcoreModuleFailure,
    check_host,
    error_kind,
    error_message,
    host_label,
    nestcore,
    problems,
)

PERSIST_CHOICES = ["modprobe", "cmdline", "runtime"]

ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["enabled", "disabled"], default="enabled"),
    persist=dict(type="list", elements="str", choices=PERSIST_CHOICES, default=["modprobe"]),
    root=dict(type="path"),
    cpuid=dict(type="path"),
    neutralise_conflicts=dict(type="bool", default=False),
)

VENDOR_MODULES = ("kvm_intel", "kvm_amd")


def _fail(root, reason, why, **extra):
    extra["reason"] = reason
    extra["host"] = host_label(root)
    return NestcoreModuleFailure("nestcore on %s: %s" % (host_label(root), why), **extra)


def _vendor_module(report):
    for m in report.kvm.modules:
        if m.name in VENDOR_MODULES:
            return m
    return None


def preflight(report, params):
    """Fails, naming the host and the reason, when the report already shows that the wanted
    change cannot work here."""
    root = params.get("root")
    if params["state"] != "enabled":
        return
    cpu = report.cpu
    fails = "; ".join(p["message"] for p in problems(report, "fail"))
    if cpu.extension in ("none", "unknown"):
        what = "no hardware virtualization extension (VMX/SVM)" if cpu.extension == "none" else (
            "the CPU's virtualization extension is unknown (architecture %s)" % (getattr(cpu, "arch", None) or "unknown")
        )
        raise _fail(root, "no_extension", "cannot enable nested virtualization: %s%s" % (what, ": " + fails if fails else ""))
    if cpu.firmware == "disabled":
        raise _fail(
            root,
            "firmware_disabled",
            "cannot enable nested virtualization: %s is disabled in the firmware (BIOS/UEFI)%s"
            % (cpu.extension.upper(), ": " + fails if fails else ""),
        )
    if "runtime" in params["persist"]:
        m = _vendor_module(report)
        if m is not None and m.state == "builtin":
            raise _fail(
                root,
                "module_builtin",
                "cannot reload %s: it is built into the kernel; use persist: [cmdline] and reboot" % m.name,
            )
        if m is not None and m.state == "loaded" and ((m.refcnt or 0) > 0 or m.holders):
            raise _fail(
                root,
                "module_busy",
                "cannot reload %s: it is in use (refcnt %s%s): stop the virtual machines first, or use "
                "persist: [modprobe] or [cmdline] and reboot"
                % (m.name, m.refcnt, ", holders " + ", ".join(m.holders) if m.holders else ""),
            )


def _host_path(root, path):
    return os.path.join(root, path.lstrip("/")) if root else path


def _read(root, path):
    try:
        with open(_host_path(root, path), "r") as f:
            return f.read()
    except (IOError, OSError):
        return ""


def _wanted_nested(state):
    return "enabled" if state == "enabled" else "disabled"


def _needs_reboot(nested, wanted, plan_says, now=False):
    """Whether the running kernel still lacks the wanted state after this run: its nested
    parameter differs (unless a runtime reload is about to fix it now), or, when the module is
    not loaded (``unknown``), whether the plan's changes wait for a reboot. A host whose kernel
    already has the wanted state needs no reboot, whatever was persisted for the next one."""
    if nested == "unknown":
        return plan_says
    return nested != wanted and not now


def _action_dict(a):
    return {"kind": a.kind, "description": a.description, "path": a.path, "diff": a.diff}


def _command_str(cmd):
    if isinstance(cmd, (list, tuple)):
        return " ".join(str(c) for c in cmd)
    return str(cmd)


def run(params, nc, check_mode=False):
    """The module's result for ``params``; raises NestcoreModuleFailure."""
    root = params.get("root")
    persist = list(params.get("persist") or [])
    if not persist:
        raise _fail(root, "invalid", "persist names none of %s" % ", ".join(PERSIST_CHOICES))
    bad = [p for p in persist if p not in PERSIST_CHOICES]
    if bad:
        raise _fail(root, "invalid", "unknown persist %s (expected %s)" % (", ".join(bad), ", ".join(PERSIST_CHOICES)))
    state = params.get("state") or "enabled"
    params = dict(params, state=state, persist=persist)

    report = check_host(nc, root=root, cpuid=params.get("cpuid"), probe=False)
    preflight(report, params)
    before = report.kvm.nested

    want = "on" if state == "enabled" else "off"
    if not hasattr(nc, "plan_nested"):
        raise _fail(
            root,
            "nestcore_too_old",
            "the nestcore package on the target (%s) has no plan_nested(): install a newer wheel"
            % getattr(nc, "__version__", "unknown version"),
        )
    try:
        plan = nc.plan_nested(
            root=root, want=want, persist=tuple(persist), neutralise_conflicts=bool(params.get("neutralise_conflicts"))
        )
    except nc.NestcoreError as exc:
        m = _vendor_module(report)
        msg = error_message(exc)
        reason = "module_busy" if "in use" in msg else "module_builtin" if "built into" in msg else "error"
        raise _fail(root, reason, "planning failed: %s" % msg, kind=error_kind(exc), module=m.name if m else None)

    actions = [_action_dict(a) for a in plan.actions]
    result = dict(
        changed=False,
        host=host_label(root),
        plan=plan.text(),
        actions=actions,
        timeline=[{"when": w, "what": what} for (w, what) in plan.timeline],
        blockers=list(plan.blockers),
        warnings=list(plan.warnings),
        nested_before=before,
        nested_after=before,
        reboot_required=False,
        plan_reboot_required=bool(plan.reboot_required),
        diff=[],
    )
    if plan.blockers:
        raise _fail(
            root,
            "blocked",
            "the plan is blocked: %s" % "; ".join(plan.blockers),
            blockers=list(plan.blockers),
            plan=result["plan"],
        )
    wanted = _wanted_nested(state)
    if plan.is_empty:
        result["reboot_required"] = _needs_reboot(before, wanted, False)
        return result

    file_actions = [a for a in plan.actions if a.path and a.diff]
    if check_mode:
        result["changed"] = True
        result["reboot_required"] = _needs_reboot(before, wanted, bool(plan.reboot_required), now="runtime" in persist)
        result["diff"] = [{"before_header": a.path, "after_header": a.path, "prepared": a.diff} for a in file_actions]
        return result

    befores = dict((a.path, _read(root, a.path)) for a in file_actions)
    try:
        applied = plan.apply()
    except nc.NestcoreError as exc:
        rolled_back = list(getattr(exc, "rolled_back", None) or [])
        raise _fail(
            root,
            "apply_failed",
            "applying the plan failed: %s%s%s"
            % (
                error_message(exc),
                ": %s" % error_message(exc.__cause__) if exc.__cause__ is not None else "",
                " (rolled back: %s)" % ", ".join(rolled_back) if rolled_back else "",
            ),
            kind=error_kind(exc),
            rolled_back=rolled_back,
            plan=result["plan"],
        )
    after = check_host(nc, root=root, cpuid=params.get("cpuid"), probe=False).kvm.nested
    result.update(
        changed=bool(applied.changed),
        written=[str(w) for w in applied.written],
        backups=[str(b) for b in applied.backups],
        commands=[{"cmd": _command_str(c), "status": s} for (c, s) in applied.commands],
        deferred=[_command_str(c) for c in applied.deferred],
        verified=applied.verified,
        nested_after=after,
        reboot_required=_needs_reboot(after, wanted, bool(applied.changed and plan.reboot_required)),
        diff=[
            {"before_header": p, "after_header": p, "before": befores[p], "after": _read(root, p)}
            for p in befores
            if befores[p] != _read(root, p)
        ],
    )
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_NESTCORE:
        module.fail_json(msg=missing_required_lib("nestcore"), exception=NESTCORE_IMPORT_ERROR)
    try:
        result = run(module.params, nestcore, check_mode=module.check_mode)
    except NestcoreModuleFailure as exc:
        module.fail_json(msg=exc.msg, **exc.extra)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
