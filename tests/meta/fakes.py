"""Fake submissions for the grader, each with the verdict it must get.

Every fake starts from the generated stubs and/or the reference, applies one
small, explicit source transformation (:func:`edit` and :func:`after_imports`
assert that it applied), and says what ``tools/grade.py`` must make of it,
stage by stage (:class:`Expect`).  The stages a fake does not touch hold the
stubs (they must score exactly 0) or the reference (exactly 100): a fake that
moves them has leaked out of its stage.

Each fake is graded only on the stages its expectation names (``--stage``
per stage): a fake that edits one stage names only that stage; the stubs
and the reference name every stage; the sandbox and security fakes name
stage 2 (the reference) and the newest stage (the stubs) besides their own
(:data:`OTHERS`), so a fake that leaks out of its stage still shows.

Used by ``tests/meta/test_grading.py`` (one grader run per fake) and by
``benchmarks/grading_fakes.py`` (the table for the issue).  Nothing here
imports the grader or a fake's code: the grader runs as a command, as an
instructor runs it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MODULES = {1: "balancer", 2: "request_queue", 3: "strategies", 4: "health", 5: "affinity", 6: "tiers", 7: "deploy", 8: "retry"}
#: Appears in the command line of every process a fake tries to leave behind.
MARKER = "lbgrade-fake-detached-7f3a"
#: Files a fake tries to create outside its sandbox (checked and removed by :func:`leftovers`).
VENV_SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
ESCAPE_FILES = (ROOT / "lbgrade_fake_escape.db", VENV_SITE / "lbgrade_fake_escape.txt", VENV_SITE / "lbgrade_fake_fifo")
#: The peak RSS of the grader's process tree on a fake that floods or allocates (about 190 MB on the reference's stage 2).
MAX_RSS_MB = 300
#: What the fake that edits the repository appends to a file.
EDITED = b"# edited by a fake\n"
#: Repository files a fake tries to change; they must stay byte-identical.
GUARDED = (ROOT / "solution" / "checks" / "script.py", ROOT / "conftest.py", ROOT / "solution" / "grading" / "grader.py")


# -- sources --------------------------------------------------------------------------


@cache
def _stubs() -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import make_exercises
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return dict(make_exercises.generate())


def stub(stage: int) -> str:
    return _stubs()[f"{MODULES[stage]}.py"]


def reference(stage: int) -> str:
    return (ROOT / "solution" / f"{MODULES[stage]}.py").read_text()


def edit(source: str, old: str, new: str) -> str:
    """``source`` with the one occurrence of ``old`` replaced by ``new`` (it must occur exactly once)."""
    assert source.count(old) == 1, f"the transformation does not apply: {old!r} occurs {source.count(old)} times"
    return source.replace(old, new)


FUTURE = "from __future__ import annotations\n"


def after_imports(source: str, code: str) -> tuple[str, int]:
    """``source`` with ``code`` run at import, right after ``from __future__``; and the line it starts on."""
    assert source.count(FUTURE) == 1, "no single `from __future__ import annotations` line to insert after"
    line = source[: source.index(FUTURE)].count("\n") + 2
    return source.replace(FUTURE, FUTURE + code.rstrip("\n") + "\n"), line


ROUTE = '        require_int(estimated_tokens, "estimated_tokens")\n'


def in_route_request(code: str) -> str:
    """The reference's balancer with ``code`` (8 spaces of indent) run at the start of every routing decision."""
    return edit(reference(1), ROUTE, ROUTE + code.rstrip("\n") + "\n")


def with_debug_prints(source: str) -> tuple[str, int]:
    """``source`` with ``print("debug", <function name>)`` as the first statement of every function's body."""
    import ast

    lines = source.splitlines(keepends=True)
    spots = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            first = body[1] if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body[0]
            if first.lineno > node.lineno:  # not a one-line def
                spots.append((first.lineno, first.col_offset, node.name))
    for lineno, col, name in sorted(spots, reverse=True):
        lines.insert(lineno - 1, " " * col + f"print('debug', {name!r}, flush=False)\n")
    out = "".join(lines)
    ast.parse(out)
    return out, len(spots)


# -- expectations ---------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What one stage of a fake must score.  Patterns are regular expressions, formatted with the fake's facts."""

    score: float | None = None  # exactly this
    low: float = 0.0  # else within [low, high]
    high: float = 100.0
    causes: tuple[str, ...] = ()  # each is the cause of at least one failing case
    only_causes: tuple[str, ...] | None = None  # every failing case has one of these causes
    reason: str | None = None  # some zero reason matches (None: there is no zero reason)
    note: str | None = None  # some note matches
    message: str | None = None  # some failing case's message matches
    failing: tuple[str, ...] | None = None  # group-name prefixes: one at least loses points; the others not named score 100
    may_fail: tuple[str, ...] = ()  # group-name prefixes that may lose points too (when ``failing`` is set)
    seconds: float | None = None  # the stage takes at most this long, plus TIMEOUT_SECONDS per case that timed out
    output: str | None = None  # what the grader kept of the candidate's printing matches


#: Seconds on the clock one timed-out case may add to a stage: its limit is counted in the child's CPU seconds
#: (solution.grading.sandbox.over_limit), so on a busy machine a 0.5 s limit takes a few seconds of the clock,
#: and the child that replaces the killed one starts again.
TIMEOUT_SECONDS = 4

STUBS = Expect(score=0, only_causes=("differs", "error"), message=r"NotImplementedError")
REFERENCE = Expect(score=100, note=r"similar to the reference")


def everywhere(want: Expect) -> dict[int, Expect]:
    """``want`` for every stage (the stubs, the reference, the fakes that must not move another stage)."""
    return {stage: want for stage in MODULES}


@dataclass
class Built:
    """What a fake writes: a module per stage, other files (relative to the folder), and facts for the patterns."""

    modules: dict[int, str]
    files: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    """One grader run on a fake."""

    folder: Path
    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None
    digest: str | None  # the SHA-256 the grader printed
    seconds: float
    max_rss_mb: float  # the largest resident set of the grader and its children

    @property
    def report_path(self) -> Path:
        return self.folder / "grade.json"


@dataclass(frozen=True)
class Fake:
    name: str
    build: Callable[[Path], Built]  # the folder it is written to (a few fakes name paths in it)
    expect: dict[int, Expect]
    what: str = ""
    max_rss_mb: float | None = None
    after: Callable[[Run, dict[str, Any]], list[str]] | None = None  # more checks once the grader has exited (run, facts)
    timeout: str = "1"  # seconds per case (--timeout)
    probe_timeout: str = "60"  # seconds per probe (--probe-timeout)

    def write(self, folder: Path) -> dict[str, Any]:
        """Write the submission into ``folder`` (``folder/exercises/...``); return its facts."""
        built = self.build(folder)
        exercises = folder / "exercises"
        exercises.mkdir(parents=True, exist_ok=True)
        (exercises / "__init__.py").write_text(_stubs()["__init__.py"])
        for stage, module in MODULES.items():
            if built.modules.get(stage) is not LINKED:  # the fake made it a link already
                (exercises / f"{module}.py").write_text(built.modules.get(stage, stub(stage)))
        for relative, text in built.files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(text)
        return built.facts


