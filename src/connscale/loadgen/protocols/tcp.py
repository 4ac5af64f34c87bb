"""Raw TCP: connect and hold; with a probe line, a line back proves each connection is served.

Without ``probe`` a connection counts as held once the kernel completes the TCP handshake
(the server's accept may still be pending: the bench's settling covers that). With
``probe`` each connection sends that line and is ready at the first line back; traffic
(``echo``) then sends the probe again and times the line that answers it.
"""

from __future__ import annotations

from connscale.errors import ConfigurationError
from connscale.loadgen.protocols.base import (
    CLOSED,
    HANDSHAKE,
    READY,
    ClientProtocol,
    Conn,
    Link,
    ProtocolOptions,
)
from connscale.loadgen.protocols.lines import read_lines


class TcpProtocol(ClientProtocol):
    """Hold plain TCP connections; optionally check each with a line it must answer."""

    name = "tcp"
    request_kinds = frozenset({"echo"})

    def __init__(self, options: ProtocolOptions) -> None:
        super().__init__(options)
        probe = options.probe
        if probe is not None and (not probe or "\n" in probe or "\r" in probe):
            raise ConfigurationError("the probe must be one non-empty line without newlines")
        self.probe = None if probe is None else probe.encode() + b"\n"

    def traffic_mix(self) -> str | None:
        return "echo" if self.probe is not None else None

    def connected(self, link: Link, conn: Conn) -> None:
        if self.probe is None:
            link.ready(conn)
            return
        conn.state = HANDSHAKE
        link.write(conn, self.probe)

    def received(self, link: Link, conn: Conn, data: bytes) -> None:
        lines = read_lines(conn, data)
        if lines is None:
            link.refused(conn, "protocol", "a line over the size limit")
            return
        for _ in lines:
            if conn.state == HANDSHAKE:
                link.ready(conn)
            elif conn.state == READY and conn.pending_id >= 0:
                link.answered(conn, error=False)
            elif conn.state == READY:
                link.server_event(conn)
            if conn.state == CLOSED:
                return

    def send_request(self, link: Link, conn: Conn, kind: str, request_id: int) -> None:
        if self.probe is None:
            raise ConfigurationError("raw TCP traffic needs a probe line the server answers")
        link.write(conn, self.probe)


__all__ = ["TcpProtocol"]
