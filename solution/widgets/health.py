"""Stage-4 pictures and widgets: failure modes, the circuit breaker, detection vs false ejections, a fault timeline.

Figures (matplotlib's OO API, no pyplot state; each passes the course's
figure rule, ``tests/sim/test_figures.py``):

* :func:`failure_modes`: five ways a GPU server fails, each as what its
  probes see and what its real requests see over time.
* :func:`state_diagram`: the four health states and the reason for every
  transition (the circuit breaker with a degraded state and slow start).
* :func:`tradeoff_figure`: mean crash-detection time against false
  ejections per server per day, formula lines with measured points.
* :func:`timeline_figure`: one fault scenario, each server's state and load
  over time, and the requests re-routed.

Measurements (seeded, small, fast):

* :func:`crash_detection_times` drives a ``HealthChecker`` through probes
  until a crashed server is marked down, for crashes at random phases.
* :func:`false_ejection_rate` counts ejections of a healthy server whose
  probes are lost independently with probability p, on seeded loss streams
  (the rule: ``unhealthy_threshold`` losses in a row eject,
  ``healthy_threshold`` successes in a row bring it back).

Widgets: :class:`TradeoffExplorer` (interval, timeout, thresholds, loss
rate -> measured detection time and false-ejection rate beside the
formulas; well under a second per change) and :class:`HealthTimeline`
(plays a fault scenario with health checking on or off).
"""

from __future__ import annotations

import heapq
import html
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

from solution.core.impl import reference_available
from solution.sim.theory import detection_time_interval, detection_time_mean, expected_probes_to_run
from solution.widgets.drawing import figure_png

__all__ = [
    "STATE_COLORS", "failure_modes", "state_diagram", "tradeoff_figure", "timeline_figure", "crash_detection_times",
    "false_ejection_rate", "probes_to_false_ejection", "expected_run_probes", "detection_bounds", "state_spans", "timeline_record",
    "TradeoffExplorer", "HealthTimeline",
]  # fmt: skip

#: One colour per health state, the same in every picture.
STATE_COLORS: Mapping[str, str] = {"healthy": "#54a24b", "degraded": "#f2b701", "down": "#e45756", "recovering": "#4c78a8"}

SECONDS_PER_DAY = 86_400.0


# -- the formulas ---------------------------------------------------------------------------------


def expected_run_probes(p: float, n: int) -> float:
    """Mean number of independent probes until ``n`` are lost in a row, each lost with probability ``p``.

    The run-length formula ``(1 - p**n) / ((1 - p) * p**n)``
    (:func:`solution.sim.theory.expected_probes_to_run`); ``inf`` when ``p`` is 0, ``n`` when it is 1.  O(1).
    """
    if p == 0:
        return math.inf
    if p == 1:
        return float(n)
    return expected_probes_to_run(p, n)


def detection_bounds(interval: float, timeout: float, unhealthy_threshold: int, jitter: float = 0.0) -> tuple[float, float, float]:
    """(shortest, mean, longest) seconds from a crash to 'down' under active checks alone.

    ``[(N - 1) I (1 - j) + T, N I (1 + j) + T]`` and the mean
    ``(N - 1) I + I (1 + j^2 / 3) / 2 + T`` (:func:`solution.sim.theory.detection_time_interval`,
    :func:`~solution.sim.theory.detection_time_mean`).  O(1).
    """
    low, high = detection_time_interval(interval, timeout, unhealthy_threshold, jitter)
    return low, detection_time_mean(interval, timeout, unhealthy_threshold, jitter), high


# -- measurements ---------------------------------------------------------------------------------


def _health_module(impl: ModuleType | None) -> ModuleType:
    """``impl`` if its ``HealthChecker`` works, else the reference ``solution.health``.

    Without the reference (the candidate's bundle) a stub raises
    ``NotImplementedError`` saying what to implement.
    """
    if impl is not None and getattr(impl, "HealthChecker", None) is not None:
        from solution.core.health_types import HealthPolicy

        try:
            checker = impl.HealthChecker(HealthPolicy())
            checker.add_server("probe", 0.0, warm=True)
            checker.next_probe_time()
            return impl
        except NotImplementedError:
            pass
    if not reference_available():
        raise NotImplementedError("Stage 4: HealthChecker is not implemented yet: write it in exercises/health.py")
    import solution.health as reference

    return reference


