"""GC instruments: a pause recorder on ``gc.callbacks`` and a reversible GC tuner.

The recorder keeps exact counts, totals and maxima per generation, and pause percentiles in
an HdrHistogram (bounded memory, 1% precision, however long it runs), plus the most recent
pauses for a histogram chart. The tuner applies a preset, freezes warm-up objects out of
the collector's reach (``gc.freeze``), tightens thresholds under memory pressure, and
``restore()`` puts back exactly what it found.
"""

from __future__ import annotations

import contextlib
import gc as _gc
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from hdrh.histogram import HdrHistogram

from connscale.clock import Timer
from connscale.core.monitor_policy import PressureLevel
from connscale.errors import ConfigurationError

#: Pauses are recorded in microseconds between 1 us and 60 s with 2 significant digits.
_HIST_LOWEST_US = 1
_HIST_HIGHEST_US = 60_000_000
_HIST_DIGITS = 2

#: Listener called after each collection: (generation, pause in seconds, objects collected).
PauseListener = Callable[[int, float, int], None]


@dataclass(frozen=True, slots=True)
class GenerationStatistics:
    """Collections of one generation."""

    generation: int
    collections: int
    total_pause_s: float
    max_pause_s: float
    collected: int
    uncollectable: int


@dataclass(frozen=True, slots=True)
class GCStatistics:
    """What the collector cost while the recorder ran (a frozen snapshot)."""

    collections: int
    total_pause_s: float
    p50_pause_s: float | None
    p99_pause_s: float | None
    max_pause_s: float | None
    collections_per_hour: float | None
    objects_collected: int
    uncollectable: int
    elapsed_s: float
    generations: tuple[GenerationStatistics, ...]
    recent_pauses_s: tuple[float, ...]  # the newest pauses, oldest first (for histograms)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; its millisecond keys match ``connscale.report.schema.GCStats``."""

        def ms(value: float | None) -> float | None:
            return None if value is None else value * 1000.0

        return {
            "collections": self.collections,
            "total_pause_ms": self.total_pause_s * 1000.0,
            "p50_ms": ms(self.p50_pause_s),
            "p99_ms": ms(self.p99_pause_s),
            "max_ms": ms(self.max_pause_s),
            "pauses_ms": [p * 1000.0 for p in self.recent_pauses_s],
            "collections_per_hour": self.collections_per_hour,
            "objects_collected": self.objects_collected,
            "uncollectable": self.uncollectable,
            "elapsed_s": self.elapsed_s,
            "generations": [
                {
                    "generation": g.generation,
                    "collections": g.collections,
                    "total_pause_ms": g.total_pause_s * 1000.0,
                    "max_pause_ms": g.max_pause_s * 1000.0,
                    "collected": g.collected,
                    "uncollectable": g.uncollectable,
                }
                for g in self.generations
            ],
        }


