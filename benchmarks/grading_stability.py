"""Same code, same verdict, under load: the grader's stability, measured.

Two figures, each with another process burning a core the whole time:

1. **The graded set, N runs** (default 20) for the reference and for a buggy
   variant of each stage (stage 1: free slots before memory in the tie-break;
   stage 2: priorities ignored in the priority ordering; stage 3: power of
   two choices takes the more loaded server; stage 4: the ejection cap one
   server short; stage 5: soft affinity leaves a server exactly at the
   slack, ``<`` for ``<=``; stage 6: the newest preemption victim skipped
   for the next one; stage 7: the Mann-Whitney variance without the tie
   correction; stage 8: the retry budget one retry short), and for the
   reference with a debug ``print`` at the top of every function of stages 1
   and 2 (as the grader fake "debug prints": stage 1's exact-ratio probe then
   prints 3.2 million times, about 12 s of CPU; it must score 100, however
   busy the machine: the grader's time limits count CPU seconds).  Every run must give every case
   the same verdict; the script prints the number of distinct verdict
   vectors per variant (1 is the goal), the score range and the time per run.
2. **The cost rules, M runs** (default 50) in this process: the reference must
   pass every run and an O(S)/O(n) variant must fail every run (stage 1: a
   C-level ``min`` over all servers; stage 2: ``peek`` that sorts every
   waiting request; stage 3: a strategy that lists every eligible server per
   decision; stage 4: a checker that walks the fleet on every request result;
   stage 5: a session table that scans every session for expiry on each
   request, a ring that sums the servers' loads per request, a prefix-aware
   router that lists every eligible server per decision; stage 6: a limiter
   that walks every tenant of the request's tier on each admission once the run has started, a
   tier routing that lists every eligible server per decision, a preemptor
   that lists every running request per victim; stage 7: a canary split that
   lists the new version's servers per decision; stage 8: a retrier that
   counts its retries in flight by scanning the active requests per
   decision, from 16 to 65,536 active requests).  It prints the growth
   factors' range for each.

Usage::

    python benchmarks/grading_stability.py [--runs 20] [--cost-runs 50] [--burn 1 | --no-burn] [--stage 5 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from solution.checks import cost  # noqa: E402
from solution.checks.cost import COST_CASES, LIMIT, measure, verdict  # noqa: E402
from solution.grading.grader import grade  # noqa: E402

MODULES = ("balancer", "request_queue", "strategies", "health", "affinity", "tiers", "deploy", "retry")

#: (module, text to replace in the reference, replacement): one deliberate bug per stage (stage 1 needs two edits).
BUGS = (
    ("balancer", "return ((load << _RATIO_SHIFT) // self.capacity, -self.gpu_memory_gb, load - self.capacity, self.seq)",
     "return ((load << _RATIO_SHIFT) // self.capacity, load - self.capacity, -self.gpu_memory_gb, self.seq)"),
    ("balancer", "len(srv.active) - srv.capacity == entry[2]", "len(srv.active) - srv.capacity == entry[1]"),
    ("request_queue", "primary = float(-priority)", "primary = 0.0"),
    ("strategies", "if best is None or s.load_ratio_key < best.load_ratio_key:", "if best is None or s.load_ratio_key > best.load_ratio_key:"),
    ("health", "if (self._ejected + 1) * 100 > p.max_ejection_percent * len(self._servers):",
     "if (self._ejected + 1) * 100 >= p.max_ejection_percent * len(self._servers):"),
    ("affinity", "sticky.load / sticky.capacity <= pick.load / pick.capacity + self._slack:",
     "sticky.load / sticky.capacity < pick.load / pick.capacity + self._slack:"),
    ("tiers", "            if queue_class < row.queue_class and usable(server_id):\n                return rid, server_id\n",
     "            if queue_class < row.queue_class and usable(server_id) and rid != next(reversed(self._candidates)):\n"
     "                return rid, server_id\n"),
    ("deploy", "ties += t**3 - t", "ties += 0"),
    ("retry", "self._in_flight + 1 > policy.budget.limit(", "self._in_flight + 2 > policy.budget.limit("),
)


@contextlib.contextmanager
def burning(cores: int) -> Iterator[None]:
    """``cores`` other processes keep one core busy each while the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


