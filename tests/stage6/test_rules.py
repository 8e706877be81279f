"""Stage 6's rules, one test each: the tier table, reservation, token buckets, rate limits, admission, pools,
SLA routing, preemption.

Each test states the rule it checks (the docstrings of ``tiers.py`` teach
them) and builds the smallest situation where a wrong implementation answers
differently.
"""

from __future__ import annotations

import math

import pytest

from solution.core.errors import NoCapacityError, RequestTooLargeError, UnknownTierError
from solution.core.latency import REFERENCE_MODEL
from solution.core.path import Dispatched, Queued, Rejected, RequestPath
from solution.core.queue_types import QueuePolicy
from solution.core.request import Request
from solution.core.routing import Router
from solution.core.tier_types import RateLimit, ServiceTier
from tests.stage6.tables import load_tiers, three_tiers

pytestmark = pytest.mark.stage6


def req(rid, tier=None, tokens=100, prompt=None, tenant=None):
    return Request(rid, tokens, prompt, tier=tier, tenant=tenant)


def router(impl, rows=None, servers=(("a", 4),), **table_options):
    table = impl.TierTable(rows if rows is not None else three_tiers(), **table_options)
    r = Router(impl.TierRouting(table))
    for spec in servers:
        sid, cap, *rest = spec
        pool = rest[0] if rest else "shared"
        r.add_server(sid, cap, 80, pool=pool)
    return r, table


# -- the tier table -------------------------------------------------------------------------


def test_lookup_by_name_and_the_default_tier(impl):
    """tier(name) is that row; tier(None) is the default: the first tier listed, unless default= names one."""
    rows = three_tiers()
    table = impl.TierTable(rows)
    assert table.tier("batch") is rows[2] and table.tier(None) is rows[0] and table.default == "premium"
    named = impl.TierTable(rows, default="free")
    assert named.tier(None) is rows[1] and named.default == "free"
    assert tuple(table.names) == ("premium", "free", "batch")


def test_by_class_is_highest_first_whatever_the_order_given(impl):
    rows = [ServiceTier("low", 0), ServiceTier("top", 7), ServiceTier("mid", 3)]
    assert [t.name for t in impl.TierTable(rows).by_class] == ["top", "mid", "low"]


def test_unknown_tier_names_the_known_ones(impl):
    table = impl.TierTable(three_tiers())
    with pytest.raises(UnknownTierError) as info:
        table.tier("gold")
    assert isinstance(info.value, ValueError)
    assert "gold" in str(info.value) and "premium" in str(info.value)


def test_standard_table_is_the_course_default(impl):
    table = impl.TierTable.standard()
    premium, free, batch = (table.tier(n) for n in ("premium", "free", "batch"))
    assert premium.queue_class > free.queue_class > batch.queue_class
    assert premium.reserved_share == 0.25 and premium.routing == "predictive" and premium.may_preempt
    assert free.routing == "load" and batch.preemptible and not premium.preemptible
    assert table.default == "free"


# -- reservation ----------------------------------------------------------------------------


def test_reserved_slots_round_up_the_table_for_capacity_1_to_8(impl):
    """ceil(share * c): a floor on every server, so 25% of one slot is one slot."""
    table = impl.TierTable(three_tiers())
    assert [table.reserved_slots("premium", c) for c in range(1, 9)] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert [table.reserved_slots("free", c) for c in range(1, 9)] == [0] * 8


def test_reserved_slots_absorb_float_error(impl):
    """0.1 * 30 is 3.0000000000000004 in floats: still 3 slots, not 4."""
    table = impl.TierTable([ServiceTier("p", 1, 0.1), ServiceTier("f", 0)])
    assert table.reserved_slots("p", 30) == 3
    assert table.reserved_slots("p", 31) == 4


def test_limit_subtracts_only_the_reservations_of_higher_classes(impl):
    """limit(t) = L - reserved slots of the classes above t: premium sees all, free loses premium's, batch loses both."""
    table = impl.TierTable(three_tiers(premium_share=0.25, free_share=0.1))
    assert table.limit("premium", 10, 10) == 10
    assert table.limit("free", 10, 10) == 10 - 3
    assert table.limit("batch", 10, 10) == 10 - 3 - 1


