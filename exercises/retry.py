# Generated from solution/retry.py by tools/make_exercises.py (`make exercises`).
# Stage 8: fill in every body that raises NotImplementedError; notebooks/08_real_systems.ipynb explains the task.
"""Stage 8: retries with exponential backoff, full jitter and a retry budget.

A gateway in front of a fleet sees attempts fail: no connection, a
connection reset (a crashed server), a per-try timeout (a hung one), a 5xx,
a 429 with ``Retry-After``.  Trying again elsewhere turns most of these into
an answer.  Trying again *too much* turns a sick fleet into a dead one: with
``max_tries = 3`` every failing request costs up to three attempts, so when
most attempts fail the fleet receives up to three times the requests it
already cannot serve (a *retry storm*).  This module decides, after each
failed attempt, whether to retry and after how long.

* :func:`backoff_bound`: the exponential backoff's upper bound before a retry.
* :func:`full_jitter`: the wait actually used, drawn uniformly below the bound.
* :class:`Retrier`: the decision after a failure, with the retry budget.
* Types (from :mod:`solution.core.retry_types`): :class:`RetryBudget`,
  :class:`RetryPolicy`, :class:`Failure`, :class:`RetryDecision`.

Backoff with full jitter (Brooker, "Exponential Backoff and Jitter", AWS Architecture Blog, 2015)
------------------------------------------------------------------------------------------------
Retry ``n`` (after ``n`` attempts failed, ``n >= 1``) waits a time drawn
uniformly from ``[0, bound(n)]`` with::

    bound(n) = min(cap, base * 2**(n - 1))          (base 25 ms, cap 1 s by default)

Exponential growth backs off from a server that keeps failing; the *full*
jitter (uniform from 0, not ``bound/2 + uniform(0, bound/2)`` nor the bound
itself) spreads clients that failed together over the whole window, so they
do not come back together as a second burst (stage 2 showed that wave).
Brooker's simulation found full jitter does the least total work and finishes
about as fast as the best alternative.  The draw uses the retrier's own
``random.Random(seed)``, so a run is reproducible.

What is retried, in this order (the reason strings are part of the API)
-----------------------------------------------------------------------
:meth:`Retrier.decide` tries these rules in order; the first that applies says no:

1. ``"streamed"``: tokens of this attempt already reached the client.  A
   retry would restart the text the client is reading (or splice two
   different generations); the request ends with an explicit error instead.
   This holds whatever the failure, even a 503 or a reset.
2. ``"not_retryable"``: the failure's class is not in ``policy.retry_on``
   (``"connect"``, ``"reset"``, ``"timeout"``, ``"5xx"``, ``"429"``); a 4xx
   other than 429 never is (the same request gets the same 400, 401, 404 or 413).
3. ``"max_tries"``: ``tries >= policy.max_tries`` (``tries`` counts the
   attempts made, the first included).
4. ``"retry_after_too_long"``: the answer's ``Retry-After`` is over
   ``policy.max_retry_after``: holding the request that long in the gateway
   helps nobody; the client gets the 429/503 with its header and decides.
5. ``"budget"``: the retry budget is spent (below).
6. Otherwise ``"retry"``, after ``delay = (retry_after or 0) + full_jitter(tries)``.

With a ``Retry-After`` the wait is never earlier than the server asked (RFC
9110 section 10.2.3) and the jitter is spread *above* it: requests refused
together get the same header, and waiting exactly ``Retry-After`` (or
``max(jitter, Retry-After)``, the same thing once the header exceeds the
jitter's bound) would bring them all back in the same instant, the retry
wave stage 2 showed.  Stage 2's clients add the jitter the same way; Envoy's
rate-limited back-off waits uniformly in ``[ra, 1.5 ra)`` above the header.

A ``"retry"`` marks the request as a *retry in flight* (waiting out its delay,
or its next attempt running) until its next :meth:`~Retrier.decide` or its
:meth:`~Retrier.end`.

The retry budget (Envoy's ``retry_budget``, Finagle's ``RetryBudget``)
--------------------------------------------------------------------
A cap on tries bounds each request; a budget bounds the fleet: retries in
flight may not exceed a share of the active requests::

    retries_in_flight + 1 <= max(min_retries, floor(ratio * active))     else "budget"

(``policy.budget.limit(active)`` computes the right-hand side, its floor
exact for a ratio written in decimal: 29% of 100 active is 29.)

``active`` counts requests begun (:meth:`~Retrier.begin`) and not ended
(:meth:`~Retrier.end`), retrying or not.  Envoy's cluster circuit breaker
``retry_budget`` is the same rule: ``budget_percent`` (default 20%) of the
active and pending requests, never below ``min_retry_concurrency`` (default
3); the defaults here are Envoy's (``RetryBudget(ratio=0.2, min_retries=3)``).
Finagle's ``RetryBudget`` (``percentCanRetry`` 20%, ``minRetriesPerSec``)
counts over a time window instead of in flight.  When most attempts fail,
the budget caps the extra load at ``ratio`` (20%) instead of ``max_tries - 1``
(200%); when few fail, it never says no.  ``RetryPolicy(budget=None)``
removes it (the storm the notebook shows).

Cost and errors
---------------
Every call is O(1): two counters (``active``, ``retries_in_flight``) and a
dict of the active requests; nothing scans (the check times ``begin``,
``decide`` and ``end`` with 16 and with 65,536 active requests).  Bad input
raises ``TypeError`` or ``ValueError`` and changes nothing, the random stream
included (validate every argument before drawing or counting anything): a
``tries`` that is not an int >= 1, a ``failure`` that is not a
:class:`Failure`, a ``streamed`` that is not a bool, an empty or non-str id,
``begin`` of an id already active (``DuplicateRequestError``), ``decide`` or
``end`` of an id not active (``RequestStateError``: begin it first).
"""

