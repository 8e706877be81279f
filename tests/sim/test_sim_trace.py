"""Replaying the real Azure LLM inference 2023 trace (files beside the repository, never in it)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from solution.sim import Outcome, TraceFormatError, load_azure_trace, scenarios, simulate

pytestmark = pytest.mark.sim

FILES = {"AzureLLMInferenceTrace_conv.csv": 19_366, "AzureLLMInferenceTrace_code.csv": 8_819}


def read_rows(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An independent reading: numpy's datetime64 parser and the csv module."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    stamps = np.array([np.datetime64(r[0].replace(" ", "T"), "ns") for r in rows])
    seconds = (stamps - stamps[0]).astype(np.int64) / 1e9
    return seconds, np.array([int(r[1]) for r in rows]), np.array([int(r[2]) for r in rows])


@pytest.mark.parametrize("name", sorted(FILES))
def test_the_replay_keeps_rows_order_times_and_tokens(trace_dir: Path, name: str) -> None:
    req = load_azure_trace(trace_dir / name)
    seconds, context, generated = read_rows(trace_dir / name)
    assert len(req) == FILES[name] == len(seconds)
    np.testing.assert_allclose(req.arrival, seconds, rtol=0, atol=1e-6)  # 0.1 microsecond stamps
    assert (np.diff(req.arrival) >= 0).all()
    assert (req.prompt_tokens == context).all() and (req.output_tokens == generated).all()
    assert req.prompt_tokens.sum() == context.sum() and req.output_tokens.sum() == generated.sum()


def test_the_time_scale_multiplies_every_gap(trace_dir: Path) -> None:
    path = trace_dir / "AzureLLMInferenceTrace_code.csv"
    full, fast = load_azure_trace(path), load_azure_trace(path, time_scale=0.25)
    np.testing.assert_allclose(np.diff(fast.arrival), 0.25 * np.diff(full.arrival), rtol=1e-12, atol=1e-12)
    assert (fast.prompt_tokens == full.prompt_tokens).all()
    assert len(load_azure_trace(path, limit=100)) == 100


def test_replaying_the_conversation_trace_on_a_small_cluster(trace_dir: Path) -> None:
    path = trace_dir / "AzureLLMInferenceTrace_conv.csv"
    res = simulate(scenarios.trace(path, servers=3, time_scale=1.0), seed=0)
    req = load_azure_trace(path)
    assert len(res) == len(req) and (res.arrival == req.arrival).all()
    assert res.prompt_tokens.sum() == req.prompt_tokens.sum()
    summary = res.summary()
    assert summary.completed + summary.rejected + summary.failed + summary.crashed == len(res)
    assert summary.completed > 0.95 * len(res)  # three A100s carry this service's hour comfortably
    assert 0.05 < summary.ttft_p50 < 5.0


def test_a_trace_replay_takes_no_load(trace_dir: Path) -> None:
    with pytest.raises(ValueError, match="time_scale"):
        scenarios.trace(trace_dir / "AzureLLMInferenceTrace_code.csv").with_load(0.5)


@pytest.mark.parametrize(("text", "match"), [
    ("", "first line"),
    ("time,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,1,2\n", "first line"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "no rows"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,1\n", "line 2"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,2\n2023-11-16T18:15:47,1,2\n", "line 3"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,-1,2\n", "negative"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,2\n2023-11-16 18:15:45.00,1,2\n", "line 3.*backwards"),
])  # fmt: skip
def test_malformed_traces_are_reported_with_their_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    with pytest.raises(TraceFormatError, match=match):
        load_azure_trace(path)


def test_a_trace_spanning_midnight_keeps_counting(tmp_path: Path) -> None:
    path = tmp_path / "midnight.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 23:59:59.5,1,2\n2023-11-17 00:00:00.25,3,4\n")
    assert load_azure_trace(path).arrival.tolist() == pytest.approx([0.0, 0.75])


def test_missing_files_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="AzurePublicDataset"):
        load_azure_trace(tmp_path / "absent.csv")
    path = tmp_path / "ok.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,2\n")
    with pytest.raises(ValueError):
        load_azure_trace(path, time_scale=0)
    with pytest.raises(ValueError):
        load_azure_trace(path, limit=0)


def test_outcomes_of_a_replay_are_complete(trace_dir: Path) -> None:
    res = simulate(scenarios.trace(trace_dir / "AzureLLMInferenceTrace_code.csv", servers=1, limit=3000), seed=0)
    assert set(np.unique(res.outcome)) <= {Outcome.COMPLETED, Outcome.REJECTED}
