"""docs/SERVER.md cannot drift from the code: its examples run here.

The guide's conventions, read from the Markdown itself:

- Every fenced ``python`` block runs, each as a module of its own; then every ``test_*``
  function it defined is called. A block whose first line starts with ``# fragment`` is only
  compiled. A block that imports ``mcp`` (the official SDK) runs when the SDK is installed.
- A ``json`` block after ``<!-- result: METHOD PARAMS -->`` is what the last connscale block's
  ``app`` answers to that request, compared exactly over a real session.
- A ``python`` block after ``<!-- example: NAME -->`` is exercised by ``CHECKS[NAME]`` below,
  which calls it the way a client would (progress, questions to the client, both protocol
  eras, notifications); every named example has a check and every check an example.
- A ``json`` block after ``<!-- config: KEY -->`` is a host's configuration: its commands must
  parse as ``connscale serve`` arguments, as must every ``connscale serve`` line of the ``sh``
  blocks and every ``--flag`` the page names.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import inspect
import json
import logging
import re
import shlex
import socket
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connscale.cli import build_parser
from connscale.cli import serve as serve_command
from connscale.testing import serve_in_thread
from support import load_file

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "SERVER.md"


# tests/app/app_fakes.py (the recording CallContext), which is not on sys.path here.
_fakes = load_file("docs_app_fakes", "tests/app/app_fakes.py")
FakeCall = _fakes.FakeCall
settle = _fakes.settle


# -- reading the guide ---------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, code, first line in the file and the directive before."""

    language: str
    code: str
    line: int
    directive: str | None

    @property
    def fragment(self) -> bool:
        return self.code.lstrip().startswith("# fragment")

    @property
    def needs_sdk(self) -> bool:
        return re.search(r"^\s*(from|import) mcp\b", self.code, re.MULTILINE) is not None

    def named(self, kind: str) -> str | None:
        """The argument of a ``<!-- kind: ... -->`` directive, if this block has one."""
        if self.directive is None or not self.directive.startswith(kind + ":"):
            return None
        return self.directive[len(kind) + 1 :].strip()


_FENCE = re.compile(r"^```(\w*)\s*$")
_DIRECTIVE = re.compile(r"^<!--\s*(.*?)\s*-->$")


