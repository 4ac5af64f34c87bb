"""lazy_zeroed and regrown: zeroed columns, grown with their contents."""

from __future__ import annotations

from connscale.core._lazy_memory import lazy_zeroed, regrown


def test_lazy_zeroed_is_zeroed_and_writable() -> None:
    column = lazy_zeroed(64, "d")
    assert len(column) == 8
    assert all(value == 0.0 for value in column)
    column[3] = 1.5
    assert column[3] == 1.5
    assert len(lazy_zeroed(0)) == 1  # never an empty map


def test_regrown_keeps_contents_and_format() -> None:
    column = lazy_zeroed(16, "I")
    column[0], column[3] = 7, 9
    grown = regrown(column, 64)
    assert grown.format == "I"
    assert list(grown[:4]) == [7, 0, 0, 9]
    assert len(grown) == 16
    assert grown[15] == 0
