"""Adaptive sampling intervals and pressure levels with hysteresis, driven tick by tick."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale.core.monitor_policy import (
    AdaptiveSampling,
    PressureLevel,
    PressureThresholds,
    PressureTracker,
)
from connscale.errors import ConfigurationError


def test_interval_stays_at_base_until_the_window_is_full() -> None:
    policy = AdaptiveSampling(base_interval=5, max_interval=60, window=10)
    intervals = [policy.observe(1000.0) for _ in range(9)]
    assert intervals == [5.0] * 9
    assert policy.observe(1000.0) == 10.0  # window full and stable: grows


def test_stable_memory_grows_the_interval_up_to_the_max() -> None:
    policy = AdaptiveSampling(base_interval=5, max_interval=60, window=3)
    intervals = [policy.observe(1_000_000.0 + i) for i in range(10)]
    assert intervals[:2] == [5.0, 5.0]
    assert intervals[2:6] == [10.0, 20.0, 40.0, 60.0]
    assert max(intervals) == 60.0


def test_a_change_drops_back_to_base() -> None:
    policy = AdaptiveSampling(base_interval=5, max_interval=60, window=3, stable_tolerance=0.01)
    for _ in range(6):
        policy.observe(1_000_000.0)
    assert policy.interval == 60.0
    assert policy.observe(1_200_000.0) == 5.0
    assert not policy.stable
    policy.reset()
    assert policy.interval == 5.0


@given(st.lists(st.floats(0, 1e12, allow_nan=False), max_size=50))
def test_interval_always_within_bounds(values: list[float]) -> None:
    policy = AdaptiveSampling(base_interval=2, max_interval=30, window=4)
    for value in values:
        assert 2.0 <= policy.observe(value) <= 30.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_interval": 0},
        {"base_interval": math.nan},
        {"base_interval": 10, "max_interval": 5},
        {"window": 1},
        {"stable_tolerance": -0.1},
        {"growth": 0.5},
    ],
)
def test_bad_policy_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        AdaptiveSampling(**kwargs)  # type: ignore[arg-type]


def test_non_finite_reading_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        AdaptiveSampling().observe(math.inf)


def _tracker(hysteresis: float = 0.1) -> tuple[PressureTracker, list[tuple[int, int, float]]]:
    tracker = PressureTracker(
        PressureThresholds(elevated=700, high=850, critical=950), hysteresis=hysteresis
    )
    events: list[tuple[int, int, float]] = []
    tracker.subscribe(lambda old, new, value: events.append((old, new, value)))
    return tracker, events


def test_levels_rise_and_fall_with_hysteresis() -> None:
    tracker, events = _tracker(hysteresis=0.1)
    assert tracker.update(500) is PressureLevel.NORMAL
    assert tracker.update(720) is PressureLevel.ELEVATED
    assert tracker.update(960) is PressureLevel.CRITICAL  # jumps straight up
    assert tracker.update(940) is PressureLevel.CRITICAL  # within 10% of 950: stays
    assert tracker.update(860) is PressureLevel.CRITICAL  # 855 is the exit point
    assert tracker.update(800) is PressureLevel.HIGH  # below 855, above 765
    assert tracker.update(100) is PressureLevel.NORMAL  # falls through every level
    assert [(old, new) for old, new, _ in events] == [
        (PressureLevel.NORMAL, PressureLevel.ELEVATED),
        (PressureLevel.ELEVATED, PressureLevel.CRITICAL),
        (PressureLevel.CRITICAL, PressureLevel.HIGH),
        (PressureLevel.HIGH, PressureLevel.NORMAL),
    ]


def test_hovering_at_a_threshold_does_not_flap() -> None:
    tracker, events = _tracker(hysteresis=0.05)
    for value in [700, 699, 701, 690, 700, 680] * 5:
        tracker.update(value)
    assert len(events) == 1


def test_unsubscribe_and_failing_callback() -> None:
    tracker, events = _tracker()
    calls: list[int] = []

    def broken(old: PressureLevel, new: PressureLevel, value: float) -> None:
        raise RuntimeError("listener bug")

    tracker.subscribe(broken)
    unsubscribe = tracker.subscribe(lambda o, n, v: calls.append(int(n)))
    with pytest.raises(RuntimeError, match="listener bug"):
        tracker.update(800)
    assert events and calls == [1]  # every callback ran despite the failure
    assert tracker.level is PressureLevel.ELEVATED
    unsubscribe()
    unsubscribe()  # twice is harmless
    with pytest.raises(RuntimeError):
        tracker.update(900)
    assert calls == [1]


def test_thresholds_from_limit_and_validation() -> None:
    thresholds = PressureThresholds.from_limit(1000)
    assert (thresholds.elevated, thresholds.high, thresholds.critical) == (700, 850, 950)
    with pytest.raises(ConfigurationError):
        PressureThresholds(elevated=900, high=850, critical=950)
    with pytest.raises(ConfigurationError):
        PressureThresholds.from_limit(0)
    with pytest.raises(ConfigurationError):
        PressureTracker(thresholds, hysteresis=1.5)
    with pytest.raises(ConfigurationError):
        PressureTracker(thresholds).update(math.nan)
