"""Tool-call throughput over HTTP keep-alive: connscale against the official SDK and Starlette.

Each server runs as one process on loopback and serves an ``echo`` tool; a closed-loop
client keeps ``--in-flight`` requests going (one per keep-alive connection) for
``--seconds`` after a warm-up, and records every latency. Servers:

* ``sdk``: the official MCP SDK's ``MCPServer`` on uvicorn (Streamable HTTP; it answers
  every POST as an event stream);
* ``starlette``: a plain Starlette JSON endpoint on uvicorn doing the same echo, without
  MCP: the ceiling of the stack the SDK is built on;
* ``connscale-epoll`` and ``connscale-asyncio``: ``connscale serve --transport http``;
* ``floor``: a uvloop ``asyncio.Protocol`` that answers every request with the same fixed
  echo response, parsing nothing but the end of the request: no Python server on this
  loop can go faster, so it shows what the machine and the client allow (``--servers
  floor`` adds it; it is not in the default set).

Both MCP eras where the server speaks them: ``handshake`` (``initialize`` once per
connection, then ``tools/call`` with its session id) and ``stateless`` (2026-07-28: every
``tools/call`` a self-contained POST with the ``_meta`` envelope and its headers).

Reported per server and era: requests/s, p50/p99 latency, the server's CPU per request
(its utime+stime over the measured window / requests) and the client's CPU per request
(to show the client is not the bottleneck: rerun with ``--client-processes 2`` and the
server figures should not move). Each figure is the median of ``--repeat`` runs.

    python -m benchmarks.http_throughput                       # everything, 3 runs
    python -m benchmarks.http_throughput --servers connscale-epoll,starlette --seconds 5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from benchmarks._serving import HTTP_INITIALIZE, free_port, session_id_in
from connscale._hot_path import mode as hot_path_mode
from connscale.bench.measure import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
SERVERS = ("sdk", "starlette", "connscale-epoll", "connscale-asyncio")
PLAIN = ("starlette", "floor")  # servers without MCP: one "plain" era, no handshake
ERAS = ("handshake", "stateless")
TEXT = "hello, world"
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


# -- servers -----------------------------------------------------------------------------------


def serve_starlette(port: int, ready: Path) -> None:
    """A plain Starlette JSON echo on uvicorn (no MCP): the SDK's stack, doing the least."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"jsonrpc": "2.0", "id": body.get("id"), "result": body})

    app = Starlette(routes=[Route("/mcp", echo, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    ready.write_text(json.dumps({"port": port, "pids": [os.getpid()]}))
    server.run()


def serve_floor(port: int, ready: Path) -> None:
    """Fixed answers on uvloop: the ceiling of any Python server on this loop and client."""
    import asyncio

    import uvloop

    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": TEXT}]}},
        separators=(",", ":"),
    ).encode()
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b"
        % (len(body), body)
    )

    class Floor(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport  # uvloop's transports are not asyncio.Transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            buffer = self.buffer + data
            answers = 0
            while True:  # whole requests only: the head's end, then content-length bytes
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    break
                at = buffer.lower().find(b"content-length:", 0, end)
                length = int(buffer[at + 15 : buffer.find(b"\r\n", at)]) if at >= 0 else 0
                if len(buffer) < end + 4 + length:
                    break
                buffer = buffer[end + 4 + length :]
                answers += 1
            self.buffer = buffer
            if answers:
                self.transport.write(answer * answers)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(Floor, "127.0.0.1", port)
        ready.write_text(json.dumps({"port": port, "pids": [os.getpid()]}))
        await asyncio.Event().wait()

    uvloop.run(main())


def start(server: str, scratch: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """(process, port, pid of the process that serves) once the server accepts."""
    ready = scratch / f"{server}.json"
    ready.unlink(missing_ok=True)
    port = free_port()
    if server == "sdk":
        command = [sys.executable, "-m", "connscale.bench.baselines", "mcp-sdk"]
        command += ["--port", str(port), "--ready-file", str(ready)]
    elif server == "starlette":
        command = [sys.executable, "-m", "benchmarks.http_throughput", "--serve-starlette"]
        command += [str(port), str(ready)]
    elif server == "floor":
        command = [sys.executable, "-m", "benchmarks.http_throughput", "--serve-floor"]
        command += [str(port), str(ready)]
    else:
        engine = server.split("-", 1)[1]
        command = [sys.executable, "-m", "connscale", "serve", "--transport", "http"]
        command += ["--engine", engine, "--port", str(port), "--ready-file", str(ready)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"http_throughput: {server} did not start")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    pid = int(info.get("pids", [process.pid])[0]) if info.get("pids") else process.pid
    while True:  # a ready file may come just before the listening socket does
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            break
        except ConnectionRefusedError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"http_throughput: {server} does not accept") from None
            time.sleep(0.05)
    return process, port, pid


# -- the client ----------------------------------------------------------------------------------


def _post(port: int, body: dict[str, Any], headers: dict[str, str]) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = [
        "POST /mcp HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        f"Content-Length: {len(payload)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[bytes, bytes]:
    """One whole response (head, body) from a blocking socket; leftovers stay in buffer."""
    while True:
        parsed = _split(buffer)
        if parsed is not None:
            return parsed
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        buffer += data


def _split(buffer: bytearray) -> tuple[bytes, bytes] | None:
    """A complete response at the start of ``buffer`` (removed from it), or None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end])
    lowered = head.lower()
    start = end + 4
    if b"transfer-encoding: chunked" in lowered:
        body = bytearray()
        position = start
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(buffer[position:line_end].split(b";")[0], 16)
            if size == 0:
                if len(buffer) < line_end + 4:
                    return None
                del buffer[: line_end + 4]
                return head, bytes(body)
            if len(buffer) < line_end + 2 + size + 2:
                return None
            body += buffer[line_end + 2 : line_end + 2 + size]
            position = line_end + 2 + size + 2
    length = 0
    for line in lowered.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if len(buffer) < start + length:
        return None
    whole = bytes(buffer[start : start + length])
    del buffer[: start + length]
    return head, whole


def _open(port: int, server: str, era: str) -> tuple[socket.socket, bytes]:
    """A connection ready to send tool calls, and the request it will repeat."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    call = {"name": "echo", "arguments": {"text": TEXT}}
    if server in PLAIN:
        return sock, _post(port, {"jsonrpc": "2.0", "id": 1, "method": "echo", "params": call}, {})
    if era == "stateless":
        params = {**call, "_meta": META}
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
        headers = {
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "tools/call",
            "Mcp-Name": "echo",
        }
        return sock, _post(port, body, headers)
    buffer = bytearray()
    sock.sendall(_post(port, HTTP_INITIALIZE, {}))
    head, _ = _read_response(sock, buffer)
    session = session_id_in(head).decode()
    headers = {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    sock.sendall(_post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers))
    _read_response(sock, buffer)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call}
    return sock, _post(port, body, headers)


def client_process(  # noqa: PLR0917 - multiprocessing passes the arguments by position
    port: int, server: str, era: str, connections: int, warmup: float, seconds: float, out: Any
) -> None:
    """Closed loop over ``connections`` keep-alive connections; report to ``out``."""
    opened = [_open(port, server, era) for _ in range(connections)]
    poller = select.epoll()
    state: dict[int, tuple[socket.socket, bytes, bytearray, list[float]]] = {}
    for sock, request in opened:
        sock.setblocking(False)
        state[sock.fileno()] = (sock, request, bytearray(), [0.0])
        poller.register(sock.fileno(), select.EPOLLIN)
    histogram = HdrHistogram(1, 60_000_000, 3)
    begin = time.monotonic()
    measure_from = begin + warmup
    stop = measure_from + seconds
    for sock, request, _buffer, sent in state.values():
        sent[0] = time.monotonic()
        sock.sendall(request)
    done = 0
    errors = 0
    cpu_start: float | None = None
    while True:
        now = time.monotonic()
        if cpu_start is None and now >= measure_from:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu_start = usage.ru_utime + usage.ru_stime
        if now >= stop:
            break
        for fd, _events in poller.poll(0.5):
            sock, request, buffer, sent = state[fd]
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                errors += 1
                poller.unregister(fd)
                continue
            buffer += data
            parsed = _split(buffer)
            if parsed is None:
                continue
            if not parsed[0].startswith(b"HTTP/1.1 200"):
                errors += 1
            finished = time.monotonic()
            if finished >= measure_from:
                histogram.record_value(max(1, int((finished - sent[0]) * 1e6)))
                done += 1
            sent[0] = finished
            sock.sendall(request)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - (cpu_start or 0.0)
    out.send((done, errors, cpu, histogram.encode()))
    for sock, _request, _buffer, _sent in state.values():
        sock.close()


@dataclass
class Figures:
    server: str
    era: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    server_cpu_us: float
    client_cpu_us: float
    errors: int


def run_once(server: str, era: str, port: int, pid: int, args: argparse.Namespace) -> Figures:
    per_process = max(1, args.in_flight // args.client_processes)
    context = multiprocessing.get_context("fork")
    pipes = []
    processes = []
    for _ in range(args.client_processes):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=client_process,
            args=(port, server, era, per_process, args.warmup, args.seconds, sender),
        )
        process.start()
        pipes.append(receiver)
        processes.append(process)
    time.sleep(args.warmup)
    cpu_before = cpu_seconds([pid])
    time.sleep(args.seconds)
    cpu_after = cpu_seconds([pid])
    total = errors = 0
    client_cpu = 0.0
    histogram = HdrHistogram(1, 60_000_000, 3)
    for pipe, process in zip(pipes, processes, strict=True):
        done, failed, cpu, encoded = pipe.recv()
        process.join(30)
        total += done
        errors += failed
        client_cpu += cpu
        histogram.add(HdrHistogram.decode(encoded))
    requests = max(total, 1)
    return Figures(
        server,
        era,
        total / args.seconds,
        histogram.get_value_at_percentile(50) / 1000,
        histogram.get_value_at_percentile(99) / 1000,
        (cpu_after - cpu_before) / requests * 1e6,
        client_cpu / requests * 1e6,
        errors,
    )


def median_figures(runs: list[Figures]) -> Figures:
    first = runs[0]
    return Figures(
        first.server,
        first.era,
        statistics.median(r.requests_per_second for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        statistics.median(r.server_cpu_us for r in runs),
        statistics.median(r.client_cpu_us for r in runs),
        sum(r.errors for r in runs),
    )


def markdown(results: list[Figures], args: argparse.Namespace) -> str:
    baselines = {(r.server, r.era): r for r in results}
    lines = [
        f"Command: `python -m benchmarks.http_throughput --seconds {args.seconds:g} "
        f"--in-flight {args.in_flight} --client-processes {args.client_processes} "
        f"--repeat {args.repeat}`; medians of {args.repeat} runs, one server process each; "
        f"connscale's hot path {hot_path_mode()}.",
        "",
        "| server | era | req/s | vs SDK | vs Starlette | p50 ms | p99 ms "
        "| server CPU µs/req | client CPU µs/req | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    starlette = baselines.get(("starlette", "plain"))
    for result in results:
        sdk = baselines.get(("sdk", result.era))
        versus_sdk = f"{result.requests_per_second / sdk.requests_per_second:.1f}x" if sdk else "-"
        versus_starlette = (
            f"{result.requests_per_second / starlette.requests_per_second:.1f}x"
            if starlette
            else "-"
        )
        lines.append(
            f"| {result.server} | {result.era} | {result.requests_per_second:,.0f} | {versus_sdk} "
            f"| {versus_starlette} | {result.p50_ms:.2f} | {result.p99_ms:.2f} "
            f"| {result.server_cpu_us:.0f} | {result.client_cpu_us:.0f} | {result.errors} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--eras", default=",".join(ERAS))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--in-flight", type=int, default=64, help="connections, one each")
    parser.add_argument("--client-processes", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--serve-starlette", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_starlette:
        serve_starlette(int(args.serve_starlette[0]), Path(args.serve_starlette[1]))
        return 0
    if args.serve_floor:
        serve_floor(int(args.serve_floor[0]), Path(args.serve_floor[1]))
        return 0
    servers = [name for name in args.servers.split(",") if name]
    eras = [name for name in args.eras.split(",") if name]
    results: list[Figures] = []
    with tempfile.TemporaryDirectory() as scratch:
        for server in servers:
            process, port, pid = start(server, Path(scratch))
            try:
                for era in ["plain"] if server in PLAIN else eras:
                    runs = []
                    for index in range(args.repeat):
                        figures = run_once(server, era, port, pid, args)
                        print(
                            f"{server} {era} run {index + 1}: "
                            f"{figures.requests_per_second:,.0f} req/s, "
                            f"p99 {figures.p99_ms:.2f} ms, errors {figures.errors}",
                            file=sys.stderr,
                            flush=True,
                        )
                        runs.append(figures)
                    results.append(median_figures(runs))
            finally:
                process.terminate()
                process.wait(15)
    print(markdown(results, args))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
