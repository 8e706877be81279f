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

Every hook gets the request as a :class:`~solution.core.request.Request`:
``request.estimated_tokens`` is stage 1's single number (prompt plus expected
output), ``request.prompt_tokens`` the prompt's length when the caller knows
it (``None`` otherwise) and ``request.output_tokens`` the expected output.
The split matters: a prompt token is a share of one prefill iteration, an
output token a whole decode iteration, about a hundred times more
(:mod:`solution.core.latency`).

Scores are tuples, smaller is better; ``components`` names their entries
(``Router.explain`` shows them).  A server's ``load``,
``outstanding_tokens`` and ``outstanding_output_tokens`` are what the router
last saw; ``speed`` is its relative speed and ``model`` its
:class:`~solution.core.latency.LatencyModel`.

* :class:`PowerOfChoices`: the less loaded of d random servers.  O(d).
* :class:`WeightedResponseTime` / :class:`PeakEwma`: observed seconds per
  output token (an EWMA) times the requests in flight plus one.  O(log S).
* :class:`LeastOutstandingTokens`: fewest expected output tokens (decode
  iterations) in flight per unit of speed.  O(log S).
* :class:`Predictive`: the least predicted end-to-end latency in seconds,
  ``server.model.e2e(prompt, output, load)``.  O(K log S) for K distinct
  latency models.
"""

from __future__ import annotations

import random

from solution.core.latency import LatencyModel
from solution.core.request import Request
from solution.core.routing import BaseStrategy, HeapIndex, IndexedStrategy, ServerState, require_positive
from solution.core.validate import require_int

__all__ = ["PowerOfChoices", "WeightedResponseTime", "PeakEwma", "LeastOutstandingTokens", "Predictive"]

_SHIFT = 2**64


class PowerOfChoices(BaseStrategy):
    """Power of d choices: draw ``d`` eligible servers, take the lowest load ratio.

    Draw with ``self.router.sample(self.rng, self.d, request)``
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

    def choose(self, request: Request) -> ServerState | None:
        """The less loaded of the d servers drawn; None when no server is eligible.  O(d)."""
        ### BEGIN SOLUTION: draw with self.router.sample, return the lowest load_ratio_key (first drawn on a tie)
        picks = self.router.sample(self.rng, self.d, request)
        best = None
        for s in picks:
            if best is None or s.load_ratio_key < best.load_ratio_key:
                best = s
        return best
        ### END SOLUTION

    def score(self, server: ServerState, request: Request) -> tuple[float, ...]:
        """``(load / capacity,)``."""
        ### BEGIN SOLUTION: a one-element tuple: the load ratio as a float
        return (server.load_ratio_key / _SHIFT,)
        ### END SOLUTION

    def considered(self, request: Request) -> tuple[list[ServerState], str]:
        """For explanations: the servers the next decision would draw (the draw is undone)."""
        saved = self.rng.getstate()
        try:
            return self.router.sample(self.rng, self.d, request), "sampled"
        finally:
            self.rng.setstate(saved)


