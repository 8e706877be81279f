"""Check cells: compare an implementation with the reference, rule group by rule group.

A notebook's check cell calls ``check_stageN()``, which prints one short,
stable line per group of rules (``PASS``, or ``FAIL`` with the smallest
sequence of calls that shows the difference) and returns the report.  The
groups of stage N live in :mod:`solution.checks.stageN`; the shared pieces
(calls, outcomes, mismatches, reports) in :mod:`solution.checks.common`.
"""

from solution.checks.common import CheckReport, GroupResult, Mismatch, Op, compare_with_reference, outcome
from solution.checks.stage1 import run_stage1 as check_stage1
from solution.checks.stage2 import run_stage2 as check_stage2
from solution.checks.stage3 import run_stage3 as check_stage3

__all__ = ["Op", "Mismatch", "GroupResult", "CheckReport", "outcome", "compare_with_reference", "check_stage1", "check_stage2", "check_stage3"]
