"""Stage-6 pictures and widgets: reservation's rounding, a token bucket over time, preemption, the tier ladder.

Figures (matplotlib's OO API, no pyplot state; each passes the course's
figure rule, ``tests/sim/test_figures.py``):

* :func:`bucket_figure`: a token bucket's level over time, each request
  admitted or refused, and, for a refused one, the exact wait and the whole
  seconds of its ``Retry-After``.
* :func:`timeline_figure`: per request, when it waited, ran, was paused by a
  preemption and resumed (paying its recompute or swap first).
* :func:`preemption_cost_figure`: what a preempted request pays on resume,
  per context length: recompute (a prefill of prompt + generated tokens) or
  swap (its KV bytes out and back over PCIe).
* :func:`cobham_figure`: per priority class, the simulated mean wait with its
  interval against Cobham's formula, per load.
* :func:`ladder_figure`: per tier, each rung of the policy ladder's SLO
  attainment and p99 TTFT, with intervals over seeds.
* :func:`explorer_figure` and :class:`TierExplorer`: the widget; per tier,
  the p99 TTFT by arrival window and the SLO attainment, against the same
  traffic through one FIFO queue.

Measurements (O(1) formulas, or O(n) over what they are given):

* :func:`rounding_rows`: per server capacity, the slots a tier table
  reserves for a tier and the share that is.
* :func:`bucket_trace`: drive a token bucket through a sequence of requests
  and sample its level, in time order.
* :func:`timeline_from_outcomes`: a request path's outcomes (``Dispatched``,
  ``Preempted``, final) as per-request spans.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from solution.sim.gpus import GpuSpec, ModelSpec
from solution.widgets.drawing import CachedExplorer

__all__ = [
    "TIER_COLORS", "RoundingRow", "rounding_rows", "BucketTrace", "bucket_trace", "bucket_figure", "Span", "timeline_from_outcomes",
    "timeline_figure", "TIMELINE_STATES", "recompute_seconds", "swap_seconds", "preemption_cost_figure", "cobham_figure",
    "ladder_figure", "window_p99", "ExplorerRun", "explorer_run", "explorer_figure", "TierExplorer",
]  # fmt: skip

#: One colour per tier of the course's standard table (others get the default cycle).
TIER_COLORS = {"premium": "#4c78a8", "free": "#f58518", "batch": "#54a24b"}

_CYCLE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac", "#eeca3b")


def _color(name: str, k: int) -> str:
    return TIER_COLORS.get(name, _CYCLE[k % len(_CYCLE)])


# -- reservation: the rounding table ------------------------------------------------------------------


@dataclass(frozen=True)
class RoundingRow:
    """One server capacity: the slots reserved for the tier, the share that is, and what lower tiers may use."""

    capacity: int
    reserved: int
    share: float  # reserved / capacity
    lower_limit: int  # the slots a tier of the lowest class may use on a healthy server of this capacity


def rounding_rows(table: Any, tier: str, capacities: Iterable[int] = range(1, 9)) -> list[RoundingRow]:
    """Per capacity, what ``table`` (a ``TierTable``) reserves for ``tier`` and leaves to its lowest class.

    Reads ``table.reserved_slots(tier, c)`` and ``table.limit(lowest, c, c)``
    (a healthy server: its effective limit is its capacity), so the table is
    the implementation's own.  O(len(capacities)).
    """
    lowest = table.by_class[-1].name
    rows = []
    for c in capacities:
        reserved = int(table.reserved_slots(tier, c))
        rows.append(RoundingRow(int(c), reserved, reserved / c, int(table.limit(lowest, c, c))))
    return rows


# -- a token bucket over time ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketTrace:
    """A token bucket driven through requests: its level on a time grid, and each request's verdict."""

    times: np.ndarray  # the grid, seconds
    level: np.ndarray  # the bucket's level at each grid time (after the requests at that time)
    burst: float
    rate: float  # tokens per second
    at: np.ndarray  # each request's time, seconds
    need: np.ndarray  # each request's tokens
    wait: np.ndarray  # 0.0 admitted (and charged); > 0 the exact seconds until it would be
    retry_after: np.ndarray  # whole seconds, ceil(wait) (0 for an admitted request)

    @property
    def admitted(self) -> np.ndarray:
        return self.wait == 0.0


