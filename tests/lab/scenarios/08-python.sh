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

plan = nestcore.plan_nested(want="on", persist=["runtime", "modprobe"])
print("summary", plan.summary)
print("actions", len(plan.actions), "blockers", len(plan.blockers))
done = plan.apply()
print("written", " ".join(done.written))
print("commands", " ".join(f"{c}={rc}" for c, rc in done.commands))
print("verified", done.verified)
after = nestcore.check(probe=True)
print("after", after.kvm.nested, after.verdict.nested_for_guests, after.kvm.probe.ok)
PY
run pyplan in_root /opt/nestcore/bin/python /tmp/plan.py
result pyplan.out "$(cat $OUT/pyplan)"
result after.sysfs "$(nested kvm_amd)"
result after.dropin "$(grep -h '^options' /mnt/root/etc/modprobe.d/*.conf)"
# kmod's own reload reads the file the Python API wrote.
in_root modprobe -r kvm_amd
in_root modprobe kvm_amd
result reload.sysfs "$(nested kvm_amd)"
leave_root
