# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Stage 3 · Routing strategies when latencies differ
#
# Least-connections counts requests; an LLM request costs a fraction of a second or a minute,
# and a fleet mixes slow and fast GPUs. This notebook prices a request in seconds, builds the
# strategies production gateways use one at a time, checks one against queueing theory, and
# races them all on identical traffic.
#
# **Your file:** `exercises/strategies.py`. **Your checks:** one cell after each strategy.

# %% [markdown]
# ## What a request costs
#
# Stage 1 gives the balancer one number, `estimated_tokens` = prompt + expected output. The
# number hides the split that decides the cost. A server runs its batch in *iterations*; an
# iteration reads the weights and every sequence's KV cache from memory and computes the tokens
# it processes, and takes the longer of the two (a roofline, `solution.core.latency`):
#
# * an **output token** costs a whole iteration (one token per sequence per iteration);
# * a **prompt token** is a share of one iteration's token budget (chunked prefill).
#
# And with continuous batching nothing waits *behind* the tokens already on a server: a new
# request joins the batch at once, and every sequence then runs a little slower.
#
# **Predict first:** on an idle A100, which is slower: 4,000 prompt + 10 output tokens, or 50 + 2,000?

# %%
# %matplotlib inline
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from solution.core.impl import demo_impl, needs_working_code
from solution.core.latency import REFERENCE_MODEL as A100

demo = demo_impl()  # the reference (in the candidate's bundle: your exercises package)

out_ms, prompt_ms = A100.decode_step(1) * 1e3, A100.token_s * 1e3
print(f"A100, 7B model: an output token costs {out_ms:.2f} ms (one iteration), a prompt token {prompt_ms:.3f} ms "
      f"(its share of a chunk): {out_ms / prompt_ms:.0f}x")
for name, prompt, output in (("summarize", 4_000, 10), ("essay", 50, 2_000)):
    print(f"{name:>9}: {prompt + output:>5} tokens for stage 1, e2e {A100.e2e(prompt, output):5.2f} s alone, "
          f"{A100.e2e(prompt, output, 31):5.2f} s joining a batch of 31")
print(f"one decode iteration: {A100.decode_step(1) * 1e3:.1f} ms for 1 sequence, {A100.decode_step(32) * 1e3:.1f} ms for 32")

# %% [markdown]
# Stage 1's number ranks the two requests the wrong way round: the summary has twice the
# tokens and finishes first by far. A gateway knows the prompt's length exactly (it tokenizes
# it); only the output's length is a guess. How good a guess? On a real trace (the Azure LLM
# inference 2023 conversation trace, CC-BY 4.0: Patel et al., *Splitwise*, ISCA 2024, and the
# Azure Public Dataset; not copied into this repository), a predictor that knows only the prompt
# length does this well:

# %%
from solution.sim.workload import OUTPUT_ESTIMATE_SIGMA, output_predictability

root = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "pyproject.toml").is_file())
TRACE_FILE = root.parent / "shared" / "data" / "azure-llm-inference-2023" / "AzureLLMInferenceTrace_conv.csv"
if TRACE_FILE.is_file():
    from solution.sim.trace import load_azure_trace

    conv = load_azure_trace(TRACE_FILE)
    fit = output_predictability(conv.prompt_tokens, conv.output_tokens)
    print(fit.summary())
else:
    print(f"(no trace at {TRACE_FILE}: download AzureLLMInferenceTrace_conv.csv from github.com/Azure/AzurePublicDataset)")
print(f"the race below draws output estimates off by a log-normal factor of sigma {OUTPUT_ESTIMATE_SIGMA} (recorded from that trace)")

# %% [markdown]
# So the estimate is off by a log-normal factor with the sigma printed (in-sample, per
# prompt-length decile: an optimistic figure for a predictor that sees only the prompt).

