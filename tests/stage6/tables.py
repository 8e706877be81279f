"""Tier tables the stage-6 tests share (rows only: the table itself is the implementation's to build)."""

from __future__ import annotations

from solution.core.tier_types import RateLimit, ServiceTier, Slo


def three_tiers(*, premium_share: float = 0.25, free_share: float = 0.0, premium_pool: str | None = None,
                spill: bool = True, tenant: RateLimit | None = None, tier: RateLimit | None = None) -> list[ServiceTier]:  # fmt: skip
    """premium (class 2, predictive, may preempt), free (class 1, by load), batch (class 0, preemptible)."""
    return [
        ServiceTier("premium", 2, premium_share, pool=premium_pool, spill=spill, routing="predictive", may_preempt=True,
                    slo=Slo(1.0, 30.0)),  # fmt: skip
        ServiceTier("free", 1, free_share, tier_limit=tier, tenant_limit=tenant),
        ServiceTier("batch", 0, preemptible=True),
    ]


def load_tiers(*, premium_share: float = 0.25) -> list[ServiceTier]:
    """As :func:`three_tiers`, but every tier routed by load (so the load rule alone decides)."""
    return [
        ServiceTier("premium", 2, premium_share, routing="load", may_preempt=True),
        ServiceTier("free", 1),
        ServiceTier("batch", 0, preemptible=True),
    ]
