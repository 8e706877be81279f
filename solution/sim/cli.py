"""The command line: ``python -m solution.sim``.

::

    python -m solution.sim list
    python -m solution.sim run classic --servers 16 --load 0.9 --requests 1000000
    python -m solution.sim run crash --servers 4 --detection 5 --balancer exercises
    python -m solution.sim run classic --servers 4 --load 1.1 --queue sjf --max-depth 50 --max-wait 30
    python -m solution.sim trace ../shared/data/azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv \\
        --servers 2 --time-scale 0.5
    python -m solution.sim run hang --servers 4 --health both                 # stage 4: probes, outlier detection, re-route
    python -m solution.sim health-race --seeds 6             # stage 4: health set-ups on four faults
    python -m solution.sim health-checks                     # stage 4: detection time and false ejections vs theory
    python -m solution.sim affinity-race --workload mooncake  # stage 5: affinity policies on the Mooncake trace
    python -m solution.sim affinity-race --workload pileup --seeds 4   # stage 5: a hot session key
    python -m solution.sim kv-checks                         # stage 5: LRU vs Che's approximation, KV migration break-even
    python -m solution.sim tiers-race --seeds 4              # stage 6: the policy ladder under 1.3x overload
    python -m solution.sim tiers-race --workload azure --seeds 4   # stage 6: the Azure trace, tiers assigned
    python -m solution.sim tier-checks                       # stage 6: strict priority vs Cobham / preemptive-resume
    python -m solution.sim deploy-race --seeds 3             # stage 7: rollouts, canary blast radius, false rollbacks
    python -m solution.sim storm                             # stage 8: the retry storm and the retry budget

``--balancer`` picks the implementation: ``solution`` (the reference),
``exercises`` (the candidate's), or ``package.module:Class``; by default the
one ``LB_IMPL`` names, else the reference.  ``--queue ORDERING`` puts a
stage-2 queue at the gateway (``--max-depth``, ``--max-wait``;
``--queue-impl`` picks its implementation the same way).  A progress bar
appears on long runs when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence

from solution.core.impl import impl_name, load_impl
from solution.core.queue_types import Ordering, QueuePolicy
from solution.sim.errors import BalancerContractError
from solution.sim.gpus import GPU_PRESETS
from solution.sim.runner import BalancerFactory, simulate
from solution.sim.queueing import QueueConfig
from solution.sim.scenarios import SCENARIOS, build, trace

__all__ = ["main", "resolve_balancer"]

#: Runs with at least this many requests show a progress bar (on a terminal).
LONG_RUN = 100_000


def resolve_balancer(spec: str | None) -> BalancerFactory:
    """``solution`` / ``exercises`` / ``package.module:Class`` (``None``: ``LB_IMPL``, else the reference).

    Raises:
        ValueError: the spec is malformed or names nothing importable.
    """
    if spec is None:
        spec = impl_name(default="solution")
    if ":" not in spec:
        return load_impl(spec).LoadBalancer
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import balancer {spec!r} ({exc}); use package.module:Class") from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m solution.sim", description="Simulate an LLM serving cluster.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the named scenarios and GPU presets")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--servers", type=int, help="number of servers")
    common.add_argument("--gpu", choices=sorted(GPU_PRESETS), help="GPU preset of every server")
    common.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    common.add_argument("--balancer", help="solution, exercises or package.module:Class (default: LB_IMPL or solution)")
    common.add_argument("--warmup", type=float, default=0.0, help="ignore requests arriving before this time (s)")
    common.add_argument("--queue", choices=[o.value for o in Ordering], help="queue requests at the gateway in this order (stage 2)")
    common.add_argument("--max-depth", type=int, help="with --queue: the most requests waiting; more are rejected (503)")
    common.add_argument("--max-wait", type=float, help="with --queue: seconds a request may wait before it times out")
    common.add_argument("--queue-impl", help="with --queue: solution or exercises (default: LB_IMPL or solution)")
    bar = common.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show a progress bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")
    run = sub.add_parser("run", parents=[common], help="run a named scenario")
    run.add_argument("scenario", choices=sorted(SCENARIOS))
    run.add_argument("--load", type=float, help="offered load per server (1.0 saturates a full batch)")
    run.add_argument("--requests", type=int, help="number of requests")
    run.add_argument("--detection", type=float, help="crash scenario: seconds until a crash is noticed")
    run.add_argument("--health", choices=["none", "active", "passive", "both"],
                     help="stage 4: run through the request path with these health checks (a Router balancer; "
                          "default least-connections); 'none' keeps the path and re-route without a checker")  # fmt: skip
    run.add_argument("--no-slow-start", action="store_true", help="with --health: no slow start")
    replay = sub.add_parser("trace", parents=[common], help="replay an Azure LLM inference 2023 CSV trace")
    replay.add_argument("path")
    replay.add_argument("--time-scale", type=float, default=1.0, help="multiply every time by this (0.5: twice as fast)")
    replay.add_argument("--limit", type=int, help="replay only the first rows")
    race = sub.add_parser("health-race", help="stage 4: race health-checking set-ups on fault scenarios (common random numbers)")
    race.add_argument("--faults", default="crash,hang,throttled,failing", help="comma-separated: crash, hang, throttled, failing, gray")
    race.add_argument("--setups", default="none,active,passive,both,both+slow start", help="comma-separated set-ups")
    race.add_argument("--seeds", type=int, default=6, help="number of seeds (default 6)")
    race.add_argument("--requests", type=int, default=3000, help="requests per run (default 3000)")
    race.add_argument("--servers", type=int, default=4)
    race.add_argument("--workers", type=int, help="processes (default: every core)")
    checks = sub.add_parser("health-checks", help="stage 4: detection time and false ejections against theory")
    checks.add_argument("--seeds", type=int, default=200, help="seeds per point (default 200)")
    affinity = sub.add_parser("affinity-race", help="stage 5: session affinity and KV-cache-aware routing (common random numbers)")
    affinity.add_argument("--workload", default="mooncake", help="mooncake, mooncake-synthetic, synthetic, pileup or crash")
    affinity.add_argument("--seeds", type=int, help="number of seeds (default: 1 for a trace, 4 otherwise)")
    affinity.add_argument("--servers", type=int, help="servers (default: 8 for a trace, 4 otherwise)")
    affinity.add_argument("--load", type=float, help="offered load per server, cache hits not counted (default 0.7)")
    affinity.add_argument("--requests", type=int, help="requests (a trace: its first rows)")
    affinity.add_argument("--cache-blocks", type=int, help="KV cache blocks (512 tokens) per server (default: the KV room)")
    affinity.add_argument("--workers", type=int, help="processes (default: every core)")
    kv = sub.add_parser("kv-checks", help="stage 5: the LRU prefix cache against Che's approximation; KV migration break-even")
    kv.add_argument("--seeds", type=int, default=10, help="seeds per point (default 10)")
    tiers = sub.add_parser("tiers-race", help="stage 6: FIFO, class priority, + reservation, + rate limits, + pools, "
                           "+ preemption under overload (common random numbers)")  # fmt: skip
    tiers.add_argument("--workload", default="overload", help="overload (synthetic, 1.3x capacity) or azure (the trace)")
    tiers.add_argument("--seeds", type=int, default=4, help="number of seeds (default 4)")
    tiers.add_argument("--servers", type=int, help="servers (default 8)")
    tiers.add_argument("--load", type=float, help="offered load over the cluster's capacity (default 1.3)")
    tiers.add_argument("--requests", type=int, help="requests (the trace: its first rows; default 4000)")
    tiers.add_argument("--workers", type=int, help="processes (default: every core)")
    tier_checks = sub.add_parser("tier-checks", help="stage 6: strict priority against Cobham's formula and preemptive-resume theory")
    tier_checks.add_argument("--seeds", type=int, default=6, help="seeds per point (default 6)")
    tier_checks.add_argument("--requests", type=int, default=20_000, help="requests per run (default 20000)")
    tier_checks.add_argument("--workers", type=int, help="processes (default: every core)")
    deploy = sub.add_parser("deploy-race", help="stage 7: rollout scenarios (duration, capacity, lost, errors, p99, detection, "
                            "blast radius), blast radius vs canary share, false rollbacks on identical versions")  # fmt: skip
    deploy.add_argument("--seeds", type=int, default=3, help="seeds per scenario (default 3)")
    deploy.add_argument("--canaries", type=int, default=400, help="canaries on identical versions for the false-rollback rate (default 400)")
    deploy.add_argument("--sim-canaries", type=int, default=20,
                        help="whole simulated canaries of an identical version for the in-simulator false-rollback rate (default 20; 0: skip)")
    deploy.add_argument("--scenarios", help="comma-separated scenario names (default: all)")
    deploy.add_argument("--workers", type=int, help="processes (default: every core)")
    storm = sub.add_parser("storm", help="stage 8: attempts and success vs the failing fraction (no retries, retries, "
                           "retries + budget); a lost server and a metastable retry storm")  # fmt: skip
    storm.add_argument("--seeds", type=int, default=5, help="seeds per point (default 5)")
    storm.add_argument("--fractions", default="0,0.25,0.5,0.75,1", help="failing fractions of the curve (default 0,0.25,0.5,0.75,1)")
    storm.add_argument("--errors-at-once", action="store_true", help="the curve's failing tries answer 500 at once (cost no work)")
    storm.add_argument("--load", type=float, default=0.7, help="the overload scenario's load (default 0.7)")
    storm.add_argument("--duration", type=float, default=600.0, help="the overload scenario's seconds (a multiple of 20; default 600)")
    storm.add_argument("--timeout", type=float, default=10.0, help="the overload scenario's per-try timeout in seconds (default 10)")
    storm.add_argument("--cancel", action="store_true", help="the overload scenario's timed-out tries leave their servers at once")
    storm.add_argument("--no-overload", action="store_true", help="print the curve only")
    return parser


def _storm_command(args: argparse.Namespace) -> int:
    """``storm``: the storm curve, then the overload scenario with and without the lost server."""
    from solution.sim import retrystorm

    started = time.perf_counter()
    try:
        fractions = [float(f) for f in args.fractions.split(",")]
        fleet = retrystorm.StormFleet(errors_cost_work=not args.errors_at_once)
        points = retrystorm.storm_curve(fractions, seeds=range(args.seeds), fleet=fleet)
        scenario = retrystorm.OverloadScenario(load=args.load, duration=args.duration, per_try_timeout=args.timeout,
                                               cancel_abandoned=args.cancel)  # fmt: skip
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(retrystorm.curve_table(points, fleet))
    print(f"({time.perf_counter() - started:.1f} s)")
    if not args.no_overload:
        for sc in (scenario, retrystorm.OverloadScenario(**{**scenario.__dict__, "lose_server": False})):
            started = time.perf_counter()
            print()
            print(retrystorm.overload_table(retrystorm.overload_runs(scenario=sc, seeds=range(args.seeds))))
            print(f"({time.perf_counter() - started:.1f} s)")
    return 0


def _stage7_command(args: argparse.Namespace) -> int:
    """``deploy-race``: the scenario table, blast radius against canary share, the canary's false-rollback rate."""
    from solution.sim.deployrace import SCENARIOS, blast_vs_share, deploy_race, false_rollbacks

    started = time.perf_counter()
    names = tuple(SCENARIOS if args.scenarios is None else (n.strip() for n in args.scenarios.split(",") if n.strip()))
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or args.seeds < 1 or args.canaries < 1 or args.sim_canaries < 0:
        print(f"error: unknown scenario {unknown} (pick from {', '.join(SCENARIOS)})" if unknown
              else "error: --seeds and --canaries must be >= 1", file=sys.stderr)  # fmt: skip
        return 2
    seeds = range(args.seeds)
    print(deploy_race(names, seeds=seeds, workers=args.workers).table())
    print("\nA version failing 2% of its requests: canary first step vs detection (s from its first request) and blast radius:")
    for label, row in blast_vs_share(seeds=seeds, workers=args.workers).items():
        d, b, e = row["detect"], row["blast"], row["errors"]
        detect = "no rollback" if d[0] != d[0] else f"detect {d[0]:.0f} s [{d[1]:.0f}, {d[2]:.0f}]"
        print(f"  first step {label:>5}: rolled back in {row['rolled_back'][0]:.0%} of runs, {detect}, "
              f"blast radius {b[0]:.0f} [{b[1]:.0f}, {b[2]:.0f}] requests, errors {e[0]:.0f} [{e[1]:.0f}, {e[2]:.0f}]")  # fmt: skip
    print("\nThe canary test on two identical versions (false rollbacks, 95% Wilson intervals):")
    print(false_rollbacks(seeds=args.canaries).report())
    if args.sim_canaries > 0:
        from solution.sim.deployrace import false_rollbacks_sim

        sim = false_rollbacks_sim(seeds=range(args.sim_canaries), workers=args.workers)
        p, lo, hi = sim["rate"]
        print(f"in the simulator (B identical to A, steps 5/25/100%, {sim['runs']} rollouts): {p:.3f} [{lo:.3f}, {hi:.3f}] "
              f"rolled back (nominal at most {sim['nominal']:.4f})")  # fmt: skip
        for why in sim["reasons"]:
            print(f"  rolled back: {why[:150]}")
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0


