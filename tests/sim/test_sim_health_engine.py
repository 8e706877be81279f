"""The simulator with health checking on: probes as events, re-route, late answers, the accounting identity, theory."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.core.health_types import HealthPolicy, RetryPolicy
from solution.sim import Outcome, scenarios, simulate
from solution.sim.faults import Crash, GrayFailure, Hang, Recover, Slowdown
from solution.sim.probecheck import detection_check, false_ejection_check
from solution.sim.race import HEALTH_SETUPS, health_race, least_connections

pytestmark = pytest.mark.sim

LC = least_connections()


def steady(requests: int = 1500, servers: int = 3, load: float = 0.5):
    return scenarios.steady(servers=servers, load=load, requests=requests)


def with_events(scenario, *fractions_and_events):
    span = scenario.expected_duration()
    return replace(scenario, timetable=tuple(make(f * span) for f, make in fractions_and_events))


def assert_accounting(res) -> None:
    """Every request ended exactly once; the path's counts agree with the per-request records."""
    assert (res.outcome >= 0).all()
    counts = Counter(res.outcome.tolist())
    assert sum(counts.values()) == len(res)
    stats = res.health.path_stats
    assert stats["delivered"] == counts[int(Outcome.COMPLETED)]
    assert stats["submitted"] == len(res)
    assert stats["delivered"] + stats["failed"] + stats["rejected"] == len(res) - counts[int(Outcome.HUNG)]
    assert stats["discarded"] == res.health.discarded == int(res.late.sum())
    dispatched = ~np.isnan(res.start)
    assert (res.tries[dispatched] >= 1).all() and (res.tries[~dispatched] == 0).all()
    for i, tries in res.history.items():
        assert len(tries) == res.tries[i]
        assert sum(t.how == "answered" for t in tries) == (res.outcome[i] == Outcome.COMPLETED)
        assert sum(t.how == "late" for t in tries) == res.late[i]
        assert all(t.start <= t.end for t in tries)


def long_prompts(requests: int = 1500):
    """Long prompts (a few thousand tokens): a crash catches some requests still in prefill, some already streaming."""
    from solution.sim import Cluster, Scenario, Workload
    from solution.sim.workload import LogNormal, Tier

    tier = Tier("long", 1.0, LogNormal(6000, 0.5, high=16000), LogNormal(150, 0.5, high=1024))
    return Scenario(Cluster.uniform(3), Workload(requests, tiers=(tier,)), load=0.8, name="long-prompts")


def crash_run(reroute: bool, seed: int = 3):
    scenario = with_events(long_prompts(), (0.4, lambda t: Crash(t, "gpu-0")), (0.7, lambda t: Recover(t, "gpu-0")))
    scenario = scenario.with_health(active=False, passive=False, reroute=reroute)
    return scenario, simulate(scenario, LC, seed=seed)


def test_without_re_route_the_loss_is_the_in_flight_count_at_the_crash() -> None:
    scenario, res = crash_run(reroute=False)
    crash_at = scenario.timetable[0].at
    gpu0 = res.server == 0
    in_flight = gpu0 & (res.start <= crash_at) & (res.finish >= crash_at) & (res.outcome != Outcome.COMPLETED)
    assert in_flight.sum() >= 5
    crashed = res.outcome == Outcome.CRASHED
    assert crashed.sum() == in_flight.sum() and np.array_equal(crashed, in_flight)
    assert np.allclose(res.finish[crashed], crash_at)
    assert_accounting(res)


def test_with_re_route_no_request_is_lost_and_none_is_answered_twice() -> None:
    scenario, off = crash_run(reroute=False)
    _, on = crash_run(reroute=True)
    crash_at = scenario.timetable[0].at
    lost = np.nonzero(off.outcome == Outcome.CRASHED)[0]
    assert on.count(Outcome.CRASHED) == 0  # nothing silently lost
    streamed = [i for i in lost if off.first_token[i] <= crash_at]
    fresh = [i for i in lost if not off.first_token[i] <= crash_at]
    assert fresh and streamed
    # Not yet streaming: re-sent to another server and answered once.
    for i in fresh:
        assert on.outcome[i] == Outcome.COMPLETED and on.tries[i] == 2
        tries = on.history[i]
        assert [t.how for t in tries] == ["lost", "answered"] and tries[0].server == 0 and tries[1].server != 0
    # Already streaming: an explicit error, never silently restarted.
    for i in streamed:
        assert on.outcome[i] == Outcome.FAILED and on.health.fail_reasons[i] == "streamed" and on.tries[i] == 1
    assert_accounting(on)