# %% [markdown]
# ## One interface, many rules
#
# `solution.core.routing.Router` keeps stage 1's API and takes the rule as a parameter:
# `Router(strategy, speeds=..., models=...)`. A request reaches the strategy as a `Request`
# record (`request.estimated_tokens`, `request.prompt_tokens`, `request.output_tokens`):
# `router.route(request)` takes one, and `route_request(id, tokens, prompt_tokens=...)` builds one
# (without `prompt_tokens` every token is priced as an output token). The router keeps the
# bookkeeping (requests, tokens and output tokens in flight, each server's `speed` and
# `LatencyModel`) and calls the strategy's hooks; the strategy only *chooses*.
# `observe(request_id, latency=...)` reports how a request went, for the rules that learn.
#
# | strategy | picks | cost per decision |
# |---|---|---|
# | least-connections (stage 1) | lowest `load / capacity` | O(log S) |
# | **power of d choices** | the less loaded of d random servers | O(d) |
# | **weighted response time**, **peak-EWMA** | lowest observed seconds per output token x (in flight + 1) | O(log S) |
# | **least outstanding tokens** | fewest expected output tokens / speed | O(log S) |
# | **predictive** (JSED) | least predicted seconds, `model.e2e(prompt, output, load)` | O(K log S), K models |
#
# The rules disagree. A mixed fleet: the H100 runs two long essays, the A100 four chats, the A10
# nothing; a new request of 100 prompt and 1,400 output tokens arrives.
#
# **Predict first:** which server does each rule pick?

# %%
from solution.core.request import Request
from solution.core.routing import Router
from solution.sim.gpus import ModelSpec, gpu_preset
from solution.sim.race import TokenDelay

GPUS = {"h100": ("H100-80GB", 16, 2.5), "a100": ("A100-80GB", 12, 1.1), "a10": ("A10-24GB", 4, 0.2)}  # preset, slots, speed
MODELS = {sid: ModelSpec().latency_model(gpu_preset(preset)) for sid, (preset, _, _) in GPUS.items()}
IN_FLIGHT = [("h100", 8_000, 100)] * 2 + [("a100", 600, 300)] * 4  # (server, tokens, prompt)


def fleet(strategy):
    router = Router(strategy, speeds={sid: speed for sid, (_, _, speed) in GPUS.items()}, models=MODELS)
    for sid, (preset, slots, _) in GPUS.items():
        router.add_server(sid, slots, gpu_preset(preset).memory_gb)
    for i, (sid, tokens, prompt) in enumerate(IN_FLIGHT):
        router.place(Request(f"busy{i}", tokens, prompt), sid)  # put the work in flight where we want it
    return router


rules = {"least-connections": lambda: demo.LeastConnections(), "least outstanding tokens": lambda: demo.LeastOutstandingTokens(),
         "tokens as a queue (stage 1's cost)": TokenDelay, "predictive (seconds)": lambda: demo.Predictive()}
with needs_working_code():
    print(f"{'rule':<36}{'picks':<7}what it compares (h100 / a100 / a10)")
    for name, make in rules.items():
        decision = fleet(make()).explain(1_500, prompt_tokens=100)
        scores = {c.server_id: c.components[0] for c in decision.candidates}
        label = next(iter(scores.values()))[0]
        print(f"{name:<36}{decision.chosen:<7}{label}: " + " / ".join(f"{scores[s][1]:.4g}" for s in GPUS))

# %% [markdown]
# Least-connections and least outstanding tokens see the idle A10 and send a 1,400-token answer
# to the slowest GPU. Counting tokens as a queue avoids the H100 because of the essays' tokens
# it still has to write. But those tokens are not a queue: the H100 runs them two sequences at a
# time, and a third sequence joins at once. Priced in seconds (the last line), the H100 is the
# fastest place for this request.

# %% [markdown]
# ## The task, one strategy at a time
#
# Implement the five classes in `exercises/strategies.py`; each docstring gives the exact rule.
# Each step below teaches one rule and ends with a check cell for it. Bad arguments raise
# `TypeError` or `ValueError` before anything changes.
#
# **What the check and the grader score.** Each check cell runs your strategy on seeded calls
# (routes with and without a prompt length, adds, drains, completions, latency reports) and
# compares every answer and stats snapshot with the reference's recorded ones (same seeds, so
# power of d draws the same servers). The grader runs these groups too, on hidden seeds, each
# group scored on its own:
#
# | rule group | what it requires |
# |---|---|
# | `power of two choices: the less loaded of two draws` | `PowerOfChoices(d=2)`: the lowest `load_ratio_key` of the servers drawn through `router.sample`, the first drawn on a tie |
# | `power of three choices` | the same with `d=3` |
# | `weighted response time (EWMA of observed latency)` | `WeightedResponseTime`: an EWMA of seconds per output token per server, score `cost * (load + 1)` |
# | `peak-EWMA: up at once, down slowly` | `PeakEwma`: a worse observation replaces the cost at once, a better one is blended in |
# | `least outstanding output tokens per unit of speed` | `LeastOutstandingTokens`: score `outstanding_output_tokens / speed` |
# | `predictive: least expected seconds (latency model)` | `Predictive`: `server.model.e2e(prompt, output, load)`, one heap per latency model |
# | `bad arguments: the right exception` | a bad `d`, `seed` or `alpha` raises `TypeError` (wrong type) or `ValueError` (bad value) |
# | `cost: indexed strategies decide in O(log S), power of d in O(d)` | the time per route + observe + complete may grow at most 8x from 16 to 4,096 servers, for each of `LeastOutstandingTokens`, `WeightedResponseTime`, `Predictive` and `PowerOfChoices` |

