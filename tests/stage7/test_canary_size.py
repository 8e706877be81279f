"""Stage 7: the canary test's size (false-rollback rate) on identical versions, and its power on a bad one.

Seeded, so each figure is a fixed number; the bounds are the nominal rate
plus three binomial standard deviations over the trials (and, for the
continuous Mann-Whitney test, minus three: its size must be close to alpha,
not just below it).  Fisher's exact test is discrete, hence conservative: its
measured size is at most alpha.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.core.deploy_types import CanaryPlan, VersionStats

pytestmark = pytest.mark.stage7

TRIALS = 300


def identical_pair(rng, n, error_rate, slow=1.0, worse=0.0):
    def one(scale, p):
        errors = sum(rng.random() < p for _ in range(n))
        return VersionStats(n, errors, tuple(rng.lognormvariate(0.0, 0.6) * scale for _ in range(n)))

    return one(1.0, error_rate), one(slow, error_rate + worse)


def rollback_rate(impl, metrics, *, seed, slow=1.0, worse=0.0, alpha=0.05, n=200):
    analysis = impl.CanaryAnalysis(CanaryPlan(alpha=alpha, min_requests=n, metrics=metrics))
    rng = random.Random(seed)
    rollbacks = 0
    for _ in range(TRIALS):
        a, b = identical_pair(rng, n, 0.02, slow, worse)
        rollbacks += analysis.judge(a, b).outcome == "rollback"
    return rollbacks / TRIALS


def sd(p):
    return math.sqrt(p * (1 - p) / TRIALS)


def test_mann_whitney_size_matches_alpha(impl):
    rate = rollback_rate(impl, ("latency",), seed=1)
    assert 0.05 - 3 * sd(0.05) <= rate <= 0.05 + 3 * sd(0.05), rate


def test_fisher_exact_is_conservative(impl):
    rate = rollback_rate(impl, ("errors",), seed=2)
    assert rate <= 0.05 + 3 * sd(0.05), rate


def test_bonferroni_keeps_a_step_at_alpha_with_two_metrics(impl):
    rate = rollback_rate(impl, ("errors", "latency"), seed=3)
    assert rate <= 0.05 + 3 * sd(0.05), rate


def test_a_bad_version_is_caught(impl):
    """Power, so a test that never rolls back cannot pass the size tests alone."""
    assert rollback_rate(impl, ("latency",), seed=4, slow=1.3) > 0.8
    assert rollback_rate(impl, ("errors",), seed=5, worse=0.06, n=300) > 0.8


@settings(max_examples=40, deadline=None)
@given(
    requests=st.integers(1, 400),
    error_share=st.floats(0.0, 1.0),
    latencies=st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=1, max_size=60),
    alpha=st.floats(0.001, 0.5),
)
def test_identical_stats_never_roll_back(impl, requests, error_share, latencies, alpha):
    stats = VersionStats(requests, int(requests * error_share), tuple(latencies))
    verdict = impl.CanaryAnalysis(CanaryPlan(alpha=alpha, min_requests=1)).judge(stats, stats)
    assert verdict.outcome == "promote"
    assert 0.0 <= verdict.p_value <= 1.0


def test_a_whole_canary_on_identical_versions_rolls_back_at_the_nominal_rate(impl):
    """k judged steps with fresh data each: 1 - (1 - alpha)^k (latency alone: the continuous test has size alpha)."""
    from solution.core.deploy_types import Ready, RolledBack, RolloutPlan, Window

    plan = RolloutPlan(max_surge=1, max_unavailable=0, canary=CanaryPlan(steps=(1, 5, 25, 100), window=1.0, min_requests=100,
                                                                     metrics=("latency",)))  # fmt: skip
    nominal = impl.CanaryAnalysis(plan.canary).nominal_false_rollback()
    rng = random.Random(6)
    runs, rolled = 200, 0
    for _ in range(runs):
        deploy = impl.RollingDeploy([(f"s{i}", "v1") for i in range(4)], "v2", plan, 0.0)
        t = 0.0
        pending = list(deploy.initial_actions)
        while deploy.state == "running" and deploy.weight < 1.0:
            starting = [sid for sid, (_, s) in deploy.servers().items() if s == "starting"]
            if starting:
                t += 1.0
                pending = deploy.on(Ready(starting[0], t))
            elif deploy.next_event_time() is not None:
                t = deploy.next_event_time()
                a, b = identical_pair(rng, 120, 0.02)
                pending = deploy.on(Window(t, a, b))
            else:
                break  # the canary passed (the rolling update took over)
            if any(isinstance(x, RolledBack) for x in pending):
                rolled += 1
                break
    rate = rolled / runs
    spread = 3 * math.sqrt(nominal * (1 - nominal) / runs)
    assert abs(nominal - (1 - 0.95**3)) < 1e-12
    assert nominal - spread <= rate <= nominal + spread, (rate, nominal)
