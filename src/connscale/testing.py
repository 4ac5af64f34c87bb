"""Helpers for testing code built on connscale: a fake clock, an engine run in a thread, and
``connscale serve`` run in a subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connscale.bench.orchestrator import wait_ready_file
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


@contextmanager
def served(
    ready_dir: Path,
    arguments: Sequence[str] = (),
    *,
    command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """Run ``connscale serve ARGUMENTS`` in a subprocess; yields it with its ready-file
    payload once every worker listens, and stops it on exit (SIGTERM, SIGKILL if it lingers).

    ``command`` replaces ``python -m connscale serve`` with any command that takes
    ``--ready-file`` and keeps its contract; ``env`` adds to the environment.
    """
    ready_file = Path(ready_dir) / "ready.json"
    base = list(command) if command is not None else [sys.executable, "-m", "connscale", "serve"]
    process = subprocess.Popen(
        [*base, "--ready-file", str(ready_file), *arguments],
        env=None if env is None else {**os.environ, **env},
    )
    try:
        yield process, wait_ready_file(ready_file, process, name=base[-1], timeout=timeout)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


__all__ = ["FakeClock", "engine_in_thread", "served"]
