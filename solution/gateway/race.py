"""The HTTP race: one seeded workload through the course's gateway and through HAProxy, on the same servers, in one run.

``python -m solution.gateway.race`` starts a mixed fleet of inference
servers (:mod:`solution.gateway.inference_server`, the simulator's GPU
presets), the course's gateway (``python -m solution.gateway``, one
process per strategy raced) and HAProxy (:mod:`solution.gateway.haproxy`,
``balance leastconn``), all on loopback, and replays the same requests
(:func:`solution.gateway.loadgen.from_sim_workload` on
:func:`solution.sim.race.heterogeneous`: heavy-tailed outputs, imperfect
output estimates, the simulator's own seeded draws) through each balancer
in turn, waiting for the fleet to be idle between runs.  It prints, per
balancer: requests answered, throughput, tokens per second, TTFT and e2e
p50/p99, the time the path added beyond the servers' own (``added``: e2e
minus the model time each server reports for the request), errors seen
by clients, and each server's share of requests; then, for the steady
state, the simulator's figures for the same requests.

Output estimates: the servers generate exactly ``max_tokens`` (the true
output length).  By default the gateway prices each request with
``max_tokens``, so it knows every output exactly, while the simulator's
balancer sees the scenario's noisy estimate (its ``EstimateError``).
``--estimates`` (``race(estimates=True)``) sends each request's simulated
estimate in the ``X-Output-Tokens-Estimate`` header and configures the
gateway with ``estimate: "header"``, so it routes on the same guess the
simulator does (recorded as ``steady_estimates`` / ``azure_estimates``).

What each balancer is told, so the comparison is fair:

* both know each server's capacity: the gateway from its configuration
  (``capacity``, plus the GPU and model preset for the ``predictive``
  strategy's latency model), HAProxy as ``maxconn`` (more requests wait in
  its queue) and, in the ``weighted`` set-up, as weights proportional to
  capacity (leastconn then compares connections over weight, the load
  ratio the course's least-connections compares; plain ``leastconn``, all
  weights 1, is HAProxy's default);
* both queue at most ``queue_wait`` seconds (the gateway's queue
  ``max_wait``, HAProxy's ``timeout queue``) and check ``/health`` every
  second;
* neither writes a log line per request (the gateway runs with
  ``--log-level WARNING``; HAProxy's configuration has no ``log``);
* the gateway is one asyncio process; HAProxy runs one thread
  (``nbthread 1``).

Faults (``fault=``): ``crash`` (the server's process exits), ``hang``
(it accepts and never answers, ``/health`` too), ``slow`` (a throttled GPU:
``slow_factor`` times slower) or ``drain`` (the balancer is told to drain
it: the gateway's ``POST /admin/drain``, HAProxy's ``set server ... state
drain``), injected into ``fault_server`` (default: the fleet's largest
server, the one a token-aware router leans on) at ``fault_at`` of the
arrival window, and undone after each balancer's run (a crashed server is
started again on its port), so every balancer meets the same fault.

:func:`overhead` measures what a balancer adds per request (one request at
a time, the smallest request, direct to one server and through each
balancer in front of that server only) and :func:`capacity` the requests
per second each sustains with many clients; both print ratios of the
gateway against HAProxy measured in the same run.

The Azure trace (``--azure CSV``, :func:`azure_scenario`): instead of the
simulator's workload, windows of the Azure LLM inference 2023 trace (seed
``k``: rows ``[k * requests, (k + 1) * requests)``), the trace's own
arrival gaps sped up by one factor per window so the window offers
``load`` per server; read where the user keeps it, never copied (CC-BY
4.0: Patel et al., "Splitwise", ISCA 2024, and the Azure Public Dataset).

The retry storm over HTTP (``--storm``, :func:`storm`): every server is
told to fail a fraction of attempts (``/admin/fault`` ``fail``: a 500 at
once), and a gateway with each policy of :data:`STORM_POLICIES` (no
retries; 3 tries without a budget; 3 tries with Envoy's retry budget)
replays the race's requests; the attempts that reached the servers are
counted from the servers' own ``/metrics``.

``--json PATH`` records each part run (the race as ``steady`` or its
fault's name, ``azure``, ``overhead``, ``capacity``, ``storm``) in a
results file (:mod:`solution.gateway.results`: the exact command, the
machine, the figures with intervals over seeds), keeping its other parts.

Time: servers run the model ``1 / time_scale`` times faster than real
time, and the arrivals are compressed by the same factor, so the offered
load per server is the scenario's ``load`` whatever the scale; a smaller
scale means a shorter run but more requests per real second (on a 2-core
machine the Python processes, not the model, then set the pace: keep
``time_scale`` near 1 there).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from solution.gateway.haproxy import HAProxy, haproxy_binary, HAPROXY_INSTALL
from solution.gateway.loadgen import LoadResult, LoadSummary, from_sim_workload, run_replay, summarize
from solution.gateway.procs import Fleet, ManagedProcess, ServerSpec, free_port, start_fleet
from solution.sim.trace import TraceWorkload, load_azure_trace
from solution.sim.workload import Requests, Workload

__all__ = [
    "race", "race_scenario", "azure_scenario", "TraceWindow", "jitter_spread", "AZURE_FILE", "simulated", "aggregate", "overhead", "capacity", "capacity_weights", "main",
    "race_part", "overhead_part", "capacity_part", "storm", "storm_part", "storm_simulated", "StormRun", "STORM_POLICIES", "RaceRow", "Overhead", "Capacity", "AGGREGATED", "HAPROXY_SETUPS", "L7_RETRY_ON", "DEFAULT_FLEET", "RACE_KEY", "FAULTS",
]  # fmt: skip

#: The race's default fleet: two A10s and one H100 (a mixed fleet, small enough for a 2-core machine).
DEFAULT_FLEET: Mapping[str, int] = {"A10-24GB": 2, "H100-80GB": 1}

#: The API key the load generator sends to the gateway (HAProxy ignores it).
RACE_KEY = "sk-race"

#: The gateway's admin key in the race (its ``/admin/drain``).
RACE_ADMIN_KEY = "sk-race-admin"

#: HAProxy set-ups a race can run: plain leastconn (every weight 1); leastconn with weights proportional to capacity;
#: the same with layer-7 retries (HAProxy re-sends a request whose server died or stayed silent before answering).
HAPROXY_SETUPS = ("leastconn", "weighted", "weighted+retry")

#: ``retry-on`` of the ``weighted+retry`` set-up (configuration.txt 4.2).
L7_RETRY_ON = "conn-failure empty-response response-timeout 502 503 504"


def capacity_weights(specs: Sequence[ServerSpec]) -> dict[str, int]:
    """HAProxy weights proportional to each server's capacity, the largest 256 (HAProxy's maximum), each at least 1."""
    top = max(int(s.capacity or 1) for s in specs)
    return {s.server_id: max(1, round(256 * int(s.capacity or 1) / top)) for s in specs}


#: The faults a race can inject (``None``: steady state).
FAULTS = (None, "crash", "hang", "slow", "drain")


def _gateway_drain(url: str, server_id: str) -> None:
    """Tell the gateway to drain a server (``POST /admin/drain``, no timeout)."""
    request = urllib.request.Request(url + "/admin/drain", data=json.dumps({"server_id": server_id, "timeout": None}).encode(),
                                     method="POST", headers={"Authorization": f"Bearer {RACE_ADMIN_KEY}",
                                                             "Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as answer:
        answer.read()


@dataclass(frozen=True)
class RaceRow:
    """One balancer's run: its label, the summary of its results, and each server's share of requests."""

    label: str
    summary: LoadSummary
    shares: dict[str, int]
    results: tuple[LoadResult, ...]
    seed: int = 0

    def line(self) -> str:
        shares = ", ".join(f"{k} {v}" for k, v in sorted(self.shares.items()))
        return f"{self.summary.line(f'{self.label} (seed {self.seed})')}; served by {shares}"


#: The figures :func:`aggregate` gives intervals for (LoadSummary fields).
AGGREGATED = ("throughput", "ttft_p50", "ttft_p99", "e2e_p50", "e2e_p99", "added_p50", "added_p99")


def aggregate(rows: Sequence[RaceRow], level: float = 0.95) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Per balancer label, each figure of :data:`AGGREGATED` as ``(mean, low, high)`` over the seeds.

    A t interval of the mean over seeds (one run per seed: independent
    draws) at ``level``; with one seed, ``low = high = mean``.  Errors are
    added up as ``errors`` ``(total, total, total)``.  O(rows).
    """
    from solution.sim.theory import mean_confidence_interval

    by_label: dict[str, list[RaceRow]] = {}
    for row in rows:
        by_label.setdefault(row.label, []).append(row)
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    for label, group in by_label.items():
        figures: dict[str, tuple[float, float, float]] = {}
        for name in AGGREGATED:
            values = [getattr(r.summary, name) for r in group]
            if len(values) >= 2 and all(v == v for v in values):
                figures[name] = mean_confidence_interval(values, level)
            else:
                mean = sum(values) / len(values)
                figures[name] = (mean, mean, mean)
        total = float(sum(r.summary.sent - r.summary.ok for r in group))
        figures["errors"] = (total, total, total)
        out[label] = figures
    return out


