"""The load generator: bounded by count and time, open loop, what it measures and records, and its builders."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.gateway.loadgen import (
    LoadRequest,
    closed_loop,
    LoadResult,
    from_azure_trace,
    from_requests,
    from_sim_workload,
    prompt_text,
    run_replay,
    summarize,
)
from solution.gateway.procs import ServerSpec, start_fleet
from solution.sim.workload import Fixed, Poisson, Sessions, Tier, Workload
from tests.gateway.stub_backend import StubBackend, run, wait_until

pytestmark = pytest.mark.stage8


@pytest.fixture(scope="session")
def trace_dir():  # type: ignore[no-untyped-def]
    """tests/sim's trace folder (skip locally without the trace, fail under CI), imported only when a test asks for it."""
    from tests.sim.conftest import TRACE_DIR, _data_folder

    return _data_folder(TRACE_DIR, "AzureLLMInferenceTrace_conv.csv",
                        "the Azure LLM inference 2023 trace is missing; download AzureLLMInferenceTrace_conv.csv "
                        "from github.com/Azure/AzurePublicDataset (data/) into that folder to run this test")  # fmt: skip


@pytest.fixture
def stub() -> Iterator[StubBackend]:
    server = StubBackend("s1").start()
    try:
        yield server
    finally:
        server.release()
        server.stop()


def at_once(n: int, **kw: object) -> list[LoadRequest]:
    return [LoadRequest(0.0, 3, 2, **kw) for _ in range(n)]  # type: ignore[arg-type]


# -- bounds ------------------------------------------------------------------------------------


def test_at_most_max_requests_are_sent(stub: StubBackend) -> None:
    results = run_replay(stub.url, at_once(20), max_requests=5, max_seconds=10)
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert stub.served == 5 and all(r.ok for r in results)


def test_max_seconds_bounds_the_run_and_cuts_off_open_answers(stub: StubBackend) -> None:
    stub.hold()  # every answer stays open
    requests = [LoadRequest(0.1 * i, 3, 2) for i in range(100)]  # 10 s of arrivals
    began = time.monotonic()
    results = run_replay(stub.url, requests, max_requests=100, max_seconds=0.5)
    took = time.monotonic() - began
    assert took < 3.0  # 0.5 s, plus closing the connections
    assert 1 <= len(results) <= 6  # arrivals at 0.0 .. 0.5 s only
    assert all(r.error == "deadline" and r.e2e is None and r.status in (200, None) for r in results)
    assert max(r.at for r in results) <= 0.5


def test_the_generator_is_open_loop_later_requests_do_not_wait_for_answers(stub: StubBackend) -> None:
    from concurrent.futures import ThreadPoolExecutor

    stub.hold()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run_replay, stub.url, [LoadRequest(0.05 * i, 3, 2) for i in range(3)],
                             max_requests=3, max_seconds=10)  # fmt: skip
        wait_until(lambda: stub.in_flight == 3, what="all 3 requests in flight while none is answered")
        stub.release()
        results = future.result(10)
    assert all(r.ok for r in results)


def test_closed_loop_keeps_exactly_its_clients_busy_for_its_seconds() -> None:
    import asyncio

    server = StubBackend("s1", token_delay=0.005).start()
    try:
        began = time.monotonic()
        results = asyncio.run(closed_loop(server.url, concurrency=3, seconds=0.4, max_tokens=2))
        took = time.monotonic() - began
    finally:
        server.stop()
    assert took < 2.0 and len(results) >= 6 and all(r.ok and r.tokens == 2 for r in results)
    assert server.max_in_flight == 3  # never more than its clients, and all of them busy
    assert all(r.at <= 0.4 for r in results) and [r.at for r in results] == sorted(r.at for r in results)
    with pytest.raises(ValueError):
        asyncio.run(closed_loop(server.url, concurrency=0, seconds=1.0))


# -- what it measures and records ------------------------------------------------------------------


def test_ttft_is_the_first_chunk_and_e2e_the_end_of_the_stream() -> None:
    server = StubBackend("s1", token_delay=0.03).start()
    try:
        (result,) = run_replay(server.url, [LoadRequest(0.0, 3, 5)], max_requests=1, max_seconds=10)
    finally:
        server.stop()
    assert result.ok and result.tokens == 5 and result.server == "s1"
    assert result.ttft is not None and result.e2e is not None
    assert result.ttft >= 0.03 and result.e2e - result.ttft >= 4 * 0.03 * 0.9  # four more chunks after the first


def test_a_non_streamed_answer_counts_usage_tokens(stub: StubBackend) -> None:
    (result,) = run_replay(stub.url, [LoadRequest(0.0, 3, 7, stream=False)], max_requests=1, max_seconds=10)
    assert result.ok and result.tokens == 7 and result.ttft == result.e2e


