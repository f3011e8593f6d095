# Two commands set everything up: `make demo` and `make test`.
# Each creates .venv when missing and re-installs only when pyproject.toml or the lock changed;
# requirements-lock.txt pins every dependency to the versions that produced docs/examples/.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint bench clean golden

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml requirements-lock.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c requirements-lock.txt -e .
	touch $(STAMP)

$(TEST_STAMP): pyproject.toml requirements-lock.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c requirements-lock.txt -e '.[test]'
	touch $(STAMP) $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/ctxfusion run configs/demo.yaml --out runs/demo

test: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs

# Rewrite the golden references whose computation version was bumped (tests/golden/golden.py).
golden: $(TEST_STAMP)
	CTXFUSION_GOLDEN=regenerate $(BIN)/python -m pytest tests/golden -q
