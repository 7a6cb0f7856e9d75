# moodcast: `make run` runs the bundled demo, `make test` runs every test (lint, types, tests).
# Each creates what it needs on first use: the virtual environment, the packages, the front-end assets.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
ASSETS := static/vendor/socket.io.min.js

.PHONY: run test check lint typecheck unit assets bench train wheel clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,train,dev]'
	touch $@ $(RUNTIME_STAMP)

# The socket.io browser client comes from npm (package-lock.json pins it); nothing is loaded from a CDN.
$(ASSETS): package.json package-lock.json scripts/build-assets.mjs
	npm ci --no-audit --no-fund --loglevel=error
	npm run --silent build

assets: $(ASSETS)

run: $(RUNTIME_STAMP) $(ASSETS)
	$(BIN)/moodcast run $(ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

unit: $(DEV_STAMP) $(ASSETS)
	$(BIN)/pytest $(PYTEST_ARGS)

# The one check script: developers and CI run exactly this.
test: lint typecheck unit

bench: $(DEV_STAMP) $(ASSETS)
	$(BIN)/python -m bench.pipeline_bench

train: $(DEV_STAMP)
	$(BIN)/moodcast train $(ARGS)

wheel: $(DEV_STAMP) $(ASSETS)
	$(BIN)/pip wheel --no-deps -w dist .

clean:
	rm -rf $(VENV) node_modules static/vendor dist build .pytest_cache .mypy_cache .ruff_cache
