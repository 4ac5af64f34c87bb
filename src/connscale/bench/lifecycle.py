"""Server processes of a benchmark: start, wait until ready, check the port, stop the group.

A server runs in its own process group, so stopping it reaches every worker it forked and
a Ctrl-C at the terminal reaches only the bench (which then stops it). A server that
speaks the ready-file contract (``connscale serve``, the baselines) says where it listens;
a user's command is waited for on its port, after checking that nothing else holds that
port, and then checked to be the process that listens there: the bench must never measure
one process while talking to another.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import psutil

from connscale.bench.targets import ServerSpec
from connscale.errors import ConfigurationError, ServerError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_stem(name: str) -> str:
    """A server name made safe for a file name (a command's slashes and spaces removed)."""
    stem = _UNSAFE.sub("_", name).strip("._") or "server"
    return stem[:64]


@dataclass
class RunningServer:
    """A started server: where it listens and which processes hold its connections."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    pids: tuple[int, ...]
    stats_dir: Path | None
    dynamic_pids: bool = False  # a custom command: its workers are its descendants
    notes: list[str] = field(default_factory=list)

    def current_pids(self) -> tuple[int, ...]:
        if not self.dynamic_pids:
            return self.pids
        try:
            root = psutil.Process(self.process.pid)
            found = [root.pid] + [child.pid for child in root.children(recursive=True)]
        except psutil.Error:
            return self.pids
        return tuple(found)


def port_holder(host: str, port: int) -> str | None:
    """Who already accepts on ``host:port`` ("pid N (name)", or "another process"), or None."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) != 0:
            return None
    for pid in listening_pids(port):
        with contextlib.suppress(psutil.Error):
            return f"pid {pid} ({psutil.Process(pid).name()})"
    return "another process"


def listening_pids(port: int) -> list[int]:
    """Processes with a TCP socket listening on ``port`` (empty where this cannot be read)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return []
    return sorted(
        {
            conn.pid
            for conn in connections
            if conn.pid is not None and conn.status == psutil.CONN_LISTEN and conn.laddr
            if conn.laddr.port == port
        }
    )


def check_port_free(spec: ServerSpec) -> None:
    """ConfigurationError when a user's server port is already held by another process."""
    if spec.port is None:
        return
    holder = port_holder(spec.host, spec.port)
    if holder is not None:
        raise ConfigurationError(
            f"port {spec.port} of target {spec.name!r} is already in use by {holder}: "
            "stop it or give the target another port (the bench starts the server itself)"
        )


@contextlib.contextmanager
def running_server(
    spec: ServerSpec, workdir: Path, *, start_timeout: float = 30.0
) -> Iterator[RunningServer]:
    """Start the server in its own process group; stop the whole group afterwards."""
    check_port_free(spec)
    stem = file_stem(spec.name)
    log_path = workdir / f"{stem}.log"
    log = log_path.open("wb")
    ready_file = workdir / f"{stem}.ready.json"
    stats_dir: Path | None = None
    argv = list(spec.argv)
    if spec.port is None:
        stats_dir = workdir / f"{stem}.stats"
        stats_dir.mkdir(exist_ok=True)
        argv += ["--ready-file", str(ready_file), "--stats-dir", str(stats_dir)]
    try:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, process_group=0
        )
    except OSError as exc:
        log.close()
        raise ServerError(f"cannot start {spec.name}: {exc.strerror or exc}") from None
    try:
        yield _wait_started(
            spec,
            process,
            log_path=log_path,
            ready_file=ready_file,
            stats_dir=stats_dir,
            start_timeout=start_timeout,
        )
    finally:
        _stop_group(process)
        log.close()


def _wait_started(
    spec: ServerSpec,
    process: subprocess.Popen[bytes],
    *,
    log_path: Path,
    ready_file: Path,
    stats_dir: Path | None,
    start_timeout: float,
) -> RunningServer:
    try:
        if spec.port is None:
            info = wait_ready_file(ready_file, process, name=spec.name, timeout=start_timeout)
            return RunningServer(
                str(info.get("host", spec.host)),
                int(info["port"]),
                process,
                tuple(int(pid) for pid in info.get("pids") or [process.pid]),
                stats_dir,
            )
        _wait_port(spec.host, spec.port, process, spec, start_timeout)
        server = RunningServer(spec.host, spec.port, process, (process.pid,), None, True)
        _check_listener(server, spec)
        return server
    except ServerError as exc:
        with contextlib.suppress(OSError):
            tail = log_path.read_bytes()[-400:].decode(errors="replace").strip()
            if tail:
                raise ServerError(f"{exc}; its output ends: {tail[-300:]}") from None
        raise


def _check_listener(server: RunningServer, spec: ServerSpec) -> None:
    """ServerError when another process, not the one started, listens on the port."""
    listeners = listening_pids(server.port)
    if listeners and not set(listeners) & set(server.current_pids()):
        raise ServerError(
            f"{spec.name}: port {server.port} is served by pid(s) {listeners}, not by the "
            f"process the bench started (pid {server.process.pid}); it would measure the "
            "wrong process"
        )


def wait_ready_file(
    path: Path, process: subprocess.Popen[bytes], *, name: str, timeout: float
) -> dict[str, Any]:
    """The ready-file payload of a starting server (``connscale serve --ready-file``).

    ServerError if the process exits first or writes no valid payload within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{name} exited with code {process.returncode} at start")
        if path.exists():
            try:
                info = msgspec.json.decode(path.read_bytes())
            except msgspec.DecodeError:
                info = None  # written atomically, but be safe against a foreign writer
            if isinstance(info, dict) and "port" in info:
                return info
        time.sleep(0.05)
    raise ServerError(f"{name} wrote no ready file within {timeout:g} s")


def _wait_port(
    host: str, port: int, process: subprocess.Popen[bytes], spec: ServerSpec, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{spec.name} exited with code {process.returncode} at start")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise ServerError(f"{spec.name} did not accept on {host}:{port} within {timeout:g} s")


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait)
            # The leader is gone; workers left in its group get the same signal.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


__all__ = [
    "RunningServer",
    "check_port_free",
    "file_stem",
    "listening_pids",
    "port_holder",
    "running_server",
    "wait_ready_file",
]
