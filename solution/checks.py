"""Check cells: compare an implementation with the reference, rule group by rule group.

A notebook's check cell calls :func:`check_stage1`, which prints one short,
stable line per group of rules: ``PASS`` or ``FAIL`` with the smallest
sequence of calls that shows the difference.  The same comparison drives the
differential tests (``tests/stage1/test_differential.py``).

The output depends only on the implementation's behaviour (seeded, no
timings), so nbval can compare it with the output stored in the notebook.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import solution

__all__ = ["Op", "Mismatch", "GroupResult", "CheckReport", "compare_with_reference", "random_ops", "check_stage1", "STAGE1_GROUPS", "check_stage2", "check_stage3"]

#: One call on a balancer: (method name, positional arguments).
Op = tuple[str, tuple[Any, ...]]

_KINDS = (TypeError, KeyError, ValueError, RuntimeError)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """What a call did: ``("ok", result)`` or ``("raised", kind)``.

    ``kind`` is the built-in class the exception is an instance of
    (``KeyError``, ...), so a candidate may use its own subclasses;
    ``NotImplementedError`` and unexpected exceptions keep their own name.
    """
    try:
        return ("ok", call())
    except NotImplementedError as exc:
        return ("raised", f"NotImplementedError({exc})")
    except _KINDS as exc:
        return ("raised", next(kind.__name__ for kind in _KINDS if isinstance(exc, kind)))
    except Exception as exc:  # a candidate's bug: report it, do not crash the check
        return ("raised", f"{type(exc).__name__}({exc})")


def _show(result: tuple[str, Any]) -> str:
    status, value = result
    return f"returns {value!r}" if status == "ok" else f"raises {value}"


def _call(op: Op) -> str:
    name, args = op
    return f"{name}({', '.join(map(repr, args))})"


@dataclass(frozen=True)
class Mismatch:
    """The first call whose result or stats differ from the reference's."""

    ops: tuple[Op, ...]  # the calls up to and including the differing one
    what: str  # e.g. "route_request('r1', 10) returned 'a', the reference 'b'"

    def describe(self) -> str:
        before = "; ".join(_call(op) for op in self.ops[:-1])
        return f"{self.what}" + (f" after {before}" if before else "")


def compare_with_reference(make: Callable[[], Any], ops: Sequence[Op], *, make_reference: Callable[[], Any] | None = None,
                           snapshot: str = "get_server_stats") -> Mismatch | None:  # fmt: skip
    """Run ``ops`` on a fresh implementation and a fresh reference; return the first difference.

    Results are compared after every call, and so are the snapshots the
    ``snapshot`` method returns (a failed call must leave the state
    unchanged, as the reference's does).
    """
    ref_result = outcome(make_reference or solution.LoadBalancer)
    ours_result = outcome(make)
    if ours_result[0] != "ok":
        return Mismatch((), f"LoadBalancer() {_show(ours_result)}")
    ours, ref = ours_result[1], ref_result[1]
    for i, op in enumerate(ops):
        name, args = op
        got = outcome(lambda: getattr(ours, name)(*args))
        want = outcome(lambda: getattr(ref, name)(*args))
        if got != want:
            return Mismatch(tuple(ops[: i + 1]), f"{_call(op)} {_show(got)}, the reference {_show(want)}")
        got_stats = outcome(getattr(ours, snapshot))
        want_stats = getattr(ref, snapshot)()
        if got_stats != ("ok", want_stats):
            return Mismatch(
                tuple(ops[: i + 1]),
                f"after {_call(op)} {snapshot}() gives {_show(got_stats)}, the reference {want_stats!r}",
            )
    return None


def _minimize(make: Callable[[], Any], ops: Sequence[Op], mismatch: Mismatch, *, make_reference: Callable[[], Any] | None = None,
              snapshot: str = "get_server_stats") -> Mismatch:  # fmt: skip
    """Greedily drop calls while a difference remains: a small example reads best."""
    current, best = list(mismatch.ops), mismatch
    changed = True
    while changed:
        changed = False
        for i in range(len(current) - 1, -1, -1):
            trial = current[:i] + current[i + 1 :]
            found = compare_with_reference(make, trial, make_reference=make_reference, snapshot=snapshot)
            if found is not None and len(found.ops) < len(current):
                current, best, changed = list(found.ops), found, True
                break
    return best


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


