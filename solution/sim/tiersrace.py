"""Stage 6's race: who waits when the cluster is short, policy by policy, on the same traffic.

The ladder (:data:`LADDER`, :func:`ladder`), each rung adding one mechanism
to the one before, all through the request path (:mod:`solution.sim.tiersim`):

1. ``FIFO``: one FIFO queue, no tiers (every request alike; stage 3's predictive routing);
2. ``class priority``: one queue per tier, strict priority by class (premium > free > batch);
3. ``+ reservation``: premium's 25% of every server's slots (trunk reservation, rounded up);
4. ``+ rate limits``: free's tier and per-tenant token buckets (429 with Retry-After);
5. ``+ pools``: a premium pool (a quarter of the servers), spilling to the shared pool;
6. ``+ preemption``: premium may pause a running batch request (recompute on resume).

Every rung keeps the table's SLA routing (premium predictive, others by
load) from rung 2 on.  Workloads (:data:`WORKLOADS`, :func:`scenario_for`):

* ``"overload"`` (:func:`overload_scenario`): offered load 1.3 x the
  cluster's capacity (counted at a full batch: :func:`~solution.sim.cluster.service_rate`),
  premium / free / batch = 20 / 50 / 30% of the requests, heavy-tailed
  tokens (log-normal prompts, Pareto outputs), Zipf-popular tenants in each tier;
* ``"azure"`` (:func:`azure_scenario`): the Azure LLM inference 2023
  conversation trace, time-scaled to the same 1.3 x capacity, tiers and
  tenants assigned by a documented seeded rule (:class:`TieredTrace`).
  Credit (CC-BY 4.0): Patel et al., "Splitwise: Efficient generative LLM
  inference using phase splitting", ISCA 2024, and the Azure Public Dataset.

Per tier (:data:`TIER_METRICS`): ``slo`` (share of the tier's requests that
completed within both its ``Slo.ttft`` and ``Slo.e2e``, counted from the
first send: a 429's wait counts; a request refused for good misses),
``ttft_p99`` / ``e2e_p99`` (seconds, completed requests), ``goodput``
(requests meeting the SLO per second of the arrival span), ``throttled``
(429 answers, per request of the tier), ``preempted`` (preemptions, per
request), ``done`` (share completed at all), ``jain`` (Jain's fairness index
among the tier's tenants: each tenant's goodput over its max-min fair share
of the tier's goodput, :func:`jain_index`).  Cluster-wide
(:data:`CLUSTER_METRICS`): ``batch_makespan`` (seconds from the first batch
arrival to the last batch request's end), ``idle_reserved`` (mean slots,
time-weighted, that were free but reserved for a higher tier, or in a pool
the waiting tier may not use, while a lower tier waited), ``lost``
(requests with no final answer: always 0, checked).

Intervals: t intervals over seeds, the same seeds for every policy (common
random numbers); on the trace a seed re-draws the tier and tenant
assignment (the arrivals and tokens are the trace's).

:func:`tiers_run` is one small, fast run for a widget; :func:`priority_points`
checks strict priority against Cobham's formula and the preemptive-resume
M/M/1 (classic mode).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from solution.sim.cluster import Cluster, ClassicMode, LlmMode, service_rate
from solution.sim.gpus import MODEL_PRESETS
from solution.sim.parallel import map_jobs
from solution.sim.results import Outcome
from solution.sim.scenario import Scenario
from solution.sim.trace import TraceWorkload
from solution.sim.theory import mean_confidence_interval, preemptive_mean_times, priority_mean_waits
from solution.sim.tiersim import TierRun, TierSetup, simulate_tiers
from solution.sim.validate import require_number
from solution.sim.workload import Fixed, LogNormal, Pareto, Poisson, Requests, Tier, Workload

__all__ = [
    "MODEL", "GPU", "LADDER", "EXTRA_RUNGS", "TIER_METRICS", "CLUSTER_METRICS", "WORKLOADS", "race_table", "ladder", "traffic_tiers",
    "overload_scenario", "TieredTrace", "azure_scenario", "scenario_for", "jain_index", "max_min_fair", "run_metrics",
    "TiersRaceResult", "tiers_race", "MissCauses", "miss_causes", "TiersRun", "tiers_run", "PriorityPoint", "priority_points", "TIER_CHECK_POINTS",
]  # fmt: skip

#: The model and GPU of every stage-6 scenario (as stage 5's).
MODEL = MODEL_PRESETS["Llama-3.1-8B"]
GPU = "A100-80GB"

#: The ladder's labels, in order.
LADDER = ("FIFO", "class priority", "+ reservation", "+ rate limits", "+ pools", "+ preemption")

#: A rung off the ladder, for comparison: class priority and preemption alone (no reservation, limits or pools):
#: what preemption does when nothing else keeps room for premium.
EXTRA_RUNGS = ("priority + preemption",)

#: Per-tier metrics, in table order.
TIER_METRICS = ("slo", "ttft_p99", "e2e_p99", "goodput", "done", "throttled", "preempted", "jain")
#: Cluster-wide metrics, in table order.
CLUSTER_METRICS = ("batch_makespan", "idle_reserved", "lost")

#: The workloads :func:`scenario_for` builds.
WORKLOADS = ("overload", "azure")

#: The traffic's tier names, highest class first, and their default shares of the requests.
TIERS = ("premium", "free", "batch")
DEFAULT_MIX = (0.2, 0.5, 0.3)


# -- the tier table and the ladder -------------------------------------------------------------------


def _tier_module() -> Any:
    from solution.sim.tiersim import _lib

    return _lib(None)


def race_table(*, reserved: float | None = None, free_tenant_rpm: float | None = None, pool: str = "premium") -> Any:
    """The race's full ``TierTable``: the course's ``TierTable.standard()`` with a premium pool.

    ``standard()``: premium (class 2, 25% reserved, predictive routing, may
    preempt, 600 requests and 1M tokens a minute per tenant; SLO TTFT 1 s,
    e2e 30 s), free (class 1, 60 requests and 100k tokens a minute per
    tenant; 5 s, 120 s), batch (class 0, preemptible, 2M tokens a minute per
    tenant; a day: batch promises completion, not latency).  Here premium
    also gets the pool ``pool`` (spilling to the shared one), used from the
    ladder's ``+ pools`` rung on.  ``reserved`` overrides premium's reserved
    share; ``free_tenant_rpm`` free's per-tenant requests a minute (a widget
    or a test that wants the limit to bite harder).
    """
    lib = _tier_module()
    rows = []
    for t in lib.TierTable.standard().by_class:
        if t.name == "premium":
            t = replace(t, pool=pool, reserved_share=t.reserved_share if reserved is None else float(reserved))
        if t.name == "free" and free_tenant_rpm is not None and t.tenant_limit is not None:
            t = replace(t, tenant_limit=replace(t.tenant_limit, requests_per_minute=float(free_tenant_rpm)))
        rows.append(t)
    return lib.TierTable(rows, default="free")


def ladder(table: Any, servers: Sequence[str], *, pool_share: float = 0.25, preemption: str = "recompute",
           rungs: Sequence[str] = LADDER) -> tuple[TierSetup, ...]:  # fmt: skip
    """The :data:`LADDER`'s setups from the full ``table``: each rung switches one more mechanism on.

    ``servers``: the cluster's server ids; the first ``ceil(pool_share * S)``
    (at least 1, at most S - 1) form the premium pool from ``"+ pools"`` on.
    ``rungs``: which labels to build (default all, in order).
    """
    tiers = {t.name: t for t in table.by_class}
    lib = _tier_module()

    def table_with(reserve: bool, limits: bool, pools: bool, preempt: bool) -> Any:
        rows = []
        for t in tiers.values():
            rows.append(replace(t, reserved_share=t.reserved_share if reserve else 0.0,
                                tier_limit=t.tier_limit if limits else None, tenant_limit=t.tenant_limit if limits else None,
                                pool=t.pool if pools else None, spill=t.spill if pools else True,
                                may_preempt=t.may_preempt and preempt, preemptible=t.preemptible and preempt))  # fmt: skip
        return lib.TierTable(rows, default=table.default)

    count = min(max(1, math.ceil(pool_share * len(servers) - 1e-9)), max(len(servers) - 1, 1))
    unknown = [r for r in rungs if r not in LADDER + EXTRA_RUNGS]
    if unknown:
        raise ValueError(f"unknown rungs {unknown}; choose from {', '.join(LADDER + EXTRA_RUNGS)}")
    pool = {sid: "premium" for sid in servers[:count]} if len(servers) > 1 else {}
    build = {
        "FIFO": lambda: TierSetup("FIFO"),
        "class priority": lambda: TierSetup("class priority", table_with(False, False, False, False)),
        "+ reservation": lambda: TierSetup("+ reservation", table_with(True, False, False, False)),
        "+ rate limits": lambda: TierSetup("+ rate limits", table_with(True, True, False, False), limits=True),
        "+ pools": lambda: TierSetup("+ pools", table_with(True, True, True, False), limits=True, pools=pool),
        "+ preemption": lambda: TierSetup("+ preemption", table_with(True, True, True, True), limits=True, pools=pool,
                                          preemption=preemption),  # fmt: skip
        "priority + preemption": lambda: TierSetup("priority + preemption", table_with(False, False, False, True),
                                                   preemption=preemption),  # fmt: skip
    }
    return tuple(build[r]() for r in rungs)


# -- workloads ------------------------------------------------------------------------------------------


def traffic_tiers(mix: Sequence[float] = DEFAULT_MIX, *, tenants: Sequence[int] = (20, 200, 5)) -> tuple[Tier, ...]:
    """The simulator's traffic tiers premium / free / batch: shares ``mix``, heavy-tailed tokens, Zipf tenants.

    Interactive prompts: log-normal, median 600 tokens (sigma 1, up to
    8,192); outputs Pareto from 40 tokens (alpha 1.5, up to 2,048).  Batch:
    prompts median 1,500 (sigma 0.8), outputs Pareto from 100 (alpha 1.3, up
    to 4,096): longer documents, longer answers.  Tenants per tier
    ``tenants`` with Zipf skew 1.1 (a few heavy ones).
    """
    if len(mix) != 3 or len(tenants) != 3:
        raise ValueError(f"mix and tenants give premium, free and batch: three each, got {len(mix)} and {len(tenants)}")
    chat_p, chat_o = LogNormal(600, 1.0, high=8192), Pareto(40, 1.5, high=2048)
    batch_p, batch_o = LogNormal(1500, 0.8, high=8192), Pareto(100, 1.3, high=4096)
    out = []
    for name, share, count, (p, o) in zip(TIERS, mix, tenants, ((chat_p, chat_o), (chat_p, chat_o), (batch_p, batch_o))):
        if require_number(share, f"share of {name}", strict=False) > 0:
            out.append(Tier(name, float(share), p, o, tenants=count, tenant_skew=1.1))
    if not out:
        raise ValueError("the tier mix needs a positive share for at least one tier")
    return tuple(out)


def _cluster(servers: int) -> Cluster:
    return Cluster.uniform(servers, GPU)


def overload_scenario(servers: int = 8, load: float = 1.3, requests: int = 4_000, *, mix: Sequence[float] = DEFAULT_MIX) -> Scenario:
    """Poisson arrivals at ``load`` x the cluster's capacity, the tiers of :func:`traffic_tiers` (Llama-3.1-8B on A100-80GBs)."""
    workload = Workload(requests, Poisson(), tiers=traffic_tiers(mix))
    return Scenario(_cluster(servers), workload, LlmMode(model=MODEL), load=load, name=f"overload x{load:g}")


