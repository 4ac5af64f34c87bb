"""SUMMARY.md of a bench run: one table of every server (baselines and the user's own, any
protocol), the targets judged from the run, and the notes; a pure function of the Run."""

from __future__ import annotations

from dataclasses import dataclass

from connscale.report.schema import Run, ServerResult, Traffic

#: Targets the summary judges for the reference server.
TARGET_STEP_CV = 0.05
TARGET_P99_MS = 50.0
#: Marginal USS of one open 2026-07-28 ``subscriptions/listen`` stream (protocol mcp-listen).
TARGET_LISTEN_BYTES = 150


def latency_at_max(result: ServerResult) -> Traffic | None:
    """The open-loop latency phase at the top plateau."""
    return result.latency


@dataclass(frozen=True)
class TargetCheck:
    """One target of the benchmark and whether this run met it."""

    name: str
    met: bool | None  # None: not measured in this run
    detail: str


def check_targets(run: Run, *, reference_prefix: str = "connscale") -> list[TargetCheck]:
    """Judge the run against the reference server's targets (CV, p99 at max, throughput)."""
    checks: list[TargetCheck] = []
    reference = next((s for s in run.servers if s.name.startswith(reference_prefix)), None)
    by_name = {server.name: server for server in run.servers}
    if reference is None or (reference.error and not reference.plateaus):
        reason = reference.error if reference else "no reference server in this run"
        return [TargetCheck("reference server measured", None, reason or "")]
    cv = reference.scaling.step_cv if reference.scaling else None
    top = reference.max_connections or 0
    checks.append(
        TargetCheck(
            f"per-step marginal CV < {TARGET_STEP_CV} (up to {top:,} connections)",
            None if cv is None else cv < TARGET_STEP_CV,
            "not measured" if cv is None else f"CV = {cv:.4f}",
        )
    )
    if reference.protocol == "mcp-listen":
        marginal = reference.scaling.marginal_bytes if reference.scaling else None
        checks.append(
            TargetCheck(
                f"marginal USS per open subscriptions/listen stream <= {TARGET_LISTEN_BYTES} B",
                None if marginal is None else marginal <= TARGET_LISTEN_BYTES,
                "not measured" if marginal is None else f"{marginal:,.0f} B per stream",
            )
        )
    latency = latency_at_max(reference)
    p99 = latency.p99_ms if latency else None
    checks.append(
        TargetCheck(
            f"ping p99 < {TARGET_P99_MS:g} ms with {top:,} connected",
            None if p99 is None else p99 < TARGET_P99_MS,
            "not measured" if p99 is None else f"p99 = {p99:.2f} ms",
        )
    )
    ours = reference.traffic.throughput_rps if reference.traffic else None
    for baseline in ("asyncio-protocol", "uvloop-protocol"):
        other = by_name.get(baseline)
        theirs = other.traffic.throughput_rps if other and other.traffic else None
        if ours is None or not theirs:
            checks.append(TargetCheck(f"throughput vs {baseline}", None, "not measured"))
            continue
        ratio = ours / theirs
        level = reference.traffic.connections if reference.traffic else 0
        checks.append(
            TargetCheck(
                f"ping throughput at {level:,} connections vs {baseline}",
                ratio >= 1.0 if baseline == "asyncio-protocol" else None,
                f"{ours:,.0f} vs {theirs:,.0f} req/s: ratio {ratio:.2f}",
            )
        )
    return checks


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f} MB"


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


SUMMARY_COLUMNS = (
    "server",
    "protocol",
    "workers",
    "max conns",
    "marginal B/conn (USS)",
    "step CV",
    "fixed (USS)",
    "total PSS at max",
    "fixed PSS/worker",
    "kernel B/socket (its sockets)",
    "loadgen B/conn",
    "setup CPU us",
    "rps",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "p99 ms at max",
    "GC pause total ms",
    "error",
)


def summary_row(server: ServerResult) -> list[str]:
    fit = server.scaling
    traffic = server.traffic
    latency = latency_at_max(server)
    marginal = _num(fit.marginal_bytes if fit else None)
    if not server.complete and server.plateaus:
        marginal = "partial run: none"
    return [
        server.name,
        server.protocol,
        str(server.workers),
        _num(server.max_connections),
        marginal,
        _num(fit.step_cv if fit else None, "{:.4f}"),
        _mb(fit.fixed_overhead if fit else None),
        _mb(server.pss_total),
        _mb(server.fixed_per_worker),
        _num(server.kernel_bytes_per_socket),
        _num(server.loadgen_bytes_per_connection),
        _num(server.setup_cpu_us, "{:.1f}"),
        _num(traffic.throughput_rps if traffic else None),
        _num(traffic.p50_ms if traffic else None, "{:.2f}"),
        _num(traffic.p99_ms if traffic else None, "{:.2f}"),
        _num(traffic.p999_ms if traffic else None, "{:.2f}"),
        _num(latency.p99_ms if latency else None, "{:.2f}"),
        _num(server.gc.total_pause_ms if server.gc else None, "{:.1f}"),
        (server.error or "").replace("|", "/").replace("\n", " ")[:160],
    ]


def summary_markdown(run: Run) -> str:
    """A short Markdown summary: one row per server, then the targets and notes."""
    lines = ["# connscale bench", ""]
    if run.incomplete:
        lines += ["**INCOMPLETE RUN** (interrupted): only the plateaus measured so far.", ""]
    lines += [
        f"`{run.command}` on {run.machine.cpus} CPUs, "
        f"{run.machine.memory_bytes / 2**30:.0f} GiB, Python {run.machine.python}, "
        f"{run.created}",
        "",
        "| " + " | ".join(SUMMARY_COLUMNS) + " |",
        "|" + "---|" * len(SUMMARY_COLUMNS),
    ]
    lines += ["| " + " | ".join(summary_row(server)) + " |" for server in run.servers]
    lines += [
        "",
        "Marginal: least-squares slope of USS summed over the server's processes, over settled "
        "plateaus (never total/N). Total PSS counts pages shared between workers once. Kernel "
        "B/socket: the server's own sockets (slab objects per socket plus queued bytes), not "
        "a system-wide difference. Loadgen B/conn: the load generator's own USS slope.",
        "",
        "## Targets",
        "",
    ]
    for check in check_targets(run):
        mark = {True: "met", False: "MISSED", None: "n/a"}[check.met]
        lines.append(f"- {check.name}: **{mark}** ({check.detail})")
    lines += ["", "## Notes", ""]
    lines += [f"- {note}" for note in run.notes]
    for server in run.servers:
        lines += [f"- {server.name}: {note}" for note in server.notes]
    return "\n".join(lines) + "\n"


__all__ = [
    "SUMMARY_COLUMNS",
    "TARGET_LISTEN_BYTES",
    "TARGET_P99_MS",
    "TARGET_STEP_CV",
    "TargetCheck",
    "check_targets",
    "latency_at_max",
    "summary_markdown",
    "summary_row",
]
