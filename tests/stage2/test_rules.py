"""Stage 2, rule by rule: orderings, head-of-line, max depth and Retry-After, deadlines,
cancellation, accounting, depth metrics, the clock.

Every test runs against the implementation under test (``--impl``), on a manual clock.
"""

from __future__ import annotations

import math

import pytest

from solution.core.queue_types import Cancelled, Dispatched, Queued, Rejected, TimedOut

pytestmark = pytest.mark.stage2


def drain(q, large_ok: bool = True, server: str = "s") -> list[str]:
    """Dispatch everything ``peek(large_ok)`` offers, in order; return the ids."""
    order = []
    while (head := q.peek(large_ok)) is not None:
        q.dispatch(head.request_id, server)
        order.append(head.request_id)
    return order


# -- FIFO ----------------------------------------------------------------------------


def test_fifo_serves_in_arrival_order_whatever_size_or_priority(make_queue):
    q, clock = make_queue()
    q.enqueue("a", 3000, 0)
    clock.advance(1)
    q.enqueue("b", 10, 5)
    q.enqueue("c", 200)
    assert q.waiting() == ["a", "b", "c"]
    assert drain(q) == ["a", "b", "c"]


def test_enqueue_returns_a_receipt(make_queue):
    q, clock = make_queue(max_wait=30.0)
    clock.advance(2.5)
    assert q.enqueue("a", 100, 2) == Queued("a", 100, 2, 2.5, 32.5)
    q2, _ = make_queue()
    assert q2.enqueue("a", 100).deadline is None


def test_peek_does_not_remove_and_dispatch_says_how_long_it_waited(make_queue):
    q, clock = make_queue()
    q.enqueue("a", 10)
    clock.advance(1.5)
    assert q.peek().request_id == "a" and q.peek().request_id == "a" and len(q) == 1
    assert q.dispatch("a", "gpu-0") == Dispatched("a", "gpu-0", 1.5, 1.5)
    assert len(q) == 0 and q.peek() is None and "a" not in q


def test_len_contains_and_an_empty_queue(make_queue):
    q, _ = make_queue()
    assert len(q) == 0 and q.peek() is None and q.peek(False) is None and q.waiting() == []
    q.enqueue("a", 10)
    assert len(q) == 1 and "a" in q and "b" not in q and 7 not in q


def test_a_dispatched_or_cancelled_id_can_wait_again(make_queue):
    q, _ = make_queue()
    q.enqueue("a", 10)
    q.dispatch("a", "s")
    assert isinstance(q.enqueue("a", 10), Queued)
    q.cancel("a")
    assert isinstance(q.enqueue("a", 10), Queued)


def test_dispatch_takes_any_waiting_request_by_id(make_queue):
    q, _ = make_queue()
    for rid in "abc":
        q.enqueue(rid, 10)
    q.dispatch("b", "s")
    assert q.waiting() == ["a", "c"]


# -- priority ------------------------------------------------------------------------


def test_priority_higher_class_first_fifo_within_a_class(make_queue):
    q, clock = make_queue(ordering="priority")
    for rid, prio in [("low1", 0), ("high1", 2), ("mid", 1), ("high2", 2), ("low2", 0)]:
        q.enqueue(rid, 10, prio)
        clock.advance(0.5)
    assert q.waiting() == ["high1", "high2", "mid", "low1", "low2"]
    assert drain(q) == ["high1", "high2", "mid", "low1", "low2"]


def test_priority_a_later_higher_class_goes_ahead(make_queue):
    q, _ = make_queue(ordering="priority")
    q.enqueue("old", 10, 1)
    q.enqueue("vip", 10, 3)
    assert q.peek().request_id == "vip"


def test_priority_ignores_size(make_queue):
    q, _ = make_queue(ordering="priority")
    q.enqueue("big", 4000)
    q.enqueue("small", 1)
    assert drain(q) == ["big", "small"]


# -- shortest job first with aging -----------------------------------------------------


def test_sjf_shortest_first_ties_by_arrival(make_queue):
    q, _ = make_queue(ordering="sjf")
    for rid, tokens in [("long", 3000), ("short", 20), ("mid", 400), ("short2", 20), ("tiny", 1)]:
        q.enqueue(rid, tokens)
    assert drain(q) == ["tiny", "short", "short2", "mid", "long"]


