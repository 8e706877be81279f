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
import math
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from solution.checks.runner import StageSpec
from solution.checks.script import Case, Group

__all__ = ["HIDDEN", "hidden_groups", "rename_ids"]

#: Where the hidden cases' recorded steps live.
HIDDEN = Path(__file__).resolve().parent / "hidden"

#: Seeds of the hidden random sequences (the public ones use 0..11).
_FRESH_SEEDS = range(1000, 1006)


def _namer(rng: random.Random) -> Callable[[str], str]:
    """A consistent renaming: the same new name for the same old one, each new one drawn from ``rng`` when first needed."""
    names: dict[str, str] = {}

    def name(value: str) -> str:
        if value not in names:
            names[value] = f"{rng.choice('abcdefghkmnpqrstuvwxyz')}{len(names)}{rng.randrange(10, 99)}"
        return names[value]

    return name


def _string_renamer(rng: random.Random) -> Callable[[Any], Any]:
    """:func:`_namer` for every non-empty string; anything else as it is."""
    new_name = _namer(rng)
    return lambda value: new_name(value) if isinstance(value, str) and value else value


def rename_ids(case: Case, rng: random.Random, new_id: str) -> Case:
    """``case`` with every non-empty string argument, and the ids of the servers it starts with, renamed consistently (ids are the only top-level strings)."""
    rename = _string_renamer(rng)

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
    new_name = _namer(rng)

    def rename(value: Any) -> Any:
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, str) and value and value not in keep:
            return new_name(value)
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


#: Stage 7's words that are not names: server states, what a random case's ``answer`` feeds, the canary's metrics.
_STAGE7_WORDS = frozenset({"starting", "ready", "draining", "gone", "fault", "errors", "latency"})
#: Stage 7's hidden twins run this many seconds later than their public ones (every time, and a case's start).
_STAGE7_SHIFT = 1000.0
#: Stage 7's calls whose arguments hold a time, and where (a bad time, not a finite number, stays as it is).
_STAGE7_TIMES = {"ready": (1,), "drained": (1,), "fault": (1,), "tick": (0,), "window": (0,), "rollback": (0,),
                 "answer": (2,), "next_rollout": (2,)}


def _rename_deploy(case: Case, rng: random.Random, new_id: str) -> Case:
    """Stage 7's hidden twin of ``case``: every name renamed consistently in what it builds and in its calls
    (servers, versions, requests, sessions, tiers, reasons), so the answers differ from the public ones.
    Server states, what ``answer`` feeds and the canary's metric names keep theirs, as does a percent
    (``"25%"``): they are the interface, not names.  A rollout runs :data:`_STAGE7_SHIFT` seconds later
    (its start and every event's time); a bounds case asks about a fleet three servers larger (a bad fleet
    size stays bad); a canary analysis tests at 0.8 of its alpha with one more request in A's windows."""
    make = copy.deepcopy(case.make) if isinstance(case.make, dict) else case.make
    new_name = _namer(rng)

    def rename(value: Any) -> Any:
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, dict):
            return {k: rename(v) for k, v in value.items()}
        if isinstance(value, str) and value and value not in _STAGE7_WORDS and not re.fullmatch(r"-?[\d.]+%", value):
            return new_name(value)
        return value

    def later(value: Any) -> Any:
        finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return value + _STAGE7_SHIFT if finite else value

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    kind = make.get("kind") if isinstance(make, dict) else None
    if isinstance(make, dict):
        for key in ("servers", "new_version", "split"):
            if key in make:
                make[key] = rename(make[key])
        plan = make.get("plan")
        if isinstance(plan, dict) and isinstance(plan.get("canary"), dict):
            plan["canary"]["excluded_tiers"] = rename(plan["canary"].get("excluded_tiers", []))
        if kind == "deploy":
            make["now"] = later(make["now"])
        if kind == "analysis" and isinstance(plan, dict):
            plan["alpha"] = round(plan.get("alpha", 0.05) * 0.8, 6)
    ops = []
    for name, args in case.ops:
        args = list(args)
        if kind == "deploy":
            for at in _STAGE7_TIMES.get(name, ()):
                if at < len(args):
                    args[at] = later(args[at])
            args = [rename(a) for a in args]  # server ids, versions, reasons; an answer's status and feed are words
        elif kind == "bounds":
            args = [rename(args[0]), args[1] + 3 if whole(args[1]) else args[1]]
        elif kind == "analysis":
            if name == "judge" and isinstance(args[0], list) and isinstance(args[0][0], int):
                args[0] = [args[0][0] + 1, *args[0][1:]]
        else:
            args = [rename(a) for a in args]
        ops.append((name, tuple(args)))
    return dataclasses.replace(case, id=new_id, make=make, ops=tuple(ops))


