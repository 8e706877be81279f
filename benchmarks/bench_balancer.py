"""Cost of a route + complete pair in the stage-1 balancer, at 16 and at 2,048 servers.

Prints the median cost per pair (over many timed batches) for the reference
and, in the same run, for a plain O(S) scan that applies the same rule, so
the figures that matter are ratios that hold on a noisy machine:

* reference at 2,048 servers / reference at 16 servers: O(log S) keeps it near 1
  (target: at most 2);
* scan / reference at 2,048 servers: what the index buys.

The cluster is half full (every server runs capacity/2 sequences); each
pair routes a new request (one in eight is large) and completes the oldest
one, so the load stays put and every route sees the same cluster shape.

Usage: python benchmarks/bench_balancer.py [--batches 40] [--pairs 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solution import LoadBalancer  # noqa: E402


class ScanBalancer:
    """The same rule by a linear scan: O(S) per route.  Only what the benchmark calls."""

    def __init__(self) -> None:
        self.servers: dict[str, list[Any]] = {}  # id -> [capacity, memory, load, order]
        self.where: dict[str, str] = {}

    def add_server(self, server_id: str, capacity: int, gpu_memory_gb: int) -> None:
        self.servers[server_id] = [capacity, gpu_memory_gb, 0, len(self.servers)]

    def route_request(self, request_id: str, estimated_tokens: int) -> str:
        large = estimated_tokens > 4096
        best, best_key = None, None
        for sid, (cap, mem, load, order) in self.servers.items():
            if load >= cap or (large and mem < 80):
                continue
            key = ((load << 64) // cap, -mem, load - cap, order)
            if best_key is None or key < best_key:
                best, best_key = sid, key
        if best is None:
            raise RuntimeError("full")
        self.servers[best][2] += 1
        self.where[request_id] = best
        return best

    def complete_request(self, request_id: str) -> None:
        self.servers[self.where.pop(request_id)][2] -= 1


def median_pair_ns(make: Callable[[], Any], servers: int, batches: int, pairs: int) -> float:
    """Median over ``batches`` of the mean cost of one route+complete pair, in ns."""
    lb = make()
    for i in range(servers):
        lb.add_server(f"s{i}", 8, (24, 40, 80, 80)[i % 4])
    in_flight: deque[str] = deque()
    for i in range(servers * 4):
        rid = f"warm{i}"
        lb.route_request(rid, 100)
        in_flight.append(rid)
    tokens = [9000 if i % 8 == 0 else 300 for i in range(pairs)]
    ids = [[f"b{b}-{i}" for i in range(pairs)] for b in range(batches)]
    samples = []
    route, complete, popleft, append = lb.route_request, lb.complete_request, in_flight.popleft, in_flight.append
    for b in range(batches):
        batch = ids[b]
        start = time.perf_counter_ns()
        for i in range(pairs):
            rid = batch[i]
            route(rid, tokens[i])
            append(rid)
            complete(popleft())
        samples.append((time.perf_counter_ns() - start) / pairs)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=2000)
    args = parser.parse_args()
    print(f"route+complete pair, median of {args.batches} batches of {args.pairs} pairs (Python {sys.version.split()[0]})")
    ref_small = median_pair_ns(LoadBalancer, 16, args.batches, args.pairs)
    ref_large = median_pair_ns(LoadBalancer, 2048, args.batches, args.pairs)
    scan_small = median_pair_ns(ScanBalancer, 16, args.batches, args.pairs)
    scan_large = median_pair_ns(ScanBalancer, 2048, max(4, args.batches // 10), max(200, args.pairs // 10))
    print(f"{'servers':>8} {'reference (heap)':>18} {'scan O(S)':>12}")
    print(f"{16:>8} {ref_small / 1000:>15.2f} us {scan_small / 1000:>9.2f} us")
    print(f"{2048:>8} {ref_large / 1000:>15.2f} us {scan_large / 1000:>9.2f} us")
    ratio = ref_large / ref_small
    print(f"reference 2048/16 ratio: {ratio:.2f}  (target <= 2; O(log S))")
    print(f"reference pair at 2048 servers: {ref_large / 1000:.2f} us  (target < 10 us)")
    print(f"scan / reference at 2048 servers: {scan_large / ref_large:.0f}x")


if __name__ == "__main__":
    main()