def test_sjf_ignores_priority(make_queue):
    q, _ = make_queue(ordering="sjf")
    q.enqueue("vip", 500, 9)
    q.enqueue("small", 100, 0)
    assert q.peek().request_id == "small"


def test_sjf_aging_a_waiting_request_shrinks_by_aging_rate_per_second(make_queue):
    """After 50 s at 10 tokens/s, 1000 tokens count as 500: a new 600-token request goes after it."""
    q, clock = make_queue(ordering="sjf", aging_rate=10.0)
    q.enqueue("old", 1000)
    clock.advance(50)
    q.enqueue("new", 600)
    assert q.peek().request_id == "old"
    q.enqueue("newer", 499)
    assert drain(q) == ["newer", "old", "new"]


def test_sjf_bounded_wait_exact_boundary(make_queue):
    """B arriving d seconds after A goes first only if tokens_B + rate * d < tokens_A; a tie goes to A."""
    q, clock = make_queue(ordering="sjf", aging_rate=4.0)
    q.enqueue("a", 100)
    clock.advance(24.75)  # 1 + 4 * 24.75 = 100: a tie, A arrived first
    q.enqueue("tie", 1)
    assert q.peek().request_id == "a"
    clock.advance(0.25)
    q.enqueue("late", 1)
    assert drain(q) == ["a", "tie", "late"]
    q.enqueue("a", 100)
    clock.advance(24.5)  # 1 + 98 < 100: B overtakes
    q.enqueue("early", 1)
    assert drain(q) == ["early", "a"]


def test_sjf_prices_a_prompt_token_below_an_output_token(make_queue):
    """Size = output + prompt_token_weight * prompt: a 4,000-token document with a 10-token answer
    goes before a 300-token chat with a 250-token answer; without the split, totals decide."""
    q, _ = make_queue(ordering="sjf")
    q.enqueue("chat", 300, prompt_tokens=50)  # 250 output tokens
    q.enqueue("doc", 4000, prompt_tokens=3990)  # 10 output tokens + 3990 * ~0.0088
    q.enqueue("plain", 100)  # no split: 100 output tokens
    assert drain(q) == ["doc", "plain", "chat"]
    q.enqueue("chat", 300)
    q.enqueue("doc", 4000)
    assert drain(q) == ["chat", "doc"]


def test_sjf_size_uses_the_policys_weight_exactly(make_queue):
    """weight 0.5, aging 2 tokens/s: a = 100 + 100 = 200 at t=0; b = 50 + 125 + 2 = 177 and c = 197 + 2 = 199 at t=1."""
    q, clock = make_queue(ordering="sjf", aging_rate=2.0, prompt_token_weight=0.5)
    q.enqueue("a", 300, prompt_tokens=200)
    clock.advance(1.0)
    q.enqueue("b", 300, prompt_tokens=250)
    q.enqueue("c", 197)
    assert drain(q) == ["b", "c", "a"]


def test_prompt_tokens_do_not_change_fifo_priority_or_size_class(make_queue):
    q, _ = make_queue(ordering="priority")
    q.enqueue("big", 9000, 1, prompt_tokens=8990)  # large by its total: memory holds every token
    q.enqueue("small", 10, 0, prompt_tokens=0)
    assert q.peek(large_ok=False).request_id == "small" and q.peek().request_id == "big"


@pytest.mark.parametrize("prompt, error", [(11, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError), ("3", TypeError)])
def test_a_bad_prompt_tokens_is_refused_and_names_the_argument(make_queue, prompt, error):
    q, _ = make_queue(ordering="sjf")
    with pytest.raises(error, match="prompt_tokens"):
        q.enqueue("a", 10, prompt_tokens=prompt)
    assert len(q) == 0 and q.stats().enqueued == 0


def test_sjf_long_request_is_not_starved_by_a_stream_of_short_ones(make_queue):
    """One slot frees per second; 3 short requests arrive per second.  The long one is served
    within (tokens - 1) / aging_rate seconds, plus the backlog of what arrived before then."""
    q, clock = make_queue(ordering="sjf", aging_rate=20.0)
    q.enqueue("long", 2001)  # not overtaken by arrivals 100 s or more after it
    served_at = None
    for second in range(1, 400):
        clock.advance(1.0)
        for k in range(3):
            q.enqueue(f"s{second}-{k}", 10)
        head = q.peek()
        q.dispatch(head.request_id, "s")
        if head.request_id == "long":
            served_at = second
            break
    assert served_at is not None and served_at <= 400
    # without aging it would wait for ever: every second brings shorter requests
    assert served_at > 100


