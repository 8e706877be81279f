"""Processes the course starts (inference servers, gateways, HAProxy): started, awaited, always stopped.

Every process is started in its **own session** (``start_new_session=True``:
its own process group, no controlling terminal), so one signal to the group
reaches it and anything it forked.  :meth:`ManagedProcess.stop` sends
``SIGTERM`` to the group, waits ``grace`` seconds, then sends ``SIGKILL``.
Every started process is kept in one module registry until it is stopped,
and an :mod:`atexit` hook stops whatever is left, so a test that fails, or
an interpreter that exits on an exception, leaves no orphan and no port
open.  When the parent itself dies without running its exit hooks
(``SIGKILL``, or ``SIGTERM`` from ``timeout``), Linux's parent-death signal
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``, set in the child before it runs)
kills the child too.  That signal follows the *thread* that started the
child, so it is set only for processes started from the main thread (a
process started from a worker thread would die with that thread).

A process's standard output and error go to an anonymous temporary file
(never a pipe, which fills up and blocks a chatty child when nobody reads
it); when a process dies during its start, the :class:`ProcessStartError`
carries the last lines of it, so the cause is in the test report.

Readiness: :meth:`ManagedProcess.start` polls ``ready_url`` (an HTTP GET
answered 200) until it answers, the process exits (error), or
``ready_timeout`` seconds pass (the process is stopped; error).

:func:`start_fleet` starts inference servers (:mod:`solution.gateway.inference_server`)
in parallel: every process is spawned first, then each is awaited, so a
fleet starts in about the time of its slowest server.

Costs: ``start`` polls every 20 ms; ``stop`` takes at most ``grace`` seconds
plus the time the kernel takes to reap a killed process.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from solution.core.validate import require_id, require_int
from solution.gateway.faults import FAULT_KINDS, parse_fault

__all__ = [
    "ProcessStartError",
    "ManagedProcess",
    "ServerSpec",
    "Fleet",
    "free_port",
    "start_fleet",
    "live_processes",
    "used_ports",
    "stop_all",
    "port_open",
    "fault",
    "DEFAULT_MODEL",
]

#: The model preset servers run unless told otherwise (:data:`solution.sim.gpus.MODEL_PRESETS`).
DEFAULT_MODEL = "7B FP16"

_POLL = 0.02  # seconds between readiness polls
_TAIL_BYTES = 4000  # how much of a process's output an error quotes

_PR_SET_PDEATHSIG = 1
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through an HTTP proxy

_registry: dict[int, ManagedProcess] = {}  # id(process) -> process, every started and not yet stopped one
_ports: set[int] = set()  # every port a managed process was told to listen on (for the tests' leak check)
_lock = threading.Lock()


class ProcessStartError(RuntimeError):
    """A managed process died during its start or did not become ready in time.

    The message names the process, says what happened and quotes the tail of
    its output; ``output`` holds that tail, ``returncode`` the exit code
    (``None`` when it was still running and had to be stopped).
    """

    def __init__(self, message: str, *, output: str, returncode: int | None) -> None:
        super().__init__(message)
        self.output = output
        self.returncode = returncode


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the OS picks it; another process may take it before you bind it).

    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port`` now.  O(1) (one connect)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _load_prctl() -> Any:
    """libc's ``prctl``, loaded in the parent (a child between fork and exec must not ``dlopen``); ``None`` if absent."""
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent() -> None:
    """In the child, before ``exec``: ask Linux to SIGKILL it when the thread that started it dies."""
    _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _http_status(url: str, timeout: float) -> int | None:
    """The status of a GET on ``url``, or ``None`` when nothing answered."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:  # noqa: S310 (loopback URLs we built)
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return None


class ManagedProcess:
    """A child process in its own process group, awaited until ready, stopped for sure.

    Args:
        argv: the command line (``argv[0]`` is the program).
        name: a label for messages (``"server s1"``).
        ready_url: polled by :meth:`start` until a GET answers 200; ``None``:
            ready as soon as it is spawned.
        ready_timeout: seconds :meth:`start` waits for ``ready_url``.
        env: the environment (default: this process's).
        ports: ports the process listens on; recorded so the tests can check
            nothing listens on them after the run.

    Use as a context manager (``with ManagedProcess(...) as p:``) or call
    :meth:`start` and :meth:`stop`.  :meth:`stop` is idempotent.

    Raises:
        TypeError / ValueError: an empty ``argv``, a non-``str`` item, a bad
            ``name`` or a ``ready_timeout`` that is not a finite number > 0.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        ready_url: str | None = None,
        ready_timeout: float = 20.0,
        env: Mapping[str, str] | None = None,
        ports: Iterable[int] = (),
    ) -> None:
        if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence):
            raise TypeError(f"argv must be a list of str, got {type(argv).__name__}")
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError(f"argv must be a non-empty list of str, got {argv!r}")
        require_id(name, "name")
        if ready_url is not None and not isinstance(ready_url, str):
            raise TypeError(f"ready_url must be a str or None, got {type(ready_url).__name__}")
        if isinstance(ready_timeout, bool) or not isinstance(ready_timeout, (int, float)):
            raise TypeError(f"ready_timeout must be a number of seconds, got {type(ready_timeout).__name__}")
        if not (math.isfinite(ready_timeout) and ready_timeout > 0):
            raise ValueError(f"ready_timeout must be a finite number of seconds > 0, got {ready_timeout}")
        self.argv = list(argv)
        self.name = name
        self.ready_url = ready_url
        self.ready_timeout = float(ready_timeout)
        self.env = dict(env) if env is not None else None
        self.ports = tuple(require_int(p, "port", maximum=65535) for p in ports)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None  # the temporary file holding stdout and stderr
        self._stopped = False
        self._last_output = ""  # the output's tail, kept when the log file is closed

    # -- state ---------------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The process id (also its process group id), or ``None`` before :meth:`spawn`."""
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has ended (negative: killed by that signal), else ``None``."""
        return self._proc.poll() if self._proc is not None else None

    def alive(self) -> bool:
        """Whether the process has been spawned and has not exited.  O(1) (one ``waitpid`` with ``WNOHANG``)."""
        return self._proc is not None and self._proc.poll() is None

    def output_tail(self, limit: int = _TAIL_BYTES) -> str:
        """The last ``limit`` bytes of the process's stdout and stderr (decoded, bad bytes replaced).

        After :meth:`stop` the last 4,000 bytes stay readable.
        """
        if self._log is None or self._log.closed:
            return self._last_output[-limit:] if limit > 0 else ""
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        start = max(0, size - limit)
        return os.pread(fd, size - start, start).decode("utf-8", "replace")  # pread: the child's offset stays put

    # -- start ---------------------------------------------------------------------------------------------

    def spawn(self) -> ManagedProcess:
        """Start the process (own session) and register it; do not wait.  Returns ``self``.

        Raises:
            RuntimeError: it was already spawned.
            OSError: the program cannot be executed (nothing is left running).
        """
        if self._proc is not None:
            raise RuntimeError(f"{self.name} was already started; make a new ManagedProcess to start it again")
        self._log = tempfile.TemporaryFile(prefix="lb-course-proc-")
        main_thread = threading.current_thread() is threading.main_thread()
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
                preexec_fn=_die_with_parent if main_thread and _PRCTL is not None else None,  # noqa: PLW1509
            )
        except BaseException:
            self._log.close()
            raise
        with _lock:
            _registry[id(self)] = self
            _ports.update(self.ports)
        return self

    def wait_ready(self) -> ManagedProcess:
        """Poll ``ready_url`` until it answers 200.  Returns ``self``.

        Raises:
            ProcessStartError: the process exited first (its output tail is in
                the message), or ``ready_timeout`` passed (the process is stopped).
        """
        if self._proc is None:
            raise RuntimeError(f"{self.name} was not started; call start() (or spawn()) first")
        deadline = time.monotonic() + self.ready_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self.output_tail()
                self.stop()
                raise ProcessStartError(
                    f"{self.name} exited with code {code} while starting ({' '.join(self.argv)}); its last output:\n{tail}",
                    output=tail,
                    returncode=code,
                )
            if self.ready_url is None or _http_status(self.ready_url, timeout=0.5) == 200:
                return self
            if time.monotonic() >= deadline:
                tail = self.output_tail()
                self.stop()
                raise ProcessStartError(
                    f"{self.name} did not answer 200 on {self.ready_url} within {self.ready_timeout:g} s and was stopped; "
                    f"raise ready_timeout if the machine is busy. Its last output:\n{tail}",
                    output=tail,
                    returncode=None,
                )
            time.sleep(_POLL)

    def start(self) -> ManagedProcess:
        """:meth:`spawn`, then :meth:`wait_ready`.  Returns ``self``.

        Raises:
            ProcessStartError: see :meth:`wait_ready` (the process is stopped).
        """
        self.spawn()
        return self.wait_ready()

    # -- stop ----------------------------------------------------------------------------------------------

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process's group (nothing if it already ended)."""
        if self._proc is None or self._proc.poll() is not None:
            return
        try:
            os.killpg(self._proc.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, grace: float = 3.0) -> int | None:
        """SIGTERM to the process group, ``grace`` seconds, then SIGKILL; reap it and forget it.

        Idempotent: stopping a stopped (or never started) process does
        nothing.  Returns the exit code (``None`` if it was never started).
        """
        proc = self._proc
        if proc is not None and not self._stopped:
            pgid = proc.pid  # its own session: the group id is its pid
            for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(pgid, signum)  # the group too: the leader may be gone and a child still there
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            try:
                os.killpg(pgid, signal.SIGKILL)  # anything the leader left behind in its group
            except (ProcessLookupError, PermissionError):
                pass
            self._stopped = True
        with _lock:
            _registry.pop(id(self), None)
        if self._log is not None and not self._log.closed and (proc is None or proc.poll() is not None):
            self._last_output = self.output_tail()
            self._log.close()
        return proc.poll() if proc is not None else None

    def __enter__(self) -> ManagedProcess:
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "not started" if self._proc is None else ("alive" if self.alive() else f"exited {self.returncode}")
        return f"ManagedProcess({self.name!r}, pid={self.pid}, {state})"


