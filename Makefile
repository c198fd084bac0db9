# The two set-up commands: `make up` (the main job on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp

.PHONY: up test bench stress lint format

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the project's dependencies changed.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/freshcache up

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The reliability tests at full length (FRESHCACHE_STRESS_SECONDS, default 30 here, ~8 in `make test`).
stress: $(STAMP)
	FRESHCACHE_STRESS_SECONDS=$(or $(STRESS_SECONDS),30) $(BIN)/pytest -s tests/test_reliability_*.py $(PYTEST_ARGS)