def _gateway_config(fleet: Fleet, specs: Sequence[ServerSpec], *, strategy: str, queue_wait: float, seed: int,
                    attempt_timeout: float = 300.0, estimate: str = "max_tokens") -> dict[str, object]:  # fmt: skip
    from solution.sim.gpus import gpu_preset

    return {
        "backends": [{"server_id": s.server_id, "url": fleet.url(s.server_id), "capacity": s.capacity,
                      "gpu_memory_gb": gpu_preset(s.gpu).memory_gb, "gpu": s.gpu, "model": s.model} for s in specs],
        "keys": {RACE_KEY: {"tenant": "race"}},
        "admin_key": RACE_ADMIN_KEY,
        "strategy": strategy,
        "queue": {"max_depth": 100_000, "max_wait": queue_wait},
        "health": {"interval": 1.0, "timeout": 0.5},
        "max_prompt_tokens": 1_000_000,
        "max_body_bytes": 64_000_000,
        "max_max_tokens": 1_000_000,
        "timeouts": {"attempt": attempt_timeout},
        "estimate": estimate,
        "seed": seed,
    }  # fmt: skip


@contextmanager
def _gateway_process(config: Mapping[str, object], name: str) -> Iterator[tuple[str, ManagedProcess]]:
    """``python -m solution.gateway`` with ``config`` on a free port, quiet (``--log-level WARNING``, no line per request).

    Yields its base URL and its process once ``/health`` answers; stops it
    (and removes the configuration file) on the way out, whatever happens.
    """
    with tempfile.TemporaryDirectory(prefix="lb-race-gw-") as tmp:
        path = Path(tmp) / "gateway.json"
        path.write_text(json.dumps(config))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "solution.gateway", "--config", str(path), "--port", str(port), "--log-level", "WARNING"]
        with ManagedProcess(argv, name=name, ready_url=url + "/health", ports=(port,)) as proc:
            yield url, proc


def _idle(fleet: Fleet, timeout: float = 60.0) -> None:
    """Wait until no server runs or queues a request (``/health``'s running and waiting are 0)."""
    deadline = time.monotonic() + timeout
    while True:
        busy = {}
        for sid, url in fleet.urls.items():
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                    data = json.loads(answer.read())
            except OSError:
                continue  # a down server is idle
            if data.get("running", 0) or data.get("waiting", 0):
                busy[sid] = (data.get("running"), data.get("waiting"))
        if not busy:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the fleet was still busy {timeout} s after a run: {busy}")
        time.sleep(0.05)


def _row(label: str, results: list[LoadResult], seed: int = 0) -> RaceRow:
    return RaceRow(label, summarize(results), dict(Counter(r.server or "-" for r in results)), tuple(results), seed)


def race_scenario(*, requests: int = 300, load: float = 0.7, fleet: Mapping[str, int] | None = None,
                  max_output_tokens: int = 512) -> object:  # fmt: skip
    """The race's scenario: :func:`solution.sim.race.heterogeneous` on ``fleet``, outputs clipped at ``max_output_tokens``.

    The clip is part of the scenario (not applied to the requests after
    drawing them), so the arrival rate that makes ``load`` is computed for
    the tokens actually sent, and the simulator and the HTTP replay see the
    same requests at the same times.
    """
    from dataclasses import replace

    from solution.sim.race import heterogeneous
    from solution.core.validate import require_int

    require_int(max_output_tokens, "max_output_tokens", minimum=32)
    scenario = heterogeneous(requests=requests, load=load, fleet=dict(fleet or DEFAULT_FLEET))
    tiers = tuple(replace(t, output=replace(t.output, high=max_output_tokens)) for t in scenario.workload.tiers)
    return replace(scenario, workload=replace(scenario.workload, tiers=tiers))


#: The Azure trace file the race replays by default (read in place, never copied; CC-BY 4.0, see :func:`azure_scenario`).
AZURE_FILE = "AzureLLMInferenceTrace_conv.csv"


@dataclass(frozen=True)
class TraceWindow(TraceWorkload):
    """A trace replay of rows ``[start, start + count)``, its gaps divided by ``speedup``, tokens clipped.

    A :class:`~solution.sim.trace.TraceWorkload` (so a
    :class:`~solution.sim.scenario.Scenario` takes it as a trace replay, with
    its own arrival times); the file is read in place and parsed once.
    """

    start: int = 0
    count: int = 300
    speedup: float = 1.0
    max_prompt_tokens: int = 8192
    max_output_tokens: int = 512

    def generate(self, rng_tokens: object, rng_arrivals: object, request_rate: object = None) -> Requests:
        """The window's requests (the random streams are unused: a replay is fixed).  O(count) after the first parse."""
        if request_rate is not None:
            raise ValueError("a trace window has its own arrival times (sped up by speedup), not a load")
        full = load_azure_trace(self.path)
        end = self.start + self.count
        if end > len(full.arrival):
            raise ValueError(f"the trace has {len(full.arrival)} rows; rows {self.start}..{end} asked")
        arrival = full.arrival[self.start:end]
        n = self.count
        return Requests(arrival=(arrival - arrival[0]) / self.speedup,
                        prompt_tokens=np.clip(full.prompt_tokens[self.start:end], 1, self.max_prompt_tokens),
                        output_tokens=np.clip(full.output_tokens[self.start:end], 1, self.max_output_tokens),
                        tier=np.zeros(n, dtype=np.int16), tier_names=full.tier_names,
                        session=np.full(n, -1, dtype=np.int64), think=np.zeros(n))  # fmt: skip


