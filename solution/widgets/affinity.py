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
  recomputing its prefill, per context length, for two models.

Measurements (O(1) formulas, or O(n) over a workload):

* :func:`turn_breakdown`: per turn number, the mean prompt and the part of it
  the previous turn left in a server's KV cache.
* :func:`migration_seconds`, :func:`break_even_gb_s`: a transfer's time and
  the link bandwidth above which moving the cache beats recomputing it.
* :func:`ring_points`, :func:`bounded_load_assign`: the ring the picture
  draws, and the walk that assigns keys to it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from solution.core.latency import LatencyModel
from solution.sim.gpus import GpuSpec, ModelSpec

__all__ = [
    "LINKS", "MODELS", "TurnBreakdown", "turn_breakdown", "kv_reuse_figure", "migration_seconds", "break_even_gb_s",
    "migration_figure", "ring_points", "key_point", "RingAssignment", "bounded_load_assign", "ring_figure",
]  # fmt: skip

#: Links a KV cache can move over, nominal bandwidth in GB/s (10^9 bytes/s) one way.
LINKS: Mapping[str, float] = {
    "NVLink 3 (A100), 300 GB/s": 300.0,
    "PCIe 4.0 x16, 32 GB/s": 32.0,
    "RDMA 200 Gb/s, 25 GB/s": 25.0,
    "100 GbE, 12.5 GB/s": 12.5,
    "10 GbE, 1.25 GB/s": 1.25,
}

#: Two models of about the same size: full multi-head attention (the course's 7B, 512 KiB of KV cache
#: per token) and grouped-query attention (Llama-3-8B: 8 KV heads of 128, 32 layers, FP16: 128 KiB per token).
MODELS: Mapping[str, ModelSpec] = {
    "7B FP16 (MHA, 512 KiB/token)": ModelSpec(),
    "Llama-3-8B FP16 (GQA, 128 KiB/token)": ModelSpec(params=8e9, kv_bytes_per_token=2 * 32 * 8 * 128 * 2),
}

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


def turn_breakdown(session: np.ndarray, prompt: np.ndarray, output: np.ndarray, *, max_turn: int = 8) -> TurnBreakdown:
    """Mean prompt and reusable tokens per turn of the sessions in a workload.

    ``session`` is each request's session (-1: none; a session's requests are
    consecutive, in turn order, as :class:`solution.sim.workload.Requests`
    keeps them).  Turn k + 1 resends turn k's prompt and answer, so the
    reusable part is ``min(prompt_k + output_k, prompt_{k+1})`` (the
    conversation so far, as far as the new prompt holds it); a first turn
    has none.  Turns past ``max_turn`` are left out.  O(n).

    Raises:
        ValueError: arrays of different lengths, or ``max_turn`` < 1.
    """
    session, prompt, output = (np.asarray(a) for a in (session, prompt, output))
    if not len(session) == len(prompt) == len(output):
        raise ValueError("session, prompt and output must have one entry per request")
    if max_turn < 1:
        raise ValueError(f"max_turn must be at least 1, got {max_turn!r}")
    n = len(session)
    same = np.zeros(n, dtype=bool)
    if n > 1:
        same[1:] = (session[1:] == session[:-1]) & (session[1:] >= 0)
    # turn number: 1 + the length of the run of `same` ending here
    starts = np.flatnonzero(~same)
    turn = np.arange(n) - starts[np.searchsorted(starts, np.arange(n), side="right") - 1] + 1
    reusable = np.zeros(n)
    if n > 1:
        reusable[1:] = np.where(same[1:], np.minimum(prompt[:-1] + output[:-1], prompt[1:]), 0)
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


def migration_seconds(tokens: float, model: ModelSpec, link_gb_s: float) -> float:
    """Seconds to move the KV cache of ``tokens`` tokens over a link of ``link_gb_s`` GB/s (bytes / bandwidth).  O(1).

    Raises:
        ValueError: negative tokens or a bandwidth that is not > 0.
    """
    if not tokens >= 0:
        raise ValueError(f"tokens must be >= 0, got {tokens!r}")
    if not (link_gb_s > 0 and math.isfinite(link_gb_s)):
        raise ValueError(f"link_gb_s must be a finite number > 0, got {link_gb_s!r}")
    return tokens * model.kv_bytes_per_token / (link_gb_s * 1e9)


