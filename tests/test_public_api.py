"""The top-level package exports exactly its public names, and each one resolves."""

from __future__ import annotations

import types

import connscale
from connscale import errors


def test_all_names_resolve() -> None:
    for name in connscale.__all__:
        assert hasattr(connscale, name), f"connscale.__all__ lists {name!r} but it is missing"


def test_all_is_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(connscale).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public.discard("annotations")  # from __future__ import annotations
    public.add("__version__")
    assert set(connscale.__all__) == public
    assert len(connscale.__all__) == len(set(connscale.__all__)), "duplicate in __all__"


def test_every_error_is_exported_and_in_one_tree() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, connscale.ConnscaleError)
        assert getattr(connscale, name) is cls


def test_configuration_error_is_a_value_error() -> None:
    assert issubclass(connscale.ConfigurationError, ValueError)
