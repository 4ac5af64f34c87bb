"""Prometheus export: memory figures, GC pauses, kernel socket memory, connections, pressure.

Metrics live in a dedicated ``CollectorRegistry`` unless one is passed in, so importing
connscale never adds series to the global registry of an application.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client.exposition import generate_latest

from connscale.core.monitor_policy import PressureLevel
from connscale.errors import ConfigurationError
from connscale.gc import PauseRecorder
from connscale.memory import KernelSockets, MemorySample

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
    """Holds connscale's metrics; feed it samples, or wire it to a Monitor and PauseRecorder."""

    def __init__(
        self, *, registry: CollectorRegistry | None = None, namespace: str = "connscale"
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        ns = namespace
        self.memory = Gauge(
            f"{ns}_process_memory_bytes",
            "Memory of the monitored process by kind (uss, pss, rss, swap, anon)",
            ["kind"],
            registry=self.registry,
        )
        self.open_fds = Gauge(
            f"{ns}_process_open_fds", "Open file descriptors", registry=self.registry
        )
        self.py_heap_blocks = Gauge(
            f"{ns}_python_heap_blocks",
            "Allocated Python memory blocks (sys.getallocatedblocks)",
            registry=self.registry,
        )
        self.gc_pause = Histogram(
            f"{ns}_gc_pause_seconds",
            "Garbage-collector pause per collection",
            ["generation"],
            buckets=GC_PAUSE_BUCKETS,
            registry=self.registry,
        )
        self.gc_collected = Gauge(
            f"{ns}_gc_objects_collected",
            "Objects collected since the recorder started",
            registry=self.registry,
        )
        self.kernel_tcp_sockets = Gauge(
            f"{ns}_kernel_tcp_sockets",
            "TCP sockets in use system-wide (/proc/net/sockstat inuse)",
            registry=self.registry,
        )
        self.kernel_tcp_memory = Gauge(
            f"{ns}_kernel_tcp_memory_bytes",
            "Kernel memory held by TCP buffers system-wide (/proc/net/sockstat mem)",
            registry=self.registry,
        )
        self.connections = Gauge(
            f"{ns}_live_connections", "Connections the server holds now", registry=self.registry
        )
        self.pressure = Gauge(
            f"{ns}_memory_pressure_level",
            "Memory pressure level: 0 normal, 1 elevated, 2 high, 3 critical",
            registry=self.registry,
        )
        self._collected_total = 0

    def observe_sample(self, sample: MemorySample) -> None:
        """Set the memory gauges; figures that were not available are left unchanged."""
        for kind in _MEMORY_FIELDS:
            value = getattr(sample, kind)
            if value is not None:
                self.memory.labels(kind=kind).set(value)
        if sample.fds is not None:
            self.open_fds.set(sample.fds)
        if sample.py_heap_blocks is not None:
            self.py_heap_blocks.set(sample.py_heap_blocks)

    def observe_kernel(self, sockets: KernelSockets) -> None:
        if sockets.tcp_inuse is not None:
            self.kernel_tcp_sockets.set(sockets.tcp_inuse)
        if sockets.tcp_mem_bytes is not None:
            self.kernel_tcp_memory.set(sockets.tcp_mem_bytes)

    def observe_pause(self, generation: int, pause_s: float, collected: int) -> None:
        """A PauseRecorder listener."""
        self.gc_pause.labels(generation=str(generation)).observe(pause_s)
        self._collected_total += collected
        self.gc_collected.set(self._collected_total)

    def attach(self, recorder: PauseRecorder) -> None:
        """Observe every pause the recorder sees."""
        recorder.add_listener(self.observe_pause)

    def set_connections(self, count: int) -> None:
        if count < 0:
            raise ConfigurationError(f"a connection count cannot be negative ({count})")
        self.connections.set(count)

    def set_pressure(self, level: PressureLevel) -> None:
        self.pressure.set(int(level))

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
