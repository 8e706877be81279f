"""The grader on fake submissions: each gets its verdict, the grader never crashes, and no fake moves another stage.

One grader run per fake (``tools/grade.py`` as a command, 1 s per case, on the
stages the fake's expectation names: a rule edit in one stage is graded on
that stage alone; the stubs and the reference on every stage; a sandbox or
security fake in stage 1 also on stage 2 (the reference, which must still
score 100) and on the newest stage (the stubs, which must still score 0), so
a fake that leaks into another stage, to break it or to make it pass,
shows), checked
against the fake's expected verdict in ``tests/meta/fakes.py``:
stubs 0, the reference 100, a swapped tie-break loses the groups that depend
on it, an endless loop times out only where it loops, prints and huge
allocations never reach the grader, an exit or a syntax error at import costs
its stage only, a re-export of the reference scores 0 for provenance, and
attempts to patch the checks, edit the repository, leave a process behind,
kill the grader or forge its results change nothing; each stage's rule fakes
(stage 6: reservation rounded down or ignored by routing, a constant
Retry-After, buckets charged on a refusal, idle tenants never forgotten,
unbounded or oldest-first preemption, a fleet or tenant scan per call; stage 7:
``fakes.STAGE7_EDITS``, such as a surge rounded down, a two-sided error test
or a split by request id, and a split that lists the fleet per decision; stage 8:
``fakes.STAGE8_EDITS``, such as equal jitter, no cap, ``max(Retry-After, jitter)`` or a retry
after streamed tokens, and a retrier that scans its active requests per decision) lose
exactly the groups that teach the rule broken.  ``-k stage8`` runs one stage's.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from tests.meta import fakes

pytestmark = pytest.mark.meta

FAKES = fakes.fakes()


def _id(fake: fakes.Fake) -> str:
    """``stageN-<name>`` for a fake graded on one stage (so ``-k stage6`` picks a stage's fakes), ``all-<name>`` otherwise."""
    where = f"stage{next(iter(fake.expect))}" if len(fake.expect) == 1 else "all"
    return f"{where}-{fake.name.replace(' ', '-')}"


@pytest.mark.slow
@pytest.mark.parametrize("fake", FAKES, ids=[_id(f) for f in FAKES])
def test_each_fake_gets_its_verdict(fake, tmp_path):
    run, facts, problems = fakes.run_fake(fake, tmp_path)
    scores = {s["stage"]: s["score"] for s in run.report["stages"]} if run.report else {}
    why = {s["stage"]: fakes.first_reason(s)[:300] for s in run.report["stages"]} if run.report else {}
    assert not problems, f"{fake.name} ({fake.what}): scores {scores}\n" + "\n".join(problems) + f"\nreasons: {why}\n" + run.stdout[-3000:]


def test_fake_names_are_unique():
    names = [f.name for f in FAKES]
    assert len(names) == len(set(names))


def test_grader_rejects_a_folder_without_exercises(tmp_path):
    proc = subprocess.run([sys.executable, str(fakes.ROOT / "tools" / "grade.py"), "--exercises", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "exercises" in proc.stderr and "not a folder" in proc.stderr


def test_one_grader_run_on_a_fake_in_the_fast_suite(tmp_path):
    """``make test-fast`` grades one fake too (the slow test above grades them all): a re-export on stage 1 alone scores 0."""
    fake = next(f for f in FAKES if f.name == "re-export")
    alone = dataclasses.replace(fake, expect={1: fake.expect[1]})
    run, facts, problems = fakes.run_fake(alone, tmp_path)
    assert [s["stage"] for s in run.report["stages"]] == [1]
    assert not problems, "\n".join(problems) + run.stdout[-2000:]


def test_time_limits_count_cpu_seconds_not_the_clock():
    """A working case is stopped by its CPU time, however long it waits for a core; a waiting one by the clock."""
    from solution.grading.sandbox import IDLE_SHARE, WALL_FACTOR, over_limit

    limit = 5.0
    assert not over_limit(limit, wall=3 * limit, cpu=0.9 * limit)  # starved on a busy machine: still within its CPU
    assert over_limit(limit, wall=1.2 * limit, cpu=1.01 * limit)  # worked past its limit
    assert over_limit(limit, wall=1.01 * limit, cpu=0.5 * IDLE_SHARE * limit)  # asleep or blocked: the clock decides
    assert not over_limit(limit, wall=0.99 * limit, cpu=0.0)
    assert over_limit(limit, wall=WALL_FACTOR * limit + 0.1, cpu=0.5 * limit)  # the clock's backstop
    assert over_limit(limit, wall=1.01 * limit, cpu=None) and not over_limit(limit, wall=0.99 * limit, cpu=None)  # no /proc


def test_cpu_seconds_reads_a_process_cpu_time():
    import os
    import time

    from solution.grading.sandbox import cpu_seconds

    before = cpu_seconds(os.getpid())
    assert isinstance(before, float)
    start = time.process_time()
    while time.process_time() - start < 0.1:  # work for 0.1 s of CPU (not of the clock)
        pass
    assert cpu_seconds(os.getpid()) >= before + 0.05
    assert cpu_seconds(2**22 + 12345) is None  # above Linux's largest pid: no such process
