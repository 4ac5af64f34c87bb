"""The bad-input matrix: one test per hostile input, its expected behaviour in the docstring.

Each runs on the sans-I/O connection core (``Pipe``: exactly what both engines run), and,
where the socket matters, against both engines on 127.0.0.1 (more of those in
tests/engines/test_contract.py). docs/RELIABILITY.md
("Hostile input and HTTP security") has the same matrix as a table.
"""

from __future__ import annotations

import json
import random
import socket
import time
import tracemalloc

import pytest

from connscale.core.protocol.framing import TOO_LARGE, LineReader
from connscale.core.protocol.httpwire import HttpError, HttpReader
from connscale.core.protocol.limits import ServerLimits
from connscale.core.session import Phase
from support import (
    ENGINES,
    INIT,
    INITIALIZED,
    HttpPipe,
    LineClient,
    Pipe,
    echo,
    http_request,
    line,
    ping,
    running,
)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602


def error_of(reply: dict[str, object]) -> tuple[object, object]:
    """(id, code) of an error reply."""
    error = reply["error"]
    assert isinstance(error, dict)
    return reply["id"], error["code"]


def test_malformed_json_is_a_parse_error_and_the_connection_goes_on() -> None:
    """Malformed JSON: -32700 with id null (no id can be read); the session stays usable."""
    pipe = Pipe()
    for junk in (b'{"jsonrpc":"2.0","id":1,', b"{'single': 'quotes'}", b'{"a":1}}', b"nul"):
        [reply] = pipe.send(junk + b"\n")
        assert error_of(reply) == (None, PARSE_ERROR), junk
    assert pipe.send(ping(2)) == [{"jsonrpc": "2.0", "id": 2, "result": {}}]


@pytest.mark.parametrize("engine", ENGINES)
def test_malformed_json_on_a_real_server(engine: str) -> None:
    """Same over a socket: the error line comes back and the next request is answered."""
    with running(engine) as server:
        client = LineClient(server.port)
        client.send(b'{"jsonrpc":"2.0","id":1,\n', b"\xff\xfe\x00junk\n")
        assert error_of(client.receive() or {}) == (None, PARSE_ERROR)
        assert error_of(client.receive() or {}) == (None, PARSE_ERROR)
        assert client.call(ping(3)) == {"jsonrpc": "2.0", "id": 3, "result": {}}
        client.close()


def test_wrong_types_are_invalid_requests_or_params() -> None:
    """Wrong types: envelope fields -32600 (with the id when it is usable), params -32602."""
    pipe = Pipe()
    envelope_cases = [
        ({"jsonrpc": "2.0", "id": 1, "method": 5}, 1),
        ({"jsonrpc": 2.0, "id": 2, "method": "ping"}, 2),
        ({"jsonrpc": "2.0", "id": 3, "method": "ping", "params": "text"}, 3),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}, None),
        ({"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}, None),
        ({"jsonrpc": "2.0", "id": [1], "method": "ping"}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "ping"}, None),
        ({"jsonrpc": "2.0", "id": None, "method": "ping"}, None),
        ("just a string", None),
        (42, None),
    ]
    for message, expected_id in envelope_cases:
        [reply] = pipe.send(json.dumps(message).encode() + b"\n")
        assert error_of(reply) == (expected_id, INVALID_REQUEST), message
    wrong_init = dict(INIT, params={"protocolVersion": 2025})
    assert error_of(pipe.send(wrong_init)[0]) == (0, INVALID_PARAMS)
    pipe.initialize()
    bad_calls = [
        {"name": 5},
        {"name": "echo", "arguments": [1, 2]},
        {"name": "no-such-tool"},
    ]
    for index, params in enumerate(bad_calls):
        message = {"jsonrpc": "2.0", "id": index, "method": "tools/call", "params": params}
        assert error_of(pipe.send(message)[0]) == (index, INVALID_PARAMS), params
    list_params = {"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": [1]}
    assert error_of(pipe.send(list_params)[0]) == (9, INVALID_PARAMS)


