"""Race routing strategies on identical workloads, and check the supermarket model.

:func:`race` runs every strategy on the same seeds: a seed fixes the
arrivals, token counts and estimate errors (see :func:`~solution.sim.runner.prepare`),
so every strategy sees exactly the same traffic (common random numbers).  A
difference between two strategies on one seed is then due to the strategies
alone, and the paired differences over seeds give a much tighter confidence
interval than two separate means would.  Runs go to worker processes.

:func:`health_race` (stage 4) runs health-checking set-ups (none, active,
passive, both, both with slow start) on fault scenarios the same way, and
reports client-visible errors, p99 latency and wasted GPU time with paired
intervals (``python -m solution.sim health-race``).

:func:`supermarket_points` simulates power of d choices with early binding
(per-server FIFO queues, capacity 1, classic mode) and compares the mean time
in system with Mitzenmacher's fixed point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solution.core.latency import REFERENCE_MODEL, LatencyModel
from solution.core.request import Request
from solution.core.routing import BaseStrategy, ServerState
from solution.sim.parallel import map_jobs
from solution.sim.cluster import service_rate
from solution.sim.early import simulate_early
from solution.sim.results import Results, Summary
from solution.sim.runner import BalancerFactory, balancer_factory, simulate
from solution.sim.scenario import Scenario
from solution.sim.scenarios import classic
from solution.sim.theory import mean_confidence_interval, supermarket_mean_time

__all__ = ["RaceResult", "race", "HealthRaceResult", "health_race", "HEALTH_SETUPS", "HEALTH_METRICS", "heterogeneous", "speed_hints", "latency_hints", "TokenDelay", "mean_latency", "least_connections", "routed_least_connections", "SupermarketPoint",
           "supermarket_points"]  # fmt: skip

#: A metric of one run: a Summary field name, or a function of the run's Results.
Metric = str | Callable[[Results], float]


def mean_latency(results: Results) -> float:
    """Mean end-to-end latency (time in system) of completed requests."""
    return float(np.nanmean(results.e2e))


def speed_hints(scenario: Scenario) -> dict[str, float]:
    """Each server's relative speed: its full-batch service rate over the cluster's mean.

    What an operator would configure from the GPU types (``Router(speeds=...)``).  O(n + S).
    """
    rng = np.random.default_rng(0)
    sample = scenario.workload.generate(rng, rng, None if scenario.load is None else scenario.request_rate)
    mean_prefill, mean_decode = scenario.mode.mean_steps(sample.prompt_tokens, sample.output_tokens)
    rates = {
        spec.server_id: service_rate(scenario.mode.server_model(spec.gpu_spec), cap, mean_prefill, mean_decode)
        for spec, cap in zip(scenario.server_specs(), scenario.capacities())
    }
    mean = sum(rates.values()) / len(rates)
    return {sid: r / mean for sid, r in rates.items()}


def latency_hints(scenario: Scenario) -> dict[str, LatencyModel]:
    """Each server's :class:`~solution.core.latency.LatencyModel`, from the scenario's model on its GPU.

    What an operator would configure from the GPU types (``Router(models=...)``):
    ``ModelSpec.latency_model(gpu)`` with the mode's token budget (``LlmMode.server_model``).
    Classic mode has no token model: every server then gets
    :data:`~solution.core.latency.REFERENCE_MODEL` scaled by its
    :func:`speed_hints` speed.  O(S) (O(n + S) in classic mode).
    """
    from solution.sim.cluster import LlmMode

    mode = scenario.mode
    if isinstance(mode, LlmMode):
        return {spec.server_id: mode.server_model(spec.gpu_spec) for spec in scenario.server_specs()}
    return {sid: REFERENCE_MODEL.scaled(speed) for sid, speed in speed_hints(scenario).items()}


class TokenDelay(BaseStrategy):
    """The predictive rule priced in tokens, as the course had it before the latency model: for comparison.

    Expected delay ``(outstanding_tokens + estimated_tokens) / speed``: the
    tokens already on a server are taken as a queue ahead of the request, and a
    prompt token counts as much as an output token.  Both are wrong for a
    continuous-batching server (:mod:`solution.core.latency`); the race shows
    what that costs.  **Cost:** O(S) per decision (a scan: it is a baseline).
    """

    name = "token-delay"
    components = ("tokens / speed",)

    def score(self, server: ServerState, request: Request) -> tuple[float, ...]:
        return ((server.outstanding_tokens + request.estimated_tokens) / server.speed,)

    def choose(self, request: Request) -> ServerState | None:
        servers = [s for s in self.router.routable_servers() if self.router.eligible(s, request)]
        return min(servers, key=lambda s: (self.score(s, request), s.order), default=None)


@dataclass(frozen=True)
class _Job:
    scenario: Scenario
    seed: int
    balancer: BalancerFactory
    early: bool
    warmup: float
    metrics: tuple[Metric, ...]


def _run(job: _Job) -> tuple[Summary, tuple[float, ...]]:
    run = simulate_early if job.early else simulate
    res = run(job.scenario, job.balancer, seed=job.seed)
    kept = _after(res, job.warmup)
    values = tuple(float(getattr(kept.summary(), m)) if isinstance(m, str) else float(m(kept)) for m in job.metrics)
    return res.summary(job.warmup), values


def _after(res: Results, warmup: float) -> Results:
    """The run restricted to requests arriving at or after ``warmup`` (metrics see steady state)."""
    if warmup <= 0:
        return res
    keep = res.arrival >= warmup
    arrays = {k: v[keep] if v.shape == res.arrival.shape else v for k, v in res.arrays().items()}
    fields_ = {k: getattr(res, k) for k in ("scenario", "seed", "server_ids", "tier_names", "mode")}
    return Results(**fields_, **arrays)


def _map(jobs: list[_Job], workers: int | None) -> list[tuple[Summary, tuple[float, ...]]]:
    return map_jobs(_run, jobs, workers)


@dataclass(frozen=True)
class RaceResult:
    """Per strategy and metric: the values over seeds (same seeds for all: paired)."""

    strategies: tuple[str, ...]
    metrics: tuple[str, ...]
    seeds: tuple[int, ...]
    values: Mapping[str, Mapping[str, tuple[float, ...]]]  # strategy -> metric -> one value per seed
    summaries: Mapping[str, tuple[Summary, ...]] = field(repr=False)
    level: float = 0.95

    def interval(self, strategy: str, metric: str) -> tuple[float, float, float]:
        """``(mean, low, high)`` over seeds (a t interval at ``level``)."""
        return mean_confidence_interval(self.values[strategy][metric], self.level)

    def difference(self, a: str, b: str, metric: str) -> tuple[float, float, float]:
        """``(mean, low, high)`` of ``a - b`` paired by seed: below 0 everywhere means a is lower."""
        pairs = [x - y for x, y in zip(self.values[a][metric], self.values[b][metric])]
        return mean_confidence_interval(pairs, self.level)

    def ratio(self, a: str, b: str, metric: str) -> float:
        """Mean of ``a`` over mean of ``b``."""
        return self.interval(a, metric)[0] / self.interval(b, metric)[0]

    def best(self, metric: str) -> str:
        """The strategy with the lowest mean ``metric``."""
        return min(self.strategies, key=lambda s: self.interval(s, metric)[0])

    def table(self) -> str:
        """Mean and confidence interval of each metric, one row per strategy, best first by the first metric."""
        order = sorted(self.strategies, key=lambda s: self.interval(s, self.metrics[0])[0])
        width = max(len(s) for s in order)
        head = f"{'strategy':<{width}}  " + "  ".join(f"{m:>24}" for m in self.metrics)
        rows = [head]
        for s in order:
            cells = []
            for m in self.metrics:
                mean, lo, hi = self.interval(s, m)
                cells.append(f"{mean:>8.3f} [{lo:.3f}, {hi:.3f}]".rjust(24))
            rows.append(f"{s:<{width}}  " + "  ".join(cells))
        rows.append(f"{len(self.seeds)} seeds, {self.level:.0%} t intervals; the same traffic for every strategy")
        return "\n".join(rows)


def race(
    scenario: Scenario,
    strategies: Mapping[str, BalancerFactory],
    *,
    seeds: Sequence[int] = range(5),
    metrics: Sequence[Metric] = ("e2e_p50", "e2e_p95", "e2e_p99"),
    early: bool = False,
    warmup: float = 0.0,
    level: float = 0.95,
    workers: int | None = None,
) -> RaceResult:
    """Run each strategy on ``scenario`` for every seed; compare them with intervals over seeds.

    >>> from solution import RouterFactory, RoundRobin, LeastConnections
    >>> from solution.sim import scenarios
    >>> out = race(scenarios.steady(servers=3, requests=600), {"rr": RouterFactory(RoundRobin),
    ...            "lc": RouterFactory(LeastConnections)}, seeds=range(3), workers=0)
    >>> sorted(out.values), len(out.values["rr"]["e2e_p99"])
    (['lc', 'rr'], 3)

    Args:
        strategies: name -> balancer class or picklable factory (e.g.
            :class:`solution.core.routing.RouterFactory`); each run gets a fresh one.
        seeds: at least two; a seed gives every strategy the same arrivals and tokens.
        metrics: :class:`Summary` field names or functions of :class:`Results`
            (e.g. :func:`mean_latency`), measured on requests arriving after ``warmup``.
        early: early binding (:func:`~solution.sim.early.simulate_early`, classic mode).
        workers: processes (None: every core; 0 or 1: in this process).

    Raises:
        TypeError / ValueError: an empty race, fewer than two seeds, or a balancer that is not a factory.
    """
    if not strategies:
        raise ValueError("race needs at least one strategy")
    seeds = tuple(seeds)
    if len(seeds) < 2:
        raise ValueError(f"race needs at least two seeds for a confidence interval, got {len(seeds)}")
    for factory in strategies.values():
        balancer_factory(factory)
    names = tuple(m if isinstance(m, str) else getattr(m, "__name__", "metric") for m in metrics)
    jobs = [_Job(scenario, seed, f, early, warmup, tuple(metrics)) for f in strategies.values() for seed in seeds]
    out = iter(_map(jobs, workers))
    values: dict[str, dict[str, tuple[float, ...]]] = {}
    summaries: dict[str, tuple[Summary, ...]] = {}
    for name in strategies:
        rows = [next(out) for _ in seeds]
        summaries[name] = tuple(r[0] for r in rows)
        values[name] = {m: tuple(r[1][k] for r in rows) for k, m in enumerate(names)}
    return RaceResult(tuple(strategies), names, seeds, values, summaries, level)


@dataclass(frozen=True)
class SupermarketPoint:
    """Simulated mean time in system against the supermarket fixed point at one (d, load)."""

    d: int
    load: float
    servers: int
    formula: float
    mean: float
    low: float
    high: float
    seeds: int

    @property
    def gap(self) -> float:
        """Relative distance of the simulated mean from the formula (``mean / formula - 1``)."""
        return self.mean / self.formula - 1.0

    def agrees(self, allowance: float = 0.0) -> bool:
        """True when the formula, widened by ``allowance`` (relative), meets the confidence interval."""
        return self.low <= self.formula * (1 + allowance) and self.formula * (1 - allowance) <= self.high


def least_connections(**options: Any) -> BalancerFactory:
    """Stage 1's rule as a race entrant: ``RouterFactory(LeastConnections, **options)``.

    The candidate's bundle leaves :class:`~solution.core.routing.LeastConnections`
    out (it is stage 1's answer): there the entrant is the candidate's own
    ``LoadBalancer``, which takes no options (a stale view or per-server
    queues need the router, so asking for them raises ``NotImplementedError``).
    """
    from solution.core.impl import load_impl, reference_available
    from solution.core.routing import LeastConnections, RouterFactory

    if reference_available():
        return RouterFactory(LeastConnections, **options)
    if options:
        raise NotImplementedError(
            f"least-connections with {', '.join(sorted(options))} needs the reference's LeastConnections strategy, "
            "which this copy leaves out (stage 1's rule is your exercises/balancer.py)"
        )
    return load_impl("exercises").LoadBalancer


def routed_least_connections(**options: Any) -> BalancerFactory:
    """Stage 1's rule as a stage-3 :class:`~solution.core.routing.Router`, for runs that need router weights.

    Health checking (stage 4 on) steers traffic through ``Router.set_weight``,
    which stage 1's five-method ``LoadBalancer`` does not have.  In the
    repository this is ``RouterFactory(LeastConnections, **options)``.  The
    candidate's bundle leaves ``LeastConnections`` out (it is stage 1's
    answer), so there it is ``RouterFactory(PowerOfChoices, **options)`` built
    from the candidate's own stage-3 ``PowerOfChoices``: power of two choices,
    a different rule, so the bundle's figures differ from the committed ones.
    """
    from solution.core.impl import load_impl, reference_available
    from solution.core.routing import LeastConnections, RouterFactory

    if reference_available():
        return RouterFactory(LeastConnections, **options)
    return RouterFactory(load_impl("exercises").PowerOfChoices, **options)


def supermarket_points(
    points: Sequence[tuple[int, float]],
    seeds: Sequence[int],
    *,
    servers: int = 100,
    requests: int = 100_000,
    warmup: float = 50.0,
    level: float = 0.99,
    strategy: Callable[..., object] | None = None,
    workers: int | None = None,
) -> list[SupermarketPoint]:
    """Power of d choices with early binding at each ``(d, load)``, against :func:`supermarket_mean_time`.

    Classic mode, capacity 1, mean service 1 s, per-server FIFO queues
    (:func:`~solution.sim.early.simulate_early`), ``servers`` servers; each
    seed is an independent replication, its statistic the mean time in system
    of the requests arriving after ``warmup`` seconds.  ``strategy`` is the
    power-of-d class (default the reference's ``solution.PowerOfChoices``; the
    candidate's in the candidate's bundle),
    seeded with the replication's seed.
    """
    from solution.core.routing import RouterFactory

    if strategy is None:
        from solution.core.impl import demo_impl

        strategy = demo_impl().PowerOfChoices  # the reference's; the candidate's in the candidate's bundle
    jobs = [
        _Job(classic(servers=servers, load=load, requests=requests), s,
             RouterFactory(strategy, {"d": d, "seed": s}, queue_per_server=None), True, warmup, (mean_latency,))
        for d, load in points
        for s in seeds
    ]  # fmt: skip
    values = iter(v[0] for _, v in _map(jobs, workers))
    out = []
    for d, load in points:
        mean, low, high = mean_confidence_interval([next(values) for _ in seeds], level)
        out.append(SupermarketPoint(d, load, servers, supermarket_mean_time(d, load), mean, low, high, len(seeds)))
    if any(math.isnan(p.mean) for p in out):
        raise ValueError("no request completed after the warm-up; raise requests or lower warmup")
    return out


def heterogeneous(
    requests: int = 4_000,
    load: float = 0.7,
    *,
    fleet: Mapping[str, int] | None = None,
    output_alpha: float = 1.3,
    estimate_sigma: float | None = None,
) -> Scenario:
    """The race's scenario: a mixed fleet, heavy-tailed output lengths, imperfect estimates.

    Default fleet: four A10s, two A100-80GBs and two H100s.  Prompts are
    log-normal (median 512 tokens); outputs Pareto with minimum 32 tokens and
    tail index ``output_alpha`` (1.3: a few requests carry much of the work),
    clipped at 4,096.  The prompt's length is known exactly (a gateway
    tokenizes it); the output's estimate is off by a log-normal factor of
    ``estimate_sigma`` (default
    :data:`~solution.sim.workload.OUTPUT_ESTIMATE_SIGMA`, 0.544: what a
    predictor that knows only the prompt length achieves on the Azure
    conversation trace).
    """
    from solution.sim.cluster import Cluster
    from solution.sim.scenario import EstimateError
    from solution.sim.workload import OUTPUT_ESTIMATE_SIGMA, LogNormal, Pareto, Tier, Workload

    tier = Tier("chat", 1.0, LogNormal(512, 1.0, high=8192), Pareto(32, output_alpha, high=4096))
    return Scenario(
        Cluster.mixed(dict(fleet or {"A10-24GB": 4, "A100-80GB": 2, "H100-80GB": 2})),
        Workload(requests, tiers=(tier,)),
        load=load,
        estimate=EstimateError(sigma=OUTPUT_ESTIMATE_SIGMA if estimate_sigma is None else estimate_sigma),
        name="heterogeneous",
    )


# -- stage 4: the health-checking race --------------------------------------------------------

#: The race's set-ups: name -> (active, passive, slow_start, checker on).
HEALTH_SETUPS: dict[str, tuple[bool, bool, bool]] = {
    "none": (False, False, False),
    "active": (True, False, False),
    "passive": (False, True, False),
    "both": (True, True, False),
    "both+slow start": (True, True, True),
}

#: The race's metrics: client-visible errors, p99 end-to-end latency (s), wasted GPU slot-seconds.
HEALTH_METRICS = ("errors", "e2e_p99", "wasted_gpu_s")


def _health_metrics(res: Results) -> tuple[float, float, float]:
    return float(res.client_errors()), float(res.summary().e2e_p99), res.wasted_gpu_seconds()


@dataclass(frozen=True)
class _HealthJob:
    scenario: Scenario
    seed: int
    balancer: BalancerFactory


def _run_health_job(job: _HealthJob) -> tuple[float, float, float]:
    return _health_metrics(simulate(job.scenario, job.balancer, seed=job.seed))


@dataclass(frozen=True)
class HealthRaceResult:
    """Per fault, set-up and metric: one value per seed (the same seeds everywhere: paired)."""

    faults: tuple[str, ...]
    setups: tuple[str, ...]
    seeds: tuple[int, ...]
    values: Mapping[tuple[str, str], Mapping[str, tuple[float, ...]]]  # (fault, setup) -> metric -> per seed
    level: float = 0.95
    metrics: tuple[str, ...] = HEALTH_METRICS

    def interval(self, fault: str, setup: str, metric: str) -> tuple[float, float, float]:
        """``(mean, low, high)`` over seeds (a t interval at ``level``)."""
        return mean_confidence_interval(self.values[(fault, setup)][metric], self.level)

    def difference(self, fault: str, a: str, b: str, metric: str) -> tuple[float, float, float]:
        """``(mean, low, high)`` of set-up ``a`` minus ``b`` on ``fault``, paired by seed (below 0: a is lower)."""
        pairs = [x - y for x, y in zip(self.values[(fault, a)][metric], self.values[(fault, b)][metric])]
        return mean_confidence_interval(pairs, self.level)

    def table(self, baseline: str = "none") -> str:
        """One block per fault: each set-up's mean [interval] per metric, and its paired difference from ``baseline``."""
        width = max(len(s) for s in self.setups)
        lines = []
        for fault in self.faults:
            lines.append(f"fault: {fault}")
            lines.append(f"  {'set-up':<{width}}  " + "  ".join(f"{m:>26}" for m in self.metrics)
                         + f"   paired difference from {baseline!r}")  # fmt: skip
            for setup in self.setups:
                cells = []
                for m in self.metrics:
                    mean, lo, hi = self.interval(fault, setup, m)
                    cells.append(f"{mean:>9.2f} [{lo:8.2f}, {hi:8.2f}]")
                diff = ""
                if setup != baseline and baseline in self.setups:
                    parts = []
                    for m in self.metrics:
                        d, lo, hi = self.difference(fault, setup, baseline, m)
                        parts.append(f"{m} {d:+.2f} [{lo:+.2f}, {hi:+.2f}]")
                    diff = "   " + "; ".join(parts)
                lines.append(f"  {setup:<{width}}  " + "  ".join(cells) + diff)
        lines.append(f"{len(self.seeds)} seeds (common random numbers: the same traffic for every set-up), "
                     f"{self.level:.0%} t intervals; errors = requests whose client got an error; e2e_p99 in s; "
                     "wasted_gpu_s = slot-seconds of tries whose answer was discarded or failed")  # fmt: skip
        return "\n".join(lines)