# %%
from solution.checks import check_stage3
from solution.core.impl import load_impl

impl = load_impl(reload=True)  # LB_IMPL picks it; reload=True picks up your latest edits
print(f"implementation under test: {impl.__name__}")

# %% [markdown]
# ### Step 1: power of d choices
#
# Draw d eligible servers at random with `self.router.sample(self.rng, self.d, request)` and
# keep the lowest `load_ratio_key` (the first drawn on a tie). With d = 1 it is random choice;
# with d = S it is least-connections. O(d) and no shared index: replicas can run it apart.

# %% tags=["check-cell"]
report = check_stage3(impl, only="power of")

# %% [markdown]
# ### Step 2: weighted response time and peak-EWMA
#
# Learn each server's speed from feedback: `observe` hands the strategy seconds per expected
# output token; keep an EWMA per server (`cost += alpha * (observed - cost)`, the first
# observation sets it) and score `cost * (load + 1)`, then the load ratio. `IndexedStrategy`
# keeps the heap for you. Peak-EWMA takes a worse observation at once and blends a better one
# in, so a server that turns slow is avoided after one bad answer.

# %% tags=["check-cell"]
report = check_stage3(impl, only=("weighted response time", "peak-EWMA"))

# %% [markdown]
# ### Step 3: least outstanding (output) tokens
#
# Count decode work: `server.outstanding_output_tokens / server.speed`, then the load ratio.
# What the count hides: prompts (small, not zero), that a batch decodes its sequences together
# (ten 100-token answers take about 100 iterations, not 1,000), that iterations slow as the
# batch grows, and the request's own size.

# %% tags=["check-cell"]
report = check_stage3(impl, only="least outstanding")

# %% [markdown]
# ### Step 4: predictive, in seconds
#
# Score `(server.model.e2e(prompt_tokens or 0, output_tokens, server.load), server.load)`, the
# least wins, then the server added first. The score depends on the request, so one heap cannot
# hold the answer; but among servers sharing a latency model the fewest requests in flight wins
# (more sequences never make an iteration faster). Keep one `HeapIndex` per model keyed by
# `(load,)` and compare each one's best: O(K log S) for K GPU types.

# %% tags=["check-cell"]
report = check_stage3(impl, only="predictive")

# %% [markdown]
# ### Step 5: bad arguments and the cost of a decision

# %% tags=["check-cell"]
report = check_stage3(impl, only=("bad arguments", "cost"))

# %% [markdown]
# ## Explain a decision
#
# Route requests one at a time on a four-GPU fleet and watch each candidate's score. Route a
# few long answers with `predictive`, then the same with `least-connections`, and move the
# prompt's share.

# %% tags=["nbval-ignore-output"]
from solution.widgets.strategies import DecisionExplorer

DecisionExplorer(impl)

# %% [markdown]
# ## Power of two choices is the supermarket model
#
# With **early binding** each server keeps its own FIFO queue and the balancer's choice is
# final (past a server's batch, requests wait there); with **late binding** requests wait at the
# balancer (stage 2) and servers are never over-committed. In classic mode (exponential
# service, mean 1 s), capacity 1 and early binding, power of d choices is Mitzenmacher's
# supermarket model: as the number of servers grows, the fraction of queues with at least i
# requests tends to λ^((d^i − 1)/(d − 1)), so the mean time in system is T = (1/λ) Σ s_i, against
# 1/(1 − λ) for random choice (d = 1). One choice to two turns geometric queues into doubly
# exponential ones.
#
# Below: 100 servers, 3 seeds of 40,000 requests per point (the first 50 s dropped), 99%
# intervals, the gap to the fixed point printed per point. The fixed point is the limit of
# infinitely many servers; how far a finite cluster sits from it is what the gaps show (d = 1 is
# plain M/M/1 queues, exact at any size; `docs/routing.md` has 10-seed runs at 25 and 100 servers).
#
# **Predict first:** at load 0.9, how many times shorter is the mean time with two choices than one?

