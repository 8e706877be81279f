"""The simulator against queueing theory, with confidence intervals from independent seeds.

Method (the same for every check here):

* K independent replications (seeds 0..K-1 spawn independent numpy
  streams), each of N requests; requests arriving in the first 10 mean
  service times are dropped (the system starts empty; after 10 service times
  the start is forgotten to within e^-10).
* Each replication gives one number (its fraction of lost requests, or its
  mean time in system).  These K numbers are independent and, being averages
  over tens of thousands of requests, close to normal; so
  ``mean +- t(1 - alpha/2, K-1) * s / sqrt(K)`` is a confidence interval at
  level 1 - alpha (Student's t, not a fudge factor).
* We use 99.9% intervals: with the four Erlang points, the chance that a
  correct simulator fails somewhere is at most 4 x 0.1% (Bonferroni).  The
  seeds are fixed, so the test is deterministic; the level says how unlucky
  a seed set would have to be.
* An interval is only useful if it is narrow: each test also checks the
  interval would exclude the formula evaluated at an offered load 3% off,
  so a simulator that is wrong by that much cannot pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from solution import LoadBalancer
from solution.sim import ClassicMode, Cluster, Fixed, Scenario, Tier, Workload, simulate
from solution.sim.sweep import erlang_b_points
from solution.sim.theory import erlang_b, mean_confidence_interval, mm1k

pytestmark = pytest.mark.sim

LEVEL = 0.999
SEEDS = range(20)
REQUESTS = 50_000  # per seed; about 2 s for all points and seeds per million requests on one core
POINTS = [(4, 3.0), (8, 6.0), (16, 14.0), (32, 28.0)]  # (servers, offered load in erlangs): losses 7% to 21%


@pytest.fixture(scope="module")
def erlang_points():
    return erlang_b_points(POINTS, SEEDS, REQUESTS, warmup=10.0, level=LEVEL, balancer=LoadBalancer, workers=0)


@pytest.mark.parametrize("point", range(len(POINTS)))
def test_stage1_loss_matches_erlang_b(erlang_points, point: int) -> None:
    p = erlang_points[point]
    assert p.low <= p.formula <= p.high, (
        f"c={p.servers}, a={p.offered_load}: Erlang B {p.formula:.5f} is outside the {LEVEL:.1%} interval "
        f"[{p.low:.5f}, {p.high:.5f}] of {p.seeds} seeds"
    )


@pytest.mark.parametrize("point", range(len(POINTS)))
def test_the_erlang_intervals_are_narrow_enough_to_catch_a_3_percent_error(erlang_points, point: int) -> None:
    p = erlang_points[point]
    assert erlang_b(p.servers, p.offered_load * 1.03) > p.high
    assert erlang_b(p.servers, p.offered_load * 0.97) < p.low


def test_processor_sharing_matches_m_m_1_k() -> None:
    """One server of capacity K sharing its speed equally: the virtual-clock bookkeeping, checked.

    Blocking and the mean time in system (by Little's law, L / (lambda (1 - P_K)))
    of M/M/1/K hold for processor sharing; a service time frozen at admission
    would give a different mean.
    """
    rho, k, warmup = 0.8, 5, 10.0
    scenario = Scenario(Cluster.uniform(1, capacity=k), Workload(20_000, tiers=(Tier("t", 1.0, Fixed(10), Fixed(10)),)),
                        ClassicMode(sharing=True), load=rho)  # fmt: skip
    blocking, in_system = mm1k(rho, k)
    losses, sojourns = [], []
    for seed in range(12):
        res = simulate(scenario, LoadBalancer, seed=seed)
        losses.append(res.summary(warmup).rejection_rate)
        sojourns.append(float(np.nanmean(res.e2e[res.arrival >= warmup])))
    _, low, high = mean_confidence_interval(losses, LEVEL)
    assert low <= blocking <= high
    _, low, high = mean_confidence_interval(sojourns, LEVEL)
    assert low <= in_system / (rho * (1 - blocking)) <= high
    assert not low <= mm1k(rho * 1.03, k)[1] / (rho * 1.03 * (1 - mm1k(rho * 1.03, k)[0])) <= high
