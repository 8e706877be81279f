"""The notebooks quote in markdown only numbers that their cells print.

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
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
pytestmark = pytest.mark.meta

#: A measured number: a decimal or percentage, or an integer of 3+ digits not part of "4,096" or "2**32".
NUMBER = re.compile(r"(?<![\d,.*])(\d+\.\d+%?|\d+%|\d{3,})(?!\d|,\d|\.\d)")

#: The table of graded groups states the check's own constants (3.2 million routes), not measurements.
GRADED_TABLE = "What the check and the grader score"

#: Not measurements: HTTP status codes named in the prose.
STATUS_CODES = {"429", "503"}

#: Not measurements either: a year (a citation) or the number of an RFC.
CITATION = re.compile(r"^(19|20)\d\d$")

#: Inputs stated in the prose rather than set in a visible code cell, per notebook, with why.
STATED_INPUTS = {
    "00_simulator.ipynb": {
        "80%": "load 0.8 read as a percentage, to say it is not the utilization",
        "512": "the simulator's token budget per iteration (LlmMode's default)",
        "99.9%": "the confidence level tests/sim uses",
        "30%": "the crash scenario's timetable (crash at 30% of the run)",
        "60%": "the crash scenario's timetable (recovery at 60% of the run)",
        "60.0": "an argument in a code example",
    },
    "02_queuing.ipynb": {
        "30%": "the interactive tier's share of the traffic, a workload input",
        "100%": "what a saturated cluster's utilization reads, by definition",
        "6585": "RFC 6585 (the line wraps before the number)",
    },
    "03_routing_strategies.ipynb": {
        "4.0": "the licence, CC-BY 4.0",
        "99%": "the confidence level of the supermarket intervals",
    },
    "06_priorities_and_tiers.ipynb": {
        "75%": "what a lower tier may use of a server when premium reserves 25% (the standard table's input)",
    },
    "04_health_checks.ipynb": {
        "10%": "the probe loss p = 0.1 read as a percentage (an input of the false-ejection cell)",
        "120": "the trade-off widget's crashes per setting (its trials argument)",
        "40%": "ColdStart's default speed (0.4 of full speed), and the scale-out time (0.4 of the run)",
    },
}


def cells(notebook: str) -> list[dict]:
    return json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]


def printed(notebook: str) -> str:
    """Every printed output, and the code cells' sources (a number set in code is a stated input)."""
    out = []
    for cell in cells(notebook):
        if cell["cell_type"] == "code":
            out.append("".join(cell["source"]))
        for o in cell.get("outputs", []):
            out.append("".join(o.get("text", "")))
            out.append("".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def claims(notebook: str) -> list[tuple[str, str]]:
    """(number, line) for every measured number in the markdown after the first code output."""
    found, started = [], False
    for cell in cells(notebook):
        if cell["cell_type"] == "code" and cell.get("outputs"):
            started = True
        if cell["cell_type"] != "markdown" or not started or GRADED_TABLE in "".join(cell["source"]):
            continue
        for line in "".join(cell["source"]).splitlines():
            bare = re.sub(r"RFC \d+|`[^`]*`", "", line)
            found += [(m, line.strip()) for m in NUMBER.findall(bare) if not CITATION.match(m)]
    return found


def test_the_pattern_finds_measured_numbers_and_skips_spec_constants():
    assert NUMBER.findall("from 9.1% to 5.5%, 447 of 6,000, 4,096 tokens, 2**32, 20.4 s, 80 GB") == ["9.1%", "5.5%", "447", "20.4"]


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_measured_number_in_the_prose_is_printed(notebook):
    text = printed(notebook)
    stated = STATED_INPUTS.get(notebook, {})
    missing = [(n, line) for n, line in claims(notebook) if n not in text and n not in STATUS_CODES and n not in stated]
    assert claims(notebook), f"no measured number found in {notebook}'s prose: the pattern is broken"
    assert not missing, f"{notebook}'s prose quotes numbers no cell prints (re-run and update them): {missing}"
