"""A many-connection MCP client: one ``select.epoll`` loop holds thousands of sockets.

The client must not be the bottleneck of a benchmark that runs on the same two cores as
the server, so it avoids per-connection tasks: non-blocking sockets, one small
``__slots__`` record per connection, one epoll loop per process. Connections open in
bounded batches (a few hundred handshakes in flight) so the server's accept backlog
never overflows into SYN retransmits. It speaks MCP over newline-delimited JSON (TCP)
and over Streamable HTTP (h11 parses the responses), holds the connections, and drives
request traffic with latency recorded in an HDR histogram.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import random
import select
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import h11
from hdrh.histogram import HdrHistogram

from connscale.errors import ConfigurationError

#: Linux: bind() only picks the address; the port is chosen at connect() per 4-tuple.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
PROTOCOL_VERSION = "2025-06-18"
#: Latency range the histograms hold: 1 us .. 60 s, 3 significant digits.
HISTOGRAM_LOWEST_US = 1
HISTOGRAM_HIGHEST_US = 60_000_000
HISTOGRAM_DIGITS = 3
#: A line or HTTP response longer than this is a protocol error, not a reason to buffer.
MAX_MESSAGE_BYTES = 1 << 20
INIT_ID = 0

_CONNECTING, _INIT_SENT, _NOTIFY_SENT, _READY, _CLOSED = range(5)
_EVENT_IN = select.EPOLLIN | select.EPOLLRDHUP
_EVENT_OUT = select.EPOLLOUT


def new_histogram() -> HdrHistogram:
    """An empty latency histogram in microseconds."""
    return HdrHistogram(HISTOGRAM_LOWEST_US, HISTOGRAM_HIGHEST_US, HISTOGRAM_DIGITS)


def parse_mix(spec: str) -> tuple[tuple[str, float], ...]:
    """Parse a request mix such as ``"ping=0.8,echo=0.2"``; weights need not sum to 1."""
    kinds: list[tuple[str, float]] = []
    for part in spec.split(","):
        name, sep, weight_text = part.strip().partition("=")
        name = name.strip()
        if name not in REQUEST_KINDS:
            raise ConfigurationError(
                f"unknown request kind {name!r} in mix {spec!r}; use {sorted(REQUEST_KINDS)}"
            )
        try:
            weight = float(weight_text) if sep else 1.0
        except ValueError:
            raise ConfigurationError(f"bad weight {weight_text!r} in mix {spec!r}") from None
        if not weight >= 0 or weight == float("inf"):
            raise ConfigurationError(f"weight of {name!r} must be a finite number >= 0")
        kinds.append((name, weight))
    if not kinds or sum(weight for _, weight in kinds) <= 0:
        raise ConfigurationError(f"mix {spec!r} has no request kind with a positive weight")
    return tuple(kinds)


def _request_body(kind: str, request_id: int) -> bytes:
    if kind == "ping":
        return b'{"jsonrpc":"2.0","id":%d,"method":"ping"}' % request_id
    if kind == "echo":
        return (
            b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo",'
            b'"arguments":{"text":"connscale"}}}' % request_id
        )
    if kind == "list":
        return b'{"jsonrpc":"2.0","id":%d,"method":"tools/list"}' % request_id
    if kind == "experts":
        return (
            b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":'
            b'{"name":"consult_experts","arguments":{"question":"what scales?"}}}' % request_id
        )
    raise ConfigurationError(f"unknown request kind {kind!r}")


REQUEST_KINDS = frozenset({"ping", "echo", "list", "experts"})

_INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": INIT_ID,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "connscale-loadgen", "version": "1"},
        },
    },
    separators=(",", ":"),
).encode()
_INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


@dataclass
class SwarmStatus:
    """Counts of one client process's connections (plain data, sent between processes)."""

    goal: int = 0
    established: int = 0
    connecting: int = 0
    failed: int = 0
    dropped: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class TrafficResult:
    """Requests answered, errors, and the latency histogram (microseconds) of a phase."""

    requests: int = 0
    errors: int = 0
    skipped: int = 0
    duration_s: float = 0.0
    connections: int = 0
    histogram: HdrHistogram = field(default_factory=new_histogram)

    @property
    def throughput_rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def percentile_ms(self, percentile: float) -> float | None:
        if self.histogram.get_total_count() == 0:
            return None
        return float(self.histogram.get_value_at_percentile(percentile)) / 1000.0

    def max_ms(self) -> float | None:
        if self.histogram.get_total_count() == 0:
            return None
        return float(self.histogram.get_max_value()) / 1000.0

    def merge(self, other: TrafficResult) -> None:
        """Add another process's result (the phases ran side by side: durations overlap)."""
        self.requests += other.requests
        self.errors += other.errors
        self.skipped += other.skipped
        self.connections += other.connections
        self.duration_s = max(self.duration_s, other.duration_s)
        self.histogram.add(other.histogram)

    def to_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "skipped": self.skipped,
            "duration_s": self.duration_s,
            "connections": self.connections,
            "histogram": self.histogram.encode().decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TrafficResult:
        histogram = new_histogram()
        encoded = data.get("histogram")
        if isinstance(encoded, str) and encoded:
            histogram.decode_and_add(encoded.encode("ascii"))
        return cls(
            requests=int(str(data.get("requests", 0))),
            errors=int(str(data.get("errors", 0))),
            skipped=int(str(data.get("skipped", 0))),
            duration_s=float(str(data.get("duration_s", 0.0))),
            connections=int(str(data.get("connections", 0))),
            histogram=histogram,
        )


