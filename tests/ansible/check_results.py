#!/usr/bin/env python3
"""Checks the two runs of the fleet playbook: the recaps (every host present, nothing
unreachable or failed, changed=0 for every host in the second run) and every host's recorded
outcome against expected.json (status, failure reason, change, reboot). Prints the summary.

Usage: check_results.py WORK_DIR   (holds expected.json, run1.log, run2.log, summary1.json, summary2.json)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)"
)


def recap(log: Path) -> dict:
    text = log.read_text()
    if "PLAY RECAP" not in text:
        raise SystemExit("%s: no PLAY RECAP" % log)
    out = {}
    for line in text.split("PLAY RECAP", 1)[1].splitlines():
        m = RECAP.match(line.strip())
        if m:
            out[m.group("host")] = {k: int(v) for k, v in m.groupdict().items() if k != "host"}
    return out


# Module warnings the fleet must show, each with the host that causes it.
EXPECTED_WARNINGS = {
    "the running kvm_intel still has nested on: it stays on until kvm_intel loads again":
        "rhel8-kernelopts (state disabled through the command line only, the running module on:"
        " enable --off says what stays on, issue 13)",
}


def main() -> int:
    work = Path(sys.argv[1])
    expected = json.loads((work / "expected.json").read_text())
    errors = []
    recaps = [recap(work / "run1.log"), recap(work / "run2.log")]
    outcomes = [json.loads((work / "summary1.json").read_text()), json.loads((work / "summary2.json").read_text())]

    # No warning in the playbooks' output (not a module's, not a deprecation) but the ones a
    # host of the fleet is there to produce, and those must appear.
    seen = set()
    for run in (1, 2):
        for n, line in enumerate((work / ("run%d.log" % run)).read_text().splitlines(), 1):
            if "[WARNING]" in line or "[DEPRECATION WARNING]" in line:
                known = [w for w in EXPECTED_WARNINGS if w in line and "[DEPRECATION" not in line]
                if known:
                    seen.update(known)
                else:
                    errors.append("run %d, line %d: %s" % (run, n, line.strip()))
    for w, why in EXPECTED_WARNINGS.items():
        if w not in seen:
            errors.append("the warning of %s is missing: %r" % (why, w))
    for name in sorted(p.name for p in work.glob("*.log") if not p.name.startswith("run")):
        for n, line in enumerate((work / name).read_text().splitlines(), 1):
            if "[WARNING]" in line or "[DEPRECATION WARNING]" in line:
                errors.append("%s, line %d: %s" % (name, n, line.strip()))

    for run, (rc, oc) in enumerate(zip(recaps, outcomes), 1):
        missing = sorted(set(expected) - set(rc))
        if missing:
            errors.append("run %d: hosts missing from the recap: %s" % (run, ", ".join(missing)))
        for host, r in sorted(rc.items()):
            if r["unreachable"] or r["failed"]:
                errors.append("run %d: %s unreachable=%d failed=%d" % (run, host, r["unreachable"], r["failed"]))
            if run == 2 and r["changed"]:
                errors.append("run 2: %s changed=%d (the second run must change nothing)" % (host, r["changed"]))
        for host, want in sorted(expected.items()):
            got = oc.get(host, {})
            checks = {"status": want["status"], "reason": want.get("reason")}
            checks["changed"] = want["changed"] if run == 1 else False
            checks["rebooted"] = want["rebooted"] if run == 1 else False
            for key, value in checks.items():
                if got.get(key) != value:
                    errors.append(
                        "run %d: %s: %s is %r, expected %r (message: %s)" % (run, host, key, got.get(key), value, got.get("message"))
                    )

    # The summary.
    final = outcomes[0]
    can = sorted(h for h, o in final.items() if o.get("status") == "available")
    # Rebooted to get nesting: a host rebooted to turn it off is listed with those turned off.
    rebooted = sorted(h for h in can if final[h].get("rebooted"))
    pending = sorted(h for h, o in final.items() if o.get("status") == "reboot_pending")
    off = sorted(h for h, o in final.items() if o.get("status") == "disabled")
    off_rebooted = sorted(h for h in off if final[h].get("rebooted"))
    cannot = sorted((h, o.get("reason")) for h, o in final.items() if o.get("status") == "failed")
    print("== fleet summary (%d hosts)" % len(final))
    print("can host nested guests: %d (%s)" % (len(can), ", ".join(can)))
    print("  of them rebooted to get there (simulated): %d (%s)" % (len(rebooted), ", ".join(rebooted)))
    print("need a reboot (not allowed, or a recorded root): %d (%s)" % (len(pending), ", ".join(pending)))
    print("turned off as asked: %d (%s), rebooted: %d" % (len(off), ", ".join(off), len(off_rebooted)))
    # The playbook's own summary (site.yml) lists a host turned off only with those turned off.
    m = re.search(r'"\d+ of them rebooted to get there: ([^"]*)"', (work / "run1.log").read_text())
    if not m:
        errors.append("run 1: the fleet summary has no 'rebooted to get there' line")
    else:
        listed = [h for h in m.group(1).split(", ") if h]
        both = sorted(h for h in listed if final.get(h, {}).get("status") != "available")
        if both:
            errors.append("the fleet summary lists as rebooted to get nesting hosts that are not available: %s" % both)
    print("cannot: %d" % len(cannot))
    for h, reason in cannot:
        print("  %-28s %s" % (h, reason))
    for run, rc in enumerate(recaps, 1):
        changed = sum(1 for r in rc.values() if r["changed"])
        print("run %d recap: %d hosts, %d with changes, failed=%d, unreachable=%d, rescued=%d" % (
            run, len(rc), changed, sum(r["failed"] for r in rc.values()), sum(r["unreachable"] for r in rc.values()),
            sum(r["rescued"] for r in rc.values())))
    if errors:
        print("\n".join(["== FAILED"] + errors))
        return 1
    print("== ansible integration: OK (%d hosts, outcomes as expected, second run changed=0 everywhere)" % len(expected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
