"""RequestPath with stage 8's retrier: backoff before re-sends, a retry budget, the retrier's reasons.

Each test names the rule it checks (solution/core/path.py's module docstring,
"Retries with backoff and a budget (stage 8)").  The state machine at the end
drives submits, answers and failures of every kind, lost servers, probes,
per-try timeouts, first tokens, cancels and time in any order and checks:
the budget is never exceeded, no re-send starts before its delay (nor before
a ``Retry-After``), nothing is re-sent after its first token, every re-send
was granted by the retrier, capacity is never exceeded, and every submitted
request ends exactly once with the retrier's books balanced.
"""

from __future__ import annotations

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from solution.core.errors import UnknownRequestError
from solution.core.health_types import HealthPolicy, HealthState
from solution.core.health_types import RetryPolicy as LedgerPolicy
from solution.core.path import (
    FAIL_REASONS,
    Cancelled,
    Delivered,
    Dispatched,
    Drained,
    Failed,
    Preempted,
    Queued,
    Rejected,
    RequestPath,
)
from solution.core.queue_types import QueuePolicy
from solution.core.request import Request
from solution.core.retry_types import Failure, RetryBudget, RetryDecision, RetryPolicy
from solution.core.routing import LeastConnections, Router
from solution.health import HealthChecker, RetryLedger
from solution.retry import Retrier, backoff_bound
from tests.path.test_path import FINAL, assert_empty, assert_router_holds_the_attempts, attempts_running
from tests.path.test_tiers import req as tier_req
from tests.path.test_tiers import table

pytestmark = pytest.mark.stage8


class Spy(Retrier):
    """The reference Retrier, recording every decision: (request id, tries, failure, streamed, decision, now)."""

    def __init__(self, policy: RetryPolicy, *, seed: int = 0) -> None:
        super().__init__(policy, seed=seed)
        self.now = 0.0  # the time of the path call in progress (the test sets it)
        self.log: list[tuple[str, int, Failure, bool, RetryDecision, float]] = []
        self.limits: list[tuple[int, int]] = []  # (retries in flight, budget limit) right after each "retry"

    def decide(self, request_id: str, tries: int, failure: Failure, *, streamed: bool) -> RetryDecision:
        d = super().decide(request_id, tries, failure, streamed=streamed)
        self.log.append((request_id, tries, failure, streamed, d, self.now))
        if d.retry and self.policy.budget is not None:
            self.limits.append((self.retries_in_flight, self.policy.budget.limit(self.active)))
        return d


def make(servers=("a", "b"), capacity: int = 4, *, policy: RetryPolicy | None = None, queue: QueuePolicy | None = None,
         per_try_timeout: float | None = None, health: HealthChecker | None = None, seed: int = 0) -> tuple[RequestPath, Spy]:  # fmt: skip
    policy = policy or RetryPolicy()
    spy = Spy(policy, seed=seed)
    path = RequestPath(Router(LeastConnections()), health=health, queue=queue, retrier=spy,
                       ledger=RetryLedger(LedgerPolicy(max_tries=policy.max_tries, per_try_timeout=per_try_timeout)))  # fmt: skip
    for sid in servers:
        path.add_server(sid, capacity, 80, 0.0)
    return path, spy


def finals(outcomes):
    return [o for o in outcomes if isinstance(o, FINAL)]


def done(path: RequestPath, spy: Spy) -> None:
    """Nothing leaked, in the path or the retrier."""
    assert_empty(path)
    assert path._backoff_due == [] and path.stats()["backing_off"] == 0
    assert spy.active == 0 and spy.retries_in_flight == 0


# -- construction, bad input, nothing changes without a retrier --------------------------------------