def crash_detection_times(
    interval: float, timeout: float, unhealthy_threshold: int, *, jitter: float = 0.0, trials: int = 200, seed: int = 0,
    impl: ModuleType | None = None,
) -> np.ndarray:
    """Seconds from a crash to 'down', measured by driving a ``HealthChecker`` with active probes only.

    Each trial adds one warm server at 0, lets it pass probes for a few
    intervals, crashes it at a uniformly random phase, and from then on
    every probe times out (its failed result arrives ``timeout`` seconds
    after it was sent).  Passive checks see no traffic here.  O(trials x
    threshold) checker calls.
    """
    health = _health_module(impl)
    from solution.core.health_types import HealthPolicy

    rng = np.random.default_rng(seed)
    policy = HealthPolicy(interval=interval, timeout=min(timeout, interval), unhealthy_threshold=unhealthy_threshold, jitter=jitter)
    out = np.empty(trials)
    for k in range(trials):
        checker = health.HealthChecker(policy, seed=seed * 100_003 + k)
        checker.add_server("s", 0.0, warm=True)
        crash_at = 3 * interval + float(rng.uniform(0.0, interval))
        results: list[tuple[float, bool]] = []  # (arrival time, ok), a heap
        while True:
            due = checker.next_probe_time()
            now = min(due if due is not None else math.inf, results[0][0] if results else math.inf)
            if now == math.inf:
                raise RuntimeError("the checker scheduled no probe and none is pending: is the server still added?")
            checker.advance(now)
            if results and results[0][0] <= now:
                _, ok = heapq.heappop(results)
                checker.probe_result("s", ok, now)
                if _name(checker.state("s")) == "down":
                    out[k] = now - crash_at
                    break
                continue
            for sid in checker.due_probes(now):
                ok = now < crash_at
                heapq.heappush(results, (now + (0.01 if ok else timeout), ok))
    return out


def probes_to_false_ejection(
    p: float, unhealthy_threshold: int, *, runs: int = 300, seed: int = 0, interval: float = 5.0, timeout: float = 1.0,
    impl: ModuleType | None = None,
) -> np.ndarray:
    """Probes sent until a healthy server is first marked down, when each probe is lost with probability ``p``.

    One warm server per run, active checks only, driven through a
    ``HealthChecker``: a lost probe fails when its ``timeout`` runs out, the
    others answer in 5 ms.  Run k draws its losses from ``seed`` and k.  The
    mean estimates the run-length formula :func:`expected_run_probes`.
    O(runs x probes) checker calls: keep ``p ** unhealthy_threshold`` above about 1e-3.
    """
    health = _health_module(impl)
    from solution.core.health_types import HealthPolicy

    policy = HealthPolicy(interval=interval, timeout=timeout, unhealthy_threshold=unhealthy_threshold, jitter=0.0)
    out = np.empty(runs)
    for k in range(runs):
        rng = np.random.default_rng([seed, k])
        checker = health.HealthChecker(policy, seed=k)
        checker.add_server("s", 0.0, warm=True)
        sent, pending = 0, []
        while _name(checker.state("s")) != "down":
            due = checker.next_probe_time()
            now = min(due if due is not None else math.inf, pending[0][0] if pending else math.inf)
            if pending and pending[0][0] <= now:
                _, ok = heapq.heappop(pending)
                checker.probe_result("s", ok, now)
                continue
            for _sid in checker.due_probes(now):
                sent += 1
                ok = bool(rng.random() >= p)
                heapq.heappush(pending, (now + (0.005 if ok else timeout), ok))
        out[k] = sent
    return out


def _name(state: Any) -> str:
    """A HealthState's lower-case name (an enum member or its value)."""
    return str(getattr(state, "value", state)).lower()


def false_ejection_rate(
    p: float, unhealthy_threshold: int, healthy_threshold: int = 1, *, probes: int = 400_000, streams: int = 8, seed: int = 0,
) -> tuple[float, float, float]:
    """Ejections per probe of a healthy server whose probes are each lost with probability ``p``: (mean, low, high).

    Measured on one seeded loss stream of ``probes`` probes (a 95% interval
    from the ejection count, which is nearly Poisson when ejections are rare).  The rule counted: a run of
    ``unhealthy_threshold`` losses ejects the server; it is back after
    ``healthy_threshold`` successes in a row, and only then can the next run
    eject it.  Renewal theory gives the exact mean,
    ``1 / (E_N(p) + E_H(1 - p))`` with :func:`expected_run_probes`.
    Vectorized: O(probes) numpy work.
    """
    lost = np.random.default_rng(seed).random(probes) < p
    k = _count_ejections(lost, unhealthy_threshold, healthy_threshold)
    z = 1.959964
    low = max(0.0, k + z * z / 2 - z * math.sqrt(k + z * z / 4))  # a score interval for a Poisson count
    high = k + z * z / 2 + z * math.sqrt(k + z * z / 4)
    return k / probes, low / probes, high / probes


