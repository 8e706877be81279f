"""Stage 3, rule by rule: each strategy's choice in small clusters, feedback, explanations, bad input."""

from __future__ import annotations

import math

import pytest

from solution.core.latency import REFERENCE_MODEL
from solution.core.routing import Router

pytestmark = pytest.mark.stage3


def cluster(strategy, *servers, speeds=None) -> Router:
    router = Router(strategy, speeds=speeds)
    for sid, cap, mem in servers:
        router.add_server(sid, cap, mem)
    return router


def test_p2c_with_d_at_least_servers_is_least_loaded(impl):
    lb = cluster(impl.PowerOfChoices(d=5, seed=1), ("a", 4, 80), ("b", 4, 80), ("c", 2, 80))
    picks = [lb.route_request(f"r{i}", 10) for i in range(10)]
    assert {sid: s["current_load"] for sid, s in lb.get_server_stats().items()} == {"a": 4, "b": 4, "c": 2}
    assert picks.count("c") == 2


def test_p2c_is_seeded_and_spreads(impl):
    def run(seed):
        lb = cluster(impl.PowerOfChoices(d=2, seed=seed), *((f"s{k}", 100, 80) for k in range(8)))
        return [lb.route_request(f"r{i}", 10) for i in range(80)]

    assert run(3) == run(3)
    loads = [run(3).count(f"s{k}") for k in range(8)]
    assert max(loads) - min(loads) <= 3  # two choices keep loads within a few requests (random: 6 to 12 apart)


def test_p2c_only_draws_big_servers_for_large_requests(impl):
    lb = cluster(impl.PowerOfChoices(d=2, seed=0), ("small", 8, 24), ("big", 8, 80))
    assert {lb.route_request(f"r{i}", 9000) for i in range(8)} == {"big"}


def test_weighted_response_time_avoids_the_observed_slow_server(impl):
    lb = cluster(impl.WeightedResponseTime(alpha=0.5), ("fast", 8, 80), ("slow", 8, 80))
    a, b = lb.route_request("a", 100), lb.route_request("b", 100)
    assert {a, b} == {"fast", "slow"}  # no feedback yet: least-connections
    lb.observe("a" if a == "fast" else "b", latency=1.0)  # 0.01 s per token
    lb.observe("a" if a == "slow" else "b", latency=10.0)  # 0.1 s per token
    lb.complete_request("a"), lb.complete_request("b")
    assert [lb.route_request(f"r{i}", 100) for i in range(5)] == ["fast"] * 5  # 0.01 * 6 < 0.1 * 1


def test_ewma_moves_by_alpha_and_peak_ewma_jumps_up(impl):
    for cls, want_up in ((impl.WeightedResponseTime, 0.01 + 0.5 * 0.99), (impl.PeakEwma, 1.0)):
        lb = cluster(cls(alpha=0.5), ("a", 8, 80))
        lb.route_request("x", 100)
        lb.observe("x", latency=1.0)  # 0.01 s/token: the first observation sets the cost
        lb.observe("x", tokens_per_s=1.0)  # 1 s/token
        (score,) = [c for c in lb.explain(100).candidates]
        assert math.isclose(score.key[0], want_up * 2), cls.__name__  # cost * (load 1 + 1)
        lb.observe("x", tokens_per_s=100.0)  # down: both decay by alpha
        assert math.isclose(lb.explain(100).candidates[0].key[0], (want_up + 0.5 * (0.01 - want_up)) * 2)


def test_least_outstanding_tokens_counts_tokens_not_requests(impl):
    lb = cluster(impl.LeastOutstandingTokens(), ("a", 8, 80), ("b", 8, 80))
    assert lb.route_request("long", 8000) == "a"
    assert [lb.route_request(f"s{i}", 100) for i in range(5)] == ["b"] * 5
    lb.complete_request("long")
    assert lb.route_request("next", 100) == "a"


def test_least_outstanding_tokens_counts_output_tokens_only(impl):
    """A prompt token is a share of one prefill iteration: a long prompt with a short answer is little decode work."""
    lb = cluster(impl.LeastOutstandingTokens(), ("a", 8, 80), ("b", 8, 80))
    assert lb.route_request("summarize", 4000, prompt_tokens=3990) == "a"  # 10 output tokens
    assert lb.route_request("essay", 600, prompt_tokens=100) == "b"  # 500 output tokens
    assert lb.route_request("next", 50, prompt_tokens=10) == "a"  # 10 < 500, although a holds 4,000 tokens
    assert lb.get_server_stats()["a"]["outstanding_output_tokens"] == 50


def predicted(stats, sid, prompt, output):
    """The oracle: the server's model (the reference model scaled by its speed) priced at its load."""
    return REFERENCE_MODEL.scaled(stats[sid]["speed"]).e2e(prompt, output, stats[sid]["current_load"])


