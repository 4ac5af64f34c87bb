"""URI templates: parsing, matching with percent-decoding, expansion, and bad templates."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connscale.app import UriTemplate
from connscale.errors import ConfigurationError


def test_simple_variable_matches_one_segment() -> None:
    template = UriTemplate("test://template/{id}/data")
    assert template.variables == ("id",)
    assert template.is_template
    assert template.match("test://template/42/data") == {"id": "42"}
    assert template.match("test://template/a%20b/data") == {"id": "a b"}
    assert template.match("test://template/4/2/data") is None
    assert template.match("test://template//data") is None
    assert template.match("test://other/42/data") is None


def test_fixed_uri_is_not_a_template() -> None:
    template = UriTemplate("test://static-text")
    assert not template.is_template
    assert template.match("test://static-text") == {}
    assert template.match("test://static-textX") is None


def test_literal_parts_are_not_regular_expressions() -> None:
    template = UriTemplate("a.b://{x}")
    assert template.match("a.b://1") == {"x": "1"}
    assert template.match("aXb://1") is None


def test_reserved_expansion_spans_slashes() -> None:
    template = UriTemplate("file:///{+path}")
    assert template.match("file:///etc/hosts") == {"path": "etc/hosts"}
    assert template.expand({"path": "a/b c"}) == "file:///a/b%20c"


def test_several_variables_and_comma_lists() -> None:
    template = UriTemplate("geo://{lat,lon}/{zoom}")
    assert template.variables == ("lat", "lon", "zoom")
    assert template.match("geo://1.5,2/10") == {"lat": "1.5", "lon": "2", "zoom": "10"}
    assert template.match("geo://1.5/10") is None


def test_query_variables_are_optional_and_unordered() -> None:
    template = UriTemplate("search://items{?q,limit}")
    assert template.query_variables() == ("q", "limit")
    assert template.match("search://items") == {}
    assert template.match("search://items?limit=5&q=a%26b") == {"limit": "5", "q": "a&b"}
    assert template.match("search://items?other=1") == {}
    assert template.expand({"q": "x y"}) == "search://items?q=x%20y"


def test_fragment_expression() -> None:
    template = UriTemplate("doc://page{#section}")
    assert template.match("doc://page#intro") == {"section": "intro"}
    assert template.expand({"section": "a/b"}) == "doc://page#a/b"


def test_expand_percent_encodes_simple_values() -> None:
    template = UriTemplate("users://{name}/profile")
    assert template.expand({"name": "a/b?c"}) == "users://a%2Fb%3Fc/profile"
    with pytest.raises(ConfigurationError, match="name"):
        template.expand({})


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "x://{",
        "x://}",
        "x://{a b}",
        "x://{a}/{a}",
        "x://{?q}/tail",
        "x://{?q}{id}",
        "x://{*a}",
        "x://{}",
    ],
)
def test_bad_templates_are_configuration_errors(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        UriTemplate(bad)


def test_overlong_uri_does_not_match() -> None:
    assert UriTemplate("x://{+a}").match("x://" + "a" * 10_000) is None


def test_equality_and_repr() -> None:
    assert UriTemplate("x://{a}") == UriTemplate("x://{a}")
    assert len({UriTemplate("x://{a}"), UriTemplate("x://{a}")}) == 1
    assert "x://{a}" in repr(UriTemplate("x://{a}"))


segment = st.text(min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(segment, segment)
def test_expand_then_match_round_trips(first: str, second: str) -> None:
    template = UriTemplate("test://{a}/x/{b}")
    assert template.match(template.expand({"a": first, "b": second})) == {"a": first, "b": second}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_match_never_raises(uri: str) -> None:
    for template in ("test://template/{id}/data", "file:///{+p}", "s://i{?q,r}", "d://p{#f}"):
        result = UriTemplate(template).match(uri)
        assert result is None or isinstance(result, dict)
