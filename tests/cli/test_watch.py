"""`connscale watch`: plain and table views with injected time, dead pids, Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from rich.console import Console

from connscale.cli import main, watch
from connscale.clock import FakeClock
from connscale.core.stats import scaling
from connscale.errors import ProcessGoneError
from connscale.gc import PauseRecorder
from connscale.memory import kernel_sockets, process_sockets
from connscale.monitor import Monitor


def args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "pid": os.getpid(),
        "interval": 5.0,
        "max_interval": 60.0,
        "prometheus_port": None,
        "duration": 30.0,
        "plain": True,
        "exact_every": 12,
        "prometheus_host": "127.0.0.1",
        "out": None,
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
    output = capsys.readouterr().out.strip().splitlines()
    lines = [line for line in output if line.startswith("pid ")]
    assert sum(slept) == pytest.approx(30.0)
    assert len(lines) == len(slept) + 1
    assert lines[0].startswith(f"pid {os.getpid()} rss ")
    assert "collecting samples" in lines[0]
    assert "/h [" in lines[-1]  # a trend once there are two samples
    assert output[-1].startswith("bytes per connection: n/a")  # the end: no plateaus here


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


def test_bytes_per_connection_is_the_fit_over_settled_plateaus() -> None:
    exact = watch.Exact()
    exact.readings.extend([(100.0, 10_000_000.0, 6_000_000.0)] * 4)
    assert exact.bytes_per_connection() is None  # one plateau: no line yet
    assert "n/a until two settled plateaus" in watch.connection_text(exact)
    # A ramp's reading between plateaus, then the first reading of a plateau (still
    # settling: dropped), then three settled ones whose median is taken.
    exact.readings.append((220.0, 10_100_000.0, 6_050_000.0))
    exact.readings.extend(
        [(300.0, 10_900_000.0, 6_900_000.0)]
        + [(300.0, uss, 6_400_000.0) for uss in (10_400_000.0, 10_400_100.0, 10_399_900.0)]
    )
    exact.readings.extend([(500.0, 10_800_000.0, 6_800_000.0)] * 4)
    assert [p.connections for p in exact.plateaus()] == [100.0, 300.0, 500.0]
    assert exact.bytes_per_connection() == pytest.approx(2000.0)
    pss = exact.fit("pss")
    assert pss is not None and pss.marginal_bytes == pytest.approx(2000.0)
    text = watch.connection_text(exact)
    assert "USS 2,000 B, PSS 2,000 B (over 3 plateaus, step CV 0.000)" in text
    result = exact.result()
    assert result["fit"]["uss"]["step_marginals"] == [2000.0, 2000.0]  # type: ignore[index]
    assert "500: 10.30 MiB" in watch.final_report(exact)


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


def test_watch_gives_the_bench_fit_for_a_running_server_ramped_in_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real server held at steps of connections: watch's plateaus are the steps (plus the
    listener) and its figure is the least-squares line over their medians, as the bench's."""
    from connscale.loadgen.swarm import Swarm
    from connscale.testing import served

    steps = iter([150, 300, 450, 600])
    with served(tmp_path, ("--transport", "tcp")) as (process, ready):
        swarm = Swarm("127.0.0.1", ready["port"])
        clock = FakeClock(1000.0)
        ticks = [0]

        def sleep(seconds: float) -> None:  # the ramp moves on every fourth reading
            clock.advance(seconds)
            ticks[0] += 1
            if ticks[0] % 4 == 1:
                step = next(steps, None)
                if step is None:
                    raise KeyboardInterrupt  # the last plateau is done: stop watching
                swarm.grow(step)
                assert swarm.run_until(lambda: not swarm.growing, time.monotonic() + 20)
                assert swarm.status().established == step
                deadline = time.monotonic() + 10  # until the server has accepted them all
                while process_sockets([process.pid]).sockets < step + 1:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)

        try:
            options = args(pid=process.pid, duration=None, exact_every=1, out=tmp_path / "f.json")
            assert watch.run(options, sleep=sleep, clock=clock) == 0
        finally:
            swarm.close_all()
    result = json.loads((tmp_path / "f.json").read_text())
    plateaus = result["plateaus"]
    # Each plateau is a step, plus the sockets the server holds for itself (its listener,
    # the event loop's wake-up pair): the same few at every step.
    extra = {p["sockets"] - step for p, step in zip(plateaus, [150, 300, 450, 600], strict=True)}
    assert len(extra) == 1 and 1 <= extra.pop() <= 5
    expected = scaling([(float(p["sockets"]), float(p["uss"])) for p in plateaus])
    fit = result["fit"]["uss"]
    assert fit["marginal_bytes"] == pytest.approx(expected.marginal_bytes, abs=0.01)
    assert 0 < fit["marginal_bytes"] < 20_000 and result["fit"]["pss"] is not None
    assert "bytes per connection: USS" in capsys.readouterr().out


def test_sigterm_ends_the_watch_with_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = signal.getsignal(signal.SIGTERM)

    def terminated(seconds: float) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # a service manager stops the watch

    out = tmp_path / "fit.json"
    assert watch.run(args(duration=None, out=out), sleep=terminated, clock=FakeClock()) == 0
    assert "bytes per connection: n/a" in capsys.readouterr().out
    assert json.loads(out.read_text())["pid"] == os.getpid()
    assert signal.getsignal(signal.SIGTERM) == before  # put back as it was
