# Every target sets up .venv itself (created when missing, reinstalled when pyproject.toml changes).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: venv run test lint typecheck bench chaos clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## make run: the daemon on the embedded defaults (simulated exchange, dry run, SQLite under ./data); Ctrl+C stops it.
run: venv
	$(BIN)/python run.py check-config
	$(BIN)/python run.py daemon

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

## make test: lint, type check, then the test suite (slow soak/chaos tests excluded).
test: lint typecheck
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

## make bench: every benchmark in bench/, each printing the engine figure, the raw floor and their ratio.
bench: venv
	$(BIN)/python bench/run_all.py

## make chaos: the long soak and chaos runs, with the same checks as the tests.
chaos: venv
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
