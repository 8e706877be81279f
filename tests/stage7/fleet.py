"""Shared pieces of the stage-7 tests (they ship in the candidate's bundle, so nothing here comes from a module
the candidate writes)."""

from __future__ import annotations

from typing import Any

from solution.core.request import Request
from solution.core.routing import IndexedStrategy, ServerState


class ByLoad(IndexedStrategy):
    """The fewest requests in flight, then the server added first: an indexed rule fed only by the router's hooks."""

    name = "by-load"
    components = ("load",)

    def score(self, server: ServerState, request: Request) -> tuple[float, ...]:
        return (server.load,)

    def index_key(self, server: ServerState) -> tuple[Any, ...]:
        return (server.load, server.order)
