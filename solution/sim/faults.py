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
* :class:`Hang`: the server keeps accepting connections but never answers
  (a stuck CUDA kernel, a deadlocked scheduler): requests on it and
  requests sent to it make no progress, and probes to it time out.  Nothing
  ends by itself: a client's per-try timeout (health checking on) or the
  server's :class:`Recover` (a restart) ends them; requests still stuck when
  the run ends get outcome ``HUNG``.
* :class:`GrayFailure`: the server answers its health probes as usual but
  fails ``fraction`` of the real requests it is sent (at once, an error
  response) and runs ``factor`` times slower on the others: only passive
  checks (outlier detection on real traffic) see it.
* :class:`Recover`: the server is healthy again (up, full speed, no failures).
  After a :class:`Crash` or a :class:`Hang` this is a restart: requests
  still stuck on a hung server end ``CRASHED`` (their connections break),
  and the restarted server warms up (``Scenario.warmup``) before it serves
  at full speed.
* :class:`AddServer` / :class:`RemoveServer`: an operator scales out, or
  drains a server gracefully (``remove_server``: its running requests finish).
  A server added by the timetable warms up first (``Scenario.warmup``).

Health probes (``Scenario.health``) succeed on a healthy, slowed, failing
(:class:`FailFraction`) or gray-failing server; they time out on a crashed
or hung one.

Several events at the same instant apply in timetable order.
"""

from __future__ import annotations

from dataclasses import dataclass

from solution.sim.cluster import ServerSpec
from solution.sim.validate import require_number
from solution.core.validate import require_id

__all__ = ["Crash", "Hang", "GrayFailure", "Slowdown", "FailFraction", "Recover", "AddServer", "RemoveServer", "TimetableEvent"]


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
class Hang(_ServerEvent):
    """The server accepts requests and probes but never answers them (until a :class:`Recover` restarts it)."""


@dataclass(frozen=True)
class GrayFailure(_ServerEvent):
    """The server passes its probes but fails ``fraction`` (0 to 1) of real requests and runs ``factor`` times slower.

    ``factor=1`` (the default) only fails requests; ``fraction=0`` only crawls.
    """

    fraction: float = 0.3
    factor: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if require_number(self.fraction, "fraction", strict=False) > 1:
            raise ValueError(f"fraction must be between 0 and 1, got {self.fraction}")
        if require_number(self.factor, "factor") < 1:
            raise ValueError(f"factor is how many times slower the server runs: at least 1, got {self.factor}")


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


TimetableEvent = Crash | Hang | GrayFailure | Slowdown | FailFraction | Recover | AddServer | RemoveServer
