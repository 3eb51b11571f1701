#!/usr/bin/env python3
"""Side-by-side cost of answering "can this host run (nested) VMs?", in one run on one machine.

Times whole processes (median of many runs) of `nestcore check --json --no-probe` against lscpu,
systemd-detect-virt, virt-what, kvm-ok and `virt-host-validate qemu`; counts each one's system
calls (strace -f -c) and child processes (execve under strace -f); measures the scaling of
nestcore and `lscpu --sysroot` over generated roots with 2..4096 CPUs, and peak RSS. Quote the
ratios, not the absolute times: these machines are shared and noisy.

usage: bench/compare.py [--nestcore target/release/nestcore] [--runs N] [--install] [--no-python]

Then, in process from Python, `nestcore.check(probe=False)` against py-cpuinfo's `get_cpu_info()`
(bench/python_check.py) in a venv under target/venv-bench with py-cpuinfo from PyPI and the
nestcore wheel from target/wheels (built by scripts/test-python, or here with maturin).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
APT = {"lscpu": "util-linux", "systemd-detect-virt": "systemd", "virt-what": "virt-what",
       "kvm-ok": "cpu-checker", "virt-host-validate": "libvirt-clients", "strace": "strace",
       "time": "time"}


def install(tools):
    missing = sorted({APT[t] for t in tools if shutil.which(t) is None and t in APT})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"note: not installing {missing} (needs root and apt-get)")
        return
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, check=False,
                   stdout=subprocess.DEVNULL)


def median_time(cmd, runs):
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the caches
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def strace_counts(cmd):
    """(system calls, child processes) of one run, children included."""
    if shutil.which("strace") is None:
        return None, None
    with tempfile.TemporaryDirectory() as d:
        summary = os.path.join(d, "c")
        subprocess.run(["strace", "-f", "-c", "-o", summary, *cmd], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        total = None
        for line in open(summary):
            if line.strip().endswith("total"):
                total = int(line.split()[3])  # % time, seconds, usecs/call, calls, [errors,] total
        trace = os.path.join(d, "t")
        subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", trace, *cmd],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        execs = sum(1 for l in open(trace) if "execve(" in l and "= 0" in l)
        return total, max(execs - 1, 0)


def peak_rss_kib(cmd):
    if not os.path.exists("/usr/bin/time"):
        return None
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    m = re.findall(r"^(\d+)$", p.stderr, re.M)
    return int(m[-1]) if m else None


BLOCK = ("processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
         "model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\nstepping\t: 7\ncpu MHz\t\t: 2500.000\n"
         "physical id\t: {pkg}\ncore id\t\t: {core}\ncpu cores\t: 20\napicid\t\t: {n}\n"
         "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
         "sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc vmx smx est ssse3 fma cx16 pcid sse4_1 "
         "sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand lahf_lm abm avx2 avx512f\n"
         "vmx flags\t: vnmi preemption_timer posted_intr invvpid ept_x_only ept_ad flexpriority apicv "
         "tsc_offset vtpr mtf vapic ept vpid unrestricted_guest vapic_reg vid ple shadow_vmcs pml\n"
         "bogomips\t: 5000.00\n\n")


def make_root(root, cpus):
    def w(rel, text):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    w("proc/cpuinfo", "".join(BLOCK.format(n=n, pkg=n // 40, core=(n % 40) // 2) for n in range(cpus)))
    last = f"0-{cpus - 1}\n"
    for f in ("possible", "present", "online"):
        w(f"sys/devices/system/cpu/{f}", last)
    for n in range(cpus):
        base = f"sys/devices/system/cpu/cpu{n}"
        w(f"{base}/online", "1\n")
        w(f"{base}/topology/core_id", f"{(n % 40) // 2}\n")
        w(f"{base}/topology/physical_package_id", f"{n // 40}\n")
        w(f"{base}/topology/thread_siblings_list", f"{n - n % 2}-{n - n % 2 + 1}\n")
    w("proc/cmdline", "BOOT_IMAGE=/vmlinuz ro quiet\n")
    w("sys/module/kvm_intel/initstate", "live\n")
    w("sys/module/kvm_intel/refcnt", "0\n")
    os.makedirs(os.path.join(root, "sys/module/kvm_intel/holders"), exist_ok=True)
    w("sys/module/kvm_intel/parameters/nested", "Y\n")
    w("dev/kvm", "")


def table(rows, headers):
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nestcore", default=os.path.join(TOP, "target/release/nestcore"))
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--install", action="store_true", help="apt-get install the tools compared")
    ap.add_argument("--no-python", action="store_true", help="skip the in-process Python comparison")
    a = ap.parse_args()
    if not os.path.exists(a.nestcore):
        sys.exit(f"{a.nestcore} not found: cargo build --release -p nestcore --features cli")
    tools = [
        ("nestcore check --json --no-probe", [a.nestcore, "check", "--json", "--no-probe"], a.runs),
        ("lscpu", ["lscpu"], a.runs),
        ("systemd-detect-virt", ["systemd-detect-virt"], a.runs),
        ("virt-what", ["virt-what"], max(a.runs // 4, 5)),
        ("kvm-ok", ["kvm-ok"], max(a.runs // 2, 5)),
        ("virt-host-validate qemu", ["virt-host-validate", "qemu"], max(a.runs // 4, 5)),
    ]
    if a.install:
        install([c[0] for _, c, _ in tools] + ["strace", "time"])
    print(f"machine: {os.uname().nodename} {os.uname().release}, {os.cpu_count()} CPUs; runs per tool up to {a.runs}")
    rows, base = [], None
    for name, cmd, runs in tools:
        if shutil.which(cmd[0]) is None and not os.path.exists(cmd[0]):
            rows.append((name, "not installed", "", "", "", ""))
            continue
        t = median_time(cmd, runs)
        base = base or t
        sc, kids = strace_counts(cmd)
        rss = peak_rss_kib(cmd)
        rows.append((name, f"{t * 1e3:.2f} ms", f"{t / base:.1f}x", sc if sc is not None else "?",
                     kids if kids is not None else "?", f"{rss} KiB" if rss else "?"))
    print("\nWhole processes (median wall time; ratio to nestcore):\n")
    print(table(rows, ["command", "median", "vs nestcore", "syscalls", "child processes", "peak RSS"]))

    lscpu_ok = shutil.which("lscpu") is not None
    srows = []
    with tempfile.TemporaryDirectory(prefix="nestcore-scale-") as d:
        times = {}
        for cpus in (2, 64, 1024, 4096):
            root = os.path.join(d, f"r{cpus}")
            make_root(root, cpus)
            n = median_time([a.nestcore, "check", "--root", root, "--json"], a.runs)
            l = median_time(["lscpu", "--sysroot", root], max(a.runs // 4, 5)) if lscpu_ok else None
            times[cpus] = (n, l)
        for cpus, (n, l) in times.items():
            srows.append((cpus, f"{n * 1e3:.2f} ms", f"{n / times[2][0]:.2f}x",
                          f"{l * 1e3:.2f} ms" if l else "-", f"{l / times[2][1]:.2f}x" if l else "-"))
    print("\nScaling over recorded roots (whole process; ratio to the 2-CPU root):\n")
    print(table(srows, ["CPUs", "nestcore", "nestcore vs 2", "lscpu --sysroot", "lscpu vs 2"]))

    if not a.no_python:
        python_side()


def python_side():
    """nestcore.check() against py-cpuinfo in one Python process (bench/python_check.py)."""
    venv = os.path.join(TOP, "target", "venv-bench")
    py = os.path.join(venv, "bin", "python")
    wheels = os.path.join(TOP, "target", "wheels")
    print("\nIn process from Python (bench/python_check.py):\n")
    try:
        if not os.path.exists(py):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run(pip + ["py-cpuinfo"], check=True)
        found = sorted(f for f in os.listdir(wheels) if f.endswith(".whl")) if os.path.isdir(wheels) else []
        if not found:
            subprocess.run(pip + ["maturin"], check=True)
            subprocess.run([py, "-m", "maturin", "build", "--release", "-q", "-m",
                            os.path.join(TOP, "nestcore-py", "Cargo.toml"), "-o", wheels], check=True)
            found = sorted(f for f in os.listdir(wheels) if f.endswith(".whl"))
        subprocess.run(pip + ["--force-reinstall", "--no-deps", os.path.join(wheels, found[-1])], check=True)
    except (subprocess.CalledProcessError, OSError, IndexError) as e:
        print(f"skipped: cannot prepare the Python venv ({e})")
        return
    subprocess.run([py, os.path.join(HERE, "python_check.py")], check=False)


if __name__ == "__main__":
    main()
