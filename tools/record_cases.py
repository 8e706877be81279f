"""Record the reference's steps for every graded case, public and hidden.

Public cases (the check cells' groups, shipped in the candidate's bundle) go
to ``solution/checks/recorded/stageN.json.gz``; hidden cases (the grader's
held-out set, never shipped) to ``solution/grading/hidden/stageN.json.gz``.
Run it after changing a stage's reference or its cases; ``--check`` exits 1
when a committed file differs from what the reference records now (a test
runs it).

Usage::

    python tools/record_cases.py           # rewrite the recorded files
    python tools/record_cases.py --check   # exit 1 if any is stale
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from solution.checks import SPECS  # noqa: E402
from solution.checks.runner import RECORDED, is_current, record, write_recorded  # noqa: E402
from solution.grading.hidden import HIDDEN, hidden_groups  # noqa: E402


def documents() -> dict[Path, dict]:
    """Every recorded file's path and the document the reference gives for it now."""
    out = {}
    for stage, spec in SPECS.items():
        reference = importlib.import_module(f"solution.{spec.module}")
        out[RECORDED / f"stage{stage}.json.gz"] = record(spec, spec.groups(), reference)
        out[HIDDEN / f"stage{stage}.json.gz"] = record(spec, hidden_groups(spec), reference)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a recorded file is stale; write nothing")
    args = parser.parse_args(argv)
    stale = []
    for path, document in documents().items():
        if args.check:
            if not is_current(document, path):
                stale.append(path.relative_to(ROOT))
        else:
            write_recorded(document, path)
            print(f"wrote {path.relative_to(ROOT)} ({sum(len(g['cases']) for g in document['groups'])} cases)")
    if stale:
        print("stale recorded cases (run `python tools/record_cases.py`): " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