#: Stages whose reference the "debug prints" variant prints from (the grader fake's).
PRINTING = ("balancer", "request_queue")


def submission(folder: Path, buggy: bool | str) -> Path:
    """The reference in ``folder/exercises``; with one deliberate bug per stage (``buggy``), or printing (``"prints"``)."""
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_exercises.py"), "--out", str(folder)], check=True, capture_output=True)
    for module in MODULES:
        shutil.copyfile(ROOT / "solution" / f"{module}.py", folder / "exercises" / f"{module}.py")
    if buggy == "prints":
        from tests.meta.fakes import with_debug_prints

        for module in PRINTING:
            path = folder / "exercises" / f"{module}.py"
            path.write_text(with_debug_prints(path.read_text())[0])
    elif buggy:
        for module, old, new in BUGS:
            path = folder / "exercises" / f"{module}.py"
            text = path.read_text()
            if old not in text:
                raise SystemExit(f"the bug for {module} no longer applies: {old!r} is not in the reference")
            path.write_text(text.replace(old, new, 1))
    return folder


def verdicts(folder: Path, stages: list[int] | None = None) -> tuple[tuple[tuple[str, bool], ...], list[float], float, float]:
    """One grading of ``folder``: every case's verdict, the stages' scores, the seconds it took, and the longest
    case's seconds on the clock (what a wall-clock limit would have judged)."""
    started = time.monotonic()
    results = grade(folder, stages)
    vector = tuple((c.id, c.passed) for r in results for g in r.groups for c in g.cases)
    longest = max((c.seconds for r in results for g in r.groups for c in g.cases), default=0.0)
    return vector, [r.score for r in results], time.monotonic() - started, longest


def graded_set(runs: int, stages: list[int] | None = None) -> None:
    print(f"1. the graded set, {runs} runs per variant")
    with tempfile.TemporaryDirectory() as tmp:
        for name, buggy in (("reference", False), ("buggy variant", True), ("debug prints", "prints")):
            if buggy == "prints" and stages and not {1, 2} & set(stages):
                continue
            folder = submission(Path(tmp) / name.replace(" ", "-"), buggy)
            seen, scores, seconds, longest = set(), [], [], []
            for _ in range(runs):
                vector, stage_scores, took, case_seconds = verdicts(folder, stages)
                seen.add(vector)
                scores.append(stage_scores)
                seconds.append(took)
                longest.append(case_seconds)
            per_stage = list(zip(*scores))
            names = stages or list(range(1, len(MODULES) + 1))
            ranges = ", ".join(f"stage {n} {min(s):.1f}..{max(s):.1f}" for n, s in zip(sorted(names), per_stage))
            print(f"   {name:<14} distinct verdict vectors: {len(seen)} of {runs} runs ({len(next(iter(seen)))} cases each); "
                  f"scores {ranges}; {min(seconds):.1f}..{max(seconds):.1f} s per run; "
                  f"longest case {min(longest):.1f}..{max(longest):.1f} s on the clock")


class _ScanQueue:
    """Stage 2 with an O(n log n) peek: the reference's queue, sorting every waiting request first."""

    def __init__(self, module: object) -> None:
        base = module.RequestQueue  # type: ignore[attr-defined]

        class RequestQueue(base):  # type: ignore[misc, valid-type]
            def peek(self, large_ok: bool = True):  # noqa: ANN201
                self.waiting()
                return super().peek(large_ok)

        self.RequestQueue = RequestQueue


class _ScanStrategies:
    """Stage 3 with O(S) decisions: every strategy lists every eligible server first."""

    def __init__(self, module: object) -> None:
        for name in ("LeastOutstandingTokens", "WeightedResponseTime", "Predictive", "PowerOfChoices"):
            base = getattr(module, name)

            def choose(self, request, _base=base):  # noqa: ANN001, ANN202
                self.router.eligible_servers(request)
                return _base.choose(self, request)

            setattr(self, name, type(name, (base,), {"choose": choose}))


