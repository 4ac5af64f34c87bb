"""What every engine shares: the engine contract, statistics, the clock waker, sizing."""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from connscale.core.connection import ConnectionCore

__all__ = ["Engine", "EngineStatistics", "Waker", "open_files_limit"]


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    """Open connections, live sessions and calls in flight in one engine, and the
    connections it accepted since it started."""

    connections: int
    sessions: int
    tool_calls_in_flight: int
    accepted: int = 0

    @classmethod
    def of(cls, core: ConnectionCore, tool_calls_in_flight: int) -> EngineStatistics:
        """An engine's statistics: its core's counts and its runner's calls in flight."""
        counts = core.statistics()
        return cls(
            connections=counts.connections,
            sessions=counts.sessions,
            tool_calls_in_flight=tool_calls_in_flight,
            accepted=counts.accepted,
        )


class Engine(Protocol):
    """An I/O engine: moves bytes between sockets and its ``ConnectionCore``, nothing more.

    The supervisor and ``connscale.testing`` drive every engine through this contract.
    """

    core: ConnectionCore

    async def start(self) -> None:
        """Start serving on the running event loop."""
        ...

    def stop_accepting(self) -> None:
        """Refuse new connections; the open ones go on."""
        ...

    def quiet(self) -> bool:
        """No call running and no output waiting: every answer owed is out."""
        ...

    def close_gracefully(self) -> None:
        """Close each connection once the answers it is owed are sent."""
        ...

    def close(self) -> None:
        """Close everything now and detach from the loop."""
        ...

    def statistics(self) -> EngineStatistics: ...

    def run_timers(self) -> None:
        """Expire the core's timers against its clock now (tests advance a fake clock)."""
        ...


def open_files_limit() -> int:
    """The soft open-files limit: the most fds (so connections) one process can hold."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class Waker:
    """Calls ``core.tick`` when the core asked to be woken: one loop timer at most.

    ``clock`` is the core's clock (default: ``time.monotonic``, the loop's own clock). With a
    fake clock the loop timer still waits real seconds; tests advance the clock and call
    ``fire`` instead.
    """

    __slots__ = ("_clock", "_core", "_handle", "_loop", "_when")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        core: ConnectionCore,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._loop = loop
        self._core = core
        self._clock = clock or time.monotonic
        self._handle: asyncio.TimerHandle | None = None
        self._when = 0.0

    def wake_at(self, when: float) -> None:
        if self._handle is not None:
            if self._when <= when:
                return  # an earlier wake-up is set: the core re-arms from there
            self._handle.cancel()
        self._when = when
        self._handle = self._loop.call_later(max(0.0, when - self._clock()), self.fire)

    def fire(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        deadline = self._core.tick(self._clock())
        if deadline is not None:
            self.wake_at(deadline)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
