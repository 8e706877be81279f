"""Stage 6 through the request path: a hypothesis state machine drives RequestPath with tiers, tier routing,
preemption and tier admission (rate limits) on a manual clock, in any order of arrivals, completions,
cancellations, lost servers and clock steps.  After every step:

* premium never waits while a server it may use has a free slot for it
  (its pools, eligible, load under premium's limit there);
* no request is lost or answered twice through preemption: a request ends at
  most once, the path's running requests are exactly those dispatched and not
  since preempted or ended, and ``open`` = running + waiting + paused;
* no server holds more than its limit;
* the preemption bound: no request is preempted more than ``max_preemptions``
  times, ``Preempted.times`` counts them, and only a preemptible tier is
  paused, for a tier that may preempt;
* at the end, with every running request answered, every submitted request
  ended exactly once.

The tier classes come from the implementation under test (``impl``):
``pytest --impl=exercises`` runs it on the candidate's ``tiers.py``.
"""

from __future__ import annotations

import importlib

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from solution.core.path import Cancelled, Delivered, Discarded, Dispatched, Failed, Preempted, Queued, Rejected, RequestPath, TimedOut
from solution.core.queue_types import QueuePolicy
from solution.core.request import Request
from solution.core.routing import Router
from solution.core.tier_types import RateLimit, ServiceTier

pytestmark = pytest.mark.stage6

FINAL = (Delivered, Failed, Rejected, TimedOut, Cancelled)
TIERS = ("premium", "free", "batch")


