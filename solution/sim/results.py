"""What a run produces: per-request arrays, outcomes and a summary.

Every request ends with exactly one :class:`Outcome`.  Times are seconds of
simulated time; ``NaN`` marks what did not happen (a rejected request never
starts).  Derived latencies:

* time to first token ``ttft = first_token - arrival``
* end-to-end latency ``e2e = finish - arrival``
* time per output token ``tpot = (finish - first_token) / (output_tokens - 1)``
  (the first token comes from the prefill, so it is not counted)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import IntEnum

import numpy as np

__all__ = ["Outcome", "STAGE1_OUTCOMES", "Results", "Summary", "format_table", "table_rows"]


class Outcome(IntEnum):
    """How a request ended.  Codes are stable and never reused.

    ``HUNG`` happens only with a :class:`~solution.sim.faults.Hang` and no
    per-try timeout.  The three before it happen only with a stage-2 queue at the gateway
    (``Scenario.queue``); a request that waited and was then served ends
    ``COMPLETED`` (or ``FAILED`` / ``CRASHED``) like any other.
    """

    COMPLETED = 0  # served to the last token
    REJECTED = 1  # the balancer raised RuntimeError (no free slot): Erlang B's lost request
    FAILED = 2  # the server answered with an error at once (down, or failing a fraction)
    CRASHED = 3  # in flight on a server when it crashed
    TIMED_OUT = 4  # waited in the queue for its max_wait
    QUEUE_FULL = 5  # the queue was full: rejected (HTTP 503 by default, 429 if the policy says) with Retry-After
    THROTTLED = 5  # the old name of QUEUE_FULL (an alias: the same member)
    CANCELLED = 6  # its client gave up while it waited (or the run ended while it could not be served)
    HUNG = 7  # still waiting on a hung server when the run ended (no per-try timeout freed it)


#: The outcomes of stage 1 (a run without a queue has no others).
STAGE1_OUTCOMES = (Outcome.COMPLETED, Outcome.REJECTED, Outcome.FAILED, Outcome.CRASHED)


_PERCENTILES = (50, 95, 99)


@dataclass(frozen=True, eq=False)
class Results:
    """The per-request record of one run (numpy arrays, one entry per request).

    ``server`` indexes :attr:`server_ids` (-1: never routed).  Request ``i``
    had id ``f"r{i}"`` in the balancer.  Build a :class:`Summary` with
    :meth:`summary`; compare runs bit for bit with :meth:`same_as`.
    """

    scenario: str
    seed: int
    server_ids: tuple[str, ...]
    capacity: np.ndarray  # int64 per server
    arrival: np.ndarray  # float64
    start: np.ndarray  # float64, NaN if never started
    first_token: np.ndarray  # float64, NaN if no token came
    finish: np.ndarray  # float64, when the outcome was decided
    server: np.ndarray  # int32, -1 if never routed
    outcome: np.ndarray  # int8, an Outcome code
    prompt_tokens: np.ndarray  # int32
    output_tokens: np.ndarray  # int32
    estimated_tokens: np.ndarray  # int32, what the balancer was told
    tier: np.ndarray  # int16, index into tier_names
    tier_names: tuple[str, ...]
    session: np.ndarray  # int32, -1 outside sessions
    mode: str = "llm"  # "llm" or "classic" (no tokens are generated: TPOT is NaN)
    queueing: str = ""  # the queue's ordering ("fifo", "priority", "sjf"); "" without a queue
    # stage 4 (Scenario.health set): None / empty otherwise
    tries: np.ndarray | None = None  # int16 per request: tries made (1 unless re-sent; 0 if never dispatched)
    late: np.ndarray | None = None  # int16 per request: late answers from abandoned tries, discarded
    wasted: np.ndarray | None = None  # float64 per request: slot-seconds of tries that delivered no answer
    history: Mapping[int, tuple] = field(default_factory=dict)  # request index -> its Try records (re-sent or late only)
    health: object | None = None  # a solution.sim.healthsim.HealthLog: transitions, probes, failure reasons
    # stage 5 (Scenario.kv_cache set): None otherwise
    cache: object | None = None  # a solution.sim.kvcache.CacheLog: per-request hit blocks and prefill saved, occupancy

    def __len__(self) -> int:
        return len(self.arrival)

    # -- derived per-request values ------------------------------------

    @property
    def ttft(self) -> np.ndarray:
        """Time to first token (NaN where no token came)."""
        return self.first_token - self.arrival

    @property
    def e2e(self) -> np.ndarray:
        """End-to-end latency of completed requests (NaN for the others)."""
        return np.where(self.outcome == Outcome.COMPLETED, self.finish - self.arrival, np.nan)

    @property
    def tpot(self) -> np.ndarray:
        """Time per output token after the first (NaN unless completed with two or more tokens, in LLM mode)."""
        steps = self.output_tokens.astype(np.float64) - 1.0
        ok = (self.outcome == Outcome.COMPLETED) & (steps > 0) & (self.mode != "classic")
        return np.where(ok, (self.finish - self.first_token) / np.where(ok, steps, 1.0), np.nan)

    @property
    def wait(self) -> np.ndarray:
        """Time from arrival to dispatch (NaN where the request was never dispatched).  0 without a queue."""
        return self.start - self.arrival

    def wasted_gpu_seconds(self) -> float:
        """Slot-seconds spent on work whose answer no client received.

        With health checking: every try that did not deliver (failed, lost in
        a crash, stuck on a hang, or answered late and discarded), from its
        start to its end.  Without: each request that did not complete, from
        its start to its end (a crashed request's work, a hung one's slot).  O(n).
        """
        if self.wasted is not None:
            return float(np.sum(self.wasted))
        bad = (self.outcome != Outcome.COMPLETED) & ~np.isnan(self.start)
        return float(np.sum(self.finish[bad] - self.start[bad]))

    def client_errors(self) -> int:
        """Requests whose client got an error: failed, crashed, rejected, or hung.  O(n)."""
        codes = (Outcome.FAILED, Outcome.CRASHED, Outcome.REJECTED, Outcome.HUNG)
        return int(np.count_nonzero(np.isin(self.outcome, [int(c) for c in codes])))

    def count(self, outcome: Outcome) -> int:
        return int(np.count_nonzero(self.outcome == outcome))

    def meets_slo(self, ttft: float, tpot: float) -> np.ndarray:
        """Per request: completed with a time to first token <= ``ttft`` and a TPOT <= ``tpot`` (seconds).

        A request without a TPOT (one output token, or classic mode) is
        judged on its TTFT alone.  O(n).

        Raises:
            ValueError: a bound that is not a number > 0.
        """
        for name, bound in (("ttft", ttft), ("tpot", tpot)):
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound > 0:
                raise ValueError(f"the {name} SLO must be a number of seconds > 0, got {bound!r}")
        tpot_ok = np.isnan(self.tpot) | (self.tpot <= tpot)
        return (self.outcome == Outcome.COMPLETED) & (self.ttft <= ttft) & tpot_ok

    def goodput(self, ttft: float, tpot: float, warmup: float = 0.0) -> float:
        """Requests per second that completed within both SLOs (see :meth:`meets_slo`).

        Measured over the same window as :meth:`summary` (arrivals at or
        after ``warmup``, to the last of their finishes), so it compares
        with ``summary(warmup).throughput_rps``.  O(n).
        """
        keep = self.arrival >= warmup
        if not keep.any():
            raise ValueError(f"no request arrives after the warm-up of {warmup} s; lower it")
        span = max(float(self.finish[keep].max()) - float(self.arrival[keep].min()), 1e-300)
        return float(np.count_nonzero(self.meets_slo(ttft, tpot)[keep]) / span)

    # -- over time -------------------------------------------------------

    def time_grid(self, points: int = 200) -> np.ndarray:
        """``points`` evenly spaced instants from the first arrival to the last finish."""
        return np.linspace(float(np.min(self.arrival)), float(np.max(self.finish)), points)

    def load_over_time(self, times: np.ndarray) -> np.ndarray:
        """Requests running on each server at each instant: shape ``(len(times), servers)``.

        A request runs on its server over ``[start, finish)``.  O(n log n).
        """
        times = np.asarray(times, dtype=np.float64)
        load = np.zeros((len(times), len(self.server_ids)), dtype=np.int64)
        started = ~np.isnan(self.start)
        for k in range(len(self.server_ids)):
            mine = started & (self.server == k)
            begins = np.sort(self.start[mine])
            ends = np.sort(self.finish[mine])
            load[:, k] = np.searchsorted(begins, times, "right") - np.searchsorted(ends, times, "right")
        return load

    def queue_depth_over_time(self, times: np.ndarray) -> np.ndarray:
        """Requests that have arrived but neither started nor ended, at each instant.

        Always 0 in stage 1 (a request is routed or rejected on arrival);
        stage-2 queues make it grow.  O(n log n).
        """
        times = np.asarray(times, dtype=np.float64)
        leave = np.where(np.isnan(self.start), self.finish, self.start)
        return np.searchsorted(np.sort(self.arrival), times, "right") - np.searchsorted(np.sort(leave), times, "right")

    # -- summaries ---------------------------------------------------------

    def summary(self, warmup: float = 0.0) -> Summary:
        """Percentiles, rates and utilization over the requests arriving at or after ``warmup``.

        The window runs from the first such arrival to the last such finish;
        throughput and utilization are measured over it.  O(n log n).
        """
        keep = self.arrival >= warmup
        if not keep.any():
            raise ValueError(f"no request arrives after the warm-up of {warmup} s; lower it")
        outcome = self.outcome[keep]
        done = outcome == Outcome.COMPLETED
        t0 = float(self.arrival[keep].min())
        t1 = float(self.finish[keep].max())
        span = max(t1 - t0, 1e-300)
        busy = np.clip(np.minimum(self.finish, t1) - np.maximum(self.start, t0), 0.0, None)
        busy = np.where(np.isnan(busy), 0.0, busy)
        routed = self.server >= 0
        per_server = np.bincount(self.server[routed], weights=busy[routed], minlength=len(self.server_ids))
        n = int(keep.sum())

        def pct(values: np.ndarray) -> tuple[float, ...]:
            values = values[~np.isnan(values)]
            return tuple(float(v) for v in np.percentile(values, _PERCENTILES)) if len(values) else (np.nan,) * 3

        ttft, e2e, tpot = pct(self.ttft[keep][done]), pct(self.e2e[keep][done]), pct(self.tpot[keep][done])
        waits = self.wait[keep]
        waits = waits[~np.isnan(waits)]
        queue = {o: int(np.count_nonzero(outcome == o)) for o in (Outcome.QUEUE_FULL, Outcome.TIMED_OUT, Outcome.CANCELLED)}
        return Summary(
            requests=n,
            completed=int(done.sum()),
            rejected=int(np.count_nonzero(outcome == Outcome.REJECTED)),
            failed=int(np.count_nonzero(outcome == Outcome.FAILED)),
            crashed=int(np.count_nonzero(outcome == Outcome.CRASHED)),
            rejection_rate=float(np.count_nonzero(outcome == Outcome.REJECTED) / n),
            loss_rate=float(1.0 - done.sum() / n),
            ttft_p50=ttft[0],
            ttft_p95=ttft[1],
            ttft_p99=ttft[2],
            e2e_p50=e2e[0],
            e2e_p95=e2e[1],
            e2e_p99=e2e[2],
            tpot_p50=tpot[0],
            throughput_rps=float(done.sum() / span),
            throughput_tps=float(self.output_tokens[keep][done].sum() / span),
            duration=span,
            utilization=tuple(float(u) for u in per_server / (self.capacity * span)),
            queueing=bool(self.queueing),
            queue_full=queue[Outcome.QUEUE_FULL],
            timed_out=queue[Outcome.TIMED_OUT],
            cancelled=queue[Outcome.CANCELLED],
            queue_full_rate=queue[Outcome.QUEUE_FULL] / n,
            timeout_rate=queue[Outcome.TIMED_OUT] / n,
            wait_mean=float(waits.mean()) if len(waits) else np.nan,
            wait_p99=float(np.percentile(waits, 99)) if len(waits) else np.nan,
        )

    # -- comparing runs ------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        """Every per-request array by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}

    def same_as(self, other: Results) -> bool:
        """True when both runs are identical bit for bit (NaNs in the same places)."""
        if (self.server_ids, self.tier_names, self.mode, self.queueing) != (other.server_ids, other.tier_names, other.mode, other.queueing):
            return False
        mine, theirs = self.arrays(), other.arrays()
        if mine.keys() != theirs.keys():
            return False
        return all(
            a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
            for a, b in ((mine[k], theirs[k]) for k in mine)
        )


