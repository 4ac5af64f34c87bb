"""A distributed ramp through Locust, measured the bench's way by ``connscale watch``.

    python -m benchmarks.locust_distributed [--plateaus 2500,5000,7500,10000] [--hold 15]
        [--repeats 3] [--workers 2] [--out DIR]

Each repeat starts ``connscale serve --transport tcp --workers W``, watches it with
``connscale watch --pid SUPERVISOR --interval 1 --max-interval 1 --exact-every 1`` (USS and
PSS summed over the supervisor and its workers), and runs a Locust master with two workers
(examples/locustfile.py, 250 connections per user, users stepping through the plateaus,
each held ``--hold`` seconds). The watch's plateau fit is the distributed run's figure;
the baseline, measured in the same repeat right after, is ``connscale bench`` ramping the
same server command through the same plateaus with its own load generator. The table
gives each repeat and the medians: the machine is shared, so figures move between repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._serving import free_port

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "examples" / "locustfile.py"
CONNECTIONS_PER_USER = 250


def wait_for(path: Path, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear within {timeout:g} s")
        time.sleep(0.05)
    return dict(json.loads(path.read_text()))


def stop(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def distributed(work: Path, plateaus: list[int], hold: float, workers: int) -> dict[str, Any]:
    """One Locust run with the watch: the watch's fit and the master's summary."""
    connscale = [sys.executable, "-m", "connscale"]
    port = free_port()
    server = subprocess.Popen(
        [
            *connscale,
            "serve",
            "--transport",
            "tcp",
            "--workers",
            str(workers),
            "--port",
            str(port),
            "--ready-file",
            str(work / "ready.json"),
        ]
    )
    try:
        ready = wait_for(work / "ready.json")
        watch = subprocess.Popen(
            [
                *connscale,
                "watch",
                "--pid",
                str(ready["supervisor_pid"]),
                "--plain",
                "--interval",
                "1",
                "--max-interval",
                "1",
                "--exact-every",
                "1",
                "--out",
                str(work / "watch.json"),
            ],
            stdout=open(work / "watch.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        master_port = str(free_port())
        users = ",".join(str(n // CONNECTIONS_PER_USER) for n in plateaus)
        env = {**os.environ, "CONNSCALE_PLATEAUS": users, "CONNSCALE_HOLD": str(hold)}
        locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
        master = subprocess.Popen(
            [
                *locust,
                "--master",
                "--headless",
                "--expect-workers",
                "2",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                master_port,
                "--host",
                f"tcp://127.0.0.1:{port}",
                "--only-summary",
                "--connscale-connections",
                str(CONNECTIONS_PER_USER),
                "--connscale-summary",
                str(work / "locust.json"),
            ],
            env=env,
            stdout=open(work / "master.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        locust_workers = [
            subprocess.Popen(
                [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", master_port],
                env=env,
                stdout=open(work / f"worker-{index}.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            for index in range(2)
        ]
        try:
            master.wait(len(plateaus) * hold + 120)
        finally:
            for process in [master, *locust_workers]:
                stop(process)
            stop(watch)  # SIGTERM, as Ctrl-C: the watch writes its fit and exits
    finally:
        stop(server)
    return {
        "watch": json.loads((work / "watch.json").read_text()),
        "locust": json.loads((work / "locust.json").read_text()),
    }


def bench(work: Path, plateaus: list[int], workers: int) -> dict[str, Any]:
    """The baseline: ``connscale bench`` ramping the same server command itself."""
    port = free_port()
    command = f"{sys.executable} -m connscale serve --transport tcp --workers {workers}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "connscale",
            "bench",
            "--no-progress",
            "--duration",
            "1",
            "--plateaus",
            ",".join(map(str, plateaus)),
            "--out",
            str(work / "bench"),
            "--target",
            f"same-server:mcp:{port}:{command} --port {port}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    run = json.loads((work / "bench" / "RUN.json").read_text())
    [result] = run["servers"]
    return dict(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plateaus", default="2500,5000,7500,10000")
    parser.add_argument("--hold", type=float, default=15.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    plateaus = [int(n) for n in args.plateaus.split(",")]
    out = args.out or Path(tempfile.mkdtemp(prefix="locust-distributed-"))
    rows = []
    for repeat in range(args.repeats):
        work = out / f"repeat-{repeat}"
        work.mkdir(parents=True, exist_ok=True)
        run = distributed(work, plateaus, args.hold, args.workers)
        baseline = bench(work, plateaus, args.workers)
        fit = run["watch"]["fit"]
        rows.append(
            {
                "peak_held": run["locust"]["peak_held"],
                "requests": run["locust"]["total"]["requests"],
                "failures": run["locust"]["total"]["failures"],
                "watch_plateaus": [p["sockets"] for p in run["watch"]["plateaus"]],
                "watch_uss": fit["uss"]["marginal_bytes"] if fit["uss"] else None,
                "watch_pss": fit["pss"]["marginal_bytes"] if fit["pss"] else None,
                "watch_cv": fit["uss"]["step_cv"] if fit["uss"] else None,
                "bench_uss": (baseline.get("scaling") or {}).get("marginal_bytes"),
                "bench_cv": (baseline.get("scaling") or {}).get("step_cv"),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    (out / "rows.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(
        "| repeat | Locust peak held | requests / failures | watch plateaus (sockets) | "
        "watch USS B/conn (step CV) | watch PSS B/conn | bench USS B/conn (step CV) |"
    )
    print("|---|---|---|---|---|---|---|")
    for index, row in enumerate(rows):
        print(
            f"| {index + 1} | {row['peak_held']:,} | {row['requests']:,} / {row['failures']} | "
            f"{', '.join(f'{s:,.0f}' for s in row['watch_plateaus'])} | "
            f"{row['watch_uss']} ({row['watch_cv']}) | {row['watch_pss']} | "
            f"{row['bench_uss']} ({row['bench_cv']}) |"
        )

    def median(name: str) -> float | None:
        values = [row[name] for row in rows if row[name] is not None]
        return statistics.median(values) if values else None

    print(
        f"| median | | | | {median('watch_uss')} | {median('watch_pss')} | {median('bench_uss')} |"
    )
    print(f"(work files in {out})")


if __name__ == "__main__":
    main()
