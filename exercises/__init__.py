# Generated from solution/__init__.py by tools/make_exercises.py (`make exercises`).
"""Load balancing for LLM inference: the course's package.

``solution`` is the reference; ``exercises`` is generated from it (see
``tools/make_exercises.py``) and exposes the same names, with the parts a
candidate writes left as stubs.  ``from solution import LoadBalancer`` gives
the stage-1 balancer; ``RequestQueue`` (stage 2) queues requests in front of
it, through the shared ``Gateway``; ``HealthChecker`` and ``RetryLedger`` (stage 4)
keep servers' health and re-send requests whose server failed; ``SessionAffinity``,
``BoundedLoadHash`` and ``PrefixAware`` (stage 5) keep conversations where their KV
cache is; ``TierTable``, ``RateLimiter``, ``TierAdmission``, ``TierRouting`` and
``Preemptor`` (stage 6) decide who waits when the cluster is short.
``RollingDeploy``, ``CanaryAnalysis`` and ``CanarySplit`` (stage 7) replace a
fleet's version without losing capacity, and stop a bad version early
(its log entries are ``DeployDecision``: ``Decision`` is the routing one).
``Retrier`` (stage 8) decides whether a failed attempt is tried again, and after how
long (exponential backoff, full jitter, a retry budget).
"""

from exercises.balancer import LoadBalancer
from solution.core.routing import Decision, LeastConnections, RandomChoice, RoundRobin, Router, RouterFactory, Strategy
from exercises.strategies import LeastOutstandingTokens, PeakEwma, PowerOfChoices, Predictive, WeightedResponseTime
from exercises.request_queue import RequestQueue
from exercises.health import HealthChecker, RetryLedger
from solution.core.health_types import Attempt, HealthPolicy, HealthState, RetryPolicy, Transition
from exercises.affinity import BoundedLoadHash, PrefixAware, SessionAffinity, SessionTable
from solution.core.affinity_types import AffinityPolicy, RemapReason
from exercises.tiers import Preemptor, RateLimiter, TierAdmission, TierRouting, TierTable, TokenBucket
from solution.core.tier_types import RateLimit, ServiceTier, Slo
from exercises.deploy import CanaryAnalysis, CanarySplit, RollingDeploy, resolve_surge, resolve_unavailable
from solution.core.deploy_types import (
    CanaryPlan,
    Decision as DeployDecision,
    Done,
    Drain,
    Drained,
    EndCanary,
    Fault,
    Ready,
    RolledBack,
    RolloutPlan,
    SetCanaryWeight,
    Start,
    Tick,
    Verdict,
    VersionStats,
    Window,
)
from exercises.retry import Retrier, backoff_bound, full_jitter
from solution.core.retry_types import Failure, RetryBudget, RetryDecision
from solution.core.gateway import Gateway
from solution.core.clock import ManualClock
from solution.core.queue_types import (
    AlreadyWaitingError,
    Cancelled,
    Dispatched,
    NotWaitingError,
    Ordering,
    QueuePolicy,
    QueueStats,
    Queued,
    Rejected,
    TimedOut,
)
from solution.core.concurrency import Synchronized
from solution.core.validate import MAX_CAPACITY
from solution.core.errors import (
    DuplicateIdError,
    DuplicateRequestError,
    DuplicateServerError,
    LoadBalancerError,
    NoCapacityError,
    UnknownIdError,
    UnknownRequestError,
    UnknownServerError,
    RolloutInProgressError,
)

__all__ = [
    "LoadBalancer",
    "Router",
    "RouterFactory",
    "Strategy",
    "Decision",
    "RoundRobin",
    "RandomChoice",
    "LeastConnections",
    "PowerOfChoices",
    "WeightedResponseTime",
    "PeakEwma",
    "LeastOutstandingTokens",
    "Predictive",
    "RequestQueue",
    "HealthChecker",
    "RetryLedger",
    "HealthState",
    "HealthPolicy",
    "RetryPolicy",
    "Transition",
    "Attempt",
    "SessionTable",
    "SessionAffinity",
    "BoundedLoadHash",
    "PrefixAware",
    "AffinityPolicy",
    "RemapReason",
    "TierTable",
    "TokenBucket",
    "RateLimiter",
    "TierAdmission",
    "TierRouting",
    "Preemptor",
    "ServiceTier",
    "RateLimit",
    "Slo",
    "RollingDeploy",
    "CanaryAnalysis",
    "CanarySplit",
    "resolve_surge",
    "resolve_unavailable",
    "RolloutPlan",
    "CanaryPlan",
    "VersionStats",
    "Ready",
    "Drained",
    "Fault",
    "Tick",
    "Window",
    "Start",
    "Drain",
    "SetCanaryWeight",
    "EndCanary",
    "Done",
    "RolledBack",
    "DeployDecision",
    "Verdict",
    "RolloutInProgressError",
    "Retrier",
    "backoff_bound",
    "full_jitter",
    "RetryBudget",
    "Failure",
    "RetryDecision",
    "Gateway",
    "ManualClock",
    "Ordering",
    "QueuePolicy",
    "QueueStats",
    "Queued",
    "Dispatched",
    "Rejected",
    "TimedOut",
    "Cancelled",
    "AlreadyWaitingError",
    "NotWaitingError",
    "MAX_CAPACITY",
    "Synchronized",
    "LoadBalancerError",
    "NoCapacityError",
    "DuplicateIdError",
    "DuplicateServerError",
    "DuplicateRequestError",
    "UnknownIdError",
    "UnknownServerError",
    "UnknownRequestError",
]
