"""Fixtures of the stage-8 process tests: real servers on loopback, and a guard that nothing outlives the tests.

* ``no_orphan_processes`` (session, autouse): after the last test of the
  session, fails the run if a :class:`solution.gateway.procs.ManagedProcess`
  is still alive (it is stopped first) or a port one listened on still
  accepts connections, so a test that forgets to stop a process, even one
  that fails, is caught.
* ``fleet`` (module): three small inference servers started in parallel
  (``a100``: capacity 2; ``h100``: capacity 4, a 2,000-token KV cache;
  ``faulty``: for fault tests, which must ``clear`` what they inject).
* ``wait_until``: poll a condition with a timeout (tests never sleep to wait).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from solution.gateway import procs
from solution.gateway.procs import Fleet, ServerSpec, start_fleet

#: Model seconds per real second in the shared fleet: 0.05 (a 1 s model generation takes 50 ms).
FLEET_TIME_SCALE = 0.05


@pytest.fixture(scope="session", autouse=True)
def no_orphan_processes() -> Iterator[None]:
    """Fail the session if a managed process or its port outlives the tests (after stopping what is left)."""
    yield
    left = procs.live_processes()
    procs.stop_all(grace=1.0)
    still_open = sorted(port for port in procs.used_ports() if procs.port_open(port))
    problems = []
    if left:
        problems.append(f"{len(left)} managed process(es) were still alive after the tests (now stopped): {left}")
    if still_open:
        problems.append(f"ports of managed processes still accept connections after the tests: {still_open}")
    if problems:
        pytest.fail("; ".join(problems) + ". Stop every process a test starts (a fixture with yield, or `with`).",
                    pytrace=False)  # fmt: skip


def _wait_until(condition: Callable[[], object], timeout: float = 10.0, what: str = "the condition") -> object:
    """Poll ``condition`` every 10 ms until it returns something truthy (returned); AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.01)


@pytest.fixture(scope="session")
def wait_until() -> Callable[..., object]:
    """``wait_until(condition, timeout=10.0, what="...")``: poll until truthy, fail the test after the timeout."""
    return _wait_until


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    """Three small servers (see the module docstring), stopped after the module's tests."""
    specs = [
        ServerSpec("a100", gpu="a100-80gb", capacity=2, time_scale=FLEET_TIME_SCALE),
        ServerSpec("h100", gpu="h100-80gb", capacity=4, kv_limit_tokens=2000, time_scale=FLEET_TIME_SCALE),
        ServerSpec("faulty", gpu="a100-80gb", capacity=4, time_scale=FLEET_TIME_SCALE, seed=1),
    ]
    with start_fleet(specs) as running:
        yield running