def test_a_late_answer_is_discarded_and_its_work_counted_as_wasted() -> None:
    scenario = with_events(steady(requests=1200), (0.3, lambda t: Slowdown(t, "gpu-0", 30.0)), (0.8, lambda t: Recover(t, "gpu-0")))
    scenario = scenario.with_health(active=False, passive=False, retry=RetryPolicy(max_tries=3, per_try_timeout=8.0))
    res = simulate(scenario, LC, seed=1)
    late = np.nonzero(res.late > 0)[0]
    assert len(late) > 0
    for i in late:
        hows = [t.how for t in res.history[i]]
        assert "late" in hows and hows.count("answered") <= 1
    assert res.wasted_gpu_seconds() > 0 and (res.wasted[late] > 0).all()
    assert_accounting(res)


def test_probes_are_events_that_time_out_on_a_hung_server() -> None:
    policy = HealthPolicy(interval=2.0, timeout=0.5, unhealthy_threshold=2)
    scenario = with_events(steady(requests=1200), (0.3, lambda t: Hang(t, "gpu-0")), (0.6, lambda t: Recover(t, "gpu-0")))
    hang_at, restart_at = (e.at for e in scenario.timetable)
    res = simulate(scenario.with_health(policy, passive=False, probe_rtt=0.01, retry=RetryPolicy(per_try_timeout=60.0)), LC, seed=2)
    log = res.health
    server, sent, done, ok = (np.array(a) for a in (log.probe_server, log.probe_sent, log.probe_done, log.probe_ok))
    assert np.allclose(done[ok] - sent[ok], 0.01) and np.allclose(done[~ok] - sent[~ok], 0.5)
    during = (server == 0) & (sent >= hang_at) & (sent < restart_at)
    assert during.sum() > 3 and not ok[during].any()
    assert ok[server != 0].all()
    low, high = 1 * 2.0 * 0.9 + 0.5, 2 * 2.0 * 1.1 + 0.5  # detection_time_interval(2, 0.5, 2, 0.1)
    assert low <= log.first_down("gpu-0", hang_at) - hang_at < high
    assert_accounting(res)


def test_active_checks_catch_a_hang_and_only_passive_checks_catch_a_gray_failure() -> None:
    gray = with_events(steady(requests=2000), (0.2, lambda t: GrayFailure(t, "gpu-0", 0.3, 3.0)), (0.8, lambda t: Recover(t, "gpu-0")))
    states = {}
    for name, active, passive in (("active", True, False), ("passive", False, True)):
        res = simulate(gray.with_health(active=active, passive=passive), LC, seed=4)
        states[name] = {str(t.new) for t in res.health.transitions if t.server_id == "gpu-0"}
        assert_accounting(res)
    assert states["active"] == {"healthy"}  # the probes pass: active checks never see it
    assert states["passive"] - {"healthy"}  # real traffic does: degraded or ejected


def test_health_off_runs_the_plain_engine() -> None:
    res = simulate(steady(requests=300), LC, seed=0)
    assert res.tries is None and res.health is None and res.history == {}


def test_a_health_scenario_needs_a_router() -> None:
    from solution import LoadBalancer

    with pytest.raises(TypeError, match="Router"):
        simulate(steady(requests=50).with_health(), LoadBalancer, seed=0)


def test_detection_time_of_a_crash_lies_in_the_predicted_interval() -> None:
    """The issue's check: 200 seeds, crash uniform in the probe cycle; all inside, and the mean's 99% t interval holds the formula."""
    for n, jitter in ((3, 0.0), (3, 0.2), (1, 0.1)):
        check = detection_check(5.0, 1.0, n, jitter, range(200))
        assert check.inside == 200, check.line()
        assert check.agrees(), check.line()


@pytest.mark.parametrize("p, n", [(0.5, 2), (0.5, 3), (0.3, 2)])
def test_false_ejections_follow_the_run_length_formula(p: float, n: int) -> None:
    """Mean probes (and seconds) until a healthy server with lossy probes is ejected: 99% t interval over 200 seeds."""
    check = false_ejection_check(p, n, 5.0, 1.0, range(200))
    assert check.agrees(), check.line()


def test_false_ejections_at_a_rarer_point() -> None:
    check = false_ejection_check(0.3, 3, 5.0, 1.0, range(200))  # about 52 probes on average
    assert check.agrees(), check.line()


