"""The KV prefix cache in the simulator: prefill skipped on a hit, blocks cached at the first token, lost in a crash;
session keys and prefix blocks from the Sessions workload, and into the router's Request records."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution import LoadBalancer
from solution.core.routing import LeastConnections, Router
from solution.sim import Cluster, Crash, LlmMode, Recover, Scenario, ScenarioError, simulate
from solution.sim.gpus import GPU_PRESETS, MODEL_PRESETS
from solution.sim.kvcache import KvCacheConfig
from solution.sim.mooncake import MooncakeWorkload
from solution.sim.runner import SimClock
from solution.sim.workload import Fixed, LogNormal, Sessions, Tier, Workload, block_hashes

pytestmark = pytest.mark.sim

MODEL = MODEL_PRESETS["Llama-3.1-8B"]
LATENCY = LlmMode(model=MODEL).server_model(GPU_PRESETS["A100-80GB"])


def replay(tmp_path: Path, rows: list[tuple[float, list[int], int, int]], **changes: object) -> Scenario:
    """A made-up Mooncake trace (ms, blocks, input tokens, output tokens) on one A100, a KV cache on."""
    path = tmp_path / "trace.jsonl"
    path.write_text("".join(json.dumps({"timestamp": ms, "input_length": inp, "output_length": out, "hash_ids": b}) + "\n"
                            for ms, b, inp, out in rows))  # fmt: skip
    options: dict[str, object] = {"kv_cache": KvCacheConfig()}
    options.update(changes)
    return Scenario(Cluster.uniform(1), MooncakeWorkload(str(path)), LlmMode(model=MODEL), **options)  # type: ignore[arg-type]


TWO_TURNS = [(0, [1, 2, 3], 1536, 1), (100_000, [1, 2, 3, 4], 2000, 1)]  # turn 2, alone 100 s later, resends turn 1's 3 blocks


@pytest.mark.parametrize("health", [False, True])
def test_a_hit_skips_the_prefill_of_the_cached_blocks(tmp_path: Path, health: bool) -> None:
    scenario = replay(tmp_path, TWO_TURNS)
    scenario = scenario.with_health() if health else scenario
    res = simulate(scenario, lambda: Router(LeastConnections()), seed=0)
    cache = res.cache
    assert cache.hit_blocks.tolist() == [0, 3] and cache.saved.tolist() == [0, 1536] and cache.blocks.tolist() == [3, 4]
    assert res.ttft[0] == pytest.approx(LATENCY.prefill_time(1536), rel=1e-9)  # alone on an idle server: the model exactly
    assert res.ttft[1] == pytest.approx(LATENCY.prefill_time(2000 - 1536), rel=1e-9)
    assert cache.hit_rate() == pytest.approx(3 / 7) and cache.saved_share() == pytest.approx(1536 / 3536)
    without = simulate(replace(scenario, kv_cache=None), lambda: Router(LeastConnections()), seed=0)
    assert without.cache is None and without.ttft[1] == pytest.approx(LATENCY.prefill_time(2000), rel=1e-9)
    # blocks join the cache when the prefill is done (the first token), not at admission
    assert cache.event_time.tolist() == pytest.approx([res.first_token[0], res.first_token[1]])
    assert cache.occupancy_over_time(np.array([0.0, res.first_token[0] + 1e-6, 200.0])).ravel().tolist() == [0, 3, 4]


def test_a_crash_empties_the_servers_cache(tmp_path: Path) -> None:
    scenario = replay(tmp_path, TWO_TURNS, timetable=(Crash(50.0, "gpu-0"), Recover(60.0, "gpu-0")))
    res = simulate(scenario, LoadBalancer, seed=0)  # a stage-1 balancer: no records, the cache works the same
    assert res.cache.hit_blocks.tolist() == [0, 0]
    assert res.ttft[1] == pytest.approx(LATENCY.prefill_time(2000), rel=1e-9)
    assert res.cache.occupancy_over_time(np.array([55.0])).tolist() == [[0]]


def test_a_small_cache_evicts_and_a_full_hit_still_computes_the_last_token(tmp_path: Path) -> None:
    rows = [(0, [1, 2, 3], 1536, 1), (10_000, [1, 2, 3], 1536, 1), (20_000, [9, 8], 1024, 1), (30_000, [1, 2, 3], 1536, 1)]
    res = simulate(replay(tmp_path, rows, kv_cache=KvCacheConfig(3)), LoadBalancer, seed=0)
    assert res.cache.hit_blocks.tolist() == [0, 3, 0, 1]  # [9, 8] evicted 3 then 2; block 1 (the most recent) stayed
    assert res.cache.saved.tolist() == [0, 1535, 0, 512]


def test_the_router_gets_session_ids_and_prefix_blocks(tmp_path: Path) -> None:
    seen: list[tuple[str | None, tuple[int, ...]]] = []

    class Recording(LeastConnections):
        def choose(self, request):  # type: ignore[no-untyped-def]
            seen.append((request.session_id, request.prefix_blocks))
            return super().choose(request)

    rows = [(0, [0, 5, 6], 1536, 1), (10, [0, 7], 1024, 1), (20, [0, 5, 6, 9], 2000, 1)]
    for health in (False, True):
        seen.clear()
        scenario = replay(tmp_path, rows)
        simulate(scenario.with_health() if health else scenario, lambda: Router(Recording()), seed=0)
        assert seen == [("s0", (0, 5, 6)), ("s1", (0, 7)), ("s0", (0, 5, 6, 9))]


def test_a_sim_clock_reads_the_simulated_time(tmp_path: Path) -> None:
    clock, read = SimClock(), []

    class Timed(LeastConnections):
        def choose(self, request):  # type: ignore[no-untyped-def]
            read.append(clock())
            return super().choose(request)

    assert clock() == 0.0
    simulate(replay(tmp_path, TWO_TURNS).with_health(), lambda: Router(Timed()), seed=0, clock=clock)
    assert read == [0.0, 100.0]
    with pytest.raises(TypeError, match="SimClock"):
        simulate(replay(tmp_path, TWO_TURNS), LoadBalancer, seed=0, clock=lambda: 0.0)  # type: ignore[arg-type]


def test_a_kv_cache_needs_llm_mode_and_blocks() -> None:
    from solution.sim import ClassicMode, scenarios

    with pytest.raises(ScenarioError, match="LlmMode"):
        Scenario(Cluster.uniform(1), Workload(10), ClassicMode(), kv_cache=KvCacheConfig(10))
    with pytest.raises(ValueError, match="prefix blocks"):
        simulate(scenarios.steady(servers=1, requests=10).with_kv_cache(), LoadBalancer, seed=0)
    with pytest.raises(TypeError):
        Scenario(Cluster.uniform(1), Workload(10), kv_cache=100)  # type: ignore[arg-type]


# -- the Sessions workload's keys and blocks ---------------------------------------------------------------------------


def sessions(requests: int = 400, **spec: object) -> Workload:
    tier = Tier("chat", 1.0, LogNormal(600, 0.8, high=4096), LogNormal(250, 0.7, high=2048))
    return Workload(requests, tiers=(tier,), sessions=Sessions(**spec))  # type: ignore[arg-type]


@given(st.integers(0, 2**31), st.sampled_from([0, 512, 1000, 2048]), st.sampled_from([4096, 32768]))
@settings(max_examples=25, deadline=None)
def test_a_turn_resends_the_previous_turns_full_blocks(seed: int, system: int, context: int) -> None:
    req = sessions(system_tokens=system, max_context=context).generate(np.random.default_rng(seed), np.random.default_rng(seed))
    n = len(req)
    assert (np.diff(req.block_offsets) == -(-req.prompt_tokens // 512)).all()
    assert (req.keys() == req.session).all()
    system_blocks = system // 512
    blocks = [req.prefix_blocks(i) for i in range(n)]
    for i in range(n):
        assert blocks[i][:system_blocks] == blocks[0][:system_blocks]  # the system prompt: the same everywhere
        if i and req.session[i] == req.session[i - 1]:
            full = int(req.prompt_tokens[i - 1]) // 512
            assert blocks[i][:full] == blocks[i - 1][:full]  # the previous turn's full blocks, resent
    # a partial last block, and every block past the system prompt, belongs to one session only
    owner: dict[int, int] = {}
    for i in range(n):
        for j, b in enumerate(blocks[i]):
            if j >= system_blocks:
                assert owner.setdefault(b, int(req.session[i])) == req.session[i]
    assert 0 <= req.ceiling() < 1


def test_hot_share_puts_that_share_of_sessions_under_one_key_and_changes_nothing_else() -> None:
    rng = lambda: (np.random.default_rng(3), np.random.default_rng(4))  # noqa: E731
    plain = sessions(4000).generate(*rng())
    hot = sessions(4000, hot_share=0.3).generate(*rng())
    for name in ("arrival", "prompt_tokens", "output_tokens", "session", "think", "blocks"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(hot, name))
    count = int(plain.session.max()) + 1
    keyed = np.unique(plain.session[hot.session_key == count])
    assert 0.25 < len(keyed) / count < 0.35
    assert ((hot.session_key == count) | (hot.session_key == hot.session)).all()
    with pytest.raises(ValueError):
        Sessions(hot_share=1.5)
    with pytest.raises(ValueError):
        Sessions(system_tokens=16384, max_context=16384)


def test_block_hashes_of_requests_outside_sessions_are_their_own() -> None:
    offsets, blocks = block_hashes(np.array([-1, -1]), np.array([1024, 1024]))
    assert offsets.tolist() == [0, 2, 4] and len(set(blocks.tolist())) == 4
    _, same = block_hashes(np.array([4, 4]), np.array([1024, 1100]))
    assert same[:2].tolist() == same[2:4].tolist() and same[4] not in same[:4]
    assert len(block_hashes(np.array([0]), np.array([0]))[1]) == 0
    assert not math.isnan(sessions(50).generate(np.random.default_rng(0), np.random.default_rng(0)).ceiling())
    assert Fixed(1).tokens == 1


@given(st.integers(0, 1000), st.sampled_from([1, 8, 40, 912]), st.sampled_from(["none", "hard", "prefix"]))
@settings(max_examples=12, deadline=None)
def test_cache_records_stay_within_their_bounds(seed: int, capacity: int, kind: str) -> None:
    from solution.sim.affinityrace import affinity_run

    run = affinity_run(kind, cache_blocks=capacity, requests=150, seed=seed)
    cache, res = run.results.cache, run.results
    assert (cache.hit_blocks <= np.minimum(cache.blocks, capacity)).all()
    assert (cache.saved <= np.maximum(cache.prompt - 1, 0)).all() and (cache.saved >= 0).all()
    assert (cache.saved <= 512 * cache.hit_blocks).all()
    assert (cache.event_blocks <= capacity).all() and (run.occupancy <= capacity).all()
    assert cache.server_hits.sum() >= cache.hit_blocks.sum()  # re-sent tries look up too
    assert (cache.prompt == res.prompt_tokens).all()
    done = res.outcome == 0
    assert (res.ttft[done] >= 0).all()


def test_a_run_with_a_cache_and_affinity_is_reproducible_bit_for_bit() -> None:
    from solution.sim.affinityrace import affinity_run

    a, b = affinity_run("soft", requests=300, seed=5), affinity_run("soft", requests=300, seed=5)
    assert a.results.same_as(b.results)
    for name in ("hit_blocks", "saved", "event_time", "event_blocks"):
        assert np.array_equal(getattr(a.results.cache, name), getattr(b.results.cache, name))
    assert a.metrics == b.metrics or all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a.metrics.values(), b.metrics.values()))
