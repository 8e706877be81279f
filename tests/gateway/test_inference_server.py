"""The inference server: the simulator's timing (exactly, on a fake clock; as bounds and orders, on the wall clock),
the batch and KV limits, the OpenAI shapes the official client parses, every fault.

Wall-clock assertions never use an upper bound tight enough to flake on a
loaded 2-core machine: a server can be late, never early, so the model's
time is a *lower* bound of what a client measures, and comparisons are
between requests whose model times differ by a large factor.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import numpy as np
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.gateway import procs
from solution.gateway.faults import CRASH_EXIT_CODE, Fault, parse_fault
from solution.gateway.inference_server import (
    DEFAULT_MAX_TOKENS,
    Engine,
    RequestError,
    ServerConfig,
    count_words,
    parse_request,
    resolve_gpu,
)
from solution.gateway.procs import ServerSpec, start_fleet
from solution.sim.gpus import GPU_PRESETS, MODEL_PRESETS

pytestmark = pytest.mark.stage8

FLEET_TIME_SCALE = 0.05  # conftest.FLEET_TIME_SCALE (test modules are not a package here); checked below

A100 = MODEL_PRESETS["7B FP16"].latency_model(GPU_PRESETS["A100-80GB"])
H100 = MODEL_PRESETS["7B FP16"].latency_model(GPU_PRESETS["H100-80GB"])


# -- helpers -------------------------------------------------------------------------------------------------


def _post(url: str, body: object, timeout: float = 10.0) -> tuple[int, dict[str, Any], dict[str, str]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _health(base: str) -> dict[str, Any]:
    return dict(json.loads(_get(base + "/health")[1]))


def _completion(base: str, prompt_words: int, max_tokens: int, **extra: Any) -> tuple[float, dict[str, Any]]:
    """One non-streamed completion; (wall seconds, body with the model's times under "_timing")."""
    body = {"model": "course-model", "prompt": " ".join(["w"] * prompt_words), "max_tokens": max_tokens, **extra}
    start = time.monotonic()
    status, answer, headers = _post(base + "/v1/completions", body)
    assert status == 200 and headers["X-Server-Id"], answer
    answer["_timing"] = {k: float(headers[f"X-Model-{name}-Seconds"]) for k, name in
                         (("queue", "Queue"), ("ttft", "TTFT"), ("e2e", "E2E"))}  # fmt: skip
    return time.monotonic() - start, answer


# -- the engine on a fake clock: exactly the simulator's model -------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _engine(capacity: int = 4, kv: int = 100_000, scale: float = 0.5) -> tuple[Engine, FakeClock]:
    clock = FakeClock()
    config = ServerConfig("e", A100, capacity=capacity, kv_limit_tokens=kv, gpu_memory_gb=80, time_scale=scale)
    return Engine(config, clock=clock), clock


def _run_until(engine: Engine, clock: FakeClock, model_t: float) -> None:
    clock.t = 100.0 + model_t * engine.scale
    engine.catch_up(engine.now())


def test_alone_a_request_gets_the_latency_models_ttft_and_e2e() -> None:
    engine, clock = _engine()
    job = engine.submit(300, 50, stream=False)
    _run_until(engine, clock, 10.0)
    assert job.first_token == pytest.approx(A100.ttft(300), rel=1e-9)
    assert job.finished == pytest.approx(A100.e2e(300, 50), rel=1e-9)
    assert engine.server.running == 0 and engine.kv_used == 0


def test_a_batch_of_two_decodes_at_the_two_sequence_step() -> None:
    engine, clock = _engine()
    jobs = [engine.submit(0, 40, stream=False) for _ in range(2)]  # no prompt: decoding at once, batch of 2
    _run_until(engine, clock, 10.0)
    for job in jobs:
        assert job.finished == pytest.approx(39 * A100.decode_step(2), rel=1e-9)


def test_the_batch_limit_queues_the_third_request_until_a_slot_frees() -> None:
    engine, clock = _engine(capacity=2)
    a, b = engine.submit(0, 10, stream=False), engine.submit(0, 30, stream=False)
    c = engine.submit(0, 10, stream=False)
    assert engine.server.running == 2 and list(engine.waiting) == [c]
    _run_until(engine, clock, 10.0)
    assert c.admitted == pytest.approx(a.finished) and a.finished == pytest.approx(9 * A100.decode_step(2))
    assert c.finished is not None and b.finished is not None


def test_the_kv_limit_queues_what_does_not_fit_now_and_refuses_what_never_fits() -> None:
    engine, clock = _engine(capacity=8, kv=100)
    a = engine.submit(10, 50, stream=False)  # 60 of 100 tokens
    b = engine.submit(10, 50, stream=False)  # would make 120: waits although the batch has room
    assert engine.server.running == 1 and engine.kv_used == 60 and list(engine.waiting) == [b]
    with pytest.raises(ValueError, match="exceed this server's KV cache of 100 tokens"):
        engine.submit(60, 41, stream=False)
    assert len(engine.waiting) == 1  # the refused request changed nothing
    _run_until(engine, clock, 10.0)
    assert b.admitted == pytest.approx(a.finished) and b.finished is not None and engine.kv_used == 0


def test_a_throttle_slows_the_running_request_from_that_instant() -> None:
    engine, clock = _engine()
    job = engine.submit(0, 101, stream=False)
    half = 50 * A100.decode_step(1)
    _run_until(engine, clock, half)
    engine.set_throttle(2.0)
    engine.set_warm(0.5)  # a warm-up step combines with the throttle: 4 times slower
    _run_until(engine, clock, 100.0)
    assert job.finished == pytest.approx(half + 4 * half, rel=1e-9)


def test_a_pause_stops_model_time_and_a_resume_continues_where_it_stood() -> None:
    engine, clock = _engine(scale=0.5)
    job = engine.submit(0, 21, stream=False)
    clock.t += 0.5 * 10 * A100.decode_step(1)
    engine.pause()
    clock.t += 30.0  # 30 real seconds hung: no progress
    assert engine.now() == pytest.approx(10 * A100.decode_step(1)) and job.finished is None
    engine.resume()
    _run_until(engine, clock, 100.0)
    assert job.finished == pytest.approx(20 * A100.decode_step(1), rel=1e-9)


def test_cancelling_a_running_request_frees_its_slot_and_kv_for_the_next() -> None:
    engine, clock = _engine(capacity=1, kv=1000)
    a, b = engine.submit(0, 500, stream=True), engine.submit(0, 5, stream=False)
    _run_until(engine, clock, 1.0)
    engine.cancel(a)
    assert engine.server.running == 1 and b.admitted == pytest.approx(1.0) and engine.kv_used == b.need
    engine.cancel(b)
    engine.cancel(b)  # twice: nothing more
    assert engine.server.running == 0 and engine.kv_used == 0 and not engine.waiting


def test_a_stream_is_given_one_token_per_decode_iteration() -> None:
    engine, clock = _engine()
    job = engine.submit(100, 30, stream=True)
    ttft, step = A100.ttft(100), A100.decode_step(1)
    readies = []
    for k in range(0, 40):
        _run_until(engine, clock, ttft + (k + 0.5) * step)
        engine._push_tokens(engine.now())
        readies.append(job.ready)
    assert readies[:29] == list(range(1, 30)) and readies[29:] == [30] * 11


_OPS = st.lists(
    st.tuples(
        st.floats(0.0, 2.0),  # model seconds before the operation
        st.one_of(
            st.tuples(st.just("submit"), st.integers(0, 400), st.integers(1, 60), st.booleans()),
            st.tuples(st.just("cancel"), st.integers(0, 30)),
            st.tuples(st.just("throttle"), st.sampled_from([1.0, 2.0, 0.5])),
            st.tuples(st.just("pause"), st.booleans()),
        ),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, capacity=st.integers(1, 4), kv=st.integers(100, 600))
def test_the_engine_keeps_its_limits_admits_fifo_and_finishes_every_request(ops: list[Any], capacity: int, kv: int) -> None:
    engine, clock = _engine(capacity=capacity, kv=kv, scale=1.0)
    jobs = []
    for dt, op in ops:
        clock.t += dt
        engine.catch_up(engine.now())
        if op[0] == "submit":
            if engine.fits(op[1], op[2]):
                jobs.append(engine.submit(op[1], op[2], stream=op[3]))
            else:
                with pytest.raises(ValueError):
                    engine.submit(op[1], op[2], stream=op[3])
        elif op[0] == "cancel" and jobs:
            engine.cancel(jobs[op[1] % len(jobs)])
        elif op[0] == "throttle":
            engine.set_throttle(op[1])
        elif op[0] == "pause":
            engine.pause() if op[1] else engine.resume()
        engine._push_tokens(engine.now())
        running = list(engine.jobs.values())
        assert engine.server.running == len(running) <= capacity
        assert engine.kv_used == sum(j.need for j in running) <= kv
        if engine.waiting and not engine.paused:  # work-conserving: the head waits only when it cannot fit
            assert len(running) == capacity or engine.kv_used + engine.waiting[0].need > kv
        assert all(j.ready <= j.max_tokens for j in jobs)
    engine.resume()
    clock.t += 10_000.0
    engine.catch_up(engine.now())
    assert not engine.jobs and not engine.waiting and engine.kv_used == 0 and engine.server.running == 0
    admitted = [j for j in jobs if j.admitted is not None]
    assert [j.admitted for j in admitted] == sorted(j.admitted for j in admitted)  # first come, first admitted
    for job in jobs:
        if not job.cancelled:
            assert job.arrived <= job.admitted <= job.first_token <= job.finished  # type: ignore[operator]
            assert job.ready == job.max_tokens


@pytest.mark.parametrize(("gpu", "seed"), [("A100-80GB", 3), ("H100-80GB", 4), ("A10-24GB", 5)])
def test_the_engine_reproduces_the_simulators_times_for_the_same_requests(gpu: str, seed: int) -> None:
    """Differential: a simulated overloaded server's completed requests, replayed into the engine, get the same times."""
    from solution.sim import scenarios, simulate
    from solution.sim.results import Outcome

    res = simulate(scenarios.steady(servers=1, load=1.5, requests=300, gpu=gpu), seed=seed)
    model = MODEL_PRESETS["7B FP16"].latency_model(GPU_PRESETS[gpu])
    capacity = MODEL_PRESETS["7B FP16"].default_capacity(GPU_PRESETS[gpu])
    clock = FakeClock()
    engine = Engine(ServerConfig("e", model, capacity=capacity, kv_limit_tokens=10**9, gpu_memory_gb=80, time_scale=1.0),
                    clock=clock)  # fmt: skip
    done = np.flatnonzero(res.outcome == int(Outcome.COMPLETED))
    jobs, peak = {}, 0
    for i in done[np.argsort(res.arrival[done], kind="stable")]:
        clock.t = 100.0 + float(res.arrival[i])
        engine.catch_up(engine.now())
        jobs[i] = engine.submit(int(res.prompt_tokens[i]), int(res.output_tokens[i]), stream=False)
        peak = max(peak, engine.server.running)
    assert peak == capacity and len(done) > 100  # full batches: every batch size's rates were used
    clock.t += 1e6
    engine.catch_up(engine.now())
    first = np.array([jobs[i].first_token for i in done], dtype=float)
    finish = np.array([jobs[i].finished for i in done], dtype=float)
    np.testing.assert_allclose(first, res.first_token[done], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(finish, res.finish[done], rtol=1e-9, atol=1e-9)


# -- parsing (shared with the gateway) ---------------------------------------------------------------------------


def test_parse_request_counts_words_and_defaults() -> None:
    parsed = parse_request({"model": "m", "prompt": "route  the\ntokens"}, chat=False, model_id="m")
    assert (parsed.prompt_tokens, parsed.max_tokens, parsed.stream) == (3, DEFAULT_MAX_TOKENS, False)
    chat = parse_request({"model": "m", "messages": [{"role": "system", "content": "be brief"},
                                                      {"role": "user", "content": [{"type": "text", "text": "a b c"}]}],
                          "max_completion_tokens": 7, "stream": True, "stream_options": {"include_usage": True}},
                         chat=True)  # fmt: skip
    assert (chat.prompt_tokens, chat.max_tokens, chat.stream, chat.include_usage) == (5, 7, True, True)
    assert parse_request({"model": "m", "prompt": [1, 2, 3, 4]}, chat=False).prompt_tokens == 4
    assert count_words("") == 0


@pytest.mark.parametrize(
    ("body", "chat", "status", "param"),
    [
        ([], False, 400, None),
        ({"prompt": "x"}, False, 400, "model"),
        ({"model": "other", "prompt": "x"}, False, 404, "model"),
        ({"model": "m"}, False, 400, "prompt"),
        ({"model": "m", "prompt": {"a": 1}}, False, 400, "prompt"),
        ({"model": "m", "prompt": ["a", "b"]}, False, 400, "prompt"),
        ({"model": "m", "prompt": "x", "max_tokens": 0}, False, 400, "max_tokens"),
        ({"model": "m", "prompt": "x", "max_tokens": True}, False, 400, "max_tokens"),
        ({"model": "m", "prompt": "x", "n": 2}, False, 400, "n"),
        ({"model": "m", "prompt": "x", "stream": "yes"}, False, 400, "stream"),
        ({"model": "m", "messages": []}, True, 400, "messages"),
        ({"model": "m", "messages": [{"content": "x"}]}, True, 400, "messages"),
        ({"model": "m", "messages": [{"role": "user", "content": 3}]}, True, 400, "messages[0].content"),
    ],
)
def test_parse_request_refuses_bad_bodies_with_openais_status_and_param(body: object, chat: bool, status: int,
                                                                        param: str | None) -> None:  # fmt: skip
    with pytest.raises(RequestError) as caught:
        parse_request(body, chat=chat, model_id="m")
    assert caught.value.status == status and caught.value.param == param
    assert set(caught.value.body()["error"]) == {"message", "type", "param", "code"}


def test_config_and_presets_refuse_bad_values() -> None:
    assert resolve_gpu("h100-80gb").name == "H100-80GB"
    with pytest.raises(ValueError, match="A100-80GB"):
        resolve_gpu("b200")
    with pytest.raises(ValueError, match="capacity"):
        ServerConfig("s", A100, capacity=0, kv_limit_tokens=10, gpu_memory_gb=80)
    with pytest.raises(ValueError, match="time_scale"):
        ServerConfig("s", A100, capacity=1, kv_limit_tokens=10, gpu_memory_gb=80, time_scale=0.0)
    with pytest.raises(ValueError, match="time_scale"):
        ServerConfig("s", A100, capacity=1, kv_limit_tokens=10, gpu_memory_gb=80, time_scale=math.inf)
    with pytest.raises(TypeError, match="capacity"):
        ServerConfig("s", A100, capacity=True, kv_limit_tokens=10, gpu_memory_gb=80)
    with pytest.raises(TypeError, match="server_id"):
        ServerConfig(3, A100, capacity=1, kv_limit_tokens=10, gpu_memory_gb=80)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="startup_seconds"):
        ServerConfig("s", A100, capacity=1, kv_limit_tokens=10, gpu_memory_gb=80, startup_seconds=-1.0)
    assert ServerConfig("s", A100, capacity=1, kv_limit_tokens=10, gpu_memory_gb=80, startup_seconds=0).startup_seconds == 0
    config = ServerConfig.from_presets("s", gpu="a100-80gb")
    assert (config.capacity, config.kv_limit_tokens, config.latency) == (58, 120_753, A100)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"kind": "explode"}, "unknown fault kind"),
        ({"kind": "slow", "factor": 0}, "factor"),
        ({"kind": "slow", "factor": math.inf}, "finite"),
        ({"kind": "fail"}, "needs 'fraction'"),
        ({"kind": "fail", "fraction": 1.5}, "fraction"),
        ({"kind": "fail", "fraction": 0.5, "health_fails": 1}, "health_fails"),
        ({"kind": "slow_start", "seconds": -1}, "seconds"),
        ({"kind": "slow_start", "seconds": 1, "warmup_speed": 1.5}, "warmup_speed"),
        ({"kind": "slow_start", "seconds": 1, "warmup_steps": 0}, "warmup_steps"),
        ({"kind": "slow_start", "seconds": 1, "warmup_seconds": -2}, "warmup_seconds"),
        ({"kind": "crash", "factor": 2}, "takes no parameter factor"),
    ],
)
def test_parse_fault_refuses_bad_faults(payload: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_fault(payload)


def test_parse_fault_round_trips() -> None:
    for fault in (Fault("slow", factor=2.0), Fault("fail", fraction=0.25, health_fails=True), Fault("slow_start", seconds=3.0),
                  Fault("slow_start", seconds=1.0, warmup_seconds=2.0, warmup_speed=0.5, warmup_steps=3),
                  Fault("hang"), Fault("clear"), Fault("crash")):  # fmt: skip
        assert parse_fault(fault.to_dict()) == fault
    with pytest.raises(TypeError):
        parse_fault(["slow"])


# -- over HTTP: the official client, timing bounds, limits ---------------------------------------------------------------


def test_the_official_client_parses_answers_and_streams(fleet: procs.Fleet) -> None:
    assert {spec.time_scale for spec in fleet.specs.values()} == {FLEET_TIME_SCALE}
    client = openai.OpenAI(base_url=fleet.url("h100") + "/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["course-model"]
    done = client.completions.create(model="course-model", prompt="route the tokens", max_tokens=5)
    assert done.choices[0].finish_reason == "length" and count_words(done.choices[0].text) == 5
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.total_tokens) == (3, 5, 8)
    chat = client.chat.completions.create(model="course-model", messages=[{"role": "user", "content": "hi there"}], max_tokens=4)
    assert chat.choices[0].message.role == "assistant" and count_words(chat.choices[0].message.content or "") == 4
    assert chat.usage is not None and chat.usage.prompt_tokens == 2
    chunks = list(client.chat.completions.create(model="course-model", messages=[{"role": "user", "content": "a b c"}],
                                                 max_tokens=6, stream=True, stream_options={"include_usage": True}))  # fmt: skip
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * 5 + ["length"]
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert count_words("".join(c.choices[0].delta.content or "" for c in chunks[:-1])) == 6
    texts = [c.choices[0].text for c in client.completions.create(model="course-model", prompt="x", max_tokens=3, stream=True)]
    assert len(texts) == 3 and count_words("".join(texts)) == 3
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-9", prompt="x", max_tokens=1)
    with pytest.raises(openai.BadRequestError, match="KV cache"):
        client.completions.create(model="course-model", prompt="x " * 1500, max_tokens=600)


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{not json", 400), ({"model": "course-model"}, 400), ({"model": "nope", "prompt": "x"}, 404)],
)
def test_bad_requests_get_openai_errors_over_http(fleet: procs.Fleet, body: object, status: int) -> None:
    code, answer, headers = _post(fleet.url("a100") + "/v1/completions", body)
    assert code == status and "message" in answer["error"] and headers["X-Server-Id"] == "a100"


def test_wall_times_never_beat_the_model_and_follow_its_order(fleet: procs.Fleet) -> None:
    """Lower bounds (a server can be late, never early) and orders with a wide model margin."""
    short, _ = _completion(fleet.url("a100"), 10, 5)
    long_a100, body = _completion(fleet.url("a100"), 10, 400)
    long_h100, h100_body = _completion(fleet.url("h100"), 10, 400)
    assert body["usage"]["completion_tokens"] == 400
    # Alone on its server, a request's model times are the latency model's, exactly, and come with the answer.
    assert body["_timing"]["e2e"] == pytest.approx(A100.e2e(10, 400), rel=1e-9) and body["_timing"]["queue"] == 0
    assert body["_timing"]["ttft"] == pytest.approx(A100.ttft(10), rel=1e-9)
    assert h100_body["_timing"]["e2e"] == pytest.approx(H100.e2e(10, 400), rel=1e-9)
    assert long_a100 >= A100.e2e(10, 400) * FLEET_TIME_SCALE
    assert long_h100 >= H100.e2e(10, 400) * FLEET_TIME_SCALE
    assert long_a100 > short  # 400 tokens vs 5: ~80x the model time
    assert long_a100 > long_h100  # the H100's decode step is 1.64x shorter


async def _stream_ttft(url: str, prompt_words: int, max_tokens: int) -> tuple[float, float, dict[str, float]]:
    """(wall TTFT, wall e2e, the model's times from the stream's ``: model-timing`` comment)."""
    body = {"model": "course-model", "prompt": " ".join(["w"] * prompt_words), "max_tokens": max_tokens, "stream": True}
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        async with session.post(url + "/v1/completions", json=body) as response:
            assert response.status == 200 and response.headers["X-Server-Id"] == "a100"
            ttft, timing = None, {}
            async for line in response.content:
                if line.startswith(b"data: {") and ttft is None:
                    ttft = time.monotonic() - start
                if line.startswith(b": model-timing "):
                    timing = json.loads(line.removeprefix(b": model-timing "))
            assert ttft is not None and timing
            return ttft, time.monotonic() - start, timing


def test_a_long_prompt_delays_the_first_streamed_token(fleet: procs.Fleet) -> None:
    url = fleet.url("a100")
    ttft_long, e2e_long, timing = asyncio.run(_stream_ttft(url, 60_000, 2))
    ttft_short, _, _ = asyncio.run(_stream_ttft(url, 1, 2))
    assert timing["ttft"] == pytest.approx(A100.ttft(60_000), rel=1e-9) and timing["time_scale"] == FLEET_TIME_SCALE
    assert ttft_long >= A100.ttft(60_000) * FLEET_TIME_SCALE  # 5.4 model s: 0.27 s of wall time
    assert ttft_long > 5 * ttft_short or ttft_short < A100.ttft(60_000) * FLEET_TIME_SCALE / 5
    assert e2e_long >= A100.e2e(60_000, 2) * FLEET_TIME_SCALE


async def _hold_streams(url: str, n: int, wait_for: Any) -> None:
    """Open ``n`` long streams, run ``wait_for()`` (in a thread) while they run, then drop the connections."""
    body = {"model": "course-model", "prompt": "w", "max_tokens": 20_000, "stream": True}  # 3 x 20,001 KV tokens fit
    async with aiohttp.ClientSession() as session:
        responses = [await session.post(url + "/v1/completions", json=body) for _ in range(n)]
        try:
            await asyncio.to_thread(wait_for)
        finally:
            for response in responses:
                response.close()


def test_the_batch_limit_queues_extra_requests_and_a_dropped_client_frees_its_slot(fleet: procs.Fleet, wait_until) -> None:
    url = fleet.url("a100")  # capacity 2
    seen: dict[str, Any] = {}

    def batch_is_full() -> None:
        seen.update(wait_until(lambda: (h := _health(url))["running"] == 2 and h["waiting"] == 1 and h, 10.0,
                               "2 running and 1 waiting"))  # fmt: skip

    asyncio.run(_hold_streams(url, 3, batch_is_full))
    assert seen["capacity"] == 2
    wait_until(lambda: (h := _health(url))["running"] == 0 and h["waiting"] == 0 and h["kv_tokens_used"] == 0, 10.0,
               "the dropped streams to leave the batch")  # fmt: skip


def test_the_kv_limit_queues_requests_that_do_not_fit_yet(fleet: procs.Fleet, wait_until) -> None:
    url = fleet.url("h100")  # capacity 4, KV 2,000 tokens
    body = {"model": "course-model", "prompt": "w " * 99, "max_tokens": 1200, "stream": True}  # 1,299 tokens each

    async def two_big() -> None:
        async with aiohttp.ClientSession() as session:
            first = await session.post(url + "/v1/completions", json=body)
            second = await session.post(url + "/v1/completions", json=body)
            try:
                await asyncio.to_thread(wait_until, lambda: (h := _health(url))["running"] == 1 and h["waiting"] == 1
                                        and h["kv_tokens_used"] == 1299, 10.0, "one running, one waiting for KV room")  # fmt: skip
                await first.read()  # when the first finishes, the second gets its room
                await second.read()
            finally:
                first.close()
                second.close()

    asyncio.run(two_big())
    assert _health(url)["kv_tokens_used"] == 0


def test_metrics_count_requests_and_tokens(fleet: procs.Fleet) -> None:
    url = fleet.url("h100")

    def value(text: str, name: str) -> float:
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name) and not line.startswith("#"))

    before = _get(url + "/metrics")[1]
    _completion(url, 4, 7)
    status, after = _get(url + "/metrics")
    assert status == 200
    assert value(after, 'inference_requests_total{status="200"}') == value(before, 'inference_requests_total{status="200"}') + 1
    assert value(after, "inference_generation_tokens_total") == value(before, "inference_generation_tokens_total") + 7
    assert value(after, "inference_kv_tokens_limit") == 2000 and value(after, "inference_batch_capacity") == 4


