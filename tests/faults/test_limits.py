"""Limits per connection and per worker, on both engines: floods, slowloris, timeouts, resets."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from connscale.core.protocol.limits import ServerLimits

from .harness import INIT, LineClient, ping, running, tool_call, wait_until

ENGINES = ["epoll", "asyncio"]


@pytest.mark.parametrize("engine", ENGINES)
def test_connection_flood_is_refused_cleanly_and_recovers(engine: str) -> None:
    with running(engine, limits=ServerLimits(max_connections=20)) as server:
        kept = [LineClient(server.port) for _ in range(20)]
        for client in kept:
            client.initialize()
        flood = [LineClient(server.port, timeout=2) for _ in range(200)]  # 10x the limit
        for client in flood:
            assert client.closed_by_server()  # accepted and closed at once, never held
        assert server.statistics().connections == 20
        assert all(client.ping(7) for client in kept)
        for client in flood + kept[:10]:
            client.close()
        wait_until(lambda: server.statistics().connections == 10)
        again = LineClient(server.port)  # room again: served as usual
        again.initialize()
        assert again.ping(3)
        for client in [again, *kept[10:]]:
            client.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_slowloris_handshake_is_closed_at_the_timeout(engine: str) -> None:
    with running(engine, limits=ServerLimits(handshake_timeout=0.3)) as server:
        slow = LineClient(server.port, timeout=0.05)
        good = LineClient(server.port)
        good.initialize()
        started = time.monotonic()
        closed = False
        for byte in INIT:  # a byte every 20 ms: the whole line would take ~3 s
            try:
                slow.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if slow.closed_by_server():
                closed = True
                break
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        assert closed and 0.25 < elapsed < 2.0
        assert good.ping(1)  # the good session is past its handshake: not affected
        assert server.statistics().sessions == 1
        slow.close()
        good.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_idle_timeout_closes_silent_sessions_only(engine: str) -> None:
    limits = ServerLimits(handshake_timeout=0.2, idle_timeout=0.4)
    with running(engine, limits=limits) as server:
        silent = LineClient(server.port, timeout=3)
        busy = LineClient(server.port)
        silent.initialize()
        busy.initialize()
        started = time.monotonic()
        for request_id in range(10):  # active for ~1 s, longer than the idle timeout
            assert busy.ping(request_id)
            time.sleep(0.1)
        assert silent.closed_by_server()
        assert time.monotonic() - started < 3.0
        assert busy.ping(99)
        busy.close()
        silent.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_idle_timeout_is_off_by_default(engine: str) -> None:
    with running(engine, limits=ServerLimits(handshake_timeout=0.1)) as server:
        client = LineClient(server.port, timeout=0.6)
        client.initialize()
        assert not client.closed_by_server()  # silent for 0.6 s, 6x the handshake timeout
        assert client.ping(1)
        client.close()


def http_request(request_id: int) -> bytes:
    body = ping(request_id).rstrip(b"\n")
    return (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_http_keep_alive_and_slow_requests_are_bounded(engine: str) -> None:
    limits = ServerLimits(handshake_timeout=0.3)
    with running(engine, "http", limits, keepalive_timeout=0.3) as server:
        kept = LineClient(server.port, timeout=3)
        kept.send(http_request(1))  # without a session id: answered (400), kept alive
        head = kept.sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 ")
        started = time.monotonic()
        assert kept.closed_by_server()  # idle after its answer: closed at the keep-alive bound
        assert 0.25 < time.monotonic() - started < 2.5
        trickle = LineClient(server.port, timeout=0.05)
        started = time.monotonic()
        closed = False
        for byte in http_request(2):  # headers a byte every 20 ms
            try:
                trickle.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if trickle.closed_by_server():
                closed = True
                break
            time.sleep(0.02)
        assert closed and time.monotonic() - started < 2.0
        kept.close()
        trickle.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_half_closed_client_still_gets_its_answers(engine: str) -> None:
    with running(engine) as server:
        client = LineClient(server.port)
        client.send(
            INIT
            + ping(1)
            + tool_call(2, "consult_experts", {"question": "Is water wet?"})  # async tool
            + tool_call(3, "echo", {"text": "last"})
        )
        client.sock.shutdown(socket.SHUT_WR)
        replies = [client.receive() for _ in range(4)]
        assert sorted(reply["id"] for reply in replies if reply) == [0, 1, 2, 3]
        assert not replies[-1]["result"]["isError"]  # the slow (async) answer came last
        assert client.receive() is None  # then the server closes
        client.close()
        wait_until(lambda: server.statistics().connections == 0)


@pytest.mark.parametrize("engine", ENGINES)
def test_reset_in_the_middle_of_a_message_frees_everything(engine: str) -> None:
    with running(engine) as server:
        good = LineClient(server.port)
        good.initialize()
        for _ in range(20):
            client = LineClient(server.port)
            client.send(INIT + b'{"jsonrpc":"2.0","id":1,"method":"pi')  # cut mid-message
            client.receive()
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # SO_LINGER 0: an RST, not a FIN
        wait_until(lambda: server.statistics().connections == 1)
        assert server.statistics().sessions == 1
        assert good.ping(5)
        good.close()
