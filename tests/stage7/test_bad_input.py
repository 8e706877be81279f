"""Stage 7's bad-input matrix: every bad construction and bad call raises the right built-in kind and changes nothing."""

from __future__ import annotations

import math

import pytest

from solution.core.deploy_types import (
    CanaryPlan,
    Drained,
    Fault,
    Ready,
    RolloutPlan,
    Tick,
    VersionStats,
    Window,
)
from solution.core.errors import RolloutInProgressError, TimeWentBackwardsError, UnknownServerError
from solution.core.request import Request
from solution.core.routing import Router
from tests.stage7.fleet import ByLoad

pytestmark = pytest.mark.stage7

NAN, INF = float("nan"), float("inf")

BOUNDS = [
    (-1, ValueError),
    ("-5%", ValueError),
    ("101%", ValueError),
    ("12.5%", ValueError),
    ("25", ValueError),
    ("%", ValueError),
    (True, TypeError),
    (2.0, TypeError),
    (None, TypeError),
]


@pytest.mark.parametrize("value, kind", BOUNDS)
def test_bad_bounds(impl, value, kind):
    with pytest.raises(kind):
        impl.resolve_surge(value, 4)
    with pytest.raises(kind):
        impl.resolve_unavailable(value, 4)
    with pytest.raises(kind):
        RolloutPlan(max_surge=value)


@pytest.mark.parametrize("replicas, kind", [(0, ValueError), (-1, ValueError), (True, TypeError), (2.0, TypeError), ("4", TypeError)])
def test_bad_replicas(impl, replicas, kind):
    with pytest.raises(kind):
        impl.resolve_surge("25%", replicas)


ROLLOUT_PLAN = [
    ({"max_surge": 0, "max_unavailable": 0}, ValueError),
    ({"max_surge": "0%", "max_unavailable": "0%"}, ValueError),
    ({"drain_timeout": 0}, ValueError),
    ({"drain_timeout": -1.0}, ValueError),
    ({"drain_timeout": NAN}, ValueError),
    ({"drain_timeout": "600"}, TypeError),
    ({"prewarm": 1}, TypeError),
    ({"canary": (1, 5)}, TypeError),
]


@pytest.mark.parametrize("kwargs, kind", ROLLOUT_PLAN)
def test_bad_rollout_plan(kwargs, kind):
    with pytest.raises(kind):
        RolloutPlan(**kwargs)


CANARY_PLAN = [
    ({"steps": ()}, ValueError),
    ({"steps": (5, 1)}, ValueError),
    ({"steps": (5, 5)}, ValueError),
    ({"steps": (0, 5)}, ValueError),
    ({"steps": (5, 101)}, ValueError),
    ({"steps": (NAN,)}, ValueError),
    ({"steps": "1,5"}, TypeError),
    ({"steps": (True,)}, TypeError),
    ({"alpha": 0}, ValueError),
    ({"alpha": 1}, ValueError),
    ({"alpha": 1.5}, ValueError),
    ({"alpha": "0.05"}, TypeError),
    ({"window": 0}, ValueError),
    ({"window": INF}, ValueError),
    ({"min_requests": 0}, ValueError),
    ({"min_requests": 10.0}, TypeError),
    ({"excluded_tiers": "premium"}, TypeError),
    ({"excluded_tiers": ("",)}, ValueError),
    ({"metrics": ()}, ValueError),
    ({"metrics": ("errors", "errors")}, ValueError),
    ({"metrics": ("p99",)}, ValueError),
]


@pytest.mark.parametrize("kwargs, kind", CANARY_PLAN)
def test_bad_canary_plan(kwargs, kind):
    with pytest.raises(kind):
        CanaryPlan(**kwargs)


@pytest.mark.parametrize(
    "kwargs, kind",
    [({"requests": -1}, ValueError), ({"requests": 5, "errors": 6}, ValueError), ({"requests": 1.0}, TypeError),
     ({"requests": 3, "latencies": (1.0, NAN)}, ValueError), ({"requests": 3, "latencies": (-1.0,)}, ValueError),
     ({"requests": 3, "latencies": "abc"}, TypeError)],
)  # fmt: skip
def test_bad_version_stats(kwargs, kind):
    with pytest.raises(kind):
        VersionStats(**kwargs)


FLEET = [("s0", "v1"), ("s1", "v1"), ("s2", "v1"), ("s3", "v1")]

