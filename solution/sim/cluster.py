"""The cluster a scenario runs: its servers and the service mode.

* :class:`ServerSpec` / :class:`Cluster`: which servers exist at time 0
  (GPU preset, capacity).  Servers added later come from the timetable
  (:class:`solution.sim.faults.AddServer`).
* :class:`LlmMode`: continuous batching with prefill and decode phases; the
  iteration time grows with the batch (see :mod:`solution.sim.server`).
* :class:`ClassicMode`: the textbook model where queueing theory applies
  exactly: exponential service times that do not depend on the batch.

A mode turns a request's tokens into *work*, measured in steps of its
server's virtual clock: ``prefill_steps`` (until the first token) then
``decode_steps`` (the remaining output tokens).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from solution.sim.gpus import GPU_PRESETS, GpuSpec, ModelSpec, ServerTiming, gpu_preset
from solution.sim.validate import require_number
from solution.core.validate import require_id, require_int

__all__ = ["ServerSpec", "Cluster", "LlmMode", "ClassicMode", "Mode", "service_rate"]


@dataclass(frozen=True)
class ServerSpec:
    """One server: an id, a GPU preset and a capacity (``None``: the mode's default for that GPU)."""

    server_id: str
    gpu: str = "A100-80GB"
    capacity: int | None = None

    def __post_init__(self) -> None:
        require_id(self.server_id, "server_id")
        gpu_preset(self.gpu)
        if self.capacity is not None:
            require_int(self.capacity, "capacity")

    @property
    def gpu_spec(self) -> GpuSpec:
        return GPU_PRESETS[self.gpu]


@dataclass(frozen=True)
class Cluster:
    """The servers present at time 0, in the order they are added to the balancer."""

    servers: tuple[ServerSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "servers", tuple(self.servers))
        if not self.servers:
            raise ValueError("a cluster needs at least one server")
        for spec in self.servers:
            if not isinstance(spec, ServerSpec):
                raise TypeError(f"Cluster takes ServerSpec objects, got {type(spec).__name__}")
        ids = [s.server_id for s in self.servers]
        if len(set(ids)) != len(ids):
            raise ValueError(f"server ids must be unique, got {ids}")

    @classmethod
    def uniform(cls, servers: int, gpu: str = "A100-80GB", capacity: int | None = None, prefix: str = "gpu-") -> Cluster:
        """``servers`` identical servers named ``gpu-0``, ``gpu-1``, ...

        >>> Cluster.uniform(2, capacity=1).servers[1]
        ServerSpec(server_id='gpu-1', gpu='A100-80GB', capacity=1)
        """
        require_int(servers, "servers")
        return cls(tuple(ServerSpec(f"{prefix}{k}", gpu, capacity) for k in range(servers)))

    @classmethod
    def mixed(cls, counts: Mapping[str, int], capacity: int | None = None) -> Cluster:
        """Servers of several GPU presets, e.g. ``Cluster.mixed({"A10-24GB": 2, "H100-80GB": 1})``.

        Ids are the lower-cased preset name and a number: ``a10-24gb-0``.
        """
        specs = []
        for gpu, n in counts.items():
            require_int(n, f"count of {gpu}")
            specs += [ServerSpec(f"{gpu.lower()}-{k}", gpu, capacity) for k in range(n)]
        return cls(tuple(specs))

    def __len__(self) -> int:
        return len(self.servers)


@dataclass(frozen=True)
class LlmMode:
    """LLM serving: chunked prefill, then one token per iteration, in a shared batch.

    A request with P prompt tokens and O output tokens needs ``P / chunk``
    prefill steps (its first token appears when they are done) and then
    ``O - 1`` decode steps.  Server speeds come from ``model`` on each GPU.
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    chunk: int = 512

    def __post_init__(self) -> None:
        require_int(self.chunk, "chunk")

    def timing(self, gpu: GpuSpec) -> ServerTiming:
        return self.model.timing(gpu, self.chunk)

    def default_capacity(self, gpu: GpuSpec) -> int:
        return self.model.default_capacity(gpu)

    def mean_steps(self, prompt: np.ndarray, output: np.ndarray) -> tuple[float, float]:
        """Mean prefill and decode steps of these requests.  O(n)."""
        prefill, decode = self.steps(prompt, output, None)
        return float(prefill.mean()), float(decode.mean())

    def steps(self, prompt: np.ndarray, output: np.ndarray, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """``(prefill_steps, decode_steps)`` per request (``rng`` is unused: the work is the tokens).  O(n)."""
        prefill = prompt.astype(np.float64) / self.chunk
        decode = np.maximum(output.astype(np.float64) - 1.0, 0.0)
        return prefill, decode


@dataclass(frozen=True)
class ClassicMode:
    """The textbook world: exponential service times with mean ``mean_service`` seconds.

    Tokens are ignored (they only reach the balancer as ``estimated_tokens``).
    The whole service is one phase, so the first token arrives with the last.
    Capacity defaults to 1 per server.

    * ``sharing=False`` (default): a request is served at full speed however
      many others run beside it; c servers of capacity 1 make an M/M/c/c
      loss system (Erlang B).
    * ``sharing=True``: a server's speed is split equally among its running
      requests (egalitarian processor sharing); one server of capacity K is
      an M/M/1/K queue served by processor sharing.  It exercises the same
      virtual-clock bookkeeping as LLM mode, against a formula.

    ``sized=True`` tells the gateway each job's size: ``estimated_tokens`` is
    ``max(1, round(100 * service / mean_service))`` (100 tokens for a job of
    mean length) instead of coming from the token counts, so a queue's
    shortest-job-first ordering knows the true service times.
    """

    mean_service: float = 1.0
    sharing: bool = False
    sized: bool = False

    def __post_init__(self) -> None:
        require_number(self.mean_service, "mean_service")
        for name in ("sharing", "sized"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")

    def timing(self, gpu: GpuSpec) -> ServerTiming:
        # A step is one second of service.  Without sharing an iteration takes 1 s whatever the
        # batch; with sharing it takes 1 s per running request, so each gets 1/b of the speed.
        if self.sharing:
            return ServerTiming(t_base=0.0, t_decode=1.0, t_chunk=1.0)
        return ServerTiming(t_base=1.0, t_decode=0.0, t_chunk=0.0)

    def default_capacity(self, gpu: GpuSpec) -> int:
        return 1

    def mean_steps(self, prompt: np.ndarray, output: np.ndarray) -> tuple[float, float]:
        """The mean service time is known exactly: ``(mean_service, 0)``."""
        return float(self.mean_service), 0.0

    def steps(self, prompt: np.ndarray, output: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Exponential service times as the prefill work; no decode work.  O(n)."""
        return rng.exponential(self.mean_service, len(prompt)), np.zeros(len(prompt))

    def sized_estimates(self, service: np.ndarray) -> np.ndarray:
        """``estimated_tokens`` that tell the job sizes (``sized=True``): 100 tokens per mean service time.  O(n)."""
        return np.maximum(np.rint(100.0 * service / self.mean_service), 1).astype(np.int64)


Mode = LlmMode | ClassicMode


def service_rate(timing: ServerTiming, capacity: int, mean_prefill: float, mean_decode: float) -> float:
    """Requests per second one server completes when its batch is always full.

    At a constant batch of B sequences each iteration's time is shared by
    the B sequences, so one step costs a sequence ``t_base / B`` plus its own
    per-phase cost.  A request's server time is then
    ``prefill * (t_base/B + t_chunk) + decode * (t_base/B + t_decode)``, and
    the rate is one over its mean.  In classic mode this is ``c / mean_service``.
    """
    share = timing.t_base / capacity
    seconds = mean_prefill * (share + timing.t_chunk) + mean_decode * (share + timing.t_decode)
    return 1.0 / seconds
