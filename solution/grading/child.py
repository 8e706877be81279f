"""The grader's child: runs one stage's cases on a candidate's module, inside the sandbox.

This file is copied to the root of a fresh sandbox tree (support code only,
no reference implementation, no expected results) and run there as
``python -I lbgrade_child.py``.  It reads a request (JSON) on stdin, puts up
its wall (see :func:`install_wall`), imports the candidate's module, runs
each case and writes one JSON line per event to file descriptor 3:

* ``{"event": "import", "ok": true, "classes": {...}}`` or ``{"event":
  "import", "ok": false, "cause": "...", "where": "file:line"}``;
* ``{"event": "case", "id": ..., "steps": [...], "error": ..., "seconds": ...}``
  per case, in order;
* ``{"event": "done"}``;
* ``{"event": "tamper", "what": ..., "when": ...}`` instead of a result, when the
  candidate's code has changed the support code or the standard functions it
  relies on (:func:`tampered`), and nothing after it.

It decides nothing: the parent compares the steps with the reference's.
Whatever the candidate prints goes to a capped sink.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import time
import traceback
import types

_results_fd = 3  # the parent names the pipe in its request
#: Characters of the candidate's own printing kept per child (the rest is dropped unread).
PRINT_CAP = 16_384
#: Modules the candidate's code may not import: native escape hatches, process spawning, and native code that
#: opens files or starts interpreters without an audit event of its own (sqlite3, readline, dbm, subinterpreters).
DENIED_MODULES = frozenset({
    "ctypes", "_ctypes", "cffi", "_cffi_backend", "multiprocessing", "_multiprocessing", "pty", "_posixsubprocess",
    "_xxsubinterpreters", "_xxinterpchannels", "_interpreters", "_interpchannels", "_interpqueues", "sqlite3", "_sqlite3",
    "readline", "dbm", "_dbm", "_gdbm", "_ctypes_test", "_xxtestfuzz", "_testcapi", "_testinternalcapi", "_testbuffer",
    "_testmultiphase", "_testsinglephase", "_testclinic", "_testimportmultiple", "_testexternalinspection",
})
#: Functions that reach past the wall without raising an audit event (special files, other processes): removed.
UNAUDITED = {"posix": ("mkfifo", "mknod", "pidfd_open", "sched_setscheduler", "sched_setparam", "setpriority"),
             "_signal": ("pidfd_send_signal",)}
#: Audit events the candidate's code may not raise: processes, signals, sockets, file-system changes, heap walks.
DENIED_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
    "os.kill", "os.killpg", "signal.pthread_kill", "os.setuid", "os.setgid", "os.setsid", "os.setpgid",
    "socket.connect", "socket.bind", "socket.__new__", "os.chmod", "os.chown", "os.remove", "os.rename",
    "os.rmdir", "os.mkdir", "os.link", "os.symlink", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata",
    "mmap.__new__", "sys.addaudithook", "sys.setprofile", "sys.settrace", "sys.remote_exec", "webbrowser.open",
    "cpython.PyInterpreterState_New", "sqlite3.connect", "resource.setrlimit", "resource.prlimit", "os.setxattr",
    "os.removexattr",
})


#: Standard modules the support code calls to measure and to report (the support code's own modules are watched too).
WATCHED_STDLIB = ("builtins", "time", "math", "json", "json.encoder", "os", "posix")


class ExitCalled(BaseException):
    """The candidate's code called ``os._exit``: reported with the caller's file and line, not obeyed."""


def _send(payload: dict) -> None:
    data = (json.dumps(payload, separators=(",", ":"), allow_nan=True) + "\n").encode()
    while data:
        data = data[os.write(_results_fd, data):]


class _CappedSink:
    """A text stream that keeps nothing: the first ``PRINT_CAP`` characters go to the real stream, the rest is dropped.

    Once the cap is used up, ``write`` becomes the builtin ``len`` (an instance attribute, which ``print``
    finds first): a dropped print then costs a C call per piece instead of a Python method, so code that
    prints on every call (debug lines) runs about 1.8x slower than silent code, not 3x.
    """

    def __init__(self, stream: object) -> None:
        self._stream, self._left = stream, PRINT_CAP

    def write(self, text: str) -> int:
        if self._left > 0 and isinstance(text, str):
            part = text[: self._left]
            self._left -= len(part)
            try:
                self._stream.write(part)  # type: ignore[attr-defined]
            except Exception:
                pass
            if self._left <= 0:
                self.write = len  # type: ignore[method-assign]  # everything from now on is dropped
        return len(text) if isinstance(text, str) else 0

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _write_flags() -> int:
    return os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def install_wall(read_roots: list[str], write_root: str) -> None:
    """An audit hook that stays for the life of the process (Python offers no way to remove one).

    It refuses: opening a file outside ``read_roots`` (the sandbox tree and the
    Python installation), opening any file for writing outside ``write_root``,
    ``os.open`` with a relative path (with ``dir_fd`` it would name another
    folder than the one checked), importing native escape hatches (ctypes,
    cffi, :data:`DENIED_MODULES`), starting processes or interpreters, sending
    signals, raising resource limits, sockets, file-system changes, walking the
    heap (``gc``) and further audit hooks.  ``os._exit`` is replaced by
    :class:`ExitCalled`; the functions in :data:`UNAUDITED` are removed.
    """
    roots = tuple(os.path.realpath(r) + os.sep for r in read_roots)
    writable = os.path.realpath(write_root) + os.sep
    flags_w = _write_flags()
    devices = ("/dev/null", "/dev/urandom", "/dev/random")

    def inside(path: str, prefixes: tuple[str, ...]) -> bool:
        return any(path == p[:-1] or path.startswith(p) for p in prefixes)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            if isinstance(path, int) or path is None:
                return
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if mode is None and not os.path.isabs(str(path)):  # os.open: relative to a dir_fd the event does not show
                raise PermissionError(f"the grader's sandbox allows os.open only with an absolute path, not {path}")
            real = os.path.realpath(str(path))
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & flags_w)
            if real in devices:
                return
            if writing and not inside(real, (writable,)):
                raise PermissionError(f"the grader's sandbox does not allow writing {path}")
            if not inside(real, roots + (writable,)):
                raise PermissionError(f"the grader's sandbox does not allow reading {path}")
        elif event == "import":
            name = str(args[0]) if args else ""
            filename = str(args[1]) if len(args) > 1 and args[1] else ""
            parts = set(name.split(".")) | {os.path.basename(filename).split(".")[0]}
            if parts & DENIED_MODULES or "ctypes" in os.path.basename(filename) or "cffi" in filename:
                raise ImportError(f"the grader's sandbox does not allow importing {name}")
        elif event in DENIED_EVENTS:
            raise PermissionError(f"the grader's sandbox does not allow {event}")

    _remove_unaudited()
    sys.addaudithook(hook)

    def no_exit(code: int = 0) -> None:
        raise ExitCalled(f"os._exit({code}) was called")

    import posix

    os._exit = no_exit  # type: ignore[assignment]
    posix._exit = no_exit  # type: ignore[attr-defined]


def _remove_unaudited() -> None:
    """Remove :data:`UNAUDITED` and the denied modules already loaded; load every built-in module now and remove
    ``_imp.create_builtin``, which would make fresh copies of ``posix`` and ``_signal`` with the functions back."""
    import _imp

    for name in sys.builtin_module_names:
        if name not in DENIED_MODULES:
            try:
                importlib.import_module(name)
            except ImportError:
                pass
    for name in DENIED_MODULES:
        sys.modules.pop(name, None)
    removed = set()
    for module_name, names in UNAUDITED.items():
        for holder in (sys.modules.get(module_name), sys.modules.get({"posix": "os", "_signal": "signal"}[module_name])):
            for name in names:
                if holder is not None and hasattr(holder, name):
                    removed.add(getattr(holder, name))
                    delattr(holder, name)
    for kind in ("supports_dir_fd", "supports_fd", "supports_follow_symlinks", "supports_effective_ids"):
        getattr(os, kind, set()).difference_update(removed)
    del _imp.create_builtin


def _watched() -> list[str]:
    """The modules whose attributes the candidate's code may not change: the support code, this script, :data:`WATCHED_STDLIB`."""
    return sorted(n for n in sys.modules if n in ("__main__", "solution") or n.startswith("solution.")) + list(WATCHED_STDLIB)