@dataclass(frozen=True)
class TieredTrace(TraceWorkload):
    """A trace replay with tiers and tenants assigned: the Azure LLM inference 2023 CSV, time-scaled.

    The rule (seeded, documented): each request, independently, is premium /
    free / batch with probabilities ``mix``, drawn from the run's token
    stream (so a seed fixes it and every policy of a race sees the same
    assignment); its tenant is then Zipf (skew 1.1) among the tier's
    ``tenants``.  Arrival times and token counts are the trace's (times
    multiplied by ``time_scale``).
    """

    mix: tuple[float, ...] = DEFAULT_MIX
    tenants: tuple[int, ...] = (20, 200, 5)

    def generate(self, rng_tokens: np.random.Generator, rng_arrivals: np.random.Generator, request_rate: object = None) -> Requests:
        from solution.sim.trace import load_azure_trace

        if request_rate is not None:
            raise ValueError("a trace replay has its own arrival times: set time_scale instead of a load")
        base = load_azure_trace(self.path, time_scale=self.time_scale, limit=self.limit)
        tiers = traffic_tiers(self.mix, tenants=self.tenants)
        shares = np.array([t.share for t in tiers])
        tier = rng_tokens.choice(len(tiers), size=len(base), p=shares / shares.sum()).astype(np.int16)
        workload = Workload(len(base), tiers=tiers)
        return Requests(base.arrival, base.prompt_tokens, base.output_tokens, tier, tuple(t.name for t in tiers),
                        base.session, base.think, tenant=workload._tenants(rng_tokens, tier))  # fmt: skip


