"""The retry storm in the simulator (stage 8): the retrier through healthsim, the storm curve, the overload scenario.

Behaviour checked: without ``retrier=True`` the health engine calls the path
as before; with it, every re-send waits for the retrier (max_tries, backoff
delays, the budget); the amplification matches ``1 + f + f**2``; the budget
keeps retries in flight within ``max(min_retries, ratio * active)`` after
every decision; a lost server leaves the fleet collapsed with retries and
no budget, and the budget lets it recover; everything is deterministic with
a seed.  Every test is small (a few runs of a few hundred requests).
"""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import solution.health as reference_health
from solution.core.retry_types import Failure, RetryDecision, RetryPolicy
from solution.core.routing import LeastConnections, RouterFactory
from solution.retry import Retrier, backoff_bound
from solution.sim import simulate
from solution.sim.cli import main
from solution.sim.healthsim import HealthConfig
from solution.sim.results import Outcome
from solution.sim.retrystorm import (
    MAX_TRIES,
    POLICIES,
    OverloadScenario,
    StormFleet,
    curve_table,
    overload_rows,
    overload_runs,
    plot_overload,
    plot_storm_curve,
    policy,
    run_overload,
    sick,
    storm_curve,
    storm_on,
    storm_run,
    theory_attempts,
    theory_success,
)

pytestmark = pytest.mark.stage8

SMALL = StormFleet(requests=120)


def run(fraction: float, name: str, *, seed: int = 0, fleet: StormFleet = SMALL, health: object = None, **config: object):
    """One storm run through ``simulate`` (``health``: a stage-4 namespace, e.g. with a spying Retrier)."""
    scenario = fleet.scenario(fraction, name)
    if config:
        scenario = replace(scenario, health=replace(scenario.health, **config))
    return simulate(scenario, RouterFactory(LeastConnections), seed=seed, health=health)


# -- the retrier through healthsim ------------------------------------------------------------------------------


def test_without_the_retrier_an_error_answer_is_not_re_sent_as_in_stage_4():
    res = run(1.0, "retries", retrier=False, retry=None, error_after_prefill=False)
    assert set(res.tries.tolist()) == {1} and set(res.health.fail_reasons.values()) == {"error"}
    assert "retried" not in res.health.path_stats  # the path was built without a retrier: its stats keep stage 4's keys


def test_with_the_retrier_every_error_is_retried_up_to_max_tries():
    res = run(1.0, "retries")
    n = len(res)
    assert set(res.tries.tolist()) == {MAX_TRIES} and set(res.health.fail_reasons.values()) == {"max_tries"}
    assert res.health.path_stats["retried"] == (MAX_TRIES - 1) * n and res.health.path_stats["retry_budget_exhausted"] == 0


def test_each_re_send_waits_its_backoff_and_no_longer_than_its_bound():
    res = run(1.0, "retries", error_after_prefill=False)  # errors at once: a try ends where it starts
    log, pol = res.health, policy("retries")
    gaps = []
    for i in range(len(res)):
        mine = np.flatnonzero(log.try_request == i)
        starts, ends = log.try_start[mine], log.try_end[mine]
        assert np.all(ends == starts)
        for k in range(1, len(mine)):
            gap = starts[k] - ends[k - 1]
            assert 0.0 <= gap <= backoff_bound(k, pol) + 1e-12, (i, k, gap)
            gaps.append(gap)
    assert len(gaps) == 2 * len(res) and np.mean(gaps) > 0.005  # jittered, not re-sent at once


def test_a_costly_error_holds_its_slot_for_its_service_and_never_streams():
    res = run(1.0, "no retries")
    log = res.health
    assert set(log.try_how) == {"error"} and np.all(log.try_end > log.try_start)  # the server worked, then answered 500
    assert np.isnan(res.first_token).all() and (res.outcome == Outcome.FAILED).all()


def test_the_engine_gives_the_retrier_the_failures_it_saw():
    seen: list[Failure] = []

    class Recording(Retrier):
        def decide(self, request_id: str, tries: int, failure: Failure, *, streamed: bool) -> RetryDecision:
            seen.append(failure)
            return super().decide(request_id, tries, failure, streamed=streamed)

    impl = SimpleNamespace(HealthChecker=reference_health.HealthChecker, RetryLedger=reference_health.RetryLedger, Retrier=Recording)
    run(0.5, "retries", health=impl)
    run_overload("retries", OverloadScenario(duration=160.0, lost_at=20.0, lost_for=60.0), seed=0)  # no spy: it must just run
    assert seen and set(seen) == {Failure("status", 500)}


