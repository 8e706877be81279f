"""Stage 1 is taught in two steps; the check must split the same way.

Step 1 is a plain scan (O(S) per route): it must pass every behaviour group
(``check_stage1(impl, only=BEHAVIOUR)``) and fail the cost group only.
Step 2, the heap (the reference), passes both.  The scan below is the
reference with ``route_request`` replaced by a loop over every server.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from solution.balancer import LoadBalancer
from solution.checks.stage1 import BEHAVIOUR, COST, STAGE1_GROUPS, run_stage1
from solution.core.errors import DuplicateRequestError, NoCapacityError
from solution.core.validate import require_id, require_int

pytestmark = [pytest.mark.stage1, pytest.mark.slow]


class PlainScan(LoadBalancer):
    """Step 1: ``route_request`` looks at every server (O(S)); the rest is the reference's bookkeeping."""

    def route_request(self, request_id: str, estimated_tokens: int) -> str:
        require_id(request_id, "request_id")
        require_int(estimated_tokens, "estimated_tokens")
        if request_id in self._requests:
            raise DuplicateRequestError(f"request {request_id!r} is already in flight; complete it first or use a new id")
        large = estimated_tokens > self.large_request_tokens
        best = None
        for srv in self._servers.values():
            load = len(srv.active)
            if srv.draining or load >= srv.capacity or (large and not srv.big):
                continue
            if best is None:
                best = srv
                continue
            mine, theirs = load * best.capacity, len(best.active) * srv.capacity  # exact: a/b < c/d iff a*d < c*b
            key = (mine, -srv.gpu_memory_gb, load - srv.capacity, srv.seq)
            if key < (theirs, -best.gpu_memory_gb, len(best.active) - best.capacity, best.seq):
                best = srv
        if best is None:
            raise NoCapacityError(self._no_capacity_message(request_id, estimated_tokens, large))
        best.active[request_id] = None
        self._requests[request_id] = best
        return best.server_id


def test_behaviour_and_cost_split_every_group():
    assert set(BEHAVIOUR) == {name for name, _ in STAGE1_GROUPS}
    assert not any(name.startswith(COST) for name in BEHAVIOUR)


def test_a_plain_scan_passes_the_behaviour_groups_and_fails_the_cost_group_only():
    scan = SimpleNamespace(LoadBalancer=PlainScan, __name__="plain_scan")
    behaviour = run_stage1(scan, echo=False, only=BEHAVIOUR, strict=False)
    assert [g.name for g in behaviour.groups] == list(BEHAVIOUR)
    assert all(g.passed for g in behaviour.groups), [g.name for g in behaviour.groups if not g.passed]
    cost = run_stage1(scan, echo=False, only=COST, strict=False)
    assert [g.passed for g in cost.groups] == [False]


def test_the_heap_passes_the_cost_group():
    import solution.balancer as heap

    assert all(g.passed for g in run_stage1(heap, echo=False, only=COST, strict=False).groups)
