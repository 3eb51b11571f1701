"""``python -m nestcore``: the ``nestcore`` command's ``check`` and ``snapshot``, with the same
output and exit status (0: KVM usable and nested virtualization available to guests, 1: not,
2: an error)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

import nestcore


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nestcore",
        description="Can this machine run VMs, can its guests run their own, and what must change",
    )
    p.add_argument("--version", action="version", version=f"nestcore {nestcore.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    c = sub.add_parser(
        "check",
        help="Check this host (or a recorded one) and explain the verdict",
        description="Check this host (or a recorded one) and explain the verdict. Exit status: 0 "
        "when KVM is usable and nested virtualization is available to guests, 1 when not, 2 on "
        "an error.",
    )
    c.add_argument("--root", metavar="ROOT", help="A recorded host: a folder laid out like /")
    c.add_argument(
        "--cpuid",
        metavar="CPUID",
        help="A recorded CPUID dump (cpuid -r output, libvirt <cpudata> XML or nestcore JSON)",
    )
    c.add_argument("--json", action="store_true", help="Print the JSON report instead of text")
    c.add_argument(
        "--no-probe",
        action="store_true",
        help="Skip the functional probe (creating a test VM). Recorded hosts are never probed.",
    )
    s = sub.add_parser(
        "snapshot",
        help="Record this host's relevant files and CPUID into DIR",
        description="Record this host's relevant files and CPUID into DIR for a bug report or a "
        "fixture.",
    )
    s.add_argument("dir", metavar="DIR", help="An empty or new folder")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            report = nestcore.check(args.root, args.cpuid, probe=not args.no_probe)
            if args.json:
                print(report.to_json())
            else:
                color = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None
                sys.stdout.write(report.text(color=color))
            return report.exit_code
        snap = nestcore.snapshot(args.dir)
        print(f"Recorded {len(snap.written)} files into {snap.dir}:")
        for f in snap.written:
            print(f"  {f}")
        if snap.cpuid is not None:
            print(f"Reproduce with: nestcore check --root {snap.dir} --cpuid {snap.cpuid}")
        else:
            print(f"Reproduce with: nestcore check --root {snap.dir}")
        return 0
    except nestcore.NestcoreError as e:
        print(f"nestcore: {e.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