def _count_ejections(lost: np.ndarray, n: int, h: int) -> int:
    """Ejections in one loss stream (True = probe lost) under the n-losses-out, h-successes-back rule. O(len(lost))."""
    if lost.size == 0:
        return 0
    change = np.flatnonzero(np.diff(lost.astype(np.int8))) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [lost.size])))
    kinds = lost[starts]  # True: a run of losses
    qualifying = np.flatnonzero(kinds & (lengths >= n))  # runs that eject a healthy server
    if qualifying.size == 0:
        return 0
    long_ok = np.cumsum(~kinds & (lengths >= h))  # success runs long enough to recover, counted up to each run
    # the server is healthy at a qualifying run when a long success run lies between it and the previous qualifying run
    recovered = long_ok[qualifying[1:]] - long_ok[qualifying[:-1]] > 0
    return 1 + int(np.count_nonzero(recovered))


# -- figures --------------------------------------------------------------------------------------


def failure_modes(seed: int = 0) -> Figure:
    """Five failure modes as a probe and a client see them: crash, hang, throttle, partial failure, gray failure.

    A seeded sketch (not a simulation): one server serving requests of about
    2 s, probed every 5 s; the fault starts at 30 s.  Each panel plots the
    real requests' latency (dots; a cross on the axis is an error) and the
    probes' outcomes (triangles at the top: ok or failed/timed out).
    """
    rng = np.random.default_rng(seed)
    modes = [
        ("crash", "refused: probes and\nrequests fail at once"),
        ("hang", "accepts, never answers:\nboth time out"),
        ("throttle", "probes pass;\nrequests 3x slower"),
        ("partial failure", "30% of requests fail\n(OOM on long prompts)"),
        ("gray failure", "probes pass; real\nrequests crawl or fail"),
    ]
    fig = Figure(figsize=(12, 4.0), dpi=90)
    axes = fig.subplots(1, len(modes), sharey=True)
    fault, end, timeout = 30.0, 60.0, 10.0
    arrivals = np.sort(rng.uniform(0, end, 70))
    base = rng.lognormal(np.log(2.0), 0.25, arrivals.size)
    probes = np.arange(2.5, end, 5.0)
    for ax, (mode, caption) in zip(axes, modes):
        after = arrivals >= fault
        latency, failed, hung = base.copy(), np.zeros(arrivals.size, bool), np.zeros(arrivals.size, bool)
        probe_ok = np.ones(probes.size, bool)
        if mode == "crash":
            failed[after] = True
            probe_ok[probes >= fault] = False
        elif mode == "hang":
            hung[after] = True
            probe_ok[probes >= fault] = False
        elif mode == "throttle":
            latency[after] *= 3
        elif mode == "partial failure":
            failed[after] = rng.random(after.sum()) < 0.3
        else:  # gray: probes still pass, real work crawls and some fails
            latency[after] *= 4
            failed[after] = rng.random(after.sum()) < 0.15
        ok = ~failed & ~hung
        ax.scatter(arrivals[ok], np.minimum(latency[ok], timeout), s=10, color="#4c78a8", label="answered")
        ax.scatter(arrivals[failed], np.zeros(failed.sum()), s=22, marker="x", color="#e45756", label="request: error")
        ax.scatter(arrivals[hung], np.full(hung.sum(), timeout), s=14, marker="s", color="#f58518", label="request: no answer")
        ax.scatter(probes[probe_ok], np.full(probe_ok.sum(), 12.5), marker="v", color="#54a24b", label="probe ok")
        ax.scatter(probes[~probe_ok], np.full((~probe_ok).sum(), 12.5), marker="v", color="#e45756", label="probe failed")
        ax.axvline(fault, color="#888888", linestyle=":", label="fault starts")
        ax.set_title(f"{mode}\n{caption}", fontsize=8)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("request latency (s)", fontsize=8)
        ax.set_ylim(-0.8, 17.0)
        ax.set_yticks([0, 2.5, 5, 7.5, 10])
    handles, labels = axes[1].get_legend_handles_labels()
    for ax in axes:
        ax.legend(handles, labels, fontsize=6, loc="upper left", ncol=2, handletextpad=0.2, columnspacing=0.5)
    fig.suptitle(f"Five ways a GPU server fails: what its probes see (triangles) and what its requests see (latency capped at the {timeout:g} s timeout)", fontsize=10)
    fig.tight_layout()
    return fig


