"""IdIndex: slots by id over an id column, tombstones, rebuilds, against a dict model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from connscale.core._id_index import IdIndex

WIDTH = 4


def _column(ids: list[bytes]) -> memoryview:
    return memoryview(bytearray(b"".join(ids)))


def test_find_insert_remove() -> None:
    ids = [bytes([i]) * WIDTH for i in range(4)]
    index = IdIndex(_column(ids), WIDTH, capacity=4)
    for slot, key in enumerate(ids):
        assert index.find(key) is None
        index.insert(key, slot)
    assert [index.find(key) for key in ids] == [0, 1, 2, 3]
    index.remove(ids[1], 1)
    assert index.find(ids[1]) is None
    assert index.find(ids[2]) == 2  # probes go on past the tombstone
    index.remove(b"none", 9)  # absent: nothing happens


def test_rebuild_keeps_exactly_the_given_slots() -> None:
    ids = [bytes([i]) * WIDTH for i in range(6)]
    index = IdIndex(_column(ids), WIDTH, capacity=2)
    index.rebuild([0, 2, 5], count=3)
    assert [index.find(key) for key in ids] == [0, None, 2, None, None, 5]


def test_is_full_at_half_load() -> None:
    ids = [bytes([i]) * WIDTH for i in range(8)]
    index = IdIndex(_column(ids), WIDTH, capacity=1)  # 8 entries
    for slot in range(3):
        assert not index.is_full()
        index.insert(ids[slot], slot)
    assert not index.is_full()
    index.insert(ids[3], 3)
    assert index.is_full()  # a fifth entry would pass half of 8


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 15))))
def test_matches_a_dict(ops: list[tuple[bool, int]]) -> None:
    ids = [bytes([i, 255 - i]) * 2 for i in range(16)]
    index = IdIndex(_column(ids), WIDTH, capacity=1)
    model: set[int] = set()
    for add, slot in ops:
        if add and slot not in model:
            if index.is_full():
                model.add(slot)
                index.rebuild(sorted(model), count=len(model))
            else:
                index.insert(ids[slot], slot)
                model.add(slot)
        elif not add and slot in model:
            index.remove(ids[slot], slot)
            model.discard(slot)
    for slot, key in enumerate(ids):
        assert index.find(key) == (slot if slot in model else None)
