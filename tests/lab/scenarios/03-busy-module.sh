# A busy module: while an L2 guest holds KVM, `enable --persist runtime --apply` refuses, names
# what holds it and changes nothing; once the guest has gone it succeeds.
# kernels: 6.1 6.12
# cpu: EPYC,+svm,+npt
# timeout: 300

modprobe kvm_amd nested=0
L2_APPEND=l2hold=120 l2_start l2busy host
# Wait until the guest's VM holds kvm_amd (QEMU creates it before the L2 kernel starts).
i=0
while [ "$(cat /sys/module/kvm_amd/refcnt)" = 0 ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
result busy.refcnt "$(cat /sys/module/kvm_amd/refcnt)"
result busy.holder "$(cat /proc/$(cat $OUT/l2busy.pid)/comm)"

run busy nestcore enable --persist runtime --apply
result busy.stderr "$(cat $OUT/busy.err)"
result busy.nested "$(nested kvm_amd)"
result busy.loaded "$(cat /sys/module/kvm_amd/initstate)"
result busy.modprobe_d "$(ls /etc/modprobe.d)"
result busy.guest_alive "$(kill -0 "$(cat $OUT/l2busy.pid)" && echo yes)"

kill "$(cat $OUT/l2busy.pid)"
l2_wait l2busy
i=0
while [ "$(cat /sys/module/kvm_amd/refcnt)" != 0 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
result idle.refcnt "$(cat /sys/module/kvm_amd/refcnt)"

run idle nestcore enable --persist runtime --apply
result idle.nested "$(nested kvm_amd)"
result idle.modprobe_d "$(ls /etc/modprobe.d)"