def test_without_a_retrier_stats_keep_their_keys_and_errors_are_not_re_sent():
    path = RequestPath(Router(LeastConnections()), ledger=RetryLedger())
    path.add_server("a", 4, 80, 0.0)
    path.add_server("b", 4, 80, 0.0)
    assert not {"retried", "retry_budget_exhausted", "backing_off"} & set(path.stats())
    path.submit(Request("r", 10), 0.0)
    assert path.completed("r", "a", 1.0, ok=False, failure=Failure("status", 503)) == [Failed("r", 1.0, "error", "a", 1)]


def test_a_retrier_needs_a_ledger_with_as_many_tries():
    with pytest.raises(TypeError, match="needs ledger"):
        RequestPath(Router(), retrier=Retrier(RetryPolicy()))
    with pytest.raises(ValueError, match="max_tries"):
        RequestPath(Router(), ledger=RetryLedger(LedgerPolicy(max_tries=2)), retrier=Retrier(RetryPolicy(max_tries=3)))
    with pytest.raises(TypeError, match="Retrier"):
        RequestPath(Router(), ledger=RetryLedger(), retrier=object())
    assert "budget" in FAIL_REASONS and "retry_after_too_long" in FAIL_REASONS


def test_a_bad_failure_changes_nothing():
    path, spy = make()
    path.submit(Request("r", 10), 0.0)
    before = (path.stats(), path.in_flight(), spy.stats())
    with pytest.raises(TypeError, match="Failure"):
        path.completed("r", "a", 1.0, ok=False, failure="503")
    with pytest.raises(ValueError, match="ok=False"):
        path.completed("r", "a", 1.0, ok=True, failure=Failure("status", 503))
    assert (path.stats(), path.in_flight(), spy.stats()) == before


# -- begin and end around each request ----------------------------------------------------------------


def test_begin_at_admission_end_at_the_final_outcome_and_a_rejection_is_never_active():
    path, spy = make(servers=("a",), capacity=1)
    path.submit(Request("r1", 10), 0.0)
    assert spy.active == 1
    assert finals(path.submit(Request("r2", 10), 0.0)) == [Rejected("r2", 0.0, 1, 503)]  # no queue, no slot
    assert spy.active == 1
    path.completed("r1", "a", 1.0)
    done(path, spy)


def test_a_queued_request_is_active_and_ends_once():
    path, spy = make(servers=("a",), capacity=1, queue=QueuePolicy(max_depth=1, max_wait=5.0))
    path.submit(Request("r1", 10), 0.0)
    assert isinstance(path.submit(Request("r2", 10), 0.0)[-1], Queued)
    assert isinstance(path.submit(Request("r3", 10), 0.0)[-1], Rejected)  # the queue is full
    assert spy.active == 2
    path.completed("r1", "a", 1.0)
    path.completed("r2", "a", 2.0)
    done(path, spy)


def test_a_request_the_admission_hook_refuses_is_never_active():
    spy = Spy(RetryPolicy())
    path = RequestPath(Router(LeastConnections()), ledger=RetryLedger(), retrier=spy,
                       admission=lambda request, now: Rejected(request.request_id, now, 2, 429))  # fmt: skip
    path.add_server("a", 4, 80, 0.0)
    assert path.submit(Request("r", 10), 0.0) == [Rejected("r", 0.0, 2, 429)]
    assert spy.active == 0 and path.stats()["rejected"] == 1