#: The breaker's transitions: (from, to, reason), with the reasons the reference logs (``Reason``).
TRANSITIONS: tuple[tuple[str, str, str], ...] = (
    ("healthy", "degraded", "latency outlier (EWMA s/token > latency_factor x fleet),\nor error rate >= degraded_error_rate"),
    ("degraded", "healthy", "recovered: both back below exit\nthresholds (hysteresis)"),
    ("healthy", "down", "probe failures (unhealthy_threshold in a row),\nor consecutive errors (consecutive_5xx):\ncircuit opens"),
    ("degraded", "down", "the same two rules"),
    ("down", "recovering", "ejection over (half-open),\nor probe successes (healthy_threshold)"),
    ("recovering", "down", "trial failed: re-opens,\nejection time doubles (up to max)"),
    ("recovering", "healthy", "slow start over\n(half_open_trials passed,\nthen slow_start_window)"),
)

_POSITIONS = {"healthy": (0.0, 1.0), "degraded": (2.6, 1.0), "down": (2.6, -1.0), "recovering": (0.0, -1.0)}
_MEANING = {
    "healthy": "full weight (1.0)",
    "degraded": "routable at degraded_weight",
    "down": "circuit open: weight 0",
    "recovering": "half-open trials, then\nslow-start ramp to 1.0",
}


def state_diagram(transitions: Sequence[tuple[str, str, str]] = TRANSITIONS) -> Figure:
    """The circuit breaker as a state diagram: four states, every transition labelled with its reason."""
    fig = Figure(figsize=(9.5, 5.6), dpi=90)
    ax = fig.add_subplot()
    for state, (x, y) in _POSITIONS.items():
        ax.add_patch(FancyBboxPatch((x - 0.55, y - 0.22), 1.1, 0.44, boxstyle="round,pad=0.05", facecolor=STATE_COLORS[state],
                                    alpha=0.85, edgecolor="#333333"))  # fmt: skip
        ax.text(x, y + 0.06, state, ha="center", va="center", fontsize=11, weight="bold", color="white")
        ax.text(x, y - 0.1, _MEANING[state], ha="center", va="center", fontsize=7, color="white")
    pairs = {(a, b) for a, b, _ in transitions}
    for a, b, reason in transitions:
        (x0, y0), (x1, y1) = _POSITIONS[a], _POSITIONS[b]
        both_ways = (b, a) in pairs
        rad = 0.25 if both_ways else 0.0
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=14,
                                     shrinkA=32, shrinkB=32, color="#333333", linewidth=1.2))  # fmt: skip
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        dx, dy = x1 - x0, y1 - y0
        norm = math.hypot(dx, dy) or 1.0
        off = (0.32 if both_ways else 0.0) + (0.12 if a == "degraded" and b == "down" else 0.0)
        nx, ny = dy / norm * off, -dx / norm * off  # the side the arc bends to
        if a == "healthy" and b == "down":
            nx, ny = -0.1, 0.3
        ax.text(mx + nx, my + ny, reason, ha="center", va="center", fontsize=7,
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.9})  # fmt: skip
    ax.set_xlim(-0.9, 3.5)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("The circuit breaker with a degraded state: each transition and its one reason", fontsize=10)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class TradeoffPoint:
    """One setting measured: detection times (s) and false ejections per server per day (mean, low, high)."""

    interval: float
    timeout: float
    unhealthy_threshold: int
    healthy_threshold: int
    loss: float
    detection: np.ndarray
    false_per_day: tuple[float, float, float]
    jitter: float = 0.1

    @property
    def formula_detection(self) -> tuple[float, float, float]:
        return detection_bounds(self.interval, self.timeout, self.unhealthy_threshold, self.jitter)

    @property
    def formula_false_per_day(self) -> float:
        return false_per_day_formula(self.interval, self.unhealthy_threshold, self.healthy_threshold, self.loss)


def false_per_day_formula(interval: float, unhealthy_threshold: int, healthy_threshold: int, loss: float) -> float:
    """False ejections per server per day: ``86,400 / (interval x (E_N(p) + E_H(1 - p)))``. O(1)."""
    cycle = expected_run_probes(loss, unhealthy_threshold) + expected_run_probes(1.0 - loss, healthy_threshold)
    return SECONDS_PER_DAY / (interval * cycle)


