"""Stage 6's check: an implementation's tier table, token buckets, rate limiter, admission, tier routing and preemptor against the reference's.

A case builds one object under test (:class:`TierHarnessMaker`, by ``make["kind"]``):

* ``"table"``: ``impl.TierTable(rows, default)`` (``"standard": true``: ``impl.TierTable.standard()``);
* ``"bucket"``: ``impl.TokenBucket(rate, burst, now)``;
* ``"limiter"``: ``impl.RateLimiter(table, max_tenants=...)``;
* ``"admission"``: ``impl.TierAdmission(table, impl.RateLimiter(table, ...))`` (or no limiter);
* ``"routing"``: a :class:`~solution.core.routing.Router` running ``impl.TierRouting(table)``
  over servers labelled with pools (and of different speeds, so predicted latency and load disagree);
* ``"preemptor"``: ``impl.Preemptor(table, max_preemptions=..., mode=...)``.

The tier rows are :class:`~solution.core.tier_types.ServiceTier` (support code, the
same objects on both sides), written in a case as plain dicts.  After every call the
harness's ``snapshot()`` is compared with the reference's recorded one: the limiter's
``stats()`` (and the admission's), the router's ``get_server_stats()``, the
preemptor's ``stats()``; a table and a bucket have no snapshot (their calls show
their state: ``level``).  A failed call must leave everything unchanged.  Floats are
compared rounded to nine decimals; ``TierTable.limit`` is compared as a float (6 and
6.0 are the same limit).

:func:`run_stage6` (``solution.checks.check_stage6``) prints one line per group;
:func:`random_ops6` gives the seeded sequences (tests and hidden cases).
"""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any

from solution.checks.common import CheckReport, Op, round_floats
from solution.checks.runner import StageSpec, as_groups, run_check
from solution.checks.script import Group

__all__ = ["TierHarnessMaker", "STAGE6_GROUPS", "RANDOM_GROUP", "GROUP_NAMES", "SPEC", "random_ops6", "run_stage6", "tier_rows"]

INF = float("inf")


def _limit(value: Any) -> Any:
    """A rate limit written as a dict (or None, or passed as it is: bad input)."""
    from solution.core.tier_types import RateLimit

    return RateLimit(**value) if isinstance(value, dict) else value


def tier_rows(rows: Any) -> Any:
    """:class:`~solution.core.tier_types.ServiceTier` rows from their JSON form (a list of dicts; anything else as it is)."""
    from solution.core.tier_types import ServiceTier, Slo

    if not isinstance(rows, list):
        return rows
    out = []
    for row in rows:
        if not isinstance(row, dict):
            out.append(row)
            continue
        kwargs = dict(row)
        for key in ("tier_limit", "tenant_limit"):
            if key in kwargs:
                kwargs[key] = _limit(kwargs[key])
        if isinstance(kwargs.get("slo"), dict):
            kwargs["slo"] = Slo(**kwargs["slo"])
        out.append(ServiceTier(**kwargs))
    return out


def _table(impl: Any, make: dict[str, Any]) -> Any:
    if make.get("standard"):
        return impl.TierTable.standard()
    return impl.TierTable(tier_rows(make.get("tiers")), make.get("default"))


def _request(rid: Any, tokens: Any, prompt: Any, tier: Any, tenant: Any = None) -> Any:
    from solution.core.request import Request

    return Request(rid, tokens, prompt, tier=tier, tenant=tenant)


class TableCase:
    """One ``impl.TierTable``; ``tier`` answers with the row's name."""

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        self.table = _table(impl, make)

    def tier(self, name: Any) -> Any:
        return self.table.tier(name).name

    def names(self) -> list[Any]:
        return list(self.table.names)

    def by_class(self) -> list[Any]:
        return [row.name for row in self.table.by_class]

    def default(self) -> Any:
        return self.table.default

    def reserved_slots(self, name: Any, capacity: Any) -> Any:
        return self.table.reserved_slots(name, capacity)

    def limit(self, name: Any, effective_limit: Any, capacity: Any) -> Any:
        value = self.table.limit(name, effective_limit, capacity)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    def snapshot(self) -> None:
        return None


class BucketCase:
    """One ``impl.TokenBucket(rate, burst, now)``; its calls keep their names, floats rounded."""

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        self.bucket = impl.TokenBucket(*make.get("args", []), **make.get("kwargs", {}))

    def level(self, now: Any) -> Any:
        return round_floats(self.bucket.level(now))

    def wait(self, n: Any, now: Any) -> Any:
        return round_floats(self.bucket.wait(n, now))

    def take(self, n: Any, now: Any) -> Any:
        return round_floats(self.bucket.take(n, now))

    def snapshot(self) -> None:
        return None


class LimiterCase:
    """``impl.RateLimiter(table, max_tenants=...)`` (kind ``"limiter"``), or ``impl.TierAdmission`` over one (kind ``"admission"``).

    Calls: ``check(request_id, tokens, prompt, tier, tenant, now)`` (the limiter's wait),
    ``admit(...)`` (the admission's answer: None or a Rejected), ``retry_after(wait)``, ``tenants()``.
    """

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        self.table = _table(impl, make)
        options = make.get("limiter", {})
        self.limiter = None if options is None else impl.RateLimiter(self.table, **options)
        self.admission = impl.TierAdmission(self.table, self.limiter) if make["kind"] == "admission" else None

    def check(self, rid: Any, tokens: Any, prompt: Any, tier: Any, tenant: Any, now: Any) -> Any:
        return round_floats(self.limiter.check(_request(rid, tokens, prompt, tier, tenant), now))

    def admit(self, rid: Any, tokens: Any, prompt: Any, tier: Any, tenant: Any, now: Any) -> Any:
        return self.admission(_request(rid, tokens, prompt, tier, tenant), now)

    def retry_after(self, wait: Any) -> Any:
        return self.limiter.retry_after(wait)

    def tenants(self) -> Any:
        return self.limiter.tenants()

    def snapshot(self) -> dict[str, Any]:
        """The limiter's counters (and the admission's, per tier)."""
        out = {"limiter": None if self.limiter is None else round_floats(dict(self.limiter.stats()))}
        if self.admission is not None:
            out["admission"] = round_floats(dict(self.admission.stats()))
        return out


