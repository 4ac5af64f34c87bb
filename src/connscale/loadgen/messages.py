"""What a load runner and its worker processes say to each other: typed msgspec records,
one JSON object a line each way (a malformed line is refused where it is read)."""

from __future__ import annotations

from typing import Any

import msgspec

from connscale.loadgen.swarm import SwarmStatus


class WorkerConfig(msgspec.Struct, kw_only=True, frozen=True):
    """What a load worker is told at start."""

    host: str
    port: int
    protocol: str = "mcp"
    path: str | None = None
    probe: str | None = None
    call: str | None = None  # MCP: the tools/call params of the "call" request kind
    sources: list[tuple[str | None, int]]
    max_handshakes: int = 256
    handshake_timeout: float = 15.0
    deadline_s: float = 3600.0
    seed: int = 0


class Command(msgspec.Struct, kw_only=True, frozen=True):
    """One instruction from the runner."""

    cmd: str
    target: int = 0
    duration: float = 0.0
    rate: float | None = None
    concurrency: int = 32
    mix: list[tuple[str, float]] = msgspec.field(default_factory=list)


class WorkerEvent(msgspec.Struct, kw_only=True):
    """One report to the runner."""

    event: str
    status: SwarmStatus | None = None
    result: dict[str, Any] | None = None
    message: str | None = None


__all__ = ["Command", "WorkerConfig", "WorkerEvent"]
