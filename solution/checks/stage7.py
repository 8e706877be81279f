"""Stage 7's check: an implementation's rollout bounds, deploy controller, canary analysis and canary split against the reference's.

A case builds one object under test (:class:`DeployHarnessMaker`, by ``make["kind"]``):

* ``"bounds"``: ``impl.resolve_surge`` / ``impl.resolve_unavailable`` (calls ``surge(value, replicas)``,
  ``unavailable(value, replicas)``);
* ``"deploy"``: ``impl.RollingDeploy(servers, new_version, plan, now)``, fed events by its calls
  (``ready``, ``drained``, ``fault``, ``tick``, ``window``) and ``rollback``;
* ``"analysis"``: ``impl.CanaryAnalysis(plan)`` (``judge``, ``level``, ``nominal``);
* ``"split"``: a :class:`~solution.core.routing.Router` running ``impl.CanarySplit(ByLoad, ...)``
  over servers labelled with versions (:class:`ByLoad`: an indexed rule of the support code, fewest requests
  in flight first; not stage 1's ``LeastConnections``, whose rule the candidate's bundle does not carry).

The plans, events, actions and stats are the support types of
:mod:`solution.core.deploy_types` (the same objects on both sides), written in
a case as plain dicts and lists.  A server the controller started is named in a
case by its number (``1``: the first one it started), whatever id the
implementation gave it, so the ids it invents are not graded, only what it
does with them; the fleet's own servers keep their ids.  An action is compared
as ``[kind, fields...]`` with that numbering (``RolledBack``'s reason is free
text: only its time is compared; every decision must carry a non-empty
reason).  After every call the controller's ``state``, ``servers()`` and
``weight`` (and ``next_event_time()``) are compared with the reference's
recorded ones; the split's ``stats()`` and weight.  A failed call must leave
everything unchanged.  Floats are compared rounded to nine decimals.

:func:`run_stage7` (``solution.checks.check_stage7``) prints one line per group;
:func:`random_ops7` gives the seeded sequences (tests and hidden cases).
"""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any

from solution.checks.common import CheckReport, Op, round_floats
from solution.checks.runner import StageSpec, as_groups, run_check
from solution.checks.script import Group
from solution.core.request import Request
from solution.core.routing import IndexedStrategy, ServerState

__all__ = ["ByLoad", "DeployHarnessMaker", "STAGE7_GROUPS", "RANDOM_GROUP", "GROUP_NAMES", "SPEC", "random_ops7", "run_stage7"]

INF = float("inf")
RANDOM_GROUP = "random rollouts with faults"


def _plan(value: Any) -> Any:
    """A :class:`~solution.core.deploy_types.RolloutPlan` from its dict form (anything else as it is: bad input)."""
    from solution.core.deploy_types import CanaryPlan, RolloutPlan

    if not isinstance(value, dict):
        return value
    kwargs = dict(value)
    if isinstance(kwargs.get("canary"), dict):
        kwargs["canary"] = CanaryPlan(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs["canary"].items()})
    return RolloutPlan(**kwargs)


def _canary(value: Any) -> Any:
    from solution.core.deploy_types import CanaryPlan

    if not isinstance(value, dict):
        return value
    return CanaryPlan(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})


def _stats(value: Any) -> Any:
    """A :class:`~solution.core.deploy_types.VersionStats` from ``[requests, errors, latencies]``."""
    from solution.core.deploy_types import VersionStats

    if isinstance(value, list) and len(value) == 3:
        return VersionStats(value[0], value[1], tuple(value[2]))
    return value


class ByLoad(IndexedStrategy):
    """The fewest requests in flight, then the server added first: an indexed rule fed only by the router's hooks.

    The split's inner rule in the checks and in stage 7's cost probe: it chooses only among the servers its
    hooks fed it (as :class:`~solution.core.routing.LeastConnections` does), so one per version keeps the
    versions apart; and it is support code, present wherever the checks run (the candidate's bundle, the
    grader's sandbox).  O(log S) per decision.
    """

    name = "by-load"
    components = ("load",)

    def score(self, server: ServerState, request: Request) -> tuple[float, ...]:
        return (float(server.load),)

    def index_key(self, server: ServerState) -> tuple[Any, ...]:
        return (server.load, server.order)


class BoundsCase:
    """``impl.resolve_surge`` and ``impl.resolve_unavailable``."""

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        self.impl = impl

    def surge(self, value: Any, replicas: Any) -> Any:
        return self.impl.resolve_surge(value, replicas)

    def unavailable(self, value: Any, replicas: Any) -> Any:
        return self.impl.resolve_unavailable(value, replicas)

    def snapshot(self) -> None:
        return None


