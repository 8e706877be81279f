"""The gateway in front of real inference servers (the ``fleet`` fixture of tests/gateway/conftest.py).

* the official ``openai`` client, pointed at the gateway's base URL, streams a
  chat answer and gets a plain completion;
* a real server crashing under a request (the process exits, its
  connections reset) is re-routed to another one;
* ``python -m solution.gateway --config gw.json --port P`` runs as a
  :class:`~solution.gateway.procs.ManagedProcess` and stops cleanly.

Tests never sleep to wait: they poll with a timeout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from solution.gateway.procs import Fleet, ManagedProcess, free_port
from tests.gateway.stub_backend import wait_until
from tests.gateway.test_gateway import AUTH, KEY, MODEL, LiveGateway, LogCapture, live, logs  # noqa: F401  (a fixture)

pytestmark = pytest.mark.stage8


def fleet_config(fleet: Fleet, ids: tuple[str, ...] = ("a100", "h100", "faulty"), **overrides: Any) -> dict[str, Any]:
    capacity = {"a100": 2, "h100": 4, "faulty": 4}
    cfg: dict[str, Any] = {
        "backends": [{"server_id": sid, "url": fleet.url(sid), "capacity": capacity[sid]} for sid in ids],
        "strategy": "least_connections",  # ties go to the first server added: the crash test counts on it
        "keys": {KEY: {"tenant": "alice"}},
        "queue": {"max_depth": 16, "max_wait": 20.0},
        "health": {"interval": 0.5, "timeout": 0.4},
        "retry": {"max_tries": 3, "base": 0.01, "cap": 0.05},
        "timeouts": {"header": 5.0, "body": 5.0, "idle": 30.0, "attempt": 30.0},
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="module")
def gateway(fleet: Fleet) -> Iterator[LiveGateway]:
    with live(fleet_config(fleet, ids=("a100", "h100"))) as gw:
        yield gw


def test_the_openai_client_streams_a_chat_answer_through_the_gateway(gateway: LiveGateway) -> None:
    import openai

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0, timeout=20)
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "say something short"}],
                                            max_tokens=5, stream=True)  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 5
    assert text.strip()
    assert chunks[-1].choices[0].finish_reason == "length"
    done = client.completions.create(model=MODEL, prompt="one two three", max_tokens=4)
    assert done.usage is not None and done.usage.prompt_tokens == 3 and done.usage.completion_tokens == 4
    assert [m.id for m in client.models.list()] == [MODEL]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-wrong", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-9", prompt="x", max_tokens=1)


def test_a_real_server_crashing_under_a_request_is_re_routed(fleet: Fleet, logs: LogCapture) -> None:
    with live(fleet_config(fleet, ids=("faulty", "a100"))) as gw, ThreadPoolExecutor(1) as pool:
        try:
            # a long answer (1,500 tokens: about a second at time scale 0.05) lands on "faulty" (least connections: the first added)
            body = {"model": MODEL, "prompt": "tell me a long story", "max_tokens": 1500}
            pending = pool.submit(httpx.post, gw.url + "/v1/completions", json=body, headers=AUTH, timeout=30)
            wait_until(lambda: gw.read(lambda g: g.path.in_flight()) != {}, what="the request in flight")
            assert gw.read(lambda g: list(g.path.in_flight().values())) == ["faulty"]
            fleet.fault("faulty", "crash")
            r = pending.result(30)
            assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 1500
            assert r.headers["X-Server-Id"] == "a100"
            wait_until(lambda: logs.requests(), what="the log line")
            assert [d["server"] for d in logs.requests()[0]["decisions"]] == ["faulty", "a100"]
        finally:
            fleet.restart("faulty")


def test_python_m_solution_gateway_serves_and_stops_cleanly(fleet: Fleet, tmp_path: Any) -> None:
    config = tmp_path / "gw.json"
    config.write_text(json.dumps(fleet_config(fleet, ids=("a100",))))
    port = free_port()
    argv = [sys.executable, "-m", "solution.gateway", "--config", str(config), "--port", str(port)]
    with ManagedProcess(argv, name="gateway", ready_url=f"http://127.0.0.1:{port}/health", ports=(port,)) as proc:
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions", headers=AUTH, timeout=20,
                       json={"model": MODEL, "prompt": "hello", "max_tokens": 2})  # fmt: skip
        assert r.status_code == 200
        assert proc.alive()
        wait_until(lambda: '"outcome": "delivered"' in proc.output_tail(), what="the request's log line")
        out = proc.output_tail()
        assert f"gateway listening on http://127.0.0.1:{port}" in out
        assert KEY not in out
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions", headers=AUTH, timeout=20,
                       json={"model": MODEL, "prompt": "again", "max_tokens": 2})  # fmt: skip
        assert r.status_code == 200  # and stopped at once: its line may still wait in the log buffer
    assert not proc.alive() and proc.returncode == 0  # SIGTERM: a clean stop
    assert proc.output_tail().count('"outcome": "delivered"') == 2  # the buffered line was written at exit


def test_python_m_solution_gateway_refuses_a_bad_config_with_status_2(tmp_path: Any) -> None:
    import subprocess

    config = tmp_path / "gw.json"
    config.write_text(json.dumps({"backends": [], "keys": {}}))
    done = subprocess.run([sys.executable, "-m", "solution.gateway", "--config", str(config)], capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2 and "backends must list at least one" in done.stderr
