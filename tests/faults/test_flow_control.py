"""Write flow control: a client that never reads is paused, then closed; others go on."""

from __future__ import annotations

import socket
import time

import pytest

from connscale.core.protocol.limits import ServerLimits

from .harness import LineClient, ping, running, tool_call, wait_until

ENGINES = ["epoll", "asyncio"]
LIMITS = ServerLimits(
    write_high_water=16 << 10,
    write_low_water=4 << 10,
    max_write_buffer=64 << 10,
    handshake_timeout=0.5,  # also how long a paused client has to read its answers
)


def push_until_blocked(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Send ``data`` over and over without reading until the socket blocks; bytes sent."""
    sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + seconds
    blocked_since: float | None = None
    while time.monotonic() < deadline:
        try:
            sent += sock.send(data)
            blocked_since = None
        except BlockingIOError:
            now = time.monotonic()
            blocked_since = blocked_since or now
            if now - blocked_since > 0.05:
                break  # the server stopped reading from us
            time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            break  # or it closed us
    return sent


@pytest.mark.parametrize("engine", ENGINES)
def test_a_client_that_never_reads_is_paused_and_memory_stays_bounded(engine: str) -> None:
    with running(engine, limits=LIMITS) as server:
        good = LineClient(server.port)
        good.initialize()
        hostile = LineClient(server.port, receive_buffer=4096)
        hostile.initialize()
        burst = b"".join(ping(i) for i in range(1000))
        peak = 0
        for _ in range(5):  # pings in bursts, never reading the answers
            push_until_blocked(hostile.sock, burst, 0.5)
            peak = max(peak, server.call(server.engine.buffered_output))
            assert good.ping(1)  # the other client is served all along
        # What the server holds for the non-reader stays under the hard mark: it was paused
        # at the high water mark, or closed once its output passed max_write_buffer.
        assert peak <= LIMITS.max_write_buffer
        assert server.statistics().connections in (1, 2)
        hostile.close()
        good.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_client_that_stays_paused_is_closed(engine: str) -> None:
    with running(engine, limits=LIMITS) as server:
        good = LineClient(server.port)
        good.initialize()
        hostile = LineClient(server.port, receive_buffer=4096)
        hostile.initialize()
        big = tool_call(5, "echo", {"text": "x" * (32 << 10)})  # each answer ~32 KiB
        push_until_blocked(hostile.sock, big * 64, 2.0)  # ~2 MiB of answers owed
        # Closed at once if one read's answers pass max_write_buffer, else once it has stayed
        # above the high water mark for the handshake timeout.
        wait_until(lambda: server.statistics().connections == 1, timeout=3)
        assert server.call(server.engine.buffered_output) == 0
        assert good.ping(2)
        hostile.close()
        good.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_pipelining_client_is_answered_in_order_while_others_get_turns(engine: str) -> None:
    with running(engine) as server:
        good = LineClient(server.port)
        good.initialize()
        pipeliner = LineClient(server.port, timeout=10)
        pipeliner.initialize()
        count = 20_000  # far more frames than one turn (16) in every read
        stream = b"".join(
            tool_call(i, "echo", {"text": str(i)}) if i % 100 == 0 else ping(i)
            for i in range(count)
        )
        pipeliner.sock.sendall(stream[: len(stream) // 2])
        assert good.ping(1)  # answered while the pipeliner's frames wait their turns
        pipeliner.sock.sendall(stream[len(stream) // 2 :])
        for expected in range(count):
            reply = pipeliner.receive()
            assert reply is not None and reply["id"] == expected
            if expected % 100 == 0:
                assert reply["result"]["content"][0]["text"] == str(expected)
        assert good.ping(2)
        good.close()
        pipeliner.close()
