"""Stage 7's rules, one test each: Kubernetes' rounding, pre-warm vs drain-first, the canary's steps and rollback,
the canary test, the traffic split.

Each test states the rule it checks (the docstrings of ``deploy.py`` teach
them) and builds the smallest situation where a wrong implementation answers
differently.
"""

from __future__ import annotations

import random

import pytest

from solution.core.deploy_types import (
    CanaryPlan,
    Done,
    Drain,
    Drained,
    EndCanary,
    Ready,
    RolledBack,
    RolloutPlan,
    SetCanaryWeight,
    Start,
    VersionStats,
    Window,
)
from solution.core.errors import RolloutInProgressError
from solution.core.request import Request
from solution.core.routing import Router
from tests.stage7.fleet import ByLoad

pytestmark = pytest.mark.stage7


def fleet(n, version="v1"):
    return [(f"s{i}", version) for i in range(n)]


def settle(deploy, t, *, ready=True, drained=True):
    """Feed Ready for every starting server and Drained for every draining one, once; return the actions."""
    out = []
    for sid, (_, status) in deploy.servers().items():
        if status == "starting" and ready:
            t += 1
            out += deploy.on(Ready(sid, t))
        elif status == "draining" and drained:
            t += 1
            out += deploy.on(Drained(sid, t))
    return out, t


def run_to_end(deploy, t=0.0, limit=200):
    for _ in range(limit):
        if deploy.state != "running":
            return t
        _, t = settle(deploy, t)
    raise AssertionError(f"the rollout did not finish: {deploy!r}")


def ready_count(deploy):
    return sum(1 for _, s in deploy.servers().values() if s == "ready")


def existing(deploy):
    return sum(1 for _, s in deploy.servers().values() if s != "gone")


# -- Kubernetes' bounds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, replicas, surge, unavailable",
    [("25%", 10, 3, 2), ("25%", 3, 1, 0), ("25%", 4, 1, 1), ("10%", 1, 1, 0), ("100%", 7, 7, 7), ("0%", 5, 0, 0),
     (2, 10, 2, 2), (0, 3, 0, 0), ("33%", 3, 1, 0), ("50%", 5, 3, 2)],
)  # fmt: skip
def test_percent_surge_rounds_up_unavailable_down(impl, value, replicas, surge, unavailable):
    assert impl.resolve_surge(value, replicas) == surge
    assert impl.resolve_unavailable(value, replicas) == unavailable


def test_bounds_that_round_to_zero_for_the_fleet_are_refused(impl):
    """``"25%"`` unavailable of 3 replicas is 0; with a surge of 0 nothing could move."""
    with pytest.raises(ValueError, match="max_surge"):
        impl.RollingDeploy(fleet(3), "v2", RolloutPlan(max_surge=0, max_unavailable="25%", prewarm=False), 0.0)
    # the same plan on 4 replicas resolves unavailable to 1 and runs
    deploy = impl.RollingDeploy(fleet(4), "v2", RolloutPlan(max_surge=0, max_unavailable="25%", prewarm=False), 0.0)
    assert [type(a) for a in deploy.initial_actions] == [Drain]


# -- pre-warm vs drain-first ---------------------------------------------------------------------


def test_prewarm_starts_first_and_drains_only_once_a_replacement_is_ready(impl):
    deploy = impl.RollingDeploy(fleet(4), "v2", RolloutPlan(max_surge=1, max_unavailable=1, prewarm=True), 0.0)
    assert [type(a) for a in deploy.initial_actions] == [Start]
    start = deploy.initial_actions[0]
    assert start.version == "v2" and deploy.status(start.server_id) == "starting"
    actions = deploy.on(Ready(start.server_id, 5.0))
    assert [type(a) for a in actions] == [Drain] and actions[0].server_id == "s0"  # oldest listed first
    assert ready_count(deploy) == 4  # capacity never below R under prewarm