def test_health_config_checks_the_retrier_switches():
    with pytest.raises(ValueError, match="reroute"):
        HealthConfig(retrier=True, reroute=False)
    with pytest.raises(TypeError, match="error_after_prefill"):
        HealthConfig(error_after_prefill=1)  # type: ignore[arg-type]
    assert HealthConfig(retrier=True).retrier_policy() == RetryPolicy() and HealthConfig().retrier_policy() is None
    assert HealthConfig(retry=RetryPolicy(max_tries=5, per_try_timeout=2.0), retrier=True).retry_policy().max_tries == 5


# -- the budget -------------------------------------------------------------------------------------------------


class BudgetSpy(Retrier):
    """The reference Retrier, recording after every retry it grants: (retries in flight, max(min, ratio * active)).

    Envoy's rule holds when a retry is granted; requests that end later shrink
    ``active`` under retries already in flight, which is allowed (they are not
    taken back)."""

    checks: list[tuple[int, int]] = []

    def decide(self, request_id: str, tries: int, failure: Failure, *, streamed: bool) -> RetryDecision:
        d = super().decide(request_id, tries, failure, streamed=streamed)
        budget = self.policy.budget
        assert budget is not None
        if d.retry:
            BudgetSpy.checks.append((self.retries_in_flight, budget.limit(self.active)))
        return d


@pytest.mark.parametrize("where", ["storm", "overload"])
def test_the_budget_bounds_retries_in_flight_at_every_grant(where):
    BudgetSpy.checks = []
    impl = SimpleNamespace(HealthChecker=reference_health.HealthChecker, RetryLedger=reference_health.RetryLedger, Retrier=BudgetSpy)
    if where == "storm":
        res = run(1.0, "retries + budget", health=impl)
    else:
        sc = OverloadScenario(duration=200.0).scenario("retries + budget")
        res = simulate(sc, RouterFactory(LeastConnections), seed=1, health=impl)
    assert BudgetSpy.checks and all(n <= limit for n, limit in BudgetSpy.checks)
    assert max(n for n, _ in BudgetSpy.checks) >= 3  # the budget was reached, not merely never approached
    assert res.health.path_stats["retry_budget_exhausted"] > 0


def test_the_budget_caps_the_storm_that_max_tries_alone_lets_through():
    storm, capped = storm_run(1.0, "retries", fleet=SMALL), storm_run(1.0, "retries + budget", fleet=SMALL)
    assert storm.attempts_per_request == 3.0
    assert capped.attempts_per_request < 1.6 and capped.budget_refused > 0.5


# -- the curve --------------------------------------------------------------------------------------------------


def test_the_formulas():
    assert theory_attempts(0.5) == 1.75 and theory_attempts(0.0) == 1.0 and theory_attempts(1.0, 4) == 4.0
    assert theory_success(0.5) == 0.875 and theory_success(1.0) == 0.0
    with pytest.raises(ValueError):
        theory_attempts(1.5)
    with pytest.raises(TypeError):
        theory_success(True)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        theory_attempts(0.5, 0)
    with pytest.raises(TypeError):
        theory_success(0.5, 2.0)  # type: ignore[arg-type]


def test_amplification_and_success_match_the_formulas_without_a_budget():
    points = storm_curve([0.25, 0.5, 0.75], policies=["no retries", "retries"], seeds=range(5), fleet=SMALL)
    assert [(p.fraction, p.policy) for p in points] == [(f, n) for f in (0.25, 0.5, 0.75) for n in ("no retries", "retries")]
    for p in points:
        assert p.theory_attempts is not None and p.theory_success is not None
        mean, lo, hi = p.attempts_per_request
        assert lo <= p.theory_attempts <= hi and abs(mean - p.theory_attempts) < 0.1, p
        mean, lo, hi = p.success_rate
        assert lo <= p.theory_success <= hi, p
        assert p.budget_refused == (0.0, 0.0, 0.0)


def test_with_a_budget_the_curve_has_no_formula_and_stays_below_the_storm():
    (storm, capped) = storm_curve([0.75], policies=["retries", "retries + budget"], seeds=[0, 1], fleet=SMALL)
    assert capped.theory_attempts is None and capped.theory_success is None
    assert capped.attempts_per_request[2] < storm.attempts_per_request[1]  # the intervals do not even overlap
    assert capped.success_rate[0] < storm.success_rate[0]  # what the budget costs: some requests are not retried


