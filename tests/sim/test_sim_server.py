"""The server model: the latency model's roofline iteration, one shared token budget, kept exact by two virtual clocks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.core.latency import REFERENCE_MODEL, LatencyModel
from solution.sim import Cluster, Fixed, LlmMode, Scenario, ServerSpec, Slowdown, Tier, Workload, simulate
from solution.sim.cluster import ClassicMode, service_rate
from solution.sim.gpus import GIB, GPU_PRESETS, ModelSpec
from solution.sim.results import Outcome
from solution.sim.server import ClassicService, Server

pytestmark = pytest.mark.sim

# Memory: 10 ms + 1 ms per sequence; compute: 0.2 ms per token; 100 tokens per iteration.
MODEL = LatencyModel(weights_s=0.01, kv_s=0.001, token_s=0.0002, token_budget=100)


def drain(server: Server, decode: list[float], first: list[float], until: float = math.inf) -> dict[int, float]:
    """Run the server alone until it is idle (or its next event is after ``until``); return finish times."""
    finish = {}
    while server.running and server.next_time() <= until:
        now = server.next_time()
        for request in server.step(now, decode, first):
            finish[request] = now
    return finish


def test_a_request_alone_prefills_then_decodes() -> None:
    server = Server(0, "s", 4, 80, MODEL)
    first = [math.nan]
    server.admit(1.0, 0, prefill=200.0)  # two full budgets: compute-bound, 100 x 0.2 ms = 20 ms each
    finish = drain(server, decode=[9.0], first=first)  # 10 output tokens: the first comes from the prefill
    assert first[0] == pytest.approx(1.0 + 2 * 0.02)
    assert finish[0] == pytest.approx(first[0] + 9 * 0.011)  # decode alone: memory-bound, 10 + 1 ms
    assert first[0] - 1.0 == pytest.approx(MODEL.ttft(200), rel=1e-12)
    assert finish[0] - 1.0 == pytest.approx(MODEL.e2e(200, 10), rel=1e-12)


def test_prefills_share_one_token_budget_and_the_roofline_bounds_each_iteration() -> None:
    """A starts at 0, B joins at 0.01; times worked out by hand, phase by phase."""
    server = Server(0, "s", 4, 80, MODEL)
    first = [math.nan, math.nan]
    decode = [4.0, 2.0]
    server.admit(0.0, 0, 100.0)  # A alone: 100 tokens per 20 ms iteration (compute > memory 11 ms)
    assert server.next_time() == pytest.approx(0.02)
    assert server.iteration_time() == pytest.approx(0.02)
    server.admit(0.01, 1, 100.0)  # A has 50 tokens; now A and B share the 100-token budget: 50 each per 20 ms
    assert server.next_time() == pytest.approx(0.03)  # A's first token moved later
    finish = drain(server, decode, first, until=0.03)
    assert first[0] == pytest.approx(0.03)
    # B (50 tokens left) prefills beside the decoding A: A takes 1 token, B the other 99; iteration
    # max(10 + 2 ms, 100 x 0.2 ms) = 20 ms, not their sum.
    assert server.iteration_time() == pytest.approx(0.02)
    finish = drain(server, decode, first)
    assert first[1] == pytest.approx(0.03 + 50 / 99 * 0.02)
    a_done = (first[1] - 0.03) / 0.02  # A's decode iterations while B prefilled
    assert finish[1] == pytest.approx(first[1] + 2 * 0.012)  # two decoders: max(12 ms, 0.4 ms)
    assert finish[0] == pytest.approx(finish[1] + (4 - a_done - 2) * 0.011)  # A alone at the end
    assert server.pclock == 0.0 and server.dclock == 0.0 and server.running == 0


def test_a_long_prompt_makes_the_decoders_compute_bound() -> None:
    """Prefill-decode interference: a decoder's token takes 11 ms alone, 20 ms beside a prefill."""
    server = Server(0, "s", 4, 80, MODEL)
    first = [math.nan, math.nan]
    server.admit(0.0, 0, 0.0)  # no prompt: its first token at once, then decodes
    drain(server, [1000.0, 0.0], first, until=0.0)
    assert server.decoding == 1 and server.iteration_time() == pytest.approx(0.011)
    server.admit(0.0, 1, 99.0 * 3)  # 99 tokens per iteration for 3 iterations
    assert server.iteration_time() == pytest.approx(0.02)
    drain(server, [1000.0, 0.0], first, until=0.06 + 1e-9)
    assert first[1] == pytest.approx(0.06)