def test_limit_uses_the_effective_limit_and_the_nominal_capacity(impl):
    """A health weight halves L, the reservation stays a share of the batch as added; never below 0; inf stays inf."""
    table = impl.TierTable(three_tiers())
    assert table.limit("free", 4, 8) == 2
    assert table.limit("free", 1, 8) == 0
    assert table.limit("free", math.inf, 8) == math.inf


def test_free_sees_a_server_full_at_75_percent_and_premium_takes_the_rest(impl, no_capacity):
    r, _ = router(impl, servers=[("a", 4)])
    assert [r.route(req(f"f{i}", "free")) for i in range(3)] == ["a"] * 3
    with no_capacity():
        r.route(req("f3", "free"))
    with no_capacity():
        r.route(req("b0", "batch"))
    assert r.route(req("p0", "premium")) == "a"
    assert r.get_server_stats()["a"]["current_load"] == 4


def test_a_capacity_1_server_serves_premium_only(impl, no_capacity):
    r, _ = router(impl, servers=[("tiny", 1)])
    with no_capacity():
        r.route(req("f", "free"))
    assert r.route(req("p", "premium")) == "tiny"


def test_a_higher_class_borrows_a_lower_reservation_never_the_reverse(impl, no_capacity):
    """free holds 25% (for itself and premium); premium may use it, batch may not."""
    rows = [ServiceTier("premium", 2, 0.0, routing="load"), ServiceTier("free", 1, 0.25), ServiceTier("batch", 0)]
    r, _ = router(impl, rows, servers=[("a", 4)])
    assert [r.route(req(f"b{i}", "batch")) for i in range(3)] == ["a"] * 3
    with no_capacity():
        r.route(req("b3", "batch"))
    assert r.route(req("p", "premium")) == "a"


def test_the_health_weight_shrinks_what_every_tier_sees(impl, no_capacity):
    r, _ = router(impl, servers=[("a", 8)])
    r.set_weight("a", 0.5)  # effective capacity 4; premium still keeps 2 of the nominal 8
    assert [r.route(req(f"f{i}", "free")) for i in range(2)] == ["a", "a"]
    with no_capacity():
        r.route(req("f2", "free"))
    assert r.route(req("p", "premium")) == "a"


# -- pools ----------------------------------------------------------------------------------


def test_a_pinned_tier_uses_its_pool_first_then_spills_to_shared(impl):
    rows = three_tiers(premium_pool="gold")
    r, _ = router(impl, rows, servers=[("s", 4, "shared"), ("g", 1, "gold")])
    assert r.route(req("p0", "premium")) == "g"
    assert r.route(req("p1", "premium")) == "s"  # gold is full: spill


def test_without_spill_a_pinned_tier_stays_in_its_pool(impl, no_capacity):
    rows = three_tiers(premium_pool="gold", spill=False)
    r, _ = router(impl, rows, servers=[("s", 4, "shared"), ("g", 1, "gold")])
    assert r.route(req("p0", "premium")) == "g"
    with no_capacity():
        r.route(req("p1", "premium"))


def test_other_tiers_never_use_a_named_pool(impl, no_capacity):
    """An idle premium pool stays idle for free work: that is what premium pays for."""
    rows = three_tiers(premium_pool="gold")
    r, _ = router(impl, rows, servers=[("s", 1, "shared"), ("g", 8, "gold")])
    with no_capacity():
        r.route(req("f", "free"))  # the shared server's one slot is premium's
    with no_capacity():
        r.route(req("b", "batch"))
    assert r.get_server_stats()["g"]["current_load"] == 0
    assert r.route(req("p", "premium")) == "g"


def test_servers_in_a_pool_no_tier_uses_are_never_chosen(impl, no_capacity):
    r, _ = router(impl, servers=[("x", 4, "experimental")])
    with no_capacity():
        r.route(req("p", "premium"))


