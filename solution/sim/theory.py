"""Queueing formulas and the statistics used to compare them with simulations.

* :func:`erlang_b`: the blocking probability of an M/M/c/c loss system
  (Erlang's loss formula).
* :func:`erlang_c`, :func:`mmc_mean_wait`, :func:`mmc_wait_cdf`: the M/M/c
  queue (an unbounded FIFO queue in front of c servers): the probability of
  waiting, the mean wait and its distribution.
* :func:`mmck`: the M/M/c/K queue (at most K - c waiting): blocking and the
  mean wait of admitted requests.
* :func:`mm1k`: blocking and mean occupancy of one M/M/1/K server (checks
  the processor-sharing bookkeeping).
* :func:`detection_time_interval` / :func:`detection_time_mean`: how long
  active health checks take to mark a crashed server down.
* :func:`expected_probes_to_run` / :func:`false_ejection_mean_time`: how
  long a healthy server whose probes are lost at random lasts before
  ``unhealthy_threshold`` consecutive losses eject it (a run-length formula).
* :func:`zipf_popularity`, :func:`che_hit_rate`: the hit rate of an LRU
  cache under independent requests with Zipf popularity (Che's
  approximation), which checks :class:`solution.sim.kvcache.PrefixCache`.
* :func:`priority_mean_waits` (Cobham's formula: non-preemptive priority
  classes in an M/M/c queue, equal service rates) and
  :func:`preemptive_mean_times` (preemptive-resume priority: each class's
  mean time in system; the top class sees an M/M/c at its own load alone):
  stage 6's strict priority between tiers.
* :func:`student_t_quantile` and :func:`mean_confidence_interval`: a
  t-based confidence interval of a mean over independent replications, the
  method the tests and the notebook use (no SciPy needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from solution.sim.validate import require_number
from solution.core.validate import require_int

__all__ = ["erlang_b", "erlang_c", "mmc_mean_wait", "mmc_wait_cdf", "mmck", "mm1k", "student_t_cdf", "student_t_quantile",
           "mean_confidence_interval", "supermarket_mean_time", "detection_time_interval", "detection_time_mean",
           "expected_probes_to_run", "false_ejection_mean_time", "zipf_popularity", "che_characteristic_time",
           "che_hit_rate", "priority_mean_waits", "preemptive_mean_times"]  # fmt: skip


def erlang_b(servers: int, offered_load: float) -> float:
    """Erlang's loss formula B(c, a): the probability an arrival finds all c servers busy.

    ``offered_load`` is a = lambda / mu in erlangs (arrival rate times mean
    service time).  Computed with the stable recurrence
    ``B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1))``: O(c) time, no overflow.

    >>> round(erlang_b(4, 3.0), 4)
    0.2061

    By PASTA (Poisson arrivals see time averages) it is also the fraction of
    requests lost, and it is *insensitive*: it holds for any service-time
    distribution with mean 1 / mu.

    Raises:
        TypeError: ``servers`` is not an ``int`` or ``offered_load`` not a number.
        ValueError: ``servers`` below 1 or ``offered_load`` not positive and finite.
    """
    if isinstance(servers, bool) or not isinstance(servers, int):
        raise TypeError(f"servers must be an int, got {type(servers).__name__}")
    if servers < 1:
        raise ValueError(f"servers must be at least 1, got {servers}")
    a = require_number(offered_load, "offered_load")
    b = 1.0
    for k in range(1, servers + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(servers: int, offered_load: float) -> float:
    """Erlang's delay formula C(c, a): the probability that an arrival waits in an M/M/c queue.

    ``C = c B / (c - a (1 - B))`` with ``B = erlang_b(c, a)``: O(c), stable.
    By PASTA it is also the fraction of requests that wait.

    >>> round(erlang_c(4, 3.0), 4)
    0.5094

    Raises:
        TypeError / ValueError: as :func:`erlang_b`; ValueError when
            ``offered_load >= servers`` (the queue grows without bound).
    """
    b = erlang_b(servers, offered_load)
    if offered_load >= servers:
        raise ValueError(f"an M/M/c queue needs offered_load < servers to be stable, got a = {offered_load} with c = {servers}")
    return servers * b / (servers - offered_load * (1.0 - b))


def mmc_mean_wait(servers: int, offered_load: float) -> float:
    """The mean time an arrival waits in an M/M/c FIFO queue, in mean service times: ``C(c, a) / (c - a)``.

    It holds for any order of service that does not look at service times
    (FIFO, priority classes with the same service time, random): the queue
    length process is the same.  Shortest-job-first does better.

    >>> round(mmc_mean_wait(1, 0.5), 4)  # M/M/1: rho / (1 - rho)
    1.0
    """
    return erlang_c(servers, offered_load) / (servers - offered_load)


def mmc_wait_cdf(servers: int, offered_load: float, t: float) -> float:
    """P(wait <= t) in an M/M/c FIFO queue, ``t`` in mean service times: ``1 - C(c, a) exp(-(c - a) t)``."""
    if t < 0:
        return 0.0
    return 1.0 - erlang_c(servers, offered_load) * math.exp(-(servers - offered_load) * t)


def mmck(servers: int, offered_load: float, max_depth: int) -> tuple[float, float]:
    """``(blocking, mean_wait)`` of an M/M/c/K queue with K = ``servers + max_depth``.

    c servers, at most ``max_depth`` requests waiting; an arrival that finds
    K requests is turned away.  The number in the system is ``n`` with
    probability proportional to ``a**n / n!`` for ``n <= c`` and
    ``a**c / c! * (a / c)**(n - c)`` above; ``blocking = P(K)`` (PASTA), and
    the mean wait of the admitted requests, in mean service times, is
    ``Lq / (a (1 - P(K)))`` by Little's law, ``Lq = sum (n - c) P(n)``.
    Any load is stable (the queue is bounded).  O(K), in logarithms (no overflow).

    >>> blocking, wait = mmck(1, 1.0, 2)  # M/M/1/3 at rho = 1: every state equally likely
    >>> round(blocking, 4), round(wait, 4)
    (0.25, 1.0)

    Raises:
        TypeError / ValueError: ``servers`` not an int >= 1, ``max_depth``
            not an int >= 0, ``offered_load`` not positive and finite.
    """
    require_int(servers, "servers")
    require_int(max_depth, "max_depth", minimum=0)
    a = require_number(offered_load, "offered_load")
    logs = [0.0]
    for n in range(1, servers + max_depth + 1):
        logs.append(logs[-1] + math.log(a) - math.log(min(n, servers)))
    top = max(logs)
    weights = [math.exp(x - top) for x in logs]
    total = math.fsum(weights)
    blocking = weights[-1] / total
    queued = math.fsum((n - servers) * w for n, w in enumerate(weights) if n > servers) / total
    return blocking, queued / (a * (1.0 - blocking))


def mm1k(load: float, capacity: int) -> tuple[float, float]:
    """``(blocking, mean_in_system)`` of an M/M/1/K queue with ``rho = load`` and room for K = ``capacity``.

    The number in the system is ``n`` with probability proportional to
    ``rho**n`` for ``n = 0..K``; an arrival finding K is lost (PASTA), so
    ``blocking = P(K)``.  The formula holds for any work-conserving order of
    service, processor sharing included.  O(K).

    >>> round(mm1k(1.0, 3)[0], 4)
    0.25
    """
    require_int(capacity, "capacity")
    rho = require_number(load, "load")
    weights = [rho**n for n in range(capacity + 1)]
    total = math.fsum(weights)
    return weights[-1] / total, math.fsum(n * w for n, w in enumerate(weights)) / total


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t distribution with ``df`` degrees of freedom.

    Uses the regularized incomplete beta function (continued fraction,
    Numerical Recipes 6.4): ``P(|T| > t) = I_x(df/2, 1/2)`` with
    ``x = df / (df + t^2)``.  Accurate to about 1e-12.
    """
    df = require_number(df, "df")
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2.0, 0.5, x)
    return 1.0 - tail if t > 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The t such that ``student_t_cdf(t, df) == p``, for 0 < p < 1.

    Bisection on the CDF (60 halvings of a bracket that always contains the
    answer): slow-ish (tens of microseconds) but simple and exact to ~1e-12.

    >>> round(student_t_quantile(0.975, 9), 4)
    2.2622
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, got {p}")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def mean_confidence_interval(samples: Sequence[float], level: float = 0.99) -> tuple[float, float, float]:
    """``(mean, low, high)``: a two-sided t confidence interval of the mean.

    ``samples`` must be independent and identically distributed, for instance
    one statistic per independent seed.  With K samples the interval is
    ``mean +- t_{(1+level)/2, K-1} * s / sqrt(K)``, where ``s`` is the sample
    standard deviation.  By the central limit theorem each replication's
    statistic (an average over many requests) is close to normal, so the
    interval covers the true mean with probability close to ``level``.

    Raises:
        ValueError: fewer than two samples, or ``level`` outside (0, 1).
    """
    values = [float(v) for v in samples]
    k = len(values)
    if k < 2:
        raise ValueError(f"a confidence interval needs at least 2 independent samples, got {k}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
    mean = math.fsum(values) / k
    var = math.fsum((v - mean) ** 2 for v in values) / (k - 1)
    half = student_t_quantile(0.5 + level / 2.0, k - 1) * math.sqrt(var / k)
    return mean, mean - half, mean + half


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def supermarket_mean_time(d: int, load: float) -> float:
    """Mean time in system of Mitzenmacher's supermarket model, in mean service times.

    N servers, each one FIFO queue served at rate 1; Poisson arrivals at rate
    ``load * N``; each arrival joins the shortest of ``d`` queues drawn at
    random.  As N grows, the fraction of queues holding at least i requests
    tends to ``s_i = load ** ((d**i - 1) / (d - 1))`` (M. Mitzenmacher, "The
    power of two choices in randomized load balancing", IEEE TPDS 12(10),
    2001), and by Little's law the mean time in system is
    ``T = (1 / load) * sum_{i>=1} s_i``.  With d = 1 each queue is M/M/1:
    ``T = 1 / (1 - load)``.  The sum stops when a term falls below 1e-16
    (doubly exponential decay: a handful of terms).

    >>> round(supermarket_mean_time(2, 0.9), 4), round(supermarket_mean_time(1, 0.9), 4)
    (2.6141, 10.0)

    Raises:
        TypeError / ValueError: ``d`` not an int >= 1, or ``load`` not in (0, 1).
    """
    require_int(d, "d")
    lam = require_number(load, "load")
    if lam >= 1.0:
        raise ValueError(f"load must be below 1 for a stable queue, got {load}")
    if d == 1:
        return 1.0 / (1.0 - lam)
    total, i = 0.0, 1
    while True:
        term = lam ** ((d**i - 1) / (d - 1))
        total += term
        if term < 1e-16:
            return total / lam
        i += 1


def _probe_args(interval: float, timeout: float, unhealthy_threshold: int, jitter: float) -> tuple[float, float, int, float]:
    i = require_number(interval, "interval")
    t = require_number(timeout, "timeout")
    require_int(unhealthy_threshold, "unhealthy_threshold")
    if unhealthy_threshold < 1:
        raise ValueError(f"unhealthy_threshold must be at least 1, got {unhealthy_threshold}")
    j = require_number(jitter, "jitter", strict=False)
    if j >= 1:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    return i, t, unhealthy_threshold, j


def detection_time_interval(interval: float, timeout: float, unhealthy_threshold: int, jitter: float = 0.0) -> tuple[float, float]:
    """The range of the time from a crash to the moment active checks mark the server down.

    The model (the checker's rule 2, the simulator's probes): probes to one
    server are ``G`` seconds apart, ``G`` uniform in ``[I (1 - j), I (1 + j)]``
    (interval I, jitter j; j = 0: exactly I).  A probe sent at or after the
    crash fails, and its failure is known ``timeout`` T seconds after it was
    sent; the server goes down at the N-th consecutive failure (N =
    ``unhealthy_threshold``), counting from a clean record at the crash.

    The first failing probe is the first one sent at or after the crash: it
    comes ``D0`` after it, with ``0 <= D0 < G`` for the gap ``G`` the crash
    falls in; N - 1 more gaps follow, then the timeout.  So the detection
    time ``D0 + G_2 + ... + G_N + T`` lies in::

        [ (N - 1) I (1 - j) + T,   N I (1 + j) + T )

    With no jitter: ``[(N - 1) I + T, N I + T)``, and it is uniform there
    when the crash is uniform in the probe cycle.

    >>> detection_time_interval(5.0, 1.0, 3)
    (11.0, 16.0)

    Raises:
        TypeError / ValueError: a non-positive interval or timeout, a threshold below 1, jitter outside [0, 1).
    """
    i, t, n, j = _probe_args(interval, timeout, unhealthy_threshold, jitter)
    return (n - 1) * i * (1 - j) + t, n * i * (1 + j) + t


def detection_time_mean(interval: float, timeout: float, unhealthy_threshold: int, jitter: float = 0.0) -> float:
    """The mean detection time when the crash falls uniformly in time (independent of the probes).

    The gap the crash lands in is length-biased (the inspection paradox):
    ``E[D0] = E[G^2] / (2 E[G]) = I (1 + j^2 / 3) / 2`` for G uniform on
    ``[I (1 - j), I (1 + j)]``; the other N - 1 gaps have mean I.  So the
    mean is ``(N - 1) I + I (1 + j^2 / 3) / 2 + T``.

    >>> detection_time_mean(5.0, 1.0, 3)
    13.5
    """
    i, t, n, j = _probe_args(interval, timeout, unhealthy_threshold, jitter)
    return (n - 1) * i + i * (1 + j * j / 3) / 2 + t


def expected_probes_to_run(p: float, n: int) -> float:
    """The mean number of probes until ``n`` consecutive ones are lost, each lost independently with probability ``p``.

    A run-length (success-run) formula.  Let ``E_k`` be the mean number of
    further probes when the last k were lost.  ``E_n = 0`` and
    ``E_k = 1 + p E_{k+1} + (1 - p) E_0``; unrolling from ``E_0`` gives
    ``E_0 = (1 + p + ... + p^(n-1)) / p^n``, i.e.::

        E[K] = (1 - p^n) / ((1 - p) p^n)

    (n = 1: ``1 / p``, a geometric wait).  The probes counted include the
    n lost ones at the end.

    >>> round(expected_probes_to_run(0.5, 3), 6)
    14.0

    Raises:
        TypeError / ValueError: ``p`` not in (0, 1), ``n`` not an int >= 1.
    """
    q = require_number(p, "p")
    if q >= 1:
        raise ValueError(f"p is a probability below 1, got {p}")
    require_int(n, "n")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return (1 - q**n) / ((1 - q) * q**n)


def false_ejection_mean_time(p: float, interval: float, timeout: float, unhealthy_threshold: int, first_probe: float | None = None) -> float:
    """The mean time until a healthy server whose probes are lost with probability ``p`` is marked down.

    K probes (:func:`expected_probes_to_run`) are sent, the first at
    ``first_probe`` seconds after the server was added (default ``I / 2``,
    the mean of the checker's uniform first phase), the others one mean
    interval I apart (jitter is symmetric: it leaves the mean gap at I and,
    the gaps being independent of the losses, the mean by Wald's identity);
    the last one's loss is known T later::

        E[time] = first_probe + (E[K] - 1) I + T

    >>> round(false_ejection_mean_time(0.5, 5.0, 1.0, 3), 6)
    68.5
    """
    i, t, n, _ = _probe_args(interval, timeout, unhealthy_threshold, 0.0)
    first = i / 2 if first_probe is None else require_number(first_probe, "first_probe", strict=False)
    return first + (expected_probes_to_run(p, n) - 1) * i + t


# -- caches: Che's approximation of LRU ------------------------------------------------


def zipf_popularity(items: int, alpha: float) -> list[float]:
    """Zipf(alpha) request probabilities of ``items`` items: ``p_i`` proportional to ``i^-alpha`` (i = 1..N).  O(N).

    ``alpha = 0`` is uniform; around 0.6 to 1.2 is what web and content
    caches see.

    Raises:
        TypeError / ValueError: ``items`` not an int >= 1, ``alpha`` not a finite number >= 0.
    """
    require_int(items, "items")
    a = require_number(alpha, "alpha", strict=False)
    weights = [k**-a for k in range(1, items + 1)]
    total = math.fsum(weights)
    return [w / total for w in weights]


def che_characteristic_time(popularity: Sequence[float], capacity: int) -> float:
    """Che's characteristic time ``T_C``: the root of ``sum_i (1 - exp(-p_i T)) = C``.

    Under the independent reference model (IRM: each request names item i
    with probability ``p_i``, independently), an LRU cache of C items keeps an
    item as long as it is requested at least once in every window of
    ``T_C`` requests (Che, Tung and Wang, IEEE JSAC 20(7), 2002; Fricker,
    Robert and Roberts, ITC 2012, on why it is so accurate).  The left side
    grows from 0 to N with T, so bisection on ``log T`` finds the root:
    O(N log(1/eps)).

    Raises:
        ValueError: ``capacity`` not in ``1..N-1`` (with C >= N everything fits: no characteristic time),
            or the popularities are not positive numbers summing to 1.
    """
    p = _popularity(popularity)
    require_int(capacity, "capacity")
    if capacity >= len(p):
        raise ValueError(f"capacity must be below the number of items ({len(p)}), got {capacity}: a cache that holds "
                         "every item misses only each item's first request")  # fmt: skip

    def filled(t: float) -> float:
        return math.fsum(-math.expm1(-pi * t) for pi in p)

    lo, hi = 1e-12, 1.0
    while filled(hi) < capacity:
        hi *= 2.0
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if filled(mid) < capacity:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-12:
            break
    return math.sqrt(lo * hi)


def che_hit_rate(popularity: Sequence[float], capacity: int) -> float:
    """The LRU hit rate Che's approximation predicts: ``sum_i p_i (1 - exp(-p_i T_C))``.

    See :func:`che_characteristic_time`.  ``capacity >= N`` gives 1 (every
    request after an item's first one hits: the stationary hit rate).  O(N log(1/eps)).

    >>> round(che_hit_rate(zipf_popularity(1000, 0.8), 100), 3)
    0.378

    Raises:
        ValueError / TypeError: as :func:`che_characteristic_time`.
    """
    p = _popularity(popularity)
    require_int(capacity, "capacity")
    if capacity >= len(p):
        return 1.0
    t = che_characteristic_time(p, capacity)
    return math.fsum(pi * -math.expm1(-pi * t) for pi in p)


def _popularity(popularity: Sequence[float]) -> list[float]:
    p = [require_number(x, "popularity") for x in popularity]
    if not p:
        raise ValueError("popularity needs at least one item")
    if abs(math.fsum(p) - 1.0) > 1e-9:
        raise ValueError(f"popularity must sum to 1 (probabilities), got {math.fsum(p)}")
    return p


# -- priority classes: Cobham's formula, preemptive-resume ------------------------------------------


def _class_loads(servers: int, offered_loads: Sequence[float]) -> list[float]:
    """Validate per-class offered loads (erlangs, highest class first); return them as floats."""
    require_int(servers, "servers")
    if isinstance(offered_loads, (str, bytes)) or not isinstance(offered_loads, Sequence):
        raise TypeError(f"offered_loads must be a sequence of numbers (erlangs per class, highest class first), "
                        f"got {type(offered_loads).__name__}")  # fmt: skip
    loads = [require_number(a, "offered load of a class") for a in offered_loads]
    if not loads:
        raise ValueError("offered_loads needs at least one class")
    if math.fsum(loads) >= servers:
        raise ValueError(f"the classes' offered loads sum to {math.fsum(loads)} erlangs, not below servers = {servers}: "
                         "the lowest class's queue would grow without bound")  # fmt: skip
    return loads


def priority_mean_waits(servers: int, offered_loads: Sequence[float]) -> list[float]:
    """Cobham's formula: each class's mean wait in an M/M/c queue with non-preemptive strict priority.

    Classes are given highest first; class k arrives as a Poisson stream with
    offered load ``a_k = lambda_k / mu`` erlangs, and every class has the
    same exponential service rate ``mu``.  A server that frees takes the head
    of the highest non-empty class (FIFO within a class) and never
    interrupts a running request.  With ``sigma_k = (a_1 + ... + a_k) / c``
    (the share of the ``c`` servers busy with classes 1..k)::

        W_k = W_0 / ((1 - sigma_{k-1}) (1 - sigma_k)),    W_0 = C(c, a) / (c mu)

    where ``a`` is the total load and ``C`` Erlang's delay formula
    (:func:`erlang_c`): ``W_0`` is the mean time until some server frees,
    seen by an arrival (the probability of finding all busy, times the mean
    residual of the first of c exponential completions).  Cobham, "Priority
    assignment in waiting line problems", Operations Research 2(1), 1954;
    Kleinrock, Queueing Systems vol. 2, section 3.6.  With ``c = 1``,
    ``W_0 = rho / mu`` (the mean residual work, ``lambda E[S^2] / 2``).

    Returns the waits in mean service times (multiply by ``1 / mu``), like
    :func:`mmc_mean_wait`; their mean weighted by the loads is the FIFO
    wait (the work-conservation law).  O(c + K).

    >>> [round(w, 4) for w in priority_mean_waits(1, [0.4, 0.4])]  # rho = 0.8 split evenly
    [1.3333, 6.6667]

    Raises:
        TypeError / ValueError: ``servers`` not an int >= 1, a load not
            positive and finite, or loads summing to ``servers`` or more.
    """
    loads = _class_loads(servers, offered_loads)
    c = servers
    w0 = erlang_c(c, math.fsum(loads)) / c
    out, before = [], 0.0
    for a in loads:
        upto = before + a / c
        out.append(w0 / ((1.0 - before) * (1.0 - upto)))
        before = upto
    return out


def preemptive_mean_times(offered_loads: Sequence[float], servers: int = 1) -> list[float]:
    """Mean time in system per class under preemptive-resume priority, in mean service times.

    A request of a higher class arriving to a busy system interrupts a
    request of a lower class at once; the interrupted one later resumes
    where it stopped (no work lost).  The top class never sees the others:
    it is exactly an M/M/c queue at its own load, ``1 + mmc_mean_wait(c, a_1)``
    (``1 / (1 - rho_1)`` for one server).

    For one server (M/M/1, equal exponential service rates) every class has
    a closed form (Kleinrock vol. 2, eq. 3.65; Harchol-Balter, Performance
    Modeling and Design of Computer Systems, ch. 32)::

        T_k = 1 / (1 - sigma_{k-1})  +  sigma_k / ((1 - sigma_{k-1}) (1 - sigma_k))

    (the service stretched by higher-class arrivals, plus the residual work
    of classes 1..k; ``sigma_k = rho_1 + ... + rho_k``).  For ``c > 1`` the
    lower classes have no closed form: only the top class is returned
    (a one-element list).  O(K) (O(c) for the top class when ``c > 1``).

    >>> [round(t, 4) for t in preemptive_mean_times([0.4, 0.4])]
    [1.6667, 8.3333]

    Raises:
        TypeError / ValueError: as :func:`priority_mean_waits`.
    """
    loads = _class_loads(servers, offered_loads)
    if servers > 1:
        return [1.0 + mmc_mean_wait(servers, loads[0])]
    out, before = [], 0.0
    for a in loads:
        upto = before + a
        out.append(1.0 / (1.0 - before) + upto / ((1.0 - before) * (1.0 - upto)))
        before = upto
    return out
