"""Stage 2's check: an implementation's ``RequestQueue`` against the reference's, rule group by rule group.

Each queue runs under its own :class:`~solution.core.clock.ManualClock` inside a
:class:`QueueHarness`; a scenario is a list of calls on the harness (the
first, ``create``, makes the queue with a policy; ``advance`` moves the
clock).  After every call the results and the harness's ``state()`` (depth,
waiting order, next deadline, stats) must agree with the reference's.
Times move in steps of a quarter second or more, so every float is exact
and the comparison can be strict.

:func:`run_stage2` (``solution.checks.check_stage2``) prints one stable
line per group; ``tests/stage2/test_differential.py`` uses the same pieces.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from types import ModuleType
from typing import Any

from solution.checks.common import CheckReport, Mismatch, Op, compare_with_reference, minimize
from solution.checks.runner import StageSpec, as_groups, run_check
from solution.checks.script import Group
from solution.core.clock import ManualClock
from solution.core.queue_types import Dispatched, QueuePolicy

__all__ = ["QueueHarness", "STAGE2_GROUPS", "SPEC", "random_queue_ops", "compare_queue", "run_stage2"]


class QueueHarness:
    """A queue under a manual clock, driven by lists of calls.

    ``QueueHarness(RequestQueue)`` has no queue until ``create(config)``,
    which builds ``RequestQueue(clock, QueuePolicy(**config))``.  The other
    methods forward to the queue, except :meth:`advance` (the clock) and
    :meth:`dispatch_next` (what a gateway does when a slot frees).
    """

    def __init__(self, queue_class: Callable[..., Any]) -> None:
        self.queue_class = queue_class
        self.clock = ManualClock()
        self.queue: Any = None

    def create(self, config: dict[str, Any]) -> None:
        self.queue = self.queue_class(self.clock, QueuePolicy(**config))

    def advance(self, seconds: float) -> float:
        return self.clock.advance(seconds)

    def enqueue(self, request_id: Any, estimated_tokens: Any, priority: Any = 0, *prompt_tokens: Any) -> Any:
        """``enqueue``; a fourth value is passed as ``prompt_tokens=`` (cases without it never pass it)."""
        if prompt_tokens:
            return self.queue.enqueue(request_id, estimated_tokens, priority, prompt_tokens=prompt_tokens[0])
        return self.queue.enqueue(request_id, estimated_tokens, priority)

    def peek(self, large_ok: Any = True) -> Any:
        return self.queue.peek(large_ok)

    def dispatch(self, request_id: Any, server_id: Any) -> Any:
        return self.queue.dispatch(request_id, server_id)

    def dispatch_next(self, large_ok: bool, server_id: str) -> Dispatched | None:
        """Dispatch the request ``peek(large_ok)`` names, if any, to ``server_id``."""
        head = self.queue.peek(large_ok)
        return None if head is None else self.queue.dispatch(head.request_id, server_id)

    def cancel(self, request_id: Any) -> Any:
        return self.queue.cancel(request_id)

    def expire(self) -> Any:
        return self.queue.expire()

    def next_deadline(self) -> Any:
        return self.queue.next_deadline()

    def record_completion(self) -> None:
        self.queue.record_completion()

    def retry_after(self) -> Any:
        return self.queue.retry_after()

    def contains(self, request_id: Any) -> bool:
        return request_id in self.queue

    def state(self) -> dict[str, Any] | None:
        """Everything observable about the queue now (``None`` before ``create``)."""
        q = self.queue
        if q is None:
            return None
        return {"depth": len(q), "waiting": q.waiting(), "next_deadline": q.next_deadline(), "stats": q.stats()}


def compare_queue(impl: ModuleType, ops: list[Op]) -> Mismatch | None:
    """The first difference between ``impl.RequestQueue`` and the reference's on ``ops``, minimized (None: none)."""
    make = lambda: QueueHarness(impl.RequestQueue)  # noqa: E731
    from solution.request_queue import RequestQueue  # the reference; absent from a candidate's bundle

    ref = lambda: QueueHarness(RequestQueue)  # noqa: E731
    mismatch = compare_with_reference(make, ops, make_reference=ref, snapshot="state")
    return None if mismatch is None else minimize(make, ops, mismatch, make_reference=ref, snapshot="state")


# -- scenarios ------------------------------------------------------------------------


def _create(**config: Any) -> Op:
    return ("create", (config,))


def _enqueue(*specs: tuple[Any, ...]) -> list[Op]:
    return [("enqueue", spec) for spec in specs]


def _next(large_ok: bool, server: str, times: int = 1) -> list[Op]:
    return [("dispatch_next", (large_ok, server))] * times


ADVANCE = ("advance", (1.0,))
EXPIRE = ("expire", ())
DONE = ("record_completion", ())
RETRY = ("retry_after", ())

