"""The cluster a scenario runs: its servers and the service mode.

* :class:`ServerSpec` / :class:`Cluster`: which servers exist at time 0
  (GPU preset, capacity).  Servers added later come from the timetable
  (:class:`solution.sim.faults.AddServer`).
* :class:`LlmMode`: continuous batching with prefill and decode phases; the
  iteration time grows with the batch (see :mod:`solution.sim.server`).
* :class:`ClassicMode`: the textbook model where queueing theory applies
  exactly: exponential service times that do not depend on the batch.

A mode turns a request's tokens into *work* for its server's two virtual
clocks (:mod:`solution.sim.server`): the prefill work (LLM mode: the prompt
tokens; classic mode: the service time in seconds), then the decode work
(LLM mode: the output tokens after the first, one iteration each; classic
mode: none).  ``mode.server_model(gpu)`` gives what sets a server's rates: a
:class:`~solution.core.latency.LatencyModel` or a
:class:`~solution.sim.server.ClassicService`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from solution.core.latency import LatencyModel
from solution.sim.gpus import GPU_PRESETS, GpuSpec, ModelSpec, gpu_preset
from solution.sim.server import ClassicService, ServerModel
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

    A request with P prompt tokens and O output tokens needs P tokens of
    prefill (its first token appears when they are done) and then ``O - 1``
    decode iterations.  Each server runs ``model.latency_model(gpu,
    token_budget)``: the roofline iteration time of
    :class:`~solution.core.latency.LatencyModel`, with at most
    ``token_budget`` tokens per iteration (vLLM's ``max_num_batched_tokens``)
    shared by the decoders (one each) and the prefills (the rest).

    Raises:
        TypeError / ValueError: ``token_budget`` is not an int >= 1, or
            ``model`` is not a :class:`~solution.sim.gpus.ModelSpec`.
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    token_budget: int = 512

    def __post_init__(self) -> None:
        require_int(self.token_budget, "token_budget")
        if not isinstance(self.model, ModelSpec):
            raise TypeError(f"model must be a ModelSpec, got {type(self.model).__name__}")

    def server_model(self, gpu: GpuSpec) -> LatencyModel:
        """The latency model a server with ``gpu`` runs (at speed 1).  O(1)."""
        return self.model.latency_model(gpu, self.token_budget)

    def default_capacity(self, gpu: GpuSpec) -> int:
        return self.model.default_capacity(gpu)

    def mean_steps(self, prompt: np.ndarray, output: np.ndarray) -> tuple[float, float]:
        """Mean prefill work (prompt tokens) and decode work (iterations) of these requests.  O(n)."""
        prefill, decode = self.steps(prompt, output, None)
        return float(prefill.mean()), float(decode.mean())

    def steps(self, prompt: np.ndarray, output: np.ndarray, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """``(prefill, decode)`` work per request: prompt tokens, and output tokens after the first.

        ``rng`` is unused: the work is the tokens.  O(n).
        """
        prefill = prompt.astype(np.float64)
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

    def server_model(self, gpu: GpuSpec) -> ClassicService:
        """Service in seconds: at full speed for each request, or split among them (``sharing``).  O(1)."""
        return ClassicService(self.sharing)

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


def service_rate(model: ServerModel, capacity: int, mean_prefill: float, mean_decode: float) -> float:
    """Requests per second one server completes when its batch is always full (its saturated throughput).

    Classic mode: ``capacity / mean_service`` without sharing,
    ``1 / mean_service`` with it.

    LLM mode (``model`` a :class:`LatencyModel`, c = ``capacity``, B the
    token budget, P the mean prompt tokens, D the mean decode iterations):
    a full batch's iterations either prefill or only decode, and over many
    completions the tokens they process must match the demand, P prompt and
    D decode tokens per request (fluid, as the simulator; the spread of the
    token counts does not matter, only their means):

    * *decode-heavy* (the usual case): one request at a time prefills beside
      c - 1 decoders, getting ``a = max(1, B - c + 1)`` tokens per
      iteration.  A request's prefill takes ``P / a`` iterations of
      ``t(c, c - 1 + a)`` during which the others decode ``(c - 1) P / a``
      tokens; the rest of the D decode tokens take iterations of ``t(c,
      c)`` that decode c tokens each.  Seconds per completion:
      ``P / a * t(c, c - 1 + a) + (D - (c - 1) P / a) / c * t(c, c)``;
    * *prefill-heavy* (``D < (c - 1) P / a``): some sequence always
      prefills; the budget splits between ``d`` decoders and the prefills in
      the ratio of the demands, ``(B - d) / d = P / D``; seconds per
      completion: ``P / (B - d) * t(c, B)``.

    ``t(n, tokens)`` is :meth:`LatencyModel.iteration_time`.  A test checks
    the simulator completes this many requests per second when overloaded.
    O(1).

    Raises:
        ValueError: the requests have no work at all (P = D = 0).
    """
    if isinstance(model, ClassicService):
        return (1.0 if model.sharing else float(capacity)) / mean_prefill
    if mean_prefill <= 0 and mean_decode <= 0:
        raise ValueError("these requests need no work (no prompt, one output token each): a service rate is undefined")
    c, budget, prompt, decode = capacity, model.token_budget, mean_prefill, mean_decode
    memory = model.weights_s + model.kv_s * c

    def t_iter(tokens: float) -> float:
        return max(memory, model.token_s * tokens)

    if prompt <= 0:
        return c / (decode * t_iter(c))
    a = max(1, budget - c + 1)
    prefill_iterations = prompt / a
    rest = decode - (c - 1) * prefill_iterations
    if rest >= 0:
        seconds = prefill_iterations * t_iter(c - 1 + a) + rest / c * t_iter(c)
    else:
        d = budget * decode / (prompt + decode)
        if budget - d < 1:  # a budget at most the batch: the prefills get a single token
            d = decode / prompt
        chunk = max(1.0, budget - d)
        seconds = prompt / chunk * t_iter(d + chunk)
    return 1.0 / seconds
