"""GPU presets and the reference model: where a server's speed comes from.

LLM inference has two phases with different bottlenecks (the roofline view):

* **Prefill** (reading the prompt) multiplies large matrices: it is
  *compute-bound*, so it scales with the GPU's dense FP16/BF16 tensor FLOPS.
  A prompt token costs about ``2 * params`` FLOPs.
* **Decode** (one token per sequence per iteration) must read every weight
  and the KV cache once per iteration for very few FLOPs: it is
  *memory-bandwidth-bound*, so it scales with HBM/GDDR bandwidth.

The presets hold published datasheet figures (see ``docs/simulator.md`` for
the sources); :meth:`ModelSpec.latency_model` turns them into the constants
of the course's latency model (:class:`solution.core.latency.LatencyModel`),
which the simulated servers run (:mod:`solution.sim.server`).  Absolute
times depend on the efficiency factors (``compute_efficiency``,
``bandwidth_efficiency``), which are rough; *relative* speeds between GPUs
follow the datasheets exactly.

Units (one convention everywhere in the simulator):

* **memory sizes are binary**: a GPU's "80 GB" is 80 GiB = 80 x 2^30 bytes
  (the datasheets' memory "GB" is binary: an A100-80GB's ``nvidia-smi``
  reports 81,920 MiB); :attr:`GpuSpec.memory_bytes` converts.
* **bandwidths and model sizes are decimal**: GB/s is 10^9 bytes per second,
  as the datasheets mean it, and a 7B-parameter FP16 model's weights are
  14 x 10^9 bytes (13.0 GiB).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from solution.core.latency import LatencyModel
from solution.core.validate import require_int
from solution.sim.validate import require_number

_T = TypeVar("_T")

__all__ = ["GpuSpec", "GPU_PRESETS", "ModelSpec", "gpu_preset", "GIB", "MODEL_PRESETS", "model_preset"]

#: Bytes in a GiB: the unit of :attr:`GpuSpec.memory_gb`.
GIB = 2**30


@dataclass(frozen=True)
class GpuSpec:
    """A GPU model: memory, dense FP16/BF16 tensor throughput, memory bandwidth.

    ``memory_gb`` is the datasheet's memory size, a binary size (GiB, 2^30
    bytes: see the module's units); it is what the balancer is told as
    ``gpu_memory_gb``.  ``bandwidth_gb_s`` is decimal (10^9 bytes/s).
    ``product`` names the exact board the figures are for (form factor
    included: SXM and PCIe boards of one GPU differ in bandwidth and FLOPS).
    """

    name: str
    memory_gb: int  # GiB (2^30 bytes), as the datasheets' memory "GB"
    tflops: float  # dense FP16/BF16 tensor-core TFLOPS (no structured sparsity)
    bandwidth_gb_s: float  # memory bandwidth, GB/s (10^9 bytes per second)
    source: str
    product: str = ""
    #: Host link bandwidth one way, GB/s (10^9 bytes/s): what a preempted request's KV cache is swapped over
    #: (vLLM's swap mode: out to CPU memory and back).  Half the datasheet's bidirectional PCIe figure.
    pcie_gb_s: float = 32.0

    @property
    def memory_bytes(self) -> int:
        """The GPU's memory in bytes: ``memory_gb`` GiB."""
        return self.memory_gb * GIB


#: Published figures, dense (no sparsity) FP16/BF16 tensor throughput.  The keys stay
#: short and stable (scenarios, notebooks and saved results name them); ``product`` and
#: ``source`` say which board: the A100s are SXM4 boards and the H100 an SXM5 board.
GPU_PRESETS: dict[str, GpuSpec] = {
    spec.name: spec
    for spec in (
        GpuSpec("A10-24GB", 24, 125.0, 600.0, "NVIDIA A10 Tensor Core GPU datasheet (PCIe, 24 GB GDDR6)",
                "NVIDIA A10 PCIe 24GB", 32.0),
        GpuSpec("A100-40GB", 40, 312.0, 1555.0, "NVIDIA A100 Tensor Core GPU datasheet, A100 40GB SXM column (SXM4)",
                "NVIDIA A100 SXM4 40GB", 32.0),
        GpuSpec("A100-80GB", 80, 312.0, 2039.0, "NVIDIA A100 Tensor Core GPU datasheet, A100 80GB SXM column (SXM4)",
                "NVIDIA A100 SXM4 80GB", 32.0),
        GpuSpec("H100-80GB", 80, 989.0, 3350.0, "NVIDIA H100 Tensor Core GPU datasheet, H100 SXM column (SXM5; "
                "1,979 TFLOPS is the figure with sparsity; PCIe Gen5 128 GB/s both ways)", "NVIDIA H100 SXM5 80GB", 64.0),
    )
}


