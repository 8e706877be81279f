"""Grade a candidate's ``exercises/`` folder, stage by stage, without ever importing it.

For each stage, on its own (a broken stage costs no other):

1. **provenance** (:mod:`solution.grading.provenance`): a module that imports
   the reference, or whose graded classes come from it, scores 0 with the
   reason; a near-copy of the reference's bodies gets a note;
2. **run**: the stage's public cases (the check cells' groups), its hidden
   cases (held out, never shipped) and its probes (cost rules, exact ratios) run in a sandboxed child
   (:mod:`solution.grading.sandbox`) that holds only support code and the
   candidate's one module, and sends back the steps (JSON);
3. **judge**: this process compares every case's steps with the reference's
   recorded steps (:func:`solution.checks.script.first_difference`) and
   judges the probes' results (:mod:`solution.checks.probes`).  A case with no result (timeout, crash, no
   import) fails, with its cause.

A rule group scores the share of its cases that pass (public and hidden
together); a stage scores the mean of its groups, 0 to 100; the total is the
mean of the stages.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from solution.checks import SPECS
from solution.checks.probes import PROBES, judge
from solution.checks.runner import RECORDED, StageSpec, read_document
from solution.checks.script import Case, first_difference
from solution.grading import provenance
from solution.grading.hidden import HIDDEN
from solution.grading.sandbox import CaseResult, Limits, build_tree, run_cases

__all__ = ["CaseVerdict", "GroupGrade", "StageGrade", "Submission", "grade", "grade_stage", "table", "report", "write_report"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CaseVerdict:
    id: str
    visibility: str  # "public" | "hidden"
    passed: bool
    message: str = ""
    cause: str = ""  # "" | "differs" | "error" | "timeout" | "crash" | "import" | "probe"
    seconds: float = 0.0


@dataclass
class GroupGrade:
    name: str
    cases: list[CaseVerdict] = field(default_factory=list)

    def count(self, visibility: str) -> tuple[int, int]:
        mine = [c for c in self.cases if c.visibility == visibility]
        return sum(c.passed for c in mine), len(mine)

    @property
    def score(self) -> float:
        return 100.0 * sum(c.passed for c in self.cases) / len(self.cases) if self.cases else 0.0

    def first_failure(self) -> CaseVerdict | None:
        return next((c for c in self.cases if not c.passed), None)


@dataclass
class StageGrade:
    stage: int
    module: str
    groups: list[GroupGrade] = field(default_factory=list)
    zero_reasons: list[str] = field(default_factory=list)  # provenance: the stage scores 0
    notes: list[str] = field(default_factory=list)
    output: str = ""
    seconds: float = 0.0
    children: int = 0

    @property
    def score(self) -> float:
        if self.zero_reasons or not self.groups:
            return 0.0
        return round(sum(g.score for g in self.groups) / len(self.groups), 1)

    def count(self, visibility: str) -> tuple[int, int]:
        pairs = [g.count(visibility) for g in self.groups]
        return sum(p for p, _ in pairs), sum(t for _, t in pairs)


@dataclass(frozen=True)
class Submission:
    """A folder that holds a candidate's ``exercises`` package."""

    folder: Path

    def module_file(self, spec: StageSpec) -> Path:
        return self.folder / "exercises" / f"{spec.module}.py"


def _cases(spec: StageSpec) -> list[tuple[str, str, dict[str, Any], Any]]:
    """(visibility, group name, case JSON, expected steps) for every graded case of a stage, in group order."""
    out = []
    for visibility, path in (("public", RECORDED / f"stage{spec.stage}.json.gz"), ("hidden", HIDDEN / f"stage{spec.stage}.json.gz")):
        for group in read_document(path)["groups"]:
            for case in group["cases"]:
                expect = case.pop("expect")
                out.append((visibility, group["name"], case, expect))
    for k, probe in enumerate(p for p in PROBES if p.stage == spec.stage):
        out.append(("public", probe.group, {"id": f"probe{probe.stage}.{k}", "probe": probe.rule}, None))
    return out


