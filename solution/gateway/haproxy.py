"""HAProxy as the peer: a generated configuration, the process, and its runtime API.

Stage 8 races the course's gateway against a real, trusted load balancer on
the same inference servers: Debian's ``haproxy`` package (2.6 LTS), started
in the foreground (``haproxy -f <cfg> -db``) by the course and stopped by it.
HAProxy gets what a careful operator would give it for LLM traffic, and
nothing the course invented:

* ``balance leastconn``: the server with the fewest requests in flight (it
  counts queued requests too); it knows nothing about tokens.
* Active health checks: ``option httpchk GET /health`` every ``inter``;
  ``fall`` failed checks mark a server down, ``rise`` good ones bring it back.
* Passive health (outlier detection): ``observe layer7`` counts failed
  responses (5xx other than 501/505, timeouts, broken connections);
  ``error-limit`` consecutive ones trigger ``on-error mark-down``.
* ``slowstart``: a server that comes back up ramps from 1 connection to its
  ``maxconn`` over that time (it never applies when HAProxy starts).
* Per-server ``maxconn`` (the server's batch capacity) with the backend's
  queue in front and ``timeout queue``: a request that waits longer gets a
  503 from HAProxy itself.
* ``retries`` with ``option redispatch 1``: a connection that fails is tried
  again on another server (HAProxy's retry; it never resends a request whose
  response has begun).
* A stats socket (``stats socket <path> mode 600 level admin``) for the
  runtime API: ``set server be/<id> state drain|ready|maint`` and
  ``show servers state`` / ``show stat``.

Sources (HAProxy 2.6's own manuals, shipped by Debian in
/usr/share/doc/haproxy/ and at docs.haproxy.org/2.6/):
configuration.txt section 4.2 ("balance", "option httpchk", "option
redispatch", "retries", "timeout queue", "timeout server", "monitor-uri"),
section 5.2 ("check", "inter", "fall", "rise", "observe", "error-limit",
"on-error", "slowstart", "maxconn", "maxqueue"), section 3.1/3.2 ("stats
socket", "nbthread", "maxconn"); management.txt section 9.3 ("set server
... state", "show servers state", "show stat") and 9.1 (the CSV fields).
Each directive was checked against those files of the installed 2.6.12
(``zcat /usr/share/doc/haproxy/configuration.txt.gz``) and by ``haproxy
-c``; HAProxy Technologies' pages agree on per-server maxconn with a
backend queue (haproxy.com/documentation/haproxy-configuration-tutorials/
performance/overload-protection/ and .../haproxy-runtime-api/reference/
set-maxconn-server/).

Nothing here blocks for long: the runtime API is one short unix-socket
exchange per command (call it from a thread, e.g. ``asyncio.to_thread``, in
an event loop).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from solution.core.validate import require_int
from solution.gateway.procs import ManagedProcess, ProcessStartError, free_port

__all__ = [
    "HAPROXY_INSTALL",
    "BACKEND",
    "READY_PATH",
    "haproxy_binary",
    "haproxy_config",
    "check_config",
    "HAProxyConfigError",
    "RuntimeAPIError",
    "ServerState",
    "HAProxy",
    "SOCKET_PATH_MAX",
    "default_global_maxconn",
    "runtime_command",
    "parse_servers_state",
    "parse_stat",
]

#: How a user installs the peer (what a skipped test tells them).
HAPROXY_INSTALL = "apt-get install -y haproxy (Debian/Ubuntu, as root)"

#: The name of the one backend the generated configuration defines.
BACKEND = "be"

#: The frontend's own liveness URI (``monitor-uri``): 200 as soon as HAProxy listens, whatever the servers.
READY_PATH = "/haproxy-ready"

_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")  # what HAProxy accepts in a server name (section 2.1: no spaces)
_TIME = re.compile(r"^\d+(us|ms|s|m|h|d)?$")  # section 2.5, "Time format"

#: The longest unix socket path HAProxy 2.6 accepts for "stats socket" (its own error message: "too long (max 97)").
SOCKET_PATH_MAX = 97

#: What "retry-on" accepts (configuration.txt 4.2, HAProxy 2.6).
_RETRY_ON = frozenset({"none", "conn-failure", "empty-response", "junk-response", "response-timeout", "0rtt-rejected",
                       "401", "403", "404", "408", "425", "500", "501", "502", "503", "504", "all-retryable-errors"})


class HAProxyConfigError(ValueError):
    """``haproxy -c`` rejected a generated configuration (its own message is included)."""


class RuntimeAPIError(RuntimeError):
    """HAProxy's runtime API refused a command or is unreachable (is HAProxy running?)."""


