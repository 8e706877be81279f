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
# pushes back when the queue is too long: **503 Service Unavailable** with a `Retry-After`
# header (or 429, if the policy says so: *Step (a)* explains which and why).
#
# **Your file:** `exercises/request_queue.py` (the queue), in three steps, each with its own
# check cell: **(a)** a bounded FIFO queue, **(b)** the orderings (priority, shortest job
# first, head-of-line), **(c)** deadlines, cancellation and the depth metrics. The gateway that
# puts the queue in front of the balancer, `solution.Gateway`, is given.

# %% [markdown]
# ## Why queue, and why bound the queue
#
# Four servers, one request at a time each, jobs of one second on average (exponential), and
# requests arriving at 3.6 per second: a load of 0.9 per server. Without a queue (stage 1) a
# request that finds the four busy is lost (Erlang's loss formula, B); with an unbounded queue
# nobody is lost and requests wait instead (Erlang C gives the mean wait).
#
# **Predict first:** what share of the requests does stage 1 lose here, and how long does the
# average request wait with an unbounded queue?

# %%
# %matplotlib inline
import numpy as np
from matplotlib.figure import Figure

import solution
from solution import QueuePolicy
from solution.core.impl import demo_impl, needs_working_code
from solution.sim import Outcome, format_table, plot, scenarios, simulate
from solution.sim.queueing import QueueConfig
from solution.sim.theory import erlang_b, mean_confidence_interval, mmc_mean_wait

demo = demo_impl()  # the reference (in the candidate's bundle: your exercises package)

with needs_working_code():
    base = scenarios.classic(servers=4, load=0.9, requests=6_000)
    runs = {
        "no queue (stage 1)": simulate(base, demo.LoadBalancer, seed=1),
        "unbounded queue": simulate(base.with_queue(QueueConfig(QueuePolicy())), demo.LoadBalancer, queue=demo.RequestQueue, seed=1),
    }
    lost = runs["no queue (stage 1)"].summary(50.0).rejection_rate
    waited = runs["unbounded queue"].summary(50.0).wait_mean
    print(f"stage 1 loses {lost:.1%} (Erlang B: {erlang_b(4, 3.6):.1%}); "
          f"the unbounded queue loses nobody and the mean wait is {waited:.2f} s (Erlang C: {mmc_mean_wait(4, 3.6):.2f} s)")

# %% [markdown]
# Now let the arrivals outrun the servers (load 1.1). The unbounded queue grows for as long as
# the overload lasts, and so does every wait: the last requests wait for an answer their client
# gave up on long ago. A bounded queue (here 20 deep) keeps the waits of the requests it accepts
# short and answers the others **at once**, with a status they can act on.
#
# Why the bound works is **Little's law**: over a long run, the *mean* number waiting equals the
# arrival rate of the requests that wait times their *mean* wait, `L = λ W`. Bounding the depth
# at 20 bounds the *mean* wait at 20 / λ; it says nothing about any single wait (under FIFO a
# request accepted behind 20 others waits for about 21 completions, under other orders it can
# be overtaken). The cell checks the law on the bounded run.
#
# **Predict first:** at load 1.1, what share of the requests does a 20-deep queue turn away?

# %%
with needs_working_code():
    overload = scenarios.classic(servers=4, load=1.1, requests=6_000)
    fig = Figure(figsize=(10, 3.4))
    left, right = fig.subplots(1, 2)
    for ax, depth in ((left, None), (right, 20)):
        res = simulate(overload.with_queue(QueueConfig(QueuePolicy(max_depth=depth))), demo.LoadBalancer, queue=demo.RequestQueue, seed=1)
        s = res.summary()
        plot.queue_depth(res, max_depth=depth, ax=ax,
                         title=f"load 1.1, max depth {depth or 'unbounded'}: mean wait {s.wait_mean:.0f} s, 503s {s.queue_full_rate:.0%}"
                         + ("" if depth is None else "\n(a 100 s window: the depth comes and goes within seconds)"))  # fmt: skip
        if depth is not None:
            ax.set_xlim(600, 700)
            ax.set_ylim(0, depth * 1.3)
        print(f"max depth {depth or 'unbounded'}: mean wait {s.wait_mean:.1f} s, longest {np.nanmax(res.wait):.0f} s, "
              f"turned away (503) {s.queue_full_rate:.1%}")
    fig.tight_layout()
    display(fig)
    # Little's law on the bounded run: time-weighted mean depth = arrival rate of admitted requests x their mean wait
    times = np.linspace(res.arrival.min(), res.arrival.max(), 20_001)
    mean_depth = float(res.queue_depth_over_time(times).mean())
    admitted = ~np.isnan(res.wait)
    rate = admitted.sum() / (res.arrival.max() - res.arrival.min())
    print(f"Little's law, max depth 20: mean depth {mean_depth:.2f} = {rate:.2f} admitted/s x {np.nanmean(res.wait):.2f} s "
          f"mean wait = {rate * np.nanmean(res.wait):.2f}")

