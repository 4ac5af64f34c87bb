# Quick start: `make bench` and `make test` create everything they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv test lint typecheck unit bench bench-micro bench-full conformance clean

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

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks fuzz examples scripts
	$(BIN)/ruff format --check src tests benchmarks fuzz examples scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# The main job: the connection benchmark against the embedded reference server.
bench: $(STAMP)
	$(BIN)/connscale bench --out bench-results

# Micro-benchmarks of the building blocks (pools, cache, codec, session state).
bench-micro: $(STAMP)
	$(BIN)/python -m benchmarks.run_micro

# The official MCP conformance suite (pinned; installed with npm into .conformance/) against
# examples/everything.py on both engines, both protocol eras: one line per scenario.
conformance: $(STAMP)
	$(BIN)/python scripts/conformance.py

clean:
	rm -rf $(VENV) bench-results .pytest_cache .mypy_cache .ruff_cache .conformance
