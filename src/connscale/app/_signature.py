"""What registration learns about a function once, so that a call does no introspection.

For each tool, resource or prompt function ``inspect_function`` reads the signature, type
hints and docstring and builds:

- a msgspec Struct type with one field per parameter (defaults kept), so that a call
  validates and converts its whole arguments dict with one ``msgspec.convert``;
- the input JSON Schema (2020-12) of that Struct, from msgspec (descriptions from
  ``Annotated[..., msgspec.Meta(description=...)]`` or the docstring's Args/Parameters/
  ``:param`` entries; the docstring's text before them is the description);
- an ``invoke(arguments_struct, context)`` that calls the function with the converted values
  positionally (``msgspec.structs.astuple``), inserting a ``Context`` where asked.

``output_plan`` reads the return annotation: data types get an ``outputSchema``; non-object
ones are wrapped as ``{"result": value}`` as the official SDK does.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

import msgspec

from connscale.app._content import Content, ToolResult, structured_result
from connscale.app._context import Context
from connscale.app._schema import (
    decode_hook,
    is_pydantic_model_type,
    schema_of,
    schema_problem,
    schemas_of,
)
from connscale.errors import ConfigurationError

__all__ = [
    "FunctionInfo",
    "OutputPlan",
    "Parameter",
    "argument_error",
    "inspect_function",
    "is_context_annotation",
    "output_plan",
    "parse_docstring",
]

EMPTY: Final = inspect.Parameter.empty
Invoke = Callable[[Any, Any], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter as clients see it (the Context parameter is not one)."""

    name: str
    annotation: Any
    required: bool
    description: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class FunctionInfo:
    """A function's name, description, parameters, argument type, schema and invoker."""

    function: Callable[..., Any]
    name: str
    description: str | None
    parameters: tuple[Parameter, ...]
    #: The name of the parameter that receives the Context, if any.
    context_parameter: str | None
    is_async: bool
    #: One field per parameter; ``msgspec.convert(arguments, arguments_type)`` validates.
    arguments_type: type[msgspec.Struct]
    input_schema: dict[str, Any]
    #: ``invoke(converted_arguments, context)`` calls the function.
    invoke: Invoke
    return_annotation: Any
    #: Whether argument conversion needs the pydantic hook (some parameter is a model).
    needs_hook: bool


# -- docstrings ----------------------------------------------------------------------------------

