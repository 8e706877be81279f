"""Build the candidate's bundle: the course as a candidate gets it, without the reference.

The bundle is a folder (and a ``.tar.gz`` of it) holding:

* ``notebooks/*.ipynb``: the committed notebooks, executed against the
  reference (the outputs a reader sees, and that nbval compares check cells with);
* ``exercises/``: the stubs, as ``tools/make_exercises.py`` generates them;
* ``solution/``: the support package (errors, validation, the router, the
  gateway, the simulator, the widgets, the check cells and their recorded
  reference results) *without* the reference modules a candidate writes
  (``balancer.py``, ``request_queue.py``, ``strategies.py``, ``health.py``, ``affinity.py``, ``tiers.py``,
  ``deploy.py``, ``retry.py``), without
  ``widgets/explain.py`` (the stage-1 rule written plainly) and without
  ``grading/`` (the instructor's grader and hidden cases).  In what remains,
  every ``### BEGIN REFERENCE`` ... ``### END REFERENCE`` block is stripped:
  inside a function it becomes a ``raise NotImplementedError`` naming the
  marker's hint, elsewhere it is dropped (``LeastConnections`` in
  ``solution/core/routing.py`` is stage 1's rule).  ``solution/__init__.py``
  is generated from the repository's, without the names of the missing modules;
* ``docs/``, the public tests that do not need the reference, ``conftest.py``,
  ``pyproject.toml``, ``jupyter_lab_config.py``, and a ``Makefile`` and
  ``README.md`` for candidates.

``tests/meta/test_bundle.py`` builds it, proves no reference body is inside,
and runs its notebooks on the stubs and on the reference dropped in.

Usage::

    python tools/make_bundle.py                  # dist/candidate-bundle/ and dist/candidate-bundle.tar.gz
    python tools/make_bundle.py --out DIR        # DIR/candidate-bundle/ and DIR/candidate-bundle.tar.gz
    python tools/make_bundle.py --no-archive     # the folder only
    python tools/make_bundle.py --list-tests     # which tests ship, and why the others do not
"""

from __future__ import annotations

import argparse
import ast
import gzip
import io
import re
import shutil
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from make_exercises import EXERCISES, Block, generate, strip_blocks  # noqa: E402

NAME = "candidate-bundle"

#: Files and folders under solution/ that never ship: the reference modules, the
#: stage-1 rule written plainly, the instructor's grader and hidden cases.
WITHHELD = tuple(f"{e.module}.py" for e in EXERCISES) + ("widgets/explain.py", "grading")
#: Top-level files copied as they are.
TOP_FILES = ("pyproject.toml", "conftest.py", "jupyter_lab_config.py")
#: Documentation that is not for candidates.
DOCS_LEFT_OUT = ("browser-tests.md",)
#: Test folders that never ship: the course's own checks, the browser harness, and the process tests of
#: the gateway, the inference servers and HAProxy (tests/gateway).  Those test support code that ships
#: (solution/gateway, so notebook 08 runs the gateway on the candidate's components), not the candidate's
#: module: stage 8's retry.py is graded by tests/stage8, which ships, and by the check cells.  They start
#: processes and need HAProxy installed, and would add about a minute to each of the bundle test's runs.
TESTS_LEFT_OUT = ("meta", "browser", "gateway")
#: Functions of solution.checks that run the reference itself (not its recorded results).
LIVE_REFERENCE = ("compare_with_reference", "compare_strategy")

_SKIP = re.compile(r"(^|/)(__pycache__|\.ipynb_checkpoints|\.pytest_cache)(/|$)|\.pyc$")


# -- solution/: withheld modules, REFERENCE blocks, the package's __init__ ------------------


def withheld(relative: str) -> bool:
    """True for a path under solution/ (``"widgets/explain.py"``) that never ships."""
    return any(relative == w or relative.startswith(w + "/") for w in WITHHELD)


def withheld_modules() -> set[str]:
    """Dotted names of the withheld modules and packages (``solution.balancer``, ...)."""
    return {"solution." + w.removesuffix(".py").replace("/", ".") for w in WITHHELD}


