"""Stage 7's race: what a rollout costs, scenario by scenario, and how often the canary test cries wolf.

Scenarios (:data:`SCENARIOS`, :func:`deploy_scenario`), each a timetable on
a fleet of 8 GPU servers (8 slots each) at about 58% of its capacity, whose
new servers load weights for 3 minutes and warm for 30 s
(:data:`GPU_STARTUP`, :data:`GPU_WARMUP`); the deploy starts at 300 s:

* ``good``: a good version, the GPU settings (:func:`gpu_plan`);
* ``k8s-defaults``: the same with Kubernetes' defaults (``maxSurge`` 25%,
  ``maxUnavailable`` 25%, drain-first: :func:`k8s_plan`);
* ``peak``: the GPU settings while the traffic is 1.5x for the whole rollout;
* ``peak-k8s``: Kubernetes' defaults during the same peak;
* ``long``: 0.3% of the requests are 30,000-token generations (10 min;
  they hold 13 of the 64 slots on average, 78% of the slots busy in all)
  and the drain timeout is 120 s: they hit it;
* ``slow-canary``: the new version is 30% slower, canary analysis on
  (steps 5%, 25%, 100%: :data:`CANARY_STEPS`; the three ``*canary`` runs last 3,600 s);
* ``bad-canary``: the new version fails 2% of its requests, canary on;
* ``bad-no-canary``: the same without canary analysis (it rolls out everywhere).

Per scenario (:func:`deploy_race`): the metrics of
:func:`~solution.sim.deploysim.deploy_metrics` as means with t intervals
over seeds (common random numbers: seed k is the same traffic in every
scenario that has the same rate).  :func:`blast_vs_share` runs the failing
version with the canary's first step at several shares (and without a
canary): time to detect and blast radius.  :func:`false_rollbacks` measures
the canary test's false-rollback rate on two identical versions over many
seeds against its nominal rate (a Wilson interval).

The recommended GPU settings (what the course teaches; the numbers above
back it): ``maxUnavailable = 0`` (a GPU server's start-up is minutes: every
server taken down before its replacement is ready is minutes of lost
capacity), ``maxSurge = 25%`` when the spare GPUs exist (one server at a
time otherwise: slower, same capacity), pre-warm on, and a drain timeout a
little above the p99 generation time (here 600 s), with streamed requests
failed and unstreamed ones re-sent when it fires.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from solution.sim.deploysim import DEPLOY_METRICS, DeployScenario, Version, deploy_metrics, run_deploy
from solution.sim.parallel import map_jobs
from solution.sim.theory import mean_confidence_interval

__all__ = ["SCENARIOS", "CANARY_STEPS", "GPU_STARTUP", "GPU_WARMUP", "deploy_scenario", "gpu_plan", "k8s_plan", "canary_plan",
           "deploy_race", "DeployRace", "blast_vs_share", "false_rollbacks", "FalseRollbacks", "wilson_interval",
           "deploy_run", "widget_run", "false_rollbacks_sim"]  # fmt: skip

#: Seconds a GPU server of the course's fleet takes to load its weights (a 70B model from local NVMe) / to warm.
GPU_STARTUP, GPU_WARMUP = 180.0, 30.0

#: The canary steps (percent) of the scenarios with a canary (1% first is in :func:`blast_vs_share`: it needs 48 min to judge).
CANARY_STEPS: tuple[float, ...] = (5, 25, 100)

SCENARIOS: tuple[str, ...] = ("good", "k8s-defaults", "peak", "peak-k8s", "long", "slow-canary", "bad-canary", "bad-no-canary")


def _lib() -> Any:
    from solution.sim.deploysim import _deploy_lib

    return _deploy_lib()


def canary_plan(steps: Sequence[float] = (1, 5, 25, 100), *, window: float = 60.0, alpha: float = 0.05,
                min_requests: int = 200) -> Any:  # fmt: skip
    """A ``CanaryPlan`` with these steps (percent), window (s), alpha and minimum requests per judgement."""
    return _lib().CanaryPlan(steps=tuple(steps), window=window, alpha=alpha, min_requests=min_requests)


def gpu_plan(*, canary: Any = None, drain_timeout: float = 600.0, max_surge: Any = "25%") -> Any:
    """The settings the course recommends for GPU fleets: surge 25%, unavailable 0, pre-warm, a 600 s drain timeout."""
    return _lib().RolloutPlan(max_surge=max_surge, max_unavailable=0, drain_timeout=drain_timeout, prewarm=True, canary=canary)


def k8s_plan(*, canary: Any = None, drain_timeout: float = 600.0) -> Any:
    """Kubernetes' defaults: maxSurge 25%, maxUnavailable 25%, drain-first (no pre-warm)."""
    return _lib().RolloutPlan(max_surge="25%", max_unavailable="25%", drain_timeout=drain_timeout, prewarm=False, canary=canary)


