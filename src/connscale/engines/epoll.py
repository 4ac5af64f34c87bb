"""The epoll engine (Linux): idle connections hold no Python object beyond their session slot.

Why it is small: the listening socket and every connection fd live in one ``select.epoll``
set, whose own fd is a single reader in the asyncio loop (so async calls run as tasks). A
new connection is read once before it joins the set: one answered and closed at once never
joins it.
Connections are accepted with ``socket._accept()``, which returns a bare fd (no socket
object), read and written with ``os.read``/``os.write``, and known to the connection core by
their fd number. Peer addresses are discarded. The engine decides nothing: it moves bytes
between the sockets and the ``ConnectionCore`` and carries out what the core asks (write,
stop or resume reading, close, wake it at a time). Its only per-fd objects are unsent
output while the kernel buffer is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import select
import socket
import time
from collections.abc import Callable
from typing import Final

from connscale.core._lazy_memory import lazy_zeroed
from connscale.core.connection import ConnectionCore
from connscale.core.protocol.http import McpHttp
from connscale.core.protocol.mcp import McpProtocol
from connscale.engines._base import EngineStatistics, Waker, open_files_limit
from connscale.engines._runner import CallRunner
from connscale.errors import ServerError

__all__ = ["EpollEngine"]

_log = logging.getLogger(__name__)

_READ_MASK: Final = select.EPOLLIN | select.EPOLLRDHUP
_WRITE_MASK: Final = select.EPOLLOUT
_RECV_SIZE: Final = 64 << 10
_ACCEPTS_PER_WAKEUP: Final = 64  # then the loop looks at other connections again
# Out of fds, accepting waits for a connection to close, or this long (asyncio's own pause):
# the fds may be held by something else, with no connection left to close.
_ACCEPT_RETRY_SECONDS: Final = 1.0
_EVENTS_PER_WAKEUP: Final = 1024
_INPUT_EVENTS: Final = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_OPEN: Final = 1  # the fd is ours: accepted and not yet closed
_READING: Final = 2  # its epoll mask asks for input
_POLLED: Final = 4  # it is in the epoll set (not yet, during the read right after accept)


class EpollEngine:
    """Serve one listening socket with one epoll set, inside an asyncio loop.

    The connection core is built here, sized by the open-files limit (fds index it).
    """

    def __init__(
        self,
        listener: socket.socket,
        protocol: McpProtocol,
        runner: CallRunner,
        *,
        http: McpHttp | None = None,
        keepalive_timeout: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not hasattr(select, "epoll"):
            raise ServerError("the epoll engine needs Linux; use --engine asyncio here")
        self._listener = listener
        self._listen_fd = listener.fileno()
        self._clock = clock
        self.runner = runner
        size = open_files_limit()
        self.core = ConnectionCore(
            protocol,
            runner,
            size,
            clock=clock or time.monotonic,
            http=http,
            keepalive_timeout=keepalive_timeout,
        )
        # Per fd, one byte: _OPEN from accept to os.close, _READING while its mask asks
        # for input, _POLLED once it is in the epoll set (one column: a byte per connection).
        self._fd_flags = lazy_zeroed(size)
        self._unsent: dict[int, bytearray] = {}  # output, only while the kernel buffer is full
        # Every read lands in this one buffer and only what arrived is copied out: os.read
        # would allocate 64 KiB from the C heap for each read and shrink it, and those
        # short-lived large blocks fragment the heap (measured: 10-30 B more per session).
        self._input = bytearray(_RECV_SIZE)
        self._input_view = memoryview(self._input)
        self._close_after_flush: set[int] = set()
        # Set while accepting is paused (out of fds): the listener waits for a close or this.
        self._accept_retry: asyncio.TimerHandle | None = None
        self._listener_waiting = select.poll()  # the listener alone: is a connection waiting?
        self._listener_waiting.register(self._listen_fd, select.POLLIN)
        self._epoll: select.epoll | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waker: Waker | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Register the listener and attach the epoll fd to the running asyncio loop."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._waker = Waker(loop, self.core, self._clock)
        self.core.attach(self)
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
        """No call running, nothing waiting for a turn, no output waiting to be sent."""
        return not self.runner.in_flight and self.core.idle() and not self._unsent

    def buffered_output(self) -> int:
        """Bytes of answers waiting for their clients to read them (flow control bounds it)."""
        return sum(len(unsent) for unsent in self._unsent.values())

    def close_gracefully(self) -> None:
        """Close every connection once its answers are sent (SIGTERM); ``close()`` after."""
        self.core.close_gracefully()

    def close(self) -> None:
        """Close every connection and detach from the loop (the listener stays the caller's)."""
        if self._epoll is None:
            return
        self.core.close_all()
        for fd in list(self._close_after_flush):
            self._close_now(fd)
        self.runner.close()
        if self._waker is not None:
            self._waker.cancel()
        if self._accept_retry is not None:
            self._accept_retry.cancel()
            self._accept_retry = None
        if self._loop is not None:
            # Typed to return nothing used: asyncio's remove_reader returns a bool, uvloop's
            # None, and a compiled call typed bool refuses the None (it did, at every stop).
            remove_reader: Callable[[int], object] = self._loop.remove_reader
            remove_reader(self._epoll.fileno())
        self._epoll.close()
        self._epoll = None

    def statistics(self) -> EngineStatistics:
        return EngineStatistics.of(self.core, self.runner.in_flight)

    def run_timers(self) -> None:
        """Expire the core's timers against the clock now (tests drive a fake clock)."""
        if self._waker is not None:
            self._waker.fire()

    # -- the event loop ----------------------------------------------------------------------

    def _on_ready(self) -> None:
        epoll = self._epoll
        if epoll is None:
            return
        for fd, events in epoll.poll(0, _EVENTS_PER_WAKEUP):
            if fd == self._listen_fd:
                self._accept()
                continue
            try:
                if events & select.EPOLLOUT:
                    self._flush(fd)
                if events & _INPUT_EVENTS and self._fd_flags[fd] & _READING:
                    self._read(fd)
                elif events & (select.EPOLLHUP | select.EPOLLERR):
                    self._close_now(fd)  # reset while we were not reading: nothing to answer
            except Exception:
                # A bug met by one connection must not stop the others: log it, drop that one.
                _log.exception("closing a connection after an unexpected error")
                self._close_now(fd)

    def _accept(self) -> None:
        accept = self._listener._accept  # type: ignore[attr-defined]
        core = self.core
        waiting = self._listener_waiting.poll
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                fd, _address = accept()  # a bare fd: no socket object per connection
            except (BlockingIOError, InterruptedError):
                return  # another process sharing the listener took it first
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of fds: the rest wait in the backlog. The listener is ready all the
                    # while, so it leaves the polls until a connection closes, or the loop spins.
                    self._pause_accepting()
                    return
                if exc.errno == errno.ECONNABORTED:
                    continue
                raise
            if not core.open(fd):
                os.close(fd)  # over the per-worker limit: refuse cleanly
            else:
                os.set_blocking(fd, False)
                flags = self._fd_flags
                flags[fd] = _OPEN | _READING
                # A client speaks first and usually at once: its request is often here
                # already, and reading it now saves a trip through both event loops. The fd
                # joins the epoll set after that read, if it is still open: a connection
                # answered and closed at once (`Connection: close`) costs no epoll_ctl.
                self._read(fd)
                if (flags[fd] & (_OPEN | _POLLED)) == _OPEN:
                    self._poll(fd)
            # Another connection waiting? Asked of a poll set holding only the listener: an
            # accept() that finds the backlog empty raises (BlockingIOError, about 1.7 µs,
            # once per wakeup when connections come one at a time); this poll costs 0.2 µs.
            if not waiting(0):
                return

    def _pause_accepting(self) -> None:
        epoll, loop = self._epoll, self._loop
        if epoll is None or loop is None or self._accept_retry is not None:
            return
        try:
            epoll.modify(self._listen_fd, 0)
        except (OSError, ValueError):
            return  # stopped accepting already
        self._accept_retry = loop.call_later(_ACCEPT_RETRY_SECONDS, self._resume_accepting)

    def _resume_accepting(self) -> None:
        if self._accept_retry is not None:
            self._accept_retry.cancel()  # a no-op when it is the timer calling
            self._accept_retry = None
        epoll = self._epoll
        if epoll is not None:
            with contextlib.suppress(OSError, ValueError):  # stopped accepting meanwhile
                epoll.modify(self._listen_fd, select.EPOLLIN)

    def _read(self, fd: int) -> None:
        try:
            size = os.readv(fd, (self._input,))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close_now(fd)
            return
        if size:
            self.core.receive(fd, self._input_view[:size].tobytes())
        else:
            self.core.eof(fd)

    # -- the Wire the core drives --------------------------------------------------------------

    def write(self, connection: int, data: bytes) -> int:
        unsent = self._unsent.get(connection)
        if unsent is not None:
            unsent += data
            return len(unsent)
        try:
            written = os.write(connection, data)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError:
            self._close_now(connection)
            return 0
        if written == len(data):
            return 0
        self._unsent[connection] = unsent = bytearray(data[written:])
        self._update_mask(connection)
        return len(unsent)

    def set_reading(self, connection: int, reading: bool) -> None:
        if connection in self._close_after_flush:
            reading = False
        flags = self._fd_flags[connection]
        wanted = flags | _READING if reading else flags & ~_READING
        if wanted != flags:
            self._fd_flags[connection] = wanted
            self._update_mask(connection)

    def disconnect(self, connection: int, flush: bool) -> None:
        if flush and connection in self._unsent:
            # The core is done with it now; the engine finishes sending, then closes.
            self._close_after_flush.add(connection)
            self.set_reading(connection, False)
            self.core.closed(connection)
        else:
            self._close_now(connection)

    def call_soon(self) -> None:
        assert self._loop is not None
        self._loop.call_soon(self.core.run_backlog)

    def wake_at(self, when: float) -> None:
        assert self._waker is not None
        self._waker.wake_at(when)

    # -- writing ---------------------------------------------------------------------------------

    def _mask(self, fd: int) -> int:
        reading = self._fd_flags[fd] & _READING
        return (_READ_MASK if reading else 0) | (_WRITE_MASK if fd in self._unsent else 0)

    def _poll(self, fd: int) -> None:
        """Put a new connection's fd in the epoll set, with the mask it needs now."""
        if self._epoll is None:
            return
        self._epoll.register(fd, self._mask(fd))
        self._fd_flags[fd] |= _POLLED

    def _update_mask(self, fd: int) -> None:
        if not self._fd_flags[fd] & _POLLED:
            return  # still in the read right after accept: the register takes the mask
        if self._epoll is not None:
            with contextlib.suppress(OSError):
                self._epoll.modify(fd, self._mask(fd))

    def _flush(self, fd: int) -> None:
        unsent = self._unsent.get(fd)
        if unsent is None:
            return
        try:
            written = os.write(fd, unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close_now(fd)
            return
        del unsent[:written]
        if not unsent:
            del self._unsent[fd]
            if fd in self._close_after_flush:
                self._close_now(fd)
                return
            self._update_mask(fd)
        if len(unsent) < self.core.limits.write_low_water:
            self.core.drained(fd)

    def _close_now(self, fd: int) -> None:
        flags = self._fd_flags[fd]
        if not flags & _OPEN:
            return  # closed already
        self._fd_flags[fd] = 0
        # Unregistered before the close, although closing removes an fd from the set: not if
        # another reference to the socket lives on (a tool that forks inherits every fd), and
        # then the set would go on reporting it under a number a new connection may get.
        epoll = self._epoll
        if epoll is not None and flags & _POLLED:
            try:  # noqa: SIM105  (a context manager per close costs more than the call)
                epoll.unregister(fd)
            except (OSError, ValueError):
                pass
        if self._unsent:
            self._unsent.pop(fd, None)
        if self._close_after_flush:
            self._close_after_flush.discard(fd)
        # Not contextlib.suppress: that builds a context manager on every close.
        try:  # noqa: SIM105
            os.close(fd)
        except OSError:
            pass
        self.core.closed(fd)  # a no-op when the core let it go already
        if self._accept_retry is not None:
            self._resume_accepting()  # accepting was paused, and an fd is free again