# %%
from solution.sim.race import supermarket_points
from solution.sim.theory import supermarket_mean_time

with needs_working_code():
    points = [(d, load) for d in (1, 2, 3) for load in (0.5, 0.7, 0.8, 0.9)]
    found = supermarket_points(points, range(3), servers=100, requests=40_000, warmup=50.0, workers=2)
    for p in found:
        print(f"d={p.d} load={p.load}: simulated {p.mean:.3f} s [{p.low:.3f}, {p.high:.3f}], fixed point {p.formula:.3f} s "
              f"({p.gap:+.1%}, interval {'contains' if p.low <= p.formula <= p.high else 'misses'} it)")
    gaps = [p.gap for p in found]
    print(f"gaps from {min(gaps):+.1%} to {max(gaps):+.1%}; the intervals contain the fixed point at "
          f"{sum(p.low <= p.formula <= p.high for p in found)} of {len(found)} points")
    at = {p.d: p for p in found if p.load == 0.9}
    print(f"load 0.9: one choice {at[1].mean:.2f} s, two {at[2].mean:.2f} s: {at[1].mean / at[2].mean:.1f}x "
          f"(fixed point {supermarket_mean_time(1, 0.9) / supermarket_mean_time(2, 0.9):.1f}x)")
    run_s, relax_s = 40_000 / (0.9 * 100), 1 / (1 - 0.9**0.5) ** 2
    print(f"d=1, load 0.9: a run lasts {run_s:.0f} s; an M/M/1 queue at load 0.9 relaxes in about 1/(1-sqrt(0.9))^2 = "
          f"{relax_s:.0f} s")

    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    grid = np.linspace(0.3, 0.95, 60)
    for d, color in ((1, "#e45756"), (2, "#4c78a8"), (3, "#54a24b")):
        ax.plot(grid, [supermarket_mean_time(d, x) for x in grid], color=color, label=f"fixed point (N → ∞), d = {d}")
        mine = [p for p in found if p.d == d]
        ax.errorbar([p.load for p in mine], [p.mean for p in mine], yerr=[[p.mean - p.low for p in mine], [p.high - p.mean for p in mine]],
                    fmt="o", color=color, capsize=3, label=f"simulated, 100 servers, d = {d}")
    ax.set_yscale("log")
    ax.set_yticks([1, 2, 5, 10, 20])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("load per server, λ (arrivals per mean service time)")
    ax.set_ylabel("mean time in system (s)")
    ax.set_title("Two random choices cut the wait from geometric to doubly exponential", fontsize=10)
    ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    display(fig)

# %% [markdown]
# Every interval contains its fixed point (the count printed), and with two or three choices the
# gaps are a fraction of a percent: 100 servers are already close to the limit. The outlier is
# d = 1 at load 0.9, kept in on purpose: its mean sits well below the formula with a wide
# interval because a single queue at that load takes about as long to fill from empty as the
# whole run lasts (the last line), so the run measures a queue still filling up. Two choices
# cut the mean time at load 0.9 by the factor printed.

# %% [markdown]
# ## The race: a mixed fleet, heavy tails, imperfect estimates
#
# `race` runs every strategy on the same seeds: a seed fixes the arrivals, the token counts and
# the estimate errors, so every strategy sees exactly the same traffic (common random numbers)
# and the differences are compared seed by seed (paired intervals). Four A10s, two A100s and two
# H100s at load 0.7; output lengths Pareto (α = 1.3, clipped at 4,096); the prompt's length is
# known, the output's estimate off by the trace's log-normal factor. The token-aware strategies
# get each GPU's relative speed; predictive gets each GPU's latency model. "Tokens as a queue"
# is the predictive rule this course had before pricing in seconds, kept for comparison. The
# simulator runs exactly the latency model, so predictive's model is perfect here; "speed hints
# only" gives it the A100's model scaled by each GPU's speed instead, a model that is wrong for
# the A10 (its compute is slower relative to its memory).
#
# **Predict first:** which strategy wins the p99, and by how much over the runner-up?

# %%
from solution.core.routing import RouterFactory as F
from solution.sim.race import heterogeneous, latency_hints, least_connections, mean_latency, race, speed_hints

