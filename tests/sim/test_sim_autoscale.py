"""The autoscaler model (solution.sim.autoscale): a leading signal, hysteresis, the provisioning delay."""

from __future__ import annotations

import math

import pytest

from solution import LoadBalancer, RequestQueue
from solution.sim.autoscale import AutoscaleScenario, backlog_threshold, replicas_needed, run_autoscale
from solution.sim.theory import mmc_mean_wait

SC = AutoscaleScenario()


def test_replicas_needed_is_the_fewest_that_meet_the_target():
    n = replicas_needed(9.5, 4, 1.0, 0.1, 12)
    assert mmc_mean_wait(4 * n, 9.5) <= 0.1 < mmc_mean_wait(4 * (n - 1), 9.5)
    assert replicas_needed(0.0, 4, 1.0, 0.1, 12) == 1 and replicas_needed(1000.0, 4, 1.0, 0.1, 12) == 12


def test_backlog_threshold_is_littles_law():
    assert backlog_threshold(2.0, 12, 1.0) == 24 and backlog_threshold(0.5, 8, 2.0) == 2


@pytest.fixture(scope="module")
def runs():
    return {p: [run_autoscale(LoadBalancer, RequestQueue, p, SC, seed=s) for s in range(2)] for p in ("depth held", "target wait")}


def test_the_target_wait_signal_leads_the_depth_signal_and_ignores_short_bursts(runs):
    for old, new in zip(runs["depth held"], runs["target wait"]):
        assert new.first_order_after(SC.ramp_at) < old.first_order_after(SC.ramp_at) - 60
        assert new.ups_between(0.0, SC.ramp_at) == 0 < old.ups_between(0.0, SC.ramp_at)
        assert new.reversals < old.reversals


def test_replicas_join_after_the_provisioning_delay_and_leave_one_at_a_time(runs):
    """At every tick, the replicas present are the starting ones plus those ordered at least one
    provisioning delay earlier, minus those removed; ordered-but-not-joined ones are pending
    (a tick records the state before it acts)."""
    for run in runs["target wait"] + runs["depth held"]:
        for t, active, pending in zip(run.t, run.active, run.pending):
            joined = sum(n for at, n in run.orders if n > 0 and at + SC.provisioning_delay <= t)
            waiting = sum(n for at, n in run.orders if n > 0 and at < t < at + SC.provisioning_delay)
            removed = sum(1 for at, n in run.orders if n < 0 and at < t)
            assert (active, pending) == (SC.replicas + joined - removed, waiting)
        assert all(n in (-1,) or n > 0 for _, n in run.orders)
        assert run.active.min() >= SC.min_replicas and run.active.max() <= SC.max_replicas


def test_the_recorded_signal_is_the_queues_own(runs):
    run = runs["depth held"][0]
    assert run.scale_up.dtype == bool and run.scale_up.any()
    # the queue raises it only after the depth has been above scale_up_depth, so never at a tick with depth <= it
    assert not (run.scale_up & (run.depth <= SC.scale_up_depth)).any()


def test_unknown_policy():
    with pytest.raises(ValueError, match="depth held"):
        run_autoscale(LoadBalancer, RequestQueue, "magic", SC)


def test_the_timeline_figure_is_labelled(runs):
    from solution.sim.autoscale import plot_timeline

    fig = plot_timeline({name: r[0] for name, r in runs.items()})
    for ax in fig.axes:
        assert ax.get_title() and ax.get_ylabel()
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels and all(label and not label.startswith("_") for label in labels)
    assert "(s)" in fig.axes[-1].get_xlabel()
