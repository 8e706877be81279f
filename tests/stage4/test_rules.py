"""Stage 4, rule by rule: one test per rule of ``HealthChecker`` and ``RetryLedger`` (numbered as in their docstrings)."""

from __future__ import annotations

import random

import pytest

from solution.core.health_types import HealthPolicy, HealthState, Outcome, Reason, RetryPolicy

pytestmark = pytest.mark.stage4

H, DG, D, R = HealthState.HEALTHY, HealthState.DEGRADED, HealthState.DOWN, HealthState.RECOVERING


def fleet(impl, n=4, **policy):
    hc = impl.HealthChecker(HealthPolicy(**policy), seed=1)
    for i in range(n):
        hc.add_server(f"s{i}", 0.0, warm=True)
    return hc


def fail(hc, sid, start, count, step=0.01):
    for k in range(count):
        hc.request_result(sid, False, start + k * step)


def last(hc):
    t = hc.transitions[-1]
    return t.server_id, t.old, t.new, t.reason


# --- HealthChecker ----------------------------------------------------------------------------


def test_rule1_warm_servers_start_healthy_new_ones_slow_start(impl):
    hc = impl.HealthChecker(HealthPolicy(slow_start_window=10.0))
    hc.add_server("old", 0.0, warm=True)
    hc.add_server("new", 0.0)
    assert hc.state("old") is H and hc.weight("old", 0.0) == 1.0
    assert hc.state("new") is R and hc.trial_limit("new") is None  # slow start, not half-open
    assert [(t.server_id, t.old, t.new, t.reason) for t in hc.transitions] == [("old", None, H, Reason.ADDED_WARM),
                                                                              ("new", None, R, Reason.ADDED)]
    stats = hc.get_server_stats()["new"]
    assert (stats["state"], stats["since"], stats["reason"]) == ("recovering", 0.0, Reason.ADDED)


def test_rule1_first_probes_spread_over_one_interval(impl):
    hc = fleet(impl, 200, interval=10.0, timeout=1.0)
    first = []
    while (t := hc.next_probe_time()) is not None and t < 10.0:
        first += hc.due_probes(t)
    assert len(set(first)) == 200  # everyone probed once within the first interval, at scattered times


def test_rule2_probes_rescheduled_with_jitter_and_seeded(impl):
    def schedule(seed):
        hc = impl.HealthChecker(HealthPolicy(interval=10.0, timeout=1.0, jitter=0.2), seed=seed)
        hc.add_server("a", 0.0, warm=True)
        times = []
        for _ in range(50):
            t = hc.next_probe_time()
            assert hc.due_probes(t) == ["a"]
            times.append(t)
        return times

    times = schedule(3)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(8.0 - 1e-9 <= g <= 12.0 + 1e-9 for g in gaps)
    assert len({round(g, 6) for g in gaps}) > 40  # jittered, not lock-step
    assert schedule(3) == times and schedule(4) != times


def test_rule2_unhealthy_threshold_consecutive_failures_mark_down(impl):
    hc = fleet(impl, unhealthy_threshold=3)
    for t, ok in ((1, False), (2, False), (3, True), (4, False), (5, False)):
        hc.probe_result("s0", ok, float(t))
    assert hc.state("s0") is H  # the success reset the count
    hc.probe_result("s0", False, 6.0)
    assert hc.state("s0") is D and last(hc) == ("s0", H, D, Reason.PROBE_FAILURES)
    assert hc.weight("s0", 6.0) == 0.0


def test_rule2_healthy_threshold_brings_back_half_open(impl):
    hc = fleet(impl, unhealthy_threshold=1, healthy_threshold=2, half_open_trials=2)
    hc.probe_result("s0", False, 1.0)
    hc.probe_result("s0", True, 2.0)
    assert hc.state("s0") is D
    hc.probe_result("s0", True, 3.0)
    assert hc.state("s0") is R and hc.trial_limit("s0") == 2 and last(hc)[3] == Reason.PROBE_SUCCESSES


def test_rule2_probes_do_not_end_an_ejection(impl):
    hc = fleet(impl, consecutive_5xx=1, base_ejection_time=30.0, healthy_threshold=1)
    fail(hc, "s0", 1.0, 1)
    for t in range(2, 20):
        hc.probe_result("s0", True, float(t))
    assert hc.state("s0") is D


