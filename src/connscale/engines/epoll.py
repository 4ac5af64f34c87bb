"""The epoll engine (Linux): idle connections hold no Python object beyond their session slot.

Why it is small: the listening socket and every connection fd live in one ``select.epoll``
set, whose own fd is a single reader in the asyncio loop (so async tools run as tasks).
Connections are accepted with ``socket._accept()``, which returns a bare fd (no socket
object), read and written with ``os.read``/``os.write``, and mapped fd -> session slot in
preallocated arrays sized from ``RLIMIT_NOFILE``. Peer addresses are discarded. Per-fd
Python objects exist only while bytes are in flight: the bytes of one read (freed at
once), the incomplete tail of an input frame, unsent output while the kernel buffer is
full, an ``h11`` connection while an HTTP request is being parsed and answered. A
generation counter per fd tells a late async answer that its connection is gone (the fd
number may already belong to someone else).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import select
import socket
from array import array
from typing import Any, Final

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
from connscale.errors import ServerError, TableFullError

__all__ = ["EpollEngine"]

_log = logging.getLogger(__name__)

# What an fd is, one byte per fd (a bytearray, not objects).
_FREE: Final = 0
_TCP: Final = 1
_HTTP: Final = 2  # an HTTP connection between or inside requests
_SSE: Final = 3  # an open GET event stream, kept by its session slot

# Why reading is stopped, one byte per fd.
_READING: Final = 0
_PAUSED: Final = 1  # output above the high water mark: resumes below the low one
_HALF_CLOSED: Final = 2  # the client shut its side: answer what it asked, then close

_READ_MASK: Final = select.EPOLLIN | select.EPOLLRDHUP
_WRITE_MASK: Final = select.EPOLLOUT
_RECV_SIZE: Final = 64 << 10
_ACCEPTS_PER_WAKEUP: Final = 64  # then the loop looks at other connections again
_EVENTS_PER_WAKEUP: Final = 1024
#: Frames one connection gets handled before the others get a turn: a client pipelining
#: thousands of requests in one read must not hold everyone else's answers for that long.
_FRAMES_PER_TURN: Final = 16
_FRAME_TOO_LARGE: Final = encode_error(None, INVALID_REQUEST, "frame too large: connection closed")
_FD_BITS: Final = 32  # a timer entry packs (generation << 32) | fd into one unsigned 64-bit int
_FD_MASK: Final = (1 << _FD_BITS) - 1


class EpollEngine:
    """Serve MCP on one listening socket with one epoll set; run inside an asyncio loop.

    ``protocol`` handles TCP sessions; ``http`` (when given) makes this an HTTP server for
    MCP Streamable HTTP instead. ``keepalive_timeout`` (HTTP) bounds the wait for the next
    request on a kept-alive connection (default: the handshake timeout). Call ``start()``
    from a running loop, ``close()`` to stop.
    """

    def __init__(
        self,
        listener: socket.socket,
        protocol: McpProtocol,
        invoker: ToolInvoker,
        *,
        http: McpHttpHandler | None = None,
        keepalive_timeout: float | None = None,
    ) -> None:
        if not hasattr(select, "epoll"):
            raise ServerError("the epoll engine needs Linux; use --engine asyncio here")
        self._listener = listener
        self._listen_fd = listener.fileno()
        self._protocol = protocol
        self._invoker = invoker
        self._http = http
        self._limits = protocol.limits
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        size = soft if soft != resource.RLIM_INFINITY else 1 << 20
        self._max_connections = self._limits.connection_limit(size)
        self._kind = bytearray(size)
        self._slot = array("i", [-1]) * size
        self._generation = array("I", [0]) * size
        self._paused = bytearray(size)  # _READING, _PAUSED or _HALF_CLOSED
        self._partial: dict[int, bytearray] = {}  # input tail, only while a frame is incomplete
        self._unsent: dict[int, bytearray] = {}  # output, only while the kernel buffer is full
        self._close_after_flush: set[int] = set()
        # The rest of a read with more frames than one turn (reading stops until it is done).
        self._backlog: dict[int, tuple[bytes, int]] = {}
        self._backlog_turn: asyncio.Handle | None = None
        self._exchanges: dict[int, HttpExchange] = {}  # only while an HTTP request is in flight
        self._keepalive_timeout = (
            keepalive_timeout if keepalive_timeout is not None else self._limits.handshake_timeout
        )
        # Ticks of the timer wheel: when an HTTP connection began waiting for a request, or
        # when a TCP session / SSE stream last moved bytes (idle timeout). 4 bytes per fd, and
        # only when one of those timeouts applies.
        self._stamp: array[int] | None = None
        if http is not None or self._limits.idle_timeout is not None:
            self._stamp = array("I", [0]) * size
        self._timers: TimerWheel[int] | None = None  # made in start(): it needs the loop
        # A client paused by flow control must read its answers (drop below the low water
        # mark) within the handshake timeout, or it is closed: tick it was paused at.
        self._stalled_since: dict[int, int] = {}
        self._stall_timers: TimerWheel[int] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connections = 0
        self._epoll: select.epoll | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        if http is not None:
            http.set_stream_closer(self.close_stream)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Register the listener and attach the epoll fd to the running asyncio loop."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        limits = self._limits
        keepalive = self._keepalive_timeout if self._http is not None else None
        resolution = timer_resolution(limits.handshake_timeout, keepalive, limits.idle_timeout)
        self._timers = TimerWheel(loop, resolution, self._on_timer, lambda: array("Q"))
        self._stall_timers = TimerWheel(
            loop, timer_resolution(limits.handshake_timeout), self._on_stall, lambda: array("Q")
        )
        self._listener.setblocking(False)
        self._epoll = select.epoll()
        self._epoll.register(self._listen_fd, select.EPOLLIN)
        loop.add_reader(self._epoll.fileno(), self._on_ready)

    def stop_accepting(self) -> None:
        """Stop taking new connections (existing ones go on)."""
        if self._epoll is not None:
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(self._listen_fd)

    def quiet(self) -> bool:
        """No tool call running and no output waiting to be sent: every answer is out."""
        return not self._tasks and not self._unsent and not self._backlog

    def buffered_output(self) -> int:
        """Bytes of answers waiting for their clients to read them (flow control bounds it)."""
        return sum(len(unsent) for unsent in self._unsent.values())

    def close_gracefully(self) -> None:
        """Close every connection once its buffered output is sent (SIGTERM); ``close()`` after."""
        for fd in [fd for fd in range(len(self._kind)) if self._kind[fd] != _FREE]:
            self._close_after_flush.add(fd)
            self._send(fd, b"")  # closes at once when nothing is buffered

    def close(self) -> None:
        """Close every connection and detach from the loop (the listener stays the caller's)."""
        if self._epoll is None:
            return
        for fd in [fd for fd in range(len(self._kind)) if self._kind[fd] != _FREE]:
            self._close(fd)
        for task in list(self._tasks):
            task.cancel()
        for timers in (self._timers, self._stall_timers):
            if timers is not None:
                timers.close()
        if self._backlog_turn is not None:
            self._backlog_turn.cancel()
        if self._loop is not None:
            self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()
        self._epoll = None

    def statistics(self) -> EngineStatistics:
        return EngineStatistics(
            connections=self._connections,
            sessions=len(self._protocol.table),
            tool_calls_in_flight=len(self._tasks),
        )

    # -- the event loop ----------------------------------------------------------------------

    def _on_ready(self) -> None:
        epoll = self._epoll
        if epoll is None:
            return
        for fd, events in epoll.poll(0, _EVENTS_PER_WAKEUP):
            if fd == self._listen_fd:
                self._accept()
                continue
            if self._kind[fd] == _FREE:
                continue
            try:
                if events & select.EPOLLOUT:
                    self._flush(fd)
                    if self._kind[fd] == _FREE:
                        continue
                if events & (
                    select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
                ):
                    self._read(fd)
            except Exception:
                # A bug met by one connection must not stop the others: log it, drop that one.
                _log.exception("closing a connection after an unexpected error")
                self._close(fd)

    def _accept(self) -> None:
        accept = self._listener._accept  # type: ignore[attr-defined]
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                fd, _address = accept()  # a bare fd: no socket object per connection
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    return  # out of fds: leave the rest in the backlog for now
                if exc.errno == errno.ECONNABORTED:
                    continue
                raise
            if self._connections >= self._max_connections or fd >= len(self._kind):
                os.close(fd)  # over the per-worker limit: refuse cleanly
                continue
            os.set_blocking(fd, False)
            if self._http is None:
                try:
                    slot = self._protocol.open_session()
                except TableFullError:
                    os.close(fd)
                    continue
                self._kind[fd] = _TCP
                self._slot[fd] = slot
            else:
                self._kind[fd] = _HTTP
                self._slot[fd] = -1
            assert self._epoll is not None
            self._epoll.register(fd, _READ_MASK)
            self._connections += 1
            timers = self._timers
            assert timers is not None
            timers.schedule(self._limits.handshake_timeout, self._generation[fd] << _FD_BITS | fd)
            if self._stamp is not None:
                self._stamp[fd] = timers.now

    def _read(self, fd: int) -> None:
        if fd in self._backlog:
            return  # frames of an earlier read still wait their turn: keep the order
        try:
            data = os.read(fd, _RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(fd)
            return
        if not data:
            self._on_eof(fd)
            return
        kind = self._kind[fd]
        if kind == _TCP:
            if self._stamp is not None:
                self._stamp[fd] = self._timers.now  # type: ignore[union-attr]
            self._on_tcp_data(fd, data)
        elif kind == _HTTP:
            self._on_http_data(fd, data)
        # _SSE: the client sends nothing on an event stream; ignore stray bytes.

    # -- TCP: newline-delimited JSON-RPC -----------------------------------------------------

    def _on_tcp_data(self, fd: int, data: bytes, offset: int = 0) -> None:
        """Handle the frames in ``data[offset:]``, at most one turn's worth now."""
        cut = turn_cut(data, offset, _FRAMES_PER_TURN)
        if cut is not None:  # more frames than one turn: the rest waits
            pending = self._partial.pop(fd, None)
            frames, _tail, too_large = split_frames(
                pending, data[offset:cut], self._limits.max_frame_bytes
            )
            self._handle_frames(fd, frames, too_large)
            if self._kind[fd] != _FREE and not too_large:
                self._backlog[fd] = (data, cut)
                self._update_mask(fd)  # stop reading until the backlog is handled
                self._schedule_backlog()
            return
        frames, tail, too_large = split_frames(
            self._partial.pop(fd, None),
            data[offset:] if offset else data,
            self._limits.max_frame_bytes,
        )
        if tail is not None and not too_large:
            self._partial[fd] = tail
        self._handle_frames(fd, frames, too_large)

    def _handle_frames(self, fd: int, frames: list[bytes], too_large: bool) -> None:
        slot = self._slot[fd]
        handle = self._protocol.handle_frame
        replies: list[bytes] = []
        for frame in frames:
            outcome = handle(slot, frame)
            if outcome is None:
                continue
            if isinstance(outcome, ToolCall):
                if replies:
                    self._send(fd, b"".join(replies))
                    replies.clear()
                self._start_tool(fd, outcome)
                if self._kind[fd] == _FREE:
                    return
                continue
            replies.append(outcome)
            replies.append(b"\n")
        if too_large:
            replies.append(_FRAME_TOO_LARGE + b"\n")
            self._close_after_flush.add(fd)
        if replies:
            self._send(fd, b"".join(replies))
        elif too_large:
            self._send(fd, b"")

    def _schedule_backlog(self) -> None:
        if self._backlog_turn is None and self._loop is not None:
            # call_soon: the loop polls for other connections' events before the next turn.
            self._backlog_turn = self._loop.call_soon(self._serve_backlog)

    def _serve_backlog(self) -> None:
        """One more turn for every connection with frames waiting (and not paused)."""
        self._backlog_turn = None
        for fd, (data, offset) in list(self._backlog.items()):
            if self._paused[fd] != _READING:
                continue  # flow control or half-close: resumed from _flush
            del self._backlog[fd]
            self._on_tcp_data(fd, data, offset)
            if fd not in self._backlog and self._kind[fd] != _FREE:
                self._update_mask(fd)  # done: read again
        if any(self._paused[fd] == _READING for fd in self._backlog):
            self._schedule_backlog()

    def _update_mask(self, fd: int) -> None:
        """Ask epoll for what this connection needs now: reading unless stopped, writing
        while output waits."""
        mask = _WRITE_MASK if fd in self._unsent else 0
        if self._paused[fd] == _READING and fd not in self._backlog:
            mask |= _READ_MASK
        assert self._epoll is not None
        self._epoll.modify(fd, mask)

    def _on_eof(self, fd: int) -> None:
        """The client shut down its sending side: answer what it asked, then close."""
        if fd not in self._unsent and not self._calls_pending(fd):
            self._close(fd)
            return
        self._paused[fd] = _HALF_CLOSED
        self._close_after_flush.add(fd)
        self._update_mask(fd)

    def _calls_pending(self, fd: int) -> bool:
        """Whether a tool call of this connection is still running (its answer is owed)."""
        kind = self._kind[fd]
        if kind == _TCP:
            return self._protocol.table.pending_count(self._slot[fd]) > 0
        exchange = self._exchanges.get(fd)
        return kind == _HTTP and exchange is not None and exchange.busy

    def _start_tool(self, fd: int, call: ToolCall) -> None:
        generation = self._generation[fd]

        def alive() -> bool:
            return self._generation[fd] == generation and self._kind[fd] != _FREE

        def reply(data: bytes) -> None:
            self._send(fd, data + b"\n")

        run_tool(
            self._protocol, self._invoker, call, tasks=self._tasks, alive=alive, on_reply=reply
        )

    # -- HTTP: MCP Streamable HTTP -----------------------------------------------------------

    def _on_http_data(self, fd: int, data: bytes) -> None:
        handler = self._http
        assert handler is not None
        exchange = self._exchanges.get(fd)
        if exchange is None:
            exchange = handler.new_exchange()
            self._exchanges[fd] = exchange
        exchange.receive(data)
        self._serve_http(fd, exchange)

    def _serve_http(self, fd: int, exchange: HttpExchange) -> None:
        """Answer every complete request buffered in ``exchange``, one at a time (h11 rules)."""
        handler = self._http
        assert handler is not None
        while True:
            outcome = handler.next_outcome(exchange)
            if outcome is None:  # needs more bytes
                break
            if isinstance(outcome, bytes):
                self._send(fd, outcome)
                self._answered(fd)
                if exchange.must_close:
                    self._close_after_flush.add(fd)
                    self._send(fd, b"")
                    return
                if not exchange.start_next():
                    break
                continue
            if isinstance(outcome, HttpSession):  # a tool call to run before answering
                self._start_http_tool(fd, exchange, outcome)
                return
            assert isinstance(outcome, SseStream)
            self._send(fd, outcome.head)
            self._exchanges.pop(fd, None)
            self._kind[fd] = _SSE
            self._slot[fd] = outcome.slot
            self._answered(fd)
            handler.attach_stream(outcome.slot, fd)
            return
        if exchange.idle:
            self._exchanges.pop(fd, None)  # nothing in flight: drop the h11 object

    def _start_http_tool(self, fd: int, exchange: HttpExchange, pending: HttpSession) -> None:
        handler = self._http
        assert handler is not None and pending.call is not None
        generation = self._generation[fd]

        def alive() -> bool:
            if self._generation[fd] == generation and self._kind[fd] != _FREE:
                return True
            handler.release(pending)
            return False

        def reply(data: bytes) -> None:
            self._send(fd, handler.finish(exchange, pending, data))
            self._answered(fd)
            if exchange.must_close:
                self._close_after_flush.add(fd)
                self._send(fd, b"")
            elif exchange.start_next():
                self._serve_http(fd, exchange)
            elif exchange.idle:
                self._exchanges.pop(fd, None)

        run_tool(
            self._protocol,
            self._invoker,
            pending.call,
            tasks=self._tasks,
            alive=alive,
            on_reply=reply,
        )

    def close_stream(self, fd: int) -> None:
        """End an SSE stream from the server side (its session was deleted)."""
        if self._kind[fd] == _SSE:
            self._close_after_flush.add(fd)
            self._send(fd, SSE_END)

    # -- writing with flow control -----------------------------------------------------------

    def _send(self, fd: int, data: bytes) -> None:
        kind = self._kind[fd]
        if kind == _FREE:
            return
        if kind == _SSE and self._stamp is not None and self._timers is not None:
            self._stamp[fd] = self._timers.now  # an event stream is active while it sends
        unsent = self._unsent.get(fd)
        if unsent is not None:
            unsent += data
            self._after_buffering(fd, unsent)
            return
        if data:
            try:
                written = os.write(fd, data)
            except (BlockingIOError, InterruptedError):
                written = 0
            except OSError:
                self._close(fd)
                return
        else:
            written = 0
        if written < len(data):
            unsent = bytearray(data[written:])
            self._unsent[fd] = unsent
            self._update_mask(fd)
            self._after_buffering(fd, unsent)
        elif fd in self._close_after_flush and not self._calls_pending(fd):
            self._close(fd)

    def _after_buffering(self, fd: int, unsent: bytearray) -> None:
        limits = self._limits
        if len(unsent) > limits.max_write_buffer:
            self._close(fd)  # the client does not read its replies
        elif len(unsent) > limits.write_high_water and self._paused[fd] == _READING:
            self._paused[fd] = _PAUSED
            self._update_mask(fd)
            stall = self._stall_timers
            assert stall is not None
            stall.schedule(self._limits.handshake_timeout, self._generation[fd] << _FD_BITS | fd)
            self._stalled_since[fd] = stall.now

    def _flush(self, fd: int) -> None:
        unsent = self._unsent.get(fd)
        if unsent is None:
            return
        try:
            written = os.write(fd, unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(fd)
            return
        del unsent[:written]
        assert self._epoll is not None
        if not unsent:
            del self._unsent[fd]
            if fd in self._close_after_flush and not self._calls_pending(fd):
                self._close(fd)
                return
            if self._paused[fd] == _PAUSED:
                self._paused[fd] = _READING
                self._stalled_since.pop(fd, None)
            self._update_mask(fd)  # half-closed: nothing to read; wait for answers owed
        elif self._paused[fd] == _PAUSED and len(unsent) < self._limits.write_low_water:
            self._paused[fd] = _READING
            self._stalled_since.pop(fd, None)
            self._update_mask(fd)
        else:
            return
        if fd in self._backlog:
            self._schedule_backlog()  # resumed: its waiting frames get their turns again

    # -- timeouts and closing ----------------------------------------------------------------

    def _answered(self, fd: int) -> None:
        """An HTTP answer went out: from now the connection waits for its next request."""
        self._slot[fd] = -2 if self._kind[fd] == _HTTP else self._slot[fd]
        if self._stamp is not None and self._timers is not None:
            self._stamp[fd] = self._timers.now

    def _on_timer(self, entry: int) -> None:
        """A connection's timer expired: close it if it overstayed, else re-arm (lazily)."""
        fd = entry & _FD_MASK
        if self._generation[fd] != entry >> _FD_BITS or self._kind[fd] == _FREE:
            return  # that connection is gone already
        timers = self._timers
        assert timers is not None
        limits = self._limits
        kind = self._kind[fd]
        if kind == _TCP:
            if not self._protocol.is_initialized(self._slot[fd]):
                self._close(fd)  # no initialize in time (silent, or a byte a second)
                return
            allowed = limits.idle_timeout
        elif kind == _HTTP:
            exchange = self._exchanges.get(fd)
            if exchange is not None and exchange.busy:  # a tool call is running: look later
                timers.schedule(self._keepalive_timeout, entry)
                return
            # A new connection has the handshake timeout to send a whole request; a kept-alive
            # one the keep-alive timeout to send its next. Trickled bytes do not extend either.
            allowed = limits.handshake_timeout if self._slot[fd] == -1 else self._keepalive_timeout
        else:  # _SSE: the client sends nothing; only the idle timeout applies
            allowed = limits.idle_timeout
        if allowed is None or self._stamp is None:
            return  # nothing more to watch: the entry is dropped
        due = self._stamp[fd] + timers.ticks(allowed)
        if due <= timers.now:
            self._close(fd)
        else:
            timers.schedule_at(due, entry)

    def _on_stall(self, entry: int) -> None:
        """A paused client's stall timer expired: close it unless it read its answers since."""
        fd = entry & _FD_MASK
        since = self._stalled_since.get(fd)
        if since is None or self._generation[fd] != entry >> _FD_BITS:
            return
        stall = self._stall_timers
        assert stall is not None
        due = since + stall.ticks(self._limits.handshake_timeout)
        if due <= stall.now:
            self._close(fd)  # it does not read its replies
        else:
            stall.schedule_at(due, entry)

    def _close(self, fd: int) -> None:
        kind = self._kind[fd]
        if kind == _FREE:
            return
        if self._epoll is not None:
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(fd)
        os.close(fd)
        self._connections -= 1
        self._kind[fd] = _FREE
        self._paused[fd] = _READING
        self._stalled_since.pop(fd, None)
        self._generation[fd] = (self._generation[fd] + 1) & 0xFFFFFFFF
        slot = self._slot[fd]
        self._slot[fd] = -1
        self._partial.pop(fd, None)
        self._backlog.pop(fd, None)
        self._unsent.pop(fd, None)
        self._close_after_flush.discard(fd)
        exchange = self._exchanges.pop(fd, None)
        if kind == _TCP:
            self._protocol.close_session(slot)
        elif kind == _SSE and self._http is not None:
            self._http.detach_stream(slot)
        elif exchange is not None and self._http is not None:
            self._http.abandon(exchange)
