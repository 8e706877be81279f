"""Notebook 07's pictures and rollout player: readable figures, the bounds table, refusals, time per change."""

from __future__ import annotations

import io
import statistics
import time

import pytest

from solution.deploy import resolve_surge, resolve_unavailable
from solution.widgets import deploy as dw

pytestmark = pytest.mark.meta


def _readable(fig) -> None:
    fig.savefig(io.BytesIO(), format="png")  # layout engines run at draw time
    figures = pytest.importorskip("tests.sim.test_figures", reason="the figure rule lives in tests/sim (not in every copy)")
    assert figures.figure_problems(fig) == []


def test_bounds_rows_round_surge_up_unavailable_down_and_refuse_both_zero():
    rows = dw.bounds_rows(resolve_surge, resolve_unavailable, [("25%", "25%", 3), ("25%", "25%", 10), (0, "10%", 8), ("150%", 0, 4)])
    assert [(r.resolved_surge, r.resolved_unavailable) for r in rows[:2]] == [(1, 0), (3, 2)]
    assert rows[2].error.startswith("ValueError") and rows[2].resolved_surge == 0
    assert rows[3].error and rows[3].resolved_surge is None


@pytest.fixture(scope="module")
def explorer():
    return dw.DeployExplorer()


def test_the_player_figure_is_readable_and_a_bad_version_is_rolled_back(explorer):
    _readable(explorer.figure())
    explorer.error_rate.value = 0.1
    assert explorer.record.run.result == "rolled_back" and "detected" in explorer.summary.value
    _readable(explorer.figure())  # with the errors' bars on a second axis


def test_a_refused_setting_says_why_and_draws_nothing(explorer):
    explorer.canary.value = "no canary"
    explorer.prewarm.value = False
    explorer.surge.value = 0  # with maxUnavailable 0: both bounds 0
    assert explorer.record.error and "refused" in explorer.summary.value and explorer.image.value == b""
    with pytest.raises(ValueError):
        explorer.figure()
    explorer.unavailable.value = 1  # drain-first within one server of unavailability: runs
    assert not explorer.record.error and explorer.record.metrics["min_capacity"] == 0.75


def test_the_player_answers_well_under_a_second():
    """The work of a change (simulate + draw), as this process's CPU time: the wall time also holds the wait for
    a core, which on a shared 2-core runner can triple it; the browser test measures the wall time a learner sees."""
    w = dw.DeployExplorer()
    cpu, wall = [], []
    for control, value in ((w.error_rate, 0.05), (w.surge, 2), (w.canary, "no canary"), (w.prewarm, False), (w.unavailable, 1)):
        started, started_wall = time.process_time(), time.perf_counter()
        control.value = value
        cpu.append(time.process_time() - started)
        wall.append(time.perf_counter() - started_wall)
        assert w.setting() in w._cache
    median = statistics.median(cpu)
    print(f"DeployExplorer: median {median * 1000:.0f} ms CPU per control change (max {max(cpu) * 1000:.0f} ms; "
          f"wall median {statistics.median(wall) * 1000:.0f} ms)")
    assert median < 0.5


def test_the_player_says_what_to_implement_when_a_stub_stands_in_the_way(monkeypatch):
    import solution.sim.deployrace as race

    def stub(**_):
        raise NotImplementedError("RollingDeploy: not implemented yet")

    w = dw.DeployExplorer()
    monkeypatch.setattr(race, "widget_run", stub)
    w.error_rate.value = 0.07
    assert w.record is None and "not implemented yet" in w.summary.value