def test_rule3_consecutive_errors_eject_with_doubling_time(impl):
    hc = fleet(impl, consecutive_5xx=3, base_ejection_time=10.0, max_ejection_time=35.0)
    fail(hc, "s0", 1.0, 2)
    hc.request_result("s0", True, 1.05)  # a success resets the count
    fail(hc, "s0", 1.1, 2)
    assert hc.state("s0") is H
    fail(hc, "s0", 1.2, 1)
    assert last(hc) == ("s0", H, D, Reason.CONSECUTIVE_ERRORS)
    lengths, now = [], 1.2
    for _ in range(4):
        until = hc.next_change_time()
        lengths.append(round(until - now, 9))
        hc.advance(until)
        now = until + 0.5
        hc.request_result("s0", False, now)  # the half-open trial fails
    assert lengths == [10.0, 20.0, 35.0, 35.0]
    assert hc.get_server_stats()["s0"]["ejections"] == 5


def test_rule3_quiet_time_forgives_ejection_levels(impl):
    hc = fleet(impl, consecutive_5xx=1, base_ejection_time=5.0, max_ejection_time=20.0, slow_start_window=1.0)
    fail(hc, "s0", 0.0, 1)  # level 1: 5 s
    hc.advance(5.0)
    hc.request_result("s0", True, 5.5)  # closes at 5.5
    fail(hc, "s0", 6.0, 1)  # level 2: 10 s
    assert hc.next_change_time() == pytest.approx(16.0)
    hc.advance(16.0)
    hc.request_result("s0", True, 16.5)  # closes at 16.5
    fail(hc, "s0", 16.5 + 45.0, 1)  # 45 s quiet = two whole max_ejection_times: level 2 - 2 + 1 = 1
    assert hc.next_change_time() == pytest.approx(61.5 + 5.0)


def test_rule4_never_more_than_max_ejection_percent(impl):
    hc = fleet(impl, 4, consecutive_5xx=1, max_ejection_percent=50.0)
    for i in range(4):
        fail(hc, f"s{i}", 1.0 + i, 1)
    assert [hc.state(f"s{i}") for i in range(4)] == [D, D, H, H]
    assert hc.ejected_count() == 2 and hc.ejections_refused == 2
    hc.add_server("s4", 5.0, warm=True)
    hc.add_server("s5", 5.0, warm=True)
    fail(hc, "s2", 6.0, 1)  # 3 of 6 = 50%: allowed
    assert hc.state("s2") is D and hc.ejected_count() == 3


def test_rule4_probe_failures_are_not_capped(impl):
    hc = fleet(impl, 2, unhealthy_threshold=1, max_ejection_percent=10.0)
    hc.probe_result("s0", False, 1.0)
    hc.probe_result("s1", False, 1.0)
    assert hc.state("s0") is D and hc.state("s1") is D and hc.ejected_count() == 0


def test_rule5_half_open_trials_close_then_slow_start(impl):
    hc = fleet(impl, consecutive_5xx=1, base_ejection_time=4.0, half_open_trials=2, min_weight=0.2, slow_start_window=10.0)
    fail(hc, "s0", 1.0, 1)
    hc.advance(5.0)
    assert last(hc) == ("s0", D, R, Reason.EJECTION_OVER) and hc.transitions[-1].at == 5.0
    assert hc.trial_limit("s0") == 2 and hc.weight("s0", 5.0) == 0.2
    hc.request_result("s0", True, 6.0)
    assert hc.trial_limit("s0") == 2
    hc.request_result("s0", True, 7.0)
    assert hc.trial_limit("s0") is None and hc.state("s0") is R
    assert hc.weight("s0", 12.0) == pytest.approx(0.5)
    hc.advance(17.0)
    assert last(hc) == ("s0", R, H, Reason.SLOW_START_OVER)


def test_rule5_failed_trial_reopens_longer(impl):
    hc = fleet(impl, consecutive_5xx=5, base_ejection_time=4.0, half_open_trials=3)
    fail(hc, "s0", 1.0, 5)
    hc.advance(10.0)
    hc.request_result("s0", True, 10.5)
    hc.request_result("s0", False, 11.0)  # one failure re-opens, whatever consecutive_5xx
    assert last(hc) == ("s0", R, D, Reason.TRIAL_FAILED)
    assert hc.next_change_time() == pytest.approx(11.0 + 8.0)


