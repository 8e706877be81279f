"""Queueing formulas and the t confidence interval."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from solution.sim.theory import (
    erlang_b,
    erlang_c,
    mean_confidence_interval,
    mm1k,
    mmc_mean_wait,
    mmc_wait_cdf,
    mmck,
    student_t_cdf,
    student_t_quantile,
)

pytestmark = pytest.mark.sim


def erlang_b_closed_form(c: int, a: float) -> float:
    terms = [a**k / math.factorial(k) for k in range(c + 1)]
    return terms[-1] / math.fsum(terms)


@given(st.integers(1, 30), st.floats(0.01, 60.0))
def test_erlang_b_matches_the_closed_form(c: int, a: float) -> None:
    assert erlang_b(c, a) == pytest.approx(erlang_b_closed_form(c, a), rel=1e-9)


@pytest.mark.parametrize(("c", "a", "expected"), [(1, 1.0, 0.5), (2, 1.0, 0.2), (10, 5.0, 0.018384570), (4, 3.0, 0.206106870)])
def test_erlang_b_known_values(c: int, a: float, expected: float) -> None:
    assert erlang_b(c, a) == pytest.approx(expected, rel=1e-7)


def test_erlang_b_is_stable_for_large_systems() -> None:
    assert 0.0 < erlang_b(2000, 1900.0) < 0.05  # a closed form would overflow a**c / c!


@given(st.integers(1, 20), st.floats(0.1, 30.0))
def test_erlang_b_grows_with_load_and_falls_with_servers(c: int, a: float) -> None:
    assert erlang_b(c, a * 1.1) > erlang_b(c, a) > erlang_b(c + 1, a)


@pytest.mark.parametrize(("servers", "load", "error"), [(0, 1.0, ValueError), (2, -1.0, ValueError), (2, 0.0, ValueError),
                                                          (2, math.inf, ValueError), (2.0, 1.0, TypeError), (True, 1.0, TypeError),
                                                          (2, "1", TypeError)])  # fmt: skip
def test_erlang_b_rejects_bad_input(servers: object, load: object, error: type) -> None:
    with pytest.raises(error):
        erlang_b(servers, load)  # type: ignore[arg-type]


def test_mm1k() -> None:
    blocking, mean = mm1k(0.5, 2)  # weights 1, 0.5, 0.25
    assert blocking == pytest.approx(0.25 / 1.75)
    assert mean == pytest.approx((0.5 + 0.5) / 1.75)
    assert mm1k(1.0, 4) == pytest.approx((0.2, 2.0))


@pytest.mark.parametrize(("p", "df", "t"), [(0.975, 9, 2.262157163), (0.995, 11, 3.105806516), (0.9995, 19, 3.883405853),
                                            (0.975, 1, 12.70620474), (0.95, 30, 1.697260887), (0.5, 5, 0.0)])  # fmt: skip
def test_student_t_quantile_known_values(p: float, df: int, t: float) -> None:
    assert student_t_quantile(p, df) == pytest.approx(t, abs=1e-8)


@given(st.floats(-20, 20), st.integers(1, 200))
def test_student_t_cdf_is_symmetric_and_inverted_by_the_quantile(t: float, df: int) -> None:
    assert student_t_cdf(t, df) + student_t_cdf(-t, df) == pytest.approx(1.0, abs=1e-12)
    p = student_t_cdf(t, df)
    if 1e-9 < p < 1 - 1e-9:
        assert student_t_quantile(p, df) == pytest.approx(t, abs=1e-6 * max(1.0, abs(t)))


def test_mean_confidence_interval() -> None:
    mean, low, high = mean_confidence_interval([1.0, 2.0, 3.0, 4.0], level=0.95)
    half = 3.182446305 * math.sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3 / 4)  # t(0.975, 3) * s / sqrt(k)
    assert (mean, low, high) == pytest.approx((2.5, 2.5 - half, 2.5 + half))
    with pytest.raises(ValueError, match="at least 2"):
        mean_confidence_interval([1.0])
    with pytest.raises(ValueError, match="level"):
        mean_confidence_interval([1.0, 2.0], level=1.0)


# -- stage 2: M/M/c and M/M/c/K -----------------------------------------------------------


def erlang_c_closed_form(c: int, a: float) -> float:
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (math.fsum(a**k / math.factorial(k) for k in range(c)) + top)


@given(st.integers(1, 30), st.floats(0.01, 0.99))
def test_erlang_c_matches_the_closed_form(c: int, rho: float) -> None:
    assert erlang_c(c, rho * c) == pytest.approx(erlang_c_closed_form(c, rho * c), rel=1e-9)


@pytest.mark.parametrize(("c", "a", "expected"), [(1, 0.5, 0.5), (2, 1.0, 1 / 3), (4, 3.0, 0.509434)])
def test_erlang_c_known_values(c: int, a: float, expected: float) -> None:
    assert erlang_c(c, a) == pytest.approx(expected, rel=1e-6)


def test_mmc_wait() -> None:
    assert mmc_mean_wait(1, 0.8) == pytest.approx(0.8 / 0.2)  # M/M/1: rho / (1 - rho) service times
    assert mmc_wait_cdf(1, 0.8, 0.0) == pytest.approx(0.2)  # P(no wait) = 1 - rho
    assert mmc_wait_cdf(2, 1.0, -1.0) == 0.0 and mmc_wait_cdf(2, 1.0, 50.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="stable"):
        erlang_c(4, 4.0)


def test_mmck_limits_and_known_values() -> None:
    assert mmck(4, 3.0, 0)[0] == pytest.approx(erlang_b(4, 3.0))  # no room to wait: Erlang B
    blocking, wait = mmck(4, 3.0, 5_000)
    assert blocking < 1e-12 and wait == pytest.approx(mmc_mean_wait(4, 3.0))  # a deep queue: M/M/c
    # M/M/1/3 at rho = 0.5: weights 1, 1/2, 1/4, 1/8 (sum 1.875); Lq = (1 * 1/4 + 2 * 1/8) / 1.875
    assert mmck(1, 0.5, 2) == pytest.approx((0.125 / 1.875, (0.25 + 0.25) / 1.875 / (0.5 * (1 - 0.125 / 1.875))))
    assert mmck(1, 0.8, 4)[0] == pytest.approx(mm1k(0.8, 5)[0])
    assert 0.0 < mmck(2, 1e4, 10_000)[0] < 1.0  # overloaded, deep: no overflow


@pytest.mark.parametrize(("args", "error"), [((0, 1.0, 1), ValueError), ((2, 1.0, -1), ValueError), ((2, 0.0, 1), ValueError),
                                             ((2, 1.0, 1.5), TypeError)])  # fmt: skip
def test_mmck_rejects_bad_input(args: tuple, error: type) -> None:
    with pytest.raises(error):
        mmck(*args)