def bucket_trace(bucket: Any, requests: Sequence[tuple[float, float]], *, until: float | None = None,
                 step: float = 0.05) -> BucketTrace:  # fmt: skip
    """Drive ``bucket`` (a ``TokenBucket``: ``take(n, now)``, ``level(now)``, ``rate``, ``burst``) through ``requests``.

    ``requests`` is ``(time, tokens)`` in time order.  The level is sampled
    on a grid of ``step`` seconds up to ``until`` (default: the last request
    + 20% of the span), interleaved with the requests in time order (a
    bucket's clock never goes back): the level at a request's time is the
    one after it was charged.  O(len(requests) + until / step).

    Raises:
        ValueError: requests out of time order, or ``step`` not positive.
    """
    if not step > 0:
        raise ValueError(f"step must be positive seconds, got {step!r}")
    at = np.array([float(t) for t, _ in requests])
    need = np.array([float(n) for _, n in requests])
    if np.any(np.diff(at) < 0):
        raise ValueError("requests must be in time order (a bucket's clock never goes back)")
    end = float(until) if until is not None else (float(at[-1]) * 1.2 if len(at) else 10.0)
    grid = np.arange(0.0, end + step / 2, step)
    events = sorted([(float(t), 0, k) for k, t in enumerate(grid)] + [(float(t), -1, k) for k, t in enumerate(at)])
    level = np.empty(len(grid))
    wait = np.zeros(len(at))
    for t, kind, k in events:  # requests first at a shared time (kind -1), then the sample
        if kind < 0:
            wait[k] = float(bucket.take(need[k], t))
        else:
            level[k] = float(bucket.level(t))
    retry = np.array([math.ceil(w) if w > 0 else 0 for w in wait], dtype=np.int64)
    return BucketTrace(grid, level, float(bucket.burst), float(bucket.rate), at, need, wait, retry)


def bucket_figure(trace: BucketTrace, *, title: str = "a token bucket: level over time") -> Figure:
    """The bucket's level, its burst, each request (admitted: a dot at its cost; refused: a cross) and each refusal's wait.

    For a refused request the figure draws the exact wait (a horizontal
    segment from its time to ``time + wait``, where the bucket first holds
    enough) and marks ``time + Retry-After`` (the whole second the 429 gives).
    """
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(trace.times, trace.level, color="#4c78a8", linewidth=1.5, label=f"level (refill {trace.rate:g} tokens per s)")
    ax.axhline(trace.burst, color="grey", linestyle="--", linewidth=1, label=f"burst {trace.burst:g} tokens")
    ok = trace.admitted
    if ok.any():
        ax.plot(trace.at[ok], trace.need[ok], "o", color="#54a24b", label="admitted: its tokens charged")
    if (~ok).any():
        ax.plot(trace.at[~ok], trace.need[~ok], "x", color="#e45756", markersize=8, mew=2, label="refused: 429, nothing charged")
        xs, ys = [], []
        for t, n, w in zip(trace.at[~ok], trace.need[~ok], trace.wait[~ok]):
            xs += [t, t + w, np.nan]
            ys += [n, n, np.nan]
        ax.plot(xs, ys, color="#e45756", linewidth=1, label="exact wait until it fits")
        ax.plot(trace.at[~ok] + trace.retry_after[~ok], trace.need[~ok], "|", color="black", markersize=12, mew=2,
                label="Retry-After (whole seconds)")  # fmt: skip
    ax.set_xlabel("time (s)")
    ax.set_ylabel("tokens in the bucket (tokens)")
    ax.set_ylim(bottom=0, top=trace.burst * 1.5)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", loc="upper right", ncol=3)
    return fig


# -- preemption: a per-request timeline -----------------------------------------------------------------


