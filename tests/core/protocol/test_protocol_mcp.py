"""MCP lifecycle conformance on the sans-I/O core: every phase and every error case."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connscale.core.protocol.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
)
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.mcp import LATEST_PROTOCOL_VERSION, McpProtocol, ToolCall
from connscale.core.session import Phase, SessionTable

TOOLS = [{"name": "echo", "description": "d", "inputSchema": {"type": "object"}}]


def make(**limits: Any) -> tuple[McpProtocol, int]:
    protocol = McpProtocol(SessionTable(), tools=TOOLS, limits=ServerLimits(**limits))
    return protocol, protocol.open_session()


def send(protocol: McpProtocol, slot: int, message: dict[str, Any]) -> Any:
    outcome = protocol.handle_frame(slot, json.dumps(message).encode())
    return json.loads(outcome) if isinstance(outcome, bytes) else outcome


def initialize(protocol: McpProtocol, slot: int, version: str = "2025-06-18") -> dict[str, Any]:
    params = {
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    return send(
        protocol, slot, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
    )  # type: ignore[no-any-return]


def error_code(reply: dict[str, Any]) -> int:
    return reply["error"]["code"]  # type: ignore[no-any-return]


def test_full_lifecycle() -> None:
    protocol, slot = make()
    reply = initialize(protocol, slot)
    assert reply["result"]["protocolVersion"] == "2025-06-18"
    assert reply["result"]["capabilities"] == {"tools": {"listChanged": False}}
    assert protocol.table.get(slot, "client_name") == "t"
    assert protocol.table.get(slot, "phase") == Phase.INITIALIZING
    assert send(protocol, slot, {"jsonrpc": "2.0", "method": "notifications/initialized"}) is None
    assert protocol.table.get(slot, "phase") == Phase.INITIALIZED
    tools = send(protocol, slot, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert [tool["name"] for tool in tools["result"]["tools"]] == ["echo"]
    call = send(
        protocol,
        slot,
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x"}},
        },
    )
    assert call == ToolCall(slot, 2, "echo", {"text": "x"})
    assert protocol.table.pending_count(slot) == 1
    answer = json.loads(protocol.finish_tool_call(call, {"content": [], "isError": False}))
    assert answer == {"jsonrpc": "2.0", "id": 2, "result": {"content": [], "isError": False}}
    assert protocol.table.pending_count(slot) == 0


def test_unknown_version_gets_the_latest() -> None:
    protocol, slot = make()
    assert (
        initialize(protocol, slot, "1999-01-01")["result"]["protocolVersion"]
        == LATEST_PROTOCOL_VERSION
    )


def test_ping_works_before_initialize_but_other_requests_do_not() -> None:
    protocol, slot = make()
    assert send(protocol, slot, {"jsonrpc": "2.0", "id": 1, "method": "ping"})["result"] == {}
    for method in ("tools/list", "tools/call"):
        reply = send(protocol, slot, {"jsonrpc": "2.0", "id": 2, "method": method})
        assert error_code(reply) == INVALID_REQUEST
    # initialized before initialize changes nothing
    send(protocol, slot, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert not protocol.is_initialized(slot)


def test_unknown_method_is_method_not_found_in_every_phase() -> None:
    protocol, slot = make()
    assert (
        error_code(send(protocol, slot, {"jsonrpc": "2.0", "id": 1, "method": "server/discover"}))
        == METHOD_NOT_FOUND
    )
    initialize(protocol, slot)
    assert (
        error_code(send(protocol, slot, {"jsonrpc": "2.0", "id": 1, "method": "nope"}))
        == METHOD_NOT_FOUND
    )


def test_second_initialize_is_refused() -> None:
    protocol, slot = make()
    initialize(protocol, slot)
    assert error_code(initialize(protocol, slot)) == INVALID_REQUEST


@pytest.mark.parametrize(
    "params",
    [
        None,
        [],
        {"capabilities": {}},
        {"protocolVersion": 5},
        {"protocolVersion": "2025-06-18", "clientInfo": "x"},
    ],
)
def test_bad_initialize_params(params: Any) -> None:
    protocol, slot = make()
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "initialize"}
    if params is not None:
        message["params"] = params
    assert error_code(send(protocol, slot, message)) == INVALID_PARAMS
    assert not protocol.is_initialized(slot)


@pytest.mark.parametrize(
    "params",
    [["echo"], {"arguments": {}}, {"name": "echo", "arguments": []}, {"name": "missing"}],
)
def test_bad_tool_calls_are_invalid_params(params: Any) -> None:
    protocol, slot = make()
    initialize(protocol, slot)
    reply = send(
        protocol, slot, {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params}
    )
    assert error_code(reply) == INVALID_PARAMS
    assert reply["id"] == 5


def test_parse_and_invalid_request_errors() -> None:
    protocol, slot = make()
    reply = json.loads(protocol.handle_frame(slot, b"{not json"))  # type: ignore[arg-type]
    assert error_code(reply) == PARSE_ERROR and reply["id"] is None
    reply = send(protocol, slot, {"jsonrpc": "2.0", "id": 1})
    assert error_code(reply) == INVALID_REQUEST


def test_notifications_and_client_responses_get_no_reply() -> None:
    protocol, slot = make()
    assert send(protocol, slot, {"jsonrpc": "2.0", "method": "unknown/notification"}) is None
    assert send(protocol, slot, {"jsonrpc": "2.0", "id": 1, "result": {}}) is None


def test_pending_limit_and_duplicate_ids() -> None:
    protocol, slot = make(max_pending_per_session=2)
    initialize(protocol, slot)

    def call(request_id: int) -> Any:
        params = {"name": "echo", "arguments": {}}
        return send(
            protocol,
            slot,
            {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params},
        )

    first = call(1)
    assert isinstance(first, ToolCall)
    assert error_code(call(1)) == INVALID_REQUEST  # duplicate id in flight
    assert isinstance(call(2), ToolCall)
    assert error_code(call(3)) == INVALID_REQUEST  # over the pending limit
    protocol.fail_tool_call(first, -32603, "x")
    assert isinstance(call(3), ToolCall)


def test_close_session_frees_the_slot() -> None:
    protocol, slot = make()
    protocol.close_session(slot)
    assert slot not in protocol.table
    protocol.close_session(slot)  # idempotent
