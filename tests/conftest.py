"""Shared fixtures: the implementation under test, and test settings.

``pytest`` tests the reference (``solution``); ``pytest --impl=exercises``
(or ``LB_IMPL=exercises pytest``) runs the very same tests against the
candidate's package (the option is defined in the root ``conftest.py``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import ModuleType

import matplotlib
import pytest
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")  # figures in tests render off-screen; never export MPLBACKEND

import solution  # noqa: E402
from solution.core.impl import load_impl  # noqa: E402

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


@contextmanager
def raises_no_capacity() -> Iterator[pytest.ExceptionInfo[RuntimeError]]:
    """``pytest.raises(RuntimeError)``, except that a stub's ``NotImplementedError``
    (itself a RuntimeError) does not count as the balancer saying "full"."""
    with pytest.raises(RuntimeError) as info:
        yield info
    if isinstance(info.value, NotImplementedError):
        raise AssertionError(f"expected NoCapacityError, got NotImplementedError: {info.value}") from info.value


@pytest.fixture
def no_capacity() -> Callable[[], AbstractContextManager[pytest.ExceptionInfo[RuntimeError]]]:
    """``with no_capacity(): lb.route_request(...)`` expects the balancer to be full."""
    return raises_no_capacity


class TestTimeout(BaseException):
    """A test ran past ``LB_TEST_TIMEOUT`` seconds (set it to run a candidate's code with a limit).

    A BaseException, not an Exception, so that hypothesis does not catch it
    and replay the hanging example without a time limit.
    """

    __test__ = False  # not a test class, despite the name


@pytest.fixture(autouse=True)
def _per_test_time_limit() -> Iterator[None]:
    """Stop a test that runs past ``LB_TEST_TIMEOUT`` seconds (an endless loop in a candidate's code)."""
    limit = float(os.environ.get("LB_TEST_TIMEOUT", "0") or 0)
    if limit <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise TestTimeout(f"Timeout: the test ran past {limit:g} s (an endless loop?)")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with a slow or browser test run first (their order, and every other order, unchanged).

    ``make test``'s two workers then start on the minutes-long files (the bundle, the browser
    tests, the grader's fakes) and end on short ones, not one worker alone on a long file.
    """
    long_files = {item.path for item in items if item.get_closest_marker("slow") or item.get_closest_marker("browser")}
    items.sort(key=lambda item: item.path not in long_files)
