"""Workloads: arrival processes, token distributions, tiers, sessions, estimates."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from solution.sim import Bimodal, EstimateError, Fixed, LogNormal, OnOff, Pareto, Poisson, Sessions, Tier, Workload

pytestmark = pytest.mark.sim


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_poisson_gaps_are_exponential() -> None:
    times = Poisson(rate=4.0).times(rng(), 100_000)
    gaps = np.diff(times)
    assert (gaps >= 0).all()
    assert gaps.mean() == pytest.approx(0.25, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.03)  # coefficient of variation 1


def test_on_off_keeps_its_mean_rate_but_is_bursty() -> None:
    process = OnOff(rate_on=4.0, rate_off=0.5, mean_on=5.0, mean_off=15.0).with_mean_rate(2.0)
    assert process.mean_rate == pytest.approx(2.0)
    times = process.times(rng(1), 200_000)
    assert (np.diff(times) >= 0).all() and len(times) == 200_000
    assert len(times) / times[-1] == pytest.approx(2.0, rel=0.05)
    counts = np.bincount(times.astype(int))  # arrivals per second
    assert counts.var() / counts.mean() > 3.0  # index of dispersion: 1 for Poisson


@given(st.integers(1, 5000), st.integers(0, 10))
def test_token_distributions_stay_in_range(n: int, seed: int) -> None:
    for dist, low, high in [(Fixed(7), 7, 7), (LogNormal(500, 1.2, low=2, high=4000), 2, 4000),
                            (Pareto(100, 1.2, high=9000), 100, 9000),
                            (Bimodal(Fixed(10), Fixed(1000), 0.3), 10, 1000)]:  # fmt: skip
        sample = dist.sample(rng(seed), n)
        assert sample.dtype == np.int64 and len(sample) == n
        assert sample.min() >= low and sample.max() <= high


def test_token_distributions_have_their_shape() -> None:
    assert np.median(LogNormal(500, 1.0).sample(rng(), 50_000)) == pytest.approx(500, rel=0.03)
    assert (Bimodal(Fixed(10), Fixed(1000), 0.3).sample(rng(), 50_000) == 1000).mean() == pytest.approx(0.3, abs=0.01)
    heavy = np.sort(Pareto(100, 1.2).sample(rng(), 50_000))[::-1]
    assert heavy[:500].sum() > 0.1 * heavy.sum()  # the top 1% carry over a tenth of the tokens


def test_tiers_take_their_shares() -> None:
    tiers = (Tier("a", 3.0, Fixed(1), Fixed(1)), Tier("b", 1.0, Fixed(2), Fixed(2)))
    req = Workload(40_000, tiers=tiers).generate(rng(), rng(1))
    assert req.tier_names == ("a", "b")
    assert (req.tier == 0).mean() == pytest.approx(0.75, abs=0.01)
    assert (req.prompt_tokens == req.tier + 1).all()


@given(st.integers(1, 300), st.floats(1.0, 6.0), st.integers(0, 100))
def test_sessions_have_exactly_the_requested_number_of_requests(n: int, turns: float, seed: int) -> None:
    req = Workload(n, sessions=Sessions(mean_turns=turns, max_context=5000)).generate(rng(seed), rng(seed + 1))
    assert len(req) == n
    first = np.r_[True, req.session[1:] != req.session[:-1]]
    assert (np.isnan(req.arrival) == ~first).all()  # later turns are sent while simulating
    assert (np.diff(req.session) >= 0).all() and (req.prompt_tokens <= 5000).all()
    nxt = req.next_turn()
    assert ((nxt == -1) | (req.session[np.maximum(nxt, 0)] == req.session)).all()
    assert (np.diff(req.arrival[first]) >= 0).all()


def test_workloads_without_sessions_have_no_next_turn() -> None:
    req = Workload(10).generate(rng(), rng())
    assert (req.next_turn() == -1).all() and (req.session == -1).all()


def test_the_estimate_error_is_log_normal_on_the_output() -> None:
    prompt, output = np.full(20_000, 100), np.full(20_000, 200)
    assert (EstimateError().apply(prompt, output, rng()) == 300).all()
    guessed = EstimateError(sigma=0.5, bias=np.log(2.0)).apply(prompt, output, rng()) - 100
    assert np.median(guessed) == pytest.approx(400, rel=0.03)
    assert np.log(guessed).std() == pytest.approx(0.5, rel=0.05)
    assert (EstimateError(sigma=3.0).apply(np.zeros(100, int), np.zeros(100, int), rng()) >= 1).all()


@pytest.mark.parametrize(("make", "error"), [
    (lambda: Poisson(0.0), ValueError), (lambda: Poisson(True), TypeError), (lambda: LogNormal(-1), ValueError),
    (lambda: Fixed(-1), ValueError), (lambda: Bimodal(Fixed(1), Fixed(2), 1.5), ValueError),
    (lambda: Pareto(0), ValueError), (lambda: Tier(""), ValueError), (lambda: Sessions(mean_turns=0.5), ValueError),
    (lambda: Workload(0), ValueError), (lambda: Workload(5, tiers=()), ValueError),
    (lambda: Workload(5, tiers=(Tier("a"), Tier("a"))), ValueError), (lambda: EstimateError(sigma=-1), ValueError),
    (lambda: OnOff(rate_on=1.0, mean_off=0.0), ValueError),
])  # fmt: skip
def test_bad_workload_arguments_are_rejected(make, error: type) -> None:
    with pytest.raises(error):
        make()