def _reference_stub(relative: str):  # noqa: ANN202 - a make_exercises.Replacement
    def replace(block: Block) -> list[str]:
        if not block.in_function:
            return []
        hint = f": {block.hint}" if block.hint else ""
        message = f"{block.qualname} is part of the reference and not in the candidate's bundle{hint}"
        return [f"{block.indent}raise NotImplementedError({message!r})\n"]

    return replace


def strip_reference(source: str, relative: str) -> str:
    """A support module with its ``REFERENCE`` blocks stripped (see the module docstring)."""
    text = strip_blocks(source, f"solution/{relative}", {"REFERENCE": _reference_stub(relative)})
    ast.parse(text, filename=f"solution/{relative}")  # a broken marker must not ship a broken module
    return text


def reference_blocks() -> dict[str, list[str]]:
    """``{solution/<path>: [source of each REFERENCE block]}``, for the bundle test."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "solution").rglob("*.py")):
        lines, inside, blocks = path.read_text().splitlines(keepends=True), False, []
        for line in lines:
            if re.match(r"^\s*### BEGIN REFERENCE\b", line):
                inside, current = True, []
            elif re.match(r"^\s*### END REFERENCE\b", line):
                inside = False
                blocks.append("".join(current))
            elif inside:
                current.append(line)
        if blocks:
            found[str(path.relative_to(ROOT))] = blocks
    return found


def stripped_names() -> set[str]:
    """Top-level names a candidate cannot use from the bundle's ``solution``: those the withheld
    modules define, and the classes and functions whose bodies lose a REFERENCE block."""
    names: set[str] = set()
    for w in WITHHELD:
        path = ROOT / "solution" / w
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            tree = ast.parse(file.read_text())
            names |= {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    for path, blocks in reference_blocks().items():
        tree = ast.parse((ROOT / path).read_text())
        text = (ROOT / path).read_text()
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and any(b in ast.get_source_segment(text, node) for b in blocks):
                names.add(node.name)
    return names


def trim_init(source: str, filename: str) -> str:
    """An ``__init__.py`` without the imports from withheld modules, and without their names in ``__all__``."""
    tree = ast.parse(source)
    gone_modules = withheld_modules()
    dropped: set[str] = set()
    lines = source.splitlines(keepends=True)
    cut: list[tuple[int, int]] = []  # 0-based line ranges [start, end) to remove
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and any(
            node.module == m or node.module.startswith(m + ".") for m in gone_modules
        ):
            dropped |= {alias.asname or alias.name for alias in node.names}
            cut.append((node.lineno - 1, node.end_lineno))
    for start, end in reversed(cut):
        del lines[start:end]
    text = "".join(lines)
    for name in sorted(dropped):
        text, count = re.subn(rf'^\s*"{re.escape(name)}",\n', "", text, flags=re.MULTILINE)
        text = re.sub(rf'"{re.escape(name)}",\s*', "", text) if not count else text
    ast.parse(text, filename=filename)
    return text


def bundle_init(source: str) -> str:
    """The bundle's ``solution/__init__.py``: the repository's, trimmed, under a docstring that says so."""
    tree = ast.parse(source)
    first = tree.body[0] if tree.body else None
    has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    body = "".join(source.splitlines(keepends=True)[first.end_lineno:]) if has_docstring else "\n" + source
    header = (
        '"""Load balancing for LLM inference: the course\'s support package, as a candidate gets it.\n\n'
        "Generated by tools/make_bundle.py from the repository's solution/__init__.py.  The\n"
        "reference modules (" + ", ".join(f"solution/{e.module}.py" for e in EXERCISES) + ") are not\n"
        "in this copy: you write them in exercises/.  ``from exercises import LoadBalancer`` gives yours.\n"
        '"""\n'
    )
    return trim_init(header + body, "solution/__init__.py")


# -- tests: which ship -------------------------------------------------------------------------


