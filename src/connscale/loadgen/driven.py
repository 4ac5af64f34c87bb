"""The load generator driven from another tool (Locust): targets as URLs, and a gauge.

Another tool's event loop drives a ``Swarm`` through ``Swarm.send`` and its observer; what it
needs besides is here, free of that tool so that it is tested without it:

- ``parse_target``: a URL such as ``tcp://HOST:PORT`` or ``http://HOST:PORT/mcp`` into the
  protocol to speak (its scheme picks a default from ``SCHEME_PROTOCOLS``; any name in the
  protocol registry may be asked for instead, so a new protocol module needs no change
  here), the address to connect to (resolved once, not per connection) and the options
  (the host name as written, for ``Host`` headers).
- ``HeldGauge``: connections held, summed over the processes (and machines) that report
  them, with the peak and a bounded timeline. Reports arrive from other machines, so each
  is checked where it is read and a malformed one is refused, never half-used.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

from connscale.errors import ConfigurationError
from connscale.loadgen.protocols import PROTOCOL_NAMES, ProtocolOptions, make_protocol
from connscale.loadgen.protocols.base import ClientProtocol

#: A URL scheme -> the protocol spoken when none is named.
SCHEME_PROTOCOLS: Mapping[str, str] = {"tcp": "mcp", "http": "mcp-http", "ws": "websocket"}
_DEFAULT_PORTS: Mapping[str, int] = {"http": 80, "ws": 80}
#: Points a gauge keeps in its timeline (one per report: hours of a run, bounded memory).
TIMELINE_POINTS = 10_000

Resolver = Callable[[str, int], str]


def resolve_ipv4(host: str, port: int) -> str:
    """The first IPv4 address of ``host`` (the swarm connects over IPv4)."""
    try:
        found = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ConfigurationError(f"cannot resolve {host!r}: {exc}") from None
    return str(found[0][4][0])


@dataclass(frozen=True, slots=True)
class Target:
    """Where a driven swarm connects, and what it speaks there."""

    protocol: str
    address: str
    options: ProtocolOptions

    def make_protocol(self) -> ClientProtocol:
        return make_protocol(self.protocol, self.options)


def parse_target(
    url: str,
    protocol: str | None = None,
    *,
    probe: str | None = None,
    resolve: Resolver = resolve_ipv4,
) -> Target:
    """The target a URL names: ``tcp://HOST:PORT`` (MCP over TCP unless ``protocol`` says
    otherwise), ``http://HOST:PORT/PATH`` (MCP Streamable HTTP, or ``sse``, ``http``),
    ``ws://HOST:PORT/PATH`` (WebSocket). ConfigurationError saying what is wrong otherwise.
    """
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise ConfigurationError("the target must be a URL such as tcp://127.0.0.1:8000")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"the target {url!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEME_PROTOCOLS:
        raise ConfigurationError(
            f"the target {url!r} must start with one of "
            + ", ".join(f"{name}://" for name in SCHEME_PROTOCOLS)
        )
    name = protocol or SCHEME_PROTOCOLS[scheme]
    if name not in PROTOCOL_NAMES:
        raise ConfigurationError(
            f"unknown protocol {name!r}; choose from {', '.join(PROTOCOL_NAMES)}"
        )
    host = parts.hostname
    if not host:
        raise ConfigurationError(f"the target {url!r} names no host")
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
        if port is None:
            raise ConfigurationError(f"the target {url!r} needs a port: {scheme}://HOST:PORT")
    if not 0 < port < 65536:
        raise ConfigurationError(f"the port of {url!r} must be 1..65535")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(f"the target {url!r} may not carry a query, fragment or user")
    if scheme == "tcp" and parts.path not in ("", "/"):
        raise ConfigurationError(f"a tcp:// target has no path: {url!r}")
    path = (parts.path or None) if scheme != "tcp" else None
    options = ProtocolOptions(host=host, port=port, path=path, probe=probe)
    target = Target(name, resolve(host, port), options)
    target.make_protocol()  # refuses a bad path or probe now, not at the first connection
    return target


class HeldReport(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One load process's connections: held now, still opening, failed and dropped so far."""

    held: int = 0
    connecting: int = 0
    failed: int = 0
    dropped: int = 0

    def __post_init__(self) -> None:
        if min(self.held, self.connecting, self.failed, self.dropped) < 0:
            raise ValueError("counts cannot be negative")

    def __add__(self, other: HeldReport) -> HeldReport:
        return HeldReport(
            held=self.held + other.held,
            connecting=self.connecting + other.connecting,
            failed=self.failed + other.failed,
            dropped=self.dropped + other.dropped,
        )


class HeldGauge:
    """Connections held over every reporting process: the sum of each one's latest report.

    ``report(source, data)`` takes what a process sent (``data`` is checked: a malformed
    report raises ConfigurationError and changes nothing). ``peak`` is the largest sum
    seen (each process's own peak is in the summary), ``timeline`` (seconds, held) one
    point per report, bounded.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._started = clock()
        self._latest: dict[str, HeldReport] = {}
        self._peaks: dict[str, int] = {}
        self.peak = 0
        self.timeline: deque[tuple[float, int]] = deque(maxlen=TIMELINE_POINTS)

    def report(self, source: str, data: object) -> HeldReport:
        try:
            report = msgspec.convert(data, HeldReport, strict=True)
        except (msgspec.ValidationError, TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"a malformed connection report from {source}: {exc}"
            ) from None
        source = str(source)[:200]
        self._latest[source] = report
        self._peaks[source] = max(self._peaks.get(source, 0), report.held)
        held = self.total().held
        self.peak = max(self.peak, held)
        self.timeline.append((round(self._clock() - self._started, 3), held))
        return report

    def total(self) -> HeldReport:
        total = HeldReport()
        for report in self._latest.values():
            total = total + report
        return total

    def summary(self) -> dict[str, Any]:
        """What a run ends with: now, the peak, the per-process reports and the timeline."""
        total = self.total()
        return {
            "held": total.held,
            "peak_held": self.peak,
            "connecting": total.connecting,
            "failed": total.failed,
            "dropped": total.dropped,
            "processes": {
                source: {**msgspec.to_builtins(report), "peak_held": self._peaks[source]}
                for source, report in self._latest.items()
            },
            "timeline": [list(point) for point in self.timeline],
        }


__all__ = [
    "SCHEME_PROTOCOLS",
    "TIMELINE_POINTS",
    "HeldGauge",
    "HeldReport",
    "Target",
    "parse_target",
    "resolve_ipv4",
]
