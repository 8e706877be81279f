"""The retry storm in the simulator: how retries amplify load, and how a retry budget bounds it (stage 8).

Every run here goes through stage 4's request path with stage 8's retrier
(``HealthConfig(retry=policy, retrier=True)``: :mod:`solution.sim.healthsim`
builds ``RequestPath(..., retrier=Retrier(policy, seed=seed))``), so what is
measured is the course's own :class:`~solution.retry.Retrier` deciding every
re-send.  Three policies are compared (:data:`POLICIES`, :func:`policy`):

* ``"no retries"``: one try per request (``max_tries=1``);
* ``"retries"``: up to 3 tries with backoff and full jitter, no budget;
* ``"retries + budget"``: the same, with Envoy's retry budget (retries in
  flight at most ``max(3, 20% of the active requests)``).

1. The storm curve (:func:`storm_curve`): a sick fleet
------------------------------------------------------
Every server answers a fraction ``f`` of the attempts it gets with a 500
(:class:`~solution.sim.faults.FailFraction`), independently per attempt.  A
request tried up to ``m`` times then makes, on average::

    attempts per request = 1 + f + f**2 + ... + f**(m - 1)     (3 tries: 1 + f + f**2)
    success rate         = 1 - f**m

so retries turn 50% errors into 87.5% success, at 1.75 times the attempts,
and a fleet that fails everything gets 3 times its load: the *retry storm*
("retries are selfish", Brooker, "Timeouts, retries and backoff with
jitter", Amazon Builders' Library, 2019: each layer that retries
multiplies the load, and retrying when the failures come from overload
makes it worse).  The budget (Envoy's ``retry_budget``: "the limit on
concurrent retries as a percentage of the sum of active requests and
active pending requests", ``budget_percent`` 20%, ``min_retry_concurrency``
3; Finagle's ``RetryBudget``: 20% of requests on top of a minimum rate,
over a 10 s window) keeps the retries in flight to a fifth of the active
requests, so the amplification stays between 1.2 and 1.4 at any ``f``
(1.38 at ``f = 1`` against 3.0 without it), and the success rate pays for
it (65% against 87% at ``f = 0.5``): the budget trades the retries' gain in
success for a bound on the load.  Figures: ``python -m solution.sim storm``.

The error costs the server its work by default (``StormFleet.errors_cost_work``,
``HealthConfig.error_after_prefill``): the try runs its service, then answers
500, so a retry adds real load and holds a slot, and a failing attempt is
*in flight* as long as a good one.  With errors at once
(``errors_cost_work=False``) a failed attempt holds nothing: the fleet's
concurrency stays low, ``min_retry_concurrency`` (3) dominates, and
Envoy's concurrency budget hardly binds (at ``f = 1``: 2.94 attempts per
request against 3.0 without it, printed by ``python -m solution.sim storm
--errors-at-once``).  That is the budget's design: it bounds *concurrent*
retries, and retries that cost nothing hold nothing (Finagle's budget, a
rate over a window, would bind there once the retries exceed 20% of the
requests plus its minimum rate).

2. The overload scenario (:func:`run_overload`): a metastable failure
----------------------------------------------------------------------
Bronson, Aghayev, Charapko and Zhu ("Metastable Failures in Distributed
Systems", HotOS '21) describe a system in a *vulnerable* state (high load,
fine without disturbance) that a *trigger* (a load spike, a lost server)
pushes into overload, where a *sustaining effect* (a work amplification,
retries being the classic one) keeps it failing after the trigger is gone.
The model here has each ingredient, and nothing else:

* a fleet of 4 servers at 70% load, each a *processor-sharing* server of
  up to 32 requests (classic mode, ``sharing=True``: every running request
  slows the others, as sequences in a GPU's continuous batch do);
* a per-try timeout of 10 s (10 mean service times); a timed-out try is
  abandoned by the path but keeps running on its server until it is done
  (the server does not know the gateway gave up: wasted work);
* the trigger: one server leaves the pool at 60 s and a replacement joins
  60 s later (the other three carry 93% meanwhile).

Without retries a timeout only fails its request, and the fleet is back
as soon as the server is.  With retries (no budget) each timeout adds a
new try while the abandoned one still runs: a request costs up to three
services, the fleet stays full, every try is slow, more of them time out:
the goodput collapses to a fifth of the arrivals (0.21 of them answered
in the last third of the run, 5 seeds) and stays there, long after the
fleet is whole again, while two thirds of the tries run on for answers
nobody reads.  The budget lets retries add at most a fifth of the active
requests, the sustaining loop cannot close, and the fleet recovers: none
of 5 seeds is down at the end, and 92% of the time after the server's
return is served (11% without the budget).  Over 30 minutes
(``--duration 1800``) the budget still has overloaded episodes of 40-160 s,
but each ends by itself; without it all 5 seeds stay down.  The control
run, the same fleet with no server lost, ends down in 2 of 5 seeds without
a budget: at 70% load with 3 tries a Poisson burst is trigger enough, so
this fleet is barely in the *vulnerable* state.  At 75% load
(``--load 0.75``) the budget too ends down in 2 of 5 seeds: it narrows the
vulnerable region, it does not remove it.  The per-try timeout is the
other lever (Brooker: time out at a high percentile of the latency; too
low a timeout starts storms): at 5 s (``--timeout 5``) even the budget
leaves 1 of 5 seeds down, at 40 s nothing collapses.  All figures:
``python -m solution.sim storm``.

Why classic mode: its answers come whole (the first token with the last,
as a ``stream: false`` completion).  In LLM mode every request streams
its first token after the prefill, and a per-try timeout later in the
decode is never retried (rule ``"streamed"``): the same lost server on
four A100s at load 0.7 with a 12 s per-try timeout ends 242 requests
``"streamed"`` and re-sends none, identically with and without retries.
A storm of streamed requests needs failures before their first token
(refused connections, 5xx, 429, a slow prefill).

Cancelling abandoned tries removes the sustaining effect: vLLM aborts a
request whose connection closes, and so do the course's inference servers.
With ``OverloadScenario(cancel_abandoned=True)`` (``--cancel``) a timed-out
try frees its slot at once, and even retries without a budget end down in
0 of 5 seeds (0.98 answered in the last third).  By default abandoned
tries run to the end, so the simulated storm is the worst case.

What the model leaves out: clients that retry on top of the gateway (their
retries multiply) and admission control by queue time.

Costs: a run is one simulation through the request path, O(E log E) for E
events (arrivals, tries, completions, timeouts): ``benchmarks/bench_retrystorm.py``
measures the time per try of a run 16 times larger at 1.08 times that of
the small one.  The curve's default (5 fractions x 3 policies x 5 seeds of
150 requests) takes about 1-1.5 s on a shared 2-core machine, the overload
scenario about 0.1-0.3 s per run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from solution.core.retry_types import RetryBudget, RetryPolicy
from solution.core.validate import require_int
from solution.sim.cluster import ClassicMode, Cluster, ServerSpec
from solution.sim.faults import AddServer, FailFraction, RemoveServer
from solution.sim.healthsim import HealthConfig
from solution.sim.results import Outcome, Results
from solution.sim.scenario import Scenario
from solution.sim.theory import mean_confidence_interval
from solution.sim.validate import require_number
from solution.sim.workload import Fixed, Poisson, Tier, Workload

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "POLICIES",
    "MAX_TRIES",
    "policy",
    "theory_attempts",
    "theory_success",
    "StormFleet",
    "StormPoint",
    "StormRun",
    "storm_run",
    "storm_on",
    "sick",
    "storm_curve",
    "OverloadScenario",
    "OverloadRun",
    "run_overload",
    "overload_runs",
    "overload_rows",
    "curve_table",
    "overload_table",
    "plot_storm_curve",
    "plot_overload",
]

#: The three policies compared, by name.
POLICIES = ("no retries", "retries", "retries + budget")

#: Tries per request (the first included) of ``"retries"`` and ``"retries + budget"``.
MAX_TRIES = 3

#: (mean, lo, hi): a mean over seeds with its 95% t interval.
Interval = tuple[float, float, float]


def policy(name: str, *, per_try_timeout: float | None = None) -> RetryPolicy:
    """The stage-8 ``RetryPolicy`` a policy name stands for.  O(1).

    ``"no retries"``: ``max_tries=1``; ``"retries"``: ``max_tries=3``, no
    budget; ``"retries + budget"``: ``max_tries=3`` with Envoy's budget
    (``RetryBudget(ratio=0.2, min_retries=3)``).  Backoff: the policy's
    defaults (full jitter, 25 ms doubling to a 1 s cap).

    >>> policy("retries + budget").budget
    RetryBudget(ratio=0.2, min_retries=3)

    Raises:
        TypeError: a name that is not a str.
        ValueError: an unknown name (the message lists :data:`POLICIES`).
    """
    if not isinstance(name, str):
        raise TypeError(f"a retry policy is named by a str, one of {POLICIES}; got {type(name).__name__} {name!r}")
    if name not in POLICIES:
        raise ValueError(f"unknown retry policy {name!r}; choose from {POLICIES}")
    tries = 1 if name == "no retries" else MAX_TRIES
    budget = RetryBudget() if name == "retries + budget" else None
    return RetryPolicy(max_tries=tries, per_try_timeout=per_try_timeout, budget=budget)


def _check_fields(obj: object, *, ints: Mapping[str, int], positive: Sequence[str], flags: Sequence[str]) -> None:
    """A frozen record's fields: ints at least their minimum, finite numbers > 0, bools.  TypeError / ValueError naming the field."""
    owner = type(obj).__name__
    for name, minimum in ints.items():
        require_int(getattr(obj, name), f"{owner}.{name}", minimum=minimum)
    for name in positive:
        require_number(getattr(obj, name), f"{owner}.{name}")
    for name in flags:
        if not isinstance(getattr(obj, name), bool):
            raise TypeError(f"{owner}.{name} must be a bool, got {type(getattr(obj, name)).__name__}")


