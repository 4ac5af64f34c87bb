"""TTLCache against cachetools.TTLCache and a plain dict: bytes per entry, get, set."""

from __future__ import annotations

import cachetools

from benchmarks._common import Row, median_ns, settings, traced_bytes
from connscale.core.cache import TTLCache

TTL = 3600.0


def _fill(cache: object, keys: list[str], values: list[int]) -> object:
    for key, value in zip(keys, values, strict=True):
        cache[key] = value  # type: ignore[index]
    return cache


def measure(quick: bool = False) -> list[Row]:
    number, repeat = settings(quick)
    entries = 20_000 if quick else 100_000
    keys = [f"key-{i}" for i in range(entries)]
    values = [1_000_000 + i for i in range(entries)]  # fresh ints exist before: not counted

    def per_entry(make: object) -> float:
        grown, _ = traced_bytes(lambda: _fill(make(), keys, values))  # type: ignore[operator]
        return grown / entries

    dict_bytes = per_entry(dict)
    ours_bytes = per_entry(lambda: TTLCache(max_items=2 * entries, ttl=TTL))
    ours_counted = per_entry(lambda: TTLCache(max_items=2 * entries, ttl=TTL, max_bytes=1 << 40))
    theirs_bytes = per_entry(lambda: cachetools.TTLCache(2 * entries, TTL))
    rows = [
        Row(
            "cache",
            "TTLCache bytes/entry (ttl)",
            ours_bytes,
            "B",
            "cachetools.TTLCache",
            theirs_bytes,
            "<= 150 B",
        ),
        Row(
            "cache",
            "TTLCache bytes/entry (ttl + max_bytes)",
            ours_counted,
            "B",
            "cachetools.TTLCache",
            theirs_bytes,
            "<= 150 B",
        ),
        Row("cache", "dict bytes/entry (no TTL, no LRU)", dict_bytes, "B", "", None, ""),
    ]

    size = 1000
    hot = [f"key-{i}" for i in range(size)]
    ns = {
        "ours": _fill(TTLCache(max_items=size, ttl=TTL), hot, list(range(size))),
        "theirs": _fill(cachetools.TTLCache(size, TTL), hot, list(range(size))),
        "plain": _fill({}, hot, list(range(size))),
        "ours_full": _fill(TTLCache(max_items=size // 2, ttl=TTL), hot, list(range(size))),
        "theirs_full": _fill(cachetools.TTLCache(size // 2, TTL), hot, list(range(size))),
        "hot": hot,
        "key": hot[size // 2],
    }
    # Keys cycle through twice the capacity in the "insert" rows: every set evicts one.
    ns["cycle"] = __import__("itertools").cycle(hot)
    get_dict = median_ns("plain.get(key)", ns, number=number, repeat=repeat)
    get_theirs = median_ns("theirs.get(key)", ns, number=number, repeat=repeat)
    rows += [
        Row(
            "cache",
            "TTLCache get (hit)",
            median_ns("ours.get(key)", ns, number=number, repeat=repeat),
            "ns",
            "cachetools.TTLCache",
            get_theirs,
            "<= 250 ns",
        ),
        Row("cache", "dict get (hit)", get_dict, "ns", "", None, ""),
    ]
    set_theirs = median_ns("theirs[key] = 1", ns, number=number, repeat=repeat)
    insert_theirs = median_ns("theirs_full[next(cycle)] = 1", ns, number=number, repeat=repeat)
    rows += [
        Row(
            "cache",
            "TTLCache set (existing key)",
            median_ns("ours[key] = 1", ns, number=number, repeat=repeat),
            "ns",
            "cachetools.TTLCache",
            set_theirs,
            "<= 700 ns",
        ),
        Row(
            "cache",
            "TTLCache set (new key, evicts LRU)",
            median_ns("ours_full[next(cycle)] = 1", ns, number=number, repeat=repeat),
            "ns",
            "cachetools.TTLCache",
            insert_theirs,
            "<= 700 ns",
        ),
        Row(
            "cache",
            "dict set",
            median_ns("plain[key] = 1", ns, number=number, repeat=repeat),
            "ns",
            "",
            None,
            "",
        ),
    ]
    return rows
