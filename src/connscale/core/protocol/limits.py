"""Limits that bound what one peer can make the server hold; each has a safe default.

A server holding 100K sessions is a target: every limit here caps memory or time that a
single hostile or broken client could otherwise take from all the others.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from connscale.errors import ConfigurationError

__all__ = ["ServerLimits"]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Per-connection and per-worker limits (bytes, counts, seconds).

    ``max_connections`` 0 means "derive from the open-files limit"; ``idle_timeout`` None
    means off (long-lived sessions are the point).
    """

    #: Longest TCP line or HTTP body; over it: a JSON-RPC error where possible, then close.
    max_frame_bytes: int = 1 << 20
    #: Longest HTTP request line plus headers (h11 ``max_incomplete_event_size``).
    max_header_bytes: int = 16 << 10
    #: Deepest JSON nesting accepted in one message.
    max_json_depth: int = 64
    #: Most JSON values (containers and scalars) in one message's params: bounds the
    #: objects a message decodes to (~250 B per value at worst, vs ~1 B per string byte).
    max_json_items: int = 1 << 15
    #: Longest string request id; numeric ids must fit a signed 64-bit integer.
    max_id_length: int = 128
    #: Longest ``clientInfo`` name or version kept for a session (UTF-8 bytes each).
    max_client_info_bytes: int = 256
    #: Largest ``capabilities`` object kept for a session (canonical JSON bytes). With the
    #: client info limit this keeps an HTTP session token under 4096 characters.
    max_capabilities_bytes: int = 2048
    #: Requests of one session being answered at the same time.
    max_pending_per_session: int = 64
    #: Open connections one worker holds; above it new connections are closed at once.
    max_connections: int = 0
    #: Seconds a TCP connection has to complete ``initialize`` (HTTP: to send a request).
    handshake_timeout: float = 10.0
    #: Seconds of silence after which an initialized connection is closed; None = never.
    idle_timeout: float | None = None
    #: Unsent output above which the server stops reading from that connection.
    write_high_water: int = 256 << 10
    #: Unsent output below which reading resumes.
    write_low_water: int = 64 << 10
    #: Unsent output above which the connection is closed (a client that never reads).
    max_write_buffer: int = 4 << 20

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None and field.name == "idle_timeout":
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ConfigurationError(f"limit {field.name} must be a number >= 0, not {value!r}")
        positive = (
            "max_frame_bytes",
            "max_header_bytes",
            "max_json_depth",
            "max_json_items",
            "max_id_length",
            "max_client_info_bytes",
            "max_capabilities_bytes",
            "max_pending_per_session",
            "handshake_timeout",
            "write_high_water",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"limit {name} must be > 0")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ConfigurationError("limit idle_timeout must be > 0 or None (off)")
        if not self.write_low_water <= self.write_high_water <= self.max_write_buffer:
            raise ConfigurationError(
                "write limits must satisfy write_low_water <= write_high_water <= max_write_buffer"
            )

    def connection_limit(self, open_files_limit: int, reserve: int = 64) -> int:
        """Connections one worker may hold: ``max_connections`` or open files minus a reserve."""
        derived = max(1, open_files_limit - reserve)
        return min(self.max_connections, derived) if self.max_connections else derived
