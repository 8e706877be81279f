"""Stage 8's gateway overhead (issue 15): added latency per request and requests per second, against HAProxy, in one run.

One inference server (``python -m solution.gateway.inference_server``, a
near-zero time scale so the model's time does not hide the proxies' own,
capacity 256) is called three ways from the same client (aiohttp, one
keep-alive pool), in the same run:

* **direct**: the server itself;
* **gateway**: ``python -m solution.gateway`` (its own process, logging a
  JSON line per request as in production) in front of it;
* **haproxy**: Debian's HAProxy with the course's generated configuration
  (``leastconn``, health checks, ``maxconn``) in front of it (skipped with a
  note when HAProxy is not installed).

Latency: ``--requests`` sequential non-streamed requests (one token) per
target, in alternating batches so a busy machine slows all alike; the
*added* latency is each proxy's p50 / p99 minus the direct call's.
TTFT: a quarter as many streamed requests (4 tokens), time to the first
SSE chunk (a proxy that buffers small chunks shows here).
CPU per request (each process's user + system time over the throughput
runs, from /proc, divided by the answers): the figure the machine's other
load does not move; ``direct`` is the server's own.
Throughput: ``--clients`` closed-loop clients for ``--seconds`` per target
(requests per second, all answered 200), again alternated.  The client, the
server and the proxy share this machine's cores, so the absolute figures
are this machine's; the ratios (gateway / HAProxy) are the point.

``--against REV`` adds a fourth target, ``gateway@REV``: the gateway of an
earlier commit (its ``solution/`` package from ``git archive``, with the
same configuration), measured in the same run and alternated like the
rest, so a change's cost is a ratio that the machine's load moves for both
alike (``gateway / gateway@REV``).

``--parts`` times, in one process and without a socket, the per-request
pieces the gateway's cost work replaced, each against what it replaced:
handing the log line to logging (``makeRecord`` +
``handle`` against ``Logger.info``), the handler (``BatchedLines`` against
``StreamHandler`` on standard error), a kept metric child against
``labels()`` each time, and reading ``completion_tokens`` (one regex search
against ``json.loads``); microseconds per call (best of 5) and the ratio.

Usage: python benchmarks/bench_gateway.py [--requests 600] [--clients 32] [--seconds 3] [--against REV] [--parts]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
import numpy as np  # noqa: E402

from solution.gateway.procs import ManagedProcess, ServerSpec, free_port, start_fleet  # noqa: E402

KEY = "sk-bench"
BODY = {"model": "course-model", "prompt": "hello there", "max_tokens": 1}


async def _latencies(session: aiohttp.ClientSession, urls: dict[str, str], n: int, batch: int = 50) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in urls}
    headers = {"Authorization": f"Bearer {KEY}"}
    for name, url in urls.items():  # warm the pools and the servers
        for _ in range(20):
            async with session.post(url + "/v1/completions", json=BODY, headers=headers) as r:
                assert r.status == 200, (name, r.status, await r.text())
                await r.read()
    done = 0
    while done < n:
        for name, url in urls.items():
            for _ in range(min(batch, n - done)):
                t = time.perf_counter()
                async with session.post(url + "/v1/completions", json=BODY, headers=headers) as r:
                    await r.read()
                    assert r.status == 200, (name, r.status)
                out[name].append(time.perf_counter() - t)
        done += batch
    return out


async def _ttfts(session: aiohttp.ClientSession, urls: dict[str, str], n: int, batch: int = 25) -> dict[str, list[float]]:
    """Time to the first SSE chunk of streamed requests (4 tokens), alternating targets in batches."""
    out: dict[str, list[float]] = {name: [] for name in urls}
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {**BODY, "max_tokens": 4, "stream": True}
    done = 0
    while done < n:
        for name, url in urls.items():
            for _ in range(min(batch, n - done)):
                t = time.perf_counter()
                first = None
                async with session.post(url + "/v1/completions", json=body, headers=headers) as r:
                    assert r.status == 200, (name, r.status)
                    async for chunk in r.content.iter_any():
                        if first is None and b"data:" in chunk:
                            first = time.perf_counter() - t
                assert first is not None, name
                out[name].append(first)
        done += batch
    return out


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0.0 elsewhere or without a pid)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _throughput(session: aiohttp.ClientSession, url: str, clients: int, seconds: float) -> tuple[float, int, int]:
    headers = {"Authorization": f"Bearer {KEY}"}
    ok = errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal ok, errors
        while time.perf_counter() < stop:
            async with session.post(url + "/v1/completions", json=BODY, headers=headers) as r:
                await r.read()
                if r.status == 200:
                    ok += 1
                else:
                    errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return ok / (time.perf_counter() - start), errors, ok


async def _measure(urls: dict[str, str], pids: dict[str, int | None], args: argparse.Namespace) -> tuple[dict[str, list[float]], ...]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        lat = await _latencies(session, urls, args.requests)
        ttft = await _ttfts(session, urls, max(50, args.requests // 4))
        rates: dict[str, list[float]] = {name: [] for name in urls}
        cpu: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(args.rounds):
            for name, url in urls.items():
                before = _cpu_seconds(pids[name])
                rate, errors, ok = await _throughput(session, url, args.clients, args.seconds)
                if errors:
                    raise SystemExit(f"{name}: {errors} requests failed during the throughput run")
                rates[name].append(rate)
                cpu[name].append((_cpu_seconds(pids[name]) - before) / max(ok, 1))
    return lat, ttft, rates, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--against", metavar="REV", default=None,
                        help="also measure the gateway of this git commit (e.g. HEAD~3) in the same run")  # fmt: skip
    parser.add_argument("--parts", action="store_true", help="only time the per-request pieces against what they replaced")
    args = parser.parse_args()
    if args.parts:
        _parts()
        return
    from solution.gateway import haproxy as hx

    with start_fleet([ServerSpec("s1", capacity=256, time_scale=1e-6)]) as fleet, tempfile.TemporaryDirectory() as tmp:
        backend = fleet.url("s1")
        config = {"backends": [{"server_id": "s1", "url": backend, "capacity": 256}], "keys": {KEY: {"tenant": "bench"}},
                  "queue": {"max_depth": 4096, "max_wait": 30.0}, "health": {"interval": 1.0, "timeout": 0.5}}  # fmt: skip
        path = Path(tmp) / "gw.json"
        path.write_text(json.dumps(config))
        port = free_port()
        argv = [sys.executable, "-m", "solution.gateway", "--config", str(path), "--port", str(port)]
        urls = {"direct": backend}
        pids: dict[str, int | None] = {"direct": fleet.procs["s1"].pid}
        with ManagedProcess(argv, name="gateway", ready_url=f"http://127.0.0.1:{port}/health", ports=(port,)) as gw:
            urls["gateway"] = f"http://127.0.0.1:{port}"
            pids["gateway"] = gw.pid
            proxy = earlier = None
            if args.against is not None:
                earlier = _earlier_gateway(args.against, path, Path(tmp))
                urls[f"gw@{args.against}"] = earlier.ready_url.removesuffix("/health")  # type: ignore[union-attr]
                pids[f"gw@{args.against}"] = earlier.pid
            if hx.haproxy_binary() is not None:
                proxy = hx.HAProxy({"s1": backend}, maxconn_per_server=256).start()
                urls["haproxy"] = proxy.url
                pids["haproxy"] = proxy.pid
            else:
                print(f"(HAProxy not installed: {hx.HAPROXY_INSTALL}; its column is left out)")
            try:
                lat, ttft, rates, cpu = asyncio.run(_measure(urls, pids, args))
            finally:
                if proxy is not None:
                    proxy.stop()
                if earlier is not None:
                    earlier.stop()
    base50, base99 = (float(np.percentile(lat["direct"], q)) for q in (50, 99))
    print(f"{args.requests} sequential requests each (1 token, non-streamed); {args.clients} clients x {args.seconds:g} s x "
          f"{args.rounds} rounds for throughput; medians of rounds")  # fmt: skip
    print(f"{'target':14} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'added p99':>10} {'req/s':>8} {'TTFT p50 ms':>12} {'CPU ms/req':>11}")
    added: dict[str, tuple[float, float]] = {}
    for name, xs in lat.items():
        p50, p99 = (float(np.percentile(xs, q)) for q in (50, 99))
        added[name] = (p50 - base50, p99 - base99)
        rate = statistics.median(rates[name])
        extra = "" if name == "direct" else f"{1e3 * added[name][0]:10.2f} {1e3 * added[name][1]:10.2f}"
        print(f"{name:14} {1e3 * p50:8.2f} {1e3 * p99:8.2f} {extra:>21} {rate:8.0f} {1e3 * float(np.median(ttft[name])):12.2f} {1e3 * statistics.median(cpu[name]):11.3f}")
    if "haproxy" in lat:
        g, h = added["gateway"], added["haproxy"]
        rg, rh = statistics.median(rates["gateway"]), statistics.median(rates["haproxy"])
        def ratio(a: float, b: float) -> str:
            return f"x{a / b:.1f}" if b > 5e-5 else "n/a (HAProxy's is within noise of 0)"

        cg, ch = statistics.median(cpu["gateway"]), statistics.median(cpu["haproxy"])
        print(f"gateway / haproxy: added p50 {ratio(g[0], h[0])}, added p99 {ratio(g[1], h[1])}, requests/s x{rg / rh:.2f}, "
              f"CPU per request x{cg / max(ch, 1e-9):.1f}")
    if args.against is not None:
        name = f"gw@{args.against}"
        cg, ce = statistics.median(cpu["gateway"]), statistics.median(cpu[name])
        rg, re_ = statistics.median(rates["gateway"]), statistics.median(rates[name])
        print(f"gateway / {name}: CPU per request x{cg / max(ce, 1e-9):.2f}, requests/s x{rg / re_:.2f}")


def _parts(number: int = 20_000) -> None:
    """Each per-request piece against what it replaced, in this process: microseconds per call and the ratio."""
    import logging
    import os
    import re
    import timeit

    from prometheus_client import CollectorRegistry, Counter

    from solution.gateway.__main__ import BatchedLines
    from solution.gateway.call import Call
    from solution.gateway.requestlog import request_line

    def pair(new: Any, old: Any) -> tuple[float, float]:
        """Best of 5 of each, the two timed in turn (a machine whose load drifts slows both alike)."""
        times: tuple[list[float], list[float]] = ([], [])
        for _ in range(5):
            for fn, out in ((new, times[0]), (old, times[1])):
                out.append(timeit.timeit(fn, number=number))
        return 1e6 * min(times[0]) / number, 1e6 * min(times[1]) / number

    call = Call("gw-1a2b3c-17", "bench", None, "/v1/completions", False, b"", 2, 1, 0.0, None)  # type: ignore[arg-type]
    call.route.append({"attempt": 1, "server": "s1", "at": 0.000123, "waited": 0.0, "previous": None})
    line = request_line(call, 200, "delivered", None, retry_after=None, ttft=0.001234, e2e=0.001234)
    rows: list[tuple[str, float, str, float]] = []
    with open(os.devnull, "w") as sink:
        quiet, info = logging.getLogger("bench.parts.a"), logging.getLogger("bench.parts.b")
        for logger in (quiet, info):
            logger.propagate = False
            logger.setLevel(logging.INFO)
            logger.addHandler(logging.StreamHandler(sink))
        a, b = pair(lambda: quiet.handle(quiet.makeRecord(quiet.name, logging.INFO, __file__, 0, line, None, None, "f")),
                    lambda: info.info(line))  # fmt: skip
        rows.append(("makeRecord + handle", a, "Logger.info", b))
    record_ = logging.LogRecord("x", logging.INFO, __file__, 0, line, None, None)
    saved = sys.stderr
    with open(os.devnull, "w") as sys.stderr:  # both handlers write to standard error: /dev/null here
        batched, plain = BatchedLines(), logging.StreamHandler(sys.stderr)
        a, b = pair(lambda: batched.emit(record_), lambda: plain.emit(record_))
        rows.append(("BatchedLines.emit", a, "StreamHandler.emit", b))
        batched.close()
    sys.stderr = saved
    counter = Counter("lb_bench_requests", "bench", ["outcome", "tier"], registry=CollectorRegistry())
    child = counter.labels(outcome="delivered", tier="none")
    a, b = pair(child.inc, lambda: counter.labels(outcome="delivered", tier="none").inc())
    rows.append(("kept child .inc()", a, "labels(...).inc()", b))
    body = json.dumps({"id": "cmpl-1", "object": "text_completion", "choices": [{"text": "tok", "index": 0, "finish_reason": "length"}],
                       "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}}).encode()  # fmt: skip
    tokens = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')
    a, b = pair(lambda: tokens.search(body), lambda: json.loads(body)["usage"]["completion_tokens"])
    rows.append(("regex completion_tokens", a, "json.loads(body)[...]", b))
    print(f"{'piece':26} {'us':>7}   {'what it replaced':26} {'us':>7}  ratio")
    for new, t_new, old, t_old in rows:
        print(f"{new:26} {t_new:7.2f}   {old:26} {t_old:7.2f}  x{t_new / t_old:.2f}")


def _earlier_gateway(rev: str, config: Path, tmp: Path) -> ManagedProcess:
    """The gateway of commit ``rev`` (its ``solution/`` from ``git archive``), started on a free port with ``config``."""
    import io
    import subprocess
    import tarfile

    root = Path(__file__).resolve().parent.parent
    tree = tmp / "earlier"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", rev, "solution"], capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"--against {rev}: git archive failed: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    port = free_port()
    code = f"import sys; sys.path.insert(0, {str(tree)!r}); from solution.gateway.__main__ import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "--config", str(config), "--port", str(port)]
    return ManagedProcess(argv, name="gateway-earlier", ready_url=f"http://127.0.0.1:{port}/health", ports=(port,)).start()


if __name__ == "__main__":
    main()
