"""Stage 6's bad-input matrix: every bad construction and bad call raises the right built-in kind, says what to do,
and changes nothing."""

from __future__ import annotations

import math

import pytest

from solution.core.errors import (
    RequestTooLargeError,
    TimeWentBackwardsError,
    UnknownRequestError,
    UnknownTierError,
)
from solution.core.request import Request
from solution.core.routing import Router
from solution.core.tier_types import RateLimit, ServiceTier, Slo
from tests.stage6.tables import three_tiers

pytestmark = pytest.mark.stage6

NAN, INF = float("nan"), float("inf")


# -- the support types (shared by both packages) ---------------------------------------------

SERVICE_TIER = [
    ({"name": ""}, ValueError),
    ({"name": 3}, TypeError),
    ({"queue_class": -1}, ValueError),
    ({"queue_class": 1.0}, TypeError),
    ({"queue_class": True}, TypeError),
    ({"reserved_share": 1.0}, ValueError),
    ({"reserved_share": -0.1}, ValueError),
    ({"reserved_share": NAN}, ValueError),
    ({"reserved_share": True}, TypeError),
    ({"reserved_share": "25%"}, TypeError),
    ({"tier_limit": 60}, TypeError),
    ({"tenant_limit": (60, 1000)}, TypeError),
    ({"pool": ""}, ValueError),
    ({"pool": "shared"}, ValueError),
    ({"pool": 1}, TypeError),
    ({"spill": 1}, TypeError),
    ({"routing": "fastest"}, ValueError),
    ({"routing": None}, TypeError),
    ({"may_preempt": "yes"}, TypeError),
    ({"preemptible": None}, TypeError),
    ({"slo": 1.0}, TypeError),
]


@pytest.mark.parametrize(("change", "kind"), SERVICE_TIER, ids=[str(c) for c, _ in SERVICE_TIER])
def test_service_tier_rejects(change, kind):
    fields = {"name": "t", "queue_class": 1} | change
    with pytest.raises(kind) as info:
        ServiceTier(**fields)
    assert str(info.value)


RATE_LIMIT = [
    ((-60, None), ValueError),
    ((0, None), ValueError),
    ((NAN, None), ValueError),
    ((INF, None), ValueError),
    ((True, None), TypeError),
    (("60", None), TypeError),
    ((None, -1), ValueError),
    ((None, False), TypeError),
    ((None, None), ValueError),  # no limit at all: pass None instead of a RateLimit
    ((60, None, 0.0), ValueError),
    ((60, None, -5), ValueError),
    ((60, None, NAN), ValueError),
    ((60, None, True), TypeError),
    ((0.5, None), ValueError),  # the request bucket would hold half a request: nothing could ever pass
]


@pytest.mark.parametrize(("args", "kind"), RATE_LIMIT, ids=[str(a) for a, _ in RATE_LIMIT])
def test_rate_limit_rejects(args, kind):
    with pytest.raises(kind):
        RateLimit(*args)


@pytest.mark.parametrize(("args", "kind"), [((0, 1), ValueError), ((1, NAN), ValueError), ((2, 1), ValueError),
                                            ((True, 1), TypeError), (("1", 2), TypeError), ((1, INF), ValueError)])  # fmt: skip
def test_slo_rejects(args, kind):
    with pytest.raises(kind):
        Slo(*args)


@pytest.mark.parametrize(("fields", "kind"), [({"tier": ""}, ValueError), ({"tier": 2}, TypeError), ({"tenant": ""}, ValueError),
                                              ({"tenant": b"acme"}, TypeError)])  # fmt: skip
def test_request_rejects(fields, kind):
    with pytest.raises(kind):
        Request("r", 10, **fields)


@pytest.mark.parametrize(("pool", "kind"), [("", ValueError), (None, TypeError), (7, TypeError)])
def test_router_pool_label_rejects_and_adds_nothing(pool, kind):
    r = Router()
    with pytest.raises(kind):
        r.add_server("a", 4, 80, pool=pool)
    assert "a" not in r


# -- the tier table -------------------------------------------------------------------------

