"""The session state of an MCP connection, as one object (Session) or as columns (SessionTable).

``Session`` is one ``__slots__`` object per session: convenient, about 150 bytes before its
strings. ``SessionTable`` is the form for 100K-1M sessions: every field lives in a column
indexed by slot, so an idle session costs a few dozen bytes and no Python object at all:

- fixed-width columns: the 16-byte id, transport+phase packed in one byte, ``created_at``
  (a double), and one code into an intern table for what the client declared in its
  handshake (protocol version, client name and version, capabilities): 29 bytes a slot.
  The columns are zeroed anonymous memory maps that the kernel commits page by page as
  slots are first written (``_lazy_memory``), so a table whose ids are drawn on demand
  (TCP: no header carries them) never commits the id column's pages: 13 bytes a session;
- intern tables (``_intern``) hold each distinct value once with a reference count, so a
  value no live session uses any more is freed (a client sending a new name per connection
  cannot grow them beyond the live sessions);
- pending request ids and metadata live in sparse dicts holding entries only for the slots
  that have some;
- the optional id index (``_id_index``) is an open-addressing table of slot numbers, so it
  adds no Python object per session either.

Which field lives where, and how each is checked, comes from ``_fields.FIELD_TABLE``; the
code below that touches every field is compiled from it when this module is imported (see
``_fields``), so ``get``, ``update``, ``free``, ``session`` and ``load`` run straight-line
code with no loop over fields. Capability sets are interned process-wide
(``_capabilities``); their names are re-exported here, where they have always been.
"""

from __future__ import annotations

import struct
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from connscale.core._capabilities import (
    EMPTY_CAPABILITIES,
    MAX_JSON_DEPTH,
    Capabilities,
    check_json_like,
    intern_capabilities,
)
from connscale.core._fields import (
    FIELD_TABLE,
    FIELDS,
    MISSING,
    NO_PENDING,
    PHASE_CODES,
    SESSION_ID_BYTES,
    TRANSPORT_CODES,
    Bits,
    Column,
    Field,
    Interned,
    Key,
    Phase,
    Sparse,
    Transport,
    compile_function,
    convert_fields,
    unknown_field,
)
from connscale.core._fields import request_id as _request_id
from connscale.core._id_index import IdIndex
from connscale.core._intern import InternTable
from connscale.core._lazy_memory import lazy_zeroed, regrown
from connscale.errors import ConfigurationError, SlotError, TableFullError

# With the names other modules import from here since before the split (the codes, the
# empty capability set, the JSON depth bound).
__all__ = [
    "EMPTY_CAPABILITIES",
    "FIELDS",
    "MAX_JSON_DEPTH",
    "MISSING",
    "NO_PENDING",
    "PHASE_CODES",
    "SESSION_ID_BYTES",
    "TRANSPORT_CODES",
    "Capabilities",
    "Phase",
    "Session",
    "SessionTable",
    "Transport",
    "check_json_like",
    "intern_capabilities",
]

# Public names defined in private modules present themselves where they are imported from:
# reprs, documentation and pickles say connscale.core.session, as before the split.
for _public in (Capabilities, Phase, Transport, check_json_like, intern_capabilities):
    _public.__module__ = __name__

_FIELD_SET: Final = frozenset(FIELDS)
_BY_NAME: Final = {field.name: field for field in FIELD_TABLE}


def _binder(namespace: dict[str, Any], field: Field) -> Callable[[str, Any], str]:
    """A function binding ``value`` in ``namespace`` under a name unique to ``field``."""
    index = FIELD_TABLE.index(field)

    def bind(role: str, value: Any) -> str:
        name = f"_{role}_{index}"
        namespace[name] = value
        return name

    return bind


# --- Session ---------------------------------------------------------------------------------


def _compile_session_init() -> Callable[..., None]:
    namespace: dict[str, Any] = {}
    params = ", ".join(FIELDS)
    lines = [f"def _init_session(self, {params}):"]
    for field in FIELD_TABLE:
        bind = _binder(namespace, field)
        convert = bind("convert", field.convert)
        name = field.name
        if field.factory is None:
            lines.append(f"    self.{name} = {convert}({name})")
        else:
            factory = bind("factory", field.factory)
            lines.append(f"    self.{name} = {factory}() if {name} is None else {convert}({name})")
    return compile_function("\n".join(lines) + "\n", namespace)


