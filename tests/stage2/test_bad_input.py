"""Stage 2: bad input gets the right exception, and leaves the queue exactly as it was.

"As if the call never happened" is checked against a twin queue that never
saw the bad call, not against answers that follow from the queue's rules: a
wrong deadline or ordering rule fails the tests named for it, not these.
"""

from __future__ import annotations

import pytest


pytestmark = pytest.mark.stage2


def populated(make_queue, max_depth=3):
    """A full priority queue (3 of 3) with deadlines, a large request and one completion on record."""
    q, clock = make_queue(ordering="priority", max_depth=max_depth, max_wait=5.0, max_skips=2)
    q.enqueue("a", 10, 1)
    q.enqueue("b", 9000)
    clock.advance(1.0)
    q.enqueue("c", 10)
    q.record_completion()
    clock.advance(0.5)
    return q, clock


def state(q) -> tuple:
    return q.waiting(), len(q), q.next_deadline(), q.stats(), q.peek(True), q.peek(False), q.retry_after()


def outcome(call):
    try:
        return "returned", call()
    except Exception as exc:  # the built-in kind is what counts
        return "raised", next((k.__name__ for k in (TypeError, KeyError, ValueError, RuntimeError) if isinstance(exc, k)), repr(exc))


#: Calls made after the bad one, on the queue and on a twin that never saw it: (clock time, method, args).
FOLLOW_UP = [
    (1.5, "dispatch", ("a", "s")),
    (1.5, "enqueue", ("n", 10)),
    (2.0, "peek", (False,)),
    (2.0, "dispatch", ("c", "a10")),
    (2.5, "enqueue", ("m", 20, 3)),
    (2.5, "record_completion", ()),
    (3.0, "retry_after", ()),
    (5.0, "expire", ()),
    (5.0, "peek", (True,)),
    (7.5, "expire", ()),
    (7.5, "cancel", ("b",)),
    (7.5, "enqueue", ("a", 10)),
]


def assert_same_as_twin(make_queue, q, clock):
    """Later calls go exactly as on a queue that never saw the bad call."""
    twin, twin_clock = populated(make_queue)
    for at, method, args in FOLLOW_UP:
        clock.set(at)
        twin_clock.set(at)
        got, want = outcome(lambda: getattr(q, method)(*args)), outcome(lambda: getattr(twin, method)(*args))
        assert got == want, f"after the bad call, {method}{args!r} at {at} {got}; without it, {want}"
        assert state(q) == state(twin), f"after the bad call, {method}{args!r} at {at} leaves another state"


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
    assert_same_as_twin(make_queue, q, clock)


def test_error_messages_name_the_id_and_say_what_to_do(make_queue):
    q, _ = populated(make_queue, max_depth=None)  # not full: only the message is at stake
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
    q, _ = populated(make_queue, max_depth=None)  # not full: the duplicate before the depth is another test's rule
    with pytest.raises(impl.AlreadyWaitingError):
        q.enqueue("a", 10)
    with pytest.raises(impl.NotWaitingError):
        q.cancel("ghost")
    with pytest.raises(impl.NotWaitingError):
        q.dispatch("ghost", "s")