class _ScanHealth:
    """Stage 4 with an O(S) request result: the reference's checker, walking every server first."""

    def __init__(self, module: object) -> None:
        base = module.HealthChecker  # type: ignore[attr-defined]

        class HealthChecker(base):  # type: ignore[misc, valid-type]
            def request_result(self, server_id, ok, now, seconds_per_token=None):  # noqa: ANN001, ANN202
                for _ in self._servers.values():  # the reference's table of servers: an O(S) walk
                    pass
                return super().request_result(server_id, ok, now, seconds_per_token)

        self.HealthChecker = HealthChecker
        self.RetryLedger = module.RetryLedger  # type: ignore[attr-defined]


class _ScanAffinity:
    """Stage 5 with O(sessions) or O(S) decisions: a table that scans every session for expiry on each request,
    a ring that sums every server's load per request, a prefix-aware router that lists every eligible server."""

    def __init__(self, module: object) -> None:
        table_base = module.SessionTable  # type: ignore[attr-defined]

        class SessionTable(table_base):  # type: ignore[misc, valid-type]
            def get(self, session_id, now):  # noqa: ANN001, ANN202
                [k for k, (_, deadline) in self._entries.items() if deadline <= now]  # the reference's entries: an O(n) scan
                return super().get(session_id, now)

        affinity_base = module.SessionAffinity  # type: ignore[attr-defined]

        class SessionAffinity(affinity_base):  # type: ignore[misc, valid-type]
            def __init__(self, inner, policy=None, *, clock, table=None):  # noqa: ANN001, ANN204
                super().__init__(inner, policy, clock=clock, table=table or SessionTable(policy.ttl, policy.max_sessions))

        hash_base = module.BoundedLoadHash  # type: ignore[attr-defined]

        class BoundedLoadHash(hash_base):  # type: ignore[misc, valid-type]
            def bound(self):  # noqa: ANN202
                sum(s.load for s in self._servers.values())  # L summed per request instead of kept by the hooks
                return super().bound()

        prefix_base = module.PrefixAware  # type: ignore[attr-defined]

        class PrefixAware(prefix_base):  # type: ignore[misc, valid-type]
            def choose(self, request):  # noqa: ANN001, ANN202
                self.router.eligible_servers(request)
                return super().choose(request)

        self.SessionTable, self.SessionAffinity, self.BoundedLoadHash, self.PrefixAware = SessionTable, SessionAffinity, BoundedLoadHash, PrefixAware


class _ScanTiers:
    """Stage 6 with O(tenants) admissions and O(S) or O(R) decisions: a limiter that walks every tenant on each
    check once the run has started (``now > 0``: the fill at time 0 would take quadratic time), a tier routing
    that lists every eligible server per decision, a preemptor that lists every running request per victim."""

    def __init__(self, module: object) -> None:
        for name in ("TierTable", "TierAdmission"):
            setattr(self, name, getattr(module, name))
        limiter_base = module.RateLimiter  # type: ignore[attr-defined]

        class RateLimiter(limiter_base):  # type: ignore[misc, valid-type]
            def check(self, request, now):  # noqa: ANN001, ANN202
                if now > 0:  # the reference's tenants of the request's tier: an O(n) walk (a C-level copy of the keys)
                    list(self._tenants[self.table.tier(request.tier).name])
                return super().check(request, now)

        routing_base = module.TierRouting  # type: ignore[attr-defined]

        class TierRouting(routing_base):  # type: ignore[misc, valid-type]
            def choose(self, request):  # noqa: ANN001, ANN202
                self.router.eligible_servers(request)
                return super().choose(request)

        preemptor_base = module.Preemptor  # type: ignore[attr-defined]

        class Preemptor(preemptor_base):  # type: ignore[misc, valid-type]
            def victim(self, request, usable):  # noqa: ANN001, ANN202
                list(self._candidates)  # every running preemptible request, per victim
                return super().victim(request, usable)

        self.RateLimiter, self.TierRouting, self.Preemptor = RateLimiter, TierRouting, Preemptor


class _ScanDeploy:
    """Stage 7 with O(S) decisions: a canary split that lists the new version's servers on every decision."""

    def __init__(self, module: object) -> None:
        split_base = module.CanarySplit  # type: ignore[attr-defined]

        class CanarySplit(split_base):  # type: ignore[misc, valid-type]
            def choose(self, request):  # noqa: ANN001, ANN202
                [s for s in self.router.routable_servers() if s.version == self.new_version]
                return super().choose(request)

        self.CanarySplit = CanarySplit


