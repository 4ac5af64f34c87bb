"""Find a SessionTable slot by session id without a Python object per session.

An open-addressing hash table of slot numbers in one ``array('i')``: an entry holds slot + 1
(0 is empty, -1 a tombstone left by a removal so that probes keep going). The ids themselves
stay in the table's id column; a probe compares the id stored for the candidate slot. The
position comes from Python's hash of the id bytes, which is salted per process (SipHash), so
ids chosen by a client cannot be made to collide on purpose. The index is rebuilt before it
would pass half full, counting tombstones, which keeps probes short.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable
from typing import Final

__all__ = ["IdIndex"]

_EMPTY: Final = 0  # no slot (entries hold slot + 1)
_TOMBSTONE: Final = -1  # a removed slot: keep probing


def _size_for(count: int) -> int:
    """A power of two at least twice ``count``: load factor <= 1/2."""
    size = 8
    while size < 2 * count:
        size <<= 1
    return size


class IdIndex:
    """Slot numbers by id, for ids of ``width`` bytes kept in the column ``ids``."""

    __slots__ = ("_entries", "_used", "_width", "ids")

    def __init__(self, ids: memoryview, width: int, capacity: int) -> None:
        #: The table's id column: slot ``s`` holds its id at ``ids[s * width : (s + 1) * width]``.
        #: The table replaces it when it grows (and then rebuilds the index).
        self.ids = ids
        self._width = width
        self._entries = array("i", bytes(4 * _size_for(capacity)))
        self._used = 0  # live entries + tombstones

    def find(self, key: bytes) -> int | None:
        """The slot whose id is ``key``, or None."""
        entries = self._entries
        ids = self.ids
        width = self._width
        mask = len(entries) - 1
        position = hash(key) & mask
        # Never full (load <= 1/2), so an empty entry always ends the probe.
        while True:
            entry = entries[position]
            if entry == _EMPTY:
                return None
            if entry != _TOMBSTONE:
                start = (entry - 1) * width
                if ids[start : start + width] == key:
                    return entry - 1
            position = (position + 1) & mask

    def is_full(self) -> bool:
        """True if one more entry would load the index over half: rebuild instead."""
        return (self._used + 1) * 2 > len(self._entries)

    def insert(self, key: bytes, slot: int) -> None:
        """Add ``slot`` under ``key`` (not already present; ``is_full()`` was False)."""
        entries = self._entries
        mask = len(entries) - 1
        position = hash(key) & mask
        while True:
            entry = entries[position]
            if entry == _EMPTY:
                self._used += 1
                entries[position] = slot + 1
                return
            if entry == _TOMBSTONE:  # reused: the load does not grow
                entries[position] = slot + 1
                return
            position = (position + 1) & mask

    def remove(self, key: bytes, slot: int) -> None:
        """Drop ``slot`` from under ``key`` (nothing if it is not there)."""
        entries = self._entries
        mask = len(entries) - 1
        position = hash(key) & mask
        wanted = slot + 1
        while True:
            entry = entries[position]
            if entry == _EMPTY:
                return
            if entry == wanted:
                entries[position] = _TOMBSTONE
                return
            position = (position + 1) & mask

    def rebuild(self, slots: Iterable[int], count: int) -> None:
        """Index exactly ``slots`` (their ids are in ``ids``), sized for ``count`` entries."""
        self._entries = array("i", bytes(4 * _size_for(count)))
        self._used = 0
        ids = self.ids
        width = self._width
        for slot in slots:
            self.insert(bytes(ids[slot * width : (slot + 1) * width]), slot)

    def nbytes(self) -> int:
        return sys.getsizeof(self._entries)
