"""Shared helpers: median timings and tracemalloc bytes, each row beside its baseline."""

from __future__ import annotations

import statistics
import timeit
import tracemalloc
from collections.abc import Callable
from typing import Any, NamedTuple


class Row(NamedTuple):
    """One figure, the baseline measured in the same run, and the target it is held to."""

    group: str
    what: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value:
            return None
        return self.value / self.baseline_value


def median_ns(statement: str, namespace: dict[str, Any], *, number: int, repeat: int) -> float:
    """Median over ``repeat`` runs of the mean time of one ``statement``, in nanoseconds.

    Timing a statement string (not a lambda) keeps call overhead out of the figure, so a
    figure and its baseline pay exactly the same harness cost.
    """
    timer = timeit.Timer(statement, globals=namespace)
    runs = timer.repeat(repeat=repeat, number=number)
    return statistics.median(runs) / number * 1e9


def traced_bytes(build: Callable[[], object]) -> tuple[int, object]:
    """Bytes tracemalloc sees allocated (and still held) by ``build()``, and its result."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = build()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return grown, result


def settings(quick: bool) -> tuple[int, int]:
    """(number, repeat) for timings: fewer in quick mode."""
    return (20_000, 5) if quick else (100_000, 9)
