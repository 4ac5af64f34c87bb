"""WebSocket clients (RFC 6455) on wsproto's sans-I/O connection: handshake, hold, ping or echo.

wsproto does the handshake and the framing (masking, fragmentation, control frames); this
module only moves its bytes and turns its events into the swarm's. Traffic kinds: ``ping``
(a Ping frame, answered by the peer's Pong, as every RFC 6455 server must) and ``echo``
(a text message; any message back answers it, which suits an echo server).
"""

from __future__ import annotations

import contextlib

from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from connscale.loadgen.protocols.base import (
    HANDSHAKE,
    MAX_MESSAGE_BYTES,
    READY,
    ClientProtocol,
    Conn,
    Link,
)


class WebSocketProtocol(ClientProtocol):
    """Open a WebSocket to ``path`` and hold it; answer the server's pings."""

    name = "websocket"
    request_kinds = frozenset({"ping", "echo"})
    default_mix = "ping"
    default_path = "/"

    def connected(self, link: Link, conn: Conn) -> None:
        ws = WSConnection(ConnectionType.CLIENT)
        conn.parser = ws
        conn.state = HANDSHAKE
        host = self.options.authority.decode("ascii")
        link.write(conn, ws.send(Request(host=host, target=self.path)))

    def received(self, link: Link, conn: Conn, data: bytes) -> None:
        ws = conn.parser
        assert isinstance(ws, WSConnection | Connection)
        try:
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    link.ready(conn)
                elif isinstance(event, RejectConnection):
                    link.refused(
                        conn, "refused", f"the WebSocket handshake got HTTP {event.status_code}"
                    )
                    return
                elif isinstance(event, RejectData):
                    continue  # the body of a refusal, already reported
                elif isinstance(event, Ping):
                    link.write(conn, ws.send(event.response()))
                elif isinstance(event, Pong | TextMessage | BytesMessage):
                    if isinstance(event, TextMessage | BytesMessage) and len(event.data) > (
                        MAX_MESSAGE_BYTES
                    ):
                        link.refused(conn, "protocol", "a message over the size limit")
                        return
                    if conn.state == READY and conn.pending_id >= 0:
                        link.answered(conn, error=False)
                    elif conn.state == READY:
                        link.server_event(conn)
                elif isinstance(event, CloseConnection):
                    with contextlib.suppress(LocalProtocolError):
                        link.write(conn, ws.send(event.response()))
                    reason = f"closed by the server (code {event.code})"
                    link.lost(conn, reason)
                    return
        except (RemoteProtocolError, LocalProtocolError) as exc:
            link.refused(conn, "protocol", f"bad WebSocket data from the server: {exc}")
            return
        if isinstance(ws, WSConnection) and ws.connection is not None and conn.state == READY:
            # Past the handshake only the frame-level connection is needed: dropping the
            # handshake's h11 objects saves kilobytes on every held connection.
            conn.parser = ws.connection

    def send_request(self, link: Link, conn: Conn, kind: str, request_id: int) -> None:
        ws = conn.parser
        assert isinstance(ws, WSConnection | Connection)
        payload = b"connscale %d" % request_id
        event = Ping(payload=payload) if kind == "ping" else TextMessage(data=payload.decode())
        link.write(conn, ws.send(event))


__all__ = ["WebSocketProtocol"]
