"""Stage 6 in the simulator: service tiers, tenants, 429s with Retry-After, and preemption, through the request path.

:func:`simulate_tiers` runs a :class:`~solution.sim.scenario.Scenario` through
a :class:`solution.core.path.RequestPath` built for one :class:`TierSetup`
(a tier table or none, rate limits, pools, preemption).  The engine,
:class:`TierEngine`, is stage 4's :class:`~solution.sim.healthsim.HealthEngine`
(every attempt of a request is a *job* on a server) with:

* **tiers and tenants**: request ``i`` carries ``Request.tier`` (its workload
  tier's name, the :class:`~solution.sim.workload.Tier` of the same name) and
  ``Request.tenant`` (``"<tier>-<k>"``, Zipf-popular: ``Tier.tenants``);
* **the queue**: the path's queue (one per service tier with a table),
  ``Queued`` / ``TimedOut`` handled; the engine counts the requests waiting
  per tier, for the idle-reserved-capacity figure;
* **429s** (a rate limit said no; ``Rejected`` with status 429 and a
  ``Retry-After`` in whole seconds): the simulated client sends the same
  request again ``retry_after`` seconds later, up to :class:`Clients`' number
  of retries for its tier (default: an interactive client retries **once**,
  then gives up; a batch client retries until admitted, up to 1,000 times),
  then it ends ``THROTTLED``.  Its latency counts from its first send: the
  wait for the bucket is part of what the client saw.  Any other rejection
  (no server and no queue room: 503) ends the request at once.
* **preemption** (``Preempted``): the victim's job leaves its server at once
  (:meth:`Server.remove`; the others keep their progress) and the request
  waits for the path to resume it (a later ``Dispatched``).  The resumed job
  pays, by :data:`RESUME_COSTS`:

  - ``"recompute"`` (vLLM's default): its KV cache was dropped, so it
    prefills its prompt plus every output token generated so far, then
    decodes the rest (classic mode: its service starts over);
  - ``"swap"``: its KV cache went to CPU memory and comes back:
    ``2 x kv_bytes_per_token x tokens / PCIe bandwidth`` seconds (out and
    in, charged before it re-enters the batch, one way at
    :attr:`GpuSpec.pcie_gb_s`), then it continues where it stopped; the path
    resumes it on the same server (on another one, when its server was lost
    or drained, it recomputes);
  - ``"resume"``: continues where it stopped, free (preemptive-resume
    priority of queueing theory: what :func:`solution.sim.theory.preemptive_mean_times` assumes).

  The first token a client saw is never "seen" twice: a resumed job's
  prefill does not move the request's TTFT.
* **records**: per job (:class:`~solution.sim.healthsim.HealthLog`'s
  ``try_*`` arrays, ``how == "preempted"`` for a paused one), per request the
  429s and preemptions, and :meth:`TierRun.timeline` (running, paused,
  resumed) for a plot.

Costs: per event as the health engine, plus O(S + T) for the idle-reserved
integral (S servers, T tiers) and O(b) per preemption (b: the victim's batch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solution.core.request import Request
from solution.sim.errors import BalancerContractError, SimulationError
from solution.sim.events import RETRY, SWAP_IN
from solution.sim.healthsim import HealthConfig, HealthEngine, HealthLog
from solution.sim.results import Outcome, Results
from solution.sim.server import Server
from solution.core.validate import require_int

__all__ = ["RESUME_COSTS", "Clients", "TierSetup", "TierEngine", "TierLog", "TierRun", "Segment", "simulate_tiers"]

#: How a preempted request pays when it resumes (see the module's docstring).
RESUME_COSTS = ("recompute", "swap", "resume")

_REJECTED = int(Outcome.REJECTED)
_TIMED_OUT, _THROTTLED, _CANCELLED = int(Outcome.TIMED_OUT), int(Outcome.THROTTLED), int(Outcome.CANCELLED)


@dataclass(frozen=True)
class Clients:
    """What a simulated client does with a 429: how many times it sends the request again, per tier.

    ``retries``: ``{tier name: retries}`` (a mapping or pairs); tiers not
    named retry ``default`` times.  Each retry waits the answer's
    ``Retry-After`` exactly.  The default: interactive clients retry once, a
    batch client (tier ``"batch"``) until admitted (up to 1,000 times).

    Raises:
        TypeError / ValueError: a count that is not an int >= 0, a name that is not a str.
    """

    retries: Mapping[str, int] | tuple[tuple[str, int], ...] = (("batch", 1000),)
    default: int = 1

    def __post_init__(self) -> None:
        pairs = tuple(self.retries.items()) if isinstance(self.retries, Mapping) else tuple(self.retries)
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
                raise TypeError(f"retries must map tier names to ints, got {pair!r}")
            require_int(pair[1], f"retries of tier {pair[0]!r}", minimum=0)
        object.__setattr__(self, "retries", pairs)
        require_int(self.default, "default", minimum=0)

    def for_tier(self, name: str | None) -> int:
        """Retries after a 429 for a request of tier ``name``.  O(T)."""
        return dict(self.retries).get(name or "", self.default)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class TierSetup:
    """What the request path runs with: a stage-6 policy of :mod:`solution.sim.tiersrace`'s ladder.

    Args:
        label: the name in tables.
        table: a ``TierTable`` (``None``: no tiers, one FIFO queue: every
            request alike, routed by stage 3's predictive rule).
        limits: admission with a ``RateLimiter`` on the table's limits (else
            admission only checks the tier).
        pools: ``{server id: pool label}`` (servers not named: ``"shared"``).
        preemption: ``None`` (off), or the ``Preemptor``'s mode ``"recompute"`` / ``"swap"``.
        resume: the simulator's :data:`RESUME_COSTS` (``None``: the preemption mode).
        max_preemptions: the ``Preemptor``'s bound per request.
        queue: the path's ``QueuePolicy`` (``None``: unbounded, no deadline).
    """

    label: str
    table: Any = None
    limits: bool = False
    pools: Mapping[str, str] = field(default_factory=dict)
    preemption: str | None = None
    resume: str | None = None
    max_preemptions: int = 2
    queue: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise ValueError("a TierSetup needs a non-empty label")
        if self.preemption not in (None, "recompute", "swap"):
            raise ValueError(f"preemption must be None, 'recompute' or 'swap', got {self.preemption!r}")
        if self.resume is not None and self.resume not in RESUME_COSTS:
            raise ValueError(f"resume must be one of {', '.join(RESUME_COSTS)} or None, got {self.resume!r}")
        if self.table is None and (self.limits or self.preemption or self.pools):
            raise ValueError("rate limits, pools and preemption need a tier table")
        require_int(self.max_preemptions, "max_preemptions", minimum=0)

    @property
    def resume_cost(self) -> str:
        """What a resumed request pays: ``resume``, else the preemption mode."""
        return self.resume or self.preemption or "recompute"


def _lib(impl: str | None) -> Any:
    """The stage-6 classes: ``impl``'s (``None``: the reference's, the candidate's in their bundle)."""
    from solution.core.impl import demo_impl, load_impl

    lib = demo_impl() if impl is None else load_impl(impl)
    if not hasattr(lib, "TierRouting"):
        import solution.tiers as lib  # noqa: F811  (an impl namespace from before stage 6)
    return lib


