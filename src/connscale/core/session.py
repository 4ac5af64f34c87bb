"""The session state of an MCP connection, as one object (Session) or as columns (SessionTable).

``Session`` is one ``__slots__`` object per session: convenient, about 150 bytes before its
strings. ``SessionTable`` is the form for 100K-1M sessions: every field lives in a column
indexed by slot, so an idle session costs a few dozen bytes and no Python object at all:

- fixed-width columns: the 16-byte id, transport+phase packed in one byte, ``created_at``
  (a double), and small-int codes into intern tables for the protocol version, the (client
  name, client version) pair and the capabilities. The columns are zeroed anonymous memory
  maps that the kernel commits page by page as slots are first written, so a table sized
  for a worker's worst case costs only what its live slots touched, and memory grows in a
  straight line with sessions instead of in doubling steps;
- intern tables hold each distinct value once with a reference count, so a value no live
  session uses any more is freed (a client sending a new name per connection cannot grow
  them beyond the live sessions);
- pending request ids and metadata live in sparse dicts holding entries only for the slots
  that have some;
- the optional id index is an open-addressing table of slot numbers (``array('i')``) keyed by
  Python's salted hash of the id, so it adds no Python object per session either.
"""

from __future__ import annotations

import math
import mmap
import secrets
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any, Final, Generic, TypeVar
from weakref import WeakValueDictionary

import msgspec

from connscale.errors import (
    ConfigurationError,
    SlotError,
    TableFullError,
    UnknownFieldError,
)

__all__ = [
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
]

SESSION_ID_BYTES: Final = 16


