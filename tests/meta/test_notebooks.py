"""Every notebook is committed executed, in sync with its jupytext source."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import build_notebooks  # noqa: E402

pytestmark = pytest.mark.meta

SOURCES = build_notebooks.sources()


def test_there_are_notebooks():
    assert any(p.stem.startswith("01_") for p in SOURCES)


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_in_sync_with_source(source):
    problem = build_notebooks.out_of_sync(source)
    assert problem is None, f"{problem}: run `make notebooks`"


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_has_no_error_outputs_and_tagged_widgets(source):
    nb = nbformat.read(ROOT / "notebooks" / f"{source.stem}.ipynb", as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert not [o for o in cell.outputs if o.output_type == "error"], f"cell {i} stored an error"
        shows_widget = any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.outputs)
        if shows_widget:
            assert "nbval-ignore-output" in cell.metadata.get("tags", []), f"widget cell {i} must be tagged nbval-ignore-output"
