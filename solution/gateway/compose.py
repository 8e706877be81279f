"""The gateway's one :class:`~solution.core.path.RequestPath`, composed from its configuration and an implementation.

The components come from an implementation module (:mod:`solution.core.impl`:
``"solution"``, or ``"exercises"`` for a candidate's, ``LB_IMPL`` by
default): the strategy (or stage 6's ``TierRouting`` when the configuration
has tiers), stage 4's ``HealthChecker`` and ``RetryLedger``, the stage-2
queue policy, stage 6's ``TierAdmission`` and ``RateLimiter``, and stage 8's
``Retrier`` (from :mod:`solution.retry` for an implementation package from
before stage 8).  A backend that names a GPU or model preset gets the same
latency model its inference server runs, so the predictive strategy prices
it with that model.

Stage 1's ``least_connections`` needs the reference's ``LeastConnections``:
in the candidate's bundle (no reference) it is refused with a ``ValueError``
that names what to pick instead, rather than replaced by another rule under
its name (the candidate's stage-1 ``LoadBalancer`` cannot drive a ``Router``).

No ``Preemptor``: an inference server over HTTP has no pause and resume,
and a recomputed answer would repeat tokens a stream already sent.

Cost: O(S) for S backends, once per gateway.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from solution.core.path import RequestPath
from solution.core.queue_types import QueuePolicy
from solution.core.routing import Router
from solution.gateway.config import STRATEGIES, GatewayConfig

__all__ = ["compose_path", "latency_models"]


def compose_path(config: GatewayConfig, lib: ModuleType) -> tuple[RequestPath, Any, Any]:
    """``(path, health checker, retrier)`` for ``config`` from the implementation ``lib``.

    Raises AttributeError / TypeError / ValueError for an implementation that
    lacks a component the configuration asks for; ValueError for
    ``least_connections`` without the reference (the candidate's bundle).
    """
    cfg = config
    models = latency_models(cfg)
    table = cfg.tier_table()
    if table is not None:
        table_class = getattr(lib, "TierTable", None)
        if table_class is not None and not isinstance(table, table_class):
            table = table_class(list(table), default=table.default)
        strategy = lib.TierRouting(table)
    else:
        name = STRATEGIES[cfg.strategy]
        from solution.core import routing
        from solution.core.impl import reference_available

        strategy_class = getattr(lib, name, None)
        if strategy_class is None:
            strategy_class = getattr(routing, name)
        if strategy_class is routing.LeastConnections and not reference_available():
            raise ValueError(
                "strategy 'least_connections' needs the reference's LeastConnections, which the candidate's bundle leaves "
                "out (stage 1's rule is your exercises/balancer.py LoadBalancer, which cannot drive the gateway's Router): "
                "pick 'power_of_choices' (the default), 'least_outstanding_tokens' or 'predictive' (your stage-3 "
                "strategies), or configure tiers"
            )
        strategy = strategy_class()
    router = Router(strategy, models=models)
    health = lib.HealthChecker(cfg.health_policy(), seed=cfg.seed)
    ledger = lib.RetryLedger(cfg.ledger_policy())
    queue = None
    if cfg.queue is not None:
        queue = QueuePolicy(max_depth=cfg.queue.max_depth, max_wait=cfg.queue.max_wait)
    kwargs: dict[str, Any] = {"health": health, "ledger": ledger, "queue": queue}
    if table is not None:
        kwargs["tiers"] = table
        kwargs["admission"] = lib.TierAdmission(table, lib.RateLimiter(table))
        if queue is None:  # tiers need a policy: no waiting at all
            kwargs["queue"] = QueuePolicy(max_depth=0)
    retrier_class = getattr(lib, "Retrier", None)
    if retrier_class is None:
        from solution.retry import Retrier as retrier_class  # an implementation package from before stage 8
    retrier = kwargs["retrier"] = retrier_class(cfg.retry_policy(), seed=cfg.seed)
    path = RequestPath(router, **kwargs)
    return path, health, retrier


def latency_models(config: GatewayConfig) -> dict[str, Any]:
    """Latency models for backends that name a GPU or model preset (the predictive strategy prices with them).

    The same presets, looked up the same way (case-insensitively), as the
    inference servers' (``--gpu``, ``--model``), so the router prices a
    server with the model that server runs.
    """
    return {b.server_id: b.latency_model() for b in config.backends if b.gpu is not None or b.model is not None}