with needs_working_code():
    scenario = heterogeneous(requests=8_000, load=0.7)
    speeds, models = speed_hints(scenario), latency_hints(scenario)
    entrants = {
        "round-robin": F(demo.RoundRobin), "random": F(demo.RandomChoice), "least-connections": least_connections(),
        "power of two": F(demo.PowerOfChoices), "weighted response time": F(demo.WeightedResponseTime),
        "peak-EWMA": F(demo.PeakEwma), "least outstanding tokens": F(demo.LeastOutstandingTokens, speeds=speeds),
        "tokens as a queue": F(TokenDelay, speeds=speeds), "predictive": F(demo.Predictive, speeds=speeds, models=models),
        "predictive, speed hints only": F(demo.Predictive, speeds=speeds),  # the reference A100 model scaled by speed
    }
    result = race(scenario, entrants, seeds=range(6), metrics=(mean_latency, "e2e_p50", "e2e_p99"), workers=2)
    print(result.table())
    print()
    for metric in ("mean_latency", "e2e_p50", "e2e_p99"):
        ranked = sorted(result.strategies, key=lambda s: result.interval(s, metric)[0])
        d, lo, hi = result.difference(ranked[0], ranked[1], metric)
        print(f"best {metric}: {ranked[0]}, {d:+.3f} s against {ranked[1]} (paired 95% interval [{lo:+.3f}, {hi:+.3f}])")
    d, lo, hi = result.difference("predictive", "tokens as a queue", "e2e_p99")
    print(f"seconds instead of tokens: p99 {d:+.2f} s [{lo:+.2f}, {hi:+.2f}]")
    d, lo, hi = result.difference("predictive, speed hints only", "least-connections", "e2e_p99")
    print(f"predictive with a wrong model (speed hints only) against least-connections: p99 {d:+.2f} s [{lo:+.2f}, {hi:+.2f}]")
    blind = {m: result.ratio("random", "least-connections", m) for m in ("e2e_p50", "e2e_p99")}
    print("random / least-connections: " + ", ".join(f"{m} {r:.2f}x" for m, r in blind.items()))

# %% [markdown]
# Reading it: the blind strategies (round-robin, random) send half the traffic to the A10s and
# pay in every percentile, by the ratios printed. Least-connections already weighs by capacity;
# the feedback strategies come close to it without any hint, by measuring. Counting tokens as a
# queue helps the tail a little and hurts the median: it keeps short requests off a busy H100
# that would in fact serve them fastest. Pricing each request in seconds on each GPU's latency
# model wins every percentile printed, each by a paired interval that excludes zero. That model
# is the simulator's own, an upper bound on what a fitted model gives; with only speed hints it
# still beats least-connections' p99 (the last line).

# %% [markdown]
# ## Stale information and herding
#
# A balancer that polls its servers sees their loads as of the last poll. The simplest model is
# Mitzenmacher's **bulletin board** (M. Mitzenmacher, "How useful is old information?", IEEE
# TPDS 11(1), 2000): the loads are posted every k decisions and every decision in between reads
# the same posting, *not even counting the requests the balancer itself just sent*. Here:
# 20 servers, load 0.9, early binding, 3 seeds.
#
# **Predict first:** as the posting ages, does least-connections or power of two degrade faster?

# %%
from solution.sim import scenarios

with needs_working_code():
    stale_scenario = scenarios.classic(servers=20, load=0.9, requests=20_000)
    ks = (1, 10, 40, 100)
    board = {"least-connections": [], "power of two": [], "random": []}
    for k in ks:
        out = race(stale_scenario, {
            "least-connections": least_connections(queue_per_server=None, refresh_every=k),
            "power of two": F(demo.PowerOfChoices, queue_per_server=None, refresh_every=k),
            "random": F(demo.RandomChoice, queue_per_server=None, refresh_every=k),
        }, seeds=range(3), metrics=(mean_latency,), early=True, warmup=50.0, workers=2)
        for name in board:
            board[name].append(out.interval(name, "mean_latency"))
        d, lo, hi = out.difference("least-connections", "power of two", "mean_latency")
        print(f"posted every {k:>3}: " + ", ".join(f"{n} {out.interval(n, 'mean_latency')[0]:.2f} s" for n in board)
              + f"; least-connections - power of two {d:+.2f} s [{lo:+.2f}, {hi:+.2f}]")

