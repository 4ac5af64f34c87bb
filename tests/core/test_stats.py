"""Scaling fit and Theil-Sen trend: exact lines, noise, planted leaks, garbage input."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale.core.stats import (
    MAX_TREND_POINTS,
    Plateau,
    coefficient_of_variation,
    plateaus,
    rising,
    scaling,
    trend,
)
from connscale.errors import ConfigurationError


def test_exact_line_gives_slope_intercept_and_zero_cv() -> None:
    points = [(n, 50_000 + 1_300 * n) for n in (10, 25, 50, 100)]
    result = scaling(points)
    assert result.marginal_bytes == pytest.approx(1_300)
    assert result.fixed_overhead == pytest.approx(50_000)
    assert result.r_squared == pytest.approx(1.0)
    assert result.step_marginals == pytest.approx((1_300, 1_300, 1_300))
    assert result.step_cv == pytest.approx(0.0)
    assert result.predict(200) == pytest.approx(50_000 + 1_300 * 200)


def test_total_over_n_would_mislead_but_the_slope_does_not() -> None:
    # A 10 MB fixed overhead: total/N varies 10x across steps, the marginal is exact.
    points = [(n, 10_000_000 + 500 * n) for n in (10, 100, 1_000)]
    totals_over_n = [y / n for n, y in points]
    assert max(totals_over_n) / min(totals_over_n) > 10
    assert scaling(points).marginal_bytes == pytest.approx(500)


def test_repeated_levels_use_the_median_for_steps() -> None:
    points = [(10, 1_000), (10, 1_010), (10, 5_000), (20, 2_000), (20, 2_000), (30, 3_000)]
    result = scaling(points)
    assert result.step_marginals == pytest.approx((99.0, 100.0))


def test_two_points_have_one_step_and_undefined_cv() -> None:
    result = scaling([(1, 10), (2, 20)])
    assert result.step_marginals == (10.0,)
    assert result.step_cv is None
    verdict = result.check(max_cv=0.5)
    assert not verdict.ok
    assert "undefined" in verdict.reasons[0]


def test_check_reports_every_broken_limit() -> None:
    result = scaling([(10, 20_000), (20, 30_000), (40, 80_000)])
    verdict = result.check(max_marginal_bytes=100, max_cv=0.1, max_total=50_000)
    assert not verdict.ok
    assert not verdict
    assert len(verdict.reasons) == 3
    assert any("marginal" in r for r in verdict.reasons)
    assert any("CV" in r for r in verdict.reasons)
    assert any("total" in r for r in verdict.reasons)
    assert result.check(max_marginal_bytes=10_000, max_cv=1.0, max_total=10**6).ok


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([], "empty"),
        ([(1, 2)], "only one point"),
        ([(5, 1), (5, 2)], "distinct"),
        ([(1, 2), (2, math.nan)], "not finite"),
        ([(1, 2), (2, math.inf)], "not finite"),
        ([(1, 2), ("x", 3)], "pair"),
        ([(1, 2), (3,)], "pair"),
    ],
)
def test_bad_series_raise_clear_errors(points: list[tuple[float, float]], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        scaling(points)
    with pytest.raises(ConfigurationError, match=message):
        trend(points)


def test_cv_helper() -> None:
    assert coefficient_of_variation([1.0]) is None
    assert coefficient_of_variation([1.0, -1.0]) is None  # zero mean
    assert coefficient_of_variation([2.0, 2.0, 2.0]) == 0.0
    assert coefficient_of_variation([1.0, 3.0]) == pytest.approx(math.sqrt(2) / 2)


@given(
    st.lists(
        st.tuples(st.floats(-1e9, 1e9, allow_nan=False), st.floats(-1e12, 1e12, allow_nan=False)),
        min_size=2,
        max_size=30,
    )
)
def test_scaling_on_arbitrary_input_raises_only_configuration_error(
    points: list[tuple[float, float]],
) -> None:
    try:
        result = scaling(points)
    except ConfigurationError:
        return
    assert 0.0 <= result.r_squared <= 1.0
    assert len(result.step_marginals) == len({x for x, _ in points}) - 1


@given(
    st.lists(
        st.tuples(st.floats(0, 1e6, allow_nan=False), st.floats(0, 1e9, allow_nan=False)),
        min_size=2,
        max_size=40,
    )
)
def test_trend_interval_contains_the_slope(points: list[tuple[float, float]]) -> None:
    try:
        result = trend(points)
    except ConfigurationError:
        return
    assert result.slope_low <= result.slope <= result.slope_high
    assert not (result.leak and result.slope_low <= 0)


def test_planted_leak_is_flagged() -> None:
    rng = random.Random(7)
    # 200 B/s of growth under 4 KiB (a page) of noise.
    samples = [(t * 5.0, 50e6 + 200 * t * 5.0 + rng.gauss(0, 4096)) for t in range(120)]
    result = trend(samples, threshold=10.0)
    assert result.leak, result.reason
    assert result.slope == pytest.approx(200, rel=0.1)
    assert "leak" in result.reason


def test_clean_loop_gives_no_false_leak_in_20_runs() -> None:
    for seed in range(20):
        rng = random.Random(seed)
        # Flat memory, page-sized noise and an occasional allocator step back and forth.
        samples = [
            (t * 5.0, 50e6 + rng.gauss(0, 4096) + (65_536 if rng.random() < 0.05 else 0))
            for t in range(120)
        ]
        result = trend(samples, threshold=10.0)
        assert not result.leak, f"seed {seed}: {result.reason}"


def test_significant_but_tiny_growth_is_not_a_leak() -> None:
    samples = [(float(t), 1e6 + 0.5 * t) for t in range(100)]
    result = trend(samples, threshold=1.0)
    assert result.slope_low > 0
    assert not result.leak
    assert "threshold" in result.reason


def test_outliers_do_not_move_the_robust_slope() -> None:
    samples = [(float(t), 1000.0 + 10 * t) for t in range(50)]
    samples[10] = (10.0, 1e9)  # one wild reading (e.g. a transient spike)
    assert trend(samples).slope == pytest.approx(10.0)


def test_long_series_are_binned() -> None:
    samples = [(float(t), 3.0 * t) for t in range(5 * MAX_TREND_POINTS)]
    result = trend(samples)
    assert result.n == MAX_TREND_POINTS
    assert result.slope == pytest.approx(3.0, rel=1e-3)


@pytest.mark.parametrize("kwargs", [{"confidence": 1.0}, {"confidence": 0.3}, {"threshold": -1}])
def test_trend_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        trend([(0, 0), (1, 1)], **kwargs)


def test_plateaus_are_settled_runs_of_one_connection_count() -> None:
    readings = [
        (0.0, 100.0, 50.0),
        (0.0, 101.0, 50.0),
        (0.0, 99.0, 50.0),
        (0.0, 100.0, None),  # a PSS that could not be read: the median of the others
        (400.0, 900.0, 500.0),  # a reading taken in the middle of a ramp: no plateau
        (1000.0, 5000.0, 2500.0),  # the ramp just ended: dropped while the server settles
        (1001.0, 2100.0, 1050.0),  # one connection dropped and reopened: still the plateau
        (1000.0, 2101.0, 1051.0),
        (999.0, 2099.0, 1049.0),
        (2000.0, 4100.0, 2050.0),
        (2000.0, 4100.0, 2050.0),  # too short to count
    ]
    found = plateaus(readings)
    assert [(p.connections, p.uss, p.pss, p.readings) for p in found] == [
        (0.0, 100.0, 50.0, 3),
        (1000.0, 2100.0, 1050.0, 3),
    ]
    assert plateaus(readings, settle=0, min_readings=2)[-1].connections == 2000.0
    assert plateaus([]) == []
    with pytest.raises(ConfigurationError):
        plateaus(readings, min_readings=0)


def test_the_fit_follows_the_longest_rising_run_of_plateaus() -> None:
    def at(*counts: float) -> list[Plateau]:
        return [Plateau(count, count * 10, None, 3) for count in counts]

    # Idle, a ramp up in four steps, then the load goes away: the ramp is the fit's.
    assert [p.connections for p in rising(at(7, 2507, 5007, 7507, 10007, 7))] == [
        7,
        2507,
        5007,
        7507,
        10007,
    ]
    assert [p.connections for p in rising(at(100, 50, 60, 70, 20))] == [50, 60, 70]
    assert [p.connections for p in rising(at(10, 20, 5, 6))] == [5, 6]  # the latest of equals
    assert rising([]) == []
