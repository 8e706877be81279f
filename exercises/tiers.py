# Generated from solution/tiers.py by tools/make_exercises.py (`make exercises`).
# Stage 6: fill in every body that raises NotImplementedError; notebooks/06_priorities_and_tiers.ipynb explains the task.
"""Stage 6: priorities and tiers: who waits when the cluster is short.

Premium customers pay for latency; free users and offline batch jobs fill the
rest.  When there are more requests than slots someone waits, and this stage
decides who, with five mechanisms that compose with the queue (stage 2), the
routing strategies (stage 3), health (stage 4) and affinity (stage 5) through
the one request path:

* :class:`TierTable`: the tiers as data (:class:`ServiceTier` rows, each with
  its queue class, reserved share, rate limits, pool, routing rule,
  preemption flags and SLO), and the reservation arithmetic.
* :class:`TokenBucket`, :class:`RateLimiter`, :class:`TierAdmission`: per-tier
  and per-tenant limits on requests and tokens per minute, checked before a
  request is queued; an over-limit request gets HTTP 429 with an exact
  ``Retry-After``.
* :class:`TierRouting`: a routing strategy that keeps each tier inside its
  slots and pools, premium by predicted latency, the others by load.
* :class:`Preemptor`: when a premium request finds no slot, the newest running
  batch request is paused (and resumed later, never lost, at most
  ``max_preemptions`` times).

Queue class: strict priority
----------------------------
Each tier has a ``queue_class`` (an int >= 0, larger is served first); two
tiers may not share one (two tiers that should be equal are one tier).  The
request path serves the waiting requests of the highest class first, FIFO
within a class.  Priority alone decides only *who is next*; it cannot keep a
premium request from finding every slot taken by free work that started a
moment earlier.  Reservation does.

Reserved capacity: trunk reservation
------------------------------------
Telephone exchanges kept a few trunks (lines) free for priority calls: a call
of a low class is refused once only the guard trunks are free ("trunk
reservation").  Here a tier's ``reserved_share`` in [0, 1) keeps that share of
*every* server's slots for it and the tiers above it.  On a server of nominal
capacity ``c`` (its batch as added) the number of slots is rounded **up**::

    reserved_slots(t, c) = ceil(reserved_share_t * c - 1e-9)

(the ``- 1e-9`` absorbs float error: ``0.1 * 30`` is ``3.0000000000000004``
and must give 3, not 4).  Rounding up makes the promise a floor: premium gets
at least its share on every server, small ones included.  At 25%:

    ==========================  ===  ===  ===  ===  ===  ===  ===  ===
    capacity c                   1    2    3    4    5    6    7    8
    slots reserved for premium   1    1    1    1    2    2    2    2
    slots a free request sees    0    1    2    3    3    4    5    6
    ==========================  ===  ===  ===  ===  ===  ===  ===  ===

So a capacity-1 server serves premium only, and a capacity-5 server keeps 40%
for premium, not 25%: that is the price of the floor on small servers.  The
reserved slots sit **idle** whenever premium does not need them (the cost of
the promise: free work waits beside an empty slot).  A tier may use every slot
of a server except those reserved for tiers of a *higher* class::

    limit(t, s) = L(s) - sum(reserved_slots(u, c) for u with queue_class_u > queue_class_t)

with ``L(s)`` the router's limit for the server (``Router.limit``: its
capacity times its health weight, at most a half-open circuit's trial limit,
plus its own queue if it has one); a tier's limit is never below 0.  A
request of tier ``t`` fits a server iff ``load < limit(t, s)`` (and the
router's own tests: not draining, health weight above 0, big enough).  So the
top class sees the whole server, a free request sees it full at 75%, and a
higher class may use a lower class's reservation, never the other way.  The
shares must sum to less than 1, or nothing would be left for the lowest tier.

Rate limits: token buckets
--------------------------
A :class:`~solution.core.tier_types.RateLimit` gives requests per minute and
tokens per minute (LLM APIs limit both: a request costs 1 of the first and its
``estimated_tokens`` of the second, prompt plus expected output, as OpenAI
counts ``max_tokens`` at admission).  Each is a token bucket: it refills at
``rate`` per second up to ``burst`` (``rate * burst_seconds``, a minute's
worth by default), and a request takes what it needs.  A tier may have a
``tier_limit`` (all its traffic together) and a ``tenant_limit`` (each tenant
of the tier on its own).  A request is admitted iff **every** bucket that
applies holds enough; then all of them are charged at once.  Otherwise
**nothing** is charged (a refused request must not eat the quota of the next
one) and the wait is exact::

    wait = max over the short buckets of (need - level) / rate     seconds, a float

The answer is HTTP 429 with ``Retry-After = ceil(wait)``: RFC 9110 allows only
whole seconds, and rounding *down* would send the client back before the
bucket holds enough, to be refused again; rounding up means a retry at
``now + Retry-After`` is admitted (unless another request took the tokens
meanwhile), while one at ``now + wait - 1e-6`` is not.  A constant
``Retry-After`` is wrong both ways: too early it causes a storm of refused
retries, too late it idles capacity the tenant has paid for.  A request that
needs more than a bucket's ``burst`` could never pass: it gets
:class:`~solution.core.errors.RequestTooLargeError` (the gateway answers 413),
never an endless series of 429s.  Buckets count *admission*, not the work:
the limits are checked before a request is queued.

Conformance: for any window of length ``t``, the tokens admitted are at most
``burst + rate * t`` (a bucket can never hold more than ``burst`` and refills
at ``rate``).  The comparison "holds enough" allows a nanosecond of refill
(``level + rate * 1e-9 >= need``), so the float error of ``level + rate *
wait`` cannot refuse a retry made exactly at ``now + wait``.

Forgetting idle tenants
-----------------------
A bucket untouched for ``burst / rate`` seconds is full again, exactly like a
new one.  So a tenant idle for ``idle_after = max(burst / rate)`` over its
buckets can be dropped and re-created on its next request with no change in
behaviour at all (the bucket's level is computed as full from that moment
on, so even float rounding cannot tell the two apart).  Tenants are kept per
tier in order of last admission, so the idle ones are at the front: each call
pops them from there, amortized O(1), never a scan.  A hard bound
``max_tenants`` (default 100,000) evicts the least recently used tenant when a
new one arrives at a full table; the documented cost: that tenant's next
burst is a fresh one (it may send up to one extra burst).  Memory is O(active
tenants), never O(tenants ever seen), and admission is O(1) per request
(amortized; O(T) for T tiers, a handful).

Pools and the spill rule
------------------------
Servers carry a pool label (``Router.add_server(..., pool=...)``, default
``"shared"``, the pool every tier may use).  A tier with ``pool=None`` uses the
shared pool only.  A tier pinned to a pool ``P`` uses ``P`` first and
**spills** to the shared pool only when no server of ``P`` can take the
request (``spill=True``, the default; ``spill=False`` keeps it in ``P``).  A
tier never uses a named pool that is not its own: free never runs on the
premium pool, even when it is idle (that is what premium pays for).

SLA routing
-----------
Per tier, ``routing="predictive"`` picks, among the servers it may use with a
free slot for it, the lowest ``server.model.e2e(prompt, output, load)`` (stage
3's predictive rule: a latency-sensitive tier goes where it finishes first),
then the lower load, then the server added first; ``routing="load"`` picks
the lowest ``load / limit(t, s)`` (the share of its own slots in use), then
the server added first.  The standard table routes its top class
predictively and the others by load.  One
:class:`~solution.core.routing.HeapIndex` per (tier, pool, latency model)
holds the servers where the tier fits, keyed by load (servers sharing a
latency model rank by load alone); a decision compares each heap's best:
O(P K log S) for P pools the tier may use (at most 2) and K latency models
(K = 1 for load routing).  A server's change re-keys it once per tier that
may use its pool: O(T log S).  Never a scan of the fleet.

Preemption: who gives way, and how often
----------------------------------------
When a request of a tier that ``may_preempt`` finds no server, a running
request of a ``preemptible`` tier of a lower class is paused: the **newest**
one (most recently started; vLLM also preempts the newest: it has done the
least work, so redoing it costs least) whose server the requester may use
(its pools, not draining, weight above 0, big enough).  The victim leaves
its server, goes back to the **front** of its tier's waiting line (resumed
before newer requests of its tier), and pays on resume:

* ``"recompute"`` (vLLM's default): prefill its prompt *and* the tokens it
  already generated again, on any server: compute, no memory traffic;
* ``"swap"``: its KV cache goes to host memory and back over PCIe (two times
  its KV bytes over the link), and it resumes on the same server.

Which costs less depends on the context and the hardware: recompute pays
prefill compute for every token it had (the prompt plus what it generated),
swap pays ``2 * KV bytes / PCIe bandwidth`` and keeps host memory meanwhile;
the simulator prices both with the GPU's numbers.  A preempted request is never lost and never answered twice;
it is counted (per request and in total), and it is not a failed try (it
does not use up the retry policy's tries).  A streamed request may be
preempted too: the client sees a pause, not a restart.  **Starvation bound:**
a request preempted ``max_preemptions`` times (default 2) is no longer
preemptible, so batch work is delayed, never starved forever.

Where ``solution`` is replaced by ``exercises`` (the generated exercise), the
marked bodies are the candidate's; the tier rows, rate limits and SLOs come
from ``solution.core.tier_types`` and the errors from ``solution.core.errors``
on both sides.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from solution.core.errors import (
    DuplicateRequestError,
    RequestStateError,
    RequestTooLargeError,
    TimeWentBackwardsError,
    UnknownRequestError,
    UnknownTierError,
)
from solution.core.health_types import require_time
from solution.core.latency import LatencyModel
from solution.core.queue_types import Rejected
from solution.core.request import Request
from solution.core.routing import BaseStrategy, Decision, HeapIndex, Router, Scored, ServerState
from solution.core.tier_types import PREEMPT_MODES, ROUTING_MODES, SHARED_POOL, RateLimit, ServiceTier, Slo
from solution.core.validate import MAX_CAPACITY, require_id, require_int

__all__ = [
    "ServiceTier",
    "RateLimit",
    "Slo",
    "TierTable",
    "TokenBucket",
    "RateLimiter",
    "TierAdmission",
    "TierRouting",
    "Preemptor",
    "SHARED_POOL",
    "ROUTING_MODES",
    "PREEMPT_MODES",
    "RequestTooLargeError",
    "UnknownTierError",
    "SLACK_SECONDS",
]

#: "Holds enough" allows this much refill (a nanosecond): ``level + rate * SLACK_SECONDS >= need``,
#: so the float error of ``level + rate * wait`` never refuses a retry made exactly ``wait`` seconds later.
SLACK_SECONDS = 1e-9

#: Reservation rounding absorbs float error of this size (``0.1 * 30`` must give 3 slots, not 4).
_ROUNDING_SLACK = 1e-9

#: The HTTP status of a rate-limited request.
TOO_MANY_REQUESTS = 429


class TierTable:
    """The service tiers as data, and the reservation arithmetic.  Built in O(T log T) for T tiers.

    Rules (each is graded):

    1. **Validation**: ``tiers`` is a non-empty sequence of
       :class:`~solution.core.tier_types.ServiceTier`; names are unique; queue
       classes are distinct (two tiers that should be equal are one tier);
       the reserved shares sum to less than 1 (at 1 or more nothing would be
       left for the lowest tier).  ``default`` names a tier of the table, or is
       ``None``: then the first tier listed is the default.  Else
       ``TypeError`` / ``ValueError`` (``UnknownTierError`` for an unknown
       default), and no table is built.
    2. **Lookup**: :meth:`tier` returns the named tier; ``None`` means the
       default tier; an unknown name raises
       :class:`~solution.core.errors.UnknownTierError` (a ``ValueError``)
       listing the known ones.
    3. **Reservation**: ``reserved_slots(t, c) = ceil(reserved_share_t * c - 1e-9)``,
       rounded up so the promise is a floor on every server (25% gives
       1,1,1,1,2,2,2,2 slots for c = 1..8).
    4. **Limit**: ``limit(t, L, c) = max(0, L - sum(reserved_slots(u, c)))``
       over the tiers ``u`` of a *higher* class than ``t``: a tier may use
       its own reservation and those of the classes below it, never one
       above.  ``L`` may be ``math.inf`` (an unbounded per-server queue):
       the limit is then ``inf``.

    Costs: :meth:`tier` is O(1); :meth:`reserved_slots` O(1);
    :meth:`limit` O(T) the first time for a (tier, capacity) pair and O(1)
    after (cached; at most T entries per distinct capacity).

    >>> table = TierTable.standard()
    >>> [table.reserved_slots("premium", c) for c in range(1, 9)]
    [1, 1, 1, 1, 2, 2, 2, 2]
    >>> table.limit("free", 8, 8), table.limit("premium", 8, 8)
    (6, 8)
    """

    def __init__(self, tiers: Sequence[ServiceTier], default: str | None = None) -> None:
        # TODO: validate (a non-empty sequence of ServiceTier, unique names, distinct classes, shares summing below 1, a known default or None = the first tier); keep the tiers by name, by class (highest first), and each tier's higher-class shares; an empty cache for limit
        raise NotImplementedError("Stage 6: TierTable.__init__ is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    @classmethod
    def standard(cls) -> TierTable:
        """The course's default table: premium, free, batch (``free`` is the default tier).

        * ``premium``: class 2, 25% of every server reserved, routed by
          predicted latency, may preempt; 600 requests and 1,000,000 tokens
          per minute per tenant; SLO: first token within 1 s, the answer
          within 30 s.
        * ``free``: class 1, routed by load; 60 requests and 100,000 tokens
          per minute per tenant; SLO: 5 s and 120 s.
        * ``batch``: class 0, preemptible; 2,000,000 tokens per minute per
          tenant; SLO: the whole answer within 24 hours (OpenAI's batch window).
        """
        return cls(
            [
                ServiceTier("premium", 2, 0.25, tenant_limit=RateLimit(600, 1_000_000), routing="predictive",
                            may_preempt=True, slo=Slo(ttft=1.0, e2e=30.0)),  # fmt: skip
                ServiceTier("free", 1, tenant_limit=RateLimit(60, 100_000), slo=Slo(ttft=5.0, e2e=120.0)),
                ServiceTier("batch", 0, tenant_limit=RateLimit(None, 2_000_000), preemptible=True,
                            slo=Slo(ttft=86_400.0, e2e=86_400.0)),  # fmt: skip
            ],
            default="free",
        )

    def tier(self, name: str | None) -> ServiceTier:
        """The tier called ``name`` (``None``: the default tier).  O(1).

        Raises:
            TypeError: ``name`` is neither a str nor None.
            UnknownTierError (a ValueError): no tier has that name (the message lists them).
        """
        # TODO: None -> the default; a str -> look it up (UnknownTierError naming the known tiers); anything else -> TypeError
        raise NotImplementedError("Stage 6: TierTable.tier is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    @property
    def names(self) -> tuple[str, ...]:
        """The tiers' names, in the order given."""
        # TODO: the names as given
        raise NotImplementedError("Stage 6: TierTable.names is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    @property
    def by_class(self) -> tuple[ServiceTier, ...]:
        """The tiers, highest queue class first (the order a refill serves them)."""
        # TODO: sorted by queue_class, descending
        raise NotImplementedError("Stage 6: TierTable.by_class is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    @property
    def default(self) -> str:
        """The default tier's name (what ``Request(tier=None)`` gets)."""
        # TODO: the default's name
        raise NotImplementedError("Stage 6: TierTable.default is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def __len__(self) -> int:
        """The number of tiers."""
        # TODO: how many tiers
        raise NotImplementedError("Stage 6: TierTable.__len__ is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def __iter__(self) -> Iterator[ServiceTier]:
        """The tiers, in the order given."""
        # TODO: the rows in the order given
        raise NotImplementedError("Stage 6: TierTable.__iter__ is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def __contains__(self, name: object) -> bool:
        """True when ``name`` is a tier of the table."""
        # TODO: a str that names a tier
        raise NotImplementedError("Stage 6: TierTable.__contains__ is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def reserved_slots(self, name: str | None, capacity: int) -> int:
        """Slots of a server of nominal ``capacity`` reserved for tier ``name`` and the tiers above it.  O(1).

        ``ceil(reserved_share * capacity - 1e-9)``: rounded up, so the
        reservation is a floor on every server (25% of capacity 1 is 1 slot).

        Raises:
            TypeError / ValueError: ``capacity`` not an int in [1, 2**32]; UnknownTierError: unknown tier.
        """
        # TODO: validate; look the tier up; ceil(share * capacity - 1e-9) (0 for no share)
        raise NotImplementedError("Stage 6: TierTable.reserved_slots is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def limit(self, name: str | None, effective_limit: float, capacity: int) -> float:
        """How many requests of tier ``name`` a server may hold: ``effective_limit`` minus the slots
        reserved for the tiers of a higher class, never below 0.  O(1) amortized (O(T) per new (tier, capacity)).

        Args:
            name: the tier (``None``: the default tier).
            effective_limit: the router's limit for the server (``Router.limit``:
                an int >= 0, or ``math.inf`` for an unbounded queue).
            capacity: the server's nominal capacity (its batch as added), what
                the reservation is a share of.

        Raises:
            TypeError / ValueError: a limit that is not a number >= 0 (or is NaN, or a bool),
            a capacity not an int in [1, 2**32]; UnknownTierError: unknown tier.
        """
        # TODO: validate; the slots held for the higher classes (cached per (tier, capacity)); subtract, floor at 0
        raise NotImplementedError("Stage 6: TierTable.limit is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")


class TokenBucket:
    """A token bucket: it refills at ``rate`` per second up to ``burst``, and a take removes what it needs.

    Starts full at ``now``.  The level is computed when asked, never by a
    timer: ``level(now) = min(burst, level + rate * (now - last))``, and
    exactly ``burst`` once ``now - last >= burst / rate`` (a bucket idle that
    long is indistinguishable from a new one: that is what lets a rate
    limiter forget idle tenants).

    Rules (each is graded):

    1. :meth:`wait` is ``0.0`` when ``n`` fits now (``level + rate * 1e-9 >= n``:
       a nanosecond of refill forgives float error), else exactly
       ``(n - level) / rate`` seconds.
    2. :meth:`take` charges ``n`` and returns ``0.0`` when it fits; otherwise it
       returns the wait and charges **nothing**.
    3. ``n > burst`` raises :class:`~solution.core.errors.RequestTooLargeError`
       (a ``ValueError``): no wait would ever be enough.
    4. ``now`` earlier than the last charge raises
       :class:`~solution.core.errors.TimeWentBackwardsError`; nothing changes.

    Every method is O(1).

    >>> b = TokenBucket(rate=2.0, burst=4.0)
    >>> b.take(4, now=0.0), b.take(3, now=0.5), b.wait(3, now=0.5)
    (0.0, 1.0, 1.0)
    >>> b.take(3, now=1.5)
    0.0

    Raises:
        TypeError / ValueError: ``rate`` or ``burst`` not a finite number > 0, ``now`` not a finite number.
    """

    __slots__ = ("_rate", "_burst", "_level", "_at", "_full_after")

    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        # TODO: validate rate and burst (finite > 0, not bool) and now; start full at now; keep burst / rate (after that long the bucket is full)
        raise NotImplementedError("Stage 6: TokenBucket.__init__ is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    @property
    def rate(self) -> float:
        """Refill per second."""
        # TODO: as given
        raise NotImplementedError("Stage 6: TokenBucket.rate is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    @property
    def burst(self) -> float:
        """The most it holds."""
        # TODO: as given
        raise NotImplementedError("Stage 6: TokenBucket.burst is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def level(self, now: float) -> float:
        """What it holds at ``now`` (no change).  O(1).

        Raises: TypeError / ValueError (bad ``now``); TimeWentBackwardsError: ``now`` before the last charge.
        """
        # TODO: check the time; full once burst / rate has passed since the last charge, else min(burst, level + rate * elapsed)
        raise NotImplementedError("Stage 6: TokenBucket.level is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def wait(self, n: float, now: float) -> float:
        """Seconds until ``n`` fits: ``0.0`` if it fits now, else ``(n - level) / rate`` (no change).  O(1).

        Raises:
            TypeError / ValueError: ``n`` not a finite number >= 0, or a bad ``now``.
            RequestTooLargeError (a ValueError): ``n > burst``: it never fits.
            TimeWentBackwardsError: ``now`` before the last charge.
        """
        # TODO: validate n (RequestTooLargeError above burst); the level; 0.0 if level + rate * 1e-9 >= n else the exact wait
        raise NotImplementedError("Stage 6: TokenBucket.wait is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def take(self, n: float, now: float) -> float:
        """Charge ``n`` if it fits now and return ``0.0``; else return the wait and charge nothing.  O(1).

        Raises: as :meth:`wait` (and nothing is charged).
        """
        # TODO: the wait; if 0, charge (level - n, floored at 0) and record now as the last charge
        raise NotImplementedError("Stage 6: TokenBucket.take is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")


class _Tenant:
    """A tenant's buckets (private): request bucket, token bucket (either may be None), last admission."""

    __slots__ = ("requests", "tokens", "last")

    def __init__(self, requests: TokenBucket | None, tokens: TokenBucket | None, last: float) -> None:
        self.requests, self.tokens, self.last = requests, tokens, last


class RateLimiter:
    """Per-tier and per-tenant token buckets for requests and tokens per minute; O(1) per request (amortized).

    Rules (each is graded):

    1. **Which buckets**: a request of tier ``t`` meets ``t.tier_limit``'s
       buckets (shared by all of the tier's traffic) and, when it names a
       ``tenant`` and ``t.tenant_limit`` is set, that tenant's own buckets
       (one per tenant *of that tier*).  Each ``RateLimit`` is a request bucket
       (1 per request) and a token bucket (``request.estimated_tokens``);
       ``None`` rates have no bucket.  A tenant's buckets start full.
    2. **All or nothing**: :meth:`check` returns ``0.0`` and charges every
       bucket when each holds enough; otherwise it charges **nothing** and
       returns the wait, the largest ``(need - level) / rate`` over the
       buckets that are short (each bucket as in :class:`TokenBucket`).
       ``stats()["limited_by"]`` counts the bucket with that largest wait; on
       a tie, the first in the order ``"tier requests"``, ``"tier tokens"``,
       ``"tenant requests"``, ``"tenant tokens"``.
    3. **Too large**: a request that needs more tokens than a bucket's burst
       raises :class:`~solution.core.errors.RequestTooLargeError`; nothing
       changes.  So does an unknown tier (``UnknownTierError``) and a ``now``
       earlier than the last call's (``TimeWentBackwardsError``).
    4. **Retry-After**: :meth:`retry_after` is ``ceil(wait)``, at least 1 (whole
       seconds, RFC 9110): a retry that late is admitted if nothing else
       took the tokens meanwhile.
    5. **Forgetting**: a tenant is dropped (``stats()["forgotten"]``) by any
       :meth:`check` at ``now`` (admitted or refused: forgetting runs before
       the buckets are read) once ``now - last_admission >= idle_after``,
       exactly ``idle_after`` included, with ``idle_after`` the largest
       ``burst / rate`` of its buckets (by then they are full again, so
       nothing changes in behaviour).  A refused request does not refresh its
       tenant's last admission.  Tenants are kept per tier in order of last
       admission and the idle ones popped from the front: amortized O(1).
    6. **Bound**: at most ``max_tenants`` tenants are held; a new tenant at a
       full table evicts the least recently admitted one
       (``stats()["evicted"]``; its next burst is a fresh one); on a tie
       between tiers, the tier listed first in the table loses its tenant.

    Costs: :meth:`check` is O(T) for T tiers plus O(1) amortized for the
    tenants forgotten (independent of how many tenants are held); memory is
    O(tenants admitted within their ``idle_after``), at most ``max_tenants``.

    Raises:
        TypeError: ``table`` not a TierTable; ``max_tenants`` not an int.
        ValueError: ``max_tenants`` < 1.
    """

    def __init__(self, table: TierTable, *, max_tenants: int = 100_000) -> None:
        # TODO: validate; keep the table (self.table) and the bound; per tier: the tier buckets (made on first use), an ordered dict of tenants, idle_after; the last now; the counters
        raise NotImplementedError("Stage 6: RateLimiter.__init__ is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    @property
    def max_tenants(self) -> int:
        """The most tenants held at once."""
        # TODO: as given
        raise NotImplementedError("Stage 6: RateLimiter.max_tenants is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def check(self, request: Request, now: float) -> float:
        """Admit and charge (``0.0``), or return the seconds to wait (> 0) and charge nothing.  O(1) amortized.

        Raises:
            TypeError: ``request`` not a Request; a bad ``now``.
            UnknownTierError (a ValueError): its tier is not in the table.
            RequestTooLargeError (a ValueError): it needs more tokens than a bucket's burst.
            TimeWentBackwardsError (a ValueError): ``now`` earlier than the last call's.
            Nothing changes when it raises.
        """
        # TODO: validate everything first (request, tier, now, too large); then record now, forget the idle tenants, find the buckets, compute each wait; all fit -> charge all, admit the tenant (LRU move, evict at the bound); else count the binding bucket and return the largest wait
        raise NotImplementedError("Stage 6: RateLimiter.check is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    @staticmethod
    def retry_after(wait: float) -> int:
        """The ``Retry-After`` header for a wait: ``ceil(wait)`` whole seconds, at least 1.  O(1).

        Raises: TypeError / ValueError: ``wait`` not a finite number >= 0.
        """
        # TODO: validate; max(1, ceil(wait))
        raise NotImplementedError("Stage 6: RateLimiter.retry_after is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def tenants(self) -> int:
        """How many tenants are held now (over all tiers).  O(1)."""
        # TODO: the count
        raise NotImplementedError("Stage 6: RateLimiter.tenants is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def stats(self) -> dict[str, Any]:
        """Counters: ``admitted``, ``limited`` (total), ``limited_by`` (which bucket bound: ``"tier requests"``,
        ``"tier tokens"``, ``"tenant requests"``, ``"tenant tokens"``), ``by_tier`` (``admitted`` and ``limited``
        per tier), ``forgotten``, ``evicted``, ``tenants``.  A fresh dict; O(T)."""
        # TODO: copies of the counters
        raise NotImplementedError("Stage 6: RateLimiter.stats is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")


class TierAdmission:
    """The request path's admission hook: the tier must exist, and the rate limits must admit it.

    ``admission(request, now)`` returns ``None`` (admitted: the limiter has
    charged it) or a :class:`~solution.core.queue_types.Rejected` with status
    429 and ``retry_after = ceil(wait)`` (nothing charged).  It raises,
    changing nothing, for an unknown tier (``UnknownTierError``), a request
    bigger than a bucket (``RequestTooLargeError``: the gateway answers 413),
    a bad or backwards ``now``.  The request path calls it before it changes
    anything, so a raise leaves the whole path as it was.  O(1) amortized
    (the limiter's cost).

    Args:
        table: the :class:`TierTable`.
        limiter: a :class:`RateLimiter` over the same table, or ``None`` (no rate
            limits: only the tier is checked).

    Raises:
        TypeError: ``table`` not a TierTable, ``limiter`` not a RateLimiter or None.
        ValueError: the limiter serves another table.
    """

    def __init__(self, table: TierTable, limiter: RateLimiter | None = None) -> None:
        # TODO: validate (a TierTable; a RateLimiter over this very table, or None); keep them as self.table, self.limiter; per-tier counters
        raise NotImplementedError("Stage 6: TierAdmission.__init__ is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def __call__(self, request: Request, now: float) -> Rejected | None:
        """``None`` to admit, or ``Rejected(request_id, now, retry_after, 429)``.  O(1) amortized.

        Raises: TypeError (not a Request, bad now), UnknownTierError, RequestTooLargeError,
        TimeWentBackwardsError; nothing changes then.
        """
        # TODO: validate the request, its tier and now; no limiter -> admit; else check: 0 -> admit, > 0 -> Rejected with ceil(wait) and 429; count per tier
        raise NotImplementedError("Stage 6: TierAdmission.__call__ is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def stats(self) -> dict[str, dict[str, int]]:
        """``{"admitted": {tier: n}, "rejected": {tier: n}}`` (429s by tier).  A fresh dict; O(T)."""
        # TODO: copies of the two counters
        raise NotImplementedError("Stage 6: TierAdmission.stats is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")


class TierRouting(BaseStrategy):
    """A routing strategy that keeps each tier in its slots and pools: premium by predicted latency, the others by load.

    Plug it into a router (``Router(TierRouting(table))``) or a request path;
    requests carry their tier (``Request(tier=...)``, ``None`` for the table's
    default).

    Rules (each is graded):

    1. **Fit**: a request of tier ``t`` fits server ``s`` iff ``s.pool`` is one
       of ``t.pools``, the router says it is available (not draining, weight
       above 0, below its limit), it is big enough for the request, and
       ``s.load < table.limit(t, router.limit(s), s.nominal_capacity)`` (the
       slots reserved for the higher classes are not its to use).  With an
       unbounded per-server queue (``router.limit`` is infinite) the
       reservation is taken from the batch (``s.capacity``) for the load key,
       but nothing is refused: use late binding (the default) with tiers.
    2. **Pools, spill**: the tier's own pool first; the shared pool only when
       no server of its pool fits (and ``spill`` is on); never another named pool.
    3. **Choice within a pool**: ``routing="predictive"``: the lowest
       ``(s.model.e2e(prompt_tokens or 0, output_tokens, s.load), s.load, s.order)``;
       ``routing="load"``: the lowest ``(s.load / limit(t, s), s.order)``
       (exact: compared as integers).  No server fits: ``None`` (the router
       raises NoCapacityError; the path queues the request).
    4. **Index**: one :class:`~solution.core.routing.HeapIndex` per (tier,
       pool, latency model), holding the servers where the tier fits
       (predictive: keyed by load; load: keyed by the exact ratio, one model
       slot).  A decision reads each heap's best: O(P K log S) amortized for
       P pools (<= 2) and K latency models; a server's change re-keys it in
       each tier that may use its pool: O(T log S).  Never a scan.

    Raises:
        TypeError: ``table`` is not a TierTable.
        UnknownTierError (from choose / fits): a request names an unknown tier;
        the router records nothing.
    """

    name = "tier routing"
    components = ("pool rank", "expected seconds or load share", "load")

    def __init__(self, table: TierTable) -> None:
        # TODO: validate the table; keep it as self.table; an empty index dict (tier, pool) -> {model or None: HeapIndex}
        raise NotImplementedError("Stage 6: TierRouting.__init__ is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def attach(self, router: Router) -> None:
        """Bind to ``router`` (a strategy serves one router).  O(1)."""
        super().attach(router)

    def server_added(self, server: ServerState) -> None:
        """Index the new server for every tier that may use its pool.  O(T log S)."""
        self.server_changed(server)

    def server_changed(self, server: ServerState) -> None:
        """Re-key the server in each tier's heap for its pool (dropped where the tier does not fit).  O(T log S)."""
        # TODO: for each tier that may use server.pool: its heap for (tier, pool, model or None); update with fits-for-the-tier
        raise NotImplementedError("Stage 6: TierRouting.server_changed is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def server_removed(self, server: ServerState) -> None:
        """Forget the server in every heap that held it.  O(T)."""
        # TODO: remove it from each tier's heap for its pool
        raise NotImplementedError("Stage 6: TierRouting.server_removed is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def choose(self, request: Request) -> ServerState | None:
        """The server for ``request`` by its tier's rule (rules 2 and 3), or ``None``.  O(P K log S).

        Raises: UnknownTierError: the request's tier is not in the table.
        """
        # TODO: the tier; for each of its pools in order: the best of each heap (big ones only for a large request), compared by the tier's key; the first pool with one wins
        raise NotImplementedError("Stage 6: TierRouting.choose is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def fits(self, server: ServerState, request: Request) -> bool:
        """Whether ``request`` may run on ``server`` now (rule 1).  O(1).

        Raises: UnknownTierError: unknown tier.
        """
        # TODO: the tier's pools contain server.pool, big enough, and the tier fits
        raise NotImplementedError("Stage 6: TierRouting.fits is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def may_use(self, server: ServerState, request: Request) -> bool:
        """Whether the request's tier may ever run on ``server``: one of its pools, not draining, weight
        above 0, big enough (load ignored: what a preemption victim's server must satisfy).  O(1)."""
        # TODO: pool, draining, weight, size
        raise NotImplementedError("Stage 6: TierRouting.may_use is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def tier_limit(self, server: ServerState, request: Request) -> float:
        """``limit(t, s)`` for the request's tier on ``server``: the requests of that tier it may hold.  O(1)."""
        # TODO: the table's limit from the router's limit and the nominal capacity
        raise NotImplementedError("Stage 6: TierRouting.tier_limit is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def waiting_class(self, request: Request) -> int:
        """The queue class a waiting request of this tier gets (larger is served first).  O(1)."""
        # TODO: the tier's queue_class
        raise NotImplementedError("Stage 6: TierRouting.waiting_class is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def score(self, server: ServerState, request: Request) -> tuple[float, ...]:
        """``(pool rank, expected seconds or load share, load)`` for the request's tier (smaller is better).  O(1)."""
        row = self.table.tier(request.tier)
        rank = float(row.pools.index(server.pool)) if server.pool in row.pools else math.inf
        if row.routing == "predictive":
            return (rank, server.model.e2e(request.prompt_tokens or 0, request.output_tokens, server.load), float(server.load))
        limit = self.tier_limit(server, request)
        if limit == math.inf:  # an unbounded queue: the share of the batch
            limit = self.table.limit(row.name, server.capacity, server.nominal_capacity)
        share = server.load / limit if limit > 0 else math.inf
        return (rank, share, float(server.load))

    def explain(self, request: Request) -> Decision:
        """Each server the tier could use now, scored best first; the others with the reason.  O(S log S); changes nothing."""
        row = self.table.tier(request.tier)
        chosen = self.choose(request)
        considered = [s for s in self.router.routable_servers() if self.fits(s, request)]
        ranked = sorted(considered, key=lambda s: (self.score(s, request), s.order))
        if chosen is not None and chosen in ranked:
            ranked.remove(chosen)
            ranked.insert(0, chosen)
        names = ("pool rank", "expected seconds" if row.routing == "predictive" else "load share", "load")
        scored = tuple(Scored(s.server_id, tuple(zip(names, self.score(s, request))), s.pool) for s in ranked)
        excluded = []
        for sid, why in self.router.excluded(request, {s.server_id for s in considered}):
            s = self.router.server(sid)
            if s.pool not in row.pools:
                why = f"pool {s.pool!r} is not tier {row.name!r}'s"
            elif self.router.eligible(s, request):
                why = f"full for {row.name!r} (load {s.load} >= its limit {self.tier_limit(s, request):g}: the rest is reserved)"
            excluded.append((sid, why))
        if chosen is None:
            why = f"no server of {list(row.pools)} has a slot for tier {row.name!r}"
        elif len(scored) == 1:
            why = "the only candidate"
        else:
            a, b = scored[0], scored[1]
            why = next((f"lowest {n} ({x:.4g} against {y:.4g} for {b.server_id})" for (n, x), (_, y) in zip(a.components, b.components)
                        if x != y), f"tie on every component: added earlier than {b.server_id}")  # fmt: skip
        return Decision(f"{self.name} ({row.name}: {row.routing})", request, None if chosen is None else chosen.server_id,
                        scored, tuple(excluded), why)  # fmt: skip


class Preemptor:
    """Which running request gives way to a request that finds no slot, and how often one may.

    The request path tells it what runs where (:meth:`started`,
    :meth:`stopped`), asks :meth:`victim` when a request of a tier that may
    preempt finds no server, and records the pause with :meth:`preempt`.

    Rules (each is graded):

    1. **Who may preempt**: only a request whose tier has ``may_preempt``;
       for any other :meth:`victim` is ``None``.
    2. **Who may be preempted**: a running request of a ``preemptible`` tier
       of a strictly **lower** queue class than the requester's, preempted
       fewer than ``max_preemptions`` times so far (the starvation bound:
       after that it runs to the end), on a server for which
       ``usable(server_id)`` is true (the caller's test: the requester's pools,
       not draining, weight above 0, big enough; ``TierRouting.may_use``).
    3. **Which one**: the **newest**, the most recently started (vLLM's
       choice: it has done the least work).  :meth:`victim` only looks;
       :meth:`preempt` records it: its count goes up by one, it stops
       running (its attempt leaves the server), and it goes back to the front
       of its tier's waiting line (the path's part).  On its next
       :meth:`started` it is newest again.
    4. **Counted**: :meth:`preemptions` per request (kept until :meth:`forget`),
       ``stats()["preempted"]`` in total.

    ``mode`` is how the victim pays on resume (:data:`PREEMPT_MODES`):
    ``"recompute"`` (prefill its prompt and the tokens it generated again, on
    any server) or ``"swap"`` (KV bytes out and back over PCIe; same server).

    Costs: :meth:`started`, :meth:`stopped`, :meth:`preempt`, :meth:`forget`
    O(1); :meth:`victim` walks the preemptible running requests from the
    newest: O(1) typically, O(k) when the k newest are on servers the
    requester may not use (one index in start order: the preemptor does not
    know the servers' pools, the ``usable`` test does).

    Raises:
        TypeError / ValueError: ``table`` not a TierTable, ``max_preemptions``
        not an int >= 0 (0: never preempt), ``mode`` not one of PREEMPT_MODES.
    """

    def __init__(self, table: TierTable, *, max_preemptions: int = 2, mode: str = "recompute") -> None:
        # TODO: validate; keep table, max_preemptions, mode; running: request id -> server; an ordered dict of the preemptible running ones (start order) with their class; counts per request; the total
        raise NotImplementedError("Stage 6: Preemptor.__init__ is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    @property
    def max_preemptions(self) -> int:
        """How often one request may be preempted (then it runs to the end)."""
        # TODO: as given
        raise NotImplementedError("Stage 6: Preemptor.max_preemptions is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    @property
    def mode(self) -> str:
        """``"recompute"`` or ``"swap"``: how a victim pays on resume."""
        # TODO: as given
        raise NotImplementedError("Stage 6: Preemptor.mode is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def started(self, request: Request, server_id: str) -> None:
        """``request`` started (or resumed) on ``server_id``; it becomes the newest.  O(1).

        Raises: TypeError / ValueError (bad arguments), UnknownTierError,
        DuplicateRequestError (a ValueError): it is already running (call :meth:`stopped` first).
        """
        # TODO: validate; refuse a second start; record where; index it (at the end) if its tier is preemptible and it is under the bound
        raise NotImplementedError("Stage 6: Preemptor.started is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def stopped(self, request_id: str) -> bool:
        """The request's attempt left its server (completed, failed, abandoned, re-sent); its count is kept.
        True if it was running; an id not running is a no-op (False), so a driver may call it for every
        attempt's end.  O(1).

        Raises: TypeError / ValueError: a bad id.
        """
        # TODO: validate; pop it from both maps; say whether it was there
        raise NotImplementedError("Stage 6: Preemptor.stopped is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def forget(self, request_id: str) -> bool:
        """The request ended for good: drop everything about it (running or not).  True if anything was held.  O(1)."""
        # TODO: validate; pop it everywhere
        raise NotImplementedError("Stage 6: Preemptor.forget is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def victim(self, request: Request, usable: Callable[[str], bool]) -> tuple[str, str] | None:
        """``(request id, server id)`` of the request to pause for ``request``, or ``None`` (rules 1-3).  Changes nothing.

        O(1) typically, O(k) for k skipped (unusable servers, classes not below the requester's).

        Raises: TypeError: not a Request, ``usable`` not callable; UnknownTierError.
        """
        # TODO: validate; the requester's tier must may_preempt; walk the candidates from the newest: lower class and usable(server) -> it
        raise NotImplementedError("Stage 6: Preemptor.victim is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def preempt(self, request_id: str) -> int:
        """Record that ``request_id`` was paused: it stops running, its count goes up by one; returns the count.  O(1).

        Raises: UnknownRequestError (a KeyError): it is not running;
        RequestStateError (a ValueError): it is not preemptible (its tier, or it reached ``max_preemptions``).
        """
        # TODO: validate; must be running and a candidate; pop it; count
        raise NotImplementedError("Stage 6: Preemptor.preempt is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def preemptions(self, request_id: str) -> int:
        """How many times ``request_id`` was preempted (0 if never or forgotten).  O(1)."""
        # TODO: the count
        raise NotImplementedError("Stage 6: Preemptor.preemptions is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def running(self) -> int:
        """Requests it knows to be running.  O(1)."""
        # TODO: how many are running
        raise NotImplementedError("Stage 6: Preemptor.running is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")

    def stats(self) -> dict[str, int]:
        """``preempted`` (total), ``running``, ``preemptible`` (running and still under the bound),
        ``exhausted`` (requests held that reached the bound).  A fresh dict; O(R) for the last."""
        # TODO: the counters
        raise NotImplementedError("Stage 6: Preemptor.stats is not implemented yet; see notebooks/06_priorities_and_tiers.ipynb")


