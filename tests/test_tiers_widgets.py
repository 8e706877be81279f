"""Stage 6's widgets and figures: they build, the measurements follow their formulas, the pictures are readable.

The figures are held to the course's figure rule (``tests/sim/test_figures.py``'s
:func:`figure_problems`); the bucket trace is checked against the bucket's own
arithmetic, the timeline against hand-built outcomes, the resume costs against
their closed forms.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from solution.core.path import Delivered, Dispatched, Preempted
from solution.core.queue_types import Queued
from solution.sim.gpus import MODEL_PRESETS, gpu_preset
from solution.widgets import tiers as tw
from tests.sim.test_figures import figure_problems

pytestmark = pytest.mark.meta


def _readable(fig) -> None:
    fig.savefig(io.BytesIO(), format="png")  # layout engines run at draw time
    assert figure_problems(fig) == []


# -- reservation's rounding ---------------------------------------------------------------------------


def test_rounding_rows_follow_the_table_and_round_up():
    from solution.tiers import TierTable

    rows = tw.rounding_rows(TierTable.standard(), "premium", range(1, 9))
    assert [r.reserved for r in rows] == [1, 1, 1, 1, 2, 2, 2, 2]  # ceil(0.25 c): the docstring's table
    assert [r.lower_limit for r in rows] == [c - r.reserved for c, r in zip(range(1, 9), rows)]
    assert all(r.share >= 0.25 for r in rows)  # the promise is a floor


# -- a token bucket over time -------------------------------------------------------------------------


def test_bucket_trace_agrees_with_the_bucket_and_rounds_retry_after_up():
    from solution.tiers import TokenBucket

    requests = [(0.0, 600.0), (0.5, 600.0), (1.0, 300.0), (4.0, 500.0), (4.2, 500.0)]
    trace = tw.bucket_trace(TokenBucket(rate=100.0, burst=1_000.0), requests, until=6.0, step=0.1)
    assert list(trace.admitted) == [True, False, True, True, False]
    # 0.5 s: 400 + 50 = 450 < 600: wait (600 - 450) / 100 = 1.5 s; Retry-After 2 s
    assert trace.wait[1] == pytest.approx(1.5) and trace.retry_after[1] == 2
    assert all(r == math.ceil(w) for r, w in zip(trace.retry_after, trace.wait))
    assert trace.level.max() <= trace.burst + 1e-9 and trace.level.min() >= -1e-9
    _readable(tw.bucket_figure(trace))


def test_bucket_trace_refuses_requests_out_of_order():
    from solution.tiers import TokenBucket

    with pytest.raises(ValueError):
        tw.bucket_trace(TokenBucket(rate=1.0, burst=10.0), [(2.0, 1.0), (1.0, 1.0)])
    with pytest.raises(ValueError):
        tw.bucket_trace(TokenBucket(rate=1.0, burst=10.0), [(0.0, 1.0)], step=0.0)


# -- preemption: the timeline ---------------------------------------------------------------------------


def _preempted_run():
    return [
        Dispatched("b1", "gpu-0", 0.0),
        Queued("f1", 100, 1, 0.5, None),
        Dispatched("p1", "gpu-0", 1.0),
        Preempted("b1", "gpu-0", 2.0, 1),
        Dispatched("f1", "gpu-0", 3.0, waited=2.5),
        Delivered("p1", "gpu-0", 4.0),
        Dispatched("b1", "gpu-0", 5.0, waited=3.0),
        Delivered("f1", "gpu-0", 6.0),
        Delivered("b1", "gpu-0", 9.0),
    ]


def test_the_timeline_pauses_and_resumes_with_the_resume_cost_apart():
    spans = tw.timeline_from_outcomes(_preempted_run(), resume_cost=lambda rid, t: 0.5)
    assert list(spans) == ["b1", "f1", "p1"]  # in the order of their first outcome
    assert [(s.state, s.start, s.end) for s in spans["b1"]] == [
        ("running", 0.0, 2.0), ("paused", 2.0, 5.0), ("resume cost", 5.0, 5.5), ("resumed", 5.5, 9.0)]  # fmt: skip
    assert [(s.state, s.start, s.end) for s in spans["f1"]] == [("waiting", 0.5, 3.0), ("running", 3.0, 6.0)]
    assert [(s.state, s.start, s.end) for s in spans["p1"]] == [("running", 1.0, 4.0)]
    _readable(tw.timeline_figure(spans))


def test_the_timeline_figure_draws_a_state_once_in_the_legend_and_relabels_a_resume():
    spans = tw.timeline_from_outcomes(_preempted_run())
    ax = tw.timeline_figure(spans).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["waiting", "running", "paused", "resumed"]  # no resume cost given: none drawn


# -- preemption: what a resume costs --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODEL_PRESETS))
def test_resume_costs_follow_their_formulas(name):
    model, gpu = MODEL_PRESETS[name], gpu_preset("A100-80GB")
    assert tw.swap_seconds(4_000, model, gpu) == pytest.approx(2 * 4_000 * model.kv_bytes_per_token / (gpu.pcie_gb_s * 1e9))
    assert tw.recompute_seconds(4_000, model, gpu) == pytest.approx(model.latency_model(gpu).prefill_time(4_000))
    assert tw.swap_seconds(8_000, model, gpu) == pytest.approx(2 * tw.swap_seconds(4_000, model, gpu))  # linear in the context


def test_the_preemption_cost_figure_is_readable():
    _readable(tw.preemption_cost_figure(MODEL_PRESETS, [gpu_preset("A100-80GB"), gpu_preset("H100-80GB")]))


# -- strict priority against Cobham -----------------------------------------------------------------------


def test_the_cobham_figure_draws_the_formula_through_its_points():
    from solution.sim.theory import priority_mean_waits
    from solution.sim.tiersrace import PriorityPoint

    points = [PriorityPoint(1, (0.25, 0.25), False, 0, 0.62, 0.5, 0.7, 0.667), PriorityPoint(1, (0.25, 0.25), False, 1, 1.4, 1.2, 1.6, 1.333),
              PriorityPoint(1, (0.4, 0.4), False, 0, 1.3, 1.1, 1.5, 1.333), PriorityPoint(1, (0.4, 0.4), False, 1, 6.5, 6.0, 7.1, 6.667),
              PriorityPoint(4, (1.2, 1.2), False, 0, 0.3, 0.2, 0.4, 0.3), PriorityPoint(4, (1.2, 1.2), False, 1, 0.9, 0.8, 1.0, 0.9)]  # fmt: skip
    fig = tw.cobham_figure(points)
    _readable(fig)
    assert len(fig.axes) == 2  # one panel per server count
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "class 2 of 2, split 50%/50%: Cobham formula"]
    x, y = line.get_xdata()[-1], line.get_ydata()[-1]
    assert x == pytest.approx(0.8) and y == pytest.approx(priority_mean_waits(1, [0.4, 0.4])[1])


# -- the ladder and the widget ------------------------------------------------------------------------------


def test_window_p99_takes_each_windows_own_requests():
    arrival = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 10.0])
    value = np.array([1.0, 2.0, 3.0, 100.0, 5.0, 7.0])
    tier = np.array([0, 0, 0, 1, 0, 0])
    ok = np.array([True, True, True, True, False, True])
    ends, p99 = tw.window_p99(arrival, value, tier, ok, ("a", "b"), windows=2)
    assert ends == pytest.approx([5.0, 10.0])
    assert p99["a"][0] == pytest.approx(np.percentile([1.0, 2.0, 3.0], 99)) and p99["a"][1] == 7.0  # the failed 4.0 s one left out
    assert p99["b"][0] == 100.0 and np.isnan(p99["b"][1])


def test_the_ladder_figure_is_readable_and_names_every_rung():
    from solution.sim.tiersrace import TiersRaceResult

    values = {p: {f"{t}:{m}": (0.5 + 0.1 * k, 0.6 + 0.1 * k) for t in ("premium", "batch") for m in ("slo", "ttft_p99")}
              for k, p in enumerate(("FIFO", "class priority"))}  # fmt: skip
    fig = tw.ladder_figure(TiersRaceResult("overload x1.3", ("FIFO", "class priority"), ("premium", "batch"), (0, 1), values))
    _readable(fig)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["FIFO", "class priority"]


@pytest.fixture(scope="module")
def explorer():
    return tw.TierExplorer(requests=200)


def test_the_explorer_figure_is_readable_and_the_fifo_twin_is_cached(explorer):
    _readable(explorer.figure())
    assert len(explorer._fifo) == 1
    explorer.reserved.value = 10  # the same mix and overload: the FIFO twin is reused
    explorer.preemption.value = False
    assert len(explorer._fifo) == 1 and len(explorer._cache) == 3
    explorer.overload.value = 1.6
    assert len(explorer._fifo) == 2


def test_the_explorer_mix_always_sums_to_one_and_keeps_some_free_traffic(explorer):
    explorer.premium.value, explorer.batch.value = 0.6, 0.6
    mix = explorer.mix()
    assert sum(mix) == pytest.approx(1.0) and mix[1] > 0


def test_the_explorer_reruns_on_every_control_and_answers_well_under_a_second():
    import statistics
    import time

    w = tw.TierExplorer(requests=200)
    seconds = []
    for control, value in ((w.reserved, 0), (w.overload, 1.8), (w.limits, False), (w.preemption, False), (w.premium, 0.3), (w.batch, 0.1)):
        started = time.perf_counter()
        control.value = value
        seconds.append(time.perf_counter() - started)
        assert w.record is not None and w.setting() in w._cache
    median = statistics.median(seconds)
    print(f"TierExplorer: median {median * 1000:.0f} ms per control change (max {max(seconds) * 1000:.0f} ms, {len(seconds)} changes)")
    assert median < 1.0


def test_the_explorer_says_what_to_implement_when_a_stub_stands_in_the_way(monkeypatch):
    import solution.sim.tiersrace as race

    def stub(**_):
        raise NotImplementedError("TierTable.standard: not implemented yet")

    w = tw.TierExplorer(requests=200)
    monkeypatch.setattr(race, "tiers_run", stub)
    w.overload.value = 0.7
    assert w.record is None and "not implemented yet" in w.summary.value


def test_the_explorer_redraws_its_figure_with_the_new_data_as_a_new_figure_would():
    w = tw.TierExplorer(requests=200)
    w.overload.value = 1.8  # the re-used figure now holds this run's data
    left, right = w._figure.axes
    fresh_left, fresh_right = tw.explorer_figure(w.record).axes
    for mine, fresh in zip(left.get_lines(), fresh_left.get_lines()):
        assert mine.get_label() == fresh.get_label()
        assert np.allclose(mine.get_ydata(), fresh.get_ydata(), equal_nan=True)
    assert left.get_ylim()[1] >= np.nanmax([np.nanmax(line.get_ydata()) for line in left.get_lines()])  # nothing clipped
    assert [p.get_height() for p in right.patches] == pytest.approx([p.get_height() for p in fresh_right.patches], nan_ok=True)
