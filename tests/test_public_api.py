"""The top-level package exports exactly its public names, and each one resolves."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import connscale
from connscale import errors


def test_all_names_resolve() -> None:
    for name in connscale.__all__:
        assert hasattr(connscale, name), f"connscale.__all__ lists {name!r} but it is missing"


def test_all_is_exactly_the_public_names() -> None:
    """Names are imported on first use: ``__all__`` and the lazy table agree exactly, and
    nothing else public lives in the package namespace."""
    lazy = set(connscale._WHERE)
    assert set(connscale.__all__) == lazy | {"__version__"}
    assert len(connscale.__all__) == len(set(connscale.__all__)), "duplicate in __all__"
    loose = (
        {
            name
            for name, value in vars(connscale).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)
        }
        - lazy
        - {"annotations", "TYPE_CHECKING", "Any"}
    )
    assert not loose, loose


def test_each_name_comes_from_the_module_the_table_names() -> None:
    for name, module in connscale._WHERE.items():
        assert getattr(connscale, name) is getattr(importlib.import_module(module), name)


def test_importing_a_server_module_does_not_load_the_benchmark() -> None:
    """``connscale serve`` and its forked workers carry only what serving needs."""
    code = (
        "import sys, connscale.server.supervisor; "
        "print(sorted(m for m in sys.modules if m.startswith(('connscale.bench', "
        "'connscale.report', 'matplotlib', 'prometheus_client'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_every_error_is_exported_and_in_one_tree() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, connscale.ConnscaleError)
        assert getattr(connscale, name) is cls


def test_configuration_error_is_a_value_error() -> None:
    assert issubclass(connscale.ConfigurationError, ValueError)