def test_huge_and_negative_ids() -> None:
    """Ids: any int64 (negative too) and strings up to 128 chars are echoed exactly.

    Larger integers, floats, 1e400 and longer strings cannot be echoed safely: -32600 id null.
    """
    pipe = Pipe()
    for good in (-1, 0, -(2**63), 2**63 - 1, "", "x" * 128, "é🙂"):
        assert pipe.send(ping(good)) == [{"jsonrpc": "2.0", "id": good, "result": {}}], good
    for bad in (2**63, -(2**63) - 1, 10**400, "x" * 129):
        [reply] = pipe.send(ping(bad))
        assert error_of(reply) == (None, INVALID_REQUEST), bad
    [reply] = pipe.send(b'{"jsonrpc":"2.0","id":1e400,"method":"ping"}\n')
    assert error_of(reply) == (None, INVALID_REQUEST)


def test_deep_nesting_is_refused_without_recursion() -> None:
    """Nesting past max_json_depth: -32600 with the id; a 1 MiB bracket bomb: an error, fast."""
    pipe = Pipe(ServerLimits(max_json_depth=16))
    nested: object = 1
    for _ in range(20):
        nested = [nested]
    [reply] = pipe.send({"jsonrpc": "2.0", "id": 7, "method": "ping", "params": {"a": nested}})
    assert error_of(reply) == (7, INVALID_REQUEST)
    assert "deeply" in str(reply["error"])
    shallow: object = 1
    for _ in range(10):
        shallow = [shallow]
    ok = {"jsonrpc": "2.0", "id": 8, "method": "ping", "params": {"a": shallow}}
    assert pipe.send(ok) == [{"jsonrpc": "2.0", "id": 8, "result": {}}]
    started = time.perf_counter()
    bomb = b'{"jsonrpc":"2.0","id":9,"method":"ping","params":{"a":' + b"[" * (1 << 20) + b"\n"
    [reply] = Pipe(ServerLimits(max_frame_bytes=2 << 20)).send(bomb)
    assert error_of(reply)[1] in (PARSE_ERROR, INVALID_REQUEST)
    assert time.perf_counter() - started < 5.0  # generous: the check is linear, not recursive


def test_invalid_utf8_is_a_parse_error() -> None:
    """Invalid UTF-8 anywhere (even inside a string): -32700 id null, never an exception.

    Regression: msgspec raises UnicodeDecodeError (not DecodeError) for bad bytes inside a
    string; the first atheris run found it crashing ``decode_message``.
    """
    pipe = Pipe()
    for bad in (
        b'{"jsonrpc":"2.0","id":1,"method":"p\xffing"}',
        b'{"jsonrpc":"2.0","id":1,"method":"\xc0\xaf"}',  # overlong encoding
        b'{"jsonrpc":"2.0","id":1,"method":"\xed\xa0\x80"}',  # a lone surrogate
        b'{"jsonrpc":"2.0","id":"\xe5\x8a","method":"ping"}',  # truncated sequence
        b"\xfe\xff",
    ):
        [reply] = pipe.send(bad + b"\n")
        assert error_of(reply) == (None, PARSE_ERROR), bad
    assert pipe.send(ping(1)) == [{"jsonrpc": "2.0", "id": 1, "result": {}}]


@pytest.mark.parametrize("engine", ENGINES)
def test_invalid_utf8_on_a_real_server_keeps_the_connection(engine: str) -> None:
    """Over a socket: -32700 for the bad line, the connection and its session stay."""
    with running(engine) as server:
        client = LineClient(server.port)
        client.initialize()
        client.send(b'{"jsonrpc":"2.0","id":1,"method":"p\xffing"}\n')
        assert error_of(client.receive() or {}) == (None, PARSE_ERROR)
        assert client.call(ping(2)) == {"jsonrpc": "2.0", "id": 2, "result": {}}
        client.close()


def test_batches_are_refused() -> None:
    """A JSON-RPC batch (top-level array, empty or not): one -32600 id null; none is run."""
    pipe = Pipe()
    for batch in ([ping(1), ping(2)], [], [INIT]):
        [reply] = pipe.send(batch)
        assert error_of(reply) == (None, INVALID_REQUEST)
        assert "batch" in str(reply["error"])
    assert not pipe.protocol.is_initialized(pipe.slot)


