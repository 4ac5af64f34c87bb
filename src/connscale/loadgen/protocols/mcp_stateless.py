"""MCP 2026-07-28 clients: ``subscriptions/listen`` streams and stateless requests over HTTP.

The stateless revision has no handshake and no session: every request is one POST whose
``params._meta`` carries the protocol version, the client's info and its capabilities (the
envelope), with ``MCP-Protocol-Version``, ``Mcp-Method`` and ``Mcp-Name`` headers that must
agree with the body. Two protocols speak it:

- ``mcp-listen``: each connection POSTs one ``subscriptions/listen`` request (tools, prompts
  and resources list changes), is ready once the stream's first event, the
  acknowledgement tagged with the listen request's id, has arrived, and is then held; every
  later event is counted. This is what holds memory for a long time in this revision.
- ``mcp-stateless``: each connection asks ``server/discover`` (ready when the server lists
  this revision), then is held idle on keep-alive; traffic is stateless ``tools/call``
  (``echo``, ``experts``), ``tools/list`` or ``discover``, one POST each.

Why not h11 here, as the other HTTP protocols use: a stateless tool call is a whole HTTP
exchange, and h11 spends ~35 µs of the client's CPU on one (building the request, parsing
the response), which makes the load generator, not the server, the limit of a throughput
phase. Requests are fixed text around our own values (method and tool names, a
Content-Length), so they are written here; responses are parsed by llhttp (``httptools``,
as the server does), ~0.7 µs each. An idle stateless connection keeps no parser.
"""

from __future__ import annotations

from typing import Any

import httptools
import msgspec
from msgspec import UNSET, UnsetType

from connscale.core.protocol.stateless import (
    META_CAPABILITIES,
    META_CLIENT,
    META_SUBSCRIPTION,
    META_VERSION,
)
from connscale.core.protocol.versions import LATEST_VERSION
from connscale.loadgen.protocols.base import (
    CLOSED,
    HANDSHAKE,
    MAX_MESSAGE_BYTES,
    READY,
    ClientProtocol,
    Conn,
    Link,
)
from connscale.loadgen.protocols.mcp import decode_reply
from connscale.loadgen.protocols.sse import EventStream

#: The revision these clients speak (the newest the core knows).
VERSION = LATEST_VERSION
#: The JSON-RPC id of each connection's listen request (and so its subscription id).
LISTEN_ID = 1
#: The id of the ``server/discover`` each stateless connection starts with.
DISCOVER_ID = 0
#: What a listen stream asks for: every list change (no resource URIs: each would be
#: per-stream state on both sides, which a memory benchmark should not add unasked).
LISTEN_FILTER: dict[str, Any] = {
    "toolsListChanged": True,
    "promptsListChanged": True,
    "resourcesListChanged": True,
}
STATELESS_KINDS = frozenset({"echo", "experts", "list", "discover"})
_ACKNOWLEDGED = "notifications/subscriptions/acknowledged"
_CLIENT = {"name": "connscale-loadgen", "version": "1"}


