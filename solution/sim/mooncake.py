"""Replaying the Mooncake FAST'25 traces: real traffic with 512-token prefix-block hashes.

The Mooncake project (github.com/kvcache-ai/Mooncake, folder
``FAST25-release/traces/``, licensed Apache-2.0) published two request
traces; credit: Qin et al., "Mooncake: Trading More Storage for Less
Computation — A KVCache-centric Architecture for Serving LLM Chatbot",
USENIX FAST 2025.  The files are *not* part of this repository: give the
loader their folder (by default ``../shared/data/mooncake-fast25/`` beside
the repository, when it is there).

Format: JSON Lines, one request per line, sorted by time::

    {"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0, 1, 2, ...]}

``timestamp`` in milliseconds, token counts, and ``hash_ids``: remapped
hashes of the prompt's prefix blocks of 512 tokens (two requests sharing
their first k ids share their first k * 512 tokens; the last block may be
partial).

Sessions: the traces carry no session id, so one is derived (the rule
:func:`derive_sessions` applies and documents): the blocks every request
shares are a system prompt, and a session is the system prompt plus the
next block, the start of the conversation.  In the conversation trace
(12,031 requests, about an hour) block 0 is shared by all requests, so a
session is the first *two* block hashes: 7,373 sessions of up to 43 turns.
In the synthetic trace (3,993 requests, about 17 minutes) no block is shared
by all, so a session is the first block: 2,211 sessions of up to 24 turns.

A replay is open-loop: every request arrives at its (scaled) timestamp,
whatever happened to the previous turn, so ``Requests.session`` is -1
(nothing is chained) and ``Requests.session_key`` holds the derived session.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from solution.core.validate import require_int
from solution.sim.errors import TraceFormatError
from solution.sim.trace import TraceWorkload
from solution.sim.validate import require_number
from solution.sim.workload import Requests

__all__ = ["MOONCAKE_FILES", "mooncake_dir", "mooncake_path", "load_mooncake_trace", "derive_sessions", "MooncakeWorkload",
           "TraceSummary", "summarize", "time_scale_for", "MOONCAKE_CREDIT"]  # fmt: skip

#: The two traces, by the names the course uses.
MOONCAKE_FILES = {"conversation": "conversation_trace.jsonl", "synthetic": "synthetic_trace.jsonl"}

#: The credit line a notebook or a table built on these traces must carry.
MOONCAKE_CREDIT = ("Mooncake FAST'25 traces (github.com/kvcache-ai/Mooncake, Apache-2.0): Qin et al., \"Mooncake: Trading More "
                   "Storage for Less Computation - A KVCache-centric Architecture for Serving LLM Chatbot\", USENIX FAST 2025")  # fmt: skip

#: Where the traces sit beside the repository (never inside it).
_DEFAULT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mooncake-fast25"


def mooncake_dir() -> Path | None:
    """The folder of the traces: ``$MOONCAKE_DIR`` if set, else ``../shared/data/mooncake-fast25`` beside the repository; ``None`` when absent."""
    env = os.environ.get("MOONCAKE_DIR", "").strip()
    folder = Path(env).resolve() if env else _DEFAULT_DIR
    return folder if (folder / MOONCAKE_FILES["conversation"]).is_file() else None


def mooncake_path(which: str = "conversation", folder: str | os.PathLike[str] | None = None) -> Path:
    """The path of trace ``which`` (``"conversation"`` or ``"synthetic"``) in ``folder`` (default :func:`mooncake_dir`).

    Raises:
        ValueError: an unknown ``which``.
        FileNotFoundError: the file is not there (the message says where to get it).
    """
    if which not in MOONCAKE_FILES:
        raise ValueError(f"which must be one of {', '.join(MOONCAKE_FILES)}, got {which!r}")
    base = Path(folder).resolve() if folder is not None else (mooncake_dir() or _DEFAULT_DIR)
    path = base / MOONCAKE_FILES[which]
    if not path.is_file():
        raise FileNotFoundError(
            f"no Mooncake trace at {path}; download {MOONCAKE_FILES[which]} from github.com/kvcache-ai/Mooncake "
            "(FAST25-release/traces/) into that folder, or pass its folder (or set MOONCAKE_DIR)"
        )
    return path


@lru_cache(maxsize=4)
def _parse(path: str, mtime_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(milliseconds, input, output, block offsets, blocks)``; cached per file version.  O(rows + blocks)."""
    stamps: list[float] = []
    inputs: list[int] = []
    outputs: list[int] = []
    counts: list[int] = []
    flat: list[int] = []
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
                stamp, inp, out, ids = row["timestamp"], row["input_length"], row["output_length"], row["hash_ids"]
                if not (isinstance(inp, int) and isinstance(out, int) and isinstance(ids, list) and isinstance(stamp, (int, float))):
                    raise TypeError("wrong field types")
                if inp < 0 or out < 0:
                    raise ValueError("negative token counts")
                if any(isinstance(h, bool) or not isinstance(h, int) for h in ids):
                    raise TypeError("hash_ids must be ints")
            except (ValueError, TypeError, KeyError) as exc:
                raise TraceFormatError(f"{path}, line {line}: expected a JSON object with timestamp (ms), input_length, "
                                       f"output_length (ints >= 0) and hash_ids (a list of ints): {exc}") from exc  # fmt: skip
            stamps.append(float(stamp))
            inputs.append(inp)
            outputs.append(out)
            counts.append(len(ids))
            flat.extend(ids)
    if not stamps:
        raise TraceFormatError(f"{path}: the trace has no rows")
    t = np.array(stamps)
    back = np.nonzero(np.diff(t) < 0)[0]
    if len(back):
        raise TraceFormatError(f"{path}, row {back[0] + 2}: timestamps must not go backwards")
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return t, np.array(inputs, dtype=np.int64), np.array(outputs, dtype=np.int64), offsets, np.array(flat, dtype=np.int64)


