"""Grade a candidate's ``exercises`` package, stage by stage.

For each stage it runs, in a child process with a per-test timeout:

1. the stage's tests (``pytest -m stageN --impl=exercises``), and
2. the stage's notebook under nbval, counting the cells tagged
   ``nbval-check-output`` (the check cells) that pass.

A stage's score is ``80 * tests passed / tests + 20 * check cells passed /
check cells``.  It prints a table and writes a JSON report.  A candidate's
crash or endless loop costs that test (or that stage, past the stage's time
limit); the grading run itself never crashes.

Usage::

    python tools/grade.py                          # grade ./exercises
    python tools/grade.py --exercises DIR          # grade DIR/exercises (a candidate's checkout)
    python tools/grade.py --report out.json --timeout 20 --stage 1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from make_exercises import EXERCISES  # noqa: E402  (the stage list has one home)

TEST_WEIGHT, CHECK_WEIGHT = 80, 20
CHECK_TAG = "nbval-check-output"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Outcome:
    name: str
    passed: bool
    message: str = ""
    tags: tuple[str, ...] = ()  # a notebook cell's tags


@dataclass
class Part:
    """The result of one child pytest run."""

    outcomes: list[Outcome] = field(default_factory=list)
    status: str = "ok"  # ok | timeout | error
    detail: str = ""

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def total(self) -> int:
        return len(self.outcomes)


@dataclass
class StageGrade:
    stage: int
    notebook: str
    tests: Part
    checks: Part
    seconds: float

    @property
    def score(self) -> float:
        tests = self.tests.passed / self.tests.total if self.tests.total else 0.0
        checks = self.checks.passed / self.checks.total if self.checks.total else 0.0
        return round(TEST_WEIGHT * tests + CHECK_WEIGHT * checks, 1)


def _pytest() -> list[str]:
    """pytest in this environment; ``LB_EXERCISES_PATH`` makes it import the candidate's package."""
    return [sys.executable, "-m", "pytest"]


def run_part(
    args: list[str], *, exercises_parent: Path, per_test_timeout: int, stage_timeout: int, only_tag: str | None = None
) -> Part:
    """Run pytest with ``args`` against the candidate's package; read its JUnit report."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        env = dict(os.environ, LB_IMPL="exercises", LB_EXERCISES_PATH=str(exercises_parent), LB_TEST_TIMEOUT=str(per_test_timeout))
        env.pop("MPLBACKEND", None)
        command = _pytest() + [
            "-q", "-p", "no:cacheprovider", "--impl=exercises",
            f"--junitxml={junit}", "-o", "junit_family=xunit2", *args,
        ]
        try:
            proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=stage_timeout)
        except subprocess.TimeoutExpired:
            return Part(status="timeout", detail=f"stopped after {stage_timeout} s")
        if not junit.exists():
            return Part(status="error", detail=(proc.stdout + proc.stderr)[-2000:])
        return Part(outcomes=_read_junit(junit, only_tag))


def _read_junit(path: Path, only_tag: str | None) -> list[Outcome]:
    outcomes = []
    for case in ET.parse(path).getroot().iter("testcase"):
        tags = tuple(t for p in case.iter("property") if p.get("name") == "tags" for t in p.get("value", "").split(",") if t)
        if only_tag is not None and only_tag not in tags:
            continue
        if case.find("skipped") is not None:
            continue
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        text = "" if problem is None else _ANSI.sub("", problem.get("message") or problem.text or "").strip()
        message = text.splitlines()[0][:300] if text else ""
        outcomes.append(Outcome(f"{case.get('classname')}::{case.get('name')}", problem is None, message, tags))
    return outcomes


def grade(
    exercises_parent: Path, stages: list[int] | None = None, per_test_timeout: int = 30, stage_timeout: int = 900
) -> list[StageGrade]:
    """Grade every stage in ``EXERCISES`` (or only ``stages``) of ``exercises_parent/exercises``."""
    results = []
    for exercise in EXERCISES:
        if stages and exercise.stage not in stages:
            continue
        started = time.monotonic()
        def part(args: list[str], only_tag: str | None = None) -> Part:
            return run_part(
                args, exercises_parent=exercises_parent, per_test_timeout=per_test_timeout,
                stage_timeout=stage_timeout, only_tag=only_tag,
            )

        tests = part(["-m", f"stage{exercise.stage}", "tests"])
        checks = part(
            ["--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={per_test_timeout}", exercise.notebook],
            only_tag=CHECK_TAG,
        )
        results.append(StageGrade(exercise.stage, exercise.notebook, tests, checks, round(time.monotonic() - started, 1)))
    return results


def table(results: list[StageGrade]) -> str:
    lines = [f"{'stage':<6}{'tests':>12}{'checks':>10}{'score':>8}  notes", "-" * 50]
    for r in results:
        notes = "; ".join(f"{what} {p.status}: {p.detail[:60]}" for what, p in (("tests", r.tests), ("checks", r.checks)) if p.status != "ok")
        lines.append(f"{r.stage:<6}{r.tests.passed:>6}/{r.tests.total:<5}{r.checks.passed:>4}/{r.checks.total:<5}{r.score:>8.1f}  {notes}")
    total = round(sum(r.score for r in results) / len(results), 1) if results else 0.0
    lines += ["-" * 50, f"{'total':<33}{total:>5.1f}  (of 100; tests {TEST_WEIGHT}%, check cells {CHECK_WEIGHT}% per stage)"]
    return "\n".join(lines)


def report(results: list[StageGrade], exercises_parent: Path) -> dict:
    return {
        "exercises": str(exercises_parent / "exercises"),
        "weights": {"tests": TEST_WEIGHT, "check_cells": CHECK_WEIGHT},
        "total_score": round(sum(r.score for r in results) / len(results), 1) if results else 0.0,
        "stages": [
            {
                "stage": r.stage,
                "notebook": r.notebook,
                "score": r.score,
                "seconds": r.seconds,
                "tests": {"passed": r.tests.passed, "total": r.tests.total, "status": r.tests.status, "detail": r.tests.detail,
                          "outcomes": [asdict(o) for o in r.tests.outcomes]},
                "check_cells": {"passed": r.checks.passed, "total": r.checks.total, "status": r.checks.status, "detail": r.checks.detail,
                                "outcomes": [asdict(o) for o in r.checks.outcomes]},
            }
            for r in results
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exercises", type=Path, default=ROOT, help="folder that contains the exercises/ package (default: this repository)")
    parser.add_argument("--report", type=Path, default=ROOT / "reports" / "grade.json", help="where to write the JSON report")
    parser.add_argument("--timeout", type=int, default=30, help="seconds allowed per test and per notebook cell")
    parser.add_argument("--stage-timeout", type=int, default=900, help="seconds allowed for each part (tests, notebook) of a stage")
    parser.add_argument("--stage", type=int, action="append", help="grade only this stage (repeatable)")
    args = parser.parse_args(argv)
    parent = args.exercises.resolve()
    if not (parent / "exercises" / "__init__.py").exists():
        parser.error(f"{parent / 'exercises'} is not a package (no __init__.py)")
    results = grade(parent, args.stage, args.timeout, args.stage_timeout)
    print(table(results))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report(results, parent), indent=2) + "\n")
    print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
