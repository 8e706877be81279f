"""One record per request, passed down the request path instead of a growing list of arguments.

Stage 1's API takes ``route_request(request_id, estimated_tokens)``: one
number, the prompt's tokens plus the expected output's.  The number hides
the split that decides the cost (see :mod:`solution.core.latency`): a prompt
token costs about a hundredth of an output token.  A gateway knows the
prompt's length exactly (it tokenizes it) and only *estimates* the output's,
so it can pass ``prompt_tokens`` as well; strategies that price requests in
seconds read :attr:`Request.prompt_tokens` and :attr:`Request.output_tokens`.

Later stages add their fields here (session, tier, prefix blocks, deadline).
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

    Raises:
        TypeError / ValueError: a field of the wrong type or out of range.
    """

    request_id: str
    estimated_tokens: int
    prompt_tokens: int | None = None

    def __post_init__(self) -> None:
        require_id(self.request_id, "request_id")
        require_int(self.estimated_tokens, "estimated_tokens")
        if self.prompt_tokens is not None:
            require_int(self.prompt_tokens, "prompt_tokens", minimum=0, maximum=self.estimated_tokens)

    @property
    def output_tokens(self) -> int:
        """Expected output tokens: the total minus the prompt (the whole total when the split is unknown)."""
        return self.estimated_tokens - (self.prompt_tokens or 0)