def _others(modules: dict[int, str]) -> dict[int, str]:
    """Stage 1 as given; stage 2 the reference; stage 3 the stubs (the stages a stage-1 fake leaves alone)."""
    return {2: reference(2), **modules}


#: The stage that shows a sandbox or security fake did not leak into another stage's run by making it pass:
#: the newest one, holding the stubs (exactly 0).  Every stage's run is the same child process and the same
#: sandbox (only the cases differ), so one stub stage shows such a leak as well as all of them did (each
#: stage's stubs are graded on their own by the "stubs" fake); grading the stubs of every stage again for
#: each of these fakes cost about a minute and a half of ``make test`` per stage added.
LEAK_STAGE = max(MODULES)
#: The other stages of a sandbox or security fake in stage 1: stage 2 holds the reference (it must still score
#: 100: nothing leaked into another stage's run to break it), :data:`LEAK_STAGE` the stubs (exactly 0: nothing
#: leaked to make it pass).
OTHERS = {2: REFERENCE, LEAK_STAGE: STUBS}


def untouched(stages: tuple[int, ...] = (LEAK_STAGE,)) -> dict[int, Expect]:
    """The stubs' verdict on ``stages``: where a fake that edits other stages must not have leaked."""
    return {stage: STUBS for stage in stages}
#: In :attr:`Built.modules`: the fake has put something else than a file there (left as it is).
LINKED = "(a link)"


def stage1_fake(name: str, what: str, build: Callable[[Path], Built], stage1: Expect, *, alone: bool = False, **kw: Any) -> Fake:
    """A fake in stage 1; graded with :data:`OTHERS` (stage 2's reference, the newest stage's stubs), or on stage 1 ``alone`` (a rule edit, not a sandbox attack)."""
    def built(folder: Path) -> Built:
        b = build(folder)
        return Built(_others(b.modules), b.files, b.facts)

    return Fake(name, built, {1: stage1} if alone else {1: stage1, **OTHERS}, what, **kw)


# -- checking a run -------------------------------------------------------------------


def problems(fake: Fake, run: Run, facts: dict[str, Any]) -> list[str]:
    """Everything about ``run`` that differs from what ``fake`` expects (empty: as expected)."""
    found = []
    if run.returncode != 0:
        found.append(f"the grader exited with {run.returncode}: {run.stderr[-2000:]}")
    if "total" not in run.stdout:
        found.append("the grader printed no total")
    if run.report is None:
        return found + ["no report"]
    if run.digest != sha256(run.report_path):
        found.append("the report's SHA-256 is not the one the grader printed")
    stages = {s["stage"]: s for s in run.report["stages"]}
    for stage, want in fake.expect.items():
        s = stages.get(stage)
        if s is None:
            found.append(f"stage {stage}: missing from the report")
            continue
        found += [f"stage {stage}: {p}" for p in stage_problems(s, want, facts)]
        graded = sum(len(g["cases"]) for g in s["groups"])
        if graded != case_count(stage):
            found.append(f"stage {stage}: {graded} cases have a verdict, of {case_count(stage)}")
    if fake.max_rss_mb is not None and run.max_rss_mb > fake.max_rss_mb:
        found.append(f"the grader's process tree peaked at {run.max_rss_mb:.0f} MB (limit {fake.max_rss_mb:.0f} MB)")
    if fake.after is not None:
        found += fake.after(run, facts)
    return found


def stage_problems(s: dict[str, Any], want: Expect, facts: dict[str, Any]) -> list[str]:
    found = []
    score = s["score"]
    if want.score is not None and score != want.score:
        found.append(f"scored {score}, expected {want.score} ({first_reason(s)})")
    if want.score is None and not want.low <= score <= want.high:
        found.append(f"scored {score}, expected {want.low}..{want.high} ({first_reason(s)})")
    cases = [c for g in s["groups"] for c in g["cases"]]
    failing = [c for c in cases if not c["passed"]]
    causes = {c["cause"] for c in failing}
    for cause in want.causes:
        if cause not in causes:
            found.append(f"no failing case has cause {cause!r} (causes: {sorted(causes)})")
    if want.only_causes is not None and not causes <= set(want.only_causes):
        odd = next(c for c in failing if c["cause"] not in want.only_causes)
        found.append(f"case {odd['id']} failed with cause {odd['cause']!r}: {odd['message'][:200]}")
    if want.reason is None and s["zero_reasons"]:
        found.append(f"unexpected zero reasons: {s['zero_reasons']}")
    if want.reason is not None and not any(re.search(want.reason.format(**facts), r) for r in s["zero_reasons"]):
        found.append(f"no zero reason matches {want.reason.format(**facts)!r}: {s['zero_reasons']}")
    if want.note is not None and not any(re.search(want.note.format(**facts), n) for n in s["notes"]):
        found.append(f"no note matches {want.note.format(**facts)!r}: {s['notes']}")
    if want.message is not None and not any(re.search(want.message.format(**facts), c["message"]) for c in failing):
        found.append(f"no failing case's message matches {want.message.format(**facts)!r}")
    if want.failing is not None:
        lost = [g["name"] for g in s["groups"] if g["score"] < 100]
        if not any(n.startswith(want.failing) for n in lost):
            found.append(f"none of the groups {want.failing} lost points")
        allowed = want.failing + want.may_fail
        for name in lost:
            if not name.startswith(allowed):
                found.append(f"the group {name!r} lost points, and it does not depend on the change")
    timeouts = sum(c["cause"] == "timeout" for c in failing)
    if want.seconds is not None and s["seconds"] > want.seconds + TIMEOUT_SECONDS * timeouts:
        found.append(f"took {s['seconds']} s (at most {want.seconds} s + {TIMEOUT_SECONDS} s for each of {timeouts} timeouts)")
    if want.output is not None and not re.search(want.output, s["output_head"]):
        found.append(f"the output kept does not match {want.output!r}: {s['output_head'][:200]!r}")
    return found


@cache
def case_count(stage: int) -> int:
    """How many cases a stage has: public and hidden recorded ones, and its probes."""
    from solution.checks.probes import PROBES  # data only: the grader's cases, never a candidate's code

    count = sum(p.stage == stage for p in PROBES)
    for path in (ROOT / "solution" / "checks" / "recorded", ROOT / "solution" / "grading" / "hidden"):
        document = json.loads(gzip.decompress((path / f"stage{stage}.json.gz").read_bytes()))
        count += sum(len(g["cases"]) for g in document["groups"])
    return count


def first_reason(s: dict[str, Any]) -> str:
    """Why a stage lost points, in a line: the first zero reason, else the first note about the import, else the first failing case."""
    if s["zero_reasons"]:
        return f"ZERO: {s['zero_reasons'][0]}"
    for note in s["notes"]:
        if "did not import" in note:
            return note
    for g in s["groups"]:
        for c in g["cases"]:
            if not c["passed"]:
                return f"{c['cause']}: {c['message']}"
    return ""


# -- running the grader ---------------------------------------------------------------

