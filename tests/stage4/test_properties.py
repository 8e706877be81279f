"""Stage 4 as a state machine: hypothesis drives a checker and a ledger with random faults and checks the invariants.

* a down server has weight 0 (never routable) and no trial limit;
* every transition is one of the documented rules (old state, new state, reason);
* at most ``max_ejection_percent`` of the fleet is ejected at each ejection;
* the ledger: every request ends at most once, at most one answer is delivered
  per request, a late answer is never delivered, and the counts add up.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from solution.core.health_types import HealthPolicy, HealthState, Reason, RetryPolicy

pytestmark = pytest.mark.stage4

H, DG, D, R = HealthState.HEALTHY, HealthState.DEGRADED, HealthState.DOWN, HealthState.RECOVERING

#: The documented rules: reason -> the (old, new) pairs it may produce.
ALLOWED = {
    Reason.ADDED_WARM: {(None, H)},
    Reason.ADDED: {(None, R)},
    Reason.PROBE_FAILURES: {(H, D), (DG, D), (R, D)},
    Reason.PROBE_SUCCESSES: {(D, R)},
    Reason.CONSECUTIVE_ERRORS: {(H, D), (DG, D), (R, D)},
    Reason.TRIAL_FAILED: {(R, D)},
    Reason.EJECTION_OVER: {(D, R)},
    Reason.SLOW_START_OVER: {(R, H), (R, DG)},
    Reason.ERROR_RATE: {(H, DG)},
    Reason.LATENCY_OUTLIER: {(H, DG)},
    Reason.RECOVERED: {(DG, H)},
}

SERVERS = st.sampled_from([f"s{i}" for i in range(6)])
REQUESTS = st.sampled_from([f"r{i}" for i in range(8)])
STEPS = st.sampled_from([0.0, 0.05, 0.5, 2.0, 7.0])


def make_machine(impl):
    class HealthMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.policy = HealthPolicy(interval=2.0, timeout=0.5, unhealthy_threshold=2, healthy_threshold=2, consecutive_5xx=1,
                                       base_ejection_time=10.0, max_ejection_time=40.0, max_ejection_percent=40.0, ewma_alpha=0.5,
                                       half_open_trials=2, slow_start_window=5.0, aggression=2.0, min_weight=0.1)  # fmt: skip
            self.hc = impl.HealthChecker(self.policy, seed=3)
            self.lg = impl.RetryLedger(RetryPolicy(max_tries=3, per_try_timeout=4.0))
            self.now = 0.0
            self.present: set[str] = set()
            self.seen = 0  # transitions checked so far
            self.delivered: set[str] = set()  # requests answered (True returned once)
            self.ended: dict[str, str] = {}  # request -> how it ended
            for i in range(5):
                self.hc.add_server(f"s{i}", 0.0, warm=True)
                self.present.add(f"s{i}")

        def tick(self, step: float) -> float:
            self.now = round(self.now + step, 6)
            return self.now

        # --- checker ---
        @rule(sid=SERVERS, warm=st.booleans(), step=STEPS)
        def add(self, sid, warm, step):
            if sid not in self.present:
                self.hc.add_server(sid, self.tick(step), warm=warm)
                self.present.add(sid)

        @precondition(lambda self: len(self.present) > 2)
        @rule(sid=SERVERS)
        def remove(self, sid):
            if sid in self.present:
                self.hc.remove_server(sid)
                self.present.discard(sid)

        @rule(sid=SERVERS, ok=st.booleans(), step=STEPS)
        def probe(self, sid, ok, step):
            now = self.tick(step)
            due = self.hc.due_probes(now)
            assert set(due) <= self.present
            if sid in self.present:
                self.hc.probe_result(sid, ok, now)

        @rule(sid=SERVERS, ok=st.booleans(), spt=st.none() | st.floats(0.001, 1.0), step=STEPS)
        def result(self, sid, ok, spt, step):
            if sid in self.present:
                before = self.hc.ejected_count()
                self.hc.request_result(sid, ok, self.tick(step), spt)
                if self.hc.ejected_count() > before:  # rule 4, at the moment of each ejection
                    assert self.hc.ejected_count() * 100 <= self.policy.max_ejection_percent * len(self.present)

        @rule(step=STEPS)
        def advance(self, step):
            self.hc.advance(self.tick(step))
            nxt = self.hc.next_change_time()
            assert nxt is None or nxt > self.now

        # --- ledger ---
        @rule(rid=REQUESTS, sid=SERVERS, step=STEPS)
        def begin(self, rid, sid, step):
            try:
                self.lg.begin(rid, sid, self.tick(step))
            except (ValueError, RuntimeError, KeyError):
                pass  # the request is running or ended: not re-sendable now

        @rule(rid=REQUESTS, step=STEPS)
        def token(self, rid, step):
            try:
                self.lg.first_token(rid, self.tick(step))
            except (ValueError, KeyError):
                pass

        @rule(sid=SERVERS, step=STEPS)
        def crash(self, sid, step):
            resend, failed = self.lg.server_down(sid, self.tick(step))
            for rid in failed:
                assert rid not in self.ended, f"{rid} ended twice"
                self.ended[rid] = "failed"
            assert not set(resend) & set(self.ended)

        @rule(rid=REQUESTS, step=STEPS)
        def timeout(self, rid, step):
            now = self.tick(step)
            try:
                deadline = self.lg.deadline(rid)
            except KeyError:
                return
            if deadline is not None and now >= deadline:
                if not self.lg.timed_out(rid, now):
                    assert rid not in self.ended
                    self.ended[rid] = "failed"

        @rule(rid=REQUESTS, sid=SERVERS, step=STEPS)
        def answer(self, rid, sid, step):
            try:
                status, current = self.lg.status(rid), self.lg.history(rid)[-1].server_id
            except KeyError:
                status, current = None, None
            delivered = self.lg.answer(rid, sid, self.tick(step))
            assert delivered == (status == "in flight" and current == sid), "only the attempt in flight is delivered"
            if delivered:
                assert rid not in self.delivered and rid not in self.ended
                self.delivered.add(rid)
                self.ended[rid] = "answered"

        @rule(rid=REQUESTS)
        def finish(self, rid):
            try:
                self.lg.finish(rid)
            except KeyError:
                return
            self.delivered.discard(rid)  # the id may be used again
            self.ended.pop(rid, None)

        # --- invariants ---
        @invariant()
        def down_is_never_routable(self):
            for sid in self.present:
                state = self.hc.state(sid)
                weight = self.hc.weight(sid, self.now)
                if state is D:
                    assert weight == 0.0 and self.hc.trial_limit(sid) is None
                else:
                    assert 0.0 < weight <= 1.0

        @invariant()
        def transitions_follow_their_rules(self):
            log = self.hc.transitions
            for t in log[self.seen:]:
                assert (t.old, t.new) in ALLOWED[t.reason], t
            times = [t.at for t in log]
            assert times == sorted(times)
            self.seen = len(log)

        @invariant()
        def stats_agree(self):
            stats = self.hc.get_server_stats()
            assert set(stats) == self.present
            assert self.hc.ejected_count() == sum(1 for s in stats.values() if s["state"] == "down" and s["ejected_until"] is not None)

        @invariant()
        def ledger_counts_add_up(self):
            s = self.lg.stats()
            assert s["tries"] == s["requests"] + s["re_sent"]
            assert s["in_flight"] >= 0

    return HealthMachine


def test_health_state_machine(impl):
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(make_machine(impl), settings=settings(max_examples=60, stateful_step_count=60, deadline=None))
