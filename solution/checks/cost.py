"""Cost rules as measurements: how the time per call grows from a small fleet (or queue) to a large one.

A docstring's "O(log S), no scan" is graded by timing the same mixed calls
at two sizes, 16 and 4,096, in the same process, interleaved, keeping the
best of several rounds (the best time is what the code costs; the slower
rounds are other processes').  Logarithmic growth takes the time per call up
by about 3x at most (log 4096 / log 16); a scan of every server takes it up
by about 256x in theory and well over 20x in practice, even when the scan is
a C-level ``min``.  Stage 4's round is timed per kind of call (request
results, weight reads, probes, ledger attempts) and the kind that grows most
is graded: a light scan in one method would otherwise hide behind the
others' constant work.  :data:`LIMIT` sits far from both (``benchmarks/
bench_cost_rule.py`` shows the measured spread of both under load).
"""

from __future__ import annotations

import math
import time
from typing import Any

__all__ = ["LIMIT", "COST_CASES", "RETRIER_SIZES", "SIZES", "measure", "verdict"]

#: The largest growth of the time per call, from the small size to the large, that passes.
LIMIT = 8.0

#: The graded cost rules: (stage, rule group name, what to measure).
COST_CASES: tuple[tuple[int, str, dict[str, Any]], ...] = (
    (1, "cost: route_request is O(log S), no scan", {"kind": "balancer"}),
    (2, "cost: enqueue, peek and dispatch are O(log n), no scan", {"kind": "queue"}),
    (3, "cost: indexed strategies decide in O(log S), power of d in O(d)", {"kind": "strategy", "strategy": "LeastOutstandingTokens", "options": {}}),
    (3, "cost: indexed strategies decide in O(log S), power of d in O(d)", {"kind": "strategy", "strategy": "WeightedResponseTime", "options": {"alpha": 0.3}}),
    (3, "cost: indexed strategies decide in O(log S), power of d in O(d)", {"kind": "strategy", "strategy": "Predictive", "options": {}}),
    (3, "cost: indexed strategies decide in O(log S), power of d in O(d)", {"kind": "strategy", "strategy": "PowerOfChoices", "options": {"d": 2, "seed": 1}}),
    (4, "cost: health calls are O(log S), no fleet scan", {"kind": "health"}),
    (5, "cost: a decision is O(log S), no session scan", {"kind": "affinity", "strategy": "SessionAffinity"}),
    (5, "cost: a decision is O(log S), no session scan", {"kind": "affinity", "strategy": "BoundedLoadHash"}),
    (5, "cost: a decision is O(log S), no session scan", {"kind": "affinity", "strategy": "PrefixAware"}),
    (6, "cost: admission is O(1) in tenants, a decision O(log S)", {"kind": "admission"}),
    (6, "cost: admission is O(1) in tenants, a decision O(log S)", {"kind": "tiers"}),
    (7, "cost: a canary split decision is O(log S), no fleet scan", {"kind": "canary"}),
    (8, "cost: decide is O(1), no scan of the active requests", {"kind": "retrier"}),
)

SIZES = (16, 4096)
#: Stage 8's retrier: active requests held at the small and the large size.  A retrier's round is four cheap calls
#: (begin, two decides, end) against one route elsewhere, so a C-level walk of 4,096 active requests adds only
#: about 9x to it, too close to :data:`LIMIT` to grade reliably; at 65,536 the walk adds over 100x while the
#: reference's dict of active requests grows about 1.1x.
RETRIER_SIZES = (16, 65_536)
ROUNDS = 15
CALLS = 200
IN_FLIGHT = 8  # a request completes this many routes after it was routed


