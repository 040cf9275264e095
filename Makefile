# The two commands the README promises: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint unit unit-seasons integration venv lock cluster cluster-down crds clean

# Reproducible installs: every package of the dev extra's closure comes from requirements/dev.lock, at the
# version and with the hashes recorded there (pip refuses anything else); Sundial itself is then installed
# from the tree without resolving anything. `make lock` regenerates the locks after pyproject.toml changes;
# tests/unit/test_locks.py fails while the two disagree.
# requirements/build.lock pins the installer and the build backend the same way: pip is replaced by the
# locked one first, and Sundial is built with the locked setuptools (--no-build-isolation), not with
# whatever setuptools the index serves that day.
DEV_LOCK := requirements/dev.lock
RUNTIME_LOCK := requirements/runtime.lock
BUILD_LOCK := requirements/build.lock

$(BIN)/.installed: pyproject.toml $(DEV_LOCK) $(BUILD_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(BUILD_LOCK)
	$(BIN)/pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

venv: $(BIN)/.installed

# The tool that writes the locks, pinned here and installed into the venv only: it is no dependency of
# Sundial's. The locks are for what CI and the image run, CPython 3.11 on linux (the hashes cover every
# wheel of each pinned release, so arm64 installs from them too). The runtime lock (the Dockerfile's) is
# resolved under the dev lock as a constraint, so a package in both is pinned to the same release in both.
# --unsafe-package sundial: the dev extra names sundial[test]; Sundial itself is installed from the tree.
PIP_TOOLS := pip-tools==7.6.2
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --strip-extras \
	--no-emit-find-links --no-emit-index-url --unsafe-package sundial --upgrade

# Not `venv`: that installs from the locks, which may be missing or stale here.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet '$(PIP_TOOLS)'
	$(PIP_COMPILE) --extra dev --output-file $(DEV_LOCK) pyproject.toml
	$(PIP_COMPILE) --constraint $(DEV_LOCK) --output-file $(RUNTIME_LOCK) pyproject.toml
	$(PIP_COMPILE) --allow-unsafe --output-file $(BUILD_LOCK) requirements/build.in

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

LINT_PATHS := operator tests hack/demo hack/cluster_access.py hack/buildcache.py hack/podrunner.py \
	hack/gitops-controllers $(wildcard bench)

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