class RoutingCase:
    """A Router running ``impl.TierRouting(table)``.

    Servers are ``[id, capacity, memory, pool, speed]``.  Calls: ``add_server``,
    ``remove_server``, ``set_weight``, ``complete_request`` (the router's),
    ``route(request_id, tokens, prompt, tier, tenant)``, and the strategy's
    ``fits(server_id, tokens, prompt, tier)``, ``may_use(...)``,
    ``tier_limit(server_id, tier)``, ``waiting_class(tier)``.
    """

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        from solution.core.routing import Router

        self.strategy = impl.TierRouting(_table(impl, make))
        self.router = Router(self.strategy, **make.get("router", {}))
        for server in make.get("servers", []):
            self.add_server(*server)

    def add_server(self, server_id: Any, capacity: Any, memory: Any, pool: Any = "shared", speed: Any = None) -> None:
        return self.router.add_server(server_id, capacity, memory, speed=speed, pool=pool)

    def remove_server(self, server_id: Any) -> None:
        return self.router.remove_server(server_id)

    def set_weight(self, server_id: Any, weight: Any, limit: Any = None) -> None:
        return self.router.set_weight(server_id, weight, limit=limit)

    def complete_request(self, request_id: Any) -> None:
        return self.router.complete_request(request_id)

    def route(self, rid: Any, tokens: Any, prompt: Any, tier: Any, tenant: Any = None) -> str:
        return self.router.route(_request(rid, tokens, prompt, tier, tenant))

    def fits(self, server_id: Any, tokens: Any, prompt: Any, tier: Any) -> bool:
        return self.strategy.fits(self.router.server(server_id), _request("(fits)", tokens, prompt, tier))

    def may_use(self, server_id: Any, tokens: Any, prompt: Any, tier: Any) -> bool:
        return self.strategy.may_use(self.router.server(server_id), _request("(may_use)", tokens, prompt, tier))

    def tier_limit(self, server_id: Any, tier: Any) -> Any:
        value = self.strategy.tier_limit(self.router.server(server_id), _request("(limit)", 1, None, tier))
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    def waiting_class(self, tier: Any) -> Any:
        return self.strategy.waiting_class(_request("(class)", 1, None, tier))

    def snapshot(self) -> dict[str, Any]:
        """The servers' stats (load, requests in flight, ...)."""
        return {"servers": round_floats(self.router.get_server_stats())}


class PreemptorCase:
    """One ``impl.Preemptor(table, max_preemptions=..., mode=...)``.

    Calls: ``started(request_id, tier, server_id)``, ``stopped``, ``forget``, ``preempt``,
    ``preemptions`` (by request id), ``victim(request_id, tier, usable)`` with ``usable``
    the list of server ids the requester may use (``"all"``: every server; anything
    else is passed as it is), ``running()``.
    """

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        self.preemptor = impl.Preemptor(_table(impl, make), **make.get("options", {}))

    def started(self, rid: Any, tier: Any, server_id: Any) -> None:
        return self.preemptor.started(_request(rid, 100, 50, tier), server_id)

    def stopped(self, rid: Any) -> None:
        return self.preemptor.stopped(rid)

    def forget(self, rid: Any) -> Any:
        return self.preemptor.forget(rid)

    def preempt(self, rid: Any) -> Any:
        return self.preemptor.preempt(rid)

    def preemptions(self, rid: Any) -> Any:
        return self.preemptor.preemptions(rid)

    def running(self) -> Any:
        return self.preemptor.running()

    def victim(self, rid: Any, tier: Any, usable: Any = "all") -> Any:
        if usable == "all":
            test: Any = lambda server_id: True  # noqa: E731
        elif isinstance(usable, list):
            allowed = set(usable)
            test = lambda server_id: server_id in allowed  # noqa: E731
        else:
            test = usable
        found = self.preemptor.victim(_request(rid, 100, 50, tier), test)
        return list(found) if isinstance(found, (tuple, list)) else found

    def snapshot(self) -> dict[str, Any]:
        """The preemptor's counters."""
        return dict(self.preemptor.stats())


class _Bare:
    """What a case that only builds (and must fail to) returns."""

    def snapshot(self) -> None:
        return None


_CASES = {"table": TableCase, "bucket": BucketCase, "limiter": LimiterCase, "admission": LimiterCase, "routing": RoutingCase,
          "preemptor": PreemptorCase}  # fmt: skip


class TierHarnessMaker:
    """Stage 6's cases: ``{"kind": ..., ...}`` as above; ``{"bare": class name, ...}`` only builds that class with bad arguments."""

    stage = 6
    snapshot = "snapshot"

    def build(self, impl: Any, make: Any) -> Any:
        bare = make.get("bare")
        if bare is None:
            return _CASES[make["kind"]](impl, make)
        args = list(make.get("args", []))
        if bare == "TierTable":
            impl.TierTable(tier_rows(make.get("tiers")), *args, **make.get("kwargs", {}))
        elif bare == "TokenBucket":
            impl.TokenBucket(*args, **make.get("kwargs", {}))
        else:  # built over a table: the standard one, or a bad value in its place ("table": ...)
            table = impl.TierTable.standard() if "table" not in make else make["table"]
            if bare == "TierAdmission" and make.get("limiter") == "other table":
                impl.TierAdmission(table, impl.RateLimiter(impl.TierTable.standard()))
            elif bare == "TierAdmission":
                impl.TierAdmission(table, make.get("limiter"))
            else:
                getattr(impl, bare)(table, *args, **make.get("kwargs", {}))
        return _Bare()


# -- the cases -------------------------------------------------------------------------------------------------------


def _tier(name: str, queue_class: int, **fields: Any) -> dict[str, Any]:
    return {"name": name, "queue_class": queue_class, **fields}


def _rate(rpm: float | None, tpm: float | None, burst_seconds: float = 60.0) -> dict[str, Any]:
    return {"requests_per_minute": rpm, "tokens_per_minute": tpm, "burst_seconds": burst_seconds}


