"""RequestPath, the one request path of stages 4-8: exactly-once under crashes, loss without re-route, no leaks.

The state machine at the end drives submit / first token / complete / crash /
probe / tick in any order and checks that every submitted request ends
exactly once, no request is answered twice, nothing is dispatched to a server
that is down, and the path's internal maps are empty once everything ended.
"""

from __future__ import annotations

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from solution.core.errors import DuplicateRequestError, TimeWentBackwardsError, UnknownRequestError, UnknownServerError
from solution.core.health_types import HealthPolicy, HealthState, RetryPolicy
from solution.core.path import Cancelled, Delivered, Discarded, Dispatched, Failed, Queued, Rejected, RequestPath, TimedOut
from solution.core.queue_types import QueuePolicy
from solution.core.request import Request
from solution.core.routing import LeastConnections, Router
from solution.health import HealthChecker, RetryLedger
from solution.strategies import PowerOfChoices

FINAL = (Delivered, Failed, Rejected, TimedOut, Cancelled)


def make_path(servers=("a", "b", "c"), capacity=4, *, health=True, ledger=True, queue=None, policy=None, retry=None, strategy=None):
    path = RequestPath(
        Router(strategy or LeastConnections()),
        health=HealthChecker(policy or HealthPolicy(), seed=1) if health else None,
        ledger=RetryLedger(retry or RetryPolicy()) if ledger else None,
        queue=queue,
    )
    for sid in servers:
        path.add_server(sid, capacity, 80, 0.0)
    return path


def finals(outcomes):
    return [o for o in outcomes if isinstance(o, FINAL)]


def attempts_running(path: RequestPath) -> list[tuple[str, str]]:
    """``(request_id, server_id)`` of every attempt that holds a slot: the current ones and the abandoned ones."""
    pairs = list(path.in_flight().items())
    pairs += [(rid, sid) for sid, rids in path.abandoned().items() for rid in rids]
    return sorted(pairs)


def assert_router_holds_the_attempts(path: RequestPath) -> None:
    """Every attempt the path says runs (current or abandoned) is one request in the router, and nothing else is."""
    counted: dict[str, int] = {}
    for _, sid in attempts_running(path):
        counted[sid] = counted.get(sid, 0) + 1
    loads = {sid: s["current_load"] for sid, s in path.router.get_server_stats().items()}
    assert {k: v for k, v in loads.items() if v} == counted


def assert_empty(path: RequestPath) -> None:
    """Nothing leaked: every internal map is empty and the router holds no request."""
    assert path._flights == {} and path._on == {} and path._ghosts == {} and path._ghosts_on == {} and path._ghost_count == {}
    assert path._timeouts == []
    assert all(s["current_load"] == 0 for s in path.router.get_server_stats().values())
    if path.ledger is not None:
        assert path.ledger.stats()["in_flight"] == 0 and path.ledger._requests == {}


# -- a crash: re-route on and off ---------------------------------------------------------------


def crash_run(ledger: bool, n: int = 30):
    path = make_path(capacity=20, ledger=ledger, health=True)
    out = []
    for i in range(n):
        out += path.submit(Request(f"r{i}", 200), 0.1 * i)
    on_a = [rid for rid, sid in path.in_flight().items() if sid == "a"]
    out += path.server_lost("a", 5.0)
    t = 5.0
    while path.in_flight():
        for rid, sid in sorted(path.in_flight().items()):
            t += 0.01
            out += path.completed(rid, sid, t, seconds_per_token=0.02)
    return path, out, on_a


def test_crash_with_reroute_loses_nothing_and_answers_once():
    path, out, on_a = crash_run(ledger=True)
    assert len(on_a) == 10
    ends = finals(out)
    assert len(ends) == 30 and {o.request_id for o in ends} == {f"r{i}" for i in range(30)}
    assert all(isinstance(o, Delivered) for o in ends)  # none lost
    resent = [o for o in out if isinstance(o, Dispatched) and o.attempt == 2]
    assert sorted(o.request_id for o in resent) == sorted(on_a) and all(o.previous == "a" and o.server_id != "a" for o in resent)
    assert path.stats()["delivered"] == 30 and path.stats()["re_sent"] == 10
    assert_empty(path)


def test_crash_without_reroute_loses_exactly_the_in_flight_requests():
    path, out, on_a = crash_run(ledger=False)
    failed = [o for o in finals(out) if isinstance(o, Failed)]
    assert len(failed) == len(on_a) == 10  # the loss equals the in-flight count at the crash
    assert {o.request_id for o in failed} == set(on_a) and {o.reason for o in failed} == {"server_lost"}
    assert len(finals(out)) == 30
    assert_empty(path)


