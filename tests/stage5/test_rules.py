"""Stage 5's rules, one test each: the session table, hard and soft affinity, bounded-load hashing, prefix-aware routing.

Each test states the rule it checks (the docstrings of ``affinity.py`` teach
them) and builds the smallest situation where a wrong implementation answers
differently.
"""

from __future__ import annotations

import math

import pytest

from solution.core.affinity_types import AffinityPolicy, RemapReason, stable_hash64
from solution.core.clock import ManualClock
from solution.core.errors import NoCapacityError, TimeWentBackwardsError, UnknownServerError
from solution.core.health_types import RetryPolicy
from solution.core.path import Delivered, Dispatched, RequestPath
from solution.core.request import Request
from solution.core.routing import RoundRobin, Router, StrategyInUseError
from tests.stage5.inner import LeastLoaded

pytestmark = pytest.mark.stage5


class CountingLC(LeastLoaded):
    """Least-connections that counts how often it is asked."""

    def __init__(self) -> None:
        self.calls = 0

    def choose(self, request):
        self.calls += 1
        return super().choose(request)


def req(rid, session=None, tokens=100, prompt=None, blocks=()):
    return Request(rid, tokens, prompt, session_id=session, prefix_blocks=tuple(blocks))


def affinity_router(impl, mode="soft", slack=0.25, ttl=100.0, servers=(("a", 4, 80), ("b", 4, 80)), inner=None, **kw):
    clock = ManualClock()
    inner = inner if inner is not None else LeastLoaded()
    strategy = impl.SessionAffinity(inner, AffinityPolicy(mode, slack=slack, ttl=ttl, **kw), clock=clock)
    router = Router(strategy)
    for sid, cap, mem in servers:
        router.add_server(sid, cap, mem)
    return router, strategy, clock


# --- SessionTable --------------------------------------------------------------------------------


def test_table_ttl_is_idle_and_exact(impl):
    t = impl.SessionTable(ttl=10.0)
    t.assign("s", "a", 0.0)
    assert t.expires_at("s") == 10.0
    assert t.get("s", 9.5) == "a"  # a hit refreshes: now expires at 19.5
    assert t.expires_at("s") == 19.5
    assert t.peek("s", 19.4) == "a"
    assert t.peek("s", 19.5) is None  # expired exactly at last use + ttl
    assert t.get("s", 19.5) is None
    assert "s" not in t and len(t) == 0
    assert t.stats() == {"sessions": 0, "hits": 1, "misses": 1, "expired": 1, "evicted": 0, "remapped": 0}


def test_table_peek_does_not_refresh(impl):
    t = impl.SessionTable(ttl=10.0)
    t.assign("s", "a", 0.0)
    assert t.peek("s", 9.0) == "a"
    assert t.expires_at("s") == 10.0
    assert t.get("s", 10.0) is None
    assert t.stats()["hits"] == 0


def test_table_expire_drops_exactly_the_expired(impl):
    t = impl.SessionTable(ttl=10.0)
    for i, at in enumerate([0.0, 1.0, 2.0, 3.0]):
        t.assign(f"s{i}", "a", at)
    t.get("s0", 3.0)  # refreshed: expires at 13
    assert t.expire(11.0) == 1  # s1 expires at 11.0 (dropped); s2 at 12.0 (kept)
    assert list(t.sessions()) == ["s2", "s3", "s0"]  # least recently used first
    assert t.expire(12.5) == 1 and list(t.sessions()) == ["s3", "s0"]


def test_table_expire_counts(impl):
    t = impl.SessionTable(ttl=5.0)
    t.assign("x", "a", 0.0)
    t.assign("y", "b", 1.0)
    assert t.expire(4.99) == 0
    assert t.expire(6.0) == 2
    assert t.stats()["expired"] == 2 and len(t) == 0


def test_table_evicts_least_recently_used(impl):
    t = impl.SessionTable(ttl=100.0, max_sessions=3)
    t.assign("s1", "a", 0.0)
    t.assign("s2", "a", 1.0)
    t.assign("s3", "b", 2.0)
    t.get("s1", 3.0)  # s2 is now the least recently used
    t.assign("s4", "b", 4.0)
    assert "s2" not in t and {"s1", "s3", "s4"} == set(t.sessions())
    assert t.stats()["evicted"] == 1 and len(t) == 3
    t.assign("s3", "a", 5.0)  # a re-map of a held session evicts nothing
    assert t.stats()["evicted"] == 1 and len(t) == 3


