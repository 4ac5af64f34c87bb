"""MCP over JSON-RPC for every session of a worker, sans-I/O: messages in, replies and calls out.

One ``McpProtocol`` serves all sessions; per session it keeps nothing but the session's
``SessionTable`` slot (and, only for sessions that asked, a log level or subscriptions).
What the server serves comes from a ``Surface`` (see ``surface``); this module owns the
protocol: the lifecycle, pagination, subscriptions, cancellation and the wire shapes.

Lifecycle of the handshake era, as the official Python SDK negotiates it:

* ``initialize`` (once) answers with the client's protocol version when this server
  speaks it, else the latest handshake version; the session then accepts requests (the
  SDK opens its request gate on the ``initialize`` answer, not on the notification).
* ``notifications/initialized`` moves the session to ``Phase.INITIALIZED``.
* ``ping`` is answered in every phase; other known methods before ``initialize`` are
  refused with -32600; unknown methods get -32601 in every phase, as do the methods of a
  capability the surface does not have.
* A ``notifications/...`` method sent with an id is refused with -32600 and has no effect.

A request the surface must answer (``tools/call``, ``resources/read``, ``prompts/get``,
``completion/complete``) becomes a ``Call``: the engines' call runner runs it and hands
the result back to ``complete`` or ``fail``. The call is also the ``CallContext`` the
surface sees: its notifications and server-to-client requests go through its ``channel``
(the connection core) and ``runner``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple, Protocol

import msgspec

from connscale.core.protocol.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    ClientResponse,
    Invalid,
    Message,
    Notification,
    Request,
    RequestId,
    decode_message,
    encode_error,
    encode_notification,
    encode_result,
    encode_result_raw,
)
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.stateless import (
    CACHEABLE,
    HEADER_MISMATCH,
    META_CAPABILITIES,
    META_SERVER,
    META_VERSION,
    Envelope,
    HeaderRule,
    InputRequired,
    StatelessError,
    check_version,
    header_problem,
    header_rules,
    read_envelope,
    request_binding,
    subscription_meta,
)
from connscale.core.protocol.surface import (
    LIST_KINDS,
    LOG_LEVELS,
    ClientInfo,
    ListKind,
    Surface,
)
from connscale.core.protocol.tokens import SessionSealer
from connscale.core.protocol.versions import (
    HANDSHAKE_VERSIONS,
    LATEST_HANDSHAKE_VERSION,
    STATELESS_VERSIONS,
)
from connscale.core.session import (
    Phase,
    Session,
    SessionTable,
    Transport,
    intern_capabilities,
)
from connscale.errors import ConfigurationError, ProtocolError, SessionError

__all__ = [
    "HANDSHAKE_PROTOCOL_VERSIONS",
    "LATEST_PROTOCOL_VERSION",
    "LISTEN_PROMPTS",
    "LISTEN_RESOURCES",
    "LISTEN_TOOLS",
    "Call",
    "CallChannel",
    "CallRunner",
    "Cancel",
    "Listen",
    "McpProtocol",
    "Outcome",
    "SessionKey",
    "SessionView",
]

# Kept under their old names for the tools that speak the handshake era.
HANDSHAKE_PROTOCOL_VERSIONS: Final = HANDSHAKE_VERSIONS
LATEST_PROTOCOL_VERSION: Final = LATEST_HANDSHAKE_VERSION

_EMPTY_RESULT: Final = b"{}"
RESOURCE_NOT_FOUND: Final = -32002
_ECHO_CHARS: Final = 64  # longest piece of client input quoted back in an error message
_encoder: Final = msgspec.json.Encoder()

#: A session as subscriptions and log levels know it: a TCP/stdio slot, or an HTTP session id.
SessionKey = int | bytes

#: Methods whose answer comes from the surface, and the capability each needs.
_CALL_METHODS: Final = {
    "tools/call": "tools",
    "resources/read": "resources",
    "prompts/get": "prompts",
    "completion/complete": "completions",
}
_LIST_METHODS: Final[dict[str, tuple[ListKind, str]]] = {
    "tools/list": ("tools", "tools"),
    "resources/list": ("resources", "resources"),
    "resources/templates/list": ("resourceTemplates", "resources"),
    "prompts/list": ("prompts", "prompts"),
}
_LIST_CHANGED: Final[dict[ListKind, str]] = {
    "tools": "notifications/tools/list_changed",
    "resources": "notifications/resources/list_changed",
    "resourceTemplates": "notifications/resources/list_changed",
    "prompts": "notifications/prompts/list_changed",
}
#: What a ``subscriptions/listen`` filter can ask for, as bits.
LISTEN_TOOLS: Final = 1
LISTEN_PROMPTS: Final = 2
LISTEN_RESOURCES: Final = 4
_LISTEN_FLAGS: Final = {
    "toolsListChanged": LISTEN_TOOLS,
    "promptsListChanged": LISTEN_PROMPTS,
    "resourcesListChanged": LISTEN_RESOURCES,
}
_LISTEN_FLAG_OF_KIND: Final[dict[ListKind, int]] = {
    "tools": LISTEN_TOOLS,
    "prompts": LISTEN_PROMPTS,
    "resources": LISTEN_RESOURCES,
    "resourceTemplates": LISTEN_RESOURCES,
}
#: Methods of the 2026-07-28 revision (others, old ones included, are -32601 there).
_MODERN_METHODS: Final = frozenset(
    {
        "server/discover",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "subscriptions/listen",
    }
)
#: Seconds a ``requestState`` stays valid, and the most bytes of answers it may carry.
REQUEST_STATE_MAX_AGE: Final = 600.0
REQUEST_STATE_MAX_BYTES: Final = 64 << 10
_INPUT_METHODS: Final = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}
#: How many descriptors one list page carries.
DEFAULT_PAGE_SIZE: Final = 100
#: HTTP sessions whose log level or subscriptions this worker remembers (oldest dropped).
MAX_REMEMBERED_SESSIONS: Final = 1 << 16


class Cancel(NamedTuple):
    """``notifications/cancelled``: stop the session's request ``request_id``; answer nothing."""

    slot: int
    request_id: RequestId