_SECTION_NAMES = (
    "args|arguments|parameters|params|keyword args|keyword arguments|other parameters|"
    "returns?|yields?|raises|examples?|notes?|attributes|see also|warnings?|todo|references"
)
_GOOGLE_HEADER = re.compile(rf"^({_SECTION_NAMES})\s*:\s*$", re.IGNORECASE)
_NUMPY_HEADER = re.compile(rf"^({_SECTION_NAMES})\s*$", re.IGNORECASE)
_NUMPY_RULE = re.compile(r"^-{3,}\s*$")
_PARAMETER_SECTIONS = frozenset(
    {
        "args",
        "arguments",
        "parameters",
        "params",
        "keyword args",
        "keyword arguments",
        "other parameters",
    }
)
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?::.*)?$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?\*{0,2}(\w+)\s*:\s*(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _entries(body: list[str], numpy: bool) -> dict[str, str]:
    """Parameter descriptions from a section body: entries at the base indent, text below."""
    lines = [line for line in body if line.strip()]
    if not lines:
        return {}
    base = min(_indent(line) for line in lines)
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if _indent(line) > base:
            if current is not None:
                current.append(line.strip())
            continue
        text = line.strip()
        match = (_NUMPY_ENTRY if numpy else _GOOGLE_ENTRY).match(text)
        if match is None:
            current = None
            continue
        current = found.setdefault(match.group(1), [])
        if not numpy and match.group(2):
            current.append(match.group(2).strip())
    return {name: " ".join(words) for name, words in found.items() if words}


def parse_docstring(doc: str | None) -> tuple[str | None, dict[str, str]]:
    """(description, {parameter: description}) from a Google, NumPy or Sphinx docstring.

    The description is the text before the first section or ``:field:`` line.
    """
    if not doc or not doc.strip():
        return None, {}
    lines = inspect.cleandoc(doc).splitlines()
    summary_end = len(lines)
    described: dict[str, str] = {}
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        numpy = (
            _NUMPY_HEADER.match(stripped) is not None
            and index + 1 < len(lines)
            and _NUMPY_RULE.match(lines[index + 1].strip()) is not None
        )
        google = not numpy and _GOOGLE_HEADER.match(stripped) is not None
        if numpy or google:
            summary_end = min(summary_end, index)
            section = stripped.rstrip(":").strip().lower()
            start = index + (2 if numpy else 1)
            end = start
            while end < len(lines):
                following = lines[end].strip()
                next_is_numpy = (
                    _NUMPY_HEADER.match(following) is not None
                    and end + 1 < len(lines)
                    and _NUMPY_RULE.match(lines[end + 1].strip()) is not None
                )
                if next_is_numpy or _GOOGLE_HEADER.match(following) or following.startswith(":"):
                    break
                end += 1
            if section in _PARAMETER_SECTIONS:
                for name, text in _entries(lines[start:end], numpy).items():
                    described.setdefault(name, text)
            index = end
            continue
        if stripped.startswith(":") and re.match(r"^:\w+", stripped):
            summary_end = min(summary_end, index)
            match = _SPHINX_PARAM.match(stripped)
            words = [match.group(2).strip()] if match else []
            index += 1
            while (
                index < len(lines)
                and lines[index].strip()
                and not lines[index].strip().startswith(":")
            ):
                words.append(lines[index].strip())
                index += 1
            if match:
                described.setdefault(match.group(1), " ".join(w for w in words if w))
            continue
        index += 1
    summary = _unwrap("\n".join(lines[:summary_end]).strip())
    return summary or None, described


_LINE_START = re.compile(r"^(\s|[-*+] |\d+[.)] )")


def _unwrap(text: str) -> str:
    """Join a paragraph's wrapped lines; keep blank lines, list items and indented lines."""
    out: list[str] = []
    for line in text.splitlines():
        if out and out[-1] and line.strip() and not _LINE_START.match(line):
            out[-1] = f"{out[-1]} {line.strip()}"
        else:
            out.append(line.rstrip())
    return "\n".join(out)


# -- type inspection -----------------------------------------------------------------------------


def _strip_annotated(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    if typing.get_origin(annotation) is Annotated:
        base, *metadata = typing.get_args(annotation)
        return base, tuple(metadata)
    return annotation, ()


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def is_context_annotation(annotation: Any) -> bool:
    """Whether a parameter annotated so receives the ``Context`` (also ``Context | None``)."""
    base, _ = _strip_annotated(annotation)
    if _is_union(base):
        arms = [arm for arm in typing.get_args(base) if arm is not type(None)]
        return len(arms) == 1 and is_context_annotation(arms[0])
    return isinstance(base, type) and issubclass(base, Context)


def _described(metadata: tuple[Any, ...]) -> tuple[str | None, bool]:
    """A description in ``Annotated`` metadata, and whether msgspec already shows it.

    msgspec reads its own ``Meta``; a pydantic ``Field(description=...)`` it does not.
    """
    for item in metadata:
        description = getattr(item, "description", None)
        if isinstance(description, str):
            return description, isinstance(item, msgspec.Meta)
    return None, False


def _pydantic_field(default: object) -> bool:
    """Whether ``default`` is ``pydantic.Field(...)`` (FastMCP-style parameter metadata)."""
    fields = sys.modules.get("pydantic.fields")
    return fields is not None and isinstance(default, fields.FieldInfo)


def _hint_target(function: Callable[..., Any]) -> Any:
    """What ``typing.get_type_hints`` can read for ``function`` (partials, callable objects)."""
    target: Any = function
    while hasattr(target, "func") and callable(target.func):  # functools.partial
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target)) and callable(target):
        target = type(target).__call__
    return target


