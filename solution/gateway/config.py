"""The gateway's configuration: one frozen record, read from JSON (``python -m solution.gateway --config gw.json``).

A configuration names the backends (the inference servers), who may call
(API keys -> tenant and tier), how requests are balanced (the strategy, the
queue, health checks, retries) and the limits that protect the gateway from
its clients (timeouts, sizes)::

    {
      "backends": [{"server_id": "s1", "url": "http://127.0.0.1:8101", "capacity": 8, "gpu_memory_gb": 80}],
      "model_id": "course-model",
      "keys": {"sk-alice": {"tenant": "alice", "tier": "premium"}},
      "tiers": "standard",
      "strategy": "power_of_choices",
      "queue": {"max_depth": 64, "max_wait": 30.0},
      "health": {"interval": 1.0, "timeout": 0.5},
      "retry": {"max_tries": 3, "per_try_timeout": null},
      "timeouts": {"header": 10.0, "body": 30.0, "idle": 75.0, "attempt": 300.0},
      "max_prompt_tokens": 8192,
      "max_body_bytes": 1000000,
      "estimate": "max_tokens",
      "tls": {"cert": "gw.pem", "key": "gw.key"}
    }

Everything is validated once, when the record is built (:meth:`GatewayConfig.from_dict`):
a wrong type raises ``TypeError``, a wrong value ``ValueError``, and the
message names the field.  The API keys never appear in ``repr`` (a logged
configuration leaks no key).

Choices where the design is silent:

* ``tiers``: ``None`` (no tiers: every key's tier must be ``None``),
  ``"standard"`` (:meth:`~solution.tiers.TierTable.standard`), or a list of
  tier rows (``{"name", "queue_class", "reserved_share", "tenant_limit":
  {"requests_per_minute", "tokens_per_minute", "burst_seconds"}, "tier_limit",
  "routing", "may_preempt", "preemptible"}``), so a test can give a tenant
  two requests per minute and see the third one refused with 429.
* With tiers, routing is stage 6's ``TierRouting`` (each tier's rule);
  ``strategy`` applies without tiers only.  Its default is
  ``"power_of_choices"`` (power of two choices by load ratio, as Envoy's
  default ``LEAST_REQUEST``): it runs in the candidate's bundle too (the
  candidate's stage-3 ``PowerOfChoices``), where ``"least_connections"``
  cannot (stage 1's rule is a ``LoadBalancer`` there, which cannot drive the
  gateway's ``Router``; the gateway then refuses it with a ``ValueError``
  that names what to pick instead, see :mod:`solution.gateway.compose`).
* ``retry`` holds stage 8's ``RetryPolicy`` fields (``max_tries``,
  ``per_try_timeout``, ``base``, ``cap``, ``max_retry_after``, ``retry_on``)
  plus ``budget`` (``{"ratio", "min_retries"}`` or ``null`` for none); the
  first two also configure stage 4's ``RetryLedger``.
* ``timeouts.header``: seconds a request's head may take, from the
  connection's opening (first request) or the request's first byte (later
  ones on a kept-alive connection); ``timeouts.idle``: how long a kept-alive
  connection may sit idle (aiohttp's keep-alive timer).  ``timeouts.body``:
  seconds to read a request's body.  ``timeouts.attempt``: the most one
  backend request may take, abandoned ones included (so a hung server
  cannot hold a slot forever).
* A prompt's tokens are its whitespace-separated words (no tokenizer, as
  the inference servers count them); a request's estimate is prompt plus
  ``max_tokens`` (``default_max_tokens`` when absent).
* ``estimate``: where a request's *output* estimate (what the router and
  the queue price it with) comes from.  ``"max_tokens"`` (the default):
  the request's ``max_tokens``, a bound the gateway is sure of.
  ``"header"``: the ``X-Output-Tokens-Estimate`` request header when it is
  there (a whole number of tokens from 1 to ``max_max_tokens``, e.g. a
  client-side length predictor's guess; another value is refused with 400),
  else ``max_tokens``.  The header only steers routing and pricing: the
  server is still asked for ``max_tokens`` and stops there at the latest
  (the course's inference servers generate exactly ``max_tokens``, their
  end of sequence), so ``max_tokens`` is what is served and the header is
  what the gateway believes (see :mod:`solution.gateway.validation`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["Backend", "Principal", "Timeouts", "TlsFiles", "QueueSettings", "GatewayConfig", "ConfigError", "STRATEGIES",
           "ESTIMATE_SOURCES"]

#: Strategy names the configuration accepts -> the class name in the implementation package.
STRATEGIES: Mapping[str, str] = MappingProxyType({
    "least_connections": "LeastConnections",
    "round_robin": "RoundRobin",
    "random": "RandomChoice",
    "power_of_choices": "PowerOfChoices",
    "least_outstanding_tokens": "LeastOutstandingTokens",
    "peak_ewma": "PeakEwma",
    "weighted_response_time": "WeightedResponseTime",
    "predictive": "Predictive",
})  # fmt: skip


#: Where a request's output estimate may come from (``GatewayConfig.estimate``; see the module).
ESTIMATE_SOURCES = ("max_tokens", "header")


class ConfigError(ValueError):
    """The gateway's configuration is invalid; the message names the field and what it allows."""