#: Runs the grader and reports the peak RSS of its whole process tree (the grader and the children it waited for).
_WRAPPER = """
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump({"returncode": proc.returncode, "max_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, f)
"""


def grade(folder: Path, *args: str, timeout: float = 600) -> Run:
    """Run ``tools/grade.py`` on ``folder`` (report: ``folder/grade.json``) in a fresh process tree."""
    report = folder / "grade.json"
    measured = folder / "rusage.json"
    command = [sys.executable, "-c", _WRAPPER, str(measured),
               sys.executable, str(ROOT / "tools" / "grade.py"), "--exercises", str(folder), "--report", str(report), *args]
    started = time.monotonic()
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # strict, as on a UTF-8 terminal (C.UTF-8 escapes surrogates)
    proc = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout, cwd=folder, env=env)
    seconds = time.monotonic() - started
    usage = json.loads(measured.read_text()) if measured.exists() else {"returncode": proc.returncode, "max_rss_kb": 0}
    printed = re.search(r"sha256 ([0-9a-f]{64})", proc.stdout)
    data = json.loads(report.read_text()) if report.exists() else None
    return Run(folder, usage["returncode"], proc.stdout, proc.stderr, data, printed[1] if printed else None, seconds,
               usage["max_rss_kb"] / 1024)


def stage_args(fake: Fake) -> list[str]:
    """``--stage N`` for each stage the fake's expectation names (the grader grades only those)."""
    return [arg for stage in sorted(fake.expect) for arg in ("--stage", str(stage))]


def run_fake(fake: Fake, folder: Path, *args: str) -> tuple[Run, dict[str, Any], list[str]]:
    """Write ``fake`` into ``folder``, grade the stages it names (``fake.timeout`` seconds per case), check the verdict."""
    facts = fake.write(folder)
    run = grade(folder, "--timeout", fake.timeout, "--probe-timeout", fake.probe_timeout, *stage_args(fake), *args)
    return run, facts, problems(fake, run, facts)


