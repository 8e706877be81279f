"""One record per request, passed down the request path instead of a growing list of arguments.

Stage 1's API takes ``route_request(request_id, estimated_tokens)``: one
number, the prompt's tokens plus the expected output's.  The number hides
the split that decides the cost (see :mod:`solution.core.latency`): a prompt
token costs about a hundredth of an output token.  A gateway knows the
prompt's length exactly (it tokenizes it) and only *estimates* the output's,
so it can pass ``prompt_tokens`` as well; strategies that price requests in
seconds read :attr:`Request.prompt_tokens` and :attr:`Request.output_tokens`.

Stage 5 adds ``session_id`` (the conversation a request belongs to: session
affinity keeps a conversation on the server that holds its KV cache) and
``prefix_blocks`` (hashes of the prompt's 512-token prefix blocks, in order,
as the Mooncake trace gives them: prefix-aware routing matches them against
what each server holds).  Stage 6 adds ``tier`` (the service tier a customer
pays for: its queue class, reserved slots, rate limits, pool; ``None`` is the
tier table's default) and ``tenant`` (who sends it: per-tenant rate limits;
``None`` is no per-tenant limit).  Later stages add their fields here (deadline).
"""

from __future__ import annotations

from dataclasses import dataclass

from solution.core.validate import require_id, require_int

__all__ = ["Request"]


@dataclass(frozen=True, slots=True)
class Request:
    """A request as the balancer sees it.  Immutable; built in O(1).

    Args:
        request_id: a non-empty ``str``.
        estimated_tokens: prompt plus expected output tokens, an int >= 1
            (stage 1's single number).
        prompt_tokens: the prompt's tokens, an int with
            ``0 <= prompt_tokens <= estimated_tokens``, or ``None`` when the
            caller gave only the total: then every token counts as an output
            token, the expensive kind (an upper bound on the decode work).
        session_id: the conversation this request belongs to (stage 5), a
            non-empty ``str``, or ``None`` (no session: no affinity).
        prefix_blocks: hashes of the prompt's prefix blocks (512 tokens
            each), in prompt order, a ``tuple`` of ``int`` (not ``bool``);
            ``()`` when unknown.  Validated in O(B) for B blocks.
        tier: the name of its service tier (stage 6), a non-empty ``str``, or
            ``None`` (the tier table's default tier).  Whether the name is a
            known tier is the tier table's question (``UnknownTierError``).
        tenant: who sent it (stage 6: an API key, an organisation), a
            non-empty ``str``, or ``None`` (no per-tenant limit; the tier's
            own limits still apply).

    Raises:
        TypeError / ValueError: a field of the wrong type or out of range.
    """

    request_id: str
    estimated_tokens: int
    prompt_tokens: int | None = None
    session_id: str | None = None
    prefix_blocks: tuple[int, ...] = ()
    tier: str | None = None
    tenant: str | None = None

    def __post_init__(self) -> None:
        require_id(self.request_id, "request_id")
        require_int(self.estimated_tokens, "estimated_tokens")
        if self.prompt_tokens is not None:
            require_int(self.prompt_tokens, "prompt_tokens", minimum=0, maximum=self.estimated_tokens)
        if self.session_id is not None:
            require_id(self.session_id, "session_id")
        blocks = self.prefix_blocks
        if not isinstance(blocks, tuple):
            raise TypeError(f"prefix_blocks must be a tuple of ints (block hashes), got {type(blocks).__name__}; "
                            "pass tuple(blocks)")  # fmt: skip
        for i, b in enumerate(blocks):
            if isinstance(b, bool) or not isinstance(b, int):
                raise TypeError(f"prefix_blocks[{i}] must be an int (a block hash), got {type(b).__name__} {b!r}")
        if self.tier is not None:
            require_id(self.tier, "tier")
        if self.tenant is not None:
            require_id(self.tenant, "tenant")

    @property
    def output_tokens(self) -> int:
        """Expected output tokens: the total minus the prompt (the whole total when the split is unknown)."""
        return self.estimated_tokens - (self.prompt_tokens or 0)