def test_table_expiry_before_eviction(impl):
    t = impl.SessionTable(ttl=10.0, max_sessions=2)
    t.assign("old", "a", 0.0)
    t.assign("mid", "a", 5.0)
    t.assign("new", "a", 10.0)  # "old" expired at 10.0: dropped as expired, nobody evicted
    assert t.stats()["expired"] == 1 and t.stats()["evicted"] == 0
    assert list(t.sessions()) == ["mid", "new"]


def test_table_remap_counts_only_a_change(impl):
    t = impl.SessionTable()
    t.assign("s", "a", 0.0)
    t.assign("s", "a", 1.0)
    assert t.stats()["remapped"] == 0
    t.assign("s", "b", 2.0)
    assert t.stats()["remapped"] == 1 and t.sessions()["s"] == "b"
    assert t.servers() == {"b": 1}


def test_table_forget_and_forget_server(impl):
    t = impl.SessionTable()
    for i in range(5):
        t.assign(f"s{i}", "a" if i % 2 == 0 else "b", float(i))
    assert t.forget("s1") is True and t.forget("s1") is False
    assert t.forget_server("a") == 3
    assert list(t.sessions()) == ["s3"] and t.servers() == {"b": 1}
    assert t.forget_server("a") == 0


def test_table_time_must_not_go_back(impl):
    t = impl.SessionTable()
    t.assign("s", "a", 5.0)
    with pytest.raises(TimeWentBackwardsError):
        t.get("s", 4.0)
    with pytest.raises(TimeWentBackwardsError):
        t.assign("z", "a", 4.0)
    assert "z" not in t and t.stats()["hits"] == 0


def test_table_view_is_read_only_and_live(impl):
    t = impl.SessionTable()
    view = t.sessions()
    t.assign("s", "a", 0.0)
    assert dict(view) == {"s": "a"} and len(view) == 1
    with pytest.raises(TypeError):
        view["s"] = "b"  # type: ignore[index]
    assert t.ttl == 600.0 and t.max_sessions == 100_000


# --- SessionAffinity -------------------------------------------------------------------------------


def test_no_session_goes_to_the_inner_strategy_and_records_nothing(impl):
    router, aff, _ = affinity_router(impl)
    assert [router.route(req(f"r{i}")) for i in range(3)] == ["a", "b", "a"]
    assert len(aff.table) == 0 and aff.stats()["no_session"] == 3


def test_new_session_is_mapped_to_the_inner_pick(impl):
    router, aff, _ = affinity_router(impl, mode="hard")
    router.route(req("x"))  # a is busier now
    assert router.route(req("r1", "s")) == "b"
    assert dict(aff.sessions()) == {"s": "b"}
    router.route(req("y"))  # loads a 1, b 2 (r1, y): least-connections would pick a
    assert router.route(req("r2", "s")) == "b"
    st = aff.stats()
    assert st["new_sessions"] == 1 and st["sticky_hits"] == 1


def test_hard_full_waits_keeps_mapping_and_does_not_ask_inner(impl):
    inner = CountingLC()
    router, aff, _ = affinity_router(impl, mode="hard", servers=(("a", 1, 90), ("b", 4, 80)), inner=inner)
    assert router.route(req("r1", "s")) == "a"
    calls = inner.calls
    with pytest.raises(NoCapacityError):
        router.route(req("r2", "s"))
    assert inner.calls == calls  # hard: the inner strategy is not asked
    assert aff.sessions()["s"] == "a" and aff.stats()["hard_waits"] == 1 and aff.stats()["remapped"] == 0
    router.complete_request("r1")
    assert router.route(req("r2", "s")) == "a"


