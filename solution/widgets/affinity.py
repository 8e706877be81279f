"""Stage-5 pictures and widgets: why KV reuse matters, the bounded-load hash ring, KV migration, the affinity trade-off.

Figures (matplotlib's OO API, no pyplot state; each passes the course's
figure rule, ``tests/sim/test_figures.py``):

* :func:`kv_reuse_figure`: per turn of a conversation, the prompt's tokens
  that an earlier turn already computed against the new ones, and the
  prefill seconds with and without reusing them.
* :func:`ring_figure`: a consistent-hashing ring with bounded loads
  (Mirrokni, Thorup and Zadimoghaddam, 2018): each server's points, where
  each key lands, the keys that walked on because their first server was at
  its bound, and the loads against plain consistent hashing.
* :func:`migration_figure`: moving a session's KV cache over a link against
  recomputing its prefill, per context length, for two models
  (:mod:`solution.sim.kvcache`'s migration formulas).

Measurements (O(1) formulas, or O(n) over a workload):

* :func:`turn_breakdown`: per turn number, the mean prompt and the part of it
  the previous turn left in a server's KV cache.
* :func:`ring_points`, :func:`bounded_load_assign`: the ring the picture
  draws, and the walk that assigns keys to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from solution.core.affinity_types import stable_hash64
from solution.core.latency import LatencyModel
from solution.sim.gpus import GpuSpec, ModelSpec, gpu_preset
from solution.widgets.drawing import CachedExplorer, figure_png

__all__ = [
    "TurnBreakdown", "turn_breakdown", "kv_reuse_figure", "MIGRATION_LINKS", "migration_figure", "ring_points", "key_point",
    "RingAssignment", "bounded_load_assign", "ring_figure", "POLICY_NAMES",
    "occupancy_figure", "pileup_figure", "race_figure", "mean_ceiling", "AffinityExplorer",
]  # fmt: skip

_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac", "#eeca3b")


# -- why KV reuse matters -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnBreakdown:
    """Per turn number (1, 2, ...): requests, mean prompt tokens, mean tokens an earlier turn already computed."""

    turn: np.ndarray  # int, 1-based
    count: np.ndarray  # int, requests at that turn
    prompt: np.ndarray  # float, mean prompt tokens
    reusable: np.ndarray  # float, mean tokens of the prompt that the previous turn's prefill and decode produced

    def at(self, turn: int) -> tuple[int, float, float]:
        """(requests, mean prompt, mean reusable) at ``turn`` (1-based).  O(1)."""
        k = int(turn) - 1
        if not 0 <= k < len(self.turn):
            raise ValueError(f"turn must be in 1..{len(self.turn)}, got {turn!r}")
        return int(self.count[k]), float(self.prompt[k]), float(self.reusable[k])


def turn_breakdown(session: np.ndarray, prompt: np.ndarray, output: np.ndarray, *, max_turn: int = 8,
                   blocks: tuple[np.ndarray, np.ndarray] | None = None, block_tokens: int = 512) -> TurnBreakdown:  # fmt: skip
    """Mean prompt and reusable tokens per turn of the sessions in a workload.

    ``session`` is each request's session key (-1: none), requests in the
    order they are sent (a session's turns in turn order, interleaved with
    other sessions' or not).  A request's turn number counts its session's
    requests so far.  Turn k + 1 resends turn k's conversation: without
    ``blocks`` the reusable part is ``min(prompt_k + output_k, prompt_{k+1})``
    (the conversation so far, as far as the new prompt holds it); with
    ``blocks = (block_offsets, block_hashes)`` (the trace's prefix blocks) it
    is ``block_tokens`` times the leading blocks the two prompts share, at
    most the prompt.  A first turn has none.  Turns past ``max_turn`` are
    left out.  O(n) (+ O(blocks)).

    Raises:
        ValueError: arrays of different lengths, or ``max_turn`` < 1.
    """
    session, prompt, output = (np.asarray(a) for a in (session, prompt, output))
    if not len(session) == len(prompt) == len(output):
        raise ValueError("session, prompt and output must have one entry per request")
    if max_turn < 1:
        raise ValueError(f"max_turn must be at least 1, got {max_turn!r}")
    n = len(session)
    turn = np.ones(n, dtype=np.int64)
    reusable = np.zeros(n)
    last: dict[int, tuple[int, int]] = {}  # session -> (its last request, that request's turn)
    for i, key in enumerate(session.tolist()):
        if key < 0:
            continue
        seen = last.get(key)
        if seen is not None:
            j, t = seen
            turn[i] = t + 1
            if blocks is None:
                reusable[i] = min(int(prompt[j]) + int(output[j]), int(prompt[i]))
            else:
                offsets, hashes = blocks
                mine, theirs = hashes[offsets[i]:offsets[i + 1]], hashes[offsets[j]:offsets[j + 1]]
                k = min(len(mine), len(theirs))
                same = int(np.argmin(mine[:k] == theirs[:k])) if k and not np.all(mine[:k] == theirs[:k]) else k
                reusable[i] = min(same * block_tokens, int(prompt[i]))
        last[key] = (i, int(turn[i]))
    turns = np.arange(1, max_turn + 1)
    count = np.array([np.sum(turn == t) for t in turns])
    mean = lambda v, t: float(v[turn == t].mean()) if np.any(turn == t) else math.nan  # noqa: E731
    return TurnBreakdown(turns, count, np.array([mean(prompt, t) for t in turns]), np.array([mean(reusable, t) for t in turns]))


def kv_reuse_figure(breakdown: TurnBreakdown, models: Mapping[str, LatencyModel], *, title: str = "synthetic sessions") -> Figure:
    """Left: each turn's mean prompt, split into tokens an earlier turn computed and new ones.

    Right: the prefill seconds of that mean prompt on each GPU (alone on the
    server, :meth:`LatencyModel.prefill_time`), recomputed from scratch
    (solid) and with the reusable tokens found in the server's KV cache
    (dashed: only the new tokens are prefilled).
    """
    fig = Figure(figsize=(11, 3.8), dpi=72)
    tokens, seconds = fig.subplots(1, 2)
    t = breakdown.turn
    new = breakdown.prompt - breakdown.reusable
    tokens.bar(t, breakdown.reusable, color="#4c78a8", label="resent context (computed by an earlier turn)")
    tokens.bar(t, new, bottom=breakdown.reusable, color="#f58518", label="new tokens (this turn's message)")
    tokens.set_xlabel("turn of the conversation (number)")
    tokens.set_ylabel("mean prompt (tokens)")
    tokens.set_title(f"{title}: a turn resends the whole conversation", fontsize=9)
    tokens.legend(fontsize="x-small", loc="upper left")
    for k, (name, model) in enumerate(models.items()):
        color = _COLORS[k % len(_COLORS)]
        full = [model.prefill_time(int(round(p))) if np.isfinite(p) else math.nan for p in breakdown.prompt]
        reuse = [model.prefill_time(int(round(p))) if np.isfinite(p) else math.nan for p in new]
        seconds.plot(t, full, marker="o", color=color, label=f"{name}: recompute everything")
        seconds.plot(t, reuse, marker="o", linestyle="--", color=color, label=f"{name}: reuse the cached context")
    seconds.set_xlabel("turn of the conversation (number)")
    seconds.set_ylabel("prefill of the mean prompt (s)")
    seconds.set_title("Prefill time, alone on the GPU (7B FP16)", fontsize=9)
    seconds.legend(fontsize="x-small", loc="upper left")
    seconds.grid(alpha=0.3)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.14, top=0.9, wspace=0.22)
    return fig


# -- KV migration ---------------------------------------------------------------------------------------

#: The links the migration picture draws (a subset of :data:`solution.sim.kvcache.LINKS`, GB/s one way).
MIGRATION_LINKS: tuple[str, ...] = ("NVLink 3 (A100)", "PCIe 4.0 x16", "RDMA 400 Gb/s", "RDMA 100 Gb/s", "10 GbE")


def migration_figure(gpu: GpuSpec, *, models: Sequence[str] = ("7B FP16", "Llama-3.1-8B"), links: Sequence[str] = MIGRATION_LINKS,
                     max_tokens: int = 32_768) -> Figure:  # fmt: skip
    """One panel per model (:data:`solution.sim.gpus.MODEL_PRESETS` names): recomputing a context's prefill on ``gpu``
    against moving its KV cache over each link (:data:`solution.sim.kvcache.LINKS`).

    Where a link's line lies below the prefill line, moving the cache is
    faster (:func:`~solution.sim.kvcache.migration_time`, transfer only: no
    setup latency, no contention on the link); the title gives
    :func:`~solution.sim.kvcache.break_even_gb_s`.
    """
    from solution.sim.gpus import model_preset
    from solution.sim.kvcache import LINKS, break_even_gb_s, migration_time, recompute_time

    fig = Figure(figsize=(11, 3.8), dpi=72)
    axes = np.atleast_1d(fig.subplots(1, len(models), sharey=True))
    x = np.linspace(0, max_tokens, 65).astype(int)
    for ax, name in zip(axes, models):
        model = model_preset(name)
        kib = model.kv_bytes_per_token / 1024
        ax.plot(x, [recompute_time(int(v), model, gpu) for v in x], color="#333333", linewidth=2.5,
                label=f"recompute the prefill on {gpu.name}")  # fmt: skip
        for k, link in enumerate(links):
            ax.plot(x, [migration_time(int(v), model, LINKS[link]) for v in x], color=_COLORS[k % len(_COLORS)], linestyle="--",
                    label=f"move the cache: {link}, {LINKS[link]:g} GB/s")  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylim(1e-3, 30)
        ax.set_xlabel("context to reuse (tokens)")
        ax.set_ylabel("time to have the cache on the new server (s)")
        ax.set_title(f"{name} ({kib:.0f} KiB/token): break-even {break_even_gb_s(model, gpu):.1f} GB/s", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="x-small", loc="lower right")
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.14, top=0.9, wspace=0.12)
    return fig


# -- consistent hashing with bounded loads ----------------------------------------------------------------


def _unit(data: str) -> float:
    """``stable_hash64(data)`` as a point in [0, 1): blake2b (8 bytes), the same in every process.  O(len(data))."""
    return stable_hash64(data) / 2.0**64


def ring_points(servers: Sequence[str], vnodes: int, *, seed: int = 0) -> list[tuple[float, str]]:
    """The ring: ``vnodes`` points per server, sorted by (position, server).  O(S v log(S v)).

    Server ``s``'s i-th point is ``stable_hash64(f"{seed}/{s}/{i}")`` scaled to
    [0, 1): the very points :class:`solution.affinity.BoundedLoadHash` puts on
    its ring, so the picture shows where the strategy sends a key.

    Raises:
        ValueError: no servers, a repeated server, or ``vnodes`` < 1.
    """
    if not servers or len(set(servers)) != len(servers):
        raise ValueError("give at least one server, each once")
    if isinstance(vnodes, bool) or not isinstance(vnodes, int) or vnodes < 1:
        raise ValueError(f"vnodes must be an int >= 1, got {vnodes!r}")
    return sorted((_unit(f"{seed}/{sid}/{i}"), sid) for sid in servers for i in range(vnodes))


def key_point(key: str, *, seed: int = 0) -> float:
    """Where ``key`` (a session id) sits on the ring, in [0, 1): ``stable_hash64(f"{seed}/{key}")`` scaled.  O(len(key))."""
    return _unit(f"{seed}/{key}")


@dataclass(frozen=True)
class RingAssignment:
    """Where each key went: its ring position, the server its point reaches first, the server that took it."""

    keys: tuple[str, ...]
    position: tuple[float, ...]
    first: tuple[str, ...]  # the first server clockwise (plain consistent hashing's choice)
    server: tuple[str, ...]  # the server that took it under the bound
    load: Mapping[str, int]  # keys per server under the bound
    plain_load: Mapping[str, int]  # keys per server under plain consistent hashing
    bound: int  # the bound when the last key arrived: ceil((1 + epsilon) * keys / servers)
    epsilon: float

    @property
    def moved(self) -> int:
        """Keys that walked past their first server because it was at its bound."""
        return sum(a != b for a, b in zip(self.first, self.server))


def bounded_load_assign(keys: Sequence[str], servers: Sequence[str], *, epsilon: float, vnodes: int = 3) -> RingAssignment:
    """Assign ``keys`` in order, each kept for good (sessions that never end), by the bounded-load walk.

    Key ``j`` (``j`` keys already placed) walks clockwise from its point and
    takes the first server holding fewer than ``ceil((1 + epsilon) * (j + 1)
    / S)`` keys: no server ever exceeds ``(1 + epsilon)`` times the mean,
    rounded up.  ``epsilon = inf`` is plain consistent hashing.
    O(keys x (log(S v) + walk)); the walk is short when epsilon is not tiny.

    Raises:
        ValueError: ``epsilon`` not > 0, or what :func:`ring_points` refuses.
    """
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0 (inf: no bound), got {epsilon!r}")
    ring = ring_points(servers, vnodes)
    where = np.array([p for p, _ in ring])
    load = {sid: 0 for sid in servers}
    plain = {sid: 0 for sid in servers}
    first, chosen, positions = [], [], []
    bound = 0
    for j, key in enumerate(keys):
        pos = key_point(key)
        start = int(np.searchsorted(where, pos)) % len(ring)
        bound = math.ceil((1 + epsilon) * (j + 1) / len(servers)) if math.isfinite(epsilon) else j + 1
        first.append(ring[start][1])
        plain[ring[start][1]] += 1
        for step in range(len(ring)):
            sid = ring[(start + step) % len(ring)][1]
            if load[sid] < bound:
                break
        load[sid] += 1
        chosen.append(sid)
        positions.append(pos)
    return RingAssignment(tuple(keys), tuple(positions), tuple(first), tuple(chosen), load, plain, bound, float(epsilon))


def _next_point(ring: Sequence[tuple[float, str]], sid: str, pos: float) -> float:
    """The position of ``sid``'s first point clockwise from ``pos`` (past 1 when the walk wraps).  O(S v)."""
    mine = [p for p, s in ring if s == sid]
    after = [p for p in mine if p >= pos]
    return min(after) if after else min(mine) + 1.0


def ring_figure(servers: Sequence[str] = ("gpu-0", "gpu-1", "gpu-2", "gpu-3"), keys: int = 24, *, epsilon: float = 0.25,
                vnodes: int = 3, hot: str | None = None) -> Figure:  # fmt: skip
    """Left: the ring, with each server's points, each key's position and where it went. Right: the loads.

    ``keys`` sessions ``session-0`` ... are placed in order.  A key is drawn
    at its ring position in the colour of the server that took it; a line
    joins it to that server's label when it walked past its first server
    (that one was at its bound).  The bar chart compares the keys per server
    with plain consistent hashing and the bound ``ceil((1 + epsilon) x
    mean)``.  ``hot`` names one session id to highlight.
    """
    names = [f"session-{i}" for i in range(keys)]
    got = bounded_load_assign(names, servers, epsilon=epsilon, vnodes=vnodes)
    color = {sid: _COLORS[k % len(_COLORS)] for k, sid in enumerate(servers)}
    fig = Figure(figsize=(11, 5.0), dpi=72)
    ring_ax = fig.add_axes((0.0, 0.02, 0.5, 0.88))
    bars = fig.add_axes((0.58, 0.14, 0.4, 0.72))
    theta = np.linspace(0, 2 * np.pi, 361)
    ring_ax.plot(np.cos(theta), np.sin(theta), color="#bbbbbb", linewidth=1.5, label="the hash ring (positions 0 to 1, clockwise)")

    def xy(pos: float, radius: float = 1.0) -> tuple[float, float]:
        angle = np.pi / 2 - 2 * np.pi * pos  # 0 at the top, clockwise
        return radius * np.cos(angle), radius * np.sin(angle)

    ring = ring_points(servers, vnodes)
    labelled: list[float] = []
    for pos, sid in ring:
        x, y = xy(pos)
        ring_ax.plot([x], [y], marker="s", markersize=11, color=color[sid], markeredgecolor="#333333", linestyle="none",
                     label="_nolegend_")  # fmt: skip
        if all(min(abs(pos - p), 1 - abs(pos - p)) > 0.025 for p in labelled):  # no label over another (the legend names colours)
            tx, ty = xy(pos, 1.17)
            ring_ax.text(tx, ty, sid, ha="center", va="center", fontsize=7, color=color[sid], weight="bold")
            labelled.append(pos)
    walked_so_far = 0
    for key, pos, first, sid in zip(got.keys, got.position, got.first, got.server):
        x, y = xy(pos, 0.86)
        walked = first != sid
        ring_ax.plot([x], [y], marker="o", markersize=7, color=color[sid] if not walked else "white",
                     markeredgecolor=color[sid], markeredgewidth=2, linestyle="none", label="_nolegend_")  # fmt: skip
        if walked:
            # the walk: clockwise from the key's point to the server that took it
            target = _next_point(ring, sid, pos)
            arc = np.linspace(pos, target, 30)
            ax_, ay_ = zip(*(xy(a, 0.78 - 0.05 * walked_so_far) for a in arc))
            walked_so_far += 1
            ring_ax.plot(ax_, ay_, color=color[sid], linewidth=1.2, linestyle=":", label="_nolegend_")
        if key == hot:
            ring_ax.annotate(key, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=8)
    handles = [Line2D([], [], marker="s", color=c, markeredgecolor="#333333", linestyle="none", markersize=9, label=f"{s}'s points")
               for s, c in color.items()]  # fmt: skip
    handles += [
        Line2D([], [], marker="o", color="#777777", linestyle="none", markersize=7, label="a session, kept by the first server clockwise"),
        Line2D([], [], marker="o", color="white", markeredgecolor="#777777", markeredgewidth=2, linestyle=":",
               markersize=7, label="a session that walked on: its first server was at the bound"),
    ]  # fmt: skip
    ring_ax.legend(handles=handles, fontsize="x-small", loc="lower center", bbox_to_anchor=(0.5, -0.04), ncol=2, frameon=False)
    ring_ax.set_xlim(-1.35, 1.35)
    ring_ax.set_ylim(-1.75, 1.3)
    ring_ax.set_aspect("equal")
    ring_ax.axis("off")
    ring_ax.set_title(f"A hash ring, {vnodes} points per server, {keys} sessions, epsilon = {epsilon:g}", fontsize=9)
    x = np.arange(len(servers))
    bars.bar(x - 0.2, [got.plain_load[s] for s in servers], width=0.4, color="#bbbbbb", label="plain consistent hashing")
    bars.bar(x + 0.2, [got.load[s] for s in servers], width=0.4, color=[color[s] for s in servers],
             label=f"bounded loads, epsilon = {epsilon:g} (server's colour)")  # fmt: skip
    bars.axhline(got.bound, color="#e45756", linestyle="--", label=f"bound ceil((1 + eps) x mean) = {got.bound}")
    bars.axhline(keys / len(servers), color="#333333", linestyle=":", label=f"mean {keys / len(servers):g}")
    bars.set_xticks(x, list(servers))
    bars.set_xlabel("server (id)")
    bars.set_ylabel("sessions mapped to it (count)")
    bars.set_title(f"Sessions per server: {got.moved} of {keys} walked on", fontsize=9)
    bars.legend(fontsize="x-small", loc="upper right")
    bars.set_ylim(0, max(max(got.plain_load.values()), got.bound) * 1.45 + 1)
    return fig


# -- the race, the pile-up, the cache over time --------------------------------------------------------

#: What each race policy is, for legends and the widget's menu (``solution.sim.affinityrace`` names).
POLICY_NAMES: Mapping[str, str] = {
    "none": "no affinity (least connections)",
    "hard": "hard affinity",
    "soft": "soft affinity",
    "bounded": "bounded-load hashing",
    "prefix": "prefix-aware",
}


def occupancy_figure(times: np.ndarray, occupancy: np.ndarray, capacity: np.ndarray, load: np.ndarray, server_ids: Sequence[str],
                     *, now: float | None = None, title: str = "one run") -> Figure:  # fmt: skip
    """Left: each server's KV cache over time, as a share of its capacity; middle: its requests in flight.

    Right: both at the play head ``now`` (the end when ``None``), one bar per
    server.  ``occupancy`` and ``load`` are (times x servers) arrays
    (blocks, requests), ``capacity`` the blocks each server holds.  What lies
    after ``now`` is hidden.  O(T x S).
    """
    t = np.asarray(times, float)
    occ = np.asarray(occupancy, float) / np.maximum(np.asarray(capacity, float), 1.0)[None, :]
    busy = np.asarray(load, float)
    end = float(t[-1]) if t.size else 0.0
    horizon = end if now is None else float(now)
    keep = t <= horizon + 1e-12
    at = int(np.searchsorted(t, horizon, side="right")) - 1 if t.size else -1
    fig = Figure(figsize=(11, 3.6), dpi=72)
    cache_ax, load_ax, bar_ax = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.3, 1.3, 0.9]})
    for k, sid in enumerate(server_ids):
        color = _COLORS[k % len(_COLORS)]
        cache_ax.plot(t[keep], occ[keep, k], color=color, label=sid)
        load_ax.step(t[keep], busy[keep, k], where="post", color=color, label=sid)
    for ax in (cache_ax, load_ax):
        ax.set_xlim(0.0, max(end, 1e-9))
        ax.set_xlabel("simulated time (s)")
        ax.grid(alpha=0.3)
        if now is not None and now < end:
            ax.axvline(now, color="#e45756", linewidth=1, label="now")
        ax.legend(fontsize="x-small", ncol=2, loc="upper left")
    cache_ax.set_ylim(0, 1.05)
    cache_ax.set_ylabel("KV cache in use (fraction of capacity)")
    cache_ax.set_title(f"{title}: each server's prefix cache", fontsize=9)
    load_ax.set_ylabel("requests in flight (count)")
    load_ax.set_title("each server's load", fontsize=9)
    x = np.arange(len(server_ids))
    if at >= 0:
        bar_ax.bar(x - 0.2, occ[at], width=0.4, color="#4c78a8", label="cache in use (fraction)")
        peak = max(float(busy.max()), 1.0)
        bar_ax.bar(x + 0.2, busy[at] / peak, width=0.4, color="#f58518", label=f"load (fraction of the peak, {peak:.0f})")
    bar_ax.set_xticks(x, list(server_ids), fontsize=7, rotation=45)
    bar_ax.set_ylim(0, 1.45)
    bar_ax.set_xlabel("server (id)")
    bar_ax.set_ylabel("at the play head (fraction)")
    bar_ax.set_title(f"at t = {horizon:.0f} s", fontsize=9)
    bar_ax.legend(fontsize="x-small", loc="upper center", ncol=1)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.2, top=0.9, wspace=0.3)
    return fig


