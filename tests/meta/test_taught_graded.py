"""Taught = graded, both ways.

Graded -> taught: every rule group the grader scores (the public groups, which the
hidden cases share, and the probes' groups) is named word for word in the prose of
its stage's notebook, in the table "What the check and the grader score".

Taught -> graded: that table is the notebook's list of what is required; every row
of it must be a group the grader scores (a row that names no group fails here).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from solution.checks import SPECS
from solution.checks.probes import PROBES

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = {1: "01_least_connections.py", 2: "02_queuing.py", 3: "03_routing_strategies.py", 4: "04_health_checks.py",
             5: "05_session_affinity.py", 6: "06_priorities_and_tiers.py", 7: "07_drain_and_rollouts.py",
             8: "08_real_systems.py"}  # fmt: skip
pytestmark = pytest.mark.meta


def graded_groups(stage: int) -> list[str]:
    names = [g.name for g in SPECS[stage].groups()] + [p.group for p in PROBES if p.stage == stage]
    return list(dict.fromkeys(names))


def prose(stage: int) -> str:
    """The markdown cells of the stage's notebook source."""
    text = (ROOT / "notebooks" / "src" / NOTEBOOKS[stage]).read_text()
    cells = re.split(r"^# %%", text, flags=re.M)
    return "\n".join(c for c in cells if c.startswith(" [markdown]"))


def table_rows(stage: int) -> list[str]:
    text = prose(stage)
    start = text.find("What the check and the grader score")
    assert start >= 0, f"{NOTEBOOKS[stage]} has no table 'What the check and the grader score'"
    rows = re.findall(r"^# \| `([^`]+)` \|", text[start:], flags=re.M)
    return rows


@pytest.mark.parametrize("stage", sorted(NOTEBOOKS))
def test_every_graded_rule_group_is_taught(stage):
    missing = [name for name in graded_groups(stage) if name not in table_rows(stage)]
    assert not missing, f"{NOTEBOOKS[stage]} does not name these graded rule groups in its table: {missing}"


@pytest.mark.parametrize("stage", sorted(NOTEBOOKS))
def test_every_rule_the_notebook_requires_is_graded(stage):
    extra = [row for row in table_rows(stage) if row not in graded_groups(stage)]
    assert not extra, f"{NOTEBOOKS[stage]} lists as required what no graded group scores: {extra}"
