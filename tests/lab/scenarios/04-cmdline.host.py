"""Host side of 04-cmdline: for every command line the guest tried (the real boots b1.. and the
generated gen.N), does nestcore's reading agree with what kvm_amd got? kvm_amd's `nested` is an
int: the kernel either refuses the value (modprobe fails, sysfs absent) or stores kstrtoint's
result, which sysfs shows as a decimal. nestcore agrees when it warns (kvm.cmdline_invalid)
exactly for the refused values, and otherwise its value reads as the number sysfs shows (no value
on the command line: the module's default, 1)."""

import json
import os

from kernel_rules import kstrtoint



res = json.load(open(os.path.join(os.environ["LAB_OUT"], "results.json")))
prefixes = sorted({k.rsplit(".", 1)[0] for k in res if k.endswith(".modprobe_rc")})
agree, disagree = 0, []
for p in prefixes:
    line = res.get(f"{p}.line") or res.get(f"{p}.cmdline", "")
    loaded = res[f"{p}.modprobe_rc"] == "0" and res[f"{p}.sysfs"] != "absent"
    warned = "kvm.cmdline_invalid" in res.get(f"{p}.codes", "").split()
    value = res[f"{p}.nestcore"]
    if not loaded:
        ok = warned
    elif warned:
        ok = False
    elif value == "(absent)":
        ok = res[f"{p}.sysfs"] == "1"
    else:
        ok = kstrtoint(value) == int(res[f"{p}.sysfs"])
    if ok:
        agree += 1
    else:
        disagree.append(f"{p} [{line}]: nestcore {value!r}{' warns' if warned else ''}, "
                        f"kernel {'loaded nested=' + res[f'{p}.sysfs'] if loaded else 'refused'}")
print(f"compare.count={len(prefixes)}")
print(f"compare.agree={agree}")
print(f"compare.disagree={'; '.join(disagree)}")
