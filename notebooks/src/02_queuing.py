# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Stage 2 · Request queuing and backpressure
#
# When every server is full, the stage-1 balancer raises `NoCapacityError` and the request is
# lost. A real gateway makes it wait in a queue instead, serves it when a slot frees, and
# pushes back with **429 Too Many Requests** and a `Retry-After` when the queue is too long.
#
# **Your file:** `exercises/request_queue.py` (the queue). The gateway that puts it in front of
# the balancer, `solution.Gateway`, is given. **Your check:** the cell under *Check your work*.

# %% [markdown]
# ## Why queue, and why bound the queue
#
# Four servers, one request at a time each, jobs of one second on average (exponential), and
# requests arriving at 3.6 per second: a load of 0.9 per server. Without a queue (stage 1)
# a request that finds the four busy is lost: Erlang's loss formula says 27% of them. With an
# unbounded queue nobody is lost, and each request waits 2 s on average (Erlang C).
#
# Now let the arrivals outrun the servers (load 1.1). The unbounded queue grows for as long as
# the overload lasts, and so does every wait: the last requests wait minutes for an answer their
# client gave up on long ago. A bounded queue (here 20 deep) keeps the wait short for the
# requests it accepts, and answers the others **at once** with a 429 they can act on. By Little's
# law the wait is the depth divided by the throughput, so bounding the depth bounds the wait.

# %%
# %matplotlib inline
import numpy as np
from matplotlib.figure import Figure

import solution
from solution import QueuePolicy
from solution.core.impl import demo_impl, needs_working_code
from solution.sim import Outcome, format_table, plot, scenarios, simulate
from solution.sim.queueing import QueueConfig
from solution.sim.theory import erlang_b, mmc_mean_wait

demo = demo_impl()  # the reference (in the candidate's bundle: your exercises package)

with needs_working_code():
    base = scenarios.classic(servers=4, load=0.9, requests=6_000)
    runs = {
        "no queue (stage 1)": simulate(base, demo.LoadBalancer, seed=1),
        "unbounded queue": simulate(base.with_queue(QueueConfig(QueuePolicy())), demo.LoadBalancer, queue=demo.RequestQueue, seed=1),
    }
    print(format_table({name: res.summary(50.0) for name, res in runs.items()}))
    print(f"\ntheory at load 0.9: Erlang B loss {erlang_b(4, 3.6):.1%}; Erlang C mean wait {mmc_mean_wait(4, 3.6):.2f} s")

    overload = scenarios.classic(servers=4, load=1.1, requests=6_000)
    fig = Figure(figsize=(10, 3.2))
    left, right = fig.subplots(1, 2)
    for ax, depth in ((left, None), (right, 20)):
        res = simulate(overload.with_queue(QueueConfig(QueuePolicy(max_depth=depth))), demo.LoadBalancer, queue=demo.RequestQueue, seed=1)
        plot.queue_depth(res, max_depth=depth, ax=ax)
        s = res.summary()
        ax.set_title(f"load 1.1, max depth {depth or 'unbounded'}: mean wait {s.wait_mean:.0f} s, 429 {s.throttle_rate:.0%}", fontsize=10)
    fig.tight_layout()
    display(fig)

