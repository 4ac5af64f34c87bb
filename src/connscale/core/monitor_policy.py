"""Monitor policies, driven tick by tick: when to sample next, and how much pressure we are in.

``AdaptiveSampling`` keeps the last ``window`` readings. While they stay within
``stable_tolerance`` of their median the interval grows by ``growth`` up to
``max_interval``; the first reading outside the band drops it back to ``base_interval``.
A steady server is sampled rarely, a changing one often.

``PressureTracker`` maps a memory figure to a ``PressureLevel`` with hysteresis: a level is
entered at its threshold and left only below ``threshold x (1 - hysteresis)``, so a value
hovering at a boundary does not make callbacks flap. Callbacks let a server shrink caches
or pools under pressure.

Pure objects (no clocks, threads or I/O): the drivers in ``connscale.monitor`` run them.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from connscale.errors import ConfigurationError


class AdaptiveSampling:
    """Next sampling interval from recent readings: longer while memory is stable."""

    __slots__ = (
        "_interval",
        "_recent",
        "base_interval",
        "growth",
        "max_interval",
        "stable_tolerance",
        "window",
    )

    def __init__(
        self,
        *,
        base_interval: float = 5.0,
        max_interval: float = 60.0,
        window: int = 10,
        stable_tolerance: float = 0.01,
        growth: float = 2.0,
    ) -> None:
        if not (math.isfinite(base_interval) and base_interval > 0):
            raise ConfigurationError(f"base_interval must be > 0 seconds, got {base_interval}")
        if not (math.isfinite(max_interval) and max_interval >= base_interval):
            raise ConfigurationError(
                f"max_interval ({max_interval}) must be >= base_interval ({base_interval})"
            )
        if window < 2:
            raise ConfigurationError(f"window must hold at least 2 samples, got {window}")
        if not (math.isfinite(stable_tolerance) and stable_tolerance >= 0):
            raise ConfigurationError(f"stable_tolerance must be >= 0, got {stable_tolerance}")
        if not (math.isfinite(growth) and growth >= 1):
            raise ConfigurationError(f"growth must be >= 1, got {growth}")
        self.base_interval = float(base_interval)
        self.max_interval = float(max_interval)
        self.window = window
        self.stable_tolerance = float(stable_tolerance)
        self.growth = float(growth)
        self._recent: deque[float] = deque(maxlen=window)
        self._interval = self.base_interval

    @property
    def interval(self) -> float:
        """The interval the last observation chose."""
        return self._interval

    @property
    def stable(self) -> bool:
        """True when the window is full and every reading lies within the tolerance band."""
        if len(self._recent) < self.window:
            return False
        middle = statistics.median(self._recent)
        band = abs(middle) * self.stable_tolerance
        return all(abs(value - middle) <= band for value in self._recent)

    def observe(self, value: float) -> float:
        """Record one reading and return the interval to wait before the next one."""
        if not math.isfinite(value):
            raise ConfigurationError(f"a reading must be a finite number, got {value!r}")
        self._recent.append(float(value))
        if self.stable:
            self._interval = min(self._interval * self.growth, self.max_interval)
        else:
            self._interval = self.base_interval
        return self._interval

    def reset(self) -> None:
        """Forget the history (e.g. after the load changed on purpose)."""
        self._recent.clear()
        self._interval = self.base_interval


class PressureLevel(enum.IntEnum):
    """Memory pressure, ordered: compare levels with < and >."""

    NORMAL = 0
    ELEVATED = 1
    HIGH = 2
    CRITICAL = 3


#: Callback fired on a level change: (old level, new level, the reading that caused it).
PressureCallback = Callable[[PressureLevel, PressureLevel, float], None]


@dataclass(frozen=True, slots=True)
class PressureThresholds:
    """Readings (e.g. bytes) at which each level is entered; must be increasing."""

    elevated: float
    high: float
    critical: float

    def __post_init__(self) -> None:
        values = (self.elevated, self.high, self.critical)
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ConfigurationError(f"thresholds must be finite and > 0, got {values}")
        if not self.elevated < self.high < self.critical:
            raise ConfigurationError(
                f"thresholds must increase: elevated < high < critical, got {values}"
            )

    @classmethod
    def from_limit(
        cls,
        limit: float,
        *,
        elevated: float = 0.70,
        high: float = 0.85,
        critical: float = 0.95,
    ) -> PressureThresholds:
        """Thresholds as fractions of a limit (e.g. a container's memory limit in bytes)."""
        if not (math.isfinite(limit) and limit > 0):
            raise ConfigurationError(f"limit must be > 0, got {limit}")
        return cls(elevated=limit * elevated, high=limit * high, critical=limit * critical)

    def entry(self, level: PressureLevel) -> float:
        """The reading at which ``level`` is entered (0 for NORMAL)."""
        return (0.0, self.elevated, self.high, self.critical)[level]


class PressureTracker:
    """Current pressure level with hysteresis; fires callbacks when the level changes."""

    __slots__ = ("_callbacks", "_level", "hysteresis", "thresholds")

    def __init__(self, thresholds: PressureThresholds, *, hysteresis: float = 0.05) -> None:
        if not (math.isfinite(hysteresis) and 0 <= hysteresis < 1):
            raise ConfigurationError(f"hysteresis must be in [0, 1), got {hysteresis}")
        self.thresholds = thresholds
        self.hysteresis = float(hysteresis)
        self._level = PressureLevel.NORMAL
        self._callbacks: list[PressureCallback] = []

    @property
    def level(self) -> PressureLevel:
        return self._level

    def subscribe(self, callback: PressureCallback) -> Callable[[], None]:
        """Call ``callback(old, new, value)`` on every change; returns an unsubscribe function."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def _target(self, value: float) -> PressureLevel:
        level = self._level
        # Up: the highest level whose entry threshold is reached.
        for candidate in reversed(PressureLevel):
            if candidate > level and value >= self.thresholds.entry(candidate):
                return candidate
        # Down: leave a level only once clearly below its entry threshold.
        while level > PressureLevel.NORMAL and value < self.thresholds.entry(level) * (
            1 - self.hysteresis
        ):
            level = PressureLevel(level - 1)
        return level

    def update(self, value: float) -> PressureLevel:
        """Feed one reading; returns the (possibly new) level. Callback errors propagate
        after every callback has run (the first one is raised)."""
        if not math.isfinite(value):
            raise ConfigurationError(f"a reading must be a finite number, got {value!r}")
        new = self._target(value)
        old = self._level
        if new == old:
            return new
        self._level = new
        first_error: BaseException | None = None
        for callback in tuple(self._callbacks):
            try:
                callback(old, new, value)
            except Exception as exc:  # one failing listener must not silence the others
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return new


__all__ = [
    "AdaptiveSampling",
    "PressureCallback",
    "PressureLevel",
    "PressureThresholds",
    "PressureTracker",
]
