"""``App``: tools, resources, prompts and completions registered by decorators; a ``Surface``.

Registration does the work once (``_signature``): a msgspec Struct for the arguments, the
input and output schemas, a caller specialised for the signature, and the descriptor the
client lists. A call is then a dict lookup, one ``msgspec.convert``, the call and a small
result dict. Listings and capabilities are cached and rebuilt only when the app changes.

How results come back (the protocol core relies on this):

- ``call_tool`` returns the ``CallToolResult`` dict at once for a sync tool (run inline on the
  loop), and an awaitable (a coroutine, no Task created) for an async tool or a
  ``blocking=True`` one (run in the App's bounded thread pool). Bad arguments give an
  ``isError`` result at once, even for async tools. A tool that raises gives an ``isError``
  result and is logged; only ``ProtocolError`` raised by a tool passes through, as the
  JSON-RPC error it describes. An unknown tool raises ``ProtocolError(-32602)``.
- ``read_resource`` / ``get_prompt`` / ``complete`` return a result dict or an awaitable of
  one, and raise ``ProtocolError``: -32002 for an unknown resource (``data: {"uri": ...}``),
  -32602 for an unknown prompt or reference, missing or invalid arguments, -32603 when the
  function itself fails (logged with its traceback).

Change the app (add or remove) on the event loop's thread; watchers are told at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import re
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import msgspec

from connscale.app._content import (
    Annotations,
    Completion,
    Icon,
    ToolAnnotations,
    error_result,
    prompt_messages,
    resource_contents,
    to_builtins,
    unstructured_result,
)
from connscale.app._context import Context
from connscale.app._schema import decode_hook
from connscale.app._signature import (
    FunctionInfo,
    argument_error,
    inspect_function,
    is_context_annotation,
    output_plan,
)
from connscale.app._templates import UriTemplate
from connscale.clock import Timer, monotonic
from connscale.core.protocol.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS
from connscale.core.protocol.mcp import RESOURCE_NOT_FOUND
from connscale.core.protocol.surface import (
    CallContext,
    ListKind,
    ServerInfo,
    Surface,
    SurfaceListener,
)
from connscale.errors import ClientUnreachableError, ConfigurationError, ProtocolError

__all__ = ["App", "CompletionArgument", "PromptRef", "ResourceTemplateRef"]

logger = logging.getLogger("connscale.app")

F = TypeVar("F", bound=Callable[..., Any])
Result = dict[str, Any]
Call = Callable[[Any, CallContext], Any]

#: ``completion/complete`` answers at most this many values (the specification's limit).
MAX_COMPLETIONS: Final = 100
#: Tool names as the specification recommends them (SEP-986).
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}\Z")


# -- completion references --------------------------------------------------------------------


class PromptRef(msgspec.Struct, frozen=True, tag_field="type", tag="ref/prompt"):
    """A completion request about one of a prompt's arguments."""

    name: str


class ResourceTemplateRef(msgspec.Struct, frozen=True, tag_field="type", tag="ref/resource"):
    """A completion request about one of a resource template's variables."""

    uri: str


class CompletionArgument(msgspec.Struct, frozen=True):
    """The argument being completed and what the user typed so far."""

    name: str
    value: str


# -- registered entries -------------------------------------------------------------------------


class _Entry:
    """A registered tool, resource, template or prompt: its descriptor and how to run it."""

    __slots__ = ("call", "descriptor", "info", "key", "mime_type", "template")

    def __init__(
        self,
        key: str,
        descriptor: dict[str, Any],
        call: Call,
        info: FunctionInfo | None = None,
        *,
        template: UriTemplate | None = None,
        mime_type: str | None = None,
    ) -> None:
        self.key = key
        self.descriptor = descriptor
        self.call = call
        self.info = info
        self.template = template
        self.mime_type = mime_type


