"""A compact, versioned, lossless binary form of a Session (MessagePack via msgspec).

Layout (format 1): a MessagePack array whose first element is the format version, then
``session_id`` (bin 16), ``state`` (transport | phase << 2), ``created_at`` (an int when the
float is a whole number, else a float64: exact either way), ``protocol_version`` (a small
int for the versions in KNOWN_PROTOCOL_VERSIONS, else the string), ``client_name``,
``client_version``, ``capabilities`` (canonical map), ``pending`` (array) and ``metadata``
(map). Trailing fields that hold their default are left out, so a fresh session is short.

The elements follow ``_fields.FIELD_TABLE``: its order, and each field's ``Wire`` (the
element's type, default and conversions; the ``Bits`` fields share the state element).
The encoder and the decoder are compiled from it when this module is imported, so a field
appended to the table is written as a new trailing element, and data written before it
reads back with the field's default.

Decoding never trusts its input: the size is checked before any parsing, msgspec validates
every type, and everything is then checked again as a Session would be. Any failure becomes
``CorruptStateError``. Nothing is ever unpickled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final

import msgspec

from connscale.core._fields import (
    FIELD_TABLE,
    REQUIRED,
    Bits,
    Field,
    InState,
    Wire,
    compile_function,
)
from connscale.core._wire import KNOWN_PROTOCOL_VERSIONS
from connscale.core.session import Session
from connscale.errors import ConfigurationError, CorruptStateError

__all__ = [
    "FORMAT_VERSION",
    "KNOWN_PROTOCOL_VERSIONS",
    "MAX_ENCODED_BYTES",
    "decode_session",
    "encode_session",
]

FORMAT_VERSION: Final = 1

#: decode_session refuses larger input before parsing it: bounds time and memory per call.
MAX_ENCODED_BYTES: Final = 256 * 1024

_STATE: Final = "state"


def _elements() -> list[tuple[str, list[Field]]]:
    """The format's elements after the version, in order: (name, the fields it holds)."""
    elements: list[tuple[str, list[Field]]] = []
    state: list[Field] = []
    for field in FIELD_TABLE:
        if isinstance(field.wire, InState):
            if not state:
                elements.append((_STATE, state))
            state.append(field)
        else:
            elements.append((field.name, [field]))
    return elements


_ELEMENTS: Final = _elements()


def _wire(field: Field) -> Wire:
    assert isinstance(field.wire, Wire)
    return field.wire


def _bits(field: Field) -> Bits:
    assert isinstance(field.storage, Bits)
    return field.storage


def _struct_fields() -> list[tuple[str, Any] | tuple[str, Any, Any]]:
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for name, held in _ELEMENTS:
        if name == _STATE:
            fields.append((name, int))
            continue
        wire = _wire(held[0])
        kind = wire.type
        if wire.codes is not None:
            kind = Annotated[int, msgspec.Meta(ge=0, lt=len(wire.codes))] | kind
        if wire.default is REQUIRED:
            fields.append((name, kind))
        else:
            fields.append((name, kind, wire.default))
    return fields


# Format 1 as msgspec sees it; the tag (the first array element) is the version. A later
# format adds its struct to the decoder (msgspec picks by tag).
_SessionV1 = msgspec.defstruct(
    "_SessionV1",
    _struct_fields(),
    array_like=True,
    tag=FORMAT_VERSION,
    forbid_unknown_fields=True,
    frozen=True,
)
_decoder = msgspec.msgpack.Decoder(_SessionV1)
_encoder = msgspec.msgpack.Encoder()


def _is_default(wire: Wire, element: str, name: str, namespace: dict[str, Any]) -> str:
    if wire.default is None:
        return f"{element} is None"
    namespace[name] = wire.default
    return f"{element} == {name}"


