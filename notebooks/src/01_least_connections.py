# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Stage 1 · Weighted least-connections with graceful drain
#
# You will build the core of an LLM inference gateway: the part that decides which GPU
# server runs each request. This is the classic interview question, with the twists that
# make LLM serving different from web serving.
#
# **Your file:** `exercises/balancer.py`, in two steps: first a plain scan that gets the
# rules right (*Step 1*), then an index that makes each decision cheap (*Step 2*). Each step
# has its own check cell.

# %% [markdown]
# ## Words used here
#
# * **Slot**, **capacity**: a server runs a batch of at most `capacity` sequences at once
#   (continuous batching); each running request holds one slot.
# * **Load** of a server: its requests in flight (routed, not completed). **Load ratio**:
#   `load / capacity`, the share of its slots in use. *Weighted* least-connections picks the
#   lowest load ratio, so a server with twice the slots takes twice the requests.
# * **Large request**: more than 4,096 estimated tokens (prompt plus expected output).
# * **Eligible**: a server that may take a request: not draining, a free slot, and 80 GB or
#   more of GPU memory for a large request.
# * **Drain**: `remove_server` stops new requests to a server; those in flight finish, then
#   the server leaves. A rolling deployment drains servers one after another.
# * **Late binding**: the gateway holds a request until some server has a free slot (this
#   stage rejects it; stage 2 queues it). **Early binding**: the gateway hands the request to
#   a server at once and it waits in *that server's* queue (notebook 03).

# %% [markdown]
# ## Why LLM inference is balanced differently
#
# * **Latency varies a hundredfold.** A request generates 10 tokens or 2,000; each output
#   token is one decode step. Counting requests says little about the work they carry.
# * **Concurrency is limited.** A server's batch is bounded by its KV-cache memory. With late
#   binding the balancer never sends a server more than `capacity` requests: `capacity` is the
#   gateway's **policy** for how many it may run, and a request that finds no free slot is
#   rejected (here) or queued at the gateway (stage 2). With early binding a server accepts
#   more and queues them itself (notebook 03); the slots still bound what runs at once.
# * **Big requests need room.** A long context needs KV-cache memory; which GPUs may take
#   one is a policy too (next section).
# * **Servers come and go.** Deploys drain servers; a request in flight must finish.
#
# **Predict first:** if each output token takes 20 ms, how far apart are the fastest 1% and
# the slowest 1% of requests?

# %%
# %matplotlib inline
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from solution.core.impl import demo_impl, needs_working_code
from solution.widgets import draw_cluster

demo = demo_impl()  # the reference (in the candidate's bundle: your exercises package)
rng = np.random.default_rng(0)
output_tokens = np.clip(rng.lognormal(mean=5.0, sigma=1.2, size=20_000), 1, 8_000)
seconds = output_tokens * 0.02  # about 20 ms per decode step

fig = Figure(figsize=(6.5, 3.2))
ax = fig.add_subplot()
ordered = np.sort(seconds)
ax.plot(ordered, 100 * np.arange(1, len(ordered) + 1) / len(ordered), color="#4c78a8",
        label="20,000 sampled requests (log-normal output)")
p1, p50, p99 = np.percentile(seconds, [1, 50, 99])
for value, name, style in ((p1, "p1", ":"), (p50, "p50", "--"), (p99, "p99", "-.")):
    ax.axvline(value, color="black", linestyle=style, label=f"{name} = {value:.2f} s")
ax.set_xscale("log")
ax.set_xlabel("request latency (s, log scale)")
ax.set_ylabel("requests at most this slow (%)")
ax.set_title(f"Latency of one request varies {p99 / p1:.0f}x (p1 to p99)", fontsize=10)
ax.legend(fontsize=8, loc="upper left", framealpha=0.95)
fig.tight_layout()
display(fig)
print(f"p1 {p1:.2f} s, p50 {p50:.1f} s, p99 {p99:.0f} s: the p99 is {p99 / p1:.0f}x the p1")