def parse(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    previous = ""  # the last non-blank line outside a block
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            if lines[index].strip():
                previous = lines[index].strip()
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        assert index < len(lines), f"SERVER.md:{start + 1}: a code block is never closed"
        directive = _DIRECTIVE.match(previous)
        blocks.append(
            Block(
                opening.group(1),
                "\n".join(body) + "\n",
                start + 1,
                directive.group(1) if directive else None,
            )
        )
        previous = ""
        index += 1
    return blocks


TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = parse(TEXT)
PYTHON = [block for block in BLOCKS if block.language == "python"]


def _sdk_missing() -> bool:
    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError:
        return True
    return False


SDK_MISSING = _sdk_missing()


@contextmanager
def module_of(block: Block) -> Iterator[dict[str, Any]]:
    """Run ``block`` as a module (msgspec and typing resolve names through sys.modules)."""
    name = f"docs_server_md_line_{block.line}"
    module = types.ModuleType(name)
    module.__file__ = str(DOC)
    sys.modules[name] = module
    try:
        exec(compile(block.code, f"{DOC}:{block.line}", "exec"), module.__dict__)
        yield module.__dict__
    finally:
        sys.modules.pop(name, None)
        close = getattr(module.__dict__.get("app"), "close", None)
        if callable(close):
            close()  # the blocking-call thread pool, if a call started it


def test_the_guide_has_what_these_tests_expect() -> None:
    assert len(PYTHON) >= 20
    assert any(block.needs_sdk and not block.fragment for block in PYTHON)
    assert any(block.named("result") for block in BLOCKS)


# -- every python block runs ---------------------------------------------------------------


def _param(block: Block) -> Any:
    """A block as a test parameter; those that need the SDK carry the ``sdk`` mark."""
    marks = [pytest.mark.sdk] if block.needs_sdk and not block.fragment else []
    return pytest.param(block, marks=marks, id=f"line{block.line}")


@pytest.mark.parametrize("block", [_param(block) for block in PYTHON])
def test_every_python_example_runs(block: Block) -> None:
    if block.fragment:
        compile(block.code, f"{DOC}:{block.line}", "exec")
        return
    if block.needs_sdk and SDK_MISSING:
        pytest.skip("needs the official MCP SDK (the 'sdk' extra)")
    with module_of(block) as namespace:
        tests = [
            value
            for key, value in namespace.items()
            if key.startswith("test_") and callable(value)
            if getattr(value, "__module__", None) == namespace["__name__"]
        ]
        for test in tests:
            test()


# -- results shown are what the server answers --------------------------------------------


def _results() -> list[tuple[Block, list[Block]]]:
    """Each connscale block with the ``result`` blocks that follow it."""
    pairs: list[tuple[Block, list[Block]]] = []
    for block in BLOCKS:
        if block.language == "python" and not block.fragment and not block.needs_sdk:
            pairs.append((block, []))
        elif block.named("result") is not None:
            assert pairs, f"SERVER.md:{block.line}: a result before any example"
            assert block.language == "json", f"SERVER.md:{block.line}: a result is JSON"
            pairs[-1][1].append(block)
    return [(source, results) for source, results in pairs if results]


RESULTS = _results()


class LineSession:
    """A handshake-era MCP session over TCP (newline-delimited JSON-RPC)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.stream = self.sock.makefile("rwb")
        self.ids = 0
        self.notifications: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.stream.write(json.dumps(message).encode() + b"\n")
        self.stream.flush()

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request; notifications that came first are kept."""
        self.ids += 1
        self.send({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params})
        while True:
            line = self.stream.readline()
            assert line, f"the server closed the connection during {method}"
            message = json.loads(line)
            if "id" not in message:
                self.notifications.append(message)
                continue
            assert message["id"] == self.ids
            return dict(message)

    def initialize(self, capabilities: dict[str, Any] | None = None) -> None:
        reply = self.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": capabilities or {},
                "clientInfo": {"name": "docs-test", "version": "1"},
            },
        )
        assert "result" in reply, reply
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def result(self, method: str, params: dict[str, Any]) -> Any:
        reply = self.request(method, params)
        assert "result" in reply, reply
        return reply["result"]

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


@contextmanager
def session(app: object) -> Iterator[LineSession]:
    with serve_in_thread(app) as server:
        client = LineSession(server.port)
        try:
            client.initialize()
            yield client
        finally:
            client.close()


@pytest.mark.parametrize(
    ("source", "results"), RESULTS, ids=[f"line{source.line}" for source, _ in RESULTS]
)
def test_results_shown_are_what_the_server_answers(source: Block, results: list[Block]) -> None:
    with module_of(source) as namespace, session(namespace["app"]) as client:
        for block in results:
            request = block.named("result")
            assert request is not None
            method, _, params = request.partition(" ")
            shown = json.loads(block.code)
            answered = client.result(method, json.loads(params or "{}"))
            assert answered == shown, f"SERVER.md:{block.line}: {method} answers {answered}"


# -- named examples, exercised as a client would -------------------------------------------


def check_progress(namespace: dict[str, Any], tmp_path: Path) -> None:
    app = namespace["app"]
    call = FakeCall(progress_token="t1")
    result = settle(app.call_tool("index", {"paths": ["a.txt", "b.txt"]}, call))
    assert result["content"] == [{"type": "text", "text": "indexed 2 files"}]
    progress = [params for method, params in call.notifications if method.endswith("progress")]
    assert [(p["progress"], p["total"], p["message"]) for p in progress] == [
        (1, 2, "indexed a.txt"),
        (2, 2, "indexed b.txt"),
    ]
    logs = [params for method, params in call.notifications if method == "notifications/message"]
    assert logs == [
        {"level": "info", "data": "indexing 2 files"},
        {"level": "debug", "data": "index complete", "logger": "indexer"},
    ]
    # No progress token: no progress; a session that asked for warnings: no info or debug.
    quiet = FakeCall(log_level="warning")
    settle(app.call_tool("index", {"paths": ["a.txt"]}, quiet))
    assert quiet.notifications == []


_ASK_CAPABILITIES = {"elicitation": {"form": {}}, "sampling": {}, "roots": {}}


