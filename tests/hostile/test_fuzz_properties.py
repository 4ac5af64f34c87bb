"""Property tests (hypothesis, bounded) for the four parsers that read bytes from outside:
the newline framer, the JSON-RPC/MCP validator, the Streamable HTTP request path and the
session codec. Only the documented outcomes come out; no hang (each example has a
deadline); what a connection holds stays under its bound. The atheris targets in fuzz/
check the same properties for longer (see docs/RELIABILITY.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connscale.core.codec import decode_session, encode_session
from connscale.core.protocol.framing import split_frames
from connscale.core.protocol.jsonrpc import Invalid, Request, decode_message
from connscale.core.protocol.mcp import McpProtocol
from connscale.core.protocol.tokens import SessionSigner
from connscale.core.session import Session, SessionTable
from connscale.errors import ConfigurationError, CorruptStateError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))
from _targets import (
    INITIALIZE,
    SMALL_LIMITS,
    TOOLS,
    check_protocol_outcome,
    check_reply,
    drive_http,
    make_http_handler,
)

BOUNDED = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

# -- the frame parser ----------------------------------------------------------------------

lines = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"", b"\r", b'{"jsonrpc":"2.0","id":1,"method":"ping"}', b"x" * 70]),
    ),
    max_size=12,
)


@BOUNDED
@given(
    lines,
    st.sampled_from([b"\n", b"\r\n"]),
    st.lists(st.integers(0, 600), max_size=10),
    st.integers(1, 80),
)
def test_framer_any_stream_any_split(
    parts: list[bytes], newline: bytes, cuts: list[int], limit: int
) -> None:
    """Frames hold no newline and fit the limit; the kept tail fits it (+1 for a split CRLF);
    the frames do not depend on where reads are cut."""
    stream = newline.join(parts)

    def run(points: list[int]) -> tuple[list[bytes], bool]:
        frames: list[bytes] = []
        tail = None
        position = 0
        for cut in sorted({min(p, len(stream)) for p in points} | {len(stream)}):
            result = split_frames(tail, stream[position:cut], limit)
            position = cut
            assert all(b"\n" not in f and 0 < len(f) <= limit for f in result.frames)
            frames.extend(result.frames)
            if result.too_large:
                return frames, True
            tail = result.tail
            assert (
                tail is None
                or len(tail) <= limit
                or (len(tail) == limit + 1 and tail.endswith(b"\r"))
            )
        return frames, False

    assert run([]) == run(cuts)


# -- the JSON-RPC / MCP validator ----------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
methods = st.sampled_from(
    [
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "notifications/initialized",
        "notifications/cancelled",
        "resources/list",
        "",
    ]
) | st.text(max_size=10)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]) | json_values,
        "id": st.integers(-(2**64), 2**64) | st.text(max_size=140) | json_values,
        "method": methods | json_values,
        "params": json_values
        | st.fixed_dictionaries(
            {"name": st.sampled_from(["echo", "nope"]) | json_values},
            optional={"arguments": json_values},
        ),
        "result": json_values,
        "error": json_values,
    },
)


@BOUNDED
@given(st.lists(envelopes, min_size=1, max_size=6), st.booleans())
def test_validator_answers_only_with_documented_replies(
    messages: list[dict[str, Any]], initialize_first: bool
) -> None:
    """Any sequence of envelopes, before or after initialize: a result, a documented error
    code echoing the request's id (or null when it is unusable), a tool call, or nothing."""
    protocol = McpProtocol(SessionTable(), tools=TOOLS, limits=SMALL_LIMITS)
    slot = protocol.open_session()
    if initialize_first:
        check_protocol_outcome(protocol, protocol.handle_frame(slot, INITIALIZE))
    for message in messages:
        frame = json.dumps(message).encode()
        decoded = decode_message(frame, max_json_depth=16, max_json_items=1 << 15)
        outcome = protocol.handle_frame(slot, frame)
        check_protocol_outcome(protocol, outcome)
        if isinstance(outcome, bytes):
            reply = check_reply(outcome)
            if isinstance(decoded, Request | Invalid):
                assert reply["id"] == decoded.id
            if isinstance(decoded, Request):
                assert reply["id"] == message["id"]
    protocol.close_session(slot)
    assert len(protocol.table) == 0


@BOUNDED
@given(st.binary(max_size=300))
def test_validator_on_raw_bytes(frame: bytes) -> None:
    """Raw bytes (invalid UTF-8, junk, truncated JSON): never an exception."""
    protocol = McpProtocol(SessionTable(), tools=TOOLS, limits=SMALL_LIMITS)
    slot = protocol.open_session()
    check_protocol_outcome(protocol, protocol.handle_frame(slot, frame))


# -- the HTTP request path -----------------------------------------------------------------

BEARER = b"property-bearer-token"
_HANDLER = make_http_handler(bearer_token=BEARER)


