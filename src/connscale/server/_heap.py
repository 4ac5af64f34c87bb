"""Before forking workers: leave no free space in the supervisor's small-object heap.

A forked worker shares the supervisor's heap pages until it writes to one. CPython's
small-object allocator hands out the free blocks of partly used pools first, and after
start-up those free blocks are scattered over pages full of shared objects: every worker
that allocates (any request does) writes into them and so copies those pages, a few more
as it serves more connections. Measured with two workers: 11-16 such copied pages per
3,000 sessions per worker, 15-20 B per session on top of the session's own bytes.

``plug_free_blocks`` takes every free block of every size class in the supervisor (as
the allocator reports them) and keeps them taken: the pages stay shared, and a worker's
own allocations go to pools of its own. No library does this; the counts come from
``sys._debugmallocstats`` (CPython only: elsewhere this does nothing).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Final

__all__ = ["free_blocks", "plug_free_blocks", "release_plugs"]

# One row of the allocator's table: class, size, num pools, blocks in use, avail blocks.
_ROW: Final = re.compile(rb"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")
_BYTES_HEADER: Final = sys.getsizeof(b"x") - 1  # a bytes object's size beyond its data
# Blocks held for the process's lifetime, so that nothing reuses them.
_PLUGS: list[list[object]] = []


def free_blocks() -> dict[int, int]:
    """Free blocks of the small-object allocator by block size (empty where unknown)."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None or sys.implementation.name != "cpython":
        return {}
    # The allocator writes its table to the C-level stderr: catch it in a file (a pipe
    # could fill up and block), then put stderr back. Anything another thread writes to
    # stderr in that millisecond lands in the file too: call this before threads start.
    with tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(caught.fileno(), 2)
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        text = caught.read(1 << 20)
    free: dict[int, int] = {}
    for line in text.splitlines():
        row = _ROW.match(line)
        if row is not None:
            _class, size, _pools, _used, available = (int(part) for part in row.groups())
            free[size] = available
    return free


def _block_of(size: int, serial: int) -> object:
    """A new object the allocator serves from a block of exactly ``size`` bytes."""
    if size > _BYTES_HEADER:
        return bytes(size - _BYTES_HEADER)
    return (1 << 40) + serial  # a two-digit int: 32 bytes


def plug_free_blocks() -> int:
    """Take every free small block (see the module's text); returns how many were taken."""
    free = {size: count for size, count in free_blocks().items() if size >= 32 and count}
    plugs: list[object] = [None] * sum(free.values())  # sized first: no regrowth midway
    taken = 0
    for size, count in free.items():
        for _ in range(count):
            plugs[taken] = _block_of(size, taken)
            taken += 1
    _PLUGS.append(plugs)
    return taken


def release_plugs() -> None:
    """Give the plugged blocks back (tests; a process that will not fork again)."""
    with contextlib.suppress(IndexError):
        _PLUGS.pop()
