"""The stateless revision (2026-07-28) on the sans-I/O core: discovery, the request envelope
and its checks in the specification's order, HTTP headers against the body, caching hints,
subscriptions/listen, and multi-round-trip requests with a sealed requestState."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from connscale import App, Context
from connscale.core.protocol.stateless import decode_header_value
from connscale.server.loading import load_app
from support import INIT, CorePipe, HttpPipe, http_request, line, split_responses, sse_messages

EVERYTHING = load_app(f"{Path(__file__).resolve().parents[3] / 'examples' / 'everything.py'}:app")
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}, "sampling": {}},
}


def modern(
    method: str, params: dict[str, Any] | None = None, request_id: int = 1
) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": method,
        "params": {**(params or {}), "_meta": {**META, **(params or {}).get("_meta", {})}},
    }


def headers_for(message: dict[str, Any]) -> dict[str, str]:
    headers = {
        "mcp-protocol-version": message["params"]["_meta"].get(
            "io.modelcontextprotocol/protocolVersion", "2026-07-28"
        ),
        "mcp-method": message["method"],
    }
    params = message["params"]
    if message["method"] in ("tools/call", "prompts/get"):
        headers["mcp-name"] = params.get("name", "")
    elif message["method"] == "resources/read":
        headers["mcp-name"] = params.get("uri", "")
    return headers


def post(pipe: HttpPipe, message: dict[str, Any], **extra: str) -> tuple[int, dict[str, Any]]:
    """One modern POST (async tools run on a loop); the status and the message answering it."""
    headers = {**headers_for(message), **extra}

    async def exchange() -> bytes:
        connection = pipe.connect()
        pipe.core.receive(connection, http_request(body=message, headers=headers))
        while pipe.runner.in_flight:
            await asyncio.sleep(0.005)
        output = pipe.take(connection)
        pipe.core.closed(connection)
        return output

    [(status, response_headers, body)] = split_responses(asyncio.run(exchange()))
    if response_headers.get("content-type") == "text/event-stream":
        return status, sse_messages(body)[-1]
    return status, json.loads(body) if body else {}


def test_discover_advertises_the_versions_capabilities_and_server() -> None:
    pipe = HttpPipe(EVERYTHING)
    status, reply = post(pipe, modern("server/discover"))
    result = reply["result"]
    assert status == 200 and result["supportedVersions"] == ["2026-07-28"]
    assert {"tools", "resources", "prompts", "completions"} <= set(result["capabilities"])
    assert result["resultType"] == "complete" and result["ttlMs"] >= 0
    assert result["cacheScope"] in ("public", "private")
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "connscale-everything"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "must be an object"),
        ({"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}}, "protocolVersion"),
        ({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}, "clientCapab"),
    ],
)
def test_a_malformed_envelope_is_minus_32602_and_400(params: dict[str, Any], message: str) -> None:
    """Checked before the headers: a header naming a version but no version in _meta is
    still a malformed envelope, not a mismatch."""
    pipe = HttpPipe(EVERYTHING)
    body = {"jsonrpc": "2.0", "id": 3, "method": "server/discover", "params": params}
    headers = {"mcp-protocol-version": "2026-07-28", "mcp-method": "server/discover"}
    status, _, response = pipe.once(http_request(body=body, headers=headers))
    error = json.loads(response)["error"]
    assert status == 400 and error["code"] == -32602 and message in error["message"]
    assert json.loads(response)["id"] == 3


def test_headers_must_agree_with_the_body_then_the_version_must_be_known() -> None:
    pipe = HttpPipe(EVERYTHING)
    unsupported = modern(
        "server/discover", {"_meta": {"io.modelcontextprotocol/protocolVersion": "v999"}}
    )
    status, reply = post(pipe, unsupported)
    assert status == 400 and reply["error"]["code"] == -32022
    assert reply["error"]["data"] == {"supported": ["2026-07-28"], "requested": "v999"}
    status, reply = post(pipe, unsupported, **{"mcp-protocol-version": "2026-07-28"})
    assert status == 400 and reply["error"]["code"] == -32020  # mismatch before support
    call = modern("tools/call", {"name": "test_simple_text", "arguments": {}})
    for extra in (
        {"mcp-method": "prompts/list"},
        {"mcp-name": "wrong"},
        {"mcp-method": "TOOLS/CALL"},
    ):
        status, reply = post(pipe, call, **extra)
        assert status == 400 and reply["error"]["code"] == -32020, extra
    status, reply = post(pipe, call, **{"mcp-name": "  test_simple_text  "})  # OWS trimmed
    assert status == 200 and reply["result"]["content"]


def test_base64_header_values_and_x_mcp_header_arguments() -> None:
    assert decode_header_value(b"=?base64?SGVsbG8=?=") == "Hello"
    for bad in (b"=?base64?SGVsbG8?=", b"=?base64?SGVs!!!bG8=?=", b"\xff"):
        assert decode_header_value(bad) is None
    assert decode_header_value(b"=?base64?SGVsbG8=") == "=?base64?SGVsbG8="  # a literal
    pipe = HttpPipe(EVERYTHING)
    call = modern("tools/call", {"name": "test_x_mcp_header", "arguments": {"region": "Hello"}})
    status, reply = post(pipe, call, **{"mcp-param-region": "=?base64?SGVsbG8=?="})
    assert status == 200 and reply["result"]["content"][0]["text"] == "region=Hello"
    for header in (
        {},
        {"mcp-param-region": "Elsewhere"},
        {"mcp-param-region": "=?base64?SGVsbG8?="},
    ):
        status, reply = post(pipe, call, **header)
        assert status == 400 and reply["error"]["code"] == -32020, header


def test_removed_and_unknown_methods_are_404_minus_32601() -> None:
    pipe = HttpPipe(EVERYTHING)
    for method in ("initialize", "ping", "logging/setLevel", "resources/subscribe", "no/such"):
        status, reply = post(pipe, modern(method))
        assert status == 404 and reply["error"]["code"] == -32601, method


def test_results_carry_result_type_server_info_and_caching_hints() -> None:
    pipe = HttpPipe(EVERYTHING)
    for method in ("tools/list", "prompts/list", "resources/list", "resources/templates/list"):
        _, reply = post(pipe, modern(method))
        assert reply["result"]["resultType"] == "complete"
        assert {"ttlMs", "cacheScope", "_meta"} <= set(reply["result"]), method
    _, read = post(pipe, modern("resources/read", {"uri": "test://static-text"}))
    assert "ttlMs" in read["result"] and read["result"]["contents"]
    _, call = post(pipe, modern("tools/call", {"name": "test_simple_text"}))
    assert call["result"]["resultType"] == "complete" and "ttlMs" not in call["result"]
    status, missing = post(pipe, modern("resources/read", {"uri": "test://nope"}))
    assert status == 400 and missing["error"]["code"] == -32602  # -32002 retired in 2026
    assert missing["error"]["data"] == {"uri": "test://nope"}


def test_an_undeclared_capability_is_minus_32021() -> None:
    pipe = HttpPipe(EVERYTHING)
    call = modern("tools/call", {"name": "test_missing_capability"})
    call["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = {}
    status, reply = post(pipe, call)
    assert status == 400 and reply["error"]["code"] == -32021
    assert reply["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}


def test_logs_reach_the_client_only_when_its_request_asks() -> None:
    pipe = HttpPipe(EVERYTHING)

    async def both() -> tuple[bytes, bytes]:
        quiet = modern("tools/call", {"name": "test_tool_with_logging"})
        loud = modern("tools/call", {"name": "test_tool_with_logging"}, request_id=2)
        loud["params"]["_meta"]["io.modelcontextprotocol/logLevel"] = "info"
        outputs = []
        for message in (quiet, loud):
            connection = pipe.connect()
            pipe.core.receive(connection, http_request(body=message, headers=headers_for(message)))
            while pipe.runner.in_flight:
                await asyncio.sleep(0.01)
            outputs.append(pipe.take(connection))
        return outputs[0], outputs[1]

    quiet, loud = asyncio.run(both())
    assert b"notifications/message" not in quiet
    assert loud.count(b"notifications/message") == 3


class Name(msgspec.Struct):
    n: str = ""


class Colour(msgspec.Struct):
    c: str = ""


class Questions:
    """An app whose tools ask the client things, the same code in both eras."""

    def __init__(self) -> None:
        self.app = App("questions")
        self.runs = 0

        @self.app.tool()
        async def two_steps(ctx: Context) -> str:
            """Ask a name, then a colour."""
            self.runs += 1
            first = await ctx.elicit("name?", Name, key="name")
            second = await ctx.elicit("colour?", Colour, key="colour")
            return f"{first.content} {second.content}"


def run_modern(pipe: CorePipe, connection: int, message: dict[str, Any]) -> dict[str, Any]:
    async def go() -> list[dict[str, Any]]:
        pipe.core.receive(connection, line(message))
        while pipe.runner.in_flight:
            await asyncio.sleep(0.005)
        return pipe.messages(connection)

    [reply] = asyncio.run(go())
    return reply


def test_multi_round_requests_carry_earlier_answers_in_a_sealed_state() -> None:
    questions = Questions()
    pipe = CorePipe(questions.app)
    connection = pipe.connect()  # over a newline connection: no handshake needed
    first = run_modern(pipe, connection, modern("tools/call", {"name": "two_steps"}))
    result = first["result"]
    assert result["resultType"] == "input_required"
    assert list(result["inputRequests"]) == ["name"]
    assert result["inputRequests"]["name"]["method"] == "elicitation/create"
    state = result["requestState"]
    second = run_modern(
        pipe,
        connection,
        modern(
            "tools/call",
            {
                "name": "two_steps",
                "requestState": state,
                "inputResponses": {"name": {"action": "accept", "content": {"n": "Ada"}}},
            },
            request_id=2,
        ),
    )
    assert list(second["result"]["inputRequests"]) == ["colour"]
    assert second["result"]["requestState"] != state
    done = run_modern(
        pipe,
        connection,
        modern(
            "tools/call",
            {
                "name": "two_steps",
                "requestState": second["result"]["requestState"],
                "inputResponses": {"colour": {"action": "accept", "content": {"c": "red"}}},
            },
            request_id=3,
        ),
    )
    assert done["result"]["content"][0]["text"] == "{'n': 'Ada'} {'c': 'red'}"
    assert questions.runs == 3  # the function ran again each round


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda p: p | {"requestState": p["requestState"] + "-TAMPERED"}, "tampered"),
        (lambda p: p | {"name": "other_tool"}, "bound to another tool"),
        (lambda p: p | {"inputResponses": None}, "not an object"),
        (lambda p: p | {"inputResponses": {"name": 12345}}, "not a valid answer"),
    ],
)
def test_a_bad_retry_is_an_error_not_a_result(edit: Any, reason: str) -> None:
    questions = Questions()

    @questions.app.tool()
    async def other_tool(ctx: Context) -> str:
        """Another tool."""
        return "other"

    pipe = CorePipe(questions.app)
    connection = pipe.connect()
    first = run_modern(pipe, connection, modern("tools/call", {"name": "two_steps"}))
    params = {
        "name": "two_steps",
        "requestState": first["result"]["requestState"],
        "inputResponses": {"name": {"action": "accept", "content": {}}},
    }
    reply = run_modern(pipe, connection, modern("tools/call", edit(params), request_id=2))
    assert reply["error"]["code"] == -32602, reason


def test_listen_acknowledges_then_delivers_only_what_was_asked() -> None:
    app = App("listen")

    @app.tool()
    def first() -> str:
        """The first tool."""
        return "1"

    @app.prompt()
    def hello() -> str:
        """A prompt."""
        return "hi"

    pipe = HttpPipe(app)
    tools_stream, prompts_stream = pipe.connect(), pipe.connect()
    for connection, name, request_id in (
        (tools_stream, "toolsListChanged", 7),
        (prompts_stream, "promptsListChanged", 8),
    ):
        message = modern("subscriptions/listen", {"notifications": {name: True}}, request_id)
        head = pipe.feed(connection, http_request(body=message, headers=headers_for(message)))
        assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
        [ack] = sse_messages(head.split(b"\r\n\r\n", 1)[1])
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == request_id
        assert ack["params"]["notifications"] == {name: True}

    @app.tool()
    def second() -> str:
        """Added while the streams are open."""
        return "2"

    [change] = sse_messages(pipe.take(tools_stream))
    assert change["method"] == "notifications/tools/list_changed"
    assert change["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 7
    assert pipe.take(prompts_stream) == b""  # it did not ask for tool changes
    assert pipe.core.statistics().streams == 2
    pipe.core.close_gracefully()  # a server-ended listen gets its answer, then the end
    [final] = sse_messages(pipe.take(tools_stream).rsplit(b"0\r\n\r\n", 1)[0])
    assert final["id"] == 7 and final["result"]["resultType"] == "complete"


def test_a_listen_filter_with_unknown_keys_is_refused() -> None:
    pipe = HttpPipe(EVERYTHING)
    message = modern("subscriptions/listen", {"notifications": {"everything": True}})
    status, reply = post(pipe, message)
    assert status == 400 and reply["error"]["code"] == -32602 and "everything" in str(reply)


def test_a_handshake_session_and_stateless_requests_share_one_server() -> None:
    pipe = HttpPipe(EVERYTHING)
    token = pipe.initialized()
    legacy = {"jsonrpc": "2.0", "id": 9, "method": "tools/list"}
    status, _, body = pipe.once(http_request(body=legacy, headers={"mcp-session-id": token}))
    assert status == 200 and "resultType" not in json.loads(body)["result"]
    status, reply = post(pipe, modern("tools/list"))
    assert status == 200 and reply["result"]["resultType"] == "complete"
    assert split_responses(b"") == []
    assert pipe.once(http_request(body=INIT))[0] == 200
