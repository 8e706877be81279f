"""Many runs at once: scenario x load x seed, in parallel on all cores.

Each job is a frozen :class:`Job` (a scenario, a seed, a balancer class), so
it pickles to a worker process; each worker returns a small
:class:`Row` (the job's label, seed and :class:`~solution.sim.results.Summary`),
not the per-request arrays.  Runs are deterministic, so a parallel sweep
returns exactly what the serial one does, in the same order.

:func:`erlang_b_points` is the sweep the tests and the notebook use to check
the simulator against Erlang's formula, with a t confidence interval over
independent seeds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from tqdm.auto import tqdm

from solution.core.queue_types import QueuePolicy
from solution.sim.queueing import QueueConfig
from solution.sim.results import Summary
from solution.sim.runner import BalancerFactory, QueueFactory, balancer_factory, queue_factory, simulate
from solution.sim.scenario import Scenario
from solution.sim.scenarios import classic
from solution.sim.theory import erlang_b, mean_confidence_interval, mmc_mean_wait, mmck

__all__ = ["Job", "Row", "grid", "run_jobs", "aggregate", "ErlangPoint", "erlang_b_points", "QueuePoint", "queue_points"]


@dataclass(frozen=True)
class Job:
    """One run to do.  ``label`` groups runs for :func:`aggregate` (for instance the load)."""

    scenario: Scenario
    seed: int
    label: Hashable = None
    balancer: BalancerFactory | None = None
    warmup: float = 0.0
    queue: QueueFactory | None = None  # the stage-2 queue class, for a scenario with a queue


@dataclass(frozen=True)
class Row:
    """What one job returns."""

    label: Hashable
    seed: int
    summary: Summary


def grid(scenario: Scenario, loads: Iterable[float], seeds: Iterable[int], balancer: BalancerFactory | None = None,
         warmup: float = 0.0) -> list[Job]:  # fmt: skip
    """One job per (load, seed), labelled by the load."""
    seeds = list(seeds)
    return [Job(scenario.with_load(load), seed, load, balancer, warmup) for load in loads for seed in seeds]


def _run(job: Job) -> Row:
    result = simulate(job.scenario, job.balancer, queue=job.queue, seed=job.seed)
    return Row(job.label, job.seed, result.summary(job.warmup))


def run_jobs(jobs: Sequence[Job], *, workers: int | None = None, progress: bool = False) -> list[Row]:
    """Run ``jobs`` and return their rows in the same order.

    ``workers``: processes to use; ``None`` means every core
    (``os.cpu_count()``); 0 or 1 runs in this process (no pickling, handy in
    tests and debuggers).  Uses :class:`concurrent.futures.ProcessPoolExecutor`.

    Raises:
        TypeError: a job's balancer is not picklable (a lambda, a class
            defined in a notebook cell under the spawn start method): pass a
            class importable from a module, or use ``workers=0``.
    """
    jobs = list(jobs)
    for job in jobs:
        if not isinstance(job, Job):
            raise TypeError(f"run_jobs takes Job objects, got {type(job).__name__}")
        balancer_factory(job.balancer)
        queue_factory(job.queue)
    workers = (os.cpu_count() or 1) if workers is None else workers
    with tqdm(total=len(jobs), unit="run", disable=not progress, leave=False) as bar:
        if workers <= 1 or len(jobs) <= 1:
            rows = []
            for job in jobs:
                rows.append(_run(job))
                bar.update()
            return rows
        chunk = max(1, len(jobs) // (4 * workers))
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            rows = []
            for row in pool.map(_run, jobs, chunksize=chunk):
                rows.append(row)
                bar.update()
            return rows


def aggregate(rows: Iterable[Row], metric: str | Callable[[Summary], float], level: float = 0.99) -> dict[Hashable, tuple[float, float, float]]:
    """``{label: (mean, low, high)}``: a t confidence interval of ``metric`` over each label's seeds.

    ``metric`` is a :class:`Summary` field name (``"rejection_rate"``) or a
    function of a summary.  Labels keep their first-seen order.
    """
    get = (lambda s: float(getattr(s, metric))) if isinstance(metric, str) else metric
    by_label: dict[Hashable, list[float]] = {}
    for row in rows:
        by_label.setdefault(row.label, []).append(get(row.summary))
    return {label: mean_confidence_interval(values, level) for label, values in by_label.items()}


@dataclass(frozen=True)
class ErlangPoint:
    """Simulated loss against Erlang B at one (servers, offered load) point."""

    servers: int
    offered_load: float  # a = lambda / mu, in erlangs
    formula: float  # erlang_b(servers, offered_load)
    mean: float  # mean fraction of rejected requests over the seeds
    low: float  # the confidence interval of that mean
    high: float
    seeds: int

    @property
    def agrees(self) -> bool:
        """True when the formula lies inside the confidence interval."""
        return self.low <= self.formula <= self.high


def erlang_b_points(
    points: Sequence[tuple[int, float]],
    seeds: Sequence[int],
    requests: int,
    *,
    warmup: float = 10.0,
    level: float = 0.99,
    balancer: BalancerFactory | None = None,
    workers: int | None = None,
) -> list[ErlangPoint]:
    """Simulate M/M/c/c at each ``(servers, offered_load)`` and compare with Erlang B.

    Each seed is one independent replication of ``requests`` requests in
    classic mode (capacity 1, mean service 1 s); requests arriving in the
    first ``warmup`` seconds (10 mean service times: the empty start has
    long been forgotten) are not counted.  The per-seed loss fractions give
    a t interval at confidence ``level`` (:func:`~solution.sim.theory.mean_confidence_interval`).
    """
    jobs = [
        Job(classic(servers=c, load=a / c, requests=requests), seed, (c, a), balancer, warmup)
        for c, a in points
        for seed in seeds
    ]
    stats = aggregate(run_jobs(jobs, workers=workers), "rejection_rate", level)
    return [
        ErlangPoint(c, a, erlang_b(c, a), *stats[(c, a)], seeds=len(seeds))  # type: ignore[misc]
        for c, a in points
    ]


@dataclass(frozen=True)
class QueuePoint:
    """Simulated queue against M/M/c (``max_depth=None``) or M/M/c/K (K = servers + max_depth) at one point.

    ``wait`` is the mean wait of dispatched requests, in mean service times;
    ``blocking`` the fraction turned away by a full queue (503).  Each is
    ``(mean, low, high)`` over the seeds, against its formula.
    """

    servers: int
    offered_load: float  # a = lambda / mu, in erlangs
    max_depth: int | None
    wait_formula: float
    wait: tuple[float, float, float]
    blocking_formula: float
    blocking: tuple[float, float, float]
    seeds: int

    @property
    def load(self) -> float:
        """Offered load per server, a / c."""
        return self.offered_load / self.servers

    @staticmethod
    def _inside(formula: float, interval: tuple[float, float, float]) -> bool:
        return interval[1] <= formula <= interval[2]

    @property
    def wait_agrees(self) -> bool:
        return self._inside(self.wait_formula, self.wait)

    @property
    def blocking_agrees(self) -> bool:
        return self.max_depth is None or self._inside(self.blocking_formula, self.blocking)


def queue_points(
    points: Sequence[tuple[int, float, int | None]],
    seeds: Sequence[int],
    requests: int,
    *,
    warmup: float = 50.0,
    level: float = 0.99,
    balancer: BalancerFactory | None = None,
    queue: QueueFactory | None = None,
    workers: int | None = None,
) -> list[QueuePoint]:
    """Simulate a FIFO queue in front of c servers at each ``(servers, offered_load, max_depth)``.

    Classic mode (capacity 1, exponential service with mean 1 s) with the
    stage-2 gateway: ``max_depth=None`` is M/M/c (compared with
    :func:`~solution.sim.theory.mmc_mean_wait`), an int is M/M/c/K
    (:func:`~solution.sim.theory.mmck`).  Each seed is one independent
    replication of ``requests`` requests; requests arriving in the first
    ``warmup`` seconds (50 mean service times: a queue forgets its empty
    start more slowly than a loss system) are not counted.  The per-seed
    means give t intervals at confidence ``level``.
    """
    jobs = [
        Job(classic(servers=c, load=a / c, requests=requests).with_queue(QueueConfig(QueuePolicy(max_depth=k))), seed,
            (c, a, k), balancer, warmup, queue)  # fmt: skip
        for c, a, k in points
        for seed in seeds
    ]
    rows = run_jobs(jobs, workers=workers)
    waits = aggregate(rows, "wait_mean", level)
    blocked = aggregate(rows, "queue_full_rate", level)
    out = []
    for c, a, k in points:
        blocking, wait = mmck(c, a, k) if k is not None else (0.0, mmc_mean_wait(c, a))
        out.append(QueuePoint(c, a, k, wait, waits[(c, a, k)], blocking, blocked[(c, a, k)], len(seeds)))
    return out
