"""Server CPU per HTTP session setup, against a floor that answers fixed bytes, same run.

One session setup, as ``server_memory`` makes them: ``initialize`` POSTed on a connection
that closes after its answer, then a GET event stream on a new connection, held open. Each
client (a thread) opens sessions one after another; the server's CPU time over a round
(read from ``/proc/PID/schedstat`` in nanoseconds, split into user and system from
``/proc/PID/stat``) is divided by the sessions the round opened. Medians over rounds.

``--clients 1,8`` (the default) measures two patterns. One client at a time: the server
sleeps after each answer and wakes for the next connection, its caches cooled by the
client and the kernel in between (``server_memory`` opens sessions so). Eight at once: the
server finds several connections per wake-up and stays warm, as a loaded server does:
what a worker's setups per second are made of. Any list of counts works (``--clients
1,2,4,8,16`` draws the curve). Each row also says how busy the server was (its CPU time
over the round's wall time) and how many sessions a second the clients opened: CPU per
setup sets a worker's capacity where the server is busy; where it is mostly idle, the
figure is paid with CPU the worker had to spare.

Servers:

* ``connscale``: ``connscale serve --engine epoll --transport http`` on the standard loop,
  and ``connscale-uvloop`` with ``--loop uvloop``;
* ``floor``: the same client pattern answered with fixed bytes by the epoll engine's I/O
  alone (bare fds in one ``select.epoll`` set that is a reader of the asyncio loop, as the
  engine does it: accept, read, write, close) on the standard loop, and ``floor-uvloop``
  inside uvloop. No parsing, no JSON, no session, no sealing: what the sockets, the kernel
  and the loop cost, below which no server of this design goes on this machine.

    .venv/bin/python -m benchmarks.http_setup
    .venv/bin/python -m benchmarks.http_setup --servers connscale,floor --rounds 7 --sessions 1500

Loopback only; each server holds at most ``warmup + rounds * sessions`` connections, and
they are closed before the next server starts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from benchmarks._serving import free_port
from benchmarks.server_memory import open_http_sessions, start
from connscale.bench.orchestrator import wait_ready_file

SERVERS = ("connscale", "connscale-uvloop", "floor", "floor-uvloop")
_FLOOR_POST_ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: %b\r\n"
    b"connection: close\r\ncontent-length: 200\r\n\r\n{%b}" % (b"x" * 100, b" " * 198)
)
_FLOOR_GET_ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"cache-control: no-cache, no-transform\r\ntransfer-encoding: chunked\r\n"
    b"mcp-session-id: %b\r\n\r\n" % (b"x" * 100)
)


def serve_floor(port: int, ready: Path, loop_name: str) -> None:
    """Fixed answers through bare fds in one epoll set inside the asyncio loop (the epoll
    engine's I/O): a POST is answered and closed, a GET is answered and held."""
    import asyncio

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    listener.setblocking(False)
    epoll = select.epoll()
    epoll.register(listener.fileno(), select.EPOLLIN)
    buffer = bytearray(65536)

    def read(fd: int) -> None:
        try:
            size = os.readv(fd, (buffer,))
        except BlockingIOError:
            return
        if size and buffer.startswith(b"POST"):
            os.write(fd, _FLOOR_POST_ANSWER)
        elif size:
            os.write(fd, _FLOOR_GET_ANSWER)
            return
        epoll.unregister(fd)
        os.close(fd)

    def on_ready() -> None:
        for _ in range(64):
            ready_fds = epoll.poll(0, 1024)
            if not ready_fds:
                return
            for fd, _events in ready_fds:
                if fd != listener.fileno():
                    read(fd)
                    continue
                try:
                    accepted, _address = listener._accept()  # type: ignore[attr-defined]
                except BlockingIOError:
                    continue
                os.set_blocking(accepted, False)
                epoll.register(accepted, select.EPOLLIN | select.EPOLLRDHUP)
                read(accepted)

    async def main() -> None:
        asyncio.get_running_loop().add_reader(epoll.fileno(), on_ready)
        ready.write_text(json.dumps({"port": port, "pids": [os.getpid()]}))
        await asyncio.Event().wait()

    if loop_name == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


@dataclass
class Figures:
    server: str
    clients: int
    setup_cpu_us: float
    user_us: float
    system_us: float
    busy_percent: float  # the server's CPU time over the rounds' wall time
    setups_per_second: float
    rounds_us: list[float]


def _on_cpu_seconds(pid: int) -> float:
    # Nanoseconds on the CPU (user and system together); psutil's times come in clock ticks.
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def _user_system_seconds(pid: int) -> tuple[float, float]:
    times = psutil.Process(pid).cpu_times()
    return times.user, times.system


def _start(server: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """The server's process, port and the pid that serves."""
    if server.startswith("connscale"):
        extra = ("--loop", "uvloop") if server.endswith("uvloop") else ("--loop", "asyncio")
        served = start("epoll", "http", extra, workdir)
        return served.process, served.port, served.pid
    loop_name = "uvloop" if server.endswith("uvloop") else "asyncio"
    port, ready = free_port(), workdir / "floor.json"
    command = [sys.executable, "-m", "benchmarks.http_setup", "--serve-floor"]
    process = subprocess.Popen([*command, str(port), str(ready), loop_name])
    info = wait_ready_file(ready, process, name=server, timeout=30)
    return process, port, int(info["pids"][0])


def _open_concurrently(port: int, sessions: int, clients: int, held: list[socket.socket]) -> int:
    """``sessions`` setups by ``clients`` threads at once; returns how many were made."""
    each = sessions // clients
    opened: list[list[socket.socket]] = [[] for _ in range(clients)]
    failures: list[BaseException] = []

    def client(mine: list[socket.socket]) -> None:
        try:
            open_http_sessions(port, each, mine)
        except BaseException as exc:  # reported below, after every thread ended
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(mine,)) for mine in opened]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for mine in opened:
        held.extend(mine)
    if failures:
        raise failures[0]
    return each * clients


