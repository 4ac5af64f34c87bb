"""Reports: RUN.json (the record), Markdown, and HTML with charts."""

from __future__ import annotations

from connscale.report.render import FORMATS, render, write_report

__all__ = ["FORMATS", "render", "write_report"]
