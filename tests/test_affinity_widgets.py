"""Stage 5's widgets and figures: they build, the measurements follow their formulas, the ring is the strategy's ring.

The figures are held to the course's figure rule (``tests/sim/test_figures.py``'s
:func:`figure_problems`); the per-turn breakdown is checked on a hand-built
workload, the ring's walk against its bound and against ``BoundedLoadHash``
itself, and migration against its closed form.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from solution.core.request import Request
from solution.core.routing import Router
from solution.sim.gpus import ModelSpec, gpu_preset
from solution.widgets import affinity as aw
from tests.sim.test_figures import figure_problems

pytestmark = pytest.mark.meta


def _readable(fig) -> None:
    fig.savefig(io.BytesIO(), format="png")  # layout engines run at draw time
    assert figure_problems(fig) == []


# -- why KV reuse matters -------------------------------------------------------------------------


def test_turn_breakdown_counts_the_resent_conversation():
    # session 0: three turns; session 1: one turn; then a request outside any session
    session = np.array([0, 0, 0, 1, -1])
    prompt = np.array([100, 350, 700, 80, 50])
    output = np.array([200, 300, 10, 5, 5])
    b = aw.turn_breakdown(session, prompt, output, max_turn=3)
    assert list(b.turn) == [1, 2, 3] and list(b.count) == [3, 1, 1]
    assert b.at(1) == (3, pytest.approx((100 + 80 + 50) / 3), 0.0)
    assert b.at(2) == (1, 350.0, 300.0)  # turn 1's prompt + answer: 100 + 200
    assert b.at(3) == (1, 700.0, 650.0)  # 350 + 300
    with pytest.raises(ValueError):
        b.at(4)


def test_turn_breakdown_caps_the_reusable_part_at_the_prompt():
    b = aw.turn_breakdown(np.array([3, 3]), np.array([1_000, 600]), np.array([500, 1]), max_turn=2)
    assert b.at(2)[2] == 600.0  # a context truncated to 600 tokens reuses at most 600


def test_turn_breakdown_refuses_misaligned_input():
    with pytest.raises(ValueError):
        aw.turn_breakdown(np.array([0, 0]), np.array([1]), np.array([1, 2]))
    with pytest.raises(ValueError):
        aw.turn_breakdown(np.array([0]), np.array([1]), np.array([1]), max_turn=0)


def test_the_reuse_figure_is_readable():
    b = aw.turn_breakdown(np.array([0, 0, 0, 1, 1]), np.array([100, 400, 900, 50, 300]), np.array([200, 300, 5, 200, 1]), max_turn=3)
    models = {g: ModelSpec().latency_model(gpu_preset(g)) for g in ("A100-80GB", "H100-80GB")}
    _readable(aw.kv_reuse_figure(b, models))


# -- KV migration ---------------------------------------------------------------------------------


def test_the_migration_figure_titles_give_the_break_even_and_draw_each_link():
    from solution.sim.gpus import model_preset
    from solution.sim.kvcache import break_even_gb_s

    gpu = gpu_preset("A100-80GB")
    fig = aw.migration_figure(gpu)
    for ax, name in zip(fig.axes, ("7B FP16", "Llama-3.1-8B")):
        assert f"break-even {break_even_gb_s(model_preset(name), gpu):.1f} GB/s" in ax.get_title()
        labels = [line.get_label() for line in ax.get_lines()]
        assert sum(label.startswith("move the cache: ") for label in labels) == len(aw.MIGRATION_LINKS)


def test_the_migration_figure_is_readable():
    _readable(aw.migration_figure(gpu_preset("A100-80GB")))


# -- the ring -------------------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.1, 0.25, 1.0])
def test_no_server_ever_exceeds_the_bound(epsilon):
    servers = [f"s{i}" for i in range(5)]
    keys = [f"k{i}" for i in range(200)]
    got = aw.bounded_load_assign(keys, servers, epsilon=epsilon, vnodes=10)
    assert sum(got.load.values()) == sum(got.plain_load.values()) == 200
    assert max(got.load.values()) <= math.ceil((1 + epsilon) * 200 / 5) == got.bound
    assert got.moved == sum(a != b for a, b in zip(got.first, got.server))


def test_without_a_bound_it_is_plain_consistent_hashing():
    servers = ["a", "b", "c"]
    got = aw.bounded_load_assign([f"k{i}" for i in range(60)], servers, epsilon=math.inf, vnodes=4)
    assert got.moved == 0 and dict(got.load) == dict(got.plain_load)
    ring = aw.ring_points(servers, 4)
    for key, pos, sid in zip(got.keys, got.position, got.server):
        after = [s for p, s in ring if p >= pos]
        assert sid == (after[0] if after else ring[0][1])  # the first point clockwise, wrapping


def test_removing_a_server_moves_only_its_keys_under_plain_hashing():
    keys = [f"k{i}" for i in range(500)]
    before = aw.bounded_load_assign(keys, ["a", "b", "c", "d"], epsilon=math.inf, vnodes=20)
    after = aw.bounded_load_assign(keys, ["a", "b", "c"], epsilon=math.inf, vnodes=20)
    assert all(x == y for x, y in zip(before.server, after.server) if x != "d")


def test_the_ring_refuses_bad_input():
    for kwargs in ({"servers": [], "vnodes": 3}, {"servers": ["a", "a"], "vnodes": 3}, {"servers": ["a"], "vnodes": 0},
                   {"servers": ["a"], "vnodes": True}):  # fmt: skip
        with pytest.raises(ValueError):
            aw.ring_points(**kwargs)
    with pytest.raises(ValueError):
        aw.bounded_load_assign(["k"], ["a"], epsilon=0.0)


def test_the_picture_places_keys_where_bounded_load_hash_sends_them():
    from solution.affinity import BoundedLoadHash

    servers = ("gpu-0", "gpu-1", "gpu-2", "gpu-3")
    got = aw.bounded_load_assign([f"session-{i}" for i in range(40)], servers, epsilon=0.25, vnodes=3)
    router = Router(BoundedLoadHash(epsilon=0.25, vnodes=3))
    for sid in servers:
        router.add_server(sid, 64, 80)
    routed = [router.route(Request(f"r{i}", 1_000, 800, session_id=f"session-{i}")) for i in range(40)]
    assert routed == list(got.server)
    assert got.moved > 0  # the bound bit: the comparison covered the walk, not only the first point


def test_the_ring_figure_is_readable():
    _readable(aw.ring_figure())
    _readable(aw.ring_figure(keys=40, epsilon=math.inf, vnodes=5, hot="session-3"))


def test_turn_breakdown_follows_interleaved_sessions_and_their_blocks():
    # two sessions interleaved in time; with blocks, the reusable part is the shared leading blocks x 512
    session = np.array([5, 9, 5, 9, 5])
    prompt = np.array([600, 1_100, 1_500, 1_200, 2_000])
    output = np.array([10, 10, 10, 10, 10])
    hashes = [[1, 2], [7, 8, 9], [1, 2, 3], [7, 4, 5], [1, 2, 3, 6]]
    offsets = np.cumsum([0] + [len(h) for h in hashes])
    b = aw.turn_breakdown(session, prompt, output, max_turn=3, blocks=(offsets, np.concatenate([np.array(h) for h in hashes])))
    assert list(b.count) == [2, 2, 1]
    assert b.at(2) == (2, 1_350.0, (2 * 512 + 1 * 512) / 2)  # session 5 shares blocks 1, 2; session 9 only block 7
    assert b.at(3) == (1, 2_000.0, 1_536.0)  # three shared blocks, below the 2,000-token prompt


# -- the race's figures and the widget --------------------------------------------------------------


def test_the_occupancy_figure_hides_what_lies_after_the_play_head():
    t = np.linspace(0.0, 100.0, 11)
    occupancy = np.tile(np.arange(11)[:, None] * 10, (1, 3))
    load = np.ones((11, 3))
    fig = aw.occupancy_figure(t, occupancy, np.array([100, 100, 200]), load, ["a", "b", "c"], now=40.0)
    _readable(fig)
    cache_ax = fig.axes[0]
    (a_line,) = [line for line in cache_ax.get_lines() if line.get_label() == "a"]
    assert max(a_line.get_xdata()) == 40.0 and a_line.get_ydata()[-1] == pytest.approx(0.4)  # 40 of 100 blocks at t = 40
    (c_line,) = [line for line in cache_ax.get_lines() if line.get_label() == "c"]
    assert c_line.get_ydata()[-1] == pytest.approx(0.2)  # a fraction of each server's own capacity


def _explorer():
    return aw.AffinityExplorer()


def test_the_explorer_reruns_on_every_control_and_answers_well_under_a_second():
    import statistics
    import time

    w = _explorer()
    assert bytes(w.image.value[:4]) == b"\x89PNG" and "hit rate" in w.summary.value
    seconds = []
    for control, value in ((w.policy, "hard"), (w.policy, "bounded"), (w.slack, 0.5), (w.policy, "prefix"), (w.policy, "none"),
                           (w.ttl, 30.0), (w.cache, w.cache.options[0]), (w.load, 0.9), (w.policy, "soft"), (w.slack, 1.0)):  # fmt: skip
        before = w.record
        started = time.perf_counter()
        control.value = value
        seconds.append(time.perf_counter() - started)
        assert w.record is not before, f"{control.description} = {value!r} did not re-run"
        assert "hit rate" in w.summary.value
    median = statistics.median(seconds)
    print(f"AffinityExplorer: median {median * 1000:.0f} ms per control change (max {max(seconds) * 1000:.0f} ms, {len(seconds)} changes)")
    assert median < 1.0


def test_the_explorer_play_head_redraws_without_rerunning():
    w = _explorer()
    run, image = w.record, w.image.value
    w.at.value = 30
    assert w.record is run and w.image.value != image


def test_a_smaller_cache_never_hits_more_in_the_explorer():
    w = _explorer()
    full = w.record.metrics["hit_rate"]
    w.cache.value = w.cache.options[0]
    assert w.record.metrics["hit_rate"] <= full + 1e-9
    assert np.all(np.asarray(w.record.occupancy) <= np.asarray(w.record.capacity_blocks)[None, :])


def test_the_explorer_says_what_to_implement_when_a_stub_stands_in_the_way(monkeypatch):
    import solution.sim.affinityrace as race

    def stub(*args, **kwargs):
        raise NotImplementedError("Stage 5: SessionAffinity.__init__ is not implemented yet")

    monkeypatch.setattr(race, "affinity_run", stub)
    w = aw.AffinityExplorer()
    assert w.record is None and "Stage 5" in w.summary.value and w.image.value == b""


def test_the_race_figure_names_every_policy_and_draws_the_ceiling():
    from solution.sim.affinityrace import Policy, affinity_race

    result = affinity_race("synthetic", policies=(Policy("none"), Policy("hard")), seeds=range(2), requests=300, workers=0)
    fig = aw.race_figure(result)
    _readable(fig)
    hit_ax = fig.axes[0]
    assert [t.get_text() for t in hit_ax.get_yticklabels()] == list(result.policies)
    per_seed = [h / r for h, r in zip(result.values["no affinity"]["hit_rate"], result.values["no affinity"]["ceiling_ratio"])]
    assert aw.mean_ceiling(result) == pytest.approx(np.mean(per_seed))
    assert per_seed[0] == pytest.approx(result.ceiling)  # seed 0's is the one the table's header gives
    assert any(line.get_label().startswith("ceiling") and line.get_xdata()[0] == aw.mean_ceiling(result) for line in hit_ax.get_lines())
    assert "2 seeds" in hit_ax.get_legend().get_texts()[-1].get_text()


def test_the_pileup_figure_draws_each_server_and_the_mean():
    from solution.sim.affinityrace import affinity_run, pileup_scenario

    run = affinity_run("hard", scenario=pileup_scenario(requests=300), seed=1)
    fig = aw.pileup_figure({"hard": run})
    _readable(fig)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == [*run.server_ids, "mean over servers"]