# %% [markdown]
# ## The task
#
# Implement `RequestQueue` in `exercises/request_queue.py`. It never reads the wall clock: it
# calls the `clock` it is given (`time.monotonic` in production, the simulated time in the
# simulator, a `ManualClock` in tests), and it never polls.
#
# | method | does |
# |---|---|
# | `RequestQueue(clock, policy=QueuePolicy(...))` | `ordering` (`"fifo"`, `"priority"`, `"sjf"`), `max_depth`, `max_wait`, `aging_rate`, `large_request_tokens`, `max_skips`, `rate_window`, `scale_up_depth`, `scale_up_after` |
# | `enqueue(request_id, estimated_tokens, priority=0)` | a `Queued` receipt (with its `deadline`), or `Rejected` (status 429, `retry_after`) when `max_depth` requests wait |
# | `peek(large_ok=True)` | the request to dispatch next to a server: `large_ok=False` for a server too small for large requests |
# | `dispatch(request_id, server_id)` | removes it: `Dispatched(request_id, server_id, at, waited)` |
# | `cancel(request_id)` | its client went away: `Cancelled(...)` |
# | `expire()` / `next_deadline()` | time out every request whose deadline has come (`TimedOut` at exactly its deadline) / when the next one is due |
# | `record_completion()` / `retry_after()` | a request completed somewhere (the rate feeds `Retry-After`) / the `Retry-After` a 429 would carry now |
# | `len(q)`, `request_id in q`, `waiting()`, `stats()` | depth; membership; ids best first; `QueueStats` (depth, peak, time-weighted mean, counts, scale-up signal) |
#
# **Every outcome is explicit.** Each request that enters ends exactly once: dispatched, timed out
# or cancelled (or it was rejected with 429 and never entered). **Errors**: the classes in
# `solution.core.queue_types` (`AlreadyWaitingError` is a `ValueError`, `NotWaitingError` a
# `KeyError`); wrong types raise `TypeError`, bad values `ValueError`; a failed call changes
# nothing. A message quotes the offending id as `repr` writes it and says what to do, in at least
# six words (`f"request {request_id!r} is already waiting; cancel it first or use another id"`
# gives `request 'a' is already waiting; ...`; the tests look for `'a'`, quotes included, in
# the messages of a duplicate `enqueue` and of `cancel` or `dispatch` of a request that is not
# waiting); a message about a bad value names the argument (`estimated_tokens`, `priority`).
# **The order of `enqueue`'s checks**: first the arguments, then a duplicate id, then the
# depth. So a request whose id is already waiting raises `AlreadyWaitingError` even when the
# queue is full: it is reported as a duplicate, not rejected with 429.
# **Costs**: `enqueue`, `dispatch`, `cancel` and each expiry in O(log n): no scans.
# The module docstring of your file gives every rule exactly (orderings, skips, the
# `Retry-After` formula).
#
# **What the check and the grader score.** A check cell in each section below runs that
# section's groups against the reference's recorded answers; the grader runs the same groups
# on hidden cases too (the same rules on calls you have not seen), each group scored on its own:
#
# | rule group | what it requires |
# |---|---|
# | `FIFO: first come, first served` | arrival order; `request_id in q` and the receipts say who waits |
# | `priority: higher class first, FIFO within a class` | the key `-priority`, ties by arrival |
# | `shortest job first, with aging` | the fixed key `estimated_tokens + aging_rate * arrival`, ties by arrival |
# | `head-of-line: small requests pass a large one that does not fit; skips are bounded` | `peek(large_ok=False)` passes large requests over; after `max_skips` skips the large one is reserved; no skips are counted while a request is reserved |
# | `max depth: 429 with a Retry-After from depth and completion rate` | `Rejected` at `max_depth` waiting, with `Retry-After = max(1, ceil((depth + 1) * span / completions))`, capped at `max_wait` |
# | `max wait: timeout at exactly the deadline` | `expire()` removes every request whose deadline is at or before now; `next_deadline()` names the next one |
# | `cancellation` | `cancel` removes a waiting request once; a second cancel or an unknown id is `NotWaitingError` |
# | `depth metrics and the scale-up signal` | `stats()`: depth, peak, time-weighted mean depth, the counts, and the scale-up signal after `scale_up_after` seconds at `scale_up_depth` |
# | `bad input: right exception, state unchanged` | wrong types `TypeError`, bad values `ValueError`, a duplicate before the depth check, and a failed call changes nothing |
# | `error messages: quote the id, name the bad argument` | a duplicate `enqueue` and a `cancel` or `dispatch` of a request that is not waiting quote the id as `repr` writes it, in at least six words; a bad value's message names the argument (`estimated_tokens`, `priority`); elsewhere only the kind of an error counts |
# | `random operations against the reference (seeded)` | every rule at once, on seeded random policies and calls |
# | `cost: enqueue, peek and dispatch are O(log n), no scan` | the time per enqueue + peek + dispatch may grow at most 8x from 16 to 4,096 waiting requests (a heap grows about 1.2x, a scan over 100x) |

