"""Bad input, refused before any server sees it: a request's body read and checked (400, 404, 408, 413).

The gateway's handler (:mod:`solution.gateway.app`) calls :func:`read_json`
then :func:`validate`; each raises :class:`BadInput` with the HTTP status and
an OpenAI-shaped error message, and the handler answers it at once, so a
malformed request costs no server time:

* a body over ``max_body_bytes``: 413 (from its ``Content-Length``, before
  reading a byte of it);
* a body that does not arrive within ``timeouts.body``: 408 (the handler
  then closes the connection, rather than wait for the rest);
* a body that is not a JSON object, a missing or ill-typed field
  (``model``, ``messages`` or ``prompt``, ``max_tokens``, ``stream``): 400;
* another model than ``model_id``: 404;
* a prompt over ``max_prompt_tokens``: 413;
* with ``estimate: "header"`` in the configuration, an
  ``X-Output-Tokens-Estimate`` header that is not a whole number of tokens
  from 1 to ``max_max_tokens``: 400 (:func:`output_estimate`).

The output estimate: the router and the queue price a request as its
prompt plus an estimate of its output.  By default (``estimate:
"max_tokens"``) that estimate is ``max_tokens``, an upper bound.  With
``estimate: "header"`` a client (or a length predictor in front of the
gateway) may send its own guess in :data:`ESTIMATE_HEADER`; the gateway
routes and prices on it, and still asks the server for ``max_tokens``, so
the guess can be wrong both ways: the server stops at its end of sequence
or at ``max_tokens``, never at the guess.  (The course's inference servers
generate exactly ``max_tokens``: in the HTTP race, ``max_tokens`` is the
truth that is served and the header is what the gateway believes, as the
simulator's ``EstimateError`` makes ``estimated_tokens`` differ from the
truth.)

Tokens are words: a prompt's tokens are its whitespace-separated words
(:func:`count_tokens`), as the inference servers count them; no tokenizer.

Costs: O(n) in the body's n bytes (the JSON parse and the word count).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from solution.gateway.config import GatewayConfig

__all__ = ["BadInput", "COMPLETIONS", "CHAT", "ESTIMATE_HEADER", "count_tokens", "read_json", "validate", "output_estimate"]

#: The two routes the gateway proxies (OpenAI's completions and chat completions).
COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"

#: The request header that carries a client's estimate of the output tokens (read with ``estimate: "header"``).
ESTIMATE_HEADER = "X-Output-Tokens-Estimate"


def count_tokens(text: str) -> int:
    """A prompt's tokens as the course counts them: its whitespace-separated words (no tokenizer).  O(len)."""
    return len(text.split())


class BadInput(Exception):
    """A request the gateway refuses before any server sees it (400/404/408/413): its status and what to fix."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


async def read_json(request: web.Request, config: GatewayConfig) -> tuple[dict[str, Any], bytes]:
    """The body as a JSON object, and its bytes; else :class:`BadInput` (400, 408 when it trickled in, 413)."""
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        raise BadInput(413, f"the body is {request.content_length} bytes; the limit is {config.max_body_bytes}", code="body_too_large")
    try:
        if request.content.is_eof():  # the whole body came with the head (the usual case): nothing to wait for or time
            raw = await request.read()
        else:
            async with asyncio.timeout(config.timeouts.body):
                raw = await request.read()
    except TimeoutError:
        raise BadInput(408, f"the body did not arrive within {config.timeouts.body:g} s", code="body_timeout") from None
    except web.HTTPRequestEntityTooLarge:
        raise BadInput(413, f"the body is over the limit of {config.max_body_bytes} bytes", code="body_too_large") from None
    except (aiohttp.ClientPayloadError, aiohttp.http_exceptions.HttpProcessingError, ValueError) as exc:
        raise BadInput(400, f"the body could not be read: {exc}") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadInput(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadInput(400, "the body must be a JSON object")
    return data, raw


def validate(route: str, data: dict[str, Any], config: GatewayConfig) -> tuple[int, int, bool]:
    """(prompt tokens, max tokens, stream) of a well-formed request to ``route``, else :class:`BadInput` (400/404/413)."""
    cfg = config
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadInput(400, "'model' is required: a non-empty string", code="missing_model")
    if route == CHAT:
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadInput(400, "'messages' is required: a non-empty list of {role, content}")
        words = 0
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise BadInput(400, f"messages[{i}] must be an object with string 'role' and 'content'")
            words += count_tokens(m["content"])
    else:
        prompt = data.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BadInput(400, "'prompt' is required: a string")
        words = count_tokens(prompt)
    max_tokens = data.get("max_tokens", data.get("max_completion_tokens"))
    if max_tokens is None:
        max_tokens = cfg.default_max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= cfg.max_max_tokens:
        raise BadInput(400, f"'max_tokens' must be an integer from 1 to {cfg.max_max_tokens}")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise BadInput(400, "'stream' must be true or false")
    if model != cfg.model_id:
        raise BadInput(404, f"the model {model[:100]!r} does not exist; this gateway serves {cfg.model_id!r}",
                       code="model_not_found")  # fmt: skip
    if words > cfg.max_prompt_tokens:
        raise BadInput(413, f"the prompt has {words} tokens; the limit is {cfg.max_prompt_tokens}", code="prompt_too_long")
    return words, max_tokens, stream


def output_estimate(headers: Mapping[str, str], max_tokens: int, config: GatewayConfig) -> int:
    """The output tokens the gateway routes and prices a request with (see the module); else :class:`BadInput` (400).

    ``max_tokens`` with ``config.estimate == "max_tokens"`` (the header is
    then ignored) or when :data:`ESTIMATE_HEADER` is absent; else the
    header's value, a decimal integer from 1 to ``config.max_max_tokens``
    (surrounding spaces allowed).  It may exceed ``max_tokens`` (a guess,
    not a bound: the server still stops at ``max_tokens``).  O(1).
    """
    if config.estimate != "header":
        return max_tokens
    raw = headers.get(ESTIMATE_HEADER)
    if raw is None:
        return max_tokens
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= config.max_max_tokens:
        raise BadInput(400, f"the {ESTIMATE_HEADER} header must be a whole number of output tokens from 1 to "
                            f"{config.max_max_tokens}, got {raw[:40]!r}; send a positive integer or leave the header out",
                       code="bad_output_estimate")  # fmt: skip
    return int(text)
