"""Stage 6 in the simulator: the tier engine (429 retries, preemption, timelines) and the policy ladder's behaviour."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.sim import Cluster, ClassicMode, Fixed, Poisson, Scenario, Tier, Workload
from solution.sim.results import Outcome
from solution.sim.server import ClassicService, Server
from solution.sim.tiersim import Clients, TierSetup, simulate_tiers
from solution.sim.tiersrace import (
    CLUSTER_METRICS,
    EXTRA_RUNGS,
    LADDER,
    TIER_METRICS,
    jain_index,
    ladder,
    max_min_fair,
    overload_scenario,
    run_metrics,
    tiers_race,
    tiers_run,
)

pytestmark = pytest.mark.sim

pytest.importorskip("solution.tiers")


def _full(scenario: Scenario, **options: float):
    from solution.sim.tiersrace import _full_table

    return _full_table(scenario, **options)


@pytest.fixture(scope="module")
def small() -> Scenario:
    return overload_scenario(servers=3, load=1.3, requests=1_200)


def test_full_ladder_beats_fifo_for_premium_under_overload() -> None:
    """1.3x overload: premium's SLO attainment with the whole ladder beats one FIFO queue by > 0.3 (paired 95% interval, 3 seeds)."""
    out = tiers_race(overload_scenario(servers=4, requests=3_000), seeds=range(3), workers=1, rungs=("FIFO", "+ preemption"))
    diff, low, _ = out.difference("+ preemption", "FIFO", "premium", "slo")
    assert low > 0.3, out.table()
    assert out.interval("+ preemption", "premium", "slo")[0] > 0.95
    assert set(out.values["FIFO"]) >= {f"premium:{m}" for m in TIER_METRICS} | set(CLUSTER_METRICS)
    for policy in out.policies:
        assert out.interval(policy, None, "lost")[0] == 0


def test_no_request_is_lost_or_answered_twice_through_preemption(small: Scenario) -> None:
    table = _full(small)
    setup = ladder(table, [s.server_id for s in small.server_specs()], rungs=EXTRA_RUNGS)[0]
    run = simulate_tiers(small, setup, seed=1)
    res, log = run.results, run.log
    preempted = log.preempted > 0
    assert preempted.sum() > 10, "the scenario must preempt to test anything"
    assert (res.outcome[preempted] == Outcome.COMPLETED).all()
    assert log.preempted.max() <= setup.max_preemptions  # the starvation bound
    assert run.path_stats["preempted"] == run.path_stats["resumed"] == int(log.preempted.sum())
    assert run.path_stats["delivered"] == int((res.outcome == Outcome.COMPLETED).sum())
    batch = res.tier_names.index("batch")
    assert (res.tier[preempted] == batch).all(), "only the preemptible tier is paused"
    i = int(np.argmax(log.preempted))
    kinds = [s.kind for s in run.timeline(i)]
    assert kinds.count("paused") == log.preempted[i] and kinds[-1] == "running"
    segments = run.timeline(i)
    assert all(a.end <= b.start + 1e-9 for a, b in zip(segments, segments[1:]))
    assert segments[-1].end == pytest.approx(res.finish[i])


def test_swap_resumes_on_the_same_server_and_recompute_costs_more_work(small: Scenario) -> None:
    table = _full(small)
    base = ladder(table, [s.server_id for s in small.server_specs()], rungs=EXTRA_RUNGS)[0]
    swap = simulate_tiers(small, replace(base, preemption="swap"), seed=2)
    for i in np.nonzero(swap.log.preempted > 0)[0][:50]:
        servers = {s.server for s in swap.timeline(int(i)) if s.kind == "running"}
        assert len(servers) == 1, swap.timeline(int(i))
    recompute = simulate_tiers(small, base, seed=2)
    free = simulate_tiers(small, replace(base, resume="resume"), seed=2)
    # The same preemption decisions up to the first one; afterwards the resumes differ.  Work done by the GPUs:
    busy = {name: float(np.nansum(r.log.try_end - r.log.try_start)) for name, r in (("recompute", recompute), ("free", free))}
    assert busy["recompute"] > busy["free"]