def test_notification_method_with_an_id_is_refused() -> None:
    """``notifications/initialized`` with an id: a request, refused with -32600 and its id.

    MCP says notifications carry no id; the client waits for an answer, so it gets one,
    and the message has no effect (the session does not move to INITIALIZED).
    """
    pipe = Pipe()
    assert "result" in pipe.send(INIT)[0]
    with_id = dict(INITIALIZED, id=5)
    [reply] = pipe.send(with_id)
    assert error_of(reply) == (5, INVALID_REQUEST)
    assert pipe.protocol.table.get(pipe.slot, "phase") == Phase.INITIALIZING
    unknown = {"jsonrpc": "2.0", "id": 6, "method": "notifications/whatever"}
    assert error_of(pipe.send(unknown)[0]) == (6, INVALID_REQUEST)
    assert pipe.send(INITIALIZED) == []  # the real notification still works
    assert pipe.protocol.table.get(pipe.slot, "phase") == Phase.INITIALIZED


def test_a_response_sent_by_the_client_to_nothing_is_ignored() -> None:
    """A client's result or error that answers no request of ours: no answer, no effect."""
    pipe = Pipe()
    pipe.initialize()
    before = pipe.protocol.table.session(pipe.slot).to_dict()
    responses = [
        {"jsonrpc": "2.0", "id": 1, "result": {}},
        {"jsonrpc": "2.0", "id": 2, "error": {"code": -1, "message": "x"}},
        {"jsonrpc": "2.0", "id": None, "result": 5},
        {"jsonrpc": "2.0", "id": "s", "error": "not an object"},
    ]
    assert pipe.send(*responses) == []
    assert pipe.protocol.table.session(pipe.slot).to_dict() == before


def test_duplicate_request_ids() -> None:
    """A duplicate id while the first call is in flight: -32600 with that id; the first call
    still completes. Answered requests free their id (ping ids may repeat freely)."""
    pipe = Pipe(hold_tools=True)
    pipe.initialize()
    assert pipe.send(echo(1)) == []
    [reply] = pipe.send(echo(1))
    assert error_of(reply) == (1, INVALID_REQUEST)
    assert "duplicate" in str(reply["error"])
    [call] = pipe.held
    [answer] = pipe.answer(call, {"content": [], "isError": False})
    assert answer["id"] == 1 and "result" in answer
    assert pipe.send(echo(1)) == []  # the id is free again once answered
    assert pipe.send(ping(7), ping(7)) == [{"jsonrpc": "2.0", "id": 7, "result": {}}] * 2


def test_pending_requests_per_session_are_bounded() -> None:
    """More than max_pending_per_session calls in flight: the extra ones get -32600."""
    pipe = Pipe(ServerLimits(max_pending_per_session=3), hold_tools=True)
    pipe.initialize()
    replies = pipe.send(*(echo(i) for i in range(5)))
    assert [error_of(r) for r in replies] == [(3, INVALID_REQUEST), (4, INVALID_REQUEST)]
    assert len(pipe.held) == 3


def test_binary_junk_gets_parse_errors_and_is_bounded() -> None:
    """Random bytes: each line is answered -32700 (or -32600 if it happens to be JSON);
    a newline-free run past max_frame_bytes closes the connection."""
    junk = random.Random(6).randbytes(20_000)
    pipe = Pipe(ServerLimits(max_frame_bytes=1 << 16))
    replies = pipe.feed(junk)
    lines = [part for part in junk.split(b"\n")[:-1] if part.strip(b"\r")]
    assert len(replies) == len(lines)
    assert {error_of(reply)[1] for reply in replies} <= {PARSE_ERROR, INVALID_REQUEST}
    small = Pipe(ServerLimits(max_frame_bytes=64))
    [error, closed] = small.feed(b"\x00" * 65)
    assert error_of(error) == (None, INVALID_REQUEST) and closed == {"closed": True}