def _capacity_rate(scenario: Scenario, prompt: np.ndarray, output: np.ndarray) -> float:
    """Requests per second the cluster completes at a full batch, for these token counts."""
    mode = scenario.mode
    total = 0.0
    for spec, cap in zip(scenario.server_specs(), scenario.capacities()):
        pre, dec = mode.mean_steps(prompt, output)
        total += service_rate(mode.server_model(spec.gpu_spec), cap, pre, dec)
    return total


def azure_scenario(servers: int = 8, load: float = 1.3, *, path: str | None = None, limit: int | None = 4_000,
                   mix: Sequence[float] = DEFAULT_MIX) -> Scenario:  # fmt: skip
    """The Azure conversation trace (first ``limit`` rows), time-scaled to ``load`` x the cluster's capacity, tiers assigned.

    ``path``: the CSV (default ``../shared/data/azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv``
    beside the repository, or ``$AZURE_TRACE``).

    Raises:
        FileNotFoundError: no trace there (it says where to download it).
    """
    from solution.sim.trace import load_azure_trace

    file = path or os.environ.get("AZURE_TRACE") or str(_default_trace())
    trace = load_azure_trace(file, limit=limit)
    probe = Scenario(_cluster(servers), Workload(2), LlmMode(model=MODEL))
    rate = load * _capacity_rate(probe, trace.prompt_tokens, trace.output_tokens)
    span = float(trace.arrival[-1] - trace.arrival[0])
    scale = (len(trace) - 1) / span / rate
    workload = TieredTrace(str(file), scale, limit, tuple(float(m) for m in mix))
    return Scenario(_cluster(servers), workload, LlmMode(model=MODEL), name=f"azure conv x{scale:.2f} time")  # type: ignore[arg-type]