def haproxy_binary() -> str | None:
    """The path of the ``haproxy`` executable (``$PATH``, then /usr/sbin), or ``None`` when it is not installed."""
    found = shutil.which("haproxy")
    if found:
        return found
    for candidate in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _require_binary() -> str:
    binary = haproxy_binary()
    if binary is None:
        raise FileNotFoundError(f"haproxy is not installed; install it with: {HAPROXY_INSTALL}")
    return binary


def _duration(value: object, what: str) -> str:
    """An HAProxy time (section 2.5): a str such as ``"30s"``/``"500ms"``, or a number of seconds -> whole ms."""
    if isinstance(value, str):
        if not _TIME.match(value):
            raise ValueError(f"{what} must be an HAProxy time such as '500ms' or '30s' (section 2.5), got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be seconds (a number) or an HAProxy time string, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number of seconds >= 0, got {value!r}")
    return f"{max(0, round(value * 1000))}ms"


def _address(url: object, server_id: str) -> str:
    """``host:port`` of an ``http://`` base URL (HAProxy connects to the address; the path is the client's)."""
    if not isinstance(url, str):
        raise TypeError(f"server {server_id}'s URL must be a str, got {type(url).__name__} {url!r}")
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValueError(f"server {server_id}'s URL must be http://host:port, got {url!r}")
    if parts.path not in ("", "/"):
        raise ValueError(f"server {server_id}'s URL must be a base URL without a path, got {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port}"


def _backends(backends: object) -> list[tuple[str, str]]:
    if isinstance(backends, Mapping):
        pairs = list(backends.items())
    elif isinstance(backends, Sequence) and not isinstance(backends, (str, bytes)):
        pairs = []
        for item in backends:
            if not (isinstance(item, Sequence) and not isinstance(item, (str, bytes)) and len(item) == 2):
                raise TypeError(f"backends must be a mapping server_id -> URL or (server_id, URL) pairs, got item {item!r}")
            pairs.append((item[0], item[1]))
    else:
        raise TypeError(f"backends must be a mapping server_id -> URL or (server_id, URL) pairs, got {type(backends).__name__}")
    if not pairs:
        raise ValueError("HAProxy needs at least one backend server")
    out, seen = [], set()
    for server_id, url in pairs:
        if not isinstance(server_id, str) or not _NAME.match(server_id):
            raise ValueError(f"a server id must be a non-empty str of letters, digits and _.:- (an HAProxy name), got {server_id!r}")
        if server_id in seen:
            raise ValueError(f"server id {server_id!r} appears twice")
        seen.add(server_id)
        out.append((server_id, _address(url, server_id)))
    return out


def haproxy_config(
    backends: Mapping[str, str] | Sequence[tuple[str, str]],
    *,
    port: int,
    stats_socket: str | os.PathLike[str],
    maxconn_per_server: int | Mapping[str, int],
    timeout_queue: float | str = 10.0,
    slowstart: float | str = "30s",
    check_interval: float | str = "1s",
    fall: int = 2,
    rise: int = 1,
    error_limit: int = 3,
    balance: str = "leastconn",
    timeout_connect: float | str = "1s",
    timeout_server: float | str = "60s",
    timeout_client: float | str = "60s",
    timeout_check: float | str = "1s",
    retries: int = 2,
    nbthread: int | None = 1,
    global_maxconn: int | None = None,
    host: str = "127.0.0.1",
    http_no_delay: bool = True,
    weights: Mapping[str, int] | None = None,
    retry_on: str = "conn-failure",
) -> str:
    """An HAProxy 2.6 configuration: one frontend on ``host:port``, one backend ``be`` with the servers.

    ``backends`` maps each server id (an HAProxy server name) to its base
    URL ``http://host:port`` (what ``Fleet.urls`` gives).  Times are seconds
    (numbers) or HAProxy time strings (``"30s"``, configuration.txt 2.5).

    What each setting is (configuration.txt, HAProxy 2.6):

    * ``balance`` (4.2, default ``leastconn``): "the server with the lowest
      number of connections receives the connection ... it will also
      consider the number of queued connections".
    * ``option httpchk GET /health`` (4.2) with the server options
      ``check inter <check_interval> fall <fall> rise <rise>`` (5.2): 2xx
      and 3xx answers pass; ``timeout check`` bounds a check that hangs.
    * ``observe layer7 error-limit <error_limit> on-error mark-down`` (5.2):
      "responses received from server are verified ... Valid status codes
      include 100 to 499, 501 and 505"; after ``error_limit`` consecutive
      errors the server is marked down at once (and checked at fastinter).
    * ``slowstart`` (5.2): after a server "has just come back up" its
      maxconn grows "from 1 to 100%" over this time; never at HAProxy's start.
    * ``maxconn`` (5.2): "in HTTP mode this parameter limits the number of
      concurrent requests"; more are queued (the backend's queue, as
      leastconn has no persistence) and ``timeout queue`` (4.2) drops one
      that waits longer "and a 503 error is returned to the client".
      ``maxconn_per_server`` is one int, or a mapping by server id (each
      server's batch capacity).
    * ``weights`` (5.2 "weight", 1..256, default 1 each): "all servers will
      receive a load proportional to their weight"; with leastconn a server
      is picked by its connections over its weight, so weights proportional
      to capacity make leastconn compare load ratios, as the course's
      least-connections does.
    * ``retries`` and ``option redispatch 1`` (4.2): a failed connection is
      retried, each retry on another server.  ``retry_on`` (4.2
      "retry-on", default ``conn-failure``, HAProxy's own default: only a
      request that could not be sent) widens what is retried: e.g.
      ``"conn-failure empty-response response-timeout 502 503 504"``
      re-sends a request whose server died or stayed silent for ``timeout
      server`` before answering (HAProxy then buffers each request, and
      never retries once a response has begun: no retry after tokens).
    * ``stats socket <stats_socket> mode 600 level admin`` (3.1; runtime API
      in management.txt 9.3).
    * ``option http-no-delay`` (4.2; ``http_no_delay=True``, the default):
      without it HAProxy holds small response chunks to send full packets,
      "typical delays are around 200 ms": token streaming (SSE) is exactly
      such an interactive payload, and without the option the first token
      reached the client only with the fourth (a stub streaming a chunk
      every 50 ms: TTFT 206 ms through HAProxy against 54 ms direct).
    * ``monitor-uri`` (4.2) answers :data:`READY_PATH` with 200 once HAProxy
      listens: how the course knows the process is up.
    * ``nbthread`` (3.1, default 1 here: one thread, as the gateway is one
      event loop; ``None`` leaves HAProxy's default, one per CPU) and the
      global ``maxconn`` (3.2; default :func:`default_global_maxconn`: 4,096,
      or less where the open-file limit could not hold it - HAProxy needs
      about two descriptors a connection and refuses to start otherwise).

    O(servers).  Raises TypeError/ValueError on bad input (the message names
    the argument); nothing is written anywhere.  Check the result with
    :func:`check_config`.
    """
    servers = _backends(backends)
    port = require_int(port, "port", minimum=1, maximum=65535)
    if isinstance(maxconn_per_server, Mapping):
        missing = [sid for sid, _ in servers if sid not in maxconn_per_server]
        if missing:
            raise ValueError(f"maxconn_per_server has no entry for {missing}")
        maxconn = {sid: require_int(maxconn_per_server[sid], f"maxconn_per_server[{sid!r}]") for sid, _ in servers}
    else:
        one = require_int(maxconn_per_server, "maxconn_per_server")
        maxconn = {sid: one for sid, _ in servers}
    if weights is not None:
        if not isinstance(weights, Mapping):
            raise TypeError(f"weights must be a mapping server_id -> int (1..256) or None, got {type(weights).__name__}")
        unknown = sorted(set(weights) - {sid for sid, _ in servers})
        if unknown:
            raise ValueError(f"weights name servers HAProxy does not have: {unknown}")
        for sid, w in weights.items():
            require_int(w, f"weights[{sid!r}]", minimum=1, maximum=256)
    if not isinstance(retry_on, str) or not retry_on.split():
        raise ValueError(f"retry_on must be retry-on keywords separated by spaces, got {retry_on!r}")
    bad = [k for k in retry_on.split() if k not in _RETRY_ON]
    if bad:
        raise ValueError(f"retry_on has unknown keywords {bad}; HAProxy 2.6 knows {sorted(_RETRY_ON)}")
    sock = os.fspath(stats_socket)
    if not isinstance(sock, str) or not sock or any(c.isspace() for c in sock):
        raise ValueError(f"stats_socket must be a path without spaces, got {stats_socket!r}")
    if len(sock) > SOCKET_PATH_MAX:
        raise ValueError(f"stats_socket must be at most {SOCKET_PATH_MAX} characters (HAProxy's limit for a unix socket "
                         f"path), got {len(sock)}: {sock}")  # fmt: skip
    if balance not in ("leastconn", "roundrobin", "random", "first", "static-rr"):
        raise ValueError(f"balance must be one of leastconn, roundrobin, random, first, static-rr, got {balance!r}")
    fall = require_int(fall, "fall")
    rise = require_int(rise, "rise")
    error_limit = require_int(error_limit, "error_limit")
    retries = require_int(retries, "retries", minimum=0)
    global_maxconn = default_global_maxconn() if global_maxconn is None else require_int(global_maxconn, "global_maxconn")
    if nbthread is not None:
        nbthread = require_int(nbthread, "nbthread", maximum=64)
    if not isinstance(host, str) or not host or any(c.isspace() for c in host):
        raise ValueError(f"host must be an address such as 127.0.0.1, got {host!r}")
    times = {
        "queue": _duration(timeout_queue, "timeout_queue"),
        "connect": _duration(timeout_connect, "timeout_connect"),
        "server": _duration(timeout_server, "timeout_server"),
        "client": _duration(timeout_client, "timeout_client"),
        "check": _duration(timeout_check, "timeout_check"),
    }
    inter = _duration(check_interval, "check_interval")
    slow = _duration(slowstart, "slowstart")

    lines = [
        "# Generated by solution.gateway.haproxy (stage 8): HAProxy as the peer of the course's gateway.",
        "global",
        f"    maxconn {global_maxconn}",
        *([f"    nbthread {nbthread}"] if nbthread is not None else []),
        f"    stats socket {sock} mode 600 level admin",
        "    stats timeout 10s",
        "",
        "defaults",
        "    mode http",
        f"    timeout connect {times['connect']}",
        f"    timeout client {times['client']}",
        f"    timeout server {times['server']}",
        f"    timeout queue {times['queue']}",
        f"    timeout check {times['check']}",
        f"    retries {retries}",
        f"    retry-on {retry_on}",
        "    option redispatch 1",
        *(["    option http-no-delay"] if http_no_delay else []),
        "",
        "frontend fe",
        f"    bind {host}:{port}",
        f"    monitor-uri {READY_PATH}",
        f"    default_backend {BACKEND}",
        "",
        f"backend {BACKEND}",
        f"    balance {balance}",
        "    option httpchk GET /health",
        f"    default-server check inter {inter} fall {fall} rise {rise} observe layer7 "
        f"error-limit {error_limit} on-error mark-down slowstart {slow}",
    ]
    lines += [f"    server {sid} {addr} maxconn {maxconn[sid]}" + (f" weight {weights[sid]}" if weights and sid in weights else "")
              for sid, addr in servers]  # fmt: skip
    return "\n".join(lines) + "\n"


def default_global_maxconn(cap: int = 4096) -> int:
    """The global ``maxconn`` this process's open-file hard limit allows: ``min(cap, (limit - 64) // 2)``, at least 16.

    HAProxy raises its descriptor limit to about ``2 * maxconn`` at start and
    exits ("Cannot raise FD limit") when the hard limit is lower.  O(1).
    """
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return cap
    return max(16, min(cap, (int(hard) - 64) // 2))


def check_config(path: str | os.PathLike[str], *, binary: str | None = None) -> None:
    """Validate a configuration file with ``haproxy -c -f <path>``.

    Raises:
        FileNotFoundError: haproxy is not installed (the message gives the install command).
        HAProxyConfigError: HAProxy rejected the file (its message is included).
    """
    exe = binary or _require_binary()
    done = subprocess.run([exe, "-c", "-f", os.fspath(path)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise HAProxyConfigError(f"haproxy -c rejected {path}:\n{(done.stdout + done.stderr).strip()}")


# -- the runtime API ---------------------------------------------------------------

#: ``srv_op_state`` values (management.txt 9.3, "show servers state").
_OP_STATES = {0: "down", 1: "starting", 2: "up", 3: "stopping"}


@dataclass(frozen=True)
class ServerState:
    """One server as HAProxy sees it (``show servers state`` + ``show stat``).

    ``op_state``: "down", "starting" (up, in slowstart), "up" or "stopping";
    ``drain``/``maint``: set by the runtime API (admin state 0x08 / 0x01);
    ``status``: ``show stat``'s text (UP, DOWN, DRAIN, MAINT, "UP 1/2" ...);
    ``in_flight`` (scur) and ``queued`` (qcur): requests now; ``total``
    (stot): requests sent to it so far.
    """

    server_id: str
    op_state: str
    drain: bool
    maint: bool
    status: str
    in_flight: int
    queued: int
    total: int

    @property
    def takes_new(self) -> bool:
        """True when leastconn may pick it: up (or starting), not drained, not in maintenance."""
        return self.op_state in ("up", "starting") and not self.drain and not self.maint


def runtime_command(socket_path: str | os.PathLike[str], command: str, *, timeout: float = 5.0) -> str:
    """Send one command to HAProxy's runtime API (the stats socket) and return its answer.

    One connection per command (the socket's non-interactive mode,
    management.txt 9.3).  O(answer size).

    Raises:
        ValueError: an empty command or one with a newline (one command only).
        RuntimeAPIError: the socket is missing or refuses, or HAProxy answers an error.
    """
    if not isinstance(command, str) or not command.strip() or "\n" in command or ";" in command:
        raise ValueError(f"one runtime API command without newlines or ';', got {command!r}")
    path = os.fspath(socket_path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise RuntimeAPIError(f"HAProxy's runtime API at {path} did not answer {command!r}: {exc} (is HAProxy running?)") from exc
    answer = b"".join(chunks).decode(errors="replace")
    lowered = answer.strip().lower()
    if lowered.startswith(("unknown command", "no such", "require", "permission denied")) or "no such server" in lowered:
        raise RuntimeAPIError(f"HAProxy refused {command!r}: {answer.strip()}")
    return answer


def parse_servers_state(text: str) -> dict[str, tuple[str, int]]:
    """``show servers state`` (format 1) -> ``{server: (op_state, admin_state mask)}``.  O(lines)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "1":
        raise RuntimeAPIError(f"unexpected 'show servers state' format (want version 1): {text[:200]!r}")
    header = lines[1].lstrip("#").split()
    out = {}
    for line in lines[2:]:
        if line.startswith("#"):
            continue
        row = dict(zip(header, line.split()))
        out[row["srv_name"]] = (_OP_STATES.get(int(row["srv_op_state"]), row["srv_op_state"]), int(row["srv_admin_state"]))
    return out


def parse_stat(text: str, backend: str = BACKEND) -> dict[str, dict[str, str]]:
    """``show stat`` CSV (management.txt 9.1) -> ``{server: {field: value}}`` for ``backend``'s servers.  O(lines)."""
    body = text.lstrip("# ")
    out = {}
    for row in csv.DictReader(io.StringIO(body)):
        if row.get("pxname") == backend and row.get("svname") not in ("BACKEND", "FRONTEND"):
            out[row["svname"]] = row
    return out


# -- the process ----------------------------------------------------------------------


class HAProxy:
    """HAProxy in front of the given servers, started and stopped by the course.

    ``HAProxy(backends, maxconn_per_server=..., **config)`` writes
    :func:`haproxy_config` to a private temporary folder (with the stats
    socket beside it), validates it with ``haproxy -c``, and on
    :meth:`start` runs ``haproxy -f <cfg> -db`` (foreground: ``-db``
    disables background mode) as a :class:`~solution.gateway.procs.ManagedProcess`, ready once
    :data:`READY_PATH` answers 200.  :meth:`stop` (or leaving the ``with``
    block) ends it and removes the folder.  ``port=None`` takes a free port
    (and another one, up to three times, if a process took it meanwhile).

    Runtime API: :meth:`drain` (no new requests; in-flight ones finish;
    checks go on), :meth:`ready` (back in rotation), :meth:`maint`,
    :meth:`server_states`, :meth:`wait_for`.

    Raises (constructor): TypeError/ValueError on a bad configuration
    argument; FileNotFoundError when haproxy is not installed (with the
    install command); HAProxyConfigError when ``haproxy -c`` rejects it.
    """

    def __init__(
        self,
        backends: Mapping[str, str] | Sequence[tuple[str, str]],
        *,
        maxconn_per_server: int | Mapping[str, int],
        port: int | None = None,
        ready_timeout: float = 10.0,
        **config: object,
    ) -> None:
        self.binary = _require_binary()
        self._dir = Path(tempfile.mkdtemp(prefix="lb-haproxy-"))
        if len(str(self._dir / "admin.sock")) > SOCKET_PATH_MAX and os.path.isdir("/tmp"):
            shutil.rmtree(self._dir, ignore_errors=True)  # a long $TMPDIR: the unix socket's path would not fit
            self._dir = Path(tempfile.mkdtemp(prefix="lb-haproxy-", dir="/tmp"))
        self._own_port = port is None
        self._settings = (backends, maxconn_per_server, config)
        try:
            self.socket_path = str(self._dir / "admin.sock")
            self.config_path = self._dir / "haproxy.cfg"
            self._configure(free_port() if port is None else require_int(port, "port", maximum=65535))
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self.servers = [sid for sid, _ in _backends(backends)]
        self.ready_timeout = ready_timeout
        self._proc: ManagedProcess | None = None

    def _configure(self, port: int) -> None:
        """Write and validate the configuration for ``port``."""
        backends, maxconn_per_server, config = self._settings
        self.port = port
        self.config_text = haproxy_config(backends, port=port, stats_socket=self.socket_path,  # type: ignore[arg-type]
                                          maxconn_per_server=maxconn_per_server, **config)  # type: ignore[arg-type]
        self.config_path.write_text(self.config_text)
        check_config(self.config_path, binary=self.binary)

    @property
    def url(self) -> str:
        """The frontend's base URL (what a client or the load generator is pointed at)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HAProxy:
        """Run HAProxy and wait until its frontend answers (at most ``ready_timeout`` s).

        A :class:`~solution.gateway.procs.ManagedProcess` (own process group,
        registered, stopped at exit even if the caller forgets).

        Raises:
            ProcessStartError (a RuntimeError, with HAProxy's output tail): it
                exited or did not answer in time (it is stopped).
        """
        if self._proc is not None and self._proc.alive():
            raise RuntimeError("this HAProxy is already running; stop() it first")
        if not self.config_path.is_file():
            raise RuntimeError("this HAProxy was stopped and its folder removed; make a new HAProxy to start again")
        argv = [self.binary, "-f", str(self.config_path), "-db"]
        for attempt in range(3):
            self._proc = ManagedProcess(argv, name=f"haproxy on port {self.port}", ready_url=self.url + READY_PATH,
                                        ready_timeout=self.ready_timeout, ports=(self.port,))
            try:
                self._proc.start()
                return self
            except ProcessStartError as error:
                # free_port() races with other processes: another one may have bound the port meanwhile.
                if not self._own_port or attempt == 2 or "cannot bind" not in error.output.lower():
                    raise
                self._configure(free_port())
        return self

    def stop(self, grace: float = 3.0) -> None:
        """Stop HAProxy (SIGTERM to its process group, SIGKILL after ``grace`` s) and remove its folder.  Idempotent."""
        if self._proc is not None:
            self._proc.stop(grace)
        shutil.rmtree(self._dir, ignore_errors=True)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.alive()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def __enter__(self) -> HAProxy:
        try:
            return self.start()
        except BaseException:
            self.stop()  # the folder too: __exit__ does not run when __enter__ fails
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # runtime API -------------------------------------------------------------------
    def command(self, command: str) -> str:
        """One runtime API command (management.txt 9.3); see :func:`runtime_command`."""
        return runtime_command(self.socket_path, command)

    def _server(self, server_id: str) -> str:
        if server_id not in self.servers:
            raise ValueError(f"unknown server {server_id!r}; HAProxy has {self.servers}")
        return f"{BACKEND}/{server_id}"

    def drain(self, server_id: str) -> None:
        """``set server be/<id> state drain``: no new requests (it leaves load balancing), in-flight ones finish, checks go on."""
        self.command(f"set server {self._server(server_id)} state drain")

    def ready(self, server_id: str) -> None:
        """``set server be/<id> state ready``: back in load balancing (undoes drain and maint)."""
        self.command(f"set server {self._server(server_id)} state ready")

    def maint(self, server_id: str) -> None:
        """``set server be/<id> state maint``: no traffic and no checks."""
        self.command(f"set server {self._server(server_id)} state maint")

    def server_states(self) -> dict[str, ServerState]:
        """Every server's state: ``show servers state be`` and ``show stat`` (two commands).  O(servers)."""
        states = parse_servers_state(self.command(f"show servers state {BACKEND}"))
        stats = parse_stat(self.command("show stat"))
        out = {}
        for sid in self.servers:
            op, admin = states[sid]
            row = stats.get(sid, {})
            out[sid] = ServerState(sid, op, bool(admin & 0x08), bool(admin & 0x01), row.get("status", ""),
                                   int(row.get("scur") or 0), int(row.get("qcur") or 0), int(row.get("stot") or 0))
        return out

    def backend_queue(self) -> int:
        """Requests waiting in the backend's queue (no server assigned yet): ``show stat``'s qcur for BACKEND."""
        body = self.command("show stat").lstrip("# ")
        for row in csv.DictReader(io.StringIO(body)):
            if row.get("pxname") == BACKEND and row.get("svname") == "BACKEND":
                return int(row.get("qcur") or 0)
        return 0

    def wait_for(self, predicate: Callable[[dict[str, ServerState]], bool], timeout: float = 10.0,
                 interval: float = 0.05) -> dict[str, ServerState]:  # fmt: skip
        """Poll :meth:`server_states` until ``predicate(states)`` is true; return them.

        Raises TimeoutError (with the last states) after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            states = self.server_states()
            if predicate(states):
                return states
            if time.monotonic() > deadline:
                raise TimeoutError(f"HAProxy's servers did not reach the wanted state in {timeout} s: {states}")
            time.sleep(interval)
