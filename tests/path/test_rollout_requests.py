"""Stage 7 end to end: random rollouts with faults, driven through the request path, with requests in flight.

tests/stage7/test_rollout_machine.py checks the controller's bounds on its
own; tests/path/test_drain.py checks drains on the path.  Here the two run
together, as the simulator and the gateway drive them: the controller's
``Start`` adds a server to the path (reported ``Ready`` later), its ``Drain``
is ``remove_server(..., drain_timeout=)`` and the path's ``Drained`` outcome
goes back to it; a crash is ``server_lost`` on the path and ``Fault`` for the
controller; requests arrive, stream and finish (or fail) throughout; canary
windows judge random good or bad stats; an operator may roll back.  Then:

* the path's ready servers never fall below ``R - maxUnavailable`` minus the
  servers crashed so far (a fault is the only excuse);
* every submitted request ends exactly once, none is dropped silently;
* a finished rollout serves ``R`` servers of the new version only; a rolled
  back one serves the old version only.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from solution.core.deploy_types import CanaryPlan, Drained as DrainedEvent
from solution.core.deploy_types import Fault, Ready, RolloutPlan, Tick, VersionStats, Window
from solution.core.health_types import RetryPolicy
from solution.core.path import Drained, RequestPath
from solution.core.queue_types import QueuePolicy
from solution.core.request import Request
from solution.core.routing import LeastConnections, Router
from solution.deploy import RollingDeploy, resolve_surge, resolve_unavailable
from solution.health import RetryLedger
from tests.path.test_path import FINAL

GOOD = (VersionStats(200, 1, (1.0, 2.0, 3.0, 4.0)), VersionStats(200, 1, (1.0, 2.0, 3.0, 4.0)))
BAD = (VersionStats(200, 0, (1.0, 2.0, 3.0, 4.0)), VersionStats(200, 40, (1.0, 2.0, 3.0, 4.0)))

_OPS = st.lists(st.tuples(st.sampled_from(["submit", "submit", "token", "done", "done", "ready", "ready", "tick",
                                           "tick", "crash", "window", "rollback"]),
                          st.integers(0, 15)),
                min_size=10, max_size=60)  # fmt: skip


class Rollout:
    """The controller and the path, wired as a driver wires them; every outcome kept."""

    def __init__(self, replicas: int, plan: RolloutPlan) -> None:
        self.path = RequestPath(Router(LeastConnections()), ledger=RetryLedger(RetryPolicy(max_tries=3)),
                                queue=QueuePolicy(max_depth=10_000))  # fmt: skip
        self.t = 0.0
        self.out: list = []
        self.pending: list[str] = []  # started, not yet reported Ready
        self.crashed: set[str] = set()
        for i in range(replicas):
            self.out += self.path.add_server(f"a{i}", 2, 80, 0.0, version="v1")
        self.deploy = RollingDeploy([(f"a{i}", "v1") for i in range(replicas)], "v2", plan, 0.0)
        self.carry(list(self.deploy.initial_actions))

    def carry(self, actions: list) -> None:
        """Carry out the controller's actions; feed back the path's Drained outcomes."""
        while actions:
            action = actions.pop(0)
            kind = type(action).__name__
            if kind == "Start":
                self.out += self.path.add_server(action.server_id, 2, 80, self.t, version=action.version)
                self.pending.append(action.server_id)
            elif kind == "Drain":
                if action.server_id in self.crashed:
                    continue
                if action.server_id in self.pending:  # drained before it was ever reported ready
                    self.pending.remove(action.server_id)
                got = self.path.remove_server(action.server_id, self.t, drain_timeout=action.timeout)
                self.out += got
                actions += self.feed_drained(got)
        # SetCanaryWeight / EndCanary / Done / RolledBack need nothing from the path here

    def feed_drained(self, outcomes: list) -> list:
        actions: list = []
        for o in outcomes:
            if isinstance(o, Drained) and o.server_id not in self.crashed:
                actions += self.deploy.on(DrainedEvent(o.server_id, self.t, o.forced))
        return actions

    def step(self, outcomes: list) -> None:
        self.out += outcomes
        self.carry(self.feed_drained(outcomes))

    def ready_servers(self) -> int:
        return sum(1 for s in self.path.router.get_server_stats() if self.path.server_state(s) == "ready"
                   and s not in self.pending and s not in self.crashed)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(replicas=st.integers(2, 5), surge=st.sampled_from([0, 1, 2, "25%", "50%"]),
       unavailable=st.sampled_from([0, 1, "25%", "50%"]), prewarm=st.booleans(), canary=st.booleans(),
       timeout=st.sampled_from([0.5, 2.0, 10.0]), ops=_OPS)  # fmt: skip
def test_random_rollouts_with_faults_end_every_request_once_and_leave_one_version(
        replicas, surge, unavailable, prewarm, canary, timeout, ops):  # fmt: skip
    if (prewarm or canary) and resolve_surge(surge, replicas) == 0:
        surge = 1  # pre-warm and canaries live in the surge
    if resolve_surge(surge, replicas) == 0 and resolve_unavailable(unavailable, replicas) == 0:
        unavailable = 1  # both 0 is refused (tests/stage7 checks that)
    plan = RolloutPlan(max_surge=surge, max_unavailable=unavailable, drain_timeout=timeout, prewarm=prewarm,
                       canary=CanaryPlan(steps=(25, 100), window=1.0, min_requests=200) if canary else None)  # fmt: skip
    r = Rollout(replicas, plan)
    floor = replicas - resolve_unavailable(unavailable, replicas)
    n = 0
    for op, k in ops:
        r.t += 0.25
        running = sorted(r.path.in_flight().items())
        if op == "submit":
            r.step(r.path.submit(Request(f"r{n}", 100), r.t))
            n += 1
        elif op == "token" and running:
            r.path.first_token(running[k % len(running)][0], r.t)
        elif op == "done" and running:
            rid, sid = running[k % len(running)]
            r.step(r.path.completed(rid, sid, r.t, ok=k % 4 != 0))
        elif op == "ready" and r.pending:
            sid = r.pending.pop(0)
            r.carry(r.deploy.on(Ready(sid, r.t)))
        elif op == "tick":
            due = r.path.next_event_time()
            r.t = max(r.t, due) if due is not None and math.isfinite(due) else r.t + 1.0
            r.step(r.path.tick(r.t))
            r.carry(r.deploy.on(Tick(r.t)))
        elif op == "crash":
            alive = sorted(s for s in r.path.router.get_server_stats() if s not in r.crashed)
            if len(alive) > 1:
                sid = alive[k % len(alive)]
                r.crashed.add(sid)
                if sid in r.pending:
                    r.pending.remove(sid)
                r.step(r.path.server_lost(sid, r.t))
                if sid in r.path.router and r.path.server_state(sid) != "draining":  # a draining one left, or leaves, by itself
                    r.step(r.path.remove_server(sid, r.t, drain_timeout=0.0))  # the dead server leaves the path
                r.carry(r.deploy.on(Fault(sid, r.t)))
        elif op == "window" and canary:
            a, b = BAD if k % 3 == 0 else GOOD
            r.carry(r.deploy.on(Window(r.t, a, b)))
        elif op == "rollback" and k == 0 and r.deploy.state == "running":
            r.carry(r.deploy.rollback(r.t, "operator"))
        assert r.ready_servers() >= floor - len(r.crashed), "the path lost capacity beyond maxUnavailable without a fault"
        assert not set(r.path.in_flight().values()) & r.crashed, "a request still runs on a crashed server"

    # deliver everything outstanding: new servers come up, requests finish, windows pass, timers fire
    for _ in range(400):
        running = sorted(r.path.in_flight().items())
        if r.deploy.state != "running" and not running and not r.pending and r.path.stats()["open"] == 0:
            break
        r.t += 1.0
        if r.pending:
            r.carry(r.deploy.on(Ready(r.pending.pop(0), r.t)))
        for rid, sid in running:
            r.step(r.path.completed(rid, sid, r.t))
        r.step(r.path.tick(r.t))
        r.carry(r.deploy.on(Tick(r.t)))
        if canary and r.deploy.state == "running":
            r.carry(r.deploy.on(Window(r.t, *GOOD)))
    assert r.deploy.state in ("done", "rolled_back"), f"the rollout never ended: {r.deploy.log[-3:]}"
    event(f"rollout {r.deploy.state}")
    event("with a crash" if r.crashed else "no crash")
    event("a drain timeout forced requests off" if r.path.stats()["drain_forced"] else "no forced drain")

    assert r.path.stats()["open"] == 0, "a request was dropped silently (never ended, not running)"
    ends = [o.request_id for o in r.out if isinstance(o, FINAL)]
    assert len(ends) == len(set(ends)) and set(ends) == {f"r{i}" for i in range(n)}, "a request ended twice or never"

    serving = {s: r.path.router.server(s).version for s in r.path.router.get_server_stats()
               if r.path.server_state(s) == "ready" and s not in r.crashed}  # fmt: skip
    if r.deploy.state == "done":
        assert set(serving.values()) == {"v2"} and len(serving) == replicas
    else:
        assert set(serving.values()) == {"v1"}, f"after a rollback only v1 serves, got {serving}"
