"""The HTTP race end to end: a small seeded workload through a gateway and through HAProxy on the same servers."""

from __future__ import annotations

import pytest

from solution.gateway import procs
from solution.gateway.race import race
from tests.gateway.test_haproxy import require_haproxy

pytestmark = pytest.mark.stage8
slow = pytest.mark.slow


@slow
def test_a_small_race_answers_every_request_through_both_balancers_and_stops_everything() -> None:
    require_haproxy()
    rows = race(requests=24, load=0.5, strategies=("least_connections",), time_scale=0.5, max_output_tokens=32,
                max_seconds=30.0)  # fmt: skip
    assert [row.label for row in rows] == ["gateway least_connections", "haproxy leastconn", "haproxy leastconn weighted",
                                           "haproxy leastconn weighted + L7 retries"]
    for row in rows:
        assert row.summary.sent == 24 and row.summary.ok == 24, row.line()
        assert sum(row.shares.values()) == 24 and "-" not in row.shares  # every answer names its server
    assert not procs.live_processes()


@slow
def test_a_crash_in_the_race_hits_both_balancers_and_the_server_is_back_after() -> None:
    require_haproxy()
    rows = race(requests=24, load=0.5, strategies=("least_connections",), time_scale=0.5, max_output_tokens=32,
                max_seconds=30.0, fault="crash", fault_server="a10-24gb-0", fault_at=0.5, haproxy=("leastconn",))  # fmt: skip
    assert [row.label for row in rows] == ["gateway least_connections, crash a10-24gb-0", "haproxy leastconn, crash a10-24gb-0"]
    for row in rows:
        late = [r for r in row.results if r.at > 0.75 * row.results[-1].at]  # well after the crash (and detection)
        assert late and all(r.server != "a10-24gb-0" for r in late), row.line()
    early = [r.server for r in rows[1].results if r.at < 0.4 * rows[1].results[-1].at]
    assert "a10-24gb-0" in early  # restarted after the gateway's run: HAProxy's run met it alive, then crashed it again
    assert not procs.live_processes()


def test_race_refuses_bad_arguments() -> None:
    require_haproxy()
    with pytest.raises(ValueError, match="fault must be"):
        race(requests=4, fault="meteor")
    with pytest.raises(ValueError, match="fault_at"):
        race(requests=4, fault="crash", fault_at=1.5)
    with pytest.raises(ValueError, match="fault_server"):
        race(requests=4, fault="crash", fault_server="nope")
    with pytest.raises(ValueError, match="haproxy must be"):
        race(requests=4, haproxy=("roundrobin",))
    assert not procs.live_processes()


@slow
def test_overhead_and_capacity_measure_all_three_targets_and_stop_everything() -> None:
    from solution.gateway.race import capacity, overhead

    require_haproxy()
    over = overhead(seconds=0.3, rounds=1)
    assert all(over.requests[t] > 10 for t in ("direct", "gateway", "haproxy"))
    assert over.p50["direct"] <= over.p99["direct"] and over.p50["gateway"] > 0
    assert len(over.lines()) == 5 and "gateway / haproxy" in over.lines()[3] and "CPU per request" in over.lines()[4]
    assert all(over.cpu[t] >= 0 for t in ("direct", "gateway", "haproxy")) and over.cpu["gateway"] > 0  # 10 ms ticks
    cap = capacity(concurrency=8, seconds=0.3, rounds=1)
    assert all(cap.rate[t] > 0 for t in ("direct", "gateway", "haproxy")) and sum(cap.errors.values()) == 0
    assert set(cap.cpu) == {"direct", "gateway", "haproxy"} and "CPU per request" in cap.lines()[-1]
    assert not procs.live_processes()


def test_the_race_scenario_clips_outputs_in_the_scenario_and_the_simulator_runs_it() -> None:
    from solution.gateway.loadgen import from_sim_workload
    from solution.gateway.race import race_scenario, simulated

    scenario = race_scenario(requests=200, max_output_tokens=64)
    sent = from_sim_workload(scenario, seed=1)
    assert len(sent) == 200 and max(r.max_tokens for r in sent) == 64 and min(r.max_tokens for r in sent) >= 32
    sims = simulated(scenario, ["least_connections", "predictive"], seed=1)
    assert {name: s.completed for name, s in sims.items()} == {"least_connections": 200, "predictive": 200}  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        race_scenario(max_output_tokens=8)  # below the workload's smallest output (32)


def test_capacity_weights_are_proportional_and_within_haproxys_range() -> None:
    from solution.gateway.procs import ServerSpec
    from solution.gateway.race import capacity_weights

    specs = [ServerSpec("a", capacity=8), ServerSpec("b", capacity=58), ServerSpec("c", capacity=1)]
    assert capacity_weights(specs) == {"a": 35, "b": 256, "c": 4}


