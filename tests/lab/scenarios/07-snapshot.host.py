"""Host side of 07-snapshot: `nestcore check --root SNAP --cpuid SNAP/nestcore-cpuid.json` here
against the report the L1 itself printed. What only ioctls on /dev/kvm tell is left out of the
comparison: the device state (a recorded /dev/kvm is only a presence marker), the API version,
capabilities (also the vmm section's KVM_CHECK_EXTENSION answers, and so each VMM's `ready` and
`unknown`; what each VMM misses in modules and device nodes is compared), KVM_GET_SUPPORTED_CPUID
(nested_effective), the probe, and the findings and evidence built from them. With LAB_FIXTURE=DIR it also writes the snapshot as a fixture host."""

import json
import os
import shutil
import subprocess
import tarfile

out = os.environ["LAB_OUT"]
x = os.path.join(out, "snap")
shutil.rmtree(x, ignore_errors=True)
with tarfile.open(os.path.join(out, "snap.tgz")) as t:
    t.extractall(x)
snap = os.path.join(x, "snap")
live = json.load(open(os.path.join(x, "snap-l1-report.json")))
r = subprocess.run([os.environ["NESTCORE"], "check", "--root", snap, "--cpuid",
                    os.path.join(snap, "nestcore-cpuid.json"), "--json"], stdout=subprocess.PIPE, check=False)
recorded = json.loads(r.stdout)
print(f"recorded.rc={r.returncode}")

IOCTL_CODES = {"kvm.device_usable", "kvm.device_present", "kvm.probe_ok", "kvm.probe_failed",
               "kvm.no_nested_state", "nested.available", "kvm.nested_not_offered"}
IOCTL_SOURCES = ("ioctl", "probe", "/dev/kvm")


def strip(rep):
    rep = json.loads(json.dumps(rep))
    for k in ("host", "nestcore_version"):
        rep.pop(k, None)
    kvm = rep["kvm"]
    for k in ("device", "nested_effective", "probe"):
        kvm.pop(k, None)
    kvm["evidence"] = [e for e in kvm["evidence"] if not e["source"].startswith(IOCTL_SOURCES)]
    vmm = rep.get("vmm") or {}
    vmm.pop("kvm_capabilities", None)
    for m in vmm.get("vmms", []):
        m.pop("ready", None)
        m.pop("unknown", None)
    v = rep["verdict"]
    v.pop("kvm_usable", None)
    v.pop("nested_for_guests", None)
    v["findings"] = [f for f in v["findings"] if f["code"] not in IOCTL_CODES]
    for f in v["findings"]:
        f["evidence"] = [e for e in f["evidence"] if not e["source"].startswith(IOCTL_SOURCES)]
    return rep


def diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            yield from diff(a.get(k), b.get(k), f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (p, q) in enumerate(zip(a, b)):
            yield from diff(p, q, f"{path}[{i}]")
    elif a != b:
        yield f"{path}: L1 {json.dumps(a)[:120]} vs recorded {json.dumps(b)[:120]}"


d = list(diff(strip(live), strip(recorded)))
print(f"compare.diff={'; '.join(d)}")
print(f"compare.codes.l1={' '.join(f['code'] for f in live['verdict']['findings'])}")
print(f"compare.codes.recorded={' '.join(f['code'] for f in recorded['verdict']['findings'])}")
print(f"recorded.nested={recorded['kvm']['nested']}")
print(f"recorded.device={recorded['kvm']['device']['state']}")
print(f"recorded.cmdline={' '.join(p['name'] + '=' + str(p['value']) for p in recorded['cmdline']['relevant'])}")
print(f"snapshot.files={len([f for _, _, fs in os.walk(snap) for f in fs])}")

dest = os.environ.get("LAB_FIXTURE")
if dest:
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    shutil.copytree(snap, os.path.join(dest, "root"),
                    ignore=shutil.ignore_patterns("nestcore-cpuid.json", "nestcore-report.json"))
    shutil.copy(os.path.join(snap, "nestcore-cpuid.json"), os.path.join(dest, "cpuid.txt"))
    print(f"fixture.written={dest}")