# -- checks after the grader exits ----------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def marked_processes() -> list[str]:
    """Processes whose command line carries :data:`MARKER`."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if MARKER.encode() in cmdline:
            shown = cmdline.replace(b"\0", b" ")[:120].decode(errors="replace")
            found.append(f"{entry.name}: {shown}")
    return found


def leftovers() -> list[str]:
    """Files a fake made outside its sandbox (removed, so that one escape does not spoil the next run)."""
    found = []
    for path in ESCAPE_FILES:
        if path.exists() or path.is_symlink():
            found.append(f"{path} was created")
            path.unlink()
    return found


def report_unchanged(run: Run, facts: dict[str, Any], wait: float = 4.0) -> list[str]:
    """No marked process outlives the grader; ``wait`` seconds later the report is still what the grader wrote."""
    found = [f"a process outlived the grader: {p}" for p in marked_processes()]
    time.sleep(wait)
    if run.digest is None:
        found.append("the grader printed no SHA-256")
    elif sha256(run.report_path) != run.digest:
        found.append(f"the report changed after the grader exited: {run.report_path.read_text()[:200]!r}")
    for proc in marked_processes():
        found.append(f"a process is still alive {wait:g} s after the grader: {proc}")
        try:
            os.kill(int(proc.split(":")[0]), 9)
        except OSError:
            pass
    return found + leftovers()


def repository_unchanged(run: Run, facts: dict[str, Any]) -> list[str]:
    """The files the fake tried to edit are byte-identical (the fake's line removed if not), and stubs graded next score 0."""
    found = []
    for name, content in facts["guarded"].items():
        path = Path(name)
        now = path.read_bytes()
        if now != content:
            found.append(f"{path} changed" + (" (the fake's line removed)" if EDITED in now else ""))
            path.write_bytes(now.replace(EDITED, b""))
    found += leftovers()
    again = run.folder / "again"
    (again / "exercises").mkdir(parents=True, exist_ok=True)
    for name, text in _stubs().items():
        (again / "exercises" / name).write_text(text)
    graded = grade(again, "--stage", "1")
    if graded.report is None or graded.report["stages"][0]["score"] != 0:
        found.append(f"the stubs graded next did not score 0: {graded.stdout[-500:]}")
    return found


# -- the fakes ------------------------------------------------------------------------


def _stubs_everywhere(folder: Path) -> Built:
    return Built({})


def _reference_everywhere(folder: Path) -> Built:
    return Built({stage: reference(stage) for stage in MODULES})


def _tie_break(folder: Path) -> Built:
    """Free slots before memory: the heap key's middle fields swap places (and the one that says an entry is current moves)."""
    source = edit(reference(1), "-self.gpu_memory_gb, load - self.capacity, self.seq)",
                  "load - self.capacity, -self.gpu_memory_gb, self.seq)")
    return Built({1: edit(source, "len(srv.active) - srv.capacity == entry[2]", "len(srv.active) - srv.capacity == entry[1]")})


def _endless_loop(folder: Path) -> Built:
    return Built({1: in_route_request("        while estimated_tokens == 4097:\n            pass\n")})


def _huge_allocation(folder: Path) -> Built:
    return Built({1: in_route_request("        bytearray(8 * 2**30)\n")})


def _loud(folder: Path) -> Built:
    return Built({1: in_route_request('        print("x" * 10_000_000)\n')})


def _debug_prints(folder: Path) -> Built:
    """A print at the top of every function of the reference, stages 1 and 2."""
    modules = {}
    for stage in (1, 2):
        modules[stage], count = with_debug_prints(reference(stage))
        assert count >= 10, f"only {count} functions got a print"
    return Built(modules)


def _at_import(code: str, base: Callable[[int], str] = reference) -> Callable[[Path], Built]:
    def build(folder: Path) -> Built:
        source, line = after_imports(base(1), code)
        return Built({1: source}, facts={"line": line})

    return build


def _syntax_error(folder: Path) -> Built:
    source, line = after_imports(reference(1), "def broken(:\n    pass\n")
    return Built({1: source, 2: reference(2), 3: reference(3)}, facts={"line": line})


def _skip_test(folder: Path) -> Built:
    source = in_route_request('        raise unittest.SkipTest("x")\n')
    source, _ = after_imports(source, "import unittest\n")
    return Built({1: source})


def _module(text: str) -> Callable[[Path], Built]:
    return lambda folder: Built({1: text})


def _linked(folder: Path) -> Built:
    (folder / "exercises").mkdir(parents=True, exist_ok=True)
    (folder / "exercises" / "balancer.py").symlink_to(ROOT / "solution" / "balancer.py")
    return Built({1: LINKED})


def _conftests(folder: Path) -> Built:
    hook = ("import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
            "    outcome = yield\n    report = outcome.get_result()\n    report.outcome = 'passed'\n\n\n"
            "def pytest_collection_modifyitems(items):\n    items[:] = []\n")
    return Built({}, files={"conftest.py": hook, "exercises/conftest.py": hook})


_PATCHING = """
try:
    import solution.checks.script as _script
    _script.first_difference = lambda *args, **kwargs: None
    _script.run_case = lambda harness, impl, case: [["ok", None]] + [[["ok", None], ["ok", None]] for _ in case.ops]
    _script.same = lambda a, b: True
except BaseException:
    pass
try:
    import pytest
    pytest.main = lambda *args, **kwargs: 0
except BaseException:
    pass
try:
    import gc
    for _obj in gc.get_objects():
        if isinstance(_obj, dict) and "expect" in _obj:
            _obj["expect"] = None
except BaseException:
    pass
"""

_COST_PATCH = """
try:
    import solution.checks.cost as _cost
    _cost._balancer = lambda impl, size: None
    _cost._round_routes = lambda lb, tag, observe: 1.0
except BaseException:
    pass
"""


def _editing(folder: Path) -> Built:
    targets = [str(p) for p in GUARDED]
    code = f"""
import os as _os
import sys as _sys
_targets = {targets!r} + [_sys.modules["solution"].__file__]  # the sandbox's own copy too
for _path in _targets:
    try:
        with open(_path, "a") as _f:
            _f.write({EDITED.decode()!r})
    except BaseException:
        pass
try:  # a path relative to a directory the sandbox may read, as the wall saw it relative to the scratch folder
    _fd = _os.open({str(VENV_SITE)!r}, _os.O_RDONLY)
    _os.close(_os.open({ESCAPE_FILES[1].name!r}, _os.O_WRONLY | _os.O_CREAT, dir_fd=_fd))
except BaseException:
    pass
try:
    import sqlite3
    sqlite3.connect({str(ESCAPE_FILES[0])!r}).execute("create table t(x)")
except BaseException:
    pass
try:
    _os.mkfifo({str(ESCAPE_FILES[2])!r})
except BaseException:
    pass
"""
    source, line = after_imports(stub(1), code)
    return Built({1: source}, facts={"line": line, "guarded": {str(p): p.read_bytes() for p in GUARDED}})


def _detached(folder: Path) -> Built:
    forged = json.dumps({"total_score": 100, "stages": []})
    report = shlex.quote(str(folder / "grade.json"))
    # Wait (at most a minute) for the grader's report, sleep 3 s, then overwrite it.
    script = f"for i in $(seq 600); do [ -e {report} ] && break; sleep 0.1; done; sleep 3; printf %s {shlex.quote(forged)} > {report}"
    argv = ["/bin/sh", "-c", script, MARKER]
    background = shlex.join(argv) + " &"
    code = f"""
import os as _os
_argv = {argv!r}
try:
    if _os.fork() == 0:
        _os.setsid()
        _os.execv(_argv[0], _argv)
except BaseException:
    pass
try:
    import subprocess
    subprocess.Popen(_argv, start_new_session=True, env={{}})
except BaseException:
    pass
try:
    _os.system({background!r})
except BaseException:
    pass
try:
    _os.posix_spawn(_argv[0], _argv, {{}})
except BaseException:
    pass
try:  # what subprocess calls underneath: no audit event of its own
    import _posixsubprocess
    _r, _w = _os.pipe()
    _posixsubprocess.fork_exec([a.encode() for a in _argv], [_argv[0].encode()], True, (), None, [b"PATH=/bin"],
                               -1, -1, -1, -1, -1, -1, _r, _w, False, True, -1, None, None, None, -1, None, False)
except BaseException:
    pass
try:  # a subinterpreter starts without this interpreter's audit hooks
    import _xxsubinterpreters
    _xxsubinterpreters.run_string(_xxsubinterpreters.create(), {f"import os; os.system({background!r})"!r})
except BaseException:
    pass
"""
    source, _ = after_imports(stub(1), code)
    return Built({1: source})


_KILL_GRADER = """
try:
    import os as _os, signal as _signal
    _signal.pidfd_send_signal(_os.pidfd_open(_os.getppid()), _signal.SIGKILL)
except BaseException:
    pass
try:  # as root, raising a hard limit is allowed: then 3 GB would fit
    import resource as _resource
    _resource.setrlimit(_resource.RLIMIT_AS, (_resource.RLIM_INFINITY, _resource.RLIM_INFINITY))
    _big = bytearray(3 * 2**30)
except BaseException:
    pass
"""

_FORGE = """
import os as _os, sys as _sys
try:
    _fd = _sys.modules["__main__"]._results_fd
    _os.write(_fd, b"[" * 100_000 + b"]" * 100_000 + b"\\n")  # too deep for json.loads
    _os.write(_fd, b'{"event": "import", "ok": true, "classes": {"LoadBalancer": "not a dict"}}\\n')
    for _id in ("p1.0.0", "p1.0.1", "p1.0.2"):
        _os.write(_fd, ('{"event": "case", "id": "%s", "steps": {"not": "a list"}, "error": null, "seconds": "soon"}\\n' % _id).encode())
except BaseException:
    pass
"""

_FLOOD = """
import os as _os, sys as _sys
try:
    _fd = _sys.modules["__main__"]._results_fd
    _chunk = b"x" * (1 << 20)
    for _ in range(400):  # 400 MB with no end of line
        _os.write(_fd, _chunk)
except BaseException:
    pass
"""


def _stage3_edit(old: str, new: str) -> Callable[[Path], Built]:
    """Stage 3's reference with one edit (graded alone; the other stages hold the stubs)."""
    return lambda folder: Built({3: edit(reference(3), old, new)})


#: Stage 3's fakes: the token-count cost model the course replaced (issue 10), each caught by its own group.
_PREDICTIVE_BY_TOKENS = _stage3_edit(
    "        return server.model.e2e(request.prompt_tokens or 0, request.output_tokens, server.load)\n",
    "        return (server.outstanding_tokens + request.estimated_tokens) / server.speed\n",
)
_LOT_ALL_TOKENS = _stage3_edit(
    "        return (server.outstanding_output_tokens / server.speed, server.load_ratio_key / _SHIFT)\n",
    "        return (server.outstanding_tokens / server.speed, server.load_ratio_key / _SHIFT)\n",
)



def _stage2_edit(old: str, new: str) -> Callable[[Path], Built]:
    """Stage 2's reference with one edit (graded alone; the other stages hold the stubs)."""
    return lambda folder: Built({2: edit(reference(2), old, new)})


#: Stage 2's fakes (issue 10): the token-count SJF key, and a full queue that always says 429.
_SJF_BY_TOTAL = _stage2_edit(
    "            primary = policy.job_size(estimated_tokens, prompt_tokens) + policy.aging_rate * now\n",
    "            primary = estimated_tokens + policy.aging_rate * now\n",
)
_ALWAYS_429 = _stage2_edit(
    "            return Rejected(request_id, now, self._retry_after(now), policy.reject_status)\n",
    "            return Rejected(request_id, now, self._retry_after(now), 429)\n",
)

def _stage4_edit(old: str, new: str) -> Callable[[Path], Built]:
    """Stage 4's reference with one edit (graded alone; the other stages hold the stubs)."""
    return lambda folder: Built({4: edit(reference(4), old, new)})


#: Stage 4's fakes (issue 11): plausible health checkers and ledgers that each break one rule.
_NO_EJECTION_CAP = _stage4_edit(
    "        if (self._ejected + 1) * 100 > p.max_ejection_percent * len(self._servers):\n",
    "        if False:  # no max_ejection_percent\n",
)
_FIXED_EJECTION_TIME = _stage4_edit(
    "        server.ejected_until = now + p.ejection_time(server.level)\n",
    "        server.ejected_until = now + p.base_ejection_time\n",
)
_LATE_ANSWER_DELIVERED = _stage4_edit(
    '        self._stats["late_answers_discarded"] += 1\n',
    '        if request is not None and request.status in ("waiting", "failed"):\n            return True  # an earlier server answered: why not\n'
    '        self._stats["late_answers_discarded"] += 1\n',
)
_NO_SLOW_START = _stage4_edit(
    "            return max(p.min_weight, (t / p.slow_start_window) ** (1.0 / p.aggression))\n",
    "            return 1.0  # slow start ignored\n",
)
_SCANNED_MEAN = _stage4_edit(
    "        mean = (self._spt_sum - server.spt_ewma) / (self._spt_count - 1)  # the other servers' mean\n",
    "        others = [s.spt_ewma for s in self._servers.values() if s is not server and s.spt_ewma is not None]\n"
    "        mean = (sum(others) if others else 0.0) / max(1, len(others))  # a scan of the fleet per result\n",
)


def _stage4_fake(name: str, build: Callable[[Path], Built], failing: tuple[str, ...], what: str,
                 may_fail: tuple[str, ...] = ("random operations",)) -> Fake:  # fmt: skip
    return Fake(name, build, {4: Expect(low=1, high=99, only_causes=("differs",), failing=failing, may_fail=may_fail)}, what)


def _stage5_edit(old: str, new: str) -> Callable[[Path], Built]:
    """Stage 5's reference with one edit (graded alone; the other stages hold the stubs)."""
    return lambda folder: Built({5: edit(reference(5), old, new)})


#: Stage 5's fakes (issue 12): plausible session tables, affinities and rings that each break one rule.
_TTL_NOT_REFRESHED = _stage5_edit(
    "        entry[1] = now + self._ttl\n        self._entries.move_to_end(session_id)\n        self._hits += 1\n",
    "        self._entries.move_to_end(session_id)  # the deadline stays: the TTL counts from the first use\n        self._hits += 1\n",
)
_ALWAYS_STICKY = _stage5_edit(
    "            if pick is None or pick is sticky or sticky.load / sticky.capacity <= pick.load / pick.capacity + self._slack:\n",
    "            if True:  # the slack ignored: a server that can take the request keeps its sessions\n",
)
_NO_LOAD_BOUND = _stage5_edit(
    "            if s.load < bound and eligible(s, request):\n",
    "            if eligible(s, request):  # no load bound: plain consistent hashing\n",
)
_EXPIRY_SCAN = _stage5_edit(
    "        self._drop_expired(now)\n        entry = self._entries.get(session_id)\n        if entry is None:\n",
    "        for sid in [k for k, (_, deadline) in self._entries.items() if deadline <= now]:  # every session, per request\n"
    "            server_id, _ = self._entries.pop(sid)\n            self._unindex(sid, server_id)\n            self._expired += 1\n"
    "        entry = self._entries.get(session_id)\n        if entry is None:\n",
)


def _stage5_fake(name: str, build: Callable[[Path], Built], failing: tuple[str, ...], what: str) -> Fake:
    return Fake(name, build, {5: Expect(low=1, high=99, only_causes=("differs",), failing=failing, may_fail=("random operations",))}, what)


def _stage6_edit(*edits: tuple[str, str]) -> Callable[[Path], Built]:
    """Stage 6's reference with its edits (graded alone; the other stages hold the stubs)."""
    def build(folder: Path) -> Built:
        source = reference(6)
        for old, new in edits:
            source = edit(source, old, new)
        return Built({6: source})

    return build


#: Stage 6's fakes (issue 13): plausible tier tables, limiters, routings and preemptors that each break one rule.
_RESERVATION_ROUNDED_DOWN = _stage6_edit(
    ("        return max(0, math.ceil(share * capacity - _ROUNDING_SLACK))\n",
     "        return max(0, math.floor(share * capacity + _ROUNDING_SLACK))  # rounded down: 25% of 3 slots is none\n"),
    ("sum(max(0, math.ceil(s * capacity - _ROUNDING_SLACK)) for s in self._above[row.name])",
     "sum(max(0, math.floor(s * capacity + _ROUNDING_SLACK)) for s in self._above[row.name])"),
)
_CONSTANT_RETRY_AFTER = _stage6_edit(
    ("        return max(1, math.ceil(wait))\n", "        return 1  # come back in a second, whatever the bucket says\n"),
)
_CHARGED_ON_REJECT = _stage6_edit(
    ("        if worst > 0.0:\n            self._limited[binding] += 1\n",
     "        if worst > 0.0:\n            for bucket, need, _ in buckets:  # charged although refused: the refused request eats the quota\n"
     "                bucket._level = max(0.0, bucket.level(now) - need)\n                bucket._at = now\n"
     "            self._limited[binding] += 1\n"),
)
_NEVER_FORGETS = _stage6_edit(
    ("        for name, idle_after in self._idle_after.items():\n            tenants = self._tenants[name]\n            while tenants:\n",
     "        return  # every tenant ever seen is kept (until the bound evicts one)\n"
     "        for name, idle_after in self._idle_after.items():\n            tenants = self._tenants[name]\n            while tenants:\n"),
)
_TENANTS_SCANNED = _stage6_edit(
    ("            while tenants:\n                first = next(iter(tenants.values()))\n                if now - first.last < idle_after:\n"
     "                    break\n                tenants.popitem(last=False)\n",
     "            for key in [k for k, e in tenants.items() if now - e.last >= idle_after]:  # every tenant, on every request\n"
     "                del tenants[key]\n"),
)
_RESERVATION_IGNORED_BY_ROUTING = _stage6_edit(
    ("        return server.load < self.table.limit(row.name, self.router.limit(server), server.nominal_capacity)\n",
     "        return server.load < self.router.limit(server)  # the server's own limit: any tier may take a reserved slot\n"),
)
_UNBOUNDED_PREEMPTION = _stage6_edit(
    ("        if row.preemptible and self._times.get(rid, 0) < self._max:\n",
     "        if row.preemptible:  # no max_preemptions: the same batch request can be paused forever\n"),
)
_OLDEST_VICTIM = _stage6_edit(
    ("        for rid in reversed(self._candidates):\n", "        for rid in self._candidates:  # the oldest first: the most work lost\n"),
)
_FLEET_SCAN_PER_DECISION = _stage6_edit(
    ("        row = self.table.tier(request.tier)\n        large = self.router.is_large(request)\n",
     "        row = self.table.tier(request.tier)\n        self.router.eligible_servers(request)  # a look at every server, per decision\n"
     "        large = self.router.is_large(request)\n"),
)


def _stage6_fake(name: str, build: Callable[[Path], Built], failing: tuple[str, ...], what: str,
                 may_fail: tuple[str, ...] = ("random operations",), **kw: Any) -> Fake:  # fmt: skip
    return Fake(name, build, {6: Expect(low=1, high=99, only_causes=("differs",), failing=failing, may_fail=may_fail)}, what, **kw)


#: Stage 7's wrong implementations (issue 14), each one edit of solution/deploy.py and the check groups that must
#: catch it (prefixes).  ``tests/meta/test_stage7_checks.py`` runs them through the check in-process (fast); each is
#: also a grader fake on stage 7 alone (:func:`_stage7_fake`), like stage 6's.
STAGE7_EDITS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "surge rounded down": ("return -(-replicas * number // 100) if percent else number",
                           "return replicas * number // 100 if percent else number", ("bounds",)),
    "prewarm drains at R": ("if ready - 1 < self.replicas:", "if ready - 1 < self.replicas - 1:", ("rolling update: prewarm",)),
    "drain-first past the bound": ("if ready - 1 < self.min_ready:", "if ready - 1 < self.min_ready - 1:",
                                   ("rolling update: drain-first",)),
    "draining servers not counted": ('            existing += 1\n            if status == "ready":',
                                     '            existing += status != "draining"\n            if status == "ready":',
                                     ("rolling update: drain-first",)),
    "two-sided error test": ("low = max(x_b, n_b - (total - errors))", "low = max(0, n_b - (total - errors))",
                             ("canary analysis",)),
    "no Bonferroni": ("return self.plan.alpha / len(self.plan.metrics)", "return self.plan.alpha", ("canary analysis",)),
    "no tie correction": ("ties += t**3 - t", "ties += 0", ("canary analysis",)),
    "excluded tiers split too": ("if request.tier is not None and request.tier in self.excluded_tiers:", "if False:",
                                 ("canary split",)),
    "hash of the request, not the session": (
        "key = request.session_id if request.session_id is not None else request.request_id", "key = request.request_id",
        ("canary split",)),
    "rollback keeps the canary's weight": ("            self._act(at, SetCanaryWeight(0.0, at), f\"rollback: no traffic to {self.new_version}\", out)\n",
                                           "", ("canary: rollback",)),
}  # fmt: skip


