"""Stage 7's race with the reference controller: small fleets, fast start-ups (each run well under a second)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solution.sim.cli import main
from solution.sim.deployrace import (
    SCENARIOS,
    canary_plan,
    deploy_scenario,
    false_rollbacks,
    gpu_plan,
    k8s_plan,
    wilson_interval,
)
from solution.sim.deploysim import DeployScenario, Version, deploy_metrics, run_deploy

pytestmark = pytest.mark.sim

A = Version("A", startup=20.0, warmup=10.0)
B = Version("B", startup=20.0, warmup=10.0)
SMALL = DeployScenario("small", A, B, replicas=4, slots=4, rate=3.0, duration=500.0, deploy_at=100.0)


def _metrics(scenario, plan, seed=0):
    run = run_deploy(scenario, plan, seed=seed)
    return run, deploy_metrics(run)


def test_every_named_scenario_builds_and_an_unknown_one_is_refused():
    for name in SCENARIOS:
        scenario, plan = deploy_scenario(name)
        assert scenario.name == name and plan.max_unavailable in (0, "25%")
    with pytest.raises(ValueError, match="pick one of"):
        deploy_scenario("blue-green")


def test_gpu_settings_keep_every_server_ready():
    run, gpu = _metrics(SMALL, gpu_plan())
    assert run.result == "done" and run.final_versions == {"B": 4}
    assert gpu["min_capacity"] == 1.0 and gpu["lost"] == 0 and gpu["errors"] == 0


def test_kubernetes_defaults_dip_a_quarter_and_finish_sooner():
    gpu = _metrics(SMALL, gpu_plan())[1]
    run, k8s = _metrics(SMALL, k8s_plan())
    assert run.result == "done" and run.final_versions == {"B": 4}
    assert k8s["min_capacity"] == 0.75 and k8s["lost"] == 0
    assert k8s["duration"] < gpu["duration"]  # drain-first overlaps the old servers' drain with the new ones' start-up


def test_a_failing_version_is_rolled_back_by_the_canary_with_a_smaller_blast_radius():
    bad = replace(SMALL, new=replace(B, error_rate=0.3), duration=900.0)
    plan = gpu_plan(canary=canary_plan((25, 100), window=30.0, min_requests=30))
    run, m = _metrics(bad, plan)
    assert run.result == "rolled_back" and run.final_versions == {"A": 4}
    assert m["lost"] == 0 and m["detect"] > 0
    run_all, m_all = _metrics(bad, gpu_plan())
    assert run_all.result == "done"  # nothing stops it without a canary
    assert m["blast"] < m_all["blast"] / 3 and m["errors"] < m_all["errors"] / 3


def test_long_generations_are_cut_at_the_drain_timeout_never_lost():
    long = replace(SMALL, long_share=0.05, long_tokens=10_000)
    run, m = _metrics(long, gpu_plan(drain_timeout=60.0))
    assert run.result == "done" and m["lost"] == 0 and m["forced"] > 0
    assert {o for o in run.outcome if o.startswith("failed")} <= {"failed:drain_timeout"}


def test_wilson_interval():
    p, lo, hi = wilson_interval(5, 100)
    assert p == 0.05 and lo == pytest.approx(0.0215, abs=1e-3) and hi == pytest.approx(0.1118, abs=1e-3)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.0, abs=1e-12)
    for bad in ((-1, 10), (11, 10), (0, 0)):
        with pytest.raises(ValueError):
            wilson_interval(*bad)


def test_the_canary_test_on_identical_versions_keeps_its_nominal_rate():
    fr = false_rollbacks(seeds=120, requests=1000)
    rate, lo, hi = fr.test_rate()
    assert fr.judged >= 120 and lo <= fr.nominal_test  # a discrete test may be conservative, never above alpha
    assert fr.nominal_canary == pytest.approx(1 - 0.95**3)
    assert fr.canary_rate()[1] <= fr.nominal_canary


def test_cli_refuses_an_unknown_scenario(capsys):
    assert main(["deploy-race", "--scenarios", "nope"]) == 2
    assert "unknown scenario" in capsys.readouterr().err


def test_widget_run_plays_a_rollout_and_a_canary_rollback():
    from solution.sim.deployrace import widget_run

    run = widget_run()
    assert run.result == "done" and deploy_metrics(run)["min_capacity"] == 1.0
    bad = widget_run(canary_steps=(25, 100), error_rate=0.2)
    assert bad.result == "rolled_back" and bad.final_versions == {"A": 4}


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(surge=st.sampled_from([1, 2, "25%", "50%"]), unavailable=st.sampled_from([0, 1, "25%"]), prewarm=st.booleans(),
       timeout=st.sampled_from([1.0, 15.0, math.inf]), long_share=st.sampled_from([0.0, 0.1]), seed=st.integers(0, 3))
def test_any_rollout_ends_every_request_once_and_keeps_its_capacity_bound(surge, unavailable, prewarm, timeout, long_share, seed):
    from solution.deploy import RolloutPlan, resolve_unavailable

    s = replace(SMALL, duration=300.0, deploy_at=50.0, long_share=long_share, long_tokens=3_000)
    if not prewarm and resolve_unavailable(unavailable, 4) == 0:
        prewarm = True  # drain-first needs room to drain (the plan refuses it)
    plan = RolloutPlan(max_surge=surge, max_unavailable=unavailable, drain_timeout=timeout, prewarm=prewarm)
    run, m = _metrics(s, plan, seed)
    assert m["lost"] == 0 and all(run.outcome)  # every request ended (a second end would have raised)
    assert run.result == "done" and run.final_versions == {"B": 4}
    assert m["min_capacity"] >= (4 - resolve_unavailable(unavailable, 4)) / 4
    assert {o for o in run.outcome if o.startswith("failed")} <= {"failed:drain_timeout"}


def test_the_driver_carries_out_each_answer_whole_before_telling_the_controller_more():
    from solution.deploy import RollingDeploy

    class Recorded(RollingDeploy):
        answers: list = []

        def __init__(self, *args):
            super().__init__(*args)
            Recorded.answers.append(list(self.initial_actions))

        def on(self, event):
            out = super().on(event)
            Recorded.answers.append(list(out))
            return out

    idle = replace(SMALL, rate=0.001)  # idle servers drain inside remove_server: the path's Drained comes at once
    bad = replace(SMALL, new=replace(B, error_rate=0.3), duration=900.0)
    for scenario, plan in ((idle, k8s_plan()), (SMALL, k8s_plan(drain_timeout=5.0)),
                           (bad, gpu_plan(canary=canary_plan((25, 100), window=30.0, min_requests=30)))):
        Recorded.answers = []
        run = run_deploy(scenario, plan, controller=Recorded)
        assert run.result in ("done", "rolled_back") and deploy_metrics(run)["lost"] == 0
        assert [a for _, a in run.actions] == [a for answer in Recorded.answers for a in answer]
