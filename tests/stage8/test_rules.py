"""Stage 8's retry rules, one test each: what is retried, in which order the rules apply, the backoff, the budget.

The reason strings are part of the API (the request path turns them into
``Failed(reason=...)``, the gateway into metrics), so the tests name them exactly.
"""

from __future__ import annotations

import random

import pytest

from solution.core.retry_types import REASONS, Failure, RetryBudget, RetryDecision, RetryPolicy

pytestmark = pytest.mark.stage8

S503 = Failure("status", 503)
NO_BUDGET = RetryPolicy(budget=None)


def retrier(impl, policy=NO_BUDGET, *, seed=0, active=1):
    """A retrier with requests r0 .. r{active-1} begun."""
    r = impl.Retrier(policy, seed=seed)
    for i in range(active):
        r.begin(f"r{i}")
    return r


def test_reasons_are_exactly_the_design():
    assert REASONS == ("streamed", "not_retryable", "max_tries", "retry_after_too_long", "budget", "retry")


def test_a_first_failure_is_retried(impl):
    decision = retrier(impl).decide("r0", 1, S503, streamed=False)
    assert isinstance(decision, RetryDecision)
    assert decision.retry is True and decision.reason == "retry"


@pytest.mark.parametrize("failure", [Failure("connect"), Failure("reset"), Failure("timeout"), Failure("status", 500),
                                     Failure("status", 503, retry_after=1), Failure("status", 429, retry_after=2),
                                     Failure("status", 404)])  # fmt: skip
def test_never_a_retry_after_streaming(impl, failure):
    """Rule 1 comes first: once tokens reached the client nothing is retried, whatever the failure."""
    decision = retrier(impl).decide("r0", 1, failure, streamed=True)
    assert (decision.retry, decision.delay, decision.reason) == (False, 0.0, "streamed")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 499])
def test_a_4xx_other_than_429_is_not_retryable(impl, status):
    decision = retrier(impl).decide("r0", 1, Failure("status", status), streamed=False)
    assert (decision.retry, decision.reason) == (False, "not_retryable")


@pytest.mark.parametrize("failure", [Failure("connect"), Failure("reset"), Failure("timeout"), Failure("status", 500),
                                     Failure("status", 502), Failure("status", 599), Failure("status", 429)])  # fmt: skip
def test_the_default_retry_on_covers_transport_errors_5xx_and_429(impl, failure):
    assert retrier(impl).decide("r0", 1, failure, streamed=False).reason == "retry"


@pytest.mark.parametrize("retry_on, failure, reason", [
    ({"5xx"}, Failure("connect"), "not_retryable"),
    ({"5xx"}, Failure("status", 429), "not_retryable"),
    ({"5xx"}, Failure("status", 503), "retry"),
    ({"429"}, Failure("status", 500), "not_retryable"),
    ({"connect", "reset"}, Failure("timeout"), "not_retryable"),
    ({"connect", "reset"}, Failure("reset"), "retry"),
    (set(), Failure("connect"), "not_retryable"),
])  # fmt: skip
def test_retry_on_selects_what_is_retried(impl, retry_on, failure, reason):
    r = retrier(impl, RetryPolicy(retry_on=retry_on, budget=None))
    assert r.decide("r0", 1, failure, streamed=False).reason == reason


def test_max_tries_counts_the_first_attempt(impl):
    r = retrier(impl, RetryPolicy(max_tries=3, budget=None))
    assert r.decide("r0", 1, S503, streamed=False).reason == "retry"
    assert r.decide("r0", 2, S503, streamed=False).reason == "retry"
    assert r.decide("r0", 3, S503, streamed=False).reason == "max_tries"
    assert r.decide("r0", 7, S503, streamed=False).reason == "max_tries"


def test_max_tries_one_never_retries(impl):
    assert retrier(impl, RetryPolicy(max_tries=1, budget=None)).decide("r0", 1, Failure("reset"), streamed=False).reason == "max_tries"


def test_a_retry_after_over_the_limit_goes_back_to_the_client(impl):
    r = retrier(impl, RetryPolicy(max_retry_after=30.0, budget=None), active=2)
    assert r.decide("r0", 1, Failure("status", 429, retry_after=31), streamed=False).reason == "retry_after_too_long"
    at_limit = r.decide("r1", 1, Failure("status", 429, retry_after=30), streamed=False)
    assert at_limit.reason == "retry" and 30.0 <= at_limit.delay <= 30.0 + impl.backoff_bound(1, RetryPolicy())


