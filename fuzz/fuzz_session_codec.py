"""Fuzz the session codec and the sealed session token, which decode bytes from outside.

Checks: ``decode_session`` raises ``CorruptStateError`` and nothing else; what it accepts
encodes again to bytes that round-trip exactly; ``SessionSealer.unseal`` never raises and
accepts no token but the one it sealed (any changed character is refused).
Run: ``python fuzz/fuzz_session_codec.py -max_total_time=180 fuzz/corpus/session``.
"""

from __future__ import annotations

import contextlib
import sys


def _instrumented() -> contextlib.AbstractContextManager[object]:
    """Coverage instrumentation for the code under test, only when run by atheris."""
    if __name__ != "__main__":
        return contextlib.nullcontext()  # imported by the test suite
    import atheris

    return atheris.instrument_imports(include=["connscale", "_targets"])


with _instrumented():
    from connscale.core.codec import decode_session, encode_session
    from connscale.core.protocol.tokens import SessionSealer
    from connscale.errors import ConfigurationError, CorruptStateError

_sealer = SessionSealer(b"f" * 32)


def test_one_input(data: bytes) -> None:
    try:
        session = decode_session(data)
    except CorruptStateError:
        session = None
    if session is not None:
        try:
            again = encode_session(session)
        except ConfigurationError:
            again = None  # e.g. metadata the encoder's size limit refuses: not a crash
        if again is not None:
            # Compared as bytes: a NaN created_at is a valid float but never equal to itself.
            assert encode_session(decode_session(again)) == again, "a session does not round-trip"
    assert _sealer.unseal(data.decode("latin-1")) is None, "an unsealed text was accepted"
    if len(data) > 1:
        try:
            token = _sealer.seal(data[1:])
        except ConfigurationError:
            # Regression: such a token was once made and then refused when opened.
            assert len(data) > 2900, "a small state was refused"
            return
        index = data[0] % len(token)
        replacement = "A" if token[index] != "A" else "B"
        tampered = token[:index] + replacement + token[index + 1 :]
        assert _sealer.unseal(token) == data[1:]
        assert _sealer.unseal(tampered) is None, "a tampered token was accepted"


def main() -> None:
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
