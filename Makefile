# One task runner for the project. The Python environment is .venv/ at the repo root.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help install engines run up down status test test-unit test-workflow test-integration lint format bench lock schemas calendar-load clean-state

help:
	@echo "make run      the main job in the foreground: Kafka, Temporal, both services + workers, demo data"
	@echo "make test     install what is missing, then lint and the whole test suite (real servers)"
	@echo "make up|down|status   the same stack in the background"
	@echo "make lint     ruff + mypy;  make bench  benchmarks;  make schemas  regenerate contract documents"

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@echo "[venv] creating $(VENV) and installing pinned dependencies..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@# requirements.lock pins every transitive version too (make lock refreshes it).
	@$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

engines: $(STAMP)
	@deploy/local/install.sh all

run: engines
	@deploy/local/stack.sh run

up: engines
	@deploy/local/stack.sh up

down:
	@deploy/local/stack.sh down

status:
	@deploy/local/stack.sh status

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The whole suite: unit, workflow (time-skipping test server) and integration (real Kafka,
# Temporal and both services as processes). pytest's exit 5 (no tests collected) fails.
test: engines lint
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

test-unit: $(STAMP)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-workflow: engines
	$(PY) -m pytest -m workflow $(PYTEST_ARGS)

test-integration: engines
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

# An operator loads next year's official calendar once it is published (no redeploy).
calendar-load: $(STAMP)
	@test -n "$(FILE)" || { echo "usage: make calendar-load FILE=path/to/<year>.json"; exit 2; }
	$(PY) -m services.common.calendar_admin load $(FILE)

schemas: $(STAMP)
	$(PY) -m contracts.export

lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable > requirements.lock

bench: engines
	@echo "make bench: the benchmark is not built yet (issue 7)"; exit 2

clean-state: down
	rm -rf var/
