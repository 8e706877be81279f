# Generated from solution/affinity.py by tools/make_exercises.py (`make exercises`).
# Stage 5: fill in every body that raises NotImplementedError; notebooks/05_session_affinity.ipynb explains the task.
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
        # TODO: validate ttl (finite > 0, not bool) and max_sessions (int >= 1); keep them as self._ttl and self._max (the properties read them); an OrderedDict session -> [server, deadline], a reverse index server -> sessions, the last now, the counters
        raise NotImplementedError("Stage 5: SessionTable.__init__ is not implemented yet; see notebooks/05_session_affinity.ipynb")

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
        # TODO: validate, check the time, drop the expired front, then hit (refresh, move to end) or miss
        raise NotImplementedError("Stage 5: SessionTable.get is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def peek(self, session_id: str, now: float) -> str | None:
        """The session's server if it is live at ``now``, else ``None``; changes nothing (no refresh, no counters).  O(1)."""
        # TODO: validate, check the time (without recording it), read the entry and its deadline
        raise NotImplementedError("Stage 5: SessionTable.peek is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def expires_at(self, session_id: str) -> float | None:
        """When the session expires (its last use plus ``ttl``), or ``None`` if it is not held.  O(1)."""
        # TODO: the entry's deadline
        raise NotImplementedError("Stage 5: SessionTable.expires_at is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def assign(self, session_id: str, server_id: str, now: float) -> None:
        """Map the session to ``server_id`` (insert or re-map), most recently used, deadline ``now + ttl`` (rule 5).

        A new session in a full table evicts the least recently used first.  Amortized O(1).
        """
        # TODO: validate both ids and now; drop the expired front; re-map (count if the server differs) or evict-then-insert; keep the reverse index
        raise NotImplementedError("Stage 5: SessionTable.assign is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def forget(self, session_id: str) -> bool:
        """Drop the session; True if it was held.  O(1)."""
        # TODO: pop it and its reverse-index entry
        raise NotImplementedError("Stage 5: SessionTable.forget is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def forget_server(self, server_id: str) -> int:
        """Drop every session mapped to ``server_id``; return how many.  O(k) for its k sessions (reverse index)."""
        # TODO: pop the server's set from the reverse index and each of its sessions
        raise NotImplementedError("Stage 5: SessionTable.forget_server is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def expire(self, now: float) -> int:
        """Drop every session expired at ``now`` (rule 2); return how many.  Amortized O(1) per dropped session."""
        # TODO: validate now, check the time, pop from the front while the deadline <= now
        raise NotImplementedError("Stage 5: SessionTable.expire is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def sessions(self) -> Mapping[str, str]:
        """A read-only live view ``session_id -> server_id`` (least recently used first).  O(1) to build."""
        return _SessionsView(self)

    def servers(self) -> dict[str, int]:
        """Sessions per server (from the reverse index).  O(S)."""
        # TODO: the size of each server's set
        raise NotImplementedError("Stage 5: SessionTable.servers is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def __len__(self) -> int:
        # TODO: the number of sessions held
        raise NotImplementedError("Stage 5: SessionTable.__len__ is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def __contains__(self, session_id: object) -> bool:
        # TODO: held (not yet dropped)
        raise NotImplementedError("Stage 5: SessionTable.__contains__ is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def stats(self) -> dict[str, int]:
        """``sessions``, ``hits``, ``misses``, ``expired``, ``evicted``, ``remapped`` (rule 7).  O(1)."""
        # TODO: a fresh dict of the counters
        raise NotImplementedError("Stage 5: SessionTable.stats is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def _server_of(self, session_id: str) -> str | None:
        """The server a held session maps to (no time check): the read-only view's lookup."""
        # TODO: read the entry
        raise NotImplementedError("Stage 5: SessionTable._server_of is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def _ids(self) -> Iterator[str]:
        """The held session ids, least recently used first: the read-only view's iteration."""
        # TODO: iterate the ordered dict
        raise NotImplementedError("Stage 5: SessionTable._ids is not implemented yet; see notebooks/05_session_affinity.ipynb")


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
        # TODO: validate the four arguments; keep them as self.inner, self.policy, self.clock, self.table (explain reads them; the table built from the policy when none is given); zero the counters
        raise NotImplementedError("Stage 5: SessionAffinity.__init__ is not implemented yet; see notebooks/05_session_affinity.ipynb")

    @property
    def name(self) -> str:  # type: ignore[override]
        """``"<mode> affinity over <inner name>"``."""
        return f"{self.policy.mode} affinity over {getattr(self.inner, 'name', type(self.inner).__name__)}"

    # --- hooks: forwarded ---------------------------------------------------------------------

    def attach(self, router: Router) -> None:
        """Bind to ``router`` and attach the inner strategy to it too (both or neither)."""
        # TODO: refuse if either serves another router (StrategyInUseError), then attach both
        raise NotImplementedError("Stage 5: SessionAffinity.attach is not implemented yet; see notebooks/05_session_affinity.ipynb")

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
        # TODO: ask the router (in, server(), draining, weight, is_large/big, available), in that order
        raise NotImplementedError("Stage 5: SessionAffinity.unavailable_reason is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def choose(self, request: Request) -> ServerState | None:
        """The server for ``request`` by rules 1-6, and the table updated.  O(1) amortized + one inner decision."""
        # TODO: no session -> inner; read the clock once; table.get; new -> inner + assign; classify the sticky server; hard/soft as the rules say; count
        raise NotImplementedError("Stage 5: SessionAffinity.choose is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def pin(self, session_id: str, server_id: str, now: float) -> None:
        """Map ``session_id`` to ``server_id`` by hand (``pinned`` + 1).  O(1) amortized.

        Raises:
            TypeError / ValueError: bad ids or ``now`` (time going back included).
            UnknownServerError (a KeyError): the server is not in the router.
        """
        # TODO: validate, look the server up in the router, assign in the table, count
        raise NotImplementedError("Stage 5: SessionAffinity.pin is not implemented yet; see notebooks/05_session_affinity.ipynb")

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
        # TODO: the decision counters, the re-maps by reason and their sum, and the table's sessions / expired / evicted
        raise NotImplementedError("Stage 5: SessionAffinity.stats is not implemented yet; see notebooks/05_session_affinity.ipynb")

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
        # TODO: validate (require_positive for epsilon, require_int for vnodes and seed) into self.epsilon, self.vnodes, self.seed; an empty ring, the servers by id, L, the available counts, the counters
        raise NotImplementedError("Stage 5: BoundedLoadHash.__init__ is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def attach(self, router: Router) -> None:
        super().attach(router)

    def server_added(self, server: ServerState) -> None:
        """Compute its points (O(V)); they join the ring at the next decision or read (one merge, O(S V), for
        every server added since: adding a whole fleet costs one sort).  Then count it."""
        # TODO: its vnodes points, to be merged into the sorted ring before the next walk; then the same bookkeeping as server_changed
        raise NotImplementedError("Stage 5: BoundedLoadHash.server_added is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def server_changed(self, server: ServerState) -> None:
        """Update ``L``, ``n`` and the available counts by this server's difference.  O(1)."""
        # TODO: keep each server's last (routable load, available, big) and apply the difference
        raise NotImplementedError("Stage 5: BoundedLoadHash.server_changed is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def server_removed(self, server: ServerState) -> None:
        """Take its points off the ring (O(S V)) and its share of the counts."""
        # TODO: filter the ring, undo its contribution
        raise NotImplementedError("Stage 5: BoundedLoadHash.server_removed is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def key_of(self, request: Request) -> str:
        """The request's hash key (rule 2).  O(1)."""
        # TODO: session id, else the first prefix block as a str, else the request id
        raise NotImplementedError("Stage 5: BoundedLoadHash.key_of is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def bound(self) -> int:
        """The current per-server bound of rule 3 (0 when no server is routable).  O(1)."""
        # TODO: ceil((1 + epsilon) * (L + 1) / n)
        raise NotImplementedError("Stage 5: BoundedLoadHash.bound is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def home(self, key: str) -> str | None:
        """The first server clockwise from ``key``'s point, ignoring load and health; ``None`` on an empty ring.  O(log(S V))."""
        # TODO: bisect the ring
        raise NotImplementedError("Stage 5: BoundedLoadHash.home is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def points(self) -> tuple[tuple[int, str], ...]:
        """The ring: ``(point, server_id)`` sorted (for pictures and tests).  O(S V)."""
        # TODO: a tuple copy of the ring
        raise NotImplementedError("Stage 5: BoundedLoadHash.points is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def walk(self, request: Request) -> list[tuple[ServerState, str]]:
        """The servers rule 4 examines for ``request``, in order, each with a note (``"chosen"``, ``"over bound"``,
        ``"cannot take it"``); changes nothing.  O(log(S V)) + the walk."""
        # TODO: the walk of rule 4, recording each examined server's note
        raise NotImplementedError("Stage 5: BoundedLoadHash.walk is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def choose(self, request: Request) -> ServerState | None:
        """The first server of the walk (rule 4) under the bound that can take the request, or ``None``."""
        # TODO: the O(1) refusal, then the walk; count decisions, steps and spills
        raise NotImplementedError("Stage 5: BoundedLoadHash.choose is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def stats(self) -> dict[str, int]:
        """``decisions`` (non-None), ``refused`` (None), ``examined`` (servers examined in all walks), ``spills``.  O(1)."""
        # TODO: a fresh dict of the counters
        raise NotImplementedError("Stage 5: BoundedLoadHash.stats is not implemented yet; see notebooks/05_session_affinity.ipynb")

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
        # TODO: validate; keep them as self.inner, self.max_blocks_per_server, self.slack, self.min_match, self.max_candidates (explain reads them); an OrderedDict of blocks per server id, the global map block -> {server id: None} (recording order), the counters
        raise NotImplementedError("Stage 5: PrefixAware.__init__ is not implemented yet; see notebooks/05_session_affinity.ipynb")

    @property
    def name(self) -> str:  # type: ignore[override]
        """``"prefix-aware over <inner name>"``."""
        return f"prefix-aware over {getattr(self.inner, 'name', type(self.inner).__name__)}"

    def attach(self, router: Router) -> None:
        """Bind to ``router`` and attach the inner strategy to it too (both or neither)."""
        # TODO: refuse if either serves another router (StrategyInUseError), then attach both
        raise NotImplementedError("Stage 5: PrefixAware.attach is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def server_added(self, server: ServerState) -> None:
        """Forward, and know the server (for the index).  O(1) + the inner hook."""
        # TODO: keep server_id -> ServerState; forward
        raise NotImplementedError("Stage 5: PrefixAware.server_added is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def server_changed(self, server: ServerState) -> None:
        self.inner.server_changed(server)

    def server_removed(self, server: ServerState) -> None:
        """Forward, and drop the server's blocks from the index.  O(its blocks)."""
        # TODO: forward to the inner strategy; remove the server from the global map for each of its blocks
        raise NotImplementedError("Stage 5: PrefixAware.server_removed is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def observe(self, server: ServerState, seconds_per_token: float) -> None:
        self.inner.observe(server, seconds_per_token)

    def match(self, request: Request) -> tuple[int, list[ServerState]]:
        """Rules 3 and 4: the match length and the candidates (eligible, examined newest holder first, in that order).  Changes nothing."""
        # TODO: intersect the holders block by block (iterate the smaller set); then examine the newest holders of the last matched block
        raise NotImplementedError("Stage 5: PrefixAware.match is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def held_prefix(self, server_id: str, blocks: tuple[int, ...]) -> int:
        """How many leading ``blocks`` the index says ``server_id`` holds.  O(B)."""
        # TODO: count leading blocks in the server's OrderedDict
        raise NotImplementedError("Stage 5: PrefixAware.held_prefix is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def cached_blocks(self) -> dict[str, int]:
        """Blocks the index holds per server id.  O(S)."""
        # TODO: the size of each server's OrderedDict
        raise NotImplementedError("Stage 5: PrefixAware.cached_blocks is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def choose(self, request: Request) -> ServerState | None:
        """Rules 1-4, then record the blocks on the chosen server.  O(B k) + one inner decision."""
        # TODO: no blocks -> inner; match; ask the inner once; compare with the slack; record; count
        raise NotImplementedError("Stage 5: PrefixAware.choose is not implemented yet; see notebooks/05_session_affinity.ipynb")

    def stats(self) -> dict[str, int]:
        """The counters of rule 5 (a fresh dict).  O(1)."""
        # TODO: a fresh dict of the counters
        raise NotImplementedError("Stage 5: PrefixAware.stats is not implemented yet; see notebooks/05_session_affinity.ipynb")

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
