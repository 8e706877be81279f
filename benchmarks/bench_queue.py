"""Cost per operation of the stage-2 queue at depths 100 and 100,000.

For each operation the queue is filled to the depth; each operation is
timed alone (the cost of reading the timer is subtracted), then an untimed
step restores the depth:

* **enqueue**: a new request joins (then it is cancelled);
* **dispatch**: ``peek()`` then ``dispatch()`` of the head, as a gateway does
  when a slot frees (then a new request joins);
* **expiry**: the clock moves to ``next_deadline()`` and ``expire()`` times
  out the one request due, as the simulator's deadline event does (then a
  new request joins);
* **cancellation**: a random waiting request is withdrawn (then a new one joins).

Requests carry random sizes (shortest-job-first is the ordering that moves
most entries in its heaps) and random classes; 10% are large.  It prints the
median over batches of the mean cost per operation, and the ratio between the
two depths.  A heap operation walks log n levels: log(100,000) / log(100) =
2.5 times more at the larger depth; and the queue at 100,000 (about 30 MB of
entries) outgrows the CPU cache, so each level can cost a cache miss: up to
about twice as much again.  Target: at most 5x.  A structure that scans
(O(n)) would cost 1,000 times more at 100,000 than at 100.

Usage: python benchmarks/bench_queue.py [--ordering sjf] [--batches 30] [--batch 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solution import ManualClock, QueuePolicy, RequestQueue  # noqa: E402

DEPTHS = (100, 100_000)
TARGET_RATIO = 5.0  # log(100,000) / log(100) = 2.5 levels, times up to 2 for cache misses


class Bench:
    """A queue kept at ``depth`` waiting requests, with fresh ids and random sizes."""

    def __init__(self, depth: int, ordering: str, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.clock = ManualClock()
        self.queue = RequestQueue(self.clock, QueuePolicy(ordering=ordering, max_wait=1000.0))
        self.next_id = 0
        self.waiting: list[str] = []  # ids still waiting (those a cancellation may pick)
        self.position: dict[str, int] = {}
        self.add(depth)

    def new_request(self) -> tuple[str, int, int, int | None]:
        """A fresh id, a size (10% large), a class, and the prompt's share of the size for half the requests."""
        self.next_id += 1
        tokens = self.rng.randint(4097, 30_000) if self.rng.random() < 0.1 else self.rng.randint(1, 4096)
        prompt = self.rng.randint(0, tokens) if self.rng.random() < 0.5 else None
        return f"r{self.next_id}", tokens, self.rng.randrange(4), prompt

    def add(self, count: int, step: float = 0.001) -> None:
        """``count`` new requests join, ``step`` seconds apart."""
        for _ in range(count):
            self.clock.advance(step)
            rid, tokens, priority, prompt = self.new_request()
            self.queue.enqueue(rid, tokens, priority, prompt_tokens=prompt)
            self.position[rid] = len(self.waiting)
            self.waiting.append(rid)

    def forget(self, request_id: str) -> None:
        """Drop ``request_id`` from the waiting ids in O(1) (swap with the last): an O(n) scan here,
        untimed as it is, would flush the CPU caches before every timed operation."""
        i = self.position.pop(request_id)
        last = self.waiting.pop()
        if last != request_id:
            self.waiting[i] = last
            self.position[last] = i


def timer_overhead() -> float:
    """ns that two perf_counter_ns() calls around nothing take (subtracted from every sample)."""
    samples = []
    for _ in range(2000):
        start = time.perf_counter_ns()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples)


def measure(op: str, depth: int, ordering: str, batches: int, batch: int, overhead: float) -> float:
    """Median over ``batches`` of the mean ns per operation, each timed alone at exactly ``depth`` waiting."""
    b = Bench(depth, ordering)
    q, clock, clock_now = b.queue, b.clock, time.perf_counter_ns
    samples = []
    for _ in range(batches):
        total = 0
        for _ in range(batch):
            if op == "enqueue":
                rid, tokens, priority, prompt = b.new_request()
                start = clock_now()
                q.enqueue(rid, tokens, priority, prompt_tokens=prompt)
                total += clock_now() - start
                q.cancel(rid)
            elif op == "dispatch":
                start = clock_now()
                q.dispatch(q.peek().request_id, "gpu-0")  # type: ignore[union-attr]
                total += clock_now() - start
                b.add(1)
            elif op == "expiry":
                clock.set(q.next_deadline())  # type: ignore[arg-type]
                start = clock_now()
                q.expire()
                total += clock_now() - start
                b.add(1, step=0.0)  # a later deadline joins (the clock stays before the next one)
            else:  # cancellation
                rid = b.waiting[b.rng.randrange(len(b.waiting))]
                start = clock_now()
                q.cancel(rid)
                total += clock_now() - start
                b.forget(rid)
                b.add(1)
        samples.append(total / batch - overhead)
        assert len(q) == depth
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ordering", default="sjf", choices=["fifo", "priority", "sjf"])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--check", action="store_true", help=f"exit 1 if a ratio exceeds {TARGET_RATIO}")
    args = parser.parse_args(argv)
    print(f"RequestQueue ({args.ordering}), median of {args.batches} batches of {args.batch} operations "
          f"(Python {sys.version.split()[0]})")  # fmt: skip
    print(f"{'operation':<14}" + "".join(f"{f'depth {d:,}':>16}" for d in DEPTHS) + f"{'ratio':>9}")
    worst, overhead = 0.0, timer_overhead()
    for op in ("enqueue", "dispatch", "expiry", "cancellation"):
        costs = [measure(op, depth, args.ordering, args.batches, args.batch, overhead) for depth in DEPTHS]
        ratio = costs[-1] / costs[0]
        worst = max(worst, ratio)
        print(f"{op:<14}" + "".join(f"{c / 1000:>13.2f} us" for c in costs) + f"{ratio:>8.2f}x")
    print(f"largest ratio {worst:.2f}x  (target <= {TARGET_RATIO:g}x: O(log n) with cache misses; a scan would be 1,000x)")
    return 1 if args.check and worst > TARGET_RATIO else 0


if __name__ == "__main__":
    raise SystemExit(main())
