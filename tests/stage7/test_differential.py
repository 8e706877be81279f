"""Stage 7: the implementation against the reference on random rollouts: same actions, same states, same verdicts.

A seeded generator picks a fleet and a plan, then events drawn from the
reference's state (a starting server becomes ready, a draining one finishes,
one dies, a canary window with good or bad stats, a timer, now and then a
wrong event); both controllers are fed each event, and their answers (the
actions, or the error's type) and their servers, state and log length must be
equal after every one.  The canary test and the split are compared on random
inputs too.  The first difference is reported with the events before it.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.core.deploy_types import CanaryPlan, Drained, Fault, Ready, RolloutPlan, Tick, VersionStats, Window
from solution.core.request import Request

pytestmark = pytest.mark.stage7


def random_setup(rng):
    replicas = rng.randint(1, 8)
    canary = rng.choice([None, CanaryPlan(steps=(10, 50), window=5.0, min_requests=50), CanaryPlan(steps=(5, 100), window=3.0, min_requests=50)])
    while True:
        plan_args = dict(max_surge=rng.choice([0, 1, 2, "25%", "50%"]), max_unavailable=rng.choice([0, 1, 2, "25%"]),
                         prewarm=rng.random() < 0.5, canary=canary, drain_timeout=rng.choice([30.0, 600.0]))  # fmt: skip
        try:
            plan = RolloutPlan(**plan_args)
        except ValueError:
            continue
        return [(f"s{i}", rng.choice(["v1", "v1", "v0"])) for i in range(replicas)], plan


def stats(rng, n, error_rate, scale):
    return VersionStats(n, sum(rng.random() < error_rate for _ in range(n)), tuple(rng.expovariate(1.0) * scale for _ in range(30)))


def answer(call):
    try:
        return ("ok", call())
    except Exception as exc:  # noqa: BLE001 - the error's type is the answer
        return ("error", type(exc).__name__)


def first_difference(impl, reference, seed, steps):
    rng = random.Random(seed)
    fleet, plan = random_setup(rng)
    a = answer(lambda: impl.RollingDeploy(fleet, "v2", plan, 0.0))
    b = answer(lambda: reference.RollingDeploy(fleet, "v2", plan, 0.0))
    if a[0] != b[0] or a[0] == "error":
        return None if a == b else f"seed {seed}: construction: yours {a}, the reference {b}"
    mine, ref = a[1], b[1]
    if mine.initial_actions != ref.initial_actions:
        return f"seed {seed}: initial actions: yours {mine.initial_actions}, the reference {ref.initial_actions}"
    now, events = 0.0, []
    for _ in range(steps):
        now += rng.choice([0.0, 0.5, 1.0, 4.0])
        servers = ref.servers()
        starting = [s for s, (_, st_) in servers.items() if st_ == "starting"]
        draining = [s for s, (_, st_) in servers.items() if st_ == "draining"]
        live = [s for s, (_, st_) in servers.items() if st_ != "gone"]
        x = rng.random()
        if x < 0.35 and starting:
            event = Ready(rng.choice(starting), now)
        elif x < 0.65 and draining:
            event = Drained(rng.choice(draining), now, rng.randint(0, 2))
        elif x < 0.7 and live:
            event = Fault(rng.choice(live), now)
        elif x < 0.85:
            bad = rng.random() < 0.3
            event = Window(now, stats(rng, 80, 0.02, 1.0), stats(rng, 80, 0.2 if bad else 0.02, 1.0))
        elif x < 0.95:
            event = Tick(now)
        else:  # a wrong event: an unknown server, a drain report for a ready server, a time from the past
            event = rng.choice([Ready("nope", now), Drained(rng.choice(list(servers)), now), Tick(now - 5.0)])
        events.append(event)
        a, b = answer(lambda: mine.on(event)), answer(lambda: ref.on(event))
        if a != b:
            return f"seed {seed}: event {len(events)} {event}: yours {a}, the reference {b} (after {events[-6:-1]})"
        for what in ("servers", "state", "log length", "next event"):
            get = {"servers": lambda d: d.servers(), "state": lambda d: d.state, "log length": lambda d: len(d.log),
                   "next event": lambda d: d.next_event_time()}[what]  # fmt: skip
            if get(mine) != get(ref):
                return f"seed {seed}: after event {len(events)} {event}: {what} differs: yours {get(mine)}, the reference {get(ref)}"
    return None


@pytest.mark.parametrize("seed", range(12))
def test_seeded_rollouts_match_reference(impl, reference, seed):
    found = first_difference(impl, reference, seed, 60)
    assert found is None, found


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_hypothesis_rollouts_match_reference(impl, reference, seed):
    found = first_difference(impl, reference, seed, 40)
    assert found is None, found


@settings(max_examples=40, deadline=None)
@given(
    n_a=st.integers(0, 400),
    n_b=st.integers(0, 400),
    e_a=st.floats(0, 1),
    e_b=st.floats(0, 1),
    lat_a=st.lists(st.floats(0, 50, allow_nan=False), max_size=40),
    lat_b=st.lists(st.floats(0, 50, allow_nan=False), max_size=40),
    metrics=st.sampled_from([("errors",), ("latency",), ("errors", "latency")]),
)
def test_canary_verdicts_match_reference(impl, reference, n_a, n_b, e_a, e_b, lat_a, lat_b, metrics):
    plan = CanaryPlan(min_requests=20, metrics=metrics)
    a, b = VersionStats(n_a, int(n_a * e_a), tuple(lat_a)), VersionStats(n_b, int(n_b * e_b), tuple(lat_b))
    mine, ref = impl.CanaryAnalysis(plan).judge(a, b), reference.CanaryAnalysis(plan).judge(a, b)
    assert mine.outcome == ref.outcome
    assert mine.p_value == pytest.approx(ref.p_value, rel=1e-6, abs=1e-12)


def test_split_sides_match_reference(impl, reference):
    rng = random.Random(5)
    for weight, seed in [(0.0, 0), (0.05, 1), (0.5, 2), (1.0, 3)]:
        mine = impl.CanarySplit(reference.LeastConnections, weight=weight, new_version="v2", excluded_tiers=("premium",), seed=seed)
        ref = reference.CanarySplit(reference.LeastConnections, weight=weight, new_version="v2", excluded_tiers=("premium",), seed=seed)
        for i in range(500):
            request = Request(f"r{i}", 10, session_id=rng.choice([None, f"s{rng.randrange(100)}"]), tier=rng.choice([None, "premium", "free"]))
            assert mine.side(request) == ref.side(request), (weight, seed, request)
