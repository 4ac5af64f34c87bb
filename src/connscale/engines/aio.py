"""The asyncio engine: one ``asyncio.Protocol`` with ``__slots__`` per connection; portable.

Same behaviour as the epoll engine, because the same ``ConnectionCore`` makes every
decision; this engine only relays between asyncio transports (uvloop's when installed) and
the core. Each connection costs a protocol object and the loop's transport (~1-2 KB; less
under uvloop). Connection ids are small integers from a free list, so the core's columns
stay as short as the connection limit.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import cast

from connscale.core.connection import ConnectionCore
from connscale.core.protocol.http import McpHttp
from connscale.core.protocol.mcp import McpProtocol
from connscale.engines._base import EngineStatistics, Waker, open_files_limit
from connscale.engines._runner import CallRunner

__all__ = ["AsyncioEngine"]


class _Connection(asyncio.Protocol):
    __slots__ = ("_engine", "connection", "reading", "transport")

    def __init__(self, engine: AsyncioEngine) -> None:
        self._engine = engine
        self.connection = -1
        self.transport: asyncio.Transport | None = None
        self.reading = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        engine = self._engine
        if not engine._free:
            transport.abort()  # over the per-worker limit: refuse cleanly
            return
        connection = engine._free.pop()
        if not engine.core.open(connection):
            engine._free.append(connection)
            transport.abort()
            return
        self.connection = connection
        self.transport = transport
        limits = engine.core.limits
        # The core decides when to pause (from what write() returns); asyncio's own marks
        # only tell it, through resume_writing, when the buffer fell below the low one.
        transport.set_write_buffer_limits(high=limits.write_high_water, low=limits.write_low_water)
        engine._live[connection] = self

    def connection_lost(self, exc: Exception | None) -> None:
        connection = self.connection
        if self.transport is None:
            return
        self.transport = None
        engine = self._engine
        engine._live[connection] = None
        engine.core.closed(connection)
        engine._free.append(connection)

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self._engine.core.receive(self.connection, data)

    def eof_received(self) -> bool:
        if self.transport is not None:
            self._engine.core.eof(self.connection)
        return True  # keep the transport: the core closes it once its answers are out

    def pause_writing(self) -> None:
        pass  # the core pauses reading itself, from the size write() reports

    def resume_writing(self) -> None:
        if self.transport is not None:
            self._engine.core.drained(self.connection)


class AsyncioEngine:
    """Serve a listening socket with asyncio (or uvloop) protocols."""

    def __init__(
        self,
        listener: socket.socket,
        protocol: McpProtocol,
        runner: CallRunner,
        *,
        http: McpHttp | None = None,
        max_connections: int | None = None,
        keepalive_timeout: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._listener = listener
        self._clock = clock
        self.runner = runner
        limit = max_connections or protocol.limits.connection_limit(open_files_limit())
        self.core = ConnectionCore(
            protocol,
            runner,
            limit,
            clock=clock or time.monotonic,
            http=http,
            max_connections=limit,
            keepalive_timeout=keepalive_timeout,
        )
        self._free = list(range(limit - 1, -1, -1))  # lowest ids first
        self._live: list[_Connection | None] = [None] * limit
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waker: Waker | None = None

    async def start(self) -> None:
        """Start accepting on the running loop."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._waker = Waker(loop, self.core, self._clock)
        self.core.attach(self)
        self._listener.setblocking(False)
        self._server = await loop.create_server(
            lambda: _Connection(self), sock=self._listener, backlog=4096
        )

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    def quiet(self) -> bool:
        """No call running, nothing waiting for a turn, no output waiting to be sent."""
        if self.runner.in_flight or not self.core.idle():
            return False
        return not any(
            c is not None and c.transport is not None and c.transport.get_write_buffer_size()
            for c in self._live
        )

    def buffered_output(self) -> int:
        """Bytes of answers waiting for their clients to read them (flow control bounds it)."""
        return sum(
            c.transport.get_write_buffer_size()
            for c in self._live
            if c is not None and c.transport is not None
        )

    def close_gracefully(self) -> None:
        """Close each connection once the answers it is owed are sent (SIGTERM)."""
        self.core.close_gracefully()

    def close(self) -> None:
        """Stop accepting, cancel calls and abort the connections still open."""
        self.stop_accepting()
        self.core.close_all()
        self.runner.close()
        if self._waker is not None:
            self._waker.cancel()

    def statistics(self) -> EngineStatistics:
        return EngineStatistics.of(self.core, self.runner.in_flight)

    def run_timers(self) -> None:
        """Expire the core's timers against the clock now (tests drive a fake clock)."""
        if self._waker is not None:
            self._waker.fire()

    # -- the Wire the core drives --------------------------------------------------------------

    def write(self, connection: int, data: bytes) -> int:
        live = self._live[connection]
        transport = None if live is None else live.transport
        if transport is None or transport.is_closing():
            return 0
        transport.write(data)
        return transport.get_write_buffer_size()

    def set_reading(self, connection: int, reading: bool) -> None:
        live = self._live[connection]
        if live is None or live.transport is None or live.reading == reading:
            return
        live.reading = reading
        if reading:
            live.transport.resume_reading()
        else:
            live.transport.pause_reading()

    def disconnect(self, connection: int, flush: bool) -> None:
        live = self._live[connection]
        if live is None or live.transport is None:
            return
        transport = live.transport
        if flush:
            transport.close()  # asyncio flushes the buffer, then closes
        else:
            transport.abort()
        # The core is told now rather than when connection_lost runs, as the epoll engine
        # does: a closing connection is done with, whatever is left to flush.
        live.transport = None
        self._live[connection] = None
        self.core.closed(connection)
        self._free.append(connection)

    def call_soon(self) -> None:
        assert self._loop is not None
        self._loop.call_soon(self.core.run_backlog)

    def wake_at(self, when: float) -> None:
        assert self._waker is not None
        self._waker.wake_at(when)
