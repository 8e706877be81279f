"""Clients that retry after a rejection: the wave that one ``Retry-After`` makes, and the jitter that spreads it.

A full queue answers 503 with ``Retry-After: s`` (whole seconds; the
queue's estimate of when it will have room).  Every client rejected in the
same burst gets about the same ``s``, and if each waits exactly ``s`` they
all come back in the same second: a *retry wave*, a second burst that the
queue, full again, rejects again, with a new common ``Retry-After``.  The
cure (Brooker, "Exponential Backoff and Jitter", AWS Architecture Blog,
2015) is randomness: *full jitter* draws the wait uniformly from ``[0,
backoff]`` with ``backoff = min(cap, base * 2**attempt)``.  A client that
honours ``Retry-After`` must not come back before it (RFC 9110, section
10.2.3), so here the jitter is added on top::

    wait = Retry-After                                          (synchronized)
    wait = Retry-After + uniform(0, min(cap, Retry-After * 2**(attempt - 1)))   (jittered)

``attempt`` counts the rejections the request has had (1 after the first).

:func:`run_retries` drives a :class:`~solution.sim.gatewaypool.GatewayPool`
(a gateway over a small pool of M/M/c servers) with Poisson traffic, a burst
and retrying clients, and records every arrival; :class:`RetryRun` gives the
peak arrival rate after the burst and the rejections of retries (the extra
503s the retries cause).  Fresh arrivals and the burst come from one random
stream, service times from another and the jitter from a third, so two
runs with the same seed differ only in how clients wait (common random
numbers).

Costs: O(E log E) for E events (arrivals, retries, completions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from solution.core.queue_types import QueuePolicy, Rejected
from solution.sim.gatewaypool import GatewayPool

__all__ = ["RetryScenario", "RetryRun", "retry_wait", "run_retries", "plot_arrivals"]


def retry_wait(retry_after: int, attempt: int, jitter: bool, rng: np.random.Generator, cap: float = 60.0) -> float:
    """Seconds a client waits before attempt ``attempt + 1``, after its ``attempt``-th rejection.  O(1).

    Without jitter: exactly ``retry_after``.  With jitter: ``retry_after`` plus
    a uniform draw from ``[0, min(cap, retry_after * 2**(attempt - 1))]``
    (full jitter over an exponential backoff, never earlier than the server asked).
    """
    if not jitter:
        return float(retry_after)
    return retry_after + float(rng.uniform(0.0, min(cap, retry_after * 2.0 ** (attempt - 1))))


@dataclass(frozen=True)
class RetryScenario:
    """A small pool under steady traffic, hit by one burst of clients that retry.

    Args:
        servers, slots: the pool (``servers * slots`` requests at a time).
        service_time: mean seconds per request (exponential).
        rate: fresh requests per second (Poisson).
        burst_at, burst, burst_span: ``burst`` extra requests arrive uniformly
            in ``[burst_at, burst_at + burst_span)``.
        duration: seconds of fresh traffic simulated.
        max_depth, rate_window: the queue's policy (FIFO).
        max_attempts: a client gives up after this many rejections.
        cap: the jitter's cap (seconds).
    """

    servers: int = 4
    slots: int = 2
    service_time: float = 1.0
    rate: float = 6.0
    burst_at: float = 60.0
    burst: int = 150
    burst_span: float = 1.0
    duration: float = 180.0
    max_depth: int = 16
    rate_window: float = 10.0
    max_attempts: int = 6
    cap: float = 60.0

    def __post_init__(self) -> None:
        for name in ("servers", "slots", "burst", "max_depth", "max_attempts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name in ("burst", "max_depth") else 1):
                raise ValueError(f"{name} must be an int >= {0 if name in ('burst', 'max_depth') else 1}, got {value!r}")
        for name in ("service_time", "rate", "burst_span", "duration", "rate_window", "cap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not 0 <= self.burst_at < self.duration:
            raise ValueError(f"burst_at must lie in [0, duration), got {self.burst_at!r}")

    @property
    def burst_end(self) -> float:
        return self.burst_at + self.burst_span


@dataclass(frozen=True, eq=False)
class RetryRun:
    """Every arrival of one run (fresh or retry), every rejection, and how the requests ended.

    ``arrivals`` are the times requests reached the gateway and ``retry``
    marks the ones that were retries; ``rejected_at`` the times of the
    rejections and ``rejected_retry`` which of them rejected a retry.
    """

    scenario: RetryScenario
    jitter: bool
    seed: int
    arrivals: np.ndarray
    retry: np.ndarray
    rejected_at: np.ndarray
    rejected_retry: np.ndarray
    served: int
    gave_up: int

    def arrivals_per_second(self, until: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(left edges, counts)``: arrivals (fresh and retries) in each whole second up to ``until``."""
        end = math.ceil(until if until is not None else max(self.scenario.duration, float(self.arrivals.max(initial=0.0))))
        edges = np.arange(0, end + 1, dtype=float)
        counts, _ = np.histogram(self.arrivals, bins=edges)
        return edges[:-1], counts

    @property
    def peak_after_burst(self) -> int:
        """The most arrivals (fresh and retries) in one whole second after the burst ended."""
        start = math.ceil(self.scenario.burst_end)
        times, counts = self.arrivals_per_second()
        return int(counts[times >= start].max(initial=0))

    @property
    def extra_rejections(self) -> int:
        """Rejections of retries: the 503s a retry strategy adds on top of the burst's own."""
        return int(self.rejected_retry.sum())


