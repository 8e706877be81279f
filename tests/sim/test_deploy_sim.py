"""Stage 7 in the simulator: versions, deploy timetables and the event driver (with a scripted controller)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from solution.sim.deploysim import DEPLOY_METRICS, DeployScenario, Version, deploy_metrics, run_deploy
from tests.sim.deploy_fakes import LIB, Plan

pytestmark = pytest.mark.sim

A = Version("A", startup=20.0, warmup=10.0)
B = Version("B", startup=20.0, warmup=10.0)
SMALL = DeployScenario("small", A, B, replicas=4, slots=4, rate=2.0, duration=400.0, deploy_at=100.0)


def _run(scenario: DeployScenario = SMALL, plan: Plan = Plan(), seed: int = 0):
    run = run_deploy(scenario, plan, seed=seed, lib=LIB)
    return run, deploy_metrics(run)


def test_bad_versions_and_scenarios_are_refused():
    with pytest.raises(ValueError):
        Version("A", error_rate=1.0)
    with pytest.raises(ValueError):
        Version("A", speed=0)
    with pytest.raises(ValueError):
        Version("A", warm_speed=1.5)
    with pytest.raises(TypeError):
        Version("A", startup="60")
    with pytest.raises(TypeError):
        DeployScenario("x", A, "B")
    with pytest.raises(ValueError):
        replace(SMALL, deploy_at=500.0)
    with pytest.raises(ValueError):
        replace(SMALL, peak=(100.0, 50.0, 2.0))
    with pytest.raises(TypeError):
        replace(SMALL, replicas=True)
    with pytest.raises(TypeError):
        run_deploy("small", Plan(), lib=LIB)


def test_peak_multiplies_the_arrival_rate():
    s = replace(SMALL, rate=5.0, duration=2000.0, deploy_at=10.0, peak=(1000.0, 2000.0, 3.0))
    times, tokens = s.arrivals(np.random.default_rng(1))
    before, during = np.sum(times < 1000), np.sum(times >= 1000)
    assert 2.6 < during / before < 3.4
    assert tokens.min() >= 1 and np.all(np.diff(times) >= 0)


def test_good_rollout_replaces_every_server_loses_nothing_and_keeps_capacity():
    run, m = _run()
    assert set(m) == set(DEPLOY_METRICS)
    assert run.result == "done" and run.final_versions == {"B": 4}
    assert m["lost"] == 0 and m["errors"] == 0 and m["forced"] == 0
    assert all(o == "delivered" for o in run.outcome)
    assert m["min_capacity"] == 1.0  # surge one, drain only after a new one is ready
    # four batches, each at least start-up + warm-up (30 s) long
    assert m["duration"] >= 4 * B.ready_after
    assert m["final_new"] == 1.0
    assert 0 < m["blast"] < len(run.arrival)


def test_same_seed_same_run_other_seed_other_traffic():
    (r1, m1), (r2, m2), (r3, _) = _run(seed=3), _run(seed=3), _run(seed=4)
    assert m1 == pytest.approx(m2, nan_ok=True) and r1.outcome == r2.outcome
    assert len(r1.arrival) != len(r3.arrival) or not np.array_equal(r1.arrival, r3.arrival)


def test_a_slower_version_raises_latency_after_the_rollout():
    slow = replace(SMALL, new=replace(B, speed=0.5), duration=600.0)
    run, _ = _run(slow)
    lat = run.end - run.arrival
    before = lat[run.arrival < run.started]
    after = lat[run.arrival > run.finished]
    assert np.median(after) > 1.6 * np.median(before)


def test_a_failing_version_answers_its_share_with_errors_and_loses_nothing():
    bad = replace(SMALL, new=replace(B, error_rate=0.2), duration=600.0)
    run, m = _run(bad)
    assert m["lost"] == 0
    failed_new = sum(1 for o, hit in zip(run.outcome, run.hit_new) if o.startswith("failed") and hit)
    assert failed_new == m["errors"] > 0  # only the new version fails
    assert 0.1 < m["errors"] / m["blast"] < 0.3


def test_long_generations_hit_the_drain_timeout_and_end_with_a_clear_outcome():
    long = replace(SMALL, long_share=0.05, long_tokens=10_000)
    run, m = _run(long, Plan(drain_timeout=60.0))
    assert m["lost"] == 0 and m["forced"] > 0
    reasons = {o for o in run.outcome if o.startswith("failed")}
    assert reasons and reasons <= {"failed:drain_timeout", "failed:streamed"}
    # each drain takes at most the timeout (plus the batch's start-up), so the rollout ends early
    assert m["duration"] <= 4 * (B.ready_after + 60.0) + 1e-6
    waited, mw = _run(long, Plan(drain_timeout=None))
    assert mw["forced"] == 0 and mw["errors"] == 0 and mw["lost"] == 0
    assert mw["duration"] > m["duration"]


def test_without_the_paths_drain_timeout_the_driver_cuts_the_server_itself(monkeypatch):
    import solution.sim.deploysim as deploysim

    monkeypatch.setattr(deploysim, "_remove_takes_timeout", lambda path: False)
    run, m = _run(replace(SMALL, long_share=0.05, long_tokens=10_000), Plan(drain_timeout=60.0))
    assert m["lost"] == 0 and m["forced"] > 0 and run.result == "done"


def test_a_run_stops_at_until_and_reports_the_rollout_unfinished():
    run = run_deploy(SMALL, Plan(), lib=LIB, until=130.0)
    m = deploy_metrics(run)
    assert run.result == "running" and math.isnan(m["duration"])


def test_timeline_shows_the_fleet_turning_over_and_latency_per_bin():
    from solution.sim.deploysim import timeline

    run, _ = _run()
    tl = timeline(run, step=10.0)
    t = tl["t"]
    before, after = t < run.started, t > run.finished + 1
    assert np.all(tl["A:serving"][before] == 4) and np.all(tl["B:serving"][before] == 0)
    assert np.all(tl["B:serving"][after] == 4) and np.all(tl["A:serving"][after] == 0)
    assert tl["total"].max() == 5  # the scripted controller surges by one
    assert np.all(tl["ready"] <= tl["total"]) and tl["errors"].sum() == 0
    busy = ~np.isnan(tl["p99"])
    assert busy.sum() > len(t) // 2 and np.all(tl["p50"][busy] <= tl["p99"][busy])
    with pytest.raises(ValueError):
        timeline(run, step=0)
    with pytest.raises(TypeError):
        timeline("run")
