"""The playgrounds, driven through the methods their controls call."""

from __future__ import annotations

import types

import pytest

import exercises
import solution
from solution.widgets import ClusterPlayground

pytestmark = pytest.mark.meta


def test_menus_always_name_what_the_buttons_act_on():
    p = ClusterPlayground(solution)
    assert p.server_menu.value == "h100" and p.request_menu.value is None
    p.route(10)
    assert p.request_menu.value == "req-1"
    p.complete()  # the button: completes what the menu shows
    assert p.request_menu.options == () and p.request_menu.value is None
    p.drain()  # drains h100 (idle: gone at once)
    assert "h100" not in p.reference.get_server_stats() and p.server_menu.value == "a100-80"


def test_runs_on_the_reference_alone_while_the_exercise_is_a_stub():
    p = ClusterPlayground(exercises) if _is_stub(exercises) else ClusterPlayground(_stub_module())
    assert p.candidate is None and "NotImplementedError" in p.candidate_note
    p.route(9000)
    assert "reference &rarr; &#x27;h100&#x27;" in p.verdict.value and "MISMATCH" not in p.verdict.value
    assert bytes(p.image.value[:4]) == b"\x89PNG"


def test_a_differing_candidate_is_flagged():
    class Contrary(solution.LoadBalancer):
        def route_request(self, request_id, estimated_tokens):
            chosen = super().route_request(request_id, estimated_tokens)
            return f"not-{chosen}"

    p = ClusterPlayground(types.SimpleNamespace(LoadBalancer=Contrary))
    p.route(10)
    assert "MISMATCH" in p.last_decision and "not-h100" in p.last_decision
    assert "most free slots (tie on load ratio, GPU memory)" in p.last_decision  # the reference's reason: h100 has 6 slots, a100-80 has 4


def test_the_slider_redraws_the_plan():
    p = ClusterPlayground(solution)
    before = p.image.value
    p.tokens.value = 9000
    assert p.image.value != before and "9000 tokens" in p.verdict.value


def test_simulator_playground_reruns_on_a_change():
    from solution.widgets.simulator import SimulatorPlayground

    p = SimulatorPlayground(requests=2_000)
    first = p.last
    p.servers.value = 8
    assert p.last is not first and len(p.last.server_ids) == 8
    assert "8 servers" in p.summary.value


def _is_stub(module) -> bool:
    try:
        module.LoadBalancer()
    except NotImplementedError:
        return True
    return False


def _stub_module():
    class Stub:
        def __init__(self, **_):
            raise NotImplementedError("Stage 1: LoadBalancer.__init__ is not implemented yet")

    return types.SimpleNamespace(LoadBalancer=Stub)
