"""Locust users that hold many connections each, with connscale's low-memory client.

Locust runs the ramp (``locust --master`` with ``--worker`` processes on many machines, a
spawn rate, a run time, its web UI or ``--headless``); each ``ConnscaleUser`` holds
``connections`` connections through one ``Swarm`` (one epoll set, a few hundred bytes per
held connection) instead of one socket per user, so one Locust worker holds thousands.
What happens is reported the Locust way: each handshake, request (ping, tool call, ...),
failure and dropped connection is a request event (``request_type`` is the protocol's
name), and the connections held are a gauge summed over every worker on the master.

The target is Locust's ``--host``: ``tcp://HOST:PORT`` speaks MCP over TCP,
``http://HOST:PORT/mcp`` MCP Streamable HTTP, ``ws://HOST:PORT/PATH`` WebSocket; any
protocol of ``connscale.loadgen.protocols.PROTOCOLS`` may be named instead (``protocol``
or ``--connscale-protocol``), so a protocol module added there is spoken here unchanged.

Importing this module imports Locust, which monkey-patches the process for gevent: import
it from a locustfile only (the top package ``connscale`` never imports it). The swarm
keeps the unpatched ``select.epoll`` and ``socket.socket``, and its epoll fd is waited on
through gevent, so nothing blocks the other users.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar
from weakref import WeakKeyDictionary

import gevent
import gevent.event
import gevent.monkey
import msgspec
from locust import User, constant, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from connscale.errors import ConfigurationError, LoadError, TargetRefusedError
from connscale.loadgen.driven import HeldGauge, HeldReport, parse_target
from connscale.loadgen.swarm import Swarm, parse_mix

#: The key of a worker's report to the master that carries its connection counts.
REPORT_KEY = "connscale_connections"
#: How often the master logs the connections held (seconds).
LOG_INTERVAL = 10.0

_EPOLL = gevent.monkey.get_original("select", "epoll")
_SOCKET = gevent.monkey.get_original("socket", "socket")
_log = logging.getLogger("connscale.locust")


class _Process:
    """This Locust process's swarms and counts (what its report to the master says)."""

    def __init__(self) -> None:
        self.swarms: set[Swarm] = set()
        self.failed = 0
        self.dropped = 0
        self.users = itertools.count()
        self.first_detail: dict[str, str] = {}
        #: This process's own --connscale-sources: the addresses are the machine's, so a
        #: worker's own option wins over the master's (which Locust copies to workers).
        self.own_sources: str | None = None

    def report(self) -> HeldReport:
        statuses = [swarm.status() for swarm in self.swarms]
        return HeldReport(
            held=sum(status.established for status in statuses),
            connecting=sum(status.connecting for status in statuses),
            failed=self.failed,
            dropped=self.dropped,
        )

    def explain(self, reason: str, detail: str) -> None:
        """Log the first detail of each reason once (failure names stay few in Locust)."""
        if reason not in self.first_detail:
            self.first_detail[reason] = detail
            _log.warning("connscale: first %s: %s", reason, detail[:300])


_process = _Process()
_gauges: WeakKeyDictionary[Environment, HeldGauge] = WeakKeyDictionary()


class _Reporter:
    """A user's swarm observer: every event becomes a Locust request event."""

    def __init__(self, user: ConnscaleUser, request_type: str) -> None:
        self._fire = user.environment.events.request.fire
        self._type = request_type
        self.open: set[int] = set()  # ids of the running task's requests, not answered yet
        self.early: set[int] = set()  # answered before the task noted them (a failed write)
        self.done = gevent.event.Event()

    def _event(self, name: str, seconds: float, error: str | None) -> None:
        self._fire(
            request_type=self._type,
            name=name,
            response_time=seconds * 1000.0,
            response_length=0,
            exception=None if error is None else TargetRefusedError(error),
            context={},
        )

    def connected(self, seconds: float) -> None:
        self._event("handshake", seconds, None)

    def failed(self, reason: str, detail: str) -> None:
        _process.failed += 1
        _process.explain(reason, detail)
        self._event("handshake", 0.0, f"no connection: {reason}")

    def dropped(self, reason: str, detail: str) -> None:
        _process.dropped += 1
        _process.explain(reason, detail)
        self._event("held", 0.0, f"dropped: {reason}")

    def answered(self, request_id: int, kind: str, seconds: float, error: str | None) -> None:
        self._event(kind, seconds, error)
        if request_id in self.open:
            self.open.discard(request_id)
            if not self.open:
                self.done.set()
        else:
            self.early.add(request_id)


def _option(user: ConnscaleUser, name: str, default: Any) -> Any:
    """A ``--connscale-NAME`` option when given, else the user class's attribute."""
    options = user.environment.parsed_options
    value = getattr(options, f"connscale_{name}", None) if options is not None else None
    return default if value is None else value