class _ScanRetrier:
    """Stage 8 with O(active) decisions: a retrier that counts its retries in flight by walking every active request."""

    def __init__(self, module: object) -> None:
        base = module.Retrier  # type: ignore[attr-defined]

        class Retrier(base):  # type: ignore[misc, valid-type]
            def decide(self, request_id, tries, failure, *, streamed):  # noqa: ANN001, ANN202
                sum(self._retrying.values())  # the reference's active requests: an O(active) walk
                return super().decide(request_id, tries, failure, streamed=streamed)

        self.Retrier = Retrier


class _ScanBalancer:
    """Stage 1 with a C-level O(S) scan: ``min`` over every server's key."""

    class LoadBalancer:
        def __init__(self) -> None:
            self.servers: dict[str, list] = {}
            self.keys: dict[str, tuple] = {}
            self.requests: dict[str, str] = {}

        def _key(self, sid: str) -> tuple:
            load, cap, mem, order = self.servers[sid]
            return (load / cap, -mem, load - cap, order, sid)

        def add_server(self, sid: str, cap: int, mem: int) -> None:
            self.servers[sid] = [0, cap, mem, len(self.servers)]
            self.keys[sid] = self._key(sid)

        def route_request(self, rid: str, tokens: int) -> str:
            sid = min(self.keys.values())[-1]
            self.servers[sid][0] += 1
            self.keys[sid] = self._key(sid)
            self.requests[rid] = sid
            return sid

        def complete_request(self, rid: str) -> None:
            sid = self.requests.pop(rid)
            self.servers[sid][0] -= 1
            self.keys[sid] = self._key(sid)


def cost_rules(runs: int, stages: list[int] | None = None) -> None:
    import solution.affinity
    import solution.balancer
    import solution.deploy
    import solution.health
    import solution.request_queue
    import solution.retry
    import solution.strategies
    import solution.tiers

    print(f"2. the cost rules, {runs} runs each (limit {LIMIT:g}x growth from 16 to 4,096 servers; stage 6's admission from 10 to 100,000 tenants; stage 8 from 16 to 65,536 active requests)")
    variants = {
        1: (solution.balancer, _ScanBalancer()),
        2: (solution.request_queue, _ScanQueue(solution.request_queue)),
        3: (solution.strategies, _ScanStrategies(solution.strategies)),
        4: (solution.health, _ScanHealth(solution.health)),
        5: (solution.affinity, _ScanAffinity(solution.affinity)),
        6: (solution.tiers, _ScanTiers(solution.tiers)),
        7: (solution.deploy, _ScanDeploy(solution.deploy)),
        8: (solution.retry, _ScanRetrier(solution.retry)),
    }
    for stage, name, rule in COST_CASES:
        if stages and stage not in stages:
            continue
        reference, scan = variants[stage]
        label = f"stage {stage} {rule.get('strategy', rule['kind'])}"[:32]
        for who, impl, want in (("reference", reference, True), ("scan", scan, False)):
            growth, right = [], 0
            for _ in range(runs):
                result = measure(impl, rule)
                ok, _text = verdict(result)
                per_call, sizes = result["seconds_per_call"], result.get("sizes", cost.SIZES)
                growth.append(per_call[str(sizes[-1])] / per_call[str(sizes[0])])
                right += ok == want
            print(f"   {label:<32} {who:<9} right verdict {right}/{runs}; growth {min(growth):.1f}x..{max(growth):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cost-runs", type=int, default=50)
    parser.add_argument("--burn", type=int, default=1, help="cores other processes keep busy (default 1)")
    parser.add_argument("--no-burn", action="store_true", help="do not start a process that burns a core (--burn 0)")
    parser.add_argument("--stage", type=int, action="append", help="only this stage (repeatable; default: every stage)")
    args = parser.parse_args()
    cores = 0 if args.no_burn else args.burn
    with burning(cores):
        print(f"{cores} other process(es) burn a core each" if cores else "no extra load")
        if args.cost_runs > 0:
            cost_rules(args.cost_runs, args.stage)
        graded_set(args.runs, args.stage)


if __name__ == "__main__":
    main()
