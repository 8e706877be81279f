"""Stage 4's bad-input matrix: every bad call raises the right built-in kind and changes nothing."""

from __future__ import annotations

import copy

import pytest

from solution.core.errors import InvalidPolicyError, LoadBalancerError
from solution.core.health_types import HealthPolicy, RetryPolicy

pytestmark = pytest.mark.stage4

NAN, INF = float("nan"), float("inf")


def checker(impl):
    hc = impl.HealthChecker(HealthPolicy(consecutive_5xx=2, base_ejection_time=5.0), seed=2)
    hc.add_server("a", 0.0, warm=True)
    hc.add_server("b", 0.0)
    hc.add_server("gone", 0.0, warm=True)
    hc.remove_server("gone")
    hc.request_result("a", False, 1.0)
    hc.probe_result("b", False, 2.0)
    return hc


#: (method, args, kwargs, expected built-in kind) on the checker above (its clock is at 2.0).
CHECKER_CALLS = [
    ("add_server", ("", 3.0), {}, ValueError),
    ("add_server", (None, 3.0), {}, TypeError),
    ("add_server", ("a", 3.0), {}, ValueError),  # duplicate
    ("add_server", ("c", -1.0), {}, ValueError),  # time went backwards
    ("add_server", ("c", NAN), {}, ValueError),
    ("add_server", ("c", INF), {}, ValueError),
    ("add_server", ("c", "3"), {}, TypeError),
    ("add_server", ("c", True), {}, TypeError),
    ("add_server", ("c", 3.0), {"warm": 1}, TypeError),
    ("remove_server", ("gone",), {}, KeyError),
    ("remove_server", (3,), {}, TypeError),
    ("probe_result", ("gone", True, 3.0), {}, KeyError),  # a probe result for a removed server
    ("probe_result", ("zz", False, 3.0), {}, KeyError),
    ("probe_result", ("a", "yes", 3.0), {}, TypeError),
    ("probe_result", ("a", True, 1.0), {}, ValueError),
    ("request_result", ("gone", True, 3.0), {}, KeyError),
    ("request_result", ("a", 0, 3.0), {}, TypeError),
    ("request_result", ("a", True, 3.0, -1.0), {}, ValueError),
    ("request_result", ("a", True, 3.0, 0), {}, ValueError),
    ("request_result", ("a", True, 3.0, NAN), {}, ValueError),
    ("request_result", ("a", True, 3.0, "fast"), {}, TypeError),
    ("request_result", ("a", False, 0.5), {}, ValueError),
    ("due_probes", (None,), {}, TypeError),
    ("due_probes", (1.0,), {}, ValueError),
    ("advance", (NAN,), {}, ValueError),
    ("advance", (1.9,), {}, ValueError),
    ("state", ("gone",), {}, KeyError),
    ("state", (1,), {}, TypeError),
    ("weight", ("gone", 3.0), {}, KeyError),
    ("weight", ("a", 1.0), {}, ValueError),
    ("weight", ("a", "now"), {}, TypeError),
    ("trial_limit", ("gone",), {}, KeyError),
]


@pytest.mark.parametrize("name,args,kwargs,kind", CHECKER_CALLS, ids=[f"{c[0]}{c[1]}{c[2] or ''}" for c in CHECKER_CALLS])
def test_bad_checker_call_raises_and_changes_nothing(impl, name, args, kwargs, kind):
    hc = checker(impl)
    before = (copy.deepcopy(hc.get_server_stats()), list(hc.transitions), hc.next_probe_time(), hc.next_change_time())
    with pytest.raises(kind) as info:
        getattr(hc, name)(*args, **kwargs)
    assert not isinstance(info.value, NotImplementedError)
    assert str(info.value)  # says what went wrong
    assert (hc.get_server_stats(), list(hc.transitions), hc.next_probe_time(), hc.next_change_time()) == before
    # and the checker still works, on the clock it had
    hc.request_result("a", False, 2.0)
    assert hc.state("a").value == "down"


def test_errors_raised_on_purpose_are_the_courses_own(impl):
    hc = checker(impl)
    for call in (lambda: hc.state("gone"), lambda: hc.advance(0.0), lambda: hc.add_server("a", 3.0)):
        with pytest.raises(LoadBalancerError):
            call()


@pytest.mark.parametrize("kwargs,kind", [
    ({"seed": -1}, ValueError), ({"seed": 1.0}, TypeError), ({"seed": True}, TypeError),
    ({"policy": {"interval": 1.0}}, TypeError), ({"policy": "default"}, TypeError),
])  # fmt: skip
def test_bad_checker_construction(impl, kwargs, kind):
    with pytest.raises(kind):
        impl.HealthChecker(**kwargs)