# -- faults --------------------------------------------------------------------------------------------------


def test_fail_answers_500_while_probes_pass_unless_told(fleet: procs.Fleet) -> None:
    url = fleet.url("faulty")
    try:
        fleet.fault("faulty", "fail", fraction=1.0)
        status, answer, _ = _post(url + "/v1/completions", {"model": "course-model", "prompt": "x", "max_tokens": 1})
        assert status == 500 and answer["error"]["type"] == "server_error"
        assert _get(url + "/health")[0] == 200  # a gray failure: only real traffic shows it
        fleet.fault("faulty", "fail", fraction=0.0, health_fails=True)
        assert _get(url + "/health")[0] == 503
    finally:
        fleet.fault("faulty", "clear")
    assert _get(url + "/health")[0] == 200
    _completion(url, 1, 1)


def test_slow_makes_decode_factor_times_slower(fleet: procs.Fleet) -> None:
    url = fleet.url("faulty")
    try:
        fleet.fault("faulty", "slow", factor=5)
        slow, _ = _completion(url, 1, 200)
    finally:
        fleet.fault("faulty", "clear")
    assert slow >= 5 * A100.e2e(1, 200) * FLEET_TIME_SCALE * (1 - 1e-6)


def test_hang_answers_nothing_until_cleared_then_resumes(fleet: procs.Fleet) -> None:
    url = fleet.url("faulty")
    fleet.fault("faulty", "hang")
    try:
        with pytest.raises(OSError):  # a timeout: accepted, never answered
            urllib.request.urlopen(url + "/health", timeout=0.3)

        async def during_hang() -> int:
            async with aiohttp.ClientSession() as session:
                task = asyncio.ensure_future(session.post(url + "/v1/completions",
                                                          json={"model": "course-model", "prompt": "x", "max_tokens": 3}))  # fmt: skip
                done, _ = await asyncio.wait([task], timeout=0.3)
                assert not done  # still nothing
                await asyncio.to_thread(fleet.fault, "faulty", "clear")
                async with await task as response:
                    return response.status

        assert asyncio.run(during_hang()) == 200
    finally:
        fleet.fault("faulty", "clear")
    assert _get(url + "/health")[0] == 200


