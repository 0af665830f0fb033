# Conveyor: `make up` runs the whole system locally, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: up test check lint imports typecheck format venv chromium clean unit integration e2e browser soak bench screenshot

$(UV):
	$(PYTHON) -m pip install --user --quiet uv \
	  || $(PYTHON) -m pip install --quiet uv \
	  || $(PYTHON) -m pip install --user --quiet --break-system-packages uv

venv: $(UV)
	@UV=$$(command -v uv || echo $(UV)); $$UV sync --frozen --quiet

up: venv
	$(BIN)/conveyor up

# The dashboard tests drive Debian's chromium; installed (apt-get, as root) when missing.
chromium:
	@tests/browser/install-chromium.sh

# PYTEST_WORKERS=2: two workers, each taking whole modules (a module's servers and services are
# its own), about 13 min instead of 19; on 2 cores the timing bounds of a few tests do not yet
# hold under that load (docs/how-to/run-tests.md), so one process is the default. Never with
# NATS_URL, which names one server for every module (their streams would collide).
PYTEST_WORKERS ?= 0
test: venv chromium
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

unit: venv
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

integration: venv
	$(BIN)/python -m pytest -m "integration or e2e" $(PYTEST_ARGS)

browser: venv chromium
	$(BIN)/python -m pytest -m browser $(PYTEST_ARGS)

# The fault battery bigger and longer: CONVEYOR_SOAK_SCALE multiplies the jobs and events of
# the kill-storm and projector-crash tests (and their time bounds); every round runs the whole
# integration and end-to-end battery. Not part of `make test`.
SOAK_SCALE ?= 10
SOAK_ROUNDS ?= 3
soak: venv
	@for round in $$(seq $(SOAK_ROUNDS)); do \
	  echo "== soak round $$round of $(SOAK_ROUNDS) (scale $(SOAK_SCALE))"; \
	  CONVEYOR_SOAK_SCALE=$(SOAK_SCALE) $(BIN)/python -m pytest -m "integration or e2e" \
	    --timeout 1800 $(PYTEST_ARGS) || exit 1; \
	done

# The benchmark (issue 4): Conveyor and its peers (Celery, Dramatiq, Taskiq, installed into
# bench/work/peers-venv with Debian's redis-server) measured in one run; results go to
# bench/results/<date>.json and the README's table. See docs/performance.md.
bench: venv
	PYTHONPATH=bench $(BIN)/python -m conveyor_bench $(BENCH_ARGS)

# The README's screenshot, taken from a real run: the whole system started, a scene of jobs
# made through the api, the dashboard opened in Chromium (tests/browser/test_screenshot.py).
screenshot: venv chromium
	CONVEYOR_SCREENSHOT=$(CURDIR)/docs/screenshot.png $(BIN)/python -m pytest -q -p no:cacheprovider tests/browser/test_screenshot.py

lint: venv imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The import contracts of [tool.importlinter] in pyproject.toml (ADR 4, 15): libs never import
# services or the application, no service imports another, nothing shipped imports the
# dev-only local stack (conveyor_cli.dev).
imports: venv
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: venv
	$(BIN)/mypy libs services apps tests bench/conveyor_bench

check: lint typecheck test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