def _version(name: str, **kw: Any) -> Version:
    return Version(name, startup=GPU_STARTUP, warmup=GPU_WARMUP, **kw)


def deploy_scenario(name: str, *, duration: float = 1800.0, rate: float = 7.0) -> tuple[DeployScenario, Any]:
    """``(scenario, plan)`` for one of :data:`SCENARIOS`.

    Raises: ValueError for an unknown name (the message lists them).
    """
    old, good = _version("A"), _version("B")
    base = DeployScenario(name, old, good, replicas=8, slots=8, rate=rate, duration=duration, deploy_at=300.0)
    canary = canary_plan(CANARY_STEPS)
    if "canary" in name:  # bad-no-canary too, to compare with bad-canary; a 5% step needs 200 / (0.05 x 7/s) = 570 s of traffic to judge: room for the whole canary
        base = replace(base, duration=max(duration, 3600.0))
    peak = (300.0, duration, 1.5)
    if name == "good":
        return base, gpu_plan()
    if name == "k8s-defaults":
        return base, k8s_plan()
    if name == "peak":
        return replace(base, peak=peak), gpu_plan()
    if name == "peak-k8s":
        return replace(base, peak=peak), k8s_plan()
    if name == "long":
        return replace(base, long_share=0.003, long_tokens=30_000), gpu_plan(drain_timeout=120.0)
    if name == "slow-canary":
        return replace(base, new=_version("B", speed=0.7)), gpu_plan(canary=canary)
    if name == "bad-canary":
        return replace(base, new=_version("B", error_rate=0.02)), gpu_plan(canary=canary)
    if name == "bad-no-canary":
        return replace(base, new=_version("B", error_rate=0.02)), gpu_plan()
    raise ValueError(f"unknown deploy scenario {name!r}; pick one of {', '.join(SCENARIOS)}")


@dataclass(frozen=True)
class _Job:
    scenario: DeployScenario
    plan: Any
    seed: int


def _run(job: _Job) -> dict[str, float]:
    return deploy_metrics(run_deploy(job.scenario, job.plan, seed=job.seed))


def deploy_run(name: str = "good", *, seed: int = 0, **options: Any) -> Any:
    """One run of a named scenario (a :class:`~solution.sim.deploysim.DeployRun`), for a notebook or a widget."""
    scenario, plan = deploy_scenario(name, **options)
    return run_deploy(scenario, plan, seed=seed)


@dataclass(frozen=True)
class DeployRace:
    """The race's results: ``values[scenario][metric]`` = one value per seed."""

    values: dict[str, dict[str, list[float]]]
    seeds: tuple[int, ...]
    level: float = 0.95

    def interval(self, scenario: str, metric: str) -> tuple[float, float, float]:
        """``(mean, low, high)`` over the seeds (NaN runs left out; low = high = mean with one value)."""
        vals = [v for v in self.values[scenario][metric] if not math.isnan(v)]
        if not vals:
            return math.nan, math.nan, math.nan
        if len(vals) == 1 or len(set(vals)) == 1:
            return vals[0], vals[0], vals[0]
        return mean_confidence_interval(vals, self.level)

    def table(self, metrics: Sequence[str] = DEPLOY_METRICS) -> str:
        """One row per scenario, one column per metric: mean [low, high]."""
        def fmt(mean: float, lo: float, hi: float) -> str:
            if math.isnan(mean):
                return "-"
            return f"{mean:.3g}" if lo == hi else f"{mean:.3g} [{lo:.3g}, {hi:.3g}]"

        width = max(len("scenario"), *(len(s) for s in self.values)) + 2
        rows = [f"{'scenario':<{width}}" + " | ".join(metrics)]
        for s in self.values:
            rows.append(f"{s:<{width}}" + " | ".join(fmt(*self.interval(s, m)) for m in metrics))
        rows.append(f"({len(self.seeds)} seeds, {self.level:.0%} t intervals; duration and detect in s, p99 in s, "
                    "min_capacity a share of the replicas, lost/errors/blast/forced in requests)")  # fmt: skip
        return "\n".join(rows)


def deploy_race(scenarios: Sequence[str] = SCENARIOS, *, seeds: Sequence[int] = (0, 1, 2), workers: int | None = 1,
                duration: float = 1800.0) -> DeployRace:  # fmt: skip
    """Run each named scenario once per seed (the same seeds everywhere); see :class:`DeployRace`.  O(scenarios x seeds x run)."""
    jobs = []
    for name in scenarios:
        scenario, plan = deploy_scenario(name, duration=duration)
        jobs += [_Job(scenario, plan, int(seed)) for seed in seeds]
    rows = iter(map_jobs(_run, jobs, workers))
    values: dict[str, dict[str, list[float]]] = {}
    for name in scenarios:
        got = [next(rows) for _ in seeds]
        values[name] = {m: [g[m] for g in got] for m in DEPLOY_METRICS}
    return DeployRace(values, tuple(int(s) for s in seeds))


