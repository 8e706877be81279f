"""Stage 5's bad-input matrix: every bad call raises the right built-in kind, says what went wrong, and changes nothing."""

from __future__ import annotations

import pytest

from solution.core.affinity_types import AffinityPolicy
from solution.core.clock import ManualClock
from solution.core.errors import InvalidPolicyError, LoadBalancerError
from solution.core.request import Request
from solution.core.routing import Router
from tests.stage5.inner import LeastLoaded

pytestmark = pytest.mark.stage5


NAN, INF = float("nan"), float("inf")


def table(impl):
    t = impl.SessionTable(ttl=10.0, max_sessions=3)
    t.assign("s1", "a", 0.0)
    t.assign("s2", "b", 1.0)
    t.get("s1", 2.0)
    return t  # its clock is at 2.0


def table_state(t):
    return (list(t.sessions().items()), t.stats(), [t.expires_at(s) for s in ("s1", "s2")], t.servers())


#: (method, args, expected built-in kind) on the table above.
TABLE_CALLS = [
    ("get", ("", 3.0), ValueError),
    ("get", (None, 3.0), TypeError),
    ("get", (1, 3.0), TypeError),
    ("get", ("s1", 1.0), ValueError),  # time went backwards
    ("get", ("s1", NAN), ValueError),
    ("get", ("s1", INF), ValueError),
    ("get", ("s1", "3"), TypeError),
    ("get", ("s1", True), TypeError),
    ("get", ("s1", None), TypeError),
    ("peek", ("", 3.0), ValueError),
    ("peek", ("s1", 1.0), ValueError),
    ("peek", ("s1", "x"), TypeError),
    ("assign", ("", "a", 3.0), ValueError),
    ("assign", ("s3", "", 3.0), ValueError),
    ("assign", ("s3", None, 3.0), TypeError),
    ("assign", (b"s3", "a", 3.0), TypeError),
    ("assign", ("s3", "a", 1.5), ValueError),
    ("assign", ("s3", "a", NAN), ValueError),
    ("assign", ("s1", "b", -INF), ValueError),
    ("assign", ("s3", "a", False), TypeError),
    ("forget", ("",), ValueError),
    ("forget", (3,), TypeError),
    ("forget_server", ("",), ValueError),
    ("forget_server", (None,), TypeError),
    ("expire", (1.0,), ValueError),
    ("expire", (NAN,), ValueError),
    ("expire", ("now",), TypeError),
    ("expires_at", ("",), ValueError),
    ("expires_at", (7,), TypeError),
]


@pytest.mark.parametrize("name,args,kind", TABLE_CALLS, ids=[f"{c[0]}{c[1]!r}" for c in TABLE_CALLS])
def test_bad_table_call_raises_and_changes_nothing(impl, name, args, kind):
    t = table(impl)
    before = table_state(t)
    with pytest.raises(kind) as info:
        getattr(t, name)(*args)
    assert not isinstance(info.value, NotImplementedError)
    assert str(info.value)
    assert table_state(t) == before
    assert t.get("s2", 2.0) == "b"  # and it still works, on the clock it had


@pytest.mark.parametrize("kwargs,kind", [
    ({"ttl": 0}, ValueError), ({"ttl": -1.0}, ValueError), ({"ttl": NAN}, ValueError), ({"ttl": INF}, ValueError),
    ({"ttl": "60"}, TypeError), ({"ttl": True}, TypeError), ({"ttl": None}, TypeError),
    ({"max_sessions": 0}, ValueError), ({"max_sessions": -5}, ValueError), ({"max_sessions": 2.0}, TypeError),
    ({"max_sessions": True}, TypeError),
])  # fmt: skip
def test_bad_table_construction(impl, kwargs, kind):
    with pytest.raises(kind) as info:
        impl.SessionTable(**kwargs)
    assert not isinstance(info.value, NotImplementedError)


@pytest.mark.parametrize("field,value,kind", [
    ("mode", "sticky", ValueError), ("mode", "", ValueError), ("mode", None, TypeError), ("mode", 1, TypeError),
    ("slack", -0.1, ValueError), ("slack", NAN, ValueError), ("slack", "0.2", TypeError), ("slack", True, TypeError),
    ("ttl", 0.0, ValueError), ("ttl", -3, ValueError), ("ttl", NAN, ValueError), ("ttl", INF, ValueError),
    ("ttl", "600", TypeError), ("ttl", False, TypeError),
    ("max_sessions", 0, ValueError), ("max_sessions", 1.5, TypeError), ("max_sessions", True, TypeError),
])  # fmt: skip
def test_bad_policy_fields(field, value, kind):
    with pytest.raises(kind) as info:
        AffinityPolicy(**{field: value})
    assert field in str(info.value)
    if kind is ValueError:
        assert isinstance(info.value, InvalidPolicyError)


def test_policy_accepts_infinite_slack_and_hard_mode():
    assert AffinityPolicy("hard", slack=INF).hard and not AffinityPolicy().hard


@pytest.mark.parametrize("kwargs,kind", [
    ({"session_id": ""}, ValueError), ({"session_id": 5}, TypeError), ({"prefix_blocks": [1, 2]}, TypeError),
    ({"prefix_blocks": (1, "2")}, TypeError), ({"prefix_blocks": (True,)}, TypeError), ({"prefix_blocks": (1.0,)}, TypeError),
    ({"prefix_blocks": None}, TypeError),
])  # fmt: skip
def test_bad_request_fields(kwargs, kind):
    with pytest.raises(kind):
        Request("r", 10, **kwargs)


def test_request_defaults_keep_earlier_stages():
    r = Request("r", 10, 4)
    assert r.session_id is None and r.prefix_blocks == () and r.output_tokens == 6