def test_status_and_retry_after_are_recorded(stub: StubBackend) -> None:
    stub.status, stub.retry_after = 429, "7"
    (seconds,) = run_replay(stub.url, at_once(1), max_requests=1, max_seconds=10)
    stub.retry_after = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    (date,) = run_replay(stub.url, at_once(1), max_requests=1, max_seconds=10)
    assert (seconds.status, seconds.error, seconds.retry_after) == (429, "status", 7.0)
    assert date.status == 429 and 55 <= date.retry_after <= 61  # type: ignore[operator]
    stub.status, stub.retry_after = 500, None
    (failed,) = run_replay(stub.url, at_once(1), max_requests=1, max_seconds=10)
    assert (failed.status, failed.error, failed.retry_after, failed.ok) == (500, "status", None, False)


def test_connection_errors_and_broken_streams_are_recorded(stub: StubBackend) -> None:
    import socket

    with socket.socket() as bound:  # bound, never listening: refused for sure (a free_port() could be taken meanwhile)
        bound.bind(("127.0.0.1", 0))
        (refused,) = run_replay(f"http://127.0.0.1:{bound.getsockname()[1]}", at_once(1), max_requests=1, max_seconds=10)
    assert (refused.status, refused.error) == (None, "connect")
    stub.hold()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run_replay, stub.url, at_once(1), max_requests=1, max_seconds=10)
        wait_until(lambda: stub.in_flight == 1, what="the request in flight")
        stub.crash()  # the stream's headers are out: the client sees the connection drop mid-answer
        (broken,) = future.result(10)
    assert broken.status == 200 and broken.error in ("reset", "truncated") and broken.e2e is None


def test_a_request_that_times_out_is_recorded(stub: StubBackend) -> None:
    stub.hold()
    (result,) = run_replay(stub.url, at_once(1), max_requests=1, max_seconds=10, request_timeout=0.3)
    assert result.error == "timeout" and result.e2e is None


def test_replay_and_requests_refuse_bad_input(stub: StubBackend) -> None:
    good = at_once(1)
    for kwargs in (dict(max_requests=-1), dict(max_seconds=0), dict(max_seconds=math.inf), dict(time_scale=-1.0),
                   dict(request_timeout=float("nan")), dict(max_connections=0)):  # fmt: skip
        options = dict(max_requests=1, max_seconds=1.0)
        options.update(kwargs)
        with pytest.raises(ValueError):
            run_replay(stub.url, good, **options)
    with pytest.raises(ValueError):
        run_replay("127.0.0.1:80", good, max_requests=1, max_seconds=1.0)
    with pytest.raises(TypeError):
        run_replay(stub.url, [(0.0, 3, 2)], max_requests=1, max_seconds=1.0)  # type: ignore[list-item]
    assert stub.served == 0  # nothing was sent
    for args in ((-1.0, 3, 2), (math.nan, 3, 2), (0.0, 0, 2), (0.0, 3, 0), (0.0, True, 2)):
        with pytest.raises((TypeError, ValueError)):
            LoadRequest(*args)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LoadRequest(0.0, 3, 2, api_key="")
    assert prompt_text(3) == "tok tok tok"


def test_summary_figures_from_known_results() -> None:
    ok = [LoadResult(i, float(i), 0.0, 200, 0.1 * (i + 1), 1.0 * (i + 1), 10, None, None) for i in range(4)]
    bad = [LoadResult(4, 4.0, 0.0, 503, None, 0.5, 0, 2.0, "status"), LoadResult(5, 5.0, 0.0, None, None, None, 0, None, "connect")]
    s = summarize(ok + bad)
    assert (s.sent, s.ok, s.errors, s.statuses) == (6, 4, {"status": 1, "connect": 1}, {503: 1})
    assert s.span == pytest.approx(7.0)  # first intended send 0.0; last end 3.0 + 4.0
    assert s.offered == pytest.approx(5 / 5)  # 6 sends, 5 gaps over 5 s
    assert s.throughput == pytest.approx(4 / 7) and s.tokens_per_second == pytest.approx(40 / 7)
    assert s.e2e_p50 == pytest.approx(2.5) and s.ttft_p50 == pytest.approx(0.25)
    assert s.e2e_p99 == pytest.approx(np.percentile([1, 2, 3, 4], 99))
    assert "4/6 ok" in s.line("x") and "connect 1" in s.line()
    assert math.isnan(s.added_p50) and "added" not in s.line()  # no server times: no added figures
    empty = summarize([])
    assert empty.sent == 0 and math.isnan(empty.e2e_p50)


# -- builders ---------------------------------------------------------------------------------------


WORKLOAD = Workload(200, Poisson(10.0), (Tier("free", 0.5, Fixed(8), Fixed(4)), Tier("paid", 0.5, Fixed(16), Fixed(2))))