def test_a_streamed_request_is_not_restarted():
    path = make_path()
    path.submit(Request("r", 100), 0.0)
    sid = path.in_flight()["r"]
    path.first_token("r", 0.5)
    out = path.server_lost(sid, 1.0)
    assert finals(out) == [Failed("r", 1.0, "streamed", sid, 1)]
    assert_empty(path)


def test_down_by_probes_re_sends_and_the_late_answer_is_discarded():
    policy = HealthPolicy(interval=1.0, timeout=0.5, unhealthy_threshold=2, jitter=0.0)
    path = make_path(policy=policy)
    path.submit(Request("r", 100), 0.0)
    first = path.in_flight()["r"]
    out = []
    t = 0.0
    while path.health.state(first) is not HealthState.DOWN:
        t = path.next_event_time()
        out += path.tick(t)
        for sid in path.due_probes(t):
            out += path.probe_result(sid, sid != first, t)
    resent = [o for o in out if isinstance(o, Dispatched)]
    assert len(resent) == 1 and resent[0].previous == first and resent[0].attempt == 2
    assert path.router.server(first).weight == 0.0
    assert path.abandoned() == {first: ["r"]}
    late = path.completed("r", first, t + 0.1, seconds_per_token=0.02)  # the hung server answers after all
    assert late == [Discarded("r", first, t + 0.1)]
    done = path.completed("r", resent[0].server_id, t + 0.2)
    assert done == [Delivered("r", resent[0].server_id, t + 0.2, 2)]
    with pytest.raises(UnknownRequestError):
        path.completed("r", resent[0].server_id, t + 0.3)  # answered once; a second answer is not an attempt
    assert path.stats()["discarded"] == 1 and path.ledger.stats()["late_answers_discarded"] == 1
    assert_empty(path)


def test_per_try_timeout_re_sends_then_fails_out_of_tries():
    path = make_path(retry=RetryPolicy(max_tries=2, per_try_timeout=10.0))
    out = path.submit(Request("r", 100), 0.0)
    assert out[0].deadline == 10.0 and path.next_event_time() <= 10.0
    out = path.tick(10.0)
    assert [type(o) for o in out] == [Dispatched] and out[0].attempt == 2 and out[0].server_id != out[0].previous
    out = path.tick(20.0)
    assert finals(out) == [Failed("r", 20.0, "out_of_tries", out[-1].server_id, 2)]
    # both abandoned attempts still occupy their servers until they answer (late: discarded)
    assert sum(len(v) for v in path.abandoned().values()) == 2
    for sid, rids in list(path.abandoned().items()):
        assert path.completed(rids[0], sid, 30.0) == [Discarded("r", sid, 30.0)]
    assert_empty(path)


def test_error_answers_are_re_sent_when_the_ledger_can():
    path = make_path()
    path.submit(Request("r", 100), 0.0)
    sid = path.in_flight()["r"]
    out = path.completed("r", sid, 1.0, ok=False)
    if callable(getattr(path.ledger, "error", None)):
        assert isinstance(out[0], Dispatched) and out[0].attempt == 2
        path.completed("r", out[0].server_id, 2.0)
    else:
        assert finals(out) == [Failed("r", 1.0, "error", sid, 1)]
    assert_empty(path)


def test_slow_start_ramps_the_effective_capacity():
    policy = HealthPolicy(slow_start_window=10.0, min_weight=0.1, aggression=1.0)
    path = make_path(servers=("a",), capacity=10, policy=policy)
    path.add_server("new", 10, 80, 0.0, warm=False)
    caps = []
    for t in (0.0, 2.5, 5.0, 7.5, 9.9, 10.0):
        path.tick(t)
        caps.append(path.router.server("new").capacity)
    assert caps == [1, 2, 5, 7, 9, 10]  # max(1, floor(10 * max(0.1, t / 10))) as the ramp moves, re-weighted each second
    assert path.health.state("new") is HealthState.HEALTHY and path.stats()["recovering"] == 0


def test_queue_holds_requests_until_a_slot_frees():
    path = make_path(servers=("a",), capacity=1, queue=QueuePolicy(max_wait=5.0))
    assert isinstance(path.submit(Request("r1", 10), 0.0)[0], Dispatched)
    assert isinstance(path.submit(Request("r2", 10), 0.0)[0], Queued)
    assert isinstance(path.submit(Request("r3", 10), 1.0)[0], Queued)
    out = path.completed("r1", "a", 2.0)
    assert out[0] == Delivered("r1", "a", 2.0, 1) and out[1] == Dispatched("r2", "a", 2.0, 2.0, 1, None, None)
    assert path.tick(6.0) == [TimedOut("r3", 6.0, 5.0)]
    path.completed("r2", "a", 7.0)
    assert_empty(path)
    s = path.stats()
    assert s["submitted"] == s["delivered"] + s["failed"] + s["rejected"] + s["timed_out"] + s["cancelled"] + s["open"]


