"""Plotting helpers return figures and never touch pyplot."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from solution.sim import GPU_PRESETS, ModelSpec, Outcome, plot, scenarios, simulate
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
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[::2] == ["steady", "crash"] and all(t.startswith(f"{run}: p99 = ") for t, run in zip(texts[1::2], runs))
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="metric"):
        plot.latency_cdf(runs, "speed")


def test_load_over_time_draws_one_line_per_server_and_the_capacity(runs) -> None:
    fig = plot.load_over_time(runs["steady"], ratio=True)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["gpu-0", "gpu-1", "gpu-2", "gpu-3", "capacity: full batch"]
    assert list(lines[-1].get_ydata()) == [1, 1]
    capacity = int(runs["steady"].capacity[0])
    lines = plot.load_over_time(runs["steady"]).axes[0].get_lines()
    assert lines[-1].get_label() == f"capacity: {capacity} sequences" and list(lines[-1].get_ydata()) == [capacity] * 2


def test_outcomes_over_time_stacks_every_outcome_that_happened(runs) -> None:
    res = runs["crash"]
    fig = plot.outcomes_over_time(res, bins=20)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [o.name.lower() for o in Outcome if res.count(o)] and "failed" in labels
    assert "rejected" not in labels or res.count(Outcome.REJECTED)  # no empty entry
    assert fig.axes[0].get_ylabel().startswith("arrivals per s (")


def test_outcomes_over_time_bins_are_round_and_rates_add_up(runs) -> None:
    res = runs["steady"]
    ax = plot.outcomes_over_time(res, bins=7).axes[0]
    width = float(ax.get_ylabel().split("(")[1].split(" s bins")[0])
    assert width in {m * 10.0**k for m in (1, 2, 5) for k in range(-3, 4)}
    (area,) = ax.collections  # only completed requests: one band
    rates = area.get_paths()[0].vertices[:, 1]
    assert rates.max() * width <= len(res) and rates.max() > 0


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
    models = {g: ModelSpec().latency_model(GPU_PRESETS[g]) for g in GPU_PRESETS}
    assert len(plot.iteration_time(models).axes[0].get_lines()) == len(GPU_PRESETS)
