# Python on a real host: in the Debian L1, the wheel built from this tree installs offline into a
# venv; `python3 -m nestcore check` and `nestcore.plan_nested(...).apply()` work there (for real:
# a kmod reload and a modprobe.d file, read back by kmod).
# kernels: 6.1
# boot: debian
# timeout: 300

. /lab/boot.sh
debian_root
modprobe kvm_amd nested=0
result wheel "$(ls /mnt/root/root/wheels)"
# A venv without its own pip (ensurepip costs a minute under TCG); Debian's pip installs into it.
run venv in_root python3 -m venv --without-pip /opt/nestcore
run pip in_root sh -c 'python3 -m pip --python /opt/nestcore/bin/python install --no-index --no-cache-dir /root/wheels/nestcore-*.whl'
result pip.out "$(tail -n 1 $OUT/pip)"
run pycheck in_root /opt/nestcore/bin/python -m nestcore check --json
report_check pycheck
cat > /mnt/root/tmp/plan.py << 'PY'
import nestcore

# The image's GRUB_CMDLINE_LINUX says kvm-amd.nested=0 (for 05c): a plan of runtime and
# modprobe.d alone would be undone by it at the next boot, so nestcore blocks it...
blocked = nestcore.plan_nested(want="on", persist=["runtime", "modprobe"])
print("blocked", len(blocked.blockers), " ".join(b.code for b in blocked.blockers))
# ...and a plan that includes the kernel command line carries it out.
plan = nestcore.plan_nested(want="on", persist=["runtime", "modprobe", "cmdline"])
print("summary", plan.summary)
print("actions", len(plan.actions), "blockers", len(plan.blockers))
for b in plan.blockers:
    print("blocker", b.code, b)
done = plan.apply()
print("written", " ".join(done.written))
print("commands", " ".join(f"{c}={rc}" for c, rc in done.commands))
print("verified", done.verified)
after = nestcore.check(probe=True)
print("after", after.kvm.nested, after.verdict.nested_for_guests, after.kvm.probe.ok)
PY
# This boot has no GRUB installed (05c installs it on its own copy of the disk): give
# update-grub the folder it writes grub.cfg into, so the plan's regeneration runs for real.
mkdir -p /mnt/root/boot/grub
run pyplan in_root /opt/nestcore/bin/python /tmp/plan.py
result pyplan.out "$(cat $OUT/pyplan)"
result after.sysfs "$(nested kvm_amd)"
result after.dropin "$(grep -h '^options' /mnt/root/etc/modprobe.d/*.conf)"
result after.default_grub "$(grep '^GRUB_CMDLINE_LINUX=' /mnt/root/etc/default/grub)"
# kmod's own reload reads the file the Python API wrote.
in_root modprobe -r kvm_amd
in_root modprobe kvm_amd
result reload.sysfs "$(nested kvm_amd)"
leave_root
