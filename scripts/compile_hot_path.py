"""Compile the per-request hot path with mypyc, in place, or remove what an earlier run built.

The modules named in ``src/connscale/_hot_path.py`` are plain, ``mypy --strict``-typed
Python; mypyc (part of mypy) turns each into a C extension that sits beside its ``.py``
file, and Python imports the extension first. Nothing is written by hand in C: the source
stays the one truth, and without a compiler everything runs as it is, interpreted, only
slower (a ``tools/call`` over HTTP costs about twice the CPU).

    python scripts/compile_hot_path.py            # build (a minute on 2 cores)
    python scripts/compile_hot_path.py --clean    # remove the extensions: interpreted again
    python scripts/compile_hot_path.py --check    # exit 1 if an extension is older than its source
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

SRC = Path(__file__).resolve().parents[1] / "src"


def _hot_path() -> ModuleType:
    """connscale/_hot_path.py, loaded by itself: it names the modules (standard library only,
    so this runs before anything is installed)."""
    spec = importlib.util.spec_from_file_location("_hot_path", SRC / "connscale" / "_hot_path.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOT_PATH = _hot_path()


def sources() -> list[str]:
    """The hot-path sources, relative to src/."""
    return [str(HOT_PATH.source_file(name).relative_to(SRC)) for name in HOT_PATH.HOT_PATH_MODULES]


def extensions(src: Path = SRC) -> list[Path]:
    """Every extension a build left under ``src`` (the modules' and mypyc's own)."""
    return sorted(path for path in src.rglob("*.so") if path.is_file())


def clean() -> None:
    for path in extensions():
        path.unlink()
    shutil.rmtree(SRC / "build", ignore_errors=True)


def build() -> int:
    clean()  # a module dropped from the list must not leave its old extension behind
    mypyc = Path(sys.executable).with_name("mypyc")
    command = [str(mypyc), *sources()]
    print(f"compiling {len(command) - 1} hot-path modules with mypyc ...", flush=True)
    env = {**os.environ, "MYPYC_OPT_LEVEL": "3"}
    result = subprocess.run(command, check=False, cwd=SRC, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        clean()  # half a build would mix compiled and interpreted modules that call each other
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        print(f"{tail}\nmypyc could not build the hot path: it runs interpreted.", file=sys.stderr)
        return 0 if os.environ.get("CONNSCALE_REQUIRE_COMPILED") != "1" else 1
    shutil.rmtree(SRC / "build", ignore_errors=True)
    print(f"compiled: {len(extensions())} extensions beside their sources in src/")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--clean", action="store_true", help="remove the compiled extensions")
    action.add_argument("--check", action="store_true", help="fail if an extension is stale")
    action.add_argument("--list", action="store_true", help="print the sources (for make)")
    args = parser.parse_args(argv)
    if args.clean:
        clean()
        return 0
    if args.list:
        print(" ".join("src/" + source for source in sources()))
        return 0
    if args.check:
        old = HOT_PATH.stale_modules()
        if old:
            print("compiled extensions older than their sources: " + ", ".join(old))
            print("rebuild them (make compile) or remove them (make interpreted)")
            return 1
        return 0
    return build()


if __name__ == "__main__":
    raise SystemExit(main())
