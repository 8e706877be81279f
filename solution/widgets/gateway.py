"""Stage-8 live panel: a chat answer streamed through the gateway while background load runs, and its metrics moving.

Everything here talks HTTP to a running gateway (``BackgroundGateway`` or
``python -m solution.gateway``) and, optionally, to its inference servers:
the panel is a client, like the official ``openai`` package, and never
reaches into the gateway's objects.

Pure parts (no sockets; each passes the course's figure rule,
``tests/sim/test_figures.py``):

* :func:`parse_metrics`: Prometheus text (``/metrics``) -> ``{name: {labels: value}}``,
  with ``prometheus_client.parser`` (the format's own parser).
* :class:`Sample` and :func:`sample_from`: one scrape of the gateway (and
  the servers): in flight per server, queue depths, the TTFT histogram's
  running sum and count, answers by outcome.
* :func:`panel_figure`: samples over time -> in flight per server, queue
  depth (the gateway's and each server's), and mean TTFT per scrape
  interval with the panel's own answers as points.

The widget:

* :class:`GatewayPanel`: a prompt box and a button that streams a chat
  answer through the gateway (token by token into the answer box), a slider
  for the background load (requests per second, Poisson arrivals, seeded),
  and the figure, redrawn from ``/metrics`` every ``interval`` seconds while
  it is live.  All network work runs on one asyncio loop in a daemon thread,
  so a click returns at once and the notebook's kernel is never blocked;
  :meth:`GatewayPanel.close` stops the load, the refresher, the loop and the
  thread (the notebook's last cell calls it).

Cost: a scrape is O(S + M) for S servers and M metric lines; a redraw is
O(samples kept) (at most ``history / interval`` of them).
"""

from __future__ import annotations

import asyncio
import html
import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure

__all__ = ["parse_metrics", "Sample", "sample_from", "Answer", "panel_figure", "GatewayPanel", "SERVER_COLORS"]

#: Colours of the servers' lines, in the order they are first seen.
SERVER_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2")

Labels = tuple[tuple[str, str], ...]


def parse_metrics(text: str) -> dict[str, dict[Labels, float]]:
    """Prometheus text exposition -> ``{sample name: {sorted label pairs: value}}``.  O(lines).

    Uses ``prometheus_client.parser.text_string_to_metric_families``, so
    counters keep their ``_total`` suffix and histograms give ``_bucket``,
    ``_sum`` and ``_count`` samples, exactly as scraped.

    >>> parse_metrics('# TYPE x gauge\\nx{server="a"} 2\\n')["x"]
    {(('server', 'a'),): 2.0}
    """
    from prometheus_client.parser import text_string_to_metric_families

    if not isinstance(text, str):
        raise TypeError(f"text must be the /metrics body as a str, got {type(text).__name__}")
    out: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = float(s.value)
    return out


def _by(metrics: Mapping[str, Mapping[Labels, float]], name: str, label: str) -> dict[str, float]:
    """The samples of ``name`` keyed by one label's value (summed over the other labels)."""
    out: dict[str, float] = {}
    for labels, value in metrics.get(name, {}).items():
        key = dict(labels).get(label)
        if key is not None:
            out[key] = out.get(key, 0.0) + value
    return out


def _total(metrics: Mapping[str, Mapping[Labels, float]], name: str, **where: str) -> float:
    """The sum of ``name``'s samples whose labels include ``where``."""
    return sum(v for labels, v in metrics.get(name, {}).items() if all(dict(labels).get(k) == w for k, w in where.items()))


@dataclass(frozen=True)
class Sample:
    """One scrape, ``t`` seconds after the panel started.

    ``in_flight``: the gateway's attempts running per server
    (``lb_gateway_server_in_flight``); ``server_waiting``: each server's own
    queue (``inference_requests_waiting``, when the panel knows the servers);
    ``queue_depth``: the gateway's queue; ``ttft_sum`` / ``ttft_count``: the
    gateway's TTFT histogram so far (all tiers); ``outcomes``: answers so far
    by outcome (``lb_gateway_requests_total``); ``retries``: re-sends so far.
    """

    t: float
    in_flight: Mapping[str, float]
    queue_depth: float
    ttft_sum: float
    ttft_count: float
    outcomes: Mapping[str, float] = field(default_factory=dict)
    server_waiting: Mapping[str, float] = field(default_factory=dict)
    retries: float = 0.0