_init_session: Final = _compile_session_init()
_PLAIN: Final = tuple((field.name, field.plain) for field in FIELD_TABLE)


class Session:
    """The state of one MCP session: one ``__slots__`` object, fields as attributes."""

    __slots__ = FIELDS

    # The types, for type checkers; how each is checked and stored is in FIELD_TABLE (a test
    # checks that these, and __init__'s parameters, name exactly its fields in its order).
    session_id: bytes
    transport: Transport
    phase: Phase
    created_at: float
    protocol_version: str | None
    client_name: str | None
    client_version: str | None
    capabilities: Capabilities
    pending: frozenset[int | str]
    metadata: dict[str, object] | None

    def __init__(
        self,
        *,
        session_id: bytes | None = None,
        transport: Transport | str = Transport.TCP,
        phase: Phase | str = Phase.INITIALIZING,
        created_at: float | None = None,
        protocol_version: str | None = None,
        client_name: str | None = None,
        client_version: str | None = None,
        capabilities: Mapping[str, Any] | None = None,
        pending: Iterable[int | str] | None = None,
        metadata: dict[str, object] | None = None,
    ) -> None:
        # A new id and the current time unless given; everything checked (ConfigurationError).
        _init_session(
            self,
            session_id,
            transport,
            phase,
            created_at,
            protocol_version,
            client_name,
            client_version,
            capabilities,
            pending,
            metadata,
        )

    def get(self, field: str, default: object = MISSING) -> Any:
        """The value of ``field``; ``default`` instead when given and the value is None."""
        if field not in _FIELD_SET:
            raise unknown_field(field)
        value = getattr(self, field)
        return default if value is None and default is not MISSING else value

    def update(self, **fields: Any) -> None:
        """Set several fields at once; all are checked before any is set."""
        for name, value in convert_fields(fields).items():
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (capabilities as a plain dict, pending as a sorted list)."""
        result = {}
        for name, plain in _PLAIN:
            value = getattr(self, name)
            result[name] = value if plain is None else plain(value)
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Session):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __repr__(self) -> str:
        return (
            f"<Session {self.session_id.hex()} {self.transport.value} {self.phase.value} "
            f"client={self.client_name!r} pending={len(self.pending)}>"
        )


# --- SessionTable: where each field lives -----------------------------------------------------

_ALLOCATED: Final = 0x80  # state byte: bit 7 = slot in use; the Bits fields below it

# The fields allocate() writes, from its arguments; every other field's zeroed storage reads
# as its default, so a fresh slot needs nothing else.
(_KEY,) = (field for field in FIELD_TABLE if isinstance(field.storage, Key))
_TRANSPORT: Final = _BY_NAME["transport"]
_CREATED_AT: Final = _BY_NAME["created_at"]
_ALLOCATE_WRITES: Final = frozenset({_KEY.name, _TRANSPORT.name, _CREATED_AT.name})
assert _KEY.factory is not None and isinstance(_TRANSPORT.storage, Bits)
_new_id: Final = _KEY.factory
_NO_ID: Final = bytes(SESSION_ID_BYTES)  # an id not drawn yet (ids_on_demand)
# Keyed by str: a StrEnum member and its plain value hash and compare equal.
_TRANSPORT_CODE: Final[dict[str, int]] = {v: code for code, v in enumerate(TRANSPORT_CODES)}
_TRANSPORT_SHIFT: Final = _TRANSPORT.storage.shift


def _attr(field: Field) -> str:
    """The SessionTable attribute holding ``field``'s column, codes or dict."""
    storage = field.storage
    if isinstance(storage, Bits):
        return "_state"
    if isinstance(storage, Interned):
        return f"_codes_{storage.column}"
    if isinstance(storage, Sparse):
        return f"_sparse_{field.name}"
    return f"_col_{field.name}"


def _values_attr(storage: Interned) -> str:
    return f"_values_{storage.column}"


def _columns() -> tuple[tuple[str, int, str], ...]:
    """(attribute, bytes per slot, item format) of every fixed-width column."""
    columns = {"_state": (1, "B")}
    for field in FIELD_TABLE:
        storage = field.storage
        if isinstance(storage, Key):
            columns[_attr(field)] = (storage.width, "B")
        elif isinstance(storage, Column):
            columns[_attr(field)] = (struct.calcsize(storage.code), storage.code)
        elif isinstance(storage, Interned):
            columns[_attr(field)] = (4, "I")
    return tuple((attr, size, code) for attr, (size, code) in columns.items())


