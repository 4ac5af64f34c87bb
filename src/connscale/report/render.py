"""Renderers of a run: JSON (the record), Markdown, and one self-contained HTML page.

Pure functions from a ``Run`` to text; ``write_report`` writes the file. A server without
data shows a marked gap ("no data", with the server's error when it has one), never a
crash or a made-up figure.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, get_args

from connscale.errors import ConfigurationError, ReportError
from connscale.report import charts
from connscale.report.schema import Run, ServerResult, dumps_run

Format = Literal["json", "markdown", "html"]
FORMATS: tuple[str, ...] = get_args(Format)

GAP = "no data"


def _bytes(value: float | None) -> str:
    if value is None:
        return GAP
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(value) >= size:
            return f"{value / size:,.2f} {unit}"
    return f"{value:,.0f} B"


def _num(value: float | None, fmt: str = ",.0f", suffix: str = "") -> str:
    return GAP if value is None else f"{value:{fmt}}{suffix}"


def _limit(value: int | None) -> str:
    return "not recorded" if value is None else f"{value:,}"


def _marginal(server: ServerResult) -> tuple[str, str, str, str]:
    """(marginal, fixed overhead, R², step CV) from the stored fit, else fitted here."""
    stored = server.scaling
    if stored is not None:
        return (
            _num(stored.marginal_bytes, ",.0f", " B"),
            _bytes(stored.fixed_overhead),
            _num(stored.r_squared, ".4f"),
            _num(stored.step_cv, ".3f"),
        )
    fit = charts.fitted(server)
    if fit is None:
        return GAP, GAP, GAP, GAP
    return (
        _num(fit.marginal_bytes, ",.0f", " B"),
        _bytes(fit.fixed_overhead),
        _num(fit.r_squared, ".4f"),
        _num(fit.step_cv, ".3f"),
    )


SUMMARY_HEADER = (
    "server",
    "protocol",
    "workers",
    "max connections",
    "marginal per connection (USS)",
    "fixed overhead",
    "R²",
    "step CV",
    "total PSS at max",
    "kernel per socket (its own sockets)",
    "load generator per connection",
    "throughput",
    "p99 latency",
    "GC p99 pause",
)


def summary_rows(run: Run) -> list[tuple[str, ...]]:
    """One row per server for the summary table (strings; gaps marked)."""
    rows: list[tuple[str, ...]] = []
    for server in run.servers:
        marginal, overhead, r2, cv = _marginal(server)
        if not server.complete and server.plateaus:
            marginal = overhead = r2 = cv = "partial run: none"
        traffic = server.traffic
        latency = server.latency if server.latency is not None else traffic
        rows.append(
            (
                server.name,
                server.protocol,
                str(server.workers),
                _num(server.max_connections),
                marginal,
                overhead,
                r2,
                cv,
                _bytes(server.pss_total),
                _num(server.kernel_bytes_per_socket, ",.0f", " B"),
                _num(server.loadgen_bytes_per_connection, ",.0f", " B"),
                GAP if traffic is None else f"{traffic.throughput_rps:,.0f} req/s",
                GAP if latency is None else _num(latency.p99_ms, ".2f", " ms"),
                GAP if server.gc is None else _num(server.gc.p99_ms, ".3f", " ms"),
            )
        )
    return rows


PLATEAU_HEADER = (
    "connections",
    "USS",
    "PSS",
    "RSS",
    "its sockets",
    "their kernel memory",
    "kernel TCP (system-wide)",
    "load generator USS",
    "samples",
)


def plateau_rows(server: ServerResult) -> list[tuple[str, ...]]:
    return [
        (
            f"{p.connections:,}",
            _bytes(p.uss),
            _bytes(p.pss),
            _bytes(p.rss),
            _num(p.server_sockets),
            _bytes(p.kernel_bytes),
            _bytes(p.kernel_tcp_bytes),
            _bytes(p.loadgen_uss),
            str(p.samples),
        )
        for p in server.plateaus
    ]


def _server_gap(server: ServerResult) -> str | None:
    """Why a server has no data to show, or None when it has some."""
    if server.plateaus or server.timeline or server.traffic or server.gc:
        return None
    return f"{GAP}: {server.error}" if server.error else f"{GAP} recorded for this server"


# --- JSON ------------------------------------------------------------------------------------


def render_json(run: Run) -> str:
    """The run record itself, with its schema version."""
    return dumps_run(run).decode()


# --- Markdown --------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(_md_cell(h) for h in header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(run: Run) -> str:
    """A Markdown report: machine, summary table, then plateaus and notes per server."""
    m = run.machine
    lines = [
        f"# connscale run, {run.created}",
        "",
        f"Command: `{run.command}`",
        "",
        f"Machine: {m.hostname}, {m.cpus} CPUs, {_bytes(m.memory_bytes)}, Python {m.python}, "
        f"{m.platform}, open files limit {_limit(m.open_files_limit)}.",
        "",
        "Marginal = least-squares slope of memory against live connections (never total/N).",
        "",
    ]
    if run.incomplete:
        lines += ["**Incomplete run** (interrupted): only what was measured until then.", ""]
    lines += ["## Summary", ""]
    if run.servers:
        lines += _md_table(SUMMARY_HEADER, summary_rows(run))
    else:
        lines.append(f"_{GAP}: this run has no servers._")
    for server in run.servers:
        lines += ["", f"## {server.name}", ""]
        gap = _server_gap(server)
        if gap is not None:
            lines.append(f"_{gap}_")
        if server.error and gap is None:
            lines.append(f"Stopped early: {server.error}")
            lines.append("")
        if server.plateaus:
            lines += _md_table(PLATEAU_HEADER, plateau_rows(server))
        if server.gc is not None:
            g = server.gc
            lines += [
                "",
                f"GC: {g.collections:,} collections, {g.total_pause_ms:,.1f} ms in total, "
                f"p50 {_num(g.p50_ms, '.3f', ' ms')}, p99 {_num(g.p99_ms, '.3f', ' ms')}, "
                f"max {_num(g.max_ms, '.3f', ' ms')}.",
            ]
        if server.traffic is not None:
            t = server.traffic
            lines += [
                "",
                f"Traffic: {t.requests:,} requests on {t.connections:,} connections in "
                f"{t.duration_s:.1f} s ({t.throughput_rps:,.0f} req/s, {t.errors} errors), "
                f"p50 {_num(t.p50_ms, '.2f', ' ms')}, p99 {_num(t.p99_ms, '.2f', ' ms')}.",
            ]
        if server.latency is not None:
            t = server.latency
            lines += [
                "",
                f"Latency: {t.requests:,} requests at a set rate on {t.connections:,} "
                f"connections in {t.duration_s:.1f} s ({t.errors} errors), "
                f"p50 {_num(t.p50_ms, '.2f', ' ms')}, p99 {_num(t.p99_ms, '.2f', ' ms')}, "
                f"p99.9 {_num(t.p999_ms, '.2f', ' ms')}.",
            ]
        for note in server.notes:
            lines.append(f"- {note}")
    if run.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in run.notes]
    return "\n".join(lines) + "\n"


# --- HTML ------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
.gap { color: #a33; font-style: italic; }
figure { margin: 1.5em 0; }
img { max-width: 100%; border: 1px solid #ddd; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_cell(text: str, tag: str = "td") -> str:
    css = ' class="gap"' if text.startswith(GAP) else ""
    return f"<{tag}{css}>{_esc(text)}</{tag}>"


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(title: str, png: bytes | None, missing: str) -> str:
    if png is None:
        return (
            f"<figure><figcaption>{_esc(title)}</figcaption>"
            f'<p class="gap">{_esc(missing)}</p></figure>'
        )
    data = base64.b64encode(png).decode("ascii")
    return (
        f"<figure><figcaption>{_esc(title)}</figcaption>"
        f'<img alt="{_esc(title)}" src="data:image/png;base64,{data}"></figure>'
    )


def render_html(run: Run) -> str:
    """One self-contained page: tables and three charts embedded as base64 PNG."""
    m = run.machine
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>connscale run {_esc(run.created)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>connscale run, {_esc(run.created)}</h1>",
        f"<p>Command: <code>{_esc(run.command)}</code></p>",
        f"<p>Machine: {_esc(m.hostname)}, {m.cpus} CPUs, {_esc(_bytes(m.memory_bytes))}, "
        f"Python {_esc(m.python)}, {_esc(m.platform)}, open files limit "
        f"{_esc(_limit(m.open_files_limit))}.</p>",
        "<p>Marginal = least-squares slope of memory against live connections (never total/N).</p>",
        '<p class="gap"><b>Incomplete run</b> (interrupted): only what was measured until then.</p>'
        if run.incomplete
        else "",
        "<h2>Summary</h2>",
        _html_table(SUMMARY_HEADER, summary_rows(run))
        if run.servers
        else f'<p class="gap">{GAP}: this run has no servers.</p>',
        "<h2>Charts</h2>",
        _figure(
            "Memory against connections",
            charts.scaling_chart(run.servers),
            f"{GAP}: no server recorded plateaus",
        ),
        _figure(
            "Memory over time",
            charts.timeline_chart(run.servers),
            f"{GAP}: no server recorded a timeline",
        ),
        _figure(
            "GC pause histogram",
            charts.gc_histogram(run.servers),
            f"{GAP}: no server recorded GC pauses",
        ),
    ]
    for server in run.servers:
        parts.append(f"<h2>{_esc(server.name)}</h2>")
        gap = _server_gap(server)
        if gap is not None:
            parts.append(f'<p class="gap">{_esc(gap)}</p>')
        elif server.error:
            parts.append(f"<p>Stopped early: {_esc(server.error)}</p>")
        if server.plateaus:
            parts.append(_html_table(PLATEAU_HEADER, plateau_rows(server)))
        if server.notes:
            parts.append("<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in server.notes) + "</ul>")
    if run.notes:
        parts.append("<h2>Notes</h2><ul>")
        parts += [f"<li>{_esc(n)}</li>" for n in run.notes]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


_RENDERERS: dict[str, Callable[[Run], str]] = {
    "json": render_json,
    "markdown": render_markdown,
    "html": render_html,
}


def render(run: Run, fmt: Format) -> str:
    """Render ``run`` in ``fmt`` (json, markdown or html)."""
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise ConfigurationError(f"unknown report format {fmt!r}; choose one of {FORMATS}")
    return renderer(run)


def write_report(run: Run, fmt: Format, path: str | Path) -> Path:
    """Render ``run`` and write it to ``path`` (atomically); returns the path."""
    path = Path(path)
    text = render(run, fmt)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


__all__ = [
    "FORMATS",
    "GAP",
    "Format",
    "render",
    "render_html",
    "render_json",
    "render_markdown",
    "write_report",
]
