"""Load balancing for LLM inference: the course's package.

``solution`` is the reference; ``exercises`` is generated from it (see
``tools/make_exercises.py``) and exposes the same names, with the parts a
candidate writes left as stubs.  ``from solution import LoadBalancer`` gives
the stage-1 balancer.
"""

from solution.balancer import LoadBalancer
from solution.routing import Decision, LeastConnections, RandomChoice, RoundRobin, Router, RouterFactory, Strategy
from solution.strategies import LeastOutstandingTokens, PeakEwma, PowerOfChoices, Predictive, WeightedResponseTime
from solution.concurrency import Synchronized
from solution.validate import MAX_CAPACITY
from solution.errors import (
    DuplicateIdError,
    DuplicateRequestError,
    DuplicateServerError,
    LoadBalancerError,
    NoCapacityError,
    UnknownIdError,
    UnknownRequestError,
    UnknownServerError,
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