def measure_point(interval: float, timeout: float, unhealthy_threshold: int, healthy_threshold: int, loss: float, *,
                  jitter: float = 0.1, trials: int = 150, probes: int = 400_000, seed: int = 0,
                  impl: ModuleType | None = None) -> TradeoffPoint:  # fmt: skip
    """Measure one setting: crash detection through the checker, false ejections on seeded loss streams.

    The timeout is capped at the interval (a policy refuses a longer one).
    """
    timeout = min(timeout, interval)
    detection = crash_detection_times(interval, timeout, unhealthy_threshold, jitter=jitter, trials=trials, seed=seed, impl=impl)
    per_probe = false_ejection_rate(loss, unhealthy_threshold, healthy_threshold, probes=probes, seed=seed)
    scale = SECONDS_PER_DAY / interval
    return TradeoffPoint(interval, timeout, unhealthy_threshold, healthy_threshold, loss, detection,
                         tuple(v * scale for v in per_probe), jitter)  # type: ignore[arg-type]  # fmt: skip


def tradeoff_figure(points: Sequence[TradeoffPoint], *, thresholds: Sequence[int] = (1, 2, 3, 4, 5, 6),
                    highlight: TradeoffPoint | None = None) -> Figure:  # fmt: skip
    """Left: detection time against false ejections (formula lines per interval, measured points).

    Right: the highlighted (or first) point's measured detection-time
    histogram against the formula's interval.
    """
    fig = Figure(figsize=(11, 3.8), dpi=72)
    curve, hist = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
    settings = sorted({(p.interval, p.timeout, p.healthy_threshold, p.loss) for p in points})
    colors = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2"]
    for k, (interval, timeout, h, loss) in enumerate(settings):
        color = colors[k % len(colors)]
        xs = [false_per_day_formula(interval, n, h, loss) for n in thresholds]
        ys = [detection_bounds(interval, timeout, n)[1] for n in thresholds]  # the mean does not depend on jitter
        curve.plot(xs, ys, color=color, label=f"formula: interval {interval:g} s, loss {loss:.0%}")
        mine = [p for p in points if (p.interval, p.timeout, p.healthy_threshold, p.loss) == (interval, timeout, h, loss)]
        if mine:
            mx = [p.false_per_day[0] for p in mine]
            my = [float(np.mean(p.detection)) for p in mine]
            xerr = [[p.false_per_day[0] - p.false_per_day[1] for p in mine], [p.false_per_day[2] - p.false_per_day[0] for p in mine]]
            curve.errorbar(mx, my, xerr=xerr, fmt="o", color=color, capsize=3, label=f"measured: interval {interval:g} s")
    curve.set_xscale("symlog", linthresh=0.01)
    curve.set_xlabel("false ejections per server per day (symlog)")
    curve.set_ylabel("mean crash-detection time (s)")
    curve.set_title("Detect faster, eject more healthy servers\n(points along a line: unhealthy_threshold = "
                    + ", ".join(map(str, thresholds)) + ")", fontsize=9)  # fmt: skip
    curve.legend(fontsize="x-small")
    curve.grid(alpha=0.3)
    shown = highlight or (points[0] if points else None)
    if shown is not None:
        low, mean, high = shown.formula_detection
        hist.hist(shown.detection, bins=20, color="#4c78a8", alpha=0.8, label=f"measured ({shown.detection.size} crashes)")
        hist.axvspan(low, high, color="#f58518", alpha=0.2, label=f"formula interval [{low:.1f}, {high:.1f}] s")
        hist.axvline(mean, color="#f58518", label=f"formula mean {mean:.1f} s")
        hist.axvline(float(np.mean(shown.detection)), color="#333333", linestyle="--",
                     label=f"measured mean {np.mean(shown.detection):.1f} s")  # fmt: skip
        hist.set_title(f"Crash detection: interval {shown.interval:g} s, timeout {shown.timeout:g} s, "
                       f"threshold {shown.unhealthy_threshold}", fontsize=9)  # fmt: skip
        hist.legend(fontsize="x-small")
    hist.set_xlabel("time from crash to 'down' (s)")
    hist.set_ylabel("crashes (count per bin of the histogram)")
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.86, wspace=0.22)  # fixed: tight_layout costs a widget 0.2 s
    return fig


