"""Reference solution of the course *Load balancing for LLM inference*.

``from solution import LoadBalancer`` gives the stage-1 balancer.  The
candidate's package ``exercises`` exposes the same names.
"""

from solution.balancer import MAX_CAPACITY, LoadBalancer
from solution.concurrency import Synchronized
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
