"""The recorded reference results (public and hidden cases) match what the reference does now,
and the public ones are exactly the check cells' groups."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from solution.checks import SPECS
from solution.checks.runner import load_recorded

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.meta


def test_recorded_cases_are_in_sync_with_the_reference():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "record_cases.py"), "--check"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("stage", sorted(SPECS))
def test_public_recorded_groups_are_the_check_cells_groups(stage):
    recorded = [(g.name, [c.id for c in g.cases]) for g, _ in load_recorded(stage)]
    assert recorded == [(g.name, [c.id for c in g.cases]) for g in SPECS[stage].groups()]


@pytest.mark.parametrize("stage", sorted(SPECS))
def test_hidden_cases_are_not_public_cases(stage):
    from solution.grading.hidden import HIDDEN

    def script(case):
        data = case.to_json()
        return json.dumps([data["make"], data["ops"]], sort_keys=True)

    hidden = load_recorded(stage, HIDDEN / f"stage{stage}.json.gz")
    public = {script(c) for g, _ in load_recorded(stage) for c in g.cases}
    cases = [c for g, _ in hidden for c in g.cases]
    assert cases and not [c.id for c in cases if script(c) in public]
    assert [g.name for g, _ in hidden] == [g.name for g, _ in load_recorded(stage)]


def _statuses(result):
    """'ok' or the error's kind for the build and for each operation of one recorded case."""
    build, *steps = result
    return [build[0]] + [step[0][0] for step in steps]


@pytest.mark.parametrize("stage", sorted(SPECS))
def test_renamed_hidden_cases_behave_like_their_public_twins(stage):
    """A hidden case renamed from a public one (ids, tier and pool names) succeeds and fails at the same steps.

    A renaming that misses an id (say, the servers a case starts with) turns calls into unknown-id errors:
    the hidden case then grades something else than its twin.
    """
    from solution.grading.hidden import HIDDEN

    hidden = load_recorded(stage, HIDDEN / f"stage{stage}.json.gz")
    compared = 0
    for (pub, pub_results), (hid, hid_results) in zip(load_recorded(stage), hidden):
        if "random" in pub.name or pub.name.startswith("bad input") or len(pub.cases) != len(hid.cases):
            continue
        if any(len(p.ops) != len(h.ops) for p, h in zip(pub.cases, hid.cases)):
            continue  # not a renaming (stage 3's bare strategy cases are replaced)
        for p, h, pr, hr in zip(pub.cases, hid.cases, pub_results, hid_results):
            assert _statuses(hr) == _statuses(pr), f"{h.id} (renamed {p.id}) fails at other steps than its twin"
            compared += 1
    assert compared, f"stage {stage}: no renamed hidden case compared"


def test_stage7_hidden_twins_answer_differently_and_keep_the_interface_words():
    """Stage 7's renamed twins (servers, versions, requests, sessions, tiers; times 1,000 s later) record other answers
    than their public cases at some step, so answers replayed from the bundle fail them; and a twin keeps what is the
    interface, not a name: the calls, the bounds (percents included) and the canary's metric names."""
    from solution.grading.hidden import HIDDEN

    hidden = load_recorded(7, HIDDEN / f"stage{7}.json.gz")
    compared = 0
    for (pub, pub_results), (hid, hid_results) in zip(load_recorded(7), hidden):
        if "random" in pub.name or pub.name.startswith("bad input"):
            continue
        for p, h, pr, hr in zip(pub.cases, hid.cases, pub_results, hid_results):
            assert hr != pr, f"{h.id} records the same answers as its public twin {p.id}: a replayed answer passes it"
            assert [name for name, _ in h.ops] == [name for name, _ in p.ops]
            plan = p.make.get("plan") if isinstance(p.make, dict) else None
            if isinstance(plan, dict):
                hplan = h.make["plan"]
                for key in ("max_surge", "max_unavailable"):
                    assert hplan.get(key) == plan.get(key), f"{h.id}: a bound is not a name"
                if isinstance(plan.get("canary"), dict):
                    assert hplan["canary"]["metrics"] == plan["canary"]["metrics"], f"{h.id}: metric names are not names"
            compared += 1
    assert compared >= 20