def affinity(impl):
    clock = ManualClock(5.0)
    aff = impl.SessionAffinity(LeastLoaded(), AffinityPolicy("hard", ttl=10.0), clock=clock)
    router = Router(aff)
    router.add_server("a", 2, 80)
    router.add_server("b", 2, 80)
    router.route(Request("r1", 10, session_id="s1"))
    return router, aff


def affinity_state(router, aff):
    return (dict(aff.sessions()), aff.stats(), aff.table.stats(), router.get_server_stats())


PIN_CALLS = [
    (("s9", "zz", 6.0), KeyError),  # a session on an unknown server
    (("s1", "gone", 6.0), KeyError),
    (("", "a", 6.0), ValueError),
    (("s9", "", 6.0), ValueError),
    ((None, "a", 6.0), TypeError),
    (("s9", 3, 6.0), TypeError),
    (("s9", "a", 4.0), ValueError),  # time went backwards
    (("s9", "a", NAN), ValueError),
    (("s9", "a", "6"), TypeError),
]


@pytest.mark.parametrize("args,kind", PIN_CALLS, ids=[repr(c[0]) for c in PIN_CALLS])
def test_bad_pin_raises_and_changes_nothing(impl, args, kind):
    router, aff = affinity(impl)
    router.add_server("gone", 2, 80)
    router.remove_server("gone")
    before = affinity_state(router, aff)
    with pytest.raises(kind) as info:
        aff.pin(*args)
    assert not isinstance(info.value, NotImplementedError) and str(info.value)
    assert affinity_state(router, aff) == before


def test_pin_unknown_server_is_the_courses_own_key_error(impl):
    router, aff = affinity(impl)
    with pytest.raises(LoadBalancerError) as info:
        aff.pin("s9", "zz", 6.0)
    assert isinstance(info.value, KeyError)


def test_clock_going_back_refuses_the_decision_and_changes_nothing(impl):
    clock = ManualClock(5.0)
    aff = impl.SessionAffinity(LeastLoaded(), AffinityPolicy("hard"), clock=clock)
    router = Router(aff)
    router.add_server("a", 2, 80)
    router.route(Request("r1", 10, session_id="s1"))
    clock.now = 1.0  # a broken clock
    before = affinity_state(router, aff)
    with pytest.raises(ValueError):
        router.route(Request("r2", 10, session_id="s1"))
    assert affinity_state(router, aff) == before


@pytest.mark.parametrize("make,kind", [
    (lambda impl, c: impl.SessionAffinity(None, clock=c), TypeError),
    (lambda impl, c: impl.SessionAffinity(LeastLoaded, clock=c), TypeError),  # a class, not an object
    (lambda impl, c: impl.SessionAffinity(LeastLoaded(), {"mode": "hard"}, clock=c), TypeError),
    (lambda impl, c: impl.SessionAffinity(LeastLoaded(), clock=5.0), TypeError),
    (lambda impl, c: impl.SessionAffinity(LeastLoaded(), clock=c, table={}), TypeError),
    (lambda impl, c: impl.BoundedLoadHash(0), ValueError),
    (lambda impl, c: impl.BoundedLoadHash(-0.5), ValueError),
    (lambda impl, c: impl.BoundedLoadHash(NAN), ValueError),
    (lambda impl, c: impl.BoundedLoadHash(INF), ValueError),
    (lambda impl, c: impl.BoundedLoadHash("0.25"), TypeError),
    (lambda impl, c: impl.BoundedLoadHash(True), TypeError),
    (lambda impl, c: impl.BoundedLoadHash(0.25, 0), ValueError),
    (lambda impl, c: impl.BoundedLoadHash(0.25, 2.0), TypeError),
    (lambda impl, c: impl.BoundedLoadHash(0.25, seed=-1), ValueError),
    (lambda impl, c: impl.BoundedLoadHash(0.25, seed="x"), TypeError),
    (lambda impl, c: impl.PrefixAware(None), TypeError),
    (lambda impl, c: impl.PrefixAware(LeastLoaded(), max_blocks_per_server=0), ValueError),
    (lambda impl, c: impl.PrefixAware(LeastLoaded(), max_blocks_per_server=1.5), TypeError),
    (lambda impl, c: impl.PrefixAware(LeastLoaded(), slack=-1.0), ValueError),
    (lambda impl, c: impl.PrefixAware(LeastLoaded(), slack=NAN), ValueError),
    (lambda impl, c: impl.PrefixAware(LeastLoaded(), slack=True), TypeError),
    (lambda impl, c: impl.PrefixAware(LeastLoaded(), min_match=0), ValueError),
    (lambda impl, c: impl.PrefixAware(LeastLoaded(), max_candidates=0), ValueError),
    (lambda impl, c: impl.PrefixAware(LeastLoaded(), max_candidates=None), TypeError),
    (lambda impl, c: impl.PrefixAware(LeastLoaded(), min_match="1"), TypeError),
])  # fmt: skip
def test_bad_construction(impl, make, kind):
    with pytest.raises(kind) as info:
        make(impl, ManualClock())
    assert not isinstance(info.value, NotImplementedError) and str(info.value)


def test_bad_reads(impl):
    router, aff = affinity(impl)
    with pytest.raises(TypeError):
        aff.unavailable_reason(5, Request("q", 1))
    with pytest.raises(TypeError):
        aff.unavailable_reason("a", "not a request")
    h = impl.BoundedLoadHash()
    Router(h).add_server("a", 2, 80)
    with pytest.raises(TypeError):
        h.home(5)
    p = impl.PrefixAware(LeastLoaded())
    Router(p)
    with pytest.raises(ValueError):
        p.held_prefix("", (1,))
