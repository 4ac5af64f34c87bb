"""MCP clients: newline-delimited JSON-RPC over TCP (``mcp``) and Streamable HTTP (``mcp-http``).

Each connection sends ``initialize``, waits for its result, sends
``notifications/initialized`` and is then held. Replies are decoded by msgspec into a small
typed record whose ``result`` and ``error`` stay raw bytes: a load generator checks which
request was answered, not what the answer says. The protocol versions come from the core's
one list, so the client never offers a version the reference server does not know.
"""

from __future__ import annotations

import contextlib

import h11
import msgspec
from msgspec import UNSET, UnsetType

from connscale.core.protocol.mcp import LATEST_PROTOCOL_VERSION
from connscale.errors import ConfigurationError
from connscale.loadgen.protocols.base import (
    CLOSED,
    HANDSHAKE,
    HANDSHAKE_2,
    MAX_MESSAGE_BYTES,
    READY,
    ClientProtocol,
    Conn,
    Link,
    ProtocolOptions,
)
from connscale.loadgen.protocols.lines import read_lines
from connscale.loadgen.protocols.sse import EventStream

INIT_ID = 0
REQUEST_KINDS = frozenset({"ping", "echo", "list", "experts", "call"})

_INITIALIZE = msgspec.json.encode(
    {
        "jsonrpc": "2.0",
        "id": INIT_ID,
        "method": "initialize",
        "params": {
            "protocolVersion": LATEST_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "connscale-loadgen", "version": "1"},
        },
    }
)
_INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


class Reply(msgspec.Struct):
    """The parts of a JSON-RPC message a load generator looks at."""

    id: int | str | UnsetType | None = UNSET  # UNSET: a notification or a server request
    result: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)  # empty: absent
    error: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class _InitializeResult(msgspec.Struct):
    protocolVersion: str = LATEST_PROTOCOL_VERSION  # noqa: N815 (the wire name)


_reply_decoder = msgspec.json.Decoder(Reply)
_init_decoder = msgspec.json.Decoder(_InitializeResult)


def request_body(kind: str, request_id: int, call: bytes | None = None) -> bytes:
    """The JSON-RPC request of one traffic ``kind``; ``call`` is the ``tools/call`` params
    (JSON) of the ``call`` kind (a tool of the server's own, e.g. an SDK app's)."""
    if kind == "ping":
        return b'{"jsonrpc":"2.0","id":%d,"method":"ping"}' % request_id
    if kind == "echo":
        return (
            b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo",'
            b'"arguments":{"text":"connscale"}}}' % request_id
        )
    if kind == "list":
        return b'{"jsonrpc":"2.0","id":%d,"method":"tools/list"}' % request_id
    if kind == "experts":
        return (
            b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":'
            b'{"name":"consult_experts","arguments":{"question":"what scales?"}}}' % request_id
        )
    if kind == "call" and call is not None:
        return b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}' % (request_id, call)
    raise ValueError(f"unknown MCP request kind {kind!r}")


def decode_reply(payload: bytes) -> Reply | None:
    """The reply in ``payload``; None when it is not a JSON object."""
    try:
        return _reply_decoder.decode(payload)
    except msgspec.DecodeError:
        return None


class McpTcpProtocol(ClientProtocol):
    """MCP over TCP: one JSON-RPC message per line (MCP's stdio framing)."""

    name = "mcp"
    request_kinds = REQUEST_KINDS
    default_mix = "ping"

    def __init__(self, options: ProtocolOptions) -> None:
        super().__init__(options)
        self.call: bytes | None = None
        if options.call is not None:
            try:
                params = msgspec.json.decode(options.call)
            except msgspec.DecodeError:
                params = None
            if not isinstance(params, dict) or not isinstance(params.get("name"), str):
                raise ConfigurationError(
                    'call must be the JSON params of tools/call: {"name": ..., "arguments": {...}}'
                )
            self.call = msgspec.json.encode(params)

    def traffic_mix(self) -> str | None:
        return "call" if self.call is not None else self.default_mix

    def connected(self, link: Link, conn: Conn) -> None:
        conn.state = HANDSHAKE
        link.write(conn, _INITIALIZE + b"\n")

    def received(self, link: Link, conn: Conn, data: bytes) -> None:
        lines = read_lines(conn, data)
        if lines is None:
            link.refused(conn, "protocol", "a line over the size limit")
            return
        for line in lines:
            self.message(link, conn, line)
            if conn.state == CLOSED:
                return

    def message(self, link: Link, conn: Conn, payload: bytes) -> None:
        reply = decode_reply(payload)
        if reply is None:
            link.refused(conn, "protocol", f"the server sent something not JSON: {payload[:80]!r}")
            return
        if reply.id is UNSET:
            return  # a notification or a server request: nothing to answer in a load test
        if conn.state == HANDSHAKE:
            if reply.id != INIT_ID or not reply.result:
                link.refused(conn, "protocol", f"initialize failed: {payload[:200]!r}")
                return
            self.initialized(link, conn, reply)
            return
        if conn.state == READY and reply.id == conn.pending_id:
            link.answered(conn, error=bool(reply.error))

    def initialized(self, link: Link, conn: Conn, reply: Reply) -> None:
        link.write(conn, _INITIALIZED + b"\n")
        link.ready(conn)

    def send_request(self, link: Link, conn: Conn, kind: str, request_id: int) -> None:
        link.write(conn, request_body(kind, request_id, self.call) + b"\n")


