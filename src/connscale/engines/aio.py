"""The asyncio engine: one ``asyncio.Protocol`` with ``__slots__`` per connection; portable.

Same behaviour as the epoll engine (same sans-I/O core, same limits), but each connection
costs a protocol object and the loop's transport (~1-2 KB; less under uvloop, which the
server uses when it is installed). Session state lives in the ``SessionTable`` slot.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Final, cast

from connscale.core.protocol.framing import split_frames, turn_cut
from connscale.core.protocol.http import (
    SSE_END,
    HttpExchange,
    HttpSession,
    McpHttpHandler,
    SseStream,
)
from connscale.core.protocol.jsonrpc import INVALID_REQUEST, encode_error
from connscale.core.protocol.mcp import McpProtocol, ToolCall
from connscale.engines._base import (
    EngineStatistics,
    TimerWheel,
    ToolInvoker,
    run_tool,
    timer_resolution,
)
from connscale.errors import TableFullError

__all__ = ["AsyncioEngine"]

_TCP: Final = 1
_HTTP: Final = 2
_SSE: Final = 3
_FRAME_TOO_LARGE: Final = encode_error(None, INVALID_REQUEST, "frame too large: connection closed")
#: Frames one connection gets handled before the others get a turn (as in the epoll engine).
_FRAMES_PER_TURN: Final = 16


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_backlog",
        "_engine",
        "_exchange",
        "_flow_paused",
        "_kind",
        "_partial",
        "_slot",
        "half_closed",
        "stamp",
        "transport",
    )

    def __init__(self, engine: AsyncioEngine) -> None:
        self._engine = engine
        self.transport: asyncio.Transport | None = None
        self._kind = _HTTP if engine._http is not None else _TCP
        self._slot = -1
        self._partial: bytearray | None = None
        self._exchange: HttpExchange | None = None
        self.stamp = 0  # timer tick: HTTP waiting for a request since / TCP last read
        self.half_closed = False  # the client shut its side: close once its answers are out
        self._backlog: tuple[bytes, int] | None = None  # the rest of a read, beyond one turn
        self._flow_paused = False

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
        engine._live.add(self)
        engine._timers_for().schedule(limits.handshake_timeout, self)
        self.stamp = engine._timers_for().now

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return
        self.transport = None
        engine = self._engine
        engine._connections -= 1
        engine._live.discard(self)
        engine._stalled_since.pop(self, None)
        self._partial = None
        self._backlog = None
        if self._kind == _TCP:
            engine._protocol.close_session(self._slot)
        elif self._kind == _SSE and engine._http is not None:
            engine._streams.pop(self._slot, None)
            engine._http.detach_stream(self._slot)
        elif self._exchange is not None and engine._http is not None:
            engine._http.abandon(self._exchange)
        self._exchange = None
        self._slot = -1

    def eof_received(self) -> bool:
        """The client shut down its sending side: keep writing until its answers are out."""
        if self.calls_pending():
            self.half_closed = True
            return True  # keep the transport open for the answers still owed
        return False  # asyncio closes the transport once its buffer is flushed

    def calls_pending(self) -> bool:
        if self._kind == _TCP:
            return self._engine._protocol.table.pending_count(self._slot) > 0
        return self._kind == _HTTP and self.busy()

    def pause_writing(self) -> None:
        self._flow_paused = True
        if self.transport is not None:
            self.transport.pause_reading()
            self._engine._stalled(self)

    def resume_writing(self) -> None:
        self._flow_paused = False
        self._engine._stalled_since.pop(self, None)
        if self.transport is None or self.transport.is_closing():
            return
        if self._backlog is not None:
            asyncio.get_running_loop().call_soon(self._next_turn)
        else:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        if self._kind == _TCP:
            self.stamp = self._engine._timers_for().now
            self._on_tcp_data(data)
        elif self._kind == _HTTP:
            self._on_http_data(data)

    # -- helpers -----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._kind == _SSE:
            self.stamp = self._engine._timers_for().now  # an event stream is active while it sends
        transport.write(data)
        if transport.get_write_buffer_size() > self._engine._protocol.limits.max_write_buffer:
            transport.abort()  # the client does not read its replies
        elif self.half_closed and not self.calls_pending():
            transport.close()  # flushes, then closes

    def close_after_flush(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def initialized(self) -> bool:
        return self._kind == _TCP and self._engine._protocol.is_initialized(self._slot)

    def answered(self) -> None:
        """An HTTP answer went out: from now the connection waits for its next request."""
        if self._kind == _HTTP:
            self._slot = -2
        self.stamp = self._engine._timers_for().now

    def busy(self) -> bool:
        return self._exchange is not None and self._exchange.busy

    def first_request(self) -> bool:
        return self._slot == -1

    # -- TCP -----------------------------------------------------------------------------------

    def _on_tcp_data(self, data: bytes, offset: int = 0) -> None:
        """Handle the frames in ``data[offset:]``, at most one turn's worth now."""
        if self._backlog is not None:  # only if data came after pause_reading(): keep order
            rest, start = self._backlog
            data, offset, self._backlog = rest[start:] + data, 0, None
        max_frame_bytes = self._engine._protocol.limits.max_frame_bytes
        cut = turn_cut(data, offset, _FRAMES_PER_TURN)
        if cut is not None:  # more frames than one turn: the rest waits
            partial, self._partial = self._partial, None
            frames, _tail, too_large = split_frames(partial, data[offset:cut], max_frame_bytes)
            self._handle_frames(frames, too_large)
            if self.transport is not None and not too_large:
                self._backlog = (data, cut)
                self.transport.pause_reading()
                asyncio.get_running_loop().call_soon(self._next_turn)
            return
        partial, self._partial = self._partial, None
        frames, tail, too_large = split_frames(
            partial, data[offset:] if offset else data, max_frame_bytes
        )
        if tail is not None and not too_large:
            self._partial = tail
        self._handle_frames(frames, too_large)

    def _next_turn(self) -> None:
        backlog = self._backlog
        if backlog is None or self.transport is None or self._flow_paused:
            return  # gone, or paused by flow control: resume_writing() comes back here
        self._backlog = None
        self._on_tcp_data(*backlog)
        if self._backlog is None and self.transport is not None and not self._flow_paused:
            self.transport.resume_reading()

    def _handle_frames(self, frames: list[bytes], too_large: bool) -> None:
        engine = self._engine
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
                self.answered()
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
            self.answered()
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
            self.answered()
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
        keepalive_timeout: float | None = None,
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
        self._live: set[_Connection] = set()  # to close them gracefully on SIGTERM
        self._streams: dict[int, _Connection] = {}  # slot -> open SSE stream
        limits = protocol.limits
        self._keepalive_timeout = (
            keepalive_timeout if keepalive_timeout is not None else limits.handshake_timeout
        )
        self._timers: TimerWheel[_Connection] | None = None
        # A client paused by flow control must read its answers within the handshake timeout,
        # or it is closed: the tick it was paused at, only while paused.
        self._stalled_since: dict[_Connection, int] = {}
        self._stall_timers: TimerWheel[_Connection] | None = None
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

    def quiet(self) -> bool:
        """No tool call running and no output waiting to be sent: every answer is out."""
        if self._tasks:
            return False
        return not any(
            c.transport is not None
            and (c.transport.get_write_buffer_size() or c._backlog is not None)
            for c in self._live
        )

    def buffered_output(self) -> int:
        """Bytes of answers waiting for their clients to read them (flow control bounds it)."""
        return sum(c.transport.get_write_buffer_size() for c in self._live if c.transport)

    def close_gracefully(self) -> None:
        """Close every connection once its buffered output is sent (SIGTERM); ``close()`` after."""
        for connection in list(self._live):
            connection.close_after_flush()

    def close(self) -> None:
        """Stop accepting, cancel tool calls and abort the connections still open."""
        self.stop_accepting()
        for connection in list(self._live):
            if connection.transport is not None:
                connection.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        for timers in (self._timers, self._stall_timers):
            if timers is not None:
                timers.close()

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

    def _timers_for(self) -> TimerWheel[_Connection]:
        timers = self._timers
        if timers is None:
            loop = asyncio.get_running_loop() if self._loop is None else self._loop
            limits = self._protocol.limits
            keepalive = self._keepalive_timeout if self._http is not None else None
            resolution = timer_resolution(limits.handshake_timeout, keepalive, limits.idle_timeout)
            timers = self._timers = TimerWheel(loop, resolution, self._on_timer)
        return timers

    def _stalled(self, connection: _Connection) -> None:
        stall = self._stall_timers
        if stall is None:
            resolution = timer_resolution(self._protocol.limits.handshake_timeout)
            stall = self._stall_timers = TimerWheel(
                self._loop or asyncio.get_running_loop(), resolution, self._on_stall
            )
        stall.schedule(self._protocol.limits.handshake_timeout, connection)
        self._stalled_since[connection] = stall.now

    def _on_stall(self, connection: _Connection) -> None:
        """A paused client's stall timer expired: close it unless it read its answers since."""
        since = self._stalled_since.get(connection)
        stall = self._stall_timers
        if since is None or stall is None or connection.transport is None:
            return
        due = since + stall.ticks(self._protocol.limits.handshake_timeout)
        if due <= stall.now:
            connection.transport.abort()  # it does not read its replies
        else:
            stall.schedule_at(due, connection)

    def _on_timer(self, connection: _Connection) -> None:
        """A connection's timer expired: close it if it overstayed, else re-arm (lazily)."""
        transport = connection.transport
        if transport is None:
            return  # gone already
        timers = self._timers_for()
        limits = self._protocol.limits
        kind = connection._kind
        if kind == _TCP:
            if not connection.initialized():
                transport.abort()  # no initialize in time (silent, or a byte a second)
                return
            allowed = limits.idle_timeout
        elif kind == _HTTP:
            if connection.busy():  # a tool call is running: look again later
                timers.schedule(self._keepalive_timeout, connection)
                return
            # Trickled bytes extend neither the first request's window nor a later one's.
            first = connection.first_request()
            allowed = limits.handshake_timeout if first else self._keepalive_timeout
        else:
            allowed = limits.idle_timeout
        if allowed is None:
            return
        due = connection.stamp + timers.ticks(allowed)
        if due <= timers.now:
            transport.abort()
        else:
            timers.schedule_at(due, connection)
