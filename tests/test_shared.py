"""The shared parts every implementation uses: error types, validation, the lock wrapper, the oracle."""

from __future__ import annotations

import pytest

import solution
from solution.core.concurrency import Synchronized
from solution.widgets.explain import explain_route
from solution.core.validate import require_id, require_int


def test_errors_subclass_builtins():
    assert issubclass(solution.NoCapacityError, RuntimeError)
    assert issubclass(solution.DuplicateIdError, ValueError)
    assert issubclass(solution.UnknownServerError, KeyError)
    assert issubclass(solution.UnknownRequestError, KeyError)
    assert issubclass(solution.DuplicateServerError, solution.DuplicateIdError)
    assert issubclass(solution.DuplicateRequestError, solution.DuplicateIdError)


def test_synchronized_rejects_non_balancers():
    with pytest.raises(TypeError):
        Synchronized(object())


def test_unknown_id_errors_print_their_message_without_quotes():
    assert str(solution.UnknownServerError("server 'x' is not present")) == "server 'x' is not present"


@pytest.mark.parametrize("bad", [True, 1.0, "1", None])
def test_require_int_rejects_non_ints(bad):
    with pytest.raises(TypeError):
        require_int(bad, "n")


def test_require_int_bounds():
    assert require_int(1, "n") == 1
    with pytest.raises(ValueError, match="at least 1"):
        require_int(0, "n")
    with pytest.raises(ValueError, match="at most 5"):
        require_int(6, "n", maximum=5)


def test_require_id():
    assert require_id("a", "id") == "a"
    with pytest.raises(ValueError):
        require_id("", "id")
    with pytest.raises(TypeError):
        require_id(b"a", "id")


def test_explain_route_names_the_deciding_criterion():
    stats = {
        "a": {"capacity": 4, "current_load": 1, "gpu_memory_gb": 80, "is_draining": False},
        "b": {"capacity": 8, "current_load": 2, "gpu_memory_gb": 80, "is_draining": False},
        "c": {"capacity": 2, "current_load": 0, "gpu_memory_gb": 24, "is_draining": True},
    }
    plan = explain_route(stats, 100)
    assert plan.chosen == "b"
    assert plan.decided_by == "most free slots (tie on load ratio, GPU memory)"
    assert [c.server_id for c in plan.excluded] == ["c"] and plan.excluded[0].excluded_because == "draining"
    assert explain_route(stats, 5000, large_request_min_memory_gb=96).chosen is None