#: What each of stage 7's wrong implementations does, and the other groups it may cost points in (its edit reaches
#: them: a rollout that drains too early differs in every later step of a seeded rollout, a canary that lives in
#: the surge, a rollback that rolls back to A under the same bounds).
_STAGE7_FAKES: dict[str, tuple[str, tuple[str, ...]]] = {
    "surge rounded down": ("stage 7 rounds a percent max_surge down (25% of 3 is no server: the rollout cannot start)",
                           ("rolling update", "random")),
    "prewarm drains at R": ("stage 7's pre-warm drains an old server while only R are ready (capacity dips below R)",
                            ("faults", "canary:", "one rollout", "bad input", "random")),
    "drain-first past the bound": ("stage 7's drain-first drains one server past R - max_unavailable", ("faults", "random")),
    "draining servers not counted": ("stage 7 does not count draining servers toward R + max_surge (their GPUs are still held)",
                                     ("rolling update: prewarm", "faults", "canary: rollback", "random")),
    "two-sided error test": ("stage 7's Fisher test is two-sided (a canary with fewer errors than A looks suspicious)",
                             ("canary: rollback",)),
    "no Bonferroni": ("stage 7 tests each of m metrics at alpha, not alpha / m (false rollbacks up to m times as often)", ()),
    "no tie correction": ("stage 7's Mann-Whitney variance ignores ties (quantized latencies give wrong p-values)", ()),
    "excluded tiers split too": ("stage 7's canary split sends excluded tiers (premium) to the new version too", ()),
    "hash of the request, not the session": ("stage 7's split hashes the request id: a conversation hops between versions", ()),
    "rollback keeps the canary's weight": ("stage 7's rollback drains the canary but leaves its traffic share set", ("random",)),
}