# -- SLA routing ----------------------------------------------------------------------------


def test_premium_goes_where_its_predicted_latency_is_lowest(impl):
    """Predictive: a fast server with more requests beats an idle slow one for a long answer."""
    table = impl.TierTable(three_tiers())
    r = Router(impl.TierRouting(table), models={"slow": REFERENCE_MODEL.scaled(0.25), "fast": REFERENCE_MODEL.scaled(4.0)})
    r.add_server("slow", 8, 80)
    r.add_server("fast", 8, 80)
    r.route(req("f0", "free"))
    r.route(req("f1", "free"))
    assert r.get_server_stats()["slow"]["current_load"] == 1  # free goes by load: one each
    assert r.route(req("p", "premium", tokens=600, prompt=100)) == "fast"


def test_predictive_ties_go_to_the_lower_load_then_the_server_added_first(impl):
    r, _ = router(impl, servers=[("a", 4), ("b", 4)])
    assert r.route(req("p0", "premium")) == "a"
    assert r.route(req("p1", "premium")) == "b"


def test_load_routing_divides_by_the_tiers_own_limit(impl):
    """free on a (4 slots, 3 for free) and b (5 slots, ceil(1.25) = 2 reserved: 3 for free), one request each:
    1/3 against 1/3, a tie, so a (added first); plain load / capacity would pick b (1/5 < 1/4)."""
    r, _ = router(impl, servers=[("a", 4), ("b", 5)])
    r.route(req("x", "free"))
    r.route(req("y", "free"))
    assert r.route(req("z", "free")) == "a"


def test_load_routing_prefers_the_lowest_share_of_the_tiers_slots(impl):
    r, _ = router(impl, load_tiers(), servers=[("a", 4), ("b", 8)])
    placed = [r.route(req(f"f{i}", "free")) for i in range(9)]
    assert placed.count("a") == 3 and placed.count("b") == 6  # free's limits: 3 and 6


def test_large_requests_go_to_big_servers_only(impl, no_capacity):
    table = impl.TierTable(three_tiers())
    r = Router(impl.TierRouting(table))
    r.add_server("small", 8, 24)
    with no_capacity():
        r.route(req("big", "premium", tokens=10_000))
    r.add_server("big", 8, 80)
    assert r.route(req("big", "premium", tokens=10_000)) == "big"


def test_draining_servers_take_nothing(impl, no_capacity):
    r, _ = router(impl, servers=[("a", 4), ("b", 4)])
    r.route(req("f", "free"))
    r.remove_server("a")
    assert r.route(req("p", "premium")) == "b"
    r.remove_server("b")
    with no_capacity():
        r.route(req("p2", "premium"))


def test_an_unknown_tier_is_refused_and_nothing_is_recorded(impl):
    r, _ = router(impl)
    with pytest.raises(UnknownTierError):
        r.route(req("x", "gold"))
    assert r.get_server_stats()["a"]["current_load"] == 0


class CountingRouter(Router):
    """A router that counts how often a strategy asks about single servers (a scan asks about every one)."""

    asked = 0

    def available(self, server):
        self.asked += 1
        return super().available(server)

    def eligible(self, server, request):
        self.asked += 1
        return super().eligible(server, request)

    def limit(self, server):
        self.asked += 1
        return super().limit(server)


@pytest.mark.parametrize("tier", ["premium", "free"])
def test_a_decision_is_not_a_scan_of_the_fleet(impl, tier):
    """An index per (tier, pool, latency model): a decision asks about a few servers, not all 512."""
    r = CountingRouter(impl.TierRouting(impl.TierTable(three_tiers())), speeds={f"s{k}": 1.0 + k % 2 for k in range(512)})
    for k in range(512):
        r.add_server(f"s{k}", 4, 80)
    for i in range(300):
        r.route(req(f"w{i}", "batch"))
    r.asked = 0
    r.strategy.choose(req("x", tier))
    assert r.asked < 40, f"one {tier} decision asked about servers {r.asked} times: a scan of the fleet?"


