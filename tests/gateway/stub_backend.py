"""A tiny OpenAI-shaped backend for the HAProxy and load-generator tests, fully under the test's control.

Every stub runs in one background event loop (a daemon thread) in the test
process, so a test can hold requests open (:meth:`StubBackend.hold`), count
them in flight, make ``/health`` fail, answer 429 with ``Retry-After``, or
"crash" a server (close its listening socket and every connection).  It is
not an inference server (see solution/gateway/inference_server.py): it
streams ``max_tokens`` chunks at ``token_delay`` seconds each and says which
server answered in the ``X-Server-Id`` header.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def loop() -> asyncio.AbstractEventLoop:
    """The shared background loop (started on first use; a daemon thread, so it never outlives the tests)."""
    global _loop
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="stub-backends", daemon=True).start()
    return _loop


def run(coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
    """Run ``coro`` on the background loop and wait (at most ``timeout`` s) for its result."""
    return asyncio.run_coroutine_threadsafe(coro, loop()).result(timeout)


class StubBackend:
    """One stub server on 127.0.0.1 (an OS-chosen port)."""

    def __init__(self, server_id: str, *, token_delay: float = 0.0) -> None:
        self.server_id = server_id
        self.token_delay = token_delay
        self.end_delay = 0.0  # seconds between a stream's "data: [DONE]" and its end (the response's EOF)
        self.healthy = True
        self.status = 200  # the status a completion answers (429 / 500 to test errors)
        self.retry_after: str | None = None
        self.in_flight = 0
        self.max_in_flight = 0  # the most completions open at once
        self.served = 0  # completions answered (any status)
        self.health_checks = 0
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []  # each completion's (headers, JSON body), in order
        self._held: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # control, from the test's thread -------------------------------------------------
    def start(self) -> StubBackend:
        """Listen (again, on the same port after a crash)."""
        if self._runner is not None:
            raise RuntimeError(f"stub {self.server_id} is already running")
        run(self._start())
        return self

    def stop(self) -> None:
        """Close the listening socket and every open connection (a crash, as clients see it).  Idempotent."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            run(runner.cleanup())

    crash = stop

    def hold(self) -> None:
        """From now on, completions wait (after their headers) until :meth:`release`."""
        self._held = run(self._event())

    def release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            loop().call_soon_threadsafe(held.set)

    # the server, on the background loop -------------------------------------------------
    async def _event(self) -> asyncio.Event:
        return asyncio.Event()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_post("/v1/completions", self._completion)
        app.router.add_post("/v1/chat/completions", self._completion)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)  # a restart keeps its port
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _health(self, request: web.Request) -> web.Response:
        self.health_checks += 1
        if self.healthy:
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "failing"}, status=503)

    async def _completion(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append((dict(request.headers), body))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            headers = {"X-Server-Id": self.server_id}
            if self.status != 200:
                if self.retry_after is not None:
                    headers["Retry-After"] = self.retry_after
                return web.json_response({"error": {"message": "stub error"}}, status=self.status, headers=headers)
            tokens = int(body.get("max_tokens", 16))
            if not body.get("stream"):
                if self._held is not None:
                    await self._held.wait()
                await asyncio.sleep(self.token_delay * tokens)
                return web.json_response({"choices": [{"text": "tok " * tokens}],
                                          "usage": {"prompt_tokens": len(str(body.get("prompt", "")).split()),
                                                    "completion_tokens": tokens}}, headers=headers)
            response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
            await response.prepare(request)
            if self._held is not None:
                await self._held.wait()
            try:
                for _ in range(tokens):
                    await asyncio.sleep(self.token_delay)
                    await response.write(b"data: " + json.dumps({"choices": [{"text": "tok "}]}).encode() + b"\n\n")
                await response.write(b"data: [DONE]\n\n")
                if self.end_delay:
                    await asyncio.sleep(self.end_delay)
                await response.write_eof()
            except ConnectionError:  # the client went away (a test's deadline or timeout): nothing to answer
                pass
            return response
        finally:
            self.in_flight -= 1
            self.served += 1


def start_stubs(ids: list[str], **options: Any) -> list[StubBackend]:
    """Start one stub per id (stopping the ones started if one fails)."""
    started: list[StubBackend] = []
    try:
        for server_id in ids:
            started.append(StubBackend(server_id, **options).start())
    except BaseException:
        for stub in started:
            stub.stop()
        raise
    return started


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    """Poll ``predicate`` (every 20 ms) until true; AssertionError after ``timeout`` s.  Never a bare sleep."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