def _default_trace() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "azure-llm-inference-2023" / "AzureLLMInferenceTrace_conv.csv"


def scenario_for(workload: str, *, servers: int | None = None, load: float | None = None, requests: int | None = None,
                 mix: Sequence[float] = DEFAULT_MIX) -> Scenario:  # fmt: skip
    """The scenario of one of :data:`WORKLOADS` (``requests`` limits the trace's rows)."""
    options: dict[str, Any] = {"mix": mix}
    if servers is not None:
        options["servers"] = servers
    if load is not None:
        options["load"] = load
    if workload == "overload":
        if requests is not None:
            options["requests"] = requests
        return overload_scenario(**options)
    if workload == "azure":
        if requests is not None:
            options["limit"] = requests
        return azure_scenario(**options)
    raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, got {workload!r}")


# -- metrics ----------------------------------------------------------------------------------------------


def max_min_fair(demand: np.ndarray, total: float) -> np.ndarray:
    """Max-min fair shares of ``total`` among demands (water-filling): no one gets more than it asked.  O(n log n).

    >>> max_min_fair(np.array([1.0, 5.0, 10.0]), 9.0).tolist()
    [1.0, 4.0, 4.0]
    """
    demand = np.asarray(demand, dtype=np.float64)
    out = np.zeros(len(demand))
    order = np.argsort(demand, kind="stable")
    left, n = float(total), len(demand)
    for k, idx in enumerate(order):
        share = left / (n - k)
        give = min(demand[idx], share)
        out[idx] = give
        left -= give
    return out


def jain_index(values: np.ndarray) -> float:
    """Jain's fairness index ``(sum x)^2 / (n sum x^2)``: 1 when all equal, 1/n when one has everything; NaN when empty or all 0.

    Jain, Chiu and Hawe, "A quantitative measure of fairness and
    discrimination for resource allocation in shared computer systems",
    DEC TR-301, 1984.  O(n).
    """
    x = np.asarray(values, dtype=np.float64)
    sq = float((x * x).sum())
    return float(x.sum()) ** 2 / (len(x) * sq) if len(x) and sq > 0 else math.nan


def _pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if len(a) else math.nan


def run_metrics(run: TierRun, table: Any) -> dict[str, float]:
    """The metrics of one run: ``"<tier>:<metric>"`` for :data:`TIER_METRICS`, and the :data:`CLUSTER_METRICS`.

    ``table``: the full tier table, for each tier's SLO (a tier of the
    table without traffic in the run gets NaN for each metric).  O(n log n).
    """
    res, log = run.results, run.log
    arrival = res.arrival
    span = float(np.nanmax(arrival) - np.nanmin(arrival)) if len(arrival) > 1 else 1.0
    span = span if span > 0 else 1.0
    done = res.outcome == Outcome.COMPLETED
    ttft = res.first_token - arrival
    e2e = res.finish - arrival
    out: dict[str, float] = {}
    for k, name in enumerate(res.tier_names):
        mine = res.tier == k
        n = int(mine.sum())
        slo = table.tier(name).slo
        ok = done & mine
        met = ok & (ttft <= slo.ttft) & (e2e <= slo.e2e) if slo is not None else ok
        out[f"{name}:slo"] = float(met.sum()) / n if n else math.nan
        out[f"{name}:ttft_p99"] = _pct(ttft[ok], 99)
        out[f"{name}:e2e_p99"] = _pct(e2e[ok], 99)
        out[f"{name}:goodput"] = float(met.sum()) / span
        out[f"{name}:done"] = float(ok.sum()) / n if n else math.nan
        out[f"{name}:throttled"] = float(log.throttled[mine].sum()) / n if n else math.nan
        out[f"{name}:preempted"] = float(log.preempted[mine].sum()) / n if n else math.nan
        tenant = run.tenant[mine]
        if len(tenant) and tenant.max() >= 0:
            count = int(tenant.max()) + 1
            demand = np.bincount(tenant[tenant >= 0], minlength=count).astype(float)
            good = np.bincount(tenant[met[mine] & (tenant >= 0)], minlength=count).astype(float)
            seen = demand > 0
            fair = max_min_fair(demand[seen], float(good.sum()))
            with np.errstate(invalid="ignore", divide="ignore"):
                x = np.where(fair > 0, good[seen] / fair, 0.0)
            out[f"{name}:jain"] = jain_index(x)
        else:
            out[f"{name}:jain"] = math.nan
    for name in table.names:  # a tier of the table with no traffic in this run (a widget's mix of 0): NaN, not missing
        for metric in TIER_METRICS:
            out.setdefault(f"{name}:{metric}", math.nan)
    batch = [k for k, nm in enumerate(res.tier_names) if nm == "batch"]
    if batch and (res.tier == batch[0]).any():
        mine = res.tier == batch[0]
        out["batch_makespan"] = float(np.nanmax(res.finish[mine]) - np.nanmin(arrival[mine]))
    else:
        out["batch_makespan"] = math.nan
    end = float(np.nanmax(res.finish)) - float(np.nanmin(arrival))
    out["idle_reserved"] = log.idle_reserved / end if end > 0 else 0.0
    out["lost"] = float((res.outcome < 0).sum())
    return out