with needs_working_code():
    cluster = demo.LoadBalancer()
    for sid, cap, mem in [("h100", 6, 80), ("a100-80", 4, 80), ("a100-40", 4, 40), ("a10", 2, 24)]:
        cluster.add_server(sid, cap, mem)
    for i in range(7):
        cluster.route_request(f"r{i}", 300)
    cluster.remove_server("a10")
    picture = draw_cluster(cluster.get_server_stats(), title="7 requests on 4 GPUs: one box per slot (a10 draining)")
    picture.axes[0].legend(handles=[Patch(color="#4c78a8", label="slot running a request"),
                                    Patch(color="#e8edf3", label="free slot"),
                                    Patch(facecolor="#b0b0b0", hatch="//", label="draining server")],
                           fontsize=8, loc="upper right")
    display(picture)

# %% [markdown]
# ## How much memory a long context needs
#
# The course's model is a 7B-parameter model in FP16 (`solution.sim.ModelSpec`): its weights
# take 2 bytes per parameter, and each token of context keeps 2 (K and V) x 32 layers x 4,096
# values x 2 bytes of KV cache.
#
# **Predict first:** does one 8,192-token context fit on a 40 GB GPU?

# %%
from solution.sim import GPU_PRESETS, ModelSpec

model = ModelSpec()
GiB = 2**30
weights = model.params * model.bytes_per_param
kv_8k = 8_192 * model.kv_bytes_per_token
print(f"weights: {model.params / 1e9:.0f}e9 params x {model.bytes_per_param:.0f} B = {weights / 1e9:.0f} GB ({weights / GiB:.1f} GiB)")
print(f"KV cache: {model.kv_bytes_per_token / 2**20:.1f} MiB per token; an 8,192-token context: {kv_8k / GiB:.1f} GiB")
for name in ("A10-24GB", "A100-40GB", "A100-80GB"):
    free = GPU_PRESETS[name].memory_gb * GiB - weights
    print(f"{name}: {free / GiB:.1f} GiB left after the weights -> {int(free // kv_8k)} contexts of 8,192 tokens")

# %% [markdown]
# An 8,192-token context fits on a 40 GB GPU, several times over (the lines above). So "more
# than 4,096 tokens needs 80 GB" is not a law of the hardware: it is a **policy** (the
# interview's), which keeps long contexts on the GPUs with room for many of them, so that one
# long request does not shrink a small GPU's batch to a handful of sequences. Both thresholds
# are the constructor's parameters.

# %% [markdown]
# ## The task
#
# Implement `LoadBalancer` in `exercises/balancer.py`:
#
# | method | does |
# |---|---|
# | `LoadBalancer(*, large_request_tokens=4096, large_request_min_memory_gb=80)` | thresholds for *large* requests |
# | `add_server(server_id, capacity, gpu_memory_gb)` | a new server; `ValueError` if the id is present (a draining one included) |
# | `remove_server(server_id)` | **graceful drain**: no new requests from now on; it disappears with its last in-flight request (at once if idle); again while draining: no-op; `KeyError` if unknown |
# | `route_request(request_id, estimated_tokens) -> server_id` | `ValueError` if the id is in flight; `RuntimeError` if no eligible server has a free slot (and nothing is recorded) |
# | `complete_request(request_id)` | frees the slot, may finish a drain; `KeyError` if unknown |
# | `get_server_stats()` | `{id: {capacity, current_load, gpu_memory_gb, load_ratio, is_draining, active_requests}}`, a copy |
#
# **The routing rule.** Pick the eligible server with the lowest `current_load / capacity`,
# compared **exactly** (as fractions). A float `load / capacity` is not exact: capacities go up
# to 2**32, and with a million or so requests in flight two different ratios round to the same
# float. Compare in integers (`a/b < c/d` exactly when `a * d < c * b`) or with
# `fractions.Fraction`.
#
# **The tie-break** (equal load ratios): most GPU memory, then most free slots, then the server
# added earliest. A server that was removed and added again under the same id counts as
# **added last**: its place is that of its latest `add_server`. This tie-break is the
# **specification** (the interview's rubric), not the best rule: a section below measures it
# against the alternative.
#
# **The stats.** `load_ratio` is a **float**: `current_load / capacity` as a float, e.g.
# `float(Fraction(load, capacity))` (`0.25`, never a `Fraction`: the snapshot is compared with
# the reference's, and `Fraction(1, 6) == 1 / 6` is `False`). It is for reading only: keep
# comparing exactly when routing. Servers are listed in the order they were added, and each
# server's `active_requests` in the order they were routed.
#
# **Errors.** Raise the classes in `solution.core.errors` (already imported in your file):
# `NoCapacityError` is a `RuntimeError`, `DuplicateServerError`/`DuplicateRequestError`
# are `ValueError`s, `UnknownServerError`/`UnknownRequestError` are `KeyError`s. Wrong
# types raise `TypeError` (`True` is not an int here), empty ids and numbers below 1 raise
# `ValueError`: `solution.core.validate` has helpers. **A failed call changes nothing.**
# Each message quotes the offending id as `repr` writes it and says what to do, in at least
# six words: `f"request {request_id!r} is already in flight; complete it first or use a new id"`
# gives `request 'r1' is already in flight; ...`. The tests look for `'r1'`, quotes included,
# in the messages of the duplicate and unknown server and request errors, and for the request
# id in `NoCapacityError`'s.
#
# **Costs.** `complete_request` in O(1); `route_request` in O(log S) for S servers in the end
# (Step 2). Step 1 may scan.

