"""The one request path for stages 4-8: admission -> queue -> routing -> dispatch/re-route -> feedback.

:class:`RequestPath` composes the components every later stage extends; the
simulator, the widgets and stage 8's HTTP gateway all drive it the same way.
A request's trip is short and one-way::

    submit(request, now)
      -> admission   (a hook: stage 6's rate limits and tiers; pass-through now)
      -> queue       (optional stage-2 RequestQueue: waits when no server can take it)
      -> routing     (Router: filters = drain, memory, health weight / trial limit;
                      scorer and picker = the stage-3 strategy)
      -> dispatch    (RetryLedger: attempt number, per-try timeout, re-route)
      -> feedback    (completed(): HealthChecker.request_result with seconds per
                      token, Router.observe; then the queue refills the freed slot)

Time is an explicit ``now`` (seconds) on every call; the path never reads a clock.

What the driver (the simulator, a gateway) calls
-------------------------------------------------
Every call that can change what happens to requests returns a ``list`` of
outcomes, in the order they happened; the driver acts on each:

* :meth:`add_server` / :meth:`remove_server`: the fleet (a drained server
  leaves the router with its last request).
* :meth:`submit` ``(request, now)``: a new request.
* :meth:`first_token` ``(request_id, now)``: the current attempt streamed its
  first token to the client (from then on it is not re-sent).
* :meth:`completed` ``(request_id, server_id, now, ok, seconds_per_token)``:
  an attempt ended on ``server_id`` (its answer, or an error).
* :meth:`server_lost` ``(server_id, now)``: the transport saw every connection
  to the server break (a crash with connection resets).
* :meth:`due_probes` ``(now)`` / :meth:`probe_result` ``(server_id, ok, now)``:
  active health checks; the driver sends each probe and reports its result
  (``ok=False`` for a timeout).
* :meth:`tick` ``(now)``: per-try timeouts, health timers (ejection over,
  slow start), queue deadlines, slow-start re-weighting.
* :meth:`next_event_time` ``()``: when :meth:`tick` next has work (or a probe
  is due): the driver calls :meth:`tick` / :meth:`due_probes` then.
* :meth:`cancel` ``(request_id, now)``: the client went away.

Outcomes (frozen records; every submitted request ends with exactly one *final* outcome):

* :class:`Dispatched` (not final): an attempt started on a server; for a
  re-send ``attempt > 1`` and ``previous`` names the abandoned server (its
  work, if still running, is wasted; its late answer will be discarded).
* :class:`Queued` (not final): the request waits in the queue.
* :class:`Rejected` (final): admission or a full queue refused it, or no
  server could take it and there is no queue (HTTP 503 with Retry-After).
* :class:`Delivered` (final): the client got its one response.
* :class:`Failed` (final): ``reason`` says why (see :data:`FAIL_REASONS`).
* :class:`TimedOut` / :class:`Cancelled` (final): left the queue at its
  deadline / withdrawn by the client.
* :class:`Discarded` (not a request's end): a late or duplicate answer from
  an abandoned attempt was dropped and counted.

Health integration: the path never scans the fleet per request.  Health
transitions are read from ``HealthChecker.transitions`` (a cursor: O(new
transitions) per call) and pushed to the router as weights
(:meth:`Router.set_weight`, O(log S) each); servers in slow start (few) are
re-weighted every ``reweight_every`` seconds of their ramp, O(k log S) for k
servers in slow start, scheduled through :meth:`next_event_time`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

from solution.core.queue_types import Cancelled, Queued, Rejected, TimedOut
from solution.core.request import Request
from solution.core.routing import Router

__all__ = [
    "RequestPath",
    "Dispatched",
    "Queued",
    "Rejected",
    "Delivered",
    "Failed",
    "TimedOut",
    "Cancelled",
    "Discarded",
    "Outcome",
    "FAIL_REASONS",
    "Admission",
]

#: Why a request can fail (``Failed.reason``):
#:
#: * ``"streamed"``: its server was lost or timed out after tokens reached the
#:   client; a generation is never silently restarted (the client may retry
#:   with its own idempotency key);
#: * ``"out_of_tries"``: every try failed or timed out (RetryPolicy.max_tries);
#: * ``"error"``: the server answered with an error and re-routing is off;
#: * ``"server_lost"``: its server was declared down / lost and re-routing is off;
#: * ``"timeout"``: the per-try timeout expired and re-routing is off;
#: * ``"no_server"``: a re-send found no eligible server (and there is no queue).
FAIL_REASONS: tuple[str, ...] = ("streamed", "out_of_tries", "error", "server_lost", "timeout", "no_server")


@dataclass(frozen=True, slots=True)
class Dispatched:
    """Attempt ``attempt`` (1 = first) of the request started on ``server_id`` at ``at`` after waiting ``waited`` s.

    ``previous``: on a re-send, the server of the abandoned attempt (else ``None``).
    ``deadline``: when this try times out (``None``: no per-try timeout).
    """

    request_id: str
    server_id: str
    at: float
    waited: float = 0.0
    attempt: int = 1
    previous: str | None = None
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    """The client received the answer of attempt ``attempt`` from ``server_id`` at ``at`` (its one response)."""

    request_id: str
    server_id: str
    at: float
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class Failed:
    """The request ended with an error at ``at``; ``reason`` is one of :data:`FAIL_REASONS`; ``server_id`` the last server (or None)."""

    request_id: str
    at: float
    reason: str
    server_id: str | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Discarded:
    """A late or duplicate answer from ``server_id`` for ``request_id`` arrived at ``at`` and was dropped (counted)."""

    request_id: str
    server_id: str
    at: float


#: Anything a RequestPath call returns in its list.
Outcome = Union[Dispatched, Queued, Rejected, Delivered, Failed, TimedOut, Cancelled, Discarded]

#: Admission hook (stage 6): ``admission(request, now)`` returns ``None`` to admit
#: or a :class:`Rejected` to refuse.  The default admits everything.
Admission = Callable[[Request, float], Union[Rejected, None]]


class RequestPath:
    """The composed gateway: admission -> queue -> routing -> dispatch/re-route -> feedback.

    Args:
        router: the stage-3 :class:`~solution.core.routing.Router` (its
            strategy is the scorer and picker); the path owns its requests
            from now on (do not route on it directly).
        health: a ``HealthChecker`` (stage 4) or ``None`` (no health checks:
            every server has weight 1).
        ledger: a ``RetryLedger`` (stage 4) or ``None`` (no re-route: one try,
            no per-try timeout).
        queue: a stage-2 ``RequestQueue`` whose clock is a
            :class:`~solution.core.clock.ManualClock` (the path sets it to
            ``now``), or ``None`` (a request no server can take is rejected).
        admission: the stage-6 hook (default: admit everything).
        reweight_every: seconds between re-weights of a server in slow start (> 0).

    Costs: ``submit`` / ``completed`` are O(log S) plus the strategy's choice
    (O(log S) for indexed strategies); health adds O(1) per call plus O(log S)
    per transition; slow start adds O(k log S) per ``reweight_every`` seconds.
    """

    def __init__(
        self,
        router: Router,
        *,
        health: Any | None = None,
        ledger: Any | None = None,
        queue: Any | None = None,
        admission: Admission | None = None,
        reweight_every: float = 1.0,
    ) -> None:
        raise NotImplementedError("skeleton: implementation in progress (H-B)")

    # -- fleet ------------------------------------------------------------------

    def add_server(self, server_id: str, capacity: int, gpu_memory_gb: int, now: float, *,
                   speed: float | None = None, warm: bool = True) -> list[Outcome]:  # fmt: skip
        """Add a server to the router and the health checker (``warm=False``: it starts in slow start).

        Returns the queued requests it takes at once (:class:`Dispatched`).
        """
        raise NotImplementedError

    def remove_server(self, server_id: str, now: float) -> list[Outcome]:
        """Drain a server: no new requests; its in-flight ones finish; it leaves health when drained."""
        raise NotImplementedError

    # -- requests ---------------------------------------------------------------

    def submit(self, request: Request, now: float, *, priority: int = 0) -> list[Outcome]:
        """A new request: [Dispatched] | [Queued] | [Rejected]."""
        raise NotImplementedError

    def first_token(self, request_id: str, now: float) -> None:
        """The current attempt's first token reached the client: it will not be re-sent."""
        raise NotImplementedError

    def completed(self, request_id: str, server_id: str, now: float, *, ok: bool = True,
                  seconds_per_token: float | None = None) -> list[Outcome]:  # fmt: skip
        """An attempt ended on ``server_id``: [Delivered] / [Failed] / [Dispatched (re-send)] / [Discarded], then queue refills."""
        raise NotImplementedError

    def server_lost(self, server_id: str, now: float) -> list[Outcome]:
        """Every connection to ``server_id`` broke (a crash): its in-flight requests are re-sent or failed."""
        raise NotImplementedError

    def cancel(self, request_id: str, now: float) -> list[Outcome]:
        """The client went away: [Cancelled] (queued) or [Failed('cancelled')]-free removal of the in-flight attempt."""
        raise NotImplementedError

    # -- health and time ----------------------------------------------------------

    def due_probes(self, now: float) -> list[str]:
        """The servers to probe now (the driver sends each and reports :meth:`probe_result`)."""
        raise NotImplementedError

    def probe_result(self, server_id: str, ok: bool, now: float) -> list[Outcome]:
        """A probe's result (``ok=False`` for a timeout); transitions may re-weight or re-route."""
        raise NotImplementedError

    def tick(self, now: float) -> list[Outcome]:
        """Time-driven work due by ``now``: per-try timeouts, health timers, queue deadlines, slow-start weights."""
        raise NotImplementedError

    def next_event_time(self) -> float | None:
        """The earliest time :meth:`tick` or :meth:`due_probes` has work (``None``: nothing scheduled)."""
        raise NotImplementedError

    # -- introspection ------------------------------------------------------------

    def in_flight(self) -> dict[str, str]:
        """Request id -> the server of its current attempt."""
        raise NotImplementedError

    def stats(self) -> dict[str, int]:
        """Counts: submitted, dispatched, re-sent, delivered, failed, rejected, timed out, cancelled, discarded, queued, in flight."""
        raise NotImplementedError