def build_path(setup: TierSetup, models: Mapping[str, Any], *, impl: str | None = None) -> tuple[Any, Any]:
    """``(router, path)`` for ``setup``: a fresh ``Router`` and ``RequestPath``.

    Without a table: ``Router(Predictive)`` and one FIFO queue.  With one:
    ``Router(TierRouting(table))`` (reservation, pools, SLA routing), the
    path's per-tier queues, ``TierAdmission`` (with a ``RateLimiter`` when
    ``setup.limits``) and a ``Preemptor`` when ``setup.preemption``.
    """
    from solution.core.path import RequestPath
    from solution.core.queue_types import QueuePolicy
    from solution.core.routing import Router

    policy = setup.queue if setup.queue is not None else QueuePolicy(max_depth=1_000_000, max_wait=None)
    if setup.table is None:
        from solution.core.impl import demo_impl

        router = Router(demo_impl().Predictive(), models=dict(models))
        return router, RequestPath(router, queue=policy)
    lib = _lib(impl)
    table = setup.table
    router = Router(lib.TierRouting(table), models=dict(models))
    limiter = lib.RateLimiter(table) if setup.limits else None
    preemptor = (lib.Preemptor(table, max_preemptions=setup.max_preemptions, mode=setup.preemption)
                 if setup.preemption else None)  # fmt: skip
    path = RequestPath(router, queue=policy, admission=lib.TierAdmission(table, limiter), tiers=table, preemptor=preemptor)
    return router, path


