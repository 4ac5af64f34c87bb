"""The coarse timer wheel, driven by a fake clock (no sleeping, no loop)."""

from __future__ import annotations

import sys
from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale.core.timers import TimerWheel, timer_resolution


def run(
    wheel: TimerWheel, start: float, seconds: float, step: float = 0.01
) -> list[tuple[float, int]]:
    """Advance the wheel as an engine would, waking at each step; (time, item) fired."""
    fired: list[tuple[float, int]] = []
    now = start
    while now < start + seconds - 1e-9:
        now = min(start + seconds, now + step)
        fired.extend((now, item) for item in wheel.advance(now))
    return fired


@given(st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=20))
def test_timers_expire_not_early_and_at_most_two_ticks_late(delays: list[float]) -> None:
    start = 100.0
    wheel = TimerWheel(0.1, start)
    for item, delay in enumerate(delays):
        wheel.schedule(delay, item)
    fired = run(wheel, start, 3.5)
    assert sorted(item for _, item in fired) == list(range(len(delays)))
    for when, item in fired:
        assert delays[item] - 1e-6 <= when - start <= delays[item] + 2 * 0.1 + 0.02
    assert len(wheel) == 0 and wheel.next_deadline() is None


def test_schedule_says_when_the_wheel_needs_waking_and_when_next() -> None:
    wheel = TimerWheel(0.5, 10.0)
    assert wheel.schedule(2.0, 1) is True  # was empty: the owner must arrange a wake-up
    assert wheel.schedule(1.0, 2) is False
    deadline = wheel.next_deadline()
    assert deadline is not None and 11.0 <= deadline <= 11.6
    assert list(wheel.advance(deadline)) == [2]
    assert list(wheel.advance(13.0)) == [1]


def test_expired_items_can_be_rearmed_and_clear_drops_everything() -> None:
    wheel = TimerWheel(0.1, 0.0)
    wheel.schedule(0.2, 7)
    assert list(wheel.advance(0.5)) == [7]
    wheel.schedule_at(wheel.now + wheel.ticks(0.5), 7)  # lazy re-arm from the owner
    assert list(wheel.advance(0.7)) == []
    assert list(wheel.advance(1.2)) == [7]
    wheel.schedule_at(0, 8)  # a tick already swept means the next one
    assert list(wheel.advance(1.31)) == [8]
    wheel.schedule(0.2, 9)
    wheel.clear()
    assert list(wheel.advance(5.0)) == [] and len(wheel) == 0


def test_a_zero_resolution_is_refused() -> None:
    with pytest.raises(ValueError, match="resolution"):
        TimerWheel(0.0, 0.0)


@pytest.mark.parametrize(
    ("timeouts", "expected"),
    [((10.0, None), 1.0), ((0.2, None, 0.4), 0.025), ((0.01,), 0.01), ((None,), 1.0)],
)
def test_resolution_is_an_eighth_of_the_shortest_timeout(
    timeouts: tuple[float | None, ...], expected: float
) -> None:
    assert timer_resolution(*timeouts) == pytest.approx(expected)


def test_a_crowded_bucket_keeps_its_order_in_small_arrays() -> None:
    """Many items due at one tick stay in order; the wheel keeps them in arrays that the
    small-object allocator serves (no array over 512 bytes), and counts them right."""
    wheel = TimerWheel(0.1, 0.0)
    for item in range(1_000):
        wheel.schedule(0.05, item)
    chunks = next(iter(wheel._buckets.values()))
    empty = sys.getsizeof(array("Q"))
    assert len(chunks) > 1 and all(isinstance(chunk, array) for chunk in chunks)
    assert all(sys.getsizeof(chunk) - empty <= 512 for chunk in chunks)
    assert len(wheel) == 1_000
    expired = wheel.advance(1.0)
    assert len(wheel) == 0  # taken out at once, before the caller iterates
    wheel.schedule(0.05, 5_000)  # scheduled while iterating: a later bucket
    assert list(expired) == list(range(1_000))
    assert list(wheel.advance(2.0)) == [5_000]
