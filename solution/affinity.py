"""Stage 5: session affinity and KV-cache-aware routing for multi-turn conversations.

Turn 5 of a conversation resends turns 1-4.  On the server that holds their KV
cache the prefill of those tokens is skipped; anywhere else the GPU computes
it again.  Affinity buys cache hits and costs balance.  Four pieces, each a
routing strategy for the stage-3 ``Router`` (or a part of one), so they
compose with the queue (stage 2) and health checks (stage 4) through the one
request path:

* :class:`SessionTable`: ``session_id -> server_id`` with an idle TTL and a
  size bound (least recently used evicted).  Amortized O(1) per call; expiry
  pops from the front of a use-ordered dict, never scans.
* :class:`SessionAffinity`: wraps an inner strategy; hard or soft affinity
  (:class:`~solution.core.affinity_types.AffinityPolicy`); a sticky server
  that is removed, draining, down or too small is left and the session
  re-mapped, each re-map counted by its reason.
* :class:`BoundedLoadHash`: consistent hashing with bounded loads (Mirrokni,
  Thorup and Zadimoghaddam, SODA 2018): no table, the same answer in every
  balancer replica and after a restart, no server above
  ``ceil((1 + epsilon) * (L + 1) / n)`` requests.
* :class:`PrefixAware`: routes to the server that holds the longest prefix
  of the prompt's blocks (an approximate, bounded per-server index updated
  from routing decisions) unless it is too loaded (SGLang's cache-aware
  router, llm-d's prefix scorer).

"Unavailable" is what the router says (``router.available``,
``server.draining``, ``server.weight``, ``router.eligible``): these classes
never keep their own copy of health.  Hashes are ``blake2b`` (64 bits), the
same in every process.

Where ``solution`` is replaced by ``exercises`` (the generated exercise), the
marked bodies are the candidate's; the support types come from
``solution.core.affinity_types`` and the errors from ``solution.core.errors``
on both sides.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from solution.core.affinity_types import AffinityPolicy, RemapReason, require_slack, stable_hash64
from solution.core.errors import TimeWentBackwardsError, UnknownServerError
from solution.core.health_types import require_time
from solution.core.request import Request
from solution.core.routing import BaseStrategy, Decision, Router, Scored, ServerState, Strategy, StrategyInUseError, require_positive
from solution.core.validate import require_id, require_int

__all__ = ["SessionTable", "SessionAffinity", "BoundedLoadHash", "PrefixAware"]


class SessionTable:
    """``session_id -> server_id`` with an idle TTL (refreshed on each use) and a bound on its size.

    Rules (each is graded):

    1. **Time**: every method that takes ``now`` (seconds, a finite number)
       raises :class:`~solution.core.errors.TimeWentBackwardsError` (a
       ``ValueError``) when ``now`` is earlier than a ``now`` the table already
       saw; nothing changes then.
    2. **Idle TTL**: a session used (``get`` hit or ``assign``) at time ``t``
       expires at ``t + ttl``: at any ``now >= t + ttl`` it is gone.  Each use
       moves the deadline to ``now + ttl``.
    3. **Expiry first**: ``get``, ``assign`` and ``expire`` first drop every
       session expired at ``now`` (counted in ``stats()["expired"]``).
       Sessions are kept in order of last use, so the expired ones are at the
       front: popping them is amortized O(1) per call, never a scan.
       ``peek`` and ``expires_at`` only read: an expired session reads as
       absent but is dropped by the next ``get``/``assign``/``expire``.
    4. **get**: a live session's server, its deadline refreshed and the
       session moved to the back (most recently used), ``hits`` + 1; an absent
       (or just expired) one: ``None``, ``misses`` + 1.
    5. **assign**: insert the session, or re-map it (``remapped`` + 1 when the
       server differs); either way it becomes the most recently used with
       deadline ``now + ttl``.  Inserting a new session into a full table
       (``len == max_sessions`` after expiry) first evicts the least recently
       used session (``evicted`` + 1): the documented eviction rule, LRU, as
       Envoy's and NGINX's sticky tables do.
    6. **forget** drops one session (True if it was there); **forget_server**
       drops every session on a server, in O(k) for its k sessions (a
       reverse index server -> sessions is kept in step).  Neither is counted.
    7. ``len(table)`` and ``session_id in table`` count the sessions held
       (not yet dropped); ``stats()`` returns ``sessions``, ``hits``,
       ``misses``, ``expired``, ``evicted``, ``remapped``.

    Bad input raises before anything changes: ``TypeError`` (a non-str id, a
    non-number ``now``, a ``bool``), ``ValueError`` (an empty id, a NaN or
    infinite ``now``, time going back).

    **Cost**: O(1) amortized per call (dict and OrderedDict operations, plus
    the expired entries popped, each once); O(n) memory for n sessions.

    Args:
        ttl: idle time-to-live in seconds, finite and > 0 (default 600).
        max_sessions: the size bound, an int >= 1 (default 100,000).

    Raises:
        TypeError / ValueError: a bad ``ttl`` or ``max_sessions``.
    """

    def __init__(self, ttl: float = 600.0, max_sessions: int = 100_000) -> None:
        ### BEGIN SOLUTION: validate ttl (finite > 0, not bool) and max_sessions (int >= 1); keep them as self._ttl and self._max (the properties read them); an OrderedDict session -> [server, deadline], a reverse index server -> sessions, the last now, the counters
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
            raise TypeError(f"ttl must be a number of seconds, got {type(ttl).__name__} {ttl!r}")
        if not math.isfinite(ttl) or ttl <= 0:
            raise ValueError(f"ttl must be a finite number of seconds > 0, got {ttl!r}")
        self._max = require_int(max_sessions, "max_sessions")
        self._ttl = float(ttl)
        self._entries: OrderedDict[str, list[Any]] = OrderedDict()  # session -> [server_id, deadline], least recently used first
        self._by_server: dict[str, dict[str, None]] = {}  # server_id -> its sessions (an ordered set)
        self._now = -math.inf  # the latest now seen
        self._hits = self._misses = self._expired = self._evicted = self._remapped = 0
        ### END SOLUTION

    @property
    def ttl(self) -> float:
        """The idle time-to-live in seconds."""
        return self._ttl

    @property
    def max_sessions(self) -> int:
        """The size bound."""
        return self._max

    def get(self, session_id: str, now: float) -> str | None:
        """The session's server, refreshing its idle TTL (rule 4); ``None`` when absent or expired.  Amortized O(1)."""
        ### BEGIN SOLUTION: validate, check the time, drop the expired front, then hit (refresh, move to end) or miss
        require_id(session_id, "session_id")
        self._now = now = self._time(now)
        self._drop_expired(now)
        entry = self._entries.get(session_id)
        if entry is None:
            self._misses += 1
            return None
        entry[1] = now + self._ttl
        self._entries.move_to_end(session_id)
        self._hits += 1
        return entry[0]
        ### END SOLUTION

    def peek(self, session_id: str, now: float) -> str | None:
        """The session's server if it is live at ``now``, else ``None``; changes nothing (no refresh, no counters).  O(1)."""
        ### BEGIN SOLUTION: validate, check the time (without recording it), read the entry and its deadline
        require_id(session_id, "session_id")
        now = self._time(now)
        entry = self._entries.get(session_id)
        return None if entry is None or entry[1] <= now else entry[0]
        ### END SOLUTION

    def expires_at(self, session_id: str) -> float | None:
        """When the session expires (its last use plus ``ttl``), or ``None`` if it is not held.  O(1)."""
        ### BEGIN SOLUTION: the entry's deadline
        require_id(session_id, "session_id")
        entry = self._entries.get(session_id)
        return None if entry is None else entry[1]
        ### END SOLUTION

    def assign(self, session_id: str, server_id: str, now: float) -> None:
        """Map the session to ``server_id`` (insert or re-map), most recently used, deadline ``now + ttl`` (rule 5).

        A new session in a full table evicts the least recently used first.  Amortized O(1).
        """
        ### BEGIN SOLUTION: validate both ids and now; drop the expired front; re-map (count if the server differs) or evict-then-insert; keep the reverse index
        require_id(session_id, "session_id")
        require_id(server_id, "server_id")
        self._now = now = self._time(now)
        self._drop_expired(now)
        entry = self._entries.get(session_id)
        if entry is not None:
            if entry[0] != server_id:
                self._remapped += 1
                self._unindex(session_id, entry[0])
                self._by_server.setdefault(server_id, {})[session_id] = None
                entry[0] = server_id
            entry[1] = now + self._ttl
            self._entries.move_to_end(session_id)
            return
        if len(self._entries) >= self._max:
            old, (old_server, _) = self._entries.popitem(last=False)
            self._unindex(old, old_server)
            self._evicted += 1
        self._entries[session_id] = [server_id, now + self._ttl]
        self._by_server.setdefault(server_id, {})[session_id] = None
        ### END SOLUTION

    def forget(self, session_id: str) -> bool:
        """Drop the session; True if it was held.  O(1)."""
        ### BEGIN SOLUTION: pop it and its reverse-index entry
        require_id(session_id, "session_id")
        entry = self._entries.pop(session_id, None)
        if entry is None:
            return False
        self._unindex(session_id, entry[0])
        return True
        ### END SOLUTION

    def forget_server(self, server_id: str) -> int:
        """Drop every session mapped to ``server_id``; return how many.  O(k) for its k sessions (reverse index)."""
        ### BEGIN SOLUTION: pop the server's set from the reverse index and each of its sessions
        require_id(server_id, "server_id")
        held = self._by_server.pop(server_id, {})
        for session_id in held:
            del self._entries[session_id]
        return len(held)
        ### END SOLUTION

    def expire(self, now: float) -> int:
        """Drop every session expired at ``now`` (rule 2); return how many.  Amortized O(1) per dropped session."""
        ### BEGIN SOLUTION: validate now, check the time, pop from the front while the deadline <= now
        self._now = now = self._time(now)
        return self._drop_expired(now)
        ### END SOLUTION

    def sessions(self) -> Mapping[str, str]:
        """A read-only live view ``session_id -> server_id`` (least recently used first).  O(1) to build."""
        return _SessionsView(self)

    def servers(self) -> dict[str, int]:
        """Sessions per server (from the reverse index).  O(S)."""
        ### BEGIN SOLUTION: the size of each server's set
        return {server_id: len(held) for server_id, held in self._by_server.items()}
        ### END SOLUTION

    def __len__(self) -> int:
        ### BEGIN SOLUTION: the number of sessions held
        return len(self._entries)
        ### END SOLUTION

    def __contains__(self, session_id: object) -> bool:
        ### BEGIN SOLUTION: held (not yet dropped)
        return isinstance(session_id, str) and session_id in self._entries
        ### END SOLUTION

    def stats(self) -> dict[str, int]:
        """``sessions``, ``hits``, ``misses``, ``expired``, ``evicted``, ``remapped`` (rule 7).  O(1)."""
        ### BEGIN SOLUTION: a fresh dict of the counters
        return {"sessions": len(self._entries), "hits": self._hits, "misses": self._misses, "expired": self._expired,
                "evicted": self._evicted, "remapped": self._remapped}  # fmt: skip
        ### END SOLUTION

    def _server_of(self, session_id: str) -> str | None:
        """The server a held session maps to (no time check): the read-only view's lookup."""
        ### BEGIN SOLUTION: read the entry
        entry = self._entries.get(session_id)
        return None if entry is None else entry[0]
        ### END SOLUTION

    def _ids(self) -> Iterator[str]:
        """The held session ids, least recently used first: the read-only view's iteration."""
        ### BEGIN SOLUTION: iterate the ordered dict
        return iter(list(self._entries))
        ### END SOLUTION

    ### BEGIN OMIT
    # --- private helpers (the reference's) ---------------------------------------------------------

    def _time(self, now: object) -> float:
        """``now`` as a float, refusing time that goes back (rule 1); records nothing."""
        now = require_time(now)
        if now < self._now:
            raise TimeWentBackwardsError(f"now={now} is earlier than {self._now}, a time this SessionTable already saw; "
                                         "pass the current time of one monotonic clock to every call")  # fmt: skip
        return now

    def _drop_expired(self, now: float) -> int:
        """Pop the sessions expired at ``now`` from the front (least recently used first).  Amortized O(1) each."""
        entries, dropped = self._entries, 0
        while entries:
            session_id, (server_id, deadline) = next(iter(entries.items()))
            if deadline > now:
                break
            del entries[session_id]
            self._unindex(session_id, server_id)
            dropped += 1
        self._expired += dropped
        return dropped

    def _unindex(self, session_id: str, server_id: str) -> None:
        held = self._by_server[server_id]
        del held[session_id]
        if not held:
            del self._by_server[server_id]

    ### END OMIT


