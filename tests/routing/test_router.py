"""The shared Router and the baseline strategies (not graded: the candidate does not write them)."""

from __future__ import annotations

import pickle

import pytest

import solution
from solution.checks.common import compare_with_reference
from solution.checks.stage1 import random_ops
from solution.core.errors import NoCapacityError
from solution.core.routing import LeastConnections, RandomChoice, RoundRobin, Router, RouterFactory, StrategyError, StrategyInUseError


@pytest.mark.parametrize("seed", range(10))
def test_default_router_is_stage_1(seed):
    """Router() with least-connections routes exactly as solution.LoadBalancer (stats have two more keys)."""

    class Stage1View(Router):
        def get_server_stats(self):
            return {k: {f: v for f, v in s.items() if f not in ("speed", "outstanding_tokens")} for k, s in super().get_server_stats().items()}

    mismatch = compare_with_reference(Stage1View, random_ops(seed, 400))
    assert mismatch is None, mismatch.describe()


def test_exact_ratios_at_large_capacity():
    lb = Router(LeastConnections())
    lb.add_server("third", 3, 80)
    lb.add_server("million", 1_000_000, 24)
    lb.route_request("t", 10)
    for i in range(333_333):
        lb.route_request(f"m{i}", 10)
    assert lb.route_request("next", 10) == "million" and lb.route_request("next2", 10) == "third"


def test_round_robin_skips_full_and_draining_servers():
    lb = Router(RoundRobin())
    for sid in "abc":
        lb.add_server(sid, 2, 80)
    assert [lb.route_request(f"r{i}", 1) for i in range(4)] == ["a", "b", "c", "a"]
    lb.remove_server("b")
    assert lb.route_request("x", 1) == "c"  # a is full, b drains
    with pytest.raises(NoCapacityError):
        lb.route_request("y", 1)
    assert lb.get_server_stats()["b"]["current_load"] == 1


def test_random_is_seeded_and_eligible():
    def picks(seed):
        lb = Router(RandomChoice(seed))
        lb.add_server("a", 50, 24)
        lb.add_server("b", 50, 80)
        return [lb.route_request(f"r{i}", 5000 if i % 3 == 0 else 10) for i in range(60)]

    assert picks(1) == picks(1) != picks(2)
    assert all(p == "b" for p in picks(1)[::3])


def test_early_binding_queues_beyond_capacity():
    lb = Router(queue_per_server=2)
    lb.add_server("a", 1, 80)
    assert [lb.route_request(f"r{i}", 1) for i in range(3)] == ["a"] * 3
    with pytest.raises(NoCapacityError):
        lb.route_request("r3", 1)
    unbounded = Router(queue_per_server=None)
    unbounded.add_server("a", 1, 80)
    assert all(unbounded.route_request(f"r{i}", 1) == "a" for i in range(100))


def test_stale_view_herds_until_refresh():
    lb = Router(LeastConnections(), refresh_every=4, queue_per_server=None)
    for sid in "abc":
        lb.add_server(sid, 1, 80)
    lb.route_request("warm", 1)  # refresh at decision 0, then the view freezes
    assert [lb.route_request(f"r{i}", 1) for i in range(3)] == ["a", "a", "a"]  # everyone sees a at 0
    assert lb.route_request("r3", 1) == "b"  # refreshed: a has 4


def test_observe_contract_and_strategy_reuse():
    lb = Router()
    lb.add_server("a", 2, 80)
    lb.route_request("r", 10)
    lb.observe("r", latency=1.0)  # ignored by least-connections
    with pytest.raises(TypeError):
        lb.observe("r")
    with pytest.raises(KeyError):
        lb.observe("nope", latency=1.0)
    with pytest.raises(StrategyInUseError):
        Router(lb.strategy)
    with pytest.raises(TypeError):
        Router(object())
    with pytest.raises(ValueError):
        Router(speeds={"a": 0})


def test_a_strategy_returning_an_ineligible_server_is_a_bug_not_a_full_cluster():
    class Bad(LeastConnections):
        def choose(self, estimated_tokens):
            return next(iter(self.router._servers.values()))

    lb = Router(Bad())
    lb.add_server("a", 1, 80)
    lb.route_request("r1", 1)
    with pytest.raises(StrategyError) as info:
        lb.route_request("r2", 1)
    assert not isinstance(info.value, RuntimeError)


def test_factory_is_picklable_and_fresh():
    make = RouterFactory(solution.PowerOfChoices, {"d": 2, "seed": 1}, speeds={"a": 2.0})
    again = pickle.loads(pickle.dumps(make))
    assert again().strategy is not again().strategy and again.name == "power-of-d"
    lb = again()
    lb.add_server("a", 1, 80)
    assert lb.get_server_stats()["a"]["speed"] == 2.0
