"""Argument checks for the simulator's numbers (ints use :mod:`solution.core.validate`).

Like :func:`solution.core.validate.require_int`, each check returns its argument
when it is valid and raises ``TypeError`` (wrong type; ``bool`` is rejected)
or ``ValueError`` (wrong value) with a message naming the argument.
"""

from __future__ import annotations

import math

__all__ = ["require_number"]


def require_number(value: object, what: str, *, minimum: float = 0.0, strict: bool = True, none_ok: bool = False) -> float:
    """``value`` as a float if it is a finite number above ``minimum`` (or equal to it, when not ``strict``).

    >>> require_number(2, "rate")
    2.0
    """
    if value is None and none_ok:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number{' or None' if none_ok else ''}, got {type(value).__name__} {value!r}")
    ok = value > minimum if strict else value >= minimum
    if not (math.isfinite(value) and ok):
        raise ValueError(f"{what} must be finite and {'>' if strict else '>='} {minimum:g}, got {value}")
    return float(value)
