# Snapshot from a real kernel: `nestcore snapshot` in an L1 with kvm_amd nested=1, brought out
# with the L1's own report; on the host `check --root` must reproduce that report except what only
# ioctls tell (07-snapshot.host.py compares them). tests/fixtures/hosts/lab-epyc-tcg-6.1-nested-on
# is one such snapshot (LAB_FIXTURE=DIR writes a fresh one there).
# kernels: 6.1 6.12
# image: lite
# cpu: EPYC,+svm,+npt
# append: kvm-amd.nested=1
# timeout: 240

modprobe kvm_amd
result nested "$(nested kvm_amd)"
run check nestcore check --json
run snapshot nestcore snapshot /tmp/snap
cp $OUT/check /tmp/snap-l1-report.json
tar czf /tmp/snap.tgz -C /tmp snap snap-l1-report.json
blob snap.tgz /tmp/snap.tgz
