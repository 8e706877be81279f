"""An open-loop load generator: replay a workload over HTTP against an OpenAI-compatible endpoint.

:func:`replay` sends each :class:`LoadRequest` at its time (``at`` seconds
after the start, whatever happened to the earlier ones: open loop, as real
users arrive), streams the answer, and returns one :class:`LoadResult` per
request sent: status, time to first token (TTFT: the first SSE chunk that
carries data), end-to-end latency, tokens received, ``Retry-After`` and the
kind of error.  It is bounded twice: at most ``max_requests`` requests and
at most ``max_seconds`` of wall time (requests not started by then are not
sent; ones still open are cut off and recorded as ``"deadline"``).

Latencies are measured from the request's *intended* send time, so a
generator that falls behind does not hide the delay it caused (no
coordinated omission); ``late`` says by how much it was behind.

Builders: :func:`from_requests` (a simulator :class:`~solution.sim.workload.Requests`),
:func:`from_sim_workload` (a :class:`~solution.sim.workload.Workload` or a whole
:class:`~solution.sim.scenario.Scenario`, drawn with the simulator's own seeded
streams, so the HTTP run and the simulation see the same requests) and
:func:`from_azure_trace` (the Azure LLM inference 2023 trace, time-scaled; the
file stays where the user keeps it).  :func:`summarize` gives throughput,
TTFT and e2e p50/p99 and errors.

Tokens: a prompt of ``n`` tokens is sent as ``n`` whitespace-separated words
(the course's servers and gateway count words, no tokenizer), and the
completion's length is ``max_tokens`` (the course's servers generate exactly
``max_tokens``: it is the truth they serve).  A request may also carry an
output *estimate* (``output_estimate``), sent as the
``X-Output-Tokens-Estimate`` header: a length predictor's guess, which a
gateway configured with ``estimate: "header"`` routes and prices on, while
the server still generates ``max_tokens``.  :func:`from_sim_workload` with
``estimates=True`` sends the simulator's own estimates (its
``EstimateError``), so the gateway is as wrong as the simulated balancer.

aiohttp is the client (the course's HTTP library: one connection pool,
keep-alive, per-request timeouts); the whole replay runs in one event loop.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime

import aiohttp
import numpy as np

from solution.core.validate import require_int

__all__ = [
    "LoadRequest",
    "LoadResult",
    "LoadSummary",
    "replay",
    "run_replay",
    "closed_loop",
    "summarize",
    "from_requests",
    "from_sim_workload",
    "from_azure_trace",
    "prompt_text",
    "ESTIMATE_HEADER",
]

#: The header that carries a request's output estimate (the gateway's ``solution.gateway.validation.ESTIMATE_HEADER``).
ESTIMATE_HEADER = "X-Output-Tokens-Estimate"

#: The error kinds a result may carry (``None``: a complete 200 answer).
ERROR_KINDS = ("status", "connect", "reset", "timeout", "truncated", "deadline")


@dataclass(frozen=True)
class LoadRequest:
    """One request to send: ``at`` seconds after the replay starts.

    ``api_key`` (when given) goes in ``Authorization: Bearer``;
    ``stream=True`` asks for server-sent events.  ``chat`` sends a
    chat-completions request instead of a completions one.
    ``output_estimate`` (when given, an int >= 1): a guess of the output
    tokens, sent as the :data:`ESTIMATE_HEADER` header (the answer's length
    is still ``max_tokens``; a balancer that does not read the header, e.g.
    HAProxy, ignores it).
    """

    at: float
    prompt_tokens: int
    max_tokens: int
    api_key: str | None = None
    stream: bool = True
    chat: bool = False
    output_estimate: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.at, bool) or not isinstance(self.at, (int, float)) or not math.isfinite(self.at) or self.at < 0:
            raise ValueError(f"at must be a finite number of seconds >= 0, got {self.at!r}")
        require_int(self.prompt_tokens, "prompt_tokens", minimum=1)
        require_int(self.max_tokens, "max_tokens", minimum=1)
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            raise ValueError("api_key must be a non-empty str or None")
        if self.output_estimate is not None:
            require_int(self.output_estimate, "output_estimate", minimum=1)


@dataclass(frozen=True)
class LoadResult:
    """What happened to one request (times in seconds).

    ``status``: the HTTP status (``None``: no answer: connect/reset/timeout/deadline).
    ``ttft``: intended send -> first data chunk (a non-streamed answer: -> the whole answer).
    ``e2e``: intended send -> the end of the answer (``None`` when it did not end).
    ``tokens``: data chunks received (streamed) or ``usage.completion_tokens``.
    ``retry_after``: the ``Retry-After`` header in seconds, if any.
    ``error``: ``None`` for a complete 200, else one of :data:`ERROR_KINDS`
    (``"status"``: a non-200 answer; ``"truncated"``: a stream that ended
    without ``[DONE]``); ``detail`` says more.  ``server``: the
    ``X-Server-Id`` header when the backend sends one.  ``model_ttft`` /
    ``model_e2e``: the course's inference server's own times for the
    request in *wall* seconds (its model seconds times its time scale:
    the ``: model-timing`` SSE comment of a stream; ``None`` when absent,
    e.g. an unstreamed answer, whose headers do not carry the scale).
    """

    index: int
    at: float
    late: float
    status: int | None
    ttft: float | None
    e2e: float | None
    tokens: int
    retry_after: float | None
    error: str | None
    detail: str = ""
    server: str | None = None
    model_ttft: float | None = None
    model_e2e: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def added(self) -> float | None:
        """Wall seconds the path added to the server's own time: ``e2e - model_e2e`` (``None`` when either is unknown).

        What the network, the balancer (its queue included) and the
        processes' scheduling cost this request, beyond what the server
        reports for itself (its model time, its own queue included).
        """
        if self.e2e is None or self.model_e2e is None:
            return None
        return self.e2e - self.model_e2e


def prompt_text(tokens: int) -> str:
    """A prompt of ``tokens`` whitespace-separated words (how the course counts tokens)."""
    return " ".join(["tok"] * require_int(tokens, "tokens"))


def _retry_after(value: str | None) -> float | None:
    """RFC 9110 10.2.3: delay-seconds or an HTTP-date; ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _body(req: LoadRequest, model: str) -> dict[str, object]:
    body: dict[str, object] = {"model": model, "max_tokens": req.max_tokens, "stream": req.stream}
    if req.chat:
        body["messages"] = [{"role": "user", "content": prompt_text(req.prompt_tokens)}]
    else:
        body["prompt"] = prompt_text(req.prompt_tokens)
    return body


