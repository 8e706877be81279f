"""Goodput: completed requests per second that met a TTFT and a TPOT bound (notebook 00 defines it)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.sim import scenarios, simulate
from tests.sim.test_sim_results import hand_made

pytestmark = pytest.mark.sim


def test_meets_slo_by_hand() -> None:
    res = hand_made()  # ttft [0.5, 0.5, -, -], tpot [0.5, 0.5, -, -]; only the first two completed
    assert res.meets_slo(0.5, 0.5).tolist() == [True, True, False, False]
    assert res.meets_slo(0.4, 1.0).tolist() == [False, False, False, False]  # TTFT too slow
    assert res.meets_slo(1.0, 0.49).tolist() == [False, False, False, False]  # TPOT too slow
    # the window runs from the first arrival (0) to the last finish (4)
    assert res.goodput(0.5, 0.5) == pytest.approx(2 / 4.0)
    assert res.goodput(0.5, 0.5, warmup=1.0) == pytest.approx(1 / 2.0)  # arrivals 1..3, finishes up to 3


@pytest.mark.parametrize("ttft, tpot", [(0, 1.0), (1.0, -1), (float("nan"), 1.0), (True, 1.0), ("1", 1.0)])
def test_bad_bounds_are_refused(ttft, tpot) -> None:
    with pytest.raises(ValueError, match="SLO"):
        hand_made().meets_slo(ttft, tpot)


def test_a_warmup_past_every_arrival_is_refused() -> None:
    with pytest.raises(ValueError, match="warm-up"):
        hand_made().goodput(1.0, 1.0, warmup=10.0)


@pytest.fixture(scope="module")
def run():
    return simulate(scenarios.steady(requests=500, load=0.9), seed=3)


@settings(max_examples=40, deadline=None)
@given(ttft=st.floats(1e-4, 100.0), tpot=st.floats(1e-5, 10.0), looser=st.floats(1.0, 10.0))
def test_goodput_is_at_most_throughput_and_grows_with_looser_bounds(run, ttft: float, tpot: float, looser: float) -> None:
    good = run.goodput(ttft, tpot)
    assert 0.0 <= good <= run.goodput(ttft * looser, tpot * looser) <= run.summary().throughput_rps * (1 + 1e-12)


def test_unbounded_goodput_is_throughput(run) -> None:
    assert run.goodput(math.inf, math.inf) == pytest.approx(run.summary().throughput_rps)
    assert np.count_nonzero(run.meets_slo(math.inf, math.inf)) == run.summary().completed
