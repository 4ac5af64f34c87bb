"""The epoll engine's own accept loop (what both engines share is in test_contract.py)."""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from connscale import App
from connscale.clock import FakeClock
from connscale.server.build import build_engine
from connscale.server.config import ServerConfig
from connscale.server.supervisor import resolve_app
from connscale.testing import engine_in_thread
from support import (
    INIT,
    LineClient,
    Running,
    http_exchange,
    http_request,
    parse_response,
    running,
    tool_call,
    wait_until,
)


class ExhaustibleListener(socket.socket):
    """A listening socket whose ``accept`` fails with EMFILE while ``exhausted`` is set, as
    it does when the process is out of file descriptors; it counts every attempt."""

    exhausted = False
    attempts = 0
    lock = threading.Lock()

    def _accept(self) -> tuple[int, object]:  # type: ignore[override]
        with self.lock:
            self.attempts += 1
        if self.exhausted:
            raise OSError(errno.EMFILE, "Too many open files")
        return super()._accept()  # type: ignore[misc,no-any-return]


class FastForwardLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock a test moves forward: its timers come due without waiting."""

    ahead = 0.0

    def time(self) -> float:
        return super().time() + self.ahead

    def skip(self, seconds: float) -> None:
        """Move this loop's clock ``seconds`` on (from any thread) and let it look again."""
        self.ahead += seconds
        self.call_soon_threadsafe(lambda: None)


@contextmanager
def serving(
    listener: ExhaustibleListener, new_loop: Callable[[], asyncio.AbstractEventLoop] | None = None
) -> Iterator[int]:
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    config = ServerConfig(engine="epoll", port=port)
    engine = build_engine(config, resolve_app(config), listener, clock=FakeClock(1000.0))
    with engine_in_thread(engine, new_loop=new_loop or asyncio.new_event_loop):
        yield port


def test_out_of_fds_the_listener_waits_for_a_close_instead_of_spinning() -> None:
    listener = ExhaustibleListener()
    with listener, serving(listener) as port:
        first = LineClient(port)
        first.initialize()
        listener.exhausted = True
        before = listener.attempts
        waiting = LineClient(port)  # queued in the backlog: accept fails once, then pauses
        wait_until(lambda: listener.attempts > before)
        assert first.ping(1)  # the loop serves the connections it has meanwhile
        assert first.ping(2)
        assert listener.attempts == before + 1  # not retried while nothing was closed
        listener.exhausted = False
        first.close()  # frees an fd: accepting resumes and takes the waiting client
        waiting.initialize()
        assert waiting.ping(3)
        waiting.close()


def test_out_of_fds_with_no_connection_to_close_accepting_is_retried_after_a_second() -> None:
    # The fds may be held by something else (a tool's files): then no close comes, and the
    # listener is polled again once the loop's clock has moved a second on.
    listener = ExhaustibleListener()
    loop = FastForwardLoop()
    with listener, serving(listener, new_loop=lambda: loop) as port:
        listener.exhausted = True
        waiting = LineClient(port)
        wait_until(lambda: listener.attempts == 1)
        listener.exhausted = False
        loop.skip(0.5)  # not yet: still paused
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(5)  # it looked
        assert listener.attempts == 1
        loop.skip(0.6)  # past the second: accepting resumes and takes the waiting client
        waiting.initialize()
        assert waiting.ping(1)
        assert listener.attempts == 2
        waiting.close()


def test_a_burst_of_connections_is_accepted_with_no_accept_that_finds_none() -> None:
    listener = ExhaustibleListener()
    with listener, serving(listener) as port:
        clients = [LineClient(port) for _ in range(50)]  # connected before any is served
        for number, client in enumerate(clients):
            client.initialize()
            assert client.ping(number)
        # One accept per connection: none was spent finding the backlog empty.
        assert listener.attempts == 50
        for client in clients:
            client.close()


# -- a request that is there when its connection is accepted ------------------------------------


@contextmanager
def loop_held(server: Running) -> Iterator[None]:
    """The server's loop blocked while the block runs: what a client connects and sends
    meanwhile waits in the kernel, and the engine's read right after ``accept`` finds it."""
    hold, holding = threading.Event(), threading.Event()

    def block() -> None:
        holding.set()
        hold.wait(10)

    server.loop.call_soon_threadsafe(block)
    assert holding.wait(10)
    try:
        yield
    finally:
        hold.set()


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(1 << 16):
        data += chunk
    return data


def test_a_request_there_at_accept_keeps_its_connection_polled_for_the_next() -> None:
    with running("epoll", "http") as server:
        with loop_held(server):
            client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            client.sendall(http_request(body=INIT))
        with client:
            status, headers, _ = parse_response(client.recv(1 << 16))
            assert status == 200
            token = headers["mcp-session-id"]
            # Answered during the read right after accept; the fd joined the epoll set after
            # it, or this second request on the same connection would never be read.
            client.sendall(
                http_request(
                    body=tool_call(2, "echo", {"text": "again"}), headers={"mcp-session-id": token}
                )
            )
            status, _, body = parse_response(client.recv(1 << 16))
            assert status == 200 and b"again" in body


def test_a_request_there_at_accept_answered_and_closed_at_once() -> None:
    with running("epoll", "http") as server:
        with loop_held(server):
            client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            client.sendall(http_request(body=INIT, headers={"connection": "close"}))
        with client:
            status, headers, _ = parse_response(read_until_closed(client))
        assert status == 200 and headers["connection"] == "close"
        assert server.wait_for(lambda: server.engine.statistics().connections == 0)
        # The engine goes on accepting: a second connection is served the same way.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as second:
            second.sendall(http_request(body=INIT, headers={"connection": "close"}))
            assert parse_response(read_until_closed(second))[0] == 200


def test_an_answer_larger_than_the_socket_takes_during_the_first_read_is_sent_whole() -> None:
    size = 1 << 20  # far more than the socket takes, under the 4 MiB max_write_buffer
    app = App("big")

    @app.tool()
    def big(count: int) -> str:
        return "x" * count

    # The send buffer fixed: the kernel would grow a loopback socket's to megabytes.
    with running("epoll", "http", app=app, socket_send_buffer=16 << 10) as server:
        token = http_exchange(server.port, http_request(body=INIT))[1]["mcp-session-id"]
        call = http_request(
            body=tool_call(2, "big", {"count": size}),
            headers={"mcp-session-id": token, "connection": "close"},
        )
        with loop_held(server):
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # reads slowly
            client.settimeout(5)
            client.connect(("127.0.0.1", server.port))
            client.sendall(call)
        with client:
            # The answer is written during the read right after accept, more than the
            # socket takes: the rest waits in the engine, and only the epoll set's
            # EPOLLOUT (asked for when the fd joins it) sends it.
            assert server.wait_for(lambda: server.engine.buffered_output() > 0)
            data = read_until_closed(client)
        status, _, body = parse_response(data)
        assert status == 200
        assert body.count(b"x") >= size
        assert server.wait_for(lambda: server.engine.statistics().connections == 0)
        assert server.call(server.engine.buffered_output) == 0