def test_prewarm_keeps_capacity_at_replicas_through_the_whole_rollout(impl):
    deploy = impl.RollingDeploy(fleet(6), "v2", RolloutPlan(max_surge=2, max_unavailable=2, prewarm=True), 0.0)
    t = 0.0
    while deploy.state == "running":
        _, t = settle(deploy, t)
        assert ready_count(deploy) >= 6
        assert existing(deploy) <= 8
    assert deploy.state == "done" and sorted(v for _, v in deploy.serving()) == ["v2"] * 6


def test_drain_first_drains_down_to_the_bound_before_anything_is_ready(impl):
    deploy = impl.RollingDeploy(fleet(8), "v2", RolloutPlan(max_surge=1, max_unavailable=2, prewarm=False), 0.0)
    kinds = [type(a) for a in deploy.initial_actions]
    assert kinds.count(Drain) == 2 and kinds.count(Start) == 1  # 2 unavailable; 8 + 1 servers exist (draining count)
    assert ready_count(deploy) == 6 and existing(deploy) == 9


def test_draining_servers_count_toward_the_surge(impl):
    """A draining server still holds its GPU: a new one starts only when one is gone."""
    deploy = impl.RollingDeploy(fleet(4), "v2", RolloutPlan(max_surge=0, max_unavailable=1, prewarm=False), 0.0)
    (drain,) = deploy.initial_actions
    assert deploy.on(Ready("s1", 1.0)) == []  # a late Ready for a ready server changes nothing
    actions = deploy.on(Drained(drain.server_id, 2.0, forced=0))
    assert [type(a) for a in actions] == [Start]


def test_done_once_every_old_server_is_gone_and_logs_every_decision(impl):
    deploy = impl.RollingDeploy(fleet(5), "v2", RolloutPlan(), 0.0)
    run_to_end(deploy)
    assert deploy.state == "done"
    acted = [d for d in deploy.log if d.action is not None]
    assert isinstance(acted[-1].action, Done)
    assert all(d.reason for d in deploy.log)
    assert sum(isinstance(d.action, Start) for d in acted) == 5 and sum(isinstance(d.action, Drain) for d in acted) == 5
    assert all(a.timeout == RolloutPlan().drain_timeout for a in (d.action for d in acted) if isinstance(a, Drain))


def test_a_second_rollout_while_one_runs_is_refused(impl):
    deploy = impl.RollingDeploy(fleet(3), "v2", RolloutPlan(max_surge=1), 0.0)
    log = list(deploy.log)
    with pytest.raises(RolloutInProgressError):
        deploy.next_rollout("v3", RolloutPlan(), 1.0)
    assert deploy.log == log and deploy.state == "running"
    t = run_to_end(deploy)
    follow = deploy.next_rollout("v3", RolloutPlan(max_surge=1), t)
    assert follow.state == "running" and follow.replicas == 3


# -- the canary ------------------------------------------------------------------------------


def good_window(at, n=300, seed=0):
    rng = random.Random(seed)
    a = VersionStats(n, 3, tuple(rng.expovariate(1.0) for _ in range(n)))
    b = VersionStats(n, 3, tuple(rng.expovariate(1.0) for _ in range(n)))
    return Window(at, a, b)


def bad_window(at, n=300):
    a = VersionStats(n, 0, tuple(1.0 + i / n for i in range(n)))
    b = VersionStats(n, 15, tuple(1.0 + i / n for i in range(n)))  # 5% errors against 0
    return Window(at, a, b)


def canary_deploy(impl, steps=(5, 25, 100)):
    plan = RolloutPlan(max_surge=2, max_unavailable=0, canary=CanaryPlan(steps=steps, window=10.0, min_requests=100))
    return impl.RollingDeploy(fleet(8), "v2", plan, 0.0)


