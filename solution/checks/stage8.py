"""Stage 8's check: an implementation's backoff, full jitter and retrier (with its retry budget) against the reference's.

A case builds one object under test (:class:`RetryHarnessMaker`, by ``make["kind"]``):

* ``"functions"``: ``impl.backoff_bound`` and ``impl.full_jitter`` (calls ``bound``, ``draws``, ``same_seed``,
  ``uniform``, ``jitter_with``);
* ``"retrier"``: ``impl.Retrier(policy, seed=seed)`` fed ``begin``, ``decide`` and ``end``, with a twin
  retrier (same policy and seed) that is given only the calls that succeeded, so that ``same_stream`` can
  tell whether a refused call moved the random stream.

Policies are :class:`~solution.core.retry_types.RetryPolicy` written as dicts (``RetryPolicy.from_dict``), a
failure ``[kind, status, retry_after]`` (:class:`~solution.core.retry_types.Failure`): the support types,
the same objects on both sides.

What is compared is the *rule*, never the random stream itself: a decision is
``[retry, reason, where its delay fell]``, where the last is ``"ok"`` when a
retry's delay lies in ``[retry_after, retry_after + backoff_bound(tries)]``
(``retry_after`` 0 without one) and a refusal's is 0, else a sentence saying
where it fell.  The jitter's distribution is judged by a chi-square test (10
equal bins, 1,000 draws, critical value 45: p = 1e-6 with 9 degrees of
freedom) on fixed seeds, so the verdict is the same on every run; how many
draws a call takes from the generator is counted (``full_jitter`` takes one).
After every call the retrier's ``active``, ``retries_in_flight`` and
``stats()`` are compared with the reference's.  A failed call must leave all
of it unchanged, and the random stream too.

:func:`run_stage8` (``solution.checks.check_stage8``) prints one line per group;
:func:`random_ops8` gives the seeded sequences (tests and hidden cases).
"""

from __future__ import annotations

import math
import random
from types import ModuleType
from typing import Any

from solution.checks.common import CheckReport, Op, round_floats
from solution.checks.runner import StageSpec, as_groups, run_check
from solution.checks.script import Group

__all__ = ["RetryHarnessMaker", "STAGE8_GROUPS", "RANDOM_GROUP", "GROUP_NAMES", "SPEC", "CHI2_CRITICAL", "random_ops8",
           "run_stage8"]  # fmt: skip

RANDOM_GROUP = "random begin/decide/end sequences"
#: Chi-square's critical value for 9 degrees of freedom at p = 1e-6 (10 equal bins): a uniform draw fails it once in a
#: million seeds; equal jitter or half the range scores about 1,000 on 1,000 draws.
CHI2_CRITICAL = 45.0
BINS = 10
#: Slack on the delay's interval: the reference's ``ra + bound * u`` may round one ulp past ``ra + bound``.
_SLACK = 1e-9


def _policy(value: Any) -> Any:
    """A :class:`RetryPolicy` from its dict form; ``{"raw": x}`` passes ``x`` as it is (bad input); anything else as it is."""
    from solution.core.retry_types import RetryPolicy

    if isinstance(value, dict):
        return value["raw"] if "raw" in value else RetryPolicy.from_dict(value)
    return value


def _failure(value: Any) -> Any:
    """A :class:`Failure` from ``[kind, status, retry_after]``; ``{"raw": x}`` passes ``x`` as it is (bad input)."""
    from solution.core.retry_types import Failure

    if isinstance(value, list):
        return Failure(*value)
    return value["raw"] if isinstance(value, dict) else value


def _bound(attempt: int, policy: Any) -> float:
    """The backoff's bound, computed here (the harness never trusts the implementation's own bound to judge its jitter)."""
    return min(policy.cap, math.ldexp(policy.base, min(attempt, 2000) - 1))


