"""The connection core's decisions, driven byte by byte and tick by tick (no sockets, no
sleeping): turns, owed answers, half-close, flow control, every timeout. Both engines run
this code; tests/engines checks that they relay it faithfully."""

from __future__ import annotations

import json

from connscale.core.protocol.limits import ServerLimits
from support import INIT, INITIALIZED, CorePipe, echo, line, ping


def ids(pipe: CorePipe, connection: int) -> list[object]:
    return [message.get("id") for message in pipe.messages(connection)]


def deliver(pipe: CorePipe, connection: int, data: bytes) -> None:
    """Bytes arrive; what the server sends is left for the test to read."""
    pipe.core.receive(connection, data)


def ready(pipe: CorePipe) -> int:
    connection = pipe.connect()
    assert "result" in pipe.messages(connection, line(INIT))[0]
    deliver(pipe, connection, line(INITIALIZED))
    return connection


def test_a_pipelining_client_gets_turns_and_others_are_served_between_them() -> None:
    pipe = CorePipe()
    greedy, polite = ready(pipe), ready(pipe)
    deliver(pipe, greedy, b"".join(line(ping(i)) for i in range(40)))
    assert ids(pipe, greedy) == list(range(16))
    assert pipe.wire.reading[greedy] is False and pipe.wire.turns_asked == 1
    assert ids(pipe, polite) == [] and pipe.messages(polite, line(ping("p"))) == [
        {"jsonrpc": "2.0", "id": "p", "result": {}}
    ]  # served while the greedy one waits for its next turn
    pipe.core.run_backlog()
    assert ids(pipe, greedy) == list(range(16, 32))
    pipe.core.run_backlog()
    assert ids(pipe, greedy) == list(range(32, 40))
    assert pipe.wire.reading[greedy] is True and not pipe.core._backlog


def test_a_partial_frame_waits_and_completes_on_the_next_read() -> None:
    pipe = CorePipe()
    connection = ready(pipe)
    data = line(ping(1))
    assert pipe.feed(connection, data[:7]) == b""  # nothing yet
    assert connection in pipe.core._line_readers
    assert ids(pipe, connection) == []
    deliver(pipe, connection, data[7:] + line(ping(2))[:3])
    assert ids(pipe, connection) == [1]
    deliver(pipe, connection, line(ping(2))[3:])
    assert ids(pipe, connection) == [2] and connection not in pipe.core._line_readers


def test_an_oversized_frame_with_a_call_in_flight_gets_the_owed_answer_then_closes() -> None:
    """Regression: the asyncio engine closed without the answer of the call in flight."""
    pipe = CorePipe(limits=ServerLimits(max_frame_bytes=300), hold={"echo"})
    connection = ready(pipe)
    deliver(pipe, connection, line(echo(1)) + b"x" * 600)
    [error] = pipe.messages(connection)
    assert error["error"]["code"] == -32600 and "too large" in error["error"]["message"]
    assert not pipe.is_closed(connection)
    # Input is read and dropped from now on (not left to make the close a reset).
    assert pipe.wire.reading.get(connection, True) is True
    assert pipe.feed(connection, line(ping(9))) == b""
    [call] = pipe.runner.held
    pipe.runner.answer(call, {"content": [], "isError": False})
    assert ids(pipe, connection) == [1]
    assert pipe.wire.closed == {connection: True}  # closed once flushed
    assert len(pipe.protocol.table) == 0


def test_half_close_with_a_call_in_flight_answers_then_closes() -> None:
    pipe = CorePipe(hold={"echo"})
    connection = ready(pipe)
    deliver(pipe, connection, line(echo(1)) + line(ping(2)))
    assert ids(pipe, connection) == [2]
    pipe.core.eof(connection)
    assert not pipe.is_closed(connection) and pipe.wire.reading[connection] is False
    pipe.runner.answer(pipe.runner.held[0], {"content": [], "isError": False})
    assert ids(pipe, connection) == [1] and pipe.wire.closed == {connection: True}


