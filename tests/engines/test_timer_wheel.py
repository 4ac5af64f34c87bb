"""The engines' coarse timer wheel, driven by a fake loop clock (no sleeping)."""

from __future__ import annotations

from array import array
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale.engines._base import TimerWheel, timer_resolution


class FakeLoop:
    """Just what the wheel uses: ``time()`` and ``call_later()``; ``advance`` fires due calls."""

    def __init__(self) -> None:
        self.now = 100.0
        self.calls: list[tuple[float, Any]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Any) -> Any:
        entry = (self.now + delay, callback)
        self.calls.append(entry)
        loop = self

        class Handle:
            def cancel(self) -> None:
                if entry in loop.calls:
                    loop.calls.remove(entry)

        return Handle()

    def advance(self, seconds: float, step: float = 0.01) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = min(end, self.now + step)
            for entry in [c for c in self.calls if c[0] <= self.now + 1e-9]:
                self.calls.remove(entry)
                entry[1]()


def make(resolution: float = 0.1) -> tuple[FakeLoop, TimerWheel[int], list[tuple[float, int]]]:
    loop = FakeLoop()
    fired: list[tuple[float, int]] = []
    wheel: TimerWheel[int] = TimerWheel(
        loop,  # type: ignore[arg-type]
        resolution,
        lambda item: fired.append((loop.now, item)),
        lambda: array("Q"),
    )
    return loop, wheel, fired


@given(st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=20))
def test_timers_expire_not_early_and_at_most_two_ticks_late(delays: list[float]) -> None:
    loop, wheel, fired = make(0.1)
    start = loop.now
    for item, delay in enumerate(delays):
        wheel.schedule(delay, item)
    loop.advance(3.5)
    assert sorted(item for _, item in fired) == list(range(len(delays)))
    for when, item in fired:
        assert delays[item] - 1e-6 <= when - start <= delays[item] + 2 * 0.1 + 0.02
    assert len(wheel) == 0 and not loop.calls  # nothing pending: the sweep stops


def test_expired_items_can_be_rearmed_and_close_drops_everything() -> None:
    loop, wheel, fired = make(0.1)
    rearmed: list[int] = []

    def again(item: int) -> None:
        if not rearmed:
            rearmed.append(item)
            wheel.schedule_at(wheel.now + wheel.ticks(0.5), item)
        fired.append((loop.now, item))

    wheel._on_expired = again  # type: ignore[assignment]
    wheel.schedule(0.2, 7)
    loop.advance(1.0)
    assert [item for _, item in fired] == [7, 7]
    wheel.schedule(0.2, 8)
    wheel.close()
    loop.advance(1.0)
    assert [item for _, item in fired] == [7, 7] and len(wheel) == 0


@pytest.mark.parametrize(
    ("timeouts", "expected"),
    [((10.0, None), 1.0), ((0.2, None, 0.4), 0.025), ((0.01,), 0.01), ((None,), 1.0)],
)
def test_resolution_is_an_eighth_of_the_shortest_timeout(
    timeouts: tuple[float | None, ...], expected: float
) -> None:
    assert timer_resolution(*timeouts) == pytest.approx(expected)