def test_requests_before_initialize() -> None:
    """Before ``initialize``: ping answered, tools/* -32600, unknown methods -32601, a
    stateless-era request without its envelope -32602."""
    pipe = Pipe()
    assert pipe.send(ping(1)) == [{"jsonrpc": "2.0", "id": 1, "result": {}}]
    list_request = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    assert error_of(pipe.send(list_request)[0]) == (2, INVALID_REQUEST)
    assert error_of(pipe.send(echo(3))[0]) == (3, INVALID_REQUEST)
    unknown = {"jsonrpc": "2.0", "id": 4, "method": "no/such/method"}
    assert error_of(pipe.send(unknown)[0]) == (4, METHOD_NOT_FOUND)
    # server/discover is the stateless era's: without its _meta envelope it is malformed.
    discover = {"jsonrpc": "2.0", "id": 5, "method": "server/discover"}
    assert error_of(pipe.send(discover)[0]) == (5, INVALID_PARAMS)
    assert pipe.send(INITIALIZED) == []  # ignored: nothing to acknowledge yet
    assert pipe.protocol.table.get(pipe.slot, "phase") == Phase.INITIALIZING


def test_second_initialize_is_refused_and_changes_nothing() -> None:
    """A second ``initialize``: -32600; the first negotiated version and client stay."""
    pipe = Pipe()
    pipe.initialize()
    again = dict(INIT, id=1, params=dict(INIT["params"], protocolVersion="2024-11-05"))
    assert error_of(pipe.send(again)[0]) == (1, INVALID_REQUEST)
    assert pipe.protocol.table.get(pipe.slot, "protocol_version") == "2025-06-18"
    assert pipe.protocol.table.get(pipe.slot, "phase") == Phase.INITIALIZED


