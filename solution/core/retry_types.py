"""Stage 8's support types: the retry budget, the retry policy, a failed attempt, a retry decision.

The retrier (``Retrier``, stage 8's exercise) decides, after an attempt
failed, whether the request is tried again and after how long.  Everything
here is a frozen dataclass validated on construction (bad input ->
``TypeError`` / ``ValueError`` naming the field), so a policy that exists is
a valid one.

These types are shared: the candidate's ``exercises`` package uses the very
same classes.  :class:`RetryPolicy` is also stage 4's policy (re-exported by
:mod:`solution.core.health_types` and as ``solution.RetryPolicy``): stage 4's
``RetryLedger`` reads its first two fields, ``max_tries`` and
``per_try_timeout``; the backoff, the budget and ``retry_on`` (keyword-only)
apply when the request path is given a stage-8 ``Retrier``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any

from solution.core.errors import InvalidPolicyError

__all__ = [
    "FAILURE_KINDS",
    "RETRY_ON",
    "REASONS",
    "RetryBudget",
    "RetryPolicy",
    "Failure",
    "RetryDecision",
]

#: What went wrong with an attempt: no connection, the connection broke (or the server was lost), the
#: per-try timeout fired, or the server answered with an HTTP error status.
FAILURE_KINDS = ("connect", "reset", "timeout", "status")

#: The failure classes a :class:`RetryPolicy` may retry (``retry_on``): the three transport kinds, any 5xx, and 429.
RETRY_ON = ("connect", "reset", "timeout", "5xx", "429")

#: Every reason a :class:`RetryDecision` may carry, in the order the rules are tried (``"retry"`` last: all passed).
REASONS = ("streamed", "not_retryable", "max_tries", "retry_after_too_long", "budget", "retry")


def _number(owner: str, name: str, value: object, *, low: float = 0.0, high: float = math.inf,
            allow_inf: bool = False, allow_none: bool = False) -> float | None:  # fmt: skip
    """``value`` as a float in ``[low, high]``; TypeError for a non-number (bools too), InvalidPolicyError otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}.{name} must be a number, got {type(value).__name__} {value!r}")
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise InvalidPolicyError(f"{owner}.{name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise InvalidPolicyError(f"{owner}.{name} must be in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _count(owner: str, name: str, value: object, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise InvalidPolicyError(f"{owner}.{name} must be >= {low}, got {value}")
    return value


@dataclass(frozen=True)
class RetryBudget:
    """At most ``max(min_retries, ratio * active)`` retries in flight at once.

    Envoy's ``retry_budget`` (a cluster's circuit-breaker threshold): "the
    limit on concurrent retries as a percentage of the sum of active requests
    and active pending requests" (``budget_percent``, default 20%), which
    "may never go below" ``min_retry_concurrency`` (default 3).  Finagle's
    ``RetryBudget`` has the same aim (``percentCanRetry`` 20% by default) over
    a sliding time window (deposits that expire after ``ttl``) instead of
    concurrency.  Either way retries can add at most ``ratio`` to the load a
    sick fleet already carries, where a fixed ``max_tries = 3`` can triple it
    (a retry storm).

    Args:
        ratio: retries in flight per active request, in [0, 1] (Envoy's
            ``budget_percent / 100``).
        min_retries: retries always allowed however few requests are active
            (an int >= 0; Envoy's ``min_retry_concurrency``), so a quiet
            gateway can still retry.

    Raises:
        TypeError / ValueError (``InvalidPolicyError``): a field of the wrong type or out of range.
    """

    ratio: float = 0.2
    min_retries: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", _number("RetryBudget", "ratio", self.ratio, high=1.0))
        _count("RetryBudget", "min_retries", self.min_retries, low=0)

    def limit(self, active: int) -> int:
        """The most retries that may be in flight with ``active`` requests: ``max(min_retries, floor(ratio * active))``.  O(1).

        Envoy truncates the product too.  The floor is taken with a 1e-9
        tolerance so that a ratio written in decimal means what it says
        (0.29 * 100 is 28.999999999999996 in binary floating point; the limit is 29).

        >>> RetryBudget().limit(10), RetryBudget().limit(100)
        (3, 20)
        """
        if isinstance(active, bool) or not isinstance(active, int):
            raise TypeError(f"active must be an int, got {type(active).__name__} {active!r}")
        if active < 0:
            raise ValueError(f"active must be >= 0, got {active}")
        return max(self.min_retries, math.floor(self.ratio * active + 1e-9))


@dataclass(frozen=True)
class RetryPolicy:
    """When and how often a failed attempt is tried again (stages 4 and 8: one class).

    The first two fields, positional in stage 4's order, are all that stage
    4's ``RetryLedger`` reads: ``RetryPolicy(3, 60.0)`` is three tries with a
    60 s per-try timeout, and a request path with only a ledger re-sends at
    once.  The rest are keyword-only and apply when the path (or the gateway)
    is given a :class:`~solution.retry.Retrier` built from this policy: the
    backoff before a re-send, the ``Retry-After`` limit, which failures are
    retried, and the retry budget.

    Args:
        max_tries: attempts per request, the first included (an int >= 1; 1 = never retry).
        per_try_timeout: seconds one attempt may run before it is abandoned
            as a ``"timeout"`` failure (> 0, finite), or ``None`` for no
            per-try timeout.  The retrier does not time anything; the ledger,
            the request path and the gateway read it.
        base: the backoff of the first retry, in seconds (>= 0).
        cap: the largest backoff, in seconds (finite, >= ``base``).  The
            backoff before retry ``n`` is drawn uniformly from
            ``[0, min(cap, base * 2**(n - 1))]`` (full jitter).
        max_retry_after: the longest ``Retry-After`` (seconds, >= 0; ``inf``
            allowed) the gateway waits out itself; a longer one goes back to
            the client as it came (its own 429/503 with the header).
        retry_on: the failure classes retried, a subset of
            ``{"connect", "reset", "timeout", "5xx", "429"}`` (any iterable
            of them; stored as a frozenset).  Other 4xx are never retried:
            sending the same bad request again gets the same answer.
        budget: a :class:`RetryBudget`, or ``None`` for no budget (the storm the notebook shows).

    Raises:
        TypeError / ValueError (``InvalidPolicyError``): a field of the wrong type or out of range.
    """

    max_tries: int = 3
    per_try_timeout: float | None = None
    _: KW_ONLY
    base: float = 0.025
    cap: float = 1.0
    max_retry_after: float = 30.0
    retry_on: frozenset[str] = field(default_factory=lambda: frozenset(RETRY_ON))
    budget: RetryBudget | None = field(default_factory=RetryBudget)

    def __post_init__(self) -> None:
        o = "RetryPolicy"
        _count(o, "max_tries", self.max_tries, low=1)
        timeout = _number(o, "per_try_timeout", self.per_try_timeout, allow_none=True)
        if timeout is not None and timeout <= 0:
            raise InvalidPolicyError(f"RetryPolicy.per_try_timeout must be > 0 seconds or None, got {self.per_try_timeout!r}")
        base = _number(o, "base", self.base)
        cap = _number(o, "cap", self.cap)
        assert base is not None and cap is not None
        if cap < base:
            raise InvalidPolicyError(f"RetryPolicy.cap ({cap!r}) must be >= base ({base!r}): the backoff grows from base up to cap")
        retry_after = _number(o, "max_retry_after", self.max_retry_after, allow_inf=True)
        retry_on = self.retry_on
        if isinstance(retry_on, (str, bytes)) or not isinstance(retry_on, Iterable):
            raise TypeError(f'RetryPolicy.retry_on must be a set of failure classes such as {{"5xx", "429"}}, got {type(retry_on).__name__} {retry_on!r}')
        entries = list(retry_on)
        for entry in entries:
            if not isinstance(entry, str):
                raise TypeError(f"RetryPolicy.retry_on entries must be str, got {type(entry).__name__} {entry!r}")
            if entry not in RETRY_ON:
                raise InvalidPolicyError(f"RetryPolicy.retry_on: unknown failure class {entry!r}; choose from {RETRY_ON}")
        if self.budget is not None and not isinstance(self.budget, RetryBudget):
            raise TypeError(f"RetryPolicy.budget must be a RetryBudget or None, got {type(self.budget).__name__}")
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "cap", cap)
        object.__setattr__(self, "per_try_timeout", timeout)
        object.__setattr__(self, "max_retry_after", retry_after)
        object.__setattr__(self, "retry_on", frozenset(entries))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetryPolicy:
        """A policy from a JSON-shaped mapping (a gateway's config): the fields by name, missing ones at their defaults.

        ``budget`` may be a mapping of :class:`RetryBudget`'s fields, ``None``
        (no budget) or a ``RetryBudget``; ``retry_on`` a list.  An unknown key
        is a ``ValueError`` naming it (a typo must not silently fall back to a
        default).  The inverse of :meth:`to_dict`.

        >>> RetryPolicy.from_dict({"max_tries": 2, "budget": {"ratio": 0.1}}).budget
        RetryBudget(ratio=0.1, min_retries=3)
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"RetryPolicy.from_dict needs a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)}, key=str)
        if unknown:
            raise ValueError(f"RetryPolicy.from_dict: unknown key(s) {unknown}; the fields are {[f.name for f in fields(cls)]}")
        kwargs = dict(data)
        budget = kwargs.get("budget", RetryBudget())
        if isinstance(budget, Mapping):
            unknown = sorted(set(budget) - {"ratio", "min_retries"}, key=str)
            if unknown:
                raise ValueError(f"RetryPolicy.from_dict: unknown budget key(s) {unknown}; the fields are ['ratio', 'min_retries']")
            kwargs["budget"] = RetryBudget(**budget)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON-shaped data (``retry_on`` sorted, ``budget`` a dict or ``None``); :meth:`from_dict` reads it back."""
        return {
            "max_tries": self.max_tries,
            "per_try_timeout": self.per_try_timeout,
            "base": self.base,
            "cap": self.cap,
            "max_retry_after": self.max_retry_after,
            "retry_on": sorted(self.retry_on),
            "budget": None if self.budget is None else {"ratio": self.budget.ratio, "min_retries": self.budget.min_retries},
        }


@dataclass(frozen=True)
class Failure:
    """How one attempt failed.

    Args:
        kind: ``"connect"`` (no connection was made), ``"reset"`` (the
            connection broke or the server was lost mid-attempt),
            ``"timeout"`` (the per-try timeout fired) or ``"status"`` (the
            server answered an HTTP error).
        status: the HTTP status (an int in 400-599) for kind ``"status"``;
            ``None`` for the others.
        retry_after: the answer's ``Retry-After`` in seconds (a number >= 0,
            finite), or ``None``.  Only an answer carries one, so only kind
            ``"status"`` may.

    Raises:
        TypeError / ValueError: a field of the wrong type, or a combination
            that cannot happen (a status on a connection error, a 200).
    """

    kind: str
    status: int | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str):
            raise TypeError(f"Failure.kind must be a str, got {type(self.kind).__name__} {self.kind!r}")
        if self.kind not in FAILURE_KINDS:
            raise ValueError(f"Failure.kind must be one of {FAILURE_KINDS}, got {self.kind!r}")
        if self.kind == "status":
            if isinstance(self.status, bool) or not isinstance(self.status, int):
                raise TypeError(f'Failure.status must be an int HTTP status for kind "status", got {type(self.status).__name__} {self.status!r}')
            if not 400 <= self.status <= 599:
                raise ValueError(f"Failure.status must be an error status in 400-599, got {self.status}: a success is not a failure")
        elif self.status is not None:
            raise ValueError(f"Failure.status must be None for kind {self.kind!r} (no answer came); use kind 'status' for an HTTP error")
        if self.retry_after is not None:
            if self.kind != "status":
                raise ValueError(f"Failure.retry_after comes with an answer's header: only kind 'status' may carry one, not {self.kind!r}")
            if isinstance(self.retry_after, bool) or not isinstance(self.retry_after, (int, float)):
                raise TypeError(f"Failure.retry_after must be a number of seconds or None, got {type(self.retry_after).__name__} {self.retry_after!r}")
            if not math.isfinite(self.retry_after) or self.retry_after < 0:
                raise ValueError(f"Failure.retry_after must be a finite number of seconds >= 0, got {self.retry_after!r}")
            object.__setattr__(self, "retry_after", float(self.retry_after))

    @property
    def category(self) -> str:
        """The class matched against ``RetryPolicy.retry_on``: the kind, or ``"5xx"``, ``"429"`` or ``"4xx"`` for a status.

        >>> Failure("status", 503).category, Failure("status", 404).category, Failure("reset").category
        ('5xx', '4xx', 'reset')
        """
        if self.kind != "status":
            return self.kind
        assert self.status is not None
        if self.status == 429:
            return "429"
        return "5xx" if self.status >= 500 else "4xx"


