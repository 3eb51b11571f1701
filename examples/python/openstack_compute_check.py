#!/usr/bin/env python3
"""Check an OpenStack compute node: can nova-compute run KVM guests here, and can those guests
run their own (nested virtualization)? Prints the verdict and every finding worth reading, with
its evidence and remedy.

    python3 openstack_compute_check.py                       # this host
    python3 openstack_compute_check.py --root DIR --cpuid F  # a recorded host (nestcore snapshot)

Exit status as `nestcore check`: 0 ready for KVM with nested guests, 1 not, 2 on an error.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import nestcore


def print_verdict(report: nestcore.Report) -> None:
    v = report.verdict
    usable = {
        True: "yes (nova [libvirt] virt_type=kvm works)",
        False: "no (nova [libvirt] virt_type=kvm will fail)",
        None: "unknown (a recorded host without the evidence)",
    }[v.kvm_usable]
    cpu = report.cpu
    print(f"Compute host:       {'this machine' if report.host.live else report.host.root}")
    print(f"CPU:                {cpu.brand or 'unknown'} ({cpu.extension})")
    print(f"Hypervisor below:   {report.virtualization.hypervisor}")
    print(f"KVM usable:         {usable}")
    print(f"Nested for guests:  {v.nested_for_guests}")
    print()
    problems = v.at_least("info")
    if not problems:
        print("No findings: every check passed.")
    for f in problems:
        print(f"[{f.level.upper()}] {f.code}: {f.message}")
        for e in f.evidence:
            print(f"    evidence: {e.source}: {e.detail}")
        if f.remedy:
            print(f"    remedy:   {f.remedy}")


def print_nova_cpu_config(args: argparse.Namespace) -> None:
    """Where the nova.conf [libvirt] CPU settings (cpu_mode, cpu_models, cpu_model_extra_flags)
    for nested guests are printed. They come from nestcore's guest CPU configuration API,
    `nestcore.guest_cpu`, which takes the same host arguments as `nestcore.check`."""
    guest_cpu = getattr(nestcore, "guest_cpu", None)
    print()
    if guest_cpu is None:
        print(
            f"nova.conf: nestcore {nestcore.__version__} has no guest CPU configuration API "
            "(nestcore.guest_cpu) yet, so no [libvirt] cpu_mode suggestion is made."
        )
        return
    config = guest_cpu(root=args.root, cpuid=args.cpuid)
    print(config.to_json() if hasattr(config, "to_json") else config)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--root", help="a recorded host (a folder laid out like /)")
    p.add_argument("--cpuid", help="a recorded CPUID dump")
    p.add_argument("--no-probe", action="store_true", help="do not start the throw-away test VM")
    args = p.parse_args(argv)
    try:
        report = nestcore.check(args.root, args.cpuid, probe=not args.no_probe)
    except nestcore.NestcoreError as e:
        print(f"openstack_compute_check: {e.message}", file=sys.stderr)
        return 2
    print_verdict(report)
    print_nova_cpu_config(args)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
