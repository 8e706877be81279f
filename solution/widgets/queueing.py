"""Stage 2 playground: a queue in front of the cluster, with the theory beside it.

The learner sets the arrival rate, the number of servers, the maximum depth,
the maximum wait and the ordering.  Each change simulates the same requests
(classic mode: exponential service of mean 1 s, one request per server; 30%
of the traffic is *interactive*, priority class 1; the gateway knows each
job's size, so shortest-job-first has something to work with) under each of
the three orderings, and draws:

* the queue depth over time (the chosen ordering), with the maximum depth;
* the wait-time distribution per ordering, with the M/M/c distribution when
  the queue is unbounded and nobody times out;
* the queue-full (503) and timeout rates per ordering, with the M/M/c/K blocking
  probability when it applies;
* the mean wait against the load, the formula's curve (M/M/c or M/M/c/K)
  with the three simulated points at the chosen load.

The implementation under test runs the same requests with the chosen
ordering; its result is compared with the reference's, request by request.
While its ``RequestQueue`` is a stub the playground shows the reference alone.
In the candidate's bundle, which has no reference, every ordering runs on
the candidate's queue (behind :func:`solution.sim.runner.default_balancer`:
on these identical servers the routing rule does not change the outcome),
and while it is a stub the playground says what to implement.

Each change costs four runs of a few thousand requests and one figure:
a few tenths of a second.
"""

from __future__ import annotations

import html
import time
from types import ModuleType
from typing import Any

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

import solution
from solution.core.impl import demo_impl, reference_available
from solution.core.queue_types import Ordering, QueuePolicy
from solution.sim import ClassicMode, Cluster, Fixed, Outcome, Results, Scenario, Tier, Workload, simulate
from solution.sim.plot import queue_depth, wait_cdf
from solution.sim.queueing import QueueConfig
from solution.sim.runner import default_balancer
from solution.sim.theory import mmc_mean_wait, mmck
from solution.widgets.drawing import figure_png

__all__ = ["QueuePlayground", "queue_scenario", "ORDERINGS"]

ORDERINGS = tuple(o.value for o in Ordering)
_DEPTHS = [("unbounded", -1), ("0 (no queue)", 0), ("2", 2), ("5", 5), ("10", 10), ("20", 20), ("50", 50), ("200", 200)]
_WAITS = [("no limit", 0.0), ("1 s", 1.0), ("2 s", 2.0), ("5 s", 5.0), ("10 s", 10.0), ("30 s", 30.0)]
_COLORS = {"fifo": "#4c78a8", "priority": "#f58518", "sjf": "#54a24b"}


def queue_scenario(rate: float, servers: int, max_depth: int | None, max_wait: float | None, ordering: str,
                   requests: int = 4_000) -> Scenario:  # fmt: skip
    """The playground's scenario: Poisson arrivals at ``rate`` per second, ``servers`` of capacity 1,
    mean service 1 s, sizes known (``ClassicMode(sized=True)``), 30% interactive traffic in class 1."""
    tiers = (Tier("interactive", 0.3, Fixed(100), Fixed(100)), Tier("batch", 0.7, Fixed(100), Fixed(100)))
    policy = QueuePolicy(ordering=ordering, max_depth=max_depth, max_wait=max_wait, aging_rate=10.0,
                         scale_up_depth=2 * servers, scale_up_after=30.0)  # fmt: skip
    return Scenario(Cluster.uniform(servers, capacity=1), Workload(requests, tiers=tiers), ClassicMode(sized=True),
                    load=rate / servers, queue=QueueConfig(policy, priorities={"interactive": 1}), name=ordering)  # fmt: skip


