"""The committed exercises are exactly what the generator makes from the reference."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import make_exercises  # noqa: E402

pytestmark = pytest.mark.meta


def test_committed_exercises_match_the_generator():
    stale = make_exercises.diff(ROOT / "exercises", make_exercises.generate())
    assert not stale, "exercises/ differs from the generator's output; run `make exercises`:\n" + stale[:3000]


def test_stubs_keep_the_public_interface():
    """Same classes, methods, signatures and docstrings as the reference; bodies raise."""
    for exercise in make_exercises.EXERCISES:
        ref = ast.parse((ROOT / "solution" / f"{exercise.module}.py").read_text())
        stub = ast.parse(make_exercises.generate()[f"{exercise.module}.py"])

        def public(tree):
            """{qualified name: (signature, docstring)} of public classes, functions and methods."""
            found = {}
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                    found[node.name] = (ast.dump(node.args) if isinstance(node, ast.FunctionDef) else "", ast.get_docstring(node))
                    for member in node.body if isinstance(node, ast.ClassDef) else []:
                        if isinstance(member, ast.FunctionDef) and (not member.name.startswith("_") or member.name == "__init__"):
                            found[f"{node.name}.{member.name}"] = (ast.dump(member.args), ast.get_docstring(member))
            return found

        assert public(stub) == public(ref)
        raising = [n for n in ast.walk(stub) if isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n)]
        assert raising, "the stub raises NotImplementedError nowhere"
        for node in raising:
            assert f"Stage {exercise.stage}:" in ast.unparse(node) and exercise.notebook in ast.unparse(node)


def test_markers_must_balance():
    exercise = make_exercises.EXERCISES[0]
    with pytest.raises(make_exercises.MarkerError):
        make_exercises.strip_solution("def f():\n    ### BEGIN SOLUTION\n    return 1\n", exercise, "x.py")
    with pytest.raises(make_exercises.MarkerError):
        make_exercises.strip_solution("### END OMIT\n", exercise, "x.py")


def test_solution_block_becomes_a_hinted_raise():
    exercise = make_exercises.EXERCISES[0]
    source = "class A:\n    def f(self):\n        ### BEGIN SOLUTION: add one\n        return 1\n        ### END SOLUTION\n### BEGIN OMIT\nSECRET = 1\n### END OMIT\n"
    out = make_exercises.strip_solution(source, exercise, "x.py")
    assert "# TODO: add one" in out and "A.f is not implemented yet" in out
    assert "return 1" not in out and "SECRET" not in out


@pytest.mark.parametrize("stage", [1, 2, 3, 4, 5, 6, 7, 8])
def test_stubs_pass_the_graders_provenance_check(stage):
    """A stub the candidate starts from must not already look copied: no reference module named in it."""
    from solution.checks import SPECS
    from solution.grading.provenance import static_findings

    source = make_exercises.generate()[f"{SPECS[stage].module}.py"]
    assert static_findings(source, stage) == [], (
        f"the generated stub for stage {stage} would be graded as not the candidate's own work; "
        "reword the reference's docstrings so they do not name solution.* modules"
    )
