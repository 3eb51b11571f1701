#!/usr/bin/env python3
"""The lab harness's own promise, without booting anything: whatever goes wrong on the host (a
full disk above all, as on a CI machine once), a scenario fails with its reason and the run still
ends with its `lab: N passed, M failed` line. scripts/test-lab runs this before the lab."""

from __future__ import annotations

import errno
import io
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
import images  # noqa: E402
import lab  # noqa: E402

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def results_json_finds_the_disk_full():
    """A patch under which every write of a results.json fails with ENOSPC."""
    real_write = Path.write_text

    def write_text(self, *a, **kw):
        if self.name == "results.json":
            raise ENOSPC
        return real_write(self, *a, **kw)

    return mock.patch.object(Path, "write_text", write_text)


def scenario(tmp: Path, **settings: str) -> lab.Scenario:
    script = tmp / "99-test.sh"
    script.write_text("#!/bin/sh\n")
    return lab.Scenario("99-test", script, [], dict(settings))


class DiskFull(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="lab-harness-"))
        self.patches = [mock.patch.object(lab, "LAB", self.tmp)]
        for p in self.patches:
            p.start()
        self.kernel = images.Kernel("6.1", "linux-image-test", "6.1.0-test", self.tmp)

    def tearDown(self) -> None:
        for p in self.patches:
            p.stop()
        images.shutil.rmtree(self.tmp, ignore_errors=True)

    def test_a_full_disk_while_building_fails_the_scenario_with_its_reason(self) -> None:
        with mock.patch.object(lab, "prepare", side_effect=ENOSPC), \
                results_json_finds_the_disk_full():
            o = lab.run_scenario(scenario(self.tmp), self.kernel, keep=False)
        self.assertFalse(o.ok)
        self.assertTrue(any("No space left on device" in p for p in o.problems), o.problems)

    def test_an_outcome_is_never_a_pass_when_its_results_could_not_be_saved(self) -> None:
        ok = lab.BootResult(results={"a": "1"}, seconds=1.0)
        with mock.patch.object(lab, "prepare", return_value=None), \
                mock.patch.object(lab, "boot", return_value=ok), \
                results_json_finds_the_disk_full():
            o = lab.run_scenario(scenario(self.tmp), self.kernel, keep=False)
        self.assertFalse(o.ok)
        self.assertTrue(any("results.json" in p for p in o.problems), o.problems)

    def test_the_run_ends_with_its_summary_line_when_a_scenario_raises(self) -> None:
        sc = scenario(self.tmp, kernels="6.1")
        out, err = io.StringIO(), io.StringIO()
        with mock.patch.object(lab, "load_scenarios", return_value=[sc]), \
                mock.patch.object(lab, "kernel", return_value=self.kernel), \
                mock.patch.object(lab, "NESTCORE", self.tmp / "nestcore"), \
                mock.patch.object(lab, "run_scenario", side_effect=ENOSPC), \
                mock.patch.object(sys, "argv", ["lab.py"]), \
                redirect_stdout(out), redirect_stderr(err):
            (self.tmp / "nestcore").write_text("")
            (self.tmp / ".version").write_text("1\n")
            rc = lab.main()
        text = out.getvalue() + err.getvalue()
        self.assertEqual(rc, 1, text)
        self.assertIn("lab: 0 passed, 1 failed", text)
        self.assertIn("No space left on device", text)


