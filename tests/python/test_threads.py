"""check() from several threads at once: same answers, no crash (the GIL is released while the
host is read)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import nestcore


def test_many_threads_same_answers(intel_nested_off, amd_nested_on):
    hosts = [intel_nested_off, amd_nested_on]
    expected = [nestcore.check(h.root, h.cpuid) for h in hosts]

    def job(i: int) -> bool:
        h = hosts[i % 2]
        r = nestcore.check(h.root, h.cpuid)
        # Touch the objects from this thread too.
        assert r.verdict.nested_for_guests in ("available", "disabled")
        return r == expected[i % 2] and r.text() == expected[i % 2].text()

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(job, range(200)))


def test_live_checks_in_threads():
    if not os.path.exists("/proc/cpuinfo"):
        import pytest

        pytest.skip("no /proc: not a Linux host")
    first = nestcore.check(probe=False)
    with ThreadPoolExecutor(max_workers=4) as pool:
        reports = list(pool.map(lambda _: nestcore.check(probe=False), range(40)))
    # Live answers can move (a module loads), but the CPU does not.
    assert all(r.cpu == first.cpu for r in reports)


def test_shared_report_read_from_threads(amd_nested_on):
    r = nestcore.check(amd_nested_on.root, amd_nested_on.cpuid)
    want = r.to_json()
    barrier = threading.Barrier(4)

    def read(_: int) -> bool:
        barrier.wait()
        return all(r.to_json() == want and r.cpu.extension == "svm" for _ in range(200))

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(read, range(4)))
