#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nestcore developers
# SPDX-License-Identifier: Apache-2.0 OR MIT

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nestcore_facts
short_description: Gather the nestcore report of a KVM host as facts
version_added: "0.1.0"
description:
  - Runs C(nestcore.check()) on the target and returns the whole report as the fact
    C(ansible_facts.nestcore), with a short C(summary) added for playbook conditions.
  - The report answers whether KVM is usable, whether guests can run their own virtual
    machines (nested virtualization), and gives every finding with its evidence and remedy.
  - Reads only; it never changes the host.
author:
  - nestcore developers (!UNKNOWN)
requirements:
  - the C(nestcore) Python package on the target (see the C(nestcore.kvm.nested) role)
options:
  root:
    description:
      - A recorded host to check instead of the live one, a folder laid out like C(/).
      - When omitted, the live host is checked.
    type: path
  cpuid:
    description:
      - A recorded CPUID dump (C(cpuid -r) output, libvirt C(<cpudata>) XML or nestcore JSON)
        to use with O(root).
    type: path
  probe:
    description:
      - Run the functional probe (a throw-away virtual machine) on the live host.
      - Ignored for a recorded O(root).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: The module only reads the host, so check mode behaves like a normal run.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  facts:
    support: full
    description: Sets C(ansible_facts.nestcore).
notes:
  - The module never reports a change.
seealso:
  - module: nestcore.kvm.nestcore_nested
  - module: nestcore.kvm.nestcore_guest_cpu
"""

EXAMPLES = r"""
- name: Gather the nestcore report
  nestcore.kvm.nestcore_facts:

- name: Fail when guests cannot run their own VMs
  ansible.builtin.assert:
    that: ansible_facts.nestcore.summary.nested_for_guests == 'available'
    fail_msg: "{{ inventory_hostname }}: {{ ansible_facts.nestcore.summary.reason }}"

- name: Check a recorded host (a snapshot taken with nestcore snapshot)
  nestcore.kvm.nestcore_facts:
    root: /srv/snapshots/compute-17/root
    cpuid: /srv/snapshots/compute-17/cpuid.txt
"""

RETURN = r"""
ansible_facts:
  description: The facts set by the module.
  returned: always
  type: dict
  contains:
    nestcore:
      description:
        - The report of C(nestcore check --json) (see the nestcore report schema), with a
          C(summary) key added.
      returned: always
      type: dict
      contains:
        verdict:
          description: The verdict, with C(kvm_usable), C(nested_for_guests) and C(findings).
          returned: always
          type: dict
        cpu:
          description: The CPU, with C(vendor_id) and C(extension) (C(vmx), C(svm), C(none), C(unknown)).
          returned: always
          type: dict
        kvm:
          description: KVM, with the vendor modules and C(nested) (C(enabled), C(disabled), C(unknown)).
          returned: always
          type: dict
        summary:
          description: The short answers.
          returned: always
          type: dict
          contains:
            host:
              description: The machine's name, with the recorded root if one was checked.
              type: str
              returned: always
            kvm_usable:
              description: Whether KVM can run virtual machines (null when unknown).
              type: bool
              returned: always
            nested_for_guests:
              description: C(available), C(disabled), C(unsupported) or C(unknown).
              type: str
              returned: always
              sample: available
            extension:
              description: The hardware extension, C(vmx), C(svm), C(none) or C(unknown).
              type: str
              returned: always
            nested:
              description: The vendor module's nested parameter, C(enabled), C(disabled) or C(unknown).
              type: str
              returned: always
            reason:
              description: The messages of the failing findings, or null.
              type: str
              returned: always
            problems:
              description: The codes of the findings at warn or fail.
              type: list
              elements: str
              returned: always
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nestcore.kvm.plugins.module_utils.nestcore_common import (
    HAS_NESTCORE,
    NESTCORE_IMPORT_ERROR,
    NestcoreModuleFailure,
    check_host,
    nestcore,
    summary,
)

ARGUMENT_SPEC = dict(
    root=dict(type="path"),
    cpuid=dict(type="path"),
    probe=dict(type="bool", default=False),
)


def run(params, nc):
    """The module's result for ``params``; raises NestcoreModuleFailure."""
    root = params.get("root")
    report = check_host(nc, root=root, cpuid=params.get("cpuid"), probe=bool(params.get("probe")))
    facts = report.to_dict()
    facts["summary"] = summary(report, root)
    return dict(changed=False, ansible_facts=dict(nestcore=facts))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_NESTCORE:
        module.fail_json(msg=missing_required_lib("nestcore"), exception=NESTCORE_IMPORT_ERROR)
    try:
        result = run(module.params, nestcore)
    except NestcoreModuleFailure as exc:
        module.fail_json(msg=exc.msg, **exc.extra)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
