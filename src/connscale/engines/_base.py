"""What both engines share: the tool-invoker type, statistics, and running one tool call."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping, MutableSequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from connscale.core.protocol.jsonrpc import INTERNAL_ERROR
from connscale.core.protocol.mcp import McpProtocol, ToolCall

__all__ = [
    "EngineStatistics",
    "TimerWheel",
    "ToolInvoker",
    "ToolResult",
    "run_tool",
    "timer_resolution",
]

Item = TypeVar("Item")

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


def timer_resolution(*timeouts: float | None) -> float:
    """Tick length for a ``TimerWheel``: an eighth of the shortest timeout, in 10 ms .. 1 s."""
    shortest = min((t for t in timeouts if t is not None), default=8.0)
    return min(1.0, max(0.01, shortest / 8.0))


class TimerWheel(Generic[Item]):
    """Coarse timers: items wait in one bucket per tick; a sweep once a tick expires them.

    Why not ``loop.call_later`` per connection: a ``TimerHandle`` is ~220 B with its heap entry
    per connection; here a pending timer is one bucket entry (8 B in an ``array('Q')``), and
    activity is stamped in the engine's own arrays without moving anything. An expired item
    goes to ``on_expired``, which closes it or schedules it again (lazy re-arming). Items
    expire no earlier than asked and at most two ticks late. The sweep runs only while
    timers are pending, so a server of long-lived sessions with no timeouts never wakes.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        resolution: float,
        on_expired: Callable[[Item], None],
        new_bucket: Callable[[], MutableSequence[Item]] = list,
    ) -> None:
        self._loop = loop
        self.resolution = resolution
        self._on_expired = on_expired
        self._new_bucket = new_bucket
        self._origin = loop.time()
        self.now = 0  # the current tick; fresh to within one tick while timers are pending
        self._swept = 0  # every bucket up to this tick has been expired
        self._buckets: dict[int, MutableSequence[Item]] = {}
        self._pending = 0
        self._handle: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return self._pending

    def ticks(self, seconds: float) -> int:
        """Whole ticks covering ``seconds`` plus one, so that nothing expires early."""
        return math.ceil(seconds / self.resolution) + 1

    def refresh(self) -> int:
        """Read the loop's clock: the current tick."""
        self.now = int((self._loop.time() - self._origin) / self.resolution)
        return self.now

    def schedule(self, seconds: float, item: Item) -> None:
        """Expire ``item`` once ``seconds`` have passed (not before)."""
        if self._handle is None:
            self.refresh()
            self._swept = max(self._swept, self.now)
        self.schedule_at(self.now + self.ticks(seconds), item)

    def schedule_at(self, tick: int, item: Item) -> None:
        """Expire ``item`` at ``tick`` (a tick already swept means the next sweep)."""
        tick = max(tick, self._swept + 1)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = self._new_bucket()
        bucket.append(item)
        self._pending += 1
        if self._handle is None:
            self._handle = self._loop.call_later(self.resolution, self._sweep)

    def _sweep(self) -> None:
        self._handle = None
        now = self.refresh()
        buckets = self._buckets
        for tick in range(self._swept + 1, now + 1):
            self._swept = tick  # before expiring: re-armed items land in a later bucket
            bucket = buckets.pop(tick, None)
            if bucket is None:
                continue
            self._pending -= len(bucket)
            for item in bucket:
                self._on_expired(item)
        if self._pending and self._handle is None:
            self._handle = self._loop.call_later(self.resolution, self._sweep)

    def close(self) -> None:
        """Drop every pending timer and stop sweeping."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._buckets.clear()
        self._pending = 0