def test_aggregate_gives_an_interval_over_seeds_per_balancer() -> None:
    from solution.gateway.loadgen import LoadResult, summarize
    from solution.gateway.race import RaceRow, aggregate

    def row(label: str, seed: int, e2e: float) -> RaceRow:
        results = [LoadResult(i, float(i), 0.0, 200, 0.01, e2e, 4, None, None) for i in range(3)]
        results.append(LoadResult(3, 3.0, 0.0, 503, None, 0.1, 0, None, "status"))
        return RaceRow(label, summarize(results), {"s": 4}, tuple(results), seed)

    rows = [row("a", 0, 1.0), row("a", 1, 2.0), row("a", 2, 3.0), row("b", 0, 5.0)]
    out = aggregate(rows)
    mean, low, high = out["a"]["e2e_p99"]
    assert mean == pytest.approx(2.0) and low < 2.0 < high and low == pytest.approx(4.0 - high)
    assert out["b"]["e2e_p99"] == (5.0, 5.0, 5.0)  # one seed: no interval
    assert out["a"]["errors"] == (3.0, 3.0, 3.0)


def test_overhead_ratio_is_not_given_when_haproxys_added_time_is_noise() -> None:
    import math

    from solution.gateway.race import Overhead

    over = Overhead({"direct": 9, "gateway": 9, "haproxy": 9}, {"direct": 0.5e-3, "gateway": 1.3e-3, "haproxy": 0.6e-3},
                    {"direct": 7e-3, "gateway": 12e-3, "haproxy": 6e-3})  # fmt: skip
    assert over.added("gateway") == pytest.approx(0.8e-3) and over.ratio("p50") == pytest.approx(8.0)
    assert math.isnan(over.ratio("p99")) and "within the noise" in over.lines()[-1]


# -- the Azure trace race and the retry storm over HTTP ------------------------------------------------

from tests.sim.conftest import trace_dir  # noqa: E402,F401  (the fixture: skip locally without the trace, fail under CI)


def test_an_azure_window_keeps_the_traces_order_and_gaps_sped_up_to_the_load(trace_dir) -> None:  # noqa: F811
    import numpy as np

    from solution.gateway.loadgen import from_sim_workload
    from solution.gateway.race import AZURE_FILE, azure_scenario, race_scenario
    from solution.sim.trace import load_azure_trace

    path = trace_dir / AZURE_FILE
    scenario = azure_scenario(path, window=1, requests=50, load=0.6, max_output_tokens=64)
    sent = from_sim_workload(scenario, seed=1)
    trace = load_azure_trace(path)
    rows = slice(50, 100)
    gaps = np.diff(trace.arrival[rows])
    speedup = scenario.workload.speedup  # type: ignore[attr-defined]
    assert np.allclose(np.diff([r.at for r in sent]), gaps / speedup)  # the trace's bursts, sped up by one factor
    assert [r.prompt_tokens for r in sent] == np.clip(trace.prompt_tokens[rows], 1, 8192).tolist()
    assert [r.max_tokens for r in sent] == np.clip(trace.output_tokens[rows], 1, 64).tolist()
    # the speed-up makes the window's mean rate the fleet's saturated rate on these tokens times the load
    wanted = race_scenario(requests=50, load=0.6).request_rate(np.array([r.prompt_tokens for r in sent]),  # type: ignore[attr-defined]
                                                               np.array([r.max_tokens for r in sent]))  # fmt: skip
    assert (len(sent) - 1) / sent[-1].at == pytest.approx(wanted)
    assert azure_scenario(path, window=0, requests=50).workload.speedup != speedup  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="rows"):
        from_sim_workload(azure_scenario(path, window=10_000, requests=50), seed=0)


@slow
def test_a_small_azure_race_answers_every_request_through_both_balancers(trace_dir) -> None:  # noqa: F811
    from solution.gateway.race import AZURE_FILE, azure_scenario

    require_haproxy()
    scenarios = {x: azure_scenario(trace_dir / AZURE_FILE, window=x, requests=16, load=0.5, max_output_tokens=32) for x in (0, 1)}
    rows = race(seeds=(0, 1), strategies=("least_connections",), time_scale=0.5, max_seconds=30.0, haproxy=("leastconn",),
                scenario=lambda x: scenarios[x])  # fmt: skip
    assert [(row.label, row.seed) for row in rows] == [("gateway least_connections", 0), ("haproxy leastconn", 0),
                                                       ("gateway least_connections", 1), ("haproxy leastconn", 1)]
    for row in rows:
        assert row.summary.sent == 16 and row.summary.ok == 16, row.line()
    assert not procs.live_processes()


