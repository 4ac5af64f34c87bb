"""Settings of the reference server (``connscale serve``), validated once at start."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.tokens import SessionKeys, parse_session_keys
from connscale.errors import ConfigurationError

__all__ = [
    "MIN_TOKEN_BYTES",
    "ServerConfig",
    "read_session_key_file",
    "read_token_file",
    "session_keys",
]

TransportName = Literal["tcp", "http", "stdio"]
EngineName = Literal["epoll", "asyncio"]
LoopName = Literal["auto", "asyncio", "uvloop"]
StartMethod = Literal["fork", "spawn"]


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``connscale serve`` takes; see ``docs/SERVER.md`` for what each does.

    ``port`` 0 picks a free port. ``loop`` "auto" uses uvloop for the asyncio engine when
    it is installed and the standard loop for the epoll engine (which only needs one reader).
    """

    transport: TransportName = "tcp"
    host: str = "127.0.0.1"
    port: int = 0
    engine: EngineName = "epoll"
    workers: int = 1
    ready_file: Path | None = None
    stats_dir: Path | None = None
    limits: ServerLimits = field(default_factory=ServerLimits)
    http_path: str = "/mcp"
    sse_responses: bool = False
    allowed_origins: tuple[str, ...] = ()
    experts: str | None = None  # "package.module:callable,..." plugin spec; None = built-ins
    experts_timeout: float = 2.0
    loop: LoopName = "auto"
    backlog: int = 4096
    revocation_capacity: int = 1 << 16
    shutdown_grace: float = 5.0  # seconds to finish in-flight requests on SIGTERM
    #: HTTP: seconds a kept-alive connection may wait for its next request (None: the
    #: handshake timeout, the same window a new connection gets for its first one).
    http_keepalive_timeout: float | None = None
    #: Kernel send buffer per connection (SO_SNDBUF, set on the listener and inherited);
    #: 0 leaves it to the kernel's autotuning (up to several MiB). A cap bounds the kernel
    #: memory a client that never reads can hold, and how much it is served before flow
    #: control pauses it.
    socket_send_buffer: int = 0
    #: HTTP: every request must carry ``Authorization: Bearer <token>`` (401 otherwise).
    #: Kept out of ``repr`` so that logging a configuration never logs the secret; workers
    #: receive it pickled through the spawn pipe, never in argv or the environment.
    bearer_token: bytes | None = field(default=None, repr=False)
    server_name: str = "connscale"
    #: What to serve: ``package.module:attribute`` or ``path/to/file.py:attribute`` naming
    #: an App (or any surface); None serves the reference tools. Spawned workers load it.
    app: str | None = None
    #: HTTP: the ``Host`` names accepted (any port); others get 421 (DNS rebinding). None:
    #: the loopback names when the server binds a loopback address, else any host.
    allowed_hosts: tuple[str, ...] | None = None
    #: HTTP: seconds a session id stays valid after ``initialize``; None = forever.
    session_max_age: float | None = 24 * 3600.0
    #: How workers start: "fork" shares the supervisor's loaded modules and app copy-on-write
    #: (small workers); "spawn" starts each from scratch (needs ``app`` as a target string).
    start_method: StartMethod = "fork"
    #: The session key file a fleet shares (see ``read_session_key_file``): every server
    #: started with the same file opens the session ids, list cursors and 2026-07-28
    #: ``requestState`` of every other, so a load balancer may send any request anywhere.
    #: None: a random key per server (its workers share it).
    session_key_file: Path | None = None

    def __post_init__(self) -> None:
        if self.transport not in ("tcp", "http", "stdio"):
            raise ConfigurationError(
                f"transport must be tcp, http or stdio, not {self.transport!r}"
            )
        if self.transport == "stdio" and self.workers != 1:
            raise ConfigurationError("the stdio transport serves one session: use one worker")
        if self.engine not in ("epoll", "asyncio"):
            raise ConfigurationError(f"engine must be epoll or asyncio, not {self.engine!r}")
        if self.loop not in ("auto", "asyncio", "uvloop"):
            raise ConfigurationError(f"loop must be auto, asyncio or uvloop, not {self.loop!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"port must be 0..65535, not {self.port}")
        if not 1 <= self.workers <= 256:
            raise ConfigurationError(f"workers must be 1..256, not {self.workers}")
        if not self.http_path.startswith("/"):
            raise ConfigurationError("http_path must start with '/'")
        if self.experts_timeout <= 0 or self.shutdown_grace < 0:
            raise ConfigurationError("experts_timeout must be > 0 and shutdown_grace >= 0")
        if self.http_keepalive_timeout is not None and not self.http_keepalive_timeout > 0:
            raise ConfigurationError("http_keepalive_timeout must be > 0 or None")
        if self.socket_send_buffer < 0:
            raise ConfigurationError("socket_send_buffer must be >= 0 (0: the kernel decides)")
        if self.bearer_token is not None:
            if self.transport != "http":
                raise ConfigurationError("a bearer token needs transport http")
            if not isinstance(self.bearer_token, bytes) or not self.bearer_token:
                raise ConfigurationError("bearer_token must be non-empty bytes or None")
        if self.start_method not in ("fork", "spawn"):
            raise ConfigurationError(
                f"start_method must be fork or spawn, not {self.start_method!r}"
            )
        if self.session_max_age is not None and not self.session_max_age > 0:
            raise ConfigurationError("session_max_age must be > 0 seconds or None (forever)")
        if self.backlog < 1 or self.revocation_capacity < 1:
            raise ConfigurationError("backlog and revocation_capacity must be >= 1")

    def use_uvloop(self) -> bool:
        """Whether this configuration runs on uvloop (``loop`` "uvloop" needs it installed)."""
        if self.loop == "asyncio":
            return False
        try:
            import uvloop  # noqa: F401
        except ImportError:
            if self.loop == "uvloop":
                raise ConfigurationError(
                    "loop 'uvloop' asked for but uvloop is not installed"
                ) from None
            return False
        return self.loop == "uvloop" or self.engine == "asyncio"

    def host_names(self) -> tuple[str, ...] | None:
        """The ``Host`` names HTTP requests may carry (None: any)."""
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        if self.host in ("127.0.0.1", "::1", "localhost") or self.host.startswith("127."):
            return ("localhost", "127.0.0.1", "::1", self.host)
        return None


#: Characters of an RFC 6750 bearer token (``b64token``): safe in a header, no spaces.
_TOKEN_CHARACTERS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/="
)
MIN_TOKEN_BYTES = 16


