"""``connscale serve``: serve an MCP app (yours with --app, or the reference tools) over
TCP, Streamable HTTP or stdio."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connscale.server.config import ServerConfig

HELP = "serve an MCP app: yours (--app) or the reference tools, over TCP or Streamable HTTP"
DESCRIPTION = """\
Serve an MCP app with connscale's engines, workers and limits. TARGET names a
connscale.App (or any object serving the same surface): package.module:attribute or
path/to/file.py:attribute. Without --app the reference tools are served: echo,
consult_experts and get_expert_responses.

  connscale serve --app myserver.py:app --transport http --port 8000
  connscale serve --app mypackage.server:app --workers 4 --transport http
  connscale serve --app myserver.py:app --transport stdio     (as a desktop host runs it)
  connscale serve --transport tcp --port 0 --ready-file ready.json

TCP speaks newline-delimited JSON-RPC (MCP's stdio framing over a socket); HTTP speaks MCP
Streamable HTTP at /mcp. --ready-file gets {transport, engine, host, port, supervisor_pid,
pids} once every worker listens; with --stats-dir, SIGUSR1 makes each worker write
DIR/worker-<pid>.json. SIGTERM or Ctrl-C stops the server cleanly (exit 0): requests
already read are answered first.
HTTP binds 127.0.0.1 unless --host says otherwise, answers only to loopback Host names
there (421 for others: DNS rebinding), refuses foreign Origin headers (403), and with
--token-file PATH asks every request for that bearer token (401 otherwise).
Behind a load balancer, start every server with the same --session-key-file: any of
them then serves any request of any session (docs/DEPLOY.md).
A wrong --app is one line of error and exit code 2.
"""


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, not {text}")
    return value


def _byte_count(text: str) -> int:
    """An argparse type: a whole number of bytes >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of bytes: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of bytes >= 0, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from connscale.core.protocol.limits import ServerLimits
    from connscale.server.config import ServerConfig

    # Defaults come from the configuration types: one source of truth per option.
    config = ServerConfig()
    limits = ServerLimits()
    parser.add_argument(
        "--app",
        metavar="TARGET",
        help="what to serve: package.module:attribute or path/to/file.py:attribute "
        "(default: the reference tools)",
    )
    parser.add_argument(
        "--transport",
        choices=("tcp", "http", "stdio"),
        default=config.transport,
        help="tcp: newline JSON-RPC on a port; http: Streamable HTTP at /mcp; stdio: one "
        "session on stdin/stdout, as desktop hosts launch servers (default tcp)",
    )
    parser.add_argument(
        "--host", default=config.host, help=f"address to bind (default {config.host})"
    )
    parser.add_argument(
        "--port", type=int, default=config.port, help="port; 0 picks a free one (default)"
    )
    parser.add_argument("--engine", choices=("epoll", "asyncio"), default=config.engine)
    parser.add_argument(
        "--workers", type=int, default=config.workers, help="worker processes (SO_REUSEPORT)"
    )
    parser.add_argument(
        "--start-method",
        choices=("fork", "spawn"),
        default=config.start_method,
        help="how workers start: fork shares the loaded app and modules copy-on-write "
        "(default); spawn imports everything anew in each worker",
    )
    parser.add_argument("--ready-file", type=Path, help="write JSON here once listening")
    parser.add_argument("--stats-dir", type=Path, help="SIGUSR1 writes worker-<pid>.json here")
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default=config.loop,
        help="event loop (auto: uvloop for the asyncio engine when installed, the standard "
        "loop for epoll, which needs only one reader; uvloop under epoll sets up HTTP "
        "sessions with about 10%% less CPU for about 1 MB more per worker)",
    )
    parser.add_argument(
        "--sse-responses",
        action="store_true",
        help="HTTP: answer every POST as an event stream (default: JSON unless the call "
        "sends progress or requests while it runs)",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="HTTP: an Origin to accept besides localhost (repeatable)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=None,
        metavar="NAME",
        help="HTTP: a Host name to answer to, any port (repeatable; default: the loopback "
        "names when bound to loopback, else any)",
    )
    parser.add_argument(
        "--session-max-age",
        type=_seconds,
        default=config.session_max_age,
        metavar="SECONDS",
        help="HTTP: seconds a session id stays valid after initialize; 0 = forever "
        f"(default {config.session_max_age:g})",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="HTTP: require 'Authorization: Bearer <token>', the token read from PATH",
    )
    parser.add_argument(
        "--session-key-file",
        type=Path,
        default=config.session_key_file,
        metavar="PATH",
        help="keys every server of a fleet shares, so that any of them serves any session "
        "(session ids, list cursors, requestState): one key a line, 64 hex digits "
        "(openssl rand -hex 32), the current key first, then previous keys still accepted; "
        "# comments; default: a random key per server",
    )
    parser.add_argument("--experts", help="expert plugins: 'package.module:callable,...'")
    parser.add_argument(
        "--experts-timeout",
        type=float,
        default=config.experts_timeout,
        help="seconds per consultation",
    )
    group = parser.add_argument_group("limits (see docs/SERVER.md)")
    group.add_argument("--max-frame-bytes", type=int, default=limits.max_frame_bytes)
    group.add_argument("--max-json-depth", type=int, default=limits.max_json_depth)
    group.add_argument(
        "--max-json-items",
        type=int,
        default=limits.max_json_items,
        help="JSON values in one message's params",
    )
    group.add_argument(
        "--max-pending",
        type=int,
        default=limits.max_pending_per_session,
        help="requests in flight per session",
    )
    group.add_argument(
        "--max-connections",
        type=int,
        default=limits.max_connections,
        help="per worker; 0 = from the open-files limit",
    )
    group.add_argument(
        "--handshake-timeout", type=_seconds, default=limits.handshake_timeout, metavar="SECONDS"
    )
    group.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="close a session that sends nothing for this long; 0 = off (default)",
    )
    group.add_argument(
        "--http-keepalive-timeout",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="HTTP: seconds a kept-alive connection may wait for its next request; "
        "0 = the handshake timeout (default)",
    )
    group.add_argument(
        "--socket-send-buffer",
        type=_byte_count,
        default=config.socket_send_buffer,
        metavar="BYTES",
        help="SO_SNDBUF per connection, caps what a client that never reads holds in the "
        "kernel; 0 = kernel autotuning (default)",
    )
    group.add_argument("--write-high-water", type=int, default=limits.write_high_water)
    group.add_argument("--write-low-water", type=int, default=limits.write_low_water)
    group.add_argument("--max-write-buffer", type=int, default=limits.max_write_buffer)


