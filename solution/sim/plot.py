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

from solution.core.latency import LatencyModel
from solution.sim.results import STAGE1_OUTCOMES, Outcome, Results, Summary, table_rows
from solution.sim.sweep import ErlangPoint, QueuePoint
from solution.sim.theory import erlang_b, erlang_c, mmc_mean_wait, mmck

__all__ = ["latency_cdf", "load_over_time", "outcomes_over_time", "summary_table", "erlang_b_agreement", "iteration_time",
           "decode_throughput", "request_timeline", "goodput_curve", "queue_depth", "wait_cdf",
           "queue_theory_agreement"]  # fmt: skip

_METRICS = {"e2e": "end-to-end latency (s)", "ttft": "time to first token (s)", "tpot": "time per output token (s)"}
_NAMES = {"e2e": "end-to-end latency", "ttft": "time to first token (TTFT)", "tpot": "time per output token (TPOT)"}
_HIDDEN = "_nolegend_"  # the label of an artist that repeats one the legend already names


def _axes(ax: Axes | None, size: tuple[float, float] = (6.4, 4.0)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _labelled(runs: Results | Mapping[str, Results]) -> Mapping[str, Results]:
    return {runs.scenario: runs} if isinstance(runs, Results) else runs


def _legend(ax: Axes, **kwargs: object) -> None:
    """A legend when something is labelled (an empty legend box says nothing)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)  # type: ignore[arg-type]


def _round_width(span: float, bins: int) -> float:
    """The round bin width (1, 2 or 5 times a power of ten) nearest above ``span / bins``."""
    raw = max(span / max(bins, 1), 1e-9)
    power = 10.0 ** np.floor(np.log10(raw))
    return float(next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw * (1 - 1e-9)))


def latency_cdf(runs: Results | Mapping[str, Results], metric: str = "e2e", *, ax: Axes | None = None,
                log: bool = True, title: str | None = None) -> Figure:  # fmt: skip
    """The empirical CDF of a latency over completed requests, one line per run.

    ``metric`` is ``"e2e"``, ``"ttft"`` or ``"tpot"``; a dotted line in the
    run's colour marks its p99, named in the legend with its value.
    O(n log n) per run.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {', '.join(_METRICS)}, got {metric!r}")
    fig, ax = _axes(ax)
    for label, res in _labelled(runs).items():
        values = np.sort(getattr(res, metric)[~np.isnan(getattr(res, metric))])
        if not len(values):
            continue
        (line,) = ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=label)
        p99 = float(np.percentile(values, 99))
        ax.axvline(p99, color=line.get_color(), linestyle=":", linewidth=1, label=f"{label}: p99 = {p99:.3g} s")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(_METRICS[metric] + (", log scale" if log else ""))
    ax.set_ylabel("fraction of completed requests")
    ax.set_ylim(0, 1.01)
    ax.set_title(title if title is not None else f"distribution of the {_NAMES[metric]}", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, loc="lower right", fontsize="small")
    return fig


def load_over_time(res: Results, *, points: int = 400, ax: Axes | None = None, ratio: bool = False,
                   title: str | None = None) -> Figure:  # fmt: skip
    """Requests running on each server over time (``ratio=True``: as a fraction of its capacity).

    Dashed lines mark the capacity (one per distinct capacity; 1 with
    ``ratio``): a server at its line has a full batch and the stage-1
    balancer rejects what no server has room for.  More than 12 servers
    share one colour and one legend entry.  O(n log n + points * servers).
    """
    fig, ax = _axes(ax, (8.0, 4.0))
    times = res.time_grid(points)
    load = res.load_over_time(times).astype(np.float64)
    if ratio:
        load /= res.capacity
    many = len(res.server_ids) > 12
    for k, server_id in enumerate(res.server_ids):
        label = ("each server" if k == 0 else _HIDDEN) if many else server_id
        ax.step(times, load[:, k], where="post", label=label, linewidth=1, color="#4c78a8" if many else None, alpha=0.6 if many else 1.0)
    caps = [1] if ratio else sorted({int(c) for c in res.capacity})
    for cap in caps:
        ax.axhline(cap, color="#c00", linestyle="--", linewidth=1, label=f"capacity: {'full batch' if ratio else f'{cap} sequences'}")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("running requests / capacity (fraction)" if ratio else "running requests (sequences in the batch)")
    ax.set_ylim(0, max(caps) * 1.35)  # headroom above the capacity line for the legend
    ax.set_title(title if title is not None else "requests running on each server", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, loc="upper center", fontsize="small", ncols=min(3, len(ax.get_legend_handles_labels()[1])))
    return fig


