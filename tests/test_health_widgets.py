"""Stage 4's widgets and figures: they build, every control re-measures and redraws, the measurements agree with the formulas.

The figures are held to the course's figure rule (``tests/sim/test_figures.py``'s
:func:`figure_problems`); the measurements are checked against the
closed forms they are drawn beside, and against hand-counted loss streams.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

import solution.health
from solution.widgets import health as hw
from tests.sim.test_figures import figure_problems

pytestmark = pytest.mark.meta


def _readable(fig) -> None:
    import io

    fig.savefig(io.BytesIO(), format="png")  # layout engines run at draw time
    assert figure_problems(fig) == []


# -- the measurements -------------------------------------------------------------------------------


@pytest.mark.parametrize(("stream", "n", "h", "expected"), [
    ("LLL", 3, 1, 1),            # one run of three losses
    ("LLLLLL", 3, 1, 1),         # still down after the third loss: one ejection, not two
    ("LLL.LLL", 3, 1, 2),        # one success brings it back (h = 1)
    ("LLL.LLL", 3, 2, 1),        # h = 2: one success is not enough
    ("LLL..LLL", 3, 2, 2),
    ("LL.LL.LL", 3, 1, 0),       # never three in a row
    ("", 2, 1, 0),
    ("L.L.LL..LL", 2, 2, 2),
])  # fmt: skip
def test_ejections_are_counted_by_the_rule(stream, n, h, expected):
    lost = np.array([c == "L" for c in stream], dtype=bool)
    assert hw._count_ejections(lost, n, h) == expected


@pytest.mark.parametrize(("p", "n", "h"), [(0.2, 3, 1), (0.3, 2, 2), (0.1, 2, 3)])
def test_false_ejection_rate_agrees_with_the_renewal_formula(p, n, h):
    mean, low, high = hw.false_ejection_rate(p, n, h, probes=1_000_000, seed=5)
    formula = 1 / (hw.expected_run_probes(p, n) + hw.expected_run_probes(1 - p, h))
    assert low <= formula <= high and low < mean < high


def test_crash_detection_lies_in_the_formulas_interval():
    times = hw.crash_detection_times(5.0, 1.0, 3, jitter=0.1, trials=150, seed=2, impl=solution.health)
    low, mean, high = hw.detection_bounds(5.0, 1.0, 3, 0.1)
    assert times.min() >= low - 1e-9 and times.max() <= high + 1e-9
    assert abs(times.mean() - mean) < 0.5  # the mean over 150 crashes; the spread is about 2.2 s


def test_probes_to_false_ejection_match_the_run_length_formula():
    runs = hw.probes_to_false_ejection(0.3, 2, runs=400, seed=1, impl=solution.health)
    from solution.sim.theory import mean_confidence_interval

    _, low, high = mean_confidence_interval(runs, 0.999)
    assert low <= hw.expected_run_probes(0.3, 2) <= high
    assert runs.min() >= 2


def test_a_stub_checker_falls_back_to_the_reference():
    class Stub:
        def __init__(self, policy=None, *, seed=0):
            raise NotImplementedError("Stage 4: HealthChecker.__init__ is not implemented yet")

    assert hw._health_module(types.SimpleNamespace(HealthChecker=Stub)) is solution.health


# -- the figures ----------------------------------------------------------------------------------


def test_the_static_figures_are_readable():
    _readable(hw.failure_modes(seed=0))
    _readable(hw.state_diagram())


def test_the_state_diagram_labels_every_transition():
    texts = [t.get_text() for t in hw.state_diagram().axes[0].texts]
    for _, _, reason in hw.TRANSITIONS:
        assert reason in texts


def test_the_tradeoff_figure_is_readable_and_overlays_the_formula():
    points = [hw.measure_point(5.0, 1.0, n, 2, 0.1, trials=40, probes=50_000) for n in (1, 2, 3)]
    fig = hw.tradeoff_figure(points, thresholds=(1, 2, 3))
    _readable(fig)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(label.startswith("formula") for label in labels)


def test_the_timeline_figure_is_readable_with_and_without_a_play_head():
    states = {"a": [(0.0, 30.0, "healthy"), (30.0, 45.0, "down"), (45.0, 60.0, "recovering"), (60.0, 100.0, "healthy")],
              "b": [(0.0, 100.0, "healthy")]}  # fmt: skip
    load = {"a": ([0.0, 30.0, 45.0, 100.0], [3, 0, 1, 3]), "b": ([0.0, 30.0, 100.0], [3, 6, 3])}
    for now in (None, 50.0):
        _readable(hw.timeline_figure(states, load, [30.1, 30.2, 31.0], end=100.0, faults=[(30.0, "crash a")], now=now))


# -- the widgets ----------------------------------------------------------------------------------


def test_the_tradeoff_explorer_remeasures_on_every_control():
    w = hw.TradeoffExplorer(solution.health)
    first, image = w.last, w.image.value
    assert bytes(image[:4]) == b"\x89PNG" and "formula" in w.summary.value
    w.unhealthy.value = 4
    assert w.last is not first and w.last.unhealthy_threshold == 4 and w.image.value != image
    w.loss.value = 0.2
    assert w.last.loss == pytest.approx(0.2)
    w.timeout.value = 10.0  # above the interval: capped there, not an error
    assert w.last.timeout == w.interval.value


def test_the_tradeoff_explorer_says_what_to_implement_without_a_reference(monkeypatch):
    class Stub:
        def __init__(self, policy=None, *, seed=0):
            raise NotImplementedError("Stage 4: HealthChecker.__init__ is not implemented yet")

    monkeypatch.setattr(hw, "reference_available", lambda: False)
    w = hw.TradeoffExplorer(types.SimpleNamespace(HealthChecker=Stub))
    assert w.last is None and "exercises/health.py" in w.summary.value


def test_the_timeline_reruns_on_a_fault_or_checks_change_and_redraws_on_the_slider():
    w = hw.HealthTimeline(requests=600)
    first = w.record
    assert bytes(w.image.value[:4]) == b"\x89PNG" and "crash, checks both" in w.summary.value
    assert first["states"]["gpu-0"][0][2] == "healthy" and any(s == "down" for _, _, s in first["states"]["gpu-0"])
    w.checks.value = "none"
    assert w.record is not first and not any(s == "down" for _, _, s in w.record["states"]["gpu-0"])  # no checker: never marked
    w.scenario.value = "hang"
    assert "hang, checks none" in w.summary.value
    image = w.image.value
    w.at.value = 30
    assert w.image.value != image  # the play head moved: what lies after it is hidden


def test_the_timeline_counts_every_re_sent_request_once():
    rec = hw.timeline_record("hang", "both", requests=800)
    res = rec["results"]
    assert len(rec["rerouted"]) == res.health.path_stats["re_sent"] > 0
    for times, values in rec["load"].values():
        assert values.min() >= 0 and values[-1] == 0  # every try that started also ended


def test_the_timeline_says_what_to_implement_when_a_stub_stands_in_the_way(monkeypatch):
    def stub(*args, **kwargs):
        raise NotImplementedError("Stage 1: LoadBalancer.__init__ is not implemented yet")

    monkeypatch.setattr(hw, "timeline_record", stub)
    w = hw.HealthTimeline()
    assert w.record is None and "Stage 1" in w.summary.value and w.image.value == b""
