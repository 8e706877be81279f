"""Stage 7's support types: rollout plans, the events a deploy controller is fed, the actions it returns.

The controller (``RollingDeploy``, stage 7's exercise) is a pure state
machine: time is an explicit ``at`` on every event, it never sleeps or polls,
and whoever runs it (the simulator, a gateway) carries out the actions it
returns and feeds it what happened.  Everything here is a frozen dataclass
validated on construction (bad input -> ``TypeError`` / ``ValueError``).

    Events  (what happened):   Ready, Drained, Fault, Tick, Window
    Actions (what to do next): Start, Drain, SetCanaryWeight, EndCanary, Done, RolledBack
    Log:                       Decision(at, action, reason), one per decision

These types are shared: the candidate's ``exercises`` package uses the very
same classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Union

__all__ = [
    "Bound",
    "CanaryPlan",
    "RolloutPlan",
    "VersionStats",
    "Ready",
    "Drained",
    "Fault",
    "Tick",
    "Window",
    "Event",
    "Start",
    "Drain",
    "SetCanaryWeight",
    "EndCanary",
    "Done",
    "RolledBack",
    "Action",
    "Decision",
    "Verdict",
    "parse_bound",
]

#: A surge or unavailability bound: an absolute number of servers (an int >= 0) or a percent of the replicas ("25%").
Bound = Union[int, str]

METRICS = ("errors", "latency")


def _time(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return float(value)


def _id(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{what} must be a non-empty string")
    return value


def parse_bound(value: object, what: str) -> tuple[int, bool]:
    """``(number, is_percent)`` of a :data:`Bound`; ``TypeError`` / ``ValueError`` naming ``what`` otherwise.

    An int >= 0 (not a bool), or a str ``"<int>%"`` with the int in 0..100
    (Kubernetes accepts whole percents only: ``"12.5%"`` is refused).
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f'{what} must be an int >= 0 or a percent string such as "25%", got {type(value).__name__} {value!r}')
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{what} must be >= 0, got {value}")
        return value, False
    text = value.strip()
    if not text.endswith("%") or not text[:-1].isdigit():
        raise ValueError(f'{what} must be a whole percent such as "25%", got {value!r}')
    percent = int(text[:-1])
    if percent > 100:
        raise ValueError(f"{what} must be a percent in 0-100, got {value!r}")
    return percent, True