def test_canary_sets_its_weight_once_its_servers_are_ready_and_promotes_step_by_step(impl):
    deploy = canary_deploy(impl)
    (start,) = deploy.initial_actions  # 5% of 8 -> 1 server
    assert deploy.on(Ready(start.server_id, 1.0)) == [SetCanaryWeight(0.05, 1.0)]
    assert deploy.next_event_time() == 11.0
    assert deploy.on(good_window(5.0)) == []  # before the window closed: ignored
    actions = deploy.on(good_window(11.0))  # promote: 25% of 8 -> 2 servers
    assert [type(a) for a in actions] == [Start]
    actions = deploy.on(Ready(actions[0].server_id, 12.0))
    assert actions == [SetCanaryWeight(0.25, 12.0)]
    actions = deploy.on(good_window(22.0, seed=1))  # promoted past the last step below 100: the rolling update
    assert isinstance(actions[0], EndCanary)
    run_to_end(deploy, 22.0)
    assert deploy.state == "done"


def test_canary_holds_without_enough_data_and_runs_no_test(impl):
    deploy = canary_deploy(impl)
    (start,) = deploy.initial_actions
    deploy.on(Ready(start.server_id, 1.0))
    assert deploy.on(Window(20.0, VersionStats(50, 0), VersionStats(50, 50))) == []  # 100% errors, but only 50 requests
    assert "hold" in deploy.log[-1].reason and deploy.state == "running"
    assert deploy.next_event_time() == 30.0  # the next window after the hold, not the past one


def test_a_bad_canary_rolls_back_and_leaves_only_the_old_version(impl):
    deploy = canary_deploy(impl)
    (start,) = deploy.initial_actions
    deploy.on(Ready(start.server_id, 1.0))
    actions = deploy.on(bad_window(11.0))
    kinds = [type(a) for a in actions]
    assert kinds[:2] == [SetCanaryWeight, RolledBack] and actions[0].weight == 0.0
    assert [a.server_id for a in actions if isinstance(a, Drain)] == [start.server_id]
    assert "errors" in actions[1].reason and deploy.state == "rolled_back"
    assert ready_count(deploy) == 8  # the stable fleet stayed whole
    deploy.on(Drained(start.server_id, 30.0, forced=2))
    assert sorted(v for _, v in deploy.serving()) == ["v1"] * 8
    assert all(s == "gone" for v, s in deploy.servers().values() if v == "v2")


def test_rollback_in_the_rolling_phase_is_a_rolling_update_back(impl):
    deploy = impl.RollingDeploy(fleet(4), "v2", RolloutPlan(max_surge=1, max_unavailable=1, prewarm=False), 0.0)
    t = 0.0
    for _ in range(2):
        _, t = settle(deploy, t)
    deploy.rollback(t + 1, "operator said so")
    t += 1
    while any(s in ("starting", "draining") for _, s in deploy.servers().values()):
        _, t = settle(deploy, t)
        assert ready_count(deploy) >= deploy.min_ready
        assert existing(deploy) <= deploy.max_servers
    assert deploy.state == "rolled_back"
    assert sorted(v for _, v in deploy.serving()) == ["v1"] * 4


# -- the canary test ---------------------------------------------------------------------------


def test_fisher_exact_one_sided_value(impl):
    analysis = impl.CanaryAnalysis(CanaryPlan(metrics=("errors",), min_requests=10))
    verdict = analysis.judge(VersionStats(100, 0), VersionStats(100, 10))
    assert verdict.outcome == "rollback"
    assert verdict.p_value == pytest.approx(0.000771, abs=2e-6)  # 1 metric: no Bonferroni factor
    assert "Fisher" in verdict.reason
    # one-sided: a better B is never a rollback
    assert analysis.judge(VersionStats(100, 10), VersionStats(100, 0)).outcome == "promote"


def test_mann_whitney_catches_a_slower_version_and_bonferroni_splits_alpha(impl):
    n = 300
    a = VersionStats(n, 0, tuple(1.0 + i / n for i in range(n)))
    b = VersionStats(n, 0, tuple(1.2 + i / n for i in range(n)))
    analysis = impl.CanaryAnalysis(CanaryPlan(min_requests=100, alpha=0.05))
    verdict = analysis.judge(a, b)
    assert verdict.outcome == "rollback" and "latency" in verdict.reason and "Mann-Whitney" in verdict.reason
    assert analysis.level() == pytest.approx(0.025)
    assert verdict.p_value == pytest.approx(2 * verdict.p_values["latency"])
    assert analysis.judge(a, a).outcome == "promote"


