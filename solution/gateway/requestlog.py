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
D route decisions (one per try).
"""

from __future__ import annotations

import json
import logging

from solution.gateway.call import Call

__all__ = ["REQUEST_LOGGER", "log_request", "log_refusal"]

#: The logger of the one-line-per-request JSON records.
REQUEST_LOGGER = "solution.gateway.requests"
_log = logging.getLogger(REQUEST_LOGGER)


def log_request(call: Call, status: int, outcome: str, reason: str | None, *, retry_after: int | None,
                ttft: float | None, e2e: float) -> None:  # fmt: skip
    """The line of a submitted request, at its end."""
    if not _log.isEnabledFor(logging.INFO):
        return
    record = {"event": "request", "id": call.rid, "tenant": call.tenant, "tier": call.tier, "route": call.path_name,
              "stream": call.stream, "prompt_tokens": call.prompt_tokens, "max_tokens": call.max_tokens,
              "status": status, "outcome": outcome, "reason": reason, "queued": call.queued,
              "tries": len(call.route), "decisions": call.route, "retry_after": retry_after,
              "ttft": None if ttft is None else round(ttft, 6), "e2e": round(e2e, 6)}  # fmt: skip
    _log.info(json.dumps(record))


def log_refusal(route: str, status: int, outcome: str, tenant: str | None, tier: str | None, e2e: float) -> None:
    """The line of a request refused before it was submitted (no id, no tries)."""
    if _log.isEnabledFor(logging.INFO):
        _log.info(json.dumps({"event": "request", "id": None, "tenant": tenant, "tier": tier, "route": route,
                              "status": status, "outcome": outcome, "tries": 0, "decisions": [],
                              "e2e": round(e2e, 6)}))  # fmt: skip
