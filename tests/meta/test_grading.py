"""The grader: stubs score 0 and fail every stage's tests with NotImplementedError;
the reference copied into exercises/ scores full marks; a hanging candidate is
reported, not fatal."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from make_exercises import EXERCISES  # noqa: E402

pytestmark = [pytest.mark.meta, pytest.mark.slow]


def candidate(tmp_path: Path, balancer_source: str | None = None) -> Path:
    """A candidate checkout: freshly generated stubs, optionally with another balancer.py."""
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_exercises.py"), "--out", str(tmp_path)], check=True, capture_output=True)
    if balancer_source is not None:
        (tmp_path / "exercises" / "balancer.py").write_text(balancer_source)
    return tmp_path


def grade(parent: Path, *extra: str) -> dict:
    report = parent / "grade.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "grade.py"), "--exercises", str(parent), "--report", str(report), *extra],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "total" in proc.stdout
    return json.loads(report.read_text())


def test_untouched_stubs_score_zero_and_fail_only_with_not_implemented(tmp_path):
    result = grade(candidate(tmp_path), "--stage", "1")
    stage = result["stages"][0]
    assert stage["score"] == 0
    assert stage["tests"]["total"] >= 50 and stage["tests"]["passed"] == 0
    not_stubbed = [o for o in stage["tests"]["outcomes"] if "NotImplementedError" not in o["message"]]
    assert not not_stubbed, f"stage-1 tests that fail for another reason than the stub: {not_stubbed[:3]}"
    assert stage["check_cells"]["total"] >= 1 and stage["check_cells"]["passed"] == 0


def test_reference_copied_into_exercises_scores_full_marks(tmp_path):
    result = grade(candidate(tmp_path, (ROOT / "solution" / "balancer.py").read_text()), "--stage", "1")
    stage = result["stages"][0]
    failed = [o for o in stage["tests"]["outcomes"] + stage["check_cells"]["outcomes"] if not o["passed"]]
    assert not failed, failed[:3]
    assert stage["score"] == 100 and result["total_score"] == 100


def test_a_hanging_candidate_is_reported_not_fatal(tmp_path):
    hanging = (ROOT / "solution" / "balancer.py").read_text().replace(
        "        self._flush_dirty()\n", "        while estimated_tokens == 4097:\n            pass\n        self._flush_dirty()\n", 1
    )
    assert hanging != (ROOT / "solution" / "balancer.py").read_text()
    result = grade(candidate(tmp_path, hanging), "--stage", "1", "--timeout", "1", "--stage-timeout", "240")
    stage = result["stages"][0]
    assert 0 < stage["score"] < 100
    timed_out = [o for o in stage["tests"]["outcomes"] if not o["passed"] and "Timeout" in o["message"]]
    assert timed_out, "the endless loop should show up as a per-test timeout"


def test_grader_rejects_a_folder_without_exercises(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "grade.py"), "--exercises", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "not a package" in proc.stderr
    shutil.rmtree(tmp_path)


@pytest.mark.parametrize("exercise", [e for e in EXERCISES if e.stage > 1], ids=lambda e: f"stage{e.stage}")
def test_stubs_score_zero_and_the_reference_scores_full_marks(tmp_path, exercise):
    """Stages after the first: untouched stubs fail every test with NotImplementedError; the reference scores 100."""
    stage_arg = ("--stage", str(exercise.stage))
    stubs = grade(candidate(tmp_path / "stubs"), *stage_arg)["stages"][0]
    assert stubs["stage"] == exercise.stage and stubs["score"] == 0
    assert stubs["tests"]["total"] >= 50 and stubs["tests"]["passed"] == 0
    not_stubbed = [o for o in stubs["tests"]["outcomes"] if "NotImplementedError" not in o["message"]]
    assert not not_stubbed, f"stage-{exercise.stage} tests that fail for another reason than the stub: {not_stubbed[:3]}"
    assert stubs["check_cells"]["total"] >= 1 and stubs["check_cells"]["passed"] == 0
    solved = candidate(tmp_path / "solved")
    module = f"{exercise.module}.py"
    (solved / "exercises" / module).write_text((ROOT / "solution" / module).read_text())
    stage = grade(solved, *stage_arg)["stages"][0]
    failed = [o for o in stage["tests"]["outcomes"] + stage["check_cells"]["outcomes"] if not o["passed"]]
    assert not failed, failed[:3]
    assert stage["score"] == 100