class _SessionsView(Mapping[str, str]):
    """A read-only view of a :class:`SessionTable`: ``session_id -> server_id``."""

    __slots__ = ("_table",)

    def __init__(self, table: SessionTable) -> None:
        self._table = table

    def __getitem__(self, session_id: str) -> str:
        server = self._table._server_of(session_id) if isinstance(session_id, str) else None
        if server is None:
            raise KeyError(session_id)
        return server

    def __iter__(self) -> Iterator[str]:
        return self._table._ids()

    def __len__(self) -> int:
        return len(self._table)


class SessionAffinity(BaseStrategy):
    """Keep each conversation on the server that holds its KV cache: a strategy wrapping an inner strategy.

    ``Router(SessionAffinity(LeastConnections(), AffinityPolicy("soft", slack=0.25), clock=clock))``.
    The clock (a zero-argument callable returning seconds; the simulator's
    virtual clock, ``time.monotonic``, or a ``ManualClock`` in tests) is read
    once per decision.  Every hook (``attach``, ``server_added``,
    ``server_changed``, ``server_removed``, ``observe``) is forwarded to the
    inner strategy, which therefore keeps its index as if it routed alone.

    Rules, in the order a decision applies them (each is graded):

    1. **No session**: ``request.session_id is None`` -> the inner strategy
       decides; nothing is recorded (``no_session`` + 1).
    2. **New or expired session**: the table has no live mapping -> the inner
       strategy decides and the session is mapped to its pick
       (``new_sessions`` + 1).  A ``None`` pick records nothing.
    3. **Sticky server unusable** (``unavailable_reason``, checked in this
       order): not in the router any more (``"removed"``), draining
       (``"draining"``), health weight 0 (``"down"``), cannot take this
       request because it is large and the server small (``"memory"``) ->
       in *both* modes the inner strategy decides and the session is
       re-mapped to its pick, counted in ``remaps[reason]``.
    4. **Sticky server full** (no free slot: load at its limit, or a half-open
       trial limit reached; ``"full"``): *hard* -> ``None`` (the router raises
       ``NoCapacityError``: the request waits in the queue or gets a 503), the
       mapping kept, ``hard_waits`` + 1, and the inner strategy is not asked;
       *soft* -> the inner strategy decides and the session is re-mapped
       (``remaps["full"]``).
    5. **Sticky server usable**: *hard* -> it serves the request (the inner
       strategy is not asked); *soft* -> the inner strategy is asked once
       (its ``choose``, as if it routed alone); the sticky server serves the
       request when ``sticky.load / sticky.capacity <= pick.load /
       pick.capacity + slack`` (floats, capacity the effective one after
       health weights; also when the pick is ``None`` or the sticky server
       itself); otherwise the pick serves it and the session is re-mapped to
       it (``remaps["imbalance"]``): the pick now holds the newest turns, so
       it is the better cache for the next one.  ``slack = inf`` keeps the
       session while its server has a free slot.
    6. **Counters**: every decision served by the sticky server is a sticky
       hit (``sticky_hits`` + 1) and refreshes the session's TTL (so does a
       hard wait); every re-map adds the request's ``prompt_tokens`` (0 when
       unknown) to ``recompute_tokens``: the prefill its new server computes
       again instead of reading it from cache (the cost of the fallback).
       A decision that returns ``None`` changes no mapping and none of these
       counters except ``hard_waits`` (the table's own ``get`` still counts a
       hit or a miss and refreshes a live session's TTL: a waiting session
       is in use).
    7. **pin(session_id, server_id, now)** maps a session by hand;
       ``UnknownServerError`` (a ``KeyError``) when the server is not in the
       router.  ``sessions()`` is a read-only view; ``stats()`` returns
       ``no_session``, ``new_sessions``, ``sticky_hits``, ``hard_waits``,
       ``remaps`` (a dict over every reason of
       :class:`~solution.core.affinity_types.RemapReason`), ``remapped`` (their
       sum), ``recompute_tokens``, ``pinned`` and the table's ``sessions``,
       ``expired``, ``evicted``.

    A server id names a server: a session whose server was removed and later
    added again under the same id goes back to it (forget it with
    ``table.forget_server`` when the new server's cache is empty).

    **Cost**: O(1) amortized for the table plus at most one inner decision
    (O(log S) for an indexed inner strategy such as least-connections): no
    scan of the sessions or of the servers per request.

    Args:
        inner: the strategy that decides for new sessions and fallbacks
            (its own object: it is attached to the same router).
        policy: an :class:`~solution.core.affinity_types.AffinityPolicy`
            (default: soft, slack 0.25, TTL 600 s, 100,000 sessions).
        clock: a zero-argument callable returning the current time in seconds (required).
        table: a :class:`SessionTable` to use as is (its own TTL and bound);
            default ``SessionTable(policy.ttl, policy.max_sessions)``.

    Raises:
        TypeError: ``inner`` not a strategy, ``policy`` not an AffinityPolicy,
            ``clock`` not callable, ``table`` not a SessionTable.
    """

    components = ("sticky", "load ratio")

    def __init__(self, inner: Strategy, policy: AffinityPolicy | None = None, *, clock: Callable[[], float],
                 table: SessionTable | None = None) -> None:  # fmt: skip
        ### BEGIN SOLUTION: validate the four arguments; keep them as self.inner, self.policy, self.clock, self.table (explain reads them; the table built from the policy when none is given); zero the counters
        if isinstance(inner, type) or not isinstance(inner, Strategy):
            raise TypeError(f"inner must be a strategy object (e.g. LeastConnections()), got {inner!r}")
        if policy is not None and not isinstance(policy, AffinityPolicy):
            raise TypeError(f"policy must be an AffinityPolicy or None, got {type(policy).__name__}")
        if not callable(clock):
            raise TypeError(f"clock must be a zero-argument callable returning seconds (time.monotonic, a ManualClock), got {clock!r}")
        if table is not None and not isinstance(table, SessionTable):
            raise TypeError(f"table must be a SessionTable or None, got {type(table).__name__}")
        self.inner = inner
        self.policy = policy if policy is not None else AffinityPolicy()
        self.clock = clock
        self.table = table if table is not None else SessionTable(self.policy.ttl, self.policy.max_sessions)
        self._hard = self.policy.hard
        self._slack = self.policy.slack
        self._no_session = self._new = self._sticky = self._waits = self._pinned = self._recompute = 0
        self._remaps = dict.fromkeys(RemapReason.ALL, 0)
        ### END SOLUTION

    @property
    def name(self) -> str:  # type: ignore[override]
        """``"<mode> affinity over <inner name>"``."""
        return f"{self.policy.mode} affinity over {getattr(self.inner, 'name', type(self.inner).__name__)}"

    # --- hooks: forwarded ---------------------------------------------------------------------

    def attach(self, router: Router) -> None:
        """Bind to ``router`` and attach the inner strategy to it too (both or neither)."""
        ### BEGIN SOLUTION: refuse if either serves another router (StrategyInUseError), then attach both
        _attach_pair(self, self.inner, router)
        ### END SOLUTION

    def server_added(self, server: ServerState) -> None:
        self.inner.server_added(server)

    def server_changed(self, server: ServerState) -> None:
        self.inner.server_changed(server)

    def server_removed(self, server: ServerState) -> None:
        self.inner.server_removed(server)

    def observe(self, server: ServerState, seconds_per_token: float) -> None:
        self.inner.observe(server, seconds_per_token)

    # --- decisions -------------------------------------------------------------------------------

    def unavailable_reason(self, server_id: str, request: Request) -> str | None:
        """Why ``server_id`` cannot serve ``request`` now, or ``None`` when it can (rules 3 and 4).  O(1).

        The first that applies: ``"removed"`` (not in the router), ``"draining"``,
        ``"down"`` (weight 0), ``"memory"`` (a large request on a small
        server), ``"full"`` (the router's ``available`` is False: no free slot
        or a trial limit reached).
        """
        ### BEGIN SOLUTION: ask the router (in, server(), draining, weight, is_large/big, available), in that order
        require_id(server_id, "server_id")
        if not isinstance(request, Request):
            raise TypeError(f"request must be a Request, got {type(request).__name__}")
        router = self.router
        if server_id not in router:
            return RemapReason.REMOVED
        s = router.server(server_id)
        if s.draining:
            return RemapReason.DRAINING
        if s.weight == 0.0:
            return RemapReason.DOWN
        if not s.big and router.is_large(request):
            return RemapReason.MEMORY
        if not router.available(s):
            return RemapReason.FULL
        return None
        ### END SOLUTION

    def choose(self, request: Request) -> ServerState | None:
        """The server for ``request`` by rules 1-6, and the table updated.  O(1) amortized + one inner decision."""
        ### BEGIN SOLUTION: no session -> inner; read the clock once; table.get; new -> inner + assign; classify the sticky server; hard/soft as the rules say; count
        session_id = request.session_id
        if session_id is None:
            self._no_session += 1
            return self.inner.choose(request)
        now = self.clock()
        sticky_id = self.table.get(session_id, now)
        if sticky_id is None:
            pick = self.inner.choose(request)
            if pick is not None:
                self.table.assign(session_id, pick.server_id, now)
                self._new += 1
            return pick
        reason = self.unavailable_reason(sticky_id, request)
        if reason is None:
            sticky = self.router.server(sticky_id)
            if self._hard:
                self._sticky += 1
                return sticky
            pick = self.inner.choose(request)
            if pick is None or pick is sticky or sticky.load / sticky.capacity <= pick.load / pick.capacity + self._slack:
                self._sticky += 1
                return sticky
            reason = RemapReason.IMBALANCE
        elif reason == RemapReason.FULL and self._hard:
            self._waits += 1
            return None
        else:
            pick = self.inner.choose(request)
            if pick is None:
                return None
        self.table.assign(session_id, pick.server_id, now)
        self._remaps[reason] += 1
        self._recompute += request.prompt_tokens or 0
        return pick
        ### END SOLUTION

    def pin(self, session_id: str, server_id: str, now: float) -> None:
        """Map ``session_id`` to ``server_id`` by hand (``pinned`` + 1).  O(1) amortized.

        Raises:
            TypeError / ValueError: bad ids or ``now`` (time going back included).
            UnknownServerError (a KeyError): the server is not in the router.
        """
        ### BEGIN SOLUTION: validate, look the server up in the router, assign in the table, count
        self.table.peek(session_id, now)  # validates both (and the time) before anything changes
        require_id(server_id, "server_id")
        if getattr(self, "router", None) is None:
            raise RuntimeError("this SessionAffinity is not attached to a Router yet: create the Router with it first")
        if server_id not in self.router:
            raise UnknownServerError(f"server {server_id!r} is not present; pin a session to a server the router has (get_server_stats() lists them)")
        self.table.assign(session_id, server_id, now)
        self._pinned += 1
        ### END SOLUTION

    def sessions(self) -> Mapping[str, str]:
        """A read-only view of the session table: ``session_id -> server_id``."""
        return self.table.sessions()

    def waiting_for(self, request: Request) -> str | None:
        """The one server ``request`` waits for, or ``None``: hard affinity whose live sticky server is full (rule 4).

        The request path parks such a request in that server's own line, so
        it waits without blocking the queue behind it (no head-of-line
        blocking).  Changes nothing (``table.peek``).  O(1).
        """
        if not self.policy.hard or request.session_id is None:
            return None
        sticky = self.table.peek(request.session_id, self.clock())
        if sticky is None or self.unavailable_reason(sticky, request) != RemapReason.FULL:
            return None
        return sticky

    def stats(self) -> dict[str, Any]:
        """The counters of rule 7 (a fresh dict).  O(1)."""
        ### BEGIN SOLUTION: the decision counters, the re-maps by reason and their sum, and the table's sessions / expired / evicted
        table = self.table.stats()
        return {"no_session": self._no_session, "new_sessions": self._new, "sticky_hits": self._sticky,
                "hard_waits": self._waits, "remaps": dict(self._remaps), "remapped": sum(self._remaps.values()),
                "recompute_tokens": self._recompute, "pinned": self._pinned, "sessions": table["sessions"],
                "expired": table["expired"], "evicted": table["evicted"]}  # fmt: skip
        ### END SOLUTION

    def peek(self, request: Request) -> ServerState | None:
        """Not supported: a decision updates the table; use :meth:`explain`, which changes nothing."""
        raise TypeError("SessionAffinity has no side-effect-free choose; Router.explain(request) shows a decision without making it")

    def explain(self, request: Request) -> Decision:
        """What the next decision would do with ``request`` and why; changes nothing (no table update).  O(S log S).

        The inner strategy's explanation, with the sticky server first (note
        ``"sticky"``) and ``decided_by`` naming the rule that applies.
        """
        inner = self.inner.explain(request)
        sid = request.session_id
        if sid is None:
            return _relabel(inner, self.name, inner.chosen, "no session: the inner strategy decides")
        sticky = self.table.peek(sid, self.clock())
        if sticky is None:
            return _relabel(inner, self.name, inner.chosen, f"new session {sid!r}: the inner strategy decides and the session is mapped")
        reason = self.unavailable_reason(sticky, request)
        if reason == RemapReason.FULL and self.policy.hard:
            return _relabel(inner, self.name, None, f"hard affinity: sticky server {sticky!r} is full; the request waits", sticky)
        if reason is not None:
            return _relabel(inner, self.name, inner.chosen, f"sticky server {sticky!r} {reason}: the inner strategy decides, the session is re-mapped", sticky)
        if self.policy.hard:
            return _relabel(inner, self.name, sticky, f"hard affinity: sticky server {sticky!r}", sticky)
        s = self.router.server(sticky)
        pick = None if inner.chosen is None else self.router.server(inner.chosen)
        mine = s.load / s.capacity
        if pick is None or pick is s or mine <= pick.load / pick.capacity + self.policy.slack:
            return _relabel(inner, self.name, sticky, f"soft affinity: sticky server {sticky!r} at load ratio {mine:.3g}, within the slack", sticky)
        return _relabel(inner, self.name, pick.server_id, f"soft affinity: sticky server {sticky!r} at load ratio {mine:.3g} exceeds "
                        f"{pick.server_id!r}'s {pick.load / pick.capacity:.3g} + slack {self.policy.slack:g}: re-mapped", sticky)  # fmt: skip