class DeployCase:
    """One ``impl.RollingDeploy``; servers it started are named by their number (1, 2, ...) in the calls and the answers."""

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        self.impl = impl
        self.started: list[str] = []  # the implementation's ids of the servers it started, in order
        self.deploy = impl.RollingDeploy([tuple(s) for s in make["servers"]], make["new_version"], _plan(make["plan"]), make["now"])
        self.first = self._actions(list(self.deploy.initial_actions))

    # -- naming ---------------------------------------------------------------------------------------

    def _ref(self, server_id: Any) -> Any:
        """The case's name of an implementation's server id."""
        return self.started.index(server_id) + 1 if server_id in self.started else server_id

    def _id(self, ref: Any) -> Any:
        """The implementation's id of a case's server name (an int k: the k-th started; past the end: an unknown id)."""
        if isinstance(ref, int) and not isinstance(ref, bool):
            return self.started[ref - 1] if 0 < ref <= len(self.started) else f"(never started #{ref})"
        return ref

    def _actions(self, actions: Any) -> Any:
        """Actions as ``[kind, fields...]``, started servers numbered."""
        if not isinstance(actions, list):
            return ["not a list", type(actions).__name__]
        out = []
        for action in actions:
            kind = type(action).__name__
            if kind == "Start":
                if action.server_id not in self.started:
                    self.started.append(action.server_id)
                out.append([kind, action.version, action.at, self._ref(action.server_id)])
            elif kind == "Drain":
                out.append([kind, self._ref(action.server_id), action.at, action.timeout])
            elif kind == "SetCanaryWeight":
                out.append([kind, action.weight, action.at])
            elif kind in ("EndCanary", "Done", "RolledBack"):
                out.append([kind, action.at])
            else:
                out.append([kind])
        return round_floats(out)

    # -- calls ----------------------------------------------------------------------------------------

    def initial(self) -> Any:
        """The actions of the start (``initial_actions``)."""
        return self.first

    def ready(self, ref: Any, at: Any) -> Any:
        from solution.core.deploy_types import Ready

        return self._actions(self.deploy.on(Ready(self._id(ref), at)))

    def drained(self, ref: Any, at: Any, forced: Any = 0) -> Any:
        from solution.core.deploy_types import Drained

        return self._actions(self.deploy.on(Drained(self._id(ref), at, forced)))

    def fault(self, ref: Any, at: Any) -> Any:
        from solution.core.deploy_types import Fault

        return self._actions(self.deploy.on(Fault(self._id(ref), at)))

    def tick(self, at: Any) -> Any:
        from solution.core.deploy_types import Tick

        return self._actions(self.deploy.on(Tick(at)))

    def window(self, at: Any, a: Any, b: Any) -> Any:
        from solution.core.deploy_types import Window

        return self._actions(self.deploy.on(Window(at, _stats(a), _stats(b))))

    def event(self, value: Any) -> Any:
        """Feed something that is not an event (bad input)."""
        return self._actions(self.deploy.on(value))

    def rollback(self, at: Any, reason: Any) -> Any:
        return self._actions(self.deploy.rollback(at, reason))

    def answer(self, status: Any, k: Any, at: Any, what: Any = "ready") -> Any:
        """The event for the ``k``-th (modulo) server that is ``status`` now (random cases); a ``Tick`` if there is none.

        ``starting``: ``Ready`` (or ``Fault`` when ``what`` is "fault"); ``draining``: ``Drained`` with ``what`` forced;
        ``ready``: ``Fault``.
        """
        from solution.core.deploy_types import Drained, Fault, Ready, Tick

        found = [sid for sid, (_, s) in self.deploy.servers().items() if s == status]
        if not found:
            return self._actions(self.deploy.on(Tick(at)))
        sid = found[k % len(found)]
        if status == "draining":
            return self._actions(self.deploy.on(Drained(sid, at, what)))
        if status == "starting" and what == "ready":
            return self._actions(self.deploy.on(Ready(sid, at)))
        return self._actions(self.deploy.on(Fault(sid, at)))

    def next_rollout(self, new_version: Any, plan: Any, now: Any) -> Any:
        """Start the next rollout on this fleet; the case goes on with it (its started servers numbered afresh)."""
        nxt = self.deploy.next_rollout(new_version, _plan(plan), now)
        self.deploy, self.started = nxt, []
        self.first = self._actions(list(nxt.initial_actions))
        return self.first

    def status(self, ref: Any) -> Any:
        return self.deploy.status(self._id(ref))

    def serving(self) -> Any:
        return [[self._ref(sid), version] for sid, version in self.deploy.serving()]

    def bounds(self) -> Any:
        return [self.deploy.min_ready, self.deploy.max_servers]

    def decisions(self) -> Any:
        """The log's decisions that took an action, ``[at, action]``; a decision without a non-empty reason shows as such."""
        out = []
        for d in self.deploy.log:
            if not isinstance(getattr(d, "reason", None), str) or not d.reason.strip():
                out.append(["a decision without a reason", round_floats(getattr(d, "at", None))])
            elif d.action is not None:
                out.append([round_floats(d.at), self._actions([d.action])[0]])
        return out

    def snapshot(self) -> dict[str, Any]:
        """The rollout's state, every server it had (version, status) and the canary weight."""
        servers = [[self._ref(sid), version, status] for sid, (version, status) in self.deploy.servers().items()]
        return round_floats({"state": self.deploy.state, "servers": servers, "weight": self.deploy.weight,
                       "next": self.deploy.next_event_time()})  # fmt: skip