def health_race(
    faults: Sequence[str] = ("crash", "hang", "throttled", "failing"),
    setups: Sequence[str] = tuple(HEALTH_SETUPS),
    *,
    servers: int = 4,
    requests: int = 3_000,
    load: float = 0.6,
    seeds: Sequence[int] = range(4),
    policy: Any = None,
    retry: Any = None,
    balancer: BalancerFactory | None = None,
    level: float = 0.95,
    workers: int | None = None,
) -> HealthRaceResult:
    """Stage 4's race: health-checking set-ups on fault scenarios, with common random numbers.

    Each fault is :func:`solution.sim.scenarios.health_fault` (one bad
    server of ``servers``; a crashed or hung server restarts cold); each
    set-up turns checks on with :meth:`Scenario.with_health`: ``none`` (the
    request path with re-route but no checker), ``active`` (probes),
    ``passive`` (outlier detection on real traffic), ``both``, and
    ``both+slow start``.  Slow start is off in the others (a 1 ms window).
    Every set-up uses the same ``retry`` policy (default: 3 tries, a 60 s
    per-try timeout) and balancer (default least-connections), so a
    difference is due to the checks alone.  Metrics: :data:`HEALTH_METRICS`.

    >>> out = health_race(("crash",), ("none", "both"), requests=600, seeds=range(2), workers=0)
    >>> sorted(out.values), out.metrics
    ([('crash', 'both'), ('crash', 'none')], ('errors', 'e2e_p99', 'wasted_gpu_s'))

    Raises:
        ValueError: an unknown fault or set-up, or fewer than two seeds.
    """
    from solution.core.health_types import HealthPolicy, RetryPolicy
    from solution.sim.scenarios import health_fault

    seeds = tuple(seeds)
    if len(seeds) < 2:
        raise ValueError(f"health_race needs at least two seeds for a confidence interval, got {len(seeds)}")
    unknown = [s for s in setups if s not in HEALTH_SETUPS]
    if unknown:
        raise ValueError(f"unknown set-ups {unknown}; choose from {', '.join(HEALTH_SETUPS)}")
    policy = HealthPolicy() if policy is None else policy
    retry = RetryPolicy(max_tries=3, per_try_timeout=60.0) if retry is None else retry
    factory = routed_least_connections() if balancer is None else balancer_factory(balancer)
    base = {f: health_fault(f, servers=servers, requests=requests, load=load) for f in faults}
    jobs = []
    for fault in faults:
        for setup in setups:
            active, passive, slow = HEALTH_SETUPS[setup]
            scenario = base[fault].with_health(policy, active=active, passive=passive, slow_start=slow, retry=retry)
            jobs.extend(_HealthJob(scenario, seed, factory) for seed in seeds)
    rows = map_jobs(_run_health_job, jobs, workers)
    out = iter(rows)
    values: dict[tuple[str, str], dict[str, tuple[float, ...]]] = {}
    for fault in faults:
        for setup in setups:
            got = [next(out) for _ in seeds]
            values[(fault, setup)] = {m: tuple(g[k] for g in got) for k, m in enumerate(HEALTH_METRICS)}
    return HealthRaceResult(tuple(faults), tuple(setups), seeds, values, level)