def blast_vs_share(shares: Sequence[float] = (1, 5, 25), *, seeds: Sequence[int] = (0, 1, 2), error_rate: float = 0.02,
                   workers: int | None = 1, duration: float = 4800.0) -> dict[str, dict[str, tuple[float, float, float]]]:  # fmt: skip
    """Time to detect (s) and blast radius (requests on the new version) for a version failing ``error_rate``.

    ``duration``: seconds of arrivals (a 1% step at 7 requests/s needs 200 / 0.07 = 2,860 s to be judged).

    One row per first canary share (steps ``(share, 25, 100)`` or ``(share, 100)``) and one without a
    canary (``"none"``); each metric as ``(mean, low, high)`` over ``seeds``, plus ``rolled_back`` (share of runs).
    """
    base, _ = deploy_scenario("bad-no-canary", duration=duration)
    base = replace(base, new=replace(base.new, error_rate=error_rate))
    setups: list[tuple[str, Any]] = []
    for share in shares:
        steps = tuple(sorted({float(share), 25.0, 100.0})) if share < 25 else (float(share), 100.0)
        setups.append((f"{share:g}%", gpu_plan(canary=canary_plan(steps))))
    setups.append(("none", gpu_plan()))
    jobs = [_Job(base, plan, int(s)) for _, plan in setups for s in seeds]
    results = iter(map_jobs(_run_full, jobs, workers))
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    for label, _ in setups:
        got = [next(results) for _ in seeds]
        row = {}
        for metric in ("detect", "blast", "errors"):
            vals = [g[metric] for g in got if not math.isnan(g[metric])]
            row[metric] = (mean_confidence_interval(vals, 0.95) if len(set(vals)) > 1
                           else ((vals[0],) * 3 if vals else (math.nan,) * 3))  # fmt: skip
        rb = sum(g["rolled_back"] for g in got) / len(got)
        row["rolled_back"] = (rb, rb, rb)
        out[label] = row
    return out


def _run_full(job: _Job) -> dict[str, float]:
    run = run_deploy(job.scenario, job.plan, seed=job.seed)
    return {**deploy_metrics(run), "rolled_back": float(run.result == "rolled_back")}


# -- the canary's false alarms -------------------------------------------------------------------

def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """``(k / n, low, high)``: the Wilson score interval of a binomial proportion.  O(1).

    Raises: ValueError for n < 1, k outside [0, n] or level outside (0, 1).
    """
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if not 0 < level < 1:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class FalseRollbacks:
    """The canary test on two identical versions.

    ``judged`` / ``rollbacks``: judgements made and how many said rollback
    (per-test size); ``canaries`` / ``canary_rollbacks``: whole canaries
    (every step before 100% judged once, fresh data each) and how many were
    rolled back; ``nominal_test`` (alpha) and ``nominal_canary``
    (``1 - (1 - alpha) ** k`` for k judged steps: an upper bound, the
    per-step test being of size at most alpha).
    """

    judged: int
    rollbacks: int
    canaries: int
    canary_rollbacks: int
    nominal_test: float
    nominal_canary: float
    steps_judged: int

    def test_rate(self, level: float = 0.95) -> tuple[float, float, float]:
        return wilson_interval(self.rollbacks, self.judged, level)

    def canary_rate(self, level: float = 0.95) -> tuple[float, float, float]:
        return wilson_interval(self.canary_rollbacks, self.canaries, level)

    def report(self) -> str:
        t, c = self.test_rate(), self.canary_rate()
        return (f"per judgement: {t[0]:.4f} [{t[1]:.4f}, {t[2]:.4f}] (nominal at most {self.nominal_test:.4f}, "
                f"{self.judged} judgements)\n"
                f"per canary ({self.steps_judged} steps judged): {c[0]:.4f} [{c[1]:.4f}, {c[2]:.4f}] "
                f"(nominal at most {self.nominal_canary:.4f}, {self.canaries} canaries on identical versions)")  # fmt: skip


def _verdict(v: Any) -> str:
    for name in ("decision", "verdict", "action", "kind", "outcome"):
        value = getattr(v, name, None)
        if isinstance(value, str):
            return value
    raise TypeError(f"cannot read a decision from {v!r}")


