"""notifications/cancelled stops a running call, and the call is not answered (MCP says so):
over TCP and over Streamable HTTP, on both engines."""

from __future__ import annotations

import asyncio
import json
import socket
import struct

from connscale import App, Context
from support import INIT, INITIALIZED, LineClient, http_exchange, http_request, line, ping, running


class Watched:
    """An app whose ``wait`` tool runs until cancelled, and remembers that it was."""

    def __init__(self) -> None:
        self.app = App("cancel")
        self.started = 0
        self.cancelled = 0

        @self.app.tool()
        async def wait(ctx: Context) -> str:
            """Wait until cancelled."""
            self.started += 1
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return "never"


def cancel(request_id: int) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": request_id, "reason": "user"},
    }


def call_wait(request_id: int) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": "wait"}}


def test_a_cancelled_call_stops_and_is_not_answered_over_tcp(engine: str) -> None:
    watched = Watched()
    with running(engine, app=watched.app) as server:
        client = LineClient(server.port)
        client.initialize()
        client.send(call_wait(5))
        assert server.wait_for(lambda: watched.started == 1)
        client.send(cancel(5), cancel(99))  # 99 is unknown: ignored, as the spec says
        assert server.wait_for(lambda: watched.cancelled == 1)
        assert client.call(ping(6)) == {"jsonrpc": "2.0", "id": 6, "result": {}}  # next: ping
        assert server.statistics().tool_calls_in_flight == 0
        client.send(call_wait(5))  # the id is free again
        assert server.wait_for(lambda: watched.started == 2)
        # A reset (not a half-close, which still waits for its answers) ends the session,
        # and its calls with it.
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        assert server.wait_for(lambda: watched.cancelled == 2)


def test_a_cancelled_call_over_http_ends_its_post_without_an_answer(engine: str) -> None:
    watched = Watched()
    with running(engine, "http", app=watched.app) as server:
        token = http_exchange(server.port, http_request(body=INIT))[1]["mcp-session-id"]
        session = {"mcp-session-id": token}
        http_exchange(server.port, http_request(body=INITIALIZED, headers=session))
        waiting = socket.create_connection(server.address, timeout=5)
        waiting.sendall(http_request(body=call_wait(7), headers=session))
        assert server.wait_for(lambda: watched.started == 1)
        status = http_exchange(server.port, http_request(body=cancel(7), headers=session))[0]
        assert status == 202
        assert server.wait_for(lambda: watched.cancelled == 1)
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            data += waiting.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
        assert b"data:" not in body  # the stream ends with no message in it
        waiting.close()
        assert json.loads(line(ping(1))) == ping(1)


def test_a_call_cancelled_before_its_task_ran_is_cleared_and_not_answered(engine: str) -> None:
    """The call and its cancellation in one read: the task is cancelled before its first
    step. The call must still leave the session's pending set (its id is free, a half-close
    is not kept waiting for an answer) and its coroutine must be closed, not left unawaited."""
    watched = Watched()
    with running(engine, app=watched.app) as server:
        client = LineClient(server.port)
        client.initialize()
        client.send(line(call_wait(5)) + line(cancel(5)) + line(ping(6)))
        assert client.receive() == {"jsonrpc": "2.0", "id": 6, "result": {}}
        assert server.statistics().tool_calls_in_flight == 0  # ping came after: cleared
        assert watched.started == 0
        client.send(call_wait(5))  # the id is free again
        assert server.wait_for(lambda: watched.started == 1)
        client.send(cancel(5))
        assert server.wait_for(lambda: watched.cancelled == 1)
        client.sock.shutdown(socket.SHUT_WR)  # nothing is owed: the server closes
        assert client.receive() is None
