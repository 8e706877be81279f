"""Serving a gateway: on a port in the running loop, until a signal, or in a thread of its own (for notebooks and tests).

* :func:`start_gateway`: the application of :func:`~solution.gateway.app.build_app`
  served on ``host:port`` in the running event loop (TLS when the
  configuration has it), behind :class:`~solution.gateway.deadline.HeaderDeadline`
  (the request-head timer), with aiohttp's keep-alive timer at
  ``timeouts.idle`` and ``handler_cancellation`` (a client that disconnects
  cancels its request); a :class:`RunningGateway` to close.
* :func:`run_gateway`: serve until SIGTERM or SIGINT, then stop cleanly
  (``python -m solution.gateway``).
* :class:`BackgroundGateway`: a gateway on its own event loop in a daemon
  thread, for code that is not async (a notebook, a widget, a test); read
  the path through :meth:`BackgroundGateway.call` (it is not thread-safe).
* :func:`ssl_context`: a server TLS context (TLS 1.2 or later).

Everything here is also importable from :mod:`solution.gateway.app`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from aiohttp import web

from solution.gateway.app import GATEWAY, Gateway, build_app
from solution.gateway.config import GatewayConfig
from solution.gateway.deadline import HeaderDeadline

__all__ = ["RunningGateway", "start_gateway", "run_gateway", "BackgroundGateway", "ssl_context"]


def ssl_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context from a PEM certificate chain and key (TLS 1.2 or later)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


@dataclass
class RunningGateway:
    """A started gateway: its URL and port; :meth:`close` stops it (connections, driver, pool)."""

    app: web.Application
    runner: web.AppRunner
    server: asyncio.base_events.Server
    port: int
    url: str

    @property
    def gateway(self) -> Gateway:
        return self.app[GATEWAY]

    async def close(self) -> None:
        self.server.close()
        await self.runner.cleanup()


async def start_gateway(config: GatewayConfig, *, host: str = "127.0.0.1", port: int = 0,
                        impl: str | ModuleType | None = None, access_log: bool = False) -> RunningGateway:  # fmt: skip
    """Start a gateway on ``host:port`` (0: a port from the OS) in the running event loop.

    TLS when ``config.tls`` is set (the URL is then ``https://``).  Header
    timeout: :class:`HeaderDeadline`; idle keep-alive: ``timeouts.idle``;
    a client that disconnects cancels its handler (``handler_cancellation``).
    """
    app = build_app(config, impl=impl)
    runner = web.AppRunner(app, handler_cancellation=True, keepalive_timeout=config.timeouts.idle,
                           access_log=logging.getLogger("aiohttp.access") if access_log else None,
                           shutdown_timeout=1.0)  # fmt: skip
    await runner.setup()
    gw = app[GATEWAY]
    ctx = ssl_context(config.tls.cert, config.tls.key) if config.tls is not None else None
    factory = runner.server
    assert factory is not None

    def expire() -> None:
        gw.client_timeouts += 1
        gw.metrics.request("client_timeout", None)

    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(lambda: HeaderDeadline(factory(), config.timeouts.header, expire), host, port,
                                          ssl=ctx, ssl_handshake_timeout=config.timeouts.header if ctx else None,
                                          reuse_address=True)  # fmt: skip
    except BaseException:
        await runner.cleanup()
        raise
    bound = server.sockets[0].getsockname()[1]
    scheme = "https" if ctx is not None else "http"
    return RunningGateway(app, runner, server, bound, f"{scheme}://{host}:{bound}")


def run_gateway(config: GatewayConfig, *, host: str = "127.0.0.1", port: int = 0, impl: str | None = None,
                ready: Callable[[RunningGateway], None] | None = None) -> None:  # fmt: skip
    """Serve until SIGTERM or SIGINT (what ``python -m solution.gateway`` runs); then stop cleanly."""
    import signal

    async def main() -> None:
        running = await start_gateway(config, host=host, port=port, impl=impl)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready(running)
        try:
            await stop.wait()
        finally:
            await running.close()

    asyncio.run(main())


class BackgroundGateway:
    """A gateway on its own event loop in a daemon thread: for a notebook, a widget or a test that is not async.

    >>> with BackgroundGateway(config) as gw:            # doctest: +SKIP
    ...     httpx.post(gw.url + "/v1/completions", ...)
    ...     gw.call(lambda g: g.path.stats())

    :meth:`call` runs a function on the gateway's loop (the path is not
    thread-safe: read it there).  ``loop_errors`` collects exceptions no
    task retrieved (a crashed task), for tests to assert on.  :meth:`close`
    (or leaving the ``with`` block) stops the gateway, then the loop and
    its thread.  Starting raises what :func:`start_gateway` raises (the
    thread is stopped first).
    """

    def __init__(self, config: GatewayConfig, *, host: str = "127.0.0.1", port: int = 0,
                 impl: str | ModuleType | None = None, timeout: float = 10.0) -> None:  # fmt: skip
        import threading

        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.loop_errors: list[str] = []
        self.loop.set_exception_handler(lambda _loop, ctx: self.loop_errors.append(str(ctx.get("exception") or ctx["message"])))
        self._thread = threading.Thread(target=self.loop.run_forever, name="gateway", daemon=True)
        self._thread.start()
        try:
            self.running = self.run(start_gateway(config, host=host, port=port, impl=impl))
        except BaseException:
            self._stop_loop()
            raise
        self.url = self.running.url
        self._closed = False

    @property
    def gateway(self) -> Gateway:
        """The :class:`Gateway` (read its path through :meth:`call`)."""
        return self.running.gateway

    def run(self, coro: Awaitable[Any]) -> Any:
        """Run a coroutine on the gateway's loop and return its result (at most ``timeout`` seconds)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.timeout)  # type: ignore[arg-type]

    def call(self, fn: Callable[[Gateway], Any]) -> Any:
        """``fn(gateway)`` on the gateway's loop; its result."""

        async def once() -> Any:
            return fn(self.gateway)

        return self.run(once())

    def close(self) -> None:
        """Stop the gateway, its loop and its thread.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.run(self.running.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()

    def __enter__(self) -> BackgroundGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