def azure_scenario(path: str | Path, *, window: int = 0, requests: int = 300, load: float = 0.7,
                   fleet: Mapping[str, int] | None = None, max_prompt_tokens: int = 8192,
                   max_output_tokens: int = 512) -> object:  # fmt: skip
    """A window of the Azure LLM inference 2023 trace on the race's fleet, sped up to offer ``load`` per server.

    Rows ``[window * requests, (window + 1) * requests)`` of the CSV at
    ``path`` (read in place; the file is never copied), prompts clipped at
    ``max_prompt_tokens`` and outputs at ``max_output_tokens``.  The
    window's arrivals keep their real order and gaps (bursts included),
    divided by one speed-up factor chosen so that the window's mean arrival
    rate is ``load`` times what the fleet completes with full batches on
    these requests (:meth:`solution.sim.scenario.Scenario.request_rate`,
    as the simulator's ``load`` means).  Estimates are off as in
    :func:`race_scenario` (the simulator's; the gateway is told the true
    ``max_tokens``).  O(rows of the trace) the first time (parsed once).

    Credit (CC-BY 4.0): Patel et al., "Splitwise: Efficient generative LLM
    inference using phase splitting", ISCA 2024, and the Azure Public Dataset
    (github.com/Azure/AzurePublicDataset).

    Raises:
        FileNotFoundError: no trace at ``path`` (with where to download it).
        ValueError: a window beyond the trace, or a bad number.
    """
    from dataclasses import replace

    from solution.core.validate import require_int
    from solution.sim.cluster import Cluster
    from solution.sim.scenario import EstimateError, Scenario
    from solution.sim.workload import OUTPUT_ESTIMATE_SIGMA

    require_int(window, "window", minimum=0)
    require_int(requests, "requests", minimum=2)
    workload = TraceWindow(str(path), start=window * requests, count=requests, max_prompt_tokens=max_prompt_tokens,
                   max_output_tokens=max_output_tokens)  # fmt: skip
    raw = workload.generate(None, None)
    span = float(raw.arrival[-1] - raw.arrival[0])
    if span <= 0:
        raise ValueError(f"trace window {window} has all its {requests} arrivals at one instant")
    base = Scenario(Cluster.mixed(dict(fleet or DEFAULT_FLEET)), workload, load=None,
                    estimate=EstimateError(sigma=OUTPUT_ESTIMATE_SIGMA), name=f"azure window {window}")  # fmt: skip
    from solution.sim.race import heterogeneous  # the same cluster with a generated workload: a load sets its rate

    wanted = heterogeneous(requests=requests, load=load, fleet=dict(fleet or DEFAULT_FLEET)).request_rate(raw.prompt_tokens, raw.output_tokens)
    speedup = wanted / ((requests - 1) / span)
    return replace(base, workload=replace(workload, speedup=speedup))


def simulated(scenario: object, strategies: Sequence[str], *, seed: int = 0) -> dict[str, object]:
    """The simulator's run of the race's scenario for each gateway strategy: ``{strategy: Summary}``.

    The same requests, arrivals and GPU models as the HTTP race (model
    seconds; multiply by the time scale for wall seconds), routed by the
    same strategy class with the same latency models, with no queue, no
    HTTP, no processes: where the HTTP figures differ, the difference is
    what the real path adds (parsing, proxying, scheduling on shared cores,
    probes) or what the simulator leaves out.  O(requests log requests).
    """
    from solution.core.routing import RouterFactory
    from solution.gateway.config import STRATEGIES
    from solution.sim.race import latency_hints
    from solution.sim.runner import simulate

    import solution
    from solution.core import routing

    models = latency_hints(scenario)  # type: ignore[arg-type]
    out: dict[str, object] = {}
    for name in strategies:
        cls = getattr(solution, STRATEGIES[name], None) or getattr(routing, STRATEGIES[name])
        out[name] = simulate(scenario, RouterFactory(cls, models=models), seed=seed).summary()  # type: ignore[arg-type]
    return out


@dataclass(frozen=True)
class _Jittered(Workload):
    """A workload whose drawn arrivals each move later by a uniform draw in ``[0, jitter]`` (stream ``jitter_seed``)."""

    jitter: float = 0.0
    jitter_seed: int = 0

    def generate(self, rng_tokens: np.random.Generator, rng_arrivals: np.random.Generator,
                 request_rate: Callable[[np.ndarray, np.ndarray], float] | None = None) -> Requests:  # fmt: skip
        from dataclasses import replace

        requests = super().generate(rng_tokens, rng_arrivals, request_rate)
        shift = np.random.default_rng(self.jitter_seed).uniform(0.0, self.jitter, len(requests.arrival))
        return replace(requests, arrival=requests.arrival + shift)


def jitter_spread(scenario: object, strategies: Sequence[str], *, seed: int, jitter: float = 0.002,
                  draws: int = 10) -> dict[str, list[float]]:  # fmt: skip
    """The simulator's e2e p99 when every arrival moves by up to ``jitter`` seconds: ``{strategy: [p99 per draw]}``.

    What the real path does to a replay (the load generator's timers, the
    gateway's event loop and the shared cores move each request by a few
    milliseconds), played in the simulator: the same requests (``seed``'s
    draws), each arrival shifted by a uniform draw in ``[0, jitter]``
    (draw ``k`` seeded with ``k``).  A strategy whose choice hangs on the
    order of near-simultaneous arrivals (least-connections breaks load
    ratio ties by it) spreads; one that prices requests barely moves.
    O(draws x strategies x simulation).
    """
    from dataclasses import fields, replace

    base = scenario.workload  # type: ignore[attr-defined]
    out: dict[str, list[float]] = {name: [] for name in strategies}
    for k in range(draws):
        workload = _Jittered(**{f.name: getattr(base, f.name) for f in fields(base)}, jitter=jitter, jitter_seed=k)
        for name, summary in simulated(replace(scenario, workload=workload), strategies, seed=seed).items():  # type: ignore[type-var]
            out[name].append(summary.e2e_p99)  # type: ignore[attr-defined]
    return out


