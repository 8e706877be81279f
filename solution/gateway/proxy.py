"""The gateway's client side: one try of a request at one backend, its answer streamed through, its failure classified.

:class:`Proxy` holds the one ``aiohttp.ClientSession`` of a gateway (a
keep-alive connection pool to every backend, no per-host limit: the path's
capacities bound what is in flight) and runs two things on it:

* :meth:`Proxy.attempt`: post the client's JSON to the backend (within
  ``timeouts.attempt``), and tell the request path how it ended through an
  :class:`AttemptReporter` (the driver, :mod:`solution.gateway.driver`).
  A 200 is an answer: a non-streamed body is kept for the client; a stream
  is passed through chunk by chunk while the attempt is still the
  request's current one, and its first chunk is the path's
  ``first_token`` (the client's 200 and ``text/event-stream`` headers go
  out with it; no re-send after it); once the stream's end, ``data:
  [DONE]``, is written, the call is ``complete``: a client that leaves then
  (the ``openai`` client does, at once) got its whole answer, and the
  handler counts it delivered.  A failure becomes stage 8's
  :class:`~solution.core.retry_types.Failure`, which the retrier decides on:

  ==========================================  =============================================
  what happened                               what the path is told
  ==========================================  =============================================
  a backend 4xx other than 429                a success: the client's own error, passed on
  a backend 5xx or 429                        ``Failure("status", status, Retry-After)``
  no answer within ``timeouts.attempt``       ``Failure("timeout")``
  connection refused                          ``server_lost``: nothing listens there
  connection reset or cut mid-answer          ``Failure("reset")``: this attempt only
  the client went away mid-stream             a success (the slot is freed), then cancel
  the attempt cancelled (abandoned, stopped)  a success, so its slot is freed
  ==========================================  =============================================

  A reset fails that attempt only: one broken keep-alive connection must
  not re-send a healthy server's other requests, and a crash resets them
  all anyway, each re-sent on its own.
* :meth:`Proxy.probe`: one health check, ``GET /health`` answered 200 within
  the health policy's timeout.

Costs: O(1) per attempt besides the bytes relayed (O(n) for n bytes).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Mapping
from typing import Protocol

import aiohttp
from aiohttp import web

from solution.core.retry_types import Failure
from solution.gateway.call import Answer, Call, ClientGone
from solution.gateway.config import Backend, GatewayConfig

__all__ = ["AttemptReporter", "Proxy", "PASSED_HEADERS", "SSE_END", "parse_retry_after"]

_events = logging.getLogger("solution.gateway")

#: ``usage.completion_tokens`` of an OpenAI answer, read without parsing the whole body (the answer goes to the client
#: as it came; only its token count is needed, for the server's seconds per token).  A JSON string cannot hold an
#: unescaped quote, so only a key matches; a body without it counts ``max_tokens``, as a body json.loads refused did.
_COMPLETION_TOKENS = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')

#: The end of an OpenAI stream: the client has the whole answer once this is written.
SSE_END = b"data: [DONE]\n\n"

#: A backend's response headers the client gets (lower case); the rest (Content-Length, Date, Server, ...) are the gateway's own.
PASSED_HEADERS = frozenset({"content-type", "retry-after", "x-server-id"})


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header's seconds (delta form only; an HTTP date or junk -> None)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class AttemptReporter(Protocol):
    """What an attempt tells about itself (the driver implements it; every call is on the event loop)."""

    def now(self) -> float:
        """The path's clock."""

    def report(self, call: Call, sid: str, ok: bool, failure: Failure | None = None, spt: float | None = None) -> None:
        """The attempt at ``sid`` ended (``ok``, or failed with ``failure``; ``spt``: measured seconds per token)."""

    def lost(self, sid: str) -> None:
        """A connection to ``sid`` was refused: the server is lost."""

    def first_token(self, call: Call) -> bool:
        """The stream's first chunk is here; False if the path no longer knows the request (it must not be sent)."""

    def client_gone(self, call: Call) -> None:
        """The client went away: cancel its request."""

    def attempt_ended(self, call: Call, task: asyncio.Task[None] | None) -> None:
        """The attempt's task is finishing (forget it)."""