class _Missing:
    """The type of MISSING: "no default given", distinct from None."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: Default of ``get(field, default=MISSING)``: return the stored value, even None.
MISSING: Final = _Missing()


class Transport(StrEnum):
    """How the client is connected."""

    TCP = "tcp"
    STDIO = "stdio"
    HTTP = "http"
    WS = "ws"


class Phase(StrEnum):
    """Where the session is in the MCP lifecycle."""

    INITIALIZING = "initializing"
    INITIALIZED = "initialized"
    CLOSING = "closing"
    CLOSED = "closed"


#: Every session field, in the order the codec and ``Session.__init__`` use.
FIELDS: Final = (
    "session_id",
    "transport",
    "phase",
    "created_at",
    "protocol_version",
    "client_name",
    "client_version",
    "capabilities",
    "pending",
    "metadata",
)
_FIELD_SET: Final = frozenset(FIELDS)

# Small-int codes, shared by SessionTable and the codec; append only, never renumber.
TRANSPORT_CODES: Final = (Transport.TCP, Transport.STDIO, Transport.HTTP, Transport.WS)
PHASE_CODES: Final = (Phase.INITIALIZING, Phase.INITIALIZED, Phase.CLOSING, Phase.CLOSED)
# Keyed by str: a StrEnum member and its plain value hash and compare equal.
_TRANSPORT_CODE: Final[dict[str, int]] = {v: code for code, v in enumerate(TRANSPORT_CODES)}
_PHASE_CODE: Final[dict[str, int]] = {value: code for code, value in enumerate(PHASE_CODES)}


def _unknown_field(name: str) -> UnknownFieldError:
    return UnknownFieldError(f"unknown session field {name!r}; fields are: {', '.join(FIELDS)}")


# --- capabilities ------------------------------------------------------------------------------

_canonical_encoder = msgspec.json.Encoder(order="sorted")


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return Capabilities._from_trusted({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Capabilities):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


class Capabilities(Mapping[str, Any]):
    """An immutable, hashable capability set (JSON-like), compared by content.

    Build it with ``intern_capabilities``: equal sets then share one object. Nested objects
    come back as ``Capabilities`` and arrays as tuples; ``to_dict()`` gives a mutable copy.
    """

    __slots__ = ("__weakref__", "_items", "_key", "_packed")

    _items: dict[str, Any]
    _key: bytes
    _packed: bytes | None  # canonical MessagePack, made on first use by the codec

    def __init__(self, caps: Mapping[str, Any] | None = None) -> None:
        canonical = _canonical(caps)
        self._key = canonical
        self._packed = None
        self._items = {} if canonical == b"{}" else _freeze(msgspec.json.decode(canonical))._items

    @classmethod
    def _from_trusted(cls, items: dict[str, Any]) -> Capabilities:
        obj = cls.__new__(cls)
        obj._items = items
        obj._key = _canonical_encoder.encode(_thaw_items(items))
        obj._packed = None
        return obj

    @property
    def canonical(self) -> bytes:
        """Canonical JSON (sorted keys): the identity of this capability set."""
        return self._key

    def to_dict(self) -> dict[str, Any]:
        """A fresh, mutable deep copy."""
        return _thaw_items(self._items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Capabilities):
            return self._key == other._key
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items()) or self.to_dict() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"Capabilities({self._key.decode()})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (intern_capabilities, (self.to_dict(),))


def _thaw_items(items: dict[str, Any]) -> dict[str, Any]:
    return {key: _thaw(value) for key, value in items.items()}


def _canonical(caps: Mapping[str, Any] | None) -> bytes:
    if caps is None:
        return b"{}"
    if isinstance(caps, Capabilities):
        return caps._key
    if not isinstance(caps, Mapping):
        raise ConfigurationError(
            f"capabilities must be a JSON-like mapping or None, got {type(caps).__name__}"
        )
    check_json_like(caps, depth=0)
    return _canonical_encoder.encode(caps)


MAX_JSON_DEPTH: Final = 32


def check_json_like(value: Any, depth: int, *, tuples: bool = True) -> None:
    """Only what JSON can carry, so that encode/decode and equality are exact."""
    if depth > MAX_JSON_DEPTH:
        raise ConfigurationError(f"JSON-like values nest deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise ConfigurationError(f"integer {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigurationError(f"{value!r} is not a JSON value")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigurationError(f"JSON object keys must be str, got {key!r}")
            check_json_like(item, depth + 1, tuples=tuples)
        return
    if isinstance(value, list) or (tuples and isinstance(value, tuple)):
        for item in value:
            check_json_like(item, depth + 1, tuples=tuples)
        return
    raise ConfigurationError(f"capabilities hold JSON-like values only, not {type(value).__name__}")


# Process-wide intern pool: weak, so a capability set no session uses any more is freed.
_CAPABILITIES: WeakValueDictionary[bytes, Capabilities] = WeakValueDictionary()
EMPTY_CAPABILITIES: Final = Capabilities()
_CAPABILITIES[b"{}"] = EMPTY_CAPABILITIES


def intern_capabilities(caps: Mapping[str, Any] | None) -> Capabilities:
    """The one shared ``Capabilities`` equal to ``caps`` (None and {} give the empty set)."""
    if isinstance(caps, Capabilities):
        existing = _CAPABILITIES.get(caps._key)
        if existing is None:
            _CAPABILITIES[caps._key] = caps
            return caps
        return existing
    key = _canonical(caps)
    found = _CAPABILITIES.get(key)
    if found is None:
        found = Capabilities.__new__(Capabilities)
        found._key = key
        found._items = _freeze(msgspec.json.decode(key))._items
        found._packed = None
        _CAPABILITIES[key] = found
    return found


# --- field values ------------------------------------------------------------------------------


def _transport(value: object) -> Transport:
    try:
        return Transport(value)  # type: ignore[arg-type]  # any value: ValueError if bad
    except ValueError:
        raise ConfigurationError(
            f"transport must be one of {[t.value for t in Transport]}, got {value!r}"
        ) from None


def _phase(value: object) -> Phase:
    try:
        return Phase(value)  # type: ignore[arg-type]  # any value: ValueError if bad
    except ValueError:
        raise ConfigurationError(
            f"phase must be one of {[p.value for p in Phase]}, got {value!r}"
        ) from None


def _session_id(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != SESSION_ID_BYTES:
        raise ConfigurationError(f"session_id must be {SESSION_ID_BYTES} bytes, got {value!r}")
    return bytes(value)


def _created_at(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"created_at must be epoch seconds (float), got {value!r}")
    return float(value)


def _optional_str(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a str or None, got {type(value).__name__}")
    return value


def _request_id(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigurationError(f"a request id is an int or a str, got {value!r}")
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        raise ConfigurationError(f"request id {value} does not fit in 64 bits")
    return value


#: The one empty pending set: idle sessions share it instead of holding their own.
NO_PENDING: Final[frozenset[int | str]] = frozenset()


def _pending(value: object) -> frozenset[int | str]:
    if value is None:
        return NO_PENDING
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigurationError(f"pending must be a set of request ids, got {value!r}")
    return frozenset(_request_id(item) for item in value) or NO_PENDING


def _metadata(value: object) -> dict[str, object] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ConfigurationError("metadata must be a dict with str keys, or None")
    return value


def _convert(name: str, value: Any) -> Any:
    """Check and normalise one field value (raises UnknownFieldError / ConfigurationError)."""
    if name == "transport":
        return _transport(value)
    if name == "phase":
        return _phase(value)
    if name == "session_id":
        return _session_id(value)
    if name == "created_at":
        return _created_at(value)
    if name in ("protocol_version", "client_name", "client_version"):
        return _optional_str(name, value)
    if name == "capabilities":
        return intern_capabilities(value)
    if name == "pending":
        return _pending(value)
    if name == "metadata":
        return _metadata(value)
    raise _unknown_field(name)


# --- Session ---------------------------------------------------------------------------------


class Session:
    """The state of one MCP session: one ``__slots__`` object, fields as attributes."""

    __slots__ = FIELDS

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
        self.session_id = (
            secrets.token_bytes(SESSION_ID_BYTES) if session_id is None else _session_id(session_id)
        )
        self.transport = _transport(transport)
        self.phase = _phase(phase)
        self.created_at = time.time() if created_at is None else _created_at(created_at)
        self.protocol_version = _optional_str("protocol_version", protocol_version)
        self.client_name = _optional_str("client_name", client_name)
        self.client_version = _optional_str("client_version", client_version)
        self.capabilities = intern_capabilities(capabilities)
        self.pending = _pending(pending)
        self.metadata = _metadata(metadata)

    def get(self, field: str, default: object = MISSING) -> Any:
        """The value of ``field``; ``default`` instead when given and the value is None."""
        if field not in _FIELD_SET:
            raise _unknown_field(field)
        value = getattr(self, field)
        return default if value is None and default is not MISSING else value

    def update(self, **fields: Any) -> None:
        """Set several fields at once; all are checked before any is set."""
        converted = {name: _convert(name, value) for name, value in fields.items()}
        for name, value in converted.items():
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (capabilities as a plain dict, pending as a sorted list)."""
        return {
            "session_id": self.session_id.hex(),
            "transport": self.transport.value,
            "phase": self.phase.value,
            "created_at": self.created_at,
            "protocol_version": self.protocol_version,
            "client_name": self.client_name,
            "client_version": self.client_version,
            "capabilities": self.capabilities.to_dict(),
            "pending": sorted(self.pending, key=lambda rid: (isinstance(rid, str), rid)),
            "metadata": self.metadata,
        }

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


