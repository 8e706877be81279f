"""Plotting helpers (matplotlib, object-oriented API).

Every helper draws on ``ax`` when given (so figures can be composed), or on
a new figure, and returns the :class:`~matplotlib.figure.Figure`.  Nothing
here calls ``pyplot``, so it works under any backend, including ``Agg`` in
tests and headless CI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from solution.sim.results import STAGE1_OUTCOMES, Outcome, Results, Summary, table_rows
from solution.sim.sweep import ErlangPoint, QueuePoint
from solution.sim.theory import erlang_b, erlang_c, mmc_mean_wait, mmck

__all__ = ["latency_cdf", "load_over_time", "outcomes_over_time", "summary_table", "erlang_b_agreement", "iteration_time",
           "queue_depth", "scale_up_periods", "wait_cdf", "queue_theory_agreement"]  # fmt: skip

_METRICS = {"e2e": "end-to-end latency (s)", "ttft": "time to first token (s)", "tpot": "time per output token (s)"}


def _axes(ax: Axes | None, size: tuple[float, float] = (6.4, 4.0)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _labelled(runs: Results | Mapping[str, Results]) -> Mapping[str, Results]:
    return {runs.scenario: runs} if isinstance(runs, Results) else runs


def latency_cdf(runs: Results | Mapping[str, Results], metric: str = "e2e", *, ax: Axes | None = None,
                log: bool = True) -> Figure:  # fmt: skip
    """The empirical CDF of a latency over completed requests, one line per run.

    ``metric`` is ``"e2e"``, ``"ttft"`` or ``"tpot"``; dotted lines mark each run's p99.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {', '.join(_METRICS)}, got {metric!r}")
    fig, ax = _axes(ax)
    for label, res in _labelled(runs).items():
        values = np.sort(getattr(res, metric)[~np.isnan(getattr(res, metric))])
        if not len(values):
            continue
        (line,) = ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=label)
        ax.axvline(float(np.percentile(values, 99)), color=line.get_color(), linestyle=":", linewidth=1)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(_METRICS[metric])
    ax.set_ylabel("fraction of completed requests")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def load_over_time(res: Results, *, points: int = 400, ax: Axes | None = None, ratio: bool = False) -> Figure:
    """Requests running on each server over time (``ratio=True``: as a fraction of its capacity)."""
    fig, ax = _axes(ax, (8.0, 4.0))
    times = res.time_grid(points)
    load = res.load_over_time(times).astype(np.float64)
    if ratio:
        load /= res.capacity
    for k, server_id in enumerate(res.server_ids):
        ax.step(times, load[:, k], where="post", label=server_id, linewidth=1)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("load / capacity" if ratio else "running requests")
    ax.grid(alpha=0.3)
    if len(res.server_ids) <= 12:
        ax.legend(loc="upper right", fontsize="small", ncols=2)
    return fig


def outcomes_over_time(res: Results, *, bins: int = 60, ax: Axes | None = None) -> Figure:
    """Requests per time bin (by arrival), stacked by outcome: where failures and rejections happen."""
    fig, ax = _axes(ax, (8.0, 3.0))
    edges = np.linspace(float(res.arrival.min()), float(res.arrival.max()), bins + 1)
    shown = [o for o in Outcome if o in STAGE1_OUTCOMES or res.count(o)]  # the queue's outcomes when there are any
    counts = [np.histogram(res.arrival[res.outcome == o], edges)[0] for o in shown]
    ax.stackplot(edges[:-1], counts, labels=[o.name.lower() for o in shown], step="post", alpha=0.85)
    ax.set_xlabel("arrival time (s)")
    ax.set_ylabel(f"requests per {edges[1] - edges[0]:.3g} s")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    return fig


def summary_table(summaries: Mapping[str, Summary | Results], *, ax: Axes | None = None) -> Figure:
    """The summary table as a figure (one column per run); results are summarized without warm-up."""
    data = {k: v.summary() if isinstance(v, Results) else v for k, v in summaries.items()}
    rows = table_rows(data)
    fig, ax = _axes(ax, (2.2 + 1.4 * len(data), 0.28 * len(rows) + 0.4))
    ax.axis("off")
    table = ax.table(cellText=[r[1:] for r in rows[1:]], rowLabels=[r[0] for r in rows[1:]], colLabels=rows[0][1:],
                     loc="center", cellLoc="right")  # fmt: skip
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    return fig


