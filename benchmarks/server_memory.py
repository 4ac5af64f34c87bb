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
(the standard loop), ``epoll-http-sse`` and ``asyncio-http-sse`` (each session: a POSTed
``initialize`` on a short connection, then a GET event stream held open).
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

from connscale.bench.orchestrator import wait_ready_file
from connscale.memory import sample
from connscale.profile import scaling

INIT = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}\n'
    b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
)
INIT_BODY = INIT.split(b"\n")[0]

SCENARIOS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "epoll-tcp": ("epoll", "tcp", ()),
    "asyncio-tcp": ("asyncio", "tcp", ()),
    "asyncio-tcp-stdlib": ("asyncio", "tcp", ("--loop", "asyncio")),
    "epoll-http-sse": ("epoll", "http", ()),
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
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def start(engine: str, transport: str, extra: tuple[str, ...], workdir: Path) -> Server:
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
        "600",
        *extra,
    ]
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


def open_tcp_sessions(port: int, count: int, held: list[socket.socket]) -> None:
    batch: list[socket.socket] = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(INIT)
        batch.append(sock)
        if len(batch) == 200:
            for pending in batch:
                read_until(pending, b"\n")
            held.extend(batch)
            batch = []
    for pending in batch:
        read_until(pending, b"\n")
    held.extend(batch)


def open_http_sessions(port: int, count: int, held: list[socket.socket]) -> None:
    post = (
        b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"accept: application/json, text/event-stream\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%b" % (len(INIT_BODY), INIT_BODY)
    )
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as short:
            short.sendall(post)
            head = read_until(short, b"\r\n\r\n").split(b"\r\n\r\n", 1)[0]
        token = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"mcp-session-id:")
        )
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


def run_scenario(name: str, plateaus: list[int]) -> dict[str, Any]:
    engine, transport, extra = SCENARIOS[name]
    held: list[socket.socket] = []
    with tempfile.TemporaryDirectory(prefix="connscale-bench-") as workdir:
        server = start(engine, transport, extra, Path(workdir))
        try:
            points = [(0.0, settled_uss(server, 0))]
            cpu_per_session: list[float] = []
            opened = 0
            for target in plateaus:
                cpu_before = server.cpu_seconds()
                if transport == "tcp":
                    open_tcp_sessions(server.port, target - opened, held)
                else:
                    open_http_sessions(server.port, target - opened, held)
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
        "scenario": name,
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
    args = parser.parse_args(argv)
    plateaus = [int(value) for value in args.plateaus.split(",")]
    results = [run_scenario(name, plateaus) for name in args.scenarios.split(",")]
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