class AlwaysRetry:
    """A retrier by protocol only (begin / decide / end, no policy): always "retry" after 0.5 s."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def begin(self, request_id: str) -> None:
        self.calls.append(("begin", request_id))

    def decide(self, request_id: str, tries: int, failure: Failure, *, streamed: bool) -> RetryDecision:
        self.calls.append(("decide", request_id))
        return RetryDecision(True, 0.5, "retry")

    def end(self, request_id: str) -> None:
        self.calls.append(("end", request_id))


def test_the_ledger_overrules_a_retrier_that_says_yes_too_often():
    retrier = AlwaysRetry()
    path = RequestPath(Router(LeastConnections()), ledger=RetryLedger(LedgerPolicy(max_tries=2)), retrier=retrier)
    path.add_server("a", 4, 80, 0.0)
    path.add_server("b", 4, 80, 0.0)
    path.submit(Request("r", 10), 0.0)
    path.server_lost("a", 1.0)
    assert [(o.server_id, o.attempt) for o in path.tick(1.5)] == [("b", 2)]
    assert finals(path.server_lost("b", 2.0)) == [Failed("r", 2.0, "out_of_tries", "b", 2)]  # the ledger's 2 tries are spent
    assert retrier.calls == [("begin", "r"), ("decide", "r"), ("decide", "r"), ("end", "r")]
    assert path.stats()["retried"] == 1


# -- the decision before each re-send -----------------------------------------------------------------


def test_an_error_answer_backs_off_then_goes_through_routing_to_another_server():
    path, spy = make(policy=RetryPolicy(base=1.0, cap=1.0), seed=3)
    path.submit(Request("r", 10), 0.0)
    assert path.completed("r", "a", 1.0, ok=False, failure=Failure("status", 503)) == []
    (rid, tries, failure, streamed, d, _), = spy.log
    assert (rid, tries, failure, streamed, d.retry) == ("r", 1, Failure("status", 503), False, True) and 0 < d.delay <= 1.0
    due = 1.0 + d.delay
    assert path.next_event_time() == due and path.in_flight() == {} and path.stats()["backing_off"] == 1
    assert path.stats()["waiting"] == 0 and path.router.get_server_stats()["a"]["current_load"] == 0  # no slot, no queue
    assert path.tick((1.0 + due) / 2) == []  # not before its delay
    assert path.tick(due) == [Dispatched("r", "b", due, 0.0, 2, "a", None)]
    assert path.stats()["retried"] == 1 and path.stats()["backing_off"] == 0
    assert path.completed("r", "b", due + 1) == [Delivered("r", "b", due + 1, 2)]
    done(path, spy)


def test_a_missing_failure_is_a_500():
    path, spy = make()
    path.submit(Request("r", 10), 0.0)
    path.completed("r", "a", 1.0, ok=False)
    assert spy.log[0][2] == Failure("status", 500)


def test_retry_after_is_honoured():
    path, spy = make(policy=RetryPolicy(base=0.01, cap=0.01))
    path.submit(Request("r", 10), 0.0)
    path.completed("r", "a", 1.0, ok=False, failure=Failure("status", 429, retry_after=5.0))
    due = 1.0 + spy.log[0][4].delay
    assert 1.0 + 5.0 <= due <= 1.0 + 5.0 + backoff_bound(1, spy.policy) and path.next_event_time() == due  # Retry-After + jitter
    assert path.tick(5.99) == [] and path.tick(due - 1e-9) == []
    assert [o.at for o in path.tick(due) if isinstance(o, Dispatched)] == [due]


def test_a_zero_delay_re_sends_at_once_as_stage_4():
    path, spy = make(policy=RetryPolicy(base=0.0, cap=0.0))
    path.submit(Request("r", 10), 0.0)
    assert path.completed("r", "a", 1.0, ok=False) == [Dispatched("r", "b", 1.0, 0.0, 2, "a", None)]
    assert path.stats()["backing_off"] == 0


@pytest.mark.parametrize(("failure", "reason"), [
    (Failure("status", 404), "not_retryable"),
    (Failure("status", 429, retry_after=60.0), "retry_after_too_long"),
])  # fmt: skip
def test_a_refusal_fails_with_the_decisions_reason(failure, reason):
    path, spy = make()
    path.submit(Request("r", 10), 0.0)
    assert path.completed("r", "a", 1.0, ok=False, failure=failure) == [Failed("r", 1.0, reason, "a", 1)]
    done(path, spy)


def test_a_failure_class_not_in_retry_on_is_not_retried():
    path, spy = make(policy=RetryPolicy(retry_on={"5xx"}))
    path.submit(Request("r", 10), 0.0)
    sid = path.in_flight()["r"]
    assert finals(path.server_lost(sid, 1.0)) == [Failed("r", 1.0, "not_retryable", sid, 1)]
    done(path, spy)


def test_max_tries_counts_error_answers_and_lost_servers_alike():
    path, spy = make(servers=("a", "b", "c"), policy=RetryPolicy(max_tries=3, base=0.0, cap=0.0))
    path.submit(Request("r", 10), 0.0)
    path.completed("r", "a", 1.0, ok=False, failure=Failure("status", 502))  # try 1: an answer (a new ledger record)
    sid = path.in_flight()["r"]
    path.completed("r", sid, 2.0, ok=False, failure=Failure("connect"))  # try 2
    sid = path.in_flight()["r"]
    out = path.server_lost(sid, 3.0)  # try 3: the ledger's record holds one try, the path counts all three
    assert finals(out) == [Failed("r", 3.0, "max_tries", sid, 3)]
    assert [entry[1] for entry in spy.log] == [1, 2, 3]
    done(path, spy)


def test_never_a_re_send_after_the_first_token():
    path, spy = make()
    path.submit(Request("r1", 10), 0.0)
    path.submit(Request("r2", 10), 0.0)
    path.first_token("r1", 0.5)
    path.first_token("r2", 0.5)
    assert path.completed("r1", "a", 1.0, ok=False, failure=Failure("status", 503)) == [Failed("r1", 1.0, "streamed", "a", 1)]
    assert finals(path.server_lost("b", 1.0)) == [Failed("r2", 1.0, "streamed", "b", 1)]
    assert [entry[3] for entry in spy.log] == [True, True]
    done(path, spy)


def test_the_budget_refuses_retries_over_its_share_of_active_requests():
    path, spy = make(servers=("a", "b"), capacity=8, policy=RetryPolicy(budget=RetryBudget(ratio=0.1, min_retries=1), base=1.0))
    for i in range(8):
        path.submit(Request(f"r{i}", 10), 0.0)
    on_a = sorted(r for r, s in path.in_flight().items() if s == "a")
    out = path.server_lost("a", 1.0)  # 4 attempts lost, 8 active: max(1, floor(0.8)) = 1 retry may be in flight
    failed = finals(out)
    assert len(failed) == 3 and {o.reason for o in failed} == {"budget"}
    assert path.stats()["backing_off"] == 1 and path.stats()["retry_budget_exhausted"] == 3
    assert spy.retries_in_flight == 1 and {o.request_id for o in failed} < set(on_a)
    assert all(n <= limit for n, limit in spy.limits)


@pytest.mark.parametrize("budget", [None, RetryBudget()])
def test_the_budget_caps_a_retry_storm(budget):
    """A sick fleet answers every attempt with a 503: without a budget each request is tried max_tries times (3x the
    load); with Envoy's (20%, at least 3) the re-sends in flight stay within a fifth of the active requests."""
    n = 50
    path, spy = make(servers=("a", "b", "c", "d"), capacity=n, policy=RetryPolicy(max_tries=3, base=0.0, cap=0.0, budget=budget))
    for i in range(n):
        path.submit(Request(f"r{i}", 10), 0.0)
    t = 0.0
    while path.in_flight():
        t += 1.0
        for rid, sid in sorted(path.in_flight().items()):
            path.completed(rid, sid, t, ok=False, failure=Failure("status", 503))
    sent = path.stats()["dispatched"]
    if budget is None:
        assert sent == 3 * n and path.stats()["retry_budget_exhausted"] == 0
    else:
        # the first wave re-sends a fifth of the 50 (10); as requests fail the base shrinks, and min_retries (3) remain
        assert sent - n <= budget.limit(n) + budget.min_retries and path.stats()["retry_budget_exhausted"] >= n - budget.limit(n)
        assert all(inflight <= limit for inflight, limit in spy.limits)
    assert path.stats()["failed"] == n
    done(path, spy)