# %% [markdown]
# Your implementation is checked one rule group at a time, in the section that explains the
# rule: each check cell prints `PASS`, or `FAIL` with the smallest sequence of calls where your
# queue differs from the reference. The next cell loads your code (re-run it after each edit).

# %%
from solution.checks import check_stage2
from solution.core.impl import load_impl

impl = load_impl(reload=True)  # LB_IMPL picks it; reload=True picks up your latest edits
print(f"implementation under test: {impl.__name__}")

# %% [markdown]
# ## The reference at work
#
# `LB_IMPL` picks the implementation this notebook tests: `exercises` (yours, the default)
# or `solution` (the reference). Here is the reference on a manual clock:

# %%
from solution import ManualClock

with needs_working_code():
    clock = ManualClock()
    q = demo.RequestQueue(clock, QueuePolicy(ordering="priority", max_depth=3, max_wait=10.0))
    print(q.enqueue("batch-1", 2_000))
    print(q.enqueue("chat-1", 300, priority=1))
    print(q.enqueue("batch-2", 800))
    print(q.enqueue("chat-2", 200, priority=1), "<- full: 429")
    clock.advance(1.5)
    print(q.peek().request_id, "<- the higher class goes first")
    print(q.dispatch("chat-1", "gpu-0"))
    clock.set(10.0)
    print(q.expire(), "<- at exactly its deadline")
    print(q.stats())

# %% [markdown]
# ## Three orderings, and what each costs
#
# * **FIFO** is fair and predictable: nobody is overtaken. Its tail is short.
# * **Priority** serves the higher class first (FIFO within a class). Interactive traffic
#   barely waits, batch traffic waits for it; the *mean* wait over everybody does not change
#   (when classes do not differ in size, the queue holds the same number of requests whatever
#   the order), but who waits does. Under sustained load the low class can starve: only a
#   `max_wait` bounds it.
# * **Shortest job first** by `estimated_tokens` serves short requests first. When sizes are
#   known it minimises the mean wait among non-preemptive orders: short jobs no longer wait
#   behind long ones. The price is the tail: a long request can be overtaken again and again.
#   **Aging** bounds it: a request that has waited `w` seconds counts as
#   `estimated_tokens - aging_rate * w`. That is the same order as the fixed key
#   `estimated_tokens + aging_rate * arrival`, so a heap keeps it; and a request arriving
#   `(tokens - 1) / aging_rate` seconds or more after a long one never overtakes it.
#
# The simulation below gives the gateway each job's true size (`ClassicMode(sized=True)`:
# 100 tokens per second of work) and marks 30% of the traffic interactive (class 1).

# %%
from solution.sim import ClassicMode, Cluster, Fixed, Scenario, Tier, Workload

tiers = (Tier("interactive", 0.3, Fixed(100), Fixed(100)), Tier("batch", 0.7, Fixed(100), Fixed(100)))
sized = Scenario(Cluster.uniform(4, capacity=1), Workload(20_000, tiers=tiers), ClassicMode(sized=True), load=0.9)
orderings = {
    "fifo": QueuePolicy(),
    "priority": QueuePolicy(ordering="priority"),
    "sjf, no aging to speak of": QueuePolicy(ordering="sjf", aging_rate=0.001),
    "sjf, aging 20 tokens/s": QueuePolicy(ordering="sjf", aging_rate=20.0),
    "sjf, aging 200 tokens/s": QueuePolicy(ordering="sjf", aging_rate=200.0),
}
with needs_working_code():
    by_order = {
        name: simulate(sized.with_queue(QueueConfig(policy, priorities={"interactive": 1})), demo.LoadBalancer, queue=demo.RequestQueue, seed=2)
        for name, policy in orderings.items()
    }
    print(f"{'ordering':<26}{'mean wait':>10}{'p99 wait':>10}{'max wait':>10}{'interactive':>13}{'longest 5%':>12}")
    for name, res in by_order.items():
        waits, keep = res.wait, res.arrival >= 50.0
        long = res.estimated_tokens >= np.percentile(res.estimated_tokens, 95)
        print(f"{name:<26}{np.mean(waits[keep]):>9.2f}s{np.percentile(waits[keep], 99):>9.1f}s{np.max(waits[keep]):>9.0f}s"
              f"{np.mean(waits[keep & (res.tier == 0)]):>12.2f}s{np.mean(waits[keep & long]):>11.2f}s")
    display(plot.wait_cdf(by_order, survival=True))