def _compile_encoder() -> Callable[[Session], list[Any]]:
    """session -> the list of elements, trailing defaults left out."""
    namespace: dict[str, Any] = {}
    lines = ["def elements(x):"]
    names: list[str] = []
    for position, (name, held) in enumerate(_ELEMENTS):
        element = f"e{position}"
        names.append(element)
        if name == _STATE:
            terms = []
            for field in held:
                bits = _bits(field)
                code = f"_code_{field.name}"
                namespace[code] = {member: code for code, member in enumerate(bits.codes)}
                terms.append(f"{code}[x.{field.name}] << {bits.shift}")
            lines.append(f"    {element} = {' | '.join(terms)}")
            continue
        field = held[0]
        wire = _wire(field)
        lines.append(f"    {element} = x.{field.name}")
        if wire.codes is not None:
            code = f"_code_{field.name}"
            namespace[code] = {member: code for code, member in enumerate(wire.codes)}
            lines.append(f"    {element} = {code}.get({element}, {element})")
        if wire.encode is not None:
            encode = f"_encode_{field.name}"
            namespace[encode] = wire.encode
            if wire.default is None:  # None is written as None: nothing to convert
                lines.append(f"    if {element} is not None: {element} = {encode}({element})")
            else:
                lines.append(f"    {element} = {encode}({element})")
    # Return at the last element not holding its default: no loop, no slicing.
    required = 0
    for position, (name, held) in enumerate(_ELEMENTS):
        if name == _STATE or _wire(held[0]).default is REQUIRED:
            required = position + 1
    for position in range(len(_ELEMENTS) - 1, required - 1, -1):
        wire = _wire(_ELEMENTS[position][1][0])
        condition = _is_default(wire, names[position], f"_wire_default_{position}", namespace)
        written = ", ".join([str(FORMAT_VERSION), *names[: position + 1]])
        lines += [f"    if not ({condition}):", f"        return [{written}]"]
    lines.append(f"    return [{', '.join([str(FORMAT_VERSION), *names[:required]])}]")
    return compile_function("\n".join(lines) + "\n", namespace)


def _compile_decoder() -> Callable[[Any], Session]:
    """A decoded _SessionV1 -> a Session, checking what msgspec's types do not."""
    namespace: dict[str, Any] = {"Session": Session, "CorruptStateError": CorruptStateError}
    lines = ["def build(r):", "    x = Session.__new__(Session)"]
    for name, held in _ELEMENTS:
        if name == _STATE:
            top = max(_bits(field).shift + _bits(field).width for field in held)
            lines += [
                f"    state = r.{_STATE}",
                f"    if not 0 <= state < {1 << top}:",
                '        raise CorruptStateError(f"state code {state} is out of range")',
            ]
            for field in held:
                bits = _bits(field)
                codes = f"_codes_{field.name}"
                namespace[codes] = bits.codes
                lines.append(f"    code = state >> {bits.shift} & {(1 << bits.width) - 1}")
                if len(bits.codes) < 1 << bits.width:
                    # A code past the end is one this build never writes: retired (phase 2
                    # and 3, once "closing" and "closed") or from a later version. Corrupt.
                    lines += [
                        f"    if code >= {len(bits.codes)}:",
                        f'        raise CorruptStateError(f"{field.name} code {{code}} is not'
                        ' in use")',
                    ]
                lines.append(f"    x.{field.name} = {codes}[code]")
            continue
        field = held[0]
        wire = _wire(field)
        if wire.codes is not None:  # msgspec checked that an int is a valid index
            codes = f"_codes_{field.name}"
            namespace[codes] = wire.codes
            lines += [
                f"    value = r.{name}",
                f"    x.{field.name} = {codes}[value] if value.__class__ is int else value",
            ]
            continue
        if wire.decode is None:
            lines.append(f"    x.{field.name} = r.{name}")
            continue
        decode = f"_decode_{field.name}"
        namespace[decode] = wire.decode
        if wire.default is REQUIRED:
            lines.append(f"    x.{field.name} = {decode}(r.{name})")
            continue
        # The wire default (also what an element left out reads as) is the field default.
        default = f"_default_{field.name}"
        namespace[default] = field.default
        condition = _is_default(wire, "value", f"_wire_default_{field.name}", namespace)
        lines += [
            f"    value = r.{name}",
            f"    x.{field.name} = {default} if {condition} else {decode}(value)",
        ]
    lines.append("    return x")
    return compile_function("\n".join(lines) + "\n", namespace)


_encode_elements: Final = _compile_encoder()
_build: Final = _compile_decoder()


def encode_session(session: Session) -> bytes:
    """The compact binary form of ``session`` (see the module docstring for the layout).

    TypeError when ``session`` is not a ``Session`` (a SessionTable row is not one either:
    ``table.session(slot)`` gives the Session to encode).
    """
    if not isinstance(session, Session):
        raise TypeError(
            f"encode_session needs a Session, got {type(session).__name__}; "
            "for a SessionTable row, encode table.session(slot)"
        )
    elements = _encode_elements(session)  # metadata that is not JSON-like: ConfigurationError
    try:
        data = _encoder.encode(elements)
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
        return _build(_decoder.decode(data))
    except CorruptStateError:
        raise
    # Every failure below means the bytes are not a session we wrote: msgspec's own errors,
    # our checks (ConfigurationError), or a nesting too deep for the C decoder.
    except (msgspec.DecodeError, ConfigurationError, RecursionError, ValueError) as exc:
        raise CorruptStateError(f"session state does not decode: {exc}") from exc
