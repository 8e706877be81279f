"""RequestPath with service tiers and preemption (stage 6): queues per tier, class order, admission first, preemption.

Each test names the rule it checks (solution/core/path.py's module docstring,
"Service tiers and preemption").  Every run ends with the exactly-once check:
each submitted request has one final outcome and ``stats()``'s identity holds.
"""

from __future__ import annotations

import pytest

from solution.core.errors import RequestTooLargeError, TimeWentBackwardsError, UnknownTierError
from solution.core.health_types import RetryPolicy
from solution.core.path import Cancelled, Delivered, Dispatched, Failed, Preempted, Queued, Rejected, RequestPath, TimedOut
from solution.core.queue_types import QueuePolicy
from solution.core.request import Request
from solution.core.routing import LeastConnections, Router
from solution.health import RetryLedger
from solution.request_queue import RequestQueue
from solution.core.clock import ManualClock
from solution.tiers import Preemptor, ServiceTier, TierRouting, TierTable

FINAL = (Delivered, Failed, Rejected, TimedOut, Cancelled)


def table(*, premium_pool: str | None = None, spill: bool = True, reserved: float = 0.25) -> TierTable:
    """premium (class 2, may preempt), free (class 1, the default: listed first), batch (class 0, preemptible)."""
    return TierTable([
        ServiceTier("free", 1),
        ServiceTier("premium", 2, reserved_share=reserved, pool=premium_pool, spill=spill, may_preempt=True),
        ServiceTier("batch", 0, preemptible=True),
    ])  # fmt: skip


def make(servers=(("a", 4),), *, tiers=None, preempt: str | None = "recompute", max_preemptions: int = 2, queue=None,
         retry: RetryPolicy | None = None, admission=None, pools=None) -> RequestPath:  # fmt: skip
    tiers = tiers or table()
    path = RequestPath(
        Router(TierRouting(tiers)),
        ledger=RetryLedger(retry or RetryPolicy()),
        queue=queue if queue is not None else QueuePolicy(),
        tiers=tiers,
        preemptor=None if preempt is None else Preemptor(tiers, max_preemptions=max_preemptions, mode=preempt),
        admission=admission,
    )
    for sid, cap in servers:
        path.add_server(sid, cap, 80, 0.0, pool=(pools or {}).get(sid, "shared"))
    return path


def req(rid: str, tier: str | None, tokens: int = 100) -> Request:
    return Request(rid, tokens, tier=tier)


def one(outcomes, kind):
    found = [o for o in outcomes if isinstance(o, kind)]
    assert len(found) == 1, outcomes
    return found[0]


def finish_all(path: RequestPath, t: float, out: list) -> float:
    """Complete every running attempt (repeatedly, as resumes and queued requests start) and tick out the rest."""
    for _ in range(200):
        running = sorted(path.in_flight().items())
        if not running:
            break
        for rid, sid in running:
            if rid in path.in_flight():
                t += 0.5
                out += path.completed(rid, sid, t)
    return t


def check_once(path: RequestPath, out: list, submitted: set[str]) -> None:
    """Every submitted request ended exactly once; the stats identity holds."""
    ends = [o.request_id for o in out if isinstance(o, FINAL)]
    assert len(ends) == len(set(ends)), "a request ended twice"
    st = path.stats()
    assert st["submitted"] == st["delivered"] + st["failed"] + st["rejected"] + st["timed_out"] + st["cancelled"] + st["open"]
    if st["open"] == 0:
        assert set(ends) == submitted


# -- construction ---------------------------------------------------------------------------------


def test_tiers_need_a_queue_policy_not_a_queue_object():
    clock = ManualClock()
    with pytest.raises(TypeError, match="QueuePolicy"):
        RequestPath(Router(), queue=RequestQueue(clock, QueuePolicy()), clock=clock, tiers=table())


def test_a_preemptor_needs_tiers():
    with pytest.raises(TypeError, match="tiers"):
        RequestPath(Router(), preemptor=Preemptor(table()))


def test_priority_comes_from_the_tier():
    path = make()
    with pytest.raises(TypeError, match="queue_class"):
        path.submit(req("r", "free"), 0.0, priority=1)
    assert path.stats()["submitted"] == 0


