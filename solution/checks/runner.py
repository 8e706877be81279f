"""Run a stage's recorded cases on an implementation: the check cells' engine.

The reference's steps for every public case are recorded in
``solution/checks/recorded/stageN.json.gz`` (``tools/record_cases.py`` writes
them from the reference; a test keeps them in sync), so a check needs no
reference at run time: it works the same in this repository and in a
candidate's bundle.  Where the reference is importable, a failing case is
also shrunk to the fewest calls that still differ.
"""

from __future__ import annotations

import gzip
import importlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from solution.checks.common import CheckReport, GroupResult, minimize, compare_with_reference
from solution.checks.script import Case, Group, Harness, Mismatch, first_difference, run_case

__all__ = ["StageSpec", "as_groups", "run_check", "load_recorded", "record", "write_recorded", "is_current", "RECORDED"]

#: Where the public cases' recorded steps live.
RECORDED = Path(__file__).resolve().parent / "recorded"


@dataclass(frozen=True)
class StageSpec:
    """What the checks and the grader need to know about one stage."""

    stage: int
    module: str  # the candidate's module, e.g. "balancer" (exercises/balancer.py)
    classes: tuple[str, ...]  # the classes the candidate writes in it
    harness: Harness
    groups: Callable[[], tuple[Group, ...]]  # the public rule groups, in teaching order


def as_groups(prefix: str, groups: Iterable[tuple[str, Iterable[Any]]], make: Callable[[Any], Any] = lambda ops: None,
              ops: Callable[[Any], Any] = lambda ops: ops, messages: tuple[str, ...] = ()) -> tuple[Group, ...]:  # fmt: skip
    """Turn ``(name, scenarios)`` pairs into :class:`Group` objects with ids ``prefix.g.c``.

    The cases of the groups named in ``messages`` judge error messages too.
    """
    out = []
    for g, (name, scenarios) in enumerate(groups):
        cases = tuple(Case(f"{prefix}.{g}.{c}", make(s), tuple((n, tuple(a)) for n, a in ops(s)), name in messages)
                      for c, s in enumerate(scenarios))
        out.append(Group(name, cases))
    return tuple(out)


def record(spec: StageSpec, groups: Iterable[Group], impl: Any) -> dict[str, Any]:
    """Run ``groups`` on ``impl`` (the reference) and return the JSON document that records them."""
    return {
        "stage": spec.stage,
        "groups": [
            {"name": g.name, "cases": [dict(c.to_json(), expect=run_case(spec.harness, impl, c)) for c in g.cases]} for g in groups
        ],
    }


def dumps(document: dict[str, Any]) -> bytes:
    """A recorded document's canonical bytes (sorted keys, no spaces)."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def write_recorded(document: dict[str, Any], path: Path) -> None:
    """Write a recorded document as deterministic gzip (no timestamp), so regenerating changes nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(dumps(document), compresslevel=9, mtime=0))


def is_current(document: dict[str, Any], path: Path) -> bool:
    """Whether the file at ``path`` records exactly ``document``."""
    return path.exists() and gzip.decompress(path.read_bytes()) == dumps(document)


def read_document(path: Path) -> dict[str, Any]:
    return json.loads(gzip.decompress(path.read_bytes()))


def load_recorded(stage: int, path: Path | None = None) -> list[tuple[Group, list[list[Any]]]]:
    """The recorded groups of ``stage``: (group, the reference's steps for each case)."""
    document = read_document(path or RECORDED / f"stage{stage}.json.gz")
    out = []
    for g in document["groups"]:
        cases = tuple(Case.from_json(c) for c in g["cases"])
        out.append((Group(g["name"], cases), [c["expect"] for c in g["cases"]]))
    return out


def probe_names(stage: int, only: str | tuple[str, ...]) -> list[str]:
    from solution.checks.probes import PROBES

    return [p.group for p in PROBES if p.stage == stage and p.group.startswith(only)]


def reference_module(spec: StageSpec) -> ModuleType | None:
    """The reference's module for ``spec``, or None where it is absent (a candidate's bundle)."""
    try:
        return importlib.import_module(f"solution.{spec.module}")
    except ImportError:
        return None


