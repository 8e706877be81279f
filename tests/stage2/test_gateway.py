"""Stage 2: the implementation's queue behind the shared Gateway, in front of the reference balancer.

The balancer is always the reference here, so these tests grade the queue
alone: a freed slot goes at once to the best waiting request that fits it,
a large request at the head does not block small ones, requests time out at
their deadline, and every submitted request ends exactly once.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

import solution
from solution.core.clock import ManualClock
from solution.core.gateway import Gateway
from solution.core.queue_types import Cancelled, Dispatched, QueuePolicy, Queued, Rejected, TimedOut

pytestmark = pytest.mark.stage2


class Setup:
    """A gateway over the reference balancer and ``impl``'s queue, recording every final outcome."""

    def __init__(self, impl: Any, servers: list[tuple[str, int, int]], **policy: Any) -> None:
        self.clock = ManualClock()
        self.outcomes: list[Any] = []
        self.queue = impl.RequestQueue(self.clock, QueuePolicy(**policy))
        self.gw = Gateway(solution.LoadBalancer(), self.queue, self.clock, on_outcome=self.outcomes.append)
        for spec in servers:
            self.gw.add_server(*spec)


def test_a_free_slot_takes_the_request_at_once(impl):
    s = Setup(impl, [("gpu-0", 2, 80)])
    s.clock.advance(3)
    assert s.gw.submit("a", 100) == Dispatched("a", "gpu-0", 3.0, 0.0)
    assert s.outcomes == [Dispatched("a", "gpu-0", 3.0, 0.0)] and len(s.queue) == 0


def test_a_full_cluster_queues_and_the_freed_slot_goes_to_the_head(impl):
    s = Setup(impl, [("gpu-0", 1, 80)])
    s.gw.submit("a", 100)
    assert isinstance(s.gw.submit("b", 100), Queued)
    assert isinstance(s.gw.submit("c", 100), Queued)
    s.clock.advance(2)
    assert s.gw.complete("a") == [Dispatched("b", "gpu-0", 2.0, 2.0)]
    assert s.gw.in_flight() == {"b": "gpu-0"} and s.queue.waiting() == ["c"]


def test_the_gateway_passes_the_prompt_split_to_the_queue(impl):
    """SJF at the gateway: a long prompt with a short answer is a short job; the balancer still gets the total."""
    s = Setup(impl, [("gpu-0", 1, 80)], ordering="sjf")
    s.gw.submit("busy", 100)
    s.gw.submit("chat", 300, prompt_tokens=50)
    s.gw.submit("doc", 4000, prompt_tokens=3990)
    assert s.queue.waiting() == ["doc", "chat"]
    with pytest.raises(ValueError, match="prompt_tokens"):
        s.gw.submit("bad", 10, prompt_tokens=11)
    assert s.gw.complete("busy") == [Dispatched("doc", "gpu-0", 0.0, 0.0)]


def test_a_full_queue_answers_503_with_retry_after(impl):
    s = Setup(impl, [("gpu-0", 1, 80)], max_depth=1)
    s.gw.submit("a", 100)
    s.gw.submit("b", 100)
    rejected = s.gw.submit("c", 100)
    assert isinstance(rejected, Rejected) and rejected.status == 503 and rejected.retry_after >= 1
    assert s.outcomes[-1] == rejected


def test_a_large_request_at_the_head_does_not_block_small_ones(impl):
    """h100 (80 GB) and a10 (24 GB) are busy; a large request waits first in line, then a small one.
    When the a10 frees, the small request takes it; the large one waits for the h100."""
    s = Setup(impl, [("h100", 1, 80), ("a10", 1, 24)])
    s.gw.submit("x", 100)  # h100
    s.gw.submit("y", 100)  # a10
    s.gw.submit("large", 9000)
    s.gw.submit("small", 100)
    assert s.queue.waiting() == ["large", "small"]
    assert s.gw.complete("y") == [Dispatched("small", "a10", 0.0, 0.0)]
    assert s.queue.waiting() == ["large"]
    assert s.gw.complete("small") == []  # the a10 cannot take it
    assert s.gw.complete("x") == [Dispatched("large", "h100", 0.0, 0.0)]