class AnalysisCase:
    """One ``impl.CanaryAnalysis(plan)``; a verdict is ``[outcome, p_value, p_values, has a reason]``."""

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        self.analysis = impl.CanaryAnalysis(_canary(make["plan"]))

    def judge(self, a: Any, b: Any) -> Any:
        v = self.analysis.judge(_stats(a), _stats(b))
        reason = isinstance(v.reason, str) and bool(v.reason.strip())
        return round_floats([v.outcome, v.p_value, dict(sorted(v.p_values.items())), reason])

    def level(self) -> Any:
        return round_floats(self.analysis.level())

    def nominal(self, *steps: Any) -> Any:
        return round_floats(self.analysis.nominal_false_rollback(*steps))

    def snapshot(self) -> None:
        return None


class SplitCase:
    """A Router running ``impl.CanarySplit(ByLoad, weight=..., new_version=..., excluded_tiers=..., seed=...)``.

    Servers are ``[id, capacity, version]``.  Calls: ``route(request_id, session_id, tier)``,
    ``side(request_id, session_id, tier)``, ``complete_request``, ``set_weight``, ``end``, ``stats``,
    ``add_server``, ``remove_server``.
    """

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        from solution.core.routing import Router

        self.split = impl.CanarySplit(ByLoad, **make.get("split", {}))
        self.router = Router(self.split)
        for server in make.get("servers", []):
            self.add_server(*server)

    def add_server(self, server_id: Any, capacity: Any, version: Any) -> None:
        return self.router.add_server(server_id, capacity, 80, version=version)

    def remove_server(self, server_id: Any) -> None:
        return self.router.remove_server(server_id)

    def complete_request(self, request_id: Any) -> None:
        return self.router.complete_request(request_id)

    def route(self, rid: Any, session: Any = None, tier: Any = None) -> Any:
        return self.router.route(Request(rid, 10, session_id=session, tier=tier))

    def side(self, rid: Any, session: Any = None, tier: Any = None) -> Any:
        return self.split.side(Request(rid, 10, session_id=session, tier=tier))

    def set_weight(self, weight: Any) -> None:
        return self.split.set_weight(weight)

    def end(self) -> None:
        return self.split.end()

    def stats(self) -> Any:
        return dict(self.split.stats())

    def snapshot(self) -> dict[str, Any]:
        """The split's counters and weight, and the load per server."""
        return round_floats({"stats": dict(self.split.stats()), "weight": self.split.weight, "ended": self.split.ended,
                       "load": {s["server_id"]: s["active_requests"] for s in self.router.get_server_stats()}})  # fmt: skip


class _Bare:
    """What a case that only builds (and must fail to) returns."""

    def snapshot(self) -> None:
        return None


_CASES = {"bounds": BoundsCase, "deploy": DeployCase, "analysis": AnalysisCase, "split": SplitCase}


class DeployHarnessMaker:
    """Stage 7's cases: ``{"kind": ..., ...}`` as above; ``{"bare": class name, ...}`` only builds that class with bad arguments."""

    stage = 7
    snapshot = "snapshot"

    def build(self, impl: Any, make: Any) -> Any:
        bare = make.get("bare")
        if bare is None:
            return _CASES[make["kind"]](impl, make)
        args = list(make.get("args", []))
        if bare == "RollingDeploy":
            servers = args[0]
            servers = [tuple(s) if isinstance(s, list) else s for s in servers] if isinstance(servers, list) else servers
            impl.RollingDeploy(servers, args[1], _plan(args[2]), args[3])
        elif bare == "CanaryAnalysis":
            impl.CanaryAnalysis(_canary(args[0]))
        elif bare == "CanarySplit":
            inner = ByLoad() if make.get("instance") else ByLoad
            impl.CanarySplit(inner, **make.get("kwargs", {}))
        return _Bare()