@dataclass(frozen=True)
class Summary:
    """The headline figures of a run (see :meth:`Results.summary`).  Times in seconds."""

    requests: int
    completed: int
    rejected: int
    failed: int
    crashed: int
    rejection_rate: float  # REJECTED / requests
    loss_rate: float  # not COMPLETED (rejected, failed or crashed) / requests
    ttft_p50: float
    ttft_p95: float
    ttft_p99: float
    e2e_p50: float
    e2e_p95: float
    e2e_p99: float
    tpot_p50: float
    throughput_rps: float  # completed requests per second
    throughput_tps: float  # output tokens of completed requests per second
    duration: float
    utilization: tuple[float, ...]  # per server: mean fraction of its slots in use
    # stage 2: a queue at the gateway (zeros and NaN without one; the table shows them only with one)
    queueing: bool = False
    queue_full: int = 0  # rejected because the queue was full (503 by default, or the policy's 429)
    timed_out: int = 0
    cancelled: int = 0
    queue_full_rate: float = 0.0  # QUEUE_FULL / requests
    timeout_rate: float = 0.0  # TIMED_OUT / requests
    wait_mean: float = float("nan")  # seconds from arrival to dispatch, over dispatched requests
    wait_p99: float = float("nan")

    @property
    def throttled(self) -> int:
        """The old name of :attr:`queue_full`."""
        return self.queue_full

    @property
    def throttle_rate(self) -> float:
        """The old name of :attr:`queue_full_rate`."""
        return self.queue_full_rate

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def table(self) -> str:
        """A two-column text table."""
        return format_table({"value": self})


