"""Stage 7 in the simulator: server versions, deploy timetables, and a driver for a rollout controller.

* :class:`Version`: what a build of the model server is like, as the
  simulator sees it: ``speed`` (a factor on the token rate: 0.8 = 20% slower),
  ``error_rate`` (the share of answers that are errors, independently per
  try), ``startup`` (seconds from the start of the process to its health
  check passing: a GPU server loads its weights for minutes) and ``warmup``
  (seconds after that during which it runs at ``warm_speed`` of its speed:
  CUDA graph capture, cold prefix cache).  A server is *ready* when both are
  over (health says healthy and slow start is done).
* :class:`DeployScenario`: a timetable: a steady fleet of ``replicas``
  servers of version ``old`` takes Poisson traffic (with an optional peak,
  a multiplier on the rate over ``[start, end)``), and at ``deploy_at`` a
  controller starts replacing it by ``new``.  A share ``long_share`` of the
  requests are long generations (``long_tokens`` output tokens) that can
  outlive a drain timeout.
* :func:`run_deploy`: one run.  It drives a
  :class:`solution.core.path.RequestPath` (router + ``RetryLedger`` + a FIFO
  queue) and a controller *by events*: the controller is any object with
  ``on(event) -> list[action]`` (``solution.deploy.RollingDeploy``); the
  driver feeds it ``Ready``, ``Drained``, ``Tick`` (every ``tick`` seconds)
  and, when the plan has a canary, ``Window`` (per-version stats over the
  last ``window`` seconds), and carries out each action it returns:
  ``Start`` (launch a server of that version), ``Drain`` (graceful
  removal, with the plan's drain timeout), ``SetCanaryWeight`` (the
  ``CanarySplit`` strategy's weight), ``Done`` / ``RolledBack`` (the end).
* :class:`DeployRun` and :func:`deploy_metrics`: what a run records and the
  stage's metrics (rollout duration, minimum serving capacity, requests
  lost, errors, p99 during the rollout against steady state, time to detect
  and blast radius).

The server model is deliberately small: a server has ``slots`` concurrent
requests; a try takes ``prefill + tokens * tpot`` seconds divided by its
version's speed (times ``warm_speed`` while warming); its first token comes
after the prefill (from then on the request is *streamed*: it may not be
re-sent).  An error answer comes at the end of the try.  Requests that find
every slot busy wait in the path's FIFO queue.

Costs: an event is O(log E) heap work plus the path's O(log S) calls; a run
is O((R + T) log E) for R requests and T ticks.
"""

from __future__ import annotations

import heapq
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solution.core.validate import require_id
from solution.sim.validate import require_number

__all__ = ["Version", "DeployScenario", "DeployRun", "run_deploy", "deploy_metrics", "timeline", "SERVING_STATES", "DEPLOY_METRICS"]

#: What :func:`deploy_metrics` returns, in table order.
DEPLOY_METRICS: tuple[str, ...] = ("duration", "min_capacity", "lost", "errors", "p99_steady", "p99_rollout",
                                   "detect", "blast", "forced", "final_new")  # fmt: skip

#: A sim server's states: loading weights, warming (serving, not yet ready), ready, draining, gone.
SERVING_STATES: tuple[str, ...] = ("loading", "warming", "ready", "draining", "gone")


@dataclass(frozen=True)
class Version:
    """A build of the model server: its speed factor, error rate and start-up time.

    Args:
        name: the version label (``Router.add_server(..., version=)``).
        speed: tokens per second as a factor of the reference build (> 0; 0.8 = 20% slower).
        error_rate: the share of tries answered with an error, in [0, 1).
        startup: seconds from launch to the health check passing (weights
            loaded), >= 0; GPU servers take minutes (a 70B model in bf16 is
            140 GB read from disk or the network).
        warmup: seconds after start-up at ``warm_speed`` (slow start), >= 0.
        warm_speed: the speed factor while warming, in (0, 1].

    Raises: TypeError / ValueError on a field of the wrong type or out of range.
    """

    name: str
    speed: float = 1.0
    error_rate: float = 0.0
    startup: float = 180.0
    warmup: float = 30.0
    warm_speed: float = 0.5

    def __post_init__(self) -> None:
        require_id(self.name, "Version.name")
        require_number(self.speed, "Version.speed")
        if require_number(self.error_rate, "Version.error_rate", strict=False) >= 1:
            raise ValueError(f"Version.error_rate is a probability below 1, got {self.error_rate}")
        require_number(self.startup, "Version.startup", strict=False)
        require_number(self.warmup, "Version.warmup", strict=False)
        if require_number(self.warm_speed, "Version.warm_speed") > 1:
            raise ValueError(f"Version.warm_speed is a fraction of the version's speed: at most 1, got {self.warm_speed}")

    @property
    def ready_after(self) -> float:
        """Seconds from launch to ready (start-up plus warm-up).  O(1)."""
        return self.startup + self.warmup


