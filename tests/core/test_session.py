"""Session and SessionTable."""

from __future__ import annotations

import sys
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connscale.core.session import (
    EMPTY_CAPABILITIES,
    FIELDS,
    MISSING,
    Phase,
    Session,
    SessionTable,
    Transport,
    intern_capabilities,
)
from connscale.errors import (
    ConfigurationError,
    SlotError,
    TableFullError,
    UnknownFieldError,
)

CAPS = {"roots": {"listChanged": True}, "sampling": {}}


def test_names_stay_importable_from_core_session() -> None:
    # Other modules (and users) import these from here since before the module was split.
    from connscale.core import session as module

    for name in (
        "FIELDS",
        "MISSING",
        "NO_PENDING",
        "SESSION_ID_BYTES",
        "Capabilities",
        "Phase",
        "Session",
        "SessionTable",
        "Transport",
        "check_json_like",
        "intern_capabilities",
        "TRANSPORT_CODES",
        "PHASE_CODES",
        "EMPTY_CAPABILITIES",
        "MAX_JSON_DEPTH",
    ):
        assert hasattr(module, name), name
    assert set(module.__all__) <= set(dir(module))


# --- Session -----------------------------------------------------------------------------------


def test_session_defaults() -> None:
    session = Session()
    assert len(session.session_id) == 16
    assert session.transport is Transport.TCP
    assert session.phase is Phase.INITIALIZING
    assert session.created_at > 0
    assert session.metadata is None
    assert session.pending == frozenset()
    assert session.capabilities is intern_capabilities(None)
    assert Session().session_id != session.session_id


def test_session_has_slots_only() -> None:
    assert not hasattr(Session(), "__dict__")
    assert Session.__slots__ == FIELDS


def test_session_get_and_update() -> None:
    session = Session(transport="ws")
    session.update(phase="initialized", protocol_version="2025-06-18", capabilities=CAPS)
    assert session.get("phase") is Phase.INITIALIZED
    assert session.get("client_name") is None
    assert session.get("client_name", "anonymous") == "anonymous"
    assert session.get("client_name", MISSING) is None
    assert session.capabilities is intern_capabilities(CAPS)
    assert session.transport is Transport.WS


def test_unknown_field_is_an_error() -> None:
    session = Session()
    with pytest.raises(UnknownFieldError, match="nope"):
        session.get("nope")
    with pytest.raises(UnknownFieldError):
        session.update(phase="initialized", nope=1)
    assert session.phase is Phase.INITIALIZING  # nothing was set


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("transport", "carrier-pigeon"),
        ("phase", "half-open"),
        ("phase", "closed"),  # no such phase: a session that ends frees its slot
        ("session_id", b"short"),
        ("created_at", "yesterday"),
        ("client_name", 5),
        ("pending", [1.5]),
        ("pending", "abc"),
        ("metadata", {1: "x"}),
    ],
)
def test_bad_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError):
        Session().update(**{field: value})


def test_session_equality_and_dict() -> None:
    session = Session(created_at=5.0, pending=[3, "a"], metadata={"k": [1]})
    twin = Session(**{name: getattr(session, name) for name in FIELDS})
    assert twin == session
    twin.update(phase="initialized")
    assert twin != session
    assert session.to_dict()["pending"] == [3, "a"]


# --- SessionTable --------------------------------------------------------------------------------


def test_allocate_get_update_free() -> None:
    table = SessionTable(4)
    slot = table.allocate(transport="http", created_at=12.5)
    assert slot in table
    assert len(table) == 1
    assert table.get(slot, "transport") is Transport.HTTP
    assert table.get(slot, "phase") is Phase.INITIALIZING
    assert table.get(slot, "created_at") == 12.5
    table.update(
        slot,
        phase=Phase.INITIALIZED,
        protocol_version="2025-06-18",
        client_name="cli",
        client_version="1.2",
        capabilities=CAPS,
    )
    assert table.get(slot, "client_name") == "cli"
    assert table.get(slot, "client_version") == "1.2"
    assert table.get(slot, "capabilities") is intern_capabilities(CAPS)
    assert table.get(slot, "metadata") is None
    assert table.get(slot, "metadata", {}) == {}
    table.update(slot, client_version=None)
    assert table.get(slot, "client_name") == "cli"
    assert table.get(slot, "client_version") is None
    table.free(slot)
    assert slot not in table
    assert len(table) == 0


def test_slot_errors() -> None:
    table = SessionTable(2)
    with pytest.raises(SlotError, match="not allocated"):
        table.get(0, "phase")
    with pytest.raises(SlotError, match="out of range"):
        table.update(99, phase="initialized")
    slot = table.allocate()
    table.free(slot)
    with pytest.raises(SlotError):
        table.free(slot)
    assert "x" not in table


