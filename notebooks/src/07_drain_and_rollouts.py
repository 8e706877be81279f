# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Stage 7 · Drain and rollouts: drain timeouts, rolling deploys, pre-warming, canaries
#
# Stage 1's `remove_server` drains one server and waits forever. A real deploy replaces the
# whole fleet, cannot wait forever for a 20-minute generation, must not drop capacity below what
# the traffic needs, and must stop itself when the new version is bad. This stage builds the
# deploy controller on top of the balancer and measures what a rollout costs. Slow start and
# re-routing (stage 4), affinity (stage 5) and tiers (stage 6) all matter during a rollout.
#
# **Your file:** `exercises/deploy.py` (`resolve_surge`, `resolve_unavailable`, `RollingDeploy`,
# `CanaryAnalysis`, `CanarySplit`). **Your checks:** one cell after each rule. The request path
# (its drain timeout), the plan and event types (`solution/core/deploy_types.py`) and the
# simulator are given.

# %%
# %matplotlib inline
import math

from solution.core.impl import demo_impl, needs_working_code
from solution.sim import deployrace as dr
from solution.sim.deploysim import deploy_metrics, timeline
from solution.widgets import deploy as dw

demo = demo_impl()  # the reference (in the candidate's bundle: your exercises package)


def needs(*names: str) -> None:
    """Inside ``needs_working_code``: a note instead of a NameError when a cell above could not run yet (your stubs)."""
    missing = [n for n in names if n not in globals()]
    if missing:
        raise NotImplementedError(f"Stage 7: this cell uses {', '.join(missing)} from the cells above, which need your deploy "
                                  "classes; not implemented yet")  # fmt: skip


# %% [markdown]
# ## The task
#
# Implement the classes in `exercises/deploy.py`. The controller is a **pure state machine**: it
# never sleeps or polls; it is fed events (`Ready`, `Drained`, `Fault`, `Tick`, `Window`) with an
# explicit time and answers actions (`Start`, `Drain`, `SetCanaryWeight`, `EndCanary`, `Done`,
# `RolledBack`), logging every decision with its reason. The simulator (and later a gateway)
# carries the actions out.
#
# | name | does |
# |---|---|
# | `resolve_surge(value, replicas)`, `resolve_unavailable(value, replicas)` | Kubernetes' `maxSurge` / `maxUnavailable`: an int or a percent of the replicas, surge rounded up, unavailability down |
# | `RolloutPlan(max_surge, max_unavailable, drain_timeout, prewarm, canary)`, `CanaryPlan(steps, window, alpha, min_requests, excluded_tiers, metrics)` | given (`solution/core/deploy_types.py`): the plan, validated when built |
# | `RollingDeploy(servers, new_version, plan, now)`: `initial_actions`, `on(event)`, `rollback(at, reason)`, `next_rollout(...)`, `next_event_time()`, `servers()`, `serving()`, `status(id)`, `state`, `min_ready`, `max_servers`, `log` | the controller: replaces version A by B within the two bounds, pre-warm or drain-first, the canary's steps, rollback |
# | `CanaryAnalysis(plan)`: `judge(a, b)`, `level()`, `nominal_false_rollback(steps)` | one canary step's verdict: promote, hold or rollback, with its p-value and reason |
# | `CanarySplit(inner, weight, new_version, excluded_tiers, seed)`: `set_weight`, `end`, `side(request)`, `stats()` | a routing strategy: a share of the sessions to B by a hash, excluded tiers never |
#
# **What the check and the grader score.** Each check cell feeds your controller the same events
# as the reference and compares every action, decision, verdict and error with the recorded
# ones. The grader runs the same groups on hidden seeds, each group scored on its own:
#
# | rule group | what it requires | section |
# |---|---|---|
# | `bounds: surge rounds up, unavailable down` | `resolve_surge` = `ceil(R x p / 100)`, `resolve_unavailable` = `floor(R x p / 100)` for a percent, an int as it is; a percent outside 0-100, a negative, a bool or a fraction refused; both 0 refused | The two bounds |
# | `rolling update: prewarm keeps R ready` | with pre-warm, new servers start within `R + surge` and an old one is drained only while more than `R` are ready | The rolling update |
# | `rolling update: drain-first down to R - unavailable` | without pre-warm, old servers are drained down to `R - unavailable` ready and new ones start in the room the surge leaves; each `Drain` carries the drain timeout | The rolling update |
# | `faults: the bound breaks only by a fault` | a `Fault` may take the ready servers below `R - unavailable`; the controller then drains nothing until new servers are ready again, and replaces the dead one | The rolling update |
# | `canary: steps, windows, promote and hold` | per step `w`, `min(surge, max(1, ceil(R x w / 100)))` new servers, the weight set once they are ready, the step judged once at the first window at least `window` s after it with `min_requests` per version; hold waits a window, promote goes on, 100 ends the canary | The canary |
# | `canary: rollback leaves only version A` | a rollback (a verdict or `rollback(at, reason)`) sets the weight to 0, drains every B server and restores `R` servers of version A; state `rolled_back` | The canary |
# | `one rollout at a time, time order, bad events` | `next_rollout` while one runs is `RolloutInProgressError`; time going back, an unknown server, an event for the wrong state refused; nothing changes | Bad input |
# | `canary analysis: Fisher exact and Mann-Whitney U, one-sided` | errors by Fisher's exact test and latency by Mann-Whitney U (tie-corrected normal approximation), both one-sided, each at `alpha / m`; hold without `min_requests` per version | The canary's statistics |
# | `canary split: hash of the session, excluded tiers` | a BLAKE2b hash (keyed by the seed) of the session id, else the request id, below `weight` goes to B; excluded tiers never; the weight only moves sessions to B | The canary |
# | `bad input` | `TypeError` / `ValueError` for bad plans, fleets, names, times and weights, before any change | Bad input |
# | `random rollouts with faults` | seeded rollouts with random bounds, canaries, faults and answers in random order agree with the reference, action by action | Bad input |
# | `cost: a canary split decision is O(log S), no fleet scan` | the time per `CanarySplit` decision may grow at most 8x from 16 to 4,096 servers: one inner strategy per version, fed by the router's hooks, never a scan of the fleet | Bad input |

