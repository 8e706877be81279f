"""Stage 4's check: an implementation's ``HealthChecker`` and ``RetryLedger`` against the reference's, rule by rule.

A case builds a :class:`HealthHarness` (one checker and one ledger of the
implementation, with the case's policies) and drives it with calls on the
caller's clock; after every call the harness's :meth:`HealthHarness.snapshot`
(``get_server_stats()``, the transition log's length and last entries,
``ejected_count()``, the ledger's ``stats()``) is compared with the reference's recorded one, so a
failed call must leave the state unchanged.  Floats are compared rounded to
nine decimals: ``(t / W) ** (1 / aggression)`` written another way may differ
in the last bit, never in a rule.

:func:`run_stage4` (``solution.checks.check_stage4``) prints one line per
group; ``tests/stage4/test_differential.py`` uses :func:`random_ops4`.
"""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any

from solution.checks.common import CheckReport, Op
from solution.checks.runner import StageSpec, as_groups, run_check
from solution.checks.script import Group
from solution.core.health_types import HealthPolicy, RetryPolicy

__all__ = ["HealthHarness", "HealthHarnessMaker", "STAGE4_GROUPS", "RANDOM_GROUP", "GROUP_NAMES", "SPEC", "random_ops4", "run_stage4"]


def _round(value: Any) -> Any:
    """``value`` with every float rounded to 9 decimals (containers and dataclass fields included)."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_round(v) for v in value)
    return value


def _transition(t: Any) -> list[Any]:
    old = getattr(t, "old", None)
    return [t.server_id, None if old is None else str(getattr(old, "value", old)), str(getattr(t.new, "value", t.new)),
            round(float(t.at), 9), t.reason]  # fmt: skip


def _attempt(a: Any) -> list[Any]:
    return [a.server_id, _round(a.start), _round(a.end), a.outcome, _round(a.late_answer_at)]


class HealthHarness:
    """One ``impl.HealthChecker(HealthPolicy(**policy), seed=seed)`` and one ``impl.RetryLedger(RetryPolicy(**retry))``.

    Checker calls keep their names; ledger calls are ``begin``, ``first_token``,
    ``server_down``, ``timed_out``, ``answer``, ``fail``, ``finish``,
    ``status``, ``history`` and ``ledger_stats``.
    """

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        policy = HealthPolicy(**make.get("policy", {})) if make.get("policy") is not None else None
        self.checker = impl.HealthChecker(policy, seed=make.get("seed", 0))
        self.ledger = impl.RetryLedger(RetryPolicy(**make.get("retry", {})))

    # checker
    def add_server(self, server_id: Any, now: Any, warm: Any = False) -> None:
        return self.checker.add_server(server_id, now, warm=warm)

    def remove_server(self, server_id: Any) -> None:
        return self.checker.remove_server(server_id)

    def next_probe_time(self) -> Any:
        return _round(self.checker.next_probe_time())

    def due_probes(self, now: Any) -> list[str]:
        return list(self.checker.due_probes(now))

    def probe_result(self, server_id: Any, ok: Any, now: Any) -> None:
        return self.checker.probe_result(server_id, ok, now)

    def request_result(self, server_id: Any, ok: Any, now: Any, seconds_per_token: Any = None) -> None:
        return self.checker.request_result(server_id, ok, now, seconds_per_token)

    def advance(self, now: Any) -> None:
        return self.checker.advance(now)

    def next_change_time(self) -> Any:
        return _round(self.checker.next_change_time())

    def state(self, server_id: Any) -> str:
        return str(self.checker.state(server_id).value)

    def weight(self, server_id: Any, now: Any) -> Any:
        return _round(self.checker.weight(server_id, now))

    def trial_limit(self, server_id: Any) -> Any:
        return self.checker.trial_limit(server_id)

    # ledger
    def begin(self, request_id: Any, server_id: Any, now: Any) -> int:
        return self.ledger.begin(request_id, server_id, now)

    def first_token(self, request_id: Any, now: Any) -> None:
        return self.ledger.first_token(request_id, now)

    def server_down(self, server_id: Any, now: Any) -> Any:
        resend, failed = self.ledger.server_down(server_id, now)
        return [list(resend), list(failed)]

    def timed_out(self, request_id: Any, now: Any) -> bool:
        return self.ledger.timed_out(request_id, now)

    def answer(self, request_id: Any, server_id: Any, now: Any) -> bool:
        return self.ledger.answer(request_id, server_id, now)

    def fail(self, request_id: Any, now: Any) -> None:
        return self.ledger.fail(request_id, now)

    def finish(self, request_id: Any) -> None:
        return self.ledger.finish(request_id)

    def status(self, request_id: Any) -> str:
        return self.ledger.status(request_id)

    def history(self, request_id: Any) -> list[list[Any]]:
        return [_attempt(a) for a in self.ledger.history(request_id)]

    def ledger_stats(self) -> dict[str, int]:
        return dict(self.ledger.stats())

    def snapshot(self) -> dict[str, Any]:
        """What is compared after every call: the servers' stats, the log (length and last three), the ledger's counts."""
        log = self.checker.transitions
        return {"servers": _round(self.checker.get_server_stats()), "transitions": len(log),
                "last": [_transition(t) for t in log[-3:]], "ejected": self.checker.ejected_count(),
                "ledger": dict(self.ledger.stats())}  # fmt: skip


class _Bare:
    """What a case that only builds (and must fail to) returns."""

    def snapshot(self) -> None:
        return None


class HealthHarnessMaker:
    """Stage 4's cases build a :class:`HealthHarness`; ``{"bare": ...}`` only builds the classes with bad arguments."""

    stage = 4
    snapshot = "snapshot"

    def build(self, impl: Any, make: Any) -> Any:
        if make.get("bare") == "checker":
            impl.HealthChecker(*make.get("args", []), **make.get("kwargs", {}))
            return _Bare()
        if make.get("bare") == "ledger":
            impl.RetryLedger(*make.get("args", []), **make.get("kwargs", {}))
            return _Bare()
        return HealthHarness(impl, make)


