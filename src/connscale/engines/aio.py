"""The asyncio engine: one ``asyncio.Protocol`` with ``__slots__`` per connection; portable.

Same behaviour as the epoll engine (same sans-I/O core, same limits), but each connection
costs a protocol object and the loop's transport (~1-2 KB; less under uvloop, which the
server uses when it is installed). Session state lives in the ``SessionTable`` slot.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Any, Final, cast

from connscale.core.protocol.framing import split_frames
from connscale.core.protocol.http import (
    SSE_END,
    HttpExchange,
    HttpSession,
    McpHttpHandler,
    SseStream,
)
from connscale.core.protocol.jsonrpc import INVALID_REQUEST, encode_error
from connscale.core.protocol.mcp import McpProtocol, ToolCall
from connscale.engines._base import EngineStatistics, ToolInvoker, run_tool
from connscale.errors import TableFullError

__all__ = ["AsyncioEngine"]

_TCP: Final = 1
_HTTP: Final = 2
_SSE: Final = 3
_FRAME_TOO_LARGE: Final = encode_error(None, INVALID_REQUEST, "frame too large: connection closed")


class _Connection(asyncio.Protocol):
    __slots__ = ("_engine", "_exchange", "_kind", "_partial", "_slot", "transport")

    def __init__(self, engine: AsyncioEngine) -> None:
        self._engine = engine
        self.transport: asyncio.Transport | None = None
        self._kind = _HTTP if engine._http is not None else _TCP
        self._slot = -1
        self._partial: bytearray | None = None
        self._exchange: HttpExchange | None = None

    # -- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        engine = self._engine
        limits = engine._protocol.limits
        if engine._connections >= engine._max_connections:
            transport.abort()  # over the per-worker limit: refuse cleanly
            return
        if self._kind == _TCP:
            try:
                self._slot = engine._protocol.open_session()
            except TableFullError:
                transport.abort()
                return
        self.transport = transport
        transport.set_write_buffer_limits(high=limits.write_high_water, low=limits.write_low_water)
        engine._connections += 1
        engine._arm_deadline(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return
        self.transport = None
        engine = self._engine
        engine._connections -= 1
        self._partial = None
        if self._kind == _TCP:
            engine._protocol.close_session(self._slot)
        elif self._kind == _SSE and engine._http is not None:
            engine._streams.pop(self._slot, None)
            engine._http.detach_stream(self._slot)
        elif self._exchange is not None and engine._http is not None:
            engine._http.abandon(self._exchange)
        self._exchange = None
        self._slot = -1

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        if self._kind == _TCP:
            self._on_tcp_data(data)
        elif self._kind == _HTTP:
            self._on_http_data(data)

    # -- helpers -----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self._engine._protocol.limits.max_write_buffer:
            transport.abort()  # the client does not read its replies

    def close_after_flush(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def initialized(self) -> bool:
        return self._kind == _TCP and self._engine._protocol.is_initialized(self._slot)

    def waiting_for_request(self) -> bool:
        return (
            self._kind == _HTTP
            and self._slot == -1
            and not (self._exchange is not None and self._exchange.busy)
        )

    # -- TCP -----------------------------------------------------------------------------------

    def _on_tcp_data(self, data: bytes) -> None:
        engine = self._engine
        partial, self._partial = self._partial, None
        frames, tail, too_large = split_frames(
            partial, data, engine._protocol.limits.max_frame_bytes
        )
        handle = engine._protocol.handle_frame
        replies: list[bytes] = []
        for frame in frames:
            outcome = handle(self._slot, frame)
            if outcome is None:
                continue
            if isinstance(outcome, ToolCall):
                if replies:
                    self.send(b"".join(replies))
                    replies.clear()
                self._start_tool(outcome)
                if self.transport is None:
                    return
                continue
            replies.append(outcome)
            replies.append(b"\n")
        if too_large:
            replies.append(_FRAME_TOO_LARGE + b"\n")
        elif tail is not None:
            self._partial = tail
        if replies:
            self.send(b"".join(replies))
        if too_large:
            self.close_after_flush()

    def _start_tool(self, call: ToolCall) -> None:
        transport = self.transport

        def alive() -> bool:
            return self.transport is transport and transport is not None

        def reply(data: bytes) -> None:
            self.send(data + b"\n")

        engine = self._engine
        run_tool(
            engine._protocol,
            engine._invoker,
            call,
            tasks=engine._tasks,
            alive=alive,
            on_reply=reply,
        )

    # -- HTTP ----------------------------------------------------------------------------------

    def _on_http_data(self, data: bytes) -> None:
        http = self._engine._http
        assert http is not None
        if self._exchange is None:
            self._exchange = http.new_exchange()
        self._exchange.receive(data)
        self._serve_http(self._exchange)

    def _serve_http(self, exchange: HttpExchange) -> None:
        engine = self._engine
        http = engine._http
        assert http is not None
        while True:
            outcome = http.next_outcome(exchange)
            if outcome is None:
                break
            if isinstance(outcome, bytes):
                self.send(outcome)
                self._slot = -2  # served a request: no longer subject to the handshake timeout
                if exchange.must_close:
                    self.close_after_flush()
                    return
                if not exchange.start_next():
                    break
                continue
            if isinstance(outcome, HttpSession):
                self._start_http_tool(exchange, outcome)
                return
            assert isinstance(outcome, SseStream)
            self.send(outcome.head)
            self._exchange = None
            self._kind = _SSE
            self._slot = outcome.slot
            engine._streams[outcome.slot] = self
            http.attach_stream(outcome.slot, outcome.slot)
            return
        if exchange.idle:
            self._exchange = None

    def _start_http_tool(self, exchange: HttpExchange, pending: HttpSession) -> None:
        http = self._engine._http
        assert http is not None
        transport = self.transport

        def alive() -> bool:
            if self.transport is transport and transport is not None:
                return True
            http.release(pending)
            return False

        def reply(data: bytes) -> None:
            self.send(http.finish(exchange, pending, data))
            self._slot = -2
            if exchange.must_close:
                self.close_after_flush()
            elif exchange.start_next():
                self._serve_http(exchange)
            elif exchange.idle:
                self._exchange = None

        engine = self._engine
        run_tool(
            engine._protocol,
            engine._invoker,
            pending.call,
            tasks=engine._tasks,
            alive=alive,
            on_reply=reply,
        )

    def end_stream(self) -> None:
        if self._kind == _SSE:
            self.send(SSE_END)
            self.close_after_flush()


class AsyncioEngine:
    """Serve MCP on a listening socket with asyncio (or uvloop) protocols."""

    def __init__(
        self,
        listener: socket.socket,
        protocol: McpProtocol,
        invoker: ToolInvoker,
        *,
        http: McpHttpHandler | None = None,
        max_connections: int | None = None,
    ) -> None:
        import resource

        self._listener = listener
        self._protocol = protocol
        self._invoker = invoker
        self._http = http
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        size = soft if soft != resource.RLIM_INFINITY else 1 << 20
        self._max_connections = max_connections or protocol.limits.connection_limit(size)
        self._connections = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._streams: dict[int, _Connection] = {}  # slot -> open SSE stream
        self._deadlines: deque[tuple[float, _Connection]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        if http is not None:
            http.set_stream_closer(self._end_stream)

    async def start(self) -> None:
        """Start accepting on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._listener.setblocking(False)
        self._server = await self._loop.create_server(
            lambda: _Connection(self), sock=self._listener, backlog=4096
        )

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    def close(self) -> None:
        self.stop_accepting()
        for task in list(self._tasks):
            task.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def statistics(self) -> EngineStatistics:
        return EngineStatistics(
            connections=self._connections,
            sessions=len(self._protocol.table),
            tool_calls_in_flight=len(self._tasks),
        )

    def _end_stream(self, key: int) -> None:
        connection = self._streams.get(key)
        if connection is not None:
            connection.end_stream()

    def _arm_deadline(self, connection: _Connection) -> None:
        assert self._loop is not None
        timeout = self._protocol.limits.handshake_timeout
        self._deadlines.append((self._loop.time() + timeout, connection))
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(timeout, self._sweep)

    def _sweep(self) -> None:
        """Close connections that did not finish their handshake in time (oldest first)."""
        assert self._loop is not None
        self._sweeper = None
        now = self._loop.time()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _deadline, connection = deadlines.popleft()
            if connection.transport is None:
                continue
            if (
                connection._kind == _TCP and not connection.initialized()
            ) or connection.waiting_for_request():
                connection.transport.abort()
        if deadlines:
            self._sweeper = self._loop.call_later(max(0.0, deadlines[0][0] - now), self._sweep)