def derive_sessions(block_offsets: np.ndarray, blocks: np.ndarray) -> tuple[np.ndarray, int]:
    """The session of each request, and the number of leading blocks every request shares (the system prompt).

    Rule: let ``s`` be the length of the longest block prefix common to
    every request (the system prompt: 1 in the conversation trace, 0 in the
    synthetic one); a request's session is its first ``s + 1`` block hashes
    (the system prompt and the first block of the conversation).  Sessions
    are numbered 0, 1, ... in order of first appearance.  A request with
    only ``s`` blocks (the system prompt alone) has no conversation: it gets
    a session of its own (never shared).  O(total blocks).
    """
    n = len(block_offsets) - 1
    shared = 0
    counts = np.diff(block_offsets)
    while n and (counts > shared).all():  # grow the common prefix while every request has one more block to agree on
        at = blocks[block_offsets[:-1] + shared]
        if (at != at[0]).any():
            break
        shared += 1
    keys: dict[tuple[int, ...], int] = {}
    session = np.empty(n, dtype=np.int64)
    flat = blocks.tolist()
    off = block_offsets.tolist()
    lonely = -1
    for i in range(n):
        a, b = off[i], off[i + 1]
        if b - a <= shared:
            key: tuple[int, ...] = (lonely,)
            lonely -= 1
        else:
            key = tuple(flat[a:a + shared + 1])
        session[i] = keys.setdefault(key, len(keys))
    return session, shared


def load_mooncake_trace(path: str | os.PathLike[str] | None = None, *, which: str = "conversation", time_scale: float = 1.0,
                        limit: int | None = None, start: int = 0) -> Requests:  # fmt: skip
    """Read a Mooncake trace into :class:`~solution.sim.workload.Requests` (sessions derived, blocks kept).

    ``path``: a ``.jsonl`` file, or a folder holding the traces (then
    ``which`` picks one); ``None``: :func:`mooncake_dir`.  Arrival times are
    seconds since the first kept row, times ``time_scale`` (``0.5`` replays
    twice as fast).  ``start`` and ``limit`` keep rows ``start`` to
    ``start + limit`` (a slice; sessions are derived on the whole file, so a
    slice keeps their numbers).  O(rows + blocks); the parsed file is cached.

    Raises:
        FileNotFoundError: no trace there.
        TraceFormatError (a ValueError): a malformed row, timestamps going backwards.
        TypeError / ValueError: ``time_scale`` not > 0, ``limit`` not an int >= 1, ``start`` not an int >= 0.
    """
    require_number(time_scale, "time_scale")
    if limit is not None:
        require_int(limit, "limit")
    require_int(start, "start", minimum=0)
    if which not in MOONCAKE_FILES:
        raise ValueError(f"which must be one of {', '.join(MOONCAKE_FILES)}, got {which!r}")
    if path is not None and Path(path).is_file():
        resolved = Path(path).resolve()
    else:
        resolved = mooncake_path(which, path)
    ms, inputs, outputs, offsets, blocks = _parse(str(resolved), resolved.stat().st_mtime_ns)
    sessions, _ = _sessions(str(resolved), resolved.stat().st_mtime_ns)
    n = len(ms)
    if start >= n:
        raise ValueError(f"start ({start}) must be below the trace's {n:,} rows")
    stop = n if limit is None else min(n, start + limit)
    keep = slice(start, stop)
    off = offsets[start:stop + 1]
    rows = stop - start
    return Requests(
        arrival=(ms[keep] - ms[start]) / 1000.0 * float(time_scale),
        prompt_tokens=inputs[keep].copy(),
        output_tokens=outputs[keep].copy(),
        tier=np.zeros(rows, dtype=np.int16),
        tier_names=(resolved.stem,),
        session=np.full(rows, -1, dtype=np.int64),
        think=np.zeros(rows),
        session_key=sessions[keep].copy(),
        block_offsets=off - off[0],
        blocks=blocks[off[0]:off[-1]].copy(),
    )


