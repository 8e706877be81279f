"""Grade a candidate's ``exercises`` package, stage by stage, in a sandbox.

Usage::

    python tools/grade.py                          # grade ./exercises
    python tools/grade.py --exercises DIR          # grade DIR/exercises (a candidate's returned bundle or checkout)
    python tools/grade.py --stage 2 --report out.json

The grader never imports the candidate's code: each stage's cases run in a
child process under resource limits and an audit-hook wall, and this process
compares what comes back with the reference's recorded results
(``solution/grading/grader.py``; ``docs/grading.md`` says what it guards
against and what it cannot).  It prints a table (one line per rule group,
public and hidden cases apart, the first failure of each group with its
cause) and writes a JSON report with every case's verdict, then prints the
report's SHA-256 so a later change to the file can be noticed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from solution.grading.grader import grade, report, table, write_report  # noqa: E402
from solution.grading.sandbox import Limits  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exercises", type=Path, default=ROOT, help="folder that contains the exercises/ package (default: this repository)")
    parser.add_argument("--report", type=Path, default=ROOT / "reports" / "grade.json", help="where to write the JSON report")
    parser.add_argument("--timeout", type=float, default=Limits.case_seconds, help="CPU seconds allowed per case (default: %(default)s)")
    parser.add_argument("--probe-timeout", type=float, default=Limits.probe_seconds,
                        help="CPU seconds allowed per probe: a cost measurement, the exact-ratio run (default: %(default)s)")
    parser.add_argument("--stage", type=int, action="append", help="grade only this stage (repeatable)")
    args = parser.parse_args(argv)
    folder = args.exercises.resolve()
    if not (folder / "exercises").is_dir():
        parser.error(f"{folder / 'exercises'} is not a folder; pass the folder that holds exercises/")
    results = grade(folder, args.stage, Limits(case_seconds=args.timeout, probe_seconds=args.probe_timeout))
    digest = write_report(report(results, folder), args.report)
    print(table(results))
    print(f"report: {args.report} (sha256 {digest})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
