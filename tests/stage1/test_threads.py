"""Stage 1: many threads share one balancer through ``Synchronized``.

Threads route and complete their own requests while another drains and
re-adds servers, and a monitor reads snapshots the whole time.  No server may
ever exceed its capacity, and every routed request must complete exactly once.
"""

from __future__ import annotations

import random
import sys
import threading

import pytest

from solution.core.concurrency import Synchronized

pytestmark = pytest.mark.stage1

WORKERS = 8
ROUNDS = 1500


@pytest.fixture(autouse=True)
def fast_thread_switching():
    """Switch threads every few microseconds so interleavings are many."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_threads_never_exceed_capacity_and_lose_nothing(impl):
    lb = Synchronized(impl.LoadBalancer())
    servers = [f"s{i}" for i in range(6)]
    for i, sid in enumerate(servers):
        lb.add_server(sid, capacity=3 + i % 3, gpu_memory_gb=(24, 80)[i % 2])
    errors: list[str] = []
    routed: list[list[str]] = [[] for _ in range(WORKERS)]
    completed: list[list[str]] = [[] for _ in range(WORKERS)]
    stop = threading.Event()

    def worker(w: int) -> None:
        rng = random.Random(w)
        mine: list[str] = []
        try:
            for n in range(ROUNDS):
                if mine and (rng.random() < 0.5 or len(mine) > 4):
                    rid = mine.pop(rng.randrange(len(mine)))
                    lb.complete_request(rid)
                    completed[w].append(rid)
                else:
                    rid = f"w{w}-{n}"
                    try:
                        lb.route_request(rid, rng.choice([10, 9000]))
                    except RuntimeError:
                        continue
                    mine.append(rid)
                    routed[w].append(rid)
            for rid in mine:
                lb.complete_request(rid)
                completed[w].append(rid)
        except Exception as exc:  # reported below, with the thread that saw it
            errors.append(f"worker {w}: {exc!r}")

    def drainer() -> None:
        rng = random.Random(99)
        while not stop.is_set():
            sid = rng.choice(servers)
            try:
                lb.remove_server(sid)
            except KeyError:  # drained away: bring it back
                lb.add_server(sid, capacity=3, gpu_memory_gb=80)

    def monitor() -> None:
        while not stop.is_set():
            for sid, s in lb.get_server_stats().items():
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

    assert not errors, errors[:5]
    all_routed = [r for rs in routed for r in rs]
    all_completed = [r for cs in completed for r in cs]
    assert len(all_routed) > WORKERS * ROUNDS // 4, "too few requests were routed to exercise anything"
    assert len(set(all_routed)) == len(all_routed), "a request id was routed twice"
    assert sorted(all_completed) == sorted(all_routed), "a request was lost or completed twice"
    leftover = {sid: s["active_requests"] for sid, s in lb.get_server_stats().items() if s["active_requests"]}
    assert not leftover, f"requests still recorded after every completion: {leftover}"
