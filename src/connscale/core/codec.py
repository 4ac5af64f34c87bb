"""A compact, versioned, lossless binary form of a Session (MessagePack via msgspec).

Layout (format 1): a MessagePack array whose first element is the format version, then
``session_id`` (bin 16), ``state`` (transport | phase << 2), ``created_at`` (an int when the
float is a whole number, else a float64: exact either way), ``protocol_version`` (a small
int for the versions in KNOWN_PROTOCOL_VERSIONS, else the string), ``client_name``,
``client_version``, ``capabilities`` (canonical map), ``pending`` (array) and ``metadata``
(map). Trailing fields that hold their default are left out, so a fresh session is short.

Decoding never trusts its input: the size is checked before any parsing, msgspec validates
every type, and everything is then checked again as a Session would be. Any failure becomes
``CorruptStateError``. Nothing is ever unpickled.
"""

from __future__ import annotations

from typing import Any, Final
from weakref import WeakValueDictionary

import msgspec

from connscale.core.protocol.versions import HANDSHAKE_VERSIONS
from connscale.core.session import (
    NO_PENDING,
    PHASE_CODES,
    SESSION_ID_BYTES,
    TRANSPORT_CODES,
    Capabilities,
    Session,
    check_json_like,
    intern_capabilities,
)
from connscale.errors import ConfigurationError, CorruptStateError

__all__ = [
    "FORMAT_VERSION",
    "KNOWN_PROTOCOL_VERSIONS",
    "MAX_ENCODED_BYTES",
    "decode_session",
    "encode_session",
]

FORMAT_VERSION: Final = 1

#: Protocol versions encoded as one-byte codes. Append only: a code never changes meaning.
KNOWN_PROTOCOL_VERSIONS: Final = HANDSHAKE_VERSIONS
_PROTOCOL_CODE: Final = {version: code for code, version in enumerate(KNOWN_PROTOCOL_VERSIONS)}

#: decode_session refuses larger input before parsing it: bounds time and memory per call.
MAX_ENCODED_BYTES: Final = 256 * 1024

_EMPTY_MAP: Final = b"\x80"
_TRANSPORT_CODE: Final[dict[str, int]] = {t: code for code, t in enumerate(TRANSPORT_CODES)}
_PHASE_CODE: Final[dict[str, int]] = {p: code for code, p in enumerate(PHASE_CODES)}


class _SessionV1(
    msgspec.Struct,
    array_like=True,
    tag=FORMAT_VERSION,
    forbid_unknown_fields=True,
    frozen=True,
):
    """Format 1 as msgspec sees it; the tag (the first array element) is the version."""

    session_id: bytes
    state: int
    created_at: float
    protocol: int | str | None = None
    client_name: str | None = None
    client_version: str | None = None
    capabilities: msgspec.Raw = msgspec.Raw(_EMPTY_MAP)
    pending: tuple[int | str, ...] = ()
    metadata: dict[str, Any] | None = None


# Versions this build can read; a later format adds its struct here (msgspec picks by tag).
_decoder = msgspec.msgpack.Decoder(_SessionV1)
_encoder = msgspec.msgpack.Encoder()
_sorted_encoder = msgspec.msgpack.Encoder(order="sorted")
_caps_decoder = msgspec.msgpack.Decoder(dict[str, Any])

# Packed capabilities -> the interned set: one parse per distinct set, not per session.
_CAPS_BY_PACKED: WeakValueDictionary[bytes, Capabilities] = WeakValueDictionary()


def _packed_capabilities(caps: Capabilities) -> bytes:
    packed = caps._packed
    if packed is None:
        packed = _EMPTY_MAP if not caps else _sorted_encoder.encode(caps.to_dict())
        caps._packed = packed
        _CAPS_BY_PACKED.setdefault(packed, caps)
    return packed


def _pending_order(request_id: int | str) -> tuple[bool, int | str]:
    return (isinstance(request_id, str), request_id)


