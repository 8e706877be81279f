"""Stage 8's bad-input matrix: every bad construction and bad call raises the right built-in kind and changes nothing.

"Changes nothing" is checked against a twin: two retriers with the same seed
and the same history, one of which also receives the bad call; afterwards
both give the same stats and the same next decisions (so the random stream
was not touched either).
"""

from __future__ import annotations

import random

import pytest

from solution.core import health_types
from solution.core.retry_types import Failure, RetryBudget, RetryDecision, RetryPolicy

pytestmark = pytest.mark.stage8

NAN, INF = float("nan"), float("inf")

BUDGETS = [
    ({"ratio": -0.1}, ValueError),
    ({"ratio": 1.01}, ValueError),
    ({"ratio": NAN}, ValueError),
    ({"ratio": INF}, ValueError),
    ({"ratio": "0.2"}, TypeError),
    ({"ratio": True}, TypeError),
    ({"min_retries": -1}, ValueError),
    ({"min_retries": 1.5}, TypeError),
    ({"min_retries": True}, TypeError),
    ({"min_retries": "3"}, TypeError),
]


@pytest.mark.parametrize("kwargs, kind", BUDGETS)
def test_bad_budget(kwargs, kind):
    with pytest.raises(kind):
        RetryBudget(**kwargs)


@pytest.mark.parametrize("active, kind", [(-1, ValueError), (1.0, TypeError), (True, TypeError), (None, TypeError)])
def test_bad_budget_limit(active, kind):
    with pytest.raises(kind):
        RetryBudget().limit(active)


POLICIES = [
    ({"max_tries": 0}, ValueError),
    ({"max_tries": -1}, ValueError),
    ({"max_tries": 3.0}, TypeError),
    ({"max_tries": True}, TypeError),
    ({"base": -0.1}, ValueError),
    ({"base": NAN}, ValueError),
    ({"base": INF}, ValueError),
    ({"base": "0.1"}, TypeError),
    ({"base": 0.5, "cap": 0.1}, ValueError),
    ({"cap": NAN}, ValueError),
    ({"cap": INF}, ValueError),
    ({"cap": False}, TypeError),
    ({"per_try_timeout": 0}, ValueError),
    ({"per_try_timeout": -1.0}, ValueError),
    ({"per_try_timeout": NAN}, ValueError),
    ({"per_try_timeout": "5"}, TypeError),
    ({"max_retry_after": -1}, ValueError),
    ({"max_retry_after": NAN}, ValueError),
    ({"max_retry_after": None}, TypeError),
    ({"retry_on": "5xx"}, TypeError),
    ({"retry_on": None}, TypeError),
    ({"retry_on": {"6xx"}}, ValueError),
    ({"retry_on": {"5xx", "404"}}, ValueError),
    ({"retry_on": {503}}, TypeError),
    ({"budget": 0.2}, TypeError),
    ({"budget": {"ratio": 0.2}}, TypeError),
]


@pytest.mark.parametrize("kwargs, kind", POLICIES)
def test_bad_policy(kwargs, kind):
    with pytest.raises(kind):
        RetryPolicy(**kwargs)


def test_a_good_policy_is_normalised():
    policy = RetryPolicy(max_tries=4, base=1, cap=2, per_try_timeout=3, max_retry_after=INF, retry_on=["5xx", "429"])
    assert policy.retry_on == frozenset({"5xx", "429"})
    assert isinstance(policy.base, float) and isinstance(policy.per_try_timeout, float)
    assert RetryPolicy().budget == RetryBudget(ratio=0.2, min_retries=3)  # Envoy's defaults


