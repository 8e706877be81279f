"""Shared fixtures: the implementation under test, and test settings.

``pytest`` tests the reference (``solution``); ``pytest --impl=exercises``
(or ``LB_IMPL=exercises pytest``) runs the very same tests against the
candidate's package (the option is defined in the root ``conftest.py``).
"""

from __future__ import annotations

import os
from types import ModuleType

import matplotlib
import pytest
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")  # figures in tests render off-screen; never export MPLBACKEND

import solution  # noqa: E402
from solution.impl import load_impl  # noqa: E402

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("quick", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))


@pytest.fixture(scope="session")
def impl() -> ModuleType:
    """The package under test: ``solution`` or ``exercises``."""
    return load_impl(os.environ["LB_IMPL"])


@pytest.fixture(scope="session")
def reference() -> ModuleType:
    """The reference package, whatever is under test."""
    return solution
