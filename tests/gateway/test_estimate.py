"""Estimate error on the wire: a client's output estimate (``X-Output-Tokens-Estimate``) is what the gateway routes on.

With ``estimate: "header"`` the gateway prices a request as its prompt plus
the header's guess (absent: ``max_tokens``; a bad value: 400 before any
server sees it), while the server is still asked for ``max_tokens``, the
length it serves.  The load generator sends the simulator's own estimates,
so the HTTP race's gateway is as wrong as the simulated balancer.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import numpy as np
import pytest

from solution.gateway.config import ConfigError, GatewayConfig
from solution.gateway.loadgen import ESTIMATE_HEADER, LoadRequest, from_sim_workload, run_replay
from solution.gateway.validation import BadInput, output_estimate
from tests.gateway.stub_backend import StubBackend, wait_until
from tests.gateway.test_gateway import AUTH, completion, config_for, live, stubs  # noqa: F401  (stubs: the two-stub fixture)

pytestmark = pytest.mark.stage8


def _config(estimate: str) -> GatewayConfig:
    return GatewayConfig.from_dict({"backends": [{"server_id": "s1", "url": "http://127.0.0.1:1", "capacity": 2}],
                                    "max_max_tokens": 4096, "estimate": estimate})  # fmt: skip


# -- the rule ----------------------------------------------------------------------------------------


def test_the_header_is_the_estimate_only_when_the_config_says_so_and_absent_falls_back_to_max_tokens() -> None:
    header, exact = _config("header"), _config("max_tokens")
    assert output_estimate({ESTIMATE_HEADER: "700"}, 16, header) == 700  # may exceed max_tokens: a guess, not a bound
    assert output_estimate({ESTIMATE_HEADER: " 5 "}, 16, header) == 5
    assert output_estimate({}, 16, header) == 16
    assert output_estimate({ESTIMATE_HEADER: "700"}, 16, exact) == 16  # the default ignores the header
    assert output_estimate({ESTIMATE_HEADER: "junk"}, 16, exact) == 16
    assert GatewayConfig.from_dict({"backends": [{"server_id": "s1", "url": "http://127.0.0.1:1", "capacity": 2}]}).estimate == "max_tokens"


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "ten", "", "4097", "１２", "1e3"])
def test_a_bad_header_is_400_naming_the_header_and_the_allowed_range(value: str) -> None:
    with pytest.raises(BadInput) as info:
        output_estimate({ESTIMATE_HEADER: value}, 16, _config("header"))
    assert info.value.status == 400
    assert ESTIMATE_HEADER in info.value.message and "from 1 to 4096" in info.value.message


def test_an_unknown_estimate_source_is_refused_by_the_config() -> None:
    with pytest.raises(ConfigError, match="estimate must be one of"):
        _config("guess")


# -- over HTTP ----------------------------------------------------------------------------------------


def test_over_http_a_bad_header_gets_400_and_costs_no_server_time(stubs: list[StubBackend]) -> None:
    with live(config_for(stubs, estimate="header")) as gw:
        r = completion(gw.url, headers={**AUTH, ESTIMATE_HEADER: "lots"})
        assert r.status_code == 400 and ESTIMATE_HEADER in r.json()["error"]["message"]
        assert sum(s.served for s in stubs) == 0 and gw.read(lambda g: g.path.stats()["submitted"]) == 0
        assert completion(gw.url).status_code == 200  # no header: served, priced by max_tokens


@pytest.mark.parametrize("source", ["header", "max_tokens"])
def test_the_path_prices_the_header_and_the_server_still_gets_max_tokens(stubs: list[StubBackend], source: str) -> None:
    with live(config_for(stubs, estimate=source)) as gw:
        seen: list[Any] = []

        def spy(g: Any) -> None:
            submit = g.path.submit
            g.path.submit = lambda req, now: (seen.append(req), submit(req, now))[1]

        gw.read(spy)
        r = completion(gw.url, prompt="a b c", max_tokens=3, headers={**AUTH, ESTIMATE_HEADER: "40"})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
        assert [(q.prompt_tokens, q.estimated_tokens) for q in seen] == [(3, 3 + (40 if source == "header" else 3))]
        (_, body), = [x for s in stubs for x in s.received]
        assert body["max_tokens"] == 3  # the server is asked for max_tokens: the truth it serves


@pytest.mark.parametrize("source", ["header", "max_tokens"])
def test_routing_follows_the_estimate_the_config_names(stubs: list[StubBackend], source: str) -> None:
    # A (max_tokens 3, guessed 1000) then B (max_tokens 50) are held on s1 and s2. C (max_tokens 3) goes where the
    # fewest tokens are outstanding: s2 if the gateway believed A's guess (1003 > 53), s1 if it priced A by max_tokens.
    for s in stubs:
        s.hold()
    cfg = config_for(stubs, estimate=source, strategy="least_outstanding_tokens", max_max_tokens=4096)
    with live(cfg) as gw:
        answers: list[httpx.Response] = []

        def send(max_tokens: int, headers: dict[str, str]) -> threading.Thread:
            t = threading.Thread(target=lambda: answers.append(completion(gw.url, max_tokens=max_tokens, headers=headers)))
            t.start()
            return t

        threads = [send(3, {**AUTH, ESTIMATE_HEADER: "1000"})]
        wait_until(lambda: stubs[0].in_flight == 1, what="A on s1")
        threads.append(send(50, AUTH))
        wait_until(lambda: stubs[1].in_flight == 1, what="B on s2")
        threads.append(send(3, AUTH))
        wait_until(lambda: stubs[0].in_flight + stubs[1].in_flight == 3, what="C on a server")
        assert (stubs[0].in_flight, stubs[1].in_flight) == ((1, 2) if source == "header" else (2, 1))
        for s in stubs:
            s.release()
        for t in threads:
            t.join(10)
        assert [a.status_code for a in answers] == [200, 200, 200]


# -- the load generator --------------------------------------------------------------------------------


def test_the_load_generator_sends_the_estimate_header_only_when_the_request_has_one(stubs: list[StubBackend]) -> None:
    sent = [LoadRequest(0.0, 2, 3, output_estimate=77), LoadRequest(0.0, 2, 3)]
    results = run_replay(stubs[0].url, sent, max_requests=2, max_seconds=10)
    assert all(r.ok for r in results)
    got = sorted(((h.get(ESTIMATE_HEADER) or "-"), b["max_tokens"]) for h, b in stubs[0].received)
    assert got == [("-", 3), ("77", 3)]
    with pytest.raises(ValueError, match="output_estimate"):
        LoadRequest(0.0, 2, 3, output_estimate=0)


def test_from_sim_workload_carries_the_simulators_estimates_and_keeps_max_tokens_the_truth() -> None:
    from solution.gateway.race import race_scenario
    from solution.sim.runner import prepare

    scenario = race_scenario(requests=60)
    inputs = prepare(scenario, 3)
    with_estimates = from_sim_workload(scenario, seed=3, estimates=True)
    exact = from_sim_workload(scenario, seed=3)
    assert [r.output_estimate for r in exact] == [None] * 60
    assert [(r.at, r.prompt_tokens, r.max_tokens) for r in with_estimates] == [(r.at, r.prompt_tokens, r.max_tokens) for r in exact]
    order = np.argsort(inputs.requests.arrival, kind="stable")
    want = (inputs.estimated - inputs.requests.prompt_tokens)[order]
    assert [r.output_estimate for r in with_estimates] == np.maximum(want, 1).tolist()
    assert any(r.output_estimate != r.max_tokens for r in with_estimates)  # sigma > 0: the estimate is not the truth
    with pytest.raises(ValueError, match="needs a Scenario"):
        from_sim_workload(scenario.workload, seed=3, estimates=True)
