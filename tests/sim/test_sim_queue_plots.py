"""The stage-2 plots: queue depth with scale-up periods, wait distributions, theory agreement."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from solution import QueuePolicy
from solution.sim import Results, plot, scenarios, simulate
from solution.sim.queueing import QueueConfig
from solution.sim.sweep import queue_points

pytestmark = pytest.mark.sim


def hand_made(arrival, start, finish) -> Results:
    """A run with given arrival, dispatch and finish times (NaN start: never dispatched)."""
    n = len(arrival)
    zeros = np.zeros(n, dtype=np.int32)
    return Results(
        scenario="hand", seed=0, server_ids=("s",), capacity=np.array([1]), arrival=np.array(arrival, dtype=float),
        start=np.array(start, dtype=float), first_token=np.array(finish, dtype=float), finish=np.array(finish, dtype=float),
        server=np.where(np.isnan(start), -1, 0).astype(np.int32), outcome=np.zeros(n, dtype=np.int8), prompt_tokens=zeros,
        output_tokens=zeros, estimated_tokens=zeros, tier=np.zeros(n, dtype=np.int16), tier_names=("t",), session=zeros - 1,
        mode="classic", queueing="fifo",
    )  # fmt: skip


def test_scale_up_periods_are_exact():
    # depth: 1 on [0, 1), 2 on [1, 5), 3 on [5, 6), 2 on [6, 8), 1 on [8, 9), 0 after
    res = hand_made(arrival=[0, 1, 5, 20], start=[9, 8, 6, 20], finish=[10, 10, 10, 21])
    assert plot.scale_up_periods(res, threshold=1, after=3.0) == [(4.0, 8.0)]  # above 1 from 1 to 8
    assert plot.scale_up_periods(res, threshold=1, after=7.0) == [(8.0, 8.0)]  # exactly 7 s above
    assert plot.scale_up_periods(res, threshold=2, after=1.0) == [(6.0, 6.0)]  # 3 waiting for 1 s
    assert plot.scale_up_periods(res, threshold=3, after=0.0) == []


def test_queue_plots_draw():
    res = simulate(scenarios.classic(servers=2, load=1.2, requests=2_000).with_queue(QueueConfig(QueuePolicy(max_depth=8))), seed=1)
    assert isinstance(plot.queue_depth(res, max_depth=8, threshold=4, after=5.0), Figure)
    assert isinstance(plot.wait_cdf({"fifo": res}, theory=(2, 1.5), survival=True), Figure)
    assert isinstance(plot.wait_cdf(res), Figure)
    points = queue_points([(2, 1.0, None), (2, 1.6, 3)], seeds=range(2), requests=500, workers=0)
    assert isinstance(plot.queue_theory_agreement(points, "wait"), Figure)
    assert isinstance(plot.queue_theory_agreement(points, "blocking"), Figure)
    with pytest.raises(ValueError):
        plot.queue_theory_agreement(points, "latency")
