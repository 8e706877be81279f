"""The faults an inference server can be told to play (``POST /admin/fault``): stage 4's faults, for real.

* ``crash``: the process exits at once (code 70); open connections are
  reset, new ones refused.  No parameters.
* ``hang``: accepts connections, answers nothing (``/health`` and
  ``/live`` too); its model time stands still until ``clear``, then
  everything resumes where it was.  No parameters.
* ``slow``: runs ``factor`` times slower from now on (a throttled GPU, a
  noisy neighbour); running requests slow down at once.  ``factor`` > 0
  (default 3.0).
* ``fail``: answers ``fraction`` of new requests 500 at once; ``/health``
  stays 200 (a gray failure only passive checks see) unless
  ``health_fails``.  ``fraction`` in [0, 1] (required), ``health_fails``
  (default false).
* ``slow_start``: ``/health`` answers 503, and requests 503 with
  ``Retry-After``, for ``seconds`` (loading weights; > 0, required); then,
  with ``warmup_seconds`` > 0 (default 0), the server runs at
  ``warmup_speed`` of its full speed (default 0.4), ramping to full speed
  in ``warmup_steps`` equal steps (default 4): stage 4's
  :class:`~solution.sim.healthsim.ColdStart` (CUDA graphs being captured,
  a cold prefix cache).
* ``clear``: back to normal: no slowdown, no failures, no hang, no slow
  start or warm-up.  No parameters.

``slow`` and ``fail`` combine (a gray failure: slow and failing, probes
fine); a new ``slow`` replaces the factor, a new ``fail`` the fraction.
``seconds`` and ``warmup_seconds`` are real (wall-clock) seconds, not
model seconds: probes and timeouts run in real time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["FAULT_KINDS", "Fault", "parse_fault", "CRASH_EXIT_CODE"]

#: Every kind ``/admin/fault`` accepts.
FAULT_KINDS = ("crash", "hang", "slow", "fail", "slow_start", "clear")

#: The exit code of a server told to crash (EX_SOFTWARE): tells a crash from a stop or a start failure.
CRASH_EXIT_CODE = 70

_PARAMS: dict[str, frozenset[str]] = {
    "crash": frozenset(),
    "hang": frozenset(),
    "slow": frozenset({"factor"}),
    "fail": frozenset({"fraction", "health_fails"}),
    "slow_start": frozenset({"seconds", "warmup_seconds", "warmup_speed", "warmup_steps"}),
    "clear": frozenset(),
}


@dataclass(frozen=True)
class Fault:
    """One validated fault (see the module's table); fields not used by its kind keep their defaults."""

    kind: str
    factor: float = 3.0
    fraction: float = 0.0
    health_fails: bool = False
    seconds: float = 0.0
    warmup_seconds: float = 0.0
    warmup_speed: float = 0.4
    warmup_steps: int = 4

    def to_dict(self) -> dict[str, object]:
        """The JSON body that asks a server for this fault (only the fields its kind uses)."""
        body: dict[str, object] = {"kind": self.kind}
        for name in sorted(_PARAMS[self.kind]):
            body[name] = getattr(self, name)
        return body


def _number(payload: Mapping[str, object], name: str, default: float | None) -> float:
    value = payload.get(name, default)
    if value is None:
        raise ValueError(f"fault {payload.get('kind')!r} needs {name!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def parse_fault(payload: object) -> Fault:
    """Validate an ``/admin/fault`` body (a JSON object) into a :class:`Fault`.  O(size of payload).

    >>> parse_fault({"kind": "slow", "factor": 2})
    Fault(kind='slow', factor=2.0, fraction=0.0, health_fails=False, seconds=0.0)

    Raises:
        TypeError: ``payload`` is not a mapping.
        ValueError: an unknown kind, an unknown or missing parameter, or a
            value out of range (the message says which).
    """
    if not isinstance(payload, Mapping):
        raise TypeError(f"a fault is a JSON object such as {{'kind': 'slow', 'factor': 3}}, got {type(payload).__name__}")
    kind = payload.get("kind")
    if kind not in _PARAMS:
        raise ValueError(f"unknown fault kind {kind!r}; choose one of {', '.join(FAULT_KINDS)}")
    assert isinstance(kind, str)
    extra = set(payload) - {"kind"} - _PARAMS[kind]
    if extra:
        allowed = ", ".join(sorted(_PARAMS[kind])) or "none"
        raise ValueError(f"fault {kind!r} takes no parameter {', '.join(sorted(extra))} (its parameters: {allowed})")
    if kind == "slow":
        factor = _number(payload, "factor", 3.0)
        if factor <= 0:
            raise ValueError(f"factor must be > 0 (3 runs three times slower), got {factor}")
        return Fault(kind, factor=factor)
    if kind == "fail":
        fraction = _number(payload, "fraction", None)
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        health_fails = payload.get("health_fails", False)
        if not isinstance(health_fails, bool):
            raise ValueError(f"health_fails must be true or false, got {health_fails!r}")
        return Fault(kind, fraction=fraction, health_fails=health_fails)
    if kind == "slow_start":
        seconds = _number(payload, "seconds", None)
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0 (real seconds of 503 on /health), got {seconds}")
        warmup_seconds = _number(payload, "warmup_seconds", 0.0)
        warmup_speed = _number(payload, "warmup_speed", 0.4)
        steps = payload.get("warmup_steps", 4)
        if warmup_seconds < 0:
            raise ValueError(f"warmup_seconds must be >= 0 (real seconds of warm-up after the start), got {warmup_seconds}")
        if not 0 < warmup_speed <= 1:
            raise ValueError(f"warmup_speed is a fraction of full speed in (0, 1], got {warmup_speed}")
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps < 4096:
            raise ValueError(f"warmup_steps must be an int in [1, 4095], got {steps!r}")
        return Fault(kind, seconds=seconds, warmup_seconds=warmup_seconds, warmup_speed=warmup_speed, warmup_steps=steps)
    return Fault(kind)