def sample_from(t: float, gateway_text: str, server_texts: Mapping[str, str] | None = None) -> Sample:
    """A :class:`Sample` from the gateway's ``/metrics`` text and, optionally, each server's.  O(lines)."""
    g = parse_metrics(gateway_text)
    waiting = {}
    for sid, text in (server_texts or {}).items():
        waiting[sid] = _total(parse_metrics(text), "inference_requests_waiting")
    return Sample(
        t=float(t),
        in_flight=_by(g, "lb_gateway_server_in_flight", "server"),
        queue_depth=_total(g, "lb_gateway_queue_depth"),
        ttft_sum=_total(g, "lb_gateway_ttft_seconds_sum"),
        ttft_count=_total(g, "lb_gateway_ttft_seconds_count"),
        outcomes=_by(g, "lb_gateway_requests_total", "outcome"),
        server_waiting=waiting,
        retries=_total(g, "lb_gateway_retries_total"),
    )


@dataclass(frozen=True)
class Answer:
    """One chat answer streamed through the gateway, as the panel's client saw it.

    ``at``: seconds after the panel started; ``status``: the HTTP status;
    ``text``: the streamed text (or the error's message); ``ttft`` / ``e2e``:
    seconds to the first token and to the end (NaN when there was none);
    ``server``: the ``X-Server-Id`` header (which server answered), if any;
    ``chunks``: content chunks received; ``retry_after``: the header of a 429/503.
    """

    at: float
    status: int
    text: str
    ttft: float
    e2e: float
    server: str = ""
    chunks: int = 0
    retry_after: str | None = None


def _intervals(samples: Sequence[Sample]) -> tuple[list[float], list[float]]:
    """Mean TTFT of the answers delivered between consecutive samples: (times, seconds); NaN where none."""
    ts, ys = [], []
    for a, b in zip(samples, samples[1:]):
        n = b.ttft_count - a.ttft_count
        ts.append(b.t)
        ys.append((b.ttft_sum - a.ttft_sum) / n if n > 0 else math.nan)
    return ts, ys


def panel_figure(samples: Sequence[Sample], answers: Sequence[Answer] = (), *, title: str = "",
                 figsize: tuple[float, float] = (9.5, 6.6)) -> Figure:  # fmt: skip
    """The panel's picture: in flight per server, queue depths, and TTFT, over the panel's time.

    Top: the gateway's attempts running on each server.  Middle: the
    gateway's queue and each server's own queue (when scraped).  Bottom: the
    mean TTFT of the answers the gateway delivered in each scrape interval
    (from its histogram's sum and count), and the panel's own chat answers
    as points.  O(len(samples) + len(answers)).
    """
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(left=0.09, right=0.97, bottom=0.08, top=0.9, hspace=0.8)
    top, mid, bottom = fig.subplots(3, 1, sharex=True)
    fig.suptitle(title or "the gateway under load, from its /metrics", fontsize=11)
    ts = [s.t for s in samples]
    servers = list(dict.fromkeys(sid for s in samples for sid in (*s.in_flight, *s.server_waiting)))
    colors = {sid: SERVER_COLORS[k % len(SERVER_COLORS)] for k, sid in enumerate(servers)}
    for sid in servers:
        ys = [s.in_flight.get(sid, 0.0) for s in samples]
        top.step(ts, ys, where="post", color=colors[sid], label=f"{sid}: attempts in flight")
    top.set_title("requests in flight on each server (the gateway's view)", fontsize=9)
    top.set_ylabel("in flight (requests)")
    mid.step(ts, [s.queue_depth for s in samples], where="post", color="black", label="the gateway's queue")
    for sid in servers:
        if any(sid in s.server_waiting for s in samples):
            mid.step(ts, [s.server_waiting.get(sid, math.nan) for s in samples], where="post", color=colors[sid],
                     linestyle="--", label=f"{sid}'s own queue")  # fmt: skip
    mid.set_title("queue depth: the gateway's and each server's", fontsize=9)
    mid.set_ylabel("waiting (requests)")
    its, iys = _intervals(samples)
    if any(math.isfinite(y) for y in iys):
        bottom.plot(its, [y * 1000 for y in iys], marker=".", color="#72b7b2", label="mean TTFT of the gateway's answers per scrape")
    mine = [a for a in answers if not math.isnan(a.ttft)]
    if mine:
        bottom.plot([a.at for a in mine], [a.ttft * 1000 for a in mine], "o", color="#e45756", label="your chat answers (client side)")
    if not bottom.get_lines():
        bottom.text(0.5, 0.5, "no answer delivered between two scrapes yet", transform=bottom.transAxes, ha="center", va="center")
    bottom.set_title("time to first token", fontsize=9)
    bottom.set_ylabel("TTFT (ms)")
    bottom.set_xlabel("time since the panel started (s)")
    for ax in (top, mid, bottom):
        ax.grid(alpha=0.3)
        ax.tick_params(labelbottom=True)
        ax.set_xlabel("time since the panel started (s)")
        if ax.get_lines():
            ax.legend(fontsize="x-small", loc="upper left", ncol=2)
    top.set_ylim(bottom=0)
    mid.set_ylim(bottom=0)
    return fig