def erlang_b_agreement(points: Sequence[ErlangPoint], *, ax: Axes | None = None) -> Figure:
    """Simulated loss (mean and confidence interval over seeds) against Erlang B, per number of servers.

    The x axis is the offered load per server ``a / c``; lines are the
    formula, markers with error bars the simulation.
    """
    fig, ax = _axes(ax)
    for c in sorted({p.servers for p in points}):
        mine = sorted((p for p in points if p.servers == c), key=lambda p: p.offered_load)
        per_server = np.array([p.offered_load / c for p in mine])
        grid = np.linspace(per_server.min() * 0.9, per_server.max() * 1.05, 100)
        (line,) = ax.plot(grid, [erlang_b(c, x * c) for x in grid], linewidth=1, label=f"Erlang B, c = {c}")
        means = np.array([p.mean for p in mine])
        errors = np.array([[p.mean - p.low for p in mine], [p.high - p.mean for p in mine]])
        ax.errorbar(per_server, means, yerr=errors, fmt="o", color=line.get_color(), capsize=3, markersize=4,
                    label=f"simulated, c = {c} ({mine[0].seeds} seeds)")  # fmt: skip
    ax.set_xlabel("offered load per server (a / c)")
    ax.set_ylabel("fraction of requests lost")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def iteration_time(timings: Mapping[str, object], *, max_batch: int = 64, ax: Axes | None = None) -> Figure:
    """Per-sequence decode speed (tokens/s) against batch size, one line per GPU.

    ``timings`` maps a label to a :class:`~solution.sim.gpus.ServerTiming`:
    batching raises the server's throughput but slows every sequence in it.
    """
    fig, ax = _axes(ax)
    batch = np.arange(1, max_batch + 1)
    for label, timing in timings.items():
        ax.plot(batch, 1.0 / np.array([timing.iteration_time(int(b)) for b in batch]), label=label)  # type: ignore[attr-defined]
    ax.set_xlabel("sequences decoding in the batch")
    ax.set_ylabel("tokens per second, per sequence")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


# -- stage 2: queues ----------------------------------------------------------------


def _depth_steps(res: Results) -> tuple[np.ndarray, np.ndarray]:
    """The exact queue depth: ``(times, depth)``, the depth holding from each time to the next.  O(n log n)."""
    leave = np.where(np.isnan(res.start), res.finish, res.start)
    times = np.unique(np.concatenate([res.arrival, leave]))
    return times, res.queue_depth_over_time(times)


def scale_up_periods(res: Results, threshold: int, after: float) -> list[tuple[float, float]]:
    """``(from, to)`` spans in which a queue's scale-up signal is raised.

    The signal rises once the depth has stayed above ``threshold`` for
    ``after`` seconds, and falls when it drops back (as
    ``RequestQueue.stats().scale_up``).  Exact, from the run's event times.
    """
    times, depth = _depth_steps(res)
    spans, since = [], None
    for t, d in zip(times.tolist(), depth.tolist()):
        if d > threshold and since is None:
            since = t
        elif d <= threshold and since is not None:
            if t - since >= after:
                spans.append((since + after, t))
            since = None
    if since is not None and times[-1] - since >= after:
        spans.append((since + after, float(times[-1])))
    return spans


def queue_depth(res: Results, *, max_depth: int | None = None, threshold: int | None = None, after: float = 0.0,
                ax: Axes | None = None, label: str | None = None) -> Figure:  # fmt: skip
    """Requests waiting in the gateway's queue over time (exact steps).

    A dashed line marks ``max_depth``; with a ``threshold``, a dotted line
    marks it and the periods when the scale-up signal is raised (depth above
    it for ``after`` seconds) are shaded.
    """
    fig, ax = _axes(ax, (8.0, 3.0))
    times, depth = _depth_steps(res)
    ax.step(times, depth, where="post", linewidth=0.8, label=label)
    if max_depth is not None:
        ax.axhline(max_depth, color="#c00", linestyle="--", linewidth=1, label=f"max depth {max_depth}")
    if threshold is not None:
        ax.axhline(threshold, color="#555", linestyle=":", linewidth=1, label=f"scale-up threshold {threshold}")
        for k, (lo, hi) in enumerate(scale_up_periods(res, threshold, after)):
            ax.axvspan(lo, hi, color="#f58518", alpha=0.2, linewidth=0, label=None if k else f"scale up (above for {after:g} s)")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("requests waiting")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize="small")
    return fig


