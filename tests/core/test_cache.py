"""TTLCache: TTL, LRU, byte bounds, eviction callbacks, batches, statistics, a reference model."""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connscale.clock import FakeClock
from connscale.core.cache import ENTRY_OVERHEAD_BYTES, EvictionReason, TTLCache, create_ttl_dict
from connscale.errors import BatchTooLargeError, CacheError, ConfigurationError

Evicted = list[tuple[Any, Any, EvictionReason]]


def recording() -> tuple[Evicted, Any]:
    seen: Evicted = []
    return seen, lambda key, value, reason: seen.append((key, value, reason))


def test_is_a_mutable_mapping() -> None:
    cache: TTLCache[str, int] = TTLCache()
    cache["a"] = 1
    cache.update({"b": 2})
    assert dict(cache) == {"a": 1, "b": 2}
    assert cache.pop("a") == 1
    assert cache.setdefault("c", 3) == 3
    assert sorted(cache) == ["b", "c"]
    del cache["b"]
    with pytest.raises(KeyError):
        del cache["b"]
    with pytest.raises(KeyError):
        cache["missing"]
    assert cache.get("missing", 7) == 7


def test_entries_expire_after_ttl() -> None:
    clock = FakeClock()
    cache: TTLCache[str, int] = TTLCache(ttl=10, timer=clock)
    cache["a"] = 1
    clock.advance(9.999)
    assert cache["a"] == 1
    clock.advance(0.001)
    assert "a" not in cache
    assert cache.get("a") is None
    assert cache.statistics().expirations == 1


def test_per_item_ttl_overrides_default() -> None:
    clock = FakeClock()
    cache: TTLCache[str, int] = TTLCache(ttl=10, timer=clock)
    cache.put("short", 1, ttl=1)
    cache.put("forever", 2, ttl=float("inf"))
    cache["default"] = 3
    clock.advance(5)
    assert "short" not in cache
    assert cache.remaining_ttl("default") == pytest.approx(5)
    clock.advance(1000)
    assert list(cache) == ["forever"]
    assert cache.remaining_ttl("forever") is None


def test_rewriting_a_key_restarts_its_ttl() -> None:
    clock = FakeClock()
    cache: TTLCache[str, int] = TTLCache(ttl=10, timer=clock)
    cache["a"] = 1
    clock.advance(8)
    cache["a"] = 2
    clock.advance(8)
    assert cache["a"] == 2


def test_writes_free_expired_entries_without_access() -> None:
    clock = FakeClock()
    seen, on_evict = recording()
    cache: TTLCache[int, int] = TTLCache(ttl=1, timer=clock, on_evict=on_evict)
    for i in range(100):
        cache[i] = i
    clock.advance(2)
    cache[1000] = 0  # one write: the periodic sweep (every ttl) frees all 100
    assert len(cache) == 1
    assert len(seen) == 100
    assert all(reason is EvictionReason.EXPIRED for _, _, reason in seen)


def test_writes_expire_from_the_lru_end_between_sweeps() -> None:
    clock = FakeClock()
    cache: TTLCache[int, int] = TTLCache(ttl=10, timer=clock, sweep_interval=1000)
    cache[0] = 0  # first write sweeps; the next sweep is far away
    for i in range(1, 5):
        clock.advance(1)
        cache[i] = i
    clock.advance(9.5)  # keys 0..3 have expired, 4 has not
    cache[99] = 99
    cache[98] = 98
    assert len(cache) == 3  # two per write from the LRU end: 0,1 then 2,3
    assert 4 in cache


def test_lru_eviction_by_max_items() -> None:
    seen, on_evict = recording()
    cache: TTLCache[str, int] = TTLCache(max_items=2, on_evict=on_evict)
    cache["a"] = 1
    cache["b"] = 2
    assert cache["a"] == 1  # a is now the most recently used
    cache["c"] = 3
    assert sorted(cache) == ["a", "c"]
    assert seen == [("b", 2, EvictionReason.MAX_ITEMS)]
    assert cache.statistics().evicted_max_items == 1


