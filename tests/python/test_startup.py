"""`import nestcore` stays cheap: it loads the package, its exceptions and the native module, and
nothing else (no `typing`, `re`, `enum`, ... which cost more than the rest of the import; the
types live in .pyi stubs). The time itself is measured by bench/python_startup.py, not here."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
before = set(sys.modules)
import nestcore
nestcore.check(probe=False)
try:
    nestcore.check("/nonexistent/nestcore-root")
except nestcore.NestcoreNotFoundError:
    pass
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_import_and_check_load_only_nestcore():
    p = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == ["nestcore", "nestcore._errors", "nestcore._nestcore"]


def test_python_m_nestcore_loads_no_argparse():
    # python -m nestcore is the Rust CLI: no argparse (and its gettext, re, ...) at start-up.
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nestcore", "--version"], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
    assert "nestcore._nestcore" in imported
    assert not {"argparse", "typing", "re"} & imported, sorted(imported)
