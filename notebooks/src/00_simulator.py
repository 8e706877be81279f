# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Appendix 0 · The cluster simulator
#
# Every later stage is judged under load: latency percentiles, rejections, how a strategy
# copes with a slow server. This notebook explains the instrument that measures it,
# `solution.sim`, and shows why you can trust it: it agrees with queueing theory, and it
# replays a real production trace.
#
# Nothing to write here. Read, run, and come back when a later stage quotes its numbers.

# %% [markdown]
# ## What is simulated
#
# A gateway sends each request to a balancer (`route_request`), forwards it to the chosen
# simulated GPU server, and reports its end (`complete_request`). The simulator plays the
# gateway: it calls only the balancer's public methods, so your `exercises.LoadBalancer`
# runs in it unchanged. Each request records its arrival, start, first token, finish,
# server and outcome.
#
# Four A100 servers at 80% load: the running requests per server over time, and the
# latency distribution that follows.

# %%
# %matplotlib inline
import numpy as np
from matplotlib.figure import Figure

from solution.core.impl import demo_impl, needs_working_code
from solution.sim import plot, scenarios, simulate

demo = demo_impl()  # the reference (in the candidate's bundle: your exercises package)

with needs_working_code():
    res = simulate(scenarios.steady(servers=4, load=0.8, requests=3_000), demo.LoadBalancer, seed=1)

    fig = Figure(figsize=(11, 3.5), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[2, 1])
    plot.load_over_time(res, ax=left)
    plot.latency_cdf(res, "ttft", ax=right)
    display(fig)

# %% [markdown]
# ## The LLM model: a bigger batch makes every sequence slower
#
# A server runs up to `capacity` sequences in one batch (continuous batching). Each
# iteration advances every sequence by one step and takes
#
# $$t_\text{iter} = t_\text{base} + t_\text{decode} \cdot d + t_\text{chunk} \cdot p$$
#
# with $d$ sequences decoding (one token each) and $p$ prefilling (one chunk of their
# prompt each). $t_\text{base}$ is reading the weights, the decode term is each
# sequence's KV cache, the prefill term is compute. Decode speed follows a GPU's memory
# bandwidth, prefill its FLOPS: the presets use datasheet figures
# (`docs/simulator.md` cites them).
#
# So batching is a trade: the server's throughput rises with the batch, but each sequence
# slows down. When the batch changes, every running request's speed changes at that
# instant; the simulator keeps one *virtual clock* per server, so this is exact, never a
# service time frozen at admission.

# %%
from solution.sim import GPU_PRESETS, ModelSpec

model = ModelSpec()  # a 7B-parameter model in FP16
timings = {name: model.timing(gpu, 512) for name, gpu in GPU_PRESETS.items()}
fig = Figure(figsize=(11, 3.5), layout="constrained")
left, right = fig.subplots(1, 2)
plot.iteration_time(timings, ax=left)
batch = np.arange(1, 65)
for name, t in timings.items():
    right.plot(batch, batch / np.array([t.iteration_time(int(b)) for b in batch]), label=name)
right.set_xlabel("sequences decoding in the batch")
right.set_ylabel("tokens per second, whole server")
right.grid(alpha=0.3)
right.legend()
display(fig)

# %% [markdown]
# ## Checked against theory: Erlang B
#
# In *classic mode* theory applies exactly: exponential service times that ignore the batch,
# one request per server, no queue. A request the stage-1 balancer rejects is lost, so the
# fraction lost must follow Erlang's loss formula $B(c, a)$ for $c$ servers and an offered
# load of $a$ erlangs.
#
# Each point below is 8 independent seeds of 20,000 requests (the first 10 seconds
# dropped as warm-up). The error bar is a 99% Student-t confidence interval of the mean
# loss over the seeds. The runs go to all cores through a process pool.

# %%
from solution.sim import erlang_b
from solution.sim.sweep import erlang_b_points

points = [(c, round(x * c, 3)) for c in (4, 16) for x in (0.5, 0.7, 0.9, 1.1)]
agreement = erlang_b_points(points, seeds=range(8), requests=20_000, level=0.99)
display(plot.erlang_b_agreement(agreement))