def test_nominal_false_rollback_rate_formula(impl):
    analysis = impl.CanaryAnalysis(CanaryPlan(steps=(1, 5, 25, 100), alpha=0.05))
    assert analysis.nominal_false_rollback() == pytest.approx(1 - 0.95**3)
    assert analysis.nominal_false_rollback(1) == pytest.approx(0.05)


# -- the split -----------------------------------------------------------------------------------


def split_router(impl, weight=0.2, excluded=("premium",)):
    split = impl.CanarySplit(ByLoad, weight=weight, new_version="v2", excluded_tiers=excluded, seed=7)
    router = Router(split)
    for i in range(3):
        router.add_server(f"a{i}", 1000, 80, version="v1")
    router.add_server("b0", 1000, 80, version="v2")
    return split, router


def test_split_sends_about_weight_by_session_and_keeps_sessions_on_one_version(impl):
    split, router = split_router(impl)
    versions = {}
    for i in range(2000):
        sid = f"sess{i % 500}"
        server = router.route(Request(f"r{i}", 10, session_id=sid))
        versions.setdefault(sid, set()).add("v2" if server == "b0" else "v1")
    assert all(len(v) == 1 for v in versions.values())
    share = sum(v == {"v2"} for v in versions.values()) / len(versions)
    assert 0.15 < share < 0.25


def test_split_is_deterministic_and_monotone_in_weight(impl):
    low, _ = split_router(impl, 0.1)
    high, _ = split_router(impl, 0.3)
    reqs = [Request(f"r{i}", 10) for i in range(1000)]
    new_low = {r.request_id for r in reqs if low.side(r) == "new"}
    new_high = {r.request_id for r in reqs if high.side(r) == "new"}
    assert new_low <= new_high and len(new_low) < len(new_high)
    again, _ = split_router(impl, 0.1)
    assert {r.request_id for r in reqs if again.side(r) == "new"} == new_low


def test_excluded_tiers_never_see_the_new_version(impl):
    _, router = split_router(impl, 1.0)
    for i in range(200):
        assert router.route(Request(f"p{i}", 10, tier="premium")).startswith("a")
    assert router.route(Request("f", 10, tier="free")) == "b0"


def test_split_falls_back_to_the_old_version_when_the_new_one_is_full_and_ends(impl):
    split = impl.CanarySplit(ByLoad(), weight=1.0, new_version="v2")  # an instance is copied, one per version
    router = Router(split)
    router.add_server("a0", 4, 80, version="v1")
    router.add_server("b0", 1, 80, version="v2")
    assert [router.route(Request(f"r{i}", 10)) for i in range(3)] == ["b0", "a0", "a0"]
    assert split.stats() == {"new": 1, "old": 0, "fallback": 2}
    split.set_weight(0.0)
    split.end()
    router.complete_request("r0")
    assert router.route(Request("x", 10)) in {"a0", "b0"}


def test_a_split_decision_never_lists_the_fleet(impl, monkeypatch):
    """One hash and one inner (indexed) decision: no call that lists every server."""
    split = impl.CanarySplit(ByLoad, weight=0.5, new_version="v2")
    router = Router(split)
    for i in range(64):
        router.add_server(f"s{i}", 4, 80, version="v2" if i % 2 else "v1")
    calls = []
    for name in ("routable_servers", "eligible_servers"):
        original = getattr(Router, name)
        monkeypatch.setattr(Router, name, lambda self, *a, _o=original, _n=name, **k: calls.append(_n) or _o(self, *a, **k))
    for i in range(50):
        router.route(Request(f"r{i}", 10, session_id=f"s{i}"))
    assert calls == []


def test_a_fleet_already_on_the_new_version_is_done_at_once(impl):
    plan = RolloutPlan(canary=CanaryPlan())
    deploy = impl.RollingDeploy([("s0", "v2"), ("s1", "v2")], "v2", plan, 3.0)
    assert deploy.initial_actions == [Done(3.0)] and deploy.state == "done"
