"""Argument checks shared by the reference and the exercises.

Each function returns its argument when it is valid and raises otherwise:

* ``TypeError`` when the type is wrong.  ``bool`` is a subclass of ``int`` in
  Python, but ``True`` servers or ``False`` tokens are always a caller's bug,
  so booleans are rejected wherever an ``int`` is expected.
* ``ValueError`` when the type is right but the value is not (an empty id, a
  number below its minimum).

Call them *before* changing any state, so a failed call leaves the balancer
exactly as it was.
"""

from __future__ import annotations

__all__ = ["MAX_CAPACITY", "require_id", "require_int"]

#: The largest ``capacity`` a server may have (4,294,967,296 sequences: far
#: beyond any GPU).  The reference compares load ratios exactly through an
#: integer key that is exact up to this bound.
MAX_CAPACITY = 2**32


def require_id(value: object, what: str) -> str:
    """Return ``value`` if it is a non-empty ``str``.

    >>> require_id("gpu-1", "server_id")
    'gpu-1'
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{what} must be a non-empty string")
    return value


def require_int(value: object, what: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) within bounds.

    >>> require_int(8, "capacity")
    8
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{what} must be at most {maximum:,}, got {value:,}")
    return value
