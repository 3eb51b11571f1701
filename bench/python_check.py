#!/usr/bin/env python3
"""nestcore.check() against py-cpuinfo, side by side in one process.

    python -m pip install py-cpuinfo ./nestcore-py   # or the wheel scripts/test-python builds
    python bench/python_check.py [--calls 2000] [--cpuinfo-calls 5]

Measures the median of `nestcore.check(probe=False)` over --calls calls (the live host, no test
VM), the same plus `to_dict()` (every field turned into Python data, as py-cpuinfo returns), and
the median of py-cpuinfo's `get_cpu_info()` over --cpuinfo-calls calls, and prints the ratio.
A check of an empty recorded root (no files, no ioctls) shows the floor of the call path.
Goals: nestcore's median at most 350 us, and at least 1000x faster than py-cpuinfo. The machine's
load average is printed too: on a shared machine it moves the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, List

GOAL_US = 350.0
GOAL_RATIO = 1000.0


def median_us(fn: Callable[[], object], calls: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    samples: List[int] = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1000.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--calls", type=int, default=2000, help="nestcore.check() calls (default 2000)")
    p.add_argument("--cpuinfo-calls", type=int, default=5, help="py-cpuinfo calls (default 5)")
    args = p.parse_args()

    import nestcore

    try:
        import cpuinfo  # py-cpuinfo
    except ImportError:
        print("py-cpuinfo is not installed: python -m pip install py-cpuinfo", file=sys.stderr)
        return 2

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"nestcore {nestcore.__version__}, py-cpuinfo {cpuinfo.CPUINFO_VERSION_STRING}, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    check = median_us(lambda: nestcore.check(probe=False), args.calls, warmup=50)
    check_dict = median_us(lambda: nestcore.check(probe=False).to_dict(), args.calls, warmup=50)
    with tempfile.TemporaryDirectory() as empty:
        # The floor of the call path: a recorded root with nothing in it (no ioctls).
        floor = median_us(lambda: nestcore.check(empty), args.calls, warmup=50)
    info = median_us(cpuinfo.get_cpu_info, args.cpuinfo_calls, warmup=1)

    ratio = info / check
    print(f"nestcore.check(probe=False)            median {check:10.1f} us  ({args.calls} calls)")
    print(f"nestcore.check(probe=False).to_dict()  median {check_dict:10.1f} us  ({args.calls} calls)")
    print(f"nestcore.check(<empty recorded root>)  median {floor:10.1f} us  ({args.calls} calls)")
    print(f"cpuinfo.get_cpu_info()                 median {info:10.1f} us  ({args.cpuinfo_calls} calls)")
    print(f"ratio py-cpuinfo / nestcore.check      {ratio:10.0f}x")
    print(f"goal: median <= {GOAL_US:.0f} us: {'met' if check <= GOAL_US else 'MISSED'}; "
          f">= {GOAL_RATIO:.0f}x faster than py-cpuinfo: {'met' if ratio >= GOAL_RATIO else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