def test_soft_full_remaps(impl):
    router, aff, _ = affinity_router(impl, mode="soft", slack=math.inf, servers=(("a", 1, 90), ("b", 4, 80)))
    assert router.route(req("r1", "s", prompt=40)) == "a"
    assert router.route(req("r2", "s", prompt=60)) == "b"
    st = aff.stats()
    assert st["remaps"][RemapReason.FULL] == 1 and aff.sessions()["s"] == "b"
    assert st["recompute_tokens"] == 60


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_draining_sticky_server_remaps(impl, mode):
    router, aff, _ = affinity_router(impl, mode=mode)
    assert router.route(req("r1", "s")) == "a"
    router.remove_server("a")  # r1 still runs there: draining
    assert router.route(req("r2", "s")) == "b"
    assert aff.stats()["remaps"][RemapReason.DRAINING] == 1 and aff.sessions()["s"] == "b"


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_removed_sticky_server_remaps(impl, mode):
    router, aff, _ = affinity_router(impl, mode=mode)
    assert router.route(req("r1", "s")) == "a"
    router.complete_request("r1")
    router.remove_server("a")  # no request: gone at once
    assert router.route(req("r2", "s")) == "b"
    assert aff.stats()["remaps"][RemapReason.REMOVED] == 1


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_down_sticky_server_remaps(impl, mode):
    router, aff, _ = affinity_router(impl, mode=mode)
    assert router.route(req("r1", "s")) == "a"
    router.set_weight("a", 0.0)
    assert router.route(req("r2", "s")) == "b"
    assert aff.stats()["remaps"][RemapReason.DOWN] == 1 and aff.stats()["remapped"] == 1


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_small_sticky_server_and_large_request_remaps(impl, mode):
    router, aff, _ = affinity_router(impl, mode=mode, servers=(("small", 4, 40), ("big", 4, 80)))
    router.place(req("x"), "big")  # big is busier: the session starts on small
    assert router.route(req("r1", "s")) == "small"
    assert router.route(req("r2", "s", tokens=8000)) == "big"
    assert aff.stats()["remaps"][RemapReason.MEMORY] == 1


def test_unavailable_reason_order(impl):
    router, aff, _ = affinity_router(impl, servers=(("a", 1, 40), ("b", 4, 80)))
    small, large = req("q"), req("L", tokens=8000)
    assert aff.unavailable_reason("a", small) is None
    assert aff.unavailable_reason("a", large) == RemapReason.MEMORY
    router.place(req("r1"), "a")
    assert aff.unavailable_reason("a", small) == RemapReason.FULL
    router.set_weight("a", 0.0)
    assert aff.unavailable_reason("a", small) == RemapReason.DOWN
    router.remove_server("a")
    assert aff.unavailable_reason("a", small) == RemapReason.DRAINING
    router.complete_request("r1")
    assert aff.unavailable_reason("a", small) == RemapReason.REMOVED


@pytest.mark.parametrize("sticky_load,expected", [(2, "a"), (3, "b")])
def test_soft_slack_boundary(impl, sticky_load, expected):
    """Sticky at 2/4 = 0.5 against b at 1/4 = 0.25 + slack 0.25: stays (<=); at 3/4: re-mapped."""
    router, aff, _ = affinity_router(impl, mode="soft", slack=0.25)
    aff.pin("s", "a", 0.0)
    for i in range(sticky_load):
        router.place(req(f"a{i}"), "a")
    router.place(req("b0"), "b")
    assert router.route(req("r", "s")) == expected
    st = aff.stats()
    assert st["remaps"][RemapReason.IMBALANCE] == (expected == "b") and st["sticky_hits"] == (expected == "a")
    assert aff.sessions()["s"] == expected


def test_soft_uses_effective_capacity(impl):
    """Health weight 0.5 halves a's capacity: 2 requests are a load ratio of 1/2 -> 2/2... (4 * 0.5 = 2 slots)."""
    router, aff, _ = affinity_router(impl, mode="soft", slack=0.25)
    aff.pin("s", "a", 0.0)
    router.place(req("a0"), "a")
    router.set_weight("a", 0.5)  # effective capacity 2: load ratio 0.5, b 0.0 + 0.25 -> re-map
    assert router.route(req("r", "s")) == "b"
    assert aff.stats()["remaps"][RemapReason.IMBALANCE] == 1


def test_soft_asks_inner_once_hard_not_at_all(impl):
    inner = CountingLC()
    router, aff, _ = affinity_router(impl, mode="soft", slack=math.inf, inner=inner)
    router.route(req("r1", "s"))
    before = inner.calls
    router.route(req("r2", "s"))
    assert inner.calls == before + 1
    inner2 = CountingLC()
    router2, _, _ = affinity_router(impl, mode="hard", inner=inner2)
    router2.route(req("r1", "s"))
    before = inner2.calls
    router2.route(req("r2", "s"))
    assert inner2.calls == before


