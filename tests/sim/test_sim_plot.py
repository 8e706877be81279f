"""Plotting helpers return figures and never touch pyplot."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from solution.sim import GPU_PRESETS, ModelSpec, plot, scenarios, simulate
from solution.sim.sweep import ErlangPoint

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def runs():
    return {"steady": simulate(scenarios.steady(requests=300), seed=1), "crash": simulate(scenarios.crash(requests=300), seed=1)}


@pytest.mark.parametrize("metric", ["e2e", "ttft", "tpot"])
def test_latency_cdf(runs, metric: str) -> None:
    fig = plot.latency_cdf(runs, metric)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.get_legend().get_texts()) == 2 and ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="metric"):
        plot.latency_cdf(runs, "speed")


def test_load_over_time_draws_one_line_per_server(runs) -> None:
    fig = plot.load_over_time(runs["steady"], ratio=True)
    assert len(fig.axes[0].get_lines()) == 4
    assert fig.axes[0].get_ylabel() == "load / capacity"


def test_outcomes_over_time_stacks_every_outcome(runs) -> None:
    fig = plot.outcomes_over_time(runs["crash"], bins=20)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["completed", "rejected", "failed", "crashed"]


def test_helpers_draw_on_a_given_axes(runs) -> None:
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert plot.latency_cdf(runs["steady"], ax=left) is fig
    assert plot.load_over_time(runs["crash"], ax=right) is fig


def test_summary_table_and_erlang_plot_and_iteration_time(runs) -> None:
    assert isinstance(plot.summary_table(runs), Figure)
    points = [ErlangPoint(4, 3.0, 0.206, 0.2, 0.19, 0.21, 5), ErlangPoint(4, 2.0, 0.095, 0.1, 0.09, 0.11, 5)]
    fig = plot.erlang_b_agreement(points)
    assert len(fig.axes[0].get_lines()) >= 1
    timings = {g: ModelSpec().timing(GPU_PRESETS[g], 512) for g in GPU_PRESETS}
    assert len(plot.iteration_time(timings).axes[0].get_lines()) == len(GPU_PRESETS)
