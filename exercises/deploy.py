# Generated from solution/deploy.py by tools/make_exercises.py (`make exercises`).
# Stage 7: fill in every body that raises NotImplementedError; notebooks/07_drain_and_rollouts.ipynb explains the task.
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
    # TODO: parse the bound (int or "N%"), check replicas; a percent -> ceil(replicas * N / 100) in integers
    raise NotImplementedError("Stage 7: resolve_surge is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")


def resolve_unavailable(value: Bound, replicas: int) -> int:
    """``max_unavailable`` as a number of servers: an int as given, a percent of ``replicas`` rounded **down**.  O(1).

    >>> resolve_unavailable("25%", 10), resolve_unavailable("25%", 3), resolve_unavailable(1, 10)
    (2, 0, 1)

    Raises:
        TypeError / ValueError: not an int >= 0 or a whole percent in 0-100; ``replicas`` not an int >= 1.
    """
    # TODO: parse the bound, check replicas; a percent -> floor(replicas * N / 100) in integers
    raise NotImplementedError("Stage 7: resolve_unavailable is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")


# --- the canary's statistics ---------------------------------------------------


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(x_b: int, n_b: int, x_a: int, n_a: int) -> float:
    """One-sided Fisher exact p-value that B's error rate exceeds A's: ``P(X >= x_b)``, ``X ~ Hypergeom(N, K, n_b)``.

    O(min(K, n_b)) terms, summed in log space.

    >>> round(fisher_greater(10, 100, 0, 100), 6)
    0.000771
    """
    # TODO: K = x_a + x_b, N = n_a + n_b; no errors -> 1.0; sum C(K,k) C(N-K, n_b-k) / C(N, n_b) for k from x_b to min(K, n_b)
    raise NotImplementedError("Stage 7: fisher_greater is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")