# %% [markdown]
# ## The task
#
# Implement `RequestQueue` in `exercises/request_queue.py`. It never reads the wall clock: it
# calls the `clock` it is given (`time.monotonic` in production, the simulated time in the
# simulator, a `ManualClock` in tests), and it never polls.
#
# | method | does | step |
# |---|---|---|
# | `RequestQueue(clock, policy=QueuePolicy(...))` | `ordering` (`"fifo"`, `"priority"`, `"sjf"`), `max_depth`, `reject_status`, `rate_window`, `aging_rate`, `prompt_token_weight`, `large_request_tokens`, `max_skips`, `max_wait`, `scale_up_depth`, `scale_up_after` | a |
# | `enqueue(request_id, estimated_tokens, priority=0, prompt_tokens=None)` | a `Queued` receipt, or `Rejected` (the policy's `reject_status`, 503 by default, with `retry_after`) when `max_depth` requests wait | a |
# | `peek(large_ok=True)` / `dispatch(request_id, server_id)` | the request to dispatch next to a server / remove it: `Dispatched(request_id, server_id, at, waited)` | a, b |
# | `record_completion()` / `retry_after()` | a request completed somewhere (the rate feeds `Retry-After`) / the `Retry-After` a rejection would carry now | a |
# | `len(q)`, `request_id in q`, `waiting()` | depth; membership; ids best first | a |
# | `expire()` / `next_deadline()` | time out every request whose deadline has come / when the next one is due | c |
# | `cancel(request_id)` | its client went away: `Cancelled(...)` | c |
# | `stats()` | `QueueStats`: depth, peak, time-weighted mean, counts, scale-up signal | c |
#
# **Every outcome is explicit.** Each request that enters ends exactly once: dispatched, timed out
# or cancelled (or it was rejected and never entered). **Errors**: the classes in
# `solution.core.queue_types` (`AlreadyWaitingError` is a `ValueError`, `NotWaitingError` a
# `KeyError`); wrong types raise `TypeError`, bad values `ValueError`; a failed call changes
# nothing. A message quotes the offending id as `repr` writes it and says what to do, in at
# least six words (`f"request {request_id!r} is already waiting; cancel it first or use another
# id"` gives `request 'a' is already waiting; ...`); a message about a bad value names the
# argument (`estimated_tokens`, `priority`, `prompt_tokens`). **The order of `enqueue`'s
# checks**: the arguments, then a duplicate id, then the depth: a waiting id in a full queue
# raises `AlreadyWaitingError`, it is not rejected. **Costs**: `enqueue`, `dispatch`, `cancel`
# and each expiry in O(log n): no scans. The module docstring of your file gives every rule
# exactly.
#
# **What the check and the grader score.** The check cell of each step runs that step's groups
# against the reference's recorded answers; the grader runs the same groups on hidden cases too
# (the same rules on calls you have not seen), each group scored on its own:
#
# | rule group | what it requires | step |
# |---|---|---|
# | `FIFO: first come, first served` | arrival order; `request_id in q` and the receipts say who waits | a |
# | `max depth: reject (503, or the policy's 429) with a Retry-After from depth and completion rate` | `Rejected` with `policy.reject_status` at `max_depth` waiting, with `Retry-After = max(1, ceil((depth + 1) * span / completions))`, capped at `max_wait` | a |
# | `priority: higher class first, FIFO within a class` | the key `-priority`, ties by arrival | b |
# | `shortest job first, with aging` | the fixed key `size + aging_rate * arrival` with `size = output + prompt_token_weight * prompt` (`estimated_tokens` without `prompt_tokens`), ties by arrival | b |
# | `head-of-line: small requests pass a large one that does not fit; skips are bounded` | `peek(large_ok=False)` passes large requests over; after `max_skips` skips the large one is reserved; no skips are counted while a request is reserved | b |
# | `max wait: timeout at exactly the deadline` | `expire()` removes every request whose deadline is at or before now; `next_deadline()` names the next one | c |
# | `cancellation` | `cancel` removes a waiting request once; a second cancel or an unknown id is `NotWaitingError` | c |
# | `depth metrics and the scale-up signal` | `stats()`: depth, peak, time-weighted mean depth, the counts, and the scale-up signal after `scale_up_after` seconds above `scale_up_depth` | c |
# | `bad input: right exception, state unchanged` | wrong types `TypeError`, bad values `ValueError` (`prompt_tokens` outside `[0, estimated_tokens]` too), a duplicate before the depth check, and a failed call changes nothing | all |
# | `error messages: quote the id, name the bad argument` | a duplicate `enqueue` and a `cancel` or `dispatch` of a request that is not waiting quote the id as `repr` writes it, in at least six words; a bad value's message names the argument; elsewhere only the kind of an error counts | all |
# | `random operations against the reference (seeded)` | every rule at once, on seeded random policies and calls | all |
# | `cost: enqueue, peek and dispatch are O(log n), no scan` | the time per enqueue + peek + dispatch may grow at most 8x from 16 to 4,096 waiting requests (a heap grows about 1.2x, a scan over 100x) | all |

# %% [markdown]
# Each check cell prints `PASS`, or `FAIL` with the smallest sequence of calls where your queue
# differs from the reference. The next cell loads your code (re-run it after each edit).
# `LB_IMPL` picks the implementation: `exercises` (yours, the default) or `solution`.

# %%
from solution.checks import check_stage2
from solution.core.impl import load_impl

impl = load_impl(reload=True)  # LB_IMPL picks it; reload=True picks up your latest edits
print(f"implementation under test: {impl.__name__}")

# %% [markdown]
# ## Step (a): a bounded FIFO queue
#
# **FIFO** serves requests in arrival order: `peek()` names the oldest waiting request,
# `dispatch` removes it, `len(q)` and `request_id in q` say who waits. **The bound**: with
# `max_depth` requests waiting, `enqueue` keeps nothing and returns `Rejected` at once.
#
# **Which status.** Two HTTP statuses could carry the rejection, and they say different things:
#
# * **503 Service Unavailable** (RFC 9110, section 15.6.4): *the server* cannot handle the
#   request now, because of a temporary overload; `Retry-After` (section 10.2.3) may say when
#   to come back. A full gateway queue is exactly that: every client is turned away, whoever
#   sent how much.
# * **429 Too Many Requests** (RFC 6585, section 4): *this client* sent too many requests in a
#   given time (rate limiting), also with an optional `Retry-After`.
#
# So the queue's default is 503, and the status is a policy field, `QueuePolicy(reject_status=...)`
# (503 or 429), because many LLM APIs answer overload with 429 too and a gateway may have to
# match them. Stage 6 uses 429 for what it means: a tenant over its own rate limit, while other
# tenants are still served.

# %%
from solution import ManualClock

with needs_working_code():
    clock = ManualClock()
    q = demo.RequestQueue(clock, QueuePolicy(max_depth=2))
    print(q.enqueue("a", 300))
    print(q.enqueue("b", 800))
    print(q.enqueue("c", 200), "<- full: 503, the default")
    print(demo.RequestQueue(clock, QueuePolicy(max_depth=0, reject_status=429)).enqueue("d", 200), "<- reject_status=429")
    clock.advance(1.5)
    print(q.peek().request_id, "goes first:", q.dispatch("a", "gpu-0"))