def timeline_figure(
    states: Mapping[str, Sequence[tuple[float, float, str]]],
    load: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    rerouted: Sequence[float],
    *,
    end: float,
    faults: Sequence[tuple[float, str]] = (),
    title: str = "a fault scenario",
    now: float | None = None,
) -> Figure:
    """Top: each server's health state over time (coloured bands); middle: its load; bottom: re-routed requests.

    ``states`` maps a server to (start, end, state) spans; ``load`` to (times,
    requests in flight); ``rerouted`` lists the times requests were re-sent;
    ``faults`` marks (time, label) events; ``now`` draws the play head and
    hides what lies after it.  O(spans + points).
    """
    horizon = end if now is None else now
    fig = Figure(figsize=(11, 5.6), dpi=72)
    top, mid, low = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [1.2, 1.3, 0.8]})
    ids = list(states)
    for row, sid in enumerate(ids):
        for start, stop, state in states[sid]:
            if start >= horizon:
                continue
            top.barh(row, min(stop, horizon) - start, left=start, color=STATE_COLORS.get(state, "#999999"), height=0.7)
    top.set_yticks(range(len(ids)), ids)
    top.set_ylim(-0.6, len(ids) + 0.5)  # a row of headroom for the legend
    top.set_ylabel("server (state)")
    top.set_title(f"{title}: each server's health state", fontsize=9)
    for sid, (ts, values) in load.items():
        t = np.asarray(ts, float)
        v = np.asarray(values, float)
        keep = t <= horizon
        mid.step(t[keep], v[keep], where="post", label=sid)
    mid.set_ylabel("requests in flight (count)")
    mid.set_title("load per server", fontsize=9)
    r = np.asarray(rerouted, float)
    r = r[r <= horizon]
    bins = np.linspace(0.0, end, 41)
    width = bins[1] - bins[0]
    counts, _ = np.histogram(r, bins)
    low.bar(bins[:-1], counts / width, width=width, align="edge", color="#f58518", label=f"re-routed ({r.size} so far)")
    low.set_ylabel("re-routed (requests per s)")
    low.set_xlabel("simulated time (s)")
    low.set_title("requests re-sent to another server", fontsize=9)
    for ax in (top, mid, low):
        for k, (at, label) in enumerate(faults):
            ax.axvline(at, color="#333333", linestyle=":", linewidth=1, label="fault" if k == 0 else "_nolegend_")
        if now is not None and now < end:
            ax.axvline(now, color="#e45756", linewidth=1, label="now")
        ax.set_xlim(0.0, end)
        ax.set_xlabel("simulated time (s)")
    marks = [line for line in top.get_lines() if not line.get_label().startswith("_")]
    top.legend(handles=[Patch(color=c, label=s) for s, c in STATE_COLORS.items()] + marks, fontsize="x-small", ncol=6,
               loc="upper right")  # fmt: skip
    mid.legend(fontsize="x-small", ncol=min(len(load) + 2, 8), loc="upper right")
    low.legend(fontsize="x-small", loc="upper right")
    for at, label in faults:
        top.annotate(label, (at, len(ids) - 0.45), fontsize=7, ha="left", va="bottom", annotation_clip=False)
    fig.subplots_adjust(left=0.09, right=0.99, bottom=0.09, top=0.95, hspace=0.55)
    return fig


# -- widgets --------------------------------------------------------------------------------------