@dataclass(frozen=True)
class RetryDecision:
    """The retrier's answer after a failed attempt.

    Args:
        retry: try again (``True``) or give the failure to the client (``False``).
        delay: seconds to wait before the next attempt (>= 0, finite; 0 when ``retry`` is False).
        reason: one of :data:`REASONS`: ``"retry"`` exactly when ``retry`` is True, else the rule that said no.
    """

    retry: bool
    delay: float
    reason: str

    def __post_init__(self) -> None:
        if not isinstance(self.retry, bool):
            raise TypeError(f"RetryDecision.retry must be a bool, got {type(self.retry).__name__}")
        if isinstance(self.delay, bool) or not isinstance(self.delay, (int, float)):
            raise TypeError(f"RetryDecision.delay must be a number of seconds, got {type(self.delay).__name__}")
        if not math.isfinite(self.delay) or self.delay < 0:
            raise ValueError(f"RetryDecision.delay must be a finite number of seconds >= 0, got {self.delay!r}")
        if self.reason not in REASONS:
            raise ValueError(f"RetryDecision.reason must be one of {REASONS}, got {self.reason!r}")
        if self.retry != (self.reason == "retry"):
            raise ValueError(f"RetryDecision: retry={self.retry} does not fit reason {self.reason!r} (only 'retry' retries)")
        if not self.retry and self.delay != 0:
            raise ValueError("RetryDecision: a decision not to retry has delay 0")
        object.__setattr__(self, "delay", float(self.delay))
