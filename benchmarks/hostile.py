"""Hostile clients against ``connscale serve``: the server's memory against its bound, and
what the other clients feel (ping p99 against a calm baseline measured in the same run).

For each engine, one server with small, documented limits. Probe sessions ping at a steady
rate all the time (in this process); each scenario's hostile clients run in a separate
process for ``--seconds``. The server's USS is sampled every 50 ms: the figure is the peak
above its level just before the scenario started, held to the bound the limits imply
(``bound_bytes``). A closing calm phase shows how noisy the baseline is. Then the faults:
kill -9 of one of two workers (responses lost by sessions on the other worker) and SIGTERM
with pipelined requests in flight (responses lost).

    .venv/bin/python -m benchmarks.hostile                       # both engines, 5 s each
    .venv/bin/python -m benchmarks.hostile --engines epoll --seconds 3 --out hostile.json

Scenarios: ``non-readers`` (pipeline pings, never read), ``huge-lines`` (endless lines with
no newline), ``slowloris`` (a byte a second of ``initialize``), ``connection-flood`` (far
more connections than the per-worker limit), ``resets`` (half a message, then RST).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import resource
import signal
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks._serving import INIT, INITIALIZED, McpClient, percentile, ping, served
from connscale.errors import ProcessGoneError
from connscale.memory import sample

KIB = 1 << 10
#: The limits the server runs with here (small, so that a few clients reach them).
LIMITS: dict[str, int | float] = {
    "max_frame_bytes": 64 * KIB,
    "max_connections": 1000,
    "handshake_timeout": 2.0,
    "write_high_water": 64 * KIB,
    "write_low_water": 16 * KIB,
    "max_write_buffer": 256 * KIB,
}
#: What one open connection may cost the server besides its buffers: the epoll engine's
#: session slot and array entries (~0.2 KB), the asyncio engine's protocol and transport
#: (~1.5-2 KB), the kernel's socket is not in the process's USS. Generous on purpose.
PER_CONNECTION = 4 * KIB
#: One read of the engines (the epoll engine reads 64 KiB; uvloop up to 256 KiB).
READ_CHUNK = 256 * KIB
HOSTILE_CONNECTIONS = {"non-readers": 50, "huge-lines": 50, "slowloris": 500, "resets": 1}
FLOOD_CONNECTIONS = 3000
RESETS_IN_FLIGHT = 256  # accepts handled per wakeup: what can be open at once
#: SO_SNDBUF per connection (``ServerConfig.socket_send_buffer``): a non-reader is paused
#: after this much kernel buffer plus the high water mark, instead of several MiB.
SEND_BUFFER = 64 * KIB


def bound_bytes(scenario: str) -> int:
    """The most the scenario may add to the server's memory, from the limits above."""
    count = HOSTILE_CONNECTIONS.get(scenario, 0)
    if scenario == "non-readers":  # output capped at max_write_buffer, input at one frame
        per = int(LIMITS["max_write_buffer"] + LIMITS["max_frame_bytes"]) + READ_CHUNK
        return count * (per + PER_CONNECTION)
    if scenario == "huge-lines":  # never buffered whole: at most one frame plus one read
        return count * (int(LIMITS["max_frame_bytes"]) + READ_CHUNK + PER_CONNECTION)
    if scenario == "slowloris":  # a partial initialize line each, closed at the timeout
        return count * (len(INIT) + PER_CONNECTION)
    if scenario == "connection-flood":
        return int(LIMITS["max_connections"]) * PER_CONNECTION
    if scenario == "resets":
        return RESETS_IN_FLIGHT * PER_CONNECTION
    return 0


# -- hostile clients (a separate process) ------------------------------------------------------


def _connect(port: int, receive_buffer: int = 0) -> socket.socket:
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(2.0)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def _try_send(sock: socket.socket, data: bytes) -> bool:
    """Send what the kernel takes; False when the server has closed the connection."""
    try:
        sock.send(data)
    except BlockingIOError:
        pass
    except OSError:
        return False
    return True


