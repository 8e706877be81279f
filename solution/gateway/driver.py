"""The one :class:`~solution.core.path.RequestPath` of a gateway, driven from its event loop without blocking it.

The path never reads a clock and never blocks: every call takes ``now``
(seconds of the loop's monotonic clock since the gateway started) and
returns outcomes, which :meth:`PathDriver.apply` carries out at once, in
order:

* ``Dispatched``: an *attempt* task (:meth:`Proxy.attempt
  <solution.gateway.proxy.Proxy.attempt>`) sends the request to that
  server; a re-send is one more attempt (the abandoned one keeps running,
  as the GPU keeps working on it, and its late answer is reported and
  ``Discarded``);
* ``Delivered`` / ``Failed`` / ``Rejected`` / ``TimedOut`` / ``Cancelled``:
  the request's final outcome, handed to the handler waiting on its
  :class:`~solution.gateway.call.Call` (which answers the client);
* ``Queued``: noted for the log line; ``Preempted``: the attempt is
  stopped (defensive: the gateway configures no preemption);
* ``Discarded`` and ``Drained``: counted and logged.

A **driver task** sleeps until ``path.next_event_time()``, or until a path
call brings that time forward (an ``asyncio.Event``, set only then), then
sends the due health probes (``GET /health``, each its own task, reported
with ``probe_result``) and calls ``tick`` (per-try timeouts, queue
deadlines, backoff ends, ejections ending, slow start, drain deadlines).
Nothing polls.

The driver is also the attempts' :class:`~solution.gateway.proxy.AttemptReporter`:
it tells the path how each attempt ended (``completed``, ``server_lost``,
``first_token``, ``cancel``) and applies what the path answers.

Costs: O(1) per outcome here (plus a task per ``Dispatched``); the path's
own calls are O(log S) for S servers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from solution.core.errors import UnknownRequestError, UnknownServerError
from solution.core.path import RequestPath
from solution.core.retry_types import Failure
from solution.gateway.call import Call
from solution.gateway.metrics import GatewayMetrics
from solution.gateway.proxy import Proxy

__all__ = ["PathDriver", "FINAL_OUTCOMES"]

_events = logging.getLogger("solution.gateway")

#: The path's outcomes that end a request (the client's one answer follows from each).
FINAL_OUTCOMES = frozenset({"Rejected", "Delivered", "Failed", "TimedOut", "Cancelled"})


class PathDriver:
    """Carries out a RequestPath's outcomes and wakes it when its next event is due.

    ``calls`` maps a request id to its :class:`~solution.gateway.call.Call`
    (the handler adds it before ``submit`` and :meth:`forget` removes it);
    ``drained`` maps a drained-away server to when it left.  Not
    thread-safe: one event loop.
    """

    def __init__(self, path: RequestPath, proxy: Proxy, metrics: GatewayMetrics, now: Callable[[], float]) -> None:
        self.path = path
        self.proxy = proxy
        self.metrics = metrics
        self.now = now
        self.calls: dict[str, Call] = {}
        self.drained: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._wake_at: float | None = None  # when the driver next wakes by itself (None: only when woken)
        self._task: asyncio.Task[None] | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self._stray: set[asyncio.Task[None]] = set()  # attempts whose request ended (abandoned ones): finish on their own

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the driver task."""
        self._task = asyncio.create_task(self._drive(), name="gateway-driver")

    async def stop(self) -> None:
        """Stop the driver, the probes and every attempt still running."""
        tasks = [t for t in (self._task,) if t is not None] + list(self._probes) + list(self._stray)
        for call in list(self.calls.values()):
            tasks += list(call.tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def forget(self, call: Call) -> None:
        """The handler is done with ``call``: drop it; its attempts still running report their late answers themselves."""
        self.calls.pop(call.rid, None)
        self._stray.update(call.tasks)

    # -- the driver task -----------------------------------------------------------------

    async def _drive(self) -> None:
        """Sleep until the path's next event (or a wake-up), then send due probes and tick."""
        spins = 0
        while True:
            nxt = self.path.next_event_time()
            self._wake.clear()
            self._wake_at = nxt
            delay = None if nxt is None else nxt - self.now()
            if delay is None or delay > 0:
                spins = 0
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
            else:
                spins += 1
                await asyncio.sleep(0 if spins < 3 else 0.001)  # work due now: once more, without spinning the loop
            now = self.now()
            for sid in self.path.due_probes(now):
                task = asyncio.create_task(self._probe(sid))
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)
            self.apply(self.path.tick(now))

    async def _probe(self, sid: str) -> None:
        ok = await self.proxy.probe(sid)
        try:
            out = self.path.probe_result(sid, ok, self.now())
        except (UnknownServerError, KeyError):
            return  # the server left health checks while its probe was out
        self.apply(out)

    # -- outcomes --------------------------------------------------------------------

    def apply(self, outcomes: list[Any]) -> None:
        """Carry out the path's outcomes in order, then wake the driver if they brought its next event forward.  O(1) each."""
        for o in outcomes:
            name = type(o).__name__
            call = self.calls.get(getattr(o, "request_id", ""))
            if name == "Dispatched":
                if call is None:
                    continue
                call.current = (o.server_id, o.attempt)
                call.route.append({"attempt": o.attempt, "server": o.server_id, "at": round(o.at - call.arrived, 6),
                                   "waited": round(o.waited, 6), "previous": o.previous})  # fmt: skip
                if o.attempt > 1:
                    self.metrics.retries.inc()
                task = asyncio.create_task(self.proxy.attempt(call, o.server_id, o.attempt, self), name=f"{call.rid}@{o.server_id}")
                call.tasks.add(task)
            elif name == "Preempted":
                if call is not None:
                    call.current = None
                    for task in list(call.tasks):
                        if task.get_name() == f"{o.request_id}@{o.server_id}":
                            task.cancel()
            elif name == "Queued":
                if call is not None:
                    call.queued = True
            elif name in FINAL_OUTCOMES:
                if call is not None and call.final is None:
                    call.final = o
                    call.done.set()
            elif name == "Discarded":
                self.metrics.discarded.inc()
            elif name == "Drained":
                self.drained[o.server_id] = o.at
                _events.info(json.dumps({"event": "drained", "server": o.server_id, "at": round(o.at, 6), "forced": o.forced}))
        nxt = self.path.next_event_time()
        if nxt is not None and (self._wake_at is None or nxt < self._wake_at):
            self._wake.set()  # the path has work before the driver's wake-up: wake it (else let it sleep)

    # -- what attempts report (AttemptReporter) ------------------------------------------

    def report(self, call: Call, sid: str, ok: bool, failure: Failure | None = None, spt: float | None = None) -> None:
        """Tell the path an attempt ended; an attempt it no longer knows (its server was lost) is ignored."""
        kwargs: dict[str, Any] = {"ok": ok, "seconds_per_token": spt}
        if not ok:
            kwargs["failure"] = failure
        try:
            out = self.path.completed(call.rid, sid, self.now(), **kwargs)
        except UnknownRequestError:
            return
        self.apply(out)

    def lost(self, sid: str) -> None:
        """A backend refused a connection: the server is lost (every attempt there is re-sent or failed)."""
        if self.path.server_state(sid) == "gone":
            return
        try:
            out = self.path.server_lost(sid, self.now())
        except UnknownServerError:
            return
        self.apply(out)

    def first_token(self, call: Call) -> bool:
        """The stream's first chunk: tell the path (False: it no longer knows the request, abandoned while backing off)."""
        try:
            self.path.first_token(call.rid, self.now())
        except UnknownRequestError:  # abandoned while its request backs off (no outcome says so): not current
            return False
        return True

    def attempt_ended(self, call: Call, task: asyncio.Task[None] | None) -> None:
        """An attempt's task finishes: forget it."""
        if task is not None:
            call.tasks.discard(task)
            self._stray.discard(task)

    def client_gone(self, call: Call) -> None:
        """The client went away: cancel its request in the path (if it is still open)."""
        if call.final is None and call.rid in self.calls:
            try:
                self.apply(self.path.cancel(call.rid, self.now()))
            except UnknownRequestError:
                pass