# %%
from solution.checks import check_stage7
from solution.core.impl import load_impl

impl = load_impl(reload=True)  # LB_IMPL picks it; reload=True picks up your latest edits
print(f"implementation under test: {impl.__name__}")

# %% [markdown]
# ## Drain, and its timeout
#
# `remove_server` (stage 1) stops new traffic to a server and lets its requests finish. It waits
# forever, and an LLM server can hold a 20-minute generation. The request path now takes
# `remove_server(server_id, now, drain_timeout=...)`: at `now + drain_timeout` every request
# still on the server is ended there, with a clear outcome and never silently:
#
# * one that has **not streamed** a token yet is **re-sent** by stage 4's retry ledger, once
#   (the client sees exactly one answer);
# * one that **has streamed** (or with no retries left) ends `Failed(reason="drain_timeout")`:
#   the client already holds half an answer, and a second one would be a different answer;
# * a `Drained(server_id, at, forced)` outcome says when the server's last request left (the
#   controller's signal to stop it), `forced` counting those the timeout ended.
#
# Sticky sessions (stage 5) leave the server when its drain **starts**, not when it times out:
# their next turn goes elsewhere at once. `server_state(id)` answers `starting`, `ready`,
# `draining` or `gone`.
#
# By hand: server `a` runs three requests, `b` is idle; `a` is drained with a 5 s timeout. `r1`
# finishes in time, `r2` has streamed, `r3` has not. Then a session whose home is `a` sends its
# next turn just after the drain starts.
#
# **Predict first:** at the deadline, which requests does the client see answered, and how many
# times each?

# %%
from solution.checks.stage7 import ByLoad  # the fewest requests in flight: an indexed rule, support code
from solution.core.health_types import RetryPolicy
from solution.core.path import RequestPath
from solution.core.request import Request
from solution.core.routing import Router

with needs_working_code():  # the retry ledger is stage 4's (yours in the bundle)
    path = RequestPath(Router(ByLoad()), ledger=demo.RetryLedger(RetryPolicy(max_tries=3)))
    seen = path.add_server("a", 4, 80, 0.0)
    for rid in ("r1", "r2", "r3"):
        seen += path.submit(Request(rid, 100), 0.0)
    seen += path.add_server("b", 4, 80, 0.0)
    path.first_token("r2", 0.5)  # r2 has streamed its first token
    seen += path.remove_server("a", 1.0, drain_timeout=5.0)
    print(f"t = 1.0: a is {path.server_state('a')}, deadline at t = {path.next_event_time():.1f}")
    seen += path.completed("r1", "a", 3.0)
    at_deadline = path.tick(6.0)
    seen += at_deadline
    print("at the deadline:", *(f"  {o}" for o in at_deadline), sep="\n")
    print(f"a is {path.server_state('a')}")
    seen += path.completed("r3", "b", 9.0)
    finals = [o for o in seen if type(o).__name__ in ("Delivered", "Failed")]
    print("final outcomes:", ", ".join(f"{o.request_id} {type(o).__name__}" + (f"({o.reason})" if hasattr(o, "reason") else "")
                                       for o in finals))  # fmt: skip
    print(f"each request ended exactly once: {sorted(o.request_id for o in finals) == ['r1', 'r2', 'r3']}")

with needs_working_code():  # a sticky session (stage 5's SessionAffinity, yours in the bundle) on a draining server
    from solution.core.affinity_types import AffinityPolicy
    from solution.core.clock import ManualClock

    clock = ManualClock()
    sticky = RequestPath(Router(demo.SessionAffinity(ByLoad(), AffinityPolicy("soft"), clock=clock)),
                         ledger=demo.RetryLedger(RetryPolicy(max_tries=3)))  # fmt: skip
    sticky.add_server("a", 4, 80, 0.0)
    sticky.submit(Request("turn-1", 100, session_id="s"), 0.0)  # the session's home: a
    sticky.add_server("b", 4, 80, 0.0)
    clock.set(1.0)
    sticky.remove_server("a", 1.0, drain_timeout=60.0)
    (moved,) = sticky.submit(Request("turn-2", 100, session_id="s"), 1.0)
    print(f"session s: turn 1 on a; a drains at t = 1.0 (deadline t = 61.0); turn 2 at t = 1.0 goes to {moved.server_id}")

# %% [markdown]
# The same in a fleet. Every scenario of the stage's race runs on 8 GPU servers (8 slots each)
# at 58% of their capacity; a new server loads its weights for 3 minutes and warms for 30 s.
# In the `long` scenario 0.3% of the requests are 30,000-token generations (10 minutes), and the
# drain timeout is 120 s, so it fires. The race runs every scenario once per seed; this section
# shows its `long` row, the sections below the rest.
#
# **Predict first:** with a 120 s timeout, are any requests lost, and how much longer does the
# rollout take than with no long generations?

