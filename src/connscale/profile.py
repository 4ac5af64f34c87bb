"""Profiler: memory snapshots of a process, scaling fits, leak trends, allocation-site diffs.

The statistics live in ``connscale.core.stats`` and are re-exported here (``scaling``,
``trend``). ``measure_per_unit`` and ``measure_process`` take the plateaus that feed
``scaling``: the first inside this process with tracemalloc (exact, independent of pages
and allocator arenas), the second by reading another process's USS at each step.
"""

from __future__ import annotations

import asyncio
import gc as _gc
import inspect
import os
import statistics
import time
import tracemalloc
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from connscale.clock import Timer
from connscale.core.stats import (
    DEFAULT_LEAK_THRESHOLD,
    ScalingResult,
    TrendResult,
    Verdict,
    scaling,
    trend,
)
from connscale.errors import ConfigurationError, NotAvailableError
from connscale.gc import GCStatistics, PauseRecorder
from connscale.memory import MemoryReader, MemorySample, sample_tree

MemoryField = Literal["uss", "pss", "rss", "anon", "traced"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Memory at one moment of a profile; ``connections`` when it is a plateau."""

    label: str
    elapsed: float  # seconds since the profiler started
    memory: MemorySample
    connections: int | None = None
    traced_bytes: int | None = None  # tracemalloc's current total, when tracing

    def value(self, name: MemoryField) -> int | None:
        if name == "traced":
            return self.traced_bytes
        value: int | None = getattr(self.memory, name)
        return value


@dataclass(frozen=True, slots=True)
class SiteDiff:
    """Growth of one allocation site (file:line) between two tracemalloc snapshots."""

    location: str
    size_diff: int
    count_diff: int
    size: int
    count: int


@dataclass(frozen=True)
class ProfileRecord:
    """Everything a profiler collected."""

    pid: int
    duration: float
    snapshots: tuple[Snapshot, ...]
    gc: GCStatistics | None = None
    top_sites: tuple[SiteDiff, ...] = field(default_factory=tuple)

    def points(self, name: MemoryField = "uss") -> list[tuple[float, float]]:
        """(connections, bytes) of the snapshots taken at a connection count."""
        out = []
        for snap in self.snapshots:
            value = snap.value(name)
            if snap.connections is not None and value is not None:
                out.append((float(snap.connections), float(value)))
        return out

    def scaling(self, name: MemoryField = "uss") -> ScalingResult:
        return scaling(self.points(name))

    def trend(
        self, name: MemoryField = "uss", *, threshold: float = DEFAULT_LEAK_THRESHOLD
    ) -> TrendResult:
        series = [
            (snap.elapsed, float(v))
            for snap in self.snapshots
            if (v := snap.value(name)) is not None
        ]
        return trend(series, threshold=threshold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "duration_s": self.duration,
            "snapshots": [
                {
                    "label": s.label,
                    "elapsed_s": s.elapsed,
                    "connections": s.connections,
                    "uss": s.memory.uss,
                    "pss": s.memory.pss,
                    "rss": s.memory.rss,
                    "anon": s.memory.anon,
                    "swap": s.memory.swap,
                    "fds": s.memory.fds,
                    "traced_bytes": s.traced_bytes,
                }
                for s in self.snapshots
            ],
            "gc": None if self.gc is None else self.gc.to_dict(),
            "top_sites": [
                {
                    "location": d.location,
                    "size_diff": d.size_diff,
                    "count_diff": d.count_diff,
                    "size": d.size,
                    "count": d.count,
                }
                for d in self.top_sites
            ],
        }


class Profiler:
    """Takes memory snapshots of a process between start() and stop().

    GC pauses and tracemalloc can only be seen inside this process, so ``record_gc`` and
    ``trace_allocations`` apply only when profiling our own pid. ``include_children``
    sums every reading over the process and its descendants (a server's forked workers):
    the PSS of the snapshots is then the server's total, shared pages counted once.
    """

    def __init__(
        self,
        pid: int | None = None,
        *,
        sampler: Callable[[], MemorySample] | None = None,
        clock: Timer = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        record_gc: bool = True,
        trace_allocations: bool = False,
        trace_frames: int = 1,
        max_snapshots: int = 10_000,
        include_children: bool = False,
    ) -> None:
        self._reader = MemoryReader(pid)
        self.pid = self._reader.pid
        own = self._reader.pid == os.getpid()
        if sampler is None and include_children:
            root = self.pid

            def sampler() -> MemorySample:
                return sample_tree(root)[0]

        self._sampler = sampler or self._reader.sample
        self._clock = clock
        self._sleep = sleep
        self._recorder = PauseRecorder() if record_gc and own else None
        self._trace = trace_allocations and own
        self._trace_frames = trace_frames
        self._started_tracing = False
        self._first_trace: tracemalloc.Snapshot | None = None
        self._last_trace: tracemalloc.Snapshot | None = None
        self._max_snapshots = max_snapshots
        self._snapshots: list[Snapshot] = []
        self._start: float | None = None
        self._stop: float | None = None

    @property
    def running(self) -> bool:
        return self._start is not None and self._stop is None

    def start(self) -> Profiler:
        self._start = self._clock()
        self._stop = None
        self._snapshots.clear()
        if self._recorder is not None:
            self._recorder.reset()
            self._recorder.start()
        if self._trace and not tracemalloc.is_tracing():
            tracemalloc.start(self._trace_frames)
            self._started_tracing = True
        return self

    def stop(self) -> ProfileRecord:
        if self._start is None:
            raise ConfigurationError("the profiler was never started")
        if self._stop is None:
            self._stop = self._clock()
            if self._recorder is not None:
                self._recorder.stop()
            if self._started_tracing:
                tracemalloc.stop()
                self._started_tracing = False
        return self.record()

    def __enter__(self) -> Profiler:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def snapshot(self, label: str = "", *, connections: int | None = None) -> Snapshot:
        """Read memory now (and tracemalloc's total when tracing)."""
        if self._start is None:
            self.start()
        assert self._start is not None
        memory = self._sampler()
        traced: int | None = None
        if self._trace and tracemalloc.is_tracing():
            traced = tracemalloc.get_traced_memory()[0]
            trace = tracemalloc.take_snapshot()
            if self._first_trace is None:
                self._first_trace = trace
            else:
                self._last_trace = trace
        snap = Snapshot(
            label=label or f"#{len(self._snapshots)}",
            elapsed=self._clock() - self._start,
            memory=memory,
            connections=connections,
            traced_bytes=traced,
        )
        if len(self._snapshots) >= self._max_snapshots:
            del self._snapshots[0]  # bounded: the oldest goes first
        self._snapshots.append(snap)
        return snap

    def measure_after(
        self, delay: float, label: str = "", *, connections: int | None = None
    ) -> Snapshot:
        """Wait ``delay`` seconds (letting the process settle), then take a snapshot."""
        if delay < 0:
            raise ConfigurationError(f"delay must be >= 0, got {delay}")
        self._sleep(delay)
        return self.snapshot(label, connections=connections)

    def plateau(
        self, connections: int, *, samples: int = 5, interval: float = 0.1, label: str = ""
    ) -> Snapshot:
        """Several readings at one connection count; the snapshot holds their medians."""
        if samples < 1:
            raise ConfigurationError(f"samples must be >= 1, got {samples}")
        readings = []
        for i in range(samples):
            if i:
                self._sleep(interval)
            readings.append(self._sampler())
        memory = _median_sample(readings)
        if self._start is None:
            self.start()
        assert self._start is not None
        snap = Snapshot(
            label=label or f"{connections} connections",
            elapsed=self._clock() - self._start,
            memory=memory,
            connections=connections,
        )
        self._snapshots.append(snap)
        return snap

    def top_sites(self, limit: int = 10) -> tuple[SiteDiff, ...]:
        """Allocation sites that grew most between the first and the latest traced snapshot."""
        if self._first_trace is None or self._last_trace is None:
            return ()
        return diff_snapshots(self._first_trace, self._last_trace, limit=limit)

    def record(self) -> ProfileRecord:
        """What has been collected so far, as a frozen record."""
        now = self._stop if self._stop is not None else self._clock()
        return ProfileRecord(
            pid=self.pid,
            duration=0.0 if self._start is None else now - self._start,
            snapshots=tuple(self._snapshots),
            gc=None if self._recorder is None else self._recorder.statistics(),
            top_sites=self.top_sites(),
        )


def _median_or_none(values: Sequence[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    if len(present) != len(values):
        return None
    return int(statistics.median(present))


def _median_sample(readings: Sequence[MemorySample]) -> MemorySample:
    last = readings[-1]
    return MemorySample(
        pid=last.pid,
        uss=_median_or_none([r.uss for r in readings]),
        pss=_median_or_none([r.pss for r in readings]),
        rss=int(statistics.median(r.rss for r in readings)),
        swap=_median_or_none([r.swap for r in readings]),
        fds=_median_or_none([r.fds for r in readings]),
        py_heap_blocks=_median_or_none([r.py_heap_blocks for r in readings]),
        timestamp=last.timestamp,
        anon=_median_or_none([r.anon for r in readings]),
    )


def diff_snapshots(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, *, limit: int = 10
) -> tuple[SiteDiff, ...]:
    """Top ``limit`` sites by growth between two tracemalloc snapshots."""
    stats = after.compare_to(before, "lineno")
    out = []
    for stat in stats[:limit]:
        frame = stat.traceback[0]
        out.append(
            SiteDiff(
                location=f"{frame.filename}:{frame.lineno}",
                size_diff=stat.size_diff,
                count_diff=stat.count_diff,
                size=stat.size,
                count=stat.count,
            )
        )
    return tuple(out)


def _check_steps(steps: Sequence[int]) -> list[int]:
    ordered = list(steps)
    if len(ordered) < 2:
        raise ConfigurationError(f"need at least 2 steps to fit a line, got {ordered}")
    if any(not isinstance(s, int) or s < 0 for s in ordered) or ordered != sorted(set(ordered)):
        raise ConfigurationError(f"steps must be increasing integers >= 0, got {ordered}")
    return ordered


def measure_per_unit(
    factory: Callable[[], object],
    steps: Sequence[int] = (10, 25, 50, 100),
    *,
    repeats: int = 1,
) -> ScalingResult:
    """Bytes per unit of ``factory()`` in this process, by tracemalloc at each step.

    Units are kept alive until every step is measured; each step reads the traced total
    after a full collection. An async factory is awaited: its results are the units. With
    ``repeats`` > 1 each step is measured on fresh units that many times and all readings
    go into the fit.
    """
    ordered = _check_steps(steps)
    if repeats < 1:
        raise ConfigurationError(f"repeats must be >= 1, got {repeats}")
    factory = _Caller(factory, getattr(factory, "__qualname__", "the factory"))
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    callbacks = _gc.callbacks[:]  # as in leak_check: the collections here are ours
    _gc.callbacks.clear()
    # Preallocated: recording a reading must not allocate between two readings.
    traced = array("d", bytes(8 * len(ordered) * repeats))
    try:
        for r in range(repeats):
            held: list[object] = [None] * ordered[-1]  # preallocated: the list never resizes
            count = 0
            for k, step in enumerate(ordered):
                while count < step:
                    held[count] = factory()
                    count += 1
                _gc.collect()
                traced[r * len(ordered) + k] = tracemalloc.get_traced_memory()[0]
            del held
    finally:
        _gc.callbacks[:] = callbacks
        factory.close()
        if started:
            tracemalloc.stop()
    return scaling([(float(ordered[i % len(ordered)]), v) for i, v in enumerate(traced)])


def measure_process(
    set_units: Callable[[int], None],
    steps: Sequence[int],
    *,
    pid: int | None = None,
    sampler: Callable[[], MemorySample] | None = None,
    field: Literal["uss", "pss", "rss"] = "uss",
    samples: int = 3,
    settle: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ScalingResult:
    """Bytes per unit of another process: ``set_units(n)`` makes it hold n units, then its
    memory is read ``samples`` times (median) at each step."""
    ordered = _check_steps(steps)
    if samples < 1:
        raise ConfigurationError(f"samples must be >= 1, got {samples}")
    read = sampler or MemoryReader(pid).sample
    points: list[tuple[float, float]] = []
    for step in ordered:
        set_units(step)
        if settle:
            sleep(settle)
        values = []
        for _ in range(samples):
            value = getattr(read(), field)
            if value is None:
                raise NotAvailableError(f"{field} is not available for this process")
            values.append(value)
        points.append((float(step), float(statistics.median(values))))
    return scaling(points)


#: Bytes per call above which ``leak_check`` calls a growth a leak (with its confidence
#: interval above zero). 8 B catches the smallest object a leak can keep (16 B) and a
#: 24-byte-per-call leak; clean callables measure 0: ``python -m
#: benchmarks.gate_false_alarms`` measures both rates (docs/PERFORMANCE.md).
DEFAULT_CALL_LEAK_THRESHOLD = 8.0


class _Caller:
    """Calls ``func`` and, when it is async, runs the awaitable to completion.

    An async callable measured without awaiting it would create a coroutine, measure
    nothing and pass: a gate that cannot fail. Its awaitables run on a private event loop;
    called from inside a running loop (an async test) that cannot be done, and it says so.
    """

    def __init__(self, func: Callable[[], object], what: str) -> None:
        if not callable(func):
            raise ConfigurationError(f"{what} must be callable, got {type(func).__name__}")
        self.func = func
        self.what = what
        self.loop: asyncio.AbstractEventLoop | None = None

    def __call__(self) -> object:
        result = self.func()
        if not inspect.isawaitable(result):
            return result
        if self.loop is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                self.loop = asyncio.new_event_loop()
            else:
                if inspect.iscoroutine(result):
                    result.close()  # never awaited on purpose: no "never awaited" warning
                raise ConfigurationError(
                    f"{self.what} is async and this runs inside a running event loop, where it "
                    "cannot be awaited; call the gate from a synchronous test (it runs the "
                    "coroutine on its own loop)"
                )
        return self.loop.run_until_complete(asyncio.ensure_future(result, loop=self.loop))

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()
            self.loop = None


def leak_check(
    func: Callable[[], object],
    *,
    iterations: int = 30,
    warmup: int = 5,
    threshold: float = DEFAULT_CALL_LEAK_THRESHOLD,
    confidence: float = 0.95,
) -> TrendResult:
    """Call ``func`` repeatedly and fit the trend of traced bytes per call.

    ``threshold`` is in bytes per call: growth below it is not called a leak. An async
    ``func`` (or one returning an awaitable) is awaited on a private event loop.
    """
    if iterations < 3:
        raise ConfigurationError(f"iterations must be >= 3, got {iterations}")
    call = _Caller(func, getattr(func, "__qualname__", "the function"))
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    # Preallocated: storing a reading must not itself allocate, or the loop "leaks".
    traced = array("d", bytes(8 * iterations))
    # A GC pause recorder left running (gc.callbacks) stores a float for every collection
    # this check itself triggers: 24 B per call that belong to the check, not to func.
    callbacks = _gc.callbacks[:]
    _gc.callbacks.clear()
    try:
        for _ in range(warmup):
            call()
        for i in range(iterations):
            call()
            _gc.collect()
            traced[i] = tracemalloc.get_traced_memory()[0]
    finally:
        _gc.callbacks[:] = callbacks
        call.close()
        if started:
            tracemalloc.stop()
    series = [(float(i), value) for i, value in enumerate(traced)]
    return trend(series, threshold=threshold, confidence=confidence)


__all__ = [
    "DEFAULT_CALL_LEAK_THRESHOLD",
    "MemoryField",
    "ProfileRecord",
    "Profiler",
    "ScalingResult",
    "SiteDiff",
    "Snapshot",
    "TrendResult",
    "Verdict",
    "diff_snapshots",
    "leak_check",
    "measure_per_unit",
    "measure_process",
    "scaling",
    "trend",
]