def check_ask(namespace: dict[str, Any], tmp_path: Path) -> None:
    app = namespace["app"]
    answers = {
        "elicitation/create": {
            "action": "accept",
            "content": {"travellers": 2, "seat": "aisle", "meals": ["vegan"]},
        },
        "sampling/createMessage": {
            "role": "assistant",
            "content": {"type": "text", "text": "Take the night train."},
            "model": "a-model",
        },
        "roots/list": {"roots": [{"uri": "file:///home/me/trips", "name": "trips"}]},
    }
    call = FakeCall(capabilities=_ASK_CAPABILITIES, answers=answers)
    result = settle(app.call_tool("plan_trip", {"destination": "Lisbon"}, call))
    assert result == {
        "content": [
            {
                "type": "text",
                "text": "Take the night train. (seat: aisle; notes go to file:///home/me/trips)",
            }
        ],
        "isError": False,
    }
    methods = [method for method, _, _ in call.requests]
    assert methods == ["elicitation/create", "sampling/createMessage", "roots/list"]
    form = call.requests[0][1]["requestedSchema"]["properties"]
    assert form["travellers"] == {"type": "integer", "default": 1}
    assert form["seat"]["oneOf"] == [
        {"const": "window", "title": "By the window"},
        {"const": "aisle", "title": "On the aisle"},
    ]
    assert form["meals"]["items"] == {"type": "string", "enum": ["vegetarian", "vegan", "halal"]}
    assert call.requests[1][1]["maxTokens"] == 60
    declined = FakeCall(
        capabilities=_ASK_CAPABILITIES, answers={"elicitation/create": {"action": "decline"}}
    )
    result = settle(app.call_tool("plan_trip", {"destination": "Lisbon"}, declined))
    assert result["content"][0]["text"] == "no trip planned (the user chose decline)"
    # A client that cannot fill in forms: the tool's error names the capability.
    result = settle(app.call_tool("plan_trip", {"destination": "Lisbon"}, FakeCall()))
    assert result["isError"] and "'elicitation' capability" in result["content"][0]["text"]


_MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
}


def check_rounds(namespace: dict[str, Any], tmp_path: Path) -> None:
    app = namespace["app"]
    pattern = str(tmp_path / "*.log")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    arguments = {"pattern": pattern}
    # 2026-07-28: round one asks and deletes nothing; round two brings the answer.
    for log in logs:
        log.write_text("x")
    with serve_in_thread(app) as server:
        client = LineSession(server.port)
        try:
            params: dict[str, Any] = {"name": "delete_logs", "arguments": arguments}
            first = client.result("tools/call", {**params, "_meta": _MODERN_META})
            assert first["resultType"] == "input_required"
            shown = next(block for block in BLOCKS if '"input_required"' in block.code)
            assert first["inputRequests"] == json.loads(shown.code)["inputRequests"]
            [key] = first["inputRequests"]
            assert all(log.exists() for log in logs), "deleted before the question's answer"
            retry = {
                **params,
                "_meta": _MODERN_META,
                "inputResponses": {key: {"action": "accept", "content": {"ok": True}}},
                "requestState": first["requestState"],
            }
            second = client.result("tools/call", retry)
            assert second["resultType"] == "complete"
            assert second["content"] == [{"type": "text", "text": "deleted 2 files"}]
            assert not any(log.exists() for log in logs)
        finally:
            client.close()
    # The handshake era: the same function asks once, mid-call.
    for log in logs:
        log.write_text("x")
    call = FakeCall(
        capabilities={"elicitation": {}},
        answers={"elicitation/create": {"action": "accept", "content": {"ok": True}}},
    )
    result = settle(app.call_tool("delete_logs", arguments, call))
    assert result["content"] == [{"type": "text", "text": "deleted 2 files"}]
    assert len(call.requests) == 1 and not any(log.exists() for log in logs)


def check_subscribe(namespace: dict[str, Any], tmp_path: Path) -> None:
    uri = "thermostat://target"
    with session(namespace["app"]) as client:
        assert client.result("resources/subscribe", {"uri": uri}) == {}
        answer = client.result("tools/call", {"name": "set_target", "arguments": {"degrees": 23}})
        assert answer["content"] == [{"type": "text", "text": "target set to 23"}]
        assert client.notifications == [
            {
                "jsonrpc": "2.0",
                "method": "notifications/resources/updated",
                "params": {"uri": uri},
            }
        ]
        read = client.result("resources/read", {"uri": uri})
        assert read["contents"][0]["text"] == "23"


