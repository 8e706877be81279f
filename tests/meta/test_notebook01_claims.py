"""Notebook 01 quotes in markdown only numbers that its cells print.

Markdown is static: when the simulator's model changes, a number typed into
the prose goes stale while the output beside it moves.  Every measured number
in the prose after the first experiment (decimals, percentages, counts of
three digits or more) must appear in some printed output of the executed
notebook, or in a code cell (an input the code sets, such as a load of 0.9).  Spec constants (4,096 tokens, 80 GB, 2**32) are written with a
comma or are two digits, and are not measured; they are left alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01_least_connections.ipynb"
pytestmark = pytest.mark.meta

#: A measured number: a decimal or percentage, or an integer of 3+ digits not part of "4,096" or "2**32".
NUMBER = re.compile(r"(?<![\d,.*])(\d+\.\d+%?|\d+%|\d{3,})(?!\d|,\d|\.\d)")

#: The table of graded groups states the check's own constants (3.2 million routes), not measurements.
GRADED_TABLE = "What the check and the grader score"

#: Not measurements: HTTP status codes named in the prose.
STATUS_CODES = {"429", "503"}


def cells() -> list[dict]:
    return json.loads(NOTEBOOK.read_text())["cells"]


def printed() -> str:
    """Every printed output, and the code cells' sources (a number set in code is a stated input)."""
    out = []
    for cell in cells():
        if cell["cell_type"] == "code":
            out.append("".join(cell["source"]))
        for o in cell.get("outputs", []):
            out.append("".join(o.get("text", "")))
            out.append("".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def claims() -> list[tuple[str, str]]:
    """(number, line) for every measured number in the markdown after the first code output."""
    found, started = [], False
    for cell in cells():
        if cell["cell_type"] == "code" and cell.get("outputs"):
            started = True
        if cell["cell_type"] != "markdown" or not started or GRADED_TABLE in "".join(cell["source"]):
            continue
        for line in "".join(cell["source"]).splitlines():
            found += [(m, line.strip()) for m in NUMBER.findall(re.sub(r"`[^`]*`", "", line))]
    return found


def test_the_pattern_finds_measured_numbers_and_skips_spec_constants():
    assert NUMBER.findall("from 9.1% to 5.5%, 447 of 6,000, 4,096 tokens, 2**32, 20.4 s, 80 GB") == ["9.1%", "5.5%", "447", "20.4"]


def test_every_measured_number_in_the_prose_is_printed():
    text = printed()
    missing = [(n, line) for n, line in claims() if n not in text and n not in STATUS_CODES]
    assert claims(), "no measured number found in notebook 01's prose: the pattern is broken"
    assert not missing, f"notebook 01's prose quotes numbers no cell prints (re-run and update them): {missing}"
