"""Types shared by every stage-2 queue, the reference's and the candidate's.

* :class:`Ordering` and :class:`QueuePolicy`: how a queue orders, bounds and
  times out its requests (validated once, here).
* Outcomes, one frozen class per way a request can leave the gateway:
  :class:`Dispatched` (to a server), :class:`Rejected` (the queue was full:
  HTTP 503 by default, or the policy's ``reject_status``, with a
  ``Retry-After``), :class:`TimedOut` and :class:`Cancelled`.  Every
  submitted request ends with exactly one of them.  :class:`Queued` is the
  receipt of a request that waits; it is not an end.
* :class:`QueueStats`: the depth metrics and the request counts.
* The queue's errors, subclasses of the stage-1 ones (and so of the
  built-ins): :class:`AlreadyWaitingError` is a ``ValueError``,
  :class:`NotWaitingError` a ``KeyError``.

The generated exercise imports these from here, so a candidate's queue
returns the very same classes as the reference's and outcomes compare equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Union

from solution.core.errors import DuplicateRequestError, UnknownRequestError
from solution.core.latency import REFERENCE_MODEL
from solution.core.validate import require_int

__all__ = [
    "Ordering",
    "QueuePolicy",
    "PROMPT_TOKEN_WEIGHT",
    "REJECT_STATUSES",
    "Queued",
    "Dispatched",
    "Rejected",
    "TimedOut",
    "Cancelled",
    "FinalOutcome",
    "FINAL_OUTCOMES",
    "QueueStats",
    "AlreadyWaitingError",
    "NotWaitingError",
]


class Ordering(str, Enum):
    """Which waiting request goes first.

    * ``FIFO``: the one that arrived first.
    * ``PRIORITY``: the highest ``priority`` class; first come first served within a class.
    * ``SJF``: shortest job first by expected service time, counted in
      output-token equivalents (``output + prompt_token_weight * prompt``;
      all of ``estimated_tokens`` when the split is not given), with aging: a
      request's effective size falls by ``aging_rate`` tokens per second of
      waiting, so a long request cannot wait forever.
    """

    FIFO = "fifo"
    PRIORITY = "priority"
    SJF = "sjf"


#: What a prompt token costs, in output tokens: one token's compute inside a
#: prefill iteration (``token_s``) over a whole decode iteration of a lone
#: sequence (``decode_step(1)``), on the course's reference server
#: (:data:`solution.core.latency.REFERENCE_MODEL`, a 7B model on an A100):
#: about 0.0088, one prompt token costs about 1/113 of an output token.  At larger
#: batches a decode iteration is longer and the ratio smaller still.
PROMPT_TOKEN_WEIGHT: float = REFERENCE_MODEL.token_s / REFERENCE_MODEL.decode_step(1)

#: The statuses a full queue may answer with.  503 Service Unavailable is the
#: status for a server-wide overload (RFC 9110, section 15.6.4, with
#: ``Retry-After``, section 10.2.3); 429 Too Many Requests (RFC 6585, section
#: 4) says *this client* sent too many requests: the status of a per-client
#: or per-tenant rate limit (stage 6), and what some APIs send for overload too.
REJECT_STATUSES: tuple[int, ...] = (503, 429)


def _real(value: object, what: str, *, strict: bool = True, none_ok: bool = False) -> float | None:
    """``value`` as a float when it is a finite number > 0 (>= 0 unless ``strict``), or ``None`` if allowed."""
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number{' or None' if none_ok else ''}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0 or (strict and value == 0):
        raise ValueError(f"{what} must be finite and {'> 0' if strict else '>= 0'}, got {value}")
    return float(value)


@dataclass(frozen=True)
class QueuePolicy:
    """How a :class:`~solution.request_queue.RequestQueue` behaves.  Checked on creation.

    Args:
        ordering: an :class:`Ordering` or its value (``"fifo"``, ``"priority"``, ``"sjf"``).
        max_depth: the most requests that may wait (an int >= 0); one more is
            rejected (``reject_status``).  ``None``: unbounded.  0: nothing waits (a
            request that finds no capacity is rejected at once).
        max_wait: seconds a request may wait before it times out (> 0);
            ``None``: no limit.
        aging_rate: for ``SJF``, tokens per second of waiting by which a
            request's effective size shrinks (> 0).
        prompt_token_weight: for ``SJF``, what one prompt token costs in
            output tokens (a finite number >= 0; default
            :data:`PROMPT_TOKEN_WEIGHT`, about 1/113).  A request enqueued
            with ``prompt_tokens=p`` counts as ``(estimated_tokens - p) +
            prompt_token_weight * p`` tokens; without ``prompt_tokens``, as
            ``estimated_tokens`` (every token priced as an output token).
        reject_status: the HTTP status of a :class:`Rejected` (503 or 429;
            default 503: a full queue is a server-wide overload, RFC 9110;
            429 is for a client over its own rate limit, RFC 6585).
        large_request_tokens: requests with more estimated tokens than this
            are *large*: only big-memory servers take them (as in stage 1).
        max_skips: a large request passed over this many times for not
            fitting the freed server gets the next server it fits (>= 1).
        rate_window: seconds of completions that the recent completion
            rate, and so ``Retry-After``, is measured over (> 0).
        scale_up_depth: the depth above which the queue wants more servers;
            ``None``: no scale-up signal.
        scale_up_after: how many seconds the depth must stay above
            ``scale_up_depth`` before the signal is raised (>= 0).

    Raises:
        TypeError: a value of the wrong type (``bool`` is not a number here).
        ValueError: a value out of range, or an unknown ordering name.
    """

    ordering: Ordering = Ordering.FIFO
    max_depth: int | None = None
    max_wait: float | None = None
    aging_rate: float = 100.0
    prompt_token_weight: float = PROMPT_TOKEN_WEIGHT
    reject_status: int = 503
    large_request_tokens: int = 4096
    max_skips: int = 8
    rate_window: float = 60.0
    scale_up_depth: int | None = None
    scale_up_after: float = 30.0

    def __post_init__(self) -> None:
        ordering = self.ordering
        if not isinstance(ordering, (str, Ordering)):
            raise TypeError(f"ordering must be an Ordering or one of 'fifo', 'priority', 'sjf', got {type(ordering).__name__}")
        try:
            ordering = Ordering(ordering)
        except ValueError:
            raise ValueError(f"unknown ordering {ordering!r}; choose 'fifo', 'priority' or 'sjf'") from None
        object.__setattr__(self, "ordering", ordering)
        if self.max_depth is not None:
            require_int(self.max_depth, "max_depth", minimum=0)
        object.__setattr__(self, "max_wait", _real(self.max_wait, "max_wait", none_ok=True))
        object.__setattr__(self, "aging_rate", _real(self.aging_rate, "aging_rate"))
        object.__setattr__(self, "prompt_token_weight", _real(self.prompt_token_weight, "prompt_token_weight", strict=False))
        if isinstance(self.reject_status, bool) or not isinstance(self.reject_status, int):
            raise TypeError(f"reject_status must be an int HTTP status (503 or 429), got {type(self.reject_status).__name__}")
        if self.reject_status not in REJECT_STATUSES:
            raise ValueError(
                f"reject_status must be 503 (server overloaded, RFC 9110) or 429 (this client is over its rate limit, "
                f"RFC 6585), got {self.reject_status}"
            )
        require_int(self.large_request_tokens, "large_request_tokens")
        require_int(self.max_skips, "max_skips")
        object.__setattr__(self, "rate_window", _real(self.rate_window, "rate_window"))
        if self.scale_up_depth is not None:
            require_int(self.scale_up_depth, "scale_up_depth", minimum=0)
        object.__setattr__(self, "scale_up_after", _real(self.scale_up_after, "scale_up_after", strict=False))

    def is_large(self, estimated_tokens: int) -> bool:
        """True when a request of ``estimated_tokens`` needs a big-memory server (memory holds every token)."""
        return estimated_tokens > self.large_request_tokens

    def job_size(self, estimated_tokens: int, prompt_tokens: int | None = None) -> float:
        """SJF's size of a request, in output-token equivalents: ``output + prompt_token_weight * prompt``.

        ``output = estimated_tokens - prompt_tokens``; without ``prompt_tokens``
        the whole ``estimated_tokens`` (as a float).  Computed exactly in
        this order, so every queue gets the same float.  No validation: the
        queue checks its arguments first.  O(1).
        """
        if prompt_tokens is None:
            return float(estimated_tokens)
        return (estimated_tokens - prompt_tokens) + self.prompt_token_weight * prompt_tokens


# -- outcomes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Queued:
    """The receipt of a request that waits: not an end; it will be dispatched, time out or be cancelled.

    ``deadline`` is ``at + max_wait`` (``None`` without a maximum wait).
    """

    request_id: str
    estimated_tokens: int
    priority: int
    at: float
    deadline: float | None


@dataclass(frozen=True, slots=True)
class Dispatched:
    """The request went to ``server_id`` at ``at`` after waiting ``waited = at - arrival`` seconds (0 if it never waited)."""

    request_id: str
    server_id: str
    at: float
    waited: float


@dataclass(frozen=True, slots=True)
class Rejected:
    """The queue was full: HTTP ``status`` (503 Service Unavailable by default, or the policy's 429), retry after ``retry_after`` whole seconds (>= 1)."""

    request_id: str
    at: float
    retry_after: int
    status: int = 503

    @property
    def headers(self) -> dict[str, str]:
        """The response headers a gateway sends with the rejection."""
        return {"Retry-After": str(self.retry_after)}


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The request waited its ``max_wait`` and left the queue at its deadline ``at``."""

    request_id: str
    at: float
    waited: float


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The client went away: the request was withdrawn from the queue at ``at``."""

    request_id: str
    at: float
    waited: float


#: How a request can end; each submitted request ends with exactly one.
FinalOutcome = Union[Dispatched, Rejected, TimedOut, Cancelled]
FINAL_OUTCOMES = (Dispatched, Rejected, TimedOut, Cancelled)


@dataclass(frozen=True)
class QueueStats:
    """A queue's metrics at one instant (see ``RequestQueue.stats``).

    The counts always satisfy ``enqueued == dispatched + timed_out +
    cancelled + depth``; ``rejected`` requests were never enqueued.
    ``mean_depth`` is the time-weighted mean depth since the queue was made;
    ``scale_up`` is True when the depth has stayed above the policy's
    ``scale_up_depth`` since ``over_threshold_since`` for at least
    ``scale_up_after`` seconds.
    """

    depth: int
    peak_depth: int
    mean_depth: float
    enqueued: int
    dispatched: int
    rejected: int
    timed_out: int
    cancelled: int
    over_threshold_since: float | None
    scale_up: bool


# -- errors -----------------------------------------------------------------------


class AlreadyWaitingError(DuplicateRequestError):
    """``enqueue`` (or a gateway's ``submit``) was given the id of a request that is already waiting."""


class NotWaitingError(UnknownRequestError):
    """The request is not waiting: never queued, or already dispatched, timed out or cancelled."""