def test_from_sim_workload_is_seeded_sorted_and_time_scaled() -> None:
    a = from_sim_workload(WORKLOAD, seed=3, time_scale=0.5, api_key={"paid": "key-paid"})
    assert a == from_sim_workload(WORKLOAD, seed=3, time_scale=0.5, api_key={"paid": "key-paid"})
    assert a != from_sim_workload(WORKLOAD, seed=4, time_scale=0.5, api_key={"paid": "key-paid"})
    assert len(a) == 200 and a[0].at == 0.0 and all(x.at <= y.at for x, y in zip(a, a[1:]))
    slow = from_sim_workload(WORKLOAD, seed=3, time_scale=1.0, api_key={"paid": "key-paid"})
    assert [x.at for x in a] == pytest.approx([0.5 * x.at for x in slow])
    assert {(r.prompt_tokens, r.max_tokens, r.api_key) for r in a} == {(8, 4, None), (16, 2, "key-paid")}
    assert 200 / slow[-1].at == pytest.approx(10.0, rel=0.25)  # the workload's own rate


def test_from_sim_workload_on_a_scenario_replays_what_the_simulator_draws() -> None:
    from solution.sim.race import heterogeneous
    from solution.sim.runner import prepare

    scenario = heterogeneous(requests=300)
    drawn = prepare(scenario, 5).requests
    replay = from_sim_workload(scenario, seed=5, max_output_tokens=64)
    order = np.argsort(drawn.arrival, kind="stable")
    assert [r.prompt_tokens for r in replay] == [int(max(1, p)) for p in drawn.prompt_tokens[order]]
    assert [r.max_tokens for r in replay] == [int(min(64, max(1, o))) for o in drawn.output_tokens[order]]


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.floats(0, 1e4), st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 1)),
                     min_size=1, max_size=40),
       scale=st.floats(1e-3, 10.0), high=st.none() | st.integers(1, 500))  # fmt: skip
def test_from_requests_keeps_every_request_in_time_order_from_zero(rows, scale, high) -> None:  # type: ignore[no-untyped-def]
    from solution.sim.workload import Requests

    arrival, prompt, output, tier = (np.array(col) for col in zip(*rows))
    n = len(rows)
    requests = Requests(arrival.astype(float), prompt.astype(np.int64), output.astype(np.int64), tier.astype(np.int16),
                        ("free", "paid"), np.full(n, -1, dtype=np.int64), np.zeros(n))  # fmt: skip
    out = from_requests(requests, time_scale=scale, api_key={"paid": "k"}, max_output_tokens=high)
    assert len(out) == n and out[0].at == 0.0 and all(a.at <= b.at for a, b in zip(out, out[1:]))
    assert sorted(r.at for r in out) == pytest.approx(sorted((arrival - arrival.min()) * scale))
    assert all(r.prompt_tokens >= 1 and 1 <= r.max_tokens <= (high or 10_000) for r in out)
    assert sorted(r.api_key is not None for r in out) == sorted(bool(t) for t in tier)  # the paid tier's key only


def test_builders_refuse_sessions_and_bad_input() -> None:
    with pytest.raises(ValueError, match="open-loop"):
        from_sim_workload(Workload(20, sessions=Sessions()), seed=0)
    with pytest.raises(TypeError):
        from_sim_workload("workload")
    with pytest.raises(ValueError):
        from_sim_workload(WORKLOAD, seed=-1)
    with pytest.raises(TypeError):
        from_requests([1, 2, 3])
    with pytest.raises(ValueError):
        from_sim_workload(WORKLOAD, time_scale=0.0)
    with pytest.raises(FileNotFoundError, match="AzurePublicDataset"):
        from_azure_trace("/nonexistent/trace.csv", time_scale=0.1)


def test_from_azure_trace_is_time_scaled_and_limited(trace_dir) -> None:  # type: ignore[no-untyped-def]
    path = trace_dir / "AzureLLMInferenceTrace_conv.csv"
    full = from_azure_trace(path, time_scale=1.0, limit=50)
    fast = from_azure_trace(path, time_scale=0.02, limit=50, max_output_tokens=32)
    assert len(fast) == 50 and fast[0].at == 0.0
    assert [r.at for r in fast] == pytest.approx([0.02 * r.at for r in full])
    assert all(1 <= r.max_tokens <= 32 for r in fast) and all(r.prompt_tokens >= 1 for r in fast)


# -- against real inference servers -------------------------------------------------------------------


def test_replay_against_an_inference_server_streams_every_token() -> None:
    requests = from_sim_workload(WORKLOAD, seed=0, time_scale=0.02)[:30]
    with start_fleet([ServerSpec("s1", capacity=4)]) as fleet:
        results = run_replay(fleet.url("s1"), requests, max_requests=30, max_seconds=20)
    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
    assert [r.tokens for r in results] == [r.max_tokens for r in requests]
    assert all(r.server == "s1" and r.ttft is not None and r.ttft <= r.e2e for r in results)  # type: ignore[operator]
    # the server's own times (its ": model-timing" comment): the path adds something, never a negative time
    assert all(r.model_e2e is not None and r.model_ttft is not None and r.added > -0.002 for r in results)  # type: ignore[operator]
    summary = summarize(results)
    assert 0 <= summary.added_p50 <= summary.added_p99 and "added p50/p99" in summary.line()