def test_runs_are_deterministic_with_a_seed_and_differ_across_seeds():
    a, b, c = (storm_run(0.5, "retries + budget", fleet=SMALL, seed=s).results for s in (3, 3, 4))
    for name in ("arrival", "finish", "tries", "outcome"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True)
    assert not np.array_equal(a.finish, c.finish, equal_nan=True)
    sc = OverloadScenario(duration=160.0, lost_at=20.0, lost_for=40.0)
    x, y = run_overload("retries", sc, seed=2), run_overload("retries", sc, seed=2)
    assert np.array_equal(x.goodput, y.goodput) and np.array_equal(x.attempts, y.attempts) and x.stats == y.stats


@pytest.mark.parametrize(("call", "error"), [
    (lambda: policy("retry"), ValueError),
    (lambda: policy(None), TypeError),
    (lambda: storm_curve([0.5], seeds=[0, "1"]), TypeError),
    (lambda: storm_curve([0.5], seeds=[0, -1]), ValueError),
    (lambda: storm_curve([0.5], seeds=[0]), ValueError),
    (lambda: storm_curve([1.5], seeds=[0, 1]), ValueError),
    (lambda: storm_curve([0.5], policies="retries", seeds=[0, 1]), TypeError),
    (lambda: storm_curve([0.5], policies=["retry"], seeds=[0, 1]), ValueError),
    (lambda: StormFleet(servers=0), ValueError),
    (lambda: StormFleet(servers="4"), TypeError),
    (lambda: OverloadScenario(servers=1), ValueError),  # a fleet that loses its only server has nothing left
    (lambda: OverloadScenario(lost_at=-1.0), ValueError),
    (lambda: StormFleet(errors_cost_work="yes"), TypeError),
    (lambda: storm_run(0.5, "retries", fleet="big"), TypeError),
    (lambda: OverloadScenario(lost_for=600.0), ValueError),
    (lambda: OverloadScenario(load=-1), ValueError),
    (lambda: OverloadScenario(lose_server=0), TypeError),
    (lambda: OverloadScenario(duration=150.0), ValueError),  # not a whole number of 20 s bins
    (lambda: run_overload("retries", scenario=StormFleet()), TypeError),
    (lambda: plot_storm_curve([]), ValueError),
    (lambda: plot_overload({"retries": []}), ValueError),
    (lambda: curve_table([]), ValueError),
])  # fmt: skip
def test_bad_input_is_refused_with_a_clear_error(call, error):
    with pytest.raises(error):
        call()


# -- the overload scenario --------------------------------------------------------------------------------------


def test_a_lost_server_leaves_retries_without_a_budget_collapsed_and_the_budget_recovers():
    """Seed 1 (python -m solution.sim storm prints all five): the trigger ends at 120 s; only the storm stays down."""
    runs = {name: run_overload(name, seed=1) for name in POLICIES}
    sc = runs["retries"].scenario
    assert runs["no retries"].recovered_at == sc.back_at and runs["no retries"].final_share > 0.95
    assert not runs["retries"].recovered and runs["retries"].final_share < 0.4  # metastable: long after the server is back
    assert runs["retries"].wasted_share > 0.4  # most tries run on for answers nobody reads
    assert runs["retries + budget"].recovered and runs["retries + budget"].final_share > 0.95
    rows = overload_rows({name: [r, r] for name, r in runs.items()})
    assert [r["policy"] for r in rows] == list(POLICIES) and [r["down at the end"] for r in rows] == ["0 of 2", "2 of 2", "0 of 2"]
    assert runs["retries"].served_share < 0.3 < 0.8 < runs["retries + budget"].served_share <= runs["no retries"].served_share == 1.0


def test_the_control_has_no_trigger_and_the_series_add_up():
    sc = OverloadScenario(duration=160.0, lost_at=20.0, lost_for=40.0, lose_server=False)
    assert sc.scenario("retries").timetable == ()
    r = run_overload("no retries", sc, seed=0)
    assert r.times.tolist() == [20.0 * k for k in range(8)]
    assert abs(r.offered.mean() - sc.rate) < 0.5 and r.attempts_per_request == 1.0
    assert r.recovered_at == 0.0 and math.isclose(r.share(0.0, 160.0), r.goodput.sum() / r.offered.sum())