# %% [markdown]
# Read the table: priority leaves the mean where FIFO has it and moves the wait from the
# interactive class to the batch class. SJF cuts the mean by more than half, and the longest
# jobs pay for it: without aging the worst wait is ten times FIFO's. Aging at 20 tokens per second
# (a job of 100 tokens takes a second here) keeps most of the gain and caps the worst wait;
# at 200 tokens per second SJF has become nearly FIFO again. `aging_rate` is the dial between
# the two.

# %% [markdown]
# Check your three orderings:

# %% tags=["check-cell"]
report = check_stage2(impl, only="FIFO")

# %% tags=["check-cell"]
report = check_stage2(impl, only="priority")

# %% tags=["check-cell"]
report = check_stage2(impl, only="shortest job first")

# %% [markdown]
# ## Head-of-line blocking
#
# A large request (more than 4,096 estimated tokens) only fits a server with 80 GB. If it sits at
# the head of a FIFO queue and a 40 GB server frees a slot, a naive queue either blocks (nobody
# moves until an 80 GB server frees) or hands the large request to a server that cannot run it.
# `peek(large_ok=False)` returns the best *small* request instead: the large one keeps its place
# for the next big server.
#
# Passing it over must not turn into starving it: each time a request ranked behind it is
# dispatched to a small server, the large request is *skipped* once; after `max_skips` skips it is
# **reserved**, and the next server that fits it takes it, whatever has arrived meanwhile.
# One request is reserved at a time, and **no skips are counted while one is**: as long as a
# request is reserved, dispatching a small request adds no skip to any large request, not even
# to another large request that ranks ahead of the small one. Counting resumes, from the counts
# as they were, when the reserved request leaves.

# %%
from solution import Gateway

with needs_working_code():
    clock = ManualClock()
    gw = Gateway(demo.LoadBalancer(), demo.RequestQueue(clock, QueuePolicy(ordering="priority", max_skips=2)), clock)
    gw.add_server("h100", capacity=1, gpu_memory_gb=80)
    gw.add_server("a10", capacity=1, gpu_memory_gb=24)
    gw.submit("x", 100), gw.submit("y", 100)  # both servers busy
    gw.submit("long-doc", 9_000, priority=1)
    for k in range(3):
        gw.submit(f"chat-{k}", 200, priority=1)
    print("waiting:", gw.queue.waiting())
    print("a10 frees ->", gw.complete("y"), "(long-doc skipped once)")
    print("a10 frees ->", gw.complete("chat-0"), "(skipped twice: reserved)")
    print(gw.submit("vip", 100, priority=5), "<- a higher class arrives")
    print("h100 frees ->", gw.complete("x"), "<- the reserved request, not vip")

# %% tags=["check-cell"]
report = check_stage2(impl, only="head-of-line")

# %% [markdown]
# ## Backpressure: 429 and Retry-After
#
# A full queue answers `429 Too Many Requests` at once, with a `Retry-After` header telling the
# client when to come back. A constant would be wrong both ways: too short under a long backlog
# (retries pile up), too long when the cluster drains fast. The queue computes it from its own
# state and the recent completion rate: the time the cluster needs to serve everyone waiting,
# and then this request,
#
# $$\text{Retry-After} = \max\left(1, \left\lceil \frac{(\text{depth} + 1)\cdot\text{span}}{\text{completions in the last \texttt{rate\_window} seconds}} \right\rceil\right)$$
#
# capped at `max_wait` (everyone waiting has left by then); with no recent completion it falls
# back to `max_wait` (or `rate_window`).
#
# Below, a gateway drives four slots (two servers of capacity 2) with a manual clock, in a small
# event loop: requests arrive at 5 per second, a little more than the 4 per second the servers
# complete, so the queue sits at its maximum of 12 and turns the excess away. Between 150 s and
# 300 s the servers run three times slower (a bad deploy, a hot GPU): completions slow down, and
# within the 20-second rate window every 429 tells clients to wait about three times longer.