from __future__ import annotations

import math
import random
from typing import Any

from solution.core.errors import DuplicateRequestError, RequestStateError
from solution.core.retry_types import FAILURE_KINDS, REASONS, RETRY_ON, Failure, RetryBudget, RetryDecision, RetryPolicy
from solution.core.validate import require_id

__all__ = [
    "FAILURE_KINDS",
    "RETRY_ON",
    "REASONS",
    "RetryBudget",
    "RetryPolicy",
    "Failure",
    "RetryDecision",
    "backoff_bound",
    "full_jitter",
    "Retrier",
]


def backoff_bound(attempt: int, policy: RetryPolicy) -> float:
    """The backoff's upper bound before retry ``attempt``: ``min(cap, base * 2**(attempt - 1))``.  O(1).

    ``attempt`` >= 1 counts the attempts that failed so far (1 before the
    first retry).  Exact for any ``attempt`` (no overflow: a huge one gives ``cap``).

    >>> p = RetryPolicy(base=0.025, cap=1.0)
    >>> [backoff_bound(n, p) for n in (1, 2, 3, 6, 7, 100)]
    [0.025, 0.05, 0.1, 0.8, 1.0, 1.0]

    Raises:
        TypeError / ValueError: ``attempt`` not an int >= 1; ``policy`` not a ``RetryPolicy``.
    """
    # TODO: check attempt (int >= 1) and policy; base * 2**(attempt-1) exactly (math.ldexp), capped
    raise NotImplementedError("Stage 8: backoff_bound is not implemented yet; see notebooks/08_real_systems.ipynb")