def pileup_figure(runs: Mapping[str, object], *, title: str = "hot sessions") -> Figure:
    """One panel per run (``label -> AffinityRun``): each server's requests in flight over time.

    The point: under hard affinity the hot sessions' server carries far more
    than the others; soft affinity spreads it at the cost of a few re-maps.
    Each run needs ``times``, ``load`` (times x servers) and ``server_ids``.
    """
    fig = Figure(figsize=(11, 3.4), dpi=72)
    axes = np.atleast_1d(fig.subplots(1, len(runs), sharey=True))
    for ax, (label, run) in zip(axes, runs.items()):
        t, load = np.asarray(run.times, float), np.asarray(run.load, float)  # type: ignore[attr-defined]
        for k, sid in enumerate(run.server_ids):  # type: ignore[attr-defined]
            ax.step(t, load[:, k], where="post", color=_COLORS[k % len(_COLORS)], label=sid, linewidth=1)
        mean = load.mean(axis=1)
        ax.plot(t, mean, color="#333333", linestyle="--", linewidth=1.5, label="mean over servers")
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("requests in flight (count)")
        ax.set_title(f"{title}: {label}", fontsize=9)
        ax.legend(fontsize="x-small", ncol=3, loc="upper left")
        ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.15, top=0.9, wspace=0.08)
    return fig


