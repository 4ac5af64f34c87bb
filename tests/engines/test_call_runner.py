"""The call runner keeps each session's calls and requests to the client by session: closing
one session cancels its own, leaves the others running, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import copy
import socket
import struct
from typing import Any

import msgspec

from connscale import App, Context
from support import INIT, INITIALIZED, LineClient, running, tool_call


class Answer(msgspec.Struct):
    ok: bool = False


def held_app() -> tuple[App, dict[str, int]]:
    app = App("held", request_timeout=3600.0)
    seen = {"waiting": 0, "asking": 0}

    @app.tool()
    async def wait() -> str:
        seen["waiting"] += 1
        await asyncio.Event().wait()
        return "never"

    @app.tool()
    async def ask(ctx: Context) -> str:
        seen["asking"] += 1
        return (await ctx.elicit("Proceed?", Answer)).action

    return app, seen


def eliciting_client(port: int) -> LineClient:
    client = LineClient(port)
    init: dict[str, Any] = copy.deepcopy(INIT)
    init["params"]["capabilities"] = {"elicitation": {}}
    reply = client.call(init)
    assert reply is not None and "result" in reply
    client.send(INITIALIZED)
    return client


def reset(client: LineClient) -> None:
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sock.close()


def runner_books(server: Any) -> tuple[int, int, int, int]:
    runner = server.engine.runner
    return (
        len(runner._running),
        len(runner._calls_of),
        len(runner._waiting),
        len(runner._requests_of),
    )


def test_closing_a_session_cancels_its_calls_and_requests_only(engine: str) -> None:
    app, seen = held_app()
    with running(engine, app=app) as server:
        first, second = eliciting_client(server.port), eliciting_client(server.port)
        for client in (first, second):
            client.send(tool_call(1, "wait", {}), tool_call(2, "ask", {}))
            request = client.receive()  # the elicitation/create the ask tool sent
            assert request is not None and request["method"] == "elicitation/create"
        assert server.wait_for(lambda: seen == {"waiting": 2, "asking": 2})
        assert server.call(lambda: runner_books(server)) == (4, 2, 2, 2)
        reset(first)
        assert server.wait_for(lambda: runner_books(server) == (2, 1, 1, 1))
        second.send(tool_call(3, "wait", {}))  # the second session is still served
        assert server.wait_for(lambda: runner_books(server) == (3, 1, 1, 1))
        reset(second)
        assert server.wait_for(lambda: runner_books(server) == (0, 0, 0, 0))
