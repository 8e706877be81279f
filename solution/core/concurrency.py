"""Sharing one balancer between threads.

A balancer's operations are read-modify-write sequences.  Two races matter:

* **Two routes read the same load.**  Thread A and thread B both see server
  ``s`` with one free slot, both pick it, both record a request: ``s`` now
  runs ``capacity + 1`` sequences and the GPU runs out of KV-cache memory.
* **A completion races a drain.**  ``remove_server`` sees one request in
  flight and marks the server draining; at the same moment
  ``complete_request`` removes that request but reads ``draining`` before it
  was set: nobody deletes the now idle server, and it lingers forever.

The fix is to make each operation atomic: one lock around every public call.
Every call is short (O(log S) at most), so a single lock is not the
bottleneck a network round trip to the GPU is.  Production gateways avoid
even that by sharding or by running one event loop per balancer.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

__all__ = ["BalancerLike", "Synchronized"]


class BalancerLike(Protocol):
    """The stage-1 interface, as any implementation (reference or candidate) has it."""

    def add_server(self, server_id: str, capacity: int, gpu_memory_gb: int) -> None: ...
    def remove_server(self, server_id: str) -> None: ...
    def route_request(self, request_id: str, estimated_tokens: int) -> str: ...
    def complete_request(self, request_id: str) -> None: ...
    def get_server_stats(self) -> dict[str, dict[str, Any]]: ...


class Synchronized:
    """A thread-safe view of a balancer: every public call holds one lock.

    >>> from solution import LoadBalancer
    >>> lb = Synchronized(LoadBalancer())
    >>> lb.add_server("gpu-0", capacity=2, gpu_memory_gb=80)
    >>> lb.route_request("r1", 100)
    'gpu-0'

    Works with any object that has the stage-1 methods, so a candidate's
    balancer can be shared the same way.  The wrapped balancer must not be
    used directly while wrapped.  Each call costs one uncontended lock
    acquisition (well under a microsecond) on top of the balancer's own.
    """

    def __init__(self, balancer: BalancerLike) -> None:
        for name in ("add_server", "remove_server", "route_request", "complete_request", "get_server_stats"):
            if not callable(getattr(balancer, name, None)):
                raise TypeError(f"Synchronized needs a balancer with a {name}() method, got {type(balancer).__name__}")
        self._balancer = balancer
        self._lock = threading.Lock()

    @property
    def wrapped(self) -> BalancerLike:
        """The balancer behind the lock (use it only while no thread does)."""
        return self._balancer

    def add_server(self, server_id: str, capacity: int, gpu_memory_gb: int) -> None:
        with self._lock:
            self._balancer.add_server(server_id, capacity, gpu_memory_gb)

    def remove_server(self, server_id: str) -> None:
        with self._lock:
            self._balancer.remove_server(server_id)

    def route_request(self, request_id: str, estimated_tokens: int) -> str:
        with self._lock:
            return self._balancer.route_request(request_id, estimated_tokens)

    def complete_request(self, request_id: str) -> None:
        with self._lock:
            self._balancer.complete_request(request_id)

    def get_server_stats(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return self._balancer.get_server_stats()