@settings(max_examples=60, deadline=None)
@given(
    weights=st.floats(1e-4, 0.05), kv=st.floats(0, 2e-3), token=st.floats(1e-6, 5e-4), budget=st.integers(1, 2048),
    batch=st.integers(0, 40), prompt=st.integers(0, 5000), output=st.integers(1, 300), speed=st.sampled_from([0.5, 1.0, 3.0]),
)  # fmt: skip
def test_the_simulated_server_runs_the_latency_model(weights: float, kv: float, token: float, budget: int, batch: int,
                                                     prompt: int, output: int, speed: float) -> None:  # fmt: skip
    """A request that joins ``batch`` decoders that outlast it gets exactly the model's TTFT and e2e
    (held batch: LatencyModel.ttft/e2e(..., batch)); with batch 0 it is a request alone on an idle server."""
    model = LatencyModel(weights, kv, token, budget)
    server = Server(0, "s", batch + 1, 80, model)
    server.set_speed(0.0, speed)
    decode = [1e9] * batch + [float(output - 1)]
    first = [math.nan] * (batch + 1)
    for request in range(batch):
        server.admit(0.0, request, 0.0)
    drain(server, decode, first, until=0.0)  # they move to decode at once
    assert server.decoding == batch
    server.admit(0.0, batch, float(prompt))
    finish = {}
    while batch not in finish:
        now = server.next_time()
        finish.update((r, now) for r in server.step(now, decode, first))
    scaled = model.scaled(speed)
    assert first[batch] == pytest.approx(scaled.ttft(prompt, batch), rel=1e-9, abs=1e-12)
    assert finish[batch] == pytest.approx(scaled.e2e(prompt, output, batch), rel=1e-9, abs=1e-12)


def test_a_slowdown_applies_from_that_instant() -> None:
    server = Server(0, "s", 1, 80, ClassicService())
    server.admit(0.0, 0, 10.0)
    server.set_speed(4.0, 0.5)  # 4 of 10 seconds of service done; the other 6 at half speed
    assert drain(server, [0.0], [math.nan])[0] == pytest.approx(4.0 + 12.0)


def test_a_slowdown_slows_both_phases_of_an_llm_server() -> None:
    server = Server(0, "s", 2, 80, MODEL)
    first = [math.nan]
    server.admit(0.0, 0, 100.0)
    server.set_speed(0.01, 0.5)  # half the prefill done; the rest at half speed
    finish = drain(server, [10.0], first)
    assert first[0] == pytest.approx(0.01 + 0.02)
    assert finish[0] == pytest.approx(first[0] + 10 * 0.022)


def test_a_crash_returns_the_running_requests() -> None:
    server = Server(0, "s", 3, 80, MODEL)
    for request in (5, 2, 9):
        server.admit(0.0, request, 100.0 if request != 2 else 0.0)
    drain(server, [0.0, 0.0, 50.0] + [0.0] * 7, [math.nan] * 10, until=0.0)  # request 2 decodes
    assert server.decoding == 1 and server.prefilling == 2
    assert server.crash(0.01) == [2, 5, 9]
    assert server.running == 0 and not server.up and server.next_time() == math.inf


def test_a_server_needs_a_model() -> None:
    with pytest.raises(TypeError, match="LatencyModel or a ClassicService"):
        Server(0, "s", 1, 80, object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sharing must be a bool"):
        ClassicService(1)  # type: ignore[arg-type]


@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0, 3), st.integers(0, 20)), min_size=1, max_size=12))
def test_work_is_conserved(jobs: list[tuple[float, float, int]]) -> None:
    """Under processor sharing no work is lost or invented: the last job ends when a FIFO one would."""
    jobs.sort()
    server = Server(0, "s", 100, 80, ClassicService(sharing=True))  # one second of service per second, shared
    first = [math.nan] * len(jobs)
    decode = [float(d) for _, _, d in jobs]
    ends: dict[int, float] = {}
    for request, (arrive, prefill, _) in enumerate(jobs):
        while server.running and server.next_time() <= arrive:
            now = server.next_time()
            ends.update((r, now) for r in server.step(now, decode, first))
        server.admit(arrive, request, prefill)
    ends.update(drain(server, decode, first))
    assert sorted(ends) == list(range(len(jobs)))
    done = 0.0
    for arrive, prefill, d in jobs:
        done = max(done, arrive) + prefill + d
    assert max(ends.values()) == pytest.approx(done, rel=1e-9, abs=1e-9)


def test_simulate_llm_mode_times_a_solo_request_as_the_latency_model_predicts() -> None:
    mode = LlmMode(token_budget=512)
    tier = Tier("t", 1.0, Fixed(1000), Fixed(100))
    res = simulate(Scenario(Cluster((ServerSpec("h", "H100-80GB", 8),)), Workload(1, tiers=(tier,)), mode), seed=3)
    model = mode.server_model(GPU_PRESETS["H100-80GB"])
    assert res.ttft[0] == pytest.approx(model.ttft(1000), rel=1e-12)
    assert res.e2e[0] == pytest.approx(model.e2e(1000, 100), rel=1e-12)
    assert res.tpot[0] == pytest.approx(model.decode_step(1), rel=1e-12)


def test_simulate_applies_a_slowdown_to_a_running_request() -> None:
    tier = Tier("t", 1.0, Fixed(0), Fixed(101))  # no prompt: 100 decode steps after an instant first token
    cluster = Cluster((ServerSpec("g", "A100-80GB", 4),))
    base = Scenario(cluster, Workload(1, tiers=(tier,)))
    plain = simulate(base, seed=0)
    step = (plain.finish[0] - plain.first_token[0]) / 100
    halfway = plain.first_token[0] + 50 * step
    slowed = simulate(Scenario(cluster, Workload(1, tiers=(tier,)), timetable=(Slowdown(halfway, "g", 3.0),)), seed=0)
    assert slowed.finish[0] == pytest.approx(halfway + 50 * step * 3.0)