def outcomes_over_time(res: Results, *, bins: int = 60, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Arrivals per second over time, stacked by how they ended: where failures and rejections happen.

    The bin width is a round number of seconds near ``duration / bins``;
    an outcome no request had is left out (no empty legend entries).  O(n).
    """
    fig, ax = _axes(ax, (8.0, 3.0))
    lo, hi = float(res.arrival.min()), float(res.arrival.max())
    width = _round_width(hi - lo, bins)
    edges = np.arange(np.floor(lo / width) * width, hi + width, width)
    if len(edges) < 2:
        edges = np.array([lo, lo + width])
    shown = [o for o in Outcome if res.count(o)]
    rates = [np.histogram(res.arrival[res.outcome == o], edges)[0] / width for o in shown]
    ax.stackplot(edges[:-1], rates, labels=[o.name.lower() for o in shown], step="post", alpha=0.85)
    ax.set_xlabel("arrival time (s)")
    ax.set_ylabel(f"arrivals per s ({width:g} s bins)")
    ax.set_title(title if title is not None else "arrivals by how they ended", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, loc="upper right", fontsize="small")
    return fig


def summary_table(summaries: Mapping[str, Summary | Results], *, ax: Axes | None = None, title: str = "summary of each run") -> Figure:
    """The summary table as a figure (one column per run); results are summarized without warm-up."""
    data = {k: v.summary() if isinstance(v, Results) else v for k, v in summaries.items()}
    rows = table_rows(data)
    fig, ax = _axes(ax, (2.2 + 1.4 * len(data), 0.28 * len(rows) + 0.7))
    ax.axis("off")
    table = ax.table(cellText=[r[1:] for r in rows[1:]], rowLabels=[r[0] for r in rows[1:]], colLabels=rows[0][1:],
                     loc="center", cellLoc="right")  # fmt: skip
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    ax.set_title(title, fontsize=10)
    return fig


def erlang_b_agreement(points: Sequence[ErlangPoint], *, ax: Axes | None = None, title: str | None = None) -> Figure:
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
    ax.set_xlabel("offered load per server, a / c (erlangs per server)")
    ax.set_ylabel("fraction of requests lost")
    ax.set_title(title if title is not None else "simulated loss against Erlang B", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, fontsize="small")
    return fig


def _batches(models: Mapping[str, LatencyModel], capacity: Mapping[str, int] | None, max_batch: int) -> dict[str, np.ndarray]:
    if capacity is not None and set(capacity) != set(models):
        raise ValueError(f"capacity must name the same GPUs as models: {sorted(models)} vs {sorted(capacity)}")
    for label, model in models.items():
        if not isinstance(model, LatencyModel):
            raise TypeError(f"models must map a label to a LatencyModel (ModelSpec().latency_model(gpu)), got {type(model).__name__} for {label!r}")
    return {label: np.arange(1, (capacity[label] if capacity is not None else max_batch) + 1) for label in models}


def iteration_time(models: Mapping[str, LatencyModel], capacity: Mapping[str, int] | None = None, *, max_batch: int = 64,
                   ax: Axes | None = None, title: str | None = None) -> Figure:  # fmt: skip
    """Per-sequence decode speed (tokens/s) against batch size, one line per GPU.

    ``models`` maps a label to a :class:`~solution.core.latency.LatencyModel`
    (``ModelSpec().latency_model(gpu)``); each line stops at the GPU's
    ``capacity`` (its batch cannot grow further) or at ``max_batch``.
    Batching slows every sequence in the batch.  O(batch) per GPU.
    """
    fig, ax = _axes(ax)
    for label, batch in _batches(models, capacity, max_batch).items():
        ax.plot(batch, [1.0 / models[label].decode_step(int(b)) for b in batch], label=label)
    ax.set_xlabel("batch size (sequences decoding)")
    ax.set_ylabel("output tokens per s, per sequence")
    ax.set_title(title if title is not None else "a bigger batch slows each sequence", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, fontsize="small")
    return fig


def decode_throughput(models: Mapping[str, LatencyModel], capacity: Mapping[str, int], *, ax: Axes | None = None,
                      title: str | None = None) -> Figure:  # fmt: skip
    """A whole server's output tokens per second against its batch, each GPU up to its own capacity.

    A dot marks each GPU's maximum (its full batch), which the legend
    quotes: past it the GPU has no room (KV cache), so the curve stops.
    O(capacity) per GPU.
    """
    fig, ax = _axes(ax)
    for label, batch in _batches(models, capacity, 0).items():
        tput = np.array([models[label].throughput(int(b)) for b in batch])
        (line,) = ax.plot(batch, tput, label=f"{label}: at most {tput[-1]:,.0f} tok/s (batch {batch[-1]})")
        ax.plot(batch[-1], tput[-1], "o", color=line.get_color(), label=_HIDDEN)  # the maximum, named by the line's label
    ax.set_xlabel("batch size (sequences decoding, up to the GPU's capacity)")
    ax.set_ylabel("output tokens per s, whole server")
    ax.set_title(title if title is not None else "a bigger batch raises the server's throughput", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, loc="upper left", fontsize="small")
    return fig


def request_timeline(res: Results, requests: Sequence[int] | None = None, *, ax: Axes | None = None,
                     title: str | None = None) -> Figure:  # fmt: skip
    """Where each request's time goes: waiting, prefill until its first token, then decode.

    One row per request (``requests``: indices into the run; default the
    first eight completed ones).  The bar from arrival to the first token
    is the TTFT, from arrival to the end the e2e latency; the decode part
    divided by ``output_tokens - 1`` is the TPOT.  O(len(requests)).
    """
    if requests is None:
        requests = [int(i) for i in np.flatnonzero(res.outcome == Outcome.COMPLETED)[:8]]
    picked = [int(i) for i in requests]
    if not picked:
        raise ValueError("no request to draw: the run completed none, or requests is empty")
    if any(not 0 <= i < len(res) or res.outcome[i] != Outcome.COMPLETED for i in picked):
        raise ValueError("requests must index completed requests of the run")
    fig, ax = _axes(ax, (8.0, 0.35 * len(picked) + 1.2))
    rows = np.arange(len(picked))
    arrival, start, first, finish = (getattr(res, f)[picked] for f in ("arrival", "start", "first_token", "finish"))
    parts = (("waiting (no server yet)", arrival, start, "#b0b0b0"),
             ("prefill: the TTFT ends at its first token", start, first, "#f58518"),
             ("decode: one token per iteration (TPOT each)", first, finish, "#4c78a8"))  # fmt: skip
    for label, lo, hi, color in parts:
        if np.any(hi > lo):
            ax.barh(rows, hi - lo, left=lo, color=color, height=0.6, label=label)
    for row, i in zip(rows, picked):
        tpot = "" if np.isnan(res.tpot[i]) else f", TPOT {res.tpot[i] * 1e3:.0f} ms"
        ax.annotate(f"TTFT {res.ttft[i] * 1e3:.0f} ms{tpot}, e2e {res.e2e[i]:.2f} s", (float(finish[row]), row),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)  # fmt: skip
    ax.set_xlim(float(arrival.min()), float(finish.max()) + 0.35 * float(finish.max() - arrival.min()))  # room for the notes
    ax.set_yticks(rows, [f"r{i}" for i in picked])
    ax.invert_yaxis()
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("request (id in the run)")
    ax.set_title(title if title is not None else "TTFT = arrival to first token; e2e = arrival to last token", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    _legend(ax, loc="lower right", fontsize="small")
    return fig


def goodput_curve(runs: Mapping[float, Results], *, ttft_slo: float, tpot_slo: float, ax: Axes | None = None,
                  title: str | None = None) -> Figure:  # fmt: skip
    """Throughput and goodput (completed requests per second meeting both SLOs) against the offered load.

    ``runs`` maps an offered load per server to its run; goodput counts the
    completed requests with ``ttft <= ttft_slo`` and ``tpot <= tpot_slo``
    (seconds; a request with one output token has no TPOT and passes it).
    O(n) per run.
    """
    if not runs:
        raise ValueError("runs is empty: give {offered load: Results}")
    loads = sorted(runs)
    done = [runs[x].summary().throughput_rps for x in loads]
    good = [runs[x].goodput(ttft_slo, tpot_slo) for x in loads]
    fig, ax = _axes(ax)
    ax.plot(loads, done, "o-", label="throughput: completed requests per s")
    ax.plot(loads, good, "s-", label=f"goodput: of those, TTFT <= {ttft_slo:g} s and TPOT <= {tpot_slo * 1e3:g} ms")
    ax.set_xlabel("offered load per server (erlangs per server)")
    ax.set_ylabel("requests per s")
    ax.set_title(title if title is not None else "goodput counts only the requests that met the SLO", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, fontsize="small")
    return fig


# -- stage 2: queues ----------------------------------------------------------------


def _depth_steps(res: Results) -> tuple[np.ndarray, np.ndarray]:
    """The exact queue depth: ``(times, depth)``, the depth holding from each time to the next.  O(n log n)."""
    leave = np.where(np.isnan(res.start), res.finish, res.start)
    times = np.unique(np.concatenate([res.arrival, leave]))
    return times, res.queue_depth_over_time(times)


def queue_depth(res: Results, *, max_depth: int | None = None, ax: Axes | None = None, label: str = "requests waiting",
                title: str | None = None) -> Figure:  # fmt: skip
    """Requests waiting in the gateway's queue over time (exact steps).

    A dashed line marks ``max_depth``.  The scale-up signal is the queue's
    own (``RequestQueue.stats()``); :func:`solution.sim.autoscale.plot_timeline`
    draws it as a run recorded it, so nothing here recomputes it.
    """
    fig, ax = _axes(ax, (8.0, 3.0))
    times, depth = _depth_steps(res)
    ax.step(times, depth, where="post", linewidth=0.8, label=label)
    if max_depth is not None:
        ax.axhline(max_depth, color="#c00", linestyle="--", linewidth=1, label=f"max depth {max_depth}")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("requests waiting (queue depth)")
    ax.set_title(title if title is not None else "requests waiting in the gateway's queue", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, loc="upper right", fontsize="small")
    return fig


def wait_cdf(runs: Results | Mapping[str, Results], *, ax: Axes | None = None, theory: tuple[int, float] | None = None,
             highlight: str | None = None, survival: bool = False, title: str | None = None) -> Figure:  # fmt: skip
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
    ax.set_title(title if title is not None else ("who waits longest: the tail of the wait" if survival else "distribution of the wait"), fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, loc="upper right" if survival else "lower right", fontsize="small")
    return fig


def queue_theory_agreement(points: Sequence[QueuePoint], metric: str = "wait", *, ax: Axes | None = None,
                           title: str | None = None) -> Figure:  # fmt: skip
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
    ax.set_xlabel("offered load per server, a / c (erlangs per server)")
    ax.set_ylabel("mean wait (mean service times)" if metric == "wait" else "fraction answered 429")
    ax.set_title(title if title is not None else ("simulated mean wait against theory" if metric == "wait" else "simulated 429s against M/M/c/K"), fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, fontsize="small")
    return fig
