"""A gateway: a stage-2 request queue in front of a stage-1 balancer.

The gateway owns the protocol between the two, and talks to the balancer
only through its public methods (``add_server``, ``remove_server``,
``route_request``, ``complete_request``), so a candidate's balancer and a
candidate's queue both work in it.

* ``submit``: try ``route_request``; on ``NoCapacityError`` (any
  ``RuntimeError`` but ``NotImplementedError`` and ``RecursionError``, which
  are bugs, not a full cluster) the request waits in the queue, or is
  rejected when the queue is full (the policy's ``reject_status``: 503 by
  default, with ``Retry-After``).
* ``complete``: ``complete_request``, ``record_completion``, then the freed
  slot goes at once to the best waiting request that fits the freed server
  (``peek(large_ok=...)``: a 40 GB server takes only small requests, so a
  large request at the head never blocks them), dispatched through
  ``route_request`` (the balancer still decides placement).
* ``add_server``: the new server's slots are filled from the queue the same way.
* ``expire``: call it at ``next_deadline()`` (the simulator schedules an
  event there); requests time out at exactly their deadline.
* ``cancel``: a waiting request whose client went away.

*Invariant.*  After every call, no waiting request fits a free slot: a
request waits only when ``route_request`` refused it, and every freed or
added slot is offered to the queue at once.  So a new arrival that finds a
free slot takes nothing a waiting request could have used; and while a
request waits that fits wherever the new one fits (a small one; or any,
for a large newcomer), the balancer would refuse the newcomer, so it goes
straight to the queue without asking: nobody jumps the queue.

Every final outcome (:class:`~solution.core.queue_types.Dispatched`,
``Rejected``, ``TimedOut``, ``Cancelled``) is passed to ``on_outcome`` (if
given) exactly once per request, in the order they happen; the methods
also return the outcomes they cause.  Every call first times out the
requests whose deadline has come (as :meth:`Gateway.expire` would), so a
late driver never dispatches an expired request.  Invalid input raises
before anything changes.

Costs: one balancer call per placement, plus the queue's O(log n).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from solution.core.clock import Clock
from solution.core.errors import DuplicateRequestError, UnknownRequestError
from solution.core.queue_types import (
    AlreadyWaitingError,
    Cancelled,
    Dispatched,
    FinalOutcome,
    NotWaitingError,
    QueuePolicy,
    Queued,
    Rejected,
    TimedOut,
)
from solution.core.request import Request
from solution.core.validate import require_id, require_int

__all__ = ["Gateway", "QueueLike"]


class QueueLike(Protocol):
    """The stage-2 queue interface, as any implementation (reference or candidate) has it."""

    policy: QueuePolicy

    def __len__(self) -> int: ...
    def __contains__(self, request_id: object) -> bool: ...
    def enqueue(
        self, request_id: str, estimated_tokens: int, priority: int = 0, prompt_tokens: int | None = None
    ) -> Queued | Rejected: ...
    def peek(self, large_ok: bool = True) -> Queued | None: ...
    def dispatch(self, request_id: str, server_id: str) -> Dispatched: ...
    def cancel(self, request_id: str) -> Cancelled: ...
    def expire(self) -> list[TimedOut]: ...
    def next_deadline(self) -> float | None: ...
    def record_completion(self) -> None: ...


class Gateway:
    """Queueing and backpressure in front of a stage-1 balancer.

    >>> from solution import LoadBalancer, RequestQueue, QueuePolicy
    >>> from solution.core.clock import ManualClock
    >>> clock = ManualClock()
    >>> gw = Gateway(LoadBalancer(), RequestQueue(clock, QueuePolicy(max_depth=1)), clock)
    >>> gw.add_server("gpu-0", capacity=1, gpu_memory_gb=80)
    []
    >>> gw.submit("a", 100).server_id
    'gpu-0'
    >>> gw.submit("b", 100)
    Queued(request_id='b', estimated_tokens=100, priority=0, at=0.0, deadline=None)
    >>> gw.submit("c", 100).headers
    {'Retry-After': '60'}
    >>> clock.advance(2.0)
    2.0
    >>> gw.complete("a")
    [Dispatched(request_id='b', server_id='gpu-0', at=2.0, waited=2.0)]

    Args:
        balancer: a stage-1 balancer (reference or candidate).  Servers it
            already has are read once from its ``get_server_stats()``; add
            the others through the gateway, so it knows their memory.
        queue: a stage-2 queue; its ``policy.large_request_tokens`` must
            match the balancer's threshold.
        clock: the queue's clock (the time of a dispatch that did not wait).
        large_request_min_memory_gb: the balancer's memory threshold for
            large requests (80 by default, as in stage 1).
        on_outcome: called with every final outcome, once per request.
    """

    def __init__(
        self,
        balancer: Any,
        queue: QueueLike,
        clock: Clock,
        *,
        large_request_min_memory_gb: int = 80,
        on_outcome: Callable[[FinalOutcome], object] | None = None,
    ) -> None:
        for name in ("add_server", "remove_server", "route_request", "complete_request"):
            if not callable(getattr(balancer, name, None)):
                raise TypeError(f"Gateway needs a stage-1 balancer with a {name}() method, got {type(balancer).__name__}")
        for name in ("enqueue", "peek", "dispatch", "cancel", "expire", "next_deadline", "record_completion"):
            if not callable(getattr(queue, name, None)):
                raise TypeError(f"Gateway needs a stage-2 queue with a {name}() method, got {type(queue).__name__}")
        if not callable(clock):
            raise TypeError(f"clock must be a zero-argument callable returning seconds, got {clock!r}")
        if on_outcome is not None and not callable(on_outcome):
            raise TypeError(f"on_outcome must be callable or None, got {type(on_outcome).__name__}")
        self.balancer = balancer
        self.queue = queue
        self._clock = clock
        self._min_memory = require_int(large_request_min_memory_gb, "large_request_min_memory_gb")
        self._on_outcome = on_outcome
        self._big: dict[str, bool] = {}  # server id -> takes large requests
        self._draining: set[str] = set()
        self._where: dict[str, str] = {}  # request id in flight -> server id
        self._prompt: dict[str, int] = {}  # request id not yet dispatched -> its prompt tokens (when given)
        record = getattr(balancer, "route", None)  # stage 3 on: routes a Request, which carries the prompt/output split
        self._route_record = record if callable(record) else None
        stats = getattr(balancer, "get_server_stats", None)
        for server_id, s in (stats() if callable(stats) else {}).items():
            self._big[server_id] = s["gpu_memory_gb"] >= self._min_memory
            if s["is_draining"]:
                self._draining.add(server_id)
            for request_id in s["active_requests"]:
                self._where[request_id] = server_id

    # -- servers ----------------------------------------------------------------

    def add_server(self, server_id: str, capacity: int, gpu_memory_gb: int) -> list[Dispatched]:
        """Add a server (``balancer.add_server``) and fill its slots from the queue.

        Returns the requests dispatched to it, best first.
        """
        self.expire()
        self.balancer.add_server(server_id, capacity, gpu_memory_gb)
        self._big[server_id] = gpu_memory_gb >= self._min_memory
        self._draining.discard(server_id)
        return self._fill(self._big[server_id], limit=capacity)

    def remove_server(self, server_id: str) -> None:
        """Drain a server (``balancer.remove_server``): its completions free nothing for the queue."""
        self.expire()
        self.balancer.remove_server(server_id)
        self._draining.add(server_id)

    # -- requests -----------------------------------------------------------------

    def submit(
        self, request_id: str, estimated_tokens: int, priority: int = 0, prompt_tokens: int | None = None
    ) -> Dispatched | Queued | Rejected:
        """A request arrives: dispatch it, queue it, or reject it (503 by default, with ``Retry-After``).

        ``prompt_tokens`` (how many of ``estimated_tokens`` are the prompt's)
        is passed to the queue, whose SJF ordering prices prompt and output
        tokens apart, and to a balancer that routes records (stage 3's
        ``Router.route``) as ``Request(request_id, estimated_tokens,
        prompt_tokens)``; a stage-1 balancer gets ``estimated_tokens`` only.

        Raises:
            TypeError / ValueError: bad arguments (as ``RequestQueue.enqueue``).
            DuplicateRequestError (a ValueError): the id is in flight;
                AlreadyWaitingError (one too) if it is waiting.
        """
        require_id(request_id, "request_id")
        require_int(estimated_tokens, "estimated_tokens")
        require_int(priority, "priority", minimum=0)
        if prompt_tokens is not None:
            require_int(prompt_tokens, "prompt_tokens", minimum=0, maximum=estimated_tokens)
        self.expire()
        if request_id in self._where:
            raise DuplicateRequestError(
                f"request {request_id!r} is in flight on server {self._where[request_id]!r}; complete it first or use a new id"
            )
        if request_id in self.queue:
            raise AlreadyWaitingError(f"request {request_id!r} is already waiting; cancel it first or use a new id")
        if prompt_tokens is not None:
            self._prompt[request_id] = prompt_tokens
        queue = self.queue
        blocked = len(queue) and (queue.policy.is_large(estimated_tokens) or queue.peek(False) is not None)
        server_id = None if blocked else self._route(request_id, estimated_tokens)
        if server_id is not None:
            outcome: Dispatched | Queued | Rejected = Dispatched(request_id, server_id, float(self._clock()), 0.0)
            self._report(outcome)
            return outcome
        if prompt_tokens is None:
            outcome = self.queue.enqueue(request_id, estimated_tokens, priority)
        else:
            outcome = self.queue.enqueue(request_id, estimated_tokens, priority, prompt_tokens=prompt_tokens)
        if isinstance(outcome, Rejected):
            self._prompt.pop(request_id, None)
            self._report(outcome)
        return outcome

    def complete(self, request_id: str) -> list[Dispatched]:
        """A request in flight ended: free its slot and give it to the best waiting request that fits.

        Returns the requests dispatched (at most one: one slot was freed).

        Raises:
            TypeError / ValueError: ``request_id`` is not a non-empty ``str``.
            UnknownRequestError (a KeyError): the request is not in flight.
        """
        require_id(request_id, "request_id")
        if request_id not in self._where:
            raise UnknownRequestError(
                f"request {request_id!r} is not in flight through this gateway (never dispatched, or already completed)"
            )
        self.expire()
        self.balancer.complete_request(request_id)
        server_id = self._where.pop(request_id)
        self.queue.record_completion()
        if server_id in self._draining:
            return []
        return self._fill(self._big.get(server_id, False), limit=1)

    def cancel(self, request_id: str) -> Cancelled:
        """Withdraw a waiting request whose client went away.

        Raises:
            NotWaitingError (a KeyError): the request is not waiting (in
                flight requests end with :meth:`complete`).
        """
        require_id(request_id, "request_id")
        self.expire()
        if request_id not in self.queue:
            where = self._where.get(request_id)
            detail = f"it is in flight on {where!r}: call complete() when it ends" if where else "it is not waiting"
            raise NotWaitingError(f"cannot cancel request {request_id!r}: {detail}")
        outcome = self.queue.cancel(request_id)
        self._report(outcome)
        return outcome

    def expire(self) -> list[TimedOut]:
        """Time out the waiting requests whose deadline has come.  Call it at :meth:`next_deadline`."""
        deadline = self.queue.next_deadline()
        if deadline is None or deadline > self._clock():
            return []
        expired = self.queue.expire()
        for outcome in expired:
            self._report(outcome)
        return expired

    def next_deadline(self) -> float | None:
        """When the next waiting request times out (``None``: never); schedule :meth:`expire` then."""
        return self.queue.next_deadline()

    def in_flight(self) -> dict[str, str]:
        """``{request id: server id}`` of the requests dispatched and not completed (a copy)."""
        return dict(self._where)

    # -- plumbing ---------------------------------------------------------------------

    def _route(self, request_id: str, estimated_tokens: int) -> str | None:
        """``route_request``, or ``None`` when the balancer has no capacity for it."""
        prompt = self._prompt.get(request_id)
        try:
            if prompt is not None and self._route_record is not None:
                server_id = self._route_record(Request(request_id, estimated_tokens, prompt))
            else:
                server_id = self.balancer.route_request(request_id, estimated_tokens)
        except (NotImplementedError, RecursionError):
            raise  # a stub or a bug, not a full cluster
        except RuntimeError:
            return None
        self._prompt.pop(request_id, None)
        self._where[request_id] = server_id
        return server_id

    def _fill(self, large_ok: bool, limit: int) -> list[Dispatched]:
        """Dispatch up to ``limit`` waiting requests that fit, best first."""
        dispatched: list[Dispatched] = []
        queue = self.queue
        while len(dispatched) < limit:
            head = queue.peek(large_ok)
            if head is None:
                break
            server_id = self._route(head.request_id, head.estimated_tokens)
            if server_id is None:
                if large_ok and queue.policy.is_large(head.estimated_tokens):
                    large_ok = False  # no big slot after all: a small request may still fit
                    continue
                break
            outcome = queue.dispatch(head.request_id, server_id)
            dispatched.append(outcome)
            self._report(outcome)
        return dispatched

    def _report(self, outcome: FinalOutcome) -> None:
        if not isinstance(outcome, Dispatched):
            self._prompt.pop(outcome.request_id, None)  # it left without a server: forget its prompt
        if self._on_outcome is not None:
            self._on_outcome(outcome)
