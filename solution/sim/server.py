"""One simulated inference server: continuous batching, kept exact for the model with virtual clocks.

The model (LLM mode)
--------------------
A server runs up to ``capacity`` sequences in one batch.  Its engine works
in *iterations*, and an iteration's time is the course's latency model
(:class:`solution.core.latency.LatencyModel`, one source of truth for the
simulator and for routing), divided by the server's ``speed``::

    t_iter = max(weights_s + kv_s * n,          # memory: weights + n KV caches
                 token_s * tokens) / speed      # compute: the tokens processed

with ``n = p + d`` sequences in the batch, ``p`` prefilling and ``d``
decoding (the roofline: the slower of memory and compute bounds it, they do
not add up).  Chunked prefill shares **one token budget** per iteration:

* each decoding sequence takes 1 token (its next output token);
* the ``p`` prefilling sequences share the rest, ``chunk = max(1,
  token_budget - d)`` tokens, equally: ``chunk / p`` prompt tokens each;
* so ``tokens = d + chunk`` when some sequence prefills, ``d`` otherwise.

A request with P prompt tokens and O output tokens needs P tokens of prefill
(its first token comes out at the end of it, at once when ``P = 0``), then
``O - 1`` decode iterations, one output token each.  A bigger batch slows
every sequence in it, prefill slows the decoders (it makes the iteration
compute-bound), and the server's throughput rises with the batch until the
memory or compute roof is reached.

Exact bookkeeping for the model (processor sharing)
---------------------------------------------------
Iterations are treated as a fluid: between two changes of the batch, every
decoding sequence gains ``1 / t_iter`` output tokens per second and every
prefilling one ``chunk / (p * t_iter)`` prompt tokens per second.  The two
phases progress at different rates, so each has its own *virtual clock*:

* ``pclock`` counts the prompt tokens any sequence prefilling since the
  clock last restarted has received; admitting a request at ``pclock = V``
  tags it ``V + P`` in the prefill heap: its first token comes when
  ``pclock`` reaches the tag;
* ``dclock`` counts decode iterations the same way; at its first token a
  request is tagged ``dclock + (O - 1)`` in the decode heap and finishes
  when ``dclock`` reaches it.

The next event of the server is the earlier of the two heaps' smallest
tags, reached at real time ``last + (tag - clock) / rate``.  Whenever the
batch or the speed changes, both clocks are first advanced to *now* at the
old rates, then the rates change.  Between changes the rates are constant,
so every time computed is exact for the model (up to float rounding):
nothing is frozen at admission, and a request alone on an idle server gets
exactly :meth:`LatencyModel.ttft` and :meth:`LatencyModel.e2e`.  A clock
restarts from 0 when its phase empties, which keeps it small and precise.

Classic mode (:class:`ClassicService`) gives all its work to the prefill
phase (the first token comes with the last): seconds of service, at the
full speed for every request (``sharing=False``) or split equally among the
running ones (``sharing=True``, egalitarian processor sharing).

Costs: admitting or finishing a request is O(log b) (two heaps of b tags in
all); a change of speed and :meth:`Server.next_time` are O(1).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from heapq import heapify, heappop, heappush
from math import inf

from solution.core.latency import LatencyModel

__all__ = ["Server", "ClassicService", "ServerModel"]


@dataclass(frozen=True)
class ClassicService:
    """Classic mode's service: one phase of work measured in seconds at speed 1 (no tokens, no batch effect).

    ``sharing=False``: every running request is served at the server's full
    speed (c slots are c independent servers).  ``sharing=True``: the speed
    is split equally among the running requests (egalitarian processor
    sharing).
    """

    sharing: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.sharing, bool):
            raise TypeError(f"sharing must be a bool, got {type(self.sharing).__name__}")


#: What sets a server's rates: the latency model of its GPU (LLM mode) or classic service.
ServerModel = LatencyModel | ClassicService


class Server:
    """The state of one simulated server (mutable; the engine owns it).

    ``ptags`` and ``dtags`` are heaps of ``(tag, request)``: the requests
    prefilling and decoding; ``running`` and ``prefilling`` count them
    (attributes, not properties: the engine reads them on its hot path).
    ``version`` increases each time the server's
    next event may have moved, so the engine can recognise stale scheduled
    events.

    Raises:
        TypeError: ``model`` is neither a :class:`LatencyModel` nor a
            :class:`ClassicService`.
    """

    __slots__ = (
        "index", "server_id", "capacity", "gpu_memory_gb", "model", "classic", "sharing",
        "weights_s", "kv_s", "token_s", "budget",
        "pclock", "dclock", "prate", "drate", "last", "speed", "ptags", "dtags", "running", "prefilling", "prefill_next",
        "next_at", "version",
        "up", "fail_fraction", "in_pool", "removed_by_detection", "crashes", "waiting",
        "hung", "throttle", "warm", "starts",
    )  # fmt: skip

    def __init__(self, index: int, server_id: str, capacity: int, gpu_memory_gb: int, model: ServerModel) -> None:
        if not isinstance(model, (LatencyModel, ClassicService)):
            raise TypeError(f"a server's model must be a LatencyModel or a ClassicService, got {type(model).__name__}")
        self.index = index
        self.server_id = server_id
        self.capacity = capacity
        self.gpu_memory_gb = gpu_memory_gb
        self.model = model
        self.classic = isinstance(model, ClassicService)
        self.sharing = self.classic and model.sharing  # type: ignore[union-attr]
        if isinstance(model, LatencyModel):
            self.weights_s, self.kv_s, self.token_s, self.budget = model.weights_s, model.kv_s, model.token_s, model.token_budget
        else:
            self.weights_s = self.kv_s = self.token_s = 0.0
            self.budget = 0
        self.pclock = 0.0  # virtual time of the prefill phase: prompt tokens (classic: seconds of service)
        self.dclock = 0.0  # virtual time of the decode phase: iterations (output tokens)
        self.prate = 0.0  # pclock units per second, for each prefilling request
        self.drate = 0.0  # dclock units per second, for each decoding request
        self.last = 0.0  # real time the clocks were last advanced to
        self.speed = 1.0
        self.ptags: list[tuple[float, int]] = []
        self.dtags: list[tuple[float, int]] = []
        self.running = 0  # requests in the batch: len(ptags) + len(dtags)
        self.prefilling = 0  # requests in the batch before their first token: len(ptags)
        self.prefill_next = True  # the prefill heap holds the next event (set with next_at)
        self.next_at = inf  # real time of the next tag if nothing changes: next_time()
        self.version = 0
        self.up = True  # False between a crash and its recovery
        self.fail_fraction = 0.0
        self.in_pool = False  # the balancer knows it and may route to it
        self.removed_by_detection = False
        self.crashes = 0
        self.waiting: deque[int] = deque()  # early binding: requests placed here, not yet in the batch (FIFO)
        self.hung = False  # a Hang: accepts requests, makes no progress (the engine schedules nothing)
        self.throttle = 1.0  # speed factor from Slowdown / GrayFailure (1 / factor)
        self.warm = 1.0  # speed factor of the warm-up after a start (Scenario.cold_start)
        self.starts = 0  # (re)starts that began a warm-up: tells a stale warm-up step from a current one
        self._set_rate()

    @property
    def decoding(self) -> int:
        """Requests in the batch after their first token."""
        return len(self.dtags)

    def iteration_time(self) -> float:
        """Seconds of one iteration of the current batch at the current speed (LLM mode).  O(1)."""
        p, d = len(self.ptags), len(self.dtags)
        tokens = d + max(1, self.budget - d) if p else d
        memory = self.weights_s + self.kv_s * (p + d)
        compute = self.token_s * tokens
        return (memory if memory > compute else compute) / self.speed

    def _set_rate(self) -> None:
        """Set both clocks' rates for the current batch and speed, and the next event's time.  O(1)."""
        n = self.running
        if not n:
            self.prate = self.drate = 0.0
            self.next_at = inf
            return
        ptags, dtags = self.ptags, self.dtags
        if self.classic:  # seconds of service, in either phase (classic mode's work is all "prefill")
            self.prate = self.drate = prate = drate = self.speed / n if self.sharing else self.speed
        else:
            p = self.prefilling
            d = n - p
            memory = self.weights_s + self.kv_s * n
            if p:
                chunk = self.budget - d
                if chunk < 1:
                    chunk = 1
                compute = self.token_s * (d + chunk)
                self.drate = drate = self.speed / (memory if memory > compute else compute)  # iterations per second
                self.prate = prate = drate * chunk / p  # prompt tokens per second, each
            else:
                compute = self.token_s * d
                self.drate = drate = self.speed / (memory if memory > compute else compute)
                self.prate = prate = 0.0
        # The next event: the earlier of the two heaps' smallest tags (a tie goes to the prefill).
        if ptags:
            best = self.last + (ptags[0][0] - self.pclock) / prate
            if dtags:
                t = self.last + (dtags[0][0] - self.dclock) / drate
                if t < best:
                    self.next_at, self.prefill_next = t, False
                    return
            self.next_at, self.prefill_next = best, True
        else:
            self.next_at, self.prefill_next = self.last + (dtags[0][0] - self.dclock) / drate, False

    def advance(self, now: float) -> None:
        """Bring both virtual clocks to real time ``now`` at the current rates (an empty phase's stays 0).  O(1)."""
        dt = now - self.last
        if self.ptags:
            self.pclock += dt * self.prate
        if self.dtags:
            self.dclock += dt * self.drate
        self.last = now

    def admit(self, now: float, request: int, prefill: float) -> None:
        """Start ``request`` at ``now``; it needs ``prefill`` prompt tokens (classic: seconds) before its first token.

        O(log b).
        """
        self.advance(now)
        heappush(self.ptags, (self.pclock + prefill, request))
        self.running += 1
        self.prefilling += 1
        self._set_rate()

    def next_time(self) -> float:
        """Real time of the next tag, if nothing changes before; ``inf`` when idle.  O(1) (kept up to date)."""
        return self.next_at

    def step(self, now: float, decode_steps: list[float], first_token: list[float]) -> list[int]:
        """Handle every tag due at ``now``; return the requests that finished.  O(k log b) for k tags due.

        ``now`` is the instant :meth:`next_time` announced (nothing changed
        since that call: the engine's versions see to it).  Requests leaving
        the prefill get their first-token time written into ``first_token``
        and move to the decode phase with ``decode_steps[request]``
        iterations to go (or finish, with none).
        """
        ptags, dtags = self.ptags, self.dtags
        dt = now - self.last  # advance both clocks (inlined: this is the hot path)
        self.last = now
        pclock = self.pclock + dt * self.prate if ptags else self.pclock
        dclock = self.dclock + dt * self.drate if dtags else self.dclock
        # The heap that announced ``now`` has its clock snapped to the tag (rounding: it is due by construction).
        if self.prefill_next:
            if ptags[0][0] > pclock:
                pclock = ptags[0][0]
        elif dtags[0][0] > dclock:
            dclock = dtags[0][0]
        done: list[int] = []
        while ptags and ptags[0][0] <= pclock:
            request = heappop(ptags)[1]
            first_token[request] = now
            more = decode_steps[request]
            if more > 0:
                heappush(dtags, (dclock + more, request))
            else:
                done.append(request)
        while dtags and dtags[0][0] <= dclock:
            done.append(heappop(dtags)[1])
        self.running -= len(done)
        self.prefilling = len(ptags)
        self.pclock = pclock if ptags else 0.0
        self.dclock = dclock if dtags else 0.0
        self._set_rate()
        return done

    def set_speed(self, now: float, speed: float) -> None:
        """Change the speed from ``now`` on (running requests keep their progress).  O(1)."""
        self.advance(now)
        self.speed = speed
        self._set_rate()

    def set_factors(self, now: float, *, throttle: float | None = None, warm: float | None = None) -> None:
        """Change the throttle or warm-up factor; the speed is their product.  O(1)."""
        if throttle is not None:
            self.throttle = throttle
        if warm is not None:
            self.warm = warm
        self.set_speed(now, self.throttle * self.warm)

    def remove(self, now: float, request: int) -> tuple[bool, float]:
        """Take ``request`` out of the batch at ``now`` (it was preempted); return ``(prefilling, left)``.

        ``prefilling``: it had not reached its first token; ``left``: the
        work it still needed in its phase (prompt tokens, or classic seconds,
        when prefilling; decode iterations, i.e. output tokens, after).  The
        others keep their progress; the rates change from ``now`` on.  O(b)
        (a scan and a re-heapify of the batch: preemption is rare).

        Raises:
            KeyError: ``request`` is not in the batch.
        """
        self.advance(now)
        for heap, prefilling in ((self.ptags, True), (self.dtags, False)):
            for k, (tag, job) in enumerate(heap):
                if job == request:
                    left = tag - (self.pclock if prefilling else self.dclock)
                    heap[k] = heap[-1]
                    heap.pop()
                    heapify(heap)
                    self.running -= 1
                    if prefilling:
                        self.prefilling -= 1
                    if not self.ptags:
                        self.pclock = 0.0
                    if not self.dtags:
                        self.dclock = 0.0
                    self._set_rate()
                    return prefilling, max(left, 0.0)
        raise KeyError(f"request {request} is not running on {self.server_id}")

    def crash(self, now: float) -> list[int]:
        """Lose every running and waiting request; return them in request order.  O((b + w) log(b + w))."""
        lost = sorted([request for _, request in self.ptags] + [request for _, request in self.dtags] + list(self.waiting))
        self.ptags.clear()
        self.dtags.clear()
        self.waiting.clear()
        self.pclock = self.dclock = 0.0
        self.running = self.prefilling = 0
        self.last = now
        self.up = False
        self.hung = False
        self.crashes += 1
        self._set_rate()
        return lost