#: The standard table written out (premium 25% reserved, predictive, may preempt; free; batch preemptible), with pools.
def _pooled(premium_spill: bool = True, batch_pool: bool = True) -> list[dict[str, Any]]:
    return [_tier("premium", 2, reserved_share=0.25, pool="premium", spill=premium_spill, may_preempt=True),
            _tier("free", 1),
            _tier("batch", 0, preemptible=True, **({"pool": "batch", "spill": False} if batch_pool else {}))]  # fmt: skip


#: Three classes with a reservation each below the top: gold 25%, silver 25%, bronze none.
_LADDER = [_tier("gold", 2, reserved_share=0.25), _tier("silver", 1, reserved_share=0.25), _tier("bronze", 0)]

#: A tier with both limits: 4 requests/s and 400 tokens/s for the tier, 2 requests/s and 100 tokens/s per tenant (burst: 1 s).
_API = [_tier("api", 1, tier_limit=_rate(240, 24_000, 1.0), tenant_limit=_rate(120, 6_000, 1.0)),
        _tier("open", 0, tenant_limit=_rate(60, None, 2.0)),
        _tier("internal", 2)]  # fmt: skip


def _std(kind: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "standard": True, **extra}


def _with(kind: str, tiers: list[dict[str, Any]], default: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "tiers": tiers, "default": default, **extra}


def _route(rid: str, tier: str | None, tokens: int = 600, prompt: int | None = 500, tenant: str | None = None) -> Op:
    return ("route", (rid, tokens, prompt, tier, tenant))


