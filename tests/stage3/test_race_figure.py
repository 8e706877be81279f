"""The strategy race widget's figure is readable by the course's figure rule (tests/sim/test_figures.py)."""

from __future__ import annotations

import pytest

import solution
from solution.core.routing import RouterFactory
from solution.sim import scenarios, simulate
from solution.widgets.strategies import _race_figure
from tests.sim.test_figures import figure_problems

pytestmark = pytest.mark.stage3


def test_race_figure_has_titles_labels_and_legends():
    scenario = scenarios.steady(servers=3, requests=300)
    runs = {name: [simulate(scenario, RouterFactory(cls), seed=s) for s in (1, 2)]
            for name, cls in (("round-robin", solution.RoundRobin), ("power of two", solution.PowerOfChoices))}
    assert figure_problems(_race_figure(runs)) == []