class QueuePlayground:
    """``display(QueuePlayground(impl))`` in a notebook; :meth:`run` is what every control calls."""

    def __init__(self, impl: ModuleType | None = None, *, requests: int = 4_000, seed: int = 1) -> None:
        self.impl = impl
        self.requests = requests
        self.rate = W.FloatSlider(value=3.6, min=0.5, max=20.0, step=0.1, description="arrivals/s", continuous_update=False)
        self.servers = W.IntSlider(value=4, min=1, max=16, description="servers", continuous_update=False)
        self.max_depth = W.Dropdown(options=_DEPTHS, value=20, description="max depth")
        self.max_wait = W.Dropdown(options=_WAITS, value=0.0, description="max wait")
        self.ordering = W.ToggleButtons(options=ORDERINGS, value="fifo", description="ordering")
        self.seed = W.IntSlider(value=seed, min=1, max=20, description="seed", continuous_update=False)
        self.image = W.Image(format="png", layout=W.Layout(width="900px"))
        self.summary = W.HTML()
        for control in (self.rate, self.servers, self.max_depth, self.max_wait, self.ordering, self.seed):
            control.observe(lambda _: self.run(), names="value")
        self.widget = W.VBox([
            W.HBox([self.rate, self.servers, self.seed]),
            W.HBox([self.max_depth, self.max_wait]),
            self.ordering, self.image, self.summary,
        ])  # fmt: skip
        self.runs: dict[str, Results] = {}
        self.verdict = ""
        self.run()

    # -- the simulation --------------------------------------------------------------

    def settings(self) -> tuple[float, int, int | None, float | None, str]:
        depth = self.max_depth.value
        return (self.rate.value, self.servers.value, None if depth < 0 else depth, self.max_wait.value or None, self.ordering.value)

    def run(self) -> dict[str, Results]:
        """Simulate every ordering with the reference, the chosen one with the implementation; redraw."""
        started = time.perf_counter()
        rate, servers, depth, wait, chosen = self.settings()
        if reference_available():
            balancer, queue = solution.LoadBalancer, solution.RequestQueue
        else:  # the candidate's bundle: the candidate's queue is the only one
            balancer, queue = default_balancer(), (self.impl if self.impl not in (None, solution) else demo_impl()).RequestQueue
        try:
            self.runs = {
                ordering: simulate(queue_scenario(rate, servers, depth, wait, ordering, self.requests), balancer, queue=queue,
                                   seed=self.seed.value)  # fmt: skip
                for ordering in ORDERINGS
            }
        except NotImplementedError as exc:  # only without the reference: there is nothing else to show
            self.runs = {}
            self.verdict = (f"<i>your RequestQueue raises NotImplementedError ({html.escape(str(exc))}): implement "
                            "exercises/request_queue.py (stage 2) to see the orderings here</i>")  # fmt: skip
            self.image.value = b""
            self.summary.value = self.verdict
            return self.runs
        if reference_available():
            self.verdict = self._compare(queue_scenario(rate, servers, depth, wait, chosen, self.requests), self.runs[chosen])
        else:
            self.verdict = "<i>your RequestQueue (the candidate's bundle has no reference to compare it with)</i>"
        simulated = time.perf_counter() - started
        self.image.value = figure_png(self._figure())
        total = time.perf_counter() - started
        self.summary.value = self._table() + f"<br>{self.verdict}<br><small>simulated 4 x {self.requests:,} requests in " \
            f"{simulated * 1000:.0f} ms, drawn in {(total - simulated) * 1000:.0f} ms</small>"  # fmt: skip
        return self.runs

    def _compare(self, scenario: Scenario, reference: Results) -> str:
        """Run the implementation's queue on the same requests; say whether it matches the reference."""
        impl = self.impl
        if impl is None or impl is solution:
            return "<i>showing the reference queue</i>"
        try:
            mine = simulate(scenario, solution.LoadBalancer, queue=impl.RequestQueue, seed=self.seed.value)
        except NotImplementedError as exc:
            return f"<i>your RequestQueue raises NotImplementedError ({html.escape(str(exc))}): showing the reference alone</i>"
        except Exception as exc:  # a candidate's bug: show it, keep the widget alive
            return f"<b style='color:#c00'>your RequestQueue failed in the simulator:</b> {html.escape(f'{type(exc).__name__}: {exc}')}"
        if mine.same_as(reference):
            return f"your RequestQueue ({html.escape(scenario.name)}): <b style='color:#080'>same outcome as the reference for every request</b>"
        differs = (mine.outcome != reference.outcome) | ~np.isclose(mine.start, reference.start, equal_nan=True)
        first = int(np.argmax(differs)) if differs.any() else 0
        return (
            f"your RequestQueue ({html.escape(scenario.name)}): <b style='color:#c00'>MISMATCH</b>, first at request r{first}: "
            f"yours {Outcome(mine.outcome[first]).name.lower()} (dispatched at {mine.start[first]:.3f} s), the reference "
            f"{Outcome(reference.outcome[first]).name.lower()} (dispatched at {reference.start[first]:.3f} s)"
        )

    # -- the pictures ------------------------------------------------------------------

    def _figure(self) -> Figure:
        rate, servers, depth, wait, chosen = self.settings()
        fig = Figure(figsize=(11.5, 6.4), dpi=80)
        (depth_ax, cdf_ax), (rates_ax, theory_ax) = fig.subplots(2, 2)
        fig.subplots_adjust(left=0.07, right=0.99, bottom=0.08, top=0.95, wspace=0.18, hspace=0.35)  # fixed: fast
        queue_depth(self.runs[chosen], max_depth=depth, ax=depth_ax, label=f"requests waiting ({chosen})")
        depth_ax.set_title(f"queue depth ({chosen})", fontsize=10, y=1.0)
        a = rate  # offered load in erlangs (mean service 1 s)
        fits_mmc = depth is None and wait is None and a < servers
        wait_cdf(self.runs, ax=cdf_ax, theory=(servers, a) if fits_mmc else None, highlight=chosen, survival=True)
        cdf_ax.set_title("wait-time distribution per ordering (tail on a log scale)", fontsize=10, y=1.0)
        self._rates(rates_ax, servers, a, depth, wait)
        self._theory(theory_ax, servers, a, depth, wait)
        return fig

    def _rates(self, ax: Any, servers: int, a: float, depth: int | None, wait: float | None) -> None:
        x = np.arange(len(ORDERINGS))
        summaries = {o: self.runs[o].summary() for o in ORDERINGS}
        full = [summaries[o].queue_full_rate for o in ORDERINGS]
        timed_out = [summaries[o].timeout_rate for o in ORDERINGS]
        ax.bar(x - 0.2, full, 0.4, label="503 (queue full)", color="#e45756")
        ax.bar(x + 0.2, timed_out, 0.4, label="timed out", color="#9d755d")
        blocking = mmck(servers, a, depth)[0] if depth is not None and wait is None else 0.0
        if blocking:
            ax.axhline(blocking, color="black", linestyle="--", linewidth=1, label=f"M/M/{servers}/{servers + depth} blocking")
        ax.set_ylim(0.0, 1.15 * max([0.01, blocking, *full, *timed_out]))
        ax.set_xticks(x, ORDERINGS)
        ax.set_xlabel("queue ordering (same arrivals)")
        ax.set_ylabel("fraction of requests")
        ax.set_title("queue-full (503) and timeout rates", fontsize=10, y=1.0)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize="small")

    def _theory(self, ax: Any, servers: int, a: float, depth: int | None, wait: float | None) -> None:
        load = a / servers
        top = max(1.5, load * 1.1) if depth is not None else 0.97
        grid = np.linspace(0.05, top, 120)
        if depth is None:
            ax.plot(grid, [mmc_mean_wait(servers, x * servers) for x in grid], color="black", linewidth=1, label=f"M/M/{servers} (Erlang C)")
        else:
            ax.plot(grid, [mmck(servers, x * servers, depth)[1] for x in grid], color="black", linewidth=1,
                    label=f"M/M/{servers}/{servers + depth}")  # fmt: skip
        simulated = [self.runs[o].summary(50.0).wait_mean for o in ORDERINGS]
        for ordering, mean in zip(ORDERINGS, simulated):
            ax.plot([load], [mean], "o", color=_COLORS[ordering], label=f"{ordering} (simulated)")
        if wait is not None:
            ax.text(0.02, 0.95, "with a max wait the formula is an upper bound", transform=ax.transAxes, fontsize=8, va="top")
        here = mmc_mean_wait(servers, a) if depth is None and a < servers else mmck(servers, a, depth)[1] if depth is not None else 0.0
        ax.set_ylim(0.0, 2.0 * max([here, 0.25, *(m for m in simulated if m == m)]))
        ax.set_xlabel("offered load per server")
        ax.set_ylabel("mean wait (s)")
        ax.set_title("mean wait against the load: theory and simulation", fontsize=10, y=1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper left")

    def _table(self) -> str:
        head = "<tr><th>ordering</th><th>mean wait</th><th>p99 wait</th><th>503 (queue full)</th><th>timed out</th><th>interactive mean wait</th></tr>"
        rows = []
        for ordering, res in self.runs.items():
            s = res.summary()
            interactive = res.wait[(res.tier == 0) & ~np.isnan(res.wait)]
            rows.append(
                f"<tr><td>{ordering}</td><td>{s.wait_mean:.2f} s</td><td>{s.wait_p99:.2f} s</td><td>{s.queue_full_rate:.1%}</td>"
                f"<td>{s.timeout_rate:.1%}</td><td>{float(interactive.mean()) if len(interactive) else float('nan'):.2f} s</td></tr>"
            )
        return f"<table style='font-size:12px'>{head}{''.join(rows)}</table>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
