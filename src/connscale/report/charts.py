"""PNG charts of a run, drawn by matplotlib's Agg backend (no display, no pyplot state).

Each function returns PNG bytes, or None when no server has the data for that chart (the
renderers then show a marked gap).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from connscale.core.stats import ScalingResult, scaling
from connscale.errors import ConfigurationError
from connscale.report.schema import Plateau, ServerResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_MIB = 1024.0 * 1024.0
_DPI = 100


def memory_field(plateaus: Sequence[Plateau]) -> str | None:
    """The best memory figure every plateau has: uss, else pss, else rss."""
    for name in ("uss", "pss", "rss"):
        if plateaus and all(getattr(p, name) is not None for p in plateaus):
            return name
    return None


def plateau_points(server: ServerResult) -> tuple[str | None, list[tuple[float, float]]]:
    """(field, [(connections, bytes)]) of a server's plateaus."""
    name = memory_field(server.plateaus)
    if name is None:
        return None, []
    return name, [(float(p.connections), float(getattr(p, name))) for p in server.plateaus]


def fitted(server: ServerResult) -> ScalingResult | None:
    """The scaling fit of a server's plateaus; None when fewer than 2 distinct levels."""
    _, points = plateau_points(server)
    try:
        return scaling(points)
    except ConfigurationError:
        return None


def _new_figure() -> tuple[Figure, Any]:
    """A figure on the Agg canvas; matplotlib is imported here so that reading or writing
    RUN.json does not pay for it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _finish(figure: Figure, axes: Any, xlabel: str, ylabel: str, title: str) -> bytes:
    """Label, grid and legend every chart the same way, then render it."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return _png(figure)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


def scaling_chart(servers: Sequence[ServerResult]) -> bytes | None:
    """Memory against live connections, points and the least-squares line per server."""
    figure, axes = _new_figure()
    drawn = False
    for index, server in enumerate(servers):
        name, points = plateau_points(server)
        if not points:
            continue
        color = f"C{index % 10}"
        xs = [x for x, _ in points]
        axes.scatter(xs, [y / _MIB for _, y in points], color=color, s=18)
        fit = fitted(server)
        label = f"{server.name} ({name})"
        if fit is not None:
            ends = [min(xs), max(xs)]
            axes.plot(
                ends,
                [fit.predict(x) / _MIB for x in ends],
                color=color,
                label=f"{label}: {fit.marginal_bytes:,.0f} B/conn",
            )
        else:
            axes.plot([], [], color=color, label=f"{label}: too few plateaus to fit")
        drawn = True
    if not drawn:
        return None
    return _finish(
        figure,
        axes,
        "live connections",
        "memory (MiB)",
        "Memory against connections (line: least-squares fit)",
    )


def timeline_chart(servers: Sequence[ServerResult]) -> bytes | None:
    """Memory over time per server (USS where sampled, else RSS)."""
    figure, axes = _new_figure()
    drawn = False
    for index, server in enumerate(servers):
        points = server.timeline
        if not points:
            continue
        use_uss = all(p.uss is not None for p in points)
        ys = [(p.uss if use_uss else p.rss) for p in points]
        pairs = [(p.t, y) for p, y in zip(points, ys, strict=True) if y is not None]
        if not pairs:
            continue
        axes.plot(
            [t for t, _ in pairs],
            [y / _MIB for _, y in pairs],
            color=f"C{index % 10}",
            label=f"{server.name} ({'uss' if use_uss else 'rss'})",
        )
        drawn = True
    if not drawn:
        return None
    return _finish(figure, axes, "time since start (s)", "memory (MiB)", "Memory over time")


def gc_histogram(servers: Sequence[ServerResult]) -> bytes | None:
    """Histogram of recorded GC pauses per server (log-spaced bins in ms)."""
    series = [(s.name, s.gc.pauses_ms) for s in servers if s.gc is not None and s.gc.pauses_ms]
    if not series:
        return None
    low = max(min(min(p) for _, p in series), 1e-4)
    high = max(*(max(p) for _, p in series), low * 10)
    edges = [low * (high / low) ** (i / 30) for i in range(31)]
    figure, axes = _new_figure()
    for index, (name, pauses) in enumerate(series):
        clipped = [min(max(p, low), high) for p in pauses]
        axes.hist(
            clipped,
            bins=edges,
            alpha=0.6,
            color=f"C{index % 10}",
            label=f"{name} ({len(pauses)} pauses)",
        )
    axes.set_xscale("log")
    return _finish(figure, axes, "GC pause (ms)", "collections", "GC pause histogram")


__all__ = [
    "fitted",
    "gc_histogram",
    "memory_field",
    "plateau_points",
    "scaling_chart",
    "timeline_chart",
]
