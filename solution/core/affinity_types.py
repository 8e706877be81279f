"""Support types of stage 5 (session affinity and KV-cache-aware routing): the policy, re-map reasons, stable hashes.

Shared by the reference (``solution/affinity.py``) and the candidate's
exercise: both import these very objects, so a policy or a reason string means
the same on either side.

* :class:`AffinityPolicy`: hard or soft affinity, the soft slack, the session
  table's idle TTL and its size bound.  A frozen dataclass validated in
  ``__post_init__``: a wrong type raises ``TypeError``, a wrong value
  :class:`~solution.core.errors.InvalidPolicyError` (a ``ValueError``) naming
  the field and the allowed range.
* :class:`RemapReason`: why a session left its sticky server (one string per
  reason, the keys of ``SessionAffinity.stats()["remaps"]``).
* :func:`stable_hash64`: a 64-bit hash that is the same in every process
  (``hashlib.blake2b``, never Python's salted ``hash()``), so two balancer
  replicas, or a restarted one, map a key to the same server.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from solution.core.errors import InvalidPolicyError

__all__ = ["AffinityPolicy", "RemapReason", "HARD", "SOFT", "stable_hash64", "require_slack"]

HARD = "hard"
SOFT = "soft"


class RemapReason:
    """Why a session was re-mapped away from its sticky server (``SessionAffinity.stats()["remaps"]`` keys).

    ``SessionAffinity`` checks them in the order listed; the first that
    applies is the reason.  ``FULL`` and ``IMBALANCE`` re-map only in soft
    mode (hard mode waits while the sticky server is full).
    """

    REMOVED = "removed"  # the sticky server is not in the router any more (drained away)
    DRAINING = "draining"  # remove_server was called on it: it takes no new requests
    DOWN = "down"  # its health weight is 0 (stage 4: down, circuit open)
    MEMORY = "memory"  # it cannot take this request: a large request needs a big-memory GPU
    FULL = "full"  # soft only: no free slot (load at its limit, or a half-open trial limit reached)
    IMBALANCE = "imbalance"  # soft only: its load ratio exceeds the inner pick's by more than the slack

    ALL = (REMOVED, DRAINING, DOWN, MEMORY, FULL, IMBALANCE)


def stable_hash64(text: str) -> int:
    """A 64-bit unsigned hash of ``text`` that is the same in every process and on every machine.  O(len(text)).

    ``int.from_bytes(blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")``.

    >>> stable_hash64("session-1") == stable_hash64("session-1")
    True
    """
    if not isinstance(text, str):
        raise TypeError(f"stable_hash64 takes a str, got {type(text).__name__} {text!r}")
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def require_slack(value: object, what: str) -> float:
    """Return ``value`` as a float if it is a real number >= 0 (``math.inf`` allowed: no bound), not a bool, not NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number >= 0 (math.inf: no bound), got {type(value).__name__} {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{what} must be a number >= 0 (math.inf: no bound), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class AffinityPolicy:
    """How :class:`SessionAffinity` keeps a conversation on the server that holds its KV cache.

    Args:
        mode: ``"hard"`` or ``"soft"`` (default).
            *hard*: a session is sent only to its server; when that server is
            full the decision is ``None`` (the request waits in the queue, or is
            rejected), and the session is re-mapped only when its server is
            removed, draining, down (weight 0) or cannot take the request (memory).
            *soft*: the sticky server is taken while it can take the request
            and its load ratio (load / effective capacity) is at most the inner
            strategy's pick's plus ``slack``; otherwise the inner pick serves
            the request and the session is re-mapped to it.
        slack: soft mode's bound, a number >= 0 (default 0.25: a quarter of a
            server's capacity); ``math.inf`` means "any free slot on the
            sticky server".  Ignored in hard mode.
        ttl: the session table's idle time-to-live in seconds, finite > 0
            (default 600): a session unused for ``ttl`` seconds is forgotten.
        max_sessions: the session table's size bound, an int >= 1 (default
            100,000): when full, inserting a new session evicts the least
            recently used one.

    Raises:
        TypeError: a field of the wrong type (``bool`` is not a number here).
        InvalidPolicyError (a ValueError): a value out of range; the message names the field and the range.
    """

    mode: str = SOFT
    slack: float = 0.25
    ttl: float = 600.0
    max_sessions: int = 100_000

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str):
            raise TypeError(f"AffinityPolicy.mode must be a str ('hard' or 'soft'), got {type(self.mode).__name__} {self.mode!r}")
        if self.mode not in (HARD, SOFT):
            raise InvalidPolicyError(f"AffinityPolicy.mode must be 'hard' or 'soft', got {self.mode!r}")
        if isinstance(self.slack, bool) or not isinstance(self.slack, (int, float)):
            raise TypeError(f"AffinityPolicy.slack must be a number >= 0, got {type(self.slack).__name__} {self.slack!r}")
        if math.isnan(self.slack) or self.slack < 0:
            raise InvalidPolicyError(f"AffinityPolicy.slack must lie in [0, inf], got {self.slack!r}; "
                                     "0 sticks only while no server is less loaded, inf sticks while the server has a free slot")  # fmt: skip
        if isinstance(self.ttl, bool) or not isinstance(self.ttl, (int, float)):
            raise TypeError(f"AffinityPolicy.ttl must be a number of seconds, got {type(self.ttl).__name__} {self.ttl!r}")
        if not math.isfinite(self.ttl) or self.ttl <= 0:
            raise InvalidPolicyError(f"AffinityPolicy.ttl must be a finite number of seconds > 0, got {self.ttl!r}")
        if isinstance(self.max_sessions, bool) or not isinstance(self.max_sessions, int):
            raise TypeError(f"AffinityPolicy.max_sessions must be an int, got {type(self.max_sessions).__name__} {self.max_sessions!r}")
        if self.max_sessions < 1:
            raise InvalidPolicyError(f"AffinityPolicy.max_sessions must be at least 1, got {self.max_sessions}")

    @property
    def hard(self) -> bool:
        """True in hard mode."""
        return self.mode == HARD
