"""A small event loop around a stage-2 gateway: the model that retrying clients and the autoscaler drive.

The full simulator (:mod:`solution.sim.engine`) runs LLM servers with
batching, faults and workloads; the two stage-2 questions of notebook 02
need less and something else: clients that come back after a rejection
(:mod:`solution.sim.retries`) and servers that join and leave while the run
goes on (:mod:`solution.sim.autoscale`).  :class:`GatewayPool` is that
smaller model, self-contained:

* a :class:`~solution.core.gateway.Gateway` with any stage-1 balancer and
  any stage-2 queue class (the reference's, or the candidate's through
  ``demo_impl()``), all on one :class:`~solution.core.clock.ManualClock`;
* servers with ``slots`` concurrent requests each, every request holding
  its slot for an exponential time of mean ``service_time`` seconds (the
  classic M/M/c server);
* a heap of timed callbacks: the caller schedules arrivals, retries,
  autoscaler ticks and server joins with :meth:`GatewayPool.at`.

Costs: each event O(log E) for the heap plus the gateway's own costs.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from solution.core.clock import ManualClock
from solution.core.gateway import Gateway
from solution.core.queue_types import Dispatched, FinalOutcome, QueuePolicy

__all__ = ["GatewayPool"]


class GatewayPool:
    """A gateway, its balancer, its queue and exponential-service servers on one simulated clock.

    Args:
        balancer: a stage-1 balancer instance (``demo.LoadBalancer()``).
        queue_class: a stage-2 queue class, called as ``queue_class(clock, policy)``.
        policy: the queue's policy.
        service_time: mean seconds a request holds its slot (exponential), > 0.
        seed: seeds the service times (a ``numpy`` generator of its own, so
            callers draw their own randomness without shifting these).
        on_outcome: called with every final outcome after the pool's own
            bookkeeping (a dispatch schedules its completion first).
        service: the seconds a request holds its slot, by request id; by
            default an exponential draw of mean ``service_time``.

    Raises:
        TypeError / ValueError: a ``service_time`` that is not a finite number > 0.
    """

    def __init__(
        self,
        balancer: Any,
        queue_class: Callable[..., Any],
        policy: QueuePolicy,
        *,
        service_time: float = 1.0,
        seed: int = 0,
        on_outcome: Callable[[FinalOutcome], object] | None = None,
        service: Callable[[str], float] | None = None,
    ) -> None:
        if isinstance(service_time, bool) or not isinstance(service_time, (int, float)):
            raise TypeError(f"service_time must be a number of seconds, got {type(service_time).__name__}")
        if not (math.isfinite(service_time) and service_time > 0):
            raise ValueError(f"service_time must be a finite number of seconds > 0, got {service_time}")
        self.clock = ManualClock()
        self.queue = queue_class(self.clock, policy)
        self.gateway = Gateway(balancer, self.queue, self.clock, on_outcome=self._outcome)
        self.service_time = float(service_time)
        self._rng = np.random.default_rng(seed)
        self._user = on_outcome
        self._service = service
        self._events: list[tuple[float, int, Callable[[], object]]] = []
        self._seq = 0
        self._deadline: float | None = None  # the expire event scheduled, if any
        self.slots: dict[str, int] = {}  # server id -> slots, for the servers present (draining ones excluded)

    @property
    def now(self) -> float:
        """The simulated time (seconds)."""
        return self.clock.now

    def at(self, when: float, action: Callable[[], object]) -> None:
        """Run ``action()`` at simulated time ``when`` (not before now).  O(log E)."""
        if not when >= self.clock.now:
            raise ValueError(f"cannot schedule at {when!r}: the clock is already at {self.clock.now}")
        heapq.heappush(self._events, (float(when), self._seq, action))
        self._seq += 1

    def add_server(self, server_id: str, slots: int) -> None:
        """A server joins now; its slots are filled from the queue at once."""
        self.slots[server_id] = slots
        self.gateway.add_server(server_id, slots, 80)
        self._watch_deadline()

    def remove_server(self, server_id: str) -> None:
        """Drain a server now: it takes nothing new and leaves when its requests end."""
        self.slots.pop(server_id, None)
        self.gateway.remove_server(server_id)

    def capacity(self) -> int:
        """Slots of the servers present and not draining."""
        return sum(self.slots.values())

    def submit(self, request_id: str, estimated_tokens: int = 100, priority: int = 0, prompt_tokens: int | None = None) -> Any:
        """A request arrives now: the gateway dispatches, queues or rejects it (the outcome is returned)."""
        outcome = self.gateway.submit(request_id, estimated_tokens, priority, prompt_tokens)
        self._watch_deadline()
        return outcome

    def run(self, until: float) -> None:
        """Handle every event due at or before ``until``, in time order (ties: scheduling order).

        The clock ends at ``until`` (at the last event when ``until`` is infinite).
        """
        events = self._events
        while events and events[0][0] <= until:
            when, _, action = heapq.heappop(events)
            self.clock.set(max(when, self.clock.now))
            action()
        if math.isfinite(until) and until > self.clock.now:
            self.clock.set(until)

    # -- plumbing -------------------------------------------------------------------

    def _outcome(self, outcome: FinalOutcome) -> None:
        if type(outcome) is Dispatched:
            rid = outcome.request_id
            hold = self._service(rid) if self._service is not None else self._rng.exponential(self.service_time)
            self.at(self.clock.now + hold, lambda: self._complete(rid))
        if self._user is not None:
            self._user(outcome)

    def _complete(self, request_id: str) -> None:
        self.gateway.complete(request_id)
        self._watch_deadline()

    def _watch_deadline(self) -> None:
        deadline = self.gateway.next_deadline()
        if deadline is not None and (self._deadline is None or deadline < self._deadline or self._deadline < self.clock.now):
            self._deadline = deadline
            self.at(max(deadline, self.clock.now), self._expire)

    def _expire(self) -> None:
        self._deadline = None
        self.gateway.expire()
        self._watch_deadline()
