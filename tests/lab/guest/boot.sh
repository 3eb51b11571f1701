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