class TradeoffExplorer:
    """``display(TradeoffExplorer())``: move interval, timeout, thresholds and probe loss; see both costs.

    Each change measures one setting (120 crashes through ``impl``'s checker,
    or the reference's while it is a stub; 240,000 seeded probes for false
    ejections; cached per setting) and draws it on the formula's curve, in
    about 0.1 to 0.3 s.
    """

    def __init__(self, impl: ModuleType | None = None) -> None:
        self.impl = impl
        style = {"continuous_update": False}
        self.interval = W.FloatSlider(value=5.0, min=1.0, max=30.0, step=1.0, description="interval (s)", **style)
        self.timeout = W.FloatSlider(value=1.0, min=0.5, max=10.0, step=0.5, description="timeout (s)", **style)
        self.unhealthy = W.IntSlider(value=3, min=1, max=6, description="unhealthy N", **style)
        self.healthy = W.IntSlider(value=2, min=1, max=6, description="healthy H", **style)
        self.loss = W.FloatSlider(value=0.05, min=0.01, max=0.3, step=0.01, description="probe loss p", readout_format=".2f", **style)
        self.image = W.Image(format="png", layout=W.Layout(width="900px"))
        self.summary = W.HTML()
        for control in (self.interval, self.timeout, self.unhealthy, self.healthy, self.loss):
            control.observe(lambda _: self.run(), names="value")
        self.widget = W.VBox([W.HBox([W.VBox([self.interval, self.timeout]), W.VBox([self.unhealthy, self.healthy]), self.loss]),
                              self.image, self.summary])  # fmt: skip
        self.last: TradeoffPoint | None = None
        self._cache: dict[tuple, TradeoffPoint] = {}
        self.run()

    def run(self) -> TradeoffPoint | None:
        """Measure the current setting and redraw; returns the measured point (None: the checker is a stub)."""
        started = time.perf_counter()
        try:
            health = _health_module(self.impl)
        except NotImplementedError as exc:
            self.image.value = b""
            self.summary.value = f"<i>{html.escape(str(exc))}</i>"
            self.last = None
            return None
        key = (self.interval.value, self.timeout.value, self.unhealthy.value, self.healthy.value, round(self.loss.value, 4),
               id(health.HealthChecker))  # a reloaded exercise is a new class: measured again  # fmt: skip
        if key not in self._cache:
            self._cache[key] = measure_point(*key[:5], trials=120, probes=240_000, impl=health)
        point = self._cache[key]
        self.image.value = figure_png(tradeoff_figure([point], highlight=point))
        low, mean, high = point.formula_detection
        inside = float(np.mean((point.detection >= low - 1e-9) & (point.detection <= high + 1e-9)))
        f_mean, f_low, f_high = point.false_per_day
        self.summary.value = (
            f"crash detection: measured mean <b>{np.mean(point.detection):.2f} s</b> (formula {mean:.2f} s; "
            f"{inside:.0%} of crashes inside [{low:.2f}, {high:.2f}] s)<br>"
            f"false ejections per server per day: measured <b>{f_mean:.3g}</b> [{f_low:.3g}, {f_high:.3g}] "
            f"(formula {point.formula_false_per_day:.3g}; a fleet of 100 servers: {100 * point.formula_false_per_day:.3g} a day)"
            f"<br><small>checker: {html.escape(health.__name__)}.HealthChecker; "
            f"measured and drawn in {(time.perf_counter() - started) * 1000:.0f} ms</small>"
        )
        self.last = point
        return point

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


#: The timeline's faults (``solution.sim.scenarios.health_fault``) and check set-ups (``solution.sim.race.HEALTH_SETUPS``).
TIMELINE_FAULTS = {"crash": "crash", "hang": "hang", "throttled GPU": "throttled", "30%-failing server": "failing",
                   "gray failure": "gray"}  # fmt: skip


def state_spans(transitions: Sequence[Any], server_ids: Sequence[str], end: float) -> dict[str, list[tuple[float, float, str]]]:
    """Each server's (start, end, state) spans from a transition log, up to ``end``.

    A server starts ``healthy`` at 0 (the initial fleet is added warm) until
    its first transition.  O(T + S).
    """
    spans: dict[str, list[tuple[float, float, str]]] = {sid: [] for sid in server_ids}
    current = {sid: (0.0, "healthy") for sid in server_ids}
    for tr in transitions:
        if tr.server_id not in current:
            continue
        start, state = current[tr.server_id]
        if tr.at > start:
            spans[tr.server_id].append((start, float(tr.at), state))
        current[tr.server_id] = (float(tr.at), _name(tr.new))
    for sid, (start, state) in current.items():
        spans[sid].append((start, max(end, start), state))
    return spans


