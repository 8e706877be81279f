"""One client request inside the gateway, from its submit to its one answer (:class:`Call`), and what it carries.

A :class:`Call` is shared by the handler that submitted the request
(:mod:`solution.gateway.app`: it waits on ``done`` and then answers from
``final``), the driver that carries out the request path's outcomes for it
(:mod:`solution.gateway.driver`: ``current``, ``route``, ``queued``,
``final``) and its attempts (:mod:`solution.gateway.proxy`: ``answers``,
``last_error``, ``response`` and ``ttft`` of a stream).  Everything runs on
one event loop, so none of it needs a lock.  Records only: O(1) each.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["Answer", "Call", "ClientGone"]


class ClientGone(Exception):
    """Writing to the client failed: it went away (the attempt reports its server blameless; the request is cancelled)."""


@dataclass
class Answer:
    """A backend's answer kept for the client: status, the headers worth passing on, the body."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class Call:
    """One client request inside the gateway, from submit to its one answer.

    ``current`` is the (server, attempt) whose output may reach the client
    (None: none, e.g. while backing off); ``answers`` the non-streamed
    answers kept by attempt; ``route`` the path's route decisions (for the
    log line); ``complete``: a stream's end (``data: [DONE]``) was written to the client, which has its whole
    answer even if it leaves at once; ``finished``: counted on ``/metrics`` and logged (exactly once).
    """

    rid: str
    tenant: str
    tier: str | None
    path_name: str
    stream: bool
    payload: bytes
    prompt_tokens: int
    max_tokens: int
    arrived: float
    request: web.Request
    done: asyncio.Event = field(default_factory=asyncio.Event)
    final: Any = None
    current: tuple[str, int] | None = None
    answers: dict[tuple[str, int], Answer] = field(default_factory=dict)
    last_error: Answer | None = None
    last_failure: str | None = None
    response: web.StreamResponse | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    route: list[dict[str, Any]] = field(default_factory=list)
    queued: bool = False
    ttft: float | None = None
    complete: bool = False
    finished: bool = False

    def is_current(self, sid: str, attempt: int) -> bool:
        """Whether that attempt's output may still reach the client (the request is open and this is its attempt)."""
        return self.final is None and self.current == (sid, attempt)
