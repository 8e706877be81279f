"""Support types of stage 6 (priorities and tiers): what a service tier promises, as data.

Shared by the reference (``solution/tiers.py``) and the candidate's exercise:
both import these very objects, so a tier built on one side means the same
on the other (and :class:`~solution.core.path.RequestPath` accepts either).

* :class:`Slo`: a tier's latency targets, time to first token and end to end.
* :class:`RateLimit`: requests per minute and tokens per minute, each a token
  bucket holding ``burst_seconds`` of its rate (a minute's worth by default,
  as OpenAI's per-minute limits).
* :class:`ServiceTier`: one row of the tier table (queue class, reserved
  share, rate limits, pool, routing rule, preemption flags, SLO).

"Tier" alone is taken in the simulator (``solution.sim.workload.Tier`` is a
*kind of request* with its token distributions); what a customer pays for is
a **service tier**.

All three are frozen dataclasses validated in ``__post_init__`` in O(1): a
wrong type raises ``TypeError``, a wrong value ``ValueError``, each message
naming the field, the value and the allowed range.  ``bool`` is rejected
wherever a number is due (``True`` requests per minute is a caller's bug).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from solution.core.validate import require_id, require_int

__all__ = [
    "Slo",
    "RateLimit",
    "ServiceTier",
    "SHARED_POOL",
    "ROUTING_MODES",
    "PREEMPT_MODES",
    "require_rate",
]

#: The pool every tier may use: servers are in it unless added with another ``pool=`` label.
SHARED_POOL = "shared"

#: ``ServiceTier.routing``: ``"predictive"`` (stage 3's lowest predicted end-to-end
#: latency, for latency-sensitive tiers) or ``"load"`` (lowest load over the tier's limit).
ROUTING_MODES: tuple[str, ...] = ("predictive", "load")

#: ``Preemptor(mode=...)``: how a preempted request pays on resume.  ``"recompute"``
#: (vLLM's default) prefills its prompt and the tokens it already generated again,
#: on any server; ``"swap"`` copies its KV cache out to host memory and back over
#: PCIe, and resumes on the same server.
PREEMPT_MODES: tuple[str, ...] = ("recompute", "swap")


def require_rate(value: object, what: str, *, allow_none: bool = False) -> float | None:
    """Return ``value`` as a float if it is a finite number > 0 (not a bool); ``None`` passes with ``allow_none``.

    >>> require_rate(600, "requests_per_minute")
    600.0
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value <= 0:
        hint = "; use None for no limit of that kind" if allow_none else ""
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}{hint}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Slo:
    """A tier's latency targets in seconds: time to first token and end to end (each finite, > 0).

    A request *meets* its SLO when both hold; the simulator reports the share
    of requests that do (SLO attainment) per tier.

    >>> Slo(ttft=0.5, e2e=20.0).e2e
    20.0
    """

    ttft: float
    e2e: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "ttft", require_rate(self.ttft, "Slo.ttft"))
        object.__setattr__(self, "e2e", require_rate(self.e2e, "Slo.e2e"))
        if self.e2e < self.ttft:
            raise ValueError(f"Slo.e2e ({self.e2e}) must be at least Slo.ttft ({self.ttft}): the first token is part of the answer")

    def met(self, ttft: float, e2e: float) -> bool:
        """True when a request's measured ``ttft`` and ``e2e`` (seconds) are within both targets.  O(1)."""
        return ttft <= self.ttft and e2e <= self.e2e


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Requests per minute and tokens per minute, each a token bucket; ``None`` = no limit of that kind.

    Each limit is a bucket that refills at ``per_minute / 60`` per second and
    holds at most ``burst = per_minute / 60 * burst_seconds`` (a minute's worth
    by default, as OpenAI's per-minute limits: a tenant idle for a minute may
    send a minute's quota at once).  A request takes 1 from the request bucket
    and its ``estimated_tokens`` (prompt plus expected output, as OpenAI counts
    ``max_tokens`` at admission) from the token bucket.

    Raises:
        TypeError: a rate or ``burst_seconds`` that is not a number (or is a bool).
        ValueError: a rate or ``burst_seconds`` that is not finite and > 0;
            both rates ``None`` (pass ``None`` instead of a RateLimit for no
            limit); a request bucket whose burst is below one request (no
            request could ever pass: raise the rate or ``burst_seconds``).

    >>> RateLimit(requests_per_minute=60, tokens_per_minute=None).request_burst
    60.0
    """

    requests_per_minute: float | None
    tokens_per_minute: float | None
    burst_seconds: float = 60.0

    def __post_init__(self) -> None:
        rpm = require_rate(self.requests_per_minute, "RateLimit.requests_per_minute", allow_none=True)
        tpm = require_rate(self.tokens_per_minute, "RateLimit.tokens_per_minute", allow_none=True)
        burst = require_rate(self.burst_seconds, "RateLimit.burst_seconds")
        if rpm is None and tpm is None:
            raise ValueError("a RateLimit needs requests_per_minute or tokens_per_minute (or both); "
                             "for no limit at all pass None instead of a RateLimit")  # fmt: skip
        if rpm is not None and rpm / 60.0 * burst < 1.0:
            raise ValueError(f"RateLimit holds {rpm / 60.0 * burst:g} requests at most (requests_per_minute / 60 * burst_seconds): "
                             "below one, no request could ever pass; raise the rate or burst_seconds")  # fmt: skip
        object.__setattr__(self, "requests_per_minute", rpm)
        object.__setattr__(self, "tokens_per_minute", tpm)
        object.__setattr__(self, "burst_seconds", burst)

    @property
    def request_rate(self) -> float | None:
        """Requests per second (``None``: no request limit)."""
        return None if self.requests_per_minute is None else self.requests_per_minute / 60.0

    @property
    def token_rate(self) -> float | None:
        """Tokens per second (``None``: no token limit)."""
        return None if self.tokens_per_minute is None else self.tokens_per_minute / 60.0

    @property
    def request_burst(self) -> float | None:
        """The most requests the request bucket holds: ``request_rate * burst_seconds``."""
        rate = self.request_rate
        return None if rate is None else rate * self.burst_seconds

    @property
    def token_burst(self) -> float | None:
        """The most tokens the token bucket holds: ``token_rate * burst_seconds``; a bigger request is never admitted."""
        rate = self.token_rate
        return None if rate is None else rate * self.burst_seconds


@dataclass(frozen=True, slots=True)
class ServiceTier:
    """One service tier: what a customer pays for, as data.  Validated in O(1).

    Args:
        name: a non-empty ``str`` (what ``Request.tier`` names).
        queue_class: an int >= 0; larger is served first (strict priority
            between classes, FIFO within one).  Distinct per table.
        reserved_share: the share of every server's slots kept for this tier
            and the tiers above it, in [0, 1) (trunk reservation; the table
            rounds it up per server: ``TierTable.reserved_slots``).
        tier_limit: a :class:`RateLimit` for the tier's traffic together, or ``None``.
        tenant_limit: a :class:`RateLimit` for each tenant of the tier, or ``None``.
        pool: ``None`` (the shared pool only) or the name of a pool of
            servers (``Router.add_server(..., pool=...)``) the tier uses first.
            ``"shared"`` itself is spelled ``None``.
        spill: with a named pool, whether the tier may spill to the shared
            pool when no server of its own pool can take a request (default True).
        routing: ``"predictive"`` (lowest predicted latency) or ``"load"``
            (lowest load over the tier's limit), see :data:`ROUTING_MODES`.
        may_preempt: a request of this tier that finds no server may pause a
            running request of a preemptible, lower-class tier.
        preemptible: this tier's running requests may be paused (and resumed later).
        slo: its latency targets (:class:`Slo`), or ``None`` (none promised).

    Raises:
        TypeError / ValueError: a field of the wrong type or out of range
        (the message names it and says what is allowed).
    """

    name: str
    queue_class: int
    reserved_share: float = 0.0
    tier_limit: RateLimit | None = None
    tenant_limit: RateLimit | None = None
    pool: str | None = None
    spill: bool = True
    routing: str = "load"
    may_preempt: bool = False
    preemptible: bool = False
    slo: Slo | None = None

    def __post_init__(self) -> None:
        require_id(self.name, "ServiceTier.name")
        require_int(self.queue_class, "ServiceTier.queue_class", minimum=0)
        share = self.reserved_share
        if isinstance(share, bool) or not isinstance(share, (int, float)):
            raise TypeError(f"ServiceTier.reserved_share must be a number in [0, 1), got {type(share).__name__} {share!r}")
        if not 0.0 <= share < 1.0:  # NaN fails both
            raise ValueError(f"ServiceTier.reserved_share must lie in [0, 1) (a share of each server's slots), got {share!r}")
        object.__setattr__(self, "reserved_share", float(share))
        for field_name in ("tier_limit", "tenant_limit"):
            value = getattr(self, field_name)
            if value is not None and not isinstance(value, RateLimit):
                raise TypeError(f"ServiceTier.{field_name} must be a RateLimit or None, got {type(value).__name__} {value!r}")
        if self.pool is not None:
            require_id(self.pool, "ServiceTier.pool")
            if self.pool == SHARED_POOL:
                raise ValueError(f'ServiceTier.pool={SHARED_POOL!r} is spelled pool=None (the shared pool every tier may use)')
        for field_name in ("spill", "may_preempt", "preemptible"):
            if not isinstance(getattr(self, field_name), bool):
                value = getattr(self, field_name)
                raise TypeError(f"ServiceTier.{field_name} must be True or False, got {type(value).__name__} {value!r}")
        if not isinstance(self.routing, str):
            raise TypeError(f"ServiceTier.routing must be a str, one of {ROUTING_MODES}, got {type(self.routing).__name__}")
        if self.routing not in ROUTING_MODES:
            raise ValueError(f"ServiceTier.routing must be one of {ROUTING_MODES}, got {self.routing!r}")
        if self.slo is not None and not isinstance(self.slo, Slo):
            raise TypeError(f"ServiceTier.slo must be a Slo(ttft=..., e2e=...) or None, got {type(self.slo).__name__}")

    @property
    def pools(self) -> tuple[str, ...]:
        """The pools it may use, in the order it tries them: ``("shared",)``; ``(pool, "shared")`` with spill; ``(pool,)`` without."""
        if self.pool is None:
            return (SHARED_POOL,)
        return (self.pool, SHARED_POOL) if self.spill else (self.pool,)
