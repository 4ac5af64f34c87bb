"""The protocols a load generator speaks, by the name ``--protocol`` takes.

``mcp`` (the default: MCP over TCP, newline-delimited JSON-RPC), ``mcp-http`` (MCP
Streamable HTTP), ``mcp-listen`` and ``mcp-stateless`` (MCP 2026-07-28 over HTTP:
``subscriptions/listen`` streams, stateless requests), ``websocket`` (RFC 6455,
wsproto), ``tcp`` (raw TCP, optional probe line), ``sse`` (a held event stream) and ``http``
(one request, then an idle keep-alive).
"""

from __future__ import annotations

from connscale.errors import ConfigurationError
from connscale.loadgen.protocols.base import ClientProtocol, ProtocolOptions
from connscale.loadgen.protocols.http import HttpKeepAliveProtocol
from connscale.loadgen.protocols.mcp import McpHttpProtocol, McpTcpProtocol
from connscale.loadgen.protocols.mcp_stateless import McpListenProtocol, McpStatelessProtocol
from connscale.loadgen.protocols.sse import SseProtocol
from connscale.loadgen.protocols.tcp import TcpProtocol
from connscale.loadgen.protocols.websocket import WebSocketProtocol

_CLASSES: tuple[type[ClientProtocol], ...] = (
    McpTcpProtocol,
    McpHttpProtocol,
    McpListenProtocol,
    McpStatelessProtocol,
    WebSocketProtocol,
    TcpProtocol,
    SseProtocol,
    HttpKeepAliveProtocol,
)
#: Protocol name -> class, in the order ``--help`` lists them.
PROTOCOLS: dict[str, type[ClientProtocol]] = {cls.name: cls for cls in _CLASSES}
PROTOCOL_NAMES: tuple[str, ...] = tuple(PROTOCOLS)
#: One line per protocol for ``--help`` texts.
PROTOCOL_HELP = (
    "mcp (MCP over TCP: newline-delimited JSON-RPC, the default), mcp-http (MCP Streamable "
    "HTTP, handshake era), mcp-listen (MCP 2026-07-28: one subscriptions/listen stream per "
    "connection, held, events counted), mcp-stateless (MCP 2026-07-28: server/discover, then "
    "stateless tools/call traffic on keep-alive), websocket (RFC 6455 handshake to a path, "
    "then held; ping or echo traffic), tcp "
    "(raw TCP, held; --probe LINE checks each connection and gives echo traffic), sse (a GET "
    "with Accept: text/event-stream, held, events counted), http (one GET, then the idle "
    "keep-alive connection is held)"
)


def make_protocol(name: str, options: ProtocolOptions | None = None) -> ClientProtocol:
    """The protocol called ``name``; ConfigurationError naming the known ones otherwise."""
    cls = PROTOCOLS.get(name)
    if cls is None:
        raise ConfigurationError(
            f"unknown protocol {name!r}; choose from {', '.join(PROTOCOL_NAMES)}"
        )
    return cls(options or ProtocolOptions())


__all__ = [
    "PROTOCOLS",
    "PROTOCOL_HELP",
    "PROTOCOL_NAMES",
    "ClientProtocol",
    "ProtocolOptions",
    "make_protocol",
]
