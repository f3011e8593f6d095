# Two commands set everything up: `make demo` and `make test`.
# Each creates .venv when missing and re-installs only when pyproject.toml or the lock changed;
# requirements-lock.txt pins every dependency to the versions that produced docs/examples/.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# The documentation toolchain lives in its own venv: mkdocs-material needs requests>=2.30,
# torchattacks pins requests~=2.25.1. docs/requirements.txt pins every package of it.
DOCS_VENV := .venv-docs
DOCS_STAMP := $(DOCS_VENV)/.installed
MKDOCS := NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs

.PHONY: demo demo-full test lint bench clean golden docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml requirements-lock.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c requirements-lock.txt -e .
	touch $(STAMP)

$(TEST_STAMP): pyproject.toml requirements-lock.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c requirements-lock.txt -e '.[test]'
	touch $(STAMP) $(TEST_STAMP)

$(DOCS_VENV)/bin/python:
	$(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/pip install --quiet --upgrade pip

$(DOCS_STAMP): docs/requirements.txt | $(DOCS_VENV)/bin/python
	$(DOCS_VENV)/bin/pip install --quiet -r docs/requirements.txt
	touch $(DOCS_STAMP)

demo: $(STAMP)
	$(BIN)/ctxfusion run configs/demo.yaml --out runs/demo

# Everything the 3-minute demo leaves out (configs/demo-full.yaml), about 12 minutes.
demo-full: $(STAMP)
	$(BIN)/ctxfusion run configs/demo-full.yaml --out runs/demo-full

test: $(TEST_STAMP) $(DOCS_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(MKDOCS) build --strict --site-dir site
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks

# The documentation site (mkdocs.yml), offline once .venv-docs exists, into site/.
docs: $(DOCS_STAMP)
	$(MKDOCS) build --strict --site-dir site

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs $(DOCS_VENV) site

# Rewrite the golden references whose computation version was bumped (tests/golden/golden.py).
golden: $(TEST_STAMP)
	CTXFUSION_GOLDEN=regenerate $(BIN)/python -m pytest tests/golden -q
