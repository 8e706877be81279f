"""Each stage's notebook ends with its interview question and a model answer that covers every expected point.

The questions and the points an interviewer expects are in
``../shared/interview/000_fcef95b79f7b17ec.txt``; the notebooks quote the
question word for word (when the file is there, the quote is checked against
it) and answer each point.  A point counts as covered when the answer names it
(any of a few phrasings, case-insensitive); an answer must also cite numbers
the notebook measured, say where the course differs from the expected answer,
and name the follow-ups to expect.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INTERVIEW = ROOT.parent / "shared" / "interview" / "000_fcef95b79f7b17ec.txt"
pytestmark = pytest.mark.meta

#: notebook -> (question number in the interview file or None for the base question,
#:              expected points: each a tuple of accepted phrasings)
EXPECTED: dict[str, tuple[int | None, dict[str, tuple[str, ...]]]] = {
    "01_least_connections.py": (None, {
        "least-connections relative to capacity": ("least-connections", "least connections"),
        "load ratio (load / capacity)": ("load / capacity", "load ratio", "load_ratio"),
        "GPU memory for large requests": ("80 gb", "gpu memory", "memory"),
        "drain: stop new traffic, wait for in-flight requests": ("drain",),
        "in-flight requests finish": ("in-flight", "in flight"),
        "rolling deploys one server (or a small batch) at a time": ("one at a time", "small batches", "batch"),
        "cost of a decision": ("o(log s)", "heap"),
    }),
    "02_queuing.py": (2, {
        "queue instead of rejecting at once": ("queue",),
        "dequeue on completion": ("completion", "completes", "frees"),
        "maximum queue depth": ("max_depth", "maximum depth", "max depth", "maximum queue depth"),
        "maximum wait (timeout)": ("max_wait", "maximum wait", "max wait", "timeout"),
        "FIFO": ("fifo",),
        "priority ordering": ("priority",),
        "shortest job first": ("sjf", "shortest job first", "shortest-job-first"),
        "429 Too Many Requests": ("429",),
        "503 for overload": ("503",),
        "Retry-After": ("retry-after",),
        "queue depth as the scale-up signal": ("scale",),
    }),
    "03_routing_strategies.py": (3, {
        "least-connections": ("least-connections", "least connections"),
        "weighted response time": ("weighted response time",),
        "join-the-shortest-queue": ("jsq", "shortest queue"),
        "power of two choices": ("power of two", "p2c"),
        "thundering herd": ("herd",),
        "predictive routing by estimated size": ("predictive",),
    }),
    "04_health_checks.py": (1, {
        "periodic health checks on an interval": ("interval",),
        "circuit breaker after N consecutive failures": ("circuit breaker",),
        "degraded vs down": ("degraded",),
        "re-route in-flight requests after a timeout": ("re-route", "re-sent", "reroute"),
        "idempotency (exactly one answer)": ("idempoten", "exactly one"),
        "recovery with slow start": ("slow start",),
        "passive checks (real traffic)": ("passive",),
        "active checks (probes)": ("active",),
    }),
    "05_session_affinity.py": (4, {
        "the KV cache of earlier turns avoids recomputation": ("kv cache",),
        "recomputation": ("recomput",),
        "a session_id -> server_id mapping": ("session_id -> server_id",),
        "fall back to normal routing when at capacity or unhealthy": ("fall back", "fallback"),
        "a TTL on sticky sessions": ("ttl",),
        "soft affinity": ("soft affinity", "soft mode"),
        "hard affinity": ("hard affinity", "hard mode"),
        "KV cache migration": ("migrat",),
    }),
    "06_priorities_and_tiers.py": (5, {
        "reserve a share of each server for premium (e.g. 25%)": ("reserv",),
        "priority queuing: premium dequeued first": ("priority queu", "strict priority", "class priority"),
        "rate limiting per tier (requests per minute)": ("rate limit",),
        "separate server pools for isolation": ("pool",),
        "preemption of batch requests": ("preempt",),
        "SLA-based routing to the lowest latency": ("sla", "lowest predicted"),
    }),
    "07_drain_and_rollouts.py": (6, {
        "remove_server already stops new traffic and waits for in-flight requests": ("remove_server",),
        "drain one at a time or in small batches, each fully drained": ("one at a time", "small batch"),
        "a drain timeout": ("drain timeout", "drain_timeout"),
        "force the rest off, with retry / error handling": ("re-sent", "retry", "force"),
        "pre-warm the replacement before draining": ("pre-warm", "prewarm"),
        "coordinate with an orchestrator (Kubernetes, Nomad)": ("kubernetes",),
        "Nomad": ("nomad",),
        "canary: a small share of traffic first, monitored for errors": ("canary",),
        "roll back when the canary is worse": ("rollback", "roll back", "rolled back"),
    }),
    "08_real_systems.py": (7, {
        "Envoy implements the same concepts": ("envoy",),
        "weighted least-connections": ("least-request", "least-connections", "least connections"),
        "health checking": ("health check",),
        "circuit breaking": ("circuit break",),
        "outlier detection": ("outlier",),
        "request draining": ("drain",),
        "Kubernetes Services use kube-proxy": ("kube-proxy",),
        "round-robin or iptables": ("iptables",),
        "service meshes (Istio/Envoy)": ("istio",),
        "connection pooling": ("connection pool",),
        "HTTP/2 multiplexing": ("http/2",),
        "retries with exponential backoff": ("exponential backoff",),
        "jitter": ("jitter",),
        "observability: metrics": ("metrics",),
        "observability: tracing": ("tracing",),
        "observability: logging": ("log line", "logging"),
        "TLS termination": ("tls",),
        "authentication": ("api key", "authenticat"),
        "vLLM, TensorRT-LLM, Triton": ("vllm",),
        "TensorRT-LLM": ("tensorrt",),
        "Triton": ("triton",),
        "continuous batching": ("continuous batching",),
        "KV cache management": ("kv cache",),
        "token-level streaming": ("token-level streaming", "streaming"),
        "model-parallel routing (one request spans GPUs)": ("model-parallel", "tensor or pipeline parallelism"),
        "at much larger scale": ("scale",),
    }),
}


def answer(notebook: str) -> str:
    """The notebook's last section, which must be its interview answer (markdown, comment markers removed)."""
    text = (ROOT / "notebooks" / "src" / notebook).read_text()
    sections = re.split(r"^# ## ", text, flags=re.M)
    last = sections[-1]
    assert last.startswith("The interview answer"), (
        f"{notebook}: the last section is {last.splitlines()[0]!r}; it must be '## The interview answer'"
    )
    return "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in last.splitlines())


