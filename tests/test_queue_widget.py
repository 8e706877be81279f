"""The stage-2 playground: every control reruns and redraws; a stub or a wrong queue is reported, never fatal."""

from __future__ import annotations

import types

import pytest

import solution
from solution.request_queue import RequestQueue
from solution.widgets.queueing import QueuePlayground


def stub_impl() -> types.SimpleNamespace:
    class Stub:
        def __init__(self, clock, policy=None):
            raise NotImplementedError("Stage 2: RequestQueue.__init__ is not implemented yet")

    return types.SimpleNamespace(RequestQueue=Stub)


def lifo_impl() -> types.SimpleNamespace:
    class Lifo(RequestQueue):
        """Serves the newest request first: wrong for every ordering."""

        def peek(self, large_ok=True):
            waiting = self.waiting()
            return None if not waiting else self._entries[waiting[-1]].receipt

    return types.SimpleNamespace(RequestQueue=Lifo)


@pytest.fixture(scope="module")
def playground() -> QueuePlayground:
    return QueuePlayground(solution, requests=800)


def test_every_control_reruns_and_redraws(playground):
    for control, value in [(playground.max_depth, -1), (playground.max_wait, 5.0), (playground.ordering, "sjf"),
                           (playground.rate, 6.0), (playground.servers, 2), (playground.max_depth, 0), (playground.seed, 3)]:  # fmt: skip
        before = playground.image.value
        control.value = value
        assert playground.image.value != before and playground.image.value[:4] == b"\x89PNG"
        assert set(playground.runs) == {"fifo", "priority", "sjf"}
    assert "showing the reference" in playground.verdict


def test_a_stub_queue_shows_the_reference_alone():
    w = QueuePlayground(stub_impl(), requests=500)
    assert "NotImplementedError" in w.verdict and "reference alone" in w.verdict


def test_a_wrong_queue_is_flagged():
    w = QueuePlayground(lifo_impl(), requests=800)
    w.rate.value = 5.0  # a backlog, so the order matters
    assert "MISMATCH" in w.verdict


def test_the_reference_copied_as_the_candidate_matches():
    w = QueuePlayground(types.SimpleNamespace(RequestQueue=RequestQueue), requests=500)
    assert "same outcome as the reference" in w.verdict