# %%
RACE_SEEDS = (0, 1, 2)


def cell(scenario: str, metric: str, fmt: str = ".0f") -> str:
    """One metric of the race as 'mean [low, high]' (95% t interval over the seeds), or the value when all seeds agree."""
    mean, lo, hi = race.interval(scenario, metric)
    if math.isnan(mean):
        return "-"
    lo = max(lo, 0.0)  # every metric here is a count, a time or a share: the t interval is clipped at 0
    return f"{mean:{fmt}}" if lo == hi else f"{mean:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


with needs_working_code():  # the race runs your RollingDeploy; this section shows its long row, the sections below the rest
    race = dr.deploy_race(dr.SCENARIOS, seeds=RACE_SEEDS, workers=1)
    long_scenario, long_plan = dr.deploy_scenario("long")
    print(f"fleet: {long_scenario.replicas} servers x {long_scenario.slots} slots at {long_scenario.rate:g} requests/s "
          f"({long_scenario.rate / long_scenario.capacity_rate():.0%} of capacity); a new server loads for {dr.GPU_STARTUP:.0f} s and warms "
          f"for {dr.GPU_WARMUP:.0f} s; long: {long_scenario.long_share:.1%} of the requests are {long_scenario.long_tokens:,}-token "
          f"generations, drain timeout {long_plan.drain_timeout:.0f} s")
    print(f"{len(RACE_SEEDS)} seeds, 95% t intervals (clipped at 0)")
    print(f"long generations, drain timeout 120 s: rollout {cell('long', 'duration')} s (the same fleet without them: "
          f"{cell('good', 'duration')} s); requests ended by the timeout {cell('long', 'forced', '.1f')}, of which failed "
          f"{cell('long', 'errors', '.1f')}; lost {cell('long', 'lost')}")

# %% [markdown]
# Reading it. Nothing is lost (0 in every run): each request the timeout reached either went
# to another server (not streamed yet) or ended `Failed("drain_timeout")`; here every one of
# them had streamed (a 10-minute generation streams for minutes), so forced and failed are the
# same 10.0 per rollout. Each batch waits the full timeout for its longest generation, so the
# rollout takes 1274 s instead of 910 s. The timeout is a trade: shorter cuts more streamed
# answers, longer slows every batch. Set it a little above the p99 generation time (the GPU
# settings below use 600 s); 120 s here shows it firing.

# %% [markdown]
# ## The two bounds: Kubernetes' `maxSurge` and `maxUnavailable`
#
# A rolling update replaces `R` servers of version A by version B. Two numbers bound it, as in
# Kubernetes' `Deployment` (`strategy.rollingUpdate`):
#
# * `maxSurge`: how many servers may exist **above** `R` (extra GPUs held during the rollout);
# * `maxUnavailable`: how many may be missing **below** `R` ready (capacity given up).
#
# Each is an int or a whole percent of `R`. A percent **surge rounds up** (a small fleet still
# makes progress) and a percent **unavailability rounds down** (never more capacity lost than
# the percent says). Both 0 is refused: nothing could be started or drained. Kubernetes'
# defaults are 25% and 25%. This course counts a draining server against `R + surge`: it still
# holds its GPU (Kubernetes does not count terminating pods).
#
# **Predict first:** at Kubernetes' defaults, how many servers may a fleet of 3 take down at
# once? Of 10?

# %%
with needs_working_code():
    cases = [("25%", "25%", r) for r in (1, 2, 3, 4, 8, 10, 40)] + [(1, 0, 8), (0, 1, 8), ("10%", "10%", 8), (0, "10%", 8), ("0%", 0, 4)]
    bounds = dw.bounds_rows(demo.resolve_surge, demo.resolve_unavailable, cases)
    print(f"{'maxSurge':>9} {'maxUnavailable':>15} {'R':>4}   surge  unavailable  servers: at most  ready: at least")
    for b in bounds:
        head = f"{b.surge!s:>9} {b.unavailable!s:>15} {b.replicas:>4}   "
        if b.error:
            print(head + f"refused: {b.error}")
        else:
            print(head + f"{b.resolved_surge:>5} {b.resolved_unavailable:>12} {b.replicas + b.resolved_surge:>17} "
                  f"{b.replicas - b.resolved_unavailable:>16}")  # fmt: skip

# %% [markdown]
# A fleet of 3 at 25% / 25% may start one extra server but take none down: the rounding keeps
# small fleets safe. 10% of 8 servers gives one server of surge and none unavailable. `0` and
# `10%` of 8 both resolve to 0, so that pair is refused as if both were written 0.

# %% tags=["check-cell"]
report = check_stage7(impl, only="bounds")

# %% [markdown]
# ## The rolling update, as a timeline
#
# The controller starts new servers (each must pass its health checks and finish slow start:
# `Ready`) and drains old ones (each must report `Drained`), batch by batch, keeping at most
# `R + surge` servers and at least `R - unavailable` ready. Two ways to order a batch:
#
# * **drain-first** (Kubernetes' order with `maxUnavailable > 0`): drain old servers down to
#   `R - unavailable`, start new ones in the room; fast, with a capacity dip;
# * **pre-warm**: start a new server, wait until it is ready (weights loaded, warm), and only then
#   drain an old one; an old server is drained only while more than `R` are ready.
#
# The settings this notebook recommends for GPU fleets, where a server takes minutes to load its
# weights: `maxSurge` 25%, `maxUnavailable` 0, pre-warm, a drain timeout of 600 s. Below, one
# seed of the same traffic under each: servers by version and state, the ready servers (the
# capacity line), and the latency band.
#
# **Predict first:** how long is the capacity dip under Kubernetes' defaults, and how much longer
# does the GPU setting's rollout take?

