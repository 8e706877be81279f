"""Results: derived latencies, the summary, time series, bit-for-bit comparison, the table."""

from __future__ import annotations

import numpy as np
import pytest

from solution.sim import Outcome, Results, format_table, scenarios, simulate

pytestmark = pytest.mark.sim

nan = np.nan


def hand_made() -> Results:
    """Four requests on two servers of capacity 2, times chosen by hand."""
    return Results(
        scenario="hand", seed=0, server_ids=("a", "b"), capacity=np.array([2, 2]),
        arrival=np.array([0.0, 1.0, 2.0, 3.0]),
        start=np.array([0.0, 1.0, nan, 3.0]),
        first_token=np.array([0.5, 1.5, nan, nan]),
        finish=np.array([4.0, 3.0, 2.0, 3.0]),
        server=np.array([0, 1, -1, 0], dtype=np.int32),
        outcome=np.array([Outcome.COMPLETED, Outcome.COMPLETED, Outcome.REJECTED, Outcome.FAILED], dtype=np.int8),
        prompt_tokens=np.array([10, 10, 10, 10], dtype=np.int32),
        output_tokens=np.array([8, 4, 5, 5], dtype=np.int32),
        estimated_tokens=np.array([18, 14, 15, 15], dtype=np.int32),
        tier=np.zeros(4, dtype=np.int16), tier_names=("t",), session=np.full(4, -1, dtype=np.int32),
    )  # fmt: skip


def test_derived_latencies() -> None:
    res = hand_made()
    np.testing.assert_array_equal(res.ttft, [0.5, 0.5, nan, nan])
    np.testing.assert_array_equal(res.e2e, [4.0, 2.0, nan, nan])
    np.testing.assert_allclose(res.tpot, [3.5 / 7, 1.5 / 3, nan, nan])
    assert [res.count(o) for o in Outcome] == [2, 1, 1, 0, 0, 0, 0, 0]


def test_summary() -> None:
    s = hand_made().summary()
    assert (s.requests, s.completed, s.rejected, s.failed, s.crashed) == (4, 2, 1, 1, 0)
    assert s.rejection_rate == 0.25 and s.loss_rate == 0.5
    assert s.e2e_p50 == pytest.approx(3.0) and s.ttft_p99 == pytest.approx(0.5)
    assert s.duration == 4.0 and s.throughput_rps == 0.5
    assert s.throughput_tps == pytest.approx(12 / 4)
    assert s.utilization == pytest.approx((4.0 / (2 * 4), 2.0 / (2 * 4)))  # busy slot-seconds / (capacity x span)
    late = hand_made().summary(warmup=1.5)
    assert late.requests == 2 and late.completed == 0 and np.isnan(late.e2e_p50)
    with pytest.raises(ValueError, match="warm-up"):
        hand_made().summary(warmup=10.0)


def test_load_and_queue_depth_over_time() -> None:
    res = hand_made()
    load = res.load_over_time(np.array([0.0, 1.0, 2.5, 3.0, 3.5, 4.0]))
    np.testing.assert_array_equal(load, [[1, 0], [1, 1], [1, 1], [1, 0], [1, 0], [0, 0]])
    assert (res.queue_depth_over_time(res.time_grid(50)) == 0).all()  # stage 1 never queues


def test_same_as_detects_a_single_bit() -> None:
    res = simulate(scenarios.steady(requests=100), seed=1)
    again = simulate(scenarios.steady(requests=100), seed=1)
    assert res.same_as(again)
    again.finish[7] = np.nextafter(again.finish[7], np.inf)
    assert not res.same_as(again)


def test_format_table() -> None:
    text = format_table({"one": hand_made().summary(), "two": hand_made().summary(warmup=1.5)})
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "one", "two"]
    assert "n/a" in text and "25.00%" in text
    assert hand_made().summary().table().splitlines()[0].split() == ["metric", "value"]