def question(number: int) -> str:
    text = INTERVIEW.read_text()
    found = re.search(rf"^## {number}\. (.+)$", text, flags=re.M)
    assert found, f"question {number} is not in {INTERVIEW}"
    return found.group(1).strip()


@pytest.mark.parametrize("notebook", sorted(EXPECTED))
def test_the_notebook_ends_with_the_question_and_an_answer(notebook):
    text = answer(notebook)
    quoted = re.search(r"^> \*\*Interviewer:\*\*\s*(.+)$", text, flags=re.M)
    assert quoted, f"{notebook}: the interview answer must quote the question as '> **Interviewer:** ...'"
    number = EXPECTED[notebook][0]
    if number is not None and INTERVIEW.is_file():
        assert question(number) in quoted.group(1), f"{notebook}: quote question {number} word for word: {question(number)!r}"
    assert "Where this course differs from the expected answer" in text, f"{notebook}: say where the course differs"
    assert "Follow-ups to expect" in text, f"{notebook}: name the follow-ups an interviewer asks next"


@pytest.mark.parametrize("notebook", sorted(EXPECTED))
def test_every_expected_point_is_covered(notebook):
    text = answer(notebook).lower()
    missing = [point for point, words in EXPECTED[notebook][1].items() if not any(w in text for w in words)]
    assert not missing, f"{notebook}: the interview answer does not cover: {missing}"


@pytest.mark.parametrize("notebook", sorted(EXPECTED))
def test_the_answer_cites_measured_numbers(notebook):
    bullets = [line for line in answer(notebook).splitlines() if line.startswith("- ")]
    with_numbers = [b for b in bullets if re.search(r"\d", b)]
    assert len(bullets) >= 4, f"{notebook}: the model answer has {len(bullets)} bullets; cover every expected point"
    assert len(with_numbers) >= len(bullets) // 2, (
        f"{notebook}: only {len(with_numbers)} of {len(bullets)} bullets cite a number; back the answer with what the notebook measured"
    )


@pytest.mark.parametrize("notebook", ["00_simulator.py", *sorted(EXPECTED)])
def test_experiments_ask_for_a_prediction_first(notebook):
    text = (ROOT / "notebooks" / "src" / notebook).read_text()
    assert "**Predict first:**" in text, f"{notebook}: ask the learner to predict before an experiment ('**Predict first:** ...?')"