def _png(fig: Figure, dpi: int = 72) -> bytes:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def _sse_content(line: str) -> tuple[str, bool]:
    """One SSE line -> (the content it carries, whether it ends the stream)."""
    if not line.startswith("data:"):
        return "", False
    data = line[5:].strip()
    if data == "[DONE]":
        return "", True
    try:
        choice = json.loads(data)["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return "", False
    delta = choice.get("delta") or {}
    return str(delta.get("content") or choice.get("text") or ""), False


class GatewayPanel:
    """``display(GatewayPanel(url, key))``: stream a chat answer through the gateway while background load runs.

    Args:
        url: the gateway's base URL (``http://127.0.0.1:PORT``).
        api_key: a key the gateway accepts (sent as ``Authorization: Bearer``).
        servers: ``{server_id: base_url}`` of the inference servers, to plot
            their own queues too (optional).
        model: the model id the gateway serves.
        rate: background load to start with, in requests per second (0: none).
        seed: the load's random stream (arrival gaps, prompt and answer sizes).
        interval: seconds between scrapes while live.
        history: seconds of samples kept (older ones are dropped).
        live: start the refresher (scrape + redraw every ``interval``) at once.
        max_in_flight: the load's own requests in flight at most (arrivals
            beyond it are skipped and counted): the panel cannot flood a
            small fleet by accident.

    Raises:
        TypeError / ValueError: a bad argument, before anything starts.

    Methods that wait (:meth:`ask`, :meth:`refresh`, :meth:`run_load`) are
    for a notebook cell or a test; the widget's own button and slider never
    wait.  ``tests/test_gateway_widgets.py`` measures the time per redraw.
    """

    def __init__(self, url: str, api_key: str, *, servers: Mapping[str, str] | None = None, model: str = "course-model",
                 rate: float = 0.0, seed: int = 0, interval: float = 0.5, history: float = 60.0, live: bool = False,
                 max_in_flight: int = 32) -> None:  # fmt: skip
        import ipywidgets as W

        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be the gateway's base URL (http://host:port), got {url!r}")
        if not isinstance(api_key, str) or not api_key:
            raise TypeError("api_key must be a non-empty str")
        for name, value, low in (("rate", rate, 0.0), ("interval", interval, 0.05), ("history", history, 1.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
                raise ValueError(f"{name} must be a finite number >= {low}, got {value!r}")
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
        self.url = url.rstrip("/")
        self.servers = dict(servers or {})
        self.model = model
        self.interval = float(interval)
        self.max_in_flight = max_in_flight
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._rng = random.Random(seed)
        self._started = time.monotonic()
        self.samples: deque[Sample] = deque(maxlen=max(2, int(history / interval) + 1))
        self.answers: deque[Answer] = deque(maxlen=50)
        self.load_results: deque[Answer] = deque(maxlen=2_000)
        self.skipped = 0  # arrivals over max_in_flight
        self.drawn_ms = 0.0
        self._load_in_flight = 0
        self._lock = threading.Lock()
        self._closed = False

        style = {"description_width": "initial"}
        self.prompt = W.Textarea(value="Explain in one line why a load balancer for LLMs counts tokens, not requests.",
                                 description="prompt", layout=W.Layout(width="600px", height="52px"), style=style)  # fmt: skip
        self.max_tokens = W.IntSlider(value=48, min=1, max=256, description="max_tokens", continuous_update=False, style=style)
        self.send = W.Button(description="stream the answer", button_style="primary", icon="paper-plane")
        self.rate = W.FloatSlider(value=float(rate), min=0.0, max=max(40.0, float(rate)), step=0.5, description="background load (requests/s)",
                                  continuous_update=False, style=style, layout=W.Layout(width="420px"))  # fmt: skip
        self.live = W.ToggleButton(value=bool(live), description="live metrics", icon="refresh")
        self.answer = W.HTML(layout=W.Layout(width="900px"))
        self.settings = W.HTML()
        self.status = W.HTML()
        self.image = W.Image(format="png", layout=W.Layout(width="900px"))
        self.send.on_click(lambda _: self.ask_soon())
        self.rate.observe(lambda change: self._set_rate(change["new"]), names="value")
        self.live.observe(lambda change: self._set_live(change["new"]), names="value")
        for control in (self.prompt, self.max_tokens, self.rate, self.live):
            control.observe(lambda _: self._show_settings(), names="value")
        self.widget = W.VBox([W.HBox([self.prompt, W.VBox([self.max_tokens, self.send])]), self.answer,
                              W.HBox([self.rate, self.live]), self.settings, self.image, self.status])  # fmt: skip
        self._show_settings()

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="gateway-panel", daemon=True)
        self._thread.start()
        self._load_task: asyncio.Future[Any] | None = None
        self._live_task: asyncio.Future[Any] | None = None
        try:
            self._session = self._run(self._open_session())
            self._set_rate(float(rate))
            self._set_live(bool(live))
        except BaseException:
            self.close()
            raise

    def _show_settings(self) -> None:
        """The settings line: what the next click sends and what runs now (updated on every change of a control)."""
        words, chars = len(self.prompt.value.split()), len(self.prompt.value)
        self.settings.value = (f"<small>next answer: {words} prompt words ({chars} characters), at most {self.max_tokens.value} tokens &middot; "
                               f"background load: {self.rate.value:g} requests/s &middot; live metrics: "
                               f"{'on, every %g s' % self.interval if self.live.value else 'off'}</small>")  # fmt: skip

    # -- the loop thread -------------------------------------------------------------------------

    def _submit(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def _run(self, coro: Any, timeout: float = 30.0) -> Any:
        return self._submit(coro).result(timeout)

    async def _open_session(self) -> Any:
        import aiohttp

        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60), connector=aiohttp.TCPConnector(limit=64))

    def now(self) -> float:
        """Seconds since the panel started."""
        return time.monotonic() - self._started

    # -- one chat answer, streamed -----------------------------------------------------------------

    async def _chat(self, prompt: str, max_tokens: int, *, show: bool, stream: bool = True) -> Answer:
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                "stream": stream}  # fmt: skip
        at = self.now()
        started = time.monotonic()
        ttft, parts, chunks = math.nan, [], 0
        try:
            async with self._session.post(self.url + "/v1/chat/completions", json=body, headers=self._headers) as r:
                server = r.headers.get("X-Server-Id", "")
                if r.status != 200:
                    text = await r.text()
                    try:
                        text = json.loads(text)["error"]["message"]
                    except (ValueError, KeyError, TypeError):
                        pass
                    answer = Answer(at, r.status, text, math.nan, time.monotonic() - started, server, 0, r.headers.get("Retry-After"))
                    if show:
                        self._show_answer(answer, done=True)
                    return answer
                if not stream:
                    data = await r.json()
                    e2e = time.monotonic() - started
                    return Answer(at, 200, data["choices"][0].get("message", {}).get("content", ""), e2e, e2e, server, 1)
                async for raw in r.content:  # to the body's end, past [DONE]: leaving early closes the connection (a cancel)
                    content, _ = _sse_content(raw.decode("utf-8", "replace").strip())
                    if content:
                        chunks += 1
                        if math.isnan(ttft):
                            ttft = time.monotonic() - started
                        parts.append(content)
                        if show:
                            self._show_answer(Answer(at, 200, "".join(parts), ttft, math.nan, server, chunks), done=False)
        except (OSError, asyncio.TimeoutError) as exc:
            answer = Answer(at, 0, f"{type(exc).__name__}: {exc}", math.nan, time.monotonic() - started)
            if show:
                self._show_answer(answer, done=True)
            return answer
        answer = Answer(at, 200, "".join(parts), ttft, time.monotonic() - started, server, chunks)
        if show:
            self._show_answer(answer, done=True)
        return answer

    def _show_answer(self, a: Answer, *, done: bool) -> None:
        if a.status != 200:
            extra = f"; Retry-After: {a.retry_after} s" if a.retry_after else ""
            self.answer.value = f"<b>{a.status}</b>: {html.escape(a.text)}{extra}"
            return
        head = (f"<small>server <b>{html.escape(a.server or '?')}</b>, first token after {a.ttft * 1000:.0f} ms"
                + (f", {a.chunks} chunks in {a.e2e * 1000:.0f} ms" if done else ", streaming...") + "</small><br>")  # fmt: skip
        self.answer.value = head + html.escape(a.text)

    def ask(self, prompt: str | None = None, *, max_tokens: int | None = None, timeout: float = 30.0) -> Answer:
        """Stream one chat answer through the gateway into the answer box and wait for its end; the :class:`Answer`."""
        prompt = self.prompt.value if prompt is None else prompt
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt must be a non-empty str")
        tokens = self.max_tokens.value if max_tokens is None else max_tokens
        answer = self._run(self._chat(prompt, int(tokens), show=True), timeout)
        self.answers.append(answer)
        return answer

    def ask_soon(self) -> Future[Any]:
        """The button: start streaming the prompt box's answer and return at once (the answer box fills as tokens come)."""

        async def go() -> None:
            answer = await self._chat(self.prompt.value or "hello", int(self.max_tokens.value), show=True)
            self.answers.append(answer)

        return self._submit(go())

    # -- background load -----------------------------------------------------------------------------

    def _draw_request(self) -> tuple[str, int]:
        """One load request (streamed, like a chat client): a prompt of 8-200 words and a heavy-tailed answer length (lognormal, 8-256 tokens)."""
        with self._lock:
            words = self._rng.randint(8, 200)
            tokens = int(min(256, max(8, self._rng.lognormvariate(math.log(48), 0.8))))
        return " ".join(["word"] * words), tokens

    async def _one_load_request(self) -> None:
        self._load_in_flight += 1
        try:
            prompt, tokens = self._draw_request()
            self.load_results.append(await self._chat(prompt, tokens, show=False))
        finally:
            self._load_in_flight -= 1

    async def _load(self, rate: float, seconds: float | None) -> None:
        """Poisson arrivals at ``rate`` requests/s (for ``seconds``, or until cancelled); each its own task."""
        tasks: set[asyncio.Task[None]] = set()
        until = None if seconds is None else time.monotonic() + seconds
        try:
            while until is None or time.monotonic() < until:
                with self._lock:
                    gap = self._rng.expovariate(rate)
                await asyncio.sleep(gap if until is None else min(gap, max(0.0, until - time.monotonic())))
                if until is not None and time.monotonic() >= until:
                    break
                if self._load_in_flight >= self.max_in_flight:
                    self.skipped += 1
                    continue
                task = asyncio.ensure_future(self._one_load_request())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()

    def _set_rate(self, rate: float) -> None:
        if self._closed:
            return
        if self._load_task is not None:
            self.loop.call_soon_threadsafe(self._load_task.cancel)
            self._load_task = None
        if rate > 0:
            self._load_task = self._submit(self._load(float(rate), None))  # type: ignore[assignment]

    def run_load(self, rate: float, seconds: float, *, scrape_every: float | None = None) -> list[Answer]:
        """Send ``rate`` requests/s for ``seconds`` and wait for their answers (a notebook cell's demo); their :class:`Answer` s.

        ``scrape_every``: also scrape the metrics every that many seconds
        while the load runs (and once at its end), so the figure shows it.
        """
        if not (isinstance(rate, (int, float)) and rate > 0 and isinstance(seconds, (int, float)) and 0 < seconds <= 600):
            raise ValueError(f"rate must be > 0 and seconds in (0, 600], got {rate!r}, {seconds!r}")
        if scrape_every is not None and not (isinstance(scrape_every, (int, float)) and 0.01 <= scrape_every <= seconds):
            raise ValueError(f"scrape_every must be None or in [0.01, seconds], got {scrape_every!r}")
        before = len(self.load_results)

        async def both() -> None:
            load = asyncio.ensure_future(self._load(float(rate), float(seconds)))
            while scrape_every is not None and not load.done():
                await self._scrape()
                await asyncio.wait([load], timeout=scrape_every)
            await load
            if scrape_every is not None:
                await self._scrape()

        self._run(both(), timeout=seconds + 60)
        return list(self.load_results)[before:]

    # -- metrics ---------------------------------------------------------------------------------------

    async def _get(self, url: str) -> str:
        async with self._session.get(url) as r:
            return await r.text()

    async def _scrape(self) -> Sample:
        gateway = await self._get(self.url + "/metrics")
        servers = {}
        for sid, base in self.servers.items():
            try:
                servers[sid] = await self._get(base.rstrip("/") + "/metrics")
            except (OSError, asyncio.TimeoutError):  # a crashed or hung server: no sample from it this time
                pass
        sample = sample_from(self.now(), gateway, servers)
        self.samples.append(sample)
        return sample

    def scrape(self) -> Sample:
        """Scrape the gateway (and the servers) once; the :class:`Sample` (kept for the figure)."""
        return self._run(self._scrape())

    def figure(self) -> Figure:
        """The current picture (:func:`panel_figure` of the samples kept and your answers)."""
        return panel_figure(list(self.samples), list(self.answers))

    def redraw(self) -> None:
        """Draw the figure into the widget and update the status line (thread CPU time of the draw in ``drawn_ms``)."""
        started = time.thread_time()
        self.image.value = _png(self.figure())
        self.drawn_ms = (time.thread_time() - started) * 1000
        last = self.samples[-1] if self.samples else None
        ok = sum(1 for a in self.load_results if a.status == 200)
        outcomes = ", ".join(f"{k} {v:.0f}" for k, v in sorted((last.outcomes if last else {}).items()))
        self.status.value = (f"<small>background load {self.rate.value:g} requests/s: {ok} of {len(self.load_results)} answered 200"
                             f" ({self.skipped} skipped over {self.max_in_flight} in flight); the gateway's answers by outcome: "
                             f"{outcomes or 'none yet'}; drawn in {self.drawn_ms:.0f} ms</small>")  # fmt: skip

    def refresh(self) -> Sample:
        """Scrape once and redraw; the sample."""
        sample = self.scrape()
        self.redraw()
        return sample

    async def _live(self) -> None:
        while True:
            try:
                await self._scrape()
                await self.loop.run_in_executor(None, self.redraw)
            except (OSError, asyncio.TimeoutError, ValueError) as exc:  # the gateway went away: say so, keep trying
                self.status.value = f"<small>scrape failed: {html.escape(type(exc).__name__)}: {html.escape(str(exc))}</small>"
            await asyncio.sleep(self.interval)

    def _set_live(self, on: bool) -> None:
        if self._closed:
            return
        if self._live_task is not None:
            self.loop.call_soon_threadsafe(self._live_task.cancel)
            self._live_task = None
        if on:
            self._live_task = self._submit(self._live())  # type: ignore[assignment]

    # -- life cycle ----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the load and the refresher, close the HTTP session, stop the loop and its thread.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in (self._load_task, self._live_task):
            if task is not None:
                self.loop.call_soon_threadsafe(task.cancel)
        self._load_task = self._live_task = None
        if self._thread.is_alive():
            try:
                self._run(self._shutdown(), timeout=10)
            except Exception:  # noqa: BLE001 - closing: nothing left to tell the user
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()

    async def _shutdown(self) -> None:
        """On the loop: cancel every task (load requests, the refresher) and wait for them, then close the session."""
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        session = getattr(self, "_session", None)
        if session is not None:
            await session.close()
        await self.loop.shutdown_default_executor()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> GatewayPanel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