def test_verdicts() -> dict[str, str]:
    """``{tests/<path>: ""}`` for each test file that ships, or the reason it does not.

    A test ships unless it (or a ``conftest.py`` above it) imports a withheld
    module, takes a name :func:`stripped_names` lists from ``solution``
    (``solution.LoadBalancer``, ``from solution import RequestQueue``,
    ``from solution.core.routing import LeastConnections``, ...), imports a
    check function that runs the reference itself (:data:`LIVE_REFERENCE`),
    or asks for the ``reference`` fixture.
    """
    names = stripped_names()
    modules = withheld_modules()

    def reason(path: Path) -> str:
        text = path.read_text()
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if any(node.module == m or node.module.startswith(m + ".") for m in modules):
                    return f"imports {node.module}"
                if node.module.startswith("solution") and {a.name for a in node.names} & names:
                    return f"imports {', '.join(sorted({a.name for a in node.names} & names))} from {node.module}"
                if node.module.startswith("solution.checks") and {a.name for a in node.names} & set(LIVE_REFERENCE):
                    return f"runs the reference through {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if any(alias.name == m or alias.name.startswith(m + ".") for m in modules):
                        return f"imports {alias.name}"
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "solution" \
                    and node.attr in names:  # fmt: skip
                return f"uses solution.{node.attr}"
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "reference" in [a.arg for a in node.args.args]:
                return "uses the reference fixture"
        return ""

    out: dict[str, str] = {}
    tests = ROOT / "tests"
    for path in sorted(tests.rglob("*.py")):
        relative = path.relative_to(tests)
        if relative.parts[0] in TESTS_LEFT_OUT or path.name == "__init__.py" or path.name == "conftest.py":
            continue
        if not path.name.startswith("test_") and path.parent == tests:
            continue  # a helper module ships beside the tests that import it (tests/stage5/inner.py), never at the top
        why = ""
        for folder in [*reversed(relative.parents)][1:]:  # the conftest.py files above it, tests/ excluded
            conftest = tests / folder / "conftest.py"
            if conftest.is_file() and reason(conftest):
                why = f"{conftest.relative_to(ROOT)} {reason(conftest)}"
        out[str(path.relative_to(ROOT))] = why or reason(path)
    return out


# -- the candidate's Makefile and README ---------------------------------------------------------

MAKEFILE = """\
# The candidate's commands.  Each target sets up what it needs in .venv first.
#   make lab     open the course in JupyterLab (notebook 01)
#   make test    run the public tests and every notebook (nbval) against your exercises/

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: setup lab test clean

$(STAMP): pyproject.toml
\t@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed, found " + sys.version.split()[0]'
\t$(PYTHON) -m venv $(VENV)
\t$(BIN)/python -m pip install --quiet --upgrade pip
\t$(BIN)/python -m pip install --quiet -e '.[course,test]'
\t@touch $(STAMP)

setup: $(STAMP)

lab: setup
\t$(BIN)/jupyter lab --config=jupyter_lab_config.py

test: setup
\t$(PYTEST) tests notebooks --nbval-lax --nbval-current-env

clean:
\trm -rf $(VENV) .pytest_cache
"""

README = """\
# Load balancing for LLM inference: your copy

You build the load balancer in front of a pool of GPU inference servers, stage by stage, in
Jupyter notebooks, and measure it in a simulator of an LLM serving cluster.

## Open it

On a machine with `python3` (3.10 or newer, with its `venv` module) and `make`:

```sh
make lab    # set up .venv (a few minutes, the first time) and open notebook 01 in JupyterLab
```

## Where to write

| stage | notebook (the task) | your file |
|---|---|---|
{stages}

Every body that raises `NotImplementedError` is yours; the names, signatures and docstrings
are the contract.  Edit only `exercises/`: the rest (`solution/`: errors, validation, the
router and gateway, the simulator, the widgets, the check cells) is given.  `solution/` holds
no reference implementation: the demonstrations in the notebooks run *your* code, and until
it works a cell says what to implement instead of showing its result (the notebooks as
shipped show what the results look like).

## How to check

* In each notebook, re-run the **check cell** (under *Check your work*): one line per group
  of rules, `PASS`, or `FAIL` with the shortest sequence of calls where your code differs from
  the recorded reference results.
* From a shell:

  ```sh
  make test                                              # public tests and every notebook
  .venv/bin/python -m pytest -m stage1                   # one stage's public tests
  ```

Your grade comes from the same kind of checks and tests, plus cases that are not in this copy.
"""


