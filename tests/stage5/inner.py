"""The inner strategy the stage-5 tests wrap: the lowest load ratio, then the server added first.

Not stage 1's rule (that one also breaks ties by memory and free slots, and is the candidate's to
write in exercises/balancer.py): these tests ship in the candidate's bundle, where the router's own
LeastConnections is stubbed, and must neither depend on it nor give its answer away.
"""

from __future__ import annotations

from solution.core.routing import IndexedStrategy


class LeastLoaded(IndexedStrategy):
    """Lowest ``load / capacity``, ties to the server added first (``server.order``).  O(log S) per decision."""

    name = "least loaded"
    components = ("load ratio", "order added")

    def score(self, server, request):  # noqa: ANN001, ANN201
        return (server.load_ratio_key / 2**64, server.order)

    def index_key(self, server):  # noqa: ANN001, ANN201
        return (server.load_ratio_key, server.order)