def _number(value: object, what: str, *, minimum: float = 0.0, strict: bool = True, none_ok: bool = False) -> float | None:
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number{' or null' if none_ok else ''}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise ConfigError(f"{what} must be a finite number {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return float(value)


def _int(value: object, what: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ConfigError(f"{what} must be >= {minimum}, got {value}")
    return value


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{what} must be a non-empty string, got {type(value).__name__} {value!r}")
    return value


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be an object (a mapping), got {type(value).__name__}")
    return value


def _only(data: Mapping[str, Any], allowed: set[str], what: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise ConfigError(f"{what} has unknown field(s) {extra}; allowed: {sorted(allowed)}")


@dataclass(frozen=True)
class Backend:
    """One inference server: its id, base URL (``http://host:port``) and what the router is told about it.

    ``gpu`` / ``model``: optional simulator preset names (``solution.sim.gpus``)
    giving the router the server's latency model (the ``predictive`` strategy
    prices requests with it); without them every server gets the reference model.
    """

    server_id: str
    url: str
    capacity: int = 8
    gpu_memory_gb: int = 80
    version: str = "v0"
    gpu: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        _text(self.server_id, "backends[].server_id")
        url = _text(self.url, "backends[].url")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"backends[].url must start with http:// or https://, got {url!r}")
        object.__setattr__(self, "url", url.rstrip("/"))
        _int(self.capacity, "backends[].capacity")
        _int(self.gpu_memory_gb, "backends[].gpu_memory_gb")
        _text(self.version, "backends[].version")
        for name in ("gpu", "model"):
            if getattr(self, name) is not None:
                _text(getattr(self, name), f"backends[].{name}")
        if self.gpu is not None or self.model is not None:
            self.latency_model()  # an unknown preset fails here, listing the known ones

    def latency_model(self) -> Any:
        """The router's latency model of this server: ``model`` (default ``"7B FP16"``) on ``gpu`` (default
        ``"A100-80GB"``), presets looked up case-insensitively as the inference servers do.  ValueError for an unknown one."""
        from solution.gateway.inference_server import resolve_gpu, resolve_model

        try:
            spec = resolve_model(self.model or "7B FP16")
            return spec.latency_model(resolve_gpu(self.gpu or "A100-80GB"))
        except ValueError as exc:
            raise ConfigError(f"backends[{self.server_id!r}]: {exc}") from None


@dataclass(frozen=True)
class Principal:
    """Who an API key belongs to: its tenant, and its tier (``None``: the tier table's default, or no tiers)."""

    tenant: str
    tier: str | None = None

    def __post_init__(self) -> None:
        _text(self.tenant, "keys[].tenant")
        if self.tier is not None:
            _text(self.tier, "keys[].tier")


@dataclass(frozen=True)
class Timeouts:
    """Seconds: ``header`` (a request head, from the connection's opening or the request's first byte), ``body`` (reading a body),
    ``idle`` (a kept-alive connection between requests), ``attempt`` (one backend request, at most)."""

    header: float = 10.0
    body: float = 30.0
    idle: float = 75.0
    attempt: float = 300.0

    def __post_init__(self) -> None:
        for name in ("header", "body", "idle", "attempt"):
            object.__setattr__(self, name, _number(getattr(self, name), f"timeouts.{name}"))


@dataclass(frozen=True)
class QueueSettings:
    """The path's stage-2 queue: ``max_depth`` waiting requests (per tier with tiers; 0: none wait), ``max_wait`` seconds (``None``: no limit)."""

    max_depth: int = 64
    max_wait: float | None = 30.0

    def __post_init__(self) -> None:
        _int(self.max_depth, "queue.max_depth", minimum=0)
        object.__setattr__(self, "max_wait", _number(self.max_wait, "queue.max_wait", none_ok=True))


@dataclass(frozen=True)
class TlsFiles:
    """TLS termination: a PEM certificate chain and its private key (file paths)."""

    cert: str
    key: str

    def __post_init__(self) -> None:
        _text(self.cert, "tls.cert")
        _text(self.key, "tls.key")


@dataclass(frozen=True)
class GatewayConfig:
    """Everything one gateway process needs; see the module for the JSON shape and the choices.

    Build it with :meth:`from_dict` / :meth:`from_json` (or directly, with
    the typed fields).  Immutable; validated on creation.

    Raises:
        TypeError: a field of the wrong type.
        ConfigError (a ValueError): a value out of range, an unknown field,
            a duplicate server id, a key naming a tier the table lacks.
    """

    backends: tuple[Backend, ...]
    keys: Mapping[str, Principal] = field(default_factory=dict, repr=False)
    model_id: str = "course-model"
    tiers: Any = None
    strategy: str = "power_of_choices"
    queue: QueueSettings | None = field(default_factory=QueueSettings)
    health: Mapping[str, Any] = field(default_factory=lambda: {"interval": 1.0, "timeout": 0.5})
    retry: Mapping[str, Any] = field(default_factory=lambda: {"max_tries": 3})
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_prompt_tokens: int = 8192
    max_body_bytes: int = 1_000_000
    default_max_tokens: int = 16
    max_max_tokens: int = 4096
    estimate: str = "max_tokens"
    tls: TlsFiles | None = None
    admin_key: str | None = field(default=None, repr=False)
    seed: int = 0

    def __post_init__(self) -> None:
        backends = tuple(self.backends)
        if not backends:
            raise ConfigError("backends must list at least one inference server")
        for b in backends:
            if not isinstance(b, Backend):
                raise TypeError(f"backends must hold Backend records, got {type(b).__name__}")
        ids = [b.server_id for b in backends]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"backends repeat a server_id: {ids}; give each server its own id")
        object.__setattr__(self, "backends", backends)
        keys = _mapping(self.keys, "keys")
        for k, p in keys.items():
            _text(k, "an API key")
            if not isinstance(p, Principal):
                raise TypeError(f"keys must map API keys to Principal records, got {type(p).__name__}")
        object.__setattr__(self, "keys", MappingProxyType(dict(keys)))
        _text(self.model_id, "model_id")
        if not isinstance(self.strategy, str) or self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {sorted(STRATEGIES)}, got {self.strategy!r}")
        if self.queue is not None and not isinstance(self.queue, QueueSettings):
            raise TypeError(f"queue must be QueueSettings or None, got {type(self.queue).__name__}")
        object.__setattr__(self, "health", MappingProxyType(dict(_mapping(self.health, "health"))))
        object.__setattr__(self, "retry", MappingProxyType(dict(_mapping(self.retry, "retry"))))
        if not isinstance(self.timeouts, Timeouts):
            raise TypeError(f"timeouts must be Timeouts, got {type(self.timeouts).__name__}")
        for name in ("max_prompt_tokens", "max_body_bytes", "default_max_tokens", "max_max_tokens"):
            _int(getattr(self, name), name)
        if self.default_max_tokens > self.max_max_tokens:
            raise ConfigError(f"default_max_tokens ({self.default_max_tokens}) exceeds max_max_tokens ({self.max_max_tokens})")
        if not isinstance(self.estimate, str) or self.estimate not in ESTIMATE_SOURCES:
            raise ConfigError(f"estimate must be one of {list(ESTIMATE_SOURCES)}, got {self.estimate!r}")
        if self.tls is not None and not isinstance(self.tls, TlsFiles):
            raise TypeError(f"tls must be TlsFiles or None, got {type(self.tls).__name__}")
        if self.admin_key is not None:
            _text(self.admin_key, "admin_key")
        _int(self.seed, "seed", minimum=0)
        # the components' own validation, once, so a bad value fails here and not at the first request
        table = self.tier_table()
        for p in self.keys.values():
            if p.tier is not None:
                if table is None:
                    raise ConfigError(f"a key names tier {p.tier!r} but tiers is null; set tiers or drop the key's tier")
                if p.tier not in table:
                    raise ConfigError(f"a key names tier {p.tier!r}, not in the tier table {list(table.names)}")
        self.health_policy()
        self.ledger_policy()
        self.retry_policy()

    # -- the components' settings -------------------------------------------------------

    def tier_table(self) -> Any:
        """The stage-6 ``TierTable`` (``None`` without tiers).  O(T).

        The reference's class when it is there, else the candidate's (the
        candidate's bundle has no ``solution.tiers``).
        """
        from solution.core.tier_types import RateLimit, ServiceTier, Slo

        try:
            from solution.tiers import TierTable
        except ImportError:  # the candidate's bundle
            from solution.core.impl import load_impl

            TierTable = load_impl("exercises").TierTable  # noqa: N806

        spec = self.tiers
        if spec is None:
            return None
        if spec == "standard":
            return TierTable.standard()
        if isinstance(spec, str) or not isinstance(spec, (list, tuple)):
            raise ConfigError(f'tiers must be null, "standard" or a list of tier rows, got {spec!r}')
        rows = []
        for i, row in enumerate(spec):
            row = dict(_mapping(row, f"tiers[{i}]"))
            default = row.pop("default", False)
            for name in ("tier_limit", "tenant_limit"):
                if row.get(name) is not None:
                    row[name] = RateLimit(**_mapping(row[name], f"tiers[{i}].{name}"))
            if row.get("slo") is not None:
                row["slo"] = Slo(**_mapping(row["slo"], f"tiers[{i}].slo"))
            try:
                rows.append((ServiceTier(**row), default))
            except TypeError as exc:
                raise TypeError(f"tiers[{i}]: {exc}") from None
        default_names = [r.name for r, d in rows if d]
        if len(default_names) > 1:
            raise ConfigError(f"more than one tier is marked default: {default_names}")
        return TierTable([r for r, _ in rows], default=default_names[0] if default_names else None)

    def health_policy(self) -> Any:
        """The stage-4 ``HealthPolicy`` from ``health`` (its field names)."""
        from solution.core.health_types import HealthPolicy

        try:
            return HealthPolicy(**self.health)
        except TypeError as exc:
            raise TypeError(f"health: {exc}") from None

    def ledger_policy(self) -> Any:
        """The policy of the path's stage-4 RetryLedger: :meth:`retry_policy` (one ``RetryPolicy`` class for stages 4
        and 8; the ledger reads its ``max_tries`` and ``per_try_timeout``)."""
        return self.retry_policy()

    def retry_policy(self) -> Any:
        """Stage 8's ``RetryPolicy`` (``solution.core.retry_types``) from ``retry``, with its ``RetryBudget``."""
        from solution.core import retry_types as retry_module

        fields = dict(self.retry)
        budget = fields.pop("budget", {})
        if "retry_on" in fields:
            fields["retry_on"] = frozenset(fields["retry_on"])
        try:
            b = None if budget is None else retry_module.RetryBudget(**_mapping(budget, "retry.budget"))
            return retry_module.RetryPolicy(**fields, budget=b)
        except TypeError as exc:
            raise TypeError(f"retry: {exc}") from None

    # -- reading ------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GatewayConfig:
        """Build from a JSON-shaped mapping (see the module).  Raises TypeError / ConfigError."""
        data = _mapping(data, "the configuration")
        allowed = {f for f in cls.__dataclass_fields__}
        _only(data, allowed, "the configuration")
        if "backends" not in data:
            raise ConfigError("the configuration needs backends: a list of {server_id, url, capacity, gpu_memory_gb}")
        raw = data["backends"]
        if not isinstance(raw, (list, tuple)):
            raise TypeError(f"backends must be a list, got {type(raw).__name__}")
        kw: dict[str, Any] = dict(data)
        backends = []
        for i, b in enumerate(raw):
            b = _mapping(b, f"backends[{i}]")
            _only(b, set(Backend.__dataclass_fields__), f"backends[{i}]")
            backends.append(Backend(**b))
        kw["backends"] = tuple(backends)
        keys = {}
        for k, p in _mapping(data.get("keys", {}), "keys").items():
            p = _mapping(p, "keys[...]")  # the key itself is never put in a message
            _only(p, {"tenant", "tier"}, "a key's record")
            keys[k] = Principal(**p)
        kw["keys"] = keys
        if data.get("queue", {}) is not None:
            q = _mapping(data.get("queue", {}), "queue")
            _only(q, {"max_depth", "max_wait"}, "queue")
            kw["queue"] = QueueSettings(**q)
        if "timeouts" in data:
            t = _mapping(data["timeouts"], "timeouts")
            _only(t, {"header", "body", "idle", "attempt"}, "timeouts")
            kw["timeouts"] = Timeouts(**t)
        if data.get("tls") is not None:
            t = _mapping(data["tls"], "tls")
            _only(t, {"cert", "key"}, "tls")
            kw["tls"] = TlsFiles(**t)
        return cls(**kw)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> GatewayConfig:
        """Read a JSON file (see the module).  Raises OSError, ConfigError (bad JSON too), TypeError."""
        with open(path, encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}: not valid JSON: {exc}") from None
        return cls.from_dict(data)