def test_session_expires_after_idle_ttl(impl):
    router, aff, clock = affinity_router(impl, mode="hard", ttl=10.0)
    assert router.route(req("r1", "s")) == "a"
    router.complete_request("r1")
    router.place(req("busy"), "a")  # a is busier: a new session would go to b
    clock.set(9.0)
    assert router.route(req("r2", "s")) == "a"  # still live; refreshed to expire at 19
    router.complete_request("r2")
    clock.set(19.0)
    assert router.route(req("r3", "s")) == "b"  # expired: a new session
    st = aff.stats()
    assert st["new_sessions"] == 2 and st["expired"] == 1 and st["remapped"] == 0


def test_table_bound_applies_through_the_strategy(impl):
    router, aff, _ = affinity_router(impl, mode="hard", max_sessions=2, servers=(("a", 8, 80),))
    for i in range(3):
        router.route(req(f"r{i}", f"s{i}"))
    assert len(aff.table) == 2 and aff.stats()["evicted"] == 1 and "s0" not in aff.sessions()


def test_pin(impl):
    router, aff, _ = affinity_router(impl, mode="hard")
    aff.pin("s", "b", 0.0)
    assert router.route(req("r", "s")) == "b"
    with pytest.raises(UnknownServerError):
        aff.pin("s", "zz", 1.0)
    with pytest.raises(KeyError):
        aff.pin("t", "zz", 1.0)
    assert dict(aff.sessions()) == {"s": "b"} and aff.stats()["pinned"] == 1


def test_hooks_are_forwarded_to_the_inner_strategy(impl):
    inner = LeastLoaded()
    router, aff, _ = affinity_router(impl, inner=inner)
    assert inner.router is router and aff.router is router
    router.place(req("x"), "a")
    assert inner.choose(req("q")).server_id == "b"  # the inner index saw a's new load
    router.add_server("c", 4, 80)
    router.place(req("y"), "b")
    assert inner.choose(req("q")).server_id == "c"


def test_one_strategy_one_router(impl):
    router, aff, clock = affinity_router(impl)
    with pytest.raises(StrategyInUseError):
        Router(aff)
    used = LeastLoaded()
    Router(used)
    with pytest.raises(StrategyInUseError):
        Router(impl.SessionAffinity(used, clock=clock))


def test_explain_changes_nothing(impl):
    router, aff, clock = affinity_router(impl, mode="soft", slack=0.0)
    router.route(req("r1", "s"))
    router.place(req("x"), "a")
    before = (aff.stats(), dict(aff.sessions()), aff.table.expires_at("s"))
    clock.set(5.0)
    d = router.explain(req("r2", "s"))
    assert d.chosen == "b"  # 2/4 > 0/4 + 0: soft would re-map
    assert (aff.stats(), dict(aff.sessions()), aff.table.expires_at("s")) == before


def test_affinity_stats_keys(impl):
    _, aff, _ = affinity_router(impl)
    st = aff.stats()
    assert set(st) == {"no_session", "new_sessions", "sticky_hits", "hard_waits", "remaps", "remapped",
                       "recompute_tokens", "pinned", "sessions", "expired", "evicted"}  # fmt: skip
    assert set(st["remaps"]) == set(RemapReason.ALL)


def test_resend_through_the_request_path_keeps_the_session(impl):
    """A lost server's request is re-sent with its session: the session is re-mapped (its server is down)."""
    clock = ManualClock()
    aff = impl.SessionAffinity(LeastLoaded(), AffinityPolicy("hard"), clock=clock)
    path = RequestPath(Router(aff), ledger=impl.RetryLedger(RetryPolicy(max_tries=2)))
    path.add_server("a", 4, 80, 0.0)
    path.add_server("b", 4, 80, 0.0)
    (first,) = path.submit(req("r1", "s"), 0.0)
    assert isinstance(first, Dispatched) and first.server_id == "a"
    out = path.server_lost("a", 1.0)
    assert [(type(o), o.server_id) for o in out] == [(Dispatched, "b")]
    assert aff.sessions()["s"] == "b" and aff.stats()["remaps"][RemapReason.DOWN] == 1
    assert isinstance(path.completed("r1", "b", 2.0)[0], Delivered)