def _fleet(n: int = 4, now: float = 0.0) -> list[Op]:
    return [("add_server", (f"s{i}", now, True)) for i in range(n)]


def _fails(server: str, start: float, count: int, step: float = 0.1) -> list[Op]:
    return [("request_result", (server, False, round(start + k * step, 6))) for k in range(count)]


FAST = {"interval": 2.0, "timeout": 0.5, "jitter": 0.2}

#: (group name, [(make, ops), ...]) in the order the notebook teaches them.
STAGE4_GROUPS: tuple[tuple[str, tuple[tuple[dict[str, Any], list[Op]], ...]], ...] = (
    ("add: warm healthy, new recovering", (
        ({}, _fleet(2) + [("add_server", ("new", 1.0)), ("state", ("new",)), ("weight", ("new", 1.0)), ("trial_limit", ("new",)),
                          ("state", ("s0",)), ("weight", ("s0", 1.0)), ("add_server", ("s0", 2.0, True))]),
        ({"policy": {"slow_start_window": 10.0}}, [("add_server", ("a", 5.0)), ("next_change_time", ()), ("advance", (15.0,)),
                                                    ("state", ("a",)), ("remove_server", ("a",)), ("state", ("a",)), ("add_server", ("a", 16.0, True))]),
    )),
    ("active checks: probe schedule and jitter", (
        ({"policy": FAST, "seed": 3}, _fleet(4) + [("next_probe_time", ()), ("due_probes", (1.0,)), ("next_probe_time", ()),
                                                   ("due_probes", (2.5,)), ("due_probes", (4.0,)), ("next_probe_time", ()), ("due_probes", (9.0,))]),
        ({"policy": {**FAST, "jitter": 0.0}, "seed": 5}, _fleet(3) + [("due_probes", (2.0,)), ("next_probe_time", ()), ("remove_server", ("s1",)),
                                                                       ("due_probes", (4.0,)), ("next_probe_time", ()), ("due_probes", (6.0,))]),
    )),
    ("active checks: thresholds", (
        ({"policy": {**FAST, "unhealthy_threshold": 3, "healthy_threshold": 2}}, _fleet(3) + [
            ("probe_result", ("s1", False, 1.0)), ("probe_result", ("s1", False, 3.0)), ("probe_result", ("s1", True, 5.0)),
            ("probe_result", ("s1", False, 7.0)), ("probe_result", ("s1", False, 9.0)), ("probe_result", ("s1", False, 11.0)),
            ("state", ("s1",)), ("weight", ("s1", 11.0)), ("probe_result", ("s1", True, 13.0)), ("probe_result", ("s1", False, 15.0)),
            ("probe_result", ("s1", True, 17.0)), ("probe_result", ("s1", True, 19.0)), ("state", ("s1",)), ("trial_limit", ("s1",))]),
        ({"policy": {**FAST, "unhealthy_threshold": 1, "healthy_threshold": 1}}, _fleet(2) + [
            ("probe_result", ("s0", False, 1.0)), ("request_result", ("s0", True, 1.5)), ("probe_result", ("s0", True, 2.0)),
            ("request_result", ("s0", True, 2.5)), ("request_result", ("s0", True, 2.6))]),
    )),
    ("passive checks: consecutive_5xx ejection", (
        ({"policy": {"consecutive_5xx": 3, "base_ejection_time": 10.0, "max_ejection_time": 35.0, "half_open_trials": 1}}, _fleet(4) + [
            *_fails("s0", 1.0, 2), ("request_result", ("s0", True, 1.3)), *_fails("s0", 1.4, 3), ("next_change_time", ()),
            ("advance", (11.5,)), *_fails("s0", 12.0, 1), ("next_change_time", ()), ("advance", (32.1,)), *_fails("s0", 33.0, 1),
            ("next_change_time", ()), ("advance", (73.0,)), *_fails("s0", 74.0, 1), ("next_change_time", ())]),
        ({"policy": {"consecutive_5xx": 2, "base_ejection_time": 5.0, "max_ejection_time": 20.0, "slow_start_window": 5.0}}, _fleet(4) + [
            *_fails("s2", 1.0, 2), ("advance", (6.0,)), ("request_result", ("s2", True, 6.5)), ("advance", (12.0,)), ("state", ("s2",)),
            *_fails("s2", 13.0, 2), ("next_change_time", ()), ("advance", (60.0,)), ("request_result", ("s2", True, 60.5)),
            ("advance", (70.0,)), *_fails("s2", 100.0, 2), ("next_change_time", ())]),
    )),
    ("passive checks: max_ejection_percent", (
        ({"policy": {"consecutive_5xx": 1, "max_ejection_percent": 50.0}}, _fleet(4) + [
            *_fails("s0", 1.0, 1), *_fails("s1", 1.1, 1), *_fails("s2", 1.2, 1), *_fails("s3", 1.3, 1), ("state", ("s2",)),
            ("probe_result", ("s3", False, 2.0)), ("probe_result", ("s3", False, 3.0)), ("probe_result", ("s3", False, 4.0)),
            ("remove_server", ("s0",)), *_fails("s2", 5.0, 1)]),
        ({"policy": {"consecutive_5xx": 1, "max_ejection_percent": 10.0}}, _fleet(5) + [*_fails("s4", 1.0, 3)]
         + [("add_server", (f"n{i}", 2.0, True)) for i in range(5)] + _fails("s4", 3.0, 1) + _fails("n0", 3.1, 1)),
    )),
    ("circuit breaker: half-open trials", (
        ({"policy": {"consecutive_5xx": 2, "base_ejection_time": 4.0, "max_ejection_time": 100.0, "half_open_trials": 3,
                     "min_weight": 0.25, "slow_start_window": 8.0}}, _fleet(3) + [
            *_fails("s1", 1.0, 2), ("weight", ("s1", 2.0)), ("advance", (5.5,)), ("trial_limit", ("s1",)), ("weight", ("s1", 5.5)),
            ("request_result", ("s1", True, 6.0)), ("request_result", ("s1", True, 6.5)), ("trial_limit", ("s1",)),
            ("request_result", ("s1", False, 7.0)), ("next_change_time", ()), ("advance", (15.0,)),
            ("request_result", ("s1", True, 15.5)), ("request_result", ("s1", True, 16.0)), ("request_result", ("s1", True, 16.5)),
            ("trial_limit", ("s1",)), ("weight", ("s1", 18.5)), ("advance", (24.5,)), ("state", ("s1",))]),
    )),
    ("degraded: error rate and latency outlier", (
        ({"policy": {"consecutive_5xx": 50, "ewma_alpha": 0.5, "degraded_error_rate": 0.5, "hysteresis": 0.5}}, _fleet(3) + [
            ("request_result", ("s0", False, 1.0)), ("request_result", ("s0", True, 1.1)), ("request_result", ("s0", False, 1.2)),
            ("weight", ("s0", 1.2)), ("request_result", ("s0", True, 1.3)), ("request_result", ("s0", True, 1.4)),
            ("request_result", ("s0", True, 1.5)), ("state", ("s0",))]),
        ({"policy": {"ewma_alpha": 0.5, "latency_factor": 2.0, "hysteresis": 0.5, "degraded_weight": 0.3}}, _fleet(3) + [
            ("request_result", ("s0", True, 1.0, 0.01)), ("request_result", ("s1", True, 1.0, 0.01)),
            ("request_result", ("s2", True, 1.0, 0.01)), ("request_result", ("s2", True, 1.1, 0.2)), ("request_result", ("s2", True, 1.2, 0.2)),
            ("state", ("s2",)), ("weight", ("s2", 1.2)), ("request_result", ("s2", True, 1.3, 0.02)), ("request_result", ("s2", True, 1.4, 0.02)),
            ("request_result", ("s2", True, 1.5, 0.01)), ("request_result", ("s2", True, 1.6, 0.01)), ("state", ("s2",)),
            ("request_result", ("s2", True, 1.7, 0.01)), ("request_result", ("s2", True, 1.8, 0.01)), ("state", ("s2",))]),
        ({"policy": {"ewma_alpha": 1.0, "latency_factor": 3.0}}, _fleet(2) + [
            ("request_result", ("s0", True, 1.0, 0.05)), ("request_result", ("s1", True, 1.1, 0.2)), ("state", ("s1",)),
            ("request_result", ("s0", True, 1.2, 0.01)), ("request_result", ("s1", True, 1.3, 0.2)), ("state", ("s1",)),
            ("remove_server", ("s0",)), ("request_result", ("s1", True, 1.4, 0.2)), ("state", ("s1",))]),
    )),
    ("slow start: aggression curve and min_weight", tuple(
        ({"policy": {"slow_start_window": 20.0, "aggression": aggression, "min_weight": min_weight}},
         _fleet(1) + [("add_server", ("new", 0.0))] + [("weight", ("new", float(t))) for t in (0, 1, 5, 10, 15, 19.9, 20, 30)]
         + [("advance", (20.0,)), ("state", ("new",))])
        for aggression, min_weight in ((1.0, 0.1), (2.0, 0.05), (0.5, 0.2))
    )),
    ("re-route: re-send or fail", (
        ({"retry": {"max_tries": 3}}, [
            ("begin", ("r1", "a", 0.0)), ("begin", ("r2", "a", 0.1)), ("begin", ("r3", "b", 0.2)), ("first_token", ("r2", 0.5)),
            ("server_down", ("a", 1.0)), ("status", ("r1",)), ("status", ("r2",)), ("begin", ("r1", "b", 1.1)),
            ("server_down", ("b", 2.0)), ("begin", ("r1", "c", 2.1)), ("server_down", ("c", 3.0)), ("history", ("r1",)),
            ("begin", ("r3", "c", 3.1)), ("fail", ("r3", 3.2)), ("finish", ("r1",)), ("history", ("r1",))]),
        ({"retry": {"max_tries": 2, "per_try_timeout": 5.0}}, [
            ("begin", ("r1", "a", 0.0)), ("timed_out", ("r1", 4.0)), ("timed_out", ("r1", 5.0)), ("begin", ("r1", "b", 5.0)),
            ("first_token", ("r1", 6.0)), ("timed_out", ("r1", 10.0)), ("status", ("r1",)), ("history", ("r1",)),
            ("begin", ("r2", "a", 11.0)), ("timed_out", ("r2", 16.0)), ("begin", ("r2", "b", 16.0)), ("timed_out", ("r2", 21.0))]),
    )),
    ("re-route: exactly one answer", (
        ({}, [
            ("begin", ("r1", "a", 0.0)), ("server_down", ("a", 1.0)), ("begin", ("r1", "b", 1.0)), ("answer", ("r1", "a", 1.5)),
            ("answer", ("r1", "b", 2.0)), ("answer", ("r1", "b", 2.5)), ("history", ("r1",)), ("finish", ("r1",)),
            ("answer", ("r1", "b", 3.0)), ("begin", ("r2", "a", 3.0)), ("answer", ("r2", "z", 3.1)), ("answer", ("r2", "a", 3.2)),
            ("ledger_stats", ())]),
        ({"retry": {"max_tries": 2, "per_try_timeout": 1.0}}, [
            ("begin", ("r1", "a", 0.0)), ("timed_out", ("r1", 1.0)), ("begin", ("r1", "b", 1.0)), ("timed_out", ("r1", 2.0)),
            ("answer", ("r1", "b", 2.5)), ("answer", ("r1", "a", 2.6)), ("status", ("r1",)), ("history", ("r1",))]),
    )),
    ("bad input: the right exception, nothing changes", (
        ({"bare": "checker", "kwargs": {"seed": -1}}, []),
        ({"bare": "checker", "kwargs": {"seed": 1.5}}, []),
        ({"bare": "checker", "args": [{"interval": 1}]}, []),
        ({"bare": "ledger", "args": ["3"]}, []),
        ({}, _fleet(2) + [
            ("add_server", ("", 1.0)), ("add_server", (7, 1.0)), ("add_server", ("x", -0.0, "yes")), ("add_server", ("x", float("nan"))),
            ("add_server", ("x", True)), ("add_server", ("s0", 1.0)), ("remove_server", ("ghost",)), ("probe_result", ("ghost", True, 1.0)),
            ("probe_result", ("s0", 1, 1.0)), ("probe_result", ("s0", True, "1")), ("request_result", ("s0", False, 1.0, -0.5)),
            ("request_result", ("s0", True, 1.0, 0.0)), ("request_result", ("s0", None, 1.0)), ("due_probes", (None,)),
            ("advance", (5.0,)), ("advance", (4.0,)), ("probe_result", ("s1", False, 4.5)), ("weight", ("s1", 4.9)), ("weight", ("ghost", 6.0)),
            ("state", ("ghost",)), ("trial_limit", (3,)), ("remove_server", ("s1",)), ("probe_result", ("s1", True, 6.0)),
            ("request_result", ("s1", True, 6.0))]),
        ({"retry": {"max_tries": 1}}, [
            ("begin", ("r1", "a", 1.0)), ("begin", ("r1", "b", 1.0)), ("begin", ("", "a", 1.0)), ("begin", ("r2", 5, 1.0)),
            ("begin", ("r2", "a", 0.5)), ("first_token", ("ghost", 1.0)), ("timed_out", ("ghost", 1.0)), ("finish", ("ghost",)),
            ("history", ("ghost",)), ("server_down", ("a", 2.0)), ("begin", ("r1", "b", 2.0)), ("first_token", ("r1", 2.0)),
            ("fail", ("r1", 2.0)), ("timed_out", ("r1", 2.0)), ("answer", ("r1", 3, 2.0))]),
    )),
)

