"""Every fake submission through the grader: what it scored, how long it took, and why.

The fakes live in ``tests/meta/fakes.py`` (stubs, the reference, a swapped
tie-break, an endless loop, 8 GB per call, 10 MB printed per call, exits and a
syntax error at import, SkipTest, re-exports of the reference, a shipped
conftest.py, patches of the checks, edits of the repository, a detached
process, ...).  Each runs through ``tools/grade.py`` as an instructor runs it
(on the stages its expectation names, ``--timeout 1``, 0.5 for the endless loop), and the script prints
a Markdown table: the score per stage and the total, the wall time of the
grading run, the peak RSS of the grader's process tree, whether the verdict
is the one the fake expects, and the reason the grader names for the fake's
own stage (its first zero reason, else why the module did not import, else
the first failing case's cause and message).  Then the rule groups that lost
points where a stage scored between 0 and 100, and any unexpected verdict.

Usage::

    python benchmarks/grading_fakes.py                   # every fake (about 2 minutes)
    python benchmarks/grading_fakes.py --only "endless loop" --only stubs
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.meta import fakes  # noqa: E402


def reason(stage: dict[str, Any]) -> str:
    """Why the stage scored what it did, in a line."""
    text = fakes.first_reason(stage)
    if not text and stage["notes"]:
        text = f"note: {stage['notes'][0]}"
    text = re.sub(r"NotImplementedError\(Stage \d: ([\w.]+) is not implemented yet; see [^)]*\)", r"NotImplementedError(\1)", text)
    return " ".join(text.split()).encode("utf-8", "backslashreplace").decode("utf-8")  # a fake's lone surrogate


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def focus(fake: fakes.Fake) -> int:
    """The stage the fake is about: the first whose expectation is neither the stubs' nor the reference's."""
    own = [stage for stage, want in sorted(fake.expect.items()) if want is not fakes.STUBS and want is not fakes.REFERENCE]
    return own[0] if own else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="run only the fake with this name (repeatable)")
    parser.add_argument("--width", type=int, default=100, help="characters of the reason shown (default: %(default)s)")
    args = parser.parse_args(argv)
    chosen = [f for f in fakes.fakes() if not args.only or f.name in args.only]
    if not chosen:
        parser.error(f"no fake is named {args.only}; the fakes: {', '.join(f.name for f in fakes.fakes())}")
    rows, partial, unexpected = [], [], []
    started = time.monotonic()
    for fake in chosen:
        with tempfile.TemporaryDirectory(prefix="lbfake-") as tmp:
            run, facts, problems = fakes.run_fake(fake, Path(tmp))
        stages = {s["stage"]: s for s in run.report["stages"]} if run.report else {}
        scores = [f"{stages[n]['score']:.1f}" if n in stages else "-" for n in sorted(fakes.MODULES)]
        total = f"{run.report['total_score']:.1f}" if run.report else "-"
        own = stages.get(focus(fake))
        why = f"stage {focus(fake)}: {reason(own)}" if own else f"no report (exit {run.returncode})"
        rows.append([fake.name, *scores, total, f"{run.seconds:.1f} s", f"{run.max_rss_mb:.0f} MB",
                     "yes" if not problems else f"NO ({len(problems)})", shorten(why, args.width)])
        for n, s in sorted(stages.items()):
            if 0 < s["score"] < 100:
                lost = ", ".join(f"{g['name']} {g['score']:.0f}" for g in s["groups"] if g["score"] < 100)
                partial.append(f"* {fake.name}, stage {n} ({s['score']:.1f}): {lost}; every other group 100")
        unexpected += [f"* {fake.name}: {p}" for p in problems]
        print(f"{fake.name}: done in {run.seconds:.1f} s", file=sys.stderr)
    header = ["fake", *(f"stage {n}" for n in sorted(fakes.MODULES)), "total", "wall", "peak RSS", "as expected", "the reason named"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    numeric = range(1, len(fakes.MODULES) + 4)  # the stages, the total, the wall time, the peak RSS
    print("|" + "|".join(("-" * (w + 1) + ":" if i in numeric else "-" * (w + 2)) for i, w in enumerate(widths)) + "|")
    for r in rows:
        cells = [str(c).rjust(w) if i in numeric else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        print("| " + " | ".join(cells) + " |")
    print(f"\n{len(rows)} fakes in {time.monotonic() - started:.0f} s; a fake is graded on the stages it names ('-': not graded): "
          "a rule edit on its own stage, the sandbox and security fakes on every stage (stage 2 the reference, 100; "
          "the later stages the stubs, 0).")
    print("\nWhat each fake does (in stage 1 unless said):\n" + "\n".join(f"* {f.name}: {f.what}" for f in chosen))
    if partial:
        print("\nRule groups that lost points:\n" + "\n".join(partial))
    if unexpected:
        print("\nUnexpected verdicts:\n" + "\n".join(unexpected))
    return 1 if unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main())
