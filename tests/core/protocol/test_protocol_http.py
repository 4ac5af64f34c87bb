"""Streamable HTTP on the sans-I/O core: statuses, session tokens, SSE, DELETE, bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connscale.core.protocol.http import (
    HttpExchange,
    HttpSession,
    McpHttpHandler,
    SseStream,
    http_chunk,
    sse_event,
)
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.mcp import McpProtocol
from connscale.core.protocol.tokens import RevocationTable, SessionSigner
from connscale.core.session import SessionTable, Transport

TOOLS = [{"name": "echo", "description": "d", "inputSchema": {"type": "object"}}]
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "c", "version": "1"},
    },
}


def make_handler(**options: Any) -> McpHttpHandler:
    table = SessionTable(index_by_id=True)
    protocol = McpProtocol(
        table, tools=TOOLS, limits=ServerLimits(max_frame_bytes=1000), transport=Transport.HTTP
    )
    return McpHttpHandler(protocol, **options)


def request(
    method: str = "POST",
    body: object = None,
    *,
    session: bytes | None = None,
    headers: dict[str, str] | None = None,
    path: str = "/mcp",
) -> bytes:
    payload = (
        b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    lines = [f"{method} {path} HTTP/1.1", "host: localhost", f"content-length: {len(payload)}"]
    base = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    base.update(headers or {})
    lines += [f"{key}: {value}" for key, value in base.items()]
    if session is not None:
        lines.append(f"mcp-session-id: {session.decode()}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def exchange_once(handler: McpHttpHandler, data: bytes) -> tuple[HttpExchange, Any]:
    exchange = handler.new_exchange()
    exchange.receive(data)
    return exchange, handler.next_outcome(exchange)


def parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    pairs = (line.split(": ", 1) for line in lines[1:])
    headers = {key.lower(): value for key, value in pairs}
    return status, headers, body


def initialized(handler: McpHttpHandler) -> bytes:
    _, response = exchange_once(handler, request(body=INIT))
    status, headers, body = parse(response)
    assert status == 200, body
    return headers["mcp-session-id"].encode()


def test_initialize_returns_a_signed_session_id() -> None:
    handler = make_handler()
    token = initialized(handler)
    assert len(token) > 40
    assert len(handler._protocol.table) == 0  # state travels in the token, not the table


def test_requests_with_the_token_are_served_anywhere() -> None:
    key = b"k" * 32
    first = make_handler(signer=SessionSigner(key))
    token = initialized(first)
    other = make_handler(signer=SessionSigner(key))  # another worker with the same key
    ping = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    _, response = exchange_once(other, request(body=ping, session=token))
    status, _, body = parse(response)
    assert status == 200
    assert json.loads(body)["result"]["tools"][0]["name"] == "echo"
    assert len(other._protocol.table) == 0  # the transient slot was freed


def test_missing_unknown_and_tampered_sessions() -> None:
    handler = make_handler()
    token = initialized(handler)
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    assert parse(exchange_once(handler, request(body=ping))[1])[0] == 400
    assert parse(exchange_once(handler, request(body=ping, session=b"abc"))[1])[0] == 404
    tampered = token[:-3] + (b"AAA" if token[-3:] != b"AAA" else b"BBB")
    assert parse(exchange_once(handler, request(body=ping, session=tampered))[1])[0] == 404
    foreign = initialized(make_handler())  # signed with another key
    assert parse(exchange_once(handler, request(body=ping, session=foreign))[1])[0] == 404


def test_notification_is_accepted_with_202() -> None:
    handler = make_handler()
    token = initialized(handler)
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    status, _, body = parse(exchange_once(handler, request(body=note, session=token))[1])
    assert status == 202 and body == b""


def test_tool_call_is_handed_to_the_engine_and_finished() -> None:
    handler = make_handler()
    token = initialized(handler)
    call = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {}},
    }
    exchange, outcome = exchange_once(handler, request(body=call, session=token))
    assert isinstance(outcome, HttpSession)
    reply = handler._protocol.finish_tool_call(outcome.call, {"content": [], "isError": False})
    status, headers, body = parse(handler.finish(exchange, outcome, reply))
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body)["id"] == 3
    assert len(handler._protocol.table) == 0


def test_sse_responses() -> None:
    handler = make_handler(sse_responses=True)
    _, response = exchange_once(handler, request(body=INIT))
    status, headers, body = parse(response)
    assert status == 200 and headers["content-type"] == "text/event-stream"
    assert b"event: message\ndata: {" in body and body.endswith(b"0\r\n\r\n")


def test_get_opens_a_stream_that_holds_one_slot_and_delete_ends_it() -> None:
    handler = make_handler()
    closed: list[int] = []
    handler.set_stream_closer(closed.append)
    token = initialized(handler)
    _, outcome = exchange_once(
        handler, request("GET", session=token, headers={"accept": "text/event-stream"})
    )
    assert isinstance(outcome, SseStream)
    assert b"text/event-stream" in outcome.head
    handler.attach_stream(outcome.slot, 42)
    assert len(handler._protocol.table) == 1
    second = exchange_once(
        handler, request("GET", session=token, headers={"accept": "text/event-stream"})
    )[1]
    assert parse(second)[0] == 409
    assert parse(exchange_once(handler, request("DELETE", session=token))[1])[0] == 200
    assert closed == [42]
    handler.detach_stream(outcome.slot)
    assert len(handler._protocol.table) == 0
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    assert parse(exchange_once(handler, request(body=ping, session=token))[1])[0] == 404


def test_deletes_are_seen_by_other_workers_sharing_the_table() -> None:
    key = b"k" * 32
    shared = memoryview(bytearray(RevocationTable.size_for(64)))
    first = make_handler(signer=SessionSigner(key), revoked=RevocationTable(64, buffer=shared))
    second = make_handler(signer=SessionSigner(key), revoked=RevocationTable(64, buffer=shared))
    token = initialized(first)
    assert parse(exchange_once(first, request("DELETE", session=token))[1])[0] == 200
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    assert parse(exchange_once(second, request(body=ping, session=token))[1])[0] == 404


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (request(body=INIT, path="/other"), 404),
        (request("PUT", body=INIT), 405),
        (request(body=INIT, headers={"content-type": "text/plain"}), 415),
        (request(body=INIT, headers={"accept": "text/html"}), 406),
        (request(body=INIT, headers={"origin": "http://evil.example"}), 403),
        (request(body=INIT, headers={"mcp-protocol-version": "1999-01-01"}), 400),
        (request(body=b"{not json"), 400),
        (request(body=[INIT]), 400),
        (request(body=b"x" * 2000), 413),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
    ],
)
def test_bad_requests(data: bytes, status: int) -> None:
    _exchange, response = exchange_once(make_handler(), data)
    assert isinstance(response, bytes)
    assert parse(response)[0] == status


def test_local_origins_are_allowed() -> None:
    handler = make_handler(allowed_origins=["https://app.example"])
    for origin in ("http://localhost:3000", "http://127.0.0.1", "https://app.example"):
        assert (
            parse(exchange_once(handler, request(body=INIT, headers={"origin": origin}))[1])[0]
            == 200
        )


def test_pipelined_requests_are_answered_in_order_and_exchange_goes_idle() -> None:
    handler = make_handler()
    exchange = handler.new_exchange()
    exchange.receive(request(body=INIT) + request(body=INIT))
    statuses = []
    while (outcome := handler.next_outcome(exchange)) is not None:
        assert isinstance(outcome, bytes)
        statuses.append(parse(outcome)[0])
        assert exchange.start_next()
    assert statuses == [200, 200]
    assert exchange.idle


def test_byte_by_byte_delivery() -> None:
    handler = make_handler()
    exchange = handler.new_exchange()
    data = request(body=INIT)
    outcome = None
    for index in range(len(data)):
        exchange.receive(data[index : index + 1])
        outcome = handler.next_outcome(exchange)
        if index < len(data) - 1:
            assert outcome is None
    assert isinstance(outcome, bytes) and parse(outcome)[0] == 200


def test_sse_helpers() -> None:
    assert sse_event(b"{}") == b"event: message\ndata: {}\n\n"
    assert http_chunk(b"abc") == b"3\r\nabc\r\n"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_gets_an_answer_or_waits_never_raises(data: bytes) -> None:
    handler = make_handler()
    exchange = handler.new_exchange()
    exchange.receive(data)
    outcome = handler.next_outcome(exchange)
    assert outcome is None or isinstance(outcome, bytes)