# --- BoundedLoadHash -------------------------------------------------------------------------------


def hash_router(impl, n=4, cap=100, eps=0.25, vnodes=20, seed=0, mem=80):
    strategy = impl.BoundedLoadHash(eps, vnodes, seed=seed)
    router = Router(strategy)
    for i in range(n):
        router.add_server(f"g{i}", cap, mem)
    return router, strategy


def test_ring_points_are_blake2b(impl):
    _, h = hash_router(impl, n=3, vnodes=5, seed=7)
    pts = h.points()
    assert len(pts) == 15 and list(pts) == sorted(pts)
    assert set(pts) == {(stable_hash64(f"7/g{i}/{k}"), f"g{i}") for i in range(3) for k in range(5)}


def test_key_rule(impl):
    _, h = hash_router(impl)
    assert h.key_of(req("r", "sess", blocks=(5, 6))) == "sess"
    assert h.key_of(req("r", blocks=(5, 6))) == "5"
    assert h.key_of(req("r")) == "r"


def test_unloaded_request_goes_home(impl):
    router, h = hash_router(impl, n=5)
    for i, key in enumerate(["alpha", "beta", "gamma", "delta"]):
        point = stable_hash64(f"0/{key}")
        after = [p for p in h.points() if p[0] >= point]
        assert h.home(key) == (after[0] if after else h.points()[0])[1]
        assert router.route(req(f"r{i}", key)) == h.home(key)
        router.complete_request(f"r{i}")
    assert h.stats()["spills"] == 0


def test_bound_is_never_exceeded(impl):
    router, h = hash_router(impl, n=4, eps=0.25)
    for i in range(40):
        bound = h.bound()
        n_routable, total = 4, sum(s["current_load"] for s in router.get_server_stats().values())
        assert bound == math.ceil((1 + 0.25) * (total + 1) / n_routable)
        sid = router.route(req(f"r{i}", "hot"))  # one hot key: spills clockwise
        assert router.get_server_stats()[sid]["current_load"] <= bound
    loads = sorted(s["current_load"] for s in router.get_server_stats().values())
    assert loads[-1] <= math.ceil(1.25 * 40 / 4)
    assert h.stats()["spills"] > 0 and h.stats()["decisions"] == 40


def test_two_instances_agree_and_seeds_differ(impl):
    r1, h1 = hash_router(impl, n=6, seed=3)
    r2, h2 = hash_router(impl, n=6, seed=3)
    keys = [f"k{i}" for i in range(50)]
    assert [r1.route(req(f"r{i}", k)) for i, k in enumerate(keys)] == [r2.route(req(f"r{i}", k)) for i, k in enumerate(keys)]
    _, h3 = hash_router(impl, n=6, seed=4)
    assert h3.points() != h1.points()


def test_removing_a_server_moves_only_its_keys(impl):
    router, h = hash_router(impl, n=6, vnodes=30)
    keys = [f"k{i}" for i in range(300)]
    before = {k: h.home(k) for k in keys}
    router.remove_server("g2")
    after = {k: h.home(k) for k in keys}
    assert all(after[k] == before[k] for k in keys if before[k] != "g2")
    assert all(after[k] != "g2" for k in keys) and any(before[k] == "g2" for k in keys)
    assert len(h.points()) == 5 * 30


def test_down_and_draining_servers_are_skipped(impl):
    router, h = hash_router(impl, n=3)
    home = h.home("s")
    router.set_weight(home, 0.0)
    assert router.route(req("r1", "s")) != home
    router.set_weight(home, 1.0)
    router.place(req("pin"), home)
    router.remove_server(home)  # draining
    assert router.route(req("r2", "s")) != home


def test_refuses_at_once_when_every_server_is_full(impl):
    router, h = hash_router(impl, n=3, cap=1)
    for i in range(3):
        router.route(req(f"r{i}", f"k{i}"))
    examined = h.stats()["examined"]
    with pytest.raises(NoCapacityError):
        router.route(req("r9", "k9"))
    assert h.stats()["examined"] == examined and h.stats()["refused"] == 1


