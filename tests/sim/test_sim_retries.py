"""Retrying clients (solution.sim.retries) and the pool they drive (solution.sim.gatewaypool)."""

from __future__ import annotations

import numpy as np
import pytest

from solution import LoadBalancer, QueuePolicy, RequestQueue
from solution.core.queue_types import Dispatched, Rejected
from solution.sim.gatewaypool import GatewayPool
from solution.sim.retries import RetryScenario, retry_wait, run_retries

SMALL = RetryScenario(duration=90.0, burst_at=30.0, burst=120)


def test_retry_wait_never_comes_back_before_retry_after():
    rng = np.random.default_rng(0)
    assert retry_wait(3, 1, False, rng) == 3.0
    waits = [retry_wait(3, attempt, True, rng, cap=10.0) for attempt in (1, 2, 3, 4, 5) for _ in range(200)]
    assert min(waits) >= 3.0 and max(waits) <= 3.0 + 10.0
    first = [retry_wait(3, 1, True, rng) for _ in range(2000)]
    assert 3.0 <= min(first) < 3.1 and 5.9 < max(first) <= 6.0  # uniform over [3, 6]


def test_synchronized_retries_come_back_as_a_wave_and_jitter_spreads_it():
    sync = [run_retries(LoadBalancer, RequestQueue, SMALL, jitter=False, seed=s) for s in range(3)]
    jit = [run_retries(LoadBalancer, RequestQueue, SMALL, jitter=True, seed=s) for s in range(3)]
    for a, b in zip(sync, jit):
        assert a.peak_after_burst > 2 * b.peak_after_burst  # a wave of retries vs a spread
        assert a.extra_rejections > b.extra_rejections
        assert a.served + a.gave_up == b.served + b.gave_up  # the same requests (common random numbers)
        assert a.served + a.gave_up == int((~a.retry).sum())


def test_without_a_burst_nobody_retries():
    quiet = RetryScenario(rate=2.0, burst=0, burst_at=10.0, duration=60.0)
    run = run_retries(LoadBalancer, RequestQueue, quiet, jitter=False, seed=1)
    assert not run.retry.any() and run.gave_up == 0 and len(run.rejected_at) == 0


def test_arrivals_per_second_counts_every_arrival():
    run = run_retries(LoadBalancer, RequestQueue, SMALL, jitter=True, seed=2)
    edges, counts = run.arrivals_per_second()
    assert counts.sum() == len(run.arrivals) and np.all(np.diff(edges) == 1.0)


@pytest.mark.parametrize("bad", [{"servers": 0}, {"rate": 0.0}, {"burst_at": 500.0}, {"max_depth": -1}, {"slots": True}])
def test_a_bad_scenario_is_refused(bad):
    with pytest.raises(ValueError):
        RetryScenario(**bad)


def test_the_pool_serves_in_time_order_and_fills_a_joining_server():
    seen = []
    pool = GatewayPool(LoadBalancer(), RequestQueue, QueuePolicy(max_depth=1), seed=3, on_outcome=seen.append)
    pool.add_server("a", 1)
    pool.at(0.0, lambda: pool.submit("x"))
    pool.at(0.0, lambda: pool.submit("y"))  # waits
    pool.at(0.0, lambda: pool.submit("z"))  # the queue is full
    pool.at(0.5, lambda: pool.add_server("b", 1))  # takes 'y' at once, unless 'x' ended first
    pool.run(100.0)
    kinds = [(type(o).__name__, o.request_id) for o in seen]
    assert kinds[:2] == [("Dispatched", "x"), ("Rejected", "z")]
    assert ("Dispatched", "y") in kinds and isinstance(seen[1], Rejected) and seen[1].status == 503
    assert all(o.at <= 100.0 for o in seen if isinstance(o, Dispatched)) and pool.now == 100.0
    with pytest.raises(ValueError):
        pool.at(1.0, lambda: None)  # the past


def test_the_arrivals_figure_is_labelled():
    from solution.sim.retries import plot_arrivals

    runs = {"exact": run_retries(LoadBalancer, RequestQueue, SMALL, jitter=False, seed=0),
            "jittered": run_retries(LoadBalancer, RequestQueue, SMALL, jitter=True, seed=0)}  # fmt: skip
    ax = plot_arrivals(runs, window=(20.0, 80.0)).axes[0]
    assert ax.get_title() and "(s)" in ax.get_xlabel() and "requests/s" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == 4 and any("exact" in x for x in labels) and any("jittered" in x for x in labels)


def test_one_server_sjf_by_cost_beats_sjf_by_total_on_the_same_requests():
    """The key matters: with the prompt/output split the queue orders by what a request costs."""
    from solution.sim.queueing import one_server_llm

    sjf = QueuePolicy(ordering="sjf", aging_rate=1.0)
    for seed in (0, 1):
        fifo = one_server_llm(LoadBalancer, RequestQueue, QueuePolicy(), split=False, seed=seed, requests=1500)
        total = one_server_llm(LoadBalancer, RequestQueue, sjf, split=False, seed=seed, requests=1500)
        cost = one_server_llm(LoadBalancer, RequestQueue, sjf, split=True, seed=seed, requests=1500)
        assert np.array_equal(fifo.service, cost.service) and not np.isnan(cost.wait).any()
        assert cost.wait.mean() < total.wait.mean() < fifo.wait.mean()
        assert cost.wait.max() > fifo.wait.max()  # the price of SJF: the longest wait


def test_the_pool_times_requests_out_at_their_deadline():
    from solution.core.queue_types import TimedOut

    seen = []
    pool = GatewayPool(LoadBalancer(), RequestQueue, QueuePolicy(max_wait=1.5), on_outcome=seen.append, service=lambda rid: 10.0)
    pool.add_server("a", 1)
    pool.at(0.0, lambda: pool.submit("busy"))
    pool.at(0.25, lambda: pool.submit("late"))
    pool.at(0.5, lambda: pool.submit("later"))
    pool.run(5.0)
    assert [o for o in seen if isinstance(o, TimedOut)] == [TimedOut("late", 1.75, 1.5), TimedOut("later", 2.0, 1.5)]