@dataclass(frozen=True)
class DeployScenario:
    """A deploy on a timetable: the fleet, the traffic, the two versions and when the rollout starts.

    Args:
        name: a label for tables.
        old / new: the running version and the one rolled out.
        replicas: servers of ``old`` at the start (the desired count).
        slots: concurrent requests per server.
        rate: requests per second outside the peak.
        duration: seconds of arrivals (the run goes on until every request ended).
        deploy_at: when the controller is created (steady state before it).
        peak: ``(start, end, factor)``: the rate is ``factor`` times ``rate`` over ``[start, end)``; ``None``: no peak.
        mean_tokens: mean output tokens of a normal request (log-normal, sigma 0.8).
        long_share / long_tokens: the share of requests that are long generations, and their output tokens.
        prefill / tpot: seconds of prefill and seconds per output token at speed 1.
        tick: seconds between the controller's ``Tick`` events.
        max_tries: the ``RetryPolicy``'s tries (a request on a server forced out
            by the drain timeout is re-sent when it has not streamed).

    Raises: TypeError / ValueError on a field of the wrong type or out of range.
    """

    name: str
    old: Version
    new: Version
    replicas: int = 8
    slots: int = 8
    rate: float = 6.0
    duration: float = 1800.0
    deploy_at: float = 300.0
    peak: tuple[float, float, float] | None = None
    mean_tokens: float = 250.0
    long_share: float = 0.0
    long_tokens: int = 40_000
    prefill: float = 0.3
    tpot: float = 0.02
    tick: float = 5.0
    max_tries: int = 3

    def __post_init__(self) -> None:
        require_id(self.name, "DeployScenario.name")
        for name in ("old", "new"):
            if not isinstance(getattr(self, name), Version):
                raise TypeError(f"DeployScenario.{name} must be a Version, got {type(getattr(self, name)).__name__}")
        for name in ("replicas", "slots", "long_tokens", "max_tries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"DeployScenario.{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"DeployScenario.{name} must be >= 1, got {value}")
        for name in ("rate", "duration", "mean_tokens", "tpot", "tick"):
            require_number(getattr(self, name), f"DeployScenario.{name}")
        require_number(self.deploy_at, "DeployScenario.deploy_at", strict=False)
        require_number(self.prefill, "DeployScenario.prefill", strict=False)
        if not 0 <= require_number(self.long_share, "DeployScenario.long_share", strict=False) < 1:
            raise ValueError(f"DeployScenario.long_share is a share below 1, got {self.long_share}")
        if self.deploy_at >= self.duration:
            raise ValueError(f"deploy_at ({self.deploy_at} s) must be before the end of the arrivals ({self.duration} s)")
        if self.peak is not None:
            if not isinstance(self.peak, tuple) or len(self.peak) != 3:
                raise TypeError(f"DeployScenario.peak must be (start, end, factor) or None, got {self.peak!r}")
            start, end, factor = (require_number(v, "DeployScenario.peak", strict=False) for v in self.peak)
            if not (end > start and factor > 0):
                raise ValueError(f"DeployScenario.peak needs end > start and factor > 0, got {self.peak}")

    def rate_at(self, t: float) -> float:
        """The arrival rate (requests/s) at time ``t``.  O(1)."""
        if self.peak is not None and self.peak[0] <= t < self.peak[1]:
            return self.rate * self.peak[2]
        return self.rate

    def versions(self) -> dict[str, Version]:
        """Version name -> Version (old and new).  O(1)."""
        return {self.old.name: self.old, self.new.name: self.new}

    def arrivals(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(times, output_tokens)``: a Poisson process of rate :meth:`rate_at` (thinning) and each request's tokens.  O(R)."""
        top = self.rate * (max(1.0, self.peak[2]) if self.peak is not None else 1.0)
        n = int(top * self.duration * 1.2 + 50)
        times = np.cumsum(rng.exponential(1.0 / top, n))
        while times[-1] < self.duration:  # rare: draw more
            times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / top, n))])
        times = times[times < self.duration]
        keep = rng.random(len(times)) * top < np.array([self.rate_at(t) for t in times])
        times = times[keep]
        sigma = 0.8
        tokens = rng.lognormal(math.log(self.mean_tokens) - sigma * sigma / 2, sigma, len(times))
        tokens = np.maximum(1, np.round(tokens)).astype(np.int64)
        if self.long_share > 0:
            tokens[rng.random(len(times)) < self.long_share] = self.long_tokens
        return times, tokens

    def capacity_rate(self) -> float:
        """Requests per second the steady fleet completes at full slots (ignoring long generations).  O(1)."""
        service = self.prefill + self.mean_tokens * self.tpot / self.old.speed
        return self.replicas * self.slots / service


