"""The browser checker catches what it is meant to catch.

Throwaway notebooks (written to ``scratch/`` of the folder JupyterLab serves, deleted afterwards) hold
deliberately broken widgets and cells; the very checker that the course's
notebooks go through must report each breakage, at the right cell and control,
and must pass the healthy widget beside them.  Run with ``-s`` (or ``-rP``) to
see the checker's account.
"""

from __future__ import annotations

import nbformat
import pytest

pytestmark = pytest.mark.browser

HEALTHY = """\
import ipywidgets as W

speed = W.IntSlider(value=5, min=0, max=100, description="speed", continuous_update=False)
mode = W.Dropdown(options=["fast", "slow"], description="mode")
bump = W.Button(description="Bump")
shown = W.HTML()
bumps = [0]

def redraw(_=None):
    shown.value = f"speed {speed.value}, mode {mode.value}, bumped {bumps[0]} times"

def on_bump(_):
    bumps[0] += 1
    redraw()

speed.observe(redraw, names="value")
mode.observe(redraw, names="value")
bump.on_click(on_bump)
redraw()
W.VBox([speed, mode, bump, shown])"""

BROKEN = """\
load = W.IntSlider(value=1, min=0, max=100, description="load", continuous_update=False)
again = W.Button(description="Redraw")
label = W.HTML("load 1")

def on_load(change):
    raise RuntimeError("deliberately broken callback")

load.observe(on_load, names="value")
again.on_click(lambda _: None)  # never redraws
W.VBox([load, again, label])"""

SLOW = """\
import time

size = W.Dropdown(options=["small", "large"], description="size")
note = W.HTML("small")

def on_size(change):
    time.sleep(1.6)  # a widget that answers, but too late
    note.value = change["new"]

size.observe(on_size, names="value")
W.VBox([size, note])"""


def _printed_when_built(source, text):
    """A cell tagged nbval-check-output whose built notebook printed ``text``."""
    return nbformat.v4.new_code_cell(
        source, metadata={"tags": ["nbval-check-output"]}, outputs=[nbformat.v4.new_output("stream", name="stdout", text=text)]
    )


def _problems(report, cell):
    return [p for p in report.problems if p.cell == cell]


def test_checker_fails_broken_and_slow_widgets_and_passes_a_healthy_one(lab, scratch_notebook):
    report = lab.check(scratch_notebook("broken_widgets", [HEALTHY, BROKEN, SLOW]))
    print(report.describe())
    print(report.failure_message())

    assert not _problems(report, 0), f"the healthy widget was reported: {_problems(report, 0)}"
    healthy = {it.kind for it in report.interactions if it.cell == 0 and it.ok(lab.budget)}
    assert healthy == {"slider", "dropdown", "button"}, report.describe()

    broken = {p.control: p.message for p in _problems(report, 1)}
    assert "slider 'load'" in broken, report.failure_message()
    assert "did not change" in broken["slider 'load'"]
    assert "RuntimeError: deliberately broken callback" in broken["slider 'load'"]
    assert "button 'Redraw'" in broken, report.failure_message()
    assert "did not change" in broken["button 'Redraw'"]

    slow = {p.control: p.message for p in _problems(report, 2)}
    assert "dropdown 'size'" in slow, report.failure_message()
    assert "expected within 1 s" in slow["dropdown 'size'"]

    assert len(report.problems) == 3, report.failure_message()


def test_checker_fails_error_outputs_missing_models_and_widgets_without_controls(lab, scratch_notebook):
    report = lab.check(
        scratch_notebook(
            "broken_cells",
            [
                "import ipywidgets as W",
                # a widget view whose model does not exist: "Error displaying widget: model not found"
                (
                    "display({'application/vnd.jupyter.widget-view+json': {'model_id': 'no-such-model', "
                    "'version_major': 2, 'version_minor': 0}, 'text/plain': 'a lost widget'}, raw=True)"
                ),
                'W.VBox([W.HTML("nothing here to slide, pick or click")])',
                _printed_when_built('print("Erlang B lies inside", 4 + 4, "of 8")', "Erlang B lies inside 8 of 8\n"),
                _printed_when_built('print("Erlang B lies inside", 4 + 3, "of 8")', "Erlang B lies inside 8 of 8\n"),
                'raise ValueError("deliberately broken cell")',
                'print("never reached: Run All stops at the error")',
            ],
        )
    )
    print(report.describe())
    print(report.failure_message())

    assert not _problems(report, 0), report.failure_message()
    assert any("Error displaying widget" in p.message for p in _problems(report, 1)), report.failure_message()
    assert any("no controls" in p.message for p in _problems(report, 2)), report.failure_message()
    assert not _problems(report, 3), report.failure_message()  # tagged nbval-check-output, prints what it printed when built
    assert any("'7 of 8' where the built notebook has '8 of 8'" in p.message for p in _problems(report, 4)), report.failure_message()
    assert any("ValueError: deliberately broken cell" in p.message for p in _problems(report, 5)), report.failure_message()
    assert any("did not run" in p.message for p in _problems(report, 6)), report.failure_message()
