"""Slow clients: a deadline on every request head, which aiohttp's server does not have.

A client that trickles its request head a byte at a time (a "slowloris")
holds a connection, and a task, for as long as it likes unless something
times the head.  aiohttp times idle kept-alive connections and lets a
handler time its body read, but has no header timeout, so
:class:`HeaderDeadline` is a protocol placed in front of aiohttp's, as
Envoy's ``request_headers_timeout`` is in front of its HTTP codec.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["HeaderDeadline", "MAX_HEAD", "body_length"]


class HeaderDeadline(asyncio.Protocol):
    """A protocol in front of aiohttp's handler: every request head must arrive within ``timeout`` seconds.

    aiohttp has no header timeout (a client trickling its headers a byte at a
    time holds a connection until the keep-alive timer, ``timeouts.idle``),
    so this wrapper follows the request framing on the byte stream, as
    Envoy's ``request_headers_timeout`` does: the timer starts when a
    connection opens and, on a kept-alive connection, at the first byte of
    each later request; it stops at the blank line that ends the head
    (``CRLF CRLF``); then ``Content-Length`` body bytes are skipped.  When it
    fires, the client gets ``408 Request Timeout`` (only before its first
    request: later, an answer may still be on its way, so the connection is
    just closed).  A head longer than :data:`MAX_HEAD` or a chunked request
    body ends the tracking for that connection (aiohttp refuses the first,
    and the keep-alive timer still bounds the second).  Every byte is passed
    to the wrapped protocol untouched.  O(n) per chunk of n bytes, O(head)
    memory per connection.
    """

    _HEAD, _BODY, _IDLE, _OFF = range(4)

    def __init__(self, inner: asyncio.Protocol, timeout: float, on_expire: Callable[[], None]) -> None:
        self._inner = inner
        self._timeout = timeout
        self._on_expire = on_expire
        self._timer: asyncio.TimerHandle | None = None
        self._head = bytearray()
        self._state = self._HEAD
        self._left = 0  # body bytes still to skip
        self._requests = 0  # request heads completed on this connection
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._arm()
        self._inner.connection_made(transport)

    def _arm(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        self._track(data)
        self._inner.data_received(data)

    def _track(self, data: bytes) -> None:
        view, i, n = memoryview(data), 0, len(data)
        while i < n and self._state != self._OFF:
            if self._state == self._IDLE:
                self._state = self._HEAD  # the first byte of the next request: its head is timed from now
                self._arm()
            if self._state == self._BODY:
                step = min(self._left, n - i)
                i += step
                self._left -= step
                if self._left == 0:
                    self._state = self._IDLE
                continue
            before = len(self._head)
            self._head += view[i:]
            end = self._head.find(b"\r\n\r\n", max(0, before - 3))
            if end < 0:
                if len(self._head) > MAX_HEAD:
                    self._stop_tracking()
                return
            i += end + 4 - before
            head = bytes(self._head[:end])
            self._head.clear()
            self._disarm()
            self._requests += 1
            self._left, framed = body_length(head)
            self._state = self._BODY if self._left else self._IDLE
            if not framed:
                self._stop_tracking()

    def _stop_tracking(self) -> None:
        self._disarm()
        self._state = self._OFF
        self._head.clear()

    def _expired(self) -> None:
        self._timer = None
        self._on_expire()
        t = self._transport
        if isinstance(t, asyncio.WriteTransport) and not t.is_closing():
            if self._requests == 0:
                t.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            t.close()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


#: The longest request head :class:`HeaderDeadline` follows (aiohttp's own limits refuse longer ones).
MAX_HEAD = 64 * 1024


def body_length(head: bytes) -> tuple[int, bool]:
    """``(Content-Length, framed)`` of a request head: ``framed`` is False for a chunked or unreadable length."""
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding":
            return 0, False
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return 0, False
            if length < 0:
                return 0, False
    return length, True