def _judge(visibility: str, case: dict[str, Any], expect: Any, result: CaseResult | None, snapshot: str) -> CaseVerdict:
    cid = case["id"]
    if result is None:
        return CaseVerdict(cid, visibility, False, "no result", "crash")
    if result.status != "ok":
        return CaseVerdict(cid, visibility, False, result.error, {"error": "error"}.get(result.status, result.status), result.seconds)
    if "probe" in case:
        passed, text = judge(case["probe"], result.steps)
        return CaseVerdict(cid, visibility, passed, text if not passed else "", "" if passed else "probe", result.seconds)
    try:
        mismatch = first_difference(Case.from_json(case), result.steps or [], expect, snapshot)
    except Exception as exc:  # steps of the wrong shape: only a forged result has them
        return CaseVerdict(cid, visibility, False, f"malformed result from the child ({type(exc).__name__})", "crash", result.seconds)
    if mismatch is None:
        return CaseVerdict(cid, visibility, True, "", "", result.seconds)
    return CaseVerdict(cid, visibility, False, mismatch.describe(), "differs", result.seconds)


def grade_stage(submission: Submission, spec: StageSpec, limits: Limits = Limits()) -> StageGrade:
    """Grade one stage of ``submission``; never raises for anything the submission does."""
    started = time.monotonic()
    grade = StageGrade(spec.stage, f"{spec.module}.py")
    cases = _cases(spec)
    names = list(dict.fromkeys(name for _, name, _, _ in cases))
    groups = {name: GroupGrade(name) for name in names}
    grade.groups = [groups[n] for n in names]
    path = submission.module_file(spec)
    if path.is_symlink() or (path.exists() and submission.folder not in path.resolve().parents):
        why = f"exercises/{spec.module}.py is a link to {path.resolve()}: the module must be a file of the submission"
        grade.zero_reasons.append(why)
        return _fail_all(grade, cases, "import", why, started)
    if not path.is_file():
        grade.zero_reasons.append(f"exercises/{spec.module}.py is missing")
        return _fail_all(grade, cases, "import", f"exercises/{spec.module}.py is missing", started)
    source = provenance.read(path)
    grade.zero_reasons += provenance.static_findings(source, spec.stage)
    stub = ROOT / "exercises" / f"{spec.module}.py"
    reference = ROOT / "solution" / f"{spec.module}.py"
    if stub.is_file() and reference.is_file():
        score = provenance.similarity(source, reference.read_text(), provenance.stubbed_functions(stub.read_text()))
        if score >= provenance.SIMILARITY_NOTE:
            grade.notes.append(f"the bodies are {score:.0%} similar to the reference's, token by token: compare by hand")
    with tempfile.TemporaryDirectory(prefix=f"lbgrade-{spec.stage}-") as tmp:
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        tree = build_tree(Path(tmp), path, spec.module)
        run = run_cases(tree, scratch, spec.stage, spec.module, [c for _, _, c, _ in cases], limits)
        _make_writable(Path(tmp))
    grade.children, grade.output = run.children, run.output
    if not run.imported:
        grade.notes.append(f"exercises/{spec.module}.py did not import: {run.import_error}")
    grade.zero_reasons += provenance.runtime_findings(run.classes, spec.module, spec.stage)
    if run.tampered:
        grade.zero_reasons.append(f"the module changed the grader's support code in its process: {run.tampered}")
    for visibility, name, case, expect in cases:
        groups[name].cases.append(_judge(visibility, case, expect, run.results.get(case["id"]), spec.harness.snapshot))
    _notice_replay(grade)
    grade.seconds = round(time.monotonic() - started, 2)
    return grade


def _fail_all(grade: StageGrade, cases: list, cause: str, message: str, started: float) -> StageGrade:
    by_name = {g.name: g for g in grade.groups}
    for visibility, name, case, _ in cases:
        by_name[name].cases.append(CaseVerdict(case["id"], visibility, False, message, cause))
    grade.seconds = round(time.monotonic() - started, 2)
    return grade


