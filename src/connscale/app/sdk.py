"""Serve a server written for the official MCP Python SDK on connscale, unchanged.

``connscale serve --app myserver.py:mcp`` (or ``connscale.serve(config, app=mcp)``) where
``mcp`` is the SDK's ``MCPServer`` (SDK 2.x, ``mcp.server.mcpserver``) or ``FastMCP`` (SDK
1.x, ``mcp.server.fastmcp``): ``SdkSurface`` is a ``Surface`` over that object, so its
tools, resources, resource templates, prompts and completion handler are served by
connscale's engines, workers and limits in both protocol eras, while the SDK itself still
validates the arguments and converts the results (the JSON is the SDK's own models dumped
as the SDK dumps them: ``model_dump(mode="json", by_alias=True, exclude_none=True)``).

The SDK is imported by nothing here until such an object is given: ``is_sdk_server``
looks only at modules already in ``sys.modules`` (the user's file imported them).

How each SDK feature is carried:

- Listings: the server's public ``list_tools``/``list_resources``/
  ``list_resource_templates``/``list_prompts`` (async methods that never suspend: driven to
  completion synchronously, as ``Surface.listing`` is synchronous), cached until the
  server changes. Tools, resources and prompts added or removed at run time through the
  server's public ``add_*``/``remove_*`` methods (wrapped on the instance), an SDK 2.x
  ``ctx.notify_*_changed()``, or ``ctx.session.send_*_list_changed()`` are announced to
  every session (``notifications/*/list_changed`` and ``subscriptions/listen`` streams).
- Calls: SDK 2.x through its public ``call_tool``/``read_resource``/``get_prompt`` with a
  ``Context`` built for the request, and the SDK's own error mapping (a tool's failure is
  an ``isError`` result with the SDK's text; ``MCPError`` is the JSON-RPC error it
  carries). SDK 1.x through the low-level server's request handlers, because 1.x's public
  ``call_tool`` returns unconverted output and its argument validation, result conversion
  and output-schema check live in the low-level ``tools/call`` handler.
- ``Context``: the SDK's own ``Context`` class, over a session whose messages go through
  connscale's ``CallContext``: ``report_progress`` (when the request carried a progress
  token), ``log``/``debug``/``info``/... (filtered by the client's ``logging/setLevel`` or,
  2026-07-28, by the request's log level), ``elicit``, ``session.create_message`` and
  ``session.list_roots`` (handshake era: server-to-client requests; 2026-07-28: the
  multi-round-trip ``input_required`` flow, so ``ctx.elicit`` works there too), and
  ``read_resource``. SDK 2.x resolvers (``Elicit[T]``, ``Sample``, ``ListRoots``) and tools
  that return an ``InputRequiredResult`` themselves get their questions asked through the
  same flow, their ``request_state`` carried sealed inside connscale's own.
- The server's ``lifespan`` is entered once per worker (on its event loop, when the
  worker starts serving) and left when the worker stops; ``ctx.request_context.
  lifespan_context`` is what it yielded.

What cannot be carried is said at start, naming it (``SdkSurface.problems``): custom
Starlette routes, request or notification handlers for methods other than MCP's own,
middleware and extension interceptors of ``tools/call`` are logged as warnings (the MCP
part is served without them); the SDK's OAuth settings (``auth=``, ``token_verifier``)
are an error, since serving the server without them would drop its protection (use
``connscale serve --token-file`` or a proxy). ``logging/setLevel`` and
``resources/subscribe`` are answered by connscale itself. Differences from the SDK's own
server, all deliberate: ``logging/setLevel`` filters what is sent (the SDK sends every
level in the handshake era); an unknown prompt or a missing prompt argument is error
-32602 (the SDK sends code 0); ``ctx.request_context.request`` (the Starlette request)
and ``ctx.headers`` are None.

SDK 1.x: written against ``FastMCP`` of mcp 1.29 and 1.30 (``mcp<2``). The project's test
suite installs SDK 2.x only, so the 1.x path is not covered there: ``scripts/sdk1_check.py``
checks it by hand in a throwaway environment (the same test servers, the SDK's own server
and connscale answering the 1.x client alike).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import hmac
import importlib
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from connscale.core.protocol.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS
from connscale.core.protocol.stateless import InputRequired
from connscale.core.protocol.surface import (
    LOG_LEVELS,
    LOG_OFF,
    CallContext,
    ListKind,
    ServerInfo,
    Surface,
    SurfaceListener,
)
from connscale.errors import (
    AppLoadError,
    ClientUnreachableError,
    ConfigurationError,
    ProtocolError,
)

__all__ = ["SdkServerInfo", "SdkSurface", "is_sdk_server", "sdk_surface"]

logger = logging.getLogger("connscale.app.sdk")

#: Where the SDK's own ``request_state`` rides inside connscale's sealed ``requestState``.
STATE_KEY: Final = "connscale.sdk/requestState"

#: (module, class) of the server objects served, newest SDK first.
_SERVER_CLASSES: Final = (
    ("mcp.server.mcpserver", "MCPServer"),  # SDK 2.x
    ("mcp.server.fastmcp", "FastMCP"),  # SDK 1.x
)
_LOWLEVEL_CLASS: Final = ("mcp.server.lowlevel.server", "Server")
_LEVEL_RANK: Final = {level: rank for rank, level in enumerate(LOG_LEVELS)}
_LIST_CHANGED: Final[dict[str, ListKind]] = {
    "notifications/tools/list_changed": "tools",
    "notifications/prompts/list_changed": "prompts",
    "notifications/resources/list_changed": "resources",
}
#: Methods the SDK server object registers itself, or that connscale answers itself.
_OWN_METHODS: Final = frozenset(
    {
        "ping",
        "server/discover",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "subscriptions/listen",
    }
)
_CONNSCALE_ANSWERS: Final = frozenset(
    {"logging/setLevel", "resources/subscribe", "resources/unsubscribe"}
)


def _module(name: str) -> Any:
    """An SDK module, imported when a server object of that SDK is served."""
    return importlib.import_module(name)


def _loaded_class(module: str, name: str) -> type | None:
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else None


def is_sdk_server(value: object) -> bool:
    """Whether ``value`` is an official-SDK server object (imports nothing)."""
    for module, name in _SERVER_CLASSES:
        cls = _loaded_class(module, name)
        if cls is not None and isinstance(value, cls):
            return True
    return False


def is_sdk_lowlevel_server(value: object) -> bool:
    """Whether ``value`` is the SDK's low-level ``Server`` (not served: see the error)."""
    cls = _loaded_class(*_LOWLEVEL_CLASS)
    return cls is not None and isinstance(value, cls)


