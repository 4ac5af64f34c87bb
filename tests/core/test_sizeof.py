"""estimate_memory / size_breakdown: a sharing-aware walk that agrees with tracemalloc."""

from __future__ import annotations

import fnmatch
import gc
import sys
import tracemalloc

import pytest

from connscale.core.session import Session, intern_capabilities
from connscale.core.sizeof import estimate_memory, size_breakdown

CAPS = {"roots": {"listChanged": True}}


def make(i: int) -> Session:
    # Runtime-built strings and containers: fresh allocations that only this session owns.
    return Session(
        phase="initialized",
        protocol_version="2025-06-18",
        client_name=f"client-{i}",
        client_version=f"{i}.0.{i}",
        capabilities=CAPS,
        pending=[i * 1000, f"req-{i}"],
        metadata={f"user-{i}": [i * 1000, f"name-{i}"], "flags": {"a": i * 7000}},
    )


@pytest.mark.parametrize("count", [50, 1000])
def test_estimate_agrees_with_tracemalloc_within_ten_percent(count: int) -> None:
    intern_capabilities(CAPS)  # the shared set exists before, as in a running server
    make(0)
    # CPython reuses freed dicts, lists (with their key tables) and floats from free lists
    # without calling malloc, so tracemalloc would not see them: empty those lists first.
    ballast = (
        [{"k": i} for i in range(200)],
        [[i] for i in range(200)],
        [i + 0.5 for i in range(200)],
    )
    # Count only allocations with this test in their call stack: a thread left running by
    # another test must not leak its allocations into the comparison.
    # A collection inside the window would run other tests' finalizers with this test on
    # the stack: collect first and keep the collector off while measuring.
    only_ours = [tracemalloc.Filter(True, __file__, all_frames=True)]
    # Filters match file names with fnmatch: compile that pattern now, not inside the window.
    fnmatch.fnmatch(__file__, __file__)
    gc.collect()
    gc.disable()
    tracemalloc.start(32)
    try:
        before = tracemalloc.take_snapshot().filter_traces(only_ours)
        sessions = [make(i + 1) for i in range(count)]
        after = tracemalloc.take_snapshot().filter_traces(only_ours)
    finally:
        tracemalloc.stop()
        gc.enable()
    traced = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    traced -= sys.getsizeof(sessions)  # the list holding them is not session memory
    estimated = sum(estimate_memory(session) for session in sessions)
    del ballast
    assert estimated == pytest.approx(traced, rel=0.10)


def test_breakdown_sums_to_estimate_and_names_every_part() -> None:
    session = make(3)
    parts = size_breakdown(session)
    assert sum(parts.values()) == estimate_memory(session)
    assert parts["object"] == sys.getsizeof(session)
    assert parts["session_id"] == sys.getsizeof(session.session_id)
    assert parts["metadata"] > sys.getsizeof(session.metadata)  # deep, not shallow


def test_shared_parts_cost_nothing() -> None:
    session = make(4)
    parts = size_breakdown(session)
    assert parts["capabilities"] == 0  # interned, shared by every equal session
    assert parts["transport"] == parts["phase"] == 0  # enum members
    assert parts["protocol_version"] == 0  # a literal, shared with the code


def test_a_value_also_held_elsewhere_is_not_counted() -> None:
    shared_metadata = {"big": "x" * 10_000}
    session = Session(metadata=shared_metadata)
    assert size_breakdown(session)["metadata"] == 0
    alone = Session(metadata={"big": "y" * 10_000})
    assert size_breakdown(alone)["metadata"] > 10_000


def test_metadata_costs_nothing_until_set() -> None:
    assert size_breakdown(Session())["metadata"] == 0
    assert size_breakdown(Session())["pending"] == 0  # the empty frozenset is a singleton


def test_an_object_reached_twice_counts_once() -> None:
    inner = ["z" * 1000]
    session = Session(metadata={"a": inner, "b": inner})
    del inner
    assert size_breakdown(session)["metadata"] < 2 * 1000