# %%
with needs_working_code():
    runs = {name: dr.deploy_run(name, seed=0) for name in ("good", "k8s-defaults", "peak", "peak-k8s")}
    lines = {name: timeline(run, 10.0) for name, run in runs.items()}
    display(dw.timeline_figure(runs["k8s-defaults"], lines["k8s-defaults"], bound=6,
                               title="Kubernetes' defaults (maxSurge 25%, maxUnavailable 25%, drain-first), 8 GPU servers"))  # fmt: skip
    display(dw.timeline_figure(runs["good"], lines["good"], bound=8,
                               title="GPU settings (maxSurge 25%, maxUnavailable 0, pre-warm), 8 GPU servers"))  # fmt: skip
    for label, p in (("Kubernetes' defaults", dr.k8s_plan()), ("GPU settings", dr.gpu_plan())):
        print(f"{label}: maxSurge {p.max_surge}, maxUnavailable {p.max_unavailable}, {'pre-warm' if p.prewarm else 'drain-first'}, "
              f"drain timeout {p.drain_timeout:.0f} s")
    for name, label in (("k8s-defaults", "Kubernetes' defaults"), ("good", "GPU settings")):
        m = deploy_metrics(runs[name])
        ready = lines[name]["ready"]
        below = float((ready < runs[name].scenario.replicas).sum() * 10.0)
        print(f"{label} (seed 0): rollout {m['duration']:.0f} s, fewest ready {m['min_capacity']:.0%} of R, "
              f"{below:.0f} s with fewer than R ready")
    print(f"over {len(RACE_SEEDS)} seeds: Kubernetes' defaults {cell('k8s-defaults', 'duration')} s, fewest ready "
          f"{cell('k8s-defaults', 'min_capacity', '.2f')} of R; GPU settings {cell('good', 'duration')} s, fewest ready "
          f"{cell('good', 'min_capacity', '.2f')} of R")

# %% [markdown]
# Under Kubernetes' defaults two of the eight servers are gone for a whole start-up (weights
# and warm-up) per batch: the black line sits at `R - unavailable` (0.75 of R) for 450 s of
# seed 0's rollout. With the GPU settings it never leaves `R` (1.00): the extra servers load
# their weights while the old ones still serve. The price is time (910 s against 452 s) and two
# spare GPUs for the rollout's length.

# %% tags=["check-cell"]
report = check_stage7(impl, only="rolling update")

# %% [markdown]
# A server can also die during a rollout (a `Fault`). Then the ready servers may fall below the
# floor: not by the controller's hand. It drains nothing more until new servers are ready again,
# and starts a replacement.

# %% tags=["check-cell"]
report = check_stage7(impl, only="faults")

# %% [markdown]
# ## Pre-warm against drain-first, when it matters
#
# At 58% load the dip costs nothing visible: six servers carry the traffic. During a peak (the
# traffic 1.5x for the whole rollout) they cannot.
#
# **Predict first:** during the peak, how many times the steady p99 latency does drain-first
# reach, and pre-warm?

# %%
with needs_working_code():
    needs("runs", "lines", "race")
    display(dw.capacity_figure({"pre-warm (GPU settings)": (runs["peak"], lines["peak"]),
                                "drain-first (Kubernetes' defaults)": (runs["peak-k8s"], lines["peak-k8s"])},
                               title="1.5x traffic during the rollout"))  # fmt: skip
    for name, label in (("good", "58% load, pre-warm"), ("k8s-defaults", "58% load, drain-first"),
                        ("peak", "1.5x peak, pre-warm"), ("peak-k8s", "1.5x peak, drain-first")):  # fmt: skip
        print(f"{label:<24} fewest ready {cell(name, 'min_capacity', '.2f')} of R; p99 {cell(name, 'p99_steady', '.1f')} s steady, "
              f"{cell(name, 'p99_rollout', '.1f')} s during the rollout; rollout {cell(name, 'duration')} s")
    ratio = race.interval("peak-k8s", "p99_rollout")[0] / race.interval("peak-k8s", "p99_steady")[0]
    ratio_pw = race.interval("peak", "p99_rollout")[0] / race.interval("peak", "p99_steady")[0]
    print(f"during the peak: drain-first's p99 is {ratio:.1f}x the steady p99, pre-warm's {ratio_pw:.2f}x")

# %% [markdown]
# Drain-first at the peak puts the traffic of eight servers on six for minutes at a time and the
# queue grows: its p99 is 2.7x the steady one (61.9 s against 23.3 s); pre-warm keeps eight
# ready and its p99 at 1.04x. At 58% load the dip cost nothing measurable (24.2 s against
# 23.8 s during the rollout). On GPUs a server's start-up
# is minutes, so every server taken down before its replacement is ready is minutes of lost
# capacity: `maxUnavailable = 0` and pre-warm. Drain-first is faster and needs no spare GPU; it
# suits a fleet with headroom.

