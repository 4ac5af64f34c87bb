"""Monitor drivers: run the adaptive sampling and pressure policies on a process.

``Monitor.tick()`` takes one reading, stores it, feeds the policies and returns the next
interval; ``run()`` (an asyncio task) and ``start_thread()`` loop over it. Ticks use the
cheap reader (O(1) kernel counters) and every ``full_every``-th tick the exact
USS/PSS reader, whose cost grows with resident memory.

History is a ring buffer of parallel ``array`` columns: 8 bytes of time plus 4 bytes per
memory figure (in KiB, the unit /proc reports) = 32 bytes a sample, so a day at the 5 s
base interval (17,280 samples) costs 553 KB, preallocated once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from array import array
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from connscale.clock import Timer
from connscale.core.monitor_policy import AdaptiveSampling, PressureLevel, PressureTracker
from connscale.core.stats import DEFAULT_LEAK_THRESHOLD, TrendResult, trend
from connscale.errors import ConfigurationError, MeasurementError
from connscale.memory import MemoryReader, MemorySample

#: Stored for "not available" (a real reading is < 4 TiB).
_MISSING = 0xFFFFFFFF
_MAX_KIB = _MISSING - 1

FIELDS = ("rss", "anon", "uss", "pss", "swap", "fds")

#: Samples in a day at the default 5 s base interval.
SAMPLES_PER_DAY_AT_BASE = 24 * 3600 // 5


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One stored reading (bytes; None where it was not available)."""

    timestamp: float
    rss: int | None
    anon: int | None
    uss: int | None
    pss: int | None
    swap: int | None
    fds: int | None


