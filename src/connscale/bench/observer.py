"""Hooks through which a running benchmark reports progress (the CLI draws them)."""

from __future__ import annotations

from collections.abc import Sequence

from connscale.bench.lifecycle import RunningServer
from connscale.bench.targets import ServerSpec
from connscale.report.schema import Plateau, ServerResult


class BenchObserver:
    """Every method does nothing by default; subclass what you want to see."""

    def server_started(self, spec: ServerSpec, plateaus: Sequence[int]) -> None:
        """A server is up and about to be ramped through ``plateaus``."""

    def target_started(self, spec: ServerSpec, target: RunningServer) -> None:
        """The same moment, with the running server (its pids, host and port)."""

    def ramp(self, spec: ServerSpec, established: int, goal: int) -> None:
        """Connections are opening."""

    def plateau(self, spec: ServerSpec, plateau: Plateau) -> None:
        """A plateau was measured."""

    def phase(self, spec: ServerSpec, text: str) -> None:
        """A named phase (settling, traffic, ...) began."""

    def server_done(self, spec: ServerSpec, result: ServerResult) -> None:
        """A server is finished (``result.error`` says if it stopped early)."""


__all__ = ["BenchObserver"]