def test_unknown_field_in_table() -> None:
    table = SessionTable()
    slot = table.allocate()
    with pytest.raises(UnknownFieldError):
        table.get(slot, "colour")
    with pytest.raises(UnknownFieldError):
        table.update(slot, phase="initialized", colour="red")
    assert table.get(slot, "phase") is Phase.INITIALIZING


def test_table_grows_by_doubling_up_to_max_capacity() -> None:
    table = SessionTable(2, max_capacity=5)
    slots = [table.allocate() for _ in range(5)]
    assert slots == [0, 1, 2, 3, 4]
    assert table.capacity == 5
    with pytest.raises(TableFullError):
        table.allocate()
    table.free(2)
    assert table.allocate() == 2  # freed slots are reused


def test_table_validates_configuration() -> None:
    with pytest.raises(ConfigurationError):
        SessionTable(0)
    with pytest.raises(ConfigurationError):
        SessionTable(8, max_capacity=4)
    with pytest.raises(ConfigurationError, match="index_by_id"):
        SessionTable().find(b"x" * 16)


def test_pending_ids_are_sparse() -> None:
    table = SessionTable()
    slot = table.allocate()
    assert table.pending_count(slot) == 0
    table.add_pending(slot, 1)
    table.add_pending(slot, "req-2")
    assert table.get(slot, "pending") == frozenset({1, "req-2"})
    assert table.discard_pending(slot, 1)
    assert not table.discard_pending(slot, 1)
    assert table.discard_pending(slot, "req-2")
    assert table._sparse_pending == {}  # an idle session holds no set
    with pytest.raises(ConfigurationError):
        table.add_pending(slot, 1.5)  # type: ignore[arg-type]


def test_metadata_costs_nothing_until_set() -> None:
    table = SessionTable()
    slot = table.allocate()
    assert table._sparse_metadata == {}
    table.update(slot, metadata={"user": "ann"})
    assert table.get(slot, "metadata") == {"user": "ann"}
    table.free(slot)
    assert table._sparse_metadata == {}


def test_intern_tables_free_values_no_session_uses() -> None:
    table = SessionTable()
    first = table.allocate()
    second = table.allocate()
    table.update(first, client_name="a", client_version="1", protocol_version="p")
    table.update(second, client_name="a", client_version="1", protocol_version="p")
    assert len(table._values_handshake) == 1  # what both declared: one tuple, one code
    table.update(first, client_name="b")
    assert len(table._values_handshake) == 2
    assert table.get(second, "client_name") == "a"
    table.free(second)
    table.free(first)
    assert len(table._values_handshake) == 0


def test_a_whole_handshake_costs_one_code_and_empty_capabilities_none() -> None:
    table = SessionTable()
    slot = table.allocate()
    assert table.get(slot, "capabilities") is EMPTY_CAPABILITIES
    table.update(slot, capabilities={})  # empty: held as code 0, like a fresh slot
    assert table._codes_handshake[slot] == 0 and len(table._values_handshake) == 0
    table.update(slot, protocol_version="p", client_name="c", capabilities=CAPS)
    assert len(table._values_handshake) == 1
    assert table.get(slot, "capabilities") == intern_capabilities(CAPS)
    assert table.get(slot, "client_version") is None
    table.update(slot, capabilities={})
    assert table.get(slot, "capabilities") is EMPTY_CAPABILITIES
    assert table.get(slot, "protocol_version") == "p"


def test_find_by_session_id() -> None:
    table = SessionTable(2, index_by_id=True)
    slots = [table.allocate() for _ in range(50)]  # grows, rebuilds the index
    for slot in slots:
        assert table.find(table.get(slot, "session_id")) == slot
    table.free(slots[10])
    assert table.find(Session().session_id) is None
    assert table.find(b"short") is None
    new_id = b"\x01" * 16
    table.update(slots[11], session_id=new_id)
    assert table.find(new_id) == slots[11]
    with pytest.raises(ConfigurationError, match="already"):
        table.allocate(session_id=new_id)


def test_ids_on_demand_are_drawn_when_first_read() -> None:
    table = SessionTable(4, ids_on_demand=True)
    first, second = table.allocate(), table.allocate()
    assert bytes(table._col_session_id) == bytes(4 * 16)  # nothing written at allocation
    first_id = table.get(first, "session_id")
    assert len(first_id) == 16 and first_id != bytes(16)
    assert table.get(first, "session_id") == first_id  # drawn once, then kept
    assert table.session(first).session_id == first_id
    assert table.get(second, "session_id") not in (first_id, bytes(16))
    table.free(first)
    again = table.allocate()
    assert again == first  # the freed slot is reused...
    assert table.get(again, "session_id") not in (first_id, bytes(16))  # ...with a new id
    given = b"\x07" * 16
    assert table.get(table.allocate(session_id=given), "session_id") == given
    table.update(second, session_id=b"\x09" * 16)
    assert table.get(second, "session_id") == b"\x09" * 16


