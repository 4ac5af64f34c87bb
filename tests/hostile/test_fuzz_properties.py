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
from connscale.core.protocol.framing import TOO_LARGE, LineReader
from connscale.core.protocol.jsonrpc import Invalid, Request, decode_message
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.tokens import SessionSealer
from connscale.core.session import Session
from connscale.errors import ConfigurationError, CorruptStateError
from support import HttpPipe, echo, http_request, ping, split_responses

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))
from _targets import (
    INITIALIZE,
    KEY,
    check_protocol_outcome,
    check_reply,
    drive_http,
    drive_lines,
    make_core,
    make_protocol,
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
    """Frames hold no newline and fit the limit; the kept input fits it (+1 for a split CRLF);
    the frames do not depend on where reads are cut; the core answers any such stream."""
    stream = newline.join(parts)

    def run(points: list[int]) -> tuple[list[bytes], bool]:
        frames: list[bytes] = []
        reader = LineReader(limit)
        position = 0
        for cut in sorted({min(p, len(stream)) for p in points} | {len(stream)}):
            reader.feed(stream[position:cut])
            position = cut
            while (frame := reader.next_frame()) is not None:
                if frame is TOO_LARGE:
                    return frames, True
                assert b"\n" not in frame and 0 < len(frame) <= limit
                frames.append(frame)
            assert len(reader) <= limit + 1
        return frames, False

    assert run([]) == run(cuts)
    drive_lines([stream[i : i + limit] for i in range(0, len(stream), limit)])


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
    protocol = make_protocol()
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
    protocol = make_protocol()
    slot = protocol.open_session()
    check_protocol_outcome(protocol, protocol.handle_frame(slot, frame))


# -- the HTTP request path -----------------------------------------------------------------

BEARER = b"property-bearer-token"


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
    core, wire = make_core(http=True, bearer_token=BEARER)
    core.open(0)
    core.receive(0, _post(INITIALIZE))
    marker = b"mcp-session-id: "
    return bytes(wire.output).split(marker, 1)[1].split(b"\r\n", 1)[0]


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
    statuses, a reader's bytes stay under its bound, session slots freed."""
    stream = _mutate(b"".join(_SEEDS[i] for i in seeds), edits)
    chunks = [stream[i : i + read_size] for i in range(0, len(stream), read_size)]
    drive_http(chunks, bearer_token=BEARER)  # a fresh core each time: a DELETE does not stick


@BOUNDED
@given(st.binary(max_size=600), st.integers(1, 64))
def test_http_path_on_raw_bytes(data: bytes, read_size: int) -> None:
    """Arbitrary bytes as an HTTP stream: an answer with a documented status, or waiting."""
    drive_http([data[i : i + read_size] for i in range(0, len(data), read_size)], BEARER)


def test_pipelining_behind_a_pending_answer_is_bounded() -> None:
    """While a call is being answered, a client that keeps sending gets at most one more
    request's worth held; past it input is dropped and the connection closes after the
    answer (the answer itself is still sent)."""
    pipe = HttpPipe(hold={"echo"}, limits=ServerLimits(max_frame_bytes=512))
    token = pipe.initialized()
    connection = pipe.connect()
    session = {"mcp-session-id": token}
    pipe.feed(connection, http_request(body=echo(1), headers=session))
    [call] = pipe.runner.held
    limits = pipe.protocol.limits
    for index in range(1000):
        pipe.feed(connection, http_request(body=ping(index), headers=session))
        reader = pipe.core._http_readers.get(connection)
        held = 0 if reader is None else reader.queued_bytes
        assert held <= limits.max_header_bytes + 2 * limits.max_frame_bytes
    pipe.runner.answer(call, {"content": [], "isError": False})
    responses = split_responses(pipe.take(connection))
    assert responses[0][0] == 200 and pipe.is_closed(connection)


# -- the session codec and sealed tokens ---------------------------------------------------


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
def test_token_opening_never_raises_and_accepts_nothing_unsealed(token: str | bytes) -> None:
    assert SessionSealer(KEY).unseal(token) is None


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
