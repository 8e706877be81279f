"""Stage 5's check: an implementation's session table, affinity, bounded-load hash and prefix-aware router against the reference's.

A case builds one object under test (:class:`AffinityHarnessMaker`, by
``make["kind"]``):

* ``"table"``: ``impl.SessionTable(ttl, max_sessions)``, driven with explicit
  times;
* ``"affinity"``: a :class:`~solution.core.routing.Router` running
  ``impl.SessionAffinity(inner, AffinityPolicy(**policy), clock=ManualClock())``;
* ``"hash"``: a Router running ``impl.BoundedLoadHash(epsilon, vnodes, seed=seed)``;
* ``"prefix"``: a Router running ``impl.PrefixAware(inner, **options)``.

The inner strategy is :class:`~solution.core.routing.RoundRobin` (or a seeded
:class:`~solution.core.routing.RandomChoice`): both live in the support code,
whole in the candidate's bundle (where stage 1's least-connections is the
candidate's to write).  After every call the harness's ``snapshot()`` is
compared with the reference's recorded one: the table's ``stats()`` and its
sessions in order of use; or the router's ``get_server_stats()``, the
strategy's ``stats()`` and its sessions (affinity) or per-server index sizes
(prefix-aware).  A failed call must leave it unchanged.  Floats are compared
rounded to nine decimals.

The time span of every case outside the TTL groups stays below the TTL, and
soft affinity's slack matters only in its own group (the others use hard
mode or ``slack=inf``), so a rule broken shows in the group that teaches it.

:func:`run_stage5` (``solution.checks.check_stage5``) prints one line per
group; :func:`random_ops5` gives the seeded sequences (tests and hidden cases).
"""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any

from solution.checks.common import CheckReport, Op, round_floats
from solution.checks.runner import StageSpec, as_groups, run_check
from solution.checks.script import Group

__all__ = ["AffinityHarnessMaker", "STAGE5_GROUPS", "RANDOM_GROUP", "GROUP_NAMES", "SPEC", "random_ops5", "run_stage5"]

INF = float("inf")


def _inner(name: Any) -> Any:
    """The inner strategy a case names: ``"round-robin"`` or ``"random:<seed>"`` (support code, in every tree)."""
    from solution.core.routing import RandomChoice, RoundRobin

    if isinstance(name, str) and name.startswith("random:"):
        return RandomChoice(int(name.split(":", 1)[1]))
    if name == "round-robin":
        return RoundRobin()
    if name == "class":  # bad input: a class, not an object
        return RoundRobin
    return name  # bad input: passed as it is (None, a str, ...)


class TableCase:
    """One ``impl.SessionTable``; calls keep their names (``size`` is ``len``, ``contains`` is ``in``)."""

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        self.table = impl.SessionTable(*make.get("args", []), **make.get("kwargs", {}))

    def get(self, session_id: Any, now: Any) -> Any:
        return self.table.get(session_id, now)

    def peek(self, session_id: Any, now: Any) -> Any:
        return self.table.peek(session_id, now)

    def expires_at(self, session_id: Any) -> Any:
        return round_floats(self.table.expires_at(session_id))

    def assign(self, session_id: Any, server_id: Any, now: Any) -> None:
        return self.table.assign(session_id, server_id, now)

    def forget(self, session_id: Any) -> bool:
        return self.table.forget(session_id)

    def forget_server(self, server_id: Any) -> int:
        return self.table.forget_server(server_id)

    def expire(self, now: Any) -> int:
        return self.table.expire(now)

    def size(self) -> int:
        return len(self.table)

    def contains(self, session_id: Any) -> bool:
        return session_id in self.table

    def snapshot(self) -> dict[str, Any]:
        """The counters and the sessions held, least recently used first."""
        return {"stats": dict(self.table.stats()), "sessions": [[k, v] for k, v in self.table.sessions().items()]}