#: Rule groups of stage 1: (name, scenarios).  Each scenario is a list of calls.
STAGE1_GROUPS: tuple[tuple[str, tuple[list[Op], ...]], ...] = (
    (
        "lowest load ratio, compared exactly",
        (
            _servers(("big", 10, 80), ("small", 2, 80)) + _routes(*((f"r{i}", 100) for i in range(10))),
            _servers(("a", 3, 40), ("b", 6, 40)) + _routes(*((f"r{i}", 10) for i in range(9))),
            _servers(("a", 8, 24), ("b", 2, 80)) + _routes(*((f"r{i}", 10) for i in range(10))),
        ),
    ),
    (
        "tie-breaks: memory, then free slots, then order added",
        (
            _servers(("a", 4, 40), ("b", 4, 80), ("c", 4, 24)) + _routes(("r1", 10)),
            _servers(("small", 2, 80), ("large", 8, 80)) + _routes(*((f"r{i}", 10) for i in range(6))),
            _servers(("x", 2, 40), ("y", 2, 40), ("z", 2, 40)) + _routes(*((f"r{i}", 10) for i in range(6))),
            _servers(("x", 1, 40), ("y", 1, 40)) + [("remove_server", ("x",))] + _servers(("x", 1, 40)) + _routes(("r", 10)),
        ),
    ),
    (
        "large requests (> 4096 tokens) need >= 80 GB",
        (
            _servers(("a10", 4, 24), ("a100", 4, 80)) + _routes(("r1", 100), ("r2", 5000), ("r3", 4096), ("r4", 4097)),
            _servers(("a10", 4, 24), ("h100", 1, 80)) + _routes(("r1", 9000), ("r2", 9000), ("r3", 10)),
        ),
    ),
    (
        "capacity: full servers skipped, NoCapacityError, no trace left",
        (
            _servers(("a", 1, 40), ("b", 2, 40)) + _routes(("r0", 10), ("r1", 10), ("r2", 10), ("r3", 10), ("r3", 10)),
            _routes(("r", 10)),
            _servers(("a", 1, 40)) + _routes(("r1", 10), ("r2", 10)) + [("complete_request", ("r2",)), ("complete_request", ("r1",))] + _routes(("r2", 10)),
        ),
    ),
    (
        "graceful drain",
        (
            _servers(("a", 4, 80), ("b", 4, 24)) + _routes(("r1", 10), ("r2", 10)) + [("remove_server", ("a",))] + _routes(("r3", 10)),
            _servers(("a", 2, 80)) + _routes(("r1", 10), ("r2", 10)) + [("remove_server", ("a",)), ("remove_server", ("a",)), ("complete_request", ("r1",)), ("complete_request", ("r2",)), ("remove_server", ("a",))],
            _servers(("a", 2, 80)) + [("remove_server", ("a",)), ("route_request", ("r", 10)), ("add_server", ("a", 2, 80))] + _routes(("r", 10)),
            _servers(("a", 1, 80)) + _routes(("r", 10)) + [("remove_server", ("a",)), ("add_server", ("a", 1, 80)), ("complete_request", ("r",)), ("add_server", ("a", 3, 80))],
        ),
    ),
    (
        "completion and the stats snapshot",
        (
            _servers(("a", 5, 80)) + _routes(("z", 10), ("a", 10), ("m", 10)) + [("complete_request", ("a",)), ("complete_request", ("a",))] + _routes(("b", 10)),
            _servers(("a", 2, 80), ("b", 2, 40)) + _routes(("r0", 10), ("r1", 10), ("r2", 10)) + [("complete_request", ("r0",)), ("complete_request", ("r2",))] + _routes(("r3", 10)),
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
    ("random operations against the reference (seeded)", tuple(random_ops(seed) for seed in range(8))),
)


@dataclass
class GroupResult:
    name: str
    mismatch: Mismatch | None

    @property
    def passed(self) -> bool:
        return self.mismatch is None

    def line(self) -> str:
        if self.mismatch is None:
            return f"PASS  {self.name}"
        return f"FAIL  {self.name}: {self.mismatch.describe()}"


@dataclass
class CheckReport:
    stage: int
    groups: list[GroupResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(g.passed for g in self.groups)

    @property
    def total(self) -> int:
        return len(self.groups)

    def __str__(self) -> str:
        lines = [g.line() for g in self.groups]
        lines.append(f"stage {self.stage}: {self.passed}/{self.total} rule groups pass")
        return "\n".join(lines)


def check_stage1(impl: ModuleType | None = None, *, echo: bool = True) -> CheckReport:
    """Compare ``impl.LoadBalancer`` (default: ``LB_IMPL``'s) with the reference.

    Prints one line per rule group (``echo=False`` to stay quiet) and
    returns the report.  Never raises for a faulty implementation: a crash
    or a stub is reported as that group's failure.
    """
    if impl is None:
        from solution.impl import load_impl

        impl = load_impl()
    report = CheckReport(stage=1)
    for name, scenarios in STAGE1_GROUPS:
        mismatch = None
        for ops in scenarios:
            mismatch = compare_with_reference(impl.LoadBalancer, ops)
            if mismatch is not None:
                mismatch = _minimize(impl.LoadBalancer, ops, mismatch)
                break
        report.groups.append(GroupResult(name, mismatch))
    if echo:
        print(report)
    return report


def check_stage2(impl: ModuleType | None = None, *, echo: bool = True, only: str | None = None) -> CheckReport:
    """Compare ``impl.RequestQueue`` with the reference's queue, one line per rule group.

    The groups live in :mod:`solution.queue_checks`; ``only`` keeps the groups
    whose name starts with it.  Like :func:`check_stage1` it never raises for
    a faulty implementation.
    """
    from solution.queue_checks import run_stage2

    return run_stage2(impl, echo=echo, only=only)


def check_stage3(impl: ModuleType | None = None, *, echo: bool = True) -> CheckReport:
    """Compare ``impl``'s stage-3 strategies with the reference's, one line per rule group.

    The groups live in :mod:`solution.strategy_checks`; like :func:`check_stage1`
    it never raises for a faulty implementation.
    """
    from solution.strategy_checks import run_stage3

    return run_stage3(impl, echo=echo)
