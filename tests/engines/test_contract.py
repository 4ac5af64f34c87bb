"""The engine contract: both engines, one suite, over real loopback sockets.

Every decision is the connection core's (tested byte by byte in tests/core); this suite
checks that each engine relays it faithfully: the same answers, the same closes, the same
refusals, the same timeouts (on a fake clock: nothing here sleeps for a timeout).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
from collections.abc import Iterator

import anyio
import httpx
import pytest

from connscale.core.protocol.limits import ServerLimits
from support import (
    HEADERS,
    INIT,
    INITIALIZED,
    GateSurface,
    LineClient,
    Running,
    echo,
    http_exchange,
    http_request,
    line,
    ping,
    running,
    tool_call,
    wait_until,
)


@pytest.fixture
def gate(engine: str) -> Iterator[tuple[Running, GateSurface]]:
    surface = GateSurface()
    with running(engine, app=surface) as server:
        yield server, surface


def gate_call(request_id: int) -> dict[str, object]:
    return tool_call(request_id, "gate", {})


# -- newline-delimited JSON-RPC over TCP ----------------------------------------------------------


def test_lifecycle_tools_and_experts(engine: str) -> None:
    with running(engine) as server:
        client = LineClient(server.port)
        assert (
            client.call({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})["error"]["code"]
            == -32600
        )  # type: ignore[index]
        client.initialize()
        assert client.ping(2)
        listed = client.call({"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
        assert [t["name"] for t in listed["result"]["tools"]] == [  # type: ignore[index]
            "echo",
            "consult_experts",
            "get_expert_responses",
        ]
        assert client.call(echo(4, "hi"))["result"]["content"][0]["text"] == "hi"  # type: ignore[index]
        consulted = client.call(tool_call(5, "consult_experts", {"question": "Is the sea salty?"}))
        structured = consulted["result"]["structuredContent"]  # type: ignore[index]
        assert structured["responses"] and 0.0 <= structured["confidence"] <= 1.0
        collected = client.call(
            tool_call(6, "get_expert_responses", {"query_id": structured["query_id"]})
        )
        responses = collected["result"]["structuredContent"]["responses"]  # type: ignore[index]
        assert len(responses) == len(structured["responses"])
        client.close()


@pytest.mark.parametrize("transport", ["tcp", "http"])
def test_each_engine_serves_and_stops_inside_uvloop(engine: str, transport: str) -> None:
    """``--loop uvloop`` runs the engine inside uvloop, whose loop methods return other
    types than asyncio's (the compiled epoll engine once failed at every stop there)."""
    with running(engine, transport, loop="uvloop") as server:
        assert type(server.loop).__module__.startswith("uvloop")
        if transport == "tcp":
            client = LineClient(server.port)
            client.initialize()
            assert client.call(ping(2))["result"] == {}
            client.close()
        else:
            status, _, _ = http_exchange(server.port, http_request(body=INIT))
            assert status == 200
    # Leaving ``running`` closed the engine: a failure there raises ServerError.


def test_errors_do_not_close_the_connection(engine: str) -> None:
    with running(engine) as server:
        client = LineClient(server.port)
        client.send(b"\xff\xfe garbage\n", b'{"jsonrpc":"2.0","id":1,\n')
        assert client.receive()["error"]["code"] == -32700  # type: ignore[index]
        assert client.receive()["error"]["code"] == -32700  # type: ignore[index]
        client.send(b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]\n')
        assert client.receive()["error"]["code"] == -32600  # type: ignore[index]
        assert client.call({"jsonrpc": "2.0", "id": 2, "method": "nope"})["error"]["code"] == (  # type: ignore[index]
            -32601
        )
        assert client.ping(3)
        client.close()


def test_sessions_are_freed_on_disconnect(engine: str) -> None:
    with running(engine) as server:
        clients = [LineClient(server.port) for _ in range(5)]
        for client in clients:
            client.initialize()
            assert client.ping(9)
        stats = server.statistics()
        assert stats.connections == 5 and stats.sessions == 5
        for client in clients:
            client.close()
        wait_until(lambda: server.statistics().sessions == 0)


