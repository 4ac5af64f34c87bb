"""Renderers over RUN.json structs: exact content, charts, marked gaps, corrupt input."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connscale.errors import ConfigurationError, CorruptRunError, ReportError
from connscale.report import charts, write_report
from connscale.report.render import GAP, render, render_html, render_markdown, summary_rows
from connscale.report.schema import (
    SCHEMA_VERSION,
    GCStats,
    Machine,
    Plateau,
    Run,
    Scaling,
    ServerResult,
    TimePoint,
    Traffic,
    loads_run,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sample_run() -> Run:
    epoll = ServerResult(
        name="connscale-epoll",
        plateaus=[
            Plateau(connections=n, uss=30_000_000 + 40 * n, rss=40_000_000 + 40 * n, samples=5)
            for n in (0, 1000, 2000, 4000)
        ],
        timeline=[
            TimePoint(t=float(t), connections=t * 10, uss=30_000_000 + 400 * t) for t in range(50)
        ],
        kernel_bytes_per_socket=4_400.0,
        traffic=Traffic(
            connections=1000, requests=50_000, duration_s=5.0, throughput_rps=10_000.0, p99_ms=1.25
        ),
        gc=GCStats(
            collections=3,
            total_pause_ms=1.5,
            p50_ms=0.4,
            p99_ms=0.9,
            max_ms=0.9,
            pauses_ms=[0.2, 0.4, 0.9],
        ),
        notes=["epoll engine"],
    )
    streams = ServerResult(
        name="asyncio-streams",
        plateaus=[Plateau(connections=n, rss=20_000_000 + 5_300 * n) for n in (0, 1000, 2000)],
        scaling=Scaling(
            fixed_overhead=20_000_000, marginal_bytes=5_300, r_squared=0.999, step_cv=0.01
        ),
    )
    broken = ServerResult(name="mcp-sdk", error="did not start: port in use")
    return Run(
        created="2026-11-23T10:00:00Z",
        command="connscale bench --connections 4000",
        machine=Machine(
            hostname="box", cpus=2, memory_bytes=24 << 30, python="3.11.7", platform="Linux"
        ),
        servers=[epoll, streams, broken],
        notes=["loopback only"],
    )


def test_summary_fits_marginal_and_marks_gaps() -> None:
    rows = {row[0]: row for row in summary_rows(sample_run())}
    assert rows["connscale-epoll"][4] == "40 B"  # fitted from USS plateaus
    assert rows["asyncio-streams"][4] == "5,300 B"  # the stored fit is used
    assert rows["mcp-sdk"][4] == GAP
    assert all(cell == GAP for cell in rows["mcp-sdk"][3:])


def test_markdown_content() -> None:
    text = render_markdown(sample_run())
    assert text.startswith("# connscale run, 2026-11-23T10:00:00Z")
    assert "| connscale-epoll | mcp | 1 |" in text
    assert "## mcp-sdk" in text and "_no data: did not start: port in use_" in text
    assert f"| 4,000 | {(30_000_000 + 40 * 4000) / 2**20:,.2f} MiB |" in text
    assert "GC: 3 collections" in text
    assert "never total/N" in text
    assert "- loopback only" in text


def test_html_is_self_contained_with_three_charts() -> None:
    page = render_html(sample_run())
    assert page.startswith("<!DOCTYPE html>")
    images = page.split('src="data:image/png;base64,')[1:]
    assert len(images) == 3
    for chunk in images:
        assert base64.b64decode(chunk.split('"')[0]).startswith(PNG_MAGIC)
    assert "http://" not in page and "https://" not in page  # nothing fetched from outside
    assert 'class="gap"' in page  # the server with no data


def test_html_escapes_names() -> None:
    run = sample_run()
    run.servers[2].name = "<script>alert(1)</script>"
    page = render_html(run)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_run_without_data_renders_marked_gaps_not_a_crash() -> None:
    run = Run(
        created="now",
        command="x",
        machine=Machine(hostname="h", cpus=1, memory_bytes=1, python="3", platform="p"),
        servers=[
            ServerResult(name="empty"),
            ServerResult(name="one", plateaus=[Plateau(connections=5)]),
        ],
    )
    page = render_html(run)
    assert "data:image/png" not in page
    assert page.count('class="gap"') >= 3
    assert "no server recorded plateaus" in page
    assert charts.scaling_chart(run.servers) is None
    markdown = render_markdown(run)
    assert "_no data recorded for this server_" in markdown
    empty = Run(created="n", command="c", machine=run.machine)
    assert "this run has no servers" in render_markdown(empty)
    assert "this run has no servers" in render_html(empty)


def test_single_plateau_is_drawn_without_a_line() -> None:
    server = ServerResult(name="solo", plateaus=[Plateau(connections=10, rss=1000)])
    assert charts.fitted(server) is None
    png = charts.scaling_chart([server])
    assert png is not None and png.startswith(PNG_MAGIC)


def test_json_round_trips() -> None:
    run = sample_run()
    text = render(run, "json")
    assert json.loads(text)["schema"] == SCHEMA_VERSION
    assert loads_run(text.encode()) == run


def test_write_report_each_format(tmp_path: Path) -> None:
    run = sample_run()
    for fmt, name in (("json", "r.json"), ("markdown", "r.md"), ("html", "r.html")):
        path = write_report(run, fmt, tmp_path / name)  # type: ignore[arg-type]
        assert path.read_text(encoding="utf-8") == render(run, fmt)  # type: ignore[arg-type]
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ConfigurationError):
        write_report(run, "pdf", tmp_path / "r.pdf")  # type: ignore[arg-type]
    with pytest.raises(ReportError, match="cannot write"):
        write_report(run, "markdown", tmp_path / "missing-dir" / "r.md")


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300))
def test_corrupt_run_json_is_a_clear_error(data: bytes) -> None:
    try:
        run = loads_run(data)
    except CorruptRunError as exc:
        assert str(exc)
        return
    render_markdown(run)  # whatever decodes must render


def test_an_incomplete_run_and_a_partial_server_are_marked() -> None:
    run = sample_run()
    run.incomplete = True
    run.servers[0].complete = False
    assert "Incomplete run" in render_markdown(run) and "Incomplete run" in render_html(run)
    rows = {row[0]: row for row in summary_rows(run)}
    assert rows["connscale-epoll"][4] == "partial run: none"
