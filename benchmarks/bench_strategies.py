"""Cost per routing decision of each stage-3 strategy, at 16 and at 2,048 servers.

Each timed pair routes a new request (one in eight is large: a long prompt;
the others split 300 prompt + 200 output tokens) and completes
the oldest one, on a cluster kept half full, through
``solution.core.routing.Router`` (the bookkeeping is the same for all, so the
differences are the strategies').  Feedback strategies also get an
``observe`` per completion.  The figure that matters is the ratio
2,048 / 16 servers: near 1 for O(1), O(d) and O(log S) rules; in the
hundreds for a scan.  A plain O(S) least-connections scan is included for
scale.

Usage: python benchmarks/bench_strategies.py [--batches 15] [--pairs 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import solution  # noqa: E402
from solution.core.request import Request  # noqa: E402
from solution.core.routing import BaseStrategy, Router, ServerState  # noqa: E402


class ScanLeastConnections(BaseStrategy):
    """Least-connections by scanning every server: O(S), for comparison."""

    name = "least-connections (scan)"

    def choose(self, request: Request) -> ServerState | None:
        best = None
        for s in self.router.routable_servers():
            if self.router.eligible(s, request) and (best is None or (s.load_ratio_key, s.order) < (best.load_ratio_key, best.order)):
                best = s
        return best


STRATEGIES = {
    "round-robin": solution.RoundRobin, "random": solution.RandomChoice, "least-connections": solution.LeastConnections,
    "power of two": solution.PowerOfChoices, "weighted response time": solution.WeightedResponseTime,
    "peak-EWMA": solution.PeakEwma, "least outstanding tokens": solution.LeastOutstandingTokens,
    "predictive (3 models)": solution.Predictive, "least-connections (scan)": ScanLeastConnections,
}  # fmt: skip


def per_pair(make, servers: int, batches: int, pairs: int) -> float:
    """Median seconds per route + (observe +) complete pair."""
    router = Router(make(), speeds={f"s{k}": (1.0, 2.0, 3.0)[k % 3] for k in range(servers)})
    for k in range(servers):
        router.add_server(f"s{k}", 8, 80 if k % 2 else 24)
    inflight: deque[str] = deque()
    count = 0
    for _ in range(servers * 4):
        rid = f"w{count}"
        count += 1
        router.route_request(rid, 500, prompt_tokens=300)
        inflight.append(rid)
    timings = []
    for _ in range(batches):
        started = time.perf_counter()
        for i in range(pairs):
            rid = f"r{count}"
            count += 1
            if i % 8 == 0:
                router.route_request(rid, 6000, prompt_tokens=5800)
            else:
                router.route_request(rid, 500, prompt_tokens=300)
            inflight.append(rid)
            old = inflight.popleft()
            router.observe(old, latency=1.0 + (count % 7))
            router.complete_request(old)
        timings.append((time.perf_counter() - started) / pairs)
    return statistics.median(timings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--pairs", type=int, default=1000)
    args = parser.parse_args(argv)
    print(f"{'strategy':<28}{'16 servers':>12}{'2,048 servers':>15}{'ratio':>8}")
    for name, make in STRATEGIES.items():
        small = per_pair(make, 16, args.batches, args.pairs)
        large = per_pair(make, 2048, args.batches, args.pairs // 4 if "scan" in name else args.pairs)
        print(f"{name:<28}{small * 1e6:>10.1f}us{large * 1e6:>13.1f}us{large / small:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