class WeightedResponseTime(IndexedStrategy):
    """Observed speed times queue: ``cost * (load + 1)``, lowest first (Linkerd's EWMA load).

    ``cost`` is an exponentially weighted moving average of the seconds per
    expected output token that ``Router.observe`` reports for the server
    (a request's latency over its decode iterations):
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

    def score(self, server: ServerState, request: Request) -> tuple[float, ...]:
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
    """Fewest expected output tokens in flight per unit of speed: ``outstanding_output_tokens / speed``.

    An output token costs one decode iteration; a prompt token a small share
    of one (chunked prefill).  So the rule counts what the server still has
    to *decode*: ``server.outstanding_output_tokens`` (the expected output
    tokens of its requests; the whole estimate of a request routed without
    ``prompt_tokens``).  Score: ``(outstanding_output_tokens / speed,
    load / capacity)``; the router's
    :class:`~solution.core.routing.HeapIndex` keeps servers by it, so a
    decision does not scan.

    What the count hides: prompts (a 4,000-token prompt costs about eight
    iterations of prefill, not nothing); that a batch decodes its sequences
    *together* (ten requests of 100 tokens take about 100 iterations, not
    1,000: the count is work, not time to drain); that an iteration slows as
    the batch grows; tokens already generated (the router learns nothing
    until a completion, so the count is the estimate at routing time); and
    the request's own size.

    **Cost:** O(log S) per decision and per completion.
    **Weak spot:** trusts the output-length estimates (a guess; notebook 03
    measures how good one can be), and a long request may land on a slow
    server that happens to be empty.
    """

    name = "least-outstanding-tokens"
    components = ("output tokens / speed", "load ratio")

    def __init__(self) -> None:
        ### BEGIN SOLUTION: nothing to set up (the index comes from IndexedStrategy.attach); just return
        return
        ### END SOLUTION

    def score(self, server: ServerState, request: Request) -> tuple[float, ...]:
        """``(outstanding_output_tokens / speed, load / capacity)``."""
        ### BEGIN SOLUTION: both from the server's read-only properties
        return (server.outstanding_output_tokens / server.speed, server.load_ratio_key / _SHIFT)
        ### END SOLUTION


class Predictive(BaseStrategy):
    """Join the shortest expected delay, in seconds: ``server.model.e2e(prompt, output, load)``.

    With continuous batching a request does not wait *behind* the tokens a
    server already has: it joins the batch at once (late binding) and every
    sequence, its own included, then runs one token per iteration of a batch
    one larger.  So the predicted end-to-end latency on a server is its
    :class:`~solution.core.latency.LatencyModel`'s
    ``e2e(prompt_tokens, output_tokens, load)`` with ``load`` the requests in
    flight there (``prompt_tokens`` is 0 when the caller gave only the
    total: every token is then priced as an output token).  A long answer
    prefers a fast GPU even when a slow one is emptier; a long prompt with a
    short answer is cheap everywhere.  Score: ``(seconds, load)``; the lowest
    wins, then the fewer requests in flight, then the server added first.

    Because the score depends on the request, one heap cannot hold the
    answer; but servers sharing a latency model rank by load alone (more
    sequences never make an iteration faster), so keep one
    :class:`~solution.core.routing.HeapIndex` per distinct model
    (``self.by_model``, keyed by ``(load,)``) and compare each one's best.

    **Cost:** O(K log S) per decision for K distinct latency models (GPU
    types, a handful in practice); a plain scan would be O(S).
    **Weak spot:** as good as its inputs: the output-length estimate, the
    latency model of each GPU, and the batch held at its current size (it
    does not foresee arrivals or completions; with early binding, requests
    beyond the batch wait, which the model does not price).
    """

    name = "predictive"
    components = ("expected seconds", "load")

    def __init__(self) -> None:
        ### BEGIN SOLUTION: self.by_model = {} (LatencyModel -> HeapIndex keyed by (load,))
        self.by_model: dict[LatencyModel, HeapIndex] = {}
        ### END SOLUTION

    def expected_seconds(self, server: ServerState, request: Request) -> float:
        """``server.model.e2e(prompt_tokens or 0, output_tokens, server.load)``."""
        ### BEGIN SOLUTION: the server's latency model, the request's split, the requests in flight
        return server.model.e2e(request.prompt_tokens or 0, request.output_tokens, server.load)
        ### END SOLUTION

    def server_changed(self, server: ServerState) -> None:
        """Re-key the server in its model's index (drop it when not ``router.available``).  O(log S)."""
        ### BEGIN SOLUTION: self.by_model.setdefault(server.model, HeapIndex(...)).update(server, self.router.available(server))
        index = self.by_model.get(server.model)
        if index is None:
            index = self.by_model[server.model] = HeapIndex(lambda s: (s.load,))
        index.update(server, self.router.available(server))
        ### END SOLUTION

    def server_removed(self, server: ServerState) -> None:
        """Forget the server.  O(1)."""
        ### BEGIN SOLUTION: remove it from its model's index
        self.by_model[server.model].remove(server)
        ### END SOLUTION

    def choose(self, request: Request) -> ServerState | None:
        """The least ``(expected seconds, load, order)`` among each model's best.  O(K log S)."""
        ### BEGIN SOLUTION: best per model with index.best(self.router.is_large(request)); compare (seconds, load, order)
        large = self.router.is_large(request)
        best, best_key = None, None
        for index in self.by_model.values():
            s = index.best(large)
            if s is not None:
                key = (self.expected_seconds(s, request), s.load, s.order)
                if best_key is None or key < best_key:
                    best, best_key = s, key
        return best
        ### END SOLUTION

    def score(self, server: ServerState, request: Request) -> tuple[float, ...]:
        """``(expected seconds, load)``."""
        ### BEGIN SOLUTION: a two-element tuple
        return (self.expected_seconds(server, request), server.load)
        ### END SOLUTION
