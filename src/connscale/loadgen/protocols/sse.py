"""Server-sent events: hold a ``GET`` with ``Accept: text/event-stream`` and count events.

``EventStream`` splits an event stream into events. SSE framing is a few lines of the
WHATWG HTML standard (9.2.6: fields on lines, an event ends at a blank line); the parsers
that exist live inside HTTP clients (httpx-sse's decoder needs httpx and is private), and
the core's LineReader skips the blank lines that end events, so this one is written here:
bounded, incremental, and remembering how far it searched.
"""

from __future__ import annotations

import h11

from connscale.loadgen.protocols.base import (
    HANDSHAKE,
    MAX_MESSAGE_BYTES,
    ClientProtocol,
    Conn,
    Link,
)


class EventStream:
    """Events out of an SSE byte stream: ``feed`` returns the data of each finished event."""

    __slots__ = ("_buffer", "_data", "_searched", "too_large")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._searched = 0
        self._data: list[bytes] | None = None  # data lines of the event being read
        self.too_large = False

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        """The ``data`` of every event completed by ``data`` (lines joined by ``\\n``)."""
        if self.too_large:
            return []
        buffer = self._buffer
        buffer += data
        events: list[bytes] = []
        start = 0
        while True:
            newline = buffer.find(b"\n", max(start, self._searched))
            if newline < 0:
                self._searched = len(buffer)
                break
            line = bytes(buffer[start:newline]).rstrip(b"\r")
            start = self._searched = newline + 1
            if not line:
                if self._data is not None:
                    events.append(b"\n".join(self._data))
                    self._data = None
            elif line.startswith(b"data"):
                name, _, value = line.partition(b":")
                if name == b"data":
                    self._data = self._data or []
                    self._data.append(value[1:] if value.startswith(b" ") else value)
            # Comments (":...") and the event/id/retry fields do not make an event by
            # themselves: an event with no data line is not dispatched (the standard's rule).
        del buffer[:start]
        self._searched = max(0, self._searched - start)
        if len(buffer) > MAX_MESSAGE_BYTES or sum(len(d) for d in self._data or ()) > (
            MAX_MESSAGE_BYTES
        ):
            self.too_large = True
            self._buffer = bytearray()
        return events


class SseProtocol(ClientProtocol):
    """``GET path`` with ``Accept: text/event-stream``; ready at a 200 event-stream answer."""

    name = "sse"
    default_path = "/events"

    def connected(self, link: Link, conn: Conn) -> None:
        http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_MESSAGE_BYTES)
        conn.parser = http
        conn.state = HANDSHAKE
        request = h11.Request(
            method="GET",
            target=self.path,
            headers=[
                (b"host", self.options.authority),
                (b"accept", b"text/event-stream"),
                (b"cache-control", b"no-cache"),
            ],
        )
        link.write(conn, http.send(request) + (http.send(h11.EndOfMessage()) or b""))

    def received(self, link: Link, conn: Conn, data: bytes) -> None:
        http = conn.parser
        assert isinstance(http, h11.Connection)
        try:
            http.receive_data(data)
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Response):
                    kind = dict(event.headers).get(b"content-type", b"")
                    if event.status_code != 200 or not kind.startswith(b"text/event-stream"):
                        link.refused(
                            conn,
                            "refused",
                            f"GET {self.path} got HTTP {event.status_code} "
                            f"{kind.decode('latin-1') or 'without a content type'}, "
                            "not a 200 event stream",
                        )
                        return
                    conn.extra = EventStream()
                    link.ready(conn)
                elif isinstance(event, h11.Data):
                    stream = conn.extra
                    assert isinstance(stream, EventStream)
                    for _ in stream.feed(event.data):
                        link.server_event(conn)
                    if stream.too_large:
                        link.refused(conn, "protocol", "an event over the size limit")
                        return
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    link.lost(conn, "closed")  # the stream ended: the server let go
                    return
        except h11.RemoteProtocolError as exc:
            link.refused(conn, "protocol", f"bad HTTP from the server: {exc}")


__all__ = ["EventStream", "SseProtocol"]
