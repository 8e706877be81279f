"""Exceptions the simulator raises on purpose.

Each subclasses the built-in a caller would expect, so ``except ValueError``
keeps working, and :class:`SimulationError`, so ``except SimulationError``
catches everything the simulator raises on purpose.  Messages say what to do.
"""

from __future__ import annotations

__all__ = ["SimulationError", "BalancerContractError", "TraceFormatError", "ScenarioError"]


class SimulationError(Exception):
    """Base class of every error the simulator raises on purpose."""


class BalancerContractError(SimulationError, RuntimeError):
    """The balancer under test broke the stage-1 contract.

    For example it routed a request to a server that was already running
    ``capacity`` sequences, to a server it had been told to remove, or to an
    id it was never given.  A real GPU would run out of memory or refuse the
    connection; the simulator stops and names the request and the server.
    This is raised *by the simulator*, never caught as a rejection.
    """


class TraceFormatError(SimulationError, ValueError):
    """A trace file is not in the Azure LLM inference 2023 CSV format."""


class ScenarioError(SimulationError, ValueError):
    """A scenario cannot run as written (for example a fault names an unknown server)."""
