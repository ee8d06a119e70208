# The two commands a new user types: `make demo` (main job) and `make test` (test suite).
# Both create and use the project's own virtual environment in .venv.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 3000
LEADS ?= 20000

# No usage telemetry leaves the machine from BentoML or MLflow.
export BENTOML_DO_NOT_TRACK := True
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export NO_MKDOCS_2_WARNING := 1

.PHONY: venv demo test check lint docs bench bench-quick mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/leadscore demo --leads $(LEADS) --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Lint, format, layering contracts, types and the fast tests: under a minute, before a commit.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -x tests/unit -m "not slow"

docs: $(STAMP)
	$(BIN)/python -m mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check .

# Mutation testing of the policy, calibration, split, snapshot planning/labels and the
# bundle's scoring (pyproject's [tool.mutmut]; scope in benchmarks/mutation_report.py):
# one worker at low priority, then the share of mutants killed per module. Not part of
# `make test` (it takes minutes). MUTATION_FLAGS="--fail-under 80" makes it a gate.
MUTATION_FLAGS ?=
mutation: $(STAMP)
	nice -n 19 $(BIN)/python benchmarks/mutation_report.py --run --max-children 1 $(MUTATION_FLAGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf outputs .pytest_cache .ruff_cache mutants
