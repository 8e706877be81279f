"""Stage-7 pictures and the rollout player: the bounds' rounding, a rollout as a timeline, the canary's price.

Figures (matplotlib's OO API, no pyplot state; each passes the course's
figure rule, ``tests/sim/test_figures.py``):

* :func:`timeline_figure`: one rollout over time: servers by version and
  state (stacked), the ready servers (the capacity line) and the desired
  count, and below it the latency band (p50 to p99 by arrival bin).
* :func:`capacity_figure`: several rollouts' ready servers and p99 latency
  on one time axis (pre-warm against drain-first).
* :func:`blast_figure`: time to detect and blast radius against the
  canary's first share, with intervals over seeds.
* :class:`DeployExplorer`: the widget; surge, unavailability, pre-warm,
  canary steps and the new version's error rate -> the rollout's timeline,
  its capacity dip, detection time and blast radius.

Measurements (O(1) per row):

* :func:`bounds_rows`: per bound and fleet size, what ``resolve_surge`` and
  ``resolve_unavailable`` make of it (or the error they raise).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from solution.widgets.drawing import CachedExplorer

__all__ = ["VERSION_COLORS", "BoundsRow", "bounds_rows", "timeline_figure", "capacity_figure", "blast_figure",
           "PlayerRun", "player_run", "DeployExplorer", "CANARY_CHOICES"]  # fmt: skip

#: The old version's colour and the new one's.
VERSION_COLORS = ("#4c78a8", "#f58518")

#: The widget's canary choices: label -> steps in percent (None: no canary).
CANARY_CHOICES: dict[str, tuple[float, ...] | None] = {
    "no canary": None,
    "25% -> 100%": (25.0, 100.0),
    "10% -> 50% -> 100%": (10.0, 50.0, 100.0),
    "50% -> 100%": (50.0, 100.0),
}


# -- the bounds: Kubernetes' rounding ----------------------------------------------------------------


@dataclass(frozen=True)
class BoundsRow:
    """One (maxSurge, maxUnavailable, replicas): the servers each resolves to, or the error the pair raises."""

    surge: Any
    unavailable: Any
    replicas: int
    resolved_surge: int | None
    resolved_unavailable: int | None
    error: str = ""  # "ValueError: ..." when the pair is refused


def bounds_rows(resolve_surge: Callable[[Any, int], int], resolve_unavailable: Callable[[Any, int], int],
                cases: Iterable[tuple[Any, Any, int]]) -> list[BoundsRow]:  # fmt: skip
    """Resolve each ``(max_surge, max_unavailable, replicas)`` with the implementation's two functions.

    A pair that resolves to 0 and 0 is refused (no server could be started
    or drained), as Kubernetes does; a bad value's own ``TypeError`` /
    ``ValueError`` is reported the same way.  O(len(cases)).
    """
    rows = []
    for surge, unavailable, replicas in cases:
        try:
            s, u = int(resolve_surge(surge, replicas)), int(resolve_unavailable(unavailable, replicas))
        except (TypeError, ValueError) as exc:
            rows.append(BoundsRow(surge, unavailable, replicas, None, None, f"{type(exc).__name__}: {exc}"))
            continue
        error = "ValueError: both resolve to 0: no server may be started or drained" if s == 0 and u == 0 else ""
        rows.append(BoundsRow(surge, unavailable, replicas, s, u, error))
    return rows


# -- a rollout as a timeline -------------------------------------------------------------------------

_STATES = (("serving", 1.0, None), ("loading", 0.45, "//"), ("draining", 0.3, "\\\\"))


def _versions(tl: Mapping[str, np.ndarray]) -> list[str]:
    return sorted({k.split(":")[0] for k in tl if ":" in k})


def timeline_figure(run: Any, tl: Mapping[str, np.ndarray], *, title: str = "", bound: int | None = None,
                    figsize: tuple[float, float] = (10, 5.2), fixed_margins: bool = False) -> Figure:  # fmt: skip
    """A rollout over time: servers by version and state, the capacity line, and the latency band below.

    ``run`` is the :class:`~solution.sim.deploysim.DeployRun` (its scenario's
    versions and replicas, its start and end), ``tl`` its
    :func:`~solution.sim.deploysim.timeline`.  ``bound``: a ready-server floor
    to draw (``R - maxUnavailable``).  Top: stacked servers per version
    (serving = ready or warming; loading weights; draining), the ready
    servers (the capacity line) and the desired count ``R``.  Bottom: p50 to
    p99 end-to-end latency of each arrival bin, and the errors per bin.
    ``fixed_margins``: no layout engine (the widget redraws on every change,
    and the constrained layout costs a third of the drawing time).
    """
    s = run.scenario
    t = np.asarray(tl["t"], float)
    fig = Figure(figsize=figsize, layout=None if fixed_margins else "constrained")
    if fixed_margins:
        fig.subplots_adjust(left=0.075, right=0.91, bottom=0.13, top=0.94, hspace=0.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    names = [s.old.name, s.new.name] + [v for v in _versions(tl) if v not in (s.old.name, s.new.name)]
    layers, colors, hatches, labels = [], [], [], []
    for k, v in enumerate(names):
        for state, alpha, hatch in _STATES:
            key = f"{v}:{state}"
            if key not in tl or not np.any(tl[key]):
                continue
            layers.append(np.asarray(tl[key], float))
            color = VERSION_COLORS[k % len(VERSION_COLORS)] if k < 2 else "#bab0ac"
            colors.append((*_rgb(color), alpha))
            hatches.append(hatch)
            labels.append(f"version {v}: " + {"serving": "serving (ready or warming)", "loading": "loading weights", "draining": "draining"}[state])
    if layers:
        polys = top.stackplot(t, *layers, colors=colors, labels=labels, step="post", edgecolor="white", linewidth=0.3)
        for poly, hatch in zip(polys, hatches):
            if hatch:
                poly.set_hatch(hatch)
    top.step(t, tl["ready"], where="post", color="black", linewidth=2, label="ready servers (capacity)")
    top.axhline(s.replicas, color="grey", linestyle="--", linewidth=1, label=f"desired replicas R = {s.replicas}")
    if bound is not None and bound != s.replicas:
        top.axhline(bound, color="#e45756", linestyle=":", linewidth=1.5, label=f"floor R - maxUnavailable = {bound}")
    _span(top, run)
    top.set_ylabel("servers (count)")
    top.set_xlabel("time (s)")
    top.tick_params(labelbottom=True)
    top.set_ylim(0, max(float(np.max(tl["total"])) if len(t) else s.replicas, s.replicas) * 1.45)
    top.set_title(title or f"{s.name}: servers by version over time", fontsize=10)
    top.grid(alpha=0.3)
    top.legend(fontsize="x-small", loc="upper left", ncol=3)
    ok = ~np.isnan(tl["p99"])
    bottom.fill_between(t[ok], tl["p50"][ok], tl["p99"][ok], step="post", color="#72b7b2", alpha=0.5,
                        label="p50 to p99 latency of the bin's arrivals")  # fmt: skip
    bottom.step(t[ok], tl["p99"][ok], where="post", color="#2f7f7a", linewidth=1, label="p99 latency")
    _span(bottom, run)
    bottom.set_ylabel("end-to-end latency (s)")
    bottom.set_xlabel("time (s)")
    bottom.set_title("latency and errors by arrival bin", fontsize=10)
    bottom.grid(alpha=0.3)
    if np.any(tl["errors"]):
        twin = bottom.twinx()
        twin.bar(t, tl["errors"], width=float(t[1] - t[0]) if len(t) > 1 else 1.0, align="edge", color="#e45756", alpha=0.6,
                 label="errors per bin (requests)")  # fmt: skip
        twin.set_ylabel("errors (requests per bin)")
        twin.set_xlabel("time (s)")
        twin.set_title(bottom.get_title() or "latency and errors by arrival bin", fontsize=10)
        twin.set_ylim(0, max(1, float(np.max(tl["errors"]))) * 3)
        handles = bottom.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        bottom.legend(handles, [h.get_label() for h in handles], fontsize="x-small", loc="upper left", ncol=3)
    else:
        bottom.legend(fontsize="x-small", loc="upper left", ncol=3)
    bottom.set_ylim(0, max(1.0, float(np.nanmax(tl["p99"])) if ok.any() else 1.0) * 1.5)
    return fig


def _rgb(color: str) -> tuple[float, float, float]:
    color = color.lstrip("#")
    return tuple(int(color[k:k + 2], 16) / 255 for k in (0, 2, 4))  # type: ignore[return-value]


def _span(ax: Any, run: Any) -> None:
    """Shade the rollout: from the controller's start to its Done / RolledBack (or the end of the axis)."""
    end = run.finished if run.finished is not None else ax.get_xlim()[1]
    ax.axvspan(run.started, end, color="#eeca3b", alpha=0.12, label=f"the rollout ({run.result})")


