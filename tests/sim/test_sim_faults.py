"""Faults and operator actions on the timetable, and the balancer contract."""

from __future__ import annotations

import numpy as np
import pytest

from solution import LoadBalancer
from solution.sim import (
    AddServer,
    BalancerContractError,
    Cluster,
    Crash,
    FailFraction,
    Outcome,
    Recover,
    RemoveServer,
    Scenario,
    ScenarioError,
    ServerSpec,
    Slowdown,
    Workload,
    scenarios,
    simulate,
)

pytestmark = pytest.mark.sim


def on(res, server_id: str) -> np.ndarray:
    return res.server == res.server_ids.index(server_id)


def test_without_detection_a_crashed_server_swallows_traffic_until_it_recovers() -> None:
    scenario = scenarios.crash(servers=3, load=0.5, requests=3000)
    crash_at, recover_at = (e.at for e in scenario.timetable)
    res = simulate(scenario, seed=1)
    dead = on(res, "gpu-0") & (res.arrival >= crash_at) & (res.arrival < recover_at)
    assert (res.outcome[dead] == Outcome.FAILED).all() and dead.sum() > 100
    assert res.count(Outcome.CRASHED) > 0
    assert (res.outcome[on(res, "gpu-0") & (res.arrival >= recover_at)] == Outcome.COMPLETED).all()
    # Least connections: the dead server looks idle, so it gets most of the traffic meanwhile.
    window = (res.arrival >= crash_at) & (res.arrival < recover_at)
    assert dead.sum() > 0.5 * window.sum()


def test_with_detection_the_gateway_removes_the_server_then_adds_it_back(recording) -> None:
    factory, made = recording()
    scenario = scenarios.crash(servers=3, load=0.5, requests=3000, detection=2.0)
    crash_at, recover_at = (e.at for e in scenario.timetable)
    res = simulate(scenario, factory, seed=1)
    gpu0 = on(res, "gpu-0")
    failed = gpu0 & (res.outcome == Outcome.FAILED)
    assert failed.any() and (res.arrival[failed] >= crash_at).all() and (res.arrival[failed] <= crash_at + 2.0).all()
    assert not (gpu0 & (res.arrival > crash_at + 2.0) & (res.arrival < recover_at)).any()
    assert (gpu0 & (res.arrival > recover_at)).any()
    ops = [c for c in made[0].calls if c[0] in ("add", "remove")]
    assert ops[-2:] == [("remove", "gpu-0"), ("add", "gpu-0")]


def test_a_failing_server_fails_that_fraction_of_its_requests() -> None:
    base = scenarios.steady(servers=2, load=0.5, requests=4000)
    everything = simulate(Scenario(base.cluster, base.workload, load=0.5, timetable=(FailFraction(0.0, "gpu-0", 1.0),)), seed=2)
    assert (everything.outcome[on(everything, "gpu-0")] == Outcome.FAILED).all()
    assert (everything.outcome[on(everything, "gpu-1")] == Outcome.COMPLETED).all()
    some = simulate(Scenario(base.cluster, base.workload, load=0.5, timetable=(FailFraction(0.0, "gpu-0", 0.3),)), seed=2)
    share = (some.outcome[on(some, "gpu-0")] == Outcome.FAILED).mean()
    sent = on(some, "gpu-0").sum()
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / sent)  # a binomial proportion, 4 standard errors


def test_a_slow_server_slows_its_requests_and_least_connections_shifts_traffic_away() -> None:
    scenario = scenarios.slow_server(servers=2, load=0.5, requests=3000, factor=4.0)
    slow, recover = (e.at for e in scenario.timetable)
    res = simulate(scenario, seed=3)
    during = (res.first_token > slow) & (res.finish < recover)
    before = res.finish < slow

    def slowdown(server_id: str) -> float:
        mine = on(res, server_id)
        return float(np.nanmedian(res.tpot[mine & during]) / np.nanmedian(res.tpot[mine & before]))

    assert slowdown("gpu-0") > 3.0  # 4x slower, minus the smaller batch it now runs
    assert slowdown("gpu-1") < slowdown("gpu-0") / 1.5  # busier, but not slow
    sent = (res.arrival > slow) & (res.arrival < recover)
    assert on(res, "gpu-1")[sent].mean() > 0.6  # its requests linger on gpu-0, so new ones go to gpu-1


