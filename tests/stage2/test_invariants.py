"""Stage 2: invariants after every step, checked by a hypothesis state machine.

The machine drives the queue as a gateway would (time only moves forward;
when it passes a deadline, ``expire`` is called at that instant) and keeps
its own plain model: the waiting requests with their keys, skip counts and
the reservation.  After every step it checks:

* the depth never exceeds ``max_depth`` and equals the model's;
* the ordering's guarantee: ``peek`` names the reserved request, else the
  fitting request with the smallest key (FIFO: the oldest; priority: the
  highest class, oldest first; SJF: ``size + aging_rate * arrival`` with
  ``size = output + prompt_token_weight * prompt``, or ``tokens`` without a
  split), and under SJF no request B is served before a fitting one A that
  arrived ``(size_A - size_B) / aging_rate`` seconds or more earlier;
* every request is accounted for exactly once: each ``enqueue`` ends, or
  will end, in exactly one of dispatched / rejected / timed out / cancelled,
  and the stats' counts agree;
* timeouts happen at exactly the deadline, in arrival order.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from solution.core.clock import ManualClock
from solution.core.queue_types import Cancelled, Dispatched, Queued, QueuePolicy, Rejected, TimedOut

pytestmark = pytest.mark.stage2

REQUEST_IDS = st.sampled_from([f"r{i}" for i in range(12)])
TOKENS = st.sampled_from([1, 40, 700, 4096, 4097, 20_000])
STEPS = st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0])
PROMPT_SHARES = st.sampled_from([None, 0.0, 0.5, 0.99, 1.0])  # None: no split given

POLICIES = {
    "fifo": QueuePolicy(ordering="fifo", max_depth=5, max_wait=4.0, max_skips=2, reject_status=429),
    "priority": QueuePolicy(ordering="priority", max_depth=5, max_wait=6.0, max_skips=3),
    "sjf": QueuePolicy(ordering="sjf", max_depth=6, max_wait=None, aging_rate=400.0, max_skips=2),
}


def make_machine(impl: Any, policy: QueuePolicy) -> type[RuleBasedStateMachine]:
    class QueueMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = ManualClock()
            self.q = impl.RequestQueue(self.clock, policy)
            self.seq = 0
            self.model: dict[str, dict[str, Any]] = {}  # waiting: id -> {key, large, at, tokens, deadline, skips}
            self.reserved: str | None = None
            self.ends: Counter[str] = Counter()  # outcome kind -> count
            self.submitted = 0

        # -- the model's rules ---------------------------------------------------------

        @staticmethod
        def size(tokens: int, prompt: int | None) -> float:
            """SJF's size: output tokens plus prompt tokens at their weight; every token when no split is given."""
            return float(tokens) if prompt is None else (tokens - prompt) + policy.prompt_token_weight * prompt

        def key(self, size: float, priority: int, at: float) -> tuple[float, int]:
            primary = {"fifo": 0.0, "priority": float(-priority), "sjf": size + policy.aging_rate * at}[policy.ordering.value]
            return (primary, self.seq)

        def expected_head(self, large_ok: bool) -> str | None:
            if large_ok and self.reserved is not None:
                return self.reserved
            fitting = [(m["key"], rid) for rid, m in self.model.items() if large_ok or not m["large"]]
            return min(fitting)[1] if fitting else None

        def leave(self, rid: str, kind: str) -> None:
            del self.model[rid]
            self.ends[kind] += 1
            if self.reserved == rid:
                self.reserved = None

        # -- rules ---------------------------------------------------------------------------

        @rule(rid=REQUEST_IDS, tokens=TOKENS, priority=st.integers(0, 2), share=PROMPT_SHARES)
        def enqueue(self, rid: str, tokens: int, priority: int, share: float | None) -> None:
            prompt = None if share is None else int(tokens * share)
            split = {} if prompt is None else {"prompt_tokens": prompt}
            if rid in self.model:
                with pytest.raises(ValueError):
                    self.q.enqueue(rid, tokens, priority, **split)
                return
            self.submitted += 1
            result = self.q.enqueue(rid, tokens, priority, **split)
            now = self.clock.now
            if policy.max_depth is not None and len(self.model) >= policy.max_depth:
                assert isinstance(result, Rejected) and result.status == policy.reject_status and result.at == now
                assert type(result.retry_after) is int and result.retry_after >= 1
                self.ends["rejected"] += 1
                return
            deadline = None if policy.max_wait is None else now + policy.max_wait
            assert result == Queued(rid, tokens, priority, now, deadline)
            size = self.size(tokens, prompt)
            self.model[rid] = {"key": self.key(size, priority, now), "large": tokens > policy.large_request_tokens,
                               "at": now, "size": size, "deadline": deadline, "skips": 0}  # fmt: skip
            self.seq += 1

        @rule(step=STEPS)
        def advance(self, step: float) -> None:
            """Move time forward, expiring at each deadline on the way, as a driver does."""
            target = self.clock.now + step
            while (deadline := self.q.next_deadline()) is not None and deadline <= target:
                waiting = [m["deadline"] for m in self.model.values()]
                assert deadline == min(waiting), "next_deadline is not the earliest deadline"
                self.clock.set(deadline)
                expired = self.q.expire()
                due = sorted((m["key"][1], rid) for rid, m in self.model.items() if m["deadline"] <= deadline)
                assert [o.request_id for o in expired] == [rid for _, rid in due], "expire() must time out the due requests, oldest first"
                for outcome in expired:
                    m = self.model[outcome.request_id]
                    assert outcome == TimedOut(outcome.request_id, m["deadline"], m["deadline"] - m["at"])
                    self.leave(outcome.request_id, "timed_out")
            if policy.max_wait is None:
                assert self.q.next_deadline() is None
            self.clock.set(target)

        @rule(large_ok=st.booleans(), server=st.sampled_from(["h100", "a10"]))
        def dispatch_next(self, large_ok: bool, server: str) -> None:
            head = self.q.peek(large_ok)
            expected = self.expected_head(large_ok)
            assert (head.request_id if head else None) == expected
            if head is None:
                return
            mine = self.model[expected]
            if policy.ordering.value == "sjf" and expected != self.reserved:
                for rid, other in self.model.items():
                    if other["key"][1] < mine["key"][1] and (large_ok or not other["large"]):  # fits, arrived earlier
                        late = mine["at"] - other["at"] >= (other["size"] - mine["size"]) / policy.aging_rate + 1e-9
                        assert not late, f"SJF served {expected} before {rid}, which arrived long enough before it"
            if not mine["large"] and self.reserved is None:
                larges = [(m["key"], rid) for rid, m in self.model.items() if m["large"]]
                if larges and min(larges)[0] < mine["key"]:
                    best = min(larges)[1]
                    self.model[best]["skips"] += 1
                    if self.model[best]["skips"] >= policy.max_skips:
                        self.reserved = best
            now = self.clock.now
            assert self.q.dispatch(expected, server) == Dispatched(expected, server, now, now - mine["at"])
            self.leave(expected, "dispatched")

        @rule(rid=REQUEST_IDS)
        def cancel(self, rid: str) -> None:
            if rid not in self.model:
                with pytest.raises(KeyError):
                    self.q.cancel(rid)
                return
            now = self.clock.now
            assert self.q.cancel(rid) == Cancelled(rid, now, now - self.model[rid]["at"])
            self.leave(rid, "cancelled")

        @precondition(lambda self: self.clock.now > 0)
        @rule()
        def complete_somewhere(self) -> None:
            self.q.record_completion()
            assert self.q.retry_after() >= 1

        # -- invariants ---------------------------------------------------------------------

        @invariant()
        def depth_within_bound(self) -> None:
            assert len(self.q) == len(self.model)
            if policy.max_depth is not None:
                assert len(self.q) <= policy.max_depth

        @invariant()
        def waiting_in_key_order(self) -> None:
            assert self.q.waiting() == [rid for _, rid in sorted((m["key"], rid) for rid, m in self.model.items())]

        @invariant()
        def every_request_accounted_for_once(self) -> None:
            s = self.q.stats()
            assert self.submitted == sum(self.ends.values()) + len(self.model)
            assert (s.dispatched, s.rejected, s.timed_out, s.cancelled) == (
                self.ends["dispatched"], self.ends["rejected"], self.ends["timed_out"], self.ends["cancelled"])  # fmt: skip
            assert s.enqueued == s.dispatched + s.timed_out + s.cancelled + s.depth
            assert s.depth <= s.peak_depth

    return QueueMachine


@pytest.mark.parametrize("ordering", list(POLICIES))
def test_state_machine(impl, ordering):
    machine = make_machine(impl, POLICIES[ordering])
    machine.TestCase.settings = settings(machine.TestCase.settings, stateful_step_count=40)
    machine.TestCase().runTest()