#: The group whose cases judge error messages too (quote the id; name the bad argument).
MESSAGES = "error messages: quote the id, name the bad argument"

#: Rule groups of stage 2: (name, scenarios).  Each scenario is a list of calls on a QueueHarness.
STAGE2_GROUPS: tuple[tuple[str, tuple[list[Op], ...]], ...] = (
    (
        "FIFO: first come, first served",
        (
            [_create()] + _enqueue(("c", 10), ("a", 9000), ("b", 10)) + [("peek", (True,))] + _next(True, "s", 3) + [("peek", (True,))],
            [_create(ordering="fifo"), ("enqueue", ("a", 10)), ADVANCE, ("enqueue", ("b", 10, 5)), ADVANCE, ("dispatch", ("b", "s")),
             ("enqueue", ("b", 10)), ("contains", ("a",)), ("contains", ("b",)), ("contains", ("z",))] + _next(True, "s", 2),
        ),
    ),
    (
        "priority: higher class first, FIFO within a class",
        (
            [_create(ordering="priority")] + _enqueue(("low1", 10, 0), ("high1", 10, 2), ("mid", 10, 1), ("high2", 10, 2), ("low2", 10))
            + _next(True, "s", 5),
            [_create(ordering="priority")] + _enqueue(("a", 10, 1), ("b", 10, 1)) + [ADVANCE] + _enqueue(("c", 10, 3))
            + _next(True, "s") + _enqueue(("d", 10, 3)) + _next(True, "s", 3),
        ),
    ),
    (
        "shortest job first, with aging",
        (
            [_create(ordering="sjf")] + _enqueue(("long", 3000), ("short", 20), ("mid", 400), ("tiny", 1)) + _next(True, "s", 4),
            # aging 10 tokens/s: 'old' (1000 tokens) is not overtaken by 'new' (600) arriving 50 s later: 600 + 500 > 1000
            [_create(ordering="sjf", aging_rate=10.0), ("enqueue", ("old", 1000)), ("advance", (50.0,)), ("enqueue", ("new", 600)),
             ("advance", (10.0,)), ("enqueue", ("newer", 200))] + _next(True, "s", 3),
            [_create(ordering="sjf", aging_rate=4.0), ("enqueue", ("a", 100)), ("advance", (24.75,)), ("enqueue", ("b", 1)),
             ("advance", (0.25,)), ("enqueue", ("c", 1))] + _next(True, "s", 3),
            # the size is output + prompt_token_weight * prompt: a long prompt with a short answer is a short job
            [_create(ordering="sjf", aging_rate=1.0)] + _enqueue(("chat", 300, 0, 50), ("doc", 4000, 0, 3990), ("plain", 100),
                                                                 ("echo", 20, 0, 20), ("long-answer", 2100, 0, 100))
            + _next(True, "s", 5),
            [_create(ordering="sjf", aging_rate=2.0, prompt_token_weight=0.5)] + _enqueue(("a", 300, 0, 200)) + [ADVANCE]
            + _enqueue(("b", 300, 0, 250), ("c", 197)) + _next(True, "s", 3),
            [_create(ordering="sjf", prompt_token_weight=0)] + _enqueue(("x", 900, 1, 900), ("y", 10, 1, 0)) + _next(True, "s", 2),
        ),
    ),
    (
        "head-of-line: small requests pass a large one that does not fit; skips are bounded",
        (
            [_create()] + _enqueue(("large", 9000), ("s1", 100), ("s2", 100)) + [("peek", (False,))] + _next(False, "a10")
            + [("peek", (True,))] + _next(True, "h100", 2),
            [_create(max_skips=2)] + _enqueue(("large", 9000), ("s1", 100), ("s2", 100), ("s3", 100)) + _next(False, "a10", 2)
            + _enqueue(("s4", 100)) + _next(True, "h100") + _next(True, "h100"),
            [_create(ordering="priority", max_skips=2)] + _enqueue(("large", 9000, 1), ("s1", 100), ("s2", 100)) + _next(False, "a10", 2)
            + _enqueue(("vip", 100, 9)) + [("peek", (False,)), ("peek", (True,))] + _next(True, "h100", 2),
            [_create(ordering="sjf", max_skips=1)] + _enqueue(("large", 5000), ("s1", 100)) + _next(False, "a10")
            + [("cancel", ("large",))] + _enqueue(("large2", 6000), ("s2", 7000), ("s3", 100)) + _next(True, "h100", 3),
            # no skips are counted while a request is reserved: L2 (class 1) ranks ahead of s3 and s4 while L1 is
            # reserved, and is passed over for free; once L1 leaves, L2 needs two skips of its own
            [_create(ordering="priority", max_skips=2)] + _enqueue(("L1", 9000), ("s1", 100), ("s2", 100)) + _next(False, "a10", 2)
            + _enqueue(("L2", 9000, 1), ("s3", 100), ("s4", 100)) + _next(False, "a10", 2) + _next(True, "h100")
            + _enqueue(("vip", 100, 5), ("s5", 100), ("s6", 100)) + [("dispatch", ("s5", "a10")), ("peek", (True,))]
            + [("dispatch", ("s6", "a10")), ("peek", (True,))] + _next(True, "h100", 2),
        ),
    ),
    (
        "max depth: reject (503, or the policy's 429) with a Retry-After from depth and completion rate",
        (
            [_create(max_depth=2)] + _enqueue(("a", 10), ("b", 10), ("c", 10)) + [RETRY] + _next(True, "s") + _enqueue(("c", 10), ("d", 10)),
            [_create(max_depth=3, rate_window=10.0)] + _enqueue(("a", 10), ("b", 10), ("c", 10)) + [ADVANCE, DONE, ADVANCE, DONE, RETRY]
            + [("advance", (4.0,)), DONE, RETRY, ("enqueue", ("d", 10)), ("advance", (9.0,)), RETRY, ("advance", (2.0,)), RETRY],
            [_create(max_depth=0), ADVANCE, ("enqueue", ("a", 10)), DONE, ("advance", (0.5,)), DONE, ("enqueue", ("b", 10))],
            [_create(max_depth=1, max_wait=2.5)] + _enqueue(("a", 10), ("b", 10)) + [ADVANCE, DONE, DONE, DONE, DONE, RETRY,
                                                                                         ("enqueue", ("c", 10))],
            [_create(max_depth=1, reject_status=429)] + _enqueue(("a", 10), ("b", 10, 0, 5)) + [ADVANCE, DONE, ("enqueue", ("c", 10))],
        ),
    ),
    (
        "max wait: timeout at exactly the deadline",
        (
            [_create(max_wait=2.0), ("enqueue", ("a", 10)), ("advance", (0.5,)), ("enqueue", ("b", 10)), ("next_deadline", ()),
             ("advance", (1.25,)), EXPIRE, ("advance", (0.25,)), EXPIRE, ("next_deadline", ()), ("advance", (0.5,)), EXPIRE,
             ("next_deadline", ()), EXPIRE],
            [_create(max_wait=1.0), ("enqueue", ("a", 10)), ("enqueue", ("b", 10)), ("dispatch", ("a", "s")), ("next_deadline", ()),
             ("advance", (5.0,)), EXPIRE, ("enqueue", ("a", 10)), ("next_deadline", ())],
            [_create(), ("enqueue", ("a", 10)), ("advance", (1e6,)), EXPIRE, ("next_deadline", ())],
        ),
    ),
    (
        "cancellation",
        (
            [_create(ordering="priority")] + _enqueue(("a", 10, 1), ("b", 10, 1), ("c", 10)) + [ADVANCE, ("cancel", ("a",)),
             ("cancel", ("a",)), ("cancel", ("ghost",))] + _next(True, "s") + [("cancel", ("b",)), ("enqueue", ("a", 10))],
            [_create(max_wait=3.0, max_depth=2)] + _enqueue(("a", 10), ("b", 10)) + [("cancel", ("a",)), ("next_deadline", ()),
             ("enqueue", ("c", 10)), ("advance", (3.5,)), EXPIRE],
        ),
    ),
    (
        "depth metrics and the scale-up signal",
        (
            [_create(scale_up_depth=1, scale_up_after=2.0)] + _enqueue(("a", 10), ("b", 10)) + [ADVANCE, ADVANCE]
            + _next(True, "s") + [ADVANCE] + _enqueue(("c", 10)) + [ADVANCE, ADVANCE, ADVANCE] + _next(True, "s", 2),
            [_create(scale_up_depth=0, scale_up_after=0.0), ("advance", (2.0,))] + _enqueue(("a", 10)) + [("advance", (0.5,))]
            + _next(True, "s") + [("advance", (1.5,))],
        ),
    ),
    (
        "bad input: right exception, state unchanged",
        (
            [_create(max_depth=3, max_wait=5.0)] + _enqueue(("a", 10))
            + _enqueue(("a", 10), ("", 10), (None, 10), (7, 10), ("b", 0), ("b", -1), ("b", True), ("b", 1.5), ("b", "10"),
                       ("b", 10, -1), ("b", 10, True), ("b", 10, 0.5), ("b", 10, 0, 11), ("b", 10, 0, -1), ("b", 10, 0, 1.5),
                       ("b", 10, 0, True), ("b", 10, 0, "3"))
            + [("dispatch", ("ghost", "s")), ("dispatch", ("a", "")), ("dispatch", ("a", None)), ("dispatch", (None, "s")),
               ("cancel", ("ghost",)), ("cancel", ("",)), ("cancel", (3,)), ("peek", (1,)), ("peek", (None,))]
            + _enqueue(("b", 10)) + _next(True, "s", 2),
        ),
    ),
    (
        MESSAGES,
        (
            [_create(max_depth=1)] + _enqueue(("a", 10)) + [("enqueue", ("a", 10)), ("cancel", ("ghost",)), ("dispatch", ("ghost", "s")),
                                                            ("enqueue", ("b", 0)), ("enqueue", ("b", 10, -1)), ("enqueue", ("b", 2.5)),
                                                            ("enqueue", ("b", 10, 0, 11))],
            [_create()] + _enqueue(("job 7", 100)) + _next(True, "s") + [("cancel", ("job 7",)), ("dispatch", ("job 7", "s")),
                                                                       ("enqueue", ("x", 10, "high"))],
        ),
    ),
)


