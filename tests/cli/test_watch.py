"""`connscale watch`: plain and table views with injected time, dead pids, Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from rich.console import Console

from connscale.cli import main, watch
from connscale.clock import FakeClock
from connscale.errors import ProcessGoneError
from connscale.gc import PauseRecorder
from connscale.memory import kernel_sockets
from connscale.monitor import Monitor


def args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "pid": os.getpid(),
        "interval": 5.0,
        "max_interval": 60.0,
        "prometheus_port": None,
        "duration": 30.0,
        "plain": True,
    }
    values.update(overrides)
    return argparse.Namespace(**values)


def test_plain_view_for_a_duration_of_fake_time(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock(1000.0)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    assert watch.run(args(), sleep=sleep, clock=clock) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert sum(slept) == pytest.approx(30.0)
    assert len(lines) == len(slept) + 1
    assert lines[0].startswith(f"pid {os.getpid()} rss ")
    assert "collecting samples" in lines[0]
    assert "/h [" in lines[-1]  # a trend once there are two samples


def test_dead_pid_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert main(["watch", "--pid", str(child.pid), "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert f"process {child.pid}" in err and "Traceback" not in err


def test_process_exiting_while_watched(capsys: pytest.CaptureFixture[str]) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.advance(seconds)
        if child.poll() is None:
            child.kill()
            child.wait()

    with pytest.raises(ProcessGoneError, match="exited after"):
        watch.run(args(pid=child.pid, duration=None), sleep=sleep, clock=clock)


def test_ctrl_c_exits_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    assert watch.run(args(duration=None), sleep=interrupted, clock=FakeClock()) == 0
    assert "stopped" in capsys.readouterr().err


def test_prometheus_export_while_watching(capsys: pytest.CaptureFixture[str]) -> None:
    bodies: list[str] = []

    def scrape_then_stop(seconds: float) -> None:
        port = int(capsys.readouterr().err.split("127.0.0.1:")[1].split("/")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            bodies.append(r.read().decode())
        raise KeyboardInterrupt

    assert (
        watch.run(args(prometheus_port=0, duration=None), sleep=scrape_then_stop, clock=FakeClock())
        == 0
    )
    assert f'connscale_process_memory_bytes{{kind="rss",pid="{os.getpid()}"}}' in bodies[0]
    assert f'connscale_process_sockets{{pid="{os.getpid()}"}}' in bodies[0]


def test_table_view_renders_figures_and_gaps() -> None:
    monitor = Monitor(full_every=1)
    monitor.tick()
    recorder = PauseRecorder()
    recorder.record(0, 0.002, 3)
    table = watch.build_view(monitor, trend=None, gc=recorder.statistics(), kernel=kernel_sockets())
    console = Console(width=120, record=True)
    console.print(table)
    text = console.export_text()
    assert "USS (exact, last full read)" in text and "MiB" in text
    assert "collecting samples" in text
    assert "1 collections" in text
    other = watch.build_view(monitor, trend=None, gc=None, kernel=None)
    console.print(other)
    assert "visible only inside the process" in console.export_text()


@pytest.mark.parametrize("bad", [["--pid", "0"], ["--pid", "1", "--duration", "-1"]])
def test_bad_arguments(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", *bad]) == 2
    assert "error" in capsys.readouterr().err


def test_plain_marks_a_stale_exact_reading_with_its_age() -> None:
    monitor = Monitor(full_every=3)
    exact = watch.Exact()
    lines = []
    for _ in range(3):
        monitor.tick()
        if monitor.last is monitor.last_full:
            exact.full_tick = monitor.ticks - 1
        lines.append(watch.plain_line(monitor, None, exact))
    assert "ticks old" not in lines[0]
    assert "uss " in lines[1] and "(1 ticks old)" in lines[1]
    assert "(2 ticks old)" in lines[2]


def test_bytes_per_connection_is_the_uss_slope_against_sockets() -> None:
    exact = watch.Exact()
    exact.points.append((100.0, 10_000_000.0))
    assert exact.bytes_per_connection() is None  # the count has not moved yet
    assert "n/a until" in watch.connection_text(exact)
    exact.points.extend([(300.0, 10_400_000.0), (500.0, 10_800_000.0)])
    assert exact.bytes_per_connection() == pytest.approx(2000.0)
    assert "2,000 B" in watch.connection_text(exact)


def test_watching_a_server_with_workers_sums_them_and_counts_sockets(tmp_path: object) -> None:
    import socket
    import textwrap

    code = textwrap.dedent(
        """
        import os, socket, sys, time
        listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen(64)
        if os.fork() == 0:
            time.sleep(30); os._exit(0)
        print(listener.getsockname()[1], flush=True)
        held = []
        while True:
            held.append(listener.accept()[0])
        """
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, process_group=0
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        exact = watch.Exact()
        sample = watch.group_reader(server.pid, exact, FakeClock())()
        assert exact.processes == 2 and sample.pss is not None and sample.uss is not None
        import time

        from connscale.memory import descendants, process_sockets

        deadline = time.monotonic() + 5
        while process_sockets([server.pid]).sockets < 21 and time.monotonic() < deadline:
            time.sleep(0.02)
        # 20 accepted + the listener; the forked worker shares the listener's socket
        assert process_sockets([server.pid, *descendants(server.pid)]).sockets == 21
        for client in clients:
            client.close()
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the worker too
        server.wait(5)
