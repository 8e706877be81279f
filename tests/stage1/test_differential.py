"""Stage 1: the implementation under test against the reference, on random operation sequences.

Both balancers get the same calls; after each call the results (a server id,
or the kind of exception) and the stats snapshots must agree.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import solution

pytestmark = pytest.mark.stage1

_KINDS = (TypeError, KeyError, ValueError, RuntimeError)


def outcome(call):
    """What a call did: ("ok", result) or ("raised", the built-in kind of the exception)."""
    try:
        return ("ok", call())
    except _KINDS as exc:
        return ("raised", next(kind.__name__ for kind in _KINDS if isinstance(exc, kind)))


def run_both(impl, ops) -> None:
    ours, ref = impl.LoadBalancer(), solution.LoadBalancer()
    for step, (name, args) in enumerate(ops):
        got = outcome(lambda: getattr(ours, name)(*args))
        want = outcome(lambda: getattr(ref, name)(*args))
        assert got == want, f"step {step}: {name}{args} -> {got}, reference -> {want}"
        assert ours.get_server_stats() == ref.get_server_stats(), f"stats differ after step {step}: {name}{args}"


def random_ops(rng: random.Random, n: int, servers: int = 6, requests: int = 40):
    ops = []
    for _ in range(n):
        kind = rng.choices(("add", "remove", "route", "complete"), weights=(2, 1, 8, 6))[0]
        if kind == "add":
            ops.append(("add_server", (f"s{rng.randrange(servers)}", rng.randint(1, 6), rng.choice([24, 40, 48, 80]))))
        elif kind == "remove":
            ops.append(("remove_server", (f"s{rng.randrange(servers)}",)))
        elif kind == "route":
            ops.append(("route_request", (f"r{rng.randrange(requests)}", rng.choice([1, 50, 800, 4096, 4097, 30_000]))))
        else:
            ops.append(("complete_request", (f"r{rng.randrange(requests)}",)))
    return ops


@pytest.mark.parametrize("seed", range(20))
def test_seeded_random_sequences_match_reference(impl, seed):
    run_both(impl, random_ops(random.Random(seed), 400))


OP = st.one_of(
    st.tuples(
        st.just("add_server"),
        st.tuples(st.sampled_from(["s0", "s1", "s2", "s3"]), st.integers(1, 3), st.sampled_from([24, 80])),
    ),
    st.tuples(st.just("remove_server"), st.tuples(st.sampled_from(["s0", "s1", "s2", "s3"]))),
    st.tuples(st.just("route_request"), st.tuples(st.sampled_from(["r0", "r1", "r2", "r3", "r4", "r5"]), st.sampled_from([10, 5000])))
    ,
    st.tuples(st.just("complete_request"), st.tuples(st.sampled_from(["r0", "r1", "r2", "r3", "r4", "r5"]))),
)


@given(st.lists(OP, max_size=60))
def test_hypothesis_sequences_match_reference(impl, ops):
    """Shrinks a disagreement to the shortest sequence of calls that shows it."""
    run_both(impl, ops)
