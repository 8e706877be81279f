"""The stage-2 parts every implementation shares: the policy, the outcome types, the clock, the gateway's contract."""

from __future__ import annotations

import math

import pytest

import solution
from solution.core.clock import ManualClock, read_clock
from solution.core.gateway import Gateway
from solution.core.queue_types import Cancelled, Dispatched, Ordering, QueuePolicy, Rejected, TimedOut


def test_policy_defaults_and_normalised_ordering():
    p = QueuePolicy()
    assert (p.ordering, p.max_depth, p.max_wait, p.large_request_tokens) == (Ordering.FIFO, None, None, 4096)
    assert QueuePolicy(ordering="sjf").ordering is Ordering.SJF
    assert QueuePolicy(ordering=Ordering.PRIORITY).ordering == "priority"
    assert QueuePolicy(max_wait=3).max_wait == 3.0 and type(QueuePolicy(max_wait=3).max_wait) is float
    assert QueuePolicy().is_large(4097) and not QueuePolicy().is_large(4096)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"ordering": "lifo"}, ValueError),
        ({"ordering": 1}, TypeError),
        ({"max_depth": -1}, ValueError),
        ({"max_depth": 2.0}, TypeError),
        ({"max_depth": True}, TypeError),
        ({"max_wait": 0}, ValueError),
        ({"max_wait": -1.0}, ValueError),
        ({"max_wait": math.inf}, ValueError),
        ({"max_wait": math.nan}, ValueError),
        ({"max_wait": "5"}, TypeError),
        ({"aging_rate": 0}, ValueError),
        ({"aging_rate": None}, TypeError),
        ({"large_request_tokens": 0}, ValueError),
        ({"max_skips": 0}, ValueError),
        ({"rate_window": 0.0}, ValueError),
        ({"scale_up_depth": -1}, ValueError),
        ({"scale_up_after": -0.5}, ValueError),
        ({"scale_up_after": False}, TypeError),
        ({"prompt_token_weight": -0.1}, ValueError),
        ({"prompt_token_weight": math.inf}, ValueError),
        ({"prompt_token_weight": "0.01"}, TypeError),
        ({"reject_status": 500}, ValueError),
        ({"reject_status": 503.0}, TypeError),
        ({"reject_status": True}, TypeError),
    ],
)
def test_policy_rejects_bad_values(kwargs, error):
    with pytest.raises(error):
        QueuePolicy(**kwargs)


def test_the_default_rejection_is_503_and_a_prompt_token_costs_about_a_hundredth():
    """503 for a full queue (RFC 9110); the weight is the reference model's prefill token over a decode step."""
    from solution.core.latency import REFERENCE_MODEL
    from solution.core.queue_types import PROMPT_TOKEN_WEIGHT

    assert QueuePolicy().reject_status == 503 and QueuePolicy(reject_status=429).reject_status == 429
    assert QueuePolicy().prompt_token_weight == PROMPT_TOKEN_WEIGHT == REFERENCE_MODEL.token_s / REFERENCE_MODEL.decode_step(1)
    assert 1 / 200 < PROMPT_TOKEN_WEIGHT < 1 / 50
    p = QueuePolicy(prompt_token_weight=0.25)
    assert p.job_size(100) == 100.0 and type(p.job_size(100)) is float
    assert p.job_size(100, 40) == 60 + 0.25 * 40 and p.job_size(100, 0) == 100.0


def test_outcomes_compare_by_kind_and_fields():
    assert Cancelled("r", 1.0, 1.0) != TimedOut("r", 1.0, 1.0)
    assert Dispatched("r", "s", 0.0, 0.0) == Dispatched("r", "s", 0.0, 0.0)
    assert Rejected("r", 0.0, 7).headers == {"Retry-After": "7"} and Rejected("r", 0.0, 7).status == 503


def test_errors_subclass_builtins_and_the_stage1_types():
    assert issubclass(solution.AlreadyWaitingError, solution.DuplicateRequestError)
    assert issubclass(solution.AlreadyWaitingError, ValueError)
    assert issubclass(solution.NotWaitingError, solution.UnknownRequestError)
    assert issubclass(solution.NotWaitingError, KeyError)


def test_manual_clock():
    clock = ManualClock(1.0)
    assert clock() == 1.0 and clock.advance(0.5) == 1.5 and clock.set(2.0) == 2.0
    with pytest.raises(ValueError):
        clock.set(1.0)
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(TypeError):
        clock.advance("1")
    assert clock() == 2.0


def test_read_clock_checks_the_time():
    assert read_clock(lambda: 3, 1.0) == 3.0
    with pytest.raises(ValueError, match="back"):
        read_clock(lambda: 0.5, 1.0)
    with pytest.raises(ValueError):
        read_clock(lambda: math.inf, 1.0)
    with pytest.raises(TypeError):
        read_clock(lambda: None, 1.0)


def test_gateway_needs_a_balancer_a_queue_and_a_clock():
    clock = ManualClock()
    queue = solution.RequestQueue(clock)
    with pytest.raises(TypeError, match="balancer"):
        Gateway(object(), queue, clock)
    with pytest.raises(TypeError, match="queue"):
        Gateway(solution.LoadBalancer(), object(), clock)
    with pytest.raises(TypeError, match="clock"):
        Gateway(solution.LoadBalancer(), queue, 0.0)
    with pytest.raises(TypeError, match="on_outcome"):
        Gateway(solution.LoadBalancer(), queue, clock, on_outcome=3)


def test_gateway_does_not_take_a_stub_or_a_bug_for_a_full_cluster():
    class Broken(solution.LoadBalancer):
        def route_request(self, request_id: str, estimated_tokens: int) -> str:
            raise NotImplementedError("stage 1 stub")

    clock = ManualClock()
    gw = Gateway(Broken(), solution.RequestQueue(clock), clock)
    with pytest.raises(NotImplementedError):
        gw.submit("a", 10)
    assert gw.in_flight() == {} and len(gw.queue) == 0


def test_gateway_bad_input_changes_nothing():
    clock = ManualClock()
    gw = Gateway(solution.LoadBalancer(), solution.RequestQueue(clock), clock)
    gw.add_server("s", 1, 80)
    gw.submit("a", 10)
    for call, error in [(lambda: gw.submit("b", 0), ValueError), (lambda: gw.submit(None, 10), TypeError),
                        (lambda: gw.submit("b", 10, -1), ValueError), (lambda: gw.complete("ghost"), KeyError),
                        (lambda: gw.cancel("ghost"), KeyError), (lambda: gw.add_server("s", 1, 80), ValueError)]:  # fmt: skip
        with pytest.raises(error):
            call()
        assert gw.in_flight() == {"a": "s"} and len(gw.queue) == 0
