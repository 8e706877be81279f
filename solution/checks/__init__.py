"""Check cells: compare an implementation with the reference, rule group by rule group.

A notebook's check cell calls ``check_stageN()``: it runs the stage's public
cases (call scripts, :mod:`solution.checks.script`) on the candidate's code,
compares every step with the reference's recorded steps, prints one line per
rule group (``PASS``, or ``FAIL`` with the smallest sequence of calls that
shows the difference and the fields that differ), returns the
:class:`CheckReport`, and raises :class:`CheckFailed` if a group fails.  The
cell's verdict is the report, never the text printed: a debug ``print`` in
the candidate's code changes nothing.

The groups of stage N live in :mod:`solution.checks.stageN`; the grader
(:mod:`solution.grading`) runs the same cases, and hidden ones, in a sandbox.
"""

from solution.checks.common import CheckFailed, CheckReport, GroupResult, Mismatch, Op, compare_with_reference, outcome
from solution.checks.runner import StageSpec
from solution.checks.stage1 import SPEC as STAGE1
from solution.checks.stage1 import run_stage1 as check_stage1
from solution.checks.stage2 import SPEC as STAGE2
from solution.checks.stage2 import run_stage2 as check_stage2
from solution.checks.stage3 import SPEC as STAGE3
from solution.checks.stage3 import run_stage3 as check_stage3
from solution.checks.stage4 import SPEC as STAGE4
from solution.checks.stage4 import run_stage4 as check_stage4
from solution.checks.stage5 import SPEC as STAGE5
from solution.checks.stage5 import run_stage5 as check_stage5
from solution.checks.stage6 import SPEC as STAGE6
from solution.checks.stage6 import run_stage6 as check_stage6
from solution.checks.stage7 import SPEC as STAGE7
from solution.checks.stage7 import run_stage7 as check_stage7
from solution.checks.stage8 import SPEC as STAGE8
from solution.checks.stage8 import run_stage8 as check_stage8

#: Every stage's spec, by stage number.
SPECS: dict[int, StageSpec] = {spec.stage: spec for spec in (STAGE1, STAGE2, STAGE3, STAGE4, STAGE5, STAGE6, STAGE7, STAGE8)}

__all__ = ["Op", "Mismatch", "GroupResult", "CheckReport", "CheckFailed", "StageSpec", "SPECS", "outcome",
           "compare_with_reference", "check_stage1", "check_stage2", "check_stage3", "check_stage4",
           "check_stage5", "check_stage6", "check_stage7", "check_stage8"]