# %% tags=["nbval-check-output"]
inside = sum(p.low <= erlang_b(p.servers, p.offered_load) <= p.high for p in agreement)
print(f"Erlang B lies inside {inside} of {len(agreement)} confidence intervals")
for p in agreement:
    print(f"c = {p.servers:2d}, a = {p.offered_load:5.2f}: formula {p.formula:.3f}, simulated {p.mean:.3f}")

# %% [markdown]
# With 99% intervals, about one point in a hundred may miss by chance; the tests in
# `tests/sim/` use more seeds and 99.9% intervals.

# %% [markdown]
# ## Replaying a real trace
#
# The Azure LLM inference trace (November 2023) records one hour of two production services,
# one request per row: `TIMESTAMP,ContextTokens,GeneratedTokens`. It is published in the
# [Azure Public Dataset](https://github.com/Azure/AzurePublicDataset) under CC-BY 4.0;
# credit: Patel et al., *Splitwise: Efficient generative LLM inference using phase
# splitting*, ISCA 2024. The files are not in this repository: download
# `AzureLLMInferenceTrace_conv.csv` and set `TRACE_DIR` to its folder.
#
# The conversation service replayed on three A100s, at its real pace and twice as fast
# (`time_scale=0.5` halves every gap):

# %%
from pathlib import Path

from solution.sim import format_table

root = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "pyproject.toml").is_file())
TRACE_DIR = root.parent / "shared" / "data" / "azure-llm-inference-2023"
trace_file = TRACE_DIR / "AzureLLMInferenceTrace_conv.csv"

if trace_file.is_file():
    with needs_working_code():
        replays = {
            f"x{1 / scale:g} speed": simulate(scenarios.trace(trace_file, servers=3, time_scale=scale), demo.LoadBalancer)
            for scale in (1.0, 0.5)
        }
        print(format_table({label: r.summary() for label, r in replays.items()}))
        display(plot.latency_cdf(replays, "e2e"))
else:
    print(f"No trace at {trace_file}: skipping the replay (see the paragraph above to get it).")

# %% [markdown]
# ## Faults on a timetable
#
# Servers crash, slow down, fail a fraction of requests, recover. Here `gpu-0` crashes at 30%
# of the run and recovers at 60%. Stage 1 has no health check: the dead server answers
# every request with an error at once, so it always looks idle, and least-connections
# sends it almost everything. Health checks are a later stage.

# %%
with needs_working_code():
    crash = simulate(scenarios.crash(servers=4, load=0.6, requests=3_000), demo.LoadBalancer, seed=2)
    print(f"{crash.summary().loss_rate:.0%} of requests lost")
    fig = Figure(figsize=(11, 3.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    plot.outcomes_over_time(crash, ax=left)
    plot.load_over_time(crash, ax=right)
    right.set_title("the healthy servers sit idle meanwhile", fontsize=10)
    display(fig)

# %% [markdown]
# ## Using it
#
# In a notebook, a scenario is a few lines; any balancer class runs in it:
#
# ```python
# from solution.sim import Cluster, Scenario, Workload, OnOff, Slowdown, simulate
# scenario = Scenario(Cluster.mixed({"A10-24GB": 2, "H100-80GB": 1}),
#                     Workload(5_000, OnOff(rate_on=4.0, rate_off=1.0)), load=0.7,
#                     timetable=(Slowdown(60.0, "h100-80gb-0", 3.0),))
# res = simulate(scenario, exercises.LoadBalancer, seed=0)
# res.summary().table(); res.ttft; res.load_over_time(res.time_grid())
# ```
#
# From a shell, `python -m solution.sim list` names the scenarios, and
# `python -m solution.sim run crash --servers 8 --balancer exercises` runs one:

# %%
from solution.sim.cli import main

status = main(["run", "bursty", "--servers", "4", "--load", "0.8", "--requests", "5000"])

# %% [markdown]
# ## Play with it
#
# Pick a scenario, the number of servers, the offered load per server and the seed: each change
# re-runs 20,000 requests through the reference balancer and redraws the latency CDF and the
# running requests per server. Push the load past 1.0 and watch the tail and the losses grow;
# pick `crash` or `slow-server` and find the bad server in the load plot.

# %% tags=["nbval-ignore-output"]
from solution.widgets.simulator import SimulatorPlayground

SimulatorPlayground()
