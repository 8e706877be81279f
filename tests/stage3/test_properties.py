"""Stage 3 properties, on random clusters and call sequences (hypothesis):

* every strategy's choice is an eligible server;
* power of two choices never picks the worse of its two draws;
* the predictive rule picks the least predicted seconds (each server's latency
  model at its load), then the fewest requests, then the server added first;
  least-outstanding-tokens the fewest expected output tokens per unit of speed.

Each property reads the cluster through ``get_server_stats`` just before the
call, so it checks the rule, not the bookkeeping.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from solution.core.latency import REFERENCE_MODEL
from solution.core.request import Request
from solution.core.routing import Router

pytestmark = pytest.mark.stage3

SERVER = st.sampled_from(["s0", "s1", "s2", "s3", "s4"])
REQUEST = st.sampled_from([f"r{i}" for i in range(10)])
OP = st.one_of(
    st.tuples(st.just("add_server"), st.tuples(SERVER, st.integers(1, 4), st.sampled_from([24, 80]))),
    st.tuples(st.just("remove_server"), st.tuples(SERVER)),
    st.tuples(st.just("route_request"), st.tuples(REQUEST, st.sampled_from([1, 40, 900, 5000, 20_000]))),
    st.tuples(st.just("route_request"), st.tuples(REQUEST, st.sampled_from([1, 40, 900, 5000, 20_000]), st.floats(0, 1))),
    st.tuples(st.just("observe"), st.tuples(REQUEST, st.floats(0.01, 50))),
    st.tuples(st.just("complete_request"), st.tuples(REQUEST)),
)
SPEEDS = {"s0": 1.0, "s1": 2.0, "s2": 0.5, "s3": 3.0, "s4": 1.0}
#: s4 runs a model of its own (an A10's constants): same speed as s0, another latency.
MODELS = {"s4": type(REFERENCE_MODEL)(weights_s=0.0333, kv_s=0.00128, token_s=0.000224)}
CASES = [("PowerOfChoices", {"d": 2, "seed": 3}), ("PowerOfChoices", {"d": 3, "seed": 4}), ("WeightedResponseTime", {}),
         ("PeakEwma", {}), ("LeastOutstandingTokens", {}), ("Predictive", {})]  # fmt: skip


def eligible(stats: dict, tokens: int) -> set[str]:
    return {sid for sid, s in stats.items() if not s["is_draining"] and s["current_load"] < s["capacity"]
            and (tokens <= 4096 or s["gpu_memory_gb"] >= 80)}  # fmt: skip


def play(router: Router, ops, on_route) -> None:
    """Run ``ops``, ignoring the errors the API defines; call ``on_route(stats, request, chosen, draws)`` after each route.

    A route op with a third argument ``f`` gives ``prompt_tokens = int(f * tokens)``; ``request`` is
    ``(tokens, prompt_tokens or None)``.

    ``draws``: for a sampling strategy, the servers ``Router.sample`` draws from a copy of its ``rng``
    before the call (the docstring of ``PowerOfChoices`` prescribes that draw)."""
    for name, args in ops:
        kwargs = {}
        if name == "route_request" and len(args) == 3:
            args, kwargs = args[:2], {"prompt_tokens": int(args[2] * args[1])}
        stats = router.get_server_stats()
        state = None
        if name == "route_request" and hasattr(router.strategy, "rng"):  # what the next draw will be
            rng = random.Random()
            rng.setstate(router.strategy.rng.getstate())
            state = [s.server_id for s in router.sample(rng, router.strategy.d, Request("probe", args[1]))]
        try:
            result = getattr(router, name)(*args, **kwargs)
        except (KeyError, ValueError) as exc:
            assert not isinstance(exc, NotImplementedError)
            continue
        except RuntimeError as exc:
            if isinstance(exc, NotImplementedError):
                raise
            assert name == "route_request" and not eligible(stats, args[1]), "NoCapacityError with an eligible server"
            continue
        if name == "route_request":
            on_route(stats, (args[1], kwargs.get("prompt_tokens")), result, state)


@pytest.mark.parametrize("class_name,options", CASES, ids=[f"{c}{o.get('d', '')}" for c, o in CASES])
@given(ops=st.lists(OP, max_size=50))
def test_choice_is_always_eligible(impl, class_name, options, ops):
    router = Router(getattr(impl, class_name)(**options), speeds=SPEEDS, models=MODELS)

    def check(stats, request, chosen, _):
        assert chosen in eligible(stats, request[0])

    play(router, ops, check)


@given(ops=st.lists(OP, max_size=50), seed=st.integers(0, 1000))
def test_p2c_never_picks_the_worse_of_its_two_draws(impl, ops, seed):
    router = Router(impl.PowerOfChoices(d=2, seed=seed), speeds=SPEEDS)

    def check(stats, request, chosen, draws):
        assert chosen in draws
        ratio = {sid: stats[sid]["current_load"] / stats[sid]["capacity"] for sid in draws}
        assert ratio[chosen] == min(ratio.values())
        if len(set(ratio.values())) == 1:
            assert chosen == draws[0], "on a tie, the server drawn first"

    play(router, ops, check)


@given(ops=st.lists(OP, max_size=50))
def test_predictive_picks_the_least_predicted_seconds(impl, ops):
    router = Router(impl.Predictive(), speeds=SPEEDS, models=MODELS)

    def check(stats, request, chosen, _):
        tokens, prompt = request
        order = {sid: k for k, sid in enumerate(stats)}  # the snapshot lists servers in order of addition

        def key(sid):
            model = MODELS.get(sid) or REFERENCE_MODEL.scaled(stats[sid]["speed"])
            load = stats[sid]["current_load"]
            return (model.e2e(prompt or 0, tokens - (prompt or 0), load), load, order[sid])

        assert chosen == min(eligible(stats, tokens), key=key)

    play(router, ops, check)


@given(ops=st.lists(OP, max_size=50))
def test_least_outstanding_tokens_picks_fewest_output_tokens_per_speed(impl, ops):
    router = Router(impl.LeastOutstandingTokens(), speeds=SPEEDS)

    def check(stats, request, chosen, _):
        per_speed = {sid: stats[sid]["outstanding_output_tokens"] / stats[sid]["speed"] for sid in eligible(stats, request[0])}
        assert per_speed[chosen] == min(per_speed.values())

    play(router, ops, check)