def wait_cdf(runs: Results | Mapping[str, Results], *, ax: Axes | None = None, theory: tuple[int, float] | None = None,
             highlight: str | None = None, survival: bool = False) -> Figure:  # fmt: skip
    """The distribution of the time dispatched requests waited, one line per run.

    ``survival=True`` plots ``P(wait > t)`` on a log scale instead of the
    CDF: the tail (who waits longest) becomes visible, and an exponential
    tail is a straight line.  ``theory=(servers, offered_load)`` overlays
    the M/M/c FIFO distribution, ``P(wait > t) = C(c, a) exp(-(c - a) t)``
    (mean service 1 s); ``highlight`` draws that run's line thicker.
    """
    fig, ax = _axes(ax)
    top, smallest = 0.0, 1.0
    for label, res in _labelled(runs).items():
        waits = np.sort(res.wait[~np.isnan(res.wait)])
        n = len(waits)
        if not n:
            continue
        # 1,000 evenly spaced points, and every one of the last 1,000: the tail is drawn exactly
        idx = np.unique(np.concatenate([np.linspace(0, n - 1, 1000).astype(np.int64), np.arange(max(0, n - 1000), n)]))
        top, smallest = max(top, float(waits[-1])), min(smallest, 1.0 / n)
        fraction = (n - idx) / n if survival else (idx + 1) / n  # P(wait >= t) / P(wait <= t)
        ax.step(waits[idx], fraction, where="post", label=label, linewidth=2.2 if label == highlight else 1.2)
    if theory is not None and theory[1] < theory[0]:
        c, a = theory
        grid = np.linspace(0.0, max(top, 1e-9), 200)
        tail = erlang_c(c, a) * np.exp(-(c - a) * grid)
        ax.plot(grid, tail if survival else 1.0 - tail, color="black", linestyle="--", linewidth=1, label="M/M/c theory (FIFO)")
    ax.set_xlabel("wait in the queue (s)")
    if survival:
        ax.set_yscale("log")
        ax.set_ylim(0.5 * smallest, 1.05)
        ax.set_ylabel("fraction waiting longer than t")
    else:
        ax.set_ylim(0, 1.01)
        ax.set_ylabel("fraction of dispatched requests")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right" if survival else "lower right", fontsize="small")
    return fig


def queue_theory_agreement(points: Sequence[QueuePoint], metric: str = "wait", *, ax: Axes | None = None) -> Figure:
    """Simulated mean wait (or 429 fraction) with confidence intervals against M/M/c or M/M/c/K, per load.

    ``metric`` is ``"wait"`` or ``"blocking"``.  One formula curve and one
    set of error bars per (servers, max_depth).
    """
    if metric not in ("wait", "blocking"):
        raise ValueError(f"metric must be 'wait' or 'blocking', got {metric!r}")
    fig, ax = _axes(ax)
    for c, k in sorted({(p.servers, p.max_depth) for p in points}, key=lambda ck: (ck[0], ck[1] is None, ck[1] or 0)):
        mine = sorted((p for p in points if (p.servers, p.max_depth) == (c, k)), key=lambda p: p.offered_load)
        loads = np.array([p.load for p in mine])
        top = loads.max() * 1.05 if k is not None else min(loads.max() * 1.05, 0.97)
        grid = np.linspace(loads.min() * 0.9, top, 100)
        if k is None:
            curve = [mmc_mean_wait(c, x * c) if metric == "wait" else 0.0 for x in grid]
            name = f"M/M/{c} (Erlang C)"
        else:
            curve = [mmck(c, x * c, k)[0 if metric == "blocking" else 1] for x in grid]
            name = f"M/M/{c}/{c + k}"
        (line,) = ax.plot(grid, curve, linewidth=1, label=name)
        stats = [p.wait if metric == "wait" else p.blocking for p in mine]
        means = np.array([s[0] for s in stats])
        errors = np.array([[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]])
        ax.errorbar(loads, means, yerr=errors, fmt="o", color=line.get_color(), capsize=3, markersize=4,
                    label=f"simulated, {name} ({mine[0].seeds} seeds)")  # fmt: skip
    ax.set_xlabel("offered load per server (a / c)")
    ax.set_ylabel("mean wait (mean service times)" if metric == "wait" else "fraction answered 429")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig
