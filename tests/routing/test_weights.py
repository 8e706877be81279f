"""Router.set_weight: how health reaches every stage-3 strategy (stage 4).

* weight 0: the server never receives a request, whatever the strategy;
* otherwise the effective capacity max(1, floor(capacity * weight)), capped by
  a trial limit, is never exceeded and is what the load ratio divides by;
* weight 1 without a limit changes no decision (differential against a plain router);
* bad input raises and changes nothing.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution import strategies as stage3
from solution.core.errors import NoCapacityError, UnknownServerError
from solution.core.request import Request
from solution.core.routing import LeastConnections, RandomChoice, ReplicatedRouter, RoundRobin, Router

STRATEGIES = [
    ("RoundRobin", lambda: RoundRobin()),
    ("RandomChoice", lambda: RandomChoice(seed=1)),
    ("LeastConnections", lambda: LeastConnections()),
    ("PowerOfChoices", lambda: stage3.PowerOfChoices(d=2, seed=2)),
    ("WeightedResponseTime", lambda: stage3.WeightedResponseTime()),
    ("PeakEwma", lambda: stage3.PeakEwma()),
    ("LeastOutstandingTokens", lambda: stage3.LeastOutstandingTokens()),
    ("Predictive", lambda: stage3.Predictive()),
]
SERVERS = ["s0", "s1", "s2", "s3", "s4"]
WEIGHT = st.sampled_from([0.0, 0.0, 0.05, 0.1, 0.25, 0.5, 0.7, 1.0, 1.0])
LIMIT = st.one_of(st.none(), st.none(), st.integers(0, 3))
OP = st.one_of(
    st.tuples(st.just("weight"), st.sampled_from(SERVERS), WEIGHT, LIMIT),
    st.tuples(st.just("route"), st.integers(0, 30), st.sampled_from([10, 900, 6000])),
    st.tuples(st.just("route"), st.integers(0, 30), st.sampled_from([10, 900])),
    st.tuples(st.just("complete"), st.integers(0, 30)),
    st.tuples(st.just("observe"), st.integers(0, 30), st.floats(0.01, 5.0)),
    st.tuples(st.just("remove"), st.sampled_from(SERVERS)),
)


def effective(capacity: int, weight: float, limit: int | None) -> int:
    eff = max(1, math.floor(capacity * weight))
    return eff if limit is None else max(1, min(eff, limit))


@pytest.mark.parametrize("name,make", STRATEGIES, ids=[n for n, _ in STRATEGIES])
@settings(max_examples=60, deadline=None)
@given(caps=st.lists(st.integers(1, 8), min_size=5, max_size=5), mem=st.lists(st.sampled_from([24, 80]), min_size=5, max_size=5),
       ops=st.lists(OP, max_size=80))  # fmt: skip
def test_weight_zero_never_routed_and_effective_capacity_never_exceeded(name, make, caps, mem, ops):
    lb = Router(make(), speeds={"s1": 2.0, "s3": 0.5})
    for sid, cap, gb in zip(SERVERS, caps, mem):
        lb.add_server(sid, cap, gb)
    weights = {sid: (1.0, None) for sid in SERVERS}
    where: dict[str, str] = {}
    for op in ops:
        if op[0] == "weight" and op[1] in lb:
            _, sid, w, limit = op
            lb.set_weight(sid, w, limit=limit)
            weights[sid] = (w, limit)
            assert lb.server(sid).capacity == effective(lb.server(sid).nominal_capacity, w, limit)
        elif op[0] == "route":
            rid = f"r{op[1]}"
            if rid in where:
                continue
            request = Request(rid, op[2])
            stats = lb.get_server_stats()
            try:
                sid = lb.route(request)
            except NoCapacityError:
                for s, st_ in stats.items():  # nobody could take it
                    w, limit = weights[s]
                    room = st_["current_load"] < effective(st_["capacity"], w, limit) and (limit is None or st_["current_load"] < limit)
                    big_enough = st_["gpu_memory_gb"] >= 80 or op[2] <= lb.large_request_tokens
                    assert st_["is_draining"] or w == 0 or not room or not big_enough, (s, st_, weights[s])
                continue
            w, limit = weights[sid]
            assert w > 0, f"{name} routed {rid} to {sid}, whose weight is 0"
            load = lb.get_server_stats()[sid]["current_load"]
            assert load <= effective(stats[sid]["capacity"], w, limit), f"{name} exceeded {sid}'s effective capacity"
            assert limit is None or load <= limit
            where[rid] = sid
        elif op[0] == "complete" and f"r{op[1]}" in where:
            lb.complete_request(f"r{op[1]}")
            del where[f"r{op[1]}"]
        elif op[0] == "observe" and f"r{op[1]}" in where:
            lb.observe(f"r{op[1]}", latency=op[2])
        elif op[0] == "remove" and op[1] in lb:
            lb.remove_server(op[1])


@pytest.mark.parametrize("name,make", STRATEGIES, ids=[n for n, _ in STRATEGIES])
def test_weight_one_changes_no_decision(name, make):
    plain, weighted = Router(make()), Router(make())
    for lb in (plain, weighted):
        for i, sid in enumerate(SERVERS):
            lb.add_server(sid, 2 + i, 80 if i % 2 else 24)
    for sid in SERVERS:
        weighted.set_weight(sid, 1.0)
    live: list[str] = []
    for i in range(300):
        if i % 3 == 2 and live:
            rid = live.pop(i % len(live))
            plain.complete_request(rid)
            weighted.complete_request(rid)
            continue
        rid = f"r{i}"
        try:
            a = plain.route(Request(rid, 10 + 97 * i % 7000))
        except NoCapacityError:
            with pytest.raises(NoCapacityError):
                weighted.route(Request(rid, 10 + 97 * i % 7000))
            continue
        assert weighted.route(Request(rid, 10 + 97 * i % 7000)) == a
        live.append(rid)


def test_effective_capacity_formula_and_load_ratio():
    lb = Router(LeastConnections())
    lb.add_server("a", 8, 80)
    lb.add_server("b", 8, 80)
    lb.set_weight("a", 0.1)
    assert lb.server("a").capacity == 1  # max(1, floor(0.8))
    lb.set_weight("a", 0.5)
    assert lb.server("a").capacity == 4 and lb.server("a").nominal_capacity == 8
    # ratios over effective capacities (a: 4, b: 8); ties go to more free slots (effective: a 4 - load, b 8 - load)
    assert [lb.route_request(f"y{i}", 10) for i in range(4)] == ["b", "a", "b", "b"]
    stats = lb.get_server_stats()
    assert (stats["a"]["current_load"], stats["b"]["current_load"]) == (1, 3)
    lb.set_weight("a", 0.5, limit=1)
    assert lb.server("a").capacity == 1 and not lb.available(lb.server("a"))  # trial limit reached
    stats = lb.get_server_stats()["a"]
    assert (stats["capacity"], stats["weight"], stats["effective_capacity"], stats["trial_limit"]) == (8, 0.5, 1, 1)
    assert stats["load_ratio"] == 1 / 8  # stage 1's ratio stays over the batch as added


def test_weight_zero_leaves_the_routable_list_and_comes_back():
    lb = Router(RoundRobin())
    for sid in "abc":
        lb.add_server(sid, 4, 80)
    lb.set_weight("b", 0.0)
    assert {s.server_id for s in lb.routable_servers()} == {"a", "c"}
    assert "weight 0 (health)" in dict(lb.explain(Request("e", 10)).excluded).values()
    assert {lb.route_request(f"r{i}", 10) for i in range(6)} == {"a", "c"}
    lb.set_weight("b", 0.25)
    assert lb.route_request("r6", 10) == "b" or "b" in {lb.route_request(f"s{i}", 10) for i in range(2)}
    with pytest.raises(NoCapacityError):
        for i in range(20):
            lb.route_request(f"t{i}", 10)
    assert lb.get_server_stats()["b"]["current_load"] == 1  # effective capacity max(1, floor(4 * 0.25)) = 1


def test_lower_weight_than_load_takes_nothing_until_below():
    lb = Router(LeastConnections())
    lb.add_server("a", 4, 80)
    for i in range(4):
        lb.route_request(f"r{i}", 10)
    lb.set_weight("a", 0.5)
    with pytest.raises(NoCapacityError):
        lb.route_request("x", 10)
    for i in range(3):
        lb.complete_request(f"r{i}")
    assert lb.route_request("x", 10) == "a"


def test_stats_unchanged_until_a_weight_is_set():
    lb = Router()
    lb.add_server("a", 4, 80)
    assert "weight" not in lb.get_server_stats()["a"]
    lb.set_weight("a", 1.0)
    assert lb.get_server_stats()["a"]["weight"] == 1.0


@pytest.mark.parametrize(
    "args,error",
    [(("a", "1"), TypeError), (("a", True), TypeError), (("a", -0.1), ValueError), (("a", 1.5), ValueError),
     (("a", float("nan")), ValueError), (("zz", 0.5), UnknownServerError), ((3, 0.5), TypeError)],
)  # fmt: skip
def test_bad_weights_raise_and_change_nothing(args, error):
    lb = Router()
    lb.add_server("a", 4, 80)
    before = lb.get_server_stats()
    with pytest.raises(error):
        lb.set_weight(*args)
    with pytest.raises((TypeError, ValueError)):
        lb.set_weight("a", 0.5, limit=-1)
    with pytest.raises(TypeError):
        lb.set_weight("a", 0.5, limit=1.5)
    assert lb.get_server_stats() == before and lb.server("a").capacity == 4


def test_draining_server_keeps_draining_whatever_its_weight():
    lb = Router()
    lb.add_server("a", 4, 80)
    lb.add_server("b", 4, 80)
    lb.route_request("r", 10)
    lb.remove_server("a")
    lb.set_weight("a", 0.0)
    lb.set_weight("a", 1.0)
    assert lb.route_request("s", 10) == "b" and {s.server_id for s in lb.routable_servers()} == {"b"}
    lb.complete_request("r")
    assert "a" not in lb


def test_replicated_router_sets_every_replica():
    lb = ReplicatedRouter(LeastConnections, 3, refresh_every=4)
    lb.add_server("a", 4, 80)
    lb.add_server("b", 4, 80)
    lb.set_weight("a", 0.0)
    assert {lb.route_request(f"r{i}", 10) for i in range(9)} == {"b"}
    with pytest.raises(UnknownServerError):
        lb.set_weight("zz", 0.5)
