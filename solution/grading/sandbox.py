"""Run a candidate's module in a child process that cannot reach the grade.

Per stage and submission, :func:`build_tree` makes a fresh read-only tree:
the support code (``solution/core``, ``solution/checks`` without recorded
results), an empty ``solution/__init__.py``, the candidate's one module as
``exercises/<module>.py`` and the child script.  No reference
implementation, no expected result, nothing of the grader's own.

:func:`run_cases` starts ``python -I`` on it (isolated mode: no environment
variables, no user site) in a new session, under resource limits (address
space, CPU time, file size, open files, no core dumps), with a fresh
writable scratch folder, and reads one JSON line per case on a pipe.  The
child puts up an audit-hook wall before importing the candidate's code (see
:mod:`solution.grading.child`).  Per case there is a time limit, counted in
the child's CPU seconds (:func:`over_limit`), so a busy grading machine gives
the same verdict as an idle one: a case is stopped when the child has spent
its limit working on it, or, waiting (asleep, blocked: under
:data:`IDLE_SHARE` of a core), once its limit has passed on the clock, or
after :data:`WALL_FACTOR` times its limit whatever it does.  A case stopped
is recorded as a timeout, the child's whole process
group is killed (and any process that carries this run's session token),
and a new child goes on with the remaining cases, so the results already in
are kept.  A child that dies is reported with its exit code or signal and
the last lines it printed.  What the candidate prints is read and dropped
past a cap: it never piles up in the grader.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Limits", "CaseResult", "ChildRun", "build_tree", "run_cases"]

SOLUTION = Path(__file__).resolve().parent.parent
CHILD = "lbgrade_child.py"
#: Bytes of the candidate's printing kept for the report.
KEEP_OUTPUT = 4_096
#: The longest line the child may send (the reference's longest result is about 0.3 MB).
MAX_EVENT = 32 * 1024**2
#: Below this share of one core (CPU seconds per wall second, over a case) the child is waiting, not starved:
#: a machine would need twenty runnable processes per core to starve a working child this far.
IDLE_SHARE = 0.05
#: However busy the machine, a case is stopped after this many times its limit on the clock.
WALL_FACTOR = 20
#: Seconds between two looks at the child's CPU time while no result comes.
POLL_SECONDS = 0.1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Limits:
    """What one child may use."""

    case_seconds: float = 5.0  # CPU seconds per case (the reference needs milliseconds); see over_limit
    probe_seconds: float = 60.0  # CPU seconds per probe (a cost measurement, the exact-ratio run)
    import_seconds: float = 20.0  # CPU seconds to start and import the candidate's module
    memory_bytes: int = 2 * 1024**3  # address space
    file_bytes: int = 1024**2  # largest file the child may write
    open_files: int = 256


@dataclass
class CaseResult:
    """What the child sent for one case, or why it sent nothing."""

    id: str
    status: str  # "ok" | "error" | "timeout" | "crash" | "import" (the module did not import)
    steps: Any = None
    error: str = ""
    seconds: float = 0.0


@dataclass
class ChildRun:
    """Everything the children of one stage reported."""

    imported: bool = True
    import_error: str = ""
    classes: dict[str, Any] = field(default_factory=dict)
    results: dict[str, CaseResult] = field(default_factory=dict)
    output: str = ""  # the head of what the candidate printed
    children: int = 0
    tampered: str = ""  # what the candidate's code changed in the support code, and when ("" if nothing)


def build_tree(workdir: Path, candidate_file: Path, module: str) -> Path:
    """A fresh read-only tree for one stage of one submission, under ``workdir``."""
    tree = workdir / "tree"
    (tree / "solution").mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "recorded")
    shutil.copytree(SOLUTION / "core", tree / "solution" / "core", ignore=ignore)
    shutil.copytree(SOLUTION / "checks", tree / "solution" / "checks", ignore=ignore)
    (tree / "solution" / "__init__.py").write_text('"""Support code only: the grader\'s sandbox."""\n')
    (tree / "exercises").mkdir()
    (tree / "exercises" / "__init__.py").write_text("")
    shutil.copyfile(candidate_file, tree / "exercises" / f"{module}.py")
    shutil.copyfile(SOLUTION / "grading" / "child.py", tree / CHILD)
    for path in sorted(tree.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    tree.chmod(0o555)
    return tree


def _python_roots() -> list[str]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.add(os.path.join(sys.base_prefix, "lib"))
    return sorted(roots)


def _limit(limits: Limits, cpu_seconds: int) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


class _Drain(threading.Thread):
    """Reads the child's stdout/stderr to the end, keeping only the head."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream, self.head, self.total = stream, bytearray(), 0

    def run(self) -> None:
        while chunk := self.stream.read(65536):
            self.total += len(chunk)
            if len(self.head) < KEEP_OUTPUT:
                self.head += chunk[: KEEP_OUTPUT - len(self.head)]

    def text(self) -> str:
        shown = self.head.decode(errors="replace")
        return shown + (f"\n[... {self.total - len(self.head)} more bytes dropped]" if self.total > len(self.head) else "")


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user and system, every thread) process ``pid`` has used, from ``/proc``; None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime and stime (fields 14 and 15)
    except (OSError, IndexError, ValueError):
        return None


def over_limit(limit: float, wall: float, cpu: float | None) -> bool:
    """Whether a case that has run ``wall`` seconds on the clock and used ``cpu`` CPU seconds is past ``limit``.

    Working, it is stopped at ``limit`` CPU seconds, however many other processes
    share the machine (its wall time then grows with their number, its CPU time
    does not); waiting (under :data:`IDLE_SHARE` of a core: asleep, blocked on a
    lock) at ``limit`` seconds on the clock; and in any case at
    :data:`WALL_FACTOR` times ``limit`` on the clock.  Without a CPU reading
    (``None``) the clock alone decides.

    >>> over_limit(5.0, 20.0, 2.0), over_limit(5.0, 3.0, 5.5), over_limit(5.0, 6.0, 0.01), over_limit(5.0, 6.0, None)
    (False, True, True, True)
    """
    if cpu is None:
        return wall > limit
    return cpu > limit or (wall > limit and cpu < IDLE_SHARE * wall) or wall > WALL_FACTOR * limit


def _kill_session(proc: subprocess.Popen[bytes], token: str) -> None:
    """Kill the child's process group, then any process that still carries this run's token."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    marker = f"LBGRADE_SESSION={token}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _spawn(tree: Path, scratch: Path, request: dict[str, Any], limits: Limits, cpu_seconds: int, token: str) -> tuple[subprocess.Popen[bytes], int, _Drain]:
    read_fd, write_fd = os.pipe()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch), "LANG": "C.UTF-8",
           "PYTHONHASHSEED": "0", "LBGRADE_SESSION": token}
    proc = subprocess.Popen(
        [sys.executable, "-I", "-B", str(tree / CHILD)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=scratch, env=env,
        pass_fds=(write_fd,), start_new_session=True, preexec_fn=_limit(limits, cpu_seconds),  # noqa: PLW1509
    )
    os.close(write_fd)
    drain = _Drain(proc.stdout)
    drain.start()
    assert proc.stdin is not None
    try:
        proc.stdin.write(json.dumps(dict(request, results_fd=write_fd)).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    return proc, read_fd, drain


def _describe_exit(proc: subprocess.Popen[bytes]) -> str:
    code = proc.poll()
    if code is None:
        return "still running"
    if code < 0:
        name = signal.Signals(-code).name
        why = {"SIGXCPU": " (CPU time limit)", "SIGKILL": " (killed: memory or time limit)", "SIGSEGV": " (crashed)"}.get(name, "")
        return f"killed by {name}{why}"
    return f"exited with code {code}"


def run_cases(tree: Path, scratch: Path, stage: int, module: str, cases: list[dict[str, Any]], limits: Limits = Limits()) -> ChildRun:
    """Run ``cases`` (JSON, as :class:`~solution.checks.script.Case` or ``{"id", "probe"}``) in children; never raises."""
    run = ChildRun()
    remaining = list(cases)
    outputs: list[str] = []
    token = secrets.token_hex(16)
    while remaining:
        budget = sum(limits.probe_seconds if "probe" in c else limits.case_seconds for c in remaining)
        cpu = int(budget + limits.import_seconds) + 1
        request = {"tree": str(tree), "module": module, "stage": stage, "cases": remaining,
                   "read_roots": [str(tree), *_python_roots()], "write_root": str(scratch)}
        proc, read_fd, drain = _spawn(tree, scratch, request, limits, cpu, token)
        run.children += 1
        buffer, done = bytearray(), False
        limit, started, cpu_start = limits.import_seconds, time.monotonic(), 0.0
        stalled = "import"
        try:
            while not done:
                used = cpu_seconds(proc.pid)
                if over_limit(limit, time.monotonic() - started, None if used is None else used - cpu_start):
                    break  # the current case (or the import) ran past its limit
                if not select.select([read_fd], [], [], POLL_SECONDS)[0]:
                    continue
                chunk = os.read(read_fd, 1 << 20)
                if not chunk:
                    stalled = "exit"
                    break
                buffer += chunk
                if b"\n" not in chunk:
                    if len(buffer) > MAX_EVENT:
                        stalled = "flood"
                        break
                    continue
                *lines, rest = buffer.split(b"\n")
                buffer = bytearray(rest)
                for line in lines:
                    event = _parse(line)
                    if event is None:
                        continue
                    kind = event.get("event")
                    if kind == "import":
                        if not event.get("ok"):
                            run.imported, run.import_error = False, f"{event.get('cause', '')} at {event.get('where', '')}".strip()
                            done = True
                            break
                        classes = event.get("classes")
                        run.classes = {str(k): v for k, v in classes.items() if isinstance(v, dict)} if isinstance(classes, dict) else {}
                    elif kind == "case" and remaining and event.get("id") == remaining[0]["id"]:
                        case = remaining.pop(0)
                        error = event.get("error")
                        status = "error" if error else "ok"
                        run.results[case["id"]] = CaseResult(case["id"], status, event.get("steps"), str(error or ""), _seconds(event.get("seconds")))
                    elif kind == "tamper":
                        run.tampered = f"{str(event.get('what'))[:200]} ({str(event.get('when'))[:100]})"
                        done, stalled = True, "tamper"
                        break
                    elif kind == "done":
                        done = True
                        break
                    if kind in ("import", "case"):
                        stalled = "case"
                        limit = limits.probe_seconds if remaining and "probe" in remaining[0] else limits.case_seconds
                        started, cpu_start = time.monotonic(), cpu_seconds(proc.pid) or 0.0
        finally:
            _kill_session(proc, token)
            os.close(read_fd)
            drain.join(timeout=5)
            outputs.append(drain.text())
        if stalled == "import" and run.imported and not run.classes:
            run.imported = False
            run.import_error = f"importing the module took more than {limits.import_seconds:g} s"
        elif stalled == "flood" and not run.classes and run.imported:
            run.imported = False
            run.import_error = f"the child sent more than {MAX_EVENT >> 20} MB without an end of line while importing the module"
        elif stalled == "exit" and not run.classes and run.imported:
            tail = drain.text().strip().splitlines()[-1:] or [""]
            run.imported = False
            run.import_error = f"the child {_describe_exit(proc)} while importing the module {tail[0][:200]}".strip()
        if not run.imported or done:
            break
        case = remaining.pop(0)
        if stalled == "flood":
            run.results[case["id"]] = CaseResult(case["id"], "crash", error=f"the child sent more than {MAX_EVENT >> 20} MB without an end of line during this case")
        elif stalled == "exit":
            run.results[case["id"]] = CaseResult(case["id"], "crash", error=f"the child {_describe_exit(proc)} during this case")
        else:
            limit = limits.probe_seconds if "probe" in case else limits.case_seconds
            run.results[case["id"]] = CaseResult(case["id"], "timeout", error=f"Timeout: the case ran past {limit:g} s of CPU time (an endless loop?)")
    for case in remaining:  # after a failed import, a change to the support code, or a child that said "done" too early
        why = (f"the module did not import: {run.import_error}" if not run.imported
               else f"no result: the module changed the support code: {run.tampered}" if run.tampered else "no result from the child")
        run.results.setdefault(case["id"], CaseResult(case["id"], "import" if not run.imported else "crash", error=why))
    run.output = "\n".join(o for o in outputs if o)[: 2 * KEEP_OUTPUT]
    return run


def _seconds(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):  # a line the child did not write
        return None
    return event if isinstance(event, dict) else None
