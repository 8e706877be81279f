"""A minimal rollout controller, for driving solution.sim.deploysim without solution.deploy (the candidate's module).

The events and actions are solution.core.deploy_types' own (support code, never withheld).

``OneByOne``: surge 1, unavailable 0 (start one new server, drain one old one
when it is ready, repeat); with ``rollback_after`` set it rolls back on the
first ``Window`` whose new-version error share exceeds it (drains every new
server and starts old ones for the drained old ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from solution.core.deploy_types import Done, Drain, Drained, Ready, RolledBack, Start, Tick, VersionStats, Window


class OneByOne:
    def __init__(self, fleet: list[tuple[str, str]], new_version: str, plan: Any, now: float) -> None:
        self.old = [sid for sid, v in fleet if v != new_version]
        self.old_version = next(v for _, v in fleet if v != new_version)
        self.new_version, self.plan = new_version, plan
        self.started = False
        self.new: list[str] = []
        self.state = "running"
        self.drained_old: list[str] = []
        self.log: list[Any] = []

    def _timeout(self) -> float:
        t = self.plan.drain_timeout
        return math.inf if t is None else t

    def on(self, event: Any) -> list[Any]:
        if self.state != "running":
            return []
        if isinstance(event, Tick) and not self.started:
            self.started = True
            return [Start(self.new_version, event.at)]
        if isinstance(event, Ready):
            self.new.append(event.server_id)
            if self.old:
                return [Drain(self.old.pop(0), event.at, self._timeout())]
        if isinstance(event, Drained) and event.server_id.startswith(self.old_version):
            self.drained_old.append(event.server_id)
            if self.old:
                return [Start(self.new_version, event.at)]
            self.state = "done"
            return [Done(event.at)]
        limit = getattr(self.plan, "rollback_after", None)
        if isinstance(event, Window) and limit is not None and event.b.requests and event.b.errors / event.b.requests > limit:
            self.state = "rolled_back"
            acts: list[Any] = [Drain(s, event.at, self._timeout()) for s in self.new]
            acts += [Start(self.old_version, event.at) for _ in self.drained_old]
            return acts + [RolledBack(event.at, "errors")]
        return []


LIB = SimpleNamespace(Ready=Ready, Drained=Drained, Tick=Tick, Window=Window, VersionStats=VersionStats,
                      RollingDeploy=OneByOne, CanarySplit=None)


@dataclass(frozen=True)
class Plan:
    drain_timeout: float | None = 600.0
    canary: Any = None
    rollback_after: float | None = None
