"""The per-request log line and the metric children, without a socket: the record reaches the handlers at INFO (handed
over without Logger.info), and the cached label children count as labels() did."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from solution.gateway.call import Call
from solution.gateway.metrics import GatewayMetrics
from solution.gateway.requestlog import REQUEST_LOGGER, log_refusal, log_request

pytestmark = pytest.mark.stage8

def call_with(rid: str, tenant: str, tier: str | None, route: list[dict[str, Any]]) -> Call:
    call = Call(rid, tenant, tier, "/v1/completions", False, b"", 1, 1, 0.0, None)  # type: ignore[arg-type]
    call.route.extend(route)
    return call


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def lines() -> Any:
    handler, logger = Lines(), logging.getLogger(REQUEST_LOGGER)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_each_line_reaches_the_loggers_handlers_at_info_and_nothing_when_info_is_off(lines: Lines) -> None:
    call = call_with("gw-1", "t1", "premium", [{"attempt": 1, "server": "s1", "at": 0.5, "waited": 0.0, "previous": None}])
    log_request(call, 200, "delivered", None, retry_after=None, ttft=0.25, e2e=1.0)
    log_refusal("/v1/completions", 401, "unauthorized", None, None, 0.001)
    assert [(r.name, r.levelno) for r in lines.records] == [(REQUEST_LOGGER, logging.INFO)] * 2
    first, second = (json.loads(r.getMessage()) for r in lines.records)
    assert first["id"] == "gw-1" and first["decisions"][0]["server"] == "s1" and first["ttft"] == 0.25
    assert second == {"event": "request", "id": None, "tenant": None, "tier": None, "route": "/v1/completions",
                      "status": 401, "outcome": "unauthorized", "tries": 0, "decisions": [], "e2e": 0.001}  # fmt: skip
    logging.getLogger(REQUEST_LOGGER).setLevel(logging.WARNING)
    log_request(call, 200, "delivered", None, retry_after=None, ttft=0.25, e2e=1.0)
    assert len(lines.records) == 2


def test_cached_metric_children_count_as_labels_did() -> None:
    m = GatewayMetrics()
    for outcome, tier in [("delivered", None), ("delivered", None), ("failed", "premium"), ("delivered", "premium")]:
        m.request(outcome, tier)
    m.latency(None, 0.01, 0.5, 1)
    m.latency(None, None, 0.7, 2)
    m.latency("premium", 0.02, 0.2, 0)
    value = m.registry.get_sample_value
    assert value("lb_gateway_requests_total", {"outcome": "delivered", "tier": "none"}) == 2
    assert value("lb_gateway_requests_total", {"outcome": "failed", "tier": "premium"}) == 1
    assert value("lb_gateway_requests_total", {"outcome": "delivered", "tier": "premium"}) == 1
    assert value("lb_gateway_ttft_seconds_count", {"tier": "none"}) == 1
    assert value("lb_gateway_e2e_seconds_count", {"tier": "none"}) == 2
    assert value("lb_gateway_e2e_seconds_sum", {"tier": "none"}) == pytest.approx(1.2)
    assert value("lb_gateway_tries_count", {"tier": "none"}) == 2 and value("lb_gateway_tries_sum", {"tier": "none"}) == 3
    assert value("lb_gateway_tries_count", {"tier": "premium"}) is None  # 0 tries: not observed
    assert value("lb_gateway_ttft_seconds_count", {"tier": "premium"}) == 1