@dataclass
class Span:
    """One stretch of one request's life: ``state`` is waiting, running, paused, resume cost or resumed."""

    request: str
    state: str
    start: float
    end: float
    server: str | None = None


#: States a timeline draws, in legend order, with their colours.
TIMELINE_STATES = {"waiting": "#bab0ac", "running": "#4c78a8", "paused": "#e45756", "resume cost": "#eeca3b", "resumed": "#72b7b2"}


def timeline_from_outcomes(outcomes: Iterable[Any], *, resume_cost: Callable[[str, float], float] | None = None,
                           end: float | None = None) -> dict[str, list[Span]]:  # fmt: skip
    """Per request, its spans from a request path's outcomes (each has ``request_id`` and ``at``), in the order they happened.

    An outcome's class name says what happened: ``Queued`` (waits),
    ``Dispatched`` (runs; after a ``Preempted`` it is a resume), ``Preempted``
    (paused), and any final outcome (``Delivered``, ``Failed``, ...) ends the
    request.  ``resume_cost(request_id, t)`` gives the seconds a resume
    spends recomputing (or swapping) before it runs on; they are drawn
    apart.  Requests appear in the order of their first outcome.  O(len(outcomes)).
    """
    spans: dict[str, list[Span]] = {}
    open_: dict[str, Span] = {}
    paused: set[str] = set()

    def close(rid: str, t: float) -> None:
        span = open_.pop(rid, None)
        if span is not None:
            span.end = t
            if span.end > span.start:
                spans.setdefault(rid, []).append(span)

    last = 0.0
    for outcome in outcomes:
        t = float(outcome.at)
        last = max(last, t)
        kind = type(outcome).__name__
        rid = outcome.request_id
        if kind == "Queued":
            close(rid, t)
            open_[rid] = Span(rid, "waiting", t, t)
        elif kind == "Dispatched":
            close(rid, t)
            server = getattr(outcome, "server_id", None)
            if rid in paused:
                cost = resume_cost(rid, t) if resume_cost is not None else 0.0
                if cost > 0:
                    spans.setdefault(rid, []).append(Span(rid, "resume cost", t, t + cost, server))
                open_[rid] = Span(rid, "resumed", t + cost, t + cost, server)
            else:
                open_[rid] = Span(rid, "running", t, t, server)
        elif kind == "Preempted":
            close(rid, t)
            paused.add(rid)
            open_[rid] = Span(rid, "paused", t, t, getattr(outcome, "server_id", None))
        elif kind in ("Delivered", "Failed", "TimedOut", "Cancelled", "Rejected"):
            close(rid, t)
        spans.setdefault(rid, [])
    for rid in list(open_):
        close(rid, end if end is not None else last)
    return spans


def _states(row: Sequence[Any]) -> list[tuple[str, float, float]]:
    """A row's (state, start, end): a :class:`Span`'s ``state``, or a simulator segment's ``kind``; running after a pause is resumed."""
    out, paused = [], False
    for s in row:
        state = getattr(s, "state", None) or s.kind
        if state == "paused":
            paused = True
        elif state == "running" and paused:
            state = "resumed"
        out.append((state, float(s.start), float(s.end)))
    return out


