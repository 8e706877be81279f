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
    "InvalidPolicyError",
    "TimeWentBackwardsError",
    "RequestStateError",
    "RetriesExhaustedError",
    "UnknownTierError",
    "RequestTooLargeError",
    "RolloutInProgressError",
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


# --- Stage 4: health checks and retries -------------------------------------


class InvalidPolicyError(LoadBalancerError, ValueError):
    """A :class:`~solution.core.health_types.HealthPolicy`, ``RetryPolicy`` or
    :class:`~solution.core.affinity_types.AffinityPolicy` field is out of range
    (stage 8: a :class:`~solution.core.retry_types.RetryPolicy` or ``RetryBudget`` field too).

    The message names the field and the allowed range: build the policy again
    with a value inside it.
    """


class TimeWentBackwardsError(LoadBalancerError, ValueError):
    """A call's ``now`` is earlier than a ``now`` the object already saw.

    Health checking and retries run on the caller's clock, which must never
    go back: pass the current time of one monotonic clock to every call.
    """


class RequestStateError(LoadBalancerError, ValueError):
    """A retry-ledger call does not fit the request's state (e.g. ``begin`` while an attempt is in flight,
    ``first_token`` after the request ended), or a stage-8 ``Retrier`` is asked to ``decide`` or ``end`` a
    request it does not count as active; the message says which call fits instead."""


class RetriesExhaustedError(LoadBalancerError, RuntimeError):
    """``begin`` was called for a request that already used ``max_tries`` attempts: fail it instead
    (``RetryLedger.fail``) or raise ``RetryPolicy.max_tries``."""


# --- Stage 6: priorities and tiers ------------------------------------------


class UnknownTierError(LoadBalancerError, ValueError):
    """A request (or a call) names a service tier the tier table does not have.

    The message lists the known tiers: send one of them, or ``tier=None`` for
    the table's default tier, or add the tier to the ``TierTable``.
    """


class RequestTooLargeError(LoadBalancerError, ValueError):
    """A request needs more than a rate-limit bucket can ever hold (its burst).

    Waiting would never help, so this is not a 429 with a ``Retry-After``: a
    gateway answers 413 (Content Too Large).  Split the request, lower its
    ``max_tokens``, or move the tenant to a tier with a larger limit.
    """


# --- Stage 7: drain with a timeout, rolling deploys, canaries ----------------


class RolloutInProgressError(LoadBalancerError, ValueError):
    """A rollout was started on a fleet while another rollout on it still runs.

    Two controllers replacing the same servers would each count the other's
    new servers as their own surge and break both bounds.  Wait for the
    running rollout to end (``state`` ``"done"`` or ``"rolled_back"``), or
    roll it back first, then start the next one from it
    (``RollingDeploy.next_rollout``).
    """
