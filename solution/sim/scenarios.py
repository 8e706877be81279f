"""Named scenarios: ready-made :class:`~solution.sim.scenario.Scenario` builders.

Each builder takes keyword arguments (servers, load, requests, gpu, ...) and
returns a scenario; :data:`SCENARIOS` maps a name (used by the CLI) to its
builder.  Faults are placed at fractions of the expected duration of the run.

>>> sorted(SCENARIOS)[:3]
['bursty', 'classic', 'crash']
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from solution.sim.cluster import ClassicMode, Cluster, LlmMode, ServerSpec
from solution.sim.faults import AddServer, Crash, FailFraction, GrayFailure, Hang, Recover, RemoveServer, Slowdown, TimetableEvent
from solution.sim.healthsim import ColdStart
from solution.sim.scenario import EstimateError, Scenario
from solution.sim.trace import TraceWorkload
from solution.sim.workload import Bimodal, Fixed, LogNormal, OnOff, Pareto, Poisson, Sessions, Tier, Workload

__all__ = [
    "SCENARIOS",
    "build",
    "classic",
    "steady",
    "bursty",
    "heavy_tail",
    "tiers",
    "sessions",
    "mixed_gpus",
    "crash",
    "slow_server",
    "flaky",
    "drain",
    "hang",
    "gray",
    "health_fault",
    "HEALTH_FAULTS",
    "trace",
]


def classic(servers: int = 16, load: float = 0.9, requests: int = 100_000, *, capacity: int = 1, mean_service: float = 1.0, **_: object) -> Scenario:
    """The M/M/c/c loss system: Poisson arrivals, exponential service, no queue.

    With capacity 1 the offered load is ``a = load * servers`` erlangs and the
    fraction of rejected requests follows Erlang B.  Every request has 100
    prompt and 100 output tokens (ignored by the service, seen by the balancer).
    """
    return Scenario(
        cluster=Cluster.uniform(servers, capacity=capacity),
        workload=Workload(requests, Poisson(), tiers=(Tier("classic", 1.0, Fixed(100), Fixed(100)),)),
        mode=ClassicMode(mean_service),
        load=load,
        name="classic",
    )


def steady(servers: int = 4, load: float = 0.7, requests: int = 5_000, *, gpu: str = "A100-80GB", **_: object) -> Scenario:
    """LLM serving under steady Poisson traffic with log-normal token counts."""
    return Scenario(Cluster.uniform(servers, gpu), Workload(requests), LlmMode(), load=load, name="steady")


def bursty(servers: int = 4, load: float = 0.7, requests: int = 5_000, *, gpu: str = "A100-80GB", **_: object) -> Scenario:
    """Bursts: 10 s at 4x the quiet rate, then 30 s quiet, on average (same mean load)."""
    workload = Workload(requests, OnOff(rate_on=4.0, rate_off=1.0, mean_on=10.0, mean_off=30.0))
    return Scenario(Cluster.uniform(servers, gpu), workload, load=load, name="bursty")


def heavy_tail(servers: int = 4, load: float = 0.7, requests: int = 5_000, *, gpu: str = "A100-80GB", **_: object) -> Scenario:
    """Pareto token counts (alpha 1.3 prompts, 1.5 outputs): a few huge requests dominate."""
    tier = Tier("heavy", 1.0, Pareto(minimum=200, alpha=1.3, high=16384), Pareto(minimum=40, alpha=1.5, high=4096))
    return Scenario(Cluster.uniform(servers, gpu), Workload(requests, tiers=(tier,)), load=load, name="heavy-tail")


def tiers(servers: int = 4, load: float = 0.7, requests: int = 5_000, *, gpu: str = "A100-80GB", **_: object) -> Scenario:
    """A mix: 70% interactive chat, 20% code completion, 10% long-document summaries (bimodal prompts).

    The summaries tier has estimated token counts above 4,096 often enough
    that the stage-1 balancer must send them to 80 GB GPUs.
    """
    mix = (
        Tier("chat", 0.7, LogNormal(300, 1.0, high=4096), LogNormal(200, 0.7, high=2048)),
        Tier("code", 0.2, LogNormal(1500, 0.6, high=8192), LogNormal(30, 0.8, high=512)),
        Tier("summarize", 0.1, Bimodal(LogNormal(2000, 0.4), LogNormal(12000, 0.3, high=30000), 0.5), LogNormal(300, 0.5)),
    )
    return Scenario(Cluster.uniform(servers, gpu), Workload(requests, tiers=mix), load=load, name="tiers",
                    estimate=EstimateError(sigma=0.5))  # fmt: skip


def sessions(servers: int = 4, load: float = 0.7, requests: int = 5_000, *, gpu: str = "A100-80GB", **_: object) -> Scenario:
    """Multi-turn chat: 4 turns per session on average, 20 s of thinking between turns."""
    workload = Workload(requests, tiers=(Tier("chat", 1.0, LogNormal(200, 0.8, high=2048), LogNormal(200, 0.7, high=2048)),),
                        sessions=Sessions(mean_turns=4.0, mean_think=20.0, max_context=16384))  # fmt: skip
    return Scenario(Cluster.uniform(servers, gpu), workload, load=load, name="sessions")


def mixed_gpus(servers: int = 4, load: float = 0.7, requests: int = 5_000, **_: object) -> Scenario:
    """A heterogeneous fleet: as many A10s, A100-80GBs and H100s as ``servers`` allows (A10s first)."""
    counts = {"A10-24GB": (servers + 2) // 3, "A100-80GB": (servers + 1) // 3, "H100-80GB": servers // 3}
    cluster = Cluster.mixed({gpu: n for gpu, n in counts.items() if n})
    return Scenario(cluster, Workload(requests), load=load, name="mixed-gpus")


def _steady_with(name: str, servers: int, load: float, requests: int, gpu: str,
                 events: Callable[[float], tuple[TimetableEvent, ...]], **changes: object) -> Scenario:  # fmt: skip
    """:func:`steady` with a timetable built from the run's expected duration in seconds."""
    base = steady(servers, load, requests, gpu=gpu)
    return replace(base, timetable=events(base.expected_duration()), name=name, **changes)  # type: ignore[arg-type]