def random_queue_ops(seed: int, n: int = 200) -> list[Op]:
    """A seeded random policy, then ``n`` random calls over a few request ids and quarter-second steps."""
    rng = random.Random(seed)
    config: dict[str, Any] = {
        "ordering": rng.choice(["fifo", "priority", "sjf"]),
        "max_depth": rng.choice([None, 0, 3, 8]),
        "max_wait": rng.choice([None, 2.0, 5.5]),
        "aging_rate": rng.choice([1.0, 50.0]),
        "prompt_token_weight": rng.choice([0.0, 0.25, 1.0]),
        "reject_status": rng.choice([503, 429]),
        "max_skips": rng.choice([1, 2, 3]),
        "rate_window": rng.choice([4.0, 60.0]),
        "scale_up_depth": rng.choice([None, 2]),
        "scale_up_after": rng.choice([0.0, 1.5]),
    }
    ops: list[Op] = [_create(**config)]
    kinds = ("enqueue", "advance", "next", "dispatch", "cancel", "expire", "done", "retry", "peek")
    for _ in range(n):
        kind = rng.choices(kinds, weights=(8, 5, 5, 1, 2, 2, 3, 1, 1))[0]
        rid = f"r{rng.randrange(24)}"
        if kind == "enqueue":
            tokens = rng.choice([1, 50, 800, 4096, 4097, 30_000])
            spec: tuple[Any, ...] = (rid, tokens, rng.randrange(4))
            if rng.random() < 0.5:
                spec += (rng.choice([0, tokens // 2, tokens - 1, tokens]),)  # with the prompt/output split
            ops.append(("enqueue", spec))
        elif kind == "advance":
            ops.append(("advance", (rng.choice([0.0, 0.25, 0.5, 1.0, 2.5]),)))
        elif kind == "next":
            ops.append(("dispatch_next", (rng.random() < 0.5, f"s{rng.randrange(3)}")))
        elif kind == "dispatch":
            ops.append(("dispatch", (rid, "s0")))
        elif kind == "cancel":
            ops.append(("cancel", (rid,)))
        elif kind == "peek":
            ops.append(("peek", (rng.random() < 0.5,)))
        else:
            ops.append({"expire": EXPIRE, "done": DONE, "retry": RETRY}[kind])
    return ops


class QueueHarnessMaker:
    """Stage 2's cases build a :class:`QueueHarness` around ``impl.RequestQueue`` and look at its ``state()``."""

    stage = 2
    snapshot = "state"

    def build(self, impl: Any, make: Any) -> QueueHarness:
        return QueueHarness(impl.RequestQueue)


RANDOM_GROUP = "random operations against the reference (seeded)"


def public_groups() -> tuple[Group, ...]:
    """The check cells' groups: the rule groups, then 12 seeded random sequences."""
    return as_groups("p2", STAGE2_GROUPS + ((RANDOM_GROUP, tuple(random_queue_ops(s) for s in range(12))),), messages=(MESSAGES,))


SPEC = StageSpec(2, "request_queue", ("RequestQueue",), QueueHarnessMaker(), public_groups)


def run_stage2(impl: ModuleType | None = None, *, echo: bool = True, only: str | tuple[str, ...] | None = None, strict: bool = True) -> CheckReport:
    """Compare ``impl.RequestQueue`` (default: ``LB_IMPL``'s) with the reference's recorded behaviour.

    ``only`` keeps the groups whose name starts with it (the notebook checks
    each rule group in its own cell); a prefix that names no group is a
    ``ValueError``.  Prints one line per group, returns the report, and
    raises :class:`~solution.checks.common.CheckFailed` if a group fails
    (``strict=False`` only returns).
    """
    return run_check(SPEC, impl, echo=echo, only=only, strict=strict)