@dataclass(frozen=True)
class CanaryPlan:
    """How a canary runs: the traffic steps, the analysis window and test level, who is kept out.

    Args:
        steps: the new version's traffic share per step, in percent, strictly
            increasing, each in (0, 100] (Argo Rollouts' and Flagger's
            ``setWeight`` steps).  A step of 100 ends the canary: the rest of
            the fleet is replaced by the rolling update.
        window: seconds of traffic each step is observed before it is judged (> 0).
        alpha: the per-step false-alarm level in (0, 1); split over the metrics (Bonferroni).
        min_requests: a step is not judged before each version served this many requests (an int >= 1).
        excluded_tiers: service tiers that never see the new version (e.g. premium).
        metrics: a non-empty subset of ``("errors", "latency")``.

    Raises:
        TypeError / ValueError: a field of the wrong type or out of range.
    """

    steps: tuple[float, ...] = (1, 5, 25, 100)
    window: float = 60.0
    alpha: float = 0.05
    min_requests: int = 200
    excluded_tiers: tuple[str, ...] = ("premium",)
    metrics: tuple[str, ...] = ("errors", "latency")

    def __post_init__(self) -> None:
        if isinstance(self.steps, (str, bytes)) or not isinstance(self.steps, (tuple, list)):
            raise TypeError(f"steps must be a tuple of percents, got {type(self.steps).__name__}")
        steps = tuple(self.steps)
        if not steps:
            raise ValueError("steps must name at least one traffic share, e.g. (1, 5, 25, 100)")
        for s in steps:
            if isinstance(s, bool) or not isinstance(s, (int, float)):
                raise TypeError(f"each step must be a number (percent), got {type(s).__name__} {s!r}")
            if not math.isfinite(s) or not 0 < s <= 100:
                raise ValueError(f"each step must be a percent in (0, 100], got {s!r}")
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"steps must be strictly increasing, got {steps}")
        window = _time(self.window, "window")
        if window <= 0:
            raise ValueError(f"window must be > 0 seconds, got {self.window!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)):
            raise TypeError(f"alpha must be a number in (0, 1), got {type(self.alpha).__name__}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if isinstance(self.min_requests, bool) or not isinstance(self.min_requests, int):
            raise TypeError(f"min_requests must be an int, got {type(self.min_requests).__name__}")
        if self.min_requests < 1:
            raise ValueError(f"min_requests must be >= 1, got {self.min_requests}")
        if isinstance(self.excluded_tiers, (str, bytes)) or not isinstance(self.excluded_tiers, (tuple, list, frozenset, set)):
            raise TypeError("excluded_tiers must be a tuple of tier names, e.g. ('premium',)")
        tiers = tuple(_id(t, "excluded_tiers entry") for t in self.excluded_tiers)
        if isinstance(self.metrics, (str, bytes)) or not isinstance(self.metrics, (tuple, list)):
            raise TypeError(f"metrics must be a tuple drawn from {METRICS}")
        metrics = tuple(self.metrics)
        if not metrics or len(set(metrics)) != len(metrics) or any(m not in METRICS for m in metrics):
            raise ValueError(f"metrics must be a non-empty subset of {METRICS} without repeats, got {metrics!r}")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "excluded_tiers", tiers)
        object.__setattr__(self, "metrics", metrics)


@dataclass(frozen=True)
class RolloutPlan:
    """How a rolling deploy runs (Kubernetes' ``RollingUpdate`` strategy plus pre-warming and a canary).

    Args:
        max_surge: servers allowed above the replica count (an int or ``"25%"``, rounded up).
        max_unavailable: servers allowed below it (an int or ``"25%"``, rounded down).
            Both resolving to 0 is refused (nothing could ever move).
        drain_timeout: seconds a draining server keeps its requests before they are
            ended and re-sent (> 0; ``math.inf`` waits forever).
        prewarm: True: an old server is drained only once a new one is Ready to
            take its place (needs ``max_surge`` >= 1); False: drain-first.
        canary: a :class:`CanaryPlan`, or None for a plain rolling update.

    Raises:
        TypeError / ValueError: a field of the wrong type or out of range (both
        bounds written as 0 is caught here; bounds that *round* to 0 for a
        given fleet are caught by ``RollingDeploy``).
    """

    max_surge: Bound = "25%"
    max_unavailable: Bound = "25%"
    drain_timeout: float = 600.0
    prewarm: bool = True
    canary: CanaryPlan | None = None

    def __post_init__(self) -> None:
        surge = parse_bound(self.max_surge, "max_surge")
        unavailable = parse_bound(self.max_unavailable, "max_unavailable")
        if surge[0] == 0 and unavailable[0] == 0:
            raise ValueError("max_surge and max_unavailable may not both be 0: nothing could be started or drained; "
                             "allow at least one (e.g. max_surge=1)")  # fmt: skip
        if isinstance(self.drain_timeout, bool) or not isinstance(self.drain_timeout, (int, float)):
            raise TypeError(f"drain_timeout must be a number of seconds, got {type(self.drain_timeout).__name__}")
        if math.isnan(self.drain_timeout) or self.drain_timeout <= 0:
            raise ValueError(f"drain_timeout must be > 0 seconds (math.inf: wait forever), got {self.drain_timeout!r}")
        if not isinstance(self.prewarm, bool):
            raise TypeError(f"prewarm must be a bool, got {type(self.prewarm).__name__}")
        if self.canary is not None and not isinstance(self.canary, CanaryPlan):
            raise TypeError(f"canary must be a CanaryPlan or None, got {type(self.canary).__name__}")
        object.__setattr__(self, "drain_timeout", float(self.drain_timeout))


@dataclass(frozen=True)
class VersionStats:
    """One version's traffic in one analysis window: requests served, how many failed, their latencies (seconds)."""

    requests: int
    errors: int = 0
    latencies: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("requests", "errors"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        if self.errors > self.requests:
            raise ValueError(f"errors ({self.errors}) cannot exceed requests ({self.requests})")
        if isinstance(self.latencies, (str, bytes)):
            raise TypeError("latencies must be a sequence of seconds")
        try:
            lat = tuple(self.latencies)
        except TypeError:
            raise TypeError(f"latencies must be a sequence of seconds, got {type(self.latencies).__name__}") from None
        for x in lat:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
                raise ValueError(f"each latency must be a finite number >= 0 (seconds), got {x!r}")
        object.__setattr__(self, "latencies", lat)


# --- events: what happened ---------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """Server ``server_id`` passed its health checks and finished slow start at ``at``."""

    server_id: str
    at: float

    def __post_init__(self) -> None:
        _id(self.server_id, "server_id")
        object.__setattr__(self, "at", _time(self.at, "at"))


@dataclass(frozen=True)
class Drained:
    """Server ``server_id``'s last request left at ``at``; ``forced`` of them were ended by the drain timeout."""

    server_id: str
    at: float
    forced: int = 0

    def __post_init__(self) -> None:
        _id(self.server_id, "server_id")
        object.__setattr__(self, "at", _time(self.at, "at"))
        if isinstance(self.forced, bool) or not isinstance(self.forced, int):
            raise TypeError(f"forced must be an int, got {type(self.forced).__name__}")
        if self.forced < 0:
            raise ValueError(f"forced must be >= 0, got {self.forced}")


@dataclass(frozen=True)
class Fault:
    """Server ``server_id`` died at ``at`` (a crash, a lost node): it is gone, its capacity with it."""

    server_id: str
    at: float

    def __post_init__(self) -> None:
        _id(self.server_id, "server_id")
        object.__setattr__(self, "at", _time(self.at, "at"))


@dataclass(frozen=True)
class Tick:
    """A timer fired at ``at`` (the controller asked for it with ``next_event_time``)."""

    at: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _time(self.at, "at"))


@dataclass(frozen=True)
class Window:
    """A canary analysis window closed at ``at``: version A's (stable) and B's (new) traffic in it."""

    at: float
    a: VersionStats
    b: VersionStats

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _time(self.at, "at"))
        for name in ("a", "b"):
            if not isinstance(getattr(self, name), VersionStats):
                raise TypeError(f"{name} must be a VersionStats, got {type(getattr(self, name)).__name__}")


