"""Prometheus export: memory figures, GC pauses, sockets and their kernel memory, the growth
trend and leak verdict, bytes per connection, connections, pressure.

Metrics live in a dedicated ``CollectorRegistry`` unless one is passed in, so importing
connscale never adds series to the global registry of an application.
"""

from __future__ import annotations

import os
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client.exposition import generate_latest

from connscale.core.monitor_policy import PressureLevel
from connscale.core.stats import TrendResult
from connscale.errors import ConfigurationError
from connscale.gc import PauseRecorder
from connscale.memory import KernelSockets, MemorySample, ProcessSockets

#: GC pause buckets in seconds: young collections take microseconds, full ones milliseconds.
GC_PAUSE_BUCKETS = (
    0.00001,
    0.00005,
    0.0001,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)

_MEMORY_FIELDS = ("uss", "pss", "rss", "swap", "anon")


class MetricsExporter:
    """Holds connscale's metrics; feed it samples, or wire it to a Monitor and PauseRecorder.

    Every per-process metric carries a ``pid`` label (several processes, or the workers of
    one server, can share an exporter), and a series exists only once its figure has been
    read: what cannot be seen of another process (its GC pauses, a USS behind a permission)
    is absent, never a zero that looks like a reading. System-wide kernel figures carry
    ``scope="system"`` so they are not mistaken for one process's.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        namespace: str = "connscale",
        pid: int | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        #: The pid label of figures that come without one (connections, pressure, GC).
        self.pid = str(os.getpid() if pid is None else pid)
        ns = namespace
        registry = self.registry
        self.memory = Gauge(
            f"{ns}_process_memory_bytes",
            "Memory of the process by kind (uss, pss, rss, swap, anon)",
            ["pid", "kind"],
            registry=registry,
        )
        self.open_fds = Gauge(
            f"{ns}_process_open_fds", "Open file descriptors", ["pid"], registry=registry
        )
        self.py_heap_blocks = Gauge(
            f"{ns}_python_heap_blocks",
            "Allocated Python memory blocks (sys.getallocatedblocks)",
            ["pid"],
            registry=registry,
        )
        self.gc_pause = Histogram(
            f"{ns}_gc_pause_seconds",
            "Garbage-collector pause per collection",
            ["pid", "generation"],
            buckets=GC_PAUSE_BUCKETS,
            registry=registry,
        )
        self.gc_collected = Gauge(
            f"{ns}_gc_objects_collected",
            "Objects collected since the recorder started",
            ["pid"],
            registry=registry,
        )
        self.process_sockets = Gauge(
            f"{ns}_process_sockets",
            "Sockets the process holds (its fds that are sockets)",
            ["pid"],
            registry=registry,
        )
        self.process_kernel_bytes = Gauge(
            f"{ns}_process_socket_kernel_bytes",
            "Kernel memory of the process's sockets (slab objects per socket + queued bytes)",
            ["pid"],
            registry=registry,
        )
        self.bytes_per_connection = Gauge(
            f"{ns}_bytes_per_connection",
            "Marginal USS per connection: the fit over settled plateaus of the socket count",
            ["pid"],
            registry=registry,
        )
        self.trend = Gauge(
            f"{ns}_memory_trend_bytes_per_second",
            "Theil-Sen growth of a memory figure over the watch window",
            ["pid", "kind"],
            registry=registry,
        )
        self.leak = Gauge(
            f"{ns}_memory_leak_suspected",
            "1 when the growth's confidence interval lies above zero and over the threshold",
            ["pid"],
            registry=registry,
        )
        self.kernel_tcp_sockets = Gauge(
            f"{ns}_kernel_tcp_sockets",
            "TCP sockets in use SYSTEM-WIDE (/proc/net/sockstat inuse), every process's",
            ["scope"],
            registry=registry,
        )
        self.kernel_tcp_memory = Gauge(
            f"{ns}_kernel_tcp_memory_bytes",
            "Kernel TCP buffer memory SYSTEM-WIDE (/proc/net/sockstat mem), every process's",
            ["scope"],
            registry=registry,
        )
        self.connections = Gauge(
            f"{ns}_live_connections", "Connections the server holds now", ["pid"], registry=registry
        )
        self.pressure = Gauge(
            f"{ns}_memory_pressure_level",
            "Memory pressure level: 0 normal, 1 elevated, 2 high, 3 critical",
            ["pid"],
            registry=registry,
        )
        self._collected_total = 0

    def observe_sample(self, sample: MemorySample) -> None:
        """Set the memory gauges of ``sample.pid``; figures not available stay absent."""
        pid = str(sample.pid)
        for kind in _MEMORY_FIELDS:
            value = getattr(sample, kind)
            if value is not None:
                self.memory.labels(pid=pid, kind=kind).set(value)
        if sample.fds is not None:
            self.open_fds.labels(pid=pid).set(sample.fds)
        if sample.py_heap_blocks is not None:
            self.py_heap_blocks.labels(pid=pid).set(sample.py_heap_blocks)

    def observe_kernel(self, sockets: KernelSockets) -> None:
        """System-wide sockstat figures (labelled ``scope="system"``)."""
        if sockets.tcp_inuse is not None:
            self.kernel_tcp_sockets.labels(scope="system").set(sockets.tcp_inuse)
        if sockets.tcp_mem_bytes is not None:
            self.kernel_tcp_memory.labels(scope="system").set(sockets.tcp_mem_bytes)

    def observe_sockets(self, sockets: ProcessSockets, pid: int | None = None) -> None:
        """The sockets a process holds and their kernel memory (absent when unreadable)."""
        label = str(pid if pid is not None else sockets.pids[0])
        self.process_sockets.labels(pid=label).set(sockets.sockets)
        if sockets.kernel_bytes is not None:
            self.process_kernel_bytes.labels(pid=label).set(sockets.kernel_bytes)

    def observe_trend(self, result: TrendResult, *, kind: str, pid: int | None = None) -> None:
        """A growth trend (bytes per second) and whether it looks like a leak."""
        label = self.pid if pid is None else str(pid)
        self.trend.labels(pid=label, kind=kind).set(result.slope)
        self.leak.labels(pid=label).set(1 if result.leak else 0)

    def set_bytes_per_connection(self, value: float, pid: int | None = None) -> None:
        self.bytes_per_connection.labels(pid=self.pid if pid is None else str(pid)).set(value)

    def observe_pause(self, generation: int, pause_s: float, collected: int) -> None:
        """A PauseRecorder listener (pauses of this exporter's own process)."""
        self.gc_pause.labels(pid=self.pid, generation=str(generation)).observe(pause_s)
        self._collected_total += collected
        self.gc_collected.labels(pid=self.pid).set(self._collected_total)

    def attach(self, recorder: PauseRecorder) -> None:
        """Observe every pause the recorder sees."""
        recorder.add_listener(self.observe_pause)

    def set_connections(self, count: int, pid: int | None = None) -> None:
        if count < 0:
            raise ConfigurationError(f"a connection count cannot be negative ({count})")
        self.connections.labels(pid=self.pid if pid is None else str(pid)).set(count)

    def set_pressure(self, level: PressureLevel, pid: int | None = None) -> None:
        self.pressure.labels(pid=self.pid if pid is None else str(pid)).set(int(level))

    def on_pressure(self, old: PressureLevel, new: PressureLevel, value: float) -> None:
        """A PressureTracker callback."""
        self.set_pressure(new)

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format (what a scrape returns)."""
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "127.0.0.1") -> MetricsServer:
        """Serve /metrics over HTTP from a daemon thread; port 0 picks a free port."""
        if not 0 <= port < 65536:
            raise ConfigurationError(f"port must be in 0..65535, got {port}")
        try:
            httpd, thread = start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            raise ConfigurationError(f"cannot serve metrics on {addr}:{port}: {exc}") from None
        return MetricsServer(httpd, thread)


class MetricsServer:
    """A running /metrics endpoint; close() stops it."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.port: int = httpd.server_address[1]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5.0)


__all__ = ["GC_PAUSE_BUCKETS", "MetricsExporter", "MetricsServer"]
