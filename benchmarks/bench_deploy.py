"""Stage 7's costs (issue 14): a canary-split routing decision at 16 and at 4,096 servers (ratio 1.7: the heaps'
log S), against a split that filters the fleet by version on every decision (O(S): ratio about 260).

:class:`~solution.deploy.CanarySplit` over ``LeastConnections`` (a quarter of
the servers on the new version, weight 0.25, sessions hashed): route one
request and complete the oldest in flight, the router kept half full.  Against
it, in the same run: the same split done as "list the servers of the request's
version, pick the least loaded" on every decision.

The figures that matter are the ratios (medians of batches run alternately at
both sizes, so a busy machine slows both alike).

Usage: python benchmarks/bench_deploy.py [--batches 7] [--pairs 3000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solution.core.request import Request  # noqa: E402
from solution.core.routing import BaseStrategy, LeastConnections, Router, ServerState  # noqa: E402
from solution.deploy import CanarySplit  # noqa: E402

CAPACITY = 8


class ScanSplit(BaseStrategy):
    """The split done by a scan: the request's version's servers listed on every decision."""

    name = "scan-split"

    def __init__(self, weight: float, new_version: str) -> None:
        self.helper = CanarySplit(LeastConnections, weight=weight, new_version=new_version)

    def choose(self, request: Request) -> ServerState | None:
        want = self.helper.new_version if self.helper.side(request) == "new" else None
        best = None
        for s in self.router.routable_servers():
            if (s.version == want if want else s.version != self.helper.new_version) and self.router.eligible(s, request):
                if best is None or (s.load, s.order) < (best.load, best.order):
                    best = s
        return best


def make(strategy: BaseStrategy, servers: int) -> tuple[Router, deque[str]]:
    router = Router(strategy)
    for i in range(servers):
        router.add_server(f"g{i}", CAPACITY, 80, version="v2" if i % 4 == 0 else "v1")
    flight: deque[str] = deque()
    for i in range(servers * CAPACITY // 2):
        rid = f"warm{i}"
        router.route(Request(rid, 100, session_id=f"s{i}"))
        flight.append(rid)
    return router, flight


def batch(router: Router, flight: deque[str], pairs: int, start: int) -> float:
    t0 = time.perf_counter()
    for i in range(start, start + pairs):
        rid = f"r{i}"
        router.route(Request(rid, 100, session_id=f"s{i % 997}"))
        flight.append(rid)
        router.complete_request(flight.popleft())
    return (time.perf_counter() - t0) / pairs


def ratio(kind: str, batches: int, pairs: int, small: int = 16, large: int = 4096) -> tuple[float, float, float]:
    build = (lambda: CanarySplit(LeastConnections, weight=0.25, new_version="v2")) if kind == "split" else (lambda: ScanSplit(0.25, "v2"))
    a, b = make(build(), small), make(build(), large)
    times_a, times_b = [], []
    for k in range(batches):
        times_a.append(batch(*a, pairs, k * pairs))
        times_b.append(batch(*b, pairs, k * pairs))
    ta, tb = statistics.median(times_a), statistics.median(times_b)
    return ta, tb, tb / ta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=3000)
    args = parser.parse_args(argv)
    for kind in ("split", "scan"):
        ta, tb, r = ratio(kind, args.batches, args.pairs if kind == "split" else max(1, args.pairs // 10))
        print(f"{kind:5}  16 servers {ta * 1e6:7.1f} us/decision   4,096 servers {tb * 1e6:8.1f} us/decision   ratio {r:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
