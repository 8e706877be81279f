"""Generate the candidate's package ``exercises/`` from the reference ``solution/``.

One source of truth, as nbgrader does it: the reference carries markers, and
the exercise is derived from it.  Nobody edits the generated files by hand
(except the candidate, who fills them in).

Markers, each on a line of its own:

``### BEGIN SOLUTION: <hint>`` ... ``### END SOLUTION``
    The lines between are replaced by ``# TODO: <hint>`` and a
    ``raise NotImplementedError("Stage N: ... see notebooks/...")`` at the
    marker's indentation.  Put them around a function body, after its docstring.
``### BEGIN OMIT`` ... ``### END OMIT``
    The lines between are dropped: the reference's private helpers.

Only the modules in ``EXERCISES`` are copied; in them and in
``solution/__init__.py``, imports of those modules are rewritten from
``solution.<module>`` to ``exercises.<module>``.  Everything else (errors,
validation, the simulator, widgets) is imported from ``solution``.

Usage::

    python tools/make_exercises.py            # regenerate exercises/
    python tools/make_exercises.py --check    # exit 1 and show a diff if exercises/ is stale
    python tools/make_exercises.py --out DIR  # write DIR/exercises/ instead
"""

from __future__ import annotations

import argparse
import ast
import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solution"


@dataclass(frozen=True)
class Exercise:
    """A reference module whose marked parts the candidate writes."""

    module: str  # file name under solution/, without .py
    stage: int
    notebook: str  # where the candidate reads the task


#: The modules a candidate writes, stage by stage.
EXERCISES: tuple[Exercise, ...] = (
    Exercise("balancer", 1, "notebooks/01_least_connections.ipynb"),
    Exercise("request_queue", 2, "notebooks/02_queuing.ipynb"),
    Exercise("strategies", 3, "notebooks/03_routing_strategies.ipynb"),
)

HEADER = (
    "# Generated from solution/{module}.py by tools/make_exercises.py (`make exercises`).\n"
    "# Stage {stage}: fill in every body that raises NotImplementedError; {notebook} explains the task.\n"
)
INIT_HEADER = "# Generated from solution/__init__.py by tools/make_exercises.py (`make exercises`).\n"

_BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN (?P<kind>SOLUTION|OMIT)(?::\s*(?P<hint>.*?))?\s*$")
_END = re.compile(r"^\s*### END (?P<kind>SOLUTION|OMIT)\s*$")
_DEF = re.compile(r"^(?P<indent>\s*)(?:async\s+)?(?P<kw>def|class)\s+(?P<name>\w+)")


class MarkerError(ValueError):
    """The markers in a reference module are unbalanced or misplaced."""


def strip_solution(source: str, exercise: Exercise, filename: str) -> str:
    """Return the candidate's version of one reference module."""
    out: list[str] = []
    scopes: list[tuple[int, str]] = []  # (indent, name) of enclosing defs/classes
    block: str | None = None
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        begin, end = _BEGIN.match(line), _END.match(line)
        if block is not None:
            if begin:
                raise MarkerError(f"{filename}:{number}: nested BEGIN inside a {block} block")
            if end:
                if end["kind"] != block:
                    raise MarkerError(f"{filename}:{number}: END {end['kind']} closes a {block} block")
                block = None
            continue
        if end:
            raise MarkerError(f"{filename}:{number}: END {end['kind']} without BEGIN")
        if begin:
            block = begin["kind"]
            if block == "SOLUTION":
                indent = begin["indent"]
                qualname = ".".join(name for _, name in scopes) or "this part"
                if begin["hint"]:
                    out.append(f"{indent}# TODO: {begin['hint']}\n")
                out.append(
                    f'{indent}raise NotImplementedError("Stage {exercise.stage}: {qualname} is not implemented '
                    f'yet; see {exercise.notebook}")\n'
                )
            continue
        definition = _DEF.match(line)
        if definition:
            depth = len(definition["indent"])
            scopes = [(d, n) for d, n in scopes if d < depth] + [(depth, definition["name"])]
        out.append(line)
    if block is not None:
        raise MarkerError(f"{filename}: {block} block never closed")
    text = re.sub(r"\n{4,}", "\n\n\n", "".join(out))
    return _rewrite_imports(text)


def _rewrite_imports(text: str) -> str:
    for exercise in EXERCISES:
        text = re.sub(rf"\bfrom solution\.{exercise.module}\b", f"from exercises.{exercise.module}", text)
    return text


def generate() -> dict[str, str]:
    """Return ``{file name: contents}`` of the exercises package."""
    files = {"__init__.py": INIT_HEADER + _rewrite_imports((SOLUTION / "__init__.py").read_text())}
    for exercise in EXERCISES:
        path = SOLUTION / f"{exercise.module}.py"
        body = strip_solution(path.read_text(), exercise, str(path.relative_to(ROOT)))
        files[f"{exercise.module}.py"] = HEADER.format(**vars(exercise)) + body
    for name, text in files.items():
        ast.parse(text, filename=f"exercises/{name}")  # a generator bug must not ship a broken stub
    return files


def diff(target: Path, files: dict[str, str]) -> str:
    """A unified diff from what is in ``target`` to what the generator makes."""
    chunks: list[str] = []
    present = {p.name for p in target.glob("*.py")} if target.is_dir() else set()
    for name in sorted(present | files.keys()):
        old = (target / name).read_text() if name in present else ""
        new = files.get(name, "")
        chunks += difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            f"exercises/{name} (committed)",
            f"exercises/{name} (generated)",
        )
    return "".join(chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if exercises/ is stale")
    parser.add_argument("--out", type=Path, default=ROOT, help="write OUT/exercises/ (default: the repository)")
    args = parser.parse_args(argv)
    target = args.out / "exercises"
    files = generate()
    if args.check:
        stale = diff(target, files)
        if stale:
            sys.stdout.write(stale)
            print("\nexercises/ is stale: run `make exercises` and commit the result.", file=sys.stderr)
            return 1
        print("exercises/ matches the generator.")
        return 0
    target.mkdir(parents=True, exist_ok=True)
    for stale_file in set(p.name for p in target.glob("*.py")) - files.keys():
        (target / stale_file).unlink()
    for name, text in files.items():
        (target / name).write_text(text)
    print(f"wrote {len(files)} files to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
