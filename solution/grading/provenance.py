"""Where a submission's code comes from: the reference is not an answer.

Read from the source (parsed, never imported) and from what the child saw:

* :func:`static_findings`: imports of a reference candidate module
  (``solution.balancer``, ``solution.request_queue``, ``solution.strategies``, ``solution.health``, ``solution.affinity``,
  ``solution.tiers``, ``solution.deploy``, ``solution.retry``,
  the plain stage-1 rule in ``solution.widgets.explain``, the package's
  top-level re-exports), for stage 1 also the router framework
  (``Router`` + ``LeastConnections`` is a stage-1 answer), and strings that
  name them (``importlib.import_module("solution.balancer")``).  Each is a
  reason for 0.
* :func:`runtime_findings`: a graded class defined outside the candidate's
  module, inheriting from the reference, or carrying methods whose code
  lives in another file.  Each is a reason for 0.
* :func:`similarity`: how close the candidate's bodies of the stubbed
  functions are to the reference's, token by token (comments, docstrings
  and layout ignored).  A note for the instructor, not a verdict: a
  determined copier renames things, and two careful heaps look alike.
"""

from __future__ import annotations

import ast
import difflib
import io
import re
import tokenize
from pathlib import Path
from typing import Any

__all__ = ["static_findings", "runtime_findings", "similarity", "stubbed_functions", "SIMILARITY_NOTE"]

#: Similarity from which the report carries a note.
SIMILARITY_NOTE = 0.9

#: Modules that hold a reference answer, by stage (any stage may not import any of them).
_REFERENCE_MODULES = ("solution.balancer", "solution.request_queue", "solution.strategies", "solution.health",
                      "solution.affinity", "solution.tiers", "solution.deploy", "solution.retry", "solution.widgets.explain", "solution.widgets",
                      "solution.sim")
_STAGE_EXTRA = {1: ("solution.core.routing",)}
_TOP_LEVEL = re.compile(r"solution[./](balancer|request_queue|strategies|health|affinity|tiers|deploy|retry|widgets|sim)\b")
#: What parsing a source may raise besides SyntaxError: a few kilobytes of ``-`` or ``not`` nest past the recursion limit.
_UNPARSABLE = (SyntaxError, ValueError, RecursionError, MemoryError)


def _forbidden(stage: int) -> tuple[str, ...]:
    return _REFERENCE_MODULES + _STAGE_EXTRA.get(stage, ())


def static_findings(source: str, stage: int) -> list[str]:
    """Reasons, from the source alone, why the submission's stage is not its own work (empty: none)."""
    try:
        tree = ast.parse(source)
    except _UNPARSABLE:
        return []  # the child, which cannot compile it either, reports the error
    forbidden = _forbidden(stage)
    found: list[str] = []

    def bad(name: str) -> bool:
        return any(name == f or name.startswith(f + ".") for f in forbidden)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if bad(alias.name) or alias.name == "solution":
                    found.append(f"line {node.lineno}: imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if bad(node.module):
                found.append(f"line {node.lineno}: imports from {node.module}")
            elif node.module == "solution":
                found.append(f"line {node.lineno}: imports from the reference package (from solution import ...)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _TOP_LEVEL.search(node.value):
            found.append(f"line {node.lineno}: names a reference module in a string ({node.value[:60]!r})")
    return found


def runtime_findings(classes: dict[str, Any], module: str, stage: int) -> list[str]:
    """Reasons, from what the child saw of the graded classes, why they are not the candidate's own."""
    found = []
    own = f"exercises.{module}"
    for name, info in sorted(classes.items()):
        if info.get("missing"):
            continue  # the cases report the missing class
        if info.get("module") != own:
            found.append(f"{name} is defined in {info.get('module')}, not in {own}")
        for base in info.get("mro", []):
            if base.startswith("solution.") and not _allowed_base(base, stage):
                found.append(f"{name} inherits from {base}")
        for path in info.get("code_files", []):
            if path != f"{module}.py":
                found.append(f"{name} has methods whose code is in {path}")
    return found


def _allowed_base(base: str, stage: int) -> bool:
    """Stage 3's, 5's, 6's and 7's strategies build on the framework's base classes; nothing else may come from the package."""
    return stage in (3, 5, 6, 7) and base in ("solution.core.routing.BaseStrategy", "solution.core.routing.IndexedStrategy")


def _tokens(source: str) -> list[str]:
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING):
                continue
            if tok.type == tokenize.STRING:
                out.append("STR")
                continue
            out.append(tok.string)
    except (tokenize.TokenError, *_UNPARSABLE):
        pass
    return out


def _bodies(source: str) -> dict[str, str]:
    """Every function's body (docstring dropped), by qualified name."""
    try:
        tree = ast.parse(source)
    except _UNPARSABLE:
        return {}
    out: dict[str, str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = child.body
                if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                    body = body[1:]
                out[prefix + child.name] = "\n".join(ast.unparse(b) for b in body)

    try:
        visit(tree, "")
    except RecursionError:  # parsed, but nested too deep to unparse
        return {}
    return out


def similarity(candidate: str, reference: str, stubbed: set[str]) -> float:
    """Token similarity (0..1) of the candidate's bodies of the ``stubbed`` functions to the reference's."""
    mine, theirs = _bodies(candidate), _bodies(reference)
    names = sorted(n for n in stubbed if n in theirs)
    if not names:
        return 0.0
    a = _tokens("\n".join(mine.get(n, "") for n in names))
    b = _tokens("\n".join(theirs[n] for n in names))
    if not a or not b:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def stubbed_functions(stub_source: str) -> set[str]:
    """The functions the generated stub leaves to the candidate (their body raises NotImplementedError)."""
    return {name for name, body in _bodies(stub_source).items() if "NotImplementedError" in body}


def read(path: Path) -> str:
    return path.read_text(errors="replace")
