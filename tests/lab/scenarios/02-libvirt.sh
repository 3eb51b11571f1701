# libvirt as in the guide, in the Debian L1 of 5c (AMD, kvm_amd nested=1): a real libvirtd
# defines and starts a domain with the <cpu> that `nestcore guest-cpu --for-host` prints, and a
# qemu64 domain (QEMU hides svm from it under KVM) before and after `--ensure-nested`; then
# `nestcore guests --apply` fixes the defined qemu64 domain itself (its edited definition goes to
# libvirt with `virsh define`) and `virsh start` of that definition gives its guest svm. Each
# guest boots a small image whose init reports what nestcore sees there.
# kernels: 6.1
# boot: debian
# timeout: 300

. /lab/boot.sh
debian_root
modprobe kvm_amd nested=1
L=/mnt/root/var/lib/lab

# domain NAME CPU-XML: a direct-kernel-boot domain whose serial ports go to files.
domain() {
    cat << XML
<domain type='kvm'>
  <name>$1</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>/var/lib/lab/vmlinuz</kernel>
    <initrd>/var/lib/lab/l2.cpio</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet</cmdline>
  </os>
  <features><acpi/><apic/></features>
  $2
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='/var/lib/lab/$1.console'/><target port='0'/></serial>
    <serial type='file'><source path='/var/lib/lab/$1.res'/><target port='1'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
XML
}

# boot_domain NAME FILE: define and start it with virsh, wait until it has shut off, report
# NAME.define.rc, NAME.start.rc and the guest's own results as NAME.*.
boot_domain() {
    run $1.define in_root virsh -c qemu:///system define "$2"
    start_domain $1 $1
}

# start_domain NAME KEY: start the domain as libvirt has it defined, wait until it has shut off,
# report KEY.start.rc, KEY.state, KEY.qemu_cpu and the guest's own results as KEY.*.
start_domain() {
    rm -f $L/$1.res $L/$1.console
    run $2.start in_root virsh -c qemu:///system start "$1"
    _end=$(($(cut -d. -f1 /proc/uptime) + ${DOMAIN_TIMEOUT:-150}))
    while [ "$(in_root virsh -c qemu:///system domstate "$1" 2> /dev/null)" = running ] &&
        [ "$(cut -d. -f1 /proc/uptime)" -lt $_end ]; do
        sleep 1
    done
    result $2.state "$(in_root virsh -c qemu:///system domstate "$1" 2>&1)"
    in_root virsh -c qemu:///system destroy "$1" > /dev/null 2>&1
    result $2.qemu_cpu "$(grep -o -- '-cpu [^ ]*' /mnt/root/var/log/libvirt/qemu/$1.log | tail -n 1)"
    echo "== $1: the guest's console, then libvirt's QEMU log"
    tail -n 15 $L/$1.console
    tail -n 8 /mnt/root/var/log/libvirt/qemu/$1.log
    tr -d '\r' < $L/$1.res | sed "s/^/$2./" > $RES
}

# The folders the packages' postinst and systemd-tmpfiles would make.
mkdir -p /mnt/root/var/log/libvirt/qemu /mnt/root/var/lib/libvirt/qemu /mnt/root/var/cache/libvirt/qemu
run virtlogd in_root /usr/sbin/virtlogd --daemon
run libvirtd in_root /usr/sbin/libvirtd --daemon
i=0
while [ ! -S /mnt/root/run/libvirt/libvirt-sock ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i + 1)); done
run version in_root virsh -c qemu:///system version
result version.out "$(grep -i 'running hypervisor' $OUT/version)"

# 1. The <cpu> nestcore recommends for this host, as-is.
run cpu in_root nestcore guest-cpu --for-host
result cpu.xml "$(cat $OUT/cpu)"
domain lab-rec "$(cat $OUT/cpu)" > $L/lab-rec.xml
boot_domain lab-rec /var/lib/lab/lab-rec.xml

# 2. A domain whose CPU hides svm, as it is, then edited by --ensure-nested.
domain lab-qemu64 "<cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model></cpu>" \
    > $L/lab-qemu64.xml
boot_domain lab-qemu64 /var/lib/lab/lab-qemu64.xml
sed 's/lab-qemu64/lab-ensured/g' $L/lab-qemu64.xml > $L/lab-ensured.orig.xml
run ensure in_root nestcore guest-cpu --ensure-nested /var/lib/lab/lab-ensured.orig.xml
cp $OUT/ensure $L/lab-ensured.xml
result ensure.cpu "$(grep -A3 '<cpu' $OUT/ensure)"
diff -U0 $L/lab-ensured.orig.xml $L/lab-ensured.xml | grep '^[-+][^-+]' > $OUT/ensure.diff
result ensure.changed "$(grep -c . $OUT/ensure.diff)"
result ensure.other_changes "$(grep -v -e '<cpu' -e '<feature' -e '</cpu>' $OUT/ensure.diff)"
boot_domain lab-ensured /var/lib/lab/lab-ensured.xml

# 3. `nestcore guests` finds the three defined domains through virsh; only lab-qemu64 lacks svm.
# --apply edits its definition (ensure_nested) and hands it to libvirt (`virsh define`); the
# same domain, started as libvirt now has it, sees svm.
gx() { jqr $1 "[.guests[] | select(.name == \"$2\")][0] | $3"; }
run guests in_root nestcore guests --json
result guests.names "$(jqr guests '[.guests[].name] | sort | join(" ")')"
result guests.read_from "$(gx guests lab-qemu64 .read_from)"
result guests.qemu64 "$(gx guests lab-qemu64 .gets_extension)"
result guests.qemu64_reason "$(gx guests lab-qemu64 .reason.code)"
result guests.rec "$(gx guests lab-rec .gets_extension)"
result guests.ensured "$(gx guests lab-ensured .gets_extension)"
run apply in_root nestcore guests --json --apply
result apply.applied "$(jqr apply '[.applied[] | select(.error == null) | .name] | join(" ")')"
result apply.errors "$(jqr apply '[.applied[] | select(.error != null) | "\(.name): \(.error)"] | join("; ")')"
result apply.after_qemu64 "$(jqr apply '[.after.guests[] | select(.name == "lab-qemu64")][0].gets_extension')"
run dumpxml in_root virsh -c qemu:///system dumpxml --inactive lab-qemu64
result dumpxml.svm "$(grep -o "<feature policy=.require. name=.svm./>" $OUT/dumpxml)"
result dumpxml.model "$(grep -o "<model[^>]*>[^<]*</model>" $OUT/dumpxml)"
start_domain lab-qemu64 lab-fixed
run guests_after in_root nestcore guests --json
result guests_after.qemu64 "$(gx guests_after lab-qemu64 .gets_extension)"
result libvirt_log "$(tail -n 3 /mnt/root/var/log/libvirt/libvirtd.log 2> /dev/null)"
in_root sh -c 'kill $(cat /run/libvirtd.pid) $(cat /run/virtlogd.pid)'
leave_root
