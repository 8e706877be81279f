"""The stage-2 plots: queue depth, wait distributions, theory agreement."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from solution import QueuePolicy
from solution.sim import plot, scenarios, simulate
from solution.sim.queueing import QueueConfig
from solution.sim.sweep import queue_points

pytestmark = pytest.mark.sim


def test_queue_plots_draw():
    res = simulate(scenarios.classic(servers=2, load=1.2, requests=2_000).with_queue(QueueConfig(QueuePolicy(max_depth=8))), seed=1)
    assert isinstance(plot.queue_depth(res, max_depth=8), Figure)
    assert isinstance(plot.wait_cdf({"fifo": res}, theory=(2, 1.5), survival=True), Figure)
    assert isinstance(plot.wait_cdf(res), Figure)
    points = queue_points([(2, 1.0, None), (2, 1.6, 3)], seeds=range(2), requests=500, workers=0)
    assert isinstance(plot.queue_theory_agreement(points, "wait"), Figure)
    assert isinstance(plot.queue_theory_agreement(points, "blocking"), Figure)
    with pytest.raises(ValueError):
        plot.queue_theory_agreement(points, "latency")
