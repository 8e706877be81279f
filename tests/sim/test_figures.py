"""Every figure the course draws is readable: a title, labelled axes with units, a legend naming each line.

The figure functions are found by inspection (every public function of
:mod:`solution.sim.plot` and :mod:`solution.widgets.drawing`), so a new one
fails :func:`test_every_figure_function_has_a_case` until a case below draws
it.  :func:`figure_problems` is the rule; the last tests show it catches each
defect it names (a check that cannot fail is no check).
"""

from __future__ import annotations

import inspect
import io
import re
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import Collection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from solution import QueuePolicy
from solution.sim import GPU_PRESETS, ModelSpec, Outcome, Results, plot, scenarios, simulate
from solution.sim.queueing import QueueConfig
from solution.sim.sweep import ErlangPoint, queue_points
from solution.widgets import affinity as affinity_widget
from solution.widgets import deploy as deploy_widget
from solution.widgets import drawing
from solution.widgets import gateway as gateway_widget
from solution.widgets import health as health_widget
from solution.widgets import simulator as simulator_widget
from solution.widgets import tiers as tiers_widget
from solution.widgets.queueing import QueuePlayground
from solution.widgets.strategies import StrategyRace, _race_figure

pytestmark = pytest.mark.sim

#: Public functions of the figure modules that do not draw a figure.
NOT_FIGURES = {"figure_png"}

_UNIT = re.compile(r"\(.+\)|\bper\b|fraction|share")
_PER_ODD_BIN = re.compile(r"\bper \d")  # "requests per 3.87 s": a count per bin is not a rate
_AUTO_LABEL = re.compile(r"^_child\d+$")  # matplotlib's name for an artist drawn without a label


def figure_problems(fig: Figure) -> list[str]:
    """What makes ``fig`` unreadable, one line per defect (empty: none).

    Each axes needs a title (or the figure a suptitle).  An axes with its
    axis on needs x and y labels that carry a unit (in parentheses, "per
    ...", or a fraction), and no "per <number>" (a rate is per second, not
    per bin).  An axes drawing more than one line or collection needs a
    legend; every legend entry is non-empty, not an underscore name, and
    no data line or collection is left without a label.  A legend entry
    for a line must have points.
    """
    problems: list[str] = []
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""  # noqa: SLF001 - matplotlib keeps it there
    for k, ax in enumerate(fig.axes):
        where = f"axes {k}"
        if not (ax.get_title() or ax.get_title("left") or ax.get_title("right") or suptitle):
            problems.append(f"{where}: no title")
        if ax.axison:
            problems += _label_problems(ax, where)
        problems += _legend_problems(ax, where)
    return problems


def _label_problems(ax: Axes, where: str) -> list[str]:
    problems = []
    for axis, label in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())):
        if not label.strip():
            problems.append(f"{where}: no {axis} label")
        elif not _UNIT.search(label):
            problems.append(f"{where}: the {axis} label {label!r} has no unit (put it in parentheses, or say 'per ...')")
        elif _PER_ODD_BIN.search(label):
            problems.append(f"{where}: the {axis} label {label!r} counts per bin; give a rate per second")
    return problems


def _legend_problems(ax: Axes, where: str) -> list[str]:
    problems = []
    drawn: list[Line2D | Collection] = [a for a in (*ax.get_lines(), *ax.collections) if a.get_visible()]
    unnamed = [a for a in drawn if _AUTO_LABEL.match(str(a.get_label()))]
    if unnamed:
        problems.append(f"{where}: {len(unnamed)} line(s) or area(s) drawn without a label")
    legend = ax.get_legend()
    if legend is None:
        if len(drawn) > 1:
            problems.append(f"{where}: {len(drawn)} lines or areas and no legend")
        return problems
    for text in legend.get_texts():
        if not text.get_text().strip() or text.get_text().startswith("_"):
            problems.append(f"{where}: legend entry {text.get_text()!r} names nothing")
    handles, labels = ax.get_legend_handles_labels()
    for handle, label in zip(handles, labels):
        if isinstance(handle, Line2D) and not np.isfinite(np.asarray(handle.get_ydata(), dtype=float)).any():
            problems.append(f"{where}: legend entry {label!r} has no points")
        elif isinstance(handle, PolyCollection) and not any(_area(path.vertices) > 0 for path in handle.get_paths()):
            problems.append(f"{where}: legend entry {label!r} is an empty area")
    return problems


