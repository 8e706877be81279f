# Generated from solution/request_queue.py by tools/make_exercises.py (`make exercises`).
# Stage 2: fill in every body that raises NotImplementedError; notebooks/02_queuing.ipynb explains the task.
"""Stage 2: a bounded request queue with three orderings, deadlines and backpressure.

When every server is full, stage 1 raises ``NoCapacityError``.  A gateway
queues the request instead (:class:`solution.core.gateway.Gateway` puts this
queue in front of the stage-1 balancer) and dispatches it when a request
completes and frees a slot.  This module is the queue.

Orderings (``QueuePolicy.ordering``)
------------------------------------
Each waiting request has a *key*; smaller goes first, ties by arrival:

* ``fifo``: arrival order.
* ``priority``: ``-priority``: the highest class first, FIFO within a class.
* ``sjf``: shortest job first with linear aging.  A request's *size* is
  its expected service time in output-token equivalents,
  ``size = output + prompt_token_weight * prompt`` (``policy.job_size``):
  an output token costs a whole decode iteration, a prompt token a small
  share of one prefill iteration (``prompt_token_weight``, about 1/113 on
  the reference A100; :mod:`solution.core.latency`).  ``enqueue(...,
  prompt_tokens=p)`` gives the split (``output = estimated_tokens - p``);
  without it every token counts as an output token (``size =
  estimated_tokens``), as stage 1's single number does.  A request that
  has waited ``w`` seconds counts as ``size - aging_rate * w``.  At any
  instant ``now`` that is ``(size + aging_rate * arrival) - aging_rate *
  now``, and the last term is the same for every request, so the order is
  that of the fixed key ``size + aging_rate * arrival``: a heap keeps it,
  nothing is re-sorted as time passes.

  What the single number still hides: the output length is an estimate
  (the hard part to predict; the prompt is known exactly), and the price of
  a decode iteration grows with the batch the request joins, which the
  queue does not know.  SJF needs the order right, not the seconds.

  *Bounded wait.*  If B arrives ``d`` seconds after A, B goes first only when
  ``size_B + aging_rate * d < size_A``.  Since ``size_B >= 0``, no request
  arriving ``size_A / aging_rate`` seconds or more after A is served before
  A (on a server A fits): ``(size_A - 1) / aging_rate`` when no split is
  given (then ``size_B >= 1``).  A waits at most as long as the requests
  that arrived before that moment take to be served.

Head-of-line blocking and skipped requests
------------------------------------------
A *large* request (``estimated_tokens > large_request_tokens``) only fits a
big-memory server.  ``peek(large_ok=False)`` (a small server freed a slot)
returns the best *small* request, so a large request at the head never
blocks small ones that a 40 GB server could run.  Passing it over has a
cost, which is bounded: when ``dispatch`` takes a small request while the
best waiting large request ranks ahead of it, that large request was
*skipped*; after ``max_skips`` skips it is *reserved*: ``peek(large_ok=True)``
returns it before anything else until it leaves, so it takes the next
server it fits whatever arrives meanwhile.  One request is reserved at a
time, and skips are not counted while one is: as long as a request is
reserved, dispatching a small request adds no skip to any large request,
neither to the reserved one nor to another large request that ranks ahead
of the small one.  Counting resumes, from the counts as they were, once the
reserved request leaves (dispatched, cancelled or timed out).

Backpressure
------------
With ``max_depth`` requests waiting, ``enqueue`` returns
:class:`~solution.core.queue_types.Rejected` with the policy's
``reject_status`` (503 Service Unavailable by default: a full queue is a
server-wide overload, RFC 9110; 429 Too Many Requests is for a client over
its own rate limit, RFC 6585, as in stage 6) and a ``Retry-After`` of
``max(1, ceil(s))`` whole seconds, where ``s`` is the time the cluster
needs, at its recent completion rate, to serve everyone waiting and then
this request::

    s = (depth + 1) * span / completions

``completions`` counts the calls to :meth:`RequestQueue.record_completion`
at times ``t > now - rate_window``, and ``span = min(rate_window, now -
created)`` is the stretch of time they were counted over.  With no recent
completion there is no rate: ``s = max_wait`` (or ``rate_window`` without
a maximum wait).  With a maximum wait, ``s`` is capped at ``max_wait``:
every request now waiting has left by then.  (``ceil`` forgives 1e-9 of
float noise: ``ceil(s - 1e-9)``.)

Deadlines
---------
A request's deadline is its arrival plus ``max_wait``.  The queue never
polls: the driver (the gateway, the simulator) asks :meth:`next_deadline`,
schedules an event at that instant and calls :meth:`expire`, which removes
every request whose deadline is at or before now.  A request whose deadline
is exactly now times out.

Errors
------
Raise the classes of :mod:`solution.core.queue_types` (``AlreadyWaitingError``
is a ``ValueError``, ``NotWaitingError`` a ``KeyError`` that prints its
message as written).  A message about an id quotes it as ``repr`` writes it
(``{request_id!r}`` gives ``'a'``) and says what to do next, in at least six
words, e.g. ``request 'a' is already waiting; cancel it first, or submit the
new one under another id``.  A message about a bad argument names the
argument (``estimated_tokens``, ``priority``, ``prompt_tokens``); ``solution.core.validate``'s
helpers write such messages.

Costs (n requests waiting)
--------------------------
``enqueue``, ``dispatch``, ``cancel``: O(log n) amortized; ``peek``,
``next_deadline``: amortized O(log n) (they drop stale entries);
``expire``: O(log n) amortized per request that times out;
``record_completion``, ``retry_after``, ``stats``, ``len``: amortized O(1);
``waiting``: O(n log n).
"""