def check_runtime(namespace: dict[str, Any], tmp_path: Path) -> None:
    def names(client: LineSession) -> list[str]:
        return [tool["name"] for tool in client.result("tools/list", {})["tools"]]

    changed = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    with session(namespace["app"]) as client:
        assert "greet" not in names(client)
        client.result("tools/call", {"name": "enable_greeter", "arguments": {"greeting": "Hi"}})
        assert client.notifications == [changed]
        assert "greet" in names(client)
        hello = client.result("tools/call", {"name": "greet", "arguments": {"name": "Ada"}})
        assert hello["content"] == [{"type": "text", "text": "Hi, Ada!"}]
        client.result("tools/call", {"name": "disable_greeter", "arguments": {}})
        assert client.notifications == [changed, changed]
        assert "greet" not in names(client)


def check_first_tool_sdk(namespace: dict[str, Any], tmp_path: Path) -> None:
    """The guide says the SDK lists the tool with titles and answers the call the same."""
    from mcp.server.mcpserver import MCPServer

    mcp = namespace["mcp"]
    assert isinstance(mcp, MCPServer)

    async def ask() -> tuple[Any, Any]:
        return await mcp.list_tools(), await mcp.call_tool("add", {"a": 2, "b": 3})

    [tool], result = asyncio.run(ask())
    assert tool.input_schema["properties"]["a"]["title"] == "A"
    assert tool.output_schema["title"] == "addOutput"
    shown = next(
        block for block in BLOCKS if (block.named("result") or "").startswith("tools/call")
    )
    answered = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert {key: answered[key] for key in json.loads(shown.code)} == json.loads(shown.code)


def check_returns(namespace: dict[str, Any], tmp_path: Path) -> None:
    app = namespace["app"]
    tools = {tool["name"]: tool for tool in app.listing("tools")}
    assert set(tools["stats"]["outputSchema"]["properties"]) == {"count", "mean"}
    assert not any("outputSchema" in tools[name] for name in ("chart", "report", "check"))
    image = settle(app.call_tool("chart", {}, FakeCall()))["content"]
    assert image == [
        {
            "type": "image",
            "data": base64.b64encode(namespace["PNG"]).decode(),
            "mimeType": "image/png",
        }
    ]
    blocks = settle(app.call_tool("report", {}, FakeCall()))["content"]
    assert [block["type"] for block in blocks] == ["text", "resource", "resource_link"]
    assert blocks[1]["resource"]["uri"] == "report://latest"
    refused = settle(app.call_tool("check", {"value": -1}, FakeCall()))
    assert refused["isError"] and "structuredContent" not in refused
    fine = settle(app.call_tool("check", {"value": 5}, FakeCall()))
    assert fine == {
        "content": [{"type": "text", "text": "5 is fine"}],
        "isError": False,
        "structuredContent": {"ok": True},
    }


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def check_errors(namespace: dict[str, Any], tmp_path: Path) -> None:
    app = namespace["app"]
    records = _Records()
    logger = logging.getLogger("connscale.app")
    logger.addHandler(records)
    try:
        settle(app.call_tool("read", {"name": "todo.txt"}, FakeCall()))
    finally:
        logger.removeHandler(records)
    [record] = records.records
    assert record.exc_info is not None and record.exc_info[0] is FileNotFoundError
    with session(app) as client:
        refused = client.request("tools/call", {"name": "admin_only", "arguments": {}})
        assert refused["error"] == {"code": -32600, "message": "this server does not allow that"}
        unknown = client.request("tools/call", {"name": "write", "arguments": {}})
        assert unknown["error"]["code"] == -32602


def check_blocking(namespace: dict[str, Any], tmp_path: Path) -> None:
    app = namespace["app"]
    inline = app.call_tool("word_count", {"text": "one two three"}, FakeCall())
    assert inline["structuredContent"] == {"result": 3}  # answered at once: no awaitable
    threads: list[str] = []
    # The example's time.sleep stands for blocking I/O: see which thread runs it.
    namespace["time"] = types.SimpleNamespace(
        sleep=lambda seconds: threads.append(threading.current_thread().name)
    )
    pending = app.call_tool("slow_hash", {"data": "x", "rounds": 2}, FakeCall())
    assert inspect.isawaitable(pending)
    result = settle(pending)
    digest = hashlib.sha256(hashlib.sha256(b"x").digest()).digest()
    assert result["content"] == [{"type": "text", "text": digest.hex()}]
    assert len(threads) == 1 and threads[0].startswith("connscale-blocking")
    assert inspect.isawaitable(waiting := app.call_tool("wait", {"seconds": 0}, FakeCall()))
    assert settle(waiting)["content"] == [{"type": "text", "text": "done"}]


