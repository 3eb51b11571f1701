"""Host side of 09-kernel-cmdline: for every boot, nestcore's parse of the L1's /proc/cmdline
(the `cmdline` example, reading it through nestcore::Host as `check` does) must predict what the
kernel did with that line:

- init's arguments (/proc/1/cmdline after the script's name): the kernel's bare parameters it
  does not know (init/main.c unknown_bootoption: no value, no `.` in the name), in order, then
  every token after the first bare `--` (set_init_arg, quotes removed, `name=value` rejoined) up
  to a second `--` (parse_args stops there again; the rest is dropped);
- init's environment (/proc/1/environ): HOME=/ and TERM=linux, then each unknown parameter with a
  value and no `.` in its name as `name=value`, replacing an entry of exactly the same name in
  place (no `-`/`_` folding there);
- kvm_amd: the value nestcore says kmod applies (`module_param`, after `--` too) is refused by the
  kernel (modprobe fails, no sysfs) exactly when nestcore warns kvm.cmdline_invalid, else sysfs
  shows it as kstrtoint reads it (absent: the default, 1); `check`'s value is the example's.

The names the kernel knows, in the generated lines and the lab's own prefix, are listed in
KERNEL_PARAMS (a prefix match, as obsolete_checksetup's parameqn); everything else is unknown
to it by construction (lab*, HOME, TERM, `--`, ``)."""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from kernel_rules import kstrtoint

OUT = Path(os.environ["LAB_OUT"])
EXAMPLE = Path(os.environ["REPO"]) / "target" / "release" / "examples" / "cmdline"
# Parameters the kernel itself consumes (core_param, __setup, early_param) that the lines use.
KERNEL_PARAMS = {"console", "panic", "quiet", "ro"}



def joined(p):
    return p["name"] if p["value"] is None else f"{p['name']}={p['value']}"


def predict(parse):
    argv, env = [], ["HOME=/", "TERM=linux"]
    for p in parse["params"]:
        if p["name"] in KERNEL_PARAMS or "." in p["name"]:
            continue
        if p["value"] is None:
            argv.append(p["name"])
        else:
            entry = joined(p)
            same = [i for i, e in enumerate(env) if e.split("=", 1)[0] == p["name"]]
            if same:
                env[same[0]] = entry
            else:
                env.append(entry)
    argv += [joined(p) for p in parse["init_params"] or []]
    return argv, env


def nul_list(data: bytes):
    return [x.decode(errors="replace") for x in data.split(b"\0")[:-1]] if data else []


res = json.load(open(OUT / "results.json"))
gen = subprocess.run([sys.executable, Path(__file__).with_name("09-kernel-cmdline.gen.py")],
                     stdout=subprocess.PIPE, check=True).stdout
sent = json.loads(gen)
boots = sorted(int(m.group(1)) for k in res for m in [re.fullmatch(r"b(\d+)\.modprobe_rc", k)] if m)
disagree, count = [], 0
for n in boots:
    b = f"b{n}"
    line = (OUT / f"{b}.proc_cmdline").read_bytes()
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "proc").mkdir()
        (Path(root) / "proc" / "cmdline").write_bytes(line)
        r = subprocess.run([EXAMPLE, root], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if r.returncode != 0:
        print(f"{EXAMPLE} failed: {r.stderr.decode(errors='replace')}", file=sys.stderr)
        sys.exit(1)
    parse = json.loads(r.stdout)
    (OUT / f"{b}.nestcore.json").write_bytes(r.stdout)
    argv, env = predict(parse)
    got_argv = nul_list((OUT / f"{b}.init_argv").read_bytes())
    # busybox sh runs the /init script: the kernel's argv is /init and what follows it.
    got_argv = got_argv[got_argv.index("/init") + 1:] if "/init" in got_argv else got_argv
    got_env = nul_list((OUT / f"{b}.init_environ").read_bytes())
    print(f"{b}.line={line.decode(errors='replace').rstrip()!r}")
    print(f"{b}.argv={json.dumps(got_argv)}")
    print(f"{b}.env={json.dumps(got_env)}")
    checks = {
        # The kernel shows the line as the boot loader (QEMU's -append, lab.py's prefix) gave it.
        "proc_cmdline": (f"console=ttyS0 panic=-1 {sent[n - 1]}\n".encode(), line),
        "argv": (argv, got_argv),
        "env": (env, got_env),
    }
    # kvm_amd: refused exactly where nestcore warns (kvm.cmdline_invalid); otherwise the value
    # nestcore says kmod applies last is what sysfs shows (as kstrtoint reads it; absent: 1).
    value = parse["kvm_amd.nested"]
    loaded = res[f"{b}.modprobe_rc"] == "0" and res[f"{b}.sysfs"] != "absent"
    got = res[f"{b}.sysfs"] if loaded else "refused"
    warned = "kvm.cmdline_invalid" in res.get(f"{b}.codes", "").split()
    checks["kvm_amd_loads"] = ("refused" if warned else "loaded", "refused" if not loaded else "loaded")
    if loaded:
        effective = "1" if value == "(absent)" else str(kstrtoint(value)) if value != "(bare)" else "(bare)"
        checks["kvm_amd_value"] = (effective, got)
    else:
        checks["kvm_amd_value"] = ("refused", got)
    checks["check_value"] = (value, res.get(f"{b}.nestcore"))
    print(f"{b}.nestcore_value={value}")
    print(f"{b}.kvm_amd={got}")
    for what, (want, got) in checks.items():
        count += 1
        if want != got:
            disagree.append(f"{b} {what}: nestcore predicts {want!r}, kernel {got!r}")
print(f"compare.count={count}")
print(f"compare.disagree={'; '.join(disagree)}")
