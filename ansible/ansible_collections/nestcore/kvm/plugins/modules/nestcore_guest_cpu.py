#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nestcore developers
# SPDX-License-Identifier: Apache-2.0 OR MIT

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nestcore_guest_cpu
short_description: Recommend the guest CPU definition that passes VMX/SVM to guests
version_added: "0.1.0"
description:
  - Checks the host with C(nestcore.check()) and returns C(nestcore.recommend()) for it, the
    guest CPU that lets guests run their own virtual machines, as a libvirt C(<cpu>) element,
    QEMU C(-cpu) arguments and nova.conf C([libvirt]) settings (for OpenStack compute hosts).
  - Reads only; it never changes the host. Apply the snippets with the modules of your choice
    (for instance M(community.general.ini_file) for nova.conf).
author:
  - nestcore developers (!UNKNOWN)
requirements:
  - the C(nestcore) Python package on the target (see the C(nestcore.kvm.nested) role)
options:
  root:
    description:
      - A recorded host to check instead of the live one, a folder laid out like C(/).
    type: path
  cpuid:
    description:
      - A recorded CPUID dump to use with O(root).
    type: path
  migratable:
    description:
      - Recommend a named CPU model that live-migrates across the fleet instead of
        C(host-passthrough).
    type: bool
    default: false
  model:
    description:
      - The named CPU model to use (for instance C(Cascadelake-Server)); implies a custom CPU
        mode.
    type: str
attributes:
  check_mode:
    support: full
    description: The module only reads the host.
  diff_mode:
    support: none
    description: Nothing changes.
seealso:
  - module: nestcore.kvm.nestcore_facts
"""

EXAMPLES = r"""
- name: The guest CPU for this compute host
  nestcore.kvm.nestcore_guest_cpu:
  register: guest_cpu

- name: Configure nova's guest CPU
  community.general.ini_file:
    path: /etc/nova/nova.conf
    section: libvirt
    option: "{{ item.key }}"
    value: "{{ item.value }}"
  loop: "{{ guest_cpu.nova.libvirt | dict2items }}"

- name: A model that live-migrates across the fleet
  nestcore.kvm.nestcore_guest_cpu:
    migratable: true
"""

RETURN = r"""
libvirt_xml:
  description: The libvirt C(<cpu>) element for the guests' domain XML.
  returned: success
  type: str
  sample: "<cpu mode='host-passthrough' check='none' migratable='on'/>"
qemu_cpu:
  description: The QEMU C(-cpu) argument.
  returned: success
  type: str
  sample: host,+vmx
nova_ini:
  description: The nova.conf settings as INI text.
  returned: success
  type: str
nova:
  description: The nova.conf settings as a dictionary of sections of options.
  returned: success
  type: dict
  sample: {"libvirt": {"cpu_mode": "host-passthrough"}}
rationale:
  description: Why this CPU definition.
  returned: success
  type: list
  elements: str
caveats:
  description: What to keep in mind (migration, models, missing features).
  returned: success
  type: list
  elements: str
host:
  description: The machine's name, with the recorded root if one was checked.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nestcore.kvm.plugins.module_utils.nestcore_common import (
    HAS_NESTCORE,
    NESTCORE_IMPORT_ERROR,
    NestcoreModuleFailure,
    check_host,
    fail_from_error,
    host_label,
    nestcore,
)

ARGUMENT_SPEC = dict(
    root=dict(type="path"),
    cpuid=dict(type="path"),
    migratable=dict(type="bool", default=False),
    model=dict(type="str"),
)


def parse_ini(text):
    """INI text as {section: {option: value}}; comments and blank lines dropped, order kept."""
    sections = {}
    current = None
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
            continue
        if "=" in line and current is not None:
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    return sections


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def run(params, nc):
    root = params.get("root")
    report = check_host(nc, root=root, cpuid=params.get("cpuid"), probe=False)
    try:
        rec = nc.recommend(report=report, migratable=bool(params.get("migratable")), model=params.get("model"))
    except nc.NestcoreError as exc:
        raise fail_from_error(nc, exc, root, "recommending a guest CPU")
    return dict(
        changed=False,
        host=host_label(root),
        libvirt_xml=rec.libvirt_xml,
        qemu_cpu=rec.qemu_cpu,
        nova_ini=rec.nova_ini,
        nova=parse_ini(rec.nova_ini),
        rationale=_as_list(rec.rationale),
        caveats=_as_list(rec.caveats),
    )


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