def race(
    *,
    requests: int = 300,
    load: float = 0.7,
    seed: int = 0,
    time_scale: float = 1.0,
    fleet: Mapping[str, int] | None = None,
    strategies: Sequence[str] = ("predictive", "least_connections"),
    max_output_tokens: int = 512,
    queue_wait: float = 10.0,
    max_seconds: float = 120.0,
    model: str | None = None,
    fault: str | None = None,
    fault_server: str | None = None,
    fault_at: float = 0.3,
    slow_factor: float = 4.0,
    server_timeout: float = 10.0,
    seeds: Sequence[int] | None = None,
    haproxy: Sequence[str] = HAPROXY_SETUPS,
    log: object = None,
    scenario: object = None,
    estimates: bool = False,
) -> list[RaceRow]:
    """Run the race (see the module) and return one row per balancer and seed: each gateway strategy, then HAProxy.

    ``fleet`` maps GPU preset names to counts (default :data:`DEFAULT_FLEET`);
    the scenario is :func:`solution.sim.race.heterogeneous` with ``requests``
    at ``load`` per server, drawn with ``seed`` (or once per seed of
    ``seeds``, each with fresh balancers: rows come seed by seed, and
    :func:`aggregate` gives intervals over them); outputs are clipped at
    ``max_output_tokens``.  ``log`` (a file, e.g. ``sys.stdout``) gets one
    line per finished run.  ``fault`` (see the module: ``crash``, ``hang``,
    ``slow``, ``drain`` or ``None``) hits ``fault_server`` at ``fault_at``
    (a fraction of the arrival window) in every balancer's run.
    ``server_timeout``: HAProxy's ``timeout server`` (seconds without a
    byte from the server: what ends a stream from a hung server; the
    gateway relies on its health probes and its attempt bound).
    ``haproxy``: which HAProxy set-ups run (:data:`HAPROXY_SETUPS`:
    ``"leastconn"``, every weight 1, HAProxy's default; ``"weighted"``,
    weights proportional to capacity, what the course's least-connections
    compares; ``"weighted+retry"``, the same with ``retry-on``
    :data:`L7_RETRY_ON`: a request whose server died or stayed silent for
    ``server_timeout`` before answering is re-sent, as the gateway re-sends
    one that has not streamed).  ``scenario``: another workload instead
    of :func:`race_scenario`'s, a :class:`~solution.sim.scenario.Scenario`
    or a function ``seed -> Scenario`` (e.g. a window of the Azure trace
    per seed: :func:`azure_scenario`); its cluster is the fleet, and
    ``requests``, ``load``, ``fleet`` and ``max_output_tokens`` are then
    unused.  ``estimates``: each request carries the simulator's output
    estimate for its seed (the scenario's ``EstimateError``) in the
    ``X-Output-Tokens-Estimate`` header, and the gateway routes and prices
    on it (``estimate: "header"``) instead of on ``max_tokens``, which
    stays the true length the servers generate; HAProxy ignores the header
    (it counts connections, not tokens).  Without it the gateway knows each
    output exactly, while the simulator's rows use the estimate.
    Every process is stopped before it returns, whatever happens.

    Raises:
        FileNotFoundError: haproxy is not installed (with the install command).
        ValueError / TypeError: a bad argument.
    """
    from solution.gateway.procs import DEFAULT_MODEL

    if haproxy_binary() is None:
        raise FileNotFoundError(f"the race needs haproxy; install it with: {HAPROXY_INSTALL}")
    if fault not in FAULTS:
        raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
    if isinstance(fault_at, bool) or not isinstance(fault_at, (int, float)) or not 0 <= fault_at <= 1:
        raise ValueError(f"fault_at is a fraction of the arrival window in [0, 1], got {fault_at!r}")
    seeds = [seed] if seeds is None else list(seeds)
    if not seeds or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds):
        raise ValueError(f"seeds must be ints >= 0 (at least one), got {seeds!r}")
    if scenario is None:
        fixed = race_scenario(requests=requests, load=load, fleet=fleet, max_output_tokens=max_output_tokens)
        make: Callable[[int], object] = lambda x: fixed  # noqa: E731
    elif callable(scenario):
        make = scenario
    else:
        make = lambda x: scenario  # noqa: E731
    scenarios = {x: make(x) for x in seeds}
    scenario = scenarios[seeds[0]]
    capacities = scenario.capacities()  # type: ignore[attr-defined]
    model = model or DEFAULT_MODEL
    specs = [ServerSpec(s.server_id, gpu=s.gpu, model=model, capacity=int(c), time_scale=time_scale, seed=i)
             for i, (s, c) in enumerate(zip(scenario.cluster.servers, capacities))]  # type: ignore[attr-defined]  # fmt: skip
    if isinstance(haproxy, str) or any(h not in HAPROXY_SETUPS for h in haproxy):
        raise ValueError(f"haproxy must be a list of {HAPROXY_SETUPS}, got {haproxy!r}")
    if not isinstance(estimates, bool):
        raise TypeError(f"estimates must be a bool, got {type(estimates).__name__}")
    sent = {x: from_sim_workload(scenarios[x], seed=x, time_scale=time_scale, api_key=RACE_KEY, estimates=estimates)
            for x in seeds}  # fmt: skip
    rows: list[RaceRow] = []
    target = fault_server or max(specs, key=lambda s: (s.capacity or 0, s.server_id)).server_id
    if target not in {s.server_id for s in specs}:
        raise ValueError(f"fault_server {target!r} is not in the fleet {[s.server_id for s in specs]}")

    def run(label: str, url: str, servers: Fleet, drain: Callable[[str], None], seed: int) -> None:
        load_requests = sent[seed]
        when = fault_at * (load_requests[-1].at if load_requests else 0.0)
        inject = {"crash": lambda: servers.fault(target, "crash"), "hang": lambda: servers.fault(target, "hang"),
                  "slow": lambda: servers.fault(target, "slow", factor=slow_factor), "drain": lambda: drain(target),
                  None: lambda: None}[fault]  # fmt: skip
        timer = threading.Timer(when, inject)
        timer.daemon = True
        if fault is not None:
            timer.start()
        try:
            results = run_replay(url, load_requests, max_requests=len(load_requests), max_seconds=max_seconds,
                                 request_timeout=max_seconds)  # fmt: skip
        finally:
            timer.cancel()
            if timer.is_alive():
                timer.join()
        rows.append(_row(label + (f", {fault} {target}" if fault else ""), results, seed))
        if log is not None:
            print(rows[-1].line(), file=log, flush=True)  # type: ignore[arg-type]
        if fault == "crash":
            servers.restart(target)
        elif fault in ("hang", "slow"):
            servers.fault(target, "clear")

    with start_fleet(specs) as servers:
        for x in seeds:
            for strategy in strategies:  # a fresh gateway per run: a drain or a learned state does not carry over
                config = _gateway_config(servers, specs, strategy=strategy, queue_wait=queue_wait, seed=x, attempt_timeout=max_seconds,
                                         estimate="header" if estimates else "max_tokens")  # fmt: skip
                with _gateway_process(config, f"gateway ({strategy})") as (url, _):
                    _idle(servers)
                    run(f"gateway {strategy}", url, servers, lambda sid, url=url: _gateway_drain(url, sid), x)  # type: ignore[misc]
            for setup in haproxy:
                _idle(servers)
                weights = capacity_weights(specs) if setup.startswith("weighted") else None
                retry_on = L7_RETRY_ON if setup.endswith("+retry") else "conn-failure"
                with HAProxy(servers.urls, maxconn_per_server={s.server_id: int(s.capacity or 1) for s in specs},
                             timeout_queue=queue_wait, check_interval=1.0, timeout_server=server_timeout,
                             weights=weights, retry_on=retry_on) as proxy:  # fmt: skip
                    label = "haproxy leastconn" + (" weighted" if weights else "")
                    run(label + (" + L7 retries" if setup.endswith("+retry") else ""), proxy.url, servers, proxy.drain, x)
    return rows


# -- overhead and capacity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overhead:
    """Per-request latency (one request at a time, 1 prompt token, 1 output token, streamed) by target, in seconds.

    ``p50``/``p99``: e2e percentiles per target (``direct``, ``gateway``,
    ``haproxy``); :meth:`added` is a balancer's percentile minus the direct
    one (what the hop costs); :meth:`ratio` the gateway's added latency over
    HAProxy's.  ``cpu``: CPU seconds per request of the process that served
    each target (``direct``: the server; else the balancer), from
    /proc/<pid>/stat: unlike latency on a shared machine, it does not move
    with the other processes' load.
    """

    requests: dict[str, int]
    p50: dict[str, float]
    p99: dict[str, float]
    cpu: dict[str, float] = field(default_factory=dict)

    def added(self, target: str, q: str = "p50") -> float:
        table = self.p50 if q == "p50" else self.p99
        return table[target] - table["direct"]

    def ratio(self, q: str = "p50") -> float:
        """The gateway's added latency over HAProxy's; NaN when HAProxy's is not above 10 us (within the noise)."""
        base = self.added("haproxy", q)
        return self.added("gateway", q) / base if base > 1e-5 else math.nan

    def lines(self) -> list[str]:
        out = [f"{t:<8} {self.requests[t]:>6} requests  p50 {self.p50[t] * 1e3:6.2f} ms  p99 {self.p99[t] * 1e3:6.2f} ms"
               + ("" if t == "direct" else f"  added p50 {self.added(t) * 1e3:+.2f} ms, p99 {self.added(t, 'p99') * 1e3:+.2f} ms")
               for t in ("direct", "gateway", "haproxy")]  # fmt: skip
        ratios = [f"{q} " + ("n/a (HAProxy's added time is within the noise)" if math.isnan(self.ratio(q)) else f"{self.ratio(q):.1f}x")
                  for q in ("p50", "p99")]  # fmt: skip
        out.append("gateway / haproxy added latency: " + ", ".join(ratios))
        if self.cpu:
            out.append(_cpu_line(self.cpu))
        return out


@dataclass(frozen=True)
class Capacity:
    """Requests per second sustained by closed-loop clients, by target (``direct`` = both servers called straight)."""

    concurrency: int
    rate: dict[str, float]
    errors: dict[str, int]
    cpu: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"{t:<8} {self.rate[t]:7.0f} req/s ({self.errors[t]} errors)" for t in ("direct", "gateway", "haproxy")]
        out.append(f"gateway / haproxy: {self.rate['gateway'] / self.rate['haproxy']:.2f}x the requests per second "
                   f"({self.concurrency} clients)")  # fmt: skip
        if self.cpu:
            out.append(_cpu_line(self.cpu))
        return out