def mann_whitney_greater(b: Sequence[float], a: Sequence[float]) -> float:
    """One-sided Mann-Whitney U p-value that ``b`` is stochastically larger than ``a``.

    Normal approximation, tie correction, continuity correction 0.5 (see the
    module's docstring).  O(N log N) for N samples; 1.0 when either is empty or
    every sample is tied.
    """
    # TODO: average ranks of the pooled sample; U_b from B's rank sum; tie-corrected variance; z with -0.5; p = erfc(z / sqrt 2) / 2
    raise NotImplementedError("Stage 7: mann_whitney_greater is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")


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
        # TODO: check the type; keep the plan
        raise NotImplementedError("Stage 7: CanaryAnalysis.__init__ is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def level(self) -> float:
        """The per-metric test level ``alpha / m`` (Bonferroni)."""
        # TODO: alpha over the number of metrics
        raise NotImplementedError("Stage 7: CanaryAnalysis.level is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def nominal_false_rollback(self, steps: int | None = None) -> float:
        """The nominal false-rollback rate of a whole canary: ``1 - (1 - alpha)^k``.

        ``k`` = ``steps``, default the number of judged steps (those below 100).
        """
        # TODO: k judged steps (steps below 100 unless given); 1 - (1 - alpha) ** k
        raise NotImplementedError("Stage 7: CanaryAnalysis.nominal_false_rollback is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def judge(self, a: VersionStats, b: VersionStats) -> Verdict:
        """A's (stable) and B's (new) stats of one step -> a :class:`Verdict` naming the test and the numbers."""
        # TODO: validate; hold for too little data (no test run); test each metric at alpha / m; rollback if any p < level, else promote
        raise NotImplementedError("Stage 7: CanaryAnalysis.judge is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")


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
        # TODO: validate everything first; resolve the bounds (both 0, prewarm or canary without surge -> ValueError); record the fleet; plan the first actions (canary step 0, or the rolling update)
        raise NotImplementedError("Stage 7: RollingDeploy.__init__ is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    # -- reading ----------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"running"``, ``"done"`` (every old server gone, R new ones ready) or ``"rolled_back"``."""
        # TODO: running while events remain to decide, done once R new servers serve and no old one is left, rolled_back after a rollback
        raise NotImplementedError("Stage 7: RollingDeploy.state is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    @property
    def min_ready(self) -> int:
        """``R - max_unavailable``: the controller never drains below this many ready servers."""
        # TODO: replicas minus the resolved bound
        raise NotImplementedError("Stage 7: RollingDeploy.min_ready is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    @property
    def max_servers(self) -> int:
        """``R + max_surge``: at most this many servers exist (starting, ready or draining)."""
        # TODO: replicas plus the resolved surge
        raise NotImplementedError("Stage 7: RollingDeploy.max_servers is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    @property
    def weight(self) -> float:
        """The canary traffic share last set (0.0 when none is in force)."""
        # TODO: the share of the last SetCanaryWeight (0.0 before any and after a rollback)
        raise NotImplementedError("Stage 7: RollingDeploy.weight is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def status(self, server_id: str) -> str:
        """``"starting"``, ``"ready"``, ``"draining"`` or ``"gone"``; UnknownServerError for an id it never had."""
        # TODO: look it up
        raise NotImplementedError("Stage 7: RollingDeploy.status is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def servers(self) -> dict[str, tuple[str, str]]:
        """Every server it ever had: ``{server_id: (version, status)}``, in order of addition.  O(servers)."""
        # TODO: a copy
        raise NotImplementedError("Stage 7: RollingDeploy.servers is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def serving(self) -> list[tuple[str, str]]:
        """The ready servers as ``(server_id, version)``.  O(servers)."""
        # TODO: those whose status is ready
        raise NotImplementedError("Stage 7: RollingDeploy.serving is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def next_event_time(self) -> float | None:
        """When the current canary step's next ``Window`` is due, or None.

        ``window`` seconds after the step's weight was set; after a ``hold``, ``window`` seconds after that
        window (so a caller that schedules by this time never asks twice at the same moment).
        """
        # TODO: the step's weight time plus the window, while a canary step waits for its judgement
        raise NotImplementedError("Stage 7: RollingDeploy.next_event_time is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

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
        # TODO: validate first (type, time, server, status); then update the server and decide
        raise NotImplementedError("Stage 7: RollingDeploy.on is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def rollback(self, at: float, reason: str) -> list[Action]:
        """Abandon the rollout: a rolling update back to the old version under the same bounds.

        Raises:
            TypeError / ValueError: bad time or reason; ValueError: the rollout is not running.
        """
        # TODO: validate (running, time, reason); then roll back
        raise NotImplementedError("Stage 7: RollingDeploy.rollback is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def next_rollout(self, new_version: str, plan: RolloutPlan, now: float) -> RollingDeploy:
        """Start the next rollout on this fleet (its serving servers).

        Raises:
            RolloutInProgressError (a ValueError): this rollout still runs, or its servers still start or drain.
            TypeError / ValueError: as the constructor.
        """
        # TODO: refuse while running or while servers start or drain; else a new controller over the serving fleet
        raise NotImplementedError("Stage 7: RollingDeploy.next_rollout is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")


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
        # TODO: validate (an unattached strategy, copied, or a class / factory; weight; names; seed); build the inners; keep the hash key
        raise NotImplementedError("Stage 7: CanarySplit.__init__ is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    @property
    def weight(self) -> float:
        """The share of the non-excluded traffic sent to the new version."""
        # TODO: the share last set (set_weight)
        raise NotImplementedError("Stage 7: CanarySplit.weight is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    @property
    def ended(self) -> bool:
        """True after :meth:`end`: every request routes across both versions by the inner rule."""
        # TODO: True once end() was called
        raise NotImplementedError("Stage 7: CanarySplit.ended is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def set_weight(self, weight: float) -> None:
        """Set the share (``SetCanaryWeight``); 0 sends everything to the old version.  O(1).

        Raises: TypeError / ValueError: not a number in [0, 1] (nothing changes).
        """
        # TODO: validate; keep
        raise NotImplementedError("Stage 7: CanarySplit.set_weight is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def end(self) -> None:
        """Stop splitting (``EndCanary``): route across every server by the inner rule."""
        # TODO: mark ended
        raise NotImplementedError("Stage 7: CanarySplit.end is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def side(self, request: Request) -> str:
        """``"new"`` or ``"old"``: where the split sends ``request`` (excluded tier -> old; else the hash).  O(1)."""
        # TODO: excluded tier -> old; blake2b(session id or request id, key=seed) / 2**64 < weight -> new
        raise NotImplementedError("Stage 7: CanarySplit.side is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def stats(self) -> dict[str, int]:
        """Decisions so far: ``new``, ``old`` and ``fallback`` (sent to old because the new version was full)."""
        # TODO: a copy
        raise NotImplementedError("Stage 7: CanarySplit.stats is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    # -- the Strategy hooks ---------------------------------------------------------

    def attach(self, router: Router) -> None:
        """Bind to ``router`` and attach every inner strategy to it."""
        # TODO: as BaseStrategy, then each inner
        raise NotImplementedError("Stage 7: CanarySplit.attach is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def server_added(self, server: ServerState) -> None:
        # TODO: the all-inner and the version's inner
        raise NotImplementedError("Stage 7: CanarySplit.server_added is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def server_changed(self, server: ServerState) -> None:
        # TODO: the all-inner and the version's inner
        raise NotImplementedError("Stage 7: CanarySplit.server_changed is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def server_removed(self, server: ServerState) -> None:
        # TODO: the all-inner and the version's inner
        raise NotImplementedError("Stage 7: CanarySplit.server_removed is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def observe(self, server: ServerState, seconds_per_token: float) -> None:
        # TODO: the all-inner and the version's inner
        raise NotImplementedError("Stage 7: CanarySplit.observe is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def choose(self, request: Request) -> ServerState | None:
        """After :meth:`end`, the all-inner's choice; else the side's inner, the old one if the new is full."""
        # TODO: ended -> all; else the side's inner; new and nothing free -> old (count a fallback)
        raise NotImplementedError("Stage 7: CanarySplit.choose is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def peek(self, request: Request) -> ServerState | None:
        """What :meth:`choose` would pick, without counting it."""
        # TODO: as choose, without the counters
        raise NotImplementedError("Stage 7: CanarySplit.peek is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

    def explain(self, request: Request) -> Any:
        """The deciding inner's explanation."""
        # TODO: delegate to the inner that decides
        raise NotImplementedError("Stage 7: CanarySplit.explain is not implemented yet; see notebooks/07_drain_and_rollouts.ipynb")

