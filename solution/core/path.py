"""The one request path for stages 4-8: admission -> queue -> routing -> dispatch/re-route -> feedback.

:class:`RequestPath` composes the components every later stage extends; the
simulator, the widgets and stage 8's HTTP gateway all drive it the same way.
A request's trip is short and one-way::

    submit(request, now)
      -> admission   (a hook: stage 6's rate limits and tiers; pass-through now)
      -> queue       (optional stage-2 RequestQueue: waits when no server can take it)
      -> routing     (Router: filters = drain, memory, health weight / trial limit;
                      scorer and picker = the stage-3 strategy)
      -> dispatch    (RetryLedger: attempt number, per-try timeout, re-route;
                      stage 8's Retrier: whether and when a failed attempt is re-sent)
      -> feedback    (completed(): HealthChecker.request_result with seconds per
                      token, Router.observe; then the queue refills the freed slot)

Time is an explicit ``now`` (seconds) on every call; the path never reads a clock.

What the driver (the simulator, a gateway) calls
-------------------------------------------------
Every call that can change what happens to requests returns a ``list`` of
outcomes, in the order they happened; the driver acts on each:

* :meth:`add_server` / :meth:`remove_server`: the fleet (a drained server
  leaves the router with its last request; ``remove_server(...,
  drain_timeout=)`` bounds the wait, see "Drain with a timeout" below).
* :meth:`server_state` ``(server_id)``: ``"starting"``, ``"ready"``,
  ``"draining"`` or ``"gone"`` (what a deploy controller waits for).
* :meth:`submit` ``(request, now)``: a new request.
* :meth:`first_token` ``(request_id, now)``: the current attempt streamed its
  first token to the client (from then on it is not re-sent).
* :meth:`completed` ``(request_id, server_id, now, ok, seconds_per_token, failure)``:
  an attempt ended on ``server_id`` (its answer, or an error: ``failure``
  says which, for the retrier).
* :meth:`server_lost` ``(server_id, now)``: the transport saw every connection
  to the server break (a crash with connection resets); the server then takes
  nothing until a probe answers or health brings it out of ``down``.
* :meth:`due_probes` ``(now)`` / :meth:`probe_result` ``(server_id, ok, now)``:
  active health checks; the driver sends each probe and reports its result
  (``ok=False`` for a timeout).
* :meth:`tick` ``(now)``: per-try timeouts, health timers (ejection over,
  slow start), queue deadlines, slow-start re-weighting, re-sends whose
  backoff is over.
* :meth:`next_event_time` ``()``: when :meth:`tick` next has work (or a probe
  is due): the driver calls :meth:`tick` / :meth:`due_probes` then.
* :meth:`cancel` ``(request_id, now)``: the client went away.

Outcomes (frozen records; every submitted request ends with exactly one *final* outcome):

* :class:`Dispatched` (not final): an attempt started on a server; for a
  re-send ``attempt > 1`` and ``previous`` names the abandoned server (its
  work, if still running, is wasted; its late answer will be discarded); for
  the resume of a preempted request ``previous`` names the server it was
  paused on (its work there was stopped at the :class:`Preempted`).
* :class:`Preempted` (not final; stage 6): the request's attempt was paused
  on ``server_id`` to give its slot to a request of a tier that may preempt;
  the driver stops that work.  The request waits at the front of its tier's
  line and later gets a :class:`Dispatched` for its resume (on the same
  server in swap mode) and, as every request, exactly one final outcome.
* :class:`Queued` (not final): the request waits in the queue.
* :class:`Rejected` (final): admission or a full queue refused it, or no
  server could take it and there is no queue (HTTP 503 with Retry-After).
* :class:`Delivered` (final): the client got its one response.
* :class:`Failed` (final): ``reason`` says why (see :data:`FAIL_REASONS`).
* :class:`TimedOut` / :class:`Cancelled` (final): left the queue at its
  deadline / withdrawn by the client (queued or running).
* :class:`Drained` (not a request's end; stage 7): a server drained with a
  ``drain_timeout`` has no request left (its last one answered, or the
  timeout ended them: ``forced`` of them); it left the router and the driver
  may stop it.
* :class:`Discarded` (not a request's end): the late answer of an abandoned
  attempt (re-sent, timed out, cancelled, or of a request that already ended)
  was dropped and counted.  An abandoned attempt keeps its slot on its server
  (the GPU still works on it) until that answer, or until the server is lost.

Reads: :meth:`in_flight` (current attempts), :meth:`abandoned` (attempts
whose answers will be discarded), :meth:`stats` (counts, with
``submitted = delivered + failed + rejected + timed_out + cancelled + open``).

Service tiers and preemption (stage 6)
--------------------------------------
With ``tiers=`` (a :class:`~solution.tiers.TierTable`) every request belongs
to a service tier (``Request.tier``; ``None`` = the table's default tier, an
unknown name raises ``UnknownTierError`` and changes nothing).  The path
keeps one stage-2 ``RequestQueue`` *per tier*, built from the ``queue``
:class:`~solution.core.queue_types.QueuePolicy` (so ``max_depth`` and
``max_wait`` apply per tier: a flood of batch work cannot fill premium's
queue), and a request's queue priority is its tier's ``queue_class``.  A
refill serves the tiers in class order (highest first): it tries a tier's
head and, when that cannot be placed, goes on to the next class, so a
premium request pinned to a full pool never holds back a free request that
the shared pool could take (no head-of-line blocking across tiers): O(T)
per refill for T tiers, plus O(log S) per request placed.  Strict priority
needs no more: after every call no tier's head can be placed (else the
refill would have placed it), so a newer request of a lower class only ever
takes a slot that no waiting request of a higher class could use.

The admission hook runs first: when it raises (``UnknownTierError``,
``RequestTooLargeError``) nothing changes, not even the counters; a
:class:`Rejected` from it (429 with an exact ``Retry-After``) is the
request's final outcome.

With ``preemptor=`` (a :class:`~solution.tiers.Preemptor`), a request of a
tier that may preempt and finds no server (at submit, at a re-send, or at
the head of its tier's queue) asks the preemptor for a victim: the newest
running request of a preemptible tier on a server the requester may use
(one of its pools, not draining, weight > 0, big enough, and one slot freed
makes room under the requester's tier limit), preempted fewer than
``max_preemptions`` times.  The victim's attempt leaves the router slot
(:class:`Preempted`), the requester takes that slot, and the victim waits:

* in ``"recompute"`` mode at the front of its tier's waiting line: paused
  requests of a tier are resumed, in the order they were paused, before any
  queued request of that tier, on any server the tier may use;
* in ``"swap"`` mode in its server's line (as hard affinity's parked
  requests: tried again, first paused first, when that server changes), so
  it resumes on the same server; if that server is lost, down or removed it
  moves to the recompute line (its swapped-out cache is gone with the host).

The course's choices where stage 6's rules are silent: a paused request
does not count toward its tier queue's ``max_depth`` nor toward that
queue's ``Retry-After`` (it was admitted; a preemption never turns into a
rejection), it has no queue deadline (``max_wait`` is a bound on waiting
*before* service; a paused request is never dropped for having been
preempted; the client may still cancel it), and its per-try timeout stops
while paused and restarts with the resumed attempt.  A preemption is not a
failed try: the path ends the ledger's record of the paused attempt
(``RetryLedger.finish``) and begins a new one on resume, and it keeps the
tries already used up before the pause, so ``RetryPolicy.max_tries`` bounds
the failed tries of a request however often it is preempted; a request
that streamed tokens stays streamed (the client sees a pause, not a
restart).  ``Dispatched.attempt`` keeps counting every attempt, resumes
included; ``stats()`` counts ``preempted`` and ``resumed`` (a resume is not
a ``re_sent``) and ``paused`` now, and every request still ends exactly once.
Delivered answers feed their own tier queue's completion rate (its
``Retry-After``).

Hard session affinity (stage 5) and the queue: a request that may go only to
one server (the strategy's ``waiting_for(request)`` names it: a hard-pinned
session whose server is full) leaves the queue for that server's own line
(``queue.dispatch`` to it: early binding) instead of blocking the queue's
head, so the requests behind it still go wherever a slot is free.  A line is
tried again, first come first served, when its server changes (a slot frees,
its weight changes, it drains or is lost): O(1) per change, no scan of the
lines; a request whose server can no longer be waited for (down, removed)
moves to a line tried on every refill.  A parked request keeps its queue
deadline (``TimedOut`` at ``max_wait``) and can be cancelled.

Re-sends go to another server than the attempt they replace (Envoy's
``previous_hosts`` retry predicate): the previous server is set to weight 0
for the one routing call, O(log S) twice; a timed-out or failed attempt may
go back to it when no other server can take it, a lost server's never.

Drain with a timeout (stage 7)
------------------------------
``remove_server(server_id, now, drain_timeout=None)`` drains as stage 1 does
(no new request; the running ones finish) and waits forever; with
``drain_timeout=T`` (seconds >= 0; ``math.inf`` waits forever but still
reports) the drain ends at ``now + T`` at the latest, scheduled through
:meth:`next_event_time` / :meth:`tick` (a heap: O(log D) per drain for D
timed drains, no scan of the fleet or of the requests).  At that deadline
the server is stopped (as Kubernetes' SIGKILL after
``terminationGracePeriodSeconds``): every attempt still there ends.  A
request whose current attempt runs there is re-sent once through the
RetryLedger when it may be (no token streamed, tries left: as for a lost
server, the re-send counts as a try) and otherwise ends
``Failed(reason="drain_timeout")``; it is never dropped silently and still
ends exactly once.  Its attempt (and any abandoned attempt still running
there) is abandoned: a late answer from that server is :class:`Discarded`
and counted, as stage 4 does, until the same server id is added again.
Then the server has left the router and a :class:`Drained` outcome says so
(``forced`` = the requests the timeout ended); when the last request leaves
before the deadline, :class:`Drained` comes with that answer
(``forced=0``), and an idle server drains at once.  A timed drain that loses
its server (``server_lost``) ends with ``Drained(forced=0)`` too.

Choices where the design is silent: :class:`Drained` is reported only for
drains given a ``drain_timeout`` (``None`` keeps stage 1's drain exactly, so
stage 4-6 drivers see no new outcome); a second ``remove_server`` of a
draining server may set or bring its deadline forward, never push it back;
the drain-timeout re-send never goes back to the draining server; a forced
attempt is not reported to health (the server left health checks when its
drain began).  Sticky sessions (stage 5) leave the draining server when the
drain begins (their affinity re-maps on ``draining``), and requests parked
for it, or paused on it in swap mode (stage 6), move at once, not at the
deadline.  Costs: ``remove_server`` O(log S + log D); the forced end
O(k log S) for k attempts there (each re-send a routing call); each late
answer after a forced drain O(1), with O(1) memory per such attempt kept
until the server id is added again.

Retries with backoff and a budget (stage 8)
-------------------------------------------
``RequestPath(..., retrier=Retrier(policy))`` (stage 8's
:class:`~solution.retry.Retrier`, or any object with ``begin`` / ``decide``
/ ``end``; it needs a ``ledger`` whose ``max_tries`` is at least the
retrier's policy's, else ValueError) puts a decision before every re-send.
Without a retrier nothing here happens: stages 4-7 behave as before, and
:meth:`stats` keeps its keys.

* ``retrier.begin(id)`` when a request is admitted (before it is routed;
  a request then :class:`Rejected` for a full queue or no server is ended
  at once), ``retrier.end(id)`` at its one final outcome, whatever it is.
  So the budget's base, the *active* requests, are those the path holds:
  running, queued, parked, paused or backing off (Envoy counts active and
  pending requests alike).
* After every failed attempt, ``retrier.decide(id, tries, failure,
  streamed=...)``, where ``tries`` counts the attempts that count toward
  ``max_tries`` (a resume after a preemption does not) and ``failure`` is:
  the ``failure=`` given to :meth:`completed` (default
  ``Failure("status", 500)``); ``Failure("timeout")`` for a per-try
  timeout; ``Failure("reset")`` for a lost server (:meth:`server_lost`) or
  one health declared down (its attempts are abandoned as for a crash).
  It is asked also when the ledger already refuses (tokens streamed, no
  tries left), for its reason and its counts; a "yes" then is overruled
  and the request fails with the ledger's reason (``"streamed"``,
  ``"out_of_tries"``: only a retrier that ignores ``max_tries`` says it).
* **No**: the request ends ``Failed(reason=<the decision's reason>)``
  (``"streamed"``, ``"not_retryable"``, ``"max_tries"``,
  ``"retry_after_too_long"``, ``"budget"``) and its ledger record fails.
* **Yes, after** ``delay`` **seconds**: with ``delay == 0`` it is re-sent
  at once, as stage 4 does.  Otherwise it *backs off*: it holds no slot
  (its failed attempt ended or was abandoned), sits in no queue and no
  line, does not count as ``waiting``, and is due at ``now + delay``,
  which :meth:`next_event_time` includes (a lazy heap: O(log B) for B
  requests backing off).  The :meth:`tick` (or any call) at or after that
  time re-sends it through routing as a re-send does (another server than
  the failed one when one can take it; never the lost one), or the queue
  when no server can take it, or ``Failed("no_server")`` without a queue.
  So a re-send never starts before ``now + delay``, and with a
  ``Retry-After`` never before it (the retrier's delay is at least it).
  :meth:`cancel` ends a request backing off (:class:`Cancelled`);
  :meth:`first_token` refuses it (no attempt runs).
* A server's answer with an error is re-sent only with a retrier (or a
  ledger with ``error()``): the reference ledger cannot re-send an
  answered attempt, so the path ends that ledger record
  (``RetryLedger.finish``, counted there as cancelled) and the re-send
  begins a new one, its failed tries still counted toward ``max_tries``
  (as after a preemption).

What does not change (the course's choices where the design is silent): a
drain timeout's forced re-send (stage 7) is not a failure of the server,
so it is not asked (re-sent at once when the ledger allows, else
``Failed("drain_timeout")``) and takes no budget; a preemption (stage 6) is
not a failed try either; a request backing off is untouched by preemption,
drains and lost servers (it runs nowhere).  ``stats()`` gains ``retried``
(decisions to re-send that the path carried out), ``retry_budget_exhausted``
(re-sends the budget refused) and ``backing_off`` (now).  Costs: one
``decide`` per failed attempt (O(1) for the reference), O(log B) to back
off and to re-send after it.

Health integration: the path never scans the fleet per request.  Health
transitions are read from ``HealthChecker.transitions`` (a cursor: O(new
transitions) per call) and pushed to the router as weights
(:meth:`Router.set_weight`, O(log S) each); servers in slow start (few) are
re-weighted every ``reweight_every`` seconds of their ramp, O(k log S) for k
servers in slow start, scheduled through :meth:`next_event_time`.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Callable, Union

from solution.core.clock import ManualClock
from solution.core.errors import (
    DuplicateRequestError,
    NoCapacityError,
    TimeWentBackwardsError,
    UnknownRequestError,
    UnknownServerError,
)
from solution.core.health_types import HealthState, require_time
from solution.core.queue_types import Cancelled, Queued, QueuePolicy, Rejected, TimedOut
from solution.core.request import Request
from solution.core.retry_types import Failure
from solution.core.routing import Router
from solution.core.tier_types import PREEMPT_MODES, SHARED_POOL
from solution.core.validate import require_id, require_int

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
    "Preempted",
    "Drained",
    "Outcome",
    "SERVER_STATES",
    "FAIL_REASONS",
    "Admission",
]

#: Why a request can fail (``Failed.reason``):
#:
#: * ``"streamed"``: its server was lost or timed out after tokens reached the
#:   client; a generation is never silently restarted (the client may retry
#:   with its own idempotency key);
#: * ``"out_of_tries"``: every try failed or timed out (RetryPolicy.max_tries);
#: * ``"error"``: the server answered with an error and it is not re-sent (no
#:   ledger, or a ledger without ``error()``: such answers are not retried);
#: * ``"server_lost"``: its server was declared down / lost and re-routing is off;
#: * ``"timeout"``: the per-try timeout expired and re-routing is off;
#: * ``"no_server"``: a re-send found no eligible server (and there is no queue);
#: * ``"drain_timeout"``: its server's drain reached its ``drain_timeout`` and
#:   the request could not be re-sent (tokens streamed, no tries left, or no
#:   ledger).
#:
#: With a retrier (stage 8), a failed attempt that is not re-sent ends with the
#: retrier's reason instead: ``"streamed"``, ``"not_retryable"`` (a 4xx other
#: than 429, or a failure class not in ``retry_on``), ``"max_tries"``,
#: ``"retry_after_too_long"`` or ``"budget"`` (the retry budget is spent).
FAIL_REASONS: tuple[str, ...] = ("streamed", "out_of_tries", "error", "server_lost", "timeout", "no_server", "drain_timeout",
                                 "not_retryable", "max_tries", "retry_after_too_long", "budget")  # fmt: skip


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


@dataclass(frozen=True, slots=True)
class Preempted:
    """The request's attempt on ``server_id`` was paused at ``at`` for a request of a tier that may preempt (not final).

    The driver stops the request's work on ``server_id``; the request waits at
    the front of its tier's line and gets a :class:`Dispatched` for its resume.
    ``times``: how often this request has been preempted so far, this one
    included (at most the preemptor's ``max_preemptions``).
    """

    request_id: str
    server_id: str
    at: float
    times: int


@dataclass(frozen=True, slots=True)
class Drained:
    """Server ``server_id``, drained with a ``drain_timeout``, has no request left at ``at`` (not a request's end).

    It has left the router; the driver may stop it.  ``forced``: how many
    requests its drain timeout ended there (0: every one left by itself).
    """

    server_id: str
    at: float
    forced: int = 0


#: What :meth:`RequestPath.server_state` answers.
SERVER_STATES: tuple[str, ...] = ("starting", "ready", "draining", "gone")

#: Anything a RequestPath call returns in its list.
Outcome = Union[Dispatched, Queued, Rejected, Delivered, Failed, TimedOut, Cancelled, Discarded, Preempted, Drained]

#: Admission hook (stage 6): ``admission(request, now)`` returns ``None`` to admit
#: or a :class:`Rejected` to refuse.  The default admits everything.
Admission = Callable[[Request, float], Union[Rejected, None]]


class _Flight:
    """A request the path owns until it ends (private): queued, or its current attempt."""

    __slots__ = ("request", "priority", "arrived", "attempt", "server", "router_id", "deadline", "streamed",
                 "queued", "in_ledger", "last_server", "parked", "queued_at", "wait_until",
                 "tier", "paused", "paused_at", "line", "base", "spent", "ledger_tries",
                 "backoff", "backoff_seq", "backoff_from", "backoff_strict")  # fmt: skip

    def __init__(self, request: Request, priority: int, arrived: float, tier: str | None = None) -> None:
        self.request, self.priority, self.arrived, self.tier = request, priority, arrived, tier
        self.paused: str | None = None  # preempted: the server it was paused on (None: not paused)
        self.paused_at = 0.0
        self.line: tuple[str | None, str | None] | None = None  # paused: (tier, server) of its swap line, (tier, None) for recompute
        self.base = 0  # attempts before the ledger's current record began (a preemption starts a new record)
        self.spent = 0  # failed tries before the ledger's current record (they still count toward max_tries)
        self.ledger_tries = 0  # attempts in the ledger's current record
        self.attempt = 0  # attempts started so far
        self.server: str | None = None  # the current attempt's server (None: queued or between attempts)
        self.router_id: str | None = None  # the current attempt's id in the router
        self.deadline: float | None = None
        self.streamed = False
        self.queued = False
        self.in_ledger = False
        self.last_server: str | None = None
        self.parked: str | None = None  # the line it waits in (a server id, or _ANY_SERVER), outside the queue
        self.queued_at = arrived  # when it last entered the queue
        self.wait_until: float | None = None  # its queue deadline (max_wait), kept while parked
        self.backoff: float | None = None  # backing off (stage 8): when its re-send is due (None: not backing off)
        self.backoff_seq = 0  # the entry of the backoff heap that is live for it
        self.backoff_from: str | None = None  # the server of the failed attempt it backs off from
        self.backoff_strict = False  # its re-send never goes back to that server (it was lost)


class _Drain:
    """A drain given a timeout (private): its deadline and how many requests that deadline ended."""

    __slots__ = ("deadline", "forced")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.forced = 0


#: The line of parked requests that no longer wait for one server (theirs went down or away): tried on every refill.
_ANY_SERVER = ""


def _router_id(request_id: str, attempt: int) -> str:
    """The router's id of an attempt: the request's own for the first, ``id<US>k`` for the k-th (unit separator)."""
    return request_id if attempt == 1 else f"{request_id}{_SEP}{attempt}"


_SEP = "\x1f"
_HEALTH_METHODS = ("add_server", "remove_server", "next_probe_time", "due_probes", "probe_result", "request_result",
                   "advance", "next_change_time", "weight", "trial_limit")  # fmt: skip
_LEDGER_METHODS = ("begin", "first_token", "server_down", "timed_out", "answer", "fail", "finish")
_QUEUE_METHODS = ("enqueue", "peek", "dispatch", "cancel", "expire", "next_deadline", "record_completion")
_TIER_METHODS = ("tier", "limit")
_PREEMPTOR_METHODS = ("started", "stopped", "forget", "victim", "preempt", "preemptions")
_RETRIER_METHODS = ("begin", "decide", "end")


class RequestPath:
    """The composed gateway: admission -> queue -> routing -> dispatch/re-route -> feedback.

    >>> from solution.core.routing import Router
    >>> from solution.health import HealthChecker, RetryLedger
    >>> path = RequestPath(Router(), health=HealthChecker(), ledger=RetryLedger())
    >>> path.add_server("a", 4, 80, 0.0); path.add_server("b", 4, 80, 0.0)
    []
    []
    >>> path.submit(Request("r1", 100), 0.0)
    [Dispatched(request_id='r1', server_id='a', at=0.0, waited=0.0, attempt=1, previous=None, deadline=None)]
    >>> path.server_lost("a", 1.0)   # a crash before any token: re-sent to b
    [Dispatched(request_id='r1', server_id='b', at=1.0, waited=0.0, attempt=2, previous='a', deadline=None)]
    >>> path.completed("r1", "b", 2.0, seconds_per_token=0.02)
    [Delivered(request_id='r1', server_id='b', at=2.0, attempt=2)]

    Args:
        router: a stage-3 :class:`~solution.core.routing.Router` without
            servers (add them through the path, so health knows them); its
            strategy is the scorer and picker.  The path owns its requests:
            do not route on it directly.
        health: a ``HealthChecker`` (stage 4; the reference's or a
            candidate's) or ``None``: no health checks, every server at weight 1.
        ledger: a ``RetryLedger`` (stage 4) or ``None``: no re-route (one try,
            no per-try timeout; a lost server's requests fail).
        queue: a :class:`~solution.core.queue_types.QueuePolicy` (the path
            builds the reference ``RequestQueue`` on its own clock; in the
            candidate's bundle, which has no reference, the candidate's), a stage-2
            queue object built on the :class:`~solution.core.clock.ManualClock`
            given as ``clock`` (the path sets it to each ``now``), or ``None``:
            a request no server can take is rejected (503, Retry-After 1).
        clock: the ManualClock of a queue object (only with one).
        admission: the stage-6 hook ``admission(request, now) -> Rejected | None``
            (default: admit everything), e.g. ``TierAdmission``.  It runs before
            anything changes; when it raises, nothing has changed.
        tiers: a stage-6 ``TierTable`` or ``None`` (no tiers: stages 1-5).  With
            it, ``queue`` must be a QueuePolicy (or ``None``): one queue per tier.
        preemptor: a stage-6 ``Preemptor`` (needs ``tiers``) or ``None``: no preemption.
        reweight_every: seconds between re-weights of the servers in slow
            start (> 0, default 1.0).
        retrier: a stage-8 ``Retrier`` (``begin`` / ``decide`` / ``end``) or
            ``None``: re-sends as stage 4 (at once, whenever the ledger
            allows).  Needs ``ledger``; see the module's "Retries with
            backoff and a budget".

    Costs (S servers, k of them recovering): ``submit`` and ``completed`` are
    O(log S) plus the strategy's choice (O(log S) for indexed strategies, O(d)
    for power of d); health adds O(log S) per call (the checker's own cost)
    plus one O(log S) re-key per health transition; slow start adds
    O(k log S) once per ``reweight_every`` seconds (and O(log S) after each
    result of a recovering server, whose half-open -> slow-start change has
    no transition); a re-send O(log S) (twice, to steer it off its previous
    server).  Nothing scans the fleet per request.

    With tiers, a refill is O(T) for T tiers plus O(log S) per request
    placed; a preemption adds the preemptor's victim search (O(1) typical,
    O(k) for k running preemptible requests on servers the requester may not
    use) and O(log S) to free the victim's slot; resuming a paused request
    costs what a dispatch does.

    Drains with a timeout (stage 7, D of them pending) add O(log D) to
    ``remove_server`` and to :meth:`next_event_time` / :meth:`tick` (a lazy
    heap of deadlines); at a deadline, O(k log S) for the k attempts stopped
    there (each re-send one routing call); :meth:`server_state` is O(1).

    Raises:
        TypeError: a component of the wrong kind (a queue object with
        ``tiers``; a ``preemptor`` without ``tiers``; a ``retrier`` without
        ``ledger``).  ValueError: a router that already has servers,
        ``reweight_every`` <= 0, a queue whose large-request threshold
        differs from the router's, or a ledger whose ``max_tries`` is below
        the retrier's.
    """

    def __init__(
        self,
        router: Router,
        *,
        health: Any | None = None,
        ledger: Any | None = None,
        queue: Any | None = None,
        clock: ManualClock | None = None,
        admission: Admission | None = None,
        tiers: Any | None = None,
        preemptor: Any | None = None,
        reweight_every: float = 1.0,
        retrier: Any | None = None,
    ) -> None:
        if not isinstance(router, Router):
            raise TypeError(f"router must be a solution.core.routing.Router, got {type(router).__name__}")
        if router.get_server_stats():
            raise ValueError("the router already has servers: start from an empty Router and add them with RequestPath.add_server")
        _require_methods(health, _HEALTH_METHODS, "health", "a HealthChecker")
        if health is not None and not isinstance(getattr(health, "transitions", None), list):
            raise TypeError("health must keep its transition log in a list attribute `transitions` (HealthChecker does)")
        _require_methods(ledger, _LEDGER_METHODS, "ledger", "a RetryLedger")
        _require_methods(retrier, _RETRIER_METHODS, "retrier", "a Retrier")
        if retrier is not None:
            if ledger is None:
                raise TypeError("a retrier needs ledger= (a RetryLedger): the ledger keeps each request's attempts and "
                                "per-try deadline, the retrier decides whether and when a failed one is re-sent")  # fmt: skip
            ledger_max = getattr(getattr(ledger, "policy", None), "max_tries", None)
            retrier_max = getattr(getattr(retrier, "policy", None), "max_tries", None)
            if isinstance(ledger_max, int) and isinstance(retrier_max, int) and ledger_max < retrier_max:
                raise ValueError(f"the ledger's max_tries ({ledger_max}) is below the retrier's ({retrier_max}): the ledger would "
                                 f"end requests the retrier may re-send; build the ledger with max_tries={retrier_max}")  # fmt: skip
        if admission is not None and not callable(admission):
            raise TypeError(f"admission must be callable(request, now) -> Rejected | None, got {type(admission).__name__}")
        if isinstance(reweight_every, bool) or not isinstance(reweight_every, (int, float)):
            raise TypeError(f"reweight_every must be a number of seconds, got {type(reweight_every).__name__}")
        if not math.isfinite(reweight_every) or reweight_every <= 0:
            raise ValueError(f"reweight_every must be a finite number of seconds > 0, got {reweight_every!r}")
        _require_methods(tiers, _TIER_METHODS, "tiers", "a TierTable")
        if tiers is not None:
            if not hasattr(tiers, "by_class"):
                raise TypeError(f"tiers must be a TierTable (missing by_class), got {type(tiers).__name__}")
            order = tuple(t if isinstance(t, str) else t.name for t in tiers.by_class)
            if queue is not None and not isinstance(queue, QueuePolicy):
                raise TypeError(f"tiers need a QueuePolicy (the path builds one RequestQueue per tier from it), "
                                f"got a {type(queue).__name__}; pass queue=QueuePolicy(...)")  # fmt: skip
        else:
            order = (None,)
        _require_methods(preemptor, _PREEMPTOR_METHODS, "preemptor", "a Preemptor")
        if preemptor is not None:
            if tiers is None:
                raise TypeError("a preemptor needs tiers=: which tiers may preempt and which are preemptible is in the TierTable")
            if getattr(preemptor, "mode", None) not in PREEMPT_MODES:
                raise TypeError(f"preemptor.mode must be one of {PREEMPT_MODES}, got {getattr(preemptor, 'mode', None)!r}")
        queues: dict[str | None, Any] = {}
        if tiers is not None and isinstance(queue, QueuePolicy):
            if clock is not None:
                raise TypeError("clock is only for a queue object; with a QueuePolicy the path makes its own clock")
            clock = ManualClock()
            queue_class = _queue_class()
            queues = {name: queue_class(clock, queue) for name in order}
            policy, queue = queue, None
            if policy.large_request_tokens != router.large_request_tokens:
                raise ValueError(f"the queue's large_request_tokens ({policy.large_request_tokens}) must equal the router's "
                                 f"({router.large_request_tokens}): both must call the same requests large")  # fmt: skip
        elif isinstance(queue, QueuePolicy):
            if clock is not None:
                raise TypeError("clock is only for a queue object; with a QueuePolicy the path makes its own clock")
            clock = ManualClock()
            queue = _queue_class()(clock, queue)
        elif queue is not None:
            _require_methods(queue, _QUEUE_METHODS, "queue", "a stage-2 RequestQueue")
            if not isinstance(clock, ManualClock):
                raise TypeError("a queue object needs clock=: the ManualClock it was built on (the path sets it to each now)")
        elif clock is not None:
            raise TypeError("clock is only for a queue object")
        if queue is not None and queue.policy.large_request_tokens != router.large_request_tokens:
            raise ValueError(f"the queue's large_request_tokens ({queue.policy.large_request_tokens}) must equal the router's "
                             f"({router.large_request_tokens}): both must call the same requests large")  # fmt: skip
        self.router = router
        self.health = health
        self.ledger = ledger
        self.queue = queue
        self.clock = clock
        self.admission = admission
        self.tiers = tiers
        self.preemptor = preemptor
        self.reweight_every = float(reweight_every)
        self.retrier = retrier
        self._order: tuple[str | None, ...] = order  # tier names, highest class first ((None,) without tiers)
        self._queues: dict[str | None, Any] = queues if tiers is not None else ({None: queue} if queue is not None else {})
        self._resume: dict[str | None, deque[_Flight]] = {}  # tier -> paused requests to resume on any server (recompute)
        self._swap: dict[tuple[str | None, str], deque[_Flight]] = {}  # (tier, server) -> paused requests to resume there (swap)
        self._paused = 0  # paused (preempted) requests
        self._now = -math.inf
        self._flights: dict[str, _Flight] = {}  # request id -> its record, until it ends
        self._on: dict[str, dict[str, None]] = {}  # server -> request ids whose current attempt runs there
        self._ghosts: dict[tuple[str, str], list[str]] = {}  # (request, server) -> router ids of abandoned attempts
        self._ghosts_on: dict[str, dict[str, tuple[str, str]]] = {}  # server -> {router id: (request, server)}
        self._ghost_count: dict[str, int] = {}  # request id -> abandoned attempts still running
        self._timeouts: list[tuple[float, int, str, int]] = []  # (deadline, seq, request id, attempt), lazy
        self._seq = 0
        self._cursor = 0  # health transitions already applied
        self._in_health: set[str] = set()
        self._lost: set[str] = set()  # servers lost (server_lost) and not seen back yet: weight 0
        self._ramping: dict[str, None] = {}  # servers recovering (half-open or slow start), insertion order
        self._next_reweight: float | None = None
        self._pending: list[Outcome] = []  # outcomes of a call that returns none (due_probes): given with the next list
        self._lines: dict[str, deque[_Flight]] = {}  # server -> requests parked for it (hard affinity), first come first
        self._line_due: list[tuple[float, int, str]] = []  # (queue deadline, seq, request id) of parked requests, lazy
        self._changed: set[str] = set()  # servers changed since their line was last tried
        self._parked = 0  # requests in the lines
        self._drains: dict[str, _Drain] = {}  # server -> its timed drain, until Drained
        self._drain_due: list[tuple[float, int, str]] = []  # (deadline, seq, server), lazy
        self._killed: dict[str, dict[str, int]] = {}  # server -> {request id: attempts its drain timeout stopped}
        self._counts = dict.fromkeys(("submitted", "dispatched", "re_sent", "delivered", "failed", "rejected",
                                      "timed_out", "cancelled", "discarded", "lost_attempts", "queued",
                                      "preempted", "resumed", "drained", "drain_forced"), 0)  # fmt: skip
        if retrier is not None:  # without a retrier, stats() keeps its stage 4-7 keys
            self._counts.update(retried=0, retry_budget_exhausted=0)
        self._backoff_due: list[tuple[float, int, str]] = []  # (re-send due, seq, request id) of requests backing off, lazy
        self._backing_off = 0  # requests backing off now

    # -- fleet ------------------------------------------------------------------

    def add_server(self, server_id: str, capacity: int, gpu_memory_gb: int, now: float, *,
                   speed: float | None = None, warm: bool = True, pool: str = SHARED_POOL,
                   version: str = "v0") -> list[Outcome]:  # fmt: skip
        """Add a server to the router and the health checker; it takes queued requests at once.

        ``warm=True`` (default, the initial fleet): healthy at full weight;
        ``warm=False`` (a server just started): it begins in slow start.
        ``pool``: its pool label (stage 6; ``"shared"``, the pool every tier may use, by default).
        ``version``: its software version label (stage 7; ``"v0"`` by default),
        read back as ``router.server(server_id).version``.
        Returns the outcomes in order (time-based work due by ``now``, then
        the :class:`Dispatched` requests it takes from the queue).  O(log S).

        Raises: as ``Router.add_server`` and ``HealthChecker.add_server``
        (nothing changes); TypeError if ``warm`` is not a bool.
        """
        require_id(server_id, "server_id")
        if not isinstance(warm, bool):
            raise TypeError(f"warm must be a bool, got {type(warm).__name__} {warm!r}")
        now = self._time(now)
        out = self._housekeeping(now)
        self.router.add_server(server_id, capacity, gpu_memory_gb, speed=speed, pool=pool, version=version)
        if self.health is not None:
            try:
                self.health.add_server(server_id, now, warm=warm)
            except BaseException:
                self.router.remove_server(server_id)  # no requests yet: the router forgets it at once
                raise
            self._in_health.add(server_id)
            out += self._apply_health(now)
        self._killed.pop(server_id, None)  # a new server under an old id: the stopped one's attempts never answer
        out += self._fill(now)
        return self._flush(out)

    def remove_server(self, server_id: str, now: float, *, drain_timeout: float | None = None) -> list[Outcome]:
        """Drain a server: no new requests; its in-flight ones finish; it leaves health checks at once.

        ``drain_timeout`` (seconds >= 0, ``math.inf`` allowed; ``None``: wait
        forever and report nothing, as stage 1): at ``now + drain_timeout``
        the requests still there are re-sent or end
        ``Failed(reason="drain_timeout")``, and a :class:`Drained` outcome
        reports when the server has no request left (at once for an idle
        server).  Calling it again on a draining server may set or bring the
        deadline forward, never push it back.  See the module's "Drain with a
        timeout".

        Returns the time-based outcomes due by ``now``, then the requests parked
        for it (hard affinity) or paused on it (swap mode) that go elsewhere
        now (and, with ``drain_timeout=0``, the requests it ended and the
        :class:`Drained`).  O(log S + log D) (+ O(k log S) for k requests a
        zero timeout ends).

        Raises: UnknownServerError (a KeyError) if the router does not have it;
        TypeError / ValueError for a ``drain_timeout`` that is not a number of
        seconds >= 0 (nothing changes).
        """
        require_id(server_id, "server_id")
        if drain_timeout is not None:
            if isinstance(drain_timeout, bool) or not isinstance(drain_timeout, (int, float)):
                raise TypeError(f"drain_timeout must be a number of seconds or None, got {type(drain_timeout).__name__} {drain_timeout!r}")
            if math.isnan(drain_timeout) or drain_timeout < 0:
                raise ValueError(f"drain_timeout must be >= 0 seconds (math.inf: wait forever), got {drain_timeout!r}")
        if server_id not in self.router:
            raise UnknownServerError(f"server {server_id!r} is not present; add_server it first")
        now = self._time(now)
        out = self._housekeeping(now)
        if server_id not in self.router:  # its earlier drain's deadline was due by now: it is gone already
            return self._flush(out)
        self.router.remove_server(server_id)
        self._touch(server_id)
        if server_id in self._in_health:
            self.health.remove_server(server_id)
            self._in_health.discard(server_id)
            self._ramping.pop(server_id, None)
        self._lost.discard(server_id)
        if drain_timeout is not None:
            deadline = now + float(drain_timeout)
            d = self._drains.get(server_id)
            if d is None:
                d = self._drains[server_id] = _Drain(deadline)
                moved = True
            else:
                moved = deadline < d.deadline
                d.deadline = min(d.deadline, deadline)
            if moved and math.isfinite(deadline):
                self._seq += 1
                heapq.heappush(self._drain_due, (deadline, self._seq, server_id))
            if server_id in self.router and d.deadline <= now:
                self._force_drain(server_id, now, out)
            self._check_drained(server_id, now, out)
        out += self._fill(now)  # its parked requests go elsewhere now
        return self._flush(out)

    def server_state(self, server_id: str) -> str:
        """Where ``server_id`` is in its life, one of :data:`SERVER_STATES`.  O(1).

        * ``"gone"``: not in the router (never added, or drained away; the
          path keeps no record of past servers, so a typo also reads "gone");
        * ``"draining"``: :meth:`remove_server` was called, requests remain;
        * ``"ready"``: takes traffic at full weight: health says ``healthy``
          (checks passed and slow start done), or there is no health checker;
          and it is not lost;
        * ``"starting"``: present but not ready: slow start or half-open
          (``recovering``), ``degraded``, ``down``, or lost and not seen back
          (a deploy controller counts only ``"ready"`` servers as capacity).

        Raises: TypeError / ValueError for a bad id.
        """
        require_id(server_id, "server_id")
        if server_id not in self.router:
            return "gone"
        if self.router.server(server_id).draining:
            return "draining"
        if server_id in self._lost:
            return "starting"
        if self.health is None or server_id not in self._in_health:
            return "ready"
        return "ready" if self.health.state(server_id) == HealthState.HEALTHY else "starting"

    # -- requests ---------------------------------------------------------------

    def submit(self, request: Request, now: float, *, priority: int | None = None) -> list[Outcome]:
        """A new request: admission, then a server now, or the queue, or a rejection.

        Returns the outcomes in order: time-based work due by ``now``, then
        this request's :class:`Dispatched`, :class:`Queued` or :class:`Rejected`
        (with a preemptor, the :class:`Preempted` that made room for it comes
        just before its :class:`Dispatched`).  A request waits in the queue
        (its tier's, with tiers) behind others (first come, as the stage-2
        gateway) rather than overtaking them.  ``priority`` (default 0) is the
        stage-2 queue class; with tiers it is the tier's ``queue_class``.
        O(log S) + the strategy (+ the admission hook, O(1) amortized for
        stage 6's; + a victim search when it preempts).

        The admission hook runs before anything changes: when it raises,
        nothing has changed (not even the counters).

        Raises:
            TypeError / ValueError: not a Request, a bad ``priority`` or ``now``
                (TimeWentBackwardsError when earlier than a time seen), or
                ``priority`` given with tiers (the tier's class is the priority).
            UnknownTierError (a ValueError): with tiers, ``request.tier`` is no tier of the table.
            DuplicateRequestError (a ValueError): the id is queued or in
                flight, or an abandoned attempt of it still runs.
            Whatever the admission hook raises (``RequestTooLargeError``, ...).
        """
        if not isinstance(request, Request):
            raise TypeError(f"submit takes a solution.core.request.Request, got {type(request).__name__}")
        tier: str | None = None
        if self.tiers is not None:
            if priority is not None:
                raise TypeError("with tiers= a request's priority is its tier's queue_class: set Request.tier, do not pass priority")
            spec = self.tiers.tier(request.tier)  # UnknownTierError: nothing changed
            tier, priority = spec.name, spec.queue_class
        elif priority is None:
            priority = 0
        else:
            require_int(priority, "priority", minimum=0)
        rid = request.request_id
        if rid in self._flights or rid in self._ghost_count:
            raise DuplicateRequestError(f"request {rid!r} is still queued, in flight or has an attempt running; use a new id")
        now = self._check_time(now)
        verdict = None
        if self.admission is not None:
            verdict = self.admission(request, now)  # first: when it raises, nothing has changed
            if verdict is not None and not isinstance(verdict, Rejected):
                raise TypeError(f"admission must return None or a Rejected, got {type(verdict).__name__}")
        if verdict is None and self.retrier is not None:
            self.retrier.begin(rid)  # an active request from now on (the budget's base); when it raises, nothing has changed
        now = self._time(now)
        out = self._housekeeping(now)
        self._counts["submitted"] += 1
        if verdict is not None:
            self._counts["rejected"] += 1
            out.append(verdict)
            return self._flush(out)
        f = _Flight(request, priority, now, tier)
        queue = self._queues.get(tier)
        blocked = tier in self._resume or bool(
            queue is not None and len(queue) and (self.router.is_large(request) or queue.peek(False) is not None))
        routed = None if blocked else self._place(f, None, now, out, strict=False)
        if routed is not None:
            self._flights[rid] = f
            out.append(self._start(f, *routed, now, previous=None, waited=0.0))
        elif queue is not None:
            receipt = self._enqueue(f, now)
            if isinstance(receipt, Queued):
                self._flights[rid] = f
                if not blocked:
                    self._park_if_pinned(f)
            elif self.retrier is not None:
                self.retrier.end(rid)
            out.append(receipt)
        else:
            self._counts["rejected"] += 1
            if self.retrier is not None:
                self.retrier.end(rid)
            out.append(Rejected(rid, now, 1, 503))
        return self._flush(out)

    def first_token(self, request_id: str, now: float) -> None:
        """The current attempt's first token reached the client: from now on it is never re-sent.  O(1).

        Raises: UnknownRequestError (a KeyError): the request has no attempt running.
        """
        require_id(request_id, "request_id")
        f = self._flights.get(request_id)
        if f is None or f.server is None:
            raise UnknownRequestError(f"request {request_id!r} has no attempt running (unknown, queued, backing off, or ended)")
        now = self._time(now)
        if self.ledger is not None:
            self.ledger.first_token(request_id, now)
        f.streamed = True

    def completed(self, request_id: str, server_id: str, now: float, *, ok: bool = True,
                  seconds_per_token: float | None = None, failure: Failure | None = None) -> list[Outcome]:  # fmt: skip
        """An attempt of ``request_id`` ended on ``server_id``: an answer (``ok``) or an error.

        The current attempt's answer is :class:`Delivered`; an abandoned
        attempt's answer is :class:`Discarded` (counted); an error is re-sent
        (no token streamed, tries left, the ledger has ``error``) or
        :class:`Failed`.  Feedback: ``Router.observe`` (``seconds_per_token``
        of a good answer), ``HealthChecker.request_result`` (every result,
        late ones too).  Then the freed slot goes to the queue.  The answer
        of an attempt that a drain timeout stopped is :class:`Discarded` too;
        the last request leaving a server drained with a ``drain_timeout``
        adds :class:`Drained` after the answer's outcome.  O(log S).

        ``failure`` (stage 8; only with ``ok=False``): what went wrong, a
        :class:`~solution.core.retry_types.Failure` (``Failure("status", 503,
        retry_after=2.0)``, ``Failure("connect")``, ...) that the retrier
        judges; default ``Failure("status", 500)``.  Without a retrier it is
        checked and otherwise ignored.

        Raises:
            TypeError / ValueError: bad ids, ``ok`` not a bool,
                ``seconds_per_token`` not a number > 0, ``failure`` not a
                Failure or given with ``ok=True``.
            UnknownRequestError (a KeyError): no attempt of that request runs on
                that server (nothing changes).
        """
        require_id(request_id, "request_id")
        require_id(server_id, "server_id")
        if not isinstance(ok, bool):
            raise TypeError(f"ok must be a bool, got {type(ok).__name__} {ok!r}")
        if seconds_per_token is not None:
            seconds_per_token = require_time(seconds_per_token, "seconds_per_token")
            if seconds_per_token <= 0:
                raise ValueError(f"seconds_per_token must be > 0, got {seconds_per_token}; pass None if unknown")
        if failure is not None:
            if not isinstance(failure, Failure):
                raise TypeError(f"failure must be a solution.core.retry_types.Failure or None, got {type(failure).__name__}")
            if ok:
                raise ValueError("failure describes a failed attempt: pass it with ok=False (or drop it for an answer)")
        f = self._flights.get(request_id)
        if not ((f is not None and f.server == server_id) or (request_id, server_id) in self._ghosts
                or request_id in self._killed.get(server_id, ())):
            raise UnknownRequestError(f"no attempt of request {request_id!r} runs on server {server_id!r} "
                                      "(never sent there, already answered, or its server was lost)")  # fmt: skip
        now = self._time(now)
        out = self._housekeeping(now)  # a per-try timeout due by now turns the attempt into an abandoned one
        f = self._flights.get(request_id)
        if f is not None and f.server == server_id:
            if ok and seconds_per_token is not None:
                self.router.observe(f.router_id, tokens_per_s=1.0 / seconds_per_token)
            self.router.complete_request(f.router_id)
            self._touch(server_id)
            self._detach(f)
            again = False
            error = getattr(self.ledger, "error", None)
            if ok:
                if self.ledger is not None:
                    self.ledger.answer(request_id, server_id, now)
            elif self.ledger is not None:
                if callable(error):
                    again = error(request_id, server_id, now)
                    if again and self._spent_all(f):
                        self.ledger.fail(request_id, now)
                        again = False
                elif self.retrier is not None:  # the ledger cannot re-send an error: the retrier may (a new ledger record)
                    again = not f.streamed and not self._over_ledger_max(f)
                else:
                    self.ledger.fail(request_id, now)
            delay, reason = 0.0, ""
            if not ok and self.retrier is not None:  # decided, and the ledger's attempt ended, before health hears of it
                open_record = again or not callable(error)  # the ledger still holds the attempt or the request open
                again, delay, reason = self._decide(f, failure or Failure("status", 500), allowed=again)
                if again and not callable(error):
                    self._new_record(f)
                elif not again and open_record:
                    self.ledger.fail(request_id, now)
            out += self._feedback(server_id, ok, now, seconds_per_token)
            if ok:
                out.append(self._end(f, Delivered(request_id, server_id, now, f.attempt)))
            elif self.retrier is not None:
                if again:
                    out += self._retry(f, now, server_id, strict=False, delay=delay)
                else:
                    out.append(self._end(f, Failed(request_id, now, reason, server_id, f.attempt)))
            elif again:
                out += self._resend(f, now, server_id, strict=False)
            else:
                reason = "error" if self.ledger is None or not callable(getattr(self.ledger, "error", None)) else self._why(f)
                out.append(self._end(f, Failed(request_id, now, reason, server_id, f.attempt)))
        else:
            if (request_id, server_id) in self._ghosts:
                self._drop_ghost(request_id, server_id)
            else:  # an attempt a drain timeout stopped: its server is gone
                self._unkill(request_id, server_id)
            if self.ledger is not None:
                self.ledger.answer(request_id, server_id, now)  # False: counted as a late answer
            self._counts["discarded"] += 1
            out.append(Discarded(request_id, server_id, now))
            out += self._feedback(server_id, ok, now, seconds_per_token)
        self._check_drained(server_id, now, out)  # a timed drain's last request left
        out += self._fill(now)
        return self._flush(out)

    def server_lost(self, server_id: str, now: float) -> list[Outcome]:
        """Every connection to ``server_id`` broke (a crash): its attempts are gone.

        Each current attempt there is re-sent to another server (with a
        ledger, when no token streamed and tries remain) or :class:`Failed`
        (``"server_lost"`` without a ledger: the loss equals the requests in
        flight there); abandoned attempts there are forgotten (they will never
        answer).  Health gets one failed result per lost attempt (passive
        detection).  The server then takes no request (weight 0) until it is
        seen back: a probe answered (``probe_result(ok=True)``) or a health
        transition out of ``down``; without health checks, until the driver
        removes it (and adds its restarted self under a new id).  A server
        drained with a ``drain_timeout`` leaves with its last attempt:
        :class:`Drained` (``forced=0``) ends the list.  O(k log S) for k attempts.

        Raises: UnknownServerError (a KeyError): the router does not have it.
        """
        require_id(server_id, "server_id")
        if server_id not in self.router:
            raise UnknownServerError(f"server {server_id!r} is not present")
        now = self._time(now)
        out = self._housekeeping(now)
        for router_id, key in list(self._ghosts_on.get(server_id, {}).items()):
            self._drop_ghost(*key, router_id=router_id)
        running = list(self._on.get(server_id, {}))
        if self.ledger is not None:
            resend, fail = self._budget(*self.ledger.server_down(server_id, now), now)
        else:
            resend, fail = [], running
        self._counts["lost_attempts"] += len(running)
        flights = {rid: self._flights[rid] for rid in running}
        for f in flights.values():
            self.router.complete_request(f.router_id)
            self._detach(f)
        go, stop = self._judge(resend, fail, Failure("reset"), now, "server_lost")
        for rid, reason in stop:
            f = flights[rid]
            out.append(self._end(f, Failed(rid, now, reason, server_id, f.attempt)))
        for _ in running:
            out += self._feedback(server_id, False, now, None)
        if server_id in self.router:
            self._lost.add(server_id)
            self.router.set_weight(server_id, 0.0)
        self._touch(server_id)
        for rid, delay in go:
            out += self._retry(flights[rid], now, server_id, strict=True, delay=delay)
        self._check_drained(server_id, now, out)  # a timed drain's server left with its last attempt
        out += self._fill(now)
        return self._flush(out)

    def cancel(self, request_id: str, now: float) -> list[Outcome]:
        """The client went away: a queued request leaves the queue; a running one is abandoned (its answer will be discarded).

        A paused (preempted) request leaves its line (O(that line's length)).
        Returns the outcomes, ending with :class:`Cancelled` (unless time-based
        work due by ``now`` ended the request first).  O(log S).

        Raises: UnknownRequestError (a KeyError): the request is neither queued nor in flight.
        """
        require_id(request_id, "request_id")
        if request_id not in self._flights:
            raise UnknownRequestError(f"request {request_id!r} is neither queued nor in flight")
        now = self._time(now)
        out = self._housekeeping(now)
        f = self._flights.get(request_id)
        if f is not None:
            if f.queued:
                self._queues[f.tier].cancel(request_id)
                f.queued = False
            elif f.parked is not None:
                self._unpark(f)
            elif f.paused is not None:
                self._unpause(f)
            elif f.server is not None:
                self._abandon(f)
            elif f.backoff is not None:
                self._end_backoff(f)
            out.append(self._end(f, Cancelled(request_id, now, now - f.arrived)))
        out += self._fill(now)
        return self._flush(out)

    # -- health and time ----------------------------------------------------------

    def due_probes(self, now: float) -> list[str]:
        """The servers to probe now; the driver sends each and reports :meth:`probe_result`.  O(k log S).

        Outcomes that time-based work produces here are returned by the next call.
        """
        now = self._time(now)
        if self.health is None:
            return []
        self._pending += self._housekeeping(now)
        return list(self.health.due_probes(now))

    def probe_result(self, server_id: str, ok: bool, now: float) -> list[Outcome]:
        """A probe's result (``ok=False`` for a timeout or an error); a transition re-weights the server,
        and one to ``down`` re-sends its requests.  O(log S) + O(k log S) for k requests re-sent.

        Raises: UnknownServerError (a KeyError): the server is not health-checked (never added, or removed).
        """
        require_id(server_id, "server_id")
        if not isinstance(ok, bool):
            raise TypeError(f"ok must be a bool, got {type(ok).__name__} {ok!r}")
        if server_id not in self._in_health:
            raise UnknownServerError(f"server {server_id!r} is not health-checked here (never added, or removed); drop its probe result")
        now = self._time(now)
        out = self._housekeeping(now)
        self.health.probe_result(server_id, ok, now)
        if ok and server_id in self._lost:  # it accepts connections again: health's weight applies
            self._lost.discard(server_id)
            self._push_weight(server_id, now)
        out += self._apply_health(now)
        out += self._fill(now)
        return self._flush(out)

    def tick(self, now: float) -> list[Outcome]:
        """Time-driven work due by ``now``: per-try timeouts, drain deadlines, health timers, queue deadlines, slow-start weights.

        Call it at :meth:`next_event_time`.  O(log S) per item of work.
        """
        now = self._time(now)
        return self._flush(self._housekeeping(now))

    def next_event_time(self) -> float | None:
        """The earliest time :meth:`tick` or :meth:`due_probes` has work (``None``: nothing scheduled).  O(log S) amortized."""
        if self._pending:
            return self._now
        times = []
        heap = self._timeouts
        while heap and not self._live_timeout(heap[0]):
            heapq.heappop(heap)
        if heap:
            times.append(heap[0][0])
        if self.health is not None:
            times += [t for t in (self.health.next_probe_time(), self.health.next_change_time()) if t is not None]
        for queue in self._queues.values():
            if (d := queue.next_deadline()) is not None:
                times.append(d)
        due = self._line_due
        while due and not self._live_line_due(due[0]):
            heapq.heappop(due)
        if due:
            times.append(due[0][0])
        if self._ramping and self._next_reweight is not None:
            times.append(self._next_reweight)
        drains = self._drain_due
        while drains and not self._live_drain(drains[0]):
            heapq.heappop(drains)
        if drains:
            times.append(drains[0][0])
        backoffs = self._backoff_due
        while backoffs and not self._live_backoff(backoffs[0]):
            heapq.heappop(backoffs)
        if backoffs:
            times.append(backoffs[0][0])
        return min(times) if times else None

    # -- introspection ------------------------------------------------------------

    @property
    def queues(self) -> dict[str | None, Any]:
        """The waiting queues: tier name -> its RequestQueue with tiers; ``{None: queue}`` without (``{}``: no queue).  A copy, O(T)."""
        return dict(self._queues)

    def in_flight(self) -> dict[str, str]:
        """Request id -> the server of its current attempt (a copy).  O(R)."""
        return {rid: f.server for rid, f in self._flights.items() if f.server is not None}

    def abandoned(self) -> dict[str, list[str]]:
        """Server -> request ids of abandoned attempts still running there (their answers will be discarded).  O(A)."""
        return {sid: [key[0] for key in ghosts.values()] for sid, ghosts in self._ghosts_on.items()}

    def stats(self) -> dict[str, int]:
        """Counts since creation and sizes now.

        ``submitted`` = ``delivered + failed + rejected + timed_out + cancelled
        + open`` (every request ends once); ``dispatched`` counts attempts
        (``re_sent`` of them re-sends, ``resumed`` of them resumes after a
        preemption); ``preempted`` preemptions; ``discarded`` late answers;
        ``lost_attempts`` attempts on lost servers; ``open`` requests not yet
        ended: between calls each runs an attempt, waits (``waiting``: queued
        or parked, ``parked`` of them in a server's line: hard affinity) or is
        ``paused`` (preempted, waiting to resume); ``abandoned`` attempts still
        running; ``timers`` per-try deadlines kept (stale ones included);
        ``drained`` timed drains reported :class:`Drained`, ``drain_forced``
        requests their drain timeout ended (re-sent or failed).  With a
        retrier (only then): ``retried`` re-sends it granted, ``retry_budget_exhausted``
        re-sends its budget refused, ``backing_off`` requests waiting out a
        backoff now (``open`` includes them; ``waiting`` does not).
        O(T) for T tiers.
        """
        parked = self._parked
        stats = {**self._counts, "open": len(self._flights),
                 "waiting": sum(len(q) for q in self._queues.values()) + parked, "parked": parked, "paused": self._paused,
                 "abandoned": sum(self._ghost_count.values()), "timers": len(self._timeouts),
                 "recovering": len(self._ramping)}  # fmt: skip
        if self.retrier is not None:
            stats["backing_off"] = self._backing_off
        return stats

    # -- private ------------------------------------------------------------------

    def _check_time(self, now: object) -> float:
        """``now`` as a float, checked (a number, not before a time seen); changes nothing."""
        value = require_time(now)
        if value < self._now:
            raise TimeWentBackwardsError(f"now={value} is before {self._now}, a time this path already saw; pass the current time")
        return value

    def _time(self, now: object) -> float:
        value = self._check_time(now)
        self._now = value
        if self.clock is not None and self.clock.now < value:
            self.clock.set(value)
        return value

    def _flush(self, out: list[Outcome]) -> list[Outcome]:
        if self._pending:
            out, self._pending = self._pending + out, []
        return out

    def _housekeeping(self, now: float) -> list[Outcome]:
        """Work due by ``now``: health timers, per-try timeouts, queue deadlines, slow-start weights, the queue."""
        out: list[Outcome] = []
        health = self.health
        if health is not None:
            due = health.next_change_time()
            if due is not None and due <= now:
                health.advance(now)
            out += self._apply_health(now)
        out += self._expire_timeouts(now)
        drains = self._drain_due
        while drains and drains[0][0] <= now:
            entry = heapq.heappop(drains)
            if self._live_drain(entry):
                self._force_drain(entry[2], now, out)
                self._check_drained(entry[2], now, out)
        backoffs = self._backoff_due
        while backoffs and backoffs[0][0] <= now:
            entry = heapq.heappop(backoffs)
            if self._live_backoff(entry):
                f = self._flights[entry[2]]
                self._end_backoff(f)
                out += self._resend(f, now, f.backoff_from, strict=f.backoff_strict)
        for queue in self._queues.values():
            if (d := queue.next_deadline()) is not None and d <= now:
                for outcome in queue.expire():
                    f = self._flights[outcome.request_id]
                    f.queued = False
                    if f.in_ledger:
                        self.ledger.fail(f.request.request_id, now)
                    out.append(self._end(f, outcome))
        due = self._line_due
        while due and due[0][0] <= now:
            entry = heapq.heappop(due)
            if self._live_line_due(entry):
                f = self._flights[entry[2]]
                self._unpark(f)
                if f.in_ledger:
                    self.ledger.fail(f.request.request_id, now)
                out.append(self._end(f, TimedOut(entry[2], entry[0], entry[0] - f.queued_at)))
        if self._ramping and self._next_reweight is not None and now >= self._next_reweight:
            for sid in self._ramping:
                self._push_weight(sid, now)
            self._next_reweight = now + self.reweight_every
        out += self._fill(now)  # capacity may have grown (a weight went up, a slot freed): O(log S) when the queue is empty-handed
        return out

    def _apply_health(self, now: float) -> list[Outcome]:
        """Push the weights of the servers whose health changed since the last call; re-send from those gone down."""
        out: list[Outcome] = []
        log = self.health.transitions if self.health is not None else ()
        while self._cursor < len(log):
            tr = log[self._cursor]
            self._cursor += 1
            sid = tr.server_id
            if sid not in self._in_health:
                continue
            if tr.old == HealthState.DOWN:
                self._lost.discard(sid)  # health saw it come back
            self._push_weight(sid, now)
            if tr.new == HealthState.RECOVERING:
                self._ramping[sid] = None
                if self._next_reweight is None or self._next_reweight < now:
                    self._next_reweight = now + self.reweight_every
            else:
                self._ramping.pop(sid, None)
            if tr.new == HealthState.DOWN:
                out += self._server_down(sid, now)
        return out

    def _push_weight(self, server_id: str, now: float) -> None:
        if server_id in self._lost:
            return  # stays at weight 0 until seen back
        self.router.set_weight(server_id, self.health.weight(server_id, now), limit=self.health.trial_limit(server_id))
        self._touch(server_id)

    def _feedback(self, server_id: str, ok: bool, now: float, seconds_per_token: float | None) -> list[Outcome]:
        """A result of ``server_id`` to health (passive checks), then its transitions."""
        if server_id not in self._in_health:
            return []
        self.health.request_result(server_id, ok, now, seconds_per_token if ok else None)
        if server_id in self._ramping:  # half-open -> slow start changes the weight without a transition
            self._push_weight(server_id, now)
        return self._apply_health(now)

    def _server_down(self, server_id: str, now: float) -> list[Outcome]:
        """Health declared ``server_id`` down: with a ledger, its requests are re-sent or fail; without, they stay."""
        if self.ledger is None:
            return []
        resend, fail = self.ledger.server_down(server_id, now)
        resend, fail = self._budget(resend, fail, now)
        out: list[Outcome] = []
        flights = {rid: self._flights[rid] for rid in (*fail, *resend)}
        for f in flights.values():
            self._abandon(f)
        go, stop = self._judge(resend, fail, Failure("reset"), now, "server_lost")
        for rid, reason in stop:
            f = flights[rid]
            out.append(self._end(f, Failed(rid, now, reason, server_id, f.attempt)))
        for rid, delay in go:
            out += self._retry(flights[rid], now, server_id, strict=False, delay=delay)
        return out

    def _expire_timeouts(self, now: float) -> list[Outcome]:
        out: list[Outcome] = []
        heap = self._timeouts
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._live_timeout(entry):
                continue
            f = self._flights[entry[2]]
            rid, sid = f.request.request_id, f.server
            again = self.ledger.timed_out(rid, now)
            if again and self._spent_all(f):
                self.ledger.fail(rid, now)
                again = False
            self._abandon(f)
            out += self._feedback(sid, False, now, None)
            delay, reason = 0.0, self._why(f)
            if self.retrier is not None:
                retry, delay, reason = self._decide(f, Failure("timeout"), allowed=again)
                if again and not retry:
                    self.ledger.fail(rid, now)
                again = retry
            if again:
                out += self._retry(f, now, sid, strict=False, delay=delay)
            else:
                out.append(self._end(f, Failed(rid, now, reason, sid, f.attempt)))
        return out

    def _live_timeout(self, entry: tuple[float, int, str, int]) -> bool:
        f = self._flights.get(entry[2])
        return f is not None and f.server is not None and f.attempt == entry[3]

    def _why(self, f: _Flight) -> str:
        return "streamed" if f.streamed else "out_of_tries"

    # -- retries with backoff and a budget (stage 8) ----------------------------------

    def _decide(self, f: _Flight, failure: Failure, *, allowed: bool) -> tuple[bool, float, str]:
        """Ask the retrier about ``f``'s failed attempt: ``(re-send, delay, reason to fail)``.  O(1) + the retrier.

        ``allowed``: the ledger may re-send it (no token streamed, tries left);
        when it may not, the retrier is still asked (its reason, its counts),
        and a "yes" it should not give is overruled (the reason is then the
        ledger's: ``"streamed"`` or ``"out_of_tries"``).
        """
        tries = max(1, f.spent + f.ledger_tries)  # attempts that count toward max_tries (a resume does not)
        decision = self.retrier.decide(f.request.request_id, tries, failure, streamed=f.streamed)
        delay = decision.delay
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not math.isfinite(delay) or delay < 0:
            raise ValueError(f"the retrier's decision has delay={delay!r}; a Retrier must answer a finite number of seconds >= 0")
        if decision.retry:
            if allowed:
                self._counts["retried"] += 1
                return True, float(delay), ""
            return False, 0.0, self._why(f)
        if decision.reason == "budget":
            self._counts["retry_budget_exhausted"] += 1
        return False, 0.0, str(decision.reason)

    def _judge(self, resend: list[str], fail: list[str], failure: Failure, now: float,
               no_ledger: str) -> tuple[list[tuple[str, float]], list[tuple[str, str]]]:  # fmt: skip
        """Sort the requests whose attempts a lost or down server ended: ``([(id, delay)] to re-send, [(id, reason)] to fail)``.

        Without a retrier: the ledger's split, at once (``no_ledger``: the
        reason when there is no ledger).  With one: it decides on each of
        the ledger's re-sends (in begin order) and gives the reason of each
        failure; a re-send it refuses is failed in the ledger.  O(k) calls.
        """
        if self.retrier is None:
            reason = no_ledger if self.ledger is None else None
            return [(rid, 0.0) for rid in resend], [(rid, reason or self._why(self._flights[rid])) for rid in fail]
        go: list[tuple[str, float]] = []
        stop: list[tuple[str, str]] = []
        for rid in resend:
            retry, delay, reason = self._decide(self._flights[rid], failure, allowed=True)
            if retry:
                go.append((rid, delay))
            else:
                self.ledger.fail(rid, now)
                stop.append((rid, reason))
        stop = [(rid, self._decide(self._flights[rid], failure, allowed=False)[2]) for rid in fail] + stop
        return go, stop

    def _retry(self, f: _Flight, now: float, previous: str, *, strict: bool, delay: float) -> list[Outcome]:
        """Re-send ``f`` now (``delay`` 0), or let it back off until ``now + delay``: no slot, no queue; :meth:`tick` re-sends it.  O(log B)."""
        if delay <= 0:
            return self._resend(f, now, previous, strict=strict)
        self._seq += 1
        f.backoff, f.backoff_seq, f.backoff_from, f.backoff_strict = now + delay, self._seq, previous, strict
        heapq.heappush(self._backoff_due, (f.backoff, self._seq, f.request.request_id))
        self._backing_off += 1
        return []

    def _live_backoff(self, entry: tuple[float, int, str]) -> bool:
        f = self._flights.get(entry[2])
        return f is not None and f.backoff is not None and f.backoff_seq == entry[1]

    def _end_backoff(self, f: _Flight) -> None:
        f.backoff = None
        self._backing_off -= 1

    def _new_record(self, f: _Flight) -> None:
        """An error answer is to be re-sent but the ledger has no ``error()``: end its record; the next attempt begins a new one.

        The failed tries of the ended record keep counting (``spent``), as after a preemption.  O(1).
        """
        self.ledger.finish(f.request.request_id)
        f.in_ledger = False
        f.spent += f.ledger_tries
        f.base, f.ledger_tries = f.attempt, 0

    def _over_ledger_max(self, f: _Flight) -> bool:
        """``f`` used the ledger's ``policy.max_tries`` (the failed tries of every record counted); False when unreadable."""
        max_tries = getattr(getattr(self.ledger, "policy", None), "max_tries", None)
        return isinstance(max_tries, int) and f.spent + f.ledger_tries >= max_tries

    def _attempt_request(self, f: _Flight) -> tuple[Request, str]:
        """The Request the router sees for the next attempt, and its router id."""
        rid = _router_id(f.request.request_id, f.attempt + 1)
        return (f.request if f.attempt == 0 else replace(f.request, request_id=rid)), rid  # a re-send keeps its session and prefix blocks

    def _route(self, f: _Flight, avoid: str | None, *, strict: bool) -> tuple[str, str] | None:
        """Ask the router for the next attempt's server, steering off ``avoid`` (never back to it when ``strict``)."""
        req, rid = self._attempt_request(f)
        router = self.router
        if avoid is not None and avoid in router and router.server(avoid).weight > 0:
            s = router.server(avoid)
            weight, limit = s.weight, s.trial_limit
            router.set_weight(avoid, 0.0, limit=limit)
            try:
                sid = self._try_route(req)
            finally:
                router.set_weight(avoid, weight, limit=limit)
            if sid is None and not strict:
                sid = self._try_route(req)
        else:
            sid = self._try_route(req)
        return None if sid is None else (sid, rid)

    def _try_route(self, request: Request) -> str | None:
        try:
            return self.router.route(request)
        except NoCapacityError:
            return None

    def _place(self, f: _Flight, avoid: str | None, now: float, out: list[Outcome], *, strict: bool) -> tuple[str, str] | None:
        """:meth:`_route`, and when that finds no server and ``f``'s tier may preempt, preempt a victim and take its slot.

        A :class:`Preempted` goes to ``out``.  O(log S) + the victim search.
        """
        routed = self._route(f, avoid, strict=strict)
        if routed is not None or self.preemptor is None or not self.tiers.tier(f.tier).may_preempt:
            return routed
        sid = self._preempt_for(f, avoid if strict else None, now, out)
        if sid is None:
            return None
        req, rid = self._attempt_request(f)
        try:
            self.router.place(req, sid)  # the freed slot: the requester fits there (the victim search checked it)
        except NoCapacityError:  # a strategy-side filter the table does not know: let the strategy choose
            return self._route(f, avoid, strict=strict)
        return sid, rid

    def _may_use(self, f: _Flight) -> Callable[[str], bool]:
        """Whether ``f`` could take a slot of a server once one request there leaves: its pools, not draining,
        weight > 0, big enough, and ``load - 1`` under its tier's limit there.  O(1) per call."""
        router, tiers, name = self.router, self.tiers, f.tier
        pools = frozenset(tiers.tier(name).pools)
        large = router.is_large(f.request)
        lost = self._lost

        def usable(server_id: str) -> bool:
            if server_id not in router or server_id in lost:
                return False
            s = router.server(server_id)
            if s.draining or s.weight <= 0 or (large and not s.big) or s.pool not in pools:
                return False
            return s.load - 1 < tiers.limit(name, router.limit(s), s.nominal_capacity)

        return usable

    def _preempt_for(self, f: _Flight, avoid: str | None, now: float, out: list[Outcome]) -> str | None:
        """Pause the preemptor's victim for ``f`` (never on ``avoid``); return the server whose slot it freed, or None."""
        usable = self._may_use(f)
        found = self.preemptor.victim(f.request, usable if avoid is None else (lambda sid: sid != avoid and usable(sid)))
        if found is None:
            return None
        victim_id, server_id = found
        v = self._flights.get(victim_id)
        if v is None or v.server != server_id:
            raise RuntimeError(f"the preemptor named {victim_id!r} on {server_id!r}, which does not run there; "
                               "call Preemptor.started / stopped for every attempt (the path does)")  # fmt: skip
        self._pause(v, now, out)
        return server_id

    def _pause(self, v: _Flight, now: float, out: list[Outcome]) -> None:
        """Preempt ``v``: its attempt leaves its router slot; it waits to resume (its tier's line, or its server's in swap mode)."""
        rid, sid = v.request.request_id, v.server
        times = self.preemptor.preempt(rid)  # counted; it leaves the preemptor's running index
        self.router.complete_request(v.router_id)
        self._touch(sid)
        self._detach(v, stopped=False)
        if v.in_ledger:  # a preemption is not a failed try: end the ledger's record, keep the failed tries it had
            self.ledger.finish(rid)
            v.in_ledger = False
            v.spent += max(0, v.ledger_tries - 1)
        v.base, v.ledger_tries = v.attempt, 0
        v.paused, v.paused_at = sid, now
        key = (v.tier, sid if self.preemptor.mode == "swap" else None)
        self._line_add(v, key)
        self._touch(sid)  # its swap line exists now: tried at the next refill if the slot is still free then
        self._counts["preempted"] += 1
        out.append(Preempted(rid, sid, now, times))

    def _line_add(self, v: _Flight, key: tuple[str | None, str | None]) -> None:
        v.line = key
        if key[1] is None:
            self._resume.setdefault(key[0], deque()).append(v)
        else:
            self._swap.setdefault(key, deque()).append(v)  # type: ignore[arg-type]
        self._paused += 1

    def _unpause(self, f: _Flight) -> None:
        """Take a paused ``f`` out of its line (O(its line's length): cancellations only)."""
        tier, sid = f.line
        lines: dict[Any, deque[_Flight]] = self._resume if sid is None else self._swap  # type: ignore[assignment]
        key = tier if sid is None else f.line
        line = lines[key]
        line.remove(f)
        if not line:
            del lines[key]
        f.line = None
        f.paused = None
        self._paused -= 1

    def _budget(self, resend: list[str], fail: list[str], now: float) -> tuple[list[str], list[str]]:
        """Move the requests whose failed tries, before and after their preemptions, reach ``max_tries`` from re-send to fail."""
        if not any(self._flights[rid].spent for rid in resend):
            return resend, fail
        keep = []
        fail = list(fail)
        for rid in resend:
            if self._spent_all(self._flights[rid]):
                self.ledger.fail(rid, now)
                fail.append(rid)
            else:
                keep.append(rid)
        return keep, fail

    def _spent_all(self, f: _Flight) -> bool:
        """True when ``f`` used up ``RetryPolicy.max_tries`` counting the failed tries before its preemptions (the
        ledger counts only its current record).  A ledger without ``policy.max_tries`` is trusted as it is."""
        if not f.spent:
            return False
        max_tries = getattr(getattr(self.ledger, "policy", None), "max_tries", None)
        return isinstance(max_tries, int) and f.spent + f.ledger_tries >= max_tries

    def _start(self, f: _Flight, server_id: str, router_id: str, now: float, *, previous: str | None, waited: float) -> Dispatched:
        rid = f.request.request_id
        resumed = f.paused is not None
        if resumed:
            previous, waited = f.paused, now - f.paused_at
        if self.ledger is not None:
            try:
                attempt = f.base + self.ledger.begin(rid, server_id, now)
                if resumed and f.streamed:
                    self.ledger.first_token(rid, now)  # it streamed before the pause: never silently restarted
            except BaseException:
                self.router.complete_request(router_id)
                raise
            f.in_ledger = True
            f.ledger_tries += 1
            deadline_of = getattr(self.ledger, "deadline", None)
            f.deadline = deadline_of(rid) if callable(deadline_of) else None
        else:
            attempt, f.deadline = f.attempt + 1, None
        f.attempt, f.server, f.router_id, f.last_server = attempt, server_id, router_id, server_id
        f.paused = None
        self._on.setdefault(server_id, {})[rid] = None
        if self.preemptor is not None:
            self.preemptor.started(f.request, server_id)
        if f.deadline is not None:
            self._seq += 1
            heapq.heappush(self._timeouts, (f.deadline, self._seq, rid, attempt))
            if len(self._timeouts) > 2 * len(self._flights) + 64:
                self._timeouts = [e for e in self._timeouts if self._live_timeout(e)]
                heapq.heapify(self._timeouts)
        self._counts["dispatched"] += 1
        if resumed:
            self._counts["resumed"] += 1
        elif attempt > 1:
            self._counts["re_sent"] += 1
        return Dispatched(rid, server_id, now, waited, attempt, previous, f.deadline)

    def _resend(self, f: _Flight, now: float, previous: str, *, strict: bool) -> list[Outcome]:
        """Start the next attempt elsewhere; queue it when no server can take it (or fail it without a queue)."""
        out: list[Outcome] = []
        routed = self._place(f, previous, now, out, strict=strict)
        if routed is not None:
            out.append(self._start(f, *routed, now, previous=previous, waited=0.0))
            return out
        rid = f.request.request_id
        if f.tier in self._queues:
            receipt = self._enqueue(f, now)
            if isinstance(receipt, Queued):
                self._park_if_pinned(f)
                out.append(receipt)
                return out
        if f.in_ledger:
            self.ledger.fail(rid, now)
        out.append(self._end(f, Failed(rid, now, "no_server", previous, f.attempt)))
        return out

    def _enqueue(self, f: _Flight, now: float) -> Queued | Rejected:
        r = f.request
        receipt = self._queues[f.tier].enqueue(r.request_id, r.estimated_tokens, f.priority, prompt_tokens=r.prompt_tokens)
        if isinstance(receipt, Queued):
            f.queued = True
            f.queued_at, f.wait_until = receipt.at, receipt.deadline
            self._counts["queued"] += 1
        elif f.attempt == 0:
            self._counts["rejected"] += 1
        return receipt

    def _fill(self, now: float) -> list[Outcome]:
        """Dispatch waiting requests while a server takes them, best first (large ones only to a big server).

        Hard affinity's server lines first, then each tier in class order
        (highest first): its paused requests (swap lines of the servers that
        changed, then the recompute line), then its queue; a tier whose head
        cannot be placed is passed over for the next class (no head-of-line
        blocking across tiers).  O(T) + O(log S) per request placed (+ a
        victim search for a head whose tier may preempt), + O(T c) while
        swapped-out requests wait, for the c servers changed since the last
        refill (one or two per call: a slot freed, a weight changed).
        """
        out: list[Outcome] = []
        if not self._queues and not self._paused:
            return out
        changed, self._changed = self._changed, set()
        if self._lines:
            out += self._serve_lines(now, changed)
        for tier in self._order:
            if self._paused and not self._serve_paused(tier, now, changed, out):
                continue  # a paused request of this tier cannot resume: its queue's newer requests wait behind it
            queue = self._queues.get(tier)
            large_ok = True
            while queue is not None and len(queue):
                head = queue.peek(large_ok)
                if head is None:
                    break
                f = self._flights[head.request_id]
                routed = self._place(f, None, now, out, strict=False)
                if routed is None:
                    if self._park_if_pinned(f):
                        continue  # it waits in its server's line: the next request may go elsewhere
                    if large_ok and self.router.is_large(f.request):
                        large_ok = False
                        continue
                    break
                receipt = queue.dispatch(head.request_id, routed[0])
                f.queued = False
                previous = f.last_server if f.attempt else None
                out.append(self._start(f, *routed, now, previous=previous, waited=receipt.waited))
        return out

    def _serve_paused(self, tier: str | None, now: float, changed: set[str], out: list[Outcome]) -> bool:
        """Resume ``tier``'s paused requests that can go now; False when its recompute line's head still cannot."""
        if self._swap:
            for sid in list(changed):
                line = self._swap.get((tier, sid))
                while line:
                    f = line[0]
                    if not self._can_wait_for(sid):  # its host is gone: the swapped-out cache with it; recompute anywhere
                        for g in line:
                            self._paused -= 1
                            self._line_add(g, (tier, None))
                        line.clear()
                        break
                    req, rid = self._attempt_request(f)
                    if not self._fits(f, sid):
                        break
                    try:
                        self.router.place(req, sid)
                    except NoCapacityError:
                        break
                    line.popleft()
                    self._paused -= 1
                    f.line = None
                    out.append(self._start(f, sid, rid, now, previous=None, waited=0.0))
                if line is not None and not line:
                    del self._swap[(tier, sid)]
        line = self._resume.get(tier)
        while line:
            f = line[0]
            routed = self._place(f, None, now, out, strict=False)
            if routed is None:
                return False
            line.popleft()
            self._paused -= 1
            f.line = None
            out.append(self._start(f, *routed, now, previous=None, waited=0.0))
        if line is not None and not line:
            del self._resume[tier]
        return True

    def _can_wait_for(self, server_id: str) -> bool:
        """A swapped-out request may wait for ``server_id``: present, not draining, not lost, weight > 0."""
        if server_id not in self.router or server_id in self._lost:
            return False
        s = self.router.server(server_id)
        return not s.draining and s.weight > 0

    def _fits(self, f: _Flight, server_id: str) -> bool:
        """``f`` may take a slot of ``server_id`` now: eligible in the router and under its tier's limit there.  O(1)."""
        router = self.router
        s = router.server(server_id)
        req = f.request
        if not router.eligible(s, req):
            return False
        fits = getattr(router.strategy, "fits", None)
        if callable(fits):
            return bool(fits(s, req))
        return s.load < self.tiers.limit(f.tier, router.limit(s), s.nominal_capacity)

    def _touch(self, server_id: str) -> None:
        """``server_id`` changed (a slot freed, a new weight, a drain): its lines are tried at the next refill.  O(1)."""
        if self._lines or self._swap:
            self._changed.add(server_id)

    def _park_if_pinned(self, f: _Flight) -> bool:
        """A queued request that may go to one server only, which is full, leaves the queue for that server's line."""
        waiting_for = getattr(self.router.strategy, "waiting_for", None)
        sid = waiting_for(f.request) if callable(waiting_for) else None
        if sid is None:
            return False
        self._queues[f.tier].dispatch(f.request.request_id, sid)  # early binding: it left the queue for its server
        f.queued = False
        self._park(f, sid)
        return True

    def _park(self, f: _Flight, line: str) -> None:
        f.parked = line
        self._lines.setdefault(line, deque()).append(f)
        self._parked += 1
        if f.wait_until is not None:
            self._seq += 1
            heapq.heappush(self._line_due, (f.wait_until, self._seq, f.request.request_id))

    def _unpark(self, f: _Flight) -> None:
        """Take ``f`` out of its line (O(its line's length): cancellations and time-outs only)."""
        line = self._lines[f.parked]
        line.remove(f)
        if not line:
            del self._lines[f.parked]
        f.parked = None
        self._parked -= 1

    def _live_line_due(self, entry: tuple[float, int, str]) -> bool:
        f = self._flights.get(entry[2])
        return f is not None and f.parked is not None and f.wait_until == entry[0]

    def _serve_lines(self, now: float, changed: set[str]) -> list[Outcome]:
        """Start the parked requests whose server changed (and the line for any server), first come first served."""
        out: list[Outcome] = []
        keys = [sid for sid in changed if sid in self._lines]
        if _ANY_SERVER in self._lines:
            keys.append(_ANY_SERVER)
        for key in keys:
            line = self._lines.get(key)
            while line:
                f = line[0]
                routed = self._route(f, None, strict=False)
                if routed is None:
                    waiting_for = getattr(self.router.strategy, "waiting_for", None)
                    sid = waiting_for(f.request) if callable(waiting_for) else None
                    target = _ANY_SERVER if sid is None else sid
                    if target == key:
                        break  # its server is still full: the line waits
                    line.popleft()  # it waits elsewhere now (its server went down or away)
                    self._parked -= 1
                    self._park(f, target)
                    continue
                line.popleft()
                self._parked -= 1
                f.parked = None
                previous = f.last_server if f.attempt else None
                out.append(self._start(f, *routed, now, previous=previous, waited=now - f.queued_at))
            if not line and key in self._lines:
                del self._lines[key]
        return out

    def _live_drain(self, entry: tuple[float, int, str]) -> bool:
        d = self._drains.get(entry[2])
        return d is not None and d.deadline == entry[0] and entry[2] in self.router

    def _force_drain(self, server_id: str, now: float, out: list[Outcome]) -> None:
        """The drain of ``server_id`` reached its deadline: stop every attempt there; re-send or fail their requests.

        Abandoned attempts there are stopped too; a late answer of any of them is
        :class:`Discarded` later.  The last slot freed makes the router forget
        the server.  O(k log S) for k attempts there.
        """
        for router_id, key in list(self._ghosts_on.get(server_id, {}).items()):
            self._drop_ghost(*key, router_id=router_id)
            self._kill(key[0], server_id)
        running = list(self._on.get(server_id, {}))
        if self.ledger is not None:
            resend, fail = self._budget(*self.ledger.server_down(server_id, now), now)
        else:
            resend, fail = [], running
        flights = {rid: self._flights[rid] for rid in running}
        for rid, f in flights.items():
            self.router.complete_request(f.router_id)
            self._detach(f)
            self._kill(rid, server_id)
        self._drains[server_id].forced += len(running)
        self._counts["drain_forced"] += len(running)
        self._touch(server_id)
        for rid in fail:
            f = flights[rid]
            out.append(self._end(f, Failed(rid, now, "drain_timeout", server_id, f.attempt)))
        for rid in resend:
            out += self._resend(flights[rid], now, server_id, strict=True)

    def _kill(self, request_id: str, server_id: str) -> None:
        on = self._killed.setdefault(server_id, {})
        on[request_id] = on.get(request_id, 0) + 1

    def _unkill(self, request_id: str, server_id: str) -> None:
        on = self._killed[server_id]
        left = on[request_id] - 1
        if left:
            on[request_id] = left
        else:
            del on[request_id]
            if not on:
                del self._killed[server_id]

    def _check_drained(self, server_id: str, now: float, out: list[Outcome]) -> None:
        """A timed drain whose server left the router (its last attempt ended) reports :class:`Drained`.  O(1)."""
        d = self._drains.get(server_id)
        if d is not None and server_id not in self.router:
            del self._drains[server_id]
            self._counts["drained"] += 1
            out.append(Drained(server_id, now, d.forced))

    def _detach(self, f: _Flight, *, stopped: bool = True) -> None:
        """The current attempt no longer runs for the request (answered, failed, lost or abandoned)."""
        sid, rid = f.server, f.request.request_id
        running = self._on[sid]
        del running[rid]
        if not running:
            del self._on[sid]
        f.server = f.router_id = None
        f.deadline = None
        if stopped and self.preemptor is not None:
            self.preemptor.stopped(rid)

    def _abandon(self, f: _Flight) -> None:
        """The current attempt keeps running on its server, but its answer will be discarded."""
        rid, sid, router_id = f.request.request_id, f.server, f.router_id
        key = (rid, sid)
        self._ghosts.setdefault(key, []).append(router_id)
        self._ghosts_on.setdefault(sid, {})[router_id] = key
        self._ghost_count[rid] = self._ghost_count.get(rid, 0) + 1
        self._detach(f)

    def _drop_ghost(self, request_id: str, server_id: str, *, router_id: str | None = None) -> None:
        """An abandoned attempt ended (answered late, or its server was lost): free its slot in the router."""
        key = (request_id, server_id)
        ids = self._ghosts[key]
        if router_id is None:
            router_id = ids[0]
        ids.remove(router_id)
        if not ids:
            del self._ghosts[key]
        on = self._ghosts_on[server_id]
        del on[router_id]
        if not on:
            del self._ghosts_on[server_id]
        self._touch(server_id)
        left = self._ghost_count[request_id] - 1
        if left:
            self._ghost_count[request_id] = left
        else:
            del self._ghost_count[request_id]
        self.router.complete_request(router_id)

    def _end(self, f: _Flight, outcome: Outcome) -> Outcome:
        """The request's one final outcome: forget it (the ledger too) and count it."""
        rid = f.request.request_id
        del self._flights[rid]
        if f.in_ledger:
            self.ledger.finish(rid)
        if isinstance(outcome, Delivered) and (queue := self._queues.get(f.tier)) is not None:
            queue.record_completion()
        if self.preemptor is not None:
            self.preemptor.forget(rid)
        if self.retrier is not None:
            if f.backoff is not None:
                self._end_backoff(f)
            self.retrier.end(rid)
        name = {Delivered: "delivered", Failed: "failed", Rejected: "rejected", TimedOut: "timed_out",
                Cancelled: "cancelled"}[type(outcome)]  # fmt: skip
        self._counts[name] += 1
        if not self._flights:
            self._timeouts.clear()
            self._backoff_due.clear()
        return outcome


def _queue_class() -> type:
    """The stage-2 ``RequestQueue`` a QueuePolicy builds: the reference's, or in the candidate's bundle (no reference) the candidate's."""
    try:
        from solution.request_queue import RequestQueue  # imported late: it imports core
    except ImportError:
        from solution.core.impl import load_impl

        return load_impl().RequestQueue
    return RequestQueue


def _require_methods(obj: Any, names: tuple[str, ...], what: str, kind: str) -> None:
    if obj is None:
        return
    missing = [n for n in names if not callable(getattr(obj, n, None))]
    if missing:
        raise TypeError(f"{what} must be {kind} (missing {', '.join(missing)}), got {type(obj).__name__}")
