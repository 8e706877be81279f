"""The pieces every stage's check shares: calls, outcomes, mismatches, reports.

:func:`compare_with_reference` runs calls on a live implementation and a live
reference side by side and :func:`minimize` shrinks a difference to the
fewest calls: the differential tests and the check cells' feedback use them
where the reference is importable.  :class:`CheckReport` is what a check
cell returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from solution.checks.script import differing_fields, encode, exception_kind, show_value

__all__ = ["Op", "Mismatch", "GroupResult", "CheckReport", "CheckFailed", "outcome", "compare_with_reference", "minimize"]

#: One call on a balancer: (method name, positional arguments).
Op = tuple[str, tuple[Any, ...]]

def round_floats(value: Any) -> Any:
    """``value`` with every finite float rounded to 9 decimals, containers included.

    Lists and plain tuples come back as lists; a named tuple is left as it is.
    Recorded answers compare equal across platforms this way.  O(size of value).
    """
    if isinstance(value, float):
        return round(value, 9) if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: round_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return [round_floats(v) for v in value]
    return value


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """What a call did: ``("ok", result)`` or ``("raised", kind)``.

    ``kind`` is the built-in class the exception is an instance of
    (``KeyError``, ...), so a candidate may use its own subclasses;
    ``NotImplementedError`` and unexpected exceptions keep their own name.
    """
    try:
        return ("ok", call())
    except Exception as exc:  # a candidate's bug too: report it, do not crash the check
        return ("raised", exception_kind(exc) or f"{type(exc).__name__}({exc})")


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
    if make_reference is None:
        from solution.balancer import LoadBalancer as make_reference  # the reference; absent from a candidate's bundle
    ref_result = outcome(make_reference)
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
            return Mismatch(tuple(ops[: i + 1]), _snapshot_difference(op, snapshot, got_stats, want_stats))
    return None


def _snapshot_difference(op: Op, snapshot: str, got: tuple[str, Any], want: Any) -> str:
    """What differs between two snapshots, field by field (up to three fields)."""
    if got[0] != "ok":
        return f"after {_call(op)} {snapshot}() {_show(got)}, the reference returns {want!r}"
    fields = "; ".join(f"{path}: {show_value(a, 60)}, the reference {show_value(b, 60)}"
                       for path, a, b in differing_fields(encode(got[1]), encode(want)))
    return f"after {_call(op)} {snapshot}() differs: {fields}"


def minimize(make: Callable[[], Any], ops: Sequence[Op], mismatch: Mismatch, *, make_reference: Callable[[], Any] | None = None,
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


class CheckFailed(AssertionError):
    """A check cell found rule groups that differ from the reference; the lines above say which and why."""


@dataclass
class GroupResult:
    """One rule group's verdict: how many of its cases pass, and the first difference found."""

    name: str
    mismatch: Any  # a Mismatch with .describe(), or None
    cases_passed: int = 0
    cases: int = 0

    @property
    def passed(self) -> bool:
        return self.mismatch is None

    def line(self) -> str:
        count = f" ({self.cases_passed}/{self.cases} cases)" if self.cases else ""
        if self.mismatch is None:
            return f"PASS  {self.name}{count}"
        return f"FAIL  {self.name}{count}: {self.mismatch.describe()}"


@dataclass
class CheckReport:
    """A check cell's result: one :class:`GroupResult` per rule group."""

    stage: int
    groups: list[GroupResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(g.passed for g in self.groups)

    @property
    def total(self) -> int:
        return len(self.groups)

    @property
    def ok(self) -> bool:
        return self.passed == self.total

    def failing(self) -> list[str]:
        return [g.name for g in self.groups if not g.passed]

    def __str__(self) -> str:
        lines = [g.line() for g in self.groups]
        lines.append(f"stage {self.stage}: {self.passed}/{self.total} rule groups pass")
        return "\n".join(lines)

    def require(self) -> CheckReport:
        """Raise :class:`CheckFailed` naming the failing groups, unless every group passes."""
        if not self.ok:
            raise CheckFailed(f"stage {self.stage}: {self.total - self.passed} of {self.total} rule groups differ from the reference: "
                              + "; ".join(self.failing()) + " (the FAIL lines above say where)")
        return self
