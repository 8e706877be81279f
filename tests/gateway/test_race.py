"""The HTTP race end to end: a small seeded workload through a gateway and through HAProxy on the same servers."""

from __future__ import annotations

import pytest

from solution.gateway import procs
from solution.gateway.race import race
from tests.gateway.test_haproxy import require_haproxy

pytestmark = [pytest.mark.stage8, pytest.mark.slow]


def test_a_small_race_answers_every_request_through_both_balancers_and_stops_everything() -> None:
    require_haproxy()
    rows = race(requests=24, load=0.5, strategies=("least_connections",), time_scale=0.5, max_output_tokens=32,
                max_seconds=30.0)  # fmt: skip
    assert [row.label for row in rows] == ["gateway least_connections", "haproxy leastconn"]
    for row in rows:
        assert row.summary.sent == 24 and row.summary.ok == 24, row.line()
        assert sum(row.shares.values()) == 24 and "-" not in row.shares  # every answer names its server
    assert not procs.live_processes()
