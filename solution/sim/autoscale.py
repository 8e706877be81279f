"""When to add GPU replicas: a scale-up signal that leads, scale-down with hysteresis, and the provisioning delay.

A new GPU replica takes minutes to join (a node, the image, the weights
into GPU memory).  A signal that fires when the queue is already long asks
for capacity that arrives only after the damage: the queue has filled and
the gateway answers 503.  A signal that fires on every short burst flaps:
it orders replicas the burst no longer needs by the time they join.

Two autoscalers read the gateway every ``tick`` seconds and are compared on
the same traffic (:func:`run_autoscale`):

* ``"depth held"`` (the signal stage 2 started with): the queue's own
  ``stats().scale_up``, raised when the depth has stayed above
  ``scale_up_depth`` for ``scale_up_after`` seconds.  One replica per
  raise, while none is on its way; one replica removed as soon as the queue
  is empty and the replicas are less than half busy.
* ``"target wait"`` (derived, leading): a target mean wait ``W`` and the
  Erlang C formula give the replicas needed for the arrival rate measured
  over the last ``window`` seconds: the smallest ``n`` with
  ``C(c, a) / (c*mu - lambda) <= W`` (``c = n * slots`` servers, ``a =
  lambda / mu``).  It fires when that ``n`` exceeds the replicas present
  and ordered for ``up_hold`` seconds in a row, *before* the queue grows:
  the wait is predicted from the rate, not observed.  Little's law gives
  the backlog trigger too: a FIFO newcomer behind ``depth`` requests waits
  about ``depth / (c * mu)``, which exceeds ``W`` once ``depth > W * c *
  mu``; so the queue's ``stats()`` depth above that level also adds a
  replica.  Scale-down has *hysteresis*: a replica leaves only when the
  others would run below ``down_utilization`` (lower than the level that
  scales up) *and* still meet ``W``, continuously for ``down_hold``
  seconds.

Replicas requested at ``t`` join at ``t + provisioning_delay``.  Each run
records the queue's ``stats()`` at every tick (depth and its ``scale_up``
flag), the replicas present and ordered, and every order, join and leave,
so the figures read what the queue reported instead of recomputing it.

The traffic (:class:`AutoscaleScenario`): a quiet phase with short bursts
(which should not scale anything), a ramp to a sustained higher rate (which
should), and a fall back (which should scale down, once).  Poisson arrivals
by thinning, exponential service (:class:`~solution.sim.gatewaypool.GatewayPool`).

Costs: O(E log E) for E events, plus O(n_max) Erlang C evaluations per tick.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solution.core.queue_types import Dispatched, FinalOutcome, QueuePolicy, Rejected
from solution.sim.gatewaypool import GatewayPool
from solution.sim.theory import mmc_mean_wait

__all__ = ["AutoscaleScenario", "AutoscaleRun", "replicas_needed", "backlog_threshold", "run_autoscale", "plot_timeline", "POLICIES"]

#: The autoscalers :func:`run_autoscale` knows.
POLICIES = ("depth held", "target wait")


def replicas_needed(rate: float, slots: int, service_time: float, target_wait: float, most: int) -> int:
    """The fewest replicas (of ``slots`` M/M/c servers each) whose Erlang C mean wait at ``rate`` is at most ``target_wait``.

    ``most`` when even that many do not meet it.  O(most).
    """
    mu = 1.0 / service_time
    if rate <= 0:
        return 1
    for n in range(1, most + 1):
        c = n * slots
        if rate < c * mu and mmc_mean_wait(c, rate / mu) * service_time <= target_wait:
            return n
    return most


def backlog_threshold(target_wait: float, slots: int, service_time: float) -> int:
    """The depth above which a FIFO newcomer waits more than ``target_wait`` (Little): ``floor(W * c * mu)``."""
    return math.floor(target_wait * slots / service_time)


@dataclass(frozen=True)
class AutoscaleScenario:
    """Traffic, replicas and the autoscaler's settings.  Times in seconds, rates per second.

    The arrival rate is ``base`` until ``ramp_at``, with bursts of
    ``burst_rate`` lasting ``burst_span`` starting at each of ``bursts``;
    it rises linearly to ``peak`` over ``ramp_span``, holds until
    ``fall_at``, then returns to ``base`` until ``duration``.
    """

    base: float = 7.0
    peak: float = 20.0
    bursts: tuple[float, ...] = (150.0, 300.0, 450.0)
    burst_rate: float = 16.0
    burst_span: float = 15.0
    ramp_at: float = 600.0
    ramp_span: float = 1200.0
    fall_at: float = 2400.0
    duration: float = 3600.0
    slots: int = 4  # requests at a time per replica
    service_time: float = 1.0
    replicas: int = 3  # at the start
    min_replicas: int = 2
    max_replicas: int = 12
    provisioning_delay: float = 120.0
    max_depth: int = 100
    tick: float = 5.0
    # "depth held": the queue's own signal
    scale_up_depth: int = 16
    scale_up_after: float = 15.0
    # "target wait"
    target_wait: float = 0.1
    backlog_wait: float = 2.0
    backlog_after: float = 60.0
    window: float = 120.0
    up_hold: float = 20.0
    down_utilization: float = 0.7
    down_hold: float = 300.0

    def rate(self, t: float) -> float:
        """The arrival rate at time ``t``."""
        if t >= self.fall_at:
            return self.base
        if t >= self.ramp_at:
            return self.base + (self.peak - self.base) * min(1.0, (t - self.ramp_at) / self.ramp_span)
        if any(b <= t < b + self.burst_span for b in self.bursts):
            return self.burst_rate
        return self.base

    @property
    def max_rate(self) -> float:
        return max(self.base, self.peak, self.burst_rate)


@dataclass(frozen=True, eq=False)
class AutoscaleRun:
    """One run of one autoscaler.

    Per tick (arrays): ``t``, the queue's ``stats()`` ``depth`` and
    ``scale_up`` flag, the measured arrival ``rate``, the replicas
    ``active`` and ``pending`` (ordered, not yet joined).  ``orders``:
    ``(time, +n)`` for replicas ordered, ``(time, -1)`` for one removed.
    ``rejected_at``: times of the 503s; ``waits``: seconds each dispatched
    request waited.
    """

    policy: str
    seed: int
    scenario: AutoscaleScenario
    t: np.ndarray
    depth: np.ndarray
    scale_up: np.ndarray
    rate: np.ndarray
    active: np.ndarray
    pending: np.ndarray
    orders: tuple[tuple[float, int], ...]
    rejected_at: np.ndarray
    waits: np.ndarray = field(repr=False)

    def first_order_after(self, t: float) -> float:
        """When the first replica was ordered at or after ``t`` (NaN: never)."""
        return next((at for at, n in self.orders if n > 0 and at >= t), math.nan)

    def first_rejection_after(self, t: float) -> float:
        """The first 503 at or after ``t`` (NaN: none)."""
        later = self.rejected_at[self.rejected_at >= t]
        return float(later.min()) if len(later) else math.nan

    def ups_between(self, start: float, end: float) -> int:
        """Scale-up orders placed in ``[start, end)``."""
        return sum(1 for at, n in self.orders if n > 0 and start <= at < end)

    @property
    def reversals(self) -> int:
        """Changes of direction between consecutive orders (up then down, or down then up): the flaps."""
        signs = [n > 0 for _, n in self.orders]
        return sum(1 for a, b in zip(signs, signs[1:]) if a != b)

    @property
    def replica_seconds(self) -> float:
        """The integral of active replicas over time (what the fleet cost), from the ticks."""
        return float(np.sum(self.active[:-1] * np.diff(self.t))) if len(self.t) > 1 else 0.0

    @property
    def wait_p99(self) -> float:
        return float(np.percentile(self.waits, 99)) if len(self.waits) else math.nan


def run_autoscale(
    balancer: Callable[[], Any],
    queue_class: Callable[..., Any],
    policy: str,
    scenario: AutoscaleScenario = AutoscaleScenario(),
    *,
    seed: int = 0,
) -> AutoscaleRun:
    """Simulate ``scenario`` under one autoscaler (``"depth held"`` or ``"target wait"``; see the module docstring).

    The traffic and the service times depend on ``seed`` only, so both
    autoscalers see the same arrivals (common random numbers).

    Raises:
        ValueError: an unknown ``policy``.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown autoscaler {policy!r}; choose one of {POLICIES}")
    sc = scenario
    if policy == "depth held":
        qpolicy = QueuePolicy(max_depth=sc.max_depth, scale_up_depth=sc.scale_up_depth, scale_up_after=sc.scale_up_after)
    else:  # the backlog safety net: the depth at which a newcomer would wait backlog_wait on the starting fleet
        backlog = backlog_threshold(sc.backlog_wait, sc.replicas * sc.slots, sc.service_time)
        qpolicy = QueuePolicy(max_depth=sc.max_depth, scale_up_depth=backlog, scale_up_after=sc.backlog_after)
    rejected: list[float] = []
    waits: list[float] = []

    def on_outcome(outcome: FinalOutcome) -> None:
        if type(outcome) is Rejected:
            rejected.append(outcome.at)
        elif type(outcome) is Dispatched:
            waits.append(outcome.waited)

    pool = GatewayPool(balancer(), queue_class, qpolicy, service_time=sc.service_time, seed=seed, on_outcome=on_outcome)
    rng = np.random.default_rng([seed, 7])
    recent: deque[float] = deque()  # arrival times within the window
    counter = {"replica": 0, "request": 0}
    state = {"pending": 0, "above_since": math.nan, "low_since": math.nan}
    replicas: list[str] = []
    log: dict[str, list[float]] = {k: [] for k in ("t", "depth", "scale_up", "rate", "active", "pending")}
    orders: list[tuple[float, int]] = []

    def new_replica() -> None:
        rid = f"replica-{counter['replica']}"
        counter["replica"] += 1
        replicas.append(rid)
        pool.add_server(rid, sc.slots)

    def join() -> None:
        state["pending"] -= 1
        new_replica()

    def order(n: int) -> None:
        state["pending"] += n
        orders.append((pool.now, n))
        for _ in range(n):
            pool.at(pool.now + sc.provisioning_delay, join)

    def remove() -> None:
        orders.append((pool.now, -1))
        pool.remove_server(replicas.pop())

    def arrive() -> None:
        recent.append(pool.now)
        pool.submit(f"r{counter['request']}")
        counter["request"] += 1

    def tick() -> None:
        now = pool.now
        stats = pool.queue.stats()
        while recent and recent[0] <= now - sc.window:
            recent.popleft()
        rate = len(recent) / sc.window
        active = len(replicas)
        for key, value in (("t", now), ("depth", stats.depth), ("scale_up", stats.scale_up), ("rate", rate),
                           ("active", active), ("pending", state["pending"])):  # fmt: skip
            log[key].append(float(value))
        if policy == "depth held":
            if stats.scale_up and state["pending"] == 0 and active < sc.max_replicas:
                order(1)
            elif stats.depth == 0 and state["pending"] == 0 and active > sc.min_replicas and rate < 0.5 * active * sc.slots / sc.service_time:
                remove()
        else:
            need = replicas_needed(rate, sc.slots, sc.service_time, sc.target_wait, sc.max_replicas)
            have = active + state["pending"]
            if need > have or (stats.scale_up and state["pending"] == 0):
                if math.isnan(state["above_since"]):
                    state["above_since"] = now
                if now - state["above_since"] >= sc.up_hold and have < sc.max_replicas:
                    order(min(sc.max_replicas, max(need, have + 1)) - have)
                    state["above_since"] = math.nan
            else:
                state["above_since"] = math.nan
            fewer = active - 1
            ok_with_fewer = (
                state["pending"] == 0 and fewer >= sc.min_replicas
                and rate < sc.down_utilization * fewer * sc.slots / sc.service_time
                and replicas_needed(rate, sc.slots, sc.service_time, sc.target_wait, sc.max_replicas) <= fewer
            )  # fmt: skip
            if ok_with_fewer:
                if math.isnan(state["low_since"]):
                    state["low_since"] = now
                if now - state["low_since"] >= sc.down_hold:
                    remove()
                    state["low_since"] = math.nan
            else:
                state["low_since"] = math.nan
        if now + sc.tick <= sc.duration:
            pool.at(now + sc.tick, tick)

    # arrivals: a Poisson process of rate max_rate, thinned to rate(t)
    t = 0.0
    top = sc.max_rate
    while True:
        t += float(rng.exponential(1.0 / top))
        if t >= sc.duration:
            break
        if rng.random() * top < sc.rate(t):
            pool.at(t, arrive)
    for _ in range(sc.replicas):
        new_replica()
    pool.at(sc.window, tick)  # the first tick once a whole window of arrivals has been seen
    pool.run(sc.duration)
    return AutoscaleRun(
        policy,
        seed,
        sc,
        *(np.asarray(log[k], dtype=bool if k == "scale_up" else float) for k in ("t", "depth", "scale_up", "rate", "active", "pending")),
        tuple(orders),
        np.asarray(rejected),
        np.asarray(waits),
    )


