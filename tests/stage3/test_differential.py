"""Stage 3: each strategy against the reference's under the same seeds and calls.

Both sides are ``solution.core.routing.Router``; only the strategy differs.  Seeds
100+ differ from the notebook check's seeds 0-3.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from solution.checks.stage3 import STRATEGY_CASES, compare_strategy, random_ops3

pytestmark = pytest.mark.stage3

IDS = [f"{c}-{'-'.join(map(str, o.values()))}" for _, c, o in STRATEGY_CASES]


@pytest.mark.parametrize("seed", range(100, 106))
@pytest.mark.parametrize("case", STRATEGY_CASES, ids=IDS)
def test_seeded_sequences_match_reference(impl, case, seed):
    _, class_name, options = case
    mismatch = compare_strategy(impl, class_name, options, random_ops3(seed, 300))
    assert mismatch is None, mismatch.describe()


@pytest.mark.parametrize("case", STRATEGY_CASES, ids=IDS)
@given(seed=st.integers(0, 2**32 - 1), strategy_seed=st.integers(0, 2**16))
def test_hypothesis_seeds_match_reference(impl, case, seed, strategy_seed):
    _, class_name, options = case
    options = dict(options, seed=strategy_seed) if "seed" in options else options
    mismatch = compare_strategy(impl, class_name, options, random_ops3(seed, 120))
    assert mismatch is None, mismatch.describe()