def _stage7_fake(name: str) -> Fake:
    """Stage 7's wrong implementation ``name`` (:data:`STAGE7_EDITS`), graded on stage 7 alone."""
    old, new, failing = STAGE7_EDITS[name]
    what, may_fail = _STAGE7_FAKES[name]
    return Fake(name, lambda folder: Built({7: edit(reference(7), old, new)}),
                {7: Expect(low=1, high=99, only_causes=("differs",), failing=failing, may_fail=may_fail)}, what)


_SPLIT_SCAN = (
    '        side = self.side(request)\n        chosen = self._inner[side].choose(request)\n        if chosen is None and side == "new":\n'
    '            chosen = self._inner["old"].choose(request)\n            if chosen is not None:\n',
    '        side = self.side(request)\n        [s for s in self.router.routable_servers() if s.version == self.new_version]  # a fleet scan\n'
    '        chosen = self._inner[side].choose(request)\n        if chosen is None and side == "new":\n'
    '            chosen = self._inner["old"].choose(request)\n            if chosen is not None:\n',
)


#: Stage 8's wrong implementations (issue 15), each a small edit of solution/retry.py (one or two replacements), the
#: check groups that must catch it (prefixes) and the others it may cost points in (its edit reaches them).
#: ``tests/meta/test_stage8_checks.py`` runs them through the check in-process (fast); each is also a grader fake on
#: stage 8 alone (:func:`_stage8_fake`).
STAGE8_EDITS: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, ...], tuple[str, ...], str]] = {
    "equal jitter": (
        (("    return rng.random() * bound\n", "    return bound / 2 + rng.random() * bound / 2\n"),),
        ("jitter",), ("retry-after",),
        "stage 8 waits bound/2 plus a uniform half (AWS's 'equal jitter'), not uniformly on [0, bound]"),
    "no cap": (
        (("    return min(policy.cap, grown)\n", "    return grown\n"),),
        ("backoff",), ("jitter", "rules", "retry-after", "budget", "bad input", "random"),
        "stage 8's backoff doubles for ever (no cap: the 10th retry waits 12.8 s at base 25 ms)"),
    "budget on every request begun": (
        (("= False\n        ### END SOLUTION", "= False\n        self._begun = getattr(self, '_begun', 0) + 1\n        ### END SOLUTION"),
         ("policy.budget.limit(len(self._retrying))", "policy.budget.limit(self._begun)")),
        ("budget",), ("random",),
        "stage 8's budget is a share of every request ever begun, not of the active ones (it only grows)"),
    "retry after streamed": (
        (("        if streamed:\n", "        if False:\n"),),
        ("rules",), ("random",),
        "stage 8 retries a request whose tokens already reached the client (the client reads two answers spliced)"),
    "Retry-After ignored": (
        (("delay = (failure.retry_after or 0.0) + full_jitter(", "delay = 0.0 + full_jitter("),),
        ("retry-after",), ("rules", "budget", "random"),
        "stage 8 waits only its own backoff, however long the server's Retry-After asked for"),
    "max of Retry-After and jitter": (
        (("delay = (failure.retry_after or 0.0) + full_jitter(tries, policy, self._rng)",
          "delay = max(failure.retry_after or 0.0, full_jitter(tries, policy, self._rng))"),),
        ("retry-after",), (),
        "stage 8 waits max(Retry-After, jitter): every client refused together comes back at the same instant"),
    "budget kept after end": (
        (("        if self._retrying.pop(request_id):\n            self._in_flight -= 1\n", "        self._retrying.pop(request_id)\n"),),
        ("budget",), ("jitter", "rules", "retry-after", "bad input", "random"),
        "stage 8 never releases a retry in flight when its request ends (the budget leaks until nothing is retried)"),
    "a refused call draws": (
        (("        self._require_active(request_id)\n        tries = _attempt(", "        self._rng.random()\n        self._require_active(request_id)\n        tries = _attempt("),),
        ("bad input",), (),
        "stage 8's decide draws from its generator before checking its arguments (a refused call moves the random stream)"),
}