### BEGIN OMIT
def _attach_pair(outer: BaseStrategy, inner: Strategy, router: Router) -> None:
    """Attach a wrapper and its inner strategy to ``router``: both or neither."""
    for obj in (outer, inner):
        bound = getattr(obj, "router", None)
        if bound is not None and bound is not router:
            raise StrategyInUseError(f"this {type(obj).__name__} already serves another Router; create one per router")
    outer.router = router
    inner.attach(router)


### END OMIT
def _relabel(inner: Decision, name: str, chosen: str | None, why: str, sticky: str | None = None) -> Decision:
    """An inner decision re-labelled: this strategy's name, its choice, the sticky server first with a note."""
    candidates = list(inner.candidates)
    for i, c in enumerate(candidates):
        if c.server_id == sticky:
            candidates.insert(0, Scored(c.server_id, c.components, "sticky"))
            del candidates[i + 1]
            break
    if chosen is not None and candidates and candidates[0].server_id != chosen:
        for i, c in enumerate(candidates):
            if c.server_id == chosen:
                candidates.insert(0, candidates.pop(i))
                break
    return Decision(name, inner.request, chosen, tuple(candidates), inner.excluded, why)


class BoundedLoadHash(BaseStrategy):
    """Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, SODA 2018): a strategy.

    Stateless about sessions: no table, so it survives a balancer restart and
    any number of balancer replicas agree on a key's server (given the same
    servers and loads).  The price: a key moves when its server is over the
    bound, and the ring, not the cache, decides.

    Rules (each is graded):

    1. **Ring**: each server present has ``vnodes`` points,
       ``stable_hash64(f"{seed}/{server_id}/{i}")`` for ``i in range(vnodes)``
       (blake2b, 64 bits), kept sorted by ``(point, server_id)``.  A server's
       points join when it is added and leave when the router forgets it
       (after its drain): only its keys move.
    2. **Key**: ``request.session_id``, else ``str(request.prefix_blocks[0])``
       (the first prefix block's hash), else ``request.request_id``; its point
       is ``stable_hash64(f"{seed}/{key}")``.
    3. **Bound**: ``math.ceil((1 + epsilon) * (L + 1) / n)`` with ``n`` the
       routable servers (not draining, weight > 0) and ``L`` the requests in
       flight on them (``server.load`` summed, kept up to date by the hooks
       in O(1), never summed per request).
    4. **Walk**: from the first ring point ``>= `` the key's point (wrapping
       past the largest to the smallest), clockwise, take the first server
       that can take the request (``router.eligible``) with ``load < bound``.
       Each server is examined once (later points of a server already
       examined are skipped); the walk stops when every server present has
       been examined: then ``None``.  When the router has no available server
       (or no available big-memory one for a large request), ``None`` at
       once, without walking (a count kept by the hooks).
    5. ``home(key)`` is the first server clockwise from the key's point,
       load and health ignored.  ``stats()``: ``decisions`` (a server
       chosen), ``refused`` (``None``), ``examined`` (servers examined by all
       decisions), ``spills`` (decisions that did not take the first server
       examined: the key's home was over the bound or could not take it).

    **Cost**: O(log(S V)) for the binary search plus the walk: an expected
    O(1/epsilon) servers examined while the bound binds (MTZ, Theorem 1),
    O(S V) points in the worst case (nearly every server at the bound).
    Hooks: O(1), except adding a server (O(V), its points merged into the
    sorted ring at the next decision, O(S V) once for all servers added
    since) and forgetting one (O(S V)).  Memory O(S V).

    Args:
        epsilon: the load bound's slack, finite > 0 (default 0.25).
        vnodes: points per server, an int >= 1 (default 100).
        seed: an int >= 0 mixed into every hash (default 0); two instances
            with the same seed and servers map keys alike.

    Raises:
        TypeError / ValueError: a bad argument.
    """

    name = "bounded-load hash"
    components = ("ring steps", "load")

    def __init__(self, epsilon: float = 0.25, vnodes: int = 100, *, seed: int = 0) -> None:
        ### BEGIN SOLUTION: validate (require_positive for epsilon, require_int for vnodes and seed) into self.epsilon, self.vnodes, self.seed; an empty ring, the servers by id, L, the available counts, the counters
        self.epsilon = require_positive(epsilon, "epsilon")
        self.vnodes = require_int(vnodes, "vnodes")
        self.seed = require_int(seed, "seed", minimum=0)
        self._ring: list[tuple[int, str]] = []  # (point, server_id), sorted
        self._joining: list[tuple[int, str]] = []  # points of servers added since the last merge
        self._keys: list[int] = []  # the ring's points alone (bisect on ints), and their servers
        self._owners: list[str] = []
        self._shift, self._starts = 63, [0, 0, 0]  # the bucket table over the points (see _reindex)
        self._servers: dict[str, ServerState] = {}
        self._seen: dict[str, tuple[int, int, int, int]] = {}  # server_id -> (load counted in L, routable, available, available and big)
        self._load = self._routable = self._available = self._available_big = 0
        self._decisions = self._refused = self._examined = self._spills = 0
        ### END SOLUTION

    def attach(self, router: Router) -> None:
        super().attach(router)

    def server_added(self, server: ServerState) -> None:
        """Compute its points (O(V)); they join the ring at the next decision or read (one merge, O(S V), for
        every server added since: adding a whole fleet costs one sort).  Then count it."""
        ### BEGIN SOLUTION: its vnodes points, to be merged into the sorted ring before the next walk; then the same bookkeeping as server_changed
        sid = server.server_id
        self._joining.extend((stable_hash64(f"{self.seed}/{sid}/{i}"), sid) for i in range(self.vnodes))
        self._servers[sid] = server
        self.server_changed(server)
        ### END SOLUTION

    def server_changed(self, server: ServerState) -> None:
        """Update ``L``, ``n`` and the available counts by this server's difference.  O(1)."""
        ### BEGIN SOLUTION: keep each server's last (routable load, available, big) and apply the difference
        routable = int(not server.draining and server.weight > 0.0)
        available = int(self.router.available(server))
        new = (server.load if routable else 0, routable, available, available & int(server.big))
        old = self._seen.get(server.server_id, (0, 0, 0, 0))
        self._seen[server.server_id] = new
        self._load += new[0] - old[0]
        self._routable += new[1] - old[1]
        self._available += new[2] - old[2]
        self._available_big += new[3] - old[3]
        ### END SOLUTION

    def server_removed(self, server: ServerState) -> None:
        """Take its points off the ring (O(S V)) and its share of the counts."""
        ### BEGIN SOLUTION: filter the ring, undo its contribution
        sid = server.server_id
        self._ring = [p for p in self._sorted_ring() if p[1] != sid]
        self._reindex()
        old = self._seen.pop(sid, (0, 0, 0, 0))
        self._load -= old[0]
        self._routable -= old[1]
        self._available -= old[2]
        self._available_big -= old[3]
        del self._servers[sid]
        ### END SOLUTION

    def key_of(self, request: Request) -> str:
        """The request's hash key (rule 2).  O(1)."""
        ### BEGIN SOLUTION: session id, else the first prefix block as a str, else the request id
        if request.session_id is not None:
            return request.session_id
        if request.prefix_blocks:
            return str(request.prefix_blocks[0])
        return request.request_id
        ### END SOLUTION

    def bound(self) -> int:
        """The current per-server bound of rule 3 (0 when no server is routable).  O(1)."""
        ### BEGIN SOLUTION: ceil((1 + epsilon) * (L + 1) / n)
        if self._routable == 0:
            return 0
        return math.ceil((1 + self.epsilon) * (self._load + 1) / self._routable)
        ### END SOLUTION

    def home(self, key: str) -> str | None:
        """The first server clockwise from ``key``'s point, ignoring load and health; ``None`` on an empty ring.  O(log(S V))."""
        ### BEGIN SOLUTION: bisect the ring
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__} {key!r}")
        self._sorted_ring()
        keys = self._keys
        if not keys:
            return None
        return self._owners[self._first_at(stable_hash64(f"{self.seed}/{key}")) % len(keys)]
        ### END SOLUTION

    def points(self) -> tuple[tuple[int, str], ...]:
        """The ring: ``(point, server_id)`` sorted (for pictures and tests).  O(S V)."""
        ### BEGIN SOLUTION: a tuple copy of the ring
        return tuple(self._sorted_ring())
        ### END SOLUTION

    def walk(self, request: Request) -> list[tuple[ServerState, str]]:
        """The servers rule 4 examines for ``request``, in order, each with a note (``"chosen"``, ``"over bound"``,
        ``"cannot take it"``); changes nothing.  O(log(S V)) + the walk."""
        ### BEGIN SOLUTION: the walk of rule 4, recording each examined server's note
        out: list[tuple[ServerState, str]] = []
        bound = self.bound()
        for s in self._examine(request):
            if s.load < bound and self.router.eligible(s, request):
                out.append((s, "chosen"))
                break
            out.append((s, "over bound" if s.load >= bound else "cannot take it"))
        return out
        ### END SOLUTION

    def choose(self, request: Request) -> ServerState | None:
        """The first server of the walk (rule 4) under the bound that can take the request, or ``None``."""
        ### BEGIN SOLUTION: the O(1) refusal, then the walk; count decisions, steps and spills
        large = self.router.is_large(request)
        if (self._available_big if large else self._available) == 0:
            self._refused += 1
            return None
        bound = self.bound()
        eligible = self.router.eligible
        self._sorted_ring()
        keys, owners, servers = self._keys, self._owners, self._servers
        size, total = len(keys), len(servers)
        start = self._first_at(stable_hash64(f"{self.seed}/{self.key_of(request)}"))
        seen: set[str] = set()
        steps = 0
        for step in range(size):
            sid = owners[(start + step) % size]
            if sid in seen:
                continue
            seen.add(sid)
            s = servers[sid]
            steps += 1
            if s.load < bound and eligible(s, request):
                self._examined += steps
                self._decisions += 1
                self._spills += steps > 1
                return s
            if steps == total:
                break
        self._examined += steps
        self._refused += 1
        return None
        ### END SOLUTION

    ### BEGIN OMIT
    def _sorted_ring(self) -> list[tuple[int, str]]:
        """The ring with the points of servers added since the last call merged in (one sort: O(S V))."""
        if self._joining:
            self._joining.sort()
            self._ring.extend(self._joining)  # two sorted runs: Timsort merges them in linear time
            self._ring.sort()
            self._joining.clear()
            self._reindex()
        return self._ring

    def _reindex(self) -> None:
        """The ring's points and owners as flat lists, and a bucket table over the points' top bits: bucket ``b``
        starts at the first point >= ``b << shift``, so a lookup bisects only inside its bucket (O(1) expected)."""
        ring = self._ring
        self._keys, self._owners = [p for p, _ in ring], [o for _, o in ring]
        bits = max(1, len(ring).bit_length())
        self._shift = 64 - bits
        starts, i, keys = [], 0, self._keys
        for b in range(1 << bits):
            low = b << self._shift
            while i < len(keys) and keys[i] < low:
                i += 1
            starts.append(i)
        starts.append(len(keys))
        self._starts = starts

    def _first_at(self, point: int) -> int:
        """The index of the first ring point >= ``point`` (== len when none): bisect within its bucket."""
        b = point >> self._shift
        return bisect.bisect_left(self._keys, point, self._starts[b], self._starts[b + 1])

    def _examine(self, request: Request) -> Iterator[ServerState]:
        """The distinct servers clockwise from the request's key point (rule 4's order); stops after every server."""
        self._sorted_ring()
        keys, owners = self._keys, self._owners
        size = len(keys)
        if not size:
            return
        start = self._first_at(stable_hash64(f"{self.seed}/{self.key_of(request)}"))
        servers, total, seen = self._servers, len(self._servers), set()
        for step in range(size):
            sid = owners[(start + step) % size]
            if sid in seen:
                continue
            seen.add(sid)
            yield servers[sid]
            if len(seen) == total:
                return

    ### END OMIT
    def stats(self) -> dict[str, int]:
        """``decisions`` (non-None), ``refused`` (None), ``examined`` (servers examined in all walks), ``spills``.  O(1)."""
        ### BEGIN SOLUTION: a fresh dict of the counters
        return {"decisions": self._decisions, "refused": self._refused, "examined": self._examined, "spills": self._spills}
        ### END SOLUTION

    def explain(self, request: Request) -> Decision:
        """The walk for ``request``: the servers examined, in ring order, and the bound.  Changes nothing."""
        steps = self.walk(request)
        bound = self.bound()
        chosen = next((s.server_id for s, note in steps if note == "chosen"), None)
        scored = [Scored(s.server_id, (("ring steps", float(i)), ("load", float(s.load))), note) for i, (s, note) in enumerate(steps)]
        scored.sort(key=lambda c: c.note != "chosen")  # the chosen server first, the others in ring order
        examined = {s.server_id for s, _ in steps}
        why = f"first server clockwise with load < bound {bound} that can take it" if chosen else "no server under the bound can take it"
        return Decision(self.name, request, chosen, tuple(scored), self.router.excluded(request, examined), why)


