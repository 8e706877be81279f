"""Best-fit against stage 1's tie-break (solution.sim.fit): the rule, the metrics, the measured trade-off."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.core.errors import NoCapacityError
from solution.core.routing import LeastConnections, Router, RouterFactory
from solution.sim import Outcome, simulate
from solution.sim.fit import (
    BestFit,
    compare_tie_breaks,
    large_rejection_rate,
    large_wait_mean,
    small_rejection_rate,
    small_wait_mean,
    tie_break_scenario,
)
from solution.sim.queueing import QueueConfig
from solution.core.queue_types import QueuePolicy


def best_fit_oracle(lb: Router, estimated_tokens: int) -> str | None:
    """The best-fit rule by a plain scan: lowest exact ratio, least memory, most free slots, added earliest."""
    large = estimated_tokens > lb.large_request_tokens
    best, best_key = None, None
    for order, (sid, s) in enumerate(lb.get_server_stats().items()):
        if s["is_draining"] or s["current_load"] >= s["capacity"]:
            continue
        if large and s["gpu_memory_gb"] < lb.large_request_min_memory_gb:
            continue
        key = (Fraction(s["current_load"], s["capacity"]), s["gpu_memory_gb"], s["current_load"] - s["capacity"], order)
        if best_key is None or key < best_key:
            best, best_key = sid, key
    return best


def test_a_small_request_that_ties_goes_to_the_smallest_gpu():
    lb = Router(BestFit())
    for sid, mem in [("h100", 80), ("a100-40", 40), ("a10", 24)]:
        lb.add_server(sid, 4, mem)
    assert lb.route_request("chat", 500) == "a10"
    # the spec rule sends the same request to the most memory
    spec = Router(LeastConnections())
    for sid, mem in [("h100", 80), ("a100-40", 40), ("a10", 24)]:
        spec.add_server(sid, 4, mem)
    assert spec.route_request("chat", 500) == "h100"


def test_a_large_request_goes_to_a_big_gpu_and_the_ratio_still_comes_first():
    lb = Router(BestFit())
    lb.add_server("a10", 2, 24)
    lb.add_server("h100", 2, 80)
    assert lb.route_request("doc", 9000) == "h100"  # only the 80 GB GPU is eligible
    assert lb.route_request("chat", 100) == "a10"  # 0/2 < 1/2
    assert lb.route_request("chat2", 100) == "a10"  # 1/2 ties 1/2: the least memory
    assert lb.route_request("chat3", 100) == "h100"  # a10 is full


@settings(max_examples=60, deadline=None)
@given(
    servers=st.lists(st.tuples(st.integers(1, 4), st.sampled_from([24, 40, 48, 80])), min_size=1, max_size=6),
    steps=st.lists(st.tuples(st.sampled_from(["route", "complete", "drain"]), st.integers(0, 30),
                             st.sampled_from([10, 800, 4096, 4097, 9000])), max_size=60),
)  # fmt: skip
def test_best_fit_matches_a_plain_scan_of_its_rule(servers, steps):
    lb = Router(BestFit())
    for k, (cap, mem) in enumerate(servers):
        lb.add_server(f"s{k}", cap, mem)
    in_flight: list[str] = []
    for n, (kind, pick, tokens) in enumerate(steps):
        if kind == "route":
            want = best_fit_oracle(lb, tokens)
            if want is None:
                with pytest.raises(NoCapacityError):
                    lb.route_request(f"r{n}", tokens)
            else:
                assert lb.route_request(f"r{n}", tokens) == want
                in_flight.append(f"r{n}")
        elif kind == "complete" and in_flight:
            lb.complete_request(in_flight.pop(pick % len(in_flight)))
        elif kind == "drain":
            present = [sid for sid, s in lb.get_server_stats().items() if not s["is_draining"]]
            if present:
                lb.remove_server(present[pick % len(present)])


def test_rejection_rates_split_the_rejections_by_size():
    res = simulate(tie_break_scenario(requests=1_500, load=1.0), RouterFactory(BestFit), seed=3)
    large = res.estimated_tokens > 4096
    n_large, n_small = int(large.sum()), int((~large).sum())
    assert n_large > 0 and n_small > 0
    rejected = large_rejection_rate(res) * n_large + small_rejection_rate(res) * n_small
    assert round(rejected) == res.count(Outcome.REJECTED) > 0


def test_rates_are_nan_without_requests_of_that_size():
    res = simulate(tie_break_scenario(requests=300, large_share=0.0), RouterFactory(BestFit), seed=1)
    assert np.isnan(large_rejection_rate(res)) and small_rejection_rate(res) >= 0


@pytest.mark.parametrize(
    "kwargs, error",
    [({"large_share": 1.0}, ValueError), ({"large_share": -0.1}, ValueError), ({"capacity": 0}, ValueError),
     ({"requests": 1.5}, TypeError), ({"load": 0}, ValueError)],
)  # fmt: skip
def test_scenario_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        tie_break_scenario(**kwargs)


def test_scenario_gives_every_server_the_same_capacity_and_a_share_of_large_requests():
    scenario = tie_break_scenario(requests=2_000, large_share=0.2, capacity=8)
    assert {s.capacity for s in scenario.cluster.servers} == {8}
    assert {s.gpu for s in scenario.cluster.servers} == {"A10-24GB", "A100-40GB", "A100-80GB", "H100-80GB"}
    res = simulate(scenario, RouterFactory(BestFit), seed=0)
    assert 0.15 < float(np.mean(res.estimated_tokens > 4096)) < 0.22


def test_best_fit_trades_small_request_latency_for_large_request_rejections():
    """The measured trade-off, on paired seeds: fewer large rejections, more small ones, a slower median."""
    out = compare_tie_breaks(tie_break_scenario(requests=3_000, load=1.0), seeds=range(4), workers=1)
    _, _, high = out.race.difference("best-fit", "spec", "large_rejection_rate")
    assert high < 0
    _, low, _ = out.race.difference("best-fit", "spec", "small_rejection_rate")
    assert low > 0
    _, low, _ = out.race.difference("best-fit", "spec", "e2e_p50")
    assert low > 0
    table = out.table()
    assert "large_rejection_rate" in table and "paired interval" in table


def test_with_a_gateway_queue_the_comparison_measures_waits_by_size():
    scenario = tie_break_scenario(requests=1_500, load=1.0).with_queue(QueueConfig(QueuePolicy()))
    res = simulate(scenario, RouterFactory(BestFit), seed=2)
    large = res.estimated_tokens > 4096
    assert res.count(Outcome.REJECTED) == 0
    assert large_wait_mean(res) == pytest.approx(float(np.nanmean(res.wait[large])))
    assert small_wait_mean(res) == pytest.approx(float(np.nanmean(res.wait[~large])))
    assert large_wait_mean(res) > 0
    out = compare_tie_breaks(scenario, seeds=range(2), workers=1)
    assert out.race.metrics == ("large_wait_mean", "small_wait_mean", "e2e_p50", "e2e_p99")


def test_waits_are_nan_without_requests_of_that_size():
    res = simulate(tie_break_scenario(requests=300, large_share=0.0), RouterFactory(BestFit), seed=1)
    assert np.isnan(large_wait_mean(res)) and small_wait_mean(res) == 0.0  # no queue: dispatched on arrival
