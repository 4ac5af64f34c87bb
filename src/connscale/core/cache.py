"""A byte-bounded TTL cache: LRU eviction, per-item TTL, amortized expiry, no background thread.

Storage is deliberately lean, because a cache is often the largest thing a long-lived server
holds: one ``OrderedDict`` (key -> value, least recently used first), a plain dict of expiry
times holding only entries that can expire, and a dict of entry sizes only when bytes are
counted. There is no per-entry wrapper object.

Expired entries are removed when touched, on every write from the least-recently-used end
(a few per write, which is exact when all entries share one TTL and are not read), and by a
full sweep at most once per ``sweep_interval`` seconds, triggered by a write. Each entry is
swept a bounded number of times before it expires, so the sweeps cost O(1) amortized per
write, and expired entries really free their memory without any thread.

``len()`` counts stored entries, which may include ones that expired since the last write
(as ``cachetools`` does); iteration, ``in`` and lookups never return an expired entry.
"""

from __future__ import annotations

import _thread
import contextlib
import itertools
import math
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar, cast

from connscale.errors import BatchTooLargeError, CacheError, ConfigurationError

K = TypeVar("K")
V = TypeVar("V")

__all__ = [
    "ENTRY_OVERHEAD_BYTES",
    "CacheStatistics",
    "EvictionReason",
    "TTLCache",
    "create_ttl_dict",
]

#: Bytes the cache's own structures cost per entry, added to getsizeof(key) + getsizeof(value)
#: when bytes are counted: an OrderedDict entry (~90 B), an expiry dict entry with its float
#: (~60 B) and a size dict entry (~40 B), measured with tracemalloc by
#: ``python -m benchmarks.run_micro`` (the "TTLCache bytes per entry" rows).
ENTRY_OVERHEAD_BYTES = 190

_MISSING: Any = object()
_NO_LOCK = contextlib.nullcontext()


class EvictionReason(StrEnum):
    """Why ``on_evict`` was called for an entry."""

    EXPIRED = "expired"
    MAX_ITEMS = "max_items"
    MAX_BYTES = "max_bytes"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    """A snapshot of a TTLCache. ``bytes`` is None when the cache does not count bytes."""

    hits: int
    misses: int
    hit_rate: float
    size: int
    bytes: int | None
    max_items: int | None
    max_bytes: int | None
    expirations: int
    evicted_max_items: int
    evicted_max_bytes: int
    deletions: int

    @property
    def evictions(self) -> int:
        """Entries removed by the cache itself (expiry and both limits), not by deletes."""
        return self.expirations + self.evicted_max_items + self.evicted_max_bytes

    def evictions_by_reason(self) -> dict[EvictionReason, int]:
        """Every removal counted by its reason."""
        return {
            EvictionReason.EXPIRED: self.expirations,
            EvictionReason.MAX_ITEMS: self.evicted_max_items,
            EvictionReason.MAX_BYTES: self.evicted_max_bytes,
            EvictionReason.DELETED: self.deletions,
        }


def _check_hashable(key: object) -> None:
    try:
        hash(key)
    except TypeError:
        raise TypeError(
            f"cache keys must be hashable; {type(key).__name__} is not (use a tuple or a str)"
        ) from None


def _positive(name: str, value: float | None, *, integer: bool) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number or None, got {type(value).__name__}")
    if integer and not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an int or None, got {value!r}")
    if not value > 0 or (isinstance(value, float) and math.isnan(value)):
        raise ConfigurationError(f"{name} must be > 0 or None (no limit), got {value!r}")


