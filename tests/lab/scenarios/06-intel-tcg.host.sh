# Host side of 06-intel-tcg: QEMU's own warning that TCG dropped vmx.
grep -h 'vmx' "$LAB_OUT"/qemu.1.log | head -n 1 | sed 's/^/qemu.warning=/'
