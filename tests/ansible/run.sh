#!/usr/bin/env bash
# The Ansible collection nestcore.kvm against a fleet of recorded hosts: unit tests of the
# modules, ansible-doc of every module, then the fleet playbook (tests/ansible/site.yml, the
# role nestcore.kvm.nested) run twice over 30+ hosts with ansible_connection=local, -f 5, each
# host a copy of a repository fixture in a temporary folder. Checks the recaps (the second run
# changes nothing), every host's outcome, and prints the fleet's summary.
#
# Uses target/ansible-venv (ansible-core from PyPI, pytest) for the controller and a fresh
# target/ansible-target-venv as the hosts' Python, into which the role installs the wheel from
# target/wheels (built with maturin when missing; scripts/test-python builds it).
# NESTCORE_KEEP=1 keeps the temporary folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"
python="${PYTHON:-python3}"
venv="$repo/target/ansible-venv"
tvenv="$repo/target/ansible-target-venv"

echo "== Ansible: controller venv $venv"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -c 'import ansible, pytest' 2>/dev/null || "$venv/bin/pip" install -q -c "$repo/tests/constraints.txt" ansible-core pytest

wheel="$(ls -t target/wheels/nestcore-*.whl 2>/dev/null | head -1 || true)"
if [ -z "$wheel" ]; then
  echo "== Ansible: build the wheel"
  "$venv/bin/python" -c 'import maturin' 2>/dev/null || "$venv/bin/pip" install -q -c "$repo/tests/constraints.txt" maturin
  "$venv/bin/maturin" build --release -m nestcore-py/Cargo.toml -o target/wheels
  wheel="$(ls -t target/wheels/nestcore-*.whl | head -1)"
fi
wheel="$repo/$wheel"
echo "wheel: $wheel"
"$venv/bin/pip" install -q --force-reinstall --no-deps "$wheel"

export ANSIBLE_COLLECTIONS_PATH="$repo/ansible"
export ANSIBLE_CONFIG="$repo/tests/ansible/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0

echo "== Ansible: unit tests of the modules"
"$venv/bin/python" -m pytest -q -p no:cacheprovider ansible/ansible_collections/nestcore/kvm/tests/unit

echo "== Ansible: module documentation (ansible-doc)"
for m in nestcore_facts nestcore_nested nestcore_guest_cpu nestcore_guests; do
  "$venv/bin/ansible-doc" -t module "nestcore.kvm.$m" >/dev/null
  echo "ok: nestcore.kvm.$m"
done
"$venv/bin/ansible-doc" -t role nestcore.kvm.nested >/dev/null && echo "ok: role nestcore.kvm.nested"

echo "== Ansible: fleet of recorded hosts"
work="$(mktemp -d "${TMPDIR:-/tmp}/nestcore-ansible.XXXXXX")"
if [ "${NESTCORE_KEEP:-0}" = 1 ]; then echo "keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
rm -rf "$tvenv"
"$python" -m venv "$tvenv"
kvenv="$work/kolla-target-venv"
"$python" -m venv "$kvenv"
"$venv/bin/python" tests/ansible/make_inventory.py "$work" "$tvenv/bin/python" "$wheel" "$kvenv/bin/python"
export ANSIBLE_HOME="$work/ansible-home" ANSIBLE_LOCAL_TEMP="$work/ansible-tmp"

echo "== Ansible: the README's kolla example on hosts without nestcore (tests/ansible/kolla.yml)"
(cd / && "$kvenv/bin/python" -c 'import nestcore.check' 2>/dev/null) && { echo "the kolla venv already has nestcore"; exit 1; }
status=0
"$venv/bin/ansible-playbook" -i "$work/inventory.yml" tests/ansible/kolla.yml >"$work/kolla.log" 2>&1 || status=$?
sed -n '/PLAY RECAP/,$p' "$work/kolla.log"
if [ "$status" != 0 ]; then
  tail -60 "$work/kolla.log"
  echo "the kolla example exited $status"
  exit 1
fi

for run in 1 2; do
  echo "== Ansible: run $run (ansible-playbook -f 5)"
  status=0
  "$venv/bin/ansible-playbook" -i "$work/inventory.yml" -f 5 tests/ansible/site.yml \
    -e "nestcore_summary_file=$work/summary$run.json" >"$work/run$run.log" 2>&1 || status=$?
  sed -n '/PLAY RECAP/,$p' "$work/run$run.log"
  if [ "$status" != 0 ]; then
    tail -60 "$work/run$run.log"
    echo "ansible-playbook run $run exited $status"
    exit 1
  fi
done
sed -n '/TASK \[Summary of the fleet\]/,/^$/p' "$work/run1.log" | sed -n '1,/^}/p'
"$venv/bin/python" tests/ansible/check_results.py "$work"
