"""Early binding in LLM mode: each server keeps its own FIFO beyond its running batch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from solution import LoadBalancer
from solution.core.routing import Router
from solution.sim import Outcome, ScenarioError, scenarios, simulate
from solution.sim.queueing import QueueConfig

pytestmark = pytest.mark.sim


def unbounded_router() -> Router:
    """Least-connections that places every request, past capacity if need be (early binding)."""
    return Router(queue_per_server=None)


@pytest.fixture(scope="module")
def overloaded():
    scenario = replace(scenarios.steady(servers=3, load=1.1, requests=3_000), early_binding=True)
    return simulate(scenario, unbounded_router, seed=4)


def test_nothing_is_rejected_and_every_request_ends_once(overloaded):
    assert overloaded.count(Outcome.REJECTED) == 0
    assert overloaded.count(Outcome.COMPLETED) == len(overloaded)


def test_the_batch_never_exceeds_capacity(overloaded):
    running = overloaded.load_over_time(np.sort(np.concatenate([overloaded.start, overloaded.finish])))
    assert (running <= overloaded.capacity).all()
    assert (running == overloaded.capacity).any(), "the scenario should fill the batches"


def test_requests_wait_at_their_server_in_fifo_order(overloaded):
    waited = overloaded.start > overloaded.arrival
    assert waited.mean() > 0.1, "an overloaded cluster with early binding should queue at the servers"
    for k in range(len(overloaded.server_ids)):
        mine = np.nonzero(overloaded.server == k)[0]
        by_arrival = mine[np.argsort(overloaded.arrival[mine], kind="stable")]
        assert (np.diff(overloaded.start[by_arrival]) >= 0).all(), f"server {k} admitted out of arrival order"


def test_stage1_balancer_is_unaffected_by_early_binding():
    """A balancer that never routes past capacity gives identical results either way."""
    late = scenarios.steady(servers=3, load=0.9, requests=2_000)
    a = simulate(late, LoadBalancer, seed=2)
    b = simulate(replace(late, early_binding=True), LoadBalancer, seed=2)
    for field in ("start", "first_token", "finish", "server", "outcome"):
        assert np.array_equal(getattr(a, field), getattr(b, field), equal_nan=True), field


def test_a_crash_loses_the_waiting_requests_too():
    scenario = replace(scenarios.crash(servers=2, load=1.2, requests=2_000), early_binding=True)
    res = simulate(scenario, unbounded_router, seed=1)
    crashed = res.outcome == Outcome.CRASHED
    assert crashed.any()
    # some crashed requests never started: they were waiting in the dead server's queue
    assert np.isnan(res.start[crashed]).any()
    assert res.count(Outcome.COMPLETED) + res.count(Outcome.CRASHED) + res.count(Outcome.FAILED) == len(res)


def test_late_binding_without_early_binding_rejects_a_router_routing_past_capacity():
    scenario = scenarios.steady(servers=2, load=1.2, requests=1_000)
    with pytest.raises(RuntimeError, match="already running"):
        simulate(scenario, unbounded_router, seed=0)


def test_early_binding_and_a_gateway_queue_are_exclusive():
    with pytest.raises(ScenarioError):
        replace(scenarios.steady(servers=2, requests=100), early_binding=True, queue=QueueConfig())
    with pytest.raises(TypeError):
        replace(scenarios.steady(servers=2, requests=100), early_binding=1)
