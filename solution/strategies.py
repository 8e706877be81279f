"""Stage 3: routing strategies for requests whose costs differ a hundredfold.

Each class is a strategy for :class:`solution.core.routing.Router`, which keeps
the bookkeeping and calls the strategy's hooks (see
:class:`solution.core.routing.Strategy`)::

    >>> from solution.core.routing import Router
    >>> lb = Router(PowerOfChoices(d=2, seed=1))
    >>> for sid in ("a", "b", "c"):
    ...     lb.add_server(sid, 4, 80)
    >>> lb.route_request("r1", 100) in {"a", "b", "c"}
    True

Scores are tuples, smaller is better; ``components`` names their entries
(``Router.explain`` shows them).  A server's ``load`` and
``outstanding_tokens`` are what the router last saw; ``speed`` is its
relative speed.

* :class:`PowerOfChoices`: the less loaded of d random servers.  O(d).
* :class:`WeightedResponseTime` / :class:`PeakEwma`: observed seconds per
  token (an EWMA) times the requests in flight plus one.  O(log S).
* :class:`LeastOutstandingTokens`: fewest estimated tokens in flight per unit
  of speed.  O(log S).
* :class:`Predictive`: join the shortest expected delay, the tokens ahead
  plus this request's own, over the server's speed.  O(K log S) for K
  distinct speeds.
"""

from __future__ import annotations

import random

from solution.core.routing import BaseStrategy, HeapIndex, IndexedStrategy, ServerState, require_positive
from solution.core.validate import require_int

__all__ = ["PowerOfChoices", "WeightedResponseTime", "PeakEwma", "LeastOutstandingTokens", "Predictive"]

_SHIFT = 2**64


class PowerOfChoices(BaseStrategy):
    """Power of d choices: draw ``d`` eligible servers, take the lowest load ratio.

    Draw with ``self.router.sample(self.rng, self.d, estimated_tokens)``
    (it returns up to d distinct eligible servers); pick the one with the
    lowest ``load / capacity`` (use ``server.load_ratio_key``, exact); on a
    tie, the one drawn first.  With d = 1 it is random choice; with d = S it
    is least-connections.

    **Cost:** O(d) per decision, whatever the number of servers: no index,
    no global state, so many balancer replicas can run it independently.
    **Weak spot:** counts requests, not tokens, and sees only d servers: it
    avoids the worst servers rather than finding the best one.

    Args:
        d: servers to compare, an int >= 1 (default 2).
        seed: seeds ``self.rng = random.Random(seed)``, an int >= 0.
    """

    name = "power-of-d"
    components = ("load ratio",)

    def __init__(self, d: int = 2, seed: int = 0) -> None:
        ### BEGIN SOLUTION: validate d and seed (require_int), keep d, and make self.rng = random.Random(seed)
        self.d = require_int(d, "d")
        self.seed = require_int(seed, "seed", minimum=0)
        self.rng = random.Random(seed)
        ### END SOLUTION

    def choose(self, estimated_tokens: int) -> ServerState | None:
        """The less loaded of the d servers drawn; None when no server is eligible.  O(d)."""
        ### BEGIN SOLUTION: draw with self.router.sample, return the lowest load_ratio_key (first drawn on a tie)
        picks = self.router.sample(self.rng, self.d, estimated_tokens)
        best = None
        for s in picks:
            if best is None or s.load_ratio_key < best.load_ratio_key:
                best = s
        return best
        ### END SOLUTION

    def score(self, server: ServerState, estimated_tokens: int) -> tuple[float, ...]:
        """``(load / capacity,)``."""
        ### BEGIN SOLUTION: a one-element tuple: the load ratio as a float
        return (server.load_ratio_key / _SHIFT,)
        ### END SOLUTION

    def considered(self, estimated_tokens: int) -> tuple[list[ServerState], str]:
        """For explanations: the servers the next decision would draw (the draw is undone)."""
        saved = self.rng.getstate()
        try:
            return self.router.sample(self.rng, self.d, estimated_tokens), "sampled"
        finally:
            self.rng.setstate(saved)