@dataclass(frozen=True)
class _Paused:
    """A preempted request between its pause and its resume."""

    prefilling: bool  # it had not reached its first token
    left: float  # work left in its phase (prompt tokens / classic seconds, or output tokens to go)
    generated: float  # output tokens the client already got
    server: int  # where it ran


class TierEngine(HealthEngine):
    """The health engine with stage 6: tiers, tenants, the path's queue, 429 retries, preemption (see the module).

    ``path`` is the ``RequestPath`` to drive (built by :func:`build_path`);
    ``tier_of`` / ``tenant_of``: each request's ``Request.tier`` /
    ``Request.tenant``; ``reserved_above[t][k]``: slots of server k reserved
    for tiers above tier index t (for the idle-reserved integral);
    ``usable[t][k]``: tier t may use server k (its pools);
    ``kv_bytes`` (bytes per token) and ``pcie`` (bytes per second, per server) price a swap.
    """

    def __init__(self, balancer: object, servers: Sequence[Server], *, path: Any, tier_of: list[str | None],
                 tenant_of: list[str | None], tier_index: list[int], clients: Clients, resume: str,
                 pools: Mapping[str, str], reserved_above: list[list[int]], usable: list[list[bool]],
                 kv_bytes: float = 0.0, pcie: Sequence[float] = (), **kwargs: Any) -> None:  # fmt: skip
        super().__init__(balancer, servers, health=HealthConfig(active=False, passive=False, reroute=False), checker=None,
                         ledger=None, path_class=lambda *a, **k: path, **kwargs)  # fmt: skip
        n = len(self.arrival)
        self.tier_of, self.tenant_of, self.tier_index = tier_of, tenant_of, tier_index
        self.retries_left = [clients.for_tier(t) for t in tier_of]
        self.resume = resume
        self.pools = dict(pools)
        self.kv_bytes = float(kv_bytes)
        self.pcie = list(pcie) or [math.inf] * len(self.servers)
        self.throttled = [0] * n  # 429s each request got
        self.too_large = 0
        self.preempted = [0] * n
        self.paused: dict[int, _Paused] = {}
        self.job_gen: list[float] = [0.0] * n  # output tokens already generated when the job started
        self.swapping: dict[int, tuple[int, _Paused]] = {}  # job -> (server index, its pause): swap-in under way
        self.pending = [0] * len(self.servers)  # swap-ins holding a slot, per server
        self.is_waiting = [False] * n
        tiers = max(tier_index, default=-1) + 1
        self.waiting = [0] * tiers
        self.reserved_above = reserved_above
        self.usable = usable
        self.idle_reserved = 0.0  # slot-seconds reserved for a higher tier, idle while a lower tier waited
        self._idle_now = 0.0
        self._idle_since = 0.0

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        for srv in self.servers:
            if srv.in_pool:
                pool = self.pools.get(srv.server_id)
                extra = {"pool": pool} if pool is not None and pool != "shared" else {}
                self._apply(self.path.add_server(srv.server_id, srv.capacity, srv.gpu_memory_gb, 0.0, warm=True, **extra))
        self._idle_since = 0.0
        super(HealthEngine, self).run()  # the engine's loop (servers are added above, with their pools)
        end = self.now
        self._account(end)
        for j, how in enumerate(self.job_how):
            if not how:
                self.job_how[j] = "stuck" if self.servers[self.job_srv[j]].hung else "abandoned"
                self.job_end[j] = end

    def _dispatch(self, event: tuple[float, int, int, int, int]) -> None:
        time, kind, _, a, b = event
        self._account(time)
        if kind == RETRY:
            self.now = time
            self._submit_request(a, time)
        elif kind == SWAP_IN:
            self.now = time
            self._swap_in(a, time)
        else:
            super()._dispatch(event)
        self._idle_now = self._idle()

    def _account(self, t: float) -> None:
        """Add the idle reserved slots since the last event to the integral.  O(1)."""
        if t > self._idle_since:
            self.idle_reserved += self._idle_now * (t - self._idle_since)
            self._idle_since = t

    def _idle(self) -> float:
        """Free slots reserved for (or pooled for) tiers above the highest tier with a request waiting.  O(S + T)."""
        waiting = self.waiting
        w = -1
        for t in range(len(waiting)):  # tier indices are in class order, highest first (see simulate_tiers)
            if waiting[t] > 0:
                w = t
                break
        if w < 0:
            return 0.0
        above, usable, pending = self.reserved_above[w], self.usable[w], self.pending
        idle = 0
        for k, srv in enumerate(self.servers):
            if not srv.in_pool:
                continue
            free = srv.capacity - srv.running - pending[k]
            if free > 0:
                idle += free if not usable[k] else min(free, above[k])
        return float(idle)

    # -- requests ------------------------------------------------------------------------

    def _arrive(self, i: int, t: float) -> None:
        self.now = t
        self._submit_request(i, t)

    def _submit_request(self, i: int, t: float) -> None:
        estimated = self.estimated[i]
        prompt = None if self.prompt is None else min(self.prompt[i], estimated)
        request = Request(f"r{i}", estimated, prompt, tier=self.tier_of[i], tenant=self.tenant_of[i])
        try:
            outcomes = self.path.submit(request, t)
        except ValueError as exc:  # RequestTooLargeError: bigger than a bucket can ever hold (HTTP 413): never admitted
            if type(exc).__name__ != "RequestTooLargeError":
                raise
            self.too_large += 1
            self._finish(i, t, _REJECTED)
            return
        self._apply(outcomes)
        self._schedule_health()

    def _set_waiting(self, i: int, on: bool) -> None:
        if self.is_waiting[i] != on:
            self.is_waiting[i] = on
            self.waiting[self.tier_index[i]] += 1 if on else -1

    def _on_outcome(self, o: Any) -> None:
        """One outcome of the path: the waiting count, 429 retries and preemption on top of the health engine's."""
        name = type(o).__name__
        i = int(o.request_id[1:])
        if name == "Dispatched":
            self._set_waiting(i, False)
            self._start_try(o)
        elif name == "Queued":
            self._set_waiting(i, True)
        elif name == "Preempted":
            self._preempt(i, o)
        elif name == "Rejected":
            self._rejected(i, o)
        elif name == "TimedOut":
            self._set_waiting(i, False)
            self._finish(i, o.at, _TIMED_OUT)
        elif name == "Cancelled":
            self._set_waiting(i, False)
            self._finish(i, o.at, _CANCELLED)
        elif name in ("Delivered", "Failed", "Discarded"):
            super()._on_outcome(o)
        else:
            raise SimulationError(f"the request path returned {name} ({o}), which the tier engine does not know")

    def _rejected(self, i: int, o: Any) -> None:
        if o.status == 429:
            self.throttled[i] += 1
            if self.retries_left[i] > 0:
                self.retries_left[i] -= 1
                self.queue.push(o.at + o.retry_after, RETRY, i)
                return
            self._finish(i, o.at, _THROTTLED)
            return
        self._finish(i, o.at, _REJECTED)

    def _preempt(self, i: int, o: Any) -> None:
        """Stop request ``i``'s job on its server at ``o.at``; remember how far it got.  O(b)."""
        j = self.current[i]
        srv = self.by_id[o.server_id]
        if self.job_srv[j] != srv.index or self.job_how[j]:
            raise SimulationError(f"the path preempted r{i} on {o.server_id!r}, where it is not running")
        t = o.at
        total_out = self.decode[i] + 1.0  # output tokens of the whole request (decode steps + the first)
        if j in self.swapping:  # preempted before its swap-in finished: nothing ran, it is where it was paused
            _, state = self.swapping.pop(j)
            self.pending[srv.index] -= 1
        else:
            prefilling, left = srv.remove(t, j)
            self._reschedule(srv)
            generated = self.job_gen[j] if prefilling else total_out - left
            if self.prompt is None:  # classic mode: no tokens; all the work is "prefill" seconds
                generated = 0.0
            state = _Paused(prefilling, left, generated, srv.index)
        self.paused[i] = state
        self.preempted[i] += 1
        self.job_end[j] = t
        self.job_how[j] = "preempted"
        self._set_waiting(i, True)

    def _resume_work(self, i: int, state: _Paused, srv: Server) -> tuple[float, float, float]:
        """``(prefill, decode, delay)`` of a resumed job (see :data:`RESUME_COSTS`).  O(1)."""
        prefill, decode = self.prefill[i], self.decode[i]
        classic = self.prompt is None
        # A swapped-out request resumes on its server; if the path sent it elsewhere (its server was lost or
        # drained), its KV cache is not there: it recomputes.
        if self.resume == "recompute" or (self.resume == "swap" and srv.index != state.server):
            if classic or state.generated <= 0:
                return prefill, decode, 0.0
            return prefill + state.generated, max(decode - state.generated, 0.0), 0.0
        if state.prefilling:
            work = (state.left, decode if state.generated <= 0 else max(decode - state.generated, 0.0))
            cached = prefill - state.left
        else:
            work = (0.0, state.left)
            cached = prefill + state.generated
        delay = 0.0
        if self.resume == "swap" and not classic:
            delay = 2.0 * self.kv_bytes * max(cached, 0.0) / self.pcie[srv.index]
        return work[0], work[1], delay

    def _start_try(self, o: Any) -> None:
        i = int(o.request_id[1:])
        srv = self._target(o)
        t = o.at
        state = self.paused.pop(i, None)
        delay = 0.0
        if self.current[i] == -1 and self.tries[i] == 0:
            j = i
        else:
            j = len(self.job_req)
            if state is not None:
                prefill, decode, delay = self._resume_work(i, state, srv)
            else:
                prefill, decode = self.prefill[i], self.decode[i]
            self.job_req.append(i)
            self.job_srv.append(-1)
            self.job_start.append(math.nan)
            self.job_end.append(math.nan)
            self.job_how.append("")
            list.append(self.job_first, math.nan)
            self.job_decode.append(decode)
            self.job_prefill.append(prefill)
            self.job_gen.append(state.generated if state is not None else 0.0)
        self.current[i] = j
        self.tries[i] += 1
        self.job_srv[j] = srv.index
        self.job_start[j] = t
        self.server[i] = srv.index
        if self.start[i] != self.start[i]:
            self.start[i] = t
        if srv.running + self.pending[srv.index] >= srv.capacity:
            raise BalancerContractError(f"the request path sent {o.request_id} to {o.server_id!r}, already running "
                                        f"{srv.running + self.pending[srv.index]} of {srv.capacity} requests")  # fmt: skip
        if delay > 0:
            assert state is not None  # only a resume has a swap-in
            self.swapping[j] = (srv.index, state)
            self.pending[srv.index] += 1
            self.queue.push(t + delay, SWAP_IN, j)
            return
        srv.admit(t, j, self.job_prefill[j])
        self._reschedule(srv)

    def _swap_in(self, j: int, t: float) -> None:
        entry = self.swapping.pop(j, None)
        if entry is None:  # preempted again while swapping in
            return
        k = entry[0]
        srv = self.servers[k]
        self.pending[k] -= 1
        srv.admit(t, j, self.job_prefill[j])
        self._reschedule(srv)

    def _on_first_token(self, j: int, t: float) -> None:
        i = self.job_req[j]
        if self.current[i] == j and self.outcome[i] == -1 and self.first_token[i] != self.first_token[i]:
            self.first_token[i] = t  # a resumed job's prefill is not a first token: the client had it already
            self.path.first_token(f"r{i}", t)

    def log(self) -> TierLog:  # type: ignore[override]
        """The run's :class:`TierLog` (after :meth:`run`)."""
        base = super().log()
        return TierLog(**{f: getattr(base, f) for f in base.__dataclass_fields__},
                       throttled=np.array(self.throttled, dtype=np.int64),
                       preempted=np.array(self.preempted, dtype=np.int64), idle_reserved=self.idle_reserved,
                       too_large=self.too_large)  # fmt: skip


