"""The per-request log line and the metric children, without a socket: the cheap builders give what the slow ones gave
(the hand-built line is exactly what json.dumps gave; the cached label children count as labels() did)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.gateway.call import Call
from solution.gateway.metrics import GatewayMetrics
from solution.gateway.requestlog import REQUEST_LOGGER, log_refusal, log_request, request_line

pytestmark = pytest.mark.stage8

text = st.text(max_size=12)  # any code point: quotes, backslashes, control characters, non-ASCII, surrogates
maybe_text = st.none() | text
number = st.floats(allow_nan=True, allow_infinity=True)
decision = st.fixed_dictionaries({"attempt": st.integers(1, 9), "server": text, "at": number, "waited": number,
                                  "previous": maybe_text})  # fmt: skip


def call_with(rid: str, tenant: str, tier: str | None, route: list[dict[str, Any]], **kw: Any) -> Call:
    defaults: dict[str, Any] = {"path_name": "/v1/completions", "stream": False, "payload": b"", "prompt_tokens": 1,
                                "max_tokens": 1, "arrived": 0.0, "request": None}  # fmt: skip
    defaults.update(kw)
    call = Call(rid, tenant, tier, request=defaults.pop("request"), **defaults)
    call.route.extend(route)
    return call


def record_of(call: Call, status: int, outcome: str, reason: str | None, retry_after: int | None, ttft: float | None,
              e2e: float) -> dict[str, Any]:  # fmt: skip
    """The record as the gateway logged it before the line was built by hand (json.dumps of this dict)."""
    return {"event": "request", "id": call.rid, "tenant": call.tenant, "tier": call.tier, "route": call.path_name,
            "stream": call.stream, "prompt_tokens": call.prompt_tokens, "max_tokens": call.max_tokens,
            "status": status, "outcome": outcome, "reason": reason, "queued": call.queued,
            "tries": len(call.route), "decisions": call.route, "retry_after": retry_after,
            "ttft": None if ttft is None else round(ttft, 6), "e2e": round(e2e, 6)}  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(rid=text, tenant=text, tier=maybe_text, route=st.lists(decision, max_size=3), path_name=text, stream=st.booleans(),
       prompt_tokens=st.integers(0, 10**9), status=st.integers(100, 599), outcome=text, reason=maybe_text,
       queued=st.booleans(), retry_after=st.none() | st.integers(0, 10**6), ttft=st.none() | number,
       e2e=number)  # fmt: skip
def test_the_line_is_exactly_json_dumps_of_the_record(rid: str, tenant: str, tier: str | None, route: list[dict[str, Any]],
                                                        path_name: str, stream: bool, prompt_tokens: int, status: int,
                                                        outcome: str, reason: str | None, queued: bool, retry_after: int | None,
                                                        ttft: float | None, e2e: float) -> None:  # fmt: skip
    call = call_with(rid, tenant, tier, route, path_name=path_name, stream=stream, prompt_tokens=prompt_tokens)
    call.queued = queued
    line = request_line(call, status, outcome, reason, retry_after=retry_after, ttft=ttft, e2e=e2e)
    assert line == json.dumps(record_of(call, status, outcome, reason, retry_after, ttft, e2e))


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
