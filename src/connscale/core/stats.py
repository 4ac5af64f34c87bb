"""Scaling and trend statistics: what one more connection costs, and whether memory grows.

Two questions, two estimators:

* ``scaling(points)``: from (connections, bytes) plateaus, the least-squares line. The
  slope is the marginal cost of one connection, the intercept the fixed overhead. The
  per-step marginals (Δbytes / Δconnections between successive plateaus) and their
  coefficient of variation say whether growth is a straight line. Never total/N: dividing
  a fixed overhead by N makes small steps look expensive.
* ``plateaus(readings)``: readings of a server taken while its connection count moved
  (``connscale watch``, a distributed ramp) grouped into settled plateaus, each the median
  of its readings: the points ``scaling`` fits, the way the bench takes them.
* ``trend(samples)``: the Theil-Sen slope (median of pairwise slopes; robust to outliers
  such as a GC or an allocator step) with Sen's confidence interval. A leak is reported
  only when the interval lies above zero *and* the slope exceeds a threshold, so noise and
  negligible growth stay quiet.

Pure functions over sequences of numbers: no I/O, stdlib only.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from connscale.errors import ConfigurationError

#: Theil-Sen looks at every pair of points (O(n^2)); longer series are first reduced to this
#: many bins (median time, median value per bin) so that a day of samples stays cheap.
MAX_TREND_POINTS = 512

#: Default leak threshold, in value units per time unit: 1 byte/s when samples are
#: (seconds, bytes), i.e. about 84 KiB a day. Slopes below it are not called a leak.
DEFAULT_LEAK_THRESHOLD = 1.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a check: ``ok`` and, when not ok, the reasons (one line each)."""

    ok: bool
    reasons: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True, slots=True)
class ScalingResult:
    """Least-squares fit of memory (bytes) against connections over plateaus.

    ``marginal_bytes`` is the slope (bytes per additional connection), ``fixed_overhead``
    the intercept. ``step_cv`` is None when there are fewer than two steps or their mean is
    zero (the CV is undefined then).
    """

    fixed_overhead: float
    marginal_bytes: float
    r_squared: float
    step_marginals: tuple[float, ...]
    step_cv: float | None
    points: tuple[tuple[float, float], ...]

    def predict(self, connections: float) -> float:
        """Bytes the fitted line predicts at ``connections``."""
        return self.fixed_overhead + self.marginal_bytes * connections

    def check(
        self,
        max_marginal_bytes: float | None = None,
        max_cv: float | None = None,
        max_total: float | None = None,
        *,
        unit: str = "connection",
    ) -> Verdict:
        """Judge the fit against limits; ``max_total`` bounds the largest measured memory.

        ``unit`` names what the x axis counts, in the reasons ("per connection", "per unit").
        """
        reasons: list[str] = []
        if max_marginal_bytes is not None and self.marginal_bytes > max_marginal_bytes:
            reasons.append(
                f"marginal {self.marginal_bytes:,.0f} B per {unit} exceeds "
                f"{max_marginal_bytes:,.0f} B"
            )
        if max_cv is not None:
            if self.step_cv is None:
                reasons.append(
                    f"step CV is undefined ({len(self.step_marginals)} step(s)"
                    + (", mean marginal 0" if self.step_marginals else "")
                    + "); need at least 3 plateaus with a non-zero mean step"
                )
            elif self.step_cv > max_cv:
                reasons.append(
                    f"per-step marginals vary too much: CV {self.step_cv:.3f} > {max_cv:.3f} "
                    f"(steps: {', '.join(f'{m:,.0f}' for m in self.step_marginals)} B)"
                )
        if max_total is not None:
            largest = max(y for _, y in self.points)
            if largest > max_total:
                reasons.append(f"total memory {largest:,.0f} B exceeds {max_total:,.0f} B")
        return Verdict(ok=not reasons, reasons=tuple(reasons))


@dataclass(frozen=True, slots=True)
class TrendResult:
    """Theil-Sen slope of a series with its confidence interval, and the leak verdict."""

    slope: float
    slope_low: float
    slope_high: float
    intercept: float
    confidence: float
    threshold: float
    n: int  # points used (after binning long series)
    span: float  # time covered, in the samples' time unit
    leak: bool

    @property
    def reason(self) -> str:
        """One line saying why this is or is not a leak."""
        interval = f"slope {self.slope:.4g} [{self.slope_low:.4g}, {self.slope_high:.4g}]"
        level = f"{self.confidence:.0%}"
        if self.leak:
            return f"leak: {interval} at {level} lies above 0 and exceeds {self.threshold:.4g}"
        if self.slope_low <= 0:
            return f"no leak: {level} interval of {interval} includes 0 or lies below it"
        return f"no leak: {interval} does not exceed the threshold {self.threshold:.4g}"


