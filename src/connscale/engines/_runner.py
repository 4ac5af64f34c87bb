"""The call runner both engines share: runs calls on the surface, tracks what is in flight.

A surface that answers synchronously is answered in the same callback that read the
request (no task, no future). An awaitable answer runs as a task, remembered by (session,
request id) only while it runs, so ``notifications/cancelled`` can stop it: a cancelled
call is not answered (the specification says so). Server-to-client requests (sampling,
elicitation, roots) get ids from one counter per worker and wait for their answers in a
dict that holds only the requests in flight, each with a timeout.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
from asyncio import Task
from collections.abc import Awaitable, Mapping
from typing import Any, Final

import msgspec

from connscale.core.protocol.jsonrpc import INTERNAL_ERROR, ClientResponse, encode_request
from connscale.core.protocol.mcp import Call, SessionKey
from connscale.core.protocol.stateless import InputRequired
from connscale.core.protocol.surface import Surface
from connscale.errors import ClientUnreachableError, ProtocolError

__all__ = ["CallRunner", "invoke_surface"]

_log = logging.getLogger("connscale.calls")
_decode = msgspec.json.decode


class _ErrorObject(msgspec.Struct):
    code: int = INTERNAL_ERROR
    message: str = "error"
    data: Any = None


def invoke_surface(surface: Surface, call: Call) -> Any:
    """The surface method that runs ``call``: its result, or an awaitable of it."""
    method = call.method
    if method == "tools/call":
        return surface.call_tool(call.target, call.arguments, call)
    if method == "resources/read":
        return surface.read_resource(call.target, call)
    if method == "prompts/get":
        return surface.get_prompt(call.target, call.arguments, call)
    return surface.complete(call.target, call.arguments, call.context_arguments, call)


def _mark_cancelled(call: Call) -> None:
    """A cancelled call: never answered (MCP), and cleared from its session's pending set."""
    call.cancelled = True
    call.protocol.fail(call, INTERNAL_ERROR, "cancelled")


# What most tools return: never awaitable, so the call skips inspect.isawaitable's checks
# (a Python function and an ABC lookup per call).
_PLAIN_RESULTS: Final = frozenset({dict, list, str, bytes, int, float, bool, type(None)})


