"""Notebook 08's live panel: real servers and a gateway, the panel as their client; every process stopped after.

The fleet (two small inference servers) and the gateway are started once for
the module inside ``with`` blocks, so they stop even when a test fails (the
session guard of tests/gateway/conftest.py is not loaded here: this module
checks its own processes at the end).
"""

from __future__ import annotations

import io
import math
import statistics
import time
from collections.abc import Iterator

import pytest

from solution.gateway import procs
from solution.gateway.app import BackgroundGateway
from solution.gateway.config import GatewayConfig
from solution.gateway.procs import ServerSpec, start_fleet
from solution.widgets import gateway as gw_widget

pytestmark = pytest.mark.stage8

KEY = "sk-panel-test"


def _readable(fig) -> None:
    fig.savefig(io.BytesIO(), format="png")
    figures = pytest.importorskip("tests.sim.test_figures", reason="the figure rule lives in tests/sim (not in every copy)")
    assert figures.figure_problems(fig) == []


def _wait_until(condition, timeout: float = 10.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.01)
    return value


@pytest.fixture(scope="module")
def live() -> Iterator[tuple]:
    specs = [ServerSpec("a10", gpu="a10-24gb", capacity=2, time_scale=0.05),
             ServerSpec("h100", gpu="h100-80gb", capacity=4, time_scale=0.05)]  # fmt: skip
    try:
        with start_fleet(specs) as fleet:
            config = GatewayConfig.from_dict({
                "backends": [{"server_id": "a10", "url": fleet.url("a10"), "capacity": 2},
                             {"server_id": "h100", "url": fleet.url("h100"), "capacity": 4}],
                "keys": {KEY: {"tenant": "alice", "tier": "premium"}},
                "tiers": [{"name": "premium", "queue_class": 1}],  # stage 6's routing: the candidate's bundle has no reference LeastConnections
                "health": {"interval": 0.5, "timeout": 0.4},
            })  # fmt: skip
            with BackgroundGateway(config) as gateway, gw_widget.GatewayPanel(gateway.url, KEY, servers=fleet.urls) as panel:
                yield fleet, gateway, panel
    finally:
        left = procs.live_processes()
        procs.stop_all(grace=1.0)
        assert not left, f"processes outlived the panel's tests: {left}"


def test_a_chat_answer_streams_token_by_token_into_the_answer_box(live) -> None:
    fleet, _, panel = live
    answer = panel.ask("what does a load balancer do", max_tokens=12)
    assert answer.status == 200 and answer.chunks == 12 and answer.server in fleet.urls
    assert 0 < answer.ttft <= answer.e2e
    assert answer.text.split()[0] in panel.answer.value and f"server <b>{answer.server}</b>" in panel.answer.value


def test_a_wrong_key_shows_the_gateways_401_in_the_answer_box(live) -> None:
    _, gateway, _ = live
    with gw_widget.GatewayPanel(gateway.url, "sk-wrong") as stranger:
        answer = stranger.ask("hello", max_tokens=2)
        assert answer.status == 401 and "<b>401</b>" in stranger.answer.value
        assert math.isnan(answer.ttft)


def test_background_load_moves_the_metrics_and_each_scrape_reads_them(live) -> None:
    _, _, panel = live
    before = panel.scrape()
    assert set(before.in_flight) == {"a10", "h100"} and set(before.server_waiting) == {"a10", "h100"}
    results = panel.run_load(rate=30.0, seconds=0.6)
    after = panel.scrape()
    assert results and all(r.status == 200 for r in results)
    assert after.outcomes.get("delivered", 0) - before.outcomes.get("delivered", 0) >= len(results)
    assert after.ttft_count - before.ttft_count >= len(results)
    assert after.t > before.t


def test_load_with_scrapes_records_the_metrics_while_it_runs(live) -> None:
    _, _, panel = live
    n = len(panel.samples)
    results = panel.run_load(rate=20.0, seconds=0.5, scrape_every=0.1)
    taken = list(panel.samples)[n:]
    assert results and len(taken) >= 3, f"{len(taken)} scrapes during half a second of load at one per 0.1 s"
    assert taken[-1].ttft_count - taken[0].ttft_count >= 1
    with pytest.raises(ValueError):
        panel.run_load(rate=1.0, seconds=0.5, scrape_every=2.0)


def test_the_figure_is_readable_with_and_without_answers(live) -> None:
    _, _, panel = live
    panel.scrape()
    _readable(panel.figure())
    _readable(gw_widget.panel_figure(list(panel.samples)))


def test_the_button_returns_at_once_and_the_answer_arrives(live) -> None:
    _, _, panel = live
    n = len(panel.answers)
    started = time.thread_time()
    future = panel.ask_soon()
    assert (time.thread_time() - started) < 0.05  # the click's own work; the stream runs on the panel's loop
    future.result(10)
    assert len(panel.answers) == n + 1 and panel.answers[-1].status == 200