class History:
    """Bounded ring buffer of readings in compact typed arrays (oldest overwritten first)."""

    __slots__ = ("_columns", "_count", "_next", "_times", "capacity")

    def __init__(self, capacity: int = SAMPLES_PER_DAY_AT_BASE) -> None:
        if capacity < 1:
            raise ConfigurationError(f"history capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._times = array("d", bytes(8 * capacity))
        # 'I' is 4 bytes on every platform CPython supports.
        self._columns = {name: array("I", [_MISSING]) * capacity for name in FIELDS}
        self._next = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored columns (the preallocated buffers)."""
        columns = sum(col.itemsize * len(col) for col in self._columns.values())
        return self._times.itemsize * len(self._times) + columns

    def append(self, sample: MemorySample) -> None:
        i = self._next
        self._times[i] = sample.timestamp
        columns = self._columns
        columns["rss"][i] = _kib(sample.rss)
        columns["anon"][i] = _kib(sample.anon)
        columns["uss"][i] = _kib(sample.uss)
        columns["pss"][i] = _kib(sample.pss)
        columns["swap"][i] = _kib(sample.swap)
        fds = sample.fds
        columns["fds"][i] = _MISSING if fds is None else min(fds, _MAX_KIB)
        self._next = (i + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)

    def _indices(self) -> Iterator[int]:
        start = (self._next - self._count) % self.capacity
        for k in range(self._count):
            yield (start + k) % self.capacity

    def series(self, field: str = "rss") -> list[tuple[float, float]]:
        """(timestamp, value) pairs of one field, oldest first; unavailable readings skipped."""
        if field not in self._columns:
            raise ConfigurationError(f"unknown history field {field!r}; one of {FIELDS}")
        column = self._columns[field]
        scale = 1 if field == "fds" else 1024
        return [
            (self._times[i], float(column[i] * scale))
            for i in self._indices()
            if column[i] != _MISSING
        ]

    def points(self) -> list[HistoryPoint]:
        """Every stored reading, oldest first."""
        out = []
        for i in self._indices():
            values = {
                name: (None if col[i] == _MISSING else col[i] * (1 if name == "fds" else 1024))
                for name, col in self._columns.items()
            }
            out.append(HistoryPoint(timestamp=self._times[i], **values))
        return out

    def latest(self) -> HistoryPoint | None:
        if not self._count:
            return None
        return self.points()[-1]

    def clear(self) -> None:
        self._next = 0
        self._count = 0


def _kib(value: int | None) -> int:
    if value is None:
        return _MISSING
    return min(value // 1024, _MAX_KIB)


#: Called after each tick with the reading (e.g. to update Prometheus gauges).
SampleListener = Callable[[MemorySample], None]


class Monitor:
    """Samples a process on the adaptive schedule, keeps history, tracks pressure."""

    def __init__(
        self,
        pid: int | None = None,
        *,
        sampler: Callable[[], MemorySample] | None = None,
        full_sampler: Callable[[], MemorySample] | None = None,
        full_every: int = 12,
        policy: AdaptiveSampling | None = None,
        pressure: PressureTracker | None = None,
        pressure_field: str = "rss",
        history: History | None = None,
        clock: Timer = time.monotonic,
        on_sample: SampleListener | None = None,
    ) -> None:
        if full_every < 0:
            raise ConfigurationError(f"full_every must be >= 0 (0 = never), got {full_every}")
        if pressure_field not in FIELDS:
            raise ConfigurationError(f"pressure_field must be one of {FIELDS}")
        reader = MemoryReader(pid, clock=clock) if sampler is None or full_sampler is None else None
        self._sampler = sampler or (reader.sample_quick if reader else _unreachable)
        self._full_sampler = full_sampler or (reader.sample if reader else _unreachable)
        self.full_every = full_every
        self.policy = policy or AdaptiveSampling()
        self.pressure = pressure
        self.pressure_field = pressure_field
        self.history = history or History()
        self._clock = clock
        self._listeners: list[SampleListener] = [on_sample] if on_sample else []
        self._ticks = 0
        self._last: MemorySample | None = None
        self._last_full: MemorySample | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []  # listener failures, newest last (bounded)

    @property
    def ticks(self) -> int:
        return self._ticks

    @property
    def last(self) -> MemorySample | None:
        return self._last

    @property
    def last_full(self) -> MemorySample | None:
        """The newest exact (USS/PSS) reading."""
        return self._last_full

    @property
    def interval(self) -> float:
        return self.policy.interval

    def add_listener(self, listener: SampleListener) -> None:
        self._listeners.append(listener)

    def tick(self) -> float:
        """Take one reading now; returns seconds to wait before the next one.

        ProcessGoneError / NotAvailableError from the reader propagate.
        """
        full = self.full_every > 0 and self._ticks % self.full_every == 0
        sample = self._full_sampler() if full else self._sampler()
        self._ticks += 1
        self._last = sample
        if full:
            self._last_full = sample
        self.history.append(sample)
        interval = self.policy.observe(
            float(sample.anon if sample.anon is not None else sample.rss)
        )
        if self.pressure is not None:
            value = getattr(sample, self.pressure_field)
            if value is not None:
                self.pressure.update(float(value))
        for listener in self._listeners:
            try:
                listener(sample)
            except Exception as exc:  # a display or exporter bug must not stop monitoring
                self.errors = [*self.errors[-9:], f"{type(exc).__name__}: {exc}"]
        return interval

    @property
    def pressure_level(self) -> PressureLevel | None:
        return None if self.pressure is None else self.pressure.level

    def trend(
        self, field: str = "anon", *, threshold: float = DEFAULT_LEAK_THRESHOLD
    ) -> TrendResult:
        """Theil-Sen trend of one history field (bytes per second); ConfigurationError if
        fewer than 2 readings."""
        return trend(self.history.series(field), threshold=threshold)

    # --- drivers -------------------------------------------------------------------------

    async def run(
        self,
        *,
        duration: float | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """Sample until cancelled, ``stop()`` or ``duration`` seconds (by the clock) pass."""
        self._stop.clear()
        deadline = None if duration is None else self._clock() + duration
        while not self._stop.is_set():
            interval = self.tick()
            if deadline is not None:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return
                interval = min(interval, remaining)
            await sleep(interval)

    def start_task(self, *, duration: float | None = None) -> asyncio.Task[None]:
        """Run the monitor as a task on the running loop."""
        return asyncio.get_running_loop().create_task(self.run(duration=duration))

    def start_thread(self, *, on_error: Callable[[MeasurementError], None] | None = None) -> None:
        """Run the monitor in a daemon thread until stop(); a measurement error ends it."""
        if self._thread is not None and self._thread.is_alive():
            raise ConfigurationError("this monitor's thread is already running")
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    interval = self.tick()
                except MeasurementError as exc:
                    if on_error is not None:
                        on_error(exc)
                    return
                self._stop.wait(interval)  # wakes at once on stop()

        self._thread = threading.Thread(target=loop, name="connscale-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread (or the task at its next wake-up) and wait for the thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


def _unreachable() -> MemorySample:  # pragma: no cover - both samplers given
    raise AssertionError("sampler not configured")


__all__ = [
    "FIELDS",
    "SAMPLES_PER_DAY_AT_BASE",
    "History",
    "HistoryPoint",
    "Monitor",
    "SampleListener",
]