TABLES = [
    (lambda: [], {}, ValueError),
    (lambda: "premium", {}, TypeError),
    (lambda: None, {}, TypeError),
    (lambda: {ServiceTier("a", 1)}, {}, TypeError),  # a set has no order
    (lambda: [ServiceTier("a", 1), ("b", 0)], {}, TypeError),
    (lambda: [ServiceTier("a", 1), ServiceTier("a", 0)], {}, ValueError),  # two tiers called a
    (lambda: [ServiceTier("a", 1), ServiceTier("b", 1)], {}, ValueError),  # one class for two tiers
    (lambda: [ServiceTier("a", 2, 0.5), ServiceTier("b", 1, 0.5), ServiceTier("c", 0)], {}, ValueError),  # exactly 100%
    (lambda: [ServiceTier("a", 2, 0.75), ServiceTier("b", 1, 0.25)], {}, ValueError),
    (lambda: [ServiceTier("a", 2, 0.7), ServiceTier("b", 1, 0.2), ServiceTier("c", 0, 0.1)], {}, ValueError),  # 1 in floats
    (lambda: [ServiceTier("a", 2, 0.9), ServiceTier("b", 1, 0.6)], {}, ValueError),
    (lambda: three_tiers(), {"default": "gold"}, UnknownTierError),
    (lambda: three_tiers(), {"default": ""}, ValueError),
    (lambda: three_tiers(), {"default": 1}, TypeError),
]


@pytest.mark.parametrize(("rows", "options", "kind"), TABLES, ids=range(len(TABLES)))
def test_tier_table_rejects(impl, rows, options, kind):
    with pytest.raises(kind) as info:
        impl.TierTable(rows(), **options)
    assert str(info.value)


def test_tier_table_message_says_what_to_do(impl):
    with pytest.raises(ValueError, match="(?i)nothing would be left"):
        impl.TierTable([ServiceTier("a", 1, 0.5), ServiceTier("b", 0, 0.5)])
    with pytest.raises(ValueError, match="one tier"):
        impl.TierTable([ServiceTier("a", 1), ServiceTier("b", 1)])


@pytest.mark.parametrize(("call", "kind"), [
    (lambda t: t.tier("gold"), UnknownTierError),
    (lambda t: t.tier(3), TypeError),
    (lambda t: t.reserved_slots("premium", 0), ValueError),
    (lambda t: t.reserved_slots("premium", 2.0), TypeError),
    (lambda t: t.reserved_slots("premium", True), TypeError),
    (lambda t: t.reserved_slots("gold", 4), UnknownTierError),
    (lambda t: t.limit("free", -1, 4), ValueError),
    (lambda t: t.limit("free", NAN, 4), ValueError),
    (lambda t: t.limit("free", "4", 4), TypeError),
    (lambda t: t.limit("free", True, 4), TypeError),
    (lambda t: t.limit("free", 4, 0), ValueError),
    (lambda t: t.limit("gold", 4, 4), UnknownTierError),
])  # fmt: skip
def test_tier_table_calls_reject(impl, call, kind):
    table = impl.TierTable(three_tiers())
    with pytest.raises(kind):
        call(table)
    assert table.limit("free", 4, 4) == 3


# -- token bucket ---------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "kind"), [
    ((0, 1), ValueError), ((-1, 1), ValueError), ((NAN, 1), ValueError), ((INF, 1), ValueError), ((True, 1), TypeError),
    ((1, 0), ValueError), ((1, -2), ValueError), ((1, NAN), ValueError), ((1, "5"), TypeError), ((1, 5, NAN), ValueError),
    ((1, 5, "0"), TypeError), ((1, 5, None), TypeError),
])  # fmt: skip
def test_token_bucket_construction_rejects(impl, args, kind):
    with pytest.raises(kind):
        impl.TokenBucket(*args)


def bucket(impl):
    b = impl.TokenBucket(rate=1.0, burst=5.0, now=0.0)
    b.take(3, 2.0)  # level 2 at t = 2
    return b


