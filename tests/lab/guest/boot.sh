# Helpers for the boot-loader scenarios (sourced after lib.sh).

# mount_boot FSTYPE [DIR]: the first partition of the virtio disk at DIR (default /boot).
mount_boot() {
    modprobe virtio_pci 2> /dev/null
    modprobe virtio_blk
    modprobe "$1"
    [ "$1" = vfat ] && modprobe nls_cp437 && modprobe nls_ascii
    i=0
    while [ ! -b /dev/vda1 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    mkdir -p "${2:-/boot}"
    mount -t "$1" /dev/vda1 "${2:-/boot}"
    result "b$LAB_BOOT.mounted" $?
}

# observe_boot: what this boot got: the command line, kvm_amd's nested after kmod loads it, and
# nestcore's check (bN.cmdline, bN.sysfs, bN.check.*).
observe_boot() {
    result "b$LAB_BOOT.cmdline" "$(cat /proc/cmdline)"
    modprobe kvm_amd
    result "b$LAB_BOOT.sysfs" "$(nested kvm_amd)"
    run "b$LAB_BOOT.check" nestcore check --json --no-probe
    report_check "b$LAB_BOOT.check"
}