def _check(rid: str, tier: str | None, tenant: str | None, now: float, tokens: int = 40) -> Op:
    return ("check", (rid, tokens, tokens // 2, tier, tenant, now))


def _admit(rid: str, tier: str | None, tenant: str | None, now: float, tokens: int = 40) -> Op:
    return ("admit", (rid, tokens, tokens // 2, tier, tenant, now))


def _done(*rids: str) -> list[Op]:
    return [("complete_request", (rid,)) for rid in rids]


def _servers(*specs: tuple[str, int, str, float]) -> list[list[Any]]:
    return [[sid, capacity, 80, pool, speed] for sid, capacity, pool, speed in specs]


#: (group name, ((make, ops), ...)) in the order the notebook teaches them.
STAGE6_GROUPS: tuple[tuple[str, tuple[tuple[dict[str, Any], list[Op]], ...]], ...] = (
    ("tier table: classes, default tier, validation", (
        # The standard table: names as given, highest class first, "free" the default; None means the default.
        (_std("table"), [("names", ()), ("by_class", ()), ("default", ()), ("tier", (None,)), ("tier", ("batch",)),
                         ("tier", ("gold",)), ("tier", ("Premium",))]),
        # Listed out of class order, with a default named: by_class sorts, the default is the one named.
        (_with("table", [_tier("silver", 1), _tier("gold", 3), _tier("bronze", 0), _tier("platinum", 5)], "gold"),
         [("names", ()), ("by_class", ()), ("default", ()), ("tier", (None,)), ("tier", ("platinum",))]),
        # No default named: the first tier listed.
        (_with("table", [_tier("b", 0), _tier("a", 7)]), [("default", ()), ("tier", (None,)), ("by_class", ())]),
        (_with("table", [_tier("only", 0)]), [("names", ()), ("default", ()), ("tier", ("only",))]),
        # Validation: distinct classes, unique names, shares below 1 (at exactly 1 nothing is left), a known default, not empty.
        ({"bare": "TierTable", "tiers": [_tier("a", 1), _tier("b", 1)]}, []),
        ({"bare": "TierTable", "tiers": [_tier("a", 1), _tier("a", 2)]}, []),
        ({"bare": "TierTable", "tiers": [_tier("a", 2, reserved_share=0.5), _tier("b", 1, reserved_share=0.5), _tier("c", 0)]}, []),
        ({"bare": "TierTable", "tiers": [_tier("a", 2, reserved_share=0.75), _tier("b", 1, reserved_share=0.3)]}, []),
        ({"bare": "TierTable", "tiers": [_tier("a", 2, reserved_share=0.7), _tier("b", 1, reserved_share=0.29), _tier("c", 0)]}, []),
        ({"bare": "TierTable", "tiers": [_tier("a", 1), _tier("b", 0)], "args": ["c"]}, []),
        ({"bare": "TierTable", "tiers": []}, []),
    )),
    ("reservation: slots rounded up, only higher classes borrow", (
        # 25% of c = 1..8 is 1,1,1,1,2,2,2,2 slots (rounded up: a floor on every server); free sees c minus them.
        (_std("table"), [*(("reserved_slots", ("premium", c)) for c in range(1, 9)), ("reserved_slots", ("free", 8)),
                         *(("limit", ("free", c, c)) for c in range(1, 9)), ("limit", ("premium", 8, 8)), ("limit", ("batch", 8, 8)),
                         ("limit", ("free", 4, 8)), ("limit", ("free", 1, 8)), ("limit", ("free", INF, 4)), ("limit", (None, 5, 5))]),
        # Several reserving classes: each tier loses the slots of every class above it, never its own or those below;
        # 0.25 * 30 is 7.5 -> 8; 0.1 * 30 is 3.0000000000000004 -> 3 (the 1e-9 absorbs float error).
        (_with("table", [_tier("gold", 3, reserved_share=0.25), _tier("silver", 2, reserved_share=0.1), _tier("bronze", 1),
                         _tier("scrap", 0)]),  # fmt: skip
         [("reserved_slots", ("gold", 30)), ("reserved_slots", ("silver", 30)), ("reserved_slots", ("silver", 10)),
          ("limit", ("gold", 30, 30)), ("limit", ("silver", 30, 30)), ("limit", ("bronze", 30, 30)), ("limit", ("scrap", 30, 30)),
          ("limit", ("bronze", 7, 7)), ("limit", ("silver", 7, 7)), ("limit", ("bronze", 20, 40)), ("reserved_slots", ("gold", 1))]),
        # On a router: bronze fills 2 of 4 slots, silver 3, gold all 4; freed slots go to whoever fits, never a lower class's borrowing.
        (_with("routing", _LADDER, servers=_servers(("s0", 4, "shared", 1.0))),
         [_route("b1", "bronze"), _route("b2", "bronze"), _route("b3", "bronze"), _route("s1", "silver"), _route("s2", "silver"),
          _route("g1", "gold"), _route("g2", "gold"), *_done("b1"), _route("b4", "bronze"), _route("s3", "silver"),
          _route("g3", "gold"), ("fits", ("s0", 600, 500, "gold")), *_done("s1", "g1"), ("fits", ("s0", 600, 500, "bronze")),
          ("fits", ("s0", 600, 500, "silver")), _route("b5", "bronze"), _route("s4", "silver")]),
        # A capacity-1 server serves premium only (the idle cost on small servers); free spreads over what it may use.
        (_std("routing", servers=_servers(("tiny", 1, "shared", 1.0), ("big", 4, "shared", 1.0))),
         [("tier_limit", ("tiny", "free")), ("tier_limit", ("tiny", "premium")), ("tier_limit", ("big", "batch")),
          _route("f1", "free"), _route("f2", "free"), _route("f3", "free"), _route("f4", "free"), _route("x1", "batch"),
          _route("p1", "premium"), _route("p2", "premium"), _route("p3", "premium")]),
        # The reservation is a share of the nominal capacity; the limit comes from the health weight (8 x 0.5 = 4, minus 2 held).
        (_std("routing", servers=_servers(("s0", 8, "shared", 1.0), ("s1", 8, "shared", 1.0))),
         [("set_weight", ("s0", 0.5)), ("tier_limit", ("s0", "free")), ("tier_limit", ("s1", "free")), ("tier_limit", ("s0", "premium")),
          *(_route(f"f{i}", "free") for i in range(9)), ("set_weight", ("s1", 1.0, 3)), ("tier_limit", ("s1", "free")),
          ("fits", ("s1", 100, 50, "free")), ("fits", ("s1", 100, 50, "premium"))]),
    )),
    ("token bucket: refill, exact wait, Retry-After", (
        # 2 per second up to 4: a take charges, a short one waits (n - level) / rate exactly and charges nothing.
        ({"kind": "bucket", "args": [2.0, 4.0, 0.0]},
         [("level", (0.0,)), ("take", (4, 0.0)), ("take", (3, 0.5)), ("level", (0.5,)), ("wait", (3, 0.5)), ("take", (3, 1.25)),
          ("level", (1.25,)), ("take", (3, 1.5)), ("level", (1.5,)), ("level", (100.0,)), ("take", (0.5, 100.0)),
          ("wait", (4, 100.0)), ("take", (0, 100.0)), ("level", (100.25,))]),
        # The wait is exact: a retry at now + wait is admitted, one a microsecond earlier is not (and is charged nothing).
        ({"kind": "bucket", "args": [0.5, 10.0, 0.0]},
         [("take", (10, 0.0)), ("take", (3, 1.0)), ("take", (3, 5.999999)), ("level", (5.999999,)), ("take", (3, 6.0)),
          ("level", (6.0,)), ("wait", (10, 6.0)), ("take", (10, 26.0)), ("level", (26.0,))]),
        # It starts full at its own now; a bucket idle for burst / rate seconds is exactly full, never fuller.
        ({"kind": "bucket", "args": [0.25, 1.0, 10.0]},
         [("level", (10.0,)), ("take", (1, 10.0)), ("wait", (1, 11.0)), ("level", (13.0,)), ("level", (14.0,)), ("level", (1e6,)),
          ("take", (1, 14.0)), ("take", (0.75, 16.0)), ("level", (17.0,))]),
        # More than the burst never fits: RequestTooLargeError (a ValueError), nothing charged.
        ({"kind": "bucket", "args": [3.0, 6.0]},
         [("take", (7, 0.0)), ("wait", (6.5, 0.0)), ("level", (0.0,)), ("take", (6, 0.0)), ("take", (6.000001, 1.0)), ("level", (1.0,))]),
        # Retry-After is ceil(wait) whole seconds, at least 1 (RFC 9110), never a constant.
        (_std("limiter"), [("retry_after", (0.2,)), ("retry_after", (1.0,)), ("retry_after", (1.01,)), ("retry_after", (0.0,)),
                           ("retry_after", (2.5,)), ("retry_after", (59.000001,)), ("retry_after", (3600.0,)), ("retry_after", (7,))]),
    )),
    ("rate limiter: tier and tenant buckets, all or nothing", (
        # Tenant a: 2 requests then its request bucket is empty (wait 0.5 s), charged nothing; the tier's 4 requests run
        # out at the 5th (0.25 s); at 0.5 s a's tokens hold 20 + 50 >= 60.
        (_with("limiter", _API),
         [_check("r1", "api", "a", 0.0), _check("r2", "api", "a", 0.0), _check("r3", "api", "a", 0.0, tokens=10),
          _check("r4", "api", "b", 0.0), _check("r5", "api", "b", 0.0), _check("r6", "api", "c", 0.0, tokens=10),
          _check("r7", "api", "c", 0.25, tokens=10), _check("r8", "api", "a", 0.5, tokens=60), ("tenants", ())]),
        # The token buckets: 100 tokens per tenant (burst 1 s); the tier's 400; a refused request leaves both full.
        (_with("limiter", _API),
         [_check("r1", "api", "a", 0.0, tokens=90), _check("r2", "api", "a", 0.0, tokens=30), _check("r3", "api", "a", 0.1, tokens=20),
          _check("r4", "api", "b", 0.1, tokens=100), _check("r5", "api", "c", 0.1, tokens=100), _check("r6", "api", "d", 0.1, tokens=100),
          _check("r7", "api", "e", 0.2, tokens=80), _check("r8", "api", "e", 0.4, tokens=80), ("tenants", ())]),
        # No tenant: only the tier's buckets; a tenant of one tier is not the same tenant in another tier; no limits: always 0.
        (_with("limiter", _API),
         [_check("n1", "api", None, 0.0), _check("n2", "api", None, 0.0), _check("n3", "api", None, 0.0), _check("n4", "api", None, 0.0),
          _check("n5", "api", None, 0.0), _check("o1", "open", "a", 0.0), _check("o2", "open", "a", 0.0), _check("o3", "open", "a", 0.5),
          _check("o4", "open", "b", 0.5), _check("o5", "open", None, 0.5), _check("i1", "internal", "a", 0.5, tokens=100_000),
          ("tenants", ())]),
        # The default tier (tier None): the standard table's free tier, 60 requests per minute per tenant.
        (_std("limiter"), [*(_check(f"f{i}", None, "t", 0.0) for i in range(61)), _check("g1", "free", "u", 0.0),
                           _check("f61", None, "t", 0.5), _check("f62", None, "t", 1.0), ("tenants", ())]),
    )),
    ("rate limiter: idle tenants forgotten, bounded", (
        # idle_after = 10 s for "api" (both buckets), 60 s for "slow": a tenant is dropped once idle that long, exactly.
        (_with("limiter", [_tier("api", 1, tenant_limit=_rate(60, 600, 10.0)), _tier("slow", 0, tenant_limit=_rate(6, None, 60.0))]),
         [_check("r1", "api", "A", 0.0), _check("r2", "api", "B", 1.0), _check("r3", "slow", "S", 2.0), _check("r4", "api", "C", 5.0),
          ("tenants", ()), _check("r5", "api", "D", 10.5), ("tenants", ()), _check("r6", "api", "X", 11.0), ("tenants", ()),
          _check("r7", "api", "C", 14.9), _check("r8", "api", "Y", 61.9), ("tenants", ()), _check("r9", "api", "Z", 62.0),
          ("tenants", ())]),
        # Forgetting changes nothing: a tenant back after idle_after has its whole burst again (10 requests, then 1 s).
        (_with("limiter", [_tier("api", 1, tenant_limit=_rate(60, None, 10.0))]),
         [*(_check(f"a{i}", "api", "A", 0.0) for i in range(11)), _check("b0", "api", "B", 9.0), ("tenants", ()),
          *(_check(f"c{i}", "api", "A", 20.0) for i in range(11)), ("tenants", ())]),
        # A refused request is not a use: the tenant's idle time still counts from its last admission.
        (_with("limiter", [_tier("api", 1, tenant_limit=_rate(60, None, 2.0))]),
         [_check("r1", "api", "A", 0.0), _check("r2", "api", "A", 0.0), _check("r3", "api", "A", 0.5), _check("r4", "api", "B", 1.9),
          _check("r5", "api", "B", 2.0), ("tenants", ())]),
        # The bound: at max_tenants a new tenant evicts the least recently admitted one (over all tiers).
        (_with("limiter", [_tier("api", 1, tenant_limit=_rate(60, None, 10.0)), _tier("web", 0, tenant_limit=_rate(60, None, 10.0))],
               limiter={"max_tenants": 3}),  # fmt: skip
         [_check("r1", "api", "A", 0.0), _check("r2", "web", "B", 1.0), _check("r3", "api", "C", 2.0), _check("r4", "api", "A", 3.0),
          _check("r5", "web", "D", 4.0), ("tenants", ()), _check("r6", "api", "B", 5.0), _check("r7", "web", "B", 5.0),
          ("tenants", ()), _check("r8", "api", "E", 6.0)]),
        (_with("limiter", [_tier("api", 1, tenant_limit=_rate(120, None, 1.0))], limiter={"max_tenants": 1}),
         [_check("r1", "api", "A", 0.0), _check("r2", "api", "A", 0.0), _check("r3", "api", "A", 0.0), _check("r4", "api", "B", 0.1),
          _check("r5", "api", "A", 0.1), _check("r6", "api", "A", 0.1), _check("r7", "api", "A", 0.1), ("tenants", ())]),
    )),
    ("admission: 429 with Retry-After, too large is an error", (
        # Admitted: None; over the limit: Rejected(id, now, ceil(wait), 429), nothing charged; a retry Retry-After later passes.
        (_with("admission", [_tier("api", 1, tenant_limit=_rate(30, 3_000, 2.0))]),
         [_admit("r1", "api", "a", 0.0), _admit("r2", "api", "a", 0.0), _admit("r3", "api", "a", 0.5), _admit("r3", "api", "a", 2.0),
          _admit("r4", "api", "a", 2.1, tokens=60), _admit("r5", "api", "a", 4.0, tokens=99), _admit("r6", "api", "a", 4.0, tokens=1),
          _admit("r7", "api", "a", 6.0, tokens=100)]),
        # A request larger than a bucket can ever hold: RequestTooLargeError (413), not an endless 429; nothing charged.
        (_with("admission", [_tier("api", 1, tier_limit=_rate(None, 6_000, 1.0), tenant_limit=_rate(None, 600, 1.0)), _tier("bulk", 0)]),
         [_admit("r1", "api", "a", 0.0, tokens=11), _admit("r2", "api", None, 0.0, tokens=101), _admit("r3", "api", "a", 0.0, tokens=100),
          _admit("r4", "bulk", "a", 0.0, tokens=1_000_000), _admit("r5", "api", "a", 0.0, tokens=10), _admit("r6", "api", "a", 0.5, tokens=10),
          _admit("r7", "api", "a", 0.5, tokens=10), _admit("r8", "api", "a", 0.5, tokens=11)]),
        # Unknown tier: UnknownTierError (a ValueError), nothing counted; no limiter: every known tier admitted.
        (_std("admission", limiter=None), [_admit("r1", "premium", "a", 0.0), _admit("r2", "gold", "a", 0.0), _admit("r3", None, None, 0.0),
                                           _admit("r4", "batch", "a", 0.0, tokens=10**9)]),
        (_std("admission"), [*(_admit(f"r{i}", "free", "t", 0.0, tokens=1000) for i in range(61)), _admit("x", "gold", "t", 0.0),
                             _admit("p1", "premium", "t", 0.0), _admit("r61", "free", "t", 59.0), _admit("r62", "free", "t", 59.0)]),
    )),
    ("pools: own pool first, spill to shared", (
        # Premium uses its pool first and spills to the shared pool; free never uses the premium or batch pool, even idle;
        # batch stays in its own pool (spill=False).
        (_with("routing", [*_pooled()[:1], _tier("free", 1), _tier("batch", 0, preemptible=True, pool="batch", spill=False)],
               servers=_servers(("p0", 2, "premium", 1.0), ("s0", 4, "shared", 1.0), ("s1", 4, "shared", 1.0), ("b0", 2, "batch", 1.0))),
         [_route("p1", "premium"), _route("p2", "premium"), _route("p3", "premium"), *(_route(f"f{i}", "free") for i in range(1, 7)),
          _route("x1", "batch"), _route("x2", "batch"), _route("x3", "batch"), *_done("p1"),
          _route("p4", "premium"), ("may_use", ("p0", 100, 50, "free")), ("may_use", ("b0", 100, 50, "premium")),
          ("fits", ("p0", 100, 50, "free")), *_done("p2", "p4"), _route("f9", "free")]),
        # Without spill, premium waits for its own pool; a pool server down or drained sends spilling tiers to shared.
        (_with("routing", _pooled(premium_spill=False), servers=_servers(("p0", 1, "premium", 1.0), ("p1", 2, "premium", 1.0),
                                                                            ("s0", 4, "shared", 1.0))),  # fmt: skip
         [_route("a", "premium"), _route("b", "premium"), _route("c", "premium"), _route("d", "premium"), *_done("a"),
          _route("d", "premium"), _route("f", "free")]),
        (_with("routing", _pooled(), servers=_servers(("p0", 2, "premium", 1.0), ("s0", 4, "shared", 1.0))),
         [_route("a", "premium"), ("set_weight", ("p0", 0.0)), _route("b", "premium"), ("set_weight", ("p0", 1.0)), _route("c", "premium"),
          ("remove_server", ("p0",)), _route("d", "premium"), ("add_server", ("p9", 2, 80, "premium", 1.0)), _route("e", "premium"),
          ("add_server", ("q0", 2, 80, "research", 1.0)), _route("f", "free"), _route("g", "premium"), _route("h", "premium")]),
        # A large request needs a big server: one in its own pool is skipped for one in the shared pool.
        (_with("routing", _pooled(), servers=[["p0", 4, 24, "premium", 1.0], ["s0", 4, 80, "shared", 1.0]]),
         [_route("a", "premium", tokens=6000, prompt=5000), _route("b", "premium", tokens=100, prompt=50)]),
    )),
    ("SLA routing: predictive for the top class, load for others", (
        # Premium goes where it finishes first (the fast server, though busier); free by the share of its own slots in use.
        (_std("routing", servers=_servers(("slow", 4, "shared", 1.0), ("fast", 4, "shared", 3.0), ("wide", 8, "shared", 0.5))),
         [_route("p1", "premium"), _route("p2", "premium"), _route("f1", "free"), _route("f2", "free"), _route("f3", "free"),
          _route("f4", "free"), _route("p3", "premium"), _route("x1", "batch"), _route("p4", "premium", prompt=None),
          _route("p5", "premium", tokens=5000, prompt=4990), _route("p6", "premium", tokens=5000, prompt=10)]),
        # Equal latency models: predictive falls back to the lower load, then the server added first.
        (_std("routing", servers=_servers(("a", 4, "shared", 2.0), ("b", 4, "shared", 2.0), ("c", 4, "shared", 2.0))),
         [_route("p1", "premium"), _route("p2", "premium"), _route("p3", "premium"), _route("p4", "premium"), *_done("p2"),
          _route("p5", "premium"), _route("f1", "free"), _route("f2", "free")]),
        # The rule is per tier: a table whose free tier is predictive too, whose premium is by load.
        (_with("routing", [_tier("premium", 2, reserved_share=0.25), _tier("free", 1, routing="predictive")],
               servers=_servers(("slow", 8, "shared", 1.0), ("fast", 4, "shared", 4.0))),
         [_route("p1", "premium"), _route("p2", "premium"), _route("f1", "free"), _route("f2", "free"), _route("f3", "free"),
          _route("f4", "free"), ("waiting_class", ("premium",)), ("waiting_class", (None,))]),
    )),
    ("preemption: newest victim, usable servers, bounded", (
        # The newest preemptible request of a lower class, on a server the requester may use; free may not preempt.
        (_std("preemptor"), [("started", ("b1", "batch", "s0")), ("started", ("b2", "batch", "s1")), ("started", ("b3", "batch", "s0")),
                             ("started", ("f1", "free", "s1")), ("started", ("p1", "premium", "s1")), ("victim", ("q", "premium", "all")),
                             ("victim", ("q", "free", "all")), ("victim", ("q", "batch", "all")), ("victim", ("q", "premium", ["s1"])),
                             ("victim", ("q", "premium", ["s9"])), ("running", ())]),
        # Preempt records it: the count goes up, it stops running; resumed, it is the newest again; after max_preemptions
        # (2) it is no longer preemptible (the starvation bound).
        (_std("preemptor"), [("started", ("b1", "batch", "s0")), ("started", ("b2", "batch", "s0")), ("preempt", ("b2",)),
                             ("victim", ("q", "premium", "all")), ("started", ("b2", "batch", "s1")), ("victim", ("q", "premium", "all")),
                             ("preempt", ("b2",)), ("preemptions", ("b2",)), ("started", ("b2", "batch", "s0")),
                             ("victim", ("q", "premium", "all")), ("preempt", ("b2",)), ("preempt", ("b1",)), ("victim", ("q", "premium", "all")),
                             ("started", ("b1", "batch", "s1")), ("victim", ("q", "premium", "all")), ("preemptions", ("b1",)),
                             ("stopped", ("b2",)), ("forget", ("b2",)), ("preemptions", ("b2",))]),
        # Strictly lower classes only: mid (may preempt, preemptible) gives way to top, never to another mid request.
        (_with("preemptor", [_tier("top", 3, may_preempt=True), _tier("mid", 2, may_preempt=True, preemptible=True),
                             _tier("low", 1, preemptible=True)], options={"max_preemptions": 1}),  # fmt: skip
         [("started", ("l1", "low", "s0")), ("started", ("m1", "mid", "s1")), ("victim", ("q", "top", "all")), ("victim", ("q", "mid", "all")),
          ("victim", ("q", "mid", ["s1"])), ("preempt", ("l1",)), ("victim", ("q", "mid", "all")), ("started", ("l1", "low", "s0")),
          ("victim", ("q", "mid", "all")), ("victim", ("q", "top", "all")), ("stopped", ("m1",)), ("victim", ("q", "top", "all"))]),
        # max_preemptions=0: nothing is ever preempted; swap mode changes no choice.
        (_std("preemptor", options={"max_preemptions": 0}), [("started", ("b1", "batch", "s0")), ("victim", ("q", "premium", "all")),
                                                              ("preempt", ("b1",))]),
        (_std("preemptor", options={"mode": "swap", "max_preemptions": 3}),
         [("started", ("b1", "batch", "s0")), ("started", ("b2", "batch", "s1")), ("stopped", ("b2",)), ("victim", ("q", "premium", "all")),
          ("preempt", ("b1",)), ("started", ("b1", "batch", "s1")), ("preempt", ("b1",)), ("started", ("b1", "batch", "s1")),
          ("preempt", ("b1",)), ("started", ("b1", "batch", "s1")), ("victim", ("q", "premium", "all")), ("preemptions", ("b1",))]),
    )),
    ("bad input: the right exception, nothing changes", (
        # Constructions: a table of the wrong kind, tokens buckets and limiters with bad numbers, admissions, routings, preemptors.
        *(({"bare": "TierTable", "tiers": tiers, **extra}, []) for tiers, extra in (
            ("premium", {}), ([_tier("a", 0), "b"], {}), (None, {}), ([_tier("a", 0)], {"args": [3]}), ([_tier("a", 0)], {"args": [""]}))),
        *(({"bare": "TokenBucket", "args": args}, []) for args in (
            [0, 1], [-1.0, 1], [float("nan"), 1], [INF, 1], ["2", 1], [True, 1], [1, 0], [1, -5], [1, INF], [1, None],
            [1, 1, float("nan")], [1, 1, "0"])),
        *(({"bare": "RateLimiter", **extra}, []) for extra in (
            {"table": "standard"}, {"table": None}, {"kwargs": {"max_tenants": 0}}, {"kwargs": {"max_tenants": 2.5}},
            {"kwargs": {"max_tenants": True}})),
        ({"bare": "TierAdmission", "table": [1, 2]}, []),
        ({"bare": "TierAdmission", "limiter": "limiter"}, []),
        ({"bare": "TierAdmission", "limiter": "other table"}, []),
        ({"bare": "TierRouting", "table": "premium"}, []),
        *(({"bare": "Preemptor", **extra}, []) for extra in (
            {"table": None}, {"kwargs": {"max_preemptions": -1}}, {"kwargs": {"max_preemptions": 1.5}}, {"kwargs": {"mode": "lazy"}},
            {"kwargs": {"mode": 3}})),
        # Calls: each raises and leaves the object as it was (the next calls show it).
        (_std("table"), [("tier", (5,)), ("tier", ("",)), ("reserved_slots", ("premium", 0)), ("reserved_slots", ("premium", 2.0)),
                         ("reserved_slots", ("gold", 4)), ("limit", ("free", -1, 4)), ("limit", ("free", float("nan"), 4)),
                         ("limit", ("free", "8", 8)), ("limit", ("free", 8, 0)), ("limit", ("free", 8, 8))]),
        ({"kind": "bucket", "args": [1.0, 5.0, 2.0]},
         [("take", (-1, 2.0)), ("take", (float("nan"), 2.0)), ("take", ("3", 2.0)), ("take", (3, float("nan"))), ("take", (3, "2")),
          ("level", (1.0,)), ("take", (3, 1.5)), ("take", (2, 3.0)), ("take", (1, 2.5)), ("wait", (INF, 3.0)), ("level", (3.0,))]),
        (_with("limiter", _API),
         [_check("r1", "api", "a", 5.0), _check("r2", "api", "a", 4.0), _check("r3", "gold", "a", 6.0), _check("r4", "api", "a", float("nan")),
          _check("r5", "api", "a", "6"), _check("r6", "api", "a", 6.0, tokens=101), _check("r7", "api", "a", 6.0), ("retry_after", (-1.0,)),
          ("retry_after", (float("nan"),)), ("retry_after", (INF,)), ("retry_after", ("2",)), ("tenants", ())]),
        (_std("routing", servers=_servers(("s0", 2, "shared", 1.0))),
         [_route("r1", "gold"), _route("r2", "free"), ("tier_limit", ("s0", "gold")), ("fits", ("s0", 100, 50, "gold")),
          ("may_use", ("s0", 100, 50, "gold")), ("waiting_class", ("gold",)), _route("r3", "free")]),
        (_std("preemptor"), [("started", ("b1", "batch", "s0")), ("started", ("b1", "batch", "s1")), ("started", ("g1", "gold", "s0")),
                             ("started", ("b2", "batch", "")), ("stopped", ("zz",)), ("preempt", ("zz",)), ("started", ("f1", "free", "s0")),
                             ("preempt", ("f1",)), ("victim", ("q", "premium", None)), ("victim", ("q", "gold", "all")),
                             ("victim", ("q", "premium", "all"))]),
    )),
)

RANDOM_GROUP = "random operations against the reference (seeded)"

#: The table of the seeded runs: the pooled standard table plus an "api" tier with tier and tenant limits.
_RANDOM_TIERS = [_tier("premium", 3, reserved_share=0.25, pool="premium", routing="predictive", may_preempt=True,
                       tenant_limit=_rate(120, 20_000, 5.0)),
                 _tier("api", 2, reserved_share=0.1, tier_limit=_rate(600, 60_000, 2.0), tenant_limit=_rate(60, 6_000, 4.0)),
                 _tier("free", 1, tenant_limit=_rate(30, None, 4.0)),
                 _tier("batch", 0, preemptible=True, pool="batch")]  # fmt: skip


def random_ops6(seed: int, n: int = 160) -> tuple[dict[str, Any], list[Op]]:
    """A seeded run: by ``seed % 3`` the rate limiter (checks by a few tenants of every tier as time moves
    on, with a small tenant bound), tier routing (routes of every tier over up to seven servers in three
    pools, completions, health weights, adds and drains) or the preemptor (starts, stops, victims,
    preemptions).  ``(make, ops)``."""
    rng = random.Random(seed)
    kind = ("limiter", "routing", "preemptor")[seed % 3]
    tiers = ["premium", "api", "free", "batch"]
    ops: list[Op] = []
    if kind == "limiter":
        make = _with("limiter", _RANDOM_TIERS, limiter={"max_tenants": rng.choice([3, 5, 100])})
        now = 0.0
        for i in range(n):
            if rng.random() < 0.2:
                now += rng.choice([0.01, 0.1, 0.5, 3.0, 12.0])
            tier = rng.choice(tiers + [None])
            tenant = rng.choice([None, "t0", "t1", "t2", "t3"])
            ops.append(_check(f"r{i}", tier, tenant, round(now, 6), tokens=rng.choice([10, 100, 300, 1200])))
        return make, ops
    if kind == "routing":
        servers = [[f"s{k}", rng.randint(1, 5), rng.choice([24, 80]), rng.choice(["shared", "shared", "premium", "batch"]),
                    rng.choice([0.5, 1.0, 2.0, 3.0])] for k in range(5)]  # fmt: skip
        make = _with("routing", _RANDOM_TIERS, servers=servers)
        in_flight: list[str] = []
        present = {f"s{k}" for k in range(5)}
        for i in range(n):
            op = rng.choices(("route", "complete", "weight", "add", "remove", "fits"), weights=(10, 8, 1.5, 1, 1, 1))[0]
            if op == "route":
                tokens = rng.choice([100, 800, 3000, 6000])
                ops.append(_route(f"r{i}", rng.choice(tiers + [None]), tokens=tokens, prompt=rng.choice([None, tokens // 2, tokens - 10])))
                in_flight.append(f"r{i}")
            elif op == "complete" and in_flight:
                ops.extend(_done(in_flight.pop(rng.randrange(len(in_flight)))))
            elif op == "weight":
                ops.append(("set_weight", (rng.choice(sorted(present)) if present else "s0", rng.choice([0.0, 0.5, 1.0, 1.0]),
                                           rng.choice([None, None, 1]))))  # fmt: skip
            elif op == "add":
                sid = f"s{rng.randrange(7)}"
                present.add(sid)
                ops.append(("add_server", (sid, rng.randint(1, 5), rng.choice([24, 80]), rng.choice(["shared", "premium", "batch"]),
                                           rng.choice([0.5, 1.0, 2.0]))))  # fmt: skip
            elif op == "remove" and len(present) > 2:
                sid = rng.choice(sorted(present))
                present.discard(sid)
                ops.append(("remove_server", (sid,)))
            elif op == "fits" and present:
                ops.append(("fits", (rng.choice(sorted(present)), rng.choice([100, 6000]), None, rng.choice(tiers))))
        return make, ops
    make = _with("preemptor", _RANDOM_TIERS, options={"max_preemptions": rng.choice([1, 2, 3]), "mode": rng.choice(["recompute", "swap"])})
    running: list[str] = []
    stopped: list[str] = []
    for i in range(n):
        op = rng.choices(("start", "stop", "victim", "preempt", "resume", "forget"), weights=(6, 3, 4, 3, 3, 1))[0]
        if op == "start":
            tier = rng.choice(["batch", "batch", "free", "api"])
            ops.append(("started", (f"r{i}", tier, f"s{rng.randrange(4)}")))
            running.append(f"r{i}")
        elif op == "stop" and running:
            ops.append(("stopped", (running.pop(rng.randrange(len(running))),)))
        elif op == "victim":
            usable = "all" if rng.random() < 0.5 else sorted({f"s{rng.randrange(4)}" for _ in range(2)})
            ops.append(("victim", ("q", rng.choice(["premium", "premium", "api", "free"]), usable)))
        elif op == "preempt" and running:
            rid = running[-1] if rng.random() < 0.7 else rng.choice(running)
            ops.append(("preempt", (rid,)))
            running.remove(rid)
            stopped.append(rid)
        elif op == "resume" and stopped:
            rid = stopped.pop(0)
            ops.append(("started", (rid, "batch", f"s{rng.randrange(4)}")))
            running.append(rid)
        elif op == "forget" and stopped:
            ops.append(("forget", (stopped.pop(rng.randrange(len(stopped))),)))
        if i % 20 == 19:
            ops.append(("preemptions", (rng.choice(running + stopped + ["zz"]),)))
    return make, ops


def public_groups() -> tuple[Group, ...]:
    """The check cell's groups: the rule groups, then 12 seeded runs."""
    randoms = tuple(random_ops6(seed) for seed in range(12))
    groups = [(name, cases) for name, cases in STAGE6_GROUPS] + [(RANDOM_GROUP, randoms)]
    return as_groups("p6", groups, make=lambda s: s[0], ops=lambda s: s[1])


#: Every group name, in order (the probes' cost group comes last).
GROUP_NAMES: tuple[str, ...] = tuple(name for name, _ in STAGE6_GROUPS) + (RANDOM_GROUP,)

SPEC = StageSpec(6, "tiers", ("TierTable", "TokenBucket", "RateLimiter", "TierAdmission", "TierRouting", "Preemptor"), TierHarnessMaker(),
                 public_groups)  # fmt: skip


def run_stage6(impl: ModuleType | None = None, *, echo: bool = True, only: str | tuple[str, ...] | None = None, strict: bool = True) -> CheckReport:
    """Compare ``impl``'s tier table, token bucket, rate limiter, admission, tier routing and preemptor
    (default: ``LB_IMPL``'s) with the reference's recorded behaviour.

    Prints one line per group, returns the report, and raises
    :class:`~solution.checks.common.CheckFailed` if a group fails
    (``strict=False`` only returns).  ``only`` keeps the groups whose name
    starts with it (or with one of a tuple of prefixes).
    """
    return run_check(SPEC, impl, echo=echo, only=only, strict=strict)
