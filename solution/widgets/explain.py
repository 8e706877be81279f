"""Why a request goes where it goes: the stage-1 rule, written plainly.

:func:`explain_route` applies the routing rule of :mod:`solution.balancer` to
a stats snapshot by scanning and sorting every server: O(S log S), slow on
purpose and easy to read.  The widgets use it to show the reason behind a
choice; the tests use it as an oracle independent of the balancer's heap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = ["Candidate", "RouteExplanation", "explain_route", "TIE_BREAKS"]

#: The rule's criteria in order: the first that differs decides.
TIE_BREAKS = ("lowest load ratio", "most GPU memory", "most free slots", "added earliest")
_CRITERION_NAMES = ("load ratio", "GPU memory", "free slots")


@dataclass(frozen=True)
class Candidate:
    """One server as the rule sees it."""

    server_id: str
    current_load: int
    capacity: int
    gpu_memory_gb: int
    order: int  # position in the order of addition
    excluded_because: str | None  # None when eligible

    @property
    def load_ratio(self) -> Fraction:
        return Fraction(self.current_load, self.capacity)

    @property
    def free_slots(self) -> int:
        return self.capacity - self.current_load

    def sort_key(self) -> tuple[Fraction, int, int, int]:
        """Smaller is better, criterion by criterion, as in :data:`TIE_BREAKS`."""
        return (self.load_ratio, -self.gpu_memory_gb, -self.free_slots, self.order)


@dataclass(frozen=True)
class RouteExplanation:
    """The outcome of the rule for one request."""

    chosen: str | None  # None: no eligible server (the balancer raises NoCapacityError)
    ranking: tuple[Candidate, ...]  # eligible servers, best first
    excluded: tuple[Candidate, ...]  # the others, each with its reason
    decided_by: str  # which criterion separated the winner from the runner-up

    def summary(self) -> str:
        """One line for a person: who won and why."""
        if self.chosen is None:
            return "no eligible server: NoCapacityError"
        best = self.ranking[0]
        return f"{self.chosen} (load {best.current_load}/{best.capacity}): {self.decided_by}"


def explain_route(
    stats: Mapping[str, Mapping[str, Any]],
    estimated_tokens: int,
    *,
    large_request_tokens: int = 4096,
    large_request_min_memory_gb: int = 80,
) -> RouteExplanation:
    """Apply the stage-1 rule to ``stats`` (as ``get_server_stats()`` returns them).

    ``stats`` must list servers in the order they were added, as the
    balancer's snapshot does.
    """
    large = estimated_tokens > large_request_tokens
    eligible: list[Candidate] = []
    excluded: list[Candidate] = []
    for order, (server_id, s) in enumerate(stats.items()):
        reason = None
        if s["is_draining"]:
            reason = "draining"
        elif s["current_load"] >= s["capacity"]:
            reason = "full"
        elif large and s["gpu_memory_gb"] < large_request_min_memory_gb:
            reason = f"large request needs >= {large_request_min_memory_gb} GB"
        c = Candidate(server_id, s["current_load"], s["capacity"], s["gpu_memory_gb"], order, reason)
        (excluded if reason else eligible).append(c)
    eligible.sort(key=Candidate.sort_key)
    if not eligible:
        return RouteExplanation(None, (), tuple(excluded), "no eligible server")
    if len(eligible) == 1:
        decided_by = "the only eligible server"
    else:
        first, second = eligible[0].sort_key(), eligible[1].sort_key()
        criterion = next(i for i in range(len(TIE_BREAKS)) if first[i] != second[i])
        tied = ", ".join(_CRITERION_NAMES[:criterion])
        decided_by = TIE_BREAKS[criterion] + (f" (tie on {tied})" if tied else "")
    return RouteExplanation(eligible[0].server_id, tuple(eligible), tuple(excluded), decided_by)