def test_recovery_restores_speed_and_clears_failures() -> None:
    cluster = Cluster.uniform(1, capacity=4)
    workload = Workload(2000)
    timetable = (Slowdown(0.0, "gpu-0", 5.0), FailFraction(0.0, "gpu-0", 1.0), Recover(50.0, "gpu-0"))
    res = simulate(Scenario(cluster, workload, load=0.3, timetable=timetable), seed=5)
    assert (res.outcome[res.arrival < 50.0] == Outcome.FAILED).all()
    assert (res.outcome[res.arrival > 50.0] != Outcome.FAILED).all()


def test_a_timetable_must_name_known_servers() -> None:
    with pytest.raises(ScenarioError, match="nope"):
        Scenario(Cluster.uniform(1), Workload(5), timetable=(Crash(1.0, "nope"),))
    with pytest.raises(ScenarioError, match="two different specs"):
        Scenario(Cluster.uniform(1), Workload(5), timetable=(AddServer(1.0, ServerSpec("x")), AddServer(2.0, ServerSpec("x", "H100-80GB"))))
    twice = Scenario(Cluster.uniform(1), Workload(50), timetable=(AddServer(1.0, ServerSpec("gpu-0")),))
    with pytest.raises(ScenarioError, match="already in the pool"):
        simulate(twice)


@pytest.mark.parametrize(("event", "error"), [
    (lambda: Crash(-1.0, "a"), ValueError), (lambda: Crash(float("nan"), "a"), ValueError), (lambda: Crash(1.0, ""), ValueError),
    (lambda: Slowdown(1.0, "a", 0.0), ValueError), (lambda: FailFraction(1.0, "a", 1.5), ValueError),
    (lambda: Recover("1", "a"), TypeError), (lambda: AddServer(1.0, "a"), TypeError), (lambda: RemoveServer(1.0, 3), TypeError),
])  # fmt: skip
def test_timetable_events_check_their_arguments(event, error: type) -> None:
    with pytest.raises(error):
        event()


# -- the balancer contract ----------------------------------------------------


class AlwaysFirst(LoadBalancer):
    """Ignores load: always the first server."""

    def route_request(self, request_id: str, estimated_tokens: int) -> str:
        super().route_request(request_id, estimated_tokens)
        return "gpu-0"


class Stranger(LoadBalancer):
    def route_request(self, request_id: str, estimated_tokens: int) -> str:
        super().route_request(request_id, estimated_tokens)
        return "somewhere-else"


class DeafToRemove(LoadBalancer):
    """Keeps routing to removed servers."""

    def remove_server(self, server_id: str) -> None:
        pass


class Stub(LoadBalancer):
    def route_request(self, request_id: str, estimated_tokens: int) -> str:
        raise NotImplementedError("write route_request")


@pytest.mark.parametrize("engine", ["auto", "general"])
def test_routing_to_a_full_server_breaks_the_contract(engine: str) -> None:
    with pytest.raises(BalancerContractError, match="already running 1 of 1"):
        simulate(scenarios.classic(servers=3, load=0.9, requests=500), AlwaysFirst, engine=engine)


@pytest.mark.parametrize("engine", ["auto", "general"])
def test_routing_to_an_unknown_server_breaks_the_contract(engine: str) -> None:
    with pytest.raises(BalancerContractError, match="somewhere-else"):
        simulate(scenarios.classic(servers=3, requests=50), Stranger, engine=engine)


def test_routing_to_a_removed_server_breaks_the_contract() -> None:
    cluster = Cluster.uniform(1, capacity=4)
    timetable = (RemoveServer(0.0, "gpu-0"), AddServer(0.0, ServerSpec("spare", capacity=4)))
    with pytest.raises(BalancerContractError, match="removed"):
        simulate(Scenario(cluster, Workload(200), load=0.5, timetable=timetable), DeafToRemove)


def test_not_implemented_is_an_error_not_a_rejection() -> None:
    with pytest.raises(NotImplementedError):
        simulate(scenarios.classic(servers=2, requests=10), Stub)


def test_simulate_needs_a_factory_not_an_instance() -> None:
    with pytest.raises(TypeError, match="fresh balancer"):
        simulate(scenarios.classic(servers=2, requests=10), LoadBalancer())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="lacks"):
        simulate(scenarios.classic(servers=2, requests=10), object)
    with pytest.raises(ValueError, match="seed"):
        simulate(scenarios.classic(servers=2, requests=10), seed=-1)
    with pytest.raises(ValueError, match="engine"):
        simulate(scenarios.classic(servers=2, requests=10), engine="turbo")
