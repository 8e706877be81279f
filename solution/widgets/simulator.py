"""Simulator playground: pick a scenario, a cluster size and a load; see latency and load.

Each change re-runs a 20,000-request scenario through the simulator (about
0.1 s) and redraws one small figure (the latency CDF and the per-server load
over time), so the widget answers within a few tenths of a second.  The time
each step took is shown under the figure.

Without a balancer given it runs the reference's ``LoadBalancer``; in the
candidate's bundle, the candidate's, and while that is a stub a round-robin
baseline (:func:`solution.sim.runner.default_balancer`), saying so.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from solution.core.impl import demo_impl, reference_available
from solution.sim import Results, scenarios, simulate
from solution.sim.runner import default_balancer
from solution.widgets.drawing import figure_png

__all__ = ["SimulatorPlayground", "PLAYGROUND_SCENARIOS"]

#: The scenarios offered in the menu (all in :mod:`solution.sim.scenarios`).
PLAYGROUND_SCENARIOS = ("steady", "bursty", "heavy-tail", "mixed-gpus", "slow-server", "crash", "classic")


class SimulatorPlayground:
    """``display(SimulatorPlayground())`` in a notebook; :meth:`run` is what every control calls."""

    def __init__(self, balancer: Callable[[], Any] | None = None, *, requests: int = 20_000, seed: int = 1) -> None:
        self.balancer = balancer if balancer is not None else demo_impl().LoadBalancer
        self.note = ""
        self.requests = requests
        self.scenario = W.Dropdown(options=PLAYGROUND_SCENARIOS, value="steady", description="scenario")
        self.servers = W.IntSlider(value=4, min=2, max=16, description="servers", continuous_update=False)
        self.load = W.FloatSlider(value=0.7, min=0.2, max=1.3, step=0.05, description="load/server", continuous_update=False)
        self.seed = W.IntSlider(value=seed, min=1, max=20, description="seed", continuous_update=False)
        self.image = W.Image(format="png", layout=W.Layout(width="760px"))
        self.summary = W.HTML()
        for control in (self.scenario, self.servers, self.load, self.seed):
            control.observe(lambda _: self.run(), names="value")
        self.widget = W.VBox([W.HBox([self.scenario, self.servers]), W.HBox([self.load, self.seed]), self.image, self.summary])
        self.last: Results | None = None
        self.run()

    def run(self) -> Results:
        """Re-run the chosen scenario and redraw; returns the results."""
        started = time.perf_counter()
        scenario = scenarios.build(self.scenario.value, servers=self.servers.value, load=self.load.value, requests=self.requests)
        try:
            res = simulate(scenario, self.balancer, seed=self.seed.value)
            self.note = ""
        except NotImplementedError as exc:  # a stub: show the simulator with a baseline instead
            res = simulate(scenario, default_balancer(), seed=self.seed.value)
            instead = "the reference" if reference_available() else "a round-robin baseline"
            self.note = f"<br><i>your balancer is not ready ({html.escape(str(exc))}): showing {instead} instead</i>"
        simulated = time.perf_counter() - started
        self.image.value = figure_png(_figure(res))
        total = time.perf_counter() - started
        s = res.summary()
        self.summary.value = (
            f"<b>{html.escape(self.scenario.value)}</b>, {self.servers.value} servers, load {self.load.value:.2f}: "
            f"e2e p50 {s.e2e_p50:.3g} s, p99 {s.e2e_p99:.3g} s; lost {s.loss_rate:.1%}; "
            f"mean utilization {sum(s.utilization) / max(len(s.utilization), 1):.0%}<br>"
            f"<small>simulated {len(res.arrival):,} requests in {simulated * 1000:.0f} ms, drawn in "
            f"{(total - simulated) * 1000:.0f} ms</small>{self.note}"
        )
        self.last = res
        return res

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _figure(res: Results) -> Figure:
    """Latency CDF (500 quantiles, cheap to draw) and running requests per server over time, with the capacity."""
    fig = Figure(figsize=(9.5, 3.4), dpi=80)
    cdf, load = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.22)  # fixed: layout engines cost ~50 ms
    e2e = res.e2e[~np.isnan(res.e2e)]
    if len(e2e):
        q = np.linspace(0, 1, 500)
        cdf.plot(np.quantile(e2e, q), q, color="#4c78a8", label="completed requests")
        p99 = float(np.quantile(e2e, 0.99))
        cdf.axvline(p99, color="#f58518", linestyle=":", label=f"p99 = {p99:.3g} s")
        cdf.legend(loc="lower right", fontsize="small")
        cdf.set_xscale("log")
    cdf.set_title("how long requests took (the tail is the p99)", fontsize=10)
    cdf.set_xlabel("end-to-end latency (s, log scale)")
    cdf.set_ylabel("fraction of completed requests")
    cdf.grid(alpha=0.3)
    times = res.time_grid(200)
    running = res.load_over_time(times)
    many = len(res.server_ids) > 8
    for k, server_id in enumerate(res.server_ids):
        label = ("each server" if k == 0 else "_nolegend_") if many else server_id
        load.step(times, running[:, k], where="post", linewidth=1, label=label, color="#4c78a8" if many else None)
    top = int(res.capacity.max())
    load.axhline(top, color="#c00", linestyle="--", linewidth=1, label=f"capacity: {top} sequences")
    load.set_ylim(0, top * 1.4)  # headroom above the capacity line for the legend
    load.set_title("requests running per server (full at the dashed line)", fontsize=10)
    load.set_xlabel("simulated time (s)")
    load.set_ylabel("running requests (sequences)")
    load.grid(alpha=0.3)
    load.legend(loc="upper center", fontsize="x-small", ncols=3)
    return fig
