"""Stage 1: many threads share one balancer through ``Synchronized``.

Threads route and complete their own requests while another drains and
re-adds servers, and a monitor reads snapshots the whole time.  No server may
ever exceed its capacity, and every routed request must complete exactly once.

The verdict does not depend on how the threads are scheduled.  Every worker
follows a plan fixed in advance (its own seeded random sequence of routes and
completions), and a server the drainer never touches, "anchor", has a slot
for every request that can be in flight at once: so every route must succeed,
whatever the interleaving, and the test checks exactly the planned requests.
The other servers have one or two slots, so they are full most of the time
and routes race for their last slot.
"""

from __future__ import annotations

import random
import sys
import threading

import pytest

from solution.core.concurrency import Synchronized

pytestmark = pytest.mark.stage1

WORKERS = 8
ROUNDS = 4000
MAX_MINE = 5  # a worker holds at most this many requests in flight
#: The servers the drainer removes and re-adds: (id, capacity, memory).
CHURNED = [(f"s{i}", 1 + i % 2, (24, 80)[i % 2]) for i in range(6)]
SMALL = {sid for sid, _, memory in CHURNED if memory < 80}


@pytest.fixture(autouse=True)
def fast_thread_switching():
    """Switch threads every few microseconds so interleavings are many."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def plan(w: int) -> list[tuple[str, str, int]]:
    """Worker ``w``'s calls, fixed in advance: ("route", id, tokens) or ("complete", id, 0)."""
    rng = random.Random(w)
    mine: list[str] = []
    calls = []
    for n in range(ROUNDS):
        if mine and (rng.random() < 0.5 or len(mine) >= MAX_MINE):
            calls.append(("complete", mine.pop(rng.randrange(len(mine))), 0))
        else:
            rid = f"w{w}-{n}"
            calls.append(("route", rid, rng.choice([10, 9000])))
            mine.append(rid)
    calls += [("complete", rid, 0) for rid in mine]
    return calls


def test_threads_never_exceed_capacity_and_lose_nothing(impl):
    lb = Synchronized(impl.LoadBalancer())
    # Room for every request that can be in flight: a route never finds the cluster full.
    lb.add_server("anchor", capacity=WORKERS * MAX_MINE, gpu_memory_gb=80)
    for sid, capacity, memory in CHURNED:
        lb.add_server(sid, capacity=capacity, gpu_memory_gb=memory)
    plans = [plan(w) for w in range(WORKERS)]
    errors: list[str] = []
    routed: list[list[str]] = [[] for _ in range(WORKERS)]
    completed: list[list[str]] = [[] for _ in range(WORKERS)]
    where: list[dict[str, str]] = [{} for _ in range(WORKERS)]
    stop = threading.Event()

    def worker(w: int) -> None:
        try:
            for kind, rid, tokens in plans[w]:
                if kind == "route":
                    try:
                        where[w][rid] = lb.route_request(rid, tokens)
                    except RuntimeError as exc:
                        errors.append(f"worker {w}: route {rid} raised {exc!r}; 'anchor' always has a free slot, so no route may fail")
                        return
                    routed[w].append(rid)
                else:
                    lb.complete_request(rid)
                    completed[w].append(rid)
        except Exception as exc:  # reported below, with the thread that saw it
            errors.append(f"worker {w}: {exc!r}")

    def drainer() -> None:
        rng = random.Random(99)
        while not stop.is_set():
            sid, capacity, memory = rng.choice(CHURNED)
            try:
                lb.remove_server(sid)
            except KeyError:  # drained away: bring it back
                lb.add_server(sid, capacity=capacity, gpu_memory_gb=memory)

    def monitor() -> None:
        while not stop.is_set():
            stats = lb.get_server_stats()
            if "anchor" not in stats:
                errors.append("the server 'anchor' disappeared, though nobody removed it")
            for sid, s in stats.items():
                if s["current_load"] > s["capacity"] or len(s["active_requests"]) != s["current_load"]:
                    errors.append(f"{sid} over capacity or inconsistent: {s}")

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
    helpers = [threading.Thread(target=drainer), threading.Thread(target=monitor)]
    for t in threads + helpers:
        t.start()
    for t in threads:
        t.join(timeout=60)
    stop.set()
    for t in helpers:
        t.join(timeout=60)

    assert not any(t.is_alive() for t in threads + helpers), "a thread did not finish within 60 s"
    assert not errors, errors[:5]
    planned = [[rid for kind, rid, _ in p if kind == "route"] for p in plans]
    assert routed == planned, "every planned route must succeed ('anchor' always has a free slot)"
    all_routed = [r for rs in routed for r in rs]
    all_completed = [r for cs in completed for r in cs]
    assert sorted(all_completed) == sorted(all_routed), "a request was lost or completed twice"
    large = {rid for p in plans for kind, rid, tokens in p if kind == "route" and tokens > 4096}
    misplaced = [(rid, sid) for w in where for rid, sid in w.items() if rid in large and sid in SMALL]
    assert not misplaced, f"large requests on servers below 80 GB: {misplaced[:5]}"
    leftover = {sid: s["active_requests"] for sid, s in lb.get_server_stats().items() if s["active_requests"]}
    assert not leftover, f"requests still recorded after every completion: {leftover}"