# --- SessionTable ----------------------------------------------------------------------------

H = TypeVar("H")


class _InternTable(Generic[H]):
    """Distinct values <-> small-int codes with reference counts; code 0 is None."""

    __slots__ = ("_codes", "_free", "_refs", "_values")

    def __init__(self) -> None:
        self._values: list[H | None] = [None]
        self._codes: dict[H, int] = {}
        self._refs = array("I", [0])
        self._free: list[int] = []

    def acquire(self, value: H | None) -> int:
        if value is None:
            return 0
        code = self._codes.get(value)
        if code is None:
            if self._free:
                code = self._free.pop()
                self._values[code] = value
            else:
                code = len(self._values)
                self._values.append(value)
                self._refs.append(0)
            self._codes[value] = code
        self._refs[code] += 1
        return code

    def release(self, code: int) -> None:
        if code == 0:
            return
        refs = self._refs[code] - 1
        self._refs[code] = refs
        if refs == 0:
            value = self._values[code]
            self._values[code] = None
            del self._codes[value]  # type: ignore[arg-type]
            self._free.append(code)

    def value(self, code: int) -> H | None:
        return self._values[code]

    def __len__(self) -> int:
        return len(self._codes)

    def nbytes(self) -> int:
        import sys

        return (
            sys.getsizeof(self._values)
            + sys.getsizeof(self._codes)
            + self._refs.buffer_info()[1] * self._refs.itemsize
            + sys.getsizeof(self._free)
        )


_ALLOCATED: Final = 0x80  # state byte: bit 7 = slot in use, bits 2-3 phase, bits 0-1 transport
_EMPTY: Final = 0  # id index: no slot (index entries hold slot + 1)
_TOMBSTONE: Final = -1  # id index: a freed slot, keep probing