def test_half_close_with_nothing_owed_closes_at_once_and_drops_a_partial_frame() -> None:
    pipe = CorePipe()
    connection = ready(pipe)
    deliver(pipe, connection, line(ping(1)) + b'{"jsonrpc":"2.0","id":2')
    pipe.core.eof(connection)
    assert ids(pipe, connection) == [1] and pipe.wire.closed == {connection: True}
    assert len(pipe.protocol.table) == 0


def test_half_close_with_frames_waiting_for_their_turn_answers_them_all() -> None:
    pipe = CorePipe()
    connection = ready(pipe)
    deliver(pipe, connection, b"".join(line(ping(i)) for i in range(20)))
    pipe.core.eof(connection)
    assert not pipe.is_closed(connection)
    pipe.run_turns()
    assert ids(pipe, connection) == list(range(20)) and pipe.is_closed(connection)


def test_flow_control_pauses_resumes_and_closes_a_client_that_never_reads() -> None:
    limits = ServerLimits(write_high_water=1000, write_low_water=100, max_write_buffer=5000)
    pipe = CorePipe(limits=limits)
    connection = ready(pipe)
    pipe.wire.buffered[connection] = 2000  # the kernel took nothing more
    deliver(pipe, connection, line(ping(1)))
    assert pipe.wire.reading[connection] is False
    pipe.wire.buffered[connection] = 50
    pipe.core.drained(connection)
    assert pipe.wire.reading[connection] is True
    pipe.wire.buffered[connection] = 6000
    deliver(pipe, connection, line(ping(2)))
    assert pipe.wire.closed == {connection: False}  # past max_write_buffer: at once


def test_a_paused_client_that_stays_stalled_is_closed_after_the_handshake_timeout() -> None:
    limits = ServerLimits(write_high_water=1000, write_low_water=100, handshake_timeout=4.0)
    pipe = CorePipe(limits=limits)
    stalled, recovering = ready(pipe), ready(pipe)
    for connection in (stalled, recovering):
        pipe.wire.buffered[connection] = 2000
        deliver(pipe, connection, line(ping(1)))
    pipe.advance(2.0)
    pipe.wire.buffered[recovering] = 0
    pipe.core.drained(recovering)
    pipe.advance(3.0)
    assert pipe.is_closed(stalled) and not pipe.is_closed(recovering)


def test_handshake_timeout_closes_a_connection_that_never_initializes() -> None:
    pipe = CorePipe(limits=ServerLimits(handshake_timeout=5.0))
    silent = pipe.connect()
    trickling = pipe.connect()
    initialized = ready(pipe)
    for _ in range(6):  # 6.6 s: past the timeout and the wheel's two ticks of lateness
        deliver(pipe, trickling, b" ")  # bytes, but no initialize: no extension
        pipe.advance(1.1)
    assert pipe.is_closed(silent) and pipe.is_closed(trickling)
    assert not pipe.is_closed(initialized)
    assert pipe.wire.wake is not None  # the core asked to be woken


def test_idle_timeout_counts_from_the_last_bytes() -> None:
    pipe = CorePipe(limits=ServerLimits(idle_timeout=10.0))
    busy, quiet = ready(pipe), ready(pipe)
    for _ in range(3):
        pipe.advance(4.0)
        deliver(pipe, busy, line(ping(1)))
    assert pipe.is_closed(quiet) and not pipe.is_closed(busy)
    pipe.advance(11.0)
    assert pipe.is_closed(busy)


def test_no_timeout_is_armed_without_a_reason_to() -> None:
    pipe = CorePipe()  # no idle timeout: an initialized session is never woken for
    connection = ready(pipe)
    pipe.advance(100.0)
    assert not pipe.is_closed(connection)
    assert pipe.core.tick(pipe.clock()) is None  # nothing pending: no more wake-ups


