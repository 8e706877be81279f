"""The engine as a whole: conservation, capacity, crashes, determinism, the fast path."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from solution.sim import (
    AddServer,
    ClassicMode,
    Cluster,
    Crash,
    FailFraction,
    Fixed,
    LlmMode,
    LogNormal,
    Outcome,
    Recover,
    RemoveServer,
    Scenario,
    ServerSpec,
    Sessions,
    Slowdown,
    Tier,
    Workload,
    scenarios,
    simulate,
)

pytestmark = pytest.mark.sim

SMALL = Tier("small", 1.0, LogNormal(300, 1.0, high=6000), LogNormal(60, 0.8, high=400))


@st.composite
def small_scenarios(draw: st.DrawFn) -> Scenario:
    """Random small clusters, workloads and timetables, in either mode."""
    servers = draw(st.integers(1, 4))
    gpus = draw(st.lists(st.sampled_from(["A10-24GB", "A100-80GB", "H100-80GB"]), min_size=servers, max_size=servers))
    caps = draw(st.lists(st.integers(1, 4), min_size=servers, max_size=servers))
    cluster = Cluster(tuple(ServerSpec(f"s{k}", g, c) for k, (g, c) in enumerate(zip(gpus, caps))))
    classic = draw(st.booleans())
    mode = ClassicMode(sharing=draw(st.booleans())) if classic else LlmMode()
    sessions = Sessions(mean_turns=2.0, mean_think=1.0) if draw(st.booleans()) else None
    workload = Workload(draw(st.integers(1, 60)), tiers=(SMALL,), sessions=sessions)
    load = draw(st.floats(0.2, 2.0))
    span = Scenario(cluster, workload, mode, load=load).expected_duration()
    ids = [s.server_id for s in cluster.servers]
    event = st.one_of(
        st.builds(Crash, st.floats(0, span), st.sampled_from(ids)),
        st.builds(Recover, st.floats(0, span), st.sampled_from(ids)),
        st.builds(Slowdown, st.floats(0, span), st.sampled_from(ids), st.floats(0.25, 8.0)),
        st.builds(FailFraction, st.floats(0, span), st.sampled_from(ids), st.floats(0, 1)),
    )
    timetable = draw(st.lists(event, max_size=5))
    if draw(st.booleans()):
        timetable += [RemoveServer(draw(st.floats(0, span)), ids[0]),
                      AddServer(draw(st.floats(0, span)), ServerSpec("extra", "A100-80GB", 2))]  # fmt: skip
    detection = draw(st.one_of(st.none(), st.floats(0, span / 4)))
    return Scenario(cluster, workload, mode, load=load, timetable=tuple(timetable), crash_detection=detection)


@given(scenario=small_scenarios(), seed=st.integers(0, 2**32))
def test_every_request_ends_once_and_the_balancer_is_told(scenario: Scenario, seed: int, recording) -> None:
    factory, made = recording()
    res = simulate(scenario, factory, seed=seed)
    calls = made[0].calls
    n = len(res)
    assert set(np.unique(res.outcome)) <= {int(o) for o in Outcome}
    routes = Counter(rid for kind, rid in calls if kind == "route")
    assert routes == Counter(f"r{i}" for i in range(n))  # every request is offered exactly once
    completes = Counter(rid for kind, rid in calls if kind == "complete")
    routed = {f"r{i}" for i in np.nonzero(res.server >= 0)[0]}
    assert completes == Counter(routed)  # ...and every routed one is completed exactly once
    rejected = res.outcome == Outcome.REJECTED
    assert (np.isnan(res.start) == rejected).all() and ((res.server < 0) == rejected).all()
    assert (res.finish >= res.arrival).all() and not np.isnan(res.finish).any()
    started = ~rejected
    assert (res.start[started] == res.arrival[started]).all()  # stage 1: no queue
    done = res.outcome == Outcome.COMPLETED
    assert (res.first_token[done] <= res.finish[done]).all() and (res.first_token[done] >= res.start[done]).all()


@given(small_scenarios(), st.integers(0, 2**32))
def test_no_server_ever_runs_more_than_its_capacity(scenario: Scenario, seed: int) -> None:
    res = simulate(scenario, seed=seed)
    for k, cap in enumerate(res.capacity):
        mine = (res.server == k) & (res.finish > res.start)
        edges = sorted([(t, 1) for t in res.start[mine]] + [(t, -1) for t in res.finish[mine]], key=lambda e: (e[0], e[1]))
        running = np.cumsum([d for _, d in edges]) if edges else np.zeros(1)
        assert running.max(initial=0) <= cap


@given(small_scenarios(), st.integers(0, 2**32))
def test_a_crash_loses_exactly_the_requests_in_flight_on_that_server(scenario: Scenario, seed: int) -> None:
    res = simulate(scenario, seed=seed)
    crash_times: dict[int, list[float]] = {}
    for event in scenario.timetable:
        if isinstance(event, Crash):
            crash_times.setdefault(res.server_ids.index(event.server), []).append(event.at)
    crashed = np.nonzero(res.outcome == Outcome.CRASHED)[0]
    for i in crashed:  # each lost request ended at a crash of its own server
        assert res.finish[i] in crash_times.get(int(res.server[i]), [])
    for k, times in crash_times.items():  # and nothing on that server ran through a crash
        mine = res.server == k
        for t in times:
            assert not ((res.start[mine] < t) & (res.finish[mine] > t)).any()


@given(st.integers(1, 6), st.floats(0.3, 2.0), st.integers(1, 400), st.integers(0, 2**32))
def test_the_fast_path_equals_the_general_engine_bit_for_bit(servers: int, load: float, n: int, seed: int) -> None:
    scenario = scenarios.classic(servers=servers, load=load, requests=n)
    assert simulate(scenario, seed=seed).same_as(simulate(scenario, seed=seed, engine="general"))


def test_the_fast_path_agrees_with_the_general_engine_with_bigger_capacity() -> None:
    scenario = scenarios.classic(servers=3, load=0.9, requests=3000, capacity=3)
    fast, general = simulate(scenario, seed=5), simulate(scenario, seed=5, engine="general")
    assert (fast.outcome == general.outcome).all() and (fast.server == general.server).all()
    np.testing.assert_allclose(fast.finish, general.finish, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(scenarios.SCENARIOS))
def test_the_same_seed_gives_the_same_results_bit_for_bit(name: str) -> None:
    scenario = scenarios.build(name, requests=400)
    first, again, other = (simulate(scenario, seed=s) for s in (11, 11, 12))
    assert first.same_as(again)
    assert not first.same_as(other)


def test_changing_the_load_keeps_the_token_counts_of_a_seed() -> None:
    low, high = (simulate(scenarios.steady(load=x, requests=300), seed=4) for x in (0.3, 0.9))
    assert (low.prompt_tokens == high.prompt_tokens).all() and (low.output_tokens == high.output_tokens).all()
    assert low.arrival[-1] > 2 * high.arrival[-1]


def test_the_offered_load_sets_the_arrival_rate() -> None:
    res = simulate(scenarios.classic(servers=8, load=0.5, requests=40_000), seed=2)
    rate = len(res) / res.arrival[-1]  # 8 servers x 0.5 / mean service 1 s = 4 per second
    assert rate == pytest.approx(4.0, rel=0.03)


def test_sessions_send_the_next_turn_after_the_previous_one_ends() -> None:
    workload = Workload(600, tiers=(SMALL,), sessions=Sessions(mean_turns=4.0, mean_think=5.0))
    res = simulate(Scenario(Cluster.uniform(2, capacity=8), workload, load=0.5), seed=8)
    same = (res.session[1:] == res.session[:-1])
    gaps = res.arrival[1:][same] - res.finish[:-1][same]
    assert (gaps >= 0).all()
    assert gaps.mean() == pytest.approx(5.0, rel=0.2)  # exponential think times, ~450 of them
    grows = res.prompt_tokens[1:][same] >= res.prompt_tokens[:-1][same] + res.output_tokens[:-1][same]
    assert grows.all()  # each turn carries the whole conversation so far


def test_estimated_tokens_are_exact_by_default() -> None:
    res = simulate(scenarios.steady(requests=200), seed=1)
    assert (res.estimated_tokens == res.prompt_tokens + res.output_tokens).all()
    noisy = simulate(scenarios.tiers(requests=2000), seed=1)  # sigma 0.5 on the output
    ratio = (noisy.estimated_tokens - noisy.prompt_tokens) / noisy.output_tokens
    assert np.median(ratio) == pytest.approx(1.0, abs=0.05)
    assert ratio.std() > 0.3


def test_large_requests_go_to_big_gpus() -> None:
    cluster = Cluster((ServerSpec("small", "A10-24GB", 4), ServerSpec("big", "A100-80GB", 4)))
    tier = Tier("long", 1.0, Fixed(6000), Fixed(10))
    res = simulate(Scenario(cluster, Workload(100, tiers=(tier,)), load=0.3), seed=0)
    assert set(res.server[res.server >= 0]) == {1}
