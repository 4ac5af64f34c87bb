"""MCP protocol revisions this server speaks: the one place that lists them.

Two eras: the handshake revisions, negotiated once per session by ``initialize``, and the
stateless revision of 2026-07-28, in which every request carries its protocol version in
``_meta`` and there is no session at all.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALL_VERSIONS",
    "HANDSHAKE_VERSIONS",
    "LATEST_HANDSHAKE_VERSION",
    "LATEST_VERSION",
    "STATELESS_VERSIONS",
    "is_stateless",
]

#: Revisions reached through ``initialize``, oldest first (the official SDK's list). Append
#: only: the session codec stores a version as its index here.
HANDSHAKE_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
#: Revisions without ``initialize`` or sessions, oldest first.
STATELESS_VERSIONS: Final = ("2026-07-28",)
ALL_VERSIONS: Final = HANDSHAKE_VERSIONS + STATELESS_VERSIONS
LATEST_HANDSHAKE_VERSION: Final = HANDSHAKE_VERSIONS[-1]
LATEST_VERSION: Final = ALL_VERSIONS[-1]

_STATELESS: Final = frozenset(STATELESS_VERSIONS)


def is_stateless(version: str) -> bool:
    """Whether ``version`` belongs to the stateless era."""
    return version in _STATELESS
