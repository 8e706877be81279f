"""The gateway's Prometheus metrics, in its own ``CollectorRegistry`` (two gateways in one process never share one).

Counted as requests happen (``lb_gateway_`` prefix):

* ``requests_total{outcome, tier}``: every request the gateway answered, by
  outcome (:data:`OUTCOMES`) and tier (``"none"`` before the key is known).
* ``ttft_seconds{tier}`` / ``e2e_seconds{tier}``: time to the first byte of
  the answer sent to the client (the first SSE chunk of a stream; the whole
  answer otherwise) and to its end, for delivered (200) answers.
* ``tries{tier}``: backend attempts per delivered answer.
* ``retries_total``: re-sends (an attempt after the first, on another server
  or the same), ``discarded_total``: late answers of abandoned attempts.

Read from the request path when Prometheus scrapes (:class:`PathCollector`,
so nothing is updated per request): ``queue_depth`` (requests waiting),
``server_in_flight{server}`` (attempts running there, abandoned ones
included), ``server_health{server, state}`` (1 for the server's current
health state), ``server_weight{server}``, and the path's own counters
``path_events_total{event}`` (``stats()``: submitted, re_sent, ...), with
``retry_budget_exhausted_total`` and ``retry_decisions_total{reason}`` (the
retrier's ``stats()["by_reason"]``) when the path has a retrier (stage 8).
"""

from __future__ import annotations

from collections import Counter as _Tally
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["GatewayMetrics", "PathCollector", "OUTCOMES", "CONTENT_TYPE"]

#: Outcome labels of ``lb_gateway_requests_total``.
OUTCOMES: tuple[str, ...] = (
    "delivered",  # 200 (streamed or not) or a backend's own 4xx passed through
    "failed",  # the path gave up: 502/504, or a stream cut after tokens
    "rate_limited",  # 429 from the tier's rate limits
    "queue_full",  # 503: the queue is full / no server and no queue
    "timed_out",  # 503: waited max_wait in the queue
    "cancelled",  # the client went away
    "unauthorized",  # 401
    "bad_request",  # 400 (malformed JSON, missing or wrong fields)
    "not_found",  # 404 (unknown model or route)
    "too_large",  # 413 (body or prompt over the limit, or over a rate-limit bucket)
    "client_timeout",  # 408 (the body trickled in too slowly)
)

#: The Content-Type of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_HEALTH_STATES = ("healthy", "degraded", "down", "recovering", "lost", "draining", "gone")


class PathCollector(Collector):
    """Reads the request path when scraped: queue depth, per-server load, health state and weight, the path's counters.

    ``state`` is a zero-argument callable returning ``(path, health, backends, retrier)``
    (the gateway's current objects; ``retrier`` may be ``None``).  O(S + R) per scrape for S servers and
    R requests in flight (``path.in_flight()`` is a copy), never per request.
    """

    def __init__(self, state: Callable[[], tuple[Any, Any, tuple[str, ...], Any]]) -> None:
        self._state = state

    def describe(self) -> list[Metric]:
        return []  # collected lazily: the registry must not call collect() at registration

    def collect(self) -> Iterator[Metric]:
        path, health, servers, retrier = self._state()
        if path is None:
            return
        stats = path.stats()
        depth = GaugeMetricFamily("lb_gateway_queue_depth", "Requests waiting in the gateway's queue (and parked)")
        depth.add_metric([], stats.get("waiting", 0))
        yield depth
        running = _Tally(path.in_flight().values())
        for sid, rids in path.abandoned().items():
            running[sid] += len(rids)
        load = GaugeMetricFamily("lb_gateway_server_in_flight", "Attempts running on each server (abandoned ones included)",
                                 labels=["server"])  # fmt: skip
        weight = GaugeMetricFamily("lb_gateway_server_weight", "Each server's routing weight (health, slow start; 0 = no traffic)",
                                   labels=["server"])  # fmt: skip
        state = GaugeMetricFamily("lb_gateway_server_health", "1 for each server's current health state", labels=["server", "state"])
        router_stats = path.router.get_server_stats()
        for sid in servers:
            load.add_metric([sid], running.get(sid, 0))
            now = _server_state(path, health, sid, router_stats)
            for s in _HEALTH_STATES:
                state.add_metric([sid, s], 1.0 if s == now else 0.0)
            weight.add_metric([sid], float(router_stats.get(sid, {}).get("weight", 0.0)) if sid in router_stats else 0.0)
        yield load
        yield weight
        yield state
        events = CounterMetricFamily("lb_gateway_path_events", "The request path's counters (RequestPath.stats())", labels=["event"])
        for key in ("submitted", "dispatched", "re_sent", "delivered", "failed", "rejected", "timed_out", "cancelled",
                    "discarded", "lost_attempts", "drained", "drain_forced", "retried"):  # fmt: skip
            if key in stats:
                events.add_metric([key], stats[key])
        yield events
        if "retry_budget_exhausted" in stats:
            budget = CounterMetricFamily("lb_gateway_retry_budget_exhausted", "Retries refused because the retry budget was spent")
            budget.add_metric([], stats["retry_budget_exhausted"])
            yield budget
        by_reason = retrier.stats().get("by_reason", {}) if retrier is not None else {}
        if by_reason:
            decisions = CounterMetricFamily("lb_gateway_retry_decisions", "The retrier's decisions after failed tries, by reason",
                                            labels=["reason"])  # fmt: skip
            for reason, n in sorted(by_reason.items()):
                decisions.add_metric([reason], n)
            yield decisions


