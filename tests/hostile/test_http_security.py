"""HTTP transport security: Host and Origin (DNS rebinding), loopback bind, bearer tokens,
session ids that cannot be guessed, read or forged, 400/404 as the MCP specification says,
no secrets in logs. Sans-I/O first, then both engines on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import hmac
import logging
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connscale.cli import serve as serve_cli
from connscale.core.codec import decode_session
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.tokens import RevocationTable, SessionSealer
from connscale.errors import ConfigurationError
from connscale.server.config import ServerConfig, read_token_file
from support import (
    ENGINES,
    INIT,
    HttpPipe,
    echo,
    http_exchange,
    http_request,
    ping,
    running,
)

BEARER = b"s3cret-bearer-token-0123456789"
KEY = b"k" * 32


def make_handler(**options: Any) -> HttpPipe:
    options.setdefault("sealer", SessionSealer(KEY))
    return HttpPipe(limits=ServerLimits(max_frame_bytes=4096), **options)


def answer(handler: HttpPipe, data: bytes) -> tuple[int, dict[str, str], bytes]:
    return handler.once(data)


def session_of(handler: HttpPipe, headers: dict[str, str] | None = None) -> str:
    status, response_headers, body = answer(handler, http_request(body=INIT, headers=headers))
    assert status == 200, body
    return response_headers["mcp-session-id"]


# -- Origin: DNS rebinding ----------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "null",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example:8000",
        "http://127.0.0.1:8000@evil.example",
        "https://evil.example/http://localhost",
        "file://",
        "http://[::2]",
        "not a url at all",
        "http://[::1",  # urlsplit raises on this one
    ],
)
def test_foreign_origin_is_forbidden_on_every_method(origin: str) -> None:
    """A non-allowed Origin gets 403 before anything else is looked at (POST, GET, DELETE)."""
    handler = make_handler()
    token = session_of(handler)
    headers = {"origin": origin, "mcp-session-id": token}
    assert answer(handler, http_request(body=INIT, headers={"origin": origin}))[0] == 403
    get = http_request("GET", headers=dict(headers, accept="text/event-stream"))
    assert answer(handler, get)[0] == 403
    assert answer(handler, http_request("DELETE", headers=headers))[0] == 403
    assert answer(handler, http_request(body=ping(1), headers=headers))[0] == 403
    assert answer(handler, http_request(body=ping(1), headers={"mcp-session-id": token}))[0] == 200


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost",
        "http://localhost:6274",
        "http://127.0.0.1:8000",
        "http://[::1]:3000",
        "HTTP://LOCALHOST",
        "https://app.example",
        "https://app.example/",
    ],
)
def test_local_and_configured_origins_are_allowed(origin: str) -> None:
    """Loopback origins and configured ones are served; a missing Origin (not a browser) too."""
    handler = make_handler(allowed_origins=["https://app.example"])
    assert answer(handler, http_request(body=INIT, headers={"origin": origin}))[0] == 200
    assert answer(handler, http_request(body=INIT))[0] == 200


@pytest.mark.parametrize("engine", ENGINES)
def test_origin_on_a_real_server(engine: str) -> None:
    """Over a socket: the rebinding page's Origin is 403, a local one is served."""
    with running(engine, "http") as server:
        evil = http_request(body=INIT, headers={"origin": "http://attacker.example:1234"})
        assert http_exchange(server.port, evil)[0] == 403
        local = http_request(body=INIT, headers={"origin": "http://localhost:5173"})
        assert http_exchange(server.port, local)[0] == 200


def test_the_server_binds_loopback_unless_told_otherwise() -> None:
    """``connscale serve`` and ServerConfig default to 127.0.0.1 (the spec's SHOULD)."""
    import argparse

    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    assert parser.parse_args([]).host == "127.0.0.1"
    assert ServerConfig().host == "127.0.0.1"


# -- bearer tokens -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong-token-of-some-length",
        "Bearer " + BEARER.decode()[:-1],  # a prefix
        "Bearer " + BEARER.decode() + "x",  # an extension
        "Basic " + BEARER.decode(),
        "Bearer " + BEARER.decode().upper(),
        BEARER.decode(),
    ],
)
def test_missing_or_wrong_bearer_token_is_401(authorization: str | None) -> None:
    """Without the configured token: 401 with ``WWW-Authenticate: Bearer``, on every method,
    before any session is looked at; the body does not echo what was sent."""
    handler = make_handler(bearer_token=BEARER)
    headers = {} if authorization is None else {"authorization": authorization}
    status, response_headers, body = answer(handler, http_request(body=INIT, headers=headers))
    assert status == 401
    assert response_headers["www-authenticate"].startswith("Bearer")
    assert BEARER not in body
    for part in (authorization or "").split():
        assert len(part) <= 8 or part.encode() not in body
    for method in ("GET", "DELETE"):
        assert answer(handler, http_request(method, headers=headers))[0] == 401
    assert len(handler.protocol.table) == 0


