"""The course's gateway over HTTP, in front of stub servers the test controls (tests/gateway/stub_backend.py).

Every earlier outcome, on the wire: 200 (streamed as it comes, and not),
429 with an integer ``Retry-After`` (a tier's rate limit), 503 with one (the
queue full), re-route on a crash (connection reset -> ``server_lost``) and
on a 5xx or a hung server (per-try timeout), drain; every 4xx that costs no
server time; the key never in a log; slow clients cut off; metrics.  The
gateway runs in its own event loop in a background thread (as it would in
its own process), so the test talks to it with ordinary clients; nothing
waits by sleeping (``wait_until`` polls with a timeout).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from solution.gateway.app import BackgroundGateway, Gateway
from solution.gateway.config import GatewayConfig
from tests.gateway.stub_backend import StubBackend, start_stubs, wait_until

pytestmark = pytest.mark.stage8

KEY = "sk-test-alice-0123456789"
OTHER_KEY = "sk-test-bob-9876543210"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "course-model"


class LogCapture(logging.Handler):
    """Every log record of the process, formatted (thread-safe: logging locks the handler)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")

    def requests(self) -> list[dict[str, Any]]:
        prefix = "solution.gateway.requests "
        return [json.loads(line[len(prefix):]) for line in list(self.lines) if line.startswith(prefix)]


class LiveGateway(BackgroundGateway):
    """The gateway under test (solution.gateway.app.BackgroundGateway) built from a JSON-shaped config."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = GatewayConfig.from_dict(config)
        super().__init__(self.config)

    def read(self, fn: Callable[[Gateway], Any]) -> Any:
        """Run ``fn(gateway)`` on the gateway's loop (the path is not thread-safe) and return its value."""
        return self.call(fn)


def config_for(stubs: list[StubBackend], **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "backends": [{"server_id": s.server_id, "url": s.url, "capacity": 2} for s in stubs],
        "strategy": "least_connections",  # deterministic: ties go to the first server added (tests below count on it)
        "keys": {KEY: {"tenant": "alice"}, OTHER_KEY: {"tenant": "bob"}},
        "queue": {"max_depth": 4, "max_wait": 10.0},
        "health": {"interval": 0.5, "timeout": 0.4},
        "retry": {"max_tries": 3, "base": 0.01, "cap": 0.05},
        "timeouts": {"header": 2.0, "body": 2.0, "idle": 10.0, "attempt": 20.0},
        "max_prompt_tokens": 50,
        "max_body_bytes": 4096,
        "admin_key": "admin-secret-42",
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture
def stubs() -> Iterator[list[StubBackend]]:
    started = start_stubs(["s1", "s2"], token_delay=0.0)
    try:
        yield started
    finally:
        for s in started:
            s.release()
            s.stop()


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(old)


@contextmanager
def live(config: dict[str, Any]) -> Iterator[LiveGateway]:
    gw = LiveGateway(config)
    try:
        yield gw
    finally:
        gw.close()
    assert not gw.loop_errors, f"the gateway's event loop saw unhandled errors: {gw.loop_errors}"


@pytest.fixture
def gateway(stubs: list[StubBackend]) -> Iterator[LiveGateway]:
    with live(config_for(stubs)) as gw:
        yield gw


#: One client for the module's requests (thread-safe; a new httpx client per request would build a TLS context each time).
_client = httpx.Client(limits=httpx.Limits(max_connections=32))


def completion(url: str, *, prompt: str = "hello there world", max_tokens: int = 3, stream: bool = False,
               headers: dict[str, str] | None = None, timeout: float = 10.0) -> httpx.Response:  # fmt: skip
    body = {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "stream": stream}
    return _client.post(url + "/v1/completions", json=body, headers=AUTH if headers is None else headers, timeout=timeout)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 if absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == (f"{name}{{{want}}}" if want else name):
            return float(value)
    return 0.0


# -- 200 ---------------------------------------------------------------------------------------------


def test_a_request_is_answered_200_by_a_server_and_logged_once_with_its_route(gateway: LiveGateway, logs: LogCapture) -> None:
    r = completion(gateway.url, max_tokens=4)
    assert r.status_code == 200
    assert r.json()["usage"] == {"prompt_tokens": 3, "completion_tokens": 4}
    assert r.headers["X-Request-Id"].startswith("gw-")
    wait_until(lambda: len(logs.requests()) == 1, what="the request's log line")
    (line,) = logs.requests()
    assert line["status"] == 200 and line["outcome"] == "delivered" and line["tenant"] == "alice"
    assert line["tries"] == 1 and line["decisions"][0]["server"] in ("s1", "s2") and line["decisions"][0]["attempt"] == 1
    assert line["prompt_tokens"] == 3 and line["max_tokens"] == 4 and line["e2e"] >= 0


def test_a_stream_is_passed_through_chunk_by_chunk_as_the_server_sends_it(stubs: list[StubBackend]) -> None:
    for s in stubs:
        s.token_delay = 0.05
    with live(config_for(stubs)) as gw:
        arrivals: list[tuple[float, str]] = []
        start = time.monotonic()
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "stream": True}
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=10) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line:
                    arrivals.append((time.monotonic() - start, line))
    events = [text for _, text in arrivals]
    assert events[-1] == "data: [DONE]" and len(events) == 7
    first, last = arrivals[0][0], arrivals[-1][0]
    # six tokens 50 ms apart: the first reaches the client ~250 ms before the end, not with it
    assert last - first > 0.15, f"chunks were buffered: first at {first:.3f} s, last at {last:.3f} s"