def _hostile(scenario: str, port: int, seconds: float, report: Connection) -> None:
    """Run one scenario's hostile clients for ``seconds``; send back what happened."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):  # the flood needs thousands of sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    deadline = time.monotonic() + seconds
    counts = {"connections": 0, "closed_by_server": 0}
    socks: list[socket.socket] = []

    def opened(receive_buffer: int = 0) -> socket.socket | None:
        try:
            sock = _connect(port, receive_buffer)
        except OSError:
            counts["closed_by_server"] += 1
            return None
        counts["connections"] += 1
        return sock

    def keep(count: int, first: bytes, each: Callable[[socket.socket], bool], pause: float) -> None:
        socks[:] = [s for s in (opened(4096) for _ in range(count)) if s is not None]
        for sock in socks:
            _try_send(sock, first)
        while time.monotonic() < deadline:
            for index, sock in enumerate(socks):
                if not each(sock):
                    counts["closed_by_server"] += 1
                    sock.close()
                    replacement = opened(4096)
                    if replacement is None:
                        continue
                    _try_send(replacement, first)
                    socks[index] = replacement
            time.sleep(pause)

    pings = b"".join(ping(i) for i in range(1000))
    line = b"x" * (64 * KIB)
    trickle_at = [0] * 2  # byte index into INIT, shared by all slowloris connections

    def slow_byte(sock: socket.socket) -> bool:
        if trickle_at[0] >= len(INIT) - 1:
            return _try_send(sock, b"")
        return _try_send(sock, INIT[trickle_at[0] : trickle_at[0] + 1])

    count = HOSTILE_CONNECTIONS.get(scenario, 0)
    if scenario == "non-readers":
        keep(count, INIT + INITIALIZED, lambda s: _try_send(s, pings), 0.01)
    elif scenario == "huge-lines":
        keep(count, b"", lambda s: _try_send(s, line), 0.01)
    elif scenario == "slowloris":
        socks[:] = [s for s in (opened() for _ in range(count)) if s is not None]
        while time.monotonic() < deadline:
            for index, sock in enumerate(socks):
                if not slow_byte(sock) or _closed(sock):
                    counts["closed_by_server"] += 1
                    sock.close()
                    socks[index] = opened() or sock
            trickle_at[0] += 1
            time.sleep(1.0)  # a byte a second
    elif scenario == "connection-flood":
        for _ in range(FLOOD_CONNECTIONS):
            held = opened()
            if held is not None:
                socks.append(held)
        while time.monotonic() < deadline:
            time.sleep(0.05)
        counts["closed_by_server"] += sum(1 for sock in socks if _closed(sock))
    elif scenario == "resets":
        linger = struct.pack("ii", 1, 0)
        while time.monotonic() < deadline:
            victim = opened()
            if victim is None:
                continue
            _try_send(victim, INIT + b'{"jsonrpc":"2.0","id":1,"method":"pi')
            victim.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            victim.close()  # an RST in the middle of a message
            time.sleep(0.002)  # ~500 a second
    for sock in socks:
        sock.close()
    report.send(counts)
    report.close()


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


# -- the measuring side --------------------------------------------------------------------------


@dataclass
class Phase:
    scenario: str
    ping_p50_ms: float
    ping_p99_ms: float
    p99_ratio: float | None
    pings: int
    ping_failures: int
    uss_before: int
    uss_peak_growth: int
    bound_bytes: int
    within_bound: bool
    hostile: dict[str, int]


async def _probe(port: int, rate: float, stop: asyncio.Event, out: list[float]) -> int:
    """Ping at ``rate`` per second until ``stop``; failures counted (the session reopens)."""
    failures = 0
    client = await McpClient.connect(port)
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            out.append(await asyncio.wait_for(client.timed_ping(), 5.0))
        except (OSError, RuntimeError, ValueError, TimeoutError):
            failures += 1
            await client.close()
            client = await McpClient.connect(port)
        next_at += 1.0 / rate
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await client.close()
    return failures


async def _sample_peak(pid: int, stop: asyncio.Event, readings: list[int]) -> None:
    while not stop.is_set():
        with contextlib.suppress(ProcessGoneError):
            uss = sample(pid).uss
            if uss is not None:
                readings.append(uss)
        await asyncio.sleep(0.05)


async def _phase(
    scenario: str, port: int, pid: int, args: argparse.Namespace
) -> tuple[list[float], int, list[int], int, dict[str, int]]:
    """Probes and memory samples for one scenario: (latencies, failures, USS readings,
    USS just before the hostile clients started, what the hostile clients saw)."""
    seconds, probes, rate = args.seconds, args.probes, args.probe_rate
    stop = asyncio.Event()
    latencies: list[float] = []
    readings: list[int] = []
    probe_tasks = [
        asyncio.ensure_future(_probe(port, rate, stop, latencies)) for _ in range(probes)
    ]
    sampler = asyncio.ensure_future(_sample_peak(pid, stop, readings))
    await asyncio.sleep(0.5)  # the level this scenario starts from
    before = int(statistics.median(readings)) if readings else 0
    latencies.clear()
    readings.clear()
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = None
    if scenario not in ("calm", "calm-again"):
        process = context.Process(target=_hostile, args=(scenario, port, seconds, sender))
        process.start()
    sender.close()
    await asyncio.sleep(seconds + (1.0 if process else 0.0))
    stop.set()
    failures = sum(await asyncio.gather(*probe_tasks))
    await sampler
    hostile: dict[str, int] = {}
    if process is not None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(EOFError):
            hostile = await loop.run_in_executor(None, receiver.recv)
        await loop.run_in_executor(None, process.join, 10)
    receiver.close()
    return latencies, failures, readings, before, hostile


async def _scenarios(port: int, pid: int, args: argparse.Namespace) -> list[Phase]:
    phases: list[Phase] = []
    calm_p99 = None
    await _phase("calm", port, pid, args)  # warm-up: first connections, first pings
    for scenario in ["calm", *args.scenarios, "calm-again"]:
        latencies, failures, readings, before, hostile = await _phase(scenario, port, pid, args)
        p99 = percentile(latencies, 0.99)
        if scenario == "calm":
            calm_p99 = p99
        assert calm_p99 is not None
        growth = max(readings) - before
        bound = bound_bytes(scenario)
        phases.append(
            Phase(
                scenario=scenario,
                ping_p50_ms=round(percentile(latencies, 0.5) * 1e3, 3),
                ping_p99_ms=round(p99 * 1e3, 3),
                p99_ratio=round(p99 / calm_p99, 2) if scenario != "calm" else None,
                uss_before=before,
                pings=len(latencies),
                ping_failures=failures,
                uss_peak_growth=growth,
                bound_bytes=bound,
                within_bound=scenario.startswith("calm") or growth <= bound,
                hostile=hostile,
            )
        )
        print(json.dumps(asdict(phases[-1])), flush=True)
        await asyncio.sleep(args.seconds / 2)  # let the server settle between scenarios
    return phases


def _server_config(engine: str) -> dict[str, Any]:
    """The server of the scenarios: the limits above and a capped kernel send buffer."""
    limits = dict(LIMITS)
    return {"engine": engine, "limits": limits, "socket_send_buffer": SEND_BUFFER}


# -- faults ------------------------------------------------------------------------------------


async def _kill_a_worker(
    port: int, pids: Callable[[], list[int]], sessions: int, rounds: int
) -> dict[str, int]:
    """kill -9 one worker per round while sessions ping; losses on the other worker count."""
    clients = [await McpClient.connect(port) for _ in range(sessions)]
    sent = answered_on_survivors = lost_on_survivors = cut = 0
    for round_index in range(rounds):
        current = pids()  # the ready file lists the restarted worker's pid
        victim = current[round_index % len(current)]
        os.kill(victim, signal.SIGKILL)
        await asyncio.sleep(0.05)
        survivors = []
        for client in clients:
            sent += 1
            try:
                await asyncio.wait_for(client.timed_ping(), 5.0)
                answered_on_survivors += 1
                survivors.append(client)
            except (OSError, RuntimeError, ValueError, TimeoutError):
                cut += 1  # its worker was the one killed (or the reply was lost: see below)
                await client.close()
        for client in survivors:  # a survivor must keep answering every request
            for _ in range(20):
                sent += 1
                try:
                    await asyncio.wait_for(client.timed_ping(), 5.0)
                except (OSError, RuntimeError, ValueError, TimeoutError):
                    lost_on_survivors += 1
        await asyncio.sleep(1.5)  # the supervisor restarts the killed worker
        clients = survivors + [
            await McpClient.connect(port) for _ in range(sessions - len(survivors))
        ]
    for client in clients:
        await client.close()
    return {
        "workers_killed": rounds,
        "sessions_cut_with_their_worker": cut,
        "requests_on_surviving_sessions": sent - cut,
        "responses_lost_on_surviving_sessions": lost_on_survivors,
    }


async def _sigterm_in_flight(
    port: int, process_pid: int, sessions: int, each: int
) -> dict[str, int]:
    """Pipeline requests on every session, SIGTERM the server, count the answers."""
    clients = [await McpClient.connect(port) for _ in range(sessions)]
    for client in clients:
        client.writer.write(b"".join(ping(i) for i in range(each)))
    first = [await client.receive() for client in clients]
    os.kill(process_pid, signal.SIGTERM)
    answered = len(first)
    for client in clients:
        while True:
            try:
                await asyncio.wait_for(client.receive(), 10.0)
                answered += 1
            except (OSError, ValueError, TimeoutError):
                break
        await client.close()
    return {"requests_in_flight": sessions * each, "responses_lost": sessions * each - answered}


def faults(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with served(["--engine", engine, "--workers", "2"]) as server:
        result["kill_9"] = asyncio.run(
            _kill_a_worker(server.port, server.current_pids, 8, args.kills)
        )
    with served(["--engine", engine]) as server:
        started = time.monotonic()
        result["sigterm"] = asyncio.run(
            _sigterm_in_flight(server.port, server.process.pid, 10, 2000)
        )
        code = server.process.wait(15)
        result["sigterm"]["exit_code"] = code
        result["sigterm"]["seconds_to_exit"] = round(time.monotonic() - started, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--engines", default="epoll,asyncio")
    parser.add_argument(
        "--scenarios", default="non-readers,huge-lines,slowloris,connection-flood,resets"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="per scenario")
    parser.add_argument("--probes", type=int, default=10, help="measuring sessions")
    parser.add_argument("--probe-rate", type=float, default=50.0, help="pings/s per probe")
    parser.add_argument("--kills", type=int, default=3, help="kill -9 rounds")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(args.scenarios) - {*HOSTILE_CONNECTIONS, "connection-flood"}
    if unknown:
        parser.error(f"unknown scenarios: {sorted(unknown)}")
    report: dict[str, Any] = {
        "command": "python -m benchmarks.hostile "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "limits": LIMITS,
        "per_connection_allowance": PER_CONNECTION,
        "socket_send_buffer": SEND_BUFFER,
        "engines": {},
    }
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that servers get stopped
    ok = True
    for engine in [e for e in args.engines.split(",") if e]:
        with served(config=_server_config(engine)) as server:
            phases = asyncio.run(_scenarios(server.port, server.pids[0], args))
        fault_figures = faults(engine, args)
        print(json.dumps({engine: fault_figures}), flush=True)
        report["engines"][engine] = {
            "scenarios": [asdict(p) for p in phases],
            "faults": fault_figures,
        }
        ok &= all(p.within_bound and p.ping_failures == 0 for p in phases)
        ok &= fault_figures["kill_9"]["responses_lost_on_surviving_sessions"] == 0
        ok &= fault_figures["sigterm"]["responses_lost"] == 0
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