RANDOM_GROUP = "random operations against the reference (seeded)"


def random_ops4(seed: int, n: int = 200) -> tuple[dict[str, Any], list[Op]]:
    """A seeded fault timetable: a fleet of up to six servers, probes as they fall due (some failing), request
    results (errors in bursts, latencies per token), adds and removals, and the ledger re-routing requests
    when a server goes down or a try times out.  Returns ``(make, ops)``."""
    rng = random.Random(seed)
    policy = {"interval": rng.choice([1.0, 2.0, 5.0]), "timeout": 0.5, "jitter": rng.choice([0.0, 0.1, 0.3]),
              "unhealthy_threshold": rng.randint(1, 3), "healthy_threshold": rng.randint(1, 3),
              "consecutive_5xx": rng.randint(1, 4), "base_ejection_time": rng.choice([2.0, 5.0]),
              "max_ejection_time": rng.choice([10.0, 40.0]), "max_ejection_percent": rng.choice([25.0, 50.0, 100.0]),
              "ewma_alpha": rng.choice([0.2, 0.5]), "half_open_trials": rng.randint(1, 2),
              "slow_start_window": rng.choice([3.0, 10.0]), "aggression": rng.choice([1.0, 2.0])}  # fmt: skip
    make = {"policy": policy, "seed": seed, "retry": {"max_tries": rng.randint(1, 3), "per_try_timeout": rng.choice([None, 3.0])}}
    bad = {f"s{k}": rng.random() < 0.4 for k in range(6)}  # servers that fail often
    ops: list[Op] = [("add_server", (f"s{k}", 0.0, True)) for k in range(4)]
    present = {f"s{k}" for k in range(4)}  # mostly call servers that are there, sometimes one that is not
    sent: dict[str, str] = {}  # request -> the server of its last begin (answers mostly come from there)
    now = 0.0
    for _ in range(n):
        now = round(now + rng.choice([0.05, 0.2, 0.5, 1.0, 3.0]), 6)
        sid = rng.choice(sorted(present)) if present and rng.random() < 0.85 else f"s{rng.randrange(6)}"
        rid = f"r{rng.randrange(12)}"
        kind = rng.choices(("probe", "result", "add", "remove", "advance", "read", "begin", "token", "down", "timeout", "answer", "finish"),
                           weights=(3, 8, 1, 1, 2, 2, 3, 1, 1, 1, 3, 1))[0]  # fmt: skip
        if kind == "probe":
            ops.append(("due_probes", (now,)))
            ops.append(("probe_result", (sid, not bad[sid] or rng.random() < 0.3, now)))
        elif kind == "result":
            ok = rng.random() > (0.7 if bad[sid] else 0.05)
            spt = round(rng.lognormvariate(-4.0 + (1.0 if bad[sid] else 0.0), 0.3), 6) if ok and rng.random() < 0.7 else None
            ops.append(("request_result", (sid, ok, now, spt)))
        elif kind == "add":
            sid = f"s{rng.randrange(6)}"
            present.add(sid)
            ops.append(("add_server", (sid, now, rng.random() < 0.5)))
        elif kind == "remove":
            present.discard(sid)
            ops.append(("remove_server", (sid,)))
        elif kind == "advance":
            ops.append(("advance", (now,)))
            ops.append(("next_change_time", ()))
        elif kind == "read":
            read = rng.choice(("weight", "state", "trial_limit"))
            ops.append((read, (sid, now) if read == "weight" else (sid,)))
        elif kind == "begin":
            sent[rid] = sid
            ops.append(("begin", (rid, sid, now)))
        elif kind == "token":
            ops.append(("first_token", (rid, now)))
        elif kind == "down":
            ops.append(("server_down", (sid, now)))
        elif kind == "timeout":
            ops.append(("timed_out", (rid, now)))
        elif kind == "answer":
            ops.append(("answer", (rid, sent.get(rid, sid) if rng.random() < 0.7 else sid, now)))
        else:
            ops.append((rng.choice(("finish", "history", "status")), (rid,)))
    return make, ops


