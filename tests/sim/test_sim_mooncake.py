"""The Mooncake FAST'25 trace loader (solution.sim.mooncake): the real files beside the repository, and small made-up ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from solution.sim import TraceFormatError
from solution.sim.mooncake import (
    MOONCAKE_CREDIT,
    MooncakeWorkload,
    derive_sessions,
    load_mooncake_trace,
    summarize,
    time_scale_for,
)

pytestmark = pytest.mark.sim


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def row(ms: float, blocks: list[int], inp: int | None = None, out: int = 10) -> dict[str, object]:
    return {"timestamp": ms, "input_length": inp if inp is not None else 512 * len(blocks), "output_length": out, "hash_ids": blocks}


# -- the real traces (skipped in a user's clone, required in CI) --------------------------------------------------

EXPECTED = {  # rows, sessions, most turns, unbounded-cache hit share (the README's 0.37 and 0.64), system-prompt blocks
    "conversation": (12_031, 7_373, 43, 0.3664, 1),
    "synthetic": (3_993, 2_211, 24, 0.6396, 0),
}


@pytest.mark.parametrize("which", sorted(EXPECTED))
def test_the_traces_sessions_and_ceiling(mooncake_dir: Path, which: str) -> None:
    req = load_mooncake_trace(mooncake_dir, which=which)
    rows, sessions, turns, ceiling, shared = EXPECTED[which]
    summary = summarize(req)
    assert (len(req), summary.sessions, summary.max_turns) == (rows, sessions, turns)
    assert summary.ceiling == pytest.approx(ceiling, abs=5e-4)
    offsets, blocks = req.block_offsets, req.blocks
    assert derive_sessions(offsets, blocks)[1] == shared
    # every request has ceil(input / 512) blocks, as the README says
    assert (np.diff(offsets) == -(-req.prompt_tokens // 512)).all()
    # a session is its first shared + 1 blocks: requests of one session agree on them, of two sessions differ
    first = {tuple(req.prefix_blocks(i)[: shared + 1]) for i in range(len(req)) if req.session_key[i] == req.session_key[0]}
    assert len(first) == 1
    assert (req.session == -1).all() and (np.diff(req.arrival) >= 0).all() and req.arrival[0] == 0


def test_a_slice_and_a_time_scale(mooncake_dir: Path) -> None:
    full = load_mooncake_trace(mooncake_dir)
    part = load_mooncake_trace(mooncake_dir, start=1000, limit=200, time_scale=0.5)
    assert len(part) == 200 and part.arrival[0] == 0
    np.testing.assert_allclose(np.diff(part.arrival), 0.5 * np.diff(full.arrival[1000:1200]), atol=1e-9)
    assert (part.session_key == full.session_key[1000:1200]).all()  # sessions are derived on the whole file
    assert part.prefix_blocks(0) == full.prefix_blocks(1000)
    scale = time_scale_for(full, 2 * (len(full) - 1) / full.arrival[-1])
    assert scale == pytest.approx(0.5)


# -- made-up files: the format, the rule, the errors ----------------------------------------------------------------


def test_the_session_rule_skips_the_blocks_every_request_shares(tmp_path: Path) -> None:
    rows = [row(0, [0, 1, 2]), row(5, [0, 7]), row(9, [0, 1, 2, 3, 4]), row(12, [0, 7, 8]), row(20, [0])]
    req = load_mooncake_trace(write(tmp_path / "t.jsonl", rows))
    # block 0 is everyone's system prompt: sessions are the first two blocks; [0] alone has no conversation: its own
    assert req.session_key.tolist() == [0, 1, 0, 1, 2]
    assert req.arrival.tolist() == [0.0, 0.005, 0.009, 0.012, 0.02]
    assert req.prefix_blocks(2) == (0, 1, 2, 3, 4) and req.ceiling() == pytest.approx(7 / 14)
    offsets, blocks = req.block_offsets, req.blocks
    assert derive_sessions(offsets, blocks)[1] == 1
    none_shared = load_mooncake_trace(write(tmp_path / "u.jsonl", [row(0, [5, 1]), row(1, [6, 2]), row(2, [5, 1, 3])]))
    assert none_shared.session_key.tolist() == [0, 1, 0]


@pytest.mark.parametrize("text", [
    '{"timestamp": 0, "input_length": 10, "output_length": 1}\n',  # no hash_ids
    '{"timestamp": 0, "input_length": -1, "output_length": 1, "hash_ids": [1]}\n',
    '{"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [true]}\n',
    'not json\n',
    '{"timestamp": 5, "input_length": 1, "output_length": 1, "hash_ids": [1]}\n'
    '{"timestamp": 4, "input_length": 1, "output_length": 1, "hash_ids": [1]}\n',
    '',
])  # fmt: skip
def test_a_malformed_trace_is_refused_with_its_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(TraceFormatError):
        load_mooncake_trace(path)


def test_bad_arguments_and_a_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [row(0, [1]), row(1, [1, 2])])
    with pytest.raises(FileNotFoundError, match="kvcache-ai/Mooncake"):
        load_mooncake_trace(tmp_path / "nowhere")
    with pytest.raises(ValueError):
        load_mooncake_trace(path, which="chat")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        load_mooncake_trace(path, time_scale=0)
    with pytest.raises(ValueError):
        load_mooncake_trace(path, start=2)
    with pytest.raises(FileNotFoundError):
        MooncakeWorkload(str(tmp_path / "none.jsonl"))
    with pytest.raises(ValueError, match="time_scale"):
        MooncakeWorkload(str(path)).generate(None, None, 1.0)  # type: ignore[arg-type]
    assert "Qin et al." in MOONCAKE_CREDIT and "Apache-2.0" in MOONCAKE_CREDIT
