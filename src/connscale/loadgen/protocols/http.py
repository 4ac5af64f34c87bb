"""HTTP keep-alive: one ``GET`` per connection, then hold the idle kept-alive connection.

This is how a server's idle keep-alive connections are measured (and how an idle timeout
shows up: the server closes them, and the swarm counts each as dropped). Traffic (``get``)
sends the same request again on an idle connection and times the whole response. Between
exchanges a connection keeps no parser: h11 starts each exchange afresh, so a held idle
connection costs the load generator a few hundred bytes, not an h11 connection.
"""

from __future__ import annotations

import h11

from connscale.loadgen.protocols.base import (
    HANDSHAKE,
    MAX_MESSAGE_BYTES,
    READY,
    ClientProtocol,
    Conn,
    Link,
)


class HttpKeepAliveProtocol(ClientProtocol):
    """``GET path`` with keep-alive; ready once the first response has fully arrived."""

    name = "http"
    request_kinds = frozenset({"get"})
    default_mix = "get"

    def connected(self, link: Link, conn: Conn) -> None:
        conn.state = HANDSHAKE
        self.get(link, conn)

    def get(self, link: Link, conn: Conn) -> None:
        http = conn.parser = _new_parser()
        request = h11.Request(
            method="GET", target=self.path, headers=[(b"host", self.options.authority)]
        )
        link.write(conn, http.send(request) + (http.send(h11.EndOfMessage()) or b""))

    def received(self, link: Link, conn: Conn, data: bytes) -> None:
        http = conn.parser
        if not isinstance(http, h11.Connection):
            if not data:
                link.lost(conn, "closed")
                return
            # Bytes while no request is out: h11 reports them as the protocol error they are.
            http = conn.parser = _new_parser()
        try:
            http.receive_data(data)
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Response):
                    conn.extra = event.status_code
                elif isinstance(event, h11.EndOfMessage):
                    status = conn.extra if isinstance(conn.extra, int) else 0
                    conn.extra = None
                    if http.our_state is not h11.DONE or http.their_state is not h11.DONE:
                        link.lost(conn, "closed")  # not kept alive: nothing to hold
                        return
                    conn.parser = None  # idle again: the next exchange gets a fresh parser
                    if conn.state == HANDSHAKE:
                        if status >= 400:
                            link.refused(conn, "refused", f"GET {self.path} got HTTP {status}")
                            return
                        link.ready(conn)
                    elif conn.state == READY and conn.pending_id >= 0:
                        link.answered(conn, error=status >= 400)
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    link.lost(conn, "closed")
                    return
        except h11.ProtocolError as exc:
            link.refused(conn, "protocol", f"bad HTTP from the server: {exc}")

    def send_request(self, link: Link, conn: Conn, kind: str, request_id: int) -> None:
        self.get(link, conn)


def _new_parser() -> h11.Connection:
    return h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_MESSAGE_BYTES)


__all__ = ["HttpKeepAliveProtocol"]
