"""Stage 5's race: session affinity and KV-cache-aware routing against plain routing, on the same traffic.

Every run goes through the stage-4 request path with health checking on
(a sticky server that goes down is left, and its sessions move), with a KV
prefix cache on every server (:mod:`solution.sim.kvcache`): a request whose
prompt starts with blocks its server holds skips their prefill.  The
policies (:class:`Policy`, :data:`DEFAULT_POLICIES`):

* ``none``: no affinity, the stage-3 winner alone (``Predictive``: join the
  shortest expected delay, in seconds, from each GPU's latency model; see
  notebook 03's race);
* ``hard`` / ``soft``: :class:`solution.affinity.SessionAffinity` around it
  (soft with a load-ratio ``slack``);
* ``bounded``: :class:`solution.affinity.BoundedLoadHash`, consistent hashing
  with bounded loads (``epsilon``), no table;
* ``prefix``: :class:`solution.affinity.PrefixAware` around it: the server
  with the longest cached prefix unless its load ratio exceeds the inner
  pick's by more than ``slack``.

The implementation is the reference's ``solution.affinity`` (the
candidate's ``exercises`` in the candidate's bundle): see
:func:`solution.core.impl.demo_impl`; ``impl="exercises"`` runs the
candidate's anywhere.

Workloads (:func:`scenario_for`): ``"mooncake"`` (the Mooncake FAST'25
conversation trace, time-scaled to the cluster: :mod:`solution.sim.mooncake`),
``"mooncake-synthetic"`` (its synthetic trace), ``"synthetic"``
(:func:`synthetic_sessions`, for a learner without the trace), ``"pileup"``
(:func:`pileup_scenario`: a hot session key carried by many conversations
at once) and ``"crash"`` (:func:`sticky_crash_scenario`: a server crashes
and restarts with an empty cache).  A trace replay is the same on every
seed (only probe jitter differs), so it runs one seed; random workloads run
several, the same seeds for every policy (common random numbers), and each
metric gets a t interval over seeds.

Metrics (:data:`AFFINITY_METRICS`), per run:

* ``hit_rate``: prefix blocks found in the server's cache over all blocks
  of all requests (a request never served found none);
* ``ceiling_ratio``: ``hit_rate`` over the workload's unbounded-cache hit
  share (``Requests.ceiling``: one cache that never evicts, the most any
  routing can reach; about 0.37 on the conversation trace, 0.64 on the
  synthetic one);
* ``prefill_saved``: prompt tokens whose prefill was skipped, over all prompt tokens;
* ``ttft_p50`` / ``ttft_p99`` / ``e2e_p99``: seconds, over completed requests;
* ``imbalance``: the time average of the busiest server's requests in
  flight over the time average of the mean server's (1 = perfectly even);
* ``moved``: follow-up requests of a session routed to another server than
  the session's previous request (the cache left behind), as a share;
* ``remaps``: the strategy's own re-map count where it keeps one (session
  affinity), NaN otherwise;
* ``errors``: requests whose client got an error (rejected, failed, lost), as a share.

:func:`affinity_run` is one small, fast run for a widget (a few hundred
requests: under 200 ms), with per-server load and cache occupancy over time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from solution.sim.parallel import map_jobs
from solution.sim.cluster import Cluster, LlmMode, service_rate
from solution.sim.faults import Crash, Recover
from solution.sim.gpus import MODEL_PRESETS, gpu_preset
from solution.sim.kvcache import KvCacheConfig
from solution.sim.results import Outcome, Results
from solution.sim.runner import SimClock, prepare, simulate
from solution.sim.scenario import Scenario
from solution.sim.theory import mean_confidence_interval
from solution.sim.validate import require_number
from solution.sim.workload import LogNormal, Requests, Sessions, Tier, Workload

__all__ = [
    "Policy", "DEFAULT_POLICIES", "AFFINITY_METRICS", "POLICY_KINDS", "WORKLOADS", "synthetic_sessions", "mooncake_scenario",
    "pileup_scenario", "sticky_crash_scenario", "scenario_for", "build_router", "run_metrics", "imbalance", "moved_share",
    "AffinityRaceResult", "affinity_race", "AffinityRun", "affinity_run", "MODEL", "GPU",
]  # fmt: skip

#: The model every stage-5 scenario serves (grouped-query attention: 128 KiB of KV per token).
MODEL = MODEL_PRESETS["Llama-3.1-8B"]
#: The GPU of every stage-5 scenario.
GPU = "A100-80GB"

#: The kinds of policy a race runs.
POLICY_KINDS = ("none", "hard", "soft", "bounded", "prefix")

#: The metrics of a run, in table order.
AFFINITY_METRICS = ("hit_rate", "ceiling_ratio", "prefill_saved", "ttft_p50", "ttft_p99", "e2e_p99", "imbalance", "moved",
                    "remaps", "errors")  # fmt: skip

#: The workloads :func:`scenario_for` builds.
WORKLOADS = ("mooncake", "mooncake-synthetic", "synthetic", "pileup", "crash")


@dataclass(frozen=True)
class Policy:
    """One routing policy of the race.

    Args:
        kind: one of :data:`POLICY_KINDS`.
        slack: soft affinity's and prefix-aware's load-ratio slack (>= 0; ``math.inf`` allowed for soft).
        epsilon: bounded-load hashing's epsilon (> 0).
        ttl: the session table's idle TTL in seconds (hard / soft).
        label: the name in tables (default from the kind and its parameter).

    Raises:
        ValueError / TypeError: an unknown kind or a parameter out of range.
    """

    kind: str
    slack: float = 0.25
    epsilon: float = 0.25
    ttl: float = 600.0
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"kind must be one of {', '.join(POLICY_KINDS)}, got {self.kind!r}")
        if isinstance(self.slack, bool) or not isinstance(self.slack, (int, float)):
            raise TypeError(f"slack must be a number >= 0 (math.inf allowed), got {type(self.slack).__name__} {self.slack!r}")
        if math.isnan(self.slack) or self.slack < 0:
            raise ValueError(f"slack must be a number >= 0 (math.inf allowed), got {self.slack!r}")
        require_number(self.epsilon, "epsilon")
        require_number(self.ttl, "ttl")
        if not self.label:
            name = {"none": "no affinity", "hard": "hard", "prefix": f"prefix-aware slack {self.slack:g}",
                    "soft": f"soft slack {self.slack:g}", "bounded": f"bounded hash eps {self.epsilon:g}"}[self.kind]  # fmt: skip
            object.__setattr__(self, "label", name)


#: The race's policies: the stage-3 winner alone, hard, soft at three slacks, bounded-load hashing at three epsilons,
#: prefix-aware.  (On the conversation trace a slack of 0.25 already behaves like hard affinity, and prefix-aware
#: with an infinite slack piles requests onto the holders of their longest match whatever their load: TTFT p99 32 s.)
DEFAULT_POLICIES: tuple[Policy, ...] = (
    Policy("none"), Policy("hard"), Policy("soft", slack=0.05), Policy("soft", slack=0.1), Policy("soft", slack=0.25),
    Policy("bounded", epsilon=0.1), Policy("bounded", epsilon=0.25), Policy("bounded", epsilon=1.0),
    Policy("prefix", slack=0.25),
)


# -- scenarios -----------------------------------------------------------------------------------------------


def _cluster(servers: int) -> Cluster:
    return Cluster.uniform(servers, GPU)


def _finish(scenario: Scenario, cache_blocks: int | None) -> Scenario:
    """Health checking on (stage 4: a down sticky server is left) and a KV prefix cache on every server."""
    return replace(scenario, kv_cache=KvCacheConfig(cache_blocks)).with_health()


def synthetic_sessions(servers: int = 4, load: float = 0.7, requests: int = 3_000, *, cache_blocks: int | None = None,
                       hot_share: float = 0.0, mean_turns: float = 6.0, mean_think: float = 15.0,
                       system_tokens: int = 1024, user_tokens: float = 600.0, output_tokens: float = 250.0) -> Scenario:  # fmt: skip
    """Multi-turn chat without the trace: :class:`~solution.sim.workload.Sessions` with prefix blocks.

    Each session shares a 1,024-token system prompt (2 blocks), then grows
    turn by turn (user messages of about ``user_tokens`` = 600 tokens,
    answers of about ``output_tokens`` = 250: log-normal medians); 6 turns
    on average, 15 s of thinking between them.  These light conversations
    fit the default cache: every policy's hit rate is set by routing alone
    (hard affinity reaches the ceiling).  Longer messages and thinking
    (``user_tokens=3000, mean_think=60``) make the cache's size matter, as
    on the Mooncake trace (there hard affinity reached 0.92 of the ceiling
    and no affinity 0.35, seeds 0-1).  Llama-3.1-8B on
    ``servers`` A100-80GBs at offered load ``load`` (counted without cache
    hits), a KV prefix cache per server (``cache_blocks``; ``None``: the
    KV room after the weights, 912 blocks), health checking on.
    """
    chat = Tier("chat", 1.0, LogNormal(user_tokens, 0.8, high=max(4096, int(6 * user_tokens))),
                LogNormal(output_tokens, 0.7, high=max(2048, int(6 * output_tokens))))  # fmt: skip
    spec = Sessions(mean_turns=mean_turns, mean_think=mean_think, max_context=32768, system_tokens=system_tokens,
                    hot_share=hot_share)  # fmt: skip
    base = Scenario(_cluster(servers), Workload(requests, tiers=(chat,), sessions=spec), LlmMode(model=MODEL), load=load,
                    name="synthetic sessions" if not hot_share else "hot session")  # fmt: skip
    return _finish(base, cache_blocks)


def pileup_scenario(servers: int = 4, load: float = 0.7, requests: int = 3_000, *, hot_share: float = 0.5,
                    cache_blocks: int | None = None) -> Scenario:  # fmt: skip
    """A hot session key: ``hot_share`` of the conversations carry one session key (a heavy tenant's API key used as the key).

    Hard affinity sends all of them to one server, which fills up (its
    requests are rejected when it is full: health runs have no queue) while
    the others idle; soft affinity spreads the overflow.  Compare the
    per-server load over time (:func:`affinity_run` with ``hot_share``).
    """
    return synthetic_sessions(servers, load, requests, cache_blocks=cache_blocks, hot_share=hot_share)


def sticky_crash_scenario(servers: int = 4, load: float = 0.6, requests: int = 3_000, *, server: str = "gpu-0",
                          cache_blocks: int | None = None) -> Scenario:  # fmt: skip
    """Synthetic sessions; ``server`` crashes at a third of the run and restarts (cold, empty cache) at two thirds.

    Health checking marks it down: its sessions re-map (``remaps["down"]``)
    and re-prefill on their new servers; when it returns its cache is empty.
    """
    base = synthetic_sessions(servers, load, requests, cache_blocks=cache_blocks)
    end = base.expected_duration()
    return replace(base, timetable=(Crash(end / 3, server), Recover(2 * end / 3, server)), name="sticky server crash")


def mooncake_scenario(which: str = "conversation", servers: int = 8, load: float = 0.7, *, path: str | None = None,
                      limit: int | None = None, start: int = 0, cache_blocks: int | None = None) -> Scenario:  # fmt: skip
    """A Mooncake trace replay on ``servers`` A100-80GBs (Llama-3.1-8B), time-scaled to offered load ``load``.

    The time scale makes the mean arrival rate ``load * servers * mu``, with
    ``mu`` a server's full-batch service rate for the trace's mean prompt
    and output (no cache hits counted): :func:`solution.sim.mooncake.time_scale_for`.

    Raises:
        FileNotFoundError: the trace is not there (see :func:`solution.sim.mooncake.mooncake_path`).
    """
    from solution.sim.mooncake import MooncakeWorkload, load_mooncake_trace, mooncake_path, time_scale_for

    file = path if path is not None and os.path.isfile(path) else str(mooncake_path(which, path))
    trace = load_mooncake_trace(file, limit=limit, start=start)
    mode = LlmMode(model=MODEL)
    gpu = gpu_preset(GPU)
    mu = service_rate(mode.server_model(gpu), MODEL.default_capacity(gpu), float(trace.prompt_tokens.mean()),
                      float(np.maximum(trace.output_tokens - 1, 0).mean()))  # fmt: skip
    scale = time_scale_for(trace, load * servers * mu)
    workload = MooncakeWorkload(file, time_scale=scale, limit=limit, start=start)
    base = Scenario(_cluster(servers), workload, mode, name=f"mooncake {which} x{scale:.2f} time")
    return _finish(base, cache_blocks)


def scenario_for(workload: str, *, servers: int | None = None, load: float | None = None, requests: int | None = None,
                 cache_blocks: int | None = None) -> Scenario:  # fmt: skip
    """The scenario of one of :data:`WORKLOADS` (``None`` arguments: each builder's defaults; ``requests`` limits a trace)."""
    options: dict[str, Any] = {"cache_blocks": cache_blocks}
    if servers is not None:
        options["servers"] = servers
    if load is not None:
        options["load"] = load
    if workload in ("mooncake", "mooncake-synthetic"):
        which = "conversation" if workload == "mooncake" else "synthetic"
        return mooncake_scenario(which, limit=requests, **options)
    if requests is not None:
        options["requests"] = requests
    if workload == "synthetic":
        return synthetic_sessions(**options)
    if workload == "pileup":
        return pileup_scenario(**options)
    if workload == "crash":
        return sticky_crash_scenario(**options)
    raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, got {workload!r}")


# -- routers ------------------------------------------------------------------------------------------------


def _impl(impl: str | None) -> Any:
    from solution.core.impl import demo_impl, load_impl

    return demo_impl() if impl is None else load_impl(impl)


def build_router(policy: Policy, scenario: Scenario, clock: SimClock, *, impl: str | None = None) -> Any:
    """A fresh stage-3 ``Router`` running ``policy`` (inner strategy: ``Predictive`` with each GPU's latency model).

    ``impl`` picks stage 5's classes (``SessionAffinity``,
    ``BoundedLoadHash``, ``PrefixAware``): ``None`` for
    :func:`~solution.core.impl.demo_impl` (the reference; the candidate's
    in their bundle), or ``"solution"`` / ``"exercises"``.  The inner
    ``Predictive`` and the health checker are always ``demo_impl``'s.
    Prefix-aware's index holds as many blocks per server as the scenario's
    cache does.
    """
    from solution.core.affinity_types import AffinityPolicy
    from solution.core.routing import Router
    from solution.sim.race import latency_hints

    lib = _impl(impl)
    models = latency_hints(scenario)
    inner = _impl(None).Predictive()  # stage 3's winner: the reference's (the candidate's in their bundle)
    if policy.kind == "none":
        strategy: Any = inner
    elif policy.kind in ("hard", "soft"):
        strategy = lib.SessionAffinity(inner, AffinityPolicy(policy.kind, slack=policy.slack, ttl=policy.ttl), clock=clock)
    elif policy.kind == "bounded":
        strategy = lib.BoundedLoadHash(epsilon=policy.epsilon)
    else:
        config = scenario.kv_cache or KvCacheConfig()
        blocks = config.capacity_for(MODEL if not isinstance(scenario.mode, LlmMode) else scenario.mode.model,
                                     scenario.cluster.servers[0].gpu_spec)  # fmt: skip
        strategy = lib.PrefixAware(inner, max_blocks_per_server=blocks, slack=policy.slack)
    return Router(strategy, models=models)


# -- metrics ------------------------------------------------------------------------------------------------


def _grid(res: Results, points: int = 2000) -> np.ndarray:
    start = float(np.nanmin(res.arrival))
    end = float(np.nanmax(res.finish))
    step = (end - start) / points if end > start else 1.0
    return start + step * (np.arange(points) + 0.5)


def _load(res: Results, times: np.ndarray) -> np.ndarray:
    """Requests in flight per server at each instant (every try: the health log's; else per request)."""
    log = res.health
    if log is not None and hasattr(log, "load_over_time"):
        return log.load_over_time(times, len(res.server_ids))  # type: ignore[no-any-return]
    return res.load_over_time(times)  # type: ignore[attr-defined,no-any-return]


def imbalance(load: np.ndarray) -> float:
    """Time-weighted max/mean: the mean over instants of the busiest server's load over the mean over instants of the mean load.

    ``load`` is ``(instants, servers)`` on an even time grid; 1 means every
    server always carried the same; NaN when nothing ran.  O(T S).
    """
    mean = float(load.mean())
    return float(load.max(axis=1).mean()) / mean if mean > 0 else math.nan


def moved_share(keys: np.ndarray, server: np.ndarray, start: np.ndarray) -> float:
    """Follow-up requests of a session (same key, later start) on another server than the session's previous one, as a share.

    Requests never started are left out.  O(n log n).
    """
    ok = (keys >= 0) & (server >= 0) & ~np.isnan(start)
    k, s, t = keys[ok], server[ok], start[ok]
    order = np.lexsort((t, k))
    k, s = k[order], s[order]
    follow = k[1:] == k[:-1]
    return float(np.mean(s[1:][follow] != s[:-1][follow])) if follow.any() else math.nan


def run_metrics(res: Results, requests: Requests, strategy_stats: Mapping[str, Any] | None = None) -> dict[str, float]:
    """The :data:`AFFINITY_METRICS` of one run (``requests``: its workload, for the ceiling and the session keys)."""
    cache = res.cache
    hit = cache.hit_rate() if cache is not None else math.nan  # type: ignore[attr-defined]
    ceiling = requests.ceiling()
    done = res.outcome == Outcome.COMPLETED
    ttft = res.ttft[done]
    e2e = res.e2e[done]
    pct = lambda a, q: float(np.percentile(a, q)) if len(a) else math.nan  # noqa: E731
    remaps = math.nan
    if strategy_stats and "remapped" in strategy_stats:
        remaps = float(strategy_stats["remapped"])
    return {
        "hit_rate": hit,
        "ceiling_ratio": hit / ceiling if ceiling > 0 else math.nan,
        "prefill_saved": cache.saved_share() if cache is not None else math.nan,  # type: ignore[attr-defined]
        "ttft_p50": pct(ttft, 50),
        "ttft_p99": pct(ttft, 99),
        "e2e_p99": pct(e2e, 99),
        "imbalance": imbalance(_load(res, _grid(res))),
        "moved": moved_share(requests.keys(), res.server, res.start),
        "remaps": remaps,
        "errors": res.client_errors() / len(res) if len(res) else math.nan,
    }


# -- one run, the race --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    scenario: Scenario
    policy: Policy
    seed: int
    impl: str | None


def _run(job: _Job) -> dict[str, float]:
    return _simulate(job.scenario, job.policy, job.seed, job.impl)[0]


def _simulate(scenario: Scenario, policy: Policy, seed: int, impl: str | None) -> tuple[dict[str, float], Results, Requests, Any]:
    clock = SimClock()
    router = build_router(policy, scenario, clock, impl=impl)
    res = simulate(scenario, lambda: router, seed=seed, clock=clock)
    requests = prepare(scenario, seed).requests
    stats = router.strategy.stats() if hasattr(router.strategy, "stats") else None
    return run_metrics(res, requests, stats), res, requests, router


@dataclass(frozen=True)
class AffinityRaceResult:
    """Per policy and metric: one value per seed (the same seeds for every policy: paired)."""

    workload: str  # what ran: the scenario's name
    policies: tuple[str, ...]
    seeds: tuple[int, ...]
    values: Mapping[str, Mapping[str, tuple[float, ...]]]  # policy label -> metric -> per seed
    ceiling: float  # the workload's unbounded-cache hit share (seed 0)
    level: float = 0.95
    metrics: tuple[str, ...] = AFFINITY_METRICS

    def interval(self, policy: str, metric: str) -> tuple[float, float, float]:
        """``(mean, low, high)`` over seeds (a t interval at ``level``; one seed: the value three times)."""
        vals = self.values[policy][metric]
        if len(vals) == 1:
            return vals[0], vals[0], vals[0]
        return mean_confidence_interval(vals, self.level)

    def difference(self, a: str, b: str, metric: str) -> tuple[float, float, float]:
        """``(mean, low, high)`` of ``a - b`` paired by seed (one seed: the difference three times)."""
        pairs = [x - y for x, y in zip(self.values[a][metric], self.values[b][metric])]
        if len(pairs) == 1:
            return pairs[0], pairs[0], pairs[0]
        return mean_confidence_interval(pairs, self.level)

    def table(self, metrics: Sequence[str] | None = None) -> str:
        """One row per policy: each metric's mean (with its interval over seeds when there are several)."""
        metrics = tuple(metrics or self.metrics)
        width = max(len(p) for p in self.policies)
        many = len(self.seeds) > 1
        cell = 22 if many else 10
        lines = [f"{self.workload}: unbounded-cache hit share (ceiling) {self.ceiling:.3f}",
                 f"{'policy':<{width}}  " + "  ".join(f"{m:>{cell}}" for m in metrics)]  # fmt: skip
        for p in self.policies:
            cells = []
            for m in metrics:
                mean, lo, hi = self.interval(p, m)
                cells.append((f"{mean:.3f} [{lo:.3f}, {hi:.3f}]" if many else f"{mean:.3f}").rjust(cell))
            lines.append(f"{p:<{width}}  " + "  ".join(cells))
        seeds = (f"{len(self.seeds)} seeds (the same traffic for every policy), {self.level:.0%} t intervals" if many
                 else "one replay (a trace is the same on every seed)")  # fmt: skip
        lines.append(f"{seeds}; hit_rate in blocks; ceiling_ratio = hit_rate / ceiling; prefill_saved = share of prompt "
                     "tokens; times in s; imbalance = time-avg max / mean in-flight per server; moved = share of follow-up "
                     "turns on another server; errors = share of requests")  # fmt: skip
        return "\n".join(lines)


def affinity_race(workload: str | Scenario = "synthetic", policies: Sequence[Policy] | None = None, *,
                  seeds: Sequence[int] | None = None, servers: int | None = None, load: float | None = None,
                  requests: int | None = None, cache_blocks: int | None = None, impl: str | None = None,
                  level: float = 0.95, workers: int | None = None) -> AffinityRaceResult:  # fmt: skip
    """Run every policy on ``workload`` with common random numbers; compare with intervals over seeds.

    >>> out = affinity_race("synthetic", (Policy("none"), Policy("hard")), seeds=range(2), requests=300, workers=0)
    >>> out.policies, len(out.values["hard"]["hit_rate"])
    (('no affinity', 'hard'), 2)

    Args:
        workload: one of :data:`WORKLOADS` (``"mooncake"``: the conversation
            trace; without it, :class:`FileNotFoundError`), or a Scenario
            built with :func:`synthetic_sessions` and co.
        policies: default :data:`DEFAULT_POLICIES`.
        seeds: default ``range(4)`` for random workloads, ``(0,)`` for a trace.
        servers, load, requests, cache_blocks: passed to the workload's builder
            (``requests`` limits a trace replay to its first rows).
        impl: the affinity implementation (``None``: the reference; the candidate's in their bundle).
        workers: processes (``None``: every core; 0 or 1: in this process).

    Raises:
        ValueError: an unknown workload, no policies, or two policies with one label.
    """
    scenario = workload if isinstance(workload, Scenario) else scenario_for(
        workload, servers=servers, load=load, requests=requests, cache_blocks=cache_blocks)  # fmt: skip
    policies = tuple(DEFAULT_POLICIES if policies is None else policies)
    if not policies:
        raise ValueError("affinity_race needs at least one policy")
    labels = [p.label for p in policies]
    if len(set(labels)) != len(labels):
        raise ValueError(f"policy labels must be unique, got {labels}")
    trace = not isinstance(scenario.workload, Workload)
    seeds = tuple(seeds) if seeds is not None else ((0,) if trace else tuple(range(4)))
    if not seeds:
        raise ValueError("affinity_race needs at least one seed")
    jobs = [_Job(scenario, p, s, impl) for p in policies for s in seeds]
    rows = map_jobs(_run, jobs, workers)
    out = iter(rows)
    values: dict[str, dict[str, tuple[float, ...]]] = {}
    for p in policies:
        got = [next(out) for _ in seeds]
        values[p.label] = {m: tuple(g[m] for g in got) for m in AFFINITY_METRICS}
    ceiling = prepare(scenario, seeds[0]).requests.ceiling()
    return AffinityRaceResult(scenario.name, tuple(labels), seeds, values, ceiling, level)


@dataclass(frozen=True, eq=False)
class AffinityRun:
    """One run for a widget: its metrics, its results, per-server load and cache occupancy over time."""

    policy: Policy
    metrics: dict[str, float]
    results: Results
    server_ids: tuple[str, ...]
    times: np.ndarray  # seconds, an even grid over the run
    load: np.ndarray  # (times, servers): requests in flight
    occupancy: np.ndarray  # (times, servers): blocks cached
    capacity_blocks: np.ndarray  # (servers,)
    strategy_stats: Mapping[str, Any] = field(default_factory=dict)


def affinity_run(policy: str | Policy = "soft", *, slack: float = 0.25, epsilon: float = 0.25, ttl: float = 600.0,
                 cache_blocks: int | None = None, load: float = 0.7, servers: int = 4, requests: int = 600, seed: int = 1,
                 hot_share: float = 0.0, scenario: Scenario | None = None, impl: str | None = None,
                 points: int = 200) -> AffinityRun:  # fmt: skip
    """One small run of a policy on synthetic sessions (or ``scenario``), for a widget: well under 200 ms at 600 requests.

    ``policy``: a :class:`Policy` or a kind of :data:`POLICY_KINDS` (then
    ``slack`` / ``epsilon`` / ``ttl`` apply).  ``points``: the time grid of
    the load and occupancy arrays.
    """
    if isinstance(policy, str):
        policy = Policy(policy, slack=slack, epsilon=epsilon, ttl=ttl)
    if scenario is None:
        scenario = synthetic_sessions(servers, load, requests, cache_blocks=cache_blocks, hot_share=hot_share)
    metrics, res, _, router = _simulate(scenario, policy, seed, impl)
    times = _grid(res, points)
    cache = res.cache
    occupancy = cache.occupancy_over_time(times) if cache is not None else np.zeros((len(times), len(res.server_ids)))  # type: ignore[attr-defined]
    capacity = cache.capacity_blocks if cache is not None else np.zeros(len(res.server_ids), dtype=np.int64)  # type: ignore[attr-defined]
    stats = router.strategy.stats() if hasattr(router.strategy, "stats") else {}
    return AffinityRun(policy, metrics, res, res.server_ids, times, _load(res, times), occupancy, capacity, stats)