def _server_state(path: Any, health: Any, sid: str, router_stats: dict[str, Any]) -> str:
    """One label for a server: ``gone`` (drained away), ``draining``, ``lost`` (connections broke, not seen back), else its health state."""
    if sid not in router_stats:
        return "gone"  # drained away: no longer in the router
    if path.server_state(sid) == "draining":
        return "draining"
    if sid in getattr(path, "_lost", ()):  # the path's private set of lost servers: read-only here
        return "lost"
    if health is None:
        return "healthy"
    try:
        return str(health.state(sid))
    except KeyError:
        return "draining"


class GatewayMetrics:
    """The counters and histograms the gateway updates per request, in a fresh registry.

    ``state`` is passed to :class:`PathCollector`.  Every method is O(1): each label child is looked up once
    (by outcome and tier, by tier) and kept, so a request costs an ``inc`` and up to three ``observe`` calls.
    """

    def __init__(self, state: Callable[[], tuple[Any, Any, tuple[str, ...], Any]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter("lb_gateway_requests", "Requests answered by the gateway, by outcome and tier",
                                ["outcome", "tier"], registry=r)  # fmt: skip
        self.ttft = Histogram("lb_gateway_ttft_seconds", "Time to the first byte of the answer sent to the client",
                              ["tier"], buckets=_LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.e2e = Histogram("lb_gateway_e2e_seconds", "Time from the request's arrival to the end of its answer",
                             ["tier"], buckets=_LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.tries = Histogram("lb_gateway_tries", "Backend attempts per request that reached a server", ["tier"],
                               buckets=(1, 2, 3, 4, 5, 8), registry=r)  # fmt: skip
        self.retries = Counter("lb_gateway_retries", "Re-sends: attempts after a request's first", registry=r)
        self.discarded = Counter("lb_gateway_discarded", "Late answers of abandoned attempts, dropped", registry=r)
        # label children by their label values, looked up once: ``labels()`` validates and locks on every call (a kept
        # child's ``inc()`` costs x0.12 of ``labels(...).inc()``: bench_gateway.py --parts); the children are the same objects
        self._counted: dict[tuple[str, str | None], Any] = {}
        self._ttft: dict[str | None, Any] = {}
        self._e2e: dict[str | None, Any] = {}
        self._tries: dict[str | None, Any] = {}
        if state is not None:
            r.register(PathCollector(state))

    def request(self, outcome: str, tier: str | None) -> None:
        """Count one answered request."""
        key = (outcome, tier)
        child = self._counted.get(key)
        if child is None:
            child = self._counted[key] = self.requests.labels(outcome=outcome, tier=tier or "none")
        child.inc()

    def latency(self, tier: str | None, ttft: float | None, e2e: float, tries: int) -> None:
        """Record a delivered request's latencies and tries (``ttft`` None: nothing reached the client before the end)."""
        if ttft is not None:
            (self._ttft.get(tier) or self._child(self._ttft, self.ttft, tier)).observe(ttft)
        (self._e2e.get(tier) or self._child(self._e2e, self.e2e, tier)).observe(e2e)
        if tries:
            (self._tries.get(tier) or self._child(self._tries, self.tries, tier)).observe(tries)

    @staticmethod
    def _child(cache: dict[str | None, Any], histogram: Histogram, tier: str | None) -> Any:
        """The histogram's child for ``tier``, made at its first observation (as ``labels()`` made it) and kept."""
        child = cache[tier] = histogram.labels(tier=tier or "none")
        return child

    def exposition(self) -> bytes:
        """The text exposition of every metric (what ``GET /metrics`` answers)."""
        return generate_latest(self.registry)
