"""Stage 6: priorities and tiers (SKELETON: names and signatures are binding; bodies follow).

See /work/notes/stage6-design.md.  Everything here raises NotImplementedError
until the full module lands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from solution.core.errors import RequestTooLargeError, UnknownTierError
from solution.core.queue_types import Rejected
from solution.core.request import Request
from solution.core.routing import BaseStrategy, Decision, Router, ServerState
from solution.core.tier_types import PREEMPT_MODES, ROUTING_MODES, SHARED_POOL, RateLimit, ServiceTier, Slo

__all__ = ["ServiceTier", "RateLimit", "Slo", "TierTable", "TokenBucket", "RateLimiter", "TierAdmission", "TierRouting",
           "Preemptor", "SHARED_POOL", "ROUTING_MODES", "PREEMPT_MODES", "RequestTooLargeError", "UnknownTierError"]  # fmt: skip


class TierTable:
    def __init__(self, tiers: Sequence[ServiceTier], default: str | None = None) -> None:
        raise NotImplementedError

    @classmethod
    def standard(cls) -> TierTable:
        raise NotImplementedError

    def tier(self, name: str | None) -> ServiceTier:
        raise NotImplementedError

    @property
    def names(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def by_class(self) -> tuple[ServiceTier, ...]:
        raise NotImplementedError

    @property
    def default(self) -> str:
        raise NotImplementedError

    def reserved_slots(self, name: str | None, capacity: int) -> int:
        raise NotImplementedError

    def limit(self, name: str | None, effective_limit: float, capacity: int) -> float:
        raise NotImplementedError


class TokenBucket:
    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        raise NotImplementedError

    def level(self, now: float) -> float:
        raise NotImplementedError

    def wait(self, n: float, now: float) -> float:
        raise NotImplementedError

    def take(self, n: float, now: float) -> float:
        raise NotImplementedError


class RateLimiter:
    def __init__(self, table: TierTable, *, max_tenants: int = 100_000) -> None:
        raise NotImplementedError

    def check(self, request: Request, now: float) -> float:
        raise NotImplementedError

    @staticmethod
    def retry_after(wait: float) -> int:
        raise NotImplementedError

    def tenants(self) -> int:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError


class TierAdmission:
    def __init__(self, table: TierTable, limiter: RateLimiter | None = None) -> None:
        raise NotImplementedError

    def __call__(self, request: Request, now: float) -> Rejected | None:
        raise NotImplementedError


class TierRouting(BaseStrategy):
    name = "tier routing"

    def __init__(self, table: TierTable) -> None:
        raise NotImplementedError

    def choose(self, request: Request) -> ServerState | None:
        raise NotImplementedError

    def fits(self, server: ServerState, request: Request) -> bool:
        raise NotImplementedError

    def may_use(self, server: ServerState, request: Request) -> bool:
        raise NotImplementedError

    def waiting_class(self, request: Request) -> int:
        raise NotImplementedError

    def explain(self, request: Request) -> Decision:
        raise NotImplementedError


class Preemptor:
    def __init__(self, table: TierTable, *, max_preemptions: int = 2, mode: str = "recompute") -> None:
        raise NotImplementedError

    def started(self, request: Request, server_id: str) -> None:
        raise NotImplementedError

    def stopped(self, request_id: str) -> None:
        raise NotImplementedError

    def forget(self, request_id: str) -> None:
        raise NotImplementedError

    def victim(self, request: Request, usable: Callable[[str], bool]) -> tuple[str, str] | None:
        raise NotImplementedError

    def preempt(self, request_id: str) -> int:
        raise NotImplementedError

    def preemptions(self, request_id: str) -> int:
        raise NotImplementedError

    def stats(self) -> dict[str, int]:
        raise NotImplementedError


_ = (Router,)