def test_pipelined_requests_one_byte_per_write(engine: str) -> None:
    with running(engine) as server:
        client = LineClient(server.port)
        client.initialize()
        stream = b"".join(line(ping(i)) for i in range(3)) + line(echo(3, "x"))
        for byte in range(len(stream)):
            client.sock.sendall(stream[byte : byte + 1])
        assert [(client.receive() or {}).get("id") for _ in range(4)] == [0, 1, 2, 3]
        client.close()


def test_a_pipelining_client_is_answered_in_order_while_others_get_turns(engine: str) -> None:
    with running(engine) as server:
        good = LineClient(server.port)
        good.initialize()
        pipeliner = LineClient(server.port, timeout=10)
        pipeliner.initialize()
        count = 20_000  # far more frames than one turn (16) in every read
        stream = b"".join(
            line(echo(i, str(i))) if i % 100 == 0 else line(ping(i)) for i in range(count)
        )
        pipeliner.sock.sendall(stream[: len(stream) // 2])
        assert good.ping(1)  # answered while the pipeliner's frames wait their turns
        pipeliner.sock.sendall(stream[len(stream) // 2 :])
        for expected in range(count):
            reply = pipeliner.receive()
            assert reply is not None and reply["id"] == expected
            if expected % 100 == 0:
                assert reply["result"]["content"][0]["text"] == str(expected)
        assert good.ping(2)
        good.close()
        pipeliner.close()


def test_an_oversized_frame_with_an_async_call_in_flight_gets_the_owed_answer(
    engine: str,
) -> None:
    """Regression: the asyncio engine closed without the answer of the call in flight."""
    surface = GateSurface()
    with running(engine, app=surface, limits=ServerLimits(max_frame_bytes=64 << 10)) as server:
        client = LineClient(server.port)
        client.initialize()
        client.send(gate_call(1))
        assert server.wait_for(lambda: surface.waiting == 1)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            client.sock.sendall(b"q" * (1 << 20))  # no newline, 16x the limit
        error = client.receive()
        assert error is not None and "too large" in error["error"]["message"]
        server.call(surface.open)
        answer = client.receive()
        assert answer is not None and answer["id"] == 1 and answer["result"]["content"]
        assert client.receive() is None  # then closed
        assert server.wait_for(lambda: server.engine.statistics().connections == 0)
        assert len(server.protocol.table) == 0
        client.close()


def test_half_close_with_calls_in_flight_gets_every_answer(
    gate: tuple[Running, GateSurface],
) -> None:
    server, surface = gate
    client = LineClient(server.port)
    client.send(line(INIT), line(ping(1)), line(gate_call(2)), line(echo(3, "last")))
    client.sock.shutdown(socket.SHUT_WR)
    replies = [client.receive() for _ in range(3)]
    assert [reply["id"] for reply in replies if reply] == [0, 1, 3]
    assert server.wait_for(lambda: surface.waiting == 1)
    server.call(surface.open)
    assert (client.receive() or {}).get("id") == 2  # the async answer came last
    assert client.receive() is None  # then the server closes
    client.close()
    wait_until(lambda: server.statistics().connections == 0)


def test_reset_mid_message_frees_everything_and_others_go_on(engine: str) -> None:
    for transport in ("tcp", "http"):
        with running(engine, transport) as server:
            bystander = None
            if transport == "tcp":
                bystander = LineClient(server.port)
                bystander.initialize()
            for _ in range(10):
                sock = socket.create_connection(server.address, timeout=5)
                message = line(INIT) if transport == "tcp" else http_request(body=INIT)
                sock.sendall(message[: len(message) // 2])
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()  # SO_LINGER 0: the kernel sends RST
            expected = 1 if bystander is not None else 0

            def settled(expected: int = expected) -> bool:
                stats = server.engine.statistics()
                return stats.accepted == 10 + expected and stats.connections == expected

            assert server.wait_for(settled)
            assert server.call(lambda: len(server.protocol.table)) == expected
            if bystander is not None:
                assert bystander.ping(9)
                bystander.close()
            else:
                assert http_exchange(server.port, http_request(body=INIT))[0] == 200


def test_connection_flood_is_refused_cleanly_and_recovers(engine: str) -> None:
    with running(engine, limits=ServerLimits(max_connections=20)) as server:
        kept = [LineClient(server.port) for _ in range(20)]
        for client in kept:
            client.initialize()
        flood = [LineClient(server.port, timeout=2) for _ in range(100)]  # 5x the limit
        for client in flood:
            assert client.closed_by_server()  # accepted and closed at once, never held
        assert server.statistics().connections == 20
        assert all(client.ping(7) for client in kept)
        for client in flood + kept[:10]:
            client.close()
        wait_until(lambda: server.statistics().connections == 10)
        again = LineClient(server.port)  # room again: served as usual
        again.initialize()
        assert again.ping(3)
        for client in [again, *kept[10:]]:
            client.close()


def test_handshake_and_idle_timeouts_on_a_fake_clock(engine: str) -> None:
    limits = ServerLimits(handshake_timeout=5.0, idle_timeout=20.0)
    with running(engine, limits=limits) as server:
        silent = LineClient(server.port, timeout=0.2)
        trickle = LineClient(server.port, timeout=0.2)
        busy = LineClient(server.port)
        busy.initialize()
        quiet = LineClient(server.port, timeout=0.2)
        quiet.initialize()
        trickle.send(line(INIT)[:10])  # bytes, but no initialize: no extension
        wait_until(lambda: server.statistics().connections == 4)  # all accepted
        server.advance(7.0)
        assert silent.closed_by_server() and trickle.closed_by_server()
        assert not quiet.closed_by_server()
        for request_id in range(3):  # busy stays active; quiet says nothing for 21 s
            server.advance(7.0)
            assert busy.ping(request_id)
        server.advance(3.0)
        assert quiet.closed_by_server()
        assert busy.ping(99)
        for client in (silent, trickle, busy, quiet):
            client.close()


def test_idle_timeout_is_off_by_default(engine: str) -> None:
    with running(engine) as server:
        client = LineClient(server.port, timeout=0.2)
        client.initialize()
        server.advance(3600.0)
        assert not client.closed_by_server()
        assert client.ping(1)
        client.close()


# -- flow control --------------------------------------------------------------------------------

FLOW = ServerLimits(
    write_high_water=16 << 10,
    write_low_water=4 << 10,
    max_write_buffer=64 << 10,
    handshake_timeout=5.0,  # also how long a paused client has to read its answers
)


def push_until_blocked(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Send ``data`` over and over without reading until the socket blocks; bytes sent."""
    sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + seconds
    blocked_since: float | None = None
    while time.monotonic() < deadline:
        try:
            sent += sock.send(data)
            blocked_since = None
        except BlockingIOError:
            now = time.monotonic()
            blocked_since = blocked_since or now
            if now - blocked_since > 0.05:
                break  # the server stopped reading from us
            time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            break  # or it closed us
    return sent


def test_a_client_that_never_reads_is_paused_and_memory_stays_bounded(engine: str) -> None:
    with running(engine, limits=FLOW) as server:
        good = LineClient(server.port)
        good.initialize()
        hostile = LineClient(server.port, receive_buffer=4096)
        hostile.initialize()
        burst = b"".join(line(ping(i)) for i in range(1000))
        peak = 0
        for _ in range(5):  # pings in bursts, never reading the answers
            push_until_blocked(hostile.sock, burst, 0.5)
            peak = max(peak, server.call(server.engine.buffered_output))  # type: ignore[attr-defined]
            assert good.ping(1)  # the other client is served all along
        # Paused at the high water mark, or closed once its output passed max_write_buffer.
        assert peak <= FLOW.max_write_buffer
        assert server.statistics().connections in (1, 2)
        server.advance(6.0)  # paused past the handshake timeout: closed
        wait_until(lambda: server.statistics().connections == 1)
        assert good.ping(2)
        hostile.close()
        good.close()


# -- HTTP -----------------------------------------------------------------------------------------


def test_post_get_stream_and_delete(engine: str) -> None:
    with running(engine, "http") as server:
        url = f"http://127.0.0.1:{server.port}/mcp"
        with httpx.Client(timeout=5) as client:
            response = client.post(url, json=INIT, headers=HEADERS)
            assert response.status_code == 200
            session = response.headers["mcp-session-id"]
            headers = {**HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
            assert client.post(url, json=INITIALIZED, headers=headers).status_code == 202
            answer = client.post(url, json=echo(2, "x"), headers=headers)
            assert answer.json()["result"]["content"][0]["text"] == "x"
            assert client.post(url, json=echo(3), headers=HEADERS).status_code == 400
        stream = socket.create_connection(server.address, timeout=5)
        stream.sendall(
            b"GET /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n"
            + f"mcp-session-id: {session}\r\n\r\n".encode()
        )
        head = stream.recv(4096)
        assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
        assert server.statistics().sessions == 1
        with httpx.Client(timeout=5) as client:
            assert client.delete(url, headers={"mcp-session-id": session}).status_code == 200
            assert client.post(url, json=ping(3), headers=headers).status_code == 404
        tail = b""
        while chunk := stream.recv(4096):  # DELETE ended the stream: last chunk, then close
            tail += chunk
        assert tail.endswith(b"0\r\n\r\n")
        stream.close()
        wait_until(lambda: server.statistics().sessions == 0)


def test_keep_alive_connection_serves_many_requests_then_times_out(engine: str) -> None:
    limits = ServerLimits(handshake_timeout=5.0)
    with running(engine, "http", limits, http_keepalive_timeout=10.0) as server:
        client = LineClient(server.port, timeout=0.3)
        for request_id in range(20):
            client.send(http_request(body=INIT | {"id": request_id}))
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"}}"):
                data += client.sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200") and b'"id":%d' % request_id in data
        assert server.statistics().connections == 1
        server.advance(12.0)  # idle past the keep-alive timeout
        assert client.closed_by_server()
        slow = LineClient(server.port, timeout=0.3)
        slow.send(http_request(body=INIT)[:30])  # a head trickled, never finished
        wait_until(lambda: server.statistics().connections == 1)  # accepted
        server.advance(7.0)
        assert slow.closed_by_server()
        client.close()
        slow.close()


def test_head_request_gets_405_without_a_body(engine: str) -> None:
    with running(engine, "http") as server:
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(b"HEAD /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            data = sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 405") and data.endswith(b"\r\n\r\n")


def test_an_async_call_over_http_and_a_connection_closed_meanwhile(
    gate: tuple[Running, GateSurface],
) -> None:
    server, surface = gate
    del server
    # the gate fixture serves TCP; HTTP needs its own server
    with running("epoll", "http", app=surface) as http:
        token = http_exchange(http.port, http_request(body=INIT))[1]["mcp-session-id"]
        call = http_request(body=gate_call(7), headers={"mcp-session-id": token})
        abandoned = socket.create_connection(http.address, timeout=5)
        abandoned.sendall(call)
        assert http.wait_for(lambda: surface.waiting == 1)
        abandoned.close()  # the client gives up: its transient slot is freed at the answer
        waiting = socket.create_connection(http.address, timeout=5)
        waiting.sendall(call.replace(b'"id": 7', b'"id": 8'))
        assert http.wait_for(lambda: surface.waiting == 2)
        http.call(surface.open)
        data = b""
        while not data.endswith(b"}}"):
            data += waiting.recv(65536)
        assert data.startswith(b"HTTP/1.1 200") and b'"id":8' in data
        waiting.close()
        # No slot stays held; only the row initialize kept for a GET stream may remain.
        assert http.wait_for(lambda: http.engine.statistics().sessions == 0)
        assert http.call(lambda: len(http.protocol.table)) <= 1


@pytest.mark.sdk
def test_official_sdk_client(engine: str) -> None:
    pytest.importorskip("mcp.client.streamable_http")
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    with running(engine, "http") as server:
        url = f"http://127.0.0.1:{server.port}/mcp"

        async def scenario() -> None:
            with anyio.fail_after(20):
                async with (
                    streamable_http_client(url) as (read, write),
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
                    text = collected.content[0].text  # type: ignore[union-attr]
                    assert json.loads(text)["query_id"] == structured["query_id"]

        anyio.run(scenario)
