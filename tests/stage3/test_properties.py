"""Stage 3 properties, on random clusters and call sequences (hypothesis):

* every strategy's choice is an eligible server;
* power of two choices never picks the worse of its two draws;
* the predictive rule picks the least expected delay; least-outstanding-tokens
  the fewest tokens per unit of speed.

Each property reads the cluster through ``get_server_stats`` just before the
call, so it checks the rule, not the bookkeeping.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from solution.core.routing import Router

pytestmark = pytest.mark.stage3

SERVER = st.sampled_from(["s0", "s1", "s2", "s3", "s4"])
REQUEST = st.sampled_from([f"r{i}" for i in range(10)])
OP = st.one_of(
    st.tuples(st.just("add_server"), st.tuples(SERVER, st.integers(1, 4), st.sampled_from([24, 80]))),
    st.tuples(st.just("remove_server"), st.tuples(SERVER)),
    st.tuples(st.just("route_request"), st.tuples(REQUEST, st.sampled_from([1, 40, 900, 5000, 20_000]))),
    st.tuples(st.just("route_request"), st.tuples(REQUEST, st.sampled_from([1, 40, 900, 5000, 20_000]))),
    st.tuples(st.just("observe"), st.tuples(REQUEST, st.floats(0.01, 50))),
    st.tuples(st.just("complete_request"), st.tuples(REQUEST)),
)
SPEEDS = {"s0": 1.0, "s1": 2.0, "s2": 0.5, "s3": 3.0, "s4": 1.0}
CASES = [("PowerOfChoices", {"d": 2, "seed": 3}), ("PowerOfChoices", {"d": 3, "seed": 4}), ("WeightedResponseTime", {}),
         ("PeakEwma", {}), ("LeastOutstandingTokens", {}), ("Predictive", {})]  # fmt: skip


def eligible(stats: dict, tokens: int) -> set[str]:
    return {sid for sid, s in stats.items() if not s["is_draining"] and s["current_load"] < s["capacity"]
            and (tokens <= 4096 or s["gpu_memory_gb"] >= 80)}  # fmt: skip


def play(router: Router, ops, on_route) -> None:
    """Run ``ops``, ignoring the errors the API defines; call ``on_route(stats, tokens, chosen, draws)`` after each route.

    ``draws``: for a sampling strategy, the servers ``Router.sample`` draws from a copy of its ``rng``
    before the call (the docstring of ``PowerOfChoices`` prescribes that draw)."""
    for name, args in ops:
        stats = router.get_server_stats()
        state = None
        if name == "route_request" and hasattr(router.strategy, "rng"):  # what the next draw will be
            rng = random.Random()
            rng.setstate(router.strategy.rng.getstate())
            state = [s.server_id for s in router.sample(rng, router.strategy.d, args[1])]
        try:
            result = getattr(router, name)(*args)
        except (KeyError, ValueError) as exc:
            assert not isinstance(exc, NotImplementedError)
            continue
        except RuntimeError as exc:
            if isinstance(exc, NotImplementedError):
                raise
            assert name == "route_request" and not eligible(stats, args[1]), "NoCapacityError with an eligible server"
            continue
        if name == "route_request":
            on_route(stats, args[1], result, state)


@pytest.mark.parametrize("class_name,options", CASES, ids=[f"{c}{o.get('d', '')}" for c, o in CASES])
@given(ops=st.lists(OP, max_size=50))
def test_choice_is_always_eligible(impl, class_name, options, ops):
    router = Router(getattr(impl, class_name)(**options), speeds=SPEEDS)

    def check(stats, tokens, chosen, _):
        assert chosen in eligible(stats, tokens)

    play(router, ops, check)


@given(ops=st.lists(OP, max_size=50), seed=st.integers(0, 1000))
def test_p2c_never_picks_the_worse_of_its_two_draws(impl, ops, seed):
    router = Router(impl.PowerOfChoices(d=2, seed=seed), speeds=SPEEDS)

    def check(stats, tokens, chosen, draws):
        assert chosen in draws
        ratio = {sid: stats[sid]["current_load"] / stats[sid]["capacity"] for sid in draws}
        assert ratio[chosen] == min(ratio.values())
        if len(set(ratio.values())) == 1:
            assert chosen == draws[0], "on a tie, the server drawn first"

    play(router, ops, check)


@given(ops=st.lists(OP, max_size=50))
def test_predictive_picks_the_least_expected_delay(impl, ops):
    router = Router(impl.Predictive(), speeds=SPEEDS)
    order = {}

    def check(stats, tokens, chosen, _):
        order.update({sid: order.get(sid, len(order)) for sid in stats})
        delay = {sid: (stats[sid]["outstanding_tokens"] + tokens) / stats[sid]["speed"] for sid in eligible(stats, tokens)}
        assert delay[chosen] == min(delay.values())

    play(router, ops, check)


@given(ops=st.lists(OP, max_size=50))
def test_least_outstanding_tokens_picks_fewest_tokens_per_speed(impl, ops):
    router = Router(impl.LeastOutstandingTokens(), speeds=SPEEDS)

    def check(stats, tokens, chosen, _):
        per_speed = {sid: stats[sid]["outstanding_tokens"] / stats[sid]["speed"] for sid in eligible(stats, tokens)}
        assert per_speed[chosen] == min(per_speed.values())

    play(router, ops, check)
