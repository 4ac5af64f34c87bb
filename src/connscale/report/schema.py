"""RUN.json: the record of one benchmark or profiling run, input of every report.

The schema is versioned (``schema``); readers refuse other versions with a clear error.
Byte figures are integers or floats in bytes, times in seconds unless the name says
otherwise (``_ms``, ``_us``). A figure that could not be measured is ``None`` and the
``notes`` say why: never a made-up number.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from connscale.errors import CorruptRunError

SCHEMA_VERSION = "connscale.run/1"


class Plateau(msgspec.Struct, kw_only=True):
    """Memory of the server at one settled level of live connections (medians of samples)."""

    connections: int
    uss: int | None = None  # summed over the server's processes
    pss: int | None = None  # summed: the total a server with shared (forked) pages costs
    rss: int | None = None
    #: The server's own sockets (its fds that are sockets) and the kernel memory they hold:
    #: slab objects per socket (slabinfo, where readable) plus their queued bytes.
    server_sockets: int | None = None
    kernel_bytes: int | None = None
    #: SYSTEM-WIDE figures (/proc/net/sockstat): every process's TCP, not this server's.
    kernel_tcp_bytes: int | None = None
    kernel_tcp_sockets: int | None = None
    #: USS of the load generator's processes: its own cost per held connection.
    loadgen_uss: int | None = None
    samples: int = 1


class TimePoint(msgspec.Struct, kw_only=True):
    """One memory sample over time (for the memory-over-time chart)."""

    t: float  # seconds since the run started
    connections: int
    uss: int | None = None
    rss: int | None = None


class Scaling(msgspec.Struct, kw_only=True):
    """Least-squares fit of memory against connections over the plateaus."""

    fixed_overhead: float
    marginal_bytes: float  # bytes per additional connection: the slope, never total/N
    r_squared: float
    step_marginals: list[float] = msgspec.field(default_factory=list)
    step_cv: float | None = None


class Traffic(msgspec.Struct, kw_only=True):
    """The request phase: throughput and latency percentiles."""

    connections: int
    requests: int
    errors: int = 0
    duration_s: float
    throughput_rps: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None


class GCStats(msgspec.Struct, kw_only=True):
    """Garbage-collector pauses recorded inside the server (summed over workers)."""

    collections: int
    total_pause_ms: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    pauses_ms: list[float] = msgspec.field(default_factory=list)  # for the histogram


class ServerResult(msgspec.Struct, kw_only=True):
    """Everything measured for one server in a run."""

    name: str  # e.g. "connscale-epoll", "asyncio-streams", "websockets-echo", "my-server"
    transport: str = "tcp"
    protocol: str = "mcp"  # what the load generator spoke: mcp, mcp-http, websocket, ...
    workers: int = 1
    plateaus: list[Plateau] = msgspec.field(default_factory=list)
    timeline: list[TimePoint] = msgspec.field(default_factory=list)
    scaling: Scaling | None = None  # USS slope; None when the run was partial
    #: PSS summed over the server's processes at the top plateau: what it costs in all,
    #: shared copy-on-write pages counted once; and the fixed cost per worker from the PSS fit.
    pss_total: int | None = None
    fixed_per_worker: float | None = None
    #: Kernel bytes per socket of THIS server's sockets (not a system-wide difference).
    kernel_bytes_per_socket: float | None = None
    #: The load generator's own USS per held connection (slope), for planning a big run.
    loadgen_bytes_per_connection: float | None = None
    setup_cpu_us: float | None = None  # server CPU per session set-up (connect + initialize)
    traffic: Traffic | None = None  # closed loop: throughput at a fixed concurrency
    latency: Traffic | None = None  # open loop at the top plateau: latency under a set rate
    gc: GCStats | None = None
    max_connections: int | None = None  # the most it held in this run
    error: str | None = None  # why it stopped early, if it did
    #: False when it stopped early: the plateaus are kept, no marginal is published.
    complete: bool = True
    notes: list[str] = msgspec.field(default_factory=list)


class Machine(msgspec.Struct, kw_only=True):
    """Where the run happened."""

    hostname: str
    cpus: int
    memory_bytes: int
    python: str
    platform: str
    open_files_limit: int | None = None


class Run(msgspec.Struct, kw_only=True):
    """One run: the machine, the command that made it, and a result per server."""

    schema: str = SCHEMA_VERSION
    created: str  # ISO 8601, UTC
    command: str
    machine: Machine
    servers: list[ServerResult] = msgspec.field(default_factory=list)
    notes: list[str] = msgspec.field(default_factory=list)
    #: True when the run was interrupted (Ctrl-C): it holds what was measured until then.
    incomplete: bool = False


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Run)

#: A RUN.json larger than this is refused rather than read into memory.
MAX_RUN_BYTES = 256 * 1024 * 1024


def dumps_run(run: Run) -> bytes:
    """Encode a run as JSON bytes."""
    return msgspec.json.format(_encoder.encode(run), indent=2)


def loads_run(data: bytes) -> Run:
    """Decode a run; any malformed or other-version input raises ``CorruptRunError``."""
    try:
        probe = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise CorruptRunError(f"not JSON: {exc}") from None
    if not isinstance(probe, dict):
        raise CorruptRunError("a run record must be a JSON object")
    version = probe.get("schema")
    if version != SCHEMA_VERSION:
        raise CorruptRunError(
            f"unsupported schema {version!r}; this connscale reads {SCHEMA_VERSION!r}"
        )
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise CorruptRunError(f"invalid run record: {exc}") from None


def read_run(path: str | Path) -> Run:
    """Read RUN.json from ``path`` (bounded size); errors name the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_RUN_BYTES:
            raise CorruptRunError(f"{path}: {size} bytes is larger than {MAX_RUN_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        raise CorruptRunError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return loads_run(data)
    except CorruptRunError as exc:
        raise CorruptRunError(f"{path}: {exc}") from None


def write_run(run: Run, path: str | Path) -> None:
    """Write RUN.json atomically (a partial file never replaces a good one)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(dumps_run(run))
    tmp.replace(path)


__all__ = [
    "MAX_RUN_BYTES",
    "SCHEMA_VERSION",
    "GCStats",
    "Machine",
    "Plateau",
    "Run",
    "Scaling",
    "ServerResult",
    "TimePoint",
    "Traffic",
    "dumps_run",
    "loads_run",
    "read_run",
    "write_run",
]
