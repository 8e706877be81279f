"""Stage 6's properties (hypothesis): token-bucket conformance, an exact Retry-After under a manual clock,
forgetting idle tenants changes nothing, and a state machine over tier routing and preemption in a router.

The state machine keeps its own small model of the rules (the reservation as
``ceil(share * c - 1e-9)`` slots per higher class, the pools, the newest
preemptible request) and checks every answer of the implementation against
it: capacity is never exceeded, a lower tier never takes a slot reserved for
a higher one, premium is never refused while a server it may use has a slot
for it, a preemption picks the newest request it may, no request is lost or
runs twice, and no request is preempted more than ``max_preemptions`` times.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from solution.core.clock import ManualClock
from solution.core.errors import NoCapacityError
from solution.core.request import Request
from solution.core.routing import Router
from solution.core.tier_types import RateLimit, ServiceTier

pytestmark = pytest.mark.stage6

#: (seconds since the previous request, size) pairs
arrivals = st.lists(st.tuples(st.floats(0.0, 3.0), st.integers(1, 12)), min_size=1, max_size=40)


def conforms(admitted: list[tuple[float, float]], rate: float, burst: float) -> str | None:
    """None if for every window [t_i, t_j] the admitted amount is at most burst + rate * (t_j - t_i)."""
    for i, (start, _) in enumerate(admitted):
        total = 0.0
        for end, n in admitted[i:]:
            total += n
            allowed = burst + rate * (end - start)
            if total > allowed + 1e-6 * max(1.0, allowed):
                return f"{total} admitted in [{start}, {end}], more than burst + rate * t = {allowed}"
    return None


@settings(max_examples=40, deadline=None)
@given(rate=st.floats(0.5, 20.0), burst=st.floats(12.0, 40.0), seq=arrivals)
def test_token_bucket_conformance(impl, rate, burst, seq):
    """For any window of length t, the bucket admits at most burst + rate * t."""
    bucket = impl.TokenBucket(rate, burst, now=0.0)
    now, admitted = 0.0, []
    for gap, n in seq:
        now += gap
        if bucket.take(n, now) == 0.0:
            admitted.append((now, n))
    assert conforms(admitted, rate, burst) is None


@settings(max_examples=30, deadline=None)
@given(tpm=st.floats(60.0, 1200.0), burst_seconds=st.floats(1.0, 5.0), seq=arrivals,
       tenants=st.lists(st.sampled_from("abc"), min_size=40, max_size=40))  # fmt: skip
def test_rate_limiter_conformance_per_tenant_and_per_tier(impl, tpm, burst_seconds, seq, tenants):
    """Each tenant's admitted tokens, and the tier's, stay within burst + rate * t over every window."""
    limit = RateLimit(None, tpm, burst_seconds=burst_seconds)
    tier_limit = RateLimit(None, 2 * tpm, burst_seconds=burst_seconds)
    table = impl.TierTable([ServiceTier("free", 0, tier_limit=tier_limit, tenant_limit=limit)])
    limiter = impl.RateLimiter(table)
    now, per_tenant, all_ = 0.0, {t: [] for t in "abc"}, []
    for i, (gap, n) in enumerate(seq):
        now += gap
        size = min(n * 10, int(limit.token_burst))  # never too large: that is an error, tested elsewhere
        if size < 1:
            continue
        tenant = tenants[i]
        if limiter.check(Request(f"r{i}", size, tier="free", tenant=tenant), now) == 0.0:
            per_tenant[tenant].append((now, size))
            all_.append((now, size))
    for admitted in per_tenant.values():
        assert conforms(admitted, limit.token_rate, limit.token_burst) is None
    assert conforms(all_, tier_limit.token_rate, tier_limit.token_burst) is None


@settings(max_examples=40, deadline=None)
@given(rate=st.floats(0.2, 30.0), burst=st.floats(5.0, 50.0), spent=st.floats(0.0, 1.0), need=st.floats(0.01, 1.0),
       start=st.floats(0.0, 1000.0))  # fmt: skip
def test_token_bucket_wait_is_exact(impl, rate, burst, spent, need, start):
    """After the wait it fits; a microsecond before, it does not."""
    bucket = impl.TokenBucket(rate, burst, now=start)
    bucket.take(spent * burst, start)
    n = need * burst
    wait = bucket.wait(n, start)
    if wait == 0.0:
        return
    if wait > 1e-6:
        assert bucket.wait(n, start + wait - 1e-6) > 0.0
        assert bucket.take(n, start + wait - 1e-6) > 0.0
    assert bucket.take(n, start + wait) == 0.0


@settings(max_examples=40, deadline=None)
@given(rpm=st.floats(60.0, 600.0), tpm=st.floats(600.0, 60_000.0), burst_seconds=st.floats(1.0, 60.0),
       sizes=st.lists(st.integers(1, 400), min_size=1, max_size=30), start=st.floats(0.0, 500.0))  # fmt: skip
def test_retry_after_is_exactly_when_a_retry_is_admitted(impl, rpm, tpm, burst_seconds, sizes, start):
    """Under a manual clock: drain a tenant, then the refused request's retry at now + Retry-After is admitted,
    at now + wait (the exact float) too, and at now + wait - 1e-6 it is not."""
    limit = RateLimit(rpm, tpm, burst_seconds=burst_seconds)
    table = impl.TierTable([ServiceTier("free", 0, tenant_limit=limit)])
    limiter, clock = impl.RateLimiter(table), ManualClock(start)
    for i, size in enumerate(sizes):
        size = min(size, int(limit.token_burst))
        request = Request(f"r{i}", size, tier="free", tenant="t")
        wait = limiter.check(request, clock())
        if wait == 0.0:
            continue
        retry_after = limiter.retry_after(wait)
        assert retry_after == max(1, math.ceil(wait))
        if wait > 1e-6:
            assert limiter.check(request, clock() + wait - 1e-6) > 0.0, "admitted before the wait it announced"
        twin = ManualClock(clock())
        twin.advance(wait)
        assert limiter.check(Request(f"early{i}", size, tier="free", tenant="t"), twin()) == 0.0
        return  # one refusal per example: the twin's admission charged the tenant
    # never refused: nothing to check


@settings(max_examples=40, deadline=None)
@given(rpm=st.floats(60.0, 600.0), tpm=st.floats(600.0, 6_000.0), burst_seconds=st.floats(1.0, 4.0),
       seq=st.lists(st.tuples(st.floats(0.0, 6.0), st.integers(1, 30), st.sampled_from("abc")), min_size=1, max_size=40))  # fmt: skip
def test_forgetting_idle_tenants_changes_nothing(impl, rpm, tpm, burst_seconds, seq):
    """A limiter that forgets idle tenants answers exactly as buckets that are never dropped."""
    limit = RateLimit(rpm, tpm, burst_seconds=burst_seconds)
    table = impl.TierTable([ServiceTier("free", 0, tenant_limit=limit)])
    limiter = impl.RateLimiter(table)
    model: dict[str, tuple] = {}
    now = 0.0
    for i, (gap, n, tenant) in enumerate(seq):
        now += gap
        size = min(n * 10, int(limit.token_burst))
        if tenant not in model:
            model[tenant] = (impl.TokenBucket(limit.request_rate, limit.request_burst, now),
                             impl.TokenBucket(limit.token_rate, limit.token_burst, now))  # fmt: skip
        requests, tokens = model[tenant]
        expected = max(requests.wait(1, now), tokens.wait(size, now))
        if expected == 0.0:
            requests.take(1, now)
            tokens.take(size, now)
        got = limiter.check(Request(f"r{i}", size, tier="free", tenant=tenant), now)
        assert (got == 0.0) == (expected == 0.0), f"request {i} at {now}: limiter {got}, never-forgetting buckets {expected}"
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert limiter.tenants() <= len(model)


# -- the state machine ----------------------------------------------------------------------

ROWS = [
    ServiceTier("premium", 2, 0.25, pool="gold", routing="predictive", may_preempt=True),
    ServiceTier("free", 1, 0.2),
    ServiceTier("batch", 0, preemptible=True),
]
SHARE = {t.name: t.reserved_share for t in ROWS}
CLASS = {t.name: t.queue_class for t in ROWS}
POOLS = {"premium": ("gold", "shared"), "free": ("shared",), "batch": ("shared",)}
MAX_PREEMPTIONS = 2


def held_for_higher(tier: str, capacity: int) -> int:
    """Slots of a server of ``capacity`` reserved for the classes above ``tier`` (the rule, restated)."""
    return sum(math.ceil(SHARE[u] * capacity - 1e-9) for u in SHARE if CLASS[u] > CLASS[tier])


class TierMachine(RuleBasedStateMachine):
    impl = None  # set by the test below

    def __init__(self) -> None:
        super().__init__()
        self.table = self.impl.TierTable(ROWS, default="free")
        self.router = Router(self.impl.TierRouting(self.table))
        self.pre = self.impl.Preemptor(self.table, max_preemptions=MAX_PREEMPTIONS)
        self.next_server = 0
        self.next_request = 0
        self.running: dict[str, tuple[Request, str]] = {}  # in start order
        self.waiting: list[Request] = []
        self.times: dict[str, int] = {}
        self.done = 0
        self.submitted = 0

    # -- the model's view of the rules --
    def servers(self):
        return [self.router.server(sid) for sid in self.router.get_server_stats()]

    def may_use(self, s, request: Request) -> bool:
        big_enough = s.big or request.estimated_tokens <= self.router.large_request_tokens
        return s.pool in POOLS[request.tier] and not s.draining and s.weight > 0 and big_enough

    def tier_limit(self, s, tier: str) -> float:
        return max(0, self.router.limit(s) - held_for_higher(tier, s.nominal_capacity))

    def fits(self, s, request: Request) -> bool:
        return self.may_use(s, request) and s.load < self.tier_limit(s, request.tier)

    def usable(self, request: Request):
        def test(server_id: str) -> bool:
            s = self.router.server(server_id)
            return self.may_use(s, request) and s.load - 1 < self.tier_limit(s, request.tier)

        return test

    # -- rules --
    @initialize(capacities=st.lists(st.integers(1, 6), min_size=1, max_size=3))
    def fleet(self, capacities):
        for capacity in capacities:
            self.add_server(capacity, "shared", True)

    @rule(capacity=st.integers(1, 6), pool=st.sampled_from(["shared", "shared", "gold"]), big=st.booleans())
    def add_server(self, capacity, pool, big):
        self.router.add_server(f"s{self.next_server}", capacity, 80 if big else 24, pool=pool)
        self.next_server += 1

    @rule(tier=st.sampled_from(["premium", "free", "batch", "batch"]), large=st.booleans())
    def submit(self, tier, large):
        request = Request(f"r{self.next_request}", 6000 if large else 100, 50, tier=tier)
        self.next_request += 1
        self.submitted += 1
        self.place(request, preempt=True)

    @rule(batch=st.integers(0, 6), free=st.integers(0, 3), premium=st.integers(1, 4))
    def rush(self, batch, free, premium):
        """A burst, batch first: what makes premium find every slot taken."""
        for tier, n in (("batch", batch), ("free", free), ("premium", premium)):
            for _ in range(n):
                self.submit(tier, False)

    def place(self, request: Request, *, preempt: bool) -> bool:
        loads = {s.server_id: s.load for s in self.servers()}
        fitting = [s.server_id for s in self.servers() if self.fits(s, request)]
        try:
            sid = self.router.route(request)
        except NoCapacityError:
            assert not fitting, f"{request.tier} refused while {fitting} have a slot for it"
            if preempt and self.preempt_for(request):
                return True
            if request not in self.waiting:
                self.waiting.append(request)
            return False
        s = self.router.server(sid)
        assert sid in fitting, f"{request.tier} placed on {sid}, which has no slot for it (load {loads[sid]})"
        own = [f for f in fitting if self.router.server(f).pool == POOLS[request.tier][0]]
        assert not own or s.pool == POOLS[request.tier][0], "spilled to shared while its own pool had a slot"
        self.pre.started(request, sid)
        self.running[request.request_id] = (request, sid)
        return True

    def preempt_for(self, request: Request) -> bool:
        usable = self.usable(request)
        got = self.pre.victim(request, usable)
        allowed = [rid for rid, (r, sid) in self.running.items()
                   if r.tier == "batch" and CLASS["batch"] < CLASS[request.tier] and self.times.get(rid, 0) < MAX_PREEMPTIONS
                   and usable(sid)]  # fmt: skip
        if request.tier != "premium" or not allowed:
            assert got is None, f"victim {got} for {request.tier}; allowed: {allowed}"
            return False
        assert got == (allowed[-1], self.running[allowed[-1]][1]), f"victim {got}, the newest allowed is {allowed[-1]}"
        rid, sid = got
        assert self.pre.preempt(rid) == self.times.get(rid, 0) + 1
        self.times[rid] = self.times.get(rid, 0) + 1
        victim, _ = self.running.pop(rid)
        self.router.complete_request(rid)
        self.waiting.insert(0, victim)  # the front of the line
        assert self.router.route(request) == sid, "the preempted slot must take the premium request"
        self.pre.started(request, sid)
        self.running[request.request_id] = (request, sid)
        return True

    @precondition(lambda self: self.running)
    @rule(pick=st.integers(0, 10**6))
    def complete(self, pick):
        rid = list(self.running)[pick % len(self.running)]
        self.running.pop(rid)
        self.router.complete_request(rid)
        self.pre.stopped(rid)
        self.pre.forget(rid)
        self.times.pop(rid, None)
        self.done += 1

    @precondition(lambda self: self.waiting)
    @rule()
    def resume(self):
        for request in list(self.waiting):
            if self.place(request, preempt=False):
                self.waiting.remove(request)

    @precondition(lambda self: self.next_server > 0)
    @rule(pick=st.integers(0, 10**6), weight=st.sampled_from([0.0, 0.5, 1.0]))
    def set_weight(self, pick, weight):
        ids = list(self.router.get_server_stats())
        if ids:
            self.router.set_weight(ids[pick % len(ids)], weight)

    @precondition(lambda self: self.next_server > 0)
    @rule(pick=st.integers(0, 10**6))
    def drain(self, pick):
        ids = [sid for sid, st_ in self.router.get_server_stats().items() if not st_["is_draining"]]
        if ids:
            self.router.remove_server(ids[pick % len(ids)])

    # -- invariants --
    @invariant()
    def capacity_is_never_exceeded(self):
        for s in self.servers():
            assert s.load <= s.nominal_capacity

    @invariant()
    def nothing_lost_or_running_twice(self):
        in_router = [rid for st_ in self.router.get_server_stats().values() for rid in st_["active_requests"]]
        assert sorted(in_router) == sorted(self.running)
        assert len(set(self.running) | {r.request_id for r in self.waiting}) + self.done == self.submitted
        assert not set(self.running) & {r.request_id for r in self.waiting}
        assert self.pre.running() == len(self.running)

    @invariant()
    def preemption_is_bounded(self):
        for rid in list(self.running) + [r.request_id for r in self.waiting]:
            assert self.pre.preemptions(rid) == self.times.get(rid, 0) <= MAX_PREEMPTIONS


def test_tier_state_machine(impl):
    TierMachine.impl = impl
    machine = TierMachine.TestCase
    machine.settings = settings(max_examples=30, stateful_step_count=40, deadline=None)
    machine().runTest()
