"""What a request costs on a continuous-batching server, in seconds: the course's latency model.

A token is not a unit of cost.  A server runs its batch in *iterations*; each
iteration reads the model's weights and every running sequence's KV cache
from memory, and computes the tokens it processes.  Its time is bounded by
the slower of the two (the roofline)::

    t_iter(sequences, tokens) = max(weights_s + kv_s * sequences,   # memory
                                    token_s * tokens)               # compute

* An **output token** costs one whole iteration (decode makes one token per
  sequence per iteration, and the iteration is memory-bound: about 10-25 ms
  for a 7B model on an A100).
* A **prompt token** costs ``token_s`` of compute inside an iteration's token
  budget (chunked prefill): about 0.09 ms on the same GPU, two orders of
  magnitude less.

So ``estimated_tokens = prompt + output`` (stage 1's single number) hides the
split that decides the cost: a 4,000-token prompt with a 10-token answer is a
short request; a 50-token prompt with a 2,000-token answer is a long one.

And with continuous batching nothing waits *behind* the tokens already on a
server: a new request joins the batch at once and every sequence in the
batch, its own included, then runs at ``1 / t_iter(batch + 1, ...)``
iterations per second.  What a server's load changes is the *speed* of each
of its sequences, not a queue ahead of the request.

The simulator (:mod:`solution.sim.server`) runs exactly this iteration time;
:meth:`solution.sim.gpus.ModelSpec.latency_model` derives the constants of a
GPU from its datasheet.  :meth:`LatencyModel.e2e` is the prediction routing
uses: an approximation that holds the batch at its size when the request
joins (it does not guess who finishes or arrives meanwhile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from solution.core.validate import require_int

__all__ = ["LatencyModel", "REFERENCE_MODEL"]


def _require_seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class LatencyModel:
    """The iteration-time constants of one server, and the latencies they imply.

    Every method is O(1).  Instances are immutable and hashable, so servers
    of one GPU type share one model (and a router can group servers by it).

    Args:
        weights_s: memory time to read the weights once (every iteration pays it).
        kv_s: memory time to read one running sequence's KV cache (per iteration).
        token_s: compute time of one token, prompt or output.
        token_budget: the most tokens one iteration processes (vLLM's
            ``max_num_batched_tokens``): decoding sequences take one each,
            prefilling sequences share the rest (chunked prefill).

    Raises:
        TypeError / ValueError: a constant that is not a finite number >= 0,
            a budget that is not an int >= 1, or a model in which an
            iteration can take no time.
    """

    weights_s: float
    kv_s: float
    token_s: float
    token_budget: int = 512

    def __post_init__(self) -> None:
        for name in ("weights_s", "kv_s", "token_s"):
            object.__setattr__(self, name, _require_seconds(getattr(self, name), name))
        require_int(self.token_budget, "token_budget")
        if self.weights_s + self.kv_s <= 0 or self.token_s <= 0:
            raise ValueError("an iteration must take some time: give token_s > 0 and weights_s + kv_s > 0")

    def iteration_time(self, sequences: int, tokens: int) -> float:
        """Seconds for one iteration over ``sequences`` running sequences processing ``tokens`` tokens (roofline)."""
        return max(self.weights_s + self.kv_s * sequences, self.token_s * tokens)

    def decode_step(self, batch: int) -> float:
        """Seconds per output token for each of ``batch`` decoding sequences."""
        return self.iteration_time(batch, batch)

    def throughput(self, batch: int) -> float:
        """Output tokens per second of the whole server with ``batch`` sequences decoding."""
        return batch / self.decode_step(batch)

    def prefill_time(self, prompt_tokens: int, batch: int = 0) -> float:
        """Seconds to prefill a prompt that joins ``batch`` decoding sequences.

        Each iteration the ``batch`` decoders take one token each and the
        prompt gets the rest of the token budget, ``chunk = max(1,
        token_budget - batch)`` tokens; so the prefill lasts ``prompt /
        chunk`` iterations of ``batch + 1`` sequences processing ``batch +
        chunk`` tokens.  The count of iterations is fractional, as in the
        simulator's fluid model (a prompt shorter than the budget pays its
        share of a full-budget iteration, not a whole iteration); this is
        exactly what :mod:`solution.sim.server` produces for the same batch.
        """
        if prompt_tokens <= 0:
            return 0.0
        chunk = max(1, self.token_budget - batch)
        return prompt_tokens / chunk * self.iteration_time(batch + 1, batch + chunk)

    def ttft(self, prompt_tokens: int, batch: int = 0) -> float:
        """Time to first token: the prefill (the first token comes out of its last iteration; 0 with no prompt)."""
        return self.prefill_time(prompt_tokens, batch)

    def e2e(self, prompt_tokens: int, output_tokens: int, batch: int = 0) -> float:
        """End-to-end seconds of a request that joins a batch of ``batch`` sequences (held at ``batch + 1``)."""
        return self.ttft(prompt_tokens, batch) + max(0, output_tokens - 1) * self.decode_step(batch + 1)

    def scaled(self, speed: float) -> LatencyModel:
        """The same server running ``speed`` times as fast (a slowdown is ``speed < 1``)."""
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not speed > 0 or not math.isfinite(speed):
            raise ValueError(f"speed must be a finite number > 0, got {speed!r}")
        return LatencyModel(self.weights_s / speed, self.kv_s / speed, self.token_s / speed, self.token_budget)


#: A 7B-parameter FP16 model on an A100-80GB (SXM4) at 70% of its memory
#: bandwidth and 50% of its tensor FLOPS, KV reads at a 1,024-token context:
#: ``solution.sim.gpus.ModelSpec().latency_model(gpu_preset("A100-80GB"))``
#: (a test keeps the two equal).  Routers use it, scaled by a server's
#: ``speed``, when no model is given for that server.
REFERENCE_MODEL = LatencyModel(
    weights_s=14e9 / (2039e9 * 0.7),
    kv_s=(2 * 32 * 4096 * 2) * 1024 / (2039e9 * 0.7),
    token_s=2 * 7e9 / (312e12 * 0.5),
    token_budget=512,
)
