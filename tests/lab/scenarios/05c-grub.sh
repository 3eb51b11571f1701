# A real boot loader, GRUB 2 on a Debian root (debootstrap, an ext4 image made with mke2fs -d):
# boot 1 starts the kernel straight from QEMU and runs grub-install and update-grub inside the
# VM; nestcore then edits /etc/default/grub and runs update-grub itself. Boots 2 and 3 go
# through GRUB from the same disk: kvm-amd.nested=1, then after --off kvm-amd.nested=0. bash
# (what grub-mkconfig sources /etc/default/grub with) must read what nestcore wrote.
# kernels: 6.1
# boot: grub
# boots: 3
# timeout: 420
# timeout.2: 240
# timeout.3: 240

. /lab/boot.sh
debian_root
b=b$LAB_BOOT
observe_boot
grubvar() { in_root bash -c '. /etc/default/grub && printf %s "$GRUB_CMDLINE_LINUX"'; }
case $LAB_BOOT in
1)
    run b1.grub_install in_root grub-install --target=i386-pc /dev/vda
    run b1.update_grub in_root update-grub
    result b1.grub_cfg "$(grep -m1 -E '^\s+linux\s' /mnt/root/boot/grub/grub.cfg)"
    run b1.enable in_root nestcore enable --persist cmdline --apply
    ;;
2)
    run b2.off in_root nestcore enable --off --persist cmdline --apply
    ;;
esac
result $b.default_grub "$(grep '^GRUB_CMDLINE_LINUX=' /mnt/root/etc/default/grub)"
result $b.bash_reads "$(grubvar)"
result $b.grub_cfg_now "$(grep -m1 -E '^\s+linux\s' /mnt/root/boot/grub/grub.cfg)"
result $b.files "$(ls /mnt/root/etc/default /mnt/root/etc/default/grub.d)"
result $b.store "$(cd /mnt/root && find var/lib/nestcore/backup -type f 2>/dev/null | sort | tr '\n' ' ')"
leave_root
