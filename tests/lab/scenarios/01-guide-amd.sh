# The guide on AMD: nested off, check, enable for real (runtime + modprobe.d), kmod's own reload
# keeps it, L2 guests with the CPU nestcore recommends and with one that hides SVM, and off again.
# kernels: 6.1 6.12
# cpu: EPYC,+svm,+npt
# timeout: 420

result modprobe.is "$(modprobe_is)"
modprobe kvm_amd nested=0
result load0.nested "$(nested kvm_amd)"

run check0 nestcore check --json
report_check check0
result check0.remedy "$(finding check0 kvm.nested_off remedy)"

run enable nestcore enable --persist runtime,modprobe --apply
result enable.nested "$(nested kvm_amd)"
result enable.dropin "$(grep -h '^options' /etc/modprobe.d/*.conf)"

# A plain reload by kmod's modprobe reads the file nestcore wrote.
modprobe -r kvm_amd
result unloaded "$(nested kvm_amd)"
modprobe kvm_amd
result reload.nested "$(nested kvm_amd)"

run check1 nestcore check --json
report_check check1

# The L2 CPU exactly as nestcore recommends it, used as-is.
run l2cpu nestcore guest-cpu --format qemu --for-host
result l2cpu.value "$(cat $OUT/l2cpu)"
l2 l2rec "$(cat $OUT/l2cpu)"
# qemu64: under KVM, QEMU turns svm off for its named models unless asked (+svm).
l2 l2qemu64 qemu64

run off nestcore enable --off --apply
modprobe -r kvm_amd
modprobe kvm_amd
result off.nested "$(nested kvm_amd)"
result off.files "$(ls /etc/modprobe.d)"
result off.sets_nested1 "$(grep -l -E 'nested=(1|y|Y)' /etc/modprobe.d/* 2> /dev/null)"
