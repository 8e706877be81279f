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

import importlib
from typing import Any

# Names are imported on first use (PEP 562), so that a process that needs one module (an inference
# server needs solution.sim.server and gpus) does not pay for numpy, the runner, the scenarios and
# every model at start-up.  name -> the module that defines it (a module itself when it names one).
_LAZY: dict[str, str] = {
    "scenarios": "solution.sim.scenarios",
    "ClassicMode": "solution.sim.cluster",
    "Cluster": "solution.sim.cluster",
    "LlmMode": "solution.sim.cluster",
    "ServerSpec": "solution.sim.cluster",
    "service_rate": "solution.sim.cluster",
    "BalancerContractError": "solution.sim.errors",
    "ScenarioError": "solution.sim.errors",
    "SimulationError": "solution.sim.errors",
    "TraceFormatError": "solution.sim.errors",
    "AddServer": "solution.sim.faults",
    "Crash": "solution.sim.faults",
    "FailFraction": "solution.sim.faults",
    "GrayFailure": "solution.sim.faults",
    "Hang": "solution.sim.faults",
    "Recover": "solution.sim.faults",
    "RemoveServer": "solution.sim.faults",
    "Slowdown": "solution.sim.faults",
    "ColdStart": "solution.sim.healthsim",
    "HealthConfig": "solution.sim.healthsim",
    "HealthLog": "solution.sim.healthsim",
    "Try": "solution.sim.healthsim",
    "LatencyModel": "solution.core.latency",
    "GPU_PRESETS": "solution.sim.gpus",
    "MODEL_PRESETS": "solution.sim.gpus",
    "GpuSpec": "solution.sim.gpus",
    "ModelSpec": "solution.sim.gpus",
    "KvCacheConfig": "solution.sim.kvcache",
    "PrefixCache": "solution.sim.kvcache",
    "MooncakeWorkload": "solution.sim.mooncake",
    "load_mooncake_trace": "solution.sim.mooncake",
    "Outcome": "solution.sim.results",
    "Results": "solution.sim.results",
    "Summary": "solution.sim.results",
    "format_table": "solution.sim.results",
    "SimClock": "solution.sim.runner",
    "simulate": "solution.sim.runner",
    "EstimateError": "solution.sim.scenario",
    "Scenario": "solution.sim.scenario",
    "erlang_b": "solution.sim.theory",
    "mean_confidence_interval": "solution.sim.theory",
    "TraceWorkload": "solution.sim.trace",
    "load_azure_trace": "solution.sim.trace",
    "Bimodal": "solution.sim.workload",
    "Fixed": "solution.sim.workload",
    "LogNormal": "solution.sim.workload",
    "OnOff": "solution.sim.workload",
    "Pareto": "solution.sim.workload",
    "Poisson": "solution.sim.workload",
    "Requests": "solution.sim.workload",
    "Sessions": "solution.sim.workload",
    "Tier": "solution.sim.workload",
    "Workload": "solution.sim.workload",
}


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported from its module the first time it is asked for.  O(1) after that."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'solution.sim' has no attribute {name!r}")
    if module == f"solution.sim.{name}":
        value: Any = importlib.import_module(module)
    else:
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
