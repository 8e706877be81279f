"""The server model: continuous batching kept exact by a virtual clock, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from solution.sim import Cluster, Fixed, LlmMode, Scenario, ServerSpec, Slowdown, Tier, Workload, simulate
from solution.sim.gpus import GPU_PRESETS, ModelSpec, ServerTiming
from solution.sim.server import Server

pytestmark = pytest.mark.sim

TIMING = ServerTiming(t_base=0.01, t_decode=0.001, t_chunk=0.05)


def drain(server: Server, decode: list[float], first: list[float]) -> dict[int, float]:
    """Run the server alone until it is idle; return each request's finish time."""
    finish = {}
    while server.tags:
        now = server.next_time()
        for request in server.step(now, decode, first):
            finish[request] = now
    return finish


def test_a_request_alone_prefills_then_decodes() -> None:
    server = Server(0, "s", 4, 80, TIMING)
    first = [math.nan]
    server.admit(1.0, 0, prefill_steps=2.0)  # a 1,024-token prompt in 512-token chunks
    finish = drain(server, decode=[9.0], first=first)  # 10 output tokens: the first comes from the prefill
    assert first[0] == pytest.approx(1.0 + 2 * (0.01 + 0.05))
    assert finish[0] == pytest.approx(first[0] + 9 * (0.01 + 0.001))


def test_every_running_request_slows_down_when_the_batch_grows() -> None:
    """A starts at 0; B joins at 0.03.  Times worked out by hand, step by step."""
    server = Server(0, "s", 4, 80, TIMING)
    first = [math.nan, math.nan]
    decode = [4.0, 2.0]
    server.admit(0.0, 0, 1.0)  # A prefills alone: 0.06 s per step
    assert server.next_time() == pytest.approx(0.06)
    server.admit(0.03, 1, 1.0)  # A is half done; two prefills: 0.11 s per step
    assert server.next_time() == pytest.approx(0.03 + 0.5 * 0.11)  # A's first token moved later
    finish = drain(server, decode, first)
    assert first[0] == pytest.approx(0.085)
    assert first[1] == pytest.approx(0.085 + 0.5 * 0.061)  # one prefill + one decode: 0.061 s per step
    assert finish[1] == pytest.approx(first[1] + 2 * 0.012)  # two decodes: 0.012 s per step
    assert finish[0] == pytest.approx(finish[1] + 1.5 * 0.011)  # A alone for its last 1.5 steps
    assert server.clock == 0.0 and server.running == 0


def test_a_slowdown_applies_from_that_instant() -> None:
    server = Server(0, "s", 1, 80, ServerTiming(1.0, 0.0, 0.0))
    server.admit(0.0, 0, 10.0)
    server.set_speed(4.0, 0.5)  # 4 of 10 steps done; the other 6 at half speed
    assert drain(server, [0.0], [math.nan])[0] == pytest.approx(4.0 + 12.0)


def test_a_crash_returns_the_running_requests() -> None:
    server = Server(0, "s", 3, 80, TIMING)
    for request in (5, 2, 9):
        server.admit(0.0, request, 1.0)
    assert server.crash(0.01) == [2, 5, 9]
    assert server.running == 0 and not server.up and server.next_time() == math.inf


@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0, 3), st.integers(0, 20)), min_size=1, max_size=12))
def test_work_is_conserved(jobs: list[tuple[float, float, int]]) -> None:
    """Total busy time equals the sum over iterations: no work is lost or invented."""
    jobs.sort()
    server = Server(0, "s", 100, 80, ServerTiming(0.0, 1.0, 1.0))  # processor sharing: 1 step/s in total
    first = [math.nan] * len(jobs)
    decode = [float(d) for _, _, d in jobs]
    ends: dict[int, float] = {}
    for request, (arrive, prefill, _) in enumerate(jobs):
        while server.tags and server.next_time() <= arrive:
            now = server.next_time()
            ends.update((r, now) for r in server.step(now, decode, first))
        server.admit(arrive, request, prefill)
    ends.update(drain(server, decode, first))
    assert sorted(ends) == list(range(len(jobs)))
    # With one step per second shared by all, the server finishes the last job when a FIFO one would.
    done = 0.0
    for arrive, prefill, d in jobs:
        done = max(done, arrive) + prefill + d
    assert max(ends.values()) == pytest.approx(done, rel=1e-9, abs=1e-9)


def test_simulate_llm_mode_times_a_solo_request_exactly() -> None:
    mode = LlmMode(chunk=512)
    tier = Tier("t", 1.0, Fixed(1024), Fixed(100))
    res = simulate(Scenario(Cluster((ServerSpec("h", "H100-80GB", 8),)), Workload(1, tiers=(tier,)), mode), seed=3)
    t = mode.timing(GPU_PRESETS["H100-80GB"])
    assert res.ttft[0] == pytest.approx(2 * (t.t_base + t.t_chunk))
    assert res.e2e[0] == pytest.approx(res.ttft[0] + 99 * (t.t_base + t.t_decode))
    assert res.tpot[0] == pytest.approx(t.t_base + t.t_decode)


def test_simulate_applies_a_slowdown_to_a_running_request() -> None:
    tier = Tier("t", 1.0, Fixed(0), Fixed(101))  # no prompt: 100 decode steps after an instant first token
    cluster = Cluster((ServerSpec("g", "A100-80GB", 4),))
    base = Scenario(cluster, Workload(1, tiers=(tier,)))
    plain = simulate(base, seed=0)
    step = (plain.finish[0] - plain.first_token[0]) / 100
    halfway = plain.first_token[0] + 50 * step
    slowed = simulate(Scenario(cluster, Workload(1, tiers=(tier,)), timetable=(Slowdown(halfway, "g", 3.0),)), seed=0)
    assert slowed.finish[0] == pytest.approx(halfway + 50 * step * 3.0)


def test_faster_gpus_serve_faster_in_the_datasheet_ratios() -> None:
    model = ModelSpec()
    a100, h100 = (model.timing(GPU_PRESETS[g], 512) for g in ("A100-80GB", "H100-80GB"))
    assert a100.t_base / h100.t_base == pytest.approx(3350 / 2039)  # decode: memory bandwidth
    assert a100.t_chunk / h100.t_chunk == pytest.approx(989 / 312)  # prefill: FLOPS
    capacities = [model.default_capacity(g) for g in GPU_PRESETS.values()]
    assert capacities == sorted(capacities) and capacities[0] >= 1
    with pytest.raises(ValueError, match="does not fit"):
        ModelSpec(params=70e9).default_capacity(GPU_PRESETS["A10-24GB"])


def test_iteration_time_grows_with_the_batch() -> None:
    t = ModelSpec().timing(GPU_PRESETS["A100-80GB"], 512)
    times = np.array([t.iteration_time(b) for b in range(1, 65)])
    assert (np.diff(times) > 0).all()
    per_server = np.arange(1, 65) / times  # tokens/s of the whole server still rises
    assert (np.diff(per_server) > 0).all()
    with pytest.raises(ValueError):
        ServerTiming(0.0, 0.0, 1.0)