# %% [markdown]
# ### Retry-After: when to come back
#
# A constant `Retry-After` is wrong both ways: too short under a long backlog (clients come back
# into a queue that is still full), too long when the cluster drains fast. The queue estimates
# the time the cluster needs to serve everyone waiting, and then this request:
#
# $$\text{Retry-After} = \max\left(1, \left\lceil \min\left(\frac{(\text{depth} + 1)\cdot\text{span}}{\text{completions}},\ \text{max\_wait}\right) \right\rceil\right)$$
#
# * **depth**: the requests waiting now (`len(q)`); the rejected request is not among them,
#   the `+ 1` counts it.
# * **completions**: the calls to `record_completion()` (the gateway makes one each time a
#   server finishes a request) at times `t > now - rate_window`.
# * **span**: the seconds those completions were counted over, `min(rate_window, now -
#   created)`: a queue made 4 s ago has counted for 4 s, not for a whole window.
# * `completions / span` is the cluster's recent throughput `X` (requests per second), and
#   `(depth + 1) / X` the time to serve `depth + 1` requests at that pace (Little's law again:
#   `W = L / X`).
# * **the cap**, `max_wait`: every request waiting now has left by then (served or timed out).
#   With no completion in the window there is no rate: `max_wait`, or `rate_window` without one.
# * **ceil and at least 1**: the header carries whole seconds (`delay-seconds` in RFC 9110).
#
# A worked example: a window of 10 s, five completions in it, three requests waiting.
#
# ```
# time  0 ............ now - 10 (------- rate_window -------] now
# completions                     x     x    x      x     x          5 in the window
# queue                  [ a  b  c ] + the rejected request          depth + 1 = 4
# ```

# %%
with needs_working_code():
    clock = ManualClock()
    q = demo.RequestQueue(clock, QueuePolicy(max_depth=3, rate_window=10.0))
    for rid in ("a", "b", "c"):
        q.enqueue(rid, 100)
    clock.advance(11.0)  # the queue is 11 s old: the span is the whole window
    for step in (1.0, 2.0, 1.5, 2.0, 1.5):  # five completions inside the last 10 s
        clock.advance(step)
        q.record_completion()
    depth, completions, span = len(q), 5, min(10.0, clock.now - 0.0)
    print(f"depth {depth}, completions {completions} in the last {span:.0f} s: throughput {completions / span:.2f} req/s")
    print(f"(depth + 1) * span / completions = {(depth + 1) * span / completions:.1f} s -> Retry-After {q.retry_after()} s")
    print(q.enqueue("d", 100))

# %% [markdown]
# Check step (a): FIFO and the bounded queue with its `Retry-After`.

# %% tags=["check-cell"]
report = check_stage2(impl, only=("FIFO", "max depth"))

# %% [markdown]
# ### Backpressure when the servers slow down
#
# A gateway drives four slots (two servers of capacity 2) with a manual clock, in a small event
# loop: requests arrive at 5 per second, a little more than the 4 per second the servers
# complete, so the queue sits at its maximum of 12 and turns the excess away. Between 150 s and
# 300 s the servers run three times slower (a bad deploy, a hot GPU): completions slow down.
#
# **Predict first:** while the servers are three times slower, what happens to the `Retry-After`
# that rejected clients get?

# %%
rng = np.random.default_rng(3)


def service_time(now: float) -> float:
    return rng.exponential(3.0 if 150 <= now < 300 else 1.0)  # three times slower between 150 s and 300 s


with needs_working_code():
    clock = ManualClock()
    gw = solution.Gateway(demo.LoadBalancer(), demo.RequestQueue(clock, QueuePolicy(max_depth=12, rate_window=20.0)), clock)
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
    fig = Figure(figsize=(9, 4.6))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for ax in (top, bottom):
        ax.axvspan(150, 300, color="#bbbbbb", alpha=0.35, linewidth=0, label="servers 3x slower")
        ax.grid(alpha=0.3)
    top.step(depth_at, depth, where="post", linewidth=0.8, label="queue depth")
    top.axhline(12, color="#c00", linestyle="--", linewidth=1, label="max depth 12")
    top.set_ylabel("requests waiting")
    top.set_title("the queue sits at its maximum and turns the excess away", fontsize=10)
    bottom.plot(retry_at, retry_after, "o", markersize=3, color="#e45756", label="Retry-After of each 503")
    bottom.set_ylabel("Retry-After (s)")
    bottom.set_xlabel("time (s)")
    bottom.set_title("each rejection's Retry-After follows the completion rate", fontsize=10)
    for ax in (top, bottom):
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", borderaxespad=0.0)
    fig.subplots_adjust(left=0.08, right=0.76, hspace=0.4)
    display(fig)
    slow = [r for t, r in zip(retry_at, retry_after) if 170 <= t < 300]
    fast = [r for t, r in zip(retry_at, retry_after) if t < 150 or t >= 320]
    print(f"{len(retry_after)} requests answered 503; median Retry-After {np.median(fast):.0f} s at full speed, "
          f"{np.median(slow):.0f} s while slow")

# %% [markdown]
# ### Clients that retry
#
# A `Retry-After` is a promise about the *queue*, not an appointment: every client rejected in
# the same burst gets about the same value, and if each comes back exactly then, they all come
# back in the same second. That **retry wave** is a second burst; the queue, full again, rejects
# most of it with a new common `Retry-After`, and the wave echoes until clients give up.
#
# The fix is randomness. *Full jitter* (M. Brooker, "Exponential Backoff and Jitter", AWS
# Architecture Blog, 2015) waits a uniform random time in `[0, backoff]`, with the backoff
# doubling at each attempt. A client that honours `Retry-After` must not come back earlier
# (RFC 9110), so here the jitter goes on top: wait `Retry-After + uniform(0, min(cap,
# Retry-After * 2^(attempt - 1)))`. `solution.sim.retries` runs both on the same traffic
# (common random numbers): a pool of four servers with two slots each, Poisson arrivals at three
# quarters of its capacity, a burst of extra requests in one second, a queue 16 deep, and
# clients that try up to six times.
#
# **Predict first:** after the burst, how many arrivals per second reach the gateway at the
# peak of the retries, with and without jitter?

