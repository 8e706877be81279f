"""Stage 8's retry properties: backoff bounds, uniform jitter, Retry-After, streaming, and a budget never exceeded.

The uniformity test is a chi-square goodness-of-fit test with a FIXED seed:
for a given implementation it gives the same answer on every run (a graded
test must not be flaky), and a correct implementation passes it unless its
draws are as unlikely as 1 in 1,000 (the test's level).  The wrong jitters a
candidate might write (none, "equal jitter" ``bound/2 + U(0, bound/2)``, a
draw over the wrong range) fail it by orders of magnitude, which
:func:`test_the_chi_square_test_rejects_wrong_jitters` shows.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule, run_state_machine_as_test

from solution.core.retry_types import FAILURE_KINDS, RETRY_ON, Failure, RetryBudget, RetryPolicy

pytestmark = pytest.mark.stage8

BINS = 20
SAMPLES = 2000
#: The chi-square distribution's 0.999 quantile with 19 degrees of freedom (checked below).
CHI2_CRITICAL = 43.82


def chi_square(values, bound):
    """Pearson's statistic for ``values`` against the uniform distribution on [0, bound], in BINS equal bins."""
    counts = [0] * BINS
    for v in values:
        counts[min(BINS - 1, int(v / bound * BINS))] += 1
    expected = len(values) / BINS
    return sum((c - expected) ** 2 / expected for c in counts)


def chi2_cdf(x, dof):
    """P(X <= x) for X ~ chi-square(dof): the regularized lower incomplete gamma P(dof/2, x/2), by its series."""
    s, z = dof / 2, x / 2
    term = total = 1.0 / s
    n = 1
    while term > 1e-16 * total:
        term *= z / (s + n)
        total += term
        n += 1
    return math.exp(s * math.log(z) - z - math.lgamma(s)) * total


def test_the_chi_square_critical_value():
    assert chi2_cdf(CHI2_CRITICAL, BINS - 1) == pytest.approx(0.999, abs=2e-5)
    assert chi2_cdf(2.0, 2) == pytest.approx(1 - math.exp(-1.0))  # dof 2 is an exponential: a check of chi2_cdf itself


@pytest.mark.parametrize("attempt", [1, 3, 7])
def test_full_jitter_is_uniform_on_zero_to_the_bound(impl, attempt):
    policy = RetryPolicy(base=0.05, cap=2.0)
    bound = impl.backoff_bound(attempt, policy)
    rng = random.Random(20261130 + attempt)
    waits = [impl.full_jitter(attempt, policy, rng) for _ in range(SAMPLES)]
    assert all(0.0 <= w <= bound for w in waits)
    assert chi_square(waits, bound) < CHI2_CRITICAL


@pytest.mark.parametrize("retry_after", [None, 3.0])
def test_decide_delays_are_uniform_above_retry_after(impl, retry_after):
    """A retry waits Retry-After (or 0) plus a uniform draw from [0, bound]."""
    policy = RetryPolicy(base=0.2, cap=1.0, max_tries=5, budget=None)
    failure = Failure("reset") if retry_after is None else Failure("status", 503, retry_after=retry_after)
    r = impl.Retrier(policy, seed=20261130)
    extra = []
    for i in range(SAMPLES):
        r.begin(f"r{i}")
        extra.append(r.decide(f"r{i}", 2, failure, streamed=False).delay - (retry_after or 0.0))
        r.end(f"r{i}")
    bound = impl.backoff_bound(2, policy)
    assert all(0.0 <= e <= bound + 1e-12 for e in extra)
    assert chi_square(extra, bound) < CHI2_CRITICAL


def test_the_chi_square_test_rejects_wrong_jitters():
    """The uniformity test can fail: the usual wrong jitters are far above the critical value."""
    rng = random.Random(1)
    bound = 1.0
    wrong = {
        "no jitter": [bound] * SAMPLES,
        "equal jitter": [bound / 2 + rng.random() * bound / 2 for _ in range(SAMPLES)],
        "half the range": [rng.random() * bound / 2 for _ in range(SAMPLES)],
        "a sum of two draws": [(rng.random() + rng.random()) * bound / 2 for _ in range(SAMPLES)],
    }
    for name, values in wrong.items():
        assert chi_square(values, bound) > 3 * CHI2_CRITICAL, name
    assert chi_square([rng.random() * bound for _ in range(SAMPLES)], bound) < CHI2_CRITICAL


policies = st.builds(
    RetryPolicy,
    max_tries=st.integers(1, 6),
    base=st.floats(0.0, 2.0),
    cap=st.floats(2.0, 60.0),
    max_retry_after=st.floats(0.0, 60.0),
    retry_on=st.frozensets(st.sampled_from(RETRY_ON)),
    budget=st.none() | st.builds(RetryBudget, ratio=st.floats(0.0, 1.0), min_retries=st.integers(0, 4)),
)
failures = st.one_of(
    st.sampled_from([k for k in FAILURE_KINDS if k != "status"]).map(Failure),
    st.builds(Failure, st.just("status"), st.integers(400, 599), st.none() | st.floats(0.0, 90.0)),
)


