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
from solution.sim.sweep import ErlangPoint
from solution.sim.theory import erlang_b

__all__ = ["latency_cdf", "load_over_time", "outcomes_over_time", "summary_table", "erlang_b_agreement", "iteration_time"]

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