CONSTRUCTION = [
    (([], "v2", RolloutPlan(), 0.0), ValueError),
    (([("s0", "v1"), ("s0", "v1")], "v2", RolloutPlan(), 0.0), ValueError),
    ((["s0"], "v2", RolloutPlan(), 0.0), TypeError),
    (("s0", "v2", RolloutPlan(), 0.0), TypeError),
    ((FLEET, "", RolloutPlan(), 0.0), ValueError),
    ((FLEET, 2, RolloutPlan(), 0.0), TypeError),
    ((FLEET, "v2", {"max_surge": 1}, 0.0), TypeError),
    ((FLEET, "v2", RolloutPlan(), NAN), ValueError),
    ((FLEET, "v2", RolloutPlan(), "0"), TypeError),
    # both bounds round to 0 for this fleet; prewarm / a canary without a surge
    (([("s0", "v1"), ("s1", "v1")], "v2", RolloutPlan(max_surge="0%", max_unavailable="25%", prewarm=False), 0.0), ValueError),
    ((FLEET, "v2", RolloutPlan(max_surge=0, max_unavailable=1, prewarm=True), 0.0), ValueError),
    ((FLEET, "v2", RolloutPlan(max_surge=0, max_unavailable=1, prewarm=False, canary=CanaryPlan()), 0.0), ValueError),
]


@pytest.mark.parametrize("args, kind", CONSTRUCTION)
def test_bad_construction(impl, args, kind):
    with pytest.raises(kind):
        impl.RollingDeploy(*args)


def snapshot(deploy):
    return deploy.servers(), list(deploy.log), deploy.state, deploy.next_event_time(), deploy.faults


def test_bad_events_change_nothing(impl):
    deploy = impl.RollingDeploy(FLEET, "v2", RolloutPlan(max_surge=1, max_unavailable=1), 10.0)
    start = deploy.initial_actions[0].server_id
    before = snapshot(deploy)
    for event, kind in [
        ("ready", TypeError),
        (Ready("nope", 11.0), UnknownServerError),
        (Ready(start, 9.0), TimeWentBackwardsError),
        (Drained("s0", 11.0), ValueError),  # never drained: a lost server is a Fault
        (Drained(start, 11.0), ValueError),  # still starting
        (Fault("nope", 11.0), UnknownServerError),
        (Tick(5.0), TimeWentBackwardsError),
    ]:
        with pytest.raises(kind):
            deploy.on(event)
        assert snapshot(deploy) == before, event
    with pytest.raises(ValueError):
        deploy.rollback(11.0, "")
    with pytest.raises(TimeWentBackwardsError):
        deploy.rollback(1.0, "late")
    with pytest.raises(RolloutInProgressError):
        deploy.next_rollout("v3", RolloutPlan(), 11.0)
    assert snapshot(deploy) == before


def test_time_went_backwards_is_a_value_error_and_unknown_server_a_key_error():
    assert issubclass(TimeWentBackwardsError, ValueError) and issubclass(UnknownServerError, KeyError)
    assert issubclass(RolloutInProgressError, ValueError)


def test_bad_analysis_and_split_input(impl):
    with pytest.raises(TypeError):
        impl.CanaryAnalysis({"alpha": 0.05})
    analysis = impl.CanaryAnalysis(CanaryPlan())
    with pytest.raises(TypeError):
        analysis.judge((100, 1), VersionStats(100, 1))
    with pytest.raises(TypeError):
        impl.CanarySplit("ByLoad", new_version="v2")
    attached = ByLoad()
    Router(attached)
    with pytest.raises(ValueError):
        impl.CanarySplit(attached, new_version="v2")  # it already serves a router
    for kwargs, kind in [({"weight": 1.5}, ValueError), ({"weight": -0.1}, ValueError), ({"weight": NAN}, ValueError),
                         ({"weight": True}, TypeError), ({"new_version": ""}, ValueError), ({"excluded_tiers": "premium"}, TypeError),
                         ({"seed": 1.0}, TypeError)]:  # fmt: skip
        with pytest.raises(kind):
            impl.CanarySplit(ByLoad, **{"new_version": "v2", **kwargs})
    split = impl.CanarySplit(ByLoad, weight=0.3, new_version="v2")
    with pytest.raises(ValueError):
        split.set_weight(2)
    assert split.weight == 0.3
    router = Router(split)
    router.add_server("a", 4, 80)
    assert router.route(Request("r", 10)) == "a"
    with pytest.raises(TypeError):
        router.add_server("b", 4, 80, version=2)
    with pytest.raises(ValueError):
        router.add_server("b", 4, 80, version="")
    assert not math.isnan(split.weight)