# %% [markdown]
# ## The canary
#
# A rolling update replaces everything, including with a bad version. A **canary** first sends a
# small share of the traffic to B, compares B with A, and rolls back automatically when B is
# worse (Argo Rollouts' and Flagger's steps, e.g. 1% -> 5% -> 25% -> 100%). Per step `w` the
# controller starts `min(surge, max(1, ceil(R x w / 100)))` B servers inside the surge (the
# stable fleet stays whole), sets `SetCanaryWeight(w / 100)` once they are ready, and judges the
# step once: at the first window at least `window` seconds later that holds `min_requests` per
# version. Promote goes to the next step; hold waits a window; rollback sets the weight to 0,
# drains every B server and leaves only A serving. A step of 100 ends the canary
# (`EndCanary`) and the rolling update replaces the rest.
#
# `CanarySplit` decides who goes to B: a keyed BLAKE2b hash of the session id (else the request
# id) below the weight. A conversation stays on one version (its KV cache too); raising the
# weight only moves sessions to B; an excluded tier (premium, by default) never goes to B.
#
# **Predict first:** of 10,000 sessions at a 5% weight, how many go to B, and how many premium
# requests?

# %%
with needs_working_code():
    split = demo.CanarySplit(ByLoad, weight=0.05, new_version="B", excluded_tiers=("premium",), seed=0)
    free = [split.side(Request(f"q{k}", 100, session_id=f"s{k}")) for k in range(10_000)]
    premium = [split.side(Request(f"p{k}", 100, session_id=f"s{k}", tier="premium")) for k in range(1_000)]
    print(f"weight 5%: {free.count('new')} of 10,000 sessions to B; premium {premium.count('new')} of 1,000")
    split.set_weight(0.25)
    later = [split.side(Request(f"q{k}", 100, session_id=f"s{k}")) for k in range(10_000)]
    moved_back = sum(1 for a, b in zip(free, later) if a == "new" and b != "new")
    print(f"weight 25%: {later.count('new')} of 10,000 to B; sessions that were on B and left it: {moved_back}")
    again = [split.side(Request(f"t2-{k}", 100, session_id=f"s{k}")) for k in range(10_000)]
    print(f"a second turn of each session lands on the same version: {again == later}")

# %% tags=["check-cell"]
report = check_stage7(impl, only=("canary: steps", "canary split"))

# %% [markdown]
# ### Every decision, with its reason
#
# The controller logs each decision (`log`: `Decision(at, action, reason)`), including the ones
# that change nothing. A small fleet (4 servers, 20 s start-up, 10 s warm-up) rolls out a version
# failing 10% of its requests behind a canary of 25% then 100%, judged on 20 s windows of at
# least 30 requests per version; the timer's "nothing to do yet" entries are left out.
#
# **Predict first:** how many windows does the 25% step wait before it has enough data to judge?

# %%
with needs_working_code():
    small = dr.widget_run(canary_steps=(25, 100), error_rate=0.1)
    shown = [d for d in small.log if not (d.action is None and d.reason.startswith("timer"))]
    for d in shown:
        print(f"{d.at:6.1f} s  {type(d.action).__name__ if d.action is not None else '-':<16} {d.reason}")
    print(f"{len(small.log)} decisions logged, {len(shown)} shown; result: {small.result}")

# %% [markdown]
# The step holds while B has served too few requests (no test is run then), and the first window
# with enough data on both sides is judged once: Fisher's test on the errors rolls it back, the
# weight goes to 0 and the B server is drained.

# %% [markdown]
# ### A bad version, with and without a canary
#
# In the race B fails 2% of its requests (`bad-*`) or is 30% slower (`slow-canary`); the canary
# steps are 5%, 25%, 100%, judged on 60 s windows of at least 200 requests per version.
#
# **Predict first:** how many requests does a 2%-failing version answer with an error when
# rolled out without a canary, and with one?

# %%
with needs_working_code():
    needs("race")
    for name, label in (("bad-no-canary", "fails 2%, no canary"), ("bad-canary", "fails 2%, canary"), ("slow-canary", "30% slower, canary")):
        rolled = sum(v == 0 for v in race.values[name]["final_new"])
        print(f"{label:<20} rolled back {rolled} of {len(RACE_SEEDS)}; errors {cell(name, 'errors', '.1f')}; requests that ran on B "
              f"{cell(name, 'blast', ',.0f')}; detected {cell(name, 'detect')} s after B's first request")
print(f"P(at most 1 error in 200 requests failing 2%) = {0.98 ** 200 + 200 * 0.02 * 0.98 ** 199:.3f}")

# %% [markdown]
# Without a canary the bad version reaches every server and answers 392.0 requests with an
# error; with one, 5.7, and B served 433 requests (a few hundred against 19,433) before the
# rollback. A 2% failure is hard to see in 200 requests (at most one error in 200 happens with
# probability 0.089), so a run can pass the first step and be caught at the next: that is the
# wide interval.

# %% tags=["check-cell"]
report = check_stage7(impl, only="canary: rollback")

# %% [markdown]
# ## The canary's statistics: false alarms against detection speed
#
# A canary asks "is B **worse** than A?", so each test is **one-sided** (a better B is no reason
# to stop):
#
# * **errors: Fisher's exact test** on the 2x2 table (errors and successes of A and B). Error
#   rates of 0.1-2% over a few hundred requests give expected counts far below the 5 a z-test's
#   normal approximation needs; the exact test is valid at any count. It is discrete, so its true
#   size is at most alpha (conservative).
# * **latency: the Mann-Whitney U test** on the window's samples. Latencies are skewed with long
#   tails; a t-test on means follows a few outliers, U uses ranks only. Normal approximation with
#   the tie correction.
# * **Bonferroni**: with `m` metrics each is tested at `alpha / m`, so a step with identical
#   versions rolls back with probability at most alpha. A canary judges `k` steps on fresh data
#   each: its nominal false-rollback rate is `1 - (1 - alpha)^k`. Each step is judged once, so
#   looking at the data again does not inflate it.
#
# One step by hand, then the measured rate over many canaries of two identical versions.
#
# **Predict first:** at alpha 0.05 and three judged steps, what share of perfectly good releases
# does the canary roll back?

