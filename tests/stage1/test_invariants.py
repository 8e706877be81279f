"""Stage 1: invariants after every step, checked by a hypothesis state machine.

The machine keeps its own model of the cluster (which servers are present,
draining, and which requests each runs) and after every operation checks:

* no server is above its capacity;
* every request in flight is on exactly one server, the one it was routed to;
* draining servers get nothing new, and vanish as soon as they are empty;
* nothing is left of a completed request;
* every choice is the one the rule makes (checked with the plain O(S)
  oracle in ``solution.widgets.explain``), and NoCapacityError comes exactly when no
  server is eligible.
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from solution.widgets.explain import explain_route

pytestmark = pytest.mark.stage1

SERVER_IDS = st.sampled_from([f"s{i}" for i in range(5)])
REQUEST_IDS = st.sampled_from([f"r{i}" for i in range(16)])
TOKENS = st.sampled_from([1, 100, 4096, 4097, 20_000])


def make_machine(impl, raises_no_capacity):
    class BalancerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.lb = impl.LoadBalancer()
            # model: server id -> {"capacity", "gpu_memory_gb", "draining", "active": list}
            self.servers: dict[str, dict] = {}
            self.where: dict[str, str] = {}  # request id -> server id
            self.completed: set[str] = set()

        def model_stats(self) -> dict[str, dict]:
            return {
                sid: {
                    "capacity": s["capacity"],
                    "current_load": len(s["active"]),
                    "gpu_memory_gb": s["gpu_memory_gb"],
                    "load_ratio": len(s["active"]) / s["capacity"],
                    "is_draining": s["draining"],
                    "active_requests": list(s["active"]),
                }
                for sid, s in self.servers.items()
            }

        @rule(server_id=SERVER_IDS, capacity=st.integers(1, 4), memory=st.sampled_from([24, 40, 80]))
        def add_server(self, server_id, capacity, memory):
            if server_id in self.servers:
                with pytest.raises(ValueError):
                    self.lb.add_server(server_id, capacity, memory)
                return
            self.lb.add_server(server_id, capacity, memory)
            self.servers[server_id] = {"capacity": capacity, "gpu_memory_gb": memory, "draining": False, "active": []}

        @rule(server_id=SERVER_IDS)
        def remove_server(self, server_id):
            if server_id not in self.servers:
                with pytest.raises(KeyError):
                    self.lb.remove_server(server_id)
                return
            self.lb.remove_server(server_id)
            self.servers[server_id]["draining"] = True
            if not self.servers[server_id]["active"]:
                del self.servers[server_id]

        @rule(request_id=REQUEST_IDS, tokens=TOKENS)
        def route(self, request_id, tokens):
            if request_id in self.where:
                with pytest.raises(ValueError):
                    self.lb.route_request(request_id, tokens)
                return
            expected = explain_route(self.model_stats(), tokens)
            if expected.chosen is None:
                with raises_no_capacity():
                    self.lb.route_request(request_id, tokens)
                return
            chosen = self.lb.route_request(request_id, tokens)
            assert chosen == expected.chosen, f"rule picks {expected.summary()}, got {chosen}"
            self.servers[chosen]["active"].append(request_id)
            self.where[request_id] = chosen
            self.completed.discard(request_id)

        @rule(request_id=REQUEST_IDS)
        def complete(self, request_id):
            if request_id not in self.where:
                with pytest.raises(KeyError):
                    self.lb.complete_request(request_id)
                return
            self.lb.complete_request(request_id)
            sid = self.where.pop(request_id)
            self.servers[sid]["active"].remove(request_id)
            self.completed.add(request_id)
            if self.servers[sid]["draining"] and not self.servers[sid]["active"]:
                del self.servers[sid]

        @invariant()
        def matches_model(self):
            stats = self.lb.get_server_stats()
            assert stats == self.model_stats()

        @invariant()
        def capacity_never_exceeded(self):
            for sid, s in self.lb.get_server_stats().items():
                assert s["current_load"] == len(s["active_requests"]) <= s["capacity"], sid

        @invariant()
        def every_request_on_exactly_one_server(self):
            seen: dict[str, str] = {}
            for sid, s in self.lb.get_server_stats().items():
                for rid in s["active_requests"]:
                    assert rid not in seen, f"{rid} on both {seen[rid]} and {sid}"
                    seen[rid] = sid
            assert seen == self.where
            assert not (self.completed & seen.keys()), "a completed request is still recorded"

    return BalancerMachine


def test_state_machine(impl, no_capacity):
    make_machine(impl, no_capacity).TestCase().runTest()
