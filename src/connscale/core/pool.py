"""Object and buffer pools: reuse instead of allocate, with honest reuse statistics.

Both pools remember what they handed out (by identity) so that releasing an object twice, or
one they never gave out, is an error instead of silent corruption. They keep a strong
reference to each handed-out object: an id() can then never be recycled for another object
while the pool still believes it is out, and a leak shows up as ``in_use`` that never falls.

The core starts no threads, but the pools must be safe when callers use threads: the lock is
``_thread.allocate_lock()``, the same primitive ``threading.Lock`` returns, taken from the
low-level module so that the core does not depend on ``threading``.
"""

from __future__ import annotations

import _thread
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

from connscale.errors import ConfigurationError, DoubleReleaseError, ForeignObjectError

T = TypeVar("T")

__all__ = [
    "BufferPool",
    "BufferPoolStatistics",
    "ObjectPool",
    "PoolStatistics",
]


def _ratio(reused: int, created: int) -> float:
    total = created + reused
    return reused / total if total else 0.0


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """A snapshot of an ObjectPool; ``reuse_ratio = reused / (created + reused)``, never > 1."""

    created: int
    reused: int
    in_use: int
    available: int
    dropped: int
    peak_in_use: int
    reset_failures: int
    max_size: int
    reuse_ratio: float


class _Lease(Generic[T]):
    """Context manager returned by ``ObjectPool.lease()``: releases on exit, even on error."""

    __slots__ = ("_obj", "_pool")

    def __init__(self, pool: ObjectPool[T]) -> None:
        self._pool = pool
        self._obj: T | None = None

    def __enter__(self) -> T:
        obj = self._pool.acquire()
        self._obj = obj
        return obj

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        obj = self._obj
        self._obj = None
        if obj is not None:
            self._pool.release(obj)


#: Stands in for the lock of a pool built with ``thread_safe=False`` (off the hot path).
_NO_LOCK = contextlib.nullcontext()


def _check_size(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {value}")
    return value


class ObjectPool(Generic[T]):
    """A thread-safe pool of reusable objects made by ``factory`` and cleaned by ``reset``.

    ``reset`` runs on release; an object whose reset raises is dropped, never reused. When
    ``max_size`` objects are already pooled, a released object is dropped and counted.
    ``thread_safe=False`` skips the lock, for pools used from one thread (an event loop).
    """

    __slots__ = (
        "_available",
        "_created",
        "_dropped",
        "_factory",
        "_lock",
        "_max_size",
        "_out",
        "_peak",
        "_reset",
        "_reset_failures",
        "_reused",
    )

    def __init__(
        self,
        factory: Callable[[], T],
        *,
        reset: Callable[[T], None] | None = None,
        max_size: int = 1024,
        prefill: int = 0,
        thread_safe: bool = True,
    ) -> None:
        if not callable(factory):
            raise ConfigurationError("factory must be a callable that returns a new object")
        self._max_size = _check_size("max_size", max_size, minimum=0)
        prefill = _check_size("prefill", prefill, minimum=0)
        if prefill > max_size:
            raise ConfigurationError(
                f"prefill ({prefill}) cannot exceed max_size ({max_size}): "
                "the extra objects would be dropped at once"
            )
        self._factory = factory
        self._reset = reset
        # None when the caller promises a single thread (an event loop): no lock cost.
        self._lock: _thread.LockType | None = _thread.allocate_lock() if thread_safe else None
        # LIFO stack: the most recently released object is the warmest in CPU caches.
        self._available: list[T] = [factory() for _ in range(prefill)]
        # id(obj) -> obj for every object handed out and not yet released.
        self._out: dict[int, T] = {}
        self._created = prefill
        self._reused = 0
        self._dropped = 0
        self._reset_failures = 0
        self._peak = 0

    def acquire(self) -> T:
        """Return a pooled object, or a new one from ``factory`` when the pool is empty."""
        # Explicit acquire()/release() with try/finally: cheaper than ``with`` on 3.11.
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            available = self._available
            if available:
                obj = available.pop()
                self._reused += 1
                out = self._out
                out[id(obj)] = obj
                if len(out) > self._peak:  # noqa: PLR1730 (cheaper than max() here)
                    self._peak = len(out)
                return obj
        finally:
            if lock is not None:
                lock.release()
        return self._create()

    def _create(self) -> T:
        # The factory is user code: call it outside the lock.
        obj = self._factory()
        with self._lock or _NO_LOCK:
            self._created += 1
            out = self._out
            out[id(obj)] = obj
            if len(out) > self._peak:  # noqa: PLR1730 (cheaper than max() here)
                self._peak = len(out)
        return obj

    def release(self, obj: T) -> None:
        """Give ``obj`` back; raises DoubleReleaseError or ForeignObjectError on misuse."""
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            # Strong references in _out keep ids unique, so the pop finds obj or nothing.
            if self._out.pop(id(obj), None) is not obj:
                self._raise_bad_release(obj)
            if self._reset is None:
                if len(self._available) < self._max_size:
                    self._available.append(obj)
                else:
                    self._dropped += 1
                return
        finally:
            if lock is not None:
                lock.release()
        self._reset_and_keep(obj, self._reset)

    def _reset_and_keep(self, obj: T, reset: Callable[[T], None]) -> None:
        # reset is user code: run it outside the lock.
        try:
            reset(obj)
        except Exception:
            # A half-reset object could leak state into its next user: never reuse it.
            with self._lock or _NO_LOCK:
                self._reset_failures += 1
                self._dropped += 1
            return
        with self._lock or _NO_LOCK:
            if len(self._available) < self._max_size:
                self._available.append(obj)
            else:
                self._dropped += 1

    def _raise_bad_release(self, obj: T) -> None:
        if any(pooled is obj for pooled in self._available):
            raise DoubleReleaseError(
                f"{type(obj).__name__} object at {id(obj):#x} was released twice; "
                "release each acquired object exactly once (or use lease())"
            )
        raise ForeignObjectError(
            f"{type(obj).__name__} object at {id(obj):#x} is not out from this pool: it was "
            "never acquired here, or it was already released (and dropped)"
        )

    def lease(self) -> _Lease[T]:
        """``with pool.lease() as obj:`` acquires, and always releases on exit."""
        return _Lease(self)

    def statistics(self) -> PoolStatistics:
        """A frozen snapshot of the counters."""
        with self._lock or _NO_LOCK:
            return PoolStatistics(
                created=self._created,
                reused=self._reused,
                in_use=len(self._out),
                available=len(self._available),
                dropped=self._dropped,
                peak_in_use=self._peak,
                reset_failures=self._reset_failures,
                max_size=self._max_size,
                reuse_ratio=_ratio(self._reused, self._created),
            )

    def configure(self, *, max_size: int) -> None:
        """Change ``max_size`` at run time; extra pooled objects are dropped and counted."""
        max_size = _check_size("max_size", max_size, minimum=0)
        with self._lock or _NO_LOCK:
            self._max_size = max_size
            excess = len(self._available) - max_size
            if excess > 0:
                del self._available[:excess]  # drop the coldest (oldest) first
                self._dropped += excess

    def __len__(self) -> int:
        """Objects pooled and ready to hand out."""
        return len(self._available)

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<ObjectPool available={s.available} in_use={s.in_use} "
            f"max_size={s.max_size} reuse_ratio={s.reuse_ratio:.2f}>"
        )