def _speed(url: str) -> float:
    lines = [line for line in _get(url + "/metrics")[1].splitlines() if line.startswith("inference_speed_factor ")]
    return float(lines[0].split()[1])


def test_slow_start_answers_503_with_retry_after_then_warms_up(fleet: procs.Fleet, wait_until) -> None:
    url = fleet.url("faulty")
    fleet.fault("faulty", "slow_start", seconds=1.0, warmup_seconds=0.4, warmup_speed=0.5, warmup_steps=2)
    status, body = _get(url + "/health")
    assert status == 503 and json.loads(body)["status"] == "starting" and _speed(url) == 0.5
    code, answer, headers = _post(url + "/v1/completions", {"model": "course-model", "prompt": "x", "max_tokens": 1})
    assert code == 503 and int(headers["Retry-After"]) >= 1
    wait_until(lambda: _get(url + "/health")[0] == 200, 10.0, "the slow start to end")
    _completion(url, 1, 1)
    wait_until(lambda: _speed(url) == 1.0, 10.0, "the warm-up to reach full speed")


def test_bad_faults_are_refused_before_and_by_the_server(fleet: procs.Fleet) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        fleet.fault("faulty", "melt")
    with pytest.raises(ValueError):
        procs.fault(fleet.url("faulty"), "slow", factor=-1)
    status, answer, _ = _post(fleet.url("faulty") + "/admin/fault", {"kind": "slow", "factor": "x"})
    assert status == 400 and "factor" in answer["error"]["message"]