# %%
rng = np.random.default_rng(3)


def service_time(now: float) -> float:
    return rng.exponential(3.0 if 150 <= now < 300 else 1.0)  # three times slower between 150 s and 300 s


with needs_working_code():
    clock = ManualClock()
    gw = Gateway(demo.LoadBalancer(), demo.RequestQueue(clock, QueuePolicy(max_depth=12, rate_window=20.0)), clock)
    gw.add_server("gpu-0", capacity=2, gpu_memory_gb=80)
    gw.add_server("gpu-1", capacity=2, gpu_memory_gb=80)

    ends: dict[str, float] = {}  # request in flight -> when it completes
    retry_at, retry_after, depth_at, depth = [], [], [], []
    arrival = 0.0
    for n in range(2_250):
        arrival += rng.exponential(1 / 5.0)
        while ends and min(ends.values()) <= arrival:  # completions due before the arrival, in time order
            rid = min(ends, key=ends.get)
            clock.set(ends.pop(rid))
            for d in gw.complete(rid):  # the freed slot goes to the head of the queue at once
                ends[d.request_id] = clock.now + service_time(clock.now)
        clock.set(arrival)
        outcome = gw.submit(f"r{n}", 300)
        if isinstance(outcome, solution.Dispatched):
            ends[outcome.request_id] = clock.now + service_time(clock.now)
        elif isinstance(outcome, solution.Rejected):
            retry_at.append(clock.now)
            retry_after.append(outcome.retry_after)
        depth_at.append(clock.now)
        depth.append(len(gw.queue))
    fig = Figure(figsize=(9, 3))
    ax = fig.add_subplot()
    ax.axvspan(150, 300, color="#bbbbbb", alpha=0.3, linewidth=0, label="servers 3x slower")
    ax.step(depth_at, depth, where="post", linewidth=0.6, label="queue depth")
    ax.plot(retry_at, retry_after, "o", markersize=2, color="#e45756", label="Retry-After of each 429 (s)")
    ax.set_xlabel("time (s)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    display(fig)
    slow = [r for t, r in zip(retry_at, retry_after) if 170 <= t < 300]
    fast = [r for t, r in zip(retry_at, retry_after) if t < 150 or t >= 320]
    print(f"{len(retry_after)} requests answered 429; median Retry-After {np.median(fast):.0f} s at full speed, "
          f"{np.median(slow):.0f} s while slow")

# %% tags=["check-cell"]
report = check_stage2(impl, only="max depth")

# %% [markdown]
# ## The theory, checked
#
# In the simulator's classic mode (Poisson arrivals, exponential service, one request per
# server), an unbounded FIFO queue in front of c servers is the **M/M/c** queue: the mean wait is
# Erlang C's `C(c, a) / (c - a)` service times. A queue bounded at `max_depth` is **M/M/c/K**
# with K = c + `max_depth`: the fraction answered 429 is the blocking probability P(K). Each point
# below is the mean over independent seeds, with its 99% confidence interval; the lines are the
# formulas. (The stage-2 tests check the same at 99.9%, with narrower intervals.)

# %%
from solution.sim.sweep import queue_points

with needs_working_code():
    mmc = queue_points([(4, 4 * x, None) for x in (0.5, 0.6, 0.7, 0.8, 0.85)], seeds=range(8), requests=5_000,
                       balancer=demo.LoadBalancer, queue=demo.RequestQueue, level=0.99)
    mmck = queue_points([(4, 4 * x, 4) for x in (0.6, 0.8, 1.0, 1.2, 1.4)], seeds=range(8), requests=5_000,
                        balancer=demo.LoadBalancer, queue=demo.RequestQueue, level=0.99)
    fig = Figure(figsize=(10, 3.4))
    left, right = fig.subplots(1, 2)
    plot.queue_theory_agreement(mmc + mmck, "wait", ax=left)
    plot.queue_theory_agreement(mmck, "blocking", ax=right)
    left.set_title("mean wait: Erlang C and M/M/4/8", fontsize=10)
    right.set_title("429 fraction: M/M/4/8 blocking", fontsize=10)
    fig.tight_layout()
    display(fig)
    print("inside the 99% interval:", sum(p.wait_agrees for p in mmc + mmck), "of", len(mmc + mmck), "waits;",
          sum(p.blocking_agrees for p in mmck), "of", len(mmck), "blocking fractions")

# %% [markdown]
# ## Check your work: the remaining rules
#
# Deadlines (a request leaves at exactly `arrival + max_wait`), cancellation, the depth metrics
# with the scale-up signal, bad input (the right exception and no change), and finally seeded
# random sequences of calls compared with the reference.

# %% tags=["check-cell"]
report = check_stage2(impl, only="max wait")

# %% tags=["check-cell"]
report = check_stage2(impl, only="cancellation")

# %% tags=["check-cell"]
report = check_stage2(impl, only="depth metrics")

# %% tags=["check-cell"]
report = check_stage2(impl, only="bad input")

# %% tags=["check-cell"]
report = check_stage2(impl, only="error messages")

# %% tags=["check-cell"]
report = check_stage2(impl, only="random")

# %% tags=["check-cell"]
report = check_stage2(impl, only="cost")

# %% [markdown]
# ## Play with it
#
# Set the arrival rate, the servers, the maximum depth, the maximum wait and the ordering. Each
# change simulates the same 4,000 requests under the three orderings (mean service 1 s; 30%
# interactive traffic in class 1; sizes known to the gateway) and shows the queue depth over time
# for your ordering, the wait distribution of each ordering, the 429 and timeout rates, and the
# mean wait against the theory. Your `RequestQueue` runs the same requests with the chosen
# ordering; the line under the table says whether every request ended as with the reference.
# While your file is still a stub the widget runs on the reference alone.

# %% tags=["nbval-ignore-output"]
from solution.widgets.queueing import QueuePlayground

QueuePlayground(impl)

# %% [markdown]
# ## Queue depth: the signal to scale up
#
# When should the fleet grow? Utilization is a poor signal: a saturated cluster reads 100%
# whether one request waits or a thousand. The queue measures the *excess* demand directly, and
# by Little's law its depth is the wait times the throughput: a target wait of W seconds at
# throughput X requests per second means scaling up when the depth stays above W·X.
#
# *Stays above* matters: a burst fills the queue for a few seconds and drains by itself, and a
# new GPU server takes minutes to load its model. So the queue raises its signal only when the
# depth has been above `scale_up_depth` for `scale_up_after` seconds (`stats().scale_up`), and
# lowers it as soon as the depth falls back. Below, bursty traffic (10 s at four times the quiet
# rate, every 40 s on average) on eight servers: the shaded spans are when the signal is up.
# The time-weighted mean depth (`stats().mean_depth`) is the figure to track over a day; the
# peak depth tells how close the queue came to answering 429s.

# %%
from solution.sim import OnOff

bursty = Scenario(Cluster.uniform(8, capacity=1), Workload(8_000, OnOff(rate_on=4.0, rate_off=1.0, mean_on=10, mean_off=30),
                                                            tiers=(Tier("t", 1.0, Fixed(100), Fixed(100)),)),
                  ClassicMode(), load=0.75, queue=QueueConfig(QueuePolicy(max_depth=60)))  # fmt: skip
with needs_working_code():
    res = simulate(bursty, demo.LoadBalancer, queue=demo.RequestQueue, seed=4)
    display(plot.queue_depth(res, max_depth=60, threshold=16, after=15.0))
    spans = plot.scale_up_periods(res, threshold=16, after=15.0)
    print(f"{len(spans)} scale-up signals, up {sum(b - a for a, b in spans):.0f} s of {res.finish.max():.0f} s; "
          f"429s: {res.count(Outcome.THROTTLED)}; mean wait {res.summary().wait_mean:.2f} s")

# %% [markdown]
# ## What comes next
#
# The queue decides *when* a request is served; the balancer still decides *where*, by counting
# requests. Stage 3 routes by predicted work instead (power of two choices, weighted response
# time, least outstanding tokens), stage 4 survives failing servers, and stage 6 returns to
# priorities with reserved capacity and rate limits per tenant.
