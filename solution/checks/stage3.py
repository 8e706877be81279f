"""Stage 3's check: each strategy of an implementation against the reference's, on seeded calls.

Both routers are :class:`solution.core.routing.Router` (shared bookkeeping); only
the strategy differs, so any difference in a routing answer or in the stats
snapshot is the strategy's.  Randomised strategies get the same seed on both
sides, so they must draw the same samples (through ``Router.sample``).
:func:`run_stage3` (``solution.checks.check_stage3``) prints one stable line
per group; ``tests/stage3/test_differential.py`` uses the same pieces.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from types import ModuleType
from typing import Any

import solution
from solution.checks.common import CheckReport, GroupResult, Mismatch, Op, minimize, compare_with_reference, outcome
from solution.core.routing import Router

__all__ = ["SPEEDS", "STRATEGY_CASES", "random_ops3", "router_factory", "compare_strategy", "run_stage3"]

#: Relative speeds of the servers ``s0``..``s5`` in the seeded sequences (a mixed fleet).
SPEEDS = {"s0": 1.0, "s1": 1.0, "s2": 2.0, "s3": 3.0, "s4": 0.5, "s5": 2.0}

#: (group name, class name in the implementation, constructor options).
STRATEGY_CASES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("power of two choices: the less loaded of two draws", "PowerOfChoices", {"d": 2, "seed": 7}),
    ("power of three choices", "PowerOfChoices", {"d": 3, "seed": 11}),
    ("weighted response time (EWMA of observed latency)", "WeightedResponseTime", {"alpha": 0.3}),
    ("peak-EWMA: up at once, down slowly", "PeakEwma", {"alpha": 0.2}),
    ("least outstanding tokens per unit of speed", "LeastOutstandingTokens", {}),
    ("predictive: least expected delay", "Predictive", {}),
)


def random_ops3(seed: int, n: int = 300) -> list[Op]:
    """Seeded calls over six servers of mixed speed: adds, drains, routes of 1 to 30,000 tokens,
    completions and latency observations."""
    rng = random.Random(seed)
    ops: list[Op] = [("add_server", (f"s{k}", rng.randint(1, 6), rng.choice([24, 40, 80]))) for k in range(4)]
    for _ in range(n):
        kind = rng.choices(("add", "remove", "route", "observe", "complete"), weights=(1, 1, 8, 4, 6))[0]
        rid = f"r{rng.randrange(30)}"
        if kind == "add":
            ops.append(("add_server", (f"s{rng.randrange(6)}", rng.randint(1, 6), rng.choice([24, 40, 80]))))
        elif kind == "remove":
            ops.append(("remove_server", (f"s{rng.randrange(6)}",)))
        elif kind == "route":
            ops.append(("route_request", (rid, rng.choice([1, 20, 300, 2_000, 4_097, 30_000]))))
        elif kind == "observe":
            ops.append(("observe", (rid, round(rng.lognormvariate(0.0, 1.0), 3))))
        else:
            ops.append(("complete_request", (rid,)))
    return ops


def router_factory(impl: ModuleType, class_name: str, options: dict[str, Any]) -> Callable[[], Router]:
    """A factory of routers running ``impl``'s strategy ``class_name(**options)`` over :data:`SPEEDS`."""
    return lambda: Router(getattr(impl, class_name)(**options), speeds=SPEEDS)


def compare_strategy(impl: ModuleType, class_name: str, options: dict[str, Any], ops: list[Op]) -> Mismatch | None:
    """The first difference between ``impl``'s strategy and the reference's on ``ops`` (None: none)."""
    make, ref = router_factory(impl, class_name, options), router_factory(solution, class_name, options)
    built = outcome(make)
    if built[0] != "ok":
        return Mismatch((), f"Router({class_name}(**{options})) raises {built[1]}")
    mismatch = compare_with_reference(make, ops, make_reference=ref)
    return None if mismatch is None else minimize(make, ops, mismatch, make_reference=ref)


#: Bad constructor arguments: each must raise the same built-in kind as the reference.
BAD_ARGUMENTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("PowerOfChoices", {"d": 0}),
    ("PowerOfChoices", {"d": "2"}),
    ("PowerOfChoices", {"d": True}),
    ("PowerOfChoices", {"seed": -1}),
    ("WeightedResponseTime", {"alpha": 0}),
    ("WeightedResponseTime", {"alpha": 1.5}),
    ("WeightedResponseTime", {"alpha": "0.3"}),
    ("PeakEwma", {"alpha": float("nan")}),
)


def _bad_arguments(impl: ModuleType) -> Mismatch | None:
    for class_name, options in BAD_ARGUMENTS:
        got = outcome(lambda: type(getattr(impl, class_name)(**options)).__name__)
        want = outcome(lambda: type(getattr(solution, class_name)(**options)).__name__)
        if got != want:
            shown = "returns an object" if got[0] == "ok" else f"raises {got[1]}"
            return Mismatch((), f"{class_name}(**{options}) {shown}, the reference raises {want[1]}")
    return None


def run_stage3(impl: ModuleType | None = None, *, echo: bool = True) -> CheckReport:
    """Run every stage-3 group against ``impl`` (default: ``LB_IMPL``'s package); print and return the report."""
    if impl is None:
        from solution.core.impl import load_impl

        impl = load_impl()
    report = CheckReport(stage=3)
    for name, class_name, options in STRATEGY_CASES:
        mismatch = None
        for seed in range(4):
            mismatch = compare_strategy(impl, class_name, options, random_ops3(seed, 250))
            if mismatch is not None:
                break
        report.groups.append(GroupResult(name, mismatch))
    report.groups.append(GroupResult("bad arguments: the right exception", _bad_arguments(impl)))
    if echo:
        print(report)
    return report