@pytest.mark.parametrize(("call", "kind"), [
    (lambda b: b.take(6, 2.0), RequestTooLargeError),
    (lambda b: b.wait(5.5, 2.0), RequestTooLargeError),
    (lambda b: b.take(-1, 2.0), ValueError),
    (lambda b: b.take(NAN, 2.0), ValueError),
    (lambda b: b.take(True, 2.0), TypeError),
    (lambda b: b.take("1", 2.0), TypeError),
    (lambda b: b.take(1, 1.0), TimeWentBackwardsError),
    (lambda b: b.level(1.9), TimeWentBackwardsError),
    (lambda b: b.wait(1, NAN), ValueError),
    (lambda b: b.take(1, INF), ValueError),
    (lambda b: b.take(1, None), TypeError),
])  # fmt: skip
def test_token_bucket_calls_reject_and_charge_nothing(impl, call, kind):
    b = bucket(impl)
    with pytest.raises(kind):
        call(b)
    assert b.level(2.0) == pytest.approx(2.0)


# -- rate limiter and admission -------------------------------------------------------------


def limited_table(impl):
    return impl.TierTable(three_tiers(tenant=RateLimit(60, 600, burst_seconds=2.0), tier=RateLimit(600, None)))


@pytest.mark.parametrize(("build", "kind"), [
    (lambda impl, t: impl.RateLimiter(three_tiers()), TypeError),
    (lambda impl, t: impl.RateLimiter(t, max_tenants=0), ValueError),
    (lambda impl, t: impl.RateLimiter(t, max_tenants=True), TypeError),
    (lambda impl, t: impl.RateLimiter(t, max_tenants=10.0), TypeError),
    (lambda impl, t: impl.TierAdmission(None), TypeError),
    (lambda impl, t: impl.TierAdmission(t, limiter=object()), TypeError),
    (lambda impl, t: impl.TierAdmission(t, impl.RateLimiter(limited_table(impl))), ValueError),  # another table's limiter
])  # fmt: skip
def test_limiter_and_admission_construction_rejects(impl, build, kind):
    with pytest.raises(kind):
        build(impl, limited_table(impl))


LIMITER_CALLS = [
    (lambda: "r", 1.0, TypeError),
    (lambda: Request("x", 10, tier="gold", tenant="a"), 1.0, UnknownTierError),
    (lambda: Request("x", 21, tier="free", tenant="a"), 1.0, RequestTooLargeError),  # the tenant holds 20 tokens
    (lambda: Request("x", 21, tier="free", tenant="new"), 1.0, RequestTooLargeError),  # a new tenant's bucket too
    (lambda: Request("x", 10, tier="free", tenant="a"), 0.5, TimeWentBackwardsError),
    (lambda: Request("x", 10, tier="free", tenant="a"), NAN, ValueError),
    (lambda: Request("x", 10, tier="free", tenant="a"), "1", TypeError),
    (lambda: Request("x", 10, tier="free", tenant="a"), True, TypeError),
]


@pytest.mark.parametrize(("request_", "now", "kind"), LIMITER_CALLS, ids=range(len(LIMITER_CALLS)))
def test_limiter_check_rejects_and_changes_nothing(impl, request_, now, kind):
    lim = impl.RateLimiter(limited_table(impl))
    assert lim.check(Request("a0", 15, tier="free", tenant="a"), 1.0) == 0.0
    before = (lim.stats(), lim.tenants())
    with pytest.raises(kind) as info:
        lim.check(request_(), now)
    assert str(info.value)
    assert (lim.stats(), lim.tenants()) == before
    # tenant a still holds 5 of its 20 tokens at t = 1: 6 must wait, 5 fits
    assert lim.check(Request("a1", 6, tier="free", tenant="a"), 1.0) > 0
    assert lim.check(Request("a2", 5, tier="free", tenant="a"), 1.0) == 0.0


@pytest.mark.parametrize(("wait", "kind"), [(-1.0, ValueError), (NAN, ValueError), (INF, ValueError), ("2", TypeError),
                                            (None, TypeError), (True, TypeError)])  # fmt: skip