def _is_async(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    # A callable object: its class's __call__ decides.
    return not inspect.isfunction(function) and inspect.iscoroutinefunction(type(function).__call__)


def _is_mutable(default: Any) -> bool:
    """msgspec copies only empty mutable defaults itself; the others need a factory."""
    return isinstance(default, list | dict | set | bytearray) and bool(default)


def _field_default(default: Any) -> Any:
    """A Struct field default: non-empty mutable defaults are copied per call."""
    if _is_mutable(default):
        return msgspec.field(default_factory=lambda: copy.deepcopy(default))
    return default


def _make_invoker(
    function: Callable[..., Any],
    positional: int,
    keyword_names: tuple[str, ...],
    context_name: str | None,
    context_index: int | None,
) -> Invoke:
    """A caller specialised for the signature's shape (the common one is one splat call)."""
    astuple = msgspec.structs.astuple
    if context_name is None and not keyword_names:

        def invoke(arguments: Any, context: Any) -> Any:
            return function(*astuple(arguments))

        return invoke
    if context_index is not None and not keyword_names:

        def invoke_with_context(arguments: Any, context: Any) -> Any:
            values = list(astuple(arguments))
            values.insert(context_index, context)
            return function(*values)

        return invoke_with_context

    def invoke_general(arguments: Any, context: Any) -> Any:
        values = astuple(arguments)
        head = list(values[:positional])
        keywords = dict(zip(keyword_names, values[positional:], strict=True))
        if context_name is not None:
            if context_index is None:
                keywords[context_name] = context
            else:
                head.insert(context_index, context)
        return function(*head, **keywords)

    return invoke_general


def inspect_function(
    function: Callable[..., Any], *, kind: str, name: str | None = None
) -> FunctionInfo:
    """Everything a call needs about ``function``; ``kind`` ("tool", ...) names it in errors."""
    if not callable(function):
        raise ConfigurationError(f"a {kind} must be a function, not {function!r}")
    own_name = name or getattr(function, "__name__", None)
    if not isinstance(own_name, str) or not own_name or own_name == "<lambda>":
        raise ConfigurationError(f"give this {kind} a name (name=...): {function!r}")
    if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
        raise ConfigurationError(f"{kind} {own_name!r} is a generator; return a value instead")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot read the signature of {kind} {own_name!r}: {exc}"
        ) from None
    try:
        hints = typing.get_type_hints(_hint_target(function), include_extras=True)
    except Exception as exc:  # NameError for an unresolvable forward reference, and others
        raise ConfigurationError(
            f"cannot resolve the type hints of {kind} {own_name!r}: {exc}; import the "
            "names its annotations use at module level"
        ) from None
    summary, documented = parse_docstring(inspect.getdoc(function))
    fields: list[tuple[Any, ...]] = []
    parameters: list[Parameter] = []
    keyword_names: list[str] = []
    positional = 0
    context_name: str | None = None
    context_index: int | None = None
    needs_hook = False
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            raise ConfigurationError(
                f"{kind} {own_name!r} takes *{parameter.name}; name each argument instead"
            )
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            continue  # extra arguments are not passed: nothing a schema could describe
        annotation = hints.get(parameter.name, Any)
        if is_context_annotation(annotation):
            if context_name is not None:
                raise ConfigurationError(f"{kind} {own_name!r} asks for two Contexts")
            context_name = parameter.name
            if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
                context_index = positional
            continue
        default = parameter.default
        base, metadata = _strip_annotated(annotation)
        description, shown = _described(metadata)
        if _pydantic_field(default):
            description = description or default.description
            if default.default_factory is not None:
                default = msgspec.field(default_factory=default.default_factory)
            elif default.is_required():
                default = EMPTY
            else:
                default = default.default
        description = description or documented.get(parameter.name)
        if description is not None and not shown:
            annotation = Annotated[annotation, msgspec.Meta(description=description)]
        if _is_mutable(default):
            # A factory hides the default from msgspec's schema: state it explicitly.
            shown_default = msgspec.to_builtins(default)
            annotation = Annotated[
                annotation, msgspec.Meta(extra_json_schema={"default": shown_default})
            ]
        needs_hook = needs_hook or _mentions_pydantic(base)
        if default is EMPTY:
            fields.append((parameter.name, annotation))
        else:
            fields.append((parameter.name, annotation, _field_default(default)))
        parameters.append(Parameter(parameter.name, annotation, default is EMPTY, description))
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            keyword_names.append(parameter.name)
        else:
            positional += 1
    try:
        arguments_type = msgspec.defstruct(
            f"{own_name}Arguments", fields, kw_only=True, gc=False, module=__name__
        )
        (root,), defs = schemas_of([arguments_type])
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(_undescribable(kind, own_name, fields, exc)) from None
    reference = root.get("$ref")
    input_schema = dict(defs.pop(reference.rsplit("/", 1)[-1])) if reference else root
    if defs:
        input_schema["$defs"] = defs
    input_schema.setdefault("properties", {})
    if not input_schema.get("required", True):
        del input_schema["required"]
    return FunctionInfo(
        function=function,
        name=own_name,
        description=summary,
        parameters=tuple(parameters),
        context_parameter=context_name,
        is_async=_is_async(function),
        arguments_type=arguments_type,
        input_schema=input_schema,
        invoke=_make_invoker(
            function, positional, tuple(keyword_names), context_name, context_index
        ),
        return_annotation=hints.get("return", EMPTY),
        needs_hook=needs_hook,
    )


def _undescribable(kind: str, name: str, fields: list[tuple[Any, ...]], error: Exception) -> str:
    """One line naming the parameter whose type has no JSON Schema (or cannot be validated)."""
    for field in fields:
        try:
            schemas_of([field[1]])
        except (TypeError, ValueError) as found:
            return (
                f"{kind} {name!r}: parameter {field[0]!r} has a type that cannot be described "
                f"or validated ({schema_problem(found)}); use a concrete type, or Any"
            )
    return f"{kind} {name!r}: its parameters cannot be described ({schema_problem(error)})"


def _mentions_pydantic(annotation: Any) -> bool:
    """Whether a pydantic model appears anywhere in ``annotation`` (then the hook is needed)."""
    if is_pydantic_model_type(annotation):
        return True
    if isinstance(annotation, type) and (
        issubclass(annotation, msgspec.Struct) or dataclasses.is_dataclass(annotation)
    ):
        try:
            nested = typing.get_type_hints(annotation)
        except Exception:
            return False
        return any(_mentions_pydantic(hint) for hint in nested.values())
    return any(_mentions_pydantic(arg) for arg in typing.get_args(annotation))