_COLUMNS: Final = _columns()
_INTERN_ATTRS: Final = tuple(
    dict.fromkeys(
        _values_attr(field.storage) for field in FIELD_TABLE if isinstance(field.storage, Interned)
    )
)
_SPARSE_ATTRS: Final = tuple(
    _attr(field) for field in FIELD_TABLE if isinstance(field.storage, Sparse)
)


class SessionTable:
    """Columnar storage of many sessions, addressed by slot number.

    Grows by doubling up to ``max_capacity`` (TableFullError beyond). With
    ``index_by_id=True`` it also finds a slot by session id (``find``); either way it keeps
    no Python object per session.

    With ``addressed=True`` the caller chooses every slot (``allocate(slot=n)``): a
    connection's own number, so that nothing maps connections to slots. The table then
    keeps no free list (the caller knows which numbers are free).

    With ``ids_on_demand=True`` a session gets its random id when first read, not when
    allocated: sessions whose id nobody reads (TCP and stdio, where no header carries it)
    never write the 16-byte id column, so its pages stay uncommitted. An all-zero id means
    "not drawn yet" there. Incompatible with ``index_by_id``, which needs every id at once.
    """

    # Storage the hand-written methods use by name; __init__ makes all of it from FIELD_TABLE.
    _state: memoryview[int]
    _col_session_id: memoryview[int]
    _col_created_at: memoryview[float]
    _sparse_pending: dict[int, set[int | str]]

    def __init__(
        self,
        capacity: int = 1024,
        *,
        max_capacity: int | None = None,
        index_by_id: bool = False,
        ids_on_demand: bool = False,
        addressed: bool = False,
    ) -> None:
        if index_by_id and ids_on_demand:
            raise ConfigurationError(
                "ids_on_demand needs index_by_id=False: the index holds every id at once"
            )
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigurationError(f"capacity must be an int >= 1, got {capacity!r}")
        if max_capacity is not None and (
            isinstance(max_capacity, bool)
            or not isinstance(max_capacity, int)
            or max_capacity < capacity
        ):
            raise ConfigurationError(
                f"max_capacity must be an int >= capacity ({capacity}) or None, "
                f"got {max_capacity!r}"
            )
        self._capacity = capacity
        self._max_capacity = max_capacity
        self._ids_on_demand = ids_on_demand
        self._addressed = addressed
        for attr, size, code in _COLUMNS:
            setattr(self, attr, lazy_zeroed(size * capacity, code))
        for attr in _INTERN_ATTRS:
            setattr(self, attr, InternTable())
        for attr in _SPARSE_ATTRS:
            setattr(self, attr, {})
        # Slots never used yet are [_high_water, capacity); freed ones wait in _free (LIFO).
        self._free = array("I")
        self._high_water = 0
        self._live = 0
        self._index = (
            IdIndex(self._col_session_id, SESSION_ID_BYTES, capacity) if index_by_id else None
        )

    # --- slots ----------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def max_capacity(self) -> int | None:
        return self._max_capacity

    def __len__(self) -> int:
        return self._live

    def __contains__(self, slot: object) -> bool:
        return (
            isinstance(slot, int)
            and 0 <= slot < self._capacity
            and bool(self._state[slot] & _ALLOCATED)
        )

    def slots(self) -> Iterator[int]:
        """The allocated slots, in slot order."""
        state = self._state
        return (slot for slot in range(self._high_water) if state[slot] & _ALLOCATED)

    def _check(self, slot: int) -> None:
        """Raise SlotError unless ``slot`` is allocated. The hot methods test the usual case
        inline and call this only to say what is wrong: one frame fewer per call, and a
        session setup makes several."""
        if not isinstance(slot, int) or not 0 <= slot < self._capacity:
            raise SlotError(f"slot {slot!r} is out of range 0..{self._capacity - 1}")
        if not self._state[slot] & _ALLOCATED:
            raise SlotError(f"slot {slot} is not allocated (never allocated, or freed)")

    def allocate(
        self,
        *,
        transport: Transport | str = Transport.TCP,
        session_id: bytes | None = None,
        created_at: float | None = None,
        slot: int | None = None,
    ) -> int:
        """Take a free slot for a new session (phase ``initializing``) and return it:
        ``slot`` when given (SlotError when it is taken), else any free one."""
        code = _TRANSPORT_CODE.get(transport)
        if code is None:
            code = _TRANSPORT_CODE[_TRANSPORT.convert(transport)]
        if type(session_id) is bytes and len(session_id) == SESSION_ID_BYTES:
            new_id = session_id  # already what the converter would return
        elif session_id is not None:
            new_id = _KEY.convert(session_id)
        elif self._ids_on_demand:
            new_id = None  # drawn by _session_id() when first read
        else:
            new_id = _new_id()
        when = time.time() if created_at is None else _CREATED_AT.convert(created_at)
        index = self._index
        if index is not None and new_id is not None and index.find(new_id) is not None:
            raise ConfigurationError(f"session id {new_id.hex()} is already in this table")
        if slot is not None:
            self._take(slot)
        elif self._addressed:
            raise ConfigurationError("this table is addressed: allocate(slot=...) names the slot")
        elif self._free:
            slot = self._free.pop()
        else:
            if self._high_water == self._capacity:
                self._grow()
            slot = self._high_water
            self._high_water += 1
        self._state[slot] = _ALLOCATED | code << _TRANSPORT_SHIFT
        if new_id is not None:
            start = slot * SESSION_ID_BYTES
            self._col_session_id[start : start + SESSION_ID_BYTES] = new_id
            if index is not None:
                if index.is_full():
                    self._index_add(index, new_id, slot)
                else:
                    index.insert(new_id, slot)
        self._col_created_at[slot] = when
        self._live += 1
        return slot

    def free(self, slot: int) -> None:
        """Release ``slot``, its interned values and any pending ids or metadata."""
        if not (
            type(slot) is int and 0 <= slot < self._capacity and self._state[slot] & _ALLOCATED
        ):
            self._check(slot)
        if self._index is not None:
            self._index.remove(self._id_of(slot), slot)
        elif self._ids_on_demand and self._id_of(slot) != _NO_ID:
            self._write_id(slot, _NO_ID)  # the slot's next session draws an id of its own
        self._state[slot] = 0
        _clear(self, slot)
        if not self._addressed:
            self._free.append(slot)
        self._live -= 1

    def _take(self, slot: int) -> None:
        """Make ``slot`` the next one allocated (growing the table to reach it)."""
        if isinstance(slot, bool) or not isinstance(slot, int) or slot < 0:
            raise SlotError(f"slot must be an int >= 0, got {slot!r}")
        limit = self._max_capacity
        if limit is not None and slot >= limit:
            raise TableFullError(f"slot {slot} is beyond this table's max_capacity ({limit})")
        while slot >= self._capacity:
            self._grow()
        if self._state[slot] & _ALLOCATED:
            raise SlotError(f"slot {slot} is allocated already")
        if slot >= self._high_water:
            if not self._addressed:  # the numbers skipped are free ones now
                self._free.extend(range(self._high_water, slot))
            self._high_water = slot + 1
        elif not self._addressed:
            self._free.remove(slot)  # linear, but only tables not built for it get here

    def _grow(self) -> None:
        limit = self._max_capacity
        if limit is not None and self._capacity >= limit:
            raise TableFullError(
                f"all {self._capacity} slots are in use (max_capacity={limit}); "
                "free slots or raise max_capacity"
            )
        new = self._capacity * 2 if limit is None else min(self._capacity * 2, limit)
        for attr, size, _ in _COLUMNS:
            setattr(self, attr, regrown(getattr(self, attr), size * new))
        self._capacity = new
        if self._index is not None:
            self._index.ids = self._col_session_id
            self._index.rebuild(self.slots(), max(self._capacity, 2 * self._live))

    # --- fields ---------------------------------------------------------------------------

    def _id_of(self, slot: int) -> bytes:
        start = slot * SESSION_ID_BYTES
        return bytes(self._col_session_id[start : start + SESSION_ID_BYTES])

    def _session_id(self, slot: int) -> bytes:
        """The id of ``slot``, drawn now if the table hands ids out on demand."""
        session_id = self._id_of(slot)
        if session_id == _NO_ID and self._ids_on_demand:
            session_id = _new_id()
            self._write_id(slot, session_id)
        return session_id

    def _write_id(self, slot: int, session_id: bytes) -> None:
        start = slot * SESSION_ID_BYTES
        self._col_session_id[start : start + SESSION_ID_BYTES] = session_id

    def get(self, slot: int, field: str, default: object = MISSING) -> Any:
        """The value of ``field`` for ``slot``; ``default`` instead when given and None."""
        if not (
            type(slot) is int and 0 <= slot < self._capacity and self._state[slot] & _ALLOCATED
        ):
            self._check(slot)
        getter = _GETTERS.get(field)
        if getter is None:
            raise unknown_field(field)
        value = getter(self, slot)
        return default if value is None and default is not MISSING else value

    def update(self, slot: int, **fields: Any) -> None:
        """Set fields of ``slot``; all are checked before any is set."""
        if not (
            type(slot) is int and 0 <= slot < self._capacity and self._state[slot] & _ALLOCATED
        ):
            self._check(slot)
        converted = convert_fields(fields)
        new_id = converted.pop(_KEY.name, None)
        if new_id is not None:
            self._rekey(slot, new_id)  # first: an id already in use refuses the whole update
        last_group = None
        for name, value in converted.items():
            set_group = _SET_GROUP.get(name)
            if set_group is None:
                _SETTERS[name](self, slot, value)
            elif set_group is not last_group:  # sets every part of its tuple given here
                last_group = set_group
                set_group(self, slot, converted)

    def _rekey(self, slot: int, new_id: bytes) -> None:
        old_id = self._id_of(slot)
        if new_id == old_id:
            return
        index = self._index
        if index is not None:
            if index.find(new_id) is not None:
                raise ConfigurationError(f"session id {new_id.hex()} is already in use")
            index.remove(old_id, slot)
        self._write_id(slot, new_id)
        if index is not None:
            self._index_add(index, new_id, slot)

    def add_pending(self, slot: int, request_id: int | str) -> None:
        """Remember an in-flight request id of ``slot``."""
        self._check(slot)
        request_id = _request_id(request_id)
        pending = self._sparse_pending.get(slot)
        if pending is None:
            self._sparse_pending[slot] = {request_id}
        else:
            pending.add(request_id)

    def discard_pending(self, slot: int, request_id: int | str) -> bool:
        """Forget a request id; True if it was pending."""
        self._check(slot)
        pending = self._sparse_pending.get(slot)
        if pending is None or request_id not in pending:
            return False
        pending.discard(request_id)
        if not pending:
            del self._sparse_pending[slot]  # sparse: idle sessions hold no set
        return True

    def pending_count(self, slot: int) -> int:
        self._check(slot)
        pending = self._sparse_pending.get(slot)
        return 0 if pending is None else len(pending)

    # --- whole sessions -------------------------------------------------------------------

    def session(self, slot: int) -> Session:
        """A ``Session`` object with the values of ``slot`` (a copy, not a view)."""
        if not (
            type(slot) is int and 0 <= slot < self._capacity and self._state[slot] & _ALLOCATED
        ):
            self._check(slot)
        return _snapshot(self, slot)

    def load(self, session: Session) -> int:
        """Allocate a slot holding the values of ``session`` and return it."""
        slot = self.allocate(
            transport=session.transport,
            session_id=session.session_id,
            created_at=session.created_at,
        )
        try:
            _fill(self, slot, session)
        except BaseException:
            self.free(slot)
            raise
        return slot

    # --- id index -------------------------------------------------------------------------

    def find(self, session_id: bytes) -> int | None:
        """The slot holding ``session_id``, or None; needs ``index_by_id=True``."""
        if self._index is None:
            raise ConfigurationError("find() needs a SessionTable built with index_by_id=True")
        if not isinstance(session_id, bytes | bytearray) or len(session_id) != SESSION_ID_BYTES:
            return None
        return self._index.find(bytes(session_id))

    def _index_add(self, index: IdIndex, session_id: bytes, slot: int) -> None:
        # Rebuilt (with every allocated slot, this one included) rather than loaded over half.
        if index.is_full():
            index.rebuild(self.slots(), max(self._capacity, 2 * self._live))
        else:
            index.insert(session_id, slot)

    # --- memory ---------------------------------------------------------------------------

    def nbytes(self) -> int:
        """Bytes held by the table: columns, intern tables, side dicts (and what they hold,
        shallowly) and index."""
        # Columns count at their reserved size: an upper bound of what the kernel committed.
        total: int = sum(getattr(self, attr).nbytes for attr, _, _ in _COLUMNS)
        total += sys.getsizeof(self._free)
        if self._index is not None:
            total += self._index.nbytes()
        for attr in _SPARSE_ATTRS:
            held: dict[int, object] = getattr(self, attr)
            total += sys.getsizeof(held) + sum(sys.getsizeof(value) for value in held.values())
        total += sum(getattr(self, attr).nbytes() for attr in _INTERN_ATTRS)
        return total

    def __repr__(self) -> str:
        return f"<SessionTable live={self._live} capacity={self._capacity}>"


