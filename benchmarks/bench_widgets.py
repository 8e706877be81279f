"""How fast the widgets answer: the time from a control change to a redrawn picture.

Calls the same methods the controls call (no browser: tests/browser measures
the full round trip through JupyterLab) and prints the median and worst of
several runs for each action.  Target: well under a second; the simulator
playground's 20,000-request rerun under 300 ms; the tier explorer's change
(a run and its redraw) under 200 ms.

Usage: python benchmarks/bench_widgets.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import solution  # noqa: E402
from solution.widgets import ClusterPlayground  # noqa: E402
from solution.widgets.simulator import PLAYGROUND_SCENARIOS, SimulatorPlayground  # noqa: E402


def timed(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    cluster = ClusterPlayground(solution)
    sim = SimulatorPlayground()
    rows = [
        ("cluster: route a request", lambda: cluster.route(300)),
        ("cluster: move the tokens slider", lambda: setattr(cluster.tokens, "value", cluster.tokens.value % 9000 + 1000)),
        ("cluster: reset", cluster.reset),
    ]
    def rerun(name: str) -> Callable[[], object]:
        def action() -> object:
            if sim.scenario.value != name:
                sim.scenario.value = name  # the control's observer re-runs it: that is the timed step
                return sim.last
            return sim.run()  # same scenario again: what a seed or load change costs

        return action

    for name in PLAYGROUND_SCENARIOS:
        rows.append((f"simulator: rerun {name} (20,000 requests)", rerun(name)))
    print(f"{'action':<48}{'median ms':>10}{'worst ms':>10}")
    worst_sim = 0.0
    for label, action in rows:
        median, worst = timed(action, args.repeat)
        if label.startswith("simulator"):
            worst_sim = max(worst_sim, median)
        print(f"{label:<48}{median:>10.0f}{worst:>10.0f}")
    print(f"slowest simulator rerun (median): {worst_sim:.0f} ms  (target < 300 ms)")
    tiers_median = tier_explorer(args.repeat)
    print(f"tier explorer, a control change (median over every control): {tiers_median:.0f} ms  (target < 200 ms)")


def tier_explorer(repeat: int) -> float:
    """Median ms per control change of notebook 06's TierExplorer, each change a setting not run before (no cache hit)."""
    from solution.widgets.tiers import TierExplorer

    explorer = TierExplorer()
    steps = [(explorer.reserved, v) for v in (0, 10, 20, 30, 40, 50)] + [(explorer.overload, v) for v in (1.0, 1.5, 1.8, 2.0)]
    steps += [(explorer.limits, False), (explorer.preemption, False), (explorer.limits, True), (explorer.premium, 0.3), (explorer.batch, 0.1)]
    samples = []
    for control, value in steps[: max(repeat, 1) * 2]:
        start = time.perf_counter()
        control.value = value
        samples.append((time.perf_counter() - start) * 1000)
    print(f"{'tiers: a control change (run + redraw)':<48}{statistics.median(samples):>10.0f}{max(samples):>10.0f}")
    return statistics.median(samples)


if __name__ == "__main__":
    main()
