"""The recorded reference results (public and hidden cases) match what the reference does now,
and the public ones are exactly the check cells' groups."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from solution.checks import SPECS
from solution.checks.runner import load_recorded

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.meta


def test_recorded_cases_are_in_sync_with_the_reference():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "record_cases.py"), "--check"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("stage", sorted(SPECS))
def test_public_recorded_groups_are_the_check_cells_groups(stage):
    recorded = [(g.name, [c.id for c in g.cases]) for g, _ in load_recorded(stage)]
    assert recorded == [(g.name, [c.id for c in g.cases]) for g in SPECS[stage].groups()]


@pytest.mark.parametrize("stage", sorted(SPECS))
def test_hidden_cases_are_not_public_cases(stage):
    from solution.grading.hidden import HIDDEN

    def script(case):
        data = case.to_json()
        return json.dumps([data["make"], data["ops"]], sort_keys=True)

    hidden = load_recorded(stage, HIDDEN / f"stage{stage}.json.gz")
    public = {script(c) for g, _ in load_recorded(stage) for c in g.cases}
    cases = [c for g, _ in hidden for c in g.cases]
    assert cases and not [c.id for c in cases if script(c) in public]
    assert [g.name for g, _ in hidden] == [g.name for g, _ in load_recorded(stage)]
