"""Stage 3's shared machinery: the strategy interface, the router, the baselines.

A :class:`Router` has the stage-1 public API (``add_server``,
``remove_server``, ``route_request``, ``complete_request``,
``get_server_stats``) and takes the routing rule as a parameter::

    >>> from solution.core.routing import Router, RoundRobin
    >>> lb = Router(RoundRobin())
    >>> lb.add_server("a", 4, 80); lb.add_server("b", 4, 80)
    >>> [lb.route_request(f"r{i}", 100) for i in range(3)]
    ['a', 'b', 'a']

The router keeps the bookkeeping (who runs what, estimated tokens and
estimated *output* tokens outstanding, relative speed, a latency model per
server) and tells its strategy about every change
through three hooks; a strategy sees servers only as read-only
:class:`ServerState` objects.  Every decision can be explained
(:meth:`Router.explain`): each candidate's score by component, and the
component that separated the winner from the runner-up.

Requests and their cost
-----------------------
A request reaches a strategy as a :class:`~solution.core.request.Request`
record: :meth:`Router.route` takes one, and :meth:`Router.route_request`
(stage 1's API, one number) builds one.  Stage 1's single
``estimated_tokens`` is prompt plus output and hides the split that decides
the cost: a prompt token is a small share of one prefill iteration, an output
token a whole decode iteration, about a hundred times more
(:mod:`solution.core.latency`).  A caller that knows the prompt's length (a
gateway tokenizes it) passes ``prompt_tokens``; without it every token counts
as an output token.  Each server has a
:class:`~solution.core.latency.LatencyModel` (``Router(models=...)``, default
:data:`~solution.core.latency.REFERENCE_MODEL` scaled by its ``speed``), so
a strategy can price a request in seconds.

This module holds what the candidate does not write: the interface, the
router, the :class:`HeapIndex` that gives O(log S) decisions, and three
baselines (:class:`RoundRobin`, :class:`RandomChoice`,
:class:`LeastConnections`, the stage-1 rule and the default).  The
strategies a candidate writes live in :mod:`solution.strategies`.

Health weights (stage 4)
------------------------
:meth:`Router.set_weight` is how health reaches routing without a scan:
weight 0 takes a server out of the routable list; a weight in (0, 1] makes
its effective capacity ``max(1, floor(capacity * weight))`` (optionally
capped by a half-open circuit's trial limit), which every strategy sees as
``server.capacity``, in the load ratio and in eligibility.  One call re-keys
one server: O(log S) for indexed strategies.  :mod:`solution.core.path`
pushes the weights as health transitions happen.

Early binding and stale information
-----------------------------------
``queue_per_server`` lets a server accept requests beyond its batch into its
own waiting queue (early binding, as vLLM's scheduler does); ``None`` means
an unbounded queue.  ``refresh_every=k`` makes strategies see loads and
outstanding tokens as they were at the last refresh, taken every ``k``
routing decisions (``k / rate`` seconds at arrival rate ``rate``); whether
a server can take a request is still decided on the true state (a full
server refuses work).  This is Mitzenmacher's *bulletin board* model ("How
useful is old information?", IEEE TPDS 11(1), 2000): every decision of a
period reads the same posted loads, and the balancer does not even count
the requests it has just sent itself.  A real single balancer does count
them; :class:`ReplicatedRouter` models several independent
replicas that each count their own requests exactly and see the others'
only through the periodic refresh.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from solution.core.errors import (
    DuplicateRequestError,
    DuplicateServerError,
    LoadBalancerError,
    NoCapacityError,
    UnknownRequestError,
    UnknownServerError,
)
from solution.core.latency import REFERENCE_MODEL, LatencyModel
from solution.core.request import Request
from solution.core.validate import MAX_CAPACITY, require_id, require_int

__all__ = [
    "ServerState",
    "Strategy",
    "BaseStrategy",
    "IndexedStrategy",
    "HeapIndex",
    "RoundRobin",
    "RandomChoice",
    "LeastConnections",
    "Router",
    "RouterFactory",
    "Decision",
    "Scored",
    "StrategyInUseError",
    "StrategyError",
    "require_positive",
    "Request",
    "INDEX_PROBE",
    "ReplicatedRouter",
]

_RATIO_SHIFT = 64  # load ratios a/b are keyed as floor(a * 2**64 / b): exact (see solution/balancer.py)

#: A request that costs nothing (one prompt token, no output): what
#: :meth:`IndexedStrategy.index_key` scores a server with by default.
INDEX_PROBE = Request("(index key)", 1, prompt_tokens=1)


class StrategyInUseError(LoadBalancerError, ValueError):
    """A strategy object already serves another router: give each router its own."""


def require_positive(value: object, what: str, *, zero_ok: bool = False) -> float:
    """Return ``value`` as a float if it is a finite real number > 0 (>= 0 with ``zero_ok``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{what} must be a finite number {'>=' if zero_ok else '>'} 0, got {value!r}")
    return float(value)


class ServerState:
    """One server as a strategy sees it: read-only properties, O(1) each.

    ``load``, ``outstanding_tokens`` and ``outstanding_output_tokens`` are
    what the router last *saw* (equal to the truth unless the router
    refreshes its view periodically).
    """

    __slots__ = ("_id", "_capacity", "_memory", "_speed", "_model", "_order", "_big", "_draining",
                 "_load", "_tokens", "_out", "_seen_load", "_seen_tokens", "_seen_out", "_others", "_active", "_slot",
                 "_weight", "_eff", "_trial", "_pool", "_version")  # fmt: skip

    def __init__(self, server_id: str, capacity: int, memory: int, speed: float, order: int, big: bool,
                 model: LatencyModel = REFERENCE_MODEL, pool: str = "shared", version: str = "v0") -> None:  # fmt: skip
        self._id, self._capacity, self._memory, self._speed, self._model = server_id, capacity, memory, speed, model
        self._pool, self._version = pool, version
        self._order, self._big, self._draining = order, big, False
        self._load = self._tokens = self._out = self._seen_load = self._seen_tokens = self._seen_out = 0
        self._others = (0, 0, 0)  # other balancers' (load, tokens, output tokens) as last refreshed (ReplicatedRouter)
        self._active: dict[str, Request] = {}  # request id -> its record, in routing order
        self._slot = -1  # position in the router's list of routable servers
        self._weight, self._eff, self._trial = 1.0, capacity, None  # health weight, effective capacity, trial limit (Router.set_weight)

    server_id = property(lambda self: self._id, doc="The server's id.")
    capacity = property(
        lambda self: self._eff,
        doc="Sequences it takes at once: its batch, scaled by its health weight (``Router.set_weight``; the batch itself while the weight is 1).",
    )
    nominal_capacity = property(lambda self: self._capacity, doc="Its batch as added (whatever its health weight).")
    weight = property(lambda self: self._weight, doc="Its health weight in [0, 1] (``Router.set_weight``; 0: it takes no requests).")
    trial_limit = property(lambda self: self._trial, doc="At most this many requests in flight (a half-open circuit's trials), or None.")
    gpu_memory_gb = property(lambda self: self._memory, doc="GPU memory in GB.")
    speed = property(lambda self: self._speed, doc="Relative speed (1.0: a typical server).")
    model = property(lambda self: self._model, doc="Its LatencyModel: what a request costs there, in seconds.")
    order = property(lambda self: self._order, doc="Order of addition: the last tie-break.")
    big = property(lambda self: self._big, doc="True when it can take large requests.")
    pool = property(
        lambda self: self._pool,
        doc='Its pool label (stage 6: a tier pinned to a pool uses only that pool\'s servers, then "shared"); "shared" by default.',
    )
    version = property(
        lambda self: self._version,
        doc='Its software version label (stage 7: a rolling deploy replaces one version by another; a canary split routes by it); "v0" by default.',
    )
    draining = property(lambda self: self._draining, doc="True once remove_server was called.")
    load = property(lambda self: self._seen_load, doc="Requests routed to it and not completed (as last seen).")
    outstanding_tokens = property(lambda self: self._seen_tokens, doc="Their estimated tokens, prompt and output (as last seen).")
    outstanding_output_tokens = property(
        lambda self: self._seen_out, doc="Their estimated output tokens: decode iterations still to run (as last seen)."
    )

    @property
    def load_ratio_key(self) -> int:
        """``load / capacity`` (the effective capacity) as an exact integer key (smaller is less loaded)."""
        return (self._seen_load << _RATIO_SHIFT) // self._eff

    def __repr__(self) -> str:
        return f"<ServerState {self._id!r} load {self._seen_load}/{self._capacity} tokens {self._seen_tokens} speed {self._speed:g}>"


@dataclass(frozen=True)
class Scored:
    """One candidate of a decision: its score by component (smaller is better)."""

    server_id: str
    components: tuple[tuple[str, float], ...]  # (name, value), in the order they are compared
    note: str = ""  # e.g. "sampled", "not sampled", "full"

    @property
    def key(self) -> tuple[float, ...]:
        return tuple(v for _, v in self.components)


@dataclass(frozen=True)
class Decision:
    """Why a request goes where it goes: each candidate's score and what decided."""

    strategy: str
    request: Request
    chosen: str | None  # None: no eligible server
    candidates: tuple[Scored, ...]  # the servers the rule compared, best first
    excluded: tuple[tuple[str, str], ...]  # (server id, reason) for the others
    decided_by: str

    @property
    def estimated_tokens(self) -> int:
        """The request's estimated tokens (prompt plus output)."""
        return self.request.estimated_tokens

    def summary(self) -> str:
        """One line: who won and why."""
        if self.chosen is None:
            return f"{self.strategy}: no eligible server ({self.decided_by})"
        best = self.candidates[0]
        parts = ", ".join(f"{n} {_fmt(v)}" for n, v in best.components)
        return f"{self.strategy}: {self.chosen} ({parts}): {self.decided_by}"

    def table(self) -> str:
        """A plain-text table of the candidates and their components."""
        if not self.candidates:
            return self.summary()
        names = [n for n, _ in self.candidates[0].components]
        rows = [["server", *names, "note"]] + [[c.server_id, *(_fmt(v) for _, v in c.components), c.note] for c in self.candidates]
        rows += [[sid, *([""] * len(names)), why] for sid, why in self.excluded]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines + [self.summary()])


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@runtime_checkable
class Strategy(Protocol):
    """What a router needs from a routing rule.  :class:`BaseStrategy` implements the hooks as no-ops.

    The router calls ``attach`` once, then ``server_added``,
    ``server_changed`` (its load, tokens or draining flag changed, or it became
    (in)eligible) and ``server_removed`` as things happen, ``choose`` for
    each request (a :class:`~solution.core.request.Request`), ``observe``
    when a latency is reported, and ``explain`` to show a decision without
    making it.
    """

    name: str

    def attach(self, router: Router) -> None: ...
    def server_added(self, server: ServerState) -> None: ...
    def server_changed(self, server: ServerState) -> None: ...
    def server_removed(self, server: ServerState) -> None: ...
    def choose(self, request: Request) -> ServerState | None: ...
    def observe(self, server: ServerState, seconds_per_token: float) -> None: ...
    def explain(self, request: Request) -> Decision: ...


