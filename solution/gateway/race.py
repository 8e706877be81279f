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
p50/p99, errors seen by clients, and each server's share of requests.

What each balancer is told, so the comparison is fair:

* both know each server's capacity: the gateway from its configuration
  (``capacity``, plus the GPU and model preset for the ``predictive``
  strategy's latency model), HAProxy as ``maxconn`` (more requests wait in
  its queue);
* both queue at most ``queue_wait`` seconds (the gateway's queue
  ``max_wait``, HAProxy's ``timeout queue``) and check ``/health`` every
  second;
* neither writes a log line per request (the gateway runs with
  ``--log-level WARNING``; HAProxy's configuration has no ``log``);
* the gateway is one asyncio process; HAProxy runs one thread
  (``nbthread 1``).

Steady state only (no faults) in this version.

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
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from solution.gateway.haproxy import HAProxy, haproxy_binary, HAPROXY_INSTALL
from solution.gateway.loadgen import LoadRequest, LoadResult, LoadSummary, from_sim_workload, run_replay, summarize
from solution.gateway.procs import Fleet, ManagedProcess, ServerSpec, free_port, start_fleet

__all__ = ["RaceRow", "race", "main", "DEFAULT_FLEET", "RACE_KEY"]

#: The race's default fleet: two A10s and one H100 (a mixed fleet, small enough for a 2-core machine).
DEFAULT_FLEET: Mapping[str, int] = {"A10-24GB": 2, "H100-80GB": 1}

#: The API key the load generator sends to the gateway (HAProxy ignores it).
RACE_KEY = "sk-race"


@dataclass(frozen=True)
class RaceRow:
    """One balancer's run: its label, the summary of its results, and each server's share of requests."""

    label: str
    summary: LoadSummary
    shares: dict[str, int]
    results: tuple[LoadResult, ...]

    def line(self) -> str:
        shares = ", ".join(f"{k} {v}" for k, v in sorted(self.shares.items()))
        return f"{self.summary.line(self.label)}; served by {shares}"


def _gateway_config(fleet: Fleet, specs: Sequence[ServerSpec], *, strategy: str, queue_wait: float, seed: int) -> dict[str, object]:
    from solution.sim.gpus import gpu_preset

    return {
        "backends": [{"server_id": s.server_id, "url": fleet.url(s.server_id), "capacity": s.capacity,
                      "gpu_memory_gb": gpu_preset(s.gpu).memory_gb, "gpu": s.gpu, "model": s.model} for s in specs],
        "keys": {RACE_KEY: {"tenant": "race"}},
        "strategy": strategy,
        "queue": {"max_depth": 100_000, "max_wait": queue_wait},
        "health": {"interval": 1.0, "timeout": 0.5},
        "max_prompt_tokens": 1_000_000,
        "max_body_bytes": 64_000_000,
        "max_max_tokens": 1_000_000,
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


def _row(label: str, results: list[LoadResult]) -> RaceRow:
    return RaceRow(label, summarize(results), dict(Counter(r.server or "-" for r in results)), tuple(results))


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
    log: object = None,
) -> list[RaceRow]:
    """Run the race (see the module) and return one row per balancer: each gateway strategy, then HAProxy.

    ``fleet`` maps GPU preset names to counts (default :data:`DEFAULT_FLEET`);
    the scenario is :func:`solution.sim.race.heterogeneous` with ``requests``
    at ``load`` per server, drawn with ``seed``; outputs are clipped at
    ``max_output_tokens``.  ``log`` (a file, e.g. ``sys.stdout``) gets one
    line per finished run.  Every process is stopped before it returns,
    whatever happens.

    Raises:
        FileNotFoundError: haproxy is not installed (with the install command).
        ValueError / TypeError: a bad argument.
    """
    from solution.sim.race import heterogeneous
    from solution.gateway.procs import DEFAULT_MODEL

    if haproxy_binary() is None:
        raise FileNotFoundError(f"the race needs haproxy; install it with: {HAPROXY_INSTALL}")
    scenario = heterogeneous(requests=requests, load=load, fleet=dict(fleet or DEFAULT_FLEET))
    capacities = scenario.capacities()
    model = model or DEFAULT_MODEL
    specs = [ServerSpec(s.server_id, gpu=s.gpu, model=model, capacity=int(c), time_scale=time_scale, seed=i)
             for i, (s, c) in enumerate(zip(scenario.cluster.servers, capacities))]  # fmt: skip
    load_requests = from_sim_workload(scenario, seed=seed, time_scale=time_scale, api_key=RACE_KEY,
                                      max_output_tokens=max_output_tokens)  # fmt: skip
    rows: list[RaceRow] = []

    def run(label: str, url: str) -> None:
        results = run_replay(url, load_requests, max_requests=len(load_requests), max_seconds=max_seconds,
                             request_timeout=max_seconds)  # fmt: skip
        rows.append(_row(label, results))
        if log is not None:
            print(rows[-1].line(), file=log, flush=True)  # type: ignore[arg-type]

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="lb-race-") as tmp:
        servers = stack.enter_context(start_fleet(specs))
        for strategy in strategies:
            path = Path(tmp) / f"gateway-{strategy}.json"
            path.write_text(json.dumps(_gateway_config(servers, specs, strategy=strategy, queue_wait=queue_wait, seed=seed)))
            port = free_port()
            argv = [sys.executable, "-m", "solution.gateway", "--config", str(path), "--port", str(port), "--log-level", "WARNING"]
            with ManagedProcess(argv, name=f"gateway ({strategy})", ready_url=f"http://127.0.0.1:{port}/health",
                                ports=(port,)) as gateway:  # fmt: skip
                _idle(servers)
                run(f"gateway {strategy}", f"http://127.0.0.1:{port}")
                gateway.stop()
        _idle(servers)
        with HAProxy(servers.urls, maxconn_per_server={s.server_id: int(s.capacity or 1) for s in specs},
                     timeout_queue=queue_wait, check_interval=1.0, timeout_server=max_seconds) as proxy:  # fmt: skip
            run("haproxy leastconn", proxy.url)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solution.gateway.race", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--load", type=float, default=0.7, help="offered load per server (the simulator's scenario load)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-scale", type=float, default=1.0, help="real seconds per model second")
    parser.add_argument("--fleet", default=",".join(f"{k}:{v}" for k, v in DEFAULT_FLEET.items()),
                        help="GPU presets and counts, e.g. A10-24GB:2,H100-80GB:1")  # fmt: skip
    parser.add_argument("--strategies", default="predictive,least_connections", help="gateway strategies to race, comma-separated")
    parser.add_argument("--max-output-tokens", type=int, default=512)
    parser.add_argument("--max-seconds", type=float, default=120.0, help="bound on each balancer's run (real seconds)")
    args = parser.parse_args(argv)
    fleet = {}
    for item in args.fleet.split(","):
        gpu, _, count = item.partition(":")
        fleet[gpu] = int(count or 1)
    began = time.monotonic()
    print(f"race: {args.requests} requests, load {args.load}, seed {args.seed}, time scale {args.time_scale}, fleet {fleet}",
          flush=True)  # fmt: skip
    rows = race(requests=args.requests, load=args.load, seed=args.seed, time_scale=args.time_scale, fleet=fleet,
                strategies=[s for s in args.strategies.split(",") if s], max_output_tokens=args.max_output_tokens,
                max_seconds=args.max_seconds, log=sys.stdout)  # fmt: skip
    print(f"\n{'balancer':<30} {'ok/sent':>9} {'req/s':>7} {'tok/s':>7} {'TTFT p50':>9} {'TTFT p99':>9} {'e2e p50':>8} {'e2e p99':>8}  errors")
    for row in rows:
        s = row.summary
        errors = ", ".join(f"{k} {v}" for k, v in sorted(s.errors.items())) or "none"
        print(f"{row.label:<30} {s.ok:>4}/{s.sent:<4} {s.throughput:>7.1f} {s.tokens_per_second:>7.0f} "
              f"{s.ttft_p50 * 1000:>7.0f}ms {s.ttft_p99 * 1000:>7.0f}ms {s.e2e_p50:>7.2f}s {s.e2e_p99:>7.2f}s  {errors}")  # fmt: skip
    print(f"(took {time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