# %%
from solution.sim.retries import RetryScenario, plot_arrivals, run_retries

with needs_working_code():
    scenario = RetryScenario()
    seeds = range(20)
    retry_runs = {jitter: [run_retries(demo.LoadBalancer, demo.RequestQueue, scenario, jitter=jitter, seed=s) for s in seeds]
                  for jitter in (False, True)}  # fmt: skip
    retry_label = {False: "exactly Retry-After", True: "Retry-After + full jitter"}
    capacity = scenario.servers * scenario.slots / scenario.service_time
    print(f"pool capacity {capacity:.0f} req/s, fresh traffic {scenario.rate:.0f} req/s, burst of {scenario.burst} requests; "
          f"{len(seeds)} seeds, 95% intervals")
    print(f"{'clients wait':<28}{'peak arrivals/s after the burst':>34}{'503s of retries':>22}{'gave up':>16}")
    for jitter, rs in retry_runs.items():
        peak = mean_confidence_interval([r.peak_after_burst for r in rs], 0.95)
        extra = mean_confidence_interval([r.extra_rejections for r in rs], 0.95)
        gave = mean_confidence_interval([r.gave_up for r in rs], 0.95)
        print(f"{retry_label[jitter]:<28}{peak[0]:>14.0f} [{peak[1]:.0f}, {peak[2]:.0f}]{'':>10}{extra[0]:>8.0f} [{extra[1]:.0f}, {extra[2]:.0f}]"
              f"{gave[0]:>8.1f} [{gave[1]:.1f}, {gave[2]:.1f}]")
    paired = [a.peak_after_burst / b.peak_after_burst for a, b in zip(retry_runs[False], retry_runs[True])]
    ratio = mean_confidence_interval(paired, 0.95)
    saved = mean_confidence_interval([a.extra_rejections - b.extra_rejections for a, b in zip(retry_runs[False], retry_runs[True])], 0.95)
    print(f"paired over the same seeds: jitter divides the peak by {ratio[0]:.1f} [{ratio[1]:.1f}, {ratio[2]:.1f}] and saves "
          f"{saved[0]:.0f} [{saved[1]:.0f}, {saved[2]:.0f}] rejections of retries")
    display(plot_arrivals({retry_label[j]: retry_runs[j][0] for j in (False, True)}, window=(scenario.burst_at - 15, scenario.burst_at + 75)))

# %% [markdown]
# The synchronized clients come back in spikes a `Retry-After` apart, each spike many times the
# pool's capacity, and most of each spike is rejected again. With jitter the same requests come
# back spread over tens of seconds: the peak is a fraction of the synchronized one (the paired
# ratio above), still above the pool's capacity but short enough for the queue to absorb more
# of it, and far fewer clients give up. A gateway cannot make
# clients jitter, but it can help: round `Retry-After` *up* under load, add its own random
# spread to the header, and document that clients must jitter.

# %% [markdown]
# ## Step (b): orderings
#
# * **Priority** serves the higher class first (FIFO within a class): the key is `-priority`.
#   Interactive traffic barely waits and batch traffic waits for it; when the classes do not
#   differ in size the *mean* wait over everybody does not change (the queue holds the same
#   number of requests whatever the order), but who waits does. Under sustained load the low
#   class can starve: only a `max_wait` bounds it.
# * **Shortest job first** serves short requests first, so short jobs no longer wait behind
#   long ones. On **one** server, with sizes known, it minimises the mean wait among the orders
#   that never interrupt a running job (the M/G/1 result); with several servers it is a
#   heuristic that usually helps, with no such proof. **Aging** keeps it from starving a long
#   request: one that has waited `w` seconds counts `aging_rate * w` tokens smaller. That is
#   the order of the fixed key `size + aging_rate * arrival`, so a heap keeps it and nothing is
#   re-sorted as time passes; a request arriving `size / aging_rate` seconds or more after a
#   long one never overtakes it.
#
# **What is a job's size?** Stage 1 passes one number, `estimated_tokens` = prompt + expected
# output. But a prompt token costs a small share of one prefill iteration, while each output
# token costs a whole decode iteration (`solution.core.latency`). So `enqueue` also takes
# `prompt_tokens`, and SJF's size is counted in output-token equivalents:
# `size = output + prompt_token_weight * prompt`, with the weight from the reference latency
# model (printed below). Without `prompt_tokens`, every token counts as an output token.
# What the single number still hides: the output length is an estimate (the prompt is known
# exactly, the answer is not), and a decode iteration costs more in a bigger batch, which the
# queue cannot know. SJF needs the *order* right, not the seconds.

# %%
from solution.core.latency import REFERENCE_MODEL
from solution.core.queue_types import PROMPT_TOKEN_WEIGHT

print(f"reference model: a prompt token {REFERENCE_MODEL.token_s * 1e3:.3f} ms, an output token (decode step, batch 1) "
      f"{REFERENCE_MODEL.decode_step(1) * 1e3:.1f} ms: prompt_token_weight = {PROMPT_TOKEN_WEIGHT:.4f} (1/{1 / PROMPT_TOKEN_WEIGHT:.0f})")
with needs_working_code():
    clock = ManualClock()
    q = demo.RequestQueue(clock, QueuePolicy(ordering="sjf"))
    q.enqueue("chat: 50-token prompt, 250-token answer", 300, prompt_tokens=50)
    q.enqueue("summary: 4,000-token document, 10-token answer", 4010, prompt_tokens=4000)
    q.enqueue("no split given: 1,000 tokens", 1000)
    print("SJF by cost:", q.waiting())