# -- the race ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    scenario: Scenario
    setup: TierSetup
    table: Any
    seed: int
    impl: str | None


def _run(job: _Job) -> dict[str, float]:
    return run_metrics(simulate_tiers(job.scenario, job.setup, seed=job.seed, impl=job.impl), job.table)


def _full_table(scenario: Scenario | None = None, **options: Any) -> Any:
    """:func:`race_table` (the scenario is not needed: the standard table's limits are per minute, per tenant)."""
    return race_table(**options)


#: The columns of :meth:`TiersRaceResult.markdown` by default: (tier or None, metric, header).
SUMMARY_COLUMNS: tuple[tuple[str | None, str, str], ...] = (
    ("premium", "slo", "premium SLO"), ("premium", "ttft_p99", "premium TTFT p99 (s)"), ("premium", "e2e_p99", "premium e2e p99 (s)"),
    ("free", "slo", "free SLO"), ("free", "ttft_p99", "free TTFT p99 (s)"), ("free", "throttled", "free 429s / request"),
    ("free", "jain", "free Jain"), ("batch", "preempted", "batch preempted / request"),
    (None, "batch_makespan", "batch makespan (s)"), (None, "idle_reserved", "idle reserved slots"),
)  # fmt: skip


@dataclass(frozen=True)
class TiersRaceResult:
    """Per policy: metric name (``"<tier>:<metric>"`` or a cluster metric) -> one value per seed (paired across policies)."""

    workload: str
    policies: tuple[str, ...]
    tiers: tuple[str, ...]
    seeds: tuple[int, ...]
    values: Mapping[str, Mapping[str, tuple[float, ...]]]
    level: float = 0.95

    def interval(self, policy: str, tier: str | None, metric: str) -> tuple[float, float, float]:
        """``(mean, low, high)`` over seeds of ``metric`` for ``tier`` (``None`` for a cluster metric); one seed: the value thrice.

        NaN values (e.g. a tier with no requests that seed) are left out.
        """
        key = metric if tier is None else f"{tier}:{metric}"
        vals = [v for v in self.values[policy][key] if v == v]
        if not vals:
            return math.nan, math.nan, math.nan
        if len(vals) == 1 or len(set(vals)) == 1:
            return vals[0], vals[0], vals[0]
        return mean_confidence_interval(vals, self.level)

    def difference(self, a: str, b: str, tier: str | None, metric: str) -> tuple[float, float, float]:
        """``(mean, low, high)`` of policy ``a`` minus policy ``b``, paired by seed."""
        key = metric if tier is None else f"{tier}:{metric}"
        pairs = [x - y for x, y in zip(self.values[a][key], self.values[b][key]) if x == x and y == y]
        if len(pairs) < 2 or len(set(pairs)) == 1:
            v = pairs[0] if pairs else math.nan
            return v, v, v
        return mean_confidence_interval(pairs, self.level)

    def table(self, metrics: Sequence[str] = ("slo", "ttft_p99", "e2e_p99", "goodput", "throttled", "preempted", "jain")) -> str:
        """One block per tier (rows: policies; columns: ``metrics``), then the cluster metrics; means with intervals."""
        width = max(len(p) for p in self.policies)
        many = len(self.seeds) > 1
        cell = 21 if many else 9

        def fmt(mean: float, lo: float, hi: float) -> str:
            if mean != mean:
                return "-".rjust(cell)
            digits = 3 if abs(mean) < 10 else 1
            text = f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if many and lo != hi else f"{mean:.{digits}f}"
            return text.rjust(cell)

        lines = [f"{self.workload}: {len(self.seeds)} seed(s) {list(self.seeds)}, the same traffic for every policy"
                 + (f", {self.level:.0%} t intervals" if many else "")]  # fmt: skip
        for tier in self.tiers:
            lines.append(f"\n{tier}".ljust(width + 3) + "  ".join(m.rjust(cell) for m in metrics))
            for p in self.policies:
                lines.append(f"{p:<{width}}  " + "  ".join(fmt(*self.interval(p, tier, m)) for m in metrics))
        lines.append("\ncluster".ljust(width + 3) + "  ".join(m.rjust(cell) for m in CLUSTER_METRICS))
        for p in self.policies:
            lines.append(f"{p:<{width}}  " + "  ".join(fmt(*self.interval(p, None, m)) for m in CLUSTER_METRICS))
        lines.append("\nslo = share of the tier's requests within its TTFT and e2e targets (from the first send); p99s in s "
                     "(completed requests); goodput = SLO-met requests/s; throttled / preempted = 429s / preemptions per "
                     "request; jain = Jain's index of tenants' goodput over their max-min fair share; batch_makespan in s; "
                     "idle_reserved = mean free slots reserved for a higher tier while a lower one waited")  # fmt: skip
        return "\n".join(lines)

    def markdown(self, columns: Sequence[tuple[str | None, str, str]] = SUMMARY_COLUMNS) -> str:
        """A markdown table: one row per policy, one column per ``(tier, metric, header)``; means with intervals."""
        many = len(self.seeds) > 1
        lines = ["| policy | " + " | ".join(h for _, _, h in columns) + " |", "| --- |" + " --- |" * len(columns)]
        for p in self.policies:
            cells = []
            for tier, metric, _ in columns:
                mean, lo, hi = self.interval(p, tier, metric)
                digits = 3 if abs(mean) < 10 else 1
                cells.append("-" if mean != mean else (f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if many and lo != hi
                                                      else f"{mean:.{digits}f}"))  # fmt: skip
            lines.append(f"| {p} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def tiers_race(workload: str | Scenario = "overload", policies: Sequence[TierSetup] | None = None, *,
               seeds: Sequence[int] | None = None, servers: int | None = None, load: float | None = None,
               requests: int | None = None, impl: str | None = None, level: float = 0.95, workers: int | None = None,
               rungs: Sequence[str] = LADDER) -> TiersRaceResult:  # fmt: skip
    """Run the ladder (or ``policies``) on ``workload`` with common random numbers; intervals over seeds.

    Args:
        workload: one of :data:`WORKLOADS` (``"azure"`` without the trace:
            FileNotFoundError) or a Scenario whose workload has the tiers premium / free / batch.
        policies: setups (default: :func:`ladder` of :func:`race_table`, ``rungs`` of it).
        seeds: default ``range(4)``.
        servers, load, requests: passed to the workload's builder.
        impl: the stage-6 implementation (``None``: the reference; the candidate's in their bundle).
        workers: processes (``None``: every core; 0 or 1: in this process).

    Raises:
        ValueError: an unknown workload, no policies or seeds, or two policies with one label.
    """
    scenario = workload if isinstance(workload, Scenario) else scenario_for(workload, servers=servers, load=load, requests=requests)
    table = _full_table(scenario)
    setups = tuple(policies) if policies is not None else ladder(table, [s.server_id for s in scenario.server_specs()], rungs=rungs)
    if not setups:
        raise ValueError("tiers_race needs at least one policy")
    labels = [s.label for s in setups]
    if len(set(labels)) != len(labels):
        raise ValueError(f"policy labels must be unique, got {labels}")
    seeds = tuple(seeds) if seeds is not None else tuple(range(4))
    if not seeds:
        raise ValueError("tiers_race needs at least one seed")
    jobs = [_Job(scenario, s, table, seed, impl) for s in setups for seed in seeds]
    rows = iter(map_jobs(_run, jobs, workers))
    values: dict[str, dict[str, tuple[float, ...]]] = {}
    for s in setups:
        got = [next(rows) for _ in seeds]
        values[s.label] = {key: tuple(g.get(key, math.nan) for g in got) for key in got[0]}
    tiers = tuple(t for t in TIERS if any(f"{t}:slo" in v for v in values.values()))
    return TiersRaceResult(scenario.name, tuple(labels), tiers, seeds, values, level)


