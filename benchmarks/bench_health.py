"""Cost per routing decision with health state, at 16 and at 2,048 servers (issue 11: the ratio must stay under 2).

Each timed pair submits a new request through :class:`solution.core.path.RequestPath`
(admission -> router with health weights -> dispatch with the retry ledger) and
completes the oldest one (``completed`` with its seconds per token: router
feedback, the checker's passive rules, the freed slot), on a cluster kept half
full, with the simulated clock moving 1 ms per pair.  The fleet is mixed on
purpose: one server in eight is *degraded* (a latency outlier: weight 0.5,
kept so by its slow answers) and one in sixteen is in *slow start* (added
cold, ramping over a window longer than the run), so the path re-weights those
every ``reweight_every`` = 1 simulated second: O(k log S) per second for k
servers in slow start (128 of 2,048 here: far more than a real fleet has at
once, so an upper bound).

The alternative in the same run is a **scan-based health filter**: the same
path and checker, but the strategy reads every server's health weight per
decision (``HealthChecker.weight``) and takes the least loaded by effective
capacity: what a balancer does when health is a filter over the fleet rather
than weights pushed on transitions (the checker gets the same results).  Its
ratio grows with S.

The figure that matters is the ratio 2,048 / 16 servers (medians of batches
run alternately at both sizes, so a busy machine slows both alike).

Usage: python benchmarks/bench_health.py [--batches 9] [--pairs 2000]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solution.core.health_types import HealthPolicy, HealthState, RetryPolicy  # noqa: E402
from solution.core.path import Dispatched, RequestPath  # noqa: E402
from solution.core.request import Request  # noqa: E402
from solution.core.routing import BaseStrategy, LeastConnections, Router, ServerState  # noqa: E402
from solution.health import HealthChecker, RetryLedger  # noqa: E402
from solution.strategies import PowerOfChoices  # noqa: E402

FAST, SLOW = 0.02, 0.2  # seconds per token of a normal and of a degraded server


class ScanHealthFilter(BaseStrategy):
    """Least load over effective capacity, filtering by health with a scan of every server: O(S) per decision."""

    name = "scan health filter"

    def __init__(self) -> None:
        self.checker: HealthChecker | None = None
        self.now = 0.0

    def choose(self, request: Request) -> ServerState | None:
        best, best_key = None, None
        for s in self.router.routable_servers():
            w = self.checker.weight(s.server_id, self.now)
            if w == 0.0 or not self.router.eligible(s, request):
                continue
            eff = max(1, math.floor(s.nominal_capacity * w))
            if s.load >= eff:
                continue
            key = (s.load * 1_000_003 // eff, s.order)
            if best_key is None or key < best_key:
                best, best_key = s, key
        return best


def build(strategy, servers: int, *, pushed: bool) -> tuple[RequestPath, HealthChecker, dict[str, float]]:
    """A path over ``servers`` servers: 1 in 8 degraded, 1 in 16 in slow start, the rest healthy."""
    policy = HealthPolicy(slow_start_window=1e6, latency_factor=2.0, ewma_alpha=0.05, consecutive_5xx=1_000_000)
    checker = HealthChecker(policy, seed=1)
    path = RequestPath(Router(strategy), health=checker if pushed else None, ledger=RetryLedger(RetryPolicy(max_tries=2)),
                       reweight_every=1.0)  # fmt: skip
    spt = {}
    for k in range(servers):
        sid = f"s{k}"
        warm = k % 16 != 5
        path.add_server(sid, 8, 80, 0.0, warm=warm)
        if not pushed:
            checker.add_server(sid, 0.0, warm=warm)
        spt[sid] = SLOW if k % 8 == 3 else FAST
    for sid, v in spt.items():  # one answer each makes the slow ones latency outliers: degraded
        checker.request_result(sid, True, 0.0, v)
    if pushed:
        path.tick(0.0)  # pushes the transitions to the router
    return path, checker, spt


class Run:
    """One path over a half-full fleet, timed in batches of submit + complete pairs."""

    def __init__(self, make, servers: int, *, pushed: bool) -> None:
        self.strategy = make()
        self.path, self.checker, self.spt = build(self.strategy, servers, pushed=pushed)
        if isinstance(self.strategy, ScanHealthFilter):
            self.strategy.checker = self.checker
        self.pushed = pushed
        self.now = 0.0
        self.count = 0
        self.inflight: deque[tuple[str, str]] = deque()
        for _ in range(servers * 4):
            self.submit()

    def submit(self) -> None:
        self.count += 1
        for o in self.path.submit(Request(f"r{self.count}", 500, prompt_tokens=300), self.now):
            if isinstance(o, Dispatched):
                self.inflight.append((o.request_id, o.server_id))

    def batch(self, pairs: int) -> float:
        """Seconds per pair over ``pairs`` pairs."""
        path, checker, spt, inflight = self.path, self.checker, self.spt, self.inflight
        started = time.perf_counter()
        for _ in range(pairs):
            self.now += 1e-3
            self.strategy.now = self.now
            self.submit()
            rid, sid = inflight.popleft()
            path.completed(rid, sid, self.now, seconds_per_token=spt[sid])
            if not self.pushed:  # the same passive health work as the pushed rows
                checker.request_result(sid, True, self.now, spt[sid])
        return (time.perf_counter() - started) / pairs

    def states(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.checker.get_server_stats().values():
            out[s["state"]] = out.get(s["state"], 0) + 1
        return out


def compare(make, batches: int, pairs: int, *, pushed: bool, large_pairs: int | None = None) -> tuple[float, float, Run]:
    """Median seconds per pair at 16 and at 2,048 servers, batches interleaved (a shared machine drifts alike for both)."""
    small, large = Run(make, 16, pushed=pushed), Run(make, 2048, pushed=pushed)
    a, b = [], []
    for _ in range(batches):
        a.append(small.batch(pairs))
        b.append(large.batch(large_pairs or pairs))
    return statistics.median(a), statistics.median(b), large


ROWS = {
    "least-connections, health pushed as weights": (LeastConnections, True),
    "power of two, health pushed as weights": (lambda: PowerOfChoices(d=2, seed=1), True),
    "scan health filter (the alternative)": (ScanHealthFilter, False),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=9)
    parser.add_argument("--pairs", type=int, default=2000)
    args = parser.parse_args(argv)
    print(f"{'route + complete through RequestPath':<46}{'16 servers':>12}{'2,048 servers':>15}{'ratio':>8}")
    states = {}
    for name, (make, pushed) in ROWS.items():
        small, large, run = compare(make, args.batches, args.pairs, pushed=pushed, large_pairs=None if pushed else args.pairs // 8)
        states[name] = run.states()
        print(f"{name:<46}{small * 1e6:>10.1f}us{large * 1e6:>13.1f}us{large / small:>8.2f}")
    fleet = states["least-connections, health pushed as weights"]
    print("fleet of 2,048 at the end: " + ", ".join(f"{fleet.get(s.value, 0)} {s.value}" for s in HealthState))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