class PrefixAware(BaseStrategy):
    """Route to the server that holds the longest cached prefix of the prompt, unless it is too loaded: a wrapper.

    SGLang's cache-aware router and llm-d's prefix scorer do this with a
    balance threshold.  The balancer cannot see the servers' caches, so it
    keeps an *approximate* index of what each holds, learnt from its own
    routing decisions.

    Rules (each is graded):

    1. **No blocks**: ``request.prefix_blocks == ()`` -> the inner strategy
       decides; nothing is recorded (``no_blocks`` + 1).
    2. **Index**: when a decision sends a request to server ``s``, its blocks
       are recorded on ``s`` as most recently used, the *first* block last (so
       the first block is the most recent: a deeper block is always evicted
       before the blocks in front of it, as SGLang evicts radix-tree leaves
       first).  Each server holds at most ``max_blocks_per_server`` blocks;
       recording one more evicts its least recently used block.  A global map
       ``block -> servers holding it`` is kept in step, each block's holders
       in order of their last recording of it (oldest first).  A server
       forgotten by the router (after its drain) leaves the index.
    3. **Longest match**: ``H(b)`` is the set of servers holding block ``b``.
       ``S1 = H(b0)``, then ``S(j+1) = Sj & H(bj)`` block by block while it
       stays non-empty (health and load play no part here).  The match
       length ``m`` is the number of blocks walked (0 when nobody holds the
       first block).
    4. **Candidates**: the servers of ``Sm``, newest holder of block
       ``b(m-1)`` first, at most ``max_candidates`` of them examined; those
       that can take the request (``router.eligible``) are the candidates.
       (A system prompt's block is held by every server: without this bound
       a request matching only it would compare the whole fleet.)
    5. **Decision**: the inner strategy is asked once (its ``choose``).  If
       ``m < min_match``: the pick serves the request (``fallback_no_match``
       + 1).  Else if no candidate can take it: the pick
       (``fallback_unavailable`` + 1).  Else the least loaded candidate
       (lowest ``load / capacity`` as an exact key, then added earliest)
       serves it when its ``load / capacity <= pick.load / pick.capacity +
       slack`` (floats; also when the pick is ``None``; ``by_prefix`` + 1);
       otherwise the pick (``fallback_imbalance`` + 1).  The blocks are then
       recorded on the server that serves the request (rule 2).  A decision
       that finds no server records and counts nothing.
    6. **Counters** (``stats()``, decisions that found a server):
       ``requests`` (with blocks), ``requested_blocks``, ``matched_blocks``
       (the leading blocks the index says the serving server held, before
       recording), ``by_prefix``, ``fallback_imbalance``,
       ``fallback_no_match``, ``fallback_unavailable``, ``no_blocks``.

    **Cost**: O(sum over the walked blocks of min(|Sj|, |H(bj)|)) for the
    intersections (each iterates the smaller set; a session's own blocks are
    held by one or two servers, so O(B) in practice even when a system
    prompt is held by all), plus O(``max_candidates``) and one inner
    decision; O(B) to record; memory O(S x max_blocks_per_server).

    Args:
        inner: the strategy for requests without a usable match.
        max_blocks_per_server: the index's bound per server, an int >= 1 (default 4096).
        slack: the balance bound, a number >= 0 (``math.inf``: no bound; default 0.25).
        min_match: the fewest matching blocks that count as a match, an int >= 1 (default 1).
        max_candidates: the most holders of the longest prefix examined per decision, an int >= 1 (default 8).

    Raises:
        TypeError / ValueError: a bad argument.
    """

    components = ("-matched blocks", "load ratio")

    def __init__(self, inner: Strategy, *, max_blocks_per_server: int = 4096, slack: float = 0.25, min_match: int = 1,
                 max_candidates: int = 8) -> None:  # fmt: skip
        ### BEGIN SOLUTION: validate; keep them as self.inner, self.max_blocks_per_server, self.slack, self.min_match, self.max_candidates (explain reads them); an OrderedDict of blocks per server id, the global map block -> {server id: None} (recording order), the counters
        if isinstance(inner, type) or not isinstance(inner, Strategy):
            raise TypeError(f"inner must be a strategy object (e.g. LeastConnections()), got {inner!r}")
        self.max_blocks_per_server = require_int(max_blocks_per_server, "max_blocks_per_server")
        self.slack = require_slack(slack, "slack")
        self.min_match = require_int(min_match, "min_match")
        self.max_candidates = require_int(max_candidates, "max_candidates")
        self.inner = inner
        self._servers: dict[str, ServerState] = {}
        self._held: dict[str, OrderedDict[int, None]] = {}  # server_id -> its blocks, least recently used first
        self._holders: dict[int, dict[str, None]] = {}  # block -> the servers holding it, oldest recording first
        self._requests = self._requested = self._matched = self._by_prefix = 0
        self._fallback_imbalance = self._fallback_no_match = self._fallback_unavailable = self._no_blocks = 0
        ### END SOLUTION

    @property
    def name(self) -> str:  # type: ignore[override]
        """``"prefix-aware over <inner name>"``."""
        return f"prefix-aware over {getattr(self.inner, 'name', type(self.inner).__name__)}"

    def attach(self, router: Router) -> None:
        """Bind to ``router`` and attach the inner strategy to it too (both or neither)."""
        ### BEGIN SOLUTION: refuse if either serves another router (StrategyInUseError), then attach both
        _attach_pair(self, self.inner, router)
        ### END SOLUTION

    def server_added(self, server: ServerState) -> None:
        """Forward, and know the server (for the index).  O(1) + the inner hook."""
        ### BEGIN SOLUTION: keep server_id -> ServerState; forward
        self._servers[server.server_id] = server
        self.inner.server_added(server)
        ### END SOLUTION

    def server_changed(self, server: ServerState) -> None:
        self.inner.server_changed(server)

    def server_removed(self, server: ServerState) -> None:
        """Forward, and drop the server's blocks from the index.  O(its blocks)."""
        ### BEGIN SOLUTION: forward to the inner strategy; remove the server from the global map for each of its blocks
        self.inner.server_removed(server)
        sid = server.server_id
        self._servers.pop(sid, None)
        for block in self._held.pop(sid, {}):
            holders = self._holders[block]
            del holders[sid]
            if not holders:
                del self._holders[block]
        ### END SOLUTION

    def observe(self, server: ServerState, seconds_per_token: float) -> None:
        self.inner.observe(server, seconds_per_token)

    def match(self, request: Request) -> tuple[int, list[ServerState]]:
        """Rules 3 and 4: the match length and the candidates (eligible, examined newest holder first, in that order).  Changes nothing."""
        ### BEGIN SOLUTION: intersect the holders block by block (iterate the smaller set); then examine the newest holders of the last matched block
        return self._match(request)
        ### END SOLUTION

    def held_prefix(self, server_id: str, blocks: tuple[int, ...]) -> int:
        """How many leading ``blocks`` the index says ``server_id`` holds.  O(B)."""
        ### BEGIN SOLUTION: count leading blocks in the server's OrderedDict
        require_id(server_id, "server_id")
        held = self._held.get(server_id)
        if not held:
            return 0
        n = 0
        for block in blocks:
            if block not in held:
                break
            n += 1
        return n
        ### END SOLUTION

    def cached_blocks(self) -> dict[str, int]:
        """Blocks the index holds per server id.  O(S)."""
        ### BEGIN SOLUTION: the size of each server's OrderedDict
        return {sid: len(self._held.get(sid, ())) for sid in self._servers}
        ### END SOLUTION

    def choose(self, request: Request) -> ServerState | None:
        """Rules 1-4, then record the blocks on the chosen server.  O(B k) + one inner decision."""
        ### BEGIN SOLUTION: no blocks -> inner; match; ask the inner once; compare with the slack; record; count
        blocks = request.prefix_blocks
        if not blocks:
            pick = self.inner.choose(request)
            if pick is not None:
                self._no_blocks += 1
            return pick
        m, candidates = self._match(request)
        pick = self.inner.choose(request)
        chosen, how = pick, "no match"
        if m >= self.min_match:
            how = "unavailable"
            if candidates:
                best = min(candidates, key=lambda s: (s.load_ratio_key, s.order))
                if pick is None or best.load / best.capacity <= pick.load / pick.capacity + self.slack:
                    chosen, how = best, "prefix"
                else:
                    how = "imbalance"
        if chosen is None:
            return None
        self._requests += 1
        self._requested += len(blocks)
        self._matched += self.held_prefix(chosen.server_id, blocks)
        if how == "prefix":
            self._by_prefix += 1
        elif how == "imbalance":
            self._fallback_imbalance += 1
        elif how == "unavailable":
            self._fallback_unavailable += 1
        else:
            self._fallback_no_match += 1
        self._record(chosen.server_id, blocks)
        return chosen
        ### END SOLUTION

    ### BEGIN OMIT
    def _match(self, request: Request) -> tuple[int, list[ServerState]]:
        """Rules 3 and 4 (the shared body of match and choose)."""
        blocks, index = request.prefix_blocks, self._holders
        first = index.get(blocks[0]) if blocks else None
        if not first:
            return 0, []
        current: Any = first  # S_j: a dict (S_1, in recording order) or a set
        last = first  # H(b_(m-1))
        m = 1
        for block in blocks[1:]:
            more = index.get(block)
            if not more:
                break
            small, big = (current, more) if len(current) <= len(more) else (more, current)
            deeper = {sid for sid in small if sid in big}
            if not deeper:
                break
            current, last, m = deeper, more, m + 1
        eligible, servers, out, examined = self.router.eligible, self._servers, [], 0
        for sid in reversed(last):  # the newest holders of the last matched block first
            if sid not in current:
                continue
            s = servers[sid]
            if eligible(s, request):
                out.append(s)
            examined += 1
            if examined == self.max_candidates:
                break
        return m, out

    def _record(self, server_id: str, blocks: tuple[int, ...]) -> None:
        """Rule 2: the blocks become the server's most recently used, the first block last; LRU beyond the bound."""
        held = self._held.get(server_id)
        if held is None:
            held = self._held[server_id] = OrderedDict()
        holders, bound = self._holders, self.max_blocks_per_server
        for block in reversed(blocks):
            owners = holders.get(block)
            if owners is None:
                owners = holders[block] = {}
            if block in held:
                held.move_to_end(block)
                del owners[server_id]  # re-inserted below: the newest holder
                owners[server_id] = None
                continue
            held[block] = None
            owners[server_id] = None
            if len(held) > bound:
                old, _ = held.popitem(last=False)
                owners = holders[old]
                del owners[server_id]
                if not owners:
                    del holders[old]

    ### END OMIT
    def stats(self) -> dict[str, int]:
        """The counters of rule 5 (a fresh dict).  O(1)."""
        ### BEGIN SOLUTION: a fresh dict of the counters
        return {"requests": self._requests, "requested_blocks": self._requested, "matched_blocks": self._matched,
                "by_prefix": self._by_prefix, "fallback_imbalance": self._fallback_imbalance,
                "fallback_no_match": self._fallback_no_match, "fallback_unavailable": self._fallback_unavailable,
        "no_blocks": self._no_blocks}  # fmt: skip
        ### END SOLUTION

    def peek(self, request: Request) -> ServerState | None:
        """Not supported: a decision updates the index; use :meth:`explain`, which changes nothing."""
        raise TypeError("PrefixAware has no side-effect-free choose; Router.explain(request) shows a decision without making it")

    def explain(self, request: Request) -> Decision:
        """The match for ``request`` and the inner strategy's view; changes nothing.  O(S log S + S B)."""
        inner = self.inner.explain(request)
        blocks = request.prefix_blocks
        if not blocks:
            return _relabel(inner, self.name, inner.chosen, "no prefix blocks: the inner strategy decides")
        m, holders = self.match(request)
        pick = None if inner.chosen is None else self.router.server(inner.chosen)
        best = min(holders, key=lambda s: (s.load_ratio_key, s.order)) if holders else None
        if m < self.min_match:
            chosen, why = pick, f"match of {m} block(s) < min_match {self.min_match}: the inner strategy decides"
        elif best is None:
            chosen, why = pick, f"no server holding the longest cached prefix ({m} block(s)) can take it: the inner strategy decides"
        elif pick is None or best.load / best.capacity <= pick.load / pick.capacity + self.slack:
            chosen, why = best, f"longest cached prefix: {m} block(s); the least loaded holder is within the slack of the inner pick"
        else:
            chosen, why = pick, f"longest cached prefix ({m} block(s)) on {best.server_id!r} is too loaded: the inner strategy decides"
        pool = {s.server_id: s for s in holders}
        for c in inner.candidates:
            pool.setdefault(c.server_id, self.router.server(c.server_id))
        held = {s.server_id for s in holders}

        def note(s: ServerState) -> str:
            return "holds the longest prefix" if s.server_id in held else ("inner pick" if pick is s else "")

        scored = sorted((Scored(s.server_id, (("-matched blocks", float(-self.held_prefix(s.server_id, blocks))),
                                              ("load ratio", s.load / s.capacity)), note(s)) for s in pool.values()),
                        key=lambda c: (chosen is None or c.server_id != chosen.server_id, c.key))  # fmt: skip
        return Decision(self.name, request, None if chosen is None else chosen.server_id, tuple(scored),
                        self.router.excluded(request, set(pool)), why)  # fmt: skip