class TTLCache(MutableMapping[K, V]):
    """A ``MutableMapping`` bounded by item count, bytes and time-to-live; LRU eviction.

    ``getsizeof`` (default ``sys.getsizeof``) measures keys and values; each entry is charged
    ``getsizeof(key) + getsizeof(value) + ENTRY_OVERHEAD_BYTES`` against ``max_bytes``.
    ``on_evict(key, value, reason)`` runs after the cache is consistent again, outside its
    lock. Replacing the value of a key is not an eviction.
    """

    def __init__(
        self,
        *,
        max_items: int | None = None,
        ttl: float | None = None,
        max_bytes: int | None = None,
        getsizeof: Callable[[object], int] | None = None,
        timer: Callable[[], float] = time.monotonic,
        on_evict: Callable[[K, V, EvictionReason], None] | None = None,
        thread_safe: bool = False,
        sweep_interval: float | None = None,
    ) -> None:
        _positive("max_items", max_items, integer=True)
        _positive("ttl", ttl, integer=False)
        _positive("max_bytes", max_bytes, integer=True)
        _positive("sweep_interval", sweep_interval, integer=False)
        if not callable(timer):
            raise ConfigurationError("timer must be a zero-argument callable returning seconds")
        self._max_items = max_items
        self._ttl = None if ttl is None or math.isinf(ttl) else float(ttl)
        self._max_bytes = max_bytes
        self._count_bytes = max_bytes is not None or getsizeof is not None
        self._getsizeof: Callable[[object], int] = getsizeof or sys.getsizeof
        self._timer = timer
        self._on_evict = on_evict
        # Without an explicit interval, sweep about once per TTL (or per minute for per-item
        # TTLs only): an entry is then swept at most about twice before it is removed.
        self._sweep_interval = sweep_interval or self._ttl or 60.0
        self._next_sweep = -math.inf
        self._check_after = -math.inf
        self._lock: Any = _thread.RLock() if thread_safe else None
        self._data: OrderedDict[K, V] = OrderedDict()
        self._expires: dict[K, float] = {}
        self._sizes: dict[K, int] = {}
        self._bytes = 0
        self._pending: list[tuple[K, V, EvictionReason]] = []
        self._hits = 0
        self._misses = 0
        self._expirations = 0
        self._evicted_max_items = 0
        self._evicted_max_bytes = 0
        self._deletions = 0

    # --- reading --------------------------------------------------------------------------

    def _lookup(self, key: K) -> V:
        """The live value of ``key`` (marked most recently used) or _MISSING."""
        data = self._data
        value = data.get(key, _MISSING)
        if value is _MISSING:
            self._misses += 1
            return cast(V, _MISSING)
        expires = self._expires
        if expires:
            when = expires.get(key)
            if when is not None and self._timer() >= when:
                self._remove(key, EvictionReason.EXPIRED)
                self._misses += 1
                return cast(V, _MISSING)
        data.move_to_end(key)
        self._hits += 1
        return cast(V, value)

    def __getitem__(self, key: K) -> V:
        lock = self._lock
        if lock is None:
            value = self._lookup(key)
        else:
            with lock:
                value = self._lookup(key)
        if self._pending:
            self._fire()
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get(self, key: K, default: Any = None) -> Any:
        """The value for ``key`` if present and live, else ``default``; counts a hit or miss."""
        lock = self._lock
        if lock is None:
            value = self._lookup(key)
        else:
            with lock:
                value = self._lookup(key)
        if self._pending:
            self._fire()
        return default if value is _MISSING else value

    def __contains__(self, key: object) -> bool:
        """Present and not expired; does not count as a use (no LRU move, no statistics)."""
        with self._lock or _NO_LOCK:
            if key not in self._data:
                return False
            when = self._expires.get(cast(K, key))
            return when is None or self._timer() < when

    def __iter__(self) -> Iterator[K]:
        """Live keys, least recently used first; the cache must not change meanwhile."""
        now = self._timer() if self._expires else 0.0
        expires = self._expires
        for key in self._data:
            when = expires.get(key)
            if when is None or now < when:
                yield key

    def __len__(self) -> int:
        return len(self._data)

    def remaining_ttl(self, key: K) -> float | None:
        """Seconds until ``key`` expires (None: never); KeyError if absent or expired."""
        with self._lock or _NO_LOCK:
            if key not in self._data:
                raise KeyError(key)
            when = self._expires.get(key)
            if when is None:
                return None
            left = when - self._timer()
        if left <= 0:
            raise KeyError(key)
        return left

    # --- writing --------------------------------------------------------------------------

    def put(self, key: K, value: V, *, ttl: float | None = None) -> None:
        """Store ``value``; ``ttl`` overrides the cache's TTL for this entry (inf: never)."""
        if ttl is not None:
            _positive("ttl", ttl, integer=False)
        lock = self._lock
        if lock is None:
            self._store(key, value, ttl)
        else:
            with lock:
                self._store(key, value, ttl)
        if self._pending:
            self._fire()

    # Saves a call frame per write: put(key, value) takes the same positional arguments.
    __setitem__ = put

    def add_batch(
        self, items: Iterable[tuple[K, V]] | Mapping[K, V], *, ttl: float | None = None
    ) -> int:
        """Store many entries at once and return how many were stored.

        A batch with more items than ``max_items``, or more bytes than ``max_bytes``, could
        never fit: it is refused with BatchTooLargeError before anything is stored. At most
        ``max_items + 1`` items of an iterator are read to find that out, so an endless
        iterator cannot grow memory without bound.
        """
        if ttl is not None:
            _positive("ttl", ttl, integer=False)
        pairs = items.items() if isinstance(items, Mapping) else items
        limit = self._max_items
        batch = list(pairs if limit is None else itertools.islice(pairs, limit + 1))
        if limit is not None and len(batch) > limit:
            raise BatchTooLargeError(
                f"batch has more than max_items={limit} entries and could never fit; "
                "split it into batches of at most max_items"
            )
        if self._max_bytes is not None:
            for key, _ in batch:
                _check_hashable(key)
            total = sum(self._entry_size(key, value) for key, value in batch)
            if total > self._max_bytes:
                raise BatchTooLargeError(
                    f"batch needs {total} bytes but max_bytes is {self._max_bytes}; "
                    "split it into smaller batches"
                )
        with self._lock or _NO_LOCK:
            for key, value in batch:
                self._store(key, value, ttl)
        if self._pending:
            self._fire()
        return len(batch)

    def _entry_size(self, key: K, value: V) -> int:
        getsizeof = self._getsizeof
        return getsizeof(key) + getsizeof(value) + ENTRY_OVERHEAD_BYTES

    def _store(self, key: K, value: V, ttl: float | None) -> None:
        if ttl is None:
            ttl = self._ttl
        elif math.isinf(ttl):
            ttl = None
        data = self._data
        expires = self._expires
        now = self._timer() if (ttl is not None or expires) else 0.0
        if expires and now >= self._check_after:
            self._expire_some(now)
        size = 0
        if self._count_bytes:
            _check_hashable(key)  # an unhashable key is a key error, not a size error
            size = self._entry_size(key, value)
            if self._max_bytes is not None and size > self._max_bytes:
                raise CacheError(
                    f"entry needs {size} bytes but max_bytes is {self._max_bytes}: "
                    "it can never fit; raise max_bytes or store something smaller"
                )
        if key in data:
            data[key] = value
            data.move_to_end(key)
        else:
            max_items = self._max_items
            if max_items is not None:
                while len(data) >= max_items:
                    self._evict_oldest(now, EvictionReason.MAX_ITEMS)
            data[key] = value
        if self._count_bytes:
            sizes = self._sizes
            self._bytes += size - sizes.get(key, 0)
            sizes[key] = size
        if ttl is None:
            if expires:
                expires.pop(key, None)
        else:
            expires[key] = now + ttl
        max_bytes = self._max_bytes
        if max_bytes is not None:
            while self._bytes > max_bytes:
                self._evict_oldest(now, EvictionReason.MAX_BYTES)

    def _evict_oldest(self, now: float, reason: EvictionReason) -> None:
        key = next(iter(self._data))
        when = self._expires.get(key)
        if when is not None and now >= when:
            reason = EvictionReason.EXPIRED  # say why honestly: it had expired anyway
        self._remove(key, reason)

    def _expire_some(self, now: float) -> None:
        """Amortized expiry on a write: a few from the LRU end, and a periodic full sweep."""
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval
            self._sweep(now)
        data = self._data
        expires = self._expires
        for _ in range(2):
            if not data:
                break
            key = next(iter(data))
            when = expires.get(key)
            if when is None or now < when:
                break
            self._remove(key, EvictionReason.EXPIRED)
        # Nothing at the LRU end expires before this: skip the check on writes until then.
        # (A read can bring a sooner-expiring entry to the end; the sweep bounds that delay.)
        front = expires.get(next(iter(data))) if data else None
        self._check_after = self._next_sweep if front is None else min(front, self._next_sweep)

    def _sweep(self, now: float) -> int:
        expired = [key for key, when in self._expires.items() if now >= when]
        for key in expired:
            self._remove(key, EvictionReason.EXPIRED)
        return len(expired)

    def _remove(self, key: K, reason: EvictionReason) -> None:
        value = self._data.pop(key)
        self._expires.pop(key, None)
        if self._count_bytes:
            self._bytes -= self._sizes.pop(key)
        if reason is EvictionReason.EXPIRED:
            self._expirations += 1
        elif reason is EvictionReason.MAX_ITEMS:
            self._evicted_max_items += 1
        elif reason is EvictionReason.MAX_BYTES:
            self._evicted_max_bytes += 1
        else:
            self._deletions += 1
        if self._on_evict is not None:
            self._pending.append((key, value, reason))

    def _fire(self) -> None:
        # Callbacks run outside the lock, after the cache is consistent: a callback may use
        # the cache again without deadlock or seeing a half-done change.
        with self._lock or _NO_LOCK:
            pending, self._pending = self._pending, []
        on_evict = self._on_evict
        if on_evict is not None:
            for key, value, reason in pending:
                on_evict(key, value, reason)

    def __delitem__(self, key: K) -> None:
        with self._lock or _NO_LOCK:
            present = key in self._data
            if present:
                when = self._expires.get(key)
                if when is not None and self._timer() >= when:
                    self._remove(key, EvictionReason.EXPIRED)
                    present = False
                else:
                    self._remove(key, EvictionReason.DELETED)
        if self._pending:
            self._fire()
        if not present:
            raise KeyError(key)

    def popitem(self) -> tuple[K, V]:
        """Remove and return the least recently used live entry."""
        with self._lock or _NO_LOCK:
            if self._expires:
                self._sweep(self._timer())
            if not self._data:
                item = None
            else:
                key = next(iter(self._data))
                item = (key, self._data[key])
                self._remove(key, EvictionReason.DELETED)
        if self._pending:
            self._fire()
        if item is None:
            raise KeyError("popitem(): cache is empty")
        return item

    def clear(self) -> None:
        """Remove every entry (``on_evict`` sees each one with reason ``deleted``)."""
        with self._lock or _NO_LOCK:
            for key in list(self._data):
                self._remove(key, EvictionReason.DELETED)
        if self._pending:
            self._fire()

    def expire(self) -> int:
        """Remove every expired entry now; returns how many were removed."""
        with self._lock or _NO_LOCK:
            removed = self._sweep(self._timer()) if self._expires else 0
        if self._pending:
            self._fire()
        return removed

    # --- introspection --------------------------------------------------------------------

    @property
    def max_items(self) -> int | None:
        return self._max_items

    @property
    def max_bytes(self) -> int | None:
        return self._max_bytes

    @property
    def ttl(self) -> float | None:
        return self._ttl

    @property
    def bytes(self) -> int | None:
        """Bytes charged for the stored entries, or None when bytes are not counted."""
        return self._bytes if self._count_bytes else None

    def statistics(self) -> CacheStatistics:
        """A frozen snapshot of the counters."""
        with self._lock or _NO_LOCK:
            lookups = self._hits + self._misses
            return CacheStatistics(
                hits=self._hits,
                misses=self._misses,
                hit_rate=self._hits / lookups if lookups else 0.0,
                size=len(self._data),
                bytes=self._bytes if self._count_bytes else None,
                max_items=self._max_items,
                max_bytes=self._max_bytes,
                expirations=self._expirations,
                evicted_max_items=self._evicted_max_items,
                evicted_max_bytes=self._evicted_max_bytes,
                deletions=self._deletions,
            )

    def __repr__(self) -> str:
        return (
            f"<TTLCache size={len(self._data)} max_items={self._max_items} "
            f"ttl={self._ttl} max_bytes={self._max_bytes}>"
        )


def create_ttl_dict(
    max_size: int,
    ttl: float,
    cleanup_interval: float = 60.0,
    *,
    timer: Callable[[], float] = time.monotonic,
) -> TTLCache[Any, Any]:
    """The ``create_ttl_dict(max_size, ttl, cleanup_interval)`` shape some callers use: a
    TTLCache that sweeps expired entries at most every ``cleanup_interval`` seconds."""
    return TTLCache(max_items=max_size, ttl=ttl, sweep_interval=cleanup_interval, timer=timer)
