"""HAProxy as the peer: the generated configuration, and HAProxy's behaviour in front of stub servers.

Each behaviour test starts real HAProxy (Debian's 2.6) in front of stub
servers it controls (tests/gateway/stub_backend.py): requests can be held
open, so "in flight" is exact and nothing is timed by sleeping.  Without
the binary these tests skip with the install command, except under CI
(``CI`` set), where they fail: CI installs HAProxy (.ci/run).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.gateway import haproxy as hx
from solution.gateway.haproxy import HAPROXY_INSTALL, HAProxy, HAProxyConfigError, check_config, haproxy_config
from solution.gateway.loadgen import LoadRequest, LoadResult, run_replay
from tests.gateway.stub_backend import StubBackend, start_stubs, wait_until

pytestmark = pytest.mark.stage8

#: Fast checks for tests: a refused connection fails a check at once, so a dead server is seen within ~2 * 0.2 s.
FAST = dict(check_interval=0.2, timeout_check=1.0, fall=2, rise=1)  # a busy machine may answer a check late: 1 s


def require_haproxy() -> str:
    """The haproxy binary; skip with the install command when it is missing, but fail under CI (which installs it)."""
    binary = hx.haproxy_binary()
    if binary is None:
        message = f"haproxy is not installed; install it with: {HAPROXY_INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run the HAProxy tests: .ci/run installs it)")
        pytest.skip(message)
    return binary


@pytest.fixture
def stubs() -> Iterator[list[StubBackend]]:
    require_haproxy()
    started = start_stubs(["s1", "s2"])
    try:
        yield started
    finally:
        for stub in started:
            stub.release()
            stub.stop()


def send(pool: ThreadPoolExecutor, url: str, n: int, *, tokens: int = 2, max_seconds: float = 20.0) -> Future[list[LoadResult]]:
    """``n`` streamed requests at once, in a thread (the test keeps polling); the future holds their results."""
    requests = [LoadRequest(0.0, 4, tokens) for _ in range(n)]
    return pool.submit(run_replay, url, requests, max_requests=n, max_seconds=max_seconds, request_timeout=max_seconds)


# -- the configuration ---------------------------------------------------------------------------


def test_require_haproxy_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hx, "haproxy_binary", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y haproxy"):
        require_haproxy()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run"):
        require_haproxy()


def test_generated_config_has_every_directive_and_haproxy_accepts_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require_haproxy()
    text = haproxy_config({"s1": "http://127.0.0.1:8001", "s2": "http://127.0.0.1:8002"}, port=9000,
                          stats_socket=tmp_path / "admin.sock", maxconn_per_server={"s1": 4, "s2": 16},
                          timeout_queue=2.5, slowstart="30s", check_interval="1s")  # fmt: skip
    for line in ("balance leastconn", "option httpchk GET /health", "timeout queue 2500ms", "option redispatch 1",
                 "retry-on conn-failure",
                 "option http-no-delay", f"stats socket {tmp_path / 'admin.sock'} mode 600 level admin",
                 "server s1 127.0.0.1:8001 maxconn 4", "server s2 127.0.0.1:8002 maxconn 16"):  # fmt: skip
        assert line in text, line
    server_options = next(line for line in text.splitlines() if line.strip().startswith("default-server"))
    for option in ("check", "inter 1s", "fall 2", "rise 1", "observe layer7", "error-limit 3", "on-error mark-down", "slowstart 30s"):
        assert option in server_options, option
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    check_config(path)  # haproxy -c -f
    weighted = haproxy_config({"s1": "http://127.0.0.1:8001", "s2": "http://127.0.0.1:8002"}, port=9000,
                              stats_socket=tmp_path / "admin.sock", maxconn_per_server=4, weights={"s1": 35, "s2": 256})  # fmt: skip
    assert "server s1 127.0.0.1:8001 maxconn 4 weight 35" in weighted and "maxconn 4 weight 256" in weighted
    path.write_text(weighted)
    check_config(path)
    path.write_text(text.replace("balance leastconn", "balance no-such-algorithm"))
    with pytest.raises(HAProxyConfigError, match="balance only supports"):
        check_config(path)


_IDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-", min_size=1, max_size=12)


@settings(max_examples=15, deadline=None)
@given(servers=st.dictionaries(_IDS, st.tuples(st.integers(1, 65535), st.integers(1, 10_000), st.integers(1, 256)),
                               min_size=1, max_size=5),
       queue=st.floats(0.001, 3600.0), slow=st.sampled_from(["0s", "500ms", "30s", 12.5]),
       weighted=st.booleans())  # fmt: skip
def test_haproxy_accepts_every_config_generated_from_valid_input(tmp_path_factory, servers, queue, slow, weighted) -> None:  # type: ignore[no-untyped-def]
    require_haproxy()
    folder = tmp_path_factory.mktemp("cfg")
    text = haproxy_config({sid: f"http://127.0.0.1:{port}" for sid, (port, _, _) in servers.items()}, port=9000,
                          stats_socket=folder / "admin.sock", maxconn_per_server={sid: m for sid, (_, m, _) in servers.items()},
                          timeout_queue=queue, slowstart=slow,
                          weights={sid: w for sid, (_, _, w) in servers.items()} if weighted else None)  # fmt: skip
    for sid, (port, maxconn, weight) in servers.items():
        line = f"    server {sid} 127.0.0.1:{port} maxconn {maxconn}" + (f" weight {weight}" if weighted else "")
        assert text.count(f"    server {sid} ") == 1 and line + "\n" in text
    path = folder / "haproxy.cfg"
    path.write_text(text)
    check_config(path)


@pytest.mark.parametrize(("kwargs", "error"), [
    (dict(backends={}), ValueError),
    (dict(backends={"bad id": "http://127.0.0.1:1"}), ValueError),
    (dict(backends={"s1": "https://127.0.0.1:1"}), ValueError),
    (dict(backends={"s1": "http://127.0.0.1"}), ValueError),
    (dict(backends={"s1": "http://127.0.0.1:1/v1"}), ValueError),
    (dict(backends={"s1": 8001}), TypeError),
    (dict(backends="s1"), TypeError),
    (dict(backends=[("s1", "http://127.0.0.1:1"), ("s1", "http://127.0.0.1:2")]), ValueError),
    (dict(port=0), ValueError),
    (dict(port=True), TypeError),
    (dict(maxconn_per_server=0), ValueError),
    (dict(maxconn_per_server={"other": 2}), ValueError),
    (dict(maxconn_per_server=2.5), TypeError),
    (dict(timeout_queue=-1.0), ValueError),
    (dict(timeout_queue=float("nan")), ValueError),
    (dict(timeout_queue="10 s"), ValueError),
    (dict(slowstart=True), TypeError),
    (dict(balance="leastconn; rm"), ValueError),
    (dict(stats_socket="/tmp/a b.sock"), ValueError),
    (dict(error_limit=0), ValueError),
    (dict(weights={"s1": 0}), ValueError),
    (dict(weights={"s1": 257}), ValueError),
    (dict(weights={"s9": 2}), ValueError),
    (dict(weights=[2]), TypeError),
    (dict(retry_on="conn-failure timeout"), ValueError),
    (dict(retry_on=""), ValueError),
])  # fmt: skip
def test_config_bad_input_is_refused_with_a_clear_error(kwargs: dict, error: type[Exception]) -> None:
    args = dict(backends={"s1": "http://127.0.0.1:8001"}, port=9000, stats_socket="/tmp/x.sock", maxconn_per_server=4)
    args.update(kwargs)
    backends = args.pop("backends")
    with pytest.raises(error):
        haproxy_config(backends, **args)


def test_haproxy_class_refuses_a_config_haproxy_rejects_and_leaves_nothing_behind(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import shutil
    import tempfile
    from pathlib import Path

    require_haproxy()
    folder = Path(tempfile.mkdtemp(prefix="hx-", dir="/tmp"))  # short: a unix socket path is at most 97 characters
    monkeypatch.setattr(tempfile, "tempdir", str(folder))  # HAProxy's folder goes here, away from other workers' HAProxies
    try:
        with pytest.raises(HAProxyConfigError, match="timer overflow"):  # well-formed, but over HAProxy's 24.8 days
            HAProxy({"s1": "http://127.0.0.1:8001"}, maxconn_per_server=4, timeout_client="1000000d")
        assert not list(folder.iterdir())
        accepted = HAProxy({"s1": "http://127.0.0.1:8001"}, maxconn_per_server=4)  # (the folder does land there)
        assert [p.name.startswith("lb-haproxy-") for p in folder.iterdir()] == [True]
        accepted.stop()  # never started: stop() still removes its folder
        assert not list(folder.iterdir())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_global_maxconn_fits_the_open_file_limit(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import resource

    from solution.gateway.haproxy import default_global_maxconn

    for hard, want in ((1024, 480), (20_000, 4096), (100, 18), (resource.RLIM_INFINITY, 4096)):
        monkeypatch.setattr(resource, "getrlimit", lambda which, hard=hard: (hard, hard))
        assert default_global_maxconn() == want
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 1024))
    text = haproxy_config({"s1": "http://127.0.0.1:8001"}, port=9000, stats_socket="/tmp/x.sock", maxconn_per_server=4)
    assert "    maxconn 480\n" in text  # HAProxy would need ~8,200 descriptors for 4,096 and refuse to start


def test_a_long_tmpdir_moves_the_folder_to_tmp_so_the_socket_path_fits(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import tempfile

    from solution.gateway.haproxy import SOCKET_PATH_MAX

    require_haproxy()
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    proxy = HAProxy({"s1": "http://127.0.0.1:8001"}, maxconn_per_server=4)
    try:
        assert len(proxy.socket_path) <= SOCKET_PATH_MAX and proxy.socket_path.startswith("/tmp/lb-haproxy-")
    finally:
        proxy.stop()
    with pytest.raises(ValueError, match="at most 97"):
        haproxy_config({"s1": "http://127.0.0.1:8001"}, port=9000, stats_socket=str(deep / "admin.sock"), maxconn_per_server=4)


def test_a_port_taken_before_haproxy_binds_it_is_replaced_by_another(stubs: list[StubBackend]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proxy = HAProxy({"s1": stubs[0].url}, maxconn_per_server=2)
        proxy._configure(taken.getsockname()[1])  # as if another process took the free port in between
        with proxy:
            assert proxy.port != taken.getsockname()[1] and proxy.alive()
            (result,) = run_replay(proxy.url, [LoadRequest(0.0, 3, 2)], max_requests=1, max_seconds=10)
    assert result.ok and not proxy.alive()


# -- HAProxy's behaviour -------------------------------------------------------------------------


def test_leastconn_sends_new_requests_to_the_server_with_fewer_in_flight(stubs: list[StubBackend]) -> None:
    s1, s2 = stubs
    with HAProxy({s.server_id: s.url for s in stubs}, maxconn_per_server=8, **FAST) as proxy, ThreadPoolExecutor(3) as pool:
        s1.hold()
        s2.hold()
        first = send(pool, proxy.url, 4)
        wait_until(lambda: s1.in_flight + s2.in_flight == 4, what="4 requests in flight")
        assert (s1.in_flight, s2.in_flight) == (2, 2), proxy.server_states()  # a tie: round robin within the least loaded
        states = proxy.server_states()
        assert states["s1"].in_flight == 2 and states["s2"].in_flight == 2
        s2.release()  # s2's two finish; s1 still has two in flight
        wait_until(lambda: s2.in_flight == 0, what="s2 to finish")
        s2.hold()
        second = send(pool, proxy.url, 2)
        wait_until(lambda: s2.in_flight == 2, what="2 new requests on s2")
        assert s1.in_flight == 2  # round robin would have sent one of them to s1
        s1.release()
        s2.release()
        results = first.result(20) + second.result(20)
    assert [r.status for r in results] == [200] * 6
    assert Counter(r.server for r in results) == {"s1": 2, "s2": 4}


def test_weighted_leastconn_compares_connections_over_weight(stubs: list[StubBackend]) -> None:
    s1, s2 = stubs
    with HAProxy({s.server_id: s.url for s in stubs}, maxconn_per_server=16, weights={"s1": 1, "s2": 3}, **FAST) as proxy, \
            ThreadPoolExecutor(1) as pool:  # fmt: skip
        s1.hold()
        s2.hold()
        future = send(pool, proxy.url, 8)
        wait_until(lambda: s1.in_flight + s2.in_flight == 8, what="8 requests in flight")
        assert (s1.in_flight, s2.in_flight) == (2, 6), proxy.server_states()  # 2/1 == 6/3: equal load per weight
        s1.release()
        s2.release()
        assert [r.status for r in future.result(20)] == [200] * 8


@pytest.mark.parametrize("retry_on", ["conn-failure", "conn-failure response-timeout"])
def test_a_server_that_never_answers_costs_a_504_unless_retry_on_response_timeout(stubs: list[StubBackend], retry_on: str) -> None:
    s1, s2 = stubs
    # Checks every 5 s: s1 stays "up" while it swallows requests (headers never come: an unstreamed request is held).
    with HAProxy({s.server_id: s.url for s in stubs}, maxconn_per_server=8, check_interval=5.0, timeout_server=0.5,
                 retry_on=retry_on) as proxy:  # fmt: skip
        s1.hold()
        results = run_replay(proxy.url, [LoadRequest(0.01 * i, 3, 2, stream=False) for i in range(4)], max_requests=4,
                             max_seconds=10)  # fmt: skip
        s1.release()
    statuses = sorted(r.status or 0 for r in results)
    if retry_on == "conn-failure":
        assert statuses.count(504) >= 1 and all(r.server == "s2" for r in results if r.status == 200)  # no L7 retry
    else:
        assert statuses == [200] * 4 and all(r.server == "s2" for r in results)  # re-sent to s2 after 0.5 s of silence


def test_a_crashed_server_is_marked_down_and_requests_go_to_the_other(stubs: list[StubBackend]) -> None:
    s1, s2 = stubs
    with HAProxy({s.server_id: s.url for s in stubs}, maxconn_per_server=8, **FAST) as proxy:
        proxy.wait_for(lambda st: all(s.op_state == "up" for s in st.values()), timeout=5)
        s1.crash()
        states = proxy.wait_for(lambda st: st["s1"].op_state == "down", timeout=5)
        assert states["s1"].status.startswith("DOWN") and states["s2"].op_state == "up"
        results = run_replay(proxy.url, [LoadRequest(0.0, 4, 2) for _ in range(6)], max_requests=6, max_seconds=10)
    assert [(r.status, r.server) for r in results] == [(200, "s2")] * 6


def test_failed_answers_mark_a_server_down_though_its_health_check_passes(stubs: list[StubBackend]) -> None:
    s1, s2 = stubs
    # Checks every 5 s: what marks s1 down here is observe layer7 (3 consecutive 500s), not the check.
    with HAProxy({s.server_id: s.url for s in stubs}, maxconn_per_server=8, check_interval=5.0, error_limit=3) as proxy:
        s1.status = 500
        results = run_replay(proxy.url, [LoadRequest(0.01 * i, 4, 2) for i in range(8)], max_requests=8, max_seconds=10)
        states = proxy.server_states()
    assert s1.healthy and states["s1"].op_state == "down"
    assert sum(r.status == 500 for r in results) == 3  # error-limit 3: the fourth request no longer went to s1
    assert all(r.server == "s2" for r in results if r.status == 200)


def test_a_server_back_from_a_crash_ramps_up_in_slow_start(stubs: list[StubBackend]) -> None:
    s1, _ = stubs
    with HAProxy({s.server_id: s.url for s in stubs}, maxconn_per_server=8, slowstart="20s", **FAST) as proxy:
        assert proxy.server_states()["s1"].op_state == "up"  # slowstart never applies at HAProxy's start
        s1.crash()
        proxy.wait_for(lambda st: st["s1"].op_state == "down", timeout=5)
        s1.start()
        states = proxy.wait_for(lambda st: st["s1"].op_state != "down", timeout=5)
    assert states["s1"].op_state == "starting" and states["s1"].takes_new


def test_drain_through_the_runtime_api_lets_in_flight_finish_and_sends_nothing_new(stubs: list[StubBackend]) -> None:
    s1, s2 = stubs
    with HAProxy({s.server_id: s.url for s in stubs}, maxconn_per_server=8, **FAST) as proxy, ThreadPoolExecutor(3) as pool:
        s1.hold()
        s2.hold()
        first = send(pool, proxy.url, 4)
        wait_until(lambda: s1.in_flight + s2.in_flight == 4, what="4 requests in flight")
        assert (s1.in_flight, s2.in_flight) == (2, 2), proxy.server_states()
        proxy.drain("s1")
        state = proxy.server_states()["s1"]
        assert state.drain and not state.takes_new and state.status == "DRAIN" and state.in_flight == 2
        second = send(pool, proxy.url, 4)
        wait_until(lambda: s2.in_flight == 6, what="the 4 new requests on s2")
        assert s1.in_flight == 2
        s1.release()
        s2.release()
        results = first.result(20) + second.result(20)
        proxy.ready("s1")
        assert proxy.server_states()["s1"].takes_new
    assert [r.status for r in results] == [200] * 8  # the drained server's in-flight requests finished
    assert Counter(r.server for r in results) == {"s1": 2, "s2": 6}


def test_runtime_api_refuses_an_unknown_server(stubs: list[StubBackend]) -> None:
    with HAProxy({s.server_id: s.url for s in stubs}, maxconn_per_server=8, **FAST) as proxy:
        with pytest.raises(ValueError, match="unknown server"):
            proxy.drain("s9")
        with pytest.raises(hx.RuntimeAPIError):
            proxy.command("set server be/s9 state drain")


def test_a_full_server_queues_requests_and_timeout_queue_answers_503(stubs: list[StubBackend]) -> None:
    s1 = stubs[0]
    with HAProxy({"s1": s1.url}, maxconn_per_server=1, timeout_queue=0.5, **FAST) as proxy, ThreadPoolExecutor(2) as pool:
        s1.hold()
        future = send(pool, proxy.url, 3)
        wait_until(lambda: s1.in_flight == 1 and proxy.backend_queue() == 2, what="1 request in flight, 2 queued")
        queued_503 = pool.submit(lambda: wait_until(lambda: proxy.backend_queue() == 0, what="the queue to time out"))
        queued_503.result(10)
        s1.release()
        results = future.result(20)
    assert sorted(r.status for r in results) == [200, 503, 503]
    assert all(r.server is None for r in results if r.status == 503)  # HAProxy answered, not the server


# -- in front of the course's inference servers ------------------------------------------------------


def test_haproxy_in_front_of_inference_servers_spreads_streams_and_drops_a_failing_server(fleet) -> None:  # type: ignore[no-untyped-def]
    require_haproxy()
    capacity = {"a100": 2, "h100": 4, "faulty": 4}
    requests = [LoadRequest(0.005 * i, 20, 8) for i in range(30)]
    with HAProxy(fleet.urls, maxconn_per_server=capacity, **FAST) as proxy:
        proxy.wait_for(lambda st: all(s.op_state == "up" for s in st.values()), timeout=5)
        results = run_replay(proxy.url, requests, max_requests=30, max_seconds=20)
        assert all(r.ok and r.tokens == 8 for r in results), [r for r in results if not r.ok][:3]
        assert set(Counter(r.server for r in results)) == set(capacity)  # each server took some
        fleet.fault("faulty", "fail", fraction=1.0, health_fails=True)  # every answer 500, /health 503
        try:
            proxy.wait_for(lambda st: st["faulty"].op_state == "down", timeout=5)
            after = run_replay(proxy.url, requests[:10], max_requests=10, max_seconds=20)
        finally:
            fleet.fault("faulty", "clear")
        states = proxy.wait_for(lambda st: st["faulty"].op_state != "down", timeout=5)
    assert all(r.ok and r.server != "faulty" for r in after)
    assert states["faulty"].op_state == "starting"  # back in slow start