def timeline_record(fault: str, setup: str, *, requests: int = 1_500, seed: int = 1, servers: int = 4, load: float = 0.6,
                    balancer: Any = None) -> dict[str, Any]:  # fmt: skip
    """Run one fault scenario with one check set-up and return what :func:`timeline_figure` draws.

    ``fault`` is a :data:`TIMELINE_FAULTS` key (or a ``health_fault`` name),
    ``setup`` a ``HEALTH_SETUPS`` key.  The retry policy is the race's
    (3 tries, a 60 s per-try timeout).  Returns ``states`` (server -> spans),
    ``load`` (server -> (times, tries in flight)), ``rerouted`` (times a
    request was re-sent), ``faults``, ``end``, ``results`` and a one-line
    ``summary``.  O(n log n) after the run.
    """
    from solution.core.health_types import HealthPolicy, RetryPolicy
    from solution.sim import simulate
    from solution.sim.race import HEALTH_SETUPS, routed_least_connections
    from solution.sim.scenarios import health_fault

    if setup not in HEALTH_SETUPS:
        raise ValueError(f"unknown set-up {setup!r}; choose one of {', '.join(HEALTH_SETUPS)}")
    active, passive, slow = HEALTH_SETUPS[setup]
    scenario = health_fault(TIMELINE_FAULTS.get(fault, fault), servers=servers, requests=requests, load=load)
    scenario = scenario.with_health(HealthPolicy(), active=active, passive=passive, slow_start=slow,
                                    retry=RetryPolicy(max_tries=3, per_try_timeout=60.0))  # fmt: skip
    res = simulate(scenario, balancer or routed_least_connections(), seed=seed)
    end = float(np.nanmax(res.finish))
    ids = res.server_ids
    spans = state_spans(getattr(res.health, "transitions", ()), ids, end)
    # load: every try counts on its server while it runs (a re-sent request may run on two at once)
    intervals: list[tuple[int, float, float]] = []
    rerouted: list[float] = []
    for i in range(len(res)):
        tries = res.history.get(i)
        if tries:
            intervals.extend((t.server, t.start, t.end) for t in tries)
            rerouted.extend(t.start for t in tries[1:])
        elif res.server[i] >= 0 and not np.isnan(res.start[i]):
            intervals.append((int(res.server[i]), float(res.start[i]), float(res.finish[i])))
    series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k, sid in enumerate(ids):
        mine = [(a, b) for s, a, b in intervals if s == k]
        times = np.array([a for a, _ in mine] + [b for _, b in mine] + [0.0])
        steps = np.array([1] * len(mine) + [-1] * len(mine) + [0])
        order = np.argsort(times, kind="stable")
        series[sid] = (times[order], np.cumsum(steps[order]))
    faults = [(float(ev.at), f"{type(ev).__name__.lower()} {ev.server}") for ev in scenario.timetable]
    discarded = int(np.sum(res.late)) if res.late is not None else 0
    summary = (f"{fault}, checks {setup}: {len(res):,} requests, client errors {res.client_errors()}, "
               f"re-sent {len(rerouted)}, late answers discarded {discarded}, p99 {res.summary().e2e_p99:.1f} s, "
               f"wasted GPU {res.wasted_gpu_seconds():.0f} slot-s, transitions {len(getattr(res.health, 'transitions', ()))}")
    return {"states": spans, "load": series, "rerouted": rerouted, "faults": faults, "end": end, "results": res,
            "summary": summary}


class HealthTimeline:
    """``display(HealthTimeline())``: play a fault scenario; see each server's state, load and the re-routed requests."""

    def __init__(self, *, requests: int = 1_500, seed: int = 1) -> None:
        from solution.sim.race import HEALTH_SETUPS

        self.requests, self.seed = requests, seed
        self.scenario = W.Dropdown(options=list(TIMELINE_FAULTS), value="crash", description="fault")
        self.checks = W.Dropdown(options=list(HEALTH_SETUPS), value="both", description="checks")
        self.play = W.Play(value=100, min=0, max=100, step=5, interval=300, description="play")
        self.at = W.IntSlider(value=100, min=0, max=100, step=1, description="time (%)", continuous_update=True)
        W.jslink((self.play, "value"), (self.at, "value"))
        self.image = W.Image(format="png", layout=W.Layout(width="900px"))
        self.summary = W.HTML()
        self.scenario.observe(lambda _: self.run(), names="value")
        self.checks.observe(lambda _: self.run(), names="value")
        self.at.observe(lambda _: self.draw(), names="value")
        self.widget = W.VBox([W.HBox([self.scenario, self.checks]), W.HBox([self.play, self.at]), self.image, self.summary])
        self.record: dict[str, Any] | None = None
        self.run()

    def run(self) -> dict[str, Any] | None:
        """Simulate the chosen scenario with the chosen checks and redraw (None: a stub stood in the way, and says so)."""
        started = time.perf_counter()
        try:
            self.record = timeline_record(self.scenario.value, self.checks.value, requests=self.requests, seed=self.seed)
        except NotImplementedError as exc:  # the candidate's bundle: the path needs stages 1-4 written
            self.record = None
            self.image.value = b""
            self.summary.value = f"<i>{html.escape(str(exc))}</i>"
            return None
        self.simulated_ms = (time.perf_counter() - started) * 1000
        self.draw()
        return self.record

    def draw(self) -> None:
        rec = self.record
        if rec is None:
            return
        now = rec["end"] * self.at.value / 100
        self.image.value = figure_png(self.figure(now))
        self.summary.value = html.escape(rec["summary"]) + f"<br><small>simulated in {self.simulated_ms:.0f} ms</small>"

    def figure(self, now: float | None = None) -> Figure:
        rec = self.record or {}
        return timeline_figure(rec["states"], rec["load"], rec["rerouted"], end=rec["end"], faults=rec["faults"],
                               title=f"{self.scenario.value}, checks: {self.checks.value}", now=now)  # fmt: skip

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