# %% [markdown]
# On the bulletin board, least-connections sends every request of a period to the same
# "least loaded" server (herding) and soon does worse than random; power of two spreads them
# over random pairs. But a real balancer counts the requests it sends: a **single** balancer that
# does so is never stale about its own traffic and does not herd. Staleness comes back with
# **several independent replicas** (`ReplicatedRouter`): each counts its own requests exactly and
# sees the others' only at the refresh, every 40 decisions here.
#
# **Predict first:** with 1, 2, 4 and 10 replicas, when does least-connections lose to power of two?

# %%
with needs_working_code():
    counts = (1, 2, 4, 10)
    replicas = {"least-connections": [], "power of two": []}
    for r in counts:
        out = race(stale_scenario, {
            "least-connections": least_connections(queue_per_server=None, refresh_every=40, replicas=r),
            "power of two": F(demo.PowerOfChoices, queue_per_server=None, refresh_every=40, replicas=r),
        }, seeds=range(3), metrics=(mean_latency,), early=True, warmup=50.0, workers=2)
        for name in replicas:
            replicas[name].append(out.interval(name, "mean_latency"))
        d, lo, hi = out.difference("least-connections", "power of two", "mean_latency")
        print(f"{r:>2} replicas: " + ", ".join(f"{n} {out.interval(n, 'mean_latency')[0]:.2f} s" for n in replicas)
              + f"; least-connections - power of two {d:+.2f} s [{lo:+.2f}, {hi:+.2f}]")

    fig = Figure(figsize=(9, 3.4))
    left, right = fig.subplots(1, 2, sharey=True)
    for ax, xs, curves, xlabel, title in (
        (left, ks, board, "decisions between postings (k)", "Bulletin board: own requests not counted"),
        (right, counts, replicas, "balancer replicas (refresh every 40 decisions)", "Replicas: each counts its own"),
    ):
        for name, values in curves.items():
            ax.errorbar(xs, [m for m, _, _ in values], yerr=[[m - lo for m, lo, _ in values], [hi - m for m, _, hi in values]],
                        marker="o", capsize=3, label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize="small")
    left.set_yticks([1, 2, 5, 10, 20, 50])
    left.set_ylabel("mean time in system (s)")
    fig.tight_layout()
    display(fig)

# %% [markdown]
# One replica routes exactly like fresh least-connections; the more replicas share the fleet
# blind to each other, the more they herd, and past a few of them power of two wins (the
# paired differences printed). So P2C is the robust choice for many independent replicas or a
# slow-to-refresh view, not a rule for every deployment: one balancer that counts its own
# requests does better with least-connections.

# %% [markdown]
# ## Which to pick when
#
# * **One balancer, similar requests:** least-connections: O(log S) and hard to beat.
# * **Many independent replicas or a stale view:** power of two choices: O(d), no shared state.
# * **Mixed GPUs and requests of very different lengths:** predictive in seconds, with each GPU's
#   latency model and the prompt length the gateway knows; it is as good as the output estimate.
# * **No model of the GPUs:** peak-EWMA learns the speeds from feedback.
# * **Round-robin and random:** only when servers and requests are uniform.
#
# ## Play with it
#
# Pick strategies, the load, the fleet, the tail of the output lengths, the estimate error and the
# staleness. Each change races the chosen strategies over 3 seeds of 1,500 requests:
# p50/p95/p99 with 95% intervals, the latency CDF, and each server's utilization.

# %% tags=["nbval-ignore-output"]
from solution.widgets.strategies import StrategyRace

StrategyRace(impl)

# %% [markdown]
# The figures the interview answer below cites, in one place:

# %%
with needs_working_code():
    ready = all(name in globals() for name in ("result", "at", "board", "replicas")) and all(board.values()) and all(replicas.values())
    if not ready:
        raise NotImplementedError("Stage 3: the race and staleness cells above need your strategies; not implemented yet")
    print(f"cost (What a request costs): output token {out_ms:.2f} ms vs prompt token {prompt_ms:.3f} ms on an A100; "
          f"output estimate sigma {OUTPUT_ESTIMATE_SIGMA} (Azure conversation trace)")
    for s in ("least-connections", "weighted response time", "power of two", "least outstanding tokens", "tokens as a queue",
              "predictive", "predictive, speed hints only"):
        print(f"race: {s:<28} p50 {result.interval(s, 'e2e_p50')[0]:.2f} s, p99 {result.interval(s, 'e2e_p99')[0]:5.2f} s")
    for other in ("least-connections", "weighted response time", "tokens as a queue"):
        d, lo, hi = result.difference("predictive", other, "e2e_p99")
        print(f"race: predictive - {other}, p99: {d:+.2f} s [{lo:+.2f}, {hi:+.2f}]")
    d, lo, hi = result.difference("power of two", "least-connections", "e2e_p99")
    print(f"race: power of two - least-connections, p99: {d:+.2f} s [{lo:+.2f}, {hi:+.2f}]")
    print(f"supermarket, load 0.9: d=1 {at[1].mean:.2f} s, d=2 {at[2].mean:.2f} s ({at[1].mean / at[2].mean:.1f}x)")
    print(f"bulletin board, k=100: least-connections {board['least-connections'][-1][0]:.2f} s, power of two {board['power of two'][-1][0]:.2f} s")
    print(f"replicas (k=40): least-connections {replicas['least-connections'][0][0]:.2f} s with 1, "
          f"{replicas['least-connections'][-1][0]:.2f} s with 10; power of two {replicas['power of two'][-1][0]:.2f} s with 10")

# %% [markdown]
# ## The interview answer
#
# > **Interviewer:** What routing strategy would you use if requests have very different latencies?
#
# - **Least-connections** is the starting point: it counts requests in flight, weighted by capacity, and beats the blind rules in every percentile (*The race*: random is 1.52x its p50 and 1.41x its p99). Its blind spot is that one request may cost a hundred times another: it sent a 1,400-token answer to the idle A10, 48.44 s predicted there against 9.316 s on the busier H100 (*One interface, many rules*).
# - **JSQ** (join the shortest queue) *is* least-connections when the "queue" is the requests in flight; its refinement **JSED** (join the shortest expected delay) sends a request where it is expected to finish first: that is the predictive rule below. In the example above, JSQ (least-connections) picked the A10 and JSED (predictive) the H100, 48.44 s against 9.316 s.
# - **Weighted response time** (and peak-EWMA) learns each server's seconds per output token from feedback and needs no model: p99 21.90 s against least-connections' 21.92 s in the race, and peak-EWMA reacts at once to a server turning slow.
# - **Power of two choices**: two random servers, keep the less loaded; O(1), no shared state. On one fresh balancer it loses to least-connections (p99 +3.30 s, paired interval [+0.58, +6.03]). Its strength is **herding**: on a bulletin board refreshed every 100 decisions least-connections takes 47.74 s against P2C's 4.25 s, and with 10 independent replicas 6.15 s against 3.32 s (*Stale information*). It is Mitzenmacher's supermarket model: two choices cut the mean time at load 0.9 by 3.3x (8.52 s to 2.61 s).
# - **Predictive routing**: price each request on each server and pick the least expected completion. In seconds, not tokens: an output token costs 10.18 ms on an A100, a prompt token 0.090 ms (*What a request costs*), and a request joins the batch rather than waiting behind the tokens already there. With each GPU's latency model, the known prompt length and an output estimate off by the trace's sigma 0.544, it wins the race: p99 15.97 s, 5.93 s [5.04, 6.83] below weighted response time and 3.10 s [2.09, 4.11] below the same rule priced in tokens; the mean and median too, each by a paired interval that excludes zero.
#
# **Where this course differs from the expected answer:** predictive routing by
# `estimated_tokens` alone (the expected answer) mixes two costs 113x apart (*What a request costs*) and treats
# tokens in flight as a queue; the course predicts seconds from a latency model, with the prompt
# and output split (*tokens as a queue* is that older rule, raced above). And P2C is "nearly as
# good as least-connections" only loosely here (p99 +3.30 s [+0.58, +6.03] on one fresh
# balancer); its freedom from herding matters for replicas and stale views, not for a single
# balancer that counts its own requests.
#
# **Follow-ups to expect:**
# 1. *Where does the output-length estimate come from?* A predictor (per route, per prompt
#    length, or a small model); the race uses the error measured on the trace, and the widget's
#    estimate-error slider shows what a worse predictor costs.
# 2. *What if the latency model is wrong?* With the A100's model scaled by speed (wrong for the
#    A10) predictive still had p99 17.76 s against least-connections' 21.92 s; beyond that, feed
#    observed latencies back, or refit the constants from the servers' own iteration times.
# 3. *And multi-turn conversations?* The prefix in a server's KV cache makes its prompt nearly
#    free there: the next stage routes for cache affinity.