def false_rollbacks(plan: Any = None, *, seeds: int = 400, requests: int = 2000, error_rate: float = 0.02,
                    seed: int = 0) -> FalseRollbacks:  # fmt: skip
    """The canary test's false-rollback rate on identical versions (A and B alike), over ``seeds`` canaries.

    Each canary judges every step below 100% once, on a fresh window of
    ``requests`` requests split by the step's share (at least the plan's
    ``min_requests`` on B): errors Bernoulli(``error_rate``) and latencies
    log-normal (median 5 s, sigma 0.8) for both versions.  Uses
    ``CanaryAnalysis(plan).judge``.  O(seeds x steps x requests log requests).
    """
    lib = _lib()
    plan = plan if plan is not None else canary_plan()
    analysis = lib.CanaryAnalysis(plan)
    rng = np.random.default_rng(seed)
    steps = [float(s) for s in plan.steps if float(s) < 100]
    judged = rollbacks = canary_rb = 0
    for _ in range(seeds):
        rolled = False
        for share in steps:
            nb = max(int(plan.min_requests), int(round(requests * share / 100)))
            na = max(int(plan.min_requests), requests - nb)
            stats = []
            for n in (na, nb):
                errors = int(rng.binomial(n, error_rate))
                lat = tuple(float(x) for x in rng.lognormal(math.log(5.0), 0.8, n - errors))
                stats.append(lib.VersionStats(n, errors, lat))
            verdict = _verdict(analysis.judge(stats[0], stats[1]))
            judged += 1
            if verdict == "rollback":
                rollbacks += 1
                rolled = True
                break
        canary_rb += rolled
    alpha = float(plan.alpha)
    return FalseRollbacks(judged, rollbacks, seeds, canary_rb, alpha, 1 - (1 - alpha) ** len(steps), len(steps))


def widget_run(*, max_surge: Any = 1, max_unavailable: Any = 0, prewarm: bool = True, canary_steps: Sequence[float] | None = None,
               error_rate: float = 0.0, speed: float = 1.0, seed: int = 0) -> Any:  # fmt: skip
    """One small, fast rollout for a widget: 4 servers (4 slots) at 2 requests/s, 20 s start-up, 10 s warm-up.

    The deploy starts at 60 s; arrivals last 400 s.  ``canary_steps``
    (percent, e.g. ``(25, 100)``) turns on a canary with a 20 s window and 30
    requests per judgement.  Returns the :class:`~solution.sim.deploysim.DeployRun`
    (its ``capacity`` is the timeline, :func:`~solution.sim.deploysim.deploy_metrics`
    its figures).  About 0.1 s (a median 0.1-0.2 s with the machine busy).
    """
    old = Version("A", startup=20.0, warmup=10.0)
    new = Version("B", speed=speed, error_rate=error_rate, startup=20.0, warmup=10.0)
    scenario = DeployScenario("widget", old, new, replicas=4, slots=4, rate=2.0, duration=400.0, deploy_at=60.0)
    canary = None if canary_steps is None else canary_plan(canary_steps, window=20.0, min_requests=30)
    plan = _lib().RolloutPlan(max_surge=max_surge, max_unavailable=max_unavailable, drain_timeout=120.0, prewarm=prewarm,
                              canary=canary)  # fmt: skip
    return run_deploy(scenario, plan, seed=seed)


def _rolled_back(job: _Job) -> tuple[float, str]:
    run = run_deploy(job.scenario, job.plan, seed=job.seed)
    reason = next((d.reason for d in reversed(run.log) if type(d.action).__name__ == "RolledBack"), "")
    return float(run.result == "rolled_back"), reason


def false_rollbacks_sim(*, seeds: Sequence[int] = range(20), steps: Sequence[float] = CANARY_STEPS, workers: int | None = 1,
                        duration: float = 3600.0) -> dict[str, Any]:  # fmt: skip
    """Whole canaries of a version identical to the running one, in the simulator (the test sees real load effects).

    Returns ``rate`` (Wilson ``(p, low, high)`` at 95%), ``nominal`` (``1 - (1 - alpha)^k``, k judged steps),
    ``runs`` and the ``reasons`` of the rollbacks.  O(seeds x run).
    """
    base, _ = deploy_scenario("good", duration=duration)
    plan = gpu_plan(canary=canary_plan(steps))
    got = map_jobs(_rolled_back, [_Job(base, plan, int(s)) for s in seeds], workers)
    k = sum(1 for s in steps if float(s) < 100)
    rolled = int(sum(r for r, _ in got))
    return {"rate": wilson_interval(rolled, len(got)), "nominal": 1 - (1 - float(plan.canary.alpha)) ** k, "runs": len(got),
            "reasons": [why for r, why in got if r]}  # fmt: skip
