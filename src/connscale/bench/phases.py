"""The traffic phases of a benchmark: open-loop latency at the top plateau, then closed-loop
throughput at a common connection count so that servers compare fairly."""

from __future__ import annotations

from connscale.bench.config import BenchConfig
from connscale.bench.observer import BenchObserver
from connscale.bench.targets import ServerSpec
from connscale.errors import LoadError
from connscale.loadgen.runner import LoadRunner
from connscale.loadgen.traffic import TrafficResult
from connscale.report.schema import ServerResult, Traffic


def traffic_record(result: TrafficResult) -> Traffic:
    """A phase's result as stored in RUN.json."""
    return Traffic(
        connections=result.connections,
        requests=result.requests,
        errors=result.errors,
        duration_s=round(result.duration_s, 3),
        throughput_rps=round(result.throughput_rps, 1),
        p50_ms=result.percentile_ms(50),
        p99_ms=result.percentile_ms(99),
        p999_ms=result.percentile_ms(99.9),
        max_ms=result.max_ms(),
    )


def run_traffic_phases(
    spec: ServerSpec,
    config: BenchConfig,
    runner: LoadRunner,
    result: ServerResult,
    observer: BenchObserver,
) -> None:
    """Latency then throughput; a protocol with no request to time (SSE, raw TCP without a
    probe) gets a note instead."""
    mix = config.mix or runner.protocol.traffic_mix()
    if mix is None:
        result.notes.append(f"no traffic phase: the {spec.protocol} protocol has no request")
        return
    held = result.max_connections or 0
    try:
        observer.phase(spec, f"latency at {held:,} connections")
        rate = config.latency_rate / max(held, 1)
        latency = runner.traffic(duration=config.traffic_duration, rate=rate, mix=mix)
        result.latency = traffic_record(latency)
        result.notes.append(
            f"latency measured at {held:,} connections, open loop, "
            f"{config.latency_rate:g} req/s in all, mix {mix}"
        )
        level = min(config.throughput_connections, held)
        if level < held:
            runner.shrink_to(level)
        observer.phase(spec, f"throughput at {level:,} connections")
        throughput = runner.traffic(
            duration=config.traffic_duration, concurrency=config.traffic_concurrency, mix=mix
        )
        result.traffic = traffic_record(throughput)
    except LoadError as exc:
        result.notes.append(f"traffic phase failed: {exc}")


__all__ = ["run_traffic_phases", "traffic_record"]