def _cpu_line(cpu: Mapping[str, float]) -> str:
    ratio = cpu["gateway"] / cpu["haproxy"] if cpu.get("haproxy", 0) > 0 else math.nan
    return (f"CPU per request: server {cpu['direct'] * 1e3:.3f} ms, gateway {cpu['gateway'] * 1e3:.3f} ms, "
            f"HAProxy {cpu['haproxy'] * 1e3:.3f} ms (gateway / HAProxy {ratio:.1f}x)")  # fmt: skip


def _cpu_seconds(pids: Sequence[int | None]) -> float:
    """User + system CPU seconds used so far by these processes (/proc/<pid>/stat fields 14 and 15; 0 for a gone one)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        if pid is None:
            continue
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime: fields 14, 15 counting from 1
    return total


def _fast_specs(n: int) -> list[ServerSpec]:
    """Servers whose own time is negligible (time scale 1e-4, room for 512 in flight): the hop is what is measured."""
    return [ServerSpec(f"fast{i}", gpu="H100-80GB", capacity=512, time_scale=1e-4, seed=i) for i in range(n)]


@contextmanager
def _balancers(servers: Fleet, specs: Sequence[ServerSpec]) -> Iterator[dict[str, tuple[str, int | None]]]:
    """A gateway (least_connections) and HAProxy in front of ``servers``; yields ``{name: (url, pid)}``; stops both."""
    with ExitStack() as stack:
        config = _gateway_config(servers, specs, strategy="least_connections", queue_wait=10.0, seed=0)
        url, gateway = stack.enter_context(_gateway_process(config, "gateway"))
        proxy = stack.enter_context(HAProxy(servers.urls, maxconn_per_server={s.server_id: int(s.capacity or 1) for s in specs},
                                            check_interval=1.0))  # fmt: skip
        yield {"gateway": (url, gateway.pid), "haproxy": (proxy.url, proxy.pid)}


def overhead(*, seconds: float = 2.0, rounds: int = 3, log: object = None) -> Overhead:
    """What one hop adds per request: direct vs gateway vs HAProxy, one request at a time (see :class:`Overhead`).

    One fast server (its own time negligible); each round runs ``seconds``
    of closed loop (concurrency 1) against each target in turn, so drift on
    a shared machine hits all three alike.  Every process is stopped before
    it returns.
    """
    import asyncio

    from solution.gateway.loadgen import closed_loop

    specs = _fast_specs(1)
    samples: dict[str, list[float]] = {"direct": [], "gateway": [], "haproxy": []}
    cpu: dict[str, float] = {"direct": 0.0, "gateway": 0.0, "haproxy": 0.0}
    with start_fleet(specs) as servers, _balancers(servers, specs) as balancers:
        server = servers.procs[specs[0].server_id].pid
        targets = {"direct": (servers.url(specs[0].server_id), server), **balancers}
        for _ in range(rounds):
            for name, (url, pid) in targets.items():
                before = _cpu_seconds([pid])
                results = asyncio.run(closed_loop(url, concurrency=1, seconds=seconds, api_key=RACE_KEY))
                cpu[name] += _cpu_seconds([pid]) - before
                samples[name] += [r.e2e for r in results if r.ok and r.e2e is not None]
    import numpy as np

    result = Overhead({k: len(v) for k, v in samples.items()}, {k: float(np.percentile(v, 50)) for k, v in samples.items()},
                      {k: float(np.percentile(v, 99)) for k, v in samples.items()},
                      {k: cpu[k] / max(1, len(v)) for k, v in samples.items()})  # fmt: skip
    if log is not None:
        print("\n".join(result.lines()), file=log, flush=True)  # type: ignore[arg-type]
    return result


def capacity(*, concurrency: int = 64, seconds: float = 2.0, rounds: int = 3, servers: int = 2, log: object = None) -> Capacity:
    """Requests per second each target sustains with ``concurrency`` closed-loop clients (see :class:`Capacity`).

    ``servers`` fast servers (their own time negligible); ``direct`` splits
    the clients over the servers with no balancer.  Each of ``rounds``
    rounds runs ``seconds`` against each target in turn (drift on a shared
    machine hits all alike); a rate is answers over the summed run time.
    On a small machine the load generator and the servers share the cores
    with the balancer, so the figures are what this machine sustains, not
    a balancer's ceiling: the ratio in the same run is the comparable figure.
    """
    import asyncio

    from solution.gateway.loadgen import closed_loop

    specs = _fast_specs(servers)
    answered: dict[str, int] = {}
    spent: dict[str, float] = {}
    errors: dict[str, int] = {}
    cpu: dict[str, float] = {}
    with start_fleet(specs) as fleet, _balancers(fleet, specs) as balancers:
        pids = {"direct": [fleet.procs[s.server_id].pid for s in specs], **{k: [pid] for k, (_, pid) in balancers.items()}}

        async def direct() -> list[LoadResult]:
            share = max(1, concurrency // len(specs))
            parts = await asyncio.gather(*(closed_loop(fleet.url(s.server_id), concurrency=share, seconds=seconds)
                                           for s in specs))  # fmt: skip
            return [r for part in parts for r in part]

        runs = {"direct": direct, **{name: (lambda url=url: closed_loop(url, concurrency=concurrency, seconds=seconds,
                                                                        api_key=RACE_KEY)) for name, (url, _) in balancers.items()}}
        for _ in range(rounds):
            for name, make in runs.items():
                before = _cpu_seconds(pids[name])
                results = asyncio.run(make())  # type: ignore[operator]
                cpu[name] = cpu.get(name, 0.0) + _cpu_seconds(pids[name]) - before
                ok = [r for r in results if r.ok]
                ends = [r.at + r.e2e for r in ok if r.e2e is not None]
                answered[name] = answered.get(name, 0) + len(ok)
                spent[name] = spent.get(name, 0.0) + (max(ends) if ends else seconds)
                errors[name] = errors.get(name, 0) + len(results) - len(ok)
    result = Capacity(concurrency, {k: answered[k] / spent[k] for k in answered}, errors,
                      {k: cpu[k] / max(1, answered[k]) for k in answered})  # fmt: skip
    if log is not None:
        print("\n".join(result.lines()), file=log, flush=True)  # type: ignore[arg-type]
    return result


# -- the retry storm over HTTP ---------------------------------------------------------------------------

#: The storm's retry policies: name -> the gateway's ``retry`` configuration (Envoy's defaults otherwise:
#: 25 ms base backoff, full jitter; the budget is Envoy's retry_budget defaults, 20% of active requests, at least 3).
STORM_POLICIES: Mapping[str, Mapping[str, object]] = {
    "no retries": {"max_tries": 1, "budget": None},
    "retries": {"max_tries": 3, "budget": None},
    "retries + budget": {"max_tries": 3, "budget": {"ratio": 0.2, "min_retries": 3}},
}


@dataclass(frozen=True)
class StormRun:
    """One storm run: a policy on a fleet whose servers fail ``fraction`` of attempts; what reached the servers."""

    policy: str
    fraction: float
    seed: int
    sent: int
    ok: int
    attempts: int

    @property
    def attempts_per_request(self) -> float:
        return self.attempts / self.sent if self.sent else math.nan

    @property
    def success_rate(self) -> float:
        return self.ok / self.sent if self.sent else math.nan


def _served(fleet: Fleet) -> int:
    """Requests the fleet's servers have answered so far, every status (their ``inference_requests_total``)."""
    total = 0
    for url in fleet.urls.values():
        with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith("inference_requests_total{"):
                    total += int(float(line.rsplit(" ", 1)[1]))
    return total