@settings(max_examples=60, deadline=None)
@given(policy=policies, attempt=st.integers(1, 80))
def test_backoff_bound_is_the_capped_doubling(impl, policy, attempt):
    bound = impl.backoff_bound(attempt, policy)
    assert bound == min(policy.cap, policy.base * 2.0 ** (attempt - 1))
    assert 0.0 <= bound <= policy.cap
    assert impl.backoff_bound(attempt + 1, policy) >= bound  # never shrinks


@settings(max_examples=60, deadline=None)
@given(policy=policies, attempt=st.integers(1, 80), seed=st.integers(0, 2**32))
def test_full_jitter_is_within_its_bound(impl, policy, attempt, seed):
    rng = random.Random(seed)
    bound = impl.backoff_bound(attempt, policy)
    for _ in range(5):
        assert 0.0 <= impl.full_jitter(attempt, policy, rng) <= bound


@settings(max_examples=80, deadline=None)
@given(policy=policies, tries=st.integers(1, 8), failure=failures, seed=st.integers(0, 100))
def test_streaming_and_retry_after(impl, policy, tries, failure, seed):
    """Never a retry after streaming; a retry never comes before Retry-After; too long a Retry-After is refused."""
    r = impl.Retrier(policy, seed=seed)
    r.begin("a")
    assert r.decide("a", tries, failure, streamed=True).reason == "streamed"
    decision = r.decide("a", tries, failure, streamed=False)
    if decision.retry:
        assert decision.delay >= (failure.retry_after or 0.0)
        assert decision.delay <= (failure.retry_after or 0.0) + impl.backoff_bound(tries, policy)
        assert failure.retry_after is None or failure.retry_after <= policy.max_retry_after
    elif decision.reason == "retry_after_too_long":
        assert failure.retry_after > policy.max_retry_after
    else:
        assert decision.delay == 0.0


def expected_reason(policy, tries, failure, streamed, in_flight_after_release, active):
    """The rules of the module's docstring, written out independently."""
    if streamed:
        return "streamed"
    category = failure.kind if failure.kind != "status" else ("429" if failure.status == 429 else "5xx" if failure.status >= 500 else "4xx")
    if category not in policy.retry_on:
        return "not_retryable"
    if tries >= policy.max_tries:
        return "max_tries"
    if failure.retry_after is not None and failure.retry_after > policy.max_retry_after:
        return "retry_after_too_long"
    if policy.budget is not None:
        limit = max(policy.budget.min_retries, math.floor(policy.budget.ratio * active + 1e-9))
        if in_flight_after_release + 1 > limit:
            return "budget"
    return "retry"


def make_machine(impl):
    class RetrierMachine(RuleBasedStateMachine):
        """Random begin / decide / end against a model of the active requests and their retries in flight."""

        requests = Bundle("requests")

        @initialize(policy=policies, seed=st.integers(0, 1000))
        def start(self, policy, seed):
            self.policy = policy
            self.r = impl.Retrier(policy, seed=seed)
            self.retrying: dict[str, bool] = {}
            self.counter = 0
            self.reasons: dict[str, int] = {}

        @rule(target=requests)
        def begin(self):
            self.counter += 1
            rid = f"q{self.counter}"
            self.r.begin(rid)
            self.retrying[rid] = False
            return rid

        @rule(rid=requests, tries=st.integers(1, 7), failure=failures, streamed=st.booleans())
        def decide(self, rid, tries, failure, streamed):
            if rid not in self.retrying:
                with pytest.raises(ValueError):
                    self.r.decide(rid, tries, failure, streamed=streamed)
                return
            in_flight = sum(self.retrying.values()) - self.retrying[rid]
            want = expected_reason(self.policy, tries, failure, streamed, in_flight, len(self.retrying))
            decision = self.r.decide(rid, tries, failure, streamed=streamed)
            assert decision.reason == want
            assert decision.retry == (want == "retry")
            self.retrying[rid] = decision.retry
            self.reasons[want] = self.reasons.get(want, 0) + 1
            if decision.retry:
                if self.policy.budget is not None:  # the budget is never exceeded
                    assert self.r.retries_in_flight <= self.policy.budget.limit(self.r.active)
                assert decision.delay >= (failure.retry_after or 0.0)
            else:
                assert decision.delay == 0.0

        @rule(rid=consumes(requests))
        def end(self, rid):
            self.r.end(rid)
            del self.retrying[rid]
            with pytest.raises(ValueError):
                self.r.end(rid)

        @invariant()
        def counters_match_the_model(self):
            if not hasattr(self, "r"):
                return
            assert self.r.active == len(self.retrying)
            assert self.r.retries_in_flight == sum(self.retrying.values())
            assert 0 <= self.r.retries_in_flight <= self.r.active
            stats = self.r.stats()
            assert stats["by_reason"] == {reason: self.reasons.get(reason, 0) for reason in stats["by_reason"]}
            assert stats["decisions"] == sum(self.reasons.values())

    return RetrierMachine


def test_random_begin_decide_end(impl):
    run_state_machine_as_test(make_machine(impl), settings=settings(max_examples=60, stateful_step_count=40, deadline=None))