# --- SessionTable: the per-field code, compiled from FIELD_TABLE -----------------------------
# Each function below reads table ``t`` at slot ``s``. The source is small and regular; print
# ``inspect.getsource`` of any of them to see it.


def _read(
    field: Field,
    bind: Callable[[str, Any], str],
    target: str,
    *,
    copy: bool,
    state: str = "t._state[s]",
    groups: set[str] | None = None,
) -> list[str]:
    """Lines setting ``target`` to ``field``'s value at slot ``s`` (a copy when ``copy``).

    ``state`` is the expression for the slot's state byte; with ``groups``, an interned
    tuple is read once into a local named after its column and reused for its other parts.
    """
    storage = field.storage
    attr = _attr(field)
    if isinstance(storage, Key):
        # The id's bytes straight from its column; a slot whose id is still to be drawn
        # (ids_on_demand: all zero) asks _session_id, which draws and writes it.
        width, no_id = storage.width, bind("no_id", bytes(storage.width))
        return [
            f"{target} = bytes(t.{attr}[s * {width} : s * {width} + {width}])",
            f"if {target} == {no_id} and t._ids_on_demand: {target} = t._session_id(s)",
        ]
    if isinstance(storage, Column):
        return [f"{target} = t.{attr}[s]"]
    if isinstance(storage, Bits):
        codes = bind("codes", storage.codes)
        mask = (1 << storage.width) - 1
        bits = state if storage.shift == 0 else f"({state} >> {storage.shift})"
        return [f"{target} = {codes}[{bits} & {mask}]"]
    if isinstance(storage, Interned):
        held = f"t.{_values_attr(storage)}.values[t.{attr}[s]]"
        if storage.part is None:
            lines = [f"{target} = {held}"]
            if storage.empty is not None:
                lines.append(f"if {target} is None: {target} = {bind('empty', storage.empty)}")
            return lines
        tuple_of = target  # where the whole tuple is read to
        lines = []
        if groups is not None:
            tuple_of = f"group_{storage.column}"
            if storage.column in groups:
                held = ""
            groups.add(storage.column)
        if held:
            lines.append(f"{tuple_of} = {held}")
        part = f"None if {tuple_of} is None else {tuple_of}[{storage.part}]"
        lines.append(f"{target} = {part}")
        if storage.empty is not None:
            lines.append(f"if {target} is None: {target} = {bind('empty', storage.empty)}")
        return lines
    lines = [f"{target} = t.{attr}.get(s)"]
    held = target
    if storage.load is not None:
        held = f"{bind('load', storage.load)}({held})"
    if copy and storage.copy is not None:
        held = f"{bind('copy', storage.copy)}({held})"
    if held != target:
        default = bind("default", field.default)
        lines.append(f"{target} = {default} if {target} is None else {held}")
    elif field.default is not None:
        lines.append(f"if {target} is None: {target} = {bind('default', field.default)}")
    return lines