def _chi2(fractions: list[float]) -> float:
    """Pearson's chi-square of ``fractions`` (values in [0, 1]) against the uniform distribution over :data:`BINS` bins."""
    counts = [0] * BINS
    for f in fractions:
        counts[min(BINS - 1, max(0, int(f * BINS)))] += 1
    expected = len(fractions) / BINS
    return sum((c - expected) ** 2 / expected for c in counts)


def _draws_taken(rng: random.Random, seed: int) -> Any:
    """How many ``random()`` draws ``rng`` has taken since ``Random(seed)`` (0-4), or ``"not a count of random() draws"``."""
    state = rng.getstate()
    fresh = random.Random(seed)
    for k in range(5):
        if fresh.getstate() == state:
            return k
        fresh.random()
    return "not a count of random() draws"


class FunctionsCase:
    """``impl.backoff_bound`` and ``impl.full_jitter``; policies as dicts."""

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        self.impl = impl

    def bound(self, attempt: Any, policy: Any) -> Any:
        """``backoff_bound(attempt, policy)``, rounded to 9 decimals."""
        return round_floats(self.impl.backoff_bound(attempt, _policy(policy)))

    def draws(self, attempt: Any, policy: Any, seed: Any) -> Any:
        """``full_jitter`` with a fresh ``Random(seed)``: ``[in [0, bound], the draws it took from the generator]``."""
        rng = random.Random(seed)
        p = _policy(policy)
        value = self.impl.full_jitter(attempt, p, rng)
        inside = isinstance(value, float) and 0.0 <= value <= _bound(attempt, p)
        return [inside, _draws_taken(rng, seed)]

    def same_seed(self, attempt: Any, policy: Any, seed: Any) -> Any:
        """Whether two generators seeded alike give the same waits (five each): the wait comes from ``rng`` alone."""
        p = _policy(policy)
        a, b = random.Random(seed), random.Random(seed)
        return [self.impl.full_jitter(attempt, p, a) for _ in range(5)] == [self.impl.full_jitter(attempt, p, b) for _ in range(5)]

    def uniform(self, attempt: Any, policy: Any, seed: Any, n: Any = 1000) -> Any:
        """``n`` waits from one ``Random(seed)``: ``{"outside [0, bound]": count, "uniform": chi-square below the critical value}``."""
        p = _policy(policy)
        rng = random.Random(seed)
        bound = _bound(attempt, p)
        values = [self.impl.full_jitter(attempt, p, rng) for _ in range(n)]
        outside = sum(1 for v in values if not (isinstance(v, float) and 0.0 <= v <= bound))
        return {"outside [0, bound]": outside, "uniform": outside == 0 and _chi2([v / bound for v in values]) < CHI2_CRITICAL}

    def jitter_with(self, attempt: Any, policy: Any, rng: Any) -> Any:
        """``full_jitter`` with something that is not a generator (``"none"``, ``"module"``, ``"int"``): bad input."""
        given = {"none": None, "module": random, "int": 7}[rng]
        return round_floats(self.impl.full_jitter(attempt, _policy(policy), given))

    def snapshot(self) -> None:
        return None