# -- arguments errors ----------------------------------------------------------------------------

_WHERE = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")
_FIRST_KEY = re.compile(r"^\.(?P<name>\w+)|^\['(?P<quoted>[^']*)'\]")


def argument_error(error: msgspec.ValidationError, kind: str, name: str, noun: str) -> str:
    """A message that names the argument ``error`` is about, for the model to read."""
    found = _WHERE.match(str(error))
    assert found is not None  # the pattern matches any text
    message, path = found.group("message").strip(), found.group("path") or ""
    missing = _MISSING.match(message)
    if not path:
        if missing:
            return f"Missing required {noun} {missing.group('field')!r} for {kind} {name!r}"
        return f"Invalid {noun}s for {kind} {name!r}: {message}"
    first = _FIRST_KEY.match(path)
    argument = (first.group("name") or first.group("quoted")) if first else path
    rest = path[first.end() :] if first else ""
    if missing:
        message = f"missing required field {missing.group('field')!r}"
    where = f" (at {argument}{rest})" if rest else ""
    return f"Invalid {noun} {argument!r} for {kind} {name!r}{where}: {message}"


# -- output --------------------------------------------------------------------------------------

ReturnKind = Literal["unknown", "none", "content", "text", "object", "wrapped"]
_SEQUENCE_ORIGINS = (list, tuple, collections.abc.Sequence)
_MAPPING_ORIGINS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def _return_kind(annotation: Any) -> ReturnKind:
    base, _ = _strip_annotated(annotation)
    if base is EMPTY or base is Any or base is object:
        return "unknown"
    if base is None or base is type(None):
        return "none"
    if base in (str, bytes, bytearray):
        return "text"
    origin = typing.get_origin(base)
    if _is_union(base):
        kinds = {_return_kind(arm) for arm in typing.get_args(base)} - {"none"}
        if "content" in kinds:
            return "content"
        return "wrapped"
    if origin in _SEQUENCE_ORIGINS:
        arms = typing.get_args(base)
        if any(_return_kind(arm) == "content" for arm in arms):
            return "content"
        return "wrapped"
    if isinstance(base, type):
        if issubclass(base, Content | ToolResult):
            return "content"
        if issubclass(base, msgspec.Struct):
            return "wrapped" if base.__struct_config__.array_like else "object"
        if dataclasses.is_dataclass(base) or typing.is_typeddict(base):
            return "object"
        if is_pydantic_model_type(base):
            return "object"
        if issubclass(base, dict):
            return "object"
    if origin in _MAPPING_ORIGINS:
        key = (typing.get_args(base) or (str,))[0]
        return "object" if key is str else "wrapped"
    return "wrapped"


@dataclasses.dataclass(frozen=True, slots=True)
class OutputPlan:
    """A tool's ``outputSchema`` and how its return value becomes ``structuredContent``."""

    schema: dict[str, Any]
    wrap: bool
    convert: Callable[[Any], dict[str, Any]]


def output_plan(info: FunctionInfo, structured_output: bool | None) -> OutputPlan | None:
    """The output plan for ``info``'s return annotation (None: unstructured results).

    ``structured_output``: None decides from the annotation (data types are structured;
    str, bytes, content blocks and None are not), True insists, False refuses.
    """
    if structured_output is False:
        return None
    annotation = info.return_annotation
    kind = _return_kind(annotation)
    if kind in ("unknown", "none", "content") or (kind == "text" and not structured_output):
        if structured_output:
            raise ConfigurationError(
                f"tool {info.name!r}: structured_output=True needs a data return annotation "
                f"(a Struct, dataclass, TypedDict, dict, int, list...), not {annotation!r}"
            )
        return None
    wrap = kind != "object"
    try:
        schema = schema_of(annotation)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"tool {info.name!r}: its return type cannot be described ({schema_problem(exc)}); "
            "pass structured_output=False"
        ) from None
    if wrap:
        defs = schema.pop("$defs", None)
        schema = {"type": "object", "properties": {"result": schema}, "required": ["result"]}
        if defs:
            schema["$defs"] = defs

    if _mentions_pydantic(annotation):

        def check(builtins: Any) -> object:
            return msgspec.convert(builtins, annotation, dec_hook=decode_hook)

    else:

        def check(builtins: Any) -> object:
            return msgspec.convert(builtins, annotation)  # no keyword: ~150 ns cheaper

    def convert(value: Any) -> dict[str, Any]:
        return structured_result(value, wrap=wrap, check=check)

    return OutputPlan(schema, wrap, convert)