# %% [markdown]
# ### The orderings on four servers
#
# The simulation gives the gateway each job's true size (`ClassicMode(sized=True)`: 100 tokens
# per second of work) and marks 30% of the traffic interactive (class 1); four servers, load 0.9.
#
# **Predict first:** how much does SJF cut the mean wait against FIFO, and which number shows
# what it costs?

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
    print(f"{'ordering':<26}{'mean wait':>10}{'p99 wait':>10}{'max wait':>10}{'interactive':>13}")
    waits_of = {}
    for name, res in by_order.items():
        waits, keep = res.wait, res.arrival >= 50.0
        waits_of[name] = waits[keep]
        print(f"{name:<26}{np.mean(waits[keep]):>9.2f}s{np.percentile(waits[keep], 99):>9.1f}s{np.max(waits[keep]):>9.0f}s"
              f"{np.mean(waits[keep & (res.tier == 0)]):>12.2f}s")
    fifo_w, sjf_w = waits_of["fifo"], waits_of["sjf, no aging to speak of"]
    print(f"\nSJF without aging: mean wait {np.mean(sjf_w) / np.mean(fifo_w):.0%} of FIFO's, p99 "
          f"{np.percentile(sjf_w, 99) / np.percentile(fifo_w, 99):.0%} of FIFO's, but the longest wait "
          f"{np.max(sjf_w) / np.max(fifo_w):.1f}x FIFO's ({np.max(sjf_w):.0f} s against {np.max(fifo_w):.0f} s)")
    display(plot.wait_cdf(by_order, survival=True, title="share of requests that waited longer than t, per ordering"))

# %% [markdown]
# Read the last line first: SJF beats FIFO on the mean *and* on the 99th percentile here; its
# price is in the few requests beyond the 99th percentile, the longest jobs overtaken again and
# again, and it shows in the **maximum** wait. Priority leaves the mean where FIFO has it and
# moves the wait from the interactive class to the batch class. Aging at 20 tokens per second (a
# job of 100 tokens takes a second here) keeps most of the gain and cuts the maximum; at 200
# tokens per second SJF is nearly FIFO again: `aging_rate` is the dial between the two. Four
# servers are not the one-server setting where SJF is proved optimal; the next experiment is.

# %% [markdown]
# ### One server, LLM-sized jobs: the key decides
#
# `solution.sim.queueing.one_server_llm` runs one server that serves one request at a time,
# with prompts and answers of LLM-like sizes, each request costing
# `REFERENCE_MODEL.e2e(prompt, output)` seconds, at load 0.9. The same requests go through
# FIFO, SJF by total tokens (no split), and SJF by cost (the split); the last row gives the
# queue a *noisy* output estimate (the true length times a lognormal error of sigma 0.7, an
# assumption for illustration, not a measured predictor).
#
# **Predict first:** SJF by total tokens orders a 4,000-token summary after a 300-token chat;
# how much mean wait does ordering by cost save over that?

# %%
from solution.sim.queueing import one_server_llm

sjf1 = QueuePolicy(ordering="sjf", aging_rate=1.0)
one_server = {  # label: (policy, give the split, sigma of the output-estimate error)
    "fifo": (QueuePolicy(), False, 0.0),
    "sjf by total tokens": (sjf1, False, 0.0),
    "sjf by cost (the split)": (sjf1, True, 0.0),
    "sjf by cost, noisy output estimate": (sjf1, True, 0.7),
}
with needs_working_code():
    seeds1 = range(10)
    single = {label: [one_server_llm(demo.LoadBalancer, demo.RequestQueue, p, split=split, seed=s, output_error=err) for s in seeds1]
              for label, (p, split, err) in one_server.items()}  # fmt: skip
    print(f"one server, load 0.9, {len(seeds1)} seeds x 3,000 requests (first 300 dropped), 95% intervals")
    print(f"{'order':<36}{'mean wait (s)':>22}{'longest wait (s)':>20}")
    for label, rs in single.items():
        m = mean_confidence_interval([r.wait[300:].mean() for r in rs], 0.95)
        mx = mean_confidence_interval([r.wait[300:].max() for r in rs], 0.95)
        print(f"{label:<36}{m[0]:>8.1f} [{m[1]:5.1f}, {m[2]:5.1f}]{mx[0]:>8.0f} [{mx[1]:.0f}, {mx[2]:.0f}]")
    for a, b in (("sjf by cost (the split)", "sjf by total tokens"), ("sjf by cost (the split)", "fifo"),
                 ("sjf by cost, noisy output estimate", "sjf by total tokens")):  # fmt: skip
        r = mean_confidence_interval([x.wait[300:].mean() / y.wait[300:].mean() for x, y in zip(single[a], single[b])], 0.95)
        print(f"paired: {a} / {b}: mean wait x{r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}]")

# %% [markdown]
# Ordering by cost roughly halves the mean wait of ordering by total tokens on the same
# requests (the paired ratios above), and keeps most of that gain with a rough output estimate.
# The longest waits grow in every SJF row: the same price as on four servers.

# %% [markdown]
# ### Head-of-line blocking
#
# A large request (more than 4,096 estimated tokens: memory holds every token, so *large* is
# decided by the total) only fits a server with 80 GB. If it sits at the head of a FIFO queue
# and a 40 GB server frees a slot, a naive queue either blocks (nobody moves until an 80 GB
# server frees) or hands the large request to a server that cannot run it.
# `peek(large_ok=False)` returns the best *small* request instead: the large one keeps its
# place for the next big server.
#
# Passing it over must not turn into starving it: each time a request ranked behind it is
# dispatched to a small server, the large request is *skipped* once; after `max_skips` skips it
# is **reserved**, and the next server that fits it takes it, whatever has arrived meanwhile.
# One request is reserved at a time, and **no skips are counted while one is**: as long as a
# request is reserved, dispatching a small request adds no skip to any large request, not even
# to another large request that ranks ahead of the small one. Counting resumes, from the counts
# as they were, when the reserved request leaves.

# %%
with needs_working_code():
    clock = ManualClock()
    gw = solution.Gateway(demo.LoadBalancer(), demo.RequestQueue(clock, QueuePolicy(ordering="priority", max_skips=2)), clock)
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