def check_cancel(namespace: dict[str, Any], tmp_path: Path) -> None:
    running: set[str] = namespace["RUNNING"]
    with serve_in_thread(namespace["app"]) as server:
        client = LineSession(server.port)
        try:
            client.initialize()
            job = {"name": "long_job", "arguments": {"name": "nightly"}}
            client.send({"jsonrpc": "2.0", "id": "job", "method": "tools/call", "params": job})
            deadline = time.monotonic() + 5  # waits for the task to start, not for a timeout
            while not server.call(lambda: "nightly" in running):
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.005)
            cancel = {"requestId": "job", "reason": "the user changed their mind"}
            client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel})
            assert client.result("ping", {}) == {}  # the next reply is the ping's
            assert not server.call(lambda: "nightly" in running)  # its finally ran
            assert client.notifications == []  # and the cancelled call got no answer
        finally:
            client.close()


CHECKS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "progress": check_progress,
    "ask": check_ask,
    "rounds": check_rounds,
    "subscribe": check_subscribe,
    "runtime": check_runtime,
    "first-tool-sdk": check_first_tool_sdk,
    "returns": check_returns,
    "errors": check_errors,
    "blocking": check_blocking,
    "cancel": check_cancel,
}
NAMED = {name: block for block in PYTHON if (name := block.named("example")) is not None}


def test_every_named_example_has_a_check_and_every_check_an_example() -> None:
    assert set(NAMED) == set(CHECKS)


def _check_param(name: str) -> Any:
    block = NAMED.get(name)
    marks = [pytest.mark.sdk] if block is not None and block.needs_sdk else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_check_param(name) for name in sorted(CHECKS)])
def test_named_example_behaves_as_the_guide_says(name: str, tmp_path: Path) -> None:
    block = NAMED.get(name)
    if block is None:
        pytest.fail(f"no example named {name!r} in SERVER.md")
    if block.needs_sdk and SDK_MISSING:
        pytest.skip("needs the official MCP SDK (the 'sdk' extra)")
    with module_of(block) as namespace:
        CHECKS[name](namespace, tmp_path)


# -- commands and configurations parse -----------------------------------------------------


def _serve_arguments(words: list[str]) -> list[str]:
    """The arguments after ``serve`` of a command that runs ``connscale serve``."""
    index = words.index("serve")
    assert Path(words[index - 1]).name == "connscale", words
    return words[index + 1 :]


def _parses(arguments: list[str]) -> Any:
    try:
        return build_parser().parse_args(["serve", *arguments])
    except SystemExit:
        pytest.fail(f"connscale serve {shlex.join(arguments)} does not parse")


def _commands() -> list[list[str]]:
    commands = []
    for block in BLOCKS:
        if block.language != "sh":
            continue
        joined = block.code.replace("\\\n", " ")
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            if "serve" in words and any(Path(word).name == "connscale" for word in words):
                commands.append(words)
    return commands


def test_every_serve_command_shown_parses() -> None:
    commands = _commands()
    assert len(commands) >= 5
    for words in commands:
        _parses(_serve_arguments(words))


def test_host_configurations_are_json_that_launch_stdio() -> None:
    configs = [block for block in BLOCKS if block.named("config") is not None]
    assert {block.named("config") for block in configs} == {"mcpServers", "servers"}
    for block in configs:
        key = block.named("config")
        assert key is not None
        servers = json.loads(block.code)[key]
        assert servers
        for server in servers.values():
            args = _parses(_serve_arguments([server["command"], *server["args"]]))
            assert args.transport == "stdio" and args.app.endswith(":app")


def test_every_flag_named_is_an_option_of_serve() -> None:
    parser = argparse.ArgumentParser()
    serve_command.add_arguments(parser)
    options = {flag for action in parser._actions for flag in action.option_strings}
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", TEXT))
    assert named, "the guide names no option"
    assert named <= options, f"not options of connscale serve: {sorted(named - options)}"