def _fraction(value: object, what: str = "fraction") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number in [0, 1], got {type(value).__name__} {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be in [0, 1], got {value!r}")
    return float(value)


def theory_attempts(fraction: float, max_tries: int = MAX_TRIES) -> float:
    """Mean attempts per request when each attempt fails with probability ``fraction``, independently: ``sum f**k, k < max_tries``.  O(max_tries).

    >>> theory_attempts(0.5), theory_attempts(1.0), theory_attempts(0.5, 1)
    (1.75, 3.0, 1.0)
    """
    f = _fraction(fraction)
    return math.fsum(f**k for k in range(require_int(max_tries, "max_tries")))


def theory_success(fraction: float, max_tries: int = MAX_TRIES) -> float:
    """The share of requests that succeed: ``1 - fraction**max_tries``.  O(1).

    >>> theory_success(0.5), theory_success(0.5, 1)
    (0.875, 0.5)
    """
    return 1.0 - _fraction(fraction) ** require_int(max_tries, "max_tries")


# -- 1. the storm curve ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StormFleet:
    """The storm curve's fleet: classic mode (exponential service, ``mean_service`` s), no health checks.

    Args:
        servers, capacity: the fleet (``servers * capacity`` requests at a time).
        load: offered load as a share of the fleet's capacity.  Low by default
            (0.25), so that even three tries per request fit (0.75) and the
            amplification is the retries' alone, not rejections of a full fleet.
        requests: requests per run (Poisson arrivals).
        mean_service: seconds per try.
        errors_cost_work: a failing try runs its service, then answers 500
            (``True``), or answers 500 at once (``False``).

    Raises:
        TypeError / ValueError: a field of the wrong type or out of range.
    """

    servers: int = 4
    capacity: int = 16
    load: float = 0.25
    requests: int = 150
    mean_service: float = 1.0
    errors_cost_work: bool = True

    def __post_init__(self) -> None:
        _check_fields(self, ints={"servers": 1, "capacity": 1, "requests": 1}, positive=("load", "mean_service"),
                      flags=("errors_cost_work",))  # fmt: skip

    def scenario(self, fraction: float, policy_name: str) -> Scenario:
        """The run's scenario: every server fails ``fraction`` of its attempts from time 0, the path retries with ``policy_name``."""
        cluster = Cluster.uniform(self.servers, capacity=self.capacity)
        rate = self.load * self.servers * self.capacity / self.mean_service
        base = Scenario(
            cluster=cluster,
            workload=Workload(self.requests, Poisson(rate), tiers=(Tier("storm", 1.0, Fixed(100), Fixed(100)),)),
            mode=ClassicMode(self.mean_service),
            name="storm",
        )
        return sick(base, fraction, policy_name, errors_cost_work=self.errors_cost_work)


def sick(scenario: Scenario, fraction: float, policy_name: str, *, errors_cost_work: bool = False) -> Scenario:
    """``scenario`` with every server at time 0 failing ``fraction`` of its attempts and the path retrying by ``policy_name``.

    Health checks stay off (every server is equally sick, so ejecting one
    would only move its load: the retry policy alone is measured, as in the
    HTTP storm of :func:`solution.gateway.race.storm`).  ``errors_cost_work``:
    see ``HealthConfig.error_after_prefill`` (``False``: a 500 at once, as the
    inference servers' ``fail`` fault answers).  O(servers).

    Raises:
        TypeError / ValueError: a fraction outside [0, 1], an unknown policy, a scenario with a timetable already.
    """
    f = _fraction(fraction)
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a solution.sim Scenario, got {type(scenario).__name__}")
    if scenario.timetable:
        raise ValueError("sick() sets the timetable (every server failing from time 0); pass a scenario without one")
    if not isinstance(errors_cost_work, bool):
        raise TypeError(f"errors_cost_work must be a bool, got {type(errors_cost_work).__name__}")
    return replace(
        scenario,
        timetable=tuple(FailFraction(0.0, s.server_id, f) for s in scenario.cluster.servers) if f > 0 else (),
        health=HealthConfig(active=False, passive=False, retry=policy(policy_name), retrier=True, error_after_prefill=errors_cost_work),
        name=f"{scenario.name}, f={f:g}, {policy_name}",
    )


@dataclass(frozen=True)
class StormPoint:
    """One point of the storm curve: a failing fraction, a policy, and figures over seeds (mean with its 95% t interval).

    ``attempts_per_request``: tries sent to servers per client request (the
    load amplification); ``success_rate``: the share of requests answered;
    ``budget_refused``: the share of requests the budget refused a retry
    (0 without one); ``theory_attempts`` / ``theory_success``: the
    formulas for independent failures (``None`` with a budget: it depends
    on concurrency, not on ``f`` alone).
    """

    fraction: float
    policy: str
    attempts_per_request: Interval
    success_rate: Interval
    budget_refused: Interval
    theory_attempts: float | None
    theory_success: float | None
    seeds: int


@dataclass(frozen=True, eq=False)
class StormRun:
    """One run of the storm curve: its figures and its :class:`~solution.sim.results.Results`."""

    attempts_per_request: float
    success_rate: float
    budget_refused: float
    results: Results


def storm_run(fraction: float, policy_name: str, *, fleet: StormFleet = StormFleet(), seed: int = 0) -> StormRun:
    """Simulate the sick fleet once: ``fraction`` of attempts fail, the path retries with ``policy_name``.

    O(E log E) for E events (about ``requests * (1 + f + f**2)`` tries).
    """
    if not isinstance(fleet, StormFleet):
        raise TypeError(f"fleet must be a StormFleet, got {type(fleet).__name__}")
    return _measure(fleet.scenario(fraction, policy_name), seed)


def storm_on(scenario: Scenario, fraction: float, policy_name: str, *, seed: int = 0, errors_cost_work: bool = False) -> StormRun:
    """:func:`storm_run` on any scenario (its workload, fleet and mode): the simulator's side of the HTTP storm.

    ``storm_on(solution.gateway.race.race_scenario(...), f, policy, seed=s)``
    runs the very requests the HTTP storm replays for seed ``s`` (the race
    draws them with ``from_sim_workload(scenario, seed=s)``), on servers that
    fail ``f`` of the attempts with a 500 at once (see :func:`sick`).
    O(E log E) for E events.
    """
    return _measure(sick(scenario, fraction, policy_name, errors_cost_work=errors_cost_work), seed)


def _measure(scenario: Scenario, seed: int) -> StormRun:
    from solution.sim.race import routed_least_connections
    from solution.sim.runner import simulate

    res = simulate(scenario, routed_least_connections(), seed=seed)
    n = len(res)
    reasons = res.health.fail_reasons.values() if res.health is not None else ()
    return StormRun(float(res.tries.sum()) / n, float(np.count_nonzero(res.outcome == Outcome.COMPLETED)) / n,
                    sum(1 for r in reasons if r == "budget") / n, res)  # fmt: skip


def _interval(values: Sequence[float], *, share: bool = False) -> Interval:
    """Mean and 95% t interval over seeds; a share's interval is clipped to [0, 1] (the t interval ignores the bounds)."""
    mean, lo, hi = mean_confidence_interval(values, level=0.95)
    return (mean, max(lo, 0.0), min(hi, 1.0)) if share else (mean, lo, hi)


def _seeds(seeds: Iterable[int]) -> list[int]:
    out = list(seeds)
    if len(out) < 2:
        raise ValueError(f"an interval over seeds needs at least 2 seeds, got {out}")
    for s in out:
        require_int(s, "seed", minimum=0)
    return out


def _policies(policies: Sequence[str]) -> list[str]:
    if isinstance(policies, str):
        raise TypeError(f"policies is a sequence of names such as {POLICIES}, not one string {policies!r}")
    out = list(policies)
    for name in out:
        if name not in POLICIES:
            raise ValueError(f"unknown retry policy {name!r}; choose from {POLICIES}")
    if not out:
        raise ValueError(f"policies must name at least one of {POLICIES}")
    return out


def storm_curve(fractions: Iterable[float], *, policies: Sequence[str] = POLICIES, seeds: Iterable[int] = range(5),
                fleet: StormFleet = StormFleet()) -> list[StormPoint]:  # fmt: skip
    """Attempts per client request and success rate against the failing fraction, per policy, over seeds.

    Runs :func:`storm_run` for every fraction, policy and seed (common random
    numbers: one seed gives the same arrivals and service times to every
    policy).  Returns the points fraction by fraction, in ``policies`` order.
    Costs F x P x S runs; the default fleet's 5 x 3 x 5 take about 1-1.5 s.

    >>> [p.attempts_per_request[0] for p in storm_curve([1.0], policies=["retries"], seeds=[0, 1])]
    [3.0]

    Raises:
        TypeError / ValueError: a fraction outside [0, 1], an unknown policy, fewer than 2 seeds.
    """
    fs = [_fraction(f) for f in fractions]
    names = _policies(policies)
    seed_list = _seeds(seeds)
    points: list[StormPoint] = []
    for f in fs:
        for name in names:
            runs = [storm_run(f, name, fleet=fleet, seed=s) for s in seed_list]
            tries = 1 if name == "no retries" else MAX_TRIES
            budget = name == "retries + budget"
            points.append(StormPoint(
                f, name, _interval([r.attempts_per_request for r in runs]), _interval([r.success_rate for r in runs], share=True),
                _interval([r.budget_refused for r in runs], share=True),
                None if budget else theory_attempts(f, tries), None if budget else theory_success(f, tries), len(seed_list),
            ))  # fmt: skip
    return points


# -- 2. the overload scenario ------------------------------------------------------------------------


@dataclass(frozen=True)
class OverloadScenario:
    """A fleet near capacity loses a server for a while: the trigger of a metastable failure (see the module).

    Args:
        servers: servers at the start (the last one leaves at ``lost_at``).
        capacity: requests a server runs at once; it shares its speed among
            them (processor sharing), so each one it takes slows the others.
        load: offered load as a share of the whole fleet's service rate.
        mean_service: seconds of work per try (exponential) at full speed.
        per_try_timeout: seconds before the path abandons a try (it keeps
            running on its server) and the retrier may re-send it.
        lost_at, lost_for: the server leaves the pool at ``lost_at`` and a
            replacement joins ``lost_for`` seconds later.
        duration: seconds of the time series (arrivals go on 10% longer,
            so that every bin is full).
        bin: seconds per point of the time series.
        lose_server: ``False`` runs the same fleet and load without the
            lost server (the control: does the fleet fail without a trigger?).
        cancel_abandoned: a timed-out try leaves its server at once (the
            gateway closes the connection, the server aborts it, as vLLM
            does) instead of running on for nobody
            (``HealthConfig.cancel_abandoned``).

    Raises:
        TypeError / ValueError: a field of the wrong type or out of range.
    """

    servers: int = 4
    capacity: int = 32
    load: float = 0.7
    mean_service: float = 1.0
    per_try_timeout: float = 10.0
    lost_at: float = 60.0
    lost_for: float = 60.0
    duration: float = 600.0
    bin: float = 20.0
    lose_server: bool = True
    cancel_abandoned: bool = False

    def __post_init__(self) -> None:
        _check_fields(self, ints={"servers": 2, "capacity": 1},
                      positive=("load", "mean_service", "per_try_timeout", "lost_for", "duration", "bin"),
                      flags=("lose_server", "cancel_abandoned"))  # fmt: skip
        require_number(self.lost_at, "OverloadScenario.lost_at", strict=False)
        if abs(self.duration / self.bin - round(self.duration / self.bin)) > 1e-9:
            raise ValueError(f"OverloadScenario.duration ({self.duration:g} s) must be a whole number of bins ({self.bin:g} s)")
        if self.back_at >= self.duration:
            raise ValueError(f"the server must be back (lost_at + lost_for = {self.back_at:g} s) before the arrivals end ({self.duration:g} s)")

    @property
    def back_at(self) -> float:
        """When the replacement joins: ``lost_at + lost_for``."""
        return self.lost_at + self.lost_for

    @property
    def rate(self) -> float:
        """Arrivals per second: ``load * servers / mean_service``."""
        return self.load * self.servers / self.mean_service

    def scenario(self, policy_name: str) -> Scenario:
        """The run's scenario with the path retrying by ``policy_name`` (per-try timeout included)."""
        cluster = Cluster.uniform(self.servers, capacity=self.capacity)
        lost = cluster.servers[-1]
        spare = ServerSpec(f"{lost.server_id}-new", lost.gpu, self.capacity)
        return Scenario(
            cluster=cluster,
            workload=Workload(max(1, math.ceil(1.1 * self.rate * self.duration)), Poisson(self.rate),
                              tiers=(Tier("overload", 1.0, Fixed(100), Fixed(100)),)),  # fmt: skip
            mode=ClassicMode(self.mean_service, sharing=True),
            timetable=(RemoveServer(self.lost_at, lost.server_id), AddServer(self.back_at, spare)) if self.lose_server else (),
            health=HealthConfig(active=False, passive=False, retry=policy(policy_name, per_try_timeout=self.per_try_timeout),
                                retrier=True, cancel_abandoned=self.cancel_abandoned),  # fmt: skip
            name=f"overload {policy_name}",
        )


@dataclass(frozen=True, eq=False)
class OverloadRun:
    """One overload run's time series (per ``scenario.bin`` seconds) and what the path counted.

    ``times``: each bin's start (s); ``offered``: arrivals per second;
    ``goodput``: answers delivered per second (a try answered before its
    timeout); ``attempts``: tries started per second (first tries and
    re-sends); ``stats``: ``RequestPath.stats()`` at the end;
    ``last_arrival``: the time of the last arrival (bins after it are not judged).
    """

    policy: str
    seed: int
    scenario: OverloadScenario
    times: np.ndarray
    offered: np.ndarray
    goodput: np.ndarray
    attempts: np.ndarray
    stats: Mapping[str, int] = field(default_factory=dict)
    last_arrival: float = math.inf

    #: A bin counts as served when its goodput is at least this share of its arrivals.
    SERVED = 0.7
    #: Served bins in a row that make a recovery (100 s with 20 s bins).
    RECOVERY_BINS = 5

    def _served_after(self) -> tuple[np.ndarray, np.ndarray]:
        """``(times, served)`` of the bins from the server's return on (from 0 in the control) that the arrivals cover."""
        start = self.scenario.back_at if self.scenario.lose_server else 0.0
        keep = (self.times >= start - 1e-9) & (self.times + self.scenario.bin <= self.last_arrival)
        return self.times[keep], (self.goodput >= self.SERVED * self.offered)[keep]

    @property
    def recovered_at(self) -> float:
        """The start of the first of :attr:`RECOVERY_BINS` served bins in a row at or after the server's return; ``inf``: never.

        A bin is served when its goodput is at least :attr:`SERVED` (70%) of
        its arrivals.  A fleet that recovered may be overloaded again later
        (a burst): :attr:`served_share` counts that.  O(bins).
        """
        times, served = self._served_after()
        run = self.RECOVERY_BINS
        for k in range(len(served) - run + 1):
            if served[k : k + run].all():
                return float(times[k])
        return math.inf

    @property
    def recovered(self) -> bool:
        """Whether the fleet served :attr:`RECOVERY_BINS` bins in a row at some point after the server came back."""
        return math.isfinite(self.recovered_at)

    @property
    def down_at_end(self) -> bool:
        """Whether the fleet answered fewer than half of the arrivals in the last third of the run (collapsed for good)."""
        return self.final_share < 0.5

    @property
    def served_share(self) -> float:
        """The share of the bins after the server's return (after 0 s in the control) that were served."""
        _, served = self._served_after()
        return float(served.mean()) if len(served) else math.nan

    def share(self, start: float, end: float) -> float:
        """Answers over arrivals in the bins within ``[start, end)``.  O(bins)."""
        inside = (self.times >= start - 1e-9) & (self.times + self.scenario.bin <= end + 1e-9)
        arrived = float(self.offered[inside].sum())
        return float(self.goodput[inside].sum()) / arrived if arrived else math.nan

    @property
    def final_share(self) -> float:
        """Answers over arrivals in the last third of the run (long after the trigger)."""
        sc = self.scenario
        return self.share(sc.duration * 2 / 3, sc.duration)

    @property
    def wasted_share(self) -> float:
        """Tries whose answer nobody read (it came after the try's timeout: discarded), over all tries."""
        sent = self.stats.get("dispatched", 0)
        return self.stats.get("discarded", 0) / sent if sent else math.nan

    @property
    def attempts_per_request(self) -> float:
        """Tries started per request over the whole run."""
        return float(self.attempts.sum() / self.offered.sum()) if self.offered.sum() else math.nan


def run_overload(policy_name: str, scenario: OverloadScenario | None = None, *, seed: int = 0) -> OverloadRun:
    """Simulate the overload scenario with one policy; O(E log E) for E events (0.1-0.3 s with the defaults).

    Raises:
        TypeError / ValueError: an unknown policy, a scenario that is not an :class:`OverloadScenario`.
    """
    from solution.sim.race import routed_least_connections
    from solution.sim.runner import simulate

    sc = OverloadScenario() if scenario is None else scenario
    if not isinstance(sc, OverloadScenario):
        raise TypeError(f"scenario must be an OverloadScenario, got {type(sc).__name__}")
    res = simulate(sc.scenario(policy_name), routed_least_connections(), seed=seed)
    edges = np.arange(0.0, sc.duration + sc.bin / 2, sc.bin)
    ok = res.outcome == Outcome.COMPLETED
    per_s = lambda times: np.histogram(times, edges)[0] / sc.bin  # noqa: E731
    assert res.health is not None
    return OverloadRun(policy_name, seed, sc, edges[:-1], per_s(res.arrival), per_s(res.finish[ok]),
                       per_s(res.health.try_start), dict(res.health.path_stats), float(res.arrival.max()))  # fmt: skip


def overload_runs(policies: Sequence[str] = POLICIES, scenario: OverloadScenario | None = None, *,
                  seeds: Iterable[int] = range(5)) -> dict[str, list[OverloadRun]]:  # fmt: skip
    """:func:`run_overload` for each policy and seed (the same arrivals for every policy of a seed)."""
    names = _policies(policies)
    seed_list = _seeds(seeds)
    return {name: [run_overload(name, scenario, seed=s) for s in seed_list] for name in names}


def overload_rows(runs: Mapping[str, Sequence[OverloadRun]]) -> list[dict[str, Any]]:
    """One row per policy, ready to print: answers over arrivals while the server is gone (``lost_at`` to
    ``back_at``; the same window in the control) and in the last third, attempts per request, the share of
    tries wasted, the share of time served after the server's return (mean with its 95% t interval over
    seeds), and in how many seeds the fleet was still down at the end (:attr:`OverloadRun.down_at_end`).

    Raises:
        ValueError: a policy with fewer than 2 runs.
    """
    rows: list[dict[str, Any]] = []
    for name, rs in runs.items():
        if len(rs) < 2:
            raise ValueError(f"{name!r}: an interval over seeds needs at least 2 runs, got {len(rs)}")
        sc = rs[0].scenario
        rows.append({
            "policy": name,
            "answered while the server is gone": _interval([r.share(sc.lost_at, sc.back_at) for r in rs]),
            "answered in the last third": _interval([r.final_share for r in rs]),
            "attempts per request": _interval([r.attempts_per_request for r in rs]),
            "tries wasted": _interval([r.wasted_share for r in rs], share=True),
            "time served after the return": _interval([r.served_share for r in rs], share=True),
            "down at the end": f"{sum(r.down_at_end for r in rs)} of {len(rs)}",
        })  # fmt: skip
    return rows


def _ci(v: Interval, digits: int = 2) -> str:
    return f"{v[0]:.{digits}f} [{v[1]:.{digits}f}, {v[2]:.{digits}f}]"


def curve_table(points: Sequence[StormPoint], fleet: StormFleet = StormFleet()) -> str:
    """The storm curve as text: one line per point, figures with their 95% intervals, the formulas beside them."""
    if not points:
        raise ValueError("curve_table needs at least one StormPoint (from storm_curve)")
    lines = [f"Storm curve: {fleet.servers} servers x {fleet.capacity} slots at load {fleet.load:g}, {fleet.requests} requests per run, "
             f"failing tries {'cost their service' if fleet.errors_cost_work else 'answer at once'}; "
             f"mean [95% CI] over {points[0].seeds if points else 0} seeds",
             f"{'f':>5}  {'policy':17s} {'attempts/request':>22s} {'(formula)':>9s} {'success rate':>22s} {'(formula)':>9s} {'refused by budget':>22s}"]
    for p in points:
        ta = "" if p.theory_attempts is None else f"{p.theory_attempts:.3f}"
        ts = "" if p.theory_success is None else f"{p.theory_success:.3f}"
        lines.append(f"{p.fraction:5.2f}  {p.policy:17s} {_ci(p.attempts_per_request, 3):>22s} {ta:>9s} {_ci(p.success_rate, 3):>22s} "
                     f"{ts:>9s} {_ci(p.budget_refused, 3):>22s}")  # fmt: skip
    return "\n".join(lines)


def overload_table(runs: Mapping[str, Sequence[OverloadRun]]) -> str:
    """The overload scenario as text: :func:`overload_rows`, one line per policy."""
    if not runs or not all(runs.values()):
        raise ValueError("overload_table needs at least one run per policy (from overload_runs)")
    first = next(iter(runs.values()))[0]
    sc = first.scenario
    trigger = (f"one of {sc.servers} servers gone from {sc.lost_at:g} s to {sc.back_at:g} s" if sc.lose_server
               else "no server lost (the control)")  # fmt: skip
    cancelled = ", timed-out tries cancelled" if sc.cancel_abandoned else ""
    lines = [f"Overload: {sc.servers} servers x {sc.capacity} (processor sharing) at load {sc.load:g}, per-try timeout "
             f"{sc.per_try_timeout:g} s{cancelled}, {trigger}; {sc.duration:g} s; mean [95% CI] over {len(next(iter(runs.values())))} seeds",
             f"{'policy':17s} {f'answered {sc.lost_at:g}-{sc.back_at:g} s':>22s} {'answered, last third':>22s} {'attempts/request':>22s} "
             f"{'tries wasted':>22s} {'time served after':>22s} {'down at the end':>16s}"]
    for row in overload_rows(runs):
        lines.append(f"{row['policy']:17s} {_ci(row['answered while the server is gone']):>22s} {_ci(row['answered in the last third']):>22s} "
                     f"{_ci(row['attempts per request']):>22s} {_ci(row['tries wasted']):>22s} "
                     f"{_ci(row['time served after the return']):>22s} {row['down at the end']:>16s}")  # fmt: skip
    return "\n".join(lines)


# -- plots -----------------------------------------------------------------------------------------------

_COLORS = {"no retries": "#4c78a8", "retries": "#e45756", "retries + budget": "#54a24b"}


def plot_storm_curve(points: Sequence[StormPoint]) -> Figure:
    """Two panels against the failing fraction: attempts per request (the storm) and success rate, per policy,
    with their 95% intervals and the formulas (dashed).  Returns a matplotlib Figure."""
    from matplotlib.figure import Figure

    if not points:
        raise ValueError("plot_storm_curve needs at least one StormPoint (from storm_curve)")
    fig = Figure(figsize=(10.0, 3.8))
    ax_load, ax_ok = fig.subplots(1, 2)
    names = list(dict.fromkeys(p.policy for p in points))
    for name in names:
        mine = sorted((p for p in points if p.policy == name), key=lambda p: p.fraction)
        f = np.array([p.fraction for p in mine])
        color = _COLORS.get(name)
        for ax, attr, theory in ((ax_load, "attempts_per_request", "theory_attempts"), (ax_ok, "success_rate", "theory_success")):
            mean = np.array([getattr(p, attr)[0] for p in mine])
            lo = np.array([getattr(p, attr)[1] for p in mine])
            hi = np.array([getattr(p, attr)[2] for p in mine])
            ax.errorbar(f, mean, yerr=[mean - lo, hi - mean], marker="o", color=color, capsize=3, label=f"{name} (simulated, 95% CI)")
            if all(getattr(p, theory) is not None for p in mine):
                ff = np.linspace(0.0, 1.0, 101)
                tries = 1 if name == "no retries" else MAX_TRIES
                curve = [theory_attempts(x, tries) if attr == "attempts_per_request" else theory_success(x, tries) for x in ff]
                ax.plot(ff, curve, linestyle="--", linewidth=1, color=color, label=f"{name}: formula")
    ax_load.set_title("load amplification: attempts per client request", fontsize=10)
    ax_load.set_ylabel("attempts per request")
    ax_ok.set_title("what the client gets: success rate", fontsize=10)
    ax_ok.set_ylabel("requests answered (share)")
    for ax in (ax_load, ax_ok):
        ax.set_xlabel("fraction of attempts answered with a 5xx")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_overload(runs: Mapping[str, Sequence[OverloadRun]]) -> Figure:
    """Goodput and attempts per second over time, per policy (the median seed, shaded from the lowest to the highest
    seed: runs collapse at different times, so a mean would draw no run), the lost server's window shaded grey and
    the arrival rate dashed.  Returns a matplotlib Figure."""
    from matplotlib.figure import Figure

    if not runs or not all(runs.values()):
        raise ValueError("plot_overload needs at least one run per policy (from overload_runs)")
    fig = Figure(figsize=(11.0, 6.4))
    ax_good, ax_att = fig.subplots(2, 1, sharex=True)
    first = next(iter(runs.values()))[0]
    sc = first.scenario
    mid = first.times + sc.bin / 2
    for ax in (ax_good, ax_att):
        ax.axvspan(sc.lost_at, sc.back_at, color="#bbbbbb", alpha=0.5, linewidth=0, label="one server of four gone")
        ax.axhline(sc.rate, color="black", linestyle="--", linewidth=1, label=f"arrivals ({sc.rate:g} requests/s)")
    for name, rs in runs.items():
        color = _COLORS.get(name)
        for ax, attr in ((ax_good, "goodput"), (ax_att, "attempts")):
            series = np.array([getattr(r, attr) for r in rs])
            ax.plot(mid, np.median(series, axis=0), color=color, linewidth=1.5, label=f"{name} (median of {len(rs)} seeds)")
            if len(rs) >= 2:  # the range, not a t interval: seeds collapse at different times, so the mean is no typical run
                ax.fill_between(mid, series.min(axis=0), series.max(axis=0), color=color, alpha=0.12, linewidth=0,
                                label=f"{name}: lowest to highest seed")  # fmt: skip
    ax_good.set_title("a lost server, then retries: goodput stays down after the server is back (no budget)", fontsize=10)
    ax_good.set_ylabel("answers per second")
    ax_att.set_title("attempts sent to the servers", fontsize=10)
    ax_att.set_ylabel("tries per second")
    for ax in (ax_good, ax_att):
        ax.set_xlabel("time (s)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the plot: the lines fill it
    fig.tight_layout()
    return fig