def live_processes() -> list[ManagedProcess]:
    """Every registered process that is still alive (started and not stopped)."""
    with _lock:
        procs = list(_registry.values())
    return [p for p in procs if p.alive()]


def used_ports() -> set[int]:
    """Every port a managed process was told to listen on since this interpreter started."""
    with _lock:
        return set(_ports)


def stop_all(grace: float = 1.0) -> int:
    """Stop every registered process (the atexit hook); return how many were still alive."""
    with _lock:
        procs = list(_registry.values())
    alive = sum(p.alive() for p in procs)
    for proc in procs:
        proc.stop(grace)
    return alive


atexit.register(stop_all)


# -- inference server fleets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    """One inference server to start (see ``python -m solution.gateway.inference_server --help``).

    ``gpu`` and ``model`` name presets (:data:`solution.sim.gpus.GPU_PRESETS`,
    :data:`~solution.sim.gpus.MODEL_PRESETS`; case does not matter);
    ``capacity`` (the batch limit) and ``kv_limit_tokens`` default to what
    the GPU holds; ``time_scale`` is real seconds per model second;
    ``startup_seconds`` are *real* seconds during which ``/health`` answers 503;
    with ``warmup_seconds`` > 0 the server then warms up (stage 4's
    :class:`~solution.sim.healthsim.ColdStart`): it starts at
    ``warmup_speed`` of full speed and ramps to 1 in ``warmup_steps`` steps
    over ``warmup_seconds`` real seconds.

    Raises:
        TypeError / ValueError: a bad id, a capacity or KV limit that is not an
            int >= 1, a time scale that is not a finite number > 0, a negative
            startup time.
    """

    server_id: str
    gpu: str = "a100-80gb"
    model: str = DEFAULT_MODEL
    capacity: int | None = None
    time_scale: float = 0.02
    seed: int = 0
    startup_seconds: float = 0.0
    kv_limit_tokens: int | None = None
    model_id: str = "course-model"
    warmup_seconds: float = 0.0
    warmup_speed: float = 0.4
    warmup_steps: int = 4

    def __post_init__(self) -> None:
        require_id(self.server_id, "server_id")
        require_id(self.gpu, "gpu")
        require_id(self.model, "model")
        require_id(self.model_id, "model_id")
        if self.capacity is not None:
            require_int(self.capacity, "capacity")
        if self.kv_limit_tokens is not None:
            require_int(self.kv_limit_tokens, "kv_limit_tokens")
        require_int(self.seed, "seed", minimum=0)
        require_int(self.warmup_steps, "warmup_steps", maximum=4095)
        for name, strict in (("time_scale", True), ("startup_seconds", False), ("warmup_seconds", False), ("warmup_speed", True)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not math.isfinite(value) or value < 0 or (strict and value == 0):
                raise ValueError(f"{name} must be a finite number {'> 0' if strict else '>= 0'}, got {value}")
        if self.warmup_speed > 1:
            raise ValueError(f"warmup_speed is a fraction of full speed in (0, 1], got {self.warmup_speed}")

    def argv(self, port: int) -> list[str]:
        """The command line that starts this server on ``port`` (this interpreter, ``-m``)."""
        argv = [
            sys.executable, "-m", "solution.gateway.inference_server",
            "--server-id", self.server_id, "--port", str(port), "--gpu", self.gpu, "--model", self.model,
            "--model-id", self.model_id, "--time-scale", repr(float(self.time_scale)), "--seed", str(self.seed),
            "--startup-seconds", repr(float(self.startup_seconds)),
        ]  # fmt: skip
        if self.capacity is not None:
            argv += ["--capacity", str(self.capacity)]
        if self.kv_limit_tokens is not None:
            argv += ["--kv-limit-tokens", str(self.kv_limit_tokens)]
        if self.warmup_seconds > 0:
            argv += ["--warmup-seconds", repr(float(self.warmup_seconds)), "--warmup-speed", repr(float(self.warmup_speed)),
                     "--warmup-steps", str(self.warmup_steps)]  # fmt: skip
        return argv


def _repo_env() -> dict[str, str]:
    """This environment with the repository on ``PYTHONPATH`` (so ``-m solution...`` works from any directory)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def fault(base_url: str, kind: str, timeout: float = 2.0, **params: Any) -> dict[str, Any]:
    """POST a fault to one server's ``/admin/fault`` (see :mod:`solution.gateway.faults`); return its JSON answer.

    A ``crash`` gets no answer when the process dies before it: ``{}``.

    Raises:
        TypeError / ValueError: an unknown kind or bad parameters (checked
            here first: nothing is sent).
        RuntimeError: the server answered an error status.
    """
    payload = {"kind": kind, **params}
    parse_fault(payload)  # validate before sending anything
    request = urllib.request.Request(
        base_url.rstrip("/") + "/admin/fault", data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return dict(json.loads(response.read() or b"{}"))
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{base_url} refused fault {payload}: {error.code} {error.read()[:500]!r}") from None
    except (OSError, ValueError):
        if kind == "crash":
            return {}
        raise


def _server_process(spec: ServerSpec, port: int, ready_timeout: float) -> ManagedProcess:
    """The managed process of one inference server on ``port``, ready once it serves HTTP (``/live``)."""
    return ManagedProcess(spec.argv(port), name=f"server {spec.server_id}", ready_url=f"http://127.0.0.1:{port}/live",
                          ready_timeout=ready_timeout, env=_repo_env(), ports=(port,))  # fmt: skip


class Fleet:
    """Running inference servers by id; built by :func:`start_fleet`.  A context manager that stops them all."""

    def __init__(self, specs: Sequence[ServerSpec], procs: dict[str, ManagedProcess], ports: dict[str, int]) -> None:
        self.specs = {spec.server_id: spec for spec in specs}
        self.procs = procs
        self.ports = ports

    @property
    def urls(self) -> dict[str, str]:
        """``{server_id: "http://127.0.0.1:PORT"}`` (no trailing slash; the API is under ``/v1``)."""
        return {sid: f"http://127.0.0.1:{port}" for sid, port in self.ports.items()}

    def url(self, server_id: str) -> str:
        """One server's base URL.  Raises KeyError (naming the fleet's ids) for an unknown id."""
        if server_id not in self.ports:
            raise KeyError(f"no server {server_id!r} in this fleet; it has {sorted(self.ports)}")
        return self.urls[server_id]

    def fault(self, server_id: str, kind: str, **params: Any) -> dict[str, Any]:
        """Inject a fault into one server (:func:`fault`): ``crash``, ``hang``, ``slow``, ``fail``, ``slow_start``, ``clear``.

        After a ``crash`` this waits until the process has exited, so the
        caller sees it down.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; choose one of {', '.join(FAULT_KINDS)}")
        answer = fault(self.url(server_id), kind, **params)
        if kind == "crash":
            proc = self.procs[server_id]
            assert proc._proc is not None
            try:
                proc._proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"server {server_id} did not exit within 10 s of its crash fault") from None
        return answer

    def restart(self, server_id: str, *, ready_timeout: float = 20.0) -> ManagedProcess:
        """Stop one server (if still running) and start it again on the same port (a recovery after a crash or a hang).

        The new process starts as its spec says (``startup_seconds``, warm-up).
        """
        self.url(server_id)  # KeyError for an unknown id, before anything is stopped
        self.procs[server_id].stop()
        spec, port = self.specs[server_id], self.ports[server_id]
        proc = _server_process(spec, port, ready_timeout)
        self.procs[server_id] = proc.start()
        return proc

    def add(self, spec: ServerSpec, *, ready_timeout: float = 20.0) -> str:
        """Start one more server (a scale-out, a new version in a rollout); return its base URL.

        Raises:
            TypeError: ``spec`` is not a :class:`ServerSpec`.
            ValueError: its id is already in the fleet.
            ProcessStartError: it did not start (the fleet is unchanged).
        """
        if not isinstance(spec, ServerSpec):
            raise TypeError(f"add takes a ServerSpec, got {type(spec).__name__}")
        if spec.server_id in self.specs:
            raise ValueError(f"server {spec.server_id!r} is already in the fleet; give the new one another id")
        port = free_port()
        proc = _server_process(spec, port, ready_timeout).start()
        self.specs[spec.server_id], self.procs[spec.server_id], self.ports[spec.server_id] = spec, proc, port
        return self.url(spec.server_id)

    def remove(self, server_id: str, grace: float = 3.0) -> None:
        """Stop one server and forget it (its port is closed).  Raises KeyError for an unknown id."""
        self.url(server_id)
        self.procs.pop(server_id).stop(grace)
        del self.specs[server_id], self.ports[server_id]

    def alive(self) -> dict[str, bool]:
        """``{server_id: process alive}``."""
        return {sid: proc.alive() for sid, proc in self.procs.items()}

    def stop(self, grace: float = 3.0) -> None:
        """Stop every server (idempotent)."""
        for proc in self.procs.values():
            proc.stop(grace)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Fleet({', '.join(f'{sid}={url}' for sid, url in self.urls.items())})"


def start_fleet(specs: Sequence[ServerSpec], *, ready_timeout: float = 30.0, tries: int = 3) -> Fleet:
    """Start one inference server per spec, in parallel; return when every one serves HTTP.

    "Serves" means ``GET /live`` answers 200: a server with
    ``startup_seconds`` is running but its ``/health`` still answers 503
    (what a gateway's health probes must see).  A server whose port was
    taken meanwhile (:func:`free_port` races with other processes) is
    started again on a new port, up to ``tries`` times.

    Raises:
        TypeError / ValueError: ``specs`` empty, not :class:`ServerSpec`, or two with one id.
        ProcessStartError: a server did not start (every server already
            started is stopped first).
    """
    specs = list(specs)
    if not specs or not all(isinstance(s, ServerSpec) for s in specs):
        raise TypeError("start_fleet takes a non-empty list of ServerSpec")
    ids = [s.server_id for s in specs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"server ids must be unique, got {ids}")
    procs: dict[str, ManagedProcess] = {}
    ports: dict[str, int] = {}

    def make(spec: ServerSpec) -> ManagedProcess:
        port = free_port()
        ports[spec.server_id] = port
        return _server_process(spec, port, ready_timeout)

    try:
        for spec in specs:
            procs[spec.server_id] = make(spec).spawn()
        for spec in specs:
            for attempt in range(1, tries + 1):
                try:
                    procs[spec.server_id].wait_ready()
                    break
                except ProcessStartError as error:
                    if attempt == tries or "address already in use" not in error.output.lower():
                        raise
                    procs[spec.server_id] = make(spec).spawn()
    except BaseException:
        for proc in procs.values():
            proc.stop(grace=1.0)
        raise
    return Fleet(specs, procs, ports)