def readme() -> str:
    rows = "\n".join(f"| {e.stage} | `{e.notebook}` | `exercises/{e.module}.py` |" for e in EXERCISES)
    return README.format(stages=rows)


# -- building ----------------------------------------------------------------------------------


def files(notebooks: Path | None = None) -> dict[str, bytes]:
    """``{path in the bundle: contents}`` of every file of the bundle.

    ``notebooks``: the folder of executed notebooks to ship (default: the committed ``notebooks/``).
    """
    out: dict[str, bytes] = {}
    solution = ROOT / "solution"
    for path in sorted(solution.rglob("*")):
        relative = path.relative_to(solution).as_posix()
        if not path.is_file() or _SKIP.search(relative) or withheld(relative):
            continue
        if relative == "__init__.py":
            out["solution/__init__.py"] = bundle_init(path.read_text()).encode()
        elif path.suffix == ".py":
            out[f"solution/{relative}"] = strip_reference(path.read_text(), relative).encode()
        else:
            out[f"solution/{relative}"] = path.read_bytes()
    for name, text in generate().items():
        out[f"exercises/{name}"] = text.encode()
    for path in sorted((notebooks or ROOT / "notebooks").glob("*.ipynb")):
        out[f"notebooks/{path.name}"] = path.read_bytes()
    for path in sorted((ROOT / "docs").glob("*.md")):
        if path.name not in DOCS_LEFT_OUT:
            out[f"docs/{path.name}"] = path.read_bytes()
    shipped = [p for p, why in test_verdicts().items() if not why]
    for relative in shipped:
        out[relative] = (ROOT / relative).read_bytes()
        folder = (ROOT / relative).parent
        while folder != ROOT:  # the packages and conftest.py files the test needs
            for helper in ("__init__.py", "conftest.py"):
                if (folder / helper).is_file():
                    out[str((folder / helper).relative_to(ROOT))] = (folder / helper).read_bytes()
            folder = folder.parent
    for name in TOP_FILES:
        out[name] = (ROOT / name).read_bytes()
    out["Makefile"] = MAKEFILE.encode()
    out["README.md"] = readme().encode()
    out[".gitignore"] = b".venv/\n__pycache__/\n*.egg-info/\n.pytest_cache/\n.ipynb_checkpoints/\n"
    return out


def write(target: Path, contents: dict[str, bytes]) -> None:
    """Write the bundle folder ``target`` (replacing it)."""
    if target.exists():
        shutil.rmtree(target)
    for relative, data in contents.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (target / "Makefile").chmod(0o644)


def archive(contents: dict[str, bytes], path: Path) -> None:
    """A reproducible ``.tar.gz`` of the bundle (sorted, fixed times and owners), rooted at ``candidate-bundle/``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in sorted(contents):
            info = tarfile.TarInfo(f"{NAME}/{relative}")
            info.size, info.mtime, info.mode = len(contents[relative]), 0, 0o644
            tar.addfile(info, io.BytesIO(contents[relative]))
    with open(path, "wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="write OUT/candidate-bundle/ (default: dist/)")
    parser.add_argument("--no-archive", action="store_true", help="write the folder only")
    parser.add_argument("--list-tests", action="store_true", help="print which tests ship and why the others do not")
    parser.add_argument("--notebooks", type=Path, help="ship the executed notebooks in this folder instead of notebooks/")
    args = parser.parse_args(argv)
    if args.list_tests:
        for path, why in test_verdicts().items():
            print(f"{'ships' if not why else 'left out'}: {path}" + (f" ({why})" if why else ""))
        return 0
    contents = files(args.notebooks)
    target = args.out / NAME
    write(target, contents)
    print(f"wrote {len(contents)} files to {target}")
    if not args.no_archive:
        archive(contents, args.out / f"{NAME}.tar.gz")
        print(f"wrote {args.out / (NAME + '.tar.gz')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
