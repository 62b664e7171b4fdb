# One task runner for the project. The Python environment is .venv/ at the repo root.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help install engines run up down status cluster-up cluster-down cluster-status test test-cluster test-unit test-workflow test-integration test-faults soak lint format bench lock schemas rule-index calendar-load migrate clean-state

help:
	@echo "make run      the main job in the foreground: Kafka, Temporal, both services + workers, demo data"
	@echo "make test     install what is missing, then lint and the whole test suite (real servers)"
	@echo "make up|down|status   the same stack in the background"
	@echo "make cluster-up|cluster-down|cluster-status   three Kafka brokers, two replicas of each service and worker"
	@echo "make lint     ruff + mypy;  make bench  benchmarks;  make soak  long crossing schedules;  make schemas  regenerate contract documents;  make rule-index  docs/rule-index.md"

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

# The multi-node deployment on this machine (README: Local cluster); state in var/cluster.
cluster-up: engines
	@deploy/local/cluster.sh up

cluster-down:
	@deploy/local/cluster.sh down

cluster-status:
	@deploy/local/cluster.sh status

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	$(PY) -m tests.support.rule_index

# The whole suite: unit, workflow (time-skipping test server) and integration (real Kafka,
# Temporal and both services as processes). pytest's exit 5 (no tests collected) fails.
# The cluster tests (tests/cluster: three Kafka brokers, replicated services and workers,
# parts killed under load; ~5 min) follow in a pytest process of their own, once the
# single-node servers of the main run are stopped. PYTEST_ARGS go to the main run only.
# Workflow modules marked own_server (long skips on a test server of their own) run each
# in a pytest process of its own after the main run.
OWN_SERVER_MODULES = $(shell grep -l "pytest.mark.own_server" tests/workflow/test_*.py)
test: engines lint
	@$(PY) -m pytest -m "not cluster and not own_server" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi
	@for module in $(OWN_SERVER_MODULES); do \
		$(PY) -m pytest -m own_server $$module; rc=$$?; \
		if [ $$rc -eq 5 ]; then echo "error: no tests collected in $$module"; exit 1; fi; \
		if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	done
	@$(MAKE) --no-print-directory test-cluster PYTEST_ARGS=

test-cluster: engines
	@$(PY) -m pytest -m cluster tests/cluster $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no cluster tests"; exit 1; fi; exit $$rc

test-unit: $(STAMP)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-workflow: engines
	$(PY) -m pytest -m workflow $(PYTEST_ARGS)

test-integration: engines
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

# The fault suite alone (make test runs it too): crashes, outages, locks, replays.
test-faults: engines
	$(PY) -m pytest -m faults $(PYTEST_ARGS)

# The long soak, not in make test: the seeded crossing schedules (applications for one
# person at once, withdrawals, cancels, offline switches, duplicates, a region outage, a
# worker killed) over SOAK_SEEDS seeds of SOAK_CASES applications each, strict invariants.
SOAK_SEEDS ?= 40
SOAK_CASES ?= 30
soak: engines
	@seeds=$$(seq -s, 1000 $$((999 + $(SOAK_SEEDS)))); \
	echo "[soak] $(SOAK_SEEDS) schedules of $(SOAK_CASES) applications (seeds 1000...)"; \
	MEDTRANSFER_SCHEDULE_SEEDS=$$seeds MEDTRANSFER_SCHEDULE_CASES=$(SOAK_CASES) \
	$(PY) -m pytest -m integration tests/integration/test_crossing_schedules.py $(PYTEST_ARGS)

# Bring the incoming, outgoing and audit databases to the newest schema (the services do
# this at start-up too); DB=incoming|outgoing|audit for one, URL=... for another database.
migrate: $(STAMP)
	$(PY) -m services.cli.migrate upgrade $(if $(DB),--database $(DB)) $(if $(URL),--url $(URL))

# An operator loads next year's official calendar once it is published (no redeploy).
calendar-load: $(STAMP)
	@test -n "$(FILE)" || { echo "usage: make calendar-load FILE=path/to/<year>.json"; exit 2; }
	$(PY) -m services.common.calendar_admin load $(FILE)

schemas: $(STAMP)
	$(PY) -m services.cli.export

# docs/rule-index.md: each rule id R1-R28 with the code that names it and its tests.
rule-index: $(STAMP)
	$(PY) -m tests.support.rule_index

lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable > requirements.lock

# Cases per second end to end against the engines' own ceilings (bench/, README
# "Performance"): its own ports (Kafka 59092/59093, Temporal 57233/58233) and state
# (var/bench), so it never meets `make run` or `make test`. BENCH_ARGS="--quick" while
# developing; the result is bench/results/latest.json.
bench: engines
	@$(PY) -m bench $(BENCH_ARGS)

clean-state: down cluster-down
	rm -rf var/
