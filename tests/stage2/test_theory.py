"""Stage 2 in the simulator against queueing theory: the implementation's queue in front of the reference balancer.

Classic mode (Poisson arrivals, exponential service of mean 1 s, capacity 1
per server) with a FIFO queue at the gateway is

* **M/M/c** when the queue is unbounded: the mean wait is Erlang C's
  ``C(c, a) / (c - a)`` (:func:`solution.sim.theory.mmc_mean_wait`);
* **M/M/c/K** with ``max_depth = K - c``: the fraction throttled (429) is the
  blocking probability ``P(K)``, and the mean wait of the admitted requests
  follows by Little's law (:func:`solution.sim.theory.mmck`).

Method, as in ``tests/sim/test_sim_theory_agreement.py``: SEEDS independent
replications of REQUESTS requests each; requests arriving in the first 50 s
(50 mean service times) are dropped; the per-seed means give a Student-t
interval at 99.9%.  Twelve comparisons at 0.1% each: at most a 1.2% chance
(Bonferroni) that a correct queue fails one; the seeds are fixed, so the
test is deterministic.  Narrow enough to matter: each blocking interval
excludes the formula at an offered load 5% off, each wait interval at 10%
off (waits in an unbounded queue converge slowly: long busy periods).

Each test simulates its own point (about 1.5 s), so no single test runs long.
"""

from __future__ import annotations

import pytest

from solution import LoadBalancer
from solution.sim.sweep import QueuePoint, queue_points
from solution.sim.theory import mmc_mean_wait, mmck

pytestmark = [pytest.mark.stage2, pytest.mark.sim]

LEVEL = 0.999
SEEDS = range(10)
REQUESTS = 12_000
#: (servers, offered load a in erlangs, max_depth): M/M/c at loads 0.5, 0.7, 0.85 per server; M/M/4/8 at 0.8, 1.0, 1.2.
POINTS = [(4, 2.0, None), (4, 2.8, None), (4, 3.4, None), (4, 3.2, 4), (4, 4.0, 4), (4, 4.8, 4)]
WAIT_MARGIN, BLOCKING_MARGIN = 0.10, 0.05


def formulas(servers: int, offered_load: float, max_depth: int | None) -> tuple[float, float]:
    """(blocking, mean wait) from theory."""
    return mmck(servers, offered_load, max_depth) if max_depth is not None else (0.0, mmc_mean_wait(servers, offered_load))


def simulate_point(impl, point) -> QueuePoint:
    return queue_points([point], SEEDS, REQUESTS, level=LEVEL, balancer=LoadBalancer, queue=impl.RequestQueue, workers=0)[0]


@pytest.mark.parametrize("point", POINTS, ids=[f"c{c}-a{a}-{'inf' if k is None else f'K{c + k}'}" for c, a, k in POINTS])
def test_queue_matches_theory(impl, point):
    p = simulate_point(impl, point)
    c, a, k = point
    name = f"M/M/{c}" + (f"/{c + k}" if k is not None else "") + f" at a = {a} ({p.load:.2f} per server)"
    assert p.wait_agrees, f"{name}: mean wait {p.wait_formula:.4f} s is outside the {LEVEL:.1%} interval [{p.wait[1]:.4f}, {p.wait[2]:.4f}]"
    assert p.blocking_agrees, (
        f"{name}: blocking {p.blocking_formula:.4f} is outside the {LEVEL:.1%} interval [{p.blocking[1]:.4f}, {p.blocking[2]:.4f}]"
    )
    # the intervals are narrow enough to catch a simulator (or queue) that is off by a little
    assert formulas(c, a * (1 + WAIT_MARGIN), k)[1] > p.wait[2] and formulas(c, a * (1 - WAIT_MARGIN), k)[1] < p.wait[1]
    if k is not None:
        assert formulas(c, a * (1 + BLOCKING_MARGIN), k)[0] > p.blocking[2]
        assert formulas(c, a * (1 - BLOCKING_MARGIN), k)[0] < p.blocking[1]
    else:
        assert p.blocking == (0.0, 0.0, 0.0), "an unbounded queue never answers 429"