# -- why a tier misses its SLO ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MissCauses:
    """Why one tier's requests missed their SLO under one policy, pooled over seeds (see :func:`miss_causes`).

    ``requests``: the tier's requests; ``missed``: those that missed (TTFT or e2e, or not completed);
    ``ttft_missed``: completed ones over the TTFT target; ``waited_longest``: the longest time any
    TTFT-missed request waited for a slot (seconds from arrival to start); ``prompt_median``: their
    median prompt (tokens); ``after_start_median``: their median seconds from start to first token
    (the prefill in a busy batch).
    """

    policy: str
    tier: str
    requests: int
    missed: int
    ttft_missed: int
    waited_longest: float
    prompt_median: float
    after_start_median: float


def miss_causes(policies: Sequence[str], tier: str = "premium", *, workload: str = "overload",
                seeds: Sequence[int] = range(4)) -> list[MissCauses]:  # fmt: skip
    """For each rung in ``policies`` (labels of :data:`LADDER` + :data:`EXTRA_RUNGS`): why ``tier`` missed.

    Separates a miss caused by waiting for a slot (what priority, reservation and
    preemption can cure) from one caused by the request's own prefill on a busy
    server (what no admission policy cures).  Same traffic per seed as
    :func:`tiers_race`.  O(runs x n log n).

    Raises:
        ValueError: a policy label not in the ladder.
    """
    scenario = scenario_for(workload)
    table = _full_table(scenario)
    setups = {s.label: s for s in ladder(table, [s.server_id for s in scenario.server_specs()], rungs=LADDER + EXTRA_RUNGS)}
    unknown = [p for p in policies if p not in setups]
    if unknown:
        raise ValueError(f"unknown policies {unknown}; choose from {sorted(setups)}")
    slo = table.tier(tier).slo
    out = []
    for label in policies:
        n = missed = late = 0
        waits: list[np.ndarray] = []
        prompts: list[np.ndarray] = []
        prefill: list[np.ndarray] = []
        for seed in seeds:
            res = simulate_tiers(scenario, setups[label], seed=seed).results
            mine = res.tier == list(res.tier_names).index(tier)
            done = res.outcome == Outcome.COMPLETED
            ttft, e2e = res.first_token - res.arrival, res.finish - res.arrival
            over = mine & done & (ttft > slo.ttft)
            n += int(mine.sum())
            missed += int((mine & ~(done & (ttft <= slo.ttft) & (e2e <= slo.e2e))).sum())
            late += int(over.sum())
            waits.append((res.start - res.arrival)[over])
            prompts.append(res.prompt_tokens[over])
            prefill.append((res.first_token - res.start)[over])
        w, p, f = np.concatenate(waits), np.concatenate(prompts), np.concatenate(prefill)
        out.append(MissCauses(label, tier, n, missed, late, float(w.max()) if len(w) else 0.0,
                              float(np.median(p)) if len(p) else math.nan, float(np.median(f)) if len(f) else math.nan))  # fmt: skip
    return out