@slow
def test_the_storm_sends_three_attempts_per_request_without_a_budget_and_fewer_with_one() -> None:
    from solution.gateway.race import storm, storm_part

    runs = storm(fractions=(1.0,), seeds=(0,), requests=20, load=0.5, time_scale=0.5, max_output_tokens=32, max_seconds=30.0)
    by = {r.policy: r for r in runs}
    assert all(r.sent == 20 and r.ok == 0 for r in runs)  # every attempt fails: no answer whatever the policy
    assert by["no retries"].attempts == 20 and by["retries"].attempts == 60  # max_tries 3, every one sent
    assert 20 < by["retries + budget"].attempts < 60  # the budget (at least 3 retries in flight) refuses some
    part = storm_part(runs, config={})
    assert [row["policy"] for row in part["rows"]] == ["no retries", "retries", "retries + budget"]  # type: ignore[index]
    assert not procs.live_processes()


def test_storm_part_gives_an_interval_per_policy_and_fraction_and_storm_refuses_bad_arguments() -> None:
    from solution.gateway.race import StormRun, storm, storm_part

    runs = [StormRun("retries", 0.5, x, 10, 8, 15 + x) for x in range(3)] + [StormRun("no retries", 0.5, 0, 10, 5, 10)]
    rows = storm_part(runs, config={"requests": 10})["rows"]
    assert [(r["policy"], r["runs"], r["requests"]) for r in rows] == [("no retries", 1, 10), ("retries", 3, 30)]  # type: ignore[index]
    mean, low, high = rows[1]["attempts_per_request"]  # type: ignore[index]
    assert mean == pytest.approx(1.6) and low < mean < high and rows[1]["success_rate"] == pytest.approx([0.8] * 3)  # type: ignore[index]
    with pytest.raises(ValueError, match="policies"):
        storm(policies=("retry harder",))
    with pytest.raises(ValueError, match="fractions"):
        storm(fractions=(1.5,))


def test_jitter_moves_least_connections_tail_and_not_predictives() -> None:
    from solution.gateway.race import jitter_spread, race_scenario, simulated

    scenario = race_scenario()
    spread = jitter_spread(scenario, ["predictive", "least_connections"], seed=0, jitter=0.002, draws=4)
    base = {name: s.e2e_p99 for name, s in simulated(scenario, ["predictive", "least_connections"], seed=0).items()}  # type: ignore[attr-defined]
    assert max(spread["predictive"]) - min(spread["predictive"]) < 0.05 * base["predictive"]  # prices, not arrival order
    assert max(spread["least_connections"]) - min(spread["least_connections"]) > 0.3 * base["least_connections"]


def test_the_storms_simulator_rows_run_the_same_requests_and_print_beside_the_http_rows(tmp_path) -> None:
    from solution.gateway import results
    from solution.gateway.race import StormRun, storm_part, storm_simulated

    sims = storm_simulated(fractions=(1.0,), seeds=(0,), requests=20, load=0.5, max_output_tokens=32)
    by = {r.policy: r for r in sims}
    assert (by["no retries"].attempts, by["retries"].attempts) == (20, 60) and all(r.ok == 0 for r in sims)
    assert 20 < by["retries + budget"].attempts < 60
    http = [StormRun(p, 1.0, 0, 20, 0, a) for p, a in (("no retries", 20), ("retries", 60), ("retries + budget", 31))]
    path = tmp_path / "r.json"
    results.record_part(path, "storm", {"command": "python -m solution.gateway.race --storm", "machine": results.machine(),
                                        "took_seconds": 1.0, **storm_part(http, config={}, simulated_runs=sims)})  # fmt: skip
    rows = results.table(results.load(path), "storm")
    assert [r["policy"] for r in rows] == ["no retries", "retries", "retries + budget", "simulator: no retries",
                                           "simulator: retries", "simulator: retries + budget"]
    assert rows[4]["attempts per request"] == "3.00" and rows[4]["client success"] == "0.0 %"


def test_the_cli_refuses_a_part_name_the_results_file_cannot_hold_before_running_anything(capsys) -> None:
    from solution.gateway.race import main

    with pytest.raises(SystemExit):
        main(["--part", "overhead", "--no-race"])  # not a race part: refused before any process starts
    assert "--part must name a race part" in capsys.readouterr().err
    assert not procs.live_processes()


def test_estimates_record_their_own_parts_and_a_fault_with_estimates_must_be_named(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from solution.gateway import procs, results
    from solution.gateway.race import main

    assert results.PART_KINDS["steady_estimates"] == results.PART_KINDS["azure_estimates"] == "race"
    with pytest.raises(SystemExit):  # crash_estimates is no recorded part: refused before any process starts
        main(["--estimates", "--fault", "crash", "--json", str(tmp_path / "r.json")])
    assert "name the part with --part" in capsys.readouterr().err
    assert not procs.live_processes() and not (tmp_path / "r.json").exists()