@dataclass(frozen=True, eq=False)
class TierLog(HealthLog):
    """A tier run's records: the health log's (every job: ``try_*``), plus per request its 429s and preemptions.

    ``idle_reserved``: slot-seconds that were free but reserved for a
    higher tier (trunk reservation, or a pool the waiting tier may not use)
    while a request of a lower tier waited; ``too_large``: requests refused
    as bigger than a bucket can ever hold (413).
    """

    throttled: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    preempted: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    idle_reserved: float = 0.0
    too_large: int = 0


@dataclass(frozen=True)
class Segment:
    """One stretch of a request's life: ``kind`` is ``"waiting"``, ``"running"`` (on ``server``) or ``"paused"``."""

    kind: str
    start: float
    end: float
    server: int = -1


@dataclass(frozen=True, eq=False)
class TierRun:
    """One tier run: its :class:`Results` (``health`` is a :class:`TierLog`), the setup, each request's tenant."""

    setup: TierSetup
    results: Results
    tenant: np.ndarray  # int64, tenant index within its tier (-1: none)
    path_stats: Mapping[str, Any]

    @property
    def log(self) -> TierLog:
        return self.results.health  # type: ignore[return-value]

    def timeline(self, i: int) -> list[Segment]:
        """Request ``i``'s life: waiting (from its arrival), running on a server, paused (preempted), running again...

        Consecutive jobs of a request are its attempts; a ``"paused"``
        segment runs from a preemption to the next job's start (a swap-in's
        time counts as running: it holds its slot).  O(J) for J jobs.
        """
        log, res = self.log, self.results
        mine = np.nonzero(log.try_request == i)[0]
        out: list[Segment] = []
        t0 = float(res.arrival[i])
        if len(mine) == 0:
            return [Segment("waiting", t0, float(res.finish[i]))]
        first = float(log.try_start[mine[0]])
        if first > t0:
            out.append(Segment("waiting", t0, first))
        for n, j in enumerate(mine):
            out.append(Segment("running", float(log.try_start[j]), float(log.try_end[j]), int(log.try_server[j])))
            if log.try_how[j] == "preempted" and n + 1 < len(mine):
                out.append(Segment("paused", float(log.try_end[j]), float(log.try_start[mine[n + 1]])))
        return out


