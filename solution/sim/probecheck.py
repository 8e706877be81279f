"""Stage 4's checks of the simulator against theory: detection time of a crash, and false ejections.

* :func:`detection_check`: a server crashes at a time placed uniformly in
  its probe cycle (the crash time is drawn per seed); active checks only.
  Every measured detection time (first ``down`` transition minus the crash)
  must lie in :func:`~solution.sim.theory.detection_time_interval`, and their
  mean should match :func:`~solution.sim.theory.detection_time_mean`.
* :func:`false_ejection_check`: a healthy server whose probes are lost with
  probability ``p``; the number of probes until it is marked down is compared
  with :func:`~solution.sim.theory.expected_probes_to_run` (a t interval over
  seeds must contain it), and the time with
  :func:`~solution.sim.theory.false_ejection_mean_time`.

Both run the full simulator (:class:`~solution.sim.healthsim.HealthEngine`,
probes as events) on a small, quiet fleet, so each seed takes milliseconds.
``python -m solution.sim health-checks`` prints them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from solution.sim.cluster import Cluster
from solution.sim.faults import Crash
from solution.sim.runner import BalancerFactory, simulate
from solution.sim.scenario import Scenario
from solution.sim.theory import (
    detection_time_interval,
    detection_time_mean,
    expected_probes_to_run,
    false_ejection_mean_time,
    mean_confidence_interval,
)
from solution.sim.workload import Fixed, Poisson, Tier, Workload

__all__ = ["DetectionCheck", "FalseEjectionCheck", "detection_check", "false_ejection_check", "quiet_fleet"]


def quiet_fleet(servers: int = 2, requests: int = 20) -> Scenario:
    """A small fleet with a trickle of short requests (the checks are about probes, not traffic)."""
    workload = Workload(requests, Poisson(), tiers=(Tier("probe-check", 1.0, Fixed(64), Fixed(16)),))
    return Scenario(Cluster.uniform(servers), workload, load=0.05, name="quiet")


def _router() -> BalancerFactory:
    from solution.sim.race import routed_least_connections

    return routed_least_connections()


@dataclass(frozen=True)
class DetectionCheck:
    """Measured detection times of a crash against the interval and mean the probe settings predict."""

    interval: float
    timeout: float
    unhealthy_threshold: int
    jitter: float
    low: float
    high: float
    formula_mean: float
    samples: tuple[float, ...]
    level: float = 0.99

    @property
    def inside(self) -> int:
        """Samples inside ``[low, high)``."""
        return sum(1 for s in self.samples if self.low <= s < self.high)

    @property
    def mean_interval(self) -> tuple[float, float, float]:
        return mean_confidence_interval(self.samples, self.level)

    def agrees(self) -> bool:
        """Every sample inside the interval, and the mean's t interval contains the formula's mean."""
        _, lo, hi = self.mean_interval
        return self.inside == len(self.samples) and lo <= self.formula_mean <= hi

    def line(self) -> str:
        mean, lo, hi = self.mean_interval
        return (f"I={self.interval:g} s, T={self.timeout:g} s, N={self.unhealthy_threshold}, jitter={self.jitter:g}: "
                f"predicted [{self.low:.2f}, {self.high:.2f}) s, {self.inside}/{len(self.samples)} seeds inside "
                f"(min {min(self.samples):.2f}, max {max(self.samples):.2f}); mean {mean:.2f} s "
                f"[{lo:.2f}, {hi:.2f}] vs formula {self.formula_mean:.2f} s")  # fmt: skip


def detection_check(interval: float = 5.0, timeout: float = 1.0, unhealthy_threshold: int = 3, jitter: float = 0.1,
                    seeds: Sequence[int] = range(40), *, balancer: BalancerFactory | None = None, health: Any = None,
                    level: float = 0.99) -> DetectionCheck:  # fmt: skip
    """Crash ``gpu-0`` at ``40 s + u * interval`` (u uniform, drawn from the seed); measure the time to ``down``.

    Active checks only (passive checks would also see the refused requests).
    ``health``: the stage-4 module (default: the reference).
    """
    from solution.core.health_types import HealthPolicy

    policy = HealthPolicy(interval=interval, timeout=timeout, unhealthy_threshold=unhealthy_threshold, jitter=jitter)
    base = quiet_fleet()
    factory = _router() if balancer is None else balancer
    samples = []
    horizon = 40.0 + (unhealthy_threshold + 3) * interval * 2
    for seed in seeds:
        crash_at = 40.0 + float(np.random.default_rng([seed, 7]).uniform()) * interval
        scenario = replace(base, timetable=(Crash(crash_at, "gpu-0"),)).with_health(policy, active=True, passive=False, until=horizon,
                                                                                               stop_when_down=True)
        res = simulate(scenario, factory, seed=seed, health=health)
        samples.append(res.health.first_down("gpu-0", crash_at) - crash_at)  # type: ignore[union-attr]
    low, high = detection_time_interval(interval, timeout, unhealthy_threshold, jitter)
    return DetectionCheck(interval, timeout, unhealthy_threshold, jitter, low, high,
                          detection_time_mean(interval, timeout, unhealthy_threshold, jitter), tuple(samples), level)  # fmt: skip


@dataclass(frozen=True)
class FalseEjectionCheck:
    """Probes (and seconds) until a healthy server with lossy probes is marked down, against the run-length formula."""

    p: float
    unhealthy_threshold: int
    interval: float
    timeout: float
    formula_probes: float
    formula_time: float
    probes: tuple[int, ...]
    times: tuple[float, ...]
    level: float = 0.99

    def probes_interval(self) -> tuple[float, float, float]:
        return mean_confidence_interval([float(k) for k in self.probes], self.level)

    def time_interval(self) -> tuple[float, float, float]:
        return mean_confidence_interval(self.times, self.level)

    def agrees(self) -> bool:
        """Both t intervals (probes and seconds) contain their formula."""
        _, lo, hi = self.probes_interval()
        _, tlo, thi = self.time_interval()
        return lo <= self.formula_probes <= hi and tlo <= self.formula_time <= thi

    def line(self) -> str:
        m, lo, hi = self.probes_interval()
        tm, tlo, thi = self.time_interval()
        return (f"p={self.p:g}, N={self.unhealthy_threshold}, I={self.interval:g} s: probes to ejection {m:.1f} "
                f"[{lo:.1f}, {hi:.1f}] vs formula {self.formula_probes:.1f}; time {tm:.1f} s [{tlo:.1f}, {thi:.1f}] "
                f"vs formula {self.formula_time:.1f} s ({len(self.probes)} seeds, {self.level:.0%} t intervals)")  # fmt: skip


def false_ejection_check(p: float = 0.5, unhealthy_threshold: int = 3, interval: float = 5.0, timeout: float = 1.0,
                         seeds: Sequence[int] = range(60), *, balancer: BalancerFactory | None = None, health: Any = None,
                         level: float = 0.99) -> FalseEjectionCheck:  # fmt: skip
    """Lose each probe with probability ``p`` to one healthy server; count its probes until it is marked down.

    The horizon is 12 times the formula's mean time (a run that never ejects
    by then raises: raise the horizon or lower the threshold).
    """
    from solution.core.health_types import HealthPolicy

    policy = HealthPolicy(interval=interval, timeout=timeout, unhealthy_threshold=unhealthy_threshold, jitter=0.1)
    formula_time = false_ejection_mean_time(p, interval, timeout, unhealthy_threshold)
    horizon = 12 * formula_time
    factory = _router() if balancer is None else balancer
    scenario = quiet_fleet(servers=1).with_health(policy, active=True, passive=False, probe_loss=p, until=horizon,
                                             stop_when_down=True)
    probes, times = [], []
    for seed in seeds:
        res = simulate(scenario, factory, seed=seed, health=health)
        log = res.health
        down = log.first_down("gpu-0")  # type: ignore[union-attr]
        if math.isinf(down):
            raise ValueError(f"seed {seed}: gpu-0 was never ejected within {horizon:.0f} s; lower the threshold or raise p")
        probes.append(log.probes_until(0, down - timeout + 1e-9))  # type: ignore[union-attr]
        times.append(down)
    return FalseEjectionCheck(p, unhealthy_threshold, interval, timeout, expected_probes_to_run(p, unhealthy_threshold),
                              formula_time, tuple(probes), tuple(times), level)  # fmt: skip
