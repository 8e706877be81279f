"""An OpenAI-compatible inference server that times its answers with the simulator's continuous-batching model.

``python -m solution.gateway.inference_server --server-id s1 --port 8001 --gpu a100-80gb --time-scale 0.02``

No model weights: the server generates filler words, and *when* each token
comes out is decided by :class:`solution.sim.server.Server`, the
simulator's exact continuous-batching model, with the constants of a GPU
preset (:meth:`solution.sim.gpus.ModelSpec.latency_model`).  So a request
alone on an idle server gets its first token after
:meth:`~solution.core.latency.LatencyModel.ttft` and its last after
:meth:`~solution.core.latency.LatencyModel.e2e`, scaled to wall time, and a
fuller batch slows every sequence in it exactly as in the simulator.

Time
----
Model seconds run ``1 / time_scale`` times faster than wall seconds:
``real = model * time_scale`` (0.02: a 20 s generation takes 0.4 s).  Model
time is read from :func:`time.monotonic`; it stands still while the server
is hung.

Tokens (no tokenizer)
---------------------
A prompt's token count is its number of whitespace-separated words (a chat
request: the words of every message's text content; a completions prompt
given as token ids: their number).  The completion has exactly
``max_tokens`` tokens (``max_completion_tokens`` for chat; default 16),
``finish_reason`` ``"length"``.  :func:`parse_request` is public so a
gateway counts tokens and rejects bad requests the same way.

Scheduling (one asyncio task per server; nothing blocks the event loop)
-----------------------------------------------------------------------
A request is admitted into the batch at once if the batch has fewer than
``capacity`` sequences and its KV reservation (``prompt + max_tokens``
tokens) fits in the KV cache's free room; otherwise it waits in the
server's FIFO queue (head of line: a big request at the head is not
overtaken, as vLLM's first-come-first-served scheduler).  A request that
could never fit (more than the whole KV cache) gets 400 at once.  The
scheduler task sleeps until the model's next event (a first token, a
finish) or until a new request, a cancellation or a fault wakes it; while a
streamed request decodes it also wakes every ``max(stream_interval, one
iteration)`` of wall time to push the tokens made meanwhile (so a stream
gets one SSE chunk per token, written in bursts when iterations are shorter
than the interval; first-token and finish times are exact).  A client
that disconnects frees its batch slot and KV room at once.

Endpoints
---------
* ``POST /v1/completions``, ``POST /v1/chat/completions``: OpenAI's request
  and response shapes; ``stream: true`` answers server-sent events, one
  chunk per token (``data: {json}\\n\\n``), the last with
  ``finish_reason``, a usage chunk when ``stream_options.include_usage``,
  then ``data: [DONE]\\n\\n``.  Errors use OpenAI's ``{"error": {...}}``
  shape: 400 malformed or too big for the KV cache, 404 unknown model, 500
  injected failure, 503 (with ``Retry-After``) while starting.
* ``GET /v1/models``: the one model id.
* ``GET /health``: 200 ``{"status": "ok", ...}`` when ready, 503 while
  starting (``--startup-seconds``, the ``slow_start`` fault) or when a
  ``fail`` fault says so.  ``GET /live``: 200 as soon as the process serves
  HTTP (what :func:`solution.gateway.procs.start_fleet` waits for).
* ``GET /metrics``: Prometheus text (own registry): ``inference_requests_running``,
  ``inference_requests_waiting``, ``inference_kv_tokens_used``, ``inference_kv_tokens_limit``,
  ``inference_batch_capacity``, ``inference_requests_total{status}``,
  ``inference_prompt_tokens_total``, ``inference_generation_tokens_total``,
  ``inference_speed_factor`` (the ``slow`` fault times the warm-up),
  ``inference_time_scale``.
* ``POST /admin/fault``: see :mod:`solution.gateway.faults` (no
  authentication: the servers listen on loopback for the course's own
  harness).  ``--startup-seconds`` and ``--warmup-seconds`` play the same
  slow start at launch.

Every answer carries an ``X-Server-Id`` header (which server served it).
The model's own times of a request (model seconds from its arrival: to
its admission into the batch, its first token, its last token) come with
it, so a client can tell the model's time from the network's and the
gateway's: headers ``X-Model-Queue-Seconds``, ``X-Model-TTFT-Seconds``,
``X-Model-E2E-Seconds`` on a non-streamed answer; an SSE comment line
``: model-timing {"queue": ..., "ttft": ..., "e2e": ..., "time_scale": ...}``
just before ``data: [DONE]`` on a stream (SSE clients ignore comments).

What a real server does that this one does not
----------------------------------------------
vLLM allocates KV blocks as tokens are generated and *preempts* (swaps
out or recomputes) a sequence when they run out; here a request reserves
its whole ``prompt + max_tokens`` when admitted, so nothing is ever
preempted and a request's KV need is known up front (stage 6's
preemption, :mod:`solution.sim.tiersim`, is not played over HTTP).  No prefix cache
either: every prompt is prefilled in full.  Both keep a request's time a
function of the batch alone, as in the simulator's model.

Costs: admitting or finishing a request O(log b) (the model's heaps), a
cancellation of a waiting request O(w); each streaming wake-up O(s) for s
streamed requests decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from solution.core.latency import LatencyModel
from solution.core.validate import require_id, require_int
from solution.gateway.faults import CRASH_EXIT_CODE, Fault, parse_fault
from solution.sim.gpus import GPU_PRESETS, MODEL_PRESETS, GpuSpec, ModelSpec
from solution.sim.healthsim import ColdStart
from solution.sim.kvcache import kv_capacity_tokens
from solution.sim.server import Server
from solution.sim.validate import require_number

__all__ = [
    "ServerConfig",
    "Engine",
    "Job",
    "RequestError",
    "ParsedRequest",
    "parse_request",
    "count_words",
    "build_app",
    "resolve_gpu",
    "resolve_model",
    "main",
    "DEFAULT_MAX_TOKENS",
]

#: Completion tokens when a request gives no ``max_tokens``.
DEFAULT_MAX_TOKENS = 16

_WORDS = (
    "tokens", "route", "the", "least", "loaded", "server", "batch", "queue", "prefill", "decode", "cache", "gateway",
    "retry", "budget", "health", "probe", "drain", "tier", "stream", "latency", "throughput", "balance", "request", "a",
)  # fmt: skip


# -- configuration --------------------------------------------------------------------------------------------------


def _lookup(table: Mapping[str, Any], name: str, what: str) -> Any:
    for key, value in table.items():
        if key.lower() == name.lower():
            return value
    raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(table)} (case does not matter)")


def resolve_gpu(name: str) -> GpuSpec:
    """The GPU preset called ``name``, case-insensitively (``"a100-80gb"``).  Raises ValueError listing them."""
    return _lookup(GPU_PRESETS, name, "GPU preset")  # type: ignore[no-any-return]


def resolve_model(name: str) -> ModelSpec:
    """The model preset called ``name``, case-insensitively (``"7b fp16"``).  Raises ValueError listing them."""
    return _lookup(MODEL_PRESETS, name, "model preset")  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ServerConfig:
    """Everything one server needs; :meth:`from_presets` fills in the GPU's latency model, capacity and KV room.

    Raises:
        TypeError / ValueError: an empty id, a capacity or KV limit that is
            not an int >= 1, a time scale or stream interval that is not a
            finite number > 0, a negative startup time or seed.
    """

    server_id: str
    latency: LatencyModel
    capacity: int
    kv_limit_tokens: int
    gpu_memory_gb: int
    time_scale: float = 0.02
    model_id: str = "course-model"
    seed: int = 0
    startup_seconds: float = 0.0
    stream_interval: float = 0.005
    gpu: str = ""
    warmup: ColdStart | None = None  # a warm-up after the start (its seconds are real seconds here)

    def __post_init__(self) -> None:
        require_id(self.server_id, "server_id")
        require_id(self.model_id, "model_id")
        if not isinstance(self.latency, LatencyModel):
            raise TypeError(f"latency must be a LatencyModel, got {type(self.latency).__name__}")
        for name in ("capacity", "kv_limit_tokens", "gpu_memory_gb"):
            require_int(getattr(self, name), name)
        require_int(self.seed, "seed", minimum=0)
        if self.warmup is not None and not isinstance(self.warmup, ColdStart):
            raise TypeError(f"warmup must be a ColdStart or None, got {type(self.warmup).__name__}")
        require_number(self.time_scale, "time_scale")
        require_number(self.stream_interval, "stream_interval")
        require_number(self.startup_seconds, "startup_seconds", strict=False)

    @classmethod
    def from_presets(
        cls,
        server_id: str,
        *,
        gpu: str = "a100-80gb",
        model: str = "7B FP16",
        capacity: int | None = None,
        kv_limit_tokens: int | None = None,
        **kwargs: Any,
    ) -> ServerConfig:
        """A config for ``model`` on ``gpu``: capacity defaults to :meth:`ModelSpec.default_capacity`, the KV
        limit to :func:`solution.sim.kvcache.kv_capacity_tokens`."""
        gpu_spec, model_spec = resolve_gpu(gpu), resolve_model(model)
        return cls(
            server_id=server_id,
            latency=model_spec.latency_model(gpu_spec),
            capacity=capacity if capacity is not None else model_spec.default_capacity(gpu_spec),
            kv_limit_tokens=kv_limit_tokens if kv_limit_tokens is not None else kv_capacity_tokens(model_spec, gpu_spec),
            gpu_memory_gb=gpu_spec.memory_gb,
            gpu=gpu_spec.name,
            **kwargs,
        )


# -- the engine: the simulator's model in scaled wall time -------------------------------------------------------------


class Job:
    """One request inside an :class:`Engine` (the handler waits on ``event`` and reads ``ready``)."""

    __slots__ = ("rid", "prompt_tokens", "max_tokens", "stream", "need", "arrived", "admitted", "first_token",
                 "finished", "dstart", "ready", "event", "cancelled")  # fmt: skip

    def __init__(self, rid: int, prompt_tokens: int, max_tokens: int, stream: bool, arrived: float) -> None:
        self.rid = rid
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.stream = stream
        self.need = prompt_tokens + max_tokens  # KV tokens reserved while in the batch
        self.arrived = arrived  # model seconds
        self.admitted: float | None = None
        self.first_token: float | None = None
        self.finished: float | None = None
        self.dstart = 0.0  # the decode clock when its first token came
        self.ready = 0  # tokens made so far (what a stream may send)
        self.event = asyncio.Event()  # set whenever ``ready`` grows or the job ends
        self.cancelled = False

    @property
    def done(self) -> bool:
        return self.finished is not None

    def timing(self) -> dict[str, float]:
        """Model seconds from arrival to admission (``queue``), to the first token (``ttft``), to the last (``e2e``)."""
        assert self.admitted is not None and self.first_token is not None and self.finished is not None
        return {"queue": self.admitted - self.arrived, "ttft": self.first_token - self.arrived,
                "e2e": self.finished - self.arrived}  # fmt: skip


class Engine:
    """The simulator's :class:`~solution.sim.server.Server` run in scaled wall time, with a batch and a KV limit.

    Synchronous methods only change state (never block); :meth:`run` is the
    one scheduler task.  ``clock`` (wall seconds) is injectable for tests.
    """

    def __init__(self, config: ServerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.scale = config.time_scale
        self.server = Server(0, config.server_id, config.capacity, config.gpu_memory_gb, config.latency)
        self.clock = clock
        self._t0 = clock()
        self._paused_at: float | None = None
        self._paused_total = 0.0
        self.waiting: deque[Job] = deque()
        self.jobs: dict[int, Job] = {}  # admitted and not finished
        self._decode_steps: dict[int, int] = {}
        self._streamers: set[Job] = set()  # streamed jobs past their first token
        self.kv_used = 0
        self._next_rid = 0
        self._wake: asyncio.Event | None = None
        self.finished_total = 0
        self.generated_total = 0
        self.prompt_total = 0

    # -- time --

    def now(self) -> float:
        """Model seconds since the start (frozen while paused)."""
        real = (self._paused_at if self._paused_at is not None else self.clock()) - self._t0 - self._paused_total
        return real / self.scale

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def pause(self) -> None:
        """Freeze model time (a hang): nothing progresses until :meth:`resume`."""
        if self._paused_at is None:
            self.catch_up(self.now())
            self._paused_at = self.clock()

    def resume(self) -> None:
        """Unfreeze model time where it stood."""
        if self._paused_at is not None:
            self._paused_total += self.clock() - self._paused_at
            self._paused_at = None
            now = self.now()
            self.catch_up(now)
            self._admit(now)  # what arrived meanwhile
            self.wake()

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- requests --

    def fits(self, prompt_tokens: int, max_tokens: int) -> bool:
        """Whether a request could ever fit in the KV cache (``prompt + max_tokens <= kv_limit_tokens``)."""
        return prompt_tokens + max_tokens <= self.config.kv_limit_tokens

    def submit(self, prompt_tokens: int, max_tokens: int, stream: bool) -> Job:
        """Queue a request now; it joins the batch at once if there is room.  O(log b).

        Raises:
            ValueError: it can never fit in the KV cache (see :meth:`fits`), or
                ``max_tokens < 1``.
        """
        if max_tokens < 1 or prompt_tokens < 0:
            raise ValueError(f"max_tokens must be >= 1 and prompt_tokens >= 0, got {max_tokens}, {prompt_tokens}")
        if not self.fits(prompt_tokens, max_tokens):
            raise ValueError(f"prompt ({prompt_tokens}) + max_tokens ({max_tokens}) = {prompt_tokens + max_tokens} tokens "
                             f"exceed this server's KV cache of {self.config.kv_limit_tokens} tokens; send less")  # fmt: skip
        now = self.now()
        self.catch_up(now)
        job = Job(self._next_rid, prompt_tokens, max_tokens, stream, now)
        self._next_rid += 1
        self.waiting.append(job)
        if not self.paused:
            self._admit(now)
        self.wake()
        return job

    def cancel(self, job: Job) -> None:
        """Take a job out (its client left): frees its slot and KV room.  No-op for a finished job."""
        if job.done or job.cancelled:
            return
        job.cancelled = True
        if job.admitted is None:
            try:
                self.waiting.remove(job)
            except ValueError:
                pass
            return
        now = self.now()
        self.catch_up(now)
        if job.done:
            return
        self.server.remove(now, job.rid)
        self._release(job)
        if not self.paused:
            self._admit(now)
        self.wake()

    def set_throttle(self, factor: float) -> None:
        """Run ``factor`` times slower from now on (1: normal).  Running requests keep their progress."""
        now = self.now()
        self.catch_up(now)
        self.server.set_factors(now, throttle=1.0 / factor)
        self.wake()

    def set_warm(self, speed: float) -> None:
        """Run at ``speed`` (a fraction, 1: warm) of full speed from now on (a warm-up step); combines with the throttle."""
        now = self.now()
        self.catch_up(now)
        self.server.set_factors(now, warm=speed)
        self.wake()

    # -- the model --

    def _release(self, job: Job) -> None:
        self.jobs.pop(job.rid, None)
        self._decode_steps.pop(job.rid, None)
        self._streamers.discard(job)
        self.kv_used -= job.need

    def _admit(self, now: float) -> None:
        server, limit, capacity = self.server, self.config.kv_limit_tokens, self.config.capacity
        while self.waiting and server.running < capacity and self.kv_used + self.waiting[0].need <= limit:
            job = self.waiting.popleft()
            job.admitted = now
            self.jobs[job.rid] = job
            self._decode_steps[job.rid] = job.max_tokens - 1
            self.kv_used += job.need
            server.admit(now, job.rid, float(job.prompt_tokens))

    def catch_up(self, now: float) -> None:
        """Play every model event due by ``now`` (first tokens, finishes, admissions they allow).  O(k log b)."""
        if self.paused:
            return
        server = self.server
        while server.next_time() <= now:
            t = server.next_time()
            firsts: dict[int, float] = {}
            done = server.step(t, self._decode_steps, firsts)  # type: ignore[arg-type]
            finished = set(done)
            for rid in firsts:
                job = self.jobs[rid]
                job.first_token = t
                job.ready = 1
                if rid not in finished:
                    job.dstart = server.dclock
                    if job.stream:
                        self._streamers.add(job)
                job.event.set()
            for rid in done:
                job = self.jobs[rid]
                job.finished = t
                job.ready = job.max_tokens
                self._release(job)
                self.finished_total += 1
                self.generated_total += job.max_tokens
                self.prompt_total += job.prompt_tokens
                job.event.set()
            if done:
                self._admit(t)

    def _push_tokens(self, now: float) -> None:
        """Give every streamed job the tokens its decode has made by ``now``.  O(s)."""
        server = self.server
        if not server.dtags:
            return
        dclock = server.dclock + (now - server.last) * server.drate
        for job in self._streamers:
            ready = min(job.max_tokens - 1, 1 + int(dclock - job.dstart + 1e-9))  # the last one comes with the finish
            if ready > job.ready:
                job.ready = ready
                job.event.set()

    async def run(self) -> None:
        """The scheduler: sleep until the next model event (or a wake-up), play it, repeat.  Never returns."""
        loop = asyncio.get_running_loop()
        self._wake = wake = asyncio.Event()
        interval = self.config.stream_interval
        while True:
            delay = math.inf
            if not self.paused:
                now = self.now()
                self.catch_up(now)
                next_at = self.server.next_time()
                if next_at < math.inf:
                    delay = (next_at - now) * self.scale
                if self._streamers:
                    self._push_tokens(now)
                    delay = min(delay, max(interval, self.server.iteration_time() * self.scale))
            wake.clear()
            handle = loop.call_later(max(delay, 0.0), wake.set) if delay < math.inf else None
            await wake.wait()
            if handle is not None:
                handle.cancel()


# -- the OpenAI API ---------------------------------------------------------------------------------------------


class RequestError(ValueError):
    """A request the server refuses: ``status`` (400, 404, ...) and an OpenAI error body (:meth:`body`)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type_: str = "invalid_request_error") -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class ParsedRequest:
    """What a completions or chat request asks for, once validated."""

    chat: bool
    model: str
    prompt_tokens: int
    max_tokens: int
    stream: bool
    include_usage: bool


