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
    it, with a rollback when a step fails. What an apply changes is kept in the backup store
    (C(/var/lib/nestcore/backup) under the root); O(state=undone) puts the last apply back.
  - Idempotent. A host already as wanted gets an empty plan and the module reports no change.
  - In check mode the module plans only; with C(--diff) it shows every file edit.
  - Turning nesting off is off in every persistent layer that sets it on (modprobe.d, the kernel
    command line), whatever O(persist) says; the running module keeps nesting on until it loads
    again unless O(persist) has C(runtime) (the plan warns).
  - The module fails, naming the host and the plan's blocker (its reason and remedy), when the
    plan cannot work or cannot be applied as it is - nesting impossible on the host according to
    nestcore's check (no VMX/SVM, disabled in the firmware, the hypervisor below does not pass
    it on, a PVM guest; see O(force)), a modprobe.d line that would win over nestcore's drop-in
    (see O(neutralise_conflicts)), another layer that would override the one written - and when
    the vendor module is in use or built into the kernel and O(persist) asks for a runtime
    reload.
  - The planner's warnings are Ansible warnings; its notes (which module, which boot loaders
    were found) are returned as RV(notes).
author:
  - nestcore developers (!UNKNOWN)
requirements:
  - the C(nestcore) Python package on the target (see the C(nestcore.kvm.nested) role)
options:
  state:
    description:
      - Whether nested virtualization should be on (V(enabled)) or off (V(disabled)).
      - V(undone) puts back exactly what the last apply on the host changed, from the backup
        store (files restored byte for byte, created files removed, the module reloaded back);
        a later run with V(undone) finds that apply undone and changes nothing. O(persist),
        O(neutralise_conflicts) and O(force) do not apply to it.
    type: str
    choices: [enabled, disabled, undone]
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
  force:
    description:
      - Plan and apply nesting on even where nestcore's check says it cannot work on the host
        (no VMX/SVM, disabled in the firmware, not passed on by the hypervisor below, a PVM
        guest). Those blockers become warnings; nesting still cannot work there.
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
  elements: dict
  contains:
    code:
      description:
        - A stable code, nestcore's check finding (C(cpu.firmware_disabled),
          C(cpu.extension_missing), C(cpu.extension_hidden_by_hypervisor), C(kvm.pvm_backend))
          or the planner's (C(plan.modprobe_conflict), C(plan.no_boot_loader), ...).
      type: str
    reason:
      description: Why.
      type: str
    remedy:
      description: What to do about it.
      type: str
notes:
  description: How the planner decided (which module and why, which boot loaders were found).
  returned: always
  type: list
  elements: str
written:
  description: The files written.
  returned: when applied
  type: list
  elements: str
backups:
  description: The copies of the originals in the backup store (C(/var/lib/nestcore/backup)).
  returned: when applied
  type: list
  elements: str
removed:
  description: The files removed (an undo of files an apply created).
  returned: when applied
  type: list
  elements: str
transaction:
  description: The backup store's manifest of this apply (C(nestcore enable --undo) reads it).
  returned: when applied
  type: str
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
  description:
    - Why the module failed, as a short code - C(no_extension), C(firmware_disabled),
      C(hidden_by_hypervisor), C(pvm_backend), C(unsupported_cpu) (nestcore's check says nesting
      cannot work), C(blocked) (another blocker), C(module_busy), C(module_builtin),
      C(apply_failed), C(invalid), C(error).
  returned: failure
  type: str
  sample: module_busy