def test_large_request_needs_a_big_server(impl):
    strategy = impl.BoundedLoadHash(0.25, 10)
    router = Router(strategy)
    router.add_server("small", 4, 40)
    with pytest.raises(NoCapacityError):
        router.route(req("L", "s", tokens=8000))
    router.add_server("big", 4, 80)
    assert router.route(req("L", "s", tokens=8000)) == "big"


def test_hash_explain_changes_nothing(impl):
    router, h = hash_router(impl)
    router.route(req("r1", "k"))
    before = h.stats()
    d = router.explain(req("r2", "k"))
    assert d.chosen in {"g0", "g1", "g2", "g3"} and h.stats() == before


# --- PrefixAware -----------------------------------------------------------------------------------


def prefix_router(impl, slack=0.25, min_match=1, max_blocks=4096, servers=(("a", 4, 80), ("b", 4, 80), ("c", 4, 80)), inner=None):
    strategy = impl.PrefixAware(inner if inner is not None else LeastLoaded(), max_blocks_per_server=max_blocks,
                                slack=slack, min_match=min_match)  # fmt: skip
    router = Router(strategy)
    for sid, cap, mem in servers:
        router.add_server(sid, cap, mem)
    return router, strategy


def test_longest_prefix_wins(impl):
    router, p = prefix_router(impl, slack=math.inf)
    router.place(req("x"), "a")  # make least-connections prefer b, then c
    assert router.route(req("r1", blocks=(1, 2))) == "b"
    assert router.route(req("r2", blocks=(1, 2, 3))) == "b"  # b holds 1, 2
    assert router.route(req("r3", blocks=(9,))) == "c"  # no match: inner
    assert router.route(req("r4", blocks=(1, 2, 3, 4))) == "b"
    assert p.match(req("q", blocks=(1, 2, 3, 4, 5))) == (4, [router.server("b")])
    st = p.stats()
    assert st == {"requests": 4, "requested_blocks": 10, "matched_blocks": 5, "by_prefix": 2,
                  "fallback_imbalance": 0, "fallback_no_match": 2, "fallback_unavailable": 0, "no_blocks": 0}  # fmt: skip


def test_prefix_slack(impl):
    router, p = prefix_router(impl, slack=0.25)
    router.place(req("x"), "b")
    router.place(req("y"), "c")
    assert router.route(req("r1", blocks=(1,))) == "a"  # a holds block 1, load 1/4 now
    assert router.route(req("r2", blocks=(1,))) == "a"  # 1/4 <= 1/4 + 0.25 (the inner pick is a itself)
    assert router.route(req("r3", blocks=(1,))) == "a"  # 2/4 <= 1/4 + 0.25: the boundary stays
    assert router.route(req("r4", blocks=(1,))) == "b"  # 3/4 > 1/4 + 0.25: the inner pick
    assert p.stats()["fallback_imbalance"] == 1 and p.stats()["by_prefix"] == 2


def test_min_match(impl):
    router, p = prefix_router(impl, min_match=2, slack=math.inf)
    assert router.route(req("r1", blocks=(1, 2))) == "a"
    router.place(req("x"), "a")
    assert router.route(req("r2", blocks=(1, 7))) == "b"  # a match of 1 block < 2
    assert router.route(req("r3", blocks=(1, 2, 7))) == "a"
    assert p.stats()["fallback_no_match"] == 2 and p.stats()["by_prefix"] == 1


def test_index_bound_evicts_deep_blocks_first(impl):
    router, p = prefix_router(impl, max_blocks=3)
    router.route(req("r1", blocks=(1, 2, 3, 4, 5)))
    assert p.cached_blocks() == {"a": 3, "b": 0, "c": 0}
    assert p.held_prefix("a", (1, 2, 3, 4, 5)) == 3
    router.route(req("r2", blocks=(1, 9)))  # a again (holds 1): 9 is recorded, the LRU (3) evicted
    assert p.held_prefix("a", (1, 2, 3)) == 2 and p.held_prefix("a", (1, 9)) == 2