class _Conn:
    """One client connection: a few fields, no buffers until data is partial."""

    __slots__ = (
        "body",
        "http",
        "index",
        "pending_id",
        "pending_since",
        "rbuf",
        "session_id",
        "sock",
        "started",
        "state",
        "status",
        "wbuf",
    )

    def __init__(self, sock: socket.socket, started: float) -> None:
        self.sock = sock
        self.state = _CONNECTING
        self.index = -1  # position in Swarm._ready while established
        self.started = started
        self.rbuf = b""
        self.wbuf = b""
        self.pending_id = -1
        self.pending_since = 0.0
        self.http: h11.Connection | None = None
        self.session_id: bytes | None = None
        self.status = 0
        self.body = b""


class _Phase:
    """State of a running traffic phase."""

    __slots__ = (
        "concurrency",
        "end",
        "in_flight",
        "interval",
        "kinds",
        "next_send",
        "result",
        "start",
    )

    def __init__(
        self,
        *,
        start: float,
        duration: float,
        interval: float | None,
        concurrency: int,
        kinds: Iterable[str],
    ) -> None:
        self.start = start
        self.end = start + duration
        self.interval = interval
        self.next_send = start
        self.concurrency = concurrency
        self.kinds = iter(kinds)
        self.in_flight = 0
        self.result = TrafficResult()