def fingerprint(names: list[str]) -> dict[str, object]:
    """``module:attribute`` (and ``module:Class.attribute``) -> the object, for every watched module; functions' code too."""
    marks: dict[str, object] = {}

    def mark(label: str, value: object) -> None:
        marks[label] = value
        if isinstance(value, types.FunctionType):
            marks[f"{label}.__code__"], marks[f"{label}.__defaults__"] = value.__code__, value.__defaults__
            marks[f"{label}.__kwdefaults__"] = value.__kwdefaults__

    for name in names:
        module = sys.modules.get(name)
        for key, value in list(vars(module).items()) if module is not None else []:
            mark(f"{name}:{key}", value)
            if isinstance(value, type) and value.__module__ == name and name != "builtins":  # built-in types are read-only
                for attr, member in list(vars(value).items()):
                    mark(f"{name}:{key}.{attr}", member)
    return marks


def tampered(baseline: dict[str, object], names: list[str]) -> str:
    """The first watched name the candidate's code replaced (or added, where it would shadow a built-in); '' if none.

    It catches a patch that is still in place when a case ends; a patch undone
    within the case is out of its reach (see docs/grading.md).
    """
    now = fingerprint(names)
    missing = object()
    for label, value in baseline.items():
        if now.get(label, missing) is not value:
            return label
    for label in now.keys() - baseline.keys():
        module, _, rest = label.partition(":")
        if module not in WATCHED_STDLIB and not rest.rpartition(".")[2].startswith("__") and not isinstance(now[label], types.ModuleType):
            return label
    return ""


