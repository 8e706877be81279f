"""Run against the untouched stubs, exactly the check cells fail: every other cell
(prose demos, figures, widgets) still runs, so a candidate sees the whole notebook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from grade import CHECK_TAG, run_part  # noqa: E402
from make_exercises import EXERCISES  # noqa: E402

pytestmark = [pytest.mark.meta, pytest.mark.slow]


def test_on_stubs_exactly_the_check_cells_fail(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_exercises.py"), "--out", str(tmp_path)], check=True, capture_output=True)
    notebooks = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("*.ipynb"))
    part = run_part(["--nbval-lax", "--nbval-current-env", *notebooks], exercises_parent=tmp_path, per_test_timeout=120, stage_timeout=600)
    assert part.status == "ok", part.detail
    failed = [o for o in part.outcomes if not o.passed]
    not_checks = [f"{o.name}: {o.message}" for o in failed if CHECK_TAG not in o.tags]
    assert not not_checks, f"cells other than check cells fail on the stubs: {not_checks}"
    for exercise in EXERCISES:
        stem = Path(exercise.notebook).stem
        checks = [o for o in part.outcomes if stem in o.name and CHECK_TAG in o.tags]
        assert checks, f"{exercise.notebook} has no check cell"
        assert all(not o.passed for o in checks), f"a check cell of {exercise.notebook} passes on the untouched stubs"
