"""Baseline servers written the way people usually write them, for side-by-side runs.

MCP over TCP (newline-delimited JSON-RPC: initialize, notifications/initialized, ping,
tools/list, tools/call with ``echo`` and ``consult_experts``), session state in plain dicts:

- ``asyncio-streams``: ``asyncio.start_server``, one coroutine (Task) per connection.
- ``asyncio-protocol``: an ``asyncio.Protocol`` subclass, one object per connection.
- ``uvloop-protocol``: the same Protocol on uvloop's event loop.
- ``mcp-sdk`` (HTTP): the official MCP Python SDK's Streamable HTTP app under uvicorn,
  when the SDK is installed; with ``--app file.py:mcp``, a server of the user's own
  (``connscale bench --app`` runs it this way beside connscale serving the same object).
  SDK 2.x also serves MCP 2026-07-28 on the same endpoint (``--servers mcp-sdk:mcp-listen``
  or ``mcp-sdk:mcp-stateless``): its ``MCPServer`` serves ``subscriptions/listen`` with its
  defaults, which refuse a process's 1,025th stream ("Subscription limit reached").

Other long-lived-connection servers, for ``--protocol`` runs (the ``baselines`` extra):

- ``websockets-echo``: the ``websockets`` library's asyncio server echoing messages.
- ``aiohttp-ws``: an aiohttp web application with a WebSocket echo handler.
- ``asyncio-tcp-echo``: a plain ``asyncio.start_server`` line echo (raw TCP).
- ``aiohttp-sse``: an aiohttp handler holding a ``text/event-stream`` response open.
- ``aiohttp-keepalive``: an aiohttp handler answering ``GET /``; idle keep-alive
  connections held (its keep-alive timeout raised to an hour, as a held connection is
  the point of the benchmark).

Run one with ``python -m connscale.bench.baselines NAME --port 0 --ready-file F``: it
writes the same ready-file JSON as ``connscale serve`` and, with ``--stats-dir``, answers
SIGUSR1 with ``worker-<pid>.json`` (a ``WorkerStats`` record). SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from connscale.gc import PauseRecorder
from connscale.server.stats import WorkerGC, WorkerStats, write_worker_stats

#: TCP baselines, in the order the bench runs them.
TCP_BASELINES = ("asyncio-streams", "asyncio-protocol", "uvloop-protocol")
#: HTTP baselines (need the optional ``sdk`` extra).
HTTP_BASELINES = ("mcp-sdk",)
#: WebSocket and raw TCP baselines (the ``baselines`` extra for the WebSocket ones).
OTHER_BASELINES = (
    "websockets-echo",
    "aiohttp-ws",
    "asyncio-tcp-echo",
    "aiohttp-sse",
    "aiohttp-keepalive",
)
BASELINES = TCP_BASELINES + HTTP_BASELINES + OTHER_BASELINES
#: The protocol the load generator speaks to each baseline.
BASELINE_PROTOCOLS: dict[str, str] = {
    **dict.fromkeys(TCP_BASELINES, "mcp"),
    "mcp-sdk": "mcp-http",
    "websockets-echo": "websocket",
    "aiohttp-ws": "websocket",
    "asyncio-tcp-echo": "tcp",
    "aiohttp-sse": "sse",
    "aiohttp-keepalive": "http",
}
#: Protocols a baseline also serves beside its own (``--servers NAME:PROTOCOL``).
ALSO_SPEAKS: dict[str, tuple[str, ...]] = {"mcp-sdk": ("mcp-listen", "mcp-stateless")}
#: The official SDK's ``ListenHandler`` refuses more than 1,024 open listen streams per
#: process; a bench takes it to 1,000.
SDK_MAX_LISTEN_STREAMS = 1000
BACKLOG = 4096
SERVER_INFO = {"name": "baseline", "version": "1.0"}
TOOLS = [
    {
        "name": "echo",
        "description": "Echo the text back.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
    },
    {
        "name": "consult_experts",
        "description": "Ask a question; get an answer.",
        "inputSchema": {"type": "object", "properties": {"question": {"type": "string"}}},
    },
]


def missing(name: str, protocol: str | None = None) -> str | None:
    """Why baseline ``name`` cannot run here (a library not installed, or one too old to
    speak ``protocol``), or None."""
    import importlib.util

    if name == "mcp-sdk" and not sdk_available():
        return "the official MCP SDK is not installed (pip install 'connscale[sdk]')"
    if name == "mcp-sdk" and protocol in ALSO_SPEAKS["mcp-sdk"] and not sdk_serves_listen():
        return "the installed MCP SDK predates 2026-07-28 (SDK 2.x serves it)"
    library = {"websockets-echo": "websockets"}.get(name)
    if name.startswith("aiohttp-"):
        library = "aiohttp"
    if library is not None and importlib.util.find_spec(library) is None:
        return f"{library} is not installed (pip install 'connscale[baselines]')"
    return None


def sdk_available() -> bool:
    """True when the official MCP SDK and uvicorn can be imported."""
    try:
        import uvicorn  # noqa: F401

        _sdk_server_class()
    except ImportError:
        return False
    return True


def sdk_serves_listen() -> bool:
    """True when the installed SDK serves 2026-07-28 and ``subscriptions/listen`` (2.x)."""
    import importlib.util

    try:
        return importlib.util.find_spec("mcp.server.subscriptions") is not None
    except ImportError:
        return False


def _sdk_server_class() -> Any:
    import importlib

    try:
        return importlib.import_module("mcp.server.mcpserver").MCPServer  # SDK 2.x
    except ImportError:
        return importlib.import_module("mcp.server.fastmcp").FastMCP  # SDK 1.x


class McpApp:
    """The MCP logic the TCP baselines share: dict sessions, JSON in, JSON out."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.connections = 0

    def open_session(self) -> str:
        session_id = uuid.uuid4().hex
        self.sessions[session_id] = {"id": session_id, "initialized": False, "created": time.time()}
        return session_id

    def close_session(self, session_id: str | None) -> None:
        if session_id is not None:
            self.sessions.pop(session_id, None)

    def handle_line(self, session_id: str, line: bytes) -> bytes | None:
        """Answer one JSON-RPC line (None for notifications)."""
        try:
            message = json.loads(line)
        except ValueError:
            return _error(None, -32700, "parse error")
        if not isinstance(message, dict):
            return _error(None, -32600, "invalid request")
        method = message.get("method")
        request_id = message.get("id")
        session = self.sessions.get(session_id)
        if session is None:
            return _error(request_id, -32600, "no session")
        if method == "initialize":
            params = message.get("params") or {}
            session["protocol_version"] = params.get("protocolVersion")
            session["client_info"] = params.get("clientInfo")
            session["capabilities"] = params.get("capabilities")
            return _result(
                request_id,
                {
                    "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                    "capabilities": {"tools": {}},
                    "serverInfo": SERVER_INFO,
                },
            )
        if method == "notifications/initialized":
            session["initialized"] = True
            return None
        if request_id is None:
            return None  # other notifications
        if method == "ping":
            return _result(request_id, {})
        if method == "tools/list":
            return _result(request_id, {"tools": TOOLS})
        if method == "tools/call":
            params = message.get("params") or {}
            arguments = params.get("arguments") or {}
            name = params.get("name")
            if name == "echo":
                text = str(arguments.get("text", ""))
            elif name == "consult_experts":
                text = f"The experts agree: {arguments.get('question', '')}"
            else:
                return _error(request_id, -32602, f"unknown tool {name!r}")
            return _result(request_id, {"content": [{"type": "text", "text": text}]})
        return _error(request_id, -32601, f"method not found: {method}")


