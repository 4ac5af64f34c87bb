"""Helpers for testing code built on connscale: a fake clock, and an engine run in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from connscale.clock import FakeClock
from connscale.engines.aio import AsyncioEngine
from connscale.engines.epoll import EpollEngine
from connscale.errors import ServerError


@contextmanager
def engine_in_thread(
    engine: EpollEngine | AsyncioEngine, *, start_timeout: float = 5.0
) -> Iterator[asyncio.AbstractEventLoop]:
    """Run ``engine`` on a new event loop in a daemon thread; yields that loop.

    On exit the loop stops, the engine closes and the thread is joined, so a test's
    blocking client code can talk to a real engine over loopback without an event loop.
    """
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            if isinstance(engine, EpollEngine):
                engine.start()
            else:
                await engine.start()
            started.set()

        loop.run_until_complete(boot())
        loop.run_forever()
        engine.close()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    thread = threading.Thread(target=run, name="connscale-engine", daemon=True)
    thread.start()
    if not started.wait(start_timeout):
        loop.call_soon_threadsafe(loop.stop)
        raise ServerError(f"the engine did not start within {start_timeout} s")
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(start_timeout)


__all__ = ["FakeClock", "engine_in_thread"]