def test_a_429_is_retried_after_its_retry_after_and_then_given_up(small: Scenario) -> None:
    table = _full(small, free_tenant_rpm=5.0)
    setup = ladder(table, [s.server_id for s in small.server_specs()], rungs=("+ rate limits",))[0]
    run = simulate_tiers(small, setup, seed=0, clients=Clients(default=1))
    res, log = run.results, run.log
    free = res.tier == res.tier_names.index("free")
    assert log.throttled[free].sum() > 20
    assert log.throttled[~free].sum() == 0, "only free has limits (batch would retry until admitted)"
    gave_up = res.outcome == Outcome.THROTTLED
    assert (log.throttled[gave_up] == 2).all() and gave_up.any()  # the first 429 and the retry's
    retried_ok = (log.throttled == 1) & (res.outcome == Outcome.COMPLETED)
    assert retried_ok.any()
    assert (res.start[retried_ok] - res.arrival[retried_ok] >= 1.0).all(), "Retry-After is at least one second"
    never = simulate_tiers(small, setup, seed=0, clients=Clients(default=0))
    assert (never.log.throttled <= 1).all() and (never.results.outcome == Outcome.THROTTLED).sum() > gave_up.sum()


def test_reservation_costs_idle_slots_only_when_on(small: Scenario) -> None:
    table = _full(small)
    prio, reserve = ladder(table, [s.server_id for s in small.server_specs()], rungs=("class priority", "+ reservation"))
    a = run_metrics(simulate_tiers(small, prio, seed=0), table)
    b = run_metrics(simulate_tiers(small, reserve, seed=0), table)
    assert a["idle_reserved"] == 0 and b["idle_reserved"] > 1


def test_the_same_seed_gives_the_same_run(small: Scenario) -> None:
    table = _full(small)
    setup = ladder(table, [s.server_id for s in small.server_specs()], rungs=("+ preemption",))[0]
    one, two = simulate_tiers(small, setup, seed=3), simulate_tiers(small, setup, seed=3)
    assert one.results.same_as(two.results) and (one.log.throttled == two.log.throttled).all()


def test_widget_run_is_small_and_complete() -> None:
    out = tiers_run(requests=120, servers=1, windows=4, seed=1)
    assert {f"{t}:slo" for t in ("premium", "free", "batch")} <= set(out.metrics)
    assert len(out.window_ends) == 4 and set(out.p99_over_time) == {"premium", "free", "batch"}
    assert out.metrics["lost"] == 0


def test_ladder_labels_and_bad_rungs() -> None:
    scenario = overload_scenario(servers=4, requests=10)
    setups = ladder(_full(scenario), [s.server_id for s in scenario.server_specs()])
    assert tuple(s.label for s in setups) == LADDER
    assert setups[0].table is None and setups[-1].preemption == "recompute" and setups[4].pools
    with pytest.raises(ValueError, match="unknown rungs"):
        ladder(_full(scenario), ["gpu-0"], rungs=("fifo",))
    with pytest.raises(ValueError):
        TierSetup("x", None, limits=True)


def test_jain_and_max_min_fair() -> None:
    assert jain_index(np.ones(5)) == pytest.approx(1.0)
    assert jain_index(np.array([1.0, 0, 0, 0])) == pytest.approx(0.25)
    assert np.isnan(jain_index(np.zeros(3)))
    fair = max_min_fair(np.array([2.0, 8.0, 8.0]), 10.0)
    assert fair.tolist() == [2.0, 4.0, 4.0] and fair.sum() == pytest.approx(10.0)


def test_server_remove_keeps_the_others_progress() -> None:
    srv = Server(0, "s", 2, 80, ClassicService(sharing=False))
    srv.admit(0.0, 0, 4.0)
    srv.admit(0.0, 1, 3.0)
    prefilling, left = srv.remove(1.0, 0)
    assert prefilling and left == pytest.approx(3.0)
    assert srv.running == 1 and srv.next_time() == pytest.approx(3.0)
    with pytest.raises(KeyError):
        srv.remove(1.5, 0)


def test_tenants_follow_zipf_and_leave_other_draws_alone() -> None:
    with_t = Workload(4_000, tiers=(Tier("free", 1.0, tenants=50, tenant_skew=1.1),))
    without = Workload(4_000, tiers=(Tier("free", 1.0),))
    rng = lambda: (np.random.default_rng(5), np.random.default_rng(6))  # noqa: E731
    a, b = with_t.generate(*rng()), without.generate(*rng())
    assert b.tenant is None and np.array_equal(a.prompt_tokens, b.prompt_tokens) and np.array_equal(a.arrival, b.arrival)
    counts = np.bincount(a.tenant, minlength=50)
    assert counts[0] > 3 * counts[9] > 0 and a.tenant_names()[0].startswith("free-")
    with pytest.raises(ValueError):
        Tier("x", tenants=-1)


