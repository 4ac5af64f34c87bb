"""MCP Streamable HTTP, sans-I/O: a parsed request in, a response (or a call to run) out.

One ``McpHttp`` serves every HTTP connection of an engine; the connection core reads the
requests (``httpwire``) and hands them here one at a time. Sessions travel in sealed tokens
(see ``tokens``): a POST loads the session into a ``SessionTable`` slot just for that
request; an open GET event stream keeps its slot (and nothing else) while it stays open.

A call (``tools/call`` and the like) is answered with one JSON body when it finishes
without saying anything on the way; a call that sends notifications or server-to-client
requests while it runs (progress, log messages, sampling) turns its answer into an event
stream, when the client accepts one, and its final answer is the stream's last event. A
message of a call whose client cannot take a stream goes to the session's GET stream.

Status codes follow the specification and the official SDK: 400 for a missing session id
or an unsupported ``MCP-Protocol-Version``, 401 for a missing or wrong bearer token (when
one is configured), 403 for a foreign ``Origin``, 404 for an unknown, ended or expired
session, 405 for other methods, 406/415 for wrong ``Accept``/``Content-Type``, 409 for a
second GET stream of one session (on this worker), 413 for an oversized body, 421 for a
``Host`` that is not this server's (DNS rebinding).

Secrets (the bearer token, session tokens) are never logged and never put in an error
message: this module logs nothing, and its error bodies are fixed strings.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final, NamedTuple, TypeVar
from urllib.parse import urlsplit

from connscale.core.codec import decode_session, encode_session
from connscale.core.protocol.httpwire import (
    CHUNK_END,
    HttpError,
    HttpRequest,
    chunk,
    response,
    response_head,
)
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
from connscale.core.protocol.mcp import Call, Cancel, Listen, McpProtocol, SessionView
from connscale.core.protocol.stateless import STATUS_OF
from connscale.core.protocol.tokens import RevocationTable, SessionSealer
from connscale.core.protocol.versions import HANDSHAKE_VERSIONS
from connscale.errors import ConfigurationError, CorruptStateError, SessionError

if TYPE_CHECKING:
    from connscale.core.connection import ConnectionCore
    from connscale.core.session import Session

__all__ = [
    "LOOPBACK_HOSTS",
    "HttpCall",
    "McpHttp",
    "OpenListen",
    "OpenStream",
    "reply_status",
    "sse_event",
]

_JSON: Final = b"application/json"
_SSE: Final = b"text/event-stream"
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
#: Host names a server bound to a loopback address answers to (any port).
LOOPBACK_HOSTS: Final = _LOCAL_HOSTS
_STREAM_HEADERS: Final = (
    (b"content-type", _SSE),
    (b"cache-control", b"no-cache, no-transform"),
    (b"transfer-encoding", b"chunked"),
)
_SUPPORTED_VERSIONS: Final = frozenset(v.encode("ascii") for v in HANDSHAKE_VERSIONS)
#: Session views kept by token, so that a client's next POST skips opening its token. Bounded:
#: the oldest goes first. A view costs ~0.4 KB; this is a fixed cost, not one per session.
VIEW_CACHE_SIZE: Final = 1024
#: Sessions whose table row is kept after ``initialize`` for the GET stream that usually
#: follows (the oldest row is freed past this many).
KEPT_ROWS: Final = 64


def sse_event(data: bytes, *, event: bytes = b"message") -> bytes:
    """One server-sent event; ``data`` must hold no newline (compact JSON never does)."""
    return b"event: " + event + b"\ndata: " + data + b"\n\n"


class OpenStream(NamedTuple):
    """A GET event stream to keep open: write ``head``, then keep ``slot`` until it closes."""

    slot: int
    head: bytes


class OpenListen(NamedTuple):
    """A 2026-07-28 ``subscriptions/listen`` stream: write ``head``, then keep it open."""

    listen: Listen
    head: bytes


class HttpCall(NamedTuple):
    """How to answer a POSTed call: its session token (None in the stateless era) and what
    the client accepts."""

    token: bytes | None
    accepts_stream: bool
    keep_alive: bool
    stream_only: bool  # the server answers every call as an event stream (--sse-responses)
    modern: bool = False  # 2026-07-28: error statuses by code, no session header


def reply_status(reply: bytes) -> int:
    """The HTTP status of a 2026-07-28 reply: by its error code (400, 404), else 200."""
    marker = reply.find(b',"error":{"code":')
    if marker < 0:
        return 200
    start = marker + 17
    end = reply.find(b",", start)
    try:
        code = int(reply[start : end if end > 0 else None].rstrip(b"}"))
    except ValueError:
        return 400
    return STATUS_OF.get(code, 200)


def _accepts(accept: bytes | None, media_type: bytes) -> bool:
    if accept is None:
        return True
    for part in accept.split(b","):
        kind = part.split(b";", 1)[0].strip().lower()
        if kind in (media_type, b"*/*", media_type.split(b"/")[0] + b"/*"):
            return True
    return False


_Key = TypeVar("_Key")
_Known = TypeVar("_Known")


class _HeaderFacts:
    """What the ``Content-Type``, ``Accept`` and ``Host`` values a client sends mean, worked
    out once per distinct value: a client sends the same ones on every request (bounded
    memo, emptied when full, so that a client sending new values each time gains no memory)."""

    __slots__ = ("_accept", "_hosts", "_json_body")

    LIMIT: Final = 64

    def __init__(self) -> None:
        self._accept: dict[bytes | None, tuple[bool, bool]] = {}
        self._json_body: dict[bytes | None, bool] = {}
        self._hosts: dict[bytes, bool] = {}

    def host_allowed(self, value: bytes, allowed: frozenset[str]) -> bool:
        """Whether a ``Host`` header names one of ``allowed`` (always the server's own set)."""
        known = self._hosts.get(value)
        if known is None:
            known = _remember(self._hosts, value, _host_name(value) in allowed)
        return known

    def accept(self, value: bytes | None) -> tuple[bool, bool]:
        """(accepts JSON, accepts an event stream)."""
        known = self._accept.get(value)
        if known is None:
            known = _remember(self._accept, value, (_accepts(value, _JSON), _accepts(value, _SSE)))
        return known

    def json_body(self, value: bytes | None) -> bool:
        known = self._json_body.get(value)
        if known is None:
            media_type = (value or b"").split(b";", 1)[0].strip().lower()
            known = _remember(self._json_body, value, media_type == _JSON)
        return known


def _remember(memo: dict[_Key, _Known], key: _Key, known: _Known) -> _Known:
    """Store ``known`` under ``key``, emptying ``memo`` first when it holds LIMIT values."""
    if len(memo) >= _HeaderFacts.LIMIT:
        memo.clear()
    memo[key] = known
    return known


def _host_name(host: bytes) -> str | None:
    """The name in a ``Host`` header, without its port (IPv6 literals unbracketed)."""
    try:
        text = host.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return None
    if text.startswith("["):
        end = text.find("]")
        return text[1:end] if end > 0 else None
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


class McpHttp:
    """Streamable HTTP at ``path`` for an ``McpProtocol`` whose table indexes session ids.

    ``allowed_hosts`` None accepts any ``Host``; a set accepts those names (with any port).
    ``stream_responses`` answers every call as an event stream, as the official SDK does
    by default; otherwise a call is answered with JSON unless it sends messages as it runs.
    """

    def __init__(
        self,
        protocol: McpProtocol,
        *,
        sealer: SessionSealer | None = None,
        revoked: RevocationTable | None = None,
        path: str = "/mcp",
        stream_responses: bool = False,
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] | None = None,
        bearer_token: bytes | None = None,
    ) -> None:
        if bearer_token is not None and not bearer_token:
            raise ConfigurationError("a bearer token must not be empty")
        self.protocol = protocol
        # Compared in constant time with every request's "Authorization: Bearer ..." header.
        self._bearer_token = bearer_token
        self._sealer = sealer or SessionSealer()
        self._revoked = revoked or RevocationTable()
        self._path = path.encode("ascii")
        self._stream_responses = stream_responses
        self._allowed_origins = frozenset(origin.rstrip("/") for origin in allowed_origins)
        self._allowed_hosts = (
            None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
        )
        self._core: ConnectionCore | None = None
        self._views: dict[bytes, SessionView] = {}
        # Slots of sessions just initialized, oldest first: a client opens its GET stream
        # right after initialize, and that GET takes the row as it is instead of opening,
        # decoding and loading the token into a new one. Bounded by KEPT_ROWS.
        self._kept: dict[int, None] = {}
        self._facts = _HeaderFacts()

    @property
    def kept_rows(self) -> int:
        """Table rows kept since ``initialize`` for a GET stream that has not come yet."""
        return len(self._kept)

    def bind(self, core: ConnectionCore) -> None:
        self._core = core

    @property
    def core(self) -> ConnectionCore:
        assert self._core is not None, "McpHttp is not bound to a connection core"
        return self._core

    # -- requests ------------------------------------------------------------------------------

    def handle(
        self, connection: int, request: HttpRequest
    ) -> bytes | OpenStream | OpenListen | None:
        """The response to ``request``, a stream to open, or None while a call runs."""
        headers = request.headers
        if request.path != self._path:
            return self._error(
                request, 404, "not found: the MCP endpoint is " + self._path.decode()
            )
        if self._allowed_hosts is not None:
            host = headers.get(b"host")
            if host is None or not self._facts.host_allowed(host, self._allowed_hosts):
                return self._error(request, 421, "misdirected request: invalid Host header")
        origin = headers.get(b"origin")
        if origin is not None and not self._origin_allowed(origin):
            return self._error(request, 403, "forbidden: Origin not allowed")
        if self._bearer_token is not None and not self._authorized(headers):
            return self._error(
                request,
                401,
                "unauthorized: send Authorization: Bearer <token>",
                extra=((b"www-authenticate", b'Bearer realm="mcp"'),),
            )
        version = headers.get(b"mcp-protocol-version")
        if version is not None and version.strip() not in _SUPPORTED_VERSIONS:
            # Not a handshake revision: the stateless era (which refuses what it cannot serve).
            return self._modern(connection, request)
        method = request.method
        if method == b"POST":
            return self._post(connection, request)
        if method == b"GET":
            return self._get(request)
        if method == b"DELETE":
            return self._delete(request)
        return self._error(
            request, 405, "method not allowed", extra=((b"allow", b"GET, POST, DELETE"),)
        )

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        expected = self._bearer_token
        assert expected is not None
        value = headers.get(b"authorization")
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

    def _view(self, request: HttpRequest) -> tuple[SessionView, bytes, Session | None] | bytes:
        """The request's session as its token carries it (a POST needs no more), its token,
        and the whole decoded session when this call opened the token (None when its view
        was remembered); or an error response. Opened tokens are remembered (bounded), so a
        client's next request skips the decryption; expiry and revocation are checked on
        every request."""
        token = request.headers.get(b"mcp-session-id")
        if token is None:
            return self._error(request, 400, "bad request: missing Mcp-Session-Id")
        views = self._views
        view = views.get(token)
        session: Session | None = None
        if view is None or view.expires <= self._sealer.now():
            opened = self._sealer.open(token)
            if opened is None:
                views.pop(token, None)
                return self._error(request, 404, "session not found")
            try:
                session = decode_session(opened[0])
            except CorruptStateError:
                return self._error(request, 404, "session not found")
            view = self._remember_view(token, session, opened[1])
        if self._revoked.is_revoked(view.key):
            views.pop(token, None)
            return self._error(request, 404, "session not found")
        return view, token, session

    def _remember_view(self, token: bytes, session: Session, issued: float) -> SessionView:
        """The view of ``session`` (sealed into ``token`` at ``issued``), remembered for the
        session's next requests (bounded: the oldest is forgotten)."""
        view = SessionView(session, self._sealer.expiry(issued))
        views = self._views
        if len(views) >= VIEW_CACHE_SIZE:
            del views[next(iter(views))]
        views[token] = view
        return view

    def _session(self, request: HttpRequest) -> tuple[int, bool, bytes] | bytes:
        """(slot, transient, token) for the request's session, or an error response: for
        what holds the session in a table slot (a GET stream) or must find it there.
        ``transient``: the slot is this request's to keep or free (loaded from the token,
        or kept since ``initialize``); otherwise a stream holds it."""
        found = self._view(request)
        if isinstance(found, bytes):
            return found
        view, token, session = found
        table = self.protocol.table
        existing = table.find(view.key)
        if existing is not None:
            if existing in self._kept:
                del self._kept[existing]
                return existing, True, token
            return existing, False, token
        if session is None:  # its view was remembered: open the token for the whole session
            opened = self._sealer.open(token)
            if opened is None:
                return self._error(request, 404, "session not found")
            try:
                session = decode_session(opened[0])
            except CorruptStateError:
                return self._error(request, 404, "session not found")
        loaded = session
        slot = self._allocate(lambda: table.load(loaded))
        if slot is None:
            return self._error(request, 503, "server full: try again later")
        return slot, True, token

    def _allocate(self, allocate: Callable[[], int]) -> int | None:
        """The slot ``allocate`` takes; None when the table is full even after the oldest
        row kept for a GET gave way (kept rows never refuse a session or a stream)."""
        try:
            return allocate()
        except SessionError:
            if not self._kept:
                return None
        self._free_oldest_kept()
        try:
            return allocate()
        except SessionError:
            return None

    def _post(self, connection: int, request: HttpRequest) -> bytes | OpenListen | None:
        headers = request.headers
        facts = self._facts
        if not facts.json_body(headers.get(b"content-type")):
            return self._error(request, 415, "unsupported media type: send application/json")
        accepts_json, accepts_stream = facts.accept(headers.get(b"accept"))
        if not accepts_json and not (self._stream_responses and accepts_stream):
            return self._error(request, 406, "not acceptable: accept application/json")
        protocol = self.protocol
        limits = protocol.limits
        message = decode_message(
            request.body,
            max_json_depth=limits.max_json_depth,
            max_id_length=limits.max_id_length,
            max_json_items=limits.max_json_items,
        )
        if isinstance(message, Invalid):
            body = encode_error(message.id, message.code, message.message)
            return response(400, _JSON, body, close=not request.keep_alive)
        if isinstance(message, Request) and message.method == "initialize":
            return self._initialize(request, message)
        if (
            isinstance(message, Request)
            and b"mcp-session-id" not in request.headers
            and protocol.is_modern(message)
        ):
            # The stateless era without its headers: it is refused as that era refuses it.
            return self._modern(connection, request)
        found = self._view(request)
        if isinstance(found, bytes):
            return found
        view, token, _session = found
        key = view.key
        outcome = protocol.handle_message(-1, message, view)
        if isinstance(outcome, Call):
            outcome.http = HttpCall(
                token, accepts_stream, request.keep_alive, self._stream_responses and accepts_stream
            )
            core = self.core
            outcome.channel = core
            outcome.runner = core.runner
            outcome.connection = connection
            outcome.generation = core.generation_of(connection)
            core.track_call(connection, outcome)
            core.runner.start(outcome)
            return None  # answered from finish_call (perhaps already, for a sync call)
        if isinstance(outcome, Cancel):
            self.core.runner.cancel(key, outcome.request_id)
        elif isinstance(outcome, ClientResponse):
            self.core.runner.answered(key, outcome)
        if outcome is None or isinstance(outcome, Cancel | ClientResponse | Listen):
            return response(202, None, b"", close=not request.keep_alive)
        return self._reply(request, outcome, token, self._stream_responses and accepts_stream)

    def _modern(self, connection: int, request: HttpRequest) -> bytes | OpenListen | None:
        """A 2026-07-28 request: one POST per request, no session, headers match the body."""
        close = not request.keep_alive
        if request.method != b"POST":
            return response(405, None, b"", ((b"allow", b"POST"),), close=close)
        headers = request.headers
        facts = self._facts
        if not facts.json_body(headers.get(b"content-type")):
            return self._error(request, 415, "unsupported media type: send application/json")
        accepts_json, accepts_stream = facts.accept(headers.get(b"accept"))
        if not accepts_json:
            return self._error(request, 406, "not acceptable: accept application/json")
        protocol = self.protocol
        limits = protocol.limits
        message = decode_message(
            request.body,
            max_json_depth=limits.max_json_depth,
            max_id_length=limits.max_id_length,
            max_json_items=limits.max_json_items,
        )
        if isinstance(message, Invalid):
            body = encode_error(message.id, message.code, message.message)
            return response(400, _JSON, body, close=close)
        if isinstance(message, Notification):
            return response(202, None, b"", close=close)  # nothing a server must act on here
        if not isinstance(message, Request):
            body = encode_error(
                None,
                INVALID_REQUEST,
                "Body must be a single JSON-RPC request or notification object",
            )
            return response(400, _JSON, body, close=close)
        outcome = protocol.handle_stateless(-1, message, headers)
        if isinstance(outcome, Listen):
            if not accepts_stream:
                return self._error(request, 406, "not acceptable: a listen needs text/event-stream")
            head = response_head(200, _STREAM_HEADERS)
            return OpenListen(outcome, head + chunk(sse_event(outcome.acknowledgement)))
        if isinstance(outcome, Call):
            stream_only = self._stream_responses and accepts_stream
            outcome.http = HttpCall(None, accepts_stream, request.keep_alive, stream_only, True)
            outcome.key = b"\x00" + connection.to_bytes(4, "big")  # cancelled with the stream
            core = self.core
            outcome.channel = core
            outcome.runner = core.runner
            outcome.connection = connection
            outcome.generation = core.generation_of(connection)
            core.track_call(connection, outcome)
            core.runner.start(outcome)
            return None
        return response(reply_status(outcome), _JSON, outcome, close=close)

    def _initialize(self, request: HttpRequest, message: Request) -> bytes:
        protocol = self.protocol
        accepts_stream = self._stream_responses and _accepts(request.headers.get(b"accept"), _SSE)
        # os.urandom is what secrets.token_bytes returns, without its two Python frames.
        session_id = os.urandom(16)
        slot = self._allocate(lambda: protocol.open_session(session_id=session_id))
        if slot is None:
            return self._error(request, 503, "server full: try again later")
        keep = False
        try:
            reply = protocol.handle_message(slot, message)
            assert isinstance(reply, bytes)
            if not protocol.is_initialized(slot):
                return response(400, _JSON, reply, close=not request.keep_alive)
            session = protocol.table.session(slot)
            # Read before sealing: the view then expires no later than the token does.
            issued = float(int(self._sealer.now()))
            token = self._sealer.seal(encode_session(session)).encode("ascii")
            keep = True
        except ConfigurationError:  # only with limits raised past what a token can carry
            body = encode_error(message.id, INVALID_PARAMS, "session state too large")
            return response(400, _JSON, body, close=not request.keep_alive)
        finally:
            if not keep:
                protocol.close_session(slot)
        self._remember_view(token, session, issued)
        kept = self._kept
        if len(kept) >= KEPT_ROWS:
            self._free_oldest_kept()
        kept[slot] = None
        return self._reply(request, reply, token, accepts_stream)

    def _free_oldest_kept(self) -> None:
        """Free the oldest row kept since ``initialize`` (no GET took it); there is one."""
        kept = self._kept
        slot = next(iter(kept))
        del kept[slot]
        self.protocol.close_session(slot)

    def _get(self, request: HttpRequest) -> bytes | OpenStream:
        if not _accepts(request.headers.get(b"accept"), _SSE):
            return self._error(request, 406, "not acceptable: accept text/event-stream")
        found = self._session(request)
        if isinstance(found, bytes):
            return found
        slot, transient, token = found
        if not transient and self.core.stream_connection(slot) is not None:
            return self._error(request, 409, "conflict: this session already has a GET stream")
        head = response_head(200, (*_STREAM_HEADERS, (b"mcp-session-id", token)))
        return tuple.__new__(OpenStream, (slot, head))  # not the NamedTuple's Python __new__

    def _delete(self, request: HttpRequest) -> bytes:
        found = self._session(request)
        if isinstance(found, bytes):
            return found
        slot, transient, token = found
        protocol = self.protocol
        session_id = protocol.table.get(slot, "session_id")
        self._revoked.revoke(session_id)
        self._views.pop(token, None)
        protocol.end_session(session_id)
        stream = None if transient else self.core.stream_connection(slot)
        if transient:
            protocol.close_session(slot)
        elif stream is not None:
            self.core.end_stream(stream, CHUNK_END)
        return response(200, None, b"", close=not request.keep_alive)

    # -- calls ---------------------------------------------------------------------------------

    def finish_call(self, call: Call, reply: bytes | None, connection: int) -> None:
        """A POSTed call ended: answer the request (``connection`` -1: its client is gone)."""
        protocol = self.protocol
        if call.transient:
            protocol.close_session(call.slot)
        if connection < 0:
            return
        state = call.http
        assert state is not None
        if call.stream:  # the answer is already an event stream: its last event, then its end
            last = b"" if reply is None else chunk(sse_event(reply))
            self.core.http_answer(connection, last + CHUNK_END, state.keep_alive)
            return
        head: tuple[tuple[bytes, bytes], ...] = (
            () if state.token is None else ((b"mcp-session-id", state.token),)
        )
        if reply is None:
            # Cancelled before it said anything: MCP sends no response to a cancelled request,
            # so the POST gets an event stream that ends empty (or, without one, a bare 202).
            if state.accepts_stream:
                empty = response_head(200, (*_STREAM_HEADERS, *head))
                self.core.http_answer(connection, empty + CHUNK_END, state.keep_alive)
            else:
                self.core.http_answer(connection, response(202, None, b""), state.keep_alive)
            return
        if state.stream_only:
            body = response_head(200, (*_STREAM_HEADERS, *head)) + chunk(sse_event(reply))
            self.core.http_answer(connection, body + CHUNK_END, state.keep_alive)
            return
        status = reply_status(reply) if state.modern else 200
        self.core.http_answer(
            connection,
            response(status, _JSON, reply, head, close=not state.keep_alive),
            state.keep_alive,
        )

    def notify_call(self, call: Call, message: bytes, connection: int) -> bool:
        """A running call's notification or request: on its response stream if it can have one."""
        state = call.http
        assert state is not None
        if not call.stream:
            if not state.accepts_stream:
                return False if state.modern else self.notify_session(call, message)
            call.stream = 1
            session = () if state.token is None else ((b"mcp-session-id", state.token),)
            head = response_head(200, (*_STREAM_HEADERS, *session))
            return self.core.http_write(connection, head + chunk(sse_event(message)))
        return self.core.http_write(connection, chunk(sse_event(message)))

    def notify_session(self, call: Call, message: bytes) -> bool:
        """A message for the call's session, on its GET stream when one is open here."""
        return self.push_session(self.protocol.session_key(call.slot), message)

    def push(self, connection: int, message: bytes) -> bool:
        """An event on the open GET stream ``connection``."""
        return self.core.http_write(connection, chunk(sse_event(message)))

    def push_session(self, key: int | bytes, message: bytes) -> bool:
        """An event on the GET stream of session ``key`` (an HTTP session id), if open here."""
        if not isinstance(key, bytes):
            return False
        slot = self.protocol.table.find(key)
        if slot is None:
            return False
        connection = self.core.stream_connection(slot)
        if connection is None:
            return False
        return self.push(connection, message)

    def stream_closed(self, slot: int) -> None:
        """The GET stream holding ``slot`` closed: free the slot."""
        self.protocol.close_session(slot)

    # -- responses -------------------------------------------------------------------------------

    def _reply(
        self, request: HttpRequest, reply: bytes, token: bytes | None, stream: bool
    ) -> bytes:
        headers = () if token is None else ((b"mcp-session-id", token),)
        if stream:
            head = response_head(200, (*_STREAM_HEADERS, *headers))
            return head + chunk(sse_event(reply)) + CHUNK_END
        return response(200, _JSON, reply, headers, close=not request.keep_alive)

    def _error(
        self,
        request: HttpRequest,
        status: int,
        message: str,
        *,
        extra: tuple[tuple[bytes, bytes], ...] = (),
    ) -> bytes:
        code = PARSE_ERROR if status == 400 and message.startswith("parse") else INVALID_REQUEST
        body = encode_error(None, code, message)
        return response(
            status,
            _JSON,
            body,
            extra,
            close=not request.keep_alive,
            head_only=request.method == b"HEAD",
        )

    def fatal(self, error: HttpError) -> bytes:
        """The response to a request that could not be read; the connection closes after it."""
        body = encode_error(None, INVALID_REQUEST, error.message)
        return response(error.status, _JSON, body, close=True)
