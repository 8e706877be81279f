"""Stage 2 fixtures: a queue of the implementation under test on a manual clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from solution.core.clock import ManualClock
from solution.core.queue_types import QueuePolicy


@pytest.fixture
def make_queue(impl) -> Callable[..., tuple[Any, ManualClock]]:
    """``make_queue(**policy)`` -> ``(impl.RequestQueue(clock, QueuePolicy(**policy)), clock)``, the clock at 0."""

    def make(**policy: Any) -> tuple[Any, ManualClock]:
        clock = ManualClock()
        return impl.RequestQueue(clock, QueuePolicy(**policy)), clock

    return make
