"""What a load-generator protocol is: a small object that turns bytes into connection events.

The ``Swarm`` owns the sockets, the epoll loop, the clock and the counting; a protocol owns
only the bytes of one kind of conversation (MCP, WebSocket, raw TCP, SSE, HTTP keep-alive).
It is handed each connection's record (``Conn``) and reports what happened through the
``Link`` the swarm gives it: the handshake finished (``ready``), a request was answered,
the peer refused or broke the protocol, or the connection was lost. One protocol object
serves every connection of a swarm; per-connection state lives in ``Conn.parser`` and
``Conn.extra`` only while it is needed, so a held connection stays a few hundred bytes.
"""

from __future__ import annotations

import socket
from typing import ClassVar, Protocol

import msgspec

from connscale.errors import ConfigurationError

#: A line, message or HTTP response longer than this is a protocol error, not a reason to
#: buffer it: a load generator must not be the process that runs out of memory.
MAX_MESSAGE_BYTES = 1 << 20

# Connection states the swarm knows; HANDSHAKE_2 is a protocol's second handshake step.
CONNECTING, HANDSHAKE, HANDSHAKE_2, READY, CLOSED = range(5)


class Conn:
    """One client connection: a few fields; parser state only while the protocol needs it."""

    __slots__ = (
        "extra",
        "index",
        "parser",
        "pending_id",
        "pending_since",
        "sock",
        "started",
        "state",
        "wbuf",
    )

    def __init__(self, sock: socket.socket, started: float) -> None:
        self.sock = sock
        self.state = CONNECTING
        self.index = -1  # position in the swarm's list of ready connections
        self.started = started
        self.wbuf = b""
        self.pending_id = -1
        self.pending_since = 0.0
        self.parser: object = None  # the protocol's parser (h11, wsproto, LineReader, ...)
        self.extra: object = None  # anything else a protocol keeps per connection


class Link(Protocol):
    """What a protocol may do to a connection (the swarm implements it)."""

    def write(self, conn: Conn, data: bytes) -> None: ...

    def ready(self, conn: Conn) -> None: ...

    def answered(self, conn: Conn, *, error: bool) -> None: ...

    def refused(self, conn: Conn, reason: str, detail: str) -> None: ...

    def lost(self, conn: Conn, reason: str) -> None: ...

    def server_event(self, conn: Conn) -> None: ...


class ProtocolOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Settings a protocol takes; each protocol reads the ones it understands."""

    host: str = "127.0.0.1"
    port: int = 0
    #: HTTP target of the WebSocket handshake, the SSE GET, the keep-alive GET, MCP's POSTs.
    path: str | None = None
    #: Raw TCP: a line sent after connecting; a line back proves the connection is served.
    probe: str | None = None
    #: MCP: the ``params`` of the ``tools/call`` that the ``call`` request kind sends (JSON).
    call: str | None = None

    @property
    def authority(self) -> bytes:
        return f"{self.host}:{self.port}".encode()


class ClientProtocol:
    """Base of every protocol; subclasses override the hooks they need."""

    #: The name ``--protocol`` takes.
    name: ClassVar[str] = ""
    #: Request kinds a traffic phase may mix; empty: this protocol carries no requests.
    request_kinds: ClassVar[frozenset[str]] = frozenset()
    #: The mix a bench traffic phase uses, None when the protocol has no request to time.
    default_mix: ClassVar[str | None] = None
    #: The HTTP path used when the options give none.
    default_path: ClassVar[str] = "/"

    def __init__(self, options: ProtocolOptions) -> None:
        self.options = options
        path = options.path or self.default_path
        if not path.startswith("/") or any(ord(c) < 33 or ord(c) > 126 for c in path):
            raise ConfigurationError(f"path must start with '/' and be printable ASCII: {path!r}")
        self.path = path

    def traffic_mix(self) -> str | None:
        """The bench's mix for this protocol under these options (None: no traffic phase)."""
        return self.default_mix

    def connected(self, link: Link, conn: Conn) -> None:
        """The TCP connection is up: send the handshake (or call ``link.ready``)."""
        link.ready(conn)

    def received(self, link: Link, conn: Conn, data: bytes) -> None:
        """Bytes arrived on ``conn``."""

    def send_request(self, link: Link, conn: Conn, kind: str, request_id: int) -> None:
        """Send one request of ``kind``; the answer must end in ``link.answered``."""
        raise ConfigurationError(f"the {self.name} protocol carries no requests")


__all__ = [
    "CLOSED",
    "CONNECTING",
    "HANDSHAKE",
    "HANDSHAKE_2",
    "MAX_MESSAGE_BYTES",
    "READY",
    "ClientProtocol",
    "Conn",
    "Link",
    "ProtocolOptions",
]
