"""Function introspection: input schemas from hints and docstrings, argument conversion and
its error messages, how a function is called, and output plans from return annotations."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import functools
import uuid
from typing import Annotated, Any, Literal, Optional, TypedDict

import msgspec
import pytest

from connscale.app import Audio, Context, Image, ToolResult
from connscale.app._signature import (
    argument_error,
    inspect_function,
    output_plan,
    parse_docstring,
)
from connscale.errors import ConfigurationError


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Point(msgspec.Struct):
    """A point."""

    x: int
    y: int = 0


@dataclasses.dataclass
class Box:
    width: float
    label: str = "box"


class Movie(TypedDict):
    title: str
    year: int


def schema_of(function: Any) -> dict[str, Any]:
    return inspect_function(function, kind="tool").input_schema


def convert(function: Any, arguments: Any) -> Any:
    info = inspect_function(function, kind="tool")
    return msgspec.convert(arguments, info.arguments_type)


# -- docstrings --------------------------------------------------------------------------------


def test_google_docstring() -> None:
    summary, params = parse_docstring(
        """Add two numbers,
        carefully.

        Args:
            a (int): The first
                number.
            b: The second.

        Returns:
            The sum.
        """
    )
    assert summary == "Add two numbers, carefully."
    assert params == {"a": "The first number.", "b": "The second."}


def test_numpy_docstring() -> None:
    summary, params = parse_docstring(
        """Scale a value.

        Parameters
        ----------
        value : float
            What to scale.
        factor : float, optional
            By how much.

        Returns
        -------
        float
        """
    )
    assert summary == "Scale a value."
    assert params == {"value": "What to scale.", "factor": "By how much."}


def test_sphinx_docstring() -> None:
    summary, params = parse_docstring(
        """Greet.

        :param name: Who to greet,
            by name.
        :param int times: How often.
        :returns: The greeting.
        """
    )
    assert summary == "Greet."
    assert params == {"name": "Who to greet, by name.", "times": "How often."}


def test_docstring_keeps_paragraphs_and_lists() -> None:
    summary, _ = parse_docstring("First line\ncontinued.\n\nSteps:\n- one\n- two")
    assert summary == "First line continued.\n\nSteps:\n- one\n- two"


@pytest.mark.parametrize("doc", [None, "", "   "])
def test_no_docstring(doc: str | None) -> None:
    assert parse_docstring(doc) == (None, {})


def test_docstring_descriptions_reach_the_schema() -> None:
    def tool(text: str, count: int = 1) -> str:
        """Repeat text.

        Args:
            text: What to repeat.
            count: How often.
        """
        return text * count

    info = inspect_function(tool, kind="tool")
    assert info.description == "Repeat text."
    properties = info.input_schema["properties"]
    assert properties["text"]["description"] == "What to repeat."
    assert properties["count"] == {"type": "integer", "default": 1, "description": "How often."}


def test_annotated_meta_description_wins_over_docstring() -> None:
    def tool(text: Annotated[str, msgspec.Meta(description="from Meta", min_length=1)]) -> str:
        """Echo.

        Args:
            text: from the docstring
        """
        return text

    schema = schema_of(tool)["properties"]["text"]
    assert schema == {"type": "string", "description": "from Meta", "minLength": 1}


# -- schemas for many hint shapes ------------------------------------------------------------


def shapes(  # noqa: PLR0917 - one parameter per shape under test
    text: str,
    number: float,
    count: int,
    flag: bool,
    names: list[str],
    scores: dict[str, int],
    maybe: int | None,
    choice: Literal["a", "b"],
    color: Color,
    point: Point,
    box: Box,
    movie: Movie,
    when: datetime.datetime,
    ident: uuid.UUID,
    pair: tuple[int, str],
    legacy: Optional[str] = None,  # noqa: UP045 - the old spelling must work too
    default_list: list[int] = [1, 2],  # noqa: B006 - copied per call, tested below
) -> None:
    """Every shape."""


def test_schema_of_every_shape() -> None:
    schema = schema_of(shapes)
    properties = schema["properties"]
    assert schema["type"] == "object"
    assert schema["title"] == "shapesArguments"
    assert set(schema["required"]) == set(properties) - {"legacy", "default_list"}
    assert properties["text"] == {"type": "string"}
    assert properties["number"] == {"type": "number"}
    assert properties["count"] == {"type": "integer"}
    assert properties["flag"] == {"type": "boolean"}
    assert properties["names"] == {"type": "array", "items": {"type": "string"}}
    assert properties["scores"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
    }
    assert properties["maybe"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert properties["choice"] == {"enum": ["a", "b"], "type": "string"}
    assert properties["color"] == {"$ref": "#/$defs/Color"}
    assert schema["$defs"]["Color"]["type"] == "string"
    assert sorted(schema["$defs"]["Color"]["enum"]) == ["green", "red"]
    assert schema["$defs"]["Point"]["required"] == ["x"]
    assert schema["$defs"]["Point"]["description"] == "A point."
    assert schema["$defs"]["Box"]["properties"]["label"]["default"] == "box"
    assert schema["$defs"]["Movie"]["required"] == ["title", "year"]
    assert properties["when"]["type"] == "string"
    assert properties["ident"]["format"] == "uuid"
    assert properties["pair"]["type"] == "array"
    assert properties["legacy"]["default"] is None
    assert properties["default_list"]["default"] == [1, 2]


def test_shapes_convert_and_validate() -> None:
    converted = convert(
        shapes,
        {
            "text": "t",
            "number": 1,
            "count": 2,
            "flag": True,
            "names": ["n"],
            "scores": {"a": 1},
            "maybe": None,
            "choice": "b",
            "color": "green",
            "point": {"x": 1},
            "box": {"width": 2.5},
            "movie": {"title": "M", "year": 1999},
            "when": "2026-12-01T10:00:00Z",
            "ident": "c8f2a1e4-58c4-4d8c-9d77-52bb1b7d4e0b",
            "pair": [1, "x"],
        },
    )
    assert converted.number == 1.0 and isinstance(converted.number, float)
    assert converted.color is Color.GREEN
    assert converted.point == Point(1, 0)
    assert converted.box == Box(2.5)
    assert converted.when == datetime.datetime(2026, 12, 1, 10, tzinfo=datetime.UTC)
    assert isinstance(converted.ident, uuid.UUID)
    assert converted.pair == (1, "x")
    assert converted.default_list == [1, 2]


def test_mutable_default_is_fresh_per_call() -> None:
    first = convert(shapes, _minimal_shapes()).default_list
    first.append(3)
    assert convert(shapes, _minimal_shapes()).default_list == [1, 2]


def _minimal_shapes() -> dict[str, Any]:
    return {
        "text": "t",
        "number": 1.5,
        "count": 1,
        "flag": False,
        "names": [],
        "scores": {},
        "maybe": 3,
        "choice": "a",
        "color": "red",
        "point": {"x": 0},
        "box": {"width": 1},
        "movie": {"title": "", "year": 0},
        "when": "2026-01-01T00:00:00Z",
        "ident": str(uuid.uuid4()),
        "pair": [0, ""],
    }


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"a": "1"}, "Invalid argument 'a' for tool 'add': Expected `int`, got `str`"),
        ({"a": True}, "Invalid argument 'a' for tool 'add': Expected `int`, got `bool`"),
        ({"a": 1.5}, "Invalid argument 'a' for tool 'add': Expected `int`, got `float`"),
        ({}, "Missing required argument 'a' for tool 'add'"),
        (None, "Invalid arguments for tool 'add': Expected `object`, got `null`"),
        ([1], "Invalid arguments for tool 'add': Expected `object`, got `array`"),
        (
            {"a": 1, "p": {"y": 1}},
            "Invalid argument 'p' for tool 'add': missing required field 'x'",
        ),
        ({"a": 1, "p": {"x": "no"}}, "Invalid argument 'p' for tool 'add' (at p.x): Expected"),
        ({"a": 1, "tags": ["x", 2]}, "Invalid argument 'tags' for tool 'add' (at tags[1])"),
    ],
)
def test_argument_errors_name_the_argument(arguments: Any, fragment: str) -> None:
    def add(a: int, p: Point | None = None, tags: list[str] | None = None) -> int:
        return a

    with pytest.raises(msgspec.ValidationError) as caught:
        convert(add, arguments)
    assert fragment in argument_error(caught.value, "tool", "add", "argument")


def test_unknown_arguments_are_ignored() -> None:
    def tool(a: int) -> int:
        return a

    assert convert(tool, {"a": 1, "extra": 2}).a == 1


# -- calling -----------------------------------------------------------------------------------


def call(function: Any, arguments: dict[str, Any], context: Any = None) -> Any:
    info = inspect_function(function, kind="tool")
    return info.invoke(msgspec.convert(arguments, info.arguments_type), context)


def test_positional_only_keyword_only_and_defaults() -> None:
    def tool(a: int, /, b: int = 2, *, c: int, d: int = 4) -> tuple[int, ...]:
        return (a, b, c, d)

    assert call(tool, {"a": 1, "c": 3}) == (1, 2, 3, 4)
    assert set(schema_of(tool)["required"]) == {"a", "c"}


@pytest.mark.parametrize("where", ["first", "middle", "last", "keyword", "optional"])
def test_context_is_injected_wherever_it_is_declared(where: str) -> None:
    seen: list[Any] = []

    def first(ctx: Context, a: int, b: int) -> None:
        seen.append((ctx, a, b))

    def middle(a: int, ctx: Context, b: int) -> None:
        seen.append((ctx, a, b))

    def last(a: int, b: int, ctx: Context) -> None:
        seen.append((ctx, a, b))

    def keyword(a: int, *, ctx: Context, b: int) -> None:
        seen.append((ctx, a, b))

    def optional(a: int, b: int, ctx: Context | None = None) -> None:
        seen.append((ctx, a, b))

    function = {
        "first": first,
        "middle": middle,
        "last": last,
        "keyword": keyword,
        "optional": optional,
    }[where]
    info = inspect_function(function, kind="tool")
    assert info.context_parameter == "ctx"
    assert "ctx" not in info.input_schema["properties"]
    sentinel = object()
    call(function, {"a": 1, "b": 2}, sentinel)
    assert seen == [(sentinel, 1, 2)]


def test_var_keyword_is_ignored_var_positional_refused() -> None:
    def extra(a: int, **rest: Any) -> int:
        return a

    assert set(schema_of(extra)["properties"]) == {"a"}
    assert call(extra, {"a": 1, "b": 2}) == 1

    def star(*values: int) -> int:
        return 0

    with pytest.raises(ConfigurationError, match=r"\*values"):
        inspect_function(star, kind="tool")


def test_unannotated_parameter_accepts_any_json() -> None:
    def tool(value):  # type: ignore[no-untyped-def]
        return value

    assert schema_of(tool)["properties"]["value"] == {}
    assert call(tool, {"value": [1, {"a": None}]}) == [1, {"a": None}]


def test_names_and_refusals() -> None:
    with pytest.raises(ConfigurationError, match="name"):
        inspect_function(lambda: None, kind="tool")
    assert inspect_function(lambda: None, kind="tool", name="named").name == "named"
    with pytest.raises(ConfigurationError, match="function"):
        inspect_function(42, kind="tool")  # type: ignore[arg-type]

    def generator() -> Any:
        yield 1

    with pytest.raises(ConfigurationError, match="generator"):
        inspect_function(generator, kind="tool")

    def unresolved(a: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(ConfigurationError, match="NoSuchType"):
        inspect_function(unresolved, kind="tool")

    class Opaque:
        pass

    def opaque(a: Opaque) -> None:
        pass

    with pytest.raises(ConfigurationError, match="opaque"):
        inspect_function(opaque, kind="tool")


def test_a_type_without_a_schema_is_named_in_one_line() -> None:
    """Regression: msgspec's advice of several lines reached the terminal (``connscale serve
    --app`` errors are one line) and did not say which parameter was at fault."""

    def tool(count: int, thing: object, flag: bool = False) -> str:
        return ""

    with pytest.raises(ConfigurationError) as caught:
        inspect_function(tool, kind="tool")
    message = str(caught.value)
    assert "\n" not in message
    assert "parameter 'thing'" in message and "object" in message and "'count'" not in message

    def returns(count: int) -> list[object]:
        return []

    info = inspect_function(returns, kind="tool")
    with pytest.raises(ConfigurationError) as caught:
        output_plan(info, None)
    message = str(caught.value)
    assert "\n" not in message and "return type" in message and "object" in message


def test_async_detection() -> None:
    async def coroutine(a: int) -> int:
        return a

    class Callable:
        async def __call__(self, a: int) -> int:
            return a

    class SyncCallable:
        def __call__(self, a: int) -> int:
            return a

    assert inspect_function(coroutine, kind="tool").is_async
    assert inspect_function(Callable(), kind="tool", name="c").is_async
    assert not inspect_function(SyncCallable(), kind="tool", name="s").is_async
    partial = functools.partial(coroutine)
    assert inspect_function(partial, kind="tool", name="p").is_async
    info = inspect_function(Callable(), kind="tool", name="c")
    assert asyncio.run(info.invoke(msgspec.convert({"a": 3}, info.arguments_type), None)) == 3


# -- output plans ------------------------------------------------------------------------------


def _plan(annotation: Any, structured: bool | None = None) -> Any:
    def tool() -> None:
        pass

    tool.__annotations__["return"] = annotation
    return output_plan(inspect_function(tool, kind="tool"), structured)


@pytest.mark.parametrize(
    "annotation", [str, bytes, None, Any, Image, Audio, ToolResult, list[Image], Image | None]
)
def test_unstructured_returns_have_no_output_schema(annotation: Any) -> None:
    assert _plan(annotation) is None


@pytest.mark.parametrize("annotation", [Point, Box, Movie, dict[str, int], dict])
def test_object_returns_keep_their_schema(annotation: Any) -> None:
    plan = _plan(annotation)
    assert plan is not None and not plan.wrap
    assert plan.schema["type"] == "object"


@pytest.mark.parametrize(
    "annotation",
    [int, float, bool, list[int], tuple[int, str], Point | None, Color, dict[int, str]],
)
def test_other_data_returns_are_wrapped(annotation: Any) -> None:
    plan = _plan(annotation)
    assert plan is not None and plan.wrap
    assert plan.schema["required"] == ["result"]
    assert set(plan.schema["properties"]) == {"result"}


def test_structured_output_switch() -> None:
    assert _plan(Point, False) is None
    forced = _plan(str, True)
    assert forced is not None and forced.wrap
    assert forced.schema["properties"]["result"] == {"type": "string"}
    with pytest.raises(ConfigurationError, match="structured_output"):
        _plan(None, True)
    with pytest.raises(ConfigurationError, match="structured_output"):
        _plan(Image, True)


def test_structured_conversion_checks_the_declared_type() -> None:
    plan = _plan(Point)
    assert plan.convert(Point(1, 2))["structuredContent"] == {"x": 1, "y": 2}
    assert plan.convert({"x": 1})["structuredContent"] == {"x": 1}
    with pytest.raises(msgspec.ValidationError):
        plan.convert({"x": "one"})
    wrapped = _plan(list[int])
    assert wrapped.convert([1, 2]) == {
        "content": [{"type": "text", "text": "[1,2]"}],
        "structuredContent": {"result": [1, 2]},
        "isError": False,
    }
