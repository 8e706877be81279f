"""Stage 7's check groups (solution/checks/stage7.py), in this process (fast; the grader's fakes run them in the sandbox).

The reference runs every case the same way twice (its recorded steps are
stable), builds every case outside the bad-input group, the generated stubs
differ from it in every case of every group (no group passes for a candidate
who wrote nothing), and each wrong implementation in ``fakes.STAGE7_EDITS``
loses the groups that teach the rule it breaks.
"""

from __future__ import annotations

import sys
import types
from functools import cache
from pathlib import Path

import pytest

import solution
from solution.checks.script import run_case
from solution.checks.stage7 import GROUP_NAMES, SPEC
from tests.meta import fakes

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.meta


@cache
def _stub() -> types.ModuleType:
    """The generated stub of solution/deploy.py (``tools/make_exercises.py``), as a module."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import make_exercises
    finally:
        sys.path.remove(str(ROOT / "tools"))
    module = types.ModuleType("stage7_stub")
    exec(compile(make_exercises.generate()["deploy.py"], "stage7_stub.py", "exec"), module.__dict__)
    return module


GROUPS = SPEC.groups()


def test_the_groups_are_named_in_order():
    assert tuple(g.name for g in GROUPS) == GROUP_NAMES
    assert all(g.cases for g in GROUPS)


@pytest.mark.parametrize("group", GROUPS, ids=[g.name.split(":")[0].replace(" ", "-") for g in GROUPS])
def test_the_reference_is_deterministic_and_the_stubs_fail_every_case(group):
    stub = _stub()
    for case in group.cases:
        want = run_case(SPEC.harness, solution, case)
        assert run_case(SPEC.harness, solution, case) == want, f"{case.id}: the reference runs it differently twice"
        if not group.name.startswith("bad input"):
            assert want[0][0] == "ok", f"{case.id}: the reference does not build it: {want[0]}"
        assert run_case(SPEC.harness, stub, case) != want, f"{case.id}: the stubs pass it"


@pytest.mark.parametrize("name", sorted(fakes.STAGE7_EDITS))
def test_each_wrong_implementation_fails_the_groups_that_teach_its_rule(name):
    old, new, failing = fakes.STAGE7_EDITS[name]
    source = (ROOT / "solution" / "deploy.py").read_text()
    assert source.count(old) == 1, f"the edit {name!r} no longer applies to solution/deploy.py"
    module = types.ModuleType("stage7_fake")
    exec(compile(source.replace(old, new), "stage7_fake.py", "exec"), module.__dict__)
    lost = [g.name for g in GROUPS if [run_case(SPEC.harness, module, c) for c in g.cases] != [run_case(SPEC.harness, solution, c) for c in g.cases]]
    for prefix in failing:
        assert any(g.startswith(prefix) for g in lost), f"{name}: no group starting {prefix!r} catches it (lost: {lost})"


def test_each_wrong_implementation_is_also_a_grader_fake():
    """``tests/meta/test_grading.py`` grades each of them in the sandbox, on stage 7 alone (slow)."""
    names = {f.name for f in fakes.fakes() if set(f.expect) == {7}}
    assert set(fakes.STAGE7_EDITS) <= names
