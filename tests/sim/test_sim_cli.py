"""The command line: ``python -m solution.sim``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from solution import LoadBalancer
from solution.sim import cli
from solution.sim.cli import main, resolve_balancer
from solution.sim.scenarios import SCENARIOS

pytestmark = pytest.mark.sim

ROOT = Path(__file__).resolve().parents[2]


def test_list_names_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SCENARIOS) and "H100-80GB" in out


def test_run_prints_the_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "classic", "--servers", "4", "--load", "0.75", "--requests", "3000", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "classic: 3,000 requests on 4 servers" in out and "solution.balancer.LoadBalancer" in out
    assert "rejection rate" in out and "e2e p99 (s)" in out


def test_run_a_fault_scenario_with_another_balancer(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "crash", "--requests", "800", "--detection", "1", "--balancer", "solution.balancer:LoadBalancer"]
    assert main(argv) == 0
    assert "crash: 800 requests" in capsys.readouterr().out


def test_trace_replays_a_file(trace_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = trace_dir / "AzureLLMInferenceTrace_code.csv"
    assert main(["trace", str(path), "--servers", "2", "--limit", "500", "--time-scale", "0.5", "--no-progress"]) == 0
    assert "500 requests on 2 servers" in capsys.readouterr().out


def test_errors_exit_with_status_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "classic", "--balancer", "no.such.module:X"]) == 2
    assert "package.module:Class" in capsys.readouterr().err
    assert main(["trace", str(tmp_path / "absent.csv")]) == 2
    assert "no trace file" in capsys.readouterr().err
    assert main(["run", "classic", "--load", "-1"]) == 2
    with pytest.raises(SystemExit):
        main(["run", "no-such-scenario"])


class Stub(LoadBalancer):
    def route_request(self, request_id: str, estimated_tokens: int) -> str:
        raise NotImplementedError("write route_request")


class Greedy(LoadBalancer):
    def route_request(self, request_id: str, estimated_tokens: int) -> str:
        super().route_request(request_id, estimated_tokens)
        return "gpu-0"


@pytest.mark.parametrize(("balancer", "message"), [(Stub, "NotImplementedError: write route_request"),
                                                   (Greedy, "BalancerContractError")])  # fmt: skip
def test_a_failing_balancer_exits_with_status_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                balancer: type, message: str) -> None:  # fmt: skip
    monkeypatch.setattr(cli, "resolve_balancer", lambda spec: balancer)
    assert main(["run", "classic", "--requests", "500"]) == 1
    assert message in capsys.readouterr().err


def test_resolve_balancer(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_balancer("solution") is LoadBalancer
    assert resolve_balancer("solution.balancer:LoadBalancer") is LoadBalancer
    monkeypatch.setenv("LB_IMPL", "solution")
    assert resolve_balancer(None) is LoadBalancer


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "solution.sim", "run", "steady", "--requests", "300"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "steady: 300 requests" in done.stdout and done.stderr == ""  # no progress bar when not a terminal


def test_run_with_a_queue_at_the_gateway(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "classic", "--servers", "2", "--load", "1.2", "--requests", "2000", "--queue", "sjf", "--max-depth", "10",
            "--max-wait", "5", "--queue-impl", "solution"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "queue solution.request_queue.RequestQueue (sjf)" in out and "queue-full rate" in out and "wait p99 (s)" in out


def test_queue_options_need_a_queue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "classic", "--requests", "100", "--max-depth", "3"]) == 2
    assert "need --queue" in capsys.readouterr().err
    assert main(["run", "classic", "--requests", "100", "--queue", "fifo", "--max-depth", "-1"]) == 2


def test_health_race_prints_a_block_per_fault(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health-race", "--faults", "crash,failing", "--setups", "none,both", "--seeds", "2", "--requests", "400",
                 "--workers", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "fault: crash" in out and "fault: failing" in out and "paired difference from 'none'" in out
    assert main(["health-race", "--faults", "meteor", "--seeds", "2", "--workers", "1"]) == 2
    assert "unknown fault" in capsys.readouterr().err


def test_health_checks_print_the_theory_and_the_simulation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health-checks", "--seeds", "20"]) == 0
    out = capsys.readouterr().out
    assert out.count("predicted [") == 3 and out.count("vs formula") >= 6 and "20/20 seeds inside" in out


def test_run_with_health_prints_the_transitions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "hang", "--servers", "3", "--requests", "1500", "--health", "both"]) == 0
    out = capsys.readouterr().out
    assert "health:" in out and "gpu-0: healthy -> down (probe failures)" in out
    assert main(["run", "hang", "--requests", "200", "--health", "both", "--balancer", "solution"]) == 2
    assert "Router" in capsys.readouterr().err
    assert main(["run", "hang", "--requests", "200", "--no-slow-start"]) == 2