def capacity_figure(runs: Mapping[str, tuple[Any, Mapping[str, np.ndarray]]], *,
                    title: str = "ready servers and p99 latency during the rollout") -> Figure:  # fmt: skip
    """Per labelled run ``(run, timeline)``: its ready servers (left) and its p99 latency by arrival bin (right), one colour each."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True)
    cycle = ("#4c78a8", "#e45756", "#54a24b", "#b279a2")
    for k, (label, (run, tl)) in enumerate(runs.items()):
        c = cycle[k % len(cycle)]
        left.step(tl["t"], tl["ready"], where="post", color=c, linewidth=2, label=label)
        ok = ~np.isnan(tl["p99"])
        right.step(np.asarray(tl["t"])[ok], np.asarray(tl["p99"])[ok], where="post", color=c, linewidth=1.2, label=label)
    replicas = next(iter(runs.values()))[0].scenario.replicas if runs else 0
    left.axhline(replicas, color="grey", linestyle="--", linewidth=1, label=f"desired replicas R = {replicas}")
    left.set_ylim(0, replicas * 1.45)
    left.set_ylabel("ready servers (count)")
    right.set_ylabel("p99 end-to-end latency of the bin's arrivals (s)")
    right.set_ylim(bottom=0)
    for ax, sub in ((left, "capacity"), (right, "latency")):
        ax.set_xlabel("time (s)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="upper left")
        ax.set_title(f"{title}: {sub}", fontsize=10)
    return fig


def blast_figure(blast: Mapping[str, Mapping[str, tuple[float, float, float]]], *, seeds: int | None = None,
                 title: str = "a version failing 2%: the canary's first share") -> Figure:  # fmt: skip
    """Per first canary share (``blast_vs_share``'s rows but ``"none"``): time to detect (left) and blast radius (right), mean with its interval.

    ``seeds``: how many seeds the means are over (said in the legend).
    """
    labels = [k for k in blast if k != "none"]
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    for k, (metric, ylabel, color) in enumerate((("detect", "time to detect (s from B's first request)", "#4c78a8"),
                                                  ("blast", "blast radius (requests on B)", "#e45756"))):  # fmt: skip
        ax = fig.add_subplot(1, 2, k + 1)
        mean = np.array([blast[x][metric][0] for x in labels])
        lo = np.array([blast[x][metric][1] for x in labels])
        hi = np.array([blast[x][metric][2] for x in labels])
        over = f"{seeds} seeds" if seeds is not None else "seeds"
        ax.bar(range(len(labels)), mean, color=color, alpha=0.8,
               label=f"{'time to detect' if metric == 'detect' else 'blast radius'}: mean over {over}")  # fmt: skip
        ax.errorbar(range(len(labels)), mean, yerr=[mean - lo, hi - mean], fmt="none", color="black", capsize=4,
                    label="95% t interval")  # fmt: skip
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel("the canary's first step (share of the traffic)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, float(np.nanmax(hi)) * 1.35 if len(hi) else 1.0)
        ax.set_title(title + (": detection" if metric == "detect" else ": blast radius"), fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize="x-small", loc="upper right")
    return fig


# -- the widget: play a rollout --------------------------------------------------------------------


@dataclass(frozen=True)
class PlayerRun:
    """One setting's rollout (``run``, ``tl``, ``metrics``) or, for a refused setting, the error it raised."""

    run: Any = None
    tl: Mapping[str, np.ndarray] | None = None
    metrics: Mapping[str, float] | None = None
    bound: int | None = None
    error: str = ""


def player_run(*, max_surge: int, max_unavailable: int, prewarm: bool, canary: tuple[float, ...] | None, error_rate: float,
               seed: int = 0, step: float = 10.0) -> PlayerRun:  # fmt: skip
    """One small rollout (:func:`solution.sim.deployrace.widget_run`: 4 servers, 20 s start-up) and its timeline.

    A setting the rollout plan refuses (both bounds 0; pre-warm or a canary
    without a surge) comes back as a :class:`PlayerRun` with ``error`` set:
    the refusal is part of what the widget teaches.  A stub's
    ``NotImplementedError`` propagates (the explorer shows its message).
    """
    from solution.sim.deployrace import widget_run
    from solution.sim.deploysim import deploy_metrics, timeline

    try:
        run = widget_run(max_surge=max_surge, max_unavailable=max_unavailable, prewarm=prewarm, canary_steps=canary,
                         error_rate=error_rate, seed=seed)  # fmt: skip
    except (TypeError, ValueError) as exc:
        return PlayerRun(error=f"{type(exc).__name__}: {exc}")
    return PlayerRun(run, timeline(run, step), deploy_metrics(run), run.scenario.replicas - max_unavailable)


class DeployExplorer(CachedExplorer):
    """``display(DeployExplorer())``: play a rollout; surge, unavailability, pre-warm, canary steps, the new version's error rate.

    Each change runs one small seeded rollout (:func:`player_run`: 4 servers
    of 4 slots at 2 requests/s, 20 s start-up and 10 s warm-up, the deploy at
    60 s; a canary judges 20 s windows of at least 30 requests) and redraws
    its timeline; the summary gives the rollout's duration, its capacity dip,
    the errors, the time to detect a bad version and the blast radius.  Runs
    are cached per setting, so a setting seen before redraws at once.
    ``tests/test_deploy_widgets.py`` measures the time per change.
    """

    def __init__(self, *, seed: int = 0) -> None:
        import ipywidgets as W

        self.seed = seed
        style = {"continuous_update": False, "style": {"description_width": "initial"}}
        self.surge = W.IntSlider(value=1, min=0, max=4, description="maxSurge (servers)", **style)
        self.unavailable = W.IntSlider(value=0, min=0, max=3, description="maxUnavailable (servers)", **style)
        self.prewarm = W.Checkbox(value=True, description="pre-warm")
        self.canary = W.Dropdown(options=list(CANARY_CHOICES), value="25% -> 100%", description="canary steps", style=style["style"])
        self.error_rate = W.FloatSlider(value=0.0, min=0.0, max=0.2, step=0.01, description="B's error rate", readout_format=".0%",
                                        **style)  # fmt: skip
        self.image = W.Image(format="png", layout=W.Layout(width="900px"))
        self.summary = W.HTML()
        for control in (self.surge, self.unavailable, self.prewarm, self.canary, self.error_rate):
            control.observe(lambda _: self.run(), names="value")
        self.widget = W.VBox([W.HBox([self.surge, self.unavailable, self.prewarm]), W.HBox([self.canary, self.error_rate]),
                              self.image, self.summary])  # fmt: skip
        self._cache: dict[tuple, PlayerRun] = {}
        self.record: PlayerRun | None = None
        self.simulated_ms = 0.0
        self.drawn_ms = 0.0
        self.run()

    def setting(self) -> tuple:
        """The current controls, as the key runs are cached under."""
        return (self.surge.value, self.unavailable.value, self.prewarm.value, self.canary.value, round(self.error_rate.value, 4))

    def simulate(self, key: tuple) -> PlayerRun:
        """One small seeded rollout for the setting ``key`` (:func:`player_run`)."""
        surge, unavailable, prewarm, canary, error_rate = key
        return player_run(max_surge=surge, max_unavailable=unavailable, prewarm=prewarm, canary=CANARY_CHOICES[canary],
                          error_rate=error_rate, seed=self.seed)  # fmt: skip

    def draw(self) -> None:
        """Redraw the current run and its summary (a refused setting: its error, no picture)."""
        import html

        rec = self.record
        if rec is None:
            return
        if rec.error:
            self.image.value = b""
            self.summary.value = f"<b>refused</b>: {html.escape(rec.error)}"
            return
        started = time.perf_counter()
        self.image.value = _png(self.figure())
        self.drawn_ms = (time.perf_counter() - started) * 1000
        m = rec.metrics or {}
        detect = m.get("detect", math.nan)
        self.summary.value = (
            f"<b>{rec.run.result}</b> after {m['duration']:.0f} s; fewest ready servers {m['min_capacity']:.0%} of R; "
            f"requests lost {m['lost']:.0f}, answered with an error {m['errors']:.0f}; p99 {m['p99_steady']:.1f} s steady, "
            f"{m['p99_rollout']:.1f} s during the rollout; "
            + (f"bad version detected {detect:.0f} s after its first request, " if not math.isnan(detect) else "no rollback, ")
            + f"requests that ran on B {m['blast']:.0f}"
            + f"<br><small>simulated in {self.simulated_ms:.0f} ms, drawn in {self.drawn_ms:.0f} ms</small>"
        )

    def figure(self) -> Figure:
        """The current run's timeline (:func:`timeline_figure`)."""
        rec = self.record
        if rec is None or rec.run is None:
            raise ValueError("no run to draw: the setting was refused or a stub stood in the way (see the summary)")
        surge, unavailable, prewarm, canary, error_rate = self.setting()
        title = (f"maxSurge {surge}, maxUnavailable {unavailable}, {'pre-warm' if prewarm else 'drain-first'}, {canary}, "
                 f"B fails {error_rate:.0%}")  # fmt: skip
        return timeline_figure(rec.run, rec.tl, title=title, bound=rec.bound, figsize=(10, 4.6), fixed_margins=True)


def _png(fig: Figure, dpi: int = 72) -> bytes:
    """The widget's picture: PNG bytes at a modest resolution, compressed lightly (drawing time grows with both)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buf.getvalue()