def _mean(values: tuple[float, ...]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _max(values: tuple[float, ...]) -> float:
    return max(values) if values else float("nan")


# (row title, how to get the value from a Summary, format)
_ROWS: tuple[tuple[str, Callable[[Summary], float], str], ...] = (
    ("requests", lambda s: s.requests, "{:,}"),
    ("completed", lambda s: s.completed, "{:,}"),
    ("rejected", lambda s: s.rejected, "{:,}"),
    ("failed", lambda s: s.failed, "{:,}"),
    ("crashed", lambda s: s.crashed, "{:,}"),
    ("rejection rate", lambda s: s.rejection_rate, "{:.2%}"),
    ("loss rate", lambda s: s.loss_rate, "{:.2%}"),
    ("TTFT p50 (s)", lambda s: s.ttft_p50, "{:.3f}"),
    ("TTFT p95 (s)", lambda s: s.ttft_p95, "{:.3f}"),
    ("TTFT p99 (s)", lambda s: s.ttft_p99, "{:.3f}"),
    ("e2e p50 (s)", lambda s: s.e2e_p50, "{:.3f}"),
    ("e2e p95 (s)", lambda s: s.e2e_p95, "{:.3f}"),
    ("e2e p99 (s)", lambda s: s.e2e_p99, "{:.3f}"),
    ("TPOT p50 (ms)", lambda s: s.tpot_p50 * 1e3, "{:.1f}"),
    ("throughput (req/s)", lambda s: s.throughput_rps, "{:.2f}"),
    ("throughput (tok/s)", lambda s: s.throughput_tps, "{:,.0f}"),
    ("duration (s)", lambda s: s.duration, "{:,.1f}"),
    ("mean utilization", lambda s: _mean(s.utilization), "{:.1%}"),
    ("max utilization", lambda s: _max(s.utilization), "{:.1%}"),
)


# Rows shown when a run had a queue at the gateway (stage 2).
_QUEUE_ROWS: tuple[tuple[str, Callable[[Summary], float], str], ...] = (
    ("queue full (503/429)", lambda s: s.queue_full, "{:,}"),
    ("timed out", lambda s: s.timed_out, "{:,}"),
    ("cancelled", lambda s: s.cancelled, "{:,}"),
    ("queue-full rate", lambda s: s.queue_full_rate, "{:.2%}"),
    ("timeout rate", lambda s: s.timeout_rate, "{:.2%}"),
    ("wait mean (s)", lambda s: s.wait_mean, "{:.3f}"),
    ("wait p99 (s)", lambda s: s.wait_p99, "{:.3f}"),
)


def table_rows(summaries: Mapping[str, Summary]) -> list[list[str]]:
    """The summary table as rows of strings: a header row, then one row per metric; ``n/a`` for NaN.

    The queue's rows (queue-full rejections, timeouts, waits) appear when a summary comes from a run with a queue.
    """
    rows = [["metric", *summaries]]
    queued = any(s.queueing for s in summaries.values())
    for title, get, fmt in _ROWS + (_QUEUE_ROWS if queued else ()):
        values = [get(s) for s in summaries.values()]
        rows.append([title, *("n/a" if v != v else fmt.format(v) for v in values)])
    return rows


def format_table(summaries: Mapping[str, Summary]) -> str:
    """A plain-text table with one column per labelled summary, e.g.
    ``print(format_table({"round robin": a.summary(), "least loaded": b.summary()}))``.
    """
    rows = table_rows(summaries)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