def _shrink(spec: StageSpec, impl: Any, reference: ModuleType, case: Case, found: Mismatch) -> Any:
    """The same difference with as few calls as possible, found by running both live."""
    if not found.ops:
        return found  # building differs: nothing to shrink
    make = lambda: spec.harness.build(impl, case.make)  # noqa: E731
    make_ref = lambda: spec.harness.build(reference, case.make)  # noqa: E731
    snapshot = spec.harness.snapshot
    try:
        live = compare_with_reference(make, list(case.ops), make_reference=make_ref, snapshot=snapshot)
        return found if live is None else minimize(make, list(case.ops), live, make_reference=make_ref, snapshot=snapshot)
    except Exception:  # building failed, or the implementation misbehaves while shrinking: keep what was found
        return found


@dataclass(frozen=True)
class Finding:
    """A failure that is not a difference of steps (a probe's result)."""

    text: str

    def describe(self) -> str:
        return self.text


def probe_groups(stage: int, impl: Any, only: str | tuple[str, ...] | None, done: list[GroupResult]) -> list[GroupResult]:
    """The stage's probes (:mod:`solution.checks.probes`), run on ``impl`` in this process.

    A probe that scores in a group already in ``done`` joins it (its case is
    counted there); the others make groups of their own.
    """
    from solution.checks.probes import PROBES, judge, run

    out: list[GroupResult] = []
    for probe in PROBES:
        if probe.stage != stage or (only is not None and not probe.group.startswith(only)):
            continue
        try:
            ok, text = judge(probe.rule, run(impl, probe.rule))
        except Exception as exc:  # a stub or a crash: that probe's failure
            ok, text = False, f"raised {type(exc).__name__}({' '.join(str(exc).split())[:100]})"
        what = probe.rule.get("strategy", "")
        group = next((g for g in done + out if g.name == probe.group), None)
        if group is None:
            group = GroupResult(probe.group, None, 0, 0)
            out.append(group)
        group.cases += 1
        group.cases_passed += ok
        if not ok and group.mismatch is None:
            group.mismatch = Finding(f"{what + ': ' if what else ''}{text}")
    return out


def run_check(
    spec: StageSpec, impl: Any = None, *, echo: bool = True, only: str | tuple[str, ...] | None = None, strict: bool = True
) -> CheckReport:
    """Run the recorded cases of ``spec``'s stage on ``impl`` (default: ``LB_IMPL``'s package).

    Prints one line per rule group (``echo=False`` to stay quiet) and returns
    the :class:`CheckReport`; with ``strict`` (the default, as check cells use
    it) it then raises :class:`~solution.checks.common.CheckFailed` if a group
    fails, so a check cell fails exactly when the code differs from the
    reference, whatever else the code prints.  ``only`` keeps the groups
    whose name starts with it, or with one of them when it is a tuple of
    prefixes (a step's groups; a prefix that names none is a ``ValueError``).
    """
    if impl is None:
        from solution.core.impl import load_impl

        impl = load_impl()
    recorded = load_recorded(spec.stage)
    if only is not None:
        kept = [(g, e) for g, e in recorded if g.name.startswith(only)]
        if not kept and not probe_names(spec.stage, only):
            names = ", ".join(repr(g.name) for g, _ in recorded)
            raise ValueError(f"no stage-{spec.stage} rule group starts with {only!r}; the groups: {names}")
        recorded = kept
    reference = reference_module(spec)
    report = CheckReport(stage=spec.stage)
    for group, expects in recorded:
        passed, first = 0, None
        for case, want in zip(group.cases, expects):
            found = first_difference(case, run_case(spec.harness, impl, case), want, spec.harness.snapshot)
            if found is None:
                passed += 1
            elif first is None:
                first = found if reference is None else _shrink(spec, impl, reference, case, found)
        report.groups.append(GroupResult(group.name, first, passed, len(group.cases)))
    report.groups += probe_groups(spec.stage, impl, only, report.groups)
    if echo:
        print(report)
    if strict:
        report.require()
    return report