def _validated_points(
    points: Sequence[tuple[float, float]], what: str
) -> list[tuple[float, float]]:
    if len(points) == 0:
        raise ConfigurationError(f"{what}: the series is empty; need at least 2 points")
    if len(points) == 1:
        raise ConfigurationError(f"{what}: only one point {points[0]!r}; need at least 2")
    clean: list[tuple[float, float]] = []
    for point in points:
        try:
            x, y = float(point[0]), float(point[1])
        except (TypeError, ValueError, IndexError):
            raise ConfigurationError(f"{what}: {point!r} is not an (x, y) pair") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ConfigurationError(f"{what}: {point!r} is not finite")
        clean.append((x, y))
    if len({x for x, _ in clean}) < 2:
        raise ConfigurationError(f"{what}: all points share x = {clean[0][0]}; need 2 distinct")
    return clean


def _least_squares(xy: Sequence[tuple[float, float]]) -> tuple[float, float, float]:
    """Return (intercept, slope, r_squared); R² is 1 for a series with no variance at all."""
    n = len(xy)
    mean_x = math.fsum(x for x, _ in xy) / n
    mean_y = math.fsum(y for _, y in xy) / n
    sxx = math.fsum((x - mean_x) ** 2 for x, _ in xy)
    sxy = math.fsum((x - mean_x) * (y - mean_y) for x, y in xy)
    if not (sxx > 0 and math.isfinite(sxx) and math.isfinite(sxy)):
        raise ConfigurationError("scaling: the x values are too close together to fit a line")
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    ss_tot = math.fsum((y - mean_y) ** 2 for _, y in xy)
    ss_res = math.fsum((y - (intercept + slope * x)) ** 2 for x, y in xy)
    r_squared = 1.0 if ss_tot == 0 else max(0.0, 1.0 - ss_res / ss_tot)
    return intercept, slope, r_squared


