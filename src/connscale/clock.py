"""Injectable time, so that TTLs, monitors and timeouts are tested by ticking a fake clock."""

from __future__ import annotations

import time
from collections.abc import Callable

#: A timer is any zero-argument callable returning seconds as a float (``time.monotonic``).
Timer = Callable[[], float]

monotonic: Timer = time.monotonic


class FakeClock:
    """A manual clock for tests: ``clock()`` returns the current time, ``advance()`` moves it."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (advance({seconds}))")
        self._now += seconds

    @property
    def now(self) -> float:
        return self._now


__all__ = ["FakeClock", "Timer", "monotonic"]
