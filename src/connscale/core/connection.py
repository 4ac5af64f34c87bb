"""The connection core: every per-connection decision, for all connections of one engine.

Sans-I/O, after websockets' ``protocol.py`` and h11's ``Connection``, but one object for
thousands of connections: the engines feed it bytes received, end of input, output drained
and clock ticks; it decides what to send, when to stop and resume reading, when to close,
and when it must be woken next, and tells the engine through a ``Wire`` (write, pause,
close, wake). Engines decide nothing else, so both engines behave the same because they run
this code. It owns:

* framing: newline-delimited JSON (TCP, stdio), searched incrementally; HTTP/1.1 requests;
* turns: a client pipelining many frames gets ``FRAMES_PER_TURN`` of them handled, then the
  others' events are polled before its next turn (reading from it stops meanwhile);
* owed answers: a connection that must close (half-close by the client, a frame too large,
  a server drain) first gets the answers of the calls it is owed, then closes;
* flow control: output above the high water mark stops reading; below the low mark reading
  resumes; above ``max_write_buffer`` the connection is closed; a client that stays paused
  for the handshake timeout is closed (it does not read its answers);
* timeouts on a ``TimerWheel``: the handshake (first message or request), idle sessions,
  HTTP keep-alive; all from the clock the engine passes in.

Per connection it keeps a few bytes in columns indexed by the connection id (the fd in the
epoll engine): kind, state bits, session slot, generation and activity stamp. Objects exist
only while bytes are in flight (a ``LineReader`` holding a partial frame, an ``HttpReader``
while a request is read, a ``Call`` while a request is answered), so an idle TCP session
costs its session-table row and these columns, and no Python object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol, cast

from connscale.core._lazy_memory import lazy_zeroed, regrown
from connscale.core.protocol.framing import TOO_LARGE, LineReader, frame_end
from connscale.core.protocol.http import McpHttp, OpenListen, OpenStream, sse_event
from connscale.core.protocol.httpwire import CHUNK_END, HttpError, HttpReader, ReaderPool, chunk
from connscale.core.protocol.jsonrpc import (
    INVALID_REQUEST,
    ClientResponse,
    RequestId,
    encode_error,
    encode_notification,
)
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.mcp import (
    Call,
    CallRunner,
    Cancel,
    Listen,
    McpProtocol,
    SessionKey,
)
from connscale.core.protocol.stateless import subscription_meta
from connscale.core.timers import TimerWheel, timer_resolution
from connscale.errors import SlotError, TableFullError

__all__ = ["FRAMES_PER_TURN", "ConnectionCore", "CoreStatistics", "Wire"]

_log = logging.getLogger(__name__)

#: Frames one connection gets handled before the others get a turn: a client pipelining
#: thousands of requests in one read must not hold everyone else's answers for that long.
FRAMES_PER_TURN: Final = 16

# What a connection is, one byte each.
FREE: Final = 0
LINE: Final = 1  # newline-delimited JSON-RPC: TCP or stdio, one session per connection
HTTP: Final = 2  # HTTP/1.1, between or inside requests
STREAM: Final = 3  # an open server-sent event stream that holds a session slot
LISTEN: Final = 4  # a 2026-07-28 subscriptions/listen event stream (no session)

# State bits, one byte each.
_PAUSED: Final = 1  # output above the high water mark: reading stopped
_HALF_CLOSED: Final = 2  # the client shut its side: answer what it asked, then close
_CLOSING: Final = 4  # close once the answers owed are out (frame too large, drain)
_BACKLOG: Final = 8  # frames or requests wait for their turn: reading stopped
_BUSY: Final = 16  # HTTP: a request is being answered
_SERVING: Final = 32  # HTTP: inside the loop that answers queued requests (no re-entry)
#: Input is read and dropped: the connection closes once its answers are out. It is read
#: rather than left in the kernel, because closing a socket with unread input sends a reset,
#: which can destroy the answers just sent before the client reads them.
_DISCARD: Final = 64
_READING_OFF: Final = _PAUSED | _HALF_CLOSED | _BACKLOG

_FD_BITS: Final = 32  # a timer entry packs (generation << 32) | connection
_FD_MASK: Final = (1 << _FD_BITS) - 1
_NO_SLOT: Final = -1  # HTTP: before the first request
_ANSWERED: Final = -2  # HTTP: waiting for the next request on a kept-alive connection

_FRAME_TOO_LARGE: Final = (
    encode_error(None, INVALID_REQUEST, "frame too large: connection closed") + b"\n"
)


class Wire(Protocol):
    """What an engine does for the core: move bytes, stop or resume reading, close, wake."""

    def write(self, connection: int, data: bytes) -> int:
        """Send ``data`` or buffer what the kernel does not take; the bytes still buffered."""
        ...

    def set_reading(self, connection: int, reading: bool) -> None: ...

    def disconnect(self, connection: int, flush: bool) -> None:
        """Close now, or once buffered output is sent (``flush``); then call ``closed``."""
        ...

    def call_soon(self) -> None:
        """Call ``ConnectionCore.run_backlog`` after polling the other connections."""
        ...

    def wake_at(self, when: float) -> None:
        """Call ``ConnectionCore.tick`` once the clock reads ``when``."""
        ...


@dataclass(frozen=True, slots=True)
class CoreStatistics:
    """What one core holds: open connections, live sessions, open event streams, and how
    many connections it has accepted since it started."""

    connections: int
    sessions: int
    streams: int
    accepted: int


class ConnectionCore:
    """Every connection of one engine: ids are ``0 <= id < capacity`` (fds for epoll).

    ``http`` (when given) makes the listener an HTTP server for MCP Streamable HTTP;
    otherwise connections speak newline-delimited JSON-RPC (TCP, stdio).
    """

    def __init__(
        self,
        protocol: McpProtocol,
        runner: CallRunner,
        capacity: int,
        *,
        clock: Callable[[], float],
        http: McpHttp | None = None,
        max_connections: int | None = None,
        keepalive_timeout: float | None = None,
    ) -> None:
        limits = protocol.limits
        self.protocol = protocol
        self.runner = runner
        self.http = http
        self.limits: ServerLimits = limits
        self.clock = clock
        self.capacity = capacity
        self.max_connections = max_connections or limits.connection_limit(capacity)
        self.connections = 0
        self.accepted = 0
        self.wire: Wire | None = None
        # Columns are zeroed maps the kernel commits page by page as connections touch them
        # (lazy_zeroed): a worker sized for 20,000 connections pays for the ones it has, and
        # forked workers do not each write ~0.7 MB of columns at start. Zero is each
        # column's state for a free connection (a free connection's slot is never read).
        self._kind = _column(capacity)
        self._state = _column(capacity)
        self._slot = _column(capacity * 4, "i")
        self._generation = _column(capacity * 4, "I")
        self._keepalive = (
            keepalive_timeout if keepalive_timeout is not None else (limits.handshake_timeout)
        )
        # Activity stamps (timer ticks): when an HTTP connection began waiting for a
        # request, or when a session last moved bytes. Only when a timeout needs them.
        self._stamp: memoryview[int] | None = None
        if http is not None or limits.idle_timeout is not None:
            self._stamp = _column(capacity * 4, "I")
        now = clock()
        keepalive = self._keepalive if http is not None else None
        self._timers = TimerWheel(
            timer_resolution(limits.handshake_timeout, keepalive, limits.idle_timeout), now
        )
        self._stall_timers = TimerWheel(timer_resolution(limits.handshake_timeout), now)
        self._stalled_since: dict[int, int] = {}
        self._line_readers: dict[int, LineReader] = {}  # only while a frame is incomplete
        self._http_readers: dict[int, HttpReader] = {}  # only while a request is in flight
        self._backlog: set[int] = set()
        self._backlog_scheduled = False
        self._reader_pool = ReaderPool(limits.max_header_bytes, limits.max_frame_bytes)
        # HTTP: requests pipelined behind the one being answered may hold this much.
        self._max_queued = limits.max_header_bytes + limits.max_frame_bytes
        # Session slot -> connection, for messages to a session that is not the one being
        # served (list changes, resource updates) on an open event stream. (A line
        # session's slot is its connection's number: it needs no entry.)
        # A column, not a dict: a dict entry and its two int objects cost ~130 B a session.
        # Entries are checked against the connection's own slot when read, so a zero (or
        # stale) entry is never taken for a mapping.
        self._connection_of = _column((protocol.table.capacity if http else 1) * 4, "i")
        self._streams = 0
        # subscriptions/listen streams (2026-07-28), in columns: what each asked for and its
        # id (an integer id here; other ids, and watched resources, in small dicts).
        self._listen_flags = _column(capacity)
        self._listen_id = _column(capacity * 8, "q")
        self._listen_other_ids: dict[int, RequestId] = {}
        self._listen_uris: dict[str, set[int]] = {}
        self._listens = 0
        # Listens on newline connections (stdio, TCP): few, so a dict of lists.
        self._line_listens: dict[int, list[Listen]] = {}
        # HTTP calls in flight, so that a connection that goes away cancels its call.
        self._http_calls: dict[int, Call] = {}
        protocol.broadcast = self._broadcast
        protocol.deliver = self._deliver
        protocol.announce = self._announce
        if http is not None:
            http.bind(self)

    # -- the engine's side ---------------------------------------------------------------------

    def attach(self, wire: Wire) -> None:
        self.wire = wire

    def open(self, connection: int) -> bool:
        """A connection was accepted; False: refuse it (the engine closes it at once)."""
        if self.connections >= self.max_connections or connection >= self.capacity:
            return False
        if self.http is None:
            # A line connection's session slot is its own number: no column maps one to
            # the other (8 bytes a session less).
            try:
                self.protocol.open_session(slot=connection)
            except (TableFullError, SlotError):
                return False
            self._kind[connection] = LINE
        else:
            self._kind[connection] = HTTP
            self._slot[connection] = _NO_SLOT
        self._state[connection] = 0
        self.connections += 1
        self.accepted += 1
        timers = self._timers
        timers.refresh(self.clock())
        if self._stamp is not None:
            self._stamp[connection] = timers.now
        self._arm(timers, self.limits.handshake_timeout, connection)
        return True

    def receive(self, connection: int, data: bytes) -> None:
        """Bytes arrived on ``connection``."""
        kind = self._kind[connection]
        if self._state[connection] & _DISCARD:
            return
        if kind == LINE:
            if self._stamp is not None:
                self._stamp[connection] = self._timers.now
            reader = self._line_readers.get(connection)
            if reader is None:
                self._line_fast(connection, data)
            else:
                reader.feed(data)
                self._line_turn(connection, reader)
        elif kind == HTTP:
            self._http_receive(connection, data)
        # STREAM: the client sends nothing on an event stream; stray bytes are ignored.

    def eof(self, connection: int) -> None:
        """The client shut down its sending side: answer what it asked, then close."""
        kind = self._kind[connection]
        if kind == FREE:
            return
        self._state[connection] |= _HALF_CLOSED
        self._finish_if_done(connection)
        if self._kind[connection] != FREE:
            self._update_reading(connection)

    def drained(self, connection: int) -> None:
        """Output buffered for ``connection`` fell below the low water mark."""
        state = self._state[connection]
        if state & _PAUSED:
            self._state[connection] = state & ~_PAUSED
            self._stalled_since.pop(connection, None)
            if state & _BACKLOG:
                self._schedule_backlog()
            self._update_reading(connection)

    def closed(self, connection: int) -> None:
        """The engine closed ``connection`` (asked to, or on a reset): free its state."""
        kind = self._kind[connection]
        if kind == FREE:
            return
        self.connections -= 1
        self._kind[connection] = FREE
        self._state[connection] = 0
        self._generation[connection] = (self._generation[connection] + 1) & 0xFFFFFFFF
        if kind == LINE:
            slot = connection
        else:
            slot = self._slot[connection]
            self._slot[connection] = _NO_SLOT
        self._stalled_since.pop(connection, None)
        self._line_readers.pop(connection, None)
        self._http_readers.pop(connection, None)  # a reader mid-request is not reused
        self._backlog.discard(connection)
        protocol = self.protocol
        call = self._http_calls.pop(connection, None)
        if call is not None:  # the client gave up on its request: stop working on it
            self.runner.cancel(call.key, call.request_id)
        if kind == LINE:
            key = protocol.session_key(slot)
            self._line_listens.pop(connection, None)
            self.runner.session_closed(key)
            protocol.close_session(slot)
        elif kind == STREAM:
            self._streams -= 1
            assert self.http is not None
            self.http.stream_closed(slot)
        elif kind == LISTEN:
            self._forget_listen(connection)

    def tick(self, now: float) -> float | None:
        """Expire due timers; returns when to be called next (None: nothing pending)."""
        for entry in self._timers.advance(now):
            self._on_timer(entry)
        for entry in self._stall_timers.advance(now):
            self._on_stall(entry)
        deadlines = [
            d for d in (self._timers.next_deadline(), self._stall_timers.next_deadline()) if d
        ]
        return min(deadlines) if deadlines else None

    def run_backlog(self) -> None:
        """One more turn for every connection with frames or requests waiting."""
        self._backlog_scheduled = False
        for connection in list(self._backlog):
            state = self._state[connection]
            if state & _PAUSED or self._kind[connection] == FREE:
                continue  # flow control: drained() schedules it again
            if self._kind[connection] == LINE:
                reader = self._line_readers.get(connection)
                if reader is None:
                    self._backlog.discard(connection)
                    self._state[connection] = state & ~_BACKLOG
                    continue
                self._line_turn(connection, reader)
            else:
                self._serve_http(connection)
        if any(not self._state[c] & _PAUSED for c in self._backlog):
            self._schedule_backlog()

    def close_gracefully(self) -> None:
        """Drain: every connection closes once the answers it is owed are sent; a listen
        stream gets its listen request's answer first, as the specification asks."""
        for connection in self.open_connections():
            if self._kind[connection] == LISTEN:
                result = self.protocol.listen_result(self._listen_id_of(connection))
                self._write(connection, chunk(sse_event(result)) + CHUNK_END)
            for listen in self._line_listens.pop(connection, ()):
                self._write(connection, self.protocol.listen_result(listen.request_id) + b"\n")
            if self._kind[connection] == FREE:
                continue
            self._state[connection] |= _CLOSING
            self._finish_if_done(connection)

    def close_all(self) -> None:
        """Close every connection now."""
        wire = self.wire
        for connection in self.open_connections():
            if wire is not None:
                wire.disconnect(connection, False)
            self.closed(connection)
        self._timers.clear()
        self._stall_timers.clear()

    def open_connections(self) -> list[int]:
        kinds = self._kind
        found: list[int] = []
        index = 0
        while True:
            index = _next_nonzero(kinds, index)
            if index < 0:
                return found
            found.append(index)
            index += 1

    def idle(self) -> bool:
        """No frames or requests wait for a turn (calls in flight are the runner's)."""
        return not self._backlog and not self._http_readers_busy()

    def statistics(self) -> CoreStatistics:
        # Rows kept after an HTTP initialize for the GET that follows are not sessions held.
        kept = self.http.kept_rows if self.http is not None else 0
        return CoreStatistics(
            self.connections,
            len(self.protocol.table) - kept,
            self._streams + self._listens,
            self.accepted,
        )

    def kind_of(self, connection: int) -> int:
        """0 free, 1 newline JSON, 2 HTTP, 3 event stream, 4 listen stream."""
        return self._kind[connection]

    def is_open(self, connection: int, generation: int) -> bool:
        return self._kind[connection] != FREE and self._generation[connection] == generation

    # -- writing -------------------------------------------------------------------------------

    def _write(self, connection: int, data: bytes) -> bool:
        """Send ``data``; False when the connection was closed for it (never reads)."""
        wire = self.wire
        assert wire is not None
        buffered = wire.write(connection, data)
        if buffered <= self.limits.write_high_water:
            return self._kind[connection] != FREE
        if buffered > self.limits.max_write_buffer:
            wire.disconnect(connection, False)  # the client does not read its answers
            self.closed(connection)
            return False
        state = self._state[connection]
        if not state & _PAUSED:
            self._state[connection] = state | _PAUSED
            self._update_reading(connection)
            stall = self._stall_timers
            stall.refresh(self.clock())
            self._stalled_since[connection] = stall.now
            self._arm(stall, self.limits.handshake_timeout, connection)
        return True

    def _update_reading(self, connection: int) -> None:
        wire = self.wire
        assert wire is not None
        wire.set_reading(connection, not self._state[connection] & _READING_OFF)

    def _finish_if_done(self, connection: int) -> None:
        """Close a half-closed or closing connection once nothing more is owed to it."""
        state = self._state[connection]
        if not state & (_HALF_CLOSED | _CLOSING) or state & (_BACKLOG | _BUSY):
            return
        kind = self._kind[connection]
        if kind == LINE:
            if self.protocol.table.pending_count(connection):
                return
            reader = self._line_readers.get(connection)
            if reader is not None and reader.pending_frames() and not state & _CLOSING:
                return
        elif kind == HTTP:
            requests = self._http_readers.get(connection)
            if requests is not None and requests.requests and not state & _CLOSING:
                return
        wire = self.wire
        assert wire is not None
        wire.disconnect(connection, True)

    # -- newline-delimited JSON-RPC ------------------------------------------------------------

    def _line_fast(self, connection: int, data: bytes) -> None:
        """Frame a read with no partial frame before it, without building a reader."""
        limit = self.limits.max_frame_bytes
        start = 0
        end = len(data)
        frames = 0
        while start < end:
            newline = data.find(b"\n", start)
            if newline < 0:
                break
            if frames == FRAMES_PER_TURN:
                # More than one turn's worth: keep the rest for the next turn.
                reader = LineReader(limit, data[start:])
                self._line_readers[connection] = reader
                self._enter_backlog(connection)
                return
            first = start
            stop = frame_end(data, first, newline)
            start = newline + 1
            if stop - first > limit:
                self._too_large(connection)
                return
            if stop > first:  # empty lines are skipped
                frames += 1
                generation = self._generation[connection]
                self._handle_line(connection, data[first:stop])
                if self._generation[connection] != generation or self._kind[connection] == FREE:
                    return
        if start < end:
            reader = LineReader(limit, data[start:])
            if len(reader) > limit and not (len(reader) == limit + 1 and data[-1] == 13):
                self._too_large(connection)
                return
            self._line_readers[connection] = reader
        self._finish_if_done(connection)

    def _line_turn(self, connection: int, reader: LineReader) -> None:
        """Handle up to one turn of frames from ``reader``."""
        generation = self._generation[connection]
        for _ in range(FRAMES_PER_TURN):
            frame = reader.next_frame()
            if frame is None:
                break
            if frame is TOO_LARGE:
                self._too_large(connection)
                return
            self._handle_line(connection, frame)
            if self._generation[connection] != generation or self._kind[connection] == FREE:
                return
        else:
            if reader.pending_frames():
                self._enter_backlog(connection)
                return
        if not len(reader):
            self._line_readers.pop(connection, None)
        self._leave_backlog(connection)
        self._finish_if_done(connection)

    def _enter_backlog(self, connection: int) -> None:
        state = self._state[connection]
        if not state & _BACKLOG:
            self._state[connection] = state | _BACKLOG
            self._backlog.add(connection)
            self._update_reading(connection)
        self._schedule_backlog()

    def _leave_backlog(self, connection: int) -> None:
        state = self._state[connection]
        if state & _BACKLOG:
            self._state[connection] = state & ~_BACKLOG
            self._backlog.discard(connection)
            self._update_reading(connection)

    def _schedule_backlog(self) -> None:
        if not self._backlog_scheduled and self.wire is not None:
            self._backlog_scheduled = True
            self.wire.call_soon()

    def _handle_line(self, connection: int, frame: bytes | bytearray) -> None:
        protocol = self.protocol
        outcome = protocol.handle_frame(connection, frame)  # a line session's slot
        if outcome is None:
            return
        if isinstance(outcome, bytes):
            self._write(connection, outcome + b"\n")
        elif isinstance(outcome, Call):
            outcome.channel = self
            outcome.runner = self.runner
            outcome.connection = connection
            outcome.generation = self._generation[connection]
            self.runner.start(outcome)
        elif isinstance(outcome, Cancel):
            if not self._end_line_listen(connection, outcome.request_id):
                self.runner.cancel(protocol.session_key(outcome.slot), outcome.request_id)
        elif isinstance(outcome, Listen):
            self._line_listens.setdefault(connection, []).append(outcome)
            self._write(connection, outcome.acknowledgement + b"\n")
        elif isinstance(outcome, ClientResponse):
            self.runner.answered(protocol.session_key(connection), outcome)

    def _too_large(self, connection: int) -> None:
        """A frame over the limit: say so, answer the calls already owed, then close."""
        self._line_readers.pop(connection, None)
        self._leave_backlog(connection)
        self._state[connection] |= _CLOSING | _DISCARD
        if self._write(connection, _FRAME_TOO_LARGE):
            self._update_reading(connection)
            self._finish_if_done(connection)

    # -- calls: their answers and notifications (CallChannel) ----------------------------------

    def finish_call(self, call: Call, reply: bytes | None) -> None:
        """A call ended: send its ``reply`` (None: cancelled, nothing is sent)."""
        connection = call.connection
        alive = self.is_open(connection, call.generation)
        if self.http is not None:
            self.http.finish_call(call, reply, connection if alive else -1)
            return
        if not alive:
            return
        if reply is not None and not self._write(connection, reply + b"\n"):
            return
        self._finish_if_done(connection)

    def notify_call(self, call: Call, message: bytes) -> bool:
        """Send a call's notification or request to its client; False if it reaches nobody."""
        connection = call.connection
        if not self.is_open(connection, call.generation):
            if self.http is not None:
                return self.http.notify_session(call, message)
            return False
        if self.http is not None:
            return self.http.notify_call(call, message, connection)
        return self._write(connection, message + b"\n")

    def _broadcast(self, message: bytes) -> None:
        """A message for every ready session (a list changed)."""
        line = message + b"\n"
        protocol = self.protocol
        for connection in self.open_connections():
            kind = self._kind[connection]
            if kind == LINE and protocol.is_initialized(connection):
                self._write(connection, line)
            elif kind == STREAM and self.http is not None:
                self.http.push(connection, message)

    def _deliver(self, keys: set[SessionKey], message: bytes) -> None:
        """A message for the sessions in ``keys`` (subscribers of a resource)."""
        if self.http is not None:
            for key in keys:
                if isinstance(key, bytes):
                    self.http.push_session(key, message)
            return
        line = message + b"\n"
        for key in keys:
            if isinstance(key, int):
                connection = self._connection_holding(key, LINE)
                if connection is not None:
                    self._write(connection, line)

    # -- HTTP ------------------------------------------------------------------------------------

    def _http_receive(self, connection: int, data: bytes) -> None:
        reader = self._http_readers.get(connection)
        if reader is None:
            reader = self._reader_pool.acquire()
            self._http_readers[connection] = reader
        try:
            reader.feed(data)
        except HttpError as exc:
            self._http_fatal(connection, exc)
            return
        if reader.queued_bytes > self._max_queued:
            # A client pipelining more than one request's worth behind the one being
            # answered: it gets the answers it is owed, then the connection closes.
            self._state[connection] |= _CLOSING | _DISCARD
        self._serve_http(connection)

    def _serve_http(self, connection: int) -> None:
        """Answer up to one turn of the requests waiting on ``connection``, in order."""
        http = self.http
        assert http is not None
        reader = self._http_readers.get(connection)
        generation = self._generation[connection]
        self._state[connection] |= _SERVING
        served = 0
        try:
            while reader is not None and not self._state[connection] & _BUSY:
                if served == FRAMES_PER_TURN and reader.requests:
                    self._enter_backlog(connection)
                    return
                request = reader.pop()
                if request is None:
                    break
                served += 1
                self._state[connection] |= _BUSY
                if self._slot[connection] == _NO_SLOT:
                    self._slot[connection] = _ANSWERED  # the first request arrived in time
                outcome = http.handle(connection, request)
                if not self.is_open(connection, generation) or self._kind[connection] != HTTP:
                    return
                if isinstance(outcome, OpenStream):
                    self._open_stream(connection, outcome)
                    return
                if isinstance(outcome, OpenListen):
                    self._open_listen(connection, outcome)
                    return
                if outcome is not None:  # else a call runs (or already answered, if sync)
                    self._http_answered(connection, outcome, request.keep_alive)
                    if not self.is_open(connection, generation):
                        return
        finally:
            if self.is_open(connection, generation):
                self._state[connection] &= ~_SERVING
        self._after_http(connection)

    def _after_http(self, connection: int) -> None:
        """Nothing more to answer now: drop an idle reader, close if the end came."""
        reader = self._http_readers.get(connection)
        if reader is not None and reader.idle and not self._state[connection] & _BUSY:
            del self._http_readers[connection]
            self._reader_pool.release(reader)
        self._leave_backlog(connection)
        self._finish_if_done(connection)

    def generation_of(self, connection: int) -> int:
        return self._generation[connection]

    def track_call(self, connection: int, call: Call) -> None:
        """An HTTP call is running for ``connection``: it is cancelled if the client leaves."""
        self._http_calls[connection] = call

    def http_answer(self, connection: int, response: bytes, keep_alive: bool) -> None:
        """An HTTP call's response is ready (from ``McpHttp.finish_call``)."""
        self._http_calls.pop(connection, None)
        generation = self._generation[connection]
        self._http_answered(connection, response, keep_alive)
        if not self.is_open(connection, generation) or self._kind[connection] != HTTP:
            return
        if self._state[connection] & _SERVING:
            return  # a sync answer: the serving loop goes on with the next request
        reader = self._http_readers.get(connection)
        if reader is not None and reader.requests and not self._state[connection] & _CLOSING:
            self._enter_backlog(connection)  # the next request on the next turn
        else:
            self._after_http(connection)

    def http_write(self, connection: int, data: bytes) -> bool:
        """Part of a response (an event-stream chunk) for ``connection``."""
        return self._write(connection, data)

    def _http_answered(self, connection: int, response: bytes, keep_alive: bool) -> None:
        self._state[connection] &= ~_BUSY
        if not self._write(connection, response):
            return
        if self._stamp is not None:
            timers = self._timers
            timers.refresh(self.clock())
            self._stamp[connection] = timers.now
        if not keep_alive:
            self._state[connection] |= _CLOSING
            self._finish_if_done(connection)

    def _http_fatal(self, connection: int, error: HttpError) -> None:
        assert self.http is not None
        self._http_readers.pop(connection, None)
        self._state[connection] = (self._state[connection] | _CLOSING | _DISCARD) & ~_BUSY
        if self._write(connection, self.http.fatal(error)):
            self._update_reading(connection)
            self._finish_if_done(connection)

    def _open_stream(self, connection: int, stream: OpenStream) -> None:
        """The connection becomes a server-sent event stream holding a session slot."""
        self._state[connection] &= ~_BUSY
        reader = self._http_readers.pop(connection, None)
        if reader is not None and reader.idle:
            self._reader_pool.release(reader)
        self._kind[connection] = STREAM
        self._slot[connection] = stream.slot
        self._bind_slot(stream.slot, connection)
        self._streams += 1
        if self._stamp is not None:
            self._stamp[connection] = self._timers.now
        self._write(connection, stream.head)

    def _open_listen(self, connection: int, opened: OpenListen) -> None:
        """The connection becomes a subscriptions/listen stream (2026-07-28)."""
        self._state[connection] &= ~_BUSY
        reader = self._http_readers.pop(connection, None)
        if reader is not None and reader.idle:
            self._reader_pool.release(reader)
        listen = opened.listen
        self._kind[connection] = LISTEN
        self._slot[connection] = _ANSWERED
        self._listen_flags[connection] = listen.flags
        request_id = listen.request_id
        if isinstance(request_id, int) and -(1 << 63) <= request_id < (1 << 63):
            self._listen_id[connection] = request_id
        else:
            self._listen_other_ids[connection] = request_id
        for uri in listen.uris:
            self._listen_uris.setdefault(uri, set()).add(connection)
        self._listens += 1
        if self._stamp is not None:
            self._stamp[connection] = self._timers.now
        self._write(connection, opened.head)

    def _listen_id_of(self, connection: int) -> RequestId:
        other = self._listen_other_ids.get(connection)
        return other if other is not None else self._listen_id[connection]

    def _forget_listen(self, connection: int) -> None:
        self._listens -= 1
        self._listen_flags[connection] = 0
        self._listen_other_ids.pop(connection, None)
        for uri, listeners in list(self._listen_uris.items()):
            listeners.discard(connection)
            if not listeners:
                del self._listen_uris[uri]

    def _end_line_listen(self, connection: int, request_id: RequestId) -> bool:
        """``notifications/cancelled`` for a listen on a newline connection ends it."""
        listens = self._line_listens.get(connection)
        if not listens:
            return False
        for listen in listens:
            if listen.request_id == request_id:
                listens.remove(listen)
                return True
        return False

    def _announce(self, flag: int, method: str, uri: str | None) -> None:
        """A change for the listen streams that asked for it, tagged with each one's id."""
        if uri is None:
            targets = [c for c in self.open_connections() if self._listen_flags[c] & flag]
        else:
            targets = sorted(self._listen_uris.get(uri, ()))
        for connection in targets:
            if self._kind[connection] != LISTEN:
                continue
            params: dict[str, object] = {"_meta": subscription_meta(self._listen_id_of(connection))}
            if uri is not None:
                params["uri"] = uri
            self._write(connection, chunk(sse_event(encode_notification(method, params))))
        for connection, listens in list(self._line_listens.items()):
            for listen in listens:
                wanted = uri in listen.uris if uri is not None else listen.flags & flag
                if wanted and self._kind[connection] == LINE:
                    params = {"_meta": subscription_meta(listen.request_id)}
                    if uri is not None:
                        params["uri"] = uri
                    self._write(connection, encode_notification(method, params) + b"\n")

    def stream_connection(self, slot: int) -> int | None:
        """The connection of the open event stream holding ``slot``."""
        return self._connection_holding(slot, STREAM)

    def _bind_slot(self, slot: int, connection: int) -> None:
        column = self._connection_of
        if slot >= len(column):  # an HTTP table grows; a TCP one never does
            grown = regrown(column, max(slot + 1, len(column) * 2) * 4)
            column = self._connection_of = cast("memoryview[int]", grown)
        column[slot] = connection

    def _connection_holding(self, slot: int, kind: int) -> int | None:
        """The open connection of ``kind`` whose session is ``slot`` (a stale entry is not)."""
        if kind == LINE:  # a line session's slot is its connection
            return slot if slot < self.capacity and self._kind[slot] == LINE else None
        column = self._connection_of
        if slot >= len(column):
            return None
        connection = column[slot]
        if connection < 0 or self._kind[connection] != kind or self._slot[connection] != slot:
            return None
        return connection

    def end_stream(self, connection: int, last: bytes) -> None:
        """Send the end of an event stream, then close it."""
        if self._kind[connection] == STREAM:
            self._state[connection] |= _CLOSING
            if self._write(connection, last):
                self._finish_if_done(connection)

    def _http_readers_busy(self) -> bool:
        return any(reader.requests for reader in self._http_readers.values())

    # -- timeouts ------------------------------------------------------------------------------

    def _arm(self, wheel: TimerWheel, seconds: float, connection: int) -> None:
        entry = self._generation[connection] << _FD_BITS | connection
        if wheel.schedule(seconds, entry) and self.wire is not None:
            deadline = wheel.next_deadline()
            if deadline is not None:
                self.wire.wake_at(deadline)

    def _on_timer(self, entry: int) -> None:
        """A connection's timer expired: close it if it overstayed, else re-arm (lazily)."""
        connection = entry & _FD_MASK
        if self._generation[connection] != entry >> _FD_BITS or self._kind[connection] == FREE:
            return  # that connection is gone already
        timers = self._timers
        limits = self.limits
        kind = self._kind[connection]
        if kind == LINE:
            if not self.protocol.is_initialized(connection):
                self._expire(connection)  # no initialize in time (silent, or a byte a second)
                return
            allowed = limits.idle_timeout
        elif kind == HTTP:
            if self._state[connection] & _BUSY:  # a call is running: look again later
                timers.schedule(self._keepalive, entry)
                return
            # A new connection has the handshake timeout to send a whole request; a kept-alive
            # one the keep-alive timeout to send its next. Trickled bytes extend neither.
            first = self._slot[connection] == _NO_SLOT
            allowed = limits.handshake_timeout if first else self._keepalive
        else:  # STREAM: the client sends nothing; only the idle timeout applies
            allowed = limits.idle_timeout
        if allowed is None or self._stamp is None:
            return  # nothing more to watch: the entry is dropped
        due = self._stamp[connection] + timers.ticks(allowed)
        if due <= timers.now:
            self._expire(connection)
        else:
            timers.schedule_at(due, entry)

    def _on_stall(self, entry: int) -> None:
        """A paused client's stall timer expired: close it unless it read its answers since."""
        connection = entry & _FD_MASK
        since = self._stalled_since.get(connection)
        if since is None or self._generation[connection] != entry >> _FD_BITS:
            return
        stall = self._stall_timers
        due = since + stall.ticks(self.limits.handshake_timeout)
        if due <= stall.now:
            self._expire(connection)  # it does not read its answers
        else:
            stall.schedule_at(due, entry)

    def _expire(self, connection: int) -> None:
        wire = self.wire
        assert wire is not None
        wire.disconnect(connection, False)
        self.closed(connection)


def _column(nbytes: int, item_format: str = "B") -> memoryview[int]:
    """A zeroed column of ``item_format`` items, committed page by page (``lazy_zeroed``)."""
    return cast("memoryview[int]", lazy_zeroed(nbytes, item_format))


def _next_nonzero(data: memoryview[int], start: int) -> int:
    """The index of the first non-zero byte at or after ``start``, or -1."""
    end = len(data)
    while start < end:
        # lstrip is C-fast: skip a run of zero bytes in one step.
        chunk = bytes(data[start : start + 65536])
        stripped = chunk.lstrip(b"\x00")
        if stripped:
            return start + len(chunk) - len(stripped)
        start += len(chunk)
    return -1