def race_figure(result: object, *, metrics: Sequence[tuple[str, str]] = (
        ("hit_rate", "cache hit rate (fraction of prompt blocks)"), ("ttft_p99", "p99 time to first token (s)"),
        ("imbalance", "load imbalance (max / mean in flight, ratio)"))) -> Figure:  # fmt: skip
    """One panel per metric: each policy's mean with its interval over seeds; the hit-rate panel shows the ceiling.

    ``result`` is an ``AffinityRaceResult`` (``.values`` keyed by policy,
    ``.interval(policy, metric) -> (mean, low, high)``, ``.ceiling``,
    ``.workload``).
    """
    policies = list(result.values)  # type: ignore[attr-defined]
    fig = Figure(figsize=(12, 3.8), dpi=72)
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    y = np.arange(len(policies))
    for ax, (metric, label) in zip(axes, metrics):
        got = [result.interval(p, metric) for p in policies]  # type: ignore[attr-defined]
        mean = np.array([g[0] for g in got])
        err = np.array([[g[0] - g[1] for g in got], [g[2] - g[0] for g in got]])
        seeds = len(getattr(result, "seeds", ()) or ())
        what = "one replay (a trace: no seeds)" if seeds <= 1 else f"mean, interval over {seeds} seeds"
        ax.barh(y, mean, xerr=err if seeds > 1 else None, color=[_policy_color(p) for p in policies], capsize=3, label=what)
        if metric == "hit_rate":
            ceiling = mean_ceiling(result)
            ax.axvline(ceiling, color="#e45756", linestyle="--", label=f"ceiling (unbounded cache) {ceiling:.2f}")
        ax.set_yticks(y, policies, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel("policy (name)", fontsize=8)
        ax.set_title(label.split(" (")[0], fontsize=9)
        ax.legend(fontsize="x-small", loc="lower right")
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"The race on {result.workload}", fontsize=10)  # type: ignore[attr-defined]
    fig.subplots_adjust(left=0.1, right=0.99, bottom=0.15, top=0.85, wspace=0.55)
    return fig


