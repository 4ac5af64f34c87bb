"""``connscale serve``: run the reference MCP server (TCP or Streamable HTTP)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connscale.server.config import ServerConfig

HELP = "run the reference MCP server (TCP newline-JSON or Streamable HTTP)"
DESCRIPTION = """\
Run the reference MCP server: tools `echo`, `consult_experts` and `get_expert_responses`.

  connscale serve --transport tcp --port 0 --ready-file ready.json
  connscale serve --transport http --engine asyncio --workers 2 --port 8000

TCP speaks newline-delimited JSON-RPC (MCP's stdio framing over a socket); HTTP speaks MCP
Streamable HTTP at /mcp. --ready-file gets {transport, engine, host, port, supervisor_pid,
pids} once every worker listens; with --stats-dir, SIGUSR1 makes each worker write
DIR/worker-<pid>.json. SIGTERM or Ctrl-C stops the server cleanly (exit 0).
HTTP binds 127.0.0.1 unless --host says otherwise, refuses foreign Origin headers (403),
and with --token-file PATH asks every request for that bearer token (401 otherwise).
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
    parser.add_argument("--transport", choices=("tcp", "http"), default="tcp")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--engine", choices=("epoll", "asyncio"), default="epoll")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (SO_REUSEPORT)")
    parser.add_argument("--ready-file", type=Path, help="write JSON here once listening")
    parser.add_argument("--stats-dir", type=Path, help="SIGUSR1 writes worker-<pid>.json here")
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop (auto: uvloop for the asyncio engine when installed)",
    )
    parser.add_argument("--sse-responses", action="store_true", help="HTTP: answer POSTs as SSE")
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="HTTP: an Origin to accept besides localhost (repeatable)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="HTTP: require 'Authorization: Bearer <token>', the token read from PATH",
    )
    parser.add_argument("--experts", help="expert plugins: 'package.module:callable,...'")
    parser.add_argument(
        "--experts-timeout", type=float, default=2.0, help="seconds per consultation"
    )
    limits = parser.add_argument_group("limits (see docs/SERVER.md)")
    limits.add_argument("--max-frame-bytes", type=int, default=1 << 20)
    limits.add_argument("--max-json-depth", type=int, default=64)
    limits.add_argument(
        "--max-json-items", type=int, default=1 << 15, help="JSON values in one message's params"
    )
    limits.add_argument(
        "--max-pending", type=int, default=64, help="requests in flight per session"
    )
    limits.add_argument(
        "--max-connections", type=int, default=0, help="per worker; 0 = from open-files limit"
    )
    limits.add_argument("--handshake-timeout", type=float, default=10.0)
    limits.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="close a session that sends nothing for this long; 0 = off (default)",
    )
    limits.add_argument(
        "--http-keepalive-timeout",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="HTTP: seconds a kept-alive connection may wait for its next request; "
        "0 = the handshake timeout (default)",
    )
    limits.add_argument(
        "--socket-send-buffer",
        type=_byte_count,
        default=0,
        metavar="BYTES",
        help="SO_SNDBUF per connection, caps what a client that never reads holds in the "
        "kernel; 0 = kernel autotuning (default)",
    )
    limits.add_argument("--write-high-water", type=int, default=256 << 10)
    limits.add_argument("--write-low-water", type=int, default=64 << 10)
    limits.add_argument("--max-write-buffer", type=int, default=4 << 20)


def build_config(args: argparse.Namespace) -> ServerConfig:
    """The ``ServerConfig`` the parsed arguments ask for (reads the token file, if any)."""
    from connscale.core.protocol.limits import ServerLimits
    from connscale.errors import ConfigurationError
    from connscale.server.app import read_token_file
    from connscale.server.config import ServerConfig

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
    return ServerConfig(
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

    return serve(build_config(args))