# -- head-of-line blocking and skip protection -------------------------------------------


def test_a_small_server_skips_a_large_request_at_the_head(make_queue):
    q, _ = make_queue()
    q.enqueue("large", 9000)
    q.enqueue("small", 100)
    assert q.peek(large_ok=True).request_id == "large"
    assert q.peek(large_ok=False).request_id == "small"
    q.dispatch("small", "a10")
    assert q.peek(large_ok=False) is None
    assert q.peek(large_ok=True).request_id == "large"


def test_the_large_threshold_is_strictly_above_large_request_tokens(make_queue):
    q, _ = make_queue()
    q.enqueue("exactly", 4096)
    q.enqueue("above", 4097)
    assert q.peek(False).request_id == "exactly"
    q.dispatch("exactly", "a10")
    assert q.peek(False) is None
    q2, _ = make_queue(large_request_tokens=100)
    q2.enqueue("r", 101)
    assert q2.peek(False) is None and q2.peek(True).request_id == "r"


def test_a_skipped_large_request_is_reserved_after_max_skips(make_queue):
    q, _ = make_queue(ordering="priority", max_skips=2)
    q.enqueue("large", 9000, 1)
    q.enqueue("s1", 100)
    q.enqueue("s2", 100)
    q.enqueue("s3", 100)
    q.dispatch(q.peek(False).request_id, "a10")  # skip 1
    q.enqueue("vip", 100, 9)
    assert q.peek(True).request_id == "vip"  # one skip: not reserved yet, the order holds
    q.dispatch("s2", "a10")  # skip 2: reserved
    assert q.peek(True).request_id == "large"  # ahead of vip, for the next big server
    assert q.peek(False).request_id == "vip"  # small servers still serve the small ones
    q.dispatch("large", "h100")
    assert q.peek(True).request_id == "vip"


def test_skips_count_only_when_the_large_request_ranks_ahead(make_queue):
    """A small request that ranks ahead of the large one is not a skip: that is just the order."""
    q, _ = make_queue(ordering="priority", max_skips=1)
    q.enqueue("large", 9000, 0)
    q.enqueue("vip1", 100, 5)
    q.enqueue("vip2", 100, 5)
    q.enqueue("vip3", 100, 5)
    q.dispatch("vip1", "a10")
    assert q.peek(True).request_id == "vip2"  # no reservation
    q.enqueue("low", 100, 0)  # behind large (same class, later)
    q.dispatch("low", "a10")  # a skip: max_skips=1 reserves large
    assert q.peek(True).request_id == "large"


def test_a_reservation_ends_when_the_request_leaves(make_queue):
    q, clock = make_queue(max_skips=1, max_wait=5.0)
    q.enqueue("large", 9000)
    q.enqueue("s1", 100)
    q.enqueue("s2", 100)
    q.dispatch("s1", "a10")
    assert q.peek(True).request_id == "large"
    q.cancel("large")
    assert q.peek(True).request_id == "s2"
    clock.advance(1.0)
    q.enqueue("large2", 9000)
    q.enqueue("s3", 100)
    q.dispatch("s2", "a10")  # s2 ranks ahead of large2: not a skip
    clock.advance(0.5)
    q.enqueue("vip", 100)
    q.dispatch("s3", "a10")  # a skip: large2 is reserved
    clock.set(6.25)  # past large2's deadline (6.0), before vip's (6.5)
    assert [o.request_id for o in q.expire()] == ["large2"]
    assert q.peek(True).request_id == "vip"


def test_no_skips_are_counted_while_a_request_is_reserved(make_queue):
    """While L1 is reserved, passing over L2 (which ranks ahead of the small requests) costs L2 nothing."""
    q, _ = make_queue(ordering="priority", max_skips=2)
    for rid, tokens in (("L1", 9000), ("s1", 100), ("s2", 100)):
        q.enqueue(rid, tokens)
    q.dispatch("s1", "a10")
    q.dispatch("s2", "a10")  # L1 skipped twice: reserved
    q.enqueue("L2", 9000, 1)  # a higher class than the small ones: they rank behind it
    q.enqueue("s3", 100)
    q.enqueue("s4", 100)
    assert q.peek(True).request_id == "L1"
    q.dispatch("s3", "a10")  # L1 is reserved: no skip counted for L2
    q.dispatch("s4", "a10")  # nor here
    assert q.peek(True).request_id == "L1", "L1 stays reserved; L2 must not take over the reservation"
    q.dispatch("L1", "h100")  # the reservation ends; L2 has no skips
    q.enqueue("vip", 100, 5)
    q.enqueue("s5", 100)
    q.enqueue("s6", 100)
    q.dispatch("s5", "a10")  # L2's first skip
    assert q.peek(True).request_id == "vip", "one skip of L2's own: not reserved yet (skips while L1 was reserved do not count)"
    q.dispatch("s6", "a10")  # L2's second skip: reserved
    assert q.peek(True).request_id == "L2"