def _result(request_id: object, result: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}).encode() + b"\n"


def _error(request_id: object, code: int, message: str) -> bytes:
    payload = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return json.dumps(payload).encode() + b"\n"


# --- asyncio streams -------------------------------------------------------------------------


def streams_handler(
    app: McpApp,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        app.connections += 1
        session_id = app.open_session()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                reply = app.handle_line(session_id, line)
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            app.connections -= 1
            app.close_session(session_id)
            writer.close()

    return handle


# --- asyncio / uvloop Protocol ----------------------------------------------------------------


class McpProtocol(asyncio.Protocol):
    """One object per connection, the usual way: a buffer and a session id."""

    def __init__(self, app: McpApp) -> None:
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.session_id: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.app.connections += 1
        self.session_id = self.app.open_session()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if not line.strip() or self.session_id is None:
                continue
            reply = self.app.handle_line(self.session_id, line)
            if reply is not None and self.transport is not None:
                self.transport.write(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.app.connections -= 1
        self.app.close_session(self.session_id)
        self.transport = None


# --- running ----------------------------------------------------------------------------------


def write_ready_file(path: Path, info: dict[str, Any]) -> None:
    """Write the ready file atomically (a reader never sees half of it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info), encoding="utf-8")
    tmp.replace(path)


def _install_signals(
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
    stats_dir: Path | None,
    app_counts: Callable[[], tuple[int, int]],
) -> None:
    """SIGTERM/SIGINT stop; SIGUSR1 writes a WorkerStats record (with GC pauses)."""
    recorder: PauseRecorder | None = None
    if stats_dir is not None:
        recorder = PauseRecorder()
        recorder.start()

    def write_stats() -> None:
        if stats_dir is None or recorder is None:
            return
        connections, sessions = app_counts()
        stats = WorkerStats(
            pid=os.getpid(),
            connections=connections,
            sessions=sessions,
            gc=WorkerGC.from_statistics(recorder.statistics()),
            gc_frozen_objects=gc.get_freeze_count(),
        )
        write_worker_stats(stats_dir, stats)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, write_stats)


def _announce(ready_file: Path | None, name: str, host: str, port: int) -> None:
    if ready_file is not None:
        protocol = BASELINE_PROTOCOLS.get(name, "mcp")
        write_ready_file(
            ready_file,
            {
                "transport": "tcp" if protocol in ("mcp", "tcp") else "http",
                "engine": name,
                "host": host,
                "port": port,
                "supervisor_pid": os.getpid(),
                "pids": [os.getpid()],
            },
        )


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


# --- WebSocket and raw TCP baselines -----------------------------------------------------------


async def serve_tcp_echo(
    host: str, port: int, ready_file: Path | None, stats_dir: Path | None
) -> None:
    """A line echo server the usual way: ``asyncio.start_server``, a Task per connection."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    live = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        live[0] += 1
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            live[0] -= 1
            writer.close()

    _install_signals(loop, stop, stats_dir, lambda: (live[0], 0))
    server = await asyncio.start_server(handle, sock=_listen(host, port), backlog=BACKLOG)
    _announce(ready_file, "asyncio-tcp-echo", host, server.sockets[0].getsockname()[1])
    async with server:
        await stop.wait()
        server.close()


async def serve_websockets(
    host: str, port: int, ready_file: Path | None, stats_dir: Path | None
) -> None:
    """The ``websockets`` library's asyncio server, echoing every message, on its defaults."""
    from websockets.asyncio.server import ServerConnection, serve

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    live = [0]

    async def echo(connection: ServerConnection) -> None:
        live[0] += 1
        try:
            async for message in connection:
                await connection.send(message)
        except Exception:  # a client going away mid-message is not the server's failure
            pass
        finally:
            live[0] -= 1

    _install_signals(loop, stop, stats_dir, lambda: (live[0], 0))
    async with serve(echo, sock=_listen(host, port)) as server:
        bound = next(iter(server.sockets)).getsockname()
        _announce(ready_file, "websockets-echo", host, bound[1])
        await stop.wait()


async def serve_aiohttp(
    host: str, port: int, ready_file: Path | None, stats_dir: Path | None
) -> None:
    """An aiohttp application with a WebSocket echo handler at ``/``, on its defaults."""
    from aiohttp import WSMsgType, web

    live = [0]

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        live[0] += 1
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await ws.send_str(message.data)
                elif message.type == WSMsgType.BINARY:
                    await ws.send_bytes(message.data)
        finally:
            live[0] -= 1
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    await _run_aiohttp(
        app,
        "aiohttp-ws",
        host=host,
        port=port,
        ready_file=ready_file,
        stats_dir=stats_dir,
        live=live,
    )


async def _run_aiohttp(
    app: Any,
    name: str,
    *,
    host: str,
    port: int,
    ready_file: Path | None,
    stats_dir: Path | None,
    live: list[int],
) -> None:
    from aiohttp import web

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    runner = web.AppRunner(app, handle_signals=False, access_log=None, keepalive_timeout=3600)
    await runner.setup()
    sock = _listen(host, port)
    await web.SockSite(runner, sock, backlog=BACKLOG).start()
    _install_signals(loop, stop, stats_dir, lambda: (live[0], 0))
    _announce(ready_file, name, host, sock.getsockname()[1])
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def serve_aiohttp_sse(
    host: str, port: int, ready_file: Path | None, stats_dir: Path | None
) -> None:
    """An aiohttp handler that holds a ``text/event-stream`` response open at ``/events``."""
    from aiohttp import web

    live = [0]

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        live[0] += 1
        try:
            await response.write(b"data: hello\n\n")
            await asyncio.Event().wait()  # hold until the client goes
        finally:
            live[0] -= 1
        return response

    app = web.Application()
    app.router.add_get("/events", events)
    await _run_aiohttp(
        app,
        "aiohttp-sse",
        host=host,
        port=port,
        ready_file=ready_file,
        stats_dir=stats_dir,
        live=live,
    )


async def serve_aiohttp_keepalive(
    host: str, port: int, ready_file: Path | None, stats_dir: Path | None
) -> None:
    """An aiohttp handler answering ``GET /``; idle keep-alive connections are held."""
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    await _run_aiohttp(
        app,
        "aiohttp-keepalive",
        host=host,
        port=port,
        ready_file=ready_file,
        stats_dir=stats_dir,
        live=[0],
    )


async def serve_tcp(
    name: str, host: str, port: int, ready_file: Path | None, stats_dir: Path | None
) -> None:
    """Serve the ``name`` TCP baseline until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    app = McpApp()
    stop = asyncio.Event()
    _install_signals(loop, stop, stats_dir, lambda: (app.connections, len(app.sessions)))
    server: asyncio.base_events.Server
    if name == "asyncio-streams":
        server = await asyncio.start_server(streams_handler(app), host, port, backlog=BACKLOG)
    else:
        server = await loop.create_server(lambda: McpProtocol(app), host, port, backlog=BACKLOG)
    bound = server.sockets[0].getsockname()
    _announce(ready_file, name, bound[0], bound[1])
    async with server:
        await stop.wait()
        server.close()


def serve_sdk(
    host: str,
    port: int,
    ready_file: Path | None,
    stats_dir: Path | None,
    app: str | None = None,
) -> None:
    """Serve the official MCP SDK's Streamable HTTP app under uvicorn: the baseline's own
    tools, or the SDK server object ``app`` names (``file.py:mcp``) as its author runs it.

    Both eras on one endpoint, as the SDK does by default: sessions for ``initialize``, and
    (SDK 2.x) 2026-07-28 requests, ``subscriptions/listen`` included, through the
    ``MCPServer``'s own in-process subscription bus with its default limits.
    """
    import uvicorn

    if app is not None:
        from connscale.server.loading import load_object

        mcp = load_object(app)
    else:
        server_class = _sdk_server_class()
        try:
            mcp = server_class("baseline", log_level="WARNING")
        except TypeError:
            mcp = server_class("baseline")

        def echo(text: str = "") -> str:
            """Echo the text back."""
            return text

        def consult_experts(question: str = "") -> str:
            """Ask a question; get an answer."""
            return f"The experts agree: {question}"

        for tool in (echo, consult_experts):
            mcp.tool()(tool)

    try:
        # Held connections must not be reaped by the SDK's defaults (10,000 sessions,
        # 30 minutes idle) during a benchmark.
        http_app = mcp.streamable_http_app(max_sessions=None, session_idle_timeout=None, host=host)
    except TypeError:  # SDK 1.x: no such arguments (and no session cap or reaping)
        http_app = mcp.streamable_http_app()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    config = uvicorn.Config(
        http_app,
        log_level="warning",
        timeout_keep_alive=3600,  # a held connection is the point of the benchmark
        backlog=BACKLOG,
        lifespan="on",
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        _install_signals(loop, stop, stats_dir, lambda: (len(server.server_state.connections), 0))
        if ready_file is not None:
            write_ready_file(
                ready_file,
                {
                    "transport": "http",
                    "engine": "mcp-sdk",
                    "host": host,
                    "port": sock.getsockname()[1],
                    "supervisor_pid": os.getpid(),
                    "pids": [os.getpid()],
                },
            )
        await asyncio.wait(
            [serving, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        server.should_exit = True
        await serving

    asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connscale.bench.baselines", description="Run a baseline MCP server."
    )
    parser.add_argument("name", choices=BASELINES)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--stats-dir", type=Path)
    parser.add_argument(
        "--app", metavar="FILE.py:ATTR", help="mcp-sdk: serve this SDK server object instead"
    )
    args = parser.parse_args(argv)
    if args.name == "mcp-sdk":
        if not sdk_available():
            print("the official MCP SDK (and uvicorn) is not installed", file=sys.stderr)
            return 2
        serve_sdk(args.host, args.port, args.ready_file, args.stats_dir, app=args.app)
        return 0
    if args.app is not None:
        parser.error("--app is for the mcp-sdk baseline")
    serve_other = {
        "websockets-echo": serve_websockets,
        "aiohttp-ws": serve_aiohttp,
        "asyncio-tcp-echo": serve_tcp_echo,
        "aiohttp-sse": serve_aiohttp_sse,
        "aiohttp-keepalive": serve_aiohttp_keepalive,
    }.get(args.name)
    if serve_other is not None:
        why = missing(args.name)
        if why is not None:
            print(why, file=sys.stderr)
            return 2
        asyncio.run(serve_other(args.host, args.port, args.ready_file, args.stats_dir))
        return 0
    coroutine = serve_tcp(args.name, args.host, args.port, args.ready_file, args.stats_dir)
    if args.name == "uvloop-protocol":
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)
    return 0


__all__ = [
    "ALSO_SPEAKS",
    "BASELINES",
    "BASELINE_PROTOCOLS",
    "HTTP_BASELINES",
    "OTHER_BASELINES",
    "SDK_MAX_LISTEN_STREAMS",
    "TCP_BASELINES",
    "McpApp",
    "McpProtocol",
    "main",
    "missing",
    "sdk_available",
    "sdk_serves_listen",
    "serve_aiohttp",
    "serve_aiohttp_keepalive",
    "serve_aiohttp_sse",
    "serve_tcp",
    "serve_tcp_echo",
    "serve_websockets",
    "write_ready_file",
]

if __name__ == "__main__":
    sys.exit(main())