@pytest.mark.parametrize(("prompt", "output", "capacity"), [(300, 200, 16), (4000, 20, 16), (100, 400, 8), (2000, 2, 4)])
def test_an_overloaded_server_completes_its_service_rate(prompt: int, output: int, capacity: int) -> None:
    """service_rate is the saturated throughput: decode-heavy and prefill-heavy workloads alike (within 3%)."""
    tier = Tier("t", 1.0, Fixed(prompt), Fixed(output))
    scenario = Scenario(Cluster((ServerSpec("g", "A100-80GB", capacity),)), Workload(10_000, tiers=(tier,)), load=10.0)
    res = simulate(scenario, seed=1)
    done = res.finish[res.outcome == Outcome.COMPLETED]
    window = np.quantile(done, [0.2, 0.8])
    measured = ((done >= window[0]) & (done < window[1])).sum() / (window[1] - window[0])
    model = LlmMode().server_model(GPU_PRESETS["A100-80GB"])
    expected = service_rate(model, capacity, float(prompt), float(output - 1))
    assert measured == pytest.approx(expected, rel=0.03)


def test_service_rate_in_classic_mode_and_bad_input() -> None:
    assert service_rate(ClassicMode().server_model(GPU_PRESETS["A10-24GB"]), 4, 2.0, 0.0) == 2.0
    assert service_rate(ClassicMode(sharing=True).server_model(GPU_PRESETS["A10-24GB"]), 4, 2.0, 0.0) == 0.5
    with pytest.raises(ValueError, match="no work"):
        service_rate(MODEL, 4, 0.0, 0.0)


def test_faster_gpus_serve_faster_in_the_datasheet_ratios() -> None:
    model = ModelSpec()
    a100, h100 = (model.latency_model(GPU_PRESETS[g]) for g in ("A100-80GB", "H100-80GB"))
    assert a100.weights_s / h100.weights_s == pytest.approx(3350 / 2039)  # decode: memory bandwidth
    assert a100.kv_s / h100.kv_s == pytest.approx(3350 / 2039)
    assert a100.token_s / h100.token_s == pytest.approx(989 / 312)  # prefill: FLOPS
    with pytest.raises(ValueError, match="does not fit"):
        ModelSpec(params=70e9).default_capacity(GPU_PRESETS["A10-24GB"])


def test_memory_sizes_are_gib_and_the_capacity_uses_them() -> None:
    """GPU memory is binary (80 GB = 80 GiB), bandwidth decimal: the capacity divides bytes by bytes."""
    model = ModelSpec()
    per_sequence = 2 * 32 * 4096 * 2 * 2048  # 512 KiB of KV cache per token, 2,048 tokens
    for gpu in GPU_PRESETS.values():
        assert gpu.memory_bytes == gpu.memory_gb * GIB == gpu.memory_gb * 2**30
        assert model.default_capacity(gpu) == (gpu.memory_gb * 2**30 * 0.9 - 14e9) // per_sequence
    assert [model.default_capacity(GPU_PRESETS[g]) for g in ("A10-24GB", "A100-40GB", "A100-80GB")] == [8, 22, 58]
    assert "SXM5" in GPU_PRESETS["H100-80GB"].product and "SXM5" in GPU_PRESETS["H100-80GB"].source
    assert all("SXM4" in GPU_PRESETS[g].product for g in ("A100-40GB", "A100-80GB"))


def test_the_reference_model_is_the_default_model_on_an_a100() -> None:
    assert REFERENCE_MODEL == ModelSpec().latency_model(GPU_PRESETS["A100-80GB"])
    assert LlmMode().server_model(GPU_PRESETS["A100-80GB"]) == REFERENCE_MODEL


def test_decoding_slows_each_sequence_but_raises_the_servers_throughput() -> None:
    model = ModelSpec().latency_model(GPU_PRESETS["A100-80GB"])
    steps = np.array([model.decode_step(b) for b in range(1, 65)])
    assert (np.diff(steps) > 0).all()
    assert (np.diff(np.arange(1, 65) / steps) > 0).all()  # tokens/s of the whole server still rises
    with pytest.raises(ValueError):
        LlmMode(token_budget=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [({"params": 0}, ValueError, "params"), ({"params": "7B"}, TypeError, "params"),
     ({"max_context": 0}, ValueError, "max_context"), ({"typical_context": 1.5}, TypeError, "typical_context"),
     ({"compute_efficiency": 1.5}, ValueError, "compute_efficiency"), ({"memory_headroom": 0.0}, ValueError, "memory_headroom")],
)  # fmt: skip
def test_a_model_spec_refuses_bad_numbers(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ModelSpec(**kwargs)  # type: ignore[arg-type]
