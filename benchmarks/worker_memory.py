"""What idle workers cost: PSS and USS of ``connscale serve --workers N``, summed over the
supervisor and its workers, for each start method.

PSS counts a page shared by k processes as 1/k in each, so the sum over the server's
processes is what the server costs the machine, shared pages once; USS, the pages only one
process maps, undercounts it once workers share their start-up pages. Each server is
started with no connection, read (median of ``--readings``) once every worker listens, and
stopped.

    .venv/bin/python -m benchmarks.worker_memory                       # 1 and 8, fork and spawn
    .venv/bin/python -m benchmarks.worker_memory --workers 1,2,4,8 --start-methods fork
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from connscale.memory import sample_group
from connscale.testing import served

MIB = 2**20
HEADER = (
    "| start method | workers | PSS in all | USS in all | supervisor PSS | PSS per added worker |"
)


def measure(workers: int, start_method: str, readings: int, extra: list[str]) -> dict[str, float]:
    arguments = ["--workers", str(workers), "--start-method", start_method, *extra]
    with (
        tempfile.TemporaryDirectory(prefix="connscale-workers-") as folder,
        served(Path(folder), arguments, timeout=120) as (_process, info),
    ):
        pids = [info["supervisor_pid"], *info["pids"]]
        samples = []
        for _ in range(readings):
            samples.append(sample_group(pids))
            time.sleep(0.2)
    pss = [s.pss for s in samples]
    uss = [s.uss for s in samples]
    if any(value is None for value in pss + uss):
        raise SystemExit("PSS/USS are not readable here (/proc/PID/smaps_rollup)")
    supervisor = statistics.median(s.samples[0].pss or 0 for s in samples)
    return {
        "workers": workers,
        "pss_mib": statistics.median(v for v in pss if v is not None) / MIB,
        "uss_mib": statistics.median(v for v in uss if v is not None) / MIB,
        "supervisor_pss_mib": supervisor / MIB,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="1,8", help="worker counts, comma-separated")
    parser.add_argument("--start-methods", default="fork,spawn", help="fork, spawn or both")
    parser.add_argument("--readings", type=int, default=5, help="readings per server (median)")
    parser.add_argument("--app", help="serve this App instead of the reference tools")
    args = parser.parse_args(argv)
    extra = ["--app", args.app] if args.app else []
    counts = [int(value) for value in args.workers.split(",")]
    rows = []
    for method in args.start_methods.split(","):
        if method not in ("fork", "spawn"):
            parser.error(f"unknown start method {method!r}: fork or spawn")
        for workers in counts:
            row = {"start_method": method, **measure(workers, method, args.readings, extra)}
            rows.append(row)
            print(
                f"{method} x{workers}: PSS {row['pss_mib']:.1f} MiB, USS {row['uss_mib']:.1f} "
                f"MiB (supervisor PSS {row['supervisor_pss_mib']:.1f} MiB)",
                flush=True,
            )
    print(HEADER)
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        base = next(r for r in rows if r["start_method"] == row["start_method"])
        added = "-"
        if row["workers"] != base["workers"]:
            step = (row["pss_mib"] - base["pss_mib"]) / (row["workers"] - base["workers"])
            added = f"{step:.1f} MiB"
        print(
            f"| {row['start_method']} | {row['workers']} | {row['pss_mib']:.1f} MiB "
            f"| {row['uss_mib']:.1f} MiB | {row['supervisor_pss_mib']:.1f} MiB | {added} |"
        )
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