@dataclass(eq=False)
class DeployRun:
    """What one run records.

    Per request ``i``: ``arrival[i]``, ``end[i]`` (its final outcome's time),
    ``outcome[i]`` (``"delivered"``, ``"failed:<reason>"``, ``"rejected"``,
    ... or ``""`` if it never ended: lost), ``hit_new[i]`` (some try ran on a
    server of the new version), ``streamed[i]``.  ``capacity``: ``(t,
    ready, serving, total)`` after each fleet change (ready servers not
    draining, servers taking new requests, servers that exist);
    ``actions``: ``(t, action)`` as the controller returned them;
    ``started`` / ``finished``: the rollout's start and end (``None``: it did
    not end), ``result``: ``"done"``, ``"rolled_back"`` or ``"running"``;
    ``forced``: requests ended by drain timeouts; ``final_versions``: version
    -> servers taking requests at the end; ``first_new``: when a request first
    ran on the new version.
    """

    scenario: DeployScenario
    arrival: np.ndarray
    end: np.ndarray
    outcome: list[str]
    hit_new: np.ndarray
    streamed: np.ndarray
    capacity: list[tuple[float, int, int, int]] = field(default_factory=list)
    actions: list[tuple[float, Any]] = field(default_factory=list)
    started: float = 0.0
    finished: float | None = None
    result: str = "running"
    forced: int = 0
    final_versions: dict[str, int] = field(default_factory=dict)
    first_new: float | None = None
    log: list[Any] = field(default_factory=list)
    #: ``(t, {(version, state): servers})`` after each fleet change (states: :data:`SERVING_STATES` but "gone").
    fleet: list[tuple[float, dict[tuple[str, str], int]]] = field(default_factory=list)


# -- the driver ----------------------------------------------------------------

_ARRIVAL, _FIRST, _END, _UP, _READY, _TICK, _WINDOW, _PATH, _FORCE, _NOTIFY = range(10)


class _Server:
    __slots__ = ("sid", "version", "state", "launched", "ready_at", "jobs")

    def __init__(self, sid: str, version: Version, launched: float) -> None:
        self.sid, self.version, self.launched = sid, version, launched
        self.state = "loading"
        self.ready_at = launched + version.ready_after
        self.jobs: set[int] = set()  # job ids running here (current and abandoned tries)


def _deploy_lib() -> Any:
    """The stage-7 classes: the reference's in the repository, the candidate's in their bundle (``demo_impl``)."""
    from solution.core.impl import demo_impl

    lib = demo_impl()
    if not hasattr(lib, "RollingDeploy"):
        import solution.deploy as lib  # noqa: F811  (an impl namespace from before stage 7)
    return lib


def _takes(method: Any, name: str) -> bool:
    try:
        return name in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _least_connections() -> Any:
    """The router's default strategy (a factory: a ``CanarySplit`` builds one per version): least connections.

    The candidate's bundle leaves :class:`~solution.core.routing.LeastConnections`'s rule out
    (it is stage 1's answer): there it is the candidate's own stage-3 ``PowerOfChoices()``, as in
    :func:`solution.sim.race.routed_least_connections`, so the bundle's figures differ from the
    committed ones (without it, every rollout in notebook 07 and its explorer stopped at the
    stripped rule, even with a correct solution).
    """
    from solution.core.impl import load_impl, reference_available
    from solution.core.routing import LeastConnections

    if reference_available():
        return LeastConnections()
    return load_impl("exercises").PowerOfChoices()


def _remove_takes_timeout(path: Any) -> bool:
    return _takes(path.remove_server, "drain_timeout")


