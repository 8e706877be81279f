"""Stage 7: rolling deploys with pre-warming, and canaries with automatic rollback.

Replacing the software of a serving fleet is three problems: keep enough
capacity while servers are replaced (the rolling update's two bounds), do not
send traffic to a server that is not warm yet (pre-warming), and stop when
the new version is bad before most users see it (the canary and its test).
Drain with a timeout (a draining server's last requests are ended and
re-sent after ``drain_timeout``) lives in the request path; this module
decides *when* to start and drain which server.

* :func:`resolve_surge`, :func:`resolve_unavailable`: Kubernetes' bounds and
  their rounding.
* :class:`RollingDeploy`: the controller, a pure state machine fed events
  (``Ready``, ``Drained``, ``Fault``, ``Tick``, ``Window``) that returns
  actions (``Start``, ``Drain``, ``SetCanaryWeight``, ``EndCanary``, ``Done``,
  ``RolledBack``) and logs every decision with its reason.
* :class:`CanaryAnalysis`: the statistics that promote, hold or roll back a
  canary step.
* :class:`CanarySplit`: the routing strategy that sends a share of the traffic
  to the new version, by a hash of the session, keeping excluded tiers off it.

The two bounds (Kubernetes' ``RollingUpdate``)
----------------------------------------------
``max_surge`` is how many servers may exist *above* the replica count ``R``
(extra GPUs held during the rollout); ``max_unavailable`` how many may be
missing *below* it (capacity given up).  Each is an int or a whole percent of
``R``.  Kubernetes rounds a percent surge **up** and a percent unavailability
**down**, so a small fleet still makes progress and never loses more than the
percent says::

    surge       = ceil(R * p / 100)      "25%" of 10 -> 3,  of 3 -> 1
    unavailable = floor(R * p / 100)     "25%" of 10 -> 2,  of 3 -> 0

Both resolving to 0 is refused with ``ValueError`` (Kubernetes: "may not be 0
when maxSurge is 0"): no server could be started or drained.  A percent
outside 0-100, a negative number, a bool or a fraction is a ``TypeError`` /
``ValueError``.

The controller then keeps, after every event it is fed:

* at most ``R + surge`` servers exist (starting, ready **or draining**: a
  draining server still holds its GPU, so this course counts it, which is
  stricter than Kubernetes, where terminating pods do not count);
* at least ``R - unavailable`` servers are ready, unless a ``Fault`` took one
  (the controller never drains below the bound itself; after a fault it
  drains nothing until new servers are ready again).

Pre-warm vs drain-first
-----------------------
With ``prewarm=True`` a new server is started, becomes ``Ready`` (health
checks pass, slow start done, caches warm) and only then is an old server
drained in its place: an old server is drained only while more than ``R``
servers are ready, so capacity never dips below ``R`` by the controller's
hand (it needs ``max_surge >= 1``, else ``ValueError``).  With
``prewarm=False`` (drain-first, Kubernetes' order) old servers are drained down
to ``R - unavailable`` at once and new ones started in the room the surge
leaves; faster on a fleet with spare capacity, a capacity dip otherwise.
Drains go oldest-listed first; new servers are named ``"<version>-<n>"``.
Each ``Drain`` carries the plan's ``drain_timeout``.

Canary
------
With a :class:`CanaryPlan` the rollout starts with a canary: for each step
``w`` (percent, e.g. 1, 5, 25) the controller starts
``min(surge, max(1, ceil(R * w / 100)))`` new servers (the stable fleet stays
whole: the canary lives in the surge, so it needs ``max_surge >= 1``), and once
they are ready sets the traffic share with ``SetCanaryWeight(w / 100)``.  The
step is judged once, at the first ``Window`` at least ``window`` seconds after
the weight was set that carries ``min_requests`` per version (the window's
stats are the step's traffic since its weight was set).  ``rollback`` ->
``SetCanaryWeight(0)``, every new server drained, ``RolledBack`` (state
``"rolled_back"``; only version A serves); ``hold`` -> wait for the next
window; ``promote`` -> the next step.  A step of 100 (or passing the last
step) ends the canary: ``EndCanary`` and the rolling update replaces the rest.

A rollback at any time (:meth:`RollingDeploy.rollback`) is a rolling update
back to version A under the same two bounds: new servers are drained (all at
once when the old fleet is whole, as during a canary) and old-version servers
started until ``R`` of them exist again (version A is the fleet's most common
version other than the new one; a fleet already all on the new version is
``Done`` at once, without a canary).

The canary's test
-----------------
:class:`CanaryAnalysis` asks "is B *worse* than A?" (one-sided: a better B is
not a reason to stop), per metric:

* errors: **Fisher's exact test**, one-sided, on the 2x2 table (errors and
  successes of A and B).  Error rates near 0.1-2% with a few hundred requests
  give expected counts far below the 5 a z-test's normal approximation
  needs; the exact test is valid at any count.  Conditional on the total
  errors ``K`` among ``N = n_a + n_b`` requests, B's errors are
  hypergeometric: ``p = P(X >= x_b)`` with ``X ~ Hypergeom(N, K, n_b)``.
  It is discrete, hence conservative: its true size is at most ``alpha``.
* latency: the **Mann-Whitney U test**, one-sided (B's latencies
  stochastically larger).  Latencies are skewed with long tails, so a t-test
  on means is dominated by a few outliers; U uses ranks only.  Normal
  approximation with the tie correction and a 0.5 continuity correction::

      U_b = R_b - n_b (n_b + 1) / 2                (R_b: B's rank sum, ties get average ranks)
      var = n_a n_b / 12 * ((N + 1) - sum(t^3 - t) / (N (N - 1)))
      z   = (U_b - n_a n_b / 2 - 0.5) / sqrt(var),  p = 1 - Phi(z)

With ``m`` metrics each is tested at ``alpha / m`` (Bonferroni): a step with
identical versions rolls back with probability at most ``alpha``.  A canary
judges ``k`` steps (the steps below 100) on fresh data each, so its nominal
false-rollback rate is::

    1 - (1 - alpha)^k        (at most k * alpha; 0.1426 for alpha 0.05, k = 3)

Each step is tested exactly once (a ``hold`` for lack of data runs no test),
so repeated looks do not inflate it.  ``p_value`` in a :class:`Verdict` is
the Bonferroni-adjusted ``min(1, m * min p)``.

Splitting the traffic
---------------------
:class:`CanarySplit` hashes the request's session id (else its request id)
with BLAKE2b (keyed by ``seed``): ``h / 2^64 < weight`` -> the new version.
Deterministic, so a conversation stays on one version (its KV cache too),
and monotone: raising the weight only moves sessions to the new version.
Requests of an excluded tier always go to the old version.  One inner
strategy per version is fed only that version's servers by the router's
hooks, so a decision is one inner decision, never a scan of the fleet.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

from solution.core.deploy_types import (
    Action,
    Bound,
    CanaryPlan,
    Decision,
    Drain,
    Drained,
    Done,
    EndCanary,
    Event,
    Fault,
    Ready,
    RolledBack,
    RolloutPlan,
    SetCanaryWeight,
    Start,
    Tick,
    Verdict,
    VersionStats,
    Window,
    parse_bound,
)
from solution.core.errors import RolloutInProgressError, TimeWentBackwardsError, UnknownServerError
from solution.core.request import Request
from solution.core.routing import BaseStrategy, Router, ServerState, Strategy

__all__ = [
    "resolve_surge",
    "resolve_unavailable",
    "RollingDeploy",
    "CanaryAnalysis",
    "CanarySplit",
]


def _replicas(replicas: object) -> int:
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise TypeError(f"replicas must be an int, got {type(replicas).__name__} {replicas!r}")
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    return replicas


def resolve_surge(value: Bound, replicas: int) -> int:
    """``max_surge`` as a number of servers: an int as given, a percent of ``replicas`` rounded **up**.  O(1).

    >>> resolve_surge("25%", 10), resolve_surge("25%", 3), resolve_surge(2, 10)
    (3, 1, 2)

    Raises:
        TypeError / ValueError: not an int >= 0 or a whole percent in 0-100 (``"25%"``); ``replicas`` not an int >= 1.
    """
    ### BEGIN SOLUTION: parse the bound (int or "N%"), check replicas; a percent -> ceil(replicas * N / 100) in integers
    number, percent = parse_bound(value, "max_surge")
    replicas = _replicas(replicas)
    return -(-replicas * number // 100) if percent else number
    ### END SOLUTION


def resolve_unavailable(value: Bound, replicas: int) -> int:
    """``max_unavailable`` as a number of servers: an int as given, a percent of ``replicas`` rounded **down**.  O(1).

    >>> resolve_unavailable("25%", 10), resolve_unavailable("25%", 3), resolve_unavailable(1, 10)
    (2, 0, 1)

    Raises:
        TypeError / ValueError: not an int >= 0 or a whole percent in 0-100; ``replicas`` not an int >= 1.
    """
    ### BEGIN SOLUTION: parse the bound, check replicas; a percent -> floor(replicas * N / 100) in integers
    number, percent = parse_bound(value, "max_unavailable")
    replicas = _replicas(replicas)
    return replicas * number // 100 if percent else number
    ### END SOLUTION


# --- the canary's statistics ---------------------------------------------------


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(x_b: int, n_b: int, x_a: int, n_a: int) -> float:
    """One-sided Fisher exact p-value that B's error rate exceeds A's: ``P(X >= x_b)``, ``X ~ Hypergeom(N, K, n_b)``.

    O(min(K, n_b)) terms, summed in log space.

    >>> round(fisher_greater(10, 100, 0, 100), 6)
    0.000771
    """
    ### BEGIN SOLUTION: K = x_a + x_b, N = n_a + n_b; no errors -> 1.0; sum C(K,k) C(N-K, n_b-k) / C(N, n_b) for k from x_b to min(K, n_b)
    total, errors = n_a + n_b, x_a + x_b
    if errors == 0 or n_b == 0 or n_a == 0:
        return 1.0
    denominator = _log_comb(total, n_b)
    high = min(errors, n_b)
    low = max(x_b, n_b - (total - errors))
    p = sum(math.exp(_log_comb(errors, k) + _log_comb(total - errors, n_b - k) - denominator) for k in range(low, high + 1))
    return min(1.0, p)
    ### END SOLUTION


def mann_whitney_greater(b: Sequence[float], a: Sequence[float]) -> float:
    """One-sided Mann-Whitney U p-value that ``b`` is stochastically larger than ``a``.

    Normal approximation, tie correction, continuity correction 0.5 (see the
    module's docstring).  O(N log N) for N samples; 1.0 when either is empty or
    every sample is tied.
    """
    ### BEGIN SOLUTION: average ranks of the pooled sample; U_b from B's rank sum; tie-corrected variance; z with -0.5; p = erfc(z / sqrt 2) / 2
    n_b, n_a = len(b), len(a)
    if n_b == 0 or n_a == 0:
        return 1.0
    pooled = sorted([(x, 1) for x in b] + [(x, 0) for x in a])
    n = n_a + n_b
    rank_sum_b = 0.0
    ties = 0.0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        t = j - i + 1
        rank = (i + j) / 2 + 1
        rank_sum_b += rank * sum(flag for _, flag in pooled[i : j + 1])
        ties += t**3 - t
        i = j + 1
    u_b = rank_sum_b - n_b * (n_b + 1) / 2
    variance = n_a * n_b / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u_b - n_a * n_b / 2 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))
    ### END SOLUTION


class CanaryAnalysis:
    """Judges one canary step: ``promote``, ``hold`` or ``rollback`` (tests in the module's docstring).

    ``judge(a, b)``: ``hold`` when either version served fewer than
    ``min_requests`` or a latency test lacks samples (no test is run then);
    otherwise each metric in ``plan.metrics`` is tested at ``alpha / m`` and
    any p-value below it is a ``rollback``, else ``promote``.  O(N log N) for
    N latency samples plus O(errors) for the exact test.

    Raises:
        TypeError: ``plan`` is not a :class:`CanaryPlan`, or ``a`` / ``b`` not a ``VersionStats``.
    """

    def __init__(self, plan: CanaryPlan) -> None:
        ### BEGIN SOLUTION: check the type; keep the plan
        if not isinstance(plan, CanaryPlan):
            raise TypeError(f"plan must be a CanaryPlan, got {type(plan).__name__}")
        self.plan = plan
        ### END SOLUTION

    def level(self) -> float:
        """The per-metric test level ``alpha / m`` (Bonferroni)."""
        ### BEGIN SOLUTION: alpha over the number of metrics
        return self.plan.alpha / len(self.plan.metrics)
        ### END SOLUTION

    def nominal_false_rollback(self, steps: int | None = None) -> float:
        """The nominal false-rollback rate of a whole canary: ``1 - (1 - alpha)^k``.

        ``k`` = ``steps``, default the number of judged steps (those below 100).
        """
        ### BEGIN SOLUTION: k judged steps (steps below 100 unless given); 1 - (1 - alpha) ** k
        if steps is None:
            steps = sum(1 for s in self.plan.steps if s < 100)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an int >= 0, got {steps!r}")
        return 1.0 - (1.0 - self.plan.alpha) ** steps
        ### END SOLUTION

    def judge(self, a: VersionStats, b: VersionStats) -> Verdict:
        """A's (stable) and B's (new) stats of one step -> a :class:`Verdict` naming the test and the numbers."""
        ### BEGIN SOLUTION: validate; hold for too little data (no test run); test each metric at alpha / m; rollback if any p < level, else promote
        if not isinstance(a, VersionStats) or not isinstance(b, VersionStats):
            raise TypeError(f"a and b must be VersionStats, got {type(a).__name__} and {type(b).__name__}")
        plan = self.plan
        if a.requests < plan.min_requests or b.requests < plan.min_requests:
            return Verdict("hold", 1.0, f"too little data: A served {a.requests}, B {b.requests}; "
                                        f"each needs {plan.min_requests} before a test is run")  # fmt: skip
        if "latency" in plan.metrics and (not a.latencies or not b.latencies):
            return Verdict("hold", 1.0, f"no latency samples (A {len(a.latencies)}, B {len(b.latencies)}); none tested")
        p_values: dict[str, float] = {}
        if "errors" in plan.metrics:
            p_values["errors"] = fisher_greater(b.errors, b.requests, a.errors, a.requests)
        if "latency" in plan.metrics:
            p_values["latency"] = mann_whitney_greater(b.latencies, a.latencies)
        level = self.level()
        metric = min(p_values, key=lambda k: p_values[k])
        adjusted = min(1.0, len(plan.metrics) * p_values[metric])
        facts = (f"errors A {a.errors}/{a.requests} vs B {b.errors}/{b.requests} (Fisher exact, one-sided, p={p_values['errors']:.3g})"
                 if "errors" in p_values else "")  # fmt: skip
        if "latency" in p_values:
            facts += ("; " if facts else "") + (f"latency (Mann-Whitney U, one-sided, p={p_values['latency']:.3g}, "
                                                f"{len(a.latencies)} vs {len(b.latencies)} samples)")  # fmt: skip
        if p_values[metric] < level:
            return Verdict("rollback", adjusted, f"B is worse on {metric}: p={p_values[metric]:.3g} < alpha/m={level:.3g}; {facts}", p_values)
        return Verdict("promote", adjusted, f"no metric worse at alpha/m={level:.3g}; {facts}", p_values)
        ### END SOLUTION


# --- the controller --------------------------------------------------------------

_LIVE = ("starting", "ready", "draining")


class RollingDeploy:
    """Replaces the servers of ``servers`` not at ``new_version`` by servers of it (the module's docstring has the rules).

    Args:
        servers: the fleet, ``(server_id, version)`` pairs, all ready; its size is the replica count ``R``.
        new_version: the version to roll out.
        plan: a :class:`RolloutPlan`.
        now: the start time; the first actions are in :attr:`initial_actions` (and the log).

    Feed it events with :meth:`on`; it returns the actions to carry out, in
    order.  It never sleeps or polls: :meth:`next_event_time` says when a
    canary window is due.  Each event costs O(S) for the S servers it has
    had (at most about 2R: it recounts the states), plus the actions it
    returns, so a whole rollout is O(R^2) - cheap next to minutes of weight
    loading per server, so simplicity wins over incremental counters.

    Attributes:
        initial_actions: the actions the start decided (``Start`` of the first new servers, or the first
            ``Drain`` for drain-first), to carry out before feeding any event.
        log: every decision, in order, as ``Decision(at, action, reason)``: one per action returned (the
            action and why, e.g. which bound allowed it), and ``action=None`` for an event that changed
            nothing (why not: waiting for a server to be ready, a late event ignored).  A reason is never empty.
        faults: how many servers a ``Fault`` took.

    Raises:
        TypeError / ValueError: bad fleet (empty, duplicate ids), version, plan or time; both bounds
            resolving to 0; ``prewarm`` or a canary with a surge of 0.  Nothing is created.
    """

    def __init__(self, servers: Sequence[tuple[str, str]], new_version: str, plan: RolloutPlan, now: float) -> None:
        ### BEGIN SOLUTION: validate everything first; resolve the bounds (both 0, prewarm or canary without surge -> ValueError); record the fleet; plan the first actions (canary step 0, or the rolling update)
        if isinstance(servers, (str, bytes)) or not isinstance(servers, Sequence):
            raise TypeError(f"servers must be a sequence of (server_id, version) pairs, got {type(servers).__name__}")
        fleet: dict[str, list[str]] = {}
        for pair in servers:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise TypeError(f"each server must be a (server_id, version) tuple, got {pair!r}")
            sid, version = _name(pair[0], "server_id"), _name(pair[1], "version")
            if sid in fleet:
                raise ValueError(f"server {sid!r} is listed twice; each server once")
            fleet[sid] = [version, "ready"]
        if not fleet:
            raise ValueError("servers is empty: there is nothing to roll out")
        new_version = _name(new_version, "new_version")
        if not isinstance(plan, RolloutPlan):
            raise TypeError(f"plan must be a RolloutPlan, got {type(plan).__name__}")
        now = _at(now)
        replicas = len(fleet)
        surge = resolve_surge(plan.max_surge, replicas)
        unavailable = min(resolve_unavailable(plan.max_unavailable, replicas), replicas)
        if surge == 0 and unavailable == 0:
            raise ValueError(f"max_surge {plan.max_surge!r} and max_unavailable {plan.max_unavailable!r} both resolve to 0 "
                             f"for {replicas} replicas (max_unavailable may not be 0 when max_surge is 0); allow one of them")  # fmt: skip
        if surge == 0 and (plan.prewarm or plan.canary is not None):
            what = "prewarm" if plan.prewarm else "a canary"
            raise ValueError(f"{what} needs room for an extra server, but max_surge {plan.max_surge!r} resolves to 0 "
                             f"for {replicas} replicas; raise max_surge to >= 1 or use prewarm=False without a canary")  # fmt: skip
        old = [v for v, _ in fleet.values() if v != new_version]
        self.plan, self.new_version, self.replicas = plan, new_version, replicas
        self.max_surge, self.max_unavailable = surge, unavailable
        self.old_version = max(dict.fromkeys(old), key=old.count) if old else new_version
        self.analysis = CanaryAnalysis(plan.canary) if plan.canary is not None else None
        self.log: list[Decision] = []
        self.faults = 0
        self._servers = fleet  # id -> [version, status], in order of addition (drains go oldest first)
        self._now = now
        self._state = "running"
        self._target = new_version
        self._phase = "canary" if plan.canary is not None and old else "rolling"  # nothing to compare against: no canary
        self._step = 0
        self._weight_at: float | None = None  # when the current step's weight was set (None: not yet)
        self._due = math.inf  # when the current step's next Window is due
        self._weight = 0.0
        self._split = False  # a SetCanaryWeight > 0 is in force
        self._counter = 0
        out: list[Action] = []
        self._decide(now, out, f"start rolling {old and self.old_version or new_version} -> {new_version}: R={replicas}, "
                               f"surge {surge}, unavailable {unavailable}, {'prewarm' if plan.prewarm else 'drain-first'}"
                               f"{', canary ' + str(plan.canary.steps) if plan.canary else ''}")  # fmt: skip
        self.initial_actions: list[Action] = out
        ### END SOLUTION

    # -- reading ----------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"running"``, ``"done"`` (every old server gone, R new ones ready) or ``"rolled_back"``."""
        ### BEGIN SOLUTION: running while events remain to decide, done once R new servers serve and no old one is left, rolled_back after a rollback
        return self._state
        ### END SOLUTION

    @property
    def min_ready(self) -> int:
        """``R - max_unavailable``: the controller never drains below this many ready servers."""
        ### BEGIN SOLUTION: replicas minus the resolved bound
        return self.replicas - self.max_unavailable
        ### END SOLUTION

    @property
    def max_servers(self) -> int:
        """``R + max_surge``: at most this many servers exist (starting, ready or draining)."""
        ### BEGIN SOLUTION: replicas plus the resolved surge
        return self.replicas + self.max_surge
        ### END SOLUTION

    @property
    def weight(self) -> float:
        """The canary traffic share last set (0.0 when none is in force)."""
        ### BEGIN SOLUTION: the share of the last SetCanaryWeight (0.0 before any and after a rollback)
        return self._weight
        ### END SOLUTION

    def status(self, server_id: str) -> str:
        """``"starting"``, ``"ready"``, ``"draining"`` or ``"gone"``; UnknownServerError for an id it never had."""
        ### BEGIN SOLUTION: look it up
        return self._lookup(server_id)[1]
        ### END SOLUTION

    def servers(self) -> dict[str, tuple[str, str]]:
        """Every server it ever had: ``{server_id: (version, status)}``, in order of addition.  O(servers)."""
        ### BEGIN SOLUTION: a copy
        return {sid: (v, s) for sid, (v, s) in self._servers.items()}
        ### END SOLUTION

    def serving(self) -> list[tuple[str, str]]:
        """The ready servers as ``(server_id, version)``.  O(servers)."""
        ### BEGIN SOLUTION: those whose status is ready
        return [(sid, v) for sid, (v, s) in self._servers.items() if s == "ready"]
        ### END SOLUTION

    def next_event_time(self) -> float | None:
        """When the current canary step's next ``Window`` is due, or None.

        ``window`` seconds after the step's weight was set; after a ``hold``, ``window`` seconds after that
        window (so a caller that schedules by this time never asks twice at the same moment).
        """
        ### BEGIN SOLUTION: the step's weight time plus the window, while a canary step waits for its judgement
        if self._state == "running" and self._phase == "canary" and self._weight_at is not None and self.plan.canary:
            return self._due
        return None
        ### END SOLUTION

    # -- events ---------------------------------------------------------------------

    def on(self, event: Event) -> list[Action]:
        """Feed one event; return the actions to carry out now (each also in :attr:`log` with its reason).

        ``Ready``: a starting server serves (late for one already draining: ignored, logged).
        ``Drained``: a draining server's last request left; it is gone.
        ``Fault``: a server died; it is gone (the capacity bound may break: the controller waits for new servers).
        ``Tick``: time passes.  ``Window``: a canary step's stats (ignored outside a canary step).

        Raises:
            TypeError: not an event.  TimeWentBackwardsError (a ValueError): ``at`` earlier than a time it saw.
            UnknownServerError (a KeyError): a server it never had.  ValueError: ``Drained`` for a server
            it did not drain (send ``Fault`` for a lost one).  Nothing changes.
        """
        ### BEGIN SOLUTION: validate first (type, time, server, status); then update the server and decide
        if not isinstance(event, (Ready, Drained, Fault, Tick, Window)):
            raise TypeError(f"event must be Ready, Drained, Fault, Tick or Window, got {type(event).__name__}")
        if event.at < self._now:
            raise TimeWentBackwardsError(f"event at {event.at} is earlier than {self._now}, a time this rollout already saw; "
                                         "feed events in time order")  # fmt: skip
        record = None
        if isinstance(event, (Ready, Drained, Fault)):
            record = self._lookup(event.server_id)
            if isinstance(event, Drained) and record[1] in ("starting", "ready"):
                raise ValueError(f"server {event.server_id!r} is {record[1]}: it was never drained; report a lost server with Fault")
        self._now = event.at
        out: list[Action] = []
        at = event.at
        if isinstance(event, Ready):
            assert record is not None
            if record[1] != "starting":
                self.log.append(Decision(at, None, f"{event.server_id} reported ready while {record[1]}: ignored"))
                return out
            record[1] = "ready"
            self._decide(at, out, f"{event.server_id} ({record[0]}) is ready")
        elif isinstance(event, Drained):
            assert record is not None
            if record[1] == "gone":
                self.log.append(Decision(at, None, f"{event.server_id} reported drained again: ignored"))
                return out
            record[1] = "gone"
            forced = f", {event.forced} requests ended by the drain timeout" if event.forced else ""
            self._decide(at, out, f"{event.server_id} ({record[0]}) drained{forced}")
        elif isinstance(event, Fault):
            assert record is not None
            if record[1] == "gone":
                self.log.append(Decision(at, None, f"fault on {event.server_id}, already gone: ignored"))
                return out
            was = record[1]
            record[1] = "gone"
            self.faults += 1
            self._decide(at, out, f"{event.server_id} ({record[0]}) failed while {was}")
        elif isinstance(event, Window):
            self._window(event, out)
        else:
            self._decide(at, out, "timer")
        return out
        ### END SOLUTION

    def rollback(self, at: float, reason: str) -> list[Action]:
        """Abandon the rollout: a rolling update back to the old version under the same bounds.

        Raises:
            TypeError / ValueError: bad time or reason; ValueError: the rollout is not running.
        """
        ### BEGIN SOLUTION: validate (running, time, reason); then roll back
        at = _at(at)
        reason = _name(reason, "reason")
        if self._state != "running":
            raise ValueError(f"the rollout is {self._state}: only a running rollout can be rolled back")
        if at < self._now:
            raise TimeWentBackwardsError(f"at {at} is earlier than {self._now}, a time this rollout already saw")
        self._now = at
        out: list[Action] = []
        self._rollback(at, reason, out)
        return out
        ### END SOLUTION

    def next_rollout(self, new_version: str, plan: RolloutPlan, now: float) -> RollingDeploy:
        """Start the next rollout on this fleet (its serving servers).

        Raises:
            RolloutInProgressError (a ValueError): this rollout still runs, or its servers still start or drain.
            TypeError / ValueError: as the constructor.
        """
        ### BEGIN SOLUTION: refuse while running or while servers start or drain; else a new controller over the serving fleet
        if self._state == "running":
            raise RolloutInProgressError(f"a rollout to {self.new_version!r} is still running on this fleet; "
                                         "wait for Done or roll it back before starting another")  # fmt: skip
        busy = [sid for sid, (_, s) in self._servers.items() if s in ("starting", "draining")]
        if busy:
            raise RolloutInProgressError(f"servers {busy[:3]} are still starting or draining; feed their Ready / Drained first")
        return RollingDeploy(self.serving(), new_version, plan, now)
        ### END SOLUTION

    ### BEGIN OMIT
    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for _, s in self._servers.values():
            counts[s] = counts.get(s, 0) + 1
        return f"<RollingDeploy {self.old_version}->{self.new_version} {self._state} {self._phase} {counts}>"

    def _lookup(self, server_id: object) -> list[str]:
        sid = _name(server_id, "server_id")
        record = self._servers.get(sid)
        if record is None:
            raise UnknownServerError(f"server {sid!r} is not part of this rollout; servers() lists them")
        return record

    def _act(self, at: float, action: Action, reason: str, out: list[Action]) -> None:
        self.log.append(Decision(at, action, reason))
        out.append(action)

    def _start(self, at: float, version: str, reason: str, out: list[Action]) -> None:
        while True:
            self._counter += 1
            sid = f"{version}-{self._counter}"
            if sid not in self._servers:
                break
        self._servers[sid] = [version, "starting"]
        self._act(at, Start(version, at, sid), reason, out)

    def _drain(self, at: float, sid: str, reason: str, out: list[Action]) -> None:
        self._servers[sid][1] = "draining"
        self._act(at, Drain(sid, at, self.plan.drain_timeout), reason, out)

    def _counts(self) -> tuple[int, int, int, int]:
        """(existing, ready, target live, target ready)."""
        existing = ready = live = target_ready = 0
        for version, status in self._servers.values():
            if status == "gone":
                continue
            existing += 1
            if status == "ready":
                ready += 1
            if version == self._target and status != "draining":
                live += 1
                target_ready += status == "ready"
        return existing, ready, live, target_ready

    def _decide(self, at: float, out: list[Action], why: str) -> None:
        before = len(out)
        if self._phase == "canary" and self._state == "running":
            self._canary(at, out, why)
        else:
            self._roll(at, out, why)
        if len(out) == before:
            self.log.append(Decision(at, None, f"{why}: nothing to do yet ({self._why_waiting()})"))

    def _why_waiting(self) -> str:
        existing, ready, live, target_ready = self._counts()
        return (f"{ready} ready (min {self.min_ready}), {existing} servers (max {self.max_servers}), "
                f"{target_ready}/{self.replicas} {self._target} ready")  # fmt: skip

    def _roll(self, at: float, out: list[Action], why: str) -> None:
        """One rolling step toward R ready servers of the target version."""
        existing, ready, live, target_ready = self._counts()
        old_ready = [sid for sid, (v, s) in self._servers.items() if s == "ready" and v != self._target]
        for sid in old_ready:
            if self.plan.prewarm:
                if ready - 1 < self.replicas:
                    break
                reason = f"{why}; {ready} ready > R={self.replicas}: drain {sid}, its replacement is warm"
            else:
                if ready - 1 < self.min_ready:
                    break
                reason = f"{why}; drain-first: drain {sid}, {ready - 1} ready stay >= {self.min_ready}"
            self._drain(at, sid, reason, out)
            ready -= 1
        while existing < self.max_servers and live < self.replicas:
            version = self._target
            self._start(at, version, f"{why}; {existing} servers < {self.max_servers} and {live}/{self.replicas} "
                                     f"{version} live: start one", out)  # fmt: skip
            existing += 1
            live += 1
        if self._state == "running":
            others = any(v != self._target and s != "gone" for v, s in self._servers.values())
            if not others and target_ready == self.replicas and live == self.replicas:
                self._state = "done"
                self._act(at, Done(at), f"{why}; every old server is gone and {self.replicas} {self._target} servers are ready", out)

    def _canary(self, at: float, out: list[Action], why: str) -> None:
        canary = self.plan.canary
        assert canary is not None
        while True:
            if self._step >= len(canary.steps) or canary.steps[self._step] >= 100:
                self._phase = "rolling"
                if self._split:
                    self._act(at, EndCanary(at), f"{why}; the canary passed every step: route by load across versions", out)
                    self._split = False
                self._roll(at, out, why)
                return
            percent = canary.steps[self._step]
            want = min(self.max_surge, max(1, math.ceil(self.replicas * percent / 100 - 1e-9)))
            existing, _, live, target_ready = self._counts()
            while live < want and existing < self.max_servers:
                self._start(at, self.new_version, f"{why}; canary step {percent}% needs {want} {self.new_version} servers", out)
                live += 1
                existing += 1
            if self._weight_at is None and target_ready >= want:
                self._weight = percent / 100
                self._weight_at = at
                self._due = at + canary.window
                self._split = True
                self._act(at, SetCanaryWeight(self._weight, at),
                          f"{why}; {target_ready} {self.new_version} servers ready: send {percent}% of the traffic", out)  # fmt: skip
            return

    def _window(self, event: Window, out: list[Action]) -> None:
        at = event.at
        if self._state != "running" or self._phase != "canary" or self._weight_at is None or self.analysis is None:
            self.log.append(Decision(at, None, "window outside a canary step: ignored"))
            return
        due = self._weight_at + self.analysis.plan.window
        if at < due:
            self.log.append(Decision(at, None, f"window at {at:g} before the step's window ends at {due:g}: ignored"))
            return
        verdict = self.analysis.judge(event.a, event.b)
        percent = self.analysis.plan.steps[self._step]
        if verdict.outcome == "hold":
            self._due = at + self.analysis.plan.window
            self.log.append(Decision(at, None, f"canary step {percent}%: hold until {self._due:g}: {verdict.reason}"))
        elif verdict.outcome == "rollback":
            self._rollback(at, f"canary step {percent}%: {verdict.reason}", out)
        else:
            self._step += 1
            self._weight_at = None
            self._decide(at, out, f"canary step {percent}% promoted: {verdict.reason}")

    def _rollback(self, at: float, reason: str, out: list[Action]) -> None:
        if self._split:
            self._weight, self._split = 0.0, False
            self._act(at, SetCanaryWeight(0.0, at), f"rollback: no traffic to {self.new_version}", out)
        self._state = "rolled_back"
        self._phase = "rolling"
        self._weight_at = None
        self._target = self.old_version
        self._act(at, RolledBack(at, reason), reason, out)
        for sid, (version, status) in self._servers.items():
            if version != self._target and status == "starting":
                self._drain(at, sid, f"rollback: {sid} never served; drain it", out)
        self._roll(at, out, "rollback")
    ### END OMIT


def _name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{what} must be a non-empty string")
    return value


def _at(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"now must be a number of seconds, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"now must be finite, got {value!r}")
    return float(value)


# --- the traffic split -----------------------------------------------------------


class CanarySplit(BaseStrategy):
    """A routing strategy that sends ``weight`` of the traffic to ``new_version`` (see the module's docstring).

    Args:
        inner: a strategy not yet attached to a router (e.g.
            ``LeastConnections()``; copied), or a strategy class / zero-argument
            factory: the split keeps one per version (and one over all
            servers, for after :meth:`end`).  It must choose from the
            servers its hooks fed it (an indexed strategy); one that reads the
            router's whole server list would mix the versions.
        weight: the share in [0, 1] sent to the new version.
        new_version: the version label (``ServerState.version``) of the new servers.
        excluded_tiers: tiers that never go to the new version.
        seed: keys the hash (a different seed, a different set of canary sessions).

    A decision is one hash (O(1)) and one inner decision.  If the new
    version has no free server, its request goes to the old version (the
    canary never costs availability; counted in :meth:`stats`); the other way
    never happens.

    Raises:
        TypeError / ValueError: ``inner`` not a strategy (or one already serving a router), weight outside [0, 1],
            bad names or seed.
    """

    name = "canary-split"

    def __init__(self, inner: Strategy | Callable[[], Strategy], *, weight: float = 0.0, new_version: str,
                 excluded_tiers: Sequence[str] = (), seed: int = 0) -> None:  # fmt: skip
        ### BEGIN SOLUTION: validate (an unattached strategy, copied, or a class / factory; weight; names; seed); build the inners; keep the hash key
        if not isinstance(inner, type) and isinstance(inner, Strategy):
            if getattr(inner, "router", None) is not None:
                raise ValueError(f"this {type(inner).__name__} already serves a Router; pass a new one (or its class)")
            self._inner = {side: copy.deepcopy(inner) for side in ("old", "new", "all")}
        elif callable(inner):
            self._inner = {side: inner() for side in ("old", "new", "all")}
        else:
            raise TypeError(f"inner must be a Strategy (or a strategy class) such as LeastConnections, got {type(inner).__name__}")
        for built in self._inner.values():
            if not isinstance(built, Strategy):
                raise TypeError(f"inner() must return a Strategy, got {type(built).__name__}")
        self.new_version = _name(new_version, "new_version")
        if isinstance(excluded_tiers, (str, bytes)):
            raise TypeError("excluded_tiers must be a sequence of tier names, e.g. ('premium',)")
        self.excluded_tiers = frozenset(_name(t, "excluded_tiers entry") for t in excluded_tiers)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        self._key = str(seed).encode()
        self._weight = 0.0
        self.set_weight(weight)
        self._ended = False
        self._counts = {"new": 0, "old": 0, "fallback": 0}
        ### END SOLUTION

    @property
    def weight(self) -> float:
        """The share of the non-excluded traffic sent to the new version."""
        ### BEGIN SOLUTION: the share last set (set_weight)
        return self._weight
        ### END SOLUTION

    @property
    def ended(self) -> bool:
        """True after :meth:`end`: every request routes across both versions by the inner rule."""
        ### BEGIN SOLUTION: True once end() was called
        return self._ended
        ### END SOLUTION

    def set_weight(self, weight: float) -> None:
        """Set the share (``SetCanaryWeight``); 0 sends everything to the old version.  O(1).

        Raises: TypeError / ValueError: not a number in [0, 1] (nothing changes).
        """
        ### BEGIN SOLUTION: validate; keep
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise TypeError(f"weight must be a number in [0, 1], got {type(weight).__name__}")
        if not 0 <= weight <= 1:
            raise ValueError(f"weight must be in [0, 1], got {weight!r}")
        self._weight = float(weight)
        ### END SOLUTION

    def end(self) -> None:
        """Stop splitting (``EndCanary``): route across every server by the inner rule."""
        ### BEGIN SOLUTION: mark ended
        self._ended = True
        ### END SOLUTION

    def side(self, request: Request) -> str:
        """``"new"`` or ``"old"``: where the split sends ``request`` (excluded tier -> old; else the hash).  O(1)."""
        ### BEGIN SOLUTION: excluded tier -> old; blake2b(session id or request id, key=seed) / 2**64 < weight -> new
        if request.tier is not None and request.tier in self.excluded_tiers:
            return "old"
        if self._weight <= 0:
            return "old"
        key = request.session_id if request.session_id is not None else request.request_id
        h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8, key=self._key).digest(), "big")
        return "new" if h / 2**64 < self._weight else "old"
        ### END SOLUTION

    def stats(self) -> dict[str, int]:
        """Decisions so far: ``new``, ``old`` and ``fallback`` (sent to old because the new version was full)."""
        ### BEGIN SOLUTION: a copy
        return dict(self._counts)
        ### END SOLUTION

    # -- the Strategy hooks ---------------------------------------------------------

    def attach(self, router: Router) -> None:
        """Bind to ``router`` and attach every inner strategy to it."""
        ### BEGIN SOLUTION: as BaseStrategy, then each inner
        super().attach(router)
        for inner in self._inner.values():
            inner.attach(router)
        ### END SOLUTION

    def server_added(self, server: ServerState) -> None:
        ### BEGIN SOLUTION: the all-inner and the version's inner
        self._inner["all"].server_added(server)
        self._of(server).server_added(server)
        ### END SOLUTION

    def server_changed(self, server: ServerState) -> None:
        ### BEGIN SOLUTION: the all-inner and the version's inner
        self._inner["all"].server_changed(server)
        self._of(server).server_changed(server)
        ### END SOLUTION

    def server_removed(self, server: ServerState) -> None:
        ### BEGIN SOLUTION: the all-inner and the version's inner
        self._inner["all"].server_removed(server)
        self._of(server).server_removed(server)
        ### END SOLUTION

    def observe(self, server: ServerState, seconds_per_token: float) -> None:
        ### BEGIN SOLUTION: the all-inner and the version's inner
        self._inner["all"].observe(server, seconds_per_token)
        self._of(server).observe(server, seconds_per_token)
        ### END SOLUTION

    def choose(self, request: Request) -> ServerState | None:
        """After :meth:`end`, the all-inner's choice; else the side's inner, the old one if the new is full."""
        ### BEGIN SOLUTION: ended -> all; else the side's inner; new and nothing free -> old (count a fallback)
        if self._ended:
            return self._inner["all"].choose(request)
        side = self.side(request)
        chosen = self._inner[side].choose(request)
        if chosen is None and side == "new":
            chosen = self._inner["old"].choose(request)
            if chosen is not None:
                self._counts["fallback"] += 1
                return chosen
        if chosen is not None:
            self._counts[side] += 1
        return chosen
        ### END SOLUTION

    def peek(self, request: Request) -> ServerState | None:
        """What :meth:`choose` would pick, without counting it."""
        ### BEGIN SOLUTION: as choose, without the counters
        if self._ended:
            return self._inner["all"].choose(request)
        side = self.side(request)
        chosen = self._inner[side].choose(request)
        return self._inner["old"].choose(request) if chosen is None and side == "new" else chosen
        ### END SOLUTION

    def explain(self, request: Request) -> Any:
        """The deciding inner's explanation."""
        ### BEGIN SOLUTION: delegate to the inner that decides
        if self._ended:
            return self._inner["all"].explain(request)
        return self._inner[self.side(request)].explain(request)
        ### END SOLUTION

    ### BEGIN OMIT
    def _of(self, server: ServerState) -> Any:
        return self._inner["new" if server.version == self.new_version else "old"]
    ### END OMIT