class SessionView:
    """A handshake-era HTTP session as its sealed token carries it: no table slot needed.

    A POST is served from this view alone (the session id and what the client said at
    ``initialize``); only an open GET stream loads the session into a table slot. The
    ``client`` is built on first use: most views (the one ``initialize`` leaves for the GET
    that follows) never need it.
    """

    __slots__ = ("_capabilities", "_client", "_name", "_version", "expires", "key", "protocol")

    def __init__(self, session: Session, expires: float) -> None:
        self.key: bytes = session.session_id
        self.protocol = session.protocol_version or ""
        self._name = session.client_name
        self._version = session.client_version
        self._capabilities: Mapping[str, Any] = session.capabilities
        self.expires = expires
        self._client: ClientInfo | None = None

    @property
    def client(self) -> ClientInfo:
        client = self._client
        if client is None:
            client = self._client = ClientInfo(
                protocol_version=self.protocol,
                name=self._name,
                version=self._version,
                capabilities=self._capabilities,
                session_id=self.key.hex(),
            )
        return client


class Listen(NamedTuple):
    """``subscriptions/listen`` (2026-07-28): keep a stream open for change notifications.

    ``flags`` are ``LISTEN_*`` bits, ``uris`` the resources watched; ``acknowledgement`` is
    the first message to send (``notifications/subscriptions/acknowledged``).
    """

    request_id: RequestId
    flags: int
    uris: tuple[str, ...]
    acknowledgement: bytes


class CallChannel(Protocol):
    """Where a call's notifications go: the connection core that owns its connection."""

    def notify_call(self, call: Call, message: bytes) -> bool:
        """Send ``message`` (a JSON-RPC notification or request) to the call's client."""
        ...

    def finish_call(self, call: Call, reply: bytes | None) -> None:
        """The call ended: send ``reply`` (None: it was cancelled and gets no answer)."""
        ...


class CallRunner(Protocol):
    """Runs calls (the engines implement it): sync surfaces inline, awaitables as tasks."""

    def start(self, call: Call) -> None:
        """Run ``call`` on the surface; its answer goes to ``call.channel``'s finish hook."""
        ...

    def cancel(self, key: SessionKey, request_id: RequestId) -> bool:
        """Cancel the running call ``request_id`` of session ``key``; True if one ran."""
        ...

    def answered(self, key: SessionKey, response: ClientResponse) -> bool:
        """The client answered a server-to-client request of session ``key``."""
        ...

    def session_closed(self, key: SessionKey) -> None:
        """The session's connection ended: its calls and requests to the client end too."""
        ...

    def request(
        self, call: Call, method: str, params: Mapping[str, Any] | None, timeout: float | None
    ) -> Awaitable[Any]:
        """Send a server-to-client request on behalf of ``call``; resolves to its result."""
        ...


class Call:
    """A request the surface must answer, and the ``CallContext`` it answers through.

    ``target`` is the tool or prompt name, the resource URI, or the completion reference;
    ``arguments`` the tool or prompt arguments, or the completion argument. The connection
    core fills in where the call came from (``channel``, ``connection``, ``generation``).
    """

    __slots__ = (
        "arguments",
        "cancelled",
        "channel",
        "connection",
        "context_arguments",
        "envelope",
        "generation",
        "http",
        "key",
        "method",
        "progress_token",
        "protocol",
        "request_id",
        "runner",
        "session_client",
        "slot",
        "stream",
        "target",
        "transient",
    )

    def __init__(
        self,
        protocol: McpProtocol,
        slot: int,
        key: SessionKey,
        request_id: RequestId,
        method: str,
        *,
        target: Any,
        arguments: Mapping[str, Any],
        progress_token: int | str | None,
    ) -> None:
        self.protocol = protocol
        self.slot = slot
        self.key = key
        self.request_id = request_id
        self.method = method
        self.target = target
        self.arguments = arguments
        self.context_arguments: Mapping[str, str] = {}
        self.progress_token = progress_token
        self.cancelled = False
        self.channel: CallChannel | None = None
        self.runner: CallRunner | None = None
        self.connection = -1
        self.generation = 0
        self.transient = False  # HTTP: the slot was loaded for this request only
        self.stream = 0  # HTTP: 0 no response yet, 1 answering as an event stream
        self.http: Any = None  # HTTP: how to answer (an ``http.HttpCall``)
        #: 2026-07-28: what the request said about its client, and the answers it brought.
        self.envelope: Envelope | None = None
        #: HTTP handshake era: the client as its session token says (no table slot).
        self.session_client: ClientInfo | None = None

    # -- CallContext ---------------------------------------------------------------------------

    @property
    def client(self) -> ClientInfo:
        if self.envelope is not None:
            return self.envelope.client
        if self.session_client is not None:
            return self.session_client
        return self.protocol.client_info(self.slot)

    @property
    def log_level(self) -> str | None:
        if self.envelope is not None:
            return self.envelope.log_level
        return self.protocol.log_level(self.key)

    def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        if self.channel is not None and not self.cancelled:
            self.channel.notify_call(self, encode_notification(method, params))

    def request(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        key: str | None = None,
    ) -> Awaitable[Any]:
        if self.envelope is not None:
            return self._input(self.envelope, method, params, key)
        if self.runner is None:
            raise SessionError("this call cannot send requests to its client")
        return self.runner.request(self, method, params, timeout)

    async def _input(
        self, envelope: Envelope, method: str, params: Mapping[str, Any] | None, key: str | None
    ) -> Any:
        """2026-07-28: the answer the client brought back, or ``InputRequired``."""
        envelope.count += 1
        if key is None:
            key = f"{method.split('/', 1)[0]}-{envelope.count}"
        if key in envelope.responses:
            answer = envelope.responses[key]
            if not _valid_answer(method, answer):
                raise ProtocolError(
                    f"inputResponses[{key[:64]!r}] is not a valid answer to {method}",
                    INVALID_PARAMS,
                )
            return answer
        request: dict[str, Any] = {"method": method}
        if params is not None:
            request["params"] = dict(params)
        elif method == "roots/list":
            request["params"] = {}
        envelope.asked[key] = request
        raise InputRequired

    def __repr__(self) -> str:
        return f"Call({self.method} {self.target!r}, id={self.request_id!r})"


