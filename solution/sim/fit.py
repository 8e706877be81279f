"""Stage 1's tie-break against best-fit, measured: which GPU gets a request when load ratios tie.

Stage 1's rule (the interview rubric's, so the spec) breaks a tie between
equally loaded servers by *most* GPU memory first.  That sends small requests
to the big GPUs first, and uses up the slots that only big GPUs can give a
large request (more than 4,096 estimated tokens, which needs at least 80 GB).
Best-fit breaks the tie the other way: the *least* memory that fits the
request first (a small request fits every GPU, so it takes the smallest; a
large one is eligible on big GPUs only, and takes the smallest of those), so
big-GPU slots stay free for the requests that need them.

* :class:`BestFit`: the best-fit tie-break as a :class:`~solution.core.routing.Router`
  strategy.  Same load-ratio rule as stage 1; only the memory tie-break is reversed.
* :func:`tie_break_scenario`: a mixed fleet (A10 / A100-40 / A100-80 / H100,
  one capacity for all so that load ratios tie often) and a workload with a
  share of large requests.
* :func:`large_rejection_rate`, :func:`small_rejection_rate`, :func:`large_wait_mean`,
  :func:`small_wait_mean`: race metrics, by request size.
* :func:`compare_tie_breaks`: the spec rule and best-fit raced on the same seeds
  (common random numbers), with paired intervals.

From the shell::

    python -m solution.sim.fit --seeds 20 --requests 6000 --load 0.9           # no queue: rejections
    python -m solution.sim.fit --seeds 20 --requests 6000 --load 0.9 --queue   # a gateway queue: waits
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from solution.core.queue_types import QueuePolicy
from solution.core.routing import IndexedStrategy, RouterFactory, ServerState
from solution.core.validate import require_int
from solution.sim.cluster import Cluster
from solution.sim.queueing import QueueConfig
from solution.sim.race import RaceResult, least_connections, race
from solution.sim.results import Outcome, Results
from solution.sim.scenario import Scenario
from solution.sim.validate import require_number
from solution.sim.workload import LogNormal, Tier, Workload

__all__ = [
    "BestFit",
    "LARGE_TOKENS",
    "FLEET",
    "tie_break_scenario",
    "large_rejection_rate",
    "small_rejection_rate",
    "large_wait_mean",
    "small_wait_mean",
    "TieBreakComparison",
    "compare_tie_breaks",
]

#: Stage 1's default threshold: a request with more estimated tokens than this is *large*.
LARGE_TOKENS = 4096

#: The comparison's default fleet: two of each GPU preset, smallest memory first.
FLEET: Mapping[str, int] = {"A10-24GB": 2, "A100-40GB": 2, "A100-80GB": 2, "H100-80GB": 2}


class BestFit(IndexedStrategy):
    """Weighted least-connections with a best-fit tie-break.

    Lowest ``load / capacity`` (exact, as stage 1), then the *least* GPU
    memory among the servers that can take the request, then most free
    slots, then added earliest.  Only the second component differs from
    stage 1's rule (most memory first): a small request that ties goes to the
    smallest GPU, a large request (eligible on big-memory GPUs only) to the
    smallest big one, so the big GPUs' slots stay free for large requests.

    >>> from solution.core.routing import Router
    >>> lb = Router(BestFit())
    >>> lb.add_server("h100", 4, 80); lb.add_server("a10", 4, 24)
    >>> lb.route_request("chat", 500), lb.route_request("doc", 9000)
    ('a10', 'h100')

    **Cost:** O(log S) amortized per decision (the router's heap index; the
    router keeps big- and small-memory GPUs in two heaps and a large request
    looks at the big ones only).
    """

    name = "best-fit"
    components = ("load ratio", "memory", "-free slots")

    def score(self, server: ServerState, estimated_tokens: int) -> tuple[float, ...]:
        return (server.load_ratio_key / 2**64, float(server.gpu_memory_gb), float(server.load - server.capacity))

    def index_key(self, server: ServerState) -> tuple[Any, ...]:
        """Exact: the load ratio as the router's integer key, then memory ascending."""
        return (server.load_ratio_key, server.gpu_memory_gb, server.load - server.capacity)


def _large(results: Results) -> np.ndarray:
    return results.estimated_tokens > LARGE_TOKENS


def large_rejection_rate(results: Results) -> float:
    """Share of the large requests (more than 4,096 estimated tokens) that were rejected; NaN if none.  O(n)."""
    large = _large(results)
    n = int(np.count_nonzero(large))
    return float(np.count_nonzero(results.outcome[large] == Outcome.REJECTED) / n) if n else float("nan")


def small_rejection_rate(results: Results) -> float:
    """Share of the other requests (at most 4,096 estimated tokens) that were rejected; NaN if none.  O(n)."""
    small = ~_large(results)
    n = int(np.count_nonzero(small))
    return float(np.count_nonzero(results.outcome[small] == Outcome.REJECTED) / n) if n else float("nan")


