"""Cost per routing decision with affinity, at 16 and at 2,048 servers with 100,000 live sessions (issue 12: ratio under 2).

Each timed pair routes one request on a :class:`~solution.core.routing.Router`
kept half full and completes the oldest one in flight (the completion's hook
re-keys the server: part of the cost of every decision).  Requests belong to
100,000 conversations, live in the session table (TTL 600 s, the clock
moving 1 ms per pair, so none expires), drawn uniformly; each carries four
prefix blocks: a system prompt's block shared by every request, then three
blocks of its own conversation (hash-chained, as vLLM and Mooncake hash).

Rows (the course's strategies):

* soft affinity over least-connections (slack 0.25), and hard affinity:
  table lookup O(1), at most one O(log S) inner decision;
* bounded-load consistent hashing (epsilon 0.25, 100 points per server):
  a binary search of 100 S points, then a short walk; the load sum L kept by
  the hooks;
* prefix-aware over least-connections (index warmed by routing a request of
  every conversation first): holder-set intersections and at most 8
  candidates, though the system prompt's block is held by every server.

Scan-based alternatives in the same run (what "no scan per request" rules out):

* soft affinity whose alternative is the least loaded server found by a scan
  of every server (O(S));
* bounded-load hashing that sums L over every server per decision (O(S));
* prefix-aware that asks every server's block set for its match (O(S B)).

Then the session table alone: an expiry-heavy stream (each operation looks
one session up and inserts a new one, the clock moving so that one session
expires per operation) on :class:`~solution.affinity.SessionTable` against a
table that finds expired sessions by scanning all of them per operation, at
1,000 and at 100,000 sessions.

The figures that matter are the ratios (medians of batches run alternately
at both sizes, so a busy machine slows both alike).

Usage: python benchmarks/bench_affinity.py [--batches 7] [--pairs 2000] [--sessions 100000]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solution.affinity import BoundedLoadHash, PrefixAware, SessionAffinity, SessionTable  # noqa: E402
from solution.core.affinity_types import AffinityPolicy  # noqa: E402
from solution.core.clock import ManualClock  # noqa: E402
from solution.core.errors import NoCapacityError  # noqa: E402
from solution.core.request import Request  # noqa: E402
from solution.core.routing import BaseStrategy, LeastConnections, Router, ServerState  # noqa: E402

CAPACITY = 8
SYSTEM_BLOCK = 1


def blocks_of(conversation: int) -> tuple[int, ...]:
    """The system prompt's block, then three blocks of this conversation's own (distinct ints per conversation)."""
    base = 1_000 + 4 * conversation
    return (SYSTEM_BLOCK, base + 1, base + 2, base + 3)


# --- scan-based alternatives -----------------------------------------------------------------------


class ScanSoftAffinity(BaseStrategy):
    """Soft affinity whose fallback and comparison is the least loaded server by a scan of every server: O(S)."""

    name = "scan soft affinity"

    def __init__(self, clock: ManualClock, slack: float = 0.25) -> None:
        self.clock, self.slack, self.table = clock, slack, SessionTable(600.0, 10**7)

    def _least(self, request: Request) -> ServerState | None:
        best = None
        for s in self.router.routable_servers():
            if self.router.eligible(s, request) and (best is None or (s.load_ratio_key, s.order) < (best.load_ratio_key, best.order)):
                best = s
        return best

    def choose(self, request: Request) -> ServerState | None:
        now, sid = self.clock(), request.session_id
        pick = self._least(request)
        sticky = self.table.get(sid, now)
        if sticky is not None and sticky in self.router:
            s = self.router.server(sticky)
            if self.router.eligible(s, request) and (pick is None or s.load / s.capacity <= pick.load / pick.capacity + self.slack):
                return s
        if pick is not None:
            self.table.assign(sid, pick.server_id, now)
        return pick


class SummingBoundedLoadHash(BoundedLoadHash):
    """Bounded-load hashing that sums the load over every server per decision instead of keeping L: O(S)."""

    name = "bounded-load hash summing L"

    def bound(self) -> int:
        routable = self.router.routable_servers()
        total = sum(s.load for s in routable)
        return math.ceil((1 + self.epsilon) * (total + 1) / len(routable)) if routable else 0


class ScanPrefixAware(BaseStrategy):
    """Prefix-aware routing that asks every server's block set for its match: O(S B)."""

    name = "scan prefix-aware"

    def __init__(self, slack: float = 0.25) -> None:
        self.slack = slack
        self.held: dict[str, set[int]] = {}

    def choose(self, request: Request) -> ServerState | None:
        best = pick = None
        best_key = pick_key = None
        for s in self.router.routable_servers():
            if not self.router.eligible(s, request):
                continue
            held = self.held.setdefault(s.server_id, set())
            m = 0
            for b in request.prefix_blocks:
                if b not in held:
                    break
                m += 1
            key = (-m, s.load_ratio_key, s.order)
            if best_key is None or key < best_key:
                best, best_key = s, key
            if pick_key is None or key[1:] < pick_key:
                pick, pick_key = s, key[1:]
        if best is None:
            return None
        chosen = best if best.load / best.capacity <= pick.load / pick.capacity + self.slack else pick
        self.held.setdefault(chosen.server_id, set()).update(request.prefix_blocks)
        return chosen