class WeightedResponseTime(IndexedStrategy):
    """Observed speed times queue: ``cost * (load + 1)``, lowest first (Linkerd's EWMA load).

    ``cost`` is an exponentially weighted moving average of the seconds per
    token that ``Router.observe`` reports for the server:
    ``cost += alpha * (observed - cost)``, starting at the first observation;
    a server never observed has cost 0.  Score: ``(cost * (load + 1),
    load / capacity)`` (the second breaks ties, so before any feedback it
    behaves like least-connections).  Keep costs in ``self.cost`` (a dict
    keyed by ``server.order``), and call ``self.server_changed(server)``
    after changing one so the index re-keys it.

    **Cost:** O(log S) per decision and per observation (heap index).
    **Weak spot:** it learns from the past: it needs feedback, reacts one
    latency late, and a server that just got fast or slow is mispriced until
    observations arrive; unobserved servers look free.

    Args:
        alpha: the EWMA's weight of a new observation, in (0, 1] (default 0.3).
    """

    name = "weighted-response-time"
    components = ("cost x (load+1)", "load ratio")

    def __init__(self, alpha: float = 0.3) -> None:
        ### BEGIN SOLUTION: validate alpha (0 < alpha <= 1, else ValueError; TypeError if not a number); self.cost = {}
        self.alpha = require_positive(alpha, "alpha")
        if self.alpha > 1:
            raise ValueError(f"alpha must be at most 1, got {alpha!r}")
        self.cost: dict[int, float] = {}
        ### END SOLUTION

    def observe(self, server: ServerState, seconds_per_token: float) -> None:
        """Fold an observation into the server's EWMA and re-key it.  O(log S)."""
        ### BEGIN SOLUTION: update self.cost[server.order] (the first observation sets it), then self.server_changed(server)
        old = self.cost.get(server.order)
        self.cost[server.order] = seconds_per_token if old is None else self._update(old, seconds_per_token)
        self.server_changed(server)
        ### END SOLUTION

    def score(self, server: ServerState, estimated_tokens: int) -> tuple[float, ...]:
        """``(cost * (load + 1), load / capacity)``."""
        ### BEGIN SOLUTION: cost from self.cost (0.0 if never observed)
        return (self.cost.get(server.order, 0.0) * (server.load + 1), server.load_ratio_key / _SHIFT)
        ### END SOLUTION

    def server_removed(self, server: ServerState) -> None:
        """Forget the server and its cost.  O(1)."""
        super().server_removed(server)
        self.cost.pop(server.order, None)

    ### BEGIN OMIT
    def _update(self, old: float, new: float) -> float:
        return old + self.alpha * (new - old)

    ### END OMIT


class PeakEwma(WeightedResponseTime):
    """Weighted response time whose cost jumps up at once and decays slowly (Linkerd's peak-EWMA).

    An observation above the current cost replaces it; one below moves it by
    ``alpha`` as in :class:`WeightedResponseTime`.  So a server that turns
    slow is avoided after one bad answer.

    **Cost:** O(log S).  **Weak spot:** one unlucky long request makes a
    healthy server look slow until the cost decays.
    """

    name = "peak-ewma"

    def observe(self, server: ServerState, seconds_per_token: float) -> None:
        """Peak-sensitive update, then re-key.  O(log S)."""
        ### BEGIN SOLUTION: above the old cost: take it at once; else decay as WeightedResponseTime does
        old = self.cost.get(server.order)
        self.cost[server.order] = seconds_per_token if old is None or seconds_per_token > old else self._update(old, seconds_per_token)
        self.server_changed(server)
        ### END SOLUTION


