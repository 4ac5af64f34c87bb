"""JSON-RPC 2.0 decoding: every message kind and every error code, never an exception."""

from __future__ import annotations

import json

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from connscale.core.protocol.jsonrpc import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ClientResponse,
    Invalid,
    Notification,
    Request,
    decode_message,
    encode_error,
    encode_result,
    json_shape,
)


def test_request_and_notification() -> None:
    assert decode_message(b'{"jsonrpc":"2.0","id":7,"method":"ping"}') == Request(7, "ping", None)
    assert decode_message(b'{"jsonrpc":"2.0","id":"a","method":"m","params":{"x":1}}') == Request(
        "a", "m", {"x": 1}
    )
    assert decode_message(b'{"jsonrpc":"2.0","method":"n"}') == Notification("n", None)


def test_client_response_is_recognised_and_kept_undecoded() -> None:
    result = decode_message(b'{"jsonrpc":"2.0","id":1,"result":{"a":[1]}}')
    assert isinstance(result, ClientResponse) and result.id == 1 and result.error is None
    assert bytes(result.result or b"") == b'{"a":[1]}'
    error = decode_message(b'{"jsonrpc":"2.0","id":1,"error":{"code":1}}')
    assert isinstance(error, ClientResponse) and result.id == 1 and error.result is None
    assert bytes(error.error or b"") == b'{"code":1}'


def test_parse_error() -> None:
    for frame in (b"{", b"garbage", b"\xff\xfe", b'{"a":1}}'):
        message = decode_message(frame)
        assert isinstance(message, Invalid) and message.code == PARSE_ERROR and message.id is None


def test_invalid_requests_keep_a_usable_id() -> None:
    message = decode_message(b'{"jsonrpc":"2.0","id":3,"method":5}')
    assert isinstance(message, Invalid) and message.code == INVALID_REQUEST and message.id == 3
    message = decode_message(b'{"jsonrpc":"1.0","id":4,"method":"x"}')
    assert isinstance(message, Invalid) and message.id == 4
    message = decode_message(b'{"jsonrpc":"2.0","id":4}')
    assert isinstance(message, Invalid) and message.code == INVALID_REQUEST


def test_batches_null_ids_bools_and_huge_ids_are_refused() -> None:
    frames = [
        b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]',
        b'{"jsonrpc":"2.0","id":null,"method":"ping"}',
        b'{"jsonrpc":"2.0","id":true,"method":"ping"}',
        b'{"jsonrpc":"2.0","id":99999999999999999999999,"method":"ping"}',
        b'{"jsonrpc":"2.0","id":"' + b"x" * 200 + b'","method":"ping"}',
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":"str"}',
        b"42",
    ]
    for frame in frames:
        message = decode_message(frame)
        assert isinstance(message, Invalid), frame
        assert message.code == INVALID_REQUEST, frame


def test_negative_ids_are_fine() -> None:
    assert decode_message(b'{"jsonrpc":"2.0","id":-5,"method":"ping"}') == Request(-5, "ping", None)


def test_deep_nesting_is_refused() -> None:
    deep = b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":' + b"[" * 100 + b"]" * 100 + b"}}"
    message = decode_message(deep, max_json_depth=64)
    assert isinstance(message, Invalid) and message.code == INVALID_REQUEST
    ok = b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":' + b"[" * 10 + b"]" * 10 + b"}}"
    assert isinstance(decode_message(ok, max_json_depth=64), Request)
    very_deep = b"[" * 100_000 + b"]" * 100_000
    assert isinstance(decode_message(very_deep), Invalid)


def test_json_depth() -> None:
    assert json_shape(1, 100)[0] == 0
    assert json_shape({"a": [1, {"b": []}]}, 100)[0] == 4


def test_encoders_produce_valid_json_rpc() -> None:
    assert json.loads(encode_result(1, {"x": [1]})) == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"x": [1]},
    }
    assert json.loads(encode_error(None, -32600, "bad")) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "bad"},
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@given(st.binary(max_size=200))
def test_random_bytes_never_raise(frame: bytes) -> None:
    assert decode_message(frame) is not None


@given(
    st.dictionaries(
        st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error"]), json_values
    )
)
def test_random_envelopes_never_raise(envelope: dict[str, object]) -> None:
    message = decode_message(msgspec.json.encode(envelope))
    if isinstance(message, Request):
        assert envelope.get("jsonrpc") == "2.0" and isinstance(envelope.get("method"), str)


def test_invalid_utf8_inside_a_string_is_a_parse_error() -> None:
    """Regression (atheris): msgspec raised UnicodeDecodeError out of decode_message."""
    for frame in (b'{"jsonrpc":"2.0","id":1,"method":"p\xffing"}', b'{"id":"\xe5\x8a"}'):
        message = decode_message(frame)
        assert isinstance(message, Invalid) and message.code == PARSE_ERROR


def test_json_shape_counts_values_and_stops_early() -> None:
    assert json_shape({"a": [1, {"b": []}]}, 100) == (4, 5)
    _depth, items = json_shape([[]] * 1000, 10)
    assert items == 11  # stopped once past the cap
    frame = b'{"jsonrpc":"2.0","id":1,"method":"m","params":[' + b",".join([b"0"] * 50) + b"]}"
    message = decode_message(frame, max_json_items=20)
    assert isinstance(message, Invalid) and message.id == 1 and "too many" in message.message
    assert isinstance(decode_message(frame, max_json_items=60), Request)
    text = b'{"jsonrpc":"2.0","id":1,"method":"m","params":["' + b"," * 500 + b'"]}'
    assert isinstance(decode_message(text, max_json_items=20), Request)  # commas in a string