def _model_timing(p: _Partial, payload: bytes) -> None:
    """Read the inference server's ``: model-timing {...}`` comment into wall seconds (ignored when malformed)."""
    try:
        timing = json.loads(payload)
        scale = float(timing["time_scale"])
        p.model_ttft = float(timing["ttft"]) * scale
        p.model_e2e = float(timing["e2e"]) * scale
    except (ValueError, KeyError, TypeError):
        pass


class _Partial:
    """What one request has seen so far (kept when it fails or is cut off part-way)."""

    __slots__ = ("status", "ttft", "tokens", "server", "retry_after", "model_ttft", "model_e2e")

    def __init__(self) -> None:
        self.status: int | None = None
        self.ttft: float | None = None
        self.tokens = 0
        self.server: str | None = None
        self.retry_after: float | None = None
        self.model_ttft: float | None = None
        self.model_e2e: float | None = None


async def _one(session: aiohttp.ClientSession, base_url: str, index: int, req: LoadRequest, t0: float,
               model: str, timeout: aiohttp.ClientTimeout, seen: dict[int, _Partial]) -> LoadResult:  # fmt: skip
    """Send one request at ``t0 + req.at`` and measure it.  Never raises (except cancellation).

    ``seen[index]`` is filled once the request is sent, so a cut-off one can still be reported.
    """
    intended = t0 + req.at
    delay = intended - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    late = max(0.0, time.monotonic() - intended)
    path = "/v1/chat/completions" if req.chat else "/v1/completions"
    headers = {"Authorization": f"Bearer {req.api_key}"} if req.api_key else {}
    if req.output_estimate is not None:
        headers[ESTIMATE_HEADER] = str(req.output_estimate)
    p = seen[index] = _Partial()

    def result(error: str | None, detail: str = "", e2e: float | None = None) -> LoadResult:
        return LoadResult(index, req.at, late, p.status, p.ttft, e2e, p.tokens, p.retry_after, error, detail, p.server,
                          p.model_ttft, p.model_e2e)  # fmt: skip

    try:
        async with session.post(base_url + path, json=_body(req, model), headers=headers, timeout=timeout) as resp:
            p.status = resp.status
            p.server = resp.headers.get("X-Server-Id")
            p.retry_after = _retry_after(resp.headers.get("Retry-After"))
            if resp.status != 200:
                text = (await resp.text())[:200]
                return result("status", text, time.monotonic() - intended)
            if not req.stream:
                data = await resp.json(content_type=None)
                p.ttft = time.monotonic() - intended
                p.tokens = int((data.get("usage") or {}).get("completion_tokens", 0))
                return result(None, "", p.ttft)
            done = False
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk.replace(b"\r\n", b"\n")  # SSE allows CRLF line ends (a CR split across chunks is rare and harmless)
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    for line in event.splitlines():
                        if line.startswith(b": model-timing "):
                            _model_timing(p, line[len(b": model-timing "):])
                        if not line.startswith(b"data:"):
                            continue
                        if line[5:].strip() == b"[DONE]":
                            done = True
                            continue
                        if p.ttft is None:
                            p.ttft = time.monotonic() - intended
                        p.tokens += 1
            if not done:
                return result("truncated", "the stream ended without [DONE]")
            return result(None, "", time.monotonic() - intended)
    except aiohttp.ClientConnectorError as exc:
        return result("connect", str(exc))
    except asyncio.TimeoutError:
        return result("timeout", f"no complete answer within the request timeout ({timeout.total} s)")
    except aiohttp.ClientError as exc:  # payload errors, server disconnected, connection reset
        return result("reset", f"{type(exc).__name__}: {exc}")