# %% [markdown]
# ## The reference at work
#
# `LB_IMPL` picks the implementation this notebook tests: `exercises` (yours, the default)
# or `solution` (the reference). Here is the reference on a two-server cluster:

# %%
with needs_working_code():
    lb = demo.LoadBalancer()
    lb.add_server("a100", capacity=4, gpu_memory_gb=80)
    lb.add_server("a10", capacity=2, gpu_memory_gb=24)
    print(lb.route_request("chat-1", 500), "<- both idle (0/4 and 0/2 tie): more memory wins")
    print(lb.route_request("chat-2", 500), "<- 0/2 beats 1/4")
    print(lb.route_request("doc-1", 9000), "<- large: only the 80 GB server qualifies")
    lb.remove_server("a100")
    print({sid: (s["current_load"], s["is_draining"]) for sid, s in lb.get_server_stats().items()})

# %% [markdown]
# ## What the check and the grader score
#
# The check cells compare your `LoadBalancer` with the reference's recorded answers, one group
# of rules per line: fixed scenarios, then seeded random sequences of calls. A failure shows the
# smallest sequence of calls where your answer differs and the fields that differ; a cell fails
# exactly when a group fails (what your code prints does not matter). The grader runs these
# groups too, on hidden cases as well (the same rules on calls you have not seen), each group
# scored on its own:
#
# | rule group | what it requires |
# |---|---|
# | `lowest load ratio, compared exactly` | the eligible server with the lowest `current_load / capacity`, compared exactly: a float comparison fails a case where two ratios differ but round to the same float (3.2 million routes, about 6 s) |
# | `tie-breaks: memory, then free slots, then order added` | equal ratios go to the most GPU memory, then the most free slots, then the server added earliest (a re-added server counts as added last) |
# | `large requests (> 4096 tokens) need >= 80 GB` | a request of more than 4,096 tokens only goes to a server with at least 80 GB |
# | `capacity: full servers skipped, NoCapacityError, no trace left` | a full server is never chosen; with no eligible server, `NoCapacityError` and the state unchanged |
# | `graceful drain` | a draining server takes nothing new, keeps its requests, and disappears with its last completion (at once when idle); removing it again does nothing; its id stays taken (a duplicate) until it has disappeared |
# | `completion and the stats snapshot` | `complete_request` frees the slot; `get_server_stats()` shows every server in the order added, every field (`load_ratio` a float), and `active_requests` in the order routed |
# | `bad input: right exception, state unchanged` | wrong types `TypeError`, bad values `ValueError`, unknown ids `KeyError`, duplicates `ValueError`, and a failed call changes nothing |
# | `error messages: quote the id, say what to do` | the message of a duplicate or unknown server or request, and of `NoCapacityError`, quotes the id as `repr` writes it (`'r1'`) and has at least six words saying what to do (elsewhere only the kind of an error counts) |
# | `random operations against the reference (seeded)` | every rule at once, on seeded random sequences |
# | `cost: route_request is O(log S), no scan` | Step 2: the time per call may grow at most 8x from 16 to 4,096 servers (a heap grows a little, a scan over 20x) |