def test_right_bearer_token_is_served_and_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The right token (scheme case-insensitive) is served; the check uses hmac.compare_digest."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    handler = make_handler(bearer_token=BEARER)
    for scheme in ("Bearer", "bearer", "BEARER"):
        auth = {"authorization": f"{scheme} {BEARER.decode()}"}
        token = session_of(handler, auth)
        call = http_request(body=ping(1), headers=dict(auth, **{"mcp-session-id": token}))
        assert answer(handler, call)[0] == 200
    assert (BEARER, BEARER) in calls


def test_an_empty_bearer_token_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        make_handler(bearer_token=b"")


@pytest.mark.parametrize("engine", ENGINES)
def test_bearer_token_on_a_real_server(engine: str) -> None:
    """Over a socket: 401 without the token, 200 with it."""
    with running(engine, "http", bearer_token=BEARER) as server:
        assert http_exchange(server.port, http_request(body=INIT))[0] == 401
        auth = {"authorization": "Bearer " + BEARER.decode()}
        assert http_exchange(server.port, http_request(body=INIT, headers=auth))[0] == 200


def test_token_file_is_read_and_checked_without_echoing_it(tmp_path: Path) -> None:
    """``--token-file``: surrounding whitespace dropped; bad files are user errors that name
    the file, never the token."""
    path = tmp_path / "token"
    path.write_bytes(b"  " + BEARER + b"\n")
    assert read_token_file(path) == BEARER
    for bad in (b"short", b"has space in the middle!!", b"x" * 5000, "ünïcode-token-xxxx".encode()):
        path.write_bytes(bad)
        with pytest.raises(ConfigurationError) as caught:
            read_token_file(path)
        assert bad.decode("utf-8", "replace") not in str(caught.value)
    with pytest.raises(ConfigurationError):
        read_token_file(tmp_path / "missing")


def test_token_file_needs_http(tmp_path: Path) -> None:
    import argparse

    path = tmp_path / "token"
    path.write_bytes(BEARER)
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    with pytest.raises(ConfigurationError):
        serve_cli.run(parser.parse_args(["--transport", "tcp", "--token-file", str(path)]))


# -- session ids ---------------------------------------------------------------------------


def test_session_ids_are_unguessable() -> None:
    """Each initialize gets 16 fresh random bytes (in a sealed token): no repeats, and every
    bit of the id varies across sessions."""
    handler = make_handler()
    sealer = SessionSealer(KEY)
    ids = []
    for _ in range(200):
        state = sealer.unseal(session_of(handler))
        assert state is not None
        ids.append(decode_session(state).session_id)
    assert len(set(ids)) == len(ids) and all(len(i) == 16 for i in ids)
    ones = [sum((int.from_bytes(i, "big") >> bit) & 1 for i in ids) for bit in range(128)]
    assert all(40 <= count <= 160 for count in ones)  # each bit is set about half the time


def test_missing_session_id_is_400_unknown_or_ended_is_404() -> None:
    """As the specification says: no Mcp-Session-Id on a non-initialize request is 400; one
    the server does not know (never issued, other key, deleted) is 404."""
    handler = make_handler()
    assert answer(handler, http_request(body=ping(1)))[0] == 400
    get = {"accept": "text/event-stream"}
    assert answer(handler, http_request("GET", headers=get))[0] == 400
    assert answer(handler, http_request("DELETE"))[0] == 400
    unknown = base64.urlsafe_b64encode(b"\x00" * 60).rstrip(b"=").decode()
    foreign = session_of(make_handler(sealer=SessionSealer(b"z" * 32)))
    for token in (unknown, foreign, "", "not-base64-!!", "A" * 4097):
        headers = {"mcp-session-id": token}
        assert answer(handler, http_request(body=ping(1), headers=headers))[0] == 404, token
    token = session_of(handler)
    headers = {"mcp-session-id": token}
    assert answer(handler, http_request("DELETE", headers=headers))[0] == 200
    assert answer(handler, http_request(body=ping(1), headers=headers))[0] == 404
    assert answer(handler, http_request(body=echo(2), headers=headers))[0] == 404


_SEALER = SessionSealer(KEY)
_HANDLER = make_handler()
_TOKEN = session_of(_HANDLER)
_CHARACTERS = string.ascii_letters + string.digits + "-_+/=.!~ \t%"


