"""Monitor drivers with injected samplers and clocks; the compact ring-buffer history."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from connscale.clock import FakeClock
from connscale.core.monitor_policy import (
    AdaptiveSampling,
    PressureLevel,
    PressureThresholds,
    PressureTracker,
)
from connscale.errors import ConfigurationError, MeasurementError, ProcessGoneError
from connscale.memory import MemorySample
from connscale.monitor import SAMPLES_PER_DAY_AT_BASE, History, Monitor


def make_sample(
    t: float, rss: int, *, uss: int | None = None, anon: int | None = None
) -> MemorySample:
    return MemorySample(
        pid=1,
        uss=uss,
        pss=None,
        rss=rss,
        swap=0,
        fds=10,
        py_heap_blocks=None,
        timestamp=t,
        anon=rss // 2 if anon is None else anon,
    )


class FakeSampler:
    """Returns rss = values[i] on the i-th call, stamped with the fake clock."""

    def __init__(self, clock: FakeClock, values: Callable[[int], int], *, full: bool = False):
        self.clock, self.values, self.full, self.calls = clock, values, full, 0

    def __call__(self) -> MemorySample:
        rss = self.values(self.calls)
        self.calls += 1
        return make_sample(self.clock(), rss, uss=rss if self.full else None)


def test_history_is_a_bounded_ring() -> None:
    history = History(capacity=3)
    for i in range(5):
        history.append(make_sample(float(i), (i + 1) * 4096))
    assert len(history) == 3
    assert history.series("rss") == [(2.0, 12288.0), (3.0, 16384.0), (4.0, 20480.0)]
    latest = history.latest()
    assert latest is not None and latest.rss == 20480 and latest.uss is None
    assert history.series("uss") == []  # not available: skipped, not zero
    assert history.series("fds") == [(2.0, 10.0), (3.0, 10.0), (4.0, 10.0)]
    history.clear()
    assert len(history) == 0 and history.latest() is None
    with pytest.raises(ConfigurationError):
        history.series("vss")
    with pytest.raises(ConfigurationError):
        History(capacity=0)


def test_a_day_of_history_fits_in_one_megabyte() -> None:
    history = History()
    assert history.capacity == SAMPLES_PER_DAY_AT_BASE == 17_280
    assert history.nbytes <= 1_000_000


def test_tick_uses_full_reads_every_nth_and_feeds_policies() -> None:
    clock = FakeClock()
    quick = FakeSampler(clock, lambda i: 100 << 20)
    full = FakeSampler(clock, lambda i: 100 << 20, full=True)
    levels: list[PressureLevel] = []
    tracker = PressureTracker(
        PressureThresholds(elevated=50 << 20, high=200 << 20, critical=300 << 20)
    )
    tracker.subscribe(lambda old, new, value: levels.append(new))
    monitor = Monitor(
        sampler=quick,
        full_sampler=full,
        full_every=4,
        policy=AdaptiveSampling(base_interval=5, max_interval=60, window=3),
        pressure=tracker,
        clock=clock,
    )
    intervals = []
    for _ in range(8):
        intervals.append(monitor.tick())
        clock.advance(intervals[-1])
    assert (full.calls, quick.calls) == (2, 6)
    assert monitor.last_full is not None and monitor.last_full.uss == 100 << 20
    assert intervals[:3] == [5.0, 5.0, 10.0]
    assert intervals[-1] == 60.0
    assert levels == [PressureLevel.ELEVATED]
    assert monitor.pressure_level is PressureLevel.ELEVATED
    assert len(monitor.history) == 8


def test_monitor_trend_flags_growth() -> None:
    clock = FakeClock()
    growing = FakeSampler(clock, lambda i: (100 << 20) + i * 10 * 4096)
    monitor = Monitor(
        sampler=growing,
        full_sampler=growing,
        clock=clock,
        policy=AdaptiveSampling(stable_tolerance=0.0),  # growth is never "stable": 5 s ticks
    )
    with pytest.raises(ConfigurationError):
        monitor.trend("rss")  # empty history: clear error
    for _ in range(30):
        clock.advance(monitor.tick())
    result = monitor.trend("rss")
    assert result.leak
    assert result.slope == pytest.approx(10 * 4096 / 5.0)


def test_listener_errors_are_kept_not_raised() -> None:
    clock = FakeClock()
    sampler = FakeSampler(clock, lambda i: 4096)
    seen: list[int] = []
    monitor = Monitor(
        sampler=sampler, full_sampler=sampler, clock=clock, on_sample=lambda s: seen.append(s.rss)
    )

    def broken(sample: MemorySample) -> None:
        raise ZeroDivisionError("listener bug")

    monitor.add_listener(broken)
    monitor.tick()
    assert seen == [4096]
    assert monitor.errors and "ZeroDivisionError" in monitor.errors[0]


def test_async_driver_runs_for_a_duration_of_fake_time() -> None:
    clock = FakeClock()
    sampler = FakeSampler(clock, lambda i: 1 << 20)
    monitor = Monitor(
        sampler=sampler,
        full_sampler=sampler,
        clock=clock,
        policy=AdaptiveSampling(base_interval=5, max_interval=60, window=2),
    )
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    asyncio.run(monitor.run(duration=100.0, sleep=fake_sleep))
    assert sum(waits) == pytest.approx(100.0)
    assert waits[:3] == [5.0, 10.0, 20.0]  # stable memory: the interval grows
    assert monitor.ticks == len(waits) + 1


def test_async_task_stops_on_stop() -> None:
    sampler = FakeSampler(FakeClock(), lambda i: 1 << 20)
    monitor = Monitor(
        sampler=sampler,
        full_sampler=sampler,
        policy=AdaptiveSampling(base_interval=0.001, max_interval=0.001),
    )

    async def main() -> None:
        task = monitor.start_task()
        while monitor.ticks < 3:
            await asyncio.sleep(0)
            await asyncio.sleep(0.001)
        monitor.stop()
        await asyncio.wait_for(task, 2.0)

    asyncio.run(main())
    assert monitor.ticks >= 3


def test_thread_driver_samples_until_stopped() -> None:
    enough = threading.Event()
    sampler = FakeSampler(FakeClock(), lambda i: 1 << 20)
    monitor = Monitor(
        sampler=sampler,
        full_sampler=sampler,
        policy=AdaptiveSampling(base_interval=0.001, max_interval=0.001),
        on_sample=lambda s: enough.set() if sampler.calls >= 5 else None,
    )
    monitor.start_thread()
    with pytest.raises(ConfigurationError):
        monitor.start_thread()
    assert enough.wait(5.0)
    monitor.stop()
    calls = sampler.calls
    assert calls >= 5
    assert sampler.calls == calls  # stopped for good


def test_thread_driver_ends_on_a_gone_process() -> None:
    errors: list[MeasurementError] = []
    done = threading.Event()

    def gone() -> MemorySample:
        raise ProcessGoneError("process 1 exited")

    monitor = Monitor(sampler=gone, full_sampler=gone)

    def on_error(exc: MeasurementError) -> None:
        errors.append(exc)
        done.set()

    monitor.start_thread(on_error=on_error)
    assert done.wait(5.0)
    monitor.stop()
    assert isinstance(errors[0], ProcessGoneError)


def test_monitor_on_our_own_process() -> None:
    monitor = Monitor(full_every=2)
    monitor.tick()
    monitor.tick()
    assert monitor.last_full is not None and monitor.last_full.uss is not None
    assert monitor.last is not None and monitor.last.uss is None  # the quick tick
    assert len(monitor.history.series("uss")) == 1
    assert len(monitor.history.series("rss")) == 2


def test_monitor_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        Monitor(full_every=-1)
    with pytest.raises(ConfigurationError):
        Monitor(pressure_field="vss")
