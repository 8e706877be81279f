"""A stage-2 queue at the simulated gateway: what ``Scenario.queue`` holds.

With ``Scenario(..., queue=QueueConfig(QueuePolicy(max_depth=50, max_wait=30.0)))``
the simulator puts a :class:`solution.core.gateway.Gateway` with a
:class:`solution.request_queue.RequestQueue` (or the queue class given to
``simulate(..., queue=...)``) in front of the balancer.  A request that finds
no free slot waits instead of being rejected; it ends ``COMPLETED`` after
waiting, or ``THROTTLED`` (429, the queue was full), ``TIMED_OUT`` or
``CANCELLED``.  ``Results.start`` is the dispatch time, so ``Results.wait``
is the time spent in the queue.

The queue reads the simulated clock; the engine schedules an event at the
queue's ``next_deadline()`` so requests time out at exactly their deadline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from solution.core.queue_types import QueuePolicy
from solution.sim.validate import require_number
from solution.core.validate import require_int

__all__ = ["QueueConfig"]


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