# -- 401: no valid key, no server time ---------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer sk-wrong"},
    {"Authorization": f"Basic {KEY}"},
    {"Authorization": f"Bearer {KEY}x"},
    {"Authorization": f"Bearer {KEY[:-1]}"},
    {"Authorization": "Bearer"},
], ids=["missing", "unknown", "basic-scheme", "longer", "shorter", "empty"])  # fmt: skip
def test_a_request_without_a_valid_key_gets_401_and_never_reaches_a_server(gateway: LiveGateway, stubs: list[StubBackend],
                                                                          headers: dict[str, str]) -> None:  # fmt: skip
    r = completion(gateway.url, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert sum(s.served for s in stubs) == 0
    assert gateway.read(lambda g: g.path.stats()["submitted"]) == 0


def test_the_key_is_never_logged(stubs: list[StubBackend], logs: LogCapture) -> None:
    with live(config_for(stubs)) as gw:
        assert completion(gw.url).status_code == 200
        assert completion(gw.url, headers={"Authorization": f"Bearer {KEY}-typo"}).status_code == 401
        assert httpx.post(gw.url + "/v1/completions", content=b"{", headers=AUTH).status_code == 400
        assert completion(gw.url, stream=True).status_code == 200
        wait_until(lambda: len(logs.requests()) == 4, what="four log lines")
        assert KEY not in repr(gw.config) and KEY not in repr(gw.gateway.keys)
    text = "\n".join(logs.lines)
    assert "alice" in text  # the tenant is logged ...
    assert KEY not in text and KEY[:12] not in text and "admin-secret-42" not in text  # ... its key never


# -- 400 / 404 / 413 / 405: bad input costs no server time -----------------------------------------------------


@pytest.mark.parametrize("route, body, status", [
    ("/v1/completions", b"{not json", 400),
    ("/v1/completions", b"[1, 2]", 400),
    ("/v1/completions", b"\xff\xfe", 400),
    ("/v1/completions", json.dumps({"prompt": "hi"}).encode(), 400),
    ("/v1/completions", json.dumps({"model": MODEL}).encode(), 400),
    ("/v1/completions", json.dumps({"model": MODEL, "prompt": 5}).encode(), 400),
    ("/v1/completions", json.dumps({"model": MODEL, "prompt": "hi", "max_tokens": 0}).encode(), 400),
    ("/v1/completions", json.dumps({"model": MODEL, "prompt": "hi", "max_tokens": "3"}).encode(), 400),
    ("/v1/completions", json.dumps({"model": MODEL, "prompt": "hi", "max_tokens": True}).encode(), 400),
    ("/v1/completions", json.dumps({"model": MODEL, "prompt": "hi", "stream": "yes"}).encode(), 400),
    ("/v1/chat/completions", json.dumps({"model": MODEL, "messages": []}).encode(), 400),
    ("/v1/chat/completions", json.dumps({"model": MODEL, "messages": [{"role": "user"}]}).encode(), 400),
    ("/v1/chat/completions", json.dumps({"model": MODEL, "prompt": "hi"}).encode(), 400),
    ("/v1/completions", json.dumps({"model": "gpt-9", "prompt": "hi"}).encode(), 404),
    ("/v1/chat/completions", json.dumps({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}).encode(), 404),
    ("/v1/completions", json.dumps({"model": MODEL, "prompt": "word " * 51}).encode(), 413),
    ("/v1/completions", json.dumps({"model": MODEL, "prompt": "x" * 5000}).encode(), 413),
], ids=["not-json", "array", "not-utf8", "no-model", "no-prompt", "prompt-int", "max-tokens-0", "max-tokens-str",
        "max-tokens-bool", "stream-str", "no-messages", "message-no-content", "chat-with-prompt", "unknown-model",
        "unknown-model-chat", "prompt-too-long", "body-too-large"])  # fmt: skip
def test_bad_input_gets_a_clear_4xx_and_costs_no_server_time(gateway: LiveGateway, stubs: list[StubBackend], route: str,
                                                            body: bytes, status: int) -> None:  # fmt: skip
    r = httpx.post(gateway.url + route, content=body, headers={**AUTH, "Content-Type": "application/json"}, timeout=10)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]
    assert sum(s.served for s in stubs) == 0
    assert gateway.read(lambda g: g.path.stats()["submitted"]) == 0


def test_unknown_routes_and_methods_are_404_and_405(gateway: LiveGateway) -> None:
    assert httpx.post(gateway.url + "/v1/embeddings", json={}, headers=AUTH).status_code == 404
    r = httpx.get(gateway.url + "/v1/completions", headers=AUTH)
    assert r.status_code == 405 and "POST" in r.headers["Allow"]


def test_models_health_and_metrics_endpoints(gateway: LiveGateway) -> None:
    r = httpx.get(gateway.url + "/v1/models", headers=AUTH)
    assert r.status_code == 200 and [m["id"] for m in r.json()["data"]] == [MODEL]
    assert httpx.get(gateway.url + "/v1/models").status_code == 401
    h = httpx.get(gateway.url + "/health").json()
    assert h == {"status": "ok", "servers": 2, "ready": 2}
    assert completion(gateway.url).status_code == 200
    assert completion(gateway.url, headers={}).status_code == 401
    text = httpx.get(gateway.url + "/metrics").text
    assert metric(text, "lb_gateway_requests_total", outcome="delivered", tier="none") == 1
    assert metric(text, "lb_gateway_requests_total", outcome="unauthorized", tier="none") == 2  # /v1/models too
    assert metric(text, "lb_gateway_e2e_seconds_count", tier="none") == 1
    assert metric(text, "lb_gateway_ttft_seconds_count", tier="none") == 1
    assert metric(text, "lb_gateway_server_health", server="s1", state="healthy") == 1
    assert metric(text, "lb_gateway_server_in_flight", server="s1") == 0
    assert metric(text, "lb_gateway_queue_depth") == 0
    assert metric(text, "lb_gateway_path_events_total", event="delivered") == 1
    assert "lb_gateway_retries_total" in text


# -- 429 and 503 with a real Retry-After ---------------------------------------------------------------------------


def test_a_tenant_over_its_rate_limit_gets_429_with_an_integer_retry_after(stubs: list[StubBackend]) -> None:
    tiers = [{"name": "free", "queue_class": 1, "tenant_limit": {"requests_per_minute": 2, "tokens_per_minute": None}},
             {"name": "premium", "queue_class": 2}]  # fmt: skip
    keys = {KEY: {"tenant": "alice", "tier": "free"}, OTHER_KEY: {"tenant": "bob", "tier": "free"}}
    with live(config_for(stubs, tiers=tiers, keys=keys)) as gw:
        assert [completion(gw.url).status_code for _ in range(2)] == [200, 200]
        r = completion(gw.url)
        assert r.status_code == 429
        # a bucket of 2 per minute refills one request in 30 s: Retry-After = ceil(wait), whole seconds
        assert r.headers["Retry-After"].isdigit() and 29 <= int(r.headers["Retry-After"]) <= 30
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        # per tenant: bob is not limited by alice's traffic
        assert completion(gw.url, headers={"Authorization": f"Bearer {OTHER_KEY}"}).status_code == 200
        text = httpx.get(gw.url + "/metrics").text
        assert metric(text, "lb_gateway_requests_total", outcome="rate_limited", tier="free") == 1
        assert sum(s.served for s in stubs) == 3