def make_machine(impl, *, mode: str, max_preemptions: int, reserved: float):
    tiers_mod = importlib.import_module(f"{impl.__name__}.tiers")

    class PathMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.table = tiers_mod.TierTable([
                ServiceTier("free", 1, tenant_limit=RateLimit(60, None, burst_seconds=2.0)),
                ServiceTier("premium", 2, reserved_share=reserved, pool="gold", routing="predictive", may_preempt=True),
                ServiceTier("batch", 0, preemptible=True),
            ])  # fmt: skip
            self.admission = tiers_mod.TierAdmission(self.table, tiers_mod.RateLimiter(self.table))
            self.path = RequestPath(Router(tiers_mod.TierRouting(self.table)), queue=QueuePolicy(max_wait=20.0), tiers=self.table,
                                    preemptor=tiers_mod.Preemptor(self.table, max_preemptions=max_preemptions, mode=mode),
                                    admission=self.admission)  # fmt: skip
            self.now = 0.0
            self.n = 0
            self.servers = 0
            self.tier: dict[str, str] = {}  # request id -> its tier
            self.submitted: set[str] = set()
            self.ended: set[str] = set()
            self.running: dict[str, str] = {}  # request id -> server of its current attempt
            self.paused: set[str] = set()
            self.preempted: dict[str, int] = {}
            for pool, cap in (("gold", 1), ("shared", 3), ("shared", 2)):
                self.add(pool, cap)

        # --- driving the path and following its outcomes ---
        def add(self, pool: str, capacity: int) -> None:
            sid = f"{pool[0]}{self.servers}"
            self.servers += 1
            self.apply(self.path.add_server(sid, capacity, 80, self.now, pool=pool))

        def apply(self, outcomes: list) -> None:
            for o in outcomes:
                rid = o.request_id
                if isinstance(o, FINAL):
                    assert rid not in self.ended, f"{rid} ended twice: {o}"
                    self.ended.add(rid)
                    self.running.pop(rid, None)
                    self.paused.discard(rid)
                elif isinstance(o, Dispatched):
                    assert rid not in self.running and rid not in self.ended, f"{rid} dispatched while running or ended: {o}"
                    self.paused.discard(rid)
                    self.running[rid] = o.server_id
                elif isinstance(o, Preempted):
                    assert self.running.pop(rid) == o.server_id, f"{rid} preempted where it did not run: {o}"
                    assert self.table.tier(self.tier[rid]).preemptible, f"a request of a tier that is not preemptible was paused: {o}"
                    self.paused.add(rid)
                    self.preempted[rid] = self.preempted.get(rid, 0) + 1
                    assert o.times == self.preempted[rid] <= max_preemptions, f"preemption bound broken: {o}"
                else:
                    assert isinstance(o, (Queued, Discarded)), o

        # --- rules ---
        @rule(tier=st.sampled_from(TIERS), tenant=st.sampled_from(["t0", "t1"]), tokens=st.sampled_from([50, 500, 5000]),
              count=st.integers(1, 4))  # fmt: skip
        def submit(self, tier: str, tenant: str, tokens: int, count: int) -> None:
            for _ in range(count):  # a burst: the fleet fills in few steps
                rid = f"r{self.n}"
                self.n += 1
                self.tier[rid] = tier
                self.submitted.add(rid)
                self.apply(self.path.submit(Request(rid, tokens, tier=tier, tenant=tenant), self.now))

        @precondition(lambda self: self.running or self.path.abandoned())
        @rule(data=st.data())
        def complete(self, data: st.DataObject) -> None:
            choices = sorted(self.running.items()) + sorted((rid, sid) for sid, rids in self.path.abandoned().items() for rid in rids)
            rid, sid = data.draw(st.sampled_from(choices))
            self.apply(self.path.completed(rid, sid, self.now))

        @precondition(lambda self: len(self.submitted) > len(self.ended))
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            rid = data.draw(st.sampled_from(sorted(self.submitted - self.ended)))
            self.apply(self.path.cancel(rid, self.now))

        @rule(dt=st.sampled_from([0.5, 1.0, 2.0, 25.0]))
        def tick(self, dt: float) -> None:
            self.now += dt
            self.apply(self.path.tick(self.now))

        @precondition(lambda self: self.running)
        @rule(data=st.data())
        def lose_and_replace(self, data: st.DataObject) -> None:
            sid = data.draw(st.sampled_from(sorted(set(self.running.values()))))
            pool = self.path.router.server(sid).pool
            capacity = self.path.router.server(sid).nominal_capacity
            self.apply(self.path.server_lost(sid, self.now))
            self.apply(self.path.remove_server(sid, self.now))
            self.add(pool, capacity)

        # --- invariants ---
        @invariant()
        def follows_the_path(self) -> None:
            assert self.path.in_flight() == self.running
            stats = self.path.stats()
            open_ = len(self.submitted) - len(self.ended)
            assert stats["open"] == open_ and stats["paused"] == len(self.paused)
            assert stats["open"] == len(self.running) + stats["waiting"] + stats["paused"]
            assert stats["submitted"] == stats["delivered"] + stats["failed"] + stats["rejected"] + stats["timed_out"] + \
                stats["cancelled"] + stats["open"]  # fmt: skip
            assert stats["preempted"] == sum(self.preempted.values())

        @invariant()
        def capacity_never_exceeded(self) -> None:
            router = self.path.router
            for s in router.routable_servers():
                assert s.load <= router.limit(s), f"{s.server_id} holds {s.load} > its limit {router.limit(s)}"

        @invariant()
        def premium_never_waits_beside_a_free_slot(self) -> None:
            router = self.path.router
            waiting = [rid for rid in self.submitted - self.ended - set(self.running) - self.paused if self.tier[rid] == "premium"]
            pools = self.table.tier("premium").pools
            for rid in waiting:
                request = Request(rid, 50)  # the smallest size: if even it could go, the waiting head could (class FIFO aside)
                for s in router.routable_servers():
                    if s.pool in pools and router.eligible(s, request):
                        limit = self.table.limit("premium", router.limit(s), s.nominal_capacity)
                        assert s.load >= limit, f"premium {rid} waits while {s.server_id} has a free slot ({s.load} < {limit})"

        def teardown(self) -> None:
            for _ in range(500):  # answer everything, as the servers would
                if self.running:
                    rid, sid = sorted(self.running.items())[0]
                elif self.path.abandoned():
                    sid, rids = sorted(self.path.abandoned().items())[0]
                    rid = rids[0]
                else:
                    self.now += 25.0
                    self.apply(self.path.tick(self.now))
                    if not self.running and not self.path.abandoned() and self.path.stats()["open"] == 0:
                        break
                    continue
                self.apply(self.path.completed(rid, sid, self.now))
            assert self.ended == self.submitted, f"never ended: {sorted(self.submitted - self.ended)}"
            assert not self.paused and self.path.stats()["open"] == 0

    return PathMachine


@pytest.mark.parametrize("mode,max_preemptions,reserved", [("recompute", 2, 0.0), ("swap", 1, 0.25)])
def test_path_with_tiers_and_preemption(impl, mode: str, max_preemptions: int, reserved: float) -> None:
    machine = make_machine(impl, mode=mode, max_preemptions=max_preemptions, reserved=reserved)
    run_state_machine_as_test(machine, settings=settings(max_examples=40, stateful_step_count=40, deadline=None))
