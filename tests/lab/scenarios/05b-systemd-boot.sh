# A real boot loader, systemd-boot under OVMF with a Boot Loader Specification entry on the ESP:
# nestcore edits the entry inside the running L1, the lab boots again from the same disk, the
# kernel gets kvm-amd.nested=1; --off takes it back. A backup must never become a second entry:
# the entries the boot menu showed are systemd-boot's LoaderEntries EFI variable (efivarfs).
# kernels: 6.12
# boot: systemd-boot
# boots: 3
# append: kvm-amd.nested=0
# timeout: 240

. /lab/boot.sh
mount_boot vfat
b=b$LAB_BOOT
result $b.menu "$(loader_var LoaderEntries)"
result $b.menu_entries "$(loader_var LoaderEntries | tr ' ' '\n' | grep -vc '^auto-')"
result $b.selected "$(loader_var LoaderEntrySelected)"
observe_boot
case $LAB_BOOT in
1) run b1.enable nestcore enable --persist cmdline --apply ;;
2) run b2.off nestcore enable --off --persist cmdline --apply ;;
esac
result $b.options "$(grep '^options' /boot/loader/entries/lab.conf)"
result $b.files "$(ls /boot/loader/entries)"
umount /boot