def count_words(text: str) -> int:
    """Tokens of a text in this course: its whitespace-separated words.

    >>> count_words("  route the   tokens ")
    3
    """
    return len(text.split())


def _content_tokens(content: object, where: str) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return count_words(content)
    if isinstance(content, list):
        total = 0
        for k, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise RequestError(400, f"{where}[{k}] must be an object with a 'type'", param=where)
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise RequestError(400, f"{where}[{k}].text must be a string", param=where)
                total += count_words(part["text"])
        return total
    raise RequestError(400, f"{where} must be a string, a list of content parts or null", param=where)


def parse_request(body: object, *, chat: bool, model_id: str | None = None) -> ParsedRequest:
    """Validate an OpenAI completions (``chat=False``) or chat completions body; count its prompt tokens.

    ``model_id``: the one model served (a different ``model`` is a 404);
    ``None`` accepts any.  O(size of the prompt).

    Raises:
        RequestError: 400 (not a JSON object, a missing or malformed field,
            ``n`` other than 1, several prompts), 404 (unknown model).
    """
    if not isinstance(body, dict):
        raise RequestError(400, f"the request body must be a JSON object, got {type(body).__name__}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "'model' is required (a string)", param="model")
    if model_id is not None and model != model_id:
        raise RequestError(404, f"The model `{model}` does not exist; this server serves `{model_id}`", param="model",
                           code="model_not_found")  # fmt: skip
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "'messages' is required: a non-empty list of {role, content}", param="messages")
        prompt_tokens = 0
        for k, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise RequestError(400, f"messages[{k}] must be an object with a string 'role'", param="messages")
            prompt_tokens += _content_tokens(message.get("content"), f"messages[{k}].content")
        raw_max = body.get("max_completion_tokens", body.get("max_tokens"))
    else:
        if "prompt" not in body:
            raise RequestError(400, "'prompt' is required (a string, or a list of token ids)", param="prompt")
        prompt = body["prompt"]
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]  # a batch of one prompt
        if isinstance(prompt, str):
            prompt_tokens = count_words(prompt)
        elif isinstance(prompt, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            prompt_tokens = len(prompt)
        elif isinstance(prompt, list) and len(prompt) > 1 and all(isinstance(t, (str, list)) for t in prompt):
            raise RequestError(400, "send one prompt per request (batched prompts are not supported)", param="prompt")
        else:
            raise RequestError(400, "'prompt' must be a string or a list of token ids", param="prompt")
        raw_max = body.get("max_tokens")
    if raw_max is None:
        max_tokens = DEFAULT_MAX_TOKENS
    elif isinstance(raw_max, bool) or not isinstance(raw_max, int) or raw_max < 1:
        raise RequestError(400, f"max_tokens must be an integer >= 1, got {raw_max!r}", param="max_tokens")
    else:
        max_tokens = raw_max
    n = body.get("n", 1)
    if n is not None and n != 1:
        raise RequestError(400, f"n must be 1 (one completion per request), got {n!r}", param="n")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise RequestError(400, f"stream must be true or false, got {stream!r}", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RequestError(400, "stream_options must be an object", param="stream_options")
    include_usage = bool(options and options.get("include_usage"))
    return ParsedRequest(chat, model, prompt_tokens, max_tokens, stream, include_usage)


def _error(error: RequestError, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=headers)


def _words(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(_WORDS) for _ in range(count)]


class _State:
    """One server's mutable state outside the model: faults, start time, metrics."""

    def __init__(self, config: ServerConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.ready_at = time.monotonic() + config.startup_seconds
        self.throttle_factor = 1.0
        self.fail_fraction = 0.0
        self.health_fails = False
        self.warming: asyncio.Task[None] | None = None
        self.unhung = asyncio.Event()
        self.unhung.set()
        self.rng = random.Random(config.seed)
        self.created = int(time.time())
        registry = self.registry = CollectorRegistry()

        def gauge(name: str, doc: str, fn: Callable[[], float]) -> None:
            Gauge(name, doc, registry=registry).set_function(fn)

        gauge("inference_requests_running", "Sequences in the batch", lambda: engine.server.running)
        gauge("inference_requests_waiting", "Requests in the server's own queue", lambda: len(engine.waiting))
        gauge("inference_kv_tokens_used", "KV-cache tokens reserved by the batch", lambda: engine.kv_used)
        gauge("inference_kv_tokens_limit", "KV-cache tokens the GPU holds", lambda: config.kv_limit_tokens)
        gauge("inference_batch_capacity", "Most sequences in one batch", lambda: config.capacity)
        gauge("inference_time_scale", "Wall seconds per model second", lambda: config.time_scale)
        gauge("inference_speed_factor", "Speed as a fraction of full speed (slow fault, warm-up)", lambda: engine.server.speed)
        self.requests = Counter("inference_requests", "Requests answered, by HTTP status", ["status"], registry=registry)
        self.prompt_tokens = Counter("inference_prompt_tokens", "Prompt tokens of finished requests", registry=registry)
        self.generated = Counter("inference_generation_tokens", "Tokens generated", registry=registry)
        if config.warmup is not None:
            self.start_warmup(config.startup_seconds, config.warmup)

    def starting_for(self) -> float:
        """Real seconds until ready (0 when ready)."""
        return max(0.0, self.ready_at - time.monotonic())

    def start_warmup(self, delay: float, cold: ColdStart) -> None:
        """Run slowly from now (``cold.speed``), and ramp up in ``cold.steps`` steps from ``delay`` real seconds on."""
        self.stop_warmup()
        self.engine.set_warm(cold.speed_at(0))
        self.warming = asyncio.get_running_loop().create_task(self._warm(delay, cold))

    def stop_warmup(self) -> None:
        if self.warming is not None:
            self.warming.cancel()
            self.warming = None
        if self.engine.server.warm != 1.0:
            self.engine.set_warm(1.0)

    async def _warm(self, delay: float, cold: ColdStart) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time() + delay  # the warm-up starts when the server is ready
        for step, at in enumerate(cold.step_times(), start=1):
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            self.engine.set_warm(cold.speed_at(step))
        self.warming = None

    def apply(self, fault: Fault) -> None:
        if fault.kind == "hang":
            self.engine.pause()
            self.unhung.clear()
        elif fault.kind == "slow":
            self.throttle_factor = fault.factor
            self.engine.set_throttle(fault.factor)
        elif fault.kind == "fail":
            self.fail_fraction = fault.fraction
            self.health_fails = fault.health_fails
        elif fault.kind == "slow_start":
            self.ready_at = time.monotonic() + fault.seconds
            if fault.warmup_seconds > 0:
                self.start_warmup(fault.seconds, ColdStart(fault.warmup_seconds, fault.warmup_speed, fault.warmup_steps))
        elif fault.kind == "clear":
            self.fail_fraction = 0.0
            self.health_fails = False
            self.ready_at = time.monotonic()
            self.stop_warmup()
            if self.throttle_factor != 1.0:
                self.throttle_factor = 1.0
                self.engine.set_throttle(1.0)
            self.engine.resume()
            self.unhung.set()


_STATE = web.AppKey("state", _State)


@web.middleware
async def _hang_middleware(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    state = request.app[_STATE]
    if not state.unhung.is_set() and request.path != "/admin/fault":
        await state.unhung.wait()  # a hung server accepts and answers nothing until cleared
    return await handler(request)  # type: ignore[no-any-return]


async def _health(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    engine = state.engine
    info = {"server_id": state.config.server_id, "running": engine.server.running, "waiting": len(engine.waiting),
            "kv_tokens_used": engine.kv_used, "kv_tokens_limit": state.config.kv_limit_tokens,
            "capacity": state.config.capacity}  # fmt: skip
    starting = state.starting_for()
    if starting > 0:
        return web.json_response({"status": "starting", "ready_in": round(starting, 3), **info}, status=503)
    if state.health_fails:
        return web.json_response({"status": "failing", **info}, status=503)
    return web.json_response({"status": "ok", **info})


async def _live(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive", "server_id": request.app[_STATE].config.server_id})


async def _models(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    return web.json_response({"object": "list", "data": [
        {"id": state.config.model_id, "object": "model", "created": state.created, "owned_by": "lb-course"}]})  # fmt: skip


async def _metrics(request: web.Request) -> web.Response:
    data = generate_latest(request.app[_STATE].registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _fault(request: web.Request) -> web.StreamResponse:
    state = request.app[_STATE]
    try:
        fault = parse_fault(await request.json())
    except (TypeError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        return _error(RequestError(400, f"bad fault: {error}"))
    if fault.kind == "crash":
        response = web.json_response({"ok": True, "fault": fault.to_dict(), "server_id": state.config.server_id})
        await response.prepare(request)
        await response.write_eof()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
    state.apply(fault)
    return web.json_response({"ok": True, "fault": fault.to_dict(), "server_id": state.config.server_id})


def _sse(obj: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


async def _completion(request: web.Request, chat: bool) -> web.StreamResponse:
    state = request.app[_STATE]
    config, engine = state.config, state.engine
    try:
        try:
            body = await request.json()
        except ValueError as error:
            raise RequestError(400, f"the body is not valid JSON: {error}") from None
        parsed = parse_request(body, chat=chat, model_id=config.model_id)
        if not engine.fits(parsed.prompt_tokens, parsed.max_tokens):
            raise RequestError(400, f"prompt ({parsed.prompt_tokens} tokens) + max_tokens ({parsed.max_tokens}) exceed "
                                    f"this server's KV cache of {config.kv_limit_tokens} tokens; send a shorter request",
                               param="max_tokens", code="context_length_exceeded")  # fmt: skip
    except RequestError as error:
        state.requests.labels(str(error.status)).inc()
        return _error(error)
    starting = state.starting_for()
    if starting > 0:
        state.requests.labels("503").inc()
        return _error(RequestError(503, f"server {config.server_id} is starting (ready in {starting:.1f} s)",
                                   type_="server_error"), headers={"Retry-After": str(max(1, math.ceil(starting)))})  # fmt: skip
    if state.fail_fraction > 0 and state.rng.random() < state.fail_fraction:
        state.requests.labels("500").inc()
        return _error(RequestError(500, f"injected failure on server {config.server_id}", type_="server_error"))

    job = engine.submit(parsed.prompt_tokens, parsed.max_tokens, parsed.stream)
    rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
    words = _words(hash((config.seed, job.rid)) & 0xFFFFFFFF, parsed.max_tokens)
    usage = {"prompt_tokens": parsed.prompt_tokens, "completion_tokens": parsed.max_tokens,
             "total_tokens": parsed.prompt_tokens + parsed.max_tokens}  # fmt: skip
    created = int(time.time())
    try:
        if not parsed.stream:
            while not job.done:
                await job.event.wait()
                job.event.clear()
            state.requests.labels("200").inc()
            state.prompt_tokens.inc(parsed.prompt_tokens)
            state.generated.inc(parsed.max_tokens)
            if chat:
                choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": " ".join(words)},
                                          "logprobs": None, "finish_reason": "length"}  # fmt: skip
                obj = "chat.completion"
            else:
                choice = {"index": 0, "text": "".join(" " + w for w in words), "logprobs": None, "finish_reason": "length"}
                obj = "text_completion"
            timing = job.timing()
            return web.json_response({"id": rid, "object": obj, "created": created, "model": parsed.model,
                                      "choices": [choice], "usage": usage, "system_fingerprint": None},
                                     headers={"X-Model-Queue-Seconds": repr(timing["queue"]),
                                              "X-Model-TTFT-Seconds": repr(timing["ttft"]),
                                              "X-Model-E2E-Seconds": repr(timing["e2e"])})  # fmt: skip

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        head = {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion", "created": created,
                "model": parsed.model}  # fmt: skip
        sent = 0
        while sent < parsed.max_tokens:
            while job.ready <= sent:
                await job.event.wait()
                job.event.clear()
            ready = job.ready
            chunks = []
            for k in range(sent, ready):
                last = k == parsed.max_tokens - 1
                if chat:
                    delta: dict[str, Any] = {"content": words[k] if k == 0 else " " + words[k]}
                    if k == 0:
                        delta = {"role": "assistant", **delta}
                    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": "length" if last else None}
                else:
                    choice = {"index": 0, "text": " " + words[k], "logprobs": None,
                              "finish_reason": "length" if last else None}  # fmt: skip
                chunks.append(_sse({**head, "choices": [choice]}))
            sent = ready
            if sent == parsed.max_tokens:
                if parsed.include_usage:
                    chunks.append(_sse({**head, "choices": [], "usage": usage}))
                timing = {**job.timing(), "time_scale": config.time_scale}
                chunks.append(b": model-timing " + json.dumps(timing).encode() + b"\n\n")  # an SSE comment: clients skip it
                chunks.append(b"data: [DONE]\n\n")
            await response.write(b"".join(chunks))
        state.requests.labels("200").inc()
        state.prompt_tokens.inc(parsed.prompt_tokens)
        state.generated.inc(parsed.max_tokens)
        await response.write_eof()
        return response
    finally:
        if not job.done:
            engine.cancel(job)  # the client left (or the handler failed): free the slot and the KV room


async def _completions(request: web.Request) -> web.StreamResponse:
    return await _completion(request, chat=False)


async def _chat(request: web.Request) -> web.StreamResponse:
    return await _completion(request, chat=True)


def _exit_if_failed(task: asyncio.Task[None]) -> None:
    """The scheduler must never end by itself: if it fails, say why on stderr and exit (1), rather than hang every request."""
    if not task.cancelled() and task.exception() is not None:
        import traceback

        traceback.print_exception(task.exception(), file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)


def build_app(config: ServerConfig) -> web.Application:
    """The aiohttp application of one server; its scheduler task runs while the app runs."""
    app = web.Application(middlewares=[_hang_middleware], client_max_size=16 * 2**20)

    async def scheduler(app: web.Application) -> Any:
        state = _State(config, Engine(config))
        app[_STATE] = state
        task = asyncio.create_task(state.engine.run())
        task.add_done_callback(_exit_if_failed)
        yield
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def server_id_header(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Server-Id"] = config.server_id  # on every answer: who served it

    app.cleanup_ctx.append(scheduler)
    app.on_response_prepare.append(server_id_header)
    app.router.add_post("/v1/completions", _completions)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/health", _health)
    app.router.add_get("/live", _live)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/admin/fault", _fault)
    return app


async def serve(config: ServerConfig, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT; then stop listening and end.

    In-flight requests get 0.25 s (aiohttp waits that long twice: for the
    handlers, then for the connections), so even a hung server with open
    requests ends in well under a second and a stop needs no SIGKILL.
    """
    runner = web.AppRunner(build_app(config), handle_signals=False, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, shutdown_timeout=0.25)
    await site.start()
    print(f"inference server {config.server_id} ({config.gpu}, capacity {config.capacity}, KV {config.kv_limit_tokens} "
          f"tokens, time scale {config.time_scale:g}) on http://{host}:{port}", flush=True)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """The command line (``--help``)."""
    parser = argparse.ArgumentParser(prog="python -m solution.gateway.inference_server", description=__doc__.split("\n")[0])
    parser.add_argument("--server-id", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gpu", default="a100-80gb", help=f"a GPU preset: {', '.join(GPU_PRESETS)}")
    parser.add_argument("--model", default="7B FP16", help=f"a model preset: {', '.join(MODEL_PRESETS)}")
    parser.add_argument("--model-id", default="course-model", help="the model name clients send")
    parser.add_argument("--capacity", type=int, default=None, help="batch limit (default: what the GPU holds)")
    parser.add_argument("--kv-limit-tokens", type=int, default=None, help="KV-cache tokens (default: what the GPU holds)")
    parser.add_argument("--time-scale", type=float, default=0.02, help="wall seconds per model second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--startup-seconds", type=float, default=0.0, help="real seconds of 503 on /health at start")
    parser.add_argument("--warmup-seconds", type=float, default=0.0,
                        help="real seconds of warm-up after the start (stage 4's ColdStart; 0: none)")
    parser.add_argument("--warmup-speed", type=float, default=0.4, help="speed at the start of the warm-up (fraction)")
    parser.add_argument("--warmup-steps", type=int, default=4, help="equal steps of the warm-up's ramp")
    parser.add_argument("--stream-interval", type=float, default=0.005, help="real seconds between stream pushes (min)")
    args = parser.parse_args(argv)
    try:
        config = ServerConfig.from_presets(
            args.server_id, gpu=args.gpu, model=args.model, capacity=args.capacity, kv_limit_tokens=args.kv_limit_tokens,
            time_scale=args.time_scale, model_id=args.model_id, seed=args.seed, startup_seconds=args.startup_seconds,
            stream_interval=args.stream_interval,
            warmup=ColdStart(args.warmup_seconds, args.warmup_speed, args.warmup_steps) if args.warmup_seconds > 0 else None,
        )  # fmt: skip
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    asyncio.run(serve(config, args.host, args.port))


if __name__ == "__main__":
    main()
