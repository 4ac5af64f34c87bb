"""Marginal server memory per idle initialized MCP session, and server CPU per session setup.

Starts ``connscale serve`` in a subprocess, opens idle initialized sessions over loopback in
plateaus (default 1K, 2K, 4K, 8K), and at each plateau (once the server reports that many
sessions) takes the median of several USS readings of the server process. The marginal
bytes per session is the least-squares slope over the plateaus; the fixed overhead (the
server with zero sessions, measured in the same run) is the intercept. Setup CPU is the
server's user+system CPU time spent during each ramp divided by the sessions it added.

    .venv/bin/python -m benchmarks.server_memory                # all scenarios
    .venv/bin/python -m benchmarks.server_memory --plateaus 500,1000 --scenarios epoll-tcp

Scenarios: ``epoll-tcp``, ``asyncio-tcp`` (uvloop when installed), ``asyncio-tcp-stdlib``
(the standard loop), ``epoll-http-sse``, ``epoll-http-sse-uvloop`` (the epoll engine inside
uvloop instead of the standard loop) and ``asyncio-http-sse`` (each session: a POSTed
``initialize`` on a short connection, then a GET event stream held open).

``--app TARGET`` serves that App instead of the reference tools (the same target
``connscale serve --app`` takes). ``--hold task`` or ``--hold request`` (TCP scenarios)
leaves one call in flight per session, from ``benchmarks/held_app.py``: a running task
(``wait``), or a running task awaiting a server-to-client request the client never answers
(``ask``). The slope then is an idle session plus what that call costs while it lasts:

    .venv/bin/python -m benchmarks.server_memory --scenarios epoll-tcp --hold request
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._serving import session_id_in
from connscale.bench.measure import cpu_seconds
from connscale.bench.orchestrator import wait_ready_file
from connscale.memory import sample
from connscale.profile import scaling

INIT = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}\n'
    b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
)
INIT_BODY = INIT.split(b"\n")[0]
# The client that holds calls declares elicitation, so that ``ask`` may send its request.
INIT_ELICITING = INIT.replace(b'"capabilities":{}', b'"capabilities":{"elicitation":{}}')
HELD_APP = str(Path(__file__).with_name("held_app.py")) + ":app"
HOLD_TOOLS = {"task": "wait", "request": "ask"}

SCENARIOS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "epoll-tcp": ("epoll", "tcp", ()),
    "asyncio-tcp": ("asyncio", "tcp", ()),
    "asyncio-tcp-stdlib": ("asyncio", "tcp", ("--loop", "asyncio")),
    "epoll-http-sse": ("epoll", "http", ()),
    "epoll-http-sse-uvloop": ("epoll", "http", ("--loop", "uvloop")),
    "asyncio-http-sse": ("asyncio", "http", ()),
}
TARGETS = {"tcp-epoll": 256, "tcp-asyncio": 1536, "http": 1024}


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    pid: int
    stats_dir: Path

    def sessions(self) -> int:
        for old in self.stats_dir.glob("*.json"):
            old.unlink()
        os.kill(self.pid, signal.SIGUSR1)
        path = self.stats_dir / f"worker-{self.pid}.json"
        deadline = time.monotonic() + 10
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("server wrote no statistics")
            time.sleep(0.01)
        return int(json.loads(path.read_text())["sessions"])

    def cpu_seconds(self) -> float:
        return cpu_seconds([self.pid])


def start(
    engine: str,
    transport: str,
    extra: tuple[str, ...],
    workdir: Path,
    app: str | None = None,
    *,
    handshake_timeout: float = 600.0,
) -> Server:
    ready = workdir / "ready.json"
    stats_dir = workdir / "stats"
    command = [
        sys.executable,
        "-m",
        "connscale",
        "serve",
        "--engine",
        engine,
        "--transport",
        transport,
    ]
    command += [
        "--ready-file",
        str(ready),
        "--stats-dir",
        str(stats_dir),
        "--handshake-timeout",
        str(handshake_timeout),
        *extra,
    ]
    if app is not None:
        command += ["--app", app]
    process = subprocess.Popen(command)
    info = wait_ready_file(ready, process, name="connscale serve", timeout=30)
    return Server(process, info["port"], info["pids"][0], stats_dir)


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("server closed a benchmark connection")
        data += chunk
    return data


def held_call(tool: str) -> bytes:
    """A tools/call of ``tool`` that asks for progress, so its start can be seen."""
    return (
        b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"%b",'
        b'"_meta":{"progressToken":1}}}\n' % tool.encode()
    )


def open_tcp_sessions(
    port: int, count: int, held: list[socket.socket], hold: str | None = None
) -> None:
    # Sessions are opened 200 at a time, so that the server is never sent more handshakes
    # than its backlog holds; a held call is running once its progress notification came
    # (``ask``: once its elicitation request came too).
    expected = {None: b"\n", "task": b"notifications/progress", "request": b"elicitation/create"}
    opening = INIT if hold is None else INIT_ELICITING + held_call(HOLD_TOOLS[hold])
    batch: list[socket.socket] = []

    def settle() -> None:
        for pending in batch:
            read_until(pending, expected[hold])
        held.extend(batch)
        batch.clear()

    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(opening)
        batch.append(sock)
        if len(batch) == 200:
            settle()
    settle()


def open_http_sessions(port: int, count: int, held: list[socket.socket]) -> None:
    post = (
        b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"accept: application/json, text/event-stream\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%b" % (len(INIT_BODY), INIT_BODY)
    )
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as short:
            short.sendall(post)
            token = session_id_in(read_until(short, b"\r\n\r\n"))
        stream = socket.create_connection(("127.0.0.1", port), timeout=30)
        stream.sendall(
            b"GET /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n"
            b"mcp-session-id: " + token + b"\r\n\r\n"
        )
        read_until(stream, b"\r\n\r\n")
        held.append(stream)


def settled_uss(server: Server, expected: int, samples: int = 5) -> float:
    deadline = time.monotonic() + 30
    while server.sessions() != expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"server never reached {expected} sessions")
        time.sleep(0.05)
    readings = []
    for _ in range(samples):
        uss = sample(server.pid).uss
        if uss is None:
            raise RuntimeError("USS is not available on this system")
        readings.append(uss)
        time.sleep(0.1)
    return float(statistics.median(readings))


def run_scenario(
    name: str,
    plateaus: list[int],
    app: str | None = None,
    hold: str | None = None,
    handshake_timeout: float = 600.0,
) -> dict[str, Any]:
    engine, transport, extra = SCENARIOS[name]
    if hold is not None and transport != "tcp":
        raise SystemExit(f"--hold needs a TCP scenario, not {name}")
    held: list[socket.socket] = []
    with tempfile.TemporaryDirectory(prefix="connscale-bench-") as workdir:
        chosen = HELD_APP if hold else app
        server = start(
            engine, transport, extra, Path(workdir), chosen, handshake_timeout=handshake_timeout
        )
        try:
            points = [(0.0, settled_uss(server, 0))]
            cpu_per_session: list[float] = []
            opened = 0
            for target in plateaus:
                cpu_before = server.cpu_seconds()
                if transport == "tcp":
                    open_tcp_sessions(server.port, target - opened, held, hold)
                else:
                    open_http_sessions(server.port, target - opened, held)
                if handshake_timeout < 60:  # let the sessions' handshake timers fire first
                    time.sleep(handshake_timeout + 1.0)
                uss = settled_uss(server, target)
                cpu_per_session.append((server.cpu_seconds() - cpu_before) / (target - opened))
                opened = target
                points.append((float(target), uss))
        finally:
            for sock in held:
                sock.close()
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(30)
    fit = scaling(points)
    return {
        "scenario": name if hold is None else f"{name}, a {hold} held per session",
        "marginal_bytes": round(fit.marginal_bytes, 1),
        "fixed_overhead_bytes": round(fit.fixed_overhead),
        "r_squared": round(fit.r_squared, 4),
        "step_marginals": [round(step, 1) for step in fit.step_marginals],
        "setup_cpu_us": round(statistics.median(cpu_per_session) * 1e6, 1),
        "points": [[int(x), int(y)] for x, y in points],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plateaus", default="1000,2000,4000,8000")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--app", help="serve this App (file.py:attribute or module:attribute)")
    parser.add_argument(
        "--hold",
        choices=sorted(HOLD_TOOLS),
        help="TCP: keep one call in flight per session (task: a running tool; request: a tool "
        "awaiting the client's answer to elicitation/create)",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=600.0,
        help="the server's handshake timeout (default 600 s: every session's handshake timer, "
        "8 B in the server's timer wheel, is still pending when memory is read); under 60 s, "
        "each plateau is read that long after its ramp, once the timers have fired",
    )
    args = parser.parse_args(argv)
    plateaus = [int(value) for value in args.plateaus.split(",")]
    names = args.scenarios.split(",")
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    results = [
        run_scenario(name, plateaus, args.app, args.hold, args.handshake_timeout) for name in names
    ]
    print("| scenario | marginal B/session | fixed overhead | R² | step marginals | setup CPU µs |")
    print("|---|---|---|---|---|---|")
    for r in results:
        steps = ", ".join(f"{step:.0f}" for step in r["step_marginals"])
        fixed_mb = r["fixed_overhead_bytes"] / 1e6
        print(
            f"| {r['scenario']} | {r['marginal_bytes']:.0f} | {fixed_mb:.1f} MB "
            f"| {r['r_squared']} | {steps} | {r['setup_cpu_us']:.0f} |"
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
