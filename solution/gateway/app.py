"""The course's HTTP gateway: an OpenAI-compatible front door driving one :class:`~solution.core.path.RequestPath`.

Why aiohttp: one well-kept library gives the asyncio HTTP server (with
streamed responses), the client with a keep-alive connection pool to the
backends, and timeouts on both sides, so the whole gateway is one event
loop with no ASGI server in between to configure (Starlette would need
uvicorn for the server and httpx for the client).

The gateway is a few modules, one job each; this one is the HTTP side
(the routes, the handlers, the answers):

==============================================  ============================================================
module                                          its job
==============================================  ============================================================
``app`` (here)                                  routes and handlers: auth, validation, submit, the client's
                                                one answer from the path's final outcome, admin endpoints
:mod:`~solution.gateway.validation`             reading and checking a body (400/404/408/413), word counts
:mod:`~solution.gateway.compose`                the one ``RequestPath``, composed from the config
:mod:`~solution.gateway.driver`                 the task that drives the path; carrying out its outcomes
:mod:`~solution.gateway.proxy`                  one try at a backend: pool, timeout, stream, ``Failure``
:mod:`~solution.gateway.call`                   the per-request record the three above share
:mod:`~solution.gateway.requestlog`             the one JSON log line per request
:mod:`~solution.gateway.metrics`                Prometheus ``/metrics``
:mod:`~solution.gateway.auth`                   API keys, compared in constant time
:mod:`~solution.gateway.deadline`               the request-head timer (slow clients)
:mod:`~solution.gateway.serve`                  serving: a port, a signal, a background thread
==============================================  ============================================================

The balancer is the course's own: the components come from
:mod:`solution.core.impl` (``LB_IMPL=exercises`` runs a candidate's), composed
in **one** ``RequestPath`` per gateway (router and strategy, stage-4 health
checks and retry ledger, the stage-2 queue, stage-6 tiers and rate limits,
stage 8's retrier with its backoff and budget; no preemption: an inference
server over HTTP has no pause and resume).  The path never reads a clock
and never blocks: every call takes ``now`` (seconds of the event loop's
monotonic clock since the gateway started) and returns outcomes, which the
:class:`~solution.gateway.driver.PathDriver` carries out at once (an attempt
task per ``Dispatched``; a final outcome wakes the waiting handler, which
answers); its driver task sleeps until the path's next event.

A request's trip (``POST /v1/completions`` and ``/v1/chat/completions``):

1. **auth** before the body is read: ``Authorization: Bearer <key>`` ->
   tenant and tier (:class:`~solution.gateway.auth.KeyStore`, constant time,
   the key never logged); else 401 and no server sees it.
2. **input**: a body over ``max_body_bytes`` -> 413 (from its
   ``Content-Length``, before reading); a body that does not arrive within
   ``timeouts.body`` -> 408 and the connection is closed; malformed JSON,
   missing or ill-typed fields -> 400; another model than ``model_id`` ->
   404; a prompt over ``max_prompt_tokens`` (whitespace-separated words) ->
   413; with ``estimate: "header"``, a bad ``X-Output-Tokens-Estimate`` ->
   400.  None of these costs server time.  The path prices the request as
   its prompt plus the output estimate (``max_tokens``, or that header's
   guess with ``estimate: "header"``: :func:`~solution.gateway.validation.output_estimate`).
3. **submit** to the path: ``Rejected`` -> 429 (a tier's rate limit, stage
   6) or 503 (queue full, stage 2), each with an integer ``Retry-After``
   header; a request bigger than a rate-limit bucket -> 413.
4. **proxy**: the attempt posts the client's JSON unchanged to the backend
   through one ``aiohttp.ClientSession`` (a connection pool), except that a
   missing or null ``max_tokens`` is set to the one the gateway estimated
   with (``max_completion_tokens`` or ``default_max_tokens``), so the server
   generates what the balancer priced.  With
   ``stream: true`` the SSE chunks go to the client as they arrive; the
   client's headers (200, ``text/event-stream``) are sent at the first chunk,
   which is also the path's ``first_token``: from then on the request is
   never re-sent (a stream cut afterwards ends with an SSE ``error`` event).
   Before that, a failure can still be re-sent, so a client never sees a
   200 that was not an answer.  A connection *refused* by a backend is
   ``server_lost`` (nothing listens there: every attempt there is re-sent or
   failed at once, and it takes nothing until a probe answers); a
   connection *reset* fails that attempt only (``Failure("reset")``: one
   broken keep-alive connection must not re-send a healthy server's other
   requests; a crash resets them all anyway, each re-sent on its own); a 5xx
   or 429 is a failed attempt (``completed(ok=False, failure=...)``); the
   backend's other 4xx answers are the client's own error, passed through
   and not held against the server.
5. **log**: one JSON line per request on the ``solution.gateway.requests``
   logger: id, tenant, tier, status, outcome, the route decisions
   (attempt, server, time, previous server), tries, ttft, e2e.  Never the key.

What the client gets, by the request's end:

=====================================================  ==================================================
the path's final outcome (or the refusal)              HTTP answer
=====================================================  ==================================================
no valid key                                           401 (``WWW-Authenticate: Bearer``)
bad JSON / fields; unknown model; too large; slow body 400; 404; 413; 408 (then the connection closes)
``Delivered``                                          200 (streamed, or the body), or the server's 4xx
``Rejected`` by a tier's rate limit / a full queue     429 / 503, ``Retry-After: <ceil(wait)>``
``TimedOut`` (``max_wait`` in the queue)               503, ``Retry-After`` from the queue's drain rate
``Failed`` after a server's 5xx/429                    that status, body and ``Retry-After``
``Failed`` after connection errors / a timeout         502 / 504 (503 + ``Retry-After: 1`` for ``budget``)
``Failed`` after tokens were streamed                  the stream ends with ``data: {"error": ...}``
``Cancelled`` (the client went away)                   nothing (logged as 499)
=====================================================  ==================================================

Slow clients: every request head must arrive within ``timeouts.header``
of its first byte (of the connection's opening, for the first request):
:class:`~solution.gateway.deadline.HeaderDeadline`, a protocol-level timer in front of aiohttp's
handler, as aiohttp has none for headers; a body within ``timeouts.body``;
an idle kept-alive connection is closed after ``timeouts.idle`` (aiohttp's
keep-alive timer); a client that goes away cancels its request
(``handler_cancellation``: the path's ``cancel``).

Costs per request: the path's own (O(log S) per call) plus O(1) here; the
``/metrics`` scrape is O(S + R).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from aiohttp import ClientSession, web

from solution.core.errors import RequestTooLargeError, UnknownTierError
from solution.core.impl import load_impl
from solution.core.request import Request
from solution.gateway.auth import KeyStore
from solution.gateway.call import Answer, Call
from solution.gateway.compose import compose_path
from solution.gateway.config import Backend, GatewayConfig, Principal
from solution.gateway.driver import PathDriver
from solution.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from solution.gateway.proxy import Proxy
from solution.gateway.requestlog import REQUEST_LOGGER, log_refusal, log_request
from solution.gateway.validation import CHAT, COMPLETIONS, BadInput, count_tokens, output_estimate, read_json, validate

__all__ = ["Gateway", "GATEWAY", "build_app", "RunningGateway", "start_gateway", "run_gateway", "BackgroundGateway",
           "ssl_context", "count_tokens", "REQUEST_LOGGER"]  # fmt: skip


def _error_body(message: str, kind: str, code: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


def _json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


class Gateway:
    """The gateway's state: the config, one RequestPath, the backend client, metrics, the driver task.

    Built by :func:`build_app`; :meth:`start` and :meth:`stop` run as the
    application's startup and cleanup.  Not thread-safe: everything runs on
    one event loop (which is what lets the path be called without a lock).

    Raises (at creation): TypeError / ValueError for an implementation that
    lacks a component the configuration asks for.
    """

    def __init__(self, config: GatewayConfig, *, impl: str | ModuleType | None = None) -> None:
        if not isinstance(config, GatewayConfig):
            raise TypeError(f"config must be a GatewayConfig, got {type(config).__name__}")
        self.config = config
        lib = impl if isinstance(impl, ModuleType) else load_impl(impl, default="solution")
        self.lib = lib
        self.keys = KeyStore(config.keys)
        self.backends = {b.server_id: b for b in config.backends}
        self.metrics = GatewayMetrics(lambda: (self.path, self.health, tuple(self.backends), self.retrier))
        self.path, self.health, self.retrier = compose_path(config, lib)
        self._t0 = time.monotonic()
        self._ids = itertools.count(1)
        self._prefix = os.urandom(3).hex()
        self.proxy = Proxy(config, self.backends)
        self.driver = PathDriver(self.path, self.proxy, self.metrics, self.now)
        self.client_timeouts = 0

    # -- life cycle ------------------------------------------------------------------

    @property
    def session(self) -> ClientSession | None:
        """The backend connection pool (the proxy's; None before :meth:`start`)."""
        return self.proxy.session

    @property
    def drained(self) -> dict[str, float]:
        """Servers drained away, and when (the path's clock)."""
        return self.driver.drained

    def now(self) -> float:
        """Seconds since the gateway started (the event loop's monotonic clock): the path's ``now``."""
        return time.monotonic() - self._t0

    async def start(self, app: web.Application | None = None) -> None:
        """Open the backend connection pool, add the servers (warm), start the driver task."""
        await self.proxy.open()
        now = self.now()
        for b in self.config.backends:
            self.driver.apply(self.path.add_server(b.server_id, b.capacity, b.gpu_memory_gb, now, warm=True, version=b.version))
        self.driver.start()

    async def stop(self, app: web.Application | None = None) -> None:
        """Stop the driver, the probes and every attempt still running; close the pool."""
        await self.driver.stop()
        await self.proxy.close()

    # -- HTTP handlers -----------------------------------------------------------------

    async def handle_completion(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/completions`` and ``/v1/chat/completions``: see the module for the trip."""
        arrived = self.now()
        principal = self.keys.lookup(request.headers.get("Authorization"))
        if principal is None:
            self.metrics.request("unauthorized", None)
            log_refusal(request.path, 401, "unauthorized", None, None, self.now() - arrived)
            return _json_response(401, _error_body("a valid API key is required: Authorization: Bearer <key>",
                                                    "invalid_request_error", "invalid_api_key"),
                                  {"WWW-Authenticate": 'Bearer realm="gateway"'})  # fmt: skip
        try:
            data, payload = await read_json(request, self.config)
            prompt_tokens, max_tokens, stream = validate(request.path, data, self.config)
            estimate = output_estimate(request.headers, max_tokens, self.config)  # max_tokens unless the config reads the header
        except BadInput as bad:
            if bad.status == 408:
                self.client_timeouts += 1
            outcome = {400: "bad_request", 404: "not_found", 408: "client_timeout", 413: "too_large"}.get(bad.status, "bad_request")
            self.metrics.request(outcome, principal.tier)
            log_refusal(request.path, bad.status, outcome, principal.tenant, principal.tier, self.now() - arrived)
            resp = _json_response(bad.status, _error_body(bad.message, bad.kind, bad.code))
            if bad.status in (408, 413) and request.transport is not None:
                # the rest of the body is not waited for: answer, then close (aiohttp would linger to read it)
                resp.force_close()
                await resp.prepare(request)
                await resp.write_eof()
                request.transport.close()
            return resp
        rid = f"gw-{self._prefix}-{next(self._ids)}"
        if not isinstance(data.get("max_tokens"), int):  # absent or null: the server must generate what was estimated
            payload = json.dumps({**data, "max_tokens": max_tokens}).encode()
        call = Call(rid, principal.tenant, principal.tier, request.path, stream, payload, prompt_tokens, max_tokens,
                     arrived, request)  # fmt: skip
        req = Request(rid, prompt_tokens + estimate, prompt_tokens, tier=principal.tier, tenant=principal.tenant)
        self.driver.calls[rid] = call
        try:
            try:
                out = self.path.submit(req, self.now())
            except RequestTooLargeError as exc:
                self._done(call, 413, "too_large", None)
                return _json_response(413, _error_body(str(exc), "invalid_request_error", "request_too_large"))
            except UnknownTierError as exc:  # the config was validated against the table: a bug, said plainly
                return _json_response(500, _error_body(str(exc), "server_error"))
            self.driver.apply(out)
            await call.done.wait()
            return await self._answer(call)
        finally:
            if call.final is None and call.complete and call.current is not None:
                # the client read the whole stream, to its [DONE], and left before the backend's end reached us (as
                # the openai client does): the answer was delivered, and the server's slot is freed as for one
                self.driver.report(call, call.current[0], True)
            if call.final is None:  # the client went away (handler cancelled) before its answer
                self.driver.client_gone(call)
                for task in list(call.tasks):
                    if task is not asyncio.current_task():
                        task.cancel()
            if not call.finished:  # it went away before its answer, or while it was being written
                if call.complete and type(call.final).__name__ == "Delivered":
                    self._done(call, 200, "delivered", None)
                else:
                    self._done(call, 499, "cancelled", "client went away")
            self.driver.forget(call)  # abandoned attempts still running report their late answers themselves

    async def _answer(self, call: Call) -> web.StreamResponse:
        """The client's one answer, from the request's final outcome."""
        o = call.final
        name = type(o).__name__
        tries = len(call.route)
        if name == "Delivered":
            if call.stream and call.response is not None:
                self._done(call, 200, "delivered", None)
                await self._finish_stream(call)
                return call.response
            answer = call.answers.get((o.server_id, o.attempt))
            if answer is None:  # a stream request whose backend sent nothing: nothing to pass on
                answer = Answer(502, _error_body("the server's answer was empty", "server_error"))
            self._done(call, answer.status, "delivered", None)
            return web.Response(status=answer.status, body=answer.body, headers={**answer.headers, "X-Request-Id": call.rid})
        if name == "Rejected":
            outcome = "rate_limited" if o.status == 429 else "queue_full"
            message = ("rate limit reached for this key's tier; retry after the Retry-After seconds" if o.status == 429
                       else "the gateway is at capacity (queue full); retry after the Retry-After seconds")  # fmt: skip
            self._done(call, o.status, outcome, None, retry_after=o.retry_after)
            code = "rate_limit_exceeded" if o.status == 429 else "overloaded"
            return _json_response(o.status, _error_body(message, "rate_limit_error" if o.status == 429 else "server_error", code),
                                  {"Retry-After": str(int(o.retry_after)), "X-Request-Id": call.rid})  # fmt: skip
        if name == "TimedOut":
            retry = self._queue_retry_after(call.tier)
            self._done(call, 503, "timed_out", "waited max_wait in the queue", retry_after=retry)
            return _json_response(503, _error_body(f"no server freed up within {o.waited:.3g} s; retry later", "server_error", "queue_timeout"),
                                  {"Retry-After": str(retry), "X-Request-Id": call.rid})  # fmt: skip
        if name == "Failed":
            if call.response is not None:  # tokens reached the client: end the stream with an error event
                self._done(call, 200, "failed", o.reason)
                await self._finish_stream(call, error=f"the server failed after the answer began ({o.reason})")
                return call.response
            if call.last_error is not None and call.last_failure and call.last_failure.startswith("status"):
                e = call.last_error
                self._done(call, e.status, "failed", o.reason)
                return web.Response(status=e.status, body=e.body, headers={**e.headers, "X-Request-Id": call.rid})
            status = 504 if o.reason == "timeout" or call.last_failure == "timeout" else 502
            headers = {"X-Request-Id": call.rid}
            if o.reason in ("budget", "no_server"):
                status, headers["Retry-After"] = 503, "1"
            self._done(call, status, "failed", o.reason)
            return _json_response(status, _error_body(f"no server could answer ({o.reason}; {tries} tries)", "server_error", o.reason),
                                  headers)  # fmt: skip
        # Cancelled: the client is gone; nothing can be sent
        self._done(call, 499, "cancelled", "client went away")
        return call.response if call.response is not None else web.Response(status=499)

    async def _finish_stream(self, call: Call, error: str | None = None) -> None:
        assert call.response is not None
        try:
            if error is not None:
                await call.response.write(b"data: " + json.dumps({"error": {"message": error, "type": "server_error"}}).encode() + b"\n\n")
            await call.response.write_eof()
        except (ConnectionError, RuntimeError):
            pass

    def _queue_retry_after(self, tier: str | None) -> int:
        queue = self.path.queues.get(tier if self.path.tiers is not None else None)
        try:
            return max(1, int(queue.retry_after())) if queue is not None else 1
        except (AttributeError, NotImplementedError, TypeError, ValueError):
            return 1

    # -- logs --------------------------------------------------------------------------

    def _done(self, call: Call, status: int, outcome: str, reason: str | None, *, retry_after: int | None = None) -> None:
        """Count (by outcome and tier), time (delivered answers) and log a submitted request: exactly once.  O(1)."""
        if call.finished:
            return
        call.finished = True
        self.metrics.request(outcome, call.tier)
        e2e = self.now() - call.arrived
        ttft = call.ttft if call.ttft is not None else (e2e if status == 200 else None)
        if outcome == "delivered" and status == 200:
            self.metrics.latency(call.tier, ttft, e2e, len(call.route))
        log_request(call, status, outcome, reason, retry_after=retry_after, ttft=ttft, e2e=e2e)


    # -- the other endpoints -----------------------------------------------------------------

    async def handle_models(self, request: web.Request) -> web.Response:
        """``GET /v1/models``: the one model this gateway serves (a key is required, as OpenAI's API does)."""
        if self.keys.lookup(request.headers.get("Authorization")) is None:
            self.metrics.request("unauthorized", None)
            return _json_response(401, _error_body("a valid API key is required", "invalid_request_error", "invalid_api_key"))
        body = {"object": "list", "data": [{"id": self.config.model_id, "object": "model", "created": 0, "owned_by": "course"}]}
        return web.json_response(body)

    async def handle_health(self, request: web.Request) -> web.Response:
        """``GET /health``: 200 while the gateway runs, with how many servers are ready."""
        ready = sum(1 for sid in self.backends if self.path.server_state(sid) == "ready")
        return web.json_response({"status": "ok", "servers": len(self.backends), "ready": ready})

    async def handle_ready(self, request: web.Request) -> web.Response:
        """``GET /ready``: 200 when at least one server takes traffic, else 503 (a readiness probe, as Kubernetes'
        beside its liveness probe, ``/health``: a gateway with no server to send to should get no traffic itself)."""
        ready = sum(1 for sid in self.backends if self.path.server_state(sid) == "ready")
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def handle_metrics(self, request: web.Request) -> web.Response:
        """``GET /metrics``: the Prometheus text format."""
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def handle_drain(self, request: web.Request) -> web.Response:
        """``POST /admin/drain`` ``{"server_id": ..., "timeout": seconds | null}`` (needs ``admin_key``): drain a server."""
        if not self._admin(request):
            return _json_response(401, _error_body("the admin key is required", "invalid_request_error", "invalid_api_key"))
        try:
            data = json.loads(await request.read())
            sid = data["server_id"]
            timeout = data.get("timeout")
            if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
                raise ValueError("timeout must be a number of seconds >= 0 or null")
        except (ValueError, KeyError, TypeError) as exc:
            return _json_response(400, _error_body(f"expected {{\"server_id\": str, \"timeout\": seconds|null}}: {exc}",
                                                   "invalid_request_error"))  # fmt: skip
        if not isinstance(sid, str) or sid not in self.backends or self.path.server_state(sid) == "gone":
            return _json_response(404, _error_body(f"no server {str(sid)[:100]!r} here", "invalid_request_error"))
        self.driver.apply(self.path.remove_server(sid, self.now(), drain_timeout=timeout))
        return web.json_response({"server_id": sid, "state": self.path.server_state(sid)})

    async def handle_add(self, request: web.Request) -> web.Response:
        """``POST /admin/servers`` ``{"server_id", "url", "capacity", "gpu_memory_gb", "version", "gpu", "model", "warm"}``
        (needs ``admin_key``): add a server (``warm`` false, the default: it starts in slow start, as a server just
        started should).  A drained-away id may be added again (a restart, a new version); a present one is 409."""
        if not self._admin(request):
            return _json_response(401, _error_body("the admin key is required", "invalid_request_error", "invalid_api_key"))
        try:
            data = json.loads(await request.read())
            if not isinstance(data, dict):
                raise TypeError("the body must be a JSON object")
            warm = data.pop("warm", False)
            if not isinstance(warm, bool):
                raise TypeError("warm must be true or false")
            backend = Backend(**data)
        except (ValueError, KeyError, TypeError) as exc:
            return _json_response(400, _error_body(f"expected a backend record {{server_id, url, capacity, ...}}: {exc}",
                                                   "invalid_request_error"))  # fmt: skip
        sid = backend.server_id
        if self.path.server_state(sid) != "gone":
            return _json_response(409, _error_body(f"server {sid[:100]!r} is already here ({self.path.server_state(sid)}); "
                                                   "drain it first", "invalid_request_error"))  # fmt: skip
        models = self.path.router.models
        if backend.gpu is not None or backend.model is not None:
            models[sid] = backend.latency_model()
        else:
            models.pop(sid, None)
        self.backends[sid] = backend
        self.drained.pop(sid, None)
        self.driver.apply(self.path.add_server(sid, backend.capacity, backend.gpu_memory_gb, self.now(), warm=warm,
                                         version=backend.version))  # fmt: skip
        return web.json_response({"server_id": sid, "state": self.path.server_state(sid)})

    async def handle_servers(self, request: web.Request) -> web.Response:
        """``GET /admin/servers`` (needs ``admin_key``): each server's state and load."""
        if not self._admin(request):
            return _json_response(401, _error_body("the admin key is required", "invalid_request_error", "invalid_api_key"))
        running: dict[str, int] = {}
        for sid in self.path.in_flight().values():
            running[sid] = running.get(sid, 0) + 1
        body = {sid: {"state": self.path.server_state(sid), "in_flight": running.get(sid, 0)} for sid in self.backends}
        return web.json_response({"servers": body, "stats": self.path.stats()})

    def _admin(self, request: web.Request) -> bool:
        key = self.config.admin_key
        if key is None:
            return False
        return KeyStore({key: _ADMIN}).lookup(request.headers.get("Authorization")) is not None


_ADMIN = Principal("admin")

#: The application key holding the :class:`Gateway`.
GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)


async def _not_found(request: web.Request) -> web.Response:
    return _json_response(404, _error_body(f"no route {request.method} {request.path[:200]}", "invalid_request_error", "not_found"))


def build_app(config: GatewayConfig, *, impl: str | ModuleType | None = None) -> web.Application:
    """The aiohttp application of one gateway (one :class:`Gateway`, one RequestPath).

    ``impl``: ``"solution"``, ``"exercises"`` or ``None`` (``LB_IMPL``, else the reference).
    Its startup opens the backend pool and starts the driver; its cleanup stops them.
    """

    @web.middleware
    async def errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            gw.metrics.request("not_found", None)
            return await _not_found(request)
        except web.HTTPMethodNotAllowed as exc:
            return _json_response(405, _error_body(f"{request.method} is not allowed on {request.path[:200]}", "invalid_request_error"),
                                  {"Allow": ",".join(sorted(exc.allowed_methods))})  # fmt: skip

    gw = Gateway(config, impl=impl)
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[errors])
    app[GATEWAY] = gw
    app.router.add_post(COMPLETIONS, gw.handle_completion)
    app.router.add_post(CHAT, gw.handle_completion)
    app.router.add_get("/v1/models", gw.handle_models)
    app.router.add_get("/health", gw.handle_health)
    app.router.add_get("/ready", gw.handle_ready)
    app.router.add_get("/metrics", gw.handle_metrics)
    app.router.add_post("/admin/drain", gw.handle_drain)
    app.router.add_get("/admin/servers", gw.handle_servers)
    app.router.add_post("/admin/servers", gw.handle_add)
    app.on_startup.append(gw.start)
    app.on_cleanup.append(gw.stop)
    return app


_SERVING = frozenset({"RunningGateway", "start_gateway", "run_gateway", "BackgroundGateway", "ssl_context"})


def __getattr__(name: str) -> Any:
    """The serving names live in :mod:`solution.gateway.serve` (which imports this module): imported on first use."""
    if name in _SERVING:
        from solution.gateway import serve

        return getattr(serve, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