def timeline_figure(spans: Mapping[str, Sequence[Any]], *, title: str = "preemption: one request's timeline per row") -> Figure:
    """One row per request (the mapping's order, top down): its waiting, running, paused, resume-cost and resumed spans.

    A row is a sequence of :class:`Span` (``state``) or of the simulator's
    segments (``kind``: waiting, running, paused; a running segment after a
    pause is drawn as resumed).
    """
    fig = Figure(figsize=(9, 0.45 * max(3, len(spans)) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    names = list(spans)
    rows = {name: _states(spans[name]) for name in names}
    for state, color in TIMELINE_STATES.items():
        mine = [(k, start, end) for k, name in enumerate(names) for st, start, end in rows[name] if st == state and end > start]
        if not mine:
            continue
        ax.barh([k for k, _, _ in mine], [end - start for _, start, end in mine], left=[start for _, start, _ in mine], height=0.6,
                color=color, edgecolor="black", linewidth=0.5, label=state)  # fmt: skip
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("request (id)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize="small", loc="lower right")
    return fig


# -- preemption: what a resume costs --------------------------------------------------------------------


def recompute_seconds(tokens: int, model: ModelSpec, gpu: GpuSpec) -> float:
    """Recompute mode: the prefill of ``tokens`` (prompt + tokens generated so far) on ``gpu``, alone.  O(1)."""
    return float(model.latency_model(gpu).prefill_time(int(tokens)))


def swap_seconds(tokens: int, model: ModelSpec, gpu: GpuSpec) -> float:
    """Swap mode: the KV cache of ``tokens`` out to host memory and back over the GPU's PCIe link, ``2 x bytes / bandwidth``.  O(1)."""
    return 2.0 * float(tokens) * model.kv_bytes_per_token / (gpu.pcie_gb_s * 1e9)


def preemption_cost_figure(models: Mapping[str, ModelSpec], gpus: Sequence[GpuSpec], *, max_tokens: int = 16_000) -> Figure:
    """Per model (one panel each): the seconds a resume costs against the context, recompute and swap on each GPU."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    tokens = np.linspace(0, max_tokens, 81)
    for k, (name, model) in enumerate(models.items()):
        ax = fig.add_subplot(1, len(models), k + 1)
        for j, gpu in enumerate(gpus):
            ax.plot(tokens, [recompute_seconds(int(t), model, gpu) for t in tokens], color=_CYCLE[j], linewidth=2,
                    label=f"recompute: prefill on an {gpu.name}")  # fmt: skip
            ax.plot(tokens, [swap_seconds(int(t), model, gpu) for t in tokens], color=_CYCLE[j], linestyle="--",
                    label=f"swap on an {gpu.name}: out and in over PCIe ({gpu.pcie_gb_s:g} GB/s)")  # fmt: skip
        ax.set_xlabel("context: prompt + generated (tokens)")
        ax.set_ylabel("resume cost (s)")
        ax.set_title(f"{name} ({model.kv_bytes_per_token / 1024:.0f} KiB of KV per token)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


# -- strict priority against Cobham -----------------------------------------------------------------------


def cobham_figure(points: Sequence[Any], *, title: str | None = None, grid: int = 60) -> Figure:
    """Per class, per server count: the simulated mean (dots with their intervals) against the formula (a line), per load.

    ``points`` are :class:`solution.sim.tiersrace.PriorityPoint` records (one
    per class per point, waits or times in system in mean service times).
    Points with the same server count and the same split of the load among
    the classes form one series; its formula line is drawn on a grid of
    total loads up to the largest simulated one (Cobham's
    :func:`~solution.sim.theory.priority_mean_waits`, or
    :func:`~solution.sim.theory.preemptive_mean_times` for preemptive points).
    One panel per server count.  O(points + grid x classes).
    """
    from solution.sim.theory import preemptive_mean_times, priority_mean_waits

    counts = sorted({p.servers for p in points})
    fig = Figure(figsize=(5.2 * len(counts), 4), layout="constrained")
    for panel, c in enumerate(counts):
        ax = fig.add_subplot(1, len(counts), panel + 1)
        mine = [p for p in points if p.servers == c]
        series: dict[tuple[bool, tuple[float, ...]], list[Any]] = {}
        for p in mine:
            total = math.fsum(p.loads)
            series.setdefault((p.preemptive, tuple(round(a / total, 6) for a in p.loads)), []).append(p)
        k = 0
        for (preemptive, split), rows in series.items():
            classes = sorted({p.cls for p in rows})
            top = max(math.fsum(p.loads) for p in rows) / c
            xs = np.linspace(0.05, top, grid)
            for cls in classes:
                color = _CYCLE[k % len(_CYCLE)]
                k += 1
                name = f"class {cls + 1} of {len(split)}" + (" (preemptive)" if preemptive else "")
                share = "/".join(f"{x:.0%}" for x in split)
                formula = preemptive_mean_times if preemptive else None
                curve = [(formula([a * x * c for a in split], c) if formula else priority_mean_waits(c, [a * x * c for a in split]))[cls]
                         for x in xs]  # fmt: skip
                ax.plot(xs, curve, color=color, linewidth=1.5,
                        label=f"{name}, split {share}: {'preemptive-resume' if preemptive else 'Cobham'} formula")  # fmt: skip
                dots = sorted((p for p in rows if p.cls == cls), key=lambda p: math.fsum(p.loads))
                x = np.array([math.fsum(p.loads) / c for p in dots])
                means = np.array([p.mean for p in dots])
                err = np.array([[p.mean - p.low for p in dots], [p.high - p.mean for p in dots]])
                ax.errorbar(x, means, yerr=err, fmt="o", color=color, capsize=3, markersize=4, label=f"{name}: simulated (interval over seeds)")
        preemptive_only = all(p.preemptive for p in mine)
        ax.set_xlabel("total offered load per server (erlangs per server)")
        ax.set_ylabel("mean time in system (mean service times)" if preemptive_only else "mean wait (mean service times)")
        ax.set_yscale("log")
        ax.set_title(title or f"strict priority, M/M/{c}: each class against theory", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="x-small")
    return fig


# -- the tier ladder ----------------------------------------------------------------------------------------


def ladder_figure(result: Any, *, title: str | None = None) -> Figure:
    """Per tier, per rung of the ladder: SLO attainment (left) and the p99 TTFT (right), means with intervals over seeds.

    ``result`` is a :class:`solution.sim.tiersrace.TiersRaceResult`.  Grouped
    bars: one group per tier, one bar per policy, in the ladder's order.
    """
    fig = Figure(figsize=(11, 4), layout="constrained")
    policies, tiers = list(result.policies), list(result.tiers)
    width = 0.8 / len(policies)
    for panel, (metric, label) in enumerate((("slo", "SLO attainment (share of requests)"), ("ttft_p99", "p99 TTFT (s)"))):
        ax = fig.add_subplot(1, 2, panel + 1)
        for j, policy in enumerate(policies):
            stats = [result.interval(policy, tier, metric) for tier in tiers]
            if metric == "slo":  # a share: draw its interval within [0, 1]
                stats = [(m, max(0.0, lo), min(1.0, hi)) for m, lo, hi in stats]
            means = np.array([s[0] for s in stats])
            err = np.array([[max(0.0, s[0] - s[1]) for s in stats], [max(0.0, s[2] - s[0]) for s in stats]])
            ax.bar(np.arange(len(tiers)) + (j - (len(policies) - 1) / 2) * width, means, width, yerr=err, capsize=2,
                   color=_CYCLE[j % len(_CYCLE)], label=policy)  # fmt: skip
        ax.set_xticks(range(len(tiers)), tiers)
        ax.set_xlabel("service tier (name)")
        ax.set_ylabel(label)
        if metric == "ttft_p99":  # room above the bars for the legend
            ax.set_yscale("log")
            low, high = ax.get_ylim()
            ax.set_ylim(low, high * (high / low) ** 0.6)
        else:
            ax.set_ylim(0, 1.45)
            ax.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_title(title or f"{result.workload}: {'who meets the SLO' if metric == 'slo' else 'who waits for a first token'}", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize="x-small", loc="upper center", ncol=min(4, len(policies)))
    return fig


# -- the widget: tier mix, overload, reservation, limits, preemption -------------------------------------------------


def window_p99(arrival: np.ndarray, value: np.ndarray, tier: np.ndarray, ok: np.ndarray, tiers: Sequence[str],
               windows: int = 6) -> tuple[np.ndarray, dict[str, np.ndarray]]:  # fmt: skip
    """Per tier, the p99 of ``value`` over the requests (``ok``) arriving in each of ``windows`` equal time windows.

    Returns (each window's end, seconds; ``{tier: p99 per window, NaN where none}``).  O(n + windows x T).
    """
    arrival = np.asarray(arrival, float)
    edges = np.linspace(float(np.nanmin(arrival)), float(np.nanmax(arrival)) + 1e-9, windows + 1)
    slot = np.clip(np.searchsorted(edges, arrival, side="right") - 1, 0, windows - 1)
    out = {}
    for k, name in enumerate(tiers):
        vals = np.full(windows, np.nan)
        for w in range(windows):
            mine = ok & (tier == k) & (slot == w)
            if mine.any():
                vals[w] = float(np.percentile(value[mine], 99))
        out[name] = vals
    return edges[1:], out


@dataclass(frozen=True)
class ExplorerRun:
    """One setting's run and its FIFO twin (the same traffic through one FIFO queue), with what the widget draws."""

    metrics: dict[str, float]
    fifo: dict[str, float]
    tiers: tuple[str, ...]
    window_ends: np.ndarray
    ttft: Mapping[str, np.ndarray]  # tier -> p99 TTFT per arrival window (s), this setting
    fifo_ttft: Mapping[str, np.ndarray]  # the same under one FIFO queue
    slo: Mapping[str, tuple[float, float]]  # tier -> (TTFT, e2e) targets, s


def _p99_ttft(run: Any, windows: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from solution.sim.results import Outcome

    res = run.results
    ok = res.outcome == Outcome.COMPLETED
    return window_p99(res.arrival, res.first_token - res.arrival, res.tier, ok, res.tier_names, windows)


def explorer_run(*, mix: Sequence[float], overload: float, reserved: float, limits: bool, preemption: bool, seed: int = 0,
                 servers: int = 2, requests: int = 600, windows: int = 8,
                 fifo_cache: dict[tuple, Any] | None = None) -> ExplorerRun:  # fmt: skip
    """Run one setting (``solution.sim.tiersrace.tiers_run``) and the same traffic under one FIFO queue.

    ``fifo_cache`` keeps the FIFO twin per (mix, overload, seed, servers,
    requests): changing the reservation, the limits or preemption reruns
    only the setting.
    """
    from solution.sim.tiersim import TierSetup, simulate_tiers
    from solution.sim.tiersrace import overload_scenario, run_metrics, tiers_run

    got = tiers_run(mix=mix, overload=overload, reserved=reserved, limits=limits, preemption=preemption, seed=seed, servers=servers,
                    requests=requests, windows=windows)  # fmt: skip
    table = got.setup.table
    key = (tuple(mix), overload, seed, servers, requests)
    cache = fifo_cache if fifo_cache is not None else {}
    if key not in cache:
        run = simulate_tiers(overload_scenario(servers, overload, requests, mix=mix), TierSetup("FIFO"), seed=seed)
        cache[key] = (run_metrics(run, table), _p99_ttft(run, windows)[1])
    fifo, fifo_ttft = cache[key]
    ends, ttft = _p99_ttft(got.run, windows)
    tiers = tuple(got.run.results.tier_names)
    slo = {t.name: (t.slo.ttft, t.slo.e2e) for t in table.by_class}
    return ExplorerRun(got.metrics, fifo, tiers, ends, ttft, fifo_ttft, slo)


def explorer_figure(run: ExplorerRun, *, title: str = "") -> Figure:
    """Left: per tier, the p99 TTFT of each arrival window, this setting (solid) against one FIFO queue (dashed).

    Right: per tier, SLO attainment, this setting against one FIFO queue.
    Fixed margins and a linear scale: the widget redraws it on every change,
    and a layout engine or a log scale would double the drawing time.
    """
    fig = Figure(figsize=(10, 3.4))
    fig.subplots_adjust(left=0.07, right=0.985, bottom=0.15, top=0.9, wspace=0.22)
    ax = fig.add_subplot(1, 2, 1)
    for k, name in enumerate(run.tiers):
        color = _color(name, k)
        ax.plot(run.window_ends, run.ttft[name], "-o", color=color, markersize=3, label=f"{name}: tiers")
        ax.plot(run.window_ends, run.fifo_ttft[name], "--", color=color, alpha=0.7, label=f"{name}: one FIFO queue")
    _headroom(ax)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.set_xlabel("arrival time (s)")
    ax.set_ylabel("p99 TTFT of the window's arrivals (s)")
    ax.set_title(title or "p99 time to first token, by arrival window", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2, loc="upper left")
    ax = fig.add_subplot(1, 2, 2)
    x = np.arange(len(run.tiers))
    ax.bar(x - 0.2, [run.fifo.get(f"{t}:slo", math.nan) for t in run.tiers], 0.4, color="#bab0ac", label="one FIFO queue")
    ax.bar(x + 0.2, [run.metrics.get(f"{t}:slo", math.nan) for t in run.tiers], 0.4, color=[_color(t, k) for k, t in enumerate(run.tiers)],
           label="this setting")  # fmt: skip
    ax.set_xticks(x, run.tiers)
    ax.set_ylim(0, 1.25)
    ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlabel("service tier (name)")
    ax.set_ylabel("SLO attainment (share of requests)")
    ax.set_title("who meets the SLO (TTFT and e2e)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="x-small", loc="upper right", ncol=2)
    return fig


def _headroom(ax: Any) -> None:
    """From 0 to 1.4 x the autoscaled top: room for the legend above the lines."""
    ax.set_ylim(0, ax.get_ylim()[1] * 1.4)


def _png(fig: Figure, dpi: int = 80) -> bytes:
    """The widget's picture: PNG bytes at a modest resolution, compressed lightly (drawing time grows with both)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


class TierExplorer(CachedExplorer):
    """``display(TierExplorer())``: the tier mix, the overload, premium's reservation, rate limits and preemption on or off.

    Each change runs one small seeded simulation (``solution.sim.tiersrace.tiers_run``:
    two servers, a few hundred requests, the course's tiers) and, once per
    mix and overload, the same traffic through one FIFO queue; it redraws
    each tier's p99 TTFT per arrival window and its SLO attainment against
    the FIFO twin.  Runs are cached per setting.  ``tests/test_tiers_widgets.py``
    and ``benchmarks/bench_widgets.py`` measure the time per change.
    """

    def __init__(self, *, requests: int = 400, servers: int = 2, seed: int = 0) -> None:
        import ipywidgets as W

        self.requests, self.servers, self.seed = requests, servers, seed
        style = {"continuous_update": False, "style": {"description_width": "initial"}}
        self.premium = W.FloatSlider(value=0.2, min=0.05, max=0.6, step=0.05, description="premium share", **style)
        self.batch = W.FloatSlider(value=0.3, min=0.0, max=0.6, step=0.05, description="batch share", **style)
        self.overload = W.FloatSlider(value=1.3, min=0.5, max=2.0, step=0.1, description="overload (x)", **style)
        self.reserved = W.IntSlider(value=25, min=0, max=50, step=5, description="reserved (%)", **style)
        self.limits = W.Checkbox(value=True, description="rate limits")
        self.preemption = W.Checkbox(value=True, description="preemption")
        self.image = W.Image(format="png", layout=W.Layout(width="900px"))
        self.summary = W.HTML()
        for control in (self.premium, self.batch, self.overload, self.reserved, self.limits, self.preemption):
            control.observe(lambda _: self.run(), names="value")
        self.widget = W.VBox([W.HBox([self.premium, self.batch, self.overload]), W.HBox([self.reserved, self.limits, self.preemption]),
                              self.image, self.summary])  # fmt: skip
        self._cache: dict[tuple, ExplorerRun] = {}
        self._fifo: dict[tuple, Any] = {}
        self.record: ExplorerRun | None = None
        self._figure: Figure | None = None
        self._figure_tiers: tuple[str, ...] = ()
        self.simulated_ms = 0.0
        self.drawn_ms = 0.0
        self.run()

    def mix(self) -> tuple[float, float, float]:
        """(premium, free, batch) shares of the requests; free is what premium and batch leave (at least 5%)."""
        premium, batch = round(self.premium.value, 4), round(self.batch.value, 4)
        free = round(max(0.05, 1.0 - premium - batch), 4)
        total = premium + free + batch
        return (premium / total, free / total, batch / total)

    def setting(self) -> tuple:
        """The current controls, as the key runs are cached under."""
        return (self.mix(), round(self.overload.value, 4), self.reserved.value, self.limits.value, self.preemption.value)

    def simulate(self, key: tuple) -> ExplorerRun:
        """One small seeded run (:func:`explorer_run`, with the FIFO twin cached per mix and overload) for the setting ``key``."""
        mix, overload, reserved, limits, preemption = key
        return explorer_run(mix=mix, overload=overload, reserved=reserved / 100, limits=limits, preemption=preemption,
                            seed=self.seed, servers=self.servers, requests=self.requests, fifo_cache=self._fifo)  # fmt: skip

    def draw(self) -> None:
        """Redraw the current run and its summary."""
        import time

        run = self.record
        if run is None:
            return
        started = time.perf_counter()
        self.image.value = self._render(run)
        self.drawn_ms = (time.perf_counter() - started) * 1000
        mix, overload, reserved, limits, preemption = self.setting()
        rows = []
        for t in run.tiers:
            m, f = run.metrics, run.fifo
            rows.append(f"<b>{t}</b>: SLO met {m[f'{t}:slo']:.0%} (FIFO {f[f'{t}:slo']:.0%}), p99 TTFT {m[f'{t}:ttft_p99']:.2f} s, "
                        f"p99 e2e {m[f'{t}:e2e_p99']:.1f} s, 429s {m[f'{t}:throttled']:.2f} and preemptions {m[f'{t}:preempted']:.2f} per request")
        self.summary.value = (
            f"mix {' / '.join(f'{x:.0%}' for x in mix)} (premium / free / batch), {overload:g}x capacity, {reserved}% reserved, "
            f"rate limits {'on' if limits else 'off'}, preemption {'on' if preemption else 'off'}; idle reserved "
            f"{run.metrics['idle_reserved']:.2f} slots<br>" + "<br>".join(rows)
            + f"<br><small>simulated in {self.simulated_ms:.0f} ms, drawn in {self.drawn_ms:.0f} ms</small>"
        )

    def _render(self, run: ExplorerRun) -> bytes:
        """PNG bytes of the current run: the first time a new figure, then the same figure with its data replaced.

        Re-using the figure (its axes, ticks, legends) halves the drawing
        time of a change; the picture is the one :func:`explorer_figure` draws.
        """
        import io

        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = self._figure
        if fig is None or self._figure_tiers != run.tiers:
            fig = self._figure = explorer_figure(run)
            self._figure_tiers = run.tiers
            fig.set_dpi(80)
            FigureCanvasAgg(fig)
        else:
            left, right = fig.axes
            lines = {line.get_label(): line for line in left.get_lines()}
            for name in run.tiers:
                lines[f"{name}: tiers"].set_data(run.window_ends, run.ttft[name])
                lines[f"{name}: one FIFO queue"].set_data(run.window_ends, run.fifo_ttft[name])
            left.relim()
            left.set_autoscaley_on(True)  # explorer_figure's set_ylim turned it off
            left.autoscale_view()
            _headroom(left)
            fifo, mine = right.containers[0], right.containers[1]
            for k, name in enumerate(run.tiers):
                fifo[k].set_height(run.fifo.get(f"{name}:slo", math.nan))
                mine[k].set_height(run.metrics.get(f"{name}:slo", math.nan))
        buf = io.BytesIO()
        fig.canvas.print_png(buf, pil_kwargs={"compress_level": 1})
        return buf.getvalue()

    def figure(self) -> Figure:
        if self.record is None:
            raise ValueError("no run to draw: the last run raised NotImplementedError (see the summary)")
        return explorer_figure(self.record)