def build_config(args: argparse.Namespace) -> ServerConfig:
    """The ``ServerConfig`` the parsed arguments ask for (reads the token file, if any)."""
    from connscale.core.protocol.limits import ServerLimits
    from connscale.errors import ConfigurationError
    from connscale.server.config import ServerConfig, read_session_key_file, read_token_file

    bearer_token = None
    if args.token_file is not None:
        if args.transport != "http":
            raise ConfigurationError("--token-file needs --transport http")
        bearer_token = read_token_file(args.token_file)
    limits = ServerLimits(
        max_frame_bytes=args.max_frame_bytes,
        max_json_depth=args.max_json_depth,
        max_json_items=args.max_json_items,
        max_pending_per_session=args.max_pending,
        max_connections=args.max_connections,
        handshake_timeout=args.handshake_timeout,
        idle_timeout=args.idle_timeout or None,  # 0: off
        write_high_water=args.write_high_water,
        write_low_water=args.write_low_water,
        max_write_buffer=args.max_write_buffer,
    )
    if args.session_key_file is not None:
        read_session_key_file(args.session_key_file)  # a bad file: one line, before serving
    return ServerConfig(
        app=args.app,
        session_key_file=args.session_key_file,
        start_method=args.start_method,
        allowed_hosts=None if args.allowed_host is None else tuple(args.allowed_host),
        session_max_age=args.session_max_age or None,  # 0: forever
        transport=args.transport,
        host=args.host,
        port=args.port,
        engine=args.engine,
        workers=args.workers,
        ready_file=args.ready_file,
        stats_dir=args.stats_dir,
        limits=limits,
        loop=args.loop,
        sse_responses=args.sse_responses,
        allowed_origins=tuple(args.allowed_origin),
        experts=args.experts,
        experts_timeout=args.experts_timeout,
        http_keepalive_timeout=args.http_keepalive_timeout or None,  # 0: the handshake timeout
        socket_send_buffer=args.socket_send_buffer,
        bearer_token=bearer_token,
    )


def run(args: argparse.Namespace) -> int:
    from connscale.server.supervisor import serve

    config = build_config(args)
    if config.app is not None and config.start_method == "fork":
        # Load it before anything starts, so that a wrong target is one line and exit 2.
        from connscale.server.loading import load_app

        return serve(config, load_app(config.app))
    return serve(config)
