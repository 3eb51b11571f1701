# The kernel command line: booted with kvm-amd.nested=0, kvm_amd.nested=1, kvm-amd.nested=Y and
# one line with a duplicate in the other spelling, a quoted token, a parameter inside another's
# quoted value and `--`, nestcore's reading of /proc/cmdline and of the module parameter must
# agree with what kmod and the kernel applied (sysfs after `modprobe kvm_amd`).
# Boot 1 (of the 6.1 kernel) also runs generated command lines through kmod, one case each (bind-mounted over /proc/cmdline, which
# is all kmod reads: for a loadable module the kernel leaves `kvm_amd.*` to modprobe); the host
# check (04-cmdline.host.py) compares them one by one.
# kernels: 6.1 6.12
# image: lite
# cpu: EPYC,+svm,+npt
# boots: 4
# append.1: kvm-amd.nested=0
# append.2: kvm_amd.nested=1
# append.3: kvm-amd.nested=Y
# append.4: kvm_amd.nested=1 "kvm-amd.nested=0" foo="bar kvm_amd.nested=1" -- kvm_amd.nested=1
# timeout: 240

# observe P [full]: load kvm_amd as kmod does from the command line now in /proc/cmdline; report
# what the module got (sysfs) and what nestcore reads (one jq call: jq is slow under TCG).
observe() {
    modprobe -r kvm_amd 2> /dev/null
    modprobe kvm_amd > $OUT/$1.modprobe 2>&1
    result "$1.modprobe_rc" $?
    result "$1.sysfs" "$(nested kvm_amd)"
    if [ -n "${2:-}" ]; then
        result "$1.kmod_options" "$(modprobe --showconfig | grep '^options kvm_amd ' | cut -d' ' -f3-)"
        result "$1.kernel_said" "$(dmesg | grep 'kvm_amd: .* invalid for parameter' | tail -n 1 | cut -d']' -f2-)"
    fi
    nestcore check --json --no-probe 2> /dev/null | jq -r --arg p "$1" '
        "\($p).nestcore=" + ([.cmdline.relevant[] | select(.name == "kvm_amd.nested")]
            | if length == 0 then "(absent)" else (.[0].value // "(bare)") end),
        "\($p).nested=\(.kvm.nested)",
        "\($p).codes=" + ([.verdict.findings[].code] | join(" ")),
        "\($p).cmdline_finding=" + ([.verdict.findings[] | select(.code | startswith("kvm.cmdline"))
            | "\(.level): \(.message)"] | join(" "))' > $RES
}

b=b$LAB_BOOT
result $b.cmdline "$(cat /proc/cmdline)"
result $b.init_args "$*"
observe $b full

# Generated command lines (boot 1 of the 6.1 kernel only: kmod and the kernel's parameter parser
# are the same for both series): spellings, duplicates, quotes, `--`, values.
gen() {
    for ac in "0 1" "1 0"; do
        set -- $ac
        echo "kvm_amd.nested=$1 kvm-amd.nested=$2"
        echo "kvm-amd.nested=$1 kvm_amd.nested=$2"
        echo "kvm_amd.nested=$1 -- kvm_amd.nested=$2"
        echo "kvm_amd.nested=$1 \"foo=x kvm_amd.nested=$2\""
        echo "kvm_amd.nested=\"$1\" quiet kvm_amd.nested=$2"
    done
    echo "\"kvm_amd.nested=0\""
    echo "kvm-amd.nested=\"0\""
    echo "kvm_amd.nested=1 kvm_amd.nested"
    echo "kvm_amd.nested=1 kvm_amd.nested="
    echo "KVM_AMD.nested=0"
    echo "kvm_amd.nested=1 kvm_amd.nested=Y"
    echo "kvm_amd.nested=0 kvm_amd.npt=0"
    echo "kvm_amd.nested=0x1"
    echo "kvm_amd.nested=010"
    echo "kvm_amd.nested=on"
    echo "kvm_amd.nested=-1"
    echo "kvm_amd.nested=N"
    echo "kvm_amd.nested=0 kvm_amd.nested= 1"
}
if [ "$LAB_BOOT" = 1 ] && [ "$LAB_SERIES" = 6.1 ]; then
    gen > /tmp/lines
    i=0
    while IFS= read -r line; do
        i=$((i + 1))
        printf '%s\n' "$line" > /tmp/cmdline.$i
        mount --bind /tmp/cmdline.$i /proc/cmdline || { result gen.bind_failed $i; break; }
        result gen.$i.line "$line"
        observe gen.$i
        umount /proc/cmdline
    done < /tmp/lines
    result gen.count $i
fi