def test_a_retry_in_flight_frees_its_budget_when_it_ends():
    path, spy = make(servers=("a", "b"), policy=RetryPolicy(budget=RetryBudget(ratio=0.0, min_retries=1), base=0.0, cap=0.0))
    path.submit(Request("r1", 10), 0.0)
    path.submit(Request("r2", 10), 0.0)
    path.completed("r1", "a", 1.0, ok=False)  # r1 re-sent to a... or b: a retry in flight
    assert spy.retries_in_flight == 1
    assert finals(path.completed("r2", "b", 1.0, ok=False)) == [Failed("r2", 1.0, "budget", "b", 1)]
    path.completed("r1", path.in_flight()["r1"], 2.0)  # the retry answered: its budget is free again
    assert spy.retries_in_flight == 0
    path.submit(Request("r3", 10), 3.0)
    assert path.completed("r3", path.in_flight()["r3"], 4.0, ok=False)[0].attempt == 2
    assert path.stats()["retry_budget_exhausted"] == 1


def test_a_per_try_timeout_is_a_timeout_failure():
    path, spy = make(per_try_timeout=2.0, policy=RetryPolicy(base=1.0, cap=1.0), seed=1)
    path.submit(Request("r", 10), 0.0)
    assert path.next_event_time() == 2.0
    assert path.tick(2.0) == []  # timed out: it backs off; the attempt runs on, abandoned
    assert spy.log[0][2] == Failure("timeout") and path.abandoned() == {"a": ["r"]}
    due = 2.0 + spy.log[0][4].delay
    assert [(o.server_id, o.attempt, o.at) for o in path.tick(due)] == [("b", 2, due)]