@dataclass(frozen=True, slots=True)
class BufferPoolStatistics:
    """A snapshot of a BufferPool; byte figures count bytearray capacities, not views."""

    created: int
    reused: int
    in_use: int
    available: int
    dropped: int
    peak_in_use: int
    oversize: int
    pooled_bytes: int
    in_use_bytes: int
    max_pooled_bytes: int
    reuse_ratio: float


def _next_power_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 1 else 1


class BufferPool:
    """Reusable ``bytearray`` buffers in power-of-two size classes, lent as ``memoryview``.

    ``acquire(size)`` returns a writable view of exactly ``size`` bytes over a pooled buffer
    of the smallest class that fits. A request above the largest class (``max_size``) is
    refused unless ``max_acquire`` allows it: then it gets a fresh, unpooled buffer (counted
    as ``oversize``). The bound keeps a wrong length (a peer's size field, say) from
    allocating gigabytes. Buffer contents are not cleared between users.
    """

    __slots__ = (
        "_created",
        "_dropped",
        "_free",
        "_lock",
        "_max_acquire",
        "_max_pooled_bytes",
        "_max_size",
        "_min_size",
        "_out",
        "_out_bytes",
        "_oversize",
        "_peak",
        "_pooled_bytes",
        "_reused",
    )

    def __init__(
        self,
        *,
        min_size: int = 4096,
        max_size: int = 1 << 20,
        max_pooled_bytes: int = 16 << 20,
        max_acquire: int | None = None,
        thread_safe: bool = True,
    ) -> None:
        min_size = _check_size("min_size", min_size, minimum=1)
        max_size = _check_size("max_size", max_size, minimum=1)
        if max_acquire is None:
            max_acquire = max_size
        max_acquire = _check_size("max_acquire", max_acquire, minimum=max_size)
        self._max_pooled_bytes = _check_size("max_pooled_bytes", max_pooled_bytes, minimum=0)
        for name, value in (("min_size", min_size), ("max_size", max_size)):
            if value & (value - 1):
                raise ConfigurationError(f"{name} must be a power of two, got {value}")
        if min_size > max_size:
            raise ConfigurationError(f"min_size ({min_size}) must be <= max_size ({max_size})")
        self._min_size = min_size
        self._max_size = max_size
        self._max_acquire = max_acquire
        self._lock: _thread.LockType | None = _thread.allocate_lock() if thread_safe else None
        # class size -> stack of free buffers of exactly that length
        self._free: dict[int, list[bytearray]] = {}
        size = min_size
        while size <= max_size:
            self._free[size] = []
            size <<= 1
        self._out: dict[int, bytearray] = {}
        self._out_bytes = 0
        self._pooled_bytes = 0
        self._created = 0
        self._reused = 0
        self._dropped = 0
        self._oversize = 0
        self._peak = 0

    def class_size(self, size: int) -> int:
        """The capacity of the buffer that would serve a request of ``size`` bytes."""
        return max(self._min_size, _next_power_of_two(size))

    def acquire(self, size: int) -> memoryview:
        """A writable view of exactly ``size`` bytes over a pooled (or fresh) bytearray."""
        if type(size) is not int or size < 0:
            raise ConfigurationError(f"size must be a non-negative int, got {size!r}")
        if size > self._max_acquire:
            raise ConfigurationError(self._too_large(size))
        capacity = self._min_size if size <= self._min_size else 1 << (size - 1).bit_length()
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            stack = self._free.get(capacity)
            if stack:
                buf = stack.pop()
                self._pooled_bytes -= capacity
                self._reused += 1
            else:
                # Allocating under the lock is cheaper here than a second lock round trip.
                self._created += 1
                if stack is None:
                    self._oversize += 1
                    capacity = size  # unpooled: exactly what was asked for
                buf = bytearray(capacity)
            out = self._out
            out[id(buf)] = buf
            self._out_bytes += capacity
            if len(out) > self._peak:  # noqa: PLR1730 (cheaper than max() here)
                self._peak = len(out)
        finally:
            if lock is not None:
                lock.release()
        view = memoryview(buf)
        return view if size == capacity else view[:size]

    def _too_large(self, size: int) -> str:
        if self._max_acquire > self._max_size:
            limit = f"max_acquire ({self._max_acquire:,} bytes)"
        else:
            limit = f"the largest buffer class (max_size {self._max_size:,} bytes)"
        return (
            f"a buffer of {size:,} bytes is over {limit}; refuse the input that asked for "
            "it, or raise max_acquire to serve larger requests unpooled"
        )

    @property
    def max_acquire(self) -> int:
        """The largest size ``acquire`` serves."""
        return self._max_acquire

    def release(self, view: memoryview) -> None:
        """Give back a view from ``acquire``; the view is released and must not be used."""
        try:
            buf = view.obj
        except ValueError:
            raise DoubleReleaseError(
                "this view was already released; release each acquired view exactly once"
            ) from None
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            # Strong references in _out keep ids unique, so the pop finds buf or nothing.
            if self._out.pop(id(buf), None) is not buf:
                self._raise_bad_release(buf)
            capacity = len(buf)  # type: ignore[arg-type]  # a bytearray: it was in _out
            self._out_bytes -= capacity
            stack = self._free.get(capacity)
            if stack is not None and self._pooled_bytes + capacity <= self._max_pooled_bytes:
                stack.append(buf)  # type: ignore[arg-type]
                self._pooled_bytes += capacity
            else:
                self._dropped += 1
        finally:
            if lock is not None:
                lock.release()
        # Ends this view; slices the caller made of it still reach the buffer (their bug).
        view.release()

    def _raise_bad_release(self, buf: object) -> None:
        for stack in self._free.values():
            if any(pooled is buf for pooled in stack):
                raise DoubleReleaseError(
                    "this buffer was released twice; release each acquired view exactly once"
                )
        raise ForeignObjectError(
            "this view is not over a buffer out from this pool: it was never acquired here, "
            "or it was already released (and dropped)"
        )

    def statistics(self) -> BufferPoolStatistics:
        """A frozen snapshot of the counters."""
        with self._lock or _NO_LOCK:
            return BufferPoolStatistics(
                created=self._created,
                reused=self._reused,
                in_use=len(self._out),
                available=sum(len(stack) for stack in self._free.values()),
                dropped=self._dropped,
                peak_in_use=self._peak,
                oversize=self._oversize,
                pooled_bytes=self._pooled_bytes,
                in_use_bytes=self._out_bytes,
                max_pooled_bytes=self._max_pooled_bytes,
                reuse_ratio=_ratio(self._reused, self._created),
            )
