# The two commands the README promises: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint unit unit-seasons integration venv cluster cluster-down crds clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

## demo: a local control plane, the operator, and a sample ScheduledDeployment firing about a minute later
demo: venv
	$(BIN)/python hack/demo

## test: lint, types, the unit tier under two frozen dates, then every test (unit and integration)
test: lint unit-seasons
	$(BIN)/pytest $(PYTEST_ARGS)

# The unit tier twice more with the clock frozen (SUNDIAL_FROZEN_NOW, tests/conftest.py): once in a January
# before today and once in a July years ahead, past 2038 and every date the tests and corpora name, in a
# local zone whose offset differs between the two. An expectation that holds in one season only, or only
# until some date, fails here on any day of the year. About 8 s each; PYTEST_ARGS is not passed (it may name
# integration tests or options, and the frozen clock is for tests/unit only).
FROZEN_DATES := 2026-01-15T12:00:00Z 2041-07-15T12:00:00Z

unit-seasons: venv
	@set -e; for when in $(FROZEN_DATES); do \
		echo "unit tier with the clock frozen at $$when (TZ=Europe/Berlin)"; \
		TZ=Europe/Berlin SUNDIAL_FROZEN_NOW=$$when $(BIN)/pytest tests/unit -p no:cacheprovider; \
	done

LINT_PATHS := operator tests hack/demo hack/cluster_access.py $(wildcard bench)

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: venv
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

cluster:
	hack/local-cluster up --verify

cluster-down:
	hack/local-cluster down

crds: venv
	$(BIN)/python -m sundial.api.crd

clean: cluster-down
	rm -rf $(VENV) .sundial