# -- the cases -------------------------------------------------------------------------------------------------------


def _fleet(n: int, version: str = "v1", prefix: str = "s") -> list[list[str]]:
    return [[f"{prefix}{i}", version] for i in range(n)]


def _deploy(n: int, now: float = 0.0, new_version: str = "v2", **plan: Any) -> dict[str, Any]:
    return {"kind": "deploy", "servers": _fleet(n), "new_version": new_version, "plan": plan, "now": now}


_LOOK: list[Op] = [("initial", ()), ("bounds", ())]


def _win(at: float, a: tuple[int, int, list[float]], b: tuple[int, int, list[float]]) -> Op:
    return ("window", (at, list(a), list(b)))


#: Latencies of one window: ``n`` samples around ``base`` seconds (a fixed pattern, so the tests' p-values are fixed).
def _lat(n: int, base: float, step: float = 0.01) -> list[float]:
    return [round(base + step * ((i * 7) % 13), 6) for i in range(n)]


_CANARY = {"steps": [10, 50, 100], "window": 60.0, "alpha": 0.05, "min_requests": 100, "excluded_tiers": ["premium"],
           "metrics": ["errors", "latency"]}  # fmt: skip

#: (group name, ((make, ops), ...)) in the order the module's docstring teaches them.
STAGE7_GROUPS: tuple[tuple[str, tuple[tuple[dict[str, Any], list[Op]], ...]], ...] = (
    ("bounds: surge rounds up, unavailable down", (
        # Kubernetes: a percent surge is ceil(R * p / 100), a percent unavailability floor(R * p / 100); an int as given.
        ({"kind": "bounds"}, [*(("surge", ("25%", r)) for r in (1, 2, 3, 4, 5, 10, 11)),
                              *(("unavailable", ("25%", r)) for r in (1, 2, 3, 4, 5, 10, 11)),
                              ("surge", ("0%", 7)), ("unavailable", ("100%", 7)), ("surge", ("100%", 3)), ("surge", ("1%", 1)),
                              ("unavailable", ("99%", 1)), ("surge", (2, 10)), ("unavailable", (0, 10)), ("surge", (5, 2)),
                              ("surge", ("33%", 3)), ("unavailable", ("34%", 3)), ("surge", ("10%", 10)), ("unavailable", ("10%", 10))]),
    )),
    ("rolling update: prewarm keeps R ready", (
        # R=4, surge 1 ("25%"), unavailable 1: one new server starts; only once it is ready is one old drained.
        (_deploy(4, max_surge="25%", max_unavailable="25%", drain_timeout=300.0),
         [*_LOOK, ("ready", (1, 10.0)), ("status", ("s0",)), ("serving", ()), ("drained", ("s0", 12.0, 0)), ("ready", (2, 30.0)),
          ("drained", ("s1", 31.0, 2)), ("ready", (3, 50.0)), ("drained", ("s2", 55.0)), ("ready", (4, 70.0)),
          ("drained", ("s3", 90.0)), ("serving", ()), ("decisions", ())]),
        # Surge 2: two start at once; drains follow readiness one for one, never below R ready.
        (_deploy(5, max_surge=2, max_unavailable=0, drain_timeout=60.0),
         [*_LOOK, ("ready", (2, 5.0)), ("ready", (1, 6.0)), ("drained", ("s0", 7.0)), ("tick", (8.0,)), ("drained", ("s1", 9.0)),
          ("ready", (3, 20.0)), ("ready", (4, 21.0)), ("drained", ("s2", 25.0)), ("drained", ("s3", 26.0)), ("ready", (5, 40.0)),
          ("drained", ("s4", 41.0)), ("decisions", ())]),
        # Servers already at the new version are kept; a fleet with none old is done at once.
        ({"kind": "deploy", "servers": [["a", "v2"], ["b", "v1"], ["c", "v2"]], "new_version": "v2",
          "plan": {"max_surge": 1, "max_unavailable": 0}, "now": 3.0},
         [*_LOOK, ("ready", (1, 4.0)), ("drained", ("b", 5.0)), ("serving", ())]),
        ({"kind": "deploy", "servers": [["a", "v2"], ["b", "v2"]], "new_version": "v2", "plan": {}, "now": 0.0}, [*_LOOK]),
    )),
    ("rolling update: drain-first down to R - unavailable", (
        # prewarm=False: old servers drain down to R - unavailable at once, new ones start in the room the surge leaves.
        (_deploy(4, max_surge=0, max_unavailable=1, prewarm=False, drain_timeout=30.0),
         [*_LOOK, ("drained", ("s0", 5.0)), ("ready", (1, 20.0)), ("drained", ("s1", 22.0)), ("ready", (2, 40.0)),
          ("drained", ("s2", 41.0)), ("ready", (3, 60.0)), ("drained", ("s3", 61.0)), ("ready", (4, 80.0)), ("decisions", ())]),
        # Kubernetes' defaults on 10: surge 3 (rounded up), unavailable 2 (rounded down).
        (_deploy(10, prewarm=False),
         [*_LOOK, ("drained", ("s0", 5.0)), ("drained", ("s1", 6.0)), ("ready", (1, 7.0)), ("ready", (2, 8.0)), ("ready", (3, 9.0)),
          ("serving", ())]),
        # A draining server still holds its GPU: it counts toward R + surge (no start until it is gone).
        (_deploy(3, max_surge=1, max_unavailable=1, prewarm=False),
         [*_LOOK, ("ready", (1, 10.0)), ("tick", (11.0,)), ("drained", ("s0", 12.0)), ("drained", ("s1", 13.0))]),
    )),
    ("faults: the bound breaks only by a fault", (
        # A ready server dies: below R - unavailable, the controller drains nothing until new servers are ready again.
        (_deploy(4, max_surge=1, max_unavailable=1, prewarm=False),
         [*_LOOK, ("fault", ("s1", 2.0)), ("drained", ("s0", 3.0)), ("ready", (1, 10.0)), ("ready", (2, 12.0)),
          ("fault", (3, 13.0)), ("tick", (14.0,)), ("serving", ())]),
        (_deploy(3, max_surge=1, max_unavailable=0),
         [*_LOOK, ("fault", (1, 5.0)), ("ready", (2, 20.0)), ("fault", ("s2", 21.0)), ("drained", ("s0", 22.0)), ("serving", ())]),
    )),
    ("canary: steps, windows, promote and hold", (
        # R=10, steps 10 -> 50 -> 100: step 10% needs 1 new server in the surge; its weight is set once it is ready;
        # a window before the step's end is ignored; too little data holds; a clean window promotes.
        (_deploy(10, max_surge=5, max_unavailable=0, canary=_CANARY),
         [*_LOOK, ("ready", (1, 10.0)), _win(40.0, (500, 1, _lat(30, 1.0)), (60, 0, _lat(30, 1.0))),
          _win(70.0, (500, 1, _lat(30, 1.0)), (60, 0, _lat(30, 1.0))), _win(80.0, (900, 2, _lat(40, 1.0)), (120, 0, _lat(40, 1.0))),
          ("ready", (2, 90.0)), ("ready", (3, 91.0)), ("ready", (4, 92.0)), ("ready", (5, 93.0)),
          _win(160.0, (600, 1, _lat(40, 1.0)), (600, 2, _lat(40, 1.0))), ("decisions", ())]),
        # Only errors tested; one step; then the rolling update (prewarm) replaces the rest.
        (_deploy(4, max_surge=1, max_unavailable=0, canary={**_CANARY, "steps": [25], "metrics": ["errors"], "min_requests": 50}),
         [*_LOOK, ("ready", (1, 5.0)), _win(65.0, (300, 3, []), (100, 1, [])), ("drained", ("s0", 70.0)), ("ready", (2, 80.0))]),
    )),
    ("canary: rollback leaves only version A", (
        # B fails 6% of its requests against A's 0.5%: Fisher's test rolls back; weight 0, B drained, only A serves.
        (_deploy(10, max_surge=2, max_unavailable=0, canary=_CANARY),
         [*_LOOK, ("ready", (1, 10.0)), _win(70.0, (1000, 5, _lat(50, 1.0)), (200, 12, _lat(50, 1.0))), ("serving", ()),
          ("drained", (1, 80.0)), ("serving", ()), ("decisions", ())]),
        # B is slower (every latency +0.3 s): Mann-Whitney rolls back; a started B server still starting is drained too.
        (_deploy(8, max_surge=2, max_unavailable=0, canary={**_CANARY, "steps": [25, 100]}),
         [*_LOOK, ("ready", (1, 1.0)), ("tick", (2.0,)), ("ready", (2, 3.0)),
          _win(70.0, (800, 2, _lat(60, 1.0)), (300, 1, _lat(60, 1.3))), ("drained", (2, 75.0)), ("drained", (1, 76.0))]),
        # A rollback by hand during the rolling update: back to A under the same bounds (B drained, A started).
        (_deploy(4, max_surge=1, max_unavailable=0),
         [*_LOOK, ("ready", (1, 10.0)), ("drained", ("s0", 11.0)), ("rollback", (12.0, "operator")),
          ("ready", (2, 20.0)), ("drained", (2, 21.0)), ("ready", (3, 30.0)), ("drained", (1, 31.0)), ("serving", ()),
          ("rollback", (32.0, "again")), ("decisions", ())]),
    )),
    ("one rollout at a time, time order, bad events", (
        # next_rollout while running (or while servers drain): RolloutInProgressError (a ValueError), nothing changes.
        (_deploy(2, max_surge=1, max_unavailable=0),
         [*_LOOK, ("next_rollout", ("v3", {}, 1.0)), ("ready", (1, 2.0)), ("drained", ("s0", 3.0)), ("ready", (2, 4.0)),
          ("next_rollout", ("v3", {"max_surge": 1, "max_unavailable": 0}, 4.5)), ("drained", ("s1", 5.0)),
          ("next_rollout", ("v3", {"max_surge": 1, "max_unavailable": 0}, 6.0)), ("ready", (1, 7.0))]),
        # Events earlier than one seen, unknown servers, a Drained for a server never drained, a non-event: refused.
        (_deploy(3, max_surge=1, max_unavailable=0),
         [*_LOOK, ("tick", (5.0,)), ("tick", (4.0,)), ("ready", ("zz", 6.0)), ("drained", ("s1", 6.0)), ("event", ("ready",)),
          ("ready", (1, 6.0)), ("ready", (1, 7.0)), ("drained", ("s0", 8.0)), ("drained", ("s0", 9.0)), ("status", ("nope",))]),
    )),
    ("canary analysis: Fisher exact and Mann-Whitney U, one-sided", (
        ({"kind": "analysis", "plan": _CANARY},
         [("level", ()), ("nominal", ()), ("nominal", (1,)), ("nominal", (5,)),
          ("judge", ([1000, 5, _lat(50, 1.0)], [200, 12, _lat(50, 1.0)])),
          ("judge", ([1000, 10, _lat(50, 1.0)], [200, 1, _lat(50, 1.0)])),
          ("judge", ([200, 12, _lat(50, 1.0)], [200, 0, _lat(50, 1.0)])),
          ("judge", ([400, 0, _lat(40, 1.0)], [400, 0, _lat(40, 1.2)])),
          ("judge", ([400, 0, _lat(40, 1.2)], [400, 0, _lat(40, 1.0)])),
          ("judge", ([400, 0, [1.0] * 30], [400, 0, [1.0] * 30])),
          ("judge", ([400, 2, [1.0, 1.0, 2.0, 2.0, 3.0]], [400, 3, [2.0, 2.0, 3.0, 3.0, 3.0]])),
          ("judge", ([99, 0, _lat(10, 1.0)], [500, 50, _lat(10, 1.0)])),
          ("judge", ([500, 0, []], [500, 0, _lat(10, 1.0)])),
          ("judge", ([500, 0, _lat(10, 1.0)], [500, 500, _lat(10, 1.0)]))]),
        ({"kind": "analysis", "plan": {**_CANARY, "metrics": ["errors"], "alpha": 0.01, "min_requests": 1}},
         [("level", ()), ("nominal", ()), ("judge", ([100, 0, []], [100, 10, []])), ("judge", ([100, 0, []], [100, 4, []])),
          ("judge", ([1, 0, []], [1, 1, []])), ("judge", ([50, 50, []], [50, 50, []]))]),
        ({"kind": "analysis", "plan": {**_CANARY, "metrics": ["latency"], "alpha": 0.1, "steps": [1, 5, 25, 50, 100]}},
         [("level", ()), ("nominal", ()), ("judge", ([100, 90, _lat(20, 1.0)], [100, 0, _lat(20, 1.05)])),
          ("judge", ([100, 0, _lat(20, 1.0, 0.0)], [100, 0, _lat(20, 1.0, 0.0)]))]),
    )),
    ("canary split: hash of the session, excluded tiers", (
        # 30% by a keyed BLAKE2b of the session id (else the request id); a session stays on one version; premium never goes new.
        ({"kind": "split", "split": {"weight": 0.3, "new_version": "v2", "excluded_tiers": ["premium"], "seed": 7},
          "servers": [["a0", 100, "v1"], ["a1", 100, "v1"], ["b0", 100, "v2"]]},
         [*(("side", (f"r{i}", None, None)) for i in range(12)), *(("side", (f"x{i}", f"sess{i % 4}", None)) for i in range(8)),
          *(("route", (f"q{i}", f"sess{i % 5}", "free")) for i in range(10)), *(("route", (f"p{i}", f"sess{i}", "premium")) for i in range(4)),
          ("stats", ())]),
        # Raising the weight only moves sessions to the new version; weight 0 sends all to the old; another seed, other sessions.
        ({"kind": "split", "split": {"weight": 0.0, "new_version": "v2", "seed": 1}, "servers": [["a0", 100, "v1"], ["b0", 100, "v2"]]},
         [*(("side", (f"r{i}", None, None)) for i in range(6)), ("set_weight", (0.2,)), *(("side", (f"r{i}", None, None)) for i in range(10)),
          ("set_weight", (0.6,)), *(("side", (f"r{i}", None, None)) for i in range(10)), ("set_weight", (1.0,)),
          *(("route", (f"r{i}", None, "gold")) for i in range(3)), ("set_weight", (1.5,)), ("set_weight", (True,))]),
        # The new version full: its request goes to the old one (a fallback, counted); end() routes by load across both.
        ({"kind": "split", "split": {"weight": 1.0, "new_version": "v2"}, "servers": [["a0", 4, "v1"], ["b0", 1, "v2"]]},
         [*(("route", (f"r{i}", None, None)) for i in range(3)), ("stats", ()), ("end", ()), ("complete_request", ("r0",)),
          ("complete_request", ("r1",)), *(("route", (f"e{i}", None, None)) for i in range(3))]),
    )),
    ("bad input", (
        # Bounds: a bool, a float, a percent outside 0-100 or not whole, a negative number, replicas not an int >= 1.
        ({"kind": "bounds"}, [("surge", (True, 4)), ("surge", (1.5, 4)), ("surge", ("101%", 4)), ("unavailable", ("-5%", 4)),
                              ("surge", ("12.5%", 8)), ("unavailable", (-1, 4)), ("surge", ("25%", 0)), ("unavailable", ("25%", True)),
                              ("surge", ("abc", 4)), ("unavailable", ("25%", 2.0))]),
        # Both bounds resolve to 0 for this fleet; prewarm or a canary without a surge; empty or duplicate fleets; bad names.
        ({"bare": "RollingDeploy", "args": [_fleet(10), "v2", {"max_surge": 0, "max_unavailable": "5%", "prewarm": False}, 0.0]}, []),
        ({"bare": "RollingDeploy", "args": [_fleet(10), "v2", {"max_surge": "0%", "max_unavailable": "9%", "prewarm": False}, 0.0]}, []),
        ({"bare": "RollingDeploy", "args": [_fleet(3), "v2", {"max_surge": "0%", "max_unavailable": 1, "prewarm": True}, 0.0]}, []),
        ({"bare": "RollingDeploy", "args": [_fleet(3), "v2", {"max_surge": 0, "max_unavailable": 1, "prewarm": False,
                                                               "canary": _CANARY}, 0.0]}, []),  # fmt: skip
        ({"bare": "RollingDeploy", "args": [[], "v2", {}, 0.0]}, []),
        ({"bare": "RollingDeploy", "args": [[["a", "v1"], ["a", "v1"]], "v2", {}, 0.0]}, []),
        ({"bare": "RollingDeploy", "args": [_fleet(2), "", {}, 0.0]}, []),
        ({"bare": "RollingDeploy", "args": [_fleet(2), 2, {}, 0.0]}, []),
        ({"bare": "RollingDeploy", "args": [_fleet(2), "v2", "fast", 0.0]}, []),
        ({"bare": "RollingDeploy", "args": [_fleet(2), "v2", {}, INF]}, []),
        ({"bare": "RollingDeploy", "args": [_fleet(2), "v2", {}, "now"]}, []),
        ({"bare": "RollingDeploy", "args": ["s0", "v2", {}, 0.0]}, []),
        ({"bare": "CanaryAnalysis", "args": [{"steps": [5, 100]}]}, []),
        ({"bare": "CanaryAnalysis", "args": [None]}, []),
        ({"bare": "CanarySplit", "instance": True, "kwargs": {"new_version": "v2"}}, []),
        ({"bare": "CanarySplit", "kwargs": {"new_version": "v2", "weight": 1.2}}, []),
        ({"bare": "CanarySplit", "kwargs": {"new_version": "v2", "weight": -0.1}}, []),
        ({"bare": "CanarySplit", "kwargs": {"new_version": ""}}, []),
        ({"bare": "CanarySplit", "kwargs": {"new_version": "v2", "excluded_tiers": "premium"}}, []),
        ({"bare": "CanarySplit", "kwargs": {"new_version": "v2", "seed": "x"}}, []),
        # Bad calls on a running rollout: a bad time or reason for a rollback; then it goes on as if they never happened.
        (_deploy(2, max_surge=1, max_unavailable=0),
         [*_LOOK, ("rollback", ("soon", "x")), ("rollback", (1.0, "")), ("rollback", (1.0, 7)), ("ready", (1, 2.0)),
          ("rollback", (1.5, "late")), ("drained", ("s0", 3.0))]),
    )),
)