def _balancer(impl: Any, size: int) -> Any:
    lb = impl.LoadBalancer()
    for i in range(size):
        lb.add_server(f"s{i}", 64, 80 if i % 2 else 40)
    for i in range(size // 2):  # uneven loads, so the index has work to do
        lb.route_request(f"pre{i}", 100)
    return lb


def _router(impl: Any, size: int, strategy: str, options: dict[str, Any]) -> Any:
    from solution.core.routing import Router

    lb = Router(getattr(impl, strategy)(**options), speeds={f"s{i}": 1.0 + (i % 3) for i in range(size)})
    for i in range(size):
        lb.add_server(f"s{i}", 64, 80 if i % 2 else 40)
    for i in range(size // 2):
        lb.route_request(f"pre{i}", 100)
        lb.observe(f"pre{i}", latency=0.5 + (i % 7) / 10)
    return lb


def _queue(impl: Any, size: int) -> Any:
    from solution.core.clock import ManualClock
    from solution.core.queue_types import QueuePolicy

    q = impl.RequestQueue(ManualClock(), QueuePolicy(ordering="priority"))
    for i in range(size):
        q.enqueue(f"pre{i}", 100 if i % 5 else 9000, i % 4)
    return q


#: Stage 4: seconds of the caller's clock per call; the probe interval is ``size * HEALTH_STEP`` so that
#: about one probe falls due per call at every size (due_probes' work is per probe, not per fleet).
HEALTH_STEP = 0.001
#: Stage 4's kinds of call, each timed on its own: the growth graded is the worst kind's.
HEALTH_KINDS = ("request_result", "weight", "probes", "ledger")


class _HealthClock:
    """The stage-4 objects and their clock (time only moves forward across rounds)."""

    def __init__(self, impl: Any, size: int) -> None:
        from solution.core.health_types import HealthPolicy, RetryPolicy

        policy = HealthPolicy(interval=size * HEALTH_STEP, timeout=size * HEALTH_STEP / 2, consecutive_5xx=2,
                              base_ejection_time=0.05, max_ejection_time=0.4, slow_start_window=0.05, ewma_alpha=0.2)  # fmt: skip
        self.size, self.now = size, 0.0
        self.checker = impl.HealthChecker(policy, seed=1)
        self.ledger = impl.RetryLedger(RetryPolicy(max_tries=3))
        for i in range(size):
            self.checker.add_server(f"s{i}", 0.0, warm=i % 4 != 0)
        for i in range(size):  # every server has a latency EWMA, so the outlier rule has a fleet to compare with
            self.checker.request_result(f"s{i}", True, 0.0, 0.01 + (i % 7) / 1000)


def _round_health(h: _HealthClock, tag: str) -> dict[str, float]:
    """One round, timed per kind of call (a light scan in one method must not hide behind the others' work).

    Per call: two request results (every 50th call fails twice: an ejection), a weight and a trial limit
    read, the probes due and their results, a ledger attempt answered (or re-sent).  Returns the seconds
    spent in each kind: ``request_result``, ``weight``, ``probes``, ``ledger``.
    """
    checker, ledger, size = h.checker, h.ledger, h.size
    clock = time.perf_counter
    spent = dict.fromkeys(HEALTH_KINDS, 0.0)
    for k in range(CALLS):
        h.now += HEALTH_STEP
        now = h.now
        sid = f"s{(k * 7919) % size}"
        failing = k % 50 < 2
        other = f"s{(k * 104729 + 1) % size}"
        t0 = clock()
        checker.request_result(sid, not failing, now, None if failing else 0.01 + (k % 5) / 1000)
        checker.request_result(other, True, now, 0.01 + (k % 3) / 1000)  # the common case: a success
        t1 = clock()
        checker.weight(sid, now)
        checker.trial_limit(sid)
        t2 = clock()
        for due in checker.due_probes(now):
            checker.probe_result(due, True, now)
        t3 = clock()
        rid = f"{tag}-{k}"
        ledger.begin(rid, sid, now)
        if k % 10 == 0:
            ledger.server_down(sid, now)
            ledger.begin(rid, f"s{(k + 1) % size}", now)
            ledger.answer(rid, f"s{(k + 1) % size}", now)
        else:
            ledger.answer(rid, sid, now)
        ledger.finish(rid)
        t4 = clock()
        spent["request_result"] += t1 - t0
        spent["weight"] += t2 - t1
        spent["probes"] += t3 - t2
        spent["ledger"] += t4 - t3
    return spent


#: Stage 5: live sessions per server (64 at 16 servers, 16,384 at 4,096: a scan of the sessions grows as a scan of the servers).
SESSIONS_PER_SERVER = 4


class _Sessions:
    """A Router running one stage-5 strategy over ``size`` servers, with ``size * SESSIONS_PER_SERVER`` live sessions.

    SessionAffinity (soft, over round-robin): every session pinned, the table at its bound (a new session
    evicts the least recently used); BoundedLoadHash (4 points per server: building the ring stays quick): the sessions are its keys;
    PrefixAware (over round-robin): each session's two prefix blocks recorded on a server.  Half the
    servers hold a request, as in the earlier stages.
    """

    def __init__(self, impl: Any, size: int, strategy: str) -> None:
        from solution.core.affinity_types import AffinityPolicy
        from solution.core.clock import ManualClock
        from solution.core.request import Request
        from solution.core.routing import RoundRobin, Router

        self.clock, self.sessions, self.prefix = ManualClock(), size * SESSIONS_PER_SERVER, strategy == "PrefixAware"
        if strategy == "SessionAffinity":
            policy = AffinityPolicy("soft", slack=0.25, ttl=3600.0, max_sessions=self.sessions)
            chosen = impl.SessionAffinity(RoundRobin(), policy, clock=self.clock)
        elif strategy == "BoundedLoadHash":
            chosen = impl.BoundedLoadHash(epsilon=0.25, vnodes=4, seed=1)
        else:
            chosen = impl.PrefixAware(RoundRobin(), max_blocks_per_server=4 * SESSIONS_PER_SERVER, slack=0.25)
        self.lb = Router(chosen)
        for i in range(size):  # the hash's bound may leave no big server for a large request: all big there
            self.lb.add_server(f"s{i}", 64, 80 if i % 2 or strategy == "BoundedLoadHash" else 40)
        if strategy == "SessionAffinity":
            for j in range(self.sessions):
                chosen.pin(f"c{j}", f"s{j % size}", 0.0)
        elif self.prefix:
            for j in range(self.sessions):
                self.lb.route(Request(f"fill{j}", 100, 50, None, self.blocks(j)))
                self.lb.complete_request(f"fill{j}")
        for i in range(size // 2):
            self.lb.route(Request(f"pre{i}", 100, 50, f"c{i}", self.blocks(i)))

    def blocks(self, j: int) -> tuple[int, ...]:
        return (2 * j + 1, 2 * j + 2) if self.prefix else ()


def _round_sessions(h: _Sessions, tag: str) -> float:
    """One round: per call a request of a live session (every fifth a new one), completed ``IN_FLIGHT`` calls later.

    The requests are built before the clock starts: only the router's calls (the strategy's decision and
    hooks) are timed, so a light scan per decision is not hidden behind building records.
    """
    from solution.core.request import Request

    lb, clock, sessions = h.lb, h.clock, h.sessions
    requests = []
    for k in range(CALLS):
        j = (k * 7919 + len(tag) * 104729) % sessions
        tokens = 100 if k % 3 else 5000
        requests.append(Request(f"{tag}-{k}", tokens, tokens // 2, f"{tag}-n{k}" if k % 5 == 0 else f"c{j}", h.blocks(j)))
    return _timed_routes(lb, requests, clock.advance)


def _timed_routes(lb: Any, requests: list[Any], advance: Any = None) -> float:
    """Seconds to route ``requests`` in turn, each completed ``IN_FLIGHT`` calls later (the last ones after the clock).

    ``advance``: a manual clock's ``advance``, moved 1 ms before each call (inside the timed loop, as a live
    clock would move), or None.
    """
    ids = [r.request_id for r in requests]
    route, complete = lb.route, lb.complete_request
    started = time.perf_counter()
    for k, request in enumerate(requests):
        if advance is not None:
            advance(0.001)
        route(request)
        if k >= IN_FLIGHT:
            complete(ids[k - IN_FLIGHT])
    elapsed = time.perf_counter() - started
    for k in range(max(0, len(requests) - IN_FLIGHT), len(requests)):
        complete(ids[k])
    return elapsed


def _round_routes(lb: Any, tag: str, observe: bool) -> float:
    started = time.perf_counter()
    for k in range(CALLS):
        rid = f"{tag}-{k}"
        tokens = 100 if k % 3 else 5000
        if observe:  # a stage-3 router: give the prompt's share too, as a gateway would
            lb.route_request(rid, tokens, prompt_tokens=tokens // 2)
        else:
            lb.route_request(rid, tokens)
        if observe:
            lb.observe(rid, latency=0.5 + (k % 5) / 10)
        if k >= IN_FLIGHT:
            lb.complete_request(f"{tag}-{k - IN_FLIGHT}")
    elapsed = time.perf_counter() - started
    for k in range(max(0, CALLS - IN_FLIGHT), CALLS):
        lb.complete_request(f"{tag}-{k}")
    return elapsed


def _round_queue(q: Any, tag: str) -> float:
    started = time.perf_counter()
    for k in range(CALLS):
        q.enqueue(f"{tag}-{k}", 100 if k % 5 else 9000, k % 4)
        head = q.peek(k % 2 == 0)
        if head is not None:
            q.dispatch(head.request_id, "s")
    return time.perf_counter() - started


#: Stage 6's admission: tenants held by the rate limiter at the small and the large size (the limiter's default bound).
TENANT_SIZES = (10, 100_000)
#: Stage 6's kinds of call, each timed on its own (the growth graded is the worst kind's).
TIER_KINDS = ("route", "complete", "victim")


def _tier_table(impl: Any) -> Any:
    """Premium (25% reserved, its own pool with spill, predictive, may preempt), an "api" tier with a tier-wide
    and a per-tenant limit, free, and batch (preemptible): every rule a decision or an admission applies."""
    from solution.core.tier_types import RateLimit, ServiceTier

    return impl.TierTable([
        ServiceTier("premium", 3, 0.25, pool="premium", routing="predictive", may_preempt=True,
                    tenant_limit=RateLimit(6_000, 60_000_000)),
        ServiceTier("api", 2, 0.1, tier_limit=RateLimit(60_000_000, 6e12), tenant_limit=RateLimit(6_000, 60_000_000)),
        ServiceTier("free", 1, tenant_limit=RateLimit(6_000, None)),
        ServiceTier("batch", 0, preemptible=True),
    ], default="free")  # fmt: skip


class _Admission:
    """``impl.TierAdmission`` over ``impl.RateLimiter`` (bound 100,000) holding ``size`` live tenants, all within
    their limits (admission never refuses here, so both sizes do the same work per call).  At 100,000 the table
    is full: each new tenant evicts the least recently admitted one."""

    def __init__(self, impl: Any, size: int) -> None:
        from solution.core.request import Request

        self.table = _tier_table(impl)
        self.admission = impl.TierAdmission(self.table, impl.RateLimiter(self.table, max_tenants=TENANT_SIZES[-1]))
        self.size, self.now = size, 0.0
        tiers = ("premium", "api", "free")
        for j in range(size):
            self.admission(Request(f"fill{j}", 100, 50, tier=tiers[j % 3], tenant=f"t{j}"), 0.0)


def _round_admission(h: _Admission, tag: str) -> float:
    """One round: per call one admission of a live tenant (every tenth a new one), time moving 10 us per call.

    The requests are built before the clock starts: only the admission's calls are timed."""
    from solution.core.request import Request

    tiers = ("premium", "api", "free")
    requests = []
    for k in range(CALLS):
        j = (k * 7919 + len(tag) * 104729) % h.size
        tenant = f"{tag}-n{k}" if k % 10 == 0 else f"t{j}"
        requests.append(Request(f"{tag}-{k}", 100 if k % 3 else 3000, 50, tier=tiers[j % 3], tenant=tenant))
    admit, now = h.admission, h.now
    started = time.perf_counter()
    for request in requests:
        now += 1e-5
        admit(request, now)
    elapsed = time.perf_counter() - started
    h.now = now
    return elapsed


class _TierFleet:
    """A Router running ``impl.TierRouting`` over ``size`` servers (one in eight in the premium pool, three speeds:
    three latency models), half of them holding a request, and an ``impl.Preemptor`` that knows ``2 * size``
    running batch requests."""

    def __init__(self, impl: Any, size: int) -> None:
        from solution.core.request import Request
        from solution.core.routing import Router

        self.table = _tier_table(impl)
        self.lb = Router(impl.TierRouting(self.table), speeds={f"s{i}": 1.0 + (i % 3) for i in range(size)})
        for i in range(size):
            self.lb.add_server(f"s{i}", 64, 80 if i % 2 else 40, pool="premium" if i % 8 == 0 else "shared")
        for i in range(size // 2):
            self.lb.route(Request(f"pre{i}", 100, 50, tier=("api", "free", "batch")[i % 3]))
        self.preemptor = impl.Preemptor(self.table)
        for i in range(2 * size):
            self.preemptor.started(Request(f"run{i}", 100, 50, tier="batch"), f"s{i % size}")
        self.size = size


def _round_tiers(h: _TierFleet, tag: str) -> dict[str, float]:
    """One round, timed per kind: a route of each tier in turn, completed ``IN_FLIGHT`` routes later; a victim
    asked for a premium request (every server usable), and one batch request started and an old one stopped."""
    from solution.core.request import Request

    tiers = ("premium", "api", "free", "batch")
    requests = [Request(f"{tag}-{k}", 100 if k % 3 else 5000, 50, tier=tiers[k % 4]) for k in range(CALLS)]
    starts = [Request(f"{tag}-b{k}", 100, 50, tier="batch") for k in range(CALLS)]
    asker = Request(f"{tag}-ask", 100, 50, tier="premium")
    usable = lambda server_id: True  # noqa: E731
    route, complete, preemptor = h.lb.route, h.lb.complete_request, h.preemptor
    clock = time.perf_counter
    spent = dict.fromkeys(TIER_KINDS, 0.0)
    ids = [r.request_id for r in requests]
    for k, request in enumerate(requests):
        t0 = clock()
        route(request)
        t1 = clock()
        if k >= IN_FLIGHT:
            complete(ids[k - IN_FLIGHT])
        t2 = clock()
        preemptor.victim(asker, usable)
        preemptor.started(starts[k], f"s{k % h.size}")
        preemptor.stopped(starts[k - IN_FLIGHT].request_id if k >= IN_FLIGHT else f"run{k}")
        t3 = clock()
        spent["route"] += t1 - t0
        spent["complete"] += t2 - t1
        spent["victim"] += t3 - t2
    for k in range(max(0, CALLS - IN_FLIGHT), CALLS):
        complete(ids[k])
        preemptor.stopped(starts[k].request_id)
    return spent


#: Stage 7: the share of the servers on the new version, and of the traffic the split sends there.
CANARY_SHARE = 0.25


class _Canary:
    """A Router running ``impl.CanarySplit(ByLoad, weight=0.25, new_version="v2")`` over ``size`` servers, one in four
    on the new version, half of them holding a request (sessions hashed: each session stays on one version).
    Few requests are routed before the clock starts, as in the other stages: a split that scans the fleet per
    decision must fail the measurement, not time out while the fleet is filled."""

    def __init__(self, impl: Any, size: int) -> None:
        from solution.checks.stage7 import ByLoad
        from solution.core.request import Request
        from solution.core.routing import Router

        self.lb = Router(impl.CanarySplit(ByLoad, weight=CANARY_SHARE, new_version="v2", seed=1))
        for i in range(size):
            self.lb.add_server(f"s{i}", 64, 80, version="v2" if i % 4 == 0 else "v1")
        for i in range(size // 2):  # uneven loads, so the heaps have work to do
            self.lb.route(Request(f"pre{i}", 100, 50, f"c{i}"))
        self.size = size


def _round_canary(h: _Canary, tag: str) -> float:
    """One round: per call a request of one of 997 sessions, completed ``IN_FLIGHT`` calls later.

    The requests are built before the clock starts: only the router's calls (the split's hash, its inner's
    decision and the hooks) are timed."""
    from solution.core.request import Request

    requests = [Request(f"{tag}-{k}", 100 if k % 3 else 5000, 50, f"c{(k * 7919 + len(tag)) % 997}") for k in range(CALLS)]
    return _timed_routes(h.lb, requests)


class _Retriers:
    """An ``impl.Retrier`` (3 tries, Envoy's budget: 20% of the active requests, at least 3) holding ``size`` active
    requests, one in ten of them a retry in flight: the budget's limit and its count differ by size, the work per
    call must not."""

    def __init__(self, impl: Any, size: int) -> None:
        from solution.core.retry_types import Failure, RetryPolicy

        self.retrier = impl.Retrier(RetryPolicy(max_tries=3), seed=1)
        for i in range(size):
            self.retrier.begin(f"pre{i}")
        for i in range(size // 10):
            self.retrier.decide(f"pre{i}", 1, Failure("reset"), streamed=False)
        self.failures = (Failure("reset"), Failure("status", 503), Failure("status", 429, 0.5))


def _round_retrier(h: _Retriers, tag: str) -> float:
    """One round: per call a request begun, failed twice (decided twice: a retry, then another or a refusal) and ended.

    The ids are built before the clock starts: only the retrier's calls are timed."""
    ids = [f"{tag}-{k}" for k in range(CALLS)]
    begin, decide, end, failures = h.retrier.begin, h.retrier.decide, h.retrier.end, h.failures
    started = time.perf_counter()
    for k, rid in enumerate(ids):
        begin(rid)
        decide(rid, 1, failures[k % 3], streamed=False)
        decide(rid, 2, failures[(k + 1) % 3], streamed=False)
        end(rid)
    return time.perf_counter() - started


def measure(impl: Any, rule: dict[str, Any]) -> dict[str, Any]:
    """Seconds per round of calls at each size (best of :data:`ROUNDS`, sizes interleaved)."""
    kind = rule["kind"]
    sizes = RETRIER_SIZES if kind == "retrier" else SIZES
    if kind == "admission":
        return _measure_admission(impl)
    if kind == "tiers":
        return _measure_tiers(impl)
    if kind == "balancer":
        objects = {n: _balancer(impl, n) for n in SIZES}
    elif kind == "queue":
        objects = {n: _queue(impl, n) for n in SIZES}
    elif kind == "health":
        objects = {n: _HealthClock(impl, n) for n in SIZES}
    elif kind == "affinity":
        objects = {n: _Sessions(impl, n, rule["strategy"]) for n in SIZES}
    elif kind == "canary":
        objects = {n: _Canary(impl, n) for n in SIZES}
    elif kind == "retrier":
        objects = {n: _Retriers(impl, n) for n in sizes}
    else:
        objects = {n: _router(impl, n, rule["strategy"], rule["options"]) for n in SIZES}
    if kind == "health":
        return _measure_kinds(objects)
    best = {n: math.inf for n in sizes}
    for r in range(ROUNDS):
        for n in sizes:
            tag = f"r{r}"
            if kind == "queue":
                took = _round_queue(objects[n], tag)
            elif kind == "affinity":
                took = _round_sessions(objects[n], tag)
            elif kind == "canary":
                took = _round_canary(objects[n], tag)
            elif kind == "retrier":
                took = _round_retrier(objects[n], tag)
            else:
                took = _round_routes(objects[n], tag, kind == "strategy")
            best[n] = min(best[n], took / CALLS)
    return {"seconds_per_call": {str(n): best[n] for n in sizes}, "sizes": list(sizes)}


def _measure_kinds(objects: dict[int, _HealthClock]) -> dict[str, Any]:
    """Stage 4: the best seconds per call of each kind at each size; the result is the kind that grows most."""
    best = {(n, kind): math.inf for n in SIZES for kind in HEALTH_KINDS}
    for r in range(ROUNDS):
        for n in SIZES:
            for kind, took in _round_health(objects[n], f"r{r}").items():
                best[n, kind] = min(best[n, kind], took / CALLS)

    def growth(kind: str) -> float:
        small = best[SIZES[0], kind]
        return best[SIZES[-1], kind] / small if small > 0 else math.inf

    worst = max(HEALTH_KINDS, key=growth)
    return {"seconds_per_call": {str(n): best[n, worst] for n in SIZES}, "call": worst}


def _measure_admission(impl: Any) -> dict[str, Any]:
    """Stage 6: the best seconds per admission with 10 and with 100,000 tenants held (best of :data:`ROUNDS`, interleaved)."""
    objects = {n: _Admission(impl, n) for n in TENANT_SIZES}
    best = {n: math.inf for n in TENANT_SIZES}
    for r in range(ROUNDS):
        for n in TENANT_SIZES:
            best[n] = min(best[n], _round_admission(objects[n], f"r{r}") / CALLS)
    return {"seconds_per_call": {str(n): best[n] for n in TENANT_SIZES}, "call": "admission", "sizes": list(TENANT_SIZES),
            "unit": "tenants"}  # fmt: skip


def _measure_tiers(impl: Any) -> dict[str, Any]:
    """Stage 6: the best seconds per call of each kind (route, complete, victim) at 16 and 4,096 servers; the worst kind's."""
    objects = {n: _TierFleet(impl, n) for n in SIZES}
    best = {(n, kind): math.inf for n in SIZES for kind in TIER_KINDS}
    for r in range(ROUNDS):
        for n in SIZES:
            for kind, took in _round_tiers(objects[n], f"r{r}").items():
                best[n, kind] = min(best[n, kind], took / CALLS)

    def growth(kind: str) -> float:
        small = best[SIZES[0], kind]
        return best[SIZES[-1], kind] / small if small > 0 else math.inf

    worst = max(TIER_KINDS, key=growth)
    return {"seconds_per_call": {str(n): best[n, worst] for n in SIZES}, "call": worst}


def verdict(result: Any) -> tuple[bool, str]:
    """Whether a measurement passes, and a sentence that says why."""
    try:
        sizes = [int(n) for n in result.get("sizes", SIZES)]
        per_call = {int(k): float(v) for k, v in result["seconds_per_call"].items()}
        small, large = per_call[sizes[0]], per_call[sizes[-1]]
    except (TypeError, KeyError, ValueError, AttributeError, IndexError):
        return False, f"no usable measurement ({str(result)[:80]})"
    growth = large / small if small > 0 else math.inf
    call = f"{result['call']}: " if isinstance(result.get("call"), str) else ""
    unit = f" {result['unit']}" if isinstance(result.get("unit"), str) else ""
    text = (f"{call}{small * 1e6:.1f} us per call at {sizes[0]:,}{unit}, {large * 1e6:.1f} us at {sizes[-1]:,}{unit}: "
            f"{growth:.1f}x (limit {LIMIT:g}x; logarithmic is about 3x, a scan over 20x)")
    return growth <= LIMIT, text
