"""Zeroed columns that cost memory only where they are written.

``bytearray(n)`` and ``array(...)`` write every byte up front. A private anonymous map is
zeroed by the kernel page by page on first touch, so a SessionTable sized for a worker's
worst case costs only the pages its live slots touched, and memory grows in a straight line
with sessions instead of in doubling steps. tracemalloc does not see these maps: count them
with ``SessionTable.nbytes()`` or the process's resident memory.
"""

from __future__ import annotations

import mmap
from typing import Any

__all__ = ["lazy_zeroed", "regrown"]


def lazy_zeroed(nbytes: int, item_format: str = "B") -> memoryview[Any]:
    """Zeroed memory that the kernel commits page by page when first written, seen as items
    of ``item_format`` (a ``struct`` code)."""
    # Private, not the shared default: plain process memory, like the heap.
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    size = max(nbytes, 1)
    # Platforms without mmap flags get the plain call.
    view = memoryview(mmap.mmap(-1, size, flags=flags) if flags else mmap.mmap(-1, size))
    return view if item_format == "B" else view.cast(item_format)  # type: ignore[call-overload]


def regrown(column: memoryview[Any], nbytes: int) -> memoryview[Any]:
    """A larger zeroed column holding the old one's contents (same item format)."""
    grown = lazy_zeroed(nbytes, column.format)
    grown[: len(column)] = column
    column.release()
    return grown