def measure(server: str, clients: int, warmup: int, rounds: int, sessions: int) -> Figures:
    held: list[socket.socket] = []
    per_round: list[float] = []
    user: list[float] = []
    system: list[float] = []
    busy: list[float] = []
    rates: list[float] = []
    with tempfile.TemporaryDirectory(prefix="connscale-setup-") as workdir:
        process, port, pid = _start(server, Path(workdir))
        try:
            open_http_sessions(port, warmup, held)
            for index in range(rounds):
                on_cpu_before = _on_cpu_seconds(pid)
                user_before, system_before = _user_system_seconds(pid)
                started = time.perf_counter()
                opened = _open_concurrently(port, sessions, clients, held)
                wall = time.perf_counter() - started
                user_after, system_after = _user_system_seconds(pid)
                on_cpu = _on_cpu_seconds(pid) - on_cpu_before
                per_round.append(on_cpu / opened * 1e6)
                busy.append(100 * on_cpu / wall)
                rates.append(opened / wall)
                user.append((user_after - user_before) / opened * 1e6)
                system.append((system_after - system_before) / opened * 1e6)
                print(
                    f"{server}, {clients} client(s): round {index + 1}/{rounds}: "
                    f"{per_round[-1]:.1f} µs a setup",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            for sock in held:
                sock.close()
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    return Figures(
        server,
        clients,
        round(statistics.median(per_round), 1),
        round(statistics.median(user), 1),
        round(statistics.median(system), 1),
        round(statistics.median(busy), 1),
        round(statistics.median(rates)),
        [round(value, 1) for value in per_round],
    )


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed <= hard or (hard == resource.RLIM_INFINITY and soft < needed):
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    elif soft < needed:
        raise SystemExit(
            f"this run holds {needed} connections but the open-files limit is {hard}: "
            "lower --rounds or --sessions"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--rounds", type=int, default=7, help="rounds measured (median)")
    parser.add_argument("--sessions", type=int, default=1500, help="sessions a round")
    parser.add_argument("--warmup", type=int, default=300, help="sessions before measuring")
    parser.add_argument(
        "--clients",
        default="1,8",
        help="clients opening sessions at once, one measurement each (comma-separated)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--serve-floor", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_floor:
        serve_floor(int(args.serve_floor[0]), Path(args.serve_floor[1]), args.serve_floor[2])
        return 0
    servers = [name for name in args.servers.split(",") if name]
    unknown = [name for name in servers if name not in SERVERS]
    if unknown:
        parser.error(f"unknown server {unknown[0]!r}; choose from {', '.join(SERVERS)}")
    try:
        client_counts = [int(value) for value in args.clients.split(",") if value]
    except ValueError:
        parser.error(f"--clients takes whole numbers, got {args.clients!r}")
    if not client_counts or min(client_counts) < 1:
        parser.error("--clients needs at least one count, each >= 1")
    if args.rounds < 1 or args.warmup < 0 or args.sessions < max(client_counts):
        parser.error("--rounds must be >= 1, --warmup >= 0, --sessions >= every --clients")
    _raise_fd_limit(args.warmup + args.rounds * args.sessions + 64)
    results = [
        measure(name, clients, args.warmup, args.rounds, args.sessions)
        for clients in client_counts
        for name in servers
    ]
    floors = {(row.server, row.clients): row.setup_cpu_us for row in results}
    print(
        "| server | clients at once | setup CPU µs | user µs | system µs | above its floor µs "
        "| server busy | setups/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in results:
        floor = floors.get(
            ("floor-uvloop" if row.server.endswith("uvloop") else "floor", row.clients)
        )
        above = "-"
        if floor is not None and not row.server.startswith("floor"):
            above = f"{row.setup_cpu_us - floor:.0f}"
        print(
            f"| {row.server} | {row.clients} | {row.setup_cpu_us:.1f} | {row.user_us:.0f} "
            f"| {row.system_us:.0f} | {above} | {row.busy_percent:.0f}% "
            f"| {row.setups_per_second:,.0f} |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(figures) for figures in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