def stage8_source(name: str) -> str:
    """solution/retry.py with :data:`STAGE8_EDITS`' ``name`` applied (each replacement must apply exactly once)."""
    source = reference(8)
    for old, new in STAGE8_EDITS[name][0]:
        source = edit(source, old, new)
    return source


def _stage8_fake(name: str) -> Fake:
    """Stage 8's wrong implementation ``name`` (:data:`STAGE8_EDITS`), graded on stage 8 alone."""
    _, failing, may_fail, what = STAGE8_EDITS[name]
    return Fake(name, lambda folder: Built({8: stage8_source(name)}),
                {8: Expect(low=1, high=99, only_causes=("differs",), failing=failing, may_fail=may_fail)}, what)


#: A retrier that counts its retries in flight by scanning the active requests on each decision (the same answers).
_RETRY_SCAN = ("self._in_flight + 1 > policy.budget.limit(", "sum(self._retrying.values()) + 1 > policy.budget.limit(")


def fakes() -> list[Fake]:
    """Every fake, in the order the table shows them."""
    no_import = dict(only_causes=("import",), causes=("import",))
    return [
        Fake("stubs", _stubs_everywhere, everywhere(STUBS), "the generated stubs, untouched"),
        Fake("reference", _reference_everywhere, everywhere(REFERENCE), "the reference copied in"),
        stage1_fake("tie-break swapped", "free slots before memory in the tie-break", _tie_break,
                    # The tie-break group's cases never set memory against free slots (same capacity, or same
                    # memory); the one case that does is in the load-ratio group (8 slots/24 GB and 2/80 GB, idle).
                    Expect(low=1, high=99, only_causes=("differs",), failing=("tie-breaks", "lowest load ratio"),
                           may_fail=("random operations",)), alone=True),
        stage1_fake("endless loop", "`while estimated_tokens == 4097: pass` in route_request", _endless_loop,
                    Expect(low=1, high=99, causes=("timeout",), only_causes=("timeout",), seconds=15), timeout="0.5"),
        stage1_fake("8 GB per call", "`bytearray(8 * 2**30)` in route_request", _huge_allocation,
                    Expect(score=0, message=r"MemoryError", only_causes=("differs", "error")), max_rss_mb=MAX_RSS_MB),
        # Every case passes, as the reference's do, except the exact-ratio probe: 3.2 million calls
        # that each build a 10 MB string take far longer than its limit (a verdict on speed, not on printing).
        stage1_fake("10 MB printed per call", '`print("x" * 10_000_000)` in route_request', _loud,
                    Expect(low=95, high=99.9, note=r"similar", output=r"x{1000}", causes=("timeout",), only_causes=("timeout",),
                           failing=("lowest load ratio",)),
                    max_rss_mb=MAX_RSS_MB, probe_timeout="10"),
        Fake("predictive by tokens", _PREDICTIVE_BY_TOKENS,
             {3: Expect(low=1, high=99, only_causes=("differs",), failing=("predictive",))},
             "stage 3's Predictive prices a request as (outstanding tokens + its tokens) / speed, not in seconds"),
        Fake("outstanding tokens, prompts included", _LOT_ALL_TOKENS,
             {3: Expect(low=1, high=99, only_causes=("differs",), failing=("least outstanding",))},
             "stage 3's LeastOutstandingTokens counts prompt tokens as if each cost a decode iteration"),
        Fake("sjf by total tokens", _SJF_BY_TOTAL,
             {2: Expect(low=1, high=99, only_causes=("differs",), failing=("shortest job first",), may_fail=("random operations",))},
             "stage 2's SJF orders by estimated_tokens and ignores prompt_tokens (a prompt token priced as an output token)"),
        Fake("always 429", _ALWAYS_429,
             {2: Expect(low=1, high=99, only_causes=("differs",), failing=("max depth",), may_fail=("random operations",))},
             "stage 2's full queue answers 429 whatever the policy's reject_status (503 by default)"),
        _stage4_fake("no ejection cap", _NO_EJECTION_CAP, ("passive checks: max_ejection_percent",),
                     "stage 4 ejects every server that fails, whatever max_ejection_percent says"),
        _stage4_fake("ejection time not growing", _FIXED_EJECTION_TIME, ("passive checks: consecutive_5xx", "circuit breaker"),
                     "stage 4 ejects for base_ejection_time every time (no doubling, so a bad server flaps)"),
        _stage4_fake("late answer delivered", _LATE_ANSWER_DELIVERED, ("re-route: exactly one answer",),
                     "stage 4's ledger delivers an earlier attempt's answer when the current one has not answered yet",
                     may_fail=("random operations", "re-route: re-send")),
        _stage4_fake("slow start ignored", _NO_SLOW_START, ("slow start",),
                     "stage 4 gives a recovered or new server its full weight at once",
                     # the ramp's weight shows in every snapshot after a half-open closes
                     may_fail=("random operations", "add:", "circuit breaker", "active checks: thresholds", "passive checks: consecutive_5xx")),
        Fake("fleet scan per result", _SCANNED_MEAN,
             {4: Expect(low=1, high=99, only_causes=("differs", "probe"), failing=("cost:",), may_fail=("random operations", "degraded"))},
             "stage 4 recomputes the fleet's mean latency by scanning every server on each request result"),
        _stage5_fake("TTL not refreshed on use", _TTL_NOT_REFRESHED, ("session table: TTL refreshed",),
                     "stage 5's table counts a session's TTL from its first use: a conversation that keeps talking is dropped"),
        _stage5_fake("soft slack ignored", _ALWAYS_STICKY, ("soft affinity",),
                     "stage 5's soft affinity keeps a session on its server whatever the load, while the server has a slot"),
        _stage5_fake("hashing without the load bound", _NO_LOAD_BOUND, ("bounded-load hashing",),
                     "stage 5's ring sends a key to the first eligible server clockwise however loaded (plain consistent hashing)"),
        Fake("session table scanned per request", _EXPIRY_SCAN,
             {5: Expect(low=1, high=99, only_causes=("probe",), failing=("cost:",))},
             "stage 5's table finds expired sessions by scanning every session on each request"),
        _stage6_fake("reservation rounded down", _RESERVATION_ROUNDED_DOWN, ("reservation",),
                     "stage 6 rounds a reserved share down (25% of a 3-slot server is no slot: premium's floor is gone on small servers)",
                     may_fail=("random operations", "pools", "SLA routing", "bad input")),
        _stage6_fake("constant Retry-After", _CONSTANT_RETRY_AFTER, ("token bucket", "admission"),
                     "stage 6 answers every 429 with Retry-After: 1, whatever the bucket needs"),
        _stage6_fake("charged on reject", _CHARGED_ON_REJECT, ("rate limiter: tier and tenant",),
                     "stage 6 charges every bucket even when the request is refused (a 429 eats the tenant's quota)",
                     may_fail=("random operations", "rate limiter: idle", "admission")),
        _stage6_fake("idle tenants never forgotten", _NEVER_FORGETS, ("rate limiter: idle",),
                     "stage 6 keeps every tenant it has seen (memory grows with tenants ever seen, up to the bound)",
                     may_fail=("random operations", "admission", "bad input")),
        _stage6_fake("reservation ignored by routing", _RESERVATION_IGNORED_BY_ROUTING, ("reservation",),
                     "stage 6's tier routing checks only the server's own limit: free and batch take premium's reserved slots",
                     may_fail=("random operations", "pools", "SLA routing", "bad input")),
        _stage6_fake("unbounded preemption", _UNBOUNDED_PREEMPTION, ("preemption",),
                     "stage 6 preempts the same batch request again and again (no max_preemptions: starvation)"),
        _stage6_fake("oldest victim", _OLDEST_VICTIM, ("preemption",),
                     "stage 6 preempts the oldest running batch request (the one that has done the most work), not the newest"),
        Fake("fleet scanned per tier decision", _FLEET_SCAN_PER_DECISION,
             {6: Expect(low=1, high=99, only_causes=("probe",), failing=("cost:",))},
             "stage 6's tier routing lists every eligible server on each decision"),
        Fake("tenants scanned per admission", _TENANTS_SCANNED,
             {6: Expect(low=1, high=99, only_causes=("probe", "timeout"), failing=("cost:",))},
             "stage 6's limiter finds idle tenants by scanning every tenant on each request", probe_timeout="20"),
        *(_stage7_fake(name) for name in _STAGE7_FAKES),
        Fake("fleet scanned per split decision", lambda folder: Built({7: edit(reference(7), *_SPLIT_SCAN)}),
             {7: Expect(low=1, high=99, only_causes=("probe",), failing=("cost:",))},
             "stage 7's canary split lists the new version's servers on each decision"),
        *(_stage8_fake(name) for name in STAGE8_EDITS),
        Fake("active requests scanned per decision", lambda folder: Built({8: edit(reference(8), *_RETRY_SCAN)}),
             {8: Expect(low=1, high=99, only_causes=("probe",), failing=("cost:",))},
             "stage 8's retrier counts its retries in flight by scanning the active requests on each decision"),
        Fake("debug prints", _debug_prints,
             {**untouched(), 1: Expect(score=100, note=r"similar", output=r"debug"), 2: Expect(score=100, note=r"similar", output=r"debug")},
             "a print at the top of every function of the reference (stages 1, 2)"),
        stage1_fake("sys.exit at import", "`sys.exit(0)` at import", _at_import("import sys; sys.exit(0)\n"),
                    Expect(score=0, note=r"SystemExit\(0\).*sys\.exit at balancer\.py:{line}\b", **no_import)),
        stage1_fake("os._exit at import", "`os._exit(0)` at import", _at_import("import os; os._exit(0)\n"),
                    Expect(score=0, note=r"os\._exit\(0\).* at balancer\.py:{line}\b", **no_import)),
        Fake("syntax error", _syntax_error,
             {**untouched(), 1: Expect(score=0, note=r"SyntaxError.* at balancer\.py:{line}\b", **no_import), 2: REFERENCE, 3: REFERENCE},
             "`def broken(:` in stage 1; the reference in stages 2 and 3"),
        stage1_fake("SkipTest", '`raise unittest.SkipTest("x")` in route_request', _skip_test,
                    Expect(low=0, high=99, message=r"SkipTest", only_causes=("differs", "error"))),
        stage1_fake("surrogate in a message", '`raise LookupError("\\udcff")` in route_request: not UTF-8',
                    lambda folder: Built({1: in_route_request('        raise LookupError("\\udcff")\n')}),
                    Expect(score=0, message=r"LookupError\(\udcff\)", only_causes=("differs", "error"))),
        stage1_fake("re-export", "`from solution.balancer import LoadBalancer`",
                    _module("from solution.balancer import LoadBalancer\n\n__all__ = ['LoadBalancer']\n"),
                    Expect(score=0, reason=r"imports from solution\.balancer")),
        stage1_fake("re-export, dynamic", '`importlib.import_module("solution.balancer")`',
                    _module('import importlib\n\nLoadBalancer = importlib.import_module("solution.balancer").LoadBalancer\n'),
                    Expect(score=0, reason=r"names a reference module in a string")),
        stage1_fake("re-export, package", "`from solution import LoadBalancer`",
                    _module("from solution import LoadBalancer\n\n__all__ = ['LoadBalancer']\n"),
                    Expect(score=0, reason=r"imports from the reference package")),
        Fake("linked reference", _linked, {**untouched((2, LEAK_STAGE)), 1: Expect(score=0, reason=r"is a link to .*solution/balancer\.py",
                                                                         only_causes=("import",))},
             "exercises/balancer.py is a symbolic link to the grader's solution/balancer.py"),
        Fake("shipped conftest.py", _conftests, untouched((1, 2, LEAK_STAGE)),
             "an all-pass pytest hook next to exercises/ and inside it"),
        stage1_fake("patching at import", "patches solution.checks.script, pytest; walks the heap with gc",
                    _at_import(_PATCHING, stub), Expect(score=0, reason=r"changed the grader's support code.*solution\.checks\.script:")),
        stage1_fake("cost rule patched", "stubs that replace the cost measurement's helpers at import",
                    _at_import(_COST_PATCH, stub), Expect(score=0, reason=r"changed the grader's support code.*solution\.checks\.cost:_")),
        stage1_fake("editing the repository", "appends to the real solution/checks/script.py, conftest.py; "
                    "dir_fd, sqlite3, mkfifo", _editing, Expect(score=0), after=repository_unchanged),
        stage1_fake("detached process", "fork, Popen, system, posix_spawn, _posixsubprocess, a subinterpreter: "
                    "`sleep 3` then overwrite the report", _detached, Expect(score=0), after=report_unchanged),
        stage1_fake("killing the grader", "pidfd_send_signal(SIGKILL) to the parent; RLIMIT_AS raised, then 3 GB",
                    _at_import(_KILL_GRADER, stub), Expect(score=0), max_rss_mb=MAX_RSS_MB),
        stage1_fake("parser bomb", "`-` 5,000 times before a 1: too deep for Python's parser (the grader parses the source)",
                    _at_import("_bomb = " + "-" * 5000 + "1\n", stub), Expect(score=0, note=r"did not import: RecursionError", **no_import)),
        stage1_fake("forged results", "writes malformed events on the results pipe (wrong types, nesting too deep)", _at_import(_FORGE, stub),
                    Expect(score=0, causes=("crash",), message=r"malformed result")),
        stage1_fake("flooded results", "writes 400 MB with no end of line on the results pipe", _at_import(_FLOOD, stub),
                    Expect(score=0, note=r"more than \d+ MB without an end of line", **no_import, seconds=10), max_rss_mb=MAX_RSS_MB),
    ]