class _Driver:
    """One run: the event heap, the path, the servers and the controller."""

    def __init__(self, scenario: DeployScenario, plan: Any, seed: int, controller: Callable[..., Any] | None,
                 strategy: Any | None, lib: Any) -> None:  # fmt: skip
        from solution.core.health_types import RetryPolicy
        from solution.core.path import RequestPath
        from solution.core.queue_types import QueuePolicy
        from solution.core.impl import demo_impl
        from solution.core.routing import Router

        RetryLedger = demo_impl().RetryLedger  # stage 4's (the candidate's in their bundle, where solution.health is withheld)
        self.s, self.plan = scenario, plan
        self.lib = lib if lib is not None else _deploy_lib()
        self.rng = np.random.default_rng(seed)
        self.err_rng = np.random.default_rng([seed, 7])
        self.versions = scenario.versions()
        canary = getattr(plan, "canary", None)
        self.split = None
        factory = strategy if strategy is not None else _least_connections
        if canary is not None:
            self.split = self.lib.CanarySplit(factory, weight=0.0, new_version=scenario.new.name,
                                              excluded_tiers=tuple(getattr(canary, "excluded_tiers", ())), seed=seed)  # fmt: skip
            self.router = Router(self.split)
        else:
            self.router = Router(factory())
        self.path = RequestPath(self.router, ledger=RetryLedger(RetryPolicy(max_tries=scenario.max_tries)),
                                queue=QueuePolicy(max_depth=1_000_000, max_wait=None))  # fmt: skip
        self.path_timeout = _remove_takes_timeout(self.path)
        self.path_versions = _takes(self.path.add_server, "version")
        self.timed_drains: set[str] = set()  # servers drained with the path's timeout: the path reports Drained
        self.tick_at: float | None = None  # the controller's next Tick, when it says (next_event_time)
        self.heap: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.servers: dict[str, _Server] = {}
        self.count: dict[str, int] = {}
        times, tokens = scenario.arrivals(self.rng)
        n = len(times)
        self.tokens = tokens
        self.run = DeployRun(scenario, times, np.full(n, np.nan), [""] * n, np.zeros(n, bool), np.zeros(n, bool))
        self.job_req: dict[int, int] = {}
        self.job_server: dict[int, str] = {}
        self.current: dict[int, int] = {}  # request -> its current job
        self.next_job = 0
        self.window: list[tuple[str, bool, float]] = []  # (version, ok, latency) of tries ended since the last Window
        self.controller_factory = controller
        self.controller: Any = None
        self.canary_over = False
        self.window_at: float | None = None  # when the pending Window is due
        self.window_sent = -math.inf  # when the last Window was delivered
        self.path_next: float | None = None
        for i, t in enumerate(times):
            self._push(float(t), _ARRIVAL, i)
        for _ in range(scenario.replicas):
            self._launch(scenario.old, 0.0, warm=True)
        self._push(scenario.deploy_at, _TICK, "start")

    # -- plumbing
    def _push(self, t: float, kind: int, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, kind, self.seq, data))

    def _note_capacity(self, t: float) -> None:
        ready = sum(1 for s in self.servers.values() if s.state == "ready")
        serving = sum(1 for s in self.servers.values() if s.state in ("ready", "warming"))
        total = sum(1 for s in self.servers.values() if s.state != "gone")
        self.run.capacity.append((t, ready, serving, total))
        counts: dict[tuple[str, str], int] = {}
        for server in self.servers.values():
            if server.state != "gone":
                key = (server.version.name, server.state)
                counts[key] = counts.get(key, 0) + 1
        self.run.fleet.append((t, counts))

    def _launch(self, version: Version, t: float, *, warm: bool = False, sid: str = "") -> str:
        if not sid:
            k = self.count.get(version.name, 0)
            while f"{version.name}-{k}" in self.servers:
                k += 1
            self.count[version.name] = k + 1
            sid = f"{version.name}-{k}"
        elif sid in self.servers:
            raise ValueError(f"the controller started server {sid!r} twice; a server id is used once")
        server = _Server(sid, version, t)
        self.servers[sid] = server
        if warm:
            server.state, server.ready_at = "ready", t
            self._outcomes(self._add_to_path(server, t), t)
        else:
            self._push(t + version.startup, _UP, sid)
        self._note_capacity(t)
        return sid

    def _add_to_path(self, server: _Server, t: float) -> list[Any]:
        if self.path_versions:
            return self.path.add_server(server.sid, self.s.slots, 80, t, version=server.version.name)
        return self.path.add_server(server.sid, self.s.slots, 80, t)  # a path without versions: only the id says it

    def _speed(self, server: _Server, t: float) -> float:
        v = server.version
        return v.speed * (v.warm_speed if t < server.ready_at else 1.0)

    # -- request events
    def _outcomes(self, outs: Sequence[Any], t: float) -> None:
        for o in outs:
            kind = type(o).__name__
            if kind == "Dispatched":
                self._start_job(int(o.request_id[1:]), o.server_id, t)
            elif kind in ("Delivered", "Failed", "Rejected", "TimedOut", "Cancelled"):
                i = int(o.request_id[1:])
                if self.run.outcome[i]:
                    raise AssertionError(f"request {o.request_id} ended twice ({self.run.outcome[i]}, then {kind})")
                self.run.outcome[i] = kind.lower() + (f":{o.reason}" if kind == "Failed" else "")
                self.run.end[i] = t
            elif kind == "Drained":
                self._drained(o.server_id, t, int(getattr(o, "forced", 0)))

    def _start_job(self, i: int, sid: str, t: float) -> None:
        server = self.servers[sid]
        j = self.next_job
        self.next_job += 1
        self.job_req[j], self.job_server[j] = i, sid
        self.current[i] = j
        server.jobs.add(j)
        if server.version.name == self.s.new.name:
            self.run.hit_new[i] = True
            if self.run.first_new is None:
                self.run.first_new = t
        speed = self._speed(server, t)
        first = t + self.s.prefill / speed
        self._push(first, _FIRST, j)
        self._push(first + float(self.tokens[i]) * self.s.tpot / speed, _END, j)

    def _on_first(self, j: int, t: float) -> None:
        i = self.job_req.get(j)
        if i is None or self.current.get(i) != j or self.run.outcome[i]:
            return
        self.run.streamed[i] = True
        self.path.first_token(f"r{i}", t)

    def _on_end(self, j: int, t: float) -> None:
        i = self.job_req.pop(j, None)
        if i is None:  # its server was forced out: the try is gone
            return
        sid = self.job_server.pop(j)
        server = self.servers[sid]
        server.jobs.discard(j)
        ok = bool(self.err_rng.random() >= server.version.error_rate)
        if self.current.get(i) == j:
            self.window.append((server.version.name, ok, t - float(self.run.arrival[i])))
        self._outcomes(self.path.completed(f"r{i}", sid, t, ok=ok), t)
        if server.state == "draining" and not server.jobs and sid not in self.timed_drains:
            self._drained(sid, t, 0)

    # -- fleet events
    def _on_up(self, sid: str, t: float) -> None:
        server = self.servers[sid]
        if server.state != "loading":
            return
        server.state = "warming"
        self._outcomes(self._add_to_path(server, t), t)
        self._push(server.ready_at, _READY, sid)
        self._note_capacity(t)

    def _on_ready(self, sid: str, t: float) -> None:
        server = self.servers[sid]
        if server.state != "warming":
            return
        server.state = "ready"
        self._note_capacity(t)
        self._feed(self._event("Ready", server_id=sid, at=t), t)

    def _drain(self, sid: str, t: float, timeout: float | None) -> None:
        server = self.servers[sid]
        if server.state == "loading":  # never served: it simply stops
            server.state = "gone"
            self._note_capacity(t)
            self._push(t, _NOTIFY, self._event("Drained", server_id=sid, at=t, forced=0))
            return
        if server.state in ("draining", "gone"):
            return
        server.state = "draining"
        self._note_capacity(t)
        if self.path_timeout:
            outs = self.path.remove_server(sid, t, drain_timeout=timeout)
            if timeout is not None:
                self.timed_drains.add(sid)
        else:
            outs = self.path.remove_server(sid, t)
            if timeout is not None:
                self._push(t + timeout, _FORCE, sid)
        self._outcomes(outs, t)
        if server.state == "draining" and not server.jobs and sid not in self.timed_drains:
            self._drained(sid, t, 0)

    def _force(self, sid: str, t: float) -> None:
        """The drain timeout without the path's own: the server's connections are cut (re-send or fail)."""
        server = self.servers[sid]
        if server.state != "draining" or not server.jobs:
            return
        forced = len(server.jobs)
        for j in list(server.jobs):
            self.job_req.pop(j, None)
            self.job_server.pop(j, None)
        server.jobs.clear()
        self._outcomes(self.path.server_lost(sid, t), t)
        self._drained(sid, t, forced)

    def _drained(self, sid: str, t: float, forced: int) -> None:
        server = self.servers[sid]
        if server.state == "gone":
            return
        if sid in self.timed_drains:  # the path said Drained: its abandoned tries, if any, are gone
            for j in list(server.jobs):
                self.job_req.pop(j, None)
                self.job_server.pop(j, None)
            server.jobs.clear()
        server.state = "gone"
        self.run.forced += forced
        self._note_capacity(t)
        # told after the current call's actions are all carried out (never inside another on())
        self._push(t, _NOTIFY, self._event("Drained", server_id=sid, at=t, forced=forced))

    # -- the controller
    def _event(self, name: str, **fields: Any) -> Any:
        return getattr(self.lib, name)(**fields)

    def _start_controller(self, t: float) -> None:
        fleet = [(s.sid, s.version.name) for s in self.servers.values() if s.state != "gone"]
        if self.controller_factory is not None:
            self.controller = self.controller_factory(fleet, self.s.new.name, self.plan, t)
        else:
            self.controller = self.lib.RollingDeploy(fleet, self.s.new.name, self.plan, t)
        self.run.started = t
        for action in getattr(self.controller, "initial_actions", ()) or ():  # RollingDeploy decides its first batch at once
            self.run.actions.append((t, action))
            self._act(action, t)
        self._feed(self._event("Tick", at=t), t)

    def _feed(self, event: Any, t: float) -> None:
        """Give the controller ``event`` and carry out its actions (after Done / RolledBack too: a rollback drains B)."""
        if self.controller is None:
            return
        for action in self.controller.on(event):
            self.run.actions.append((t, action))
            self._act(action, t)
        nxt = getattr(self.controller, "next_event_time", None)
        at = nxt() if callable(nxt) else None
        if at is None or not math.isfinite(at):
            return
        canary = getattr(self.plan, "canary", None)
        if canary is not None and not self.canary_over:
            # a canary step's window closes then: deliver a Window; a "hold" keeps the same due time, so the
            # next Window comes one window later with the data gathered so far
            if at > self.window_sent:
                due = max(float(at), t)
            elif self.window_at is None:
                due = self.window_sent + float(canary.window)
            else:
                return
            if due != self.window_at:
                self.window_at = due
                self._push(due, _WINDOW, due)
        elif at != self.tick_at:
            self.tick_at = max(float(at), t)
            self._push(self.tick_at, _TICK, "asked")

    def _act(self, action: Any, t: float) -> None:
        kind = type(action).__name__
        if kind == "Start":
            self._launch(self.versions[action.version], t, sid=getattr(action, "server_id", ""))
        elif kind == "Drain":
            timeout = getattr(action, "timeout", None)
            if timeout is None or not math.isfinite(timeout):
                timeout = getattr(self.plan, "drain_timeout", None) if timeout is None else None
            self._drain(action.server_id, t, None if timeout is None else float(timeout))
        elif kind == "SetCanaryWeight":
            if self.split is not None:
                setter = getattr(self.split, "set_weight", None)
                if callable(setter):
                    setter(float(action.weight))
                else:
                    self.split.weight = float(action.weight)
            self.window = []  # a new step: its window starts now
        elif kind == "EndCanary":
            if self.split is not None:
                self.split.end()
            self.canary_over = True
        elif kind in ("Done", "RolledBack"):
            self.run.finished = t
            self.run.result = "done" if kind == "Done" else "rolled_back"
        else:
            raise TypeError(f"the controller returned {action!r}: not an action the simulator knows")

    def _stats(self, version: str) -> Any:
        rows = [(ok, lat) for v, ok, lat in self.window if v == version]
        return self.lib.VersionStats(len(rows), sum(1 for ok, _ in rows if not ok),
                                          tuple(lat for ok, lat in rows if ok))  # fmt: skip

    def _on_window(self, due: float, t: float) -> None:
        """A canary window closes: the stats of both versions since the step's weight was set."""
        if due != self.window_at or self.run.result != "running" or self.canary_over:
            return
        self.window_at = None
        self.window_sent = t
        a, b = self._stats(self.s.old.name), self._stats(self.s.new.name)
        self._feed(self._event("Window", at=t, a=a, b=b), t)

    # -- the loop
    def _schedule_path(self) -> None:
        nxt = self.path.next_event_time()
        if nxt is not None and nxt != self.path_next:
            self.path_next = nxt
            self._push(nxt, _PATH, nxt)

    def go(self, until: float) -> DeployRun:
        while self.heap:
            t, kind, _, data = heapq.heappop(self.heap)
            if t > until:
                break
            if kind == _ARRIVAL:
                from solution.core.request import Request

                i = data
                self._outcomes(self.path.submit(Request(f"r{i}", int(self.tokens[i]) + 200, 200), t), t)
            elif kind == _FIRST:
                self._on_first(data, t)
            elif kind == _END:
                self._on_end(data, t)
            elif kind == _UP:
                self._on_up(data, t)
            elif kind == _READY:
                self._on_ready(data, t)
            elif kind == _TICK:
                if data == "start":
                    self._start_controller(t)
                elif data == "asked":
                    if t == self.tick_at:
                        self.tick_at = None
                        self._feed(self._event("Tick", at=t), t)
                else:
                    self._feed(self._event("Tick", at=t), t)
                if data != "asked" and self.run.result == "running" and t < until:
                    self._push(t + self.s.tick, _TICK, None)
            elif kind == _WINDOW:
                self._on_window(data, t)
            elif kind == _PATH:
                if data == self.path_next:
                    self.path_next = None
                    self._outcomes(self.path.tick(t), t)
            elif kind == _FORCE:
                self._force(data, t)
            elif kind == _NOTIFY:
                self._feed(data, t)
            self._schedule_path()
            if self.run.result != "running" and not self.job_req and t >= self.s.duration and not self._pending_arrivals():
                break
        self.run.final_versions = {}
        for s in self.servers.values():
            if s.state in ("ready", "warming"):
                self.run.final_versions[s.version.name] = self.run.final_versions.get(s.version.name, 0) + 1
        self.run.log = list(getattr(self.controller, "log", []) or [])
        return self.run

    def _pending_arrivals(self) -> bool:
        return any(k == _ARRIVAL for _, k, _, _ in self.heap)


