"""The general simulation engine: a gateway in front of simulated servers.

The engine plays the part of a real gateway.  It only calls the balancer's
public methods, as a gateway would:

* a request arrives: ``route_request(id, estimated_tokens)``, or
  ``route(Request(id, estimated_tokens, prompt_tokens=prompt))`` when the
  balancer has a ``route`` method (stage 3's router: the prompt's length is
  known exactly at a gateway, only the output's is estimated).  A
  ``RuntimeError`` (``NoCapacityError``) means the request is rejected
  (stage 1 has no queue); otherwise the chosen server admits it;
* a request ends (completed, failed, lost in a crash):
  ``complete_request(id)``, at that instant; a completed request is first
  reported with ``observe(id, latency=seconds)`` when the balancer has that
  optional hook (stage 3's :class:`solution.core.routing.Router`);
* the timetable adds or drains servers (``add_server`` / ``remove_server``),
  and, when the scenario sets ``crash_detection``, removes a crashed server
  and adds it back when it recovers.

With a stage-2 queue (``queue=`` a queue class), these calls go through a
:class:`solution.core.gateway.Gateway` instead: an arrival is ``submit``-ted (it
is dispatched, waits, or is throttled with 429), a completion frees a slot
that the gateway gives at once to the best waiting request that fits, and
the engine schedules an event at the queue's ``next_deadline()`` (and one
per impatient client) so requests time out (or give up) at exactly their
instant.  The gateway reports every outcome; the engine applies them in
order (a dispatch admits the request on its server).  Requests still
waiting when nothing else can happen (they fit no server left) are
cancelled at the last event.

It checks the balancer's answers against the contract (a known server that
is in the pool and has a free slot) and raises
:class:`~solution.sim.errors.BalancerContractError` otherwise.

Events (see :mod:`solution.sim.events`): arrivals known in advance are read
in order from an array and merged with the heap; the heap holds server
progress, timetable rows, crash detections and the later turns of sessions.
Each request costs O(log E + log b) heap work plus two balancer calls.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from solution.core.gateway import Gateway
from solution.core.request import Request
from solution.core.queue_types import Cancelled, Dispatched, FinalOutcome, QueuePolicy, Queued, TimedOut
from solution.sim.errors import BalancerContractError, ScenarioError, SimulationError
from solution.sim.events import ARRIVAL, DEADLINE, DETECT, PATIENCE, SERVER, TIMETABLE, WARM, EventQueue
from solution.sim.faults import AddServer, Crash, FailFraction, GrayFailure, Hang, Recover, RemoveServer, Slowdown, TimetableEvent
from solution.sim.results import Outcome
from solution.sim.server import Server

__all__ = ["Engine", "contract_error", "PROGRESS_EVERY"]

#: Arrivals between two calls of the progress callback.
PROGRESS_EVERY = 1 << 14

_COMPLETED, _REJECTED, _FAILED, _CRASHED = (int(o) for o in (Outcome.COMPLETED, Outcome.REJECTED, Outcome.FAILED, Outcome.CRASHED))
_TIMED_OUT, _THROTTLED, _CANCELLED, _HUNG = int(Outcome.TIMED_OUT), int(Outcome.THROTTLED), int(Outcome.CANCELLED), int(Outcome.HUNG)


def contract_error(request_id: str, server_id: object, problem: str) -> BalancerContractError:
    """The error for a routing answer that breaks the contract."""
    return BalancerContractError(
        f"route_request({request_id!r}) returned {server_id!r}, {problem}. "
        "route_request must return the id of a server that was added, is not draining, "
        "and runs fewer requests than its capacity (raise NoCapacityError when there is none)."
    )


class _PrefillDone(list):  # type: ignore[type-arg]
    """The requests' first-token times; setting one caches the request's prefix blocks on its server (KV cache on)."""

    __slots__ = ("engine",)

    def __setitem__(self, i: int, t: float) -> None:  # type: ignore[override]
        super().__setitem__(i, t)
        engine = self.engine
        engine.kv.prefill_done(i, engine.server[i], t)


class Engine:
    """One run: the balancer, the servers, the requests' inputs and their records.

    Inputs are per-request Python lists (indexing a list is faster than a
    numpy array): ``estimated`` (ints), ``prefill`` and ``decode`` work
    (see :class:`~solution.sim.runner.Inputs`), ``fail_draw`` (a uniform number per request, compared with a server's
    failing fraction), ``think`` and ``next_turn`` for sessions.  ``arrival``
    holds the known arrival times (NaN for later session turns) and is
    filled in as those turns are sent.  ``queue`` (a queue class, called as
    ``queue(clock, policy)``) puts a stage-2 gateway in front of the
    balancer, with each request's ``priority`` class and ``patience``
    (seconds it will wait; ``None``: for ever).  Stage 5: ``session_keys``
    and ``blocks`` (per request) go into each ``Request`` record
    (``session_id`` ``"s<key>"``, ``prefix_blocks``); ``kv`` (a
    :class:`solution.sim.kvcache.ServerCaches`) is a prefix cache per server:
    a request whose prompt starts with cached blocks prefills only the rest,
    and its blocks are cached when its prefill is done.
    """

    def __init__(
        self,
        balancer: object,
        servers: Sequence[Server],
        *,
        arrival: list[float],
        estimated: list[int],
        prefill: list[float],
        decode: list[float],
        fail_draw: list[float],
        think: list[float],
        next_turn: list[int],
        timetable: Sequence[TimetableEvent] = (),
        crash_detection: float | None = None,
        progress: Callable[[int], None] | None = None,
        queue: Callable[..., object] | None = None,
        policy: QueuePolicy | None = None,
        priority: list[int] | None = None,
        patience: list[float] | None = None,
        early_binding: bool = False,
        prompt: list[int] | None = None,
        cold_start: object | None = None,
        session_keys: list[int] | None = None,
        blocks: list[tuple[int, ...]] | None = None,
        kv: object | None = None,
    ) -> None:
        self.balancer = balancer
        self.early_binding = early_binding
        self.route = balancer.route_request  # type: ignore[attr-defined]
        record = getattr(balancer, "route", None)  # the record-based entry point (stage 3 on)
        self.route_record = record if callable(record) and prompt is not None else None
        self.prompt = prompt
        self.complete = balancer.complete_request  # type: ignore[attr-defined]
        self.add_server = balancer.add_server  # type: ignore[attr-defined]
        self.remove_server = balancer.remove_server  # type: ignore[attr-defined]
        self.now = 0.0  # the time of the event being handled: the queue's clock
        self.gateway: Gateway | None = None
        if queue is not None:
            self.request_queue = queue(self._clock, policy)
            self._outcomes: deque[FinalOutcome] = deque()
            self._applying = False
            self._deadline_at: float | None = None
            self.gateway = Gateway(balancer, self.request_queue, self._clock, on_outcome=self._outcomes.append)  # type: ignore[arg-type]
            self.complete, self.add_server, self.remove_server = self._complete_queued, self.gateway.add_server, self.gateway.remove_server
            self.priority = priority if priority is not None else [0] * len(arrival)
            self.patience = patience
        self.observe = getattr(balancer, "observe", None)  # optional feedback hook (stage 3): latency of completed requests
        self.servers = list(servers)
        self.by_id = {s.server_id: s for s in self.servers}
        self.arrival, self.estimated, self.prefill, self.decode = arrival, estimated, prefill, decode
        self.fail_draw, self.think, self.next_turn = fail_draw, think, next_turn
        self.timetable = list(timetable)
        self.crash_detection = crash_detection
        self.cold_start = cold_start  # a ColdStart (solution.sim.healthsim) or None: started servers serve at full speed
        self.progress = progress
        self.queue = EventQueue()
        n = len(arrival)
        nan = math.nan
        self.start = [nan] * n
        self.first_token = [nan] * n
        self.finish = [nan] * n
        self.server = [-1] * n
        self.outcome = [-1] * n
        # Stage 5: session keys and prefix blocks go into each Request; kv (a solution.sim.kvcache.ServerCaches)
        # gives a try the prefill its server's prefix cache skips, and caches its blocks when its prefill is done.
        self.session_keys = session_keys
        self.blocks = blocks
        self.records = session_keys is not None or blocks is not None
        self.kv = kv
        if kv is not None:
            self.first_token = _PrefillDone(self.first_token)
            self.first_token.engine = self

    # -- the loop ------------------------------------------------------------

    def run(self) -> None:
        """Run every event until nothing is left.  Afterwards every request has one outcome."""
        queue = self.queue
        for row, event in enumerate(self.timetable):
            queue.push(float(event.at), TIMETABLE, row)
        known = np.asarray(self.arrival)
        order = np.nonzero(~np.isnan(known))[0]
        order = order[np.argsort(known[order], kind="stable")]  # by time, then by index
        times = known[order].tolist()
        dispatch, due, arrive = self._dispatch, queue.due_before, self._arrive
        for count, (t, i) in enumerate(zip(times, order.tolist())):
            while due(t, ARRIVAL):
                dispatch(queue.pop())
            arrive(i, t)
            if self.progress is not None and count % PROGRESS_EVERY == PROGRESS_EVERY - 1:
                self.progress(PROGRESS_EVERY)
        while True:
            while queue.heap:
                dispatch(queue.pop())
            self._cancel_stranded()  # may send later turns of sessions: then go round again
            if not queue.heap:
                self._end_hung()
                if not queue.heap:
                    break
        if self.progress is not None:
            self.progress(len(times) % PROGRESS_EVERY)
        if -1 in self.outcome:
            missing = self.outcome.index(-1)
            raise SimulationError(f"request r{missing} never ended; this is a simulator bug, please report it")

    def _dispatch(self, event: tuple[float, int, int, int, int]) -> None:
        time, kind, _, a, b = event
        self.now = time
        if kind == SERVER:
            self._on_server(a, b, time)
        elif kind == ARRIVAL:
            self._arrive(a, time)
        elif kind == TIMETABLE:
            self._on_timetable(self.timetable[a], time)
        elif kind == DETECT:
            self._on_detect(a, b, time)
        elif kind == DEADLINE:
            self._on_deadline(time)
        elif kind == PATIENCE:
            self._on_patience(a)
        else:
            self._on_warm(a, b, time)

    # -- requests --------------------------------------------------------------

    def _arrive(self, i: int, t: float) -> None:
        rid = f"r{i}"
        if self.gateway is not None:
            self._submit(i, t)
            return
        try:
            if self.route_record is not None:
                if self.records:
                    sid = self.route_record(self.request(i))
                else:
                    estimated = self.estimated[i]
                    sid = self.route_record(Request(rid, estimated, min(self.prompt[i], estimated)))  # type: ignore[index]
            else:
                sid = self.route(rid, self.estimated[i])
        except (NotImplementedError, RecursionError):
            raise  # a bug or a stub, not a full cluster
        except RuntimeError:
            self._end(i, t, _REJECTED)
            return
        self._start(i, sid, t)

    def request(self, i: int) -> Request:
        """Request ``i``'s record: tokens (the prompt's known, at most the estimate), session id ``s<key>``, prefix blocks."""
        estimated = self.estimated[i]
        prompt = None if self.prompt is None else min(self.prompt[i], estimated)
        key = -1 if self.session_keys is None else self.session_keys[i]
        return Request(f"r{i}", estimated, prompt, f"s{key}" if key >= 0 else None, () if self.blocks is None else self.blocks[i])

    def _start(self, i: int, sid: object, t: float) -> None:
        """The balancer placed request ``i`` on ``sid`` at ``t``: check the answer, admit it (or fail it)."""
        rid = f"r{i}"
        srv = self.by_id.get(sid)  # type: ignore[arg-type]
        if srv is None:
            raise contract_error(rid, sid, "which is not the id of any server the simulator added")
        if not srv.in_pool:
            raise contract_error(rid, sid, "a server that was removed (or never added)")
        self.server[i] = srv.index
        if srv.running >= srv.capacity or srv.waiting:
            if not self.early_binding:
                raise contract_error(rid, sid, f"a server already running {srv.running} of {srv.capacity} requests")
            srv.waiting.append(i)  # early binding: it joins the batch when a slot frees, in order
            return
        self._admit(i, srv, t)
        if srv.hung:  # a hung server takes the request and never schedules its progress
            return
        self._schedule(srv)

    def _admit(self, i: int, srv: Server, t: float) -> None:
        """Request ``i`` joins ``srv``'s batch at ``t`` (or fails at once on a failing server)."""
        self.start[i] = t
        if not srv.up or self.fail_draw[i] < srv.fail_fraction:
            self.complete(f"r{i}")
            self._end(i, t, _FAILED)
            return
        if self.kv is None:
            srv.admit(t, i, self.prefill[i])
        else:
            srv.admit(t, i, self.prefill[i] - self.kv.admit(i, srv.index))  # type: ignore[attr-defined]

    def _end(self, i: int, t: float, outcome: int) -> None:
        """Record how request ``i`` ended; send the session's next turn after its think time."""
        self.outcome[i] = outcome
        self.finish[i] = t
        j = self.next_turn[i]
        if j >= 0:
            self.arrival[j] = t + self.think[j]
            self.queue.push(self.arrival[j], ARRIVAL, j)

    # -- the stage-2 gateway -----------------------------------------------------

    def _clock(self) -> float:
        return self.now

    def _submit(self, i: int, t: float) -> None:
        self.now = t
        assert self.gateway is not None
        estimated = self.estimated[i]
        prompt = None if self.prompt is None else min(self.prompt[i], estimated)
        result = self.gateway.submit(f"r{i}", estimated, self.priority[i], prompt)
        if isinstance(result, Queued):
            self._schedule_deadline()
            if self.patience is not None:
                self.queue.push(t + self.patience[i], PATIENCE, i)
        self._apply_outcomes()

    def _complete_queued(self, request_id: str) -> None:
        assert self.gateway is not None
        self.gateway.complete(request_id)
        self._apply_outcomes()

    def _apply_outcomes(self) -> None:
        """Apply the gateway's outcomes in order.  Re-entrant calls (a dispatch that fails at once
        completes, which may dispatch again) only queue more outcomes for the outer loop."""
        if self._applying:
            return
        self._applying = True
        try:
            outcomes = self._outcomes
            while outcomes:
                o = outcomes.popleft()
                i = int(o.request_id[1:])
                if type(o) is Dispatched:
                    self._start(i, o.server_id, o.at)
                else:
                    self._end(i, o.at, _TIMED_OUT if type(o) is TimedOut else _CANCELLED if type(o) is Cancelled else _THROTTLED)
        finally:
            self._applying = False

    def _schedule_deadline(self) -> None:
        """Make sure an event is due at the queue's next deadline (deadlines only move later)."""
        assert self.gateway is not None
        deadline = self.gateway.next_deadline()
        if deadline is not None and (self._deadline_at is None or deadline < self._deadline_at):
            self.queue.push(deadline, DEADLINE, 0)
            self._deadline_at = deadline

    def _on_deadline(self, t: float) -> None:
        assert self.gateway is not None
        if self._deadline_at is not None and t >= self._deadline_at:
            self._deadline_at = None
        self.gateway.expire()
        self._apply_outcomes()
        self._schedule_deadline()

    def _on_patience(self, i: int) -> None:
        """Request ``i``'s client gives up, if it is still waiting."""
        assert self.gateway is not None
        self.gateway.expire()  # a deadline at this very instant comes first
        self._apply_outcomes()
        if f"r{i}" in self.request_queue:  # type: ignore[operator]
            self.gateway.cancel(f"r{i}")
            self._apply_outcomes()

    def _cancel_stranded(self) -> None:
        """Nothing is left to happen: requests still waiting fit no server; their clients give up now."""
        if self.gateway is None or not len(self.request_queue):  # type: ignore[arg-type]
            return
        for rid in self.request_queue.waiting():  # type: ignore[attr-defined]
            self.gateway.cancel(rid)
        self._apply_outcomes()

    # -- servers ---------------------------------------------------------------

    def _schedule(self, srv: Server) -> None:
        """The server's next event may have moved: schedule it afresh (older ones go stale)."""
        srv.version += 1
        if srv.running:
            self.queue.push(srv.next_at, SERVER, srv.index, srv.version)

    def _reschedule(self, srv: Server) -> None:
        """:meth:`_schedule`, unless the server is hung (nothing on it progresses; its events stay stale)."""
        if srv.hung:
            srv.version += 1
        else:
            self._schedule(srv)

    def _on_server(self, k: int, version: int, t: float) -> None:
        srv = self.servers[k]
        if version != srv.version:
            return  # stale: the batch changed since this was scheduled
        for i in srv.step(t, self.decode, self.first_token):
            if self.observe is not None:
                self.observe(f"r{i}", latency=t - self.arrival[i])
            self.complete(f"r{i}")
            self._end(i, t, _COMPLETED)
        while srv.waiting and srv.running < srv.capacity:  # early binding: freed slots go to the server's own queue
            self._admit(srv.waiting.popleft(), srv, t)
        self._schedule(srv)

    # -- the timetable -----------------------------------------------------------

    def _lose(self, srv: Server, t: float) -> None:
        """Every request on ``srv`` (running, waiting, or stuck on a hang) ends ``CRASHED`` at ``t``."""
        for i in srv.crash(t):
            self.complete(f"r{i}")
            self._end(i, t, _CRASHED)
        srv.version += 1
        if self.kv is not None:
            self.kv.lost(srv.index, t)  # type: ignore[attr-defined]

    def _on_timetable(self, event: TimetableEvent, t: float) -> None:
        srv = self.by_id[event.server]
        if isinstance(event, Crash):
            if srv.up:
                self._lose(srv, t)
                if self.crash_detection is not None:
                    self.queue.push(t + self.crash_detection, DETECT, srv.index, srv.crashes)
        elif isinstance(event, Hang):
            if srv.up and not srv.hung:
                srv.advance(t)
                srv.hung = True
                srv.version += 1  # its scheduled progress goes stale: nothing moves until a restart
        elif isinstance(event, Slowdown):
            srv.set_factors(t, throttle=1.0 / event.factor)
            self._reschedule(srv)
        elif isinstance(event, FailFraction):
            srv.fail_fraction = event.fraction
        elif isinstance(event, GrayFailure):
            srv.fail_fraction = event.fraction
            srv.set_factors(t, throttle=1.0 / event.factor)
            self._reschedule(srv)
        elif isinstance(event, Recover):
            restart = not srv.up or srv.hung
            if srv.hung:
                self._lose(srv, t)  # the restart breaks the stuck connections
            if restart:
                srv.up = True
                self._begin_warmup(srv, t)
                if srv.removed_by_detection:
                    self._add(srv)
            srv.fail_fraction = 0.0
            srv.set_factors(t, throttle=1.0)
            self._schedule(srv)
        elif isinstance(event, AddServer):
            if srv.in_pool:
                raise ScenarioError(f"AddServer at {t} s: server {srv.server_id!r} is already in the pool; remove it first")
            self._begin_warmup(srv, t)
            self._add(srv)
        elif isinstance(event, RemoveServer):
            if srv.in_pool:  # else it is already out (drained, or removed by crash detection): nothing to do
                self.remove_server(srv.server_id)
                srv.in_pool = False
            srv.removed_by_detection = False  # the operator's decision: do not add it back on recovery

    # -- warm-up (cold start) ----------------------------------------------------

    def _begin_warmup(self, srv: Server, t: float) -> None:
        """A (re)started server serves at the cold-start speed, then ramps to full speed in steps."""
        srv.starts += 1
        cold = self.cold_start
        if cold is None:
            return
        srv.set_factors(t, warm=cold.speed_at(0))  # type: ignore[attr-defined]
        for step, at in enumerate(cold.step_times(), start=1):  # type: ignore[attr-defined]
            self.queue.push(t + at, WARM, srv.index, srv.starts * 4096 + step)

    def _on_warm(self, k: int, tag: int, t: float) -> None:
        """One step of a warm-up ramp (stale if the server restarted since)."""
        srv = self.servers[k]
        starts, step = divmod(tag, 4096)
        if starts != srv.starts or not srv.up:
            return
        srv.set_factors(t, warm=self.cold_start.speed_at(step))  # type: ignore[union-attr]
        self._reschedule(srv)

    def _end_hung(self) -> None:
        """Nothing else can happen: requests stuck on hung servers end ``HUNG`` at the last event's time."""
        for srv in self.servers:
            if srv.hung and srv.running:
                for i in srv.crash(self.now):
                    self.complete(f"r{i}")
                    self._end(i, self.now, _HUNG)
                srv.up, srv.crashes = True, srv.crashes - 1  # still hung, not crashed: only its requests ended
                srv.hung = True

    def _on_detect(self, k: int, crashes: int, t: float) -> None:
        """A health check notices a crash: take the server out of the pool."""
        srv = self.servers[k]
        if not srv.up and srv.crashes == crashes and srv.in_pool:
            self.remove_server(srv.server_id)
            srv.in_pool = False
            srv.removed_by_detection = True

    def _add(self, srv: Server) -> None:
        self.add_server(srv.server_id, srv.capacity, srv.gpu_memory_gb)
        srv.in_pool = True
        srv.removed_by_detection = False
        if self.gateway is not None:
            self._apply_outcomes()  # the gateway filled the new server from the queue
