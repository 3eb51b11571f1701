"""Every recorded host under tests/fixtures/hosts (when present): the Python report agrees with
the hand-written oracle expect.json, as the Rust fixture test reads it (a subset of the report;
`verdict.codes` lists codes that must be among the findings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List

import pytest

import nestcore
from conftest import REPO

HOSTS = REPO / "tests" / "fixtures" / "hosts"
FIXTURES = sorted(p for p in HOSTS.iterdir() if (p / "root").is_dir()) if HOSTS.is_dir() else []


def _subset(path: str, expect: Any, actual: Any, out: List[str]) -> None:
    if isinstance(expect, dict):
        for k, e in expect.items():
            if path == "verdict" and k == "codes":
                have = [f["code"] for f in actual.get("findings", [])]
                out.extend(f"verdict: finding {c} missing (have {have})" for c in e if c not in have)
                continue
            if path == "verdict" and k == "remedies":
                for code, want in e.items():
                    f = next((f for f in actual.get("findings", []) if f["code"] == code), None)
                    if f is None or f["layer"] != want["layer"] or want["contains"] not in (f["remedy"] or ""):
                        out.append(f"verdict: {code}: {f!r} does not match {want!r}")
                continue
            sub = actual.get(k) if isinstance(actual, dict) else None
            _subset(f"{path}.{k}" if path else k, e, sub, out)
    elif expect != actual:
        out.append(f"{path}: expected {expect!r}, got {actual!r}")


def _attr_subset(path: str, expect: Any, obj: Any, out: List[str]) -> None:
    """The same comparison through the typed attributes (report.cpu.extension, ...)."""
    for k, e in expect.items():
        if path == "verdict" and k == "codes":
            continue
        if path == "verdict" and k == "remedies":
            for code, want in e.items():
                f = obj.finding(code)
                if f is None or f.layer != want["layer"] or want["contains"] not in (f.remedy or ""):
                    out.append(f"verdict.finding({code!r}) (attribute): does not match {want!r}")
            continue
        p = f"{path}.{k}" if path else k
        if not hasattr(obj, k):
            out.append(f"{p}: no such attribute on {type(obj).__name__}")
        elif isinstance(e, dict):
            _attr_subset(p, e, getattr(obj, k), out)
        else:
            got = getattr(obj, k)
            got = got.to_dict() if hasattr(got, "to_dict") else got
            if isinstance(got, list):
                got = [g.to_dict() if hasattr(g, "to_dict") else g for g in got]
            if got != e:
                out.append(f"{p} (attribute): expected {e!r}, got {got!r}")


@pytest.mark.skipif(not FIXTURES, reason=f"no fixture hosts in {HOSTS}")
@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.name for p in FIXTURES])
def test_fixture_host(fixture: Path):
    cpuid = fixture / "cpuid.txt"
    report = nestcore.check(fixture / "root", cpuid if cpuid.exists() else None)
    expect = json.loads((fixture / "expect.json").read_text())
    problems: List[str] = []
    _subset("", expect, report.to_dict(), problems)
    _attr_subset("", expect, report, problems)
    assert not problems, "\n".join(problems)
