#!/usr/bin/env python3
"""nestcore's real-kernel lab: boots Debian's kernels under QEMU (TCG, an AMD EPYC with SVM, or
an Intel CPU), runs nestcore inside them with a real kmod, real boot loaders and real L2 KVM
guests, and asserts what comes back. docs/lab.md explains it; scripts/test-lab runs it.

Everything a scenario needs is built by images.py, in one place: the kernels (apt-get download from
Debian's registry, cached under target/lab/kernels), the L1 and L2 initramfs images (busybox,
kmod, jq, QEMU, the freshly built nestcore), the boot disks (extlinux, systemd-boot, GRUB on a
Debian root). A scenario is a shell script run by the L1's /init (tests/lab/scenarios/NAME.sh,
its settings in `# key: value` comment lines at the top) and the results it must produce
(NAME.expect). Results come back over a second serial port into a file, one `key=value` line
each; the scenario's script and boot number go in through QEMU's fw_cfg, so every scenario
shares the same images.

Usage: lab.py [--only NAME[,NAME]] [--kernels 6.1,6.12] [--list] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from images import HERE, KERNELS, LAB, NESTCORE, REPO, Kernel, LabError, kernel, l1_image, log, prepare  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Scenarios


@dataclass
class Expect:
    key: str
    op: str
    value: str
    line: int
    until: str | None = None  # "fails until <branch> lands": the branch that brings the behaviour
    only: str | None = None  # a kernel series this line applies to

    def check(self, results: dict) -> str | None:
        """None when met, else what was wrong."""
        have = results.get(self.key)
        if self.op == "exists":
            return None if have is not None else f"{self.key}: missing"
        if have is None:
            return f"{self.key}: missing (expected {self.op} {self.value!r})"
        ok = {
            "=": lambda: have == self.value,
            "!=": lambda: have != self.value,
            "~": lambda: re.search(self.value, have) is not None,
            "!~": lambda: re.search(self.value, have) is None,
            "has": lambda: self.value in have.split(),
            "lacks": lambda: self.value not in have.split(),
        }[self.op]()
        return None if ok else f"{self.key}: expected {self.op} {self.value!r}, got {have!r}"


OPS = ["!=", "!~", "=", "~", " has ", " lacks "]


def parse_expect(path: Path) -> list[Expect]:
    out = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        until = None
        m = re.search(r"\s+#\s*until\s+(\S+)\s*$", line)
        if m:
            until, line = m.group(1), line[: m.start()]
        only = None
        m = re.match(r"\[(\S+)\]\s+(.*)", line)
        if m:
            only, line = m.group(1), m.group(2)
        if re.fullmatch(r"\S+\s+exists", line):
            out.append(Expect(line.split()[0], "exists", "", n, until, only))
            continue
        m = re.match(r"(\S+)\s*(!=|!~|=|~|\shas\s|\slacks\s)\s*(.*)$", line)
        if not m:
            raise LabError(f"{path.name}:{n}: cannot read {raw!r} (KEY OP VALUE, OP one of = != ~ !~ has lacks exists)")
        out.append(Expect(m.group(1), m.group(2).strip(), m.group(3).strip(), n, until, only))
    return out


@dataclass
class Scenario:
    name: str
    script: Path
    expect: list[Expect]
    settings: dict[str, str]
    host_check: Path | None = None
    error: str | None = None  # the scenario could not be loaded (it fails with this reason)

    @property
    def kernels(self) -> list[str]:
        return self.settings.get("kernels", " ".join(KERNELS)).split()

    def boots(self) -> int:
        return int(self.settings.get("boots", "1"))

    def setting(self, key: str, boot: int, default: str = "") -> str:
        return self.settings.get(f"{key}.{boot}", self.settings.get(key, default))


def load_scenarios() -> list[Scenario]:
    out = []
    for script in sorted((HERE / "scenarios").glob("*.sh")):
        if script.name.endswith(".host.sh"):
            continue
        settings: dict[str, str] = {}
        for line in script.read_text().splitlines()[1:]:
            m = re.match(r"#\s*([a-z0-9_.]+):\s*(.*)$", line)
            if m:
                settings[m.group(1)] = m.group(2).strip()
            elif not line.startswith("#"):
                break
        exp = script.with_suffix(".expect")
        hosts = [h for h in (script.with_name(script.stem + ".host.sh"),
                             script.with_name(script.stem + ".host.py")) if h.exists()]
        error = None
        try:
            expect = parse_expect(exp) if exp.exists() else []
        except LabError as e:
            expect, error = [], str(e)
        if "generate" in settings and error is None:
            error = generate(script, settings)
        out.append(Scenario(script.stem, script, expect, settings, hosts[0] if hosts else None, error))
    return out


def generate(script: Path, settings: dict[str, str]) -> str | None:
    """`# generate: FILE`: FILE (beside the script) prints a JSON list of command lines, one per
    boot; they become `append.N` and `boots`. Returns why it failed, or None."""
    gen = script.with_name(settings["generate"])
    try:
        r = subprocess.run(["python3", gen], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            return f"{gen.name}: exit {r.returncode}: {r.stderr.decode(errors='replace')[-800:]}"
        lines = json.loads(r.stdout)
        if not lines or not all(isinstance(x, str) for x in lines):
            return f"{gen.name}: expected a non-empty JSON list of strings"
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        return f"{gen.name}: {type(e).__name__}: {e}"
    for n, line in enumerate(lines, 1):
        settings[f"append.{n}"] = line
    settings["boots"] = str(len(lines))
    return None


# ---------------------------------------------------------------------------------------------
# Running QEMU


def qemu_accel_args(cpu: str) -> list[str]:
    return ["-accel", "tcg", "-cpu", cpu]


@dataclass
class BootResult:
    results: dict = field(default_factory=dict)
    blobs: dict = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


BOOT_TIMEOUT = re.compile(r"boot \d+: timed out after \d+ s")


def boot_timed_out(n: int, timeout) -> str:
    """The problem of boot `n` that did not end within `timeout` seconds (see timed_out_only)."""
    return f"boot {n}: timed out after {timeout} s"


def read_results(path: Path) -> tuple[dict, dict]:
    results: dict[str, str] = {}
    blobs: dict[str, list[str]] = {}
    if not path.exists():
        return results, {}
    for raw in path.read_bytes().decode(errors="replace").splitlines():
        line = raw.rstrip("\r")
        if "=" not in line:
            continue
        k, v = line.split("=", 1)
        if k.startswith("blob.") and not k.endswith(".done"):
            blobs.setdefault(k[5:], []).append(v)
        else:
            results[k] = v.strip()
    return results, {k: base64.b64decode("".join(v)) for k, v in blobs.items()}


def boot(sc: Scenario, k: Kernel, n: int, outdir: Path, disk: dict | None) -> BootResult:
    """Boots one L1 for boot number `n` of scenario `sc` and collects its results."""
    res = outdir / f"results.{n}.txt"
    con = outdir / f"console.{n}.log"
    for f in (res, con):
        f.unlink(missing_ok=True)
    name_file = outdir / "name"
    name_file.write_text(sc.name)
    cmd = ["qemu-system-x86_64", *qemu_accel_args(sc.setting("cpu", n, "EPYC,+svm,+npt")),
           "-m", sc.setting("memory", n, "1536"), "-smp", "1", "-nodefaults", "-display", "none",
           "-no-reboot", "-monitor", "none",
           "-chardev", f"file,id=c0,path={con}", "-serial", "chardev:c0",
           "-chardev", f"file,id=c1,path={res}", "-serial", "chardev:c1",
           "-fw_cfg", f"name=opt/nestcore/scenario,file={sc.script}",
           "-fw_cfg", f"name=opt/nestcore/boot,string={n}",
           "-fw_cfg", f"name=opt/nestcore/name,file={name_file}",
           "-fw_cfg", f"name=opt/nestcore/series,string={k.series}"]
    append = f"console=ttyS0 panic=-1 {sc.setting('append', n)}".strip()
    if disk is None or disk.get("direct", {}).get(n):
        initrd = disk["direct"][n]["initrd"] if disk else l1_image(k, sc.setting("image", n, "l1") == "l1")
        extra = disk["direct"][n].get("append", "") if disk else ""
        cmd += ["-kernel", k.vmlinuz, "-initrd", initrd, "-append", f"{append} {extra}".strip()]
    if disk is not None:
        cmd += disk["qemu"]
    timeout = int(sc.setting("timeout", n, "300"))
    t = time.monotonic()
    with open(outdir / f"qemu.{n}.log", "wb") as qlog:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=qlog, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            if proc.poll() is None:  # timed out, or the harness itself was interrupted
                proc.kill()
                proc.wait()
    br = BootResult(seconds=time.monotonic() - t)
    br.results, br.blobs = read_results(res)
    if rc is None:
        br.error = boot_timed_out(n, timeout)
    elif rc != 0:
        br.error = f"boot {n}: qemu exited {rc}: {(outdir / f'qemu.{n}.log').read_text(errors='replace')[-800:]}"
    elif br.results.get("lab.end") != "ok":
        br.error = f"boot {n}: the guest did not finish its script"
    if br.error and con.exists():
        tail = con.read_text(errors="replace").splitlines()[-15:]
        br.error += "\n      console: " + "\n      console: ".join(tail)
    return br


# ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    scenario: str
    kernel: str
    ok: bool
    seconds: float
    problems: list[str]
    pending: list[str]  # problems on lines marked `# until BRANCH`
    build: float = 0.0  # seconds spent building images first (not in `seconds`)
    retried: float = 0.0  # seconds of the runs that timed out and were run again (0: none)
    timeouts: int = 0  # how many runs timed out before this one


def run_scenario(sc: Scenario, k: Kernel, keep: bool) -> Outcome:
    outdir = LAB / "out" / f"{sc.name}-{k.series}"
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    t = time.monotonic()
    problems: list[str] = []
    results: dict[str, str] = {}
    build = 0.0
    try:
        if sc.error:
            raise LabError(sc.error)
        t0 = time.monotonic()
        disk = prepare(sc.setting("boot", 1, "initramfs"), sc, k, outdir)
        build = time.monotonic() - t0
        for n in range(1, sc.boots() + 1):
            br = boot(sc, k, n, outdir, disk)
            results.update({f"boot{n}.{key}" if key.startswith("lab.") else key: v
                            for key, v in br.results.items()})
            results[f"boot{n}.seconds"] = f"{br.seconds:.1f}"
            for name, data in br.blobs.items():
                (outdir / name).write_bytes(data)
            if br.error:
                problems.append(br.error)
                break
        if sc.host_check and not problems:
            (outdir / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
            env = dict(os.environ, LAB_OUT=str(outdir), NESTCORE=str(NESTCORE), REPO=str(REPO),
                       LAB_KERNEL=k.kver, LAB_SERIES=k.series)
            runner = "python3" if sc.host_check.suffix == ".py" else "bash"
            try:
                r = subprocess.run([runner, sc.host_check], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=120)
            except subprocess.TimeoutExpired as e:
                (outdir / "host.log").write_bytes(e.stderr or b"")
                raise LabError(f"host check {sc.host_check.name} timed out after {e.timeout:.0f} s") from e
            (outdir / "host.log").write_bytes(r.stderr)
            for line in r.stdout.decode(errors="replace").splitlines():
                if "=" in line:
                    key, v = line.split("=", 1)
                    results[key] = v.strip()
            if r.returncode != 0:
                problems.append(f"host check exited {r.returncode}: {r.stderr.decode(errors='replace')[-800:]}")
    except LabError as e:
        problems.append(str(e))
    except Exception as e:  # noqa: BLE001 - any other failure fails this scenario, not the run
        problems.append(f"harness error: {type(e).__name__}: {e}")
    try:
        (outdir / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    except OSError as e:  # a full disk: the run goes on to its summary line
        problems.append(f"cannot save results.json: {e}")
    for key, v in sorted(results.items()):
        if key.endswith(".attempts") and v not in ("", "1"):
            log(f"lab: note: {sc.name} on {k.kver}: {key[:-len('.attempts')]} took {v} boots (the first lost its results)")
    pending = []
    if not problems:
        for e in sc.expect:
            if e.only and e.only != k.series:
                continue
            p = e.check(results)
            if p and e.until:
                pending.append(f"{p}   [fails until {e.until} lands]")
            elif p:
                problems.append(p)
            elif e.until:
                log(f"lab: note: {sc.name}.expect:{e.line} ({e.key}) passes now: remove its `# until {e.until}`")
    if not keep:
        for f in outdir.glob("*.img"):
            f.unlink()
    return Outcome(sc.name, k.kver, not problems and not pending, time.monotonic() - t - build, problems, pending,
                   build)




def run_guarded(sc: Scenario, k: Kernel, keep: bool) -> Outcome:
    """run_scenario, where even what fails outside its own guard (its output folder on a full
    disk) fails this scenario with the reason instead of ending the run without its summary."""
    t = time.monotonic()
    try:
        return run_scenario(sc, k, keep)
    except Exception as e:  # noqa: BLE001
        return Outcome(sc.name, k.kver, False, time.monotonic() - t, [f"harness error: {type(e).__name__}: {e}"], [])


TIMEOUT_RUNS = 3  # a scenario whose boots only ever time out is run at most this often


def timed_out_only(o: Outcome) -> bool:
    """Whether every problem is a guest's boot that timed out (a host check that times out is
    the host's own verdict, never retried)."""
    return not o.ok and bool(o.problems) and all(BOOT_TIMEOUT.fullmatch(p) for p in o.problems)


