"""Run a load plan: one worker process per planned share, steered over pipes.

The runner starts ``python -m connscale.loadgen.worker`` processes (each in its own
process group), grows and shrinks the total number of connections across them, runs
traffic phases and merges their latency histograms. Every wait is bounded; ``close()``
(or leaving the ``with`` block) ends every worker, killing any that do not stop.
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO

import msgspec

from connscale.errors import ConfigurationError, LoadError, TargetRefusedError
from connscale.loadgen.messages import Command, WorkerConfig, WorkerEvent
from connscale.loadgen.plan import LoadPlan
from connscale.loadgen.protocols import ProtocolOptions, make_protocol
from connscale.loadgen.swarm import SwarmStatus, parse_mix
from connscale.loadgen.traffic import TrafficResult

_event_decoder = msgspec.json.Decoder(WorkerEvent)
_encoder = msgspec.json.Encoder()

#: Called with (established, goal, failed) while connections open.
ProgressCallback = Callable[[int, int, int], None]


@dataclass(frozen=True, slots=True)
class GrowResult:
    """Where a ramp step ended; ``dropped`` counts held connections lost since the start."""

    goal: int
    established: int
    failed: int
    dropped: int
    seconds: float
    failures: dict[str, int]
    first_error: str | None
    drops: dict[str, int]
    first_drop: str | None
    events: int = 0  # messages the server sent unasked (SSE events, WebSocket pushes)


class _WorkerProcess:
    __slots__ = ("buffer", "capacity", "index", "process", "stdout")

    def __init__(self, index: int, capacity: int, process: subprocess.Popen[bytes]) -> None:
        self.index = index
        self.capacity = capacity
        self.process = process
        assert process.stdout is not None
        self.stdout: IO[bytes] = process.stdout
        self.buffer = b""


class LoadRunner:
    """Connections to ``host:port`` spread over the plan's worker processes."""

    def __init__(
        self,
        plan: LoadPlan,
        host: str,
        port: int,
        *,
        protocol: str = "mcp",
        path: str | None = None,
        probe: str | None = None,
        call: str | None = None,
        max_seconds: float = 3600.0,
        max_handshakes: int = 256,
        handshake_timeout: float = 15.0,
        on_progress: ProgressCallback | None = None,
        python: str = sys.executable,
    ) -> None:
        # Built here once so that a bad protocol, path or probe fails before any process starts.
        self.protocol = make_protocol(
            protocol, ProtocolOptions(host=host, port=port, path=path, probe=probe, call=call)
        )
        self.plan = plan
        self.host = host
        self.port = port
        self._path = path
        self._probe = probe
        self._call = call
        self.max_seconds = max_seconds
        self.on_progress = on_progress
        self._max_handshakes = max_handshakes
        self._handshake_timeout = handshake_timeout
        self._python = python
        self._workers: list[_WorkerProcess] = []
        self._selector = selectors.DefaultSelector()
        self._statuses: dict[int, SwarmStatus] = {}
        self._goal = 0

    # --- lifetime -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker processes (they open nothing until ``grow_to``)."""
        if self._workers:
            return
        handshakes = max(16, self._max_handshakes // max(1, self.plan.processes))
        for worker in self.plan.workers:
            config = WorkerConfig(
                host=self.host,
                port=self.port,
                protocol=self.protocol.name,
                path=self._path,
                probe=self._probe,
                call=self._call,
                sources=[(share.address, share.connections) for share in worker.sources],
                max_handshakes=handshakes,
                handshake_timeout=self._handshake_timeout,
                deadline_s=self.max_seconds,
                seed=worker.index,
            )
            process = subprocess.Popen(
                [self._python, "-m", "connscale.loadgen.worker", _encoder.encode(config).decode()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                process_group=0,
            )
            handle = _WorkerProcess(worker.index, worker.connections, process)
            os.set_blocking(handle.stdout.fileno(), False)
            self._selector.register(handle.stdout, selectors.EVENT_READ, handle)
            self._workers.append(handle)

    def close(self, timeout: float = 10.0) -> None:
        """Close every connection and end every worker (killed if it does not stop)."""
        for handle in self._workers:
            self._send(handle, Command(cmd="close"))
            if handle.process.stdin is not None:
                with contextlib.suppress(OSError):
                    handle.process.stdin.close()
        deadline = time.monotonic() + timeout
        for handle in self._workers:
            try:
                handle.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(handle.process)
            handle.stdout.close()
        self._workers.clear()
        self._selector.close()

    def __enter__(self) -> LoadRunner:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(handle.process.pid for handle in self._workers)

    # --- steering -----------------------------------------------------------------------------

    def split(self, total: int) -> list[int]:
        """Share ``total`` connections over the workers in proportion to their capacity."""
        capacity = sum(handle.capacity for handle in self._workers)
        if total > capacity:
            raise ConfigurationError(f"{total} connections exceed the plan ({capacity})")
        shares = [handle.capacity * total // capacity for handle in self._workers]
        for index in range(total - sum(shares)):
            position = index % len(shares)
            while shares[position] >= self._workers[position].capacity:
                position = (position + 1) % len(shares)
            shares[position] += 1
        return shares

    def grow_to(self, total: int, *, timeout: float = 300.0, refuse: bool = True) -> GrowResult:
        """Open connections until ``total`` are established; bounded by ``timeout``.

        Raises TargetRefusedError (when ``refuse``) if the target refused, reset or
        timed out connections so that fewer than ``total`` are established.
        """
        self.start()
        started = time.monotonic()
        self._goal = total
        for handle, share in zip(self._workers, self.split(total), strict=True):
            self._send(handle, Command(cmd="grow", target=share))
        self._collect("grown", timeout=timeout, progress=True)
        result = self._grow_result(total, time.monotonic() - started)
        if refuse and result.established < total:
            raise TargetRefusedError(self._refusal(result))
        return result

    def _refusal(self, result: GrowResult) -> str:
        text = (
            f"{self.host}:{self.port} held only {result.established} of {result.goal} "
            f"connections ({result.failed} failed: {_describe(result.failures)}; "
            f"first: {result.first_error or 'none'})"
        )
        if result.dropped:
            text += f"; {result.dropped} dropped after connecting (first: {result.first_drop})"
        refused_outright = set(result.failures) <= {"ECONNREFUSED", "ETIMEDOUT", "EADDRNOTAVAIL"}
        if result.established == 0 and not refused_outright:
            from connscale.loadgen.protocols import PROTOCOL_NAMES

            text += (
                f"; does the target speak {self.protocol.name}? choose what it speaks with "
                f"--protocol ({', '.join(PROTOCOL_NAMES)})"
            )
        return text

    def shrink_to(self, total: int, *, timeout: float = 60.0) -> GrowResult:
        """Close connections until ``total`` remain."""
        started = time.monotonic()
        self._goal = total
        for handle, share in zip(self._workers, self.split(total), strict=True):
            self._send(handle, Command(cmd="shrink", target=share))
        self._collect("shrunk", timeout=timeout, progress=False)
        return self._grow_result(total, time.monotonic() - started)

    def status(self, *, timeout: float = 10.0) -> GrowResult:
        """Ask every worker how many connections it holds now."""
        for handle in self._workers:
            self._send(handle, Command(cmd="status"))
        self._collect("status", timeout=timeout, progress=False)
        return self._grow_result(self._goal, 0.0)

    def traffic(
        self,
        *,
        duration: float,
        rate: float | None = None,
        concurrency: int = 64,
        mix: str | Sequence[tuple[str, float]] = "ping",
    ) -> TrafficResult:
        """Run a request phase on every worker at once; histograms merged.

        ``rate`` is requests per second per connection (open loop); without it the
        ``concurrency`` requests in flight (shared over the workers) give a closed loop.
        """
        kinds = self.protocol.request_kinds
        parsed = parse_mix(mix, kinds) if isinstance(mix, str) else tuple(mix)
        per_worker = max(1, math.ceil(concurrency / max(1, len(self._workers))))
        for handle in self._workers:
            command = Command(
                cmd="traffic",
                duration=duration,
                rate=rate,
                concurrency=per_worker,
                mix=[(name, weight) for name, weight in parsed],
            )
            self._send(handle, command)
        replies = self._collect("traffic", timeout=duration + 30.0, progress=False)
        merged = TrafficResult()
        for reply in replies:
            merged.merge(TrafficResult.from_dict(reply.result or {}))
        return merged

    # --- plumbing -----------------------------------------------------------------------------

    def _send(self, handle: _WorkerProcess, command: Command) -> None:
        stdin = handle.process.stdin
        if stdin is None or stdin.closed:
            return
        try:
            stdin.write(_encoder.encode(command) + b"\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker is gone; _collect reports it

    def _collect(self, event: str, *, timeout: float, progress: bool) -> list[WorkerEvent]:
        """Wait until every worker sent ``event``; bounded by ``timeout``."""
        deadline = time.monotonic() + timeout
        waiting = {handle.index for handle in self._workers}
        replies: list[WorkerEvent] = []
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LoadError(
                    f"{len(waiting)} load worker(s) did not finish {event!r} within "
                    f"{timeout:g} s; the target or this machine is overloaded"
                )
            for key, _ in self._selector.select(min(left, 0.25)):
                handle: _WorkerProcess = key.data
                for message in self._read_events(handle):
                    if message.status is not None:
                        self._statuses[handle.index] = message.status
                    kind = message.event
                    if kind == "error":
                        raise LoadError(f"load worker {handle.index}: {message.message}")
                    if kind == event and handle.index in waiting:
                        waiting.discard(handle.index)
                        replies.append(message)
                    elif kind in ("closed", "expired", "exited"):
                        raise LoadError(
                            f"load worker {handle.index} stopped while waiting for {event!r}"
                            " (its time limit passed or it crashed)"
                        )
            if progress and self.on_progress is not None:
                totals = self._totals()
                self.on_progress(totals.established, self._goal, totals.failed)
        return replies

    def _read_events(self, handle: _WorkerProcess) -> list[WorkerEvent]:
        try:
            data = os.read(handle.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return []
        if not data:
            self._selector.unregister(handle.stdout)
            return [WorkerEvent(event="exited")]
        handle.buffer += data
        *lines, handle.buffer = handle.buffer.split(b"\n")
        try:
            return [_event_decoder.decode(line) for line in lines if line.strip()]
        except msgspec.DecodeError as exc:
            raise LoadError(
                f"load worker {handle.index} sent a line that is not an event: {exc}"
            ) from None

    def _totals(self) -> SwarmStatus:
        """Every worker's last status, added up (reasons merged, first reasons kept)."""
        total = SwarmStatus(goal=self._goal)
        for status in self._statuses.values():
            total.established += status.established
            total.connecting += status.connecting
            total.failed += status.failed
            total.dropped += status.dropped
            total.events += status.events
            for reason, count in status.failures.items():
                total.failures[reason] = total.failures.get(reason, 0) + count
            for reason, count in status.drops.items():
                total.drops[reason] = total.drops.get(reason, 0) + count
            total.first_error = total.first_error or status.first_error
            total.first_drop = total.first_drop or status.first_drop
        return total

    def _grow_result(self, goal: int, seconds: float) -> GrowResult:
        totals = self._totals()
        return GrowResult(
            goal,
            totals.established,
            totals.failed,
            totals.dropped,
            seconds,
            totals.failures,
            totals.first_error,
            totals.drops,
            totals.first_drop,
            totals.events,
        )


def _describe(failures: dict[str, int]) -> str:
    if not failures:
        return "no errors reported"
    return ", ".join(f"{reason} x{count}" for reason, count in sorted(failures.items()))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


__all__ = ["GrowResult", "LoadRunner", "ProgressCallback"]
