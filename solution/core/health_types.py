"""Support types of stage 4 (health checks): states, policies, the transition log, attempts.

Shared by the reference (``solution/health.py``) and the candidate's exercise:
both import these very classes, so a policy or a log entry means the same on
either side.  Names follow Envoy's health checking and outlier detection and
Kubernetes probes (``interval``, ``timeout``, ``unhealthy_threshold``,
``healthy_threshold``, ``consecutive_5xx``, ``base_ejection_time``,
``max_ejection_time``, ``max_ejection_percent``, slow start's ``aggression``
and ``min_weight``).

Policies are frozen dataclasses validated in ``__post_init__``: a wrong type
raises ``TypeError``, a wrong value :class:`~solution.core.errors.InvalidPolicyError`
(a ``ValueError``), and the message says which field and what range is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from solution.core.errors import InvalidPolicyError
from solution.core.retry_types import RetryPolicy  # one class for stages 4 and 8; the ledger reads max_tries, per_try_timeout

__all__ = ["HealthState", "Reason", "HealthPolicy", "RetryPolicy", "Transition", "Attempt", "Outcome", "require_time"]


class HealthState(str, Enum):
    """A server's health as the balancer sees it.

    * ``HEALTHY``: full weight (circuit closed).
    * ``DEGRADED``: routable at ``degraded_weight`` (a latency outlier, or an
      error rate above ``degraded_error_rate``; circuit still closed).
    * ``DOWN``: no traffic at all (circuit open): probes failed
      ``unhealthy_threshold`` times, or outlier detection ejected it.
    * ``RECOVERING``: coming back: first half-open (at most
      ``half_open_trials`` requests in flight), then slow start (the weight
      ramps from ``min_weight`` to 1 over ``slow_start_window``).
    """

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"
    RECOVERING = "recovering"

    def __str__(self) -> str:
        return self.value


class Reason:
    """The one documented reason of each transition (``Transition.reason``, ``get_server_stats()[id]["reason"]``)."""

    ADDED_WARM = "added warm"  # add_server(warm=True): -> healthy
    ADDED = "added: slow start"  # add_server(warm=False): -> recovering (slow start, no half-open)
    PROBE_FAILURES = "probe failures"  # unhealthy_threshold consecutive failed probes: -> down
    PROBE_SUCCESSES = "probe successes"  # healthy_threshold consecutive good probes while down by probes: -> recovering
    CONSECUTIVE_ERRORS = "consecutive errors"  # consecutive_5xx failed requests: ejected -> down
    TRIAL_FAILED = "trial failed"  # a failed request while half-open: ejected again, longer -> down
    EJECTION_OVER = "ejection over"  # the ejection time passed: down -> recovering (half-open)
    SLOW_START_OVER = "slow start over"  # slow_start_window after the circuit closed: -> healthy (or degraded)
    ERROR_RATE = "error rate"  # error EWMA reached degraded_error_rate: healthy -> degraded
    LATENCY_OUTLIER = "latency outlier"  # seconds per token above latency_factor x the fleet's mean: -> degraded
    RECOVERED = "recovered"  # both degraded signals back below their exit thresholds: degraded -> healthy

    ALL = (ADDED_WARM, ADDED, PROBE_FAILURES, PROBE_SUCCESSES, CONSECUTIVE_ERRORS, TRIAL_FAILED, EJECTION_OVER,
           SLOW_START_OVER, ERROR_RATE, LATENCY_OUTLIER, RECOVERED)  # fmt: skip


class Outcome:
    """How one attempt of a request ended (``Attempt.outcome``)."""

    IN_FLIGHT = "in flight"
    ANSWERED = "answered"  # its answer was delivered to the client
    SERVER_DOWN = "server down"  # its server was declared down while it ran
    TIMED_OUT = "timed out"  # it exceeded the per-try timeout
    CANCELLED = "cancelled"  # finish() or fail() ended the request while it ran


def require_time(value: object, what: str = "now") -> float:
    """Return ``value`` as a float if it is a finite real number of seconds (not a bool).

    >>> require_time(1.5)
    1.5
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds (int or float), got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return float(value)