def test_full_holders_are_not_candidates(impl):
    router, p = prefix_router(impl, slack=math.inf, servers=(("a", 1, 90), ("b", 4, 80), ("c", 4, 80)))
    assert router.route(req("r1", blocks=(1, 2, 3))) == "a"  # a is now full
    router.place(req("x"), "b")
    assert p.match(req("q", blocks=(1, 2, 3))) == (3, [])  # a holds them but cannot take it
    assert router.route(req("r2", blocks=(1, 2, 3))) == "c"  # the inner pick
    assert p.stats()["fallback_unavailable"] == 1


def test_candidates_are_the_newest_holders_at_most_max_candidates(impl):
    """A system prompt's block held by every server: only the max_candidates newest holders are compared."""
    servers = tuple((f"g{i}", 4, 80) for i in range(5))
    strategy = impl.PrefixAware(RoundRobin(), slack=math.inf, min_match=2, max_candidates=2)
    router = Router(strategy)
    for sid, cap, mem in servers:
        router.add_server(sid, cap, mem)
    p = strategy
    for i in range(5):
        assert router.route(req(f"r{i}", blocks=(7, 100 + i))) == f"g{i}"  # one block matched < min_match: round-robin
    m, candidates = p.match(req("q", blocks=(7, 999)))
    assert m == 1 and [s.server_id for s in candidates] == ["g4", "g3"]
    m, candidates = p.match(req("q", blocks=(7, 102)))
    assert m == 2 and [s.server_id for s in candidates] == ["g2"]


def test_removed_server_leaves_the_index(impl):
    router, p = prefix_router(impl, slack=math.inf)
    router.route(req("r1", blocks=(1, 2)))
    router.complete_request("r1")
    router.remove_server("a")
    assert "a" not in p.cached_blocks()
    assert p.match(req("q", blocks=(1, 2))) == (0, [])


def test_no_blocks_goes_to_inner(impl):
    router, p = prefix_router(impl)
    assert router.route(req("r1")) == "a"
    assert p.stats()["no_blocks"] == 1 and p.cached_blocks() == {"a": 0, "b": 0, "c": 0}


def test_prefix_explain_changes_nothing(impl):
    router, p = prefix_router(impl)
    router.route(req("r1", blocks=(1, 2)))
    before = (p.stats(), p.cached_blocks())
    assert router.explain(req("r2", blocks=(1, 2))).chosen == "a"
    assert (p.stats(), p.cached_blocks()) == before


def test_wrappers_compose(impl):
    """Prefix-aware routing inside session affinity: a session's first turn uses the prefix, later turns stick."""
    clock = ManualClock()
    pa = impl.PrefixAware(RoundRobin(), slack=math.inf)
    router = Router(impl.SessionAffinity(pa, AffinityPolicy("hard"), clock=clock))
    for sid in "abc":
        router.add_server(sid, 4, 80)
    assert router.route(req("r1", "s1", blocks=(1,))) == "a"
    assert router.route(req("r2", "s2", blocks=(1, 2))) == "a"  # prefix match, not round-robin's b
    assert router.route(req("r3", "s2", blocks=(7,))) == "a"  # sticky
    assert pa.stats()["requests"] == 2


# --- hard affinity through the request path: waiting without head-of-line blocking ----------------


def hard_path(impl, max_wait=None, capacities=(("a", 1), ("b", 1))):
    from solution.core.queue_types import QueuePolicy

    clock, qclock = ManualClock(), ManualClock()
    aff = impl.SessionAffinity(LeastLoaded(), AffinityPolicy("hard"), clock=clock)
    queue = impl.RequestQueue(qclock, QueuePolicy(max_wait=max_wait))
    path = RequestPath(Router(aff), queue=queue, clock=qclock)
    for sid, cap in capacities:
        path.add_server(sid, cap, 80, 0.0)
    return path, aff, clock


def kinds(outcomes):
    return [(type(o).__name__, o.request_id, getattr(o, "server_id", None)) for o in outcomes]