def _area(vertices: np.ndarray) -> float:
    """The area of a polygon (shoelace formula)."""
    x, y = vertices[:, 0], vertices[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


# -- the cases: every figure function, drawn on small seeded runs ---------------


@pytest.fixture(scope="module")
def runs() -> dict[str, Results]:
    return {
        "steady": simulate(scenarios.steady(requests=400), seed=1),
        "crash": simulate(scenarios.crash(requests=400), seed=1),
        "many": simulate(scenarios.steady(servers=16, requests=400), seed=1),
        "mixed": simulate(scenarios.mixed_gpus(requests=400), seed=1),
        "queue": simulate(scenarios.classic(servers=2, load=1.2, requests=1_000).with_queue(QueueConfig(QueuePolicy(max_depth=8))), seed=1),
    }  # fmt: skip


@pytest.fixture(scope="module")
def points() -> list:
    return queue_points([(2, 1.0, None), (2, 1.6, 3)], seeds=range(2), requests=300, workers=0)


def _models() -> tuple[dict, dict]:
    spec = ModelSpec()
    return ({g: spec.latency_model(gpu) for g, gpu in GPU_PRESETS.items()},
            {g: spec.default_capacity(gpu) for g, gpu in GPU_PRESETS.items()})  # fmt: skip


_ERLANG = [ErlangPoint(4, 3.0, 0.206, 0.2, 0.19, 0.21, 5), ErlangPoint(4, 2.0, 0.095, 0.1, 0.09, 0.11, 5),
           ErlangPoint(8, 4.0, 0.03, 0.031, 0.02, 0.04, 5)]  # fmt: skip

_STATS = {
    "a10": {"capacity": 4, "current_load": 2, "is_draining": False, "gpu_memory_gb": 24},
    "h100": {"capacity": 8, "current_load": 1, "is_draining": True, "gpu_memory_gb": 80},
}

#: name -> draws, from the fixtures, the figures that name must pass the rule on (every option that changes a label).
CASES: dict[str, Callable[[dict, list], list[Figure]]] = {
    "latency_cdf": lambda r, p: [plot.latency_cdf(r["steady"], m) for m in ("e2e", "ttft", "tpot")]
    + [plot.latency_cdf({"steady": r["steady"], "crash": r["crash"]}, log=False)],
    "load_over_time": lambda r, p: [plot.load_over_time(r[k], ratio=ratio) for k in ("steady", "many", "mixed") for ratio in (False, True)],
    "outcomes_over_time": lambda r, p: [plot.outcomes_over_time(r[k]) for k in ("steady", "crash", "queue")],
    "summary_table": lambda r, p: [plot.summary_table({"steady": r["steady"], "queue": r["queue"]})],
    "erlang_b_agreement": lambda r, p: [plot.erlang_b_agreement(_ERLANG)],
    "iteration_time": lambda r, p: [plot.iteration_time(_models()[0]), plot.iteration_time(*_models())],
    "decode_throughput": lambda r, p: [plot.decode_throughput(*_models())],
    "request_timeline": lambda r, p: [plot.request_timeline(r["steady"]), plot.request_timeline(r["queue"], [0, 1, 2])],
    "goodput_curve": lambda r, p: [plot.goodput_curve({0.5: r["steady"], 0.9: r["mixed"]}, ttft_slo=1.0, tpot_slo=0.05)],
    "queue_depth": lambda r, p: [plot.queue_depth(r["queue"]), plot.queue_depth(r["queue"], max_depth=8)],
    "wait_cdf": lambda r, p: [plot.wait_cdf(r["queue"]), plot.wait_cdf({"fifo": r["queue"]}, theory=(2, 1.5), survival=True)],
    "queue_theory_agreement": lambda r, p: [plot.queue_theory_agreement(p, "wait"), plot.queue_theory_agreement(p, "blocking")],
    "draw_cluster": lambda r, p: [drawing.draw_cluster(_STATS), drawing.draw_cluster(_STATS, highlight="a10", title="chosen")],
    # the widgets' own figures (private helpers, listed by hand)
    "simulator widget": lambda r, p: [simulator_widget._figure(r["steady"]), simulator_widget._figure(r["many"])],
    "queue widget": lambda r, p: [QueuePlayground(requests=600)._figure()],
    "strategy race widget": lambda r, p: [_race_figure(StrategyRace(requests=300, seeds=2).run())],
    "health figures": lambda r, p: [health_widget.failure_modes(), health_widget.state_diagram(),
                                    health_widget.tradeoff_figure([health_widget.measure_point(5.0, 1.0, 3, 2, 0.1, trials=20, probes=20_000)])],
    "health timeline widget": lambda r, p: [health_widget.HealthTimeline(requests=300).figure()],
    "affinity figures": lambda r, p: [
        affinity_widget.kv_reuse_figure(affinity_widget.turn_breakdown(np.array([0, 0, 0, 1, 1]), np.array([100, 400, 900, 50, 300]),
                                                                       np.array([200, 300, 5, 200, 1]), max_turn=3),
                                        {g: ModelSpec().latency_model(gpu) for g, gpu in GPU_PRESETS.items()}),
        affinity_widget.ring_figure(), affinity_widget.migration_figure(GPU_PRESETS["A100-80GB"])],
    "affinity race figures": lambda r, p: _affinity_race_figures(),
    "affinity explorer widget": lambda r, p: [affinity_widget.AffinityExplorer(requests=300).figure()],
    "tiers figures": lambda r, p: _tiers_figures(),
    "tier explorer widget": lambda r, p: [tiers_widget.TierExplorer(requests=200).figure()],
    "deploy figures": lambda r, p: _deploy_figures(),
    "deploy player widget": lambda r, p: [deploy_widget.DeployExplorer().figure()],
    "gateway live panel": lambda r, p: _gateway_panel_figures(),
    "retry storm curve": lambda r, p: [_retrystorm().plot_storm_curve(
        _retrystorm().storm_curve([0.0, 1.0], seeds=[0, 1], fleet=_retrystorm().StormFleet(requests=40)))],
    "retry storm overload": lambda r, p: [_retrystorm().plot_overload(_retrystorm().overload_runs(
        ("retries", "retries + budget"), _retrystorm().OverloadScenario(duration=200.0), seeds=[0, 1]))],
}


def _retrystorm() -> ModuleType:
    from solution.sim import retrystorm

    return retrystorm


def _gateway_panel_figures() -> list[Figure]:
    """Notebook 08's live panel, drawn from made-up scrapes (the panel's own test draws it from a real gateway)."""
    samples = [gateway_widget.Sample(t, {"a10": float(t % 3), "h100": float(t % 5)}, float(t % 2), 0.05 * t, float(t),
                                     {"delivered": float(t)}, {"a10": float(t % 2)}) for t in range(8)]  # fmt: skip
    answers = [gateway_widget.Answer(2.5, 200, "hello", 0.04, 0.3, "a10", 12)]
    return [gateway_widget.panel_figure(samples, answers), gateway_widget.panel_figure(samples[:1])]


def _tiers_figures() -> list[Figure]:
    from solution.sim.tiersrace import priority_points, tiers_race
    from solution.tiers import TokenBucket

    bucket = tiers_widget.bucket_trace(TokenBucket(rate=100.0, burst=1_000.0), [(0.0, 800.0), (0.5, 600.0), (3.0, 300.0)], until=5.0)
    cobham = priority_points([(1, (0.3, 0.3)), (2, (0.6, 0.6))], seeds=range(2), requests=2_000, workers=0)
    ladder = tiers_race("overload", seeds=range(2), servers=2, requests=300, workers=0, rungs=("FIFO", "class priority"))
    span = tiers_widget.Span
    timeline = {"b1": [span("b1", "running", 0.0, 1.0), span("b1", "paused", 1.0, 2.0), span("b1", "resume cost", 2.0, 2.5),
                       span("b1", "resumed", 2.5, 4.0)], "p1": [span("p1", "waiting", 0.5, 1.0), span("p1", "running", 1.0, 2.0)]}  # fmt: skip
    return [tiers_widget.bucket_figure(bucket), tiers_widget.cobham_figure(cobham), tiers_widget.ladder_figure(ladder),
            tiers_widget.preemption_cost_figure({"7B FP16": ModelSpec()}, [GPU_PRESETS["A100-80GB"]]),
            tiers_widget.timeline_figure(timeline)]


def _deploy_figures() -> list[Figure]:
    from solution.sim.deployrace import widget_run
    from solution.sim.deploysim import timeline

    runs = {label: widget_run(prewarm=prewarm, max_unavailable=unavailable, error_rate=0.05)
            for label, prewarm, unavailable in (("pre-warm", True, 0), ("drain-first", False, 1))}  # fmt: skip
    lines = {label: (run, timeline(run)) for label, run in runs.items()}
    blast = {"1%": {"detect": (300.0, 250.0, 350.0), "blast": (200.0, 190.0, 210.0)},
             "25%": {"detect": (60.0, 40.0, 80.0), "blast": (260.0, 200.0, 320.0)}}  # fmt: skip
    return [deploy_widget.timeline_figure(runs["drain-first"], lines["drain-first"][1], bound=3),
            deploy_widget.capacity_figure(lines), deploy_widget.blast_figure(blast)]


def _affinity_race_figures() -> list[Figure]:
    from solution.sim.affinityrace import Policy, affinity_race, affinity_run, pileup_scenario

    trace_like = affinity_race("synthetic", policies=(Policy("none"), Policy("soft")), seeds=range(1), requests=300, workers=0)
    seeded = affinity_race("synthetic", policies=(Policy("none"), Policy("hard")), seeds=range(2), requests=300, workers=0)
    runs = {kind: affinity_run(kind, scenario=pileup_scenario(requests=300), seed=1) for kind in ("hard", "soft")}
    return [affinity_widget.race_figure(trace_like), affinity_widget.race_figure(seeded), affinity_widget.pileup_figure(runs)]


def _figure_functions(module: ModuleType) -> list[str]:
    return [name for name, f in inspect.getmembers(module, inspect.isfunction)
            if not name.startswith("_") and f.__module__ == module.__name__ and name not in NOT_FIGURES]  # fmt: skip


@pytest.mark.parametrize("module", [plot, drawing], ids=lambda m: m.__name__)
def test_every_figure_function_has_a_case(module: ModuleType) -> None:
    missing = [name for name in _figure_functions(module) if name not in CASES]
    assert not missing, f"add a case to CASES in {__name__} for the new figure function(s) {missing} of {module.__name__}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_figure_is_readable(name: str, runs, points) -> None:
    figures = CASES[name](runs, points)
    assert figures and all(isinstance(f, Figure) for f in figures)
    for k, fig in enumerate(figures):
        fig.savefig(io.BytesIO(), format="png")  # renders (layout engines run at draw time)
        assert not figure_problems(fig), f"{name}, figure {k}: {figure_problems(fig)}"


def test_throughput_curves_stop_at_each_gpus_capacity() -> None:
    models, capacity = _models()
    ax = plot.decode_throughput(models, capacity).axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    for label, model in models.items():
        (curve,) = [line for line in ax.get_lines() if line.get_label().startswith(f"{label}: ")]
        assert curve.get_xdata()[-1] == capacity[label] and curve.get_ydata()[-1] == pytest.approx(model.throughput(capacity[label]))
        assert f"{label}: at most {model.throughput(capacity[label]):,.0f} tok/s (batch {capacity[label]})" in texts
        (marker,) = [line for line in ax.get_lines() if line.get_marker() == "o" and line.get_color() == curve.get_color()]
        assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (curve.get_xdata()[-1], curve.get_ydata()[-1])
    assert capacity["A10-24GB"] < 10 and max(ax.get_lines()[0].get_ydata()) < 200  # the A10's real maximum, not a batch of 64


def test_no_legend_entry_for_an_outcome_that_never_happened(runs) -> None:
    res = runs["steady"]
    texts = [t.get_text() for t in plot.outcomes_over_time(res).axes[0].get_legend().get_texts()]
    assert texts == [o.name.lower() for o in Outcome if res.count(o)]
    assert res.count(Outcome.REJECTED) or "rejected" not in texts


# -- the rule can fail: one broken figure per defect -----------------------------


def _two_lines(**labels: str) -> Figure:
    fig = Figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], label=labels.get("a", "a"))
    ax.plot([0, 1], [1, 0], label=labels.get("b", "b"))
    ax.set_title("t")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("requests per s")
    return fig


