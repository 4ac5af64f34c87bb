"""Helpers for testing code built on connscale: a fake clock, a server run in a thread with
time under the test's control, and ``connscale serve`` run in a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from connscale.bench.orchestrator import wait_ready_file
from connscale.clock import FakeClock
from connscale.core.protocol.limits import ServerLimits
from connscale.engines._base import Engine
from connscale.errors import ServerError
from connscale.server.build import build_engine
from connscale.server.config import ServerConfig
from connscale.server.supervisor import bind_listener, resolve_app

__all__ = ["FakeClock", "ServingThread", "engine_in_thread", "serve_in_thread", "served"]

Result = TypeVar("Result")


@contextmanager
def engine_in_thread(
    engine: Engine,
    *,
    start_timeout: float = 5.0,
    new_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
) -> Iterator[asyncio.AbstractEventLoop]:
    """Run ``engine`` on a new event loop (from ``new_loop``) in a thread; yields that loop
    once it serves.

    On exit the engine closes, the loop stops and the thread is joined (``ServerError``
    if it does not end, or if closing the engine raised), so a test's blocking client code
    can talk to a real engine over loopback without an event loop of its own. A stop right
    after the start is not lost: the thread waits for an event that the exit sets, whenever
    it comes.
    """
    loop = new_loop()
    started = threading.Event()
    failure: list[BaseException] = []
    stop_failure: list[BaseException] = []
    stop: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        try:
            await engine.start()
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        try:
            await stop.wait()
        finally:
            try:
                engine.close()
            except BaseException as exc:
                stop_failure.append(exc)
                raise
            await asyncio.sleep(0)  # let cancelled calls finish their cleanup

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
            # As asyncio.run does: what is still running (a surface's own tasks, such as an
            # SDK server's lifespan) is cancelled and allowed to finish before the loop closes.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="connscale-engine", daemon=True)
    thread.start()
    try:
        if not started.wait(start_timeout):
            raise ServerError(f"the engine did not start within {start_timeout} s")
        if failure:
            raise ServerError(f"the engine failed to start: {failure[0]}") from failure[0]
        yield loop
    finally:
        if stop is not None and not loop.is_closed():
            # call_soon_threadsafe is safe even if the loop stopped meanwhile: then the
            # thread has ended and join returns at once.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        thread.join(start_timeout)
        if thread.is_alive():
            raise ServerError("the engine thread did not stop in time")
        if stop_failure:
            error = stop_failure[0]
            raise ServerError(f"the engine failed to stop: {error!r}") from error


@dataclass
class ServingThread:
    """A server running in a thread: its port, engine, loop and (fake) clock."""

    port: int
    engine: Engine
    loop: asyncio.AbstractEventLoop
    clock: FakeClock

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def call(self, function: Callable[[], Result], timeout: float = 5.0) -> Result:
        """Run ``function()`` on the server's loop and return its result."""

        async def invoke() -> Result:
            return function()

        return asyncio.run_coroutine_threadsafe(invoke(), self.loop).result(timeout)

    def advance(self, seconds: float) -> None:
        """Move the server's clock forward and let its timeouts fire (no sleeping)."""
        self.clock.advance(seconds)
        self.call(self.engine.run_timers)


@contextmanager
def serve_in_thread(
    app: object | None = None,
    *,
    transport: str = "tcp",
    engine: str = "epoll",
    limits: ServerLimits | None = None,
    clock: FakeClock | None = None,
    **options: Any,
) -> Iterator[ServingThread]:
    """Serve ``app`` (default: the reference tools) on a loopback port from a thread.

    The server runs on a ``FakeClock`` (given or new): its timeouts fire only when the
    test calls ``advance``. ``options`` are further ``ServerConfig`` fields; the loop is the
    standard one unless ``loop="uvloop"`` asks for uvloop.
    """
    config = ServerConfig(
        transport=transport,  # type: ignore[arg-type]
        engine=engine,  # type: ignore[arg-type]
        limits=limits or ServerLimits(),
        **options,
    )
    clock = clock or FakeClock(1000.0)
    # Bound as the server binds (its socket options, socket_send_buffer among them), on
    # loopback and a free port.
    listener = bind_listener(replace(config, host="127.0.0.1"), 0, reuse_port=False)
    try:
        listener.listen(4096)
        port = listener.getsockname()[1]
        config = replace(config, port=port)
        surface = resolve_app(config, app)
        built = build_engine(config, surface, listener, clock=clock)
        new_loop = asyncio.new_event_loop
        if config.loop == "uvloop":
            import uvloop

            new_loop = uvloop.new_event_loop
        with engine_in_thread(built, new_loop=new_loop) as loop:
            yield ServingThread(port, built, loop, clock)
    finally:
        listener.close()


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