async def replay(
    base_url: str,
    requests: Sequence[LoadRequest],
    *,
    max_requests: int,
    max_seconds: float,
    time_scale: float = 1.0,
    model: str = "course-model",
    request_timeout: float = 60.0,
    max_connections: int = 512,
) -> list[LoadResult]:
    """Replay ``requests`` against ``base_url`` (``http://host:port``), open loop; one result per request sent.

    The first ``max_requests`` requests (in the given order) are sent, each
    at ``at * time_scale`` seconds after the start; none is started after
    ``max_seconds``, and at ``max_seconds`` every answer still open is cut
    off (its result has ``error="deadline"``).  So the call returns after
    at most about ``max_seconds`` (plus the closing of connections).
    ``request_timeout`` bounds each request; ``max_connections`` bounds the
    client's connection pool (more requests wait for a connection, and
    their wait counts in their latency).  Results are in request order.
    O(n) tasks; memory O(n).

    Raises:
        TypeError/ValueError: a bad argument (nothing is sent).
    """
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be http(s)://host:port, got {base_url!r}")
    base_url = base_url.rstrip("/")
    max_requests = require_int(max_requests, "max_requests", minimum=0)
    for name, value in (("max_seconds", max_seconds), ("time_scale", time_scale), ("request_timeout", request_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    max_connections = require_int(max_connections, "max_connections")
    chosen = list(requests[:max_requests])
    for req in chosen:
        if not isinstance(req, LoadRequest):
            raise TypeError(f"requests must be LoadRequest objects, got {type(req).__name__}")
    scaled = [req if time_scale == 1.0 else _with_at(req, req.at * time_scale) for req in chosen]
    sendable = [(i, req) for i, req in enumerate(scaled) if req.at <= max_seconds]
    timeout = aiohttp.ClientTimeout(total=request_timeout, sock_connect=min(5.0, request_timeout))
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=max_connections)
    results: dict[int, LoadResult] = {}
    seen: dict[int, _Partial] = {}
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.monotonic()
        tasks = {i: asyncio.ensure_future(_one(session, base_url, i, req, t0, model, timeout, seen)) for i, req in sendable}
        if tasks:
            _, pending = await asyncio.wait(tasks.values(), timeout=max(0.0, t0 + max_seconds - time.monotonic()))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for i, task in tasks.items():
            if not task.cancelled():
                results[i] = task.result()
            elif i in seen:  # sent, cut off at the deadline
                p = seen[i]
                results[i] = LoadResult(i, scaled[i].at, 0.0, p.status, p.ttft, None, p.tokens, p.retry_after,
                                        "deadline", f"still open at max_seconds={max_seconds}", p.server)  # fmt: skip
    return [results[i] for i in sorted(results)]


async def closed_loop(
    base_url: str,
    *,
    concurrency: int,
    seconds: float,
    prompt_tokens: int = 1,
    max_tokens: int = 1,
    api_key: str | None = None,
    stream: bool = True,
    model: str = "course-model",
    request_timeout: float = 30.0,
) -> list[LoadResult]:
    """Closed loop: ``concurrency`` clients each send the same small request again as soon as the last one ends.

    For capacity (how many requests per second a balancer sustains) and
    per-request overhead (``concurrency=1``: one request at a time, so each
    latency is the path alone, with no queueing); the open-loop
    :func:`replay` is for workloads.  Each client starts requests for
    ``seconds`` of wall time; the ones open then finish (each bounded by
    ``request_timeout``) and are reported.  ``at`` is each request's send time from
    the start; results are in send order.  O(requests).

    Raises:
        TypeError/ValueError: a bad argument (nothing is sent).
    """
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be http(s)://host:port, got {base_url!r}")
    base_url = base_url.rstrip("/")
    concurrency = require_int(concurrency, "concurrency")
    for name, value in (("seconds", seconds), ("request_timeout", request_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    template = LoadRequest(0.0, prompt_tokens, max_tokens, api_key, stream)
    timeout = aiohttp.ClientTimeout(total=request_timeout, sock_connect=min(5.0, request_timeout))
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    results: list[LoadResult] = []
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.monotonic()
        end = t0 + seconds
        counter = iter(range(1 << 62))

        async def client() -> None:
            while time.monotonic() < end:
                at = time.monotonic() - t0
                req = _with_at(template, at)
                results.append(await _one(session, base_url, next(counter), req, t0, model, timeout, {}))

        tasks = [asyncio.ensure_future(client()) for _ in range(concurrency)]
        _, pending = await asyncio.wait(tasks, timeout=seconds + request_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return sorted(results, key=lambda r: r.at)


def run_replay(base_url: str, requests: Sequence[LoadRequest], **options: object) -> list[LoadResult]:
    """:func:`replay` from synchronous code (its own event loop; not from inside a running loop)."""
    return asyncio.run(replay(base_url, requests, **options))  # type: ignore[arg-type]


def _with_at(req: LoadRequest, at: float) -> LoadRequest:
    return replace(req, at=at)


# -- summary ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSummary:
    """Figures of one replay (seconds; rates per second of the replay's span).

    ``span``: from the first intended send to the last answer's end;
    ``offered``: requests sent per second of the arrival window (first to
    last intended send; NaN with fewer than two);
    ``throughput``: complete 200 answers per second of ``span`` (it
    includes the tail after the last arrival, so with few requests it is
    below ``offered`` even when nothing fails);
    ``tokens_per_second``: tokens received per second of ``span``;
    percentiles over complete 200 answers (NaN when there are none);
    ``added_p50``/``added_p99``: of :attr:`LoadResult.added` (the path's
    time beyond the server's own), where the server reports its times;
    ``errors``: results by error kind, ``statuses``: non-200 statuses seen.
    """

    sent: int
    ok: int
    span: float
    offered: float
    throughput: float
    tokens_per_second: float
    ttft_p50: float
    ttft_p99: float
    e2e_p50: float
    e2e_p99: float
    added_p50: float = math.nan
    added_p99: float = math.nan
    errors: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)

    def line(self, label: str = "") -> str:
        """One printable line (latencies in ms)."""
        ms = lambda v: "nan" if math.isnan(v) else f"{v * 1000:.0f}"  # noqa: E731
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        return (f"{label + ': ' if label else ''}{self.ok}/{self.sent} ok, {self.throughput:.1f} req/s "
                f"(offered {self.offered:.1f}), "
                f"{self.tokens_per_second:.0f} tok/s, TTFT p50/p99 {ms(self.ttft_p50)}/{ms(self.ttft_p99)} ms, "
                f"e2e p50/p99 {ms(self.e2e_p50)}/{ms(self.e2e_p99)} ms, "
                + ("" if math.isnan(self.added_p50) else f"added p50/p99 {ms(self.added_p50)}/{ms(self.added_p99)} ms, ")
                + f"errors: {errors}")  # fmt: skip


def summarize(results: Sequence[LoadResult]) -> LoadSummary:
    """Throughput, TTFT and e2e p50/p99 (complete answers only) and error counts.  O(n log n)."""
    ok = [r for r in results if r.ok]
    ends = [r.at + r.e2e for r in results if r.e2e is not None]
    span = (max(ends) - min(r.at for r in results)) if ends else 0.0
    pct = lambda xs, q: float(np.percentile(xs, q)) if xs else math.nan  # noqa: E731
    ttft = [r.ttft for r in ok if r.ttft is not None]
    e2e = [r.e2e for r in ok if r.e2e is not None]
    added = [r.added for r in ok if r.added is not None]
    tokens = sum(r.tokens for r in results)
    window = (max(r.at for r in results) - min(r.at for r in results)) if results else 0.0
    return LoadSummary(
        sent=len(results),
        ok=len(ok),
        span=span,
        offered=(len(results) - 1) / window if window > 0 else math.nan,
        throughput=len(ok) / span if span > 0 else math.nan,
        tokens_per_second=tokens / span if span > 0 else math.nan,
        ttft_p50=pct(ttft, 50),
        ttft_p99=pct(ttft, 99),
        e2e_p50=pct(e2e, 50),
        e2e_p99=pct(e2e, 99),
        added_p50=pct(added, 50),
        added_p99=pct(added, 99),
        errors=dict(Counter(r.error for r in results if r.error is not None)),
        statuses=dict(Counter(r.status for r in results if r.status is not None and r.status != 200)),
    )


# -- builders ----------------------------------------------------------------------------------


def from_requests(
    requests: object,
    *,
    time_scale: float = 1.0,
    api_key: str | Mapping[str, str] | None = None,
    stream: bool = True,
    max_prompt_tokens: int | None = None,
    max_output_tokens: int | None = None,
    output_estimates: object = None,
) -> list[LoadRequest]:
    """Turn a simulator :class:`~solution.sim.workload.Requests` into load requests, in arrival order.

    ``at`` = arrival * ``time_scale`` (e.g. the servers' time scale, so a
    replay at real speed matches servers that run the model ``1/time_scale``
    times faster).  ``api_key``: one key for all, or a mapping tier name ->
    key (a tier without a key sends none).  Token counts are clipped to
    ``[1, max_*_tokens]`` (a request needs at least one token of each).
    Requests without a known arrival (a session's later turns, which depend
    on earlier answers) are refused: the replay is open loop.
    ``output_estimates``: one guess of the output tokens per request (in the
    workload's order; ints, at least 1 after clipping to 1), sent as each
    request's ``output_estimate``; ``None``: none sent.  O(n log n).

    Raises:
        TypeError: ``requests`` is not a Requests.
        ValueError: a session workload, or a bad number.
    """
    from solution.sim.workload import Requests

    if not isinstance(requests, Requests):
        raise TypeError(f"requests must be a solution.sim.workload.Requests, got {type(requests).__name__}")
    if isinstance(time_scale, bool) or not isinstance(time_scale, (int, float)) or not math.isfinite(time_scale) or time_scale <= 0:
        raise ValueError(f"time_scale must be a finite number > 0, got {time_scale!r}")
    arrival = np.asarray(requests.arrival, dtype=float)
    if np.isnan(arrival).any():
        raise ValueError("the workload has session turns without arrival times (they follow earlier answers); "
                         "the load generator replays open-loop workloads only: use a workload without sessions")
    if isinstance(api_key, Mapping):
        keys: list[str | None] = [api_key.get(requests.tier_names[t]) for t in requests.tier.tolist()]
    elif api_key is None or isinstance(api_key, str):
        keys = [api_key] * len(requests)
    else:
        raise TypeError(f"api_key must be a str, a mapping tier -> key, or None, got {type(api_key).__name__}")
    high_p = require_int(max_prompt_tokens, "max_prompt_tokens") if max_prompt_tokens is not None else None
    high_o = require_int(max_output_tokens, "max_output_tokens") if max_output_tokens is not None else None
    prompt = np.clip(requests.prompt_tokens, 1, high_p)
    output = np.clip(requests.output_tokens, 1, high_o)
    guesses: list[int | None] = [None] * len(requests)
    if output_estimates is not None:
        guess = np.asarray(output_estimates)
        if guess.shape != (len(requests),) or not np.issubdtype(guess.dtype, np.integer):
            raise ValueError(f"output_estimates must be {len(requests)} ints (one per request), got shape {guess.shape} "
                             f"of {guess.dtype}")  # fmt: skip
        guesses = np.maximum(guess, 1).tolist()
    start = float(arrival.min()) if len(arrival) else 0.0
    order = np.argsort(arrival, kind="stable")
    return [LoadRequest(float((arrival[i] - start) * time_scale), int(prompt[i]), int(output[i]), keys[i], stream,
                        output_estimate=guesses[i]) for i in order.tolist()]  # fmt: skip


def from_sim_workload(source: object, *, seed: int = 0, time_scale: float = 1.0, estimates: bool = False,
                      **options: object) -> list[LoadRequest]:  # fmt: skip
    """The requests a seeded simulation would see, as load requests (see :func:`from_requests` for ``options``).

    ``source`` is a :class:`~solution.sim.scenario.Scenario` (its workload at
    its offered load, drawn exactly as :func:`solution.sim.runner.simulate`
    draws it for ``seed``: the HTTP run and the simulator then see the same
    requests) or a :class:`~solution.sim.workload.Workload` (its own arrival
    rate; token and arrival streams spawned from ``seed``).  ``time_scale``
    maps model seconds to wall seconds (the inference servers' time scale).
    ``estimates=True`` (a Scenario only): each request carries the output
    estimate the simulator gives its balancer for ``seed``
    (``estimated_tokens`` minus the prompt: the scenario's
    ``EstimateError``), so a gateway that reads it is as wrong as the
    simulated balancer; ``max_tokens`` stays the true output.
    """
    from solution.sim.runner import prepare
    from solution.sim.scenario import Scenario
    from solution.sim.workload import Workload

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if not isinstance(estimates, bool):
        raise TypeError(f"estimates must be a bool, got {type(estimates).__name__}")
    if isinstance(source, Scenario):
        inputs = prepare(source, seed)
        requests = inputs.requests
        if estimates:
            options["output_estimates"] = np.asarray(inputs.estimated, dtype=np.int64) - np.asarray(requests.prompt_tokens, dtype=np.int64)
    elif estimates:
        raise ValueError("estimates=True needs a Scenario (its EstimateError draws the estimates); a Workload has none")
    elif isinstance(source, Workload):
        tokens, arrivals = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        requests = source.generate(tokens, arrivals)
    else:
        raise TypeError(f"source must be a Scenario or a Workload, got {type(source).__name__}")
    return from_requests(requests, time_scale=time_scale, **options)  # type: ignore[arg-type]


def from_azure_trace(path: str | os.PathLike[str], *, time_scale: float, limit: int | None = None,
                     **options: object) -> list[LoadRequest]:  # fmt: skip
    """The Azure LLM inference 2023 trace (a CSV the user keeps; never copied) as load requests.

    ``time_scale`` multiplies the trace's gaps (0.02: an hour of traffic in
    72 s); ``limit`` keeps the first rows.  Rows with 0 generated tokens ask
    for 1.  ``options`` as :func:`from_requests` (e.g. ``max_output_tokens``).
    Credit (CC-BY 4.0): Patel et al., "Splitwise", ISCA 2024, and the Azure
    Public Dataset (:data:`solution.sim.trace.AZURE_CREDIT`).

    Raises FileNotFoundError (where to download it), TraceFormatError, ValueError.
    """
    from solution.sim.trace import load_azure_trace

    requests = load_azure_trace(path, time_scale=time_scale, limit=limit)
    return from_requests(requests, **options)  # type: ignore[arg-type]