# -- max depth, 503 (or the policy's 429) and Retry-After ---------------------------------------


def test_a_full_queue_rejects_with_503_and_keeps_nothing(make_queue):
    q, clock = make_queue(max_depth=2)
    q.enqueue("a", 10)
    q.enqueue("b", 10)
    clock.advance(3)
    rejected = q.enqueue("c", 10)
    assert isinstance(rejected, Rejected)
    assert rejected.status == 503 and rejected.request_id == "c" and rejected.at == 3.0
    assert type(rejected.retry_after) is int and rejected.retry_after >= 1
    assert rejected.headers == {"Retry-After": str(rejected.retry_after)}
    assert len(q) == 2 and "c" not in q and q.waiting() == ["a", "b"]
    assert q.stats().rejected == 1 and q.stats().enqueued == 2
    q.dispatch("a", "s")
    assert isinstance(q.enqueue("c", 10), Queued)  # room again: the same id may come back


def test_the_rejection_status_is_the_policys(make_queue):
    """503 by default (a full queue is a server-wide overload); 429 when the policy says so (rate limiting)."""
    for status in (503, 429):
        q, _ = make_queue(max_depth=0, reject_status=status)
        rejected = q.enqueue("a", 10)
        assert rejected.status == status and rejected.headers == {"Retry-After": str(rejected.retry_after)}


def test_a_duplicate_id_is_refused_before_the_depth_check(impl, make_queue):
    """enqueue checks the arguments, then a duplicate id, then the depth: a waiting id in a full queue is a duplicate, not rejected."""
    q, _ = make_queue(max_depth=1)
    q.enqueue("a", 10)
    with pytest.raises(impl.AlreadyWaitingError):
        q.enqueue("a", 10)
    with pytest.raises(ValueError):
        q.enqueue("b", 0)  # a bad value, in a full queue: refused, not rejected
    assert isinstance(q.enqueue("b", 10), Rejected)
    assert q.stats().rejected == 1 and q.waiting() == ["a"]


def test_max_depth_zero_queues_nothing(make_queue):
    q, _ = make_queue(max_depth=0)
    assert isinstance(q.enqueue("a", 10), Rejected) and len(q) == 0


def test_retry_after_is_the_time_to_serve_the_queue_and_one_more_at_the_recent_rate(make_queue):
    """(depth + 1) * span / completions: 3 waiting, 2 completions over the 4 s since creation -> 8 s."""
    q, clock = make_queue(max_depth=3)
    for rid in "abc":
        q.enqueue(rid, 10)
    clock.advance(1)
    q.record_completion()
    clock.advance(3)
    q.record_completion()
    assert q.retry_after() == 8
    assert q.enqueue("d", 10).retry_after == 8


def test_retry_after_grows_with_depth_and_falls_with_the_completion_rate(make_queue):
    q, clock = make_queue(rate_window=10.0)
    clock.advance(10)
    for _ in range(5):
        q.record_completion()  # 5 completions in the last 10 s: 0.5 per second
    assert q.retry_after() == 2  # (0 + 1) / 0.5
    for k in range(4):
        q.enqueue(f"r{k}", 10)
    assert q.retry_after() == 10  # (4 + 1) / 0.5
    for _ in range(15):
        q.record_completion()  # 2 per second now
    assert q.retry_after() == 3  # ceil(5 / 2)


def test_retry_after_forgets_completions_outside_the_window(make_queue):
    q, clock = make_queue(rate_window=10.0)
    clock.advance(20)
    for _ in range(4):
        q.record_completion()
    q.enqueue("a", 10)
    assert q.retry_after() == 5  # 2 * 10 / 4
    clock.advance(9.75)
    assert q.retry_after() == 5
    clock.advance(0.25)  # the completions are exactly rate_window old: forgotten
    assert q.retry_after() == 10  # no rate: rate_window