@pytest.mark.parametrize("retry_after", [0.0, 0.01, 0.5, 2.0, 7.0])
def test_retry_after_is_honoured_and_the_jitter_spreads_above_it(impl, retry_after):
    """Never earlier than the server asked (RFC 9110 10.2.3), and not all at once: Retry-After + full jitter."""
    policy = RetryPolicy(base=0.1, cap=1.0, budget=None)
    bound = impl.backoff_bound(2, policy)
    r = retrier(impl, policy, active=200)
    extra = [r.decide(f"r{i}", 2, Failure("status", 503, retry_after=retry_after), streamed=False).delay - retry_after
             for i in range(200)]  # fmt: skip
    assert all(0.0 <= e <= bound + 1e-12 for e in extra)
    assert min(extra) < 0.05 * bound and max(extra) > 0.95 * bound  # spread over the whole window above Retry-After


def test_the_rules_apply_in_order(impl):
    """Each pair: both rules would say no; the earlier one is the reason."""
    tight = RetryPolicy(max_tries=2, max_retry_after=1.0, budget=RetryBudget(ratio=0.0, min_retries=0))
    r = retrier(impl, tight)
    assert r.decide("r0", 5, Failure("status", 404), streamed=True).reason == "streamed"
    assert r.decide("r0", 5, Failure("status", 404), streamed=False).reason == "not_retryable"
    assert r.decide("r0", 5, Failure("status", 429, retry_after=9), streamed=False).reason == "max_tries"
    assert r.decide("r0", 1, Failure("status", 429, retry_after=9), streamed=False).reason == "retry_after_too_long"
    assert r.decide("r0", 1, Failure("status", 429, retry_after=0.5), streamed=False).reason == "budget"


def test_min_retries_allow_retries_when_few_requests_are_active(impl):
    """Envoy's min_retry_concurrency: 20% of 5 active is 1, but 3 retries may be in flight."""
    r = retrier(impl, RetryPolicy(budget=RetryBudget(ratio=0.2, min_retries=3)), active=5)
    reasons = [r.decide(f"r{i}", 1, S503, streamed=False).reason for i in range(5)]
    assert reasons == ["retry"] * 3 + ["budget"] * 2
    assert r.retries_in_flight == 3


def test_the_budget_is_a_share_of_the_active_requests(impl):
    """Envoy's budget_percent: 20% of 100 active requests -> at most 20 retries in flight."""
    r = retrier(impl, RetryPolicy(budget=RetryBudget(ratio=0.2, min_retries=3)), active=100)
    reasons = [r.decide(f"r{i}", 1, S503, streamed=False).reason for i in range(100)]
    assert reasons.count("retry") == 20 and reasons[:20] == ["retry"] * 20
    assert r.retries_in_flight == 20
    assert r.stats()["budget_exhausted"] == 80


def test_a_decimal_ratio_means_what_it_says(impl):
    """29% of 100 is 29 (0.29 * 100 is 28.999999999999996 in floating point)."""
    assert RetryBudget(ratio=0.29, min_retries=0).limit(100) == 29
    r = retrier(impl, RetryPolicy(budget=RetryBudget(ratio=0.29, min_retries=0)), active=100)
    assert [r.decide(f"r{i}", 1, S503, streamed=False).reason for i in range(30)].count("retry") == 29


def test_without_a_budget_every_failure_is_retried(impl):
    """The storm: with budget=None all 100 failing requests retry at once."""
    r = retrier(impl, NO_BUDGET, active=100)
    assert all(r.decide(f"r{i}", 1, S503, streamed=False).retry for i in range(100))
    assert r.retries_in_flight == 100


def test_a_zero_budget_never_retries(impl):
    r = retrier(impl, RetryPolicy(budget=RetryBudget(ratio=0.0, min_retries=0)))
    assert r.decide("r0", 1, S503, streamed=False).reason == "budget"


def test_a_retry_is_in_flight_until_the_next_decision_or_the_end(impl):
    r = retrier(impl, RetryPolicy(max_tries=5, budget=RetryBudget(ratio=0.0, min_retries=1)), active=2)
    assert r.decide("r0", 1, S503, streamed=False).retry
    assert r.retries_in_flight == 1
    assert r.decide("r1", 1, S503, streamed=False).reason == "budget"  # r0's retry holds the one slot
    assert r.decide("r0", 2, S503, streamed=False).retry  # r0's own next decision releases its slot first
    assert r.retries_in_flight == 1
    assert r.decide("r0", 5, S503, streamed=False).reason == "max_tries"  # a no releases it too
    assert r.retries_in_flight == 0
    assert r.decide("r1", 1, S503, streamed=False).retry
    r.end("r1")  # the end releases it
    assert (r.active, r.retries_in_flight) == (1, 0)


