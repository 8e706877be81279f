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

from solution.checks.common import CheckReport, Mismatch, Op, compare_with_reference, minimize, outcome
from solution.checks.runner import StageSpec, as_groups, run_check
from solution.checks.script import Group
from solution.core.latency import LatencyModel
from solution.core.routing import Router

__all__ = ["SPEEDS", "MODELS", "CheckRouter", "STRATEGY_CASES", "BAD_ARGUMENTS", "SPEC", "random_ops3", "router_factory", "compare_strategy", "run_stage3"]

#: Relative speeds of the servers ``s0``..``s5`` in the seeded sequences (a mixed fleet).
SPEEDS = {"s0": 1.0, "s1": 1.0, "s2": 2.0, "s3": 3.0, "s4": 0.5, "s5": 2.0}

#: Latency models given explicitly (the others get ``REFERENCE_MODEL.scaled(speed)``): ``s5`` is an
#: A10-24GB (``ModelSpec().latency_model(gpu_preset("A10-24GB"))``), whose compute is slower relative
#: to its memory than the reference's, so its speed alone does not predict its latency.
MODELS = {"s5": LatencyModel(weights_s=14e9 / (600e9 * 0.7), kv_s=(2 * 32 * 4096 * 2) * 1024 / (600e9 * 0.7),
                             token_s=2 * 7e9 / (125e12 * 0.5))}  # fmt: skip


class CheckRouter(Router):
    """The router the cases build: :class:`Router` plus a positional spelling of ``route_request(..., prompt_tokens=)``."""

    def route_with_prompt(self, request_id: str, estimated_tokens: int, prompt_tokens: int) -> str:
        """``route_request(request_id, estimated_tokens, prompt_tokens=prompt_tokens)``."""
        return self.route_request(request_id, estimated_tokens, prompt_tokens=prompt_tokens)


#: (group name, class name in the implementation, constructor options).
STRATEGY_CASES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("power of two choices: the less loaded of two draws", "PowerOfChoices", {"d": 2, "seed": 7}),
    ("power of three choices", "PowerOfChoices", {"d": 3, "seed": 11}),
    ("weighted response time (EWMA of observed latency)", "WeightedResponseTime", {"alpha": 0.3}),
    ("peak-EWMA: up at once, down slowly", "PeakEwma", {"alpha": 0.2}),
    ("least outstanding output tokens per unit of speed", "LeastOutstandingTokens", {}),
    ("predictive: least expected seconds (latency model)", "Predictive", {}),
)


def random_ops3(seed: int, n: int = 300) -> list[Op]:
    """Seeded calls over six servers of mixed speed: adds, drains, routes of 1 to 30,000 tokens (half of
    them with the prompt's share given), completions and latency observations."""
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
            tokens = rng.choice([1, 20, 300, 2_000, 4_097, 30_000])
            if rng.random() < 0.5:
                ops.append(("route_request", (rid, tokens)))
            else:  # a long prompt with a short answer, or the other way round
                ops.append(("route_with_prompt", (rid, tokens, rng.choice([0, tokens // 20, tokens // 2, tokens - tokens // 20, tokens]))))
        elif kind == "observe":
            ops.append(("observe", (rid, round(rng.lognormvariate(0.0, 1.0), 3))))
        else:
            ops.append(("complete_request", (rid,)))
    return ops


def router_factory(impl: ModuleType, class_name: str, options: dict[str, Any]) -> Callable[[], Router]:
    """A factory of routers running ``impl``'s strategy ``class_name(**options)`` over :data:`SPEEDS` and :data:`MODELS`."""
    return lambda: CheckRouter(getattr(impl, class_name)(**options), speeds=SPEEDS, models=MODELS)


def compare_strategy(impl: ModuleType, class_name: str, options: dict[str, Any], ops: list[Op]) -> Mismatch | None:
    """The first difference between ``impl``'s strategy and the reference's on ``ops`` (None: none)."""
    import solution.strategies as reference  # the reference; absent from a candidate's bundle

    make, ref = router_factory(impl, class_name, options), router_factory(reference, class_name, options)
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


class RouterHarness:
    """Stage 3's cases build ``CheckRouter(impl.<Strategy>(**options), speeds=SPEEDS, models=MODELS)`` and look at its stats.

    ``make`` is ``{"strategy": name, "options": {...}}``; with ``"bare": True``
    only the strategy is built (the bad-argument cases: building must raise).
    """

    stage = 3
    snapshot = "get_server_stats"

    def build(self, impl: Any, make: Any) -> Any:
        strategy = getattr(impl, make["strategy"])(**make["options"])
        return _Built() if make.get("bare") else CheckRouter(strategy, speeds=SPEEDS, models=MODELS)


class _Built:
    """What a bare build returns: nothing to look at."""

    def get_server_stats(self) -> None:
        return None


def public_groups() -> tuple[Group, ...]:
    """The check cell's groups: each strategy on four seeded sequences, then the bad arguments."""
    groups = [(name, [({"strategy": cls, "options": options}, random_ops3(seed, 250)) for seed in range(4)])
              for name, cls, options in STRATEGY_CASES]
    groups.append(("bad arguments: the right exception", [({"strategy": cls, "options": options, "bare": True}, [])
                                                           for cls, options in BAD_ARGUMENTS]))
    return as_groups("p3", groups, make=lambda s: s[0], ops=lambda s: s[1])


SPEC = StageSpec(3, "strategies", tuple(sorted({cls for _, cls, _ in STRATEGY_CASES})), RouterHarness(), public_groups)


def run_stage3(impl: ModuleType | None = None, *, echo: bool = True, only: str | tuple[str, ...] | None = None, strict: bool = True) -> CheckReport:
    """Compare ``impl``'s stage-3 strategies (default: ``LB_IMPL``'s) with the reference's recorded behaviour.

    Prints one line per group, returns the report, and raises
    :class:`~solution.checks.common.CheckFailed` if a group fails
    (``strict=False`` only returns).
    """
    return run_check(SPEC, impl, echo=echo, only=only, strict=strict)