class BaseStrategy:
    """Default hooks (do nothing) and a generic explanation built on :meth:`score`.

    A subclass defines :meth:`score` (a tuple, smaller is better) with
    :attr:`components` naming its entries, and :meth:`choose`.
    """

    name = "strategy"
    components: tuple[str, ...] = ()
    router: Router

    def attach(self, router: Router) -> None:
        """Bind to ``router``; a strategy serves one router only."""
        if getattr(self, "router", None) is not None and self.router is not router:
            raise StrategyInUseError(f"this {type(self).__name__} already serves another Router; create one per router")
        self.router = router

    def server_added(self, server: ServerState) -> None:
        self.server_changed(server)

    def server_changed(self, server: ServerState) -> None:
        pass

    def server_removed(self, server: ServerState) -> None:
        pass

    def observe(self, server: ServerState, seconds_per_token: float) -> None:
        """Feedback: a request on ``server`` took ``seconds_per_token`` (per expected output token).  Ignored by default."""

    def score(self, server: ServerState, request: Request) -> tuple[float, ...]:
        raise NotImplementedError(f"{type(self).__name__} does not define score()")

    def choose(self, request: Request) -> ServerState | None:
        raise NotImplementedError(f"{type(self).__name__} does not define choose()")

    def considered(self, request: Request) -> tuple[list[ServerState], str]:
        """The servers this rule compares for a request, and a note for them.  Default: every eligible server."""
        return self.router.eligible_servers(request), "eligible"

    def peek(self, request: Request) -> ServerState | None:
        """What :meth:`choose` would pick now, leaving the strategy as it was.

        Restores ``self.rng`` (a :class:`random.Random`) and ``self.cursor``
        when the strategy has them: keep a strategy's randomness and cursor there.
        """
        rng: random.Random | None = getattr(self, "rng", None)
        saved, cursor = (rng.getstate() if rng is not None else None), getattr(self, "cursor", None)
        try:
            return self.choose(request)
        finally:
            if rng is not None:
                rng.setstate(saved)
            if cursor is not None:
                self.cursor = cursor

    def explain(self, request: Request) -> Decision:
        """Score the considered servers, best first; name the component that decided.  O(S log S)."""
        pool, note = self.considered(request)
        chosen = self.peek(request)
        ranked = sorted(pool, key=lambda s: (self.score(s, request), s.order))
        if chosen is not None and ranked and ranked[0] is not chosen and chosen in ranked:
            ranked.remove(chosen)
            ranked.insert(0, chosen)
        scored = tuple(Scored(s.server_id, tuple(zip(self.components, self.score(s, request))), note) for s in ranked)
        excluded = self.router.excluded(request, {s.server_id for s in pool})
        if chosen is None:
            why = "every server is full, draining or too small"
        elif len(scored) == 1:
            why = "the only candidate"
        else:
            why = _decided_by(scored[0], scored[1], chosen is ranked[0] and scored[0].key <= scored[1].key)
        return Decision(self.name, request, None if chosen is None else chosen.server_id, scored, excluded, why)