# -- one fast run for a widget -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TiersRun:
    """One widget run: the setup, its metrics, the run, and per-tier p99 e2e over time windows."""

    setup: TierSetup
    metrics: dict[str, float]
    run: TierRun
    window_ends: np.ndarray  # seconds: the end of each window (by arrival time)
    p99_over_time: Mapping[str, np.ndarray]  # tier -> p99 e2e (s) of requests arriving in each window (NaN: none completed)


def tiers_run(*, mix: Sequence[float] = DEFAULT_MIX, overload: float = 1.3, reserved: float = 0.25, limits: bool = True,
              preemption: bool = True, pools: bool = False, seed: int = 0, servers: int = 2, requests: int = 300,
              windows: int = 6, impl: str | None = None) -> TiersRun:  # fmt: skip
    """One small run for a widget: the tier ``mix``, ``overload`` x capacity, premium's ``reserved`` share, limits / preemption / pools on or off.

    Defaults (2 servers, 300 requests) run in tens of milliseconds.  With
    every switch off and ``reserved = 0`` it is the ``class priority`` rung.
    """
    scenario = overload_scenario(servers, overload, requests, mix=mix)
    full = _full_table(scenario, reserved=reserved)
    rungs = ladder(full, [s.server_id for s in scenario.server_specs()])
    base = rungs[5] if pools else replace(rungs[5], pools={})
    lib = _tier_module()
    rows = [replace(t, pool=t.pool if pools else None, tier_limit=t.tier_limit if limits else None,
                    tenant_limit=t.tenant_limit if limits else None, may_preempt=t.may_preempt and preemption,
                    preemptible=t.preemptible and preemption) for t in full.by_class]  # fmt: skip
    setup = replace(base, label="widget", table=lib.TierTable(rows, default=full.default), limits=limits,
                    preemption="recompute" if preemption else None)  # fmt: skip
    run = simulate_tiers(scenario, setup, seed=seed, impl=impl)
    metrics = run_metrics(run, full)
    res = run.results
    edges = np.linspace(float(np.nanmin(res.arrival)), float(np.nanmax(res.arrival)) + 1e-9, windows + 1)
    slot = np.clip(np.searchsorted(edges, res.arrival, side="right") - 1, 0, windows - 1)
    e2e = res.finish - res.arrival
    done = res.outcome == Outcome.COMPLETED
    p99 = {}
    for k, name in enumerate(res.tier_names):
        vals = np.full(windows, np.nan)
        for w in range(windows):
            mine = done & (res.tier == k) & (slot == w)
            if mine.any():
                vals[w] = float(np.percentile(e2e[mine], 99))
        p99[name] = vals
    for name in full.names:  # tiers with no traffic (a mix share of 0): NaN throughout
        p99.setdefault(name, np.full(windows, np.nan))
    return TiersRun(setup, metrics, run, edges[1:], p99)


# -- strict priority against theory (classic mode) ---------------------------------------------------------


