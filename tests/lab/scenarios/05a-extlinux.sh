# A real boot loader, extlinux/syslinux (BIOS, MBR from syslinux's mbr.bin, FAT made without a
# mount): nestcore edits syslinux.cfg inside the running L1, the lab boots again from the same
# disk, the kernel gets kvm-amd.nested=1 and check says so; --off takes it back after a reboot.
# kernels: 6.1
# boot: extlinux
# boots: 3
# append: kvm-amd.nested=0
# timeout: 180

. /lab/boot.sh
mount_boot vfat
observe_boot
case $LAB_BOOT in
1) run b1.enable nestcore enable --persist cmdline --apply ;;
2) run b2.off nestcore enable --off --persist cmdline --apply ;;
esac
result b$LAB_BOOT.config "$(grep -i append /boot/syslinux/syslinux.cfg)"
result b$LAB_BOOT.files "$(ls /boot/syslinux)"
umount /boot