# %% [markdown]
# ## Step 1: a plain scan
#
# Get the rules right first. `route_request` loops over every server, skips the ineligible
# ones, and keeps the best by the rule: lowest ratio (cross-multiply), then most memory, then
# most free slots, then added earliest. That is O(S) per route, and it passes every group above
# except the cost. Keep the servers in a `dict` (it remembers the order of addition) and each
# request's server in another, so `complete_request` is O(1).
#
# The check below runs the behaviour groups only (`BEHAVIOUR`: every group but the cost).
# Edit your file, then re-run both cells (the first reloads your code).

# %%
from solution.checks import check_stage1
from solution.checks.stage1 import BEHAVIOUR, COST
from solution.core.impl import load_impl

impl = load_impl(reload=True)  # LB_IMPL picks it; reload=True picks up your latest edits
print(f"implementation under test: {impl.__name__}")

# %% tags=["check-cell"]
report = check_stage1(impl, only=BEHAVIOUR)

# %% [markdown]
# ## The tie-break: the spec against best-fit
#
# The spec breaks a tie by **most memory first**, so a small request that ties goes to a big
# GPU, and takes a slot that only a big GPU can give a large request. That is the wrong way
# round for the large requests. **Best-fit** breaks the tie the other way: the least memory
# that fits the request (`solution.sim.fit.BestFit`, a strategy for the course's router; the
# load ratio still comes first). Its price: in this fleet the big-memory GPUs are also the
# fast ones, so the small requests it keeps off them run slower.
#
# The race: eight GPUs (two each of A10 24 GB, A100 40 GB, A100 80 GB, H100 80 GB) with 8
# slots each, so that equal loads tie; long documents (large requests) are a share of 0.2 of
# the traffic; offered load 0.9; no queue (a request that finds no eligible slot is rejected);
# 20 seeds. Both rules see the same traffic on each seed, so each difference comes with a
# **paired** 95% interval.
#
# **Predict first:** how much does best-fit cut the rejections of large requests, and what
# does it cost the small ones? With a queue at the gateway, do the large requests wait less?

# %%
from solution.core.queue_types import QueuePolicy
from solution.sim.fit import compare_tie_breaks, tie_break_scenario
from solution.sim.queueing import QueueConfig

