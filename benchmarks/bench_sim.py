"""Speed benchmark of the cluster simulator against an equivalent SimPy model.

One scenario (classic mode: Poisson arrivals, exponential service with mean
1 s, 16 servers of capacity 1, offered load 0.9 per server, the reference
stage-1 balancer, no queue) runs through

* this simulator (``solution.sim.simulate``, the classic fast path), and
* a SimPy model written the idiomatic way (one process per request,
  ``env.timeout`` for the service), calling the same balancer with the same
  random inputs, so both must reject exactly the same requests.

Both timings are end to end: drawing the inputs, the run, the per-request
outcome arrays.  It then reports peak memory of this simulator, two ways:
the tracemalloc peak of a separate ``simulate()`` call (Python objects and
numpy arrays allocated during the call), and the process's peak resident set
size (``resource.getrusage(...).ru_maxrss``: the whole process, interpreter
and libraries included, read right after the first timed run and before SimPy
runs).  The simulator and SimPy run in alternating rounds (``--rounds``, 3 by
default) and each side's best time counts, so a burst of load from another
process on a shared machine does not decide the ratio.
Finally it times the widget-sized rerun: 20,000 requests, classic and LLM mode
(the LLM mode runs the general engine and the servers' latency model, so it is
the figure a change to the server model moves; the classic run above takes
the fast path), and the same LLM run with stage 4's health checking on and off
(a ratio, for information).

Run from the repository root::

    .venv/bin/python benchmarks/bench_sim.py                # 1,000,000 requests
    .venv/bin/python benchmarks/bench_sim.py --requests 100000 --check
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solution import LoadBalancer  # noqa: E402
from solution.sim import Outcome, scenarios, simulate  # noqa: E402
from solution.sim.runner import prepare  # noqa: E402

#: The issue-10 bar: at least 2.5x SimPy in the same run, the LLM-mode widget rerun's median under 200 ms.
TARGETS = {"sim_rate": 150_000, "ratio": 2.5, "memory_mb": 600, "widget_ms": 300, "llm_widget_median_ms": 200,
           "affinity_widget_median_ms": 200}


def run_simpy(scenario, seed: int) -> np.ndarray:
    """The same loss system in SimPy; returns each request's outcome code."""
    import simpy

    inputs = prepare(scenario, seed)
    arrival = inputs.requests.arrival.tolist()
    service = inputs.prefill.tolist()
    estimated = inputs.estimated.tolist()
    lb = LoadBalancer()
    for spec, cap in zip(scenario.cluster.servers, inputs.capacity):
        lb.add_server(spec.server_id, cap, spec.gpu_spec.memory_gb)
    outcome = np.full(len(arrival), Outcome.COMPLETED, dtype=np.int8)
    env = simpy.Environment()

    def request(i: int):
        rid = f"r{i}"
        try:
            lb.route_request(rid, estimated[i])
        except RuntimeError:
            outcome[i] = Outcome.REJECTED
            return
        yield env.timeout(service[i])
        lb.complete_request(rid)

    def source():
        now = 0.0
        for i, t in enumerate(arrival):
            yield env.timeout(t - now)
            now = t
            env.process(request(i))

    env.process(source())
    env.run()
    return outcome