@settings(max_examples=300, deadline=2000)
@given(st.data())
def test_tampering_with_any_character_of_the_session_token_is_refused(data: st.DataObject) -> None:
    """Change, insert or delete any character of a valid Mcp-Session-Id: 404, never served.

    Regression: the base64 decoder skipped non-alphabet characters and read ``+/`` as ``-_``,
    so some edits decoded to the same bytes; only the canonical spelling is accepted now.
    """
    index = data.draw(st.integers(0, len(_TOKEN) - 1))
    edit = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    char = data.draw(st.sampled_from(_CHARACTERS))
    if edit == "replace":
        if char == _TOKEN[index]:
            return
        tampered = _TOKEN[:index] + char + _TOKEN[index + 1 :]
    elif edit == "insert":
        tampered = _TOKEN[:index] + char + _TOKEN[index:]
    else:
        tampered = _TOKEN[:index] + _TOKEN[index + 1 :]
    assert _SEALER.unseal(tampered) is None
    if tampered.strip() != tampered or "\t" in tampered:
        return  # the parser trims header whitespace; the check above is the one that matters
    status = answer(_HANDLER, http_request(body=ping(1), headers={"mcp-session-id": tampered}))[0]
    assert status in (400, 404)


@settings(max_examples=200, deadline=2000)
@given(st.binary(min_size=1, max_size=200), st.integers(0, 10_000), st.integers(1, 255))
def test_any_flipped_bit_of_any_sealed_state_is_detected(
    state: bytes, position: int, flip: int
) -> None:
    """Seal arbitrary state, XOR any byte of the decoded token: opening it fails."""
    token = _SEALER.seal(state)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[position % len(raw)] ^= flip
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert _SEALER.unseal(token) == state
    assert _SEALER.unseal(forged) is None


def test_a_session_id_reveals_nothing_of_the_client() -> None:
    """Regression: a base64 decode of the session id showed the client's name, version and
    capability names; the sealed token shows none of them."""
    handler = make_handler()
    params = dict(INIT["params"], clientInfo={"name": "claude-desktop", "version": "9.9.9"})
    params["capabilities"] = {"sampling": {}, "elicitation": {}}
    token = session_of_message(handler, dict(INIT, params=params))
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for secret in (b"claude", b"9.9.9", b"sampling", b"elicitation"):
        assert secret not in raw


def session_of_message(handler: HttpPipe, message: dict[str, Any]) -> str:
    status, headers, body = answer(handler, http_request(body=message))
    assert status == 200, body
    return headers["mcp-session-id"]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.2.evil:80"])
def test_a_foreign_host_is_misdirected_421(host: str) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host; a
    server bound to loopback answers only to loopback names (421 otherwise)."""
    handler = make_handler(allowed_hosts=["localhost", "127.0.0.1", "::1"])
    assert answer(handler, http_request(body=INIT, headers={"host": host}))[0] == 421
    assert answer(handler, http_request(body=INIT, headers={"host": "localhost:9"}))[0] == 200


def test_loopback_servers_check_hosts_and_others_accept_any_by_default() -> None:
    assert "localhost" in (ServerConfig().host_names() or ())
    assert ServerConfig(host="0.0.0.0").host_names() is None
    assert ServerConfig(host="0.0.0.0", allowed_hosts=("mcp.example",)).host_names() == (
        "mcp.example",
    )


# -- secrets never in logs -----------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_tokens_and_session_ids_never_appear_in_logs(
    engine: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything logged at DEBUG while a client authenticates, opens a session, calls a
    tool, is refused, deletes, and hits a server-side error holds no token or session id."""
    caplog.set_level(logging.DEBUG)
    with running(engine, "http", bearer_token=BEARER) as server:
        auth = {"authorization": "Bearer " + BEARER.decode()}
        status, headers, _ = http_exchange(server.port, http_request(body=INIT, headers=auth))
        assert status == 200
        token = headers["mcp-session-id"]
        session_headers = dict(auth, **{"mcp-session-id": token})
        assert (
            http_exchange(server.port, http_request(body=echo(1), headers=session_headers))[0]
            == 200
        )
        wrong = {"authorization": "Bearer " + token, "mcp-session-id": token}
        assert http_exchange(server.port, http_request(body=ping(2), headers=wrong))[0] == 401

        # A bug on the server side while the secrets are in hand: it is logged, they are not.
        def explode(*_args: Any) -> Any:
            raise RuntimeError("simulated bug")

        # (In the revocation check, which every request passes with its token in hand; the
        # HTTP front end itself may be compiled, and compiled classes cannot be patched.)
        monkeypatch.setattr(RevocationTable, "is_revoked", explode)
        # The connection is dropped: that is all a client sees of a bug.
        with contextlib.suppress(OSError, IndexError, ValueError):
            http_exchange(
                server.port, http_request(body=ping(3), headers=session_headers), timeout=2
            )
        monkeypatch.undo()
        assert http_exchange(server.port, http_request("DELETE", headers=session_headers))[0] == 200
    text = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert "simulated bug" in text  # the logging did capture the server's error
    for secret in (BEARER.decode(), token, token[:24]):
        assert secret not in text
