"""Stage 8's check groups (solution/checks/stage8.py), in this process (fast; the grader's fakes run them in the sandbox).

The reference runs every case the same way twice (its recorded steps are
stable, the jitter's verdicts included: fixed seeds), builds every case outside
the bad-input group, answers every decision "ok" (its delays inside the rule's
interval) and passes every distribution test; the generated stubs differ from
it in every case of every group (no group passes for a candidate who wrote
nothing); each wrong implementation in ``fakes.STAGE8_EDITS`` loses the groups
that teach the rule it breaks and no group outside the ones its edit may reach;
a correct retrier whose jitter draws its stream differently (``bound - u * bound``)
still passes every group (the rule is graded, not the reference's stream).
"""

from __future__ import annotations

import json
import sys
import types
from functools import cache
from pathlib import Path

import pytest

import solution
from solution.checks import cost
from solution.checks.script import run_case
from solution.checks.stage8 import GROUP_NAMES, SPEC
from tests.meta import fakes

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.meta, pytest.mark.stage8]


def _module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source, f"{name}.py", "exec"), module.__dict__)
    return module


@cache
def _stub() -> types.ModuleType:
    """The generated stub of solution/retry.py (``tools/make_exercises.py``), as a module."""
    return _module("stage8_stub", fakes.stub(8))


GROUPS = SPEC.groups()


@cache
def _reference_steps() -> list[list[list]]:
    return [[run_case(SPEC.harness, solution, c) for c in g.cases] for g in GROUPS]


def _lost(module: types.ModuleType) -> list[str]:
    return [g.name for g, want in zip(GROUPS, _reference_steps()) if [run_case(SPEC.harness, module, c) for c in g.cases] != want]


def test_the_groups_are_named_in_order():
    assert tuple(g.name for g in GROUPS) == GROUP_NAMES
    assert all(g.cases for g in GROUPS)
    assert all(len(name) <= 63 for name in GROUP_NAMES)  # the grader's table shows 63 characters


@pytest.mark.parametrize("group", GROUPS, ids=[g.name.split(":")[0].replace(" ", "-") for g in GROUPS])
def test_the_reference_is_deterministic_and_the_stubs_fail_every_case(group):
    stub = _stub()
    for case in group.cases:
        want = run_case(SPEC.harness, solution, case)
        assert run_case(SPEC.harness, solution, case) == want, f"{case.id}: the reference runs it differently twice"
        if not group.name.startswith("bad input"):
            assert want[0][0] == "ok", f"{case.id}: the reference does not build it: {want[0]}"
        text = json.dumps(want)
        assert '"uniform": false' not in text and '"uniform", false' not in text, f"{case.id}: the reference fails a distribution test"
        for (name, _), (result, _) in zip(case.ops, want[1:]):
            if name == "decide" and result[0] == "ok":
                assert result[1][2] == "ok", f"{case.id}: the reference's delay falls outside the rule: {result}"
            if name in ("same_seed", "same_stream") and result[0] == "ok":
                assert result[1] is True, f"{case.id}: {name} is false on the reference"
        assert run_case(SPEC.harness, stub, case) != want, f"{case.id}: the stubs pass it"


@pytest.mark.parametrize("name", sorted(fakes.STAGE8_EDITS))
def test_each_wrong_implementation_fails_the_groups_that_teach_its_rule(name):
    _, failing, may_fail, _ = fakes.STAGE8_EDITS[name]
    lost = _lost(_module("stage8_fake", fakes.stage8_source(name)))
    for prefix in failing:
        assert any(g.startswith(prefix) for g in lost), f"{name}: no group starting {prefix!r} catches it (lost: {lost})"
    stray = [g for g in lost if not g.startswith(failing + may_fail)]
    assert not stray, f"{name}: loses groups its edit should not reach: {stray}"


def test_another_uniform_stream_passes_every_group():
    """Waits drawn as ``bound - u * bound`` (uniform on [0, bound] too, another stream): every group passes."""
    source = fakes.edit(fakes.reference(8), "    return rng.random() * bound\n", "    return bound - rng.random() * bound\n")
    assert _lost(_module("stage8_mirror", source)) == []


def test_each_wrong_implementation_is_also_a_grader_fake():
    """``tests/meta/test_grading.py`` grades each of them in the sandbox, on stage 8 alone (slow)."""
    names = {f.name for f in fakes.fakes() if set(f.expect) == {8}}
    assert set(fakes.STAGE8_EDITS) <= names


@pytest.mark.slow
def test_the_cost_rule_passes_the_reference_and_fails_a_scanning_retrier():
    rule = {"kind": "retrier"}
    ok, text = cost.verdict(cost.measure(solution, rule))
    assert ok, text
    scanning = _module("stage8_scan", fakes.edit(fakes.reference(8), *fakes._RETRY_SCAN))
    ok, text = cost.verdict(cost.measure(scanning, rule))
    assert not ok, text


def test_the_stubs_fail_every_hidden_case():
    """A stub raises NotImplementedError before anything else: no hidden case (a bad construction Python itself
    refuses, say) may pass on it, or the stubs would score above 0."""
    from solution.grading.hidden import hidden_groups

    stub = _stub()
    passing = [c.id for g in hidden_groups(SPEC) for c in g.cases
               if run_case(SPEC.harness, stub, c) == run_case(SPEC.harness, solution, c)]
    assert not passing, f"the stubs pass hidden cases {passing}"


def test_the_bundle_carries_stage_8_without_its_solution():
    """The candidate's bundle (tools/make_bundle.py) ships the stub exercises/retry.py, tests/stage8, the check's recorded
    cases and the gateway (support code, so notebook 08 runs it on the candidate's components) with every data file
    beside it (the recorded race results notebook 08 prints); it withholds solution/retry.py and the hidden cases,
    and leaves tests/gateway out (processes and HAProxy; it tests support code, not the candidate's module)."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import make_bundle
    finally:
        sys.path.remove(str(ROOT / "tools"))
    shipped = make_bundle.files(notebooks=ROOT / "no-notebooks")
    assert "solution/retry.py" not in shipped and "exercises/retry.py" in shipped
    assert b"NotImplementedError" in shipped["exercises/retry.py"]
    assert {"tests/stage8/test_rules.py", "tests/stage8/test_bad_input.py", "tests/stage8/test_properties.py"} <= set(shipped)
    assert "solution/checks/stage8.py" in shipped and "solution/checks/recorded/stage8.json.gz" in shipped
    assert not [p for p in shipped if p.startswith(("tests/gateway/", "solution/grading/"))]
    gateway = ROOT / "solution" / "gateway"
    files = [p.relative_to(ROOT).as_posix() for p in gateway.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    missing = [p for p in files if p not in shipped]
    assert not missing, f"the bundle leaves out gateway files notebook 08 needs: {missing}"
