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

### BEGIN OMIT
# How the reference meets the costs above:
# * One record per waiting request (_Entry), found by id in a dict.  Two heaps
#   of (key, seq, entry), small and large requests, so the best request that
#   fits a server is at a heap top; a deque in arrival order holds the
#   deadlines (max_wait is the same for all and time never goes back, so
#   deadlines come in arrival order: no heap needed, O(1) per expiry).
# * Removal is lazy: dispatch and cancel mark the entry gone (O(1)); gone
#   entries are dropped when they reach a heap top or the deque's left end.
#   A structure holding more than twice the live entries (plus 64) is rebuilt
#   in O(n): O(1) amortized per removal.
_WAITING, _GONE = 0, 1


class _Entry:
    """One waiting request: its receipt, ordering key, size class and skip count."""

    __slots__ = ("receipt", "key", "large", "state", "skips")

    def __init__(self, receipt: Queued, key: tuple[float, int], large: bool) -> None:
        self.receipt = receipt
        self.key = key
        self.large = large
        self.state = _WAITING
        self.skips = 0


_Heap = list[tuple[float, int, _Entry]]


### END OMIT


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
        ### BEGIN SOLUTION: check the arguments, read the clock once (the creation time), set up your data structures
        if not callable(clock):
            raise TypeError(f"clock must be a zero-argument callable returning seconds, such as time.monotonic; got {clock!r}")
        if policy is None:
            policy = QueuePolicy()
        if not isinstance(policy, QueuePolicy):
            raise TypeError(f"policy must be a QueuePolicy, got {type(policy).__name__}")
        self._clock = clock
        self._policy = policy
        self._created = self._last_now = read_clock(clock, -math.inf)
        self._entries: dict[str, _Entry] = {}
        self._heaps: tuple[_Heap, _Heap] = ([], [])  # small, large
        self._arrivals: deque[_Entry] = deque()  # for deadlines (only with a max_wait)
        self._completions: deque[float] = deque()  # recent record_completion() times
        self._reserved: _Entry | None = None
        self._seq = 0
        # depth metrics and counts
        self._area = 0.0  # integral of depth over time, up to _area_at
        self._area_at = self._created
        self._peak = 0
        self._over_since: float | None = None
        self._counts = {"enqueued": 0, "dispatched": 0, "rejected": 0, "timed_out": 0, "cancelled": 0}
        ### END SOLUTION

    @property
    def policy(self) -> QueuePolicy:
        """The policy this queue was made with."""
        ### BEGIN SOLUTION: return the policy
        return self._policy
        ### END SOLUTION

    def __len__(self) -> int:
        """The number of requests waiting (the current depth).  O(1)."""
        ### BEGIN SOLUTION: the current depth
        return len(self._entries)
        ### END SOLUTION

    def __contains__(self, request_id: object) -> bool:
        """True when ``request_id`` is waiting.  O(1)."""
        ### BEGIN SOLUTION: is the request waiting?
        return isinstance(request_id, str) and request_id in self._entries
        ### END SOLUTION

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
        ### BEGIN SOLUTION: validate, reject (policy.reject_status) when full, else record the request under its ordering key
        require_id(request_id, "request_id")
        require_int(estimated_tokens, "estimated_tokens")
        require_int(priority, "priority", minimum=0)
        if prompt_tokens is not None:
            require_int(prompt_tokens, "prompt_tokens", minimum=0, maximum=estimated_tokens)
        if request_id in self._entries:
            raise AlreadyWaitingError(
                f"request {request_id!r} is already waiting; cancel it first, or submit the new one under another id"
            )
        now = self._now()
        policy = self._policy
        if policy.max_depth is not None and len(self._entries) >= policy.max_depth:
            self._counts["rejected"] += 1
            return Rejected(request_id, now, self._retry_after(now), policy.reject_status)
        deadline = None if policy.max_wait is None else now + policy.max_wait
        receipt = Queued(request_id, estimated_tokens, priority, now, deadline)
        if policy.ordering is Ordering.FIFO:
            primary = 0.0
        elif policy.ordering is Ordering.PRIORITY:
            primary = float(-priority)
        else:
            primary = policy.job_size(estimated_tokens, prompt_tokens) + policy.aging_rate * now
        entry = _Entry(receipt, (primary, self._seq), policy.is_large(estimated_tokens))
        heapq.heappush(self._heaps[entry.large], (primary, self._seq, entry))
        self._seq += 1
        if deadline is not None:
            self._arrivals.append(entry)
        self._record_depth(now)
        self._entries[request_id] = entry
        self._counts["enqueued"] += 1
        self._after_depth_change(now)
        return receipt
        ### END SOLUTION

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
        ### BEGIN SOLUTION: the reserved request, or the best request among those that fit
        if not isinstance(large_ok, bool):
            raise TypeError(f"large_ok must be a bool, got {type(large_ok).__name__} {large_ok!r}")
        if large_ok and self._reserved is not None:
            return self._reserved.receipt
        small = self._top(self._heaps[0])
        large = self._top(self._heaps[1]) if large_ok else None
        best = small if large is None or (small is not None and small.key < large.key) else large
        return None if best is None else best.receipt
        ### END SOLUTION

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
        ### BEGIN SOLUTION: count a skip if a better-ranked large request was passed over, then remove the request
        require_id(request_id, "request_id")
        require_id(server_id, "server_id")
        entry = self._waiting_entry(request_id)
        now = self._now()
        if not entry.large and self._reserved is None:
            best_large = self._top(self._heaps[1])
            if best_large is not None and best_large.key < entry.key:
                best_large.skips += 1
                if best_large.skips >= self._policy.max_skips:
                    self._reserved = best_large
        self._leave(entry, now)
        self._counts["dispatched"] += 1
        return Dispatched(request_id, server_id, now, now - entry.receipt.at)
        ### END SOLUTION

    def cancel(self, request_id: str) -> Cancelled:
        """Withdraw a waiting request (its client went away).  O(log n) amortized.

        Returns :class:`Cancelled` with ``at`` = now and ``waited = at - arrival``.

        Raises:
            TypeError / ValueError: ``request_id`` is not a non-empty ``str``.
            NotWaitingError (a KeyError): the request is not waiting.  The
                message quotes the id (``'ghost'``) and says what to do.
        """
        ### BEGIN SOLUTION: remove the request and say so
        require_id(request_id, "request_id")
        entry = self._waiting_entry(request_id)
        now = self._now()
        self._leave(entry, now)
        self._counts["cancelled"] += 1
        return Cancelled(request_id, now, now - entry.receipt.at)
        ### END SOLUTION

    def expire(self) -> list[TimedOut]:
        """Time out every request whose deadline is at or before now.  O(log n) amortized per request.

        Returns them in deadline order (arrival order), each as
        :class:`TimedOut` with ``at`` = its deadline (not now: the driver may
        call late; called at :meth:`next_deadline`, they are the same) and
        ``waited = at - arrival``.  Without ``max_wait`` nothing expires.
        """
        ### BEGIN SOLUTION: remove the requests whose deadline has come, oldest first
        now = self._now()
        arrivals = self._arrivals
        expired: list[TimedOut] = []
        while arrivals:
            entry = arrivals[0]
            if entry.state == _WAITING:
                receipt = entry.receipt
                assert receipt.deadline is not None
                if receipt.deadline > now:
                    break
                self._leave(entry, now)
                self._counts["timed_out"] += 1
                expired.append(TimedOut(receipt.request_id, receipt.deadline, receipt.deadline - receipt.at))
            arrivals.popleft()
        return expired
        ### END SOLUTION

    def next_deadline(self) -> float | None:
        """The earliest deadline of a waiting request, or ``None``.  Amortized O(1).

        Schedule :meth:`expire` at that instant: that is how requests leave
        at exactly their deadline without polling.
        """
        ### BEGIN SOLUTION: the deadline of the oldest request still waiting
        arrivals = self._arrivals
        while arrivals and arrivals[0].state != _WAITING:
            arrivals.popleft()
        return arrivals[0].receipt.deadline if arrivals else None
        ### END SOLUTION

    def record_completion(self) -> None:
        """Note that a request completed on some server now (the completion rate feeds ``Retry-After``).  Amortized O(1)."""
        ### BEGIN SOLUTION: remember when, forget completions older than the rate window
        now = self._now()
        self._completions.append(now)
        self._forget_completions(now)
        ### END SOLUTION

    def retry_after(self) -> int:
        """The ``Retry-After`` (whole seconds, >= 1) a request rejected now gets.  Amortized O(1).

        See *Backpressure* in the module docstring for the formula.
        """
        ### BEGIN SOLUTION: depth and the recent completion rate, as the module docstring says
        return self._retry_after(self._now())
        ### END SOLUTION

    def waiting(self) -> list[str]:
        """The ids of the waiting requests, best first by ordering key (reservations aside).  O(n log n)."""
        ### BEGIN SOLUTION: sort the waiting requests by their keys
        return [e.receipt.request_id for e in sorted(self._entries.values(), key=lambda e: e.key)]
        ### END SOLUTION

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
        ### BEGIN SOLUTION: read the time, build a QueueStats
        now = self._now()
        depth = len(self._entries)
        elapsed = now - self._created
        area = self._area + depth * (now - self._area_at)
        since = self._over_since
        return QueueStats(
            depth=depth,
            peak_depth=self._peak,
            mean_depth=area / elapsed if elapsed > 0 else float(depth),
            over_threshold_since=since,
            scale_up=since is not None and now - since >= self._policy.scale_up_after,
            **self._counts,
        )
        ### END SOLUTION

    ### BEGIN OMIT
    # -- helpers ------------------------------------------------------------------

    def _now(self) -> float:
        now = self._clock()
        if type(now) is not float or not self._last_now <= now < math.inf:  # the common case costs two compares
            now = read_clock(lambda: now, self._last_now)
        self._last_now = now
        return now

    def _waiting_entry(self, request_id: str) -> _Entry:
        entry = self._entries.get(request_id)
        if entry is None:
            raise NotWaitingError(
                f"request {request_id!r} is not waiting (never queued, or already dispatched, timed out or cancelled); "
                "waiting() lists the requests that are"
            )
        return entry

    @staticmethod
    def _top(heap: _Heap) -> _Entry | None:
        """Drop gone entries from the top; return the best waiting one."""
        while heap and heap[0][2].state != _WAITING:
            heapq.heappop(heap)
        return heap[0][2] if heap else None

    def _record_depth(self, now: float) -> None:
        """Add the depth since the last change to the area (before the depth changes)."""
        self._area += len(self._entries) * (now - self._area_at)
        self._area_at = now

    def _after_depth_change(self, now: float) -> None:
        depth = len(self._entries)
        self._peak = max(self._peak, depth)
        threshold = self._policy.scale_up_depth
        if threshold is not None and depth > threshold:
            if self._over_since is None:
                self._over_since = now
        else:
            self._over_since = None

    def _leave(self, entry: _Entry, now: float) -> None:
        """The request leaves the queue now (dispatched, cancelled or timed out)."""
        self._record_depth(now)
        entry.state = _GONE
        del self._entries[entry.receipt.request_id]
        if entry is self._reserved:
            self._reserved = None
        self._after_depth_change(now)
        live = len(self._entries)
        for heap in self._heaps:
            if len(heap) > 2 * live + 64:
                heap[:] = [item for item in heap if item[2].state == _WAITING]
                heapq.heapify(heap)
        if len(self._arrivals) > 2 * live + 64:
            self._arrivals = deque(e for e in self._arrivals if e.state == _WAITING)

    def _forget_completions(self, now: float) -> None:
        horizon = now - self._policy.rate_window
        completions = self._completions
        while completions and completions[0] <= horizon:
            completions.popleft()

    def _retry_after(self, now: float) -> int:
        self._forget_completions(now)
        policy = self._policy
        count = len(self._completions)
        if count:
            span = min(policy.rate_window, now - self._created)
            seconds = (len(self._entries) + 1) * span / count
        else:
            seconds = policy.max_wait if policy.max_wait is not None else policy.rate_window
        if policy.max_wait is not None:
            seconds = min(seconds, policy.max_wait)
        return max(1, math.ceil(seconds - 1e-9))

    ### END OMIT