def _decided_by(first: Scored, second: Scored, by_score: bool) -> str:
    if not by_score:
        return "the rule's own order (not the lowest score)"
    for (name, a), (_, b) in zip(first.components, second.components):
        if a != b:
            return f"lowest {name} ({_fmt(a)} against {_fmt(b)} for {second.server_id})"
    return f"tie on every component: added earlier than {second.server_id}"


class HeapIndex:
    """Routable servers in two heaps (small- and big-memory GPUs) keyed by ``key(server)``.

    Entries are invalidated lazily by a per-server version, as in the
    stage-1 reference: :meth:`update` is O(log S); :meth:`best` pops stale
    tops and is O(log S) amortized; a heap more than half stale is rebuilt.
    """

    def __init__(self, key: Callable[[ServerState], tuple[Any, ...]]) -> None:
        self.key = key
        self.heaps: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] = ([], [])
        self.version: dict[int, int] = {}
        self.servers: dict[int, ServerState] = {}

    def update(self, server: ServerState, routable: bool) -> None:
        """Re-key ``server`` (or drop it when it cannot take requests).  O(log S)."""
        v = self.version.get(server.order, 0) + 1
        self.version[server.order] = v
        if not routable:
            self.servers.pop(server.order, None)
            return
        self.servers[server.order] = server
        heap = self.heaps[server.big]
        heapq.heappush(heap, (*self.key(server), server.order, v))
        if len(heap) > 2 * len(self.servers) + 32:
            heap[:] = [(*self.key(s), s.order, self.version[s.order]) for s in self.servers.values() if s.big == server.big]
            heapq.heapify(heap)

    def remove(self, server: ServerState) -> None:
        self.update(server, False)
        del self.version[server.order]

    def _top(self, heap: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
        while heap and (heap[0][-2] not in self.servers or self.version[heap[0][-2]] != heap[0][-1]):
            heapq.heappop(heap)
        return heap[0] if heap else None

    def best(self, large: bool) -> ServerState | None:
        """The routable server with the smallest key (big-memory ones only for a large request)."""
        tops = [self._top(self.heaps[1])] if large else [self._top(self.heaps[0]), self._top(self.heaps[1])]
        found = [t for t in tops if t is not None]
        return self.servers[min(found)[-2]] if found else None


class IndexedStrategy(BaseStrategy):
    """A strategy whose choice is the smallest :meth:`score` that does not depend on the request:
    kept in a :class:`HeapIndex`, so a decision is O(log S) amortized."""

    def attach(self, router: Router) -> None:
        super().attach(router)
        self.index = HeapIndex(self.index_key)

    def index_key(self, server: ServerState) -> tuple[Any, ...]:
        """The heap key: :meth:`score` for :data:`INDEX_PROBE`, a request that costs nothing (override for an exact key)."""
        return self.score(server, INDEX_PROBE)

    def server_changed(self, server: ServerState) -> None:
        self.index.update(server, self.router.available(server))

    def server_removed(self, server: ServerState) -> None:
        self.index.remove(server)

    def choose(self, request: Request) -> ServerState | None:
        return self.index.best(self.router.is_large(request))


class LeastConnections(IndexedStrategy):
    """Weighted least-connections, stage 1's rule (the default).

    Lowest ``load / capacity`` (exact), then most GPU memory, then most free
    slots, then added earliest.  **Cost:** O(log S) per decision (heap index).
    **Weak spot:** counts requests, not tokens: a server running ten 8,000-token
    requests looks as loaded as one running ten 10-token requests; and on
    stale data every balancer picks the same "least loaded" server (herding).
    """

    name = "least-connections"
    components = ("load ratio", "-memory", "-free slots")

    def score(self, server: ServerState, request: Request) -> tuple[float, ...]:
        ### BEGIN REFERENCE: stage 1's rule is what you write in exercises/balancer.py
        return (server.load_ratio_key / 2**_RATIO_SHIFT, -server.gpu_memory_gb, server.load - server.capacity)
        ### END REFERENCE

    def index_key(self, server: ServerState) -> tuple[Any, ...]:
        """Exact: the load ratio as an integer key (floats would round 1/3 and 333333/10**6 alike at scale)."""
        ### BEGIN REFERENCE: stage 1's rule is what you write in exercises/balancer.py
        return (server.load_ratio_key, -server.gpu_memory_gb, server.load - server.capacity)
        ### END REFERENCE


class RoundRobin(BaseStrategy):
    """Each eligible server in turn, in order of addition.

    **Cost:** O(1) when the next server is eligible, O(S) in the worst case
    (a run of full servers is skipped one by one).  **Weak spot:** ignores load
    and speed entirely: a slow GPU gets as many requests as a fast one.
    """

    name = "round-robin"
    components = ("turn",)

    def attach(self, router: Router) -> None:
        super().attach(router)
        self.cursor = 0  # the server list position to try next

    def choose(self, request: Request) -> ServerState | None:
        servers = self.router.routable_servers()
        n = len(servers)
        for step in range(n):
            s = servers[(self.cursor + step) % n]
            if self.router.eligible(s, request):
                self.cursor = (self.cursor + step + 1) % n
                return s
        return None

    def score(self, server: ServerState, request: Request) -> tuple[float, ...]:
        n = max(len(self.router.routable_servers()), 1)
        return ((server._slot - self.cursor) % n,)


class RandomChoice(BaseStrategy):
    """A uniformly random eligible server (seeded).

    **Cost:** O(1) expected while most servers are eligible (draws until one
    is), O(S) when few are.  **Weak spot:** no feedback at all: by chance some
    servers get long queues (with d = 1 the supermarket model's queues decay
    only geometrically).
    """

    name = "random"
    components = ("draw",)

    def __init__(self, seed: int = 0) -> None:
        self.seed = require_int(seed, "seed", minimum=0)
        self.rng = random.Random(seed)

    def choose(self, request: Request) -> ServerState | None:
        picks = self.router.sample(self.rng, 1, request)
        return picks[0] if picks else None

    def considered(self, request: Request) -> tuple[list[ServerState], str]:
        chosen = self.peek(request)
        return ([chosen] if chosen else []), "drawn"

    def score(self, server: ServerState, request: Request) -> tuple[float, ...]:
        return (0.0,)


class StrategyError(LoadBalancerError):
    """A strategy broke its contract (returned a server that cannot take the request).
    Not a RuntimeError: a gateway must not mistake a bug for a full cluster."""


class Router:
    """The stage-1 balancer API with a pluggable routing strategy, and a request record.

    >>> from solution.core.routing import Router, LeastConnections
    >>> lb = Router(LeastConnections(), speeds={"h100": 3.0})
    >>> lb.add_server("h100", 8, 80); lb.add_server("a10", 4, 24)
    >>> lb.route_request("r1", 500), lb.get_server_stats()["h100"]["speed"]
    ('h100', 3.0)
    >>> lb.route(Request("r2", 2_000, prompt_tokens=1_900))  # the prompt's length known: 100 output tokens
    'a10'

    :meth:`route` takes a :class:`~solution.core.request.Request`;
    :meth:`route_request` (stage 1's signature) builds one.

    Args:
        strategy: a strategy object (or a class, instantiated with no
            arguments); default :class:`LeastConnections`, stage 1's rule.
            Each router needs its own strategy object.
        large_request_tokens, large_request_min_memory_gb: as in stage 1.
        queue_per_server: requests a server accepts beyond its ``capacity``
            into its own waiting queue (early binding); 0 (default, late
            binding: servers are never over-committed) or ``None`` (unbounded).
        speeds: relative speed per server id (default 1.0); ``add_server``'s
            ``speed`` keyword overrides it.
        refresh_every: 0 (default: strategies see the current state) or k:
            they see loads and tokens as of the last refresh, taken every k
            routing decisions (the bulletin board: not even this router's
            own requests since then are counted).
        models: a :class:`~solution.core.latency.LatencyModel` per server id;
            a server without one gets ``REFERENCE_MODEL.scaled(speed)``.
            Strategies that price requests in seconds read ``server.model``.

    Costs: bookkeeping is O(1) per call plus the strategy's hook (O(log S)
    for indexed strategies); each strategy documents its decision cost.
    ``get_server_stats`` and ``explain`` are O(S + R) and O(S log S).
    A refresh is O(S), so O(S / k) per decision.

    Raises:
        TypeError / ValueError: bad arguments (nothing is changed).
        StrategyInUseError (a ValueError): the strategy serves another router.
    """

    def __init__(
        self,
        strategy: Strategy | type | None = None,
        *,
        large_request_tokens: int = 4096,
        large_request_min_memory_gb: int = 80,
        queue_per_server: int | None = 0,
        speeds: Mapping[str, float] | None = None,
        refresh_every: int = 0,
        models: Mapping[str, LatencyModel] | None = None,
    ) -> None:
        require_int(large_request_tokens, "large_request_tokens")
        require_int(large_request_min_memory_gb, "large_request_min_memory_gb")
        if queue_per_server is not None:
            require_int(queue_per_server, "queue_per_server", minimum=0)
        require_int(refresh_every, "refresh_every", minimum=0)
        if speeds is not None and not isinstance(speeds, Mapping):
            raise TypeError(f"speeds must map server ids to numbers, got {type(speeds).__name__}")
        self.speeds = {require_id(k, "speeds key"): require_positive(v, f"speeds[{k!r}]") for k, v in (speeds or {}).items()}
        if models is not None and not isinstance(models, Mapping):
            raise TypeError(f"models must map server ids to LatencyModel objects, got {type(models).__name__}")
        for k, m in (models or {}).items():
            require_id(k, "models key")
            if not isinstance(m, LatencyModel):
                raise TypeError(f"models[{k!r}] must be a solution.core.latency.LatencyModel, got {type(m).__name__}")
        self.models: dict[str, LatencyModel] = dict(models or {})
        if strategy is None:
            strategy = LeastConnections()
        elif isinstance(strategy, type):
            strategy = strategy()
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must implement solution.core.routing.Strategy, got {type(strategy).__name__}")
        self.large_request_tokens = large_request_tokens
        self.large_request_min_memory_gb = large_request_min_memory_gb
        self.queue_per_server = queue_per_server
        self.refresh_every = refresh_every
        self._servers: dict[str, ServerState] = {}
        self._routable: list[ServerState] = []
        self._requests: dict[str, ServerState] = {}
        self._next_order = 0
        self._decisions = 0
        self._weighted = False  # set_weight was called: stats show the health view
        strategy.attach(self)
        self._strategy = strategy

    @property
    def strategy(self) -> Strategy:
        """The routing strategy (read-only)."""
        return self._strategy

    # -- the stage-1 API ---------------------------------------------------

    def add_server(self, server_id: str, capacity: int, gpu_memory_gb: int, *, speed: float | None = None,
                   pool: str = "shared", version: str = "v0") -> None:  # fmt: skip
        """Add a server (``speed``: relative speed, default ``speeds.get(server_id, 1.0)``).  O(1) + hook.

        Its latency model is ``models[server_id]``, else ``REFERENCE_MODEL.scaled(speed)``.
        ``pool`` labels it (stage 6): ``"shared"`` (the default) is the pool
        every tier may use; a tier pinned to another pool uses that pool's
        servers first (:attr:`ServerState.pool`).  Only a strategy that reads
        the label (stage 6's tier routing) treats pools differently.
        ``version`` labels its software version (stage 7, :attr:`ServerState.version`,
        default ``"v0"``): a rolling deploy adds servers of the new version, and a
        canary split sends a share of the traffic to them.

        Raises:
            TypeError / ValueError: as stage 1, ``speed`` not a number > 0, ``pool`` or ``version`` not a non-empty str.
            DuplicateServerError (a ValueError): the id is present (draining included).
        """
        require_id(server_id, "server_id")
        require_int(capacity, "capacity", maximum=MAX_CAPACITY)
        require_int(gpu_memory_gb, "gpu_memory_gb")
        speed = self.speeds.get(server_id, 1.0) if speed is None else require_positive(speed, "speed")
        require_id(pool, "pool")
        require_id(version, "version")
        existing = self._servers.get(server_id)
        if existing is not None:
            state = "draining" if existing.draining else "present"
            raise DuplicateServerError(
                f"server {server_id!r} is already {state}; remove it and wait for its drain, or add the new server under another id"
            )
        model = self.models.get(server_id) or REFERENCE_MODEL.scaled(speed)
        s = ServerState(server_id, capacity, gpu_memory_gb, speed, self._next_order,
                        gpu_memory_gb >= self.large_request_min_memory_gb, model, pool, version)  # fmt: skip
        self._next_order += 1
        self._servers[server_id] = s
        s._slot = len(self._routable)
        self._routable.append(s)
        self._strategy.server_added(s)

    def remove_server(self, server_id: str) -> None:
        """Drain a server: no new requests; it disappears with its last one.  O(1) + hook.

        Raises:
            TypeError / ValueError: bad id.  UnknownServerError (a KeyError): not present.
        """
        require_id(server_id, "server_id")
        s = self._servers.get(server_id)
        if s is None:
            raise UnknownServerError(f"server {server_id!r} is not present; get_server_stats() lists the servers")
        if s.draining:
            return
        s._draining = True
        self._unlist(s)
        self._strategy.server_changed(s)
        if not s._active:
            self._forget(s)

    def route_request(self, request_id: str, estimated_tokens: int, *, prompt_tokens: int | None = None) -> str:
        """Stage 1's entry point: ``route(Request(request_id, estimated_tokens, prompt_tokens))``.

        ``estimated_tokens`` is prompt plus expected output; give
        ``prompt_tokens`` when known (a gateway tokenizes the prompt), else
        every token is priced as an output token.  Raises as :meth:`route`.
        """
        return self.route(Request(request_id, estimated_tokens, prompt_tokens))

    def route(self, request: Request) -> str:
        """Ask the strategy for a server for ``request``; record the request there.  O(1) + the strategy's choice.

        Raises:
            TypeError: ``request`` is not a :class:`~solution.core.request.Request`.
            DuplicateRequestError (a ValueError): its id is in flight.
            NoCapacityError (a RuntimeError): no eligible server; nothing recorded.
            StrategyError: the strategy returned a server that cannot take the request.
        """
        if not isinstance(request, Request):
            raise TypeError(f"route takes a solution.core.request.Request, got {type(request).__name__}; "
                            "route_request(request_id, estimated_tokens) takes the bare values")  # fmt: skip
        request_id = request.request_id
        if request_id in self._requests:
            raise DuplicateRequestError(
                f"request {request_id!r} is already in flight on server {self._requests[request_id].server_id!r}; "
                "complete it first or use a new id"
            )
        if self.refresh_every and self._decisions % self.refresh_every == 0:
            self.refresh()
        self._decisions += 1
        s = self._strategy.choose(request)
        if s is None:
            raise NoCapacityError(
                f"no eligible server can take request {request_id!r} ({request.estimated_tokens} tokens); "
                "retry after a completion, add a server, or queue the request"
            )
        if not isinstance(s, ServerState) or self._servers.get(s.server_id) is not s or not self.eligible(s, request):
            raise StrategyError(
                f"{type(self._strategy).__name__}.choose returned {s!r}, which cannot take request {request_id!r}; "
                "return an eligible ServerState of this router (Router.eligible), or None when there is none"
            )
        return self._record(request, s)

    def place(self, request: Request, server_id: str) -> str:
        """Record ``request`` on ``server_id`` without asking the strategy (a replay, a pinned session, a demo).  O(1) + hook.

        Raises:
            TypeError: ``request`` is not a Request.  DuplicateRequestError (a ValueError): its id is in flight.
            UnknownServerError (a KeyError): no such server.
            NoCapacityError (a RuntimeError): that server cannot take it (full, draining or too small); nothing recorded.
        """
        if not isinstance(request, Request):
            raise TypeError(f"place takes a solution.core.request.Request, got {type(request).__name__}")
        require_id(server_id, "server_id")
        if request.request_id in self._requests:
            raise DuplicateRequestError(f"request {request.request_id!r} is already in flight; complete it first or use a new id")
        s = self._servers.get(server_id)
        if s is None:
            raise UnknownServerError(f"server {server_id!r} is not present; get_server_stats() lists the servers")
        if not self.eligible(s, request):
            raise NoCapacityError(f"server {server_id!r} cannot take request {request.request_id!r} (full, draining or too small)")
        return self._record(request, s)

    def _record(self, request: Request, s: ServerState) -> str:
        request_id = request.request_id
        s._active[request_id] = request
        s._load += 1
        s._tokens += request.estimated_tokens
        s._out += request.output_tokens
        if not self.refresh_every:
            self._sync(s)
        self._requests[request_id] = s
        self._strategy.server_changed(s)
        return s.server_id

    def complete_request(self, request_id: str) -> None:
        """Free the request's slot; finish a drain when it was the last one.  O(1) + hook.

        Raises:
            TypeError / ValueError: bad id.  UnknownRequestError (a KeyError): not in flight.
        """
        require_id(request_id, "request_id")
        s = self._requests.pop(request_id, None)
        if s is None:
            raise UnknownRequestError(f"request {request_id!r} is not in flight (never routed, or already completed)")
        request = s._active.pop(request_id)
        s._load -= 1
        s._tokens -= request.estimated_tokens
        s._out -= request.output_tokens
        if not self.refresh_every:
            self._sync(s)
        if s.draining and not s._active:
            self._forget(s)
        else:
            self._strategy.server_changed(s)

    def _unlist(self, s: ServerState) -> None:
        """Take ``s`` out of the routable list (swap with the last).  O(1)."""
        if s._slot < 0:
            return
        last = self._routable.pop()
        if last is not s:
            self._routable[s._slot] = last
            last._slot = s._slot
        s._slot = -1

    def server(self, server_id: str) -> ServerState:
        """The read-only :class:`ServerState` of a present server (draining included).  O(1).

        Raises: TypeError / ValueError (bad id); UnknownServerError (a KeyError): not present.
        """
        require_id(server_id, "server_id")
        s = self._servers.get(server_id)
        if s is None:
            raise UnknownServerError(f"server {server_id!r} is not present; get_server_stats() lists the servers")
        return s

    def __contains__(self, server_id: object) -> bool:
        """True when ``server_id`` is present (draining included).  O(1)."""
        return isinstance(server_id, str) and server_id in self._servers

    def set_weight(self, server_id: str, weight: float, *, limit: int | None = None) -> None:
        """Give a server a health weight in [0, 1] and, optionally, a cap on its requests in flight.  O(1) + hook.

        The path between health checks and routing (stage 4): ``weight = 0``
        makes the server ineligible (it leaves the routable list, so no
        strategy sees it, sampled or indexed); otherwise its *effective
        capacity* is ``max(1, floor(capacity * weight))``, further capped by
        ``limit`` (a half-open circuit's trial requests), and every strategy
        sees that capacity through :attr:`ServerState.capacity`, the load
        ratio and :meth:`available`.  Requests already in flight stay; a
        server over its new capacity takes nothing until it drops below.
        Weight 1 without a limit is the server as added (no change to any
        decision).  Allowed on a draining server (it changes nothing there
        until it is gone).

        Cost: O(1) plus the strategy's ``server_changed`` (O(log S) for
        indexed strategies): one re-key, no scan.

        Raises:
            TypeError: ``weight`` not a real number, ``limit`` not an int or None.
            ValueError: ``weight`` outside [0, 1] (or NaN), ``limit`` < 0.
            UnknownServerError (a KeyError): no such server.
            Nothing is changed when it raises.
        """
        require_id(server_id, "server_id")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise TypeError(f"weight must be a number in [0, 1], got {type(weight).__name__} {weight!r}")
        if not 0.0 <= weight <= 1.0:  # NaN fails both comparisons
            raise ValueError(f"weight must be in [0, 1] (0: no traffic, 1: full share), got {weight!r}")
        if limit is not None:
            require_int(limit, "limit", minimum=0)
        s = self._servers.get(server_id)
        if s is None:
            raise UnknownServerError(f"server {server_id!r} is not present; get_server_stats() lists the servers")
        weight = float(weight)
        self._weighted = True
        eff = max(1, math.floor(s._capacity * weight))
        if limit is not None:
            eff = max(1, min(eff, limit))
        if (weight, eff, limit) == (s._weight, s._eff, s._trial):
            return
        s._weight, s._eff, s._trial = weight, eff, limit
        if not s._draining:
            if weight == 0.0:
                self._unlist(s)
            elif s._slot < 0:
                s._slot = len(self._routable)
                self._routable.append(s)
        self._strategy.server_changed(s)

    @staticmethod
    def _sync(s: ServerState) -> None:
        """Make what strategies see of ``s`` its own counts plus the other balancers' (0 for a lone router)."""
        load, tokens, out = s._others
        s._seen_load, s._seen_tokens, s._seen_out = s._load + load, s._tokens + tokens, s._out + out

    def get_server_stats(self) -> dict[str, dict[str, Any]]:
        """Stage 1's snapshot plus ``speed``, ``outstanding_tokens``, ``outstanding_output_tokens`` (this router's true values),
        and, once :meth:`set_weight` has been called on this router, the health view of every server:
        ``weight``, ``effective_capacity``, ``trial_limit``.  O(S + R).

        ``capacity`` and ``load_ratio`` stay stage 1's (the batch as added).
        A router that never had a weight set answers exactly as in stages 1-3.
        """
        stats = {
            s.server_id: {
                "capacity": s._capacity,
                "current_load": s._load,
                "gpu_memory_gb": s.gpu_memory_gb,
                "load_ratio": s._load / s._capacity,
                "is_draining": s.draining,
                "active_requests": list(s._active),
                "speed": s.speed,
                "outstanding_tokens": s._tokens,
                "outstanding_output_tokens": s._out,
            }
            for s in self._servers.values()
        }
        if self._weighted:
            for s in self._servers.values():
                stats[s.server_id].update(weight=s._weight, effective_capacity=s._eff, trial_limit=s._trial)
        return stats

    # -- feedback, explanations, staleness -----------------------------------------

    def observe(self, request_id: str, latency: float | None = None, tokens_per_s: float | None = None) -> None:
        """Report how an in-flight request went, before ``complete_request``; optional.

        Give ``latency`` (seconds, end to end) or ``tokens_per_s``; the
        strategy receives seconds per expected output token (per decode
        iteration: ``latency / max(1, output_tokens)``; the whole estimate
        when the caller gave no prompt length), or ``1 / tokens_per_s``.  O(1) + the strategy's
        ``observe`` (O(log S) for weighted response time).

        Raises:
            TypeError / ValueError: not exactly one of them, or not a number > 0.
            UnknownRequestError (a KeyError): the request is not in flight.
        """
        require_id(request_id, "request_id")
        if (latency is None) == (tokens_per_s is None):
            raise TypeError("observe takes exactly one of latency= or tokens_per_s=")
        value = require_positive(latency if latency is not None else tokens_per_s, "latency" if latency is not None else "tokens_per_s")
        s = self._requests.get(request_id)
        if s is None:
            raise UnknownRequestError(f"request {request_id!r} is not in flight; call observe before complete_request")
        per_token = value / max(1, s._active[request_id].output_tokens) if latency is not None else 1.0 / value
        self._strategy.observe(s, per_token)

    def explain(self, request: Request | int, *, prompt_tokens: int | None = None) -> Decision:
        """What the strategy would do with ``request`` now, and why; changes nothing.  O(S log S).

        ``request``: a :class:`~solution.core.request.Request`, or its
        estimated tokens (then ``prompt_tokens`` as in :meth:`route_request`).
        """
        if not isinstance(request, Request):
            request = Request("(explain)", request, prompt_tokens)
        elif prompt_tokens is not None:
            raise TypeError("explain takes prompt_tokens only with a token count; a Request carries its own")
        return self._strategy.explain(request)

    def refresh(self) -> None:
        """Let the strategy see the current loads and tokens (with ``refresh_every``).  O(S)."""
        for s in self._servers.values():
            seen = (s._seen_load, s._seen_tokens, s._seen_out)
            self._sync(s)
            if seen != (s._seen_load, s._seen_tokens, s._seen_out):
                self._strategy.server_changed(s)

    # -- for strategies -------------------------------------------------------------

    def is_large(self, request: Request) -> bool:
        """True when the request needs a big-memory server (its estimated tokens, prompt and output, fill the KV cache).  O(1)."""
        return request.estimated_tokens > self.large_request_tokens

    def limit(self, server: ServerState) -> float:
        """How many requests the server accepts: its (effective) capacity plus its queue (inf if unbounded),
        at most its trial limit when it has one (:meth:`set_weight`).  O(1)."""
        cap = math.inf if self.queue_per_server is None else server._eff + self.queue_per_server
        return cap if server._trial is None else min(cap, server._trial)

    def available(self, server: ServerState) -> bool:
        """Not draining, a health weight above 0, and below its limit (true state, not the seen one).  O(1)."""
        return not server._draining and server._weight > 0.0 and server._load < self.limit(server)

    def eligible(self, server: ServerState, request: Request) -> bool:
        """Available, and big enough for a large request.  O(1)."""
        return self.available(server) and (server.big or request.estimated_tokens <= self.large_request_tokens)

    def routable_servers(self) -> list[ServerState]:
        """The non-draining servers with a health weight above 0 (the router's own list: do not change it).  O(1)."""
        return self._routable

    def eligible_servers(self, request: Request) -> list[ServerState]:
        """Every eligible server, in order of addition.  O(S log S)."""
        return sorted((s for s in self._routable if self.eligible(s, request)), key=lambda s: s.order)

    def excluded(self, request: Request, considered: set[str]) -> tuple[tuple[str, str], ...]:
        """``(server id, reason)`` for the servers not in ``considered``, in order of addition.  O(S)."""
        out = []
        for s in self._servers.values():
            if s.server_id in considered:
                continue
            if s.draining:
                why = "draining"
            elif s._weight == 0.0:
                why = "weight 0 (health)"
            elif s._trial is not None and s._load >= s._trial:
                why = f"trial limit {s._trial} reached (half-open)"
            elif not self.available(s):
                why = "full"
            elif not self.eligible(s, request):
                why = f"large request needs >= {self.large_request_min_memory_gb} GB"
            else:
                why = "not considered"
            out.append((s.server_id, why))
        return tuple(out)

    def sample(self, rng: random.Random, k: int, request: Request) -> list[ServerState]:
        """Up to ``k`` distinct eligible servers drawn at random.  O(k) expected.

        Draws ``rng.randrange(len(routable_servers()))`` up to ``4k + 8``
        times, keeping eligible servers not drawn before; if that leaves fewer
        than ``k``, it completes the draw from the eligible servers not yet
        drawn with ``rng.sample`` (an O(S) scan, only when most servers are
        ineligible).  Deterministic for a given ``rng`` state.
        """
        servers, picks, seen = self._routable, [], set()
        n = len(servers)
        if n == 0:
            return []
        for _ in range(4 * k + 8):
            s = servers[rng.randrange(n)]
            if s.order not in seen and self.eligible(s, request):
                picks.append(s)
                seen.add(s.order)
                if len(picks) == k:
                    return picks
        rest = [s for s in servers if s.order not in seen and self.eligible(s, request)]
        return picks + rng.sample(rest, min(k - len(picks), len(rest)))

    def _forget(self, s: ServerState) -> None:
        del self._servers[s.server_id]
        self._strategy.server_removed(s)


@dataclass(frozen=True, eq=False)
class RouterFactory:
    """A picklable zero-argument factory of routers, for the simulator and parallel runs.

    >>> make = RouterFactory(RoundRobin)
    >>> make().strategy is not make().strategy   # a fresh strategy per router
    True
    """

    strategy: Callable[..., Strategy] = LeastConnections
    options: Mapping[str, Any] = field(default_factory=dict)
    speeds: Mapping[str, float] | None = None
    queue_per_server: int | None = 0
    refresh_every: int = 0
    label: str = ""
    models: Mapping[str, LatencyModel] | None = None
    replicas: int = 0  # >= 1: a ReplicatedRouter of that many replicas refreshed every refresh_every decisions

    def __call__(self) -> Router | ReplicatedRouter:
        if self.replicas:
            return ReplicatedRouter(lambda: self.strategy(**self.options), self.replicas, refresh_every=self.refresh_every,
                                    queue_per_server=self.queue_per_server, speeds=self.speeds, models=self.models)  # fmt: skip
        return Router(self.strategy(**self.options), speeds=self.speeds, queue_per_server=self.queue_per_server,
                      refresh_every=self.refresh_every, models=self.models)  # fmt: skip

    @property
    def name(self) -> str:
        """``label``, or the strategy's name."""
        return self.label or getattr(self.strategy, "name", getattr(self.strategy, "__name__", "strategy"))


class ReplicatedRouter:
    """Several independent balancer replicas in front of one fleet, each exact about its own requests.

    A real deployment runs several balancer processes behind one address;
    requests reach them in turn (here: replica ``i mod R`` takes the i-th
    request).  Each replica is a :class:`Router` with its own strategy: it
    counts the requests *it* routed and completed exactly, at once, and sees
    the other replicas' requests only as of the last refresh, taken every
    ``refresh_every`` decisions of the whole group (a replica polling the
    servers' load).  With one replica nothing is ever stale: a single
    balancer counting its own requests does not herd.  Contrast with
    ``Router(refresh_every=k)``, Mitzenmacher's bulletin board, where the
    balancer does not count even its own requests between refreshes.

    Modelled with unbounded per-server queues (``queue_per_server=None``,
    early binding): a server never refuses work, so no replica needs the
    others' state to decide whether it may send a request.

    It has the stage-1 API (``add_server``, ``remove_server``,
    ``route_request``, ``route``, ``complete_request``, ``get_server_stats``,
    ``observe``).  Costs: a decision is the replica's strategy's cost; a
    refresh is O(R S) plus a hook per server and replica, so O(R S log S / k)
    per decision for indexed strategies.

    Raises:
        TypeError / ValueError: ``replicas`` not an int >= 1, ``refresh_every``
            not an int >= 1, a bounded ``queue_per_server``, or bad router options.
    """

    def __init__(self, strategy: Callable[[], Strategy], replicas: int, *, refresh_every: int,
                 queue_per_server: int | None = None, **router_options: Any) -> None:  # fmt: skip
        require_int(replicas, "replicas")
        require_int(refresh_every, "refresh_every")
        if queue_per_server is not None:
            raise ValueError("ReplicatedRouter models unbounded per-server queues (queue_per_server=None): "
                             "with bounded ones a replica would need the others' state to know a server is full")  # fmt: skip
        self.replicas = [Router(strategy(), queue_per_server=None, **router_options) for _ in range(replicas)]
        for i, r in enumerate(self.replicas[1:], start=1):  # replicas draw independently (replica 0 as a lone router)
            rng = getattr(r.strategy, "rng", None)
            if isinstance(rng, random.Random):
                rng.seed(f"{getattr(r.strategy, 'seed', 0)}/replica {i}")
        self.refresh_every = refresh_every
        self._owner: dict[str, Router] = {}
        self._decisions = 0

    def add_server(self, server_id: str, capacity: int, gpu_memory_gb: int, **options: Any) -> None:
        """Add the server to every replica (or to none: a failed call changes nothing).  O(R) + hooks.

        Raises: as :meth:`Router.add_server`; DuplicateServerError while any replica still drains that id.
        """
        require_id(server_id, "server_id")
        if any(server_id in r._servers for r in self.replicas):
            raise DuplicateServerError(f"server {server_id!r} is still present or draining in a replica; "
                                       "wait for its drain, or add the new server under another id")  # fmt: skip
        for r in self.replicas:  # the first raises on a bad argument before any replica changed
            r.add_server(server_id, capacity, gpu_memory_gb, **options)

    def remove_server(self, server_id: str) -> None:
        """Drain the server in every replica that has it (a replica with none of its requests forgets it at once).  O(R) + hooks.

        Raises: TypeError / ValueError (bad id); UnknownServerError (a KeyError): no replica has it.
        """
        require_id(server_id, "server_id")
        holding = [r for r in self.replicas if server_id in r._servers]
        if not holding:
            raise UnknownServerError(f"server {server_id!r} is not present; get_server_stats() lists the servers")
        for r in holding:
            r.remove_server(server_id)

    def route_request(self, request_id: str, estimated_tokens: int, *, prompt_tokens: int | None = None) -> str:
        """As :meth:`Router.route_request`, on the replica whose turn it is."""
        return self.route(Request(request_id, estimated_tokens, prompt_tokens))

    def route(self, request: Request) -> str:
        """As :meth:`Router.route`, on the replica whose turn it is (refreshing every replica's view first when due)."""
        if not isinstance(request, Request):
            raise TypeError(f"route takes a solution.core.request.Request, got {type(request).__name__}")
        if request.request_id in self._owner:
            raise DuplicateRequestError(f"request {request.request_id!r} is already in flight; complete it first or use a new id")
        if self._decisions % self.refresh_every == 0:
            self.refresh()
        replica = self.replicas[self._decisions % len(self.replicas)]
        self._decisions += 1
        sid = replica.route(request)
        self._owner[request.request_id] = replica
        return sid

    def complete_request(self, request_id: str) -> None:
        """Complete it on the replica that routed it (which sees it at once).  O(1) + hook."""
        require_id(request_id, "request_id")
        replica = self._owner.pop(request_id, None)
        if replica is None:
            raise UnknownRequestError(f"request {request_id!r} is not in flight (never routed, or already completed)")
        replica.complete_request(request_id)

    def observe(self, request_id: str, **feedback: Any) -> None:
        """Feedback to the replica that routed the request."""
        replica = self._owner.get(request_id)
        if replica is None:
            raise UnknownRequestError(f"request {request_id!r} is not in flight; call observe before complete_request")
        replica.observe(request_id, **feedback)

    def set_weight(self, server_id: str, weight: float, *, limit: int | None = None) -> None:
        """:meth:`Router.set_weight` in every replica that has the server (all or none change).  O(R) + hooks.

        With a ``limit`` each replica caps its own requests (a replica does
        not know the others' trials between refreshes).
        """
        require_id(server_id, "server_id")
        holding = [r for r in self.replicas if server_id in r._servers]
        if not holding:
            raise UnknownServerError(f"server {server_id!r} is not present; get_server_stats() lists the servers")
        for r in holding:  # the first raises on a bad argument before any replica changed
            r.set_weight(server_id, weight, limit=limit)

    def refresh(self) -> None:
        """Every replica learns the others' current counts.  O(R S) + hooks."""
        totals: dict[str, list[int]] = {}
        for r in self.replicas:
            for sid, s in r._servers.items():
                t = totals.setdefault(sid, [0, 0, 0])
                t[0] += s._load
                t[1] += s._tokens
                t[2] += s._out
        for r in self.replicas:
            for sid, s in r._servers.items():
                load, tokens, out = totals[sid]
                others = (load - s._load, tokens - s._tokens, out - s._out)
                if others != s._others:
                    s._others = others
                    r._sync(s)
                    r._strategy.server_changed(s)

    def get_server_stats(self) -> dict[str, dict[str, Any]]:
        """The servers' true state, summed over replicas.  O(R (S + requests))."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.replicas:
            for sid, st in r.get_server_stats().items():
                mine = out.setdefault(sid, dict(st, current_load=0, active_requests=[], outstanding_tokens=0, outstanding_output_tokens=0))
                mine["current_load"] += st["current_load"]
                mine["active_requests"] += st["active_requests"]
                mine["outstanding_tokens"] += st["outstanding_tokens"]
                mine["outstanding_output_tokens"] += st["outstanding_output_tokens"]
                mine["load_ratio"] = mine["current_load"] / mine["capacity"]
        return out
