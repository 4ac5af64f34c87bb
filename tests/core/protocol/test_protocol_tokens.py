"""Sealed session tokens (encrypted, authenticated, expiring, rotating) and revocation."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale.clock import FakeClock
from connscale.core.protocol.tokens import RevocationTable, SessionSealer
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
