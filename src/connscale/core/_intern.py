"""Distinct values <-> small-int codes with reference counts, for SessionTable columns.

A column of 4-byte codes stands for a column of Python values (a protocol version, a client
name/version pair, a capability set): each distinct value is held once, with a count of the
slots using it, and its code is reused once no slot does. Code 0 always stands for None, so
a zeroed column reads as None everywhere.
"""

from __future__ import annotations

import sys
from array import array
from typing import Generic, TypeVar

__all__ = ["InternTable"]

H = TypeVar("H")


class InternTable(Generic[H]):
    """Distinct values <-> small-int codes with reference counts; code 0 is None."""

    __slots__ = ("_codes", "_free", "_refs", "values")

    def __init__(self) -> None:
        # Public for speed: SessionTable's accessors read ``values[code]`` without a call.
        self.values: list[H | None] = [None]
        self._codes: dict[H, int] = {}
        self._refs = array("I", [0])
        self._free: list[int] = []

    def acquire(self, value: H | None) -> int:
        """The code of ``value`` (0 for None), counting one more user of it."""
        if value is None:
            return 0
        code = self._codes.get(value)
        if code is None:
            if self._free:
                code = self._free.pop()
                self.values[code] = value
            else:
                code = len(self.values)
                self.values.append(value)
                self._refs.append(0)
            self._codes[value] = code
        self._refs[code] += 1
        return code

    def release(self, code: int) -> None:
        """One user fewer of ``code``; the value is dropped when none is left."""
        if code == 0:
            return
        refs = self._refs[code] - 1
        self._refs[code] = refs
        if refs == 0:
            value = self.values[code]
            self.values[code] = None
            del self._codes[value]  # type: ignore[arg-type]
            self._free.append(code)

    def value(self, code: int) -> H | None:
        return self.values[code]

    def __len__(self) -> int:
        return len(self._codes)

    def nbytes(self) -> int:
        return (
            sys.getsizeof(self.values)
            + sys.getsizeof(self._codes)
            + self._refs.buffer_info()[1] * self._refs.itemsize
            + sys.getsizeof(self._free)
        )