class CallRunner:
    """Runs ``Call``s for one engine; ``default_timeout`` bounds server-to-client requests."""

    def __init__(self, surface: Surface, *, default_timeout: float | None = 60.0) -> None:
        self.surface = surface
        self.default_timeout = default_timeout
        self._running: dict[tuple[SessionKey, int | str], tuple[Call, asyncio.Task[None]]] = {}
        self._waiting: dict[int, tuple[SessionKey, asyncio.Future[Any]]] = {}
        # Which calls and requests each session has, while it has any: closing a session
        # then touches its own, not every call in flight (closing N sessions with calls
        # running was O(N^2): 8,000 took over 30 s).
        self._calls_of: dict[SessionKey, set[int | str]] = {}
        self._requests_of: dict[SessionKey, set[int]] = {}
        self._ids = itertools.count(1)

    @property
    def in_flight(self) -> int:
        """Calls running as tasks (sync calls finish before anyone can look)."""
        return len(self._running)

    def start(self, call: Call) -> None:
        """Run ``call`` now; a synchronous answer is sent before this returns."""
        channel = call.channel
        assert channel is not None
        protocol = call.protocol
        try:
            outcome = invoke_surface(self.surface, call)
        except ProtocolError as exc:
            channel.finish_call(call, protocol.fail(call, exc.code, str(exc), exc.data))
            return
        except Exception as exc:  # a bug in the surface must not take the connection down
            _log.exception("%s failed", call)
            channel.finish_call(call, protocol.fail(call, INTERNAL_ERROR, f"internal error: {exc}"))
            return
        if type(outcome) in _PLAIN_RESULTS or not inspect.isawaitable(outcome):
            channel.finish_call(call, protocol.complete(call, outcome))
            return
        task = asyncio.get_running_loop().create_task(self._finish(call, outcome))
        task.add_done_callback(functools.partial(self._cancelled_unfinished, call, outcome))
        self._running[call.key, call.request_id] = (call, task)
        self._calls_of.setdefault(call.key, set()).add(call.request_id)

    def _forget_call(self, call: Call) -> None:
        if self._running.pop((call.key, call.request_id), None) is None:
            return
        calls = self._calls_of.get(call.key)
        if calls is not None:
            calls.discard(call.request_id)
            if not calls:
                del self._calls_of[call.key]

    def _forget_request(self, key: SessionKey, request_id: int) -> None:
        if self._waiting.pop(request_id, None) is None:
            return
        requests = self._requests_of.get(key)
        if requests is not None:
            requests.discard(request_id)
            if not requests:
                del self._requests_of[key]

    def _cancelled_unfinished(
        self, call: Call, awaitable: Awaitable[Any], task: Task[None]
    ) -> None:
        """A task cancelled before ``_finish`` could handle it (before its first step, as when
        the call and its cancellation came in one read): do what ``_finish`` would have."""
        if not task.cancelled():
            return  # _finish ran its course: it catches the call's own cancellation
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # never awaited: close it, or Python warns at collection
        self._forget_call(call)
        _mark_cancelled(call)
        channel = call.channel
        if channel is not None:
            channel.finish_call(call, None)

    async def _finish(self, call: Call, awaitable: Awaitable[Any]) -> None:
        protocol = call.protocol
        channel = call.channel
        assert channel is not None
        try:
            result = await awaitable
        except InputRequired:
            # 2026-07-28: the function asked the client something. Questions asked together
            # (asyncio.gather) raise one after another within a turn of the loop: let them all
            # be asked before answering with the whole round.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            reply = protocol.input_required(call)
        except asyncio.CancelledError:
            _mark_cancelled(call)
            reply = None
        except ProtocolError as exc:
            reply = protocol.fail(call, exc.code, str(exc), exc.data)
        except Exception as exc:
            _log.exception("%s failed", call)
            reply = protocol.fail(call, INTERNAL_ERROR, f"internal error: {exc}")
        else:
            reply = protocol.complete(call, result)
        finally:
            self._forget_call(call)
        if call.cancelled:
            reply = None  # MCP: a cancelled request gets no response
        channel.finish_call(call, reply)

    def cancel(self, key: SessionKey, request_id: int | str) -> bool:
        """``notifications/cancelled``: stop that call; its answer is never sent."""
        entry = self._running.get((key, request_id))
        if entry is None:
            return False  # finished already, or unknown: the specification says ignore it
        call, task = entry
        call.cancelled = True
        task.cancel()
        return True

    def session_closed(self, key: SessionKey) -> None:
        """The session's connection ended: cancel its calls and its requests to the client."""
        for request_id in self._calls_of.get(key, ()):
            running = self._running.get((key, request_id))
            if running is not None:
                running[0].cancelled = True
                running[1].cancel()  # _finish (or _cancelled_unfinished) forgets the call
        for waiting_id in self._requests_of.pop(key, ()):
            waiting = self._waiting.pop(waiting_id, None)
            if waiting is not None and not waiting[1].done():
                waiting[1].set_exception(ClientUnreachableError("the client disconnected"))

    # -- server-to-client requests -------------------------------------------------------------

    def request(
        self, call: Call, method: str, params: Mapping[str, Any] | None, timeout: float | None
    ) -> Awaitable[Any]:
        """A server-to-client request (handshake era; the stateless era never gets here)."""
        return self._request(call, method, params, timeout)

    async def _request(
        self, call: Call, method: str, params: Mapping[str, Any] | None, timeout: float | None
    ) -> Any:
        channel = call.channel
        if channel is None or call.cancelled:
            raise ClientUnreachableError(f"cannot send {method}: the request is over")
        loop = asyncio.get_running_loop()
        request_id = next(self._ids)
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting[request_id] = (call.key, future)
        self._requests_of.setdefault(call.key, set()).add(request_id)
        try:
            if not channel.notify_call(call, encode_request(request_id, method, params)):
                raise ClientUnreachableError(
                    f"cannot send {method}: the client has no open stream to receive it"
                )
            wait = self.default_timeout if timeout is None else timeout
            try:
                return await asyncio.wait_for(future, wait)
            except TimeoutError:
                raise TimeoutError(f"{method}: the client did not answer within {wait} s") from None
        finally:
            self._forget_request(call.key, request_id)

    def answered(self, key: SessionKey, response: ClientResponse) -> bool:
        """The client answered request ``response.id``; False when nothing waits for it."""
        request_id = response.id
        if not isinstance(request_id, int):
            return False
        entry = self._waiting.get(request_id)
        if entry is None or entry[0] != key:
            return False  # unknown, late, or another session's: ignored
        self._forget_request(key, request_id)
        future = entry[1]
        if future.done():
            return False
        if response.error is not None:
            try:
                error = _decode(response.error, type=_ErrorObject)
            except (msgspec.DecodeError, msgspec.ValidationError):
                error = _ErrorObject(message="malformed error from the client")
            future.set_exception(ProtocolError(error.message, error.code, error.data))
        else:
            try:
                result = _decode(response.result) if response.result is not None else None
            except msgspec.DecodeError:
                result = None
            future.set_result(result)
        return True

    def close(self) -> None:
        """Cancel every running call and fail every request still waiting."""
        for call, task in list(self._running.values()):
            call.cancelled = True
            task.cancel()
        for _owner, future in self._waiting.values():
            if not future.done():
                future.cancel()
        self._waiting.clear()