class RouterCase:
    """A Router running one stage-5 strategy, with a manual clock.

    Calls: ``add_server``, ``remove_server``, ``set_weight``, ``complete_request``
    (the router's), ``route(request_id, tokens, session, prompt, blocks)``
    (a :class:`~solution.core.request.Request`), ``tick(seconds)``, and the
    strategy's own: ``pin``, ``peek_session`` (affinity), ``home``, ``homes``,
    ``bound`` (hash), ``match``, ``held_prefix``, ``cached_blocks`` (prefix).
    """

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        from solution.core.affinity_types import AffinityPolicy
        from solution.core.clock import ManualClock
        from solution.core.routing import Router

        self.kind = make["kind"]
        self.clock = ManualClock()
        if self.kind == "affinity":
            policy = AffinityPolicy(**make.get("policy", {}))
            table = impl.SessionTable(**make["table"]) if make.get("table") else None
            self.strategy = impl.SessionAffinity(_inner(make.get("inner", "round-robin")), policy, clock=self.clock, table=table)
        elif self.kind == "hash":
            self.strategy = impl.BoundedLoadHash(**make.get("options", {}))
        else:
            self.strategy = impl.PrefixAware(_inner(make.get("inner", "round-robin")), **make.get("options", {}))
        self.router = Router(self.strategy)
        for sid, capacity, memory in make.get("servers", []):
            self.router.add_server(sid, capacity, memory)

    # the router
    def add_server(self, server_id: Any, capacity: Any, memory: Any) -> None:
        return self.router.add_server(server_id, capacity, memory)

    def remove_server(self, server_id: Any) -> None:
        return self.router.remove_server(server_id)

    def set_weight(self, server_id: Any, weight: Any, limit: Any = None) -> None:
        return self.router.set_weight(server_id, weight, limit=limit)

    def complete_request(self, request_id: Any) -> None:
        return self.router.complete_request(request_id)

    def route(self, request_id: Any, tokens: Any, session: Any = None, prompt: Any = None, blocks: Any = ()) -> str:
        from solution.core.request import Request

        blocks = tuple(blocks) if isinstance(blocks, (list, tuple)) else blocks
        return self.router.route(Request(request_id, tokens, prompt, session, blocks))

    def tick(self, seconds: Any) -> Any:
        return round_floats(self.clock.advance(seconds))

    # SessionAffinity
    def pin(self, session_id: Any, server_id: Any) -> None:
        return self.strategy.pin(session_id, server_id, self.clock.now)

    def peek_session(self, session_id: Any) -> Any:
        return self.strategy.table.peek(session_id, self.clock.now)

    # BoundedLoadHash
    def home(self, key: Any) -> Any:
        return self.strategy.home(key)

    def homes(self, keys: Any) -> dict[str, Any]:
        return {k: self.strategy.home(k) for k in keys}

    def bound(self) -> int:
        return self.strategy.bound()

    # PrefixAware
    def match(self, blocks: Any) -> list[Any]:
        from solution.core.request import Request

        m, holders = self.strategy.match(Request("(match)", 1, None, None, tuple(blocks)))
        return [m, [s.server_id for s in holders]]

    def held_prefix(self, server_id: Any, blocks: Any) -> int:
        return self.strategy.held_prefix(server_id, tuple(blocks) if isinstance(blocks, list) else blocks)

    def cached_blocks(self) -> dict[str, int]:
        return dict(self.strategy.cached_blocks())

    def snapshot(self) -> dict[str, Any]:
        """The servers' stats and the strategy's counters; the sessions (affinity) or the index sizes (prefix-aware)."""
        out = {"servers": round_floats(self.router.get_server_stats()), "stats": round_floats(dict(self.strategy.stats()))}
        if self.kind == "affinity":
            out["sessions"] = [[k, v] for k, v in self.strategy.sessions().items()]
        elif self.kind == "prefix":
            out["cached"] = dict(self.strategy.cached_blocks())
        return out


class _Bare:
    """What a case that only builds (and must fail to) returns."""

    def snapshot(self) -> None:
        return None


