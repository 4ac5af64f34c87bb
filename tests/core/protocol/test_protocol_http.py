"""Streamable HTTP on the sans-I/O core: statuses, sealed sessions, streams, DELETE, bad input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connscale.core.protocol.http import KEPT_ROWS, _HeaderFacts, sse_event
from connscale.core.protocol.httpwire import chunk
from connscale.core.protocol.limits import ServerLimits
from connscale.core.protocol.tokens import RevocationTable, SessionSealer
from support import (
    INIT,
    HttpPipe,
    echo,
    http_request,
    ping,
    split_responses,
    sse_messages,
)


def test_initialize_returns_a_sealed_session_id() -> None:
    pipe = HttpPipe()
    status, headers, body = pipe.once(http_request(body=INIT))
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body)["result"]["serverInfo"]["name"] == "connscale"
    assert len(headers["mcp-session-id"]) > 40
    # No session is held between requests; the row stays only for the GET that usually
    # follows (bounded, freed in turn: see the tests of kept rows below).
    assert pipe.core.statistics().sessions == 0 and pipe.http_handler.kept_rows == 1


def test_requests_with_the_token_are_served_by_any_worker_with_the_key() -> None:
    key = b"w" * 32
    first = HttpPipe(sealer=SessionSealer(key))
    other = HttpPipe(sealer=SessionSealer(key))  # another worker with the same key
    token = first.initialized()
    status, _, body = other.once(http_request(body=ping(2), headers={"mcp-session-id": token}))
    assert status == 200 and json.loads(body) == {"jsonrpc": "2.0", "id": 2, "result": {}}


def test_missing_unknown_tampered_and_expired_sessions() -> None:
    pipe = HttpPipe(sealer=SessionSealer(b"k" * 32, max_age=60, clock=lambda: clock[0]))
    clock[0] = 1000.0
    token = pipe.initialized()
    assert pipe.once(http_request(body=ping(1)))[0] == 400
    assert pipe.once(http_request(body=ping(1), headers={"mcp-session-id": "nope"}))[0] == 404
    tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    assert pipe.once(http_request(body=ping(1), headers={"mcp-session-id": tampered}))[0] == 404
    clock[0] += 61
    assert pipe.once(http_request(body=ping(1), headers={"mcp-session-id": token}))[0] == 404


clock = [0.0]


def test_a_sync_tool_call_is_answered_as_json_and_frees_its_slot() -> None:
    pipe = HttpPipe()
    token = pipe.initialized()
    status, headers, body = pipe.once(
        http_request(body=echo(3, "hey"), headers={"mcp-session-id": token})
    )
    assert status == 200 and headers["mcp-session-id"] == token
    assert json.loads(body)["result"]["content"] == [{"type": "text", "text": "hey"}]
    assert len(pipe.protocol.table) == pipe.http_handler.kept_rows == 1  # no slot but the kept row


def test_a_held_call_answers_later_and_its_notifications_make_it_a_stream() -> None:
    pipe = HttpPipe(hold={"echo"})
    token = pipe.initialized()
    connection = pipe.connect()
    assert (
        pipe.feed(connection, http_request(body=echo(4), headers={"mcp-session-id": token})) == b""
    )
    [call] = pipe.runner.held
    assert pipe.core.statistics().sessions == 0  # a POST is served from its token: no slot
    assert call.client.name == "hostile" and call.client.session_id
    call.notify("notifications/progress", {"progressToken": 1, "progress": 0.5})
    pipe.runner.answer(call, {"content": [], "isError": False})
    [(status, headers, body)] = split_responses(pipe.take(connection))
    assert status == 200 and headers["content-type"] == "text/event-stream"
    messages = sse_messages(body)
    assert [m.get("method") for m in messages] == ["notifications/progress", None]
    assert messages[1]["id"] == 4 and pipe.core.statistics().sessions == 0


def test_stream_responses_mode_answers_every_call_as_a_stream() -> None:
    pipe = HttpPipe(stream_responses=True)
    status, headers, body = pipe.once(http_request(body=INIT))
    assert status == 200 and headers["content-type"] == "text/event-stream"
    assert sse_messages(body)[0]["result"]["protocolVersion"] == "2025-06-18"


def test_notifications_and_client_answers_are_accepted_with_202() -> None:
    pipe = HttpPipe()
    token = pipe.initialized()
    answer = {"jsonrpc": "2.0", "id": 99, "result": {}}
    assert pipe.once(http_request(body=answer, headers={"mcp-session-id": token}))[0] == 202


def test_get_opens_a_stream_that_holds_one_slot_and_delete_ends_it() -> None:
    pipe = HttpPipe()
    token = pipe.initialized()
    stream = pipe.connect()
    get = http_request("GET", headers={"mcp-session-id": token, "content-length": "0"})
    head = pipe.feed(stream, get)
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
    assert len(pipe.protocol.table) == 1 and pipe.core.statistics().streams == 1
    assert pipe.once(get)[0] == 409  # one GET stream per session on this worker
    session_id = pipe.protocol.table.get(pipe.core._slot[stream], "session_id")
    pipe.protocol.deliver({session_id}, b'{"jsonrpc":"2.0","method":"x"}')
    assert pipe.take(stream) == chunk(sse_event(b'{"jsonrpc":"2.0","method":"x"}'))
    delete = http_request("DELETE", headers={"mcp-session-id": token})
    assert pipe.once(delete)[0] == 200
    assert pipe.take(stream).endswith(b"0\r\n\r\n") and pipe.is_closed(stream)
    assert len(pipe.protocol.table) == 0
    assert pipe.once(http_request(body=ping(1), headers={"mcp-session-id": token}))[0] == 404


class CountingSealer(SessionSealer):
    __slots__ = ("opened",)

    def __init__(self) -> None:
        super().__init__(b"c" * 32)
        self.opened = 0

    def open(self, token: bytes) -> tuple[bytes, float] | None:
        self.opened += 1
        return super().open(token)


def test_a_get_straight_after_initialize_opens_its_token_once() -> None:
    sealer = CountingSealer()
    pipe = HttpPipe(sealer=sealer)
    status, headers, _ = pipe.once(http_request(body=INIT))
    assert status == 200 and sealer.opened == 0
    get = http_request(
        "GET", headers={"mcp-session-id": headers["mcp-session-id"], "content-length": "0"}
    )
    assert pipe.feed(pipe.connect(), get).startswith(b"HTTP/1.1 200")
    # The GET takes the row and the view that initialize kept: no decryption at all.
    assert sealer.opened == 0 and len(pipe.protocol.table) == 1 and pipe.http_handler.kept_rows == 0
    assert pipe.core.statistics().streams == pipe.core.statistics().sessions == 1


def test_a_get_whose_kept_row_was_freed_loads_the_session_from_its_token() -> None:
    sealer = CountingSealer()
    pipe = HttpPipe(sealer=sealer)
    token = pipe.initialized()
    for _ in range(KEPT_ROWS):  # newer sessions push the first one's row out
        pipe.initialized()
    assert pipe.http_handler.kept_rows == len(pipe.protocol.table) == KEPT_ROWS
    get = http_request("GET", headers={"mcp-session-id": token, "content-length": "0"})
    assert pipe.feed(pipe.connect(), get).startswith(b"HTTP/1.1 200")
    assert sealer.opened == 1  # its view was remembered; its row is loaded from the token
    assert len(pipe.protocol.table) == KEPT_ROWS + 1


def test_a_delete_frees_the_kept_row_and_a_later_get_is_refused() -> None:
    pipe = HttpPipe()
    token = pipe.initialized()
    assert pipe.once(http_request("DELETE", headers={"mcp-session-id": token}))[0] == 200
    assert len(pipe.protocol.table) == 0 and pipe.http_handler.kept_rows == 0
    get = http_request("GET", headers={"mcp-session-id": token, "content-length": "0"})
    assert pipe.once(get)[0] == 404


def test_kept_rows_give_way_when_the_table_is_full() -> None:
    pipe = HttpPipe(max_sessions=4)
    tokens = [pipe.initialized() for _ in range(6)]  # more sessions than rows: no 503
    assert len(pipe.protocol.table) == 4
    get = http_request("GET", headers={"mcp-session-id": tokens[-1], "content-length": "0"})
    assert pipe.feed(pipe.connect(), get).startswith(b"HTTP/1.1 200")
    assert pipe.core.statistics().streams == 1


def test_kept_rows_give_way_to_a_stream_loaded_from_its_token() -> None:
    key = b"g" * 32
    pipe = HttpPipe(max_sessions=2, sealer=SessionSealer(key))
    pipe.initialized()
    pipe.initialized()  # the table is full of rows kept for GETs that have not come
    other = HttpPipe(sealer=SessionSealer(key)).initialized()  # a session another worker began
    get = http_request("GET", headers={"mcp-session-id": other, "content-length": "0"})
    assert pipe.feed(pipe.connect(), get).startswith(b"HTTP/1.1 200")
    assert len(pipe.protocol.table) == 2 and pipe.http_handler.kept_rows == 1


def test_deletes_are_seen_by_other_workers_sharing_the_table() -> None:
    shared = memoryview(bytearray(RevocationTable.size_for(64)))
    key = b"d" * 32
    first = HttpPipe(sealer=SessionSealer(key), revoked=RevocationTable(64, buffer=shared))
    second = HttpPipe(sealer=SessionSealer(key), revoked=RevocationTable(64, buffer=shared))
    token = first.initialized()
    assert first.once(http_request("DELETE", headers={"mcp-session-id": token}))[0] == 200
    assert second.once(http_request(body=ping(2), headers={"mcp-session-id": token}))[0] == 404


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (http_request(body=INIT, path="/other"), 404),
        (http_request("PUT", body=INIT), 405),
        (http_request(body=INIT, headers={"content-type": "text/plain"}), 415),
        (http_request(body=INIT, headers={"accept": "text/html"}), 406),
        (http_request(body=INIT, headers={"origin": "http://evil.example"}), 403),
        (http_request(body=INIT, headers={"mcp-protocol-version": "1999-01-01"}), 400),
        (http_request(body=b"{not json"), 400),
        (http_request(body=[INIT]), 400),
        (http_request(body=b"x" * 2000), 413),
        (http_request(body=INIT, headers={"content-length": str(10**12)}), 413),
        (http_request(body=INIT, headers={"x-big": "y" * 20000}), 431),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET /mcp HTTP/1.1\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n", 400),
    ],
)
def test_bad_requests(data: bytes, status: int) -> None:
    pipe = HttpPipe(limits=ServerLimits(max_frame_bytes=1000))
    assert pipe.once(data)[0] == status


def test_a_fatal_error_closes_the_connection_after_its_answer() -> None:
    pipe = HttpPipe()
    connection = pipe.connect()
    [(status, headers, _)] = pipe.exchange(connection, b"NOT HTTP\r\n\r\n")
    assert status == 400 and headers["connection"] == "close"
    assert pipe.wire.closed == {connection: True}


def test_hosts_other_than_the_servers_get_421() -> None:
    pipe = HttpPipe(allowed_hosts=["localhost", "127.0.0.1"])
    assert pipe.once(http_request(body=INIT, headers={"host": "127.0.0.1:8000"}))[0] == 200
    assert pipe.once(http_request(body=INIT, headers={"host": "localhost"}))[0] == 200
    for host in ("evil.example", "evil.example:80", "127.0.0.1.nip.io:8000"):
        assert pipe.once(http_request(body=INIT, headers={"host": host}))[0] == 421, host
    assert (
        HttpPipe(allowed_hosts=["::1"]).once(http_request(body=INIT, headers={"host": "[::1]:9"}))[
            0
        ]
        == 200
    )


def test_local_origins_are_allowed() -> None:
    pipe = HttpPipe(allowed_origins=["https://app.example"])
    for origin in ("http://localhost:3000", "http://127.0.0.1", "https://app.example"):
        assert pipe.once(http_request(body=INIT, headers={"origin": origin}))[0] == 200


def test_bearer_tokens_are_checked() -> None:
    pipe = HttpPipe(bearer_token=b"secret-token-123456")
    assert pipe.once(http_request(body=INIT))[0] == 401
    bad = {"authorization": "Bearer wrong"}
    assert pipe.once(http_request(body=INIT, headers=bad))[0] == 401
    good = {"authorization": "Bearer secret-token-123456"}
    assert pipe.once(http_request(body=INIT, headers=good))[0] == 200


def test_pipelined_requests_are_answered_in_order_and_the_reader_goes_idle() -> None:
    pipe = HttpPipe()
    connection = pipe.connect()
    responses = pipe.exchange(connection, http_request(body=INIT) * 3)
    assert [status for status, _, _ in responses] == [200, 200, 200]
    assert connection not in pipe.core._http_readers


def test_a_pipelining_client_is_served_one_turn_at_a_time() -> None:
    pipe = HttpPipe()
    connection = pipe.connect()
    responses = pipe.exchange(connection, http_request(body=ping(1)) * 40)
    assert len(responses) == 16 and pipe.wire.reading[connection] is False
    pipe.run_turns()
    assert len(split_responses(pipe.take(connection))) == 24
    assert pipe.wire.reading[connection] is True


def test_byte_by_byte_delivery() -> None:
    pipe = HttpPipe()
    connection = pipe.connect()
    data = http_request(body=INIT)
    for index in range(len(data) - 1):
        assert pipe.feed(connection, data[index : index + 1]) == b""
    [(status, _, _)] = pipe.exchange(connection, data[-1:])
    assert status == 200


def test_http_10_and_connection_close_end_after_the_answer() -> None:
    pipe = HttpPipe()
    connection = pipe.connect()
    request = http_request(body=INIT, headers={"connection": "close"})
    [(status, headers, _)] = pipe.exchange(connection, request)
    assert status == 200 and headers["connection"] == "close"
    assert pipe.is_closed(connection)


def test_keepalive_and_first_request_timeouts_on_a_fake_clock() -> None:
    pipe = HttpPipe(keepalive_timeout=5.0, limits=ServerLimits(handshake_timeout=2.0))
    slow = pipe.connect()
    pipe.feed(slow, http_request(body=INIT)[:10])  # trickled bytes do not extend it
    kept = pipe.connect()
    pipe.exchange(kept, http_request(body=INIT))
    pipe.advance(2.5)
    assert pipe.is_closed(slow) and not pipe.is_closed(kept)
    pipe.advance(3.0)
    assert pipe.is_closed(kept)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_gets_an_answer_or_waits_never_raises(data: bytes) -> None:
    pipe = HttpPipe()
    connection = pipe.connect()
    output = pipe.feed(connection, data)
    assert output == b"" or output.startswith(b"HTTP/1.1 ")


def test_remembered_sessions_still_expire_and_are_still_revoked_everywhere() -> None:
    """A POST is served from a remembered view of its token; expiry and a DELETE seen by
    another worker still end it."""
    shared = memoryview(bytearray(RevocationTable.size_for(64)))
    now = [5000.0]
    key = b"v" * 32
    first = HttpPipe(
        sealer=SessionSealer(key, max_age=100, clock=lambda: now[0]),
        revoked=RevocationTable(64, buffer=shared),
    )
    second = HttpPipe(
        sealer=SessionSealer(key, max_age=100, clock=lambda: now[0]),
        revoked=RevocationTable(64, buffer=shared),
    )
    token = first.initialized()
    session = {"mcp-session-id": token}
    assert second.once(http_request(body=ping(1), headers=session))[0] == 200  # remembered now
    assert first.once(http_request("DELETE", headers=session))[0] == 200
    assert second.once(http_request(body=ping(2), headers=session))[0] == 404
    other = first.initialized()
    assert first.once(http_request(body=ping(3), headers={"mcp-session-id": other}))[0] == 200
    now[0] += 101
    assert first.once(http_request(body=ping(4), headers={"mcp-session-id": other}))[0] == 404


def test_the_remembered_sessions_are_bounded() -> None:
    from connscale.core.protocol import http as http_module

    pipe = HttpPipe()
    for _ in range(http_module.VIEW_CACHE_SIZE + 20):
        token = pipe.initialized()
        assert pipe.once(http_request(body=ping(1), headers={"mcp-session-id": token}))[0] == 200
    assert len(pipe.core.http._views) == http_module.VIEW_CACHE_SIZE  # type: ignore[union-attr]


def test_host_answers_are_remembered_within_a_bound() -> None:
    facts = _HeaderFacts()
    allowed = frozenset({"localhost", "127.0.0.1"})
    assert facts.host_allowed(b"localhost:8000", allowed)
    assert not facts.host_allowed(b"evil.example:8000", allowed)
    for number in range(5 * _HeaderFacts.LIMIT):  # a client sending a new Host each time
        assert not facts.host_allowed(b"h%d.example" % number, allowed)
        assert len(facts._hosts) <= _HeaderFacts.LIMIT
    assert facts.host_allowed(b"127.0.0.1:1", allowed)  # still right after the memo emptied
