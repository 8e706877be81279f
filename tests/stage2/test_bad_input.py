"""Stage 2: bad input gets the right exception, and leaves the queue exactly as it was."""

from __future__ import annotations

import pytest

from solution.core.queue_types import Queued

pytestmark = pytest.mark.stage2


def populated(make_queue):
    """A full priority queue (3 of 3) with deadlines, a large request and one completion on record."""
    q, clock = make_queue(ordering="priority", max_depth=3, max_wait=5.0, max_skips=2)
    q.enqueue("a", 10, 1)
    q.enqueue("b", 9000)
    clock.advance(1.0)
    q.enqueue("c", 10)
    q.record_completion()
    clock.advance(0.5)
    return q, clock


def state(q) -> tuple:
    return q.waiting(), len(q), q.next_deadline(), q.stats(), q.peek(True), q.peek(False), q.retry_after()


CASES = [
    # enqueue: bad values are refused before the depth check (the queue is full)
    ("enqueue", (None, 10), TypeError),
    ("enqueue", (7, 10), TypeError),
    ("enqueue", (b"n", 10), TypeError),
    ("enqueue", ("", 10), ValueError),
    ("enqueue", ("a", 10), ValueError),  # already waiting
    ("enqueue", ("n", 0), ValueError),
    ("enqueue", ("n", -5), ValueError),
    ("enqueue", ("n", True), TypeError),
    ("enqueue", ("n", 10.0), TypeError),
    ("enqueue", ("n", "10"), TypeError),
    ("enqueue", ("n", None), TypeError),
    ("enqueue", ("n", 10, -1), ValueError),
    ("enqueue", ("n", 10, True), TypeError),
    ("enqueue", ("n", 10, 1.0), TypeError),
    ("enqueue", ("n", 10, None), TypeError),
    # dispatch
    ("dispatch", (None, "s"), TypeError),
    ("dispatch", ("", "s"), ValueError),
    ("dispatch", ("ghost", "s"), KeyError),
    ("dispatch", ("a", ""), ValueError),
    ("dispatch", ("a", None), TypeError),
    ("dispatch", ("a", 5), TypeError),
    # cancel
    ("cancel", (None,), TypeError),
    ("cancel", (b"a",), TypeError),
    ("cancel", ("",), ValueError),
    ("cancel", ("ghost",), KeyError),
    # peek
    ("peek", (1,), TypeError),
    ("peek", (None,), TypeError),
    ("peek", ("yes",), TypeError),
]


@pytest.mark.parametrize(("method", "args", "error"), CASES, ids=[f"{m}{a!r}" for m, a, _ in CASES])
def test_bad_input_raises_and_changes_nothing(make_queue, method, args, error):
    q, clock = populated(make_queue)
    before = state(q)
    with pytest.raises(error):
        getattr(q, method)(*args)
    assert state(q) == before
    # and the queue still works as if the call never happened
    assert q.dispatch("a", "s").request_id == "a"
    assert isinstance(q.enqueue("n", 10), Queued)
    clock.set(5.0)
    assert [o.request_id for o in q.expire()] == ["b"]


def test_error_messages_name_the_id_and_say_what_to_do(make_queue):
    q, _ = populated(make_queue)
    for call, needle in [
        (lambda: q.enqueue("a", 10), "'a'"),
        (lambda: q.cancel("ghost"), "'ghost'"),
        (lambda: q.dispatch("gone", "s"), "'gone'"),
        (lambda: q.enqueue("n", 0), "estimated_tokens"),
        (lambda: q.enqueue("n", 10, -1), "priority"),
    ]:
        with pytest.raises(Exception) as info:
            call()
        message = str(info.value)
        assert needle in message, message
        assert not message.startswith(("'", '"')), f"KeyError message printed with quotes: {message}"
        assert len(message.split()) >= 6, f"a message should say what to do: {message}"


def test_duplicate_and_unknown_ids_raise_the_shared_error_types(impl, make_queue):
    q, _ = populated(make_queue)
    with pytest.raises(impl.AlreadyWaitingError):
        q.enqueue("a", 10)
    with pytest.raises(impl.NotWaitingError):
        q.cancel("ghost")
    with pytest.raises(impl.NotWaitingError):
        q.dispatch("ghost", "s")