@lru_cache(maxsize=4)
def _sessions(path: str, mtime_ns: int) -> tuple[np.ndarray, int]:
    _, _, _, offsets, blocks = _parse(path, mtime_ns)
    return derive_sessions(offsets, blocks)


@dataclass(frozen=True)
class MooncakeWorkload(TraceWorkload):
    """A scenario workload that replays a Mooncake trace (see :func:`load_mooncake_trace`).

    ``path``: the ``.jsonl`` file (:func:`mooncake_path` gives it).
    """

    start: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.fspath(self.path))
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"no Mooncake trace at {self.path}; see solution.sim.mooncake.mooncake_path")
        require_number(self.time_scale, "time_scale")
        if self.limit is not None:
            require_int(self.limit, "limit")
        require_int(self.start, "start", minimum=0)

    def generate(self, rng_tokens: np.random.Generator, rng_arrivals: np.random.Generator, request_rate: object = None) -> Requests:
        """The trace's requests; the random streams are unused (a replay is fixed)."""
        if request_rate is not None:
            raise ValueError("a trace replay has its own arrival times: set time_scale instead of a load")
        return load_mooncake_trace(self.path, time_scale=self.time_scale, limit=self.limit, start=self.start)


@dataclass(frozen=True)
class TraceSummary:
    """What a trace holds: requests, span, sessions and their turns, tokens, the unbounded-cache ceiling."""

    requests: int
    seconds: float
    sessions: int
    max_turns: int
    multi_turn_share: float  # requests in sessions of two turns or more
    mean_input: float
    mean_output: float
    blocks: int
    ceiling: float  # blocks seen before (unbounded cache), over all blocks

    def line(self) -> str:
        return (f"{self.requests:,} requests over {self.seconds / 60:.1f} min, {self.sessions:,} sessions (up to {self.max_turns} "
                f"turns; {self.multi_turn_share:.0%} of requests in multi-turn sessions), mean input {self.mean_input:,.0f} "
                f"and output {self.mean_output:,.0f} tokens, {self.blocks:,} blocks, unbounded-cache hit share {self.ceiling:.3f}")  # fmt: skip


def summarize(requests: Requests) -> TraceSummary:
    """A :class:`TraceSummary` of a replayed (or generated) workload with session keys and blocks.  O(n + blocks)."""
    keys = requests.keys()
    _, turns = np.unique(keys[keys >= 0], return_counts=True)
    multi = float(turns[turns > 1].sum()) / len(requests) if len(requests) else math.nan
    known = requests.arrival[~np.isnan(requests.arrival)]
    return TraceSummary(len(requests), float(known.max() - known.min()) if len(known) else 0.0, len(turns),
                        int(turns.max()) if len(turns) else 0, multi, float(requests.prompt_tokens.mean()),
                        float(requests.output_tokens.mean()), int(len(requests.blocks)) if requests.has_blocks else 0,
                        requests.ceiling())  # fmt: skip


def time_scale_for(requests: Requests, rate: float) -> float:
    """The ``time_scale`` that replays ``requests`` at ``rate`` requests per second on average.  O(1).

    With a cluster of S servers, each completing ``mu`` requests per second
    at a full batch (:func:`solution.sim.cluster.service_rate`), an offered
    load ``rho`` needs ``rate = rho * S * mu``.  Scaling time squeezes the
    gaps between a session's turns too (a user's think time shrinks with
    it): choose the cluster so the scale stays near 1.

    Raises:
        ValueError: fewer than two requests, or all at one instant; ``rate`` not > 0.
    """
    require_number(rate, "rate")
    t = requests.arrival
    if len(t) < 2 or not t[-1] > t[0]:
        raise ValueError("a trace needs two requests at different times to have a rate")
    own = (len(t) - 1) / float(t[-1] - t[0])
    return own / rate
