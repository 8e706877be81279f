"""Strict priority against queueing theory: Cobham's formula (non-preemptive) and preemptive-resume priority.

The formulas are checked against identities first (work conservation, the
M/M/1 and M/M/c special cases), then classic-mode simulations against
them: per class, a 99% t interval over 6 seeds must contain the formula's
value.  Points: one server at rho = 0.8 split evenly and 0.9 split 1:2
(premium the smaller), four servers at 3.2 erlangs split 1.2 / 2.0.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.sim.theory import mmc_mean_wait, preemptive_mean_times, priority_mean_waits

pytestmark = pytest.mark.sim


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 8), high=st.floats(0.05, 0.9), split=st.floats(0.05, 0.95))
def test_cobham_conserves_work_and_orders_the_classes(c: int, high: float, split: float) -> None:
    """The load-weighted mean of the class waits is the FIFO wait (Kleinrock's conservation law); the high class waits less."""
    total = high * c
    loads = [total * split, total * (1 - split)]
    waits = priority_mean_waits(c, loads)
    assert math.fsum(a * w for a, w in zip(loads, waits)) / total == pytest.approx(mmc_mean_wait(c, total), rel=1e-9)
    assert waits[0] < waits[1]


def test_cobham_special_cases() -> None:
    assert priority_mean_waits(1, [0.5]) == pytest.approx([mmc_mean_wait(1, 0.5)])  # one class: FIFO
    # M/M/1, rho = 0.8 split evenly: W0 = 0.8, W1 = 0.8 / 0.6, W2 = 0.8 / (0.6 * 0.2)
    assert priority_mean_waits(1, [0.4, 0.4]) == pytest.approx([0.8 / 0.6, 0.8 / (0.6 * 0.2)])


def test_preemptive_top_class_is_alone_and_times_conserve() -> None:
    """The top class is an M/M/c at its own load; on one server the load-weighted times are the FIFO M/M/1's."""
    assert preemptive_mean_times([0.3, 0.6]) [0] == pytest.approx(1 / (1 - 0.3))
    assert preemptive_mean_times([1.2, 2.0], 4) == pytest.approx([1 + mmc_mean_wait(4, 1.2)])
    times = preemptive_mean_times([0.3, 0.3, 0.3])
    assert math.fsum(times) / 3 == pytest.approx(1 / (1 - 0.9))
    assert times == sorted(times)


@pytest.mark.parametrize("bad", [[], [0.6, 0.5], [-0.1, 0.2], [float("nan")]])
def test_priority_formulas_refuse_bad_loads(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        priority_mean_waits(1, bad)
    with pytest.raises(ValueError):
        preemptive_mean_times(bad)
    with pytest.raises(TypeError):
        priority_mean_waits(1, "0.5")  # type: ignore[arg-type]


POINTS = [(1, (0.4, 0.4)), (1, (0.3, 0.6)), (4, (1.2, 2.0))]


def test_non_preemptive_priority_matches_cobham() -> None:
    """The stage-2 queue ordered by class, classic mode: each class's mean wait within a 99% interval over 6 seeds."""
    from solution.sim.tiersrace import priority_points

    points = priority_points([POINTS[0], POINTS[2]], seeds=range(6), requests=12_000, workers=1)
    assert len(points) == 4
    for p in points:
        assert p.covered, p
        assert p.high - p.low < 0.6 * p.theory, f"interval too wide to mean anything: {p}"


@pytest.mark.slow
def test_non_preemptive_priority_matches_cobham_at_rho_0_9() -> None:
    """One server at rho = 0.9, the low class carrying two thirds: its wait (12.9 service times) is the noisy one."""
    from solution.sim.tiersrace import priority_points

    for p in priority_points([POINTS[1]], seeds=range(6), requests=20_000, workers=1):
        assert p.covered, p


def test_preemptive_top_class_sees_an_mm1_at_its_own_load() -> None:
    """The request path with a Preemptor (no bound, free resume), one server at rho = 0.8 split evenly: 99% intervals, 6 seeds."""
    pytest.importorskip("solution.tiers")
    from solution.sim.tiersrace import priority_points

    points = priority_points([POINTS[0]], preemptive=True, seeds=range(6), requests=4_000, workers=1)
    assert [p.cls for p in points] == [0, 1]
    for p in points:
        assert p.covered, p
    assert points[0].theory == pytest.approx(1 / (1 - 0.4))


@pytest.mark.slow
def test_preemptive_resume_priority_matches_theory() -> None:
    """The request path with a Preemptor (no bound, free resume), classic mode: time in system per class within a 99% interval."""
    pytest.importorskip("solution.tiers")
    from solution.sim.tiersrace import priority_points

    points = priority_points([(1, (0.4, 0.4)), (1, (0.3, 0.6)), (4, (1.2, 2.0))], preemptive=True, seeds=range(6),
                             requests=10_000, workers=1)  # fmt: skip
    assert len(points) == 5  # two classes on one server, the top class only on four
    for p in points:
        assert p.covered, p
