"""Stage 1's check: an implementation's ``LoadBalancer`` against the reference, rule group by rule group."""

from __future__ import annotations

import random
from types import ModuleType

from typing import Any

from solution.checks.common import CheckReport, Op
from solution.checks.runner import StageSpec, as_groups, run_check

__all__ = ["STAGE1_GROUPS", "BEHAVIOUR", "COST", "SPEC", "random_ops", "run_stage1"]


# -- stage 1 --------------------------------------------------------------------


def _servers(*specs: tuple[str, int, int]) -> list[Op]:
    return [("add_server", spec) for spec in specs]


def _routes(*specs: tuple[str, int]) -> list[Op]:
    return [("route_request", spec) for spec in specs]


def random_ops(seed: int, n: int = 300) -> list[Op]:
    """A seeded random sequence of stage-1 calls over a few servers and request ids."""
    rng = random.Random(seed)
    ops: list[Op] = []
    for _ in range(n):
        kind = rng.choices(("add", "remove", "route", "complete"), weights=(2, 1, 8, 6))[0]
        if kind == "add":
            ops.append(("add_server", (f"s{rng.randrange(6)}", rng.randint(1, 6), rng.choice([24, 40, 48, 80]))))
        elif kind == "remove":
            ops.append(("remove_server", (f"s{rng.randrange(6)}",)))
        elif kind == "route":
            ops.append(("route_request", (f"r{rng.randrange(40)}", rng.choice([1, 50, 800, 4096, 4097, 30_000]))))
        else:
            ops.append(("complete_request", (f"r{rng.randrange(40)}",)))
    return ops


#: The group whose cases judge error messages too (quote the id, at least six words).
MESSAGES = "error messages: quote the id, say what to do"

#: Rule groups of stage 1: (name, scenarios).  Each scenario is a list of calls.
#: Outside the tie-break group no route is a tie (the first request goes to a server while it is
#: the only one, and capacities are coprime), so a wrong tie-break fails that group (and the
#: random sequences) only.  Exactness is not shown here: a float ratio goes wrong only with a
#: million or so requests in flight on each of two servers (tests/stage1/test_rules.py does it).
STAGE1_GROUPS: tuple[tuple[str, tuple[list[Op], ...]], ...] = (
    (
        "lowest load ratio, compared exactly",
        (
            _servers(("big", 7, 80)) + _routes(("r0", 100)) + _servers(("small", 3, 80)) + _routes(*((f"r{i}", 100) for i in range(1, 10))),
            _servers(("a", 5, 40)) + _routes(("r0", 10)) + _servers(("b", 8, 40)) + _routes(*((f"r{i}", 10) for i in range(1, 12))),
            _servers(("b", 3, 80)) + _routes(("r0", 10)) + _servers(("a", 8, 24)) + _routes(*((f"r{i}", 10) for i in range(1, 10))),
            # 33/100 < 1/3 < 34/100: "hundred" takes 34 requests, then "third" the next
            _servers(("third", 3, 80)) + _routes(("t", 10)) + _servers(("hundred", 100, 24)) + _routes(*((f"h{i}", 10) for i in range(36))),
        ),
    ),
    (
        "tie-breaks: memory, then free slots, then order added",
        (
            _servers(("a", 4, 40), ("b", 4, 80), ("c", 4, 24)) + _routes(("r1", 10)),
            _servers(("small", 2, 80), ("large", 8, 80)) + _routes(*((f"r{i}", 10) for i in range(6))),
            _servers(("x", 2, 40), ("y", 2, 40), ("z", 2, 40)) + _routes(*((f"r{i}", 10) for i in range(6))),
            _servers(("x", 1, 40), ("y", 1, 40)) + [("remove_server", ("x",))] + _servers(("x", 1, 40)) + _routes(("r", 10)),
            # memory before free slots
            _servers(("roomy", 8, 40), ("big_mem", 2, 80)) + _routes(("r", 10)),
            # equal fractions tie exactly (1/3 = 2/6, 2/3 = 4/6): the tie-breaks decide
            _servers(("a", 3, 40), ("b", 6, 40)) + _routes(*((f"r{i}", 10) for i in range(9))),
            _servers(("three", 3, 40), ("six", 6, 80)) + _routes(*((f"r{i}", 10) for i in range(7))),
        ),
    ),
    (
        "large requests (> 4096 tokens) need >= 80 GB",
        (
            _servers(("a100", 4, 80)) + _routes(("r1", 100)) + _servers(("a10", 4, 24)) + _routes(("r2", 5000), ("r3", 4096), ("r4", 4097)),
            _servers(("a10", 4, 24), ("h100", 1, 80)) + _routes(("r1", 9000), ("r2", 9000), ("r3", 10)),
        ),
    ),
    (
        "capacity: full servers skipped, NoCapacityError, no trace left",
        (
            _servers(("a", 1, 40)) + _routes(("r0", 10)) + _servers(("b", 2, 40)) + _routes(("r1", 10), ("r2", 10), ("r3", 10), ("r3", 10)),
            _routes(("r", 10)),
            _servers(("a", 1, 40)) + _routes(("r1", 10), ("r2", 10)) + [("complete_request", ("r2",)), ("complete_request", ("r1",))] + _routes(("r2", 10)),
        ),
    ),
    (
        "graceful drain",
        (
            _servers(("a", 4, 80)) + _routes(("r1", 10)) + _servers(("b", 4, 24)) + _routes(("r2", 10)) + [("remove_server", ("a",))] + _routes(("r3", 10)),
            _servers(("a", 2, 80)) + _routes(("r1", 10), ("r2", 10)) + [("remove_server", ("a",)), ("remove_server", ("a",)), ("complete_request", ("r1",)), ("complete_request", ("r2",)), ("remove_server", ("a",))],
            _servers(("a", 2, 80)) + [("remove_server", ("a",)), ("route_request", ("r", 10)), ("add_server", ("a", 2, 80))] + _routes(("r", 10)),
            _servers(("a", 1, 80)) + _routes(("r", 10)) + [("remove_server", ("a",)), ("add_server", ("a", 1, 80)), ("complete_request", ("r",)), ("add_server", ("a", 3, 80))],
        ),
    ),
    (
        "completion and the stats snapshot",
        (
            _servers(("a", 5, 80)) + _routes(("z", 10), ("a", 10), ("m", 10)) + [("complete_request", ("a",)), ("complete_request", ("a",))] + _routes(("b", 10)),
            _servers(("a", 2, 80)) + _routes(("r0", 10)) + _servers(("b", 3, 40)) + _routes(("r1", 10), ("r2", 10))
            + [("complete_request", ("r0",)), ("complete_request", ("r2",))] + _routes(("r3", 10)),
        ),
    ),
    (
        "bad input: right exception, state unchanged",
        (
            _servers(("a", 2, 80))
            + _routes(("r1", 10))
            + [
                ("add_server", ("a", 1, 80)),
                ("add_server", ("", 1, 80)),
                ("add_server", ("x", 0, 80)),
                ("add_server", ("x", True, 80)),
                ("add_server", ("x", 1, 80.0)),
                ("add_server", (None, 1, 80)),
                ("remove_server", ("ghost",)),
                ("remove_server", ("",)),
                ("route_request", ("r1", 10)),
                ("route_request", ("r9", 0)),
                ("route_request", ("r9", True)),
                ("route_request", ("r9", 1.5)),
                ("route_request", (9, 10)),
                ("complete_request", ("ghost",)),
                ("complete_request", (None,)),
                ("complete_request", ("",)),
            ]
            + _routes(("r2", 10)),
        ),
    ),
    (
        MESSAGES,
        (
            _servers(("a", 1, 80)) + _routes(("r1", 10))
            + [("add_server", ("a", 1, 80)), ("remove_server", ("ghost",)), ("route_request", ("r1", 10)),
               ("route_request", ("r2", 10)), ("complete_request", ("ghost",))],
            _servers(("gpu-7", 2, 24)) + [("remove_server", ("gpu-7",)), ("remove_server", ("gpu-7",)), ("complete_request", ("req 9",)),
                                            ("route_request", ("big one", 5000))],
        ),
    ),
    ("random operations against the reference (seeded)", tuple(random_ops(seed) for seed in range(8))),
)