class AffinityHarnessMaker:
    """Stage 5's cases: ``{"kind": "table" | "affinity" | "hash" | "prefix", ...}``; ``{"bare": kind, ...}`` only builds the class with bad arguments."""

    stage = 5
    snapshot = "snapshot"

    def build(self, impl: Any, make: Any) -> Any:
        bare = make.get("bare")
        if bare == "table":
            impl.SessionTable(*make.get("args", []), **make.get("kwargs", {}))
        elif bare == "hash":
            impl.BoundedLoadHash(*make.get("args", []), **make.get("kwargs", {}))
        elif bare == "prefix":
            impl.PrefixAware(_inner(make.get("inner", "round-robin")), **make.get("kwargs", {}))
        elif bare == "affinity":
            from solution.core.clock import ManualClock

            kwargs = dict(make.get("kwargs", {}))
            if kwargs.get("clock", "manual") == "manual":
                kwargs["clock"] = ManualClock()
            elif kwargs.get("clock") == "absent":
                del kwargs["clock"]
            impl.SessionAffinity(_inner(make.get("inner", "round-robin")), *make.get("args", []), **kwargs)
        else:
            return TableCase(impl, make) if make["kind"] == "table" else RouterCase(impl, make)
        return _Bare()


# -- the cases -------------------------------------------------------------------------------------------------------

def _table(ttl: float = 10.0, max_sessions: int = 100) -> dict[str, Any]:
    return {"kind": "table", "kwargs": {"ttl": ttl, "max_sessions": max_sessions}}


def _servers(n: int = 3, capacity: int = 4, memory: int = 80) -> list[list[Any]]:
    return [[f"s{i}", capacity, memory] for i in range(n)]


def _affinity(mode: str = "soft", slack: float = INF, ttl: float = 600.0, max_sessions: int = 1000, n: int = 3, capacity: int = 4,
              servers: list[list[Any]] | None = None, inner: str = "round-robin") -> dict[str, Any]:  # fmt: skip
    return {"kind": "affinity", "inner": inner, "policy": {"mode": mode, "slack": slack, "ttl": ttl, "max_sessions": max_sessions},
            "servers": servers if servers is not None else _servers(n, capacity)}  # fmt: skip


def _hash(epsilon: float = 0.25, vnodes: int = 20, seed: int = 0, servers: list[list[Any]] | None = None) -> dict[str, Any]:
    return {"kind": "hash", "options": {"epsilon": epsilon, "vnodes": vnodes, "seed": seed},
            "servers": servers if servers is not None else _servers(5, 8)}  # fmt: skip


def _prefix(max_blocks: int = 16, slack: float = 0.25, min_match: int = 1, n: int = 3, capacity: int = 4) -> dict[str, Any]:
    return {"kind": "prefix", "inner": "round-robin", "servers": _servers(n, capacity),
            "options": {"max_blocks_per_server": max_blocks, "slack": slack, "min_match": min_match}}  # fmt: skip


_AUTO = -1


