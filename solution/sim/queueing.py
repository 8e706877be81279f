"""A stage-2 queue at the simulated gateway: what ``Scenario.queue`` holds.

With ``Scenario(..., queue=QueueConfig(QueuePolicy(max_depth=50, max_wait=30.0)))``
the simulator puts a :class:`solution.core.gateway.Gateway` with a
:class:`solution.request_queue.RequestQueue` (or the queue class given to
``simulate(..., queue=...)``) in front of the balancer.  A request that finds
no free slot waits instead of being rejected; it ends ``COMPLETED`` after
waiting, or ``QUEUE_FULL`` (the queue was full: 503 by default, or the policy's 429), ``TIMED_OUT`` or
``CANCELLED``.  ``Results.start`` is the dispatch time, so ``Results.wait``
is the time spent in the queue.

The queue reads the simulated clock; the engine schedules an event at the
queue's ``next_deadline()`` so requests time out at exactly their deadline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from solution.core.queue_types import QueuePolicy
from solution.sim.validate import require_number
from solution.core.validate import require_int

__all__ = ["QueueConfig", "SizedRun", "one_server_llm"]


@dataclass(frozen=True)
class QueueConfig:
    """The gateway's queue in a scenario.

    Args:
        policy: the queue's :class:`~solution.core.queue_types.QueuePolicy`.
        priorities: ``{tier name: priority class}`` (a mapping or pairs);
            tiers not named get class 0.  Used by ``ordering="priority"``.
        patience: mean seconds a client waits in the queue before it gives
            up (exponential, drawn per request); ``None``: clients never
            give up.  A client that gives up is cancelled (``CANCELLED``).
    """

    policy: QueuePolicy = field(default_factory=QueuePolicy)
    priorities: Union[Mapping[str, int], tuple[tuple[str, int], ...]] = ()
    patience: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.policy, QueuePolicy):
            raise TypeError(f"policy must be a QueuePolicy, got {type(self.policy).__name__}")
        pairs = tuple(self.priorities.items()) if isinstance(self.priorities, Mapping) else tuple(self.priorities)
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
                raise TypeError(f"priorities must map tier names to ints, got {pair!r}")
            require_int(pair[1], f"priority of tier {pair[0]!r}", minimum=0)
        object.__setattr__(self, "priorities", pairs)
        if self.patience is not None:
            object.__setattr__(self, "patience", require_number(self.patience, "patience"))

    def request_priorities(self, tier: np.ndarray, tier_names: tuple[str, ...]) -> list[int]:
        """Each request's priority class, from its tier.  O(n)."""
        by_name = dict(self.priorities)  # type: ignore[arg-type]
        classes = np.array([by_name.get(name, 0) for name in tier_names] or [0], dtype=np.int64)
        return classes[tier].tolist()


@dataclass(frozen=True, eq=False)
class SizedRun:
    """Waits of one :func:`one_server_llm` run: ``wait`` (seconds) per request in arrival order, ``service`` their service times."""

    label: str
    seed: int
    wait: np.ndarray
    service: np.ndarray


def one_server_llm(
    balancer: Any,
    queue_class: Any,
    policy: Any,
    *,
    split: bool,
    seed: int,
    requests: int = 3_000,
    load: float = 0.9,
    output_error: float = 0.0,
    label: str = "",
) -> SizedRun:
    """One server that runs one request at a time, LLM-sized requests, and a stage-2 queue in front.

    Prompts and outputs are lognormal (medians 500 and 150 tokens, sigma 1,
    clipped to 8,000 and 2,000); a request holds the server for
    ``REFERENCE_MODEL.e2e(prompt, output)`` seconds (a 7B model on an A100
    with a batch of one: about 0.09 ms per prompt token, 10 ms per output
    token).  Arrivals are Poisson at ``load`` times the server's rate.  The
    gateway gives the queue the prompt/output split when ``split`` is True
    (else only the total); the output it passes is the true one times a
    lognormal error of sigma ``output_error`` (an *assumed* estimate error:
    output length is what a gateway cannot know in advance).  The same
    ``seed`` gives the same requests whatever the policy.  ``balancer`` and
    ``queue_class`` are classes (``demo.LoadBalancer``, ``demo.RequestQueue``).
    O(n log n).

    One server and no batching is the setting where shortest job first is
    proved to minimise the mean wait among non-preemptive orders (M/G/1);
    it keeps the comparison about the key alone.
    """
    from solution.core.latency import REFERENCE_MODEL
    from solution.sim.gatewaypool import GatewayPool

    rng = np.random.default_rng([seed, 11])
    prompt = np.clip(np.rint(rng.lognormal(np.log(500), 1.0, requests)), 1, 8000).astype(int)
    output = np.clip(np.rint(rng.lognormal(np.log(150), 1.0, requests)), 1, 2000).astype(int)
    noise = rng.lognormal(0.0, output_error, requests) if output_error > 0 else np.ones(requests)
    guessed = np.clip(np.rint(output * noise), 1, None).astype(int)
    service = np.array([REFERENCE_MODEL.e2e(int(p), int(o)) for p, o in zip(prompt, output)])
    gaps = rng.exponential(service.mean() / load, requests)
    arrival = np.cumsum(gaps)
    waits = np.full(requests, np.nan)
    index = {f"r{i}": i for i in range(requests)}

    def on_outcome(outcome: Any) -> None:
        if type(outcome).__name__ == "Dispatched":
            waits[index[outcome.request_id]] = outcome.waited

    pool = GatewayPool(balancer(), queue_class, policy, seed=seed, on_outcome=on_outcome,
                       service=lambda rid: float(service[index[rid]]))  # fmt: skip
    pool.add_server("gpu-0", 1)
    for i in range(requests):
        total = int(prompt[i] + guessed[i])
        pool.at(float(arrival[i]), lambda i=i, total=total: pool.submit(f"r{i}", total, 0, int(prompt[i]) if split else None))
    pool.run(float("inf"))
    return SizedRun(label, seed, waits, service)
