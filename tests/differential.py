"""The walk every differential test takes: the candidate and the reference side by side, op by op.

A harness has ``apply(op) -> answer`` and ``snapshot() -> dict``; the first
answer or snapshot key that differs is reported with the operations before it.
(Differential tests need the reference, so they never ship in the candidate's
bundle, and neither does this module.)
"""

from __future__ import annotations

from typing import Any, Protocol


class Harness(Protocol):
    def apply(self, op: tuple) -> Any: ...
    def snapshot(self) -> dict[str, Any]: ...


def first_difference(mine: Harness, ref: Harness, config: str, ops: list[tuple]) -> str | None:
    """The first way ``mine`` departs from ``ref`` over ``ops`` (an answer, then the state after it), or None."""
    for i, op in enumerate(ops):
        a, b = mine.apply(op), ref.apply(op)
        if a != b:
            return f"{config}: operation {i} {op}: yours answered {a!r}, the reference {b!r} (after {ops[max(0, i - 5):i]})"
        sa, sb = mine.snapshot(), ref.snapshot()
        if sa != sb:
            keys = [k for k in sb if sa.get(k) != sb[k]]
            return f"{config}: after operation {i} {op}: {keys[0]} differs: yours {sa.get(keys[0])!r}, the reference {sb[keys[0]]!r}"
    return None
