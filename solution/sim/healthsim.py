"""Stage 4 in the simulator: warm-up, health probes as events, and the request path with re-route.

* :class:`ColdStart` (``Scenario.cold_start``): a server that just started
  (added by the timetable, or restarted by a :class:`~solution.sim.faults.Recover`
  after a crash or a hang) serves at ``speed`` times its full speed, ramping
  to full speed in ``steps`` equal steps over ``seconds`` (cold KV and prefix
  caches, CUDA graph capture, JIT warm-up).  The initial fleet starts warm.
  This is what slow start protects: a cold server given a full share at once
  runs its requests slowly.
* :class:`HealthConfig` (``Scenario.health``): health checking on.  The run
  then goes through :class:`HealthEngine`, which drives a
  :class:`solution.core.path.RequestPath` (router + ``HealthChecker`` +
  ``RetryLedger``) instead of calling the balancer directly.
* :class:`HealthEngine`: probes are events.  A probe sent at ``t`` to a
  server that is up answers at ``t + probe_rtt`` (ok); to a crashed or hung
  server, or when it is lost (``probe_loss``, independently per probe), it
  fails at ``t + policy.timeout`` (a timeout).  Every attempt of a request
  (a *try*) runs as its own job on its server: a re-sent request may run on
  two servers at once, the abandoned try keeps the GPU busy until it ends,
  and its late answer is discarded (counted, never delivered).
* ``HealthConfig(retry=RetryPolicy(...), retrier=True)`` (stage 8): the
  path also gets a ``Retrier`` (:mod:`solution.retry`), so a re-send waits
  for its decision: backoff with full jitter, and the retry budget.  An
  error answer reaches it as ``Failure("status", 500)``, a refused
  connection as ``Failure("connect")``, a lost server and a per-try
  timeout as the path says (``"reset"``, ``"timeout"``).
* :class:`HealthLog` and :class:`Try`: what a run with health checking
  records beside the per-request arrays (``Results.health``,
  ``Results.history``).

Costs: a probe is O(log E) heap work plus the checker's calls; a try is what
a request costs without health (O(log E + log b)) plus O(1) path calls (and
the retrier's O(1) decision after a failure).  A try that fails after its
prefill (``error_after_prefill``) and still has decode work leaves its
server's batch in O(b) (``Server.remove``, a scan); in classic mode it has
none, and costs what an answer does.  With ``cancel_abandoned`` a try with a
per-try deadline costs O(log D) more (a heap of D deadlines), and one
cancelled at it O(b) to leave its batch.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from solution.core.errors import UnknownRequestError
from solution.core.request import Request
from solution.core.retry_types import Failure
from solution.sim.engine import Engine
from solution.sim.errors import BalancerContractError, SimulationError
from solution.sim.events import HEALTH, PROBE, TIMETABLE
from solution.sim.faults import AddServer, Crash, Recover, RemoveServer, TimetableEvent
from solution.sim.results import Outcome
from solution.sim.server import Server
from solution.sim.validate import require_number

__all__ = ["ColdStart", "HealthConfig", "HealthEngine", "HealthLog", "Try"]

_COMPLETED, _REJECTED, _FAILED, _CRASHED = (int(o) for o in (Outcome.COMPLETED, Outcome.REJECTED, Outcome.FAILED, Outcome.CRASHED))
_HUNG = int(Outcome.HUNG)
_ERROR_ANSWER = Failure("status", 500)  # what a failing server answers (FailFraction, GrayFailure), for the retrier
_REFUSED = Failure("connect")  # a crashed server refuses the connection


@dataclass(frozen=True)
class ColdStart:
    """A started server's warm-up: ``speed`` (0 < speed <= 1) of full speed, ramping to 1 in ``steps`` over ``seconds``.

    The speed during step k (k = 0 at the start, ``steps`` at the end) is
    ``speed + (1 - speed) * k / steps``.  Defaults: 20 s from 40% (graph
    capture and a cold prefix cache cost a vLLM server about that).
    """

    seconds: float = 20.0
    speed: float = 0.4
    steps: int = 4

    def __post_init__(self) -> None:
        require_number(self.seconds, "ColdStart.seconds")
        if require_number(self.speed, "ColdStart.speed") > 1:
            raise ValueError(f"ColdStart.speed is a fraction of full speed: at most 1, got {self.speed}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise TypeError(f"ColdStart.steps must be an int, got {type(self.steps).__name__}")
        if not 1 <= self.steps < 4096:
            raise ValueError(f"ColdStart.steps must be between 1 and 4095, got {self.steps}")

    def speed_at(self, step: int) -> float:
        """The speed factor during step ``step`` (0: just started; ``steps``: warm).  O(1)."""
        return self.speed + (1.0 - self.speed) * min(step, self.steps) / self.steps

    def step_times(self) -> list[float]:
        """Seconds after the start at which each step begins (the last one: full speed).  O(steps)."""
        return [self.seconds * k / self.steps for k in range(1, self.steps + 1)]


@dataclass(frozen=True)
class HealthConfig:
    """Health checking on: which checks, the policies, and the probes' network.

    Args:
        policy: the checker's ``HealthPolicy`` (``None``: its defaults).
        retry: the ``RetryPolicy`` (``None``: its defaults).  The ledger
            reads ``max_tries`` and ``per_try_timeout``; its backoff and
            budget apply with ``retrier=True``.
        active: send probes (active checks).
        passive: report real requests' results to the checker (outlier detection).
        slow_start: a recovered or added server ramps its weight over
            ``policy.slow_start_window``; off, the window shrinks to 1 ms
            (the weight jumps to 1 once the circuit closes).
        reroute: a ``RetryLedger`` re-sends requests (off: one try each; a
            request on a lost server is lost).
        probe_rtt: seconds a probe to a live server takes (it must be below
            the policy's timeout).
        probe_loss: probability that a probe is lost (it then times out),
            independently per probe: for false ejections of healthy servers.
        until: keep probing until at least this time (seconds); ``None``:
            until the last request ended and the timetable is done.
        stop_when_down: stop probing before ``until`` once some server has
            been marked down (the theory checks need only the first ejection).
        retrier: stage 8: the request path also gets a ``Retrier`` built
            from ``retry`` (backoff with full jitter, ``retry_on``, the retry
            budget), seeded with the run's seed.
            Every re-send then waits for the retrier's yes and its delay
            (:mod:`solution.sim.retrystorm` shows the storm it prevents).
            Needs ``reroute``.  Off (the default): stage 4's ledger alone,
            re-sends at once.
        error_after_prefill: a failing server (``FailFraction``,
            ``GrayFailure``) answers its error when the try's prefill ends
            (an engine error or an out-of-memory while reading the prompt;
            in classic mode, after the whole service) instead of at once, so
            a failed try costs the server work and holds a slot, and its
            retry adds real load.  The try leaves the batch then; no token
            reached the client.  Off: at once, costing nothing (a refused
            or instantly failed request).
        cancel_abandoned: a try the path abandons at its per-try timeout
            leaves its server then (the gateway closes the connection and
            the server aborts the request, as vLLM does on a disconnect)
            instead of running to its end for an answer nobody reads.  Its
            slot is free at once (``Try.how`` ``"cancelled"``).  Needs
            ``passive=False`` (a cancelled try is no answer, good or bad, for
            outlier detection) and no KV cache.  A hung server cannot act on
            it: its tries stay stuck.
    """

    policy: Any = None
    retry: Any = None
    active: bool = True
    passive: bool = True
    slow_start: bool = True
    reroute: bool = True
    probe_rtt: float = 0.005
    probe_loss: float = 0.0
    until: float | None = None
    stop_when_down: bool = False
    retrier: bool = False
    error_after_prefill: bool = False
    cancel_abandoned: bool = False

    def __post_init__(self) -> None:
        for name in ("active", "passive", "slow_start", "reroute", "stop_when_down", "retrier", "error_after_prefill", "cancel_abandoned"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"HealthConfig.{name} must be a bool, got {type(getattr(self, name)).__name__}")
        require_number(self.probe_rtt, "HealthConfig.probe_rtt")
        if require_number(self.probe_loss, "HealthConfig.probe_loss", strict=False) >= 1:
            raise ValueError(f"HealthConfig.probe_loss is a probability below 1, got {self.probe_loss}")
        require_number(self.until, "HealthConfig.until", strict=False, none_ok=True)
        from solution.core.health_types import HealthPolicy, RetryPolicy

        if self.policy is not None and not isinstance(self.policy, HealthPolicy):
            raise TypeError(f"HealthConfig.policy must be a HealthPolicy or None, got {type(self.policy).__name__}")
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            raise TypeError(f"HealthConfig.retry must be a RetryPolicy or None, got {type(self.retry).__name__}")
        if self.retrier and not self.reroute:
            raise ValueError("HealthConfig.retrier needs reroute=True: the retrier decides the re-sends the ledger keeps track of")
        if self.cancel_abandoned and self.passive:
            raise ValueError("HealthConfig.cancel_abandoned needs passive=False: a cancelled try is no answer, good or bad, "
                             "that outlier detection could count")  # fmt: skip
        if self.probe_rtt >= self.health_policy().timeout:
            raise ValueError(f"probe_rtt ({self.probe_rtt} s) must be below the policy's timeout ({self.health_policy().timeout} s)")

    def health_policy(self) -> Any:
        """The checker's policy as run (slow start off: a 1 ms window)."""
        from solution.core.health_types import HealthPolicy

        policy = self.policy if self.policy is not None else HealthPolicy()
        return policy if self.slow_start else replace(policy, slow_start_window=1e-3)

    def retry_policy(self) -> Any:
        """The policy as run: ``retry``, or the defaults.  The ledger reads its ``max_tries`` and ``per_try_timeout``."""
        from solution.core.health_types import RetryPolicy

        return self.retry if self.retry is not None else RetryPolicy()

    def retrier_policy(self) -> Any:
        """The policy the run's ``Retrier`` gets (``retrier=True``: :meth:`retry_policy`), else ``None``."""
        return self.retry_policy() if self.retrier else None

    @property
    def checks(self) -> bool:
        """True when a checker runs at all (active or passive)."""
        return self.active or self.passive


@dataclass(frozen=True)
class Try:
    """One try of a request: the server (index into ``Results.server_ids``), when it ran, how it ended.

    ``how``: ``"answered"`` (delivered), ``"late"`` (answered after the
    request moved on: discarded), ``"error"`` (the server answered with an
    error or refused the connection), ``"lost"`` (its server crashed or was
    restarted), ``"stuck"`` (still on a hung server when the run ended),
    ``"abandoned"`` (the run ended while it still ran elsewhere),
    ``"cancelled"`` (taken off its server at its per-try timeout:
    ``HealthConfig.cancel_abandoned``).
    """

    server: int
    start: float
    end: float
    how: str


@dataclass(frozen=True, eq=False)
class HealthLog:
    """What a run with health checking records besides the per-request arrays.

    ``transitions``: the checker's log (``Transition`` records, in order);
    ``probe_server`` / ``probe_sent`` / ``probe_done`` / ``probe_ok``: one
    entry per probe; ``fail_reasons``: request index -> the path's
    ``Failed.reason``; ``discarded``: late answers dropped in all;
    ``path_stats``: ``RequestPath.stats()`` at the end.
    """

    transitions: tuple[Any, ...]
    probe_server: tuple[int, ...]
    probe_sent: tuple[float, ...]
    probe_done: tuple[float, ...]
    probe_ok: tuple[bool, ...]
    fail_reasons: dict[int, str] = field(default_factory=dict)
    discarded: int = 0
    path_stats: dict[str, int] = field(default_factory=dict)
    #: Every try (job), in the order they started: its request index, server index, start, end and ``Try.how``.
    try_request: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    try_server: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    try_start: np.ndarray = field(default_factory=lambda: np.zeros(0))
    try_end: np.ndarray = field(default_factory=lambda: np.zeros(0))
    try_how: tuple[str, ...] = ()

    def load_over_time(self, times: np.ndarray, servers: int) -> np.ndarray:
        """Tries holding a slot on each server at each instant, shape ``(len(times), servers)``.

        Unlike ``Results.load_over_time`` (one interval per request), this
        counts every try over ``[start, end)``: abandoned ones still running,
        and tries stuck on a hung server.  O(J log J) for J tries.
        """
        times = np.asarray(times, dtype=np.float64)
        load = np.zeros((len(times), servers), dtype=np.int64)
        ran = ~np.isnan(self.try_start)
        for k in range(servers):
            mine = ran & (self.try_server == k)
            begins, ends = np.sort(self.try_start[mine]), np.sort(self.try_end[mine])
            load[:, k] = np.searchsorted(begins, times, "right") - np.searchsorted(ends, times, "right")
        return load

    def state_over_time(self, server_id: str, times: np.ndarray) -> list[str]:
        """The checker's state of ``server_id`` at each instant (``""`` before it was added).  O(T + len(times) log T)."""
        mine = [(float(t.at), str(t.new)) for t in self.transitions if t.server_id == server_id]
        at = np.array([m[0] for m in mine])
        idx = np.searchsorted(at, np.asarray(times, dtype=np.float64), "right") - 1
        return [mine[i][1] if i >= 0 else "" for i in idx]

    def first_down(self, server_id: str, after: float = 0.0) -> float:
        """When ``server_id`` was first marked down at or after ``after`` (``inf``: never).  O(T)."""
        for tr in self.transitions:
            if tr.server_id == server_id and str(tr.new) == "down" and tr.at >= after:
                return float(tr.at)
        return math.inf

    def probes_until(self, server: int, until: float) -> int:
        """Probes to server index ``server`` sent at or before ``until``.  O(P)."""
        return sum(1 for k, s in zip(self.probe_server, self.probe_sent) if k == server and s <= until)


class _NoActive:
    """A checker seen without its active checks (no probes are scheduled)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def next_probe_time(self) -> float | None:
        return None

    def due_probes(self, now: float) -> list[str]:
        return []


class _NoPassive(_NoActive):
    """A checker seen without its passive checks (real requests' results are not reported)."""

    def next_probe_time(self) -> float | None:
        return self._inner.next_probe_time()

    def due_probes(self, now: float) -> list[str]:
        return self._inner.due_probes(now)

    def request_result(self, server_id: str, ok: bool, now: float, seconds_per_token: float | None = None) -> None:
        return None


class _FirstTokens(list):  # type: ignore[type-arg]
    """The jobs' first-token times; setting one tells the engine (the path must learn it at that instant)."""

    __slots__ = ("engine",)

    def __setitem__(self, job: int, t: float) -> None:  # type: ignore[override]
        super().__setitem__(job, t)
        self.engine._on_first_token(job, t)


class HealthEngine(Engine):
    """The engine with health checking: arrivals, completions, crashes and probes go through a ``RequestPath``.

    Every try is a *job* on a server (jobs ``0..n-1`` are the requests' first
    tries, re-sends are appended).  The path decides (re-send, deliver,
    discard, fail); the engine runs the servers and the network.  The
    balancer must be a :class:`solution.core.routing.Router`.

    Raises (from :meth:`run`):
        BalancerContractError: the path dispatched to an unknown or removed server.
        SimulationError: a request ended twice or never (a bug in the path or here).
    """

    def __init__(self, balancer: object, servers: Sequence[Server], *, health: HealthConfig, checker: Any, ledger: Any,
                 path_class: Any, seed: int = 0, retrier: Any = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(balancer, servers, **kwargs)
        self.first_token = list(self.first_token)  # tries, not requests, fill caches here (_on_first_token)
        if self.gateway is not None or self.early_binding:
            raise SimulationError("health checking runs without a stage-2 queue and without early binding")
        self.config = health
        self.policy = health.health_policy()
        self.checker = checker
        view = checker
        if checker is not None and not health.active:
            view = _NoActive(checker)
        elif checker is not None and not health.passive:
            view = _NoPassive(checker)
        # stage 8: the retrier decides every re-send (without one, the path is called exactly as in stages 4-7)
        self.path = path_class(balancer, health=view, ledger=ledger, **({} if retrier is None else {"retrier": retrier}))
        self.retrier = retrier
        self._doomed: set[int] = set()  # tries that answer an error at the end of their prefill (error_after_prefill)
        self._errored: list[int] = []  # doomed tries whose prefill just ended, failed after the server's step
        self._deadlines: list[tuple[float, int]] = []  # (per-try deadline, job) of running tries (cancel_abandoned)
        if health.cancel_abandoned and self.kv is not None:
            raise SimulationError("HealthConfig.cancel_abandoned runs without a KV cache (a cancelled try's blocks are not tracked)")
        self.rng = random.Random(seed * 1_000_003 + 17)  # probe losses and the fail draws of re-sent tries
        n = len(self.arrival)
        self.job_req = list(range(n))
        self.job_srv = [-1] * n
        self.job_start = [math.nan] * n
        self.job_end = [math.nan] * n
        self.job_how = [""] * n
        first = _FirstTokens([math.nan] * n)
        first.engine = self
        self.job_first = first
        self.job_decode = list(self.decode)
        self.job_prefill = list(self.prefill)
        self.current = [-1] * n
        self.tries = [0] * n
        self.late = [0] * n
        self.fail_reasons: dict[int, str] = {}
        self.discarded = 0
        self.ended = 0
        self.timetable_left = len(self.timetable)
        self._health_at: float | None = None
        self._seen = 0  # transitions already scanned for stop_when_down
        self._pending: deque[Any] = deque()
        self._applying = False
        self.probe_server: list[int] = []
        self.probe_sent: list[float] = []
        self.probe_done: list[float] = []
        self.probe_ok: list[bool] = []
        self.last_arrival = max((a for a in self.arrival if a == a), default=0.0)

    # -- the loop ----------------------------------------------------------------

    def run(self) -> None:
        for srv in self.servers:
            if srv.in_pool:
                self._apply(self.path.add_server(srv.server_id, srv.capacity, srv.gpu_memory_gb, 0.0, warm=True))
        super().run()
        end = self.now
        for j, how in enumerate(self.job_how):
            if not how:  # still on a server: a hung one (its request moved on, or ended HUNG)
                self.job_how[j] = "stuck" if self.servers[self.job_srv[j]].hung else "abandoned"
                self.job_end[j] = end

    def _dispatch(self, event: tuple[float, int, int, int, int]) -> None:
        time, kind, _, a, b = event
        if kind == HEALTH:
            self.now = time
            self._on_health(time)
        elif kind == PROBE:
            self.now = time
            self._on_probe(b, time)
        else:
            if kind == TIMETABLE:
                self.timetable_left -= 1
            super()._dispatch(event)
            if kind != 0:  # SERVER events schedule through _on_server
                self._schedule_health()

    # -- requests ------------------------------------------------------------------

    def _arrive(self, i: int, t: float) -> None:
        self.now = t
        if self.records:
            request = self.request(i)
        else:
            estimated = self.estimated[i]
            request = Request(f"r{i}", estimated, None if self.prompt is None else min(self.prompt[i], estimated))
        self._apply(self.path.submit(request, t))
        self._schedule_health()

    def _apply(self, outcomes: list[Any]) -> None:
        """Act on the path's outcomes in order (re-entrant calls only queue more): :meth:`_on_outcome` each."""
        self._pending.extend(outcomes)
        if self._applying:
            return
        self._applying = True
        try:
            pending = self._pending
            while pending:
                self._on_outcome(pending.popleft())
        finally:
            self._applying = False

    def _on_outcome(self, o: Any) -> None:
        """One outcome of the path (subclasses that run a queue or tiers handle more kinds)."""
        name = type(o).__name__
        if name == "Dispatched":
            self._start_try(o)
        elif name == "Delivered":
            i = int(o.request_id[1:])
            j = self.current[i]
            self.job_how[j] = "answered"
            self._finish(i, o.at, _COMPLETED)
        elif name == "Failed":
            i = int(o.request_id[1:])
            self.fail_reasons[i] = o.reason
            self._finish(i, o.at, _CRASHED if o.reason == "server_lost" else _FAILED)
        elif name == "Discarded":
            self.late[int(o.request_id[1:])] += 1
            self.discarded += 1
        elif name == "Rejected":
            self._finish(int(o.request_id[1:]), o.at, _REJECTED)
        else:
            raise SimulationError(f"the request path returned {name} ({o}); the simulator runs it without a queue")

    def _finish(self, i: int, t: float, outcome: int) -> None:
        if self.outcome[i] != -1:
            raise SimulationError(f"request r{i} ended twice ({Outcome(self.outcome[i]).name}, then {Outcome(outcome).name}): "
                                  "the request path answered it twice")  # fmt: skip
        self.ended += 1
        self._end(i, t, outcome)

    def _target(self, o: Any) -> Server:
        """The server a Dispatched outcome names; BalancerContractError if the simulator has no such server in its pool."""
        srv = self.by_id.get(o.server_id)
        if srv is None:
            raise BalancerContractError(f"the request path sent {o.request_id} to {o.server_id!r}, which is no server the simulator added")
        if not srv.in_pool:
            raise BalancerContractError(f"the request path sent {o.request_id} to {o.server_id!r}, a server that was removed")
        return srv

    def _start_try(self, o: Any) -> None:
        i = int(o.request_id[1:])
        srv = self._target(o)
        t = o.at
        if self.current[i] == -1 and self.tries[i] == 0:
            j = i
            draw = self.fail_draw[i]
        else:
            j = len(self.job_req)
            self.job_req.append(i)
            self.job_srv.append(-1)
            self.job_start.append(math.nan)
            self.job_end.append(math.nan)
            self.job_how.append("")
            list.append(self.job_first, math.nan)
            self.job_decode.append(self.decode[i])
            self.job_prefill.append(self.prefill[i])
            draw = self.rng.random()
        self.current[i] = j
        self.tries[i] += 1
        self.job_srv[j] = srv.index
        self.job_start[j] = t
        self.server[i] = srv.index
        if self.start[i] != self.start[i]:
            self.start[i] = t
        if srv.running >= srv.capacity:
            raise BalancerContractError(f"the request path sent {o.request_id} to {o.server_id!r}, already running {srv.running} "
                                        f"of {srv.capacity} requests")  # fmt: skip
        if srv.up and draw < srv.fail_fraction and self.config.error_after_prefill:
            self._doomed.add(j)  # runs its prefill, then answers an error (_on_server)
        elif not srv.up or draw < srv.fail_fraction:  # refused connection / an error answer, at once
            self.job_end[j] = t
            self.job_how[j] = "error"
            failure = None if self.retrier is None else (_ERROR_ANSWER if srv.up else _REFUSED)
            self._apply(self.path.completed(o.request_id, o.server_id, t, ok=False, failure=failure))
            return
        if self.kv is None:
            srv.admit(t, j, self.job_prefill[j])
        else:
            srv.admit(t, j, self.job_prefill[j] - self.kv.admit(i, srv.index))  # type: ignore[attr-defined]
        self._reschedule(srv)
        if self.config.cancel_abandoned and o.deadline is not None:
            heapq.heappush(self._deadlines, (o.deadline, j))
            self.queue.push(o.deadline, HEALTH, 0)  # the path abandons it then (tick), and the engine cancels it

    def _cancel_abandoned(self, t: float) -> None:
        """Tries still running at their per-try deadline (the path has just abandoned them) leave their servers.

        O(log D) per deadline, plus O(b) to take a try out of its batch.
        """
        heap = self._deadlines
        while heap and heap[0][0] <= t:
            _, j = heapq.heappop(heap)
            srv = self.servers[self.job_srv[j]]
            if self.job_how[j] or srv.hung or not srv.up:  # ended (answered, error, lost), or a server that cannot act
                continue
            srv.remove(t, j)
            self.job_end[j] = t
            self.job_how[j] = "cancelled"
            self._reschedule(srv)
            try:
                self._apply(self.path.completed(f"r{self.job_req[j]}", srv.server_id, t, ok=False))  # its slot is free
            except UnknownRequestError:  # the path no longer tracks the attempt (its server left the pool)
                pass

    def _on_first_token(self, j: int, t: float) -> None:
        i = self.job_req[j]
        if self.kv is not None:  # the try's prefill is done: its blocks are in its server's memory, late or not
            self.kv.prefill_done(i, self.job_srv[j], t)  # type: ignore[attr-defined]
        if j in self._doomed:  # an error instead of a first token: failed once the server's step is over
            self._doomed.discard(j)
            self._errored.append(j)
            return
        if self.current[i] == j and self.outcome[i] == -1:
            if self.retrier is not None:
                try:
                    self.path.first_token(f"r{i}", t)
                except UnknownRequestError:  # the path abandoned this try (per-try timeout) and the request backs off:
                    return  # no attempt of it runs, so no client hears this token
            else:
                self.path.first_token(f"r{i}", t)
            self.first_token[i] = t

    def _on_server(self, k: int, version: int, t: float) -> None:
        srv = self.servers[k]
        if version != srv.version:
            return
        done = srv.step(t, self.job_decode, self.job_first)
        sid = srv.server_id
        errored: list[int] = []
        if self._errored:
            errored, self._errored = self._errored, []
            finished = set(done)
            if finished.intersection(errored):  # classic mode: the first token comes with the end of the service
                failed = set(errored)
                done = [j for j in done if j not in failed]
            for j in errored:
                if j not in finished:
                    srv.remove(t, j)  # it leaves the batch with its error (no decode)
                self.job_end[j] = t
                self.job_how[j] = "error"
                failure = None if self.retrier is None else _ERROR_ANSWER
                self._apply(self.path.completed(f"r{self.job_req[j]}", sid, t, ok=False, failure=failure))
        for j in done:
            i = self.job_req[j]
            self.job_end[j] = t
            self.job_how[j] = "late"  # unless the path delivers it (then "answered")
            steps = self.job_decode[j]
            spt = (t - self.job_first[j]) / steps if steps > 0 and t > self.job_first[j] else None
            self._apply(self.path.completed(f"r{i}", sid, t, ok=True, seconds_per_token=spt))
        self._schedule(srv)
        if done or errored:  # only a completion or an error can start a try (a re-send, now or after a backoff)
            self._schedule_health()

    # -- servers and the timetable ------------------------------------------------------

    def _lose(self, srv: Server, t: float) -> None:
        """The server's connections break (a crash, or the restart of a hung server): its tries are lost."""
        for j in srv.crash(t):
            self.job_end[j] = t
            self.job_how[j] = "lost"
        srv.version += 1
        if self.kv is not None:
            self.kv.lost(srv.index, t)  # type: ignore[attr-defined]
        if srv.in_pool:
            self._apply(self.path.server_lost(srv.server_id, t))

    def _add(self, srv: Server) -> None:
        """A server joins during the run: the path takes it in slow start (``warm=False``), cold or not."""
        self._apply(self.path.add_server(srv.server_id, srv.capacity, srv.gpu_memory_gb, self.now, warm=False))
        srv.in_pool = True
        srv.removed_by_detection = False

    def _on_timetable(self, event: TimetableEvent, t: float) -> None:
        if isinstance(event, RemoveServer):
            srv = self.by_id[event.server]
            if srv.in_pool:
                self._apply(self.path.remove_server(srv.server_id, t))
                srv.in_pool = False
            return
        if isinstance(event, AddServer):
            srv = self.by_id[event.server]
            if srv.in_pool:
                from solution.sim.errors import ScenarioError

                raise ScenarioError(f"AddServer at {t} s: server {srv.server_id!r} is already in the pool; remove it first")
            self._begin_warmup(srv, t)
            self._add(srv)
            return
        super()._on_timetable(event, t)

    # -- health: timers and probes ------------------------------------------------------

    def _done(self) -> bool:
        """No more probing is needed: every request ended, the timetable is over, ``until`` passed."""
        until = self.config.until
        if self.ended < len(self.arrival) or self.timetable_left > 0:
            return False
        if until is None or self.now >= until:
            return True
        if self.config.stop_when_down and self.checker is not None:
            log = self.checker.transitions
            while self._seen < len(log):
                if str(log[self._seen].new) == "down":
                    return True
                self._seen += 1
        return False

    def _schedule_health(self) -> None:
        """Make sure a HEALTH event is due when the path next has work."""
        nxt = self.path.next_event_time()
        if nxt is None or self._done():
            return
        if self._health_at is None or nxt < self._health_at:
            nxt = max(nxt, self.now)
            self.queue.push(nxt, HEALTH, 0)
            self._health_at = nxt

    def _on_health(self, t: float) -> None:
        if self._health_at is not None and t >= self._health_at:
            self._health_at = None
        if self._done():
            return
        cfg, timeout = self.config, self.policy.timeout
        for sid in self.path.due_probes(t):
            srv = self.by_id.get(sid)
            if srv is None:
                continue
            ok = srv.up and not srv.hung and not (cfg.probe_loss and self.rng.random() < cfg.probe_loss)
            done = t + (cfg.probe_rtt if ok else timeout)
            self.queue.push(done, PROBE, srv.index, len(self.probe_server))
            self.probe_server.append(srv.index)
            self.probe_sent.append(t)
            self.probe_done.append(done)
            self.probe_ok.append(ok)
        self._apply(self.path.tick(t))
        if self._deadlines:
            self._cancel_abandoned(t)
        nxt = self.path.next_event_time()
        if nxt is not None and nxt <= t:  # the path still has work now: run it once more, a hair later
            self._health_at = None
            nxt = t + 1e-9
        if nxt is not None and not self._done() and (self._health_at is None or nxt < self._health_at):
            self.queue.push(nxt, HEALTH, 0)
            self._health_at = nxt

    def _on_probe(self, probe: int, t: float) -> None:
        srv = self.servers[self.probe_server[probe]]
        try:
            outcomes = self.path.probe_result(srv.server_id, self.probe_ok[probe], t)
        except KeyError:  # the server left the pool while its probe was out: nothing to report
            return
        self._apply(outcomes)
        self._schedule_health()

    def _end_hung(self) -> None:
        """Nothing else can happen: requests whose current try is stuck on a hung server end ``HUNG``."""
        for srv in self.servers:
            if not (srv.hung and srv.running):
                continue
            jobs = [j for _, j in srv.ptags] + [j for _, j in srv.dtags]
            for j in sorted(jobs):
                i = self.job_req[j]
                if self.current[i] == j and self.outcome[i] == -1:
                    self._finish(i, self.now, _HUNG)

    def log(self) -> HealthLog:
        """The run's :class:`HealthLog` (after :meth:`run`)."""
        transitions = tuple(getattr(self.checker, "transitions", ())) if self.checker is not None else ()
        stats = self.path.stats() if hasattr(self.path, "stats") else {}
        srv = np.array(self.job_srv, dtype=np.int64)
        ran = srv >= 0  # jobs 0..n-1 are reserved for first tries: a request never dispatched has none
        return HealthLog(transitions, tuple(self.probe_server), tuple(self.probe_sent), tuple(self.probe_done),
                         tuple(self.probe_ok), dict(self.fail_reasons), self.discarded, dict(stats),
                         np.array(self.job_req, dtype=np.int64)[ran], srv[ran],
                         np.array(self.job_start, dtype=np.float64)[ran], np.array(self.job_end, dtype=np.float64)[ran],
                         tuple(h for h, r in zip(self.job_how, ran.tolist()) if r))  # fmt: skip

    def history(self) -> dict[int, tuple[Try, ...]]:
        """Per request with more than one try or a discarded answer: its tries in order."""
        tries: dict[int, list[Try]] = {}
        for j, i in enumerate(self.job_req):
            if self.tries[i] > 1 or self.late[i]:
                tries.setdefault(i, []).append(Try(self.job_srv[j], self.job_start[j], self.job_end[j], self.job_how[j]))
        return {i: tuple(v) for i, v in sorted(tries.items())}

    def wasted(self) -> list[float]:
        """Per request: slot-seconds its tries held without delivering an answer."""
        out = [0.0] * len(self.arrival)
        for j, i in enumerate(self.job_req):
            if self.job_how[j] != "answered" and self.job_start[j] == self.job_start[j]:
                out[i] += self.job_end[j] - self.job_start[j]
        return out
