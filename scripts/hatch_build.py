"""The wheel's build hook: ``CONNSCALE_COMPILE=1`` builds a wheel with the hot path compiled.

By default a wheel is pure Python (the compiled extensions are git-ignored, and hatch leaves
ignored files out). With ``CONNSCALE_COMPILE=1`` the hook runs ``compile_hot_path.py`` (mypyc,
the modules listed in ``connscale/_hot_path.py``), puts the extensions in the wheel and tags
it for this interpreter and platform. mypyc type-checks what it compiles, so the build needs
connscale's dependencies and mypy importable: build without isolation, in the environment
that has them (``make wheel-compiled``)::

    CONNSCALE_COMPILE=1 pip wheel --no-build-isolation --no-deps -w dist .

A compile that fails fails the build: a wheel that says it is compiled must be.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SWITCH = "CONNSCALE_COMPILE"
COMPILER = Path(__file__).with_name("compile_hot_path.py")


def _compiler() -> ModuleType:
    """compile_hot_path.py beside this file (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("compile_hot_path", COMPILER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wheel_extensions(src: Path) -> dict[str, str]:
    """Each compiled extension under ``src`` -> its path inside the wheel (its path under
    ``src``: the modules' extensions sit in the package, mypyc's shared runtime at the top)."""
    return {str(path): path.relative_to(src).as_posix() for path in _compiler().extensions(src)}


def wanted(version: str, environ: dict[str, str] | os._Environ[str]) -> bool:
    """Whether this build compiles: asked for, and not an editable install (which runs the
    source tree, where ``make compile`` builds in place)."""
    return environ.get(SWITCH) == "1" and version != "editable"


class CompiledHotPath(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if not wanted(version, os.environ):
            return
        root = Path(self.root)
        env = {**os.environ, "CONNSCALE_REQUIRE_COMPILED": "1"}
        subprocess.run([sys.executable, str(COMPILER)], check=True, env=env)
        extensions = wheel_extensions(root / "src")
        if not extensions:
            raise RuntimeError("compile_hot_path.py built no extension")
        build_data["force_include"].update(extensions)
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