def test_a_skipped_large_request_gets_the_next_big_server(impl):
    s = Setup(impl, [("h100", 1, 80), ("a10", 1, 24)], ordering="priority", max_skips=2)
    s.gw.submit("x", 100)
    s.gw.submit("y", 100)
    s.gw.submit("large", 9000, 1)
    for k in range(3):
        s.gw.submit(f"s{k}", 100, 1)
    s.gw.complete("y")  # s0 on a10: skip 1
    s.gw.complete("s0")  # s1 on a10: skip 2, large is reserved
    s.gw.submit("vip", 100, 9)
    assert s.gw.complete("x") == [Dispatched("large", "h100", 0.0, 0.0)]  # not vip


def test_adding_a_server_fills_it_from_the_queue(impl):
    s = Setup(impl, [("a10", 1, 24)])
    s.gw.submit("x", 100)
    for rid, tokens in [("L1", 9000), ("s1", 100), ("s2", 100), ("s3", 100)]:
        s.gw.submit(rid, tokens)
    added = s.gw.add_server("a10-b", 2, 24)  # small: the large request must keep waiting
    assert [d.request_id for d in added] == ["s1", "s2"]
    added = s.gw.add_server("h100", 2, 80)
    assert [d.request_id for d in added] == ["L1", "s3"]
    assert len(s.queue) == 0


def test_a_draining_server_frees_nothing_for_the_queue(impl):
    s = Setup(impl, [("gpu-0", 1, 80), ("gpu-1", 1, 80)])
    s.gw.submit("a", 100)
    s.gw.submit("b", 100)
    s.gw.submit("c", 100)
    s.gw.remove_server("gpu-0")
    assert s.gw.complete("a") == [] and s.queue.waiting() == ["c"]
    assert s.gw.complete("b") == [Dispatched("c", "gpu-1", 0.0, 0.0)]


def test_requests_time_out_at_their_deadline_even_when_the_driver_is_late(impl):
    s = Setup(impl, [("gpu-0", 1, 80)], max_wait=5.0)
    s.gw.submit("a", 100)
    s.gw.submit("b", 100)
    s.clock.advance(1)
    s.gw.submit("c", 100)
    assert s.gw.next_deadline() == 5.0
    s.clock.set(5.5)  # late: b times out at its deadline, not now
    assert s.gw.expire() == [TimedOut("b", 5.0, 5.0)]
    s.clock.set(7.0)  # c's deadline (6.0) passed without a call: the next call times it out first
    assert s.gw.complete("a") == []
    assert s.outcomes[-1] == TimedOut("c", 6.0, 5.0) and len(s.queue) == 0


def test_cancel_withdraws_a_waiting_request_not_one_in_flight(impl):
    s = Setup(impl, [("gpu-0", 1, 80)])
    s.gw.submit("a", 100)
    s.gw.submit("b", 100)
    s.clock.advance(1.5)
    assert s.gw.cancel("b") == Cancelled("b", 1.5, 1.5)
    with pytest.raises(KeyError, match="in flight"):
        s.gw.cancel("a")
    assert s.gw.complete("a") == []


def test_duplicate_ids_are_refused_and_change_nothing(impl):
    s = Setup(impl, [("gpu-0", 1, 80)])
    s.gw.submit("a", 100)
    s.gw.submit("b", 100)
    for rid in ("a", "b"):
        with pytest.raises(ValueError):
            s.gw.submit(rid, 100)
    assert s.gw.in_flight() == {"a": "gpu-0"} and s.queue.waiting() == ["b"]