def test_retry_after_rejects(impl, wait, kind):
    lim = impl.RateLimiter(limited_table(impl))
    with pytest.raises(kind):
        lim.retry_after(wait)


@pytest.mark.parametrize(("request_", "now", "kind"), LIMITER_CALLS, ids=range(len(LIMITER_CALLS)))
def test_admission_rejects_and_changes_nothing(impl, request_, now, kind):
    table = limited_table(impl)
    admit = impl.TierAdmission(table, impl.RateLimiter(table))
    assert admit(Request("a0", 15, tier="free", tenant="a"), 1.0) is None
    before = (admit.stats(), admit.limiter.stats())
    with pytest.raises(kind):
        admit(request_(), now)
    assert (admit.stats(), admit.limiter.stats()) == before


# -- routing --------------------------------------------------------------------------------


@pytest.mark.parametrize("table", [None, three_tiers(), "standard"])
def test_tier_routing_needs_a_table(impl, table):
    with pytest.raises(TypeError):
        impl.TierRouting(table)


def test_unknown_tier_in_fits_and_waiting_class(impl):
    r = Router(impl.TierRouting(impl.TierTable(three_tiers())))
    r.add_server("a", 4, 80)
    with pytest.raises(UnknownTierError):
        r.strategy.fits(r.server("a"), Request("x", 1, tier="gold"))
    with pytest.raises(UnknownTierError):
        r.strategy.waiting_class(Request("x", 1, tier="gold"))
    assert r.get_server_stats()["a"]["current_load"] == 0


# -- preemptor ------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "kind"), [
    ({"max_preemptions": -1}, ValueError), ({"max_preemptions": 1.5}, TypeError), ({"max_preemptions": True}, TypeError),
    ({"mode": "evict"}, ValueError), ({"mode": None}, TypeError), ({"mode": 1}, TypeError),
])  # fmt: skip
def test_preemptor_construction_rejects(impl, options, kind):
    with pytest.raises(kind):
        impl.Preemptor(impl.TierTable(three_tiers()), **options)


def test_preemptor_needs_a_table(impl):
    with pytest.raises(TypeError):
        impl.Preemptor(three_tiers())


def preemptor_state(p):
    return p.stats(), p.preemptions("b0"), p.victim(Request("p", 1, tier="premium"), lambda sid: True)


@pytest.mark.parametrize(("call", "kind"), [
    (lambda p: p.started(Request("b0", 1, tier="batch"), "b"), ValueError),  # already running
    (lambda p: p.started(Request("x", 1, tier="gold"), "a"), UnknownTierError),
    (lambda p: p.started(Request("x", 1, tier="batch"), ""), ValueError),
    (lambda p: p.started("x", "a"), TypeError),
    (lambda p: p.preempt("nobody"), UnknownRequestError),
    (lambda p: p.preempt("f0"), ValueError),  # free is not preemptible
    (lambda p: p.preempt(""), ValueError),
    (lambda p: p.stopped(3), TypeError),
    (lambda p: p.victim(Request("p", 1, tier="premium"), "a"), TypeError),
    (lambda p: p.victim(Request("p", 1, tier="gold"), lambda sid: True), UnknownTierError),
    (lambda p: p.victim("p", lambda sid: True), TypeError),
])  # fmt: skip
def test_preemptor_calls_reject_and_change_nothing(impl, call, kind):
    p = impl.Preemptor(impl.TierTable(three_tiers()))
    p.started(Request("b0", 1, tier="batch"), "a")
    p.started(Request("f0", 1, tier="free"), "a")
    before = preemptor_state(p)
    with pytest.raises(kind) as info:
        call(p)
    assert str(info.value)
    assert preemptor_state(p) == before


def test_a_preemption_at_the_bound_is_refused(impl):
    p = impl.Preemptor(impl.TierTable(three_tiers()), max_preemptions=1)
    p.started(Request("b0", 1, tier="batch"), "a")
    p.preempt("b0")
    p.started(Request("b0", 1, tier="batch"), "a")
    with pytest.raises(ValueError):
        p.preempt("b0")
    assert p.preemptions("b0") == 1 and math.isfinite(p.stats()["preempted"])
