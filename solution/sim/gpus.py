"""GPU presets and the reference model: where a server's speed comes from.

LLM inference has two phases with different bottlenecks (the roofline view):

* **Prefill** (reading the prompt) multiplies large matrices: it is
  *compute-bound*, so it scales with the GPU's dense FP16/BF16 tensor FLOPS.
  A prompt token costs about ``2 * params`` FLOPs.
* **Decode** (one token per sequence per iteration) must read every weight
  and the KV cache once per iteration for very few FLOPs: it is
  *memory-bandwidth-bound*, so it scales with HBM/GDDR bandwidth.

The presets hold published datasheet figures (see ``docs/simulator.md`` for
the sources); :meth:`ModelSpec.timing` turns them into the three constants of
the server model in :mod:`solution.sim.server`.  Absolute times depend on the
efficiency factors (``compute_efficiency``, ``bandwidth_efficiency``), which
are rough; *relative* speeds between GPUs follow the datasheets exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from solution.core.latency import LatencyModel
from solution.sim.validate import require_number

__all__ = ["GpuSpec", "GPU_PRESETS", "ModelSpec", "ServerTiming", "gpu_preset"]


@dataclass(frozen=True)
class GpuSpec:
    """A GPU model: memory, dense FP16/BF16 tensor throughput, memory bandwidth."""

    name: str
    memory_gb: int
    tflops: float  # dense FP16/BF16 tensor-core TFLOPS (no structured sparsity)
    bandwidth_gb_s: float  # memory bandwidth, GB/s (10^9 bytes per second)
    source: str


#: Published figures, dense (no sparsity) FP16/BF16 tensor throughput.
GPU_PRESETS: dict[str, GpuSpec] = {
    spec.name: spec
    for spec in (
        GpuSpec("A10-24GB", 24, 125.0, 600.0, "NVIDIA A10 Tensor Core GPU datasheet"),
        GpuSpec("A100-40GB", 40, 312.0, 1555.0, "NVIDIA A100 Tensor Core GPU datasheet (SXM4 40GB)"),
        GpuSpec("A100-80GB", 80, 312.0, 2039.0, "NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB)"),
        GpuSpec("H100-80GB", 80, 989.0, 3350.0, "NVIDIA H100 Tensor Core GPU datasheet (SXM5)"),
    )
}


def gpu_preset(name: str) -> GpuSpec:
    """The preset called ``name`` (see :data:`GPU_PRESETS`).

    Raises:
        TypeError: ``name`` is not a ``str``.
        ValueError: no such preset (the message lists them).
    """
    if not isinstance(name, str):
        raise TypeError(f"gpu must be a preset name (str), got {type(name).__name__}")
    try:
        return GPU_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown GPU preset {name!r}; choose one of {', '.join(GPU_PRESETS)}") from None


@dataclass(frozen=True)
class ServerTiming:
    """The three constants of a server's iteration time (seconds).

    One iteration of the continuous-batching engine, with ``d`` sequences
    decoding and ``p`` sequences prefilling, takes::

        t_iter = t_base + t_decode * d + t_chunk * p

    and advances every running sequence by one *step* (see
    :mod:`solution.sim.server`).
    """

    t_base: float  # per iteration: reading the weights
    t_decode: float  # per decoding sequence: its KV cache read and one token of compute
    t_chunk: float  # per prefilling sequence: one chunk of prompt tokens of compute

    def __post_init__(self) -> None:
        for name in ("t_base", "t_decode", "t_chunk"):
            require_number(getattr(self, name), name, strict=False)
        if self.t_base + self.t_decode <= 0 or self.t_base + self.t_chunk <= 0:
            raise ValueError("an iteration with at least one sequence must take some time: raise t_base")

    def iteration_time(self, decoding: int, prefilling: int = 0) -> float:
        """Seconds per iteration with that many sequences in each phase.  O(1)."""
        return self.t_base + self.t_decode * decoding + self.t_chunk * prefilling


@dataclass(frozen=True)
class ModelSpec:
    """The model every server runs; defaults describe a 7B-parameter model in FP16.

    ``kv_bytes_per_token`` = 2 (K and V) x 32 layers x 4096 hidden x 2 bytes.
    ``typical_context`` sets the per-sequence KV-cache read in an iteration
    (a fixed typical context keeps the model a processor-sharing one; see
    the docs).  ``max_context`` sets the KV-cache room a sequence reserves,
    hence the default capacity of a GPU.
    """

    params: float = 7e9
    bytes_per_param: float = 2.0
    kv_bytes_per_token: float = 2 * 32 * 4096 * 2
    typical_context: int = 1024
    max_context: int = 2048
    compute_efficiency: float = 0.5  # model FLOPs utilization in prefill
    bandwidth_efficiency: float = 0.7  # memory bandwidth utilization in decode
    memory_headroom: float = 0.9  # fraction of GPU memory usable for weights and KV cache

    @property
    def weight_bytes(self) -> float:
        return self.params * self.bytes_per_param

    def timing(self, gpu: GpuSpec, chunk: int) -> ServerTiming:
        """The iteration-time constants of this model on ``gpu`` with prefill chunks of ``chunk`` tokens."""
        flops = gpu.tflops * 1e12 * self.compute_efficiency
        bandwidth = gpu.bandwidth_gb_s * 1e9 * self.bandwidth_efficiency
        token_compute = 2.0 * self.params / flops
        return ServerTiming(
            t_base=self.weight_bytes / bandwidth,
            t_decode=self.kv_bytes_per_token * self.typical_context / bandwidth + token_compute,
            t_chunk=chunk * token_compute,
        )

    def latency_model(self, gpu: GpuSpec, token_budget: int = 512) -> LatencyModel:
        """The roofline latency model of this model on ``gpu`` (see :mod:`solution.core.latency`).

        ``weights_s`` and ``kv_s`` are memory times (bytes over the usable
        bandwidth), ``token_s`` the compute time of one token (``2 * params``
        FLOPs over the usable FLOPS); ``token_budget`` is the most tokens one
        iteration processes.
        """
        bandwidth = gpu.bandwidth_gb_s * 1e9 * self.bandwidth_efficiency
        return LatencyModel(
            weights_s=self.weight_bytes / bandwidth,
            kv_s=self.kv_bytes_per_token * self.typical_context / bandwidth,
            token_s=2.0 * self.params / (gpu.tflops * 1e12 * self.compute_efficiency),
            token_budget=token_budget,
        )

    def default_capacity(self, gpu: GpuSpec) -> int:
        """How many ``max_context`` sequences fit in the KV-cache room left after the weights.

        Raises:
            ValueError: the weights alone do not fit on the GPU.
        """
        room = gpu.memory_gb * 1e9 * self.memory_headroom - self.weight_bytes
        per_seq = self.kv_bytes_per_token * self.max_context
        capacity = math.floor(room / per_seq)
        if capacity < 1:
            raise ValueError(
                f"a {self.params / 1e9:g}B-parameter model does not fit on {gpu.name} with room for one "
                f"{self.max_context}-token sequence; choose a bigger GPU or give the capacity explicitly"
            )
        return capacity
