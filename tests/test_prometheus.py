"""Prometheus export in a dedicated registry, scraped over loopback."""

from __future__ import annotations

import os
import urllib.request

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from connscale.core.monitor_policy import PressureLevel
from connscale.errors import ConfigurationError
from connscale.gc import PauseRecorder
from connscale.memory import KernelSockets, MemorySample
from connscale.prometheus import MetricsExporter


def sample() -> MemorySample:
    return MemorySample(
        pid=1,
        uss=1000,
        pss=None,
        rss=3000,
        swap=0,
        fds=7,
        py_heap_blocks=42,
        timestamp=0.0,
        anon=900,
    )


def test_metrics_are_exported_in_a_private_registry() -> None:
    exporter = MetricsExporter()
    assert exporter.registry is not REGISTRY
    exporter.observe_sample(sample())
    exporter.set_connections(12)
    exporter.on_pressure(PressureLevel.NORMAL, PressureLevel.HIGH, 1.0)
    exporter.observe_kernel(
        KernelSockets(
            available=True,
            reason=None,
            tcp_inuse=5,
            tcp_orphan=0,
            tcp_tw=0,
            tcp_alloc=5,
            tcp_mem_pages=2,
            tcp_mem_bytes=8192,
            slab=None,
        )
    )
    recorder = PauseRecorder()
    exporter.attach(recorder)
    recorder.record(2, 0.003, 11)
    text = exporter.exposition().decode()
    assert 'connscale_process_memory_bytes{kind="uss",pid="1"} 1000.0' in text
    assert 'connscale_process_memory_bytes{kind="anon",pid="1"} 900.0' in text
    assert 'kind="pss"' not in text  # not available: not exported as 0
    assert 'connscale_process_open_fds{pid="1"} 7.0' in text
    own = os.getpid()
    assert f'connscale_live_connections{{pid="{own}"}} 12.0' in text
    assert f'connscale_memory_pressure_level{{pid="{own}"}} 2.0' in text
    assert 'connscale_kernel_tcp_memory_bytes{scope="system"} 8192.0' in text
    assert f'connscale_gc_pause_seconds_count{{generation="2",pid="{own}"}} 1.0' in text
    assert f'connscale_gc_objects_collected{{pid="{own}"}} 11.0' in text
    assert b"connscale_" not in __import__("prometheus_client").generate_latest(REGISTRY)


def test_two_exporters_do_not_clash_and_a_registry_can_be_given() -> None:
    registry = CollectorRegistry()
    MetricsExporter(registry=registry, namespace="a")
    MetricsExporter(registry=registry, namespace="b")
    MetricsExporter()
    MetricsExporter()


def test_bad_values_are_refused() -> None:
    exporter = MetricsExporter()
    with pytest.raises(ConfigurationError):
        exporter.set_connections(-1)
    with pytest.raises(ConfigurationError):
        exporter.serve(70000)


def test_serves_metrics_over_loopback() -> None:
    exporter = MetricsExporter()
    exporter.set_connections(3)
    server = exporter.serve(0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            body = r.read().decode()
    finally:
        server.close()
    assert f'connscale_live_connections{{pid="{os.getpid()}"}} 3.0' in body


def test_what_cannot_be_read_is_absent_not_zero() -> None:
    exporter = MetricsExporter(pid=4242)
    exporter.observe_sample(
        MemorySample(
            pid=4242,
            uss=None,
            pss=None,
            rss=5000,
            swap=None,
            fds=None,
            py_heap_blocks=None,
            timestamp=0.0,
        )
    )
    text = exporter.exposition().decode()
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert samples == ['connscale_process_memory_bytes{kind="rss",pid="4242"} 5000.0']


def test_trend_leak_sockets_and_bytes_per_connection_carry_the_pid() -> None:
    from connscale.core.stats import trend
    from connscale.memory import ProcessSockets

    exporter = MetricsExporter(pid=7)
    growing = trend([(float(t), 1000.0 + 50.0 * t) for t in range(10)], threshold=1.0)
    exporter.observe_trend(growing, kind="anon")
    exporter.observe_sockets(
        ProcessSockets(pids=(7,), sockets=100, tcp=99, queued_bytes=0, object_bytes=4000)
    )
    exporter.set_bytes_per_connection(1750.0)
    text = exporter.exposition().decode()
    assert 'connscale_memory_trend_bytes_per_second{kind="anon",pid="7"} 50.0' in text
    assert 'connscale_memory_leak_suspected{pid="7"} 1.0' in text
    assert 'connscale_process_sockets{pid="7"} 100.0' in text
    assert 'connscale_process_socket_kernel_bytes{pid="7"} 400000.0' in text
    assert 'connscale_bytes_per_connection{pid="7"} 1750.0' in text
