"""Stage 7: a hypothesis state machine over random rollouts with faults.

Random fleets and plans (surge, unavailability, prewarm or drain-first, with
or without a canary), fed random events in time order: servers become ready,
finish draining (some with requests ended by the drain timeout), die; canary
windows arrive with good or bad stats; an operator rolls back.  After every
step:

* at most ``R + surge`` servers exist (draining ones count);
* at least ``R - unavailable`` are ready, unless a fault took capacity, and
  the controller never drains a ready server that leaves fewer;
* every server is in exactly one state, and moves only forward
  (starting -> ready -> draining -> gone, or straight to gone on a fault);
* every action returned is in the log with a reason.

At the end every outstanding event is delivered: the rollout ends ``done``
with ``R`` new servers serving, or ``rolled_back`` with only the old version
serving.
"""

from __future__ import annotations

from hypothesis import assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test
import pytest

from solution.core.deploy_types import CanaryPlan, Drain, Drained, Fault, Ready, RolloutPlan, Tick, VersionStats, Window

pytestmark = pytest.mark.stage7

ORDER = {"starting": 0, "ready": 1, "draining": 2, "gone": 3}
GOOD = (VersionStats(200, 1, (1.0, 2.0, 3.0, 4.0)), VersionStats(200, 1, (1.0, 2.0, 3.0, 4.0)))
BAD = (VersionStats(200, 0, (1.0, 2.0, 3.0, 4.0)), VersionStats(200, 40, (1.0, 2.0, 3.0, 4.0)))


def make_machine(impl):
    class RolloutMachine(RuleBasedStateMachine):
        @initialize(
            replicas=st.integers(1, 7),
            surge=st.sampled_from([0, 1, 2, "25%", "50%"]),
            unavailable=st.sampled_from([0, 1, 2, "25%", "50%"]),
            prewarm=st.booleans(),
            canary=st.sampled_from([None, (10, 50), (25, 100)]),
        )
        def start(self, replicas, surge, unavailable, prewarm, canary):
            plan_canary = CanaryPlan(steps=canary, window=5.0, min_requests=100) if canary else None
            try:
                plan = RolloutPlan(max_surge=surge, max_unavailable=unavailable, prewarm=prewarm, drain_timeout=30.0, canary=plan_canary)
                self.deploy = impl.RollingDeploy([(f"s{i}", "v1") for i in range(replicas)], "v2", plan, 0.0)
            except ValueError:
                assume(False)
            self.now = 0.0
            self.previous = self.deploy.servers()
            self.check_actions(self.deploy.initial_actions, ready_before=replicas)

        # -- helpers ----------------------------------------------------------------------------

        def ids(self, *statuses):
            return sorted(sid for sid, (_, s) in self.deploy.servers().items() if s in statuses)

        def ready(self):
            return len(self.ids("ready"))

        def check_actions(self, actions, ready_before):
            logged = [d.action for d in self.deploy.log if d.action is not None]
            for action in actions:
                assert action in logged
            assert all(d.reason for d in self.deploy.log)
            drained_ready = [a for a in actions if isinstance(a, Drain) and self.previous.get(a.server_id, ("", "ready"))[1] == "ready"]
            if drained_ready:  # the controller itself never drains below the bound
                assert self.ready() >= self.deploy.min_ready, (actions, self.deploy.servers())

        def feed(self, event):
            ready_before = self.ready()
            actions = self.deploy.on(event)
            self.check_actions(actions, ready_before)

        def tick(self, dt):
            self.now += dt
            return self.now

        # -- rules ---------------------------------------------------------------------------------

        @precondition(lambda self: self.ids("starting"))
        @rule(data=st.data(), dt=st.floats(0.0, 3.0))
        def becomes_ready(self, data, dt):
            sid = data.draw(st.sampled_from(self.ids("starting")))
            self.feed(Ready(sid, self.tick(dt)))

        @precondition(lambda self: self.ids("draining"))
        @rule(data=st.data(), dt=st.floats(0.0, 3.0), forced=st.integers(0, 2))
        def finishes_draining(self, data, dt, forced):
            sid = data.draw(st.sampled_from(self.ids("draining")))
            self.feed(Drained(sid, self.tick(dt), forced))

        @precondition(lambda self: self.ids("starting", "ready", "draining"))
        @rule(data=st.data(), dt=st.floats(0.0, 3.0))
        def dies(self, data, dt):
            sid = data.draw(st.sampled_from(self.ids("starting", "ready", "draining")))
            self.feed(Fault(sid, self.tick(dt)))

        @rule(dt=st.floats(0.0, 10.0), bad=st.booleans())
        def window(self, dt, bad):
            a, b = BAD if bad else GOOD
            self.feed(Window(self.tick(dt), a, b))

        @rule(dt=st.floats(0.0, 5.0))
        def timer(self, dt):
            self.feed(Tick(self.tick(dt)))

        @precondition(lambda self: self.deploy.state == "running")
        @rule(dt=st.floats(0.0, 1.0))
        def operator_rolls_back(self, dt):
            self.deploy.rollback(self.tick(dt), "operator")
            self.check_actions([], 0)

        # -- invariants ------------------------------------------------------------------------------

        @invariant()
        def bounds_and_states(self):
            servers = self.deploy.servers()
            existing = sum(1 for _, s in servers.values() if s != "gone")
            assert existing <= self.deploy.max_servers, servers
            if self.deploy.faults == 0:
                assert self.ready() >= self.deploy.min_ready, servers
            for sid, (version, status) in servers.items():
                assert status in ORDER
                if sid in self.previous:
                    old = self.previous[sid][1]
                    assert ORDER[status] >= ORDER[old], (sid, old, status)
                    assert version == self.previous[sid][0]
            self.previous = servers

        def teardown(self):
            deploy = getattr(self, "deploy", None)
            if deploy is None:
                return
            for _ in range(300):
                starting, draining = self.ids("starting"), self.ids("draining")
                due = deploy.next_event_time()
                if not starting and not draining and due is None:
                    break
                if starting:
                    self.feed(Ready(starting[0], self.tick(1.0)))
                elif draining:
                    self.feed(Drained(draining[0], self.tick(1.0)))
                else:
                    self.feed(Window(max(due, self.tick(1.0)), *GOOD))
                    self.now = max(self.now, due)
            else:
                raise AssertionError(f"the rollout never settled: {deploy!r}")
            serving = [v for _, v in deploy.serving()]
            assert all(s in ("ready", "gone") for _, s in deploy.servers().values())
            if deploy.state == "rolled_back":
                assert serving == ["v1"] * deploy.replicas
            else:
                assert deploy.state == "done" and serving == ["v2"] * deploy.replicas

    return RolloutMachine


def test_random_rollouts_with_faults(impl):
    run_state_machine_as_test(make_machine(impl), settings=settings(max_examples=60, stateful_step_count=30, deadline=None))