def _is_default(field: Field, bind: Callable[[str, Any], str], value: str) -> str:
    if field.default is None:
        return f"{value} is None"
    return f"{value} == {bind('default', field.default)}"


def _codes_of(storage: Bits) -> dict[Any, int]:
    return {member: code for code, member in enumerate(storage.codes)}


def _write(
    field: Field, bind: Callable[[str, Any], str], value: str, *, fresh: bool = False
) -> list[str]:
    """Lines storing the checked ``value`` as ``field`` of allocated slot ``s``; ``fresh``:
    the slot holds only defaults so far (load)."""
    storage = field.storage
    attr = _attr(field)
    if isinstance(storage, Key):
        return [f"t._rekey(s, {value})"]
    if isinstance(storage, Column):
        return [f"t.{attr}[s] = {value}"]
    if isinstance(storage, Bits):
        code = bind("code", _codes_of(storage))
        if fresh:
            return [f"t._state[s] |= {code}[{value}] << {storage.shift}"]
        keep = 0xFF ^ (((1 << storage.width) - 1) << storage.shift)
        return [f"t._state[s] = t._state[s] & {keep} | {code}[{value}] << {storage.shift}"]
    if isinstance(storage, Interned):
        values = f"t.{_values_attr(storage)}"
        if storage.part is not None:
            nones = bind("nones", (None,) * storage.parts)
            mine = value
            if storage.empty is not None:  # held as None, so that a fresh slot is code 0
                mine = f"(None if {value} is {bind('empty', storage.empty)} else {value})"
            parts = ", ".join(
                mine if i == storage.part else f"old[{i}]" for i in range(storage.parts)
            )
            interned = f"None if new == {nones} else new"
            lines = [f"old = {values}.values[t.{attr}[s]] or {nones}", f"new = ({parts},)"]
        elif storage.empty is not None:
            lines, interned = [], f"None if {value} is {bind('empty', storage.empty)} else {value}"
        else:
            lines, interned = [], value
        if fresh:
            return [*lines, f"t.{attr}[s] = {values}.acquire({interned})"]
        return [
            *lines,
            f"code = {values}.acquire({interned})",  # before the release: same value, same code
            f"{values}.release(t.{attr}[s])",
            f"t.{attr}[s] = code",
        ]
    stored = value if storage.store is None else f"{bind('store', storage.store)}({value})"
    if fresh:
        return [f"if not ({_is_default(field, bind, value)}):", f"    t.{attr}[s] = {stored}"]
    return [
        f"if {_is_default(field, bind, value)}:",
        f"    t.{attr}.pop(s, None)",
        "else:",
        f"    t.{attr}[s] = {stored}",
    ]