def test_retry_after_without_completions_and_its_cap(make_queue):
    q, _ = make_queue(max_wait=7.5)
    assert q.retry_after() == 8  # no rate: max_wait, rounded up
    q2, clock = make_queue(max_wait=4.0, max_depth=50)
    clock.advance(100)
    q2.record_completion()
    for k in range(50):
        q2.enqueue(f"r{k}", 10)
    assert q2.retry_after() == 4  # 51 * 60 s would be far longer; everyone waiting leaves within max_wait


def test_retry_after_is_never_below_one_second(make_queue):
    q, clock = make_queue(max_depth=0)
    clock.advance(1)
    for _ in range(1000):
        q.record_completion()
    assert q.enqueue("a", 10).retry_after == 1


def test_retry_after_is_whole_seconds_rounded_up(make_queue):
    q, clock = make_queue(rate_window=60.0)
    clock.advance(3)
    q.record_completion()
    q.record_completion()  # 2 completions over 3 s
    q.enqueue("a", 10)
    assert q.retry_after() == 3  # (1 + 1) * 3 / 2 = 3 exactly, not 4
    q.enqueue("b", 10)
    assert q.retry_after() == 5  # 3 * 3 / 2 = 4.5 -> 5


# -- max wait: deadlines -----------------------------------------------------------------


def test_a_request_times_out_at_exactly_its_deadline(make_queue):
    q, clock = make_queue(max_wait=2.0)
    q.enqueue("a", 10)
    clock.advance(0.5)
    q.enqueue("b", 10)
    assert q.next_deadline() == 2.0
    clock.set(1.75)
    assert q.expire() == [] and len(q) == 2
    clock.set(2.0)
    assert q.expire() == [TimedOut("a", 2.0, 2.0)]
    assert q.next_deadline() == 2.5 and q.waiting() == ["b"]
    clock.set(2.5)
    assert q.expire() == [TimedOut("b", 2.5, 2.0)]
    assert q.next_deadline() is None and q.stats().timed_out == 2


def test_a_late_expire_reports_each_deadline_not_now(make_queue):
    q, clock = make_queue(max_wait=1.0)
    for k in range(3):
        q.enqueue(f"r{k}", 10)
        clock.advance(0.25)
    clock.set(10.0)
    assert q.expire() == [TimedOut("r0", 1.0, 1.0), TimedOut("r1", 1.25, 1.0), TimedOut("r2", 1.5, 1.0)]


def test_dispatched_and_cancelled_requests_do_not_time_out(make_queue):
    q, clock = make_queue(max_wait=1.0)
    for rid in "abc":
        q.enqueue(rid, 10)
    q.dispatch("a", "s")
    q.cancel("b")
    assert q.next_deadline() == 1.0  # c's
    clock.advance(5)
    assert q.expire() == [TimedOut("c", 1.0, 1.0)]


def test_without_max_wait_nothing_expires(make_queue):
    q, clock = make_queue()
    q.enqueue("a", 10)
    assert q.next_deadline() is None
    clock.advance(1e9)
    assert q.expire() == [] and len(q) == 1


def test_the_deadline_is_the_same_in_every_ordering(make_queue):
    for ordering in ("fifo", "priority", "sjf"):
        q, clock = make_queue(ordering=ordering, max_wait=3.0)
        q.enqueue("big", 3000, 0)
        clock.advance(1.0)
        q.enqueue("small", 1, 5)
        assert q.next_deadline() == 3.0
        clock.set(3.5)  # past big's deadline, before small's (4.0)
        assert [o.request_id for o in q.expire()] == ["big"]


# -- cancellation ----------------------------------------------------------------------------


def test_cancel_withdraws_a_waiting_request(impl, make_queue):
    q, clock = make_queue()
    q.enqueue("a", 10)
    q.enqueue("b", 10)
    clock.advance(2)
    assert q.cancel("a") == Cancelled("a", 2.0, 2.0)
    assert q.waiting() == ["b"] and "a" not in q
    with pytest.raises(impl.NotWaitingError) as info:
        q.cancel("a")
    assert isinstance(info.value, KeyError) and "'a'" in str(info.value)


def test_cancel_or_dispatch_of_a_request_that_is_not_waiting_raises_key_error(make_queue):
    q, _ = make_queue()
    q.enqueue("a", 10)
    q.dispatch("a", "s")
    for call in (lambda: q.cancel("a"), lambda: q.dispatch("a", "s"), lambda: q.cancel("never")):
        with pytest.raises(KeyError):
            call()


