"""JSON-RPC 2.0 messages: decode and validate with msgspec, encode replies as bytes.

Decoding never raises: a frame becomes a ``Request``, ``Notification``, ``ClientResponse``
or ``Invalid`` (which carries the error code to answer with). Replies are assembled from
pre-encoded pieces, so answering costs one msgspec encode of the result at most.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import msgspec

from connscale.core.protocol._jsonrpc_shape import envelope_decoder

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "ClientResponse",
    "Invalid",
    "Message",
    "Notification",
    "Request",
    "RequestId",
    "decode_message",
    "encode_error",
    "encode_notification",
    "encode_request",
    "encode_result",
    "encode_result_raw",
    "json_shape",
]

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1

RequestId = int | str


class Request(NamedTuple):
    """A call that expects an answer with the same ``id``."""

    id: RequestId
    method: str
    params: dict[str, Any] | list[Any] | None


class Notification(NamedTuple):
    """A one-way message: no answer, ever (even on error)."""

    method: str
    params: dict[str, Any] | list[Any] | None


class ClientResponse(NamedTuple):
    """A client's answer to a server-to-client request: ``result`` (undecoded) or ``error``."""

    id: RequestId | None
    result: msgspec.Raw | None = None
    error: msgspec.Raw | None = None


class Invalid(NamedTuple):
    """A frame that is not a valid message; answer with ``code`` unless it had no usable id."""

    id: RequestId | None
    code: int
    message: str


Message = Request | Notification | ClientResponse | Invalid


_decoder: Final = envelope_decoder()
# What msgspec raises for bytes that are not JSON. Invalid UTF-8 inside a string comes out
# as UnicodeDecodeError rather than DecodeError (found by fuzzing): JSON must be UTF-8.
_NOT_JSON: Final = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)
_encoder: Final = msgspec.json.Encoder()


def json_shape(value: object, max_items: int) -> tuple[int, int]:
    """(depth, values) of a decoded JSON value, counting stops once values pass ``max_items``.

    Iterative, and bounded by ``max_items`` steps: cheap even on a hostile message.
    """
    deepest = 0
    items = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack and items <= max_items:
        item, depth = stack.pop()
        items += 1
        if isinstance(item, dict):
            depth += 1
            stack.extend((child, depth) for child in item.values())
        elif isinstance(item, list):
            depth += 1
            stack.extend((child, depth) for child in item)
        deepest = max(deepest, depth)
    return deepest, items


def _valid_id(value: object, max_id_length: int) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return _INT64_MIN <= value <= _INT64_MAX
    return isinstance(value, str) and len(value) <= max_id_length


def _salvage_id(frame: bytes | bytearray, max_id_length: int) -> RequestId | None:
    """The id of a frame that failed validation, when it has a usable one (error path only)."""
    try:
        raw = msgspec.json.decode(frame)
    except _NOT_JSON:
        return None
    if isinstance(raw, dict):
        candidate = raw.get("id")
        if _valid_id(candidate, max_id_length):
            return candidate
    return None


def decode_message(
    frame: bytes | bytearray,
    *,
    max_json_depth: int = 64,
    max_id_length: int = 128,
    max_json_items: int = 1 << 15,
) -> Message:
    """Decode one JSON-RPC 2.0 message; never raises.

    Batches (a top-level array) are refused with -32600: MCP removed batching. So are
    params nested deeper than ``max_json_depth`` or holding more than ``max_json_items``
    values (a 1 MiB message of ``[],`` decodes to ~25 MiB of objects; the item cap bounds
    what a message can hold in memory while its tool call runs).
    """
    try:
        envelope = _decoder.decode(frame)
    except msgspec.ValidationError as exc:
        if frame.lstrip()[:1] == b"[":
            return Invalid(None, INVALID_REQUEST, "batches are not supported: send one message")
        return Invalid(
            _salvage_id(frame, max_id_length), INVALID_REQUEST, f"invalid request: {exc}"
        )
    except _NOT_JSON:
        return Invalid(None, PARSE_ERROR, "parse error: not valid JSON")
    request_id = envelope.id
    if request_id is msgspec.UNSET or request_id is None:
        usable_id: RequestId | None = None
    elif _valid_id(request_id, max_id_length):
        usable_id = request_id
    else:
        return Invalid(None, INVALID_REQUEST, "invalid request: id out of range or too long")
    if envelope.jsonrpc != "2.0":
        return Invalid(usable_id, INVALID_REQUEST, 'invalid request: "jsonrpc" must be "2.0"')
    params = None if envelope.params is msgspec.UNSET else envelope.params
    # Counting bytes is C-fast; only frames with many brackets or commas pay for the walk
    # (and a frame shorter than the item cap cannot hold that many values: no comma count).
    if params is not None:
        brackets = frame.count(b"{") + frame.count(b"[")
        if brackets > max_json_depth or (
            len(frame) >= max_json_items and brackets + frame.count(b",") >= max_json_items
        ):
            depth, items = json_shape(params, max_json_items)
            if depth >= max_json_depth:
                return Invalid(
                    usable_id, INVALID_REQUEST, "invalid request: JSON nested too deeply"
                )
            if items > max_json_items:
                return Invalid(usable_id, INVALID_REQUEST, "invalid request: too many JSON values")
    method = envelope.method
    if method is msgspec.UNSET:
        result, error = envelope.result, envelope.error
        if result is not msgspec.UNSET or error is not msgspec.UNSET:
            return ClientResponse(
                usable_id,
                None if result is msgspec.UNSET else result,
                None if error is msgspec.UNSET else error,
            )
        return Invalid(usable_id, INVALID_REQUEST, 'invalid request: no "method"')
    if request_id is msgspec.UNSET:
        return tuple.__new__(Notification, (method, params))
    if usable_id is None:
        return Invalid(None, INVALID_REQUEST, "invalid request: id must be a string or integer")
    # tuple.__new__, not Request(...): a NamedTuple's own __new__ is a Python function (built
    # with eval), one interpreted frame per request that the tuple does not need.
    return tuple.__new__(Request, (usable_id, method, params))


def _id_bytes(request_id: RequestId | None) -> bytes:
    return b"null" if request_id is None else _encoder.encode(request_id)


def encode_result_raw(request_id: RequestId, result_json: bytes) -> bytes:
    """A response whose result is already JSON (pre-encoded constant results)."""
    return b'{"jsonrpc":"2.0","id":' + _id_bytes(request_id) + b',"result":' + result_json + b"}"


def encode_result(request_id: RequestId, result: object) -> bytes:
    """A response carrying ``result`` (any msgspec-encodable value)."""
    return encode_result_raw(request_id, _encoder.encode(result))


def encode_error(
    request_id: RequestId | None, code: int, message: str, data: object = None
) -> bytes:
    """An error response; ``request_id`` None when the request's id could not be read."""
    error: dict[str, object] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return (
        b'{"jsonrpc":"2.0","id":'
        + _id_bytes(request_id)
        + b',"error":'
        + _encoder.encode(error)
        + b"}"
    )


def encode_notification(method: str, params: object = None) -> bytes:
    """A server-to-client notification."""
    message: dict[str, object] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return _encoder.encode(message)


def encode_request(request_id: RequestId, method: str, params: object = None) -> bytes:
    """A server-to-client request."""
    message: dict[str, object] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return _encoder.encode(message)