def test_503_with_retry_after_when_the_queue_is_full_and_the_queued_ones_are_served_after(stubs: list[StubBackend]) -> None:
    for s in stubs:
        s.hold()
    cfg = config_for(stubs, queue={"max_depth": 1, "max_wait": 10.0})
    cfg["backends"] = [{"server_id": s.server_id, "url": s.url, "capacity": 1} for s in stubs]
    with live(cfg) as gw, ThreadPoolExecutor(4) as pool:
        running = [pool.submit(completion, gw.url) for _ in range(2)]
        wait_until(lambda: sum(s.in_flight for s in stubs) == 2, what="both servers busy")
        queued = pool.submit(completion, gw.url)
        wait_until(lambda: gw.read(lambda g: g.path.stats()["waiting"]) == 1, what="one request queued")
        r = completion(gw.url)
        assert r.status_code == 503
        assert r.headers["Retry-After"].isdigit() and int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["code"] == "overloaded"
        assert metric(httpx.get(gw.url + "/metrics").text, "lb_gateway_queue_depth") == 1
        for s in stubs:
            s.release()
        assert [f.result(10).status_code for f in running + [queued]] == [200, 200, 200]


# -- re-route: crash, 5xx, hang ------------------------------------------------------------------------------------


def test_a_crash_before_the_first_token_is_re_routed_to_the_other_server(stubs: list[StubBackend], logs: LogCapture) -> None:
    s1, s2 = stubs
    s1.hold()
    with live(config_for(stubs)) as gw, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(completion, gw.url)
        wait_until(lambda: s1.in_flight == 1, what="the request on s1")
        s1.crash()
        r = pending.result(10)
        assert r.status_code == 200
        wait_until(lambda: len(logs.requests()) == 1, what="the log line")
        (line,) = logs.requests()
        assert [d["server"] for d in line["decisions"]] == ["s1", "s2"] and line["tries"] == 2
        assert line["decisions"][1]["previous"] == "s1"
        # the next request tries s1 (least connections, added first), is refused there (s1 is lost now) and goes to s2
        assert completion(gw.url).status_code == 200 and s2.served == 2
        assert gw.read(lambda g: g.path.server_state("s1")) == "starting"  # lost: nothing until a probe answers
        assert completion(gw.url).status_code == 200 and s2.served == 3


def test_a_stream_whose_server_crashes_before_its_first_token_is_re_routed_into_one_clean_stream(
        stubs: list[StubBackend]) -> None:  # fmt: skip
    s1, _ = stubs
    s1.hold()  # the stub sends the stream's headers, then waits: no token yet
    with live(config_for(stubs)) as gw, ThreadPoolExecutor(1) as pool:
        def stream() -> list[str]:
            with httpx.stream("POST", gw.url + "/v1/completions", headers=AUTH, timeout=10,
                              json={"model": MODEL, "prompt": "a b", "max_tokens": 3, "stream": True}) as r:  # fmt: skip
                assert r.status_code == 200  # the client saw no status until the first chunk
                assert r.headers["X-Server-Id"] == "s2"
                return [line for line in r.iter_lines() if line]

        pending = pool.submit(stream)
        wait_until(lambda: s1.in_flight == 1, what="the stream on s1")
        s1.crash()  # before any token: re-sent to s2, which answers the whole stream
        lines = pending.result(10)
        assert lines[-1] == "data: [DONE]" and len(lines) == 4


def test_a_stream_cut_after_its_first_token_is_not_retried_and_ends_with_an_error_event(stubs: list[StubBackend]) -> None:
    s1, s2 = stubs
    s1.token_delay = 0.1
    with live(config_for(stubs)) as gw:
        lines: list[str] = []
        with httpx.stream("POST", gw.url + "/v1/completions", headers=AUTH, timeout=10,
                          json={"model": MODEL, "prompt": "a b", "max_tokens": 50, "stream": True}) as r:  # fmt: skip
            assert r.status_code == 200
            for line in r.iter_lines():
                if not line:
                    continue
                lines.append(line)
                if len(lines) == 2:
                    s1.crash()  # tokens already reached the client: a re-send would repeat them
        assert lines[0].startswith("data: {") and "[DONE]" not in lines[-1]
        assert json.loads(lines[-1].removeprefix("data: "))["error"]["type"] == "server_error"
        assert s2.served == 0
        wait_until(lambda: gw.read(lambda g: g.path.stats()["failed"]) == 1, what="the request failed")
        text = httpx.get(gw.url + "/metrics").text
        assert metric(text, "lb_gateway_requests_total", outcome="failed", tier="none") == 1


def test_when_every_server_is_down_a_request_waits_in_the_queue_then_gets_503(stubs: list[StubBackend], logs: LogCapture) -> None:
    with live(config_for(stubs, queue={"max_depth": 4, "max_wait": 0.5})) as gw:
        for s in stubs:
            s.crash()
        start = time.monotonic()
        r = completion(gw.url)  # s1 refuses (lost), s2 refuses (lost): no server left, it waits for one to come back
        assert r.status_code == 503 and r.headers["Retry-After"].isdigit()
        assert 0.4 < time.monotonic() - start < 3.0
        wait_until(lambda: logs.requests(), what="the log line")
        line = logs.requests()[0]
        assert line["outcome"] == "timed_out" and [d["server"] for d in line["decisions"]] == ["s1", "s2"] and line["queued"]


def test_a_5xx_answer_is_retried_on_another_server(stubs: list[StubBackend], logs: LogCapture) -> None:
    s1, s2 = stubs
    s1.status = 500
    with live(config_for(stubs)) as gw:
        r = completion(gw.url)
        assert r.status_code == 200
        wait_until(lambda: len(logs.requests()) == 1, what="the log line")
        assert [d["server"] for d in logs.requests()[0]["decisions"]] == ["s1", "s2"]
        assert metric(httpx.get(gw.url + "/metrics").text, "lb_gateway_retries_total") == 1


def test_when_every_server_fails_the_client_gets_the_servers_status_after_max_tries(stubs: list[StubBackend]) -> None:
    for s in stubs:
        s.status = 503
        s.retry_after = "1"
    with live(config_for(stubs, retry={"max_tries": 2, "base": 0.01, "cap": 0.02})) as gw:
        r = completion(gw.url)
        assert r.status_code == 503
        assert sum(s.served for s in stubs) == 2  # two tries, no more


def test_a_hung_server_is_cut_off_by_the_per_try_timeout_and_the_request_re_sent(stubs: list[StubBackend]) -> None:
    s1, s2 = stubs
    s1.hold()  # accepts, never answers
    with live(config_for(stubs, retry={"max_tries": 2, "per_try_timeout": 0.3, "base": 0.01, "cap": 0.02})) as gw:
        start = time.monotonic()
        r = completion(gw.url)
        assert r.status_code == 200 and s2.served == 1
        assert 0.25 < time.monotonic() - start < 5.0


