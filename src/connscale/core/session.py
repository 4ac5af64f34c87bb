"""The session state of an MCP connection, as one object (Session) or as columns (SessionTable).

``Session`` is one ``__slots__`` object per session: convenient, about 150 bytes before its
strings. ``SessionTable`` is the form for 100K-1M sessions: every field lives in a column
indexed by slot, so an idle session costs a few dozen bytes and no Python object at all:

- fixed-width columns: the 16-byte id, transport+phase packed in one byte, ``created_at``
  (a double), and small-int codes into intern tables for the protocol version, the (client
  name, client version) pair and the capabilities. The columns are zeroed anonymous memory
  maps that the kernel commits page by page as slots are first written (``_lazy_memory``);
- intern tables (``_intern``) hold each distinct value once with a reference count, so a
  value no live session uses any more is freed (a client sending a new name per connection
  cannot grow them beyond the live sessions);
- pending request ids and metadata live in sparse dicts holding entries only for the slots
  that have some;
- the optional id index (``_id_index``) is an open-addressing table of slot numbers, so it
  adds no Python object per session either.

Capability sets are interned process-wide (``_capabilities``); their names are re-exported
here, where they have always been importable from.
"""

from __future__ import annotations

import secrets
import sys
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any, Final

from connscale.core._capabilities import (
    EMPTY_CAPABILITIES,
    Capabilities,
    check_json_like,
    intern_capabilities,
)
from connscale.core._id_index import IdIndex
from connscale.core._intern import InternTable
from connscale.core._lazy_memory import lazy_zeroed, regrown
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
    """Where the session is in the MCP lifecycle.

    There is no closing or closed phase: a session that ends frees its slot (or is dropped),
    so nothing could ever observe one.
    """

    INITIALIZING = "initializing"
    INITIALIZED = "initialized"


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
# Phase codes 2 and 3 were "closing" and "closed", which nothing ever set; they stay retired
# (the codec refuses them as corrupt) rather than being given to a new phase.
PHASE_CODES: Final = (Phase.INITIALIZING, Phase.INITIALIZED)
# Keyed by str: a StrEnum member and its plain value hash and compare equal.
_TRANSPORT_CODE: Final[dict[str, int]] = {v: code for code, v in enumerate(TRANSPORT_CODES)}
_PHASE_CODE: Final[dict[str, int]] = {value: code for code, value in enumerate(PHASE_CODES)}


def _unknown_field(name: str) -> UnknownFieldError:
    return UnknownFieldError(f"unknown session field {name!r}; fields are: {', '.join(FIELDS)}")


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

_ALLOCATED: Final = 0x80  # state byte: bit 7 = slot in use, bits 2-3 phase, bits 0-1 transport


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
        self._ids = lazy_zeroed(SESSION_ID_BYTES * capacity)
        self._state = lazy_zeroed(capacity)
        self._created = lazy_zeroed(8 * capacity).cast("d")
        self._protocol = lazy_zeroed(4 * capacity).cast("I")
        self._client = lazy_zeroed(4 * capacity).cast("I")
        self._caps = lazy_zeroed(4 * capacity).cast("I")
        self._protocols: InternTable[str] = InternTable()
        self._clients: InternTable[tuple[str | None, str | None]] = InternTable()
        self._capabilities: InternTable[Capabilities] = InternTable()
        self._pending: dict[int, set[int | str]] = {}
        self._metadata: dict[int, dict[str, object]] = {}
        # Slots never used yet are [_high_water, capacity); freed ones wait in _free (LIFO).
        self._free = array("I")
        self._high_water = 0
        self._live = 0
        self._index = IdIndex(self._ids, SESSION_ID_BYTES, capacity) if index_by_id else None

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
        index = self._index
        if index is not None and index.find(new_id) is not None:
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
        if index is not None:
            self._index_add(index, new_id, slot)
        return slot

    def free(self, slot: int) -> None:
        """Release ``slot``, its interned values and any pending ids or metadata."""
        self._check(slot)
        if self._index is not None:
            self._index.remove(self._id_of(slot), slot)
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
        self._ids = regrown(self._ids, SESSION_ID_BYTES * new)
        self._state = regrown(self._state, new)
        self._created = regrown(self._created, 8 * new)
        self._protocol = regrown(self._protocol, 4 * new)
        self._client = regrown(self._client, 4 * new)
        self._caps = regrown(self._caps, 4 * new)
        self._capacity = new
        if self._index is not None:
            self._index.ids = self._ids
            self._index.rebuild(self.slots(), max(self._capacity, 2 * self._live))

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
            index = self._index if new_id != old_id else None
            if index is not None:
                if index.find(new_id) is not None:
                    raise ConfigurationError(f"session id {new_id.hex()} is already in use")
                index.remove(old_id, slot)
            start = slot * SESSION_ID_BYTES
            self._ids[start : start + SESSION_ID_BYTES] = new_id
            if index is not None:
                self._index_add(index, new_id, slot)
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
        return self._index.find(bytes(session_id))

    def _index_add(self, index: IdIndex, session_id: bytes, slot: int) -> None:
        # Rebuilt (with every allocated slot, this one included) rather than loaded over half.
        if index.is_full():
            index.rebuild(self.slots(), max(self._capacity, 2 * self._live))
        else:
            index.insert(session_id, slot)

    # --- memory ---------------------------------------------------------------------------

    def nbytes(self) -> int:
        """Bytes held by the table: columns, intern tables, side dicts and index."""
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
            total += self._index.nbytes()
        total += sys.getsizeof(self._pending) + sys.getsizeof(self._metadata)
        total += sum(sys.getsizeof(ids) for ids in self._pending.values())
        total += self._protocols.nbytes() + self._clients.nbytes() + self._capabilities.nbytes()
        return total

    def __repr__(self) -> str:
        return f"<SessionTable live={self._live} capacity={self._capacity}>"