def _compile_getter(field: Field) -> Callable[[SessionTable, int], Any]:
    namespace: dict[str, Any] = {}
    bind = _binder(namespace, field)
    lines = [f"def get_{field.name}(t, s):"]
    lines += [f"    {line}" for line in _read(field, bind, "value", copy=False)]
    lines.append("    return value")
    return compile_function("\n".join(lines) + "\n", namespace)


def _compile_setter(field: Field) -> Callable[[SessionTable, int, Any], None]:
    namespace: dict[str, Any] = {}
    bind = _binder(namespace, field)
    lines = [f"def set_{field.name}(t, s, value):"]
    lines += [f"    {line}" for line in _write(field, bind, "value")]
    return compile_function("\n".join(lines) + "\n", namespace)


def _compile_group_setter(column: str) -> Callable[[SessionTable, int, dict[str, Any]], None]:
    """update() of several parts of one interned tuple: the parts found in the checked
    values ``c`` replace theirs, the others stay, and the new tuple is interned once (one
    setter per part would intern a tuple for each)."""
    members = [
        field
        for field in FIELD_TABLE
        if isinstance(field.storage, Interned) and field.storage.column == column
    ]
    namespace: dict[str, Any] = {"_keep": MISSING}
    storage = members[0].storage
    assert isinstance(storage, Interned)
    attr, values = _attr(members[0]), f"t.{_values_attr(storage)}"
    nones = _binder(namespace, members[0])("nones", (None,) * storage.parts)
    lines = [f"def set_{column}(t, s, c):", f"    old = {values}.values[t.{attr}[s]] or {nones}"]
    for field in members:
        part = field.storage
        assert isinstance(part, Interned) and part.part is not None
        value = f"v{part.part}"
        lines += [
            f"    {value} = c.get({field.name!r}, _keep)",
            f"    if {value} is _keep: {value} = old[{part.part}]",
        ]
        if part.empty is not None:  # held as None (see _write)
            empty = _binder(namespace, field)("empty", part.empty)
            lines.append(f"    elif {value} is {empty}: {value} = None")
    parts = ", ".join(f"v{index}" for index in range(storage.parts))
    lines += [
        f"    new = ({parts},)",
        f"    code = {values}.acquire(None if new == {nones} else new)",
        f"    {values}.release(t.{attr}[s])",
        f"    t.{attr}[s] = code",
    ]
    return compile_function("\n".join(lines) + "\n", namespace)


