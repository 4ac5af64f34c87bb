"""The MCP lifecycle on top of SessionTable, sans-I/O: one ``McpProtocol`` serves every session.

Per session the protocol keeps nothing but the session's ``SessionTable`` slot, so a
connection costs what its slot costs. Lifecycle, as the official Python SDK negotiates it:

* ``initialize`` (once) answers with the client's protocol version when this server
  speaks it, else the latest handshake version; the session then accepts requests (the
  SDK opens its request gate on the ``initialize`` answer, not on the notification).
* ``notifications/initialized`` moves the session to ``Phase.INITIALIZED``.
* ``ping`` is answered in every phase; other known methods before ``initialize`` are
  refused with -32600; unknown methods get -32601 in every phase (clients probing with
  ``server/discover`` key off that code and fall back to ``initialize``).
* A ``notifications/...`` method sent with an id is refused with -32600 and has no effect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

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
    encode_result,
    encode_result_raw,
)
from connscale.core.protocol.limits import ServerLimits
from connscale.core.session import Phase, SessionTable, Transport, intern_capabilities
from connscale.errors import ConfigurationError

__all__ = [
    "HANDSHAKE_PROTOCOL_VERSIONS",
    "LATEST_PROTOCOL_VERSION",
    "McpProtocol",
    "ToolCall",
]

#: Versions reachable through ``initialize``, oldest first (the official SDK's list).
HANDSHAKE_PROTOCOL_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_PROTOCOL_VERSION: Final = HANDSHAKE_PROTOCOL_VERSIONS[-1]

_EMPTY_RESULT: Final = b"{}"
_ECHO_CHARS: Final = 64  # longest piece of client input quoted back in an error message
_encoder: Final = msgspec.json.Encoder()


class ToolCall(NamedTuple):
    """A ``tools/call`` the application must run; answer it with ``finish_tool_call``."""

    slot: int
    request_id: RequestId
    name: str
    arguments: dict[str, Any]


class McpProtocol:
    """MCP over JSON-RPC for all sessions of a ``SessionTable``: frames in, reply bytes out.

    ``tools`` are MCP tool descriptors (``name``, ``description``, ``inputSchema``).
    Replies carry no framing: the transport adds a newline or an HTTP body around them.
    """

    __slots__ = (
        "_initialize_results",
        "_limits",
        "_table",
        "_tool_names",
        "_tools_result",
        "_transport",
    )

    def __init__(
        self,
        table: SessionTable,
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        server_name: str = "connscale",
        server_version: str = "0",
        instructions: str | None = None,
        limits: ServerLimits | None = None,
        transport: Transport = Transport.TCP,
    ) -> None:
        self._table = table
        self._limits = limits or ServerLimits()
        self._transport = transport
        self._tool_names = frozenset(str(tool["name"]) for tool in tools)
        self._tools_result = _encoder.encode({"tools": list(tools)})
        server_info = {"name": server_name, "version": server_version}
        self._initialize_results: dict[str, bytes] = {}
        for version in HANDSHAKE_PROTOCOL_VERSIONS:
            result: dict[str, object] = {
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": server_info,
            }
            if instructions:
                result["instructions"] = instructions
            self._initialize_results[version] = _encoder.encode(result)

    @property
    def table(self) -> SessionTable:
        return self._table

    @property
    def limits(self) -> ServerLimits:
        return self._limits

    def open_session(self, *, session_id: bytes | None = None) -> int:
        """Allocate a slot for a new connection (``TableFullError`` when full)."""
        slot = self._table.allocate(transport=self._transport, session_id=session_id)
        self._table.update(slot, phase=Phase.INITIALIZING)
        return slot

    def close_session(self, slot: int) -> None:
        """Free the slot of a connection that ended (a slot already free is ignored)."""
        if slot in self._table:
            self._table.free(slot)

    def is_initialized(self, slot: int) -> bool:
        """True once ``initialize`` has been answered for this session."""
        return self._table.get(slot, "protocol_version") is not None

    def handle_frame(self, slot: int, frame: bytes | bytearray) -> bytes | ToolCall | None:
        """Handle one framed message: reply bytes, a tool call to run, or None (no reply)."""
        limits = self._limits
        message = decode_message(
            frame,
            max_json_depth=limits.max_json_depth,
            max_id_length=limits.max_id_length,
            max_json_items=limits.max_json_items,
        )
        return self.handle_message(slot, message)

    def handle_message(self, slot: int, message: Message) -> bytes | ToolCall | None:
        """Handle one decoded message for the session in ``slot``."""
        if isinstance(message, Request):
            return self._handle_request(slot, message)
        if isinstance(message, Notification):
            self._handle_notification(slot, message)
            return None
        if isinstance(message, Invalid):
            return encode_error(message.id, message.code, message.message)
        assert isinstance(message, ClientResponse)
        return None  # this server sends no requests, so there is nothing to match

    def finish_tool_call(self, call: ToolCall, result: Mapping[str, Any]) -> bytes:
        """The reply to a tool call, given its ``CallToolResult``; clears it from pending."""
        self._discard_pending(call)
        return encode_result(call.request_id, result)

    def fail_tool_call(self, call: ToolCall, code: int, message: str) -> bytes:
        """A JSON-RPC error reply to a tool call; clears it from pending."""
        self._discard_pending(call)
        return encode_error(call.request_id, code, message)

    def _discard_pending(self, call: ToolCall) -> None:
        if call.slot in self._table:
            self._table.discard_pending(call.slot, call.request_id)

    def _handle_request(self, slot: int, request: Request) -> bytes | ToolCall:
        method = request.method
        if method == "ping":
            return encode_result_raw(request.id, _EMPTY_RESULT)
        if method == "initialize":
            return self._initialize(slot, request)
        if method not in ("tools/list", "tools/call"):
            if method.startswith("notifications/"):
                # MCP: notifications MUST NOT carry an id. One that does is a request the
                # client will wait on, so it is answered (refused) and has no effect.
                return encode_error(
                    request.id, INVALID_REQUEST, "invalid request: a notification has no id"
                )
            # Echo at most a short prefix: a client's megabyte method name is not sent back.
            return encode_error(
                request.id, METHOD_NOT_FOUND, f"method not found: {method[:_ECHO_CHARS]!r}"
            )
        if self._table.get(slot, "protocol_version") is None:
            return encode_error(
                request.id, INVALID_REQUEST, "session not initialized: send initialize first"
            )
        params = request.params
        if params is not None and not isinstance(params, dict):
            return encode_error(request.id, INVALID_PARAMS, "params must be an object")
        if method == "tools/list":
            return encode_result_raw(request.id, self._tools_result)
        return self._tool_call(slot, request.id, params or {})

    def _tool_call(
        self, slot: int, request_id: RequestId, params: dict[str, Any]
    ) -> bytes | ToolCall:
        name = params.get("name")
        arguments = params.get("arguments")
        if not isinstance(name, str):
            return encode_error(request_id, INVALID_PARAMS, "tools/call needs a string 'name'")
        if arguments is None:
            arguments = {}
        elif not isinstance(arguments, dict):
            return encode_error(
                request_id, INVALID_PARAMS, "tools/call 'arguments' must be an object"
            )
        if name not in self._tool_names:
            return encode_error(request_id, INVALID_PARAMS, f"unknown tool: {name[:_ECHO_CHARS]!r}")
        table = self._table
        if table.pending_count(slot) >= self._limits.max_pending_per_session:
            return encode_error(request_id, INVALID_REQUEST, "too many requests in flight")
        if request_id in table.get(slot, "pending"):
            return encode_error(request_id, INVALID_REQUEST, "duplicate request id in flight")
        table.add_pending(slot, request_id)
        return ToolCall(slot, request_id, name, arguments)

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
        version = requested if requested in self._initialize_results else LATEST_PROTOCOL_VERSION
        table.update(
            slot,
            protocol_version=version,
            client_name=client_name,
            client_version=client_version,
            capabilities=interned,
        )
        return encode_result_raw(request.id, self._initialize_results[version])

    def _handle_notification(self, slot: int, notification: Notification) -> None:
        # Notifications are never answered, not even with an error (JSON-RPC 2.0).
        if notification.method == "notifications/initialized" and self.is_initialized(slot):
            self._table.update(slot, phase=Phase.INITIALIZED)
