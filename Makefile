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

.PHONY: setup browser compose-cli demo airflow lint test test-fast test-deployment test-faults bench up down constraints clean

setup:  ## create .venv and install pinned requirements (idempotent)
	@bash scripts/setup.sh

demo: setup  ## start local services, seed demo data, run every DAG, print a summary
	@$(PY) -m ferry_dev.demo

LINT_PATHS := dags plugins ferry_dev tests bench

lint: setup  ## ruff check, ruff format --check and mypy (configured in pyproject.toml)
	@$(PY) -m ruff check $(LINT_PATHS)
	@$(PY) -m ruff format --check $(LINT_PATHS)
	@$(PY) -m mypy

browser:  ## Debian's chromium for the browser tests (installed with apt-get when missing)
	@bash scripts/browser.sh

compose-cli:  ## a compose CLI to check docker-compose.yaml (Debian's docker-compose, best effort: else that check skips)
	@command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || \
	  { mkdir -p .ferry; $$( [ "$$(id -u)" = 0 ] || echo sudo -n ) apt-get install -y --no-install-recommends docker-compose \
	    > .ferry/compose-install.log 2>&1 || echo "ferry: no compose CLI (apt-get failed): the compose CLI check will skip"; }

airflow: setup  ## a real Airflow (PostgreSQL metadata DB, CeleryExecutor, 2 workers) on local services; prints the UI URL and logins
	@$(PY) -m ferry_dev.deployment

test: setup lint browser compose-cli  ## lint, then the whole suite against real local services, a real Airflow deployment and a browser (what CI runs)
	@$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup  ## unit tests only (no services)
	@$(PY) -m pytest -m "not integration and not e2e and not deployment" $(PYTEST_ARGS)

test-deployment: setup browser  ## only the real-deployment and browser layer (~6 min)
	@$(PY) -m pytest tests/deployment $(PYTEST_ARGS)

N ?= 2
FAULT_RESULTS := .ferry/faults/last.jsonl
test-faults: setup  ## fault injection: N trials per scenario and fault kind (make test-faults N=50; FERRY_FAULT_SEED=... replays)
	@mkdir -p .ferry/faults && rm -f $(FAULT_RESULTS)
	@FERRY_FAULT_N=$(N) FERRY_FAULT_RESULTS=$(CURDIR)/$(FAULT_RESULTS) $(PY) -m pytest tests/faults $(PYTEST_ARGS); rc=$$?; \
	  $(PY) -m ferry_dev.faults table $(FAULT_RESULTS); exit $$rc

test-props: setup  ## property tests on random schemas, N examples (make test-props N=200, the default; make test runs 12)
	@FERRY_PROPS_N=$(if $(filter command line,$(origin N)),$(N),200) $(PY) -m pytest tests/etl/test_properties.py --hypothesis-show-statistics $(PYTEST_ARGS)

bench: setup  ## benchmarks (on demand; prints figures and ratios against same-run baselines)
	@for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

up:  ## full stack with Docker (Airflow, PostgreSQL, MongoDB, MinIO); writes .env with generated secrets first
	python3 scripts/compose_env.py
	docker compose up -d

down:
	docker compose down

constraints:  ## re-freeze constraints.txt from the current .venv
	@(echo "# Frozen from a verified install of requirements-dev.txt (pip check clean, Python 3.12)."; \
	  echo "# Regenerate: make constraints"; $(VENV)/bin/pip freeze | grep -v "@ file") > constraints.txt

clean:
	rm -rf .ferry