# %% [markdown]
# Check step (b): the three orderings and head-of-line blocking.

# %% tags=["check-cell"]
report = check_stage2(impl, only=("priority", "shortest job first", "head-of-line"))

# %% [markdown]
# ## Step (c): deadlines, cancellation and the depth metrics
#
# ### Max wait: every request has a deadline
#
# A client waits only so long; past that, serving its request wastes a GPU on an answer nobody
# reads. With `max_wait`, each request gets a **deadline** `arrival + max_wait` (on its
# `Queued` receipt) and times out at exactly that instant, even if nobody calls the queue then:
# the queue never polls. The driver (the gateway, the simulator) asks `next_deadline()`,
# schedules a timer there, and calls `expire()`, which removes every request whose deadline is
# *at or before* now, oldest first, each as `TimedOut(request_id, at=deadline, waited=max_wait)`.
# Since `max_wait` is the same for everybody, deadlines come in arrival order, so a plain
# arrival-ordered list finds the next one in O(1). A timeout is not a rejection: the request
# was accepted and waited; the client learns it at its deadline, not at once.
#
# ### Cancellation: the client went away
#
# A client can give up before its deadline (it disconnected, the user closed the tab). The
# gateway then calls `cancel(request_id)`: the request leaves the queue at once, as
# `Cancelled(...)`, and will never take a slot. A request leaves exactly once: cancelling it
# again, or cancelling one that was dispatched or timed out, is `NotWaitingError` (a
# `KeyError`): the gateway must not mistake a finished request for a waiting one.
#
# ### The depth metrics
#
# `stats()` returns `QueueStats`: the current `depth`, the `peak_depth`, the time-weighted
# `mean_depth` since the queue was made (the integral of the depth over time divided by the
# time: a depth of 10 for 1 s and 0 for 9 s is a mean of 1), the counts (`enqueued ==
# dispatched + timed_out + cancelled + depth`; `rejected` never entered), and the scale-up
# signal: `over_threshold_since` is when the depth last rose above `scale_up_depth`, and
# `scale_up` is raised once it has stayed above for `scale_up_after` seconds (the last section
# shows how to use it).

# %%
with needs_working_code():
    clock = ManualClock()
    q = demo.RequestQueue(clock, QueuePolicy(max_wait=10.0, scale_up_depth=1, scale_up_after=2.0))
    print(q.enqueue("a", 100))
    clock.advance(1.0)
    q.enqueue("b", 100)
    q.enqueue("c", 100)
    print("next deadline:", q.next_deadline(), "| depth above 1 since", q.stats().over_threshold_since)
    print(q.cancel("c"), "<- its client went away")
    clock.advance(2.5)
    print("scale_up after 2.5 s with depth 2 > 1:", q.stats().scale_up)
    clock.set(10.0)
    print(q.expire(), "<- at exactly its deadline")
    try:
        q.cancel("a")
    except KeyError as exc:
        print("cancel('a') again:", type(exc).__name__, exc)
    print(q.stats())

# %% [markdown]
# Check step (c): deadlines, cancellation and the depth metrics.

# %% tags=["check-cell"]
report = check_stage2(impl, only=("max wait", "cancellation", "depth metrics"))

# %% [markdown]
# ### The whole queue
#
# Last, the rules that span every step: bad input (the right exception and no change),
# error messages, seeded random sequences of calls compared with the reference, and the cost
# of each call (a heap, not a scan).

# %% tags=["check-cell"]
report = check_stage2(impl, only=("bad input", "error messages", "random"))

# %% tags=["check-cell"]
report = check_stage2(impl, only="cost")

# %% [markdown]
# ## The theory, checked
#
# In the simulator's classic mode (Poisson arrivals, exponential service, one request per
# server), an unbounded FIFO queue in front of c servers is the **M/M/c** queue: the mean wait is
# Erlang C's `C(c, a) / (c - a)` service times. A queue bounded at `max_depth` is **M/M/c/K**
# with K = c + `max_depth`: the fraction turned away (503) is the blocking probability P(K).
# Each point below is the mean over independent seeds, with its 99% confidence interval; the
# lines are the formulas (exact for this model).
#
# **Predict first:** how many of the simulated points should fall inside their interval around
# the formula?

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
    right.set_title("share turned away (503): M/M/4/8 blocking", fontsize=10)
    right.set_ylabel("fraction turned away (503)")
    fig.tight_layout()
    display(fig)
    print("inside the 99% interval:", sum(p.wait_agrees for p in mmc + mmck), "of", len(mmc + mmck), "waits;",
          sum(p.blocking_agrees for p in mmck), "of", len(mmck), "blocking fractions")

# %% [markdown]
# ## Play with it
#
# Set the arrival rate, the servers, the maximum depth, the maximum wait and the ordering. Each
# change simulates the same 4,000 requests under the three orderings (mean service 1 s; 30%
# interactive traffic in class 1; sizes known to the gateway) and shows the queue depth over time
# for your ordering, the wait distribution of each ordering, the queue-full (503) and timeout
# rates, and the mean wait against the theory. Your `RequestQueue` runs the same requests with
# the chosen ordering; the line under the table says whether every request ended as with the
# reference. While your file is still a stub the widget runs on the reference alone.

# %% tags=["nbval-ignore-output"]
from solution.widgets.queueing import QueuePlayground

QueuePlayground(impl)

