"""Workloads: when requests arrive and how many tokens they carry.

A workload *spec* (:class:`Workload`, or :class:`solution.sim.trace.TraceWorkload`)
is a small frozen description; ``generate`` turns it into :class:`Requests`,
one numpy array per field, from seeded random streams.

* Arrivals: :class:`Poisson`, or :class:`OnOff` bursts (a two-state
  Markov-modulated Poisson process).
* Token counts: :class:`Fixed`, :class:`LogNormal`, :class:`Bimodal`,
  :class:`Pareto` (heavy-tailed), per :class:`Tier` (a mix of traffic classes).
* How well the output length can be predicted: :func:`output_predictability`
  measures it on a trace, :data:`OUTPUT_ESTIMATE_SIGMA` is its value on the
  Azure conversation trace (what :func:`solution.sim.race.heterogeneous` uses).
* :class:`Sessions`: multi-turn conversations.  A session's first turn
  arrives from the arrival process; every later turn is sent ``think`` seconds
  after the previous turn *ended* (whatever its outcome), so its arrival time
  is only known while simulating (``NaN`` in :attr:`Requests.arrival`).  Each
  turn's prompt is the whole conversation so far plus the new user message.
  Each request also carries its session key (what session affinity routes
  on) and the hashes of its prompt's 512-token prefix blocks (what a KV
  prefix cache matches: :mod:`solution.sim.kvcache`), as the Mooncake trace
  gives them (:mod:`solution.sim.mooncake`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from solution.sim.validate import require_number
from solution.core.validate import require_int

__all__ = [
    "Fixed",
    "LogNormal",
    "Bimodal",
    "Pareto",
    "TokenDist",
    "Poisson",
    "OnOff",
    "ArrivalProcess",
    "Tier",
    "Sessions",
    "Workload",
    "Requests",
    "OUTPUT_ESTIMATE_SIGMA",
    "OutputPredictability",
    "output_predictability",
    "block_hashes",
]


# -- token-count distributions ---------------------------------------------


@dataclass(frozen=True)
class Fixed:
    """Always ``tokens`` tokens."""

    tokens: int

    def __post_init__(self) -> None:
        require_int(self.tokens, "tokens", minimum=0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.tokens, dtype=np.int64)


@dataclass(frozen=True)
class LogNormal:
    """``round(exp(N(log median, sigma)))``, clipped to ``[low, high]``.

    The usual shape of prompt and output lengths: most are short, some long.
    """

    median: float
    sigma: float = 1.0
    low: int = 1
    high: int = 32768

    def __post_init__(self) -> None:
        require_number(self.median, "median")
        require_number(self.sigma, "sigma", strict=False)
        require_int(self.low, "low", minimum=0)
        require_int(self.high, "high", minimum=max(self.low, 1))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raw = rng.lognormal(math.log(self.median), self.sigma, n)
        return np.clip(np.rint(raw), self.low, self.high).astype(np.int64)


@dataclass(frozen=True)
class Bimodal:
    """A mixture: ``long`` with probability ``long_share``, else ``short``."""

    short: TokenDist
    long: TokenDist
    long_share: float = 0.2

    def __post_init__(self) -> None:
        share = require_number(self.long_share, "long_share", strict=False)
        if share > 1:
            raise ValueError(f"long_share must be at most 1, got {share}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        is_long = rng.random(n) < self.long_share
        return np.where(is_long, self.long.sample(rng, n), self.short.sample(rng, n))


@dataclass(frozen=True)
class Pareto:
    """Heavy-tailed: ``minimum * U^(-1/alpha)`` rounded, clipped at ``high``.

    With ``alpha`` <= 2 the variance is infinite before clipping: a few
    requests carry a large share of all tokens.
    """

    minimum: int
    alpha: float = 1.5
    high: int = 32768

    def __post_init__(self) -> None:
        require_int(self.minimum, "minimum")
        require_number(self.alpha, "alpha")
        require_int(self.high, "high", minimum=self.minimum)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raw = self.minimum * (1.0 + rng.pareto(self.alpha, n))
        return np.minimum(np.rint(raw), self.high).astype(np.int64)


TokenDist = Fixed | LogNormal | Bimodal | Pareto


# -- arrival processes -----------------------------------------------------


@dataclass(frozen=True)
class Poisson:
    """Independent exponential gaps with mean ``1 / rate`` (requests per second)."""

    rate: float = 1.0

    def __post_init__(self) -> None:
        require_number(self.rate, "rate")

    @property
    def mean_rate(self) -> float:
        return self.rate

    def with_mean_rate(self, rate: float) -> Poisson:
        return Poisson(rate)

    def times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` sorted arrival times from 0.  O(n), vectorized."""
        return np.cumsum(rng.exponential(1.0 / self.rate, n))


