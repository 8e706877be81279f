"""Stage 6's costs (issue 13): admission at 10 and at 100,000 tenants (ratio under 2), a tier-routing decision at
16 and at 4,096 servers.

Admission: :class:`~solution.tiers.TierAdmission` over a
:class:`~solution.tiers.RateLimiter` (the tier's table lookup, the tier-wide
buckets, the tenant's buckets, the idle-tenant check, the LRU move), with
every tenant active: requests come from the tenants in turn, the clock moving
``1 / N`` s per request, so each of the N tenants sends one request a second
(under its limit of 10 a second, well inside its 60 s idle time): the same work
per request at both sizes, all of it admitted.  The tier-wide limit is set so
high that it never refuses, but its buckets are checked and charged.  Against
it, in the same run: a limiter that looks for idle tenants by scanning all of
them on every request (what "forget idle tenants from the front" avoids).

Routing: route one request and complete the oldest in flight on a
:class:`~solution.core.routing.Router` with :class:`~solution.tiers.TierRouting`
kept half full (servers of two speeds, so two latency models; the standard
table: premium predictive, free and batch by load, in turn).  Against it: the
same rule found by a scan of every server per decision (O(S)).

The figures that matter are the ratios (medians of batches run alternately at
both sizes, so a busy machine slows both alike).

Usage: python benchmarks/bench_tiers.py [--batches 7] [--requests 20000] [--pairs 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solution.core.errors import NoCapacityError  # noqa: E402
from solution.core.request import Request  # noqa: E402
from solution.core.routing import Router, ServerState  # noqa: E402
from solution.core.tier_types import RateLimit, ServiceTier  # noqa: E402
from solution.tiers import RateLimiter, TierAdmission, TierRouting, TierTable  # noqa: E402

CAPACITY = 8
TENANT_LIMIT = RateLimit(600, 6_000_000)  # 10 requests and 100,000 tokens a second per tenant
TIER_LIMIT = RateLimit(10**10, 10**13)  # never refuses, always checked


def admission_table() -> TierTable:
    return TierTable([ServiceTier("free", 1, tier_limit=TIER_LIMIT, tenant_limit=TENANT_LIMIT),
                      ServiceTier("premium", 2, 0.25, tenant_limit=TENANT_LIMIT)], default="free")  # fmt: skip


class ScanForgetLimiter(RateLimiter):
    """Looks for idle tenants by scanning every tenant held, on every request: O(N) per request."""

    warming = False  # filling the table: skip the scan (it would make the setup O(N^2))

    def _forget_idle(self, now: float) -> None:
        if self.warming:
            return
        for name, idle_after in self._idle_after.items():
            tenants = self._tenants[name]
            for tenant in [t for t, entry in tenants.items() if now - entry.last >= idle_after]:
                del tenants[tenant]
                self._count -= 1
                self._forgotten += 1


class AdmissionRun:
    """An admission hook with ``tenants`` active tenants, timed in batches of requests."""

    def __init__(self, limiter_class: type[RateLimiter], tenants: int) -> None:
        table = admission_table()
        self.limiter = limiter_class(table, max_tenants=max(tenants, 10))
        self.admit = TierAdmission(table, self.limiter)
        self.tenants = tenants
        self.step = 1.0 / tenants
        self.now = 0.0
        self.count = 0
        self.requests = [Request(f"r{t}", 500, 300, tier="free", tenant=f"t{t}") for t in range(tenants)]
        self.limiter.warming = True
        for _ in range(tenants):  # every tenant admitted once: all of them held
            self.one()
        self.limiter.warming = False
        assert self.limiter.tenants() == tenants

    def one(self) -> None:
        self.now += self.step
        request = self.requests[self.count % self.tenants]
        self.count += 1
        if self.admit(request, self.now) is not None:
            raise AssertionError("the benchmark's requests must all be admitted (same work at both sizes)")

    def batch(self, requests: int) -> float:
        """Seconds per admission over ``requests`` admissions."""
        one = self.one
        started = time.process_time()
        for _ in range(requests):
            one()
        return (time.process_time() - started) / requests


# --- routing ---------------------------------------------------------------------------------------


class ScanTierRouting(TierRouting):
    """The same rule found by scanning every server per decision: O(S)."""

    name = "scan tier routing"
    warming = False  # filling the fleet: use the index (a scan per request would make the setup O(S^2))

    def choose(self, request: Request) -> ServerState | None:
        if self.warming:
            return super().choose(request)
        row = self.table.tier(request.tier)
        for pool in row.pools:
            best = None
            for s in self.router.routable_servers():
                if s.pool == pool and self.fits(s, request):
                    key = self._key(s, row, request)
                    if best is None or key < best[0]:
                        best = (key, s)
            if best is not None:
                return best[1]
        return None


class RoutingRun:
    """A router over ``servers`` servers, half full, routing premium, free and batch requests in turn."""

    TIERS = ("premium", "free", "batch")

    def __init__(self, strategy_class: type[TierRouting], servers: int) -> None:
        self.router = Router(strategy_class(TierTable.standard()), speeds={f"s{k}": 1.0 + (k % 2) for k in range(servers)})
        for k in range(servers):
            self.router.add_server(f"s{k}", CAPACITY, 80)
        self.count = self.refused = 0
        self.inflight: deque[str] = deque()
        strategy = self.router.strategy
        strategy.warming = True  # type: ignore[attr-defined]
        for _ in range(servers * CAPACITY // 2):
            self.submit()
        strategy.warming = False  # type: ignore[attr-defined]

    def submit(self) -> None:
        self.count += 1
        rid = f"r{self.count}"
        try:
            self.router.route(Request(rid, 500, 300, tier=self.TIERS[self.count % 3]))
        except NoCapacityError:
            self.refused += 1
            return
        self.inflight.append(rid)

    def batch(self, pairs: int) -> float:
        """Seconds per pair (a decision and a completion) over ``pairs`` pairs."""
        router, inflight = self.router, self.inflight
        started = time.process_time()
        for _ in range(pairs):
            self.submit()
            if inflight:
                router.complete_request(inflight.popleft())
        return (time.process_time() - started) / pairs


def compare(make_small, make_large, batches: int, small_work: int, large_work: int) -> tuple[float, float]:
    small, large = make_small(), make_large()
    a, b = [], []
    for _ in range(batches):
        a.append(small.batch(small_work))
        b.append(large.batch(large_work))
    return statistics.median(a), statistics.median(b)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20_000, help="admissions per batch")
    parser.add_argument("--pairs", type=int, default=2_000, help="route + complete pairs per batch")
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--servers", type=int, default=4_096)
    args = parser.parse_args(argv)

    print("admission (TierAdmission + RateLimiter), every tenant active and admitted (us per request)")
    print(f"{'limiter':<46}{'10 tenants':>12}{f'{args.tenants:,} tenants':>17}{'ratio':>8}")
    for name, cls, work in (("RateLimiter (idle tenants popped from the front)", RateLimiter, args.requests),
                            ("scan of all tenants per request", ScanForgetLimiter, max(args.requests // 2000, 5))):  # fmt: skip
        small, large = compare(lambda: AdmissionRun(cls, 10), lambda: AdmissionRun(cls, args.tenants), args.batches, work, work)
        print(f"{name:<46}{small * 1e6:>10.2f}us{large * 1e6:>15.2f}us{large / small:>8.2f}")

    print()
    print("tier routing on a half-full Router, premium / free / batch in turn (us per route + complete)")
    print(f"{'strategy':<46}{'16 servers':>12}{f'{args.servers:,} servers':>17}{'ratio':>8}")
    for name, cls, work in (("TierRouting (HeapIndex per tier, pool, model)", TierRouting, args.pairs),
                            ("scan of every server per decision", ScanTierRouting, max(args.pairs // 100, 20))):  # fmt: skip
        small, large = compare(lambda: RoutingRun(cls, 16), lambda: RoutingRun(cls, args.servers), args.batches, work, work)
        print(f"{name:<46}{small * 1e6:>10.2f}us{large * 1e6:>15.2f}us{large / small:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