# %%
import numpy as np

with needs_working_code():
    plan = dr.canary_plan((1, 5, 25, 100))
    analysis = demo.CanaryAnalysis(plan)
    rng = np.random.default_rng(7)
    lat_a = tuple(float(x) for x in rng.lognormal(math.log(5.0), 0.8, 1_980))
    lat_b = tuple(float(x) for x in rng.lognormal(math.log(5.0), 0.8, 392))
    for label, b in (("B as good as A (2 of 400 errors)", demo.VersionStats(400, 2, lat_b[:398])),
                     ("B failing 3% (12 of 400 errors)", demo.VersionStats(400, 12, lat_b[:388])),
                     ("B with 150 requests", demo.VersionStats(150, 1, lat_b[:149]))):  # fmt: skip
        v = analysis.judge(demo.VersionStats(2_000, 20, lat_a), b)
        print(f"{label}: {v.outcome} (p = {v.p_value:.3g}); {v.reason}")
    print(f"per-metric level alpha/m = {analysis.level():.3f}; nominal false-rollback rate of a canary with "
          f"{sum(s < 100 for s in plan.steps)} judged steps: {analysis.nominal_false_rollback():.4f}")
    fr = dr.false_rollbacks(plan, seeds=400)
    (t, tlo, thi), (c, clo, chi) = fr.test_rate(), fr.canary_rate()
    print(f"measured on identical versions (95% Wilson intervals): per judgement {t:.4f} [{tlo:.4f}, {thi:.4f}] against at most "
          f"{fr.nominal_test:.4f} ({fr.judged} judgements); per canary {c:.4f} [{clo:.4f}, {chi:.4f}] against at most "
          f"{fr.nominal_canary:.4f} ({fr.canaries} canaries)")
    print(f"the nominal rate is inside the interval: per judgement {tlo <= fr.nominal_test <= thi}, per canary {clo <= fr.nominal_canary <= chi}")

# %% [markdown]
# The measured rates sit at or a little under the nominal ones, as a conservative exact test
# should: 0.0407 per judgement against at most 0.0500, and 0.1175 per canary against at most
# 0.1426 (inside the interval). The price of three looks is real: one good release in eight or
# nine is rolled back at alpha 0.05. Fewer steps, a smaller alpha or more requests per step buy fewer false alarms with
# slower detection.

# %% tags=["check-cell"]
report = check_stage7(impl, only="canary analysis")

# %% [markdown]
# ### Blast radius and time to detect, against the canary's first share
#
# The version failing 2%, with a first step of 1%, 5% or 25% (then 25%, 100%), and without a
# canary; 4,800 s of traffic.
#
# **Predict first:** does a 1% first step hurt fewer users than a 25% one?

# %%
with needs_working_code():
    BLAST_SEEDS = (0, 1, 2)
    blast = dr.blast_vs_share((1, 5, 25), seeds=BLAST_SEEDS, workers=1)
    display(dw.blast_figure({k: v for k, v in blast.items() if k != "none"}, seeds=len(BLAST_SEEDS)))
    for label, row in blast.items():
        d, b, e = row["detect"], row["blast"], row["errors"]
        detect = "no rollback" if math.isnan(d[0]) else f"detected after {d[0]:.0f} s [{d[1]:.0f}, {d[2]:.0f}]"
        print(f"first step {label:>5}: rolled back {row['rolled_back'][0]:.0%} of {len(BLAST_SEEDS)} runs, {detect}; blast radius "
              f"{b[0]:,.0f} [{b[1]:,.0f}, {b[2]:,.0f}] requests; errors {e[0]:.1f} [{e[1]:.1f}, {e[2]:.1f}]")

# %% [markdown]
# The blast radius is set by `min_requests` (B must serve that many before any judgement), not
# by the share: 202 requests at 1% and 290 at 25%, against 27,691 without a canary. The share
# sets how long it takes to gather them: 2995 s at 1%, 159 s at 25%. A smaller first step buys
# nothing in blast radius at a fixed `min_requests`; it costs detection time. To hurt fewer
# users, lower `min_requests` (and accept a weaker test) or exclude the tiers that matter.

# %% [markdown]
# ## What a rollout costs, scenario by scenario
#
# Every scenario of the race, 3 seeds each (the command-line race, `python -m solution.sim
# deploy-race --seeds 5`, runs 5 and prints the same table): rollout duration, fewest ready
# servers (a share of `R`), requests lost and answered with an error, p99 end-to-end latency
# before and during the rollout, time to detect a bad version, and the requests that ran on B.
#
# **Predict first:** which scenario loses requests?

# %%
with needs_working_code():
    needs("race")
    COLUMNS = (("duration", "duration (s)", ",.0f"), ("min_capacity", "fewest ready (of R)", ".2f"), ("lost", "lost", ".0f"),
               ("errors", "errors", ",.1f"), ("p99_steady", "p99 steady (s)", ".1f"), ("p99_rollout", "p99 rollout (s)", ".1f"),
               ("detect", "detect (s)", ",.0f"), ("blast", "on B (requests)", ",.0f"))  # fmt: skip
    print(f"{len(RACE_SEEDS)} seeds, mean [95% t interval, clipped at 0]; '-': does not apply")
    for name in race.values:
        print(f"{name}:  " + "; ".join(f"{label} {cell(name, metric, fmt)}" for metric, label, fmt in COLUMNS))
    print(f"requests lost in any run of any scenario: {max(max(race.values[s]['lost']) for s in race.values):.0f}")

