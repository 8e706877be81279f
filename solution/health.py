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
        ### BEGIN SOLUTION: validate policy (a HealthPolicy or None) and seed; set up the records, the two heaps, the fleet sums, the log and random.Random(seed)
        if policy is not None and not isinstance(policy, HealthPolicy):
            raise TypeError(f"policy must be a HealthPolicy or None, got {type(policy).__name__}")
        self.policy = policy if policy is not None else HealthPolicy()
        self.seed = require_int(seed, "seed", minimum=0)
        self.rng = random.Random(seed)
        self.transitions: list[Transition] = []
        self._servers: dict[str, _Server] = {}
        self._probes: list[tuple[float, str, int]] = []  # (due, server_id, token)
        self._timers: list[tuple[float, str, int]] = []  # (when, server_id, token)
        self._tokens = 0
        self._clock = 0.0
        self._ejected = 0  # servers down by ejection
        self._spt_sum = 0.0
        self._spt_count = 0
        self.ejections_refused = 0
        ### END SOLUTION

    # --- fleet -----------------------------------------------------------------------------------

    def add_server(self, server_id: str, now: float, *, warm: bool = False) -> None:
        """Add a server: ``healthy`` if ``warm``, else ``recovering`` in slow start from ``now`` (rule 1).

        Its first probe is due at ``now + interval * u`` (``u`` from the seeded
        generator).  Raises ``DuplicateServerError`` if present.  O(log S).
        """
        ### BEGIN SOLUTION: validate (id, warm a bool, now), advance, then create the record, log the transition, schedule the first probe and (not warm) the end of slow start
        require_id(server_id, "server_id")
        if not isinstance(warm, bool):
            raise TypeError(f"warm must be a bool, got {type(warm).__name__} {warm!r}")
        now = self._time(now)
        if server_id in self._servers:
            raise DuplicateServerError(f"server {server_id!r} is already present; remove it first or use another id")
        self._advance(now)
        if warm:
            server = _Server(HEALTHY, now, Reason.ADDED_WARM, closed_since=now)
        else:
            server = _Server(RECOVERING, now, Reason.ADDED, ramp_start=now, closed_since=now)
        self._servers[server_id] = server
        self.transitions.append(Transition(server_id, None, server.state, now, server.reason))
        self._schedule_probe(server_id, server, now + self.policy.interval * self.rng.random())
        if not warm:
            self._set_timer(server_id, server, now + self.policy.slow_start_window)
        ### END SOLUTION

    def remove_server(self, server_id: str) -> None:
        """Forget a server: its probes and timers are dropped, it leaves the fleet's latency mean and the ejection count.

        Raises ``UnknownServerError`` if absent.  O(1) (heap entries are dropped lazily).
        """
        ### BEGIN SOLUTION: look it up (UnknownServerError), then undo its share of the counters and delete the record
        server = self._get(server_id)
        if server.down_by == "ejection":
            self._ejected -= 1
        if server.spt_ewma is not None:
            self._spt_sum -= server.spt_ewma
            self._spt_count -= 1
        del self._servers[server_id]
        ### END SOLUTION

    # --- active checks ---------------------------------------------------------------------------

    def next_probe_time(self) -> float | None:
        """The earliest time a probe is due, or ``None`` with no servers.  Amortised O(log S)."""
        ### BEGIN SOLUTION: drop stale heap entries, peek
        self._clean(self._probes, "probe_token")
        return self._probes[0][0] if self._probes else None
        ### END SOLUTION

    def due_probes(self, now: float) -> list[str]:
        """The servers to probe at ``now`` (due time, then id), each re-scheduled at
        ``now + interval * (1 + jitter * (2u - 1))`` in that order (rule 2).  O(k log S)."""
        ### BEGIN SOLUTION: validate now, advance, pop every live entry due at now, re-schedule each with one draw
        now = self._time(now)
        self._advance(now)
        due: list[str] = []
        while True:
            self._clean(self._probes, "probe_token")
            if not self._probes or self._probes[0][0] > now:
                break
            _, server_id, _ = heapq.heappop(self._probes)
            due.append(server_id)
        p = self.policy
        for server_id in due:
            self._schedule_probe(server_id, self._servers[server_id], now + p.interval * (1 + p.jitter * (2 * self.rng.random() - 1)))
        return due
        ### END SOLUTION

    def probe_result(self, server_id: str, ok: bool, now: float) -> None:
        """Record a probe's result (``ok=False`` also for a timeout) and apply rule 2.  O(log S)."""
        ### BEGIN SOLUTION: validate, advance, update the consecutive counts, go down at unhealthy_threshold / recovering (down by probes) at healthy_threshold
        self._check_ok(ok)
        now = self._time(now)
        server = self._get(server_id)
        self._advance(now)
        p = self.policy
        if ok:
            server.probe_failures, server.probe_successes = 0, server.probe_successes + 1
            if server.state is DOWN and server.down_by == "probes" and server.probe_successes >= p.healthy_threshold:
                self._half_open(server_id, server, now, Reason.PROBE_SUCCESSES)
        else:
            server.probe_successes, server.probe_failures = 0, server.probe_failures + 1
            if server.state is not DOWN and server.probe_failures >= p.unhealthy_threshold:
                self._down(server_id, server, now, Reason.PROBE_FAILURES, "probes")
        ### END SOLUTION

    # --- passive checks --------------------------------------------------------------------------

    def request_result(self, server_id: str, ok: bool, now: float, seconds_per_token: float | None = None) -> None:
        """Record a real request's result (rules 3-6, 10).

        ``seconds_per_token`` (> 0, used when ``ok``) feeds the latency outlier
        rule.  A server that is down ignores results.  O(log S).
        """
        ### BEGIN SOLUTION: validate, advance; ignore if down; update the EWMAs and the fleet sum; then half-open trials, ejection, degraded
        self._check_ok(ok)
        if seconds_per_token is not None:
            seconds_per_token = require_time(seconds_per_token, "seconds_per_token")
            if seconds_per_token <= 0:
                raise ValueError(f"seconds_per_token must be > 0, got {seconds_per_token}; pass None if unknown")
        now = self._time(now)
        server = self._get(server_id)
        self._advance(now)
        if server.state is DOWN:
            return
        p = self.policy
        server.error_ewma = (1 - p.ewma_alpha) * server.error_ewma + p.ewma_alpha * (0.0 if ok else 1.0)
        if ok and seconds_per_token is not None:
            old = server.spt_ewma
            if old is None:
                server.spt_ewma = seconds_per_token
                self._spt_count += 1
                self._spt_sum += seconds_per_token
            else:
                server.spt_ewma = (1 - p.ewma_alpha) * old + p.ewma_alpha * seconds_per_token
                self._spt_sum += server.spt_ewma - old
        self._update_signals(server)
        if ok:
            server.consecutive_errors = 0
            if server.state is RECOVERING and server.half_open:
                server.trial_successes += 1
                if server.trial_successes >= p.half_open_trials:
                    server.half_open, server.ramp_start, server.closed_since = False, now, now
                    self._set_timer(server_id, server, now + p.slow_start_window)
        else:
            server.consecutive_errors += 1
            if server.state is RECOVERING and server.half_open:
                self._eject(server_id, server, now, Reason.TRIAL_FAILED)
                return
            if server.consecutive_errors >= p.consecutive_5xx and self._eject(server_id, server, now, Reason.CONSECUTIVE_ERRORS):
                return
        if server.state is HEALTHY and (server.error_high or server.slow):
            self._move(server_id, server, DEGRADED, now, Reason.ERROR_RATE if server.error_high else Reason.LATENCY_OUTLIER)
        elif server.state is DEGRADED and not (server.error_high or server.slow):
            self._move(server_id, server, HEALTHY, now, Reason.RECOVERED)
        ### END SOLUTION

    # --- time ------------------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Apply the time-based transitions due at ``now`` (ejection over, slow start over), in time order.  O(k log S)."""
        ### BEGIN SOLUTION: validate now, then the shared private step
        self._advance(self._time(now))
        ### END SOLUTION

    def next_change_time(self) -> float | None:
        """When ``advance`` next has work (an ejection or a slow start ending), or ``None``.  Amortised O(log S)."""
        ### BEGIN SOLUTION: drop stale timer entries, peek
        self._clean(self._timers, "timer_token")
        return self._timers[0][0] if self._timers else None
        ### END SOLUTION

    # --- reads -----------------------------------------------------------------------------------

    def state(self, server_id: str) -> HealthState:
        """The server's state (as of the last call that applied time).  O(1)."""
        ### BEGIN SOLUTION: the record's state
        return self._get(server_id).state
        ### END SOLUTION

    def weight(self, server_id: str, now: float) -> float:
        """The routing weight in [0, 1] at ``now`` (rule 8); a pure read: it changes nothing.  O(1)."""
        ### BEGIN SOLUTION: validate; down 0, degraded degraded_weight, half-open min_weight, slow start Envoy's curve, healthy 1
        server = self._get(server_id)
        now = require_time(now)
        if now < self._clock:
            raise TimeWentBackwardsError(f"now={now} is before {self._clock}, a time this checker already saw; pass the current time")
        p = self.policy
        if server.state is DOWN:
            return 0.0
        if server.state is DEGRADED:
            return p.degraded_weight
        if server.state is RECOVERING:
            if server.half_open or server.ramp_start is None:
                return p.min_weight
            t = now - server.ramp_start
            if t >= p.slow_start_window:
                return 1.0
            return max(p.min_weight, (t / p.slow_start_window) ** (1.0 / p.aggression))
        return 1.0
        ### END SOLUTION

    def trial_limit(self, server_id: str) -> int | None:
        """``half_open_trials`` while half-open (at most that many requests in flight), else ``None``.  O(1)."""
        ### BEGIN SOLUTION: half-open -> the policy's half_open_trials
        server = self._get(server_id)
        return self.policy.half_open_trials if server.state is RECOVERING and server.half_open else None
        ### END SOLUTION

    def get_server_stats(self) -> dict[str, dict[str, Any]]:
        """Per server: ``state`` (its string), ``since``, ``reason``, ``weight`` (at the last time seen),
        ``half_open``, ``trial_limit``, ``ejections``, ``ejected_until``, ``consecutive_errors``,
        ``probe_failures``, ``probe_successes``.  O(S)."""
        ### BEGIN SOLUTION: one dict per server, in insertion order
        return {sid: {"state": s.state.value, "since": s.since, "reason": s.reason, "weight": self.weight(sid, self._clock),
                      "half_open": s.half_open, "trial_limit": self.trial_limit(sid), "ejections": s.ejections,
                      "ejected_until": s.ejected_until, "consecutive_errors": s.consecutive_errors,
                      "probe_failures": s.probe_failures, "probe_successes": s.probe_successes}
                for sid, s in self._servers.items()}  # fmt: skip
        ### END SOLUTION

    def ejected_count(self) -> int:
        """How many servers are down by ejection now (the count rule 4 bounds).  O(1)."""
        ### BEGIN SOLUTION: the counter
        return self._ejected
        ### END SOLUTION

    ### BEGIN OMIT
    # --- private ---------------------------------------------------------------------------------

    def _time(self, now: object) -> float:
        value = require_time(now)
        if value < self._clock:
            raise TimeWentBackwardsError(f"now={value} is before {self._clock}, a time this checker already saw; pass the current time")
        return value

    @staticmethod
    def _check_ok(ok: object) -> None:
        if not isinstance(ok, bool):
            raise TypeError(f"ok must be a bool, got {type(ok).__name__} {ok!r}")

    def _get(self, server_id: object) -> _Server:
        require_id(server_id, "server_id")
        try:
            return self._servers[server_id]  # type: ignore[index]
        except KeyError:
            raise UnknownServerError(f"server {server_id!r} is not present (never added, or removed); "
                                     "add_server it first, and drop results of removed servers") from None

    def _token(self) -> int:
        self._tokens += 1
        return self._tokens

    def _schedule_probe(self, server_id: str, server: _Server, due: float) -> None:
        server.next_probe, server.probe_token = due, self._token()
        heapq.heappush(self._probes, (due, server_id, server.probe_token))

    def _set_timer(self, server_id: str, server: _Server, when: float) -> None:
        server.timer_token = self._token()
        heapq.heappush(self._timers, (when, server_id, server.timer_token))

    def _clean(self, heap: list[tuple[float, str, int]], attr: str) -> None:
        while heap:
            _, server_id, token = heap[0]
            server = self._servers.get(server_id)
            if server is not None and getattr(server, attr) == token:
                return
            heapq.heappop(heap)

    def _advance(self, now: float) -> None:
        self._clock = now
        while True:
            self._clean(self._timers, "timer_token")
            if not self._timers or self._timers[0][0] > now:
                return
            when, server_id, _ = heapq.heappop(self._timers)
            server = self._servers[server_id]
            server.timer_token = 0
            if server.state is DOWN and server.down_by == "ejection":
                self._half_open(server_id, server, when, Reason.EJECTION_OVER)
            elif server.state is RECOVERING and not server.half_open:
                self._move(server_id, server, DEGRADED if (server.error_high or server.slow) else HEALTHY, when, Reason.SLOW_START_OVER)

    def _move(self, server_id: str, server: _Server, new: HealthState, at: float, reason: str) -> None:
        self.transitions.append(Transition(server_id, server.state, new, at, reason))
        if server.state is DOWN and server.down_by == "ejection":
            self._ejected -= 1
        server.state, server.since, server.reason = new, at, reason
        if new is not DOWN:
            server.down_by, server.ejected_until = None, None
        if new is HEALTHY or new is DEGRADED:
            server.half_open, server.ramp_start = False, None

    def _down(self, server_id: str, server: _Server, at: float, reason: str, by: str) -> None:
        self._move(server_id, server, DOWN, at, reason)
        server.down_by, server.half_open, server.ramp_start, server.trial_successes = by, False, None, 0
        server.timer_token = 0  # a pending slow-start end no longer applies
        if by == "ejection":
            self._ejected += 1

    def _eject(self, server_id: str, server: _Server, now: float, reason: str) -> bool:
        p = self.policy
        if (self._ejected + 1) * 100 > p.max_ejection_percent * len(self._servers):
            self.ejections_refused += 1
            return False
        forgiven = int((now - server.closed_since) // p.max_ejection_time) if not (server.state is RECOVERING and server.half_open) else 0
        server.level = max(0, server.level - forgiven) + 1
        server.ejections += 1
        server.consecutive_errors = 0
        self._down(server_id, server, now, reason, "ejection")
        server.ejected_until = now + p.ejection_time(server.level)
        self._set_timer(server_id, server, server.ejected_until)
        return True

    def _half_open(self, server_id: str, server: _Server, at: float, reason: str) -> None:
        self._move(server_id, server, RECOVERING, at, reason)
        server.half_open, server.trial_successes, server.ramp_start, server.consecutive_errors = True, 0, None, 0

    def _update_signals(self, server: _Server) -> None:
        p = self.policy
        if server.error_high:
            server.error_high = server.error_ewma >= p.degraded_error_rate * p.hysteresis
        else:
            server.error_high = server.error_ewma >= p.degraded_error_rate
        if server.spt_ewma is None or self._spt_count < 2:
            server.slow = False
            return
        mean = (self._spt_sum - server.spt_ewma) / (self._spt_count - 1)  # the other servers' mean
        if server.slow:
            server.slow = server.spt_ewma >= (1 + (p.latency_factor - 1) * p.hysteresis) * mean
        else:
            server.slow = server.spt_ewma > p.latency_factor * mean

    ### END OMIT


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
        ### BEGIN SOLUTION: validate policy; the requests, an index server -> requests in flight, the counters
        if policy is not None and not isinstance(policy, RetryPolicy):
            raise TypeError(f"policy must be a RetryPolicy or None, got {type(policy).__name__}")
        self.policy = policy if policy is not None else RetryPolicy()
        self._requests: dict[str, _Request] = {}
        self._on: dict[str, dict[str, None]] = {}  # server -> requests in flight there (insertion order)
        self._clock = 0.0
        self._in_flight = 0
        self._stats = {"requests": 0, "tries": 0, "re_sent": 0, "answered": 0, "failed": 0, "cancelled": 0,
                       "late_answers_discarded": 0}  # fmt: skip
        ### END SOLUTION

    def begin(self, request_id: str, server_id: str, now: float) -> int:
        """Start an attempt of ``request_id`` on ``server_id`` (rule 1); returns its number (1-based).  O(1)."""
        ### BEGIN SOLUTION: validate; new id or waiting request; check the tries left; append the attempt and index it
        require_id(request_id, "request_id")
        require_id(server_id, "server_id")
        now = self._time(now)
        request = self._requests.get(request_id)
        if request is not None:
            if request.status == "in flight":
                raise RequestStateError(f"request {request_id!r} has an attempt in flight on {request.attempts[-1].server_id!r}; "
                                        "end it (server_down / timed_out) before re-sending")
            if request.status != "waiting":
                raise RequestStateError(f"request {request_id!r} has ended ({request.status}); finish() it before reusing the id")
            if len(request.attempts) >= self.policy.max_tries:
                raise RetriesExhaustedError(f"request {request_id!r} used its {self.policy.max_tries} tries; fail() it")
        self._clock = now
        if request is None:
            request = self._requests[request_id] = _Request()
            self._stats["requests"] += 1
        else:
            self._stats["re_sent"] += 1
        request.attempts.append(Attempt(server_id, now))
        request.status = "in flight"
        self._on.setdefault(server_id, {})[request_id] = None
        self._in_flight += 1
        self._stats["tries"] += 1
        return len(request.attempts)
        ### END SOLUTION

    def first_token(self, request_id: str, now: float) -> None:
        """Mark that tokens of the attempt in flight reached the client: no silent re-send from now on.  O(1)."""
        ### BEGIN SOLUTION: the request must have an attempt in flight; set streamed
        request = self._get(request_id)
        now = self._time(now)
        if request.status != "in flight":
            raise RequestStateError(f"request {request_id!r} has no attempt in flight ({request.status}); tokens cannot arrive")
        self._clock = now
        request.streamed = True
        ### END SOLUTION

    def server_down(self, server_id: str, now: float) -> tuple[list[str], list[str]]:
        """End every attempt in flight on ``server_id``: ``(re-send, fail)`` request ids in begin order (rule 2).  O(k)."""
        ### BEGIN SOLUTION: for each request in flight there, end its attempt as server down and sort it into re-send or fail
        require_id(server_id, "server_id")
        now = self._time(now)
        self._clock = now
        resend: list[str] = []
        failed: list[str] = []
        running = self._on.pop(server_id, {})
        self._in_flight -= len(running)
        for request_id in running:
            (resend if self._end_attempt(request_id, now, Outcome.SERVER_DOWN) else failed).append(request_id)
        return resend, failed
        ### END SOLUTION

    def timed_out(self, request_id: str, now: float) -> bool:
        """End the attempt in flight as timed out (rule 4): ``True`` = re-send it, ``False`` = it failed.  O(1)."""
        ### BEGIN SOLUTION: in flight, past its deadline; end the attempt and return whether it is re-sendable
        request = self._get(request_id)
        now = self._time(now)
        if request.status != "in flight":
            raise RequestStateError(f"request {request_id!r} has no attempt in flight ({request.status}); nothing to time out")
        deadline = self.deadline(request_id)
        if deadline is not None and now < deadline:
            raise RequestStateError(f"request {request_id!r}'s attempt may run until {deadline}; it has not timed out at {now}")
        self._clock = now
        self._unindex(request.attempts[-1].server_id, request_id)
        return self._end_attempt(request_id, now, Outcome.TIMED_OUT)
        ### END SOLUTION

    def deadline(self, request_id: str) -> float | None:
        """When the attempt in flight times out (``start + per_try_timeout``), or ``None``.  O(1)."""
        ### BEGIN SOLUTION: from the last attempt's start, while in flight
        request = self._get(request_id)
        if request.status != "in flight" or self.policy.per_try_timeout is None:
            return None
        return request.attempts[-1].start + self.policy.per_try_timeout
        ### END SOLUTION

    def answer(self, request_id: str, server_id: str, now: float) -> bool:
        """An answer arrived from ``server_id``: ``True`` = deliver it (rule 3), ``False`` = discarded and counted.  O(1)
        (plus the attempts of that request when the answer is late)."""
        ### BEGIN SOLUTION: deliver only the in-flight attempt's answer; otherwise count (and note on the attempt) a late answer
        require_id(request_id, "request_id")
        require_id(server_id, "server_id")
        now = self._time(now)
        self._clock = now
        request = self._requests.get(request_id)
        if request is not None and request.status == "in flight" and request.attempts[-1].server_id == server_id:
            request.attempts[-1] = replace(request.attempts[-1], end=now, outcome=Outcome.ANSWERED)
            self._unindex(server_id, request_id)
            request.status = "answered"
            self._stats["answered"] += 1
            return True
        self._stats["late_answers_discarded"] += 1
        if request is not None:
            for i in range(len(request.attempts) - 1, -1, -1):
                attempt = request.attempts[i]
                if attempt.server_id == server_id and attempt.outcome != Outcome.IN_FLIGHT and attempt.late_answer_at is None:
                    request.attempts[i] = replace(attempt, late_answer_at=now)
                    break
        return False
        ### END SOLUTION

    def fail(self, request_id: str, now: float) -> None:
        """End a request that runs or waits, as failed (e.g. no server can take the re-send).  O(1)."""
        ### BEGIN SOLUTION: not ended yet; cancel the attempt in flight if any; status failed
        request = self._get(request_id)
        now = self._time(now)
        if request.status not in ("in flight", "waiting"):
            raise RequestStateError(f"request {request_id!r} has already ended ({request.status})")
        self._clock = now
        if request.status == "in flight":
            self._unindex(request.attempts[-1].server_id, request_id)
            request.attempts[-1] = replace(request.attempts[-1], end=now, outcome=Outcome.CANCELLED)
        request.status = "failed"
        self._stats["failed"] += 1
        ### END SOLUTION

    def finish(self, request_id: str) -> None:
        """Forget the request (read its ``history`` first); one still running or waiting is cancelled.  O(1)."""
        ### BEGIN SOLUTION: cancel if not ended; drop it from the index and the requests
        request = self._get(request_id)
        if request.status in ("in flight", "waiting"):
            if request.status == "in flight":
                self._unindex(request.attempts[-1].server_id, request_id)
                request.attempts[-1] = replace(request.attempts[-1], end=self._clock, outcome=Outcome.CANCELLED)
            self._stats["cancelled"] += 1
        del self._requests[request_id]
        ### END SOLUTION

    def status(self, request_id: str) -> str:
        """``"in flight"``, ``"waiting"`` (to be re-sent), ``"answered"``, ``"failed"``.  O(1)."""
        ### BEGIN SOLUTION: the record's status
        return self._get(request_id).status
        ### END SOLUTION

    def history(self, request_id: str) -> list[Attempt]:
        """The request's attempts, first to last (a copy).  O(tries)."""
        ### BEGIN SOLUTION: a copy of the attempts
        return list(self._get(request_id).attempts)
        ### END SOLUTION

    def stats(self) -> dict[str, int]:
        """Counts: ``requests``, ``tries``, ``re_sent``, ``answered``, ``failed``, ``cancelled``,
        ``late_answers_discarded``, ``in_flight`` (attempts running now).  O(1)."""
        ### BEGIN SOLUTION: the counters plus the attempts in flight
        return {**self._stats, "in_flight": self._in_flight}
        ### END SOLUTION

    ### BEGIN OMIT
    def _time(self, now: object) -> float:
        value = require_time(now)
        if value < self._clock:
            raise TimeWentBackwardsError(f"now={value} is before {self._clock}, a time this ledger already saw; pass the current time")
        return value

    def _get(self, request_id: object) -> _Request:
        require_id(request_id, "request_id")
        try:
            return self._requests[request_id]  # type: ignore[index]
        except KeyError:
            raise UnknownRequestError(f"request {request_id!r} is not in the ledger (never begun, or finished); begin() it first") from None

    def _unindex(self, server_id: str, request_id: str) -> None:
        running = self._on[server_id]
        del running[request_id]
        if not running:
            del self._on[server_id]
        self._in_flight -= 1

    def _end_attempt(self, request_id: str, now: float, outcome: str) -> bool:
        """End the attempt in flight (already dropped from the index); True if the request may be re-sent."""
        request = self._requests[request_id]
        request.attempts[-1] = replace(request.attempts[-1], end=now, outcome=outcome)
        if not request.streamed and len(request.attempts) < self.policy.max_tries:
            request.status = "waiting"
            return True
        request.status = "failed"
        self._stats["failed"] += 1
        return False

    ### END OMIT
