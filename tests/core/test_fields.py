"""FIELD_TABLE is the one description of a session field: Session, SessionTable and the codec
agree with it, and with each other, on every field."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import msgspec
import pytest

from connscale.core import session as session_module
from connscale.core._fields import FIELD_TABLE, FIELDS, Bits, Interned, Key, Sparse, Wire
from connscale.core.codec import decode_session, encode_session
from connscale.core.session import Phase, Session, SessionTable, Transport, intern_capabilities

#: A value other than the default for every field. Keyed like FIELDS: a field added to the
#: table without a value here fails test_every_field_has_a_non_default_value_here.
NON_DEFAULT: dict[str, Any] = {
    "session_id": bytes(range(16)),
    "transport": Transport.WS,
    "phase": Phase.INITIALIZED,
    "created_at": 1763856000.25,
    "protocol_version": "2025-06-18",
    "client_name": "client",
    "client_version": "2.0",
    "capabilities": intern_capabilities({"roots": {"listChanged": True}}),
    "pending": frozenset({7, "req"}),
    "metadata": {"user": "ann", "tags": [1, 2]},
}

#: What allocate() writes from its own arguments; every other field starts at its default.
ALLOCATE_ARGUMENTS = {"session_id", "transport", "created_at"}


def test_every_field_has_exactly_one_table_entry() -> None:
    names = [field.name for field in FIELD_TABLE]
    assert len(names) == len(set(names))
    assert tuple(names) == FIELDS


def test_every_field_has_a_non_default_value_here() -> None:
    assert tuple(NON_DEFAULT) == FIELDS
    for field in FIELD_TABLE:
        assert field.convert(NON_DEFAULT[field.name]) == NON_DEFAULT[field.name]
        assert NON_DEFAULT[field.name] != field.default, field.name


def test_session_declares_exactly_the_table() -> None:
    # Slots, the typed attributes and __init__'s keyword parameters: same names, same order.
    assert Session.__slots__ == FIELDS
    hints = typing.get_type_hints(Session)
    assert tuple(name for name in hints if name in FIELDS) == FIELDS
    parameters = list(inspect.signature(Session.__init__).parameters.values())[1:]
    assert tuple(parameter.name for parameter in parameters) == FIELDS
    assert all(parameter.kind is inspect.Parameter.KEYWORD_ONLY for parameter in parameters)


def test_session_defaults_are_the_table_defaults() -> None:
    session = Session()
    parameters = inspect.signature(Session.__init__).parameters
    for field in FIELD_TABLE:
        if field.factory is not None:
            assert parameters[field.name].default is None  # None: make a fresh one
            continue
        assert getattr(session, field.name) == field.default, field.name
        assert field.convert(parameters[field.name].default) == field.default, field.name


def test_storage_kinds_are_consistent() -> None:
    keys = [field for field in FIELD_TABLE if isinstance(field.storage, Key)]
    assert len(keys) == 1  # the id index needs exactly one key
    bits = [field.storage for field in FIELD_TABLE if isinstance(field.storage, Bits)]
    used = 0
    for storage in bits:
        assert len(storage.codes) <= 1 << storage.width
        mask = ((1 << storage.width) - 1) << storage.shift
        assert not used & mask, "Bits fields overlap"
        used |= mask
    assert used < 0x80, "bit 7 of the state byte marks an allocated slot"
    groups: dict[str, list[Interned]] = {}
    for field in FIELD_TABLE:
        if isinstance(field.storage, Interned) and field.storage.part is not None:
            groups.setdefault(field.storage.column, []).append(field.storage)
    for parts in groups.values():
        assert sorted(part.part for part in parts) == list(range(parts[0].parts))  # type: ignore[type-var]


def test_zeroed_storage_reads_as_the_default() -> None:
    # The rule that lets a fresh slot skip every field allocate() does not write.
    table = SessionTable(4)
    slot = table.allocate()
    for field in FIELD_TABLE:
        if field.name not in ALLOCATE_ARGUMENTS:
            assert table.get(slot, field.name) == field.default, field.name


def test_wire_elements_follow_the_table() -> None:
    # Format 1: the version, then one element per field in table order, the Bits fields
    # sharing one state element where the first of them stands; defaults only at the end.
    session = Session(**NON_DEFAULT)
    elements = msgspec.msgpack.decode(encode_session(session))
    assert elements[0] == 1
    expected_names: list[str] = []
    for field in FIELD_TABLE:
        name = "state" if not isinstance(field.wire, Wire) else field.name
        if name not in expected_names:
            expected_names.append(name)
    assert len(elements) == 1 + len(expected_names)
    assert elements[1 + expected_names.index("session_id")] == NON_DEFAULT["session_id"]
    state = elements[1 + expected_names.index("state")]
    for field in FIELD_TABLE:
        if isinstance(field.storage, Bits) and not isinstance(field.wire, Wire):
            code = state >> field.storage.shift & ((1 << field.storage.width) - 1)
            assert field.storage.codes[code] == NON_DEFAULT[field.name]


def test_one_session_with_every_field_set_agrees_everywhere() -> None:
    session = Session(**NON_DEFAULT)
    for name, value in NON_DEFAULT.items():
        assert getattr(session, name) == value
        assert session.get(name) == value

    table = SessionTable(2, index_by_id=True)
    loaded = table.load(session)
    updated = table.allocate()
    table.update(updated, **{**NON_DEFAULT, "session_id": b"\x01" * 16})
    for name, value in NON_DEFAULT.items():
        assert table.get(loaded, name) == value, name
        if name != "session_id":
            assert table.get(updated, name) == value, name
    assert table.session(loaded) == session
    assert table.find(NON_DEFAULT["session_id"]) == loaded

    decoded = decode_session(encode_session(session))
    assert decoded == session
    assert decode_session(encode_session(table.session(loaded))) == session
    assert table.session(table.load(Session(**{**NON_DEFAULT, "session_id": b"\x02" * 16}))) == (
        Session(**{**NON_DEFAULT, "session_id": b"\x02" * 16})
    )

    plain = session.to_dict()
    assert tuple(plain) == FIELDS
    assert plain["session_id"] == NON_DEFAULT["session_id"].hex()
    assert plain["transport"] == "ws"
    assert plain["capabilities"] == {"roots": {"listChanged": True}}
    assert plain["pending"] == [7, "req"]


def test_a_freed_slot_keeps_nothing() -> None:
    table = SessionTable(1)
    slot = table.load(Session(**NON_DEFAULT))
    table.free(slot)
    assert table.allocate() == slot
    for field in FIELD_TABLE:
        if field.name not in ALLOCATE_ARGUMENTS:
            assert table.get(slot, field.name) == field.default, field.name
    assert len(table._values_handshake) == 0


def test_table_and_session_share_no_mutable_value() -> None:
    metadata = {"user": "ann"}
    table = SessionTable()
    slot = table.load(Session(metadata=metadata))
    metadata["user"] = "bob"
    copy = table.session(slot)
    assert copy.metadata == {"user": "ann"}
    assert copy.metadata is not table.get(slot, "metadata")
    table.add_pending(slot, 1)
    assert copy.pending == frozenset()  # a copy, not a view


@pytest.mark.parametrize("field", [f for f in FIELD_TABLE if isinstance(f.storage, Sparse)])
def test_sparse_fields_hold_nothing_for_the_default(field: Any) -> None:
    table = SessionTable()
    slot = table.allocate()
    table.update(slot, **{field.name: NON_DEFAULT[field.name]})
    assert len(getattr(table, f"_sparse_{field.name}")) == 1
    table.update(slot, **{field.name: field.default})
    assert getattr(table, f"_sparse_{field.name}") == {}


def test_compiled_code_is_readable() -> None:
    # The compiled accessors show their source in tracebacks and to inspect.
    source = inspect.getsource(session_module._GETTERS["protocol_version"])
    assert source.startswith("def get_protocol_version(t, s):")