def run_retries(
    balancer: Callable[[], Any],
    queue_class: Callable[..., Any],
    scenario: RetryScenario = RetryScenario(),
    *,
    jitter: bool,
    seed: int = 0,
) -> RetryRun:
    """Simulate ``scenario`` with clients that wait exactly ``Retry-After`` (``jitter=False``) or jittered.

    Args:
        balancer: a stage-1 balancer class (``demo.LoadBalancer``).
        queue_class: a stage-2 queue class (``demo.RequestQueue``).
        scenario: the pool, the traffic and the burst.
        jitter: how clients wait after a rejection (see :func:`retry_wait`).
        seed: the run's seed; the same seed gives the same fresh traffic and
            service times with or without jitter.

    The run ends when every request has been served or has given up.
    """
    rng_traffic = np.random.default_rng([seed, 1])
    rng_jitter = np.random.default_rng([seed, 2])
    policy = QueuePolicy(max_depth=scenario.max_depth, rate_window=scenario.rate_window)
    pool = GatewayPool(balancer(), queue_class, policy, service_time=scenario.service_time, seed=seed)
    arrivals: list[float] = []
    retry: list[bool] = []
    rejected_at: list[float] = []
    rejected_retry: list[bool] = []
    outcome = {"served": 0, "gave_up": 0}

    def arrive(request_id: str, attempt: int) -> None:
        arrivals.append(pool.now)
        retry.append(attempt > 0)
        result = pool.submit(request_id)
        if isinstance(result, Rejected):
            rejected_at.append(pool.now)
            rejected_retry.append(attempt > 0)
            if attempt + 1 >= scenario.max_attempts:
                outcome["gave_up"] += 1
                return
            wait = retry_wait(result.retry_after, attempt + 1, jitter, rng_jitter, scenario.cap)
            pool.at(pool.now + wait, lambda: arrive(request_id, attempt + 1))
        else:
            outcome["served"] += 1  # dispatched now or queued (no max_wait: a queued request is served)

    fresh: list[float] = []
    t = float(rng_traffic.exponential(1 / scenario.rate))
    while t < scenario.duration:
        fresh.append(t)
        t += float(rng_traffic.exponential(1 / scenario.rate))
    fresh.extend((scenario.burst_at + rng_traffic.uniform(0.0, scenario.burst_span, scenario.burst)).tolist())
    for k, when in enumerate(sorted(fresh)):
        pool.at(when, lambda rid=f"r{k}": arrive(rid, 0))
    for s in range(scenario.servers):
        pool.add_server(f"gpu-{s}", scenario.slots)
    pool.run(math.inf)
    return RetryRun(
        scenario,
        jitter,
        seed,
        np.asarray(arrivals),
        np.asarray(retry, dtype=bool),
        np.asarray(rejected_at),
        np.asarray(rejected_retry, dtype=bool),
        outcome["served"],
        outcome["gave_up"],
    )


def plot_arrivals(runs: dict[str, RetryRun], *, window: tuple[float, float] | None = None, ax: Any = None) -> Any:
    """Arrivals per second (fresh and retries) over time, one line per labelled run.

    One point: retries that obey the same ``Retry-After`` come back together
    (spikes every few seconds), jittered ones spread out.  ``window`` limits
    the x axis (seconds); the burst is shaded.  Returns the figure.
    """
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(9.0, 3.2))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    scenario = next(iter(runs.values())).scenario
    ax.axvspan(scenario.burst_at, scenario.burst_end, color="#bbbbbb", alpha=0.5, linewidth=0,
               label=f"burst: {scenario.burst} extra requests")  # fmt: skip
    for (label, run), color in zip(runs.items(), ("#e45756", "#4c78a8", "#54a24b", "#f58518")):
        times, counts = run.arrivals_per_second()
        ax.step(times, counts, where="post", linewidth=1.0, color=color, label=f"{label} (peak after the burst {run.peak_after_burst}/s)")
    ax.axhline(scenario.servers * scenario.slots / scenario.service_time, color="black", linestyle="--", linewidth=1,
               label="pool capacity (requests/s)")  # fmt: skip
    if window is not None:
        ax.set_xlim(*window)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("arrivals per second (requests/s)")
    ax.set_title("arrivals at the gateway, fresh and retried: a synchronized Retry-After makes waves", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    return fig