class _Exchange:
    """An MCP-over-HTTP connection's session id, negotiated version and current response."""

    __slots__ = ("body", "content_type", "session_id", "status", "version")

    def __init__(self) -> None:
        self.session_id: bytes | None = None
        self.version = LATEST_PROTOCOL_VERSION.encode()
        self.status = 0
        self.content_type = b""
        self.body = bytearray()


class McpHttpProtocol(McpTcpProtocol):
    """MCP Streamable HTTP: each message a POST on one kept-alive connection (h11)."""

    name = "mcp-http"
    default_path = "/mcp"

    def connected(self, link: Link, conn: Conn) -> None:
        conn.parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_MESSAGE_BYTES)
        conn.extra = _Exchange()
        conn.state = HANDSHAKE
        self.post(link, conn, _INITIALIZE)

    def initialized(self, link: Link, conn: Conn, reply: Reply) -> None:
        exchange = conn.extra
        assert isinstance(exchange, _Exchange)
        # On a result we cannot read, keep offering ours; the server will say if it minds.
        with contextlib.suppress(msgspec.DecodeError, UnicodeEncodeError):
            exchange.version = _init_decoder.decode(reply.result).protocolVersion.encode()
        conn.state = HANDSHAKE_2
        self.post(link, conn, _INITIALIZED)

    def send_request(self, link: Link, conn: Conn, kind: str, request_id: int) -> None:
        self.post(link, conn, request_body(kind, request_id, self.call))

    def post(self, link: Link, conn: Conn, body: bytes) -> None:
        http = conn.parser
        exchange = conn.extra
        assert isinstance(http, h11.Connection) and isinstance(exchange, _Exchange)
        headers = [
            (b"host", self.options.authority),
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
            (b"mcp-protocol-version", exchange.version),
            (b"content-length", b"%d" % len(body)),
        ]
        if exchange.session_id is not None:
            headers.append((b"mcp-session-id", exchange.session_id))
        try:
            data = http.send(h11.Request(method="POST", target=self.path, headers=headers))
            data = (data or b"") + (http.send(h11.Data(data=body)) or b"")
            data += http.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            link.refused(conn, "protocol", f"cannot send a request: {exc}")
            return
        link.write(conn, data)

    def received(self, link: Link, conn: Conn, data: bytes) -> None:
        http = conn.parser
        exchange = conn.extra
        assert isinstance(http, h11.Connection) and isinstance(exchange, _Exchange)
        try:
            http.receive_data(data)
            while conn.state != CLOSED:
                event = http.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Response):
                    exchange.status = event.status_code
                    exchange.content_type = b""
                    for name, value in event.headers:
                        if name == b"mcp-session-id":
                            exchange.session_id = value
                        elif name == b"content-type":
                            exchange.content_type = value
                elif isinstance(event, h11.Data):
                    exchange.body += event.data
                    if len(exchange.body) > MAX_MESSAGE_BYTES:
                        link.refused(conn, "protocol", "response body over the size limit")
                        return
                elif isinstance(event, h11.EndOfMessage):
                    http.start_next_cycle()  # the next request may go out from the handler
                    self.response(link, conn, exchange)
                elif isinstance(event, h11.ConnectionClosed):
                    link.lost(conn, "closed")
                    return
        except h11.ProtocolError as exc:
            link.refused(conn, "protocol", f"bad HTTP from the server: {exc}")

    def response(self, link: Link, conn: Conn, exchange: _Exchange) -> None:
        status, body = exchange.status, bytes(exchange.body)
        exchange.body.clear()
        if conn.state == HANDSHAKE_2:
            if status >= 300:
                link.refused(conn, "refused", f"notifications/initialized got HTTP {status}")
            else:
                link.ready(conn)
            return
        if status >= 300:
            if conn.state == HANDSHAKE:
                link.refused(conn, "refused", f"initialize got HTTP {status}")
            elif conn.pending_id >= 0:
                link.answered(conn, error=True)
            return
        if exchange.content_type.startswith(b"text/event-stream"):
            payloads = EventStream().feed(body + b"\n\n")
        else:
            payloads = [body] if body.strip() else []
        for payload in payloads:
            self.message(link, conn, payload)
            if conn.state == CLOSED:
                return


__all__ = [
    "INIT_ID",
    "REQUEST_KINDS",
    "McpHttpProtocol",
    "McpTcpProtocol",
    "Reply",
    "decode_reply",
    "request_body",
]
