# Helpers for lab scenarios (sourced; busybox sh). Results go to the second serial port, one
# `key=value` line each; the harness asserts them against the scenario's .expect file.
RES=/dev/ttyS1
OUT=/tmp/out
mkdir -p $OUT

# busybox's shell runs its own applets before anything on PATH: the module tools must be kmod's
# (/sbin/modprobe -> kmod), as on a real host.
for _t in modprobe insmod rmmod lsmod depmod modinfo; do
    eval "$_t() { /sbin/$_t \"\$@\"; }"
done

# modprobe_is: which program `modprobe` runs (the scenario asserts kmod's).
modprobe_is() {
    modprobe --version | head -n 1
}

# result KEY VALUE...: report one value (newlines become spaces).
result() {
    _k=$1
    shift
    printf '%s=%s\n' "$_k" "$(printf '%s' "$*" | tr '\n\r' '  ')" > $RES
}

# run NAME CMD...: run a command, keep its stdout in $OUT/NAME and stderr in $OUT/NAME.err,
# report NAME.rc and show both on the console with the time it took.
run() {
    _n=$1
    shift
    _t=$(cut -d' ' -f1 /proc/uptime)
    "$@" > $OUT/$_n 2> $OUT/$_n.err
    _rc=$?
    result "$_n.rc" $_rc
    echo "== $_n: $* (exit $_rc, $(awk -v t="$_t" '{ printf "%.1f", $1 - t }' /proc/uptime) s)"
    cat $OUT/$_n $OUT/$_n.err
    return 0
}

# jqr NAME FILTER: a jq filter over NAME's JSON output, values joined by spaces.
jqr() {
    jq -r "$2" $OUT/$1 2> /dev/null | tr '\n' ' ' | sed 's/ $//'
}

# report_check NAME: the key answers of `nestcore check --json` output NAME as NAME.*.
report_check() {
    result "$1.extension" "$(jqr "$1" .cpu.extension)"
    result "$1.vendor" "$(jqr "$1" .cpu.vendor_id)"
    result "$1.hypervisor" "$(jqr "$1" .virtualization.hypervisor)"
    result "$1.kvm_usable" "$(jqr "$1" .verdict.kvm_usable)"
    result "$1.nested" "$(jqr "$1" .kvm.nested)"
    result "$1.nested_effective" "$(jqr "$1" .kvm.nested_effective)"
    result "$1.nested_for_guests" "$(jqr "$1" .verdict.nested_for_guests)"
    result "$1.device" "$(jqr "$1" .kvm.device.state)"
    result "$1.probe_ok" "$(jqr "$1" .kvm.probe.ok)"
    result "$1.cmdline" "$(jqr "$1" '.cmdline.relevant[] | "\(.name)=\(.value)"')"
    result "$1.codes" "$(jqr "$1" '.verdict.findings[].code')"
}

# finding NAME CODE FIELD: one field (message, remedy) of the finding CODE in NAME's report.
finding() {
    jqr "$1" ".verdict.findings[] | select(.code == \"$2\") | .$3"
}

# nested MODULE: the module's nested parameter as sysfs shows it (`absent` when not loaded).
nested() {
    cat /sys/module/$1/parameters/nested 2> /dev/null || echo absent
}

# blob NAME FILE: send a file (base64) to the harness, which writes it to the scenario's
# output folder as NAME.
blob() {
    base64 "$2" | while read -r _l; do printf 'blob.%s=%s\n' "$1" "$_l" > $RES; done
    result "blob.$1.done" 1
}

# l2 NAME CPU [QEMU ARGS...]: boot an L2 guest under KVM (`-accel kvm -cpu CPU`, exactly as
# given), with the same kernel and a small image whose init runs `nestcore check`; its
# results come back as NAME.* (NAME.booted, NAME.extension, NAME.hypervisor, NAME.codes, ...).
# An L2 that ends without its results (its `end=` line) is booted once more: nested SVM under
# TCG lost an L2 that way once in CI (01 on 6.12: an oops in the L2's early boot, then no exit
# until the timeout), which says nothing of nestcore. NAME.attempts says how many
# boots it took, and the first console comes back as the blob NAME.console.1; results that
# are there but wrong are never retried.
l2() {
    _n=$1
    _cpu=$2
    shift 2
    _try=1
    while :; do
        rm -f /tmp/$_n.res
        echo "== $_n: qemu-system-x86_64 -accel kvm -cpu $_cpu $* (boot $_try)"
        timeout ${L2_TIMEOUT:-150} qemu-system-x86_64 -accel kvm -cpu "$_cpu" -m 256 -smp 1 \
            -nodefaults -display none -no-reboot \
            -chardev file,id=c0,path=/tmp/$_n.console -serial chardev:c0 \
            -chardev file,id=c1,path=/tmp/$_n.res -serial chardev:c1 \
            -kernel /l2/vmlinuz -initrd /l2/initrd -append "console=ttyS0 panic=-1 quiet" \
            "$@" > /tmp/$_n.qemu 2>&1
        _rc=$?
        cat /tmp/$_n.qemu
        tail -n 5 /tmp/$_n.console
        if grep -q '^end=' /tmp/$_n.res 2> /dev/null || [ $_try -ge 2 ]; then
            break
        fi
        cp /tmp/$_n.console /tmp/$_n.console.1
        blob "$_n.console.1" /tmp/$_n.console.1
        _try=$((_try + 1))
    done
    result "$_n.qemu_rc" $_rc
    result "$_n.attempts" $_try
    tr -d '\r' < /tmp/$_n.res | sed "s/^/$_n./" > $RES
}

# l2_start NAME CPU: the same L2 in the background (its pid in $OUT/NAME.pid); l2_wait NAME
# waits for it and reports its results.
l2_start() {
    _n=$1
    _cpu=$2
    rm -f /tmp/$_n.res
    timeout ${L2_TIMEOUT:-150} qemu-system-x86_64 -accel kvm -cpu "$_cpu" -m 256 -smp 1 \
        -nodefaults -display none -no-reboot \
        -chardev file,id=c0,path=/tmp/$_n.console -serial chardev:c0 \
        -chardev file,id=c1,path=/tmp/$_n.res -serial chardev:c1 \
        -kernel /l2/vmlinuz -initrd /l2/initrd -append "console=ttyS0 panic=-1 quiet ${L2_APPEND:-}" \
        > /tmp/$_n.qemu 2>&1 &
    echo $! > $OUT/$_n.pid
}
l2_wait() {
    wait "$(cat $OUT/$1.pid)"
    result "$1.qemu_rc" $?
    tr -d '\r' < /tmp/$1.res | sed "s/^/$1./" > $RES
}
