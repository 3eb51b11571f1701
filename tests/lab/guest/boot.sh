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

# loader_var NAME: a systemd-boot EFI variable (LoaderEntries, LoaderEntrySelected, ...) read
# through efivarfs: its UTF-16 strings, space-separated, or `(absent)`.
loader_var() {
    if [ ! -d /sys/firmware/efi/efivars/. ] || ! mountpoint -q /sys/firmware/efi/efivars; then
        modprobe efivarfs 2> /dev/null
        mount -t efivarfs efivarfs /sys/firmware/efi/efivars
    fi
    _f=/sys/firmware/efi/efivars/$1-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
    [ -e "$_f" ] || { echo "(absent)"; return; }
    tail -c +5 "$_f" | tr '\0' '\n' | awk 'BEGIN { RS = "" } { gsub(/\n/, ""); printf "%s%s", s, $0; s = " " }'
}

# debian_root: the Debian root on the disk's first partition at /mnt/root, with /proc, /sys,
# /dev and a fresh /run and /tmp, ready for in_root.
debian_root() {
    mount_boot ext4 /mnt/root
    for _d in proc sys dev dev/pts; do mount --bind /$_d /mnt/root/$_d; done
    mount -t tmpfs tmpfs /mnt/root/run
    mount -t tmpfs tmpfs /mnt/root/tmp
}

# in_root CMD...: CMD inside the Debian root (its own programs: bash, grub, python3, libvirt),
# with a clean environment.
in_root() {
    chroot /mnt/root /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}

# leave_root: unmount the Debian root so the next boot finds it clean.
leave_root() {
    sync
    for _d in tmp run dev/pts dev sys proc; do umount /mnt/root/$_d 2> /dev/null; done
    umount /mnt/root
    result "b$LAB_BOOT.unmounted" $?
}