def test_no_queue_rejects_when_no_server_can_take_it_and_admission_hook():
    path = make_path(servers=("a",), capacity=1)
    path.submit(Request("r1", 10), 0.0)
    assert path.submit(Request("r2", 10), 0.0) == [Rejected("r2", 0.0, 1, 503)]
    refused = RequestPath(Router(), admission=lambda req, now: Rejected(req.request_id, now, 7, 429))
    refused.add_server("a", 1, 80, 0.0)
    assert refused.submit(Request("x", 10), 0.0) == [Rejected("x", 0.0, 7, 429)] and refused.in_flight() == {}


def test_cancel_in_flight_discards_its_answer():
    path = make_path()
    path.submit(Request("r", 10), 0.0)
    sid = path.in_flight()["r"]
    assert path.cancel("r", 1.0) == [Cancelled("r", 1.0, 1.0)]
    assert path.completed("r", sid, 2.0) == [Discarded("r", sid, 2.0)]
    assert_empty(path)


def test_bad_input_raises_and_changes_nothing():
    path = make_path()
    path.submit(Request("r", 10), 1.0)
    before = (path.stats(), path.in_flight())
    with pytest.raises(TypeError):
        path.submit(("r2", 10), 1.0)
    with pytest.raises(DuplicateRequestError):
        path.submit(Request("r", 10), 1.0)
    with pytest.raises(TimeWentBackwardsError):
        path.tick(0.5)
    with pytest.raises(UnknownRequestError):
        path.completed("r", "not-its-server", 2.0)
    with pytest.raises(UnknownRequestError):
        path.first_token("nobody", 2.0)
    with pytest.raises(UnknownServerError):
        path.server_lost("zz", 2.0)
    with pytest.raises(UnknownServerError):
        path.probe_result("zz", True, 2.0)
    with pytest.raises(TypeError):
        path.completed("r", path.in_flight()["r"], 2.0, ok="yes")
    with pytest.raises(ValueError):
        path.completed("r", path.in_flight()["r"], 2.0, seconds_per_token=-1.0)
    with pytest.raises(TypeError):
        RequestPath("not a router")
    with pytest.raises(ValueError):
        RequestPath(Router(), reweight_every=0)
    assert (path.stats(), path.in_flight()) == before


def test_removed_server_leaves_health_and_drains():
    path = make_path()
    path.submit(Request("r", 10), 0.0)
    sid = path.in_flight()["r"]
    path.remove_server(sid, 1.0)
    assert sid not in path.health.get_server_stats()
    assert path.completed("r", sid, 2.0) == [Delivered("r", sid, 2.0, 1)]
    assert sid not in path.router
    assert_empty(path)


# -- the state machine ---------------------------------------------------------------------------------