def test_a_lost_server_is_a_reset_and_its_re_send_waits_in_the_queue_for_another():
    path, spy = make(servers=("a", "b"), capacity=1, policy=RetryPolicy(base=1.0, cap=1.0), queue=QueuePolicy(max_wait=50.0))
    path.submit(Request("r", 10), 0.0)
    path.submit(Request("s", 10), 0.0)  # b's only slot
    assert finals(path.server_lost("a", 1.0)) == [] and spy.log[0][2] == Failure("reset")
    due = 1.0 + spy.log[0][4].delay
    out = path.tick(due)  # a is lost (weight 0), b is full: the queue
    assert len(out) == 1 and isinstance(out[0], Queued) and out[0].request_id == "r"
    out = path.completed("s", "b", due + 1)
    assert [(o.request_id, o.server_id, o.attempt, o.previous) for o in out if isinstance(o, Dispatched)] == [("r", "b", 2, "a")]
    path.completed("r", "b", due + 2)
    done(path, spy)


def test_down_by_health_is_a_reset():
    policy = HealthPolicy(interval=1.0, timeout=0.5, unhealthy_threshold=2, jitter=0.0)
    path, spy = make(health=HealthChecker(policy, seed=1), policy=RetryPolicy(base=0.5, cap=0.5))
    path.submit(Request("r", 10), 0.0)
    first = path.in_flight()["r"]
    t = 0.0
    while path.health.state(first) is not HealthState.DOWN:
        t = path.next_event_time()
        path.tick(t)
        for sid in path.due_probes(t):
            path.probe_result(sid, sid != first, t)
    assert spy.log[0][2] == Failure("reset") and path.stats()["backing_off"] == 1


def test_a_request_backing_off_can_be_cancelled_and_has_no_attempt():
    path, spy = make(policy=RetryPolicy(base=1.0, cap=1.0))
    path.submit(Request("r", 10), 0.0)
    path.completed("r", "a", 1.0, ok=False)
    with pytest.raises(UnknownRequestError, match="backing off"):
        path.first_token("r", 1.1)
    assert path.cancel("r", 1.2) == [Cancelled("r", 1.2, 1.2)]
    assert path.next_event_time() is None and path.tick(5.0) == []
    done(path, spy)