# -- accounting --------------------------------------------------------------------------------


def test_every_request_is_counted_once(make_queue):
    q, clock = make_queue(max_depth=3, max_wait=2.0)
    for rid in "abcd":
        q.enqueue(rid, 10)  # d is rejected
    q.dispatch("a", "s")
    q.cancel("b")
    clock.set(2.5)
    q.expire()  # c
    q.enqueue("e", 10)
    s = q.stats()
    assert (s.enqueued, s.dispatched, s.cancelled, s.timed_out, s.rejected, s.depth) == (4, 1, 1, 1, 1, 1)
    assert s.enqueued == s.dispatched + s.timed_out + s.cancelled + s.depth


# -- depth metrics --------------------------------------------------------------------------------


def test_depth_metrics_current_peak_and_time_weighted_mean(make_queue):
    q, clock = make_queue()
    q.enqueue("a", 10)  # depth 1 over [0, 2)
    clock.advance(2)
    q.enqueue("b", 10)
    q.enqueue("c", 10)  # depth 3 over [2, 3)
    clock.advance(1)
    q.dispatch("a", "s")
    q.dispatch("b", "s")  # depth 1 over [3, 7)
    clock.advance(4)
    s = q.stats()
    assert (s.depth, s.peak_depth) == (1, 3)
    assert s.mean_depth == pytest.approx((1 * 2 + 3 * 1 + 1 * 4) / 7)


def test_mean_depth_before_any_time_passes_is_the_depth(make_queue):
    q, _ = make_queue()
    assert q.stats().mean_depth == 0.0
    q.enqueue("a", 10)
    assert q.stats().mean_depth == 1.0


def test_scale_up_signal_after_the_depth_stays_above_the_threshold(make_queue):
    q, clock = make_queue(scale_up_depth=1, scale_up_after=2.0)
    q.enqueue("a", 10)
    assert q.stats().over_threshold_since is None  # 1 is not above 1
    clock.advance(1)
    q.enqueue("b", 10)
    assert q.stats().over_threshold_since == 1.0 and not q.stats().scale_up
    clock.advance(1.75)
    assert not q.stats().scale_up
    clock.advance(0.25)
    assert q.stats().scale_up  # 2 s above
    q.dispatch("a", "s")  # back to 1: the signal resets
    assert q.stats().over_threshold_since is None and not q.stats().scale_up
    q.enqueue("c", 10)
    assert q.stats().over_threshold_since == 3.0


def test_no_threshold_no_signal(make_queue):
    q, clock = make_queue()
    for k in range(100):
        q.enqueue(f"r{k}", 10)
    clock.advance(1e6)
    assert not q.stats().scale_up and q.stats().over_threshold_since is None


# -- the clock ----------------------------------------------------------------------------------


def test_time_comes_from_the_injected_clock(impl):
    from solution.core.queue_types import QueuePolicy

    now = [100.0]
    q = impl.RequestQueue(lambda: now[0], QueuePolicy(max_wait=5.0))
    assert q.enqueue("a", 10).deadline == 105.0
    now[0] = 104.5
    assert q.expire() == []
    now[0] = 105.5
    assert [o.request_id for o in q.expire()] == ["a"]


def test_a_clock_that_goes_back_is_refused_and_changes_nothing(impl):
    from solution.core.queue_types import QueuePolicy

    now = [10.0]
    q = impl.RequestQueue(lambda: now[0], QueuePolicy())
    q.enqueue("a", 10)
    now[0] = 9.0
    with pytest.raises(ValueError, match="back"):
        q.enqueue("b", 10)
    assert q.waiting() == ["a"]
    now[0] = math.nan
    with pytest.raises(ValueError):
        q.cancel("a")
    now[0] = "10"
    with pytest.raises(TypeError):
        q.dispatch("a", "s")
    now[0] = 11.0
    assert q.waiting() == ["a"] and q.stats().enqueued == 1


def test_constructor_checks_its_arguments(impl):
    from solution.core.clock import ManualClock

    with pytest.raises(TypeError):
        impl.RequestQueue(5.0)
    with pytest.raises(TypeError):
        impl.RequestQueue(ManualClock(), {"max_depth": 3})
    q = impl.RequestQueue(ManualClock())
    assert q.policy.ordering == "fifo" and q.policy.max_depth is None and q.policy.max_wait is None