#: The behaviour groups (every group but the cost rule): what step 1, a plain scan, must pass.
#: ``check_stage1(impl, only=BEHAVIOUR)`` runs them (the exact-ratio probe included).
BEHAVIOUR: tuple[str, ...] = tuple(name for name, _ in STAGE1_GROUPS)

#: The prefix of the cost group ("cost: route_request is O(log S), no scan"): what step 2, the heap, adds.
COST = "cost"


class LoadBalancerHarness:
    """Stage 1's cases build ``impl.LoadBalancer()`` and look at ``get_server_stats()`` after every call."""

    stage = 1
    snapshot = "get_server_stats"

    def build(self, impl: Any, make: Any) -> Any:
        return impl.LoadBalancer()


SPEC = StageSpec(1, "balancer", ("LoadBalancer",), LoadBalancerHarness(), lambda: as_groups("p1", STAGE1_GROUPS, messages=(MESSAGES,)))


def run_stage1(
    impl: ModuleType | None = None, *, echo: bool = True, only: str | tuple[str, ...] | None = None, strict: bool = True
) -> CheckReport:
    """Compare ``impl.LoadBalancer`` (default: ``LB_IMPL``'s) with the reference's recorded behaviour.

    Prints one line per rule group and returns the report; raises
    :class:`~solution.checks.common.CheckFailed` after printing if a group
    fails (``strict=False`` only returns).  A crash or a stub is reported as
    that group's failure, never raised from inside.  ``only`` keeps the groups
    whose name starts with it, or with one of a tuple of prefixes:
    :data:`BEHAVIOUR` (step 1, a scan) or :data:`COST` (step 2, the heap).
    """
    return run_check(SPEC, impl, echo=echo, only=only, strict=strict)  # type: ignore[arg-type]  # startswith takes a tuple