def large_wait_mean(results: Results) -> float:
    """Mean seconds from arrival to dispatch of the large requests that were dispatched; NaN if none.  O(n)."""
    return _mean_wait(results, _large(results))


def small_wait_mean(results: Results) -> float:
    """Mean seconds from arrival to dispatch of the other requests that were dispatched; NaN if none.  O(n)."""
    return _mean_wait(results, ~_large(results))


def _mean_wait(results: Results, keep: np.ndarray) -> float:
    wait = results.wait[keep]
    wait = wait[~np.isnan(wait)]
    return float(wait.mean()) if len(wait) else float("nan")


def tie_break_scenario(
    requests: int = 6_000,
    load: float = 0.9,
    *,
    large_share: float = 0.2,
    capacity: int = 8,
    fleet: Mapping[str, int] | None = None,
) -> Scenario:
    """A mixed fleet where the tie-break decides often, and a share of large requests.

    Every server has the same ``capacity``, so equal loads are equal load
    ratios (ties); with each GPU's own default capacity (7 to 54) ratios tie
    far less often.  Two tiers: ``chat`` (prompt median 400 tokens, output
    median 150: always small) and ``document`` (prompt median 6,000 tokens,
    sigma 0.25: about 97% of them are large), ``large_share`` of the requests.

    Raises:
        TypeError / ValueError: a bad count, share or load.
    """
    require_int(requests, "requests")
    require_int(capacity, "capacity")
    share = require_number(large_share, "large_share", strict=False)
    if share >= 1:
        raise ValueError(f"large_share must be below 1 (the chat tier needs a share), got {large_share!r}")
    require_number(load, "load")
    tiers = [Tier("chat", 1.0 - share, LogNormal(400, 0.8, high=3000), LogNormal(150, 0.8, high=1000))]
    if share > 0:
        tiers.append(Tier("document", share, LogNormal(6000, 0.25, high=16_000), LogNormal(300, 0.6, high=1000)))
    return Scenario(
        Cluster.mixed(dict(fleet or FLEET), capacity=capacity),
        Workload(requests, tiers=tuple(tiers)),
        load=load,
        name="tie-break",
    )


@dataclass(frozen=True)
class TieBreakComparison:
    """The spec rule (``"spec"``) and best-fit (``"best-fit"``) raced on the same seeds."""

    race: RaceResult

    def table(self) -> str:
        """Each metric: both means and the paired difference best-fit minus spec, with its interval."""
        rows = [f"{'metric':<22} {'spec':>10} {'best-fit':>10}   best-fit - spec [{self.race.level:.0%} paired interval]"]
        for m in self.race.metrics:
            spec, fit = self.race.interval("spec", m)[0], self.race.interval("best-fit", m)[0]
            d, lo, hi = self.race.difference("best-fit", "spec", m)
            rows.append(f"{m:<22} {spec:>10.4f} {fit:>10.4f}   {d:+.4f} [{lo:+.4f}, {hi:+.4f}]")
        rows.append(f"{len(self.race.seeds)} seeds; rates are fractions of requests, waits and latencies in seconds")
        return "\n".join(rows)


def compare_tie_breaks(
    scenario: Scenario | None = None,
    *,
    seeds: Sequence[int] = range(10),
    workers: int | None = 1,
    level: float = 0.95,
) -> TieBreakComparison:
    """Race stage 1's rule (``least_connections()``) against :class:`BestFit` on ``scenario``.

    Both run through the same router, so the memory tie-break is the only
    difference.  Metrics without a queue (a request that finds no eligible
    slot is rejected): :func:`large_rejection_rate`,
    :func:`small_rejection_rate` and the overall ``rejection_rate``; with a
    gateway queue (``scenario.queue``, stage 2: nothing is rejected while it
    has room): :func:`large_wait_mean` and :func:`small_wait_mean`.  Then the
    p50 and p99 end-to-end latency (s) of completed requests.  Cost: one
    simulation per strategy and seed.
    """
    scenario = tie_break_scenario() if scenario is None else scenario
    by_size = (large_rejection_rate, small_rejection_rate, "rejection_rate") if scenario.queue is None else (
        large_wait_mean, small_wait_mean)  # fmt: skip
    out = race(
        scenario,
        {"spec": least_connections(), "best-fit": RouterFactory(BestFit)},
        seeds=seeds,
        metrics=(*by_size, "e2e_p50", "e2e_p99"),
        workers=workers,
        level=level,
    )
    return TieBreakComparison(out)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m solution.sim.fit``: print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=6_000)
    parser.add_argument("--load", type=float, default=0.9)
    parser.add_argument("--large-share", type=float, default=0.2)
    parser.add_argument("--capacity", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--queue", action="store_true", help="a FIFO queue at the gateway (stage 2): compare waits")
    args = parser.parse_args(argv)
    scenario = tie_break_scenario(args.requests, args.load, large_share=args.large_share, capacity=args.capacity)
    if args.queue:
        scenario = scenario.with_queue(QueueConfig(QueuePolicy()))
    print(compare_tie_breaks(scenario, seeds=range(args.seeds), workers=args.workers).table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