FAILURES = [
    (("crash",), {}, ValueError),
    (("",), {}, ValueError),
    ((5,), {}, TypeError),
    (("status",), {}, TypeError),
    (("status", 200), {}, ValueError),
    (("status", 302), {}, ValueError),
    (("status", 600), {}, ValueError),
    (("status", True), {}, TypeError),
    (("status", "503"), {}, TypeError),
    (("status", 503.0), {}, TypeError),
    (("connect", 503), {}, ValueError),
    (("reset",), {"retry_after": 1.0}, ValueError),
    (("status", 429), {"retry_after": -1}, ValueError),
    (("status", 429), {"retry_after": NAN}, ValueError),
    (("status", 429), {"retry_after": INF}, ValueError),
    (("status", 429), {"retry_after": "2"}, TypeError),
    (("status", 429), {"retry_after": True}, TypeError),
]


@pytest.mark.parametrize("args, kwargs, kind", FAILURES)
def test_bad_failure(args, kwargs, kind):
    with pytest.raises(kind):
        Failure(*args, **kwargs)


DECISIONS = [
    ((True, 0.1, "budget"), ValueError),
    ((False, 0.0, "retry"), ValueError),
    ((False, 0.5, "max_tries"), ValueError),
    ((False, 0.0, "nope"), ValueError),
    ((1, 0.0, "retry"), TypeError),
    ((True, -1.0, "retry"), ValueError),
    ((True, NAN, "retry"), ValueError),
    ((True, "1", "retry"), TypeError),
]


@pytest.mark.parametrize("args, kind", DECISIONS)
def test_bad_decision(args, kind):
    with pytest.raises(kind):
        RetryDecision(*args)


ATTEMPTS = [(0, ValueError), (-1, ValueError), (True, TypeError), (1.0, TypeError), ("1", TypeError), (None, TypeError)]


@pytest.mark.parametrize("attempt, kind", ATTEMPTS)
def test_bad_attempt(impl, attempt, kind):
    with pytest.raises(kind):
        impl.backoff_bound(attempt, RetryPolicy())
    with pytest.raises(kind):
        impl.full_jitter(attempt, RetryPolicy(), random.Random(0))


@pytest.mark.parametrize("policy", [None, {"max_tries": 3}, (3, None)])
def test_bad_policy_argument(impl, policy):
    with pytest.raises(TypeError):
        impl.backoff_bound(1, policy)
    with pytest.raises(TypeError):
        impl.full_jitter(1, policy, random.Random(0))
    with pytest.raises(TypeError):
        impl.Retrier(policy)


def test_stage4_policy_is_stage8_policy(impl):
    """Stages 4 and 8 share one RetryPolicy: a stage-4 policy (positional max_tries, per_try_timeout) drives a Retrier."""
    policy = health_types.RetryPolicy(2, 5.0)
    assert policy.base == RetryPolicy().base and policy.budget == RetryPolicy().budget
    retrier = impl.Retrier(policy, seed=1)
    retrier.begin("r")
    assert retrier.decide("r", 1, Failure("reset"), streamed=False).retry
    assert retrier.decide("r", 2, Failure("reset"), streamed=False).reason == "max_tries"


@pytest.mark.parametrize("rng", [None, random, 7])
def test_bad_rng(impl, rng):
    with pytest.raises(TypeError):
        impl.full_jitter(1, RetryPolicy(), rng)


@pytest.mark.parametrize("seed", [1.5, True, "0", None])
def test_bad_seed(impl, seed):
    with pytest.raises(TypeError):
        impl.Retrier(RetryPolicy(), seed=seed)


# --- bad calls change nothing -------------------------------------------------------------------------------------


def history(impl):
    """A retrier with some history: r0 retrying (in flight), r1 refused by the budget, r2 active, r9 ended."""
    r = impl.Retrier(RetryPolicy(max_tries=5, budget=RetryBudget(ratio=0.0, min_retries=1)), seed=3)
    for rid in ("r0", "r1", "r2", "r9"):
        r.begin(rid)
    assert r.decide("r0", 1, Failure("reset"), streamed=False).retry
    assert r.decide("r1", 1, Failure("reset"), streamed=False).reason == "budget"
    r.end("r9")
    return r