# --- the runs ---------------------------------------------------------------------------------------


def make_soft(clock):
    return SessionAffinity(LeastConnections(), AffinityPolicy("soft", slack=0.25, ttl=600.0, max_sessions=10**6), clock=clock)


def make_hard(clock):
    return SessionAffinity(LeastConnections(), AffinityPolicy("hard", ttl=600.0, max_sessions=10**6), clock=clock)


ROWS = {
    "least-connections alone (no affinity, baseline)": (lambda clock: LeastConnections(), None),
    "soft affinity over least-connections": (make_soft, "pin"),
    "hard affinity over least-connections": (make_hard, "pin"),
    "bounded-load hash (eps 0.25, 100 vnodes)": (lambda clock: BoundedLoadHash(0.25, 100), None),
    "prefix-aware over least-connections": (lambda clock: PrefixAware(LeastConnections()), "route"),
    "scan: soft affinity, least loaded by scan": (lambda clock: ScanSoftAffinity(clock), "table"),
    "scan: bounded-load hash summing L": (lambda clock: SummingBoundedLoadHash(0.25, 100), None),
    "scan: prefix-aware asking every server": (lambda clock: ScanPrefixAware(), "held"),
}


class Run:
    """One router over ``servers`` servers, half full, with ``sessions`` live sessions, timed in batches of pairs."""

    def __init__(self, make, warm: str | None, servers: int, sessions: int, seed: int = 1) -> None:
        self.clock = ManualClock()
        self.strategy = make(self.clock)
        self.router = Router(self.strategy)
        for k in range(servers):
            self.router.add_server(f"s{k}", CAPACITY, 80)
        self.sessions = sessions
        self.rng = random.Random(seed)
        self.count = self.refused = 0
        self.inflight: deque[str] = deque()
        if warm == "pin":
            for c in range(sessions):
                self.strategy.pin(f"c{c}", f"s{c % servers}", 0.0)
        elif warm == "table":
            for c in range(sessions):
                self.strategy.table.assign(f"c{c}", f"s{c % servers}", 0.0)
        elif warm == "held":  # the scan's own index: every conversation's blocks on one server
            for c in range(sessions):
                self.strategy.held.setdefault(f"s{c % servers}", set()).update(blocks_of(c))
        elif warm == "route":  # one request of every conversation, completed at once: the index learns its blocks
            for c in range(sessions):
                rid = f"w{c}"
                self.router.route(Request(rid, 500, 300, session_id=f"c{c}", prefix_blocks=blocks_of(c)))
                self.router.complete_request(rid)
        for _ in range(servers * CAPACITY // 2):
            self.submit()

    def submit(self) -> None:
        self.count += 1
        c = self.rng.randrange(self.sessions)
        rid = f"r{self.count}"
        try:
            self.router.route(Request(rid, 500, 300, session_id=f"c{c}", prefix_blocks=blocks_of(c)))
        except NoCapacityError:  # hard affinity: the session's server is full (the request would wait)
            self.refused += 1
            return
        self.inflight.append(rid)

    def batch(self, pairs: int) -> float:
        """Seconds per pair over ``pairs`` pairs."""
        router, inflight, clock = self.router, self.inflight, self.clock
        started = time.process_time()
        for _ in range(pairs):
            clock.now += 1e-3
            self.submit()
            if inflight:
                router.complete_request(inflight.popleft())
        return (time.process_time() - started) / pairs


def compare(make, warm, batches: int, pairs: int, sessions: int, large_pairs: int) -> tuple[float, float]:
    small, large = Run(make, warm, 16, sessions), Run(make, warm, 2048, sessions)
    a, b = [], []
    for _ in range(batches):
        a.append(small.batch(pairs))
        b.append(large.batch(large_pairs))
    return statistics.median(a), statistics.median(b)


# --- the session table alone ------------------------------------------------------------------------


class ScanTable:
    """A session table that finds expired sessions by scanning all of them on every operation: O(n)."""

    def __init__(self, ttl: float) -> None:
        self.ttl, self.entries = ttl, {}

    def get(self, session_id: str, now: float) -> str | None:
        self.expire(now)
        entry = self.entries.get(session_id)
        if entry is None:
            return None
        entry[1] = now + self.ttl
        return entry[0]

    def assign(self, session_id: str, server_id: str, now: float) -> None:
        self.expire(now)
        self.entries[session_id] = [server_id, now + self.ttl]

    def expire(self, now: float) -> int:
        dead = [k for k, (_, deadline) in self.entries.items() if deadline <= now]
        for k in dead:
            del self.entries[k]
        return len(dead)


def table_run(make, n: int, ops: int) -> float:
    """Seconds per operation (a lookup and an insert) on a table of ``n`` sessions, one expiring per operation."""
    ttl = float(n)  # sessions inserted 1 s apart live n seconds: the table stays at n, one expires per second
    table = make(ttl)
    if isinstance(table, ScanTable):  # filled directly: its assign would scan per insert (O(n^2))
        table.entries = {f"c{i}": ["s0", float(i) + ttl] for i in range(n)}
    else:
        for i in range(n):
            table.assign(f"c{i}", "s0", float(i))
    rng = random.Random(2)
    now = float(n)
    started = time.process_time()
    for k in range(ops):
        table.get(f"c{rng.randrange(n)}", now)
        table.assign(f"n{k}", "s1", now)
        now += 1.0
    return (time.process_time() - started) / ops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--only", default="", help="run only the rows whose name contains this text")
    args = parser.parse_args(argv)
    print(f"{args.sessions:,} live sessions; route + complete on a half-full Router (us per pair)")
    print(f"{'strategy':<46}{'16 servers':>12}{'2,048 servers':>15}{'ratio':>8}")
    for name, (make, warm) in ROWS.items():
        if args.only not in name:
            continue
        scan = name.startswith("scan")
        small, large = compare(make, warm, args.batches, args.pairs if not scan else args.pairs // 4, args.sessions,
                               args.pairs if not scan else args.pairs // 40)  # fmt: skip
        print(f"{name:<46}{small * 1e6:>10.1f}us{large * 1e6:>13.1f}us{large / small:>8.2f}")
    if args.only:
        return 0
    print()
    print(f"{'session table: lookup + insert, one expiry each':<46}{'1,000':>12}{'100,000':>15}{'ratio':>8}")
    for name, make, ops in (("SessionTable (expiry from the front)", lambda ttl: SessionTable(ttl, 10**7), 20_000),
                            ("scan of all sessions per operation", ScanTable, 200)):  # fmt: skip
        small = statistics.median(table_run(make, 1_000, ops) for _ in range(3))
        large = statistics.median(table_run(make, 100_000, max(ops // 10, 20)) for _ in range(3))
        print(f"{name:<46}{small * 1e6:>10.1f}us{large * 1e6:>13.1f}us{large / small:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
