"""Stage 5's race (solution.sim.affinityrace): common random numbers, the pile-up, the sticky crash, the metrics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from solution.sim.affinityrace import (
    AFFINITY_METRICS,
    DEFAULT_POLICIES,
    Policy,
    affinity_race,
    affinity_run,
    imbalance,
    moved_share,
    mooncake_scenario,
    pileup_scenario,
    scenario_for,
    sticky_crash_scenario,
)
from solution.sim.cli import main

pytestmark = pytest.mark.sim


def test_every_policy_sees_the_same_traffic() -> None:
    runs = {p.label: affinity_run(p, requests=300, seed=2) for p in (Policy("none"), Policy("hard"), Policy("bounded"))}
    first = next(iter(runs.values())).results
    for run in runs.values():
        res = run.results
        assert (res.prompt_tokens == first.prompt_tokens).all() and (res.output_tokens == first.output_tokens).all()
        known = ~np.isnan(first.arrival) & (first.session != np.roll(first.session, 1))  # first turns: sent by the arrival process
        assert (res.arrival[known] == first.arrival[known]).all()
        assert set(run.metrics) == set(AFFINITY_METRICS)
        assert run.load.shape == run.occupancy.shape == (len(run.times), 4)
        assert (run.occupancy <= run.capacity_blocks).all()
    hard, none = runs["hard"].metrics, runs["no affinity"].metrics
    assert hard["moved"] == 0 and hard["remaps"] == 0 and none["moved"] > 0.5
    assert hard["hit_rate"] > none["hit_rate"] and hard["prefill_saved"] > none["prefill_saved"]
    for run in runs.values():
        assert 0 < run.metrics["ceiling_ratio"] <= 1 + 1e-12


def test_a_hot_session_piles_onto_one_server_under_hard_affinity_and_soft_spreads_it() -> None:
    scenario = pileup_scenario(requests=2000)
    hard = affinity_run(Policy("hard"), scenario=scenario, seed=1)
    soft = affinity_run(Policy("soft", slack=0.25), scenario=scenario, seed=1)
    busiest = lambda run: run.load.mean(axis=0).max() / run.load.mean()  # noqa: E731
    assert hard.metrics["imbalance"] > soft.metrics["imbalance"] + 0.3
    assert busiest(hard) > 2.0 > busiest(soft)  # one server carries over twice the mean under hard affinity
    assert soft.strategy_stats["remaps"]["imbalance"] > 0 and hard.strategy_stats["remapped"] == 0


def test_a_crashed_sticky_server_is_left_and_its_sessions_move() -> None:
    scenario = sticky_crash_scenario(requests=1500)
    crash, recover = (e.at for e in scenario.timetable)
    run = affinity_run(Policy("hard"), scenario=scenario, seed=0)
    assert run.strategy_stats["remaps"]["down"] > 0
    res = run.results
    down = res.health.first_down("gpu-0", crash)
    assert crash <= down < recover
    started_there = (res.server == 0) & (res.start > down + 1e-9) & (res.start < recover)
    assert not started_there.any()  # nothing is sent to the crashed server while it is down
    occupancy = run.results.cache.occupancy_over_time(np.array([crash - 1e-6, crash + 1e-6]))
    assert occupancy[0, 0] > 0 and occupancy[1, 0] == 0  # its cache is gone


def test_the_race_table_and_its_intervals() -> None:
    out = affinity_race("synthetic", (Policy("none"), Policy("soft", slack=0.5)), seeds=range(2), requests=300, workers=0)
    assert out.policies == ("no affinity", "soft slack 0.5") and out.seeds == (0, 1)
    mean, low, high = out.interval("soft slack 0.5", "hit_rate")
    assert low <= mean <= high
    d, _, _ = out.difference("soft slack 0.5", "no affinity", "hit_rate")
    assert d > 0
    text = out.table()
    assert "ceiling" in text and "no affinity" in text and "95% t intervals" in text
    assert len({p.label for p in DEFAULT_POLICIES}) == len(DEFAULT_POLICIES)
    with pytest.raises(ValueError, match="unique"):
        affinity_race("synthetic", (Policy("hard"), Policy("hard")), requests=50, workers=0)
    with pytest.raises(ValueError, match="workload"):
        scenario_for("nothing")


def test_the_metric_helpers() -> None:
    assert imbalance(np.array([[1, 1], [2, 0]])) == pytest.approx(1.5)
    assert math.isnan(imbalance(np.zeros((3, 2))))
    keys, server, start = np.array([0, 0, 0, 1, 1, -1]), np.array([0, 0, 1, 2, 2, 0]), np.array([0.0, 1, 2, 0, 1, 0])
    assert moved_share(keys, server, start) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        Policy("sticky")
    with pytest.raises(ValueError):
        Policy("soft", slack=-1)
    with pytest.raises(TypeError):
        Policy("soft", slack=True)
    with pytest.raises(ValueError):
        Policy("bounded", epsilon=0)
    assert Policy("soft", slack=math.inf).label == "soft slack inf"


def test_another_implementation_of_the_affinity_classes_is_used_when_asked() -> None:
    with pytest.raises(NotImplementedError, match="not implemented"):  # the repository's exercises are stubs
        affinity_run("hard", impl="exercises", requests=50)


def test_the_mooncake_race_on_a_slice(mooncake_dir: Path) -> None:
    scenario = mooncake_scenario("conversation", servers=4, limit=1500, path=str(mooncake_dir))
    out = affinity_race(scenario, (Policy("none"), Policy("hard")), workers=0)
    assert out.seeds == (0,) and "mooncake conversation" in out.workload
    assert 0.2 < out.ceiling < 0.37  # the first rows: fewer earlier turns to reuse than the whole hour (0.366)
    assert out.values["hard"]["hit_rate"][0] > out.values["no affinity"]["hit_rate"][0]


def test_the_cli_prints_the_race_and_the_checks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["affinity-race", "--workload", "synthetic", "--requests", "200", "--seeds", "2", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "no affinity" in out and "prefix-aware" in out and "ceiling" in out
    assert main(["affinity-race", "--workload", "nothing"]) == 2
    assert main(["kv-checks", "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("agrees") >= 3 and "break-even" in out and "10 GbE" in out