def test_contains_does_not_count_as_use() -> None:
    cache: TTLCache[str, int] = TTLCache(max_items=2)
    cache["a"] = 1
    cache["b"] = 2
    assert "a" in cache
    cache["c"] = 3
    assert "a" not in cache
    assert cache.statistics().hits == 0


def test_max_bytes_counts_keys_values_and_overhead() -> None:
    seen, on_evict = recording()
    value = "x" * 100
    entry = sys.getsizeof("k0") + sys.getsizeof(value) + ENTRY_OVERHEAD_BYTES
    cache: TTLCache[str, str] = TTLCache(max_bytes=3 * entry, on_evict=on_evict)
    for i in range(4):
        cache[f"k{i}"] = value
    assert len(cache) == 3
    assert cache.bytes == 3 * entry
    assert seen == [("k0", value, EvictionReason.MAX_BYTES)]
    del cache["k1"]
    assert cache.bytes == 2 * entry


def test_pluggable_getsizeof() -> None:
    cache: TTLCache[str, bytes] = TTLCache(
        max_bytes=1000 + 2 * ENTRY_OVERHEAD_BYTES,
        getsizeof=lambda obj: len(obj) if isinstance(obj, bytes) else 0,
    )
    cache["a"] = b"x" * 500
    cache["b"] = b"x" * 500
    assert len(cache) == 2
    cache["c"] = b"x"
    assert list(cache) == ["b", "c"]
    assert cache.bytes == 501 + 2 * ENTRY_OVERHEAD_BYTES


def test_replacing_a_value_updates_bytes() -> None:
    cache: TTLCache[str, bytes] = TTLCache(getsizeof=len)  # type: ignore[arg-type]
    cache["a"] = b"xx"
    cache["a"] = b"xxxxx"
    assert cache.bytes == 1 + 5 + ENTRY_OVERHEAD_BYTES
    assert cache.statistics().deletions == 0


def test_an_entry_larger_than_max_bytes_is_refused() -> None:
    cache: TTLCache[str, str] = TTLCache(max_bytes=ENTRY_OVERHEAD_BYTES + 100)
    with pytest.raises(CacheError, match="can never fit"):
        cache["a"] = "x" * 1000
    assert len(cache) == 0


def test_on_evict_reasons_deleted_and_expired() -> None:
    clock = FakeClock()
    seen, on_evict = recording()
    cache: TTLCache[str, int] = TTLCache(ttl=5, timer=clock, on_evict=on_evict)
    cache["a"] = 1
    cache["b"] = 2
    del cache["a"]
    clock.advance(5)
    assert cache.expire() == 1
    assert seen == [("a", 1, EvictionReason.DELETED), ("b", 2, EvictionReason.EXPIRED)]


def test_on_evict_may_use_the_cache() -> None:
    moved: list[str] = []
    holder: list[TTLCache[str, int]] = []

    def on_evict(key: str, value: int, reason: EvictionReason) -> None:
        moved.append(key)
        assert key not in holder[0]
        assert holder[0].get("b") == 2  # the cache is consistent and usable here

    cache: TTLCache[str, int] = TTLCache(max_items=1, thread_safe=True, on_evict=on_evict)
    holder.append(cache)
    cache["a"] = 1
    cache["b"] = 2
    assert moved[0] == "a"
    assert len(cache) == 1


def test_clear_and_popitem() -> None:
    seen, on_evict = recording()
    cache: TTLCache[str, int] = TTLCache(on_evict=on_evict)
    cache.update(a=1, b=2, c=3)
    assert cache["a"] == 1
    assert cache.popitem() == ("b", 2)  # least recently used
    cache.clear()
    assert len(cache) == 0
    assert [key for key, _, _ in seen] == ["b", "c", "a"]
    with pytest.raises(KeyError):
        cache.popitem()


def test_add_batch_stores_and_counts() -> None:
    cache: TTLCache[int, int] = TTLCache(max_items=10)
    assert cache.add_batch([(i, i * i) for i in range(5)]) == 5
    assert cache.add_batch({7: 49}) == 1
    assert cache[4] == 16
    assert len(cache) == 6


