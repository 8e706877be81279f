"""The discrete-event core: a time-ordered heap of events, as in SimPy's core.

An event is a tuple ``(time, kind, seq, a, b)``.  The heap pops the smallest
tuple, so events run in time order; at equal times the *kind* decides
(server progress, then timetable, then crash detection, then arrivals, then
a queue's deadlines, then clients giving up on a queued request, then a
warm-up step, then the health checker's timers and probe results, then
stage 6's retries after a 429 and swap-ins), and
then ``seq``, the order in which events were scheduled.  The order is total,
so a run is deterministic.  ``a`` and ``b`` are two integers whose meaning
depends on the kind (a server index and its version, a timetable row, a
request index).  The gateway times out due requests at the start of every
call, so a deadline that coincides with another event is honoured whatever
runs first.

An event is never removed from the heap.  When a server's next event moves
(its batch changed), the engine bumps the server's *version* and schedules a
new event; the old one is recognised as stale when it pops and is skipped.
Push and pop cost O(log E) for E scheduled events.
"""

from __future__ import annotations

from heapq import heappop, heappush

__all__ = ["SERVER", "TIMETABLE", "DETECT", "ARRIVAL", "DEADLINE", "PATIENCE", "WARM", "HEALTH", "PROBE", "RETRY", "SWAP_IN",
           "EventQueue"]  # fmt: skip

#: Event kinds, in the order they run at equal times (stage 6: a client's retry after a 429, a preempted
#: request's KV cache back in GPU memory).
SERVER, TIMETABLE, DETECT, ARRIVAL, DEADLINE, PATIENCE, WARM, HEALTH, PROBE, RETRY, SWAP_IN = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10


class EventQueue:
    """A heap of ``(time, kind, seq, a, b)`` tuples."""

    __slots__ = ("heap", "_seq")

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, int, int, int]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self.heap)

    def push(self, time: float, kind: int, a: int, b: int = 0) -> None:
        """Schedule an event.  O(log E)."""
        heappush(self.heap, (time, kind, self._seq, a, b))
        self._seq += 1

    def pop(self) -> tuple[float, int, int, int, int]:
        """Remove and return the earliest event.  O(log E)."""
        return heappop(self.heap)

    def due_before(self, time: float, kind: int) -> bool:
        """True if the earliest event runs before an event of ``kind`` at ``time``.  O(1)."""
        heap = self.heap
        return bool(heap) and (heap[0][0] < time or (heap[0][0] == time and heap[0][1] < kind))