def future(r):
    """What the retrier does next: its stats, then a few decisions that draw from its random stream."""
    out = [r.stats(), r.active, r.retries_in_flight]
    out.append(r.decide("r0", 2, Failure("status", 503), streamed=False))  # r0 releases its own slot: retries
    r.end("r0")
    out.append(r.decide("r1", 2, Failure("timeout"), streamed=False))
    out.append(r.decide("r2", 1, Failure("timeout"), streamed=False))  # budget: r1 holds the slot
    r.end("r1")
    out.append(r.decide("r2", 1, Failure("status", 429, retry_after=0.001), streamed=False))
    out.append(r.stats())
    return out


S503 = Failure("status", 503)

CALLS = [
    ("begin", ("",), {}, ValueError),
    ("begin", (5,), {}, TypeError),
    ("begin", (None,), {}, TypeError),
    ("begin", ("r0",), {}, ValueError),  # already active
    ("decide", ("nobody", 1, S503), {"streamed": False}, ValueError),
    ("decide", ("r9", 1, S503), {"streamed": False}, ValueError),  # ended
    ("decide", ("", 1, S503), {"streamed": False}, ValueError),
    ("decide", (7, 1, S503), {"streamed": False}, TypeError),
    ("decide", ("r0", 0, S503), {"streamed": False}, ValueError),
    ("decide", ("r0", -2, S503), {"streamed": False}, ValueError),
    ("decide", ("r0", True, S503), {"streamed": False}, TypeError),
    ("decide", ("r0", 1.0, S503), {"streamed": False}, TypeError),
    ("decide", ("r0", 1, "503"), {"streamed": False}, TypeError),
    ("decide", ("r0", 1, None), {"streamed": False}, TypeError),
    ("decide", ("r0", 1, ("status", 503)), {"streamed": False}, TypeError),
    ("decide", ("r0", 1, S503), {"streamed": None}, TypeError),
    ("decide", ("r0", 1, S503), {"streamed": 1}, TypeError),
    ("decide", ("r0", 1, S503), {"streamed": "no"}, TypeError),
    ("end", ("nobody",), {}, ValueError),
    ("end", ("r9",), {}, ValueError),  # already ended
    ("end", ("",), {}, ValueError),
    ("end", (None,), {}, TypeError),
]


@pytest.mark.parametrize("method, args, kwargs, kind", CALLS)
def test_a_bad_call_raises_and_changes_nothing(impl, method, args, kwargs, kind):
    victim, twin = history(impl), history(impl)
    with pytest.raises(kind):
        getattr(victim, method)(*args, **kwargs)
    assert future(victim) == future(twin)


def test_decide_without_streamed_is_refused(impl):
    """``streamed`` is keyword-only and required: forgetting it must not default to "may retry"."""
    r = history(impl)
    with pytest.raises(TypeError):
        r.decide("r2", 1, S503)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        r.decide("r2", 1, S503, False)  # type: ignore[misc]


def test_a_policy_round_trips_through_json_shaped_data():
    import json

    for policy in (RetryPolicy(), RetryPolicy(max_tries=5, base=0.1, cap=3, per_try_timeout=2, retry_on={"5xx"}, budget=None),
                   RetryPolicy(budget=RetryBudget(ratio=0.5, min_retries=0), max_retry_after=INF)):  # fmt: skip
        assert RetryPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    assert RetryPolicy.from_dict({}) == RetryPolicy()
    assert RetryPolicy.from_dict({"budget": None}).budget is None


@pytest.mark.parametrize("data, kind", [
    ({"max_try": 3}, ValueError),  # a typo is not silently a default
    ({"budget": {"percent": 20}}, ValueError),
    ({"budget": {"ratio": 2.0}}, ValueError),
    ({"max_tries": "3"}, TypeError),
    ({"retry_on": "5xx"}, TypeError),
    ({"budget": 0.2}, TypeError),
    ([("max_tries", 3)], TypeError),
])  # fmt: skip
def test_bad_policy_data(data, kind):
    with pytest.raises(kind):
        RetryPolicy.from_dict(data)
