"""The retry storm in the simulator: how retries amplify load, and how a retry budget bounds it (stage 8).

Skeleton: the names below are binding (notebook 08 calls them); the bodies follow.

* :func:`storm_curve`: a fleet whose servers answer a fraction ``f`` of
  attempts with a 5xx; per policy, attempts per client request (the load
  amplification) and the client's success rate, with 95% intervals over seeds.
* :func:`run_overload` / :func:`overload_runs`: a fleet near capacity is
  pushed over it for a while; per-try timeouts and retries without a budget
  keep it overloaded after the cause is gone, the budget lets it recover.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "POLICIES",
    "policy",
    "StormPoint",
    "storm_curve",
    "OverloadScenario",
    "OverloadRun",
    "run_overload",
    "overload_runs",
]

#: The three policies compared, by name.
POLICIES = ("no retries", "retries", "retries + budget")

#: (mean, lo, hi): a mean over seeds with its 95% t interval.
Interval = tuple[float, float, float]


def policy(name: str) -> object:
    """The stage-8 ``RetryPolicy`` a policy name stands for (``"retries"``: max_tries 3, no budget; ``"retries + budget"``: Envoy's 20%, min 3)."""
    raise NotImplementedError


@dataclass(frozen=True)
class StormPoint:
    """One point of the storm curve: a failing fraction, a policy, figures over seeds."""

    fraction: float
    policy: str
    attempts_per_request: Interval
    success_rate: Interval
    theory_attempts: float | None
    theory_success: float | None
    seeds: int


def storm_curve(fractions: Iterable[float], *, policies: Sequence[str] = POLICIES, seeds: Iterable[int] = range(5),
                requests: int = 400) -> list[StormPoint]:  # fmt: skip
    """Attempts per client request and success rate against the failing fraction, per policy."""
    raise NotImplementedError


@dataclass(frozen=True)
class OverloadScenario:
    """A fleet near capacity, pushed over it for a while (the trigger), then back to its normal load."""


@dataclass(frozen=True, eq=False)
class OverloadRun:
    """One overload run: goodput and attempts per second over time, and when (if ever) the fleet recovered."""


def run_overload(policy_name: str, scenario: OverloadScenario | None = None, *, seed: int = 0) -> OverloadRun:
    """Simulate the overload scenario with one policy."""
    raise NotImplementedError


def overload_runs(policies: Sequence[str] = POLICIES, scenario: OverloadScenario | None = None, *,
                  seeds: Iterable[int] = range(3)) -> dict[str, list[OverloadRun]]:  # fmt: skip
    """:func:`run_overload` for each policy and seed."""
    raise NotImplementedError