def storm(*, fractions: Sequence[float] = (0.5, 0.9), policies: Sequence[str] = tuple(STORM_POLICIES),
          seeds: Sequence[int] = (0, 1, 2), requests: int = 150, load: float = 0.5, fleet: Mapping[str, int] | None = None,
          time_scale: float = 1.0, max_output_tokens: int = 128, max_seconds: float = 120.0,
          log: object = None) -> list[StormRun]:  # fmt: skip
    """The retry storm on real sockets: servers fail ``fraction`` of attempts (500 at once), the gateway retries or not.

    For each fraction, seed and policy of :data:`STORM_POLICIES`: a fresh
    gateway (least_connections) with that ``retry`` configuration, every
    server told ``/admin/fault {"kind": "fail", "fraction": f}``, the race's
    scenario (:func:`race_scenario`, ``requests`` at ``load``) replayed, and
    the attempts that reached the servers counted from their own
    ``/metrics`` (``inference_requests_total``, every status) before and
    after.  The gateway's outlier ejection is off
    (``consecutive_5xx`` out of reach): every server is equally sick, and
    the retry policy alone is measured.  Every process is stopped before it
    returns.  O(fractions x seeds x policies) runs.
    """
    unknown = [p for p in policies if p not in STORM_POLICIES]
    if unknown or isinstance(policies, str):
        raise ValueError(f"policies must be a list of {list(STORM_POLICIES)}, got {policies!r}")
    if any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f <= 1 for f in fractions):
        raise ValueError(f"fractions must be numbers in [0, 1], got {fractions!r}")
    from solution.gateway.procs import DEFAULT_MODEL

    scenario = race_scenario(requests=requests, load=load, fleet=fleet, max_output_tokens=max_output_tokens)
    specs = [ServerSpec(s.server_id, gpu=s.gpu, model=DEFAULT_MODEL, capacity=int(c), time_scale=time_scale, seed=i)
             for i, (s, c) in enumerate(zip(scenario.cluster.servers, scenario.capacities()))]  # type: ignore[attr-defined]  # fmt: skip
    runs: list[StormRun] = []
    with start_fleet(specs) as servers:
        for x in seeds:
            sent = from_sim_workload(scenario, seed=x, time_scale=time_scale, api_key=RACE_KEY)
            for f in fractions:
                for policy in policies:
                    config = _gateway_config(servers, specs, strategy="least_connections", queue_wait=10.0, seed=x,
                                             attempt_timeout=max_seconds)  # fmt: skip
                    config["retry"] = dict(STORM_POLICIES[policy])
                    config["health"] = {"interval": 1.0, "timeout": 0.5, "consecutive_5xx": 1_000_000_000}
                    with _gateway_process(config, f"gateway (storm, {policy})") as (url, _):
                        _idle(servers)
                        for sid in servers.urls:
                            servers.fault(sid, "fail", fraction=float(f))
                        try:
                            before = _served(servers)
                            results = run_replay(url, sent, max_requests=len(sent), max_seconds=max_seconds,
                                                 request_timeout=max_seconds)  # fmt: skip
                            _idle(servers)
                            attempts = _served(servers) - before
                        finally:
                            for sid in servers.urls:
                                servers.fault(sid, "clear")
                    run = StormRun(policy, float(f), x, len(results), sum(r.ok for r in results), attempts)
                    runs.append(run)
                    if log is not None:
                        print(f"storm: servers fail {f:.0%}, {policy:<17} (seed {x}): {run.ok}/{run.sent} ok, "
                              f"{run.attempts} attempts reached the servers ({run.attempts_per_request:.2f} per request)",
                              file=log, flush=True)  # type: ignore[arg-type]  # fmt: skip
    return runs


def storm_simulated(*, fractions: Sequence[float], seeds: Sequence[int], requests: int = 150, load: float = 0.5,
                    fleet: Mapping[str, int] | None = None, max_output_tokens: int = 128) -> list[StormRun]:  # fmt: skip
    """The simulator's side of :func:`storm`: the same requests, fleet, fractions and policies (``solution.sim.retrystorm.storm_on``).

    ``attempts`` are the simulated tries (the simulator counts tries, not
    HTTP answers); each run is milliseconds.  O(fractions x seeds x policies) simulations.
    """
    from solution.sim.retrystorm import storm_on

    scenario = race_scenario(requests=requests, load=load, fleet=fleet, max_output_tokens=max_output_tokens)
    out = []
    for x in seeds:
        for f in fractions:
            for policy in STORM_POLICIES:
                run = storm_on(scenario, float(f), policy, seed=x)  # type: ignore[arg-type]
                out.append(StormRun(policy, float(f), x, requests, round(run.success_rate * requests),
                                    round(run.attempts_per_request * requests)))  # fmt: skip
    return out


def storm_part(runs: Sequence[StormRun], *, config: Mapping[str, object],
               simulated_runs: Sequence[StormRun] = ()) -> dict[str, object]:  # fmt: skip
    """The fields of a ``storm`` part: per (policy, fraction), attempts per request and success, mean [95% t] over seeds.

    The success rate's interval is clipped to [0, 1] (a share; with few
    seeds the t interval can reach past either end).  ``simulated_runs``
    (from :func:`storm_simulated`) become the part's ``simulator`` rows.
    """
    return {"config": dict(config), "rows": _storm_rows(runs), "simulator": _storm_rows(simulated_runs)}


def _storm_rows(runs: Sequence[StormRun]) -> list[dict[str, object]]:
    from solution.sim.theory import mean_confidence_interval

    def interval(values: Sequence[float]) -> list[float]:
        return [values[0]] * 3 if len(values) == 1 else list(mean_confidence_interval(values, 0.95))

    groups: dict[tuple[str, float], list[StormRun]] = {}
    for r in runs:
        groups.setdefault((r.policy, r.fraction), []).append(r)
    rows = [{"policy": policy, "fraction": f, "runs": len(g), "requests": sum(r.sent for r in g),
             "attempts_per_request": interval([r.attempts_per_request for r in g]),
             "success_rate": [min(1.0, max(0.0, v)) for v in interval([r.success_rate for r in g])]}
            for (policy, f), g in sorted(groups.items(), key=lambda kv: (kv[0][1], list(STORM_POLICIES).index(kv[0][0])))]  # fmt: skip
    return rows


# -- recorded parts (solution.gateway.results) -----------------------------------------------------------


def race_part(rows: Sequence[RaceRow], sims: Mapping[str, Sequence[object]], *, config: Mapping[str, object],
              time_scale: float = 1.0) -> dict[str, object]:  # fmt: skip
    """The ``rows``/``simulator``/``per_seed`` of a race part (:mod:`solution.gateway.results`) from a race's rows.

    ``sims``: per strategy, the simulator's summaries (one per seed; model
    seconds, turned into wall seconds with ``time_scale``).  O(rows).
    """
    from solution.sim.theory import mean_confidence_interval

    def interval(values: Sequence[float]) -> list[float] | None:
        values = [v for v in values if v == v]
        if not values:
            return None
        if len(values) == 1:
            return [values[0]] * 3
        return list(mean_confidence_interval(values, 0.95))

    by_label: dict[str, list[RaceRow]] = {}
    for row in rows:
        by_label.setdefault(row.label, []).append(row)
    out_rows = []
    for label, group in by_label.items():
        errors: Counter[str] = Counter()
        for r in group:
            errors.update(r.summary.errors)
        out_rows.append({"balancer": label, "runs": len(group), "sent": sum(r.summary.sent for r in group),
                         "ok": sum(r.summary.ok for r in group), "errors": dict(errors),
                         **{k: interval([getattr(r.summary, k) for r in group]) for k in AGGREGATED}})  # fmt: skip
    k = time_scale
    sim_rows = [{"balancer": f"simulator {name}", "runs": len(runs), "sent": sum(s.requests for s in runs),  # type: ignore[attr-defined]
                 "ok": sum(s.completed for s in runs),  # type: ignore[attr-defined]
                 "throughput": interval([s.throughput_rps / k for s in runs]),  # type: ignore[attr-defined]
                 "ttft_p50": interval([s.ttft_p50 * k for s in runs]), "ttft_p99": interval([s.ttft_p99 * k for s in runs]),  # type: ignore[attr-defined]
                 "e2e_p50": interval([s.e2e_p50 * k for s in runs]), "e2e_p99": interval([s.e2e_p99 * k for s in runs])}  # type: ignore[attr-defined]
                for name, runs in sims.items() if runs]  # fmt: skip
    per_seed = [{"balancer": r.label, "seed": r.seed, "ok": r.summary.ok, "sent": r.summary.sent, "e2e_p99": r.summary.e2e_p99,
                 "ttft_p99": r.summary.ttft_p99, "shares": dict(r.shares)} for r in rows]  # fmt: skip
    return {"config": dict(config), "rows": out_rows, "simulator": sim_rows, "per_seed": per_seed}


