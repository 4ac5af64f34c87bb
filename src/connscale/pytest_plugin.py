"""pytest plugin (registered by entry point): memory-per-unit gates for users' tests.

Fixtures (documented with examples in docs/MEASURING.md):

* ``memory_per_unit(factory, steps, max_marginal_bytes=..., max_cv=...)`` measures bytes per
  unit of ``factory()`` at several steps (tracemalloc, in this process) and fails the test
  unless the marginal (least-squares slope) and the CV of the per-step marginals are within
  limits. ``memory_per_unit.by_pid(set_units, steps, pid=...)`` does the same on another
  process's USS.
* ``assert_no_leak(func, ...)`` calls ``func`` repeatedly and fails on a growth trend of
  more than ``threshold`` bytes per call (8 B by default: a 24-byte-per-call leak fails).

An async ``factory`` or ``func`` is awaited (on a private event loop), never skipped; from
inside a running event loop, where it cannot be, the gate says so instead of passing.
Messages say "per unit" (or the ``unit`` you name, e.g. "connection").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import pytest

from connscale.core.stats import ScalingResult, TrendResult
from connscale.memory import MemorySample
from connscale.profile import (
    DEFAULT_CALL_LEAK_THRESHOLD,
    leak_check,
    measure_per_unit,
    measure_process,
)


def _judge(
    result: ScalingResult,
    what: str,
    *,
    unit: str,
    max_marginal_bytes: float | None,
    max_cv: float | None,
    max_total: float | None,
) -> ScalingResult:
    verdict = result.check(
        max_marginal_bytes=max_marginal_bytes, max_cv=max_cv, max_total=max_total, unit=unit
    )
    if not verdict.ok:
        raise AssertionError(
            f"memory per {unit} of {what}: marginal {result.marginal_bytes:,.0f} B per {unit}, "
            f"fixed {result.fixed_overhead:,.0f} B, step CV "
            f"{'n/a' if result.step_cv is None else f'{result.step_cv:.3f}'}:\n  "
            + "\n  ".join(verdict.reasons)
        )
    return result


class MemoryPerUnit:
    """The ``memory_per_unit`` fixture: call it to measure and assert in one step."""

    def __call__(
        self,
        factory: Callable[[], object],
        steps: Sequence[int] = (10, 25, 50, 100),
        *,
        max_marginal_bytes: float | None = None,
        max_cv: float | None = None,
        max_total: float | None = None,
        repeats: int = 1,
        unit: str = "unit",
    ) -> ScalingResult:
        """Units from ``factory()`` (awaited when async) are kept alive at each step;
        traced bytes are fitted."""
        result = measure_per_unit(factory, steps, repeats=repeats)
        name = getattr(factory, "__qualname__", repr(factory))
        return _judge(
            result,
            name,
            unit=unit,
            max_marginal_bytes=max_marginal_bytes,
            max_cv=max_cv,
            max_total=max_total,
        )

    def by_pid(
        self,
        set_units: Callable[[int], None],
        steps: Sequence[int],
        *,
        pid: int | None = None,
        sampler: Callable[[], MemorySample] | None = None,
        field: Literal["uss", "pss", "rss"] = "uss",
        samples: int = 3,
        settle: float = 0.0,
        max_marginal_bytes: float | None = None,
        max_cv: float | None = None,
        max_total: float | None = None,
        unit: str = "unit",
    ) -> ScalingResult:
        """``set_units(n)`` makes process ``pid`` hold n units; its memory is fitted."""
        result = measure_process(
            set_units, steps, pid=pid, sampler=sampler, field=field, samples=samples, settle=settle
        )
        return _judge(
            result,
            f"process {pid}",
            unit=unit,
            max_marginal_bytes=max_marginal_bytes,
            max_cv=max_cv,
            max_total=max_total,
        )


def assert_no_leak(
    func: Callable[[], object],
    *,
    iterations: int = 30,
    warmup: int = 5,
    threshold: float = DEFAULT_CALL_LEAK_THRESHOLD,
    confidence: float = 0.95,
) -> TrendResult:
    """Fail if traced memory grows by more than ``threshold`` bytes per call of ``func``
    (awaited when async)."""
    result = leak_check(
        func, iterations=iterations, warmup=warmup, threshold=threshold, confidence=confidence
    )
    if result.leak:
        raise AssertionError(
            f"{getattr(func, '__qualname__', func)!s} leaks {result.slope:,.1f} B per call: "
            f"{result.reason}"
        )
    return result


@pytest.fixture
def memory_per_unit() -> MemoryPerUnit:
    """Measure and assert memory per unit of a factory (see MemoryPerUnit)."""
    return MemoryPerUnit()


@pytest.fixture(name="assert_no_leak")
def assert_no_leak_fixture() -> Callable[..., TrendResult]:
    """The ``assert_no_leak`` helper as a fixture."""
    return assert_no_leak


__all__ = ["MemoryPerUnit", "assert_no_leak", "assert_no_leak_fixture", "memory_per_unit"]