# %% [markdown]
# No scenario lost a request: the drain timeout re-sends what it may and fails what it must.
# The GPU settings never leave `R` ready; Kubernetes' defaults go to 0.75 of it, which the peak
# turns into latency (61.9 s). The canaries roll the bad and the slow version back after a few
# hundred requests (433 and 213 on B).

# %% [markdown]
# ## Kubernetes, Argo Rollouts, Flagger and Envoy, mapped onto the controller
#
# | the course | Kubernetes | Argo Rollouts / Flagger | Envoy | what it lacks for GPU fleets |
# |---|---|---|---|---|
# | `remove_server(..., drain_timeout)`, `Drained` | pod termination: `preStop` hook, then SIGTERM, SIGKILL after `terminationGracePeriodSeconds` (default 30 s); the endpoint leaves the Service | the same pods | connection draining: `drain_timeout` on listeners, `/drain_listeners`, HTTP/2 GOAWAY | 30 s kills every long generation; a SIGKILL gives no re-send of unstreamed requests |
# | `Ready` (health + slow start) | readiness probe (`initialDelaySeconds`, `periodSeconds`), `minReadySeconds` | the same | active health checks, `slow_start_config` | weights load for minutes: a readiness probe that passes before the caches are warm sends full traffic to a cold server |
# | `maxSurge`, `maxUnavailable`, rounding | `Deployment.spec.strategy.rollingUpdate` (25% / 25% defaults, same rounding) | `canary.maxSurge` / `maxUnavailable` | - | a default of 25% unavailable is a quarter of the fleet gone for a whole start-up; terminating pods do not count against the surge, so GPUs can be over-committed |
# | pre-warm | `maxUnavailable: 0` approximates it | the same, plus `setCanaryScale` | - | no notion of "warm" beyond readiness |
# | canary steps, `SetCanaryWeight` | none (replica ratios only) | `steps: setWeight / pause / analysis`; Flagger `stepWeight`, `maxWeight` | weighted clusters (`weighted_clusters`, `runtime_key_prefix`) | per-request weights ignore sessions: a conversation can flip versions and lose its KV cache |
# | `CanaryAnalysis` (Fisher, Mann-Whitney U, Bonferroni) | none | `AnalysisTemplate` (Prometheus queries, `successCondition`, `failureLimit`); Flagger metric thresholds | outlier detection ejects a failing host, not a version | thresholds on rates, not tests: no control of false rollbacks, and few requests per step at low traffic |
# | rollback leaves only A | `kubectl rollout undo` (by hand) | automatic abort to the stable ReplicaSet | - | - |
# | `CanarySplit` by session hash, excluded tiers | - | header / cookie routing in the mesh | `hash_policy` (ring hash) per cluster, not across the split | tiers (premium kept off the canary) are the operator's job |
#
# The course's controller is the part these systems split among themselves: Kubernetes holds the
# bounds, Argo or Flagger the steps and analysis, Envoy the weights and the drain. Nomad's
# `update` block carries the same knobs in one place (`max_parallel`, `min_healthy_time`,
# `canary`, `auto_promote`, `auto_revert`). `docs/deploy.md` maps every parameter.

# %% [markdown]
# ## Play a rollout
#
# Four servers of four slots at 2 requests/s, 20 s start-up and 10 s warm-up, the deploy at 60 s.
# Pick the surge, the unavailability, pre-warm or drain-first, the canary's steps and how often
# version B fails: each change runs one small seeded rollout and shows its timeline, its capacity
# dip, the time to detect a bad B and the requests that ran on it. Try maxSurge 0 with
# maxUnavailable 0, then a 10% error rate without and with a canary.

# %% tags=["nbval-ignore-output"]
dw.DeployExplorer()

# %% [markdown]
# ## Bad input, one rollout at a time, random rollouts, the cost of a split
#
# `maxSurge` and `maxUnavailable` both 0, a percent outside 0-100, a bool or a fraction, steps
# not increasing or outside (0, 100], alpha outside (0, 1), an empty or duplicated fleet, a time
# going back, an event for a server in the wrong state: `TypeError` or `ValueError` before any
# change. A second rollout on a fleet while one runs is a `RolloutInProgressError` (a
# `ValueError`). Then seeded rollouts with random bounds, canaries, faults and answers in random
# order, against the reference, action by action. And the cost: a split decision is one inner
# decision among one version's servers, so its time may grow at most 8x from 16 to 4,096
# servers (a scan of the fleet grows it as the fleet grows).

# %% tags=["check-cell"]
report = check_stage7(impl, only=("one rollout", "bad input", "random", "cost"))

# %% [markdown]
# The figures the interview answer below cites, in one place:

