"""Sealed session tokens and a revocation table, so any worker can serve any HTTP session.

The ``Mcp-Session-Id`` an HTTP client gets back is ``base64url(nonce + AES-GCM(issued_at +
state))``: ``state`` is the session encoded by the session codec, encrypted and
authenticated under a key that only the server's processes know. A worker that never saw
the session opens the token and decodes the state; nothing is shared between workers but
the key. A reader of the token learns nothing of the session (client name, capabilities),
tampering is refused, and a token older than ``max_age`` is refused (the session expired).
Keys rotate: tokens sealed under a previous key are still opened, new ones use the current.
Revocation (HTTP DELETE) needs shared state after all: a fixed-size, direct-mapped table
of 16-byte session ids, which may live in shared memory.

AES-GCM comes from ``cryptography`` (OpenSSL): no cipher is written here.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import struct
import time
from collections.abc import Callable, Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from connscale.errors import ConfigurationError

__all__ = ["KEY_BYTES", "RevocationTable", "SessionSealer"]

KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_ISSUED: Final = struct.Struct(">Q")  # seconds since the epoch, when the token was sealed
_ID_BYTES: Final = 16
_MAX_TOKEN_CHARS: Final = 4096
_OVERHEAD: Final = _NONCE_BYTES + _TAG_BYTES + _ISSUED.size


class SessionSealer:
    """Seal session state into tokens and open them (AES-256-GCM, 32-byte keys).

    ``previous`` keys open tokens sealed before a rotation; ``max_age`` (seconds, None for
    never) bounds how long a token stays valid; ``clock`` gives wall-clock seconds.
    """

    __slots__ = ("_ciphers", "_clock", "_key", "max_age")

    def __init__(
        self,
        key: bytes | None = None,
        *,
        previous: Sequence[bytes] = (),
        max_age: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        key = secrets.token_bytes(KEY_BYTES) if key is None else key
        for candidate in (key, *previous):
            if len(candidate) != KEY_BYTES:
                raise ConfigurationError(f"a session key must be {KEY_BYTES} bytes")
        if max_age is not None and not max_age > 0:
            raise ConfigurationError("a session max_age must be > 0 seconds or None")
        self._key = key
        self._ciphers = [AESGCM(key)] + [AESGCM(old) for old in previous]
        self.max_age = max_age
        self._clock = clock

    @property
    def key(self) -> bytes:
        return self._key

    def seal(self, state: bytes) -> str:
        """A token carrying ``state``: URL-safe base64 without padding (a valid header value).

        ``ConfigurationError`` when the token would be longer than ``unseal`` accepts
        (4096 characters, about 3 KB of state): a token that could never come back.
        """
        if (len(state) + _OVERHEAD) * 4 / 3 > _MAX_TOKEN_CHARS:
            raise ConfigurationError(
                f"session state of {len(state)} bytes is too large for a session token"
            )
        nonce = secrets.token_bytes(_NONCE_BYTES)
        issued = _ISSUED.pack(int(self._clock()))
        sealed = self._ciphers[0].encrypt(nonce, issued + state, None)
        return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")

    def unseal(self, token: str | bytes) -> bytes | None:
        """The state inside ``token``; None when it is malformed, tampered with or expired."""
        opened = self.open(token)
        return None if opened is None else opened[0]

    def expiry(self, issued: float) -> float:
        """When a token sealed at ``issued`` stops being valid (``inf``: never)."""
        return math.inf if self.max_age is None else issued + self.max_age

    def now(self) -> float:
        return self._clock()

    def open(self, token: str | bytes) -> tuple[bytes, float] | None:
        """(state, issued at) inside ``token``; None when malformed, tampered with or expired."""
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
        if len(raw) < _OVERHEAD or base64.urlsafe_b64encode(raw).rstrip(b"=") != token:
            return None
        nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        for cipher in self._ciphers:
            try:
                plain = cipher.decrypt(nonce, sealed, None)
            except InvalidTag:
                continue
            (issued,) = _ISSUED.unpack_from(plain)
            if self.max_age is not None and self._clock() - issued > self.max_age:
                return None
            return plain[_ISSUED.size :], float(issued)
        return None


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
