"""Coarse timers for very many connections, sans-I/O: a wheel of buckets driven by ``advance``.

Why not one event-loop timer per connection: a ``TimerHandle`` is ~220 B with its heap
entry; here a pending timer is one bucket entry (8 B in an ``array('Q')``), and activity is
stamped in the caller's own arrays without moving anything (lazy re-arming: an expired
entry whose connection was active since is scheduled again for the rest of its time).
Items expire no earlier than asked and at most two ticks late.

The wheel reads no clock: its owner passes the time in (``advance(now)``) and asks when to
call again (``next_deadline``), so tests drive every timeout with a fake clock.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator
from itertools import chain

__all__ = ["TimerWheel", "timer_resolution"]

# Items per bucket array: with array's over-allocation (n + n/16 + 7 items) 48 items stay
# within the 512 bytes CPython's small-object allocator serves (see TimerWheel.__init__).
_CHUNK = 48


def timer_resolution(*timeouts: float | None) -> float:
    """Tick length for a wheel: an eighth of the shortest timeout, in 10 ms .. 1 s."""
    shortest = min((t for t in timeouts if t is not None), default=8.0)
    return min(1.0, max(0.01, shortest / 8.0))


class TimerWheel:
    """Integer items (for example ``generation << 32 | connection``) expiring at ticks."""

    __slots__ = ("_buckets", "_origin", "_pending", "_swept", "now", "resolution")

    def __init__(self, resolution: float, now: float) -> None:
        if not resolution > 0:
            raise ValueError("a timer wheel needs a resolution > 0")
        self.resolution = resolution
        self._origin = now
        self.now = 0  # the current tick, as of the last advance() or refresh()
        self._swept = 0  # every bucket up to this tick has been expired
        # Each bucket is a list of small arrays (_CHUNK items each) rather than one array
        # grown by realloc: an array past 512 bytes leaves CPython's small-object allocator
        # for the C heap, and there a growing array wanders through the free space a forked
        # worker shares with its supervisor, copying those pages (measured: ~20 B per
        # connection over a slow ramp). Small arrays stay in the worker's own pools.
        self._buckets: dict[int, list[array[int]]] = {}
        self._pending = 0

    def __len__(self) -> int:
        return self._pending

    def tick_of(self, now: float) -> int:
        return int((now - self._origin) / self.resolution)

    def ticks(self, seconds: float) -> int:
        """Whole ticks covering ``seconds`` plus one, so that nothing expires early."""
        return math.ceil(seconds / self.resolution) + 1

    def refresh(self, now: float) -> int:
        """Move the current tick to ``now`` without expiring anything (before stamping)."""
        self.now = max(self.now, self.tick_of(now))
        return self.now

    def schedule(self, seconds: float, item: int) -> bool:
        """Expire ``item`` once ``seconds`` have passed since the current tick.

        True when the wheel was empty before: its owner must arrange a call to ``advance``.
        """
        return self.schedule_at(self.now + self.ticks(seconds), item)

    def schedule_at(self, tick: int, item: int) -> bool:
        """Expire ``item`` at ``tick`` (a tick already swept means the next one)."""
        tick = max(tick, self._swept + 1)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = [array("Q")]
        chunk = bucket[-1]
        if len(chunk) >= _CHUNK:
            chunk = array("Q")
            bucket.append(chunk)
        chunk.append(item)
        self._pending += 1
        return self._pending == 1

    def advance(self, now: float) -> Iterator[int]:
        """Every item due by ``now``, in order; each is removed from the wheel at once (the
        caller may schedule more while it iterates: they land in later buckets)."""
        self.refresh(now)
        due: list[array[int]] = []
        if self._pending:
            buckets = self._buckets
            for tick in sorted(t for t in buckets if t <= self.now):
                for chunk in buckets.pop(tick):
                    self._pending -= len(chunk)
                    due.append(chunk)
        self._swept = self.now
        return chain.from_iterable(due)

    def next_deadline(self) -> float | None:
        """When the next bucket is due (clock seconds), or None when nothing is pending."""
        if not self._pending:
            return None
        return self._origin + min(self._buckets) * self.resolution

    def clear(self) -> None:
        self._buckets.clear()
        self._pending = 0