def _broken(defect: str) -> Figure:
    fig = _two_lines(**({"b": "_hidden"} if defect == "underscore entry" else {"b": ""} if defect == "empty entry" else {}))
    ax = fig.axes[0]
    if defect == "no title":
        ax.set_title("")
    elif defect == "no y label":
        ax.set_ylabel("")
    elif defect == "no unit":
        ax.set_xlabel("time")
    elif defect == "per bin":
        ax.set_ylabel("requests per 3.87 s")
    elif defect == "unnamed line":
        ax.plot([0, 1], [0.5, 0.5])
    elif defect == "empty series":
        ax.plot([], [], label="rejected")
    elif defect == "empty area":
        ax.stackplot([0, 1], [[1, 1], [0, 0]], labels=["completed", "rejected"])
    if defect == "no legend":
        return fig
    if defect in ("underscore entry", "empty entry"):
        ax.legend(ax.get_lines(), [line.get_label() for line in ax.get_lines()])  # force the bad names into the box
    else:
        ax.legend()
    return fig


def test_a_good_figure_passes() -> None:
    fig = _two_lines()
    fig.axes[0].legend()
    assert figure_problems(fig) == []


@pytest.mark.parametrize("defect", ["no title", "no y label", "no unit", "per bin", "no legend", "unnamed line",
                                    "underscore entry", "empty entry", "empty series", "empty area"])  # fmt: skip
def test_the_rule_catches(defect: str) -> None:
    assert figure_problems(_broken(defect)), f"a figure with {defect} passed"