def _compile_clear() -> Callable[[SessionTable, int], None]:
    """free(): drop every value of slot ``s`` (the caller zeroes the state byte)."""
    lines = ["def clear(t, s):"]
    released: set[str] = set()
    for field in FIELD_TABLE:
        storage = field.storage
        attr = _attr(field)
        if isinstance(storage, Column):
            lines.append(f"    t.{attr}[s] = 0")
        elif isinstance(storage, Interned) and attr not in released:
            released.add(attr)
            lines += [
                f"    code = t.{attr}[s]",
                "    if code:",
                f"        t.{_values_attr(storage)}.release(code)",
                f"        t.{attr}[s] = 0",
            ]
        elif isinstance(storage, Sparse):
            lines.append(f"    t.{attr}.pop(s, None)")
    return compile_function("\n".join(lines) + "\n", {})


def _compile_snapshot() -> Callable[[SessionTable, int], Session]:
    """session(): a Session holding copies of slot ``s``'s values."""
    namespace: dict[str, Any] = {"Session": Session}
    lines = ["def snapshot(t, s):", "    x = Session.__new__(Session)", "    state = t._state[s]"]
    groups: set[str] = set()
    for field in FIELD_TABLE:
        bind = _binder(namespace, field)
        read = _read(field, bind, "value", copy=True, state="state", groups=groups)
        lines += [f"    {line}" for line in read]
        lines.append(f"    x.{field.name} = value")
    lines.append("    return x")
    return compile_function("\n".join(lines) + "\n", namespace)


