"""A fast, seeded simulator, exact for its model, of an LLM serving cluster.

Build a scenario, run it with a balancer, read the results::

    from solution import LoadBalancer
    from solution.sim import scenarios, simulate

    res = simulate(scenarios.steady(servers=4, load=0.8), LoadBalancer, seed=1)
    print(res.summary().table())

Modules: :mod:`~solution.sim.events` (the event heap), :mod:`~.server`
(one server, continuous batching, exact for the model), :mod:`~.engine` (the gateway loop),
:mod:`~.classic` (the classic-mode fast path), :mod:`~.cluster` and
:mod:`~.gpus` (servers, modes, GPU presets), :mod:`~.workload` and
:mod:`~.trace` (requests), :mod:`~.faults` (the timetable),
:mod:`~.healthsim` (stage 4: cold starts, probes as events, the request path with re-route),
:mod:`~.probecheck` (stage 4's checks against theory),
:mod:`~.kvcache` (stage 5: a KV prefix cache per server, KV migration, Che's check),
:mod:`~.mooncake` (the Mooncake FAST'25 traces), :mod:`~.affinityrace` (stage 5's race),
:mod:`~.tiersim` (stage 6: tiers, tenants, 429 retries and preemption through the request path),
:mod:`~.tiersrace` (stage 6's policy ladder under overload, the Azure replay, strict priority vs Cobham),
:mod:`~.scenario` / :mod:`~.scenarios` (what to run), :mod:`~.runner`
(``simulate``), :mod:`~.results`, :mod:`~.theory` (Erlang B),
:mod:`~.sweep` (parallel runs), :mod:`~.plot`, and the command line
(``python -m solution.sim``).  See ``docs/simulator.md``.
"""

from solution.sim import scenarios
from solution.sim.cluster import ClassicMode, Cluster, LlmMode, ServerSpec, service_rate
from solution.sim.errors import BalancerContractError, ScenarioError, SimulationError, TraceFormatError
from solution.sim.faults import AddServer, Crash, FailFraction, GrayFailure, Hang, Recover, RemoveServer, Slowdown
from solution.sim.healthsim import ColdStart, HealthConfig, HealthLog, Try
from solution.core.latency import LatencyModel
from solution.sim.gpus import GPU_PRESETS, MODEL_PRESETS, GpuSpec, ModelSpec
from solution.sim.kvcache import KvCacheConfig, PrefixCache
from solution.sim.mooncake import MooncakeWorkload, load_mooncake_trace
from solution.sim.results import Outcome, Results, Summary, format_table
from solution.sim.runner import SimClock, simulate
from solution.sim.scenario import EstimateError, Scenario
from solution.sim.theory import erlang_b, mean_confidence_interval
from solution.sim.trace import TraceWorkload, load_azure_trace
from solution.sim.workload import Bimodal, Fixed, LogNormal, OnOff, Pareto, Poisson, Requests, Sessions, Tier, Workload

__all__ = [
    "simulate",
    "scenarios",
    "Scenario",
    "Cluster",
    "ServerSpec",
    "LlmMode",
    "ClassicMode",
    "service_rate",
    "GPU_PRESETS",
    "GpuSpec",
    "ModelSpec",
    "MODEL_PRESETS",
    "PrefixCache",
    "KvCacheConfig",
    "MooncakeWorkload",
    "load_mooncake_trace",
    "SimClock",
    "LatencyModel",
    "Workload",
    "Tier",
    "Sessions",
    "Poisson",
    "OnOff",
    "Fixed",
    "LogNormal",
    "Bimodal",
    "Pareto",
    "Requests",
    "TraceWorkload",
    "load_azure_trace",
    "EstimateError",
    "Crash",
    "Hang",
    "GrayFailure",
    "ColdStart",
    "HealthConfig",
    "HealthLog",
    "Try",
    "Slowdown",
    "FailFraction",
    "Recover",
    "AddServer",
    "RemoveServer",
    "Outcome",
    "Results",
    "Summary",
    "format_table",
    "erlang_b",
    "mean_confidence_interval",
    "SimulationError",
    "BalancerContractError",
    "ScenarioError",
    "TraceFormatError",
]