"""

import json
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
)

PERSIST_CHOICES = ["modprobe", "cmdline", "runtime"]

ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["enabled", "disabled", "undone"], default="enabled"),
    persist=dict(type="list", elements="str", choices=PERSIST_CHOICES, default=["modprobe"]),
    root=dict(type="path"),
    cpuid=dict(type="path"),
    neutralise_conflicts=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
)

VENDOR_MODULES = ("kvm_intel", "kvm_amd")

# The blocker codes of nestcore's check (nesting cannot work on this host) as the module's
# failure reasons; every other blocker is "blocked".
BLOCKER_REASONS = {
    "cpu.extension_missing": "no_extension",
    "cpu.firmware_disabled": "firmware_disabled",
    "cpu.extension_hidden_by_hypervisor": "hidden_by_hypervisor",
    "kvm.pvm_backend": "pvm_backend",
    "plan.no_vendor_module": "unsupported_cpu",
}


STORE = "/var/lib/nestcore/backup"


def _last_apply_undone(root):
    """Whether the newest transaction of the backup store under ``root`` (with a manifest) is
    marked undone (the store's format: numbered folders, ``manifest.json`` with ``state``)."""
    store = os.path.join(root or "/", STORE.lstrip("/"))
    try:
        ids = sorted((int(n), n) for n in os.listdir(store) if n.isdigit())
    except OSError:
        return False
    for _, name in reversed(ids):
        try:
            with open(os.path.join(store, name, "manifest.json")) as f:
                state = json.load(f).get("state")
        except (OSError, ValueError, AttributeError):
            continue
        return state == "undone"
    return False


def _fail(root, reason, why, **extra):
    extra["reason"] = reason
    extra["host"] = host_label(root)
    return NestcoreModuleFailure("nestcore on %s: %s" % (host_label(root), why), **extra)


def _vendor_module(report):
    for m in report.kvm.modules:
        if m.name in VENDOR_MODULES:
            return m
    return None


def _blocker_dict(b):
    return {"code": b.code, "reason": b.reason, "remedy": b.remedy}


def _blocker_text(b):
    return "%s (remedy: %s)" % (b.reason, b.remedy) if b.remedy else b.reason


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
    not loaded (``unknown``) or the wanted state is not one value (an undo, ``None``), whether
    the plan's changes wait for a reboot. A host whose kernel
    already has the wanted state needs no reboot, whatever was persisted for the next one."""
    if nested == "unknown" or wanted is None:
        return plan_says
    return nested != wanted and not now


def _action_dict(a):
    return {"kind": a.kind, "description": a.description, "path": a.path, "diff": a.diff}


def _command_str(cmd):
    if isinstance(cmd, (list, tuple)):
        return " ".join(str(c) for c in cmd)
    return str(cmd)


def run(params, nc, check_mode=False, warn=None):
    """The module's result for ``params``; raises NestcoreModuleFailure. ``warn`` receives the
    planner's warnings (``module.warn`` in ``main()``)."""
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
    before = report.kvm.nested

    want = {"enabled": "on", "disabled": "off"}.get(state, "undo")
    needed = "plan_undo" if want == "undo" else "plan_nested"
    if not hasattr(nc, needed):
        raise _fail(
            root,
            "nestcore_too_old",
            "the nestcore package on the target (%s) has no %s(): install a newer wheel"
            % (getattr(nc, "__version__", "unknown version"), needed),
        )
    try:
        if want == "undo":
            plan = nc.plan_undo(root=root)
        else:
            # nestcore's check (with the CPUID dump of a recorded root) decides whether nesting
            # can work here: its blockers come back in the plan.
            plan = nc.plan_nested(
                root=root,
                want=want,
                persist=tuple(persist),
                neutralise_conflicts=bool(params.get("neutralise_conflicts")),
                force=bool(params.get("force")),
                cpuid=params.get("cpuid"),
                dialect="ansible",
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
        blockers=[_blocker_dict(b) for b in plan.blockers],
        notes=list(plan.notes),
        nested_before=before,
        nested_after=before,
        reboot_required=False,
        plan_reboot_required=bool(plan.reboot_required),
        diff=[],
    )
    if want == "undo" and _last_apply_undone(root):
        # nestcore's undo walks back one apply a call (`nestcore enable --undo`); a state is
        # declarative: once the last apply is undone, state=undone holds and nothing more is.
        result.update(
            plan="Nothing to undo: the last apply is already undone.\n",
            actions=[],
            timeline=[],
            blockers=[],
            plan_reboot_required=False,
        )
        result["notes"] = ["the last apply recorded in %s is already undone" % STORE]
        return result
    if plan.blockers:
        first = plan.blockers[0]
        raise _fail(
            root,
            BLOCKER_REASONS.get(first.code, "blocked"),
            "cannot %s: %s"
            % (
                {"on": "turn nested virtualization on", "off": "turn nested virtualization off"}.get(
                    want, "undo the last apply"
                ),
                "; ".join(_blocker_text(b) for b in plan.blockers),
            ),
            blockers=result["blockers"],
            plan=result["plan"],
        )
    # Real warnings are Ansible warnings (module.warn); notes are data.
    for w in plan.warnings:
        if warn is not None:
            warn(w)
    # An undo wants whatever the host had before the apply: the planner's view decides.
    wanted = None if want == "undo" else _wanted_nested(state)
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
            # Files whose restore failed too; their originals stay in the backup store's
            # transaction `kept` (nestcore_nested state=undo puts them back).
            not_restored=list(getattr(exc, "not_restored", None) or []),
            kept=getattr(exc, "kept", None),
            plan=result["plan"],
        )
    after = check_host(nc, root=root, cpuid=params.get("cpuid"), probe=False).kvm.nested
    result.update(
        changed=bool(applied.changed),
        written=[str(w) for w in applied.written],
        removed=[str(r) for r in getattr(applied, "removed", ())],
        backups=[str(b) for b in applied.backups],
        transaction=getattr(applied, "transaction", None),
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
        result = run(module.params, nestcore, check_mode=module.check_mode, warn=module.warn)
    except NestcoreModuleFailure as exc:
        module.fail_json(msg=exc.msg, **exc.extra)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
