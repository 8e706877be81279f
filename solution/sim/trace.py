"""Replaying a real trace: the Azure LLM inference 2023 CSV format.

The Azure Public Dataset (github.com/Azure/AzurePublicDataset) publishes
traces of two LLM inference services in Azure, November 2023, under the
CC-BY 4.0 license; credit: Patel et al., "Splitwise: Efficient generative LLM
inference using phase splitting", ISCA 2024, and the Azure Public Dataset.
The files are *not* part of this repository: give the loader their path.

Format, one request per row::

    TIMESTAMP,ContextTokens,GeneratedTokens
    2023-11-16 18:15:46.6805900,374,44

Arrival times are seconds since the first row, multiplied by
``time_scale`` (``0.5`` replays twice as fast: every gap is halved).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np

from solution.sim.errors import TraceFormatError
from solution.sim.validate import require_number
from solution.sim.workload import Requests

__all__ = ["TraceWorkload", "load_azure_trace", "AZURE_HEADER", "AZURE_CREDIT"]

#: What every use of the Azure trace must credit (CC-BY 4.0).
AZURE_CREDIT = ('Azure LLM inference 2023 trace (CC-BY 4.0): Patel et al., "Splitwise: Efficient generative LLM inference '
                'using phase splitting", ISCA 2024, and the Azure Public Dataset (github.com/Azure/AzurePublicDataset)')

#: The header line every Azure LLM inference 2023 file starts with.
AZURE_HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def load_azure_trace(path: str | os.PathLike[str], *, time_scale: float = 1.0, limit: int | None = None) -> Requests:
    """Read an Azure LLM inference 2023 CSV file into :class:`Requests`.

    Rows keep their file order; ``ContextTokens`` become prompt tokens and
    ``GeneratedTokens`` output tokens, unchanged.  ``limit`` keeps the first
    rows only.  O(rows); the parsed file is cached, so replaying it again
    costs only the copy.

    Raises:
        FileNotFoundError: no file at ``path``.
        TraceFormatError (a ValueError): wrong header, a malformed row,
            negative token counts, or timestamps that go backwards.
        ValueError / TypeError: ``time_scale`` not a positive number,
            ``limit`` not a positive int.
    """
    require_number(time_scale, "time_scale")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    resolved = _existing(path)
    seconds, context, generated = _parse(str(resolved), resolved.stat().st_mtime_ns)
    if limit is not None:
        seconds, context, generated = seconds[:limit], context[:limit], generated[:limit]
    n = len(seconds)
    return Requests(
        arrival=(seconds - seconds[0]) * float(time_scale),
        prompt_tokens=context.copy(),
        output_tokens=generated.copy(),
        tier=np.zeros(n, dtype=np.int16),
        tier_names=(resolved.stem,),
        session=np.full(n, -1, dtype=np.int64),
        think=np.zeros(n),
    )


def _existing(path: str | os.PathLike[str]) -> Path:
    """The absolute path of an existing file, or a FileNotFoundError that says where to get one."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise FileNotFoundError(
            f"no trace file at {resolved}; download AzureLLMInferenceTrace_conv.csv or _code.csv from "
            "github.com/Azure/AzurePublicDataset (data/) and pass its path"
        )
    return resolved


@lru_cache(maxsize=8)
def _parse(path: str, mtime_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(seconds since midnight of the first row's day, context, generated)``; cached per file version.

    Seconds count from the first day (not an epoch) so float64 keeps
    sub-microsecond resolution.
    """
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        header = tuple(next(rows, ()))
        if header != AZURE_HEADER:
            raise TraceFormatError(
                f"{path}: the first line must be {','.join(AZURE_HEADER)} (the Azure LLM inference 2023 format), "
                f"got {','.join(header) or 'an empty file'}"
            )
        seconds, context, generated = [], [], []
        days: dict[str, int] = {}  # day -> days since the first row's day
        first_day: int | None = None
        for line, row in enumerate(rows, start=2):
            try:
                stamp, ctx, gen = row
                day, clock = stamp.split(" ")
                hours, minutes, secs = clock.split(":")
                if day not in days:
                    ordinal = date.fromisoformat(day).toordinal()
                    first_day = ordinal if first_day is None else first_day
                    days[day] = ordinal - first_day
                seconds.append(days[day] * 86400.0 + int(hours) * 3600.0 + int(minutes) * 60.0 + float(secs))
                context.append(int(ctx))
                generated.append(int(gen))
            except ValueError as exc:
                raise TraceFormatError(
                    f"{path}, line {line}: expected 'YYYY-MM-DD HH:MM:SS.fffffff,<int>,<int>', got {','.join(row)!r}"
                ) from exc
    if not seconds:
        raise TraceFormatError(f"{path}: the trace has a header but no rows")
    t = np.array(seconds)
    ctx_arr = np.array(context, dtype=np.int64)
    gen_arr = np.array(generated, dtype=np.int64)
    if (ctx_arr < 0).any() or (gen_arr < 0).any():
        raise TraceFormatError(f"{path}: token counts must not be negative")
    backwards = np.nonzero(np.diff(t) < 0)[0]
    if len(backwards):
        raise TraceFormatError(f"{path}, line {backwards[0] + 3}: timestamps must not go backwards")
    return t, ctx_arr, gen_arr


@dataclass(frozen=True)
class TraceWorkload:
    """A scenario workload that replays a trace file (see :func:`load_azure_trace`)."""

    path: str
    time_scale: float = 1.0
    limit: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.fspath(self.path))
        _existing(self.path)  # fail when the scenario is built, not when it runs

    def generate(self, rng_tokens: np.random.Generator, rng_arrivals: np.random.Generator, request_rate: object = None) -> Requests:
        """The trace's requests; the random streams are unused (a replay is fixed)."""
        if request_rate is not None:
            raise ValueError("a trace replay has its own arrival times: set time_scale instead of a load")
        return load_azure_trace(self.path, time_scale=self.time_scale, limit=self.limit)