def run_deploy(scenario: DeployScenario, plan: Any, *, seed: int = 0, until: float | None = None,
               controller: Callable[..., Any] | None = None, strategy: Any | None = None, lib: Any = None) -> DeployRun:  # fmt: skip
    """Run ``scenario`` with a rollout under ``plan`` (a ``solution.deploy.RolloutPlan``); deterministic per ``seed``.

    ``controller(fleet, new_version, plan, now)`` builds the controller
    (default ``solution.deploy.RollingDeploy``); ``strategy`` a factory of the router's
    strategy (default least connections; wrapped in a ``CanarySplit`` when the
    plan has a canary).  ``until``: stop then even if the rollout runs
    (default ``duration + 4 h``).  ``lib``: the module with the events,
    ``VersionStats``, ``CanarySplit`` and ``RollingDeploy`` (default
    ``solution.deploy``).  O((R + T) log E).

    Raises: TypeError on a scenario that is not a :class:`DeployScenario`;
    AssertionError if a request ends twice (a path bug: the run would lie).
    """
    if not isinstance(scenario, DeployScenario):
        raise TypeError(f"scenario must be a DeployScenario, got {type(scenario).__name__}")
    limit = scenario.duration + 4 * 3600.0 if until is None else require_number(until, "until")
    return _Driver(scenario, plan, seed, controller, strategy, lib).go(limit)