def gpu_preset(name: str) -> GpuSpec:
    """The preset called ``name`` (see :data:`GPU_PRESETS`).

    Raises:
        TypeError: ``name`` is not a ``str``.
        ValueError: no such preset (the message lists them).
    """
    return _preset(GPU_PRESETS, name, "gpu")


def _preset(table: Mapping[str, _T], name: object, what: str) -> _T:
    """``table[name]``, or a TypeError / ValueError that lists the presets."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a preset name (str), got {type(name).__name__}")
    try:
        return table[name]
    except KeyError:
        label = "GPU" if what == "gpu" else what
        raise ValueError(f"unknown {label} preset {name!r}; choose one of {', '.join(table)}") from None


@dataclass(frozen=True)
class ModelSpec:
    """The model every server runs; defaults describe a 7B-parameter model in FP16.

    ``kv_bytes_per_token`` = 2 (K and V) x 32 layers x 4096 hidden x 2 bytes
    (full multi-head attention: 512 KiB per token).  Named presets, among
    them a grouped-query-attention model with a quarter of that KV cache per
    token, are in :data:`MODEL_PRESETS`; ``name`` labels tables and plots.
    ``typical_context`` sets the per-sequence KV-cache read in an iteration
    (a fixed typical context keeps the model a processor-sharing one; see
    the docs).  ``max_context`` sets the KV-cache room a sequence reserves,
    hence the default capacity of a GPU.

    Raises:
        TypeError / ValueError: a size or count that is not a finite number
            > 0 (contexts: an int >= 1), or an efficiency or headroom outside
            (0, 1].
    """

    params: float = 7e9
    bytes_per_param: float = 2.0
    kv_bytes_per_token: float = 2 * 32 * 4096 * 2
    typical_context: int = 1024
    max_context: int = 2048
    compute_efficiency: float = 0.5  # model FLOPs utilization in prefill
    bandwidth_efficiency: float = 0.7  # memory bandwidth utilization in decode
    memory_headroom: float = 0.9  # fraction of GPU memory usable for weights and KV cache
    name: str = "7B FP16"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        if not self.name:
            raise ValueError("name must be a non-empty string (it labels tables and plots)")
        for name in ("params", "bytes_per_param", "kv_bytes_per_token"):
            require_number(getattr(self, name), name)
        for name in ("typical_context", "max_context"):
            require_int(getattr(self, name), name)
        for name in ("compute_efficiency", "bandwidth_efficiency", "memory_headroom"):
            if require_number(getattr(self, name), name) > 1:
                raise ValueError(f"{name} is a fraction in (0, 1], got {getattr(self, name)}")

    @property
    def weight_bytes(self) -> float:
        return self.params * self.bytes_per_param

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

        The room is ``memory_headroom`` of the GPU's memory in bytes (GiB:
        see the module's units) minus the weights' bytes.  O(1).

        Raises:
            ValueError: the weights alone do not fit on the GPU.
        """
        room = gpu.memory_bytes * self.memory_headroom - self.weight_bytes
        per_seq = self.kv_bytes_per_token * self.max_context
        capacity = math.floor(room / per_seq)
        if capacity < 1:
            raise ValueError(
                f"a {self.params / 1e9:g}B-parameter model does not fit on {gpu.name} with room for one "
                f"{self.max_context}-token sequence; choose a bigger GPU or give the capacity explicitly"
            )
        return capacity


#: Named models (``model_preset(name)``).  Weights and KV cache in FP16/BF16 (2 bytes).
#:
#: * ``"7B FP16"``: the course's default :class:`ModelSpec` (Llama-2-7B's shape: 32 layers,
#:   hidden 4096, full multi-head attention): 2 x 32 x 4096 x 2 = 512 KiB of KV cache per token.
#: * ``"Llama-3.1-8B"``: 8.03 B parameters, 32 layers, grouped-query attention with 8 KV heads of
#:   dimension 128: 2 x 32 x 8 x 128 x 2 = 128 KiB per token (Meta's model card / config.json).
#:   ``typical_context`` 8,192 and ``max_context`` 16,384 suit long multi-turn prompts such as the
#:   Mooncake trace's (mean prompt 12,035 tokens): ``max_context`` sizes the batch
#:   (:meth:`ModelSpec.default_capacity`), it is not the model's 128k limit.
MODEL_PRESETS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(),
        ModelSpec(params=8.03e9, kv_bytes_per_token=2 * 32 * 8 * 128 * 2, typical_context=8192, max_context=16384,
                  name="Llama-3.1-8B"),
    )
}


def model_preset(name: str) -> ModelSpec:
    """The model called ``name`` (see :data:`MODEL_PRESETS`).

    Raises:
        TypeError: ``name`` is not a ``str``.
        ValueError: no such preset (the message lists them).
    """
    return _preset(MODEL_PRESETS, name, "model")
