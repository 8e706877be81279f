"""Options that apply to every pytest run in this repository, notebooks included.

``--impl`` (or ``LB_IMPL``) picks the package under test: ``solution`` (the
reference, the default) or ``exercises`` (the candidate's, the default in the
candidate's bundle, which has no reference).  It is exported
as ``LB_IMPL`` so notebook kernels started by nbval test the same package.
"""

from __future__ import annotations

import os
import sys

import pytest

from solution.core.impl import IMPLEMENTATIONS, reference_available


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--impl",
        choices=IMPLEMENTATIONS,
        default=None,
        help="package under test: solution (the reference, default) or exercises (the candidate's); "
        "LB_IMPL sets it too",
    )


def impl_name(config: pytest.Config) -> str:
    default = "solution" if reference_available() else "exercises"
    return config.getoption("--impl") or os.environ.get("LB_IMPL", "").strip() or default


def pytest_configure(config: pytest.Config) -> None:
    # The grader points LB_EXERCISES_PATH at a candidate's checkout: put it first on the path
    # before any test module is collected, so every `import exercises` finds the candidate's.
    folder = os.environ.get("LB_EXERCISES_PATH", "").strip()
    if folder:
        sys.path.insert(0, os.path.abspath(folder))
    name = impl_name(config)
    if name not in IMPLEMENTATIONS:
        raise pytest.UsageError(f"LB_IMPL must be one of {', '.join(IMPLEMENTATIONS)}; got {name!r}")
    os.environ["LB_IMPL"] = name


def pytest_report_header(config: pytest.Config) -> str:
    return f"implementation under test: {impl_name(config)} (--impl / LB_IMPL)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Record each notebook cell's tags, so the grader can find the check cells in a report."""
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None:
            tags = cell.get("metadata", {}).get("tags", [])
            item.user_properties.append(("tags", ",".join(tags)))