def test_add_batch_larger_than_capacity_is_refused() -> None:
    cache: TTLCache[int, int] = TTLCache(max_items=3)
    with pytest.raises(BatchTooLargeError, match="max_items=3"):
        cache.add_batch((i, i) for i in range(4))
    assert len(cache) == 0


def test_add_batch_reads_an_endless_iterator_only_to_the_limit() -> None:
    import itertools

    cache: TTLCache[int, int] = TTLCache(max_items=100)
    with pytest.raises(BatchTooLargeError):
        cache.add_batch((i, i) for i in itertools.count())


def test_add_batch_refuses_more_bytes_than_max_bytes() -> None:
    cache: TTLCache[int, bytes] = TTLCache(
        max_bytes=10 * ENTRY_OVERHEAD_BYTES, getsizeof=lambda obj: 0
    )
    with pytest.raises(BatchTooLargeError, match="bytes"):
        cache.add_batch([(i, b"") for i in range(11)])
    assert cache.add_batch([(i, b"") for i in range(10)]) == 10


def test_add_batch_with_ttl() -> None:
    clock = FakeClock()
    cache: TTLCache[int, int] = TTLCache(timer=clock)
    cache.add_batch([(1, 1), (2, 2)], ttl=3)
    clock.advance(3)
    assert len(list(cache)) == 0


def test_statistics() -> None:
    clock = FakeClock()
    cache: TTLCache[str, int] = TTLCache(ttl=1, timer=clock, max_items=10)
    cache["a"] = 1
    cache.get("a")
    cache.get("b")
    clock.advance(1)
    cache.get("a")
    stats = cache.statistics()
    assert (stats.hits, stats.misses, stats.expirations) == (1, 2, 1)
    assert stats.hit_rate == pytest.approx(1 / 3)
    assert stats.size == 0
    assert stats.bytes is None
    assert stats.evictions == 1
    assert stats.evictions_by_reason()[EvictionReason.EXPIRED] == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_items": 0},
        {"max_items": 1.5},
        {"ttl": 0},
        {"ttl": -1},
        {"ttl": float("nan")},
        {"max_bytes": 0},
        {"max_items": True},
        {"sweep_interval": 0},
    ],
)
def test_invalid_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        TTLCache(**kwargs)


def test_invalid_per_item_ttl() -> None:
    with pytest.raises(ConfigurationError):
        TTLCache[str, int]().put("a", 1, ttl=0)


def test_create_ttl_dict() -> None:
    clock = FakeClock()
    cache = create_ttl_dict(2, 5.0, cleanup_interval=1.0, timer=clock)
    assert cache.max_items == 2
    assert cache.ttl == 5.0
    cache["a"] = 1
    clock.advance(5)
    cache["b"] = 2
    assert len(cache) == 1


def test_thread_safe_cache_under_threads() -> None:
    cache: TTLCache[int, int] = TTLCache(max_items=50, thread_safe=True)

    def work(offset: int) -> None:
        for i in range(2000):
            cache[offset + i % 100] = i
            cache.get(offset + (i * 7) % 100)

    threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 50
    stats = cache.statistics()
    assert stats.hits + stats.misses == 8000


# --- a reference model -----------------------------------------------------------------------


class Model:
    """The obvious, slow semantics: live entries only, LRU order, exact expiry."""

    def __init__(self, max_items: int | None) -> None:
        self.entries: OrderedDict[int, tuple[int, float]] = OrderedDict()
        self.max_items = max_items

    def purge(self, now: float) -> None:
        for key in [k for k, (_, when) in self.entries.items() if now >= when]:
            del self.entries[key]

    def put(self, key: int, value: int, when: float, now: float) -> None:
        self.purge(now)
        if key in self.entries:
            del self.entries[key]
        elif self.max_items is not None and len(self.entries) >= self.max_items:
            self.entries.popitem(last=False)
        self.entries[key] = (value, when)

    def get(self, key: int, now: float) -> int | None:
        self.purge(now)
        if key not in self.entries:
            return None
        self.entries.move_to_end(key)
        return self.entries[key][0]