def overhead_part(o: Overhead) -> dict[str, object]:
    """The fields of an ``overhead`` part (milliseconds) from :func:`overhead`'s result."""
    ms = lambda table: {t: table[t] * 1e3 for t in ("direct", "gateway", "haproxy")}  # noqa: E731
    cpu = {t: o.cpu.get(t, 0.0) * 1e3 for t in ("direct", "gateway", "haproxy")}
    return {"requests": dict(o.requests), "p50_ms": ms(o.p50), "p99_ms": ms(o.p99),
            "added_p50_ms": {t: o.added(t) * 1e3 for t in ("gateway", "haproxy")},
            "added_p99_ms": {t: o.added(t, "p99") * 1e3 for t in ("gateway", "haproxy")}, "cpu_ms_per_request": cpu,
            "ratio": {"added_p50": o.ratio("p50"), "added_p99": o.ratio("p99"),
                      "cpu": cpu["gateway"] / cpu["haproxy"] if cpu["haproxy"] > 0 else math.nan}}  # fmt: skip


def capacity_part(c: Capacity, servers: int) -> dict[str, object]:
    """The fields of a ``capacity`` part from :func:`capacity`'s result."""
    cpu = {t: c.cpu.get(t, 0.0) * 1e3 for t in ("direct", "gateway", "haproxy")}
    return {"concurrency": c.concurrency, "servers": servers, "rps": dict(c.rate), "errors": dict(c.errors),
            "cpu_ms_per_request": cpu,
            "ratio": {"rps": c.rate["gateway"] / c.rate["haproxy"], "rps_vs_direct": c.rate["gateway"] / c.rate["direct"],
                      "cpu": cpu["gateway"] / cpu["haproxy"] if cpu["haproxy"] > 0 else math.nan}}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solution.gateway.race", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--load", type=float, default=0.7, help="offered load per server (the simulator's scenario load)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds (from --seed): intervals over them when > 1")
    parser.add_argument("--time-scale", type=float, default=1.0, help="real seconds per model second")
    parser.add_argument("--fleet", default=",".join(f"{k}:{v}" for k, v in DEFAULT_FLEET.items()),
                        help="GPU presets and counts, e.g. A10-24GB:2,H100-80GB:1")  # fmt: skip
    parser.add_argument("--strategies", default="predictive,least_connections", help="gateway strategies to race, comma-separated")
    parser.add_argument("--haproxy", default=",".join(HAPROXY_SETUPS), help="HAProxy set-ups: leastconn, weighted (comma-separated)")
    parser.add_argument("--max-output-tokens", type=int, default=512)
    parser.add_argument("--max-seconds", type=float, default=120.0, help="bound on each balancer's run (real seconds)")
    parser.add_argument("--fault", choices=[f for f in FAULTS if f], default=None, help="inject this fault in every run")
    parser.add_argument("--fault-server", default=None, help="the server to fault (default: the largest)")
    parser.add_argument("--fault-at", type=float, default=0.3, help="when, as a fraction of the arrival window")
    parser.add_argument("--overhead", action="store_true", help="also measure each balancer's added latency per request")
    parser.add_argument("--capacity", action="store_true", help="also measure the requests per second each sustains")
    parser.add_argument("--storm", action="store_true",
                        help="also run the retry storm: servers fail a fraction of attempts, the gateway retries without / with a budget")
    parser.add_argument("--storm-fractions", default="0.5,0.9", help="fractions of attempts the servers fail in the storm")
    parser.add_argument("--jitter", type=float, default=None, metavar="SECONDS",
                        help="also print the simulator's e2e p99 per seed when arrivals move by up to SECONDS (10 draws): "
                             "how much a strategy's tail hangs on the order of near-simultaneous arrivals")
    parser.add_argument("--no-race", action="store_true", help="skip the workload race (with --overhead / --capacity)")
    parser.add_argument("--azure", default=None, metavar="CSV",
                        help="replay windows of this Azure LLM inference 2023 trace file instead (seed k: rows "
                             "[k * requests, (k + 1) * requests), sped up to offer --load; read in place, CC-BY 4.0)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also record each part run here in a results file (solution.gateway.results; other parts kept)")
    parser.add_argument("--part", default=None, help="record the race under this part name (default: steady, the fault's name, or azure; "
                                                     "steady_estimates or azure_estimates with --estimates)")
    parser.add_argument("--preliminary", action="store_true", help="mark the recorded parts preliminary (quick runs)")
    parser.add_argument("--estimates", action="store_true",
                        help="the gateway routes on the simulator's noisy output estimates (sent in X-Output-Tokens-Estimate) "
                             "instead of max_tokens, the true length; recorded as steady_estimates / azure_estimates")
    args = parser.parse_args(argv)
    import shlex

    from solution.gateway import results as recorded

    if args.part is not None and recorded.PART_KINDS.get(args.part) != "race":
        parser.error(f"--part must name a race part: {[k for k, v in recorded.PART_KINDS.items() if v == 'race']}")
    default_part = ("azure" if args.azure else (args.fault or "steady")) + ("_estimates" if args.estimates else "")
    if args.json and args.part is None and recorded.PART_KINDS.get(default_part) != "race":
        parser.error(f"no recorded part is named {default_part!r}: name the part with --part")
    command = "python -m solution.gateway.race " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = recorded.machine()

    def record(name: str, fields: Mapping[str, object], t0: float) -> None:
        if args.json:
            recorded.record_part(args.json, name, {"command": command, "machine": started, "took_seconds": time.monotonic() - t0,
                                                   "preliminary": args.preliminary, **fields})  # fmt: skip
            print(f"recorded part {name!r} in {args.json}", flush=True)

    fleet = {}
    for item in args.fleet.split(","):
        gpu, _, count = item.partition(":")
        fleet[gpu] = int(count or 1)
    began = time.monotonic()
    if args.overhead:
        print("overhead: one request at a time (1 prompt token, 1 output token, streamed), one fast server", flush=True)
        t0 = time.monotonic()
        record("overhead", overhead_part(overhead(log=sys.stdout)), t0)
    if args.capacity:
        print("capacity: closed-loop clients, two fast servers", flush=True)
        t0 = time.monotonic()
        record("capacity", capacity_part(capacity(log=sys.stdout), servers=2), t0)
    if args.storm:
        t0 = time.monotonic()
        fractions = [float(f) for f in args.storm_fractions.split(",") if f]
        storm_seeds = list(range(args.seed, args.seed + args.seeds))
        print(f"storm: {args.requests} requests at load {args.load}, servers fail {fractions}, seeds {storm_seeds}", flush=True)
        runs = storm(fractions=fractions, seeds=storm_seeds, requests=args.requests, load=args.load, fleet=fleet,
                     time_scale=args.time_scale, max_output_tokens=args.max_output_tokens, max_seconds=args.max_seconds,
                     log=sys.stdout)  # fmt: skip
        part = storm_part(runs, config={"requests": args.requests, "load": args.load, "fleet": fleet, "seeds": storm_seeds,
                                        "fractions": fractions, "time_scale": args.time_scale, "strategy": "least_connections",
                                        "max_output_tokens": args.max_output_tokens,
                                        "policies": {k: dict(v) for k, v in STORM_POLICIES.items()},
                                        "outlier_ejection": "off (every server equally sick)",
                                        "attempts": "servers' inference_requests_total, every status"},
                          simulated_runs=storm_simulated(fractions=fractions, seeds=storm_seeds, requests=args.requests,
                                                         load=args.load, fleet=fleet,
                                                         max_output_tokens=args.max_output_tokens))  # fmt: skip
        record("storm", part, t0)
    if args.jitter is not None:
        scenario = race_scenario(requests=args.requests, load=args.load, fleet=fleet, max_output_tokens=args.max_output_tokens)
        print(f"the simulator's e2e p99 (s) with every arrival moved by up to {args.jitter * 1e3:g} ms, 10 draws: "
              "min / median / max", flush=True)  # fmt: skip
        for x in range(args.seed, args.seed + args.seeds):
            spread = jitter_spread(scenario, [s for s in args.strategies.split(",") if s], seed=x, jitter=args.jitter)
            print(f"seed {x}: " + "; ".join(f"{name} {min(v) * args.time_scale:.2f} / {sorted(v)[len(v) // 2] * args.time_scale:.2f} / "
                                             f"{max(v) * args.time_scale:.2f}" for name, v in spread.items()), flush=True)  # fmt: skip
    if args.no_race:
        print(f"(took {time.monotonic() - began:.0f} s)")
        return 0
    race_began = time.monotonic()
    seeds = list(range(args.seed, args.seed + args.seeds))
    strategies = [s for s in args.strategies.split(",") if s]
    print(f"race: {args.requests} requests, load {args.load}, seeds {seeds}, time scale {args.time_scale}, fleet {fleet}"
          + (f", {args.fault} at {args.fault_at:.0%} of the arrivals" if args.fault else ", steady state")
          + (", Azure trace windows (seed k: window k)" if args.azure else "")
          + (", the gateway routes on the simulator's output estimates (X-Output-Tokens-Estimate)" if args.estimates
             else ", the gateway routes on max_tokens (the true output length)"), flush=True)  # fmt: skip
    if args.azure:
        scenarios = {x: azure_scenario(args.azure, window=x, requests=args.requests, load=args.load, fleet=fleet,
                                       max_output_tokens=args.max_output_tokens) for x in seeds}  # fmt: skip
        print("the Azure LLM inference trace 2023 (CC-BY 4.0: Patel et al., \"Splitwise\", ISCA 2024, and the Azure Public "
              f"Dataset), {args.azure}: windows sped up " + ", ".join(f"{x}: {sc.workload.speedup:.2f}x"  # type: ignore[attr-defined]
                                                                  for x, sc in scenarios.items()), flush=True)  # fmt: skip
    else:
        fixed = race_scenario(requests=args.requests, load=args.load, fleet=fleet, max_output_tokens=args.max_output_tokens)
        scenarios = {x: fixed for x in seeds}
    rows = race(requests=args.requests, load=args.load, seeds=seeds, time_scale=args.time_scale, fleet=fleet,
                strategies=strategies, max_output_tokens=args.max_output_tokens, max_seconds=args.max_seconds,
                fault=args.fault, fault_server=args.fault_server, fault_at=args.fault_at,
                haproxy=[h for h in args.haproxy.split(",") if h], log=sys.stdout,
                scenario=lambda x: scenarios[x], estimates=args.estimates)  # fmt: skip
    print(f"\n{'balancer':<44} {'seed':>4} {'ok/sent':>9} {'req/s':>7} {'tok/s':>7} {'TTFT p50':>9} {'TTFT p99':>9} "
          f"{'e2e p50':>8} {'e2e p99':>8} {'added p50':>10} {'added p99':>10}  errors")  # fmt: skip
    for row in rows:
        s = row.summary
        errors = ", ".join(f"{k} {v}" for k, v in sorted(s.errors.items())) or "none"
        print(f"{row.label:<44} {row.seed:>4} {s.ok:>4}/{s.sent:<4} {s.throughput:>7.1f} {s.tokens_per_second:>7.0f} "
              f"{s.ttft_p50 * 1000:>7.0f}ms {s.ttft_p99 * 1000:>7.0f}ms {s.e2e_p50:>7.2f}s {s.e2e_p99:>7.2f}s "
              f"{s.added_p50 * 1000:>8.1f}ms {s.added_p99 * 1000:>8.1f}ms  {errors}")  # fmt: skip
    sims: dict[str, list[object]] = {}
    if not args.fault:
        print("\nthe simulator on the same requests (model time x time scale; no HTTP, no processes, no queue):")
        k = args.time_scale
        for x in seeds:
            for name, sim in simulated(scenarios[x], strategies, seed=x).items():
                sims.setdefault(name, []).append(sim)
                print(f"{'simulator ' + name:<44} {x:>4} {sim.completed:>4}/{sim.requests:<4} {sim.throughput_rps / k:>7.1f} "  # type: ignore[attr-defined]
                      f"{sim.throughput_tps / k:>7.0f} {sim.ttft_p50 * k * 1000:>7.0f}ms {sim.ttft_p99 * k * 1000:>7.0f}ms "  # type: ignore[attr-defined]
                      f"{sim.e2e_p50 * k:>7.2f}s {sim.e2e_p99 * k:>7.2f}s {'':>21}  (no errors modelled)")  # type: ignore[attr-defined]  # fmt: skip
    if len(seeds) > 1:
        from solution.sim.theory import mean_confidence_interval

        print(f"\nover {len(seeds)} seeds: mean [95% interval]")
        cell = lambda m, scale, unit: f"{m[0] * scale:.2f} [{m[1] * scale:.2f}, {m[2] * scale:.2f}] {unit}"  # noqa: E731
        for label, fig in aggregate(rows).items():
            print(f"{label:<44} e2e p50 {cell(fig['e2e_p50'], 1, 's')}, e2e p99 {cell(fig['e2e_p99'], 1, 's')}, "
                  f"TTFT p99 {cell(fig['ttft_p99'], 1000, 'ms')}, added p99 {cell(fig['added_p99'], 1000, 'ms')}, "
                  f"errors {fig['errors'][0]:.0f}")  # fmt: skip
        for name, runs in sims.items():
            p50 = mean_confidence_interval([r.e2e_p50 * args.time_scale for r in runs], 0.95)  # type: ignore[attr-defined]
            p99 = mean_confidence_interval([r.e2e_p99 * args.time_scale for r in runs], 0.95)  # type: ignore[attr-defined]
            print(f"{'simulator ' + name:<44} e2e p50 {cell(p50, 1, 's')}, e2e p99 {cell(p99, 1, 's')}")
    config = {"requests": args.requests, "load": args.load, "seeds": seeds, "time_scale": args.time_scale, "fleet": fleet,
              "strategies": strategies, "haproxy": [h for h in args.haproxy.split(",") if h],
              "max_output_tokens": args.max_output_tokens, "fault": args.fault, "fault_server": args.fault_server,
              "fault_at": args.fault_at,
              "gateway_estimate": ("X-Output-Tokens-Estimate header: the simulator's estimate (EstimateError)" if args.estimates
                                   else "max_tokens: the true output length"),
              "workload": "solution.sim.race.heterogeneous" if not args.azure else f"azure trace {Path(args.azure).name}"}  # fmt: skip
    if args.azure:
        config.update(windows={str(x): {"rows": [x * args.requests, (x + 1) * args.requests],
                                        "speedup": sc.workload.speedup}  # type: ignore[attr-defined]
                               for x, sc in scenarios.items()},
                      credit="Patel et al., \"Splitwise: Efficient generative LLM inference using phase splitting\", "
                             "ISCA 2024, and the Azure Public Dataset (CC-BY 4.0)")  # fmt: skip
    record(args.part or default_part, race_part(rows, sims, config=config, time_scale=args.time_scale), race_began)
    print(f"(took {time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