class PauseRecorder:
    """Records every collection's pause via ``gc.callbacks`` between start() and stop()."""

    def __init__(self, *, timer: Timer = time.perf_counter, keep_recent: int = 4096) -> None:
        if keep_recent < 0:
            raise ConfigurationError(f"keep_recent must be >= 0, got {keep_recent}")
        self._timer = timer
        self._keep_recent = keep_recent
        self._listeners: list[PauseListener] = []
        self._running = False
        self.reset()

    def reset(self) -> None:
        """Forget everything recorded so far (keeps running if started)."""
        self._histogram = HdrHistogram(_HIST_LOWEST_US, _HIST_HIGHEST_US, _HIST_DIGITS)
        self._count = [0, 0, 0]
        self._total = [0.0, 0.0, 0.0]
        self._max = [0.0, 0.0, 0.0]
        self._collected = [0, 0, 0]
        self._uncollectable = [0, 0, 0]
        self._recent: deque[float] = deque(maxlen=self._keep_recent)
        self._started_at: float | None = self._timer() if self._running else None
        self._elapsed_before = 0.0
        self._pause_start: float | None = None

    @property
    def running(self) -> bool:
        return self._running

    def add_listener(self, listener: PauseListener) -> None:
        """Also call ``listener(generation, pause_s, collected)`` after each collection."""
        self._listeners.append(listener)

    def remove_listener(self, listener: PauseListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._started_at = self._timer()
        _gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if not self._running:
            return
        if self._callback in _gc.callbacks:
            _gc.callbacks.remove(self._callback)
        self._running = False
        if self._started_at is not None:
            self._elapsed_before += self._timer() - self._started_at
        self._started_at = None
        self._pause_start = None

    def __enter__(self) -> PauseRecorder:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        # Runs inside the collector: keep it short and never raise.
        if phase == "start":
            self._pause_start = self._timer()
            return
        started = self._pause_start
        if started is None:
            return
        self._pause_start = None
        self.record(
            info.get("generation", 0),
            self._timer() - started,
            info.get("collected", 0),
            info.get("uncollectable", 0),
        )

    def record(
        self, generation: int, pause_s: float, collected: int, uncollectable: int = 0
    ) -> None:
        """Record one pause (the gc callback calls this; tests may too)."""
        if not 0 <= generation <= 2 or not math.isfinite(pause_s) or pause_s < 0:
            return
        self._count[generation] += 1
        self._total[generation] += pause_s
        self._max[generation] = max(self._max[generation], pause_s)
        self._collected[generation] += collected
        self._uncollectable[generation] += uncollectable
        micros = min(max(round(pause_s * 1e6), _HIST_LOWEST_US), _HIST_HIGHEST_US)
        self._histogram.record_value(micros)
        self._recent.append(pause_s)
        for listener in self._listeners:
            with contextlib.suppress(Exception):  # a listener must not break the collector
                listener(generation, pause_s, collected)

    def statistics(self) -> GCStatistics:
        """A frozen snapshot of everything recorded so far."""
        elapsed = self._elapsed_before
        if self._started_at is not None:
            elapsed += self._timer() - self._started_at
        total_count = sum(self._count)
        histogram = self._histogram

        def pct(p: float) -> float | None:
            return None if total_count == 0 else histogram.get_value_at_percentile(p) / 1e6

        return GCStatistics(
            collections=total_count,
            total_pause_s=sum(self._total),
            p50_pause_s=pct(50),
            p99_pause_s=pct(99),
            max_pause_s=max(self._max) if total_count else None,
            collections_per_hour=total_count * 3600.0 / elapsed if elapsed > 0 else None,
            objects_collected=sum(self._collected),
            uncollectable=sum(self._uncollectable),
            elapsed_s=elapsed,
            generations=tuple(
                GenerationStatistics(
                    generation=g,
                    collections=self._count[g],
                    total_pause_s=self._total[g],
                    max_pause_s=self._max[g],
                    collected=self._collected[g],
                    uncollectable=self._uncollectable[g],
                )
                for g in range(3)
            ),
            recent_pauses_s=tuple(self._recent),
        )


#: Threshold presets (gen0 allocations, gen1 and gen2 collection ratios).
PRESETS: dict[str, tuple[int, int, int]] = {
    # CPython's own defaults.
    "default": (700, 10, 10),
    # Fewer, larger young collections: less total GC time for allocation-heavy request
    # handling; full collections stay rare.
    "throughput": (50_000, 20, 100),
    # Young collections stay small (short pauses) while full collections, whose pause grows
    # with every live object (every connection's state), become rare. Pair with freeze().
    "latency": (2_000, 10, 1_000),
}


class GCTuner:
    """Applies GC presets, freezes warm-up objects, adapts to pressure; restore() undoes it."""

    def __init__(self) -> None:
        self._saved: tuple[tuple[int, int, int], bool] | None = None
        self._froze = False
        self._base: tuple[int, int, int] = _gc.get_threshold()

    def _save(self) -> None:
        if self._saved is None:
            self._saved = (_gc.get_threshold(), _gc.isenabled())

    @property
    def thresholds(self) -> tuple[int, int, int]:
        return _gc.get_threshold()

    def apply(self, preset: str | tuple[int, int, int] = "default") -> tuple[int, int, int]:
        """Set thresholds from a preset name or an explicit (gen0, gen1, gen2) triple."""
        if isinstance(preset, str):
            if preset not in PRESETS:
                raise ConfigurationError(
                    f"unknown GC preset {preset!r}; choose one of {sorted(PRESETS)}"
                )
            values = PRESETS[preset]
        else:
            values = tuple(preset)  # type: ignore[assignment]
            if len(values) != 3 or not all(isinstance(v, int) and v >= 0 for v in values):
                raise ConfigurationError(f"thresholds must be 3 integers >= 0, got {preset!r}")
        self._save()
        _gc.set_threshold(*values)
        self._base = values
        return values

    def freeze(self) -> int:
        """After warm-up: collect, then move every surviving object to the permanent
        generation so later collections skip them. Returns the frozen object count."""
        self._save()
        _gc.collect()
        _gc.freeze()
        self._froze = True
        return _gc.get_freeze_count()

    def on_pressure(self, old: PressureLevel, new: PressureLevel, value: float) -> None:
        """A PressureTracker callback: collect more eagerly as pressure rises, relax after."""
        self._save()
        gen0, gen1, gen2 = self._base
        if new >= PressureLevel.CRITICAL:
            _gc.set_threshold(max(100, gen0 // 4), gen1, max(1, gen2 // 4))
            _gc.collect()  # reclaim cyclic garbage now rather than at the next threshold
        elif new >= PressureLevel.HIGH:
            _gc.set_threshold(max(100, gen0 // 2), gen1, max(1, gen2 // 2))
        else:
            _gc.set_threshold(gen0, gen1, gen2)

    def restore(self) -> None:
        """Put back the thresholds and enabled state found before the first change."""
        if self._froze:
            _gc.unfreeze()
            self._froze = False
        if self._saved is not None:
            thresholds, enabled = self._saved
            _gc.set_threshold(*thresholds)
            if enabled:
                _gc.enable()
            else:
                _gc.disable()
            self._base = thresholds
            self._saved = None


__all__ = [
    "PRESETS",
    "GCStatistics",
    "GCTuner",
    "GenerationStatistics",
    "PauseListener",
    "PauseRecorder",
]