def mean_ceiling(result: object) -> float:
    """A race's ceiling averaged over its seeds (each seed's traffic has its own): hit rate / ceiling ratio, per seed.  O(seeds)."""
    label = result.policies[0]  # type: ignore[attr-defined]
    got = result.values[label]  # type: ignore[attr-defined]
    per_seed = [h / r for h, r in zip(got["hit_rate"], got["ceiling_ratio"]) if r > 0]
    return float(np.mean(per_seed)) if per_seed else float(result.ceiling)  # type: ignore[attr-defined]


def _policy_color(label: str) -> str:
    """A race policy's colour, by its family: the race's labels start ``no affinity``, ``hard``, ``soft``, ``bounded``, ``prefix``."""
    for k, (kind, start) in enumerate((("none", "no "), ("hard", "hard"), ("soft", "soft"), ("bounded", "bounded"), ("prefix", "prefix"))):
        if label.startswith(start) or label == kind:
            return _COLORS[k]
    return "#999999"


# -- the widget ------------------------------------------------------------------------------------


class AffinityExplorer(CachedExplorer):
    """``display(AffinityExplorer())``: pick a policy, its slack (or epsilon), the TTL, the cache size and the load.

    Each change runs one small seeded simulation (``solution.sim.affinityrace.affinity_run``:
    four servers, a few hundred session turns) and redraws each server's KV
    cache and load over time; the play slider moves through the run.  The
    summary gives the hit rate against the ceiling (an unbounded cache), TTFT
    p50 and p99, the load imbalance and the re-maps.  Runs are cached per
    setting.  ``tests/test_affinity_widgets.py`` measures the median time
    per change.
    """

    def __init__(self, *, requests: int = 600, seed: int = 1, servers: int = 4) -> None:
        import ipywidgets as W

        from solution.sim.affinityrace import GPU, MODEL
        from solution.sim.kvcache import kv_capacity_blocks

        self.requests, self.seed, self.servers = requests, seed, servers
        full = kv_capacity_blocks(MODEL, gpu_preset(GPU))  # the race's model and GPU: what a server holds by default
        self.full_blocks = full
        style = {"continuous_update": False}
        self.policy = W.Dropdown(options=[(v, k) for k, v in POLICY_NAMES.items()], value="soft", description="policy")
        self.slack = W.FloatSlider(value=0.25, min=0.0, max=2.0, step=0.05, description="slack / eps", **style)
        self.ttl = W.SelectionSlider(options=[10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0], value=600.0, description="TTL (s)", **style)
        sizes = sorted({max(1, full // 16), max(1, full // 8), max(1, full // 4), max(1, full // 2), full})
        self.cache = W.SelectionSlider(options=sizes, value=full, description="cache (blocks)", **style)
        self.load = W.FloatSlider(value=0.7, min=0.2, max=1.2, step=0.05, description="load", **style)
        self.play = W.Play(value=50, min=0, max=100, step=5, interval=300, description="play")
        self.at = W.IntSlider(value=50, min=0, max=100, step=1, description="time (%)", continuous_update=True)
        W.jslink((self.play, "value"), (self.at, "value"))
        self.image = W.Image(format="png", layout=W.Layout(width="900px"))
        self.summary = W.HTML()
        for control in (self.policy, self.slack, self.ttl, self.cache, self.load):
            control.observe(lambda _: self.run(), names="value")
        self.at.observe(lambda _: self.draw(), names="value")
        self.widget = W.VBox([W.HBox([self.policy, self.slack, self.load]), W.HBox([self.ttl, self.cache]),
                              W.HBox([self.play, self.at]), self.image, self.summary])  # fmt: skip
        self._cache: dict[tuple, object] = {}
        self.record: object | None = None
        self.run()

    def setting(self) -> tuple:
        """The current controls, as the key runs are cached under."""
        return (self.policy.value, round(self.slack.value, 4), self.ttl.value, self.cache.value, round(self.load.value, 4))

    def simulate(self, key: tuple) -> object:
        """One small seeded run of ``solution.sim.affinityrace.affinity_run`` for the setting ``key``."""
        from solution.sim.affinityrace import affinity_run

        policy, slack, ttl, cache, load = key
        return affinity_run(policy, slack=slack, epsilon=max(slack, 0.01), ttl=ttl, cache_blocks=cache, load=load,
                            servers=self.servers, requests=self.requests, seed=self.seed)  # fmt: skip

    def draw(self) -> None:
        """Redraw the current run at the play head, and its summary."""
        import html
        import time

        run = self.record
        if run is None:
            return
        started = time.perf_counter()
        self.image.value = figure_png(self.figure())
        m = run.metrics  # type: ignore[attr-defined]
        policy, slack, ttl, cache, load = self.setting()
        knob = {"soft": f", slack {slack:g}", "bounded": f", epsilon {max(slack, 0.01):g}", "prefix": f", slack {slack:g}"}.get(policy, "")
        self.summary.value = (
            f"<b>{html.escape(POLICY_NAMES[policy])}</b>{knob}, TTL {ttl:g} s, cache {cache} blocks per server, load {load:g}: "
            f"hit rate <b>{m['hit_rate']:.3f}</b> ({m['ceiling_ratio']:.0%} of the ceiling), TTFT p50 {m['ttft_p50']:.3f} s, "
            f"p99 <b>{m['ttft_p99']:.3f} s</b>, imbalance <b>{m['imbalance']:.2f}</b> (max / mean in flight), re-maps {m['remaps']:.0f}"
            f"<br><small>simulated in {self.simulated_ms:.0f} ms, drawn in {(time.perf_counter() - started) * 1000:.0f} ms</small>"
        )

    def figure(self) -> Figure:
        run = self.record
        if run is None:
            raise ValueError("no run to draw: the last run raised NotImplementedError (see the summary)")
        times = np.asarray(run.times, float)  # type: ignore[attr-defined]
        now = float(times[-1]) * self.at.value / 100 if times.size else None
        return occupancy_figure(times, run.occupancy, run.capacity_blocks, run.load, run.server_ids, now=now,  # type: ignore[attr-defined]
                                title=POLICY_NAMES[self.policy.value])  # fmt: skip

