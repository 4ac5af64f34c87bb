"""A many-connection client: one ``select.epoll`` loop holds thousands of sockets.

The client must not be the bottleneck of a benchmark that runs on the same two cores as
the server, so it avoids per-connection tasks: non-blocking sockets, one small
``__slots__`` record per connection, one epoll loop per process. Connections open in
bounded batches (a few hundred handshakes in flight) so the server's accept backlog
never overflows into SYN retransmits. What is said on a connection is the business of a
``ClientProtocol`` (MCP, WebSocket, raw TCP, SSE, HTTP keep-alive); the swarm holds the
connections, counts what fails and what is dropped (with the first reason of each), and
drives request traffic with latency recorded in an HDR histogram.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import random
import select
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import msgspec

from connscale.errors import ConfigurationError
from connscale.loadgen.protocols import ClientProtocol, ProtocolOptions, make_protocol
from connscale.loadgen.protocols.base import CLOSED, CONNECTING, READY, Conn
from connscale.loadgen.protocols.mcp import REQUEST_KINDS
from connscale.loadgen.traffic import TrafficResult

#: Linux: bind() only picks the address; the port is chosen at connect() per 4-tuple.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

_EVENT_IN = select.EPOLLIN | select.EPOLLRDHUP
_EVENT_OUT = select.EPOLLOUT


def parse_mix(spec: str, kinds: Iterable[str] = REQUEST_KINDS) -> tuple[tuple[str, float], ...]:
    """Parse a request mix such as ``"ping=0.8,echo=0.2"``; weights need not sum to 1."""
    known = sorted(kinds)
    parsed: list[tuple[str, float]] = []
    for part in spec.split(","):
        name, sep, weight_text = part.strip().partition("=")
        name = name.strip()
        if name not in known:
            raise ConfigurationError(
                f"unknown request kind {name!r} in mix {spec!r}; use {known}"
                if known
                else "this protocol carries no requests: there is no traffic to mix"
            )
        try:
            weight = float(weight_text) if sep else 1.0
        except ValueError:
            raise ConfigurationError(f"bad weight {weight_text!r} in mix {spec!r}") from None
        if not weight >= 0 or weight == float("inf"):
            raise ConfigurationError(f"weight of {name!r} must be a finite number >= 0")
        parsed.append((name, weight))
    if not parsed or sum(weight for _, weight in parsed) <= 0:
        raise ConfigurationError(f"mix {spec!r} has no request kind with a positive weight")
    return tuple(parsed)


class SwarmStatus(msgspec.Struct, kw_only=True):
    """Counts of one client process's connections (sent between processes as JSON).

    ``failed`` connections never became ready; ``dropped`` ones were ready and then lost
    (closed or reset by the server, or a protocol error): a held connection that goes away
    is what makes a plateau dishonest, so each count keeps its first reason.
    """

    goal: int = 0
    established: int = 0
    connecting: int = 0
    failed: int = 0
    dropped: int = 0
    failures: dict[str, int] = msgspec.field(default_factory=dict)
    drops: dict[str, int] = msgspec.field(default_factory=dict)
    first_error: str | None = None
    first_drop: str | None = None
    events: int = 0  # messages the server sent unasked on ready connections (SSE events)


class SwarmObserver(Protocol):
    """What a driver outside the swarm hears of each connection and request (Locust users).

    ``connected``: a handshake finished after ``seconds``; ``failed``: a connection never
    became ready; ``dropped``: a held one was lost; ``answered``: a request made with
    ``Swarm.send`` ended after ``seconds``, ``error`` None when answered, else why not
    ("error reply", "timeout", or the reason its connection was lost).
    """

    def connected(self, seconds: float) -> None: ...

    def failed(self, reason: str, detail: str) -> None: ...

    def dropped(self, reason: str, detail: str) -> None: ...

    def answered(self, request_id: int, kind: str, seconds: float, error: str | None) -> None: ...


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
    """Many client connections to one target, driven by ``poll()`` calls.

    ``grow(n)`` sets a goal the loop works towards in batches; ``shrink(n)`` closes
    connections at once; ``start_traffic(...)`` begins a request phase whose result
    ``traffic_result()`` returns once it is done. Nothing here blocks longer than the
    timeout handed to ``poll()``.

    Driven from outside (``connscale.locust``): ``observer`` hears of every handshake,
    failure, drop and answer; ``send(kind)`` makes one request on an idle connection;
    ``fileno()`` is readable when ``poll`` has work, so another event loop (gevent's) can
    wait on it; ``poller`` and ``socket_type`` replace ``select.epoll`` and
    ``socket.socket`` (gevent's monkey-patching removes the one and wraps the other).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        protocol: str | ClientProtocol = "mcp",
        path: str | None = None,
        probe: str | None = None,
        call: str | None = None,
        sources: Sequence[tuple[str | None, int]] = ((None, 1 << 30),),
        max_handshakes: int = 256,
        handshake_timeout: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
        observer: SwarmObserver | None = None,
        request_timeout: float = 30.0,
        poller: Callable[[], select.epoll] | None = None,
        socket_type: Callable[[int, int], socket.socket] | None = None,
    ) -> None:
        if max_handshakes < 1:
            raise ConfigurationError("max_handshakes must be at least 1")
        if isinstance(protocol, str):
            options = ProtocolOptions(host=host, port=port, path=path, probe=probe, call=call)
            protocol = make_protocol(protocol, options)
        self.host = host
        self.port = port
        self.protocol = protocol
        self._sources = [(address, int(limit)) for address, limit in sources]
        self._source_used = [0] * len(self._sources)
        self._max_handshakes = max_handshakes
        self._handshake_timeout = handshake_timeout
        self._clock = clock
        self._random = random.Random(seed)
        self._epoll = (poller or select.epoll)()
        self._socket_type = socket_type or socket.socket
        self.observer = observer
        self._request_timeout = request_timeout
        self._sent: dict[int, tuple[Conn, str, float]] = {}  # send(): id -> (conn, kind, at)
        self._conns: dict[int, Conn] = {}
        self._handshaking: dict[int, Conn] = {}
        self._ready: list[Conn] = []
        self._ready_cursor = 0
        self._readers: dict[int, Callable[[], None]] = {}
        self._pending_requests: dict[int, tuple[Conn, float]] = {}
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

    def fileno(self) -> int:
        """The epoll fd: readable when a connection has an event for ``poll``."""
        return self._epoll.fileno()

    def send(self, kind: str) -> int | None:
        """One request of ``kind`` on an idle held connection, outside any traffic phase.

        Returns its id (the observer hears of its end, answered or not), or None when every
        held connection already has a request in flight.
        """
        if kind not in self.protocol.request_kinds:
            raise ConfigurationError(f"the {self.protocol.name} protocol has no request {kind!r}")
        conn = self._next_idle()
        if conn is None:
            return None
        request_id = next(self._ids)
        now = self._clock()
        conn.pending_id = request_id
        conn.pending_since = now
        self._sent[request_id] = (conn, kind, now)
        self.protocol.send_request(self, conn, kind, request_id)
        return request_id

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
            if name not in self.protocol.request_kinds:
                raise ConfigurationError(
                    f"the {self.protocol.name} protocol has no request kind {name!r}"
                    + (f"; use {sorted(self.protocol.request_kinds)}" if names else "")
                )
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
            if conn.state == CONNECTING:
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
            self._expire_requests(now)

    def run_until(self, predicate: Callable[[], bool], deadline: float) -> bool:
        """Poll until ``predicate()`` holds or the clock passes ``deadline``."""
        while not predicate():
            now = self._clock()
            if now >= deadline:
                return False
            self.poll(min(0.05, deadline - now))
        return True

    # --- the Link a protocol reports through -----------------------------------------------

    def write(self, conn: Conn, data: bytes) -> None:
        """Send ``data`` on ``conn`` (buffered while the socket is full)."""
        if conn.state == CLOSED or not data:
            return
        if conn.wbuf:
            conn.wbuf += data
            return
        try:
            sent = conn.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.lost(conn, _reason(exc))
            return
        if sent < len(data):
            conn.wbuf = data[sent:]
            self._epoll.modify(conn.sock.fileno(), _EVENT_IN | _EVENT_OUT)

    def ready(self, conn: Conn) -> None:
        """The handshake finished: the connection is held."""
        if conn.state in (READY, CLOSED):
            return
        conn.state = READY
        self._handshaking.pop(conn.sock.fileno(), None)
        conn.index = len(self._ready)
        self._ready.append(conn)
        if self.observer is not None:
            self.observer.connected(self._clock() - conn.started)

    def refused(self, conn: Conn, reason: str, detail: str) -> None:
        """The peer refused, or broke the protocol: a failure, or a drop once held."""
        if conn.state == READY:
            self._dropped(conn, reason, detail)
        else:
            self._fail(conn, reason, detail)

    def lost(self, conn: Conn, reason: str) -> None:
        """The connection went away (closed, reset)."""
        if conn.state == READY:
            self._dropped(conn, reason, "a held connection was lost")
        elif conn.state != CLOSED:
            self._fail(conn, reason, "connection lost during the handshake")

    def server_event(self, conn: Conn) -> None:
        self._status.events += 1

    def answered(self, conn: Conn, *, error: bool) -> None:
        """The request in flight on ``conn`` was answered."""
        phase = self._phase
        request_id = conn.pending_id
        conn.pending_id = -1
        sent = self._sent.pop(request_id, None)
        if sent is not None:
            self._tell_answer(request_id, sent, "error reply" if error else None)
            return
        entry = self._pending_requests.pop(request_id, None)
        if phase is None or entry is None:
            return
        phase.in_flight -= 1
        now = self._clock()
        if error:
            phase.result.errors += 1
        else:
            phase.result.requests += 1
            phase.result.record(int((now - entry[1]) * 1e6))
        if phase.interval is None and now < phase.end:
            self._send_request(now, now)

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
            sock = self._socket_type(socket.AF_INET, socket.SOCK_STREAM)
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
        conn = Conn(sock, self._clock())
        fd = sock.fileno()
        self._conns[fd] = conn
        self._handshaking[fd] = conn
        self._epoll.register(fd, _EVENT_OUT)
        return True

    def _on_connected(self, conn: Conn) -> None:
        code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._fail(conn, errno.errorcode.get(code, str(code)), os.strerror(code))
            return
        self._epoll.modify(conn.sock.fileno(), _EVENT_IN)
        self.protocol.connected(self, conn)

    def _expire_handshakes(self, now: float) -> None:
        limit = now - self._handshake_timeout
        for conn in [c for c in self._handshaking.values() if c.started < limit]:
            self._fail(conn, "timeout", f"no handshake within {self._handshake_timeout:g} s")

    def _expire_requests(self, now: float) -> None:
        """A request of ``send`` unanswered in time fails, and its connection is dropped:
        a connection that stalls is not one to hold (nor one HTTP/1.1 may ask again)."""
        limit = now - self._request_timeout
        for request_id, sent in [item for item in self._sent.items() if item[1][2] < limit]:
            conn = sent[0]
            del self._sent[request_id]
            conn.pending_id = -1
            self._tell_answer(request_id, sent, "timeout")
            self._dropped(conn, "timeout", f"no answer within {self._request_timeout:g} s")

    def _tell_answer(
        self, request_id: int, sent: tuple[Conn, str, float], error: str | None
    ) -> None:
        if self.observer is not None:
            self.observer.answered(request_id, sent[1], self._clock() - sent[2], error)

    def _fail(self, conn: Conn | None, reason: str, detail: str) -> None:
        status = self._status
        status.failed += 1
        status.failures[reason] = status.failures.get(reason, 0) + 1
        if status.first_error is None:
            status.first_error = f"{reason}: {detail}"
        if status.failed >= self._failure_budget():
            self._stop_growing = True
        if self.observer is not None:
            self.observer.failed(reason, detail)
        if conn is not None:
            self._close(conn, counted=False)

    def _dropped(self, conn: Conn, reason: str, detail: str) -> None:
        status = self._status
        status.drops[reason] = status.drops.get(reason, 0) + 1
        if status.first_drop is None:
            status.first_drop = f"{reason}: {detail}"
        self._close(conn, counted=True, reason=reason)
        if self.observer is not None:
            self.observer.dropped(reason, detail)

    def _close(self, conn: Conn, *, counted: bool, reason: str = "closed") -> None:
        if conn.state == CLOSED:
            return
        was_ready = conn.state == READY
        conn.state = CLOSED
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
        if conn.pending_id >= 0 and conn.pending_id in self._sent:
            request_id, conn.pending_id = conn.pending_id, -1
            self._tell_answer(request_id, self._sent.pop(request_id), reason)
        if conn.pending_id >= 0:
            self._pending_requests.pop(conn.pending_id, None)
            conn.pending_id = -1
            if self._phase is not None:
                self._phase.result.errors += 1
                self._phase.in_flight -= 1
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(fd)
        conn.sock.close()
        conn.parser = conn.extra = None

    # --- bytes in and out ---------------------------------------------------------------------

    def _flush(self, conn: Conn) -> None:
        try:
            sent = conn.sock.send(conn.wbuf)
        except BlockingIOError:
            return
        except OSError as exc:
            self.lost(conn, _reason(exc))
            return
        conn.wbuf = conn.wbuf[sent:]
        if not conn.wbuf:
            self._epoll.modify(conn.sock.fileno(), _EVENT_IN)

    def _on_readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self.lost(conn, _reason(exc))
            return
        if not data:
            # Let the protocol see the end first (h11 and wsproto turn it into their event).
            self.protocol.received(self, conn, b"")
            if conn.state != CLOSED:
                self.lost(conn, "closed")
            return
        self.protocol.received(self, conn, data)

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
        conn.pending_id = request_id
        conn.pending_since = scheduled
        self._pending_requests[request_id] = (conn, scheduled)
        phase.in_flight += 1
        self.protocol.send_request(self, conn, next(phase.kinds), request_id)

    def _next_idle(self) -> Conn | None:
        ready = self._ready
        count = len(ready)
        for _ in range(min(count, 4096)):
            self._ready_cursor = (self._ready_cursor + 1) % count
            conn = ready[self._ready_cursor]
            if conn.pending_id < 0:
                return conn
        return None


def _reason(exc: OSError) -> str:
    if exc.errno is None:
        return type(exc).__name__
    return errno.errorcode.get(exc.errno, str(exc.errno))


__all__ = ["IP_BIND_ADDRESS_NO_PORT", "Swarm", "SwarmObserver", "SwarmStatus", "parse_mix"]
