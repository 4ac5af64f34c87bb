"""The contract between the MCP protocol core and what a server serves (its surface).

The protocol core (``mcp``) speaks JSON-RPC and MCP: lifecycle, both protocol eras,
pagination, subscriptions, cancellation. It knows nothing of tools or resources; it asks a
``Surface`` for them. ``connscale.App`` is the surface people write; an adapter serves an
official-SDK server object as one. A surface answers with plain JSON-able results (the
MCP result objects) or awaitables of them, and raises ``ProtocolError`` for a JSON-RPC error.

A running request reaches its client through a ``CallContext``, which the engines' call
runner implements: notifications related to the request (progress, log messages) and
server-to-client requests (sampling, elicitation, roots).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

__all__ = [
    "LIST_KINDS",
    "LOG_LEVELS",
    "LOG_OFF",
    "CallContext",
    "ClientInfo",
    "ListKind",
    "ServerInfo",
    "Surface",
    "SurfaceListener",
]

#: What ``Surface.listing`` lists, by the name of the field its list result carries.
ListKind = Literal["tools", "resources", "resourceTemplates", "prompts"]
LIST_KINDS: Final[tuple[ListKind, ...]] = ("tools", "resources", "resourceTemplates", "prompts")

#: ``CallContext.log_level`` when the client asked for no log messages at all (a 2026-07-28
#: request without ``io.modelcontextprotocol/logLevel``).
LOG_OFF: Final = "off"

#: MCP (RFC 5424) log levels, least severe first.
LOG_LEVELS: Final = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Who the server is: ``serverInfo`` of the handshake and of ``server/discover``."""

    name: str
    version: str
    title: str | None = None
    instructions: str | None = None
    website_url: str | None = None

    def implementation(self) -> dict[str, Any]:
        """The MCP ``Implementation`` object."""
        info: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.title is not None:
            info["title"] = self.title
        if self.website_url is not None:
            info["websiteUrl"] = self.website_url
        return info


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """What the client said about itself (handshake: at ``initialize``; stateless: per request)."""

    protocol_version: str
    name: str | None = None
    version: str | None = None
    capabilities: Mapping[str, Any] | None = None
    #: The HTTP session id (handshake era over HTTP), else None.
    session_id: str | None = None


class CallContext(Protocol):
    """What a running request can do on its connection (implemented by the call runner)."""

    @property
    def request_id(self) -> int | str: ...

    @property
    def progress_token(self) -> int | str | None:
        """The request's ``_meta.progressToken``, when it sent one."""
        ...

    @property
    def client(self) -> ClientInfo: ...

    @property
    def log_level(self) -> str | None:
        """The least severe level the client asked for (None: all; ``LOG_OFF``: none)."""
        ...

    def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        """Send a notification related to this request (dropped when it can reach nobody)."""
        ...

    def request(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        key: str | None = None,
    ) -> Awaitable[Any]:
        """Ask the client something (sampling, elicitation, roots); resolves to its answer.

        Handshake era: a server-to-client request. Raises ``ProtocolError`` when the client
        answers with an error (its code kept), ``TimeoutError`` after ``timeout`` seconds,
        ``ConnscaleError`` when the client cannot be reached.

        2026-07-28 (no server-to-client requests): the answer comes in the request's
        ``inputResponses`` under ``key`` (default: the method and the request's position
        among this call's requests). When it is not there yet, the awaitable raises
        ``InputRequired`` (a ``BaseException``: let it propagate) and the call is answered
        with an ``input_required`` result; the client retries with the answers and the
        function runs again, this time receiving them.
        """
        ...


class SurfaceListener(Protocol):
    """Told by a surface when what it serves changes at run time."""

    def list_changed(self, kind: ListKind) -> None:
        """Tools, resources, resource templates or prompts were added or removed."""
        ...

    def resource_updated(self, uri: str) -> None:
        """The content of resource ``uri`` changed (subscribers are told)."""
        ...


class Surface(Protocol):
    """What a server serves. Results are JSON-able MCP result objects or awaitables of them.

    ``call_tool`` reports a tool's own failure (bad arguments, an exception in the tool) as a
    result with ``isError: true``; ``ProtocolError`` is for requests that cannot be served
    at all (an unknown tool, resource or prompt: code -32602, or -32002 for a resource).
    """

    @property
    def info(self) -> ServerInfo: ...

    def capabilities(self) -> Mapping[str, Any]:
        """The server capabilities to advertise (exactly what the surface has)."""
        ...

    def listing(self, kind: ListKind) -> Sequence[Mapping[str, Any]]:
        """Every descriptor of ``kind``, in a stable order (the core paginates)."""
        ...

    def call_tool(
        self, name: str, arguments: Mapping[str, Any], context: CallContext
    ) -> Any | Awaitable[Any]: ...

    def read_resource(self, uri: str, context: CallContext) -> Any | Awaitable[Any]: ...

    def get_prompt(
        self, name: str, arguments: Mapping[str, str], context: CallContext
    ) -> Any | Awaitable[Any]: ...

    def complete(
        self,
        ref: Mapping[str, Any],
        argument: Mapping[str, Any],
        context_arguments: Mapping[str, str],
        context: CallContext,
    ) -> Any | Awaitable[Any]:
        """``completion/complete``: ``ref`` is a prompt or resource-template reference."""
        ...

    def watch(self, listener: SurfaceListener) -> None:
        """Tell ``listener`` of every later change."""
        ...
