"""How codec format 1 writes each session field: the conversions FIELD_TABLE points to.

Each function turns one field value into its MessagePack element or back. The codec calls
them only for values that are not the field's default (an element holding the wire default
reads back as the field default). Decoding trusts nothing: msgspec has checked the
element's type, and these check the rest (lengths, code ranges, repeats), raising
CorruptStateError, or ConfigurationError where a Session itself would refuse the value
(decode_session turns both into CorruptStateError).
"""

from __future__ import annotations

from typing import Any, Final
from weakref import WeakValueDictionary

import msgspec

from connscale.core._capabilities import Capabilities, check_json_like, intern_capabilities
from connscale.core.protocol.versions import HANDSHAKE_VERSIONS
from connscale.errors import CorruptStateError

__all__ = [
    "EMPTY_MAP",
    "KNOWN_PROTOCOL_VERSIONS",
    "capabilities_from_wire",
    "capabilities_to_wire",
    "created_at_to_wire",
    "metadata_checked",
    "pending_from_wire",
    "pending_to_wire",
]

#: Protocol versions encoded as one-byte codes. Append only: a code never changes meaning.
KNOWN_PROTOCOL_VERSIONS: Final = HANDSHAKE_VERSIONS

#: The empty map: how capabilities that are empty are written.
EMPTY_MAP: Final = msgspec.Raw(b"\x80")

_sorted_encoder = msgspec.msgpack.Encoder(order="sorted")
_caps_decoder = msgspec.msgpack.Decoder(dict[str, Any])

# Packed capabilities -> the interned set: one parse per distinct set, not per session.
_CAPS_BY_PACKED: WeakValueDictionary[bytes, Capabilities] = WeakValueDictionary()


def created_at_to_wire(created_at: float) -> float | int:
    # A positive whole number as an int is shorter (uint32 for today's epoch) and still exact
    # (-0.0 and non-finite values keep the float form).
    if 0 < created_at < 2**63 and created_at.is_integer():
        return int(created_at)
    return created_at


def _packed(caps: Capabilities) -> bytes:
    packed = caps._packed
    if packed is None:
        packed = bytes(EMPTY_MAP) if not caps else _sorted_encoder.encode(caps.to_dict())
        caps._packed = packed
        _CAPS_BY_PACKED.setdefault(packed, caps)
    return packed


def capabilities_to_wire(caps: Capabilities) -> msgspec.Raw:
    packed = caps._packed  # packed once per distinct set: the call only the first time
    return msgspec.Raw(packed if packed is not None else _packed(caps))


def capabilities_from_wire(element: msgspec.Raw) -> Capabilities:
    packed = bytes(element)
    caps = _CAPS_BY_PACKED.get(packed)
    if caps is None:
        caps = intern_capabilities(_caps_decoder.decode(packed))
        # _packed caches the canonical form only: other spellings of the same map (key
        # order, int widths) are parsed again rather than filling the cache.
        _packed(caps)
    return caps


def _pending_order(request_id: int | str) -> tuple[bool, int | str]:
    return (isinstance(request_id, str), request_id)


def pending_to_wire(pending: frozenset[int | str]) -> list[int | str] | tuple[()]:
    return sorted(pending, key=_pending_order) if pending else ()


def pending_from_wire(element: tuple[int | str, ...]) -> frozenset[int | str]:
    pending = frozenset(element)
    if len(pending) != len(element):
        raise CorruptStateError("pending request ids repeat")
    for request_id in pending:
        if isinstance(request_id, int) and not -(2**63) <= request_id < 2**64:
            raise CorruptStateError(f"request id {request_id} out of range")
    return pending


def metadata_checked(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata as is, once it is known to be JSON-like (no tuples: they would come back lists)."""
    check_json_like(metadata, 0, tuples=False)
    return metadata
