"""The stubs match the native module (mypy.stubtest), and typed code using the package checks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import REPO


def _mypy() -> None:
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.skip("mypy is not installed (pip install mypy); scripts/test-python installs it")


def test_stubtest():
    _mypy()
    p = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "nestcore._nestcore", "nestcore._errors"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_typed_use(tmp_path):
    _mypy()
    snippet = tmp_path / "use.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from typing import List, Optional
            import nestcore

            r: nestcore.Report = nestcore.check(probe=False)
            ext: str = r.cpu.extension
            family: Optional[int] = r.cpu.family
            findings: List[nestcore.Finding] = r.verdict.at_least("warn")
            code: int = r.exit_code
            try:
                nestcore.check("/nonexistent")
            except nestcore.NestcoreNotFoundError as e:
                name: Optional[str] = e.filename
            """
        )
    )
    files = [str(snippet), str(REPO / "examples" / "python" / "openstack_compute_check.py")]
    p = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *files],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stdout + p.stderr