def random_ops7(seed: int, n: int = 60) -> tuple[dict[str, Any], list[Op]]:
    """A seeded rollout with faults: random bounds (and canary), the controller's own servers answered in random order.

    ``("answer", (status, k, at, ...))`` feeds the event for the ``k``-th server (modulo their number) that is
    ``status`` now, in the implementation's ``servers()`` order: a starting one becomes ``Ready`` (or dies: ``Fault``),
    a draining one ``Drained``, a ready one dies; windows (good or bad B) and ticks come at random times.
    """
    rng = random.Random(seed)
    replicas = rng.randint(2, 8)
    surge = rng.choice([1, 2, "25%", "50%", 0])
    unavailable = rng.choice([0, 1, "25%", "50%"]) if surge != 0 else rng.choice([1, "50%"])
    prewarm = surge != 0 and rng.random() < 0.6
    canary = None
    if surge != 0 and rng.random() < 0.4:
        canary = {"steps": rng.choice([[10, 100], [20, 50], [5, 25, 100]]), "window": 30.0, "alpha": 0.05, "min_requests": 50,
                  "excluded_tiers": [], "metrics": rng.choice([["errors"], ["errors", "latency"]])}  # fmt: skip
    if surge in ("25%", "50%") and unavailable in (0, "25%", "50%") and replicas < 4:
        unavailable = 1  # both bounds rounding to 0 is bad input, graded elsewhere
    make = _deploy(replicas, max_surge=surge, max_unavailable=unavailable, prewarm=prewarm, drain_timeout=120.0, canary=canary)
    ops: list[Op] = [*_LOOK]
    now = 0.0
    bad = rng.random() < 0.4
    rolled = False
    for _ in range(n):
        now = round(now + rng.choice([0.5, 1.0, 5.0, 20.0]), 3)
        choice = rng.random()
        if choice < 0.35:
            ops.append(("answer", ("starting", rng.randrange(8), now, "fault" if rng.random() < 0.08 else "ready")))
        elif choice < 0.7:
            ops.append(("answer", ("draining", rng.randrange(8), now, rng.choice([0, 0, 1, 3]))))
        elif choice < 0.75:
            ops.append(("answer", ("ready", rng.randrange(8), now, "fault")))
        elif choice < 0.9 and canary is not None and not rolled:
            a = [rng.randint(40, 400), 0, _lat(20, 1.0)]
            b = [rng.randint(40, 200), 0, _lat(20, 1.4 if bad else 1.0)]
            a[1] = rng.randint(0, a[0] // 100)
            b[1] = rng.randint(0, b[0] // (10 if bad else 100))
            ops.append(("window", (now, a, b)))
        elif choice < 0.91 and not rolled:
            rolled = True
            ops.append(("rollback", (now, "seeded rollback")))
        else:
            ops.append(("tick", (now,)))
        if rng.random() < 0.1:
            ops.append(("serving", ()))
    ops.append(("decisions", ()))
    return make, ops


def public_groups() -> tuple[Group, ...]:
    """The check cell's groups: the rule groups, then 12 seeded rollouts."""
    randoms = tuple(random_ops7(seed) for seed in range(12))
    groups = [(name, cases) for name, cases in STAGE7_GROUPS] + [(RANDOM_GROUP, randoms)]
    return as_groups("p7", groups, make=lambda s: s[0], ops=lambda s: s[1])


#: Every group name, in order.
GROUP_NAMES: tuple[str, ...] = tuple(name for name, _ in STAGE7_GROUPS) + (RANDOM_GROUP,)

SPEC = StageSpec(7, "deploy", ("RollingDeploy", "CanaryAnalysis", "CanarySplit"), DeployHarnessMaker(), public_groups)


def run_stage7(impl: ModuleType | None = None, *, echo: bool = True, only: str | tuple[str, ...] | None = None, strict: bool = True) -> CheckReport:
    """Compare ``impl``'s rollout bounds, deploy controller, canary analysis and canary split
    (default: ``LB_IMPL``'s) with the reference's recorded behaviour.

    Prints one line per group, returns the report, and raises
    :class:`~solution.checks.common.CheckFailed` if a group fails
    (``strict=False`` only returns).  ``only`` keeps the groups whose name
    starts with it (or with one of a tuple of prefixes).
    """
    return run_check(SPEC, impl, echo=echo, only=only, strict=strict)

