"""MCP Streamable HTTP on h11, sans-I/O: bytes in, HTTP response bytes out.

One ``McpHttpHandler`` serves every connection. An ``HttpExchange`` (an ``h11.Connection``
plus the body read so far) exists only while a request is being read or answered; the
engine drops it when the connection goes idle. Sessions travel in signed tokens (see
``tokens``): a POST loads the session into a ``SessionTable`` slot just for that request;
an open GET event stream keeps its slot (and nothing else) for as long as it stays open.

Status codes follow the specification and the official SDK: 400 for a missing session id
or an unsupported ``MCP-Protocol-Version``, 401 for a missing or wrong bearer token (when
one is configured), 404 for an unknown or ended session, 403 for a foreign ``Origin``,
405 for other methods, 406/415 for wrong ``Accept``/``Content-Type``, 409 for a second GET
stream of one session (on this worker), 413 for an oversized body.

Secrets (the bearer token, session tokens) are never logged and never put in an error
message: this module logs nothing, and its error bodies are fixed strings.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Final, NamedTuple
from urllib.parse import urlsplit

import h11

from connscale.core.codec import decode_session, encode_session
from connscale.core.protocol.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    ClientResponse,
    Invalid,
    Notification,
    Request,
    decode_message,
    encode_error,
)
from connscale.core.protocol.mcp import HANDSHAKE_PROTOCOL_VERSIONS, McpProtocol, ToolCall
from connscale.core.protocol.tokens import RevocationTable, SessionSigner
from connscale.errors import ConfigurationError, CorruptStateError, SessionError

__all__ = [
    "SSE_END",
    "HttpExchange",
    "HttpSession",
    "McpHttpHandler",
    "SseStream",
    "http_chunk",
    "sse_event",
]

_JSON: Final = b"application/json"
_SSE: Final = b"text/event-stream"
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_REASONS: Final = {
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    406: b"Not Acceptable",
    409: b"Conflict",
    413: b"Content Too Large",
    415: b"Unsupported Media Type",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
}


#: The last chunk of a chunked body: ends an event stream cleanly.
SSE_END: Final = b"0\r\n\r\n"


def sse_event(data: bytes, *, event: bytes = b"message") -> bytes:
    """One server-sent event; ``data`` must hold no newline (compact JSON never does)."""
    return b"event: " + event + b"\ndata: " + data + b"\n\n"


def http_chunk(payload: bytes) -> bytes:
    """HTTP/1.1 chunked framing for one piece of a streamed body (h11 framed the head)."""
    return b"%x\r\n%b\r\n" % (len(payload), payload)


class SseStream(NamedTuple):
    """A GET event stream to keep open: write ``head``, then keep ``slot`` until it closes."""

    slot: int
    head: bytes


class HttpSession(NamedTuple):
    """A POSTed tool call to run; answer it with ``McpHttpHandler.finish``."""

    call: ToolCall
    slot: int
    transient: bool  # the slot was loaded for this request and is freed after it
    token: bytes
    sse: bool  # answer as an event stream instead of a JSON body


class HttpExchange:
    """The state of one HTTP connection while a request is in flight (h11 does the parsing).

    ``max_backlog`` bounds the bytes held unparsed while a request is being answered (a
    pipelining client); past it the rest is dropped and the connection closes after the
    answer, so a client cannot make the server hold more than that.
    """

    __slots__ = ("body", "busy", "closing", "conn", "max_backlog", "request")

    def __init__(self, max_header_bytes: int, max_backlog: int | None = None) -> None:
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.busy = False  # a request was read and its answer is not sent yet
        self.closing = False  # an answer after which the connection must close
        self.max_backlog = max_header_bytes if max_backlog is None else max_backlog

    def receive(self, data: bytes) -> None:
        """Hand bytes to h11; while an answer is pending, hold at most ``max_backlog``."""
        # Bytes of the request's own body are parsed at once (and bounded by the body limit).
        if self.busy and data and self.conn.their_state is not h11.SEND_BODY:
            if self.closing:
                return  # already over the backlog: the connection closes after the answer
            # h11 buffers whatever it is given until the answer is sent: bound it here.
            if len(self.conn.trailing_data[0]) + len(data) > self.max_backlog:
                self.closing = True
                return
        self.conn.receive_data(data)

    @property
    def buffered_bytes(self) -> int:
        """Bytes this exchange holds: unparsed input plus the body read so far."""
        return len(self.conn.trailing_data[0]) + len(self.body)

    @property
    def must_close(self) -> bool:
        return self.closing or self.conn.our_state in (h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)

    def start_next(self) -> bool:
        """After a full answer: get ready for the next request on this connection."""
        conn = self.conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self.request = None
            self.body = bytearray()
            return True
        return False

    @property
    def idle(self) -> bool:
        """Nothing in flight and nothing buffered: the engine may drop this object."""
        conn = self.conn
        return (
            not self.busy
            and conn.their_state is h11.IDLE
            and conn.our_state is h11.IDLE
            and not conn.trailing_data[0]
        )


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _accepts(accept: bytes | None, media_type: bytes) -> bool:
    if accept is None:
        return True
    for part in accept.split(b","):
        kind = part.split(b";", 1)[0].strip().lower()
        if kind in (media_type, b"*/*", media_type.split(b"/")[0] + b"/*"):
            return True
    return False


class McpHttpHandler:
    """Streamable HTTP at ``path`` for an ``McpProtocol`` whose table indexes session ids."""

    __slots__ = (
        "_allowed_origins",
        "_bearer_token",
        "_on_stream_end",
        "_path",
        "_protocol",
        "_revoked",
        "_signer",
        "_sse_responses",
        "_streams",
    )

    def __init__(
        self,
        protocol: McpProtocol,
        *,
        signer: SessionSigner | None = None,
        revoked: RevocationTable | None = None,
        path: str = "/mcp",
        sse_responses: bool = False,
        allowed_origins: Iterable[str] = (),
        bearer_token: bytes | None = None,
    ) -> None:
        if bearer_token is not None and not bearer_token:
            raise ConfigurationError("a bearer token must not be empty")
        self._protocol = protocol
        # Compared in constant time with every request's "Authorization: Bearer ..." header.
        self._bearer_token = bearer_token
        self._signer = signer or SessionSigner()
        self._revoked = revoked or RevocationTable()
        self._path = path.encode("ascii")
        self._sse_responses = sse_responses
        self._allowed_origins = frozenset(origin.rstrip("/") for origin in allowed_origins)
        self._streams: dict[
            int, int
        ] = {}  # slot -> stream key (the engine's fd), open streams only
        self._on_stream_end: Callable[[int], None] = lambda key: None

    def set_stream_closer(self, close: Callable[[int], None]) -> None:
        """How to end an open event stream (by its key) when its session is deleted."""
        self._on_stream_end = close

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def new_exchange(self) -> HttpExchange:
        limits = self._protocol.limits
        # Room for one more whole request pipelined behind the one being answered.
        return HttpExchange(
            limits.max_header_bytes, limits.max_header_bytes + limits.max_frame_bytes
        )

    # -- reading requests ---------------------------------------------------------------------

    def next_outcome(self, exchange: HttpExchange) -> bytes | HttpSession | SseStream | None:
        """The next thing to do for this connection, or None until more bytes arrive.

        ``bytes``: a complete response to send; ``HttpSession``: a tool call to run first;
        ``SseStream``: an event stream to open. Check ``exchange.must_close`` after sending.
        """
        conn = exchange.conn
        max_body = self._protocol.limits.max_frame_bytes
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                return self._fatal(exchange, exc.error_status_hint, "malformed HTTP request")
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return None
            if isinstance(event, h11.Request):
                exchange.request = event
                exchange.busy = True
                length = _header(event.headers, b"content-length")
                if length is not None and int(length) > max_body:
                    return self._fatal(exchange, 413, "request body too large")
            elif isinstance(event, h11.Data):
                exchange.body += event.data
                if len(exchange.body) > max_body:
                    return self._fatal(exchange, 413, "request body too large")
            elif isinstance(event, h11.EndOfMessage):
                return self._dispatch(exchange)
            else:  # ConnectionClosed
                return None

    def _dispatch(self, exchange: HttpExchange) -> bytes | HttpSession | SseStream:
        request = exchange.request
        assert request is not None
        headers = request.headers
        target = request.target.split(b"?", 1)[0]
        if target != self._path:
            return self._error(
                exchange, 404, "not found: the MCP endpoint is " + self._path.decode()
            )
        origin = _header(headers, b"origin")
        if origin is not None and not self._origin_allowed(origin):
            return self._error(exchange, 403, "forbidden: Origin not allowed")
        if self._bearer_token is not None and not self._authorized(headers):
            return self._error(
                exchange,
                401,
                "unauthorized: send Authorization: Bearer <token>",
                extra=[(b"www-authenticate", b'Bearer realm="mcp"')],
            )
        version = _header(headers, b"mcp-protocol-version")
        if version is not None and version.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS:
            return self._error(exchange, 400, "bad request: unsupported MCP-Protocol-Version")
        method = request.method
        if method == b"POST":
            return self._post(exchange, headers)
        if method == b"GET":
            return self._get(exchange, headers)
        if method == b"DELETE":
            return self._delete(exchange, headers)
        return self._error(
            exchange, 405, "method not allowed", extra=[(b"allow", b"GET, POST, DELETE")]
        )

    def _authorized(self, headers: Sequence[tuple[bytes, bytes]]) -> bool:
        expected = self._bearer_token
        assert expected is not None
        value = _header(headers, b"authorization")
        if value is None:
            return False
        scheme, _, presented = value.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        # Constant time: the comparison does not tell how many leading bytes were right.
        return hmac.compare_digest(presented.strip(), expected)

    def _origin_allowed(self, origin: bytes) -> bool:
        text = origin.decode("latin-1").rstrip("/")
        if text in self._allowed_origins:
            return True
        try:
            host = urlsplit(text).hostname
        except ValueError:
            return False
        return host in _LOCAL_HOSTS

    # -- sessions -----------------------------------------------------------------------------

    def _session(
        self, exchange: HttpExchange, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[int, bool, bytes] | bytes:
        """(slot, transient, token) for the request's session, or an error response."""
        token = _header(headers, b"mcp-session-id")
        if token is None:
            return self._error(exchange, 400, "bad request: missing Mcp-Session-Id")
        state = self._signer.verify(token)
        if state is None:
            return self._error(exchange, 404, "session not found")
        try:
            session = decode_session(state)
        except CorruptStateError:
            return self._error(exchange, 404, "session not found")
        session_id = session.session_id
        if self._revoked.is_revoked(session_id):
            return self._error(exchange, 404, "session not found")
        table = self._protocol.table
        existing = table.find(session_id)
        if existing is not None:
            return existing, False, token
        try:
            return table.load(session), True, token
        except SessionError:
            return self._error(exchange, 500, "server full: try again later")

    def _post(
        self, exchange: HttpExchange, headers: Sequence[tuple[bytes, bytes]]
    ) -> bytes | HttpSession:
        content_type = _header(headers, b"content-type") or b""
        if content_type.split(b";", 1)[0].strip().lower() != _JSON:
            return self._error(exchange, 415, "unsupported media type: send application/json")
        accept = _header(headers, b"accept")
        sse = self._sse_responses and _accepts(accept, _SSE)
        if not sse and not _accepts(accept, _JSON):
            return self._error(exchange, 406, "not acceptable: accept application/json")
        limits = self._protocol.limits
        message = decode_message(
            bytes(exchange.body),
            max_json_depth=limits.max_json_depth,
            max_id_length=limits.max_id_length,
            max_json_items=limits.max_json_items,
        )
        if isinstance(message, Invalid):
            status = 400
            body = encode_error(message.id, message.code, message.message)
            return self._respond(exchange, status, _JSON, body)
        if isinstance(message, Request) and message.method == "initialize":
            return self._initialize(exchange, message, sse)
        found = self._session(exchange, headers)
        if isinstance(found, bytes):
            return found
        slot, transient, token = found
        protocol = self._protocol
        try:
            outcome = protocol.handle_message(slot, message)
        except BaseException:
            if transient:
                protocol.close_session(slot)
            raise
        if isinstance(outcome, ToolCall):
            return HttpSession(outcome, slot, transient, token, sse)
        if transient:
            protocol.close_session(slot)
        if isinstance(message, Notification | ClientResponse) or outcome is None:
            return self._respond(exchange, 202, None, b"", token)
        return self._reply(exchange, outcome, token, sse)

    def _initialize(self, exchange: HttpExchange, message: Request, sse: bool) -> bytes:
        protocol = self._protocol
        try:
            slot = protocol.open_session(session_id=secrets.token_bytes(16))
        except SessionError:
            return self._error(exchange, 500, "server full: try again later")
        try:
            reply = protocol.handle_message(slot, message)
            assert isinstance(reply, bytes)
            if not protocol.is_initialized(slot):
                return self._reply(exchange, reply, None, sse, status=400)
            state = encode_session(protocol.table.session(slot))
            token = self._signer.sign(state).encode("ascii")
        except ConfigurationError:  # only with limits raised past what a token can carry
            body = encode_error(message.id, INVALID_PARAMS, "session state too large")
            return self._reply(exchange, body, None, sse, status=400)
        finally:
            protocol.close_session(slot)
        return self._reply(exchange, reply, token, sse)

    def finish(self, exchange: HttpExchange, pending: HttpSession, reply: bytes) -> bytes:
        """The HTTP response carrying a finished tool call's JSON-RPC ``reply``."""
        self.release(pending)
        return self._reply(exchange, reply, pending.token, pending.sse)

    def release(self, pending: HttpSession) -> None:
        """Free a tool call's transient slot (its answer was sent or its connection died)."""
        if pending.transient:
            self._protocol.close_session(pending.slot)

    def abandon(self, exchange: HttpExchange) -> None:
        """The connection closed mid-request; nothing to free (tool calls free themselves)."""
        exchange.busy = False

    def _get(
        self, exchange: HttpExchange, headers: Sequence[tuple[bytes, bytes]]
    ) -> bytes | SseStream:
        if not _accepts(_header(headers, b"accept"), _SSE):
            return self._error(exchange, 406, "not acceptable: accept text/event-stream")
        found = self._session(exchange, headers)
        if isinstance(found, bytes):
            return found
        slot, transient, token = found
        if not transient and slot in self._streams:
            return self._error(exchange, 409, "conflict: this session already has a GET stream")
        conn = exchange.conn
        head = conn.send(
            h11.Response(
                status_code=200,
                headers=[
                    (b"content-type", _SSE),
                    (b"cache-control", b"no-cache, no-transform"),
                    (b"mcp-session-id", token),
                ],
            )
        )
        assert head is not None
        exchange.busy = False
        return SseStream(slot, head)

    def attach_stream(self, slot: int, key: int) -> None:
        """Record that ``slot``'s event stream is open under the engine's ``key``."""
        self._streams[slot] = key

    def detach_stream(self, slot: int) -> None:
        """The event stream of ``slot`` closed: free the slot."""
        self._streams.pop(slot, None)
        self._protocol.close_session(slot)

    def _delete(self, exchange: HttpExchange, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
        found = self._session(exchange, headers)
        if isinstance(found, bytes):
            return found
        slot, transient, _token = found
        self._revoked.revoke(self._protocol.table.get(slot, "session_id"))
        key = self._streams.get(slot)
        if transient:
            self._protocol.close_session(slot)
        elif key is not None:
            self._on_stream_end(key)
        return self._respond(exchange, 200, None, b"")

    # -- writing responses --------------------------------------------------------------------

    def _reply(
        self,
        exchange: HttpExchange,
        reply: bytes,
        token: bytes | None,
        sse: bool,
        *,
        status: int = 200,
    ) -> bytes:
        if sse and status == 200:
            return self._respond(exchange, 200, _SSE, sse_event(reply), token, stream=True)
        return self._respond(exchange, status, _JSON, reply, token)

    def _respond(
        self,
        exchange: HttpExchange,
        status: int,
        content_type: bytes | None,
        body: bytes,
        token: bytes | None = None,
        *,
        extra: list[tuple[bytes, bytes]] | None = None,
        stream: bool = False,
    ) -> bytes:
        headers: list[tuple[bytes, bytes]] = []
        if content_type is not None:
            headers.append((b"content-type", content_type))
        if stream:
            headers.append((b"cache-control", b"no-cache, no-transform"))
        else:
            headers.append((b"content-length", b"%d" % len(body)))
        if token is not None:
            headers.append((b"mcp-session-id", token))
        if extra:
            headers.extend(extra)
        conn = exchange.conn
        # A response to HEAD has no body (h11 raises if given one; found by fuzzing).
        head_only = exchange.request is not None and exchange.request.method == b"HEAD"
        parts = [
            conn.send(h11.Response(status_code=status, headers=headers)),
            conn.send(h11.Data(data=body)) if body and not head_only else b"",
            conn.send(h11.EndOfMessage()),
        ]
        exchange.busy = False
        return b"".join(part for part in parts if part)

    def _error(
        self,
        exchange: HttpExchange,
        status: int,
        message: str,
        *,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> bytes:
        code = PARSE_ERROR if status == 400 and message.startswith("parse") else INVALID_REQUEST
        body = encode_error(None, code, message)
        return self._respond(exchange, status, _JSON, body, extra=extra)

    def _fatal(self, exchange: HttpExchange, status: int, message: str) -> bytes:
        """An error after which the connection closes (h11 cannot go on, or a body too big)."""
        body = encode_error(None, INVALID_REQUEST, message)
        reason = _REASONS.get(status, b"Error")
        exchange.busy = False
        exchange.closing = True
        # h11 refuses to write on a connection it saw fail, so this one response is built
        # here; it is the only hand-made HTTP in the server (no parsing, fixed headers).
        head = b"HTTP/1.1 %d %b\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
            status,
            reason,
            len(body),
        )
        return head + b"connection: close\r\n\r\n" + body
