"""Session state: bytes per session against a dict per session, and SessionTable hot paths.

The timed calls are the ones the server makes per request or per session (a protocol version
check, the pending-id bookkeeping, allocate/free, find/load with the id index); each is
timed beside the same operation on a dict per session.
"""

from __future__ import annotations

from benchmarks._common import Row, median_ns, settings, traced_bytes
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


def _table_bytes(count: int, *, index_by_id: bool) -> int:
    """``nbytes()`` of a full table: tracemalloc cannot see its columns (anonymous maps).

    The table is full, so the columns' reserved size is what the kernel committed.
    """
    return _table(count, index_by_id=index_by_id).nbytes()


def measure(quick: bool = False) -> list[Row]:
    return _memory(quick) + _timings(quick)


def _memory(quick: bool) -> list[Row]:
    count = 20_000 if quick else 100_000
    intern_capabilities(CAPS)  # interned parts exist before: they are not per-session cost
    dict_bytes, _ = traced_bytes(lambda: _dict_state(count))
    session_bytes, _ = traced_bytes(lambda: _sessions(count))
    table_bytes = _table_bytes(count, index_by_id=False)
    indexed_bytes = _table_bytes(count, index_by_id=True)
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


# (what, statement on the table, the same on a dict per session): per request or per session.
_TIMED: tuple[tuple[str, str, str], ...] = (
    (
        'SessionTable get(slot, "protocol_version")',
        'table.get(slot, "protocol_version")',
        'state["protocol_version"]',
    ),
    (
        'SessionTable get(slot, "session_id")',
        'table.get(slot, "session_id")',
        'state["session_id"]',
    ),
    ("SessionTable pending_count", "table.pending_count(slot)", 'len(state["pending"])'),
    (
        "SessionTable add_pending+discard_pending",
        "table.add_pending(slot, 7); table.discard_pending(slot, 7)",
        'state["pending"].add(7); state["pending"].discard(7)',
    ),
    (
        'SessionTable update(slot, phase="initialized")',
        'table.update(slot, phase="initialized")',
        'state["phase"] = "initialized"',
    ),
    (
        "SessionTable allocate+free (index_by_id)",
        "table.free(table.allocate(created_at=1.0))",
        "states[key] = {}; del states[key]",
    ),
    ("SessionTable find (index_by_id)", "table.find(sid)", "states.get(sid)"),
    ("SessionTable session(slot) (a copy)", "table.session(slot)", "dict(state)"),
    (
        "SessionTable load+free (index_by_id)",
        "spare.free(spare.load(session))",
        "states[key] = dict(state); del states[key]",
    ),
)


def _timings(quick: bool) -> list[Row]:
    number, repeat = settings(quick)
    table = _table(1024, index_by_id=True)
    slot = 512
    session = table.session(slot)
    state = _dict_state(1)[0]
    ns = {
        "table": table,
        "spare": SessionTable(1024, index_by_id=True),  # load needs an id not in the table
        "slot": slot,
        "session": session,
        "sid": session.session_id,
        "state": state,
        "states": {session.session_id: state},
        "key": b"k" * 16,
    }
    return [
        Row(
            "session",
            what,
            median_ns(ours, ns, number=number, repeat=repeat),
            "ns",
            "dict",
            median_ns(theirs, ns, number=number, repeat=repeat),
        )
        for what, ours, theirs in _TIMED
    ]
