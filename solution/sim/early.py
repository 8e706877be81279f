"""Early binding in classic mode: every server keeps its own FIFO queue beyond its running slots.

With late binding (the rest of the simulator, and stage 2's queue at the
gateway) a server never holds more than ``capacity`` requests; the balancer
rejects or queues the rest.  With early binding a server accepts every
request it is sent into its own waiting line, as vLLM's scheduler does, and
the balancer's choice is final.  In classic mode (exponential service, no
sharing) with capacity 1 and Poisson arrivals, routing each request to the
shortest of d sampled queues is Mitzenmacher's *supermarket model*
(:func:`solution.sim.theory.supermarket_mean_time`).

The balancer must accept requests beyond a server's capacity:
``solution.core.routing.Router(..., queue_per_server=None)``.  It is told of a
request's end with ``complete_request`` when the request *departs*, so the
load it sees is the number in the server's system (queue plus service).

Exact for the model, and fast: a FIFO server with c slots starts each request at
``max(arrival, earliest free slot)``, so departures are computed as requests
are routed; the loop only merges arrivals with a heap of pending
departures (departures first at equal times, as in the engine).  O(n log n).
"""

from __future__ import annotations

from heapq import heappop, heappush, heapreplace

import numpy as np

from solution.core.request import Request
from solution.sim.cluster import ClassicMode
from solution.sim.engine import contract_error
from solution.sim.results import Outcome, Results
from solution.sim.runner import BalancerFactory, balancer_factory, prepare
from solution.sim.scenario import Scenario

__all__ = ["simulate_early"]


def simulate_early(scenario: Scenario, balancer: BalancerFactory | None = None, *, seed: int = 0) -> Results:
    """Run a classic-mode scenario with early binding; return per-request :class:`Results`.

    ``start`` is when service began (after the wait in the server's queue),
    ``finish`` the departure; ``e2e`` is the time in system.  A request the
    balancer refuses (``RuntimeError``) is rejected.

    Raises:
        ValueError: the scenario is not classic mode without sharing, or has
            a timetable or sessions (not modelled with early binding).
        BalancerContractError (a RuntimeError): the answer names no server.
    """
    if not isinstance(scenario.mode, ClassicMode) or scenario.mode.sharing or scenario.timetable:
        raise ValueError("early binding is simulated in classic mode without sharing and without a timetable; "
                         "use scenarios.classic(...) (LLM-mode early binding is not modelled)")  # fmt: skip
    factory = balancer_factory(balancer)
    inputs = prepare(scenario, seed)
    arrival, service = inputs.requests.arrival, inputs.prefill
    if np.isnan(arrival).any():
        raise ValueError("early binding does not model sessions (their arrival times depend on the run)")
    specs = scenario.server_specs()
    lb = factory()
    for spec, cap in zip(specs, inputs.capacity):
        lb.add_server(spec.server_id, cap, spec.gpu_spec.memory_gb)
    index = {spec.server_id: k for k, spec in enumerate(specs)}
    free = [[0.0] * cap for cap in inputs.capacity]  # per server: a heap of slot free times
    n = len(arrival)
    order = np.argsort(arrival, kind="stable")
    start = np.full(n, np.nan)
    finish = arrival.copy()
    chosen = np.full(n, -1, dtype=np.int32)
    pending: list[tuple[float, int]] = []
    route, complete = lb.route_request, lb.complete_request
    record = getattr(lb, "route", None)  # the record-based entry point (stage 3 on): the prompt's length is known exactly
    prompts = inputs.requests.prompt_tokens.tolist()
    for i, t, tokens, work in zip(order.tolist(), arrival[order].tolist(), inputs.estimated[order].tolist(), service[order].tolist()):
        while pending and pending[0][0] <= t:
            complete(f"r{heappop(pending)[1]}")
        rid = f"r{i}"
        try:
            sid = record(Request(rid, tokens, min(prompts[i], tokens))) if callable(record) else route(rid, tokens)
        except (NotImplementedError, RecursionError):
            raise
        except RuntimeError:
            continue
        k = index.get(sid, -1)
        if k < 0:
            raise contract_error(rid, sid, "which is not the id of any server the simulator added")
        slots = free[k]
        begin = max(t, slots[0])
        end = begin + work
        heapreplace(slots, end)
        start[i], finish[i], chosen[i] = begin, end, k
        heappush(pending, (end, i))
    while pending:
        complete(f"r{heappop(pending)[1]}")
    routed = chosen >= 0
    req = inputs.requests
    return Results(
        scenario=scenario.name, seed=seed, server_ids=tuple(s.server_id for s in specs),
        capacity=np.array(inputs.capacity, dtype=np.int64), arrival=arrival, start=start,
        first_token=np.where(routed, finish, np.nan), finish=finish, server=chosen,
        outcome=np.where(routed, Outcome.COMPLETED, Outcome.REJECTED).astype(np.int8),
        prompt_tokens=req.prompt_tokens.astype(np.int32), output_tokens=req.output_tokens.astype(np.int32),
        estimated_tokens=inputs.estimated.astype(np.int32), tier=req.tier, tier_names=req.tier_names,
        session=req.session.astype(np.int32), mode="classic",
    )  # fmt: skip
