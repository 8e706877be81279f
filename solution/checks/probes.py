"""Probes: graded rules that a short call script cannot show, measured by code of their own.

Two kinds:

* **cost** (:mod:`solution.checks.cost`): "O(log S), no scan" as the growth
  of the time per call from 16 to 4,096 servers;
* **exact ratio**: stage 1 compares load ratios exactly.  Two different
  ratios round to the same float only when a server holds about 2^21
  requests (capacities are at most 2^32), so the probe routes 3.2 million
  requests to two servers whose ratios differ by 1/(b*d) yet whose floats
  are equal, and checks that the decider goes to the server whose ratio is
  lower.  About 6 s on the reference.

A probe's result is plain JSON, so the grader's child runs it and the parent
judges it (:func:`judge`); the check cells run the same code in the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from solution.checks import cost

__all__ = ["Probe", "PROBES", "FLOAT_TIE", "run", "judge"]

#: a/b > c/d exactly (a*d - b*c == 1), yet a/b == c/d as floats; b and d within MAX_CAPACITY.
FLOAT_TIE = {"a": 2_097_523, "b": 4_294_963_685, "c": 1_071_224, "d": 2_193_476_867}


@dataclass(frozen=True)
class Probe:
    stage: int
    group: str  # the rule group it scores in (the notebook names it)
    rule: dict[str, Any]  # JSON: what to run


PROBES: tuple[Probe, ...] = tuple(Probe(stage, name, rule) for stage, name, rule in cost.COST_CASES) + (
    Probe(1, "lowest load ratio, compared exactly", {"kind": "exact_ratio"}),
)


def exact_ratio(impl: Any) -> dict[str, Any]:
    """Route to 'high' (capacity b) alone until it holds a, then add 'low' (capacity d) and route c + 1 more."""
    a, b, c, d = FLOAT_TIE["a"], FLOAT_TIE["b"], FLOAT_TIE["c"], FLOAT_TIE["d"]
    lb = impl.LoadBalancer()
    lb.add_server("high", b, 80)
    route = lb.route_request
    for i in range(a):
        route(f"h{i}", 10)
    lb.add_server("low", d, 24)
    for i in range(c):
        if route(f"l{i}", 10) != "low":
            return {"first_wrong": i, "decider": None}
    return {"first_wrong": None, "decider": route("decider", 10)}


def run(impl: Any, rule: dict[str, Any]) -> Any:
    """Run one probe on ``impl``; its result as JSON."""
    if rule.get("kind") == "exact_ratio":
        return exact_ratio(impl)
    return cost.measure(impl, rule)


def judge(rule: dict[str, Any], result: Any) -> tuple[bool, str]:
    """Whether a probe's result passes, and a sentence that says why."""
    if rule.get("kind") != "exact_ratio":
        return cost.verdict(result)
    a, b, c, d = FLOAT_TIE["a"], FLOAT_TIE["b"], FLOAT_TIE["c"], FLOAT_TIE["d"]
    if not isinstance(result, dict):
        return False, f"no usable result ({str(result)[:80]})"
    if result.get("first_wrong") is not None:
        return False, f"with 'high' at {a}/{b}, request {result['first_wrong']} went to 'high' although 'low' was lower"
    if result.get("decider") != "low":
        return False, (f"'low' at {c}/{d} < 'high' at {a}/{b} exactly, but the floats are equal: the decider went to "
                       f"{result.get('decider')!r}; compare ratios exactly (cross-multiply, or Fraction), not as floats")
    return True, ""
