"""Every notebook, opened in JupyterLab and used the way a learner uses it.

For each ``notebooks/*.ipynb``: open the candidate's bundle's copy of it (the same
bytes: ``tests/meta/test_bundle.py``) in JupyterLab started like ``make lab`` in the
bundle, with the reference dropped into the bundle's ``exercises/``; clear it,
Run > Run All Cells, and fail on an error output, a cell that did not run, a cell
tagged ``nbval-check-output`` printing other text than when built, "Error displaying widget" / "model not found", or a
widget showing no controls; then operate one control of each kind in every widget
(drag a slider, pick a menu entry, click a button, ...) and fail unless what it
drives changes within one second.  Screenshots of each widget before and after go
to ``screenshots/<notebook>/``.  See ``docs/browser-tests.md``.

nbval runs the same notebooks in the repository against ``solution`` (``make test``);
this is their run in the candidate's bundle, which nbval no longer repeats there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.browser


def test_there_are_notebooks_to_open():
    assert any(p.name.startswith("01_") for p in NOTEBOOKS), "notebooks/01_*.ipynb is missing"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_its_widgets_answer(lab, notebook):
    report = lab.check(lab.server.root / "notebooks" / notebook.name)
    print(report.describe())
    assert report.ok, report.failure_message()
    assert report.widgets == 0 or report.interactions, f"{report.notebook}: widgets shown, but none could be operated"