def _p99(values: np.ndarray) -> float:
    return float(np.percentile(values, 99)) if len(values) else math.nan


def deploy_metrics(run: DeployRun) -> dict[str, float]:
    """The stage's metrics of one run (:data:`DEPLOY_METRICS`).

    * ``duration``: seconds from the controller's start to ``Done`` /
      ``RolledBack`` (NaN: it did not end);
    * ``min_capacity``: the fewest ready servers (not draining) during the
      rollout, as a share of ``replicas``;
    * ``lost``: requests with no final outcome (must be 0);
    * ``errors``: requests that ended ``Failed`` (an error answer, or a
      streamed request cut by the drain timeout);
    * ``p99_steady`` / ``p99_rollout``: p99 end-to-end latency (s) of the
      delivered requests that arrived before the rollout / during it;
    * ``detect``: for a rollback, seconds from the first request on the new
      version to the rollback (NaN otherwise);
    * ``blast``: requests that ran some try on the new version (for a
      rollback: the blast radius);
    * ``forced``: requests ended by a drain timeout (re-sent or failed);
    * ``final_new``: the share of the serving fleet on the new version at the end.

    O(R + C) for R requests and C capacity records.
    """
    s = run.scenario
    arrival = run.arrival
    end_t = run.finished if run.finished is not None else (float(np.nanmax(run.end)) if len(run.end) else s.deploy_at)
    lost = sum(1 for o in run.outcome if not o)
    errors = sum(1 for o in run.outcome if o.startswith("failed"))
    delivered = np.array([o == "delivered" for o in run.outcome], bool)
    latency = run.end - arrival
    steady = delivered & (arrival < run.started)
    during = delivered & (arrival >= run.started) & (arrival < end_t)
    ready = [r for t, r, _, _ in run.capacity if run.started <= t <= end_t]
    before = [r for t, r, _, _ in run.capacity if t < run.started]
    if before:
        ready.append(before[-1])
    final_total = sum(run.final_versions.values())
    detect = math.nan
    if run.result == "rolled_back" and run.finished is not None and run.first_new is not None:
        detect = run.finished - run.first_new
    return {
        "duration": (run.finished - run.started) if run.finished is not None else math.nan,
        "min_capacity": (min(ready) / s.replicas) if ready else math.nan,
        "lost": float(lost),
        "errors": float(errors),
        "p99_steady": _p99(latency[steady]),
        "p99_rollout": _p99(latency[during]),
        "detect": detect,
        "blast": float(run.hit_new.sum()),
        "forced": float(run.forced),
        "final_new": (run.final_versions.get(s.new.name, 0) / final_total) if final_total else math.nan,
    }