def crash(servers: int = 4, load: float = 0.7, requests: int = 5_000, *, gpu: str = "A100-80GB",
          detection: float | None = None, **_: object) -> Scenario:  # fmt: skip
    """``gpu-0`` crashes at 30% of the run and recovers at 60%.

    With ``detection=None`` nobody tells the balancer: the dead server looks
    idle, least-connections keeps choosing it, and every request sent there
    fails.  Give ``detection`` seconds to model a health check.
    """
    events = lambda span: (Crash(0.3 * span, "gpu-0"), Recover(0.6 * span, "gpu-0"))  # noqa: E731
    return _steady_with("crash", servers, load, requests, gpu, events, crash_detection=detection)


def slow_server(servers: int = 4, load: float = 0.7, requests: int = 5_000, *, gpu: str = "A100-80GB",
                factor: float = 4.0, **_: object) -> Scenario:  # fmt: skip
    """``gpu-0`` runs ``factor`` times slower from 20% of the run to 70%."""
    events = lambda span: (Slowdown(0.2 * span, "gpu-0", factor), Recover(0.7 * span, "gpu-0"))  # noqa: E731
    return _steady_with("slow-server", servers, load, requests, gpu, events)


def flaky(servers: int = 4, load: float = 0.7, requests: int = 5_000, *, gpu: str = "A100-80GB",
          fraction: float = 0.3, **_: object) -> Scenario:  # fmt: skip
    """``gpu-0`` fails ``fraction`` of its requests from 20% of the run to 70%."""
    events = lambda span: (FailFraction(0.2 * span, "gpu-0", fraction), Recover(0.7 * span, "gpu-0"))  # noqa: E731
    return _steady_with("flaky", servers, load, requests, gpu, events)


def drain(servers: int = 4, load: float = 0.7, requests: int = 5_000, *, gpu: str = "A100-80GB", **_: object) -> Scenario:
    """An operator drains ``gpu-0`` at 30% of the run and adds a fresh ``spare-0`` at 50%."""
    events = lambda span: (RemoveServer(0.3 * span, "gpu-0"), AddServer(0.5 * span, ServerSpec("spare-0", gpu)))  # noqa: E731
    return _steady_with("drain", servers, load, requests, gpu, events)


def hang(servers: int = 4, load: float = 0.7, requests: int = 5_000, *, gpu: str = "A100-80GB", **_: object) -> Scenario:
    """``gpu-0`` hangs at 30% of the run (accepts, never answers) and is restarted at 60% (then warms up)."""
    events = lambda span: (Hang(0.3 * span, "gpu-0"), Recover(0.6 * span, "gpu-0"))  # noqa: E731
    return _steady_with("hang", servers, load, requests, gpu, events, cold_start=ColdStart())