def test_one_queue_per_tier_with_max_depth_per_tier():
    """A flood of batch work fills batch's queue only: premium still queues (and free, the default tier, too)."""
    path = make(servers=(("a", 1),), preempt=None, queue=QueuePolicy(max_depth=2), tiers=table(reserved=0.0))
    out = path.submit(req("run", "batch"), 0.0)
    assert isinstance(out[-1], Dispatched)
    for i in range(2):
        assert isinstance(path.submit(req(f"b{i}", "batch"), 0.0)[-1], Queued)
    rejected = path.submit(req("b2", "batch"), 0.0)[-1]
    assert isinstance(rejected, Rejected) and rejected.status == 503
    assert isinstance(path.submit(req("p0", "premium"), 0.0)[-1], Queued)
    assert isinstance(path.submit(req("f0", None), 0.0)[-1], Queued)  # no tier: the table's default (free)
    assert path.stats()["waiting"] == 4


# -- class order and no head-of-line blocking ---------------------------------------------------


def test_refill_serves_the_highest_class_first_fifo_within_a_class():
    path = make(servers=(("a", 1),), preempt=None, tiers=table(reserved=0.0))
    out = path.submit(req("run", "batch"), 0.0)
    for rid, tier in [("b1", "batch"), ("f1", "free"), ("p1", "premium"), ("f2", None), ("p2", "premium")]:
        out += path.submit(req(rid, tier), 0.0)
    order = []
    t = 1.0
    for _ in range(6):
        (rid, sid), = path.in_flight().items()
        out += path.completed(rid, sid, t)
        order.append(rid)
        t += 1.0
    assert order == ["run", "p1", "p2", "f1", "f2", "b1"]
    check_once(path, out, {"run", "b1", "f1", "p1", "f2", "p2"})


def test_no_head_of_line_blocking_across_tiers_with_pools():
    """Premium is pinned to its full pool (no spill): its waiting head does not hold back free requests the shared pool takes."""
    tiers = table(premium_pool="gold", spill=False, reserved=0.0)
    path = make(servers=(("g", 1), ("s", 2)), tiers=tiers, preempt=None, pools={"g": "gold"})
    out = path.submit(req("p0", "premium"), 0.0)
    assert one(out, Dispatched).server_id == "g"
    out += path.submit(req("f0", "free"), 0.0) + path.submit(req("f1", "free"), 0.0)
    out += path.submit(req("p1", "premium"), 0.1)  # gold is full: it waits
    out += path.submit(req("f2", "free"), 0.2)  # shared is full: it waits, behind premium's head in class order
    assert path.stats()["waiting"] == 2
    more = path.completed("f0", "s", 1.0)  # a shared slot: premium may not use it, free may
    assert [(o.request_id, o.server_id) for o in more if isinstance(o, Dispatched)] == [("f2", "s")]
    out += more
    more = path.completed("p0", "g", 2.0)
    assert [(o.request_id, o.server_id) for o in more if isinstance(o, Dispatched)] == [("p1", "g")]
    out += more
    finish_all(path, 3.0, out)
    check_once(path, out, {"p0", "p1", "f0", "f1", "f2"})


# -- admission ----------------------------------------------------------------------------------


def test_admission_that_raises_changes_nothing_not_even_the_counters_or_the_clock():
    def hook(request, now):
        if request.tenant == "huge":
            raise RequestTooLargeError("bigger than the bucket")
        return None

    path = make(admission=hook)
    before = path.stats()
    with pytest.raises(RequestTooLargeError):
        path.submit(Request("r", 100, tier="free", tenant="huge"), 5.0)
    with pytest.raises(UnknownTierError):
        path.submit(req("r", "gold"), 5.0)
    assert path.stats() == before
    out = path.submit(req("r", "free"), 1.0)  # the clock did not move to 5.0
    assert isinstance(out[-1], Dispatched)
    with pytest.raises(TimeWentBackwardsError):
        path.submit(req("late", "free"), 0.5)


def test_a_rejection_from_admission_is_final():
    path = make(admission=lambda r, now: Rejected(r.request_id, now, 3, 429) if r.tenant == "noisy" else None)
    out = path.submit(Request("r", 100, tier="free", tenant="noisy"), 1.0)
    assert out == [Rejected("r", 1.0, 3, 429)]
    st = path.stats()
    assert st["submitted"] == 1 and st["rejected"] == 1 and st["open"] == 0 and path.in_flight() == {}
    assert isinstance(path.submit(Request("r", 100, tier="free"), 2.0)[-1], Dispatched)  # the id is free again


# -- preemption ---------------------------------------------------------------------------------


def fill_with_batch(path: RequestPath, n: int, out: list, t: float = 0.0) -> None:
    for i in range(n):
        out += path.submit(req(f"b{i}", "batch"), t)