#: The points ``tier-checks`` and the tests use: one server at rho = 0.8 split evenly and rho = 0.9 split 1:2, four
#: servers at 3.2 erlangs split 1.2 / 2.0 (per-class offered loads in erlangs, highest class first).
TIER_CHECK_POINTS: tuple[tuple[int, tuple[float, ...]], ...] = ((1, (0.4, 0.4)), (1, (0.3, 0.6)), (4, (1.2, 2.0)))


@dataclass(frozen=True)
class PriorityPoint:
    """One class at one point: simulated mean (wait, or time in system when preemptive) in mean service times, its interval, the formula's."""

    servers: int
    loads: tuple[float, ...]  # offered load per class, erlangs, highest class first
    preemptive: bool
    cls: int  # 0 = the highest class
    mean: float
    low: float
    high: float
    theory: float

    @property
    def covered(self) -> bool:
        return self.low <= self.theory <= self.high


def _priority_scenario(servers: int, loads: Sequence[float], requests: int, preemptive: bool) -> Scenario:
    names = [f"class{k}" for k in range(len(loads))]
    tiers = tuple(Tier(n, float(a), Fixed(100), Fixed(100)) for n, a in zip(names, loads))
    total = math.fsum(loads)
    base = Scenario(Cluster.uniform(servers, capacity=1), Workload(requests, Poisson(), tiers=tiers), ClassicMode(1.0),
                    load=total / servers, name=f"priority c={servers} {'preemptive' if preemptive else 'non-preemptive'}")  # fmt: skip
    if preemptive:
        return base
    from solution.core.queue_types import QueuePolicy
    from solution.sim.queueing import QueueConfig

    classes = {n: len(loads) - 1 - k for k, n in enumerate(names)}
    return base.with_queue(QueueConfig(QueuePolicy(ordering="priority"), priorities=classes))


@dataclass(frozen=True)
class _PriorityJob:
    servers: int
    loads: tuple[float, ...]
    preemptive: bool
    requests: int
    warmup: float
    seed: int


def _priority_run(job: _PriorityJob) -> list[float]:
    """Per class: mean wait (non-preemptive, the stage-2 queue) or mean time in system (preemptive, the path), after the warm-up."""
    scenario = _priority_scenario(job.servers, job.loads, job.requests, job.preemptive)
    if job.preemptive:
        lib = _tier_module()
        from solution.core.tier_types import ServiceTier

        k = len(job.loads)
        rows = [ServiceTier(f"class{c}", k - 1 - c, may_preempt=c < k - 1, preemptible=c > 0) for c in range(k)]
        table = lib.TierTable(rows)
        setup = TierSetup("preemptive-resume", table, preemption="recompute", resume="resume", max_preemptions=10**9)
        res = simulate_tiers(scenario, setup, seed=job.seed).results
        stat = res.finish - res.arrival
    else:
        from solution.sim.runner import simulate

        res = simulate(scenario, seed=job.seed)
        stat = res.start - res.arrival
    keep = (np.arange(len(res)) >= int(job.warmup * len(res))) & (res.outcome == Outcome.COMPLETED)
    return [float(np.mean(stat[keep & (res.tier == c)])) for c in range(len(job.loads))]


def priority_points(points: Sequence[tuple[int, Sequence[float]]], *, preemptive: bool = False,
                    seeds: Sequence[int] = range(6), requests: int = 20_000, warmup: float = 0.1, level: float = 0.99,
                    workers: int | None = None) -> list[PriorityPoint]:  # fmt: skip
    """Simulate strict priority in classic mode (M/M/c, mean service 1 s) and compare with the formulas.

    ``points``: ``(servers, per-class offered loads in erlangs, highest class
    first)``.  Non-preemptive: the stage-2 queue ordered by class in front
    of c servers; each class's mean *wait* against Cobham's
    (:func:`~solution.sim.theory.priority_mean_waits`).  Preemptive: the
    request path with a ``Preemptor`` (no bound, resume where it stopped);
    each class's mean *time in system* against
    :func:`~solution.sim.theory.preemptive_mean_times` (c > 1: the top class
    only).  The first ``warmup`` share of requests is dropped (the queue
    starts empty).  One t interval at ``level`` over the seeds per class.
    """
    jobs = [_PriorityJob(int(c), tuple(float(a) for a in loads), preemptive, requests, warmup, s)
            for c, loads in points for s in seeds]  # fmt: skip
    rows = iter(map_jobs(_priority_run, jobs, workers))
    out = []
    for c, loads in points:
        got = np.array([next(rows) for _ in seeds])
        theory = preemptive_mean_times(list(loads), c) if preemptive else priority_mean_waits(c, list(loads))
        for k in range(len(theory)):
            mean, lo, hi = mean_confidence_interval(got[:, k].tolist(), level)
            out.append(PriorityPoint(int(c), tuple(float(a) for a in loads), preemptive, k, mean, lo, hi, float(theory[k])))
    return out