def _compile_fill() -> Callable[[SessionTable, int, Session], None]:
    """load(): check every field of Session ``x`` that allocate did not write, then store
    them all in the fresh slot ``s`` (where everything reads as its default)."""
    namespace: dict[str, Any] = {}
    lines = ["def fill(t, s, x):"]
    stores: list[str] = []
    groups: dict[str, list[str | None]] = {}  # interned column -> its parts' local names
    for field in FIELD_TABLE:
        if field.name in _ALLOCATE_WRITES:
            continue
        bind = _binder(namespace, field)
        value = f"v{FIELD_TABLE.index(field)}"
        lines.append(f"    {value} = {bind('convert', field.convert)}(x.{field.name})")
        storage = field.storage
        if isinstance(storage, Sparse) and storage.copy is not None:
            copy = bind("copy", storage.copy)
            lines.append(f"    if {value} is not None: {value} = {copy}({value})")
        if isinstance(storage, Interned) and storage.part is not None:
            if storage.empty is not None:  # held as None (see _write)
                empty = bind("empty", storage.empty)
                lines.append(f"    if {value} is {empty}: {value} = None")
            group = groups.setdefault(storage.column, [None] * storage.parts)
            group[storage.part] = value
            if None not in group:  # the whole tuple is known: one code for it
                parts = ", ".join(part or "" for part in group)
                nones = bind("nones", (None,) * storage.parts)
                stores += [
                    f"    new = ({parts},)",
                    f"    if new != {nones}:",
                    f"        t.{_attr(field)}[s] = t.{_values_attr(storage)}.acquire(new)",
                ]
        else:
            stores += [f"    {line}" for line in _write(field, bind, value, fresh=True)]
    return compile_function("\n".join(lines + stores) + "\n", namespace)


_GETTERS: Final[dict[str, Callable[[SessionTable, int], Any]]] = {
    field.name: _compile_getter(field) for field in FIELD_TABLE
}
_SETTERS: Final[dict[str, Callable[[SessionTable, int, Any], None]]] = {
    field.name: _compile_setter(field) for field in FIELD_TABLE
}
_GROUP_SETTERS: Final = {
    column: _compile_group_setter(column)
    for column in dict.fromkeys(
        field.storage.column
        for field in FIELD_TABLE
        if isinstance(field.storage, Interned) and field.storage.part is not None
    )
}
#: The group setter of each field that is one part of an interned tuple.
_SET_GROUP: Final = {
    field.name: _GROUP_SETTERS[field.storage.column]
    for field in FIELD_TABLE
    if isinstance(field.storage, Interned) and field.storage.part is not None
}
_clear: Final = _compile_clear()
_snapshot: Final = _compile_snapshot()
_fill: Final = _compile_fill()
