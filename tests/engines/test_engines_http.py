"""Both engines, same integration tests: MCP Streamable HTTP on loopback, raw and with the SDK."""

from __future__ import annotations

import json
import socket

import anyio
import httpx
import pytest
from engine_harness import RunningServer

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def test_post_get_stream_and_delete(http_server: RunningServer) -> None:
    url = f"http://127.0.0.1:{http_server.port}/mcp"
    with httpx.Client(timeout=5) as client:
        response = client.post(url, json=INIT, headers=HEADERS)
        assert response.status_code == 200
        session = response.headers["mcp-session-id"]
        headers = {**HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        note = client.post(
            url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
        )
        assert note.status_code == 202
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x"}},
        }
        answer = client.post(url, json=call, headers=headers)
        assert answer.json()["result"]["content"][0]["text"] == "x"
        assert client.post(url, json=call, headers=HEADERS).status_code == 400  # no session id

    # An open GET stream holds the session's slot on this worker until it closes.
    stream = socket.create_connection(("127.0.0.1", http_server.port), timeout=5)
    stream.sendall(
        b"GET /mcp HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n"
        + f"mcp-session-id: {session}\r\n\r\n".encode()
    )
    head = stream.recv(4096)
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
    assert http_server.call(http_server.engine.statistics).sessions == 1
    with httpx.Client(timeout=5) as client:
        assert client.delete(url, headers={"mcp-session-id": session}).status_code == 200
        assert (
            client.post(
                url, json={"jsonrpc": "2.0", "id": 3, "method": "ping"}, headers=headers
            ).status_code
            == 404
        )
    tail = b""
    while chunk := stream.recv(4096):  # DELETE ended the stream: last chunk, then close
        tail += chunk
    assert tail.endswith(b"0\r\n\r\n")
    stream.close()
    assert http_server.call(http_server.engine.statistics).sessions == 0


def test_keep_alive_connection_serves_many_requests(http_server: RunningServer) -> None:
    url = f"http://127.0.0.1:{http_server.port}/mcp"
    with httpx.Client(timeout=5) as client:
        session = client.post(url, json=INIT, headers=HEADERS).headers["mcp-session-id"]
        headers = {**HEADERS, "mcp-session-id": session}
        for request_id in range(20):
            reply = client.post(
                url, json={"jsonrpc": "2.0", "id": request_id, "method": "ping"}, headers=headers
            )
            assert reply.json() == {"jsonrpc": "2.0", "id": request_id, "result": {}}
        assert http_server.call(http_server.engine.statistics).connections == 1


@pytest.mark.sdk
def test_official_sdk_client(http_server: RunningServer) -> None:
    mcp_client = pytest.importorskip("mcp.client.streamable_http")
    from mcp.client.session import ClientSession

    url = f"http://127.0.0.1:{http_server.port}/mcp"

    async def scenario() -> None:
        with anyio.fail_after(20):
            async with (
                mcp_client.streamable_http_client(url) as (read, write),
                ClientSession(read, write) as session,
            ):
                init = await session.initialize()
                assert init.server_info.name == "connscale"
                tools = await session.list_tools()
                assert {tool.name for tool in tools.tools} >= {"echo", "consult_experts"}
                result = await session.call_tool(
                    "consult_experts", {"question": "Why is the sky blue?"}
                )
                assert not result.is_error
                structured = result.structured_content
                assert structured is not None and structured["responses"]
                collected = await session.call_tool(
                    "get_expert_responses", {"query_id": structured["query_id"]}
                )
                assert json.loads(collected.content[0].text)["query_id"] == structured["query_id"]

    anyio.run(scenario)
