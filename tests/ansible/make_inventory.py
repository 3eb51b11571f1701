#!/usr/bin/env python3
"""Builds the fleet of the Ansible integration test in a temporary folder: every recorded host
of tests/fixtures/hosts (18) and tests/fixtures/enable (12) COPIED to <out>/hosts/<name>/ (the
repository is never written), plus variants, a YAML inventory (ansible_connection=local, one
nestcore_root per host) and the expected outcome of every host.

Usage: make_inventory.py OUT_DIR PYTHON WHEEL [KOLLA_PYTHON]
  PYTHON        the target interpreter (the role pip-installs nestcore into it)
  WHEEL         the nestcore wheel the role installs
  KOLLA_PYTHON  the interpreter of the `kolla` group (tests/ansible/kolla.yml): a fresh one
                without nestcore
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"

# name -> (fixture kind, fixture name, host variables, expected outcome).
# Expected: status (available / disabled / reboot_pending / failed), reason when failed,
# whether the first run changes the host, whether the host is rebooted (simulated).
AVAILABLE_NO_REBOOT = dict(status="available", changed=True, rebooted=False)
AVAILABLE_AFTER_REBOOT = dict(status="available", changed=True, rebooted=True)


def failed(reason):
    return dict(status="failed", reason=reason, changed=False, rebooted=False)


FLEET = {
    # tests/fixtures/hosts: detection hosts, persisted with the default (modprobe.d).
    # Reasons where nestcore's check says nesting cannot work: the plan's blocker (issue 13).
    "aarch64-no-cpuid": ("hosts", "aarch64-no-cpuid", {}, failed("unsupported_cpu")),
    "amd-busy-module": ("hosts", "amd-busy-module", {}, AVAILABLE_AFTER_REBOOT),
    # Its running kernel's command line says kvm-amd.nested=0 and no boot loader configuration is
    # recorded: kmod would apply it after the drop-in, and nestcore cannot change it (issue 13).
    "amd-nested-off": ("hosts", "amd-nested-off", {}, failed("blocked")),
    "amd-nested-on": ("hosts", "amd-nested-on", {}, AVAILABLE_NO_REBOOT),
    "docker-on-kvm-guest": ("hosts", "docker-on-kvm-guest", {}, AVAILABLE_NO_REBOOT),
    "hyperv-guest": ("hosts", "hyperv-guest", {}, failed("hidden_by_hypervisor")),
    # Built in: modprobe.d has no effect on it, and nested is already on: nothing to write.
    "intel-builtin-kvm-wsl2": ("hosts", "intel-builtin-kvm-wsl2", {}, dict(status="available", changed=False, rebooted=False)),
    "intel-firmware-disabled": ("hosts", "intel-firmware-disabled", {}, failed("firmware_disabled")),
    "intel-nested-off": ("hosts", "intel-nested-off", {}, AVAILABLE_AFTER_REBOOT),
    "intel-nested-on": ("hosts", "intel-nested-on", {}, AVAILABLE_NO_REBOOT),
    "kvm-guest-hyperv-enlightened": ("hosts", "kvm-guest-hyperv-enlightened", {}, failed("hidden_by_hypervisor")),
    "kvm-guest-nested-l1": ("hosts", "kvm-guest-nested-l1", {}, AVAILABLE_NO_REBOOT),
    "kvm-guest-no-vmx": ("hosts", "kvm-guest-no-vmx", {}, failed("hidden_by_hypervisor")),
    "no-extension": ("hosts", "no-extension", {}, failed("no_extension")),
    "pvm-guest": ("hosts", "pvm-guest", {}, failed("pvm_backend")),
    "vmware-guest": ("hosts", "vmware-guest", {}, AVAILABLE_NO_REBOOT),
    "xen-hvm-guest": ("hosts", "xen-hvm-guest", {}, failed("hidden_by_hypervisor")),
    "xen-pv-guest": ("hosts", "xen-pv-guest", {}, failed("hidden_by_hypervisor")),
    # tests/fixtures/enable: the persistence of each case (case.txt).
    "already-on": ("enable", "already-on", {"nestcore_persist": ["runtime", "modprobe"]},
                   dict(status="available", changed=False, rebooted=False)),
    "amd-host": ("enable", "amd-host", {"nestcore_persist": ["runtime", "modprobe"]}, AVAILABLE_AFTER_REBOOT),
    "busy-module": ("enable", "busy-module", {"nestcore_persist": ["runtime"]}, failed("module_busy")),
    "centos6-grub-legacy": ("enable", "centos6-grub-legacy",
                            {"nestcore_persist": ["runtime", "modprobe", "cmdline"]}, AVAILABLE_AFTER_REBOOT),
    "conflict-distro": ("enable", "conflict-distro", {}, failed("blocked")),
    "conflict-neutralise": ("enable", "conflict-neutralise", {"nestcore_neutralise_conflicts": True},
                            AVAILABLE_AFTER_REBOOT),
    "debian-grub2": ("enable", "debian-grub2", {"nestcore_persist": ["modprobe", "cmdline"]}, AVAILABLE_AFTER_REBOOT),
    "fedora-bls": ("enable", "fedora-bls", {"nestcore_persist": ["cmdline"]}, AVAILABLE_NO_REBOOT),
    "reload-no-effect": ("enable", "reload-no-effect", {"nestcore_persist": ["runtime", "modprobe"]},
                         AVAILABLE_AFTER_REBOOT),
    "rhel8-kernelopts": ("enable", "rhel8-kernelopts", {"nestcore_state": "disabled", "nestcore_persist": ["cmdline"]},
                         dict(status="disabled", changed=True, rebooted=True)),
    "systemd-boot": ("enable", "systemd-boot", {"nestcore_persist": ["cmdline"]}, AVAILABLE_AFTER_REBOOT),
    "wsl2-builtin": ("enable", "wsl2-builtin", {"nestcore_persist": ["runtime"]}, failed("module_builtin")),
    # Variants: the same machines under other settings.
    "intel-nested-off-noreboot": ("hosts", "intel-nested-off", {"nestcore_allow_reboot": False},
                                  dict(status="reboot_pending", changed=True, rebooted=False)),
    # Built in, but nested is already on: nothing to reload, nothing to do.
    "wsl2-builtin-runtime": ("hosts", "intel-builtin-kvm-wsl2", {"nestcore_persist": ["runtime"]},
                             dict(status="available", changed=False, rebooted=False)),
    # allow_reboot on a recorded root with the role's own reboot tasks: never rebooted, so it
    # ends reboot_pending like allow_reboot: false (issue 17).
    "intel-nested-off-recorded-reboot": ("hosts", "intel-nested-off",
                                         {"nestcore_allow_reboot": True, "nestcore_reboot_tasks": "reboot.yml"},
                                         dict(status="reboot_pending", changed=True, rebooted=False)),
}


# The hosts of the README's kolla example (tests/ansible/kolla.yml), copied apart from the fleet.
KOLLA = {
    "kolla-centos6": ("enable", "centos6-grub-legacy"),
    "kolla-debian": ("enable", "debian-grub2"),
}


def copy_host(src: Path, dst: Path) -> dict:
    """Copies a fixture host (root/, cpuid.txt) to dst; returns its host variables."""
    shutil.copytree(src / "root", dst / "root", symlinks=True)
    v = {"nestcore_root": str(dst / "root"), "nestcore_wheel_dest": str(dst / "wheel")}
    if (src / "cpuid.txt").exists():
        shutil.copy(src / "cpuid.txt", dst / "cpuid.txt")
        v["nestcore_cpuid"] = str(dst / "cpuid.txt")
    return v


def main() -> int:
    out, python, wheel = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    kolla_python = sys.argv[4] if len(sys.argv) > 4 else python
    hosts = {}
    expected = {}
    for name, (kind, fixture, hostvars, expect) in sorted(FLEET.items()):
        v = copy_host(FIXTURES / kind / fixture, out / "hosts" / name)
        v.update(hostvars)
        hosts[name] = v
        expected[name] = expect
    inventory = {
        "compute": {
            "hosts": hosts,
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": python,
                "nestcore_wheel": wheel,
                "nestcore_allow_reboot": True,
                "nestcore_fail_on_error": False,
                "nestcore_reboot_tasks": str(REPO / "tests" / "ansible" / "simulated-reboot.yml"),
            },
        },
        "local": {"hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}},
        "kolla": {
            "hosts": {},
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": kolla_python,
                "nestcore_wheel": wheel,
                "nestcore_fail_on_error": True,
                "nestcore_reboot_tasks": str(REPO / "tests" / "ansible" / "simulated-reboot.yml"),
            },
        },
    }
    for name, (kind, fixture) in sorted(KOLLA.items()):
        inventory["kolla"]["hosts"][name] = copy_host(FIXTURES / kind / fixture, out / "kolla" / name)
    # JSON is YAML: the YAML inventory plugin reads it, lists and booleans included.
    (out / "inventory.yml").write_text(json.dumps(inventory, indent=2, sort_keys=True))
    (out / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True))
    print("fleet: %d hosts in %s" % (len(expected), out / "inventory.yml"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
