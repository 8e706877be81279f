"""``simulate``: run one scenario with one balancer and one seed.

Randomness: one seed makes a :class:`numpy.random.SeedSequence`, spawned into
independent streams, one per purpose (token counts, arrival times, service
times, estimate errors, failure draws).  Everything random is drawn up front
by :func:`prepare`, with numpy; the run itself is deterministic.  So the same
seed gives the same results bit for bit, and changing, say, the load leaves
the token counts of a seed unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from solution.sim.classic import run_classic
from solution.sim.cluster import ClassicMode, LlmMode
from solution.sim.engine import Engine
from solution.sim.results import Outcome, Results
from solution.sim.scenario import Scenario
from solution.sim.server import Server
from solution.sim.workload import Requests

__all__ = ["simulate", "prepare", "Inputs", "SimClock", "BalancerFactory", "balancer_factory", "default_balancer", "QueueFactory", "queue_factory",
           "default_queue"]  # fmt: skip

#: A class or zero-argument callable that returns a fresh balancer.
BalancerFactory = Callable[[], Any]
#: A stage-2 queue class, or a callable ``(clock, policy) -> queue``.
QueueFactory = Callable[..., Any]

_METHODS = ("add_server", "remove_server", "route_request", "complete_request", "get_server_stats")
_STREAMS = ("tokens", "arrivals", "service", "estimate", "failures", "patience")


def _fresh(factory: Any, what: str, method: str, example: str, default: Callable[[], Any]) -> Any:
    """``factory`` if it is a class or factory, not an instance (recognised by ``method``); ``default()`` for ``None``."""
    if factory is None:
        return default()
    if not callable(factory) or (not isinstance(factory, type) and hasattr(factory, method)):
        raise TypeError(
            f"{what} must be a class or a factory such as {example}, "
            f"not {type(factory).__name__} instance: every run needs a fresh {what}"
        )
    return factory


def default_balancer() -> BalancerFactory:
    """The balancer ``simulate`` uses when given none: the reference ``solution.LoadBalancer``.

    The candidate's bundle has no reference: there it is a round-robin
    :class:`~solution.core.routing.Router`, a baseline that gives no answer
    away.  Any rule that takes a free server when there is one gives the same
    losses on identical servers, so the Erlang B comparisons hold with it.
    """
    from solution.core.impl import reference_available

    if reference_available():
        from solution.balancer import LoadBalancer

        return LoadBalancer
    from solution.core.routing import RoundRobin, RouterFactory

    return RouterFactory(RoundRobin)


def default_queue() -> QueueFactory:
    """The queue ``simulate`` uses when given none: the reference ``solution.RequestQueue``
    (the candidate's ``exercises.RequestQueue`` in the candidate's bundle, which has no reference)."""
    from solution.core.impl import load_impl, reference_available

    if reference_available():
        from solution.request_queue import RequestQueue

        return RequestQueue
    return load_impl("exercises").RequestQueue


def balancer_factory(balancer: BalancerFactory | None) -> BalancerFactory:
    """Check ``balancer`` is a class or zero-argument factory (``None``: :func:`default_balancer`)."""
    return _fresh(balancer, "balancer", "route_request", "solution.LoadBalancer", default_balancer)


def queue_factory(queue: QueueFactory | None) -> QueueFactory:
    """Check ``queue`` is a class or factory ``(clock, policy) -> queue`` (``None``: :func:`default_queue`)."""
    return _fresh(queue, "queue", "enqueue", "solution.RequestQueue", default_queue)


class SimClock:
    """The simulated time, as a clock for components that read one (``clock()`` returns seconds).

    A strategy that needs "now" (session affinity's idle TTL) takes a
    zero-argument clock; in a simulation it must read the *simulated* time.
    Build the strategy with a ``SimClock`` and pass the same clock to
    :func:`simulate` (``simulate(..., clock=clock)``): the run binds it to its
    engine, so ``clock()`` is the time of the event being handled.  Before
    any run, and after, it reads the last bound run's time (0 before any).
    """

    __slots__ = ("_engine",)

    def __init__(self) -> None:
        self._engine: Any = None

    def bind(self, engine: Any) -> None:
        """Read ``engine.now`` from now on."""
        self._engine = engine

    def __call__(self) -> float:
        engine = self._engine
        return 0.0 if engine is None else engine.now


def _stage5(scenario: Scenario, inputs: Inputs) -> dict[str, Any]:
    """The engine's stage-5 arguments: session keys and prefix blocks (when the workload has them), the KV caches."""
    req = inputs.requests
    options: dict[str, Any] = {}
    if req.session_key is not None:
        options["session_keys"] = req.session_key.tolist()
    if req.has_blocks:
        options["blocks"] = req.block_tuples()
    config = scenario.kv_cache
    if config is not None:
        from solution.sim.kvcache import PrefixCache, ServerCaches

        if not req.has_blocks:
            raise ValueError("a KV prefix cache needs requests with prefix blocks: use a Sessions workload or a Mooncake trace "
                             "(solution.sim.mooncake), or drop kv_cache")  # fmt: skip
        model = scenario.mode.model if isinstance(scenario.mode, LlmMode) else None
        caches = [PrefixCache(config.capacity_for(model, spec.gpu_spec), config.block_tokens) for spec in scenario.server_specs()]
        options["kv"] = ServerCaches(caches, options["blocks"], req.prompt_tokens.tolist())
    return options


@dataclass(frozen=True, eq=False)
class Inputs:
    """Everything random about a run, drawn from its seed before it starts.

    ``prefill`` and ``decode`` are each request's work (LLM mode: prompt
    tokens, and decode iterations, i.e. output tokens after the first;
    classic mode: the service time in seconds, and 0); ``estimated`` is what
    the balancer is told; ``fail_draw`` is compared with a failing server's
    fraction; ``patience`` is how long each client waits in a queue before
    giving up (``None`` when clients never do).
    """

    requests: Requests
    capacity: list[int]
    prefill: np.ndarray
    decode: np.ndarray
    estimated: np.ndarray
    fail_draw: np.ndarray
    patience: np.ndarray | None = None


def prepare(scenario: Scenario, seed: int) -> Inputs:
    """Draw a run's random inputs from ``seed``.  O(n) numpy work."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    streams = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    rng = {name: np.random.default_rng(s) for name, s in zip(_STREAMS, streams)}
    rate = None if scenario.load is None else scenario.request_rate
    requests = scenario.workload.generate(rng["tokens"], rng["arrivals"], rate)
    prefill, decode = scenario.mode.steps(requests.prompt_tokens, requests.output_tokens, rng["service"])
    mode = scenario.mode
    if isinstance(mode, ClassicMode) and mode.sized:
        estimated = mode.sized_estimates(prefill)
    else:
        estimated = scenario.estimate.apply(requests.prompt_tokens, requests.output_tokens, rng["estimate"])
    fail_draw = rng["failures"].random(len(requests))
    patience = None
    if scenario.queue is not None and scenario.queue.patience is not None:
        patience = rng["patience"].exponential(scenario.queue.patience, len(requests))
    return Inputs(requests, scenario.capacities(), prefill, decode, estimated, fail_draw, patience)


def simulate(
    scenario: Scenario,
    balancer: BalancerFactory | None = None,
    *,
    queue: QueueFactory | None = None,
    seed: int = 0,
    progress: bool = False,
    engine: str = "auto",
    health: Any = None,
    clock: SimClock | None = None,
) -> Results:
    """Run ``scenario`` once and return the per-request :class:`Results`.

    >>> from solution.sim import scenarios
    >>> res = simulate(scenarios.classic(servers=4, load=0.75, requests=2_000), seed=1)
    >>> len(res), res.count(Outcome.REJECTED) > 0
    (2000, True)

    Args:
        scenario: what to run.
        balancer: the implementation under test, as a class or factory
            (``solution.LoadBalancer``, ``exercises.LoadBalancer``,
            ``load_impl().LoadBalancer``); ``None`` for the reference
            (:func:`default_balancer`).
        queue: with a ``scenario.queue``, the stage-2 queue class
            (``solution.RequestQueue``, ``exercises.RequestQueue``; ``None``
            for the reference, :func:`default_queue`); unused without one.
        seed: an int >= 0; the same seed gives the same results bit for bit.
        progress: show a tqdm progress bar.
        engine: ``"auto"`` uses the classic fast path when it applies
            (classic mode without sharing, no timetable, no sessions, no queue);
            ``"general"`` forces the general engine (same results, slower).
        health: with a ``scenario.health``, the stage-4 implementation: a
            module or namespace with ``HealthChecker`` and ``RetryLedger``
            (``None``: the reference, or the candidate's ``exercises`` in the
            candidate's bundle); unused without one.  With
            ``scenario.health.retrier`` its ``Retrier`` too, if it has one
            (else the reference's, or the candidate's in their bundle).
        clock: a :class:`SimClock` the balancer's strategy reads (session
            affinity's TTL); the run binds it to the simulated time.

    Raises:
        TypeError / ValueError: bad arguments.
        BalancerContractError (a RuntimeError): the balancer broke the contract.
    """
    factory = balancer_factory(balancer)
    make_queue = queue_factory(queue) if scenario.queue is not None else None
    if engine not in ("auto", "general"):
        raise ValueError(f"engine must be 'auto' or 'general', got {engine!r}")
    if clock is not None and not isinstance(clock, SimClock):
        raise TypeError(f"clock must be a SimClock (the simulated time), got {type(clock).__name__}")
    inputs = prepare(scenario, seed)
    stage5 = _stage5(scenario, inputs)
    if clock is not None:
        stage5["clock"] = clock
    specs = scenario.server_specs()
    initial = len(scenario.cluster.servers)  # the cluster's servers come first in specs
    lb = factory()
    missing = [m for m in _METHODS if not callable(getattr(lb, m, None))]
    if missing:
        raise TypeError(f"the balancer {type(lb).__name__} lacks {', '.join(missing)}(); simulate needs the stage-1 interface")
    if scenario.health is not None:
        return _run_health(scenario, lb, inputs, seed, health, progress, stage5)
    for spec, cap in zip(specs[:initial], inputs.capacity):
        lb.add_server(spec.server_id, cap, spec.gpu_spec.memory_gb)

    mode = scenario.mode
    fast = (
        engine == "auto"
        and isinstance(mode, ClassicMode)
        and not mode.sharing
        and not scenario.timetable
        and not np.isnan(inputs.requests.arrival).any()
        and make_queue is None
        and not scenario.early_binding
        and scenario.cold_start is None
        and not stage5
    )
    with tqdm(total=len(inputs.requests), unit="req", disable=not progress, leave=False, desc=scenario.name) as bar:
        run = _run_fast if fast else partial(_run_general, queue=make_queue, stage5=stage5)
        arrival, start, first_token, finish, chosen, outcome = run(lb, scenario, inputs, bar.update)
    req = inputs.requests
    return Results(
        scenario=scenario.name,
        seed=seed,
        server_ids=tuple(s.server_id for s in specs),
        capacity=np.array(inputs.capacity, dtype=np.int64),
        arrival=arrival,
        start=start,
        first_token=first_token,
        finish=finish,
        server=chosen,
        outcome=outcome,
        prompt_tokens=req.prompt_tokens.astype(np.int32),
        output_tokens=req.output_tokens.astype(np.int32),
        estimated_tokens=inputs.estimated.astype(np.int32),
        tier=req.tier,
        tier_names=req.tier_names,
        session=req.session.astype(np.int32),
        mode="classic" if isinstance(mode, ClassicMode) else "llm",
        queueing="" if scenario.queue is None else scenario.queue.policy.ordering.value,
        cache=stage5["kv"].log() if "kv" in stage5 else None,
    )


_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _run_fast(lb: Any, scenario: Scenario, inputs: Inputs, progress: Callable[[int], Any]) -> _Arrays:
    """Classic mode: departures are arrival + service (see :mod:`solution.sim.classic`)."""
    arrival, service = inputs.requests.arrival, inputs.prefill
    order = np.argsort(arrival, kind="stable")
    chosen = np.full(len(arrival), -1, dtype=np.int32)
    ids = [s.server_id for s in scenario.server_specs()]
    chosen[order] = run_classic(lb, ids, inputs.capacity, arrival[order], service[order], inputs.estimated[order], progress)
    routed = chosen >= 0
    end = arrival + service
    outcome = np.where(routed, Outcome.COMPLETED, Outcome.REJECTED).astype(np.int8)
    return arrival, np.where(routed, arrival, np.nan), np.where(routed, end, np.nan), np.where(routed, end, arrival), chosen, outcome


def _health_impl(health: Any) -> Any:
    """The stage-4 classes: ``health`` if given, else the reference's ``solution.health`` (the candidate's in their bundle)."""
    if health is not None:
        return health
    from solution.core.impl import load_impl, reference_available

    if reference_available():
        import solution.health as reference

        return reference
    return load_impl("exercises")


def _retrier_class(impl: Any) -> Any:
    """Stage 8's ``Retrier``: ``impl``'s if it has one, else the reference's (the candidate's in their bundle)."""
    if hasattr(impl, "Retrier"):
        return impl.Retrier
    from solution.core.impl import load_impl, reference_available

    if reference_available():
        from solution.retry import Retrier

        return Retrier
    return load_impl("exercises").Retrier


def _servers(scenario: Scenario, inputs: Inputs) -> list[Server]:
    specs = scenario.server_specs()
    servers = [
        Server(k, spec.server_id, inputs.capacity[k], spec.gpu_spec.memory_gb, scenario.mode.server_model(spec.gpu_spec))
        for k, spec in enumerate(specs)
    ]
    for srv in servers[: len(scenario.cluster.servers)]:
        srv.in_pool = True
    return servers


def _run_health(scenario: Scenario, lb: Any, inputs: Inputs, seed: int, health: Any, progress: bool,
                stage5: dict[str, Any] | None = None) -> Results:  # fmt: skip
    """A run with health checking: the :class:`~solution.sim.healthsim.HealthEngine` drives a ``RequestPath``."""
    from solution.core.path import RequestPath
    from solution.core.routing import Router
    from solution.sim.healthsim import HealthEngine

    if not isinstance(lb, Router):
        raise TypeError(f"a scenario with health checking needs a stage-3 Router as its balancer (e.g. RouterFactory(LeastConnections)), "
                        f"got {type(lb).__name__}")  # fmt: skip
    config = scenario.health
    assert config is not None
    impl = _health_impl(health)
    checker = impl.HealthChecker(config.health_policy(), seed=seed) if config.checks else None
    ledger = impl.RetryLedger(config.retry_policy()) if config.reroute else None
    retrier_policy = config.retrier_policy()
    retrier = None if retrier_policy is None else _retrier_class(impl)(retrier_policy, seed=seed)
    req = inputs.requests
    stage5 = dict(stage5 or {})
    clock = stage5.pop("clock", None)
    run = HealthEngine(
        lb, _servers(scenario, inputs), health=config, checker=checker, ledger=ledger, path_class=RequestPath, seed=seed,
        retrier=retrier, **stage5,
        arrival=req.arrival.tolist(), estimated=inputs.estimated.tolist(),
        prompt=req.prompt_tokens.tolist() if isinstance(scenario.mode, LlmMode) else None,
        prefill=inputs.prefill.tolist(), decode=inputs.decode.tolist(), fail_draw=inputs.fail_draw.tolist(),
        think=req.think.tolist(), next_turn=req.next_turn().tolist(), timetable=scenario.timetable,
        cold_start=scenario.cold_start,
    )  # fmt: skip
    if clock is not None:
        clock.bind(run)
    run.run()
    mode = scenario.mode
    return Results(
        scenario=scenario.name, seed=seed, server_ids=tuple(s.server_id for s in scenario.server_specs()),
        capacity=np.array(inputs.capacity, dtype=np.int64), arrival=np.array(run.arrival), start=np.array(run.start),
        first_token=np.array(run.first_token), finish=np.array(run.finish), server=np.array(run.server, dtype=np.int32),
        outcome=np.array(run.outcome, dtype=np.int8), prompt_tokens=req.prompt_tokens.astype(np.int32),
        output_tokens=req.output_tokens.astype(np.int32), estimated_tokens=inputs.estimated.astype(np.int32),
        tier=req.tier, tier_names=req.tier_names, session=req.session.astype(np.int32),
        mode="classic" if isinstance(mode, ClassicMode) else "llm",
        tries=np.array(run.tries, dtype=np.int16), late=np.array(run.late, dtype=np.int16),
        wasted=np.array(run.wasted(), dtype=np.float64), history=run.history(), health=run.log(),
        cache=run.kv.log() if run.kv is not None else None,
    )  # fmt: skip


def _run_general(lb: Any, scenario: Scenario, inputs: Inputs, progress: Callable[[int], Any],
                 queue: QueueFactory | None = None, stage5: dict[str, Any] | None = None) -> _Arrays:  # fmt: skip
    """Any scenario: the event loop of :mod:`solution.sim.engine` (with the stage-2 gateway when ``queue`` is given)."""
    servers = _servers(scenario, inputs)
    req = inputs.requests
    stage5 = dict(stage5 or {})
    clock = stage5.pop("clock", None)
    run = Engine(
        lb, servers,
        arrival=req.arrival.tolist(), estimated=inputs.estimated.tolist(),
        prompt=req.prompt_tokens.tolist() if isinstance(scenario.mode, LlmMode) else None,  # classic mode has no prompt
        prefill=inputs.prefill.tolist(),
        decode=inputs.decode.tolist(), fail_draw=inputs.fail_draw.tolist(), think=req.think.tolist(),
        next_turn=req.next_turn().tolist(), timetable=scenario.timetable,
        crash_detection=scenario.crash_detection, progress=progress, early_binding=scenario.early_binding,
        cold_start=scenario.cold_start, **stage5,
        **_queue_options(scenario, inputs, queue),
    )  # fmt: skip
    if clock is not None:
        clock.bind(run)
    run.run()
    return (
        np.array(run.arrival), np.array(run.start), np.array(run.first_token), np.array(run.finish),
        np.array(run.server, dtype=np.int32), np.array(run.outcome, dtype=np.int8),
    )  # fmt: skip


def _queue_options(scenario: Scenario, inputs: Inputs, queue: QueueFactory | None) -> dict[str, Any]:
    """The engine's stage-2 arguments: the queue class, its policy, each request's priority and patience."""
    if queue is None or scenario.queue is None:
        return {}
    req = inputs.requests
    return {
        "queue": queue,
        "policy": scenario.queue.policy,
        "priority": scenario.queue.request_priorities(req.tier, req.tier_names),
        "patience": None if inputs.patience is None else inputs.patience.tolist(),
    }