def read_token_file(path: str | os.PathLike[str]) -> bytes:
    """The bearer token in ``path`` (surrounding whitespace dropped), checked for shape.

    Errors name the file, never its content: the token must not reach logs or terminals.
    """
    try:
        with open(path, "rb") as file:
            token = file.read(4097).strip()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the token file {path}: {exc.strerror}") from None
    if not MIN_TOKEN_BYTES <= len(token) <= 4096:
        raise ConfigurationError(
            f"the token in {path} must be {MIN_TOKEN_BYTES} to 4096 characters long"
        )
    if not set(token) <= _TOKEN_CHARACTERS:
        raise ConfigurationError(
            f"the token in {path} may only hold letters, digits and -._~+/= (RFC 6750)"
        )
    return token


def read_session_key_file(path: str | os.PathLike[str]) -> SessionKeys:
    """The keys in a session key file: the current key first, then previous ones.

    One key a line, 64 hex digits (32 bytes, e.g. ``openssl rand -hex 32``); blank lines
    and ``#`` comments ignored; at most 8 keys (``parse_session_keys`` has the rules).
    Errors are one line naming the file and the line, never the content.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(64 * 1024 + 1)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the session key file {path}: {exc.strerror}"
        ) from None
    return parse_session_keys(data, f"the session key file {path}")


def session_keys(config: ServerConfig) -> SessionKeys:
    """The keys ``config`` asks for: read from its key file, else a fresh random key."""
    if config.session_key_file is None:
        return SessionKeys.generate()
    return read_session_key_file(config.session_key_file)
