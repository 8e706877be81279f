"""The KV prefix cache of a server, its capacity, KV migration, and its check against Che's approximation.

Why it matters
--------------
Turn 5 of a conversation resends turns 1 to 4.  A server that still holds the
KV cache of that prefix skips its prefill: the request's time to first token
falls by the prefill of the cached tokens.  Elsewhere, the GPU recomputes it.

The model (:class:`PrefixCache`)
--------------------------------
A prompt is cut into blocks of ``block_tokens`` (512) tokens; each block is
named by a hash of its tokens *and of every block before it* (a hash chain,
as the Mooncake trace's ``hash_ids`` and vLLM's block hashes are), so equal
hashes at position k mean equal prompts up to the end of block k.  A
server's cache is a set of block hashes with a capacity in blocks:

* ``lookup(blocks)``: the longest prefix of the request's blocks the cache
  holds (a hit of k blocks); the request then prefills only the tokens after
  them (:func:`saved_tokens`: at least its last prompt token is computed,
  whose logits give the first output token, as vLLM does on a full hit).
* ``insert(blocks)``: when the request's prefill is done its blocks are in
  the server's memory; they join the cache (already present ones are
  refreshed).
* Eviction: least recently used, at block granularity.  A request's blocks
  are refreshed from last to first, so the *first* blocks of a prompt are
  the most recent and a chain is evicted from its tail: a cached prefix
  stays a prefix.

How real engines do it, and what the course simplifies:

* **vLLM** (automatic prefix caching, V1 ``KVCacheManager``): full blocks of
  16 tokens are hashed with their parent block's hash (a chain); a block
  whose request finished stays cached in a *free* queue; a new allocation
  takes the least recently used free block, evicting its hash (a finished
  request's blocks are freed tail first, so a prefix's tail goes first).
  Blocks of running requests are pinned: the cache is whatever memory the
  running batch does not use.
* **SGLang** (RadixAttention): a radix tree over token sequences; nodes
  referenced by running requests are locked; eviction removes the least
  recently used *leaves* first, so a shared prefix (a system prompt) near
  the root outlives the conversations below it.
* **Here**: a fixed capacity per server, the whole KV room left after the
  weights (:func:`kv_capacity_blocks`), and running sequences' KV does *not*
  compete with it (an optimistic bound: a real server under a full batch
  has less room for cached prefixes).  Blocks are 512 tokens (the trace's
  unit), not vLLM's 16.  Only prompt blocks are cached (the trace has no
  hashes for generated tokens; vLLM also caches full blocks of the answer,
  which the next turn would hit).  A crash or a restart empties the cache.

Capacity (:func:`kv_capacity_tokens`)
-------------------------------------
``(memory_headroom * GPU memory - weights) / kv_bytes_per_token``: for the
course's 7B FP16 model (full attention, 512 KiB per token) on an A100-80GB,
120,753 tokens (235 blocks); Llama-3.1-8B (grouped-query attention,
128 KiB per token) holds four times as many tokens per byte.

KV migration (:func:`migration_time`, :func:`break_even_gb_s`)
--------------------------------------------------------------
Moving a session's cache to another server costs ``tokens *
kv_bytes_per_token`` bytes over a link; recomputing it costs its prefill on
the GPU (compute-bound: about ``2 * params`` FLOPs per token).  Moving wins
when the link is faster than the *break-even bandwidth*
``kv_bytes_per_token / (prefill seconds per token)``: a few GB/s, so NVLink,
PCIe and RDMA links beat recomputing, and 10 GbE does not for a
full-attention model (:data:`LINKS`, :func:`migration_table`).

Costs: ``lookup`` O(k + 1) for a hit of k blocks, ``insert`` O(B + e) for B
blocks and e evictions (an ``OrderedDict``: O(1) per move or eviction).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from solution.core.validate import require_int
from solution.sim.gpus import GpuSpec, ModelSpec
from solution.sim.theory import che_hit_rate, mean_confidence_interval, zipf_popularity
from solution.sim.validate import require_number

__all__ = [
    "BLOCK_TOKENS", "PrefixCache", "kv_capacity_tokens", "kv_capacity_blocks", "saved_tokens", "KvCacheConfig",
    "CacheLog", "ServerCaches", "LINKS", "migration_time", "recompute_time", "break_even_gb_s", "MigrationRow",
    "migration_table", "ChePoint", "che_points", "CHE_POINTS", "CHE_TOLERANCE",
]  # fmt: skip

#: Tokens per block: the Mooncake trace's unit (vLLM's default is 16).
BLOCK_TOKENS = 512


def _blocks(blocks: object) -> Sequence[int]:
    """``blocks`` if it is a list or tuple of ints (not bools); TypeError otherwise.  O(B)."""
    if not isinstance(blocks, (tuple, list)):
        raise TypeError(f"blocks must be a tuple or list of ints (block hashes), got {type(blocks).__name__}")
    for k, b in enumerate(blocks):
        if isinstance(b, bool) or not isinstance(b, int):
            raise TypeError(f"blocks[{k}] must be an int (a block hash), got {type(b).__name__} {b!r}")
    return blocks


class PrefixCache:
    """One server's KV prefix cache: LRU over block hashes, ``capacity_blocks`` blocks of ``block_tokens`` tokens.

    >>> cache = PrefixCache(4)
    >>> cache.lookup((7, 8, 9))            # empty: no hit
    0
    >>> cache.insert((7, 8, 9))            # the prefill is done: its blocks are cached
    3
    >>> cache.lookup((7, 8, 5, 6))         # the next turn shares the first two blocks
    2
    >>> cache.insert((1, 2)); len(cache), 9 in cache   # full: the least recently used (9, a tail) went
    2
    (4, False)

    Counters: ``hits`` and ``misses`` in blocks over every :meth:`lookup`,
    ``lookups``, ``evictions``.  See the module for the eviction rule and how
    vLLM and SGLang evict.

    Raises:
        TypeError / ValueError: ``capacity_blocks`` or ``block_tokens`` not an int >= 1.
    """

    __slots__ = ("capacity_blocks", "block_tokens", "_lru", "hits", "misses", "lookups", "evictions")

    def __init__(self, capacity_blocks: int, block_tokens: int = BLOCK_TOKENS) -> None:
        self.capacity_blocks = require_int(capacity_blocks, "capacity_blocks")
        self.block_tokens = require_int(block_tokens, "block_tokens")
        self._lru: OrderedDict[int, None] = OrderedDict()  # least recently used first
        self.hits = self.misses = self.lookups = self.evictions = 0

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, block: object) -> bool:
        return block in self._lru

    @property
    def occupancy(self) -> float:
        """The share of the capacity in use, in [0, 1].  O(1)."""
        return len(self._lru) / self.capacity_blocks

    @property
    def hit_rate(self) -> float:
        """Blocks found over blocks looked up, over every :meth:`lookup` so far (NaN before any).  O(1)."""
        total = self.hits + self.misses
        return self.hits / total if total else math.nan

    def peek(self, blocks: Sequence[int]) -> int:
        """The longest cached prefix of ``blocks``, in blocks, without refreshing or counting anything.  O(k + 1)."""
        lru = self._lru
        k = 0
        for b in _blocks(blocks):
            if b not in lru:
                break
            k += 1
        return k

    def lookup(self, blocks: Sequence[int]) -> int:
        """The longest cached prefix of ``blocks`` (a hit of k blocks); refreshes those k blocks.  O(k + 1).

        The hit blocks become the most recently used, the first one most of
        all.  Counts ``hits += k``, ``misses += len(blocks) - k``.

        Raises:
            TypeError: ``blocks`` is not a list or tuple of ints.
        """
        k = self.peek(blocks)
        lru = self._lru
        for i in range(k - 1, -1, -1):
            lru.move_to_end(blocks[i])
        self.hits += k
        self.misses += len(blocks) - k
        self.lookups += 1
        return k

    def insert(self, blocks: Sequence[int]) -> int:
        """Cache ``blocks`` (a request's prefill is done); returns how many were new.  O(B + evictions).

        Blocks are refreshed from last to first, so the first is the most
        recently used; when the cache is full the least recently used blocks
        are evicted (with more blocks than the capacity, the prompt's tail
        is evicted first: its first ``capacity_blocks`` stay).

        Raises:
            TypeError: ``blocks`` is not a list or tuple of ints.
        """
        lru, cap = self._lru, self.capacity_blocks
        new = 0
        for b in reversed(_blocks(blocks)):
            if b in lru:
                lru.move_to_end(b)
            else:
                lru[b] = None
                new += 1
                if len(lru) > cap:
                    lru.popitem(last=False)
                    self.evictions += 1
        return new

    def clear(self) -> int:
        """Empty the cache (the server crashed or restarted); returns the blocks dropped.  O(n)."""
        n = len(self._lru)
        self._lru.clear()
        return n

    def stats(self) -> dict[str, float]:
        """``blocks``, ``capacity_blocks``, ``hits``, ``misses``, ``lookups``, ``evictions``, ``hit_rate``.  O(1)."""
        return {"blocks": len(self._lru), "capacity_blocks": self.capacity_blocks, "hits": self.hits, "misses": self.misses,
                "lookups": self.lookups, "evictions": self.evictions, "hit_rate": self.hit_rate}  # fmt: skip

    def __repr__(self) -> str:
        return f"PrefixCache({len(self._lru)}/{self.capacity_blocks} blocks of {self.block_tokens} tokens)"


# -- capacity ------------------------------------------------------------------------------------------


def kv_capacity_tokens(model: ModelSpec, gpu: GpuSpec) -> int:
    """Tokens of KV cache a GPU holds after the weights: ``(memory_headroom * memory - weights) / kv_bytes_per_token``.

    Memory is binary (GiB: see :mod:`solution.sim.gpus`), weights decimal.  O(1).

    >>> from solution.sim.gpus import GPU_PRESETS, MODEL_PRESETS
    >>> kv_capacity_tokens(MODEL_PRESETS["7B FP16"], GPU_PRESETS["A100-80GB"])
    120753
    >>> kv_capacity_tokens(MODEL_PRESETS["Llama-3.1-8B"], GPU_PRESETS["A100-80GB"])
    467295

    Raises:
        TypeError: not a ModelSpec and a GpuSpec.
        ValueError: the weights alone do not fit.
    """
    if not isinstance(model, ModelSpec) or not isinstance(gpu, GpuSpec):
        raise TypeError(f"kv_capacity_tokens takes a ModelSpec and a GpuSpec, got {type(model).__name__} and {type(gpu).__name__}")
    room = gpu.memory_bytes * model.memory_headroom - model.weight_bytes
    if room < model.kv_bytes_per_token:
        raise ValueError(f"{model.name}'s weights ({model.weight_bytes / 1e9:.1f} GB) leave no room for a KV cache on {gpu.name}; "
                         "choose a bigger GPU")  # fmt: skip
    return math.floor(room / model.kv_bytes_per_token)


def kv_capacity_blocks(model: ModelSpec, gpu: GpuSpec, block_tokens: int = BLOCK_TOKENS) -> int:
    """Whole blocks of ``block_tokens`` that :func:`kv_capacity_tokens` holds (at least 1).  O(1)."""
    require_int(block_tokens, "block_tokens")
    return max(1, kv_capacity_tokens(model, gpu) // block_tokens)


def saved_tokens(hit_blocks: int, prompt_tokens: int, block_tokens: int = BLOCK_TOKENS) -> int:
    """Prompt tokens a hit of ``hit_blocks`` blocks skips: ``min(hit * block_tokens, prompt - 1)`` (0 for no prompt).

    The last prompt token is always computed: its logits give the first
    output token (vLLM recomputes it on a full hit).  O(1).
    """
    if prompt_tokens <= 0 or hit_blocks <= 0:
        return 0
    return min(hit_blocks * block_tokens, prompt_tokens - 1)


@dataclass(frozen=True)
class KvCacheConfig:
    """A prefix cache on every server (``Scenario.kv_cache``).

    Args:
        capacity_blocks: blocks per server; ``None``: each server's
            :func:`kv_capacity_blocks` for the scenario's model on its GPU.
        block_tokens: tokens per block (the workload's blocks must be of this
            size: the Mooncake trace's and :class:`~solution.sim.workload.Sessions`'
            are 512).

    Raises:
        TypeError / ValueError: a count that is not an int >= 1.
    """

    capacity_blocks: int | None = None
    block_tokens: int = BLOCK_TOKENS

    def __post_init__(self) -> None:
        if self.capacity_blocks is not None:
            require_int(self.capacity_blocks, "KvCacheConfig.capacity_blocks")
        require_int(self.block_tokens, "KvCacheConfig.block_tokens")

    def capacity_for(self, model: ModelSpec | None, gpu: GpuSpec) -> int:
        """The blocks one server with ``gpu`` holds (classic mode has no model: then ``capacity_blocks`` must be set)."""
        if self.capacity_blocks is not None:
            return self.capacity_blocks
        if model is None:
            raise ValueError("a KV cache without a token model (classic mode) needs KvCacheConfig(capacity_blocks=...)")
        return kv_capacity_blocks(model, gpu, self.block_tokens)


@dataclass(frozen=True, eq=False)
class CacheLog:
    """What a run with KV caches records (``Results.cache``).

    Per request (its last try): ``blocks`` (its prefix blocks), ``hit_blocks``
    (the longest cached prefix found on its server), ``saved`` (prompt tokens
    whose prefill was skipped), ``prompt`` (its prompt tokens).  Per server:
    ``capacity_blocks``, and the final per-server ``hits``/``misses`` (blocks over every
    lookup, re-sent tries included).  Occupancy changes: ``event_time``,
    ``event_server``, ``event_blocks`` (blocks held after each insert or clear).
    """

    block_tokens: int
    capacity_blocks: np.ndarray  # int64 per server
    blocks: np.ndarray  # int32 per request
    hit_blocks: np.ndarray  # int32 per request
    saved: np.ndarray  # int64 per request
    prompt: np.ndarray  # int64 per request
    server_hits: np.ndarray  # int64 per server
    server_misses: np.ndarray  # int64 per server
    event_time: np.ndarray = field(default_factory=lambda: np.zeros(0))
    event_server: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    event_blocks: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def hit_rate(self, mask: np.ndarray | None = None) -> float:
        """Blocks found cached over all blocks of the requests (``mask``: a subset); a request never served found none.  O(n)."""
        blocks = self.blocks if mask is None else self.blocks[mask]
        hits = self.hit_blocks if mask is None else self.hit_blocks[mask]
        total = int(blocks.sum())
        return float(hits.sum()) / total if total else math.nan

    def saved_share(self, mask: np.ndarray | None = None) -> float:
        """Prompt tokens whose prefill was skipped over all prompt tokens.  O(n)."""
        prompt = self.prompt if mask is None else self.prompt[mask]
        saved = self.saved if mask is None else self.saved[mask]
        total = int(prompt.sum())
        return float(saved.sum()) / total if total else math.nan

    def occupancy_over_time(self, times: np.ndarray) -> np.ndarray:
        """Blocks each server's cache holds at each instant: shape ``(len(times), servers)``.  O(E log E + T S)."""
        times = np.asarray(times, dtype=np.float64)
        servers = len(self.capacity_blocks)
        out = np.zeros((len(times), servers), dtype=np.int64)
        for k in range(servers):
            mine = self.event_server == k
            at, held = self.event_time[mine], self.event_blocks[mine]
            idx = np.searchsorted(at, times, "right") - 1
            out[:, k] = np.where(idx >= 0, held[np.maximum(idx, 0)], 0) if len(at) else 0
        return out


class ServerCaches:
    """The engine's side of the KV caches: one :class:`PrefixCache` per server, and the per-request record.

    The engine calls :meth:`admit` when a try starts on a server (the
    prefill it may skip), :meth:`prefill_done` when that try's first token
    comes (its blocks join the server's cache), and :meth:`lost` when a
    server crashes or restarts.  O(B) per call for B blocks.
    """

    def __init__(self, caches: Sequence[PrefixCache], blocks: Sequence[tuple[int, ...]], prompt: Sequence[int]) -> None:
        self.caches = list(caches)
        self.block_tokens = self.caches[0].block_tokens if self.caches else BLOCK_TOKENS
        self.request_blocks = blocks
        self.prompt = prompt
        n = len(blocks)
        self.hit = [0] * n
        self.saved = [0] * n
        self.event_time: list[float] = []
        self.event_server: list[int] = []
        self.event_blocks: list[int] = []

    def admit(self, request: int, server: int) -> int:
        """Request ``request`` starts on server index ``server``: the prompt tokens its prefill skips."""
        blocks = self.request_blocks[request]
        if not blocks:
            self.hit[request] = self.saved[request] = 0
            return 0
        k = self.caches[server].lookup(blocks)
        self.hit[request] = k
        saved = self.saved[request] = saved_tokens(k, self.prompt[request], self.block_tokens)
        return saved

    def prefill_done(self, request: int, server: int, t: float) -> None:
        """Request ``request``'s prefill on ``server`` ended at ``t``: its blocks are cached there."""
        blocks = self.request_blocks[request]
        if blocks:
            cache = self.caches[server]
            cache.insert(blocks)
            self._event(t, server, len(cache))

    def lost(self, server: int, t: float) -> None:
        """Server ``server`` crashed or restarted at ``t``: its cache is empty."""
        if self.caches[server].clear():
            self._event(t, server, 0)

    def _event(self, t: float, server: int, held: int) -> None:
        self.event_time.append(t)
        self.event_server.append(server)
        self.event_blocks.append(held)

    def log(self) -> CacheLog:
        """The run's :class:`CacheLog`."""
        return CacheLog(
            self.block_tokens, np.array([c.capacity_blocks for c in self.caches], dtype=np.int64),
            np.array([len(b) for b in self.request_blocks], dtype=np.int32), np.array(self.hit, dtype=np.int32),
            np.array(self.saved, dtype=np.int64), np.asarray(self.prompt, dtype=np.int64),
            np.array([c.hits for c in self.caches], dtype=np.int64), np.array([c.misses for c in self.caches], dtype=np.int64),
            np.array(self.event_time, dtype=np.float64), np.array(self.event_server, dtype=np.int64),
            np.array(self.event_blocks, dtype=np.int64),
        )  # fmt: skip


# -- KV migration --------------------------------------------------------------------------------------

#: Links a KV cache can move over: nominal one-way bandwidth in GB/s (10^9 bytes/s).
#: NVLink: per-GPU total over its links, half each way (H100 SXM 900 GB/s, A100 SXM 600 GB/s);
#: PCIe x16: 32 GB/s (4.0) and 64 GB/s (5.0) each way; RDMA NICs and Ethernet: line rate / 8.
LINKS: dict[str, float] = {
    "NVLink 4 (H100)": 450.0,
    "NVLink 3 (A100)": 300.0,
    "PCIe 5.0 x16": 64.0,
    "RDMA 400 Gb/s": 50.0,
    "PCIe 4.0 x16": 32.0,
    "RDMA 100 Gb/s": 12.5,
    "10 GbE": 1.25,
}


def migration_time(tokens: int, model: ModelSpec, link_gb_s: float, *, latency_s: float = 0.0) -> float:
    """Seconds to move the KV cache of ``tokens`` tokens over a link of ``link_gb_s`` GB/s (plus a fixed ``latency_s``).

    ``tokens * model.kv_bytes_per_token / (link_gb_s * 1e9) + latency_s``.  O(1).

    >>> from solution.sim.gpus import MODEL_PRESETS
    >>> round(migration_time(8192, MODEL_PRESETS["7B FP16"], 12.5), 3)   # 4 GiB over 100 Gb/s RDMA
    0.344

    Raises:
        TypeError / ValueError: ``tokens`` not an int >= 0, a bandwidth not > 0, a latency not >= 0.
    """
    require_int(tokens, "tokens", minimum=0)
    if not isinstance(model, ModelSpec):
        raise TypeError(f"model must be a ModelSpec, got {type(model).__name__}")
    bandwidth = require_number(link_gb_s, "link_gb_s")
    return tokens * model.kv_bytes_per_token / (bandwidth * 1e9) + require_number(latency_s, "latency_s", strict=False)


def recompute_time(tokens: int, model: ModelSpec, gpu: GpuSpec, token_budget: int = 512) -> float:
    """Seconds a GPU takes to prefill ``tokens`` tokens again, alone: ``model.latency_model(gpu).prefill_time(tokens)``.  O(1).

    The course's model prices a prompt token at ``2 * params`` FLOPs (the
    attention's quadratic term is left out, so long contexts cost a bit
    more in reality: migration wins more often than this says).
    """
    require_int(tokens, "tokens", minimum=0)
    if not isinstance(model, ModelSpec) or not isinstance(gpu, GpuSpec):
        raise TypeError(f"recompute_time takes a ModelSpec and a GpuSpec, got {type(model).__name__} and {type(gpu).__name__}")
    return model.latency_model(gpu, token_budget).prefill_time(tokens)


def break_even_gb_s(model: ModelSpec, gpu: GpuSpec, token_budget: int = 512) -> float:
    """The link bandwidth (GB/s) above which moving a KV cache beats recomputing it on ``gpu``.

    Both costs grow linearly with the tokens, so the break-even does not
    depend on the context length: ``kv_bytes_per_token / prefill seconds per
    token / 1e9``.  O(1).
    """
    per_token = recompute_time(token_budget, model, gpu, token_budget) / token_budget
    return model.kv_bytes_per_token / per_token / 1e9


@dataclass(frozen=True)
class MigrationRow:
    """Moving ``tokens`` of KV cache over ``link`` against recomputing them: seconds each, and which wins."""

    link: str
    gb_s: float
    tokens: int
    move_s: float
    recompute_s: float

    @property
    def move_wins(self) -> bool:
        return self.move_s < self.recompute_s


def migration_table(tokens: int, model: ModelSpec, gpu: GpuSpec, links: dict[str, float] | None = None) -> list[MigrationRow]:
    """One :class:`MigrationRow` per link of ``links`` (default :data:`LINKS`).  O(L)."""
    recompute = recompute_time(tokens, model, gpu)
    return [MigrationRow(name, gb, tokens, migration_time(tokens, model, gb), recompute) for name, gb in (links or LINKS).items()]


# -- the check against Che's approximation ----------------------------------------------------------------

#: The points the check runs: (items N, cache size C, Zipf alpha).
CHE_POINTS: tuple[tuple[int, int, float], ...] = ((1000, 50, 0.8), (1000, 200, 0.8), (1000, 100, 1.2), (2000, 400, 0.6))
#: Allowed absolute gap between Che's value and the simulation's confidence interval (Che's approximation is
#: not exact for small caches: its error is well under 0.01 at these sizes; Fricker, Robert and Roberts, 2012).
CHE_TOLERANCE = 0.01


@dataclass(frozen=True)
class ChePoint:
    """The simulated LRU hit rate at one point (mean and interval over seeds) and Che's value."""

    items: int
    capacity: int
    alpha: float
    che: float
    mean: float
    low: float
    high: float
    seeds: int

    def agrees(self, tolerance: float = CHE_TOLERANCE) -> bool:
        """True when Che's value lies in the interval widened by ``tolerance`` on each side."""
        return self.low - tolerance <= self.che <= self.high + tolerance

    def line(self) -> str:
        return (f"N={self.items:,} C={self.capacity} alpha={self.alpha:g}: simulated {self.mean:.4f} "
                f"[{self.low:.4f}, {self.high:.4f}] over {self.seeds} seeds, Che {self.che:.4f}")  # fmt: skip


def _irm_hit_rate(items: int, capacity: int, alpha: float, requests: int, warmup: int, seed: int) -> float:
    """One replication: a :class:`PrefixCache` fed single-block requests drawn IID from Zipf(alpha)."""
    rng = np.random.default_rng([seed, items, capacity, int(alpha * 1000)])
    p = np.asarray(zipf_popularity(items, alpha))
    draws = rng.choice(items, size=warmup + requests, p=p).tolist()
    cache = PrefixCache(capacity, 1)
    hits = 0
    for n, item in enumerate(draws):
        key = (item,)
        if cache.lookup(key):
            hits += n >= warmup
        else:
            cache.insert(key)
    return hits / requests


def che_points(points: Sequence[tuple[int, int, float]] = CHE_POINTS, seeds: Sequence[int] = range(10), *,
               requests: int = 20_000, warmup: int = 5_000, level: float = 0.99) -> list[ChePoint]:  # fmt: skip
    """Simulate :class:`PrefixCache` under the independent reference model at each ``(N, C, alpha)`` and compare with Che.

    Each seed is an independent replication: ``warmup`` requests fill the
    cache, the next ``requests`` are counted; the interval is a t-interval
    over seeds at ``level``.  O(points * seeds * (requests + warmup)).
    """
    out = []
    for items, capacity, alpha in points:
        rates = [_irm_hit_rate(items, capacity, alpha, requests, warmup, s) for s in seeds]
        mean, low, high = mean_confidence_interval(rates, level)
        out.append(ChePoint(items, capacity, alpha, che_hit_rate(zipf_popularity(items, alpha), capacity), mean, low, high, len(rates)))
    return out