def _load_support() -> None:
    """Import every support module now, so that the ones the cases load later are watched too."""
    for package in ("solution.core", "solution.checks"):
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__, f"{package}."):
            try:
                importlib.import_module(info.name)
            except Exception:  # noqa: BLE001 - a module that needs what the sandbox lacks is not used by the cases
                pass


def where(exc: BaseException, candidate_file: str) -> str:
    """``file:line`` of the deepest frame in the candidate's file (else the deepest frame)."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"{os.path.basename(exc.filename or candidate_file)}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if os.path.realpath(f.filename) == os.path.realpath(candidate_file)]
    frame = (mine or frames or [None])[-1]
    return f"{os.path.basename(frame.filename)}:{frame.lineno}" if frame else ""


def describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}): the code called sys.exit"
    if isinstance(exc, MemoryError):
        return "MemoryError: over the memory limit"
    return f"{type(exc).__name__}({text})"


def _classes(module: object, names: list[str], candidate_file: str) -> dict[str, dict]:
    """Where each graded class comes from: its module, its source file, and its bases' modules."""
    out = {}
    for name in names:
        cls = getattr(module, name, None)
        if cls is None:
            out[name] = {"missing": True}
            continue
        code_files = sorted({os.path.realpath(f.__code__.co_filename) for f in vars(cls).values()
                             if hasattr(f, "__code__")}) if isinstance(cls, type) else []
        out[name] = {
            "module": getattr(cls, "__module__", None),
            "mro": [f"{c.__module__}.{c.__qualname__}" for c in getattr(cls, "__mro__", ())][1:],
            "code_files": [os.path.basename(f) if f == os.path.realpath(candidate_file) else f for f in code_files],
        }
    return out


def _only_the_tree() -> None:
    """Import from the sandbox tree only: put it first on the path and drop editable-install finders
    (they would map ``solution`` and ``exercises`` to the grader's own checkout)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

    def editable(obj: object) -> bool:
        return "__editable__" in (getattr(obj, "__module__", "") or "") or "__editable__" in type(obj).__module__

    sys.meta_path[:] = [f for f in sys.meta_path if not editable(f)]
    sys.path_hooks[:] = [h for h in sys.path_hooks if not editable(h)]
    sys.path_importer_cache.clear()


def main() -> None:
    global _results_fd
    _only_the_tree()
    request = json.loads(sys.stdin.read())
    _results_fd = int(request["results_fd"])
    tree, module_name, stage = request["tree"], request["module"], request["stage"]
    candidate_file = os.path.join(tree, "exercises", f"{module_name}.py")
    from solution.checks import SPECS  # support code, from the sandbox tree
    from solution.checks.probes import run as run_probe
    from solution.checks.script import Case, run_case

    spec = SPECS[stage]
    _load_support()
    streams = (sys.stdout, sys.stderr)

    def flush() -> None:  # so that the parent's kill does not lose what the candidate printed
        for stream in streams:
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass

    sys.stdout, sys.stderr = _CappedSink(sys.stdout), _CappedSink(sys.stderr)  # type: ignore[assignment]
    install_wall(request["read_roots"], request["write_root"])
    watched = _watched()
    baseline = fingerprint(watched)
    try:
        module = importlib.import_module(f"exercises.{module_name}")
    except BaseException as exc:  # noqa: BLE001 - anything at import is the candidate's
        flush()
        _send({"event": "import", "ok": False, "cause": describe(exc), "where": where(exc, candidate_file)})
        return
    changed = tampered(baseline, watched)
    if changed:
        flush()
        _send({"event": "tamper", "what": changed, "when": "at import"})
        return
    _send({"event": "import", "ok": True, "classes": _classes(module, list(spec.classes), candidate_file)})
    for data in request["cases"]:
        started = time.perf_counter()
        steps, error = None, None
        try:
            if "probe" in data:
                steps = run_probe(module, data["probe"])
            else:
                steps = run_case(spec.harness, module, Case.from_json(data))
        except BaseException as exc:  # noqa: BLE001 - SystemExit, ExitCalled, MemoryError...
            error = f"{describe(exc)} at {where(exc, candidate_file)}"
        seconds = time.perf_counter() - started
        changed = tampered(baseline, watched)
        if changed:
            flush()
            _send({"event": "tamper", "what": changed, "when": f"during case {data['id']}"})
            return
        _send({"event": "case", "id": data["id"], "steps": steps, "error": error, "seconds": seconds})
    flush()
    _send({"event": "done"})


if __name__ == "__main__":
    main()