def test_plots_have_titles_labels_and_legends():
    points = storm_curve([0.0, 1.0], seeds=[0, 1], fleet=StormFleet(requests=40))
    runs = overload_runs(("retries", "retries + budget"), OverloadScenario(duration=100.0, lost_at=20.0, lost_for=20.0), seeds=[0, 1])
    for fig in (plot_storm_curve(points), plot_overload(runs)):
        for ax in fig.axes:
            assert ax.get_title() and ax.get_ylabel()
            labels = [t.get_text() for t in ax.get_legend().get_texts()]
            assert labels and all(label and not label.startswith("_") for label in labels)
        assert fig.axes[-1].get_xlabel()
    assert "formula" in curve_table(points)


def test_the_storm_command_prints_the_curve(capsys):
    assert main(["storm", "--seeds", "2", "--fractions", "0,1", "--no-overload"]) == 0
    out = capsys.readouterr().out
    assert "Storm curve" in out and "3.000 [3.000, 3.000]" in out and "Overload" not in out
    assert main(["storm", "--fractions", "2"]) == 2


@pytest.mark.slow
def test_the_storm_command_prints_both_overload_scenarios(capsys):
    assert main(["storm", "--seeds", "2", "--fractions", "0"]) == 0
    out = capsys.readouterr().out
    assert "one of 4 servers gone from 60 s to 120 s" in out and "no server lost (the control)" in out
    assert out.count("retries + budget") == 3  # the curve's row and both scenarios'


def test_in_llm_mode_a_costly_error_comes_at_the_end_of_the_prefill_and_frees_the_slot():
    from solution.sim import scenarios
    from solution.sim.faults import FailFraction

    base = scenarios.steady(servers=2, load=0.5, requests=60)
    failing = replace(base, timetable=(FailFraction(0.0, "gpu-0", 1.0),),
                      health=HealthConfig(active=False, passive=False, retry=policy("retries"), retrier=True, error_after_prefill=True))
    res = simulate(failing, RouterFactory(LeastConnections), seed=0)
    log = res.health
    errors = np.array([h == "error" for h in log.try_how])
    assert errors.any() and set(log.try_server[errors].tolist()) == {0}  # only gpu-0 fails
    clean = simulate(replace(failing, timetable=()), RouterFactory(LeastConnections), seed=0)
    # an error ends a try after its prefill, with the decode left undone: as long as a first token takes, not an answer
    took = np.median(log.try_end[errors] - log.try_start[errors])
    assert took < 0.5 * np.nanmedian(clean.e2e) and took < 3 * np.nanmedian(clean.ttft)
    assert (res.outcome == Outcome.COMPLETED).all()
    assert log.path_stats["retried"] == errors.sum()  # every error re-sent (to gpu-1, which answers)


class Books(Retrier):
    """The reference Retrier, remembered so that a test can read its books after the run."""

    made: list[Retrier] = []

    def __init__(self, policy: RetryPolicy, *, seed: int = 0) -> None:
        super().__init__(policy, seed=seed)
        Books.made.append(self)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fraction=st.sampled_from([0.0, 0.3, 1.0]), name=st.sampled_from(POLICIES), costly=st.booleans(),
       timeout=st.sampled_from([None, 0.5, 3.0]), sharing=st.booleans(), lose=st.booleans(), cancel=st.booleans(),
       seed=st.integers(0, 50))  # fmt: skip
def test_every_request_ends_once_and_the_retriers_books_balance(fraction, name, costly, timeout, sharing, lose, cancel, seed):
    """Random mixes of failing tries (at once or after the work), per-try timeouts (a try may answer after its
    request moved on, or time out while its twin still runs), processor sharing and a lost server: the engine raises if a
    request ends twice or never; the path's counts add up and the retrier is left with nothing active."""
    from solution.sim.cluster import ClassicMode, ServerSpec
    from solution.sim.faults import AddServer, FailFraction, RemoveServer

    fleet = StormFleet(servers=3, capacity=4, load=0.6, requests=80, errors_cost_work=costly)
    scenario = fleet.scenario(fraction, name)
    timetable = scenario.timetable + ((RemoveServer(5.0, "gpu-2"), AddServer(15.0, ServerSpec("gpu-2-new", "A100-80GB", 4)))
                                      if lose else ())  # fmt: skip
    scenario = replace(scenario, mode=ClassicMode(1.0, sharing=sharing), timetable=timetable,
                       health=replace(scenario.health, retry=policy(name, per_try_timeout=timeout), cancel_abandoned=cancel))  # fmt: skip
    Books.made = []
    impl = SimpleNamespace(HealthChecker=reference_health.HealthChecker, RetryLedger=reference_health.RetryLedger, Retrier=Books)
    res = simulate(scenario, RouterFactory(LeastConnections), seed=seed, health=impl)
    stats = res.health.path_stats
    assert stats["delivered"] + stats["failed"] + stats["rejected"] == stats["submitted"] == len(res)
    assert np.all(res.outcome >= 0) and stats["backing_off"] == 0
    (retrier,) = Books.made
    assert retrier.active == 0 and retrier.retries_in_flight == 0
    assert stats["retried"] == retrier.stats()["retries"] and res.tries.max() <= policy(name).max_tries
    cancelled = np.array([h == "cancelled" for h in res.health.try_how])
    assert cancel or not cancelled.any()
    if timeout is not None:  # a cancelled try ran exactly its per-try timeout
        assert np.allclose(res.health.try_end[cancelled] - res.health.try_start[cancelled], timeout)