def test_ids_on_demand_cannot_be_indexed() -> None:
    with pytest.raises(ConfigurationError, match="ids_on_demand"):
        SessionTable(4, index_by_id=True, ids_on_demand=True)


def test_an_addressed_table_takes_the_slots_its_caller_names() -> None:
    table = SessionTable(4, max_capacity=64, addressed=True)
    assert table.allocate(slot=9) == 9  # grows to reach it
    assert table.capacity == 16 and list(table.slots()) == [9]
    with pytest.raises(SlotError, match="allocated already"):
        table.allocate(slot=9)
    with pytest.raises(ConfigurationError, match="addressed"):
        table.allocate()
    with pytest.raises(TableFullError, match="max_capacity"):
        table.allocate(slot=64)
    for bad in (-1, True, "3"):
        with pytest.raises(SlotError):
            table.allocate(slot=bad)  # type: ignore[arg-type]
    table.free(9)
    assert len(table._free) == 0  # no free list: the caller knows its numbers
    assert table.allocate(slot=9) == 9 and len(table) == 1


def test_a_plain_table_can_also_take_a_named_slot() -> None:
    table = SessionTable(8)
    assert table.allocate(slot=3) == 3
    assert sorted(table.allocate() for _ in range(3)) == [0, 1, 2]  # the ones skipped
    assert table.allocate() == 4
    table.free(1)
    assert table.allocate(slot=1) == 1  # a freed slot, named
    assert table.allocate() == 5  # ...is not handed out again


def test_session_round_trip_through_table() -> None:
    table = SessionTable()
    session = Session(
        transport="stdio",
        phase="initialized",
        created_at=1.25,
        protocol_version="2025-03-26",
        client_name="x",
        client_version="9",
        capabilities=CAPS,
        pending=[1, "b"],
        metadata={"k": 1},
    )
    slot = table.load(session)
    assert table.session(slot) == session


def test_no_python_object_per_session_without_index() -> None:
    table = SessionTable(20_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            slot = table.allocate(created_at=1.0)
            table.update(slot, phase="initialized", protocol_version="2025-06-18")
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 20_000 * 4  # columns were preallocated: next to nothing per session


def test_bytes_per_session_at_capacity() -> None:
    table = SessionTable(10_000, index_by_id=True)
    for _ in range(10_000):
        table.allocate(created_at=0.0)
    assert table.nbytes() / 10_000 <= 64


fields_strategy = st.fixed_dictionaries(
    {},
    optional={
        "phase": st.sampled_from(list(Phase)),
        "transport": st.sampled_from(list(Transport)),
        "protocol_version": st.none() | st.sampled_from(["2025-06-18", "x"]),
        "client_name": st.none() | st.text(max_size=5),
        "client_version": st.none() | st.text(max_size=5),
        "capabilities": st.none() | st.sampled_from([{}, CAPS, {"a": [1]}]),
        "pending": st.frozensets(st.integers(0, 5) | st.sampled_from(["a", "b"]), max_size=3),
        "metadata": st.none() | st.fixed_dictionaries({"k": st.integers()}),
    },
)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["alloc", "free", "update"]), fields_strategy)))
def test_table_matches_session_objects(ops: list[tuple[str, dict[str, Any]]]) -> None:
    table = SessionTable(2, index_by_id=True)
    model: dict[int, Session] = {}
    for op, fields in ops:
        if op == "alloc":
            slot = table.allocate(created_at=1.0)
            model[slot] = table.session(slot)
        elif model and op == "free":
            slot = sorted(model)[0]
            table.free(slot)
            del model[slot]
        elif model:
            slot = sorted(model)[-1]
            table.update(slot, **fields)
            model[slot].update(**fields)
    assert len(table) == len(model)
    for slot, session in model.items():
        assert table.session(slot) == session
        assert table.find(session.session_id) == slot
    # Several handshake fields set at once intern their tuple once: no reference is left
    # behind, so the intern table holds exactly the live sessions' distinct tuples.
    live = {
        (s.protocol_version, s.client_name, s.client_version, s.capabilities)
        for s in model.values()
    }
    empty = (None, None, None, EMPTY_CAPABILITIES)
    assert len(table._values_handshake) == len(live - {empty})


def _anonymous_resident_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_table_memory_is_committed_only_as_slots_are_used() -> None:
    # A worker sizes its table for its worst case up front; unused slots must cost nothing,
    # or memory would grow in steps rather than in a straight line with sessions.
    before = _anonymous_resident_bytes()
    table = SessionTable(capacity=1_000_000)
    reserved = table.nbytes()
    assert reserved >= 25_000_000  # 29 B a slot, reserved
    untouched = _anonymous_resident_bytes() - before
    for _ in range(20_000):
        table.allocate()
    used = _anonymous_resident_bytes() - before
    assert untouched < reserved / 20, f"{untouched} bytes committed for an empty table"
    assert used - untouched < 20_000 * 64, f"{used - untouched} bytes for 20,000 sessions"
