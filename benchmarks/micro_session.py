"""Bytes per session: Session objects and SessionTable slots against a dict per session."""

from __future__ import annotations

from benchmarks._common import Row, traced_bytes
from connscale.core.session import Session, SessionTable, intern_capabilities

CAPS = {"roots": {"listChanged": True}, "sampling": {}}
PROTOCOL = "2025-06-18"
CLIENT = ("claude-code", "1.0.0")


def _dict_state(count: int) -> list[dict[str, object]]:
    caps = dict(CAPS)  # shared by all, as a careful dict-based server would do
    return [
        {
            "session_id": Session().session_id,
            "transport": "tcp",
            "phase": "initialized",
            "created_at": 1763856000.0 + i,
            "protocol_version": PROTOCOL,
            "client_name": CLIENT[0],
            "client_version": CLIENT[1],
            "capabilities": caps,
            "pending": set(),
            "metadata": None,
        }
        for i in range(count)
    ]


def _sessions(count: int) -> list[Session]:
    return [
        Session(
            phase="initialized",
            created_at=1763856000.0 + i,
            protocol_version=PROTOCOL,
            client_name=CLIENT[0],
            client_version=CLIENT[1],
            capabilities=CAPS,
        )
        for i in range(count)
    ]


def _table(count: int, *, index_by_id: bool) -> SessionTable:
    table = SessionTable(count, index_by_id=index_by_id)
    for i in range(count):
        slot = table.allocate(created_at=1763856000.0 + i)
        table.update(
            slot,
            phase="initialized",
            protocol_version=PROTOCOL,
            client_name=CLIENT[0],
            client_version=CLIENT[1],
            capabilities=CAPS,
        )
    return table


def measure(quick: bool = False) -> list[Row]:
    count = 20_000 if quick else 100_000
    intern_capabilities(CAPS)  # interned parts exist before: they are not per-session cost
    dict_bytes, _ = traced_bytes(lambda: _dict_state(count))
    session_bytes, _ = traced_bytes(lambda: _sessions(count))
    table_bytes, _ = traced_bytes(lambda: _table(count, index_by_id=False))
    indexed_bytes, _ = traced_bytes(lambda: _table(count, index_by_id=True))
    base = dict_bytes / count
    return [
        Row("session", "dict per session (baseline)", base, "B", "", None, ""),
        Row("session", "Session object per session", session_bytes / count, "B", "dict", base, ""),
        Row(
            "session", "SessionTable per session", table_bytes / count, "B", "dict", base, "<= 64 B"
        ),
        Row(
            "session",
            "SessionTable per session, index_by_id",
            indexed_bytes / count,
            "B",
            "dict",
            base,
            "<= 64 B",
        ),
    ]