class PathMachine(RuleBasedStateMachine):
    """Any interleaving of requests, answers, errors, crashes, probes and time."""

    @initialize(reroute=st.booleans(), queue=st.booleans(), timeout=st.sampled_from([None, 3.0]), p2c=st.booleans())
    def setup(self, reroute, queue, timeout, p2c):
        policy = HealthPolicy(interval=1.0, timeout=0.5, unhealthy_threshold=2, healthy_threshold=1, consecutive_5xx=3,
                              base_ejection_time=2.0, max_ejection_time=8.0, slow_start_window=4.0, jitter=0.2)  # fmt: skip
        self.path = RequestPath(
            Router(PowerOfChoices(d=2, seed=5) if p2c else LeastConnections()),
            health=HealthChecker(policy, seed=3),
            ledger=RetryLedger(RetryPolicy(max_tries=3, per_try_timeout=timeout)) if reroute else None,
            queue=QueuePolicy(max_depth=4, max_wait=6.0) if queue else None,
        )
        self.now = 0.0
        self.outcomes: list = []
        self.submitted: set[str] = set()
        self.next_id = 0
        for i, sid in enumerate(("a", "b", "c", "d")):
            self.record(self.path.add_server(sid, 2, 80, 0.0, warm=i < 3))

    def record(self, outs):
        for o in outs:
            if isinstance(o, Dispatched):
                assert self.path.health.state(o.server_id) is not HealthState.DOWN, f"dispatched {o} to a server that is down"
                assert self.path.router.server(o.server_id).weight > 0
        self.outcomes += outs

    def running(self):
        return attempts_running(self.path)

    @rule(tokens=st.sampled_from([10, 300, 6000]))
    def submit(self, tokens):
        rid = f"q{self.next_id}"
        self.next_id += 1
        self.submitted.add(rid)
        self.record(self.path.submit(Request(rid, tokens), self.now))

    @rule(data=st.data(), ok=st.booleans(), spt=st.sampled_from([None, 0.01, 0.05, 0.5]))
    def complete(self, data, ok, spt):
        running = self.running()
        if running:
            rid, sid = data.draw(st.sampled_from(running))
            self.record(self.path.completed(rid, sid, self.now, ok=ok, seconds_per_token=spt))

    @rule(data=st.data())
    def first_token(self, data):
        live = sorted(self.path.in_flight())
        if live:
            self.path.first_token(data.draw(st.sampled_from(live)), self.now)

    @rule(sid=st.sampled_from(["a", "b", "c", "d"]))
    def crash(self, sid):
        """The server dies and restarts empty: none of its attempts will ever answer."""
        self.record(self.path.server_lost(sid, self.now))
        assert sid not in self.path.abandoned() and sid not in self.path.in_flight().values()
        assert self.path.router.get_server_stats()[sid]["current_load"] == 0

    @rule(dt=st.sampled_from([0.1, 0.5, 1.0, 2.5]), healthy=st.sampled_from(["a", "b", "c", "d", "none"]))
    def time_passes(self, dt, healthy):
        """Time moves to the next event or by dt; probes of every server but one answered as 'healthy' says."""
        self.now += dt
        nxt = self.path.next_event_time()
        if nxt is not None and nxt < self.now:
            self.now = nxt
        self.record(self.path.tick(self.now))
        for sid in self.path.due_probes(self.now):
            self.record(self.path.probe_result(sid, healthy in ("none", sid) or sid != "a", self.now))

    @rule(data=st.data())
    def cancel(self, data):
        live = sorted(self.path._flights)
        if live:
            self.record(self.path.cancel(data.draw(st.sampled_from(live)), self.now))

    @invariant()
    def bookkeeping_matches_the_router(self):
        """Every attempt the path says runs (current or abandoned) is one request in the router, and nothing else is."""
        assert_router_holds_the_attempts(self.path)

    @invariant()
    def at_most_one_end_and_one_answer(self):
        ends = [o.request_id for o in self.outcomes if isinstance(o, FINAL)]
        assert len(ends) == len(set(ends)), "a request ended twice"
        s = self.path.stats()
        assert s["submitted"] == s["delivered"] + s["failed"] + s["rejected"] + s["timed_out"] + s["cancelled"] + s["open"]

    def teardown(self):
        # drive everything to its end: answer every attempt, let time pass, until nothing runs or waits
        for _ in range(200):
            running = self.running()
            if not running and not self.path._flights:
                break
            self.now += 1.0
            for rid, sid in running:
                if (rid, sid) in self.running():
                    self.record(self.path.completed(rid, sid, self.now, seconds_per_token=0.02))
            self.record(self.path.tick(self.now))
            for sid in self.path.due_probes(self.now):
                self.record(self.path.probe_result(sid, True, self.now))
        ends = [o.request_id for o in self.outcomes if isinstance(o, FINAL)]
        assert sorted(ends) == sorted(self.submitted), "every submitted request ends exactly once"
        event(f"re-sent: {self.path.stats()['re_sent'] > 0}, discarded: {self.path.stats()['discarded'] > 0}")
        assert_empty(self.path)


TestPathMachine = PathMachine.TestCase
TestPathMachine.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


def test_ejection_half_open_trial_limit_then_slow_start():
    policy = HealthPolicy(consecutive_5xx=2, base_ejection_time=5.0, half_open_trials=1, slow_start_window=10.0,
                          min_weight=0.25, max_ejection_percent=50.0, interval=100.0, timeout=1.0)  # fmt: skip
    path = make_path(servers=("a", "b"), capacity=8, policy=policy, ledger=False)
    for i in range(3):
        path.submit(Request(f"e{i}", 10), 0.0)
    on_a = sorted(rid for rid, sid in path.in_flight().items() if sid == "a")
    assert len(on_a) == 2
    for i, rid in enumerate(on_a):  # a fails twice in a row: ejected
        path.completed(rid, "a", 0.3 + i, ok=False)
    assert path.health.state("a") is HealthState.DOWN and path.router.server("a").weight == 0.0
    path.tick(6.5)  # the ejection is over: half-open, one trial request at a time
    assert path.health.state("a") is HealthState.RECOVERING
    a = path.router.server("a")
    assert (a.weight, a.trial_limit, a.capacity) == (0.25, 1, 1)
    sent = [o.server_id for i in range(6) for o in path.submit(Request(f"t{i}", 10), 6.5) if isinstance(o, Dispatched)]
    assert sent.count("a") == 1  # the trial limit
    trial = next(r for r, s in path.in_flight().items() if s == "a")
    path.completed(trial, "a", 7.0, seconds_per_token=0.02)  # the trial succeeds: slow start, no transition
    a = path.router.server("a")
    assert a.trial_limit is None and a.capacity == 2  # max(1, floor(8 * max(0.25, 0 / 10)))
    path.tick(12.0)
    assert path.router.server("a").capacity == 4  # floor(8 * 5 / 10), re-weighted as the ramp moves
