"""A scenario: everything a run needs except the balancer and the seed.

A :class:`Scenario` is a frozen, picklable description (a cluster, a
workload, a mode, an offered load, a timetable of faults, how wrong the
token estimates are), so the same scenario can run with any balancer, on
any seed, in another process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from solution.sim.cluster import ClassicMode, Cluster, LlmMode, ServerSpec, service_rate
from solution.sim.errors import ScenarioError
from solution.sim.faults import AddServer, Crash, FailFraction, GrayFailure, Hang, Recover, RemoveServer, Slowdown, TimetableEvent
from solution.sim.healthsim import ColdStart, HealthConfig
from solution.sim.kvcache import KvCacheConfig
from solution.sim.queueing import QueueConfig
from solution.sim.trace import TraceWorkload
from solution.sim.validate import require_number
from solution.sim.workload import Workload

__all__ = ["Scenario", "EstimateError"]

_EVENT_TYPES = (Crash, Hang, GrayFailure, Slowdown, FailFraction, Recover, AddServer, RemoveServer)


@dataclass(frozen=True)
class EstimateError:
    """How far ``estimated_tokens`` (what the balancer sees) is from the truth.

    The gateway tokenizes the prompt, so it knows the prompt length; it must
    guess the output length.  The estimate is
    ``prompt + round(output * exp(bias + sigma * Z))`` with Z standard normal,
    and at least 1.  ``sigma=0, bias=0`` (the default) is exact; ``sigma=0.5``
    is typical of a length predictor; ``bias=log(4)`` mimics a gateway that
    uses a generous ``max_tokens``.
    """

    sigma: float = 0.0
    bias: float = 0.0

    def __post_init__(self) -> None:
        require_number(self.sigma, "sigma", strict=False)
        require_number(self.bias, "bias", minimum=-math.inf, strict=False)

    def apply(self, prompt: np.ndarray, output: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The estimates, as int64.  O(n)."""
        factor = np.exp(self.bias + self.sigma * rng.standard_normal(len(output))) if self.sigma else math.exp(self.bias)
        return np.maximum(prompt + np.rint(output * factor).astype(np.int64), 1)


