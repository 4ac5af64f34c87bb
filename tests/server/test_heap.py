"""Plugging the supervisor's free small blocks before workers fork (server/_heap.py)."""

from __future__ import annotations

import sys

import pytest

from connscale.server._heap import free_blocks, plug_free_blocks, release_plugs

pytestmark = pytest.mark.skipif(
    sys.implementation.name != "cpython", reason="reads CPython's allocator statistics"
)


def test_free_blocks_reads_the_allocators_table() -> None:
    free = free_blocks()
    assert free and all(size % 16 == 0 and 16 <= size <= 512 for size in free)
    assert all(count >= 0 for count in free.values())


def test_plugging_takes_the_holes_that_freed_objects_leave() -> None:
    size = 112  # a size class: a bytes object of 79 data bytes takes such a block
    held = [bytes(size - 33) for _ in range(20_000)]
    del held[::2]  # every other block of those pools is free now
    before = free_blocks()[size]
    assert before >= 9_000
    try:
        taken = plug_free_blocks()
        assert taken >= before
        assert free_blocks().get(size, 0) < before // 20  # the holes are taken
    finally:
        release_plugs()
        del held
