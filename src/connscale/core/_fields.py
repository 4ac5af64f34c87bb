"""Every session field, described once: Session, SessionTable and the codec all read this table.

Each of the three works field by field and needs the same facts about a field: how to
check a value, what a new session holds, where SessionTable keeps it and how codec format 1
writes it. ``FIELD_TABLE`` states them once per field, so adding a field is one entry here
(appended at the end: format 1 writes the fields in table order, and old data simply lacks
the new trailing element).

Read field by field at run time, the table would put a loop over fields on every request.
So session.py and codec.py compile it, when they are imported, into straight-line
functions (the way dataclasses writes ``__init__``): one getter and one setter per field for
``SessionTable.get``/``update``, and one function for each job that touches every field
(freeing a slot, copying a slot out, loading a Session, encoding, decoding). The table is
data; what each kind of storage or element means is written once, in the module that
compiles it.
"""

from __future__ import annotations

import linecache
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from itertools import count
from operator import attrgetter
from typing import Annotated, Any, Final

import msgspec

from connscale.core import _wire
from connscale.core._capabilities import EMPTY_CAPABILITIES, Capabilities, intern_capabilities
from connscale.errors import ConfigurationError, UnknownFieldError

__all__ = [
    "FIELDS",
    "FIELD_TABLE",
    "IN_STATE",
    "MISSING",
    "NO_PENDING",
    "PHASE_CODES",
    "REQUIRED",
    "SESSION_ID_BYTES",
    "TRANSPORT_CODES",
    "Bits",
    "Column",
    "Field",
    "InState",
    "Interned",
    "Key",
    "Phase",
    "Sparse",
    "Storage",
    "Transport",
    "Wire",
    "compile_function",
    "convert_fields",
    "request_id",
    "unknown_field",
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


# Small-int codes, shared by SessionTable and the codec; append only, never renumber.
TRANSPORT_CODES: Final = (Transport.TCP, Transport.STDIO, Transport.HTTP, Transport.WS)
# Phase codes 2 and 3 were "closing" and "closed", which nothing ever set; they stay retired
# (the codec refuses them as corrupt) rather than being given to a new phase.
PHASE_CODES: Final = (Phase.INITIALIZING, Phase.INITIALIZED)

#: The one empty pending set: idle sessions share it instead of holding their own.
NO_PENDING: Final[frozenset[int | str]] = frozenset()


# --- checking values -----------------------------------------------------------------------
# Each takes any value and returns it normalised, or raises ConfigurationError saying why.


def _enum_member(kind: type[StrEnum], name: str) -> Callable[[object], Any]:
    # A dict lookup, not kind(value): a str and its member hash and compare equal, and this
    # runs on every update(phase=...).
    members: dict[object, StrEnum] = {member.value: member for member in kind}
    allowed = [member.value for member in kind]

    def member(value: object) -> Any:
        try:
            return members[value]
        except (KeyError, TypeError):  # TypeError: unhashable
            raise ConfigurationError(f"{name} must be one of {allowed}, got {value!r}") from None

    return member


def _session_id(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != SESSION_ID_BYTES:
        raise ConfigurationError(f"session_id must be {SESSION_ID_BYTES} bytes, got {value!r}")
    return bytes(value)


def _new_session_id() -> bytes:
    return os.urandom(SESSION_ID_BYTES)  # what secrets.token_bytes returns, two frames fewer


def _created_at(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"created_at must be epoch seconds (float), got {value!r}")
    return float(value)


def _optional_str(name: str) -> Callable[[object], str | None]:
    def optional_str(value: object) -> str | None:
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(f"{name} must be a str or None, got {type(value).__name__}")
        return value

    return optional_str


def request_id(value: object) -> int | str:
    """A JSON-RPC request id as a session may hold it: an int within 64 bits, or a str."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigurationError(f"a request id is an int or a str, got {value!r}")
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        raise ConfigurationError(f"request id {value} does not fit in 64 bits")
    return value


def _pending(value: object) -> frozenset[int | str]:
    if value is None:
        return NO_PENDING
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigurationError(f"pending must be a set of request ids, got {value!r}")
    return frozenset(request_id(item) for item in value) or NO_PENDING


def _metadata(value: object) -> dict[str, object] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ConfigurationError("metadata must be a dict with str keys, or None")
    return value


def _capabilities(value: object) -> Capabilities:
    return intern_capabilities(value)  # type: ignore[arg-type]  # refuses what is not JSON-like


# --- how SessionTable keeps a field --------------------------------------------------------
# Zeroed storage reads as the field's default, so a fresh slot needs no writes except for
# the fields ``allocate`` takes (the id, the transport and created_at).


@dataclass(frozen=True, slots=True)
class Key:
    """Fixed-width bytes in a column of their own; the id index finds slots by them."""

    width: int


@dataclass(frozen=True, slots=True)
class Column:
    """A fixed-width column of one ``struct`` item code (``"d"``: a double)."""

    code: str


@dataclass(frozen=True, slots=True)
class Bits:
    """``width`` bits at ``shift`` in the slot's state byte: an index into ``codes``.

    The codec writes the same bits (the low nibble of the state byte) as its state element.
    """

    shift: int
    width: int
    codes: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Interned:
    """A 4-byte code into a reference-counted intern table; code 0 is None.

    Fields naming the same ``column`` share one code for the tuple of their values (``part``
    is the position in it): what a client declared in its handshake (protocol version,
    name, version, capabilities) is interned as one tuple, one 4-byte code a session, since
    a fleet of clients declares few distinct tuples. ``empty`` is the value that None (and
    code 0) stands for, when not None.
    """

    column: str
    part: int | None = None
    parts: int = 1
    empty: Any = None


@dataclass(frozen=True, slots=True)
class Sparse:
    """A dict slot -> value with entries only for slots not holding the default.

    ``store`` makes the held form of a value (pending: a set, changed in place by
    add/discard_pending), ``load`` the field value from it (a frozenset copy). ``copy`` is
    applied where a value crosses between a SessionTable and a Session object, so that the
    two never share a mutable value.
    """

    store: Callable[[Any], Any] | None = None
    load: Callable[[Any], Any] | None = None
    copy: Callable[[Any], Any] | None = None


Storage = Key | Column | Bits | Interned | Sparse


# --- how codec format 1 writes a field -----------------------------------------------------


class _Required:
    __slots__ = ()

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()


@dataclass(frozen=True, slots=True)
class Wire:
    """One element of the format-1 MessagePack array.

    msgspec checks the element against ``type``. An element holding ``default`` is left out
    when nothing after it is written, and reads back as the field's default. ``encode`` and
    ``decode`` convert a value that is not the default (None: as is). With ``codes``, a
    value found in them is written as its index (one byte), any other as it is.
    """

    type: Any
    default: Any = REQUIRED
    encode: Callable[[Any], Any] | None = None
    decode: Callable[[Any], Any] | None = None
    codes: tuple[Any, ...] | None = None


@dataclass(frozen=True, slots=True)
class InState:
    """The field is written as its ``Bits`` in the state element (``transport | phase << 2``),
    which stands where the first such field stands in the table."""


IN_STATE: Final = InState()


# --- the table -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """Everything Session, SessionTable and the codec need to know about one field."""

    name: str
    #: Checks and normalises a value (ConfigurationError when it is bad).
    convert: Callable[[Any], Any]
    #: What a new session holds (and what zeroed table storage reads as).
    default: Any
    storage: Storage
    wire: Wire | InState
    #: Makes a fresh default when a Session is created without the field (None given).
    factory: Callable[[], Any] | None = None
    #: Its form in ``Session.to_dict()`` (None: as is).
    plain: Callable[[Any], Any] | None = None


def _sorted_ids(pending: frozenset[int | str]) -> list[int | str]:
    return sorted(pending, key=lambda rid: (isinstance(rid, str), rid))


_OPTIONAL_STR: Final = Wire(str | None, default=None)

#: Every session field, in order: Session's slots, to_dict, the codec's elements. Append only.
FIELD_TABLE: Final[tuple[Field, ...]] = (
    Field(
        "session_id",
        _session_id,
        default=None,
        factory=_new_session_id,
        storage=Key(SESSION_ID_BYTES),
        wire=Wire(Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]),
        plain=bytes.hex,
    ),
    Field(
        "transport",
        _enum_member(Transport, "transport"),
        default=Transport.TCP,
        storage=Bits(shift=0, width=2, codes=TRANSPORT_CODES),
        wire=IN_STATE,
        plain=attrgetter("value"),
    ),
    Field(
        "phase",
        _enum_member(Phase, "phase"),
        default=Phase.INITIALIZING,
        storage=Bits(shift=2, width=2, codes=PHASE_CODES),
        wire=IN_STATE,
        plain=attrgetter("value"),
    ),
    Field(
        "created_at",
        _created_at,
        default=None,
        factory=time.time,
        storage=Column("d"),
        wire=Wire(float, encode=_wire.created_at_to_wire),
    ),
    Field(
        "protocol_version",
        _optional_str("protocol_version"),
        default=None,
        storage=Interned("handshake", part=0, parts=4),
        wire=Wire(str | None, default=None, codes=_wire.KNOWN_PROTOCOL_VERSIONS),
    ),
    Field(
        "client_name",
        _optional_str("client_name"),
        default=None,
        storage=Interned("handshake", part=1, parts=4),
        wire=_OPTIONAL_STR,
    ),
    Field(
        "client_version",
        _optional_str("client_version"),
        default=None,
        storage=Interned("handshake", part=2, parts=4),
        wire=_OPTIONAL_STR,
    ),
    Field(
        "capabilities",
        _capabilities,
        default=EMPTY_CAPABILITIES,
        storage=Interned("handshake", part=3, parts=4, empty=EMPTY_CAPABILITIES),
        wire=Wire(
            msgspec.Raw,
            default=_wire.EMPTY_MAP,
            encode=_wire.capabilities_to_wire,
            decode=_wire.capabilities_from_wire,
        ),
        plain=Capabilities.to_dict,
    ),
    Field(
        "pending",
        _pending,
        default=NO_PENDING,
        storage=Sparse(store=set, load=frozenset),
        wire=Wire(
            tuple[int | str, ...],
            default=(),
            encode=_wire.pending_to_wire,
            decode=_wire.pending_from_wire,
        ),
        plain=_sorted_ids,
    ),
    Field(
        "metadata",
        _metadata,
        default=None,
        storage=Sparse(copy=dict),
        wire=Wire(
            dict[str, Any] | None,
            default=None,
            encode=_wire.metadata_checked,
            decode=_wire.metadata_checked,
        ),
    ),
)

#: Every session field name, in table order.
FIELDS: Final = tuple(field.name for field in FIELD_TABLE)
_CONVERTERS: Final = {field.name: field.convert for field in FIELD_TABLE}


def unknown_field(name: str) -> UnknownFieldError:
    return UnknownFieldError(f"unknown session field {name!r}; fields are: {', '.join(FIELDS)}")


def convert_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Every value checked and normalised, before any is set (UnknownFieldError,
    ConfigurationError)."""
    converted = {}
    for name, value in fields.items():
        convert = _CONVERTERS.get(name)
        if convert is None:
            raise unknown_field(name)
        converted[name] = convert(value)
    return converted


# --- compiling -------------------------------------------------------------------------------

_compiled = count()


def compile_function(source: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    """The one function defined in ``source``, its globals ``namespace``.

    The source is registered with linecache, so tracebacks and debuggers show the lines.
    """
    filename = f"<connscale generated {next(_compiled)}>"
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    code = compile(source, filename, "exec")
    scope: dict[str, Callable[..., Any]] = {}
    exec(code, namespace, scope)
    (function,) = scope.values()
    return function