def test_rule6_error_rate_degrades_with_a_hysteresis_band(impl):
    hc = fleet(impl, consecutive_5xx=100, ewma_alpha=0.5, degraded_error_rate=0.5, hysteresis=0.5, degraded_weight=0.4)
    hc.request_result("s0", False, 1.0)  # e = 0.5
    assert last(hc) == ("s0", H, DG, Reason.ERROR_RATE) and hc.weight("s0", 1.0) == 0.4
    hc.request_result("s0", True, 1.1)  # 0.25: inside the band, still degraded
    assert hc.state("s0") is DG
    hc.request_result("s0", True, 1.2)  # 0.125 < 0.25: out
    assert last(hc) == ("s0", DG, H, Reason.RECOVERED)


def test_rule6_latency_outlier_against_the_other_servers(impl):
    hc = fleet(impl, 3, ewma_alpha=1.0, latency_factor=2.0, hysteresis=0.5)
    hc.request_result("s0", True, 1.0, 0.01)
    hc.request_result("s1", True, 1.0, 0.01)
    hc.request_result("s2", True, 1.0, 0.021)
    assert last(hc) == ("s2", H, DG, Reason.LATENCY_OUTLIER)
    hc.request_result("s2", True, 1.1, 0.016)  # exit below 1.5 x 0.01: still degraded
    assert hc.state("s2") is DG
    hc.request_result("s2", True, 1.2, 0.014)
    assert last(hc) == ("s2", DG, H, Reason.RECOVERED)


def test_rule6_a_single_server_is_never_an_outlier(impl):
    hc = fleet(impl, 1, ewma_alpha=1.0)
    hc.request_result("s0", True, 1.0, 5.0)
    assert hc.state("s0") is H


def test_rule7_recovering_is_not_degraded_until_slow_start_ends(impl):
    hc = impl.HealthChecker(HealthPolicy(ewma_alpha=1.0, latency_factor=2.0, slow_start_window=10.0))
    hc.add_server("a", 0.0, warm=True)
    hc.add_server("b", 0.0)
    hc.request_result("a", True, 1.0, 0.01)
    hc.request_result("b", True, 1.0, 0.1)  # a warming server is slow: expected
    assert hc.state("b") is R
    hc.advance(10.0)
    assert last(hc) == ("b", R, DG, Reason.SLOW_START_OVER)


@pytest.mark.parametrize("aggression,min_weight", [(1.0, 0.1), (2.0, 0.05), (0.5, 0.2)])
def test_rule8_slow_start_weight_is_envoys_curve(impl, aggression, min_weight):
    hc = impl.HealthChecker(HealthPolicy(slow_start_window=20.0, aggression=aggression, min_weight=min_weight))
    hc.add_server("n", 0.0)
    for t in (0.0, 1.0, 5.0, 10.0, 19.0):
        assert hc.weight("n", t) == pytest.approx(max(min_weight, (t / 20.0) ** (1 / aggression)))
    assert hc.weight("n", 20.0) == 1.0


def test_rule9_calls_apply_due_time_transitions_first(impl):
    hc = fleet(impl, consecutive_5xx=1, base_ejection_time=5.0)
    fail(hc, "s0", 0.0, 1)
    hc.request_result("s0", True, 6.0)  # the ejection ended at 5.0: this success is the half-open trial
    assert [t.reason for t in hc.transitions[-2:]] == [Reason.CONSECUTIVE_ERRORS, Reason.EJECTION_OVER]
    assert hc.trial_limit("s0") is None  # one trial (the default) closed it


def test_rule10_results_while_down_change_nothing(impl):
    hc = fleet(impl, consecutive_5xx=2, base_ejection_time=50.0)
    fail(hc, "s0", 0.0, 2)
    before = hc.get_server_stats()
    for k in range(10):
        hc.request_result("s0", k % 2 == 0, 1.0 + k, 0.5)
    assert hc.get_server_stats()["s0"] == before["s0"]


def test_thirty_percent_failing_server_does_not_flap(impl):
    """The docstring's hysteresis claim: ten requests a second, 30% failing, for ten minutes."""
    hc = fleet(impl, 4)
    rng = random.Random(7)
    now, routed = 0.0, 0
    for _ in range(6000):
        now += 0.1
        hc.advance(now)
        if hc.weight("s0", now) > 0:
            routed += 1
            hc.request_result("s0", rng.random() >= 0.3, now)
    changes = [t for t in hc.transitions if t.server_id == "s0" and t.old is not None]
    ejections = [t for t in changes if t.new is D]
    assert len(changes) < 40, [(round(t.at), t.new.value) for t in changes]
    gaps = [b.at - a.at for a, b in zip(ejections, ejections[1:])]
    assert all(g >= 30.0 for g in gaps)  # never back-to-back within an ejection time
    assert max((u.at - t.at) for t, u in zip(ejections, ejections[1:])) >= 120.0  # and the gaps grow


