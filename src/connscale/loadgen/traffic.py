"""A traffic phase's result: requests answered, errors, and an HDR latency histogram."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

#: Latency range the histograms hold: 1 us .. 60 s, 3 significant digits.
HISTOGRAM_LOWEST_US = 1
HISTOGRAM_HIGHEST_US = 60_000_000
HISTOGRAM_DIGITS = 3


def new_histogram() -> HdrHistogram:
    """An empty latency histogram in microseconds."""
    return HdrHistogram(HISTOGRAM_LOWEST_US, HISTOGRAM_HIGHEST_US, HISTOGRAM_DIGITS)


@dataclass
class TrafficResult:
    """Requests answered, errors, and the latency histogram (microseconds) of a phase."""

    requests: int = 0
    errors: int = 0
    skipped: int = 0
    duration_s: float = 0.0
    connections: int = 0
    histogram: HdrHistogram = field(default_factory=new_histogram)

    @property
    def throughput_rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def percentile_ms(self, percentile: float) -> float | None:
        if self.histogram.get_total_count() == 0:
            return None
        return float(self.histogram.get_value_at_percentile(percentile)) / 1000.0

    def max_ms(self) -> float | None:
        if self.histogram.get_total_count() == 0:
            return None
        return float(self.histogram.get_max_value()) / 1000.0

    def record(self, micros: int) -> None:
        self.histogram.record_value(max(1, min(micros, HISTOGRAM_HIGHEST_US)))

    def merge(self, other: TrafficResult) -> None:
        """Add another process's result (the phases ran side by side: durations overlap)."""
        self.requests += other.requests
        self.errors += other.errors
        self.skipped += other.skipped
        self.connections += other.connections
        self.duration_s = max(self.duration_s, other.duration_s)
        self.histogram.add(other.histogram)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "skipped": self.skipped,
            "duration_s": self.duration_s,
            "connections": self.connections,
            "histogram": self.histogram.encode().decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrafficResult:
        histogram = new_histogram()
        encoded = data.get("histogram")
        if isinstance(encoded, str) and encoded:
            histogram.decode_and_add(encoded.encode("ascii"))
        return cls(
            requests=int(data.get("requests", 0)),
            errors=int(data.get("errors", 0)),
            skipped=int(data.get("skipped", 0)),
            duration_s=float(data.get("duration_s", 0.0)),
            connections=int(data.get("connections", 0)),
            histogram=histogram,
        )


__all__ = [
    "HISTOGRAM_DIGITS",
    "HISTOGRAM_HIGHEST_US",
    "HISTOGRAM_LOWEST_US",
    "TrafficResult",
    "new_histogram",
]
