# Quick start: `make bench` and `make test` create everything they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv compile interpreted test lint typecheck unit bench bench-micro bench-full conformance wheel wheel-compiled clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The official MCP SDK is optional: tests and bench use it when it installs.
	-$(BIN)/python -m pip install --quiet -e '.[sdk]'
	# WebSocket baselines (websockets, aiohttp) are optional the same way.
	-$(BIN)/python -m pip install --quiet -e '.[baselines]'
	# Locust (connscale.locust, examples/locustfile.py) is optional the same way.
	-$(BIN)/python -m pip install --quiet -e '.[locust]'
	touch $(STAMP)

venv: $(STAMP)

# The per-request hot path compiled with mypyc, beside its sources (scripts/compile_hot_path.py;
# the module list is in src/connscale/_hot_path.py). Rebuilt when one of them changes; without
# a C compiler it says so and everything runs interpreted.
HOT_PATH := $(shell $(PYTHON) scripts/compile_hot_path.py --list)
COMPILED := $(VENV)/.compiled

$(COMPILED): $(STAMP) scripts/compile_hot_path.py src/connscale/_hot_path.py $(HOT_PATH)
	$(BIN)/python scripts/compile_hot_path.py
	touch $(COMPILED)

compile: $(COMPILED)

# Back to pure Python (the extensions removed); `make compile` builds them again.
interpreted:
	$(PYTHON) scripts/compile_hot_path.py --clean
	rm -f $(COMPILED)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks fuzz examples scripts
	$(BIN)/ruff format --check src tests benchmarks fuzz examples scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(COMPILED)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# The main job: the connection benchmark against the embedded reference server.
bench: $(COMPILED)
	$(BIN)/connscale bench --out bench-results

# Micro-benchmarks of the building blocks (pools, cache, codec, session state).
bench-micro: $(COMPILED)
	$(BIN)/python -m benchmarks.run_micro

# The official MCP conformance suite (pinned; installed with npm into .conformance/) against
# examples/everything.py on both engines, both protocol eras: one line per scenario.
conformance: $(COMPILED)
	$(BIN)/python scripts/conformance.py

# Wheels into dist/: pure Python (any platform), or with the hot path compiled for this
# interpreter and platform (scripts/hatch_build.py; needs a C compiler; it also leaves the
# source tree compiled, as `make compile` does).
wheel: $(STAMP)
	$(BIN)/python -m pip wheel --quiet --no-build-isolation --no-deps -w dist .

wheel-compiled: $(STAMP)
	CONNSCALE_COMPILE=1 $(BIN)/python -m pip wheel --quiet --no-build-isolation --no-deps -w dist .
	touch $(COMPILED)

clean:
	$(PYTHON) scripts/compile_hot_path.py --clean
	rm -rf $(VENV) bench-results dist .pytest_cache .mypy_cache .ruff_cache .conformance