def test_a_workload_tier_the_table_does_not_know_is_refused() -> None:
    scenario = Scenario(Cluster.uniform(1, capacity=1), Workload(10, Poisson(), tiers=(Tier("gold", 1.0, Fixed(1), Fixed(1)),)),
                        ClassicMode(1.0), load=0.5)  # fmt: skip
    table = _full(overload_scenario(servers=2, requests=10))
    with pytest.raises(ValueError, match="gold"):
        simulate_tiers(scenario, TierSetup("t", table), seed=0)


def test_azure_replay_with_tiers(trace_dir) -> None:
    """The Azure conversation trace (first 1,500 rows, tiers drawn per seed): the full ladder beats FIFO for premium."""
    from solution.sim.tiersrace import azure_scenario

    scenario = azure_scenario(servers=4, limit=1_500, path=str(trace_dir / "AzureLLMInferenceTrace_conv.csv"))
    out = tiers_race(scenario, seeds=range(2), workers=1, rungs=("FIFO", "+ preemption"))
    assert out.interval("+ preemption", "premium", "slo")[0] > out.interval("FIFO", "premium", "slo")[0] + 0.3, out.table()


def test_tiers_race_command_prints_the_ladder(capsys: pytest.CaptureFixture[str]) -> None:
    from solution.sim.cli import main

    assert main(["tiers-race", "--seeds", "1", "--requests", "300", "--servers", "2", "--workers", "1"]) == 0
    text = capsys.readouterr().out
    for label in LADDER + EXTRA_RUNGS:
        assert f"\n{label} " in text
    assert "batch_makespan" in text and "idle_reserved" in text
    assert main(["tiers-race", "--workload", "nope", "--seeds", "1"]) == 2


def test_bad_setups_and_clients_are_refused(small: Scenario) -> None:
    with pytest.raises(ValueError, match="preemption"):
        TierSetup("x", _full(small), preemption="drop")
    with pytest.raises(ValueError, match="resume"):
        TierSetup("x", _full(small), resume="later")
    with pytest.raises(TypeError):
        Clients(retries={"free": 1.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        Clients(default=-1)
    with pytest.raises(TypeError, match="TierSetup"):
        simulate_tiers(small, "FIFO")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timetable"):
        simulate_tiers(small.with_health(), TierSetup("FIFO"))
    assert Clients().for_tier("batch") == 1000 and Clients().for_tier("free") == 1 and Clients().for_tier(None) == 1


@settings(max_examples=12, deadline=None)
@given(servers=st.integers(1, 3), load=st.floats(0.8, 2.0), requests=st.integers(20, 120), seed=st.integers(0, 10**6),
       mode=st.sampled_from(["recompute", "swap"]), rung=st.sampled_from(["+ preemption", "priority + preemption"]),
       reserved=st.sampled_from([0.0, 0.25, 0.5]))  # fmt: skip
def test_every_request_ends_once_whatever_the_traffic(servers: int, load: float, requests: int, seed: int, mode: str,
                                                       rung: str, reserved: float) -> None:  # fmt: skip
    """Random small overloads: each request one final outcome, a preempted one always completes, the path's counts agree."""
    scenario = overload_scenario(servers=servers, load=load, requests=requests)
    setup = replace(ladder(_full(scenario, reserved=reserved), [s.server_id for s in scenario.server_specs()], rungs=(rung,))[0],
                    preemption=mode)  # fmt: skip
    run = simulate_tiers(scenario, setup, seed=seed)
    res, log, stats = run.results, run.log, run.path_stats
    assert (res.outcome >= 0).all()
    assert (res.outcome[log.preempted > 0] == Outcome.COMPLETED).all()
    assert stats["preempted"] == stats["resumed"] == int(log.preempted.sum()) and stats["open"] == 0
    assert log.preempted.max(initial=0) <= setup.max_preemptions
    done = res.outcome == Outcome.COMPLETED
    assert (res.first_token[done] <= res.finish[done] + 1e-9).all() and (res.arrival[done] <= res.first_token[done]).all()


def test_miss_causes_split_waiting_from_prefill():
    from solution.sim.tiersrace import miss_causes

    with pytest.raises(ValueError, match="unknown policies"):
        miss_causes(["no such rung"])
    (prio,) = miss_causes(["class priority"], seeds=[0])
    assert 0 < prio.ttft_missed <= prio.missed <= prio.requests
    assert 0.0 <= prio.waited_longest < 1.0  # premium's late requests did not wait out their 1 s TTFT target in a queue
    assert prio.prompt_median > 1000 and prio.after_start_median > 1.0  # long prompts, slow prefill in a full batch
