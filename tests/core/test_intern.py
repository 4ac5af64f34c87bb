"""InternTable: one code per distinct value, counted, reused once unused; code 0 is None."""

from __future__ import annotations

from connscale.core._intern import InternTable


def test_equal_values_share_a_code_and_none_is_zero() -> None:
    table: InternTable[str] = InternTable()
    assert table.acquire(None) == 0
    first = table.acquire("a")
    assert table.acquire("a") == first
    assert table.acquire("b") != first
    assert table.value(first) == "a"
    assert table.values[0] is None
    assert len(table) == 2


def test_a_value_is_dropped_with_its_last_user_and_its_code_reused() -> None:
    table: InternTable[str] = InternTable()
    code = table.acquire("a")
    table.acquire("a")
    table.release(code)
    assert table.value(code) == "a"
    table.release(code)
    assert table.value(code) is None
    assert len(table) == 0
    assert table.acquire("c") == code
    table.release(0)  # None has no count: nothing happens
    assert table.nbytes() > 0