def test_a_redraw_is_well_under_a_second(live) -> None:
    """The draw's own CPU time (thread time, so the wait for a core on a shared runner does not count)."""
    _, _, panel = live
    panel.run_load(rate=20.0, seconds=0.3)
    for _ in range(3):
        panel.scrape()
    times = []
    for _ in range(3):
        panel.redraw()
        times.append(panel.drawn_ms)
    assert statistics.median(times) < 500, f"redraw took {times} ms of CPU"
    assert panel.image.value[:4] == b"\x89PNG" and "drawn in" in panel.status.value


def test_live_mode_scrapes_on_its_own_and_stops_when_turned_off(live) -> None:
    _, _, panel = live
    n = len(panel.samples)
    panel.live.value = True
    try:
        _wait_until(lambda: len(panel.samples) >= n + 2, timeout=10, what="two live scrapes")
    finally:
        panel.live.value = False
    time.sleep(0)  # the refresher is cancelled on the panel's loop
    _wait_until(lambda: panel._live_task is None, what="the refresher's end")


def test_the_slider_starts_and_stops_background_load(live) -> None:
    _, _, panel = live
    n = len(panel.load_results)
    panel.rate.value = 20.0
    try:
        _wait_until(lambda: len(panel.load_results) > n, timeout=10, what="a load request's answer")
    finally:
        panel.rate.value = 0.0
    assert panel._load_task is None


def test_close_stops_the_loop_and_its_thread_and_is_idempotent(live) -> None:
    _, gateway, _ = live
    panel = gw_widget.GatewayPanel(gateway.url, KEY, rate=5.0, live=True)
    panel.close()
    panel.close()
    assert panel.closed and not panel._thread.is_alive() and panel.loop.is_closed()


@pytest.mark.parametrize("kwargs, error", [({"url": "localhost:1"}, ValueError), ({"api_key": ""}, TypeError),
                                           ({"rate": -1.0}, ValueError), ({"interval": 0.0}, ValueError),
                                           ({"max_in_flight": 0}, ValueError), ({"rate": True}, ValueError)])  # fmt: skip
def test_bad_arguments_are_refused_before_anything_starts(kwargs, error) -> None:
    args = {"url": "http://127.0.0.1:9", "api_key": KEY, **kwargs}
    with pytest.raises(error):
        gw_widget.GatewayPanel(args.pop("url"), args.pop("api_key"), **args)


def test_parse_metrics_and_sample_from_read_the_exposition_format() -> None:
    gateway_text = (
        '# TYPE lb_gateway_server_in_flight gauge\nlb_gateway_server_in_flight{server="a"} 2.0\n'
        'lb_gateway_server_in_flight{server="b"} 0.0\n# TYPE lb_gateway_queue_depth gauge\nlb_gateway_queue_depth 3.0\n'
        '# TYPE lb_gateway_ttft_seconds histogram\nlb_gateway_ttft_seconds_bucket{le="+Inf",tier="none"} 4.0\n'
        'lb_gateway_ttft_seconds_count{tier="none"} 4.0\nlb_gateway_ttft_seconds_sum{tier="none"} 0.4\n'
        'lb_gateway_ttft_seconds_count{tier="premium"} 1.0\nlb_gateway_ttft_seconds_sum{tier="premium"} 0.1\n'
        '# TYPE lb_gateway_requests counter\nlb_gateway_requests_total{outcome="delivered",tier="none"} 5.0\n'
        'lb_gateway_requests_total{outcome="delivered",tier="premium"} 1.0\n'
    )  # fmt: skip
    s = gw_widget.sample_from(1.5, gateway_text, {"a": "# TYPE inference_requests_waiting gauge\ninference_requests_waiting 7\n"})
    assert s.in_flight == {"a": 2.0, "b": 0.0} and s.queue_depth == 3.0 and s.server_waiting == {"a": 7.0}
    assert (s.ttft_count, round(s.ttft_sum, 6), s.outcomes) == (5.0, 0.5, {"delivered": 6.0})
    with pytest.raises(TypeError):
        gw_widget.parse_metrics(b"x 1")


def test_every_control_changes_what_the_panel_shows_at_once(live) -> None:
    """A person who moves a control sees it answer (the browser test drives each kind the same way)."""
    _, gateway, _ = live
    with gw_widget.GatewayPanel(gateway.url, KEY) as panel:
        for control, value in ((panel.prompt, "one two three"), (panel.max_tokens, 7), (panel.rate, 2.5), (panel.live, True)):
            before = panel.settings.value
            control.value = value
            assert panel.settings.value != before, f"changing {control.description!r} left the settings line as it was"
        assert "3 prompt words (13 characters)" in panel.settings.value and "at most 7 tokens" in panel.settings.value
        before = panel.settings.value
        panel.prompt.value += "x"  # an edit that keeps the word count still shows
        assert panel.settings.value != before
        assert "2.5 requests/s" in panel.settings.value and "on, every 0.5 s" in panel.settings.value
