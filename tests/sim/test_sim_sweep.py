"""Sweeps: the same rows in parallel as in series; confidence intervals per label."""

from __future__ import annotations

import pytest

from solution import LoadBalancer
from solution.sim import scenarios
from solution.sim.sweep import Job, aggregate, grid, run_jobs

pytestmark = pytest.mark.sim


def test_a_parallel_sweep_returns_exactly_the_serial_rows() -> None:
    jobs = grid(scenarios.classic(servers=4, requests=3000), loads=(0.5, 1.0), seeds=range(3), balancer=LoadBalancer)
    assert [j.label for j in jobs] == [0.5] * 3 + [1.0] * 3
    serial = run_jobs(jobs, workers=0)
    parallel = run_jobs(jobs, workers=2)
    assert repr(serial) == repr(parallel)  # repr round-trips floats exactly, and NaN (classic TPOT) equals NaN


def test_aggregate_builds_an_interval_per_label() -> None:
    rows = run_jobs(grid(scenarios.classic(servers=4, requests=2000), (0.5, 1.0), range(4), warmup=10.0), workers=0)
    stats = aggregate(rows, "rejection_rate", level=0.95)
    assert list(stats) == [0.5, 1.0]
    for mean, low, high in stats.values():
        assert low < mean < high
    assert stats[1.0][0] > stats[0.5][0]
    by_function = aggregate(rows, lambda s: s.rejection_rate, level=0.95)
    assert by_function == stats


def test_run_jobs_checks_its_input() -> None:
    with pytest.raises(TypeError, match="Job"):
        run_jobs([scenarios.classic()], workers=0)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="fresh balancer"):
        run_jobs([Job(scenarios.classic(requests=10), 0, balancer=LoadBalancer())], workers=0)  # type: ignore[arg-type]
