"""The retry storm's cost in the simulator (issue 15): seconds per try of a storm run at 150 and at 2,400 requests.

:mod:`solution.sim.retrystorm` states that a run costs O(E log E) for E events,
so the time per try (the run's time over the tries it sent) should stay
nearly flat when the run grows 16-fold: the ratio 2,400 / 150 should stay
near 1 (a log factor), where anything that scanned the requests or the tries
per event would grow it about 16-fold.  Both sizes run the same fleet (4 x 16
slots, load 0.25, classic mode), half of the attempts failing after their
service, Envoy's budget on, so every try goes through the request path and
the retrier (backoff, budget) and half of them through a re-send.  Batches
alternate between the sizes, so a busy machine slows both alike; the figure
that matters is the ratio of the medians.

Usage: python benchmarks/bench_retrystorm.py [--batches 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solution.sim.retrystorm import StormFleet, storm_run  # noqa: E402

SIZES = (150, 2400)
FRACTION = 0.5
POLICY = "retries + budget"


def per_try(requests: int, seed: int) -> tuple[float, int]:
    """Seconds per try of one storm run with ``requests`` requests, and its tries."""
    started = time.perf_counter()
    run = storm_run(FRACTION, POLICY, fleet=StormFleet(requests=requests), seed=seed)
    elapsed = time.perf_counter() - started
    tries = int(run.results.tries.sum())
    return elapsed / tries, tries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args(argv)
    per_try(SIZES[0], 0)  # imports and first-call costs out of the timing
    times: dict[int, list[float]] = {n: [] for n in SIZES}
    tries: dict[int, int] = {}
    for b in range(args.batches):
        for n in SIZES:
            t, k = per_try(n, b)
            times[n].append(t)
            tries[n] = k
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"storm run (f = {FRACTION}, {POLICY}), {args.batches} batches (medians)")
    for n in SIZES:
        print(f"{n:>6,} requests ({tries[n]:>6,} tries): {med[n] * 1e6:8.1f} us per try")
    print(f"ratio {SIZES[1]:,} / {SIZES[0]:,} requests: {med[SIZES[1]] / med[SIZES[0]]:.2f} (a run 16x larger)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
