# Ferry: `make demo` runs every DAG end to end on local services; `make test` runs the test suite.
SHELL := /bin/bash
# PYTHON: leave unset to let scripts/setup.sh pick Python 3.12+ (or: make PYTHON=/path/to/python3.12 ...)
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)
export VENV
ifdef PYTHON
export PYTHON
endif

.PHONY: setup demo lint test test-fast test-scheduler bench up down constraints clean

setup:  ## create .venv and install pinned requirements (idempotent)
	@bash scripts/setup.sh

demo: setup  ## start local services, seed demo data, run every DAG, print a summary
	@$(PY) -m ferry_dev.demo

LINT_PATHS := dags plugins ferry_dev tests bench

lint: setup  ## ruff check, ruff format --check and mypy (configured in pyproject.toml)
	@$(PY) -m ruff check $(LINT_PATHS)
	@$(PY) -m ruff format --check $(LINT_PATHS)
	@$(PY) -m mypy

test: setup lint  ## lint, then the whole test suite against real local services (what CI runs)
	@$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup  ## unit tests only (no services)
	@$(PY) -m pytest -m "not integration and not e2e" $(PYTEST_ARGS)

test-scheduler: setup  ## backfill through a real Airflow scheduler (airflow backfill create; ~4 min)
	@FERRY_SCHEDULER_TESTS=1 $(PY) -m pytest tests/sales/test_backfill_scheduler.py $(PYTEST_ARGS)

bench: setup  ## benchmarks (on demand; prints figures and ratios against same-run baselines)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

up:  ## full stack with Docker (Airflow, PostgreSQL, MongoDB, MinIO)
	docker compose up -d

down:
	docker compose down

constraints:  ## re-freeze constraints.txt from the current .venv
	@(echo "# Frozen from a verified install of requirements-dev.txt (pip check clean, Python 3.12)."; \
	  echo "# Regenerate: make constraints"; $(VENV)/bin/pip freeze | grep -v "@ file") > constraints.txt

clean:
	rm -rf .ferry
