"""Every public case of the check cells, one test each: the implementation under test
against the reference's recorded steps (``solution/checks/recorded/``).

These need no reference at run time, so they run the same in a candidate's
bundle; ``--impl=exercises`` runs them on the candidate's package.  The
grader runs these cases too, and hidden ones, in a sandbox.
"""

from __future__ import annotations

import pytest

from solution.checks import SPECS
from solution.checks.runner import load_recorded
from solution.checks.script import first_difference, run_case

CASES = [
    pytest.param(stage, case, expect, id=f"{case.id}-{group.name[:40]}", marks=getattr(pytest.mark, f"stage{stage}"))
    for stage in sorted(SPECS)
    for group, expects in load_recorded(stage)
    for case, expect in zip(group.cases, expects)
]


@pytest.mark.parametrize(("stage", "case", "expect"), CASES)
def test_public_case_matches_the_reference(impl, stage, case, expect):
    harness = SPECS[stage].harness
    mismatch = first_difference(case, run_case(harness, impl, case), expect, harness.snapshot)
    assert mismatch is None, mismatch.describe()