def test_a_cancelled_call_is_not_answered_and_its_id_is_free_again() -> None:
    pipe = CorePipe(hold={"echo"})
    connection = ready(pipe)
    deliver(pipe, connection, line(echo(5)))
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}}
    deliver(pipe, connection, line(cancel))
    assert pipe.messages(connection) == [] and not pipe.runner.held
    assert pipe.protocol.table.pending_count(pipe.core._slot[connection]) == 0


def test_list_changes_reach_initialized_sessions_only() -> None:
    pipe = CorePipe()
    initialized = ready(pipe)
    fresh = pipe.connect()
    pipe.protocol.broadcast(b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}')
    assert [m["method"] for m in pipe.messages(initialized)] == ["notifications/tools/list_changed"]
    assert pipe.messages(fresh) == []


def test_graceful_close_waits_for_owed_answers() -> None:
    pipe = CorePipe(hold={"echo"})
    idle, owed = ready(pipe), ready(pipe)
    deliver(pipe, owed, line(echo(1)))
    pipe.core.close_gracefully()
    assert pipe.is_closed(idle) and not pipe.is_closed(owed)
    pipe.runner.answer(pipe.runner.held[0], {"content": [], "isError": False})
    assert ids(pipe, owed) == [1] and pipe.is_closed(owed)


def test_connections_over_the_limit_or_without_a_slot_are_refused() -> None:
    pipe = CorePipe(capacity=2)
    assert pipe.core.open(0) and pipe.core.open(1)
    assert not pipe.core.open(2)  # past the capacity
    pipe.core.closed(0)
    assert pipe.core.open(0)
    assert pipe.core.statistics().connections == 2


def test_a_line_session_lives_in_the_slot_numbered_like_its_connection() -> None:
    pipe = CorePipe()
    assert pipe.core.open(7) and pipe.core.open(3)
    assert sorted(pipe.protocol.table.slots()) == [3, 7]
    assert "result" in pipe.messages(7, line(INIT))[0]
    assert pipe.protocol.is_initialized(7) and not pipe.protocol.is_initialized(3)
    pipe.core.closed(7)
    assert list(pipe.protocol.table.slots()) == [3]
    assert pipe.core.open(7)  # the number is free again: a new session, not initialized
    assert not pipe.protocol.is_initialized(7)


def test_a_connection_whose_slot_the_table_cannot_hold_is_refused() -> None:
    pipe = CorePipe(capacity=64)
    pipe.protocol.table._max_capacity = 16  # a table smaller than the connection numbers
    assert pipe.core.open(15)
    assert not pipe.core.open(16)
    assert pipe.core.statistics().connections == 1


def test_closing_frees_the_session_and_cancels_its_calls() -> None:
    pipe = CorePipe(hold={"echo"})
    connection = ready(pipe)
    deliver(pipe, connection, line(echo(1)))
    [call] = pipe.runner.held
    pipe.core.closed(connection)
    assert len(pipe.protocol.table) == 0
    assert not pipe.core.is_open(connection, call.generation)
    pipe.runner.answer(call, {"content": [], "isError": False})  # a late answer: dropped
    assert pipe.take(connection) == b""


def test_reading_state_is_a_single_decision() -> None:
    """Reading stops for any of: paused, half-closed, closing, waiting turns; resumes when
    none holds."""
    limits = ServerLimits(write_high_water=1000, write_low_water=100)
    pipe = CorePipe(limits=limits)
    connection = ready(pipe)
    deliver(pipe, connection, b"".join(line(ping(i)) for i in range(20)))
    assert pipe.wire.reading[connection] is False  # waiting turns
    pipe.wire.buffered[connection] = 2000
    pipe.core.run_backlog()  # its turn: answers pile up past the high water mark
    assert pipe.wire.reading[connection] is False
    pipe.wire.buffered[connection] = 0
    pipe.core.drained(connection)
    pipe.run_turns()
    assert pipe.wire.reading[connection] is True
    assert len(json.dumps(pipe.messages(connection))) > 0
