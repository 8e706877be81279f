"""Fixtures for the simulator's tests: the real trace files, a recording balancer."""

from __future__ import annotations

from collections.abc import Callable
import os
from pathlib import Path
from typing import Any

import pytest

from solution import LoadBalancer

#: Where the Azure LLM inference 2023 files live: beside the repository, never inside it.
TRACE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "azure-llm-inference-2023"


def _data_folder(folder: Path, marker: str, how: str) -> Path:
    """``folder`` when ``marker`` is in it; else skip (a user's clone) or, under ``CI``, fail: there the
    data sits beside the clone, and a skip would hide a broken set-up."""
    if not (folder / marker).is_file():
        message = f"{how} (expected at {folder})"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run the trace tests)")
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def trace_dir() -> Path:
    """The folder of the Azure trace files (skip locally when absent, fail under CI)."""
    return _data_folder(TRACE_DIR, "AzureLLMInferenceTrace_conv.csv",
                        "the Azure LLM inference 2023 trace is missing; download AzureLLMInferenceTrace_conv.csv "
                        "and _code.csv from github.com/Azure/AzurePublicDataset (data/) into that folder to run this test")


#: Where the Mooncake FAST'25 traces live: beside the repository, never inside it.
MOONCAKE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mooncake-fast25"


@pytest.fixture(scope="session")
def mooncake_dir() -> Path:
    """The folder of the Mooncake traces (conversation_trace.jsonl, synthetic_trace.jsonl; skip locally when absent, fail under CI)."""
    return _data_folder(MOONCAKE_DIR, "conversation_trace.jsonl",
                        "the Mooncake FAST'25 traces are missing; download conversation_trace.jsonl and synthetic_trace.jsonl "
                        "from github.com/kvcache-ai/Mooncake (FAST25-release/traces/) into that folder to run this test")


class Recorder:
    """A balancer that forwards to the reference and records every call, in order."""

    def __init__(self) -> None:
        self.inner = LoadBalancer()
        self.calls: list[tuple[str, Any]] = []

    def add_server(self, server_id: str, capacity: int, gpu_memory_gb: int) -> None:
        self.calls.append(("add", server_id))
        self.inner.add_server(server_id, capacity, gpu_memory_gb)

    def remove_server(self, server_id: str) -> None:
        self.calls.append(("remove", server_id))
        self.inner.remove_server(server_id)

    def route_request(self, request_id: str, estimated_tokens: int) -> str:
        self.calls.append(("route", request_id))
        server = self.inner.route_request(request_id, estimated_tokens)
        self.calls.append(("routed", request_id))
        return server

    def complete_request(self, request_id: str) -> None:
        self.calls.append(("complete", request_id))
        self.inner.complete_request(request_id)

    def get_server_stats(self) -> dict[str, dict[str, Any]]:
        return self.inner.get_server_stats()


@pytest.fixture(scope="session")
def recording() -> Callable[[], tuple[Callable[[], Recorder], list[Recorder]]]:
    """Call it to get ``(factory, made)``: a balancer factory for ``simulate`` and the balancers it made.

    Session-scoped so that Hypothesis tests may use it; each call starts afresh.
    """

    def fresh() -> tuple[Callable[[], Recorder], list[Recorder]]:
        made: list[Recorder] = []

        def factory() -> Recorder:
            made.append(Recorder())
            return made[-1]

        return factory, made

    return fresh
