"""Stage 8's costs (issue 15): one retry decision (``Retrier.decide``) with 16 and with 4,096 requests active, against a
retrier that finds the retries in flight by scanning the active requests on every decision, in the same run.

:class:`~solution.retry.Retrier` keeps two counters (active requests, retries
in flight), so a decision is O(1) whatever the load: the ratio of its cost
at 4,096 vs 16 active requests should stay near 1.  The alternative,
:class:`ScanRetrier`, applies the same rules (it gives the same decisions,
checked before timing) but counts the retries in flight with a scan of the
active requests, O(active): its ratio grows with the load, and at 4,096 it is
many times the counters' cost.  Each decision is for the next request in
turn (tries 1, a connection reset, Envoy's default budget of 20%, min 3), so
the budget is exhausted most of the time, as in a storm.

The figures that matter are the ratios (medians of batches run alternately,
so a busy machine slows both alike).

Usage: python benchmarks/bench_retry.py [--batches 7] [--decisions 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solution.core.retry_types import Failure, RetryDecision, RetryPolicy  # noqa: E402
from solution.retry import Retrier, full_jitter  # noqa: E402

SIZES = (16, 4096)
FAILURE = Failure("reset")


class ScanRetrier(Retrier):
    """The same rules, but the retries in flight are counted by scanning every active request (O(active))."""

    def decide(self, request_id: str, tries: int, failure: Failure, *, streamed: bool) -> RetryDecision:
        self._require_active(request_id)
        policy = self.policy
        self._retrying[request_id] = False
        if streamed:
            reason = "streamed"
        elif failure.category not in policy.retry_on:
            reason = "not_retryable"
        elif tries >= policy.max_tries:
            reason = "max_tries"
        elif failure.retry_after is not None and failure.retry_after > policy.max_retry_after:
            reason = "retry_after_too_long"
        elif policy.budget is not None and sum(self._retrying.values()) + 1 > policy.budget.limit(len(self._retrying)):
            reason = "budget"
        else:
            reason = "retry"
        self._decisions += 1
        self._by_reason[reason] += 1
        if reason != "retry":
            return RetryDecision(False, 0.0, reason)
        self._retrying[request_id] = True
        return RetryDecision(True, (failure.retry_after or 0.0) + full_jitter(tries, policy, self._rng), "retry")

    @property
    def retries_in_flight(self) -> int:
        return sum(self._retrying.values())


def make(cls: type[Retrier], active: int) -> tuple[Retrier, list[str]]:
    retrier = cls(RetryPolicy(), seed=1)
    ids = [f"r{i}" for i in range(active)]
    for rid in ids:
        retrier.begin(rid)
    return retrier, ids


def batch(retrier: Retrier, ids: list[str], decisions: int) -> float:
    """Seconds per decision over ``decisions`` decisions, cycling through the active requests."""
    decide, n = retrier.decide, len(ids)
    start = time.perf_counter()
    for i in range(decisions):
        decide(ids[i % n], 1, FAILURE, streamed=False)
    return (time.perf_counter() - start) / decisions


def same_decisions(active: int, decisions: int = 2000) -> bool:
    a, ids = make(Retrier, active)
    b, _ = make(ScanRetrier, active)
    for i in range(decisions):
        rid = ids[i % active]
        if a.decide(rid, 1, FAILURE, streamed=False) != b.decide(rid, 1, FAILURE, streamed=False):
            return False
    return a.retries_in_flight == b.retries_in_flight


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=7)
    parser.add_argument("--decisions", type=int, default=20000)
    args = parser.parse_args(argv)
    for size in SIZES:
        if not same_decisions(size):
            print(f"ScanRetrier and Retrier disagree at {size} active requests: the comparison is void", file=sys.stderr)
            return 1
    kinds = {"counters (Retrier)": Retrier, "scan (ScanRetrier)": ScanRetrier}
    made = {(name, size): make(cls, size) for name, cls in kinds.items() for size in SIZES}
    times: dict[tuple[str, int], list[float]] = {key: [] for key in made}
    for _ in range(args.batches):
        for key, (retrier, ids) in made.items():
            scan = key[0].startswith("scan")
            times[key].append(batch(retrier, ids, args.decisions // 20 if scan and key[1] > 16 else args.decisions))
    med = {key: statistics.median(values) for key, values in times.items()}
    print(f"Retrier.decide, {args.batches} batches (medians), Envoy's default budget (20%, min 3), every request failing")
    print(f"{'':22s} {'16 active':>12s} {'4,096 active':>14s} {'ratio 4096/16':>15s}")
    for name in kinds:
        small, large = med[(name, 16)], med[(name, 4096)]
        print(f"{name:22s} {small * 1e6:9.2f} us {large * 1e6:11.2f} us {large / small:15.2f}")
    counters, scan = med[("counters (Retrier)", 4096)], med[("scan (ScanRetrier)", 4096)]
    print(f"scan / counters at 4,096 active: {scan / counters:.1f}x")
    stats = made[("counters (Retrier)", 4096)][0].stats()
    print(f"(decisions at 4,096 active: {stats['retries']:,} retries, {stats['budget_exhausted']:,} refused by the budget)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