def test_fits_and_waiting_class_follow_the_tier(impl):
    r, table = router(impl, servers=[("a", 4)])
    strategy = r.strategy
    for i in range(3):
        r.route(req(f"f{i}", "free"))
    server = r.server("a")
    assert not strategy.fits(server, req("q", "free")) and strategy.fits(server, req("q", "premium"))
    assert strategy.waiting_class(req("q", "batch")) == table.tier("batch").queue_class
    assert strategy.waiting_class(req("q")) == table.tier(None).queue_class


def test_explain_names_the_reservation_and_changes_nothing(impl):
    r, _ = router(impl, servers=[("a", 4), ("b", 4, "gold")])
    for i in range(3):
        r.route(req(f"f{i}", "free"))
    d = r.explain(req("q", "free"))
    assert d.chosen is None
    reasons = dict(d.excluded)
    assert "reserved" in reasons["a"] and "pool" in reasons["b"]
    assert r.explain(req("q", "premium")).chosen == "a"
    assert r.get_server_stats()["a"]["current_load"] == 3


# -- token bucket ---------------------------------------------------------------------------


def test_a_bucket_starts_full_and_refills_at_its_rate_up_to_burst(impl):
    b = impl.TokenBucket(rate=2.0, burst=10.0, now=5.0)
    assert b.level(5.0) == 10.0
    assert b.take(10, 5.0) == 0.0
    assert b.level(6.0) == pytest.approx(2.0)
    assert b.level(100.0) == 10.0


def test_take_charges_only_when_it_fits(impl):
    b = impl.TokenBucket(rate=1.0, burst=5.0)
    assert b.take(4, 0.0) == 0.0
    assert b.take(3, 0.0) == pytest.approx(2.0)  # one left, three needed, one per second
    assert b.level(0.0) == pytest.approx(1.0)  # the refusal charged nothing
    assert b.take(1, 0.0) == 0.0


def test_wait_is_exact_not_rounded(impl):
    b = impl.TokenBucket(rate=4.0, burst=8.0)
    b.take(8, 0.0)
    assert b.wait(3, 0.0) == pytest.approx(0.75)
    assert b.wait(3, 0.5) == pytest.approx(0.25)
    assert b.wait(3, 0.75) == 0.0


def test_a_bucket_idle_for_burst_over_rate_is_full(impl):
    b = impl.TokenBucket(rate=3.0, burst=7.0)
    b.take(7, 1.0)
    assert b.level(1.0 + 7.0 / 3.0) == 7.0


def test_more_than_the_burst_is_too_large_not_a_wait(impl):
    b = impl.TokenBucket(rate=1.0, burst=5.0)
    with pytest.raises(RequestTooLargeError):
        b.take(6, 0.0)
    assert b.level(0.0) == 5.0


# -- rate limiter ---------------------------------------------------------------------------


def limiter(impl, *, tenant=None, tier=None, **options):
    table = impl.TierTable(three_tiers(tenant=tenant, tier=tier))
    return impl.RateLimiter(table, **options), table


