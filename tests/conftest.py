"""Shared fixtures: which implementation the suite tests, and test settings.

``pytest`` tests the reference (``solution``); ``pytest --impl=exercises``
(or ``LB_IMPL=exercises pytest``) runs the very same tests against the
candidate's package.  The option wins over the variable.
"""

from __future__ import annotations

import os
from types import ModuleType

import matplotlib
import pytest
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")  # figures in tests render off-screen; never export MPLBACKEND

import solution  # noqa: E402
from solution.impl import IMPLEMENTATIONS, load_impl  # noqa: E402

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("quick", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--impl",
        choices=IMPLEMENTATIONS,
        default=None,
        help="package under test: solution (the reference, default) or exercises (the candidate's); "
        "LB_IMPL sets it too",
    )


def _impl_name(config: pytest.Config) -> str:
    return config.getoption("--impl") or os.environ.get("LB_IMPL", "").strip() or "solution"


def pytest_configure(config: pytest.Config) -> None:
    name = _impl_name(config)
    if name not in IMPLEMENTATIONS:
        raise pytest.UsageError(f"LB_IMPL must be one of {', '.join(IMPLEMENTATIONS)}; got {name!r}")
    # Notebooks run under nbval inherit the environment: make them test the same package.
    os.environ["LB_IMPL"] = name


def pytest_report_header(config: pytest.Config) -> str:
    return f"implementation under test: {_impl_name(config)} (--impl / LB_IMPL)"


@pytest.fixture(scope="session")
def impl(pytestconfig: pytest.Config) -> ModuleType:
    """The package under test: ``solution`` or ``exercises``."""
    return load_impl(_impl_name(pytestconfig))


@pytest.fixture(scope="session")
def reference() -> ModuleType:
    """The reference package, whatever is under test."""
    return solution
