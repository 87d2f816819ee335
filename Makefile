# The two commands of the README: `make demo` and `make test`. Each installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
# Three workers on two cores: tests wait on servers enough that a third fills the cores (README, Testing).
PYTEST_WORKERS ?= 3

.PHONY: setup demo test lint bench bench-quick package clean

setup:
	bash devstack/setup.sh

demo: setup
	$(VENV)/bin/offsite demo

test: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --durations=30 tests

LINT_PATHS := shared devstack offsite functions tests bench

# ruff (lint rules and formatting) on every Python tree; mypy, strict, on shared/ (pyproject's [tool.mypy]).
lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/run.py

bench-quick: setup
	$(PY) bench/run.py --quick

package: setup
	$(VENV)/bin/offsite package

clean:
	-$(VENV)/bin/offsite dev down
	rm -rf .offsite dist