def test_premium_preempts_the_newest_batch_request_which_resumes_before_newer_batch_work():
    path = make(servers=(("a", 2),), tiers=table(reserved=0.0))
    out: list = []
    fill_with_batch(path, 2, out)
    out += path.submit(req("bq", "batch"), 0.5)  # queued: newer than the victim's start, older than its pause
    got = path.submit(req("p0", "premium"), 1.0)
    assert got[0] == Preempted("b1", "a", 1.0, 1) and one(got, Dispatched).request_id == "p0"
    assert path.stats()["paused"] == 1 and "b1" not in path.in_flight()
    out += got
    resumed = path.completed("p0", "a", 3.0)
    d = one(resumed, Dispatched)
    assert (d.request_id, d.server_id, d.previous, d.attempt, d.waited) == ("b1", "a", "a", 2, 2.0)
    out += resumed
    st = path.stats()
    assert st["preempted"] == 1 and st["resumed"] == 1 and st["re_sent"] == 0 and st["paused"] == 0
    finish_all(path, 4.0, out)
    assert [o.request_id for o in out if isinstance(o, Dispatched)][-1] == "bq"
    check_once(path, out, {"b0", "b1", "bq", "p0"})


def test_free_requests_never_preempt_and_premium_never_preempts_premium():
    path = make(servers=(("a", 1),), tiers=table(reserved=0.0))
    out = path.submit(req("p0", "premium"), 0.0)
    out += path.submit(req("p1", "premium"), 0.0) + path.submit(req("f0", "free"), 0.0)
    assert not any(isinstance(o, Preempted) for o in out) and path.stats()["waiting"] == 2


def test_swap_resumes_on_the_same_server():
    path = make(servers=(("a", 1), ("b", 1)), preempt="swap", tiers=table(reserved=0.0))
    out = path.submit(req("b0", "batch"), 0.0) + path.submit(req("f0", "free"), 0.0)
    on = path.in_flight()
    got = path.submit(req("p0", "premium"), 1.0)
    assert one(got, Preempted).request_id == "b0" and one(got, Dispatched).server_id == on["b0"]
    other = on["f0"]
    out += got + path.completed("f0", other, 2.0)  # the other server frees first: a swapped-out request waits for its own
    assert path.stats()["paused"] == 1
    back = path.completed("p0", on["b0"], 3.0)
    d = one(back, Dispatched)
    assert (d.request_id, d.server_id) == ("b0", on["b0"])
    out += got + back
    finish_all(path, 4.0, out)
    check_once(path, out, {"b0", "f0", "p0"})


def test_a_swapped_out_request_whose_server_is_lost_resumes_elsewhere():
    path = make(servers=(("a", 1), ("b", 1)), preempt="swap", tiers=table(reserved=0.0))
    out = path.submit(req("b0", "batch"), 0.0) + path.submit(req("f0", "free"), 0.0)
    home = path.in_flight()["b0"]
    other = path.in_flight()["f0"]
    out += path.submit(req("p0", "premium"), 1.0)
    out += path.server_lost(home, 2.0)  # p0 is re-sent (it waits: the other server is full), b0's cache is gone
    out += path.completed("f0", other, 3.0)
    starts = [(o.request_id, o.server_id) for o in out if isinstance(o, Dispatched) and o.at == 3.0]
    assert starts == [("p0", other)]  # premium first (class order); b0 now waits to recompute anywhere
    out += path.completed("p0", other, 4.0)
    assert path.in_flight() == {"b0": other}
    finish_all(path, 5.0, out)
    check_once(path, out, {"b0", "f0", "p0"})


def test_the_preemption_bound_holds():
    """With max_preemptions=1 a request preempted once is no longer a victim: premium waits instead."""
    path = make(servers=(("a", 1),), max_preemptions=1, tiers=table(reserved=0.0))
    out = path.submit(req("b0", "batch"), 0.0)
    out += path.submit(req("p0", "premium"), 1.0)
    out += path.completed("p0", "a", 2.0)  # b0 resumes
    assert path.in_flight() == {"b0": "a"}
    out += path.submit(req("p1", "premium"), 3.0)
    assert isinstance(out[-1], Queued) and path.stats()["preempted"] == 1
    finish_all(path, 4.0, out)
    check_once(path, out, {"b0", "p0", "p1"})