class Swarm:
    """Many MCP client connections to one target, driven by ``poll()`` calls.

    ``grow(n)`` sets a goal the loop works towards in batches; ``shrink(n)`` closes
    connections at once; ``start_traffic(...)`` begins a request phase whose result
    ``traffic_result()`` returns once it is done. Nothing here blocks longer than the
    timeout handed to ``poll()``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        transport: str = "tcp",
        sources: Sequence[tuple[str | None, int]] = ((None, 1 << 30),),
        max_handshakes: int = 256,
        handshake_timeout: float = 15.0,
        path: str = "/mcp",
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
    ) -> None:
        if transport not in ("tcp", "http"):
            raise ConfigurationError(f"transport must be 'tcp' or 'http', not {transport!r}")
        if max_handshakes < 1:
            raise ConfigurationError("max_handshakes must be at least 1")
        self.host = host
        self.port = port
        self.transport = transport
        self._http_target = path.encode()
        self._host_header = f"{host}:{port}".encode()
        self._sources = [(address, int(limit)) for address, limit in sources]
        self._source_used = [0] * len(self._sources)
        self._max_handshakes = max_handshakes
        self._handshake_timeout = handshake_timeout
        self._clock = clock
        self._random = random.Random(seed)
        self._epoll = select.epoll()
        self._conns: dict[int, _Conn] = {}
        self._handshaking: dict[int, _Conn] = {}
        self._ready: list[_Conn] = []
        self._ready_cursor = 0
        self._readers: dict[int, Callable[[], None]] = {}
        self._pending_requests: dict[int, tuple[_Conn, float]] = {}
        self._ids = itertools.count(1)
        self._status = SwarmStatus()
        self._phase: _Phase | None = None
        self._finished: TrafficResult | None = None
        self._last_timeout_scan = clock()
        self._stop_growing = False
        self.max_failures = 0  # 0: stop growing after max(10, 1% of the goal)

    # --- control ------------------------------------------------------------------------

    def grow(self, goal: int) -> None:
        """Work towards ``goal`` established connections (opened in batches by ``poll``)."""
        capacity = sum(limit for _, limit in self._sources)
        if goal > capacity:
            raise ConfigurationError(f"goal {goal} exceeds this swarm's plan ({capacity})")
        self._status.goal = max(goal, 0)
        self._stop_growing = False

    def shrink(self, goal: int) -> None:
        """Close established connections until at most ``goal`` remain."""
        self._status.goal = max(goal, 0)
        while len(self._ready) > self._status.goal:
            self._close(self._ready[-1], counted=False)

    def close_all(self) -> None:
        """Close every connection and the epoll object."""
        self._status.goal = 0
        for conn in list(self._conns.values()):
            self._close(conn, counted=False)
        self._epoll.close()

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` from ``poll`` whenever ``fd`` is readable (a control pipe)."""
        self._readers[fd] = callback
        self._epoll.register(fd, select.EPOLLIN | select.EPOLLHUP)

    def status(self) -> SwarmStatus:
        self._status.established = len(self._ready)
        self._status.connecting = len(self._handshaking)
        return self._status

    @property
    def growing(self) -> bool:
        """True while the goal is not reached and growing has not given up."""
        status = self.status()
        return not self._stop_growing and (
            status.established < status.goal or status.connecting > 0
        )

    def start_traffic(
        self,
        *,
        duration: float,
        rate: float | None = None,
        concurrency: int = 32,
        mix: Sequence[tuple[str, float]] = (("ping", 1.0),),
    ) -> None:
        """Begin a request phase over the established connections.

        ``rate`` (requests per second per connection) gives an open loop: sends follow a
        fixed schedule and latency counts from the scheduled time, so a slow server
        cannot hide its queueing (no coordinated omission). Without ``rate``, a closed
        loop keeps ``concurrency`` requests in flight: the throughput the server allows.
        """
        if duration <= 0:
            raise ConfigurationError("duration must be positive")
        if rate is not None and rate <= 0:
            raise ConfigurationError("rate must be positive")
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        names = [name for name, _ in mix]
        weights = [weight for _, weight in mix]
        for name in names:
            if name not in REQUEST_KINDS:
                raise ConfigurationError(f"unknown request kind {name!r}")
        # A pre-drawn cycle keeps the send path free of per-request random calls.
        drawn = self._random.choices(names, weights=weights, k=1024)
        now = self._clock()
        connections = len(self._ready)
        interval = None
        if rate is not None and connections:
            interval = 1.0 / (rate * connections)
        self._finished = None
        self._phase = _Phase(
            start=now,
            duration=duration,
            interval=interval,
            concurrency=min(concurrency, max(connections, 1)),
            kinds=itertools.cycle(drawn),
        )
        self._phase.result.connections = connections
        if interval is None:
            for _ in range(self._phase.concurrency):
                self._send_request(now, now)

    def traffic_result(self) -> TrafficResult | None:
        """The result of the last phase once it has finished (None while it runs)."""
        return self._finished

    # --- the loop -------------------------------------------------------------------------

    def poll(self, timeout: float) -> None:
        """One round: open due connections, handle I/O, send due requests, expire stale."""
        self._open_batch()
        now = self._clock()
        phase = self._phase
        if phase is not None and phase.interval is not None and phase.next_send < phase.end:
            timeout = min(timeout, max(0.0, phase.next_send - now))
        if phase is not None:
            timeout = min(timeout, max(0.0, phase.end - now) + 0.001)
        try:
            events = self._epoll.poll(timeout)
        except InterruptedError:
            events = []
        for fd, mask in events:
            reader = self._readers.get(fd)
            if reader is not None:
                reader()
                continue
            conn = self._conns.get(fd)
            if conn is None:
                continue
            if conn.state == _CONNECTING:
                self._on_connected(conn)
                continue
            if mask & select.EPOLLOUT and conn.wbuf:
                self._flush(conn)
            if mask & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
                self._on_readable(conn)
        now = self._clock()
        if self._phase is not None:
            self._drive_phase(now)
        if now - self._last_timeout_scan >= 0.5:
            self._last_timeout_scan = now
            self._expire_handshakes(now)

    def run_until(self, predicate: Callable[[], bool], deadline: float) -> bool:
        """Poll until ``predicate()`` holds or the clock passes ``deadline``."""
        while not predicate():
            now = self._clock()
            if now >= deadline:
                return False
            self.poll(min(0.05, deadline - now))
        return True

    # --- connecting -------------------------------------------------------------------------

    def _failure_budget(self) -> int:
        return self.max_failures or max(10, self._status.goal // 100)

    def _open_batch(self) -> None:
        status = self._status
        if self._stop_growing:
            return
        want = status.goal - len(self._ready) - len(self._handshaking)
        room = self._max_handshakes - len(self._handshaking)
        for _ in range(min(want, room)):
            if not self._open_one():
                break

    def _next_source(self) -> int | None:
        for index, (_, limit) in enumerate(self._sources):
            if self._source_used[index] < limit:
                return index
        return None

    def _open_one(self) -> bool:
        index = self._next_source()
        if index is None:
            self._stop_growing = True
            return False
        address = self._sources[index][0]
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            self._fail(None, _reason(exc), str(exc))
            self._stop_growing = True  # out of files: more attempts fail the same way
            return False
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if address is not None:
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((address, 0))
            code = sock.connect_ex((self.host, self.port))
        except OSError as exc:
            sock.close()
            self._fail(None, _reason(exc), str(exc))
            return False
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self._fail(None, errno.errorcode.get(code, str(code)), os.strerror(code))
            return False
        self._source_used[index] += 1
        conn = _Conn(sock, self._clock())
        fd = sock.fileno()
        self._conns[fd] = conn
        self._handshaking[fd] = conn
        self._epoll.register(fd, _EVENT_OUT)
        return True

    def _on_connected(self, conn: _Conn) -> None:
        code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._fail(conn, errno.errorcode.get(code, str(code)), os.strerror(code))
            return
        conn.state = _INIT_SENT
        self._epoll.modify(conn.sock.fileno(), _EVENT_IN)
        if self.transport == "http":
            conn.http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_MESSAGE_BYTES)
            self._send_http(conn, _INITIALIZE)
        else:
            self._write(conn, _INITIALIZE + b"\n")

    def _expire_handshakes(self, now: float) -> None:
        limit = now - self._handshake_timeout
        for conn in [c for c in self._handshaking.values() if c.started < limit]:
            self._fail(conn, "timeout", f"no handshake within {self._handshake_timeout:g} s")

    def _fail(self, conn: _Conn | None, reason: str, detail: str) -> None:
        status = self._status
        status.failed += 1
        status.failures[reason] = status.failures.get(reason, 0) + 1
        if status.first_error is None:
            status.first_error = f"{reason}: {detail}"
        if status.failed >= self._failure_budget():
            self._stop_growing = True
        if conn is not None:
            self._close(conn, counted=False)

    def _close(self, conn: _Conn, *, counted: bool) -> None:
        if conn.state == _CLOSED:
            return
        was_ready = conn.state == _READY
        conn.state = _CLOSED
        fd = conn.sock.fileno()
        self._conns.pop(fd, None)
        self._handshaking.pop(fd, None)
        if was_ready:
            # Swap-remove keeps closing O(1) even when a server drops thousands at once.
            last = self._ready.pop()
            if last is not conn:
                self._ready[conn.index] = last
                last.index = conn.index
            if counted:
                self._status.dropped += 1
        if conn.pending_id >= 0:
            self._pending_requests.pop(conn.pending_id, None)
            if self._phase is not None:
                self._phase.result.errors += 1
                self._phase.in_flight -= 1
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(fd)
        conn.sock.close()

    # --- bytes in and out ---------------------------------------------------------------------

    def _write(self, conn: _Conn, data: bytes) -> None:
        if conn.wbuf:
            conn.wbuf += data
            return
        try:
            sent = conn.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._lost(conn, _reason(exc))
            return
        if sent < len(data):
            conn.wbuf = data[sent:]
            self._epoll.modify(conn.sock.fileno(), _EVENT_IN | _EVENT_OUT)

    def _flush(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.wbuf)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(conn, _reason(exc))
            return
        conn.wbuf = conn.wbuf[sent:]
        if not conn.wbuf:
            self._epoll.modify(conn.sock.fileno(), _EVENT_IN)

    def _lost(self, conn: _Conn, reason: str) -> None:
        if conn.state == _READY:
            self._close(conn, counted=True)
        else:
            self._fail(conn, reason, "connection lost during the handshake")

    def _on_readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(conn, _reason(exc))
            return
        if not data:
            self._lost(conn, "closed")
            return
        if conn.http is not None:
            self._on_http_data(conn, data)
            return
        buffer = conn.rbuf + data if conn.rbuf else data
        start = 0
        while conn.state != _CLOSED:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            if line.strip():
                self._on_message(conn, line)
        rest = buffer[start:]
        if len(rest) > MAX_MESSAGE_BYTES:
            self._lost(conn, "protocol")
            return
        conn.rbuf = rest

    def _on_message(self, conn: _Conn, payload: bytes) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            self._protocol_error(conn, "the server sent a line that is not JSON")
            return
        if not isinstance(message, dict) or "id" not in message:
            return  # a notification or a server request: nothing to answer in a load test
        message_id = message.get("id")
        if conn.state == _INIT_SENT:
            if message_id != INIT_ID or "result" not in message:
                self._protocol_error(conn, f"initialize failed: {str(message)[:200]}")
                return
            if conn.http is not None:
                conn.state = _NOTIFY_SENT
                self._send_http(conn, _INITIALIZED)
            else:
                self._write(conn, _INITIALIZED + b"\n")
                self._became_ready(conn)
            return
        if isinstance(message_id, int) and message_id == conn.pending_id:
            self._answered(conn, error="error" in message)

    def _protocol_error(self, conn: _Conn, detail: str) -> None:
        if conn.state == _READY:
            self._status.failures["protocol"] = self._status.failures.get("protocol", 0) + 1
            if self._status.first_error is None:
                self._status.first_error = f"protocol: {detail}"
            self._close(conn, counted=True)
        else:
            self._fail(conn, "protocol", detail)

    def _became_ready(self, conn: _Conn) -> None:
        conn.state = _READY
        self._handshaking.pop(conn.sock.fileno(), None)
        conn.index = len(self._ready)
        self._ready.append(conn)

    # --- HTTP ---------------------------------------------------------------------------------

    def _send_http(self, conn: _Conn, body: bytes) -> None:
        http = conn.http
        assert http is not None
        headers = [
            (b"host", self._host_header),
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
            (b"mcp-protocol-version", PROTOCOL_VERSION.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        if conn.session_id is not None:
            headers.append((b"mcp-session-id", conn.session_id))
        try:
            data = http.send(h11.Request(method="POST", target=self._http_target, headers=headers))
            data = (data or b"") + (http.send(h11.Data(data=body)) or b"")
            data += http.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            self._protocol_error(conn, f"cannot send a request: {exc}")
            return
        conn.status = 0
        conn.body = b""
        self._write(conn, data)

    def _on_http_data(self, conn: _Conn, data: bytes) -> None:
        http = conn.http
        assert http is not None
        try:
            http.receive_data(data)
            while conn.state != _CLOSED:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    return
                if isinstance(event, h11.Response):
                    conn.status = event.status_code
                    for name, value in event.headers:
                        if name == b"mcp-session-id":
                            conn.session_id = value
                elif isinstance(event, h11.Data):
                    conn.body += bytes(event.data)
                    if len(conn.body) > MAX_MESSAGE_BYTES:
                        self._protocol_error(conn, "response body too large")
                        return
                elif isinstance(event, h11.EndOfMessage):
                    # The next request may be sent while handling this response.
                    http.start_next_cycle()
                    self._on_http_response(conn)
                elif isinstance(event, h11.ConnectionClosed):
                    self._lost(conn, "closed")
                    return
        except h11.ProtocolError as exc:
            self._protocol_error(conn, f"bad HTTP from the server: {exc}")

    def _on_http_response(self, conn: _Conn) -> None:
        status, body = conn.status, conn.body
        conn.body = b""
        if conn.state == _NOTIFY_SENT:
            if status >= 300:
                self._protocol_error(conn, f"notifications/initialized got HTTP {status}")
            else:
                self._became_ready(conn)
            return
        if status >= 300:
            if conn.state == _INIT_SENT:
                self._fail(conn, "refused", f"initialize got HTTP {status}")
            elif conn.pending_id >= 0:
                self._answered(conn, error=True)
            return
        for payload in _json_payloads(body):
            self._on_message(conn, payload)
            if conn.state == _CLOSED:
                return

    # --- traffic ------------------------------------------------------------------------------

    def _drive_phase(self, now: float) -> None:
        phase = self._phase
        assert phase is not None
        if phase.interval is not None:
            # Catch up with the schedule, a bounded number of sends per round.
            sends = 0
            while phase.next_send <= now and phase.next_send < phase.end and sends < 2000:
                self._send_request(phase.next_send, now)
                phase.next_send += phase.interval
                sends += 1
        drain_limit = phase.end + min(5.0, max(1.0, (phase.end - phase.start) / 2))
        if now >= phase.end and (phase.in_flight <= 0 or now >= drain_limit):
            result = phase.result
            result.duration_s = max(phase.end - phase.start, 1e-9)
            result.errors += max(phase.in_flight, 0)  # unanswered at the end
            for request_id, (conn, _) in list(self._pending_requests.items()):
                conn.pending_id = -1
                del self._pending_requests[request_id]
            self._finished = result
            self._phase = None

    def _send_request(self, scheduled: float, now: float) -> None:
        phase = self._phase
        assert phase is not None
        conn = self._next_idle()
        if conn is None:
            phase.result.skipped += 1
            return
        request_id = next(self._ids)
        body = _request_body(next(phase.kinds), request_id)
        conn.pending_id = request_id
        conn.pending_since = scheduled
        self._pending_requests[request_id] = (conn, scheduled)
        phase.in_flight += 1
        if conn.http is not None:
            self._send_http(conn, body)
        else:
            self._write(conn, body + b"\n")

    def _next_idle(self) -> _Conn | None:
        ready = self._ready
        count = len(ready)
        for _ in range(min(count, 4096)):
            self._ready_cursor = (self._ready_cursor + 1) % count
            conn = ready[self._ready_cursor]
            if conn.pending_id < 0:
                return conn
        return None

    def _answered(self, conn: _Conn, *, error: bool) -> None:
        phase = self._phase
        request_id = conn.pending_id
        conn.pending_id = -1
        entry = self._pending_requests.pop(request_id, None)
        if phase is None or entry is None:
            return
        phase.in_flight -= 1
        now = self._clock()
        if error:
            phase.result.errors += 1
        else:
            phase.result.requests += 1
            micros = max(1, min(int((now - entry[1]) * 1e6), HISTOGRAM_HIGHEST_US))
            phase.result.histogram.record_value(micros)
        if phase.interval is None and now < phase.end:
            self._send_request(now, now)


def _json_payloads(body: bytes) -> list[bytes]:
    """JSON messages in an HTTP body: plain JSON, or the ``data:`` lines of an SSE stream."""
    stripped = body.strip()
    if not stripped:
        return []
    if stripped[:1] in (b"{", b"["):
        return [stripped]
    payloads: list[bytes] = []
    for line in stripped.splitlines():
        if line.startswith(b"data:"):
            data = line[5:].strip()
            if data:
                payloads.append(data)
    return payloads


def _reason(exc: OSError) -> str:
    if exc.errno is None:
        return type(exc).__name__
    return errno.errorcode.get(exc.errno, str(exc.errno))


__all__ = [
    "PROTOCOL_VERSION",
    "REQUEST_KINDS",
    "Swarm",
    "SwarmStatus",
    "TrafficResult",
    "new_histogram",
    "parse_mix",
]
