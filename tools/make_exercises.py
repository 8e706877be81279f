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

(``### BEGIN REFERENCE`` ... ``### END REFERENCE`` marks reference-only code in
*support* modules; ``tools/make_bundle.py`` strips it from the candidate's
bundle with :func:`strip_blocks`, the same parser.)

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
from collections.abc import Callable, Mapping
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
    Exercise("health", 4, "notebooks/04_health_checks.ipynb"),
    Exercise("affinity", 5, "notebooks/05_session_affinity.ipynb"),
    Exercise("tiers", 6, "notebooks/06_priorities_and_tiers.ipynb"),
    Exercise("deploy", 7, "notebooks/07_drain_and_rollouts.ipynb"),
    Exercise("retry", 8, "notebooks/08_real_systems.ipynb"),
)

HEADER = (
    "# Generated from solution/{module}.py by tools/make_exercises.py (`make exercises`).\n"
    "# Stage {stage}: fill in every body that raises NotImplementedError; {notebook} explains the task.\n"
)
INIT_HEADER = "# Generated from solution/__init__.py by tools/make_exercises.py (`make exercises`).\n"

_BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN (?P<kind>[A-Z]+)(?::\s*(?P<hint>.*?))?\s*$")
_END = re.compile(r"^\s*### END (?P<kind>[A-Z]+)\s*$")
_DEF = re.compile(r"^(?P<indent>\s*)(?:async\s+)?(?P<kw>def|class)\s+(?P<name>\w+)")


class MarkerError(ValueError):
    """The markers in a reference module are unbalanced or misplaced."""


@dataclass(frozen=True)
class Block:
    """Where a marked block sits: what its replacement may need to know."""

    kind: str  # SOLUTION, OMIT, REFERENCE
    indent: str  # the BEGIN marker's indentation
    hint: str | None  # the text after "BEGIN KIND:", if any
    qualname: str  # the enclosing defs and classes, dotted ("" at module level)
    in_function: bool  # True when the innermost enclosing scope is a def


#: What replaces a block: the lines to write instead of it (``[]`` drops it).
Replacement = Callable[[Block], list[str]]


def strip_blocks(source: str, filename: str, replacements: Mapping[str, Replacement]) -> str:
    """Replace every ``### BEGIN KIND`` ... ``### END KIND`` block of ``source``.

    ``replacements`` maps each kind allowed in the file to what replaces its
    blocks; another kind, a nested, unclosed or mismatched marker raises
    :class:`MarkerError`.  Shared by this tool and ``tools/make_bundle.py``
    (whose ``REFERENCE`` blocks mark reference-only code in support modules).
    """
    out: list[str] = []
    scopes: list[tuple[int, str, str]] = []  # (indent, keyword, name) of enclosing defs/classes
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
            if block not in replacements:
                raise MarkerError(f"{filename}:{number}: {block} blocks are not allowed here (only {', '.join(replacements)})")
            qualname = ".".join(name for _, _, name in scopes)
            in_function = bool(scopes) and scopes[-1][1] == "def"
            out += replacements[block](Block(block, begin["indent"], begin["hint"] or None, qualname, in_function))
            continue
        definition = _DEF.match(line)
        if definition:
            depth = len(definition["indent"])
            scopes = [s for s in scopes if s[0] < depth] + [(depth, definition["kw"], definition["name"])]
        out.append(line)
    if block is not None:
        raise MarkerError(f"{filename}: {block} block never closed")
    return re.sub(r"\n{4,}", "\n\n\n", "".join(out))


def strip_solution(source: str, exercise: Exercise, filename: str) -> str:
    """Return the candidate's version of one reference module."""

    def stub(block: Block) -> list[str]:
        qualname = block.qualname or "this part"
        todo = [f"{block.indent}# TODO: {block.hint}\n"] if block.hint else []
        return todo + [
            f'{block.indent}raise NotImplementedError("Stage {exercise.stage}: {qualname} is not implemented '
            f'yet; see {exercise.notebook}")\n'
        ]

    return _rewrite_imports(strip_blocks(source, filename, {"SOLUTION": stub, "OMIT": lambda block: []}))


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