from __future__ import annotations

import heapq
import math
from collections import deque

from solution.core.clock import Clock, read_clock
from solution.core.queue_types import (
    AlreadyWaitingError,
    Cancelled,
    Dispatched,
    NotWaitingError,
    Ordering,
    QueuePolicy,
    QueueStats,
    Queued,
    Rejected,
    TimedOut,
)
from solution.core.validate import require_id, require_int

__all__ = ["RequestQueue"]


class RequestQueue:
    """A bounded, ordered queue of requests waiting for a server.

    >>> from solution.core.clock import ManualClock
    >>> clock = ManualClock()
    >>> q = RequestQueue(clock, QueuePolicy(ordering="priority", max_depth=2))
    >>> q.enqueue("batch", 500)
    Queued(request_id='batch', estimated_tokens=500, priority=0, at=0.0, deadline=None)
    >>> _ = q.enqueue("chat", 200, priority=1)
    >>> q.peek().request_id                  # the higher class goes first
    'chat'
    >>> q.enqueue("third", 100).status       # full: 503 Service Unavailable (the policy's reject_status)
    503
    >>> clock.advance(1.5)
    1.5
    >>> q.dispatch("chat", "gpu-0")
    Dispatched(request_id='chat', server_id='gpu-0', at=1.5, waited=1.5)

    Args:
        clock: the time source (``time.monotonic``, the simulator's clock,
            a :class:`~solution.core.clock.ManualClock`); read once per call that
            needs the time.  It must never go back.
        policy: ordering, bounds, deadlines (default: ``QueuePolicy()``, an
            unbounded FIFO queue without deadlines).

    Raises:
        TypeError: ``clock`` is not callable or ``policy`` not a ``QueuePolicy``.
    """

    def __init__(self, clock: Clock, policy: QueuePolicy | None = None) -> None:
        # TODO: check the arguments, read the clock once (the creation time), set up your data structures
        raise NotImplementedError("Stage 2: RequestQueue.__init__ is not implemented yet; see notebooks/02_queuing.ipynb")

    @property
    def policy(self) -> QueuePolicy:
        """The policy this queue was made with."""
        # TODO: return the policy
        raise NotImplementedError("Stage 2: RequestQueue.policy is not implemented yet; see notebooks/02_queuing.ipynb")

    def __len__(self) -> int:
        """The number of requests waiting (the current depth).  O(1)."""
        # TODO: the current depth
        raise NotImplementedError("Stage 2: RequestQueue.__len__ is not implemented yet; see notebooks/02_queuing.ipynb")

    def __contains__(self, request_id: object) -> bool:
        """True when ``request_id`` is waiting.  O(1)."""
        # TODO: is the request waiting?
        raise NotImplementedError("Stage 2: RequestQueue.__contains__ is not implemented yet; see notebooks/02_queuing.ipynb")

    def enqueue(
        self, request_id: str, estimated_tokens: int, priority: int = 0, prompt_tokens: int | None = None
    ) -> Queued | Rejected:
        """Add a request that found no free server.  O(log n).

        ``prompt_tokens`` (optional) is how many of ``estimated_tokens`` are
        the prompt's; only SJF reads it (its size; see the module docstring).
        Large or small is decided by ``estimated_tokens`` (memory holds every
        token).

        Returns its :class:`Queued` receipt (arrival ``at`` = now, ``deadline
        = at + max_wait`` or ``None``), or, when ``max_depth`` requests
        already wait, :class:`Rejected` with the policy's ``reject_status``
        (503 by default) and the ``Retry-After`` of :meth:`retry_after`; a
        rejected request is not kept.

        Checks in this order, so when several apply the first one decides:
        the arguments (``TypeError`` / ``ValueError``), then a duplicate id
        (``AlreadyWaitingError``), then the depth (``Rejected``).  A request
        whose id is already waiting in a full queue raises
        ``AlreadyWaitingError``; it is not rejected.

        Raises:
            TypeError / ValueError: ``request_id`` is not a non-empty ``str``,
                ``estimated_tokens`` not an ``int`` >= 1, ``priority`` not an
                ``int`` >= 0, ``prompt_tokens`` neither ``None`` nor an
                ``int`` in ``[0, estimated_tokens]``.  The message names the
                argument.
            AlreadyWaitingError (a ValueError): the id is already waiting,
                whether or not the queue is full.  The message quotes the id
                (``'a'``) and says what to do.
        """
        # TODO: validate, reject (policy.reject_status) when full, else record the request under its ordering key
        raise NotImplementedError("Stage 2: RequestQueue.enqueue is not implemented yet; see notebooks/02_queuing.ipynb")

    def peek(self, large_ok: bool = True) -> Queued | None:
        """The request to dispatch next to a server, or ``None`` if none fits.  Amortized O(log n).

        ``large_ok`` says whether that server can take large requests (it has
        enough memory).  With ``large_ok=True``: the reserved request if any
        (see the module docstring), else the waiting request with the
        smallest key.  With ``large_ok=False``: the small request with the
        smallest key.  Nothing is removed: call :meth:`dispatch` once the
        balancer has placed it.

        Raises:
            TypeError: ``large_ok`` is not a ``bool``.
        """
        # TODO: the reserved request, or the best request among those that fit
        raise NotImplementedError("Stage 2: RequestQueue.peek is not implemented yet; see notebooks/02_queuing.ipynb")

    def dispatch(self, request_id: str, server_id: str) -> Dispatched:
        """Remove a waiting request: the balancer placed it on ``server_id``.  O(log n) amortized.

        Returns :class:`Dispatched` with ``at`` = now and ``waited = at -
        arrival``.  When the request is small and the best waiting large
        request ranks ahead of it, that large request's skip count grows by
        one (and it is reserved at ``max_skips``; see the module docstring),
        unless a request is reserved already: then no skip is counted.

        Raises:
            TypeError / ValueError: an id is not a non-empty ``str``.
            NotWaitingError (a KeyError): the request is not waiting.  The
                message quotes the id (``'gone'``) and says what to do.
        """
        # TODO: count a skip if a better-ranked large request was passed over, then remove the request
        raise NotImplementedError("Stage 2: RequestQueue.dispatch is not implemented yet; see notebooks/02_queuing.ipynb")

    def cancel(self, request_id: str) -> Cancelled:
        """Withdraw a waiting request (its client went away).  O(log n) amortized.

        Returns :class:`Cancelled` with ``at`` = now and ``waited = at - arrival``.

        Raises:
            TypeError / ValueError: ``request_id`` is not a non-empty ``str``.
            NotWaitingError (a KeyError): the request is not waiting.  The
                message quotes the id (``'ghost'``) and says what to do.
        """
        # TODO: remove the request and say so
        raise NotImplementedError("Stage 2: RequestQueue.cancel is not implemented yet; see notebooks/02_queuing.ipynb")

    def expire(self) -> list[TimedOut]:
        """Time out every request whose deadline is at or before now.  O(log n) amortized per request.

        Returns them in deadline order (arrival order), each as
        :class:`TimedOut` with ``at`` = its deadline (not now: the driver may
        call late; called at :meth:`next_deadline`, they are the same) and
        ``waited = at - arrival``.  Without ``max_wait`` nothing expires.
        """
        # TODO: remove the requests whose deadline has come, oldest first
        raise NotImplementedError("Stage 2: RequestQueue.expire is not implemented yet; see notebooks/02_queuing.ipynb")

    def next_deadline(self) -> float | None:
        """The earliest deadline of a waiting request, or ``None``.  Amortized O(1).

        Schedule :meth:`expire` at that instant: that is how requests leave
        at exactly their deadline without polling.
        """
        # TODO: the deadline of the oldest request still waiting
        raise NotImplementedError("Stage 2: RequestQueue.next_deadline is not implemented yet; see notebooks/02_queuing.ipynb")

    def record_completion(self) -> None:
        """Note that a request completed on some server now (the completion rate feeds ``Retry-After``).  Amortized O(1)."""
        # TODO: remember when, forget completions older than the rate window
        raise NotImplementedError("Stage 2: RequestQueue.record_completion is not implemented yet; see notebooks/02_queuing.ipynb")

    def retry_after(self) -> int:
        """The ``Retry-After`` (whole seconds, >= 1) a request rejected now gets.  Amortized O(1).

        See *Backpressure* in the module docstring for the formula.
        """
        # TODO: depth and the recent completion rate, as the module docstring says
        raise NotImplementedError("Stage 2: RequestQueue.retry_after is not implemented yet; see notebooks/02_queuing.ipynb")

    def waiting(self) -> list[str]:
        """The ids of the waiting requests, best first by ordering key (reservations aside).  O(n log n)."""
        # TODO: sort the waiting requests by their keys
        raise NotImplementedError("Stage 2: RequestQueue.waiting is not implemented yet; see notebooks/02_queuing.ipynb")

    def stats(self) -> QueueStats:
        """Depth now, peak and time-weighted mean depth, the counts, and the scale-up signal.  O(1).

        ``mean_depth`` is the integral of the depth from the queue's creation
        to now, divided by that time (the current depth when no time has
        passed).  The depth changes only in ``enqueue``, ``dispatch``,
        ``cancel`` and ``expire``, at the time each is called.
        ``over_threshold_since`` is when the depth last rose above
        ``scale_up_depth`` (``None`` when it is not above now, or no
        threshold is set); ``scale_up`` is True once it has stayed there for
        ``scale_up_after`` seconds.
        """
        # TODO: read the time, build a QueueStats
        raise NotImplementedError("Stage 2: RequestQueue.stats is not implemented yet; see notebooks/02_queuing.ipynb")

