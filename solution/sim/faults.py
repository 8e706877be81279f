"""Faults and operator actions on a timetable.

Each event happens at ``at`` seconds of simulated time to one server:

* :class:`Crash`: the server dies.  Its in-flight requests end with outcome
  ``CRASHED`` at that instant (the gateway sees the connections break and
  calls ``complete_request`` for each).  Until it recovers, a request routed
  to it fails at once (outcome ``FAILED``, a refused connection).  The
  balancer is not told: stage 1 has no health check, unless the scenario sets
  ``crash_detection`` (then the gateway calls ``remove_server`` that many
  seconds after the crash, and ``add_server`` again when it recovers).
* :class:`Slowdown`: the server runs ``factor`` times slower from now on
  (thermal throttling, a noisy neighbour); running requests slow down at once.
* :class:`FailFraction`: from now on the server fails that fraction of the
  requests it is sent (an error response, at once).
* :class:`Recover`: the server is healthy again (up, full speed, no failures).
* :class:`AddServer` / :class:`RemoveServer`: an operator scales out, or
  drains a server gracefully (``remove_server``: its running requests finish).

Several events at the same instant apply in timetable order.
"""

from __future__ import annotations

from dataclasses import dataclass

from solution.sim.cluster import ServerSpec
from solution.sim.validate import require_number
from solution.core.validate import require_id

__all__ = ["Crash", "Slowdown", "FailFraction", "Recover", "AddServer", "RemoveServer", "TimetableEvent"]


@dataclass(frozen=True)
class _ServerEvent:
    """Something that happens to server ``server`` at ``at`` seconds."""

    at: float
    server: str

    def __post_init__(self) -> None:
        require_number(self.at, "at", strict=False)
        require_id(self.server, "server")


@dataclass(frozen=True)
class Crash(_ServerEvent):
    """The server dies: its in-flight requests are lost."""


@dataclass(frozen=True)
class Recover(_ServerEvent):
    """The server is up, at full speed, and fails nothing."""


@dataclass(frozen=True)
class RemoveServer(_ServerEvent):
    """The operator drains the server (``remove_server``)."""


@dataclass(frozen=True)
class Slowdown(_ServerEvent):
    """The server runs ``factor`` times slower (4 means four times slower)."""

    factor: float

    def __post_init__(self) -> None:
        super().__post_init__()
        require_number(self.factor, "factor")


@dataclass(frozen=True)
class FailFraction(_ServerEvent):
    """The server fails ``fraction`` (0 to 1) of the requests it is sent."""

    fraction: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if require_number(self.fraction, "fraction", strict=False) > 1:
            raise ValueError(f"fraction must be between 0 and 1, got {self.fraction}")


@dataclass(frozen=True)
class AddServer:
    """The operator adds the server ``spec`` (``add_server``)."""

    at: float
    spec: ServerSpec

    def __post_init__(self) -> None:
        require_number(self.at, "at", strict=False)
        if not isinstance(self.spec, ServerSpec):
            raise TypeError(f"AddServer needs a ServerSpec, got {type(self.spec).__name__}")

    @property
    def server(self) -> str:
        return self.spec.server_id


TimetableEvent = Crash | Slowdown | FailFraction | Recover | AddServer | RemoveServer