def test_pinned_request_waits_without_blocking_the_queue(impl):
    path, aff, clock = hard_path(impl)
    assert kinds(path.submit(req("r1", "s"), 0.0)) == [("Dispatched", "r1", "a")]
    assert kinds(path.submit(req("x1"), 0.0)) == [("Dispatched", "x1", "b")]
    assert kinds(path.submit(req("r2", "s"), 0.0)) == [("Queued", "r2", None)]  # a is full: r2 waits for a
    assert kinds(path.submit(req("x2"), 0.0)) == [("Queued", "x2", None)]
    assert path.stats()["parked"] == 1 and path.stats()["waiting"] == 2
    clock.set(1.0)
    out = path.completed("x1", "b", 1.0)  # b frees: x2 takes it although r2 arrived first (r2 can use only a)
    assert kinds(out)[-1] == ("Dispatched", "x2", "b")
    clock.set(2.0)
    out = path.completed("r1", "a", 2.0)
    assert kinds(out)[-1] == ("Dispatched", "r2", "a") and out[-1].waited == 2.0
    assert path.stats()["parked"] == 0 and aff.sessions()["s"] == "a" and aff.stats()["remapped"] == 0


def test_parked_requests_keep_their_order_and_deadline(impl):
    path, aff, clock = hard_path(impl, max_wait=5.0)
    path.submit(req("r1", "s"), 0.0)
    path.submit(req("r2", "s"), 1.0)
    path.submit(req("r3", "s"), 2.0)
    assert path.next_event_time() == 6.0  # r2's deadline: 1.0 + max_wait
    clock.set(6.0)
    out = path.tick(6.0)
    assert kinds(out) == [("TimedOut", "r2", None)] and out[0].at == 6.0 and out[0].waited == 5.0
    assert kinds(path.completed("r1", "a", 6.5)) == [("Delivered", "r1", "a"), ("Dispatched", "r3", "a")]


def test_parked_request_can_be_cancelled(impl):
    path, aff, clock = hard_path(impl)
    path.submit(req("r1", "s"), 0.0)
    path.submit(req("r2", "s"), 0.0)
    assert kinds(path.cancel("r2", 1.0)) == [("Cancelled", "r2", None)]
    assert path.stats()["waiting"] == 0 and path.stats()["cancelled"] == 1
    assert kinds(path.completed("r1", "a", 2.0)) == [("Delivered", "r1", "a")]


def test_parked_request_leaves_a_drained_server(impl):
    """Its server drains: the session is re-mapped (reason draining) and the request goes where there is room."""
    path, aff, clock = hard_path(impl, capacities=(("a", 1), ("b", 2)))
    aff.pin("s", "a", 0.0)
    path.submit(req("r1", "s"), 0.0)
    path.submit(req("r2", "s"), 0.0)
    assert path.stats()["parked"] == 1
    clock.set(1.0)
    out = path.remove_server("a", 1.0)
    assert kinds(out) == [("Dispatched", "r2", "b")]
    assert aff.sessions()["s"] == "b" and aff.stats()["remaps"][RemapReason.DRAINING] == 1


def test_waiting_for_names_the_full_sticky_server_in_hard_mode_only(impl):
    router, aff, _ = affinity_router(impl, mode="hard", servers=(("a", 1, 90), ("b", 4, 80)))
    router.route(req("r1", "s"))
    assert aff.waiting_for(req("r2", "s")) == "a"
    assert aff.waiting_for(req("r2", "other")) is None and aff.waiting_for(req("r2")) is None
    router2, soft, _ = affinity_router(impl, mode="soft", servers=(("a", 1, 90), ("b", 4, 80)))
    router2.route(req("r1", "s"))
    assert soft.waiting_for(req("r2", "s")) is None


def test_parked_request_whose_server_is_lost_waits_for_any_server(impl):
    """Its server is lost while every other server is full: it waits for any slot, then its session is re-mapped."""
    path, aff, clock = hard_path(impl)
    aff.pin("s", "a", 0.0)
    path.submit(req("r1", "s"), 0.0)
    path.submit(req("x1"), 0.0)  # b
    path.submit(req("r2", "s"), 0.0)
    assert path.stats()["parked"] == 1
    clock.set(1.0)
    out = path.server_lost("a", 1.0)  # r1 fails (no ledger); r2 cannot go anywhere yet
    assert kinds(out) == [("Failed", "r1", "a")] and path.stats()["parked"] == 1
    clock.set(2.0)
    out = path.completed("x1", "b", 2.0)
    assert kinds(out) == [("Delivered", "x1", "b"), ("Dispatched", "r2", "b")]
    assert aff.sessions()["s"] == "b" and aff.stats()["remaps"][RemapReason.DOWN] == 1
