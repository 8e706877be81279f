# Generated from solution/health.py by tools/make_exercises.py (`make exercises`).
# Stage 4: fill in every body that raises NotImplementedError; notebooks/04_health_checks.ipynb explains the task.
"""Stage 4: health checks, circuit breaking, degraded vs down, slow start, and in-flight re-routing.

Two classes, both driven by the caller's clock (every call takes ``now`` in
seconds; nothing here reads a clock, so a test, the simulator, a widget and an
HTTP gateway drive them alike; ``now`` must never go back):

* :class:`HealthChecker`: one health state per server (``healthy``,
  ``degraded``, ``down``, ``recovering``), fed by active probes and by the
  results of real requests (outlier detection), with a circuit breaker and a
  slow-start weight.  The request path reads ``weight(server_id, now)`` and
  ``trial_limit(server_id)`` and hands them to the router.
* :class:`RetryLedger`: the attempts of each request, so that a request on a
  server that went down, or that ran past its per-try timeout, is re-sent at
  most ``max_tries`` times and the client receives exactly one answer.

The states and their rules (each transition carries exactly one reason, a
:class:`~solution.core.health_types.Reason` string, and lands in
``transitions`` and ``get_server_stats()``)::

    added warm ──────────────────────────────► healthy ◄──────────────┐
    added (not warm) ──► recovering (slow start)  │ ▲                  │ slow start over
                                                  ▼ │ recovered        │
                          error rate / latency outlier: degraded       │
    healthy | degraded | recovering ── probe failures ──► down ── probe successes ──► recovering (half-open)
    healthy | degraded | slow start ── consecutive errors (ejected) ──► down ── ejection over ──► recovering (half-open)
    recovering (half-open) ── half_open_trials successes ──► recovering (slow start) ── trial failed ──► down

The circuit breaker is the same machine seen from the traffic: *closed* is
healthy or degraded, *open* is down, *half-open* is the first phase of
recovering (at most ``half_open_trials`` requests in flight).

**Why a server failing 30% of its requests does not flap** (the hysteresis,
with the default policy): it is ejected when ``consecutive_5xx = 5`` failures
come in a row (probability 0.3**5 = 0.24% per request, so about once per 400
requests), and each ejection lasts twice as long as the one before (30 s,
60 s, 120 s, 240 s, then 300 s), forgiven only one level per
``max_ejection_time`` of quiet, so the server spends ever longer out and
comes back ever more rarely instead of every few seconds.  Between
ejections it is degraded: the error EWMA (alpha 0.05) enters at 0.2 but
leaves only below 0.2 * 0.5 = 0.1, which from its mean of 0.3 takes about
22 successes in a row (0.7**22 = 0.04%): a band, not a threshold, so the
noise of a 30% failure rate rarely toggles it.  Measured (``tests/stage4/
test_rules.py::test_thirty_percent_failing_server_does_not_flap``, ten
requests a second for ten minutes, seed 7): 12 transitions in all (one per
50 s), three ejections 168 s and 231 s apart; the same run with neither
(``max_ejection_time=30``, ``hysteresis=0.99``) changes state 109 times, once
every 5.5 s.

Where ``solution`` is replaced by ``exercises`` (the generated exercise), the
marked bodies are the candidate's; the support types come from
``solution.core.health_types`` and the errors from ``solution.core.errors``
on both sides.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field, replace
from typing import Any

from solution.core.errors import (
    DuplicateServerError,
    RequestStateError,
    RetriesExhaustedError,
    TimeWentBackwardsError,
    UnknownRequestError,
    UnknownServerError,
)
from solution.core.health_types import Attempt, HealthPolicy, HealthState, Outcome, Reason, RetryPolicy, Transition, require_time
from solution.core.validate import require_id, require_int

__all__ = ["HealthChecker", "RetryLedger"]

HEALTHY, DEGRADED, DOWN, RECOVERING = HealthState.HEALTHY, HealthState.DEGRADED, HealthState.DOWN, HealthState.RECOVERING


@dataclass
class _Server:
    """One server's health record (the checker's private bookkeeping)."""

    state: HealthState
    since: float
    reason: str
    half_open: bool = False  # recovering: True while half-open (trials), False during slow start
    trial_successes: int = 0
    ramp_start: float | None = None  # slow start began here (recovering, not half-open)
    down_by: str | None = None  # "probes" or "ejection" while down
    ejected_until: float | None = None
    ejections: int = 0  # ejections so far (for the stats)
    level: int = 0  # backoff level: the next ejection lasts ejection_time(level + 1)
    closed_since: float = 0.0  # when the circuit last closed (quiet time forgives levels)
    consecutive_errors: int = 0
    probe_failures: int = 0
    probe_successes: int = 0
    error_ewma: float = 0.0
    spt_ewma: float | None = None  # EWMA of seconds per output token
    error_high: bool = False  # error EWMA inside the degraded band
    slow: bool = False  # latency outlier inside the degraded band
    next_probe: float = 0.0
    probe_token: int = 0  # matches the live entry of the probe heap
    timer_token: int = 0  # matches the live entry of the timer heap


class HealthChecker:
    """Health state per server from active probes and passive outlier detection; circuit breaker and slow start.

    Rules (each is one group of the stage-4 check; ``P`` is the policy):

    1. **Add**: ``add_server(id, now, warm=True)`` starts ``healthy``
       (reason ``"added warm"``); ``warm=False`` starts ``recovering`` in slow
       start from ``now`` (``"added: slow start"``).  The server's first probe is
       due at ``now + P.interval * u``, ``u`` uniform in [0, 1) (seeded), so a
       fleet added at once is not probed in lock-step.
    2. **Active checks**: ``due_probes(now)`` returns the servers whose probe
       is due (time order, then id) and re-schedules each at
       ``now + P.interval * (1 + P.jitter * (2u - 1))``.  A failed probe resets
       the success count and adds one failure; at ``P.unhealthy_threshold``
       consecutive failures a server that is not down goes ``down``
       (``"probe failures"``).  A good probe resets the failure count and adds
       one success; a server down *by probes* with ``P.healthy_threshold``
       consecutive successes goes ``recovering`` half-open (``"probe successes"``).
       Probes do not end an ejection early.
    3. **Outlier ejection**: a failed request adds one to the consecutive
       errors (a success resets them).  At ``P.consecutive_5xx`` a healthy,
       degraded or slow-starting server is ejected (``down``,
       ``"consecutive errors"``) for ``P.ejection_time(level)`` where the level
       is the previous level, minus one per whole ``P.max_ejection_time`` since
       the circuit last closed (the server was added, or its half-open trials
       passed), not below 0, plus one: base, 2 x base, 4 x base, ... capped at
       ``P.max_ejection_time``.  An ejection sets ``ejected_until`` and resets
       the consecutive errors (so does entering half-open).
    4. **Ejection cap**: an ejection happens only if afterwards at most
       ``P.max_ejection_percent`` % of the servers present are ejected
       (``(ejected + 1) * 100 <= P.max_ejection_percent * servers``); otherwise
       the server stays as it is and ``ejections_refused`` counts it.
       (Envoy lets the share overshoot by one host; the course keeps the bound
       strict.)  Servers down by probes do not count: a crashed server is gone
       whatever the share.
    5. **Circuit breaker**: when the ejection time has passed, ``advance`` moves
       the server to ``recovering`` half-open (``"ejection over"``):
       ``trial_limit`` is ``P.half_open_trials``, the weight ``P.min_weight``.
       ``P.half_open_trials`` successful requests close it (slow start begins at
       the last one's ``now``; no transition, the state stays ``recovering``);
       one failed request re-opens
       it (``down``, ``"trial failed"``, the next level's longer ejection; rule 4
       applies).
    6. **Degraded**: every result of a server that is not down updates its
       error EWMA (``e = (1 - a) e + a x failed``, ``a = P.ewma_alpha``) and each
       success with ``seconds_per_token`` its latency EWMA (the first sets it).
       The fleet's latency is kept as a running sum and count of the servers'
       latency EWMAs (updated by the difference on each result, never by a
       scan); ``mean`` below is the mean of the *other* servers' EWMAs,
       ``(sum - own) / (count - 1)`` (with itself included, one of two servers
       could never be twice the mean).  The error signal is
       on from ``e >= P.degraded_error_rate`` until ``e < P.degraded_error_rate *
       P.hysteresis``; the latency signal is on from ``spt > P.latency_factor x
       mean`` until ``spt < (1 + (P.latency_factor - 1) x P.hysteresis) x mean``
       (only when another server has a latency EWMA too; re-evaluated on the
       server's own results).  A healthy server with a signal on goes ``degraded``
       (``"error rate"`` or ``"latency outlier"``, the one that turned on); a
       degraded one with both off goes ``healthy`` (``"recovered"``).
    7. **Slow start**: ``P.slow_start_window`` after it began, ``advance`` ends
       it: ``healthy`` (``"slow start over"``), or ``degraded`` if a signal is
       on.  A recovering server is never moved to degraded before that (a
       warming server is expected to be slow).
    8. **Weight**: ``down`` 0.0; ``degraded`` ``P.degraded_weight``; half-open
       ``P.min_weight``; slow start ``max(P.min_weight, (t / W) ** (1 / P.aggression))``
       with ``t = now - start`` and ``W = P.slow_start_window`` (Envoy's curve),
       1.0 from ``t >= W``; ``healthy`` 1.0.
    9. **Time**: every call with ``now`` first applies the time-based
       transitions due at ``now`` (as ``advance(now)`` does), in time order, each
       logged at the time it fell due (``ejected_until``, or the slow start's
       start plus ``P.slow_start_window``), not at ``now``; then its own rule.
       ``now`` must not be earlier than any ``now`` seen before (``weight``, a
       read, checks this too but changes nothing).
    10. **Results while down** (late answers of requests sent before) change nothing.

    Bad input raises before anything changes: ``TypeError`` (wrong type),
    ``ValueError`` (empty id; :class:`~solution.core.errors.TimeWentBackwardsError`),
    ``KeyError`` (:class:`~solution.core.errors.UnknownServerError` for a server not
    present, a removed one included; :class:`~solution.core.errors.DuplicateServerError`
    is a ``ValueError``).

    **Cost**: O(log S) per call for S servers (a probe heap and a timer heap,
    both with lazy deletion), O(1) for ``state``/``weight``/``trial_limit``;
    ``due_probes`` O(k log S) for k servers due; ``get_server_stats`` O(S).
    Nothing scans the fleet per request.

    Args:
        policy: the knobs (default ``HealthPolicy()``).
        seed: seeds the probe-jitter generator (an int >= 0).
    """

    def __init__(self, policy: HealthPolicy | None = None, *, seed: int = 0) -> None:
        # TODO: validate policy (a HealthPolicy or None) and seed; set up the records, the two heaps, the fleet sums, the log and random.Random(seed)
        raise NotImplementedError("Stage 4: HealthChecker.__init__ is not implemented yet; see notebooks/04_health_checks.ipynb")

    # --- fleet -----------------------------------------------------------------------------------

    def add_server(self, server_id: str, now: float, *, warm: bool = False) -> None:
        """Add a server: ``healthy`` if ``warm``, else ``recovering`` in slow start from ``now`` (rule 1).

        Its first probe is due at ``now + interval * u`` (``u`` from the seeded
        generator).  Raises ``DuplicateServerError`` if present.  O(log S).
        """
        # TODO: validate (id, warm a bool, now), advance, then create the record, log the transition, schedule the first probe and (not warm) the end of slow start
        raise NotImplementedError("Stage 4: HealthChecker.add_server is not implemented yet; see notebooks/04_health_checks.ipynb")

    def remove_server(self, server_id: str) -> None:
        """Forget a server: its probes and timers are dropped, it leaves the fleet's latency mean and the ejection count.

        Raises ``UnknownServerError`` if absent.  O(1) (heap entries are dropped lazily).
        """
        # TODO: look it up (UnknownServerError), then undo its share of the counters and delete the record
        raise NotImplementedError("Stage 4: HealthChecker.remove_server is not implemented yet; see notebooks/04_health_checks.ipynb")

    # --- active checks ---------------------------------------------------------------------------

    def next_probe_time(self) -> float | None:
        """The earliest time a probe is due, or ``None`` with no servers.  Amortised O(log S)."""
        # TODO: drop stale heap entries, peek
        raise NotImplementedError("Stage 4: HealthChecker.next_probe_time is not implemented yet; see notebooks/04_health_checks.ipynb")

    def due_probes(self, now: float) -> list[str]:
        """The servers to probe at ``now`` (due time, then id), each re-scheduled at
        ``now + interval * (1 + jitter * (2u - 1))`` in that order (rule 2).  O(k log S)."""
        # TODO: validate now, advance, pop every live entry due at now, re-schedule each with one draw
        raise NotImplementedError("Stage 4: HealthChecker.due_probes is not implemented yet; see notebooks/04_health_checks.ipynb")

    def probe_result(self, server_id: str, ok: bool, now: float) -> None:
        """Record a probe's result (``ok=False`` also for a timeout) and apply rule 2.  O(log S)."""
        # TODO: validate, advance, update the consecutive counts, go down at unhealthy_threshold / recovering (down by probes) at healthy_threshold
        raise NotImplementedError("Stage 4: HealthChecker.probe_result is not implemented yet; see notebooks/04_health_checks.ipynb")

    # --- passive checks --------------------------------------------------------------------------

    def request_result(self, server_id: str, ok: bool, now: float, seconds_per_token: float | None = None) -> None:
        """Record a real request's result (rules 3-6, 10).

        ``seconds_per_token`` (> 0, used when ``ok``) feeds the latency outlier
        rule.  A server that is down ignores results.  O(log S).
        """
        # TODO: validate, advance; ignore if down; update the EWMAs and the fleet sum; then half-open trials, ejection, degraded
        raise NotImplementedError("Stage 4: HealthChecker.request_result is not implemented yet; see notebooks/04_health_checks.ipynb")

    # --- time ------------------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Apply the time-based transitions due at ``now`` (ejection over, slow start over), in time order.  O(k log S)."""
        # TODO: validate now, then the shared private step
        raise NotImplementedError("Stage 4: HealthChecker.advance is not implemented yet; see notebooks/04_health_checks.ipynb")

    def next_change_time(self) -> float | None:
        """When ``advance`` next has work (an ejection or a slow start ending), or ``None``.  Amortised O(log S)."""
        # TODO: drop stale timer entries, peek
        raise NotImplementedError("Stage 4: HealthChecker.next_change_time is not implemented yet; see notebooks/04_health_checks.ipynb")

    # --- reads -----------------------------------------------------------------------------------

    def state(self, server_id: str) -> HealthState:
        """The server's state (as of the last call that applied time).  O(1)."""
        # TODO: the record's state
        raise NotImplementedError("Stage 4: HealthChecker.state is not implemented yet; see notebooks/04_health_checks.ipynb")

    def weight(self, server_id: str, now: float) -> float:
        """The routing weight in [0, 1] at ``now`` (rule 8); a pure read: it changes nothing.  O(1)."""
        # TODO: validate; down 0, degraded degraded_weight, half-open min_weight, slow start Envoy's curve, healthy 1
        raise NotImplementedError("Stage 4: HealthChecker.weight is not implemented yet; see notebooks/04_health_checks.ipynb")

    def trial_limit(self, server_id: str) -> int | None:
        """``half_open_trials`` while half-open (at most that many requests in flight), else ``None``.  O(1)."""
        # TODO: half-open -> the policy's half_open_trials
        raise NotImplementedError("Stage 4: HealthChecker.trial_limit is not implemented yet; see notebooks/04_health_checks.ipynb")

    def get_server_stats(self) -> dict[str, dict[str, Any]]:
        """Per server: ``state`` (its string), ``since``, ``reason``, ``weight`` (at the last time seen),
        ``half_open``, ``trial_limit``, ``ejections``, ``ejected_until``, ``consecutive_errors``,
        ``probe_failures``, ``probe_successes``.  O(S)."""
        # TODO: one dict per server, in insertion order
        raise NotImplementedError("Stage 4: HealthChecker.get_server_stats is not implemented yet; see notebooks/04_health_checks.ipynb")

    def ejected_count(self) -> int:
        """How many servers are down by ejection now (the count rule 4 bounds).  O(1)."""
        # TODO: the counter
        raise NotImplementedError("Stage 4: HealthChecker.ejected_count is not implemented yet; see notebooks/04_health_checks.ipynb")


@dataclass
class _Request:
    """One request's attempts in the ledger (private)."""

    attempts: list[Attempt] = field(default_factory=list)
    streamed: bool = False
    status: str = "in flight"  # "in flight", "waiting" (to be re-sent), "answered", "failed", "cancelled"


class RetryLedger:
    """The attempts of every request: re-send on a dead server or a per-try timeout, deliver exactly one answer.

    Rules (``P`` is the policy):

    1. ``begin(rid, server, now)`` starts attempt n (1 for a new id): for a new
       request, or one waiting to be re-sent.  It raises ``RequestStateError`` if
       an attempt is in flight or the request has ended, and
       ``RetriesExhaustedError`` when n would exceed ``P.max_tries``.
    2. **Re-send or fail**: when an attempt ends without an answer
       (``server_down`` or ``timed_out``), the request is re-sendable iff no token
       reached the client yet (``first_token`` was not called) and it used fewer
       than ``P.max_tries`` attempts; it then waits for the next ``begin``.
       Otherwise it fails (ended).  *The course's choice*: a generation that
       already streamed tokens is never restarted silently (the client would see
       the text start over, or two different texts spliced): it ends with an
       explicit error and the client may retry under its own idempotency key.
    3. **Exactly one answer**: ``answer(rid, server, now)`` returns ``True`` (deliver)
       only for the attempt in flight of a request that has not ended, on that
       attempt's server; the request is then answered (ended).  Anything else (an
       earlier attempt's server, a second answer, a request that ended or that
       the ledger forgot) returns ``False``: discarded and counted in
       ``late_answers_discarded`` (on the attempt's history too when known).
    4. ``timed_out(rid, now)`` ends the attempt in flight as timed out; with a
       ``P.per_try_timeout`` it raises ``RequestStateError`` before
       ``start + per_try_timeout``.  ``fail(rid, now)`` ends a request that waits
       or runs (e.g. no server left); ``finish(rid)`` forgets a request (a request
       still running is cancelled first); ``history`` is readable until then.

    **Cost**: O(1) per call, except ``server_down``: O(k) for its k requests
    in flight (an index by server).

    Args:
        policy: the knobs (default ``RetryPolicy()``: 3 tries, no per-try timeout).
    """

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        # TODO: validate policy; the requests, an index server -> requests in flight, the counters
        raise NotImplementedError("Stage 4: RetryLedger.__init__ is not implemented yet; see notebooks/04_health_checks.ipynb")

    def begin(self, request_id: str, server_id: str, now: float) -> int:
        """Start an attempt of ``request_id`` on ``server_id`` (rule 1); returns its number (1-based).  O(1)."""
        # TODO: validate; new id or waiting request; check the tries left; append the attempt and index it
        raise NotImplementedError("Stage 4: RetryLedger.begin is not implemented yet; see notebooks/04_health_checks.ipynb")

    def first_token(self, request_id: str, now: float) -> None:
        """Mark that tokens of the attempt in flight reached the client: no silent re-send from now on.  O(1)."""
        # TODO: the request must have an attempt in flight; set streamed
        raise NotImplementedError("Stage 4: RetryLedger.first_token is not implemented yet; see notebooks/04_health_checks.ipynb")

    def server_down(self, server_id: str, now: float) -> tuple[list[str], list[str]]:
        """End every attempt in flight on ``server_id``: ``(re-send, fail)`` request ids in begin order (rule 2).  O(k)."""
        # TODO: for each request in flight there, end its attempt as server down and sort it into re-send or fail
        raise NotImplementedError("Stage 4: RetryLedger.server_down is not implemented yet; see notebooks/04_health_checks.ipynb")

    def timed_out(self, request_id: str, now: float) -> bool:
        """End the attempt in flight as timed out (rule 4): ``True`` = re-send it, ``False`` = it failed.  O(1)."""
        # TODO: in flight, past its deadline; end the attempt and return whether it is re-sendable
        raise NotImplementedError("Stage 4: RetryLedger.timed_out is not implemented yet; see notebooks/04_health_checks.ipynb")

    def deadline(self, request_id: str) -> float | None:
        """When the attempt in flight times out (``start + per_try_timeout``), or ``None``.  O(1)."""
        # TODO: from the last attempt's start, while in flight
        raise NotImplementedError("Stage 4: RetryLedger.deadline is not implemented yet; see notebooks/04_health_checks.ipynb")

    def answer(self, request_id: str, server_id: str, now: float) -> bool:
        """An answer arrived from ``server_id``: ``True`` = deliver it (rule 3), ``False`` = discarded and counted.  O(1)
        (plus the attempts of that request when the answer is late)."""
        # TODO: deliver only the in-flight attempt's answer; otherwise count (and note on the attempt) a late answer
        raise NotImplementedError("Stage 4: RetryLedger.answer is not implemented yet; see notebooks/04_health_checks.ipynb")

    def fail(self, request_id: str, now: float) -> None:
        """End a request that runs or waits, as failed (e.g. no server can take the re-send).  O(1)."""
        # TODO: not ended yet; cancel the attempt in flight if any; status failed
        raise NotImplementedError("Stage 4: RetryLedger.fail is not implemented yet; see notebooks/04_health_checks.ipynb")

    def finish(self, request_id: str) -> None:
        """Forget the request (read its ``history`` first); one still running or waiting is cancelled.  O(1)."""
        # TODO: cancel if not ended; drop it from the index and the requests
        raise NotImplementedError("Stage 4: RetryLedger.finish is not implemented yet; see notebooks/04_health_checks.ipynb")

    def status(self, request_id: str) -> str:
        """``"in flight"``, ``"waiting"`` (to be re-sent), ``"answered"``, ``"failed"``.  O(1)."""
        # TODO: the record's status
        raise NotImplementedError("Stage 4: RetryLedger.status is not implemented yet; see notebooks/04_health_checks.ipynb")

    def history(self, request_id: str) -> list[Attempt]:
        """The request's attempts, first to last (a copy).  O(tries)."""
        # TODO: a copy of the attempts
        raise NotImplementedError("Stage 4: RetryLedger.history is not implemented yet; see notebooks/04_health_checks.ipynb")

    def stats(self) -> dict[str, int]:
        """Counts: ``requests``, ``tries``, ``re_sent``, ``answered``, ``failed``, ``cancelled``,
        ``late_answers_discarded``, ``in_flight`` (attempts running now).  O(1)."""
        # TODO: the counters plus the attempts in flight
        raise NotImplementedError("Stage 4: RetryLedger.stats is not implemented yet; see notebooks/04_health_checks.ipynb")

