"""One load-generator process: a Swarm driven by JSON-line commands on stdin.

Run as ``python -m connscale.loadgen.worker CONFIG_JSON``. Commands (one JSON object a
line): ``grow``/``shrink`` with ``target``, ``traffic`` with ``duration``, ``rate``,
``concurrency``, ``mix``, ``status`` and ``close``. Replies and progress go to stdout,
one JSON object a line. The worker stops by itself when stdin closes (its runner is
gone) or its ``deadline_s`` passes, closing every socket: it never outlives a run.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

from connscale.loadgen.client import Swarm

#: How often a growing worker reports progress.
PROGRESS_INTERVAL_S = 0.25


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return int(hard)
    return int(soft)


class Worker:
    """Reads commands, drives the swarm, writes events."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.swarm = Swarm(
            str(config["host"]),
            int(config["port"]),
            transport=str(config.get("transport", "tcp")),
            sources=[(source, int(count)) for source, count in config["sources"]],
            max_handshakes=int(config.get("max_handshakes", 256)),
            handshake_timeout=float(config.get("handshake_timeout", 15.0)),
            path=str(config.get("path", "/mcp")),
            seed=int(config.get("seed", 0)),
        )
        self.deadline = time.monotonic() + float(config.get("deadline_s", 3600.0))
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
            sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
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
                self.handle(json.loads(line))

    def handle(self, command: dict[str, Any]) -> None:
        name = command.get("cmd")
        if name == "grow":
            self.swarm.grow(int(command["target"]))
            self.growing = True
        elif name == "shrink":
            self.swarm.shrink(int(command["target"]))
            self.emit("shrunk", status=self.swarm.status().to_dict())
        elif name == "traffic":
            rate = command.get("rate")
            self.swarm.start_traffic(
                duration=float(command["duration"]),
                rate=None if rate is None else float(rate),
                concurrency=int(command.get("concurrency", 32)),
                mix=[(str(kind), float(weight)) for kind, weight in command["mix"]],
            )
            self.in_traffic = True
        elif name == "status":
            self.emit("status", status=self.swarm.status().to_dict())
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
                        self.emit("grown", status=self.swarm.status().to_dict())
                    elif now - self.last_progress >= PROGRESS_INTERVAL_S:
                        self.last_progress = now
                        self.emit("progress", status=self.swarm.status().to_dict())
                if self.in_traffic:
                    result = self.swarm.traffic_result()
                    if result is not None:
                        self.in_traffic = False
                        self.emit("traffic", result=result.to_dict())
        finally:
            self.swarm.close_all()
            self.emit("closed")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m connscale.loadgen.worker CONFIG_JSON", file=sys.stderr)
        return 2
    raise_open_files_limit()
    Worker(json.loads(argv[0])).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
