# Generated from solution/balancer.py by tools/make_exercises.py (`make exercises`).
# Stage 1: fill in every body that raises NotImplementedError; notebooks/01_least_connections.ipynb explains the task.
"""Stage 1: weighted least-connections with graceful drain.

The base interview question.  A pool of GPU inference servers, each running
at most ``capacity`` sequences at once; requests arrive with an estimate of
their token count; long-context requests need a big-memory GPU.

Routing rule
------------
A server is *eligible* for a request when

1. it is not draining,
2. it has a free slot (``current_load < capacity``), and
3. for a *large* request (``estimated_tokens > large_request_tokens``,
   4096 by default) it has at least ``large_request_min_memory_gb`` of GPU
   memory (80 GB by default).

Among eligible servers the balancer picks the lowest load ratio
``current_load / capacity``, compared exactly as fractions (2/3 and 4/6 tie;
1/3 never loses to 0.3333 by rounding).  A float ``load / capacity`` is not
exact enough: with capacities up to ``MAX_CAPACITY`` (2**32) and a million or
so requests in flight on each server, two different ratios round to the same
float.  Compare integers instead (``a/b < c/d`` exactly when
``a * d < c * b``) or ``fractions.Fraction`` values.  Ties are broken by

1. most GPU memory,
2. then most free slots (``capacity - current_load``),
3. then the server added earliest.  A server that was removed and added
   again under the same id counts from its latest ``add_server``: it is then
   the server added last, whatever its place before.

The tie-break is the specification (the interview rubric's rule), not an
optimum.  Most memory first sends a small request that ties to a big GPU and
so uses up a slot that only a big GPU can give a large request; its merit is
that in a typical fleet the big-memory GPUs are also the fast ones, so that
small request finishes sooner.  *Best-fit* (the least memory that fits the
request first) keeps big-GPU slots for large requests and sends small ones
to the slower GPUs: notebook 01 measures both in the simulator and shows
the figures.

The size threshold is a policy too: a 7B FP16 model's 8,192-token context
(about 4 GiB of KV cache) fits on a 40 GB GPU; the rule keeps long contexts
on the GPUs with room for many of them.

Two steps
---------
1. **A plain scan** (O(S) per route): look at every server, keep the best
   eligible one by the rule above.  It passes every behaviour group of the
   check (``check_stage1(impl, only=BEHAVIOUR)``, see
   :data:`solution.checks.stage1.BEHAVIOUR`).
2. **An index** (a heap of eligible servers keyed by the rule): the best
   server is at the top, so ``route_request`` is O(log S) amortized.  It
   passes the cost group too (``check_stage1(impl, only="cost")``).

Graceful drain
--------------
``remove_server`` stops new routing to a server at once; its in-flight
requests complete normally, and the server disappears with its last
completion (at once when it is idle).

Costs (S servers, R requests in flight)
---------------------------------------
* ``complete_request``: O(1).
* ``route_request``: O(log S) amortized, through an index, not a scan
  (step 2; a scan, O(S), is step 1).
* ``add_server``: O(log S); ``remove_server``: O(1).
* ``get_server_stats``: O(S + R), a fresh copy.

Errors
------
Raise the classes of :mod:`solution.core.errors` (each subclasses the
built-in a caller expects).  A message names the offending id in quotes, as
``repr`` writes it (``{request_id!r}`` gives ``'r1'``), and says what to do
next, in at least six words: for example ``request 'r1' is already in flight
on server 'a'; complete it first or use a new id``.  This holds for the
duplicate server, unknown server, duplicate request and unknown request
errors, and ``NoCapacityError`` names the request id too.  The ``KeyError``
subclasses print their message as written (a plain ``KeyError`` would wrap
it in quotes).

Not thread-safe: wrap it in :class:`solution.core.concurrency.Synchronized` to
share one balancer between threads.
"""

from __future__ import annotations

import heapq
from typing import Any

from solution.core.errors import (
    DuplicateRequestError,
    DuplicateServerError,
    NoCapacityError,
    UnknownRequestError,
    UnknownServerError,
)
from solution.core.validate import MAX_CAPACITY, require_id, require_int

__all__ = ["LoadBalancer"]


