"""How a benchmark runs: the plateau ladder, sampling and traffic settings, and their limits."""

from __future__ import annotations

from dataclasses import dataclass

from connscale.errors import ConfigurationError

#: Connections one reference-server worker is given (well under 20,000 open files).
CONNECTIONS_PER_WORKER = 12_500
#: How far one baseline process goes: under the per-process open-files limit.
BASELINE_MAX_CONNECTIONS = 15_000
DEFAULT_MAX_CONNECTIONS = 100_000
QUICK_PLATEAUS = (200, 500, 1000)
#: Fewest plateaus a fit is made from when the ladder has that many.
MIN_PLATEAUS = 3


@dataclass(frozen=True)
class BenchConfig:
    """How the benchmark runs; ``quick()`` and ``default()`` give the two usual shapes."""

    plateaus: tuple[int, ...]
    samples: int = 5
    sample_interval: float = 0.2
    settle_timeout: float = 15.0
    settle_tolerance: float = 0.005
    throughput_connections: int = 10_000
    traffic_duration: float = 5.0
    traffic_concurrency: int = 64
    latency_rate: float = 1000.0  # open-loop requests per second over all connections
    mix: str | None = None  # None: each protocol's own (MCP ping, WebSocket ping, ...)
    grow_timeout: float = 300.0
    start_timeout: float = 30.0
    max_seconds: float = 1800.0  # hard limit on each load worker's life

    @classmethod
    def default(cls, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> BenchConfig:
        return cls(plateaus=default_plateaus(max_connections))

    @classmethod
    def quick(cls) -> BenchConfig:
        return cls(
            plateaus=QUICK_PLATEAUS,
            samples=3,
            sample_interval=0.05,
            settle_timeout=3.0,
            settle_tolerance=0.02,
            throughput_connections=1000,
            traffic_duration=1.0,
            traffic_concurrency=16,
            latency_rate=200.0,
            grow_timeout=30.0,
            start_timeout=20.0,
            max_seconds=120.0,
        )


def default_plateaus(max_connections: int) -> tuple[int, ...]:
    """1K, 5K, 10K, 15K (where baselines stop), then quarters of ``max_connections``."""
    if max_connections < 1:
        raise ConfigurationError("max_connections must be at least 1")
    levels = {level for level in (1000, 5000, 10_000, 15_000) if level <= max_connections}
    if max_connections > BASELINE_MAX_CONNECTIONS:
        quarter = max_connections / 4
        levels.update(round(quarter * step) for step in range(1, 5))
    levels.add(max_connections)
    return tuple(sorted(level for level in levels if level > 0))


def plateaus_for(ladder: tuple[int, ...], cap: int, *, scale: bool = False) -> tuple[int, ...]:
    """The plateaus of ``ladder`` a server capped at ``cap`` connections is measured at.

    Those up to ``cap``; with ``scale``, when fewer than ``MIN_PLATEAUS`` of them fit, the
    whole ladder scaled down to ``cap`` (same shape, so the server still gets a fit, on its
    own levels: the official SDK, which refuses its 1,025th listen stream, for example).
    """
    within = tuple(level for level in ladder if level <= cap)
    if not scale or len(within) >= min(MIN_PLATEAUS, len(ladder)) or not ladder:
        return within
    top = max(ladder)
    return tuple(sorted({max(1, round(level * cap / top)) for level in ladder}))


__all__ = [
    "BASELINE_MAX_CONNECTIONS",
    "CONNECTIONS_PER_WORKER",
    "DEFAULT_MAX_CONNECTIONS",
    "MIN_PLATEAUS",
    "QUICK_PLATEAUS",
    "BenchConfig",
    "default_plateaus",
    "plateaus_for",
]