def test_ended_requests_leave_the_budget_base(impl):
    r = retrier(impl, RetryPolicy(budget=RetryBudget(ratio=0.5, min_retries=0)), active=4)
    assert r.decide("r0", 1, S503, streamed=False).retry
    assert r.decide("r1", 1, S503, streamed=False).retry
    for rid in ("r2", "r3"):
        r.end(rid)
    assert r.active == 2
    assert r.decide("r1", 2, S503, streamed=False).reason == "budget"  # limit floor(0.5 * 2) = 1, r0 holds it


def test_backoff_bound_doubles_up_to_the_cap(impl):
    policy = RetryPolicy(base=0.025, cap=1.0)
    assert [impl.backoff_bound(n, policy) for n in range(1, 9)] == [0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert impl.backoff_bound(10**6, policy) == 1.0
    assert impl.backoff_bound(5, RetryPolicy(base=0.0, cap=0.0)) == 0.0


def test_full_jitter_stays_within_its_bound_and_reaches_both_ends(impl):
    policy = RetryPolicy(base=0.1, cap=2.0)
    rng = random.Random(5)
    for attempt in (1, 2, 3, 5, 9):
        bound = impl.backoff_bound(attempt, policy)
        waits = [impl.full_jitter(attempt, policy, rng) for _ in range(400)]
        assert all(0.0 <= w <= bound for w in waits)
        assert min(waits) < 0.05 * bound and max(waits) > 0.95 * bound  # full jitter: from 0, not from bound / 2


def test_full_jitter_uses_only_the_rng_it_is_given(impl):
    policy = RetryPolicy()
    random.seed(123)
    before = random.getstate()
    a = [impl.full_jitter(2, policy, random.Random(9)) for _ in range(3)]
    assert random.getstate() == before
    assert a[0] == a[1] == a[2]
    rng = random.Random(9)
    assert [impl.full_jitter(2, policy, rng) for _ in range(5)] != [a[0]] * 5


def test_the_delay_of_a_retry_is_the_full_jitter_of_its_tries(impl):
    policy = RetryPolicy(base=0.05, cap=0.3, max_tries=10, budget=None)
    r = retrier(impl, policy, active=200)
    for tries in (1, 2, 3, 4, 9):
        bound = impl.backoff_bound(tries, policy)
        delays = [r.decide(f"r{i}", tries, Failure("reset"), streamed=False).delay for i in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > 0.9 * bound


def test_the_same_seed_gives_the_same_decisions(impl):
    def run(seed):
        r = retrier(impl, RetryPolicy(budget=None), seed=seed, active=20)
        return [r.decide(f"r{i}", 1 + i % 2, S503, streamed=False).delay for i in range(20)]

    assert run(4) == run(4)
    assert run(4) != run(5)


def test_a_no_has_delay_zero(impl):
    r = retrier(impl, RetryPolicy(max_tries=1))
    assert r.decide("r0", 1, Failure("status", 503, retry_after=3), streamed=False) == RetryDecision(False, 0.0, "max_tries")


def test_stats_count_every_decision_by_reason(impl):
    r = retrier(impl, RetryPolicy(budget=RetryBudget(ratio=0.0, min_retries=1)), active=3)
    r.decide("r0", 1, S503, streamed=False)  # retry
    r.decide("r1", 1, S503, streamed=False)  # budget
    r.decide("r2", 1, S503, streamed=True)  # streamed
    r.decide("r2", 1, Failure("status", 400), streamed=False)  # not_retryable
    r.end("r2")
    stats = r.stats()
    assert stats["decisions"] == 4 and stats["retries"] == 1 and stats["budget_exhausted"] == 1
    assert (stats["active"], stats["retries_in_flight"]) == (2, 1)
    assert stats["by_reason"] == {"streamed": 1, "not_retryable": 1, "max_tries": 0, "retry_after_too_long": 0, "budget": 1, "retry": 1}
    stats["by_reason"]["retry"] = 99  # a copy
    assert r.stats()["by_reason"]["retry"] == 1


def test_begin_and_end_count_the_active_requests(impl):
    r = impl.Retrier(RetryPolicy())
    assert (r.active, r.retries_in_flight) == (0, 0)
    r.begin("a")
    r.begin("b")
    assert r.active == 2
    r.end("a")
    assert r.active == 1
    r.begin("a")  # an ended id may be begun again
    assert r.active == 2


def test_the_types_docstring_examples_hold():
    import doctest

    from solution.core import retry_types

    result = doctest.testmod(retry_types)
    assert result.attempted >= 2 and result.failed == 0


@pytest.mark.parametrize("failure, category", [(Failure("connect"), "connect"), (Failure("reset"), "reset"), (Failure("timeout"), "timeout"),
                                                (Failure("status", 429), "429"), (Failure("status", 500), "5xx"),
                                                (Failure("status", 599), "5xx"), (Failure("status", 404), "4xx")])  # fmt: skip
def test_a_failure_names_its_category(failure, category):
    assert failure.category == category
