# The two commands the README promises: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint unit integration venv cluster cluster-down crds clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

## demo: a local control plane, the operator, and a sample ScheduledDeployment firing about a minute later
demo: venv
	$(BIN)/python hack/demo

## test: lint, types, then every test (unit and integration, on the local control plane)
test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

LINT_PATHS := operator tests hack/demo $(wildcard bench)

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
	$(BIN)/python -m sundial.crd

clean: cluster-down
	rm -rf $(VENV) .sundial
