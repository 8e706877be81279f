"""Stage-3 widgets: race strategies on a cluster you configure; explain one decision.

:class:`StrategyRace` re-runs a small race at each change (a few strategies x
3 seeds x 1,500 requests, in this process: about 0.2 to 0.5 s) and draws p50,
p95 and p99 end-to-end latency with 95% intervals over seeds, the latency
CDF and each server's utilization.  :class:`DecisionExplorer` routes
requests one by one and shows every candidate's score by component.

Both take the implementation package (``solution`` or ``exercises``); a
strategy that is still a stub runs from the reference instead, and says so.
In the candidate's bundle, which has no reference, a stub is left out of the
race (the explorer says what to implement) and the note names it.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

import solution
from solution.core.impl import reference_available
from solution.core.routing import Router, RouterFactory
from solution.sim import Results, simulate
from solution.sim.race import heterogeneous, latency_hints, speed_hints
from solution.sim.workload import OUTPUT_ESTIMATE_SIGMA
from solution.sim.theory import mean_confidence_interval
from solution.widgets.drawing import figure_png

__all__ = ["StrategyRace", "DecisionExplorer", "STRATEGY_NAMES", "FLEETS"]

#: Menu name -> class name in the implementation package.
STRATEGY_NAMES = {
    "round-robin": "RoundRobin", "random": "RandomChoice", "least-connections": "LeastConnections",
    "power of two": "PowerOfChoices", "weighted response time": "WeightedResponseTime", "peak-EWMA": "PeakEwma",
    "least outstanding tokens": "LeastOutstandingTokens", "predictive": "Predictive",
}  # fmt: skip
#: Cluster mixes offered.
FLEETS: Mapping[str, Mapping[str, int]] = {
    "8 x A100": {"A100-80GB": 8},
    "4 A10 + 2 A100 + 2 H100": {"A10-24GB": 4, "A100-80GB": 2, "H100-80GB": 2},
    "6 A10 + 2 H100": {"A10-24GB": 6, "H100-80GB": 2},
}
_SPEED_AWARE = {"LeastOutstandingTokens", "Predictive"}


def _works(cls: type) -> bool:
    """True unless routing one request with a ``cls()`` reaches a stub."""
    try:
        router = Router(cls())
        router.add_server("probe", 1, 80)
        router.route_request("probe", 1)
        router.explain(1)
        return True
    except NotImplementedError:
        return False


def _balancer_works(impl: ModuleType) -> bool:
    """True when ``impl.LoadBalancer`` routes a request without reaching a stub."""
    try:
        lb = impl.LoadBalancer()
        lb.add_server("probe", 1, 80)
        lb.route_request("probe", 1)
        return True
    except (NotImplementedError, AttributeError):
        return False


def _strategy_class(impl: ModuleType, class_name: str) -> tuple[type | None, bool]:
    """``impl``'s class if it works, else the reference's; and whether it fell back.

    Without the reference (the candidate's bundle) a stub gives ``(None, True)``.
    """
    cls = getattr(impl, class_name, None) or getattr(solution, class_name)
    if _works(cls):
        return cls, False
    return (getattr(solution, class_name) if reference_available() else None), True


class StrategyRace:
    """``display(StrategyRace(impl))``: pick strategies, load, fleet, token tail, estimate error, staleness."""

    def __init__(self, impl: ModuleType = solution, *, requests: int = 1_500, seeds: int = 3) -> None:
        self.impl, self.requests, self.seeds = impl, requests, seeds
        self.strategies = W.SelectMultiple(options=list(STRATEGY_NAMES), value=["least-connections", "power of two", "predictive"],
                                           rows=8, description="strategies")  # fmt: skip
        self.load = W.FloatSlider(value=0.7, min=0.3, max=0.95, step=0.05, description="load", continuous_update=False)
        self.fleet = W.Dropdown(options=list(FLEETS), value="4 A10 + 2 A100 + 2 H100", description="cluster")
        self.alpha = W.FloatSlider(value=1.3, min=1.05, max=3.0, step=0.05, description="tail alpha", continuous_update=False)
        self.sigma = W.FloatSlider(value=round(OUTPUT_ESTIMATE_SIGMA, 1), min=0.0, max=1.5, step=0.1, description="estimate err", continuous_update=False)
        self.refresh = W.IntSlider(value=0, min=0, max=200, step=10, description="stale (k)", continuous_update=False)
        self.image = W.Image(format="png", layout=W.Layout(width="900px"))
        self.summary = W.HTML()
        for control in (self.strategies, self.load, self.fleet, self.alpha, self.sigma, self.refresh):
            control.observe(lambda _: self.run(), names="value")
        help_ = W.HTML("<small>tail alpha: Pareto index of output lengths (lower: heavier tail); estimate err: "
                       f"log-normal sigma of the output-length estimate ({OUTPUT_ESTIMATE_SIGMA}: what a predictor knowing only "
                       "the prompt length achieves on the Azure conversation trace); stale (k): the balancer's view refreshes every k "
                       "decisions (0: always fresh)</small>")  # fmt: skip
        self.widget = W.VBox([W.HBox([self.strategies, W.VBox([self.load, self.fleet, self.alpha, self.sigma, self.refresh])]),
                              help_, self.image, self.summary])  # fmt: skip
        self.last: dict[str, list[Results]] = {}
        self.run()

    def factories(self) -> tuple[dict[str, RouterFactory], list[str]]:
        """The chosen strategies as router factories, and those running from the reference."""
        scenario = self.scenario()
        speeds, models = speed_hints(scenario), latency_hints(scenario)
        out, fallback = {}, []
        for name in self.strategies.value or ("least-connections",):
            cls, fell_back = _strategy_class(self.impl, STRATEGY_NAMES[name])
            if fell_back:
                fallback.append(name)
            if cls is None:  # a stub, and no reference to run instead
                if STRATEGY_NAMES[name] == "LeastConnections" and _balancer_works(self.impl):
                    out[name] = self.impl.LoadBalancer  # stage 1's rule is the candidate's LoadBalancer (always fresh)
                    fallback.remove(name)
                continue
            aware = STRATEGY_NAMES[name] in _SPEED_AWARE
            out[name] = RouterFactory(cls, speeds=speeds if aware else None, models=models if aware else None,
                                      refresh_every=self.refresh.value)  # fmt: skip
        return out, fallback

    def scenario(self):  # noqa: ANN201 - a Scenario
        return heterogeneous(self.requests, self.load.value, fleet=FLEETS[self.fleet.value],
                             output_alpha=self.alpha.value, estimate_sigma=self.sigma.value)  # fmt: skip

    def run(self) -> dict[str, list[Results]]:
        """Race the chosen strategies on the same seeds and redraw; returns the runs by strategy."""
        started = time.perf_counter()
        scenario = self.scenario()
        factories, fallback = self.factories()
        runs = {name: [simulate(scenario, f, seed=s) for s in range(1, self.seeds + 1)] for name, f in factories.items()}
        simulated = time.perf_counter() - started
        if reference_available():
            note = f"<br><b>running from the reference</b> (your class is a stub): {html.escape(', '.join(fallback))}" if fallback else ""
        else:
            note = (f"<br><b>left out</b> until you implement them in exercises/strategies.py: {html.escape(', '.join(fallback))}"
                    if fallback else "")  # fmt: skip
        if not runs:
            self.image.value = b""
            self.summary.value = f"<i>no strategy to race yet</i>{note}"
            self.last = runs
            return runs
        self.image.value = figure_png(_race_figure(runs))
        total = time.perf_counter() - started
        p99 = {name: float(np.mean([r.summary().e2e_p99 for r in rs])) for name, rs in runs.items()}
        best = min(p99, key=p99.__getitem__)
        self.summary.value = (
            f"best p99: <b>{html.escape(best)}</b> ({p99[best]:.2f} s); "
            + ", ".join(f"{html.escape(n)} {v / p99[best]:.2f}x" for n, v in p99.items() if n != best)
            + f"{note}<br><small>{len(runs) * self.seeds} runs of {self.requests:,} requests in {simulated * 1000:.0f} ms, "
            f"drawn in {(total - simulated) * 1000:.0f} ms</small>"
        )
        self.last = runs
        return runs

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _race_figure(runs: Mapping[str, list[Results]]) -> Figure:
    """Percentiles with 95% intervals over seeds, pooled latency CDFs, per-server utilization."""
    fig = Figure(figsize=(11.5, 3.3), dpi=80)
    bars, cdf, util = fig.subplots(1, 3)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.27, top=0.9, wspace=0.25)
    width = 0.8 / max(len(runs), 1)
    for j, (name, rs) in enumerate(runs.items()):
        sums = [r.summary() for r in rs]
        stats = [mean_confidence_interval([getattr(s, f"e2e_p{p}") for s in sums], 0.95) for p in (50, 95, 99)]
        means = [m for m, _, _ in stats]
        errs = [[m - lo for m, lo, _ in stats], [hi - m for m, _, hi in stats]]
        bars.bar(np.arange(3) + j * width, means, width, yerr=errs, capsize=2, label=name)
        e2e = np.concatenate([r.e2e[~np.isnan(r.e2e)] for r in rs])
        q = np.linspace(0, 1, 300)
        cdf.plot(np.quantile(e2e, q), q, label=name)
        utilization = np.mean([s.utilization for s in sums], axis=0)
        util.bar(np.arange(len(utilization)) + j * width, utilization, width, label=name)
    bars.set_xticks(np.arange(3) + 0.4 - width / 2, ["p50", "p95", "p99"])
    bars.set_xlabel("percentile (share of requests faster)")
    bars.set_ylabel("end-to-end latency (s)")
    bars.set_title("Percentiles, 95% intervals over seeds", fontsize="small")
    bars.legend(fontsize="x-small")
    cdf.set_xscale("log")
    cdf.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.1, 1, 10: not 10^-1
    cdf.xaxis.set_minor_formatter(NullFormatter())
    cdf.set_xlabel("end-to-end latency (s)")
    cdf.set_ylabel("fraction of requests")
    cdf.set_title("Latency distribution, all seeds", fontsize="small")
    cdf.legend(fontsize="x-small")
    cdf.grid(alpha=0.3)
    first = next(iter(runs.values()))[0]
    util.set_xticks(np.arange(len(first.server_ids)) + 0.4 - width / 2, first.server_ids, rotation=60, fontsize="x-small")
    util.set_xlabel("server (GPU type, index)")
    util.set_ylabel("utilization (fraction of slots in use)")
    util.set_title("Utilization per server", fontsize="small")
    util.legend(fontsize="x-small")
    return fig


class DecisionExplorer:
    """``display(DecisionExplorer(impl))``: route requests one by one on a mixed fleet; see each decision's scores."""

    SERVERS = (("h100", 8, 80, 3.0), ("a100", 6, 80, 1.5), ("a10-a", 3, 24, 0.5), ("a10-b", 3, 24, 0.5))

    def __init__(self, impl: ModuleType = solution) -> None:
        self.impl = impl
        self.strategy = W.Dropdown(options=list(STRATEGY_NAMES), value="predictive", description="strategy")
        self.tokens = W.IntSlider(value=800, min=1, max=12_000, step=100, description="tokens", continuous_update=False)
        self.prompt = W.IntSlider(value=100, min=0, max=12_000, step=100, description="of which prompt", continuous_update=False)
        self.route = W.Button(description="route it")
        self.complete = W.Button(description="complete oldest")
        self.out = W.HTML()
        self.strategy.observe(lambda _: self.reset(), names="value")
        self.tokens.observe(lambda _: self.show(), names="value")
        self.prompt.observe(lambda _: self.show(), names="value")
        self.route.on_click(lambda _: self.do_route())
        self.complete.on_click(lambda _: self.do_complete())
        self.widget = W.VBox([W.HBox([self.strategy, self.tokens, self.prompt]), W.HBox([self.route, self.complete]), self.out])
        self.reset()

    def reset(self) -> None:
        cls, self.fell_back = _strategy_class(self.impl, STRATEGY_NAMES[self.strategy.value])
        if cls is None:  # a stub, and no reference to run instead
            self.router = None
            self.count, self.log = 0, []
            self.show()
            return
        self.router = Router(cls(), speeds={sid: speed for sid, _, _, speed in self.SERVERS})
        for sid, cap, mem, _ in self.SERVERS:
            self.router.add_server(sid, cap, mem)
        self.count, self.log = 0, []
        self.show()

    def do_route(self) -> None:
        if self.router is None:
            return
        rid = f"r{self.count}"
        self.count += 1
        try:
            sid = self.router.route_request(rid, self.tokens.value, prompt_tokens=self._prompt())
            self.log.append(f"{rid} ({self.tokens.value} tokens, {self._prompt()} prompt) -> {sid}")
        except RuntimeError as exc:
            self.log.append(f"{rid}: {exc}")
        self.show()

    def do_complete(self) -> None:
        if self.router is None:
            return
        stats = self.router.get_server_stats()
        active = sorted((int(r[1:]), r) for s in stats.values() for r in s["active_requests"])
        if active:
            self.router.complete_request(active[0][1])
            self.log.append(f"{active[0][1]} completed")
        self.show()

    def show(self) -> None:
        if self.router is None:
            name = STRATEGY_NAMES[self.strategy.value]
            if name == "LeastConnections":
                why = "LeastConnections is stage 1's rule, which you write as exercises/balancer.py: this copy leaves it out"
            else:
                why = f"{name} is not implemented yet: write it in exercises/strategies.py, then pick it again"
            self.out.value = f"<i>{html.escape(why)}</i>"
            return
        decision = self.router.explain(self.tokens.value, prompt_tokens=self._prompt())
        loads = ", ".join(f"{sid} {s['current_load']}/{s['capacity']} ({s['outstanding_output_tokens']} output tok, x{s['speed']:g})"
                          for sid, s in self.router.get_server_stats().items())  # fmt: skip
        note = "<br><b>running from the reference</b> (your class is a stub)" if self.fell_back else ""
        self.out.value = (f"<pre>{html.escape(decision.table())}</pre><small>{html.escape(loads)}<br>"
                          f"{html.escape(' | '.join(self.log[-4:]))}</small>{note}")  # fmt: skip

    def _prompt(self) -> int:
        """The prompt's share of the request's tokens (at most all of them)."""
        return min(self.prompt.value, self.tokens.value)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
