"""The race's recorded results: the committed file is valid and printable, and the writer/reader agree on a tiny file."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from solution.gateway import results
from solution.gateway.loadgen import LoadResult, summarize
from solution.gateway.race import Capacity, Overhead, RaceRow, capacity_part, overhead_part, race_part

pytestmark = pytest.mark.stage8


def test_the_committed_results_are_valid_and_every_part_prints_with_the_command_that_made_it() -> None:
    recorded = results.load()
    assert set(recorded.parts) == set(results.PART_KINDS)  # every part of the comparison is recorded
    for name, part in recorded.parts.items():
        assert part.command.startswith("python -m solution.gateway.race "), name
        assert part.machine.cores >= 1 and len(part.machine.commit) == 40, name
        assert not part.preliminary and not part.machine.dirty, name  # full runs of committed code
        rows = results.table(recorded, name)
        assert rows and all(isinstance(v, str) for row in rows for v in row.values()), name
    steady = recorded.part("steady")
    assert {r.balancer for r in steady.rows} >= {"gateway predictive", "haproxy leastconn"}
    assert all(r.ok <= r.sent for r in steady.rows)
    assert {"throttled_gpu", "least_connections_sim_vs_http", "azure_trace", "storm", "overhead", "estimates"} <= set(recorded.notes)
    for name in ("steady", "azure"):  # the same race twice: the gateway told each output's true length, or the simulator's guess
        exact, estimated = recorded.part(name), recorded.part(name + "_estimates")
        assert estimated.command == exact.command.replace(" --json", " --estimates --json"), name
        assert [r.balancer for r in estimated.rows] == [r.balancer for r in exact.rows], name
        assert estimated.config["gateway_estimate"].startswith("X-Output-Tokens-Estimate"), name
        assert [s.figures for s in estimated.simulator] == [s.figures for s in exact.simulator], name  # it always used the estimate


def _row(label: str, seed: int, e2e: float, *, fail: bool = False) -> RaceRow:
    rs = [LoadResult(i, 0.1 * i, 0.0, 200, 0.01, e2e, 4, None, None, server="s0", model_e2e=e2e - 0.002) for i in range(4)]
    if fail:
        rs.append(LoadResult(4, 0.5, 0.0, None, None, None, 2, None, "truncated", server="s1"))
    return RaceRow(label, summarize(rs), {"s0": 4, **({"s1": 1} if fail else {})}, tuple(rs), seed)


class _Sim:
    throughput_rps, ttft_p50, ttft_p99, e2e_p50, e2e_p99, requests, completed = 10.0, 0.01, 0.02, 1.0, 2.0, 4, 4


def _document(tmp_path: Path) -> Path:
    path = tmp_path / "race.json"
    machine = results.machine()
    rows = [_row("gateway predictive", 0, 1.0), _row("gateway predictive", 1, 2.0, fail=True), _row("haproxy leastconn", 0, 3.0)]
    part = race_part(rows, {"predictive": [_Sim(), _Sim()]}, config={"requests": 4, "seeds": [0, 1], "fault": None})
    results.record_part(path, "steady", {"command": "python -m solution.gateway.race --requests 4", "machine": machine,
                                         "took_seconds": 1.0, "preliminary": True, **part})  # fmt: skip
    over = Overhead({"direct": 9, "gateway": 9, "haproxy": 9}, {"direct": 0.5e-3, "gateway": 1.3e-3, "haproxy": 0.6e-3},
                    {"direct": 7e-3, "gateway": 12e-3, "haproxy": 6e-3}, {"direct": 2e-4, "gateway": 6e-4, "haproxy": 1e-4})  # fmt: skip
    results.record_part(path, "overhead", {"command": "python -m solution.gateway.race --overhead", "machine": machine,
                                           "took_seconds": 2.0, **overhead_part(over)})  # fmt: skip
    cap = Capacity(8, {"direct": 1800.0, "gateway": 1200.0, "haproxy": 1600.0}, {"direct": 0, "gateway": 0, "haproxy": 0},
                   {"direct": 2e-4, "gateway": 6e-4, "haproxy": 1e-4})  # fmt: skip
    results.record_part(path, "capacity", {"command": "python -m solution.gateway.race --capacity", "machine": machine,
                                           "took_seconds": 2.0, **capacity_part(cap, servers=2)})  # fmt: skip
    return path


def test_a_generated_file_reads_back_with_intervals_errors_and_ratios(tmp_path: Path) -> None:
    path = _document(tmp_path)
    got = results.load(path)
    steady = got.part("steady")
    assert steady.preliminary and steady.config["seeds"] == [0, 1]
    predictive = steady.row("gateway predictive")
    assert (predictive.runs, predictive.sent, predictive.ok, dict(predictive.errors)) == (2, 9, 8, {"truncated": 1})
    mean, low, high = predictive.figures["e2e_p99"]
    assert low < mean < high and mean == pytest.approx(1.5, abs=0.05)
    assert steady.row("haproxy leastconn").figures["e2e_p99"][0] == pytest.approx(3.0)
    assert [(s.balancer, s.seed) for s in steady.per_seed][1] == ("gateway predictive", 1)
    assert steady.simulator[0].figures["e2e_p99"] == (2.0, 2.0, 2.0)
    over = got.part("overhead")
    assert over.added_p50_ms["gateway"] == pytest.approx(0.8) and over.ratio["added_p50"] == pytest.approx(8.0)
    assert math.isnan(over.ratio["added_p99"])  # HAProxy's added p99 is below direct: no ratio (null in the file)
    assert over.ratio["cpu"] == pytest.approx(6.0)
    assert got.part("capacity").ratio["rps"] == pytest.approx(0.75)
    table = results.table(got, "steady")
    assert [r["balancer"] for r in table] == ["gateway predictive", "haproxy leastconn", "simulator predictive"]
    assert table[0]["errors"] == "1 (truncated 1)" and table[1]["e2e p99 (s)"] == "3.00" and table[2]["errors"] == "none modelled"
    assert results.table(got, "overhead")[-1]["added p99 (ms)"].startswith("n/a")
    assert results.table(got, "capacity")[-1]["req/s"].startswith("0.75x")
    assert results.markdown(table).count("\n") == 4
    with pytest.raises(KeyError, match="parts"):
        results.table(got, "storm")


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["parts"]["steady"].pop("command"), "parts.steady"),
        (lambda d: d["parts"]["steady"]["rows"][0].update(e2e_p99=[2.0, 3.0, 4.0]), "parts.steady.rows[0].e2e_p99"),
        (lambda d: d["parts"]["steady"]["rows"][1].update(ok=99), "parts.steady.rows[1].ok"),
        (lambda d: d["parts"]["steady"]["machine"].update(date="yesterday"), "parts.steady.machine.date"),
        (lambda d: d["parts"]["overhead"]["ratio"].pop("cpu"), "parts.overhead.ratio"),
        (lambda d: d["parts"]["capacity"]["rps"].update(gateway="fast"), "parts.capacity.rps.gateway"),
        (lambda d: d["parts"].update(meteor={}), "parts.meteor"),
        (lambda d: d.update(schema=0), "schema"),
    ],
)
def test_a_malformed_field_is_refused_by_name(tmp_path: Path, edit: object, field: str) -> None:
    document = json.loads(_document(tmp_path).read_text())
    edit(copy.deepcopy(document))  # type: ignore[operator]  # the edit works on a copy: the original still parses
    results.parse(document)
    edit(document)  # type: ignore[operator]
    with pytest.raises(ValueError) as info:
        results.parse(document)
    assert str(info.value).startswith(field + ":"), info.value


def test_a_bad_part_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = _document(tmp_path)
    before = path.read_text()
    with pytest.raises(ValueError, match="parts.storm"):
        results.record_part(path, "storm", {"command": "python -m solution.gateway.race --storm", "machine": results.machine(),
                                            "took_seconds": 1.0, "config": {}, "rows": []})  # fmt: skip
    with pytest.raises(ValueError, match="unknown part"):
        results.record_part(path, "meteor", {})
    assert path.read_text() == before
    results.set_note(path, "throttled_gpu", "predictive prices requests from static GPU presets")
    assert results.load(path).notes == {"throttled_gpu": "predictive prices requests from static GPU presets"}