def test_without_backoff_and_band_the_same_server_flaps(impl):
    """The control for the test above: no growth of the ejection time, an exit threshold next to the entry."""
    hc = impl.HealthChecker(HealthPolicy(max_ejection_time=30.0, hysteresis=0.99), seed=1)
    for i in range(4):
        hc.add_server(f"s{i}", 0.0, warm=True)
    rng = random.Random(7)
    now = 0.0
    for _ in range(6000):
        now += 0.1
        hc.advance(now)
        if hc.weight("s0", now) > 0:
            hc.request_result("s0", rng.random() >= 0.3, now)
    assert len([t for t in hc.transitions if t.server_id == "s0" and t.old is not None]) > 60


# --- RetryLedger ------------------------------------------------------------------------------


def test_ledger_rule1_attempts_are_numbered_and_bounded(impl):
    ledger = impl.RetryLedger(RetryPolicy(max_tries=2))
    assert ledger.begin("r", "a", 0.0) == 1
    with pytest.raises(ValueError):
        ledger.begin("r", "b", 0.0)  # an attempt is in flight
    assert ledger.server_down("a", 1.0) == (["r"], [])
    assert ledger.begin("r", "b", 1.0) == 2
    assert ledger.server_down("b", 2.0) == ([], ["r"])
    assert ledger.status("r") == "failed"


def test_ledger_rule2_streamed_request_is_not_restarted(impl):
    ledger = impl.RetryLedger(RetryPolicy(max_tries=5))
    ledger.begin("quiet", "a", 0.0)
    ledger.begin("talking", "a", 0.0)
    ledger.first_token("talking", 0.5)
    resend, failed = ledger.server_down("a", 1.0)
    assert (resend, failed) == (["quiet"], ["talking"])
    assert [a.outcome for a in ledger.history("talking")] == [Outcome.SERVER_DOWN]


def test_ledger_rule3_exactly_one_answer_late_ones_counted(impl):
    ledger = impl.RetryLedger()
    ledger.begin("r", "a", 0.0)
    assert ledger.timed_out("r", 1.0) is True
    ledger.begin("r", "b", 1.0)
    assert ledger.answer("r", "a", 1.5) is False  # the first server, late
    assert ledger.answer("r", "b", 2.0) is True
    assert ledger.answer("r", "b", 2.1) is False  # a duplicate
    history = ledger.history("r")
    assert [(a.server_id, a.outcome) for a in history] == [("a", Outcome.TIMED_OUT), ("b", Outcome.ANSWERED)]
    assert history[0].late_answer_at == 1.5
    assert ledger.stats()["late_answers_discarded"] == 2 and ledger.stats()["answered"] == 1
    ledger.finish("r")
    assert ledger.answer("r", "b", 3.0) is False and ledger.stats()["late_answers_discarded"] == 3


def test_ledger_rule4_per_try_timeout_deadline(impl):
    ledger = impl.RetryLedger(RetryPolicy(max_tries=2, per_try_timeout=5.0))
    ledger.begin("r", "a", 1.0)
    assert ledger.deadline("r") == 6.0
    with pytest.raises(ValueError):
        ledger.timed_out("r", 5.9)
    assert ledger.status("r") == "in flight"
    assert ledger.timed_out("r", 6.0) is True
    ledger.begin("r", "b", 6.0)
    assert ledger.timed_out("r", 11.0) is False and ledger.status("r") == "failed"


def test_ledger_rule4_fail_and_finish(impl):
    ledger = impl.RetryLedger()
    ledger.begin("r", "a", 0.0)
    ledger.server_down("a", 1.0)
    ledger.fail("r", 2.0)  # no server left to re-send to
    assert ledger.status("r") == "failed" and ledger.stats()["failed"] == 1
    ledger.begin("s", "a", 3.0)
    ledger.finish("s")  # the client went away
    assert ledger.stats()["cancelled"] == 1 and ledger.stats()["in_flight"] == 0
    with pytest.raises(KeyError):
        ledger.history("s")
