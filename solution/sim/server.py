"""One simulated inference server: continuous batching, kept exact with a virtual clock.

The model
---------
A server runs up to ``capacity`` sequences in one batch.  Each *iteration*
of its engine advances every running sequence by one *step* and takes::

    t_iter = (t_base + t_decode * decoding + t_chunk * prefilling) / speed

seconds (:class:`solution.sim.gpus.ServerTiming`).  A request needs
``prefill_steps`` (its prompt, in chunks; its first token appears when they
are done), then ``decode_steps`` (one output token each).  So the more
sequences share the batch, the slower each one goes, and a prefilling
sequence slows everybody more than a decoding one.

Exact bookkeeping (processor sharing)
-------------------------------------
Iterations are treated as a fluid: all running sequences progress at the
same rate ``1 / t_iter`` steps per second.  So one number per server, the
*virtual clock* ``clock`` (steps done by any sequence that has run since it
was admitted), describes everybody's progress:

* admitting a request at virtual time V tags it ``V + prefill_steps``: it
  leaves the prefill phase when the clock reaches the tag;
* at that instant (the first token) it is re-tagged ``tag + decode_steps``;
* the next event of the server is the smallest tag, reached at real time
  ``last + (tag - clock) * t_iter``.

Whenever the batch or the speed changes, the clock is first advanced to
*now* at the old rate, then the rate changes.  Between changes the rate is
constant, so every time computed is exact for the model (up to float
rounding): nothing is frozen at admission.  The clock restarts from 0 when
the server goes idle, which keeps it small and precise.

Costs: admitting or finishing a request is O(log b) (a heap of b tags).
"""

from __future__ import annotations

from collections import deque
from heapq import heappop, heappush
from math import inf

from solution.sim.gpus import ServerTiming

__all__ = ["Server", "PREFILL", "DECODE"]

#: Tag phases: the tag marks the end of the prefill, or the last token.
PREFILL, DECODE = 0, 1


class Server:
    """The state of one simulated server (mutable; the engine owns it).

    ``tags`` is a heap of ``(tag, request, phase)``, one entry per running
    request.  ``version`` increases each time the server's next event may
    have moved, so the engine can recognise stale scheduled events.
    """

    __slots__ = (
        "index", "server_id", "capacity", "gpu_memory_gb", "t_base", "t_decode", "t_chunk",
        "clock", "last", "rate", "speed", "prefilling", "decoding", "tags", "version",
        "up", "fail_fraction", "in_pool", "removed_by_detection", "crashes", "waiting",
    )  # fmt: skip

    def __init__(self, index: int, server_id: str, capacity: int, gpu_memory_gb: int, timing: ServerTiming) -> None:
        self.index = index
        self.server_id = server_id
        self.capacity = capacity
        self.gpu_memory_gb = gpu_memory_gb
        self.t_base, self.t_decode, self.t_chunk = timing.t_base, timing.t_decode, timing.t_chunk
        self.clock = 0.0  # virtual time, in steps
        self.last = 0.0  # real time the clock was last advanced to
        self.speed = 1.0
        self.prefilling = 0
        self.decoding = 0
        self.tags: list[tuple[float, int, int]] = []
        self.version = 0
        self.up = True  # False between a crash and its recovery
        self.fail_fraction = 0.0
        self.in_pool = False  # the balancer knows it and may route to it
        self.removed_by_detection = False
        self.crashes = 0
        self.waiting: deque[int] = deque()  # early binding: requests placed here, not yet in the batch (FIFO)
        self.rate = 0.0
        self._set_rate()

    @property
    def running(self) -> int:
        """Requests in the batch."""
        return len(self.tags)

    def _set_rate(self) -> None:
        busy = self.t_base + self.t_decode * self.decoding + self.t_chunk * self.prefilling
        self.rate = self.speed / busy if busy > 0 else inf  # inf only when idle: never used then

    def advance(self, now: float) -> None:
        """Bring the virtual clock to real time ``now`` at the current rate (it stays 0 while idle).  O(1)."""
        if self.tags:
            self.clock += (now - self.last) * self.rate
        self.last = now

    def admit(self, now: float, request: int, prefill_steps: float) -> None:
        """Start ``request`` at ``now``; it needs ``prefill_steps`` before its first token.  O(log b)."""
        self.advance(now)
        heappush(self.tags, (self.clock + prefill_steps, request, PREFILL))
        self.prefilling += 1
        self._set_rate()

    def next_time(self) -> float:
        """Real time of the next tag, if nothing changes before; ``inf`` when idle.  O(1)."""
        if not self.tags:
            return inf
        return self.last + (self.tags[0][0] - self.clock) / self.rate

    def step(self, now: float, decode_steps: list[float], first_token: list[float]) -> list[int]:
        """Handle every tag due at ``now``; return the requests that finished.  O(k log b).

        ``now`` is the instant :meth:`next_time` announced.  Requests leaving
        the prefill get their first-token time written into ``first_token``
        and move to the decode phase (or finish, with no decode work).
        """
        self.advance(now)
        tags = self.tags
        if tags[0][0] > self.clock:  # rounding: the announced tag is due now by construction
            self.clock = tags[0][0]
        done: list[int] = []
        while tags and tags[0][0] <= self.clock:
            tag, request, phase = heappop(tags)
            if phase == PREFILL:
                first_token[request] = now
                self.prefilling -= 1
                more = decode_steps[request]
                if more > 0:
                    heappush(tags, (tag + more, request, DECODE))
                    self.decoding += 1
                    continue
            else:
                self.decoding -= 1
            done.append(request)
        if not tags:
            self.clock = 0.0
        self._set_rate()
        return done

    def set_speed(self, now: float, speed: float) -> None:
        """Change the speed from ``now`` on (running requests keep their progress).  O(1)."""
        self.advance(now)
        self.speed = speed
        self._set_rate()

    def crash(self, now: float) -> list[int]:
        """Lose every running and waiting request; return them in request order.  O((b + w) log(b + w))."""
        lost = sorted([request for _, request, _ in self.tags] + list(self.waiting))
        self.tags.clear()
        self.waiting.clear()
        self.prefilling = self.decoding = 0
        self.clock, self.last = 0.0, now
        self.up = False
        self.crashes += 1
        self._set_rate()
        return lost