@dataclass(frozen=True)
class OnOff:
    """Bursts: a two-state Markov-modulated Poisson process.

    The process alternates between *on* periods (exponential, mean
    ``mean_on`` seconds, arrivals at ``rate_on``) and *off* periods (mean
    ``mean_off``, rate ``rate_off``, which may be 0).  It starts in its
    stationary state.  Given a period's length, its arrivals are a Poisson
    count placed uniformly, which is exact.
    """

    rate_on: float
    rate_off: float = 0.0
    mean_on: float = 10.0
    mean_off: float = 30.0

    def __post_init__(self) -> None:
        require_number(self.rate_on, "rate_on")
        require_number(self.rate_off, "rate_off", strict=False)
        require_number(self.mean_on, "mean_on")
        require_number(self.mean_off, "mean_off")

    @property
    def mean_rate(self) -> float:
        return (self.rate_on * self.mean_on + self.rate_off * self.mean_off) / (self.mean_on + self.mean_off)

    def with_mean_rate(self, rate: float) -> OnOff:
        """The same burst shape scaled to a mean of ``rate`` requests per second."""
        factor = require_number(rate, "rate") / self.mean_rate
        return replace(self, rate_on=self.rate_on * factor, rate_off=self.rate_off * factor)

    def times(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` sorted arrival times from 0.  O(n + periods), vectorized per block of periods."""
        on = rng.random() < self.mean_on / (self.mean_on + self.mean_off)
        per_cycle = self.rate_on * self.mean_on + self.rate_off * self.mean_off
        chunks: list[np.ndarray] = []
        have, start = 0, 0.0
        while have < n:
            pairs = int((n - have) / per_cycle) + 16
            means = np.tile([self.mean_on, self.mean_off] if on else [self.mean_off, self.mean_on], pairs)
            rates = np.tile([self.rate_on, self.rate_off] if on else [self.rate_off, self.rate_on], pairs)
            lengths = rng.exponential(means)
            begins = start + np.cumsum(lengths) - lengths
            counts = rng.poisson(rates * lengths)
            offsets = rng.random(int(counts.sum())) * np.repeat(lengths, counts)
            chunks.append(np.sort(np.repeat(begins, counts) + offsets))
            have += len(chunks[-1])
            start = float(begins[-1] + lengths[-1])
        return np.concatenate(chunks)[:n]


ArrivalProcess = Poisson | OnOff


# -- tiers, sessions, the workload -----------------------------------------


@dataclass(frozen=True)
class Tier:
    """A class of traffic: a share of the requests with its own token counts.

    Stage 6: ``tenants`` (an int >= 0) customers send this tier's requests,
    tenant k (k = 0..tenants-1) with probability proportional to
    ``(k + 1) ** -tenant_skew`` (Zipf: a few heavy tenants, a long tail of
    light ones; ``tenant_skew = 0``: all alike).  ``tenants = 0``: the
    requests carry no tenant.  The name is the simulator's kind of traffic;
    a stage-6 ``ServiceTier`` of the same name is what it pays for.
    """

    name: str
    share: float = 1.0
    prompt: TokenDist = field(default_factory=lambda: LogNormal(median=512, sigma=1.0, high=8192))
    output: TokenDist = field(default_factory=lambda: LogNormal(median=128, sigma=0.8, high=2048))
    tenants: int = 0
    tenant_skew: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("a tier needs a non-empty name")
        require_number(self.share, "share")
        require_int(self.tenants, "tenants", minimum=0)
        require_number(self.tenant_skew, "tenant_skew", strict=False)


@dataclass(frozen=True)
class Sessions:
    """Multi-turn conversations.

    Each session has ``1 + Geometric`` turns (mean ``mean_turns``); the next
    turn is sent an exponential think time (mean ``mean_think`` seconds)
    after the previous one ended.  A turn's prompt is a shared system prompt
    of ``system_tokens`` tokens, then the conversation so far (previous
    prompts' new tokens and all outputs) plus a new user message drawn from
    the tier's ``prompt`` distribution, capped at ``max_context`` (a capped
    prompt keeps the conversation's beginning).

    Prefix blocks (:func:`block_hashes`): the prompt is cut into blocks of
    ``block_tokens`` tokens, each named by a hash of everything up to its
    end, like the Mooncake trace's ``hash_ids``: a block inside the system
    prompt is the same for every session; a full block of the conversation
    is the same for every later turn of its session (a turn's prompt starts
    with the previous turn's); a partial last block is unique to its request.

    Session keys (``Requests.session_key``): each session's own id, except
    that a share ``hot_share`` of the sessions all carry one key (a heavy
    tenant whose API key is the affinity key, an agent fleet sharing one
    conversation id): many conversations in flight at once under one key,
    which hard affinity piles onto one server.

    Raises:
        TypeError / ValueError: ``mean_turns`` below 1, a negative think time,
            counts that are not ints (``system_tokens`` >= 0, the others >= 1),
            ``system_tokens >= max_context``, or ``hot_share`` outside [0, 1].
    """

    mean_turns: float = 4.0
    mean_think: float = 20.0
    max_context: int = 16384
    system_tokens: int = 0
    block_tokens: int = 512
    hot_share: float = 0.0

    def __post_init__(self) -> None:
        if require_number(self.mean_turns, "mean_turns") < 1:
            raise ValueError(f"mean_turns must be at least 1, got {self.mean_turns}")
        require_number(self.mean_think, "mean_think", strict=False)
        require_int(self.max_context, "max_context")
        require_int(self.system_tokens, "system_tokens", minimum=0, maximum=self.max_context - 1)
        require_int(self.block_tokens, "block_tokens")
        if require_number(self.hot_share, "hot_share", strict=False) > 1:
            raise ValueError(f"hot_share is a share of the sessions, at most 1, got {self.hot_share}")


@dataclass(frozen=True, eq=False)
class Requests:
    """A realized workload: one entry per request, in request-index order.

    ``arrival`` is ``NaN`` for session turns after the first (they are sent
    while simulating); ``think`` is the pause before such a turn.  ``session``
    is -1 outside sessions.  Indices of one session are consecutive.

    Stage 5 (optional, ``None`` when the workload has none):
    ``session_key`` is the key session affinity routes on (-1: none;
    ``None``: the same as ``session``; a trace replay has keys but no
    closed-loop sessions); the prefix blocks of request ``i`` are
    ``blocks[block_offsets[i]:block_offsets[i + 1]]`` (block hashes, in
    prompt order; see :meth:`prefix_blocks`).
    """

    arrival: np.ndarray  # float64, seconds
    prompt_tokens: np.ndarray  # int64
    output_tokens: np.ndarray  # int64
    tier: np.ndarray  # int16, index into tier_names
    tier_names: tuple[str, ...]
    session: np.ndarray  # int64, -1 when not part of a session
    think: np.ndarray  # float64, seconds before a follow-up turn (0 otherwise)
    session_key: np.ndarray | None = None  # int64, the affinity key (-1: none); None: `session`
    block_offsets: np.ndarray | None = None  # int64, n + 1 offsets into `blocks`
    blocks: np.ndarray | None = None  # int64, every request's prefix-block hashes, concatenated
    tenant: np.ndarray | None = None  # int64, the tenant's index within its tier (-1: none); None: no tenants at all

    def tenant_names(self) -> list[str | None]:
        """Each request's tenant as ``"<tier>-<k>"`` (``None``: no tenant), what ``Request.tenant`` carries.  O(n)."""
        if self.tenant is None:
            return [None] * len(self)
        names = self.tier_names
        return [f"{names[t]}-{k}" if k >= 0 else None for t, k in zip(self.tier.tolist(), self.tenant.tolist())]

    def __len__(self) -> int:
        return len(self.arrival)

    def keys(self) -> np.ndarray:
        """Each request's session key (-1: none): ``session_key``, else ``session``.  O(1)."""
        return self.session if self.session_key is None else self.session_key

    @property
    def has_blocks(self) -> bool:
        """True when the requests carry prefix-block hashes."""
        return self.blocks is not None and self.block_offsets is not None

    def prefix_blocks(self, i: int) -> tuple[int, ...]:
        """Request ``i``'s prefix-block hashes (``()`` without blocks).  O(B)."""
        if not self.has_blocks:
            return ()
        a, b = self.block_offsets[i], self.block_offsets[i + 1]  # type: ignore[index]
        return tuple(self.blocks[a:b].tolist())  # type: ignore[index]

    def block_tuples(self) -> list[tuple[int, ...]]:
        """Every request's :meth:`prefix_blocks`, as a list (what the engine passes in each ``Request``).  O(total blocks)."""
        if not self.has_blocks:
            return [()] * len(self)
        flat = self.blocks.tolist()  # type: ignore[union-attr]
        off = self.block_offsets.tolist()  # type: ignore[union-attr]
        return [tuple(flat[off[i]:off[i + 1]]) for i in range(len(self))]

    def ceiling(self) -> float:
        """The unbounded-cache hit share: occurrences of a block after its first one, over all blocks (1 - distinct / total).

        What one cache that never evicts would hit (the Mooncake README's
        "share of blocks seen before"; the order does not matter): an upper
        bound for any bounded cache and any routing.  NaN without blocks.
        O(B log B) for B blocks (a sort).
        """
        if not self.has_blocks or not len(self.blocks):  # type: ignore[arg-type]
            return math.nan
        _, first = np.unique(self.blocks, return_index=True)
        return 1.0 - len(first) / len(self.blocks)  # type: ignore[arg-type]

    def next_turn(self) -> np.ndarray:
        """The index of each request's next turn in its session, or -1.  O(n)."""
        nxt = np.full(len(self), -1, dtype=np.int64)
        if len(self) > 1:
            same = (self.session[1:] == self.session[:-1]) & (self.session[1:] >= 0)
            nxt[:-1][same] = np.nonzero(same)[0] + 1
        return nxt


#: The tier used when a workload names none.
DEFAULT_TIERS = (Tier("default"),)


@dataclass(frozen=True)
class Workload:
    """``requests`` requests from ``arrivals``, with tokens drawn per tier.

    The arrival process's own rate is used unless the scenario asks for an
    offered load, in which case the process is rescaled (its shape kept).
    """

    requests: int
    arrivals: ArrivalProcess = field(default_factory=Poisson)
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    sessions: Sessions | None = None

    def __post_init__(self) -> None:
        require_int(self.requests, "requests")
        object.__setattr__(self, "tiers", tuple(self.tiers))
        if not self.tiers:
            raise ValueError("a workload needs at least one tier")
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")

    def generate(
        self,
        rng_tokens: np.random.Generator,
        rng_arrivals: np.random.Generator,
        request_rate: Callable[[np.ndarray, np.ndarray], float] | None = None,
    ) -> Requests:
        """Draw the requests.  O(n) numpy work.

        ``request_rate(prompt, output)``, when given, returns the mean number
        of requests per second wanted (the scenario's offered load); the
        arrival process is rescaled to it.  Tokens come from ``rng_tokens``
        and times from ``rng_arrivals``, so changing the load leaves the
        token counts of a seed unchanged.
        """
        n = self.requests
        shares = np.array([t.share for t in self.tiers])
        if self.sessions is None:
            session = np.full(n, -1, dtype=np.int64)
            tier = rng_tokens.choice(len(self.tiers), size=n, p=shares / shares.sum()).astype(np.int16)
            prompt, output = self._tokens(rng_tokens, tier)
            think = np.zeros(n)
            first = np.ones(n, dtype=bool)
        else:
            session, tier, prompt, output, think, first = self._sessions(rng_tokens, shares)
        rate = self.arrivals.mean_rate if request_rate is None else request_rate(prompt, output)
        starts = int(first.sum())
        # Sessions: a request rate of `rate` needs `rate * starts / n` session starts per second.
        process = self.arrivals.with_mean_rate(rate * starts / n)
        arrival = np.full(n, np.nan)
        arrival[first] = process.times(rng_arrivals, starts)
        names = tuple(t.name for t in self.tiers)
        if self.sessions is None:
            return Requests(arrival, prompt, output, tier, names, session, think, tenant=self._tenants(rng_tokens, tier))
        spec = self.sessions
        key = session
        if spec.hot_share > 0:  # drawn last, from its own stream: hot_share = 0 leaves every other draw unchanged
            count = int(session[-1]) + 1 if n else 0
            hot = np.random.default_rng(rng_tokens.integers(2**63)).random(count) < spec.hot_share
            key = np.where(hot[session], count, session)
        offsets, blocks = block_hashes(session, prompt, spec.block_tokens, spec.system_tokens)
        return Requests(arrival, prompt, output, tier, names, session, think, key, offsets, blocks, self._tenants(rng_tokens, tier))

    def _tenants(self, rng: np.random.Generator, tier: np.ndarray) -> np.ndarray | None:
        """Each request's tenant index in its tier (Zipf by ``Tier.tenant_skew``), -1 for a tier without tenants.

        ``None`` when no tier has tenants.  Drawn last, from a stream of its
        own: adding tenants leaves every other draw of a seed unchanged.  O(n).
        """
        if not any(t.tenants for t in self.tiers):
            return None
        sub = np.random.default_rng(rng.integers(2**63))
        out = np.full(len(tier), -1, dtype=np.int64)
        for k, spec in enumerate(self.tiers):
            mask = tier == k
            if spec.tenants and mask.any():
                weights = np.arange(1, spec.tenants + 1, dtype=np.float64) ** -float(spec.tenant_skew)
                out[mask] = sub.choice(spec.tenants, size=int(mask.sum()), p=weights / weights.sum())
        return out

    def _tokens(self, rng: np.random.Generator, tier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        prompt = np.empty(len(tier), dtype=np.int64)
        output = np.empty(len(tier), dtype=np.int64)
        for k, spec in enumerate(self.tiers):
            mask = tier == k
            prompt[mask] = spec.prompt.sample(rng, int(mask.sum()))
            output[mask] = spec.output.sample(rng, int(mask.sum()))
        return prompt, output

    def _sessions(self, rng: np.random.Generator, shares: np.ndarray) -> tuple[np.ndarray, ...]:
        spec = self.sessions
        assert spec is not None
        n = self.requests
        turns = np.empty(0, dtype=np.int64)
        while turns.sum() < n:
            more = int(n / spec.mean_turns) + 16
            turns = np.concatenate([turns, rng.geometric(1.0 / spec.mean_turns, more)])
        ends = np.cumsum(turns)
        count = int(np.searchsorted(ends, n)) + 1  # sessions needed
        turns = turns[:count]
        turns[-1] -= int(ends[count - 1]) - n  # trim the last session to exactly n requests
        session = np.repeat(np.arange(count, dtype=np.int64), turns)
        session_tier = rng.choice(len(self.tiers), size=count, p=shares / shares.sum()).astype(np.int16)
        tier = session_tier[session]
        user, output = self._tokens(rng, tier)
        first = np.ones(n, dtype=bool)
        first[1:] = session[1:] != session[:-1]
        # Context before each turn: every earlier turn's new user tokens and output, within the session.
        grown = np.cumsum(user + output) - (user + output)
        base = grown[first][session]
        prompt = np.minimum(spec.system_tokens + grown - base + user, spec.max_context)
        think = np.where(first, 0.0, rng.exponential(spec.mean_think, n))
        return session, tier, prompt, output, think, first


# -- prefix blocks ---------------------------------------------------------------

_MASK = (1 << 64) - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer on uint64 (a bijection with good avalanche): distinct inputs, distinct outputs."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def block_hashes(session: np.ndarray, prompt: np.ndarray, block_tokens: int = 512, system_tokens: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Prefix-block hashes of session prompts: ``(offsets, blocks)`` (request i's are ``blocks[offsets[i]:offsets[i+1]]``).

    Request i has ``ceil(prompt[i] / block_tokens)`` blocks.  Block j is
    named by what its tokens are (a hash chain's meaning: equal names, equal
    prompts up to the block's end):

    * inside the shared system prompt (``(j + 1) * block_tokens <=
      system_tokens``): ``hash("system", j)``, the same in every request;
    * a full block: ``hash(session, j)``, the same in every turn of the
      session that reaches it (a turn's prompt starts with the previous
      turn's prompt and answer);
    * the partial last block: ``hash(session, j, prompt)``, its own.

    ``session`` -1 (no session) makes every block of the request its own.
    Hashes are SplitMix64 mixes (deterministic, vectorized), as int64.
    O(total blocks) numpy work.
    """
    require_int(block_tokens, "block_tokens")
    require_int(system_tokens, "system_tokens", minimum=0)
    session = np.asarray(session, dtype=np.int64)
    prompt = np.asarray(prompt, dtype=np.int64)
    count = -(-prompt // block_tokens)
    offsets = np.zeros(len(prompt) + 1, dtype=np.int64)
    np.cumsum(count, out=offsets[1:])
    total = int(offsets[-1])
    j = np.arange(total, dtype=np.int64) - np.repeat(offsets[:-1], count)
    sess = np.repeat(session, count)
    size = np.repeat(prompt, count)
    req = np.repeat(np.arange(len(prompt), dtype=np.int64), count)
    end = (j + 1) * block_tokens
    system = end <= system_tokens
    full = end <= size
    # What names the block: (kind, a, b, c) packed into one uint64 each, then mixed with distinct salts.
    u = lambda a: a.astype(np.uint64)  # noqa: E731
    with np.errstate(over="ignore"):
        owner = np.where(sess >= 0, sess, -2 - req)  # a request outside any session owns its blocks
        h = _mix(u(owner) * np.uint64(0x9E3779B97F4A7C15) + u(j))
        h = np.where(full, h, _mix(h ^ _mix(u(size) + np.uint64(0xD1B54A32D192ED03))))
        h = np.where(system, _mix(u(j) + np.uint64(0x5DEECE66D)), h)
    return offsets, h.view(np.int64)


# -- how predictable output lengths are --------------------------------------

#: The spread of an output-length estimate, as the standard deviation of
#: ``log(actual / estimate)``, for a predictor that knows only the prompt's
#: length: :func:`output_predictability` on the Azure LLM inference 2023
#: conversation trace (19,366 requests; ``AzureLLMInferenceTrace_conv.csv``)
#: gives 0.544 within prompt-length deciles (0.859 knowing nothing).  The
#: trace is CC-BY 4.0: Patel et al., "Splitwise: Efficient generative LLM
#: inference using phase splitting", ISCA 2024, and the Azure Public Dataset.
#: A test recomputes it from the trace when the file is present.
OUTPUT_ESTIMATE_SIGMA = 0.544


@dataclass(frozen=True)
class OutputPredictability:
    """How well a trace's output lengths follow from its prompt lengths (see :func:`output_predictability`)."""

    requests: int
    buckets: int
    sigma_unconditional: float  # sd of log(output): a predictor that knows nothing
    sigma_given_prompt: float  # pooled sd of log(output) within prompt-length buckets
    median_factor: float  # median of exp(|log(output) - bucket mean|): a typical miss, as a factor

    def summary(self) -> str:
        """One line with the figures."""
        return (f"{self.requests:,} requests: sd of log(output) {self.sigma_unconditional:.3f} knowing nothing, "
                f"{self.sigma_given_prompt:.3f} knowing the prompt length ({self.buckets} buckets); "
                f"a typical estimate is off by a factor {self.median_factor:.2f}")  # fmt: skip


def output_predictability(prompt_tokens: np.ndarray, output_tokens: np.ndarray, *, buckets: int = 10) -> OutputPredictability:
    """The spread of ``log(output)`` around the best guess of a predictor that knows only the prompt length.

    Requests are split into ``buckets`` prompt-length quantile buckets; the
    predictor guesses each bucket's geometric mean output, so its error is
    the deviation of ``log(output)`` from the bucket mean.  Returns the pooled
    standard deviation of that error (the ``sigma`` of a log-normal
    estimate error, :class:`solution.sim.scenario.EstimateError`), against
    the standard deviation of ``log(output)`` itself.  Output lengths of 0
    count as 1.  O(n log n).

    Raises:
        ValueError: arrays of different lengths, fewer than ``2 * buckets``
            requests, or ``buckets`` not an int >= 1.
    """
    require_int(buckets, "buckets")
    prompt, output = np.asarray(prompt_tokens), np.asarray(output_tokens)
    if prompt.shape != output.shape or prompt.ndim != 1:
        raise ValueError(f"prompt_tokens and output_tokens must be 1-D arrays of one length, got {prompt.shape} and {output.shape}")
    if len(prompt) < 2 * buckets:
        raise ValueError(f"need at least {2 * buckets} requests for {buckets} buckets, got {len(prompt)}")
    log_out = np.log(np.maximum(output, 1).astype(float))
    edges = np.quantile(prompt, np.linspace(0, 1, buckets + 1))
    bucket = np.clip(np.searchsorted(edges, prompt, side="right") - 1, 0, buckets - 1)
    means = np.bincount(bucket, weights=log_out, minlength=buckets) / np.maximum(np.bincount(bucket, minlength=buckets), 1)
    error = log_out - means[bucket]
    return OutputPredictability(len(prompt), buckets, float(log_out.std()), float(error.std()),
                                float(np.exp(np.median(np.abs(error)))))  # fmt: skip
