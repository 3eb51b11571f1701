# Intel under TCG: QEMU cannot emulate VT-x, so `-cpu Skylake-Client-v4,+vmx` boots without vmx
# (QEMU warns). nestcore must name the layer below (QEMU TCG) as what hides VT-x, report that
# kvm_intel does not load, and `enable` must refuse with that reason. Also how kvm_intel's
# parser takes values of its bool `nested` (it parses parameters before it probes for VMX).
# kernels: 6.1 6.12
# image: lite
# cpu: Skylake-Client-v4,+vmx
# timeout: 240

result cpuinfo.vendor "$(grep -m1 vendor_id /proc/cpuinfo | cut -d: -f2)"
result cpuinfo.vmx "$(grep -c -w vmx /proc/cpuinfo)"
modprobe kvm_intel > $OUT/load 2>&1
result load.rc $?
result load.said "$(cat $OUT/load)"
result load.kernel_said "$(dmesg | grep -E 'kvm_intel|kvm:|VMX' | tail -n 2)"
result load.sysfs "$(ls -d /sys/module/kvm_intel 2> /dev/null)"

run check nestcore check --json
report_check check
result check.hidden "$(finding check cpu.extension_hidden_by_hypervisor message)"
result check.hidden_remedy "$(finding check cpu.extension_hidden_by_hypervisor remedy)"
result check.module "$(finding check kvm.module_not_loaded message)"

run enable nestcore enable --persist modprobe,runtime --apply
result enable.out "$(cat $OUT/enable $OUT/enable.err)"
result enable.modprobe_d "$(ls /etc/modprobe.d)"

# kvm_intel parses `nested` (a bool) before it looks for VMX: a refused value fails with
# EINVAL and "invalid for parameter", an accepted one with the missing VMX.
for v in Y yes on t f e d 2 maybe; do
    modprobe kvm_intel nested=$v > /dev/null 2>&1
    result param.$v "$(dmesg | tail -n 1 | grep -c 'invalid for parameter')"
done
