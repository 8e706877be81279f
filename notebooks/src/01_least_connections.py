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
# **Your file:** `exercises/balancer.py`. **Your check:** the cell under *Check your work*.

# %% [markdown]
# ## Why LLM inference is balanced differently
#
# * **Latency varies a hundredfold.** A request generates 10 tokens or 2,000; each output
#   token is one decode step. Counting requests says little about the work they carry.
# * **Concurrency is limited.** A server runs a batch of at most `capacity` sequences at once
#   (its KV cache is finite). Routing past that is not "slower", it is impossible.
# * **Big requests need big GPUs.** A long context needs KV-cache memory that only an
#   80 GB GPU has.
# * **Servers come and go.** Deploys drain servers; a request in flight must finish.
#
# The pictures: output lengths drawn from a log-normal like production traces, and a
# cluster of mixed GPUs whose columns are their batch slots.

# %%
# %matplotlib inline
import numpy as np
from matplotlib.figure import Figure

from solution.core.impl import demo_impl, needs_working_code
from solution.widgets import draw_cluster

demo = demo_impl()  # the reference (in the candidate's bundle: your exercises package)
rng = np.random.default_rng(0)
output_tokens = np.clip(rng.lognormal(mean=5.0, sigma=1.2, size=20_000), 1, 8_000)
seconds = output_tokens * 0.02  # about 20 ms per decode step

fig = Figure(figsize=(5.5, 3))
ax = fig.add_subplot()
ax.hist(seconds, bins=np.logspace(-2, 2.3, 50), color="#4c78a8")
ax.set_xscale("log")
ax.set_xlabel("request latency (s, log scale)")
ax.set_ylabel("requests")
p1, p50, p99 = np.percentile(seconds, [1, 50, 99])
ax.set_title(f"p1 {p1:.2f} s, p50 {p50:.1f} s, p99 {p99:.0f} s: {p99 / p1:.0f}x apart", fontsize=10)
fig.tight_layout()
display(fig)

with needs_working_code():
    cluster = demo.LoadBalancer()
    for sid, cap, mem in [("h100", 6, 80), ("a100-80", 4, 80), ("a100-40", 4, 40), ("a10", 2, 24)]:
        cluster.add_server(sid, cap, mem)
    for i in range(7):
        cluster.route_request(f"r{i}", 300)
    cluster.remove_server("a10")
    display(draw_cluster(cluster.get_server_stats(), title="slots in use (a10 draining)"))

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
# **The routing rule.** A server is *eligible* when it is not draining, has a free slot, and,
# for a large request (`estimated_tokens > 4096`), has at least 80 GB. Pick the eligible
# server with the lowest `current_load / capacity`, compared **exactly** (as fractions).
# A float `load / capacity` is not exact: capacities go up to 2**32, and with a million or so
# requests in flight two different ratios round to the same float. Compare in integers
# (`a/b < c/d` exactly when `a * d < c * b`) or with `fractions.Fraction`.
# Ties: most GPU memory, then most free slots, then the server added earliest. A server that
# was removed and added again under the same id counts as **added last**: its place is that of
# its latest `add_server`.
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
# **Costs.** `complete_request` in O(1), `route_request` in O(log S) for S servers: no scan.

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
    print(lb.route_request("chat-1", 500), "<- both idle: more memory wins")
    print(lb.route_request("chat-2", 500), "<- 0/2 beats 1/4")
    print(lb.route_request("doc-1", 9000), "<- large: only the 80 GB server qualifies")
    lb.remove_server("a100")
    print({sid: (s["current_load"], s["is_draining"]) for sid, s in lb.get_server_stats().items()})

# %% [markdown]
# ## Check your work
#
# The check cell below compares your `LoadBalancer` with the reference's recorded answers, one
# group of rules per line: fixed scenarios, then seeded random sequences of calls. A failure
# shows the smallest sequence of calls where your answer differs and the fields that differ;
# the cell fails exactly when a group fails (what your code prints does not matter). Edit
# your file, then re-run both cells (the first reloads your code).
#
# **What the check and the grader score.** The grader runs these groups too, on hidden cases
# as well (the same rules on calls you have not seen), each group scored on its own:
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
# | `cost: route_request is O(log S), no scan` | the time per call may grow at most 8x from 16 to 4,096 servers (a heap grows about 1.2x, a scan over 100x) |

# %%
from solution.core.impl import load_impl

impl = load_impl(reload=True)  # LB_IMPL picks it; reload=True picks up your latest edits
print(f"implementation under test: {impl.__name__}")

# %% tags=["check-cell"]
from solution.checks import check_stage1

report = check_stage1(impl)

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
# ## Why a heap
#
# The obvious `route_request` scans every server: O(S). With thousands of servers and
# thousands of requests per second, the gateway spends its time scanning. The reference keeps
# the eligible servers in a heap ordered by the rule's key `(load ratio, -memory, -free
# slots, order added)`, so the best server is at the top:
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
# fractions always get different keys. `benchmarks/bench_balancer.py` shows a route+complete
# pair costing about the same at 16 and at 2,048 servers.

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
# Stage 1 throws `RuntimeError` when the cluster is full. Real gateways queue the request and
# push back with `429 Too Many Requests` and a `Retry-After` when the queue is too long:
# that is stage 2. Later stages route by predicted work rather than by count (stage 3),
# survive failing servers (stage 4) and keep conversations on the server that holds their
# KV cache (stage 5).