def test_a_preemption_is_not_a_used_up_try():
    """max_tries=1: a preempted request still resumes (no RetriesExhaustedError) and is delivered once."""
    path = make(servers=(("a", 1),), retry=RetryPolicy(max_tries=1), tiers=table(reserved=0.0))
    out = path.submit(req("b0", "batch"), 0.0) + path.submit(req("p0", "premium"), 1.0)
    out += path.completed("p0", "a", 2.0)
    out += path.completed("b0", "a", 3.0)
    assert not any(isinstance(o, Failed) for o in out)
    assert [o.request_id for o in out if isinstance(o, Delivered)] == ["p0", "b0"]
    check_once(path, out, {"b0", "p0"})


def test_tries_used_before_a_preemption_still_count():
    """max_tries=2: one timed-out try, a preemption, then a second time-out: out of tries (not a third try)."""
    path = make(servers=(("a", 1), ("b", 1)), retry=RetryPolicy(max_tries=2, per_try_timeout=10.0), tiers=table(reserved=0.0))
    out = path.submit(req("b0", "batch"), 0.0)
    first = path.in_flight()["b0"]
    out += path.tick(10.0)  # try 1 timed out: re-sent to the other server (try 2)
    second = path.in_flight()["b0"]
    assert second != first
    out += path.submit(req("p0", "premium"), 11.0)  # no free slot: b0's abandoned first try still holds `first`
    assert one(out, Preempted).request_id == "b0"
    out += path.completed("b0", first, 11.5)  # the abandoned first try answers late: discarded, frees its slot
    resumed = [o for o in out if isinstance(o, Dispatched) and o.request_id == "b0"][-1]
    assert resumed.attempt == 3 and resumed.deadline == resumed.at + 10.0
    out += path.completed("p0", second, 12.0)
    out += path.tick(resumed.at + 10.0)
    failed = one(out, Failed)
    assert (failed.request_id, failed.reason) == ("b0", "out_of_tries")
    finish_all(path, 30.0, out)
    check_once(path, out, {"b0", "p0"})


def test_cancel_a_paused_request():
    path = make(servers=(("a", 1),), tiers=table(reserved=0.0))
    out = path.submit(req("b0", "batch"), 0.0) + path.submit(req("p0", "premium"), 1.0)
    got = path.cancel("b0", 2.0)
    assert got == [Cancelled("b0", 2.0, 2.0)] and path.stats()["paused"] == 0
    out += got + path.completed("p0", "a", 3.0)
    assert not [o for o in out if isinstance(o, Dispatched) and o.at == 3.0]  # it never resumes
    check_once(path, out, {"b0", "p0"})
    assert path.stats()["open"] == 0 and path._resume == {} and path._swap == {}


def test_a_paused_request_has_no_queue_deadline_and_its_per_try_timeout_stops():
    path = make(servers=(("a", 1),), queue=QueuePolicy(max_wait=5.0), retry=RetryPolicy(per_try_timeout=20.0),
                tiers=table(reserved=0.0))  # fmt: skip
    out = path.submit(req("b0", "batch"), 0.0) + path.submit(req("p0", "premium"), 1.0)
    out += path.tick(19.0)  # p0 runs long; b0 paused since 1.0: past max_wait, and its old try's deadline (20.0) comes next
    out += path.tick(20.5)  # p0's own try times out at 21.0, not yet
    assert not [o for o in out if isinstance(o, (TimedOut, Failed))] and path.stats()["paused"] == 1
    out += path.completed("p0", "a", 20.8)
    d = [o for o in out if isinstance(o, Dispatched) and o.request_id == "b0"][-1]
    assert d.at == 20.8 and d.deadline == 20.8 + 20.0
    finish_all(path, 21.0, out)
    assert [o.request_id for o in out if isinstance(o, Delivered)] == ["p0", "b0"]
    check_once(path, out, {"b0", "p0"})


def test_a_streamed_request_stays_streamed_across_a_pause():
    """The client saw tokens before the pause: after the resume, a lost server fails it ("streamed"), never a silent restart."""
    path = make(servers=(("a", 1), ("b", 1)), tiers=table(reserved=0.0))
    out = path.submit(req("b0", "batch"), 0.0) + path.submit(req("f0", "free"), 0.0)
    path.first_token("b0", 0.5)
    home = path.in_flight()["b0"]
    out += path.submit(req("p0", "premium"), 1.0)
    out += path.completed("p0", home, 2.0)  # b0 resumes
    out += path.server_lost(path.in_flight()["b0"], 3.0)
    failed = one(out, Failed)
    assert (failed.request_id, failed.reason) == ("b0", "streamed")
    finish_all(path, 4.0, out)
    check_once(path, out, {"b0", "f0", "p0"})