#: Stage 8's calls whose first argument is a request id (or the prefix of the ids a call makes up).
_STAGE8_IDS = frozenset({"begin", "end", "decide", "spread", "same_stream"})
#: Stage 8's calls on the functions whose third argument is a seed.
_STAGE8_SEEDED = frozenset({"draws", "same_seed", "uniform"})
#: Stage 8's hidden twins: seeds this much larger, backoffs twice as long, Retry-After (and its limit) this much later.
_STAGE8_SEED_SHIFT, _STAGE8_SCALE, _STAGE8_LATER = 1000, 2.0, 0.5


def _rename_retry(case: Case, rng: random.Random, new_id: str) -> Case:
    """Stage 8's hidden twin of ``case``: request ids renamed consistently; every seed moved up
    :data:`_STAGE8_SEED_SHIFT`; a policy's ``base`` and ``cap`` doubled (its defaults written out), and its
    ``max_retry_after`` and every ``Retry-After`` :data:`_STAGE8_LATER` s later, so each rule decides the same
    way on other numbers (a Retry-After at the limit stays at it).  Bad values (a ``{"raw": ...}`` policy or
    failure, a bad id, tries or seed) stay as they are: the same errors on other calls."""
    from solution.core.retry_types import RetryPolicy

    make = copy.deepcopy(case.make) if isinstance(case.make, dict) else case.make
    rename = _string_renamer(rng)
    default = RetryPolicy()

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    def policy(value: Any) -> Any:
        if not isinstance(value, dict) or "raw" in value:
            return value
        out = dict(value)
        out["base"] = out.get("base", default.base) * _STAGE8_SCALE
        out["cap"] = out.get("cap", default.cap) * _STAGE8_SCALE
        limit = out.get("max_retry_after", default.max_retry_after)
        out["max_retry_after"] = limit + _STAGE8_LATER if number(limit) else limit
        return out

    def failure(value: Any) -> Any:
        if isinstance(value, list) and len(value) == 3 and number(value[2]) and value[2] >= 0:
            return [value[0], value[1], value[2] + _STAGE8_LATER]
        return value

    def seed(value: Any) -> Any:
        return value + _STAGE8_SEED_SHIFT if isinstance(value, int) and not isinstance(value, bool) else value

    if isinstance(make, dict):
        if "policy" in make:
            make["policy"] = policy(make["policy"])
        if "seed" in make:
            make["seed"] = seed(make["seed"])
        if make.get("bare") and make.get("args"):
            make["args"] = [policy(make["args"][0]), *make["args"][1:]]
    ops = []
    for name, args in case.ops:
        args = list(args)
        if name in _STAGE8_IDS and args:
            args[0] = rename(args[0])
        if name in ("decide", "spread") and len(args) > 2:
            args[2] = failure(args[2])
        if name in ("bound", "draws", "same_seed", "uniform", "jitter_with") and len(args) > 1:
            args[1] = policy(args[1])
        if name in _STAGE8_SEEDED and len(args) > 2:
            args[2] = seed(args[2])
        ops.append((name, tuple(args)))
    return dataclasses.replace(case, id=new_id, make=make, ops=tuple(ops))


def _fresh_random(spec: StageSpec, group: Group, number: int) -> tuple[Case, ...]:
    """Fresh-seed versions of a random group's cases."""
    from solution.checks import stage1, stage2, stage3, stage4, stage5, stage6, stage7, stage8

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
        elif spec.stage == 7:
            make, ops = stage7.random_ops7(seed)  # 1000..1005: fresh fleets, bounds, canaries and faults
        elif spec.stage == 8:
            make, ops = stage8.random_ops8(seed)  # 1000..1005: fresh policies (budget or none, what is retried) and runs
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


def _fleet7(n: int) -> list[list[str]]:
    return [[f"m{i}", "r41"] for i in range(n)]