def _valid_answer(method: str, answer: object) -> bool:
    """The shape of an answer in ``inputResponses``, by the method it answers."""
    if not isinstance(answer, dict):
        return False
    if method == "elicitation/create":
        return answer.get("action") in ("accept", "decline", "cancel")
    if method == "sampling/createMessage":
        return isinstance(answer.get("role"), str) and "content" in answer
    return isinstance(answer.get("roots"), list)


#: What handling one message gives: reply bytes, a call to run, a cancel, a listen, a
#: client's answer to a server-to-client request, or nothing.
Outcome = bytes | Call | Cancel | Listen | ClientResponse | None


class McpProtocol:
    """MCP for all sessions of a ``SessionTable``: messages in, reply bytes or ``Call``s out.

    Replies carry no framing: the transport adds a newline or an HTTP body around them.
    ``key`` signs list cursors and seals ``requestState`` (give every worker the same key so
    any of them can continue what another began); ``previous_keys`` still open what they
    signed, during a key rotation. Both eras are served: a session that
    sent ``initialize`` gets the handshake era; a request carrying the 2026-07-28 ``_meta``
    envelope (or ``server/discover``) is served statelessly. ``cache_ttl_ms`` and
    ``cache_scope`` are the caching hints of the stateless era's cacheable results.
    """

    def __init__(
        self,
        surface: Surface,
        table: SessionTable,
        *,
        limits: ServerLimits | None = None,
        transport: Transport = Transport.TCP,
        key: bytes | None = None,
        previous_keys: Sequence[bytes] = (),
        page_size: int = DEFAULT_PAGE_SIZE,
        cache_ttl_ms: int = 0,
        cache_scope: str = "private",
        clock: Callable[[], float] | None = None,
    ) -> None:
        if page_size < 1:
            raise ConfigurationError("page_size must be >= 1")
        if cache_ttl_ms < 0 or cache_scope not in ("public", "private"):
            raise ConfigurationError("cache_ttl_ms must be >= 0 and cache_scope public or private")
        self.surface = surface
        self._table = table
        self._limits = limits or ServerLimits()
        self._transport = transport
        root = key if key is not None else secrets.token_bytes(32)
        # One key, two uses: derive one for each so that neither can stand in for the other.
        # Previous keys (a rotation under way) still open what they signed or sealed.
        roots = (root, *previous_keys)
        self._keys = [hmac.digest(k, b"connscale list cursors", hashlib.sha256) for k in roots]
        self._key = self._keys[0]
        state_keys = [hmac.digest(k, b"connscale request state", hashlib.sha256) for k in roots]
        self._state_sealer = SessionSealer(
            state_keys[0],
            previous=state_keys[1:],
            max_age=REQUEST_STATE_MAX_AGE,
            clock=clock or time.time,
            lazy=True,  # only 2026-07-28 calls that ask the client something use it
        )
        self._cache_hints = {"ttlMs": cache_ttl_ms, "cacheScope": cache_scope}
        self._page_size = page_size
        self._pages: dict[ListKind, list[bytes]] = {}
        self._modern_pages: dict[ListKind, list[bytes]] = {}
        self._discover_result = b"{}"
        self._server_meta: dict[str, Any] = {}
        # What ends a complete 2026-07-28 result whose function set neither its own
        # resultType nor _meta (the usual case), so it is spliced on, not merged and encoded.
        self._complete_tail = b""
        self._header_rules: dict[str, tuple[HeaderRule, ...]] | None = None
        self._initialize_results: dict[str, bytes] = {}
        self._capabilities: Mapping[str, Any] = {}
        self._log_levels: dict[SessionKey, int] = {}
        self._subscriptions: dict[str, set[SessionKey]] = {}
        self._subscribed: dict[SessionKey, set[str]] = {}
        #: Told of messages for sessions other than the one being served: set by the
        #: connection core. ``broadcast(message)`` goes to every ready session;
        #: ``deliver(keys, message)`` to the sessions in ``keys``.
        self.broadcast: Callable[[bytes], None] = lambda message: None
        self.deliver: Callable[[set[SessionKey], bytes], None] = lambda keys, message: None
        #: Told of changes for 2026-07-28 ``subscriptions/listen`` streams: a ``LISTEN_*``
        #: flag and a notification method, or ``(LISTEN_RESOURCES, uri)`` for an update.
        self.announce: Callable[[int, str, str | None], None] = lambda flag, method, uri: None
        self._refresh_capabilities()
        surface.watch(self)

    @property
    def table(self) -> SessionTable:
        return self._table

    @property
    def limits(self) -> ServerLimits:
        return self._limits

    @property
    def transport(self) -> Transport:
        return self._transport

    # -- sessions ------------------------------------------------------------------------------

    def open_session(self, *, session_id: bytes | None = None, slot: int | None = None) -> int:
        """Allocate a slot for a new session (``TableFullError`` when full): ``slot`` when
        given (a connection's own number), else any free one."""
        # A new slot's phase is already "initializing" (allocate writes the whole state).
        return self._table.allocate(transport=self._transport, session_id=session_id, slot=slot)

    def close_session(self, slot: int) -> None:
        """Free the slot of a session that ended (a slot already free is ignored).

        A TCP or stdio session's log level and subscriptions end with it; an HTTP session
        outlives its slots, so its own are dropped by ``end_session``.
        """
        if slot not in self._table:
            return
        if self._transport != Transport.HTTP:
            self._forget(slot)
        self._table.free(slot)

    def end_session(self, key: SessionKey) -> None:
        """An HTTP session was deleted: forget its log level and subscriptions."""
        self._forget(key)

    def _forget(self, key: SessionKey) -> None:
        self._log_levels.pop(key, None)
        for uri in self._subscribed.pop(key, ()):
            subscribers = self._subscriptions.get(uri)
            if subscribers is not None:
                subscribers.discard(key)
                if not subscribers:
                    del self._subscriptions[uri]

    def session_key(self, slot: int) -> SessionKey:
        if self._transport == Transport.HTTP:
            session_id: bytes = self._table.get(slot, "session_id")
            return session_id
        return slot

    def is_initialized(self, slot: int) -> bool:
        """True once ``initialize`` has been answered for this session."""
        return self._table.get(slot, "protocol_version") is not None

    def client_info(self, slot: int) -> ClientInfo:
        table = self._table
        if slot not in table:
            return ClientInfo(protocol_version=LATEST_HANDSHAKE_VERSION)
        session_id = None
        if self._transport == Transport.HTTP:
            session_id = table.get(slot, "session_id").hex()
        return ClientInfo(
            protocol_version=table.get(slot, "protocol_version") or LATEST_HANDSHAKE_VERSION,
            name=table.get(slot, "client_name"),
            version=table.get(slot, "client_version"),
            capabilities=table.get(slot, "capabilities"),
            session_id=session_id,
        )

    def log_level(self, key: SessionKey) -> str | None:
        level = self._log_levels.get(key)
        return None if level is None else LOG_LEVELS[level]

    def subscribers(self, uri: str) -> set[SessionKey]:
        return self._subscriptions.get(uri, set())

    # -- messages ------------------------------------------------------------------------------

    def handle_frame(self, slot: int, frame: bytes | bytearray) -> Outcome:
        """Handle one framed message: reply bytes, a call to run, a cancel, or None."""
        limits = self._limits
        message = decode_message(
            frame,
            max_json_depth=limits.max_json_depth,
            max_id_length=limits.max_id_length,
            max_json_items=limits.max_json_items,
        )
        return self.handle_message(slot, message)

    def handle_message(
        self, slot: int, message: Message, view: SessionView | None = None
    ) -> Outcome:
        """Handle one decoded message for the session in ``slot`` (or, over HTTP, the
        session ``view`` a token carries, with ``slot`` -1)."""
        if isinstance(message, Request):
            if _is_modern(message):
                return self.handle_stateless(slot, message)
            return self._handle_request(slot, message, view)
        if isinstance(message, Notification):
            return self._handle_notification(slot, message)
        if isinstance(message, Invalid):
            return encode_error(message.id, message.code, message.message)
        return message  # a ClientResponse: the runner matches it to the request it answers

    def complete(self, call: Call, result: object) -> bytes:
        """The reply to a call, given its result object; clears it from pending."""
        self._discard_pending(call)
        if isinstance(result, bytes):
            return encode_result_raw(call.request_id, result)
        if call.envelope is not None and isinstance(result, dict):
            cacheable = call.method in CACHEABLE
            if cacheable or "resultType" in result or "_meta" in result:
                result = self._modern_result(result, cacheable=cacheable)
            else:
                encoded = _encoder.encode(result)  # "{...}": its closing brace is replaced
                joint = b"," if len(encoded) > 2 else b""
                return encode_result_raw(
                    call.request_id, encoded[:-1] + joint + self._complete_tail
                )
        return encode_result(call.request_id, result)

    def input_required(self, call: Call) -> bytes:
        """2026-07-28: the call needs answers from the client; ask for them, and seal what
        was answered so far into ``requestState`` (bound to this method, target and
        arguments) so that the retry can run the function again with every answer."""
        self._discard_pending(call)
        envelope = call.envelope
        assert envelope is not None
        binding = request_binding(call.method, call.target, call.arguments)
        state = msgspec.msgpack.encode([binding, envelope.responses])
        if len(state) > REQUEST_STATE_MAX_BYTES:
            return encode_error(
                call.request_id, INVALID_REQUEST, "the answers gathered are too large to carry"
            )
        result = {
            "resultType": "input_required",
            "inputRequests": envelope.asked,
            "requestState": self._state_sealer.seal(state),
            "_meta": self._server_meta,
        }
        return encode_result(call.request_id, result)

    def fail(self, call: Call, code: int, message: str, data: object = None) -> bytes:
        """A JSON-RPC error reply to a call; clears it from pending."""
        self._discard_pending(call)
        if code == RESOURCE_NOT_FOUND and call.envelope is not None:
            code = INVALID_PARAMS  # 2026-07-28 retired -32002: an unknown resource is -32602
        return encode_error(call.request_id, code, message, data)

    def _discard_pending(self, call: Call) -> None:
        if call.slot >= 0 and call.slot in self._table:
            self._table.discard_pending(call.slot, call.request_id)

    # -- the stateless era (2026-07-28) --------------------------------------------------------

    @staticmethod
    def is_modern(request: Request) -> bool:
        """Whether ``request`` belongs to the stateless era (it carries the envelope)."""
        return _is_modern(request)

    def handle_stateless(
        self, slot: int, request: Request, headers: Mapping[bytes, bytes] | None = None
    ) -> bytes | Call | Listen:
        """A 2026-07-28 request: checked in the specification's order, then served.

        ``slot`` is the connection's session slot (TCP, stdio) or -1 (HTTP: no session);
        ``headers`` are the HTTP request's, checked against the body.
        """
        try:
            return self._stateless(slot, request, headers)
        except StatelessError as exc:
            return encode_error(request.id, exc.code, exc.message, exc.data)

    def _stateless(
        self, slot: int, request: Request, headers: Mapping[bytes, bytes] | None
    ) -> bytes | Call | Listen:
        params = request.params
        version, meta, log_level = read_envelope(params)
        assert isinstance(params, dict)
        method = request.method
        if headers is not None:
            rules: tuple[HeaderRule, ...] = ()
            if method == "tools/call":
                rules = self._rules_of(params.get("name"))
            problem = header_problem(headers, version, method, params, rules)
            if problem is not None:
                raise StatelessError(HEADER_MISMATCH, problem)
        check_version(version)
        if method not in _MODERN_METHODS:
            raise StatelessError(
                METHOD_NOT_FOUND, f"Method not found: {method[:_ECHO_CHARS]!r}", method[:64]
            )
        if slot >= 0 and self._table.get(slot, "protocol_version") is None:
            # A connection that speaks the stateless era is ready: no handshake to wait for.
            self._table.update(slot, protocol_version=version, phase=Phase.INITIALIZED)
        capabilities = self._capabilities
        request_id = request.id
        if method == "server/discover":
            return encode_result_raw(request_id, self._discover_result)
        list_method = _LIST_METHODS.get(method)
        if list_method is not None:
            kind, capability = list_method
            if capability not in capabilities:
                raise StatelessError(METHOD_NOT_FOUND, f"Method not found: {method!r}", method)
            return self._list(request_id, kind, params, modern=True)
        if method == "subscriptions/listen":
            return self._listen(request_id, params)
        capability = _CALL_METHODS[method]
        if capability not in capabilities:
            raise StatelessError(METHOD_NOT_FOUND, f"Method not found: {method!r}", method)
        outcome = self._call(slot, request, params)
        if isinstance(outcome, Call):
            if slot < 0:
                outcome.slot = -1
            responses: dict[str, Any] = {}
            if method != "completion/complete":
                responses = self._answers(outcome, params)
            outcome.envelope = Envelope(version, meta, log_level, responses)
        return outcome

    def _answers(self, call: Call, params: dict[str, Any]) -> dict[str, Any]:
        """Answers a retry brings: those sealed in ``requestState`` plus ``inputResponses``."""
        given = params.get("inputResponses", {})
        if not isinstance(given, dict):
            self._discard_pending(call)
            raise StatelessError(INVALID_PARAMS, "inputResponses must be an object")
        token = params.get("requestState")
        if token is None:
            return dict(given)
        failure = StatelessError(
            INVALID_PARAMS,
            "Invalid or expired requestState",
            {"reason": "invalid_request_state"},
        )
        sealed = self._state_sealer.unseal(token) if isinstance(token, str) else None
        try:
            binding, earlier = msgspec.msgpack.decode(sealed) if sealed is not None else (b"", {})
        except (msgspec.DecodeError, ValueError, TypeError):
            binding, earlier = b"", {}
        if (
            sealed is None
            or not isinstance(earlier, dict)
            or binding != request_binding(call.method, call.target, call.arguments)
        ):
            self._discard_pending(call)
            raise failure
        return {**earlier, **given}

    def _listen(self, request_id: RequestId, params: dict[str, Any]) -> Listen:
        wanted = params.get("notifications")
        if not isinstance(wanted, dict):
            raise StatelessError(
                INVALID_PARAMS, "subscriptions/listen needs a 'notifications' object"
            )
        unknown = set(wanted) - {*_LISTEN_FLAGS, "resourceSubscriptions"}
        if unknown:
            raise StatelessError(
                INVALID_PARAMS,
                "unknown subscription filter key(s): " + ", ".join(sorted(unknown))[:200],
            )
        capabilities = self._capabilities
        flags = 0
        honored: dict[str, Any] = {}
        for name, flag in _LISTEN_FLAGS.items():
            value = wanted.get(name)
            if value not in (None, True, False):
                raise StatelessError(INVALID_PARAMS, f"'{name}' must be true or false")
            capability = (
                "tools"
                if flag == LISTEN_TOOLS
                else ("prompts" if flag == LISTEN_PROMPTS else "resources")
            )
            if value and capability in capabilities:
                flags |= flag
                honored[name] = True
        uris = wanted.get("resourceSubscriptions", [])
        if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
            raise StatelessError(
                INVALID_PARAMS, "'resourceSubscriptions' must be a list of resource URIs"
            )
        if len(uris) > self._limits.max_pending_per_session:
            raise StatelessError(INVALID_PARAMS, "too many resource subscriptions")
        watched = tuple(dict.fromkeys(uris)) if "resources" in capabilities else ()
        if watched:
            honored["resourceSubscriptions"] = list(watched)
        acknowledgement = encode_notification(
            "notifications/subscriptions/acknowledged",
            {"_meta": subscription_meta(request_id), "notifications": honored},
        )
        return Listen(request_id, flags, watched, acknowledgement)

    def listen_result(self, subscription: RequestId) -> bytes:
        """The answer that ends a listen stream the server closes (a graceful shutdown)."""
        result = {
            "resultType": "complete",
            "_meta": {**self._server_meta, **subscription_meta(subscription)},
        }
        return encode_result(subscription, result)

    def _rules_of(self, tool: object) -> tuple[HeaderRule, ...]:
        """The tool's ``x-mcp-header`` arguments (cached until the tool list changes)."""
        rules = self._header_rules
        if rules is None:
            rules = self._header_rules = {}
            for descriptor in self.surface.listing("tools"):
                found = header_rules(descriptor.get("inputSchema"))
                if found:
                    rules[str(descriptor.get("name"))] = found
        return rules.get(tool, ()) if isinstance(tool, str) else ()

    def _modern_result(self, result: dict[str, Any], *, cacheable: bool) -> dict[str, Any]:
        """A complete 2026-07-28 result: ``resultType``, the server's info, caching hints."""
        decorated = {**result}
        decorated.setdefault("resultType", "complete")
        meta = decorated.get("_meta")
        decorated["_meta"] = (
            {**meta, **self._server_meta} if isinstance(meta, dict) else (self._server_meta)
        )
        if cacheable and decorated["resultType"] == "complete":
            decorated.setdefault("ttlMs", self._cache_hints["ttlMs"])
            decorated.setdefault("cacheScope", self._cache_hints["cacheScope"])
        return decorated

    def _handle_request(
        self, slot: int, request: Request, view: SessionView | None = None
    ) -> bytes | Call:
        method = request.method
        if method == "ping":
            return encode_result_raw(request.id, _EMPTY_RESULT)
        if method == "initialize":
            return self._initialize(slot, request)
        list_method = _LIST_METHODS.get(method)
        call_capability = _CALL_METHODS.get(method)
        known = (
            list_method is not None
            or call_capability is not None
            or method in ("logging/setLevel", "resources/subscribe", "resources/unsubscribe")
        )
        if not known:
            if method.startswith("notifications/"):
                # MCP: notifications MUST NOT carry an id. One that does is a request the
                # client will wait on, so it is answered (refused) and has no effect.
                return encode_error(
                    request.id, INVALID_REQUEST, "invalid request: a notification has no id"
                )
            return _method_not_found(request)
        if view is None and self._table.get(slot, "protocol_version") is None:
            return encode_error(
                request.id, INVALID_REQUEST, "session not initialized: send initialize first"
            )
        params = request.params
        if params is None:
            params = {}
        elif not isinstance(params, dict):
            return encode_error(request.id, INVALID_PARAMS, "params must be an object")
        capabilities = self._capabilities
        if list_method is not None:
            kind, capability = list_method
            if capability not in capabilities:
                return _method_not_found(request)
            return self._list(request.id, kind, params)
        key = view.key if view is not None else self.session_key(slot)
        if call_capability is not None:
            if call_capability not in capabilities:
                return _method_not_found(request)
            outcome = self._call(slot, request, params, key)
            if view is not None and isinstance(outcome, Call):
                outcome.session_client = view.client
            return outcome
        if method == "logging/setLevel":
            return self._set_level(key, request.id, params)
        if "resources" not in capabilities:
            return _method_not_found(request)
        return self._subscribe(key, request.id, method, params)

    def _call(
        self, slot: int, request: Request, params: dict[str, Any], key: SessionKey = b""
    ) -> bytes | Call:
        request_id = request.id
        method = request.method
        arguments: Any = {}
        if method in {"tools/call", "prompts/get"}:
            target = params.get("name")
            arguments = params.get("arguments")
            if not isinstance(target, str):
                return encode_error(request_id, INVALID_PARAMS, f"{method} needs a string 'name'")
            if arguments is None:
                arguments = {}
            elif not isinstance(arguments, dict):
                return encode_error(
                    request_id, INVALID_PARAMS, f"{method} 'arguments' must be an object"
                )
            if method == "prompts/get" and not all(
                isinstance(value, str) for value in arguments.values()
            ):
                return encode_error(
                    request_id, INVALID_PARAMS, "prompts/get arguments must be strings"
                )
        elif method == "resources/read":
            target = params.get("uri")
            if not isinstance(target, str):
                return encode_error(
                    request_id, INVALID_PARAMS, "resources/read needs a string 'uri'"
                )
        else:  # completion/complete
            target = params.get("ref")
            arguments = params.get("argument")
            if not isinstance(target, dict) or target.get("type") not in (
                "ref/prompt",
                "ref/resource",
            ):
                return encode_error(
                    request_id,
                    INVALID_PARAMS,
                    "completion/complete needs a 'ref' of type ref/prompt or ref/resource",
                )
            if (
                not isinstance(arguments, dict)
                or not isinstance(arguments.get("name"), str)
                or not isinstance(arguments.get("value"), str)
            ):
                return encode_error(
                    request_id,
                    INVALID_PARAMS,
                    "completion/complete needs an 'argument' with string 'name' and 'value'",
                )
        table = self._table
        if slot >= 0:  # a session (or a connection) keeps its requests in flight
            if table.pending_count(slot) >= self._limits.max_pending_per_session:
                return encode_error(request_id, INVALID_REQUEST, "too many requests in flight")
            if request_id in table.get(slot, "pending"):
                return encode_error(request_id, INVALID_REQUEST, "duplicate request id in flight")
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        if isinstance(token, bool) or not isinstance(token, int | str):
            token = None
        if slot >= 0:
            table.add_pending(slot, request_id)
        call = Call(
            self,
            slot,
            self.session_key(slot) if slot >= 0 else key,
            request_id,
            method,
            target=target,
            arguments=arguments,
            progress_token=token,
        )
        if method == "completion/complete":
            context = params.get("context")
            context_arguments = context.get("arguments") if isinstance(context, dict) else None
            if isinstance(context_arguments, dict):
                call.context_arguments = {
                    str(k): v for k, v in context_arguments.items() if isinstance(v, str)
                }
        return call

    def _set_level(self, key: SessionKey, request_id: RequestId, params: dict[str, Any]) -> bytes:
        level = params.get("level")
        if level not in LOG_LEVELS:
            return encode_error(
                request_id,
                INVALID_PARAMS,
                "logging/setLevel needs a level: " + ", ".join(LOG_LEVELS),
            )
        self._remember(self._log_levels, key)
        self._log_levels[key] = LOG_LEVELS.index(level)
        return encode_result_raw(request_id, _EMPTY_RESULT)

    def _subscribe(
        self, key: SessionKey, request_id: RequestId, method: str, params: dict[str, Any]
    ) -> bytes:
        uri = params.get("uri")
        if not isinstance(uri, str):
            return encode_error(request_id, INVALID_PARAMS, f"{method} needs a string 'uri'")
        uris = self._subscribed.get(key)
        if method == "resources/subscribe":
            if uris is None:
                self._remember(self._subscribed, key)
                uris = self._subscribed[key] = set()
            if uri not in uris and len(uris) >= self._limits.max_pending_per_session:
                return encode_error(request_id, INVALID_REQUEST, "too many subscriptions")
            uris.add(uri)
            self._subscriptions.setdefault(uri, set()).add(key)
        elif uris is not None and uri in uris:
            uris.discard(uri)
            subscribers = self._subscriptions.get(uri)
            if subscribers is not None:
                subscribers.discard(key)
                if not subscribers:
                    del self._subscriptions[uri]
        return encode_result_raw(request_id, _EMPTY_RESULT)

    def _remember(self, store: dict[SessionKey, Any], key: SessionKey) -> None:
        """Bound what HTTP sessions (which outlive their slots) make this worker remember."""
        if isinstance(key, bytes) and key not in store and len(store) >= MAX_REMEMBERED_SESSIONS:
            self._forget(next(iter(store)))

    def _initialize(self, slot: int, request: Request) -> bytes:
        table = self._table
        if table.get(slot, "protocol_version") is not None:
            return encode_error(request.id, INVALID_REQUEST, "session already initialized")
        params = request.params
        if not isinstance(params, dict):
            return encode_error(request.id, INVALID_PARAMS, "initialize needs params (an object)")
        requested = params.get("protocolVersion")
        capabilities = params.get("capabilities", {})
        client_info = params.get("clientInfo", {})
        if not isinstance(requested, str):
            return encode_error(
                request.id, INVALID_PARAMS, "initialize needs a string protocolVersion"
            )
        if not isinstance(capabilities, dict) or not isinstance(client_info, dict):
            return encode_error(
                request.id, INVALID_PARAMS, "capabilities and clientInfo must be objects"
            )
        limits = self._limits
        client_name = client_info.get("name")
        client_version = client_info.get("version")
        client_name = client_name if isinstance(client_name, str) else None
        client_version = client_version if isinstance(client_version, str) else None
        for text in (client_name, client_version):
            if text is not None and len(text.encode("utf-8", "replace")) > (
                limits.max_client_info_bytes
            ):
                return encode_error(request.id, INVALID_PARAMS, "clientInfo name/version too long")
        # What initialize keeps lives as long as the session: bound it, and refuse what the
        # session store cannot hold exactly (nesting past 32, integers past 64 bits).
        try:
            interned = intern_capabilities(capabilities)
        except ConfigurationError:
            return encode_error(
                request.id,
                INVALID_PARAMS,
                "capabilities must be plain JSON (nesting <= 32, integers within 64 bits)",
            )
        if len(interned.canonical) > limits.max_capabilities_bytes:
            return encode_error(request.id, INVALID_PARAMS, "capabilities too large")
        version = requested if requested in self._initialize_results else LATEST_HANDSHAKE_VERSION
        table.update(
            slot,
            protocol_version=version,
            client_name=client_name,
            client_version=client_version,
            capabilities=interned,
        )
        return encode_result_raw(request.id, self._initialize_results[version])

    def _handle_notification(self, slot: int, notification: Notification) -> Cancel | None:
        # Notifications are never answered, not even with an error (JSON-RPC 2.0).
        method = notification.method
        if method == "notifications/initialized":
            if slot >= 0 and self.is_initialized(slot):
                self._table.update(slot, phase=Phase.INITIALIZED)
        elif method == "notifications/cancelled":
            params = notification.params
            if isinstance(params, dict):
                request_id = params.get("requestId")
                if isinstance(request_id, int | str) and not isinstance(request_id, bool):
                    return Cancel(slot, request_id)
        return None

    # -- listings ------------------------------------------------------------------------------

    def _list(
        self, request_id: RequestId, kind: ListKind, params: dict[str, Any], *, modern: bool = False
    ) -> bytes:
        cache = self._modern_pages if modern else self._pages
        pages = cache.get(kind)
        if pages is None:
            pages = cache[kind] = self._paginate(kind, modern)
        cursor = params.get("cursor")
        if cursor is None:
            return encode_result_raw(request_id, pages[0])
        page = self._page_of(kind, cursor)
        if page is None or page >= len(pages):
            return encode_error(request_id, INVALID_PARAMS, "invalid cursor")
        return encode_result_raw(request_id, pages[page])

    def _paginate(self, kind: ListKind, modern: bool) -> list[bytes]:
        items = list(self.surface.listing(kind))
        size = self._page_size
        pages: list[bytes] = []
        for start in range(0, max(len(items), 1), size):
            result: dict[str, Any] = {kind: items[start : start + size]}
            if start + size < len(items):
                result["nextCursor"] = self._cursor(kind, len(pages) + 1)
            if modern:
                result = self._modern_result(result, cacheable=True)
            pages.append(_encoder.encode(result))
        return pages

    def _cursor(self, kind: ListKind, page: int) -> str:
        body = bytes([LIST_KINDS.index(kind)]) + page.to_bytes(4, "big")
        tag = hmac.digest(self._key, body, hashlib.sha256)[:12]
        return base64.urlsafe_b64encode(body + tag).decode("ascii")

    def _page_of(self, kind: ListKind, cursor: object) -> int | None:
        """The page a cursor this server issued points at; None for any other cursor."""
        if not isinstance(cursor, str) or len(cursor) > 64:
            return None
        try:
            raw = base64.urlsafe_b64decode(cursor.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            return None
        if len(raw) != 17:
            return None
        body, tag = raw[:5], raw[5:]
        if not any(
            hmac.compare_digest(tag, hmac.digest(key, body, hashlib.sha256)[:12])
            for key in self._keys
        ):
            return None
        if body[0] != LIST_KINDS.index(kind):
            return None
        return int.from_bytes(body[1:5], "big")

    # -- the surface changed (SurfaceListener) -------------------------------------------------

    def list_changed(self, kind: ListKind) -> None:
        self._pages.pop(kind, None)
        self._modern_pages.pop(kind, None)
        if kind == "tools":
            self._header_rules = None
        self._refresh_capabilities()
        capability = "resources" if kind == "resourceTemplates" else kind
        if capability in self._capabilities:
            method = _LIST_CHANGED[kind]
            self.broadcast(encode_notification(method))
            self.announce(_LISTEN_FLAG_OF_KIND[kind], method, None)

    def resource_updated(self, uri: str) -> None:
        subscribers = self._subscriptions.get(uri)
        if subscribers:
            self.deliver(
                set(subscribers),
                encode_notification("notifications/resources/updated", {"uri": uri}),
            )
        self.announce(LISTEN_RESOURCES, "notifications/resources/updated", uri)

    def _refresh_capabilities(self) -> None:
        surface = self.surface
        self._capabilities = dict(surface.capabilities())
        info = surface.info
        server_info = info.implementation()
        self._server_meta = {META_SERVER: server_info}
        self._complete_tail = (
            b'"resultType":"complete","_meta":' + _encoder.encode(self._server_meta) + b"}"
        )
        discover: dict[str, Any] = {
            "supportedVersions": list(STATELESS_VERSIONS),
            "capabilities": self._capabilities,
        }
        if info.instructions:
            discover["instructions"] = info.instructions
        self._discover_result = _encoder.encode(self._modern_result(discover, cacheable=True))
        self._initialize_results = {}
        for version in HANDSHAKE_VERSIONS:
            result: dict[str, object] = {
                "protocolVersion": version,
                "capabilities": self._capabilities,
                "serverInfo": server_info,
            }
            if info.instructions:
                result["instructions"] = info.instructions
            self._initialize_results[version] = _encoder.encode(result)


def _is_modern(request: Request) -> bool:
    """A request in the stateless era: it carries the envelope, or it is ``server/discover``."""
    if request.method == "server/discover":
        return True
    params = request.params
    if not isinstance(params, dict):
        return False
    meta = params.get("_meta")
    return isinstance(meta, dict) and (META_VERSION in meta or META_CAPABILITIES in meta)


def _method_not_found(request: Request) -> bytes:
    # Echo at most a short prefix: a client's megabyte method name is not sent back.
    return encode_error(
        request.id, METHOD_NOT_FOUND, f"method not found: {request.method[:_ECHO_CHARS]!r}"
    )