def full_jitter(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """A wait drawn uniformly from ``[0, backoff_bound(attempt, policy)]`` with ``rng``.  O(1).

    Uses ``rng`` only, one ``rng.random()`` draw scaled to the bound, so the
    same seed gives the same waits, and 1,000 waits spread evenly over the
    whole interval (not ``bound/2`` plus a uniform half: "equal jitter").

    Raises:
        TypeError / ValueError: as :func:`backoff_bound`; ``rng`` not a ``random.Random``.
    """
    # TODO: the bound, then one uniform draw from rng scaled to it
    raise NotImplementedError("Stage 8: full_jitter is not implemented yet; see notebooks/08_real_systems.ipynb")


class Retrier:
    """Decides, after each failed attempt, whether to retry and after how long (the rules in the module's docstring).

    Call :meth:`begin` when a request becomes active, :meth:`decide` after
    each failed attempt, :meth:`end` when the request ends (answered, failed,
    cancelled: any final outcome).  One retrier serves a whole gateway, so
    its budget sees every request.  It holds no lock: call it from one thread
    (the gateway's event loop, where calls never interleave).

    Args:
        policy: the :class:`RetryPolicy`.
        seed: seeds the retrier's own ``random.Random(seed)`` (the jitter), an int (not a bool).

    Raises:
        TypeError: ``policy`` not a ``RetryPolicy``, ``seed`` not an int (or a bool).
    """

    def __init__(self, policy: RetryPolicy, *, seed: int = 0) -> None:
        # TODO: validate; the active requests (id -> retrying?), two counters, the stats, the rng
        raise NotImplementedError("Stage 8: Retrier.__init__ is not implemented yet; see notebooks/08_real_systems.ipynb")

    def begin(self, request_id: str) -> None:
        """Count ``request_id`` as active (it raises the budget's base).  O(1).

        Raises:
            DuplicateRequestError (a ValueError): the id is already active; end() it first.
        """
        # TODO: a new id becomes active, not retrying
        raise NotImplementedError("Stage 8: Retrier.begin is not implemented yet; see notebooks/08_real_systems.ipynb")

    def decide(self, request_id: str, tries: int, failure: Failure, *, streamed: bool) -> RetryDecision:
        """After attempt ``tries`` of ``request_id`` failed with ``failure``: retry, and after how long?  O(1).

        Releases the request's retry in flight (if it had one), then applies
        the rules in order (``"streamed"``, ``"not_retryable"``, ``"max_tries"``,
        ``"retry_after_too_long"``, ``"budget"``, else ``"retry"``).  A
        ``"retry"`` marks it a retry in flight again; its delay is
        ``(failure.retry_after or 0) + full_jitter(tries, policy, rng)`` (never
        before the Retry-After, spread uniformly above it; not the larger of
        the two).  A refusal's delay is 0 and takes no draw.

        Args:
            request_id: an active request (begun, not ended).
            tries: the attempts made so far, the failed one included (an int >= 1).
            failure: how the attempt failed.
            streamed: whether tokens of the request already reached the client (a bool).

        Raises:
            TypeError / ValueError: bad arguments; ``RequestStateError`` for an id not active.  Nothing changes.
        """
        # TODO: validate everything first; release the retry in flight; the rules in order; count
        raise NotImplementedError("Stage 8: Retrier.decide is not implemented yet; see notebooks/08_real_systems.ipynb")

    def end(self, request_id: str) -> None:
        """The request ended (any final outcome): it is no longer active, and its retry in flight (if any) is released.  O(1).

        Raises:
            RequestStateError (a ValueError): the id is not active (never begun, or already ended).
        """
        # TODO: an active id stops being active; release its retry in flight
        raise NotImplementedError("Stage 8: Retrier.end is not implemented yet; see notebooks/08_real_systems.ipynb")

    @property
    def active(self) -> int:
        """Requests begun and not ended.  O(1)."""
        # TODO: the active requests
        raise NotImplementedError("Stage 8: Retrier.active is not implemented yet; see notebooks/08_real_systems.ipynb")

    @property
    def retries_in_flight(self) -> int:
        """Active requests whose last decision was ``"retry"``.  O(1)."""
        # TODO: the counter
        raise NotImplementedError("Stage 8: Retrier.retries_in_flight is not implemented yet; see notebooks/08_real_systems.ipynb")

    def stats(self) -> dict[str, Any]:
        """Counters: ``decisions``, ``retries`` (decisions to retry), ``budget_exhausted`` (decisions refused by the
        budget), ``active``, ``retries_in_flight``, and ``by_reason`` (a dict: every reason in :data:`REASONS` -> count).  O(1)."""
        # TODO: the counters, a copy of by_reason
        raise NotImplementedError("Stage 8: Retrier.stats is not implemented yet; see notebooks/08_real_systems.ipynb")


def _attempt(value: object, what: str = "attempt") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int >= 1 (attempts made so far), got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be >= 1 (the attempts made so far, the failed one included), got {value}")
    return value


def _policy(policy: object) -> RetryPolicy:
    if not isinstance(policy, RetryPolicy):
        raise TypeError(f"policy must be a RetryPolicy (solution.RetryPolicy), got {type(policy).__name__}")
    return policy
