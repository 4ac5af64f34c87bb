"""One load-generator process: a Swarm driven by JSON-line commands on stdin.

Run as ``python -m connscale.loadgen.worker CONFIG_JSON`` (a ``WorkerConfig``). Commands
(one JSON object a line): ``grow``/``shrink`` with ``target``, ``traffic`` with
``duration``, ``rate``, ``concurrency``, ``mix``, ``status`` and ``close``. Replies and
progress go to stdout, one ``WorkerEvent`` a line. Both directions are typed msgspec
records, so a malformed line is refused where it is read. The worker stops by itself when
stdin closes (its runner is gone) or its ``deadline_s`` passes, closing every socket: it
never outlives a run.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import Any

import msgspec

from connscale.errors import ConfigurationError
from connscale.loadgen.messages import Command, WorkerConfig, WorkerEvent
from connscale.loadgen.swarm import Swarm

#: How often a growing worker reports progress.
PROGRESS_INTERVAL_S = 0.25


_command_decoder = msgspec.json.Decoder(Command)
_encoder = msgspec.json.Encoder()


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return int(hard)
    return int(soft)


class Worker:
    """Reads commands, drives the swarm, writes events."""

    def __init__(self, config: WorkerConfig) -> None:
        self.swarm = Swarm(
            config.host,
            config.port,
            protocol=config.protocol,
            path=config.path,
            probe=config.probe,
            call=config.call,
            sources=config.sources,
            max_handshakes=config.max_handshakes,
            handshake_timeout=config.handshake_timeout,
            seed=config.seed,
        )
        self.deadline = time.monotonic() + config.deadline_s
        self.running = True
        self.growing = False
        self.in_traffic = False
        self.last_progress = 0.0
        self.stdin_fd = sys.stdin.fileno()
        self.pending = b""
        os.set_blocking(self.stdin_fd, False)
        self.swarm.add_reader(self.stdin_fd, self.on_stdin)

    def emit(self, event: str, **fields: Any) -> None:
        try:
            sys.stdout.buffer.write(_encoder.encode(WorkerEvent(event=event, **fields)) + b"\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            self.running = False  # the runner went away: nobody left to tell

    def on_stdin(self) -> None:
        try:
            data = os.read(self.stdin_fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self.running = False  # the runner is gone: stop, never linger
            return
        self.pending += data
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            if line.strip():
                try:
                    self.handle(_command_decoder.decode(line))
                except (msgspec.DecodeError, ConfigurationError) as exc:
                    self.emit("error", message=str(exc))

    def handle(self, command: Command) -> None:
        name = command.cmd
        if name == "grow":
            self.swarm.grow(command.target)
            self.growing = True
        elif name == "shrink":
            self.swarm.shrink(command.target)
            self.emit("shrunk", status=self.swarm.status())
        elif name == "traffic":
            self.swarm.start_traffic(
                duration=command.duration,
                rate=command.rate,
                concurrency=command.concurrency,
                mix=command.mix,
            )
            self.in_traffic = True
        elif name == "status":
            self.emit("status", status=self.swarm.status())
        elif name == "close":
            self.running = False
        else:
            self.emit("error", message=f"unknown command {name!r}")

    def run(self) -> None:
        try:
            while self.running:
                now = time.monotonic()
                if now >= self.deadline:
                    self.emit("expired")
                    break
                self.swarm.poll(0.05)
                if self.growing:
                    if not self.swarm.growing:
                        self.growing = False
                        self.emit("grown", status=self.swarm.status())
                    elif now - self.last_progress >= PROGRESS_INTERVAL_S:
                        self.last_progress = now
                        self.emit("progress", status=self.swarm.status())
                if self.in_traffic:
                    result = self.swarm.traffic_result()
                    if result is not None:
                        self.in_traffic = False
                        self.emit("traffic", result=result.to_dict())
        finally:
            self.swarm.close_all()
            self.emit("closed", status=self.swarm.status())


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m connscale.loadgen.worker CONFIG_JSON", file=sys.stderr)
        return 2
    try:
        config = msgspec.json.decode(argv[0], type=WorkerConfig)
        raise_open_files_limit()
        worker = Worker(config)
    except (msgspec.DecodeError, ConfigurationError) as exc:
        print(f"connscale load worker: bad configuration: {exc}", file=sys.stderr)
        return 2
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
