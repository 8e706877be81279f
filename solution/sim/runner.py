"""``simulate``: run one scenario with one balancer and one seed.

Randomness: one seed makes a :class:`numpy.random.SeedSequence`, spawned into
independent streams, one per purpose (token counts, arrival times, service
times, estimate errors, failure draws).  Everything random is drawn up front,
with numpy; the run itself is deterministic.  So the same seed gives the same
results bit for bit, and changing, say, the load leaves the token counts of
a seed unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from solution.sim.classic import run_classic
from solution.sim.cluster import ClassicMode
from solution.sim.engine import Engine
from solution.sim.results import Outcome, Results
from solution.sim.scenario import Scenario
from solution.sim.server import Server

__all__ = ["simulate", "BalancerFactory", "balancer_factory"]

#: A class or zero-argument callable that returns a fresh balancer.
BalancerFactory = Callable[[], Any]

_METHODS = ("add_server", "remove_server", "route_request", "complete_request", "get_server_stats")
_STREAMS = ("tokens", "arrivals", "service", "estimate", "failures")


def balancer_factory(balancer: BalancerFactory | None) -> BalancerFactory:
    """Check ``balancer`` is a class or factory (``None``: the reference ``solution.LoadBalancer``)."""
    if balancer is None:
        from solution import LoadBalancer

        return LoadBalancer
    if not callable(balancer) or (not isinstance(balancer, type) and hasattr(balancer, "route_request")):
        raise TypeError(
            f"balancer must be a class or a zero-argument factory such as solution.LoadBalancer, "
            f"not {type(balancer).__name__} instance: every run needs a fresh balancer"
        )
    return balancer


def simulate(
    scenario: Scenario,
    balancer: BalancerFactory | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
    engine: str = "auto",
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
            ``load_impl().LoadBalancer``); ``None`` for the reference.
        seed: an int >= 0; the same seed gives the same results bit for bit.
        progress: show a tqdm progress bar.
        engine: ``"auto"`` uses the classic fast path when it applies
            (classic mode without sharing, no timetable, no sessions); ``"general"`` forces
            the general engine (same results, slower).

    Raises:
        TypeError / ValueError: bad arguments.
        BalancerContractError (a RuntimeError): the balancer broke the contract.
    """
    factory = balancer_factory(balancer)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if engine not in ("auto", "general"):
        raise ValueError(f"engine must be 'auto' or 'general', got {engine!r}")
    rng = dict(zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(_STREAMS)))))
    mode = scenario.mode
    specs = scenario.server_specs()
    capacity = scenario.capacities()
    timing = [mode.timing(spec.gpu_spec) for spec in specs]
    initial = len(scenario.cluster.servers)  # the cluster's servers come first in specs
    requests = scenario.workload.generate(
        rng["tokens"], rng["arrivals"], None if scenario.load is None else scenario.request_rate
    )
    n = len(requests)
    prefill, decode = mode.steps(requests.prompt_tokens, requests.output_tokens, rng["service"])
    estimated = scenario.estimate.apply(requests.prompt_tokens, requests.output_tokens, rng["estimate"])
    fail_draw = rng["failures"].random(n)

    lb = factory()
    missing = [m for m in _METHODS if not callable(getattr(lb, m, None))]
    if missing:
        raise TypeError(f"the balancer {type(lb).__name__} lacks {', '.join(missing)}(); simulate needs the stage-1 interface")
    for spec, cap in zip(specs[:initial], capacity):
        lb.add_server(spec.server_id, cap, spec.gpu_spec.memory_gb)

    fast = (
        engine == "auto"
        and isinstance(mode, ClassicMode)
        and not mode.sharing
        and not scenario.timetable
        and not np.isnan(requests.arrival).any()
    )
    bar = tqdm(total=n, unit="req", disable=not progress, leave=False, desc=scenario.name)
    try:
        if fast:
            order = np.argsort(requests.arrival, kind="stable")
            chosen = np.full(n, -1, dtype=np.int32)
            chosen[order] = run_classic(
                lb, [s.server_id for s in specs], capacity, requests.arrival[order], prefill[order],
                estimated[order], bar.update,
            )
            arrival = requests.arrival
            routed = chosen >= 0
            end = arrival + prefill
            start = np.where(routed, arrival, np.nan)
            first_token = np.where(routed, end, np.nan)
            finish = np.where(routed, end, arrival)
            outcome = np.where(routed, Outcome.COMPLETED, Outcome.REJECTED).astype(np.int8)
        else:
            servers = [
                Server(k, spec.server_id, capacity[k], spec.gpu_spec.memory_gb, timing[k]) for k, spec in enumerate(specs)
            ]
            for srv in servers[:initial]:
                srv.in_pool = True
            run = Engine(
                lb, servers,
                arrival=requests.arrival.tolist(), estimated=estimated.tolist(), prefill=prefill.tolist(),
                decode=decode.tolist(), fail_draw=fail_draw.tolist(), think=requests.think.tolist(),
                next_turn=requests.next_turn().tolist(), timetable=scenario.timetable,
                crash_detection=scenario.crash_detection, progress=bar.update,
            )  # fmt: skip
            run.run()
            arrival = np.array(run.arrival)
            start, first_token, finish = np.array(run.start), np.array(run.first_token), np.array(run.finish)
            chosen = np.array(run.server, dtype=np.int32)
            outcome = np.array(run.outcome, dtype=np.int8)
    finally:
        bar.close()
    return Results(
        scenario=scenario.name,
        seed=seed,
        server_ids=tuple(s.server_id for s in specs),
        capacity=np.array(capacity, dtype=np.int64),
        arrival=arrival,
        start=start,
        first_token=first_token,
        finish=finish,
        server=chosen,
        outcome=outcome,
        prompt_tokens=requests.prompt_tokens.astype(np.int32),
        output_tokens=requests.output_tokens.astype(np.int32),
        estimated_tokens=estimated.astype(np.int32),
        tier=requests.tier,
        tier_names=requests.tier_names,
        session=requests.session.astype(np.int32),
        mode="classic" if isinstance(mode, ClassicMode) else "llm",
    )
