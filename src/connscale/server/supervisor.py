"""Run the server: one process, or a supervisor with N workers sharing a port (SO_REUSEPORT).

The supervisor loads the app, binds the port first (so ``--port 0`` picks one port for
everyone), gets the session keys and the shared revocation table, and starts the workers:
forked by default, so every worker shares the supervisor's imported modules and loaded app
copy-on-write (the supervisor freezes them out of the collector's view first, so that a
collection does not dirty the shared pages); or spawned, each importing everything anew.
It writes the ready file once every worker listens, restarts a worker that dies (started
the same way), and forwards SIGTERM/SIGINT (stop) and SIGUSR1 (write statistics) to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import mmap
import multiprocessing
import os
import resource
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from connscale._hot_path import mode as hot_path_mode
from connscale.core.protocol.surface import Surface
from connscale.core.protocol.tokens import RevocationTable, SessionKeys
from connscale.engines._base import Engine
from connscale.errors import ServerError
from connscale.server._heap import plug_free_blocks
from connscale.server.build import build_engine, build_stdio_engine, warm_up
from connscale.server.config import ServerConfig, session_keys
from connscale.server.experts import CircleOfExperts, load_experts
from connscale.server.loading import as_surface, load_app
from connscale.server.reference import build_reference_app
from connscale.server.stats import WorkerGC, WorkerStats, write_worker_stats

__all__ = ["ServerHandle", "Worker", "resolve_app", "serve", "write_json_atomic"]


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON so that readers see the old file or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(payload, file)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def reference_app(config: ServerConfig) -> Surface:
    """The reference tools (``echo``, ``consult_experts``, ``get_expert_responses``)."""
    experts = load_experts(config.experts) if config.experts else None
    circle = CircleOfExperts(experts, timeout=config.experts_timeout)
    return build_reference_app(circle, name=config.server_name)


def resolve_app(config: ServerConfig, app: object | None = None) -> Surface:
    """What to serve: ``app`` when given, else ``config.app`` loaded, else the reference."""
    if app is not None:
        return as_surface(app)
    if config.app is not None:
        return load_app(config.app)
    return reference_app(config)


def bind_listener(config: ServerConfig, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to ``config.host`` and ``port`` with the server's socket options
    (accepted connections inherit them), not yet listening; ServerError if it cannot bind."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted fds inherit it
        if config.socket_send_buffer:  # so do they SO_SNDBUF
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, config.socket_send_buffer)
        sock.bind((config.host, port))
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot bind {config.host}:{port}: {exc.strerror}") from exc
    return sock


class Worker:
    """One connection-holding process: its listener, engine and signal handling."""

    def __init__(
        self,
        config: ServerConfig,
        app: Surface | None = None,
        *,
        keys: SessionKeys | None = None,
        revocations: str | None = None,
        reuse_port: bool = False,
        port: int | None = None,
    ) -> None:
        self.config = config
        self._app = app
        self._keys = keys
        self._revocations_path = revocations
        self._reuse_port = reuse_port
        self._port = config.port if port is None else port
        self._stop: asyncio.Event | None = None
        self._gc_recorder: Any = None
        self.port = 0
        self.engine: Engine | None = None

    def _build(self, listener: socket.socket) -> Engine:
        app = self._app if self._app is not None else resolve_app(self.config)
        keys = self._keys
        return build_engine(
            self.config,
            app,
            listener,
            key=None if keys is None else keys.current,
            previous_keys=() if keys is None else keys.previous,
            revoked=self._revocation_table(),
        )

    def _revocation_table(self) -> RevocationTable:
        capacity = self.config.revocation_capacity
        if self._revocations_path is None:
            return RevocationTable(capacity)
        with open(self._revocations_path, "r+b") as file:
            shared = mmap.mmap(file.fileno(), RevocationTable.size_for(capacity))
        return RevocationTable(capacity, buffer=memoryview(shared))

    def run(self, on_ready: Callable[[Worker], None] | None = None) -> int:
        """Serve until SIGTERM/SIGINT; ``on_ready`` is called once the port listens."""
        _raise_open_files_limit()
        if self.config.use_uvloop():
            import uvloop

            runner: Callable[[Any], Any] = uvloop.run
        else:
            runner = asyncio.run
        runner(self._serve(on_ready))
        return 0

    async def _serve(self, on_ready: Callable[[Worker], None] | None) -> None:
        loop = asyncio.get_running_loop()
        listener = bind_listener(self.config, self._port, reuse_port=self._reuse_port)
        listener.listen(self.config.backlog)
        self.port = listener.getsockname()[1]
        engine = self._build(listener)
        self.engine = engine
        self._stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        if not self._reuse_port:  # a worker leaves Ctrl-C to its supervisor (it forwards)
            loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self.write_statistics)
        await engine.start()
        # Everything alive now (modules, the tool registry, the engine's arrays) lives as long
        # as the worker: freeze it, so that full collections scan only what came later.
        # That one-off collection happens before the worker serves anyone, so the pause
        # recorder starts after it and records serving-time pauses only.
        gc.collect()
        gc.freeze()
        self._start_gc_recorder()
        parent = os.getppid()
        if on_ready is not None:
            on_ready(self)
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=1.0)
                if self._reuse_port and os.getppid() != parent:
                    break  # the supervisor is gone: do not linger as an orphan
            await self._drain(engine, listener)
        finally:
            engine.close()
            listener.close()
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
                loop.remove_signal_handler(signum)  # False (no-op) when it was not set
            if self._gc_recorder is not None:
                self._gc_recorder.stop()

    async def _drain(self, engine: Engine, listener: socket.socket) -> None:
        """SIGTERM: stop accepting, answer what was read, close each session once flushed.

        Connections keep being read while the engine drains, so requests already sent
        (pipelined, or in the kernel's buffer) are answered too; the engine is quiet when no
        tool call runs and no output waits. Everything is bounded by ``shutdown_grace``.
        """
        engine.stop_accepting()
        listener.close()  # new connections are refused now, not left in a backlog
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_grace
        quiet_rounds = 0
        while quiet_rounds < 3 and loop.time() < deadline:  # quiet for three looks in a row
            quiet_rounds = quiet_rounds + 1 if engine.quiet() else 0
            await asyncio.sleep(0.01)
        engine.close_gracefully()
        while engine.statistics().connections and loop.time() < deadline + 1.0:
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _start_gc_recorder(self) -> None:
        try:
            from connscale.gc import PauseRecorder
        except ImportError:  # the instruments are optional for serving
            return
        recorder = PauseRecorder()
        recorder.start()
        self._gc_recorder = recorder

    def statistics(self) -> WorkerStats:
        """The stats-file record: pid, connections, sessions, gc (or None), frozen objects."""
        engine = self.engine
        stats = engine.statistics() if engine is not None else None
        gc_stats = None
        if self._gc_recorder is not None:
            gc_stats = WorkerGC.from_statistics(self._gc_recorder.statistics())
        return WorkerStats(
            pid=os.getpid(),
            connections=stats.connections if stats else 0,
            sessions=stats.sessions if stats else 0,
            gc=gc_stats,
            gc_frozen_objects=gc.get_freeze_count(),
        )

    def write_statistics(self) -> None:
        """Write ``DIR/worker-<pid>.json`` (SIGUSR1); nothing without ``--stats-dir``."""
        stats_dir = self.config.stats_dir
        if stats_dir is not None:
            write_worker_stats(stats_dir, self.statistics())


def _version() -> str:
    from connscale._version import __version__

    return __version__


def _ready_payload(config: ServerConfig, port: int, pids: list[int]) -> dict[str, Any]:
    return {
        "transport": config.transport,
        "engine": config.engine,
        "host": config.host,
        "port": port,
        "supervisor_pid": os.getpid(),
        "pids": pids,
        "hot_path": hot_path_mode(),
    }


def ready_line(config: ServerConfig, port: int) -> str:
    """What ``connscale serve`` says on stderr once it listens: where, how, and whether the
    hot path runs compiled (``make compile``) or interpreted (about half the speed)."""
    host = f"[{config.host}]" if ":" in config.host else config.host  # an IPv6 address
    if config.transport == "http":
        where = f"http://{host}:{port}{config.http_path}"
    else:
        where = f"{config.transport}://{host}:{port}"
    workers = "1 worker" if config.workers == 1 else f"{config.workers} workers"
    return (
        f"connscale: serving MCP at {where} ({config.engine} engine, {workers}, "
        f"hot path {hot_path_mode()})"
    )


def _worker_main(  # noqa: PLR0917 - multiprocessing passes the arguments by position
    config: ServerConfig,
    app: Surface | None,
    port: int,
    keys: SessionKeys,
    revocations: str,
    ready: Connection,
    inherited: list[int],
) -> None:
    """Entry point of a worker process (forked or spawned by the supervisor)."""
    for fd in inherited:  # the supervisor's port placeholder: not this worker's to hold
        with contextlib.suppress(OSError):
            os.close(fd)
    # The supervisor decides when to stop; a terminal's Ctrl-C reaches it and it forwards.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_DFL)  # a forked worker inherited the supervisor's

    def announce(worker: Worker) -> None:
        ready.send(os.getpid())
        ready.close()

    Worker(config, app, keys=keys, revocations=revocations, reuse_port=True, port=port).run(
        announce
    )


class ServerHandle:
    """The supervisor's view of its workers; ``run()`` blocks until stopped."""

    def __init__(self, config: ServerConfig, app: Surface | None = None) -> None:
        self.config = config
        if config.start_method == "spawn":
            if app is not None and config.app is None:
                raise ServerError(
                    "spawned workers load the app themselves: give it as a target "
                    "(ServerConfig.app or --app), or use start_method fork"
                )
            app = None  # each spawned worker loads config.app (or the reference) anew
        elif app is None:
            app = resolve_app(config)
        self._app = app
        self._context: Any = multiprocessing.get_context(config.start_method)
        # The session keys travel to the workers in the fork/spawn arguments, never in
        # argv or the environment: read (or made) once here, shared by every worker.
        self._keys = session_keys(config)
        self._workers: list[multiprocessing.process.BaseProcess | None] = [None] * config.workers
        self._stopping = False
        self._inherited: list[int] = []
        self.port = 0

    def _start_worker(self, index: int, revocations: str) -> Connection:
        receiver: Connection
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main,
            args=(
                self.config,
                self._app,
                self.port,
                self._keys,
                revocations,
                sender,
                self._inherited,
            ),
            name=f"connscale-worker-{index}",
        )
        process.start()
        sender.close()
        self._workers[index] = process
        return receiver

    def _await_ready(self, pipes: list[Connection], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        pending = list(pipes)
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping:
                raise ServerError("workers did not start listening in time")
            for pipe in wait(pending, timeout=remaining):
                assert isinstance(pipe, Connection)
                try:
                    pipe.recv()
                except EOFError:
                    raise ServerError(
                        "a worker exited before it listened (see its error above)"
                    ) from None
                pending.remove(pipe)
                pipe.close()

    def _pids(self) -> list[int]:
        return [p.pid for p in self._workers if p is not None and p.pid is not None]

    def _signal_workers(self, signum: int) -> None:
        for process in self._workers:
            if process is not None and process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    def run(self) -> int:
        config = self.config
        placeholder = bind_listener(config, config.port, reuse_port=True)  # holds the port for all
        self.port = placeholder.getsockname()[1]
        self._inherited = [placeholder.fileno()]
        if config.start_method == "fork":
            assert self._app is not None
            _prepare_fork(config, self._app)
        capacity = config.revocation_capacity
        fd, revocations = tempfile.mkstemp(prefix="connscale-revoked-")
        os.ftruncate(fd, RevocationTable.size_for(capacity))
        os.close(fd)
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
        }
        try:
            pipes = [self._start_worker(i, revocations) for i in range(config.workers)]
            self._await_ready(pipes)
            self._write_ready()
            print(ready_line(config, self.port), file=sys.stderr, flush=True)
            self._supervise(revocations)
        finally:
            self._stopping = True
            self._shutdown_workers()
            placeholder.close()
            with contextlib.suppress(OSError):
                os.unlink(revocations)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    def _write_ready(self) -> None:
        if self.config.ready_file is not None:
            payload = _ready_payload(self.config, self.port, self._pids())
            write_json_atomic(self.config.ready_file, payload)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGUSR1:
            self._signal_workers(signal.SIGUSR1)
            return
        self._stopping = True

    def _supervise(self, revocations: str) -> None:
        while not self._stopping:
            sentinels = [p.sentinel for p in self._workers if p is not None]
            wait(sentinels, timeout=0.2)
            if self._stopping:
                return
            for index, process in enumerate(self._workers):
                if process is not None and not process.is_alive():
                    process.join(0)
                    pipe = self._start_worker(index, revocations)  # a worker died: replace it
                    with contextlib.suppress(ServerError):
                        self._await_ready([pipe])
                    self._write_ready()

    def _shutdown_workers(self) -> None:
        self._signal_workers(signal.SIGTERM)
        deadline = time.monotonic() + self.config.shutdown_grace + 2.0
        for process in self._workers:
            if process is None:
                continue
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)


