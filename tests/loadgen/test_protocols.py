"""Each load-generator protocol, driven sans-I/O by bytes (and SSE / HTTP on real sockets)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Ping, Request, TextMessage

from connscale.errors import ConfigurationError
from connscale.loadgen.protocols import PROTOCOL_NAMES, ProtocolOptions, make_protocol
from connscale.loadgen.protocols.base import HANDSHAKE, Conn
from connscale.loadgen.protocols.mcp import decode_reply
from connscale.loadgen.protocols.sse import EventStream
from connscale.loadgen.swarm import Swarm
from support import FakeLink


@pytest.fixture
def conn() -> Iterator[Conn]:
    left, right = socket.socketpair()
    yield Conn(left, 0.0)
    left.close()
    right.close()


def test_every_protocol_is_listed_and_unknown_ones_are_refused() -> None:
    assert PROTOCOL_NAMES == (
        "mcp",
        "mcp-http",
        "mcp-listen",
        "mcp-stateless",
        "websocket",
        "tcp",
        "sse",
        "http",
    )
    with pytest.raises(ConfigurationError, match="unknown protocol"):
        make_protocol("gopher")


def test_mcp_handshake_then_answers_by_id(conn: Conn) -> None:
    link = FakeLink()
    mcp = make_protocol("mcp")
    mcp.connected(link, conn)
    assert b'"method":"initialize"' in link.written and conn.state == HANDSHAKE
    mcp.received(link, conn, b'{"jsonrpc":"2.0","method":"notifications/message"}\n{"jsonrpc":')
    assert link.events == []  # a notification, then half a line kept for later
    mcp.received(link, conn, b'"2.0","id":0,"result":{}}\n')
    assert link.events == ["ready"] and link.written.endswith(b'"notifications/initialized"}\n')
    conn.pending_id = 7
    mcp.send_request(link, conn, "ping", 7)
    mcp.received(link, conn, b'{"jsonrpc":"2.0","id":6,"result":{}}\n')  # not ours
    mcp.received(link, conn, b'{"jsonrpc":"2.0","id":7,"error":{"code":-1}}\r\n')
    assert link.events[-1] == "answered error=True"


def test_mcp_refuses_a_server_that_is_not_mcp(conn: Conn) -> None:
    link = FakeLink()
    mcp = make_protocol("mcp")
    mcp.connected(link, conn)
    mcp.received(link, conn, b"HTTP/1.1 400 Bad Request\r\n")
    assert link.events and link.events[0].startswith("refused protocol")


@given(st.binary(max_size=200))
def test_reply_decoding_never_raises_on_garbage(data: bytes) -> None:
    reply = decode_reply(data)
    assert reply is None or hasattr(reply, "id")


def test_websocket_handshake_ping_and_echo_through_wsproto(conn: Conn) -> None:
    link = FakeLink()
    ws = make_protocol("websocket", ProtocolOptions(host="127.0.0.1", port=9, path="/chat"))
    ws.connected(link, conn)
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(link.written)
    request = next(server.events())
    assert isinstance(request, Request) and request.target == "/chat"
    ws.received(link, conn, server.send(AcceptConnection()))
    assert link.events == ["ready"]
    for kind, request_id in (("ping", 1), ("echo", 2)):
        link.written = b""
        conn.pending_id = request_id
        ws.send_request(link, conn, kind, request_id)
        server.receive_data(link.written)
        event = next(server.events())
        reply = server.send(event.response() if isinstance(event, Ping) else event)
        assert isinstance(event, Ping | TextMessage)
        ws.received(link, conn, reply)
        assert link.events[-1] == "answered error=False"
    link.written = b""
    ws.received(link, conn, server.send(Ping(b"keepalive")))
    server.receive_data(link.written)
    assert type(next(server.events())).__name__ == "Pong"  # the client answers pings


def test_websocket_refusal_is_reported_with_the_status(conn: Conn) -> None:
    link = FakeLink()
    ws = make_protocol("websocket")
    ws.connected(link, conn)
    ws.received(link, conn, b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
    assert link.events == ["refused refused: the WebSocket handshake got HTTP 404"]


def test_raw_tcp_without_and_with_a_probe(conn: Conn) -> None:
    link = FakeLink()
    plain = make_protocol("tcp")
    plain.connected(link, conn)
    assert link.events == ["ready"] and link.written == b"" and plain.traffic_mix() is None
    with pytest.raises(ConfigurationError, match="probe"):
        plain.send_request(link, conn, "echo", 1)
    probed = make_protocol("tcp", ProtocolOptions(probe="ping"))
    conn.state = 0
    link = FakeLink()
    probed.connected(link, conn)
    assert link.written == b"ping\n" and conn.state == HANDSHAKE
    probed.received(link, conn, b"pi")
    probed.received(link, conn, b"ng\n")
    assert link.events == ["ready"]
    conn.pending_id = 3
    probed.received(link, conn, b"ping\n")
    assert link.events[-1] == "answered error=False"


def test_event_stream_splits_events_across_reads() -> None:
    stream = EventStream()
    assert stream.feed(b": comment\nevent: tick\ndata: one\r\n") == []
    assert stream.feed(b"data: two\n\nid: 5\n\n") == [b"one\ntwo"]  # id alone: no event
    assert stream.feed(b"data:3\n") == []
    assert stream.feed(b"\n") == [b"3"]


def test_event_stream_bounds_an_endless_line() -> None:
    stream = EventStream()
    for _ in range(20):
        stream.feed(b"x" * 65536)
    assert stream.too_large and stream.feed(b"\n\n") == []


@given(st.lists(st.binary(max_size=64), max_size=10))
def test_event_stream_never_raises_and_is_independent_of_read_boundaries(
    chunks: list[bytes],
) -> None:
    whole = EventStream().feed(b"".join(chunks))
    pieces = EventStream()
    split = [event for chunk in chunks for event in pieces.feed(chunk)]
    assert split == whole


# --- SSE and HTTP keep-alive on real loopback sockets ---------------------------------------


class _Server:
    """An asyncio server in a thread answering with a canned HTTP behaviour."""

    def __init__(self, handler: object) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.handler = handler
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        async def main() -> None:
            server = await asyncio.start_server(self.handler, "127.0.0.1", 0)  # type: ignore[arg-type]
            self.port = server.sockets[0].getsockname()[1]
            self.stop = asyncio.Event()
            self.ready.set()
            async with server:
                await self.stop.wait()

        self.loop.run_until_complete(main())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


async def _sse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
    for n in range(3):
        writer.write(b"data: %d\n\n" % n)
    await writer.drain()
    await reader.read()


async def _keep_alive_then_close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    # Answers every GET with keep-alive; closes an idle connection after 0.2 s (a short
    # version of uvicorn's 5 s idle timeout, which dropped 809 of 2,000 held connections).
    while True:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.2)
        except (TimeoutError, asyncio.IncompleteReadError):
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")


def _grow(swarm: Swarm, goal: int) -> None:
    swarm.grow(goal)
    swarm.run_until(lambda: not swarm.growing, time.monotonic() + 10)


def test_sse_connections_are_held_and_events_counted() -> None:
    server = _Server(_sse)
    swarm = Swarm("127.0.0.1", server.port, protocol="sse", sources=[("127.0.0.2", 50)])
    try:
        _grow(swarm, 20)
        swarm.run_until(lambda: swarm.status().events >= 60, time.monotonic() + 5)
        status = swarm.status()
        assert (status.established, status.failed, status.events) == (20, 0, 60)
        with pytest.raises(ConfigurationError):
            swarm.start_traffic(duration=0.1, mix=(("ping", 1.0),))
    finally:
        swarm.close_all()
        server.close()


def test_http_keep_alive_holds_and_counts_idle_drops_with_their_reason() -> None:
    server = _Server(_keep_alive_then_close)
    swarm = Swarm("127.0.0.1", server.port, protocol="http", sources=[("127.0.0.2", 50)])
    try:
        _grow(swarm, 10)
        assert swarm.status().established == 10
        swarm.start_traffic(duration=0.05, concurrency=2, mix=(("get", 1.0),))
        swarm.run_until(lambda: swarm.traffic_result() is not None, time.monotonic() + 5)
        result = swarm.traffic_result()
        assert result is not None and result.requests > 0 and result.errors == 0
        swarm.run_until(lambda: swarm.status().dropped >= 10, time.monotonic() + 5)
        status = swarm.status()
        assert status.dropped >= 10 and status.first_drop is not None
        assert status.first_drop.startswith("closed")
    finally:
        swarm.close_all()
        server.close()