def test_crash_breaks_open_streams_and_a_restart_serves_again(wait_until) -> None:
    with start_fleet([ServerSpec("c1", capacity=2, startup_seconds=0.0)]) as fleet:
        url, port = fleet.url("c1"), fleet.ports["c1"]
        first = fleet.procs["c1"]

        async def stream_through_a_crash() -> BaseException | None:
            body = {"model": "course-model", "prompt": "w", "max_tokens": 20_000, "stream": True}
            async with aiohttp.ClientSession() as session, session.post(url + "/v1/completions", json=body) as response:
                await response.content.readline()  # the first token came
                await asyncio.to_thread(fleet.fault, "c1", "crash")
                try:
                    await response.read()
                except aiohttp.ClientError as error:
                    return error
                return None

        assert isinstance(asyncio.run(stream_through_a_crash()), aiohttp.ClientError)  # the stream broke, never ended
        assert first.returncode == CRASH_EXIT_CODE and not procs.port_open(port)
        fleet.restart("c1")
        assert fleet.alive() == {"c1": True}
        _completion(url, 2, 2)
    assert not procs.port_open(port)


@pytest.mark.slow  # two server starts and a graceful stop: ~3-4 s on 2 busy cores
def test_a_fleet_scales_out_and_in_and_sigterm_ends_a_hung_server_gracefully() -> None:
    with start_fleet([ServerSpec("c1", capacity=2)]) as fleet:
        # Scale out and in (stage 7's rollouts add and remove servers).
        added = fleet.add(ServerSpec("c2", gpu="h100-80gb", capacity=2))
        assert _health(added)["server_id"] == "c2" and set(fleet.urls) == {"c1", "c2"}
        with pytest.raises(ValueError, match="already in the fleet"):
            fleet.add(ServerSpec("c2"))
        port2, proc2 = fleet.ports["c2"], fleet.procs["c2"]

        async def remove_while_hung_with_a_request_open() -> None:
            async with aiohttp.ClientSession() as session:
                body = {"model": "course-model", "prompt": "w", "max_tokens": 20_000, "stream": True}
                async with session.post(added + "/v1/completions", json=body) as response:
                    await response.content.readline()
                    await asyncio.to_thread(fleet.fault, "c2", "hang")
                    start = time.monotonic()
                    await asyncio.to_thread(fleet.remove, "c2", 5.0)
                    assert time.monotonic() - start < 4.0

        asyncio.run(remove_while_hung_with_a_request_open())
        assert proc2.returncode == 0  # SIGTERM ended it although hung with a request open: no SIGKILL needed
        assert set(fleet.urls) == {"c1"} and not procs.port_open(port2)
        with pytest.raises(KeyError, match="c2"):
            fleet.restart("c2")
    assert not procs.port_open(fleet.ports["c1"])