def coefficient_of_variation(values: Sequence[float]) -> float | None:
    """Sample standard deviation over |mean|; None for < 2 values or a zero mean."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    if mean == 0:
        return None
    return statistics.stdev(values) / abs(mean)


def scaling(points: Sequence[tuple[float, float]]) -> ScalingResult:
    """Fit bytes = fixed_overhead + marginal_bytes x connections over (connections, bytes).

    Several points at the same connection count are allowed (repeated samples); the
    per-step marginals use the median of each level.
    """
    xy = _validated_points(points, "scaling")
    intercept, slope, r_squared = _least_squares(xy)
    levels: dict[float, list[float]] = {}
    for x, y in xy:
        levels.setdefault(x, []).append(y)
    ordered = sorted((x, statistics.median(ys)) for x, ys in levels.items())
    steps = tuple((y1 - y0) / (x1 - x0) for (x0, y0), (x1, y1) in itertools.pairwise(ordered))
    if not (math.isfinite(slope) and all(math.isfinite(m) for m in steps)):
        raise ConfigurationError("scaling: the points are too close together for a finite slope")
    return ScalingResult(
        fixed_overhead=intercept,
        marginal_bytes=slope,
        r_squared=r_squared,
        step_marginals=steps,
        step_cv=coefficient_of_variation(steps),
        points=tuple(xy),
    )


@dataclass(frozen=True, slots=True)
class Plateau:
    """A settled stretch of readings at one connection count: the medians of its readings."""

    connections: float
    uss: float | None
    pss: float | None
    readings: int


def plateaus(
    readings: Sequence[tuple[float, float | None, float | None]],
    *,
    tolerance: float = 0.005,
    settle: int = 1,
    min_readings: int = 3,
) -> list[Plateau]:
    """Settled plateaus in time-ordered (connections, uss, pss) readings.

    A plateau is a run of consecutive readings whose connection count stays within
    ``tolerance`` (a share, and at least 2 connections) of the run's first; its first
    ``settle`` readings are dropped (the ramp has just ended: the server may still be
    allocating), and it counts when at least ``min_readings`` remain. Each plateau is the
    median of what remains, as the bench takes several readings at each of its plateaus.
    """
    if tolerance < 0 or settle < 0 or min_readings < 1:
        raise ConfigurationError("plateaus: tolerance and settle must be >= 0, min_readings >= 1")
    found: list[Plateau] = []
    run: list[tuple[float, float | None, float | None]] = []

    def close() -> None:
        kept = run[settle:]
        if len(kept) < min_readings:
            return
        uss = [u for _, u, _ in kept if u is not None]
        pss = [p for _, _, p in kept if p is not None]
        found.append(
            Plateau(
                connections=statistics.median(c for c, _, _ in kept),
                uss=statistics.median(uss) if uss else None,
                pss=statistics.median(pss) if pss else None,
                readings=len(kept),
            )
        )

    for reading in readings:
        connections = float(reading[0])
        if not math.isfinite(connections):
            continue
        if run and abs(connections - run[0][0]) > max(2.0, tolerance * abs(run[0][0])):
            close()
            run = []
        run.append((connections, reading[1], reading[2]))
    close()
    return found


def rising(found: Sequence[Plateau]) -> list[Plateau]:
    """The longest run of consecutive plateaus whose connection counts rise (the latest of
    equal length): the ramp a fit describes. Memory a server keeps after connections close
    (an allocator does not give every page back) would bend the line, so plateaus after a
    ramp down are not mixed with those of the ramp up."""
    best: list[Plateau] = []
    run: list[Plateau] = []
    for plateau in found:
        if run and plateau.connections <= run[-1].connections:
            run = []
        run.append(plateau)
        if len(run) >= len(best):
            best = list(run)
    return best


def _binned(xy: list[tuple[float, float]], bins: int) -> list[tuple[float, float]]:
    """Reduce a time-ordered series to ``bins`` (median t, median value) points."""
    xy = sorted(xy)
    size = len(xy) / bins
    reduced = []
    for i in range(bins):
        chunk = xy[int(i * size) : int((i + 1) * size)]
        if chunk:
            reduced.append(
                (statistics.median(t for t, _ in chunk), statistics.median(v for _, v in chunk))
            )
    return reduced


def trend(
    samples: Sequence[tuple[float, float]],
    *,
    threshold: float = DEFAULT_LEAK_THRESHOLD,
    confidence: float = 0.95,
) -> TrendResult:
    """Theil-Sen slope of (time, value) samples with Sen's confidence interval.

    ``leak`` is True only when the whole interval lies above zero and the slope exceeds
    ``threshold`` (value units per time unit).
    """
    if not 0.5 < confidence < 1.0:
        raise ConfigurationError(f"confidence must be in (0.5, 1), got {confidence}")
    if not math.isfinite(threshold) or threshold < 0:
        raise ConfigurationError(f"threshold must be a finite number >= 0, got {threshold}")
    xy = _validated_points(samples, "trend")
    if len(xy) > MAX_TREND_POINTS:
        xy = _binned(xy, MAX_TREND_POINTS)
    slopes = sorted(
        (y1 - y0) / (x1 - x0) for i, (x0, y0) in enumerate(xy) for x1, y1 in xy[i + 1 :] if x1 != x0
    )
    if not all(math.isfinite(s) for s in (slopes[0], slopes[-1])):
        raise ConfigurationError("trend: the times are too close together for a finite slope")
    slope = statistics.median(slopes)
    # Sen (1968): the interval is read off the sorted pairwise slopes at ranks set by the
    # variance of Kendall's S; the same construction as scipy.stats.theilslopes.
    n = len(xy)
    z = statistics.NormalDist().inv_cdf((1.0 - confidence) / 2.0)  # negative
    sigma = math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
    count = len(slopes)
    upper_rank = min(round((count - z * sigma) / 2.0), count - 1)
    lower_rank = max(round((count + z * sigma) / 2.0) - 1, 0)
    low, high = slopes[lower_rank], slopes[upper_rank]
    intercept = statistics.median(y for _, y in xy) - slope * statistics.median(x for x, _ in xy)
    times = [x for x, _ in xy]
    return TrendResult(
        slope=slope,
        slope_low=low,
        slope_high=high,
        intercept=intercept,
        confidence=confidence,
        threshold=threshold,
        n=n,
        span=max(times) - min(times),
        leak=low > 0 and slope > threshold,
    )


__all__ = [
    "DEFAULT_LEAK_THRESHOLD",
    "MAX_TREND_POINTS",
    "Plateau",
    "ScalingResult",
    "TrendResult",
    "Verdict",
    "coefficient_of_variation",
    "plateaus",
    "rising",
    "scaling",
    "trend",
]
