"""The epoll engine's own accept loop (what both engines share is in test_contract.py)."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from connscale.clock import FakeClock
from connscale.server.build import build_engine
from connscale.server.config import ServerConfig
from connscale.server.supervisor import resolve_app
from connscale.testing import engine_in_thread
from support import LineClient, wait_until


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


@contextmanager
def serving(listener: ExhaustibleListener) -> Iterator[int]:
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    config = ServerConfig(engine="epoll", port=port)
    engine = build_engine(config, resolve_app(config), listener, clock=FakeClock(1000.0))
    with engine_in_thread(engine):
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