def _stage6_command(args: argparse.Namespace) -> int:
    """``tiers-race`` and ``tier-checks``."""
    started = time.perf_counter()
    if args.command == "tiers-race":
        from solution.sim.tiersrace import EXTRA_RUNGS, LADDER, tiers_race
        from solution.sim.trace import AZURE_CREDIT

        try:
            out = tiers_race(args.workload, seeds=range(args.seeds), servers=args.servers, load=args.load,
                             requests=args.requests, workers=args.workers, rungs=LADDER + EXTRA_RUNGS)  # fmt: skip
        except (ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(out.table())
        if args.workload == "azure":
            print(f"Trace: {AZURE_CREDIT}.")
    else:
        from solution.sim.tiersrace import TIER_CHECK_POINTS, priority_points

        for preemptive in (False, True):
            what = "mean time in system, preemptive-resume" if preemptive else "mean wait, non-preemptive (Cobham)"
            print(f"Strict priority, classic mode (mu = 1), {what}: 99% intervals over {args.seeds} seeds, "
                  f"{args.requests:,} requests each (first 10% dropped):")  # fmt: skip
            for p in priority_points(TIER_CHECK_POINTS, preemptive=preemptive, seeds=range(args.seeds), requests=args.requests,
                                     workers=args.workers):  # fmt: skip
                print(f"  c={p.servers} loads={p.loads} class {p.cls}: simulated {p.mean:.3f} [{p.low:.3f}, {p.high:.3f}], "
                      f"theory {p.theory:.3f}: {'inside' if p.covered else 'OUTSIDE'}")  # fmt: skip
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0


def _stage5_command(args: argparse.Namespace) -> int:
    """``affinity-race`` and ``kv-checks``."""
    started = time.perf_counter()
    if args.command == "affinity-race":
        from solution.sim.affinityrace import affinity_race
        from solution.sim.mooncake import MOONCAKE_CREDIT

        try:
            out = affinity_race(args.workload, seeds=None if args.seeds is None else range(args.seeds), servers=args.servers,
                                load=args.load, requests=args.requests, cache_blocks=args.cache_blocks, workers=args.workers)  # fmt: skip
        except (ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(out.table())
        if args.workload.startswith("mooncake"):
            print(f"Trace: {MOONCAKE_CREDIT}.")
    else:
        from solution.sim.gpus import GPU_PRESETS, MODEL_PRESETS
        from solution.sim.kvcache import CHE_TOLERANCE, break_even_gb_s, che_points, migration_table

        print(f"LRU prefix cache under independent Zipf requests vs Che's approximation (99% intervals over {args.seeds} seeds, "
              f"tolerance {CHE_TOLERANCE}):")  # fmt: skip
        for point in che_points(seeds=range(args.seeds)):
            print(f"  {point.line()}: {'agrees' if point.agrees() else 'DISAGREES'}")
        print("KV migration against recomputing the prefill (8,192 tokens), break-even bandwidth per GPU:")
        for model in MODEL_PRESETS.values():
            for gpu in ("A100-80GB", "H100-80GB"):
                rows = migration_table(8192, model, GPU_PRESETS[gpu])
                wins = ", ".join(f"{r.link} {r.move_s * 1e3:.0f} ms" for r in rows if r.move_wins) or "none"
                loses = ", ".join(f"{r.link} {r.move_s * 1e3:.0f} ms" for r in rows if not r.move_wins) or "none"
                print(f"  {model.name} on {gpu}: break-even {break_even_gb_s(model, GPU_PRESETS[gpu]):.2f} GB/s; recompute "
                      f"{rows[0].recompute_s * 1e3:.0f} ms; moving wins over {wins}; loses over {loses}")  # fmt: skip
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0


def _health_command(args: argparse.Namespace) -> int:
    """``health-race`` and ``health-checks``."""
    started = time.perf_counter()
    if args.command == "health-race":
        from solution.sim.race import health_race

        try:
            out = health_race(tuple(f.strip() for f in args.faults.split(",")), tuple(s.strip() for s in args.setups.split(",")),
                              servers=args.servers, requests=args.requests, seeds=range(args.seeds), workers=args.workers)  # fmt: skip
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(out.table())
    else:
        from solution.sim.probecheck import detection_check, false_ejection_check

        seeds = range(args.seeds)
        print("Detection time of a crash under active checks (crash uniform in the probe cycle; seeds 0..%d):" % (args.seeds - 1))
        for n, jitter in ((3, 0.0), (3, 0.2), (1, 0.1)):
            print("  " + detection_check(5.0, 1.0, n, jitter, seeds).line())
        print("False ejection of a healthy server whose probes are lost with probability p:")
        for p, n in ((0.5, 3), (0.3, 2), (0.5, 2)):
            print("  " + false_ejection_check(p, n, 5.0, 1.0, seeds).line())
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 the balancer failed, 2 bad arguments)."""
    args = _parser().parse_args(argv)
    if args.command in ("health-race", "health-checks"):
        return _health_command(args)
    if args.command in ("affinity-race", "kv-checks"):
        return _stage5_command(args)
    if args.command in ("tiers-race", "tier-checks"):
        return _stage6_command(args)
    if args.command == "deploy-race":
        return _stage7_command(args)
    if args.command == "storm":
        return _storm_command(args)
    if args.command == "list":
        for name, builder in SCENARIOS.items():
            print(f"{name:12s} {(builder.__doc__ or '').strip().splitlines()[0]}")
        print("\nGPU presets: " + ", ".join(GPU_PRESETS))
        return 0
    options = {k: v for k, v in vars(args).items() if v is not None and k in ("servers", "gpu", "load", "requests", "detection")}
    try:
        health = getattr(args, "health", None)
        if health is not None and args.balancer is None:
            from solution.sim.race import routed_least_connections

            balancer = routed_least_connections()
        else:
            balancer = resolve_balancer(args.balancer)
        if args.command == "run":
            scenario = build(args.scenario, **options)
            if health is not None:
                scenario = scenario.with_health(active=health in ("active", "both"), passive=health in ("passive", "both"),
                                                slow_start=not args.no_slow_start)  # fmt: skip
            elif args.no_slow_start:
                raise ValueError("--no-slow-start needs --health")
        else:
            scenario = trace(args.path, time_scale=args.time_scale, limit=args.limit, **options)
        queue = None
        if args.queue is not None:
            policy = QueuePolicy(ordering=args.queue, max_depth=args.max_depth, max_wait=args.max_wait)
            scenario = scenario.with_queue(QueueConfig(policy))
            queue = load_impl(args.queue_impl or impl_name(default="solution")).RequestQueue
        elif (args.max_depth, args.max_wait, args.queue_impl) != (None, None, None):
            raise ValueError("--max-depth, --max-wait and --queue-impl need --queue fifo|priority|sjf")
    except (ValueError, TypeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    requests = getattr(scenario.workload, "requests", 0)  # a trace replay is short: no bar by default
    progress = args.progress if args.progress is not None else sys.stderr.isatty() and requests >= LONG_RUN
    started = time.perf_counter()
    try:
        results = simulate(scenario, balancer, queue=queue, seed=args.seed, progress=progress)
    except TypeError as exc:  # e.g. --health with a balancer that is not a Router
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (NotImplementedError, BalancerContractError) as exc:  # the balancer or queue under test, not the simulator
        print(f"the {'balancer or queue' if queue else 'balancer'} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    name = f"{balancer.__module__}.{balancer.__qualname__}" if hasattr(balancer, "__qualname__") else repr(balancer)
    if queue is not None:
        name += f", queue {queue.__module__}.{queue.__qualname__} ({args.queue})"
    print(f"{scenario.name}: {len(results):,} requests on {len(results.server_ids)} servers, balancer {name}, "
          f"seed {args.seed}; simulated in {elapsed:.2f} s ({len(results) / elapsed:,.0f} requests/s)\n")  # fmt: skip
    print(results.summary(args.warmup).table())
    if results.health is not None:
        log = results.health
        resent = int((results.tries > 1).sum())  # type: ignore[operator]
        print(f"\nhealth: {len(log.transitions)} transitions, {len(log.probe_sent):,} probes "  # type: ignore[attr-defined]
              f"({sum(not ok for ok in log.probe_ok):,} failed), {resent:,} requests re-sent, "  # type: ignore[attr-defined]
              f"{log.discarded:,} late answers discarded, {results.client_errors():,} client errors, "  # type: ignore[attr-defined]
              f"{results.wasted_gpu_seconds():,.1f} wasted GPU slot-seconds")  # fmt: skip
        for tr in log.transitions:  # type: ignore[attr-defined]
            if tr.old is not None:
                print(f"  {tr.at:9.2f} s  {tr.server_id}: {tr.old} -> {tr.new} ({tr.reason})")
    return 0