def test_each_tenant_has_its_own_buckets(impl):
    lim, _ = limiter(impl, tenant=RateLimit(60, None, burst_seconds=2.0))  # 1 per second, 2 at once
    assert [lim.check(req(f"a{i}", "free", tenant="a"), 0.0) for i in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert lim.check(req("b0", "free", tenant="b"), 0.0) == 0.0


def test_tenant_limits_are_per_tier(impl):
    """The same tenant name in another tier is another tenant (only free has a tenant limit here)."""
    lim, _ = limiter(impl, tenant=RateLimit(60, None, burst_seconds=1.0))
    assert lim.check(req("a0", "free", tenant="acme"), 0.0) == 0.0
    assert lim.check(req("a1", "free", tenant="acme"), 0.0) > 0
    assert lim.check(req("a2", "premium", tenant="acme"), 0.0) == 0.0


def test_a_request_without_a_tenant_meets_only_the_tier_limit(impl):
    lim, _ = limiter(impl, tenant=RateLimit(60, None, burst_seconds=1.0), tier=RateLimit(120, None, burst_seconds=1.0))
    assert [lim.check(req(f"x{i}", "free"), 0.0) for i in range(3)] == [0.0, 0.0, pytest.approx(0.5)]


def test_the_tier_limit_is_shared_by_all_its_tenants(impl):
    lim, _ = limiter(impl, tier=RateLimit(60, None, burst_seconds=2.0))
    assert lim.check(req("a", "free", tenant="a"), 0.0) == 0.0
    assert lim.check(req("b", "free", tenant="b"), 0.0) == 0.0
    assert lim.check(req("c", "free", tenant="c"), 0.0) == pytest.approx(1.0)


def test_all_or_nothing_a_refusal_charges_no_bucket(impl):
    """Tenant a is out of requests; its refused request must not eat the tier's tokens."""
    lim, _ = limiter(impl, tenant=RateLimit(60, None, burst_seconds=1.0), tier=RateLimit(None, 600, burst_seconds=1.0))
    assert lim.check(req("a0", "free", tokens=5, tenant="a"), 0.0) == 0.0  # tier tokens: 10 -> 5
    assert lim.check(req("a1", "free", tokens=5, tenant="a"), 0.0) > 0  # tenant a short: nothing charged
    assert lim.check(req("b0", "free", tokens=5, tenant="b"), 0.0) == 0.0  # so 5 tokens are still there


def test_the_wait_is_the_largest_over_the_short_buckets(impl):
    lim, _ = limiter(impl, tenant=RateLimit(60, 60, burst_seconds=10.0))  # 1 request/s (10), 1 token/s (10)
    assert lim.check(req("a0", "free", tokens=10, tenant="a"), 0.0) == 0.0  # tokens now 0, requests 9
    assert lim.check(req("a1", "free", tokens=4, tenant="a"), 0.0) == pytest.approx(4.0)
    assert lim.check(req("a2", "free", tokens=4, tenant="a"), 1.0) == pytest.approx(3.0)


def test_retry_after_is_the_ceiling_of_the_wait_at_least_one(impl):
    lim, _ = limiter(impl)
    assert [lim.retry_after(w) for w in (0.0, 0.2, 1.0, 1.0001, 2.5, 59.99)] == [1, 1, 1, 2, 3, 60]


def test_a_request_bigger_than_a_bucket_is_an_error_not_a_429(impl):
    lim, _ = limiter(impl, tenant=RateLimit(None, 600, burst_seconds=1.0))  # holds 10 tokens
    with pytest.raises(RequestTooLargeError) as info:
        lim.check(req("x", "free", tokens=11, tenant="a"), 0.0)
    assert isinstance(info.value, ValueError) and "x" in str(info.value)
    assert lim.check(req("y", "free", tokens=10, tenant="a"), 0.0) == 0.0  # nothing was charged
    assert lim.stats()["admitted"] == 1


def test_idle_tenants_are_forgotten_after_their_buckets_refill(impl):
    lim, _ = limiter(impl, tenant=RateLimit(60, None, burst_seconds=5.0))  # idle_after = 5 s
    for i in range(4):
        lim.check(req(f"r{i}", "free", tenant=f"t{i}"), float(i))
    assert lim.tenants() == 4
    lim.check(req("x", "free", tenant="t9"), 6.0)  # t0 (5 s idle at 5.0) and t1 (at 6.0) are forgotten
    assert lim.tenants() == 3 and lim.stats()["forgotten"] == 2
    lim.check(req("y", "free", tenant="t9"), 100.0)
    assert lim.tenants() == 1


def test_forgetting_at_exactly_idle_after_and_a_refusal_does_not_refresh(impl):
    lim, _ = limiter(impl, tenant=RateLimit(60, None, burst_seconds=2.0))  # idle_after = 2 s
    lim.check(req("a0", "free", tenant="a"), 0.0)
    lim.check(req("a1", "free", tenant="a"), 0.0)
    assert lim.check(req("a2", "free", tenant="a"), 0.5) > 0  # refused: a's last admission stays 0.0
    lim.check(req("b0", "free", tenant="b"), 1.0)
    assert lim.tenants() == 2
    lim.check(req("c0", "free", tenant="c"), 2.0)  # exactly 2 s after a's last admission
    assert lim.tenants() == 2 and lim.stats()["forgotten"] == 1


def test_forgetting_changes_nothing_a_returning_tenant_gets_a_full_burst(impl):
    lim, _ = limiter(impl, tenant=RateLimit(60, None, burst_seconds=3.0))
    assert [lim.check(req(f"a{i}", "free", tenant="a"), 0.0) for i in range(4)][-1] > 0
    assert [lim.check(req(f"b{i}", "free", tenant="a"), 3.0) for i in range(3)] == [0.0, 0.0, 0.0]


def test_the_tenant_bound_evicts_the_least_recently_admitted(impl):
    lim, _ = limiter(impl, tenant=RateLimit(60, None, burst_seconds=100.0), max_tenants=2)
    for t, tenant in enumerate(("a", "b", "a")):
        lim.check(req(f"r{t}", "free", tenant=tenant), float(t))
    lim.check(req("r3", "free", tenant="c"), 3.0)  # full: b (least recently admitted) goes
    assert lim.tenants() == 2 and lim.stats()["evicted"] == 1


def test_memory_is_bounded_by_active_tenants_not_tenants_ever_seen(impl):
    lim, _ = limiter(impl, tenant=RateLimit(600, None, burst_seconds=1.0))
    for i in range(2_000):
        lim.check(req(f"r{i}", "free", tenant=f"t{i}"), i * 0.01)
    assert lim.tenants() <= 101


def test_stats_count_admissions_and_the_bucket_that_refused(impl):
    lim, _ = limiter(impl, tenant=RateLimit(60, None, burst_seconds=1.0))
    lim.check(req("a", "free", tenant="a"), 0.0)
    lim.check(req("b", "free", tenant="a"), 0.0)
    s = lim.stats()
    assert s["admitted"] == 1 and s["limited"] == 1 and s["limited_by"]["tenant requests"] == 1
    assert s["by_tier"]["free"] == {"admitted": 1, "limited": 1}


# -- admission ------------------------------------------------------------------------------


def test_admission_answers_429_with_the_exact_retry_after(impl):
    table = impl.TierTable(three_tiers(tenant=RateLimit(60, None, burst_seconds=1.0)))
    admit = impl.TierAdmission(table, impl.RateLimiter(table))
    assert admit(req("a", "free", tenant="t"), 10.0) is None
    verdict = admit(req("b", "free", tenant="t"), 10.3)
    assert isinstance(verdict, Rejected) and verdict.status == 429 and verdict.retry_after == 1
    assert verdict.request_id == "b" and verdict.at == 10.3
    assert admit(req("c", "free", tenant="t"), 11.0) is None


def test_admission_without_a_limiter_only_checks_the_tier(impl):
    table = impl.TierTable(three_tiers())
    admit = impl.TierAdmission(table)
    assert all(admit(req(f"r{i}", "free", tenant="t"), 0.0) is None for i in range(100))
    with pytest.raises(UnknownTierError):
        admit(req("x", "gold"), 0.0)


def test_admission_raises_for_a_request_too_large(impl):
    table = impl.TierTable(three_tiers(tenant=RateLimit(None, 60, burst_seconds=10.0)))
    admit = impl.TierAdmission(table, impl.RateLimiter(table))
    with pytest.raises(RequestTooLargeError):
        admit(req("x", "free", tokens=11, tenant="t"), 0.0)


def test_tier_routing_and_admission_work_through_the_request_path(impl):
    table = impl.TierTable(three_tiers(tenant=RateLimit(60, None, burst_seconds=2.0)))
    path = RequestPath(Router(impl.TierRouting(table)), queue=QueuePolicy(), tiers=table,
                       admission=impl.TierAdmission(table, impl.RateLimiter(table)))  # fmt: skip
    path.add_server("a", 4, 80, 0.0)
    got = [path.submit(req(f"f{i}", "free", tenant=f"t{i}"), 0.0)[-1] for i in range(4)]
    assert [type(o) for o in got] == [Dispatched, Dispatched, Dispatched, Queued]
    assert isinstance(path.submit(req("p", "premium"), 0.0)[-1], Dispatched)
    path.submit(req("g0", "free", tenant="greedy"), 0.0)
    path.submit(req("g1", "free", tenant="greedy"), 0.0)
    refused = path.submit(req("g2", "free", tenant="greedy"), 0.0)[-1]
    assert isinstance(refused, Rejected) and refused.status == 429 and refused.retry_after == 1


# -- preemption -----------------------------------------------------------------------------


def preemptor(impl, **options):
    table = impl.TierTable(three_tiers())
    return impl.Preemptor(table, **options)


def everywhere(server_id):
    return True


def test_the_victim_is_the_newest_preemptible_request(impl):
    p = preemptor(impl)
    for i, sid in enumerate(("a", "b", "a")):
        p.started(req(f"b{i}", "batch"), sid)
    p.started(req("f0", "free"), "b")  # newer, but free is not preemptible
    assert p.victim(req("p", "premium"), everywhere) == ("b2", "a")


def test_the_victim_must_be_on_a_server_the_requester_may_use(impl):
    p = preemptor(impl)
    p.started(req("b0", "batch"), "a")
    p.started(req("b1", "batch"), "b")
    assert p.victim(req("p", "premium"), lambda sid: sid == "a") == ("b0", "a")
    assert p.victim(req("p", "premium"), lambda sid: False) is None


def test_only_a_tier_that_may_preempt_gets_a_victim(impl):
    p = preemptor(impl)
    p.started(req("b0", "batch"), "a")
    assert p.victim(req("f", "free"), everywhere) is None


def test_never_a_victim_of_the_same_or_a_higher_class(impl):
    rows = [ServiceTier("gold", 2, may_preempt=True, preemptible=True), ServiceTier("low", 0, preemptible=True)]
    p = impl.Preemptor(impl.TierTable(rows))
    p.started(req("g0", "gold"), "a")
    assert p.victim(req("g1", "gold"), everywhere) is None
    p.started(req("l0", "low"), "a")
    assert p.victim(req("g1", "gold"), everywhere) == ("l0", "a")


def test_preempt_counts_and_the_bound_stops_starvation(impl):
    p = preemptor(impl, max_preemptions=2)
    for round_ in range(2):
        p.started(req("b", "batch"), "a")
        assert p.victim(req(f"p{round_}", "premium"), everywhere) == ("b", "a")
        assert p.preempt("b") == round_ + 1
    p.started(req("b", "batch"), "a")
    assert p.victim(req("p9", "premium"), everywhere) is None  # preempted twice: it runs to the end
    assert p.preemptions("b") == 2 and p.stats()["preempted"] == 2


def test_a_preempted_request_resumed_is_the_newest_again(impl):
    p = preemptor(impl)
    p.started(req("old", "batch"), "a")
    p.started(req("new", "batch"), "a")
    p.preempt("new")
    p.started(req("new", "batch"), "b")  # resumed elsewhere
    assert p.victim(req("p", "premium"), everywhere) == ("new", "b")


def test_stopped_and_forgotten_requests_are_never_victims(impl):
    p = preemptor(impl)
    p.started(req("b0", "batch"), "a")
    p.started(req("b1", "batch"), "a")
    assert p.stopped("b1") is True and p.stopped("b1") is False
    assert p.victim(req("p", "premium"), everywhere) == ("b0", "a")
    p.preempt("b0")
    assert p.forget("b0") and p.preemptions("b0") == 0
    assert p.victim(req("p", "premium"), everywhere) is None


def test_zero_max_preemptions_never_preempts(impl):
    p = preemptor(impl, max_preemptions=0)
    p.started(req("b0", "batch"), "a")
    assert p.victim(req("p", "premium"), everywhere) is None


def test_mode_is_kept(impl):
    assert preemptor(impl, mode="swap").mode == "swap" and preemptor(impl).mode == "recompute"
