"""What both engines share: the tool-invoker type, statistics, and running one tool call."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connscale.core.protocol.jsonrpc import INTERNAL_ERROR
from connscale.core.protocol.mcp import McpProtocol, ToolCall

__all__ = ["EngineStatistics", "ToolInvoker", "ToolResult", "run_tool"]

ToolResult = Mapping[str, Any]
#: Runs a tool by name: returns a ``CallToolResult`` dict, or an awaitable of one.
ToolInvoker = Callable[[str, dict[str, Any]], ToolResult | Awaitable[ToolResult]]


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    """Open connections, live sessions and tool calls in flight in one engine."""

    connections: int
    sessions: int
    tool_calls_in_flight: int


def run_tool(
    protocol: McpProtocol,
    invoker: ToolInvoker,
    call: ToolCall,
    *,
    tasks: set[asyncio.Task[Any]],
    alive: Callable[[], bool],
    on_reply: Callable[[bytes], None],
) -> None:
    """Run ``call``: a synchronous tool replies at once, an async one from a task.

    ``alive`` says whether the connection that asked is still open (its fd or slot may
    have been reused meanwhile); if not, the answer is dropped and the session untouched.
    """
    try:
        outcome = invoker(call.name, call.arguments)
    except Exception as exc:  # a tool bug must not take the connection down
        on_reply(protocol.fail_tool_call(call, INTERNAL_ERROR, f"tool failed: {exc}"))
        return
    if not inspect.isawaitable(outcome):
        on_reply(protocol.finish_tool_call(call, outcome))
        return

    async def finish(awaitable: Awaitable[ToolResult]) -> None:
        try:
            result = await awaitable
        except Exception as exc:
            if alive():
                on_reply(protocol.fail_tool_call(call, INTERNAL_ERROR, f"tool failed: {exc}"))
        else:
            if alive():
                on_reply(protocol.finish_tool_call(call, result))

    task = asyncio.ensure_future(finish(outcome))
    tasks.add(task)
    task.add_done_callback(tasks.discard)
