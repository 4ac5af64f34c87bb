"""ObjectPool and BufferPool: reuse, reset, misuse detection, limits, statistics, threads."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connscale.core.pool import BufferPool, ObjectPool
from connscale.errors import ConfigurationError, DoubleReleaseError, ForeignObjectError


class Box:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


def clear(box: Box) -> None:
    box.value = 0


# --- ObjectPool ------------------------------------------------------------------------------


def test_acquire_reuses_a_released_object() -> None:
    pool = ObjectPool(Box)
    first = pool.acquire()
    pool.release(first)
    assert pool.acquire() is first
    stats = pool.statistics()
    assert (stats.created, stats.reused, stats.in_use, stats.available) == (1, 1, 1, 0)
    assert stats.reuse_ratio == 0.5


def test_reset_runs_on_release() -> None:
    pool = ObjectPool(Box, reset=clear)
    box = pool.acquire()
    box.value = 42
    pool.release(box)
    assert pool.acquire().value == 0


def test_an_object_whose_reset_raises_is_dropped() -> None:
    def failing_reset(box: Box) -> None:
        raise RuntimeError("cannot clean")

    pool = ObjectPool(Box, reset=failing_reset)
    box = pool.acquire()
    pool.release(box)
    assert pool.acquire() is not box
    stats = pool.statistics()
    assert stats.dropped == 1
    assert stats.reset_failures == 1
    assert stats.created == 2


def test_double_release_raises() -> None:
    pool = ObjectPool(Box)
    box = pool.acquire()
    pool.release(box)
    with pytest.raises(DoubleReleaseError, match="released twice"):
        pool.release(box)


def test_foreign_object_raises() -> None:
    pool = ObjectPool(Box)
    with pytest.raises(ForeignObjectError, match="not out from this pool"):
        pool.release(Box())


def test_object_from_another_pool_is_foreign() -> None:
    one, other = ObjectPool(Box), ObjectPool(Box)
    box = one.acquire()
    with pytest.raises(ForeignObjectError):
        other.release(box)
    one.release(box)  # still releasable to its own pool


def test_full_pool_drops_and_counts() -> None:
    pool = ObjectPool(Box, max_size=2)
    boxes = [pool.acquire() for _ in range(3)]
    for box in boxes:
        pool.release(box)
    stats = pool.statistics()
    assert stats.available == 2
    assert stats.dropped == 1
    assert stats.peak_in_use == 3


def test_prefill_creates_objects_up_front() -> None:
    pool = ObjectPool(Box, prefill=3, max_size=4)
    assert pool.statistics().available == 3
    assert pool.statistics().created == 3
    pool.acquire()
    assert pool.statistics().reused == 1


def test_lease_releases_even_on_error() -> None:
    pool = ObjectPool(Box)
    with pytest.raises(KeyError), pool.lease() as box:
        assert pool.statistics().in_use == 1
        raise KeyError("boom")
    assert pool.statistics().in_use == 0
    assert pool.acquire() is box


def test_configure_shrinks_and_validates() -> None:
    pool = ObjectPool(Box, max_size=8)
    boxes = [pool.acquire() for _ in range(5)]
    for box in boxes:
        pool.release(box)
    pool.configure(max_size=2)
    stats = pool.statistics()
    assert (stats.available, stats.max_size, stats.dropped) == (2, 2, 3)
    with pytest.raises(ValueError, match="max_size must be >= 0"):
        pool.configure(max_size=-1)
    with pytest.raises(ConfigurationError, match="must be an int"):
        pool.configure(max_size=2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size": -1}, "max_size"),
        ({"prefill": -1}, "prefill"),
        ({"max_size": 2, "prefill": 3}, "prefill"),
        ({"max_size": True}, "int"),
    ],
)
def test_invalid_configuration(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ObjectPool(Box, **kwargs)  # type: ignore[arg-type]


def test_statistics_is_frozen() -> None:
    stats = ObjectPool(Box).statistics()
    with pytest.raises(AttributeError):
        stats.created = 5  # type: ignore[misc]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), max_size=80), st.integers(min_value=0, max_value=5))
def test_reuse_ratio_never_exceeds_one(ops: list[bool], max_size: int) -> None:
    pool = ObjectPool(Box, max_size=max_size, thread_safe=False)
    out: list[Box] = []
    for acquire in ops:
        if acquire or not out:
            out.append(pool.acquire())
        else:
            pool.release(out.pop())
    stats = pool.statistics()
    assert 0.0 <= stats.reuse_ratio <= 1.0
    assert stats.in_use == len(out)
    assert stats.available <= max_size
    # Every object ever created is out, pooled, or was dropped.
    assert stats.created == stats.in_use + stats.available + stats.dropped


def test_thread_safety_under_contention() -> None:
    pool = ObjectPool(Box, max_size=4)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(2000):
                with pool.lease() as box:
                    box.value += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stats = pool.statistics()
    assert stats.in_use == 0
    assert stats.created + stats.reused == 8000
    assert stats.created == stats.available + stats.dropped


# --- BufferPool ------------------------------------------------------------------------------


def test_buffer_has_requested_length_and_is_writable() -> None:
    pool = BufferPool()
    view = pool.acquire(100)
    assert len(view) == 100
    view[:5] = b"hello"
    assert bytes(view[:5]) == b"hello"
    assert isinstance(view.obj, bytearray)
    assert len(view.obj) == 4096  # smallest size class


def test_buffer_is_reused_within_its_size_class() -> None:
    pool = BufferPool()
    view = pool.acquire(5000)
    backing = view.obj
    assert len(backing) == 8192
    pool.release(view)
    again = pool.acquire(8000)
    assert again.obj is backing
    stats = pool.statistics()
    assert (stats.created, stats.reused) == (1, 1)
    assert stats.reuse_ratio == 0.5


def test_released_view_cannot_be_used() -> None:
    pool = BufferPool()
    view = pool.acquire(10)
    pool.release(view)
    with pytest.raises(ValueError):
        view[0] = 1


def test_buffer_double_release_and_foreign() -> None:
    pool = BufferPool()
    view = pool.acquire(10)
    pool.release(view)
    with pytest.raises(DoubleReleaseError):
        pool.release(view)
    with pytest.raises(ForeignObjectError):
        pool.release(memoryview(bytearray(10)))
    with pytest.raises(ForeignObjectError):
        pool.release(memoryview(b"immutable"))


def test_pooled_bytes_are_capped() -> None:
    pool = BufferPool(min_size=4096, max_size=65536, max_pooled_bytes=2 * 65536)
    views = [pool.acquire(65536) for _ in range(3)]
    for view in views:
        pool.release(view)
    stats = pool.statistics()
    assert stats.pooled_bytes == 2 * 65536
    assert stats.available == 2
    assert stats.dropped == 1
    assert stats.in_use_bytes == 0


def test_oversize_requests_are_served_but_not_pooled() -> None:
    pool = BufferPool(max_size=8192, max_acquire=16_384)
    view = pool.acquire(10_000)
    assert len(view) == 10_000
    pool.release(view)
    stats = pool.statistics()
    assert stats.oversize == 1
    assert stats.available == 0
    assert stats.dropped == 1


def test_a_request_over_the_largest_class_is_refused_before_allocating() -> None:
    pool = BufferPool()  # largest class 1 MiB
    with pytest.raises(ConfigurationError, match=r"10,000,000,000 bytes is over the largest"):
        pool.acquire(10**10)
    assert pool.statistics().created == 0
    bounded = BufferPool(max_size=8192, max_acquire=65_536)
    assert len(bounded.acquire(65_536)) == 65_536
    with pytest.raises(ConfigurationError, match=r"over max_acquire \(65,536 bytes\)"):
        bounded.acquire(65_537)
    with pytest.raises(ConfigurationError, match="max_acquire"):
        BufferPool(max_size=8192, max_acquire=4096)  # below the largest class


def test_buffer_pool_validates() -> None:
    with pytest.raises(ConfigurationError, match="power of two"):
        BufferPool(min_size=3000)
    with pytest.raises(ConfigurationError, match="min_size"):
        BufferPool(min_size=8192, max_size=4096)
    with pytest.raises(ConfigurationError, match="size"):
        BufferPool().acquire(-1)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=70_000), max_size=30))
def test_buffer_accounting_balances(sizes: list[int]) -> None:
    pool = BufferPool(
        min_size=4096,
        max_size=65536,
        max_pooled_bytes=200_000,
        max_acquire=70_000,
        thread_safe=False,
    )
    views = [pool.acquire(size) for size in sizes]
    assert [len(view) for view in views] == sizes
    assert pool.statistics().in_use == len(sizes)
    for view in views:
        pool.release(view)
    stats = pool.statistics()
    assert stats.in_use == 0
    assert stats.in_use_bytes == 0
    assert stats.pooled_bytes <= 200_000
    assert stats.available + stats.dropped == len(sizes)