def _number(owner: str, name: str, value: object, *, low: float, high: float = math.inf, low_open: bool = False,
            high_open: bool = False, allow_none: bool = False) -> None:  # fmt: skip
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}.{name} must be a number, got {type(value).__name__} {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if math.isnan(value) or too_low or too_high:
        left, right = ("(" if low_open else "["), (")" if high_open else "]")
        raise InvalidPolicyError(f"{owner}.{name} must lie in {left}{low}, {high}{right}, got {value!r}; pick a value in that range")


def _count(owner: str, name: str, value: object, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise InvalidPolicyError(f"{owner}.{name} must be at least {minimum}, got {value}; a threshold of 0 would fire on nothing")


@dataclass(frozen=True)
class HealthPolicy:
    """Every knob of :class:`HealthChecker`, in seconds, counts and fractions.

    Active checks (Kubernetes probe / Envoy health check names):
        interval: seconds between probes of one server (> 0).
        timeout: a probe not answered within it counts as failed (> 0, at most ``interval``);
            the driver enforces it and reports ``probe_result(ok=False)``.
        unhealthy_threshold: consecutive failed probes that mark a server down (>= 1).
        healthy_threshold: consecutive good probes that bring a probe-downed server back (>= 1).
        jitter: each re-schedule is ``interval * (1 + jitter * (2u - 1))`` with ``u`` uniform in
            [0, 1) from the checker's seeded generator (0 <= jitter < 1).
    Passive checks (Envoy outlier detection):
        consecutive_5xx: consecutive failed requests that eject a server (>= 1).
        base_ejection_time: the first ejection's length; the k-th lasts
            ``min(base_ejection_time * 2**(k-1), max_ejection_time)`` (> 0).
        max_ejection_time: the longest ejection, and the quiet time that forgives one level (>= base).
        max_ejection_percent: ejections never leave more than this share of the fleet ejected (0..100].
        latency_factor: degraded when a server's EWMA seconds per token exceeds this times the
            fleet's mean (> 1).
        degraded_error_rate: degraded when the EWMA of failures (1 = failed) reaches it (0 < r <= 1).
        ewma_alpha: weight of the newest sample in both EWMAs (0 < alpha <= 1).
        hysteresis: exit thresholds are the entry thresholds pulled back by this factor: the error
            rate must fall below ``degraded_error_rate * hysteresis`` and the latency below
            ``(1 + (latency_factor - 1) * hysteresis) x mean`` (0 <= hysteresis < 1).
        degraded_weight: a degraded server's weight (0 < w <= 1).
    Circuit breaker and slow start:
        half_open_trials: requests allowed in flight while half-open, and the successes that close it (>= 1).
        slow_start_window: seconds over which the weight ramps to 1 (> 0).
        aggression: Envoy's curve exponent: weight = max(min_weight, (t / window) ** (1 / aggression)) (> 0;
            1 is linear, larger starts steeper).
        min_weight: the weight slow start starts from, and the half-open weight (0 < w <= 1).
    """

    interval: float = 5.0
    timeout: float = 1.0
    unhealthy_threshold: int = 3
    healthy_threshold: int = 2
    jitter: float = 0.1
    consecutive_5xx: int = 5
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0
    max_ejection_percent: float = 50.0
    latency_factor: float = 2.0
    degraded_error_rate: float = 0.2
    ewma_alpha: float = 0.05
    hysteresis: float = 0.5
    degraded_weight: float = 0.5
    half_open_trials: int = 1
    slow_start_window: float = 30.0
    aggression: float = 1.0
    min_weight: float = 0.1

    def __post_init__(self) -> None:
        o = "HealthPolicy"
        _number(o, "interval", self.interval, low=0.0, low_open=True)
        _number(o, "timeout", self.timeout, low=0.0, low_open=True)
        if self.timeout > self.interval:
            raise InvalidPolicyError(f"HealthPolicy.timeout ({self.timeout}) must not exceed interval ({self.interval}): "
                                     "a probe would still run when the next one starts")
        _count(o, "unhealthy_threshold", self.unhealthy_threshold)
        _count(o, "healthy_threshold", self.healthy_threshold)
        _number(o, "jitter", self.jitter, low=0.0, high=1.0, high_open=True)
        _count(o, "consecutive_5xx", self.consecutive_5xx)
        _number(o, "base_ejection_time", self.base_ejection_time, low=0.0, low_open=True)
        _number(o, "max_ejection_time", self.max_ejection_time, low=0.0, low_open=True)
        if self.max_ejection_time < self.base_ejection_time:
            raise InvalidPolicyError(f"HealthPolicy.max_ejection_time ({self.max_ejection_time}) must be at least "
                                     f"base_ejection_time ({self.base_ejection_time})")
        _number(o, "max_ejection_percent", self.max_ejection_percent, low=0.0, high=100.0, low_open=True)
        _number(o, "latency_factor", self.latency_factor, low=1.0, low_open=True)
        _number(o, "degraded_error_rate", self.degraded_error_rate, low=0.0, high=1.0, low_open=True)
        _number(o, "ewma_alpha", self.ewma_alpha, low=0.0, high=1.0, low_open=True)
        _number(o, "hysteresis", self.hysteresis, low=0.0, high=1.0, high_open=True)
        _number(o, "degraded_weight", self.degraded_weight, low=0.0, high=1.0, low_open=True)
        _count(o, "half_open_trials", self.half_open_trials)
        _number(o, "slow_start_window", self.slow_start_window, low=0.0, low_open=True)
        _number(o, "aggression", self.aggression, low=0.0, low_open=True)
        _number(o, "min_weight", self.min_weight, low=0.0, high=1.0, low_open=True)

    def ejection_time(self, level: int) -> float:
        """The length of an ejection at backoff ``level`` (1 = first): ``min(base * 2**(level-1), max)``.  O(1)."""
        return min(self.base_ejection_time * 2.0 ** min(level - 1, 64), self.max_ejection_time)


@dataclass(frozen=True)
class Transition:
    """One entry of the health log: ``server_id`` went from ``old`` to ``new`` at ``at`` because of ``reason``.

    ``old`` is ``None`` for the entry written when the server is added.
    ``reason`` is one of :class:`Reason`'s strings.
    """

    server_id: str
    old: HealthState | None
    new: HealthState
    at: float
    reason: str


@dataclass(frozen=True)
class Attempt:
    """One try of a request: where it ran, when, and how it ended.

    ``end`` is ``None`` while it runs; ``outcome`` is one of :class:`Outcome`'s
    strings; ``late_answer_at`` is when an answer from this attempt arrived
    after the request had moved on (discarded), else ``None``.
    """

    server_id: str
    start: float
    end: float | None = None
    outcome: str = Outcome.IN_FLIGHT
    late_answer_at: float | None = None