def _put(descriptor: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        descriptor[key] = value


def _part(value: Annotations | ToolAnnotations | Mapping[str, Any] | None) -> Any:
    return to_builtins(value) if value is not None else None


def _icons(icons: Sequence[Icon | Mapping[str, Any]] | None) -> list[Any] | None:
    return None if icons is None else [to_builtins(icon) for icon in icons]


class App:
    """An MCP server's tools, resources, prompts and completions, served by connscale.

    ``App("name", version=..., instructions=..., title=...)``; register with
    ``@app.tool()``, ``@app.resource(uri)``, ``@app.prompt()``, ``@app.completion()``.

    ``request_timeout``: default seconds a ``Context`` waits for the client (None: no limit).
    ``blocking_threads``: size of the pool that runs ``blocking=True`` functions (created on
    first use). ``slow_call_threshold``: seconds after which a sync function that ran on the
    loop is logged once as slow. ``timer``: the clock used to measure that (injectable).
    """

    def __init__(
        self,
        name: str,
        *,
        version: str = "0.1.0",
        title: str | None = None,
        instructions: str | None = None,
        website_url: str | None = None,
        request_timeout: float | None = 60.0,
        blocking_threads: int = 8,
        slow_call_threshold: float = 0.25,
        timer: Timer = monotonic,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"an App needs a non-empty str name, got {name!r}")
        if request_timeout is not None and not request_timeout > 0:
            raise ConfigurationError(f"request_timeout must be > 0 or None, not {request_timeout}")
        if isinstance(blocking_threads, bool) or not isinstance(blocking_threads, int):
            raise ConfigurationError(f"blocking_threads must be an int, not {blocking_threads!r}")
        if blocking_threads < 1:
            raise ConfigurationError(f"blocking_threads must be >= 1, not {blocking_threads}")
        if not slow_call_threshold > 0:
            raise ConfigurationError(f"slow_call_threshold must be > 0, not {slow_call_threshold}")
        self._info = ServerInfo(name, version, title, instructions, website_url)
        self._request_timeout = request_timeout
        self._blocking_threads = blocking_threads
        self._slow_call_threshold = slow_call_threshold
        self._timer = timer
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._tools: dict[str, _Entry] = {}
        self._resources: dict[str, _Entry] = {}
        self._templates: dict[str, _Entry] = {}
        self._prompts: dict[str, _Entry] = {}
        self._completion: Call | None = None
        self._listeners: list[SurfaceListener] = []
        self._listings: dict[ListKind, tuple[dict[str, Any], ...]] = {}
        self._capabilities: dict[str, Any] | None = None
        # A kind stays advertised once the app has had one (see capabilities()).
        self._kinds_seen: set[str] = set()
        self._warned_slow: set[str] = set()

    # -- identity -------------------------------------------------------------------------------

    @property
    def info(self) -> ServerInfo:
        """Who the server is (``serverInfo`` and ``instructions``)."""
        return self._info

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def request_timeout(self) -> float | None:
        """Default seconds a Context request waits for the client."""
        return self._request_timeout

    def __repr__(self) -> str:
        return (
            f"<App {self._info.name!r}: {len(self._tools)} tools, {len(self._resources)} "
            f"resources, {len(self._templates)} templates, {len(self._prompts)} prompts>"
        )

    # -- tools ------------------------------------------------------------------------------------

    def tool(
        self,
        name: str | None = None,
        *,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | Mapping[str, Any] | None = None,
        icons: Sequence[Icon | Mapping[str, Any]] | None = None,
        meta: Mapping[str, Any] | None = None,
        structured_output: bool | None = None,
        blocking: bool = False,
    ) -> Callable[[F], F]:
        """Register a function as a tool; its schema comes from its type hints and docstring.

        ``structured_output``: None derives an ``outputSchema`` from a data return type, True
        insists on one, False never sends structured content. ``blocking=True`` runs a sync
        function in the App's thread pool so that it cannot stall the event loop.
        """
        _check_called("tool", name)

        def register(function: F) -> F:
            self.add_tool(
                function,
                name,
                title=title,
                description=description,
                annotations=annotations,
                icons=icons,
                meta=meta,
                structured_output=structured_output,
                blocking=blocking,
            )
            return function

        return register

    def add_tool(
        self,
        function: Callable[..., Any],
        name: str | None = None,
        *,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | Mapping[str, Any] | None = None,
        icons: Sequence[Icon | Mapping[str, Any]] | None = None,
        meta: Mapping[str, Any] | None = None,
        structured_output: bool | None = None,
        blocking: bool = False,
    ) -> None:
        """Register ``function`` as a tool (the decorator's non-decorator form)."""
        info = inspect_function(function, kind="tool", name=name)
        _check_blocking(info, blocking)
        plan = output_plan(info, structured_output)
        descriptor: dict[str, Any] = {"name": info.name}
        _put(descriptor, "title", title)
        _put(
            descriptor, "description", description if description is not None else info.description
        )
        descriptor["inputSchema"] = info.input_schema
        _put(descriptor, "outputSchema", plan.schema if plan is not None else None)
        _put(descriptor, "annotations", _part(annotations))
        _put(descriptor, "icons", _icons(icons))
        _put(descriptor, "_meta", dict(meta) if meta is not None else None)
        if plan is not None:
            finish = plan.convert
        elif structured_output is False:

            def finish(value: Any) -> Result:
                return unstructured_result(value, structured=False)

        else:
            finish = unstructured_result
        call = self._tool_call(info, finish, blocking)
        self._add("tools", self._tools, _Entry(info.name, descriptor, call, info))

    def raw_tool(
        self,
        name: str | None = None,
        *,
        input_schema: Mapping[str, Any],
        output_schema: Mapping[str, Any] | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | Mapping[str, Any] | None = None,
        icons: Sequence[Icon | Mapping[str, Any]] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Callable[[F], F]:
        """Register ``function(arguments) -> CallToolResult dict`` with no conversion at all."""
        _check_called("raw_tool", name)

        def register(function: F) -> F:
            self.add_raw_tool(
                function,
                name,
                input_schema=input_schema,
                output_schema=output_schema,
                title=title,
                description=description,
                annotations=annotations,
                icons=icons,
                meta=meta,
            )
            return function

        return register

    def add_raw_tool(
        self,
        function: Callable[[Any], Any],
        name: str | None = None,
        *,
        input_schema: Mapping[str, Any],
        output_schema: Mapping[str, Any] | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | Mapping[str, Any] | None = None,
        icons: Sequence[Icon | Mapping[str, Any]] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """A tool that gets the arguments as sent and returns its result dict (or awaitable).

        For callers who validate themselves and want zero overhead; its exceptions still
        become ``isError`` results.
        """
        own_name = name or getattr(function, "__name__", None)
        if not isinstance(own_name, str) or own_name == "<lambda>":
            raise ConfigurationError(f"give this raw tool a name (name=...): {function!r}")
        if not isinstance(input_schema, Mapping) or input_schema.get("type") != "object":
            raise ConfigurationError(
                f"raw tool {own_name!r}: input_schema must be a JSON Schema object with "
                '"type": "object"'
            )
        descriptor: dict[str, Any] = {"name": own_name}
        _put(descriptor, "title", title)
        summary = inspect.getdoc(function)
        _put(descriptor, "description", description if description is not None else summary)
        descriptor["inputSchema"] = dict(input_schema)
        _put(descriptor, "outputSchema", dict(output_schema) if output_schema else None)
        _put(descriptor, "annotations", _part(annotations))
        _put(descriptor, "icons", _icons(icons))
        _put(descriptor, "_meta", dict(meta) if meta is not None else None)
        failed = self._failure_reporter(own_name)

        async def finish_async(awaitable: Awaitable[Any]) -> Any:
            try:
                return await awaitable
            except ProtocolError:
                raise
            except Exception as exc:
                return failed(exc)

        def call(arguments: Any, context: CallContext) -> Any:
            try:
                result = function(arguments)
            except ProtocolError:
                raise
            except Exception as exc:
                return failed(exc)
            if inspect.isawaitable(result):
                return finish_async(result)
            return result

        self._add("tools", self._tools, _Entry(own_name, descriptor, call))

    def remove_tool(self, name: str) -> None:
        """Remove tool ``name``; watchers are told the tool list changed."""
        self._remove("tools", self._tools, name)

    def _failure_reporter(self, name: str) -> Callable[[Exception], Result]:
        def failed(exc: Exception) -> Result:
            if isinstance(exc, ClientUnreachableError):
                # The client went away (or has no stream) while the tool waited on it: an
                # everyday event, not a server error; a traceback per call would flood the
                # log when many clients leave at once.
                logger.info("tool %r stopped: %s", name, exc)
            else:
                logger.error("tool %r raised %s", name, type(exc).__name__, exc_info=exc)
            return error_result(f"Error executing tool {name}: {exc}")

        return failed

    def _tool_call(
        self, info: FunctionInfo, finish: Callable[[Any], Result], blocking: bool
    ) -> Call:
        """The per-tool caller: convert, call, convert back, with every failure a result."""
        convert = msgspec.convert
        validation_error = msgspec.ValidationError
        arguments_type = info.arguments_type
        # msgspec.convert pays ~150 ns for any keyword argument: the callers below pass the
        # pydantic hook only to functions that need it.
        hook = decode_hook if info.needs_hook else None
        invoke = info.invoke
        name = info.name
        wants_context = info.context_parameter is not None
        failed = self._failure_reporter(name)
        # A str from a tool without an output schema is built inline: the common case.
        plain_text = finish is unstructured_result

        def invalid(exc: msgspec.ValidationError) -> Result:
            return error_result(argument_error(exc, "tool", name, "argument"))

        def prepare(arguments: Any, call_context: CallContext) -> tuple[Any, Context | None]:
            """The tool's arguments converted and its Context (raises ``validation_error``)."""
            if hook is None:
                converted = convert(arguments, arguments_type)
            else:
                converted = convert(arguments, arguments_type, dec_hook=hook)
            return converted, Context(call_context, self) if wants_context else None

        def calling(run: Callable[[Any, Context | None], Awaitable[Result]]) -> Call:
            """The caller of an async or blocking tool: convert here, run in ``run``."""

            def call(arguments: Any, call_context: CallContext) -> Any:
                try:
                    converted, context = prepare(arguments, call_context)
                except validation_error as exc:
                    return invalid(exc)
                return run(converted, context)

            return call

        def finished(value: Any) -> Result:
            try:
                return finish(value)
            except Exception as exc:  # a return value that does not fit the declared type
                logger.error("tool %r returned an unusable value", name, exc_info=exc)
                return error_result(f"Error executing tool {name}: bad return value: {exc}")

        if info.is_async:

            async def run_async(arguments: Any, context: Context | None) -> Result:
                try:
                    value = await invoke(arguments, context)
                except ProtocolError:
                    raise
                except Exception as exc:
                    return failed(exc)
                if plain_text and type(value) is str:
                    return {"content": [{"type": "text", "text": value}], "isError": False}
                return finished(value)

            return calling(run_async)

        if blocking:

            async def run_blocking(arguments: Any, context: Context | None) -> Result:
                loop = asyncio.get_running_loop()
                try:
                    value = await loop.run_in_executor(self._pool(), invoke, arguments, context)
                except ProtocolError:
                    raise
                except Exception as exc:
                    return failed(exc)
                return finished(value)

            return calling(run_blocking)

        timer = self._timer
        threshold = self._slow_call_threshold

        def call_sync(arguments: Any, call_context: CallContext) -> Any:
            try:
                converted, context = prepare(arguments, call_context)
            except validation_error as exc:
                return invalid(exc)
            started = timer()
            try:
                value = invoke(converted, context)
            except ProtocolError:
                raise
            except Exception as exc:
                return failed(exc)
            finally:
                elapsed = timer() - started
                if elapsed > threshold:
                    self._slow("tool", name, elapsed)
            if plain_text and type(value) is str:
                return {"content": [{"type": "text", "text": value}], "isError": False}
            return finished(value)

        return call_sync

    # -- resources --------------------------------------------------------------------------------

    def resource(
        self,
        uri: str,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        size: int | None = None,
        annotations: Annotations | Mapping[str, Any] | None = None,
        icons: Sequence[Icon | Mapping[str, Any]] | None = None,
        meta: Mapping[str, Any] | None = None,
        blocking: bool = False,
    ) -> Callable[[F], F]:
        """Register a function as a resource: a fixed URI, or a template such as
        ``"users://{id}/profile"`` whose variables are the function's parameters.

        It returns str (text), bytes (a base64 blob) or any JSON-able value (JSON text).
        """
        if callable(uri):
            raise ConfigurationError("use @app.resource(uri), with the resource's URI")

        def register(function: F) -> F:
            self.add_resource(
                function,
                uri,
                name=name,
                title=title,
                description=description,
                mime_type=mime_type,
                size=size,
                annotations=annotations,
                icons=icons,
                meta=meta,
                blocking=blocking,
            )
            return function

        return register

    def add_resource(
        self,
        function: Callable[..., Any],
        uri: str,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        size: int | None = None,
        annotations: Annotations | Mapping[str, Any] | None = None,
        icons: Sequence[Icon | Mapping[str, Any]] | None = None,
        meta: Mapping[str, Any] | None = None,
        blocking: bool = False,
    ) -> None:
        """Register ``function`` as the resource (or resource template) ``uri``."""
        template = UriTemplate(uri)
        info = inspect_function(function, kind="resource", name=name)
        _check_blocking(info, blocking)
        parameters = {parameter.name for parameter in info.parameters}
        if parameters != set(template.variables):
            raise ConfigurationError(
                f"resource {uri!r}: the function's parameters {sorted(parameters)} must be the "
                f"URI template's variables {sorted(template.variables)}"
            )
        optional = {p.name for p in info.parameters if not p.required}
        if missing := [v for v in template.query_variables() if v not in optional]:
            raise ConfigurationError(
                f"resource {uri!r}: query variable {missing[0]!r} may be left out by a client, "
                "so its parameter needs a default"
            )
        descriptor: dict[str, Any] = {
            ("uriTemplate" if template.is_template else "uri"): uri,
            "name": info.name,
        }
        _put(descriptor, "title", title)
        _put(
            descriptor, "description", description if description is not None else info.description
        )
        _put(descriptor, "mimeType", mime_type)
        if not template.is_template:
            _put(descriptor, "size", size)
        _put(descriptor, "annotations", _part(annotations))
        _put(descriptor, "icons", _icons(icons))
        _put(descriptor, "_meta", dict(meta) if meta is not None else None)
        call = self._resource_call(info, mime_type, blocking)
        entry = _Entry(uri, descriptor, call, info, template=template, mime_type=mime_type)
        if template.is_template:
            self._add("resourceTemplates", self._templates, entry)
        else:
            self._add("resources", self._resources, entry)

    def remove_resource(self, uri: str) -> None:
        """Remove the resource or resource template registered under ``uri``."""
        if uri in self._templates:
            self._remove("resourceTemplates", self._templates, uri)
        else:
            self._remove("resources", self._resources, uri)

    def notify_resource_updated(self, uri: str) -> None:
        """Tell watchers (and so subscribed clients) that resource ``uri`` changed."""
        for listener in tuple(self._listeners):
            try:
                listener.resource_updated(uri)
            except Exception:
                logger.exception("a listener failed on resource_updated(%r)", uri)

    def notify_list_changed(self, kind: ListKind) -> None:
        """Tell clients that what ``kind`` lists changed, without changing it here: for
        tools, resources or prompts whose descriptions depend on outside state."""
        if kind not in ("tools", "resources", "resourceTemplates", "prompts"):
            raise ConfigurationError(
                f"kind must be tools, resources, resourceTemplates or prompts, not {kind!r}"
            )
        self._changed(kind)

    def _resource_call(self, info: FunctionInfo, mime_type: str | None, blocking: bool) -> Call:
        """A caller taking (uri, variables) as ``arguments``."""

        def finish(value: Any, uri: str) -> Result:
            return {"contents": resource_contents(uri, value, mime_type)}

        def fail(exc: Exception, uri: str) -> Result:
            logger.error("resource %r raised %s", uri, type(exc).__name__, exc_info=exc)
            raise ProtocolError(
                f"Error reading resource {uri}: {exc}", INTERNAL_ERROR, {"uri": uri}
            ) from exc

        def invalid(exc: msgspec.ValidationError, uri: str) -> Result:
            message = argument_error(exc, "resource", uri, "URI variable")
            raise ProtocolError(message, INVALID_PARAMS, {"uri": uri})

        return self._function_call(
            "resource", info, blocking=blocking, finish=finish, fail=fail, invalid=invalid
        )

    # -- prompts ----------------------------------------------------------------------------------

    def prompt(
        self,
        name: str | None = None,
        *,
        title: str | None = None,
        description: str | None = None,
        icons: Sequence[Icon | Mapping[str, Any]] | None = None,
        meta: Mapping[str, Any] | None = None,
        blocking: bool = False,
    ) -> Callable[[F], F]:
        """Register a function as a prompt; its parameters are the prompt's arguments.

        It returns a str (one user message), a message, a content block, or a list of them.
        """
        _check_called("prompt", name)

        def register(function: F) -> F:
            self.add_prompt(
                function,
                name,
                title=title,
                description=description,
                icons=icons,
                meta=meta,
                blocking=blocking,
            )
            return function

        return register

    def add_prompt(
        self,
        function: Callable[..., Any],
        name: str | None = None,
        *,
        title: str | None = None,
        description: str | None = None,
        icons: Sequence[Icon | Mapping[str, Any]] | None = None,
        meta: Mapping[str, Any] | None = None,
        blocking: bool = False,
    ) -> None:
        """Register ``function`` as a prompt (the decorator's non-decorator form)."""
        info = inspect_function(function, kind="prompt", name=name)
        _check_blocking(info, blocking)
        summary = description if description is not None else info.description
        arguments = []
        for parameter in info.parameters:
            argument: dict[str, Any] = {"name": parameter.name}
            _put(argument, "description", parameter.description)
            argument["required"] = parameter.required
            arguments.append(argument)
        descriptor: dict[str, Any] = {"name": info.name}
        _put(descriptor, "title", title)
        _put(descriptor, "description", summary)
        descriptor["arguments"] = arguments
        _put(descriptor, "icons", _icons(icons))
        _put(descriptor, "_meta", dict(meta) if meta is not None else None)

        def finish(value: Any, prompt: str) -> Result:
            result: Result = {"messages": prompt_messages(value)}
            _put(result, "description", summary)
            return result

        def fail(exc: Exception, prompt: str) -> Result:
            logger.error("prompt %r raised %s", prompt, type(exc).__name__, exc_info=exc)
            raise ProtocolError(f"Error rendering prompt {prompt}: {exc}", INTERNAL_ERROR) from exc

        def invalid(exc: msgspec.ValidationError, prompt: str) -> Result:
            raise ProtocolError(argument_error(exc, "prompt", prompt, "argument"), INVALID_PARAMS)

        call = self._function_call(
            "prompt", info, blocking=blocking, finish=finish, fail=fail, invalid=invalid
        )
        self._add("prompts", self._prompts, _Entry(info.name, descriptor, call, info))

    def remove_prompt(self, name: str) -> None:
        """Remove prompt ``name``; watchers are told the prompt list changed."""
        self._remove("prompts", self._prompts, name)

    # -- completions ------------------------------------------------------------------------------

    def completion(self, _bare: None = None, /) -> Callable[[F], F]:
        """Register the completion handler: ``handler(ref, argument, context_arguments)``.

        ``ref`` is a ``PromptRef`` or ``ResourceTemplateRef``, ``argument`` a
        ``CompletionArgument``, ``context_arguments`` the values already chosen. It returns
        a list of strings or a ``Completion`` (sync or async; a Context parameter is filled).
        """
        # ``_bare`` only catches ``@app.completion`` written without parentheses.
        _check_called("completion", _bare)

        def register(function: F) -> F:
            self.set_completion(function)
            return function

        return register

    def set_completion(self, function: Callable[..., Any] | None) -> None:
        """Set (or with None, clear) the completion handler."""
        if function is None:
            self._completion = None
        else:
            self._completion = self._completion_call(function)
        self._capabilities = None

    def _completion_call(self, function: Callable[..., Any]) -> Call:
        try:
            hints = typing.get_type_hints(function, include_extras=True)
        except Exception as exc:
            raise ConfigurationError(
                f"cannot resolve the completion handler's hints: {exc}"
            ) from None
        context_name = next(
            (name for name, hint in hints.items() if is_context_annotation(hint)), None
        )
        is_async = inspect.iscoroutinefunction(function)

        def finish(value: Any) -> Result:
            return {"completion": _completion_result(value)}

        def fail(exc: Exception) -> Result:
            logger.error("the completion handler raised %s", type(exc).__name__, exc_info=exc)
            raise ProtocolError(f"Error completing: {exc}", INTERNAL_ERROR) from exc

        async def run_async(awaitable: Awaitable[Any]) -> Result:
            try:
                value = await awaitable
                return finish(value)
            except ProtocolError:
                raise
            except Exception as exc:
                return fail(exc)

        def call(arguments: Any, call_context: CallContext) -> Any:
            keywords = {context_name: Context(call_context, self)} if context_name else {}
            try:
                value = function(*arguments, **keywords)
                if is_async or inspect.isawaitable(value):
                    return run_async(value)
                return finish(value)
            except ProtocolError:
                raise
            except Exception as exc:
                return fail(exc)

        return call

    # -- shared running of resource and prompt functions -------------------------------------

    def _function_call(
        self,
        kind: str,
        info: FunctionInfo,
        *,
        blocking: bool,
        finish: Callable[[Any, str], Result],
        fail: Callable[[Exception, str], Result],
        invalid: Callable[[msgspec.ValidationError, str], Result],
    ) -> Call:
        """A caller taking ``(key, values)``: string values converted leniently (``"5"`` -> 5)."""
        convert = msgspec.convert
        arguments_type = info.arguments_type
        hook = decode_hook if info.needs_hook else None
        invoke = info.invoke
        wants_context = info.context_parameter is not None
        timer = self._timer
        threshold = self._slow_call_threshold

        async def run_async(key: str, awaitable: Awaitable[Any]) -> Result:
            try:
                value = await awaitable
            except ProtocolError:
                raise
            except Exception as exc:
                return fail(exc, key)
            return finish(value, key)

        async def run_blocking(key: str, converted: Any, context: Context | None) -> Result:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._pool(), invoke, converted, context)
            return await run_async(key, future)

        def call(arguments: Any, call_context: CallContext) -> Any:
            key, values = arguments
            try:
                converted = convert(values, arguments_type, strict=False, dec_hook=hook)
            except msgspec.ValidationError as exc:
                return invalid(exc, key)
            context = Context(call_context, self) if wants_context else None
            if blocking:
                return run_blocking(key, converted, context)
            started = timer()
            try:
                value = invoke(converted, context)
            except ProtocolError:
                raise
            except Exception as exc:
                return fail(exc, key)
            finally:
                elapsed = timer() - started
                if not info.is_async and elapsed > threshold:
                    self._slow(kind, info.name, elapsed)
            if info.is_async:
                return run_async(key, value)
            try:
                return finish(value, key)
            except ProtocolError:
                raise
            except Exception as exc:
                return fail(exc, key)

        return call

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._blocking_threads, thread_name_prefix="connscale-blocking"
            )
        return self._executor

    def _slow(self, kind: str, name: str, elapsed: float) -> None:
        if name in self._warned_slow:
            return
        self._warned_slow.add(name)
        logger.warning(
            "%s %r ran %.3f s on the event loop, stalling every connection of this worker; "
            "make it async or register it with blocking=True (logged once per function)",
            kind,
            name,
            elapsed,
        )

    def close(self) -> None:
        """Shut down the blocking-call thread pool (waits for running calls)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- registry bookkeeping ----------------------------------------------------------------

    def _add(self, kind: ListKind, table: dict[str, _Entry], entry: _Entry) -> None:
        if kind == "tools" and not _TOOL_NAME.match(entry.key):
            raise ConfigurationError(
                f"tool name {entry.key!r}: use 1 to 128 letters, digits, '_', '-' or '.'"
            )
        if entry.key in table:
            singular = {"resourceTemplates": "resource template"}.get(kind, kind[:-1])
            raise ConfigurationError(
                f"a {singular} named {entry.key!r} already exists; remove it first"
            )
        table[entry.key] = entry
        self._kinds_seen.add("resources" if kind == "resourceTemplates" else kind)
        self._changed(kind)

    def _remove(self, kind: ListKind, table: dict[str, _Entry], key: str) -> None:
        if table.pop(key, None) is None:
            raise ConfigurationError(f"there is no {kind[:-1]} named {key!r} to remove")
        self._changed(kind)

    def _changed(self, kind: ListKind) -> None:
        self._listings.pop(kind, None)
        self._capabilities = None
        for listener in tuple(self._listeners):
            try:
                listener.list_changed(kind)
            except Exception:
                logger.exception("a listener failed on list_changed(%r)", kind)

    # -- the Surface --------------------------------------------------------------------------

    def capabilities(self) -> Mapping[str, Any]:
        """What this app serves, as MCP server capabilities.

        A kind is advertised once the app has (or has had) one of it, so a kind emptied at
        run time still answers its list and keeps its list_changed notifications;
        ``logging`` always (every Context can log); ``completions`` with a handler.
        """
        if self._capabilities is None:
            capabilities: dict[str, Any] = {"logging": {}}
            if "tools" in self._kinds_seen:
                capabilities["tools"] = {"listChanged": True}
            if "resources" in self._kinds_seen:
                capabilities["resources"] = {"subscribe": True, "listChanged": True}
            if "prompts" in self._kinds_seen:
                capabilities["prompts"] = {"listChanged": True}
            if self._completion is not None:
                capabilities["completions"] = {}
            self._capabilities = capabilities
        return self._capabilities

    def listing(self, kind: ListKind) -> Sequence[Mapping[str, Any]]:
        """Every descriptor of ``kind`` in registration order (cached until a change)."""
        cached = self._listings.get(kind)
        if cached is None:
            table = {
                "tools": self._tools,
                "resources": self._resources,
                "resourceTemplates": self._templates,
                "prompts": self._prompts,
            }.get(kind)
            if table is None:
                raise ConfigurationError(f"unknown listing kind {kind!r}")
            cached = self._listings[kind] = tuple(entry.descriptor for entry in table.values())
        return cached

    def call_tool(self, name: str, arguments: Mapping[str, Any], context: CallContext) -> Any:
        """Run tool ``name``: a result dict, or an awaitable of one (module docstring)."""
        try:
            entry = self._tools[name]
        except (KeyError, TypeError):
            raise ProtocolError(f"Unknown tool: {name!r:.200}", INVALID_PARAMS) from None
        # "arguments" is optional in tools/call: a tool without parameters may get none.
        return entry.call({} if arguments is None else arguments, context)

    def read_resource(self, uri: str, context: CallContext) -> Any:
        """``resources/read``: a result dict, or an awaitable of one."""
        if not isinstance(uri, str):
            raise ProtocolError("resources/read needs a string uri", INVALID_PARAMS)
        entry = self._resources.get(uri)
        if entry is not None:
            return entry.call((uri, {}), context)
        for entry in self._templates.values():
            assert entry.template is not None
            values = entry.template.match(uri)
            if values is not None:
                return entry.call((uri, values), context)
        raise ProtocolError(f"Resource not found: {uri:.200}", RESOURCE_NOT_FOUND, {"uri": uri})

    def get_prompt(self, name: str, arguments: Mapping[str, str], context: CallContext) -> Any:
        """``prompts/get``: a result dict, or an awaitable of one."""
        try:
            entry = self._prompts[name]
        except (KeyError, TypeError):
            raise ProtocolError(f"Unknown prompt: {name!r:.200}", INVALID_PARAMS) from None
        return entry.call((name, {} if arguments is None else arguments), context)

    def complete(
        self,
        ref: Mapping[str, Any],
        argument: Mapping[str, Any],
        context_arguments: Mapping[str, str],
        context: CallContext,
    ) -> Any:
        """``completion/complete`` for a prompt argument or a template variable."""
        try:
            target = msgspec.convert(ref, PromptRef | ResourceTemplateRef)
            completing = msgspec.convert(argument, CompletionArgument)
            chosen = msgspec.convert(
                {} if context_arguments is None else context_arguments, dict[str, str]
            )
        except msgspec.ValidationError as exc:
            raise ProtocolError(f"Invalid completion request: {exc}", INVALID_PARAMS) from None
        if isinstance(target, PromptRef):
            if target.name not in self._prompts:
                raise ProtocolError(f"Unknown prompt: {target.name!r:.200}", INVALID_PARAMS)
        elif target.uri not in self._templates and target.uri not in self._resources:
            raise ProtocolError(f"Unknown resource template: {target.uri!r:.200}", INVALID_PARAMS)
        if self._completion is None:
            return {"completion": {"values": [], "total": 0, "hasMore": False}}
        return self._completion((target, completing, chosen), context)

    def watch(self, listener: SurfaceListener) -> None:
        """Tell ``listener`` of every later change to tools, resources or prompts."""
        self._listeners.append(listener)

    def unwatch(self, listener: SurfaceListener) -> None:
        """Stop telling ``listener`` (a no-op for one not watching)."""
        if listener in self._listeners:
            self._listeners.remove(listener)


def _completion_result(value: Any) -> dict[str, Any]:
    """``{"values": [...<=100], "total": n, "hasMore": bool}`` from a handler's return value."""
    total: int | None = None
    has_more: bool | None = None
    if value is None:
        values: Sequence[Any] = []
    elif isinstance(value, Completion):
        values, total, has_more = value.values, value.total, value.has_more
    elif isinstance(value, list | tuple):
        values = value
    else:
        raise TypeError(
            f"a completion handler returns a list of str or a Completion, not {value!r:.80}"
        )
    if not all(isinstance(item, str) for item in values):
        raise TypeError("completion values must all be str")
    total = len(values) if total is None else total
    kept = list(values[:MAX_COMPLETIONS])
    if has_more is None:
        has_more = total > len(kept)
    return {"values": kept, "total": total, "hasMore": has_more or len(values) > len(kept)}


def _check_called(decorator: str, name: object) -> None:
    if callable(name):
        raise ConfigurationError(f"use @app.{decorator}() with parentheses")


def _check_blocking(info: FunctionInfo, blocking: bool) -> None:
    if blocking and info.is_async:
        raise ConfigurationError(
            f"{info.name!r} is async: blocking=True is for sync functions that would stall the loop"
        )


def _as_surface(app: App) -> Surface:
    """Never called: mypy checks here that an App keeps the protocol core's contract."""
    return app
