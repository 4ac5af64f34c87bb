"""Signed session tokens and a revocation table, so any worker can serve any HTTP session.

The ``Mcp-Session-Id`` an HTTP client gets back is ``base64url(state + tag)``: ``state`` is
the session encoded by the session codec and ``tag`` its HMAC-SHA256 under a key that only
the server's processes know. A worker that never saw the session verifies the tag and
decodes the state; nothing is shared between workers but the key. Tampering changes the
tag and is refused. Revocation (HTTP DELETE) needs shared state after all: a fixed-size,
direct-mapped table of 16-byte session ids, which may live in shared memory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Final

from connscale.errors import ConfigurationError

__all__ = ["RevocationTable", "SessionSigner"]

_TAG_BYTES: Final = 32
_ID_BYTES: Final = 16
_MAX_TOKEN_CHARS: Final = 4096


class SessionSigner:
    """Sign and verify session state with HMAC-SHA256 (key: 32+ random bytes)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes | None = None) -> None:
        key = secrets.token_bytes(32) if key is None else key
        if len(key) < 16:
            raise ConfigurationError("a session signing key needs at least 16 bytes")
        self._key = key

    @property
    def key(self) -> bytes:
        return self._key

    def sign(self, state: bytes) -> str:
        """A token carrying ``state``: URL-safe base64 without padding (a valid header value).

        ``ConfigurationError`` when the token would be longer than ``verify`` accepts
        (4096 characters, about 3 KB of state): a token that could never come back.
        """
        tag = hmac.digest(self._key, state, hashlib.sha256)
        token = base64.urlsafe_b64encode(state + tag).rstrip(b"=").decode("ascii")
        if len(token) > _MAX_TOKEN_CHARS:
            raise ConfigurationError(
                f"session state of {len(state)} bytes is too large for a session token"
            )
        return token

    def verify(self, token: str | bytes) -> bytes | None:
        """The state inside ``token``, or None when it is malformed or its tag is wrong."""
        if isinstance(token, str):
            try:
                token = token.encode("ascii")
            except UnicodeEncodeError:
                return None
        if not token or len(token) > _MAX_TOKEN_CHARS:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + b"=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        # The decoder skips characters outside the alphabet, reads "+/" like "-_" and ignores
        # the spare bits of the last character: only the one canonical spelling is accepted,
        # so that changing any character of a token is refused.
        if len(raw) <= _TAG_BYTES or base64.urlsafe_b64encode(raw).rstrip(b"=") != token:
            return None
        state, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        expected = hmac.digest(self._key, state, hashlib.sha256)
        return state if hmac.compare_digest(tag, expected) else None


class RevocationTable:
    """Ids of ended sessions in a direct-mapped table of ``capacity`` 16-byte entries.

    Memory is fixed (``16 * capacity`` bytes, optionally a shared-memory buffer so every
    worker sees a DELETE). A new revocation may overwrite an older one that maps to the
    same entry: that older session id would then be accepted again. Session ids are
    random, so entries are uniformly used; size the table for the deletes you must remember.
    """

    __slots__ = ("_buffer", "_capacity")

    def __init__(self, capacity: int = 1 << 16, *, buffer: memoryview | None = None) -> None:
        if capacity <= 0:
            raise ConfigurationError("a revocation table needs capacity > 0")
        if buffer is None:
            buffer = memoryview(bytearray(capacity * _ID_BYTES))
        elif len(buffer) < capacity * _ID_BYTES:
            raise ConfigurationError("revocation buffer is smaller than capacity * 16 bytes")
        self._buffer = buffer
        self._capacity = capacity

    @staticmethod
    def size_for(capacity: int) -> int:
        """Bytes of buffer a table of ``capacity`` entries needs."""
        return capacity * _ID_BYTES

    def _offset(self, session_id: bytes) -> int:
        return (int.from_bytes(session_id[:8], "little") % self._capacity) * _ID_BYTES

    def revoke(self, session_id: bytes) -> None:
        if len(session_id) != _ID_BYTES:
            raise ConfigurationError("session ids are 16 bytes")
        offset = self._offset(session_id)
        self._buffer[offset : offset + _ID_BYTES] = session_id

    def is_revoked(self, session_id: bytes) -> bool:
        if len(session_id) != _ID_BYTES:
            return False
        offset = self._offset(session_id)
        return self._buffer[offset : offset + _ID_BYTES] == session_id