class RetrierCase:
    """One ``impl.Retrier(policy, seed=seed)`` and its twin (the same calls, but only those that succeeded)."""

    def __init__(self, impl: Any, make: dict[str, Any]) -> None:
        self.policy = _policy(make.get("policy", {}))
        seed = make.get("seed", 0)
        self.retrier = impl.Retrier(self.policy, seed=seed)
        self.twin = impl.Retrier(self.policy, seed=seed)

    def _both(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``name`` on the retrier; if it succeeded, on the twin too (whose stream thus never sees a refused call)."""
        result = getattr(self.retrier, name)(*args, **kwargs)
        try:
            getattr(self.twin, name)(*args, **kwargs)
        except Exception:  # noqa: BLE001 - the twin follows; a difference shows in same_stream
            pass
        return result

    def _judge(self, decision: Any, tries: Any, failure: Any) -> list[Any]:
        """``[retry, reason, where the delay fell]``: ``"ok"`` inside the rule's interval, else a sentence."""
        retry, reason, delay = decision.retry, decision.reason, decision.delay
        if not retry:
            return [retry, reason, "ok" if delay == 0 else f"a refusal with delay {delay!r} (must be 0)"]
        ra = getattr(failure, "retry_after", None) or 0.0
        high = ra + _bound(tries, self.policy)
        if not isinstance(delay, float) or not math.isfinite(delay):
            where = f"delay {delay!r} is not a finite float"
        elif delay < ra - _SLACK:
            where = f"delay {delay:.6g} s before the Retry-After of {ra:g} s"
        elif delay > high + _SLACK:
            where = f"delay {delay:.6g} s past Retry-After + the backoff bound ({high:.6g} s)"
        else:
            where = "ok"
        return [retry, reason, where]

    def begin(self, request_id: Any) -> Any:
        return self._both("begin", request_id)

    def end(self, request_id: Any) -> Any:
        return self._both("end", request_id)

    def decide(self, request_id: Any, tries: Any, failure: Any, streamed: Any = False) -> Any:
        f = _failure(failure)
        decision = self._both("decide", request_id, tries, f, streamed=streamed)
        return self._judge(decision, tries, f)

    def spread(self, prefix: Any, tries: Any, failure: Any, n: Any = 1000) -> Any:
        """``n`` requests begun, failed once with ``failure`` at ``tries`` and ended: where their delays fell.

        ``{"refused": count, "early": delays before Retry-After, "late": past Retry-After + bound, "uniform": the
        delays above Retry-After, as fractions of the bound, pass the chi-square test}``."""
        f = _failure(failure)
        ra = f.retry_after or 0.0
        bound = _bound(tries, self.policy)
        refused = early = late = 0
        excess = []
        for i in range(n):
            rid = f"{prefix}{i}"
            self._both("begin", rid)
            d = self._both("decide", rid, tries, f, streamed=False)
            self._both("end", rid)
            if not d.retry:
                refused += 1
                continue
            early += d.delay < ra - _SLACK
            late += d.delay > ra + bound + _SLACK
            excess.append((d.delay - ra) / bound)
        uniform = refused == 0 and early == 0 and late == 0 and _chi2(excess) < CHI2_CRITICAL
        return {"refused": refused, "early": early, "late": late, "uniform": uniform}

    def same_stream(self, prefix: Any, k: Any = 5) -> Any:
        """``k`` requests retried once on the retrier and on its twin: the same delays?  A refused call that drew
        from the generator (or changed anything) makes them differ."""
        from solution.core.retry_types import Failure

        delays = []
        for r in (self.retrier, self.twin):
            seen = []
            for i in range(k):
                rid = f"{prefix}{i}"
                r.begin(rid)
                seen.append(r.decide(rid, 1, Failure("reset"), streamed=False).delay)
                r.end(rid)
            delays.append(seen)
        return delays[0] == delays[1]

    def snapshot(self) -> dict[str, Any]:
        """``active``, ``retries_in_flight`` and ``stats()``."""
        r = self.retrier
        return {"active": r.active, "retries_in_flight": r.retries_in_flight, "stats": dict(r.stats())}


class _Bare:
    def snapshot(self) -> None:
        return None


class RetryHarnessMaker:
    """Stage 8's cases: ``{"kind": "functions"}``, ``{"kind": "retrier", "policy": {...}, "seed": s}``;
    ``{"bare": "Retrier", "args": [...], "kwargs": {...}}`` only builds a retrier with bad arguments."""

    stage = 8
    snapshot = "snapshot"

    def build(self, impl: Any, make: Any) -> Any:
        if make.get("bare") == "Retrier":
            args = list(make.get("args", []))
            if args:
                args[0] = _policy(args[0])
            impl.Retrier(*args, **make.get("kwargs", {}))
            return _Bare()
        if make["kind"] == "functions":
            return FunctionsCase(impl, make)
        return RetrierCase(impl, make)


# -- the cases -------------------------------------------------------------------------------------------------------

_FN = {"kind": "functions"}
_DEFAULT: dict[str, Any] = {}  # RetryPolicy(): 3 tries, base 25 ms, cap 1 s, Retry-After up to 30 s, Envoy's budget
_WIDE = {"max_tries": 8, "base": 0.1, "cap": 2.0}
_NO_BUDGET = {"max_tries": 4, "budget": None}


def _retrier(policy: dict[str, Any] | None = None, seed: int = 0) -> dict[str, Any]:
    return {"kind": "retrier", "policy": dict(policy or {}), "seed": seed}


def _begin(*ids: str) -> list[Op]:
    return [("begin", (rid,)) for rid in ids]


RESET, CONNECT, TIMEOUT = ["reset", None, None], ["connect", None, None], ["timeout", None, None]


def _status(code: int, retry_after: float | None = None) -> list[Any]:
    return ["status", code, retry_after]


#: (group name, ((make, ops), ...)) in the order the module's docstring teaches them.
STAGE8_GROUPS: tuple[tuple[str, tuple[tuple[dict[str, Any], list[Op]], ...]], ...] = (
    ("backoff: min(cap, base * 2^(n-1)), jitter within it", (
        # The bound doubles from base and stops at cap; a huge attempt is cap (no overflow); base == cap is flat.
        (_FN, [*(("bound", (n, _DEFAULT)) for n in (1, 2, 3, 4, 5, 6, 7, 8, 50, 1100, 10**6)),
               *(("bound", (n, _WIDE)) for n in (1, 2, 4, 5, 6)),
               ("bound", (1, {"base": 0.3, "cap": 0.3})), ("bound", (9, {"base": 0.3, "cap": 0.3})),
               ("bound", (3, {"base": 0.0, "cap": 0.0})), ("bound", (2, {"base": 0.001, "cap": 60.0}))]),
        # One wait: inside [0, bound], one draw of the generator.
        (_FN, [("draws", (1, _DEFAULT, 3)), ("draws", (4, _DEFAULT, 4)), ("draws", (30, _DEFAULT, 5)), ("draws", (3, _WIDE, 6))]),
    )),
    ("jitter: uniform on [0, bound], one draw of the rng", (
        # 1,000 waits from one seeded generator spread evenly over [0, bound] (not bound/2 + half, not [0, bound/2]).
        (_FN, [("uniform", (1, _DEFAULT, 11)), ("uniform", (3, _DEFAULT, 12)), ("uniform", (20, _DEFAULT, 13)),
               ("uniform", (4, _WIDE, 14)), ("same_seed", (2, _DEFAULT, 15)), ("same_seed", (6, _WIDE, 16))]),
        # The retrier's own waits, from its seeded generator: uniform over the bound of the tries made.
        (_retrier(_NO_BUDGET, seed=21), [("spread", ("a", 1, RESET)), ("spread", ("b", 3, _status(503))), ("spread", ("c", 2, TIMEOUT))]),
        # Two retriers seeded alike wait alike.
        (_retrier(seed=22), [("same_stream", ("s", 8))]),
    )),
    ("rules: streamed, not_retryable, max_tries, retry_after_too_long", (
        # Each rule alone, then the order: streamed beats everything; a 4xx is not retried however few tries.
        (_retrier(seed=1),
         [*_begin("r1", "r2", "r3", "r4", "r5"),
          ("decide", ("r1", 1, RESET)), ("decide", ("r2", 1, _status(503), True)), ("decide", ("r3", 1, _status(404))),
          ("decide", ("r3", 1, _status(400))), ("decide", ("r3", 1, _status(401))), ("decide", ("r3", 1, _status(413))),
          ("decide", ("r4", 3, RESET)), ("decide", ("r4", 2, _status(429, 60.0))), ("decide", ("r5", 1, _status(502))),
          ("decide", ("r5", 2, _status(504))), ("decide", ("r5", 3, _status(503))), ("decide", ("r2", 1, _status(404), True)),
          ("decide", ("r1", 5, _status(429, 99.0))), ("decide", ("r1", 2, _status(429, 99.0), True)),
          ("decide", ("r1", 2, _status(404, 99.0))), ("end", ("r1",)), ("end", ("r5",))]),
        # retry_on leaves classes out: the rest are not retried; 429 retried only when listed.
        (_retrier({"retry_on": ["connect", "5xx"], "max_tries": 5}, seed=2),
         [*_begin("a", "b"), ("decide", ("a", 1, RESET)), ("decide", ("a", 1, TIMEOUT)), ("decide", ("a", 1, _status(429, 1.0))),
          ("decide", ("a", 1, CONNECT)), ("decide", ("b", 1, _status(500))), ("decide", ("b", 4, _status(599))),
          ("decide", ("b", 5, _status(503)))]),
        # max_tries 1 never retries; Retry-After at the limit is waited, past it is not (and max_tries comes first).
        (_retrier({"max_tries": 1}), [*_begin("x"), ("decide", ("x", 1, RESET)), ("decide", ("x", 1, _status(429, 1.0)))]),
        (_retrier({"max_retry_after": 2.0, "max_tries": 4}, seed=3),
         [*_begin("p", "q"), ("decide", ("p", 1, _status(429, 2.0))), ("decide", ("q", 1, _status(503, 2.5))),
          ("decide", ("q", 4, _status(503, 2.5))), ("decide", ("q", 2, _status(429, 0.0))), ("end", ("p",)), ("end", ("q",))]),
    )),
    ("retry-after: wait Retry-After plus full jitter", (
        # Never before the header; spread above it over the backoff's bound (not the header alone, not max of the two).
        (_retrier({**_NO_BUDGET, "max_retry_after": 10.0}, seed=31),
         [("spread", ("a", 1, _status(429, 2.0))), ("spread", ("b", 2, _status(503, 0.5))), ("spread", ("c", 3, _status(429, 10.0)))]),
        (_retrier({**_WIDE, "budget": None}, seed=32), [("spread", ("d", 5, _status(429, 1.0))), ("spread", ("e", 1, _status(503, 0.0)))]),
        # One decision at a time: its delay in [ra, ra + bound(tries)].
        (_retrier({"max_tries": 5}, seed=33),
         [*_begin("r1", "r2"), ("decide", ("r1", 1, _status(429, 3.0))), ("decide", ("r1", 2, _status(429, 0.25))),
          ("decide", ("r2", 3, _status(503, 30.0))), ("decide", ("r2", 4, _status(503))), ("decide", ("r1", 3, CONNECT))]),
    )),
    ("budget: retries in flight <= max(min_retries, ratio * active)", (
        # Envoy's defaults (20%, at least 3): 10 active allow 3 retries in flight; ending one, or its next decision,
        # releases its slot; a refusal by another rule takes none.
        (_retrier(seed=41),
         [*_begin(*(f"r{i}" for i in range(10))), *(("decide", (f"r{i}", 1, RESET)) for i in range(5)),
          ("decide", ("r5", 1, _status(404))), ("end", ("r0",)), ("decide", ("r4", 1, RESET)), ("decide", ("r1", 2, RESET)),
          ("decide", ("r1", 3, RESET)), ("decide", ("r6", 1, RESET)), ("decide", ("r7", 1, RESET)), ("end", ("r2",)),
          ("end", ("r3",)), ("end", ("r6",)), ("decide", ("r7", 1, RESET)), ("decide", ("r8", 1, _status(503, 1.0)))]),
        # The share of the active requests: 30 active at 20% allow 6; the floor is exact for a decimal ratio (29% of 100 is 29).
        (_retrier({"max_tries": 5}, seed=42),
         [*_begin(*(f"a{i}" for i in range(30))), *(("decide", (f"a{i}", 1, CONNECT)) for i in range(8))]),
        (_retrier({"budget": {"ratio": 0.29, "min_retries": 0}}, seed=43),
         [*_begin(*(f"b{i}" for i in range(100))), *(("decide", (f"b{i}", 1, RESET)) for i in range(31)),
          ("end", ("b99",)), ("decide", ("b40", 1, RESET)), ("end", ("b0",)), ("decide", ("b41", 1, RESET))]),
        # No floor: one active request at 50% may not retry; two may, once.  No budget: every retry allowed.
        (_retrier({"budget": {"ratio": 0.5, "min_retries": 0}}, seed=44),
         [*_begin("x"), ("decide", ("x", 1, RESET)), *_begin("y"), ("decide", ("x", 1, RESET)), ("decide", ("y", 1, RESET)),
          ("decide", ("x", 2, RESET)), ("end", ("x",)), ("decide", ("y", 2, RESET))]),
        (_retrier({"budget": None, "max_tries": 4}, seed=45),
         [*_begin(*(f"n{i}" for i in range(6))), *(("decide", (f"n{i}", 1, RESET)) for i in range(6))]),
    )),
    ("bad input: TypeError/ValueError, nothing changes", (
        # Functions: attempt an int >= 1 (not a bool, not a float), a RetryPolicy, a random.Random.
        (_FN, [("bound", (0, _DEFAULT)), ("bound", (-1, _DEFAULT)), ("bound", (True, _DEFAULT)), ("bound", (1.0, _DEFAULT)),
               ("bound", ("1", _DEFAULT)), ("bound", (1, None)), ("bound", (1, {"raw": {"max_tries": 3}})),
               ("draws", (0, _DEFAULT, 1)), ("jitter_with", (1, _DEFAULT, "none")), ("jitter_with", (1, _DEFAULT, "module")),
               ("jitter_with", (1, _DEFAULT, "int")), ("draws", (1, {"raw": None}, 1))]),
        # Retrier: a policy that is not a RetryPolicy, a seed that is not an int.
        ({"bare": "Retrier", "args": [None]}, []),
        ({"bare": "Retrier", "args": [{"raw": {"max_tries": 3}}]}, []),
        ({"bare": "Retrier", "args": [{}], "kwargs": {"seed": "1"}}, []),
        ({"bare": "Retrier", "args": [{}], "kwargs": {"seed": True}}, []),
        ({"bare": "Retrier", "args": [{}], "kwargs": {"seed": 1.5}}, []),
        # Calls: ids, tries, failure, streamed, unknown or ended ids, a second begin; nothing changes, no draw is taken.
        (_retrier(seed=51),
         [*_begin("r1", "r2"), ("begin", ("",)), ("begin", (7,)), ("begin", (None,)), ("begin", ("r1",)),
          ("decide", ("r1", 0, RESET)), ("decide", ("r1", True, RESET)), ("decide", ("r1", 1.0, RESET)),
          ("decide", ("r1", 1, {"raw": ["reset"]})), ("decide", ("r1", 1, {"raw": "reset"})), ("decide", ("r1", 1, RESET, 1)),
          ("decide", ("r1", 1, RESET, None)), ("decide", ("zz", 1, RESET)), ("decide", ("", 1, RESET)), ("end", ("zz",)),
          ("decide", ("r1", 1, RESET)), ("decide", ("r1", -2, RESET)), ("end", ("r2",)), ("end", ("r2",)),
          ("decide", ("r2", 1, RESET)), ("same_stream", ("s", 6)), ("decide", ("r1", 2, _status(503)))]),
    )),
)


_KINDS = (RESET, CONNECT, TIMEOUT)
_STATUSES = (500, 502, 503, 504, 429, 429, 404, 400)


def random_ops8(seed: int, n: int = 90) -> tuple[dict[str, Any], list[Op]]:
    """A seeded run: a random policy (tries, backoff, Retry-After limit, what is retried, the budget or none), then
    requests begun, failed (tries counted up per request, now and then a wrong count), retried, ended, in random
    order, with a few calls on ids that are not active and a few streamed failures."""
    rng = random.Random(seed)
    policy: dict[str, Any] = {
        "max_tries": rng.randint(1, 5),
        "base": rng.choice([0.01, 0.025, 0.1]),
        "max_retry_after": rng.choice([1.0, 5.0, 30.0]),
        "budget": rng.choice([None, {}, {"ratio": 0.5, "min_retries": 1}, {"ratio": 0.1, "min_retries": 0}]),
    }
    policy["cap"] = policy["base"] * rng.choice([1, 8, 40])
    if rng.random() < 0.3:
        policy["retry_on"] = sorted(rng.sample(["connect", "reset", "timeout", "5xx", "429"], 3))
    make = _retrier(policy, seed=seed)
    ops: list[Op] = []
    tries: dict[str, int] = {}
    ended: list[str] = []
    count = 0
    for _ in range(n):
        choice = rng.random()
        if choice < 0.3 or not tries:
            rid = f"q{count}"
            count += 1
            tries[rid] = 0
            ops.append(("begin", (rid,)))
        elif choice < 0.8:
            rid = rng.choice(sorted(tries))
            tries[rid] += 1
            t = tries[rid] if rng.random() < 0.9 else rng.randint(1, 6)
            if rng.random() < 0.5:
                failure = list(rng.choice(_KINDS))
            else:
                code = rng.choice(_STATUSES)
                ra = rng.choice([None, None, 0.0, 0.5, 2.0, 10.0, 45.0]) if code in (429, 503) else None
                failure = _status(code, ra)
            ops.append(("decide", (rid, t, failure, rng.random() < 0.1)))
        elif choice < 0.95:
            rid = rng.choice(sorted(tries))
            del tries[rid]
            ended.append(rid)
            ops.append(("end", (rid,)))
        else:  # an id that is not active: refused, nothing changes
            rid = rng.choice(ended) if ended else "never"
            bad: list[Op] = [("decide", (rid, 1, RESET)), ("end", (rid,))]
            if tries:
                bad.append(("begin", (rng.choice(sorted(tries)),)))  # already active
            ops.append(rng.choice(bad))
    return make, ops


def public_groups() -> tuple[Group, ...]:
    """The check cell's groups: the rule groups, then 12 seeded runs."""
    randoms = tuple(random_ops8(seed) for seed in range(12))
    groups = [(name, cases) for name, cases in STAGE8_GROUPS] + [(RANDOM_GROUP, randoms)]
    return as_groups("p8", groups, make=lambda s: s[0], ops=lambda s: s[1])


#: Every group name, in order (the cost rule, a probe, comes last: :mod:`solution.checks.cost`).
GROUP_NAMES: tuple[str, ...] = tuple(name for name, _ in STAGE8_GROUPS) + (RANDOM_GROUP,)

SPEC = StageSpec(8, "retry", ("Retrier",), RetryHarnessMaker(), public_groups)


def run_stage8(impl: ModuleType | None = None, *, echo: bool = True, only: str | tuple[str, ...] | None = None, strict: bool = True) -> CheckReport:
    """Compare ``impl``'s ``backoff_bound``, ``full_jitter`` and ``Retrier`` (default: ``LB_IMPL``'s) with the reference's
    recorded behaviour.

    Prints one line per group, returns the report, and raises
    :class:`~solution.checks.common.CheckFailed` if a group fails
    (``strict=False`` only returns).  ``only`` keeps the groups whose name
    starts with it (or with one of a tuple of prefixes): ``"backoff"``,
    ``"jitter"``, ``"rules"``, ``"retry-after"``, ``"budget"``, ``"bad input"``,
    ``"random"``, ``"cost"``.
    """
    return run_check(SPEC, impl, echo=echo, only=only, strict=strict)