class ConnscaleUser(User):
    """A Locust user holding ``connections`` connections to ``--host`` (abstract: subclass it
    in your locustfile, setting the class attributes; ``--connscale-*`` options override).

    Each run of its task sends ``concurrency`` requests, drawn from ``mix`` (None: the
    protocol's default, ``""``: hold only) on idle connections, and waits for their answers
    (at most ``request_timeout``); ``wait_time`` paces the tasks as for any Locust user.
    ``sources``: local addresses to connect from, one per user in turn (each source address
    reaches one server port about 28,000 times: spread a large load over several).
    """

    abstract = True
    wait_time = constant(1.0)

    protocol: ClassVar[str | None] = None
    connections: ClassVar[int] = 100
    mix: ClassVar[str | None] = None
    concurrency: ClassVar[int] = 1
    probe: ClassVar[str | None] = None
    sources: ClassVar[tuple[str, ...]] = ()
    max_handshakes: ClassVar[int] = 64
    handshake_timeout: ClassVar[float] = 15.0
    request_timeout: ClassVar[float] = 30.0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.swarm: Swarm | None = None
        self._pump: gevent.Greenlet | None = None
        self._reporter: _Reporter | None = None
        self._kinds: Iterator[str] | None = None

    def on_start(self) -> None:
        if not self.host:
            raise ConfigurationError("give the target as --host, e.g. tcp://127.0.0.1:8000")
        target = parse_target(self.host, _option(self, "protocol", self.protocol), probe=self.probe)
        protocol = target.make_protocol()
        connections = int(_option(self, "connections", self.connections))
        if connections < 1:
            raise ConfigurationError(f"connections must be at least 1, not {connections}")
        mix = _option(self, "mix", self.mix)
        if mix is None:
            mix = protocol.traffic_mix()
        if mix:
            weighted = parse_mix(mix, protocol.request_kinds)
            drawn = random.choices(
                [kind for kind, _ in weighted], [weight for _, weight in weighted], k=1024
            )
            self._kinds = itertools.cycle(drawn)
        sources = _process.own_sources or _option(self, "sources", None)
        addresses = tuple(sources.split(",")) if sources else self.sources
        source = addresses[next(_process.users) % len(addresses)] if addresses else None
        self._reporter = _Reporter(self, protocol.name)
        self.swarm = Swarm(
            target.address,
            target.options.port,
            protocol=protocol,
            sources=((source, 1 << 30),),
            max_handshakes=self.max_handshakes,
            handshake_timeout=self.handshake_timeout,
            observer=self._reporter,
            request_timeout=self.request_timeout,
            poller=_EPOLL,
            socket_type=_SOCKET,
        )
        _process.swarms.add(self.swarm)
        self.swarm.grow(connections)
        self._pump = gevent.spawn(_pump, self.swarm)
        while self.swarm.growing:  # this user's ramp; the swarm bounds every handshake
            gevent.sleep(0.05)
            self._check_pump()

    def _check_pump(self) -> None:
        """A pump that died is this user's error, not a silent stall."""
        pump = self._pump
        if pump is not None and pump.dead and pump.exception is not None:
            raise LoadError(f"the connection pump failed: {pump.exception!r}")

    def on_stop(self) -> None:
        if self._pump is not None:
            self._pump.kill(block=True, timeout=1.0)  # its watcher goes before the epoll fd
            self._pump = None
        if self.swarm is not None:
            _process.swarms.discard(self.swarm)
            self.swarm.close_all()
            self.swarm = None

    @task
    def request(self) -> None:
        """Send ``concurrency`` requests on idle connections and wait for their answers."""
        self._check_pump()
        swarm, reporter, kinds = self.swarm, self._reporter, self._kinds
        if swarm is None or reporter is None or kinds is None:
            return  # hold only
        reporter.done.clear()
        for _ in range(max(1, int(_option(self, "concurrency", self.concurrency)))):
            request_id = swarm.send(next(kinds))
            if request_id is None:
                break  # every held connection is busy (or none is held now)
            if request_id in reporter.early:
                reporter.early.discard(request_id)
            else:
                reporter.open.add(request_id)
        if reporter.open:
            reporter.done.wait(self.request_timeout + 1.0)
        reporter.open.clear()  # what is still out is reported when it ends, not waited for
        reporter.early.clear()


def _pump(swarm: Swarm) -> None:
    """Run a swarm inside gevent: wait on its epoll fd cooperatively, then let it work.

    The wait is a watcher on gevent's own loop (select() would refuse fds over 1,023, and
    a worker holding thousands of sockets has them); every 0.1 s at least, ``poll`` also
    opens due connections and expires timeouts.
    """
    hub = gevent.get_hub()
    watcher = hub.loop.io(swarm.fileno(), 1)  # 1: readable
    try:
        while True:
            with gevent.Timeout(0.1, False):
                hub.wait(watcher)
            swarm.poll(0)
    finally:
        watcher.close()