# %% [markdown]
# ## Queue depth and the scale-up signal
#
# When should the fleet grow? Utilization is a poor signal: a saturated cluster reads 100%
# whether one request waits or a thousand. The queue measures the *excess* demand directly. But
# a GPU replica takes minutes to join (a node, the image, the weights into memory), so a signal
# that fires once the queue is long asks for capacity that arrives after the damage, and one
# that fires on every short burst orders replicas the burst no longer needs when they join.
#
# **The derivation.** Pick a target mean wait `W`. With `n` replicas of `s` slots each, mean
# service time `1/μ` and arrival rate `λ`, the gateway is an M/M/c queue with `c = n·s`: the mean
# wait is Erlang C's `C(c, λ/μ) / (c·μ − λ)`. The replicas *needed* are the smallest `n` for
# which that is at most `W`, and the signal is "needed > present + ordered": it depends on the
# arrival rate (measured over the last `window` seconds), so it rises while the queue is still
# short, and it asks for enough replicas at once. For the backlog itself, Little's law gives
# the threshold: a FIFO newcomer behind `depth` requests waits about `depth / (c·μ)`, more
# than `W_b` once `depth > W_b·c·μ`; the queue's own `stats().scale_up`, with `scale_up_depth`
# set there and held for a minute, is the safety net for when the rate model is wrong (slower
# servers, longer answers). **Hysteresis**: a replica leaves only when the others would run
# below a *lower* utilization and still meet `W`, for `down_hold` seconds in a row.
#
# `solution.sim.autoscale` compares this with the signal this stage started with (the queue's
# `stats().scale_up`: depth above 16 for 15 s, one replica at a time, one removed as soon as the
# queue is empty and the fleet under half busy) on the same traffic: short bursts, then a
# ramp to a sustained higher rate, then a fall. Replicas join after a provisioning delay; every
# figure below is what the runs recorded from the queue's `stats()` at each tick.
#
# **Predict first:** how much earlier than the depth signal does the target-wait signal order
# its first replica on the ramp, and how many replicas does each order for bursts that do not
# need them?

# %%
from solution.sim.autoscale import POLICIES, AutoscaleScenario, backlog_threshold, plot_timeline, replicas_needed, run_autoscale

with needs_working_code():
    auto = AutoscaleScenario()
    seeds_a = range(8)
    auto_runs = {p: [run_autoscale(demo.LoadBalancer, demo.RequestQueue, p, auto, seed=s) for s in seeds_a] for p in POLICIES}
    c0 = auto.replicas * auto.slots
    print(f"replicas of {auto.slots} slots, mean service {auto.service_time:g} s, {auto.replicas} at the start; provisioning delay "
          f"{auto.provisioning_delay:.0f} s; target mean wait {auto.target_wait:g} s; rate window {auto.window:.0f} s")
    top_rate = next(x / 100 for x in range(1, 10_000) if replicas_needed(x / 100, auto.slots, auto.service_time, auto.target_wait, 99) > auto.replicas)
    print(f"derived: {auto.replicas} replicas meet {auto.target_wait:g} s up to {top_rate - 0.01:.2f} req/s "
          f"({(top_rate - 0.01) / (c0 / auto.service_time):.0%} of their capacity); "
          f"backlog threshold for {auto.backlog_wait:g} s: depth > {backlog_threshold(auto.backlog_wait, c0, auto.service_time)}")
    print(f"{len(seeds_a)} seeds, 95% intervals; the ramp starts at {auto.ramp_at:.0f} s, bursts before it")
    print(f"{'autoscaler':<14}{'first order on the ramp (s)':>30}{'orders for bursts':>20}{'reversals':>14}{'replica-hours':>18}"
          f"{'503s: seeds with any, min-max':>32}")
    for p, rs in auto_runs.items():
        cols = [mean_confidence_interval(v, 0.95) for v in (
            [r.first_order_after(auto.ramp_at) for r in rs], [r.ups_between(0.0, auto.ramp_at) for r in rs],
            [r.reversals for r in rs], [r.replica_seconds / 3600 for r in rs])]  # fmt: skip
        full = [len(r.rejected_at) for r in rs]  # a count that is 0 in most runs: its range says more than a t interval
        print(f"{p:<14}" + "".join(f"{m:>{w}.{d}f} [{lo:.{d}f}, {hi:.{d}f}]" for (m, lo, hi), w, d in
                                   zip(cols, (14, 8, 6, 8), (0, 1, 1, 2)))
              + f"{sum(x > 0 for x in full):>14} of {len(full)}, {min(full)}-{max(full)}")  # fmt: skip
    lead = mean_confidence_interval([a.first_order_after(auto.ramp_at) - b.first_order_after(auto.ramp_at)
                                     for a, b in zip(auto_runs["depth held"], auto_runs["target wait"])], 0.95)  # fmt: skip
    print(f"paired: the target-wait signal orders {lead[0]:.0f} s [{lead[1]:.0f}, {lead[2]:.0f}] before the depth signal")
    display(plot_timeline({p: rs[0] for p, rs in auto_runs.items()}))

# %% [markdown]
# The depth signal is late and jumpy: it fires only once the queue has been long for a while,
# its replicas join two minutes later, and meanwhile the queue fills and answers 503; it also
# orders a replica for bursts that are over before it joins, then drops it (the reversals).
# The target-wait signal orders on the ramp while the queue is still short, ignores the bursts
# (a burst barely moves a two-minute average), and changes direction once: up on the ramp, then
# down after the fall, one replica per hold time, late, because of the hysteresis. The price is capacity: more replica-hours. Bursts are the *queue's* job, not the
# autoscaler's: that is what the queue absorbs (the depth spikes in the last panel).

# %% [markdown]
# ## What comes next
#
# The queue decides *when* a request is served; the balancer still decides *where*, by counting
# requests. Stage 3 routes by predicted work instead (power of two choices, weighted response
# time, least outstanding tokens), stage 4 survives failing servers, and stage 6 returns to
# priorities with reserved capacity and rate limits per tenant (there, 429).
#
# The figures the interview answer below cites, in one place:

# %%
with needs_working_code():
    missing = [name for name in ("lost", "fast", "retry_runs", "sjf_w", "single", "auto_runs") if name not in globals()]
    if missing:
        raise NotImplementedError(f"Stage 2: {', '.join(missing)} come from cells that need your RequestQueue; not implemented yet")
    print(f"Why queue: stage 1 lost {lost:.1%} at load 0.9 on 4 servers; an unbounded queue lost nobody, mean wait {waited:.2f} s")
    print(f"Backpressure: Retry-After median {np.median(fast):.0f} s at full speed, {np.median(slow):.0f} s with 3x slower servers")
    for jitter, rs in retry_runs.items():
        peak = mean_confidence_interval([r.peak_after_burst for r in rs], 0.95)
        extra = mean_confidence_interval([r.extra_rejections for r in rs], 0.95)
        print(f"Retries, {retry_label[jitter]}: peak {peak[0]:.0f} [{peak[1]:.0f}, {peak[2]:.0f}] arrivals/s, "
              f"{extra[0]:.0f} [{extra[1]:.0f}, {extra[2]:.0f}] retries rejected again")
    print(f"Orderings (4 servers): SJF mean wait {np.mean(sjf_w):.2f} s vs FIFO {np.mean(fifo_w):.2f} s; longest {np.max(sjf_w):.0f} s vs {np.max(fifo_w):.0f} s")
    r = mean_confidence_interval([x.wait[300:].mean() / y.wait[300:].mean()
                                  for x, y in zip(single["sjf by cost (the split)"], single["sjf by total tokens"])], 0.95)  # fmt: skip
    print(f"SJF key (1 server): by cost / by total tokens mean wait x{r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}]")
    for p, rs in auto_runs.items():
        first = mean_confidence_interval([x.first_order_after(auto.ramp_at) for x in rs], 0.95)
        bursts = mean_confidence_interval([x.ups_between(0.0, auto.ramp_at) for x in rs], 0.95)
        full = [len(x.rejected_at) for x in rs]
        print(f"Autoscaler {p}: first order {first[0]:.0f} s, {bursts[0]:.1f} orders for bursts, "
              f"503s in {sum(x > 0 for x in full)} of {len(full)} seeds (up to {max(full)})")
    print(f"Lead of the target-wait signal: {lead[0]:.0f} s [{lead[1]:.0f}, {lead[2]:.0f}]")

# %% [markdown]
# ## The interview answer
#
# > **Interviewer:** How would you implement request queuing when all servers are at capacity?
#
# - **Queue instead of rejecting at once** (stage 1 lost 26.3% at load 0.9 on 4 servers; the
#   queue lost none, for a mean wait of 2.19 s: *Why queue*): when `route_request` finds no free
#   slot, the gateway puts the request in a bounded priority queue (a heap keyed by the
#   ordering, O(log n) per call).
# - **Dequeue on completion** (with it the simulated M/M/4 waits matched Erlang C in 10 of 10
#   points: *The theory, checked*): each completion frees a slot, and the gateway gives it at once
#   to the best waiting request that *fits* the freed server (`peek(large_ok)`), so a large
#   request at the head never blocks small ones on a 40 GB server, and a skipped large request
#   is reserved after `max_skips` skips (*Head-of-line blocking*).
# - **Maximum depth and maximum wait** (53.2 s mean wait unbounded, 3.0 s at depth 20): in an
#   overload (load 1.1) the unbounded queue's longest wait reached 117 s; with max depth 20 the
#   longest was 9 s, and 8.8% were turned away at once. By Little's law the depth bounds the
#   *mean* wait (mean depth 11.75 = 3.93/s x 3.00 s). `max_wait` gives each request a deadline:
#   it times out at exactly `arrival + max_wait`, through `next_deadline()` and a timer, without
#   polling.
# - **Orderings** (SJF: 41% of FIFO's mean wait on 4 servers): FIFO for fairness; priority for
#   premium traffic (interactive mean wait 0.28 s against 1.86 s under FIFO); shortest job first
#   for the mean, paid in the longest wait (165 s against 15 s) unless aging bounds it (34 s at
#   20 tokens/s). SJF's size should be the cost, not the token count: on one server, ordering
#   by output tokens plus prompt tokens at 1/113 of their price cut the mean wait to x0.51
#   [0.48, 0.55] of ordering by total tokens (*One server, LLM-sized jobs*).
# - **Backpressure with Retry-After** (a median of 4 s at full speed, 11 s with 3x slower
#   servers): a full queue answers at once with `Retry-After = ceil((depth + 1) x span /
#   completions)`, capped at `max_wait`: the time to serve everyone waiting at the recent
#   completion rate, so it follows the servers' speed. Clients must jitter: obeying the same
#   `Retry-After` to the second made waves of 133 [130, 137] arrivals per second on a pool of 8
#   slots; with full jitter the peak was 53 [50, 56], and 569 against 358 retries were rejected
#   again (*Clients that retry*).
# - **Queue depth as the scale-up metric** (the leading signal ordered 181 s [151, 211] sooner):
#   depth measures excess demand, but a GPU replica takes minutes to join, so scale on a signal
#   that leads: the replicas needed for a target wait (Erlang C on the measured arrival rate),
#   with the depth above its Little's-law level (`stats()`) as the backlog net, and scale down
#   with hysteresis. It ordered nothing for short bursts, where the depth-held signal ordered
#   1.6 replicas per run (*Queue depth and the scale-up signal*).
#
# **Where this course differs from the expected answer:** the expected answer rejects a full
# queue with **429**; this course answers **503 Service Unavailable** with `Retry-After` by
# default, because RFC 9110 gives 503 for a server that is temporarily overloaded, while RFC
# 6585's 429 says *this client* sent too many requests. The status is a policy
# (`QueuePolicy(reject_status=429)`) for APIs that must match providers who send 429 for
# overload, and stage 6 uses 429 for what it means: a tenant over its own rate limit. Two more:
# SJF orders by expected cost (output tokens dominate), not by `estimated_tokens` ascending; and
# the scale-up signal is derived from a target wait and leads the queue, rather than being the
# raw depth.
#
# **Follow-ups to expect:** *What if clients ignore `Retry-After`?* Per-client rate limits (429,
# stage 6) and a depth bound still protect the servers; the jitter figures show the cost of not
# spreading retries. *How do you pick `max_depth`?* From the wait you can tolerate: depth = target
# wait x throughput (Little), and M/M/c/K gives the share turned away (*The theory, checked*).
# *How do you keep priority from starving batch traffic?* Aging or a `max_wait`, or a share of
# capacity reserved per class (stage 6).
