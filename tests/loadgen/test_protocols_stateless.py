"""The 2026-07-28 load-generator protocols: ``mcp-listen`` streams and ``mcp-stateless`` calls.

Sans-I/O against bytes a server would send (refusals, streams that end, garbage), the
requests against the server core's own checks, and both protocols end to end against the
reference server on each engine.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale import App
from connscale.core.protocol.httpwire import HttpReader
from connscale.core.protocol.jsonrpc import Request, decode_message
from connscale.core.protocol.stateless import client_of, header_problem, read_envelope
from connscale.loadgen.protocols import PROTOCOLS, ProtocolOptions, make_protocol
from connscale.loadgen.protocols.base import CLOSED, HANDSHAKE, READY, Conn
from connscale.loadgen.protocols.mcp_stateless import (
    LISTEN_ID,
    STATELESS_KINDS,
    VERSION,
    is_acknowledgement,
    request_bytes,
)
from connscale.loadgen.swarm import Swarm
from support import ENGINES, FakeLink, running

ACK = (
    b'{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"_meta":'
    b'{"io.modelcontextprotocol/subscriptionId":1},"notifications":{"toolsListChanged":true}}}'
)
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def event(data: bytes) -> bytes:
    return chunk(b"event: message\ndata: " + data + b"\n\n")


def json_response(body: bytes, status: int = 200, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%b\r\n%b" % (
        status,
        len(body),
        extra,
        body,
    )


@pytest.fixture
def conn() -> Iterator[Conn]:
    left, right = socket.socketpair()
    yield Conn(left, 0.0)
    left.close()
    right.close()


@pytest.mark.parametrize("kind", sorted(STATELESS_KINDS | {"listen"}))
def test_each_request_passes_the_servers_own_envelope_and_header_checks(kind: str) -> None:
    reader = HttpReader(max_header_bytes=8192, max_body_bytes=1 << 16)
    reader.feed(request_bytes(kind, 42, path="/mcp", host="127.0.0.1:9"))
    request = reader.pop()
    assert request is not None and request.method == b"POST" and request.path == b"/mcp"
    message = decode_message(request.body)
    assert isinstance(message, Request) and message.id == 42
    version, meta, _level = read_envelope(message.params)
    assert version == VERSION and client_of(version, meta).name == "connscale-loadgen"
    assert isinstance(message.params, dict)
    assert header_problem(request.headers, version, message.method, message.params) is None
    assert request.headers[b"host"] == b"127.0.0.1:9"
    with pytest.raises(ValueError, match="unknown"):
        request_bytes("ping", 1)


def test_the_acknowledgement_must_name_this_listen() -> None:
    assert is_acknowledgement(ACK, LISTEN_ID)
    assert not is_acknowledgement(ACK, LISTEN_ID + 1)
    assert not is_acknowledgement(ACK.replace(b"acknowledged", b"message"), LISTEN_ID)
    assert not is_acknowledgement(b"[1, 2]", LISTEN_ID)
    assert not is_acknowledgement(b"{not json", LISTEN_ID)


def test_listen_is_ready_at_the_acknowledgement_then_counts_events(conn: Conn) -> None:
    link = FakeLink()
    listen = make_protocol("mcp-listen", ProtocolOptions(port=9))
    listen.connected(link, conn)
    assert link.written.startswith(b"POST /mcp HTTP/1.1\r\n") and conn.state == HANDSHAKE
    assert b"mcp-method: subscriptions/listen\r\n" in link.written
    listen.received(link, conn, STREAM_HEAD)
    assert link.events == []  # the head alone does not make the stream ready
    whole = event(ACK) + event(b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}')
    for index in range(0, len(whole), 7):  # split anywhere
        listen.received(link, conn, whole[index : index + 7])
    assert link.events == ["ready", "event"] and conn.state == READY
    listen.received(link, conn, chunk(b": keep-alive comment\n\n"))
    assert link.events == ["ready", "event"]  # a comment is not an event
    listen.received(link, conn, b"0\r\n\r\n")
    assert link.events[-1] == "lost ended" and conn.state == CLOSED


def test_listen_refusals_carry_what_the_server_said(conn: Conn) -> None:
    link = FakeLink()
    listen = make_protocol("mcp-listen")
    listen.connected(link, conn)
    limit = (
        b'{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"Subscription limit reached"}}'
    )
    response = json_response(limit)
    listen.received(link, conn, response[:30])
    assert link.events == []  # refused once the whole answer is in
    listen.received(link, conn, response[30:])
    assert len(link.events) == 1 and "Subscription limit reached" in link.events[0]
    assert link.events[0].startswith("refused refused: subscriptions/listen got HTTP 200")
    for answer, expected in (
        (json_response(b'{"error":{}}', 400), "HTTP 400"),
        (STREAM_HEAD + event(b'{"jsonrpc":"2.0","method":"notifications/message"}'), "its ack"),
        (b"SSH-2.0-OpenSSH\r\n", "bad HTTP"),
    ):
        link, conn.state = FakeLink(), HANDSHAKE
        listen.connected(link, conn)
        listen.received(link, conn, answer)
        assert len(link.events) == 1 and expected in link.events[0], link.events


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_listen_and_stateless_never_raise_on_garbage(parts: list[bytes]) -> None:
    left, right = socket.socketpair()
    try:
        for name in ("mcp-listen", "mcp-stateless"):
            conn, link = Conn(left, 0.0), FakeLink()
            protocol = make_protocol(name)
            protocol.connected(link, conn)
            for part in parts:
                if conn.state == CLOSED:
                    break
                protocol.received(link, conn, part)
            assert all(e.split()[0] in ("refused", "lost", "ready", "event") for e in link.events)
    finally:
        left.close()
        right.close()


def test_stateless_starts_with_discover_and_keeps_no_parser_while_idle(conn: Conn) -> None:
    link = FakeLink()
    stateless = make_protocol("mcp-stateless")
    stateless.connected(link, conn)
    assert b"mcp-method: server/discover\r\n" in link.written
    discovered = b'{"jsonrpc":"2.0","id":0,"result":{"supportedVersions":["%b"]}}' % (
        VERSION.encode()
    )
    stateless.received(link, conn, json_response(discovered))
    assert link.events == ["ready"] and conn.parser is None and conn.extra is None
    conn.pending_id = 5
    link.written = b""
    stateless.send_request(link, conn, "echo", 5)
    assert b"mcp-name: echo\r\n" in link.written and b'"id":5,' in link.written
    answer = b'{"jsonrpc":"2.0","id":5,"result":{"content":[]}}'
    stream = b"event: message\ndata: " + answer + b"\n\n"
    sse = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%b"
    stateless.received(link, conn, sse % (len(stream), stream))
    assert link.events[-1] == "answered error=False" and conn.parser is None
    for status, body in ((400, b'{"jsonrpc":"2.0","id":6,"error":{"code":-32020}}'),
                         (200, b'{"jsonrpc":"2.0","id":99,"result":{}}')):  # fmt: skip
        conn.pending_id = 6
        stateless.send_request(link, conn, "list", 6)
        stateless.received(link, conn, json_response(body, status))
        assert link.events[-1] == "answered error=True"
    conn.pending_id = 7
    stateless.send_request(link, conn, "echo", 7)
    body = b'{"jsonrpc":"2.0","id":7,"result":{}}'
    stateless.received(link, conn, json_response(body, extra=b"connection: close\r\n"))
    assert link.events[-2:] == ["answered error=False", "lost closed"]


def test_stateless_refuses_a_server_without_this_revision(conn: Conn) -> None:
    handshake_only = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"no session"}}'
    for answer in (
        json_response(handshake_only, 400),
        json_response(b'{"jsonrpc":"2.0","id":0,"result":{"supportedVersions":["1999-01-01"]}}'),
        json_response(b'{"jsonrpc":"2.0","id":0,"result":{"supportedVersions":"2026-07-28"}}'),
    ):
        link, conn.state = FakeLink(), 0
        stateless = make_protocol("mcp-stateless")
        stateless.connected(link, conn)
        stateless.received(link, conn, answer)
        assert len(link.events) == 1
        assert link.events[0].startswith(
            f"refused refused: server/discover does not offer {VERSION}"
        )


@pytest.mark.parametrize("engine", ENGINES)
def test_listen_streams_and_stateless_calls_against_the_reference_server(engine: str) -> None:
    app = App("listen")

    @app.tool()
    def echo(text: str) -> str:
        """Echo."""
        return text

    with running(engine, "http", app=app) as server:
        listens = Swarm("127.0.0.1", server.port, protocol="mcp-listen")
        calls = Swarm("127.0.0.1", server.port, protocol="mcp-stateless")
        try:
            for swarm, goal in ((listens, 20), (calls, 4)):
                swarm.grow(goal)
                swarm.run_until(lambda s=swarm: not s.growing, time.monotonic() + 10)
                assert swarm.status().established == goal, swarm.status().first_error
            assert server.call(server.engine.core.statistics).streams == 20

            def added() -> str:
                """Added while the streams listen."""
                return "new"

            server.call(lambda: app.tool()(added))
            listens.run_until(lambda: listens.status().events >= 20, time.monotonic() + 5)
            assert listens.status().events == 20  # one tools/list_changed on each stream
            calls.start_traffic(duration=0.2, concurrency=4, mix=(("echo", 1), ("list", 1)))
            calls.run_until(lambda: calls.traffic_result() is not None, time.monotonic() + 10)
            result = calls.traffic_result()
            assert result is not None and result.requests > 0 and result.errors == 0
        finally:
            listens.close_all()
            calls.close_all()


def test_both_protocols_are_registered_for_every_tool_that_looks_names_up() -> None:
    assert PROTOCOLS["mcp-listen"].request_kinds == frozenset()
    assert PROTOCOLS["mcp-listen"].default_mix is None
    assert PROTOCOLS["mcp-stateless"].default_mix in STATELESS_KINDS
