"""The classic-mode fast path: the same simulation, specialised for speed.

When the mode is :class:`~solution.sim.cluster.ClassicMode`, every arrival
time is known in advance and the timetable is empty, a request's service
time does not depend on anything that happens during the run.  Its
departure is simply ``arrival + service``, computed for all requests at
once with numpy, and the loop only has to merge arrivals with a heap of
pending departures::

    for each arrival, in time order:
        complete_request() every departure due by now   (earliest first)
        route_request(); rejected -> lost; else push its departure

This is the engine's event order exactly (departures before arrivals at
equal times), and the results are the same bit for bit (a test checks it).
The inner loop avoids attribute lookups and keeps no per-request objects
beyond the heap entries in flight; inputs are converted to lists in chunks
to bound memory.  O(n log C) for n requests and C slots in total.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from heapq import heappop, heappush

import numpy as np

from solution.sim.engine import PROGRESS_EVERY, contract_error

__all__ = ["run_classic"]


def run_classic(
    balancer: object,
    server_ids: Sequence[str],
    capacity: Sequence[int],
    arrival: np.ndarray,
    service: np.ndarray,
    estimated: np.ndarray,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Run the loss system; return each request's server index (-1: rejected).

    ``arrival`` must be sorted.  ``estimated`` holds ints >= 1.
    """
    route = balancer.route_request  # type: ignore[attr-defined]
    complete = balancer.complete_request  # type: ignore[attr-defined]
    index = {sid: k for k, sid in enumerate(server_ids)}
    caps = list(capacity)
    running = [0] * len(caps)
    n = len(arrival)
    chosen = np.full(n, -1, dtype=np.int32)
    departure = arrival + service
    pending: list[tuple[float, int, str, int]] = []  # (departure, request, id, server)
    push, pop = heappush, heappop
    for lo in range(0, n, PROGRESS_EVERY):
        hi = min(lo + PROGRESS_EVERY, n)
        picks = [-1] * (hi - lo)
        for i, t, end, tokens in zip(
            range(lo, hi), arrival[lo:hi].tolist(), departure[lo:hi].tolist(), estimated[lo:hi].tolist()
        ):
            while pending and pending[0][0] <= t:
                entry = pop(pending)
                complete(entry[2])
                running[entry[3]] -= 1
            rid = f"r{i}"
            try:
                sid = route(rid, tokens)
            except (NotImplementedError, RecursionError):
                raise  # a bug or a stub, not a full cluster
            except RuntimeError:
                continue
            k = index.get(sid, -1)
            if k < 0 or running[k] >= caps[k]:
                problem = "which is not the id of any server the simulator added" if k < 0 else (
                    f"a server already running {running[k]} of {caps[k]} requests"
                )
                raise contract_error(rid, sid, problem)
            running[k] += 1
            picks[i - lo] = k
            push(pending, (end, i, rid, k))
        chosen[lo:hi] = picks
        if progress is not None:
            progress(hi - lo)
    while pending:
        complete(pop(pending)[2])
    return chosen