def simulate_tiers(scenario: Any, setup: TierSetup, *, seed: int = 0, clients: Clients | None = None,
                   impl: str | None = None, inputs: Any = None) -> TierRun:  # fmt: skip
    """Run ``scenario`` once through the request path set up as ``setup``; return a :class:`TierRun`.

    The same ``seed`` gives the same requests (arrivals, tokens, tiers,
    tenants) whatever the setup: common random numbers across a ladder.
    ``inputs``: :func:`~solution.sim.runner.prepare`'s result, to reuse.
    Without a table every request is one class; the ``Request`` still
    carries its tier and tenant (the path without tiers ignores them).

    Raises:
        TypeError: ``setup`` not a TierSetup, ``clients`` not a Clients.
        ValueError: a workload tier that the table does not know (with a
            table); a scenario with a timetable, health checking, a queue or
            a KV cache (a tier run has its own path and queue, no faults).
    """
    from solution.sim.cluster import LlmMode
    from solution.sim.race import latency_hints
    from solution.sim.runner import _servers, prepare

    if not isinstance(setup, TierSetup):
        raise TypeError(f"setup must be a TierSetup, got {type(setup).__name__}")
    if clients is not None and not isinstance(clients, Clients):
        raise TypeError(f"clients must be a Clients or None, got {type(clients).__name__}")
    if scenario.timetable or scenario.health is not None or scenario.queue is not None or scenario.kv_cache is not None:
        raise ValueError("a tier run has its own request path and queue, and no faults: drop the scenario's timetable, "
                         "health, queue and kv_cache")  # fmt: skip
    clients = clients or Clients()
    inputs = inputs if inputs is not None else prepare(scenario, seed)
    req = inputs.requests
    names = req.tier_names
    table = setup.table
    specs = scenario.server_specs()
    ids = [s.server_id for s in specs]
    # Tier indices in class order (highest first) for the idle integral; without a table: one class.
    if table is not None:
        order = [t.name for t in table.by_class]
        unknown = [n for n in names if n not in order]
        if unknown:
            raise ValueError(f"the workload's tiers {unknown} are not in the tier table ({', '.join(order)})")
        rank = {n: k for k, n in enumerate(order)}
        tier_index = [rank[names[t]] for t in req.tier.tolist()]
        reserved_above, usable = [], []
        caps = inputs.capacity
        for k, name in enumerate(order):
            me = table.tier(name)
            higher = [u for u in order[:k] if table.tier(u).queue_class > me.queue_class]
            reserved_above.append([sum(table.reserved_slots(u, c) for u in higher) for c in caps])
            usable.append([_may_use(me, setup.pools.get(sid, "shared")) for sid in ids])
    else:
        tier_index = [0] * len(req)
        reserved_above, usable = [[0] * len(ids)], [[True] * len(ids)]
    router, path = build_path(setup, latency_hints(scenario), impl=impl)
    mode = scenario.mode
    llm = isinstance(mode, LlmMode)
    kv_bytes = mode.model.kv_bytes_per_token if llm and mode.model is not None else 0.0
    pcie = [s.gpu_spec.pcie_gb_s * 1e9 for s in specs]
    tier_names = [names[t] for t in req.tier.tolist()]
    engine = TierEngine(
        router, _servers(scenario, inputs), path=path, tier_of=tier_names, tenant_of=req.tenant_names(),
        tier_index=tier_index, clients=clients, resume=setup.resume_cost, pools=setup.pools,
        reserved_above=reserved_above, usable=usable, kv_bytes=kv_bytes, pcie=pcie, seed=seed,
        arrival=req.arrival.tolist(), estimated=inputs.estimated.tolist(),
        prompt=req.prompt_tokens.tolist() if llm else None, prefill=inputs.prefill.tolist(),
        decode=inputs.decode.tolist(), fail_draw=[1.0] * len(req), think=req.think.tolist(),
        next_turn=req.next_turn().tolist(),
    )  # fmt: skip
    engine.run()
    res = Results(
        scenario=scenario.name, seed=seed, server_ids=tuple(ids), capacity=np.array(inputs.capacity, dtype=np.int64),
        arrival=np.array(engine.arrival), start=np.array(engine.start), first_token=np.array(engine.first_token),
        finish=np.array(engine.finish), server=np.array(engine.server, dtype=np.int32),
        outcome=np.array(engine.outcome, dtype=np.int8), prompt_tokens=req.prompt_tokens.astype(np.int32),
        output_tokens=req.output_tokens.astype(np.int32), estimated_tokens=inputs.estimated.astype(np.int32),
        tier=req.tier, tier_names=names, session=req.session.astype(np.int32),
        mode="llm" if llm else "classic", tries=np.array(engine.tries, dtype=np.int16),
        late=np.array(engine.late, dtype=np.int16), wasted=np.array(engine.wasted(), dtype=np.float64),
        history={}, health=engine.log(),
    )  # fmt: skip
    tenant = req.tenant if req.tenant is not None else np.full(len(req), -1, dtype=np.int64)
    stats = path.stats() if hasattr(path, "stats") else {}
    return TierRun(setup, res, tenant, dict(stats))


def _may_use(tier: Any, pool: str) -> bool:
    """A tier may use a server of ``pool``: its own pool, or the shared one (unless pinned without spill)."""
    if pool == "shared":
        return tier.pool is None or tier.pool == "shared" or bool(tier.spill)
    return tier.pool == pool
