"""The shared Router and the baseline strategies (not graded: the candidate does not write them)."""

from __future__ import annotations

import pickle

import pytest

import solution
from solution.checks.common import compare_with_reference
from solution.checks.stage1 import random_ops
from solution.core.errors import NoCapacityError
from solution.core.latency import REFERENCE_MODEL
from solution.core.request import Request
from solution.core.routing import (
    LeastConnections,
    RandomChoice,
    ReplicatedRouter,
    RoundRobin,
    Router,
    RouterFactory,
    StrategyError,
    StrategyInUseError,
)


@pytest.mark.parametrize("seed", range(10))
def test_default_router_is_stage_1(seed):
    """Router() with least-connections routes exactly as solution.LoadBalancer (stats have three more keys)."""

    class Stage1View(Router):
        def get_server_stats(self):
            return {k: {f: v for f, v in s.items() if f not in ("speed", "outstanding_tokens", "outstanding_output_tokens")} for k, s in super().get_server_stats().items()}

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
        def choose(self, request):
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


def test_route_takes_a_request_and_route_request_builds_one():
    seen = []

    class Spy(LeastConnections):
        def choose(self, request):
            seen.append(request)
            return super().choose(request)

    lb = Router(Spy())
    lb.add_server("a", 4, 80)
    assert lb.route(Request("r1", 300, prompt_tokens=200)) == "a"
    assert lb.route_request("r2", 50) == "a"
    assert seen == [Request("r1", 300, 200), Request("r2", 50, None)]
    stats = lb.get_server_stats()["a"]
    assert (stats["outstanding_tokens"], stats["outstanding_output_tokens"]) == (350, 150)  # 100 + 50 (no split: all output)
    lb.complete_request("r1")
    assert lb.get_server_stats()["a"]["outstanding_output_tokens"] == 50
    with pytest.raises(TypeError):
        lb.route(("r3", 10))
    with pytest.raises(ValueError):
        lb.route_request("r3", 10, prompt_tokens=11)  # the prompt cannot exceed the total
    assert lb.get_server_stats()["a"]["current_load"] == 1  # the failed calls changed nothing


def test_models_default_to_the_reference_scaled_by_speed():
    own = REFERENCE_MODEL.scaled(0.25)
    lb = Router(speeds={"fast": 2.0}, models={"own": own})
    for sid in ("fast", "plain", "own"):
        lb.add_server(sid, 4, 80)
    models = {s.server_id: s.model for s in lb.routable_servers()}
    assert models == {"fast": REFERENCE_MODEL.scaled(2.0), "plain": REFERENCE_MODEL, "own": own}
    with pytest.raises(TypeError):
        Router(models={"a": 1.0})


def test_bulletin_board_does_not_count_its_own_requests_but_replicas_do():
    """refresh_every=k: every decision of a period sees the same posted loads (Mitzenmacher's bulletin board),
    so least-connections sends them all to one server; one replica counting its own requests spreads them."""
    board = Router(LeastConnections(), queue_per_server=None, refresh_every=4)
    alone = ReplicatedRouter(LeastConnections, 1, refresh_every=4)
    for lb in (board, alone):
        for sid in ("a", "b", "c", "d"):
            lb.add_server(sid, 1, 80)
    assert [board.route_request(f"r{i}", 1) for i in range(4)] == ["a"] * 4
    assert [alone.route_request(f"r{i}", 1) for i in range(4)] == ["a", "b", "c", "d"]


def test_replicas_see_each_other_only_at_a_refresh():
    lb = ReplicatedRouter(LeastConnections, 2, refresh_every=4)
    for sid in ("a", "b", "c"):
        lb.add_server(sid, 1, 80)
    # replica 0 takes r0, r2; replica 1 takes r1, r3: each spreads its own, blind to the other's
    assert [lb.route_request(f"r{i}", 1) for i in range(4)] == ["a", "a", "b", "b"]
    # decision 4 refreshes: both now see a: 2, b: 2, c: 0
    assert lb.route_request("r4", 1) == "c"
    assert {sid: s["current_load"] for sid, s in lb.get_server_stats().items()} == {"a": 2, "b": 2, "c": 1}
    lb.complete_request("r0")
    with pytest.raises(KeyError):
        lb.complete_request("r0")
    with pytest.raises(ValueError):
        ReplicatedRouter(LeastConnections, 2, refresh_every=4, queue_per_server=0)


def test_place_records_on_the_given_server_or_changes_nothing():
    lb = Router()
    lb.add_server("a", 1, 24), lb.add_server("b", 2, 80)
    assert lb.place(Request("r1", 10), "b") == "b"
    assert lb.get_server_stats()["b"]["active_requests"] == ["r1"]
    before = lb.get_server_stats()
    for request, sid, error in ((Request("r1", 10), "a", ValueError), (Request("r2", 10), "zz", KeyError),
                                (Request("r2", 5000), "a", RuntimeError), ("r2", "a", TypeError)):  # fmt: skip
        with pytest.raises(error):
            lb.place(request, sid)
    assert lb.get_server_stats() == before


def test_replicas_add_and_drain_all_or_nothing():
    lb = ReplicatedRouter(LeastConnections, 2, refresh_every=10)
    lb.add_server("a", 2, 80), lb.add_server("b", 2, 80)
    lb.route_request("r0", 1)  # replica 0 puts it on a
    lb.remove_server("a")  # replica 0 drains a; replica 1, with none of its requests there, forgets it
    with pytest.raises(ValueError):
        lb.add_server("a", 2, 80)  # still draining in replica 0: no replica changes
    assert [sorted(r.get_server_stats()) for r in lb.replicas] == [["a", "b"], ["b"]]
    lb.complete_request("r0")
    lb.add_server("a", 3, 80)
    assert {sid: s["capacity"] for sid, s in lb.get_server_stats().items()} == {"b": 2, "a": 3}
    with pytest.raises(KeyError):
        lb.remove_server("zz")