class Retries(unittest.TestCase):
    """A run whose only problem is a boot that timed out is run again, at most TIMEOUT_RUNS
    times in all; any other failure is final at once."""

    def outcomes(self, *kinds: str) -> tuple[lab.Outcome, int]:
        calls = []

        def fake(sc, k, keep):
            kind = kinds[len(calls)]
            calls.append(kind)
            problems = {"pass": [], "timeout": [lab.boot_timed_out(1, 420)],
                        "hostcheck": ["host check 99-test.host.py timed out after 120 s"],
                        "wrong": ["x: expected = '1', got '0'"]}[kind]
            return lab.Outcome(sc.name, k.kver, not problems, 10.0, problems, [])

        with tempfile.TemporaryDirectory() as d, mock.patch.object(lab, "LAB", Path(d)), \
                mock.patch.object(lab, "run_guarded", side_effect=fake), \
                redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            k = images.Kernel("6.1", "p", "6.1.0-test", Path(d))
            o = lab.run_retrying(scenario(Path(d)), k, keep=False)
        return o, len(calls)

    def test_timeouts_are_run_again_up_to_the_limit(self) -> None:
        o, n = self.outcomes("timeout", "timeout", "pass")
        self.assertTrue(o.ok)
        self.assertEqual((n, o.timeouts, o.retried), (3, 2, 20.0))
        o, n = self.outcomes(*["timeout"] * lab.TIMEOUT_RUNS)
        self.assertFalse(o.ok)
        self.assertEqual(n, lab.TIMEOUT_RUNS)

    def test_a_wrong_result_is_never_run_again(self) -> None:
        o, n = self.outcomes("wrong", "pass")
        self.assertFalse(o.ok)
        self.assertEqual((n, o.timeouts), (1, 0))
        o, n = self.outcomes("timeout", "wrong", "pass")
        self.assertFalse(o.ok)
        self.assertEqual(n, 2)
        # A host check runs on the host, not in a TCG guest: its timeout is a verdict.
        o, n = self.outcomes("hostcheck", "pass")
        self.assertFalse(o.ok)
        self.assertEqual(n, 1)


class Debootstrap(unittest.TestCase):
    """debootstrap has no retry of its own: one failure is run again from an empty root, a
    second fails with the log."""

    def run_with(self, rcs: list[int]) -> tuple[list, Exception | None]:
        calls = []

        def fake(cmd, **kw):
            calls.append(cmd)
            root = Path(cmd[-2])
            (root / "usr/bin").mkdir(parents=True, exist_ok=True)
            (root / "partial").write_text("x")
            return subprocess.CompletedProcess(cmd, rcs[len(calls) - 1])

        err = None
        with tempfile.TemporaryDirectory() as d, mock.patch.object(images, "LAB", Path(d)), \
                mock.patch.object(images, "REPO", Path(d)), \
                mock.patch.object(images.subprocess, "run", side_effect=fake), \
                redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            try:
                images.debian_root()
            except images.LabError as e:
                err = e
        return calls, err

    def test_one_failure_is_run_again(self) -> None:
        calls, err = self.run_with([1, 0])
        self.assertIsNone(err)
        self.assertEqual(len(calls), 2)

    def test_two_failures_fail_with_the_reason(self) -> None:
        calls, err = self.run_with([1, 1])
        self.assertEqual(len(calls), 2)
        self.assertIn("debootstrap failed (exit 1)", str(err))


class Images(unittest.TestCase):
    def test_a_failed_build_leaves_no_stamp_that_says_the_image_is_current(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "x.cpio"
            inp = Path(d) / "input"
            inp.write_text("1")

            def good(o: Path) -> None:
                o.write_text("image")

            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()), \
                    mock.patch.object(images, "REPO", Path(d)):
                images.cached(out, [inp], good)
                inp.write_text("22")  # the inputs change; the rebuild fails half way

                def bad(o: Path) -> None:
                    o.write_text("half")
                    raise ENOSPC

                with self.assertRaises(OSError):
                    images.cached(out, [inp], bad)
                inp.write_text("1")  # back to the first inputs: the half image must not pass
                built = []
                images.cached(out, [inp], lambda o: (built.append(o), o.write_text("image")))
            self.assertEqual(len(built), 1, "a half-written image was taken as current")

    def test_an_image_tree_is_removed_once_packed(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            t = images.Tree(Path(d) / "build" / "l2")
            (t.path / "etc" / "x").write_text("x")
            out = t.cpio(Path(d) / "l2.cpio")
            self.assertGreater(out.stat().st_size, 0)
            self.assertFalse(t.path.exists(), "the staging tree stays on disk after cpio")


if __name__ == "__main__":
    unittest.main(verbosity=2)
