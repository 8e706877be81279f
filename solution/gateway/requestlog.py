"""One structured log line per request: a JSON object on the ``solution.gateway.requests`` logger, at INFO.

Fields of a submitted request (:func:`log_request`): ``event`` ("request"),
``id``, ``tenant``, ``tier``, ``route``, ``stream``, ``prompt_tokens``,
``max_tokens``, ``status``, ``outcome``, ``reason``, ``queued``, ``tries``,
``decisions`` (the path's route decisions: attempt, server, time since
arrival, wait, previous server), ``retry_after``, ``ttft`` and ``e2e``
(seconds).  A request refused before it was submitted (401, 400, 404, 408,
413: :func:`log_refusal`) has ``id`` null, no decisions and 0 tries.  The
API key is never in a line: only the tenant and tier it maps to.

Nothing is formatted when the logger does not take INFO.  Cost: O(D) for
D route decisions (one per try).  The record is handed to the logger's
handlers without ``Logger.info``'s search of the stack for the caller's
file and line (the line carries its own fields): ``python
benchmarks/bench_gateway.py --parts`` times both.  (A line built by hand
from the encoder's string escaping was tried and timed: no faster than
``json.dumps``, which is C, so the line is ``json.dumps`` of the record.)
"""

from __future__ import annotations

import json
import logging

from solution.gateway.call import Call

__all__ = ["REQUEST_LOGGER", "log_request", "log_refusal", "request_line"]

#: The logger of the one-line-per-request JSON records.
REQUEST_LOGGER = "solution.gateway.requests"
_log = logging.getLogger(REQUEST_LOGGER)


def request_line(call: Call, status: int, outcome: str, reason: str | None, *, retry_after: float | None,
                 ttft: float | None, e2e: float) -> str:  # fmt: skip
    """The JSON line of a submitted request (keys in the order listed above)."""
    return json.dumps({"event": "request", "id": call.rid, "tenant": call.tenant, "tier": call.tier, "route": call.path_name,
                       "stream": call.stream, "prompt_tokens": call.prompt_tokens, "max_tokens": call.max_tokens,
                       "status": status, "outcome": outcome, "reason": reason, "queued": call.queued,
                       "tries": len(call.route), "decisions": call.route, "retry_after": retry_after,
                       "ttft": None if ttft is None else round(ttft, 6), "e2e": round(e2e, 6)})  # fmt: skip


def log_request(call: Call, status: int, outcome: str, reason: str | None, *, retry_after: float | None,
                ttft: float | None, e2e: float) -> None:  # fmt: skip
    """The line of a submitted request, at its end."""
    if _log.isEnabledFor(logging.INFO):
        _emit(request_line(call, status, outcome, reason, retry_after=retry_after, ttft=ttft, e2e=e2e), "log_request")


def _emit(line: str, func: str) -> None:
    """Hand ``line`` to the logger's handlers at INFO (``Logger.info`` less its stack search for the caller)."""
    _log.handle(_log.makeRecord(_log.name, logging.INFO, __file__, 0, line, None, None, func))


def log_refusal(route: str, status: int, outcome: str, tenant: str | None, tier: str | None, e2e: float) -> None:
    """The line of a request refused before it was submitted (no id, no tries)."""
    if _log.isEnabledFor(logging.INFO):
        _emit(json.dumps({"event": "request", "id": None, "tenant": tenant, "tier": tier, "route": route, "status": status,
                          "outcome": outcome, "tries": 0, "decisions": [], "e2e": round(e2e, 6)}), "log_refusal")  # fmt: skip
