"""The simulator with a stage-2 queue at the gateway: outcomes, conservation, exact deadlines, stage 1 untouched."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution import LoadBalancer, QueuePolicy, RequestQueue
from solution.sim import (
    ClassicMode,
    Cluster,
    Crash,
    Fixed,
    LlmMode,
    LogNormal,
    Outcome,
    Recover,
    RemoveServer,
    Scenario,
    ServerSpec,
    Sessions,
    Tier,
    Workload,
    format_table,
    scenarios,
    simulate,
)
from solution.sim.errors import ScenarioError
from solution.sim.queueing import QueueConfig

pytestmark = pytest.mark.sim

QUEUE_OUTCOMES = {Outcome.TIMED_OUT, Outcome.THROTTLED, Outcome.CANCELLED}


def queued(scenario: Scenario, **policy) -> Scenario:
    return scenario.with_queue(QueueConfig(QueuePolicy(**policy)))


def test_without_a_queue_nothing_changes():
    base = scenarios.classic(servers=4, load=0.9, requests=3_000)
    fast, general = simulate(base, seed=3), simulate(base, seed=3, engine="general")
    assert fast.same_as(general) and fast.queueing == "" and not fast.summary().queueing
    assert not set(np.unique(fast.outcome)) & {int(o) for o in QUEUE_OUTCOMES}
    assert "queue-full" not in format_table({"run": fast.summary()})


def test_a_queue_that_holds_nothing_turns_each_rejection_into_a_429():
    """max_depth=0: the same requests are served at the same times; REJECTED becomes QUEUE_FULL (THROTTLED is its old name)."""
    base = scenarios.classic(servers=4, load=0.9, requests=3_000)
    stage1 = simulate(base, seed=5, engine="general")
    stage2 = simulate(queued(base, max_depth=0), seed=5)
    assert ((stage1.outcome == Outcome.REJECTED) == (stage2.outcome == Outcome.THROTTLED)).all()
    assert stage1.count(Outcome.REJECTED) > 100
    served = stage1.outcome == Outcome.COMPLETED
    for name in ("start", "finish", "server"):
        assert np.array_equal(getattr(stage1, name)[served], getattr(stage2, name)[served]), name


def test_an_unbounded_queue_serves_everyone_in_fifo_order():
    res = simulate(queued(scenarios.classic(servers=1, load=0.95, requests=3_000)), seed=2)
    assert res.count(Outcome.COMPLETED) == len(res) and res.queueing == "fifo"
    order = np.argsort(res.arrival, kind="stable")
    assert (np.diff(res.start[order]) >= 0).all(), "one server, FIFO: dispatch in arrival order"
    assert (res.wait >= 0).all() and res.wait.max() > 5.0
    assert res.summary().wait_mean == pytest.approx(float(np.mean(res.wait)))


def test_deadlines_are_exact_and_the_depth_stays_bounded():
    res = simulate(queued(scenarios.classic(servers=2, load=1.3, requests=4_000), max_depth=6, max_wait=2.5), seed=4)
    counts = Counter(Outcome(o) for o in res.outcome)
    assert counts[Outcome.TIMED_OUT] > 50 and counts[Outcome.THROTTLED] > 50 and counts[Outcome.COMPLETED] > 1000
    timed_out = res.outcome == Outcome.TIMED_OUT
    assert np.array_equal(res.finish[timed_out], res.arrival[timed_out] + 2.5)  # at exactly the deadline
    assert np.isnan(res.start[timed_out]).all() and (res.server[timed_out] == -1).all()
    throttled = res.outcome == Outcome.THROTTLED
    assert np.array_equal(res.finish[throttled], res.arrival[throttled]) and np.isnan(res.start[throttled]).all()
    dispatched = ~np.isnan(res.start)
    assert (res.wait[dispatched] <= 2.5).all()
    times = np.unique(np.concatenate([res.arrival, res.finish, res.start[dispatched]]))
    assert res.queue_depth_over_time(times).max() == 6
    s = res.summary()
    assert s.queueing and s.queue_full == s.throttled == counts[Outcome.QUEUE_FULL] and s.timeout_rate == counts[Outcome.TIMED_OUT] / len(res)
    assert "queue-full rate" in format_table({"run": s})


def test_impatient_clients_cancel_and_every_request_ends_once(recording):
    scenario = replace(queued(scenarios.classic(servers=2, load=1.1, requests=3_000), max_depth=20),
                       queue=QueueConfig(QueuePolicy(max_depth=20), patience=3.0))  # fmt: skip
    factory, made = recording()
    res = simulate(scenario, factory, seed=6)
    cancelled = res.outcome == Outcome.CANCELLED
    assert cancelled.sum() > 50 and (res.finish[cancelled] - res.arrival[cancelled] > 0).all()
    calls = made[0].calls
    routed = Counter(rid for kind, rid in calls if kind == "routed")
    completed = Counter(rid for kind, rid in calls if kind == "complete")
    assert set(routed.values()) == {1} and completed == routed
    assert set(routed) == {f"r{i}" for i in np.nonzero(res.server >= 0)[0]}


def test_the_same_seed_gives_the_same_run():
    scenario = queued(scenarios.steady(servers=2, load=1.2, requests=1_500), ordering="sjf", max_depth=30, max_wait=20.0)
    assert simulate(scenario, seed=9).same_as(simulate(scenario, seed=9))
    assert not simulate(scenario, seed=9).same_as(simulate(scenario, seed=10))


def test_priority_classes_wait_less():
    tiers = (Tier("interactive", 0.3, Fixed(100), Fixed(100)), Tier("batch", 0.7, Fixed(100), Fixed(100)))
    scenario = Scenario(Cluster.uniform(4, capacity=1), Workload(6_000, tiers=tiers), ClassicMode(), load=0.95,
                        queue=QueueConfig(QueuePolicy(ordering="priority"), priorities={"interactive": 1}))  # fmt: skip
    res = simulate(scenario, seed=1)
    waits = {name: float(np.mean(res.wait[res.tier == k])) for k, name in enumerate(res.tier_names)}
    assert waits["interactive"] < 0.5 * waits["batch"], waits


def test_shortest_job_first_cuts_the_mean_wait_when_sizes_are_known():
    base = Scenario(Cluster.uniform(4, capacity=1), Workload(8_000, tiers=(Tier("t", 1.0, Fixed(100), Fixed(100)),)),
                    ClassicMode(sized=True), load=0.9)  # fmt: skip
    fifo = simulate(queued(base), seed=2).summary(50.0).wait_mean
    sjf = simulate(queued(base, ordering="sjf", aging_rate=1.0), seed=2).summary(50.0).wait_mean
    assert sjf < 0.7 * fifo, (sjf, fifo)


def test_sized_classic_mode_tells_the_job_sizes():
    scenario = Scenario(Cluster.uniform(2, capacity=1), Workload(500), ClassicMode(mean_service=2.0, sized=True), load=0.5)
    res = simulate(scenario, seed=1, engine="general")
    service = res.finish - res.start
    assert np.array_equal(res.estimated_tokens[res.outcome == 0], np.maximum(np.rint(50.0 * service[res.outcome == 0]), 1))


def test_large_requests_that_fit_no_server_are_cancelled_at_the_end():
    tiers = (Tier("long", 0.2, Fixed(9000), Fixed(10)), Tier("short", 0.8, Fixed(100), Fixed(10)))
    scenario = Scenario(Cluster.uniform(2, "A10-24GB", capacity=2), Workload(300, tiers=tiers), LlmMode(), load=0.5,
                        queue=QueueConfig(QueuePolicy()))  # fmt: skip
    res = simulate(scenario, seed=1)
    long = res.tier == 0
    assert (res.outcome[long] == Outcome.CANCELLED).all() and (res.outcome[~long] == Outcome.COMPLETED).all()


def test_a_stub_queue_is_not_mistaken_for_a_full_one():
    class Stub(RequestQueue):
        def enqueue(self, request_id, estimated_tokens, priority=0):
            raise NotImplementedError("stage 2 stub")

    with pytest.raises(NotImplementedError):
        simulate(queued(scenarios.classic(servers=1, load=2.0, requests=100)), queue=Stub, seed=1)


def test_bad_queue_arguments():
    scenario = queued(scenarios.classic(servers=1, requests=10))
    with pytest.raises(TypeError, match="fresh queue"):
        simulate(scenario, queue=RequestQueue(lambda: 0.0), seed=1)
    with pytest.raises(TypeError):
        QueueConfig(policy={"max_depth": 3})
    with pytest.raises(ValueError):
        QueueConfig(patience=0)
    with pytest.raises(ValueError):
        QueueConfig(priorities={"chat": -1})
    with pytest.raises(ScenarioError, match="tiers"):
        scenario.with_queue(QueueConfig(priorities={"nope": 1}))
    with pytest.raises(TypeError):
        replace(scenario, queue=QueuePolicy())


SMALL = Tier("small", 1.0, LogNormal(300, 1.0, high=6000), LogNormal(60, 0.8, high=400))


@st.composite
def queued_scenarios(draw: st.DrawFn) -> Scenario:
    """Small random clusters, workloads, faults and queue policies, in either mode."""
    servers = draw(st.integers(1, 3))
    cluster = Cluster(tuple(ServerSpec(f"s{k}", draw(st.sampled_from(["A10-24GB", "A100-80GB"])), draw(st.integers(1, 3)))
                            for k in range(servers)))  # fmt: skip
    mode = draw(st.sampled_from([ClassicMode(), ClassicMode(sized=True), LlmMode()]))
    sessions = Sessions(mean_turns=2.0, mean_think=1.0) if draw(st.booleans()) else None
    workload = Workload(draw(st.integers(1, 60)), tiers=(SMALL,), sessions=sessions)
    load = draw(st.floats(0.3, 3.0))
    span = Scenario(cluster, workload, mode, load=load).expected_duration()
    timetable = ()
    if draw(st.booleans()):
        timetable = (Crash(draw(st.floats(0, span)), "s0"), Recover(draw(st.floats(0, span)), "s0"))
    if draw(st.booleans()):
        timetable += (RemoveServer(draw(st.floats(0, span)), f"s{servers - 1}"),)
    policy = QueuePolicy(ordering=draw(st.sampled_from(["fifo", "priority", "sjf"])), max_depth=draw(st.sampled_from([None, 0, 3])),
                         max_wait=draw(st.sampled_from([None, 0.5, 5.0])), max_skips=draw(st.integers(1, 3)))  # fmt: skip
    patience = draw(st.sampled_from([None, 1.0]))
    detection = draw(st.sampled_from([None, 0.5]))
    return Scenario(cluster, workload, mode, load=load, timetable=timetable, crash_detection=detection,
                    queue=QueueConfig(policy, patience=patience))  # fmt: skip


@settings(max_examples=60)
@given(scenario=queued_scenarios(), seed=st.integers(0, 2**32))
def test_every_queued_request_ends_once_and_the_balancer_is_told(scenario: Scenario, seed: int, recording) -> None:
    factory, made = recording()
    res = simulate(scenario, factory, seed=seed)
    assert set(np.unique(res.outcome)) <= {int(o) for o in Outcome}
    calls = made[0].calls
    routed = Counter(rid for kind, rid in calls if kind == "routed")
    assert set(routed.values()) <= {1}, "a request was dispatched twice"
    assert Counter(rid for kind, rid in calls if kind == "complete") == routed
    assert set(routed) == {f"r{i}" for i in np.nonzero(res.server >= 0)[0]}
    never = np.isin(res.outcome, [int(o) for o in QUEUE_OUTCOMES])
    assert (res.server[never] == -1).all() and np.isnan(res.start[never]).all()
    assert (res.finish >= res.arrival).all() and (res.wait[~np.isnan(res.wait)] >= 0).all()
    policy = scenario.queue.policy
    if policy.max_wait is not None:
        assert (res.wait[~np.isnan(res.wait)] <= policy.max_wait).all()
        timed = res.outcome == Outcome.TIMED_OUT
        assert np.array_equal(res.finish[timed], res.arrival[timed] + policy.max_wait)
    if policy.max_depth is not None:
        times = np.unique(np.concatenate([res.arrival, res.finish]))
        assert res.queue_depth_over_time(times).max(initial=0) <= policy.max_depth