@pytest.mark.parametrize("field,value,kind", [
    ("interval", -1.0, ValueError), ("interval", 0, ValueError), ("interval", "5", TypeError), ("timeout", 0.0, ValueError),
    ("timeout", 10.0, ValueError), ("unhealthy_threshold", 0, ValueError), ("healthy_threshold", 0, ValueError),
    ("unhealthy_threshold", 2.0, TypeError), ("consecutive_5xx", 0, ValueError), ("consecutive_5xx", True, TypeError),
    ("jitter", 1.0, ValueError), ("jitter", -0.1, ValueError), ("base_ejection_time", 0.0, ValueError),
    ("max_ejection_time", 1.0, ValueError), ("max_ejection_percent", 0.0, ValueError), ("max_ejection_percent", 101.0, ValueError),
    ("latency_factor", 1.0, ValueError), ("degraded_error_rate", 0.0, ValueError), ("ewma_alpha", 0.0, ValueError),
    ("hysteresis", 1.0, ValueError), ("degraded_weight", 0.0, ValueError), ("half_open_trials", 0, ValueError),
    ("slow_start_window", 0.0, ValueError), ("aggression", 0.0, ValueError), ("min_weight", 1.5, ValueError),
    ("min_weight", NAN, ValueError),
])  # fmt: skip
def test_bad_policy_fields(field, value, kind):
    with pytest.raises(kind) as info:
        HealthPolicy(**{field: value})
    assert field in str(info.value)
    if kind is ValueError:
        assert isinstance(info.value, InvalidPolicyError)


@pytest.mark.parametrize("kwargs,kind", [({"max_tries": 0}, ValueError), ({"max_tries": 2.0}, TypeError),
                                         ({"per_try_timeout": 0.0}, ValueError), ({"per_try_timeout": "1"}, TypeError)])
def test_bad_retry_policy(kwargs, kind):
    with pytest.raises(kind):
        RetryPolicy(**kwargs)


def ledger(impl):
    lg = impl.RetryLedger(RetryPolicy(max_tries=2, per_try_timeout=5.0))
    lg.begin("run", "a", 0.0)
    lg.begin("wait", "a", 0.0)
    lg.begin("done", "b", 0.0)
    lg.answer("done", "b", 0.5)
    lg.first_token("run", 0.6)
    lg.timed_out("wait", 5.0)
    return lg


LEDGER_CALLS = [
    ("begin", ("run", "c", 6.0), ValueError),  # an attempt is in flight
    ("begin", ("done", "c", 6.0), ValueError),  # ended
    ("begin", ("", "c", 6.0), ValueError),
    ("begin", ("new", None, 6.0), TypeError),
    ("begin", ("new", "c", 4.0), ValueError),  # time went backwards
    ("first_token", ("ghost", 6.0), KeyError),
    ("first_token", ("wait", 6.0), ValueError),  # nothing in flight
    ("timed_out", ("run", 4.0), ValueError),  # before the ledger's clock (5.0): time went backwards
    ("timed_out", ("done", 6.0), ValueError),
    ("timed_out", ("ghost", 6.0), KeyError),
    ("server_down", (7, 6.0), TypeError),
    ("server_down", ("a", NAN), ValueError),
    ("answer", ("run", 3, 6.0), TypeError),
    ("answer", (None, "a", 6.0), TypeError),
    ("fail", ("done", 6.0), ValueError),
    ("fail", ("ghost", 6.0), KeyError),
    ("finish", ("ghost",), KeyError),
    ("history", ("ghost",), KeyError),
    ("status", ("ghost",), KeyError),
    ("deadline", ("ghost",), KeyError),
]


@pytest.mark.parametrize("name,args,kind", LEDGER_CALLS, ids=[f"{c[0]}{c[1]}" for c in LEDGER_CALLS])
def test_bad_ledger_call_raises_and_changes_nothing(impl, name, args, kind):
    lg = ledger(impl)
    before = (lg.stats(), {r: (lg.status(r), lg.history(r)) for r in ("run", "wait", "done")})
    with pytest.raises(kind) as info:
        getattr(lg, name)(*args)
    assert not isinstance(info.value, NotImplementedError)
    assert (lg.stats(), {r: (lg.status(r), lg.history(r)) for r in ("run", "wait", "done")}) == before


def test_timed_out_before_the_deadline_changes_nothing(impl):
    lg = impl.RetryLedger(RetryPolicy(per_try_timeout=5.0))
    lg.begin("r", "a", 1.0)
    with pytest.raises(ValueError):
        lg.timed_out("r", 5.9)
    assert lg.status("r") == "in flight" and lg.stats()["in_flight"] == 1


def test_the_ledger_fails_a_request_out_of_tries_itself(impl):
    lg = impl.RetryLedger(RetryPolicy(max_tries=1))
    lg.begin("r", "a", 0.0)
    assert lg.server_down("a", 1.0) == ([], ["r"])  # with one try, the ledger fails it itself
    with pytest.raises(ValueError):
        lg.begin("r", "b", 1.0)