def test_a_premium_re_send_may_preempt_but_never_on_the_lost_server():
    path = make(servers=(("a", 1), ("b", 1)), tiers=table(reserved=0.0))
    out = path.submit(req("p0", "premium"), 0.0) + path.submit(req("b0", "batch"), 0.0)
    p_home = path.in_flight()["p0"]
    got = path.server_lost(p_home, 1.0)
    assert one(got, Preempted).request_id == "b0"
    d = [o for o in got if isinstance(o, Dispatched) and o.request_id == "p0"][-1]
    assert d.server_id != p_home and d.attempt == 2 and d.previous == p_home
    out += got + path.completed("p0", d.server_id, 2.0)
    assert path.in_flight() == {"b0": d.server_id}  # b0 resumes where p0 ran, not on the lost server
    finish_all(path, 3.0, out)
    check_once(path, out, {"p0", "b0"})


def test_without_tiers_priority_still_works_and_nothing_is_preempted():
    path = RequestPath(Router(LeastConnections()), queue=QueuePolicy(ordering="priority"))
    path.add_server("a", 1, 80, 0.0)
    out = path.submit(Request("r0", 100), 0.0) + path.submit(Request("lo", 100), 0.0, priority=0)
    out += path.submit(Request("hi", 100), 0.0, priority=3)
    got = path.completed("r0", "a", 1.0)
    assert one(got, Dispatched).request_id == "hi"
    st = path.stats()
    assert st["preempted"] == st["resumed"] == st["paused"] == 0


def test_a_swapped_out_request_whose_server_health_marks_down_resumes_elsewhere():
    """Health (probes) declares the victim's server down: its swapped-out request recomputes on another server."""
    from solution.core.health_types import HealthPolicy, HealthState
    from solution.health import HealthChecker

    tiers = table(reserved=0.0)
    path = RequestPath(Router(TierRouting(tiers)), health=HealthChecker(HealthPolicy(interval=1.0, timeout=0.5, unhealthy_threshold=2,
                       jitter=0.0), seed=1), ledger=RetryLedger(), queue=QueuePolicy(), tiers=tiers,
                       preemptor=Preemptor(tiers, mode="swap"))  # fmt: skip
    for sid in ("a", "b"):
        path.add_server(sid, 1, 80, 0.0)
    out = path.submit(req("b0", "batch"), 0.0) + path.submit(req("f0", "free"), 0.0)
    home, other = path.in_flight()["b0"], path.in_flight()["f0"]
    out += path.submit(req("p0", "premium"), 0.1)
    assert one(out, Preempted).server_id == home
    out += path.completed("f0", other, 0.2)  # a free slot elsewhere: a swapped-out request still waits for its own server
    assert path.stats()["paused"] == 1
    t = 0.2
    while path.health.state(home) is not HealthState.DOWN:
        t = max(t, path.next_event_time())
        out += path.tick(t)
        for sid in path.due_probes(t):
            out += path.probe_result(sid, sid != home, t)
    starts = [(o.request_id, o.server_id) for o in out if isinstance(o, Dispatched) and o.at > 0.2]
    assert starts == [("p0", other)]  # p0 is re-sent first (class order); b0 no longer waits for its own server
    out += path.completed("p0", other, t + 0.5)
    assert path.in_flight() == {"b0": other}  # its cache went down with the host: it recomputes on the other server
    assert path.stats()["paused"] == 0
    finish_all(path, t + 1.0, out)
    check_once(path, out, {"b0", "f0", "p0"})


def test_a_swapped_out_request_whose_server_drains_resumes_elsewhere():
    path = make(servers=(("a", 1), ("b", 1)), preempt="swap", tiers=table(reserved=0.0))
    out = path.submit(req("b0", "batch"), 0.0) + path.submit(req("f0", "free"), 0.0)
    home, other = path.in_flight()["b0"], path.in_flight()["f0"]
    out += path.submit(req("p0", "premium"), 1.0) + path.completed("f0", other, 2.0)
    assert path.stats()["paused"] == 1
    got = path.remove_server(home, 3.0)
    assert [(o.request_id, o.server_id) for o in got if isinstance(o, Dispatched)] == [("b0", other)]
    out += got
    finish_all(path, 4.0, out)
    check_once(path, out, {"b0", "f0", "p0"})