def encode_session(session: Session) -> bytes:
    """The compact binary form of ``session`` (see the module docstring for the layout)."""
    if not isinstance(session, Session):
        raise TypeError(f"encode_session needs a Session, got {type(session).__name__}")
    created_at = session.created_at
    # A positive whole number as an int is shorter (uint32 for today's epoch) and still exact
    # (-0.0 and non-finite values keep the float form).
    created: float | int = created_at
    if 0 < created_at < 2**63 and created_at.is_integer():
        created = int(created_at)
    protocol = session.protocol_version
    fields: list[Any] = [
        FORMAT_VERSION,
        session.session_id,
        _TRANSPORT_CODE[session.transport] | (_PHASE_CODE[session.phase] << 2),
        created,
        _PROTOCOL_CODE.get(protocol, protocol) if protocol is not None else None,
        session.client_name,
        session.client_version,
        msgspec.Raw(_packed_capabilities(session.capabilities)),
        sorted(session.pending, key=_pending_order) if session.pending else (),
        session.metadata,
    ]
    if session.metadata is not None:
        check_json_like(session.metadata, 0, tuples=False)
    # Leave out trailing defaults: a fresh session then needs no bytes for them.
    defaults = (None, None, None, _EMPTY_MAP, (), None)
    end = len(fields)
    while end > 4:
        value = fields[end - 1]
        default = defaults[end - 5]
        if isinstance(value, msgspec.Raw):
            value = bytes(value)
        if value != default and value is not default:
            break
        end -= 1
    try:
        data = _encoder.encode(fields[:end])
    except (msgspec.EncodeError, OverflowError, TypeError) as exc:
        raise ConfigurationError(f"session cannot be encoded: {exc}") from exc
    if len(data) > MAX_ENCODED_BYTES:
        raise ConfigurationError(
            f"encoded session is {len(data)} bytes, over MAX_ENCODED_BYTES "
            f"({MAX_ENCODED_BYTES}): keep metadata small"
        )
    return data


def decode_session(data: bytes) -> Session:
    """The Session encoded in ``data``; CorruptStateError for anything else, and only that."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CorruptStateError(f"session state must be bytes, got {type(data).__name__}")
    if len(data) > MAX_ENCODED_BYTES:
        raise CorruptStateError(
            f"session state is {len(data)} bytes, over the {MAX_ENCODED_BYTES}-byte limit"
        )
    try:
        record = _decoder.decode(data)
        return _build(record)
    except CorruptStateError:
        raise
    # Every failure below means the bytes are not a session we wrote: msgspec's own errors,
    # our checks (ConfigurationError), or a nesting too deep for the C decoder.
    except (msgspec.DecodeError, ConfigurationError, RecursionError, ValueError) as exc:
        raise CorruptStateError(f"session state does not decode: {exc}") from exc


def _build(record: _SessionV1) -> Session:
    if len(record.session_id) != SESSION_ID_BYTES:
        raise CorruptStateError(f"session id is {len(record.session_id)} bytes, not 16")
    state = record.state
    if not 0 <= state <= 15:
        raise CorruptStateError(f"state code {state} is out of range")
    phase_code = state >> 2
    if phase_code >= len(PHASE_CODES):
        # Codes 2 and 3 were "closing" and "closed": never set, so never in a real session.
        raise CorruptStateError(f"phase code {phase_code} is not in use")
    phase = PHASE_CODES[phase_code]
    protocol = record.protocol
    if isinstance(protocol, int):
        if not 0 <= protocol < len(KNOWN_PROTOCOL_VERSIONS):
            raise CorruptStateError(f"unknown protocol version code {protocol}")
        protocol = KNOWN_PROTOCOL_VERSIONS[protocol]
    packed = bytes(record.capabilities)
    caps = _CAPS_BY_PACKED.get(packed)
    if caps is None:
        caps = intern_capabilities(_caps_decoder.decode(packed))
        # _packed_capabilities caches the canonical form only: other spellings of the same
        # map (key order, int widths) are parsed again rather than filling the cache.
        _packed_capabilities(caps)
    pending = frozenset(record.pending) if record.pending else NO_PENDING
    if len(pending) != len(record.pending):
        raise CorruptStateError("pending request ids repeat")
    for request_id in pending:
        if isinstance(request_id, int) and not -(2**63) <= request_id < 2**64:
            raise CorruptStateError(f"request id {request_id} out of range")
    metadata = record.metadata
    if metadata is not None:
        check_json_like(metadata, 0, tuples=False)
    session = Session.__new__(Session)
    session.session_id = record.session_id
    session.transport = TRANSPORT_CODES[state & 3]
    session.phase = phase
    session.created_at = record.created_at
    session.protocol_version = protocol
    session.client_name = record.client_name
    session.client_version = record.client_version
    session.capabilities = caps
    session.pending = pending
    session.metadata = metadata
    return session
