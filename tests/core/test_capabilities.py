"""Capabilities: immutable, compared by content, interned process-wide and freed when unused."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from connscale.core.session import Capabilities, intern_capabilities
from connscale.errors import ConfigurationError

CAPS = {"roots": {"listChanged": True}, "sampling": {}}


def test_equal_capabilities_share_one_object() -> None:
    first = intern_capabilities({"b": [1, 2], "a": {"x": None}})
    second = intern_capabilities({"a": {"x": None}, "b": [1, 2]})
    assert first is second
    assert intern_capabilities(None) is intern_capabilities({})
    assert intern_capabilities(first) is first


def test_capabilities_are_immutable_and_hashable() -> None:
    caps = intern_capabilities(CAPS)
    assert caps["roots"]["listChanged"] is True
    assert isinstance(caps["roots"], Capabilities)
    assert caps == CAPS
    assert hash(caps) == hash(Capabilities(CAPS))
    copy = caps.to_dict()
    copy["roots"]["listChanged"] = False
    assert caps["roots"]["listChanged"] is True
    with pytest.raises(TypeError):
        caps["new"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    "bad",
    [{"a": object()}, {1: "x"}, {"a": float("nan")}, {"a": 2**70}, "not a mapping", {"a": b"x"}],
)
def test_capabilities_must_be_json_like(bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        intern_capabilities(bad)


def test_unused_capabilities_are_freed() -> None:
    import gc

    from connscale.core import _capabilities as module

    caps = intern_capabilities({"unique-for-this-test": 1})
    key = caps.canonical
    assert key in module._CAPABILITIES
    del caps
    gc.collect()
    assert key not in module._CAPABILITIES


def test_a_set_built_apart_interns_to_the_pools_object_or_becomes_it() -> None:
    pooled = intern_capabilities({"kept": {"a": 1}})
    apart = Capabilities({"kept": {"a": 1}})  # equal, built without the pool
    assert apart is not pooled
    assert intern_capabilities(apart) is pooled  # the pool's object, every time
    assert intern_capabilities(apart) is pooled
    nested = pooled["kept"]  # built inside a set: not the pool's own object
    assert intern_capabilities(nested) is intern_capabilities({"a": 1})
    fresh = Capabilities({"only-here": [1]})
    assert intern_capabilities(fresh) is fresh  # nothing equal pooled: it becomes the one
    assert intern_capabilities({"only-here": [1]}) is fresh


def test_any_mapping_is_accepted_and_checked_like_a_dict() -> None:
    # A read-only mapping that is not a dict: checked through the Mapping ABC, and encoded.
    assert intern_capabilities(MappingProxyType({"m": {"x": True}})) is intern_capabilities(
        {"m": {"x": True}}
    )
    assert intern_capabilities(MappingProxyType({})) is intern_capabilities(None)
    with pytest.raises(ConfigurationError):
        intern_capabilities(MappingProxyType({"bad": {1: "int key"}}))
    with pytest.raises(ConfigurationError):
        intern_capabilities({"bad": MappingProxyType({"x": object()})})