# %%
with needs_working_code():
    needs("runs", "bounds", "fr", "blast", "race")
    print(f"drain by hand: r1 Delivered, r2 Failed(drain_timeout) (streamed), r3 re-sent to b and Delivered; each ended once")
    print(f"long generations, timeout 120 s: {cell('long', 'forced', '.1f')} requests ended per rollout, "
          f"{cell('long', 'errors', '.1f')} failed, {cell('long', 'lost')} lost; rollout {cell('long', 'duration')} s "
          f"against {cell('good', 'duration')} s")
    print(f"25%/25% of 3 servers: surge {demo.resolve_surge('25%', 3)}, unavailable {demo.resolve_unavailable('25%', 3)}; "
          f"of 10: {demo.resolve_surge('25%', 10)}, {demo.resolve_unavailable('25%', 10)}")
    print(f"fewest ready: drain-first {cell('k8s-defaults', 'min_capacity', '.2f')} of R, pre-warm {cell('good', 'min_capacity', '.2f')}; "
          f"rollout {cell('k8s-defaults', 'duration')} s against {cell('good', 'duration')} s")
    print(f"1.5x peak: p99 {cell('peak-k8s', 'p99_rollout', '.1f')} s drain-first, {cell('peak', 'p99_rollout', '.1f')} s pre-warm "
          f"(steady {cell('peak', 'p99_steady', '.1f')} s)")
    print(f"2%-failing B: errors {cell('bad-no-canary', 'errors', '.1f')} without a canary, {cell('bad-canary', 'errors', '.1f')} with; "
          f"on B {cell('bad-no-canary', 'blast')} against {cell('bad-canary', 'blast')} requests")
    for label in ("1%", "25%"):
        print(f"first step {label}: detected after {blast[label]['detect'][0]:.0f} s, blast radius {blast[label]['blast'][0]:.0f} requests")
    (c, clo, chi) = fr.canary_rate()
    print(f"false rollbacks per 3-step canary: {c:.4f} [{clo:.4f}, {chi:.4f}], nominal at most {fr.nominal_canary:.4f}")

# %% [markdown]
# ## The interview answer
#
# > **Interviewer:** How would you implement graceful server drain for rolling deployments?
#
# - **Stage 1's `remove_server` is the pattern:** stop new traffic to the server, let its in-flight requests finish, then stop it. The request path adds what a deploy needs: a `Drained` outcome when the last request left (the controller's signal), and sticky sessions moved off the server when the drain starts. By hand, a drained server's three requests each ended exactly once: one finished, one was re-sent, one streamed one failed (*Drain, and its timeout*).
# - **Replace servers one at a time or in small batches, waiting for each:** the batch is Kubernetes' `maxSurge` / `maxUnavailable` (surge rounded up, unavailability down: 25% of 3 servers is 1 extra and 0 down, of 10 it is 3 and 2). A new server must be `Ready` (health checks pass, slow start done) and an old one `Drained` before the next batch. Kubernetes' defaults finished in 452 s but held only 0.75 of the fleet ready; the GPU settings (surge 25%, unavailable 0) took 910 s at 1.00 (*The rolling update*).
# - **A drain timeout, then force the rest off with a clear outcome:** at the deadline a request that has not streamed is re-sent once by the retry ledger (the client sees one answer); one that has streamed ends `Failed("drain_timeout")` for the client to retry. With 10-minute generations and a 120 s timeout, 10.0 requests per rollout were cut, 0 lost, and the rollout took 1274 s instead of 910 s (every batch waits the timeout); set it a little above the p99 generation time (600 s here).
# - **Pre-warm the replacement before draining the old server:** weights take minutes to load, so drain-first gives that capacity away. During a 1.5x peak, drain-first's p99 was 61.9 s, 2.7x the steady p99, against 24.2 s with pre-warm (*Pre-warm against drain-first*).
# - **Let the orchestrator run the sequence, and give it the right signals:** Kubernetes' Deployment holds the two bounds, a readiness probe is `Ready`, `preStop` plus `terminationGracePeriodSeconds` is the drain timeout (its default of 30 s kills long generations); Nomad's `update` block (`max_parallel`, `min_healthy_time`, `canary`, `auto_revert`) is the same; Argo Rollouts or Flagger add canary steps and analysis. The balancer must tell the orchestrator when a server is drained, and the orchestrator must not kill it earlier.
# - **Canary first, judged by a test, with automatic rollback:** steps of 5%, 25%, 100% with the sessions split by a hash (premium excluded); each step judged once by Fisher's exact test on errors and Mann-Whitney U on latency, one-sided, at alpha/2 each. A 2%-failing version answered 392.0 requests with an error without a canary and 5.7 with one. The first share sets the detection time (2995 s at 1%, 159 s at 25%) more than the blast radius (202 and 290 requests); good releases are rolled back at 0.1175 per 3-step canary against a nominal 0.1426 (*The canary's statistics*).
#
# **Where this course differs from the expected answer:** the balancer, not only the orchestrator,
# owns the drain: it knows which requests have streamed, so the timeout re-sends what it may
# instead of a SIGKILL dropping everything. "One at a time" is replaced by two bounds and
# pre-warm: with minutes of start-up, `maxUnavailable = 0` and a surge keep capacity whole. The
# canary is a statistical test with a measured false-rollback rate, not a threshold, and a
# smaller first share does not shrink the blast radius (`min_requests` does).
#
# **Follow-ups to expect:**
# 1. *How do you pick the drain timeout?* From the p99 generation time: shorter cuts streamed
#    answers, longer slows every batch (the `long` scenario measures both).
# 2. *What if the new version is slower, not failing?* The latency test catches it: 30% slower was
#    rolled back in every run after 213 requests on B; its caveat is that B's servers may carry
#    more load per server than A's in the split.
# 3. *What about sessions and their KV caches during a rollout?* The split hashes the session, so
#    a conversation stays on one version; a draining server's sessions move at drain start and
#    pay one prefix recompute.