def test_predictive_sends_a_long_answer_to_the_fast_gpu_even_when_busier(impl):
    lb = cluster(impl.Predictive(), ("slow", 8, 80), ("fast", 8, 80), speeds={"fast": 3.0})
    for i in range(4):
        lb.route_request(f"busy{i}", 10, prompt_tokens=5)
    stats = lb.get_server_stats()
    want = min(stats, key=lambda sid: predicted(stats, sid, 100, 2000))
    assert want == "fast" and lb.route_request("long", 2100, prompt_tokens=100) == "fast"


def test_predictive_does_not_queue_behind_outstanding_tokens(impl):
    """With continuous batching a request joins the batch: one long request ahead costs less than three short ones."""
    lb = cluster(impl.Predictive(), ("a", 8, 80), ("b", 8, 80))
    assert lb.route_request("huge", 30_000, prompt_tokens=1000) == "a"
    assert [lb.route_request(f"s{i}", 20, prompt_tokens=10) for i in range(3)] == ["b", "a", "b"]
    # now a runs 2 requests (30,010 tokens), b 2 (40 tokens): equal seconds, so the tie goes to the server added first
    assert lb.route_request("t", 20, prompt_tokens=10) == "a"


def test_predictive_uses_the_given_latency_model_not_only_the_speed(impl):
    """Two servers of equal speed; one is given a model whose decode is twice as slow: it is avoided."""
    slow = REFERENCE_MODEL.scaled(0.5)
    lb = Router(impl.Predictive(), models={"b": slow})
    lb.add_server("a", 8, 80), lb.add_server("b", 8, 80)
    lb.route_request("x", 100, prompt_tokens=50)  # on a (b is slower empty than a)
    assert [lb.route_request(f"r{i}", 500, prompt_tokens=100) for i in range(2)] == ["a", "a"]


def test_explain_names_the_winner_and_its_components(impl):
    lb = cluster(impl.Predictive(), ("slow", 8, 80), ("fast", 8, 80), speeds={"fast": 4.0})
    decision = lb.explain(1000, prompt_tokens=200)
    seconds = REFERENCE_MODEL.scaled(4.0).e2e(200, 800, 0)
    assert decision.chosen == "fast" and decision.candidates[0].components == (("expected seconds", seconds), ("load", 0))
    assert "expected seconds" in decision.decided_by
    assert lb.route_request("r", 1000, prompt_tokens=200) == decision.chosen


@pytest.mark.parametrize("class_name", ["PowerOfChoices", "WeightedResponseTime", "LeastOutstandingTokens", "Predictive"])
def test_explain_agrees_with_the_next_decision_and_changes_nothing(impl, class_name):
    lb = cluster(getattr(impl, class_name)(), *((f"s{k}", 3, 80) for k in range(5)), speeds={"s1": 2.0})
    for i in range(12):
        before = lb.get_server_stats()
        decision = lb.explain(100 * (i + 1))
        assert lb.get_server_stats() == before
        assert lb.route_request(f"r{i}", 100 * (i + 1)) == decision.chosen


@pytest.mark.parametrize(
    "make,error",
    [
        (lambda impl: impl.PowerOfChoices(d=0), ValueError),
        (lambda impl: impl.PowerOfChoices(d=2.0), TypeError),
        (lambda impl: impl.PowerOfChoices(seed=-1), ValueError),
        (lambda impl: impl.WeightedResponseTime(alpha=0.0), ValueError),
        (lambda impl: impl.WeightedResponseTime(alpha=2), ValueError),
        (lambda impl: impl.PeakEwma(alpha="x"), TypeError),
    ],
)
def test_bad_constructor_arguments(impl, make, error):
    with pytest.raises(error) as info:
        make(impl)
    assert not isinstance(info.value, NotImplementedError)


@pytest.mark.parametrize("class_name", ["PowerOfChoices", "WeightedResponseTime", "PeakEwma", "LeastOutstandingTokens", "Predictive"])
def test_a_strategy_serves_one_router(impl, class_name):
    strategy = getattr(impl, class_name)()
    Router(strategy)
    with pytest.raises(ValueError):
        Router(strategy)


@pytest.mark.parametrize("class_name", ["WeightedResponseTime", "PeakEwma"])
def test_bad_feedback_changes_nothing(impl, class_name):
    lb = cluster(getattr(impl, class_name)(), ("a", 4, 80), ("b", 4, 80))
    lb.route_request("x", 100)
    lb.observe("x", latency=2.0)
    before = lb.explain(100)
    for kwargs in ({"latency": -1.0}, {"latency": float("inf")}, {"tokens_per_s": 0}, {}, {"latency": 1.0, "tokens_per_s": 1.0}):
        with pytest.raises((TypeError, ValueError)):
            lb.observe("x", **kwargs)
    with pytest.raises(KeyError):
        lb.observe("ghost", latency=1.0)
    assert lb.explain(100) == before
