"""Stage 4: the implementation against the reference on seeded fault timetables (call for call, snapshot for snapshot).

Seeds 100+ differ from the check cell's seeds 0-11 and the grader's hidden 1000-1005.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import solution
from solution.checks.common import compare_with_reference, minimize
from solution.checks.stage4 import HealthHarness, random_ops4

pytestmark = pytest.mark.stage4


def differs(impl, seed: int, n: int):
    make, ops = random_ops4(seed, n)
    mine, ref = (lambda: HealthHarness(impl, make)), (lambda: HealthHarness(solution, make))
    found = compare_with_reference(mine, ops, make_reference=ref, snapshot="snapshot")
    return None if found is None else minimize(mine, ops, found, make_reference=ref, snapshot="snapshot")


@pytest.mark.parametrize("seed", range(100, 112))
def test_seeded_timetables_match_reference(impl, seed):
    mismatch = differs(impl, seed, 300)
    assert mismatch is None, mismatch.describe()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_hypothesis_timetables_match_reference(impl, seed):
    mismatch = differs(impl, seed, 120)
    assert mismatch is None, mismatch.describe()
