"""What every fuzz target checks: the outputs the protocol core documents, and nothing else.

Shared by the atheris targets (``fuzz_*.py``) and the property tests in the suite. The
targets drive the real ``ConnectionCore`` with a fake wire, exactly as an engine would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from connscale.core.connection import ConnectionCore
from connscale.core.protocol.http import KEPT_ROWS, McpHttp
from connscale.core.protocol.jsonrpc import ClientResponse
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.mcp import Call, Cancel, McpProtocol, Outcome, SessionKey
from connscale.core.protocol.surface import CallContext, ListKind, ServerInfo, SurfaceListener
from connscale.core.protocol.tokens import RevocationTable, SessionSealer
from connscale.core.session import SessionTable, Transport
from connscale.engines._runner import invoke_surface
from connscale.errors import ProtocolError

#: JSON-RPC error codes the server may answer with (docs/SERVER.md, "Protocol").
DOCUMENTED_CODES: Final = frozenset({-32700, -32600, -32601, -32602, -32002})
#: HTTP statuses the Streamable HTTP handler may answer with (docs/SERVER.md, "Design").
DOCUMENTED_STATUSES: Final = frozenset(
    {200, 202, 400, 401, 403, 404, 405, 406, 409, 413, 415, 421, 431, 503}
)
TOOLS: Final = [{"name": "echo", "description": "e", "inputSchema": {"type": "object"}}]
RESOURCES: Final = [{"uri": "fuzz://note", "name": "note", "mimeType": "text/plain"}]
TEMPLATES: Final = [{"uriTemplate": "fuzz://notes/{id}", "name": "notes"}]
PROMPTS: Final = [{"name": "hello", "arguments": [{"name": "who", "required": False}]}]
SMALL_LIMITS: Final = ServerLimits(
    max_frame_bytes=512, max_header_bytes=1024, max_json_depth=16, max_pending_per_session=4
)
INITIALIZE: Final = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":'
    b'"2025-06-18","capabilities":{},"clientInfo":{"name":"fuzz","version":"1"}}}'
)
KEY: Final = b"fuzzing-key-" * 2 + b"fuzzkey!"


class EchoSurface:
    """One synchronous tool (``echo``), one resource, one template and one prompt, so that
    every method of the server surface (lists, reads, gets, completion, subscriptions) is
    reached; anything else is refused as the protocol says."""

    info = ServerInfo("fuzz", "1")

    def capabilities(self) -> Mapping[str, Any]:
        return {
            "tools": {"listChanged": True},
            "resources": {"subscribe": True, "listChanged": True},
            "prompts": {"listChanged": True},
            "completions": {},
            "logging": {},
        }

    def listing(self, kind: ListKind) -> list[dict[str, Any]]:
        lists: dict[str, list[dict[str, Any]]] = {
            "tools": TOOLS,
            "resources": RESOURCES,
            "resourceTemplates": TEMPLATES,
            "prompts": PROMPTS,
        }
        return lists.get(kind, [])

    def call_tool(self, name: str, arguments: Mapping[str, Any], context: CallContext) -> Any:
        if name != "echo":
            raise ProtocolError("unknown tool", -32602)
        return {"content": [], "isError": False}

    def read_resource(self, uri: str, context: CallContext) -> Any:
        if uri != "fuzz://note":
            raise ProtocolError("no such resource", -32002)
        return {"contents": [{"uri": uri, "mimeType": "text/plain", "text": "note"}]}

    def get_prompt(self, name: str, arguments: Mapping[str, str], context: CallContext) -> Any:
        if name != "hello":
            raise ProtocolError("no such prompt", -32602)
        text = f"hello {arguments.get('who', 'you')}"
        return {"messages": [{"role": "user", "content": {"type": "text", "text": text}}]}

    def complete(self, ref: Any, argument: Any, arguments: Any, context: CallContext) -> Any:
        return {"completion": {"values": []}}

    def watch(self, listener: SurfaceListener) -> None:
        pass


class InlineRunner:
    """Answers every call at once, synchronously (the surface above never awaits), through
    the engines' own choice of surface method (``invoke_surface``)."""

    def start(self, call: Call) -> None:
        assert call.channel is not None
        try:
            result = invoke_surface(call.protocol.surface, call)
            reply = call.protocol.complete(call, result)
        except ProtocolError as exc:
            reply = call.protocol.fail(call, exc.code, str(exc))
        call.channel.finish_call(call, reply)

    def cancel(self, key: SessionKey, request_id: int | str) -> bool:
        return False

    def answered(self, key: SessionKey, response: ClientResponse) -> bool:
        return False

    def session_closed(self, key: SessionKey) -> None:
        pass

    def request(self, call: Call, method: str, params: Any, timeout: Any) -> Any:
        raise ProtocolError("no requests to the client here")


