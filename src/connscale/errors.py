"""One exception tree for connscale.

Every error says what was wrong and what to do about it. Catch ``ConnscaleError`` to
handle all of them::

    ConnscaleError
    ├── ConfigurationError          (also a ValueError) a bad argument or setting
    ├── PoolError
    │   ├── DoubleReleaseError      an object released twice
    │   └── ForeignObjectError      an object the pool never handed out
    ├── CacheError
    │   └── BatchTooLargeError      add_batch() bigger than the cache can hold
    ├── SessionError
    │   ├── UnknownFieldError       (also a LookupError) a session field that does not exist
    │   ├── SlotError               a SessionTable slot that is free or out of range
    │   └── TableFullError          no free SessionTable slot left
    ├── CorruptStateError           session bytes that do not decode (truncated, tampered, ...)
    ├── MeasurementError
    │   ├── NotAvailableError       a /proc file or reading this system cannot give
    │   └── ProcessGoneError        the measured process exited
    ├── ProtocolError               a JSON-RPC / MCP / framing violation (carries ``code``)
    ├── ClientError                 a server-to-client request (sampling, elicitation, roots) failed
    │   ├── ClientCapabilityError   the client did not declare the capability the request needs
    │   ├── ClientRequestError      the client answered with a JSON-RPC error (carries ``code``)
    │   ├── ClientResponseError     the client's answer does not have the shape that was asked for
    │   └── ClientUnreachableError  the request could not be sent (client gone, no stream to it)
    ├── ServerError                 the server could not start or run
    │   └── AppLoadError            an --app target that cannot be loaded (says why)
    ├── LoadError
    │   ├── PlanError               a load plan that cannot fit this machine's limits
    │   └── TargetRefusedError      the target refused or dropped connections
    └── ReportError
        └── CorruptRunError         a RUN.json that is not a valid run record
"""

from __future__ import annotations


class ConnscaleError(Exception):
    """Base class of every error raised by connscale."""


class ConfigurationError(ConnscaleError, ValueError):
    """An argument or setting is invalid; the message says which and why."""


class PoolError(ConnscaleError):
    """Misuse of an ObjectPool or BufferPool."""


class DoubleReleaseError(PoolError):
    """An object was released to its pool twice."""


class ForeignObjectError(PoolError):
    """An object was released to a pool that never handed it out."""


class CacheError(ConnscaleError):
    """Misuse of a TTLCache."""


class BatchTooLargeError(CacheError):
    """A batch is larger than the cache can ever hold."""


class SessionError(ConnscaleError):
    """Misuse of Session or SessionTable."""


class UnknownFieldError(SessionError, LookupError):
    """A session field name that does not exist."""


class SlotError(SessionError):
    """A SessionTable slot that is not allocated or out of range."""


class TableFullError(SessionError):
    """A SessionTable has no free slot left."""


class CorruptStateError(ConnscaleError):
    """Encoded session state that cannot be decoded safely."""


class MeasurementError(ConnscaleError):
    """A memory or GC reading could not be taken."""


class NotAvailableError(MeasurementError):
    """This system does not provide the reading (missing or unreadable file)."""


class ProcessGoneError(MeasurementError):
    """The measured process does not exist (any more)."""


class ProtocolError(ConnscaleError):
    """A peer broke JSON-RPC, MCP or framing rules.

    ``code`` is the JSON-RPC error code to answer with, when one applies; ``data`` (JSON-able,
    optional) goes into the error object's ``data``.
    """

    def __init__(self, message: str, code: int = -32600, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class ClientError(ConnscaleError):
    """A request from the server to the client (sampling, elicitation, roots) failed."""


class ClientCapabilityError(ClientError):
    """The client did not declare the capability a request needs; ask another way or skip it."""


class ClientRequestError(ClientError):
    """The client answered a server-to-client request with a JSON-RPC error.

    ``code`` and ``data`` are the client's own error code and data.
    """

    def __init__(self, message: str, code: int, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class ClientResponseError(ClientError):
    """The client's answer does not have the shape that was asked for."""


class ClientUnreachableError(ClientError):
    """A request to the client could not be sent: it disconnected, or no stream reaches it."""


class ServerError(ConnscaleError):
    """The server could not start or keep running."""


class AppLoadError(ServerError, ConfigurationError):
    """An app target (``--app``) that cannot be imported or is not an app; says why."""


class LoadError(ConnscaleError):
    """The load generator could not do what was asked."""


class PlanError(LoadError):
    """A load plan does not fit the limits of this machine."""


class TargetRefusedError(LoadError):
    """The target refused, reset or never answered connections."""


class ReportError(ConnscaleError):
    """A report could not be produced."""


class CorruptRunError(ReportError):
    """A RUN.json file that is not a valid run record."""


__all__ = [
    "AppLoadError",
    "BatchTooLargeError",
    "CacheError",
    "ClientCapabilityError",
    "ClientError",
    "ClientRequestError",
    "ClientResponseError",
    "ClientUnreachableError",
    "ConfigurationError",
    "ConnscaleError",
    "CorruptRunError",
    "CorruptStateError",
    "DoubleReleaseError",
    "ForeignObjectError",
    "LoadError",
    "MeasurementError",
    "NotAvailableError",
    "PlanError",
    "PoolError",
    "ProcessGoneError",
    "ProtocolError",
    "ReportError",
    "ServerError",
    "SessionError",
    "SlotError",
    "TableFullError",
    "TargetRefusedError",
    "UnknownFieldError",
]
