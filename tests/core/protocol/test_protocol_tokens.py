"""Sealed session tokens (encrypted, authenticated, expiring, rotating) and revocation."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale.clock import FakeClock
from connscale.core.protocol.tokens import (
    MAX_SESSION_KEYS,
    RevocationTable,
    SessionKeys,
    SessionSealer,
    parse_session_keys,
)
from connscale.errors import ConfigurationError


def test_round_trip_and_tamper_detection() -> None:
    sealer = SessionSealer(b"s" * 32)
    token = sealer.seal(b"state")
    assert sealer.unseal(token) == b"state"
    assert SessionSealer(b"t" * 32).unseal(token) is None
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    assert sealer.unseal(flipped) is None
    assert sealer.unseal("") is None
    assert sealer.unseal("é") is None
    assert sealer.unseal("x" * 10_000) is None


def test_a_token_reveals_nothing_of_the_session() -> None:
    """Regression: a base64 decode of a session id showed the client's name and capabilities."""
    sealer = SessionSealer(b"s" * 32)
    state = b"claude-desktop sampling elicitation"
    raw = base64.urlsafe_b64decode(sealer.seal(state) + "==")
    assert b"claude" not in raw and b"sampling" not in raw
    assert sealer.seal(state) != sealer.seal(state)  # a fresh nonce each time


def test_tokens_expire() -> None:
    clock = FakeClock(1_000_000.0)
    sealer = SessionSealer(b"s" * 32, max_age=60, clock=clock)
    token = sealer.seal(b"state")
    clock.advance(59)
    assert sealer.unseal(token) == b"state"
    clock.advance(2)
    assert sealer.unseal(token) is None


def test_rotation_opens_tokens_of_the_previous_key() -> None:
    old = SessionSealer(b"o" * 32)
    token = old.seal(b"state")
    rotated = SessionSealer(b"n" * 32, previous=[b"o" * 32])
    assert rotated.unseal(token) == b"state"
    assert old.unseal(rotated.seal(b"new")) is None  # new tokens use the new key


def test_bad_keys_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        SessionSealer(b"short")
    with pytest.raises(ConfigurationError, match="32 bytes"):
        SessionSealer(b"k" * 32, previous=[b"x"])
    with pytest.raises(ConfigurationError, match="max_age"):
        SessionSealer(b"k" * 32, max_age=0)


def test_keys_are_random_by_default() -> None:
    assert SessionSealer().key != SessionSealer().key


@given(st.text(max_size=200))
def test_unseal_never_raises(token: str) -> None:
    assert SessionSealer(b"k" * 32).unseal(token) is None


def test_only_the_canonical_spelling_of_a_token_is_accepted() -> None:
    """Regression: base64 decoding skipped junk characters and read "+/" as "-_"."""
    sealer = SessionSealer(b"s" * 32)
    token = sealer.seal(b"state12")
    for index in range(0, len(token), 3):
        for char in "+/=!. ":
            edited = token[:index] + char + token[index + 1 :]
            assert sealer.unseal(edited) is None, (index, char)
            assert sealer.unseal(token[:index] + char + token[index:]) is None


def test_a_state_too_large_for_a_token_is_refused_when_sealing() -> None:
    """Regression (atheris): tokens over 4096 chars were made that could never come back."""
    sealer = SessionSealer(b"s" * 32)
    assert sealer.unseal(sealer.seal(b"x" * 2900)) == b"x" * 2900
    with pytest.raises(ConfigurationError):
        sealer.seal(b"x" * 3100)


def test_revocation() -> None:
    table = RevocationTable(8)
    session_id = bytes(range(16))
    assert not table.is_revoked(session_id)
    table.revoke(session_id)
    assert table.is_revoked(session_id)
    assert not table.is_revoked(b"short")


# --- the session key file a fleet shares ----------------------------------------------------


def test_a_key_file_gives_the_current_key_then_the_previous_ones() -> None:
    current, old = b"\x01" * 32, bytes(range(32))
    text = f"# fleet keys, rotated 2026-12-01\n\n  {current.hex()}  \r\n{old.hex().upper()}\n"
    keys = parse_session_keys(text.encode())
    assert keys.current == current and keys.previous == (old,)
    assert current.hex() not in repr(keys) and old.hex() not in repr(keys)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b"", "holds no key"),
        (b"# only a comment\n\n", "holds no key"),
        (b"ab" * 31 + b"\n", "line 1: a key is 64 hex digits"),  # 31 bytes: truncated
        (b"ab" * 33 + b"\n", "line 1: a key is 64 hex digits"),
        (b"\n" + b"zz" * 32 + b"\n", "line 2: a key is 64 hex digits"),
        (b"ab" * 32 + b" # current\n", "line 1: a key is 64 hex digits"),  # no inline comment
        (b"ab" * 32 + b" " + b"cd" * 32 + b"\n", "line 1"),  # two keys on one line
        (b"ab" * 32 + b"\n" + b"AB" * 32 + b"\n", "line 2: the same key is there twice"),
        (b"\n".join(bytes([48 + i]) * 64 for i in range(9)), "more than 8 keys"),
        ("é".encode() * 32, "non-ASCII"),
        (b"0" * 70_000, "larger than"),
    ],
)
def test_a_bad_key_file_is_refused_in_one_line_without_its_content(text: bytes, why: str) -> None:
    with pytest.raises(ConfigurationError, match=why) as caught:
        parse_session_keys(text, "the session key file keys.txt")
    message = str(caught.value)
    assert "\n" not in message and "keys.txt" in message
    assert "abab" not in message.lower() and "zzzz" not in message


@given(st.binary(max_size=400) | st.text(alphabet="0123456789abcdef# \n\r\tx", max_size=400))
def test_any_key_file_content_gives_keys_or_one_line_that_never_echoes_it(
    content: bytes | str,
) -> None:
    data = content.encode() if isinstance(content, str) else content
    try:
        keys = parse_session_keys(data)
    except ConfigurationError as exc:
        message = str(exc)
        assert "\n" not in message
        for line in data.split(b"\n"):
            secret = line.strip()
            if len(secret) >= 16:
                assert secret.decode("latin-1") not in message
        return
    assert 1 + len(keys.previous) <= MAX_SESSION_KEYS
    assert all(len(key) == 32 for key in (keys.current, *keys.previous))


def test_session_keys_check_their_lengths() -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        SessionKeys(b"short")
    with pytest.raises(ConfigurationError, match="32 bytes"):
        SessionKeys(b"k" * 32, (b"x",))
    assert SessionKeys.generate().current != SessionKeys.generate().current