class LoadBalancer:
    """Weighted least-connections over GPU servers, with graceful drain.

    >>> lb = LoadBalancer()
    >>> lb.add_server("a100", capacity=4, gpu_memory_gb=80)
    >>> lb.add_server("a10", capacity=2, gpu_memory_gb=24)
    >>> lb.route_request("r1", estimated_tokens=500)   # both idle: more memory wins
    'a100'
    >>> lb.route_request("r2", estimated_tokens=500)   # 0/2 beats 1/4
    'a10'
    >>> lb.route_request("r3", estimated_tokens=8000)  # large: needs 80 GB
    'a100'

    Args:
        large_request_tokens: requests with more estimated tokens than this
            are *large* (default 4096).
        large_request_min_memory_gb: the GPU memory a server needs to take a
            large request (default 80).

    Raises:
        TypeError: a threshold is not an ``int`` (``bool`` is rejected).
        ValueError: a threshold is below 1.
    """

    def __init__(self, *, large_request_tokens: int = 4096, large_request_min_memory_gb: int = 80) -> None:
        # TODO: validate the thresholds, then set up your data structures
        raise NotImplementedError("Stage 1: LoadBalancer.__init__ is not implemented yet; see notebooks/01_least_connections.ipynb")

    def add_server(self, server_id: str, capacity: int, gpu_memory_gb: int) -> None:
        """Add a server that can run ``capacity`` sequences at once.  O(log S).

        The server is the last one added, even when its id belonged to a
        server that drained away before: for the "added earliest" tie-break
        and for the order of ``get_server_stats()`` it comes after every
        server present.

        Raises:
            TypeError: ``server_id`` is not a ``str``, or a number is not an ``int``.
            ValueError: empty ``server_id``; ``capacity`` or ``gpu_memory_gb``
                below 1; ``capacity`` above ``MAX_CAPACITY``.
            DuplicateServerError (a ValueError): the id is present, a
                draining server included.  The message quotes the id
                (``'a'``) and says what to do.
        """
        # TODO: check every argument first; a server id must be unique while present
        raise NotImplementedError("Stage 1: LoadBalancer.add_server is not implemented yet; see notebooks/01_least_connections.ipynb")

    def remove_server(self, server_id: str) -> None:
        """Drain a server gracefully.  O(1).

        From this call on the server gets no new request.  Its in-flight
        requests may complete, and it disappears with the last of them (at
        once if it is idle).  Calling it again while the server drains does
        nothing.

        Raises:
            TypeError / ValueError: ``server_id`` is not a non-empty ``str``.
            UnknownServerError (a KeyError): no such server is present.  The
                message quotes the id (``'ghost'``) and says what to do.
        """
        # TODO: mark the server draining; forget it now if it is idle
        raise NotImplementedError("Stage 1: LoadBalancer.remove_server is not implemented yet; see notebooks/01_least_connections.ipynb")

    def route_request(self, request_id: str, estimated_tokens: int) -> str:
        """Assign a request to a server and return the server's id.

        See the module docstring for the rule.  Step 1: scan every server
        (O(S)) until the behaviour groups pass; step 2: keep the eligible
        servers in a heap so this is O(log S) amortized (the cost group).

        Raises:
            TypeError / ValueError: bad ``request_id``, or ``estimated_tokens``
                is not an ``int`` of at least 1.
            DuplicateRequestError (a ValueError): the id is already in flight.
                The message quotes the id (``'r1'``) and says what to do.
            NoCapacityError (a RuntimeError): no eligible server has a free
                slot.  Nothing is recorded, so the same id can be retried.
                The message names the request id.
        """
        # TODO: find the eligible server with the lowest load ratio, break ties, record the request
        raise NotImplementedError("Stage 1: LoadBalancer.route_request is not implemented yet; see notebooks/01_least_connections.ipynb")

    def complete_request(self, request_id: str) -> None:
        """Free the request's slot; finish a drain when it was the last one.  O(1).

        Raises:
            TypeError / ValueError: ``request_id`` is not a non-empty ``str``.
            UnknownRequestError (a KeyError): the request is not in flight.
                The message quotes the id (``'ghost'``) and says what to do.
        """
        # TODO: free the slot; a draining server with nothing left disappears
        raise NotImplementedError("Stage 1: LoadBalancer.complete_request is not implemented yet; see notebooks/01_least_connections.ipynb")

    def get_server_stats(self) -> dict[str, dict[str, Any]]:
        """A snapshot of every present server, draining ones included.  O(S + R).

        Returns ``{server_id: {"capacity", "current_load", "gpu_memory_gb",
        "load_ratio", "is_draining", "active_requests"}}`` in the order the
        servers were added.  ``active_requests`` lists request ids in the
        order they were routed.  The caller owns the result: changing it does
        not touch the balancer.

        ``load_ratio`` must be a ``float``: ``current_load / capacity`` as a
        float, e.g. ``float(Fraction(load, capacity))`` or ``load / capacity``
        (``0.25``, never a ``Fraction``).  Snapshots are compared with ``==``
        and ``Fraction(1, 6) == 1 / 6`` is False (a ``Fraction`` compares
        with the float's exact binary value).  The float is for reading only:
        keep comparing ratios exactly when routing.
        """
        # TODO: build fresh dicts and lists, never hand out your own
        raise NotImplementedError("Stage 1: LoadBalancer.get_server_stats is not implemented yet; see notebooks/01_least_connections.ipynb")

