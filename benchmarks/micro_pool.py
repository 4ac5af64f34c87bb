"""ObjectPool / BufferPool acquire+release against constructing a fresh object each time."""

from __future__ import annotations

from benchmarks._common import Row, median_ns, settings
from connscale.core.pool import BufferPool, ObjectPool

TARGET = "<= 300 ns"


class SmallObject:
    """A typical pooled object: a few slots, cheap to build."""

    __slots__ = ("buffer", "request_id", "state")

    def __init__(self) -> None:
        self.request_id = 0
        self.state = None
        self.buffer = None


def measure(quick: bool = False) -> list[Row]:
    number, repeat = settings(quick)
    locked = ObjectPool(SmallObject)
    unlocked = ObjectPool(SmallObject, thread_safe=False)
    buffers = BufferPool()
    buffers_unlocked = BufferPool(thread_safe=False)
    big = ObjectPool(lambda: bytearray(65536))
    big_unlocked = ObjectPool(lambda: bytearray(65536), thread_safe=False)
    ns = {
        "SmallObject": SmallObject,
        "locked": locked,
        "unlocked": unlocked,
        "buffers": buffers,
        "buffers_unlocked": buffers_unlocked,
        "big": big,
        "big_unlocked": big_unlocked,
    }
    fresh_small = median_ns("SmallObject()", ns, number=number, repeat=repeat)
    fresh_big = median_ns("bytearray(65536)", ns, number=number // 10, repeat=repeat)
    rows = [
        Row(
            "pool",
            "ObjectPool acquire+release, small object (thread_safe)",
            median_ns("locked.release(locked.acquire())", ns, number=number, repeat=repeat),
            "ns",
            "SmallObject()",
            fresh_small,
            TARGET,
        ),
        Row(
            "pool",
            "ObjectPool acquire+release, small object (thread_safe=False)",
            median_ns("unlocked.release(unlocked.acquire())", ns, number=number, repeat=repeat),
            "ns",
            "SmallObject()",
            fresh_small,
            TARGET,
        ),
        Row(
            "pool",
            "ObjectPool acquire+release, 64 KiB bytearray (thread_safe)",
            median_ns("big.release(big.acquire())", ns, number=number, repeat=repeat),
            "ns",
            "bytearray(65536)",
            fresh_big,
            TARGET,
        ),
        Row(
            "pool",
            "ObjectPool acquire+release, 64 KiB bytearray (thread_safe=False)",
            median_ns(
                "big_unlocked.release(big_unlocked.acquire())", ns, number=number, repeat=repeat
            ),
            "ns",
            "bytearray(65536)",
            fresh_big,
            TARGET,
        ),
        Row(
            "pool",
            "BufferPool acquire(65536)+release (memoryview)",
            median_ns("buffers.release(buffers.acquire(65536))", ns, number=number, repeat=repeat),
            "ns",
            "bytearray(65536)",
            fresh_big,
            TARGET,
        ),
        Row(
            "pool",
            "BufferPool acquire(65536)+release (thread_safe=False)",
            median_ns(
                "buffers_unlocked.release(buffers_unlocked.acquire(65536))",
                ns,
                number=number,
                repeat=repeat,
            ),
            "ns",
            "bytearray(65536)",
            fresh_big,
            TARGET,
        ),
    ]
    return rows