def _route(rid: str, session: str | None = None, tokens: int = 600, prompt: int | None = _AUTO, blocks: tuple[int, ...] = ()) -> Op:
    """A route call; the prompt is five sixths of the tokens unless given (``None``: unknown)."""
    return ("route", (rid, tokens, session, tokens * 5 // 6 if prompt == _AUTO else prompt, blocks))


def _done(*rids: str) -> list[Op]:
    return [("complete_request", (rid,)) for rid in rids]


KEYS = [f"k{i}" for i in range(24)]

#: (group name, ((make, ops), ...)) in the order the notebook teaches them.
STAGE5_GROUPS: tuple[tuple[str, tuple[tuple[dict[str, Any], list[Op]], ...]], ...] = (
    ("session table: idle TTL, exact expiry", (
        # Used at t, gone at any now >= t + ttl; peek reads without refreshing; get/assign/expire drop the expired first.
        (_table(10.0), [("assign", ("a", "s0", 0.0)), ("assign", ("b", "s1", 2.0)), ("expires_at", ("a",)), ("peek", ("a", 9.999)),
                        ("peek", ("a", 10.0)), ("size", ()), ("contains", ("a",)), ("expire", (10.0,)), ("contains", ("a",)),
                        ("peek", ("b", 11.9)), ("get", ("b", 12.0)), ("size", ()), ("assign", ("c", "s0", 12.0)),
                        ("expire", (21.99,)), ("expire", (22.0,)), ("expires_at", ("c",))]),
        (_table(0.5), [("assign", ("x", "s0", 0.1)), ("assign", ("y", "s0", 0.3)), ("get", ("x", 0.6)), ("assign", ("x", "s1", 0.6)),
                       ("peek", ("y", 0.79)), ("peek", ("y", 0.8)), ("assign", ("z", "s2", 0.8)), ("expires_at", ("x",))]),
        (_table(5.0, 3), [("assign", ("a", "s0", 0.0)), ("assign", ("b", "s0", 1.0)), ("assign", ("c", "s1", 2.0)),
                          ("assign", ("d", "s1", 5.0)), ("assign", ("e", "s2", 6.5)), ("expire", (6.99,)), ("get", ("c", 7.0)),
                          ("expire", (100.0,)), ("get", ("e", 100.0))]),
        (_affinity(ttl=30.0), [_route("r1", "A"), *_done("r1"), ("tick", (29.5,)), ("peek_session", ("A",)), ("tick", (0.5,)),
                               ("peek_session", ("A",)), _route("r2", "A"), _route("r3", "B"), ("tick", (45.0,)), _route("r4", "C")]),
    )),
    ("session table: TTL refreshed on use", (
        (_table(10.0), [("assign", ("a", "s0", 0.0)), ("get", ("a", 8.0)), ("expires_at", ("a",)), ("peek", ("a", 17.9)),
                        ("get", ("a", 17.0)), ("expires_at", ("a",)), ("expire", (26.9,)), ("size", ()), ("get", ("a", 27.0))]),
        (_table(10.0), [("assign", ("a", "s0", 0.0)), ("assign", ("b", "s0", 1.0)), ("assign", ("c", "s1", 2.0)), ("get", ("a", 5.0)),
                        ("expire", (11.5,)), ("expire", (12.0,)), ("peek", ("a", 14.9)), ("expire", (15.0,))]),
        (_table(10.0), [("assign", ("a", "s0", 0.0)), ("assign", ("a", "s0", 6.0)), ("expires_at", ("a",)), ("assign", ("a", "s1", 7.0)),
                        ("expires_at", ("a",)), ("get", ("a", 16.5)), ("get", ("a", 26.4)), ("peek", ("a", 36.39))]),
        # A conversation that keeps talking keeps its server; one that pauses longer than the TTL starts anew.
        (_affinity(ttl=10.0), [_route("r1", "A"), *_done("r1"), ("tick", (8.0,)), _route("r2", "A"), *_done("r2"), ("tick", (8.0,)),
                               _route("r3", "A"), *_done("r3"), ("tick", (8.0,)), _route("r4", "A"), *_done("r4"), ("tick", (10.0,)),
                               _route("r5", "A")]),
        (_affinity(mode="hard", ttl=10.0, capacity=1), [_route("r1", "A"), ("tick", (6.0,)), _route("r2", "A"), ("tick", (6.0,)),
                                                         _route("r3", "A"), *_done("r1"), ("tick", (3.0,)), _route("r4", "A")]),
    )),
    ("session table: size bound, LRU eviction", (
        (_table(100.0, 3), [("assign", ("a", "s0", 0.0)), ("assign", ("b", "s1", 1.0)), ("assign", ("c", "s2", 2.0)),
                            ("get", ("a", 3.0)), ("assign", ("d", "s0", 4.0)), ("contains", ("b",)), ("assign", ("c", "s9", 5.0)),
                            ("assign", ("e", "s1", 6.0)), ("forget", ("d",)), ("assign", ("f", "s2", 7.0)), ("get", ("a", 8.0)),
                            ("forget", ("zz",))]),
        (_table(100.0, 1), [("assign", ("a", "s0", 0.0)), ("assign", ("b", "s1", 1.0)), ("get", ("a", 2.0)), ("assign", ("b", "s2", 3.0)),
                            ("forget_server", ("s2",)), ("size", ()), ("assign", ("c", "s0", 4.0))]),
        (_table(5.0, 2), [("assign", ("a", "s0", 0.0)), ("assign", ("b", "s1", 1.0)), ("assign", ("c", "s1", 5.0)),
                          ("assign", ("d", "s2", 5.5)), ("forget_server", ("s2",)), ("forget_server", ("s1",)), ("size", ())]),
        (_affinity(max_sessions=2), [_route("r1", "A"), _route("r2", "B"), _route("r3", "A"), _route("r4", "C"), *_done("r1", "r2", "r3"),
                                     _route("r5", "B"), _route("r6", "A")]),
    )),
    ("hard affinity: sticky, waits when full", (
        (_affinity(mode="hard", capacity=2), [_route("r1", "A"), _route("r2", "B"), _route("r3", "A"), _route("r4", "A"),
                                               ("peek_session", ("A",)), *_done("r1"), _route("r4", "A"), _route("r5"), _route("r6", "B")]),
        (_affinity(mode="hard", capacity=4), [("pin", ("A", "s2")), _route("r1", "A"), _route("r2", "A"), _route("r3", "A"),
                                               _route("r4", "B"), _route("r5", "A"), _route("r6", "A"), _route("r7", "A")]),
        (_affinity(mode="hard", capacity=4), [_route("r1", "A"), ("set_weight", ("s0", 1.0, 1)), _route("r2", "A"),
                                               ("set_weight", ("s0", 0.5, None)), _route("r2", "A"), _route("r3", "A"), *_done("r1"),
                                               _route("r3", "A")]),
    )),
    ("soft affinity: slack, re-map on imbalance", (
        (_affinity(slack=0.25), [_route("r1", "A"), _route("r2", "A"), _route("r3", "A", prompt=300), _route("r4", "A"),
                                 _route("r5", "B"), _route("r6", "B"), ("peek_session", ("A",))]),
        (_affinity(slack=0.0), [_route("r1", "A"), *_done("r1"), _route("r2", "A"), _route("r3", "B"), _route("r4", "A"),
                                _route("r5", "A", prompt=None)]),
        (_affinity(slack=INF, capacity=2), [_route("r1", "A"), _route("r2", "A"), _route("r3", "A", prompt=450), _route("r4", "A"),
                                            _route("r5", "A"), _route("r6", "A")]),
        (_affinity(slack=0.5), [("pin", ("A", "s1")), _route("r0"), _route("r1", "A"), ("set_weight", ("s1", 0.5, None)),
                                _route("r2", "A"), _route("r3", "A"), _route("r4", "A")]),
    )),
    ("fallback: removed, draining, down, memory", (
        (_affinity(), [_route("r1", "A"), ("remove_server", ("s0",)), _route("r2", "A", prompt=400), ("pin", ("B", "s1")),
                       ("set_weight", ("s1", 0.0, None)), _route("r3", "B", prompt=None), ("pin", ("C", "s2")), *_done("r1"),
                       _route("r4", "C"), ("set_weight", ("s1", 1.0, None)), _route("r5", "B")]),
        (_affinity(mode="hard"), [("pin", ("C", "s2")), ("remove_server", ("s2",)), _route("r1", "C", prompt=500),
                                  ("pin", ("D", "s0")), ("set_weight", ("s0", 0.0, None)), _route("r2", "D"), _route("r3", "D"),
                                  ("add_server", ("s2", 4, 80)), _route("r4", "C")]),
        (_affinity(servers=[["big0", 4, 80], ["small", 4, 24], ["big1", 4, 80]]), [
            ("pin", ("A", "small")), _route("r1", "A", tokens=200, prompt=150), _route("r2", "A", tokens=6000, prompt=5000),
            _route("r3", "A", tokens=200), ("pin", ("B", "small")), ("remove_server", ("small",)), _route("r4", "B", tokens=5000)]),
        (_affinity(mode="hard", servers=[["big0", 2, 80], ["small", 2, 24]]), [
            _route("r1", "A", tokens=100), _route("r2", "B", tokens=100), _route("r3", "B", tokens=5000, prompt=4000),
            _route("r4", "B", tokens=100), _route("r5", "B", tokens=100)]),
    )),
    ("bounded-load hashing: bound, stable keys", (
        # Bound at assignment: a hot key fills its home up to the bound, then spills clockwise.
        (_hash(), [("homes", (KEYS[:8],)), ("bound", ())] + [_route(f"r{i}", "hot") for i in range(10)] + [("bound", ())]
         + _done("r0", "r1", "r2") + [_route("r10", "hot"), _route("r11", "cold"), ("bound", ())]),
        # Only a removed server's keys move; it comes back with the same points.
        (_hash(servers=_servers(6, 4)), [("homes", (KEYS,)), ("remove_server", ("s3",)), ("homes", (KEYS,)), ("add_server", ("s3", 4, 80)),
                                         ("homes", (KEYS,)), _route("r1", "k1"), ("remove_server", ("s4",)), ("homes", (KEYS[:12],))]),
        # Same seed, same ring in every process; another seed, another ring; the key: session, else first block, else request id.
        (_hash(seed=7, vnodes=50), [("homes", (KEYS[:12],)), ("home", ("",)), _route("q1", None, blocks=(99, 5)), _route("q2", None, blocks=(99,)),
                                    _route("q3", None), _route("q4", "q3"), _route("q5", "99")]),
        # Only routable, eligible servers under the bound; none at all -> None without walking.
        (_hash(epsilon=1.0, servers=[["a", 1, 80], ["b", 1, 24], ["c", 1, 80]]), [
            ("set_weight", ("a", 0.0, None)), _route("r1", "x", tokens=5000), _route("r2", "x", tokens=5000), _route("r3", "y"),
            _route("r4", "z"), _route("r5", "w"), ("set_weight", ("a", 1.0, None)), ("bound", ()), _route("r6", "w", tokens=5000),
            _route("r7", "w")]),
    )),
    ("prefix-aware: longest match, load bound, bounded index", (
        (_prefix(), [_route("r1", blocks=(1, 2, 3)), *_done("r1"), _route("r2", blocks=(1, 2, 3, 4)), _route("r3", blocks=(1, 2, 9)),
                     _route("r4", blocks=(5, 6)), ("match", ((1, 2, 3, 4),)), ("held_prefix", ("s0", (1, 2, 3, 4, 7))),
                     _route("r5"), ("cached_blocks", ())]),
        # The longest match wins; among equal matches the least loaded holder.
        (_prefix(slack=INF), [_route("r1", blocks=(1, 2)), _route("r2", blocks=(7,)), _route("r3", blocks=(1, 2, 3)),
                              ("match", ((1, 2, 3, 4),)), _route("r4", blocks=(1, 2, 3, 4)), _route("r5", blocks=(1, 2, 8)),
                              _route("r6", blocks=(1, 2, 8)), ("match", ((1, 2, 8),))]),
        # The load bound: a holder too loaded against the inner pick loses the request, and the pick learns the blocks.
        (_prefix(slack=0.25), [_route("r1", blocks=(1, 2)), _route("r2", blocks=(1, 2)), _route("r3", blocks=(1, 2)),
                               ("match", ((1, 2),)), _route("r4", blocks=(1, 2)), ("match", ((1, 2),)), _route("r5", blocks=(1, 2, 3))]),
        # The index's memory bound: deeper blocks are evicted first; min_match.
        (_prefix(max_blocks=4, min_match=2), [_route("r1", blocks=(1, 2, 3, 4, 5, 6)), ("cached_blocks", ()), ("match", ((1, 2, 3, 4, 5, 6),)),
                                              _route("r2", blocks=(1, 9)), _route("r3", blocks=(1, 2, 7)), ("held_prefix", ("s0", (1, 2, 7))),
                                              ("cached_blocks", ()), *_done("r1", "r2", "r3"), ("remove_server", ("s0",)),
                                              ("cached_blocks", ()), ("match", ((1, 2),))]),
    )),
    ("bad input: the right exception, nothing changes", (
        *(({"bare": "table", "kwargs": kwargs}, []) for kwargs in (
            {"ttl": 0}, {"ttl": -1.0}, {"ttl": float("nan")}, {"ttl": INF}, {"ttl": "10"}, {"ttl": True},
            {"max_sessions": 0}, {"max_sessions": 2.5}, {"max_sessions": True})),
        *(({"bare": "hash", "kwargs": kwargs}, []) for kwargs in (
            {"epsilon": 0}, {"epsilon": -0.5}, {"epsilon": True}, {"vnodes": 0}, {"vnodes": 1.5}, {"seed": -1})),
        *(({"bare": "prefix", "kwargs": kwargs}, []) for kwargs in (
            {"max_blocks_per_server": 0}, {"slack": -1.0}, {"slack": float("nan")}, {"slack": "0.1"}, {"min_match": 0},
            {"max_candidates": 0})),
        ({"bare": "prefix", "inner": None}, []),
        ({"bare": "affinity", "inner": None}, []),
        ({"bare": "affinity", "inner": "class"}, []),
        ({"bare": "affinity", "kwargs": {"clock": "now"}}, []),
        ({"bare": "affinity", "kwargs": {"policy": {"mode": "hard"}}}, []),
        ({"bare": "affinity", "kwargs": {"table": {"ttl": 5}}}, []),
        (_table(10.0, 3), [("assign", ("a", "s0", 1.0)), ("get", ("", 1.0)), ("get", (5, 1.0)), ("get", ("a", "1")), ("get", ("a", float("nan"))),
                           ("get", ("a", True)), ("assign", ("b", "", 1.0)), ("assign", ("b", None, 1.0)), ("get", ("a", 0.5)),
                           ("assign", ("b", "s1", 0.5)), ("peek", ("a", 0.5)), ("expire", (INF,)), ("expire", (0.9,)), ("forget", ("",)),
                           ("forget_server", (3,)), ("expires_at", ("",)), ("get", ("a", 2.0))]),
        (_affinity(mode="hard"), [_route("r1", "A"), ("pin", ("B", "ghost")), ("pin", ("", "s0")), ("pin", ("B", "")), ("pin", (7, "s0")),
                                  ("pin", ("B", "s1")), _route("r2", "B"), ("remove_server", ("ghost",))]),
        (_hash(), [("home", (5,)), ("home", (None,)), _route("r1", "A"), ("bound", ())]),
        (_prefix(), [_route("r1", blocks=(1, 2)), ("held_prefix", ("", (1,))), ("held_prefix", (3, (1,))), ("cached_blocks", ())]),
    )),
)

RANDOM_GROUP = "random operations against the reference (seeded)"


def random_ops5(seed: int, n: int = 160) -> tuple[dict[str, Any], list[Op]]:
    """A seeded run: by ``seed % 4`` soft or hard affinity (two of four), the bounded-load hash or prefix-aware
    routing, over up to six servers (one small), with sessions that come back, adds, drains, health weights,
    completions and the clock moving (TTLs and a small table make sessions expire and get evicted).  ``(make, ops)``."""
    rng = random.Random(seed)
    kind = ("affinity", "affinity", "hash", "prefix")[seed % 4]
    servers = [[f"s{k}", rng.randint(2, 5), 24 if k == 1 else 80] for k in range(4)]
    inner = rng.choice(["round-robin", f"random:{seed}"])
    if kind == "affinity":
        make = {"kind": kind, "inner": inner, "servers": servers,
                "policy": {"mode": "hard" if seed % 8 == 1 else "soft", "slack": rng.choice([0.0, 0.25, 1.0, INF]),
                           "ttl": rng.choice([5.0, 20.0]), "max_sessions": rng.choice([3, 6, 100])}}  # fmt: skip
    elif kind == "hash":
        make = {"kind": kind, "servers": servers, "options": {"epsilon": rng.choice([0.1, 0.25, 1.0]), "vnodes": rng.choice([5, 20]), "seed": seed}}
    else:
        make = {"kind": kind, "inner": inner, "servers": servers,
                "options": {"max_blocks_per_server": rng.choice([3, 8, 64]), "slack": rng.choice([0.0, 0.25, INF]), "min_match": rng.randint(1, 2)}}
    ops: list[Op] = []
    in_flight: list[str] = []
    present = {f"s{k}" for k in range(4)}  # mostly add absent servers and drain present ones; sometimes the other way
    for i in range(n):
        op = rng.choices(("route", "complete", "tick", "add", "remove", "weight", "pin"),
                         weights=(10, 10, 3, 1, 1, 1.5, 1 if kind == "affinity" else 0))[0]  # fmt: skip
        if op == "route":
            rid = f"r{i}"
            session = f"c{rng.randrange(8)}" if rng.random() < 0.85 else None
            tokens = rng.choice([100, 800, 3000, 6000])
            prompt = rng.choice([None, tokens // 2, tokens - 50])
            root = int(session[1:]) if session else rng.randrange(8)
            blocks = tuple(1000 * root + b for b in range(rng.randint(0, 5))) if kind == "prefix" or rng.random() < 0.3 else ()
            ops.append(("route", (rid, tokens, session, prompt, blocks)))
            in_flight.append(rid)
        elif op == "complete" and in_flight:
            ops.append(("complete_request", (in_flight.pop(rng.randrange(len(in_flight))),)))
        elif op == "tick":
            ops.append(("tick", (rng.choice([0.5, 2.0, 6.0]),)))
        elif op == "add":
            absent = sorted({f"s{k}" for k in range(6)} - present)
            sid = rng.choice(absent) if absent and rng.random() < 0.9 else f"s{rng.randrange(6)}"
            present.add(sid)
            ops.append(("add_server", (sid, rng.randint(2, 5), rng.choice([24, 80]))))
        elif op == "remove":
            sid = rng.choice(sorted(present)) if len(present) > 2 and rng.random() < 0.9 else f"s{rng.randrange(6)}"
            present.discard(sid)
            ops.append(("remove_server", (sid,)))
        elif op == "weight":
            sid = rng.choice(sorted(present)) if present else "s0"
            ops.append(("set_weight", (sid, rng.choice([0.0, 0.5, 1.0, 1.0]), rng.choice([None, None, 1]))))
        elif op == "pin":
            ops.append(("pin", (f"c{rng.randrange(8)}", f"s{rng.randrange(6)}")))
    return make, ops


def public_groups() -> tuple[Group, ...]:
    """The check cell's groups: the rule groups, then 12 seeded runs."""
    randoms = tuple(random_ops5(seed) for seed in range(12))
    groups = [(name, cases) for name, cases in STAGE5_GROUPS] + [(RANDOM_GROUP, randoms)]
    return as_groups("p5", groups, make=lambda s: s[0], ops=lambda s: s[1])


#: Every group name, in order (the probes' cost group comes last).
GROUP_NAMES: tuple[str, ...] = tuple(name for name, _ in STAGE5_GROUPS) + (RANDOM_GROUP,)

SPEC = StageSpec(5, "affinity", ("SessionTable", "SessionAffinity", "BoundedLoadHash", "PrefixAware"), AffinityHarnessMaker(), public_groups)


def run_stage5(impl: ModuleType | None = None, *, echo: bool = True, only: str | tuple[str, ...] | None = None, strict: bool = True) -> CheckReport:
    """Compare ``impl``'s session table, affinity, bounded-load hash and prefix-aware router (default: ``LB_IMPL``'s)
    with the reference's recorded behaviour.

    Prints one line per group, returns the report, and raises
    :class:`~solution.checks.common.CheckFailed` if a group fails
    (``strict=False`` only returns).  ``only`` keeps the groups whose name
    starts with it (or with one of a tuple of prefixes).
    """
    return run_check(SPEC, impl, echo=echo, only=only, strict=strict)
