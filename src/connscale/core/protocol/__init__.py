"""The sans-I/O protocol core: newline framing, JSON-RPC 2.0, the MCP lifecycle, Streamable HTTP.

Bytes go in, events and bytes come out; no sockets, no event loop. The engines drive it.
"""

from __future__ import annotations

from connscale.core.protocol.framing import Frames, split_frames
from connscale.core.protocol.jsonrpc import decode_message
from connscale.core.protocol.limits import ServerLimits

__all__ = ["Frames", "ServerLimits", "decode_message", "split_frames"]