class LeastOutstandingTokens(IndexedStrategy):
    """Fewest estimated tokens in flight per unit of speed: ``outstanding_tokens / speed``.

    Score: ``(outstanding_tokens / speed, load / capacity)``; the router's
    :class:`~solution.core.routing.HeapIndex` keeps servers by it, so a decision
    does not scan.

    **Cost:** O(log S) per decision and per completion.
    **Weak spot:** trusts the token estimates (an output length is a guess),
    and ignores the request's own size: a long request may land on a slow
    server that happens to be empty.
    """

    name = "least-outstanding-tokens"
    components = ("tokens / speed", "load ratio")

    def __init__(self) -> None:
        ### BEGIN SOLUTION: nothing to set up (the index comes from IndexedStrategy.attach); just return
        return
        ### END SOLUTION

    def score(self, server: ServerState, estimated_tokens: int) -> tuple[float, ...]:
        """``(outstanding_tokens / speed, load / capacity)``."""
        ### BEGIN SOLUTION: both from the server's read-only properties
        return (server.outstanding_tokens / server.speed, server.load_ratio_key / _SHIFT)
        ### END SOLUTION


class Predictive(BaseStrategy):
    """Join the shortest expected delay: ``(outstanding_tokens + estimated_tokens) / speed``.

    The expected time to finish this request on a server is the work
    already there plus its own, over the server's speed: a long request
    prefers a fast GPU even when a slow one is emptier.  The least expected
    delay wins; on a tie, the server added first.

    Because the score depends on the request, one heap cannot hold the
    answer; but among servers of equal speed the fewest outstanding tokens
    wins, so keep one :class:`~solution.core.routing.HeapIndex` per distinct speed
    (``self.by_speed``, keyed by ``(outstanding_tokens,)``) and compare
    each class's best.

    **Cost:** O(K log S) per decision for K distinct speeds (GPU types, a
    handful in practice); a plain scan would be O(S).  **Weak spot:** as good
    as the estimates and the speed hints: a wrong speed or a biased length
    predictor steers traffic wrongly and steadily.
    """

    name = "predictive"
    components = ("expected delay",)

    def __init__(self) -> None:
        ### BEGIN SOLUTION: self.by_speed = {} (speed -> HeapIndex keyed by outstanding tokens)
        self.by_speed: dict[float, HeapIndex] = {}
        ### END SOLUTION

    def expected_delay(self, server: ServerState, estimated_tokens: int) -> float:
        """``(server.outstanding_tokens + estimated_tokens) / server.speed``."""
        ### BEGIN SOLUTION: tokens ahead plus its own, over the speed
        return (server.outstanding_tokens + estimated_tokens) / server.speed
        ### END SOLUTION

    def server_changed(self, server: ServerState) -> None:
        """Re-key the server in its speed class (drop it when not ``router.available``).  O(log S)."""
        ### BEGIN SOLUTION: self.by_speed.setdefault(server.speed, HeapIndex(...)).update(server, self.router.available(server))
        index = self.by_speed.get(server.speed)
        if index is None:
            index = self.by_speed[server.speed] = HeapIndex(lambda s: (s.outstanding_tokens,))
        index.update(server, self.router.available(server))
        ### END SOLUTION

    def server_removed(self, server: ServerState) -> None:
        """Forget the server.  O(1)."""
        ### BEGIN SOLUTION: remove it from its speed class's index
        self.by_speed[server.speed].remove(server)
        ### END SOLUTION

    def choose(self, estimated_tokens: int) -> ServerState | None:
        """The least expected delay (then added first) among each speed class's best.  O(K log S)."""
        ### BEGIN SOLUTION: best per class with index.best(self.router.is_large(...)); compare (expected_delay, order)
        large = self.router.is_large(estimated_tokens)
        best, best_key = None, None
        for index in self.by_speed.values():
            s = index.best(large)
            if s is not None:
                key = (self.expected_delay(s, estimated_tokens), s.order)
                if best_key is None or key < best_key:
                    best, best_key = s, key
        return best
        ### END SOLUTION

    def score(self, server: ServerState, estimated_tokens: int) -> tuple[float, ...]:
        """``(expected delay,)``."""
        ### BEGIN SOLUTION: a one-element tuple
        return (self.expected_delay(server, estimated_tokens),)
        ### END SOLUTION
