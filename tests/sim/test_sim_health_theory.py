"""Stage 4's formulas (solution.sim.theory): detection time of a crash, and the run-length formula of false ejections."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.sim.theory import (
    detection_time_interval,
    detection_time_mean,
    expected_probes_to_run,
    false_ejection_mean_time,
)

pytestmark = pytest.mark.sim


def absorbing_mean(p: float, n: int) -> float:
    """Mean probes to n consecutive losses, by solving the Markov chain's linear system (states: current run 0..n-1)."""
    a = np.eye(n)
    for k in range(n):
        if k + 1 < n:
            a[k, k + 1] -= p  # lost: the run grows
        a[k, 0] -= 1 - p  # answered: the run restarts
    return float(np.linalg.solve(a, np.ones(n))[0])


@given(st.floats(0.05, 0.95), st.integers(1, 6))
@settings(max_examples=60, deadline=None)
def test_the_run_length_formula_solves_the_markov_chain(p: float, n: int) -> None:
    # The solve's relative error is about cond(a) * 2e-16, and cond(a) grows as p**-n (6.4e7 at p = 0.05, n = 6):
    # rel=1e-9 failed there; 1e-6 leaves a factor of 50 and still catches a wrong formula (test_known_values pins small cases).
    assert expected_probes_to_run(p, n) == pytest.approx(absorbing_mean(p, n), rel=1e-6)


def test_the_run_length_formula_matches_a_direct_count() -> None:
    rng = np.random.default_rng(0)
    p, n, counts = 0.4, 2, []
    for _ in range(20_000):
        run = k = 0
        while run < n:
            k += 1
            run = run + 1 if rng.random() < p else 0
        counts.append(k)
    mean, sd = np.mean(counts), np.std(counts) / np.sqrt(len(counts))
    assert abs(mean - expected_probes_to_run(p, n)) < 4 * sd  # 8.75 probes


def test_known_values() -> None:
    assert expected_probes_to_run(0.5, 1) == pytest.approx(2.0)  # geometric
    assert expected_probes_to_run(0.5, 3) == pytest.approx(14.0)
    assert detection_time_interval(5.0, 1.0, 3) == (11.0, 16.0)
    low, high = detection_time_interval(5.0, 1.0, 3, jitter=0.2)
    assert (low, high) == pytest.approx((9.0, 19.0))
    assert detection_time_mean(5.0, 1.0, 3) == pytest.approx(13.5)
    assert low < detection_time_mean(5.0, 1.0, 3, jitter=0.2) < high
    assert false_ejection_mean_time(0.5, 5.0, 1.0, 3) == pytest.approx(2.5 + 13 * 5.0 + 1.0)


def test_the_detection_interval_bounds_a_direct_simulation_of_the_probe_model() -> None:
    """Probes with uniform jittered gaps, a crash uniform in time: every detection lies in the interval; the mean is the formula's."""
    rng = np.random.default_rng(1)
    interval, timeout, n, jitter = 5.0, 1.0, 3, 0.3
    low, high = detection_time_interval(interval, timeout, n, jitter)
    samples = []
    for _ in range(20_000):
        t = rng.uniform(0, interval)
        probes = [t]
        while probes[-1] < 200:
            probes.append(probes[-1] + interval * (1 + jitter * (2 * rng.random() - 1)))
        crash = rng.uniform(50, 100)
        failing = [s for s in probes if s >= crash]
        samples.append(failing[n - 1] + timeout - crash)
    samples = np.array(samples)
    assert samples.min() >= low and samples.max() < high
    assert abs(samples.mean() - detection_time_mean(interval, timeout, n, jitter)) < 4 * samples.std() / np.sqrt(len(samples))


@pytest.mark.parametrize("call", [
    lambda: expected_probes_to_run(1.0, 3), lambda: expected_probes_to_run(0.0, 3), lambda: expected_probes_to_run(0.5, 0),
    lambda: detection_time_interval(0.0, 1.0, 3), lambda: detection_time_interval(5.0, 1.0, 0),
    lambda: detection_time_interval(5.0, 1.0, 3, jitter=1.0),
])  # fmt: skip
def test_bad_arguments_raise_value_error(call) -> None:
    with pytest.raises(ValueError):
        call()


def test_bad_types_raise_type_error() -> None:
    with pytest.raises(TypeError):
        expected_probes_to_run("0.5", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        detection_time_interval(5.0, 1.0, 2.5)  # type: ignore[arg-type]
