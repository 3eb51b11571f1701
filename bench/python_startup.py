#!/usr/bin/env python3
"""Python start-up: `python -c "import nestcore; nestcore.check(probe=False)"` against
`python -c pass`, side by side in one run (the Ansible modules import nestcore on every task of
every host, so the import is part of every call).

    python bench/python_startup.py [--python target/venv-test/bin/python] [--runs 300]

Times the processes itself, the commands interleaved run by run (so that a change of the
machine's load hits every command alike), each run's wall time and CPU time (user + system, from
wait4: what the process itself cost, which the other engineers' builds on a shared machine move
much less than the wall time); with --hyperfine also hyperfine -N (apt-get install hyperfine),
which runs each command's runs back to back. Prints the medians, the ratios to `python -c pass`
and the goal: at most 1.3x. The python
must have the nestcore wheel installed (scripts/test-python's venv has it). Byte-compiled files
matter: pip writes them at install; with PYTHONDONTWRITEBYTECODE set and no .pyc, every run
compiles the package again, so this script compiles it once first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

GOAL = 1.3
HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)

COMMANDS = [
    ("python -c pass", ["-c", "pass"]),
    ("import typing (for scale)", ["-c", "import typing"]),
    ("import nestcore", ["-c", "import nestcore"]),
    ("import nestcore; nestcore.check(probe=False)", ["-c", "import nestcore; nestcore.check(probe=False)"]),
    ("python -m nestcore check --json --no-probe", ["-m", "nestcore", "check", "--json", "--no-probe"]),
]


def hyperfine(python: str, runs: int) -> list[float]:
    """Median seconds of each command, measured by hyperfine."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "h.json")
        cmds = [" ".join([python, *(f"'{a}'" if " " in a or ";" in a else a for a in args)]) for _, args in COMMANDS]
        subprocess.run(
            ["hyperfine", "-N", "--warmup", "20", "--runs", str(runs), "--ignore-failure", "--export-json", out,
             "--style", "none", *cmds],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with open(out) as f:
            return [r["median"] for r in json.load(f)["results"]]


def own_timer(python: str, runs: int) -> tuple[list[float], list[float]]:
    """Median wall and CPU seconds of each command, the commands interleaved."""
    wall: list[list[float]] = [[] for _ in COMMANDS]
    cpu: list[list[float]] = [[] for _ in COMMANDS]
    for i in range(runs + 20):
        for j, (_, args) in enumerate(COMMANDS):
            t = time.perf_counter()
            child = subprocess.Popen([python, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, _, usage = os.wait4(child.pid, 0)
            child.returncode = 0  # reaped by wait4
            elapsed = time.perf_counter() - t
            if i >= 20:  # warm-up runs
                wall[j].append(elapsed)
                cpu[j].append(usage.ru_utime + usage.ru_stime)
    return [statistics.median(s) for s in wall], [statistics.median(s) for s in cpu]


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    default = os.path.join(TOP, "target", "venv-test", "bin", "python")
    p.add_argument("--python", default=default if os.path.exists(default) else sys.executable)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--hyperfine", action="store_true", help="also measure with hyperfine -N")
    args = p.parse_args()

    probe = subprocess.run(
        [args.python, "-c", "import nestcore, os, sys; print(nestcore.__version__, sys.version.split()[0], "
         "os.path.dirname(nestcore.__file__))"],
        capture_output=True, text=True,
    )
    if probe.returncode != 0:
        print(f"{args.python} cannot import nestcore: {probe.stderr.strip()}", file=sys.stderr)
        return 2
    version, pyver, pkg = probe.stdout.split()
    subprocess.run([args.python, "-m", "compileall", "-q", pkg], check=True)

    wall, cpu = own_timer(args.python, args.runs)
    load = os.getloadavg()
    print(f"nestcore {version}, Python {pyver}, {os.cpu_count()} CPUs, load {load[0]:.2f}, "
          f"{args.runs} interleaved runs each")
    print(f"{'command':48s} {'wall median':>12s} {'ratio':>6s} {'CPU median':>11s} {'ratio':>6s}")
    for (name, _), w, c in zip(COMMANDS, wall, cpu):
        print(f"{name:48s} {w * 1000:9.2f} ms {w / wall[0]:5.2f}x {c * 1000:8.2f} ms {c / cpu[0]:5.2f}x")
    if args.hyperfine:
        if shutil.which("hyperfine") is None:
            print("hyperfine is not installed (apt-get install hyperfine)", file=sys.stderr)
            return 2
        medians = hyperfine(args.python, args.runs)
        print("hyperfine -N (each command's runs back to back):")
        for (name, _), m in zip(COMMANDS, medians):
            print(f"{name:48s} {m * 1000:9.2f} ms {m / medians[0]:5.2f}x")
    ratio = wall[3] / wall[0]
    print(f"goal: import nestcore + check(probe=False) <= {GOAL}x python -c pass (wall): "
          f"{ratio:.2f}x, {'met' if ratio <= GOAL else 'MISSED'} (CPU: {cpu[3] / cpu[0]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
