"""Time for components that wait: an injected clock, never a sleep or a poll.

A queue needs "now" to stamp arrivals, compute deadlines and measure rates.
It never reads the wall clock itself: it calls the :data:`Clock` it was
given.  In production that is ``time.monotonic``; in the simulator it is the
simulated time; in tests and notebooks it is a :class:`ManualClock` that
moves only when told to, so every run is exact and repeatable.

Nothing here sleeps or polls.  A driver that must act at a future instant
(a request's deadline) asks the component when (``next_deadline()``) and
schedules an event then: a simulator event, an ``asyncio`` ``call_at``, a
timer wheel.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["Clock", "ManualClock", "read_clock"]

#: A zero-argument callable returning the current time in seconds (a float
#: that never decreases), such as ``time.monotonic``.
Clock = Callable[[], float]


class ManualClock:
    """A clock that moves only when told to: ``clock()`` returns :attr:`now`.

    >>> clock = ManualClock()
    >>> clock.advance(2.5)
    2.5
    >>> clock.set(4.0)
    4.0
    >>> clock()
    4.0
    """

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        self.now = _seconds(start, "start")

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new time."""
        seconds = _seconds(seconds, "seconds")
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance takes seconds >= 0, got {seconds}")
        self.now += seconds
        return self.now

    def set(self, now: float) -> float:
        """Move to ``now``, which must not be earlier than the current time."""
        now = _seconds(now, "now")
        if now < self.now:
            raise ValueError(f"a clock cannot go back: it reads {self.now}, asked to go to {now}")
        self.now = now
        return now

    def __repr__(self) -> str:
        return f"ManualClock({self.now!r})"


def read_clock(clock: Clock, last: float) -> float:
    """Call ``clock`` and check its answer: a finite number, not earlier than ``last``.

    Raises:
        TypeError: the clock returned something other than an int or float.
        ValueError: the time is not finite, or went back before ``last``.
    """
    now = clock()
    if isinstance(now, bool) or not isinstance(now, (int, float)):
        raise TypeError(f"the clock must return a number of seconds, it returned {type(now).__name__} {now!r}")
    if not math.isfinite(now):
        raise ValueError(f"the clock returned {now}; it must return finite seconds")
    if now < last:
        raise ValueError(
            f"the clock went back from {last} to {now}; inject a monotonic clock (time.monotonic, the simulator's time)"
        )
    return float(now)


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    return float(value)