def _post(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST /mcp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
        b"accept: application/json, text/event-stream\r\nauthorization: Bearer "
        + BEARER
        + b"\r\n"
        + extra
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


def _session() -> bytes:
    exchange = _HANDLER.new_exchange()
    exchange.receive(_post(INITIALIZE))
    response = _HANDLER.next_outcome(exchange)
    assert isinstance(response, bytes)
    marker = b"mcp-session-id: "
    return response.split(marker, 1)[1].split(b"\r\n", 1)[0]


_SESSION = _session()
_SEEDS = [
    _post(INITIALIZE),
    _post(b'{"jsonrpc":"2.0","id":1,"method":"ping"}', b"mcp-session-id: " + _SESSION + b"\r\n"),
    _post(
        b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}',
        b"mcp-session-id: " + _SESSION + b"\r\n",
    ),
    b"GET /mcp HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\nauthorization: Bearer "
    + BEARER
    + b"\r\nmcp-session-id: "
    + _SESSION
    + b"\r\n\r\n",
    b"DELETE /mcp HTTP/1.1\r\nhost: x\r\nauthorization: Bearer "
    + BEARER
    + b"\r\nmcp-session-id: "
    + _SESSION
    + b"\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer "
    + BEARER
    + b"\r\ntransfer-encoding: chunked\r\n\r\n5\r\n[1,2]\r\n0\r\n\r\n",
]
mutation = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]),
    st.integers(0, 10_000),
    st.binary(min_size=1, max_size=8),
)


def _mutate(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    buffer = bytearray(data)
    for kind, position, payload in edits:
        index = position % (len(buffer) + 1)
        if kind == "flip" and buffer:
            buffer[index % len(buffer)] ^= payload[0] or 1
        elif kind == "insert":
            buffer[index:index] = payload
        elif kind == "delete":
            del buffer[index : index + len(payload)]
        elif kind == "truncate":
            del buffer[index:]
        else:
            buffer[index:index] = buffer[index : index + 64]
    return bytes(buffer)


@BOUNDED
@given(
    st.lists(st.sampled_from(range(len(_SEEDS))), min_size=1, max_size=4),
    st.lists(mutation, max_size=4),
    st.integers(1, 300),
)
def test_http_path_on_mutated_requests(
    seeds: list[int], edits: list[tuple[str, int, bytes]], read_size: int
) -> None:
    """Pipelined valid requests, mutated and cut into reads of any size: only documented
    statuses, the exchange's buffered bytes stay under its bound, transient slots freed."""
    stream = _mutate(b"".join(_SEEDS[i] for i in seeds), edits)
    chunks = [stream[i : i + read_size] for i in range(0, len(stream), read_size)]
    drive_http(make_http_handler(bearer_token=BEARER), chunks)  # fresh: a DELETE does not stick


@BOUNDED
@given(st.binary(max_size=600), st.integers(1, 64))
def test_http_path_on_raw_bytes(data: bytes, read_size: int) -> None:
    """Arbitrary bytes as an HTTP stream: an answer with a documented status, or waiting."""
    drive_http(_HANDLER, [data[i : i + read_size] for i in range(0, len(data), read_size)])


def test_pipelining_behind_a_pending_answer_is_bounded() -> None:
    """While a tool call is being answered, a client that keeps sending gets at most
    ``max_backlog`` bytes held; the rest is dropped and the connection closes after the
    answer (the answer itself is still sent)."""
    handler = make_http_handler(bearer_token=BEARER)
    exchange = handler.new_exchange()
    exchange.receive(_SEEDS[2])
    pending = handler.next_outcome(exchange)
    assert pending is not None and not isinstance(pending, bytes)
    for _ in range(1000):
        exchange.receive(_SEEDS[1])
        assert exchange.buffered_bytes <= exchange.max_backlog
    assert exchange.closing
    reply = handler._protocol.finish_tool_call(pending.call, {"content": [], "isError": False})
    response = handler.finish(exchange, pending, reply)
    assert response.startswith(b"HTTP/1.1 200") and exchange.must_close


# -- the session codec and signed tokens ---------------------------------------------------


@BOUNDED
@given(st.binary(max_size=400))
def test_session_codec_raises_only_corrupt_state(data: bytes) -> None:
    """Arbitrary bytes: ``decode_session`` gives a Session or CorruptStateError, nothing else."""
    try:
        session = decode_session(data)
    except CorruptStateError:
        return
    assert isinstance(session, Session)


_VALID = encode_session(
    Session(
        session_id=bytes(range(16)),
        transport="http",
        protocol_version="2025-06-18",
        client_name="c",
        client_version="1",
        capabilities={"roots": {"listChanged": True}},
    )
)


@BOUNDED
@given(st.lists(mutation, min_size=1, max_size=4))
def test_session_codec_on_mutated_encodings(edits: list[tuple[str, int, bytes]]) -> None:
    """A valid encoding, mutated: CorruptStateError, or a session whose encoding round-trips."""
    data = _mutate(_VALID, edits)
    try:
        session = decode_session(data)
    except CorruptStateError:
        return
    try:
        again = encode_session(session)
    except ConfigurationError:
        return
    assert encode_session(decode_session(again)) == again


@BOUNDED
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_token_verification_never_raises_and_accepts_nothing_unsigned(token: str | bytes) -> None:
    signer = SessionSigner(b"p" * 32)
    assert signer.verify(token) is None


def test_json_envelope_strategy_reaches_every_message_kind() -> None:
    """The strategies above are not vacuous: each message kind is reachable from them."""
    kinds = set()
    for raw in (
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "x"},
        {"jsonrpc": "2.0", "id": 1, "result": 1},
        {"id": 1},
    ):
        kinds.add(type(decode_message(msgspec.json.encode(raw))).__name__)
    assert kinds == {"Request", "Notification", "ClientResponse", "Invalid"}
