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

from solution.gateway.haproxy import HAProxy, haproxy_binary, HAPROXY_INSTALL
from solution.gateway.loadgen import LoadResult, LoadSummary, from_sim_workload, run_replay, summarize
from solution.gateway.procs import Fleet, ManagedProcess, ServerSpec, free_port, start_fleet

__all__ = [
    "race", "race_scenario", "simulated", "aggregate", "overhead", "capacity", "capacity_weights", "main",
    "RaceRow", "Overhead", "Capacity", "AGGREGATED", "HAPROXY_SETUPS", "L7_RETRY_ON", "DEFAULT_FLEET", "RACE_KEY", "FAULTS",
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
                    attempt_timeout: float = 300.0) -> dict[str, object]:  # fmt: skip
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
        "seed": seed,
    }  # fmt: skip


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
    one that has not streamed).  Every
    process is stopped before it returns, whatever happens.

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
    scenario = race_scenario(requests=requests, load=load, fleet=fleet, max_output_tokens=max_output_tokens)
    capacities = scenario.capacities()
    model = model or DEFAULT_MODEL
    specs = [ServerSpec(s.server_id, gpu=s.gpu, model=model, capacity=int(c), time_scale=time_scale, seed=i)
             for i, (s, c) in enumerate(zip(scenario.cluster.servers, capacities))]  # fmt: skip
    if isinstance(haproxy, str) or any(h not in HAPROXY_SETUPS for h in haproxy):
        raise ValueError(f"haproxy must be a list of {HAPROXY_SETUPS}, got {haproxy!r}")
    seeds = [seed] if seeds is None else list(seeds)
    if not seeds or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds):
        raise ValueError(f"seeds must be ints >= 0 (at least one), got {seeds!r}")
    sent = {x: from_sim_workload(scenario, seed=x, time_scale=time_scale, api_key=RACE_KEY) for x in seeds}
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

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="lb-race-") as tmp:
        servers = stack.enter_context(start_fleet(specs))
        for x in seeds:
            for strategy in strategies:  # a fresh gateway per run: a drain or a learned state does not carry over
                path = Path(tmp) / f"gateway-{strategy}.json"
                path.write_text(json.dumps(_gateway_config(servers, specs, strategy=strategy, queue_wait=queue_wait, seed=x,
                                                           attempt_timeout=max_seconds)))  # fmt: skip
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                argv = [sys.executable, "-m", "solution.gateway", "--config", str(path), "--port", str(port),
                        "--log-level", "WARNING"]  # fmt: skip
                with ManagedProcess(argv, name=f"gateway ({strategy})", ready_url=url + "/health", ports=(port,)):
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
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="lb-race-") as tmp:
        path = Path(tmp) / "gateway.json"
        path.write_text(json.dumps(_gateway_config(servers, specs, strategy="least_connections", queue_wait=10.0, seed=0)))
        port = free_port()
        argv = [sys.executable, "-m", "solution.gateway", "--config", str(path), "--port", str(port), "--log-level", "WARNING"]
        gateway = stack.enter_context(ManagedProcess(argv, name="gateway", ready_url=f"http://127.0.0.1:{port}/health",
                                                     ports=(port,)))  # fmt: skip
        proxy = stack.enter_context(HAProxy(servers.urls, maxconn_per_server={s.server_id: int(s.capacity or 1) for s in specs},
                                            check_interval=1.0))  # fmt: skip
        yield {"gateway": (f"http://127.0.0.1:{port}", gateway.pid), "haproxy": (proxy.url, proxy.pid)}


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
    parser.add_argument("--no-race", action="store_true", help="skip the workload race (with --overhead / --capacity)")
    args = parser.parse_args(argv)
    fleet = {}
    for item in args.fleet.split(","):
        gpu, _, count = item.partition(":")
        fleet[gpu] = int(count or 1)
    began = time.monotonic()
    if args.overhead:
        print("overhead: one request at a time (1 prompt token, 1 output token, streamed), one fast server", flush=True)
        overhead(log=sys.stdout)
    if args.capacity:
        print("capacity: closed-loop clients, two fast servers", flush=True)
        capacity(log=sys.stdout)
    if args.no_race:
        print(f"(took {time.monotonic() - began:.0f} s)")
        return 0
    seeds = list(range(args.seed, args.seed + args.seeds))
    strategies = [s for s in args.strategies.split(",") if s]
    print(f"race: {args.requests} requests, load {args.load}, seeds {seeds}, time scale {args.time_scale}, fleet {fleet}"
          + (f", {args.fault} at {args.fault_at:.0%} of the arrivals" if args.fault else ", steady state"), flush=True)  # fmt: skip
    rows = race(requests=args.requests, load=args.load, seeds=seeds, time_scale=args.time_scale, fleet=fleet,
                strategies=strategies, max_output_tokens=args.max_output_tokens, max_seconds=args.max_seconds,
                fault=args.fault, fault_server=args.fault_server, fault_at=args.fault_at,
                haproxy=[h for h in args.haproxy.split(",") if h], log=sys.stdout)  # fmt: skip
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
        scenario = race_scenario(requests=args.requests, load=args.load, fleet=fleet, max_output_tokens=args.max_output_tokens)
        k = args.time_scale
        for x in seeds:
            for name, sim in simulated(scenario, strategies, seed=x).items():
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
    print(f"(took {time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
