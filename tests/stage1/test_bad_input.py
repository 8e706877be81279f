"""Stage 1: bad input gets the right exception, and leaves the state exactly as it was.

The fixture is built so that no routing rule is involved in it (each request
has one server it can go to), and "as if the call never happened" is checked
against a twin balancer that never saw the bad call, not against answers
that follow from the routing rules: a wrong tie-break or a wrong drain rule
fails the tests named for it, not these.
"""

from __future__ import annotations

import pytest

from solution.core.validate import MAX_CAPACITY

pytestmark = pytest.mark.stage1


def populated(impl):
    """A balancer with a busy server "a" and a draining one "b", each request on the only server it can take."""
    lb = impl.LoadBalancer()
    lb.add_server("b", capacity=1, gpu_memory_gb=24)
    lb.route_request("r2", 10)  # b: the only server
    lb.remove_server("b")  # b drains with r2
    lb.add_server("a", capacity=2, gpu_memory_gb=80)
    lb.route_request("r1", 10)  # a: b is full (and draining)
    return lb


#: Calls made after the bad one, on the balancer and on a twin that never saw it.
FOLLOW_UP = [
    ("route_request", ("after", 10)),
    ("route_request", ("large", 9000)),
    ("add_server", ("x", 2, 24)),
    ("route_request", ("r2", 10)),
    ("complete_request", ("r2",)),
    ("add_server", ("b", 3, 80)),
    ("route_request", ("more", 10)),
    ("complete_request", ("r1",)),
    ("remove_server", ("a",)),
    ("route_request", ("last", 5000)),
]


def outcome(lb, method, args):
    try:
        return "returned", getattr(lb, method)(*args)
    except Exception as exc:  # the built-in kind is what counts
        return "raised", next((k.__name__ for k in (TypeError, KeyError, ValueError, RuntimeError) if isinstance(exc, k)), repr(exc))


def assert_same_as_twin(impl, lb):
    """Later calls go exactly as on a balancer that never saw the bad call."""
    twin = populated(impl)
    for method, args in FOLLOW_UP:
        got, want = outcome(lb, method, args), outcome(twin, method, args)
        assert got == want, f"after the bad call, {method}{args!r} {got}; without it, {want}"
        assert lb.get_server_stats() == twin.get_server_stats(), f"after the bad call, {method}{args!r} leaves other stats"


CASES = [
    # add_server
    ("add_server", (None, 1, 1), TypeError),
    ("add_server", (7, 1, 1), TypeError),
    ("add_server", ("", 1, 1), ValueError),
    ("add_server", ("x", 0, 1), ValueError),
    ("add_server", ("x", -3, 1), ValueError),
    ("add_server", ("x", True, 1), TypeError),
    ("add_server", ("x", 1.0, 1), TypeError),
    ("add_server", ("x", "2", 1), TypeError),
    ("add_server", ("x", None, 1), TypeError),
    ("add_server", ("x", 1, 0), ValueError),
    ("add_server", ("x", 1, -80), ValueError),
    ("add_server", ("x", 1, False), TypeError),
    ("add_server", ("x", 1, 80.0), TypeError),
    ("add_server", ("x", MAX_CAPACITY + 1, 80), ValueError),
    ("add_server", ("a", 1, 80), ValueError),  # present
    ("add_server", ("b", 1, 80), ValueError),  # draining
    # remove_server
    ("remove_server", (None,), TypeError),
    ("remove_server", (b"a",), TypeError),
    ("remove_server", ("",), ValueError),
    ("remove_server", ("ghost",), KeyError),
    # route_request
    ("route_request", (None, 10), TypeError),
    ("route_request", (5, 10), TypeError),
    ("route_request", ("", 10), ValueError),
    ("route_request", ("r1", 10), ValueError),  # in flight on a
    ("route_request", ("r2", 10), ValueError),  # in flight on a draining server
    ("route_request", ("n", 0), ValueError),
    ("route_request", ("n", -5), ValueError),
    ("route_request", ("n", True), TypeError),
    ("route_request", ("n", 10.0), TypeError),
    ("route_request", ("n", "10"), TypeError),
    ("route_request", ("n", None), TypeError),
    # complete_request
    ("complete_request", (None,), TypeError),
    ("complete_request", (1,), TypeError),
    ("complete_request", ("",), ValueError),
    ("complete_request", ("ghost",), KeyError),
]


@pytest.mark.parametrize(("method", "args", "error"), CASES, ids=[f"{m}{a!r}" for m, a, _ in CASES])
def test_bad_input_raises_and_changes_nothing(impl, method, args, error):
    lb = populated(impl)
    before = lb.get_server_stats()
    with pytest.raises(error):
        getattr(lb, method)(*args)
    assert lb.get_server_stats() == before
    # and the balancer still works as if the call never happened
    assert_same_as_twin(impl, lb)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"large_request_tokens": 0}, ValueError),
        ({"large_request_tokens": -1}, ValueError),
        ({"large_request_tokens": "4096"}, TypeError),
        ({"large_request_tokens": 4096.0}, TypeError),
        ({"large_request_tokens": True}, TypeError),
        ({"large_request_min_memory_gb": 0}, ValueError),
        ({"large_request_min_memory_gb": 80.5}, TypeError),
        ({"large_request_min_memory_gb": None}, TypeError),
    ],
)
def test_bad_thresholds(impl, kwargs, error):
    with pytest.raises(error):
        impl.LoadBalancer(**kwargs)


def test_error_messages_name_the_id_and_say_what_to_do(impl):
    lb = populated(impl)
    cases = [
        (lambda: lb.add_server("a", 1, 80), "'a'"),
        (lambda: lb.remove_server("ghost"), "'ghost'"),
        (lambda: lb.route_request("r1", 10), "'r1'"),
        (lambda: lb.complete_request("ghost"), "'ghost'"),
    ]
    for call, needle in cases:
        with pytest.raises(Exception) as info:
            call()
        message = str(info.value)
        assert needle in message, message
        assert not message.startswith(("'", '"')), f"KeyError message printed with quotes: {message}"
        assert len(message.split()) >= 6, f"a message should say what to do: {message}"