@dataclass(frozen=True)
class Scenario:
    """What to simulate.

    Args:
        cluster: the servers present at time 0.
        workload: a :class:`~solution.sim.workload.Workload` or a
            :class:`~solution.sim.trace.TraceWorkload`.
        mode: :class:`~solution.sim.cluster.LlmMode` (default) or
            :class:`~solution.sim.cluster.ClassicMode`.
        load: offered load per server, or ``None`` to keep the arrival
            process's own rate.  The arrival rate becomes
            ``load * sum(service_rate(server))`` over the servers present at
            time 0, where a server's service rate is what it completes with a
            full batch (:func:`~solution.sim.cluster.service_rate`).  In classic
            mode with capacity 1 and c servers the offered load is ``a = load * c``
            erlangs.  Not allowed with a trace (use its ``time_scale``).
        timetable: faults and operator actions (:mod:`solution.sim.faults`).
        estimate: the error of ``estimated_tokens``.
        crash_detection: ``None`` (stage 1: nobody notices a crash, the
            balancer keeps routing to the dead server) or the seconds after
            which the gateway removes a crashed server (it adds it back when
            it recovers).
        name: a label for tables and plots.
        queue: ``None`` (stage 1: a request that finds no free slot is
            rejected) or a :class:`~solution.sim.queueing.QueueConfig`: the
            gateway queues it (stage 2): *late binding*.
        early_binding: ``True`` lets each server keep its own FIFO of
            requests beyond its running batch, as vLLM's scheduler does: a
            request the balancer places on a full server waits there and
            joins the batch when a slot frees (stage 3).  Only a balancer
            that routes past capacity uses it
            (``solution.core.routing.Router(queue_per_server=None)``).
        cold_start: ``None`` (a started server serves at full speed at once)
            or a :class:`~solution.sim.healthsim.ColdStart`: a server added
            by the timetable, or restarted after a crash or a hang, serves
            slower for its first seconds (the initial fleet starts warm).
        health: ``None`` (no health checks: the balancer is called directly)
            or a :class:`~solution.sim.healthsim.HealthConfig`: the run goes
            through the stage-4 request path (probes, outlier detection,
            re-route); the balancer must then be a stage-3 ``Router``.
        kv_cache: ``None`` (no prefix cache: every request prefills its
            whole prompt) or a :class:`~solution.sim.kvcache.KvCacheConfig`:
            each server keeps an LRU cache of prefix blocks, and a request
            whose prompt starts with cached blocks skips their prefill
            (stage 5; LLM mode, a workload with prefix blocks).
    """

    cluster: Cluster
    workload: Workload | TraceWorkload
    mode: LlmMode | ClassicMode = field(default_factory=LlmMode)
    load: float | None = None
    timetable: tuple[TimetableEvent, ...] = ()
    estimate: EstimateError = field(default_factory=EstimateError)
    crash_detection: float | None = None
    name: str = "custom"
    queue: QueueConfig | None = None
    early_binding: bool = False
    cold_start: ColdStart | None = None
    health: HealthConfig | None = None
    kv_cache: KvCacheConfig | None = None

    def __post_init__(self) -> None:
        if self.kv_cache is not None:
            if not isinstance(self.kv_cache, KvCacheConfig):
                raise TypeError(f"kv_cache must be a KvCacheConfig or None, got {type(self.kv_cache).__name__}")
            if not isinstance(self.mode, LlmMode):
                raise ScenarioError("a KV prefix cache saves prefill tokens: it needs LlmMode (classic mode has no tokens)")
        if self.cold_start is not None and not isinstance(self.cold_start, ColdStart):
            raise TypeError(f"cold_start must be a ColdStart or None, got {type(self.cold_start).__name__}")
        if self.health is not None:
            if not isinstance(self.health, HealthConfig):
                raise TypeError(f"health must be a HealthConfig or None, got {type(self.health).__name__}")
            if self.queue is not None or self.early_binding:
                raise ScenarioError("health checking (stage 4) runs without a gateway queue and without early binding; "
                                    "drop queue= / early_binding= or health=")  # fmt: skip
        if not isinstance(self.early_binding, bool):
            raise TypeError(f"early_binding must be a bool, got {type(self.early_binding).__name__}")
        if self.early_binding and self.queue is not None:
            raise ScenarioError(
                "choose one place for the queue: late binding (queue=, at the gateway) or early binding "
                "(early_binding=True, at each server), not both"
            )
        if not isinstance(self.cluster, Cluster):
            raise TypeError(f"cluster must be a Cluster, got {type(self.cluster).__name__}")
        if not isinstance(self.workload, (Workload, TraceWorkload)):
            raise TypeError(f"workload must be a Workload or a TraceWorkload, got {type(self.workload).__name__}")
        if not isinstance(self.mode, (LlmMode, ClassicMode)):
            raise TypeError(f"mode must be LlmMode() or ClassicMode(), got {type(self.mode).__name__}")
        require_number(self.load, "load", none_ok=True)
        if self.load is not None and isinstance(self.workload, TraceWorkload):
            raise ValueError("a trace replay has its own arrival times: set its time_scale instead of a load")
        require_number(self.crash_detection, "crash_detection", strict=False, none_ok=True)
        if self.queue is not None:
            if not isinstance(self.queue, QueueConfig):
                raise TypeError(f"queue must be a QueueConfig or None, got {type(self.queue).__name__}")
            if isinstance(self.workload, Workload):
                tiers = {t.name for t in self.workload.tiers}
                unknown = [name for name, _ in self.queue.priorities if name not in tiers]  # type: ignore[misc]
                if unknown:
                    raise ScenarioError(f"the queue's priorities name tiers {unknown} that the workload lacks; its tiers: {sorted(tiers)}")
        object.__setattr__(self, "timetable", tuple(sorted(self.timetable, key=lambda e: e.at)))
        for event in self.timetable:
            if not isinstance(event, _EVENT_TYPES):
                raise TypeError(f"timetable entries must be fault or operator events, got {type(event).__name__}")
        self.server_specs()  # checks the timetable's server ids

    def server_specs(self) -> tuple[ServerSpec, ...]:
        """Every server the run may use: the cluster's, then those the timetable adds.

        Raises:
            ScenarioError (a ValueError): the timetable names an unknown
                server, or adds an id with a different spec.
        """
        specs = {s.server_id: s for s in self.cluster.servers}
        for event in self.timetable:
            if isinstance(event, AddServer):
                known = specs.setdefault(event.server, event.spec)
                if known != event.spec:
                    raise ScenarioError(f"server {event.server!r} is added with two different specs: {known} and {event.spec}")
            elif event.server not in specs:
                raise ScenarioError(
                    f"the timetable's {type(event).__name__} at {event.at} s names server {event.server!r}, "
                    f"which is neither in the cluster nor added by the timetable; known: {', '.join(specs)}"
                )
        return tuple(specs.values())

    def capacities(self) -> list[int]:
        """Each server's capacity (the spec's, or the mode's default for its GPU), in :meth:`server_specs` order."""
        return [spec.capacity or self.mode.default_capacity(spec.gpu_spec) for spec in self.server_specs()]

    def request_rate(self, prompt: np.ndarray, output: np.ndarray) -> float:
        """The arrival rate (requests/s) that makes ``load``, for requests with these token counts.

        ``load * sum(service_rate(server))`` over the cluster's servers (see
        the ``load`` argument).  O(n + S).
        """
        if self.load is None:
            raise ValueError("this scenario sets no load; its arrival process's rate applies")
        mean_prefill, mean_decode = self.mode.mean_steps(prompt, output)
        servers = zip(self.cluster.servers, self.capacities())
        return self.load * sum(
            service_rate(self.mode.server_model(spec.gpu_spec), cap, mean_prefill, mean_decode) for spec, cap in servers
        )

    def expected_duration(self) -> float:
        """Roughly how long the arrivals last (seconds): the last arrival known in advance
        (with sessions, the last session's start) in a seed-0 draw of the workload.

        Handy for placing faults at a fraction of the run.  O(n).
        """
        pilot = self.workload.generate(
            np.random.default_rng(0), np.random.default_rng(0), None if self.load is None else self.request_rate
        )
        return float(np.nanmax(pilot.arrival))

    def with_load(self, load: float) -> Scenario:
        """The same scenario at another offered load per server."""
        return replace(self, load=load)

    def with_queue(self, queue: QueueConfig | None) -> Scenario:
        """The same scenario with a queue at the gateway (``None``: without)."""
        return replace(self, queue=queue)

    def with_health(self, policy: object = None, *, active: bool = True, passive: bool = True, slow_start: bool = True,
                    reroute: bool = True, retry: object = None, **options: object) -> Scenario:  # fmt: skip
        """The same scenario with health checking on (see :class:`~solution.sim.healthsim.HealthConfig`).

        ``active=False, passive=False`` keeps the request path and re-route but no checker (the race's baseline).
        """
        config = HealthConfig(policy, retry, active=active, passive=passive, slow_start=slow_start, reroute=reroute, **options)  # type: ignore[arg-type]
        return replace(self, health=config)

    def with_kv_cache(self, capacity_blocks: int | None = None, *, block_tokens: int = 512) -> Scenario:
        """The same scenario with a KV prefix cache on every server (``capacity_blocks=None``: from the model and GPU)."""
        return replace(self, kv_cache=KvCacheConfig(capacity_blocks, block_tokens))

    def without_health(self) -> Scenario:
        """The same scenario with the balancer called directly (no request path, no checks, no re-route)."""
        return replace(self, health=None)

    def with_requests(self, requests: int) -> Scenario:
        """The same scenario with another number of requests (not for traces: use ``limit``)."""
        if not isinstance(self.workload, Workload):
            raise ValueError("a trace has a fixed number of requests; use TraceWorkload(limit=...)")
        return replace(self, workload=replace(self.workload, requests=requests))