def gray(servers: int = 4, load: float = 0.7, requests: int = 5_000, *, gpu: str = "A100-80GB", fraction: float = 0.3,
         factor: float = 3.0, **_: object) -> Scenario:  # fmt: skip
    """``gpu-0`` passes its probes but fails ``fraction`` of real requests and crawls ``factor`` times slower, 20% to 70%."""
    events = lambda span: (GrayFailure(0.2 * span, "gpu-0", fraction, factor), Recover(0.7 * span, "gpu-0"))  # noqa: E731
    return _steady_with("gray", servers, load, requests, gpu, events)


#: The faults of stage 4's race (:func:`health_fault`).
HEALTH_FAULTS = ("crash", "hang", "throttled", "failing")


def health_fault(fault: str, servers: int = 4, load: float = 0.6, requests: int = 3_000, *, gpu: str = "A100-80GB",
                 cold: ColdStart | None = ColdStart(seconds=40.0, speed=0.3), **_: object) -> Scenario:  # fmt: skip
    """Stage 4's race scenarios: one fault on ``gpu-0`` of a steady fleet, with a cold start on restart.

    * ``"crash"``: it crashes at 25% of the run and restarts at 35% (then warms up: ``cold``, by default
      40 s from 30% speed, so a server that gets its full share back at once serves it slowly);
    * ``"hang"``: it hangs at 25% (accepts, never answers; probes time out) and restarts at 50%;
    * ``"throttled"``: it runs 3 times slower from 25% to 75% (probes still pass: only latency shows it);
    * ``"failing"``: it fails 30% of real requests from 25% to 75% (probes still pass);
    * ``"gray"``: it fails 30% and crawls 3 times slower from 25% to 75% (probes still pass);
    * ``"scale-out"``: no fault: a cold ``spare-0`` joins at 40% (least-connections sees it empty
      and floods it while it warms up: the case for slow start).

    Health checking is off; turn it on with :meth:`Scenario.with_health`.

    Raises:
        ValueError: an unknown fault (the message lists them).
    """
    makers: dict[str, Callable[[float], tuple[TimetableEvent, ...]]] = {
        "crash": lambda span: (Crash(0.25 * span, "gpu-0"), Recover(0.35 * span, "gpu-0")),
        "hang": lambda span: (Hang(0.25 * span, "gpu-0"), Recover(0.5 * span, "gpu-0")),
        "throttled": lambda span: (Slowdown(0.25 * span, "gpu-0", 3.0), Recover(0.75 * span, "gpu-0")),
        "failing": lambda span: (FailFraction(0.25 * span, "gpu-0", 0.3), Recover(0.75 * span, "gpu-0")),
        "gray": lambda span: (GrayFailure(0.25 * span, "gpu-0", 0.3, 3.0), Recover(0.75 * span, "gpu-0")),
        "scale-out": lambda span: (AddServer(0.4 * span, ServerSpec("spare-0", gpu)),),
    }
    if fault not in makers:
        raise ValueError(f"unknown fault {fault!r}; choose one of {', '.join(makers)}")
    return _steady_with(f"health-{fault}", servers, load, requests, gpu, makers[fault], cold_start=cold)


def trace(path: str | os.PathLike[str], servers: int = 2, *, time_scale: float = 1.0, gpu: str = "A100-80GB",
          limit: int | None = None, **_: object) -> Scenario:  # fmt: skip
    """Replay an Azure LLM inference 2023 trace file on ``servers`` identical GPUs."""
    workload = TraceWorkload(os.fspath(path), time_scale=time_scale, limit=limit)
    return Scenario(Cluster.uniform(servers, gpu), workload, name=f"trace:{os.path.basename(os.fspath(path))}")


#: Scenario builders by name (the CLI's ``run NAME``).
SCENARIOS: dict[str, Callable[..., Scenario]] = {
    "classic": classic,
    "steady": steady,
    "bursty": bursty,
    "heavy-tail": heavy_tail,
    "tiers": tiers,
    "sessions": sessions,
    "mixed-gpus": mixed_gpus,
    "crash": crash,
    "slow-server": slow_server,
    "flaky": flaky,
    "drain": drain,
    "hang": hang,
    "gray": gray,
}


def build(name: str, **options: object) -> Scenario:
    """The named scenario built with ``options`` (unknown options are ignored by builders).

    Raises:
        ValueError: no scenario has that name (the message lists them).
    """
    try:
        builder = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}") from None
    return builder(**options)
