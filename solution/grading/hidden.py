"""The grader's held-out cases: never shipped in a candidate's bundle.

Per rule group of every stage, the hidden set holds each public scenario
with every id renamed (the same rule on calls the candidate has not seen, so
replaying recorded public answers fails), and fresh seeds for the random
sequences.  The reference's steps for them are recorded in
``solution/grading/hidden/stageN.json.gz`` by ``tools/record_cases.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from pathlib import Path
from typing import Any

from solution.checks.runner import StageSpec
from solution.checks.script import Case, Group

__all__ = ["HIDDEN", "hidden_groups", "rename_ids"]

#: Where the hidden cases' recorded steps live.
HIDDEN = Path(__file__).resolve().parent / "hidden"

#: Seeds of the hidden random sequences (the public ones use 0..11).
_FRESH_SEEDS = range(1000, 1006)


def rename_ids(case: Case, rng: random.Random, new_id: str) -> Case:
    """``case`` with every non-empty string argument, and the ids of the servers it starts with, renamed consistently (ids are the only top-level strings)."""
    names: dict[str, str] = {}

    def rename(value: Any) -> Any:
        if isinstance(value, str) and value:
            if value not in names:
                names[value] = f"{rng.choice('abcdefghkmnpqrstuvwxyz')}{len(names)}{rng.randrange(10, 99)}"
            return names[value]
        return value

    make = case.make
    if isinstance(make, dict) and isinstance(make.get("servers"), list):  # stage 5: the servers a case starts with
        make = {**make, "servers": [[rename(row[0]), *row[1:]] for row in make["servers"]]}
    ops = tuple((name, tuple(rename(a) for a in args)) for name, args in case.ops)
    return dataclasses.replace(case, id=new_id, make=make, ops=ops)


def _standard_rows() -> tuple[list[dict[str, Any]], str]:
    """The reference's standard tier table as rows (dicts) and its default tier's name."""
    from solution.tiers import TierTable

    table = TierTable.standard()
    return [dataclasses.asdict(row) for row in table], table.default


def _scaled(value: Any, factor: float) -> Any:
    return value * factor if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _rename_tiered(case: Case, rng: random.Random, new_id: str) -> Case:
    """Stage 6's hidden twin of ``case``: every name renamed consistently in the table it builds and in its calls
    (tiers, pools, requests, tenants, servers; the standard table written out under new names), so the
    answers differ from the public ones.  Only ``"shared"`` (the pool every tier may use) and ``"all"``
    (usable: every server) keep their names.  A case without names changes its numbers instead: a token
    bucket's amounts and rates doubled (the same times, levels doubled), a Retry-After's waits moved up 1.25 s."""
    make = copy.deepcopy(case.make) if isinstance(case.make, dict) else case.make
    keep = {"all", "shared"}
    names: dict[str, str] = {}

    def rename(value: Any) -> Any:
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, str) and value and value not in keep:
            if value not in names:
                names[value] = f"{rng.choice('abcdefghkmnpqrstuvwxyz')}{len(names)}{rng.randrange(10, 99)}"
            return names[value]
        return value

    ops = case.ops
    if isinstance(make, dict):
        if make.pop("standard", False):
            make["tiers"], make["default"] = _standard_rows()
        if make.get("tiers") == [] and not make.get("args"):
            make["args"] = [rename("default")]  # still no tier at all: the same error, another call
        if isinstance(make.get("tiers"), list):
            for row in make["tiers"]:
                if isinstance(row, dict):
                    for key in ("name", "pool"):
                        row[key] = rename(row.get(key)) if key in row else row.get(key, None)
                    if "pool" in row and row["pool"] is None:
                        del row["pool"]
        if isinstance(make.get("default"), str):
            make["default"] = rename(make["default"])
        if make.get("servers"):
            make["servers"] = [[rename(sid), *rest[:2], rename(rest[2]), *rest[3:]] for sid, *rest in make["servers"]]
        if make.get("kind") == "bucket":
            make["args"] = [_scaled(a, 2) for a in make.get("args", [])[:2]] + list(make.get("args", [])[2:])
            ops = tuple((name, (_scaled(args[0], 2), *args[1:]) if name in ("take", "wait") else args) for name, args in ops)
    def shifted(a: Any) -> bool:  # a good wait (a bad one stays bad)
        return isinstance(a, float) and 0 <= a < float("inf")

    ops = tuple((name, tuple(a + 1.25 if name == "retry_after" and shifted(a) else rename(a) for a in args)) for name, args in ops)
    return dataclasses.replace(case, id=new_id, make=make, ops=ops)


def _fresh_random(spec: StageSpec, group: Group, number: int) -> tuple[Case, ...]:
    """Fresh-seed versions of a random group's cases."""
    from solution.checks import stage1, stage2, stage3, stage4, stage5, stage6

    cases = []
    for k, seed in enumerate(_FRESH_SEEDS):
        if spec.stage == 1:
            make, ops = None, stage1.random_ops(seed)
        elif spec.stage == 2:
            make, ops = None, stage2.random_queue_ops(seed)
        elif spec.stage == 4:
            make, ops = stage4.random_ops4(seed)
        elif spec.stage == 5:
            make, ops = stage5.random_ops5(seed)  # 1000..1005: each kind of run (seed % 4), hard affinity at 1001
        elif spec.stage == 6:
            make, ops = stage6.random_ops6(seed)  # 1000..1005: each kind of run (seed % 3) twice
        else:
            make, ops = group.cases[0].make, stage3.random_ops3(seed, 250)
        cases.append(Case(f"h{spec.stage}.{number}.r{k}", make, tuple((n, tuple(a)) for n, a in ops)))
    return tuple(cases)


