"""Unit-test setup: makes ``ansible_collections.nestcore.kvm`` importable when pytest runs
outside ansible-test (which sets the path itself), and gives the helpers the tests share."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import pytest

# .../ansible/ansible_collections/nestcore/kvm/tests/unit/conftest.py -> .../ansible
_COLLECTIONS_PARENT = Path(__file__).resolve().parents[5]
if str(_COLLECTIONS_PARENT) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS_PARENT))

# The repository's recorded hosts (absent when the collection is used outside the repository).
REPO = _COLLECTIONS_PARENT.parent
FIXTURES = REPO / "tests" / "fixtures"


class ModuleExit(Exception):
    """exit_json was called."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


class ModuleFail(Exception):
    """fail_json was called."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


def _patch_args(args):
    try:
        from ansible.module_utils.testing import patch_module_args  # ansible-core >= 2.19

        return patch_module_args(args)
    except ImportError:  # older ansible-core: the classic set_module_args pattern
        from ansible.module_utils import basic
        from ansible.module_utils.common.text.converters import to_bytes

        return mock.patch.object(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))


@pytest.fixture
def run_main():
    """Runs a module's ``main()`` with ``args`` like Ansible would, returning ("exit"|"fail", result)."""
    from ansible.module_utils import basic

    def exit_json(self, **kwargs):
        kwargs.setdefault("changed", False)
        raise ModuleExit(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs["failed"] = True
        kwargs["msg"] = msg
        raise ModuleFail(kwargs)

    def run(module, args):
        with _patch_args(args), mock.patch.object(basic.AnsibleModule, "exit_json", exit_json), mock.patch.object(
            basic.AnsibleModule, "fail_json", fail_json
        ):
            try:
                module.main()
            except ModuleExit as e:
                return "exit", e.result
            except ModuleFail as e:
                return "fail", e.result
        raise AssertionError("main() returned without exit_json or fail_json")

    return run


@pytest.fixture
def fixtures():
    if not FIXTURES.is_dir():
        pytest.skip("the repository's fixtures are not here")
    return FIXTURES