def public_groups() -> tuple[Group, ...]:
    """The check cell's groups: the rule groups, then 12 seeded fault timetables."""
    randoms = tuple(random_ops4(seed) for seed in range(12))
    groups = [(name, cases) for name, cases in STAGE4_GROUPS] + [(RANDOM_GROUP, randoms)]
    return as_groups("p4", groups, make=lambda s: s[0], ops=lambda s: s[1])


#: Every group name, in order (the probes' cost group comes last).
GROUP_NAMES: tuple[str, ...] = tuple(name for name, _ in STAGE4_GROUPS) + (RANDOM_GROUP,)

SPEC = StageSpec(4, "health", ("HealthChecker", "RetryLedger"), HealthHarnessMaker(), public_groups)


def run_stage4(impl: ModuleType | None = None, *, echo: bool = True, only: str | tuple[str, ...] | None = None, strict: bool = True) -> CheckReport:
    """Compare ``impl``'s ``HealthChecker`` and ``RetryLedger`` (default: ``LB_IMPL``'s) with the reference's recorded behaviour.

    Prints one line per group, returns the report, and raises
    :class:`~solution.checks.common.CheckFailed` if a group fails
    (``strict=False`` only returns).  ``only`` keeps the groups whose name
    starts with it (or with one of a tuple of prefixes).
    """
    return run_check(SPEC, impl, echo=echo, only=only, strict=strict)
