"""Session codec: encoded size and encode/decode time against json and pickle.

pickle is a baseline only, on our own data: connscale never unpickles anything.
"""

from __future__ import annotations

import json
import pickle

from benchmarks._common import Row, median_ns, settings
from connscale.core.codec import decode_session, encode_session
from connscale.core.session import Session


def typical() -> Session:
    """An initialized MCP session as a real client leaves it."""
    return Session(
        transport="tcp",
        phase="initialized",
        created_at=1763856000.123456,
        protocol_version="2025-06-18",
        client_name="claude-code",
        client_version="1.0.0",
        capabilities={"roots": {"listChanged": True}, "sampling": {}},
    )


def minimal() -> Session:
    """An initialized session whose client sent no clientInfo and no capabilities."""
    return Session(phase="initialized", created_at=1763856000.123456, protocol_version="2025-06-18")


def _json_bytes(session: Session) -> bytes:
    return json.dumps(session.to_dict(), separators=(",", ":")).encode()


def measure(quick: bool = False) -> list[Row]:
    number, repeat = settings(quick)
    number //= 4
    rows: list[Row] = []
    for label, session in (("typical", typical()), ("minimal", minimal())):
        ours = encode_session(session)
        as_json = _json_bytes(session)
        as_pickle = pickle.dumps(session, protocol=pickle.HIGHEST_PROTOCOL)
        rows.append(
            Row(
                "codec",
                f"encoded size, {label} session",
                len(ours),
                "B",
                "json",
                len(as_json),
                "<= 32 B",
            )
        )
        rows.append(
            Row(
                "codec",
                f"pickle size, {label} session (baseline)",
                len(as_pickle),
                "B",
                "",
                None,
                "",
            )
        )
    session = typical()
    ns = {
        "encode_session": encode_session,
        "decode_session": decode_session,
        "json": json,
        "pickle": pickle,
        "to_json": _json_bytes,
        "session": session,
        "data": encode_session(session),
        "json_data": _json_bytes(session),
        "pickle_data": pickle.dumps(session, protocol=pickle.HIGHEST_PROTOCOL),
        "protocol": pickle.HIGHEST_PROTOCOL,
    }
    json_enc = median_ns("to_json(session)", ns, number=number, repeat=repeat)
    json_dec = median_ns("json.loads(json_data)", ns, number=number, repeat=repeat)
    rows += [
        Row(
            "codec",
            "encode_session (typical)",
            median_ns("encode_session(session)", ns, number=number, repeat=repeat),
            "ns",
            "json.dumps(to_dict())",
            json_enc,
            "<= 2000 ns",
        ),
        Row(
            "codec",
            "pickle.dumps (baseline)",
            median_ns("pickle.dumps(session, protocol)", ns, number=number, repeat=repeat),
            "ns",
            "",
            None,
            "",
        ),
        Row(
            "codec",
            "decode_session (typical, validated)",
            median_ns("decode_session(data)", ns, number=number, repeat=repeat),
            "ns",
            "json.loads (no validation)",
            json_dec,
            "<= 2000 ns",
        ),
        Row(
            "codec",
            "pickle.loads (baseline, never used)",
            median_ns("pickle.loads(pickle_data)", ns, number=number, repeat=repeat),
            "ns",
            "",
            None,
            "",
        ),
    ]
    return rows