def break_even_gb_s(model: ModelSpec, gpu: GpuSpec) -> float:
    """The link bandwidth (GB/s) above which moving a cache beats recomputing its prefill on ``gpu``.

    Both grow linearly with the context in the course's latency model, so the
    break-even does not depend on its length: ``kv_bytes_per_token /
    (prefill seconds per token)``, the prefill per token taken from a long
    prompt alone on the GPU (a full-budget iteration per chunk).  O(1).
    """
    tokens = 100 * model.latency_model(gpu).token_budget
    per_token = model.latency_model(gpu).prefill_time(tokens) / tokens
    return model.kv_bytes_per_token / per_token / 1e9


def migration_figure(gpu: GpuSpec, *, models: Mapping[str, ModelSpec] = MODELS, links: Mapping[str, float] = LINKS,
                     max_tokens: int = 32_768) -> Figure:  # fmt: skip
    """One panel per model: recomputing a context's prefill on ``gpu`` against moving its KV cache over each link.

    Where a link's line lies below the prefill line, moving the cache is
    faster (transfer only: no setup latency, no contention on the link).
    """
    fig = Figure(figsize=(11, 3.8), dpi=72)
    axes = fig.subplots(1, len(models), sharey=True)
    axes = np.atleast_1d(axes)
    x = np.linspace(0, max_tokens, 65)
    for ax, (name, model) in zip(axes, models.items()):
        lm = model.latency_model(gpu)
        ax.plot(x, [lm.prefill_time(int(v)) for v in x], color="#333333", linewidth=2.5, label=f"recompute the prefill on {gpu.name}")
        for k, (link, bw) in enumerate(links.items()):
            ax.plot(x, [migration_seconds(v, model, bw) for v in x], color=_COLORS[k % len(_COLORS)], linestyle="--",
                    label=f"move the cache: {link}")  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylim(1e-3, 30)
        ax.set_xlabel("context to reuse (tokens)")
        ax.set_ylabel("time to have the cache on the new server (s)")
        ax.set_title(f"{name}: break-even {break_even_gb_s(model, gpu):.1f} GB/s", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="x-small", loc="lower right")
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.14, top=0.9, wspace=0.12)
    return fig


# -- consistent hashing with bounded loads ----------------------------------------------------------------


def _unit(data: str) -> float:
    """A deterministic point in [0, 1) for ``data``: blake2b (8 bytes), the same in every process.  O(len(data))."""
    digest = hashlib.blake2b(data.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def ring_points(servers: Sequence[str], vnodes: int) -> list[tuple[float, str]]:
    """The ring: ``vnodes`` points per server at ``hash(f"{server}#{i}")``, sorted by position.  O(S v log(S v)).

    Raises:
        ValueError: no servers, a repeated server, or ``vnodes`` < 1.
    """
    if not servers or len(set(servers)) != len(servers):
        raise ValueError("give at least one server, each once")
    if isinstance(vnodes, bool) or not isinstance(vnodes, int) or vnodes < 1:
        raise ValueError(f"vnodes must be an int >= 1, got {vnodes!r}")
    return sorted((_unit(f"{sid}#{i}"), sid) for sid in servers for i in range(vnodes))


def key_point(key: str) -> float:
    """Where ``key`` (a session id) sits on the ring, in [0, 1).  O(len(key))."""
    return _unit(key)


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
    for pos, sid in ring:
        x, y = xy(pos)
        ring_ax.plot([x], [y], marker="s", markersize=11, color=color[sid], markeredgecolor="#333333", linestyle="none",
                     label="_nolegend_")  # fmt: skip
        tx, ty = xy(pos, 1.17)
        ring_ax.text(tx, ty, sid, ha="center", va="center", fontsize=7, color=color[sid], weight="bold")
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