keys = st.integers(min_value=0, max_value=12)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, st.integers(), st.sampled_from([None, 1.0, 3.0, 50.0])),
        st.tuples(st.just("get"), keys),
        st.tuples(st.just("del"), keys),
        st.tuples(st.just("tick"), st.sampled_from([0.5, 1.0, 2.5, 10.0])),
        st.tuples(st.just("expire")),
    ),
    max_size=60,
)


def run_against_model(ops: list[tuple[Any, ...]], max_items: int | None, ttl: float) -> None:
    clock = FakeClock()
    cache: TTLCache[int, int] = TTLCache(ttl=ttl, max_items=max_items, timer=clock)
    model = Model(max_items)
    hits = misses = 0
    for op in ops:
        now = clock()
        if op[0] == "put":
            _, key, value, item_ttl = op
            cache.put(key, value, ttl=item_ttl)
            model.put(key, value, now + (item_ttl or ttl), now)
        elif op[0] == "get":
            expected = model.get(op[1], now)
            assert cache.get(op[1]) == expected
            hits, misses = (hits + 1, misses) if expected is not None else (hits, misses + 1)
        elif op[0] == "del":
            model.purge(now)
            if op[1] in model.entries:
                del model.entries[op[1]]
                del cache[op[1]]
            else:
                with pytest.raises(KeyError):
                    del cache[op[1]]
        elif op[0] == "tick":
            clock.advance(op[1])
        else:
            cache.expire()
            model.purge(now)
            assert len(cache) == len(model.entries)
        model.purge(clock())
        assert list(cache) == list(model.entries)
        assert all((key in cache) == (key in model.entries) for key in range(13))
        assert len(cache) >= len(model.entries)
    stats = cache.statistics()
    assert (stats.hits, stats.misses) == (hits, misses)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_matches_reference_model_without_capacity_pressure(ops: list[tuple[Any, ...]]) -> None:
    run_against_model(ops, max_items=None, ttl=5.0)


@settings(max_examples=150, deadline=None)
@given(operations, st.integers(min_value=1, max_value=6))
def test_matches_reference_model_lru_without_expiry(
    ops: list[tuple[Any, ...]], max_items: int
) -> None:
    # Entries never expire here (ttl far beyond the ticks), so LRU order decides alone.
    no_expiry = [op if op[0] != "put" else (*op[:3], None) for op in ops]
    run_against_model(no_expiry, max_items=max_items, ttl=1e9)


@settings(max_examples=100, deadline=None)
@given(operations, st.integers(min_value=1, max_value=6))
def test_bounds_hold_with_expiry_and_capacity(ops: list[tuple[Any, ...]], max_items: int) -> None:
    clock = FakeClock()
    cache: TTLCache[int, int] = TTLCache(ttl=5.0, max_items=max_items, timer=clock)
    last: dict[int, tuple[int, float]] = {}
    for op in ops:
        if op[0] == "put":
            _, key, value, item_ttl = op
            cache.put(key, value, ttl=item_ttl)
            last[key] = (value, clock() + (item_ttl or 5.0))
        elif op[0] == "get":
            got = cache.get(op[1])
            if got is not None:  # anything returned is the latest value and still live
                assert last[op[1]][0] == got
                assert clock() < last[op[1]][1]
        elif op[0] == "tick":
            clock.advance(op[1])
        assert len(cache) <= max_items


@pytest.mark.parametrize("max_bytes", [None, 10, 10_000])
def test_an_unhashable_key_is_reported_as_such_whatever_the_byte_limit(
    max_bytes: int | None,
) -> None:
    cache: TTLCache[Any, str] = TTLCache(max_items=10, max_bytes=max_bytes)
    with pytest.raises(TypeError, match=r"unhashable|must be hashable"):
        cache.put(["a", "list"], "value")
    with pytest.raises(TypeError, match=r"unhashable|must be hashable"):
        cache.add_batch([(["a", "list"], "value")])
    assert len(cache) == 0