def test_startup_seconds_keep_health_at_503_while_the_process_serves_then_it_warms_up(wait_until) -> None:
    spec = ServerSpec("late", startup_seconds=0.8, warmup_seconds=0.3, warmup_speed=0.25, warmup_steps=1)
    with start_fleet([spec]) as fleet:
        url = fleet.url("late")
        assert _get(url + "/live")[0] == 200 and _get(url + "/health")[0] == 503 and _speed(url) == 0.25
        wait_until(lambda: _get(url + "/health")[0] == 200, 10.0, "the start-up to end")
        wait_until(lambda: _speed(url) == 1.0, 10.0, "the warm-up to end")
        fleet.fault("late", "slow", factor=4)
        assert _speed(url) == 0.25
        fleet.fault("late", "clear")
        assert _speed(url) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True])
def test_one_server_process_serves_hundreds_of_requests_per_second(stream: bool) -> None:
    """The figure: requests/s one server process answers (16 tokens each, model time negligible), client on the same cores.

    Run ``pytest tests/gateway/test_inference_server.py -k hundreds -m slow -s`` to see it.
    """

    async def drive(url: str, seconds: float = 3.0, concurrency: int = 32) -> float:
        body = {"model": "course-model", "prompt": "a b c d", "max_tokens": 16, "stream": stream}
        done = 0
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
            start = time.monotonic()
            stop = start + seconds

            async def worker() -> None:
                nonlocal done
                while time.monotonic() < stop:
                    async with session.post(url + "/v1/completions", json=body) as response:
                        await response.read()
                        assert response.status == 200
                    done += 1

            await asyncio.gather(*[worker() for _ in range(concurrency)])
            return done / (time.monotonic() - start)

    with start_fleet([ServerSpec("rps", capacity=256, time_scale=0.001)]) as fleet:
        rate = asyncio.run(drive(fleet.url("rps")))
    print(f"one server process: {rate:.0f} requests/s ({'streamed' if stream else 'not streamed'}, 16 tokens each)")
    assert rate > 100