def envelope_params(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """``params`` with the 2026-07-28 envelope in ``_meta`` (no client capabilities)."""
    meta = {META_VERSION: VERSION, META_CLIENT: _CLIENT, META_CAPABILITIES: {}}
    return {**(params or {}), "_meta": meta}


class _Template:
    """A request of one kind: the HTTP head and the body around a ``%d`` for the id."""

    __slots__ = ("body", "head")

    def __init__(self, method: str, params: dict[str, Any], name: str | None) -> None:
        message = {"jsonrpc": "2.0", "id": 0, "method": method, "params": params}
        body = msgspec.json.encode(message)
        self.body = body.replace(b'"id":0,', b'"id":%d,', 1)
        headers = (
            b"content-type: application/json\r\n"
            b"accept: application/json, text/event-stream\r\n"
            b"mcp-protocol-version: " + VERSION.encode() + b"\r\n"
            b"mcp-method: " + method.encode() + b"\r\n"
        )
        if name is not None:
            headers += b"mcp-name: " + name.encode() + b"\r\n"
        self.head = headers

    def render(self, path: bytes, authority: bytes, request_id: int) -> bytes:
        body = self.body % request_id
        return b"POST %b HTTP/1.1\r\nhost: %b\r\n%bcontent-length: %d\r\n\r\n%b" % (
            path,
            authority,
            self.head,
            len(body),
            body,
        )


def _tool(name: str, arguments: dict[str, Any]) -> _Template:
    return _Template("tools/call", envelope_params({"name": name, "arguments": arguments}), name)


_TEMPLATES: dict[str, _Template] = {
    "echo": _tool("echo", {"text": "connscale"}),
    "experts": _tool("consult_experts", {"question": "what scales?"}),
    "list": _Template("tools/list", envelope_params(), None),
    "discover": _Template("server/discover", envelope_params(), None),
    "listen": _Template(
        "subscriptions/listen", envelope_params({"notifications": LISTEN_FILTER}), None
    ),
}


def request_bytes(kind: str, request_id: int, *, path: str = "/mcp", host: str = "") -> bytes:
    """The whole HTTP request of one ``kind`` (a traffic kind, or ``listen``)."""
    template = _TEMPLATES.get(kind)
    if template is None:
        raise ValueError(f"unknown 2026-07-28 request kind {kind!r}")
    return template.render(path.encode(), host.encode(), request_id)


class _Acknowledgement(msgspec.Struct):
    method: str = ""
    params: dict[str, Any] = msgspec.field(default_factory=dict)


_ack_decoder = msgspec.json.Decoder(_Acknowledgement)


def is_acknowledgement(payload: bytes, subscription: int) -> bool:
    """Whether ``payload`` acknowledges the listen request ``subscription``."""
    try:
        message = _ack_decoder.decode(payload)
    except msgspec.DecodeError:
        return False
    meta = message.params.get("_meta")
    return (
        message.method == _ACKNOWLEDGED
        and isinstance(meta, dict)
        and meta.get(META_SUBSCRIPTION) == subscription
        and isinstance(message.params.get("notifications"), dict)
    )


class _Discovered(msgspec.Struct):
    supportedVersions: list[str] | UnsetType = UNSET  # noqa: N815 (the wire name)


_discover_decoder = msgspec.json.Decoder(_Discovered)


class Response:
    """One HTTP response being read (httptools calls these methods as it parses)."""

    __slots__ = ("body", "complete", "content_type", "keep_alive", "parser", "status", "stream")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.content_type = b""
        self.body = bytearray()
        self.complete = False
        self.keep_alive = True
        self.stream: EventStream | None = None  # an event stream: its events so far

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value.strip().lower()

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.content_type.startswith(b"text/event-stream"):
            self.stream = EventStream()

    def on_body(self, data: bytes) -> None:
        self.body += data

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()

    def feed(self, data: bytes) -> str | None:
        """Parse ``data``; a reason when it is not HTTP or the body is over the limit."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            return f"bad HTTP from the server: {exc}"
        if self.stream is None and len(self.body) > MAX_MESSAGE_BYTES:
            return "response body over the size limit"
        return None

    def events(self) -> list[bytes] | None:
        """The events completed so far on an event-stream body (None: over the size limit)."""
        stream = self.stream
        assert stream is not None
        events = stream.feed(self.body)
        self.body.clear()
        return None if stream.too_large else events

    def payloads(self) -> list[bytes] | None:
        """The JSON-RPC messages of a complete response (JSON body or event stream)."""
        if self.stream is not None:
            return self.events()
        return [bytes(self.body)] if self.body.strip() else []

    def describe(self) -> str:
        kind = self.content_type.decode("latin-1") or "no content type"
        return f"HTTP {self.status} {kind}: {bytes(self.body[:200])!r}"


class _Modern(ClientProtocol):
    """What both 2026-07-28 protocols share: their requests and reading a response."""

    default_path = "/mcp"

    def write_request(self, link: Link, conn: Conn, kind: str, request_id: int) -> None:
        response = Response()
        conn.parser = response
        data = _TEMPLATES[kind].render(self.path.encode(), self.options.authority, request_id)
        link.write(conn, data)

    def feed(self, link: Link, conn: Conn, data: bytes) -> Response | None:
        """The response on ``conn`` after ``data``; None once the connection was given up."""
        response = conn.parser
        if not isinstance(response, Response):
            # Bytes while no request is out: not HTTP we asked for.
            link.refused(conn, "protocol", f"the server sent unasked bytes: {data[:80]!r}")
            return None
        problem = response.feed(data)
        if problem is not None:
            link.refused(conn, "protocol", problem)
            return None
        return response


class McpListenProtocol(_Modern):
    """``subscriptions/listen`` streams: ready at the acknowledgement, then held; events counted."""

    name = "mcp-listen"

    def connected(self, link: Link, conn: Conn) -> None:
        conn.state = HANDSHAKE
        self.write_request(link, conn, "listen", LISTEN_ID)

    def received(self, link: Link, conn: Conn, data: bytes) -> None:
        if not data:
            return  # the swarm reports the end
        response = self.feed(link, conn, data)
        if response is None:
            return
        if response.status and (response.status != 200 or response.stream is None):
            # A refusal (an error status, or the SDK's JSON "Subscription limit reached").
            if response.complete:
                link.refused(conn, "refused", f"subscriptions/listen got {response.describe()}")
            return
        if response.stream is not None:
            events = response.events()
            if events is None:
                link.refused(conn, "protocol", "an event over the size limit")
                return
            for payload in events:
                if conn.state == HANDSHAKE:
                    if not is_acknowledgement(payload, LISTEN_ID):
                        link.refused(
                            conn,
                            "protocol",
                            f"the stream did not start with its ack: {payload[:200]!r}",
                        )
                        return
                    link.ready(conn)
                elif conn.state == READY:
                    link.server_event(conn)
        if response.complete and conn.state != CLOSED:
            link.lost(conn, "ended")  # the server ended the stream (its listen result)


class McpStatelessProtocol(_Modern):
    """Stateless requests on kept-alive connections: ``server/discover``, then held idle."""

    name = "mcp-stateless"
    request_kinds = STATELESS_KINDS
    default_mix = "echo"

    def connected(self, link: Link, conn: Conn) -> None:
        conn.state = HANDSHAKE
        self.write_request(link, conn, "discover", DISCOVER_ID)

    def send_request(self, link: Link, conn: Conn, kind: str, request_id: int) -> None:
        self.write_request(link, conn, kind, request_id)

    def received(self, link: Link, conn: Conn, data: bytes) -> None:
        if not data:
            return
        response = self.feed(link, conn, data)
        if response is None or not response.complete:
            return
        conn.parser = None  # idle again: the next request gets a fresh parser
        payloads = response.payloads()
        expected = DISCOVER_ID if conn.state == HANDSHAKE else conn.pending_id
        reply = None
        for payload in payloads or ():
            candidate = decode_reply(payload)
            if candidate is not None and candidate.id == expected:
                reply = candidate
        if conn.state == HANDSHAKE:
            versions: list[str] | UnsetType = UNSET
            if reply is not None and reply.result and response.status == 200:
                try:
                    versions = _discover_decoder.decode(reply.result).supportedVersions
                except msgspec.DecodeError:
                    versions = UNSET
            if isinstance(versions, UnsetType) or VERSION not in versions:
                link.refused(
                    conn,
                    "refused",
                    f"server/discover does not offer {VERSION}: {response.describe()}",
                )
                return
            link.ready(conn)
        elif conn.state == READY and conn.pending_id >= 0:
            error = response.status != 200 or reply is None or bool(reply.error)
            link.answered(conn, error=error)
        if not response.keep_alive and conn.state != CLOSED:
            link.lost(conn, "closed")  # not kept alive: nothing to hold


__all__ = [
    "DISCOVER_ID",
    "LISTEN_FILTER",
    "LISTEN_ID",
    "STATELESS_KINDS",
    "VERSION",
    "McpListenProtocol",
    "McpStatelessProtocol",
    "Response",
    "envelope_params",
    "is_acknowledgement",
    "request_bytes",
]