class RecordingWire:
    """The engine side: keeps what was written and whether the connection was closed."""

    def __init__(self, core: ConnectionCore) -> None:
        self.core = core
        self.output = bytearray()
        self.closed = False

    def write(self, connection: int, data: bytes) -> int:
        self.output += data
        return 0

    def set_reading(self, connection: int, reading: bool) -> None:
        pass

    def disconnect(self, connection: int, flush: bool) -> None:
        self.closed = True
        self.core.closed(connection)

    def call_soon(self) -> None:
        pass

    def wake_at(self, when: float) -> None:
        pass


def make_protocol(transport: Transport = Transport.TCP) -> McpProtocol:
    http = transport == Transport.HTTP
    return McpProtocol(
        EchoSurface(), SessionTable(index_by_id=http), limits=SMALL_LIMITS, transport=transport
    )


def make_core(
    http: bool = False, bearer_token: bytes | None = None
) -> tuple[ConnectionCore, RecordingWire]:
    """A core with small limits and a fixed key: tokens from one work in the next."""
    protocol = make_protocol(Transport.HTTP if http else Transport.TCP)
    handler = None
    if http:
        handler = McpHttp(
            protocol,
            bearer_token=bearer_token,
            sealer=SessionSealer(KEY),
            revoked=RevocationTable(1024),
        )
    core = ConnectionCore(
        protocol, InlineRunner(), 4, clock=lambda: 0.0, http=handler, max_connections=4
    )
    wire = RecordingWire(core)
    core.attach(wire)
    return core, wire


def check_reply(reply: bytes) -> dict[str, Any]:
    """``reply`` is one JSON-RPC response: a result, or an error with a documented code."""
    message = json.loads(reply)
    assert message["jsonrpc"] == "2.0", reply
    assert "id" in message, reply
    if "error" in message:
        assert message["error"]["code"] in DOCUMENTED_CODES, reply
        assert isinstance(message["error"]["message"], str), reply
        assert len(message["error"]["message"]) <= 1024, "an error message echoes too much"
    else:
        assert "result" in message, reply
    assert isinstance(message, dict)
    return message


def check_protocol_outcome(protocol: McpProtocol, outcome: Outcome) -> None:
    """A handled frame gives a documented reply, a call, a cancel, a client answer, or nothing."""
    if isinstance(outcome, Call):
        check_reply(protocol.complete(outcome, {"content": [], "isError": False}))
    elif isinstance(outcome, bytes):
        check_reply(outcome)
    else:
        assert outcome is None or isinstance(outcome, Cancel | ClientResponse), outcome


def http_statuses(output: bytes) -> list[int]:
    """The status of every response head in ``output``."""
    statuses = []
    for part in output.split(b"HTTP/1.1 ")[1:]:
        code = part[:3]
        if code.isdigit():
            statuses.append(int(code))
    return statuses


def drive_http(chunks: list[bytes], bearer_token: bytes | None = None) -> list[int]:
    """Feed ``chunks`` on one connection as an engine would; every answer has a documented
    status, a reader holds no more than its bound, and no session slot is left behind."""
    core, wire = make_core(http=True, bearer_token=bearer_token)
    limits = core.limits
    assert core.open(0)
    for chunk in chunks:
        if wire.closed:
            break
        core.receive(0, chunk)
        reader = core._http_readers.get(0)
        if reader is not None:
            bound = limits.max_header_bytes + 2 * limits.max_frame_bytes + len(chunk)
            assert reader.queued_bytes <= bound, "a reader holds more than its bound"
    if not wire.closed:
        core.closed(0)
    statuses = http_statuses(bytes(wire.output))
    for status in statuses:
        assert status in DOCUMENTED_STATUSES, statuses
    # Only rows that initialize kept for a GET may stay (they are bounded and freed in turn).
    assert core.statistics().sessions == 0, "a session slot was not freed"
    assert len(core.protocol.table) <= KEPT_ROWS
    return statuses


def drive_lines(chunks: list[bytes]) -> list[dict[str, Any]]:
    """Feed ``chunks`` to a newline-JSON connection; every reply is documented."""
    core, wire = make_core()
    assert core.open(0)
    for chunk in chunks:
        if wire.closed:
            break
        core.receive(0, chunk)
        while core._backlog:
            core.run_backlog()
    replies = [check_reply(line) for line in bytes(wire.output).split(b"\n") if line]
    if not wire.closed:
        core.closed(0)
    assert len(core.protocol.table) == 0
    return replies