PIPELINE = b"".join(
    [
        line(INIT),
        line(INITIALIZED),
        line(ping("p")),
        b"\r\n\n",  # empty lines are skipped
        line({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        line(echo(3, "split \u00e9\u4e2d")),
        b'{"broken\r\n',
        line({"jsonrpc": "2.0", "id": 4, "result": {}}),
        line(ping(5)),
    ]
)


def test_pipelined_requests_split_at_every_byte_boundary() -> None:
    """Pipelined requests cut at every byte (two reads), and one byte per read: the same
    replies in the same order as one read. The framer keeps only the incomplete tail."""
    expected = Pipe().feed(PIPELINE)
    assert [reply.get("id") for reply in expected] == [0, "p", 2, 3, None, 5]
    for cut in range(1, len(PIPELINE)):
        pipe = Pipe()
        assert pipe.feed(PIPELINE[:cut]) + pipe.feed(PIPELINE[cut:]) == expected, cut
    pipe = Pipe()
    replies = [
        reply for index in range(len(PIPELINE)) for reply in pipe.feed(PIPELINE[index : index + 1])
    ]
    assert replies == expected
    assert pipe.pending is None


@pytest.mark.parametrize("engine", ENGINES)
def test_pipelined_requests_one_byte_per_write_on_a_real_server(engine: str) -> None:
    """A real server fed one byte per write (TCP_NODELAY): the same replies, in order."""
    expected = Pipe().feed(PIPELINE)
    with running(engine) as server:
        client = LineClient(server.port)
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(len(PIPELINE)):
            client.sock.send(PIPELINE[index : index + 1])
        got = [client.receive() for _ in expected]
        # The echo tool answers with its own text; compare ids and kinds, in order.
        assert [(r or {}).get("id") for r in got] == [r.get("id") for r in expected]
        assert [("error" in (r or {})) for r in got] == [("error" in r) for r in expected]
        client.close()


def test_frame_over_the_limit_is_an_error_then_close_and_never_buffered_whole() -> None:
    """A 16 MiB line against a 1 MiB limit, in 64 KiB reads: -32600 then close as soon as
    1 MiB + one read has arrived; the framer never holds more than the limit."""
    limit = 1 << 20
    chunk = b"x" * (64 << 10)
    reader = LineReader(limit)
    fed = 0
    frame = None
    tracemalloc.start()
    try:
        while fed < 16 << 20:
            reader.feed(chunk)
            fed += len(chunk)
            frame = reader.next_frame()
            if frame is TOO_LARGE:
                break
            assert len(reader) <= limit + 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert frame is TOO_LARGE and len(reader) == 0
    assert fed <= limit + len(chunk)
    assert peak < 3 * limit  # the tail plus one read, not 16 MiB
    pipe = Pipe(ServerLimits(max_frame_bytes=1000))
    assert pipe.feed(b"y" * 600) == []
    [reply, closed] = pipe.feed(b"y" * 600)
    assert error_of(reply) == (None, INVALID_REQUEST) and "too large" in str(reply)
    assert closed == {"closed": True}
    assert len(pipe.protocol.table) == 0  # the session was freed


def test_frames_before_the_oversized_one_are_answered() -> None:
    """Complete requests ahead of an oversized line are answered, then the error, then close."""
    pipe = Pipe(ServerLimits(max_frame_bytes=200))
    replies = pipe.feed(line(ping(1)) + b"z" * 300 + b"\n" + line(ping(2)))
    assert replies[0] == {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert error_of(replies[1]) == (None, INVALID_REQUEST)
    assert replies[2:] == [{"closed": True}]


def test_http_body_over_the_limit_is_refused_before_it_is_read() -> None:
    """HTTP: a Content-Length over max_frame_bytes is 413 and close before any body byte;
    a chunked body is cut at the limit; a reader never holds more than limit + a read."""
    pipe = HttpPipe(limits=ServerLimits(max_frame_bytes=1000))
    connection = pipe.connect()
    [(status, headers, _)] = pipe.exchange(
        connection, http_request(headers={"content-length": str(10**12)})
    )
    assert status == 413 and headers["connection"] == "close" and pipe.is_closed(connection)
    reader = HttpReader(max_header_bytes=16 << 10, max_body_bytes=1000)
    head = b"POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    reader.feed(head + b"transfer-encoding: chunked\r\n\r\n")
    with pytest.raises(HttpError) as refused:
        for _ in range(100):
            reader.feed(b"100\r\n" + b"a" * 256 + b"\r\n")
            assert reader.queued_bytes == 0 and not reader.requests
    assert refused.value.status == 413 and reader.failed


def test_reset_in_the_middle_of_a_message_frees_everything() -> None:
    """A connection reset mid-frame: the partial frame is dropped unanswered and the session
    slot is freed; over HTTP a body cut short holds nothing, and a call in flight is cancelled."""
    pipe = Pipe()
    pipe.initialize()
    assert pipe.feed(b'{"jsonrpc":"2.0","id":1,"meth') == []
    assert pipe.pending is not None
    pipe.close()
    assert len(pipe.protocol.table) == 0 and pipe.pending is None
    http = HttpPipe(hold={"echo"})
    token = http.initialized()
    cut = http.connect()
    http.feed(cut, http_request(body=echo(1), headers={"mcp-session-id": token})[:-5])
    http.core.closed(cut)  # reset mid-body
    rows = len(http.protocol.table)  # the row initialize kept for a GET stream, no more
    assert rows == 1 and http.core.statistics().sessions == 0
    held = http.connect()
    http.feed(held, http_request(body=echo(2), headers={"mcp-session-id": token}))
    [call] = http.runner.held
    assert len(http.protocol.table) == rows  # a POST is served from its token: no slot
    http.core.closed(held)  # the connection died meanwhile: its call is cancelled
    assert call.cancelled and not http.runner.held
    assert len(http.protocol.table) == rows and http.take(held) == b""


def test_half_closed_input_protocol_level() -> None:
    """EOF after complete frames: those frames were answered; an incomplete tail at EOF is
    dropped unanswered (it is not a message), and the close frees the session."""
    pipe = Pipe()
    replies = pipe.feed(line(ping(1)) + line(ping(2)) + b'{"jsonrpc":"2.0","id":3')
    assert [reply["id"] for reply in replies] == [1, 2]
    assert pipe.eof() == [{"closed": True}]  # nothing owed: closed at once
    assert len(pipe.protocol.table) == 0


def test_initialize_with_hostile_client_info_and_capabilities() -> None:
    """What ``initialize`` keeps lives as long as the session, so it is bounded: capabilities
    nested past 32, integers past 64 bits, capabilities over max_capabilities_bytes or a
    clientInfo string over max_client_info_bytes get -32602 and leave the session as it was.

    Regression: nesting and big integers used to raise out of ``handle_frame``.
    """
    deep: dict[str, object] = {"leaf": 1}
    for _ in range(40):
        deep = {"x": deep}
    cases = [
        {"capabilities": deep},
        {"capabilities": {"big": 2**64 + 5}},
        {"capabilities": {"blob": "c" * 5000}},
        {"capabilities": {}, "clientInfo": {"name": "n" * 300, "version": "1"}},
        {"capabilities": {}, "clientInfo": {"name": "n", "version": "\u00e9" * 200}},
    ]
    pipe = Pipe(ServerLimits(max_json_depth=64))
    for index, extra in enumerate(cases):
        params = dict(INIT["params"], **extra)
        [reply] = pipe.send(dict(INIT, id=index, params=params))
        assert error_of(reply) == (index, INVALID_PARAMS), extra
        assert not pipe.protocol.is_initialized(pipe.slot)
    pipe.initialize()  # a normal initialize still works afterwards


def test_http_initialize_state_always_fits_a_token() -> None:
    """Over HTTP the session travels in its token: with the limits above the largest
    accepted initialize still gets a token the server accepts back (under 4096 chars)."""
    pipe = HttpPipe()
    limits = pipe.protocol.limits
    capabilities = {"x": "c" * (limits.max_capabilities_bytes - 12)}
    client = {"name": "n" * limits.max_client_info_bytes, "version": "v" * 256}
    params = dict(INIT["params"], capabilities=capabilities, clientInfo=client)
    status, headers, _ = pipe.once(http_request(body=dict(INIT, params=params)))
    assert status == 200 and len(headers["mcp-session-id"]) <= 4096
    follow_up = http_request(body=ping(1), headers={"mcp-session-id": headers["mcp-session-id"]})
    assert pipe.once(follow_up)[0] == 200


def test_one_message_decodes_to_a_bounded_size() -> None:
    """Params with more than max_json_items values: -32600 with the id. What an accepted
    1 MiB message holds while its tool call runs stays a few MiB even for the worst shapes
    (empty containers decode to ~25x their bytes; the item cap bounds them)."""
    head = (
        b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"a":['
    )
    pipe = Pipe(hold_tools=True)
    pipe.initialize()
    [reply] = pipe.send(head + b",".join([b"[]"] * 200_000) + b"]}}}\n")
    assert error_of(reply) == (4, INVALID_REQUEST) and "too many" in str(reply)
    limit = pipe.protocol.limits.max_json_items
    for shape in (b"[]", b"{}", b'{"a":0}', b'"ab"'):
        count = (limit - 8) // (2 if b":" in shape else 1)
        frame = head + b",".join([shape] * count) + b"]}}}\n"
        tracemalloc.start()
        try:
            assert pipe.feed(frame) == []  # accepted: a tool call now held in flight
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert held < 5 << 20, (shape, held)
        for call in list(pipe.held):
            pipe.answer(call, {"content": [], "isError": False})


def test_head_request_gets_405_without_a_body() -> None:
    """HEAD /mcp: 405 with no body, and the connection goes on.

    Regression (atheris): the h11 handler wrote a body and h11 raised LocalProtocolError.
    """
    pipe = HttpPipe()
    connection = pipe.connect()
    output = pipe.feed(connection, b"HEAD /mcp HTTP/1.1\r\nhost: x\r\n\r\n")
    head, _, body = output.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405") and body == b"" and b"GET" in head
    [(status, _, _)] = pipe.exchange(connection, http_request(body=INIT))
    assert status == 200
