"""Sealed session tokens and a revocation table, so any worker can serve any HTTP session.

The ``Mcp-Session-Id`` an HTTP client gets back is ``base64url(nonce + AES-GCM(issued_at +
state))``: ``state`` is the session encoded by the session codec, encrypted and
authenticated under a key that only the server's processes know. A worker that never saw
the session opens the token and decodes the state; nothing is shared between workers but
the key. A reader of the token learns nothing of the session (client name, capabilities),
tampering is refused, and a token older than ``max_age`` is refused (the session expired).
Keys rotate: tokens sealed under a previous key are still opened, new ones use the current.
A fleet of servers behind a load balancer shares its keys through a session key file
(``parse_session_keys`` reads its text: a current key and the previous ones still opened).
Revocation (HTTP DELETE) needs shared state after all: a fixed-size, direct-mapped table
of 16-byte session ids, which may live in shared memory.

AES-GCM comes from ``cryptography`` (OpenSSL): no cipher is written here. It is imported
when a sealer needs it, not with this module: a server that seals nothing (TCP, stdio)
never maps its ~7 MB of libraries.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import secrets
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from connscale.errors import ConfigurationError

# cryptography's InvalidTag, once a sealer made its ciphers (ValueError stands in before:
# nothing can be opened without ciphers).
_invalid_tag: type[Exception] = ValueError

__all__ = [
    "KEY_BYTES",
    "MAX_SESSION_KEYS",
    "RevocationTable",
    "SessionKeys",
    "SessionSealer",
    "parse_session_keys",
]

KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_ISSUED: Final = struct.Struct(">Q")  # seconds since the epoch, when the token was sealed
_URL_SAFE: Final = bytes.maketrans(b"+/", b"-_")  # the URL-safe base64 alphabet (RFC 4648)
_ID_BYTES: Final = 16
_MAX_TOKEN_CHARS: Final = 4096
_OVERHEAD: Final = _NONCE_BYTES + _TAG_BYTES + _ISSUED.size
#: Keys one key file may hold: the current one and up to seven previous ones.
MAX_SESSION_KEYS: Final = 8
_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")
_MAX_KEY_FILE_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The keys of a server: ``current`` seals, signs and opens; ``previous`` only open.

    One root key serves everything a client may carry from one server to another: HTTP
    session ids, list cursors and 2026-07-28 ``requestState`` (each use derives its own
    sub-key from it). The keys stay out of ``repr`` so that logging a configuration never
    logs them.
    """

    current: bytes = field(repr=False)
    previous: tuple[bytes, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        for key in (self.current, *self.previous):
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise ConfigurationError(f"a session key must be {KEY_BYTES} bytes")
        if len(self.previous) >= MAX_SESSION_KEYS:
            raise ConfigurationError(
                f"at most {MAX_SESSION_KEYS} session keys (the current and "
                f"{MAX_SESSION_KEYS - 1} previous)"
            )

    @classmethod
    def generate(cls) -> SessionKeys:
        """A fresh random key, no previous ones: a server (or one supervisor) of its own."""
        return cls(secrets.token_bytes(KEY_BYTES))


def parse_session_keys(data: bytes, source: str = "the session key file") -> SessionKeys:
    """The keys in the text of a session key file; ConfigurationError otherwise.

    The format, strict so that a truncated or mistyped file is refused, not half-read:
    one key a line, 64 hexadecimal digits (32 bytes) with nothing else on the line but
    surrounding spaces; the first key is the current one, the others (at most seven) are
    previous keys, still accepted; blank lines and lines starting with ``#`` are ignored;
    ASCII only, no key twice. Errors name ``source`` and the line, never the content.
    """
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise ConfigurationError(f"{source} is larger than {_MAX_KEY_FILE_BYTES} bytes")
    if not data.isascii():
        raise ConfigurationError(f"{source} holds non-ASCII bytes: write keys as hex digits")
    keys: list[bytes] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        text = raw.strip(b" \t\r")
        if not text or text.startswith(b"#"):
            continue
        if len(text) != 2 * KEY_BYTES or not set(text) <= _HEX_DIGITS:
            raise ConfigurationError(
                f"{source}, line {number}: a key is {2 * KEY_BYTES} hex digits "
                f"({KEY_BYTES} bytes) alone on its line"
            )
        key = bytes.fromhex(text.decode("ascii"))
        if key in keys:
            raise ConfigurationError(f"{source}, line {number}: the same key is there twice")
        keys.append(key)
        if len(keys) > MAX_SESSION_KEYS:
            raise ConfigurationError(f"{source} holds more than {MAX_SESSION_KEYS} keys")
    if not keys:
        raise ConfigurationError(f"{source} holds no key ({2 * KEY_BYTES} hex digits a line)")
    return SessionKeys(keys[0], tuple(keys[1:]))


class SessionSealer:
    """Seal session state into tokens and open them (AES-256-GCM, 32-byte keys).

    ``previous`` keys open tokens sealed before a rotation; ``max_age`` (seconds, None for
    never) bounds how long a token stays valid; ``clock`` gives wall-clock seconds.
    ``lazy``: make the ciphers (importing cryptography) on first use, not now: for a sealer
    that may never be used; a server's session sealer pays that at start instead of in its
    first session.
    """

    __slots__ = ("_ciphers", "_clock", "_keys", "max_age")

    def __init__(
        self,
        key: bytes | None = None,
        *,
        previous: Sequence[bytes] = (),
        max_age: float | None = None,
        clock: Callable[[], float] = time.time,
        lazy: bool = False,
    ) -> None:
        key = secrets.token_bytes(KEY_BYTES) if key is None else key
        for candidate in (key, *previous):
            if len(candidate) != KEY_BYTES:
                raise ConfigurationError(f"a session key must be {KEY_BYTES} bytes")
        if max_age is not None and not max_age > 0:
            raise ConfigurationError("a session max_age must be > 0 seconds or None")
        self._keys = (key, *previous)
        self._ciphers: list[Any] | None = None
        self.max_age = max_age
        self._clock = clock
        if not lazy:
            self._cipher_list()

    @property
    def key(self) -> bytes:
        return self._keys[0]

    def _cipher_list(self) -> list[Any]:
        if self._ciphers is None:
            global _invalid_tag  # noqa: PLW0603  (set once, on the first sealer's first use)
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            _invalid_tag = InvalidTag
            self._ciphers = [AESGCM(key) for key in self._keys]
        return self._ciphers

    def seal(self, state: bytes) -> str:
        """A token carrying ``state``: URL-safe base64 without padding (a valid header value).

        ``ConfigurationError`` when the token would be longer than ``unseal`` accepts
        (4096 characters, about 3 KB of state): a token that could never come back.
        """
        if (len(state) + _OVERHEAD) * 4 / 3 > _MAX_TOKEN_CHARS:
            raise ConfigurationError(
                f"session state of {len(state)} bytes is too large for a session token"
            )
        # Once per HTTP session: os.urandom and binascii directly, not secrets.token_bytes
        # and base64.urlsafe_b64encode, whose Python frames cost more than their work.
        nonce = os.urandom(_NONCE_BYTES)
        issued = _ISSUED.pack(int(self._clock()))
        ciphers = self._ciphers or self._cipher_list()
        sealed = ciphers[0].encrypt(nonce, issued + state, None)
        encoded = binascii.b2a_base64(nonce + sealed, newline=False).translate(_URL_SAFE)
        return encoded.rstrip(b"=").decode("ascii")

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
        for cipher in self._cipher_list():
            try:
                plain = cipher.decrypt(nonce, sealed, None)
            except _invalid_tag:
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