#: Stage 3's hidden bad constructor arguments (the public ones are in solution.checks.stage3.BAD_ARGUMENTS).
_HIDDEN_BAD_ARGUMENTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("PowerOfChoices", {"d": -2}),
    ("PowerOfChoices", {"d": 2.0}),
    ("PowerOfChoices", {"seed": "7"}),
    ("PowerOfChoices", {"d": None}),
    ("WeightedResponseTime", {"alpha": -0.5}),
    ("WeightedResponseTime", {"alpha": None}),
    ("PeakEwma", {"alpha": 2}),
    ("PeakEwma", {"alpha": float("inf")}),
)


#: Stage 4's hidden bad constructions (the public ones are in solution.checks.stage4's bad-input group).
_HIDDEN_BAD_BUILDS_4: tuple[dict[str, Any], ...] = (
    {"bare": "checker", "kwargs": {"seed": "1"}},
    {"bare": "checker", "kwargs": {"seed": -5}},
    {"bare": "checker", "args": ["default"]},
    {"bare": "ledger", "args": [{"max_tries": 3}]},
)


#: Stage 5's hidden bad constructions (the public ones are in solution.checks.stage5's bad-input group).
_HIDDEN_BAD_BUILDS_5: tuple[dict[str, Any], ...] = (
    {"bare": "table", "kwargs": {"ttl": -0.5}},
    {"bare": "table", "kwargs": {"ttl": None}},
    {"bare": "table", "kwargs": {"max_sessions": -3}},
    {"bare": "table", "kwargs": {"max_sessions": "10"}},
    {"bare": "hash", "kwargs": {"epsilon": float("inf")}},
    {"bare": "hash", "kwargs": {"epsilon": "0.25"}},
    {"bare": "hash", "kwargs": {"vnodes": -1}},
    {"bare": "hash", "kwargs": {"seed": 1.0}},
    {"bare": "prefix", "kwargs": {"max_blocks_per_server": 2.0}},
    {"bare": "prefix", "kwargs": {"min_match": True}},
    {"bare": "prefix", "kwargs": {"slack": None}},
    {"bare": "prefix", "kwargs": {"max_candidates": 2.5}},
    {"bare": "prefix", "inner": "class"},
    {"bare": "affinity", "inner": "round-robin", "kwargs": {"clock": None}},
    {"bare": "affinity", "inner": 42},
    {"bare": "affinity", "kwargs": {"policy": "hard"}},
)