def test_after_backoff_a_full_fleet_queues_it_or_without_a_queue_fails_it():
    for queue in (QueuePolicy(max_wait=10.0), None):
        path, spy = make(servers=("a",), capacity=1, policy=RetryPolicy(base=1.0, cap=1.0), queue=queue)
        path.submit(Request("r", 10), 0.0)
        path.completed("r", "a", 1.0, ok=False)
        path.submit(Request("s", 10), 1.0)  # takes the slot r gave back
        out = path.tick(2.0)
        if queue is None:
            assert finals(out) == [Failed("r", 2.0, "no_server", "a", 1)]
            path.completed("s", "a", 3.0)
        else:
            assert isinstance(out[-1], Queued)
            out = path.completed("s", "a", 3.0)
            assert [(o.request_id, o.attempt) for o in out if isinstance(o, Dispatched)] == [("r", 2)]
            path.completed("r", "a", 4.0)
        done(path, spy)


def test_a_drain_timeout_re_send_is_not_asked_and_takes_no_budget():
    path, spy = make(policy=RetryPolicy(budget=RetryBudget(ratio=0.0, min_retries=0)))
    path.submit(Request("r", 10), 0.0)
    out = path.remove_server("a", 1.0, drain_timeout=0.0)
    assert [(o.server_id, o.attempt) for o in out if isinstance(o, Dispatched)] == [("b", 2)]
    assert spy.log == []


def test_a_resume_after_a_preemption_is_not_a_try():
    from solution.tiers import Preemptor, TierRouting

    tiers = table(reserved=0.0)
    spy = Spy(RetryPolicy(base=0.0, cap=0.0))
    path = RequestPath(Router(TierRouting(tiers)), ledger=RetryLedger(), queue=QueuePolicy(), tiers=tiers,
                       preemptor=Preemptor(tiers, mode="recompute"), retrier=spy)  # fmt: skip
    path.add_server("a", 1, 80, 0.0)
    path.add_server("b", 1, 80, 0.0)
    path.submit(tier_req("v", "batch"), 0.0)
    path.submit(tier_req("w", "batch"), 0.0)
    out = path.submit(tier_req("p", "premium"), 1.0)
    victim = next(o for o in out if isinstance(o, Preempted))
    assert spy.active == 3 and spy.log == []  # a preemption is not a failure
    out = path.completed("p", victim.server_id, 2.0)  # the victim resumes there
    resumed = next(o for o in out if isinstance(o, Dispatched))
    assert resumed.request_id == victim.request_id and resumed.attempt == 2
    out = path.completed(victim.request_id, resumed.server_id, 3.0, ok=False)
    assert spy.log[0][1] == 1  # its first failed try: the pause and the resume counted once
    assert [(o.request_id, o.attempt) for o in out if isinstance(o, Dispatched)] == [(victim.request_id, 3)]


# -- the state machine ----------------------------------------------------------------------------------

FAILURES = [None, Failure("status", 500), Failure("status", 503), Failure("status", 429, retry_after=1.5),
            Failure("status", 429, retry_after=100.0), Failure("status", 404), Failure("connect"), Failure("reset"),
            Failure("timeout")]  # fmt: skip
SERVERS = ("a", "b", "c")


