"""Run independent simulation jobs in this process or on every core, results in job order."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

__all__ = ["map_jobs"]

_J = TypeVar("_J")
_R = TypeVar("_R")


def map_jobs(run: Callable[[_J], _R], jobs: Sequence[_J], workers: int | None = None) -> list[_R]:
    """``[run(job) for job in jobs]``, on ``workers`` processes (``None``: every core; 0 or 1: in this process).

    ``run`` and the jobs must pickle (module-level functions and frozen records) when ``workers > 1``.
    """
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers <= 1 or len(jobs) <= 1:
        return [run(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        return list(pool.map(run, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
