"""The load generator driven from outside (Locust's users): URL targets, the gauge of
connections held over processes, and a swarm's observer and one-at-a-time requests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connscale.app import App
from connscale.errors import ConfigurationError
from connscale.loadgen.driven import TIMELINE_POINTS, HeldGauge, HeldReport, parse_target
from connscale.loadgen.protocols import PROTOCOL_NAMES
from connscale.loadgen.swarm import Swarm
from support import running


def fake_resolve(host: str, port: int) -> str:
    return "127.0.0.9" if host == "mcp.example" else host


@pytest.mark.parametrize(
    ("url", "protocol", "expected"),
    [
        ("tcp://127.0.0.1:8000", None, ("mcp", "127.0.0.1", 8000, None)),
        ("tcp://127.0.0.1:8000/", None, ("mcp", "127.0.0.1", 8000, None)),
        ("http://mcp.example:8000/mcp", None, ("mcp-http", "127.0.0.9", 8000, "/mcp")),
        ("HTTP://mcp.example/mcp", None, ("mcp-http", "127.0.0.9", 80, "/mcp")),
        ("ws://127.0.0.1:9000/chat", None, ("websocket", "127.0.0.1", 9000, "/chat")),
        ("http://127.0.0.1:9000/events", "sse", ("sse", "127.0.0.1", 9000, "/events")),
        ("tcp://127.0.0.1:7000", "tcp", ("tcp", "127.0.0.1", 7000, None)),
    ],
)
def test_a_url_names_the_protocol_the_address_and_the_options(
    url: str, protocol: str | None, expected: tuple[Any, ...]
) -> None:
    target = parse_target(url, protocol, resolve=fake_resolve)
    assert (target.protocol, target.address, target.options.port, target.options.path) == expected
    # The Host header names the host as written, not the address it resolved to.
    assert target.options.host == ("mcp.example" if "mcp.example" in url else "127.0.0.1")
    assert target.make_protocol().name == expected[0]


@pytest.mark.parametrize(
    ("url", "protocol", "why"),
    [
        ("127.0.0.1:8000", None, "must start with"),
        ("udp://127.0.0.1:8000", None, "must start with"),
        ("tcp://127.0.0.1", None, "needs a port"),
        ("tcp://127.0.0.1:8000/mcp", None, "has no path"),
        ("tcp://127.0.0.1:99999", None, "not a valid URL"),
        ("http://127.0.0.1:8000/mcp?x=1", None, "query"),
        ("http://user:pw@127.0.0.1:8000/mcp", None, "user"),
        ("tcp://:8000", None, "no host"),
        ("tcp://127.0.0.1:8000", "carrier-pigeon", "unknown protocol"),
        ("tcp://127.0.0.1:8000", "tcp", None),  # fine: the next case needs a probe line
        ("", None, "must be a URL"),
    ],
)
def test_a_bad_target_is_one_clear_error(url: str, protocol: str | None, why: str | None) -> None:
    if why is None:
        parse_target(url, protocol, resolve=fake_resolve)
        with pytest.raises(ConfigurationError, match="probe"):
            parse_target(url, protocol, probe="two\nlines", resolve=fake_resolve)
        return
    with pytest.raises(ConfigurationError, match=why):
        parse_target(url, protocol, resolve=fake_resolve)


def test_every_registered_protocol_can_be_asked_for() -> None:
    """The registry is the only list: a protocol module added to it needs nothing here."""
    for name in PROTOCOL_NAMES:
        target = parse_target("http://127.0.0.1:8000/x", name, resolve=fake_resolve)
        assert target.make_protocol().name == name


@given(st.text(max_size=80), st.sampled_from([None, *PROTOCOL_NAMES]))
def test_any_target_text_gives_a_target_or_a_configuration_error(
    url: str, protocol: str | None
) -> None:
    try:
        target = parse_target(url, protocol, resolve=fake_resolve)
    except ConfigurationError:
        return
    assert 0 < target.options.port < 65536 and target.protocol in PROTOCOL_NAMES


def test_the_gauge_sums_the_latest_report_of_each_process() -> None:
    clock = [100.0]
    gauge = HeldGauge(lambda: clock[0])
    gauge.report("worker-1", {"held": 300, "connecting": 20, "failed": 1, "dropped": 0})
    clock[0] += 3
    gauge.report("worker-2", {"held": 500, "failed": 2})
    assert gauge.total() == HeldReport(held=800, connecting=20, failed=3, dropped=0)
    clock[0] += 3
    gauge.report("worker-1", {"held": 0, "failed": 1, "dropped": 4})  # its users stopped
    summary = gauge.summary()
    assert (summary["held"], summary["peak_held"], summary["dropped"]) == (500, 800, 4)
    assert summary["processes"]["worker-1"]["peak_held"] == 300
    assert summary["timeline"] == [[0.0, 300], [3.0, 800], [6.0, 500]]


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=10),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(
            st.sampled_from(["held", "connecting", "failed", "dropped", "extra"]),
            st.one_of(st.integers(-5, 10**12), st.floats(), st.text(max_size=3), st.booleans()),
            max_size=5,
        ),
    )
)
def test_a_malformed_report_is_refused_and_changes_nothing(data: object) -> None:
    gauge = HeldGauge(time.monotonic)
    gauge.report("good", {"held": 7})
    try:
        report = gauge.report("other", data)
    except ConfigurationError as exc:
        assert "malformed connection report from other" in str(exc)
        assert gauge.total().held == 7 and gauge.peak == 7
        return
    assert min(report.held, report.connecting, report.failed, report.dropped) >= 0
    assert gauge.total().held == 7 + report.held


def test_the_timeline_is_bounded() -> None:
    gauge = HeldGauge(time.monotonic)
    for held in range(TIMELINE_POINTS + 50):
        gauge.report("w", {"held": held})
    assert len(gauge.timeline) == TIMELINE_POINTS and gauge.peak == TIMELINE_POINTS + 49


# --- a swarm driven one request at a time, heard through its observer ------------------------


class Heard:
    def __init__(self) -> None:
        self.handshakes: list[float] = []
        self.failures: list[str] = []
        self.drops: list[str] = []
        self.answers: list[tuple[int, str, str | None]] = []

    def connected(self, seconds: float) -> None:
        self.handshakes.append(seconds)

    def failed(self, reason: str, detail: str) -> None:
        self.failures.append(reason)

    def dropped(self, reason: str, detail: str) -> None:
        self.drops.append(reason)

    def answered(self, request_id: int, kind: str, seconds: float, error: str | None) -> None:
        assert seconds >= 0
        self.answers.append((request_id, kind, error))


def hanging_app() -> App:
    """A server whose ``echo`` never answers (and whose ping does, as every server's must)."""
    app = App("hangs")

    @app.tool()
    async def echo(text: str) -> str:
        await asyncio.Event().wait()
        return text

    return app


def test_send_reports_each_answer_and_a_timeout_drops_the_stalled_connection() -> None:
    heard = Heard()
    with running("epoll", app=hanging_app()) as server:
        clock = [0.0]
        swarm = Swarm(
            "127.0.0.1", server.port, observer=heard, request_timeout=5.0, clock=lambda: clock[0]
        )
        try:
            swarm.grow(3)
            assert swarm.run_until(lambda: not swarm.growing, time.monotonic() + 10)
            assert len(heard.handshakes) == 3 and heard.failures == []
            first = swarm.send("ping")
            assert first is not None
            assert swarm.run_until(lambda: bool(heard.answers), time.monotonic() + 10)
            assert heard.answers == [(first, "ping", None)]
            stalled = swarm.send("echo")
            second = swarm.send("ping")
            third = swarm.send("ping")
            assert swarm.send("ping") is None  # every connection has a request in flight
            assert swarm.run_until(lambda: len(heard.answers) == 3, time.monotonic() + 10)
            for _ in range(5):
                swarm.poll(0.01)
            assert {answer[0] for answer in heard.answers} == {first, second, third}
            clock[0] += 6.0  # past the request timeout, with no real waiting
            swarm.poll(0.01)
            assert heard.answers[-1] == (stalled, "echo", "timeout")
            assert heard.drops == ["timeout"] and swarm.status().dropped == 1
            with pytest.raises(ConfigurationError, match="no request 'nap'"):
                swarm.send("nap")
        finally:
            swarm.close_all()


def test_a_request_on_a_lost_connection_ends_with_the_reason() -> None:
    heard = Heard()
    with running("epoll", app=hanging_app()) as server:
        swarm = Swarm("127.0.0.1", server.port, observer=heard)
        try:
            swarm.grow(1)
            assert swarm.run_until(lambda: not swarm.growing, time.monotonic() + 10)
            request_id = swarm.send("echo")
            swarm.shrink(0)  # the connection goes while its request is out
            assert heard.answers == [(request_id, "echo", "closed")]
        finally:
            swarm.close_all()