Event = Union[Ready, Drained, Fault, Tick, Window]


# --- actions: what to do -----------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Add a server ``server_id`` of ``version`` (the controller names it; report it with ``Ready`` when it serves)."""

    version: str
    at: float
    server_id: str = ""


@dataclass(frozen=True)
class Drain:
    """Drain ``server_id``: no new requests; end what is left after ``timeout`` seconds (``RequestPath.remove_server``)."""

    server_id: str
    at: float
    timeout: float = math.inf


@dataclass(frozen=True)
class SetCanaryWeight:
    """Send this share (0..1) of the non-excluded traffic to the new version (``CanarySplit.set_weight``)."""

    weight: float
    at: float


@dataclass(frozen=True)
class EndCanary:
    """The canary passed: stop the split, route across both versions by load again (``CanarySplit.end``)."""

    at: float


@dataclass(frozen=True)
class Done:
    """The rollout finished: every old server is gone and the new version serves the whole fleet."""

    at: float


@dataclass(frozen=True)
class RolledBack:
    """The rollout was abandoned at ``at`` because of ``reason``; the new version is being drained."""

    at: float
    reason: str


Action = Union[Start, Drain, SetCanaryWeight, EndCanary, Done, RolledBack]


@dataclass(frozen=True)
class Decision:
    """One decision of the controller: what it did (``action``; None for a decision to wait) and why."""

    at: float
    action: Action | None
    reason: str


@dataclass(frozen=True)
class Verdict:
    """The canary analysis' answer for one window.

    ``outcome``: ``"promote"`` (no metric worse at the test's level),
    ``"hold"`` (too little data to judge), ``"rollback"`` (B is worse);
    ``p_value``: the smallest p-value times the number of metrics tested
    (Bonferroni-adjusted, at most 1; 1.0 when nothing was tested);
    ``reason``: one line naming the test, the metric and the numbers.
    """

    outcome: Literal["promote", "hold", "rollback"]
    p_value: float
    reason: str
    p_values: dict[str, float] = field(default_factory=dict)
