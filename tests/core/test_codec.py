"""encode_session / decode_session: lossless, compact, versioned, and safe on garbage."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connscale.core.codec import (
    KNOWN_PROTOCOL_VERSIONS,
    MAX_ENCODED_BYTES,
    decode_session,
    encode_session,
)
from connscale.core.session import FIELDS, Phase, Session, Transport
from connscale.errors import ConfigurationError, CorruptStateError

json_leaf = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)
json_value = st.recursive(
    json_leaf | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
request_ids = st.integers(-(2**63), 2**64 - 1) | st.text(max_size=10)

sessions = st.builds(
    Session,
    session_id=st.binary(min_size=16, max_size=16),
    transport=st.sampled_from(list(Transport)),
    phase=st.sampled_from(list(Phase)),
    created_at=st.floats(allow_nan=False) | st.integers(0, 2**40).map(float),
    protocol_version=st.none() | st.sampled_from(KNOWN_PROTOCOL_VERSIONS) | st.text(max_size=12),
    client_name=st.none() | st.text(max_size=12),
    client_version=st.none() | st.text(max_size=8),
    capabilities=st.none() | st.dictionaries(st.text(max_size=6), json_value, max_size=3),
    pending=st.frozensets(request_ids, max_size=4),
    metadata=st.none() | st.dictionaries(st.text(max_size=6), json_value, max_size=3),
)


def same(left: Session, right: Session) -> bool:
    for name in FIELDS:
        a, b = getattr(left, name), getattr(right, name)
        if name == "created_at" and math.copysign(1, a) != math.copysign(1, b):
            return False
        if a != b or type(a) is not type(b):
            return False
    return True


@settings(max_examples=300, deadline=None)
@given(sessions)
def test_round_trip_is_lossless(session: Session) -> None:
    decoded = decode_session(encode_session(session))
    assert same(decoded, session)
    assert decoded.capabilities is session.capabilities  # interned on the way in


# Encodings made before the codec was compiled from the field table: format 1 must keep
# writing exactly these bytes, and reading them back.
GOLDEN = {
    "9401c410000102030405060708090a0b0c0d0e0f00ce69224e80": Session(
        session_id=bytes(range(16)), created_at=1763856000.0
    ),
    "9801c410101112131415161718191a1b1c1d1e1f04cb41da4893a007e6b402ab636c617564652d636f6465a5"
    "312e302e3082a5726f6f747381ab6c6973744368616e676564c3a873616d706c696e6780": Session(
        session_id=bytes(range(16, 32)),
        transport="tcp",
        phase="initialized",
        created_at=1763856000.123456,
        protocol_version="2025-06-18",
        client_name="claude-code",
        client_version="1.0.0",
        capabilities={"roots": {"listChanged": True}, "sampling": {}},
    ),
    "9a01c410ffffffffffffffffffffffffffffffff07cbbfe0000000000000a764726166742d78a163a082a161"
    "81a17aa179a1629301cb4004000000000000c094f903a161a16282a475736572a3616e6ea16e920181a16bc2": (
        Session(
            session_id=b"\xff" * 16,
            transport="ws",
            phase="initialized",
            created_at=-0.5,
            protocol_version="draft-x",
            client_name="c",
            client_version="",
            capabilities={"b": [1, 2.5, None], "a": {"z": "y"}},
            pending=[3, "b", -7, "a"],
            metadata={"user": "ann", "n": [1, {"k": False}]},
        )
    ),
    "9901c410010101010101010101010101010101010202c0c0c0809101": Session(
        session_id=b"\x01" * 16, transport="http", created_at=2.0, pending=[1]
    ),
}


@pytest.mark.parametrize(("hex_bytes", "session"), GOLDEN.items())
def test_format_1_bytes_are_unchanged(hex_bytes: str, session: Session) -> None:
    assert encode_session(session).hex() == hex_bytes
    assert same(decode_session(bytes.fromhex(hex_bytes)), session)


def test_typical_initialized_session_is_small() -> None:
    session = Session(phase="initialized", protocol_version="2025-06-18", created_at=1.7e9 + 0.123)
    data = encode_session(session)
    assert len(data) <= 32
    assert decode_session(data) == session


def test_whole_number_created_at_is_shorter_and_exact() -> None:
    fractional = Session(created_at=1763856000.5, session_id=b"\0" * 16)
    whole = Session(created_at=1763856000.0, session_id=b"\0" * 16)
    assert len(encode_session(whole)) < len(encode_session(fractional))
    decoded = decode_session(encode_session(whole))
    assert decoded.created_at == 1763856000.0
    assert isinstance(decoded.created_at, float)
    negative_zero = decode_session(encode_session(Session(created_at=-0.0)))
    assert math.copysign(1, negative_zero.created_at) == -1


def test_decode_accepts_bytearray_and_memoryview() -> None:
    session = Session(pending=[1])
    data = encode_session(session)
    assert decode_session(bytearray(data)) == session
    assert decode_session(memoryview(data)) == session


def test_metadata_must_be_json_like_to_encode() -> None:
    with pytest.raises(ConfigurationError):
        encode_session(Session(metadata={"t": (1, 2)}))  # a tuple would come back a list
    with pytest.raises(ConfigurationError):
        encode_session(Session(metadata={"o": object()}))


def test_oversized_session_is_refused_on_encode() -> None:
    with pytest.raises(ConfigurationError, match="MAX_ENCODED_BYTES"):
        encode_session(Session(metadata={"blob": "x" * MAX_ENCODED_BYTES}))


def test_oversized_input_is_refused_before_decoding() -> None:
    with pytest.raises(CorruptStateError, match="limit"):
        decode_session(b"\x91" + b"\x00" * MAX_ENCODED_BYTES)


def test_wrong_version_is_corrupt() -> None:
    good = msgspec.msgpack.decode(encode_session(Session()))
    good[0] = 2
    with pytest.raises(CorruptStateError):
        decode_session(msgspec.msgpack.encode(good))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda f: f.__setitem__(1, b"short"),
        lambda f: f.__setitem__(2, 99),
        lambda f: f.__setitem__(2, -1),
        lambda f: f.append(None) or f.extend([None, None, b"\x80", [], None, "extra"]),
        lambda f: f.extend([99]),  # unknown protocol code
        lambda f: f.extend([None, None, None, msgspec.msgpack.Ext(1, b"x")]),
        lambda f: f.extend([None, None, None, {"k": b"bytes"}]),
        lambda f: f.extend([None, None, None, {}, [1, 1]]),
        lambda f: f.extend([None, None, None, {}, [], {"k": float("nan")}]),
        lambda f: f.extend([None, None, None, {}, [], {"k": msgspec.msgpack.Ext(3, b"")}]),
    ],
)
def test_tampered_fields_are_corrupt(mutate: Any) -> None:
    fields = msgspec.msgpack.decode(encode_session(Session()))
    mutate(fields)
    with pytest.raises(CorruptStateError):
        decode_session(msgspec.msgpack.encode(fields))


@pytest.mark.parametrize("phase_code", [2, 3])
@pytest.mark.parametrize("transport_code", [0, 3])
def test_retired_phase_codes_are_corrupt(phase_code: int, transport_code: int) -> None:
    # 2 and 3 were "closing" and "closed", which no session was ever in.
    fields = msgspec.msgpack.decode(encode_session(Session()))
    fields[2] = transport_code | phase_code << 2
    with pytest.raises(CorruptStateError, match="phase code"):
        decode_session(msgspec.msgpack.encode(fields))


def test_phase_and_transport_codes_are_unchanged() -> None:
    # Append only: encoded sessions keep their meaning across versions.
    for transport_code, transport in enumerate(["tcp", "stdio", "http", "ws"]):
        for phase_code, phase in enumerate(["initializing", "initialized"]):
            fields = msgspec.msgpack.decode(encode_session(Session()))
            fields[2] = transport_code | phase_code << 2
            decoded = decode_session(msgspec.msgpack.encode(fields))
            assert (decoded.transport, decoded.phase) == (transport, phase)


def test_deep_nesting_is_corrupt_not_a_crash() -> None:
    fields = msgspec.msgpack.decode(encode_session(Session()))
    deep: Any = {}
    for _ in range(200):
        deep = {"d": deep}
    fields.extend([None, None, None, {}, [], deep])
    with pytest.raises(CorruptStateError):
        decode_session(msgspec.msgpack.encode(fields))
    with pytest.raises(CorruptStateError):
        decode_session(b"\x91" * 100_000)


@pytest.mark.parametrize("bad", ["text", None, 5, [b"x"]])
def test_non_bytes_is_corrupt(bad: Any) -> None:
    with pytest.raises(CorruptStateError):
        decode_session(bad)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_corrupt_state(data: bytes) -> None:
    with contextlib.suppress(CorruptStateError):  # anything else fails the test
        decode_session(data)


@settings(max_examples=300, deadline=None)
@given(sessions, st.data())
def test_truncated_or_flipped_bytes_raise_only_corrupt_state(
    session: Session, data: st.DataObject
) -> None:
    encoded = encode_session(session)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(CorruptStateError):
        decode_session(encoded[:cut])
    position = data.draw(st.integers(0, len(encoded) - 1))
    flipped = bytearray(encoded)
    flipped[position] ^= data.draw(st.integers(1, 255))
    try:
        decoded = decode_session(bytes(flipped))
    except CorruptStateError:
        return
    assert isinstance(decoded, Session)  # a flip can land on a still-valid value


@pytest.mark.parametrize("thing", [None, {"session_id": b"x" * 16}, b"bytes", 7])
def test_encoding_a_non_session_is_a_type_error_that_says_so(thing: object) -> None:
    with pytest.raises(TypeError, match=f"needs a Session, got {type(thing).__name__}"):
        encode_session(thing)  # type: ignore[arg-type]