def _make_writable(folder: Path) -> None:
    """Let the temporary tree be removed (it was made read-only for the child)."""
    for path in [folder, *folder.rglob("*")]:
        try:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        except OSError:
            pass


def _notice_replay(grade: StageGrade) -> None:
    """Public cases that pass while their hidden twins fail are what replaying recorded answers looks like."""
    public, public_total = grade.count("public")
    hidden, hidden_total = grade.count("hidden")
    if public_total and hidden_total and public / public_total - hidden / hidden_total >= 0.5:
        grade.notes.append(f"public cases pass ({public}/{public_total}) but hidden ones fail ({hidden}/{hidden_total}): "
                           "answers replayed from the bundle? read the code")


def grade(folder: Path, stages: list[int] | None = None, limits: Limits = Limits()) -> list[StageGrade]:
    """Grade every stage (or only ``stages``) of ``folder/exercises``."""
    submission = Submission(folder.resolve())
    return [grade_stage(submission, spec, limits) for stage, spec in sorted(SPECS.items()) if not stages or stage in stages]


def total(results: list[StageGrade]) -> float:
    return round(sum(r.score for r in results) / len(results), 1) if results else 0.0


def table(results: list[StageGrade]) -> str:
    """The grade as text: one line per rule group, with public and hidden cases apart."""
    lines = []
    for r in results:
        pub, hid = r.count("public"), r.count("hidden")
        lines.append(f"stage {r.stage} ({r.module})  score {r.score:5.1f}   public {pub[0]}/{pub[1]}, hidden {hid[0]}/{hid[1]}, {r.seconds:.1f} s")
        for reason in r.zero_reasons:
            lines.append(f"  ZERO: {reason}")
        lines.append(f"  {'rule group':<64}{'public':>8}{'hidden':>8}{'score':>7}")
        for g in r.groups:
            (pp, pt), (hp, ht) = g.count("public"), g.count("hidden")
            lines.append(f"  {g.name[:63]:<64}{f'{pp}/{pt}' if pt else '-':>8}{f'{hp}/{ht}' if ht else '-':>8}{g.score:>7.0f}")
            failure = g.first_failure()
            if failure is not None:
                lines.append(f"      {failure.visibility} {failure.id}: {failure.message[:300]}")
        for note in r.notes:
            lines.append(f"  note: {note}")
        lines.append("")
    lines.append(f"total {total(results):.1f} of 100 (the mean of the stages; a stage is the mean of its rule groups)")
    # The candidate's strings may hold lone surrogates ("\udcff"), which a strict UTF-8 terminal refuses to print.
    return "\n".join(lines).encode("utf-8", "backslashreplace").decode("utf-8")


def report(results: list[StageGrade], folder: Path) -> dict[str, Any]:
    return {
        "exercises": str(folder.resolve() / "exercises"),
        "total_score": total(results),
        "stages": [
            {
                "stage": r.stage, "module": r.module, "score": r.score, "seconds": r.seconds, "children": r.children,
                "zero_reasons": r.zero_reasons, "notes": r.notes, "output_head": r.output,
                "public": dict(zip(("passed", "total"), r.count("public"))),
                "hidden": dict(zip(("passed", "total"), r.count("hidden"))),
                "groups": [
                    {"name": g.name, "score": round(g.score, 1),
                     "public": dict(zip(("passed", "total"), g.count("public"))),
                     "hidden": dict(zip(("passed", "total"), g.count("hidden"))),
                     "cases": [asdict(c) for c in g.cases]}
                    for g in r.groups
                ],
            }
            for r in results
        ],
    }


def write_report(document: dict[str, Any], path: Path) -> str:
    """Write the report atomically (a temporary file renamed over it); return its SHA-256."""
    data = (json.dumps(document, indent=2) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()