# --- the gauge: connections held, summed over every worker, on the master ------------------------


def _add_options(parser: Any, **_: Any) -> None:
    parser.add_argument(
        "--connscale-protocol",
        help="protocol to speak (default from --host: tcp:// mcp, http:// mcp-http, "
        "ws:// websocket); any name of connscale's load generator",
    )
    parser.add_argument("--connscale-connections", type=int, help="connections held per user")
    parser.add_argument(
        "--connscale-mix", help="request mix, e.g. ping=0.8,echo=0.2; '' holds only"
    )
    parser.add_argument(
        "--connscale-concurrency", type=int, help="requests each task sends at once"
    )
    parser.add_argument(
        "--connscale-sources",
        help="local addresses to connect from, comma-separated (a worker's own option wins "
        "over the master's: the addresses are its machine's)",
    )
    parser.add_argument(
        "--connscale-summary",
        help="master: write the connections held and request totals here as JSON at exit",
        include_in_web_ui=False,
    )


def _on_init(environment: Environment, **_: Any) -> None:
    gauge = HeldGauge(time.monotonic)
    _gauges[environment] = gauge
    options = environment.parsed_options
    _process.own_sources = getattr(options, "connscale_sources", None) if options else None
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def report(client_id: str, data: dict[str, Any], **_: Any) -> None:
            data[REPORT_KEY] = msgspec.to_builtins(_process.report())

        _listen(environment.events.report_to_master, report)
        return
    last_log = [0.0]

    def observe(source: str, data: object) -> None:
        try:
            gauge.report(source, data)
        except ConfigurationError as exc:
            _log.warning("connscale: %s", exc)
            return
        if time.monotonic() - last_log[0] >= LOG_INTERVAL:
            last_log[0] = time.monotonic()
            total = gauge.total()
            _log.info(
                "connscale: %d connections held (peak %d), %d opening, %d failed, %d dropped",
                total.held,
                gauge.peak,
                total.connecting,
                total.failed,
                total.dropped,
            )

    if isinstance(runner, MasterRunner):

        def worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
            if REPORT_KEY in data:
                observe(str(client_id), data[REPORT_KEY])

        _listen(environment.events.worker_report, worker_report)
    else:  # a local run: this process is its own only worker

        def sample() -> None:
            while True:
                report = _process.report()
                observe("local", msgspec.to_builtins(report))
                gevent.sleep(1.0)

        _listen(
            environment.events.test_start,
            lambda **_: _local.__setitem__(environment, gevent.spawn(sample)),
        )
        _listen(environment.events.test_stop, lambda **_: _stop_local(environment))
    web_ui = environment.web_ui
    if web_ui is not None and web_ui.app is not None:
        web_ui.app.add_url_rule(
            "/connscale", "connscale", lambda: summary(environment), methods=["GET"]
        )
    _listen(environment.events.quitting, lambda **_: _finish(environment))


_local: WeakKeyDictionary[Environment, gevent.Greenlet] = WeakKeyDictionary()


def _stop_local(environment: Environment) -> None:
    sampler = _local.pop(environment, None)
    if sampler is not None:
        sampler.kill(block=False)
    gauge = _gauges.get(environment)
    if gauge is not None:
        gauge.report("local", msgspec.to_builtins(_process.report()))


def summary(environment: Environment) -> dict[str, Any]:
    """The gauge and Locust's request totals, as the master (or a local run) sees them."""
    gauge = _gauges.get(environment)
    result: dict[str, Any] = gauge.summary() if gauge is not None else {}
    stats = environment.stats
    result["requests"] = {
        f"{entry.method} {entry.name}": {
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "median_ms": entry.median_response_time,
            "p99_ms": entry.get_response_time_percentile(0.99),
        }
        for entry in stats.entries.values()
    }
    result["total"] = {
        "requests": stats.total.num_requests,
        "failures": stats.total.num_failures,
    }
    return result


def _finish(environment: Environment) -> None:
    """At exit: log the figures; write them to ``--connscale-summary`` when given."""
    if isinstance(environment.runner, WorkerRunner):
        return
    result = summary(environment)
    _log.info(
        "connscale: peak %d connections held; %d requests, %d failures",
        result.get("peak_held", 0),
        result["total"]["requests"],
        result["total"]["failures"],
    )
    options = environment.parsed_options
    path = getattr(options, "connscale_summary", None) if options is not None else None
    if path:
        Path(path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def _listen(hook: Any, handler: Callable[..., None]) -> None:
    """Add ``handler`` to a Locust event hook (``EventHook.add_listener`` is untyped)."""
    hook.add_listener(handler)


_listen(events.init_command_line_parser, _add_options)
_listen(events.init, _on_init)

__all__ = ["LOG_INTERVAL", "REPORT_KEY", "ConnscaleUser", "summary"]
