"""What every fuzz target checks: the outputs the protocol core documents, and nothing else.

Shared by the atheris targets (``fuzz_*.py``) and the regression tests in the suite.
"""

from __future__ import annotations

import json
from typing import Any, Final

import h11

from connscale.core.protocol.http import HttpExchange, HttpSession, McpHttpHandler, SseStream
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.mcp import McpProtocol, ToolCall
from connscale.core.protocol.tokens import RevocationTable, SessionSigner
from connscale.core.session import SessionTable, Transport

#: JSON-RPC error codes the server may answer with (docs/SERVER.md, "Protocol").
DOCUMENTED_CODES: Final = frozenset({-32700, -32600, -32601, -32602})
#: HTTP statuses the Streamable HTTP handler may answer with (docs/SERVER.md, "Design").
DOCUMENTED_STATUSES: Final = frozenset(
    {200, 202, 400, 401, 403, 404, 405, 406, 409, 413, 415, 431, 500, 501, 505}
)
TOOLS: Final = [{"name": "echo", "description": "e", "inputSchema": {"type": "object"}}]
SMALL_LIMITS: Final = ServerLimits(
    max_frame_bytes=512, max_header_bytes=1024, max_json_depth=16, max_pending_per_session=4
)
INITIALIZE: Final = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":'
    b'"2025-06-18","capabilities":{},"clientInfo":{"name":"fuzz","version":"1"}}}'
)


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


def check_protocol_outcome(protocol: McpProtocol, outcome: bytes | ToolCall | None) -> None:
    """A handled frame gives a documented reply, a tool call, or nothing."""
    if isinstance(outcome, ToolCall):
        reply = protocol.finish_tool_call(outcome, {"content": [], "isError": False})
        check_reply(reply)
    elif outcome is not None:
        check_reply(outcome)


def make_http_handler(bearer_token: bytes | None = None) -> McpHttpHandler:
    """A handler with small limits and a fixed key: tokens from one work in the next."""
    protocol = McpProtocol(
        SessionTable(index_by_id=True),
        tools=TOOLS,
        limits=SMALL_LIMITS,
        transport=Transport.HTTP,
    )
    return McpHttpHandler(
        protocol,
        bearer_token=bearer_token,
        signer=SessionSigner(b"fuzzing-key-" * 3),
        revoked=RevocationTable(1024),
    )


def http_status(response: bytes) -> int:
    head = response.split(b"\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 "), response[:80]
    return int(head.split()[1])


def drive_http(handler: McpHttpHandler, chunks: list[bytes]) -> list[int]:
    """Feed ``chunks`` as an engine would; every answer has a documented status.

    Tool calls are answered at once; an event stream ends the exchange. Returns the statuses.
    """
    limits = handler._protocol.limits
    exchange: HttpExchange = handler.new_exchange()
    statuses: list[int] = []
    protocol = handler._protocol
    for chunk in chunks:
        exchange.receive(chunk)
        bound = exchange.max_backlog + limits.max_frame_bytes + len(chunk)
        assert exchange.buffered_bytes <= bound, "an exchange holds more than its bound"
        while True:
            outcome = handler.next_outcome(exchange)
            if outcome is None:
                break
            if isinstance(outcome, HttpSession):
                reply = protocol.finish_tool_call(outcome.call, {"content": [], "isError": False})
                outcome = handler.finish(exchange, outcome, reply)
            if isinstance(outcome, SseStream):
                assert http_status(outcome.head) == 200
                handler.attach_stream(outcome.slot, 1)
                handler.detach_stream(outcome.slot)
                return statuses
            statuses.append(http_status(outcome))
            assert statuses[-1] in DOCUMENTED_STATUSES, statuses
            if exchange.must_close or not exchange.start_next():
                break
        if exchange.must_close or exchange.conn.their_state is h11.ERROR:
            break
    assert len(protocol.table) == 0, "a transient session slot was not freed"
    return statuses
