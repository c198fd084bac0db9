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

# Two workers, a test file each: most tests wait on servers, so two cores overlap them well.
test: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# The full bench also compares with pandas and dlt (the `bench` extra); QUICK=1 is the CI smoke run.
bench: $(STAMP)
	$(if $(QUICK),,$(BIN)/pip install --quiet -e ".[bench]")
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The reliability tests at full length (FRESHCACHE_STRESS_SECONDS, default 30 here, ~8 in `make test`).
stress: $(STAMP)
	FRESHCACHE_STRESS_SECONDS=$(or $(STRESS_SECONDS),30) $(BIN)/pytest -s tests/test_reliability_*.py $(PYTEST_ARGS)