with needs_working_code():
    tie = compare_tie_breaks(tie_break_scenario(requests=6_000, load=0.9, large_share=0.2), seeds=range(20))
    fig = Figure(figsize=(7.5, 3.2))
    left, right = fig.subplots(1, 2)
    for ax, metrics, unit, scale in ((left, ("large_rejection_rate", "small_rejection_rate"), "% of requests", 100),
                                     (right, ("e2e_p50",), "s", 1)):
        for k, (name, color) in enumerate((("spec", "#4c78a8"), ("best-fit", "#f58518"))):
            means = [tie.race.interval(name, m) for m in metrics]
            x = np.arange(len(metrics)) + (k - 0.5) * 0.38
            ax.bar(x, [m[0] * scale for m in means], width=0.38, color=color, label=f"{name} (95% interval)",
                   yerr=[[(m[0] - m[1]) * scale for m in means], [(m[2] - m[0]) * scale for m in means]], capsize=3)
        ax.set_xticks(range(len(metrics)), [m.replace("_rejection_rate", " rejected").replace("e2e_p50", "median e2e") for m in metrics])
        ax.set_ylabel(f"mean over 20 seeds ({unit})")
        ax.legend(fontsize=8, loc="upper right")
    right.set_xlim(-1, 1)
    right.set_ylim(0, 1.4 * tie.race.interval("best-fit", "e2e_p50")[0])
    left.set_title("Best-fit rejects fewer large requests, more small", fontsize=10)
    right.set_title("and small requests run on slower GPUs", fontsize=10)
    fig.tight_layout()
    display(fig)
    for m, what in (("large_rejection_rate", "large requests rejected"), ("small_rejection_rate", "small requests rejected"),
                    ("rejection_rate", "all requests rejected")):
        d, lo, hi = tie.race.difference("best-fit", "spec", m)
        print(f"{what}: spec {tie.race.interval('spec', m)[0]:.1%}, best-fit {tie.race.interval('best-fit', m)[0]:.1%} "
              f"(paired difference {d:+.1%}, 95% interval [{lo:+.1%}, {hi:+.1%}])")
    for m in ("e2e_p50", "e2e_p99"):
        d, lo, hi = tie.race.difference("best-fit", "spec", m)
        print(f"{m}: spec {tie.race.interval('spec', m)[0]:.2f} s, best-fit {tie.race.interval('best-fit', m)[0]:.2f} s "
              f"(paired difference {d:+.2f} s [{lo:+.2f}, {hi:+.2f}])")
    queued = compare_tie_breaks(tie_break_scenario(requests=6_000, load=0.9, large_share=0.2).with_queue(QueueConfig(QueuePolicy())),
                                seeds=range(20))
    rejected = sum(run.rejected for runs in queued.race.summaries.values() for run in runs)
    print(f"with a FIFO queue at the gateway (stage 2): {rejected} requests rejected in {2 * len(queued.race.seeds)} runs")
    for m, what in (("large_wait_mean", "large requests' mean wait"), ("small_wait_mean", "small requests' mean wait")):
        d, lo, hi = queued.race.difference("best-fit", "spec", m)
        print(f"  {what}: spec {queued.race.interval('spec', m)[0]:.3f} s, best-fit {queued.race.interval('best-fit', m)[0]:.3f} s "
              f"(paired difference {d:+.3f} s [{lo:+.3f}, {hi:+.3f}])")

# %% [markdown]
# Read the lines above: best-fit cuts the large requests' rejections (9.1% to 5.5%), and pays
# for it in more small-request rejections (1.8% to 3.9%), more rejections overall, and a slower
# median (+0.08 s), because the small requests it keeps off the big GPUs run on the A10s, the
# slowest GPUs here. With a queue at the gateway (the last lines) nothing is rejected, and
# best-fit's gain is gone: the large requests wait longer too (0.131 s to 0.146 s on average),
# because the whole fleet is slower with the small requests on the A10s. Neither rule wins
# everywhere: the spec serves the common small requests fastest; best-fit protects the rare
# large ones, and only where they would otherwise be turned away. Which matters more is a product decision (a
# service that sells long contexts would protect them). This course keeps the spec, because it
# is what the interview grades.

# %% [markdown]
# ## Step 2: why a heap
#
# The scan looks at every server on every route: O(S). With thousands of servers and thousands
# of requests per second, the gateway spends its time scanning. The reference keeps the
# eligible servers in a heap ordered by the rule's key `(load ratio, -memory, -free slots,
# order added)`, so the best server is at the top:
#
# * one heap for big-memory GPUs, one for the rest: a large request looks at the first only,
#   others compare the two tops;
# * entries are invalidated **lazily**: when a server's load changes, its old entry stays in
#   the heap and is recognised as stale (its load no longer matches) when it reaches the top;
# * `complete_request` only marks the server dirty (O(1)); the next route pushes its fresh
#   entry, so `route_request` is O(log S) amortized.
#
# Exact ratios without `Fraction` (whose comparisons run in Python): the key
# `load * 2**64 // capacity` is an integer, and for capacities up to 2**32 two different
# fractions always get different keys.
#
# **Predict first:** from 16 to 4,096 servers, by how much does the time of a route grow with
# the heap?

# %%
from solution.checks.cost import measure, verdict