#: Stage 6's hidden bad constructions (the public ones are in solution.checks.stage6's bad-input group).
_HIDDEN_BAD_BUILDS_6: tuple[dict[str, Any], ...] = (
    {"bare": "TierTable", "tiers": ("not", "rows")},
    {"bare": "TierTable", "tiers": [{"name": "a", "queue_class": 0}], "kwargs": {"default": 0}},
    {"bare": "TierTable", "tiers": [{"name": "a", "queue_class": 1}, {"name": "b", "queue_class": 1, "reserved_share": 0.1}]},
    {"bare": "TierTable", "tiers": [{"name": "a", "queue_class": 1, "reserved_share": 0.6}, {"name": "b", "queue_class": 0,
                                                                                           "reserved_share": 0.4}]},
    {"bare": "TierTable", "tiers": [{"name": "a", "queue_class": 1}], "kwargs": {"default": "b"}},
    {"bare": "TokenBucket", "args": [-0.5, 2]},
    {"bare": "TokenBucket", "args": [1, float("nan")]},
    {"bare": "TokenBucket", "args": [None, 2]},
    {"bare": "TokenBucket", "args": [1, True]},
    {"bare": "TokenBucket", "args": [1, 2, float("inf")]},
    {"bare": "RateLimiter", "table": {"premium": 1}},
    {"bare": "RateLimiter", "kwargs": {"max_tenants": -2}},
    {"bare": "RateLimiter", "kwargs": {"max_tenants": "100"}},
    {"bare": "TierAdmission", "table": None},
    {"bare": "TierAdmission", "limiter": 42},
    {"bare": "TierRouting", "table": None},
    {"bare": "Preemptor", "table": "standard"},
    {"bare": "Preemptor", "kwargs": {"max_preemptions": True}},
    {"bare": "Preemptor", "kwargs": {"mode": "Swap"}},
    {"bare": "Preemptor", "kwargs": {"mode": None}},
)
_HIDDEN_BAD_BUILDS = {4: _HIDDEN_BAD_BUILDS_4, 5: _HIDDEN_BAD_BUILDS_5, 6: _HIDDEN_BAD_BUILDS_6}


def _is_bare(case: Case) -> bool:
    return isinstance(case.make, dict) and bool(case.make.get("bare")) and not case.ops


def hidden_groups(spec: StageSpec) -> tuple[Group, ...]:
    """The hidden cases of ``spec``'s stage, in groups named as the public ones."""
    rng = random.Random(f"hidden-{spec.stage}")
    out = []
    for g, group in enumerate(spec.groups()):
        is_random = "random" in group.name or (spec.stage == 3 and group.cases and group.cases[0].make.get("bare") is None
                                                and len(group.cases[0].ops) > 100)
        if is_random:
            cases = _fresh_random(spec, group, g)
        elif spec.stage == 3 and group.cases and group.cases[0].make.get("bare"):
            cases = tuple(Case(f"h3.{g}.{i}", {"strategy": cls, "options": options, "bare": True}, ())
                          for i, (cls, options) in enumerate(_HIDDEN_BAD_ARGUMENTS))
        elif spec.stage in _HIDDEN_BAD_BUILDS and group.name.startswith("bad input") and any(_is_bare(c) for c in group.cases):
            kept = [c for c in group.cases if not _is_bare(c)]
            n = spec.stage
            cases = tuple(Case(f"h{n}.{g}.b{i}", make, ()) for i, make in enumerate(_HIDDEN_BAD_BUILDS[n])) + tuple(
                (_rename_tiered if n == 6 else rename_ids)(c, rng, f"h{n}.{g}.{i}") for i, c in enumerate(kept))
        elif spec.stage == 6:
            cases = tuple(_rename_tiered(c, rng, f"h6.{g}.{i}") for i, c in enumerate(group.cases))
        else:
            cases = tuple(rename_ids(c, rng, f"h{spec.stage}.{g}.{i}") for i, c in enumerate(group.cases))
        out.append(Group(group.name, cases))
    return tuple(out)