def test_a_backend_4xx_is_the_clients_error_passed_through_not_retried(stubs: list[StubBackend]) -> None:
    s1, s2 = stubs
    s1.status = 400
    with live(config_for(stubs)) as gw:
        r = completion(gw.url)
        assert r.status_code == 400 and r.json()["error"]["message"] == "stub error"
        assert s2.served == 0
        h = gw.read(lambda g: g.path.server_state("s1"))
        assert h == "ready"  # a client's error is not held against the server


# -- drain ----------------------------------------------------------------------------------------------------------


def test_drain_lets_the_running_request_finish_and_sends_new_ones_elsewhere(stubs: list[StubBackend]) -> None:
    s1, s2 = stubs
    s1.hold()
    admin = {"Authorization": "Bearer admin-secret-42"}
    with live(config_for(stubs)) as gw, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(completion, gw.url)
        wait_until(lambda: s1.in_flight == 1, what="the request on s1")
        assert httpx.post(gw.url + "/admin/drain", json={"server_id": "s1"}).status_code == 401
        r = httpx.post(gw.url + "/admin/drain", json={"server_id": "s1", "timeout": 30}, headers=admin)
        assert r.status_code == 200 and r.json()["state"] == "draining"
        assert httpx.post(gw.url + "/admin/drain", json={"server_id": "nope"}, headers=admin).status_code == 404
        assert [completion(gw.url).status_code for _ in range(3)] == [200] * 3
        assert s2.served == 3 and s1.served == 0
        s1.release()
        assert pending.result(10).status_code == 200
        wait_until(lambda: gw.read(lambda g: g.path.server_state("s1")) == "gone", what="s1 drained away")
        assert "s1" in gw.read(lambda g: dict(g.drained))
        text = httpx.get(gw.url + "/metrics").text
        assert metric(text, "lb_gateway_server_health", server="s1", state="gone") == 1


# -- slow clients ---------------------------------------------------------------------------------------------------


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _read_all(sock: socket.socket, limit: float = 5.0) -> bytes:
    sock.settimeout(limit)
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response with a Content-Length (head and body)."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_the_header_deadline_follows_request_framing_however_the_bytes_are_split() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from solution.gateway.deadline import HeaderDeadline as _HeaderDeadline

    class Inner(asyncio.Protocol):
        def __init__(self) -> None:
            self.data = b""

        def data_received(self, data: bytes) -> None:
            self.data += data

    class Transport(asyncio.WriteTransport):
        def is_closing(self) -> bool:
            return False

    def request(body: bytes) -> bytes:
        return b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body

    @settings(max_examples=60, deadline=None, database=None)
    @given(bodies=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r\n\r\n", b"")), min_size=1, max_size=4),
           cuts=st.lists(st.integers(0, 400), max_size=8), partial=st.binary(max_size=10).filter(lambda b: b"\r\n\r\n" not in b))  # fmt: skip
    def check(bodies: list[bytes], cuts: list[int], partial: bytes) -> None:
        async def run() -> None:
            inner = Inner()
            proto = _HeaderDeadline(inner, 60.0, lambda: None)
            proto.connection_made(Transport())
            stream = b"".join(request(b) for b in bodies)
            points = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
            for a, b in zip(points, points[1:]):
                proto.data_received(stream[a:b])
            assert inner.data == stream  # every byte passed on, in order
            assert proto._requests == len(bodies) and proto._timer is None  # each head seen, no timer left running
            if partial:
                proto.data_received(partial)  # the first bytes of one more head: timed again
                assert proto._timer is not None
            proto.connection_lost(None)
            assert proto._timer is None

        asyncio.run(run())

    check()


def test_a_client_trickling_its_headers_is_cut_off_and_others_are_served_meanwhile(stubs: list[StubBackend]) -> None:
    with live(config_for(stubs, timeouts={"header": 0.3, "body": 2.0, "idle": 10.0, "attempt": 20.0})) as gw:
        slow = [_raw(gw.url) for _ in range(5)]
        for s in slow:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")  # ... and never the blank line
        assert completion(gw.url).status_code == 200  # the gateway still serves
        start = time.monotonic()
        answers = [_read_all(s) for s in slow]
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
        assert time.monotonic() - start < 3.0
        for s in slow:
            s.close()
        assert gw.read(lambda g: g.client_timeouts) == 5


def test_a_client_trickling_its_body_is_cut_off_with_408(stubs: list[StubBackend]) -> None:
    with live(config_for(stubs, timeouts={"header": 2.0, "body": 0.3, "idle": 10.0, "attempt": 20.0})) as gw:
        s = _raw(gw.url)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
                  + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\"")  # fmt: skip
        start = time.monotonic()
        answer = _read_all(s)
        s.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - start < 3.0
        assert sum(st.served for st in stubs) == 0


def test_a_client_that_goes_away_while_queued_is_cancelled_and_frees_nothing_it_did_not_hold(stubs: list[StubBackend]) -> None:
    for s in stubs:
        s.hold()
    cfg = config_for(stubs)
    cfg["backends"] = [{"server_id": s.server_id, "url": s.url, "capacity": 1} for s in stubs]
    with live(cfg) as gw, ThreadPoolExecutor(2) as pool:
        busy = [pool.submit(completion, gw.url) for _ in range(2)]
        wait_until(lambda: sum(s.in_flight for s in stubs) == 2, what="both servers busy")
        with pytest.raises(httpx.ReadTimeout):
            completion(gw.url, timeout=0.3)  # queued; the client gives up and closes its connection
        wait_until(lambda: gw.read(lambda g: g.path.stats()["cancelled"]) == 1, what="the queued request cancelled")
        assert gw.read(lambda g: g.path.stats()["waiting"]) == 0
        for s in stubs:
            s.release()
        assert [f.result(10).status_code for f in busy] == [200, 200]


# -- TLS -------------------------------------------------------------------------------------------------------------


def test_tls_termination_with_a_certificate_made_at_test_time(stubs: list[StubBackend], tmp_path: Any) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key = tmp_path / "gw.pem", tmp_path / "gw.key"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    with live(config_for(stubs, tls={"cert": str(chain), "key": str(key)})) as gw:
        assert gw.url.startswith("https://")
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        body = {"model": MODEL, "prompt": "over tls", "max_tokens": 2, "stream": True}
        with httpx.stream("POST", gw.url + "/v1/completions", json=body, headers=AUTH, verify=trusted, timeout=10) as r:
            assert r.status_code == 200
            assert [line for line in r.iter_lines() if line][-1] == "data: [DONE]"
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the course's CA refuses the certificate
            httpx.get(gw.url + "/health", verify=ssl.create_default_context(), timeout=5)
        with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port gets no HTTP answer
            httpx.get(gw.url.replace("https://", "http://") + "/health", timeout=5)
        assert httpx.get(gw.url + "/health", verify=trusted).json()["status"] == "ok"


