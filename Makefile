# CRM Hub: `make demo` runs the demo on the embedded defaults, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("CRM Hub needs Python 3.11+") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/crmhub demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check hub connectors tests
	$(BIN)/mypy

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/run_all.py

chaos: install
	$(BIN)/python chaos/run.py

clean:
	rm -rf $(VENV) .crmhub .pytest_cache .mypy_cache .ruff_cache
