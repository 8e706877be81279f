"""Stage 4's faults without health checking: Hang, GrayFailure, and the cold-start (warm-up) model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from solution.sim import Cluster, Outcome, Scenario, ScenarioError, ServerSpec, Workload, scenarios, simulate
from solution.sim.faults import AddServer, Crash, GrayFailure, Hang, Recover
from solution.sim.healthsim import ColdStart, HealthConfig
from solution.sim.workload import Fixed, Poisson, Tier

pytestmark = pytest.mark.sim


def on(res, server_id: str) -> np.ndarray:
    return res.server == res.server_ids.index(server_id)


def steady(servers: int = 3, requests: int = 1500, load: float = 0.5) -> Scenario:
    return scenarios.steady(servers=servers, load=load, requests=requests)


def test_a_hung_server_keeps_its_requests_until_it_is_restarted() -> None:
    base = steady()
    span = base.expected_duration()
    hang_at, restart_at = 0.3 * span, 0.6 * span
    res = simulate(replace(base, timetable=(Hang(hang_at, "gpu-0"), Recover(restart_at, "gpu-0"))), seed=2)
    stuck = on(res, "gpu-0") & (res.start >= hang_at) & (res.start < restart_at)
    assert stuck.sum() > 0
    # Nothing sent there during the hang completes: every one ends CRASHED at the restart (connections break).
    assert (res.outcome[stuck] == Outcome.CRASHED).all()
    assert np.allclose(res.finish[stuck], restart_at)
    # Unlike a crash, nothing fails at once: no FAILED outcome at all.
    assert res.count(Outcome.FAILED) == 0
    # After the restart the server serves again.
    assert (res.outcome[on(res, "gpu-0") & (res.arrival > restart_at)] == Outcome.COMPLETED).all()


def test_a_hang_never_restarted_ends_its_requests_hung_at_the_last_event() -> None:
    base = steady()
    hang_at = 0.5 * base.expected_duration()
    res = simulate(replace(base, timetable=(Hang(hang_at, "gpu-0"),)), seed=3)
    hung = res.outcome == Outcome.HUNG
    assert hung.sum() > 0 and (on(res, "gpu-0")[hung]).all()
    assert np.allclose(res.finish[hung], res.finish.max())
    assert res.client_errors() >= hung.sum()
    # Accounting: every request ended exactly once, with a known outcome.
    assert (res.outcome >= 0).all() and len(res) == 1500


def test_gray_failure_fails_its_fraction_and_slows_the_rest() -> None:
    base = steady(load=0.4, requests=3000)
    span = base.expected_duration()
    gray = replace(base, timetable=(GrayFailure(0.0, "gpu-0", fraction=0.3, factor=3.0),))
    res = simulate(gray, seed=4)
    mine = on(res, "gpu-0")
    failed = np.mean(res.outcome[mine] == Outcome.FAILED)
    assert 0.2 < failed < 0.4  # about 30% of what it is sent
    assert not (res.outcome[~mine] == Outcome.FAILED).any()
    tpot = res.tpot
    assert np.nanmedian(tpot[mine]) > 2.0 * np.nanmedian(tpot[~mine])  # it crawls on the others
    assert span > 0


def test_gray_failure_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        GrayFailure(1.0, "gpu-0", fraction=1.5)
    with pytest.raises(ValueError):
        GrayFailure(1.0, "gpu-0", factor=0.5)
    with pytest.raises(TypeError):
        GrayFailure(1.0, "gpu-0", fraction="a lot")  # type: ignore[arg-type]


def _one_server_added(cold: ColdStart | None) -> Scenario:
    """One warm server, and a second one added at 100 s, optionally cold."""
    workload = Workload(1000, Poisson(), tiers=(Tier("t", 1.0, Fixed(200), Fixed(200)),))
    return Scenario(Cluster.uniform(1), workload, load=0.3, timetable=(AddServer(100.0, ServerSpec("spare-0")),),
                    cold_start=cold)  # fmt: skip


def test_a_cold_server_is_slower_for_its_warm_up_then_as_fast_as_a_warm_one() -> None:
    cold = ColdStart(seconds=60.0, speed=0.25, steps=3)
    hot, cool = simulate(_one_server_added(None), seed=5), simulate(_one_server_added(cold), seed=5)
    spare = on(cool, "spare-0")
    during = spare & (cool.start >= 100.0) & (cool.finish < 120.0)  # the first step: a quarter of full speed
    after = spare & (cool.start > 170.0)
    assert during.sum() >= 3 and after.sum() >= 3
    assert np.nanmedian(cool.tpot[during]) > 2.5 * np.nanmedian(cool.tpot[after])
    # Once warm it is the same server: the same requests take the same time as without a cold start.
    late = after & on(hot, "spare-0")
    assert late.sum() >= 3
    assert np.allclose(np.nanmedian(cool.tpot[late]), np.nanmedian(hot.tpot[late]), rtol=0.25)


def test_cold_start_speeds_step_up_to_full() -> None:
    cold = ColdStart(seconds=20.0, speed=0.4, steps=4)
    assert cold.speed_at(0) == pytest.approx(0.4) and cold.speed_at(4) == 1.0 and cold.speed_at(9) == 1.0
    assert cold.step_times() == [5.0, 10.0, 15.0, 20.0]
    speeds = [cold.speed_at(k) for k in range(5)]
    assert speeds == sorted(speeds)
    for bad in (dict(speed=0.0), dict(speed=1.5), dict(seconds=-1.0), dict(steps=0)):
        with pytest.raises(ValueError):
            ColdStart(**bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ColdStart(steps=2.5)  # type: ignore[arg-type]


def test_a_crashed_and_recovered_server_warms_up_again() -> None:
    base = steady(servers=2, load=0.3, requests=2000)
    span = base.expected_duration()
    cold = ColdStart(seconds=0.2 * span, speed=0.25, steps=1)
    events = (Crash(0.3 * span, "gpu-0"), Recover(0.4 * span, "gpu-0"))
    warm_run = simulate(replace(base, timetable=events, crash_detection=1.0), seed=6)
    cold_run = simulate(replace(base, timetable=events, crash_detection=1.0, cold_start=cold), seed=6)
    window = on(cold_run, "gpu-0") & (cold_run.start > 0.4 * span) & (cold_run.finish < 0.6 * span)
    assert window.sum() > 5
    assert np.nanmedian(cold_run.tpot[window]) > 2.0 * np.nanmedian(warm_run.tpot[on(warm_run, "gpu-0") & (warm_run.start > 0.4 * span)
                                                                                   & (warm_run.finish < 0.6 * span)])  # fmt: skip
    # The initial fleet starts warm: before the crash both runs are identical.
    before = cold_run.finish < 0.3 * span
    assert np.array_equal(cold_run.finish[before], warm_run.finish[before])


def test_scenario_checks_its_stage4_fields() -> None:
    base = steady()
    with pytest.raises(TypeError):
        replace(base, cold_start=20.0)
    with pytest.raises(TypeError):
        replace(base, health="on")
    from solution.sim.queueing import QueueConfig

    with pytest.raises(ScenarioError):
        replace(base, health=HealthConfig(), queue=QueueConfig())
    with pytest.raises(ValueError):
        HealthConfig(probe_loss=1.0)
    with pytest.raises(TypeError):
        HealthConfig(active="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HealthConfig(probe_rtt=5.0)  # above the default policy's 1 s timeout