def _prepare_fork(config: ServerConfig, app: Surface) -> None:
    """Before forking workers: load and build what every worker uses, then freeze it all.

    Whatever the supervisor imports and builds now is shared by the forked workers page by
    page until one of them writes to it: one throwaway request path runs here (``warm_up``)
    so that no worker builds its own copy on its first request. ``gc.freeze`` then moves it
    all out of the collector's generations, so that no worker's collection walks (and so
    writes to) those objects; and the free blocks left between them are taken first, so
    that no worker's allocations land in (and so copy) those shared pages.
    """
    import connscale.engines.aio
    import connscale.engines.epoll
    import connscale.gc  # noqa: F401  (each worker records its pauses)

    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401
    warm_up(config, app)
    gc.collect()
    plug_free_blocks()  # a worker's allocations then go to pages of its own (_heap)
    gc.freeze()


def serve_stdio(config: ServerConfig, surface: Surface) -> int:
    """One session over stdin and stdout, until the input ends (or SIGTERM/SIGINT)."""

    async def run() -> None:
        engine = build_stdio_engine(config, surface)
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await engine.start()
        stopped = asyncio.ensure_future(stopping.wait())
        ended = asyncio.ensure_future(engine.closed.wait())
        await asyncio.wait({stopped, ended}, return_when=asyncio.FIRST_COMPLETED)
        if not engine.closed.is_set():  # a signal: answer what was asked, within the grace
            engine.close_gracefully()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(engine.closed.wait(), config.shutdown_grace)
        for task in (stopped, ended):
            task.cancel()
        engine.close()
        close = getattr(surface, "close", None)
        if callable(close):
            close()

    if config.use_uvloop():
        import uvloop

        uvloop.run(run())
    else:
        asyncio.run(run())
    return 0


def serve(config: ServerConfig, app: object | None = None) -> int:
    """Serve ``app`` (an App or any surface; default: ``config.app``, else the reference
    tools) with ``config`` until SIGTERM/SIGINT; returns the exit code."""
    if config.transport == "stdio":
        return serve_stdio(config, resolve_app(config, app))
    if config.workers > 1:
        return ServerHandle(config, None if app is None else as_surface(app)).run()
    surface = resolve_app(config, app)
    warm_up(config, surface, engine=False)  # the first requests' one-time work, up front

    def announce(worker: Worker) -> None:
        if config.ready_file is not None:
            write_json_atomic(config.ready_file, _ready_payload(config, worker.port, [os.getpid()]))
        print(ready_line(config, worker.port), file=sys.stderr, flush=True)

    return Worker(config, surface, keys=session_keys(config)).run(announce)