def test_storm_on_any_scenario_runs_its_requests_on_sick_servers():
    from solution.sim import scenarios

    base = scenarios.steady(servers=2, load=0.5, requests=60)
    sick_one = sick(base, 1.0, "retries")
    assert {e.server for e in sick_one.timetable} == {"gpu-0", "gpu-1"} and sick_one.health.retrier
    assert not sick_one.health.error_after_prefill and sick_one.workload == base.workload
    run = storm_on(base, 1.0, "retries", seed=3)
    assert run.attempts_per_request == 3.0 and run.success_rate == 0.0
    assert np.array_equal(run.results.arrival, simulate(base, seed=3).arrival)  # the very requests of the scenario's seed
    with pytest.raises(ValueError, match="timetable"):
        sick(sick_one, 0.5, "retries")
    with pytest.raises(TypeError):
        sick(StormFleet(), 0.5, "retries")  # type: ignore[arg-type]


def test_a_streamed_try_that_times_out_is_never_retried_so_llm_streams_make_no_storm():
    """In LLM mode the first token is streamed after the prefill; a per-try timeout later in the decode ends the request
    ("streamed"), whatever the policy: the storm needs answers that come whole (classic mode) or failures before a token."""
    from solution.sim import scenarios

    base = scenarios.steady(servers=2, load=0.7, requests=300)
    runs = {name: simulate(replace(base, health=HealthConfig(active=False, passive=False, retrier=True,
                                                             retry=policy(name, per_try_timeout=5.0))),  # fmt: skip
                           RouterFactory(LeastConnections), seed=0)
            for name in ("no retries", "retries")}  # fmt: skip
    storm = runs["retries"].health
    assert storm.fail_reasons and set(storm.fail_reasons.values()) == {"streamed"} and storm.path_stats["retried"] == 0
    assert np.array_equal(runs["retries"].outcome, runs["no retries"].outcome)


def test_cancelling_timed_out_tries_removes_the_sustaining_effect():
    """Seed 1 again, with the abandoned tries taken off their servers at their timeout (as vLLM aborts a request whose
    client is gone): retries without a budget no longer keep the fleet down."""
    sc = OverloadScenario(cancel_abandoned=True)
    run = run_overload("retries", sc, seed=1)
    assert not run.down_at_end and run.final_share > 0.9
    assert run_overload("retries", seed=1).down_at_end  # the same seed without cancelling (the scenario's default)
    res = simulate(sc.scenario("retries"), RouterFactory(LeastConnections), seed=1)
    cancelled = np.array([h == "cancelled" for h in res.health.try_how])
    assert cancelled.any() and np.allclose(res.health.try_end[cancelled] - res.health.try_start[cancelled], sc.per_try_timeout)


def test_cancelling_needs_no_passive_checks_and_no_kv_cache():
    from solution.sim import scenarios
    from solution.sim.errors import SimulationError

    with pytest.raises(ValueError, match="passive"):
        HealthConfig(cancel_abandoned=True)
    with pytest.raises(TypeError):
        OverloadScenario(cancel_abandoned="yes")  # type: ignore[arg-type]
    cached = scenarios.sessions(servers=2, requests=20).with_kv_cache().with_health(active=False, passive=False, cancel_abandoned=True)
    with pytest.raises(SimulationError, match="KV cache"):
        simulate(cached, RouterFactory(LeastConnections), seed=0)


def test_the_storm_command_passes_the_overload_options(capsys):
    assert main(["storm", "--seeds", "2", "--fractions", "0", "--duration", "200", "--timeout", "5", "--cancel", "--load", "0.6"]) == 0
    out = capsys.readouterr().out
    assert out.count("at load 0.6, per-try timeout 5 s, timed-out tries cancelled") == 2 and out.count("; 200 s;") == 2
    assert main(["storm", "--fractions", "0", "--duration", "150"]) == 2  # not a whole number of 20 s bins