def timed(fn, *args, **kwargs):
    gc.collect()
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--servers", type=int, default=16)
    parser.add_argument("--load", type=float, default=0.9, help="offered load per server")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--widget-requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5, help="widget reruns to time")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of this simulator and SimPy; the best time of each counts")
    parser.add_argument("--skip-simpy", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)

    scenario = scenarios.classic(servers=args.servers, load=args.load, requests=args.requests)
    print(f"scenario: classic (M/M/c/c), {args.servers} servers of capacity 1, offered load {args.load} per server, "
          f"{args.requests:,} requests, balancer solution.LoadBalancer, seed {args.seed}")  # fmt: skip
    # Rounds alternate the two so that a burst of load from another process on a shared machine
    # hits both; each side's best (least disturbed) time counts, as timeit recommends.
    sim_times, simpy_times = [], []
    rss_mb = 0.0
    for _ in range(max(1, args.rounds)):
        res, sim_s = timed(simulate, scenario, LoadBalancer, seed=args.seed)
        sim_times.append(sim_s)
        rss_mb = rss_mb or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        if not args.skip_simpy:
            outcome, simpy_s = timed(run_simpy, scenario, args.seed)
            simpy_times.append(simpy_s)
    sim_s = min(sim_times)
    sim_rate = args.requests / sim_s
    rejected = res.count(Outcome.REJECTED) / len(res)
    rounds = f"best of {len(sim_times)}: " + ", ".join(f"{t:.2f}" for t in sim_times)
    print(f"  this simulator : {sim_s:7.2f} s  {sim_rate:>10,.0f} simulated requests/s  (rejected {rejected:.3%}; {rounds} s)")
    ratio = float("nan")
    if not args.skip_simpy:
        import simpy

        simpy_s = min(simpy_times)
        simpy_rate = args.requests / simpy_s
        ratio = sim_rate / simpy_rate
        same = bool((outcome == res.outcome).all())
        rounds = f"best of {len(simpy_times)}: " + ", ".join(f"{t:.2f}" for t in simpy_times)
        print(f"  SimPy {simpy.__version__:9s}: {simpy_s:7.2f} s  {simpy_rate:>10,.0f} simulated requests/s  "
              f"(rejected {(outcome == Outcome.REJECTED).mean():.3%}; same outcomes request by request: {same}; {rounds} s)")  # fmt: skip
        per_round = sorted(b / a for a, b in zip(sim_times, simpy_times))
        print(f"  ratio          : {ratio:.2f}x (best against best; per round {', '.join(f'{r:.2f}' for r in per_round)})")
    del res
    gc.collect()
    tracemalloc.start()
    simulate(scenario, LoadBalancer, seed=args.seed)
    peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(f"  peak memory    : {peak_mb:,.0f} MiB tracemalloc peak during simulate(); "
          f"{rss_mb:,.0f} MiB process peak RSS (ru_maxrss, whole process, before SimPy ran)")  # fmt: skip

    widget, medians = {}, {}
    for name, build in (("classic", scenarios.classic), ("steady LLM", scenarios.steady)):
        small = build(requests=args.widget_requests)
        times = [timed(simulate, small, LoadBalancer, seed=s)[1] * 1e3 for s in range(args.repeat)]
        widget[name] = max(times)
        medians[name] = statistics.median(times)
        print(f"  widget rerun   : {args.widget_requests:,} requests, {name:10s} median {statistics.median(times):6.1f} ms, "
              f"max {max(times):6.1f} ms over {args.repeat} seeds")  # fmt: skip

    # Stage 4: the same LLM widget run with health checking on (request path, checker, ledger) and off, on the
    # same router; a ratio (both in this process, interleaved), for information: health off must cost nothing.
    from solution.sim.race import least_connections

    small = scenarios.steady(requests=args.widget_requests)
    router = least_connections()
    off, on = [], []
    for s in range(args.repeat):
        off.append(timed(simulate, small, router, seed=s)[1] * 1e3)
        on.append(timed(simulate, small.with_health(), router, seed=s)[1] * 1e3)
    print(f"  health checks  : {args.widget_requests:,} requests, steady LLM, least-connections router: off median "
          f"{statistics.median(off):6.1f} ms, on (probes, outlier detection, re-route) {statistics.median(on):6.1f} ms "
          f"({statistics.median(on) / statistics.median(off):.2f}x)")  # fmt: skip

    # Stage 5: notebook 05's widget run (affinity_run: 600 requests of synthetic sessions on 4 servers, request path with
    # health on, a KV prefix cache per server), per policy.
    from solution.sim.affinityrace import POLICY_KINDS, affinity_run

    affinity_run("soft", seed=0)  # imports and the first-call costs out of the timing
    affinity = {}
    for kind in POLICY_KINDS:
        affinity[kind] = statistics.median(timed(affinity_run, kind, seed=s)[1] * 1e3 for s in range(args.repeat))
    print("  affinity widget: 600 requests, synthetic sessions, KV cache, health on: median " +
          ", ".join(f"{k} {v:.1f} ms" for k, v in affinity.items()) + f" over {args.repeat} seeds")  # fmt: skip

    # Stage 6: notebook 06's widget run (tiers_run: 300 requests, 2 servers, 1.3x overload, the full tier table with
    # rate limits and preemption, request path), with and without reservation and preemption.
    from solution.sim.tiersrace import tiers_run

    tiers_run(seed=0)  # imports and the first-call costs out of the timing
    tiers = {
        "full": statistics.median(timed(tiers_run, seed=s)[1] * 1e3 for s in range(args.repeat)),
        "no reservation": statistics.median(timed(tiers_run, seed=s, reserved=0.0)[1] * 1e3 for s in range(args.repeat)),
    }
    print("  tiers widget   : 300 requests, 2 servers, 1.3x overload, request path with tiers: median " +
          ", ".join(f"{k} {v:.1f} ms" for k, v in tiers.items()) + f" over {args.repeat} seeds")  # fmt: skip

    checks = {
        f"sim >= {TARGETS['sim_rate']:,} req/s": sim_rate >= TARGETS["sim_rate"],
        f"tiers widget median < {TARGETS['affinity_widget_median_ms']} ms": max(tiers.values()) < TARGETS["affinity_widget_median_ms"],
        f"affinity widget median < {TARGETS['affinity_widget_median_ms']} ms": max(affinity.values()) < TARGETS["affinity_widget_median_ms"],
        f"memory <= {TARGETS['memory_mb']} MB": max(peak_mb, rss_mb) <= TARGETS["memory_mb"],
        f"widget < {TARGETS['widget_ms']} ms": max(widget.values()) < TARGETS["widget_ms"],
        f"LLM widget median < {TARGETS['llm_widget_median_ms']} ms": medians["steady LLM"] < TARGETS["llm_widget_median_ms"],
    }
    if not args.skip_simpy:
        checks[f"ratio >= {TARGETS['ratio']}x SimPy"] = ratio >= TARGETS["ratio"]
    print("targets: " + "; ".join(f"{k} {'PASS' if ok else 'FAIL'}" for k, ok in checks.items()))
    return 1 if args.check and not all(checks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
