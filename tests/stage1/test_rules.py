"""Stage 1, rule by rule: routing, tie-breaks, capacity, drain, completion, stats.

Every test runs against the implementation under test (``--impl``).  A test
depends only on the rule it is named for: outside the tie-break tests no
decision is a tie (servers are added one at a time, so that a server that
should already hold a request gets it while it is the only one).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.stage1


@pytest.fixture
def lb(impl):
    return impl.LoadBalancer()


def loads(lb) -> dict[str, int]:
    return {sid: s["current_load"] for sid, s in lb.get_server_stats().items()}


# -- routing: the lowest load ratio -------------------------------------------------


def test_routes_to_lowest_load_ratio(lb):
    lb.add_server("big", capacity=10, gpu_memory_gb=80)
    assert lb.route_request("fill0", 100) == "big"  # the only server
    lb.add_server("small", capacity=2, gpu_memory_gb=80)
    # 0/2 < 1/10, then 1/10 < 1/2, 2/10 < 1/2
    assert [lb.route_request(f"fill{i}", 100) for i in (1, 2, 3)] == ["small", "big", "big"]
    assert loads(lb) == {"big": 3, "small": 1}
    # big is at 3/10 = 0.3, small at 1/2 = 0.5: the next goes to big
    assert lb.route_request("next", 100) == "big"


def test_ratio_not_raw_load(lb):
    """Weighted: a server with more slots takes more requests."""
    lb.add_server("a", capacity=8, gpu_memory_gb=40)
    lb.route_request("r0", 10)  # the only server
    lb.add_server("b", capacity=2, gpu_memory_gb=40)
    for i in range(1, 5):  # b 0/2, then a 1/8, 2/8, 3/8: each below b's 1/2
        lb.route_request(f"r{i}", 10)
    assert loads(lb) == {"a": 4, "b": 1}


def test_close_ratios_are_told_apart(lb):
    # 1/3 against 333333/1000000: the second is smaller, by 1/3,000,000.
    lb.add_server("third", capacity=3, gpu_memory_gb=80)
    assert lb.route_request("t", 10) == "third"  # the only server: third at 1/3
    lb.add_server("million", capacity=1_000_000, gpu_memory_gb=24)
    for i in range(333_333):
        lb.route_request(f"m{i}", 10)
    assert loads(lb) == {"third": 1, "million": 333_333}
    # 333333/1000000 < 1/3: million is still lower, and gets the next request
    assert lb.route_request("next", 10) == "million"
    # now 333334/1000000 > 1/3: third wins
    assert lb.route_request("next2", 10) == "third"


#: Two ratios that differ and still round to the same float (a/b > c/d by 1 / (b * d), about
#: 2**-62, under the spacing of floats near 2**-11).  Floats tell apart any two ratios unless both
#: servers hold about 2**20 requests or more, so this test routes three million.
FLOAT_TIE = {"a": 2_097_523, "b": 4_294_963_685, "c": 1_071_224, "d": 2_193_476_867}


@pytest.mark.slow
def test_ratios_compared_exactly_not_as_floats(lb):
    a, b, c, d = FLOAT_TIE["a"], FLOAT_TIE["b"], FLOAT_TIE["c"], FLOAT_TIE["d"]
    assert a * d - b * c == 1 and a / b == c / d  # a/b > c/d, yet the floats are equal
    route = lb.route_request
    lb.add_server("high", capacity=b, gpu_memory_gb=80)
    for i in range(a):  # the only server
        route(f"h{i}", 10)
    lb.add_server("low", capacity=d, gpu_memory_gb=24)
    # "low" takes every request while its ratio is below a/b: loads 0 to c - 1 over d
    first_wrong = next((i for i in range(c) if route(f"l{i}", 10) != "low"), None)
    assert first_wrong is None, f"request {first_wrong} of {c} went to 'high' although {first_wrong}/{d} < {a}/{b}"
    # Now c/d < a/b exactly, but the floats are equal, and every tie-break (memory, free slots,
    # order added) would pick "high": only an exact comparison picks "low".
    assert route("decider", 10) == "low", f"{c}/{d} < {a}/{b} exactly, though the floats are equal: compare exactly"


def test_equal_fractions_tie_exactly(lb):
    # 1/3 == 2/6 and 2/3 == 4/6: ties go to the tie-break (memory), whatever the rounding.
    lb.add_server("three", capacity=3, gpu_memory_gb=40)
    lb.add_server("six", capacity=6, gpu_memory_gb=80)
    routed = [lb.route_request(f"r{i}", 10) for i in range(7)]
    # 0=0 -> six; 0/3<1/6 -> three; 1/6<1/3 -> six; 1/3=2/6 -> six (memory);
    # 1/3<3/6 -> three; 3/6<2/3 -> six; 2/3=4/6 -> six (memory)
    assert routed == ["six", "three", "six", "six", "three", "six", "six"]


def test_ratio_beats_memory_and_order(lb):
    lb.add_server("big", capacity=2, gpu_memory_gb=80)
    assert lb.route_request("r1", 10) == "big"  # the only server
    lb.add_server("small", capacity=2, gpu_memory_gb=24)
    assert lb.route_request("r2", 10) == "small"  # 0/2 < 1/2 despite less memory, added later


def test_large_request_needs_big_memory(lb):
    lb.add_server("a100", capacity=4, gpu_memory_gb=80)
    assert lb.route_request("warm", 100) == "a100"  # the only server
    lb.add_server("a10", capacity=4, gpu_memory_gb=24)
    # a10 is at 0/4 and a100 at 1/4, but a large request must go to a100
    assert lb.route_request("long", 5000) == "a100"


def test_large_threshold_is_strictly_above_4096(lb, no_capacity):
    lb.add_server("a10", capacity=4, gpu_memory_gb=24)
    assert lb.route_request("exactly", 4096) == "a10"
    with no_capacity():
        lb.route_request("above", 4097)


def test_memory_threshold_is_inclusive(lb):
    lb.add_server("exactly80", capacity=1, gpu_memory_gb=80)
    assert lb.route_request("long", 10_000) == "exactly80"


def test_large_request_rejected_when_only_small_servers_are_free(lb, no_capacity):
    lb.add_server("a10", capacity=4, gpu_memory_gb=24)
    lb.add_server("a100", capacity=1, gpu_memory_gb=80)
    lb.route_request("occupy", 5000)
    with no_capacity():
        lb.route_request("long", 5000)
    assert lb.route_request("short", 100) == "a10"


def test_thresholds_are_keyword_arguments(impl, no_capacity):
    lb = impl.LoadBalancer(large_request_tokens=100, large_request_min_memory_gb=40)
    lb.add_server("small", capacity=1, gpu_memory_gb=24)
    lb.add_server("mid", capacity=1, gpu_memory_gb=40)
    assert lb.route_request("r1", 101) == "mid"
    with no_capacity():
        lb.route_request("r2", 101)
    assert lb.route_request("r3", 100) == "small"
    with pytest.raises(TypeError):
        impl.LoadBalancer(4096)  # positional: not allowed


# -- tie-breaks ---------------------------------------------------------------------


def test_tie_break_most_gpu_memory(lb):
    lb.add_server("a", capacity=4, gpu_memory_gb=40)
    lb.add_server("b", capacity=4, gpu_memory_gb=80)
    lb.add_server("c", capacity=4, gpu_memory_gb=24)
    assert lb.route_request("r", 10) == "b"


def test_tie_break_most_free_slots(lb):
    # equal ratio 1/2 and equal memory: 4 free slots beat 1
    lb.add_server("small", capacity=2, gpu_memory_gb=80)
    lb.add_server("large", capacity=8, gpu_memory_gb=80)
    # idle ratios tie at 0: free slots decide (8 > 2)
    assert lb.route_request("r0", 10) == "large"
    for i in range(3):
        lb.route_request(f"f{i}", 10)
    assert loads(lb) == {"small": 1, "large": 3}
    assert lb.route_request("g", 10) == "large"  # 3/8 < 1/2
    # now large 4/8 == small 1/2, same memory: large has 4 free slots, small 1
    assert lb.route_request("h", 10) == "large"


def test_tie_break_added_earliest(lb):
    for sid in ("first", "second", "third"):
        lb.add_server(sid, capacity=2, gpu_memory_gb=40)
    assert [lb.route_request(f"r{i}", 10) for i in range(3)] == ["first", "second", "third"]


def test_readded_server_counts_as_added_last(lb):
    lb.add_server("x", capacity=1, gpu_memory_gb=40)
    lb.add_server("y", capacity=1, gpu_memory_gb=40)
    lb.remove_server("x")  # idle: gone at once
    lb.add_server("x", capacity=1, gpu_memory_gb=40)
    assert lb.route_request("r", 10) == "y"
    assert list(lb.get_server_stats()) == ["y", "x"]


def test_tie_break_order_memory_before_free_slots(lb):
    lb.add_server("roomy", capacity=8, gpu_memory_gb=40)
    lb.add_server("big_mem", capacity=2, gpu_memory_gb=80)
    assert lb.route_request("r", 10) == "big_mem"


# -- capacity -----------------------------------------------------------------------


def test_full_servers_are_skipped_and_then_no_capacity(impl, lb):
    lb.add_server("a", capacity=1, gpu_memory_gb=40)
    lb.add_server("b", capacity=2, gpu_memory_gb=40)
    got = sorted(lb.route_request(f"r{i}", 10) for i in range(3))
    assert got == ["a", "b", "b"]
    with pytest.raises(impl.NoCapacityError) as info:
        lb.route_request("r3", 10)
    assert isinstance(info.value, RuntimeError)
    assert "r3" in str(info.value)


def test_failed_route_leaves_no_trace(impl, lb, no_capacity):
    lb.add_server("a", capacity=1, gpu_memory_gb=40)
    lb.route_request("r1", 10)
    before = lb.get_server_stats()
    with no_capacity():
        lb.route_request("r2", 10)
    assert lb.get_server_stats() == before
    with pytest.raises(KeyError):
        lb.complete_request("r2")  # never recorded
    lb.complete_request("r1")
    assert lb.route_request("r2", 10) == "a"  # the same id works now


def test_no_servers_means_no_capacity(impl, lb):
    with pytest.raises(impl.NoCapacityError):
        lb.route_request("r", 10)


def test_in_flight_id_is_rejected(impl, lb):
    lb.add_server("a", capacity=4, gpu_memory_gb=40)
    lb.route_request("r", 10)
    before = lb.get_server_stats()
    with pytest.raises(impl.DuplicateRequestError) as info:
        lb.route_request("r", 10)
    assert isinstance(info.value, ValueError)
    assert lb.get_server_stats() == before


def test_completed_id_can_be_reused(lb):
    lb.add_server("a", capacity=1, gpu_memory_gb=40)
    lb.route_request("r", 10)
    lb.complete_request("r")
    assert lb.route_request("r", 10) == "a"


# -- graceful drain -----------------------------------------------------------------


def test_drain_stops_new_requests_at_once(impl, lb):
    lb.add_server("a", capacity=4, gpu_memory_gb=80)
    assert lb.route_request("r1", 10) == "a"  # the only server
    lb.add_server("b", capacity=4, gpu_memory_gb=24)
    lb.remove_server("a")
    assert lb.get_server_stats()["a"]["is_draining"] is True
    assert all(lb.route_request(f"n{i}", 10) == "b" for i in range(4))
    with pytest.raises(impl.NoCapacityError):
        lb.route_request("n4", 10)  # a has 3 free slots but drains


def test_draining_server_disappears_with_its_last_request(lb):
    lb.add_server("a", capacity=4, gpu_memory_gb=80)
    lb.route_request("r1", 10)
    lb.route_request("r2", 10)
    lb.remove_server("a")
    lb.complete_request("r1")
    assert lb.get_server_stats()["a"]["active_requests"] == ["r2"]
    lb.complete_request("r2")
    assert "a" not in lb.get_server_stats()


def test_idle_server_is_removed_at_once(lb):
    lb.add_server("a", capacity=4, gpu_memory_gb=80)
    lb.remove_server("a")
    assert lb.get_server_stats() == {}


def test_second_remove_while_draining_is_a_no_op(lb):
    lb.add_server("a", capacity=4, gpu_memory_gb=80)
    lb.route_request("r1", 10)
    lb.remove_server("a")
    before = lb.get_server_stats()
    lb.remove_server("a")
    assert lb.get_server_stats() == before


def test_remove_unknown_or_drained_away_server_raises_key_error(impl, lb):
    with pytest.raises(impl.UnknownServerError) as info:
        lb.remove_server("ghost")
    assert isinstance(info.value, KeyError)
    assert "ghost" in str(info.value)
    lb.add_server("a", capacity=1, gpu_memory_gb=80)
    lb.remove_server("a")
    with pytest.raises(KeyError):
        lb.remove_server("a")


def test_add_while_draining_is_a_duplicate(impl, lb):
    lb.add_server("a", capacity=1, gpu_memory_gb=80)
    lb.route_request("r", 10)
    lb.remove_server("a")
    before = lb.get_server_stats()
    with pytest.raises(impl.DuplicateServerError) as info:
        lb.add_server("a", capacity=2, gpu_memory_gb=80)
    assert isinstance(info.value, ValueError)
    assert lb.get_server_stats() == before
    lb.complete_request("r")
    lb.add_server("a", capacity=2, gpu_memory_gb=80)  # drained away: the id is free again
    assert lb.get_server_stats()["a"]["capacity"] == 2


def test_duplicate_server_id_rejected(impl, lb):
    lb.add_server("a", capacity=1, gpu_memory_gb=80)
    with pytest.raises(impl.DuplicateServerError):
        lb.add_server("a", capacity=1, gpu_memory_gb=80)


def test_complete_on_draining_server_frees_nothing_new(lb, no_capacity):
    """A completion on a draining server must not make it eligible again."""
    lb.add_server("a", capacity=4, gpu_memory_gb=80)
    assert lb.route_request("r0", 10) == "a"  # the only server
    lb.add_server("b", capacity=1, gpu_memory_gb=24)
    assert [lb.route_request(f"r{i}", 10) for i in (1, 2)] == ["b", "a"]  # 0/1 < 1/4; then b is full
    lb.remove_server("a")
    lb.complete_request("r0")  # a: 1/4 and draining
    with no_capacity():
        lb.route_request("r3", 10)  # b is full, a drains
    lb.complete_request("r1")
    assert lb.route_request("r3", 10) == "b"


# -- completion ---------------------------------------------------------------------


def test_complete_frees_the_slot(lb):
    lb.add_server("a", capacity=1, gpu_memory_gb=80)
    lb.route_request("r", 10)
    lb.complete_request("r")
    assert lb.get_server_stats()["a"]["current_load"] == 0
    assert lb.get_server_stats()["a"]["active_requests"] == []


def test_complete_unknown_or_twice_raises_key_error(impl, lb):
    lb.add_server("a", capacity=1, gpu_memory_gb=80)
    with pytest.raises(impl.UnknownRequestError) as info:
        lb.complete_request("nope")
    assert isinstance(info.value, KeyError) and "nope" in str(info.value)
    lb.route_request("r", 10)
    lb.complete_request("r")
    with pytest.raises(KeyError):
        lb.complete_request("r")


def test_completion_makes_a_server_preferred_again(lb):
    lb.add_server("a", capacity=2, gpu_memory_gb=80)
    assert lb.route_request("r0", 10) == "a"  # the only server
    lb.add_server("b", capacity=3, gpu_memory_gb=40)
    assert [lb.route_request(f"r{i}", 10) for i in (1, 2)] == ["b", "b"]  # 0/3, 1/3 < 1/2
    lb.complete_request("r0")
    assert lb.route_request("r3", 10) == "a"  # a 0/2 < b 2/3


# -- stats --------------------------------------------------------------------------


def test_stats_fields_and_types(lb):
    lb.add_server("a", capacity=4, gpu_memory_gb=80)
    lb.route_request("r1", 10)
    s = lb.get_server_stats()["a"]
    assert s == {
        "capacity": 4,
        "current_load": 1,
        "gpu_memory_gb": 80,
        "load_ratio": 0.25,
        "is_draining": False,
        "active_requests": ["r1"],
    }
    assert type(s["load_ratio"]) is float and type(s["is_draining"]) is bool


def test_stats_list_requests_in_routing_order(lb):
    lb.add_server("a", capacity=5, gpu_memory_gb=80)
    for rid in ("z", "a", "m"):
        lb.route_request(rid, 10)
    lb.complete_request("a")
    lb.route_request("b", 10)
    assert lb.get_server_stats()["a"]["active_requests"] == ["z", "m", "b"]


def test_stats_are_a_snapshot(lb):
    lb.add_server("a", capacity=4, gpu_memory_gb=80)
    lb.route_request("r1", 10)
    snap = lb.get_server_stats()
    snap["a"]["active_requests"].append("forged")
    snap["a"]["current_load"] = 99
    snap["a"]["is_draining"] = True
    del snap["a"]
    snap["ghost"] = {}
    fresh = lb.get_server_stats()
    assert list(fresh) == ["a"]
    assert fresh["a"]["active_requests"] == ["r1"] and fresh["a"]["current_load"] == 1
    assert lb.route_request("r2", 10) == "a"  # not draining


def test_stats_list_servers_in_order_of_addition(lb):
    for sid in ("c", "a", "b"):
        lb.add_server(sid, capacity=1, gpu_memory_gb=24)
    assert list(lb.get_server_stats()) == ["c", "a", "b"]
