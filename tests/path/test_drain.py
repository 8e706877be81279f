"""RequestPath's drain with a timeout (stage 7): remove_server(..., drain_timeout=), Drained, server_state.

Each test names the rule it checks (solution/core/path.py's module docstring,
"Drain with a timeout").  Runs end with the exactly-once check: every
submitted request has one final outcome and nothing leaks.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solution.affinity import SessionAffinity
from solution.core.affinity_types import AffinityPolicy, RemapReason
from solution.core.clock import ManualClock
from solution.core.errors import UnknownServerError
from solution.core.health_types import HealthPolicy, RetryPolicy
from solution.core.path import (
    FAIL_REASONS,
    SERVER_STATES,
    Delivered,
    Discarded,
    Dispatched,
    Drained,
    Failed,
    Preempted,
    Queued,
    RequestPath,
)
from solution.core.queue_types import QueuePolicy
from solution.core.request import Request
from solution.core.routing import LeastConnections, Router
from solution.health import HealthChecker, RetryLedger
from tests.path.test_path import FINAL, assert_empty
from tests.path.test_tiers import check_once, finish_all
from tests.path.test_tiers import make as make_tiers
from tests.path.test_tiers import req as tier_req
from tests.path.test_tiers import table


def make(*, ledger: bool = True, queue: QueuePolicy | None = None, health: HealthChecker | None = None,
         retry: RetryPolicy | None = None, strategy=None) -> RequestPath:  # fmt: skip
    return RequestPath(Router(strategy or LeastConnections()), health=health,
                       ledger=RetryLedger(retry or RetryPolicy()) if ledger else None, queue=queue)  # fmt: skip


def on_a(path: RequestPath, *rids: str, cap_b: int = 4) -> list:
    """Server a (capacity 4) takes ``rids``; then b joins (capacity ``cap_b``): every request starts on a."""
    out = path.add_server("a", 4, 80, 0.0)
    for rid in rids:
        out += path.submit(Request(rid, 100), 0.0)
    out += path.add_server("b", cap_b, 80, 0.0)
    assert path.in_flight() == dict.fromkeys(rids, "a")
    return out


def test_drain_timeout_is_a_fail_reason():
    assert "drain_timeout" in FAIL_REASONS and SERVER_STATES == ("starting", "ready", "draining", "gone")


def test_at_the_deadline_an_unstreamed_request_is_re_sent_and_a_streamed_one_fails():
    path = make()
    out = on_a(path, "r1", "r2")
    path.first_token("r2", 0.5)
    assert path.remove_server("a", 1.0, drain_timeout=5.0) == []  # requests remain: no Drained yet
    assert path.server_state("a") == "draining" and path.next_event_time() == 6.0
    assert path.tick(5.999) == []  # not before the deadline
    got = path.tick(6.0)
    assert got == [Failed("r2", 6.0, "drain_timeout", "a", 1), Dispatched("r1", "b", 6.0, 0.0, 2, "a"), Drained("a", 6.0, 2)]
    assert path.server_state("a") == "gone" and "a" not in path.router and path.next_event_time() is None
    assert path.completed("r1", "a", 7.0) == [Discarded("r1", "a", 7.0)]  # the stopped attempt's late answer
    got += path.completed("r1", "b", 8.0)
    assert got[-1] == Delivered("r1", "b", 8.0, 2)
    assert path.completed("r2", "a", 9.0) == [Discarded("r2", "a", 9.0)]  # the failed one's late answer too
    st_ = path.stats()
    assert (st_["drained"], st_["drain_forced"], st_["discarded"], st_["re_sent"]) == (1, 2, 2, 1)
    check_once(path, out + got, {"r1", "r2"})
    assert_empty(path)


def test_a_streamed_requests_late_answer_is_discarded_once():
    path = make()
    on_a(path, "r")
    path.first_token("r", 0.5)
    assert path.remove_server("a", 1.0, drain_timeout=0.0) == [Failed("r", 1.0, "drain_timeout", "a", 1), Drained("a", 1.0, 1)]
    assert path.completed("r", "a", 2.0) == [Discarded("r", "a", 2.0)]
    with pytest.raises(KeyError):
        path.completed("r", "a", 3.0)  # a second late answer: that attempt answered already
    assert_empty(path)


def test_without_a_ledger_every_request_still_there_fails_drain_timeout():
    path = make(ledger=False)
    on_a(path, "r1", "r2")
    path.remove_server("a", 0.0, drain_timeout=3.0)
    assert path.tick(3.0) == [Failed("r1", 3.0, "drain_timeout", "a", 1), Failed("r2", 3.0, "drain_timeout", "a", 1),
                              Drained("a", 3.0, 2)]  # fmt: skip
    assert path.stats()["failed"] == 2 and path.stats()["open"] == 0


def test_out_of_tries_at_the_deadline_fails_drain_timeout():
    path = make(retry=RetryPolicy(max_tries=1))
    on_a(path, "r")
    path.remove_server("a", 0.0, drain_timeout=1.0)
    assert path.tick(1.0) == [Failed("r", 1.0, "drain_timeout", "a", 1), Drained("a", 1.0, 1)]


def test_the_re_send_waits_in_the_queue_when_no_server_has_room():
    path = make(queue=QueuePolicy())
    out = on_a(path, "r1", cap_b=1)
    out += path.submit(Request("r2", 100), 0.0)  # b's one slot
    assert path.in_flight() == {"r1": "a", "r2": "b"}
    path.remove_server("a", 0.0, drain_timeout=2.0)
    got = path.tick(2.0)
    assert [type(o).__name__ for o in got] == ["Queued", "Drained"] and got[0].request_id == "r1"
    got += path.completed("r2", "b", 3.0)
    assert Dispatched("r1", "b", 3.0, 1.0, 2, "a") in got
    got += path.completed("r1", "b", 4.0)
    check_once(path, out + got, {"r1", "r2"})
    assert_empty(path)


def test_the_last_request_leaving_before_the_deadline_reports_drained_with_its_answer():
    path = make()
    on_a(path, "r")
    assert path.remove_server("a", 1.0, drain_timeout=10.0) == []
    assert path.completed("r", "a", 2.0) == [Delivered("r", "a", 2.0, 1), Drained("a", 2.0, 0)]
    assert path.next_event_time() is None and path.tick(11.0) == []  # the deadline died with the drain
    assert path.stats()["drain_forced"] == 0


def test_an_idle_server_drains_at_once_and_none_keeps_stage_1():
    path = make()
    on_a(path, "r")
    assert path.remove_server("b", 0.0, drain_timeout=5.0) == [Drained("b", 0.0, 0)]
    assert path.remove_server("a", 0.0) == []  # drain_timeout=None: stage 1's drain, nothing reported, no deadline
    assert path.next_event_time() is None
    assert path.completed("r", "a", 100.0) == [Delivered("r", "a", 100.0, 1)]
    assert path.server_state("a") == "gone"


def test_infinity_waits_forever_but_reports_drained():
    path = make()
    on_a(path, "r")
    path.remove_server("a", 0.0, drain_timeout=math.inf)
    assert path.next_event_time() is None and path.tick(1e9) == []
    assert path.completed("r", "a", 1e9 + 1) == [Delivered("r", "a", 1e9 + 1, 1), Drained("a", 1e9 + 1, 0)]


def test_a_second_call_brings_the_deadline_forward_never_back():
    path = make()
    on_a(path, "r")
    path.remove_server("a", 0.0, drain_timeout=10.0)
    path.remove_server("a", 1.0, drain_timeout=100.0)  # later: ignored
    assert path.next_event_time() == 10.0
    path.remove_server("a", 2.0, drain_timeout=3.0)  # earlier: taken
    assert path.next_event_time() == 5.0
    got = path.tick(5.0)
    assert got[-1] == Drained("a", 5.0, 1) and path.tick(10.0) == []  # the stale deadline does nothing


def test_an_abandoned_attempt_is_stopped_at_the_deadline_and_its_late_answer_discarded():
    path = make(retry=RetryPolicy(per_try_timeout=1.0))
    on_a(path, "r")
    got = path.tick(1.0)  # the try timed out: re-sent to b, a keeps the abandoned attempt (its slot)
    assert got == [Dispatched("r", "b", 1.0, 0.0, 2, "a", 2.0)] and path.abandoned() == {"a": ["r"]}
    assert path.remove_server("a", 1.0, drain_timeout=0.5) == []  # the abandoned attempt holds a
    assert path.tick(1.5) == [Drained("a", 1.5, 0)]  # it was stopped; no request ended there
    assert path.abandoned() == {} and path.completed("r", "a", 1.6) == [Discarded("r", "a", 1.6)]
    assert path.completed("r", "b", 1.7) == [Delivered("r", "b", 1.7, 2)]
    assert_empty(path)


def test_a_timed_drain_that_loses_its_server_reports_drained():
    path = make()
    on_a(path, "r")
    path.remove_server("a", 0.0, drain_timeout=5.0)
    got = path.server_lost("a", 1.0)
    assert got == [Dispatched("r", "b", 1.0, 0.0, 2, "a"), Drained("a", 1.0, 0)]
    assert path.next_event_time() is None


def test_a_server_id_added_again_forgets_the_stopped_attempts():
    path = make()
    on_a(path, "r")
    path.remove_server("a", 0.0, drain_timeout=0.0)  # r re-sent to b
    path.add_server("a", 4, 80, 1.0)  # a new process under the old id: the stopped attempt never answers
    with pytest.raises(KeyError, match="no attempt"):
        path.completed("r", "a", 2.0)
    assert path._killed == {}


@pytest.mark.parametrize("bad, error", [(True, TypeError), ("5", TypeError), (-1.0, ValueError), (math.nan, ValueError)])
def test_a_bad_drain_timeout_raises_and_changes_nothing(bad, error):
    path = make()
    on_a(path, "r")
    before = (path.stats(), path.in_flight(), path.server_state("a"))
    with pytest.raises(error, match="drain_timeout"):
        path.remove_server("a", 1.0, drain_timeout=bad)
    assert (path.stats(), path.in_flight(), path.server_state("a")) == before == (before[0], {"r": "a"}, "ready")
    with pytest.raises(UnknownServerError):
        path.remove_server("zz", 1.0, drain_timeout=1.0)


def test_server_state_follows_health_slow_start_and_loss():
    health = HealthChecker(HealthPolicy(slow_start_window=10.0, min_weight=0.1), seed=1)
    path = make(health=health)
    path.add_server("old", 4, 80, 0.0)
    path.add_server("new", 4, 80, 0.0, warm=False)
    assert (path.server_state("old"), path.server_state("new")) == ("ready", "starting")
    path.tick(9.0)
    assert path.server_state("new") == "starting"  # slow start not done
    path.tick(10.0)
    assert path.server_state("new") == "ready"
    path.server_lost("new", 11.0)
    assert path.server_state("new") == "starting"  # lost, not seen back
    path.remove_server("old", 12.0, drain_timeout=1.0)
    assert path.server_state("old") == "gone" and path.server_state("never") == "gone"
    bare = make()
    bare.add_server("x", 1, 80, 0.0)
    bare.submit(Request("r", 10), 0.0)
    bare.remove_server("x", 0.0, drain_timeout=1.0)
    assert bare.server_state("x") == "draining"
    with pytest.raises(TypeError):
        bare.server_state(3)  # type: ignore[arg-type]


def test_a_sticky_session_leaves_the_draining_server_when_the_drain_begins():
    clock = ManualClock()
    aff = SessionAffinity(LeastConnections(), AffinityPolicy("soft"), clock=clock)
    path = make(strategy=aff)
    path.add_server("a", 4, 80, 0.0)
    path.submit(Request("r1", 100, session_id="s"), 0.0)  # the session's home: a
    path.add_server("b", 4, 80, 0.0)
    path.submit(Request("r2", 100, session_id="s"), 0.0)
    assert path.in_flight() == {"r1": "a", "r2": "a"}  # sticky
    clock.set(1.0)
    path.remove_server("a", 1.0, drain_timeout=60.0)
    got = path.submit(Request("r3", 100, session_id="s"), 1.0)  # long before the deadline
    assert got == [Dispatched("r3", "b", 1.0)]
    assert aff.sessions()["s"] == "b" and aff.stats()["remaps"][RemapReason.DRAINING] == 1
    got = path.tick(61.0)  # r1 and r2 were still on a: re-sent (to b, the session's new home)
    assert {(o.request_id, o.server_id) for o in got if isinstance(o, Dispatched)} == {("r1", "b"), ("r2", "b")}
    assert got[-1] == Drained("a", 61.0, 2)


def test_a_request_paused_for_a_draining_server_moves_and_its_preemptor_is_ended_at_the_deadline():
    """Swap mode: b0 was paused on `home` for p0; `home` drains: b0 resumes elsewhere at once; at the
    deadline p0 (premium, still on `home`) is re-sent and preempts b0 again; every request ends once."""
    path = make_tiers(servers=(("a", 1), ("b", 1)), preempt="swap", tiers=table(reserved=0.0))
    out = path.submit(tier_req("b0", "batch"), 0.0) + path.submit(tier_req("f0", "free"), 0.0)
    home, other = path.in_flight()["b0"], path.in_flight()["f0"]
    out += path.submit(tier_req("p0", "premium"), 1.0) + path.completed("f0", other, 2.0)
    assert path.stats()["paused"] == 1 and path.in_flight() == {"p0": home}  # b0 waits for home (swap)
    got = path.remove_server(home, 3.0, drain_timeout=5.0)
    assert [(o.request_id, o.server_id) for o in got if isinstance(o, Dispatched)] == [("b0", other)]
    got += path.tick(8.0)
    tail = got[-3:]
    assert isinstance(tail[0], Preempted) and tail[0].request_id == "b0" and tail[0].server_id == other
    assert tail[1:] == [Dispatched("p0", other, 8.0, 0.0, 2, home), Drained(home, 8.0, 1)]
    out += got
    finish_all(path, 9.0, out)
    check_once(path, out, {"b0", "f0", "p0"})
    assert path.stats()["open"] == 0


# -- property: every request ends exactly once, every timed drain reports once ----------------------------

_OPS = st.lists(st.tuples(st.sampled_from(["submit", "submit", "token", "done", "drain", "drain", "lost", "add", "tick", "tick"]),
                          st.integers(0, 7), st.sampled_from([0.0, 0.5, 2.0, math.inf])),  # fmt: skip
                min_size=8, max_size=40)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS, ledger=st.booleans(), queue=st.booleans())
def test_random_drains_end_every_request_exactly_once(ops, ledger, queue):
    path = make(ledger=ledger, queue=QueuePolicy() if queue else None, retry=RetryPolicy(max_tries=3))
    servers, n, t, out = 0, 0, 0.0, []
    timed: set[str] = set()
    for name in ("s0", "s1", "s2"):
        out += path.add_server(name, 2, 80, t)
        servers += 1
    for _ in range(4):
        out += path.submit(Request(f"r{n}", 100), t)
        n += 1
    for op, k, timeout in ops:
        t += 0.25
        live = [s for s in path.router.get_server_stats() if path.server_state(s) != "draining"]
        running = sorted(path.in_flight().items())
        if op == "submit":
            out += path.submit(Request(f"r{n}", 100), t)
            n += 1
        elif op == "token" and running:
            path.first_token(running[k % len(running)][0], t)
        elif op == "done" and running:
            rid, sid = running[k % len(running)]
            out += path.completed(rid, sid, t, ok=k % 3 != 0)
        elif op == "drain" and (live or path.router.get_server_stats()):
            present = sorted(path.router.get_server_stats())
            sid = present[k % len(present)]
            out += path.remove_server(sid, t, drain_timeout=timeout)
            timed.add(sid)
        elif op == "lost" and path.router.get_server_stats():  # draining servers too
            present = sorted(path.router.get_server_stats())
            out += path.server_lost(present[k % len(present)], t)
        elif op == "add":
            out += path.add_server(f"s{servers}", 2, 80, t)
            servers += 1
        elif op == "tick":
            due = path.next_event_time()
            t = max(t, due) if due is not None and math.isfinite(due) else t
            out += path.tick(t)
        for o in out:
            if isinstance(o, Dispatched):
                assert o.server_id in path.router or any(isinstance(x, Drained) and x.server_id == o.server_id for x in out)
    out += path.add_server("last", 64, 80, t)  # room for whatever waits; then every request must end
    for _ in range(100):
        running = sorted(path.in_flight().items())
        due = path.next_event_time()
        if not running and (due is None or not math.isfinite(due)):
            break
        t += 1.0
        for rid, sid in running:
            out += path.completed(rid, sid, t)
        out += path.tick(t)
    assert path.stats()["open"] == 0, "a request was dropped silently (never ended, not running)"
    assert {o.request_id for o in out if isinstance(o, FINAL)} == {f"r{i}" for i in range(n)}
    drained = [o.server_id for o in out if isinstance(o, Drained)]
    assert len(drained) == len(set(drained)) and set(drained) <= timed
    for sid in timed - set(drained):
        assert sid in path.router and path.server_state(sid) == "draining"  # still has requests
    ends = [o.request_id for o in out if isinstance(o, FINAL)]
    assert len(ends) == len(set(ends))
    st_ = path.stats()
    assert st_["submitted"] == n == st_["delivered"] + st_["failed"] + st_["rejected"] + st_["timed_out"] + st_["cancelled"] + st_["open"]
    assert st_["drained"] == len(drained)
    assert all(o.reason in FAIL_REASONS for o in out if isinstance(o, Failed))
    assert not any(isinstance(o, Queued) for o in out) or queue


def test_add_server_passes_the_version_label_to_the_router():
    path = make()
    path.add_server("old", 4, 80, 0.0)
    path.add_server("new", 4, 80, 0.0, version="v2")
    assert (path.router.server("old").version, path.router.server("new").version) == ("v0", "v2")
    with pytest.raises(ValueError):
        path.add_server("bad", 4, 80, 0.0, version="")
    assert "bad" not in path.router and path.server_state("bad") == "gone"


def test_drain_deadlines_are_a_heap_not_a_scan(monkeypatch):
    """500 timed drains pending: next_event_time looks at the earliest only, and tick stops only the server due."""
    path = make()
    for i in range(500):
        path.add_server(f"s{i}", 1, 80, 0.0)
        path.submit(Request(f"r{i}", 10), 0.0)
    for i in range(500):
        path.remove_server(f"s{i}", 0.0, drain_timeout=10.0 + i)
    looked = []
    real = RequestPath._live_drain
    monkeypatch.setattr(RequestPath, "_live_drain", lambda self, entry: looked.append(entry) or real(self, entry))
    assert path.next_event_time() == 10.0 and len(looked) == 1
    looked.clear()
    got = path.tick(10.0)
    assert got[-1] == Drained("s0", 10.0, 1) and len(looked) <= 2  # the due entry (and a peek at the next)
    assert sum(path.server_state(f"s{i}") == "draining" for i in range(500)) == 499
