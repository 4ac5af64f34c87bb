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
from collections import deque
from typing import Any, Final

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
from connscale.errors import ServerError, TableFullError

__all__ = ["EpollEngine"]

_log = logging.getLogger(__name__)

# What an fd is, one byte per fd (a bytearray, not objects).
_FREE: Final = 0
_TCP: Final = 1
_HTTP: Final = 2  # an HTTP connection between or inside requests
_SSE: Final = 3  # an open GET event stream, kept by its session slot

_READ_MASK: Final = select.EPOLLIN | select.EPOLLRDHUP
_WRITE_MASK: Final = select.EPOLLOUT
_RECV_SIZE: Final = 64 << 10
_ACCEPTS_PER_WAKEUP: Final = 256
_EVENTS_PER_WAKEUP: Final = 1024
_FRAME_TOO_LARGE: Final = encode_error(None, INVALID_REQUEST, "frame too large: connection closed")


class EpollEngine:
    """Serve MCP on one listening socket with one epoll set; run inside an asyncio loop.

    ``protocol`` handles TCP sessions; ``http`` (when given) makes this an HTTP server for
    MCP Streamable HTTP instead. Call ``start()`` from a running loop, ``close()`` to stop.
    """

    def __init__(
        self,
        listener: socket.socket,
        protocol: McpProtocol,
        invoker: ToolInvoker,
        *,
        http: McpHttpHandler | None = None,
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
        self._paused = bytearray(size)  # 1 while reading is paused by the high water mark
        self._partial: dict[int, bytearray] = {}  # input tail, only while a frame is incomplete
        self._unsent: dict[int, bytearray] = {}  # output, only while the kernel buffer is full
        self._close_after_flush: set[int] = set()
        self._exchanges: dict[int, HttpExchange] = {}  # only while an HTTP request is in flight
        self._deadlines: deque[tuple[float, int, int]] = deque()  # handshake timeouts, FIFO
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connections = 0
        self._epoll: select.epoll | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        if http is not None:
            http.set_stream_closer(self.close_stream)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Register the listener and attach the epoll fd to the running asyncio loop."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._listener.setblocking(False)
        self._epoll = select.epoll()
        self._epoll.register(self._listen_fd, select.EPOLLIN)
        loop.add_reader(self._epoll.fileno(), self._on_ready)

    def stop_accepting(self) -> None:
        """Stop taking new connections (existing ones go on)."""
        if self._epoll is not None:
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(self._listen_fd)

    def close(self) -> None:
        """Close every connection and detach from the loop (the listener stays the caller's)."""
        if self._epoll is None:
            return
        for fd in [fd for fd in range(len(self._kind)) if self._kind[fd] != _FREE]:
            self._close(fd)
        for task in list(self._tasks):
            task.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
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
            self._arm_deadline(fd)

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, _RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(fd)
            return
        if not data:
            self._close(fd)
            return
        kind = self._kind[fd]
        if kind == _TCP:
            self._on_tcp_data(fd, data)
        elif kind == _HTTP:
            self._on_http_data(fd, data)
        # _SSE: the client sends nothing on an event stream; ignore stray bytes.

    # -- TCP: newline-delimited JSON-RPC -----------------------------------------------------

    def _on_tcp_data(self, fd: int, data: bytes) -> None:
        frames, tail, too_large = split_frames(
            self._partial.pop(fd, None), data, self._limits.max_frame_bytes
        )
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
        elif tail is not None:
            self._partial[fd] = tail
        if replies:
            self._send(fd, b"".join(replies))
        elif too_large:
            self._send(fd, b"")

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
                self._slot[fd] = -2  # served a request: the handshake timeout no longer applies
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
            self._slot[fd] = -2
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
        if self._kind[fd] == _FREE:
            return
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
            assert self._epoll is not None
            self._epoll.modify(fd, _READ_MASK | _WRITE_MASK)
            self._after_buffering(fd, unsent)
        elif fd in self._close_after_flush:
            self._close(fd)

    def _after_buffering(self, fd: int, unsent: bytearray) -> None:
        limits = self._limits
        if len(unsent) > limits.max_write_buffer:
            self._close(fd)  # the client does not read its replies
        elif len(unsent) > limits.write_high_water and not self._paused[fd]:
            self._paused[fd] = 1
            assert self._epoll is not None
            self._epoll.modify(fd, _WRITE_MASK)

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
            if fd in self._close_after_flush:
                self._close(fd)
                return
            self._paused[fd] = 0
            self._epoll.modify(fd, _READ_MASK)
        elif self._paused[fd] and len(unsent) < self._limits.write_low_water:
            self._paused[fd] = 0
            self._epoll.modify(fd, _READ_MASK | _WRITE_MASK)

    # -- timeouts and closing ----------------------------------------------------------------

    def _arm_deadline(self, fd: int) -> None:
        assert self._loop is not None
        timeout = self._limits.handshake_timeout
        self._deadlines.append((self._loop.time() + timeout, fd, self._generation[fd]))
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(timeout, self._sweep)

    def _sweep(self) -> None:
        """Close connections that did not finish their handshake in time (oldest first)."""
        assert self._loop is not None
        self._sweeper = None
        now = self._loop.time()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _deadline, fd, generation = deadlines.popleft()
            if self._generation[fd] != generation:
                continue  # that connection is gone already
            kind = self._kind[fd]
            if kind == _TCP and not self._protocol.is_initialized(self._slot[fd]):
                self._close(fd)
            elif kind == _HTTP and self._slot[fd] == -1:
                exchange = self._exchanges.get(fd)
                if exchange is None or not exchange.busy:
                    self._close(fd)  # no complete request in time (slowloris)
        if deadlines:
            self._sweeper = self._loop.call_later(max(0.0, deadlines[0][0] - now), self._sweep)

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
        self._paused[fd] = 0
        self._generation[fd] = (self._generation[fd] + 1) & 0xFFFFFFFF
        slot = self._slot[fd]
        self._slot[fd] = -1
        self._partial.pop(fd, None)
        self._unsent.pop(fd, None)
        self._close_after_flush.discard(fd)
        exchange = self._exchanges.pop(fd, None)
        if kind == _TCP:
            self._protocol.close_session(slot)
        elif kind == _SSE and self._http is not None:
            self._http.detach_stream(slot)
        elif exchange is not None and self._http is not None:
            self._http.abandon(exchange)