# -- a bounded fuzz run: malformed requests, then the gateway still serves ----------------------------------------------


def _json_values() -> Any:
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                        max_leaves=12)  # fmt: skip


def _well_formed(route: str, body: bytes) -> bool:
    """The oracle: what the gateway must answer 200 (with the test's limits: 4,096-byte bodies, 50-word prompts)."""
    if len(body) > 4096:
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return False
    if not isinstance(data, dict) or data.get("model") != MODEL:
        return False
    if route.endswith("/chat/completions"):
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            return False
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages):
            return False
        words = sum(len(m["content"].split()) for m in messages)
    else:
        prompt = data.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            return False
        words = len(prompt.split())
    max_tokens = data.get("max_tokens", data.get("max_completion_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 4096):
        return False
    return isinstance(data.get("stream", False), bool) and words <= 50


def test_a_fuzz_run_of_malformed_requests_gets_4xx_costs_no_server_time_and_leaves_the_gateway_serving(
        stubs: list[StubBackend]) -> None:  # fmt: skip
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    fields = st.fixed_dictionaries({}, optional={
        "model": st.sampled_from([MODEL, MODEL, MODEL, "other", ""]) | _json_values(),
        "prompt": st.text(max_size=30) | _json_values(),
        "messages": st.lists(st.fixed_dictionaries({}, optional={"role": st.text(max_size=5) | _json_values(),
                                                                 "content": st.text(max_size=20) | _json_values()}), max_size=3)
                    | _json_values(),
        "max_tokens": st.integers(-5, 8) | st.integers(-5, 10_000) | _json_values(),
        "stream": st.booleans() | _json_values(),
    })  # fmt: skip
    bodies = st.one_of(st.binary(max_size=300), _json_values().map(lambda v: json.dumps(v).encode()),
                       fields.map(lambda v: json.dumps(v).encode()))  # fmt: skip
    routes = st.sampled_from(["/v1/completions", "/v1/chat/completions"])
    # well-formed requests, and ones with one field replaced by anything: the edge between 200 and 4xx
    words = st.text(alphabet=" abc\n\t\u00e9\u4e2d", max_size=120)
    extras = {"max_tokens": st.integers(1, 8) | st.none(), "stream": st.booleans(), "temperature": _json_values()}
    valid = st.one_of(
        st.tuples(st.just("/v1/completions"), st.fixed_dictionaries({"model": st.just(MODEL), "prompt": words}, optional=extras)),
        st.tuples(st.just("/v1/chat/completions"), st.fixed_dictionaries(
            {"model": st.just(MODEL), "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]),
                                                                                  "content": words}), min_size=1, max_size=3)},
            optional=extras)),
    )  # fmt: skip

    def mutate(case: tuple[str, dict[str, Any]], key: str, value: Any) -> tuple[str, bytes]:
        route, body = case
        return route, json.dumps({**body, key: value}).encode()

    near = st.builds(mutate, valid, st.sampled_from(["model", "prompt", "messages", "max_tokens", "stream"]), _json_values())
    cases = st.one_of(st.tuples(routes, bodies), valid.map(lambda c: (c[0], json.dumps(c[1]).encode())), near)
    raw_heads = st.binary(min_size=1, max_size=200)

    cfg = config_for(stubs, timeouts={"header": 0.5, "body": 0.5, "idle": 5.0, "attempt": 10.0})
    with live(cfg) as gw, httpx.Client(base_url=gw.url, headers=AUTH, timeout=10) as client:
        seen: list[int] = []

        @settings(max_examples=60, deadline=None, database=None, derandomize=True,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
        @given(case=cases)
        def malformed_body(case: tuple[str, bytes]) -> None:
            route, body = case
            r = client.post(route, content=body, headers={"Content-Type": "application/json"})
            seen.append(r.status_code)
            if _well_formed(route, body):  # the fuzzer wrote a well-formed request: it must be answered
                assert r.status_code == 200, (r.status_code, r.text[:200], body[:200])
            else:
                assert r.status_code in (400, 404, 413), (r.status_code, body[:200])
                assert r.json()["error"]["message"]

        @settings(max_examples=10, deadline=None, database=None, derandomize=True)
        @given(head=raw_heads)
        def malformed_head(head: bytes) -> None:
            with _raw(gw.url) as s:
                s.sendall(head)
                s.shutdown(socket.SHUT_WR)
                answer = _read_all(s, limit=3.0)
            assert answer == b"" or re.match(rb"HTTP/1\.[01] 4\d\d ", answer), answer[:200]

        malformed_body()
        malformed_head()
        served = sum(s.served for s in stubs)
        assert served == seen.count(200) > 0  # only well-formed requests reached a server (and the fuzzer wrote some)
        for stream in (False, True):
            assert completion(gw.url, stream=stream).status_code == 200
        assert gw.read(lambda g: g.path.stats()["open"]) == 0


# -- more of the earlier outcomes ---------------------------------------------------------------------------------------


def test_a_request_that_waits_max_wait_in_the_queue_gets_503_with_retry_after(stubs: list[StubBackend]) -> None:
    for s in stubs:
        s.hold()
    cfg = config_for(stubs, queue={"max_depth": 4, "max_wait": 0.3})
    cfg["backends"] = [{"server_id": s.server_id, "url": s.url, "capacity": 1} for s in stubs]
    with live(cfg) as gw, ThreadPoolExecutor(2) as pool:
        busy = [pool.submit(completion, gw.url) for _ in range(2)]
        wait_until(lambda: sum(s.in_flight for s in stubs) == 2, what="both servers busy")
        start = time.monotonic()
        r = completion(gw.url)
        assert r.status_code == 503 and r.json()["error"]["code"] == "queue_timeout"
        assert r.headers["Retry-After"].isdigit() and int(r.headers["Retry-After"]) >= 1
        assert 0.25 < time.monotonic() - start < 3.0
        for s in stubs:
            s.release()
        assert [f.result(10).status_code for f in busy] == [200, 200]
        assert metric(httpx.get(gw.url + "/metrics").text, "lb_gateway_requests_total", outcome="timed_out", tier="none") == 1


def test_a_backend_429_asking_longer_than_max_retry_after_is_passed_to_the_client_with_its_retry_after(
        stubs: list[StubBackend]) -> None:  # fmt: skip
    for s in stubs:
        s.status, s.retry_after = 429, "60"
    with live(config_for(stubs, retry={"max_tries": 3, "base": 0.01, "cap": 0.02, "max_retry_after": 5.0})) as gw:
        r = completion(gw.url)
        assert r.status_code == 429 and r.headers["Retry-After"] == "60"
        assert sum(s.served for s in stubs) == 1  # not retried: the wait is the client's to make


def test_the_retry_budget_caps_retries_when_every_server_fails(stubs: list[StubBackend]) -> None:
    for s in stubs:
        s.status = 500
    retry = {"max_tries": 3, "base": 0.3, "cap": 0.3, "budget": {"ratio": 0.0, "min_retries": 1}}
    with live(config_for(stubs, retry=retry)) as gw, ThreadPoolExecutor(8) as pool:
        answers = [f.result(10) for f in [pool.submit(completion, gw.url) for _ in range(8)]]
        # each client gets the server's 500, or 503 "budget" when a re-send was refused before its try answered (an
        # outlier ejection of a server moves its running requests, and each move is a retry the budget may refuse)
        odd = [(r.status_code, r.text[:300]) for r in answers if r.status_code != 500 and r.json()["error"]["code"] != "budget"]
        assert not odd and all(r.status_code in (500, 503) for r in answers), odd
        text = httpx.get(gw.url + "/metrics").text
        exhausted = metric(text, "lb_gateway_retry_budget_exhausted_total")
        retried = metric(text, "lb_gateway_retries_total")
        assert exhausted >= 1 and retried >= 1
        # every try is a first try or a retry: the budget cut the storm below 8 requests x 3 tries
        assert sum(s.served for s in stubs) == 8 + retried < 24
        assert metric(text, "lb_gateway_retry_decisions_total", reason="budget") == exhausted


def test_a_server_failing_its_health_checks_is_taken_out_and_gets_no_traffic(stubs: list[StubBackend]) -> None:
    s1, s2 = stubs
    s1.healthy = False
    cfg = config_for(stubs, health={"interval": 0.2, "timeout": 0.2, "unhealthy_threshold": 2, "jitter": 0.0})
    with live(cfg) as gw:
        wait_until(lambda: gw.read(lambda g: g.path.server_state("s1")) != "ready", what="s1 out of rotation")
        assert [completion(gw.url).status_code for _ in range(4)] == [200] * 4
        assert s1.served == 0 and s2.served == 4
        text = httpx.get(gw.url + "/metrics").text
        assert metric(text, "lb_gateway_server_health", server="s1", state="down") == 1
        assert metric(text, "lb_gateway_server_weight", server="s1") == 0
        assert httpx.get(gw.url + "/health").json()["ready"] == 1
        assert httpx.get(gw.url + "/ready").status_code == 200
        s2.healthy = False  # no server left: the gateway is alive (/health) but not ready (/ready)
        wait_until(lambda: httpx.get(gw.url + "/ready").status_code == 503, what="the gateway not ready")
        assert httpx.get(gw.url + "/health").status_code == 200


def test_a_kept_alive_connection_trickling_its_next_request_head_is_cut_off_too(stubs: list[StubBackend]) -> None:
    with live(config_for(stubs, timeouts={"header": 0.3, "body": 2.0, "idle": 30.0, "attempt": 20.0})) as gw:
        s = _raw(gw.url)
        body = json.dumps({"model": MODEL, "prompt": "hi", "max_tokens": 1}).encode()
        request = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
                   + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
        for _ in range(2):  # two whole requests on one connection, each answered, the connection kept
            s.sendall(request)
            assert _read_response(s).startswith(b"HTTP/1.1 200")
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")  # the third head never ends
        start = time.monotonic()
        rest = _read_all(s)
        s.close()
        assert rest == b"" and time.monotonic() - start < 3.0  # closed (idle is 30 s): the header deadline did it
        assert gw.read(lambda g: g.client_timeouts) == 1


def test_the_configured_strategy_routes_predictive_sends_a_long_answer_to_the_faster_gpu(stubs: list[StubBackend]) -> None:
    s1, s2 = stubs
    cfg = config_for(stubs, strategy="predictive")
    cfg["backends"] = [{"server_id": "s1", "url": s1.url, "capacity": 2, "gpu": "a10-24gb", "gpu_memory_gb": 24},
                       {"server_id": "s2", "url": s2.url, "capacity": 2, "gpu": "h100-80gb"}]  # fmt: skip
    with live(cfg) as gw:
        assert completion(gw.url, max_tokens=200).status_code == 200
        assert s2.served == 1 and s1.served == 0  # least connections would have taken s1, the first added


def test_a_burst_of_concurrent_requests_streamed_and_not_is_answered_once_each_and_the_path_balances(
        stubs: list[StubBackend]) -> None:  # fmt: skip
    for s in stubs:
        s.token_delay = 0.002
    cfg = config_for(stubs, queue={"max_depth": 200, "max_wait": 20.0})
    limits = httpx.Limits(max_connections=16)
    with live(cfg) as gw, ThreadPoolExecutor(16) as pool, httpx.Client(base_url=gw.url, headers=AUTH, timeout=20, limits=limits) as client:
        def one(i: int) -> tuple[int, int]:
            body = {"model": MODEL, "prompt": "p", "max_tokens": 3, "stream": i % 2 == 0}
            if not body["stream"]:
                r = client.post("/v1/completions", json=body)
                return r.status_code, r.json()["usage"]["completion_tokens"]
            with client.stream("POST", "/v1/completions", json=body) as r:
                return r.status_code, sum(1 for line in r.iter_lines() if line.startswith("data: {"))

        for s in stubs:  # the burst starts with both servers full (capacity 2 each): neither is left out however
            s.hold()     # slowly a loaded machine sends the rest (were they sent one by one, least connections' ties
        first = [pool.submit(one, i) for i in range(4)]  # would all go to s1, the first added)
        wait_until(lambda: [s.in_flight for s in stubs] == [2, 2], what="both servers full")
        for s in stubs:
            s.release()
        results = [f.result(20) for f in first] + list(pool.map(one, range(4, 80)))
        assert results == [(200, 3)] * 80, sorted(Counter(results).items())
        stats = gw.read(lambda g: g.path.stats())
        assert stats["submitted"] == stats["delivered"] == 80 and stats["open"] == 0 and stats["waiting"] == 0
        assert sum(s.served for s in stubs) == 80 and all(s.served >= 2 for s in stubs)
        text = httpx.get(gw.url + "/metrics").text
        assert metric(text, "lb_gateway_requests_total", outcome="delivered", tier="none") == 80
        assert metric(text, "lb_gateway_e2e_seconds_count", tier="none") == 80


def test_a_late_first_token_from_an_attempt_abandoned_while_its_request_backs_off_is_dropped(stubs: list[StubBackend]) -> None:
    s1, s2 = stubs
    s1.hold()  # s1 sends the stream's headers, then nothing: the per-try timeout abandons it
    # seed 0's first jitter draw is 0.844 of the bound: the request backs off for 1.27 s, a window a
    # loaded machine's polling cannot miss (seed 3 gave 0.14 s, and the test failed under load)
    retry = {"max_tries": 2, "per_try_timeout": 0.3, "base": 1.5, "cap": 1.5, "budget": None}
    with live(config_for(stubs, retry=retry, seed=0)) as gw, ThreadPoolExecutor(1) as pool:
        def stream() -> list[str]:
            with httpx.stream("POST", gw.url + "/v1/completions", headers=AUTH, timeout=10,
                              json={"model": MODEL, "prompt": "a", "max_tokens": 3, "stream": True}) as r:  # fmt: skip
                assert r.status_code == 200
                return [line for line in r.iter_lines() if line]

        pending = pool.submit(stream)
        wait_until(lambda: gw.read(lambda g: g.path.stats().get("backing_off", 0)) == 1, what="the request backing off")
        s1.release()  # s1's tokens arrive now, from an attempt the path has abandoned
        lines = pending.result(10)
        assert lines == ['data: {"choices": [{"text": "tok "}]}'] * 3 + ["data: [DONE]"]  # s2's stream alone
        assert s2.served == 1
        wait_until(lambda: gw.read(lambda g: (g.path.stats()["open"], g.path.stats()["abandoned"])) == (0, 0),
                   what="no request open, no attempt left running")  # fmt: skip


def test_standard_tiers_keep_a_reserved_slot_for_premium_while_free_work_waits(stubs: list[StubBackend]) -> None:
    for s in stubs:
        s.hold()
    keys = {KEY: {"tenant": "alice", "tier": "free"}, OTHER_KEY: {"tenant": "bob", "tier": "premium"}}
    cfg = config_for(stubs, tiers="standard", keys=keys, queue={"max_depth": 8, "max_wait": 20.0})
    cfg["backends"] = [{"server_id": s.server_id, "url": s.url, "capacity": 4} for s in stubs]
    with live(cfg) as gw, ThreadPoolExecutor(9) as pool:
        free = [pool.submit(completion, gw.url) for _ in range(8)]
        # 25% of each capacity-4 server is premium's: free work gets 3 + 3 slots, the other 2 wait
        wait_until(lambda: sum(s.in_flight for s in stubs) == 6 and gw.read(lambda g: g.path.stats()["waiting"]) == 2,
                   what="6 free requests running, 2 waiting")  # fmt: skip
        premium = pool.submit(completion, gw.url, headers={"Authorization": f"Bearer {OTHER_KEY}"})
        wait_until(lambda: sum(s.in_flight for s in stubs) == 7, what="premium in its reserved slot at once")
        assert gw.read(lambda g: g.path.stats()["waiting"]) == 2  # the free ones still wait
        for s in stubs:
            s.release()
        assert premium.result(10).status_code == 200
        assert [f.result(10).status_code for f in free] == [200] * 8
        text = httpx.get(gw.url + "/metrics").text
        assert metric(text, "lb_gateway_requests_total", outcome="delivered", tier="premium") == 1
        assert metric(text, "lb_gateway_requests_total", outcome="delivered", tier="free") == 8


def test_chaos_every_request_ends_once_and_nothing_is_left_running(stubs: list[StubBackend]) -> None:
    """Requests (streamed and not, some abandoned by their client) while s1 fails, crashes, hangs and comes back.

    Whatever each client gets, the gateway's books must balance: every request
    counted once on /metrics, none left open in the path, no attempt left
    running, no task dying with an unretrieved error (``live`` checks that).
    """
    import random

    rng = random.Random(7)
    s1, s2 = stubs
    for s in stubs:
        s.token_delay = 0.02
    retry = {"max_tries": 3, "per_try_timeout": 0.4, "base": 0.01, "cap": 0.05}
    cfg = config_for(stubs, retry=retry, queue={"max_depth": 64, "max_wait": 3.0},
                     health={"interval": 0.1, "timeout": 0.1, "unhealthy_threshold": 2, "healthy_threshold": 1,
                             "base_ejection_time": 0.2, "jitter": 0.0})  # fmt: skip
    n = 60
    plans = [(rng.random() < 0.5, 0.15 if rng.random() < 0.15 else 10.0) for _ in range(n)]  # (stream, client timeout)
    with live(cfg) as gw, ThreadPoolExecutor(12) as pool, httpx.Client(base_url=gw.url, headers=AUTH) as client:
        def one(i: int) -> str:
            stream, timeout = plans[i]
            body = {"model": MODEL, "prompt": "chaos", "max_tokens": 5, "stream": stream}
            try:
                with client.stream("POST", "/v1/completions", json=body, timeout=timeout) as r:
                    lines = [line for line in r.iter_lines() if line]
                    if r.status_code == 200 and stream and lines[-1] != "data: [DONE]":
                        assert "error" in json.loads(lines[-1].removeprefix("data: "))  # a cut stream says so
                    return str(r.status_code)
            except httpx.TimeoutException:
                return "client gave up"

        futures = [pool.submit(one, i) for i in range(n)]
        actions = ["fail", "heal", "hang", "crash", "restart", "unhealthy", "release", "healthy", "fail", "heal"]
        running = True
        for step, action in enumerate(actions):
            if action == "fail":
                s1.status = 500
            elif action == "heal":
                s1.status = 200
            elif action == "crash" and running:
                s1.crash()
                running = False
            elif action == "restart" and not running:
                s1.start()
                running = True
            elif action == "hang":
                s1.hold()
            elif action == "release":
                s1.release()
            elif action == "unhealthy":
                s1.healthy = False
            else:
                s1.healthy = True
            target = (step + 1) * n // 12
            wait_until(lambda: sum(f.done() for f in futures) >= target, timeout=15, what=f"{target} requests answered")
        if not running:
            s1.start()
        s1.status, s1.healthy = 200, True
        s1.release()
        outcomes = [f.result(20) for f in futures]
        assert set(outcomes) <= {"200", "500", "502", "503", "504", "client gave up"}, outcomes
        assert outcomes.count("200") >= n // 2  # s2 stayed well: most requests were served
        wait_until(lambda: gw.read(lambda g: (g.path.stats()["open"], g.path.stats()["abandoned"])) == (0, 0), timeout=15,
                   what="no request open, no attempt left running")  # fmt: skip
        text = httpx.get(gw.url + "/metrics").text
        counted = sum(float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith("lb_gateway_requests_total{"))
        assert counted == n
        stats = gw.read(lambda g: g.path.stats())
        assert stats["submitted"] == n == stats["delivered"] + stats["failed"] + stats["rejected"] + stats["timed_out"] + stats["cancelled"]


def test_admin_adds_a_server_in_slow_start_and_a_drained_one_back(stubs: list[StubBackend]) -> None:
    s1, s2 = stubs
    admin = {"Authorization": "Bearer admin-secret-42"}
    (s3,) = start_stubs(["s3"])
    try:  # the stubs fixture stops s1 and s2; s3 is this test's
        cfg = config_for(stubs, health={"interval": 0.2, "timeout": 0.2, "slow_start_window": 0.5, "jitter": 0.0,
                                        "unhealthy_threshold": 10})  # fmt: skip
        with live(cfg) as gw:
            record = {"server_id": "s3", "url": s3.url, "capacity": 2}
            assert httpx.post(gw.url + "/admin/servers", json=record).status_code == 401
            assert httpx.post(gw.url + "/admin/servers", json={"server_id": "s3"}, headers=admin).status_code == 400
            assert httpx.post(gw.url + "/admin/servers", json={**record, "server_id": "s1"}, headers=admin).status_code == 409
            r = httpx.post(gw.url + "/admin/servers", json=record, headers=admin)
            assert r.status_code == 200 and r.json()["state"] == "starting"  # slow start: a fraction of its weight
            assert 0 < metric(httpx.get(gw.url + "/metrics").text, "lb_gateway_server_weight", server="s3") < 1
            wait_until(lambda: gw.read(lambda g: g.path.server_state("s3")) == "ready", what="s3 out of slow start")
            # drain s1 away, then add it back (a restart): it takes traffic again
            httpx.post(gw.url + "/admin/drain", json={"server_id": "s1", "timeout": 0}, headers=admin)
            wait_until(lambda: gw.read(lambda g: g.path.server_state("s1")) == "gone", what="s1 gone")
            r = httpx.post(gw.url + "/admin/servers", json={"server_id": "s1", "url": s1.url, "capacity": 2, "warm": True},
                           headers=admin)  # fmt: skip
            assert r.status_code == 200 and r.json()["state"] == "ready"
            for s in (s1, s2, s3):
                s.hold()
            with ThreadPoolExecutor(6) as pool:
                answers = [pool.submit(completion, gw.url) for _ in range(6)]
                wait_until(lambda: (s1.in_flight, s2.in_flight, s3.in_flight) == (2, 2, 2), what="two requests on each")
                for s in (s1, s2, s3):
                    s.release()
                assert [f.result(10).status_code for f in answers] == [200] * 6
            states = httpx.get(gw.url + "/admin/servers", headers=admin).json()["servers"]
            assert set(states) == {"s1", "s2", "s3"} and states["s1"]["state"] == states["s3"]["state"] == "ready"
    finally:
        s3.release()
        s3.stop()


def test_without_a_queue_a_request_no_server_can_take_gets_503_at_once(stubs: list[StubBackend]) -> None:
    for s in stubs:
        s.hold()
    cfg = config_for(stubs, queue=None)
    cfg["backends"] = [{"server_id": s.server_id, "url": s.url, "capacity": 1} for s in stubs]
    with live(cfg) as gw, ThreadPoolExecutor(2) as pool:
        busy = [pool.submit(completion, gw.url) for _ in range(2)]
        wait_until(lambda: sum(s.in_flight for s in stubs) == 2, what="both servers busy")
        r = completion(gw.url)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        for s in stubs:
            s.release()
        assert [f.result(10).status_code for f in busy] == [200, 200]


def test_a_request_bigger_than_its_tiers_token_bucket_gets_413_not_an_endless_429(stubs: list[StubBackend]) -> None:
    tiers = [{"name": "tiny", "queue_class": 1, "tenant_limit": {"requests_per_minute": None, "tokens_per_minute": 100}}]
    with live(config_for(stubs, tiers=tiers, keys={KEY: {"tenant": "alice", "tier": "tiny"}})) as gw:
        r = completion(gw.url, max_tokens=200)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        assert completion(gw.url, max_tokens=50).status_code == 200
        assert sum(s.served for s in stubs) == 1


def test_a_client_that_closes_right_after_the_streams_done_got_a_delivered_answer(stubs: list[StubBackend],
                                                                                  logs: LogCapture) -> None:  # fmt: skip
    """The openai client closes a stream as soon as it reads ``data: [DONE]``, before the response's end: delivered, not 499."""
    for s in stubs:
        s.end_delay = 1.0  # the backend's end comes a second after its [DONE]: the client has left by then
    with live(config_for(stubs)) as gw:
        body = json.dumps({"model": MODEL, "prompt": "a", "max_tokens": 2, "stream": True}).encode()
        sock = _raw(gw.url)
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
                     b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
        data = b""
        while b"data: [DONE]\n\n" not in data:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        sock.close()
        wait_until(lambda: logs.requests(), what="the request's log line")
        line = logs.requests()[0]
        assert (line["status"], line["outcome"]) == (200, "delivered") and data.startswith(b"HTTP/1.1 200")
        wait_until(lambda: gw.read(lambda g: (g.path.stats()["open"], g.path.stats()["abandoned"])) == (0, 0),
                   what="nothing left running")  # fmt: skip
        stats = gw.read(lambda g: g.path.stats())
        assert stats["delivered"] == 1 and stats["cancelled"] == 0
        text = httpx.get(gw.url + "/metrics").text
        assert metric(text, "lb_gateway_requests_total", outcome="delivered", tier="none") == 1
        assert "cancelled" not in text.split("lb_gateway_requests_total", 1)[1].split("# HELP", 1)[0]


def test_a_client_that_leaves_mid_stream_cancels_its_request_and_frees_the_servers_slot(stubs: list[StubBackend]) -> None:
    s1, _ = stubs
    s1.token_delay = 0.05
    with live(config_for(stubs)) as gw:
        with httpx.stream("POST", gw.url + "/v1/completions", headers=AUTH, timeout=10,
                          json={"model": MODEL, "prompt": "a", "max_tokens": 100, "stream": True}) as r:  # fmt: skip
            lines = r.iter_lines()
            assert next(lines).startswith("data: {")
        left = time.monotonic()
        # the connection is closed after one token: the gateway cancels the request and stops its attempt
        wait_until(lambda: gw.read(lambda g: g.path.stats()["cancelled"]) == 1, what="the request cancelled")
        wait_until(lambda: gw.read(lambda g: (g.path.stats()["open"], g.path.stats()["abandoned"])) == (0, 0),
                   what="nothing left running")  # fmt: skip
        wait_until(lambda: s1.in_flight == 0, what="s1's stream stopped")
        assert time.monotonic() - left < 2.5  # the whole stream would take 5 s more: it was not generated for nobody
        text = httpx.get(gw.url + "/metrics").text
        assert metric(text, "lb_gateway_requests_total", outcome="cancelled", tier="none") == 1