class RetryMachine(RuleBasedStateMachine):
    """Any interleaving of requests, answers, failures of every kind, crashes, probes, cancels and time, with a retrier."""

    @initialize(queue=st.booleans(), timeout=st.sampled_from([None, 2.0]), max_tries=st.integers(2, 4),
                base=st.sampled_from([0.3, 2.0, 0.0]), budget=st.sampled_from([None, (0.0, 0), (0.2, 1), (0.5, 2)]))  # fmt: skip
    def setup(self, queue, timeout, max_tries, base, budget):
        policy = RetryPolicy(max_tries=max_tries, base=base, cap=max(base, 1.0), max_retry_after=10.0,
                             budget=None if budget is None else RetryBudget(*budget))  # fmt: skip
        health = HealthPolicy(interval=1.0, timeout=0.5, unhealthy_threshold=2, healthy_threshold=1, consecutive_5xx=3,
                              base_ejection_time=2.0, max_ejection_time=8.0, jitter=0.0)  # fmt: skip
        self.path, self.spy = make(SERVERS, 2, policy=policy, per_try_timeout=timeout, health=HealthChecker(health, seed=2),
                                   queue=QueuePolicy(max_depth=4, max_wait=6.0) if queue else None, seed=7)  # fmt: skip
        self.now = 0.0
        self.outcomes: list = []
        self.submitted: set[str] = set()
        self.streamed: set[str] = set()  # requests whose current attempt streamed a token
        self.granted: dict[str, tuple[float, float, float]] = {}  # request -> (decided at, delay, retry-after) of its last "retry"
        self.seen = 0  # decisions already checked
        self.forced: set[str] = set()  # requests a drain timeout stopped: their re-send is not the retrier's (stage 7)
        self.next_id = 0

    def call(self, method, *args, **kwargs):
        self.spy.now = self.now
        before = self.path.in_flight()
        outs = method(*args, **kwargs)
        stopped = {o.server_id for o in outs if isinstance(o, Drained) and o.forced}
        self.forced |= {rid for rid, sid in before.items() if sid in stopped}
        self.record(outs)

    def record(self, outs):
        for entry in self.spy.log[self.seen:]:
            rid, _, failure, streamed, d, at = entry
            assert streamed == (rid in self.streamed), f"{rid}: the path told the retrier streamed={streamed}"
            if d.retry:
                self.granted[rid] = (at, d.delay, failure.retry_after or 0.0)
        self.seen = len(self.spy.log)
        for o in outs:
            if isinstance(o, Dispatched) and o.attempt > 1:
                assert o.request_id not in self.streamed, f"re-sent after its first token: {o}"
                if o.request_id in self.forced and o.request_id not in self.granted:
                    self.forced.discard(o.request_id)  # its server's drain timeout stopped it: re-sent at once, not asked
                    continue
                assert o.request_id in self.granted, f"a re-send the retrier did not grant: {o}"
                at, delay, retry_after = self.granted.pop(o.request_id)
                assert o.at >= at + delay and o.at >= at + retry_after, f"re-sent before its delay: {o}, due {at + delay}"
            if isinstance(o, Dispatched):
                self.streamed.discard(o.request_id)
            if isinstance(o, FINAL):
                self.granted.pop(o.request_id, None)
                self.forced.discard(o.request_id)
        self.outcomes += outs

    def running(self):
        return attempts_running(self.path)

    @rule(tokens=st.sampled_from([10, 300]), n=st.integers(1, 3))
    def submit(self, tokens, n):
        for _ in range(n):
            rid = f"q{self.next_id}"
            self.next_id += 1
            self.submitted.add(rid)
            self.call(self.path.submit, Request(rid, tokens), self.now)

    @precondition(lambda self: self.running())
    @rule(data=st.data(), failure=st.sampled_from(FAILURES))
    def answer(self, data, failure):
        running = self.running()
        if running:
            rid, sid = data.draw(st.sampled_from(running))
            if failure is None:
                self.call(self.path.completed, rid, sid, self.now, seconds_per_token=0.02)
            else:
                self.call(self.path.completed, rid, sid, self.now, ok=False, failure=failure)

    @precondition(lambda self: self.path.in_flight())
    @rule(data=st.data())
    def first_token(self, data):
        live = sorted(self.path.in_flight())
        if live:
            rid = data.draw(st.sampled_from(live))
            self.path.first_token(rid, self.now)
            self.streamed.add(rid)

    @rule(sid=st.sampled_from(SERVERS), restarted=st.booleans())
    def crash(self, sid, restarted):
        """Every connection to the server breaks; a restarted one answers its next probe at once."""
        if self.path.server_state(sid) != "gone":
            self.call(self.path.server_lost, sid, self.now)
            if restarted and self.path.server_state(sid) != "gone":
                self.call(self.path.probe_result, sid, True, self.now)

    @rule(dt=st.sampled_from([0.1, 0.5, 1.0, 3.0]), sick=st.sampled_from([*SERVERS, "none"]))
    def time_passes(self, dt, sick):
        """Time moves to the next event or by dt; probes of every server but ``sick`` answer."""
        self.now += dt
        nxt = self.path.next_event_time()
        if nxt is not None and nxt < self.now:
            self.now = nxt
        self.call(self.path.tick, self.now)
        for sid in self.path.due_probes(self.now):
            self.call(self.path.probe_result, sid, sid != sick, self.now)

    @rule(sid=st.sampled_from(SERVERS), timeout=st.sampled_from([0.0, 0.5, 2.0]))
    def drain(self, sid, timeout):
        """Stage 7's drain with a timeout; the server comes back (a new process under its id) once it is gone."""
        if self.path.server_state(sid) == "gone":
            self.call(self.path.add_server, sid, 2, 80, self.now)
        elif self.path.server_state(sid) != "draining" and sum(self.path.server_state(s) != "gone" for s in SERVERS) > 1:
            self.call(self.path.remove_server, sid, self.now, drain_timeout=timeout)

    @precondition(lambda self: self.path._flights)
    @rule(data=st.data())
    def cancel(self, data):
        live = sorted(self.path._flights)
        if live:
            self.call(self.path.cancel, data.draw(st.sampled_from(live)), self.now)

    @invariant()
    def the_budget_is_never_exceeded(self):
        assert all(n <= limit for n, limit in self.spy.limits), self.spy.limits
        assert self.spy.active == self.path.stats()["open"], "the retrier's active requests are the path's open ones"

    @invariant()
    def capacity_is_never_exceeded_and_backoff_holds_no_slot(self):
        assert_router_holds_the_attempts(self.path)
        assert all(s["current_load"] <= s["capacity"] for s in self.path.router.get_server_stats().values())
        backing = {rid for rid, f in self.path._flights.items() if f.backoff is not None}
        assert len(backing) == self.path.stats()["backing_off"] and not backing & set(self.path.in_flight())

    @invariant()
    def at_most_one_end(self):
        ends = [o.request_id for o in self.outcomes if isinstance(o, FINAL)]
        assert len(ends) == len(set(ends)), "a request ended twice"
        s = self.path.stats()
        assert s["submitted"] == s["delivered"] + s["failed"] + s["rejected"] + s["timed_out"] + s["cancelled"] + s["open"]
        assert all(o.reason in FAIL_REASONS for o in self.outcomes if isinstance(o, Failed))

    def teardown(self):
        if not hasattr(self, "path"):
            return
        for _ in range(200):  # answer everything, let time pass, until nothing runs, waits or backs off
            running = self.running()
            if not running and not self.path._flights:
                break
            self.now += 1.0
            for rid, sid in running:
                if (rid, sid) in self.running():
                    self.call(self.path.completed, rid, sid, self.now, seconds_per_token=0.02)
            self.call(self.path.tick, self.now)
            for sid in self.path.due_probes(self.now):
                self.call(self.path.probe_result, sid, True, self.now)
        ends = [o.request_id for o in self.outcomes if isinstance(o, FINAL)]
        assert sorted(ends) == sorted(self.submitted), "every submitted request ends exactly once"
        reasons = {entry[4].reason for entry in self.spy.log}
        event(f"re-sent after a backoff: {any(entry[4].delay > 0 for entry in self.spy.log)}, budget said no: {'budget' in reasons}")
        event(f"a drain timeout stopped requests: {self.path.stats()['drain_forced'] > 0}")
        event(f"decisions: {min(len(self.spy.log), 5)}{'+' if len(self.spy.log) >= 5 else ''}")
        done(self.path, self.spy)


TestRetryMachine = RetryMachine.TestCase
TestRetryMachine.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