with needs_working_code():
    cost_ok, cost_text = verdict(measure(demo, {"kind": "balancer"}))
    print(f"{demo.__name__}.LoadBalancer: {cost_text}")

# %% [markdown]
# The number varies a little from run to run (it is a timing); the check allows up to 8x. Now
# turn your scan into the index, and run the cost check:

# %% tags=["check-cell"]
impl = load_impl(reload=True)  # your latest edits
report = check_stage1(impl, only=COST)

# %% [markdown]
# ## Play with it
#
# Route requests of a chosen size, complete them, drain and add servers. The picture shows
# the reference's cluster; the orange outline is the server the rule picks for the size on
# the slider, and the table ranks every server. Each action also runs on your balancer, and
# a different answer is flagged **MISMATCH**. While your file is still a stub the widget runs
# on the reference alone.

# %% tags=["nbval-ignore-output"]
from solution.widgets import ClusterPlayground

ClusterPlayground(impl)

# %% [markdown]
# ## Draining in a rolling deployment
#
# A deployment replaces every server with a new version. Three ways to do it on four A100s
# (8 slots each, offered load 0.8, no queue, 10 seeds), each old server drained with
# `remove_server` and replaced 30 s later (the time a new replica takes to start):
#
# * **all at once**: drain the four at the same moment;
# * **one at a time**: drain one, replace it, and start the next 50 s later (after the
#   longest drain, printed below);
# * **replacement first**: start the new server, then drain the old one (pre-warming).
#
# **Predict first:** does any of them lose a request that was in flight? Which rejects the
# fewest new requests?

# %%
from solution.sim import AddServer, Cluster, Outcome, RemoveServer, Scenario, ServerSpec, scenarios, simulate
from solution.sim.race import least_connections
from solution.sim.theory import mean_confidence_interval

START = 30.0  # seconds a new replica takes before it can serve


def rollout(kind: str) -> Scenario:
    """Four A100s (8 slots) under steady traffic, replaced by new ones as ``kind`` says."""
    base = scenarios.steady(servers=4, load=0.8, requests=6_000)
    events = []
    for k in range(4):
        new = ServerSpec(f"new-{k}", "A100-80GB", 8)
        at = 60.0 if kind == "all at once" else 60.0 + 50.0 * k
        if kind == "replacement first":
            events += [AddServer(at, new), RemoveServer(at + START, f"gpu-{k}")]
        elif kind != "no deployment":
            events += [RemoveServer(at, f"gpu-{k}"), AddServer(at + START, new)]
    return Scenario(Cluster.uniform(4, capacity=8), base.workload, load=0.8, name=kind,
                    timetable=tuple(sorted(events, key=lambda e: e.at)))


def drain_stats(res, scenario) -> tuple[int, int, float]:
    """Drains, in-flight requests at a drain that did not complete, and the longest drain (s)."""
    drained, lost, longest = 0, 0, 0.0
    for event in scenario.timetable:
        if isinstance(event, RemoveServer):
            on = (res.server == res.server_ids.index(event.server)) & (res.start < event.at)
            in_flight = on & (res.finish > event.at)
            drained += 1
            lost += int(np.count_nonzero(in_flight & (res.outcome != Outcome.COMPLETED)))
            longest = max(longest, float(res.finish[on].max() - event.at))
    return drained, lost, longest


with needs_working_code():
    drains, baseline = {}, None
    for kind in ("no deployment", "all at once", "one at a time", "replacement first"):
        scenario = rollout(kind)
        runs = [simulate(scenario, least_connections(), seed=s) for s in range(10)]  # same traffic per seed
        rejected = [r.count(Outcome.REJECTED) for r in runs]
        baseline = baseline or rejected
        drained, lost, longest = (sum(x) if k < 2 else max(x) for k, x in enumerate(zip(*(drain_stats(r, scenario) for r in runs))))
        extra = mean_confidence_interval([a - b for a, b in zip(rejected, baseline)]) if drained else None
        drains[kind] = (mean_confidence_interval(rejected), drained, lost, longest, extra)
        mean, lo, hi = drains[kind][0]
        print(f"{kind:<18} rejected {mean:5.1f} of 6,000 [{lo:.1f}, {hi:.1f}]" + (
            f"; vs no deployment {extra[0]:+.1f} [{extra[1]:+.1f}, {extra[2]:+.1f}] (paired); "
            f"{drained} drains, {lost} in-flight requests lost, longest drain {longest:.1f} s" if drained else ""))
    print(f"95% intervals over 10 seeds; all rollouts: {sum(d[1] for d in drains.values())} drains, "
          f"{sum(d[2] for d in drains.values())} in-flight requests lost")