class Proxy:
    """The backend connection pool, and one attempt or one probe on it.

    ``backends`` is read at each attempt (a server added at run time is
    found).  :meth:`open` before use, :meth:`close` at the end.
    """

    def __init__(self, config: GatewayConfig, backends: Mapping[str, Backend]) -> None:
        self.config = config
        self.backends = backends
        self.session: aiohttp.ClientSession | None = None
        self._probe_timeout = aiohttp.ClientTimeout(total=config.health_policy().timeout)

    async def open(self) -> None:
        """Open the keep-alive pool (no connection limit; connecting times out after min(5 s, ``timeouts.attempt``))."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(5.0, self.config.timeouts.attempt))
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, enable_cleanup_closed=True)
        # no cookie jar: a proxy must not keep a cookie a backend set in one client's answer and send it with others'
        self.session = aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=False,
                                             cookie_jar=aiohttp.DummyCookieJar())  # fmt: skip

    async def close(self) -> None:
        """Close the pool (its connections)."""
        if self.session is not None:
            await self.session.close()

    async def probe(self, sid: str) -> bool:
        """One health check of ``sid``: ``GET /health`` answered 200 in time (an unknown server: False)."""
        b = self.backends.get(sid)
        if b is None or self.session is None:
            return False
        try:
            async with self.session.get(b.url + "/health", timeout=self._probe_timeout) as resp:
                ok = resp.status == 200
                await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError):
            ok = False
        return ok

    async def attempt(self, call: Call, sid: str, attempt: int, reporter: AttemptReporter) -> None:
        """Send ``call`` to ``sid`` and report how it ended; stream chunks to the client while it is current."""
        task = asyncio.current_task()
        b = self.backends[sid]
        assert self.session is not None
        started = reporter.now()
        reported = False
        try:
            async with asyncio.timeout(self.config.timeouts.attempt):
                async with self.session.post(b.url + call.path_name, data=call.payload,
                                             headers={"Content-Type": "application/json", "X-Request-Id": call.rid}) as resp:  # fmt: skip
                    if resp.status != 200:
                        body = await resp.read()
                        keep = {k: v for k, v in resp.headers.items() if k.lower() in PASSED_HEADERS}
                        answer = Answer(resp.status, body, keep)
                        reported = True
                        if 400 <= resp.status < 500 and resp.status != 429:  # the client's error: passed through
                            call.answers[(sid, attempt)] = answer
                            reporter.report(call, sid, True)
                        else:
                            if call.is_current(sid, attempt):
                                call.last_error, call.last_failure = answer, f"status {resp.status}"
                            ra = parse_retry_after(resp.headers.get("Retry-After"))
                            reporter.report(call, sid, False, Failure("status", status=resp.status, retry_after=ra))
                        return
                    if call.stream:
                        await self._relay_stream(call, sid, attempt, resp, reporter)
                        spt = None
                        if call.ttft is not None and call.max_tokens > 0:
                            spt = max(reporter.now() - started, 1e-6) / call.max_tokens
                        reported = True
                        reporter.report(call, sid, True, spt=spt)
                    else:
                        body = await resp.read()
                        keep = {k: v for k, v in resp.headers.items() if k.lower() in PASSED_HEADERS}
                        call.answers[(sid, attempt)] = Answer(200, body, keep)
                        found = _COMPLETION_TOKENS.search(body)
                        tokens = (int(found[1]) if found else 0) or call.max_tokens
                        reported = True
                        reporter.report(call, sid, True, spt=max(reporter.now() - started, 1e-6) / max(tokens, 1))
        except ClientGone:
            reporter.client_gone(call)
            if not reported:
                reported = True
                reporter.report(call, sid, True)  # not the server's fault: its slot is freed, the answer discarded
        except asyncio.CancelledError:
            if not reported:
                reporter.report(call, sid, True)
            raise
        except TimeoutError:
            if not reported:
                if call.is_current(sid, attempt):
                    call.last_failure = "timeout"
                reporter.report(call, sid, False, Failure("timeout"))
        except aiohttp.ClientConnectorError:
            if not reported:
                if call.is_current(sid, attempt):
                    call.last_failure = "connect"
                reporter.lost(sid)
        except (aiohttp.ClientError, ConnectionError, OSError):  # reset, disconnected, a cut payload: this attempt's
            if not reported:  # connection broke; the server's other attempts see their own (a crash breaks them all)
                if call.is_current(sid, attempt):
                    call.last_failure = "reset"
                reporter.report(call, sid, False, Failure("reset"))
        except Exception:  # a bug here must not leave the attempt's slot taken or its request waiting forever
            _events.exception("attempt %s@%s failed unexpectedly", call.rid, sid)
            if not reported:
                reporter.report(call, sid, False, Failure("reset"))
        finally:
            reporter.attempt_ended(call, task)

    async def _relay_stream(self, call: Call, sid: str, attempt: int, resp: aiohttp.ClientResponse,
                            reporter: AttemptReporter) -> None:  # fmt: skip
        """Pass SSE chunks through as they arrive; the first one is the request's first token (no re-send after it)."""
        tail = b""  # the last bytes written, to see the stream's end even when it is split over chunks
        async for chunk in resp.content.iter_any():
            if not chunk or not call.is_current(sid, attempt):
                continue  # an abandoned attempt's output never reaches the client
            if call.response is None:
                if not reporter.first_token(call):
                    call.current = None
                    continue
                call.ttft = reporter.now() - call.arrived
                headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Request-Id": call.rid}
                if "X-Server-Id" in resp.headers:
                    headers["X-Server-Id"] = resp.headers["X-Server-Id"]
                out = web.StreamResponse(status=200, headers=headers)
                call.response = out
                try:
                    await out.prepare(call.request)
                except (ConnectionError, RuntimeError) as exc:
                    raise ClientGone() from exc
            try:
                await call.response.write(chunk)
            except (ConnectionError, RuntimeError) as exc:
                raise ClientGone() from exc
            tail = (tail + chunk)[-len(SSE_END) :]
            if tail == SSE_END:
                call.complete = True  # the client has the whole answer (it may close at once, as the openai client does)
