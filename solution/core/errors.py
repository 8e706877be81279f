"""Exceptions raised by the balancer.

Every class subclasses the built-in exception a caller would expect
(``RuntimeError`` for "cannot do it now", ``ValueError`` for "bad value",
``KeyError`` for "unknown id"), so ``except ValueError`` keeps working, and
also :class:`LoadBalancerError`, so ``except LoadBalancerError`` catches
everything the balancer raises on purpose.

Messages name the id involved and say what to do next.  These types are
shared: the candidate's ``exercises`` package raises the very same classes.
"""

from __future__ import annotations

__all__ = [
    "LoadBalancerError",
    "NoCapacityError",
    "DuplicateIdError",
    "DuplicateServerError",
    "DuplicateRequestError",
    "UnknownIdError",
    "UnknownServerError",
    "UnknownRequestError",
]


class LoadBalancerError(Exception):
    """Base class of every error the balancer raises on purpose."""


class NoCapacityError(LoadBalancerError, RuntimeError):
    """No eligible server has a free slot for this request right now.

    Retry after a request completes, add a server, or queue the request
    (stage 2 does that for you).
    """


class DuplicateIdError(LoadBalancerError, ValueError):
    """An id that must be unique is already in use."""


class DuplicateServerError(DuplicateIdError):
    """``add_server`` was given the id of a server that is still present
    (draining servers count until their last request completes)."""


class DuplicateRequestError(DuplicateIdError):
    """``route_request`` was given the id of a request that is in flight."""


class UnknownIdError(LoadBalancerError, KeyError):
    """An id the balancer does not know.

    ``KeyError.__str__`` would print the message with quotes around it;
    this class prints it as written.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownServerError(UnknownIdError):
    """The server id is not present (never added, or already drained away)."""


class UnknownRequestError(UnknownIdError):
    """The request id is not in flight (never routed, or already completed)."""
