#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nestcore developers
# SPDX-License-Identifier: Apache-2.0 OR MIT

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nestcore_guests
short_description: Which guests of a KVM host will get VMX/SVM, and the fix for each
version_added: "0.1.0"
description:
  - Reads every guest defined on the host with C(nestcore.guests()) (libvirt domains, through
    C(virsh) on the live host where libvirt answers; the C([libvirt]) section of nova.conf for
    the instances of a nova compute node; Proxmox VE VM configs) and says for each whether it
    gets VMX/SVM at its next start given the host's own verdict, why (a stable code), and the
    fix (a libvirt domain edit plus C(virsh define), a nova.conf edit plus the nova-compute
    restart, C(qm set VMID --cpu host)).
  - The result is also set as the fact C(nestcore_guests).
  - With O(fix=true) the fixes without blockers are carried out, one plan per guest (atomic
    writes with backups; a guest whose step fails has its files restored), recorded as one
    transaction of the backup store (M(nestcore.kvm.nestcore_nested) O(state=undone) puts them
    all back). In check mode the
    module applies nothing and shows the diffs it would make.
  - A guest needs a full stop and start (not a reboot from inside) to see a new CPU; nova
    instances a hard reboot. The module does not restart guests.
author:
  - nestcore developers (!UNKNOWN)
requirements:
  - the C(nestcore) Python package on the target (see the C(nestcore.kvm.nested) role)
options:
  fix:
    description:
      - Carry the fixes out. Without it the module only reads.
    type: bool
    default: false
  root:
    description:
      - A recorded host to read (and fix) instead of the live one, a folder laid out like C(/).
      - Programs (C(virsh define), C(qm set), C(systemctl restart)) are listed in RV(deferred),
        not run, for a recorded root.
    type: path
  cpuid:
    description:
      - A recorded CPUID dump for a recorded O(root) (tells vmx from svm).
    type: path
  virsh:
    description:
      - Ask libvirt through C(virsh) for the definitions it holds. When not set, on the live
        host only.
    type: bool
  fail_on_missing:
    description:
      - Fail when a guest will not get the extension (or it cannot be told) after the run,
        naming the guests and their reasons.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Applies nothing; RV(changed) says whether O(fix=true) would change the host.
  diff_mode:
    support: full
    description: The unified diff of every file a fix writes (planned in check mode).
seealso:
  - module: nestcore.kvm.nestcore_nested
  - module: nestcore.kvm.nestcore_guest_cpu
"""

EXAMPLES = r"""
- name: Which guests of the compute nodes get VT-x/AMD-V
  nestcore.kvm.nestcore_guests:
  register: guests

- name: Report the ones that do not
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.reason.message }}"
  loop: "{{ guests.guests | rejectattr('gets_extension') | list }}"

- name: Give them the extension (their next full stop and start shows it)
  nestcore.kvm.nestcore_guests:
    fix: true
    fail_on_missing: true
"""

RETURN = r"""
changed:
  description: Whether a fix changed the host (in check mode, whether one would).
  returned: always
  type: bool
host:
  description: The machine's name, with the recorded root if one was used.
  returned: always
  type: str
guests:
  description:
    - Every guest found, as C(nestcore guests --json) gives it (source, name, path,
      gets_extension, reason with code and message, fix with actions, caveats).
  returned: always
  type: list
  elements: dict
summary:
  description: Counts (total, gets_extension, lacks_extension, unknown, fixable).
  returned: always
  type: dict
sources:
  description: How each source (libvirt, nova, proxmox) was read (files, virsh, none).
  returned: always
  type: list
  elements: dict
missing:
  description:
    - The guests that will not get the extension (or where it cannot be told), after the run,
      as strings of the source, the name, the reason and its code.
  returned: always
  type: list
  elements: str
applied:
  description: What each fix did (written files, backups, commands, deferred) or its error.
  returned: when fixes were applied
  type: list
  elements: dict
deferred:
  description: The commands listed, not run (for a recorded root).
  returned: always
  type: list
  elements: str