def sdk_surface(server: Any, *, target: str = "app") -> SdkSurface:
    """``server`` (an SDK ``MCPServer`` or ``FastMCP``) as a connscale surface."""
    return SdkSurface(server, target=target)


def _dump(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def _drive(awaitable: Awaitable[Any], what: str) -> Any:
    """Run a coroutine that never suspends (the SDK's list methods) to its value."""
    coroutine: Any = awaitable
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise ConfigurationError(
        f"{what} awaited something; connscale lists synchronously, so the server's list "
        "methods must not wait (override them without awaiting, or register the items)"
    )


@dataclass(frozen=True, slots=True)
class SdkServerInfo(ServerInfo):
    """``ServerInfo`` carrying the fields the SDK adds (``description``, ``icons``)."""

    extra: Mapping[str, Any] | None = None

    def implementation(self) -> dict[str, Any]:
        info = ServerInfo.implementation(self)
        if self.extra:
            info.update(self.extra)
        return info


# -- the surface ---------------------------------------------------------------------------


class SdkSurface:
    """A connscale ``Surface`` over an SDK ``MCPServer`` (2.x) or ``FastMCP`` (1.x)."""

    def __init__(self, server: Any, *, target: str = "app") -> None:
        if hasattr(server, "_lowlevel_server"):
            self._sdk: _Sdk = _Sdk2(self, server)
        elif hasattr(server, "_mcp_server"):
            self._sdk = _Sdk1(self, server)
        else:
            raise AppLoadError(
                f"--app {target!r}: {type(server).__name__} is not an SDK MCPServer or FastMCP"
            )
        self.server = server
        #: What the server has that connscale does not carry (each logged at start).
        self.problems: list[str] = []
        self._target = target
        self._listeners: list[SurfaceListener] = []
        self._listings: dict[ListKind, tuple[dict[str, Any], ...]] = {}
        self._capabilities: dict[str, Any] | None = None
        self._lifespan = _Lifespan(server)
        self._loop: asyncio.AbstractEventLoop | None = None  # the serving worker's loop
        # One key per surface: forked workers share it (the supervisor made the surface).
        self._state_key = secrets.token_bytes(32)
        self._check()
        self._info = self._sdk.server_info()
        self._watch_mutators()
        self._sdk.subscribe_events()

    def __repr__(self) -> str:
        return f"<SdkSurface {self._sdk.flavor} {self._info.name!r}>"

    # -- start: what cannot be carried ------------------------------------------------------

    def _check(self) -> None:
        fatal, warned = self._sdk.uncarried()
        if fatal:
            raise AppLoadError(
                f"--app {self._target!r}: the SDK server uses "
                + "; ".join(fatal)
                + ", which connscale cannot carry"
            )
        for problem in warned:
            self.problems.append(problem)
            logger.warning("connscale: --app %s: %s", self._target, problem)

    # -- Surface ------------------------------------------------------------------------------

    @property
    def info(self) -> ServerInfo:
        return self._info

    def capabilities(self) -> Mapping[str, Any]:
        if self._capabilities is None:
            self._capabilities = self._sdk.capabilities()
        return self._capabilities

    def listing(self, kind: ListKind) -> Sequence[Mapping[str, Any]]:
        cached = self._listings.get(kind)
        if cached is None:
            cached = self._listings[kind] = tuple(self._sdk.listing(kind))
        return cached

    def _serving(self) -> None:
        if self._loop is None or self._loop.is_closed():  # built away from its loop (tests)
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()

    def call_tool(self, name: str, arguments: Mapping[str, Any], context: CallContext) -> Any:
        self._serving()
        return self._sdk.call_tool(name, dict(arguments or {}), context)

    def read_resource(self, uri: str, context: CallContext) -> Any:
        self._serving()
        return self._sdk.read_resource(uri, context)

    def get_prompt(self, name: str, arguments: Mapping[str, str], context: CallContext) -> Any:
        self._serving()
        return self._sdk.get_prompt(name, dict(arguments) if arguments else None, context)

    def complete(
        self,
        ref: Mapping[str, Any],
        argument: Mapping[str, Any],
        context_arguments: Mapping[str, str],
        context: CallContext,
    ) -> Any:
        return self._sdk.complete(dict(ref), dict(argument), dict(context_arguments), context)

    def watch(self, listener: SurfaceListener) -> None:
        self._listeners.append(listener)
        # A worker builds its protocol (which watches) on its event loop: enter the
        # server's lifespan there, before the first request needs it.
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
            self._lifespan.start(self._loop)

    def close(self) -> None:
        """Leave the server's lifespan (a worker's loop also does so as it ends)."""
        self._lifespan.stop()

    # -- changes --------------------------------------------------------------------------------

    def _elsewhere(self) -> asyncio.AbstractEventLoop | None:
        """The serving loop when called from another thread (a sync SDK tool runs in a
        worker thread), else None: watchers are told on the loop's own thread only."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        return None if running is loop else loop

    def changed(self, kind: ListKind) -> None:
        """The server's ``kind`` changed: relist it and tell every watcher."""
        loop = self._elsewhere()
        if loop is not None:
            loop.call_soon_threadsafe(self.changed, kind)
            return
        kinds: tuple[ListKind, ...] = (
            ("resources", "resourceTemplates") if kind == "resources" else (kind,)
        )
        self._capabilities = None
        for each in kinds:
            self._listings.pop(each, None)
        for listener in tuple(self._listeners):
            for each in kinds:
                try:
                    listener.list_changed(each)
                except Exception:
                    logger.exception("a listener failed on list_changed(%r)", each)

    def resource_updated(self, uri: str) -> None:
        """Resource ``uri`` changed: watchers tell its subscribers."""
        loop = self._elsewhere()
        if loop is not None:
            loop.call_soon_threadsafe(self.resource_updated, uri)
            return
        for listener in tuple(self._listeners):
            try:
                listener.resource_updated(uri)
            except Exception:
                logger.exception("a listener failed on resource_updated(%r)", uri)

    def _watch_mutators(self) -> None:
        # The server's public registration methods are wrapped on this instance so that a
        # change at run time reaches clients; the protocol core caches list pages until told.
        server = self.server
        for method, kind in (
            ("add_tool", "tools"),
            ("remove_tool", "tools"),
            ("add_resource", "resources"),
            ("add_prompt", "prompts"),
            ("remove_prompt", "prompts"),
        ):
            original = getattr(server, method, None)
            if original is None or not callable(original):
                continue

            @functools.wraps(original)
            def wrapped(
                *args: Any, _original: Any = original, _kind: Any = kind, **kwargs: Any
            ) -> Any:
                result = _original(*args, **kwargs)
                self.changed(_kind)
                return result

            setattr(server, method, wrapped)

    # -- what the bridges share ------------------------------------------------------------

    async def lifespan_context(self) -> Any:
        return await self._lifespan.value()

    def seal_state(self, state: str) -> dict[str, str]:
        tag = hmac.digest(self._state_key, state.encode(), hashlib.sha256).hex()
        return {"state": state, "tag": tag}

    def open_state(self, sealed: object) -> str | None:
        if not isinstance(sealed, dict):
            return None
        state, tag = sealed.get("state"), sealed.get("tag")
        if not isinstance(state, str) or not isinstance(tag, str):
            return None
        good = hmac.digest(self._state_key, state.encode(), hashlib.sha256).hex()
        return state if hmac.compare_digest(good, tag) else None


def _as_surface(surface: SdkSurface) -> Surface:
    """Never called: mypy checks here that the adapter keeps the protocol core's contract."""
    return surface


# -- the server's lifespan ---------------------------------------------------------------------


class _Lifespan:
    """The server's ``lifespan`` entered once per event loop, in a task of its own."""

    def __init__(self, server: Any) -> None:
        settings = getattr(server, "settings", None)
        self._factory: Callable[[Any], Any] | None = getattr(settings, "lifespan", None)
        self._server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._entered: asyncio.Future[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._factory is None or (self._loop is loop and self._entered is not None):
            return
        self._loop = loop
        self._entered = loop.create_future()
        self._task = loop.create_task(self._hold(self._entered))

    async def _hold(self, entered: asyncio.Future[Any]) -> None:
        assert self._factory is not None
        try:
            async with self._factory(self._server) as value:
                entered.set_result(value)
                await asyncio.Event().wait()  # until the worker's loop cancels it
        except asyncio.CancelledError:
            if not entered.done():
                entered.cancel()
            raise
        except Exception as exc:
            logger.exception("the SDK server's lifespan failed")
            if not entered.done():
                entered.set_exception(exc)

    async def value(self) -> Any:
        if self._factory is None:
            return {}  # what the SDK's default lifespan yields
        self.start(asyncio.get_running_loop())
        assert self._entered is not None
        return await asyncio.shield(self._entered)

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = self._entered = self._loop = None


# -- answering the client (shared by both SDK versions) ------------------------------------------


def _wanted(context: CallContext, params: Mapping[str, Any] | None) -> bool:
    """A log message passes the level the client asked for (setLevel or the request's)."""
    wanted = context.log_level
    if wanted is None:
        return True
    if wanted == LOG_OFF:
        return False
    level = params.get("level") if params else None
    return _LEVEL_RANK.get(str(level), 0) >= _LEVEL_RANK.get(wanted, 0)


def _notify(surface: SdkSurface, context: CallContext, method: str, params: Any) -> None:
    """A notification the SDK sends: change notifications to every session (as connscale
    announces them), the rest to the request's client."""
    kind = _LIST_CHANGED.get(method)
    if kind is not None:
        surface.changed(kind)
    elif method == "notifications/resources/updated":
        uri = params.get("uri") if isinstance(params, Mapping) else None
        if isinstance(uri, str):
            surface.resource_updated(uri)
    elif method != "notifications/message" or _wanted(context, params):
        context.notify(method, params)


def _round(surface: SdkSurface, context: CallContext) -> tuple[dict[str, Any] | None, str | None]:
    """2026-07-28 retry: (the answers the client brought, the SDK's own request state)."""
    # Reaches into the call (connscale's ``Call.envelope``): the answers of earlier rounds
    # live there, and the SDK's request state is kept beside them, sealed with connscale's
    # requestState and tagged by this surface (a client cannot forge it).
    envelope = getattr(context, "envelope", None)
    responses = getattr(envelope, "responses", None)
    if not responses:
        return None, None
    answers = {key: value for key, value in responses.items() if key != STATE_KEY}
    state = None
    if STATE_KEY in responses:
        state = surface.open_state(responses[STATE_KEY])
        if state is None:
            raise ProtocolError(
                "Invalid or expired requestState",
                INVALID_PARAMS,
                {"reason": "invalid_request_state"},
            )
    return answers or None, state


async def _ask(surface: SdkSurface, context: CallContext, result: Any) -> Any:
    """An SDK ``InputRequiredResult``: ask its questions through connscale's round."""
    requests = _dump(result).get("inputRequests") or {}
    state = getattr(result, "request_state", None)
    envelope = getattr(context, "envelope", None)
    if envelope is None:
        raise ProtocolError(
            "the server asked for client input (InputRequiredResult), which only the "
            "2026-07-28 protocol carries",
            INTERNAL_ERROR,
        )
    if state is not None:
        envelope.responses[STATE_KEY] = surface.seal_state(state)
    for key, request in requests.items():
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            continue
        with contextlib.suppress(InputRequired):
            await context.request(request["method"], request.get("params"), key=key)
    raise InputRequired


# -- SDK 2.x ---------------------------------------------------------------------------------------


class _Sdk:
    """What the surface asks of a server object; one subclass per SDK major version."""

    flavor = ""

    def __init__(self, surface: SdkSurface, server: Any) -> None:
        self.surface = surface
        self.server = server

    def uncarried(self) -> tuple[list[str], list[str]]:
        fatal: list[str] = []
        warned: list[str] = []
        server = self.server
        settings = getattr(server, "settings", None)
        if getattr(settings, "auth", None) is not None or getattr(server, "_token_verifier", None):
            fatal.append(
                "OAuth (auth=/token_verifier=; protect connscale with --token-file or a proxy)"
            )
        routes = getattr(server, "_custom_starlette_routes", None) or []
        for route in routes:
            path = getattr(route, "path", route)
            warned.append(f"custom route {path!r} (@custom_route) is not served by connscale")
        return fatal, warned

    def server_info(self) -> ServerInfo:
        raise NotImplementedError

    def capabilities(self) -> dict[str, Any]:
        raise NotImplementedError

    def listing(self, kind: ListKind) -> list[dict[str, Any]]:
        method = {
            "tools": "list_tools",
            "resources": "list_resources",
            "resourceTemplates": "list_resource_templates",
            "prompts": "list_prompts",
        }[kind]
        items = _drive(getattr(self.server, method)(), f"{type(self.server).__name__}.{method}")
        return [_dump(item) for item in items]

    def subscribe_events(self) -> None:
        """Hear of changes the server publishes outside any request (SDK 2.x)."""

    def call_tool(self, name: str, arguments: dict[str, Any], context: CallContext) -> Any:
        raise NotImplementedError

    def read_resource(self, uri: str, context: CallContext) -> Any:
        raise NotImplementedError

    def get_prompt(self, name: str, arguments: dict[str, str] | None, context: CallContext) -> Any:
        raise NotImplementedError

    def complete(
        self,
        ref: dict[str, Any],
        argument: dict[str, Any],
        context_arguments: dict[str, str],
        context: CallContext,
    ) -> Any:
        raise NotImplementedError


def _init_info(options: Any) -> SdkServerInfo:
    """``ServerInfo`` from the low-level server's ``create_initialization_options()``."""
    extra: dict[str, Any] = {}
    description = getattr(options, "description", None)
    if description is not None:
        extra["description"] = description
    icons = getattr(options, "icons", None)
    if icons:
        extra["icons"] = [_dump(icon) for icon in icons]
    return SdkServerInfo(
        name=options.server_name,
        version=options.server_version or "",
        title=getattr(options, "title", None),
        instructions=options.instructions,
        website_url=getattr(options, "website_url", None),
        extra=extra or None,
    )


def _problem_error(exc: Any) -> ProtocolError:
    error = exc.error
    return ProtocolError(error.message, error.code, error.data)


def _prompt_error(exc: Exception) -> ProtocolError:
    text = str(exc)
    code = (
        INVALID_PARAMS
        if text.startswith(("Unknown prompt", "Missing required arguments"))
        else INTERNAL_ERROR
    )
    return ProtocolError(text, code)


class _Sdk2(_Sdk):
    """SDK 2.x ``MCPServer``: its public methods, with a ``Context`` per request."""

    flavor = "MCPServer (SDK 2.x)"

    def __init__(self, surface: SdkSurface, server: Any) -> None:
        super().__init__(surface, server)
        # Imported by name (typed Any): the adapter is checked without either SDK version.
        types = _module("mcp_types")
        exceptions = _module("mcp.server.mcpserver.exceptions")
        shared = _module("mcp.shared.exceptions")
        self.types = types
        self.methods = _module("mcp_types.methods")
        self.Connection = _module("mcp.server.connection").Connection
        self.ServerRequestContext = _module("mcp.server.context").ServerRequestContext
        self.Context = _module("mcp.server.mcpserver").Context
        self.ServerSession = _module("mcp.server.session").ServerSession
        self.MCPError = shared.MCPError
        self.NoBackChannelError = shared.NoBackChannelError
        self.ToolError = exceptions.ToolError
        self.UnexpectedToolError = exceptions.UnexpectedToolError
        self.ResourceError = exceptions.ResourceError
        self.ResourceNotFoundError = exceptions.ResourceNotFoundError
        self.UnexpectedResourceError = exceptions.UnexpectedResourceError
        self.RequestStateBoundary = _module("mcp.server.request_state").RequestStateBoundary
        # A tool that takes no Context (and has no resolvers) never reads the one it is
        # handed: such calls share one, as the SDK itself builds a bare one when given none.
        self.bare_context = self.Context(
            mcp_server=server, subscriptions=getattr(server, "_subscriptions", None)
        )
        self.lowlevel = server._lowlevel_server  # the SDK's own Server: capabilities, info
        self.all_levels = {types.LOG_LEVEL_META_KEY: "debug"}

    def uncarried(self) -> tuple[list[str], list[str]]:
        fatal, warned = super().uncarried()
        lowlevel = self.lowlevel
        server = self.server
        handlers = getattr(lowlevel, "_request_handlers", {})
        for method in sorted(set(handlers) - _OWN_METHODS - _CONNSCALE_ANSWERS):
            warned.append(f"the request handler for {method!r} is not served (clients get -32601)")
        for method in sorted(set(handlers) & _CONNSCALE_ANSWERS):
            logger.info("connscale answers %s itself; the server's handler is not called", method)
        call = lowlevel.get_request_handler("tools/call")
        if call is not None and call.handler != server._handle_call_tool:
            warned.append("extension tools/call interceptors are not run")
        for method in sorted(getattr(lowlevel, "_notification_handlers", {})):
            warned.append(f"the notification handler for {method!r} is not called")
        for middleware in lowlevel.middleware:
            name = type(middleware).__name__
            if not isinstance(middleware, self.RequestStateBoundary) and name != (
                "OpenTelemetryMiddleware"
            ):
                warned.append(f"middleware {name} is not run")
        if getattr(lowlevel, "cache_hints", None):
            warned.append(
                "cache_hints are not used (connscale's own caching hints apply at 2026-07-28)"
            )
        return fatal, warned

    def server_info(self) -> ServerInfo:
        return _init_info(self.lowlevel.create_initialization_options())

    def capabilities(self) -> dict[str, Any]:
        capabilities = _dump(self.lowlevel.create_initialization_options().capabilities)
        if not capabilities.get("extensions"):
            capabilities.pop("extensions", None)  # as the SDK's initialize sends them
        return capabilities

    def result(self, method: str, context: CallContext, model: Any) -> dict[str, Any]:
        """A result as the SDK sends it to this request's protocol version (its own
        per-version sieve; connscale adds ``resultType`` and ``_meta`` at 2026-07-28)."""
        dumped = _dump(model)
        try:
            shaped: dict[str, Any] = self.methods.serialize_server_result(
                method, context.client.protocol_version, dumped
            )
        except KeyError:
            dumped.pop("resultType", None)
            return dumped
        except ValueError as exc:  # pydantic's ValidationError: the handler's bug
            if type(exc).__name__ != "ValidationError":
                dumped.pop("resultType", None)
                return dumped
            logger.exception("handler for %r returned an invalid result", method)
            raise ProtocolError("Handler returned an invalid result", INTERNAL_ERROR) from None
        return shaped

    def subscribe_events(self) -> None:
        # The server's subscription bus (private, ``_subscriptions``): what a tool publishes
        # with ctx.notify_*_changed(), or anything else publishes on it, reaches connscale.
        bus = getattr(self.server, "_subscriptions", None)
        subscribe = getattr(bus, "subscribe", None)
        if callable(subscribe):
            subscribe(self._event)

    def _event(self, event: Any) -> None:
        name = type(event).__name__
        if name == "ToolsListChanged":
            self.surface.changed("tools")
        elif name == "PromptsListChanged":
            self.surface.changed("prompts")
        elif name == "ResourcesListChanged":
            self.surface.changed("resources")
        elif name == "ResourceUpdated":
            self.surface.resource_updated(str(event.uri))

    async def _context(
        self, context: CallContext, method: str, params: Any, input_params: Any = None
    ) -> Any:
        client = context.client
        outbound = _Outbound2(self, context)
        connection = _Connection2(self, context, outbound)
        session = self.ServerSession(outbound, connection, request_meta=self.all_levels)
        request = self.ServerRequestContext(
            session=session,
            lifespan_context=await self.surface.lifespan_context(),
            protocol_version=client.protocol_version,
            method=method,
            params=params,
            request_id=context.request_id,
        )
        return self.Context(
            request_context=request,
            mcp_server=self.server,
            input_params=input_params,
            subscriptions=getattr(self.server, "_subscriptions", None),
        )

    def _input_params(self, model: Any, context: CallContext, **fields: Any) -> Any:
        answers, state = _round(self.surface, context)
        if answers is None and state is None:
            return None
        return model(**fields, input_responses=answers, request_state=state)

    def call_tool(self, name: str, arguments: dict[str, Any], context: CallContext) -> Any:
        return self._call_tool(name, arguments, context)

    def _uses_context(self, name: str) -> bool:
        # The tool registry is private (``_tool_manager``); its ``get_tool`` says whether the
        # tool asks for a Context or has resolvers. Unknown: build one, as always.
        manager = getattr(self.server, "_tool_manager", None)
        tool = manager.get_tool(name) if manager is not None else None
        if tool is None:
            return True
        return bool(getattr(tool, "context_kwarg", True) or getattr(tool, "resolved_params", True))

    async def _call_tool(self, name: str, arguments: dict[str, Any], context: CallContext) -> Any:
        if self._uses_context(name):
            params = {"name": name, "arguments": arguments}
            input_params = self._input_params(
                self.types.CallToolRequestParams, context, name=name, arguments=arguments
            )
            ctx = await self._context(context, "tools/call", params, input_params)
        else:
            ctx = self.bare_context
        try:
            result = await self.server.call_tool(name, arguments, ctx)
        except self.MCPError as exc:
            raise _problem_error(exc) from None
        except Exception as exc:
            # As the SDK's own tools/call handler: a failure is the tool's result.
            if isinstance(exc, self.ToolError) and not isinstance(exc, self.UnexpectedToolError):
                logger.info("Tool %r failed: %r", name, str(exc))
            else:
                logger.exception("Tool %r raised an unexpected exception", name)
            return {"content": [{"type": "text", "text": str(exc)}], "isError": True}
        if isinstance(result, self.types.InputRequiredResult):
            return await _ask(self.surface, context, result)
        return self.result("tools/call", context, result)

    def read_resource(self, uri: str, context: CallContext) -> Any:
        return self._read_resource(uri, context)

    async def _read_resource(self, uri: str, context: CallContext) -> Any:
        input_params = self._input_params(self.types.ReadResourceRequestParams, context, uri=uri)
        ctx = await self._context(context, "resources/read", {"uri": uri}, input_params)
        try:
            results = await self.server.read_resource(uri, ctx)
        except self.MCPError as exc:
            raise _problem_error(exc) from None
        except self.ResourceError as err:
            # As the SDK's own resources/read handler.
            if isinstance(err, self.UnexpectedResourceError):
                logger.exception("Resource %r raised an unexpected exception", uri)
            code = INVALID_PARAMS if isinstance(err, self.ResourceNotFoundError) else INTERNAL_ERROR
            raise ProtocolError(str(err), code, {"uri": uri}) from None
        if isinstance(results, self.types.InputRequiredResult):
            return await _ask(self.surface, context, results)
        contents = {"contents": [_contents(uri, item) for item in results]}
        model = self.types.ReadResourceResult.model_validate(contents)
        return self.result("resources/read", context, model)

    def get_prompt(self, name: str, arguments: dict[str, str] | None, context: CallContext) -> Any:
        return self._get_prompt(name, arguments, context)

    async def _get_prompt(
        self, name: str, arguments: dict[str, str] | None, context: CallContext
    ) -> Any:
        input_params = self._input_params(
            self.types.GetPromptRequestParams, context, name=name, arguments=arguments
        )
        params = {"name": name, "arguments": arguments}
        ctx = await self._context(context, "prompts/get", params, input_params)
        try:
            result = await self.server.get_prompt(name, arguments, ctx)
        except self.MCPError as exc:
            raise _problem_error(exc) from None
        except Exception as exc:
            raise _prompt_error(exc) from None
        if isinstance(result, self.types.InputRequiredResult):
            return await _ask(self.surface, context, result)
        return self.result("prompts/get", context, result)

    def complete(
        self,
        ref: dict[str, Any],
        argument: dict[str, Any],
        context_arguments: dict[str, str],
        context: CallContext,
    ) -> Any:
        return self._complete(ref, argument, context_arguments, context)

    async def _complete(
        self,
        ref: dict[str, Any],
        argument: dict[str, Any],
        context_arguments: dict[str, str],
        context: CallContext,
    ) -> Any:
        # The completion handler is reachable only through the low-level server (public
        # there): MCPServer registers it under completion/complete and has no method for it.
        entry = self.lowlevel.get_request_handler("completion/complete")
        if entry is None:
            return {"completion": {"values": []}}
        raw: dict[str, Any] = {"ref": ref, "argument": argument}
        if context_arguments:
            raw["context"] = {"arguments": context_arguments}
        try:
            params = entry.params_type.model_validate(raw, by_name=False)
        except Exception as exc:
            raise ProtocolError(f"Invalid completion request: {exc}", INVALID_PARAMS) from None
        ctx = await self._context(context, "completion/complete", raw)
        try:
            result = await entry.handler(ctx.request_context, params)
        except self.MCPError as exc:
            raise _problem_error(exc) from None
        if isinstance(result, dict):
            result = self.types.CompleteResult.model_validate(result)
        return self.result("completion/complete", context, result)


def _contents(uri: str, item: Any) -> dict[str, Any]:
    """A ``ReadResourceContents`` as the SDK's resources/read handler builds it."""
    import base64

    contents: dict[str, Any] = {"uri": uri}
    content = item.content
    if isinstance(content, bytes):
        contents["blob"] = base64.b64encode(content).decode()
        contents["mimeType"] = item.mime_type or "application/octet-stream"
    else:
        contents["text"] = content
        contents["mimeType"] = item.mime_type or "text/plain"
    meta = getattr(item, "meta", None)
    if meta is not None:
        contents["_meta"] = meta
    return contents


class _Outbound2:
    """The SDK 2.x request-scoped channel (its ``DispatchContext``) over a ``CallContext``."""

    __slots__ = ("_call", "_sdk")

    def __init__(self, sdk: _Sdk2, call: CallContext) -> None:
        self._sdk = sdk
        self._call = call

    @property
    def can_send_request(self) -> bool:
        return True

    @property
    def request_id(self) -> Any:
        return self._call.request_id

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: Any = None
    ) -> dict[str, Any]:
        timeout = opts.get("timeout") if isinstance(opts, Mapping) else None
        try:
            answer = await self._call.request(method, params, timeout=timeout)
        except ProtocolError as exc:
            raise self._sdk.MCPError(exc.code, str(exc), exc.data) from None
        except ClientUnreachableError:
            raise self._sdk.NoBackChannelError(method) from None
        return answer if isinstance(answer, dict) else {}

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> None:
        _notify(self._sdk.surface, self._call, method, params)

    async def progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        token = self._call.progress_token
        if token is None:
            return
        params: dict[str, Any] = {"progressToken": token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        self._call.notify("notifications/progress", params)


class _Connection2:
    """The SDK 2.x per-client ``Connection`` as far as its ``ServerSession`` reads it."""

    __slots__ = ("_call", "_capabilities", "_sdk", "outbound", "protocol_version", "session_id")

    def __init__(self, sdk: _Sdk2, call: CallContext, outbound: _Outbound2) -> None:
        self._sdk = sdk
        self._call = call
        self._capabilities: Any = _UNSET
        self.outbound = outbound
        client = call.client
        self.protocol_version = client.protocol_version
        self.session_id = client.session_id

    @property
    def client_capabilities(self) -> Any:
        if self._capabilities is _UNSET:
            declared = self._call.client.capabilities
            self._capabilities = (
                None
                if declared is None
                else self._sdk.types.ClientCapabilities.model_validate(
                    _plain(declared), by_name=False
                )
            )
        return self._capabilities

    @property
    def client_params(self) -> Any:
        client = self._call.client
        if client.name is None:
            return None
        types = self._sdk.types
        return types.InitializeRequestParams(
            protocol_version=client.protocol_version,
            capabilities=self.client_capabilities or types.ClientCapabilities(),
            client_info=types.Implementation(name=client.name, version=client.version or ""),
        )

    def check_capability(self, capability: Any) -> bool:
        # The SDK's own rule, run on this object (it reads only client_capabilities).
        return bool(self._sdk.Connection.check_capability(self, capability))


_UNSET: Final = object()


def _plain(value: Any) -> Any:
    """Capabilities as plain dicts and lists (connscale interns them as mappings)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


# -- SDK 1.x ---------------------------------------------------------------------------------------


class _Sdk1(_Sdk):
    """SDK 1.x ``FastMCP``: the low-level server's request handlers, with ``request_ctx`` set.

    1.x's public ``call_tool`` returns unconverted output (the argument validation, result
    conversion and output-schema check live in the low-level ``tools/call`` handler), and its
    ``Context`` comes from the ``request_ctx`` context variable, so the handlers are called
    the way the 1.x low-level server calls them.
    """

    flavor = "FastMCP (SDK 1.x)"

    def __init__(self, surface: SdkSurface, server: Any) -> None:
        super().__init__(surface, server)
        types = _module("mcp.types")
        self.types = types
        self.request_ctx: contextvars.ContextVar[Any] = _module(
            "mcp.server.lowlevel.server"
        ).request_ctx
        self.RequestContext = _module("mcp.shared.context").RequestContext
        self.McpError = _module("mcp.shared.exceptions").McpError
        self.lowlevel = server._mcp_server
        self.Session = _session1_class(_module("mcp.server.session").ServerSession)

    def uncarried(self) -> tuple[list[str], list[str]]:
        fatal, warned = super().uncarried()
        types = self.types
        own = {
            types.PingRequest,
            types.ListToolsRequest,
            types.CallToolRequest,
            types.ListResourcesRequest,
            types.ListResourceTemplatesRequest,
            types.ReadResourceRequest,
            types.ListPromptsRequest,
            types.GetPromptRequest,
            types.CompleteRequest,
            types.SetLevelRequest,
            types.SubscribeRequest,
            types.UnsubscribeRequest,
        }
        for request in self.lowlevel.request_handlers:
            if request not in own:
                warned.append(f"the request handler for {request.__name__} is not served")
        for notification in self.lowlevel.notification_handlers:
            warned.append(f"the notification handler for {notification.__name__} is not called")
        return fatal, warned

    def server_info(self) -> ServerInfo:
        return _init_info(self.lowlevel.create_initialization_options())

    def capabilities(self) -> dict[str, Any]:
        return _dump(self.lowlevel.create_initialization_options().capabilities)

    async def _handle(self, context: CallContext, request: Any) -> Any:
        types = self.types
        token = context.progress_token
        meta = types.RequestParams.Meta(progressToken=token) if token is not None else None
        request_context = self.RequestContext(
            request_id=context.request_id,
            meta=meta,
            session=self.Session(self.surface, context, types),
            lifespan_context=await self.surface.lifespan_context(),
        )
        handler = self.lowlevel.request_handlers[type(request)]
        reset = self.request_ctx.set(request_context)
        try:
            result = await handler(request)
        except self.McpError as exc:
            raise _problem_error(exc) from None
        finally:
            self.request_ctx.reset(reset)
        return _dump(getattr(result, "root", result))

    def call_tool(self, name: str, arguments: dict[str, Any], context: CallContext) -> Any:
        types = self.types
        request = types.CallToolRequest(
            method="tools/call", params=types.CallToolRequestParams(name=name, arguments=arguments)
        )
        return self._handle(context, request)

    def read_resource(self, uri: str, context: CallContext) -> Any:
        return self._read_resource(uri, context)

    async def _read_resource(self, uri: str, context: CallContext) -> Any:
        types = self.types
        try:
            request = types.ReadResourceRequest(
                method="resources/read", params=types.ReadResourceRequestParams(uri=uri)
            )
        except Exception as exc:
            raise ProtocolError(
                f"Invalid resource URI: {exc}", INVALID_PARAMS, {"uri": uri}
            ) from None
        try:
            return await self._handle(context, request)
        except ProtocolError:
            raise
        except Exception as exc:
            text = str(exc)
            code = INVALID_PARAMS if text.startswith("Unknown resource") else INTERNAL_ERROR
            raise ProtocolError(text, code, {"uri": uri}) from None

    def get_prompt(self, name: str, arguments: dict[str, str] | None, context: CallContext) -> Any:
        return self._get_prompt(name, arguments, context)

    async def _get_prompt(
        self, name: str, arguments: dict[str, str] | None, context: CallContext
    ) -> Any:
        types = self.types
        params = types.GetPromptRequestParams(name=name, arguments=arguments)
        request = types.GetPromptRequest(method="prompts/get", params=params)
        try:
            return await self._handle(context, request)
        except ProtocolError:
            raise
        except Exception as exc:
            raise _prompt_error(exc) from None

    def complete(
        self,
        ref: dict[str, Any],
        argument: dict[str, Any],
        context_arguments: dict[str, str],
        context: CallContext,
    ) -> Any:
        return self._complete(ref, argument, context_arguments, context)

    async def _complete(
        self,
        ref: dict[str, Any],
        argument: dict[str, Any],
        context_arguments: dict[str, str],
        context: CallContext,
    ) -> Any:
        types = self.types
        if types.CompleteRequest not in self.lowlevel.request_handlers:
            return {"completion": {"values": []}}
        raw: dict[str, Any] = {"ref": ref, "argument": argument}
        if context_arguments:
            raw["context"] = {"arguments": context_arguments}
        try:
            params = types.CompleteRequestParams.model_validate(raw)
        except Exception as exc:
            raise ProtocolError(f"Invalid completion request: {exc}", INVALID_PARAMS) from None
        request = types.CompleteRequest(method="completion/complete", params=params)
        try:
            return await self._handle(context, request)
        except ProtocolError:
            raise
        except Exception as exc:
            raise ProtocolError(str(exc), INTERNAL_ERROR) from None


def _session1_class(base: Any) -> Any:
    """The SDK 1.x ``ServerSession`` with its two sending methods over a ``CallContext``.

    Its typed helpers (``send_log_message``, ``send_progress_notification``,
    ``create_message``, ``elicit_form``, ``list_roots``, ...) are the SDK's own; they build
    the message and call ``send_request`` or ``send_notification``, which go to connscale.
    ``BaseSession.__init__`` (streams, a receive loop) is not run: nothing else is used.
    """

    class Session1(base):  # type: ignore[misc]
        def __init__(self, surface: SdkSurface, call: CallContext, types: Any) -> None:
            self._connscale = (surface, call, types)

        @property
        def client_params(self) -> Any:
            _surface, call, types = self._connscale
            client = call.client
            return types.InitializeRequestParams(
                protocolVersion=client.protocol_version,
                capabilities=types.ClientCapabilities.model_validate(
                    _plain(client.capabilities or {})
                ),
                clientInfo=types.Implementation(
                    name=client.name or "", version=client.version or ""
                ),
            )

        def check_client_capability(self, capability: Any) -> bool:
            self._client_params = self.client_params
            return bool(base.check_client_capability(self, capability))

        async def send_request(
            self,
            request: Any,
            result_type: Any,
            request_read_timeout_seconds: Any = None,
            metadata: Any = None,
            progress_callback: Any = None,
        ) -> Any:
            _surface, call, types = self._connscale
            data = _dump(getattr(request, "root", request))
            timeout = request_read_timeout_seconds
            if timeout is not None and not isinstance(timeout, int | float):
                timeout = timeout.total_seconds()
            try:
                answer = await call.request(data["method"], data.get("params"), timeout=timeout)
            except ProtocolError as exc:
                raise _module("mcp.shared.exceptions").McpError(
                    types.ErrorData(code=exc.code, message=str(exc), data=exc.data)
                ) from None
            return result_type.model_validate(answer)

        async def send_notification(
            self, notification: Any, related_request_id: Any = None
        ) -> None:
            surface, call, _types = self._connscale
            data = _dump(getattr(notification, "root", notification))
            _notify(surface, call, data["method"], data.get("params"))

    return Session1
