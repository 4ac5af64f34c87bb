"""The stdio engine: one MCP session over a process's stdin and stdout (MCP's stdio transport).

Desktop hosts and IDEs start an MCP server as a subprocess and speak newline-delimited
JSON-RPC over its stdin and stdout. This engine relays those two pipes to a
``ConnectionCore`` holding one connection (id 0), so a stdio session gets exactly the
decisions a TCP session gets: framing, limits, owed answers at end of input.

Why a reader thread: stdin may be a pipe, a terminal or a regular file, and epoll cannot
watch a regular file; a thread doing blocking reads works for all of them and costs one
thread for the whole process. Writes go straight to stdout from the loop (a host reads its
server's output continuously). Anything else the process prints would corrupt the protocol
stream, so the engine keeps the real stdout for itself and points fd 1 (and ``sys.stdout``)
at stderr while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable

from connscale.core.connection import ConnectionCore
from connscale.core.protocol.mcp import McpProtocol
from connscale.engines._base import EngineStatistics, Waker
from connscale.engines._runner import CallRunner

__all__ = ["StdioEngine"]

_READ_SIZE = 64 << 10
_CONNECTION = 0


class StdioEngine:
    """Serve one session on ``input_fd``/``output_fd`` (default: stdin and stdout).

    ``closed`` is set once the session is over (end of input, answers sent): the caller
    awaits it and stops. ``redirect_stdout`` moves fd 1 and ``sys.stdout`` to stderr.
    """

    def __init__(
        self,
        protocol: McpProtocol,
        runner: CallRunner,
        *,
        input_fd: int = 0,
        output_fd: int = 1,
        redirect_stdout: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.runner = runner
        self._clock = clock
        self._input = input_fd
        self._output = output_fd
        self._redirect = redirect_stdout and output_fd == 1
        self.core = ConnectionCore(
            protocol, runner, 1, clock=clock or time.monotonic, max_connections=1
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waker: Waker | None = None
        self._reading = threading.Event()
        self._stop_reading = False
        self._thread: threading.Thread | None = None
        self.closed = asyncio.Event()
        self._saved_stdout: int | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.closed = asyncio.Event()
        self._waker = Waker(loop, self.core, self._clock)
        if self._redirect:
            # The protocol keeps the real stdout; fd 1 and sys.stdout now go to stderr.
            sys.stdout.flush()
            self._output = os.dup(1)
            self._saved_stdout = self._output
            os.dup2(2, 1)
            sys.stdout = sys.stderr
        self.core.attach(self)
        self.core.open(_CONNECTION)
        self._reading.set()
        self._thread = threading.Thread(target=self._read_loop, name="connscale-stdin", daemon=True)
        self._thread.start()

    def _read_loop(self) -> None:
        loop = self._loop
        assert loop is not None
        while not self._stop_reading:
            self._reading.wait()
            try:
                data = os.read(self._input, _READ_SIZE)
            except OSError:
                data = b""
            if self._stop_reading:
                return
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._deliver, data)
            if not data:
                return

    def _deliver(self, data: bytes) -> None:
        if not self.core.kind_of(_CONNECTION):
            return
        if data:
            self.core.receive(_CONNECTION, data)
        else:
            self.core.eof(_CONNECTION)

    def stop_accepting(self) -> None:
        pass  # one session, already open

    def quiet(self) -> bool:
        return not self.runner.in_flight and self.core.idle()

    def close_gracefully(self) -> None:
        self.core.close_gracefully()

    def close(self) -> None:
        self._stop_reading = True
        self._reading.set()
        self.core.close_all()
        self.runner.close()
        if self._waker is not None:
            self._waker.cancel()
        self.closed.set()

    def statistics(self) -> EngineStatistics:
        return EngineStatistics.of(self.core, self.runner.in_flight)

    def run_timers(self) -> None:
        if self._waker is not None:
            self._waker.fire()

    # -- the Wire the core drives --------------------------------------------------------------

    def write(self, connection: int, data: bytes) -> int:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._output, view)
                view = view[written:]
        except BlockingIOError:
            # Only if someone made our stdout non-blocking: wait for room, never drop bytes.
            time.sleep(0.001)
            return self.write(connection, bytes(view))
        except OSError:
            self.disconnect(connection, False)
        return 0

    def set_reading(self, connection: int, reading: bool) -> None:
        if reading:
            self._reading.set()
        else:
            self._reading.clear()

    def disconnect(self, connection: int, flush: bool) -> None:
        if not self.core.kind_of(connection):
            return
        self.core.closed(connection)
        self._stop_reading = True
        self._reading.set()
        self.closed.set()  # the session is over: the process exits

    def call_soon(self) -> None:
        assert self._loop is not None
        self._loop.call_soon(self.core.run_backlog)

    def wake_at(self, when: float) -> None:
        assert self._waker is not None
        self._waker.wake_at(when)