exit_code:
  description: What C(nestcore guests) exits with (0 every guest gets it, 1 not, 2 a fix failed).
  returned: always
  type: int
ansible_facts:
  description: The guests, as the fact C(nestcore_guests).
  returned: always
  type: dict
reason:
  description: Why the module failed, as a short code.
  returned: failure
  type: str
  sample: fix_failed
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nestcore.kvm.plugins.module_utils.nestcore_common import (
    HAS_NESTCORE,
    NESTCORE_IMPORT_ERROR,
    NestcoreModuleFailure,
    error_kind,
    error_message,
    host_label,
    nestcore,
)

ARGUMENT_SPEC = dict(
    fix=dict(type="bool", default=False),
    root=dict(type="path"),
    cpuid=dict(type="path"),
    virsh=dict(type="bool"),
    fail_on_missing=dict(type="bool", default=False),
)


def _fail(root, reason, why, **extra):
    extra["reason"] = reason
    extra["host"] = host_label(root)
    return NestcoreModuleFailure("nestcore on %s: %s" % (host_label(root), why), **extra)


def _fixable(g):
    fix = g.get("fix")
    return bool(fix and fix.get("actions") and not fix.get("blockers"))


def _missing(guests):
    return [
        "%s %s: %s [%s]" % (g["source"], g["name"], g["reason"]["message"], g["reason"]["code"])
        for g in guests
        if g.get("gets_extension") is not True
    ]


def run(params, nc, check_mode=False):
    """The module's result for ``params``; raises NestcoreModuleFailure."""
    root = params.get("root")
    if not hasattr(nc, "guests"):
        raise _fail(
            root,
            "nestcore_too_old",
            "the nestcore package on the target (%s) has no guests(): install a newer wheel"
            % getattr(nc, "__version__", "unknown version"),
        )
    apply_now = bool(params.get("fix")) and not check_mode
    try:
        r = nc.guests(root=root, cpuid=params.get("cpuid"), apply=apply_now, virsh=params.get("virsh"))
    except nc.NestcoreError as exc:
        raise _fail(root, "error", "reading the guests failed: %s" % error_message(exc), kind=error_kind(exc))
    d = r.to_dict()
    guests = d["guests"]
    planned = [g for g in guests if _fixable(g)]
    result = dict(
        changed=False,
        host=host_label(root),
        guests=guests,
        summary=d["summary"],
        sources=d["sources"],
        exit_code=d["exit_code"],
        deferred=[],
        diff=[],
    )
    if params.get("fix") and check_mode:
        result["changed"] = bool(planned)
        result["diff"] = [
            {"before_header": a["path"], "after_header": a["path"], "prepared": a["diff"]}
            for g in planned
            for a in g["fix"]["actions"]
            if a.get("path") and a.get("diff")
        ]
    applied = d.get("applied")
    now = guests
    if applied is not None:
        result["applied"] = applied
        failed = [a for a in applied if a.get("error")]
        done = [a for a in applied if a.get("report")]
        result["changed"] = any(a["report"]["changed"] for a in done)
        result["deferred"] = [c for a in done for c in a["report"]["deferred"]]
        result["diff"] = [
            {"before_header": a["path"], "after_header": a["path"], "prepared": a["diff"]}
            for g in planned
            for a in g["fix"]["actions"]
            if a.get("path") and a.get("diff")
        ]
        if d.get("after"):
            now = d["after"]["guests"]
            result["guests_after"] = now
            result["summary"] = d["after"]["summary"]
        if failed:
            raise _fail(
                root,
                "fix_failed",
                "the fix of %s failed: %s"
                % (", ".join("%s %s" % (a["source"], a["name"]) for a in failed), "; ".join(a["error"] for a in failed)),
                applied=applied,
            )
    result["missing"] = _missing(now)
    result["ansible_facts"] = {"nestcore_guests": dict(d, guests=now)}
    if params.get("fail_on_missing") and result["missing"] and not check_mode:
        raise _fail(
            root,
            "missing_extension",
            "%d guest(s) will not get VMX/SVM: %s" % (len(result["missing"]), "; ".join(result["missing"])),
            missing=result["missing"],
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