def run_retrying(sc: Scenario, k: Kernel, keep: bool) -> Outcome:
    """run_guarded, again from scratch while the only problem is a boot that timed out, up to
    TIMEOUT_RUNS runs. A guest that hangs under TCG (nested SVM: 02's L1 while its L2 booted,
    seen twice in about eight whole runs) is not a verdict on nestcore; any other failure fails
    at once. The timed-out run's folder is kept as NAME-SERIES.timeoutN for its console."""
    spent, n = 0.0, 0
    while True:
        o = run_guarded(sc, k, keep)
        if not timed_out_only(o) or n + 1 >= TIMEOUT_RUNS:
            o.retried, o.timeouts = spent, n
            return o
        n += 1
        spent += o.seconds
        log(f"RETRY {o.scenario:27} {o.kernel:24} {o.seconds:6.1f} s: a boot timed out; run {n + 1} of at most {TIMEOUT_RUNS}")
        out = LAB / "out" / f"{sc.name}-{k.series}"
        kept = out.with_name(f"{out.name}.timeout{n}")
        try:
            shutil.rmtree(kept, ignore_errors=True)
            out.rename(kept)
        except OSError:
            pass


def print_table() -> int:
    """The last run as a Markdown table: one row per scenario, one column per kernel."""
    runs = json.loads((LAB / "summary.json").read_text())
    kernels = sorted({r["kernel"] for r in runs}, key=lambda k: [int(x) for x in re.findall(r"\d+", k)])
    print("| scenario | " + " | ".join(kernels) + " |")
    print("|---|" + "---|" * len(kernels))
    for name in sorted({r["scenario"] for r in runs}):
        cells = []
        for k in kernels:
            r = next((r for r in runs if r["scenario"] == name and r["kernel"] == k), None)
            if r is None:
                cells.append("-")
                continue
            if r["ok"]:
                cells.append(f"pass, {r['seconds']:.0f} s")
            elif not r["problems"]:
                branches = sorted({m.group(1) for p in r["pending"]
                                   for m in [re.search(r"fails until (\S+) lands", p)] if m})
                cells.append(f"fail until {', '.join(branches)} lands ({len(r['pending'])}), {r['seconds']:.0f} s")
            else:
                cells.append(f"**fail** ({len(r['problems'])}), {r['seconds']:.0f} s")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated scenario names (or prefixes)")
    ap.add_argument("--kernels", help="comma-separated kernel series (default: every series)")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--keep", action="store_true", help="keep disk images in target/lab/out")
    ap.add_argument("--table", action="store_true",
                    help="print the last run (target/lab/summary.json) as docs/lab.md's table and exit")
    args = ap.parse_args()
    if args.table:
        return print_table()

    scenarios = load_scenarios()
    if args.only:
        want = args.only.split(",")
        scenarios = [s for s in scenarios if any(s.name == w or s.name.startswith(w) for w in want)]
    if args.list:
        for s in scenarios:
            log(f"{s.name:28} kernels {' '.join(s.kernels):10} boots {s.boots()}  {s.setting('boot', 1, 'initramfs')}")
        return 0
    if not NESTCORE.exists():
        log(f"lab: {NESTCORE} is missing: build it first (cargo build --release -p nestcore --features cli)")
        return 2
    series = args.kernels.split(",") if args.kernels else list(KERNELS)
    started = time.monotonic()
    kernels: dict[str, Kernel | str] = {}
    for s in series:
        if s not in KERNELS:
            kernels[s] = f"unknown kernel series (known: {', '.join(KERNELS)})"
            continue
        try:
            kernels[s] = kernel(s)
            log(f"lab: kernel {s}: {kernels[s].package} ({(kernels[s].tree / '.version').read_text().strip()})")
        except Exception as e:  # noqa: BLE001 - every scenario on this kernel fails with the reason
            kernels[s] = str(e) if isinstance(e, LabError) else f"{type(e).__name__}: {e}"
    outcomes: list[Outcome] = []
    try:
        for sc in scenarios:
            for s in sc.kernels:
                if s not in series:
                    continue
                k = kernels[s]
                if isinstance(k, str):
                    o = Outcome(sc.name, s, False, 0.0, [f"kernel {s}: {k}"], [])
                else:
                    o = run_retrying(sc, k, args.keep)
                outcomes.append(o)
                label = "PASS" if o.ok else "FAIL"
                built = f" (+{o.build:.0f} s building images)" if o.build >= 1 else ""
                again = (f" (retried after {o.timeouts} timeout{'s' if o.timeouts > 1 else ''}, "
                         f"{o.retried:.0f} s)") if o.timeouts else ""
                log(f"{label} {o.scenario:28} {o.kernel:24} {o.seconds:6.1f} s{built}{again}")
                for p in o.problems + o.pending:
                    log(f"     {p}")
    except KeyboardInterrupt:
        outcomes.append(Outcome("(interrupted)", "-", False, 0.0, ["interrupted"], []))
        log("FAIL (interrupted)")
    summary = LAB / "summary.json"
    try:
        summary.write_text(json.dumps([o.__dict__ for o in outcomes], indent=1) + "\n")
    except OSError as e:
        log(f"lab: cannot write {summary}: {e}")
    passed = sum(o.ok for o in outcomes)
    failed = len(outcomes) - passed
    pending = sum(1 for o in outcomes if not o.ok and not o.problems)
    note = f" ({pending} only on assertions waiting for another branch)" if pending else ""
    retried = sum(1 for o in outcomes if o.timeouts)
    note += f" ({retried} retried after a timeout)" if retried else ""
    log(f"lab: {passed} passed, {failed} failed{note} in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
