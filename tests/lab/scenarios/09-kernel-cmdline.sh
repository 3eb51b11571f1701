# The kernel's own command-line parser (issue 14's differential test against the kernel): booted
# with generated hostile lines (09-kernel-cmdline.gen.py, fixed seed: quotes, `--` and a quoted
# `"--"`, a second `--`, `-` against `_`, repeated names, `=` first, tabs and vertical tabs,
# kvm_amd.nested in many spellings and values, before and after `--`), the kernel's reading is
# brought out: /proc/cmdline, init's arguments (/proc/1/cmdline) and environment
# (/proc/1/environ), and what kvm_amd gets when kmod's modprobe loads it (sysfs, or a refusal).
# The host check (09-kernel-cmdline.host.py) predicts each of them from nestcore's parse of the
# same /proc/cmdline and compares.
# kernels: 6.1 6.12
# image: lite
# generate: 09-kernel-cmdline.gen.py
# timeout: 180

b=b$LAB_BOOT
blob $b.proc_cmdline /proc/cmdline
blob $b.init_argv /proc/1/cmdline
blob $b.init_environ /proc/1/environ
modprobe kvm_amd > $OUT/modprobe 2>&1
result $b.modprobe_rc $?
result $b.sysfs "$(nested kvm_amd)"
result $b.kernel_said "$(dmesg | grep -o "kvm_amd: .* invalid for parameter .*" | tail -n 1)"
result $b.unknown "$(dmesg | grep -o 'Unknown kernel command line parameters.*' | tail -n 1)"
nestcore check --json --no-probe 2> /dev/null | jq -r --arg p "$b" '
    "\($p).nestcore=" + ([.cmdline.relevant[] | select(.name == "kvm_amd.nested")]
        | if length == 0 then "(absent)" else (.[0].value // "(bare)") end),
    "\($p).codes=" + ([.verdict.findings[].code] | join(" "))' > $RES
