"""Signed session tokens and the revocation table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale.core.protocol.tokens import RevocationTable, SessionSigner
from connscale.errors import ConfigurationError


def test_round_trip_and_tamper_detection() -> None:
    signer = SessionSigner(b"s" * 32)
    token = signer.sign(b"state")
    assert signer.verify(token) == b"state"
    assert SessionSigner(b"t" * 32).verify(token) is None
    flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    assert signer.verify(flipped) is None
    assert signer.verify("") is None
    assert signer.verify("é") is None
    assert signer.verify("x" * 10_000) is None


def test_keys_are_random_by_default() -> None:
    assert SessionSigner().key != SessionSigner().key


@given(st.text(max_size=200))
def test_verify_never_raises(token: str) -> None:
    assert SessionSigner(b"k" * 32).verify(token) is None


def test_revocation() -> None:
    table = RevocationTable(8)
    session_id = bytes(range(16))
    assert not table.is_revoked(session_id)
    table.revoke(session_id)
    assert table.is_revoked(session_id)
    assert not table.is_revoked(b"short")


def test_only_the_canonical_spelling_of_a_token_is_accepted() -> None:
    """Regression: base64 decoding skipped junk characters and read "+/" as "-_"."""
    signer = SessionSigner(b"s" * 32)
    token = signer.sign(b"state12")
    for index in range(len(token)):
        for char in "+/=!. ":
            edited = token[:index] + char + token[index + 1 :]
            assert signer.verify(edited) is None, (index, char)
            assert signer.verify(token[:index] + char + token[index:]) is None


def test_a_state_too_large_for_a_token_is_refused_when_signing() -> None:
    """Regression (atheris): sign() made tokens over 4096 chars that verify() refused."""
    signer = SessionSigner(b"s" * 32)
    assert signer.verify(signer.sign(b"x" * 3000)) == b"x" * 3000
    with pytest.raises(ConfigurationError):
        signer.sign(b"x" * 3100)