class SessionTable:
    """Columnar storage of many sessions, addressed by slot number.

    Grows by doubling up to ``max_capacity`` (TableFullError beyond). With
    ``index_by_id=True`` it also finds a slot by session id (``find``); either way it keeps
    no Python object per session.
    """

    def __init__(
        self,
        capacity: int = 1024,
        *,
        max_capacity: int | None = None,
        index_by_id: bool = False,
    ) -> None:
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
        self._ids = _lazy_zeroed(SESSION_ID_BYTES * capacity)
        self._state = _lazy_zeroed(capacity)
        self._created = _lazy_zeroed(8 * capacity).cast("d")
        self._protocol = _lazy_zeroed(4 * capacity).cast("I")
        self._client = _lazy_zeroed(4 * capacity).cast("I")
        self._caps = _lazy_zeroed(4 * capacity).cast("I")
        self._protocols: _InternTable[str] = _InternTable()
        self._clients: _InternTable[tuple[str | None, str | None]] = _InternTable()
        self._capabilities: _InternTable[Capabilities] = _InternTable()
        self._pending: dict[int, set[int | str]] = {}
        self._metadata: dict[int, dict[str, object]] = {}
        # Slots never used yet are [_high_water, capacity); freed ones wait in _free (LIFO).
        self._free = array("I")
        self._high_water = 0
        self._live = 0
        self._index: array[int] | None = None
        self._index_used = 0  # live entries + tombstones
        if index_by_id:
            self._index = array("i", bytes(4 * _index_size(capacity)))

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
    ) -> int:
        """Take a free slot for a new session (phase ``initializing``) and return it."""
        code = _TRANSPORT_CODE.get(transport)
        if code is None:
            code = _TRANSPORT_CODE[_transport(transport)]
        new_id = (
            secrets.token_bytes(SESSION_ID_BYTES) if session_id is None else _session_id(session_id)
        )
        when = time.time() if created_at is None else _created_at(created_at)
        if self._index is not None and self._lookup(new_id) is not None:
            raise ConfigurationError(f"session id {new_id.hex()} is already in this table")
        if self._free:
            slot = self._free.pop()
        else:
            if self._high_water == self._capacity:
                self._grow()
            slot = self._high_water
            self._high_water += 1
        self._state[slot] = _ALLOCATED | code
        start = slot * SESSION_ID_BYTES
        self._ids[start : start + SESSION_ID_BYTES] = new_id
        self._created[slot] = when
        self._live += 1
        if self._index is not None and not self._ensure_index_room():
            self._index_insert(new_id, slot)
        return slot

    def free(self, slot: int) -> None:
        """Release ``slot``, its interned values and any pending ids or metadata."""
        self._check(slot)
        if self._index is not None:
            self._index_remove(self._id_of(slot), slot)
        self._state[slot] = 0
        self._protocols.release(self._protocol[slot])
        self._clients.release(self._client[slot])
        self._capabilities.release(self._caps[slot])
        self._protocol[slot] = self._client[slot] = self._caps[slot] = 0
        self._pending.pop(slot, None)
        self._metadata.pop(slot, None)
        self._free.append(slot)
        self._live -= 1

    def _grow(self) -> None:
        limit = self._max_capacity
        if limit is not None and self._capacity >= limit:
            raise TableFullError(
                f"all {self._capacity} slots are in use (max_capacity={limit}); "
                "free slots or raise max_capacity"
            )
        new = self._capacity * 2 if limit is None else min(self._capacity * 2, limit)
        self._ids = _regrown(self._ids, SESSION_ID_BYTES * new)
        self._state = _regrown(self._state, new)
        self._created = _regrown(self._created, 8 * new)
        self._protocol = _regrown(self._protocol, 4 * new)
        self._client = _regrown(self._client, 4 * new)
        self._caps = _regrown(self._caps, 4 * new)
        self._capacity = new
        if self._index is not None:
            self._rebuild_index()

    # --- fields ---------------------------------------------------------------------------

    def _id_of(self, slot: int) -> bytes:
        start = slot * SESSION_ID_BYTES
        return bytes(self._ids[start : start + SESSION_ID_BYTES])

    def get(self, slot: int, field: str, default: object = MISSING) -> Any:
        """The value of ``field`` for ``slot``; ``default`` instead when given and None."""
        self._check(slot)
        if field == "phase":
            return PHASE_CODES[(self._state[slot] >> 2) & 3]
        if field == "transport":
            return TRANSPORT_CODES[self._state[slot] & 3]
        if field == "pending":
            pending = self._pending.get(slot)
            return NO_PENDING if pending is None else frozenset(pending)
        if field == "session_id":
            return self._id_of(slot)
        if field == "created_at":
            return self._created[slot]
        if field == "capabilities":
            caps = self._capabilities.value(self._caps[slot])
            return EMPTY_CAPABILITIES if caps is None else caps
        if field == "protocol_version":
            value: Any = self._protocols.value(self._protocol[slot])
        elif field in ("client_name", "client_version"):
            client = self._clients.value(self._client[slot])
            value = None if client is None else client[field == "client_version"]
        elif field == "metadata":
            value = self._metadata.get(slot)
        else:
            raise _unknown_field(field)
        return default if value is None and default is not MISSING else value

    def update(self, slot: int, **fields: Any) -> None:
        """Set fields of ``slot``; all are checked before any is set."""
        self._check(slot)
        converted = {name: _convert(name, value) for name, value in fields.items()}
        if "session_id" in converted:
            new_id = converted["session_id"]
            old_id = self._id_of(slot)
            if new_id != old_id and self._index is not None:
                if self._lookup(new_id) is not None:
                    raise ConfigurationError(f"session id {new_id.hex()} is already in use")
                self._index_remove(old_id, slot)
            start = slot * SESSION_ID_BYTES
            self._ids[start : start + SESSION_ID_BYTES] = new_id
            if new_id != old_id and self._index is not None and not self._ensure_index_room():
                self._index_insert(new_id, slot)
        state = self._state[slot]
        if "transport" in converted:
            state = (state & ~3) | _TRANSPORT_CODE[converted["transport"]]
        if "phase" in converted:
            state = (state & ~12) | (_PHASE_CODE[converted["phase"]] << 2)
        self._state[slot] = state
        if "created_at" in converted:
            self._created[slot] = converted["created_at"]
        if "protocol_version" in converted:
            code = self._protocols.acquire(converted["protocol_version"])
            self._protocols.release(self._protocol[slot])
            self._protocol[slot] = code
        if "client_name" in converted or "client_version" in converted:
            old = self._clients.value(self._client[slot]) or (None, None)
            pair = (
                converted.get("client_name", old[0]),
                converted.get("client_version", old[1]),
            )
            code = self._clients.acquire(None if pair == (None, None) else pair)
            self._clients.release(self._client[slot])
            self._client[slot] = code
        if "capabilities" in converted:
            caps = converted["capabilities"]
            code = self._capabilities.acquire(None if caps is EMPTY_CAPABILITIES else caps)
            self._capabilities.release(self._caps[slot])
            self._caps[slot] = code
        if "pending" in converted:
            if converted["pending"]:
                self._pending[slot] = set(converted["pending"])
            else:
                self._pending.pop(slot, None)
        if "metadata" in converted:
            if converted["metadata"] is None:
                self._metadata.pop(slot, None)
            else:
                self._metadata[slot] = converted["metadata"]

    def add_pending(self, slot: int, request_id: int | str) -> None:
        """Remember an in-flight request id of ``slot``."""
        self._check(slot)
        request_id = _request_id(request_id)
        pending = self._pending.get(slot)
        if pending is None:
            self._pending[slot] = {request_id}
        else:
            pending.add(request_id)

    def discard_pending(self, slot: int, request_id: int | str) -> bool:
        """Forget a request id; True if it was pending."""
        self._check(slot)
        pending = self._pending.get(slot)
        if pending is None or request_id not in pending:
            return False
        pending.discard(request_id)
        if not pending:
            del self._pending[slot]  # sparse: idle sessions hold no set
        return True

    def pending_count(self, slot: int) -> int:
        self._check(slot)
        pending = self._pending.get(slot)
        return 0 if pending is None else len(pending)

    # --- whole sessions -------------------------------------------------------------------

    def session(self, slot: int) -> Session:
        """A ``Session`` object with the values of ``slot`` (a copy, not a view)."""
        self._check(slot)
        session = Session.__new__(Session)
        for name in FIELDS:
            setattr(session, name, self.get(slot, name))
        metadata = self._metadata.get(slot)
        session.metadata = None if metadata is None else dict(metadata)
        return session

    def load(self, session: Session) -> int:
        """Allocate a slot holding the values of ``session`` and return it."""
        slot = self.allocate(
            transport=session.transport,
            session_id=session.session_id,
            created_at=session.created_at,
        )
        try:
            self.update(
                slot,
                phase=session.phase,
                protocol_version=session.protocol_version,
                client_name=session.client_name,
                client_version=session.client_version,
                capabilities=session.capabilities,
                pending=session.pending,
                metadata=None if session.metadata is None else dict(session.metadata),
            )
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
        return self._lookup(bytes(session_id))

    def _probe(self, session_id: bytes) -> Iterator[int]:
        index = self._index
        assert index is not None
        mask = len(index) - 1
        # hash() of bytes is salted per process (SipHash): ids chosen by a client cannot be
        # made to collide on purpose.
        position = hash(session_id) & mask
        for _ in range(len(index)):
            yield position
            position = (position + 1) & mask

    def _lookup(self, session_id: bytes) -> int | None:
        index = self._index
        assert index is not None
        ids = self._ids
        for position in self._probe(session_id):
            entry = index[position]
            if entry == _EMPTY:
                return None
            if entry != _TOMBSTONE:
                slot = entry - 1
                start = slot * SESSION_ID_BYTES
                if ids[start : start + SESSION_ID_BYTES] == session_id:
                    return slot
        return None

    def _ensure_index_room(self) -> bool:
        """Rebuild the index (with every allocated slot) if one more entry would load it over
        half, counting tombstones, so probes stay short. True if it was rebuilt."""
        assert self._index is not None
        if (self._index_used + 1) * 2 > len(self._index):
            self._rebuild_index()
            return True
        return False

    def _index_insert(self, session_id: bytes, slot: int) -> None:
        index = self._index
        assert index is not None
        for position in self._probe(session_id):
            entry = index[position]
            if entry in (_EMPTY, _TOMBSTONE):
                if entry == _EMPTY:
                    self._index_used += 1
                index[position] = slot + 1
                return

    def _index_remove(self, session_id: bytes, slot: int) -> None:
        index = self._index
        assert index is not None
        for position in self._probe(session_id):
            entry = index[position]
            if entry == _EMPTY:
                return
            if entry == slot + 1:
                index[position] = _TOMBSTONE
                return

    def _rebuild_index(self) -> None:
        self._index = array("i", bytes(4 * _index_size(max(self._capacity, 2 * self._live))))
        self._index_used = 0
        for slot in self.slots():
            self._index_insert(self._id_of(slot), slot)

    # --- memory ---------------------------------------------------------------------------

    def nbytes(self) -> int:
        """Bytes held by the table: columns, intern tables, side dicts and index."""
        import sys

        # Columns count at their reserved size: an upper bound of what the kernel committed.
        total = sum(
            column.nbytes
            for column in (
                self._ids,
                self._state,
                self._created,
                self._protocol,
                self._client,
                self._caps,
            )
        )
        total += sys.getsizeof(self._free)
        if self._index is not None:
            total += sys.getsizeof(self._index)
        total += sys.getsizeof(self._pending) + sys.getsizeof(self._metadata)
        total += sum(sys.getsizeof(ids) for ids in self._pending.values())
        total += self._protocols.nbytes() + self._clients.nbytes() + self._capabilities.nbytes()
        return total

    def __repr__(self) -> str:
        return f"<SessionTable live={self._live} capacity={self._capacity}>"


def _lazy_zeroed(nbytes: int) -> memoryview:
    """Zeroed memory that the kernel commits page by page when first written.

    ``bytearray(n)`` and ``array(...)`` write every byte up front; an anonymous map does
    not, so an unused tail of a column costs nothing.
    """
    # Private, not the shared default: plain process memory, like the heap.
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    if flags:
        return memoryview(mmap.mmap(-1, max(nbytes, 1), flags=flags))
    return memoryview(mmap.mmap(-1, max(nbytes, 1)))  # platforms without mmap flags


def _regrown(column: memoryview[Any], nbytes: int) -> Any:
    """A larger zeroed column holding the old one's contents (same item format)."""
    grown: memoryview[Any] = _lazy_zeroed(nbytes).cast(column.format)  # type: ignore[call-overload]
    grown[: len(column)] = column
    column.release()
    return grown


def _index_size(capacity: int) -> int:
    """A power of two at least twice ``capacity``: load factor <= 1/2."""
    size = 8
    while size < 2 * capacity:
        size <<= 1
    return size