#: Stage 7's hidden bad constructions (the public ones are in solution.checks.stage7's bad-input group).
_HIDDEN_BAD_BUILDS_7: tuple[dict[str, Any], ...] = (
    # (A plan's own bad values are refused by RolloutPlan, support code: these are the controller's to refuse.)
    {"bare": "RollingDeploy", "args": [_fleet7(4), "r42", {"max_surge": "0%", "max_unavailable": "24%", "prewarm": False}, 0.0]},
    {"bare": "RollingDeploy", "args": [_fleet7(4), "r42", {"max_surge": "0%", "max_unavailable": "50%", "prewarm": True}, 0.0]},
    {"bare": "RollingDeploy", "args": [_fleet7(4), "r42", {"max_surge": "0%", "max_unavailable": 1, "prewarm": False,
                                                           "canary": {"steps": [50, 100]}}, 0.0]},
    {"bare": "RollingDeploy", "args": [[["m0", "r41"], ["m0", "r42"]], "r42", {}, 0.0]},
    {"bare": "RollingDeploy", "args": [_fleet7(5), "r42", {"max_surge": "0%", "max_unavailable": "19%", "prewarm": False}, 0.0]},
    {"bare": "RollingDeploy", "args": [[["m0"], ["m1", "r41"]], "r42", {}, 0.0]},
    {"bare": "RollingDeploy", "args": [[["m0", ""], ["m1", "r41"]], "r42", {}, 0.0]},
    {"bare": "RollingDeploy", "args": [[[3, "r41"]], "r42", {}, 0.0]},
    {"bare": "RollingDeploy", "args": [_fleet7(3), None, {}, 0.0]},
    {"bare": "RollingDeploy", "args": [_fleet7(3), "r42", {}, float("nan")]},
    {"bare": "RollingDeploy", "args": [_fleet7(3), "r42", {}, True]},
    {"bare": "RollingDeploy", "args": [_fleet7(3), "r42", None, 0.0]},
    {"bare": "CanaryAnalysis", "args": ["errors"]},
    {"bare": "CanarySplit", "kwargs": {"new_version": "r42", "weight": "0.5"}},
    {"bare": "CanarySplit", "kwargs": {"new_version": "r42", "weight": float("nan")}},
    {"bare": "CanarySplit", "kwargs": {"new_version": None}},
    {"bare": "CanarySplit", "kwargs": {"new_version": "r42", "excluded_tiers": [""]}},
    {"bare": "CanarySplit", "kwargs": {"new_version": "r42", "seed": True}},
    {"bare": "CanarySplit", "kwargs": {"new_version": "r42", "weight": False}},
    {"bare": "CanarySplit", "kwargs": {"new_version": "r42", "excluded_tiers": [3]}},
)
#: Stage 8's hidden bad constructions (the public ones are in solution.checks.stage8's bad-input group).
_HIDDEN_BAD_BUILDS_8: tuple[dict[str, Any], ...] = (
    {"bare": "Retrier", "args": [3]},
    {"bare": "Retrier", "args": [{"raw": []}]},
    {"bare": "Retrier", "args": [{"raw": "RetryPolicy()"}]},
    {"bare": "Retrier", "args": [{}], "kwargs": {"seed": "x"}},
    {"bare": "Retrier", "args": [{}], "kwargs": {"seed": 2.0}},
    {"bare": "Retrier", "args": [{}], "kwargs": {"seed": False}},
    {"bare": "Retrier", "args": [{}], "kwargs": {"seed": None}},
)  # (no policy at all, or a positional seed: Python's own TypeError, which a stub raises too)
_HIDDEN_BAD_BUILDS = {4: _HIDDEN_BAD_BUILDS_4, 5: _HIDDEN_BAD_BUILDS_5, 6: _HIDDEN_BAD_BUILDS_6, 7: _HIDDEN_BAD_BUILDS_7,
                      8: _HIDDEN_BAD_BUILDS_8}
_RENAME = {6: _rename_tiered, 7: _rename_deploy, 8: _rename_retry}


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
                _RENAME.get(n, rename_ids)(c, rng, f"h{n}.{g}.{i}") for i, c in enumerate(kept))
        elif spec.stage in _RENAME:
            cases = tuple(_RENAME[spec.stage](c, rng, f"h{spec.stage}.{g}.{i}") for i, c in enumerate(group.cases))
        else:
            cases = tuple(rename_ids(c, rng, f"h{spec.stage}.{g}.{i}") for i, c in enumerate(group.cases))
        out.append(Group(group.name, cases))
    return tuple(out)
