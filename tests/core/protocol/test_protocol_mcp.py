"""MCP on the sans-I/O protocol core: lifecycle, every error case, listings, pagination,
log levels, subscriptions, cancellation and client answers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from connscale.core.protocol.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    ClientResponse,
)
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.mcp import LATEST_PROTOCOL_VERSION, Call, Cancel, McpProtocol
from connscale.core.protocol.surface import (
    CallContext,
    ListKind,
    ServerInfo,
    SurfaceListener,
)
from connscale.core.session import Phase, SessionTable, Transport


class FakeSurface:
    """A surface with as many tools, resources and prompts as asked."""

    def __init__(
        self, tools: int = 1, resources: int = 0, prompts: int = 0, completions: bool = False
    ) -> None:
        self.items: dict[ListKind, list[dict[str, Any]]] = {
            "tools": [
                {"name": f"tool{i}", "inputSchema": {"type": "object"}} for i in range(tools)
            ],
            "resources": [{"uri": f"test://r{i}", "name": f"r{i}"} for i in range(resources)],
            "resourceTemplates": [],
            "prompts": [{"name": f"p{i}"} for i in range(prompts)],
        }
        self.completions = completions
        self.listeners: list[SurfaceListener] = []

    @property
    def info(self) -> ServerInfo:
        return ServerInfo("fake", "1.0", instructions="be nice")

    def capabilities(self) -> Mapping[str, Any]:
        caps: dict[str, Any] = {"logging": {}}
        if self.items["tools"]:
            caps["tools"] = {"listChanged": True}
        if self.items["resources"]:
            caps["resources"] = {"subscribe": True, "listChanged": True}
        if self.items["prompts"]:
            caps["prompts"] = {"listChanged": True}
        if self.completions:
            caps["completions"] = {}
        return caps

    def listing(self, kind: ListKind) -> list[dict[str, Any]]:
        return self.items[kind]

    def call_tool(self, name: str, arguments: Mapping[str, Any], context: CallContext) -> Any:
        return {"content": [], "isError": False}

    def read_resource(self, uri: str, context: CallContext) -> Any:
        return {"contents": []}

    def get_prompt(self, name: str, arguments: Mapping[str, str], context: CallContext) -> Any:
        return {"messages": []}

    def complete(self, ref: Any, argument: Any, context_arguments: Any, context: Any) -> Any:
        return {"completion": {"values": []}}

    def watch(self, listener: SurfaceListener) -> None:
        self.listeners.append(listener)

    def add_tool(self, name: str) -> None:
        self.items["tools"].append({"name": name, "inputSchema": {"type": "object"}})
        for listener in self.listeners:
            listener.list_changed("tools")


def make(
    surface: FakeSurface | None = None, transport: Transport = Transport.TCP, **limits: Any
) -> tuple[McpProtocol, int]:
    protocol = McpProtocol(
        surface or FakeSurface(),
        SessionTable(index_by_id=transport == Transport.HTTP),
        limits=ServerLimits(**limits),
        transport=transport,
        page_size=3,
    )
    return protocol, protocol.open_session(session_id=b"s" * 16 if transport == "http" else None)


def send(protocol: McpProtocol, slot: int, message: dict[str, Any]) -> Any:
    outcome = protocol.handle_frame(slot, json.dumps(message).encode())
    return json.loads(outcome) if isinstance(outcome, bytes) else outcome


def request(request_id: int, method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def initialize(protocol: McpProtocol, slot: int, version: str = "2025-06-18") -> dict[str, Any]:
    params = {
        "protocolVersion": version,
        "capabilities": {"sampling": {}},
        "clientInfo": {"name": "t", "version": "1"},
    }
    return send(protocol, slot, request(0, "initialize", params))  # type: ignore[no-any-return]


def error_code(reply: dict[str, Any]) -> int:
    return reply["error"]["code"]  # type: ignore[no-any-return]


def test_full_lifecycle() -> None:
    protocol, slot = make()
    reply = initialize(protocol, slot)
    result = reply["result"]
    assert result["protocolVersion"] == "2025-06-18"
    assert result["capabilities"] == {"logging": {}, "tools": {"listChanged": True}}
    assert result["serverInfo"] == {"name": "fake", "version": "1.0"}
    assert result["instructions"] == "be nice"
    assert protocol.table.get(slot, "client_name") == "t"
    assert protocol.table.get(slot, "phase") == Phase.INITIALIZING
    assert send(protocol, slot, {"jsonrpc": "2.0", "method": "notifications/initialized"}) is None
    assert protocol.table.get(slot, "phase") == Phase.INITIALIZED
    tools = send(protocol, slot, request(1, "tools/list"))
    assert [tool["name"] for tool in tools["result"]["tools"]] == ["tool0"]
    params = {"name": "tool0", "arguments": {"text": "x"}, "_meta": {"progressToken": "p1"}}
    call = send(protocol, slot, request(2, "tools/call", params))
    assert isinstance(call, Call)
    assert (call.method, call.target, call.arguments) == ("tools/call", "tool0", {"text": "x"})
    assert call.progress_token == "p1" and call.request_id == 2
    assert call.client.name == "t" and call.client.capabilities == {"sampling": {}}
    assert protocol.table.pending_count(slot) == 1
    answer = json.loads(protocol.complete(call, {"content": [], "isError": False}))
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
    assert send(protocol, slot, request(1, "ping"))["result"] == {}
    for method in ("tools/list", "tools/call", "logging/setLevel"):
        assert error_code(send(protocol, slot, request(2, method))) == INVALID_REQUEST
    # initialized before initialize changes nothing
    send(protocol, slot, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert not protocol.is_initialized(slot)


def test_unknown_method_is_method_not_found_in_every_phase() -> None:
    protocol, slot = make()
    assert error_code(send(protocol, slot, request(1, "bogus/method"))) == METHOD_NOT_FOUND
    initialize(protocol, slot)
    assert error_code(send(protocol, slot, request(1, "nope"))) == METHOD_NOT_FOUND


def test_methods_of_capabilities_the_surface_lacks_are_not_found() -> None:
    protocol, slot = make(FakeSurface(tools=0))
    initialize(protocol, slot)
    for method in ("tools/list", "resources/list", "prompts/get", "completion/complete"):
        assert error_code(send(protocol, slot, request(1, method, {}))) == METHOD_NOT_FOUND


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
    assert error_code(send(protocol, slot, request(1, "initialize", params))) == INVALID_PARAMS
    assert not protocol.is_initialized(slot)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tools/call", ["tool0"]),
        ("tools/call", {"arguments": {}}),
        ("tools/call", {"name": "tool0", "arguments": []}),
        ("prompts/get", {"name": 3}),
        ("prompts/get", {"name": "p0", "arguments": {"a": 1}}),
        ("resources/read", {"uri": None}),
        ("completion/complete", {"ref": {"type": "ref/x"}, "argument": {}}),
        ("completion/complete", {"ref": {"type": "ref/prompt"}, "argument": {"name": "a"}}),
        ("logging/setLevel", {"level": "loud"}),
        ("resources/subscribe", {}),
    ],
)
def test_bad_params_are_invalid_params(method: str, params: Any) -> None:
    surface = FakeSurface(tools=1, resources=1, prompts=1, completions=True)
    protocol, slot = make(surface)
    initialize(protocol, slot)
    reply = send(protocol, slot, request(5, method, params))
    assert error_code(reply) == INVALID_PARAMS
    assert reply["id"] == 5


def test_parse_and_invalid_request_errors() -> None:
    protocol, slot = make()
    reply = json.loads(protocol.handle_frame(slot, b"{not json"))  # type: ignore[arg-type]
    assert error_code(reply) == PARSE_ERROR and reply["id"] is None
    reply = send(protocol, slot, {"jsonrpc": "2.0", "id": 1})
    assert error_code(reply) == INVALID_REQUEST


def test_notifications_get_no_reply_and_client_answers_go_to_the_runner() -> None:
    protocol, slot = make()
    assert send(protocol, slot, {"jsonrpc": "2.0", "method": "unknown/notification"}) is None
    answer = send(protocol, slot, {"jsonrpc": "2.0", "id": 1, "result": {"x": 1}})
    assert isinstance(answer, ClientResponse) and answer.id == 1
    assert json.loads(bytes(answer.result)) == {"x": 1}  # type: ignore[arg-type]
    error = send(protocol, slot, {"jsonrpc": "2.0", "id": 2, "error": {"code": -1}})
    assert isinstance(error, ClientResponse) and error.error is not None


def test_cancellation_is_a_cancel_outcome() -> None:
    protocol, slot = make()
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
    assert send(protocol, slot, cancel) == Cancel(slot, 7)
    for bad in ({}, {"requestId": True}, {"requestId": [1]}, []):
        notification = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": bad}
        assert send(protocol, slot, notification) is None


def test_pending_limit_and_duplicate_ids() -> None:
    protocol, slot = make(max_pending_per_session=2)
    initialize(protocol, slot)

    def call(request_id: int) -> Any:
        return send(protocol, slot, request(request_id, "tools/call", {"name": "tool0"}))

    first = call(1)
    assert isinstance(first, Call)
    assert error_code(call(1)) == INVALID_REQUEST  # duplicate id in flight
    assert isinstance(call(2), Call)
    assert error_code(call(3)) == INVALID_REQUEST  # over the pending limit
    protocol.fail(first, -32603, "x")
    assert isinstance(call(3), Call)


def test_lists_are_paginated_with_cursors_only_this_server_issues() -> None:
    protocol, slot = make(FakeSurface(tools=7))
    initialize(protocol, slot)
    names: list[str] = []
    cursor = None
    pages = 0
    while True:
        reply = send(protocol, slot, request(1, "tools/list", {"cursor": cursor} if cursor else {}))
        names += [tool["name"] for tool in reply["result"]["tools"]]
        pages += 1
        cursor = reply["result"].get("nextCursor")
        if cursor is None:
            break
    assert names == [f"tool{i}" for i in range(7)] and pages == 3
    for forged in ("x", "", "A" * 100, 5, cursor_of_other_kind(protocol, slot)):
        reply = send(protocol, slot, request(2, "tools/list", {"cursor": forged}))
        assert error_code(reply) == INVALID_PARAMS, forged
    other, other_slot = make(FakeSurface(tools=7))  # another key: its cursors are foreign
    initialize(other, other_slot)
    foreign = send(other, other_slot, request(1, "tools/list"))["result"]["nextCursor"]
    assert error_code(send(protocol, slot, request(3, "tools/list", {"cursor": foreign}))) == (
        INVALID_PARAMS
    )


def cursor_of_other_kind(protocol: McpProtocol, slot: int) -> str:
    surface = protocol.surface
    assert isinstance(surface, FakeSurface)
    surface.items["prompts"] = [{"name": f"p{i}"} for i in range(5)]
    protocol.list_changed("prompts")
    reply = send(protocol, slot, request(9, "prompts/list"))
    return str(reply["result"]["nextCursor"])


def test_list_changes_are_broadcast_and_relisted() -> None:
    surface = FakeSurface(tools=1)
    protocol, slot = make(surface)
    initialize(protocol, slot)
    sent: list[bytes] = []
    protocol.broadcast = sent.append
    send(protocol, slot, request(1, "tools/list"))  # cached now
    surface.add_tool("late")
    assert [json.loads(m)["method"] for m in sent] == ["notifications/tools/list_changed"]
    names = [t["name"] for t in send(protocol, slot, request(2, "tools/list"))["result"]["tools"]]
    assert names == ["tool0", "late"]


def test_log_level_and_subscriptions_per_session() -> None:
    protocol, slot = make(FakeSurface(resources=1))
    initialize(protocol, slot)
    assert protocol.log_level(slot) is None
    assert (
        send(protocol, slot, request(1, "logging/setLevel", {"level": "warning"}))["result"] == {}
    )
    assert protocol.log_level(slot) == "warning"
    assert send(protocol, slot, request(2, "resources/subscribe", {"uri": "test://r0"}))
    delivered: list[tuple[set[Any], bytes]] = []
    protocol.deliver = lambda keys, message: delivered.append((keys, message))
    protocol.resource_updated("test://r0")
    protocol.resource_updated("test://other")  # nobody subscribed
    assert [(keys, json.loads(m)["params"]) for keys, m in delivered] == [
        ({slot}, {"uri": "test://r0"})
    ]
    send(protocol, slot, request(3, "resources/unsubscribe", {"uri": "test://r0"}))
    assert protocol.subscribers("test://r0") == set()
    send(protocol, slot, request(4, "resources/subscribe", {"uri": "test://r0"}))
    protocol.close_session(slot)  # a TCP session's subscriptions end with it
    assert protocol.subscribers("test://r0") == set() and protocol.log_level(slot) is None


def test_subscriptions_per_session_are_bounded() -> None:
    protocol, slot = make(FakeSurface(resources=1), max_pending_per_session=2)
    initialize(protocol, slot)
    for index in range(2):
        reply = send(protocol, slot, request(index, "resources/subscribe", {"uri": f"u{index}"}))
        assert reply["result"] == {}
    reply = send(protocol, slot, request(9, "resources/subscribe", {"uri": "u9"}))
    assert error_code(reply) == INVALID_REQUEST


def test_close_session_frees_the_slot() -> None:
    protocol, slot = make()
    protocol.close_session(slot)
    assert slot not in protocol.table
    protocol.close_session(slot)  # idempotent


def test_cursors_of_a_previous_key_are_still_followed_during_a_rotation() -> None:
    old, new = b"o" * 32, b"n" * 32

    def listing(**keys: Any) -> tuple[McpProtocol, int]:
        protocol = McpProtocol(FakeSurface(tools=7), SessionTable(), page_size=3, **keys)
        slot = protocol.open_session()
        initialize(protocol, slot)
        return protocol, slot

    before, before_slot = listing(key=old)
    cursor = send(before, before_slot, request(1, "tools/list"))["result"]["nextCursor"]
    rotated, slot = listing(key=new, previous_keys=[old])
    reply = send(rotated, slot, request(2, "tools/list", {"cursor": cursor}))
    assert [tool["name"] for tool in reply["result"]["tools"]] == ["tool3", "tool4", "tool5"]
    fresh = reply["result"]["nextCursor"]
    assert error_code(send(before, before_slot, request(3, "tools/list", {"cursor": fresh}))) == (
        INVALID_PARAMS  # new cursors are signed with the new key only
    )
    dropped, dropped_slot = listing(key=new)  # the rotation finished: the old key is gone
    assert error_code(
        send(dropped, dropped_slot, request(4, "tools/list", {"cursor": cursor}))
    ) == (INVALID_PARAMS)