def timeline(run: DeployRun, step: float = 10.0) -> dict[str, np.ndarray]:
    """The rollout as a timeline, sampled every ``step`` seconds from 0 to the last request's end: for a figure.

    Keys: ``t`` (the sample times, s); ``ready`` (ready servers, not
    draining), ``total`` (servers that exist: loading, warming, ready,
    draining); per version ``<v>:serving`` (ready or warming) and
    ``<v>:draining`` / ``<v>:loading``; and per bin ``[t, t + step)`` of
    arrival ``p50`` / ``p99`` (end-to-end latency of the delivered requests,
    s; NaN for an empty bin) and ``errors`` (requests that ended ``Failed``).
    O(C x V + R) for C fleet records, V versions and R requests.

    Raises: TypeError for a run that is not a :class:`DeployRun`; ValueError for ``step`` <= 0.
    """
    if not isinstance(run, DeployRun):
        raise TypeError(f"run must be a DeployRun, got {type(run).__name__}")
    step = require_number(step, "step")
    last = float(np.nanmax(run.end)) if len(run.end) and not np.all(np.isnan(run.end)) else run.started
    t = np.arange(0.0, max(last, run.started) + step, step)
    times = np.array([r[0] for r in run.capacity])
    idx = np.searchsorted(times, t, side="right") - 1  # the record in force at each sample
    out: dict[str, np.ndarray] = {"t": t}
    out["ready"] = np.array([run.capacity[i][1] if i >= 0 else 0 for i in idx], dtype=np.int64)
    out["total"] = np.array([run.capacity[i][3] if i >= 0 else 0 for i in idx], dtype=np.int64)
    versions = sorted({v for _, counts in run.fleet for v, _ in counts})
    for v in versions:
        for label, states in (("serving", ("ready", "warming")), ("draining", ("draining",)), ("loading", ("loading",))):
            out[f"{v}:{label}"] = np.array([sum(run.fleet[i][1].get((v, st), 0) for st in states) if i >= 0 else 0
                                             for i in idx], dtype=np.int64)  # fmt: skip
    bins = np.minimum((run.arrival // step).astype(np.int64), len(t) - 1)
    latency = run.end - run.arrival
    delivered = np.array([o == "delivered" for o in run.outcome], bool)
    failed = np.array([o.startswith("failed") for o in run.outcome], bool)
    p50, p99 = np.full(len(t), np.nan), np.full(len(t), np.nan)
    order = np.argsort(bins, kind="stable")
    starts = np.searchsorted(bins[order], np.arange(len(t)))
    ends = np.searchsorted(bins[order], np.arange(len(t)), side="right")
    for k in range(len(t)):
        members = order[starts[k]:ends[k]]
        lat = latency[members][delivered[members]]
        if len(lat):
            p50[k], p99[k] = np.percentile(lat, 50), np.percentile(lat, 99)
    out["p50"], out["p99"] = p50, p99
    out["errors"] = np.bincount(bins[failed], minlength=len(t))[: len(t)].astype(np.int64)
    return out