def test_health_race_pairs_set_ups_on_the_same_traffic() -> None:
    out = health_race(("crash", "failing"), ("none", "passive"), requests=800, seeds=range(2), workers=0)
    assert set(out.values) == {(f, s) for f in ("crash", "failing") for s in ("none", "passive")}
    mean, low, high = out.difference("crash", "passive", "none", "errors")
    assert low <= mean <= high
    table = out.table()
    assert "fault: crash" in table and "paired difference" in table
    with pytest.raises(ValueError):
        health_race(("crash",), ("sometimes",), seeds=range(2), workers=0)
    with pytest.raises(ValueError):
        health_race(("crash",), ("none",), seeds=range(1), workers=0)
    assert set(HEALTH_SETUPS) == {"none", "active", "passive", "both", "both+slow start"}


_FAULTS = {
    "crash": lambda t, s: Crash(t, s),
    "hang": lambda t, s: Hang(t, s),
    "gray": lambda t, s: GrayFailure(t, s, 0.5, 4.0),
    "slow": lambda t, s: Slowdown(t, s, 10.0),
    "recover": lambda t, s: Recover(t, s),
}


@given(
    events=st.lists(st.tuples(st.floats(0.0, 1.0), st.sampled_from(sorted(_FAULTS)), st.sampled_from(["gpu-0", "gpu-1"])),
                    min_size=1, max_size=5),
    setup=st.sampled_from(sorted(HEALTH_SETUPS)),
    timeout=st.sampled_from([None, 5.0, 20.0]),
    tries=st.integers(1, 3),
    seed=st.integers(0, 50),
)  # fmt: skip
@settings(max_examples=30, deadline=None)
def test_every_request_ends_exactly_once_under_random_faults(events, setup, timeout, tries, seed) -> None:
    base = steady(requests=300)
    span = base.expected_duration()
    scenario = replace(base, timetable=tuple(_FAULTS[kind](f * span, sid) for f, kind, sid in events))
    active, passive, slow = HEALTH_SETUPS[setup]
    policy = HealthPolicy(interval=2.0, timeout=0.5, base_ejection_time=5.0)
    res = simulate(scenario.with_health(policy, active=active, passive=passive, slow_start=slow,
                                        retry=RetryPolicy(max_tries=tries, per_try_timeout=timeout)), LC, seed=seed)  # fmt: skip
    assert_accounting(res)
    assert (res.tries <= tries).all()


def test_slow_start_keeps_a_cold_new_server_from_being_flooded() -> None:
    """A cold spare joins; least-connections sees it empty.  Without slow start it takes a burst at 30% speed."""
    scenario = scenarios.health_fault("scale-out")
    joined = scenario.timetable[0].at
    first = {}
    for slow in (False, True):
        res = simulate(scenario.with_health(slow_start=slow), LC, seed=1)
        spare = res.server == res.server_ids.index("spare-0")
        first[slow] = int((spare & (res.start >= joined) & (res.start < joined + 2.0)).sum())
        states = [str(t.new) for t in res.health.transitions if t.server_id == "spare-0"]
        assert states[0] == "recovering"  # added during the run: slow start, not warm
        assert_accounting(res)
    assert first[True] * 3 <= first[False] and first[False] >= 6


def test_the_health_log_gives_per_try_load_and_states_over_time() -> None:
    scenario, res = crash_run(reroute=True)
    crash_at = scenario.timetable[0].at
    log = res.health
    assert len(log.try_request) == int(res.tries.sum()) and len(log.try_how) == len(log.try_request)
    times = np.array([crash_at - 1.0, crash_at + 0.5])
    load = log.load_over_time(times, len(res.server_ids))
    assert load.shape == (2, len(res.server_ids)) and load[0, 0] > 0 and load[1, 0] == 0  # the crash emptied gpu-0
    # Without re-sends, the per-try load is the per-request load.
    _, off = crash_run(reroute=False)
    grid = off.time_grid(50)
    assert np.array_equal(off.health.load_over_time(grid, len(off.server_ids)), off.load_over_time(grid))
    checked = simulate(scenario.with_health(), LC, seed=3).health
    first_down = checked.first_down("gpu-0")
    assert crash_at <= first_down < crash_at + 20
    assert checked.state_over_time("gpu-0", [-1.0, 0.0, first_down - 1e-6, first_down]) == ["", "healthy", "healthy", "down"]


def test_a_health_run_is_reproducible_from_its_seed() -> None:
    scenario = scenarios.health_fault("hang", requests=800).with_health(probe_loss=0.1)
    a, b, c = (simulate(scenario, LC, seed=s) for s in (5, 5, 6))
    assert a.same_as(b) and a.health.transitions == b.health.transitions and a.history == b.history
    assert not a.same_as(c)
