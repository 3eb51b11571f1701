# The lab's own rule for a lost L2 (guest/lib.sh `l2`): an L2 that ends without its results is
# booted once more, and only once, and says so. Here the L2 starts paused (QEMU's -S), so both
# boots end at a short timeout without results: NAME.attempts is 2, the first console comes
# back as a blob, and no end line came (the expectations that need the L2's results would fail).
# An L2 that reports is booted once (l2ok).
# kernels: 6.12
# image: l1
# timeout: 240

modprobe kvm_amd
L2_TIMEOUT=15 l2 l2lost qemu64 -S
result l2lost.end_lines "$(grep -c '^end=' /tmp/l2lost.res 2> /dev/null)"
l2 l2ok qemu64