# %% [markdown]
# No drain loses a request in flight (0 in 120 drains, above): each drained server finished its
# requests and left, within 20.4 s at most. What differs is the capacity left while it drains.
# All at once removes every slot and rejects the most (447 of 6,000, +278 against no
# deployment, paired); one at a time keeps three of the four servers serving (312, +144);
# starting the replacement first never lowers the capacity, and since the new server overlaps
# the old one for 30 s it even rejects fewer than no deployment at all (139, -30).

# %% [markdown]
# ## Thread safety
#
# A gateway serves many connections at once. Two races break a balancer shared by threads:
#
# 1. **Two routes read the same load.** Threads A and B both see one free slot on `h100`, both
#    pick it, both record a request: `h100` runs `capacity + 1` sequences and runs out of
#    KV-cache memory.
# 2. **A completion races a drain.** `remove_server` sees one request in flight and marks the
#    server draining, while `complete_request` removes that request but read `is_draining`
#    before it was set: nobody deletes the now idle server, and it lingers forever.
#
# The fix: make each call atomic. `solution.Synchronized(balancer)` holds one lock around
# every call (each is O(log S), so the lock is never the bottleneck); it wraps your balancer
# too. The stage-1 tests run eight threads routing and completing while another drains and
# re-adds servers, and check that no server ever exceeds its capacity and every request
# completes exactly once.

# %%
from concurrent.futures import ThreadPoolExecutor

from solution import Synchronized


def burst(worker: int) -> int:
    served = 0
    for n in range(2_000):
        rid = f"w{worker}-{n}"
        try:
            shared.route_request(rid, 100)
        except RuntimeError:
            continue
        shared.complete_request(rid)
        served += 1
    return served


with needs_working_code():
    shared = Synchronized(demo.LoadBalancer())
    for i in range(4):
        shared.add_server(f"gpu-{i}", capacity=8, gpu_memory_gb=80)
    with ThreadPoolExecutor(max_workers=8) as pool:
        total = sum(pool.map(burst, range(8)))
    print(f"{total} requests routed and completed by 8 threads; loads now:",
          {sid: s["current_load"] for sid, s in shared.get_server_stats().items()})

# %% [markdown]
# ## What comes next
#
# Stage 1 rejects a request when the cluster is full (`NoCapacityError`). Real gateways queue
# it and push back when the queue is too long: that is stage 2. Later stages route by
# predicted work rather than by count (stage 3), survive failing servers (stage 4) and keep
# conversations on the server that holds their KV cache (stage 5).
#
# The figures the interview answer below cites, in one place:

# %%
with needs_working_code():
    missing = [name for name in ("cost_text", "tie", "queued", "drains", "total") if name not in globals()]
    if missing:
        raise NotImplementedError(f"Stage 1: {', '.join(missing)} come from cells that need your LoadBalancer; not implemented yet")
    print(f"cost (Step 2): {cost_text}")
    for m, what in (("large_rejection_rate", "large rejected"), ("small_rejection_rate", "small rejected")):
        d, lo, hi = tie.race.difference("best-fit", "spec", m)
        print(f"tie-break, {what}: spec {tie.race.interval('spec', m)[0]:.1%} -> best-fit "
              f"{tie.race.interval('best-fit', m)[0]:.1%} ({d:+.1%} [{lo:+.1%}, {hi:+.1%}])")
    d, lo, hi = tie.race.difference("best-fit", "spec", "e2e_p50")
    print(f"tie-break, median e2e: best-fit {d:+.2f} s [{lo:+.2f}, {hi:+.2f}] slower")
    d, lo, hi = queued.race.difference("best-fit", "spec", "large_wait_mean")
    print(f"tie-break with a gateway queue, large requests' mean wait: best-fit {d:+.3f} s [{lo:+.3f}, {hi:+.3f}]")
    for kind, ((mean, lo, hi), drained, lost, longest, extra) in drains.items():
        print(f"rollout {kind}: {mean:.0f} rejected" + (f", {extra[0]:+.0f} [{extra[1]:+.0f}, {extra[2]:+.0f}] vs no deployment, "
              f"{lost} of the requests in flight at {drained} drains lost, longest drain {longest:.1f} s" if drained else ""))
    print(f"8,192-token context: {kv_8k / GiB:.1f} GiB of KV cache; a 40 GB GPU holds {int((40 * GiB - weights) // kv_8k)} of them")
    print(f"threads: {total} requests routed and completed by 8 threads")

# %% [markdown]
# ## The interview answer
#
# > **Interviewer:** Design a load balancer for a pool of GPU inference servers: route each request to the least-loaded server relative to its capacity, respect GPU memory for large requests, and let a server be drained without dropping in-flight requests. Then: How would you implement graceful server drain for rolling deployments?
#
# - **Weighted least-connections**: route to the eligible server with the lowest load ratio `load / capacity`, compared exactly as fractions (cross-multiply), never as floats, so a server with 2x the slots takes 2x the requests; a full server is skipped, and with none left the request is rejected (stage 2 queues it instead).
# - **GPU memory for large requests**: a request over 4,096 tokens only goes to a GPU with 80 GB or more; say that this is a policy, not physics: an 8,192-token context needs 4.0 GiB of KV cache and a 40 GB GPU holds 6 of them (*How much memory a long context needs*).
# - **Ties** (the spec): most memory, then most free slots, then added earliest; measured against best-fit on 20 paired seeds (*The tie-break*), best-fit would cut large-request rejections from 9.1% to 5.5% but raise small-request rejections from 1.8% to 3.9% and the median latency by 0.08 s; with a queue at the gateway its gain is gone (large requests wait 0.016 s longer on average).
# - **Cost of a decision**: a heap of eligible servers keyed by the rule (lazy invalidation, one heap for the 80 GB GPUs) makes a route O(log S) and a completion O(1); from 16 to 4,096 servers the time per route grows by the factor *Step 2* prints (a timing, so it varies from run to run; well under the check's 8x limit), where a scan grows over 20x.
# - **Thread safety**: one lock around each call (`Synchronized`): 8 threads routed and completed 16000 requests with every load back to 0 (*Thread safety*).
# - **Graceful drain**: `remove_server` stops new traffic at once; the in-flight requests finish and the server leaves with the last of them: 0 in-flight requests lost in 120 simulated drains, the longest drain 20.4 s, the time its longest request still needed (*Draining in a rolling deployment*).
# - **Rolling deployments**: drain one at a time (or in small batches), waiting for each drain to finish before the next: of 6,000 requests, all at once rejected 447 (+278 against no deployment, paired over 10 seeds), one at a time 312 (+144), and starting the replacement first (pre-warming) 139 (-30: five servers serve while the old one drains).
#
# **Where this course differs from the expected answer:** the tie-break. The rubric's "most
# memory first" is kept because it is the spec, but its usual reason (big GPUs can take the
# large requests) argues for the opposite rule: best-fit keeps big-GPU slots for large
# requests, at the price measured above. And the 4,096-token threshold is a policy, not a
# hardware limit.
#
# **Follow-ups to expect:**
# 1. *What if a drain never finishes?* A drain timeout: after N minutes cancel what is left and
#    let the clients retry (question 6's next point).
# 2. *What when every server is full?* Queue at the gateway with a bounded depth, and beyond it
#    answer 503 with `Retry-After` (stage 2).
# 3. *Why not count tokens instead of requests?* A long generation holds its slot far longer
#    than a short one; stage 3 routes by predicted work.