def plot_timeline(runs: dict[str, AutoscaleRun]) -> Any:
    """Three panels over time, one line per autoscaler: the arrival rate against each fleet's capacity
    (requests/s), the replicas present (count), and the queue depth that the queue's ``stats()``
    reported at each tick (requests), shaded where its own ``scale_up`` flag was raised.

    Every value drawn is one the run recorded; nothing is recomputed.  Returns the figure.
    """
    from matplotlib.figure import Figure

    first = next(iter(runs.values()))
    sc = first.scenario
    fig = Figure(figsize=(10.0, 7.2))
    rate_ax, fleet_ax, depth_ax = fig.subplots(3, 1, sharex=True)
    grid = np.linspace(0.0, sc.duration, 2000)
    rate_ax.plot(grid, [sc.rate(x) for x in grid], color="black", linewidth=0.8, label="true arrival rate")
    rate_ax.plot(first.t, first.rate, color="#999999", linewidth=1.0, linestyle=":", label=f"measured over {sc.window:g} s")
    colors = {"depth held": "#e45756", "target wait": "#4c78a8"}
    per_replica = sc.slots / sc.service_time
    for name, run in runs.items():
        color = colors.get(name, None)
        rate_ax.step(run.t, run.active * per_replica, where="post", color=color, linewidth=1.2, label=f"capacity, {name}")
        fleet_ax.step(run.t, run.active, where="post", color=color, linewidth=1.2, label=f"replicas present, {name}")
        fleet_ax.step(run.t, run.active + run.pending, where="post", color=color, linewidth=0.8, linestyle="--",
                      label=f"present + ordered, {name}")  # fmt: skip
        depth_ax.step(run.t, run.depth, where="post", color=color, linewidth=1.0, label=f"depth from stats(), {name}")
        up = run.scale_up.astype(float)
        if up.any():
            depth_ax.fill_between(run.t, 0, sc.max_depth, where=up > 0, step="post", color=color, alpha=0.15, linewidth=0,
                                  label=f"stats().scale_up raised, {name}")  # fmt: skip
    depth_ax.axhline(sc.max_depth, color="#c00", linestyle="--", linewidth=1, label=f"max depth {sc.max_depth} (503 beyond)")
    rate_ax.set_ylabel("requests/s")
    rate_ax.set_title("arrival rate against each fleet's capacity", fontsize=10)
    fleet_ax.set_ylabel("replicas")
    fleet_ax.set_title(f"replicas: ordered ones join {sc.provisioning_delay:g} s later", fontsize=10)
    depth_ax.set_ylabel("requests waiting")
    depth_ax.set_xlabel("time (s)")
    depth_ax.set_title("queue depth as the queue's stats() reported it at each tick", fontsize=10)
    for ax in (rate_ax, fleet_ax, depth_ax):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", borderaxespad=0.0)
    fig.subplots_adjust(left=0.07, right=0.72, top=0.95, bottom=0.07, hspace=0.35)
    return fig