@pytest.mark.parametrize("ordering", ["fifo", "priority", "sjf"])
def test_every_request_ends_exactly_once(impl, ordering):
    """A seeded random day at a small mixed cluster: arrivals, completions, cancellations, deadlines.

    Every submitted request ends once (dispatched, rejected, timed out or
    cancelled), nothing is dispatched twice, no server is ever over capacity,
    and when the arrivals stop and the work drains, nothing is left waiting.
    """
    rng = random.Random(7)
    s = Setup(impl, [("h100", 2, 80), ("a100", 2, 80), ("a10", 3, 24)], ordering=ordering, max_depth=12, max_wait=6.0,
              max_skips=3)  # fmt: skip
    submitted = []
    for n in range(1500):
        s.clock.advance(rng.choice([0.0, 0.05, 0.1, 0.2]))
        if (deadline := s.gw.next_deadline()) is not None and deadline <= s.clock.now:
            s.gw.expire()  # the driver's timer
            after = s.gw.next_deadline()
            assert after is None or after > s.clock.now, f"expire() at {s.clock.now} left a request due at {after}"
        roll = rng.random()
        in_flight = s.gw.in_flight()
        if roll < 0.5:
            rid = f"r{n}"
            submitted.append(rid)
            s.gw.submit(rid, rng.choice([50, 300, 2000, 6000, 12000]), rng.randrange(3))
        elif roll < 0.9 and in_flight:
            s.gw.complete(rng.choice(sorted(in_flight)))
        elif len(s.queue):
            s.gw.cancel(rng.choice(s.queue.waiting()))
        for sid, st in s.gw.balancer.get_server_stats().items():
            assert st["current_load"] <= st["capacity"], sid
    while s.gw.in_flight():
        s.gw.complete(sorted(s.gw.in_flight())[0])
    s.clock.advance(10.0)
    s.gw.expire()
    assert len(s.queue) == 0
    ends = Counter(o.request_id for o in s.outcomes)
    assert set(ends) == set(submitted) and set(ends.values()) == {1}, "a request ended twice, or never"
    kinds = Counter(type(o).__name__ for o in s.outcomes)
    assert kinds["Dispatched"] > 300 and kinds["Rejected"] > 0 and kinds["TimedOut"] + kinds["Cancelled"] > 0, kinds


class RecordingRouter:
    """A stage-3-style balancer that records what it is asked to route (one server, ``capacity`` slots)."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.running, self.calls = capacity, set(), []

    def add_server(self, server_id, capacity, gpu_memory_gb): ...
    def remove_server(self, server_id): ...
    def get_server_stats(self): return {}

    def route_request(self, request_id, estimated_tokens):
        return self._take(("route_request", request_id, estimated_tokens))

    def route(self, request):
        return self._take(("route", request.request_id, request.estimated_tokens, request.prompt_tokens))

    def _take(self, call):
        if len(self.running) >= self.capacity:
            raise RuntimeError("full")
        self.calls.append(call)
        self.running.add(call[1])
        return "gpu-0"

    def complete_request(self, request_id):
        self.running.discard(request_id)


def test_the_prompt_split_reaches_a_record_router_also_after_waiting(impl):
    """A Router that routes records gets the prompt the client gave, when dispatched at once or from the queue."""
    clock = ManualClock()
    router = RecordingRouter(capacity=1)
    gw = Gateway(router, impl.RequestQueue(clock, QueuePolicy()), clock)
    gw.add_server("gpu-0", 1, 80)
    gw.submit("a", 900, prompt_tokens=800)
    assert isinstance(gw.submit("b", 300, prompt_tokens=100), Queued)
    gw.submit("c", 50)  # no split given: stage 1's single number
    gw.complete("a")
    gw.complete("b")
    assert router.calls == [("route", "a", 900, 800), ("route", "b", 300, 100), ("route_request", "c", 50)]
    assert gw._prompt == {}, "the gateway must forget a request's prompt once it leaves the queue"


def test_a_rejected_or_expired_request_leaves_no_prompt_behind(impl):
    clock = ManualClock()
    router = RecordingRouter(capacity=1)
    gw = Gateway(router, impl.RequestQueue(clock, QueuePolicy(max_depth=1, max_wait=5.0)), clock)
    gw.add_server("gpu-0", 1, 80)
    gw.submit("a", 10, prompt_tokens=5)
    assert isinstance(gw.submit("b", 10, prompt_tokens=5), Queued)
    assert isinstance(gw.submit("c", 10, prompt_tokens=5), Rejected)
    clock.advance(6)
    assert [type(o) for o in gw.expire()] == [TimedOut]
    assert gw._prompt == {}
